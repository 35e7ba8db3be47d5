#!/usr/bin/env python3
"""Black-box end-to-end tests of TrustWarden's audit ledger (docs/ledger.md, /work/shared/API.md).
Run: cd /work/main && TW_BIN=build/bin/trustwarden /usr/bin/python3 -m unittest -v tests/e2e/ledger_test.py
Each server class runs `trustwarden server` on a temporary data dir; the test re-implements RFC 9162
and the Entry/batch/tree-head formats to check the server. cryptography 38 cannot parse our leaves,
so SVID attributes come from `trustwarden svid inspect --json`.
"""
import hashlib, json, os, random, shutil, socket, sqlite3, ssl, struct, sys, threading, time
import http.client, unittest

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import trustwarden_harness as harness  # noqa: E402
from trustwarden_harness import (  # noqa: E402
    BATCH_MAGIC, b64u, canonical, cli_env, describe, leaf_hash, make_csr, mth, node_hash,
    sha256, split_point, tw, unb64u, write_file)

TD = "ledger.example"

def setUpModule():
    harness.require()


# --------------------------------------------------------------------------- RFC 9162
def inclusion_path(m, hs):
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    if len(hs) <= 1:
        return []
    k = split_point(len(hs))
    if m < k:
        return inclusion_path(m, hs[:k]) + [mth(hs[k:])]
    return inclusion_path(m - k, hs[k:]) + [mth(hs[:k])]

def consistency_proof(m, hs):
    """RFC 9162 2.1.4.1 PROOF(m, D[n])."""
    def sub(m, d, b):
        if m == len(d):
            return [] if b else [mth(d)]
        k = split_point(len(d))
        if m <= k:
            return sub(m, d[:k], b) + [mth(d[k:])]
        return sub(m - k, d[k:], False) + [mth(d[:k])]
    return [] if m in (0, len(hs)) else sub(m, hs, True)

def _fold(fn, sn, r, path, second=None):
    """The loop shared by RFC 9162 2.1.3.2 and 2.1.4.2 (second: sr for consistency)."""
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            second = None if second is None else node_hash(p, second)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        elif second is None:
            r = node_hash(r, p)
        else:
            second = node_hash(second, p)
        fn, sn = fn >> 1, sn >> 1
    return (r, second) if sn == 0 else None

def root_from_inclusion(index, size, leaf, path):
    out = _fold(index, size - 1, leaf, path) if index < size else None
    return out and out[0]

def verify_inclusion(index, size, leaf, path, root):
    return root_from_inclusion(index, size, leaf, path) == root

def verify_consistency(first, second, first_root, second_root, proof):
    if first == 0 or first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    if first & (first - 1) == 0:   # a power of two: the first root is the proof's first node
        proof = [first_root] + list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    out = _fold(fn, sn, proof[0], proof[1:], proof[0])
    return out == (first_root, second_root)


# --------------------------------------------------------------------------- ledger formats
def parse_entry(data):
    """docs/ledger.md Entry -> dict; AssertionError on any framing error."""
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise AssertionError(f"entry truncated at byte {pos} (+{n}) of {len(data)}")
        pos += n
        return data[pos - n:pos]

    def num(n):
        return int.from_bytes(take(n), "big")

    e = {"version": num(1), "index": num(8), "signer_kind": num(1)}
    e["signer_id"] = take(num(1))
    e["batch_size"], e["batch_position"] = num(2), num(2)
    path = take(num(1))
    e["batch_path"] = [path[i:i + 32] for i in range(0, len(path), 32)]
    e["signature"], e["event"] = take(num(2)), take(num(3))
    if pos != len(data) or len(path) % 32:
        raise AssertionError(f"bad entry framing (path {len(path)}, {len(data) - pos} left)")
    return e

def ecdsa_ok(public_key, signature, message):
    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False

def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


