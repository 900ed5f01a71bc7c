#!/usr/bin/env bash
# Porter against the ceiling of its wire format, measured in one run.
#
# Runs `porter serve --service echo --auth none` and the bare baseline
# (crates/server/examples/baseline_echo.rs) side by side, loads each with the
# SAME `porter bench --json` parameters, in pairs of runs back to back
# (baseline then porter, then porter then baseline, and so on), and judges
# the median over the rounds of each pair's ratio (messages/s and p99
# separately) against the targets of issue 15, in every case, with PASS or
# MISS:
#   messages/s  porter / baseline  >= 0.95
#   p99 latency porter / baseline  <= 1.1
# Timings on a shared machine drift, by a factor of two within a minute
# here; the ratio of two runs seconds apart drifts far less. The table
# also shows each side's median figures, for orientation.
#
# Optional sections:
#   --memory   10,000 idle connections past the handshake: server RSS growth
#              per connection (target <= 10 KiB), baseline alongside
#   --chat     100 chat clients all sending: deliveries/s of Porter's chat
#              room against the bare broadcast fan-out
#              (crates/server/examples/baseline_chat.rs, driven by
#              `porter bench --raw --service chat`), target >= 0.8
#   --logins   --auth password: logins/s, resumes/s, and server CPU per login
#              vs per resume (target ratio >= 100)
#   --tls      `porter serve --tls` against the TLS baseline (`baseline_echo
#              --tls`: bare tokio-rustls) at (50, 16) and (50, 1), targets
#              >= 0.9 messages/s and <= 1.2 p99 (in pairs, as above); what
#              TLS costs against plain Porter (each TLS run against a plain
#              run right after it); and RSS per idle TLS connection
#              (target <= 40 KiB)
#   --all      all of the above
# Other flags: --seconds N (per run, default 3), --rounds N (default 3),
#              --idle N (connections for --memory, default 10000),
#              --pin (servers on CPU 0, the bench on CPU 1, with taskset:
#              both sides alike, so the bench and the server stop competing
#              for the same core and the rounds spread less).
#
# Every run passes --server-pid, so each row also shows the CPU each side
# used (% of one core, medians: bench/server) and which was the limit. A
# pair in which either run was bench-bound (the bench at >= 95% of a core,
# the server below 90%) measured the bench, not the servers: its ratios are
# left out of the medians, and said so. A case where that is so of half
# the pairs or more is marked BENCH-BOUND instead of PASS or MISS.
#
# Only loopback is used. Servers are killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

SECS=3
ROUNDS=3
IDLE=10000
MEMORY=0
PIN=0
SERVER_CPU=()
BENCH_CPU=()
CHAT=0
LOGINS=0
TLS=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECS="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --idle) IDLE="$2"; shift ;;
        --memory) MEMORY=1 ;;
        --chat) CHAT=1 ;;
        --logins) LOGINS=1 ;;
        --tls) TLS=1 ;;
        --pin) PIN=1 ;;
        --all) MEMORY=1; CHAT=1; LOGINS=1; TLS=1 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$PIN" = 1 ]; then
    if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
        echo "--pin needs taskset and 2 CPUs" >&2
        exit 2
    fi
    SERVER_CPU=(taskset -c 0)
    BENCH_CPU=(taskset -c 1)
fi

echo "building (release)..." >&2
cargo build --release -q -p porter -p porter-server --bins --examples
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PORTER="$TARGET_DIR/release/porter"
BASELINE="$TARGET_DIR/release/examples/baseline_echo"
BASELINE_CHAT="$TARGET_DIR/release/examples/baseline_chat"

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
        if grep -q "$pattern" "$file" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file:" >&2
    cat "$file" >&2
    return 1
}

# port_of FILE: the port in a "...listening on ADDR" line.
port_of() {
    sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$1" | head -1
}

