# shellcheck shell=bash
# A throwaway `trustwarden server` for scripts and tests; source it from bash.
#   tw_server_start BIN DIR  serves from DIR/data on a free loopback port (logs in
#                            DIR/server.out and DIR/server.err), waits until it answers, and
#                            exports TRUSTWARDEN_SERVER, TRUSTWARDEN_TOKEN (the admin token),
#                            TRUSTWARDEN_BUNDLE and TRUSTWARDEN_SPOOL (DIR/spool)
#   tw_server_stop           stops it by its PID and waits for it; safe to call twice
# The caller owns DIR (e.g. from mktemp -d) and calls tw_server_stop from its EXIT trap.

TW_SERVER_PID=""

tw_server_start() {
  local bin=$1 dir=$2
  local data="$dir/data" port i
  mkdir -p "$dir"
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" server --data-dir "$data" --listen "127.0.0.1:$port" --log-level warn \
    >"$dir/server.out" 2>"$dir/server.err" &
  TW_SERVER_PID=$!
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$TW_SERVER_PID" 2>/dev/null; then
      wait "$TW_SERVER_PID" 2>/dev/null || true
      TW_SERVER_PID=""
      echo "throwaway server: exited before it was ready" >&2
      cat "$dir/server.out" "$dir/server.err" >&2
      return 1
    fi
    # Ready once its files exist and it serves GET /v1/bundle over TLS.
    if [ -s "$data/admin.token" ] && [ -s "$data/bundle.pem" ] &&
      TRUSTWARDEN_TOKEN="" "$bin" bundle show --server "https://127.0.0.1:$port" \
        --bundle "$data/bundle.pem" >/dev/null 2>&1; then
      export TRUSTWARDEN_SERVER="https://127.0.0.1:$port"
      TRUSTWARDEN_TOKEN=$(<"$data/admin.token")
      export TRUSTWARDEN_TOKEN
      export TRUSTWARDEN_BUNDLE="$data/bundle.pem"
      export TRUSTWARDEN_SPOOL="$dir/spool"
      return 0
    fi
    sleep 0.1
  done
  echo "throwaway server: not ready after 30 s" >&2
  cat "$dir/server.out" "$dir/server.err" >&2
  tw_server_stop
  return 1
}

tw_server_stop() {
  local pid=${TW_SERVER_PID:-} i
  [ -n "$pid" ] || return 0
  TW_SERVER_PID=""
  kill "$pid" 2>/dev/null || true
  # SIGTERM stops it cleanly; after 10 s, SIGKILL.
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
