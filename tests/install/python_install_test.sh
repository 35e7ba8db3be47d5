#!/usr/bin/env bash
# The Python SDK as a user installs it: the wheel of the build (build/python/dist) installed
# offline with `pip install --no-index` into a fresh virtual environment of the interpreter
# it was built for, imported from there (not from the build tree), and both Python examples
# run against a throwaway server from a directory outside the repository.
# Environment: TW_PYTHON (the interpreter), TW_WHEEL (the wheel), TW_BIN (trustwarden).
set -euo pipefail
: "${TW_PYTHON:?the interpreter}" "${TW_WHEEL:?the wheel}" "${TW_BIN:?the trustwarden binary}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/lib/throwaway_server.sh
. "$root/scripts/lib/throwaway_server.sh"
tmp=$(mktemp -d)
trap 'tw_server_stop; rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
unset PYTHONPATH

echo "== pip install --no-index $(basename "$TW_WHEEL") into a new venv of $TW_PYTHON"
"$TW_PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$TW_WHEEL"
cd "$tmp"
where=$("$tmp/venv/bin/python" -c 'import trustwarden; print(trustwarden.__file__)')
[[ $where == "$tmp/venv/"* ]] || fail "trustwarden imported from $where, not the venv"
"$tmp/venv/bin/python" - <<'PY' || fail "the installed package is incomplete"
import importlib.resources, inspect, trustwarden
files = {p.name for p in importlib.resources.files("trustwarden").iterdir()}
assert {"py.typed", "_native.pyi"} <= files, files
assert "TRUSTWARDEN_ORG" in inspect.getdoc(trustwarden.AgentIdentity.create)
PY

echo "== the examples, from the installed package"
tw_server_start "$TW_BIN" "$tmp/server"
export TRUSTWARDEN_BUNDLE="$tmp/server/data/bundle.json"  # the JWT keys too
"$tmp/venv/bin/python" "$root/examples/python/incident.py" >"$tmp/incident.out" ||
  { cat "$tmp/incident.out"; fail "incident.py"; }
grep -q "blocked: the identity is revoked" "$tmp/incident.out" || fail "incident.py: not blocked"
grep -q "inclusion proof verified" "$tmp/incident.out" || fail "incident.py: no verified trace"
"$tmp/venv/bin/python" "$root/examples/python/mtls_asyncio.py" >"$tmp/mtls.out" ||
  { cat "$tmp/mtls.out"; fail "mtls_asyncio.py"; }
grep -q "refused:" "$tmp/mtls.out" || fail "mtls_asyncio.py: the revoked agent was not refused"
cat "$tmp/incident.out" "$tmp/mtls.out"

echo "== the README's Python SDK snippet, as written (its placeholders defined before it)"
{
  echo 'payload, prompt = "INSERT INTO ledger ...", "post today'"'"'s entries"'
  echo 'def run_query(resource, payload): return {"rows": 1}'
  /usr/bin/python3 "$here/readme_block.py" sdk_python
} >"$tmp/readme_sdk.py"
"$tmp/venv/bin/python" "$tmp/readme_sdk.py" || fail "the README's Python snippet"
echo "ok"
