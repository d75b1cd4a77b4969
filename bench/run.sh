#!/usr/bin/env bash
# envoy-swift against nginx and HAProxy on this machine (issue 7), measured and never asserted:
#
# - Throughput: wrk over keep-alive connections to a fast upstream (nginx answering "hello\n"):
#   the upstream directly; nginx proxy_pass with upstream keep-alive; HAProxy with http-reuse
#   always; envoy-swift with no filter, one no-op Swift filter, three Swift filters that read and
#   set headers (header_touch), one async no-op Swift filter (suspends once per request). Every
#   proxy gets the same worker count (1, then 2) and the same connection counts (64, 512). Rounds
#   alternate the setups; the median of each column is reported. Each run also reads the CPU time
#   of the proxy's processes (the upstream's for the direct runs) before and after wrk: user and
#   system µs per completed request, what the proxy itself costs whatever the load does to req/s.
# - Memory: resident size of each proxy (all its processes) before and while it holds 10,000 idle
#   keep-alive client connections, each of which has done one request; the difference / 10,000 is
#   the cost of an idle connection.
# - The async resume latency (the resume_probe filter, as `make bench-async` measures it) and, if
#   build/bench-crossing was built (`make bench-crossing`), its output verbatim.
# - Cost per request (full run only, when valgrind and strace are installed): bench/instr.sh's
#   output verbatim, user-space instructions and syscalls per request of each proxy.
# - Reloads under load: bench/reload.sh's output verbatim (--smoke in a smoke run), failed requests
#   across configuration reloads, the time to the new configuration, RSS per worker process.
# - What the access log and a filter's metrics cost: bench/obs.sh's output verbatim (--smoke in a smoke run).
# - HTTP/2 front ends: bench/h2.sh's output verbatim (--smoke in a smoke run; skipped with a note when
#   h2load or nghttpx is missing): h2load -c64 -m10 through nghttpx, nginx, HAProxy and envoy-swift
#   (no filter, one no-op filter), one worker each, h2c and TLS.
#
# Prints the report (Markdown) and writes it to BENCHMARKS.md.
#
#   bench/run.sh            the full run, about 20 minutes (`make bench`)
#   bench/run.sh --smoke    every setup once, 1 s, 64 connections, 1 worker, 1,000 idle connections;
#                           exits 0 if everything started and answered; BENCHMARKS.md untouched
#
# Environment: BENCH_SECS (5), BENCH_ROUNDS (3), BENCH_IDLE (10000), BENCH_OUT (BENCHMARKS.md),
# BENCH_PORT_BASE (19600: ports 19600-19611 must be free; bench/instr.sh, then bench/reload.sh use the last 4),
# and bench/h2.sh's BENCH_H2_* (its ports 19680-19690). Needs the release build (make build),
# wrk, nginx, haproxy, python3 and curl; for the HTTP/2 section h2load, nghttpx and openssl. Everything started here runs from a temp dir that is
# removed at exit, with every process (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh
. bench/procs.sh

smoke=0
case "${1:-}" in
--smoke) smoke=1 ;;
"") ;;
*) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
if [ "$smoke" = 1 ]; then
    secs=1 rounds=1 workers_list=(1) conns_list=(64) idle_n="${BENCH_IDLE:-1000}"
else
    secs="${BENCH_SECS:-5}" rounds="${BENCH_ROUNDS:-3}" workers_list=(1 2) conns_list=(64 512)
    idle_n="${BENCH_IDLE:-10000}"
fi
threads=2
out_md="${BENCH_OUT:-BENCHMARKS.md}"
up_workers=2

bin=build/envoy-swift
lib="$PWD/build/libswiftfilter.so"
for f in "$bin" "$lib"; do [ -e "$f" ] || { echo "missing $f: run make build" >&2; exit 2; }; done
for t in wrk curl python3 haproxy; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

# File descriptors: the idle client and each proxy hold idle_n sockets (plus upstream ones). Root
# raises the hard limit where it may (not in every container); then the soft one goes to the hard.
if [ "$(id -u)" = 0 ]; then ulimit -Hn 262144 2>/dev/null || true; fi
ulimit -n "$(ulimit -Hn)"
fd_limit="$(ulimit -n)"
if [ "$fd_limit" -lt $((idle_n + 1024)) ]; then
    echo "ulimit -n is $fd_limit, need $((idle_n + 1024)) (run as root or raise it)" >&2
    exit 2
fi
# What nginx (worker_connections: client and upstream ones) and HAProxy (maxconn) may accept.
max_conns=$(( fd_limit - 100 < 30000 ? fd_limit - 100 : 30000 ))

base="${BENCH_PORT_BASE:-19600}"
setups=(upstream nginx haproxy es-none es-noop es-headers3 es-async)
declare -A port=([upstream]=$base [nginx]=$((base + 1)) [haproxy]=$((base + 2)) [es-none]=$((base + 3))
                 [es-noop]=$((base + 4)) [es-headers3]=$((base + 5)) [es-async]=$((base + 6))
                 [es-probe]=$((base + 7)))
