#!/usr/bin/env bash
# Two Porter instances sharing one chat room, end to end on loopback: the
# accounts in PostgreSQL, the room on NATS JetStream.
#
#   scripts/cluster-demo.sh
#
# It uses the PostgreSQL on 127.0.0.1:5432 (trust auth for the local user,
# as Debian's `postgresql` package sets up for `postgres`) and the NATS on
# 127.0.0.1:4222 when they answer; otherwise it starts a private
# `nats-server -js` (Debian package `nats-server`) on a free port. It makes
# a database of its own (porter_demo_PID), starts two `porter serve`
# instances on free ports, registers ada through the first and bob through
# the second, has them talk across the instances, and shows that a line
# said through one is heard through the other with the same seq. Everything
# it started or created is removed on exit.
#
# Environment: PG_URL (default postgres://postgres@127.0.0.1:5432),
# NATS_URL (default nats://127.0.0.1:4222), PORTER (default: builds and
# uses target/release/porter).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
if [ -z "${PORTER:-}" ]; then
    echo "building porter (release)..." >&2
    cargo build --release -q -p porter
    PORTER="${CARGO_TARGET_DIR:-target}/release/porter"
fi

TMP="$(mktemp -d)"
DB="porter_demo_$$"
PREFIX="demo_$$"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    delete_stream || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# Deletes the demo's JetStream stream through NATS's own protocol (no
# client tool needed): a request on the JetStream API subject.
delete_stream() {
    local hp="${NATS_URL#nats://}"
    exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
    printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.%s_room 0\r\n\r\nPING\r\n' "$PREFIX" >&3
    timeout 3 grep -q -m1 PONG <&3 || true
    exec 3>&-
}

wait_line() {
    local file="$1" pattern="$2" i
    for i in $(seq 200); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file:" >&2
    cat "$file" >&2
    return 1
}

# NATS with JetStream: the one running, or a private one.
nats_host_port="${NATS_URL#nats://}"
if ! timeout 3 bash -c "exec 3<>/dev/tcp/${nats_host_port%:*}/${nats_host_port##*:} && head -c 4 <&3" 2>/dev/null | grep -q INFO; then
    command -v nats-server >/dev/null || { echo "no NATS at $NATS_URL and no nats-server (apt-get install nats-server)" >&2; exit 1; }
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$TMP/nats" >"$TMP/nats.log" 2>&1 &
    PIDS+=($!)
    NATS_URL="nats://127.0.0.1:$port"
    wait_line "$TMP/nats.log" "Server is ready"
fi
echo "NATS:       $NATS_URL (JetStream stream ${PREFIX}_room)"

# PostgreSQL: a database of our own.
psql "$PG_URL/postgres" -q -c "CREATE DATABASE $DB" >/dev/null
DB_URL="$PG_URL/$DB"
echo "PostgreSQL: $DB_URL"

# start NAME: an instance; sets PORT (not in a subshell, so that its pid
# is remembered and it is stopped on exit).
start() {
    local name="$1"
    mkdir -p "$TMP/$name"
    "$PORTER" serve --host 127.0.0.1 --port 0 --service chat --auth password \
        --db "$DB_URL" --bus "$NATS_URL" --bus-prefix "$PREFIX" \
        --log-file "$TMP/$name/porter.log" </dev/null >"$TMP/$name/out" 2>&1 &
    PIDS+=($!)
    wait_line "$TMP/$name/out" "listening on"
    PORT="$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$TMP/$name/out" | head -1)"
}
start one; PORT1=$PORT
start two; PORT2=$PORT
echo "instances:  127.0.0.1:$PORT1 and 127.0.0.1:$PORT2"

# Each person's client keeps its own cookie jar.
talk() {
    local user="$1" port="$2"
    XDG_STATE_HOME="$TMP/state-$user" PORTER_USER="$user" PORTER_PASSWORD="demo password $user" \
        "$PORTER" connect --host 127.0.0.1 --port "$port"
}

# bob listens on instance two while ada speaks on instance one.
{ sleep 2; echo "bob is here"; sleep 3; } | talk bob "$PORT2" >"$TMP/bob.out" 2>"$TMP/bob.err" &
BOB=$!
wait_line "$TMP/two/porter.log" "joined chat" || { cat "$TMP/bob.err" >&2; exit 1; }
{ printf 'hello from instance one\nare you there, bob?\n'; sleep 2; } | talk ada "$PORT1" >"$TMP/ada.out" 2>"$TMP/ada.err" || true
wait "$BOB" || true

echo
echo "bob (on instance two) heard:"
sed 's/^/  /' "$TMP/bob.out"
echo "ada (on instance one) heard:"
sed 's/^/  /' "$TMP/ada.out"
if grep -q "ada: hello from instance one" "$TMP/bob.out"; then
    echo
    echo "OK: a line said through one instance reached a client of the other"
else
    echo "FAILED: bob did not hear ada" >&2
    cat "$TMP/bob.err" "$TMP/ada.err" >&2
    exit 1
fi
