#!/usr/bin/env bash
# What --metrics costs on the hot path, measured in one run.
#
# Runs two `porter serve --service echo --auth none`, one without metrics
# and one with `--metrics` (the Prometheus exporter installed, every
# counter live), loads each with the SAME `porter bench --json` parameters
# in alternation (off, on, off, on...), takes the median round of each
# side (messages/s and p99 separately) and prints the on/off ratios, then
# scrapes the exporter once to show that it counted.
#
# Flags: --seconds N (per run, default 3), --rounds N (default 3),
#        --pin (servers on CPU 0, the bench on CPU 1, with taskset).
# Only loopback is used. Servers are killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

SECS=3
ROUNDS=3
SERVER_CPU=()
BENCH_CPU=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECS="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --pin) SERVER_CPU=(taskset -c 0); BENCH_CPU=(taskset -c 1) ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

echo "building (release)..." >&2
cargo build --release -q -p porter
PORTER="${CARGO_TARGET_DIR:-target}/release/porter"

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# wait_line FILE PATTERN: waits (at most 20 s) for a line matching PATTERN.
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

# start NAME ARGS...: `porter serve ARGS` on loopback; sets PORT.
start() {
    local name="$1"; shift
    mkdir -p "$TMP/$name"
    "${SERVER_CPU[@]}" "$PORTER" serve --host 127.0.0.1 --port 0 --service echo --auth none \
        --log-file "$TMP/$name/porter.log" --max-per-address 0 --max-startups 1000000 "$@" \
        </dev/null >"$TMP/$name/out" 2>"$TMP/$name/err" &
    PIDS+=("$!")
    wait_line "$TMP/$name/out" "listening on"
    PORT="$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$TMP/$name/out" | head -1)"
}

field() { grep -o "\"$2\":[-0-9.eE+]*" <<<"$1" | head -1 | cut -d: -f2; }
bench() {
    local port="$1"; shift
    "${BENCH_CPU[@]}" "$PORTER" bench --host 127.0.0.1 --port "$port" --json "$@" \
        || echo "porter bench $* reported errors" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A free port for the exporter (it cannot report the one port 0 gave it).
METRICS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)" >&2
start off; OFF=$PORT
start on --metrics "127.0.0.1:$METRICS_PORT"; ON=$PORT

printf '\n%-26s %12s %12s %6s %10s %10s %6s\n' \
    "case (64 B, ${SECS}s, median of $ROUNDS)" "off msg/s" "on msg/s" "ratio" "off p99" "on p99" "ratio"
for case in "1 1" "50 1" "50 16"; do
    set -- $case
    rates_off=() rates_on=() p99s_off=() p99s_on=()
    for round in $(seq "$ROUNDS"); do
        json="$(bench "$OFF" --conns "$1" --pipeline "$2" --size 64 --duration "$SECS")"
        rates_off+=("$(field "$json" messages_per_sec)"); p99s_off+=("$(field "$json" p99_us)")
        json="$(bench "$ON" --conns "$1" --pipeline "$2" --size 64 --duration "$SECS")"
        rates_on+=("$(field "$json" messages_per_sec)"); p99s_on+=("$(field "$json" p99_us)")
    done
    rate_off="$(median "${rates_off[@]}")" rate_on="$(median "${rates_on[@]}")"
    p99_off="$(median "${p99s_off[@]}")" p99_on="$(median "${p99s_on[@]}")"
    printf '%-26s %12.0f %12.0f %6s %8.1fus %8.1fus %6s\n' "conns $1 pipeline $2" \
        "$rate_off" "$rate_on" "$(ratio "$rate_on" "$rate_off")" \
        "$p99_off" "$p99_on" "$(ratio "$p99_on" "$p99_off")"
    echo "  rounds: off msg/s ${rates_off[*]}; on msg/s ${rates_on[*]}; off p99 ${p99s_off[*]}; on p99 ${p99s_on[*]}" >&2
done
echo "ratios are on/off: messages/s near 1.0 and p99 near 1.0 mean metrics cost nothing measurable"
echo
echo "what the exporter counted:"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^porter_(messages|bytes|lines|connections_accepted)' || true
