#!/usr/bin/env python3
"""Prints the ledger benchmark beside its floors measured in the same run."""
import json
import sys

runs = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}


def find(base):
    """The run of benchmark `base`, whatever suffixes (/iterations:1/real_time) it carries."""
    for name, b in runs.items():
        if name == base or name.startswith(base + "/"):
            return b
    raise SystemExit(f"ledger_report: no benchmark {base} in {sys.argv[1]}")


def rate(name):
    return find(name).get("items_per_second", 0.0)


sha = rate("BM_Sha256Leaf")
verify = rate("BM_EcdsaP256Verify")
print(f"floors: SHA-256 leaf hash {sha:,.0f}/s, ECDSA P-256 verify {verify:,.0f}/s per core")
for name, b in runs.items():
    if name.startswith("BM_DurableSignedAppend"):
        r = b["items_per_second"]
        print(f"durable signed append {name.split('/', 1)[1]:<40} {r:>10,.0f} events/s"
              f"  ({r / verify:.2f}x one core's ECDSA verify rate; batches of 64)")
for name, label, target in [("BM_InclusionProof_1M", "inclusion proof at 1M leaves", 1.0),
                            ("BM_AuditTrace_1M", "audit trace over 1M events", 50.0),
                            ("BM_AuditQueryInstance_1M", "audit query --instance over 1M", 100.0)]:
    b = find(name)
    ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    print(f"{label:<40} {ms:10.3f} ms  (target <= {target:g} ms)")
v = rate("BM_OfflineVerify_1M")
print(f"offline verification of 1M events       {v:>10,.0f} events/s  (target >= 200,000;"
      f" {v / sha:.3f}x the leaf-hash floor)")