# Whose CPU time a run of the setup is: the proxy's processes (the upstream's when wrk hits it directly).
declare -A owner_of=([upstream]=upstream [nginx]=nginx [haproxy]=haproxy [es-none]=envoy-swift
                     [es-noop]=envoy-swift [es-headers3]=envoy-swift [es-async]=envoy-swift)
declare -A label=([upstream]="upstream direct (nginx)" [nginx]="nginx proxy_pass" [haproxy]="HAProxy"
                  [es-none]="envoy-swift, no filter" [es-noop]="envoy-swift, 1 no-op filter"
                  [es-headers3]="envoy-swift, 3 header filters" [es-async]="envoy-swift, 1 async no-op")

# Every port must be free before anything starts.
busy="$(ports_busy "${port[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx workers run as nobody
# The binaries run from copies: build/ may be rebuilt during the run (the machine is shared), and a
# library rewritten in place under a running proxy crashes it.
mkdir "$tmp/bin"
cp "$bin" "$lib" "$tmp/bin/"
[ ! -x build/bench-crossing ] || cp build/bench-crossing "$tmp/bin/"
bin="$tmp/bin/envoy-swift" lib="$tmp/bin/libswiftfilter.so"
es_rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- CHost Sources Filters 2>/dev/null || echo ' + uncommitted changes')"
wrk_pid="" idle_pid="" instr_pid="" reload_pid="" h2_pid="" obs_pid=""
# A server that died is a failure of the run (with its exit status and last log lines); it is
# started again from the same files so that the other measurements still happen.
check_alive() { # name...
    local n rc
    for n in "$@"; do
        [ -n "${proc[$n]:-}" ] || continue
        kill -0 "${proc[$n]}" 2>/dev/null && continue
        rc=0
        wait "${proc[$n]}" || rc=$?
        fail "$n died (exit status $rc$([ "$rc" -gt 128 ] && echo ", signal $((rc - 128))")) ${where:-}; started again; its log ends: $(tail -n 3 "$tmp/$n.log" | tr '\n' ' ')"
        eval "launch $n ${launched[$n]}"
        sleep 0.5
    done
}
cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$wrk_pid" ] || kill -TERM "$wrk_pid" 2>/dev/null || true
    [ -z "$idle_pid" ] || kill -TERM "$idle_pid" 2>/dev/null || true
    [ -z "$instr_pid" ] || { kill -TERM "$instr_pid" 2>/dev/null || true; wait "$instr_pid" 2>/dev/null || true; }
    [ -z "$reload_pid" ] || { kill -TERM "$reload_pid" 2>/dev/null || true; wait "$reload_pid" 2>/dev/null || true; }
    [ -z "$h2_pid" ] || { kill -TERM "$h2_pid" 2>/dev/null || true; wait "$h2_pid" 2>/dev/null || true; }
    [ -z "$obs_pid" ] || { kill -TERM "$obs_pid" 2>/dev/null || true; wait "$obs_pid" 2>/dev/null || true; }
    stop "${!proc[@]}"
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- configurations -------------------------------------------------------------------------------
# bench/configs.sh writes them (shared with bench/instr.sh); these start them.
start_nginx() { # name
    launch "$1" "$nginx" -p "$tmp" -c "$tmp/$1.conf" -g 'daemon off;'
}
start_upstream() {
    upstream_conf "$up_workers" >"$tmp/upstream.conf"
    start_nginx upstream
}
start_nginx_proxy() { # workers
    nginx_proxy_conf "$1" >"$tmp/nginx.conf"
    start_nginx nginx
}
start_haproxy() { # workers
    haproxy_conf "$1" >"$tmp/haproxy.cfg"
    launch haproxy haproxy -db -f "$tmp/haproxy.cfg"
}
start_envoy_swift() { # name workers setup...
    local name="$1"
    shift
    es_conf "$@" >"$tmp/$name.yaml"
    launch "$name" "$bin" -c "$tmp/$name.yaml" --log-level warn
}

# Each setup must answer "hello" (and the header filters must have run) before it is measured.
check_answers() { # owner-of-logs setup...
    local owner="$1" s body i
    shift
    for s in "$@"; do
        body=""
        for i in $(seq 100); do
            body="$(curl -fsS -D "$tmp/headers" "http://127.0.0.1:${port[$s]}/" 2>/dev/null)" && break
            sleep 0.05
        done
        if [ "$body" != hello ]; then
            echo "${label[$s]:-$s} did not answer on port ${port[$s]} (got: '$body');" \
                "$owner is $(kill -0 "${proc[$owner]}" 2>/dev/null && echo running || echo gone); its log:" >&2
            for f in "$tmp/$owner.log" "$tmp/$owner.error.log"; do [ ! -f "$f" ] || tail -n 20 "$f" >&2; done
            exit 1
        fi
        if [ "$s" = es-headers3 ]; then
            for i in 1 2 3; do
                grep -qi "^x-t$i: 1" "$tmp/headers" || { echo "es-headers3: no x-t$i in the response" >&2; exit 1; }
            done
        fi
    done
}

# --- measuring ------------------------------------------------------------------------------------
# wrk in the background, so that a signal reaches the trap at once.
run_wrk() { # setup conns secs: the report in $tmp/wrk.out
    wrk -t"$threads" -c"$2" -d"$3s" --latency "http://127.0.0.1:${port[$1]}/" >"$tmp/wrk.out" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || true
    wrk_pid=""
}
parse_wrk() { # -> "req/s p50_ms p99_ms errors requests"
    awk 'function ms(s) {
             if (s ~ /us$/) return s / 1000; if (s ~ /ms$/) return s + 0; if (s ~ /s$/) return s * 1000
             return s + 0 }
         /Requests\/sec/ {rps = $2}
         / requests in / {n = $1}
         $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
         /Non-2xx/ {err += $NF}
         /Socket errors/ {gsub(/,/, ""); err += $4 + $6 + $8 + $10}
         END {printf "%s %s %s %d %d\n", rps + 0, p50 + 0, p99 + 0, err, n}' "$tmp/wrk.out"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
calc() { awk "BEGIN {print $*}"; }
med2() { if [ -n "$(tr -d ' ' <<<"$1")" ]; then printf '%.2f' "$(med "$1")"; else echo -; fi; }

rss_kb() { # pid -> VmRSS in kB, summed over it and its children (nginx master + workers)
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
nprocs() { echo $(( 1 + $(pgrep -c -P "$1" || true) )); }
clk_tck="$(getconf CLK_TCK)"
# utime and stime (fields 14 and 15 of /proc/PID/stat; every thread of the process) summed over it
# and its children: nginx's master and workers. Fields are counted after the ")" that ends the
# command name.
cpu_ticks() { # pid -> "user system" in clock ticks
    local u=0 y=0 p a b
    for p in "$1" $(pgrep -P "$1" || true); do
        read -r a b < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}') || true
        u=$((u + ${a:-0})) y=$((y + ${b:-0}))
    done
    echo "$u $y"
}

# Idle connections through bench/idle_conns.py; "ready" once all have had their response.
idle_open() { # port count max_hold -> waits for "ready"; 0 on success
    python3 bench/idle_conns.py "$1" "$2" --parallel 16 --max-hold "$3" >"$tmp/idle.out" 2>&1 &
    idle_pid=$!
    for _ in $(seq 1200); do
        grep -q '^ready' "$tmp/idle.out" && return 0
        kill -0 "$idle_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
idle_close() { # -> the client's exit status; "open N of M" is in $tmp/idle.out
    local rc=0
    kill -USR1 "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" || rc=$?
    idle_pid=""
    return "$rc"
}

declare -A rps p50 p99 errs mem ucpu scpu tcpu
loads=("before: $(cut -d' ' -f1-3 /proc/loadavg)")
started_at=$(date +%s)

start_upstream
check_answers upstream upstream

# --- throughput -----------------------------------------------------------------------------------
probe_stats=""
for w in "${workers_list[@]}"; do
    start_nginx_proxy "$w"
    start_haproxy "$w"
    es_setups=(es-none es-noop es-headers3 es-async)
    [ "$w" = 1 ] && es_setups+=(es-probe)
    start_envoy_swift envoy-swift "$w" "${es_setups[@]}"
    check_answers nginx nginx
    check_answers haproxy haproxy
    check_answers envoy-swift es-none es-noop es-headers3 es-async
    for c in "${conns_list[@]}"; do
        if [ "$smoke" = 0 ]; then
            progress "workers $w, $c connections: a discarded 1 s run each"
            for s in "${setups[@]}"; do run_wrk "$s" "$c" 1; done
        fi
        for r in $(seq "$rounds"); do
            for s in "${setups[@]}"; do
                cpid="${proc[${owner_of[$s]}]}"
                read -r u0 y0 < <(cpu_ticks "$cpid")
                run_wrk "$s" "$c" "$secs"
                read -r u1 y1 < <(cpu_ticks "$cpid")
                where="(workers $w, $c connections, ${label[$s]})"
                check_alive upstream nginx haproxy envoy-swift
                read -r x a b e nreq < <(parse_wrk)
                k="$w/$c/$s"
                rps[$k]+="$x " p50[$k]+="$a " p99[$k]+="$b " errs[$k]=$(( ${errs[$k]:-0} + e ))
                # µs of CPU per completed request; none when the proxy died (and was restarted) meanwhile.
                cpu_note=""
                if [ "$nreq" -gt 0 ] && [ "${cpid}" = "${proc[${owner_of[$s]}]}" ]; then
                    read -r cu cs < <(awk -v u="$((u1 - u0))" -v y="$((y1 - y0))" -v t="$clk_tck" -v n="$nreq" \
                                      'BEGIN {printf "%.3f %.3f\n", u * 1e6 / t / n, y * 1e6 / t / n}')
                    ucpu[$k]+="$cu " scpu[$k]+="$cs " tcpu[$k]+="$(calc "$cu + $cs") "
                    cpu_note=", CPU $cu + $cs µs/req"
                fi
                progress "workers $w, $c connections, round $r/$rounds: ${label[$s]}: $x req/s, p99 $b ms, $e errors$cpu_note"
                if [ "$x" = 0 ] || { [ "$smoke" = 1 ] && [ "$e" != 0 ]; }; then
                    fail "${label[$s]} (workers $w, $c connections): $x req/s, $e errors"
                    tail -n 5 "$tmp/wrk.out" >&2
                fi
            done
        done
    done
    if [ "$w" = 1 ]; then
        # The async resume latency: drive the probe, then read its percentiles (as bench-async does).
        curl -fsS "http://127.0.0.1:${port[es-probe]}/_resume_stats" >/dev/null || true
        wrk -t1 -c8 -d"${secs}s" "http://127.0.0.1:${port[es-probe]}/" >/dev/null 2>&1 || true
        probe_stats="$(curl -fsS "http://127.0.0.1:${port[es-probe]}/_resume_stats" || true)"
        progress "async resume: $probe_stats"
        [ -n "$probe_stats" ] || fail "the resume probe did not answer"
    fi
    loads+=("after workers $w: $(cut -d' ' -f1-3 /proc/loadavg)")
    stop nginx haproxy envoy-swift
done

# --- memory: idle keep-alive connections ----------------------------------------------------------
# Each proxy fresh, 1 worker; a warm-up of 200 connections (one request each, closed), then RSS
# "before"; then idle_n connections each doing one request (16 at a time, so at most 16 upstream
# connections) and staying open; after a second of quiet, RSS again, and the client checks that
# every connection is still open before it resets them all.
mem_setups=(nginx haproxy es-none es-noop es-headers3 es-async)
for s in "${mem_setups[@]}"; do
    case "$s" in
    nginx) start_nginx_proxy 1; owner=nginx ;;
    haproxy) start_haproxy 1; owner=haproxy ;;
    *) start_envoy_swift envoy-swift 1 "$s"; owner=envoy-swift ;;
    esac
    check_answers "$owner" "$s"
    pid="${proc[$owner]}"
    if ! { idle_open "${port[$s]}" 200 0 && idle_close; }; then
        fail "memory, ${label[$s]}: the warm-up failed: $(tail -n 1 "$tmp/idle.out")"
        stop "$owner"
        continue
    fi
    sleep 1
    before=$(rss_kb "$pid")
    if idle_open "${port[$s]}" "$idle_n" 120; then
        sleep 1
        after=$(rss_kb "$pid") np=$(nprocs "$pid")
        idle_close || true
        open="$(awk '/^open/ {print $2}' "$tmp/idle.out")"
        mem[$s]="$before $after $np ${open:-0}"
        progress "memory, ${label[$s]}: $before kB -> $after kB with ${open:-0}/$idle_n idle"
        [ "${open:-0}" = "$idle_n" ] || fail "memory, ${label[$s]}: only ${open:-0} of $idle_n stayed open"
    else
        fail "memory, ${label[$s]}: $(tail -n 1 "$tmp/idle.out")"
        kill -TERM "$idle_pid" 2>/dev/null || true
        wait "$idle_pid" 2>/dev/null || true
        idle_pid=""
    fi
    where="(memory, ${label[$s]})"
    check_alive upstream "$owner"
    stop "$owner"
