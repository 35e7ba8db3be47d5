#!/usr/bin/env python3
"""Federation figures, two throwaway servers (traffic.city, energy.city) federated both ways:

    bench_federation.py BUILD [--smoke]

- cross-domain revocation: from revoke() returning in traffic.city to an energy.city
  Verifier (following traffic.city's revocation stream) refusing the agent, p50/p99, beside
  the same measure within one domain (an energy.city agent revoked in energy.city) in the
  same run: the ratio is what crossing domains costs (target p99 <= 20 ms);
- bundle refresh after a foreign rotation: energy.city (refresh hint 5 s) publishes a new
  authority (`ca prepare`); the time until traffic.city's server holds it, against the hint
  that bounds the poll; then, activated, how soon traffic.city's SDK verifies its SVIDs.

Runs under the interpreter the package was built for, with BUILD/python on sys.path.
`--smoke`: a few samples (CI checks it runs); its figures mean nothing.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
smoke = "--smoke" in sys.argv
sys.path.insert(0, os.path.join(build, "python"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from trustwarden import AgentIdentity, Verifier, revoke  # noqa: E402
from two_domains import Domains  # noqa: E402

REVOCATIONS = 5 if smoke else 200
ROTATIONS = 1 if smoke else 3
HINT = 5  # seconds: the clamp's floor (federation.h)
ENERGY_CONFIG = f'[ca]\nrefresh_hint = "{HINT}s"\n'


def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def until(predicate, timeout):
    """Seconds until predicate() held (polled as fast as it runs), or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
    return None


def verifier_of(domain, **options):
    """A Verifier of `domain` (its server and bundle)."""
    return Verifier(server=domain.url, bundle=domain.bundle, **options)


def federated_sequence(domain, trust_domain):
    """The spiffe_sequence of `trust_domain`'s bundle as `domain`'s server holds it."""
    for f in json.loads(domain.tw("federation", "list", "--json"))["federations"]:
        if f["trust_domain"] == trust_domain:
            return f["bundle_sequence"] or 0
    return 0


def revocation_latencies(domain, verifier, n, spool):
    """ms from revoke() returning in `domain` to `verifier` refusing, for n new agents."""
    samples = []
    for i in range(n):
        agent = AgentIdentity.create(f"city/bench/agent-{i}", ["read:x"], ttl="10m",
                                     spool=spool, **domain.connection())
        pem = agent.svid_pem
        if not verifier.verify_x509(pem):
            raise SystemExit(f"{agent.spiffe_id} was refused before its revocation")
        agent.detach()
        revoke(instance=agent.instance_id, reason="bench", **domain.connection())
        took = until(lambda: not verifier.verify_x509(pem), 5.0)
        if took is None:
            raise SystemExit(f"{agent.spiffe_id}: the verifier never refused it")
        samples.append(took * 1000)
    return samples


def main():
    tmp = tempfile.mkdtemp(prefix="tw-bench-federation-")
    spool = os.path.join(tmp, "spool")
    try:
        with Domains(os.path.join(build, "bin", "trustwarden"), tmp) as domains:
            traffic = domains.start("traffic.city")
            energy = domains.start("energy.city", config=ENERGY_CONFIG)
            traffic.federate(energy)
            energy.federate(traffic)
            # Each grants the other's agents a scope: a federated peer granted nothing is
            # refused.
            for d, other in ((traffic, energy), (energy, traffic)):
                source = json.loads(d.tw("policy", "show", "--json"))["source"]
                d.apply_policy(source + f'\n[[foreign]]\ntrust_domain = "{other.name}"\n'
                                        'scopes = ["read:x"]\n')
            verifier = verifier_of(energy, federated_revocations={"traffic.city": traffic.url})
            cross = revocation_latencies(traffic, verifier, REVOCATIONS, spool)
            local = revocation_latencies(energy, verifier, REVOCATIONS, spool)
            print(f"revocation across domains (traffic.city revokes, an energy.city Verifier"
                  f" refuses), {len(cross)} agents: p50 {percentile(cross, 0.5):.2f} ms,"
                  f" p99 {percentile(cross, 0.99):.2f} ms, max {max(cross):.2f} ms"
                  f"  (target p99 <= 20 ms)")
            print(f"revocation within energy.city (same verifier), {len(local)} agents:"
                  f" p50 {percentile(local, 0.5):.2f} ms, p99 {percentile(local, 0.99):.2f} ms;"
                  f" across / within at p50: {percentile(cross, 0.5) / percentile(local, 0.5):.2f}x")

            watcher = verifier_of(traffic)
            published, trusted = [], []
            for i in range(ROTATIONS):
                sequence = federated_sequence(traffic, "energy.city")
                energy.tw("ca", "prepare")
                took = until(lambda: federated_sequence(traffic, "energy.city") > sequence,
                             3 * HINT + 5)
                if took is None:
                    raise SystemExit("traffic.city never fetched energy.city's new bundle")
                published.append(took)
                # Activated once the other domain holds it (`ca activate` unforced waits three
                # hints for that): SVIDs of the new authority are trusted there at once.
                energy.tw("ca", "activate", "--force")
                agent = AgentIdentity.create(f"grid/bench/rotated-{i}", ["read:x"], ttl="10m",
                                             spool=spool, **energy.connection())
                took = until(lambda: bool(watcher.verify_x509(agent.svid_pem)), HINT)
                agent.close()
                if took is None:
                    raise SystemExit("traffic.city's SDK never trusted the new authority")
                trusted.append(took * 1000)
            print(f"foreign rotation published (energy.city, refresh hint {HINT} s) to traffic.city"
                  f" holding it, {len(published)} rotations: mean {statistics.mean(published):.2f} s,"
                  f" max {max(published):.2f} s = {max(published) / HINT:.2f}x the hint;"
                  f" an SVID of the activated authority then verified in traffic.city's SDK after"
                  f" {max(trusted):.1f} ms at most")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
