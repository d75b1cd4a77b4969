#!/usr/bin/env bash
# What observability costs (issue 16), measured and never asserted: envoy-swift with 1 worker, one
# listener per setup, behind the same upstream nginx: no filter; no filter with an access log in the
# default text format; with a JSON access log of 11 fields; one no-op Swift filter; one Swift filter
# that increments a labelled counter and records a labelled histogram per request (metric_probe).
# Rounds of wrk (64 keep-alive connections) alternate the setups; each reports the CPU time of the
# proxy's processes per completed request (user + system µs) and req/s, the median of the rounds.
# Instructions per request for the same setups are in bench/instr.sh's table.
#
#   bench/obs.sh [--smoke]      (make bench-obs; bench/run.sh includes it)
#
# Environment: BENCH_SECS (5), BENCH_ROUNDS (5), BENCH_OBS_PORT_BASE (19640: 19640-19645 free).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh
. bench/procs.sh

smoke=0
[ "${1:-}" != --smoke ] || smoke=1
secs="${BENCH_SECS:-5}" rounds="${BENCH_ROUNDS:-5}"
[ "$smoke" = 0 ] || { secs=1; rounds=1; }
bin=build/envoy-swift lib="$PWD/build/libswiftfilter.so"
for f in "$bin" "$lib"; do [ -e "$f" ] || { echo "missing $f: run make build" >&2; exit 2; }; done
for t in wrk curl; do command -v "$t" >/dev/null || { echo "$t is not installed (make bench-deps)" >&2; exit 2; }; done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

base="${BENCH_OBS_PORT_BASE:-19640}"
setups=(es-none es-log-text es-log-json es-noop es-metric)
declare -A port=([upstream]=$base [es-none]=$((base + 1)) [es-log-text]=$((base + 2)) [es-log-json]=$((base + 3))
                 [es-noop]=$((base + 4)) [es-metric]=$((base + 5)))
declare -A label=([es-none]="no filter" [es-log-text]="no filter, access log (text, the default format)"
                  [es-log-json]="no filter, access log (JSON, 11 fields)" [es-noop]="1 no-op filter"
                  [es-metric]="1 filter: a counter and a histogram per request")
busy="$(ports_busy "${port[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_OBS_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"
mkdir "$tmp/bin"
cp "$bin" "$lib" "$tmp/bin/"
bin="$tmp/bin/envoy-swift" lib="$tmp/bin/libswiftfilter.so"
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

max_conns=1024
upstream_conf 2 >"$tmp/upstream.conf"
launch upstream "$nginx" -p "$tmp" -c "$tmp/upstream.conf" -g 'daemon off;'
es_conf 1 "${setups[@]}" >"$tmp/envoy-swift.yaml"
launch envoy-swift "$bin" -c "$tmp/envoy-swift.yaml" --log-level warn
for s in upstream "${setups[@]}"; do
    for i in $(seq 100); do
        [ "$(curl -fsS "http://127.0.0.1:${port[$s]}/" 2>/dev/null)" = hello ] && break
        [ "$i" = 100 ] && { echo "$s did not answer; logs:" >&2; tail -n 5 "$tmp"/*.log >&2; exit 1; }
        sleep 0.05
    done
done

clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { # pid -> utime + stime of it and its children (every thread), in clock ticks
    local t=0 p a b
    for p in "$1" $(pgrep -P "$1" || true); do
        read -r a b < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}') || true
        t=$((t + ${a:-0} + ${b:-0}))
    done
    echo "$t"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
least() { tr ' ' '\n' | grep . | sort -g | head -n 1; }

declare -A cpu rps
pid="${proc[envoy-swift]}"
[ "$smoke" = 1 ] || for s in "${setups[@]}"; do wrk -t2 -c64 -d1s "http://127.0.0.1:${port[$s]}/" >/dev/null 2>&1; done
for r in $(seq "$rounds"); do
    for s in "${setups[@]}"; do
        t0="$(cpu_ticks "$pid")"
        wrk -t2 -c64 -d"${secs}s" "http://127.0.0.1:${port[$s]}/" >"$tmp/wrk.out" 2>&1 &
        wrk_pid=$!
        wait "$wrk_pid" || true
        wrk_pid=""
        t1="$(cpu_ticks "$pid")"
        n="$(awk '/ requests in / {print $1}' "$tmp/wrk.out")"
        x="$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")"
        bad="$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")"
        if [ -z "$n" ] || [ "$n" = 0 ] || [ -n "$bad" ]; then
            fail "${label[$s]}: $(tail -n 3 "$tmp/wrk.out" | tr '\n' ' ')"
            continue
        fi
        c="$(awk -v d="$((t1 - t0))" -v t="$clk_tck" -v n="$n" 'BEGIN {printf "%.2f", d * 1e6 / t / n}')"
        cpu[$s]+="$c " rps[$s]+="$x "
        progress "round $r/$rounds: ${label[$s]}: $x req/s, $c CPU µs/req"
    done
done
for s in es-log-text es-log-json; do
    progress "${label[$s]}: $(wc -l <"$tmp/$s.access.log" 2>/dev/null || echo 0) lines written so far"
done

none="$(median <<<"${cpu[es-none]:-}")" noop="$(median <<<"${cpu[es-noop]:-}")"
none_l="$(least <<<"${cpu[es-none]:-}")" noop_l="$(least <<<"${cpu[es-noop]:-}")"
vs() { # value baseline setup
    if [ -z "$1" ] || [ -z "$2" ] || [ "$3" = es-none ] || [ "$3" = es-noop ]; then echo "-"; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f%%", (a / b - 1) * 100}'
}
cat <<EOF
**What observability costs** (\`bench/obs.sh\`, \`make bench-obs\`): envoy-swift with 1 worker, one listener
per setup, wrk -t2 -c64 against each in turn, $rounds rounds of $secs s; the proxy's CPU time (user + system,
all its processes) per completed request and req/s, the median of the rounds, and the least CPU of the rounds
(the round the machine's other load disturbed least: on a shared 2-core machine one busy round moves CPU per
request by 30% and more). Every setup also records the built-in histograms (request duration, upstream time to
first byte, filter hook time).

| setup | req/s | CPU µs/req (median) | vs its baseline | CPU µs/req (least) | vs its baseline |
|---|---:|---:|---:|---:|---:|
EOF
for s in "${setups[@]}"; do
    m="$(median <<<"${cpu[$s]:-}")" l="$(least <<<"${cpu[$s]:-}")"
    b="$none" bl="$none_l"
    [ "$s" != es-metric ] || { b="$noop"; bl="$noop_l"; }
    printf '| %s | %s | %s | %s | %s | %s |\n' "${label[$s]}" "$(median <<<"${rps[$s]:-}")" "${m:--}" \
        "$(vs "$m" "$b" "$s")" "${l:--}" "$(vs "$l" "$bl" "$s")"
done
echo
echo "The access logs are measured against \"no filter\", the metrics filter against \"1 no-op filter\"."
if [ "${#failures[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