done
loads+=("after the memory runs: $(cut -d' ' -f1-3 /proc/loadavg)")

# --- the crossing microbenchmark (make bench-crossing) --------------------------------------------
crossing_out=""
if [ "$smoke" = 1 ]; then
    crossing_note="not run in a smoke run."
elif [ -x build/bench-crossing ]; then
    progress "build/bench-crossing"
    crossing_rc=0
    crossing_out="$(timeout 300 "$tmp/bin/bench-crossing" "$lib" 2>&1)" || crossing_rc=$?
    [ "$crossing_rc" = 0 ] || fail "build/bench-crossing exited $crossing_rc"
    crossing_note="\`build/bench-crossing\` (\`make bench-crossing\`) on the copy of \`build/libswiftfilter.so\` the run used, its output verbatim:"
else
    crossing_note="not built in this run (\`make bench-crossing\` makes \`build/bench-crossing\`)."
fi
stop upstream

# --- cost per request: bench/instr.sh (instructions under callgrind, syscalls under strace) --------
# In the background, so that a signal reaches the trap at once; instr.sh stops its own processes.
instr_out=""
if [ "$smoke" = 1 ]; then
    instr_note="not run in a smoke run."
elif command -v valgrind >/dev/null && command -v strace >/dev/null; then
    progress "bench/instr.sh"
    BENCH_PORT_BASE=$((base + 8)) timeout 1200 bench/instr.sh "$bin" "$lib" >"$tmp/instr.md" &
    instr_pid=$!
    instr_rc=0
    wait "$instr_pid" || instr_rc=$?
    instr_pid=""
    instr_out="$(cat "$tmp/instr.md")"
    [ "$instr_rc" = 0 ] || fail "bench/instr.sh exited $instr_rc"
    instr_note="\`bench/instr.sh\` (\`make bench-instr\`) on the same copies of the binaries, its output verbatim:"