# start_porter NAME ARGS...: starts `porter serve ARGS` on loopback; sets
# PORT and PID. The load comes from one address, opening connections in
# bursts: the per-address cap and the handshake cap (defences against one
# attacker) are lifted, as the connection cap is for --memory.
start_porter() {
    local name="$1"; shift
    mkdir -p "$TMP/$name"
    "${SERVER_CPU[@]}" "$PORTER" serve --host 127.0.0.1 --port 0 --log-file "$TMP/$name/porter.log" \
        --max-per-address 0 --max-startups 1000000 --max-sessions-per-user 0 "$@" \
        </dev/null >"$TMP/$name/out" 2>"$TMP/$name/err" &
    PID=$!
    PIDS+=("$PID")
    wait_line "$TMP/$name/out" "listening on"
    PORT="$(port_of "$TMP/$name/out")"
}

# start_baseline NAME [--tls]: starts the baseline on loopback; sets PORT
# and PID. BASELINE_BIN picks another baseline (the chat one).
start_baseline() {
    local name="$1"; shift
    mkdir -p "$TMP/$name"
    "${SERVER_CPU[@]}" "${BASELINE_BIN:-$BASELINE}" --port 0 "$@" </dev/null >"$TMP/$name/out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    wait_line "$TMP/$name/out" "listening on"
    PORT="$(port_of "$TMP/$name/out")"
}

# fingerprint_of FILE: the SHA256:... fingerprint a server printed.
fingerprint_of() {
    grep -o 'SHA256:[A-Za-z0-9+/]*' "$1" | head -1
}

# The bench trusts TLS servers by the fingerprint they printed; its
# known_servers stay in the scratch directory.
export XDG_STATE_HOME="$TMP/state"

# field JSON NAME: a number from the bench's one-line JSON report.
field() {
    grep -o "\"$2\":[-0-9.eE+]*" <<<"$1" | head -1 | cut -d: -f2
}

# bench PORT ARGS...: one `porter bench --json` run; prints its JSON.
bench() {
    local port="$1"; shift
    # Errors during a run make the bench exit non-zero; they are in the
    # JSON (and reported below), so the script goes on.
    "${BENCH_CPU[@]}" "$PORTER" bench --host 127.0.0.1 --port "$port" --json "$@" || echo "porter bench $* reported errors" >&2
}