# --------------------------------------------------------------------------- servers
class LedgerCase(harness.ServerTestCase):
    TRUST_DOMAIN = TD

    @classmethod
    def create_agent(cls, client, name, scope=("read:transactions",), ttl="30m"):
        return super().create_agent(client, name, scope=list(scope), ttl=ttl)

    def ok(self, resp, status=200):
        self.assertEqual(resp.status, status, resp)
        return resp.json

    def tree_size(self):
        return self.ok(self.admin.get("/v1/ledger/entries?start=0&end=0"))["tree_size"]

    def entries(self, start=0, end=None, client=None):
        """Entries [start, end) (`raw`: the Entry bytes), in pages of 500."""
        client, end, out = client or self.admin, self.tree_size() if end is None else end, []
        while start + len(out) < end:
            a = start + len(out)
            doc = self.ok(client.get(f"/v1/ledger/entries?start={a}&end={min(end, a + 500)}"))
            self.assertTrue(doc["entries"], f"no entries from {a} (end {end})")
            out += [dict(e, raw=unb64u(e["entry"])) for e in doc["entries"]]
        return out

    def ledger_key(self):
        doc = self.ok(self.server.client().get("/v1/ledger/key"))
        key = serialization.load_pem_public_key(doc["public_key_pem"].encode())
        self.assertEqual(doc["key_id"], b64u(sha256(spki_der(key))), doc)
        return key

    def check_tree_head(self, head, key=None):
        key = key or self.ledger_key()
        self.assertEqual(head["key_id"], b64u(sha256(spki_der(key))), head)
        msg = struct.pack(">QQB", head["timestamp"], head["tree_size"], 32) + \
            unb64u(head["root_hash"]) + b"\x00\x00"
        self.assertTrue(ecdsa_ok(key, unb64u(head["signature"]), msg),
                        f"tree head signature does not verify: {head}")


