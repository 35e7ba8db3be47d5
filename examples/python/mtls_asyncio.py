#!/usr/bin/env python3
"""Two agents over mTLS with asyncio streams and AgentIdentity.ssl_context(): a ledger API
agent serves only callers granted write:ledger, a payment agent connects to it by SPIFFE
ID, each side knows the other's SPIFFE ID, and once the payment agent is revoked the API
refuses its next connection.

Run against a server with an admin token (the operator revokes):

    TRUSTWARDEN_SERVER=... TRUSTWARDEN_BUNDLE=.../bundle.json TRUSTWARDEN_TOKEN=... \\
    python3 examples/python/mtls_asyncio.py

Exits 1 when a step does not behave as described.
"""

import asyncio
import ssl
import sys
import time

from trustwarden import AgentIdentity, revoke


async def serve(api):
    """The ledger API: one line in, one line out, to callers granted write:ledger."""

    async def handle(reader, writer):
        peer = writer.get_extra_info("ssl_object").peer_spiffe_id
        line = await reader.readline()
        writer.write(f"recorded {line.decode().strip()!r} for {peer}\n".encode())
        await writer.drain()
        writer.close()

    context = api.ssl_context(server_side=True, scope="write:ledger")
    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


async def ask(payer, api, port, message):
    """One request from the payment agent, which accepts only the API's SPIFFE ID."""
    context = payer.ssl_context(peer=api.spiffe_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    print(f"   connected to {writer.get_extra_info('ssl_object').peer_spiffe_id}")
    writer.write(message.encode() + b"\n")
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    if not answer:  # TLS 1.3: the server checks the client after the client's handshake
        raise ConnectionResetError("the API closed the connection without answering")
    return answer.decode().strip()


async def main():
    problems = 0
    print("1. The ledger API agent and the payment agent get their identities.")
    api, payer = await asyncio.gather(
        AgentIdentity.acreate("acme-corp/finance-team/ledger-api", ["read:ledger"]),
        AgentIdentity.acreate("acme-corp/finance-team/payment-processor",
                              ["write:ledger"], trust_level="high"))
    async with api, payer:
        server = await serve(api)
        port = server.sockets[0].getsockname()[1]
        print(f"   {api.spiffe_id} listens on 127.0.0.1:{port}")

        print("2. The payment agent sends a payment over mTLS.")
        answer = await ask(payer, api, port, "pay 120 EUR to supplier 7")
        print(f"   the API answered: {answer}")
        if str(payer.spiffe_id) not in answer:
            print("   UNEXPECTED: the API did not see the payment agent's SPIFFE ID")
            problems += 1

        print("3. The operator revokes the payment agent; the API refuses it from then on.")
        revoke(instance=payer, reason="compromised")
        deadline = time.monotonic() + 5
        refused = None
        while refused is None and time.monotonic() < deadline:
            try:
                await ask(payer, api, port, "pay 999 EUR to attacker")
                await asyncio.sleep(0.01)
            except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as e:
                refused = e
        if refused is None:
            print("   UNEXPECTED: the revoked agent still got through")
            problems += 1
        else:
            print(f"   refused: {refused}")
        server.close()
        await server.wait_closed()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
