#!/usr/bin/env bash
# envoy-swift against an older build of itself, measured and never asserted: req/s and CPU µs per
# request of two builds (BASE and NEW) side by side in one run, in front of the upstream bench/run.sh
# uses (nginx answering "hello\n", 2 workers), with `workers: 1` and `workers: 2`, no filter and one
# no-op Swift filter (bench/configs.sh's es-none and es-noop listeners).
#
# Rounds alternate the builds: within a round each cell (workers, filters) runs BASE then NEW, the
# next round NEW then BASE (so a drift of the machine's load within a round or across the run falls
# on both builds alike). Every run is `wrk -t2 -c64` for AB_SECS after a discarded AB_WARMUP run on
# the same listener. CPU µs per request: utime + stime (/proc/PID/stat, every thread) of the
# proxy's processes summed (the supervisor, its workers and any other descendant; plus the cutime
# and cstime of the ones that have exited and been reaped), read before and after wrk, divided by
# the requests wrk completed. The table shows each cell's median over the rounds.
#
# Prints Markdown to stdout, progress to stderr; writes no file.
#
#   bench/ab.sh BASE_BIN BASE_LIB [NEW_BIN NEW_LIB]     about 3 minutes (`make bench-ab`)
#   bench/ab.sh --smoke BASE_BIN BASE_LIB [...]          1 round, 1 s, no warm-up: that it all runs
#
# NEW defaults to build/envoy-swift build/libswiftfilter.so. BASE comes from an older checkout:
#   git worktree add /tmp/old <rev> && make -C /tmp/old build
#   bench/ab.sh /tmp/old/build/envoy-swift /tmp/old/build/libswiftfilter.so
#
# Environment: AB_WORKERS ("1 2"), AB_ROUNDS (4), AB_SECS (4), AB_WARMUP (1), AB_CONNS (64), BENCH_PORT_BASE (19660:
# ports 19660-19668 must be free). Needs wrk, nginx, python3 and curl. Both builds run from copies
# in a temp dir (build/ may be rebuilt meanwhile), removed at exit with every process started here
# (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh
. bench/procs.sh