# take SIDE JSON: appends a run's figures to the SIDE_rates, SIDE_p99s,
# SIDE_bench, SIDE_server and SIDE_bounds arrays (RATE_FIELD names the rate:
# messages_per_sec unless set).
take() {
    local -n rates="$1_rates" p99s="$1_p99s" bcpu="$1_bench" scpu="$1_server" bounds="$1_bounds"
    rates+=("$(field "$2" "${RATE_FIELD:-messages_per_sec}")")
    p99s+=("$(field "$2" p99_us)")
    bcpu+=("$(field "$2" bench_percent)")
    scpu+=("$(field "$2" server_percent)")
    bounds+=("$(grep -o '"bound":"[a-z]*"' <<<"$2" | head -1 | cut -d'"' -f4)")
}
# reset SIDE...: empties those arrays, and the pairs' ratios of the case
# before.
reset() {
    local side
    for side in "$@"; do
        eval "${side}_rates=() ${side}_p99s=() ${side}_bench=() ${side}_server=() ${side}_bounds=()"
    done
    rate_pairs=() p99_pairs=() kept_bounds=() DROPPED=0
}
# cpu_of SIDE: "bench/server" median CPU % of that side's runs.
cpu_of() {
    local -n bcpu="$1_bench" scpu="$1_server"
    printf '%.0f/%.0f' "$(median "${bcpu[@]}")" "$(median "${scpu[@]}")"
}
# limit_of: bench-bound if half the pairs or more were dropped as
# bench-bound, server-bound if both runs of every other pair were,
# otherwise neither; with how many pairs were dropped.
limit_of() {
    local label
    if [ $((DROPPED * 2)) -ge "$ROUNDS" ]; then label=bench-bound
    elif ! printf '%s\n' "${kept_bounds[@]}" | grep -vqx server; then label=server-bound
    else label=neither; fi
    [ "$DROPPED" = 0 ] || label="$label ($DROPPED of $ROUNDS pairs dropped: bench-bound)"
    echo "$label"
}

# paired RUN_A RUN_B ROUND: one run of each side, back to back, the order
# swapped every other round (A B, B A, A B...), so that a machine getting
# slower or faster during a round does not always favour the same side.
paired() {
    if [ $(($3 % 2)) = 1 ]; then "$1"; "$2"; else "$2"; "$1"; fi
}
# pair BASE_SIDE PORTER_SIDE: appends the ratios of the round just run (the
# last figures of each side) to rate_pairs and p99_pairs. The verdict is
# the median of these per-round ratios: each compares two runs taken
# seconds apart, so the load the machine was under at the time cancels,
# which a ratio of the two sides' medians (runs a minute apart) does not.
pair() {
    local -n brates="$1_rates" prates="$2_rates" bp99s="$1_p99s" pp99s="$2_p99s"
    local -n bbounds="$1_bounds" pbounds="$2_bounds"
    if [ "${bbounds[-1]}" = bench ] || [ "${pbounds[-1]}" = bench ]; then
        DROPPED=$((DROPPED + 1))
        return
    fi
    kept_bounds+=("${bbounds[-1]}" "${pbounds[-1]}")
    rate_pairs+=("$(ratio "${prates[-1]}" "${brates[-1]}")")
    p99_pairs+=("$(ratio "${pp99s[-1]}" "${bp99s[-1]}")")
}

# judge RATE_TARGET [P99_TARGET]: the verdict on the case just run, from its
# pairs: sets rate_ratio, p99_ratio, rate_verdict, p99_verdict and limit,
# and counts the misses, or the case as bench-bound. Without P99_TARGET
# only messages/s is judged.
judge() {
    rate_ratio="$(median "${rate_pairs[@]}")" p99_ratio="$(median "${p99_pairs[@]}")"
    rate_verdict="$(verdict "$rate_ratio" "$1" '>=')" p99_verdict=""
    [ -z "${2:-}" ] || p99_verdict="$(verdict "$p99_ratio" "$2" '<=')"
    limit="$(limit_of)"
    if [[ "$limit" == bench-bound* ]]; then
        rate_verdict=BENCH-BOUND
        [ -z "${2:-}" ] || p99_verdict=BENCH-BOUND
        BOUND=$((BOUND + 1))
        return
    fi
    [ "$rate_verdict" = PASS ] || MISSES=$((MISSES + 1))
    [ -z "${2:-}" ] || [ "$p99_verdict" = PASS ] || MISSES=$((MISSES + 1))
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN {
    if (r == "n/a") print "?"; else if ((op == ">=" && r >= t) || (op == "<=" && r <= t)) print "PASS"; else print "MISS" }'; }
# median NUMBERS...: the middle value (the mean of the two middle ones for an
# even count). The median rather than the best round: one lucky or unlucky
# round on a shared machine moves it least.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)" >&2

# ---------------------------------------------------------------- ratios
start_baseline baseline; BASE_PORT=$PORT; BASE_PID=$PID
start_porter echo --service echo --auth none; PORTER_PORT=$PORT; PORTER_PID=$PID

printf '\n%-26s %12s %12s %9s %10s %10s %7s %-5s %9s %9s %s\n' \
    "case (64 B, ${SECS}s, $ROUNDS pairs)" "base msg/s" "porter msg/s" "ratio" "base p99" "porter p99" "ratio" "" \
    "base cpu" "port cpu" "limit"
MISSES=0
BOUND=0
for case in "1 1" "50 1" "50 16"; do
    set -- $case
    conns=$1 pipeline=$2
    reset base porter
    for round in $(seq "$ROUNDS"); do
        run_base() { take base "$(bench "$BASE_PORT" --raw --server-pid "$BASE_PID" --conns "$conns" --pipeline "$pipeline" --size 64 --duration "$SECS")"; }
        run_porter() { take porter "$(bench "$PORTER_PORT" --server-pid "$PORTER_PID" --conns "$conns" --pipeline "$pipeline" --size 64 --duration "$SECS")"; }
        paired run_base run_porter "$round"
        pair base porter
    done
    rate_base="$(median "${base_rates[@]}")" rate_porter="$(median "${porter_rates[@]}")"
    p99_base="$(median "${base_p99s[@]}")" p99_porter="$(median "${porter_p99s[@]}")"
    judge 0.95 1.1
    printf '%-26s %12.0f %12.0f %5s %-4s %8.1fus %8.1fus %5s %-4s %9s %9s %s\n' \
        "conns $conns pipeline $pipeline" "$rate_base" "$rate_porter" \
        "$rate_ratio" "$rate_verdict" "$p99_base" "$p99_porter" "$p99_ratio" "$p99_verdict" \
        "$(cpu_of base)" "$(cpu_of porter)" "$limit"
    echo "  rounds: base msg/s ${base_rates[*]}; porter msg/s ${porter_rates[*]}; base p99 ${base_p99s[*]}; porter p99 ${porter_p99s[*]}" >&2
    echo "  ratios per round: msg/s ${rate_pairs[*]}; p99 ${p99_pairs[*]}" >&2
    echo "  cpu % bench/server: base ${base_bench[*]} / ${base_server[*]}; porter ${porter_bench[*]} / ${porter_server[*]}; limits: base ${base_bounds[*]}; porter ${porter_bounds[*]}" >&2
done
echo "targets: messages/s ratio >= 0.95, p99 ratio <= 1.1; cpu: median % of one core, bench/server"

# ---------------------------------------------------------------- memory
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# idle_growth NAME SERVER_PID PORT [--raw]: KiB of server RSS per idle
# connection held by `porter bench --idle`.
idle_growth() {
    local name="$1" pid="$2" port="$3"; shift 3
    local before after ready bench_pid
    before="$(rss_kib "$pid")"
    "$PORTER" bench --host 127.0.0.1 --port "$port" --idle "$IDLE" "$@" \
        </dev/null >"$TMP/$name.idle" 2>&1 &
    bench_pid=$!
    PIDS+=("$bench_pid")
    wait_line "$TMP/$name.idle" "idle: [0-9]* connections ready"
    # Let the server finish its side of the last handshakes.
    sleep 1
    after="$(rss_kib "$pid")"
    ready="$(sed -n 's/^idle: \([0-9]*\) connections ready/\1/p' "$TMP/$name.idle")"
    kill -INT "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
    GROWTH="$(awk -v a="$before" -v b="$after" -v n="$ready" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "n/a" }')"
    printf '%-10s %6s conns: RSS %8s KiB -> %8s KiB: %6s KiB per connection\n' "$name" "$ready" "$before" "$after" "$GROWTH"
    grep -v "connections ready" "$TMP/$name.idle" >&2 || true
}

if [ "$MEMORY" = 1 ]; then
    echo
    echo "memory: $IDLE idle connections past the handshake (target <= 10 KiB each)"
    # Both ends need a descriptor per connection: raise the limit for this
    # script and its children only, never in the server itself.
    want=$((IDLE * 2 + 1000))
    if [ "$(ulimit -n)" -lt "$want" ]; then
        ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
    fi
    echo "open files limit: $(ulimit -n)"
    start_porter memory --service echo --auth none --max-connections $((IDLE + 100))
    idle_growth porter "$PID" "$PORT"
    memory_verdict="$(verdict "$GROWTH" 10 '<=')"
    [ "$memory_verdict" = PASS ] || MISSES=$((MISSES + 1))
    echo "porter: $GROWTH KiB per idle connection (target <= 10): $memory_verdict"
    start_baseline memory-base
    idle_growth baseline "$PID" "$PORT" --raw
fi

# ---------------------------------------------------------------- TLS
if [ "$TLS" = 1 ]; then
    echo
    echo "TLS: porter serve --tls against the bare tokio-rustls baseline, and against plain porter"
    start_baseline tls-base --tls; TLS_BASE_PORT=$PORT; TLS_BASE_PID=$PID
    TLS_BASE_FP="$(fingerprint_of "$TMP/tls-base/out")"
    start_porter tls --service echo --auth none --tls --data-dir "$TMP/tls"; TLS_PORT=$PORT; TLS_PID=$PID
    TLS_FP="$(fingerprint_of "$TMP/tls/out")"
    printf '\n%-26s %12s %12s %9s %10s %10s %7s %14s %s\n' \
        "case (64 B, ${SECS}s, $ROUNDS pairs)" "tls-base/s" "porter-tls/s" "ratio" "base p99" "porter p99" "ratio" "tls/plain msg/s" "limit"
    for case in "50 16" "50 1"; do
        set -- $case
        conns=$1 pipeline=$2
        reset tbase tporter tplain
        plain_pairs=()
        for round in $(seq "$ROUNDS"); do
            run_base() { take tbase "$(bench "$TLS_BASE_PORT" --raw --fingerprint "$TLS_BASE_FP" --server-pid "$TLS_BASE_PID" --conns "$conns" --pipeline "$pipeline" --size 64 --duration "$SECS")"; }
            run_porter() { take tporter "$(bench "$TLS_PORT" --fingerprint "$TLS_FP" --server-pid "$TLS_PID" --conns "$conns" --pipeline "$pipeline" --size 64 --duration "$SECS")"; }
            paired run_base run_porter "$round"
            pair tbase tporter
            # Plain Porter right after: what TLS costs it.
            take tplain "$(bench "$PORTER_PORT" --server-pid "$PORTER_PID" --conns "$conns" --pipeline "$pipeline" --size 64 --duration "$SECS")"
            plain_pairs+=("$(ratio "${tporter_rates[-1]}" "${tplain_rates[-1]}")")
        done
        rate_base="$(median "${tbase_rates[@]}")" rate_tls="$(median "${tporter_rates[@]}")"
        p99_base="$(median "${tbase_p99s[@]}")" p99_tls="$(median "${tporter_p99s[@]}")"
        cost_ratio="$(median "${plain_pairs[@]}")"
        judge 0.9 1.2
        printf '%-26s %12.0f %12.0f %5s %-4s %8.1fus %8.1fus %5s %-4s %8s %s\n' \
            "conns $conns pipeline $pipeline" "$rate_base" "$rate_tls" "$rate_ratio" "$rate_verdict" \
            "$p99_base" "$p99_tls" "$p99_ratio" "$p99_verdict" "$cost_ratio" "$limit"
        echo "  rounds: tls-base msg/s ${tbase_rates[*]}; porter-tls msg/s ${tporter_rates[*]}; porter plain msg/s ${tplain_rates[*]}; tls-base p99 ${tbase_p99s[*]}; porter-tls p99 ${tporter_p99s[*]}" >&2
        echo "  ratios per round: msg/s ${rate_pairs[*]}; p99 ${p99_pairs[*]}; tls/plain ${plain_pairs[*]}" >&2
    done
    echo "targets: porter-tls/tls-base messages/s >= 0.9, p99 <= 1.2; tls/plain is what TLS costs Porter"

    TLS_IDLE=$((IDLE < 5000 ? IDLE : 5000))
    want=$((TLS_IDLE * 2 + 1000))
    if [ "$(ulimit -n)" -lt "$want" ]; then
        ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
    fi
    echo "memory: $TLS_IDLE idle TLS connections past the handshake (target <= 40 KiB each)"
    start_porter tls-memory --service echo --auth none --tls --data-dir "$TMP/tls" --max-connections $((TLS_IDLE + 100))
    IDLE_SAVED=$IDLE; IDLE=$TLS_IDLE
    idle_growth porter-tls "$PID" "$PORT" --fingerprint "$TLS_FP"
    tls_memory_verdict="$(verdict "$GROWTH" 40 '<=')"
    [ "$tls_memory_verdict" = PASS ] || MISSES=$((MISSES + 1))
    echo "porter-tls: $GROWTH KiB per idle TLS connection (target <= 40): $tls_memory_verdict"
    start_baseline tls-memory-base --tls
    idle_growth tls-base "$PID" "$PORT" --raw --fingerprint "$(fingerprint_of "$TMP/tls-memory-base/out")"
    IDLE=$IDLE_SAVED
fi

# ---------------------------------------------------------------- chat
if [ "$CHAT" = 1 ]; then
    echo
    echo "chat: 100 clients all sending, 64 B lines, ${SECS}s, $ROUNDS pairs: porter against the broadcast baseline (target >= 0.8)"
    start_porter chat --service chat --auth none; CHAT_PORT=$PORT; CHAT_PID=$PID
    BASELINE_BIN="$BASELINE_CHAT" start_baseline chat-base --participants 100
    CHAT_BASE_PORT=$PORT; CHAT_BASE_PID=$PID
    reset cbase cporter
    for round in $(seq "$ROUNDS"); do
        run_base() { RATE_FIELD=deliveries_per_sec take cbase "$(bench "$CHAT_BASE_PORT" --raw --service chat --server-pid "$CHAT_BASE_PID" --conns 100 --size 64 --duration "$SECS")"; }
        run_porter() { RATE_FIELD=deliveries_per_sec take cporter "$(bench "$CHAT_PORT" --service chat --server-pid "$CHAT_PID" --conns 100 --size 64 --duration "$SECS")"; }
        paired run_base run_porter "$round"
        pair cbase cporter
    done
    rate_base="$(median "${cbase_rates[@]}")" rate_porter="$(median "${cporter_rates[@]}")"
    judge 0.8
    printf '%-26s %12s %12s %9s %10s %10s %7s %9s %9s %s\n' "" "base deliv/s" "porter del/s" "ratio" "base p99" "porter p99" "" "base cpu" "port cpu" "limit"
    printf '%-26s %12.0f %12.0f %5s %-4s %8.0fus %8.0fus %7s %9s %9s %s\n' "chat, 100 senders" \
        "$rate_base" "$rate_porter" "$rate_ratio" "$rate_verdict" \
        "$(median "${cbase_p99s[@]}")" "$(median "${cporter_p99s[@]}")" "" \
        "$(cpu_of cbase)" "$(cpu_of cporter)" "$limit"
    echo "  rounds: base deliveries/s ${cbase_rates[*]}; porter deliveries/s ${cporter_rates[*]}; ratios per round ${rate_pairs[*]}" >&2
    echo "  cpu % bench/server: base ${cbase_bench[*]} / ${cbase_server[*]}; porter ${cporter_bench[*]} / ${cporter_server[*]}; limits: base ${cbase_bounds[*]}; porter ${cporter_bounds[*]}" >&2
fi

# ---------------------------------------------------------------- logins
if [ "$LOGINS" = 1 ]; then
    echo
    echo "logins: --auth password, 20 bench users, 5000 token resumes"
    start_porter logins --service echo --auth password --db "$TMP/bench.db"
    json="$(bench "$PORT" --auth password --conns 20 --resumes 5000 --server-pid "$PID" --messages 1000)"
    login_ms="$(field "$json" ms_per_login)"
    resume_ms="$(field "$json" ms_per_resume)"
    cpu_ratio="$(ratio "$login_ms" "$resume_ms")"
    printf 'registrations/s %.1f, logins/s %.1f, resumes/s %.0f\n' \
        "$(field "$json" registrations_per_sec)" "$(field "$json" logins_per_sec)" "$(field "$json" resumes_per_sec)"
    printf 'server CPU: %.3f ms per login, %.4f ms per resume: ratio %s %s (target >= 100)\n' \
        "$login_ms" "$resume_ms" "$cpu_ratio" "$(verdict "$cpu_ratio" 100 '>=')"
    [ "$(verdict "$cpu_ratio" 100 '>=')" = PASS ] || MISSES=$((MISSES + 1))
fi

echo
if [ "$BOUND" != 0 ]; then
    echo "cases bench-bound (no verdict, the bench was the limit): $BOUND"
fi
if [ "$MISSES" = 0 ]; then
    echo "all targets measured here: PASS"
else
    echo "targets missed: $MISSES (see MISS above)"
fi
