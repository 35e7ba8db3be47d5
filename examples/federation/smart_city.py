#!/usr/bin/env python3
"""The smart city: two trust domains, traffic.city and energy.city, federated both ways.

A traffic-signal agent of traffic.city asks a load-balancing agent of energy.city, over
mTLS, to reduce the load of a grid sector. The energy agent verifies the caller with
traffic.city's bundle (its own server federates it), grants it only what energy.city's
policy gives traffic.city's signal agents (the caller's own certificate attributes count
for nothing here), and records each decision in energy.city's ledger. Once traffic.city
revokes the signal agent, the energy agent refuses it within the staleness bound, having
learned it from traffic.city's revocation stream.

It expects both servers set up as `make demo-federation` does (scripts/demo_federation):

    TRAFFIC_SERVER, TRAFFIC_TOKEN, TRAFFIC_BUNDLE   traffic.city's URL, admin token, bundle
    ENERGY_SERVER, ENERGY_TOKEN, ENERGY_BUNDLE      the same for energy.city

each federating the other, and energy.city's policy granting `reduce:load` to
traffic.city's `city/signals/*` agents. Exits 1 when a step does not behave as described.
"""

import asyncio
import os
import ssl
import sys
import tempfile
import time

from trustwarden import AgentIdentity, Verifier, revoke

SECTOR = "grid://energy.city/sector-7/load"
STALENESS = 2.0  # seconds of silence after which the energy agent refuses everyone


def domain(prefix):
    return {"server": os.environ[f"{prefix}_SERVER"], "token": os.environ[f"{prefix}_TOKEN"],
            "bundle": os.environ[f"{prefix}_BUNDLE"]}


async def serve(balancer, verifier):
    """The energy agent: one request line in, one answer out, to callers granted
    reduce:load on our grid, each decision recorded in energy.city's ledger."""

    async def handle(reader, writer):
        tls = writer.get_extra_info("ssl_object")
        leaf = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
        line = (await reader.readline()).decode().strip()
        decision = verifier.verify_x509(leaf, scope="reduce:load", resource=SECTOR)
        if decision:
            answer = f"ok: {line} for {decision.spiffe_id} (event {decision.event_id})"
        else:
            answer = f"refused: {decision.reason} (event {decision.event_id})"
        writer.write(answer.encode() + b"\n")
        await writer.drain()
        writer.close()

    # The handshake already refuses what the verifier would: a caller of no trusted
    # domain, a revoked one, one without reduce:load here.
    context = balancer.ssl_context(server_side=True, scope="reduce:load")
    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


async def ask(agent, balancer, port, message):
    """One request from a traffic agent, which accepts only the energy agent's SPIFFE ID."""
    context = agent.ssl_context(peer=balancer.spiffe_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(message.encode() + b"\n")
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    if not answer:  # TLS 1.3: the server judges the client after the client's handshake
        raise ConnectionResetError("the energy agent closed the connection without answering")
    return answer.decode().strip()


async def refused(agent, balancer, port, message):
    """The refusal of `message`, or None when it got through."""
    try:
        answer = await ask(agent, balancer, port, message)
        return None if answer.startswith("ok:") else answer
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as e:
        return f"{type(e).__name__}: {e}"


async def main():
    traffic, energy = domain("TRAFFIC"), domain("ENERGY")
    spool = tempfile.mkdtemp(prefix="tw-smart-city-")
    problems = []

    print("1. Each city's server gives its agent an identity.")
    signals = await AgentIdentity.acreate(
        "city/signals/controller", ["request:load-reduction"], ttl="30m", trust_level="high",
        spool=os.path.join(spool, "signals"), **traffic)
    # Its own domain may write anything into its certificate: energy.city ignores it.
    meter = await AgentIdentity.acreate(
        "city/parking/meter", ["reduce:load"], ttl="30m", spool=os.path.join(spool, "meter"),
        **traffic)
    follow = {"traffic.city": traffic["server"]}
    balancer = await AgentIdentity.acreate(
        "grid/dispatch/load-balancer", ["reduce:load"], ttl="30m", trust_level="high",
        spool=os.path.join(spool, "balancer"), max_staleness=STALENESS,
        federated_revocations=follow, **energy)
    verifier = Verifier(server=energy["server"], bundle=energy["bundle"], recorder=balancer,
                        max_staleness=STALENESS, federated_revocations=follow)
    async with signals, meter, balancer:
        print(f"   {signals.spiffe_id}\n   {meter.spiffe_id}\n   {balancer.spiffe_id}")
        server = await serve(balancer, verifier)
        port = server.sockets[0].getsockname()[1]

        print("2. The signal agent asks the energy agent, over mTLS, to reduce the load.")
        answer = await ask(signals, balancer, port, "reduce sector 7 by 5% for 15 min")
        print(f"   {answer}")
        if not answer.startswith(f"ok: reduce sector 7 by 5% for 15 min for {signals.spiffe_id}"):
            problems.append("the signal agent was not served")

        print("3. The parking meter's certificate claims reduce:load; energy.city's policy")
        print("   does not grant it to parking meters, so it is refused.")
        why = await refused(meter, balancer, port, "reduce sector 7 by 50%")
        print(f"   the handshake: {why}")
        if why is None:
            problems.append("the parking meter got through on its own certificate's scope")
        decision = verifier.verify_x509(meter.svid_pem, scope="reduce:load", resource=SECTOR)
        print(f"   the verifier ({decision.event_id}): {decision.reason}")
        if decision or "grants it nothing" not in decision.reason:
            problems.append("the verifier did not refuse the parking meter for its scope")

        print("4. traffic.city revokes the signal agent; energy.city refuses it once its")
        print("   verifier hears traffic.city's revocation stream.")
        revoke(instance=signals, reason="signal controller compromised", **traffic)
        revoked_at = time.monotonic()
        why = None
        while why is None and time.monotonic() - revoked_at < STALENESS:
            why = await refused(signals, balancer, port, "reduce sector 7 by 90%")
        elapsed = (time.monotonic() - revoked_at) * 1000
        if why is None:
            problems.append("the revoked signal agent still got through")
        else:
            print(f"   refused {elapsed:.1f} ms after the revocation returned: {why}")
        decision = verifier.verify_x509(signals.svid_pem, scope="reduce:load", resource=SECTOR)
        print(f"   the verifier's decision, recorded in energy.city's ledger as {decision.event_id}:")
        print(f"   {decision.reason}")
        if decision or not decision.event_id:
            problems.append("the verifier did not record a refusal of the revoked agent")
        server.close()
        await server.wait_closed()

    for p in problems:
        print(f"UNEXPECTED: {p}")
    print("The story went as expected." if not problems else "The story did not go as told.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
