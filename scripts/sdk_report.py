#!/usr/bin/env python3
"""Prints the SDK benchmark: latencies against their targets, rates beside raw ECDSA verify."""
import json
import sys

runs = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}


def find(prefix):
    return next(b for name, b in runs.items() if name.startswith(prefix))


c = find("BM_Create/")
print(f"create() end to end (key, CSR, TLS, issuance, checks): p50 {c['p50_ms']:.2f} ms,"
      f" p99 {c['p99_ms']:.2f} ms, max {c['max_ms']:.2f} ms  (target p99 <= 5 ms)")
f = find("BM_RevocationFanOut/")
print(f"revocation to 100 watchers, after revoke() returns: p50 {f['p50_ms']:.2f} ms,"
      f" p99 {f['p99_ms']:.2f} ms, max {f['max_ms']:.2f} ms  (target p99 <= 10 ms;"
      f" {f['known_before_return_pct']:.0f}% knew before the call returned)")
for threads, label in [(1, "sync, 1 thread"), (8, "batched, 8 threads")]:
    b = find(f"BM_Call/iterations:400/real_time/threads:{threads}")
    print(f"call() with allow + outcome events ({label}): {b['items_per_second']:,.0f} calls/s,"
          f" p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms")
sdk = find("BM_MtlsHandshakeSdk/")["items_per_second"]
plain = find("BM_MtlsHandshakeOpenSsl/")["items_per_second"]
cli = find("BM_MtlsHandshakeOpenSslCli/")["handshakes_per_second"]
print(f"mTLS handshakes between two agents' contexts: {sdk:,.0f}/s = {sdk / plain:.2f}x plain"
      f" OpenSSL contexts with the same keys ({plain:,.0f}/s), {sdk / cli:.2f}x openssl"
      f" s_server/s_time ({cli:,.0f}/s)")
for threads in (1, 2):
    floor = find(f"BM_EcdsaP256Verify/real_time/threads:{threads}")["items_per_second"]
    for name, label in [("BM_VerifierX509", "Verifier X.509 (cached leaf)"),
                        ("BM_VerifierJwt", "Verifier JWT-SVID")]:
        r = find(f"{name}/real_time/threads:{threads}")["items_per_second"]
        print(f"{label:<30} {threads} thread(s): {r:>10,.0f}/s = {r / floor:.2f}x raw ECDSA"
              f" P-256 verify ({floor:,.0f}/s)")