rounds="${AB_ROUNDS:-4}" secs="${AB_SECS:-4}" warmup="${AB_WARMUP:-1}" conns="${AB_CONNS:-64}"
smoke=0
[ "${1:-}" = --smoke ] && { smoke=1 rounds=1 secs=1 warmup=0; shift; }
if [ $# != 2 ] && [ $# != 4 ] || [[ "$1" = -* ]]; then
    echo "usage: $0 [--smoke] BASE_BIN BASE_LIB [NEW_BIN NEW_LIB]" >&2
    exit 2
fi
declare -A src_bin=([base]="$1" [new]="${3:-build/envoy-swift}")
declare -A src_lib=([base]="$2" [new]="${4:-build/libswiftfilter.so}")
for b in base new; do
    for f in "${src_bin[$b]}" "${src_lib[$b]}"; do [ -f "$f" ] || { echo "missing $f" >&2; exit 2; }; done
done
for t in wrk curl python3; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench-deps installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

builds=(base new) setups=(es-none es-noop)
read -r -a workers_list <<<"${AB_WORKERS:-1 2}"
declare -A label=([es-none]="no filter" [es-noop]="1 no-op filter")
threads=2 up_workers=2 max_conns=4096

# Ports: the upstream, then one per (build, workers, setup); every proxy runs for the whole run.
base_port="${BENCH_PORT_BASE:-19660}"
declare -A port=([upstream]=$base_port)
declare -A lport  # build/workers/setup -> port
n=1
for b in "${builds[@]}"; do
    for w in "${workers_list[@]}"; do
        for s in "${setups[@]}"; do lport[$b/$w/$s]=$((base_port + n)); n=$((n + 1)); done
    done
done
busy="$(ports_busy "${port[upstream]}" "${lport[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_PORT_BASE)" >&2; exit 2; }

# Where a build came from: the checkout its binary sits in (build/ under it), when there is one.
describe() { # bin
    local dir rev
    dir="$(cd "$(dirname "$1")/.." && pwd)"
    rev="$(git -C "$dir" rev-parse --short HEAD 2>/dev/null)" || { echo "\`$1\`"; return; }
    git -C "$dir" diff --quiet HEAD -- CHost Sources Filters 2>/dev/null || rev+=" + uncommitted changes"
    echo "\`$1\` ($rev)"
}
declare -A what=([base]="$(describe "${src_bin[base]}")" [new]="$(describe "${src_bin[new]}")")

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx workers run as nobody
# Copies, as bench/run.sh runs them: a library rewritten in place under a running proxy crashes it.
declare -A bin lib_of
for b in "${builds[@]}"; do
    mkdir "$tmp/$b"
    cp "${src_bin[$b]}" "${src_lib[$b]}" "$tmp/$b/"
    bin[$b]="$tmp/$b/$(basename "${src_bin[$b]}")" lib_of[$b]="$tmp/$b/$(basename "${src_lib[$b]}")"
done

wrk_pid=""
cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$wrk_pid" ] || kill -TERM "$wrk_pid" 2>/dev/null || true
    stop "${!proc[@]}"
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

answers() { # port -> 0 once it answers "hello" (within 5 s)
    for _ in $(seq 100); do
        [ "$(curl -fsS "http://127.0.0.1:$1/" 2>/dev/null)" = hello ] && return 0
        sleep 0.05
    done
    return 1
}

# --- the servers: bench/configs.sh's upstream, and its es-none + es-noop listeners per proxy ---------
upstream_conf "$up_workers" >"$tmp/upstream.conf"
launch upstream "$nginx" -p "$tmp" -c "$tmp/upstream.conf" -g 'daemon off;'
answers "${port[upstream]}" || { echo "the upstream did not answer; its log:" >&2; cat "$tmp/upstream.error.log" >&2; exit 1; }
for b in "${builds[@]}"; do
    for w in "${workers_list[@]}"; do
        name="$b-w$w"
        # es_conf names ports by setup and the library by $lib: this proxy's.
        port[es-none]="${lport[$b/$w/es-none]}" port[es-noop]="${lport[$b/$w/es-noop]}" lib="${lib_of[$b]}"
        es_conf "$w" "${setups[@]}" >"$tmp/$name.yaml"
        launch "$name" "${bin[$b]}" -c "$tmp/$name.yaml" --log-level warn
    done
done
for b in "${builds[@]}"; do
    for w in "${workers_list[@]}"; do
        for s in "${setups[@]}"; do
            answers "${lport[$b/$w/$s]}" && continue
            echo "$b, workers $w, ${label[$s]}: no answer on port ${lport[$b/$w/$s]}; its log:" >&2
            tail -n 20 "$tmp/$b-w$w.log" >&2
            exit 1
        done
    done
done

# --- measuring ----------------------------------------------------------------------------------------
clk_tck="$(getconf CLK_TCK)"
# Clock ticks of a process tree: utime + stime of each process in it (fields 14, 15 of
# /proc/PID/stat, counted after the ")" that ends the command name) and cutime + cstime (16, 17) of
# each, which hold the processes it has reaped (a worker that exited). A process that exits between
# two readings is not counted in the second until its parent reaps it.
cpu_ticks() { # pid -> ticks
    local t=0 p v
    for p in "$1" $(descendants "$1"); do
        v="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')" || true
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
run_wrk() { # port secs: the report in $tmp/wrk.out (wrk in the background: a signal reaches the trap at once)
    wrk -t"$threads" -c"$conns" -d"$2s" "http://127.0.0.1:$1/" >"$tmp/wrk.out" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || true
    wrk_pid=""
}
parse_wrk() { # -> "req/s errors requests"
    awk '/Requests\/sec/ {rps = $2}
         / requests in / {n = $1}
         /Non-2xx/ {err += $NF}
         /Socket errors/ {gsub(/,/, ""); err += $4 + $6 + $8 + $10}
         END {printf "%s %d %d\n", rps + 0, err, n}' "$tmp/wrk.out"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A rps cpu errs  # build/workers/setup -> "v1 v2 ..." (one per round), error count
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started_at=$(date +%s)
for r in $(seq "$rounds"); do
    order=(base new)
    [ $((r % 2)) = 1 ] || order=(new base)
    for w in "${workers_list[@]}"; do
        for s in "${setups[@]}"; do
            for b in "${order[@]}"; do
                k="$b/$w/$s" name="$b-w$w"
                pid="${proc[$name]}"
                [ "$warmup" = 0 ] || run_wrk "${lport[$k]}" "$warmup"
                t0=$(cpu_ticks "$pid")
                run_wrk "${lport[$k]}" "$secs"
                t1=$(cpu_ticks "$pid")
                read -r x e nreq < <(parse_wrk)
                if ! kill -0 "$pid" 2>/dev/null; then
                    rc=0
                    wait "$pid" || rc=$?
                    fail "$name died (exit status $rc) in round $r, ${label[$s]}; started again; its log ends: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
                    eval "launch $name ${launched[$name]}"
                    answers "${lport[$k]}" || { echo "$name did not come back" >&2; exit 1; }
                    continue  # neither its req/s nor its CPU time means anything for this run
                fi
                rps[$k]+="$x " errs[$k]=$(( ${errs[$k]:-0} + e ))
                c=-
                if [ "$nreq" -gt 0 ]; then
                    c="$(awk -v t="$((t1 - t0))" -v h="$clk_tck" -v n="$nreq" 'BEGIN {printf "%.2f", t * 1e6 / h / n}')"
                    cpu[$k]+="$c "
                fi
                progress "round $r/$rounds, workers $w, ${label[$s]}, $b: $x req/s, $c µs CPU/req, $e errors"
                if [ "$x" = 0 ] || [ "$e" != 0 ]; then
                    fail "$b, workers $w, ${label[$s]}, round $r: $x req/s, $e errors"
                    tail -n 5 "$tmp/wrk.out" >&2
                fi
            done
        done
    done
done
took=$(( $(date +%s) - started_at ))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- the report ---------------------------------------------------------------------------------------
med() { if [ -n "$(tr -d ' ' <<<"$1")" ]; then median <<<"$1"; else echo; fi; }
fmt() { if [ -n "$2" ]; then printf "$1" "$2"; else echo -; fi; }  # format value ("-" when none)
ints() { local v out=(); for v in "$@"; do out+=("$(printf %.0f "$v")"); done; echo "${out[*]:-}"; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (a > 0) ? b / a : 0}'; else echo -; fi; }
echo "## envoy-swift, base vs new: req/s and CPU per request"
echo
echo "- base: ${what[base]}"
echo "- new: ${what[new]}"
echo
echo "| workers | filters | base req/s | new req/s | new/base | base CPU µs/req | new CPU µs/req | new/base |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for w in "${workers_list[@]}"; do
    for s in "${setups[@]}"; do
        rb="$(med "${rps[base/$w/$s]:-}")" rn="$(med "${rps[new/$w/$s]:-}")"
        cb="$(med "${cpu[base/$w/$s]:-}")" cn="$(med "${cpu[new/$w/$s]:-}")"
        echo "| $w | ${label[$s]} | $(fmt %.0f "$rb") | $(fmt %.0f "$rn") | $(ratio "$rb" "$rn")" \
             "| $(fmt %.2f "$cb") | $(fmt %.2f "$cn") | $(ratio "$cb" "$cn") |"
    done
done
echo
warm_note="after a discarded ${warmup} s run on the same listener"
[ "$warmup" != 0 ] || warm_note="with no warm-up run"
echo "Medians over $rounds round(s); each run \`wrk -t$threads -c$conns -d${secs}s\` $warm_note; builds"
echo "alternate (base first in odd rounds, new first in even ones). CPU: user + system time of the"
echo "proxy's processes (supervisor and workers, or the one process of a threaded build), per completed request."
echo "Upstream: nginx, $up_workers workers, answering \"hello\\n\" (bench/configs.sh's). $(nproc) CPUs, shared by wrk, the"
echo "upstream and the proxy; load average $load_before before, $load_after after; $took s of measuring."
echo
echo "Every run (req/s, CPU µs/req), in round order:"
echo
echo "| workers | filters | build | req/s | CPU µs/req | errors |"
echo "|---|---|---|---|---|---:|"
for w in "${workers_list[@]}"; do
    for s in "${setups[@]}"; do
        for b in "${builds[@]}"; do
            echo "| $w | ${label[$s]} | $b | $(ints ${rps[$b/$w/$s]:-}) | $(echo ${cpu[$b/$w/$s]:-}) | ${errs[$b/$w/$s]:-0} |"
        done
    done
done
if [ "${#failures[@]}" -gt 0 ]; then
    echo
    echo "Failures in this run:"
    echo
    for f in "${failures[@]}"; do echo "- $f"; done
    exit 1
fi
