#!/usr/bin/env bash
# User-space instructions per echoed message of `porter bench` itself
# (the load generator, not the server), counted by callgrind: the bench
# must stay cheaper than the server it measures (issue 15).
#
# Runs the bare baseline (crates/server/examples/baseline_echo.rs) natively
# and the bench under callgrind with FEW and then MANY messages
# (`--raw --conns 50 --pipeline 16` unless BENCH_ARGS says otherwise), and
# prints (total(MANY) - total(FEW)) / (MANY - FEW): the fixed costs (start,
# connecting, the report) cancel out.
#
# Usage: scripts/callgrind-bench.sh [PORTER_BIN] [FEW] [MANY]
#   PORTER_BIN defaults to target/release/porter (build it first).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${1:-target/release/porter}"
FEW="${2:-200000}"
MANY="${3:-600000}"
BASELINE=target/release/examples/baseline_echo
ARGS=(${BENCH_ARGS:---conns 50 --pipeline 16})
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 2; }

dir="$(mktemp -d)"
"$BASELINE" --port 0 </dev/null >"$dir/base.out" 2>&1 &
base=$!
trap 'kill $base 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$dir/base.out" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$dir/base.out" | head -1)"

total() {
    local messages="$1"
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.$messages" "$BENCH" bench \
        --raw --host 127.0.0.1 --port "$port" "${ARGS[@]}" --messages "$messages" --json \
        >"$dir/bench.$messages.json" 2>"$dir/valgrind.$messages.err"
    callgrind_annotate "$dir/cg.$messages" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

few="$(total "$FEW")"
many="$(total "$MANY")"
echo "bench instructions per echoed message: $(( (many - few) / (MANY - FEW) ))"
if [ -n "${KEEP:-}" ]; then cp "$dir/cg.$MANY" "$KEEP"; echo "callgrind output kept in $KEEP"; fi
