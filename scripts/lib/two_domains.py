"""Throwaway `trustwarden server` processes, one per trust domain, for the federation demo
and benchmark: free loopback ports, a bundle endpoint each (https_spiffe), a temporary data
directory, stopped by PID.

    with Domains(bin, tmp) as d:
        traffic, energy = d.start("traffic.city"), d.start("energy.city")
        traffic.federate(energy); energy.federate(traffic)
"""

import os
import re
import signal
import subprocess
import time

LISTENING = re.compile(r"trustwarden listening on (https://\S+)")
ENDPOINT = re.compile(r"bundle endpoint on (https://\S+)")


class Domain:
    """One trust domain's server; `url`, `endpoint` (its bundle endpoint), `token` (admin),
    `bundle` (bundle.json) once started."""

    def __init__(self, binary, name, directory, config=None):
        self.binary, self.name, self.dir = binary, name, directory
        self.data = os.path.join(directory, "data")
        os.makedirs(directory)
        argv = [binary, "server", "--data-dir", self.data, "--listen", "127.0.0.1:0",
                "--trust-domain", name, "--bundle-endpoint", "127.0.0.1:0", "--log-level", "warn"]
        if config is not None:
            path = os.path.join(directory, "config.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(config)
            argv += ["--config", path]
        out_path = os.path.join(directory, "server.out")
        with open(out_path, "wb") as out, \
                open(os.path.join(directory, "server.err"), "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.url = self.endpoint = None
        deadline = time.monotonic() + 30
        while self.endpoint is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {name} server did not start; see {directory}")
            time.sleep(0.05)
            with open(out_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            listening, endpoint = LISTENING.search(text), ENDPOINT.search(text)
            if listening and endpoint:
                self.url, self.endpoint = listening.group(1), endpoint.group(1)
        with open(os.path.join(self.data, "admin.token"), encoding="utf-8") as f:
            self.token = f.read().strip()
        self.bundle = os.path.join(self.data, "bundle.json")

    def connection(self):
        """The SDK's connection arguments for this domain's server."""
        return {"server": self.url, "token": self.token, "bundle": self.bundle}

    def tw(self, *argv):
        """`trustwarden ARGV` against this server with its admin token; its output."""
        env = dict(os.environ, TRUSTWARDEN_SERVER=self.url, TRUSTWARDEN_TOKEN=self.token,
                   TRUSTWARDEN_BUNDLE=self.bundle)
        r = subprocess.run([self.binary, *argv], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: trustwarden {' '.join(argv)}: {r.stdout}")
        return r.stdout

    def federate(self, other):
        """Trusts `other`'s bundle endpoint, its first bundle given out of band."""
        self.tw("federation", "add", "--trust-domain", other.name, "--endpoint", other.endpoint,
                "--profile", "https_spiffe",
                "--endpoint-spiffe-id", f"spiffe://{other.name}/trustwarden/server",
                "--bundle", other.bundle)

    def apply_policy(self, text):
        path = os.path.join(self.dir, f"policy-{time.monotonic_ns()}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.tw("policy", "apply", path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Domains:
    """The servers started through it, stopped on leaving the `with` block."""

    def __init__(self, binary, tmp):
        self.binary, self.tmp, self.started = binary, tmp, []

    def start(self, name, config=None):
        d = Domain(self.binary, name, os.path.join(self.tmp, name), config)
        self.started.append(d)
        return d

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for d in self.started:
            d.stop()
