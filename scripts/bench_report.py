#!/usr/bin/env python3
"""Prints benchmark medians as rates and as ratios to the raw ECDSA floor.

Paired benchmarks alternate blocks of the floor operation and the measured one and report
the ratio themselves ("vs_floor"), so a noisy machine moves both alike.
"""
import json
import os
import sys

# benchmark -> (floor it is paired with, target ratio, target text)
TARGETS = {
    "BM_X509SvidIssueFromPublicKey": ("BM_RawEcdsaP256Sign", 0.70, ">= 70% of raw sign"),
    "BM_X509SvidIssueFromSpkiDer": ("BM_RawEcdsaP256Sign", 0.70, ">= 70% of raw sign"),
    "BM_X509SvidVerifyNew": ("BM_RawEcdsaP256Verify", 0.85, ">= 85% of raw verify"),
    "BM_X509SvidVerifyNewViaIntermediate": ("BM_RawEcdsaP256Verify", 0.85,
                                            ">= 85% of 2 raw verifies"),
    "BM_JwtSvidMint": ("BM_RawEcdsaP256Sign", 0.70, ">= 70% of raw sign"),
    "BM_JwtSvidValidate": ("BM_RawEcdsaP256Verify", 0.85, ">= 85% of raw verify"),
    # The CA key in SoftHSM2 (pkcs11_benchmark), against the token's own C_Sign rate.
    "BM_X509SvidIssuePkcs11/real_time/threads:1": ("BM_RawSoftHsmSign/real_time/threads:1", 0.60,
                                                   ">= 60% of raw token sign"),
    "BM_X509SvidIssuePkcs11/real_time/threads:2": ("BM_RawSoftHsmSign/real_time/threads:2", 0.60,
                                                   ">= 60% of raw token sign"),
    "BM_Pkcs11SignerSign/real_time/threads:1": ("BM_RawSoftHsmSign/real_time/threads:1", 0.60,
                                                ">= 60% of raw token sign"),
    "BM_Pkcs11SignerSign/real_time/threads:2": ("BM_RawSoftHsmSign/real_time/threads:2", 0.60,
                                                ">= 60% of raw token sign"),
}
ABSOLUTE = {  # benchmark -> (minimum items/s, or maximum ns/op)
    "BM_X509SvidVerifyCached/256/real_time/threads:1": ("rate", 1_000_000, ">= 1,000,000/s"),
    "BM_ScopeCheck": ("ns", 200, "<= 200 ns"),
    "BM_ScopeParseAndCheck": ("ns", 200, "<= 200 ns"),
}


def main(paths):
    rates, ns, paired = {}, {}, {}
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("aggregate_name") != "median":
                    continue
                name = b["run_name"].removesuffix("/manual_time")
                rates[name] = b.get("items_per_second", 0.0)
                if "vs_floor" in b:
                    paired[name] = b["vs_floor"]
                # Per operation (a paired iteration holds several operations).
                ns[name] = 1e9 / rates[name] if rates[name] else b["real_time"]
    rows, failed = [], False
    for name in sorted(rates, key=lambda n: (not n.startswith("BM_Raw"), n)):
        rate = rates[name]
        ratio = target = verdict = ""
        if name in TARGETS:
            floor, want, target = TARGETS[name]
            r = paired.get(name, rate / rates[floor])
            times = "2 x " if "2 raw" in target else ""
            ratio = f"{r:.0%} of {times}{floor.removeprefix('BM_')}"
            verdict = "ok" if r >= want else "BELOW"
        elif name in ABSOLUTE:
            kind, bound, target = ABSOLUTE[name]
            good = rate >= bound if kind == "rate" else ns[name] <= bound
            verdict = "ok" if good else "BELOW"
        failed |= verdict == "BELOW"
        rows.append((name.removeprefix("BM_"), f"{rate:,.0f}/s", f"{ns[name]:,.0f} ns", ratio, target, verdict))
    header = ("benchmark", "rate", "time/op", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    # A smoke run (scripts/bench --smoke) checks that this script reads what the benchmarks
    # write; its figures are too short to judge.
    return 1 if failed and not os.environ.get("TW_BENCH_SMOKE") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