else
    instr_note="not measured: \`bench/instr.sh\` needs valgrind and strace (\`make bench-deps\` installs them)."
fi

# --- reloads under load: bench/reload.sh ----------------------------------------------------------
# On the ports instr.sh used (it is done); in the background, so that a signal reaches the trap at
# once; reload.sh stops its own processes. It fails only when a proxy cannot start: a proxy that
# dies on a reload is a result in its tables.
progress "bench/reload.sh$([ "$smoke" = 0 ] || echo ' --smoke')"
reload_args=()
[ "$smoke" = 0 ] || reload_args=(--smoke)
BENCH_PORT_BASE=$((base + 8)) timeout 600 bench/reload.sh "${reload_args[@]}" "$bin" "$lib" >"$tmp/reload.md" &
reload_pid=$!
reload_rc=0
wait "$reload_pid" || reload_rc=$?
reload_pid=""
reload_out="$(cat "$tmp/reload.md")"
[ "$reload_rc" = 0 ] || fail "bench/reload.sh exited $reload_rc"

# --- HTTP/2 front ends: bench/h2.sh ---------------------------------------------------------------
# Its own ports (BENCH_H2_PORT_BASE), upstream and proxies; in the background, so that a signal
# reaches the trap at once; h2.sh stops its own processes.
h2_out=""
if command -v h2load >/dev/null && command -v nghttpx >/dev/null && command -v openssl >/dev/null; then
    progress "bench/h2.sh$([ "$smoke" = 0 ] || echo ' --smoke')"
    h2_args=()
    [ "$smoke" = 0 ] || h2_args=(--smoke)
    timeout 1800 bench/h2.sh "${h2_args[@]}" "$bin" "$lib" >"$tmp/h2.md" &
    h2_pid=$!
    h2_rc=0
    wait "$h2_pid" || h2_rc=$?
    h2_pid=""
    h2_out="$(cat "$tmp/h2.md")"
    [ "$h2_rc" = 0 ] || fail "bench/h2.sh exited $h2_rc"
    h2_note="\`bench/h2.sh\` (\`make bench-h2\`) on the same copies of the binaries, its output verbatim:"
