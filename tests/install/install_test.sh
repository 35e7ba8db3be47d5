#!/usr/bin/env bash
# The SDK as an application outside the repository sees it: `cmake --install` into a
# temporary prefix, examples/ built there with find_package(trustwarden) and incident.cc
# again with pkg-config, then all three programs run against a throwaway server.
# Environment: TW_BUILD_DIR (the build tree), TW_BIN (its trustwarden), TW_CMAKE (optional),
# TW_INSTRUMENTED=1 in sanitizer and fuzzing builds (skipped: exit 77).
set -euo pipefail
: "${TW_BUILD_DIR:?the build directory}" "${TW_BIN:?the trustwarden binary}"
if [ "${TW_INSTRUMENTED:-0}" = 1 ]; then
  echo "skipped: an instrumented libtrustwarden needs the sanitizer runtime in every application"
  exit 77
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmake=${TW_CMAKE:-cmake}
cxx=${CXX:-g++}
# shellcheck source=scripts/lib/throwaway_server.sh
. "$root/scripts/lib/throwaway_server.sh"
tmp=$(mktemp -d)
trap 'tw_server_stop; rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# The public headers must compile without a warning in an application that asks for them.
warnings="-Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers"
# GCC 12 reports false -Wrestrict positives inside libstdc++ string code (GCC bug 105329).
if [[ $("$cxx" --version 2>/dev/null) == *"Free Software Foundation"* ]]; then
  warnings+=" -Wno-restrict"
fi

echo "== cmake --install into a temporary prefix"
"$cmake" --install "$TW_BUILD_DIR" --prefix "$tmp/prefix"
lib=$(find "$tmp/prefix" -name libtrustwarden.so -print -quit)
pcdir=$(find "$tmp/prefix" -name trustwarden.pc -printf '%h\n' -quit)
[ -n "$lib" ] || fail "no libtrustwarden.so under the prefix"
[ -n "$pcdir" ] || fail "no trustwarden.pc under the prefix"
[ -f "$tmp/prefix/include/trustwarden/trustwarden.h" ] || fail "no trustwarden/trustwarden.h"
[ -x "$tmp/prefix/bin/trustwarden" ] || fail "no bin/trustwarden"
[ -f "$tmp/prefix/share/man/man1/trustwarden.1" ] || fail "no man1/trustwarden.1"
[ -f "$tmp/prefix/share/bash-completion/completions/trustwarden" ] || fail "no bash completion"
[ -f "$tmp/prefix/share/zsh/vendor-completions/_trustwarden" ] || fail "no zsh completion"

echo "== the installed CLI finds libtrustwarden on its own"
env -u LD_LIBRARY_PATH "$tmp/prefix/bin/trustwarden" --version

echo "== examples/ with find_package(trustwarden)"
"$cmake" -S "$root/examples" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_CXX_FLAGS="$warnings"
"$cmake" --build "$tmp/build" -j 2

echo "== examples/incident.cc with pkg-config"
pkg=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs trustwarden)
echo "pkg-config --cflags --libs trustwarden: $pkg"
# shellcheck disable=SC2086  # both are lists of options
"$cxx" -std=c++20 $warnings "$root/examples/incident.cc" "$root/examples/incident_story.cc" $pkg \
  -o "$tmp/incident_pkgconfig"

echo "== the README's C++ SDK snippet, as written, against the installed SDK"
# Its placeholders (run_query, prompt) defined around it; built, not run (it calls origins
# that exist only in the story).
{
  echo '#include <string>'
  /usr/bin/python3 "$here/readme_block.py" sdk_cpp | grep '^#include'
  echo 'static std::string run_query(const std::string&, const std::string&) { return "[]"; }'
  echo 'int main() {'
  echo '  const std::string prompt = "reconcile today";'
  /usr/bin/python3 "$here/readme_block.py" sdk_cpp | grep -v '^#include'
  echo '}'
} >"$tmp/readme_sdk.cc"
# shellcheck disable=SC2086  # both are lists of options
"$cxx" -std=c++20 $warnings "$tmp/readme_sdk.cc" $pkg -o "$tmp/readme_sdk" ||
  fail "the README's C++ snippet does not build"

echo "== the examples against a throwaway server"
tw_server_start "$TW_BIN" "$tmp/server"
# No LD_LIBRARY_PATH: both builds find the library through their rpath (the CMake
# package sets the build tree's; trustwarden.pc adds -Wl,-rpath).
unset LD_LIBRARY_PATH
# Runs an incident build: it must exit 0 and its last line say the story went as expected.
incident() {
  local name=$1 status=0
  "$tmp/$name" >"$tmp/$name.out" || status=$?
  cat "$tmp/$name.out"
  [ "$status" = 0 ] || fail "$name exited with $status"
  [ "$(tail -n 1 "$tmp/$name.out")" = "The story went as expected." ] ||
    fail "$name did not end with \"The story went as expected.\""
}
incident build/incident
incident incident_pkgconfig
"$tmp/build/mtls_pair" || fail "examples/mtls_pair exited with $?"
echo "PASS"
