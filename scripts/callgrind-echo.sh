#!/usr/bin/env bash
# User-space instructions per echoed message of a porter server, counted by
# callgrind (repeatable whatever else the machine does, unlike wall time).
#
# Runs the server under callgrind twice, loaded by `porter bench --conns 50
# --pipeline 16` (or BENCH_ARGS) with FEW and then MANY messages, and prints
# (total(MANY) - total(FEW)) / (MANY - FEW): the fixed costs (start, the
# handshakes, shutdown) cancel out.
#
# Usage: scripts/callgrind-echo.sh [PORTER_BIN] [FEW] [MANY]
#   PORTER_BIN defaults to target/release/porter (build it first); the bench
#   is always target/release/porter, so two servers are compared with the
#   same load generator.
#   BENCH_ARGS replaces the load, "--conns 50 --pipeline 16" by default
#   (BENCH_ARGS="--conns 50 --pipeline 1" for one request in flight).
#   SERVE_ARGS adds options to `porter serve`, such as
#   SERVE_ARGS="--metrics 127.0.0.1:9464" to count the cost of metrics, or
#   SERVE_ARGS="--tls" (the bench then trusts the server on first use).
#   PORTER_BIN may also be the baseline, target/release/examples/baseline_echo
#   (with SERVE_ARGS="--tls" for the TLS baseline): it is loaded with
#   `porter bench --raw`.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER="${1:-target/release/porter}"
FEW="${2:-20000}"
MANY="${3:-60000}"
BENCH=target/release/porter
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 2; }

total() {
    local messages="$1" dir port
    dir="$(mktemp -d)"
    local raw=() trust=()
    if [[ "$(basename "$SERVER")" == baseline_echo* ]]; then
        raw=(--raw)
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$SERVER" --port 0 \
            ${SERVE_ARGS:-} </dev/null >"$dir/out" 2>"$dir/err" &
    else
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$SERVER" serve \
            --service echo --auth none --host 127.0.0.1 --port 0 --log-file "$dir/log" \
            --data-dir "$dir" ${SERVE_ARGS:-} </dev/null >"$dir/out" 2>"$dir/err" &
    fi
    [[ " ${SERVE_ARGS:-} " == *" --tls "* ]] && trust=(--trust-on-first-use)
    local pid=$!
    for _ in $(seq 1 300); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
    port="$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$dir/out" | head -1)"
    XDG_STATE_HOME="$dir/state" "$BENCH" bench --host 127.0.0.1 --port "$port" ${BENCH_ARGS:---conns 50 --pipeline 16} \
        --messages "$messages" --json "${raw[@]}" "${trust[@]}" >"$dir/bench.json" 2>"$dir/bench.err"
    kill -TERM "$pid"; wait "$pid" || true
    callgrind_annotate "$dir/cg.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
    rm -rf "$dir"
}

few="$(total "$FEW")"
many="$(total "$MANY")"
echo "instructions per echoed message: $(( (many - few) / (MANY - FEW) ))"