else
    h2_note="not measured: \`bench/h2.sh\` needs h2load, nghttpx (\`nghttp2-client\`, \`nghttp2-proxy\`) and openssl (\`make bench-deps\` installs them)."
fi

# --- what observability costs: bench/obs.sh -------------------------------------------------------
progress "bench/obs.sh$([ "$smoke" = 0 ] || echo ' --smoke')"
obs_args=()
[ "$smoke" = 0 ] || obs_args=(--smoke)
timeout 900 bench/obs.sh "${obs_args[@]}" >"$tmp/obs.md" &
obs_pid=$!
obs_rc=0
wait "$obs_pid" || obs_rc=$?
obs_pid=""
obs_out="$(cat "$tmp/obs.md")"
[ "$obs_rc" = 0 ] || fail "bench/obs.sh exited $obs_rc"
took=$(( $(date +%s) - started_at ))

# --- the report -----------------------------------------------------------------------------------
kib() { awk -v b="$1" 'BEGIN {if (b >= 1024 || b <= -1024) printf "%.2f KiB", b / 1024; else printf "%.0f B", b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
yesno() { [ "$1" = 1 ] && echo yes || echo no; }
idle_label="$(awk -v n="$idle_n" 'BEGIN {if (n % 1000 == 0) printf "%dk", n / 1000; else print n}')"
cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"

busy_note() { # the loads after runs include the benchmark's own; the one before is other work's
    local before
    before="$(awk '{print $2}' <<<"${loads[0]}")"
    printf ' (The loads after runs include the benchmark itself: wrk, the upstream and a proxy keep\n4 to 6 threads busy.)'
    awk -v m="$before" 'BEGIN {exit !(m >= 0.5)}' || return 0
    printf ' Other work was running when this run started (1-minute load %s): the rounds vary more\nthan they would on a quiet machine (see each round'"'"'s req/s below).' "$before"
}
if [ "$smoke" = 1 ]; then
    rounds_text="One run of $secs s per setup, no warm-up"
else
    rounds_text="After a discarded 1 s run of each, $rounds rounds of $secs s alternate the setups"
fi
report="$tmp/report.md"
{
    echo "# Benchmarks: envoy-swift, nginx and HAProxy"
    echo
    [ "$smoke" = 1 ] && { echo "**A smoke run (\`bench/run.sh --smoke\`): the numbers below only show that every setup answered.**"; echo; }
    cat <<EOF
Generated by \`bench/run.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC'), in $((took / 60)) min $((took % 60)) s.
The numbers are measured, never asserted by a test.

**How.** A fast upstream on loopback (nginx, \`worker_processes $up_workers\`, answering a fixed
\`hello\\n\`, 6 bytes, with keep-alive) serves every setup; it gets 2 processes because it is shared
by all and must not be the bottleneck of the 2-worker runs. wrk (\`-t$threads --latency\`) keeps its
connections open, so this measures the keep-alive request path, not connection setup. Each proxy
runs with the same worker count (nginx \`worker_processes N\` with \`reuseport\`, HAProxy
\`nbthread N\` in one process, envoy-swift \`workers: N\`, an SO_REUSEPORT socket per worker), keeps
upstream connections alive and reuses them (nginx \`keepalive 1024\`, HAProxy \`http-reuse always\`,
envoy-swift's pool), adds \`X-Forwarded-For\` and \`X-Forwarded-Proto\` and keeps \`Host\`, and has
keep-alive request limits lifted and idle timeouts of 300 s. The envoy-swift filters are the
library's benchmark filters: \`noop\` (synchronous, does nothing), three \`header_touch\` (each
reads \`user-agent\` and sets its own request header, then sets a response header), \`async_noop\`
(an \`AsyncHTTPFilter\` that suspends once per request, \`Task.yield()\`, and resumes through the
worker's posted callback).
$rounds_text; each column is the median of its rounds, so p50 and p99 are medians of per-round percentiles. "vs nginx" is req/s divided by nginx
proxy_pass's in the same group.

**The machine.** $(nproc) cores ($cpu), $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo),
Linux $(uname -r). **wrk, the upstream and the proxy share these $(nproc) cores**: a proxy's
req/s here is what it gets while competing with its client and upstream for CPU, not what it
would do on dedicated cores. The machine is shared with other work; load averages (1, 5, 15 min):
$(printf '%s; ' "${loads[@]}" | sed 's/; $//').$(busy_note)

## Requests per second and latency

EOF
    for w in "${workers_list[@]}"; do
        for c in "${conns_list[@]}"; do
            n="$(med "${rps[$w/$c/nginx]}")"
            echo "### $w worker$([ "$w" = 1 ] || echo s), $c connections"
            echo
            echo "| setup | req/s | p50 ms | p99 ms | vs nginx | user µs/req | sys µs/req | CPU µs/req | errors |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            for s in "${setups[@]}"; do
                k="$w/$c/$s" m="$(med "${rps[$w/$c/$s]}")"
                printf '| %s | %.0f | %.3f | %.3f | %.3fx | %s | %s | %s | %d |\n' "${label[$s]}" "$m" "$(med "${p50[$k]}")" \
                    "$(med "${p99[$k]}")" "$(calc "$m / ($n > 0 ? $n : 1)")" "$(med2 "${ucpu[$k]:-}")" \
                    "$(med2 "${scpu[$k]:-}")" "$(med2 "${tcpu[$k]:-}")" "${errs[$k]}"
            done
            echo
        done
    done
    echo "The upstream-direct row has no worker count of its own (it always runs $up_workers); it is the ceiling for that connection count."
    echo
    cat <<EOF
**CPU per request.** user and sys µs/req are the CPU time of the proxy's own processes (utime and
stime in \`/proc/PID/stat\`: every thread of HAProxy and envoy-swift, nginx's master and workers;
the upstream nginx's in the upstream-direct row) from just before wrk starts to just after it
ends, divided by the requests wrk completed; CPU = user + sys, each the median of its rounds
(clock ticks of 1/$clk_tck s over $secs s). This is the proxy process only: wrk's and the
upstream's CPU is not in it. Unlike req/s, it hardly depends on how the $(nproc) cores are shared
among wrk, the upstream and the proxy. Most of it is kernel time, and that includes more than the
proxy's own syscalls: on loopback, a send runs the receiving side's TCP processing and wakes the
peer in the sender's context, so the delivery of the proxy's data to wrk and to the upstream is
counted here. The user time is the proxy's own work in user space (its libraries included);
"Cost per request" below counts it in instructions, and the syscalls behind the kernel time.

EOF
    echo "<details><summary>req/s and CPU µs/req (user + sys) of each round</summary>"
    echo
    for w in "${workers_list[@]}"; do for c in "${conns_list[@]}"; do for s in "${setups[@]}"; do
        k="$w/$c/$s" t="${tcpu[$w/$c/$s]:-}"
        echo "- workers $w, $c connections, ${label[$s]}: ${rps[$k]% }; CPU µs/req ${t% }"
    done; done; done
    echo
    echo "</details>"
    echo
    cat <<EOF
## Memory: $idle_label idle keep-alive connections

Each proxy started fresh with 1 worker; 200 connections (one request each, then closed) warmed it
up; RSS before is read a second later. Then $idle_n client connections each did one request
(16 at a time, so at most 16 upstream connections were needed) and stayed open, idle after their
response; RSS is read a second after the last one. RSS is VmRSS summed over all of the proxy's
processes (nginx master and worker; HAProxy and envoy-swift are one process). Per connection =
(RSS with them - RSS before) / $idle_n. "open" is how many connections the client found still open
(nothing unread, not closed) after the RSS was read. Descriptors: \`ulimit -n\` $fd_limit (the hard
limit here), nginx \`worker_connections $max_conns\`, HAProxy \`maxconn $max_conns\` (with \`no
strict-limits\`: it would like 2 descriptors per connection but needs one per idle client).

| proxy | processes | RSS before | RSS with $idle_label idle | per connection | open |
|---|---:|---:|---:|---:|---:|
EOF
    for s in "${mem_setups[@]}"; do
        if [ -n "${mem[$s]:-}" ]; then
            read -r b a np o <<<"${mem[$s]}"
            printf '| %s | %d | %s | %s | %s | %d |\n' "${label[$s]}" "$np" "$(mib "$b")" "$(mib "$a")" \
                "$(kib "$(calc "($a - $b) * 1024 / $idle_n")")" "$o"
        else
            printf '| %s | - | - | - | failed | - |\n' "${label[$s]}"
        fi
    done
    echo
    echo "The issue's reference figures, measured the same way: nginx 790 B, HAProxy 1.2 KiB per connection."
    echo

    # Targets, computed from the numbers above.
    echo "## Targets (issue 7)"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"
    t1="" t1ok=1 t2="" t2ok=1 t3="" t3ok=1
    for w in "${workers_list[@]}"; do for c in "${conns_list[@]}"; do
        n="$(med "${rps[$w/$c/nginx]}")" n99="$(med "${p99[$w/$c/nginx]}")"
        z="$(med "${rps[$w/$c/es-none]}")" o="$(med "${rps[$w/$c/es-noop]}")" o99="$(med "${p99[$w/$c/es-noop]}")"
        cell="${w}w/${c}c"
        r1="$(calc "$o / ($n > 0 ? $n : 1)")" r2="$(calc "$z / ($n > 0 ? $n : 1)")"
        cost="$(calc "100 * (1 - $o / ($z > 0 ? $z : 1))")"
        t1+="$(printf '%s %.2fx, p99 %.2f vs %.2f ms; ' "$cell" "$r1" "$o99" "$n99")"
        t2+="$(printf '%s %.2fx; ' "$cell" "$r2")"
        t3+="$(printf '%s %.1f%%; ' "$cell" "$cost")"
        awk -v r="$r1" -v a="$o99" -v b="$n99" 'BEGIN {exit !(r >= 1.0 && a <= b)}' || t1ok=0
        awk -v r="$r2" 'BEGIN {exit !(r >= 1.2)}' || t2ok=0
        awk -v x="$cost" 'BEGIN {exit !(x <= 3)}' || t3ok=0
    done; done
    echo "| 1 no-op filter: req/s ≥ 1.0x nginx and p99 ≤ nginx's | ${t1%; } | $(yesno $t1ok) |"
    echo "| no filter: req/s ≥ 1.2x nginx | ${t2%; } | $(yesno $t2ok) |"
    echo "| a no-op filter costs ≤ 3% of envoy-swift's no-filter req/s | ${t3%; } | $(yesno $t3ok) |"
    # The same cost where load hardly moves it: CPU per request, and (from bench/instr.sh)
    # user-space instructions. Shown beside the target, not as its verdict.
    t3c=""
    for w in "${workers_list[@]}"; do for c in "${conns_list[@]}"; do
        zc="$(med2 "${tcpu[$w/$c/es-none]:-}")" oc="$(med2 "${tcpu[$w/$c/es-noop]:-}")"
        [ "$zc" != - ] && [ "$oc" != - ] || continue
        t3c+="$(printf '%s +%.2f µs (%.1f%%); ' "${w}w/${c}c" "$(calc "$oc - $zc")" "$(calc "100 * ($oc - $zc) / ($zc > 0 ? $zc : 1)")")"
    done; done
    [ -z "$t3c" ] || echo "| (the no-op filter's added CPU per request, same runs) | ${t3c%; } | — |"
    # The first table of instr.sh's output is the instructions one.
    zi="$(awk -F'|' '$2 ~ /envoy-swift, no filter/ {gsub(/ /, "", $3); print $3; exit}' <<<"$instr_out")"
    oi="$(awk -F'|' '$2 ~ /envoy-swift, 1 no-op filter/ {gsub(/ /, "", $3); print $3; exit}' <<<"$instr_out")"
    if [[ "$zi" =~ ^[0-9]+$ && "$oi" =~ ^[0-9]+$ && "$zi" -gt 0 ]]; then
        printf '| (its added user-space instructions per request, bench/instr.sh) | +%d (%.1f%% of the no-filter request'"'"'s) | — |\n' \
            "$((oi - zi))" "$(calc "100 * ($oi - $zi) / $zi")"
    fi
    if [ -n "${mem[es-none]:-}" ]; then
        read -r b a _ _ <<<"${mem[es-none]}"
        per="$(calc "($a - $b) * 1024 / $idle_n")"
        echo "| $idle_label idle connections ≤ 1 KiB each (envoy-swift, no filter) | $(kib "$per") | $(yesno "$(awk -v x="$per" 'BEGIN {print (x <= 1024)}')") |"
    else
        echo "| $idle_label idle connections ≤ 1 KiB each | not measured (failed) | no |"
    fi
    if [ -n "$crossing_out" ]; then
        # bench-crossing states its own verdict per case: "...  111.7 ns: NOT met  (...)".
        verdicts="$(grep -E '[0-9.]+ ns: (NOT )?met' <<<"$crossing_out" | sed -E 's/ +/ /g; s/^ //; s/(met|NOT met) .*/\1/' || true)"
        if [ "${crossing_rc:-0}" != 0 ]; then
            echo "| a crossing into Swift < 100 ns | not measured: bench-crossing failed (below) | - |"
        elif [ -z "$verdicts" ]; then
            echo "| a crossing into Swift < 100 ns | see \"Crossing into Swift\" below | - |"
        else
            met=yes
            grep -q 'NOT met' <<<"$verdicts" && met=no
            echo "| a crossing into Swift (a callback reading one header and setting another) < 100 ns | $(paste -sd ';' <<<"$verdicts" | sed 's/;/; /g') (bench-crossing's verdicts) | $met |"
        fi
    else
        echo "| a crossing into Swift < 100 ns | not measured in this run | - |"
    fi
    p50_ns="$(grep -o 'p50_ns=[0-9]*' <<<"$probe_stats" | cut -d= -f2 || true)"
    if [ -n "$p50_ns" ]; then
        echo "| async resume median < 20 µs | $(calc "$p50_ns / 1000") µs ($(tr -d '\n' <<<"$probe_stats")) | $(yesno "$(awk -v x="$p50_ns" 'BEGIN {print (x < 20000)}')") |"
    else
        echo "| async resume median < 20 µs | not measured in this run | - |"
    fi
    echo
    echo "The async resume latency is the \`resume_probe\` filter's (as \`make bench-async\` reports it):"
    echo "from an async callback's completion on another thread to its stream continuing on the"
    echo "worker, over ${secs} s of \`wrk -t1 -c8\` on envoy-swift with 1 worker."
    echo
    echo "## Cost per request"
    echo
    echo "$instr_note"
    if [ -n "$instr_out" ]; then echo; echo "$instr_out"; fi
    echo
    echo "## Crossing into Swift"
    echo
    echo "$crossing_note"
    if [ -n "$crossing_out" ]; then echo; echo '```'; echo "$crossing_out"; echo '```'; fi
    echo
    echo "## Reloads"
    echo
    echo "\`bench/reload.sh\` (\`make bench-reload\`) on the same copies of the binaries, its output verbatim:"
    echo
    if [ -n "$reload_out" ]; then echo "$reload_out"; else echo "no output (bench/reload.sh exited $reload_rc)."; fi
    echo
    echo "## HTTP/2"
    echo
    echo "$h2_note"
    if [ -n "$h2_out" ]; then echo; echo "$h2_out"; fi
    echo
    echo "## Access log and metrics"
    echo
    if [ -n "$obs_out" ]; then echo "$obs_out"; else echo "no output (bench/obs.sh exited $obs_rc)."; fi
    echo
    cat <<EOF
## Versions

- envoy-swift $es_rev; $(swift --version 2>&1 | grep -m1 -o 'Swift version [^ ]*'); libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?')
- $("$nginx" -v 2>&1 | sed 's/^nginx version: //') (Debian $(dpkg-query -W -f '${Package} ${Version}' nginx-light 2>/dev/null || dpkg-query -W -f '${Package} ${Version}' nginx 2>/dev/null || echo '?'))
- $(haproxy -v 2>&1 | head -n 1 | awk '{print "HAProxy", $3}') (Debian $(dpkg-query -W -f '${Version}' haproxy 2>/dev/null || echo '?'))
- $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'); $(python3 --version) for the idle client (\`bench/idle_conns.py\`)

## Reproduce

\`\`\`sh
make build && make bench        # or: bench/run.sh (BENCH_SECS, BENCH_ROUNDS, BENCH_IDLE change the run)
make bench-instr                # the cost per request alone: bench/instr.sh
make bench-reload               # the reloads alone: bench/reload.sh
make bench-h2                   # the HTTP/2 front ends alone: bench/h2.sh
make bench-obs                  # access logs and a filter's metrics against no filter: bench/obs.sh
\`\`\`
EOF
    if [ "${#failures[@]}" -gt 0 ]; then
        echo
        echo "## Failures in this run"
        echo
        for f in "${failures[@]}"; do echo "- $f"; done
    fi
} >"$report"

cat "$report"
if [ "$smoke" = 0 ]; then
    cp "$report" "$out_md"
    echo "wrote $out_md" >&2
fi
if [ "${#failures[@]}" -gt 0 ]; then
    echo "${#failures[@]} failure(s)" >&2
    exit 1
fi