# 1a. The test's own RFC 9162 implementation, against the Certificate Transparency vectors
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [  # MTH of the first 1..8 leaves
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

class MerkleVectorsTest(unittest.TestCase):
    def test_rfc9162_implementation_matches_ct_vectors(self):
        leaves = [leaf_hash(x) for x in CT_LEAVES]
        self.assertEqual(sha256(b"").hex(), mth([]).hex())
        for n in range(1, 9):
            self.assertEqual(mth(leaves[:n]).hex(), CT_ROOTS[n - 1], f"root of {n}")
        # CT vector: the path of leaf 0 in the tree of 8 starts with the leaf hash of "00".
        self.assertEqual(inclusion_path(0, leaves)[0].hex(),
                         "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
        bad = b"\xff" * 32
        for n in range(1, 9):
            root = mth(leaves[:n])
            for m in range(n):
                path = inclusion_path(m, leaves[:n])
                self.assertTrue(verify_inclusion(m, n, leaves[m], path, root), (m, n))
                self.assertFalse(verify_inclusion(m, n, bad, path, root), (m, n))
                if path:
                    self.assertFalse(verify_inclusion(m, n, leaves[m], path[:-1], root))
                    self.assertFalse(verify_inclusion(m, n, leaves[m], path + [bad], root))
                if n > 1:
                    self.assertFalse(verify_inclusion((m + 1) % n, n, leaves[m], path, root))
            for m in range(1, n + 1):
                proof = consistency_proof(m, leaves[:n])
                first = mth(leaves[:m])
                self.assertTrue(verify_consistency(m, n, first, root, proof), (m, n))
                self.assertFalse(verify_consistency(m, n, bad, root, proof), (m, n))
                if proof:
                    self.assertFalse(verify_consistency(m, n, first, root, proof[:-1]), (m, n))
                    wrong = [bytes([proof[0][0] ^ 1]) + proof[0][1:]] + proof[1:]
                    self.assertFalse(verify_consistency(m, n, first, root, wrong), (m, n))
        # The CT consistency vector (1, 8) equals the inclusion path of leaf 0.
        self.assertEqual(consistency_proof(1, leaves), inclusion_path(0, leaves))


# 1-4, 8. The ledger API of one server
class LedgerApiTest(LedgerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = cls.create_agent(cls.admin, "acme-corp/finance-team/payment-processor",
                                 scope=["read:transactions", "write:ledger"], ttl="1h")
        cls.b = cls.create_agent(cls.admin, "acme-corp/ops/watcher")
        for agent, n in ((cls.a, 3), (cls.b, 1), (cls.a, 5), (cls.b, 2)):
            r = agent.post_events([canonical(agent.event()) for _ in range(n)])
            if r.status != 200:
                raise AssertionError(f"seeding the ledger failed: {r}")
        r = cls.admin.post("/v1/tokens", {"principal": "aud", "auditor": True})
        if r.status != 201:
            raise AssertionError(f"creating an auditor token failed: {r}")
        cls.auditor = cls.server.client(token=r.json["token"])

    def assert_refused(self, resp, status, code=None):
        self.assertIn(resp.status, status if isinstance(status, tuple) else (status,), resp)
        err = resp.json.get("error", {})
        self.assertTrue(err.get("code"), resp)
        if code:
            self.assertEqual(err["code"], code, resp)

    def test_1_proofs_and_tree_head_match_own_merkle_tree(self):
        self.ok(self.admin.post("/v1/ledger/sth"), 201)
        leaves = [leaf_hash(e["raw"]) for e in self.entries(client=self.auditor)]
        n = len(leaves)
        self.assertGreaterEqual(n, 15)
        sizes = range(1, n + 1) if n <= 64 else sorted({*range(1, 33), n, *random.sample(
            range(33, n), 20)})
        for size in sizes:
            root = mth(leaves[:size])
            for index in range(size):
                p = self.ok(self.auditor.get(
                    f"/v1/ledger/proof/inclusion?index={index}&size={size}"))
                path = [unb64u(h) for h in p["audit_path"]]
                self.assertEqual((p["index"], p["tree_size"]), (index, size), p)
                self.assertEqual(unb64u(p["leaf_hash"]), leaves[index], p)
                self.assertTrue(verify_inclusion(index, size, leaves[index], path, root),
                                f"inclusion proof ({index}, {size}) does not verify: {p}")
        pairs = {(m, n) for m in range(1, n + 1)} | {
            tuple(sorted(random.sample(range(1, n + 1), 2))) for _ in range(40)}
        for first, second in sorted(pairs):
            p = self.ok(self.auditor.get(
                f"/v1/ledger/proof/consistency?first={first}&second={second}"))
            proof = [unb64u(h) for h in p["proof"]]
            self.assertTrue(verify_consistency(first, second, mth(leaves[:first]),
                                               mth(leaves[:second]), proof),
                            f"consistency proof ({first}, {second}) does not verify: {p}")
        head = self.ok(self.auditor.get("/v1/ledger/sth"))
        self.assertTrue(1 <= head["tree_size"] <= n, head)
        self.assertEqual(unb64u(head["root_hash"]), mth(leaves[:head["tree_size"]]), head)
        self.check_tree_head(head)

    def test_1b_ledger_routes_need_admin_or_auditor(self):
        r = self.admin.post("/v1/tokens", {"principal": "plain", "force": True})
        self.assertEqual(r.status, 201, r)
        plain = self.server.client(token=r.json["token"])
        for path in ("/v1/ledger/sth", "/v1/ledger/sths", "/v1/ledger/entries?start=0&end=1",
                     "/v1/ledger/proof/inclusion?index=0&size=1", "/v1/audit/events"):
            with self.subTest(path=path):
                self.ok(self.auditor.get(path))
                self.assert_refused(plain.get(path), 403)
                self.assert_refused(self.server.client().get(path), 401)
        self.assert_refused(self.auditor.post("/v1/ledger/sth"), 403)

    def test_2_batch_of_three_round_trips(self):
        size0 = self.tree_size()
        first = self.a.event()
        objs = [first, self.a.event(action="write:ledger", decision="deny", reason="over limit",
                                    input_digest="sha256:" + "0f" * 32),
                self.a.event("outcome", ref=first["id"], outcome="error: timeout")]
        raw = [canonical(o) for o in objs]
        doc = self.ok(self.a.post_events(raw))
        self.assertEqual(doc["indexes"], [size0, size0 + 1, size0 + 2], doc)
        self.assertEqual(doc["tree_size"], size0 + 3, doc)
        self.assertEqual(self.tree_size(), size0 + 3)
        got = self.entries(size0, size0 + 3)
        for pos, (e, obj, ev) in enumerate(zip(got, objs, raw)):
            entry = parse_entry(e["raw"])
            self.assertEqual((e["index"], e["event_id"], e["event"]), (size0 + pos, obj["id"], obj))
            self.assertEqual(entry["event"], ev, "the Entry does not hold the signed bytes")
            self.assertEqual((entry["version"], entry["index"], entry["signer_kind"]),
                             (1, size0 + pos, 1))
            self.assertEqual(entry["signer_id"], sha256(self.a.cert_der))
            self.assertEqual((entry["batch_size"], entry["batch_position"]), (3, pos))
            root = root_from_inclusion(pos, 3, leaf_hash(ev), entry["batch_path"])
            self.assertEqual(root, mth([leaf_hash(x) for x in raw]), "batch path")
            msg = BATCH_MAGIC + (3).to_bytes(4, "big") + root
            self.assertTrue(ecdsa_ok(self.a.key.public_key(), entry["signature"], msg),
                            "the stored batch signature does not verify")

    def test_9_batch_limit_is_128_events(self):
        size0 = self.tree_size()
        raw = [canonical(self.b.event()) for _ in range(129)]
        self.assertEqual(self.b.post_events(raw).status, 400)
        self.assertEqual(self.tree_size(), size0, "a refused batch of 129 changed the tree")
        doc = self.ok(self.b.post_events(raw[:128]))
        self.assertEqual(doc["indexes"], list(range(size0, size0 + 128)), doc)
        root = mth([leaf_hash(x) for x in raw[:128]])
        for pos, e in enumerate(self.entries(size0, size0 + 128)):
            entry = parse_entry(e["raw"])   # a path of 7 hashes still fits its length byte
            self.assertEqual((entry["event"], e["event"]), (raw[pos], json.loads(raw[pos])))
            self.assertEqual(root_from_inclusion(pos, 128, leaf_hash(raw[pos]),
                                                 entry["batch_path"]), root, f"position {pos}")

    def test_3_refusals_leave_the_tree_unchanged(self):
        c = self.create_agent(self.admin, "acme-corp/ops/doomed")
        self.ok(self.admin.post("/v1/revocations", {"instance": c.instance_id}))
        kept = canonical(self.a.event())
        kept_doc = self.ok(self.a.post_events([kept]))
        ev = self.a.event()
        other_key = ec.generate_private_key(ec.SECP256R1())
        spaced = json.dumps(ev, sort_keys=True).encode()
        unsorted = json.dumps(dict(reversed(list(ev.items()))), separators=(",", ":")).encode()
        issuance = canonical(self.a.event("issuance", resource=f"instance:{self.a.instance_id}",
                                          action=None, decision=None))
        good = canonical(ev)
        conflict = canonical({**json.loads(kept), "time": json.loads(kept)["time"] + 1})
        post = self.a.post_events
        cases = [
            ("non-canonical whitespace", lambda: post([spaced]), 400, "invalid_argument"),
            ("non-canonical key order", lambda: post([unsorted]), 400, "invalid_argument"),
            ("valid + invalid in one batch", lambda: post([good, spaced]), 400, None),
            ("wrong signature", lambda: post([good], self.a.sign([good], other_key)), 401, None),
            ("wrong principal", lambda: post([canonical({**ev, "principal": "mallory"})]),
             400, "invalid_argument"),
            ("another agent's subject", lambda: self.b.post_events([good]), 400,
             "invalid_argument"),
            ("server-only type issuance", lambda: post([issuance]), 400, "invalid_argument"),
            ("empty batch", lambda: post([]), 400, "invalid_argument"),
            ("no client certificate", lambda: post([good], client=self.server.client()),
             401, None),
            ("revoked agent", lambda: c.post_events([canonical(c.event())]), (401, 403), None),
            ("same id, other bytes", lambda: post([conflict]), 409, "already_exists"),
        ]
        for name, send, status, code in cases:
            with self.subTest(name):
                size0 = self.tree_size()
                self.assert_refused(send(), status, code)
                self.assertEqual(self.tree_size(), size0, "a refused batch changed the tree")
        with self.subTest("identical resubmission"):
            size0 = self.tree_size()
            doc = self.ok(self.a.post_events([kept]))
            self.assertEqual(doc["indexes"], kept_doc["indexes"], doc)
            self.assertEqual(self.tree_size(), size0)
        ids = {e["event_id"] for e in self.entries()}
        self.assertNotIn(ev["id"], ids, "an event of a refused batch was written")

    def test_4_lifecycle_events(self):
        d = self.create_agent(self.admin, "acme-corp/ops/short-lived")
        key = ec.generate_private_key(ec.SECP256R1())
        renewed = self.ok(d.client().post("/v1/identities/renew", {"csr": make_csr(key)}))
        self.ok(self.admin.post("/v1/revocations", {"instance": d.instance_id}))
        ledger_key, found = self.ledger_key(), {}
        for e in self.entries():
            ev = e["event"]
            found.setdefault((ev["type"], ev.get("instance")), []).append(e)
            if ev["type"] in ("action", "outcome"):
                continue
            entry = parse_entry(e["raw"])
            with self.subTest(index=e["index"], type=ev["type"]):
                self.assertEqual((entry["signer_kind"], entry["signer_id"]),
                                 (2, sha256(spki_der(ledger_key))), "not the ledger key")
                root = root_from_inclusion(entry["batch_position"], entry["batch_size"],
                                           leaf_hash(entry["event"]), entry["batch_path"])
                msg = BATCH_MAGIC + entry["batch_size"].to_bytes(4, "big") + root
                self.assertTrue(ecdsa_ok(ledger_key, entry["signature"], msg), "signature")
        self.assertIn(("policy", None), found)
        self.assertIn(("token", None), found)
        for agent in (self.a, self.b, d):
            with self.subTest(issuance=agent.instance_id):
                evs = [e["event"] for e in found.get(("issuance", agent.spiffe_id), [])]
                self.assertEqual(len(evs), 1, f"issuance events for {agent.spiffe_id}: {evs}")
                self.assertEqual(evs[0]["serial"], agent.info["serial"])
                self.assertEqual(evs[0]["resource"], f"instance:{agent.instance_id}")
        self.assertIn(("renewal", d.spiffe_id), found, renewed)
        rev = found.get(("revocation", d.spiffe_id), [])
        self.assertEqual(len(rev), 1, "no revocation event for the revoked instance")
        self.assertGreater(rev[0]["index"], found[("renewal", d.spiffe_id)][0]["index"])
        self.assertEqual(rev[0]["event"]["resource"], f"instance:{d.instance_id}")

    def test_8_tree_heads_appear_and_are_consistent(self):
        for _ in range(2):
            self.ok(self.a.post_events([canonical(self.a.event())]))
            size, deadline = self.tree_size(), time.monotonic() + 5
            while time.monotonic() < deadline:
                heads = self.ok(self.auditor.get("/v1/ledger/sths"))["tree_heads"]
                if any(h["tree_size"] == size for h in heads):
                    break
                time.sleep(0.1)
            else:
                self.fail(f"no tree head of size {size} within 5 s: {heads[-3:]}")
        leaves = [leaf_hash(e["raw"]) for e in self.entries()]
        heads = self.ok(self.auditor.get("/v1/ledger/sths"))["tree_heads"]
        self.assertGreaterEqual(len(heads), 3)
        key = self.ledger_key()
        for head in heads:
            self.check_tree_head(head, key)
            self.assertEqual(unb64u(head["root_hash"]), mth(leaves[:head["tree_size"]]), head)
        for prev, head in zip(heads, heads[1:]):
            m, n = prev["tree_size"], head["tree_size"]
            self.assertTrue(m <= n and prev["timestamp"] <= head["timestamp"], heads)
            if m == n:
                continue
            p = self.ok(self.auditor.get(f"/v1/ledger/proof/consistency?first={m}&second={n}"))
            self.assertTrue(verify_consistency(m, n, unb64u(prev["root_hash"]), unb64u(
                head["root_hash"]), [unb64u(h) for h in p["proof"]]), (prev, head, p))
        count = len(heads)
        time.sleep(2.5)
        later = self.ok(self.auditor.get("/v1/ledger/sths"))["tree_heads"]
        self.assertEqual(len(later), count, "tree heads were signed while the tree did not grow")


# 5. Forensics: query and trace a delegated agent's events
class ForensicsTest(LedgerCase):
    def test_5_query_and_trace_a_delegated_deny(self):
        parent = self.create_agent(self.admin, "acme-corp/finance-team/payment-processor",
                                   scope=["read:transactions", "write:ledger"], ttl="1h")
        child = self.create_agent(parent.client(), "acme-corp/finance-team/reconciler",
                                  ttl="20m")
        self.assertEqual(child.info["parent"], parent.spiffe_id)
        digest = "sha256:" + hashlib.sha256(b"delete every record of 2024").hexdigest()
        allow = child.event()
        deny = child.event(action="delete:records", decision="deny", reason="scope not granted",
                           resource="https://bank.example/records", input_digest=digest)
        self.ok(child.post_events([canonical(allow)]))
        deny_index = self.ok(child.post_events([canonical(deny)]))["indexes"][0]
        env = cli_env(self.server, self.admin_token, self.server.bundle_pem)

        def query(*args):
            r = tw("audit", "query", *args, "--json", env=env)
            self.assertEqual(r.returncode, 0, describe(r))
            return [e for e in json.loads(r.stdout)["events"]]

        got = query("--instance", child.instance_id)
        self.assertTrue(all(e["event"]["instance"] == child.spiffe_id for e in got), got)
        actions = [e["event_id"] for e in got if e["event"]["type"] == "action"]
        self.assertEqual(actions, [allow["id"], deny["id"]])
        self.assertEqual({e["event"]["type"] for e in got}, {"issuance", "action"})
        denied = query("--decision", "deny")
        self.assertIn(deny["id"], [e["event_id"] for e in denied])
        self.assertTrue(all(e["event"]["decision"] == "deny" for e in denied), denied)
        self.assertEqual([e["event_id"] for e in query(
            "--instance", child.instance_id, "--decision", "deny", "--action", "delete:records",
            "--resource", "https://bank.example/records")], [deny["id"]])
        self.assertEqual(query("--instance", parent.instance_id, "--decision", "deny"), [])

        r = tw("audit", "trace", deny["id"], "--json", env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        t = json.loads(r.stdout)
        policy = self.ok(self.admin.get("/v1/policies/1"))
        self.assertEqual((t["index"], t["event"]), (deny_index, deny))
        self.assertEqual([(c["instance_id"], c["spiffe_id"]) for c in t["chain"]],
                         [(child.instance_id, child.spiffe_id),
                          (parent.instance_id, parent.spiffe_id)])
        self.assertEqual(t["chain"][0]["parent"], parent.spiffe_id)
        self.assertEqual((t["principal"], t["policy"]["version"], t["policy"]["sha256"]),
                         ("admin", 1, policy["sha256"]))
        self.assertEqual((t["input_digest"], t["decision"], t["reason"]),
                         (digest, "deny", "scope not granted"))
        inc = t["inclusion"]
        self.assertIs(inc["verified"], True, inc)
        entry = self.entries(deny_index, deny_index + 1)[0]["raw"]
        self.assertTrue(verify_inclusion(deny_index, inc["tree_size"], leaf_hash(entry),
                                         [unb64u(h) for h in inc["audit_path"]],
                                         unb64u(inc["root_hash"])), inc)
        self.assertEqual((inc["tree_head"]["tree_size"], inc["tree_head"]["root_hash"]),
                         (inc["tree_size"], inc["root_hash"]))
        self.check_tree_head(inc["tree_head"])

        r = tw("audit", "trace", deny["id"], env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        for needle in (child.spiffe_id, "spawned by", parent.spiffe_id, "admin",
                       policy["sha256"], digest, "deny", "verified"):
            self.assertIn(needle, r.stdout, describe(r))
        self.assertNotIn("not verified", r.stdout.lower())
        r = tw("audit", "trace", "evt-" + "ab" * 16, env=env)
        self.assertNotEqual(r.returncode, 0, describe(r))


# 6. Tamper detection: `ledger verify` on data directories, export files and a live server
COLS = "event_id, time, type, instance, agent, principal, resource, action, decision, signer, entry"

def sql(db, *statements):
    con = sqlite3.connect(db, timeout=10)
    try:
        out = [con.execute(s, p).fetchall() for s, p in statements]
        con.commit()
        return out
    finally:
        con.close()

def flip_entry(db, k, at=-2):
    """Flips the low bit of a byte near the end of entry k (the `1` of `"v":1}`)."""
    (((entry,),),) = sql(db, ("SELECT entry FROM ledger_entries WHERE idx=?", (k,)))
    entry = bytearray(entry)
    entry[at] ^= 1
    sql(db, ("UPDATE ledger_entries SET entry=? WHERE idx=?", (bytes(entry), k)))

def swap_rows(db, i, j):
    """Swaps every column but idx between rows i and j."""
    (rows,) = sql(db, (f"SELECT idx, {COLS} FROM ledger_entries WHERE idx IN (?, ?)", (i, j)))
    rows = {r[0]: r[1:] for r in rows}
    sets = ", ".join(f"{c.strip()}=?" for c in COLS.split(","))
    sql(db, ("UPDATE ledger_entries SET event_id='evt-swap' WHERE idx=?", (i,)),
        (f"UPDATE ledger_entries SET {sets} WHERE idx=?", (*rows[i], j)),
        (f"UPDATE ledger_entries SET {sets} WHERE idx=?", (*rows[j], i)))

class TamperTest(LedgerCase):
    K = 7   # an `allow` action in the middle of the ledger

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        a = cls.create_agent(cls.admin, "acme-corp/ops/bookkeeper")
        for _ in range(4):
            r = a.post_events([canonical(a.event()) for _ in range(3)])
            if r.status != 200:
                raise AssertionError(f"seeding failed: {r}")
        cls.admin.post("/v1/ledger/sth")
        cls.server.stop()
        cls.pristine = cls.server.data_dir
        cls.copies = 0

    def copy(self):
        TamperTest.copies += 1
        d = os.path.join(self.tmp, f"copy-{self.copies}")
        shutil.copytree(self.pristine, d)
        return d, os.path.join(d, "trustwarden.db")

    def anchors(self):
        """The auditor's own copies of the trust anchors, kept outside the data directory."""
        return ["--ledger-key", os.path.join(self.pristine, "ledger.pub.pem"),
                "--bundle", os.path.join(self.pristine, "bundle.json")]

    def assert_verify(self, r, bad=None, what=""):
        """bad: None for an intact ledger; the first bad index `ledger verify` must report; or,
        for damage outside the entries, the text that must name it (and no index)."""
        if bad is None:
            self.assertEqual(r.returncode, 0, what + describe(r))
            self.assertIn("ledger intact", r.stdout, describe(r))
            return
        self.assertEqual(r.returncode, 1, what + describe(r))
        if isinstance(bad, str):
            self.assertIn(bad, r.stdout, what + describe(r))
            self.assertNotIn("first bad index", r.stdout, what + describe(r))
        else:
            self.assertRegex(r.stdout, rf"first bad index {bad}\b", what + describe(r))

    def test_6a_data_dir_tampering(self):
        k = self.K
        d, db = self.copy()
        (((type_, decision),),) = sql(db, (
            "SELECT type, decision FROM ledger_entries WHERE idx=?", (k,)))
        self.assertEqual((type_, decision), ("action", "allow"))
        self.assert_verify(tw("ledger", "verify", "--data-dir", d, *self.anchors()), None,
                           "untouched")
        (((head_size, head_time),),) = sql(db, (
            "SELECT tree_size, timestamp FROM ledger_tree_heads WHERE id=(SELECT MAX(id) FROM "
            "ledger_tree_heads)", ()))
        cases = [
            ("flip a byte of entry k", lambda db: flip_entry(db, k), k),
            ("UPDATE decision at k", lambda db: sql(db, (
                "UPDATE ledger_entries SET decision='deny' WHERE idx=?", (k,))), k),
            ("change the leaf hash (0, k)", lambda db: sql(db, (
                "UPDATE ledger_nodes SET hash=? WHERE level=0 AND idx=?", (b"\x42" * 32, k))), k),
            ("DELETE row k", lambda db: sql(db, (
                "DELETE FROM ledger_entries WHERE idx=?", (k,))), k),
            ("swap rows k and k+3", lambda db: swap_rows(db, k + 3, k), k),
            ("change a tree head's root", lambda db: sql(db, (
                "UPDATE ledger_tree_heads SET root=? WHERE id=(SELECT MAX(id) FROM "
                "ledger_tree_heads)", (b"\x13" * 32,))),
             f"the tree head of size {head_size} at {head_time} ms has a bad signature"),
        ]
        for name, tamper, bad in cases:
            with self.subTest(name):
                d, db = self.copy()
                tamper(db)
                self.assert_verify(tw("ledger", "verify", "--data-dir", d, *self.anchors()), bad,
                                   name)

    def test_6b_export_file(self):
        d, _ = self.copy()
        f = os.path.join(self.tmp, "ledger.twl")
        r = tw("ledger", "export", f, "--data-dir", d)
        self.assertEqual(r.returncode, 0, describe(r))
        self.assert_verify(tw("ledger", "verify", "--export", f, *self.anchors()), None, "export")
        with open(f, "rb") as fh:
            data = bytearray(fh.read())
        self.assertEqual(data[:10], b"TWLEDGER1\n")
        pos, flipped = 10, None
        while pos < len(data):
            kind, length = data[pos], int.from_bytes(data[pos + 1:pos + 5], "big")
            body = pos + 5
            if kind == 4 and int.from_bytes(data[body:body + 8], "big") == self.K:
                data[body + length - 2] ^= 1     # inside the stored entry's event bytes
                flipped = self.K
            pos = body + length
        self.assertEqual((pos, flipped), (len(data), self.K), "export record framing")
        write_file(f + ".bad", bytes(data))
        self.assert_verify(tw("ledger", "verify", "--export", f + ".bad", *self.anchors()),
                           self.K, "bad export")

    def test_6c_online_verify_of_a_tampered_running_server(self):
        d, db = self.copy()
        server = harness.Server(os.path.join(self.tmp, "online"), data_dir=d, trust_domain=TD)
        self.addCleanup(server.stop)
        server.start()
        env = cli_env(server, self.admin_token, server.bundle_pem)
        self.assert_verify(tw("ledger", "verify", env=env), None, "online, untouched")
        saved = os.path.join(self.tmp, "auditor-sth.json")
        r = tw("ledger", "sth", "--out", saved, env=env)
        self.assertEqual(r.returncode, 0, describe(r))
        with open(saved) as fh:
            head = json.load(fh)
        self.assertEqual(set(head) >= {"tree_size", "timestamp", "root_hash", "signature"}, True)
        self.assertGreater(head["tree_size"], self.K)
        self.assert_verify(tw("ledger", "verify", "--since", saved, env=env), None,
                           "online, consistent with the saved head")
        flip_entry(db, self.K)
        self.assert_verify(tw("ledger", "verify", env=env), self.K, "online, tampered")

    def test_6d_anchors_never_come_from_the_data_directory(self):
        d, _ = self.copy()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTWARDEN_")}
        with socket.socket() as nobody:   # bound, never listening: connections are refused
            nobody.bind(("127.0.0.1", 0))
            env["TRUSTWARDEN_SERVER"] = f"https://127.0.0.1:{nobody.getsockname()[1]}"
            r = tw("ledger", "verify", "--data-dir", d, env=env)
        self.assertEqual(r.returncode, 1, describe(r))
        self.assertIn("must come from outside the ledger", r.stderr, describe(r))
        # An attacker's ledger key in the data directory is not the auditor's.
        other = os.path.join(self.tmp, "other.pub.pem")
        key = ec.generate_private_key(ec.SECP256R1())
        write_file(other, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        r = tw("ledger", "verify", "--data-dir", d, "--ledger-key", other,
               "--bundle", os.path.join(self.pristine, "bundle.json"))
        self.assert_verify(r, "the export's ledger key is not the trusted ledger key",
                           "another ledger key")

    def test_6e_tails_deleted_with_or_without_their_tree_heads(self):
        d, db = self.copy()
        ((size,),), ((heads,),) = sql(db, ("SELECT COUNT(*) FROM ledger_entries", ()),
                                      ("SELECT COUNT(*) FROM ledger_tree_heads", ()))
        (rows,) = sql(db, ("SELECT tree_size, timestamp, root, signature FROM ledger_tree_heads "
                           "ORDER BY tree_size, timestamp", ()))
        last = rows[-1]
        self.assertEqual(last[0], size, "the seeded ledger ends at a signed tree head")
        saved = os.path.join(self.tmp, "saved-sth.json")
        write_file(saved, json.dumps({"tree_size": last[0], "timestamp": last[1],
                                      "root_hash": b64u(last[2]), "signature": b64u(last[3])}))
        self.assert_verify(tw("ledger", "verify", "--data-dir", d, "--since", saved,
                              *self.anchors()), None, "the saved head")
        # Drop the last entries and the heads covering them: what is left is unsigned.
        cut = size - 2
        d2, db2 = self.copy()
        sql(db2, ("DELETE FROM ledger_entries WHERE idx >= ?", (cut,)),
            ("DELETE FROM ledger_tree_heads WHERE tree_size > ?", (cut,)))
        earlier = [r[0] for r in rows if r[0] <= cut]
        r = tw("ledger", "verify", "--data-dir", d2, *self.anchors())
        self.assert_verify(r, max(earlier) if earlier else 0, "unsigned tail")
        self.assertIn("no signed tree head", r.stdout, describe(r))
        self.assert_verify(tw("ledger", "verify", "--data-dir", d2, "--allow-unsigned-tail",
                              *self.anchors()), None, "unsigned tail allowed")
        r = tw("ledger", "verify", "--data-dir", d2, "--allow-unsigned-tail", "--since", saved,
               *self.anchors())
        self.assert_verify(r, cut, "truncated below the saved head")
        self.assertIn("truncated", r.stdout, describe(r))
        # Cut back to an earlier signed head: consistent with itself, not with the saved one.
        self.assertTrue(earlier and max(earlier) > 0, f"no earlier tree head: {rows}")
        h = max(earlier)
        d3, db3 = self.copy()
        sql(db3, ("DELETE FROM ledger_entries WHERE idx >= ?", (h,)),
            ("DELETE FROM ledger_tree_heads WHERE tree_size > ?", (h,)))
        self.assert_verify(tw("ledger", "verify", "--data-dir", d3, *self.anchors()), None,
                           "self-consistent after the cut")
        self.assert_verify(tw("ledger", "verify", "--data-dir", d3, "--since", saved,
                              *self.anchors()), h, "cut below the saved head")


# 7. Durability: every acknowledged event survives kill -9
class CrashTest(LedgerCase):
    def test_7_acknowledged_events_survive_sigkill(self):
        agents = [self.create_agent(self.admin, f"acme-corp/ops/writer-{i}") for i in range(3)]
        acked, errors, stop = {}, [], threading.Event()

        def writer(agent):
            while not stop.is_set():
                raw = [canonical(agent.event()) for _ in range(random.randint(1, 4))]
                try:
                    r = agent.post_events(raw)
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    continue   # the server is gone: not acknowledged
                if r.status != 200:
                    errors.append(r)
                    return
                for index, ev in zip(r.json["indexes"], raw):
                    acked[index] = ev

        threads = [threading.Thread(target=writer, args=(a,), daemon=True) for a in agents]
        for t in threads:
            t.start()
        time.sleep(2.0)
        self.server.kill9()
        stop.set()
        for t in threads:
            t.join(15)
        self.assertFalse(errors, errors[:3])
        self.assertGreater(len(acked), 20, "too few acknowledged events to mean anything")
        self.server.start()
        type(self).admin = self.server.client(token=self.admin_token)   # a new port
        entries = {e["index"]: e["raw"] for e in self.entries()}
        lost = sorted(i for i in acked if i not in entries)
        self.assertFalse(lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}")
        changed = sorted(i for i, ev in acked.items() if parse_entry(entries[i])["event"] != ev)
        self.assertFalse(changed, f"acknowledged events changed at {changed[:5]}")
        self.server.stop()
        self.assertEqual(sorted(entries), list(range(len(entries))))
        d = self.server.data_dir
        r = tw("ledger", "verify", "--data-dir", d, "--ledger-key",
               os.path.join(d, "ledger.pub.pem"), "--bundle", os.path.join(d, "bundle.json"))
        self.assertEqual(r.returncode, 0, describe(r))
