#!/usr/bin/env python3
"""The Python SDK beside the C++ SDK on one server, in the same run:

    bench_python.py BUILD [--smoke]

Starts a throwaway `trustwarden server`, then alternates rounds of the C++ SDK benchmark
(`sdk_benchmark` BM_Create and BM_Call against that server) and the same work from Python
(create(); call() on 1 and 8 threads; acall() from 8 concurrent tasks, each with a connector
that does nothing), and prints each Python rate as a ratio of the C++ rate of its round
(median over the rounds). Runs under the interpreter the package was built for, with the
package from BUILD/python on sys.path. `--smoke`: one short round (CI checks it runs).
"""

import asyncio
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
smoke = "--smoke" in sys.argv
sys.path.insert(0, os.path.join(build, "python"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "harness"))

import trustwarden_harness as harness  # noqa: E402
from trustwarden import AgentIdentity  # noqa: E402

ROUNDS = 1 if smoke else 3
CALLS = 50 if smoke else 400  # per thread or task, as BM_Call's Iterations(400)
CREATES = 20 if smoke else 200
THREADS = 8
CONFIG = """
[limits]
ledger_events_per_instance = 0
max_stream_subscribers_per_address = 1000
"""


def requests_served(server):
    """The server's trustwarden_http_requests_total: during a run of calls, nearly all are
    ledger batches."""
    context = ssl.create_default_context(cafile=server.bundle_pem)
    with urllib.request.urlopen(server.url + "/metrics", context=context, timeout=10) as r:
        text = r.read().decode()
    return float(re.search(r"^trustwarden_http_requests_total (\S+)", text, re.M).group(1))


def cpp_round(env, server):
    """The C++ SDK's BM_Create and BM_Call against the server; the 8-thread calls on their
    own, to count the requests they made."""

    def run(pattern):
        out = subprocess.run(
            [os.path.join(build, "bin", "sdk_benchmark"), f"--benchmark_filter={pattern}",
             "--benchmark_format=json"], env=env, check=True, capture_output=True,
            text=True).stdout
        return {b["name"]: b for b in json.loads(out)["benchmarks"]}

    runs = run("BM_(Create/|Call/iterations:400/real_time/threads:1$)")
    before = requests_served(server)
    runs.update(run(f"BM_Call/iterations:400/real_time/threads:{THREADS}$"))
    requests = requests_served(server) - before

    def find(prefix):
        return next(b for name, b in runs.items() if name.startswith(prefix))

    create = find("BM_Create/")
    return {"create_p50": create["p50_ms"], "create_p99": create["p99_ms"],
            "call_1": find("BM_Call/iterations:400/real_time/threads:1")["items_per_second"],
            "call_8": find(f"BM_Call/iterations:400/real_time/threads:{THREADS}")[
                "items_per_second"],
            "requests_per_call_8": requests / (THREADS * 400)}


def percentile(samples, q):
    samples = sorted(samples)
    return samples[int(q * (len(samples) - 1))]


def python_round(connection, server):
    def agent(name):
        return AgentIdentity.create(f"acme-corp/finance-team/{name}",
                                    ["read:transactions", "write:ledger"], trust_level="high",
                                    **connection)

    samples = []
    for _ in range(CREATES):
        start = time.perf_counter()
        a = agent("payment-processor")
        samples.append((time.perf_counter() - start) * 1000)
        a.detach()

    caller = agent("caller")

    def calls(n):
        for _ in range(n):
            caller.call("noop://ledger-db/transactions", "read:transactions", b"{}")

    start = time.perf_counter()
    calls(CALLS)
    call_1 = CALLS / (time.perf_counter() - start)

    threads = [threading.Thread(target=calls, args=(CALLS,)) for _ in range(THREADS)]
    before = requests_served(server)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    call_8 = THREADS * CALLS / (time.perf_counter() - start)
    requests_per_call_8 = (requests_served(server) - before) / (THREADS * CALLS)

    async def task():
        for _ in range(CALLS):
            await caller.acall("noop://ledger-db/transactions", "read:transactions", b"{}")

    async def tasks():
        start = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(THREADS)))
        return THREADS * CALLS / (time.perf_counter() - start)

    acall_8 = asyncio.run(tasks())
    caller.detach()
    return {"create_p50": percentile(samples, 0.5), "create_p99": percentile(samples, 0.99),
            "call_1": call_1, "call_8": call_8, "acall_8": acall_8,
            "requests_per_call_8": requests_per_call_8}


def main():
    work = tempfile.mkdtemp(prefix="tw-bench-python-")
    server = harness.Server(work, config=CONFIG, extra_args=["--log-level", "warn"])
    try:
        server.start()
        connection = {"server": server.url, "token": server.admin_token(),
                      "bundle": server.bundle_json, "spool": os.path.join(work, "spool")}
        env = dict(os.environ, TW_BENCH_SERVER=server.url, TRUSTWARDEN_TOKEN=connection["token"],
                   TRUSTWARDEN_BUNDLE=server.bundle_json)
        AgentIdentity.register_connector("noop", lambda agent, request: b"")
        rounds = []
        for _ in range(ROUNDS):
            rounds.append((cpp_round(env, server), python_round(connection, server)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def median(key, side):
        return statistics.median(r[side][key] for r in rounds)

    def ratio(py_key, cpp_key):
        return statistics.median(py[py_key] / cpp[cpp_key] for cpp, py in rounds)

    print(f"Python SDK (CPython {sys.version.split()[0]}) beside the C++ SDK on one server, "
          f"median of {ROUNDS} round(s) (target >= 0.9x):")
    for py_key, cpp_key, label in [("call_1", "call_1", "call(), 1 thread"),
                                   ("call_8", "call_8", f"call(), {THREADS} threads"),
                                   ("acall_8", "call_8", f"acall(), {THREADS} tasks")]:
        print(f"  {label:<18} {median(py_key, 1):>8,.0f} calls/s = {ratio(py_key, cpp_key):.2f}x"
              f" the C++ SDK ({median(cpp_key, 0):,.0f}/s with "
              f"{1 if cpp_key == 'call_1' else THREADS} thread(s))")
    print(f"  create()           p50 {median('create_p50', 1):.2f} ms, p99 "
          f"{median('create_p99', 1):.2f} ms (C++ SDK: p50 {median('create_p50', 0):.2f} ms, "
          f"p99 {median('create_p99', 0):.2f} ms)")
    print(f"  ledger requests per call on {THREADS} threads (group commit; 2 events a call): "
          f"Python {median('requests_per_call_8', 1):.2f}, C++ "
          f"{median('requests_per_call_8', 0):.2f}")


if __name__ == "__main__":
    main()
