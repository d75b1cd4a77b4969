#!/usr/bin/env bash
# Async filters, measured: how long a Swift task's completion takes to resume its stream on the
# host thread (median and p99), and requests per second through a synchronous no-op filter, an
# async no-op filter that completes without suspending, and one that suspends (Task.yield) and
# resumes through the posted callback, in the same run. Numbers are reported, never asserted.
#
#   bench/async_resume.sh [SECONDS_PER_RUN] [ROUNDS]      (defaults 5 and 3; `make bench-async`)
#
# Needs the release build (make build) and wrk. The upstream is build/es-upstream on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-5}"
rounds="${2:-3}"
conns="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
bin=build/envoy-swift
lib="$PWD/build/libswiftfilter.so"
for f in "$bin" "$lib" build/es-upstream; do
    [ -e "$f" ] || { echo "missing $f: run make build" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

up_port=$(free_port)
build/es-upstream --port "$up_port" >"$tmp/upstream.log" 2>&1 &
pids+=($!)

# One listener per variant, so each run hits one chain.
variants=(none sync_noop async_inline async_yield)
declare -A port
for v in "${variants[@]}" probe; do port[$v]=$(free_port); done
filter() { # name plugin config
    printf '      - { name: %s, so_path: %s, plugin_name: %s, plugin_config: %s }\n' "$1" "$lib" "$2" "$3"
}
{
    echo "workers: 1"
    echo "listeners:"
    for v in "${variants[@]}" probe; do
        printf '  - name: %s\n    address: 127.0.0.1\n    port: %s\n' "$v" "${port[$v]}"
        case "$v" in
        sync_noop) echo "    http_filters:"; filter noop noop '{}' ;;
        async_inline) echo "    http_filters:"; filter anoop async_noop '{ yield: false }' ;;
        async_yield) echo "    http_filters:"; filter anoop async_noop '{ yield: true }' ;;
        probe) echo "    http_filters:"; filter probe resume_probe '{}' ;;
        esac
        printf '    routes:\n      - match: { prefix: / }\n        cluster: backend\n'
    done
    printf 'clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %s } ]\n' "$up_port"
} >"$tmp/bench.yaml"

"$bin" -c "$tmp/bench.yaml" --log-level warn >"$tmp/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:${port[none]}/" >/dev/null 2>&1 && break
    sleep 0.05
done

run_wrk() { # port -> requests/s
    wrk -t"$threads" -c"$conns" -d"${secs}s" "http://127.0.0.1:$1/" 2>/dev/null |
        awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A results
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        results[$v]+="$(run_wrk "${port[$v]}") "
    done
done

# Resume latency: drive the probe, then read its percentiles.
curl -fs "http://127.0.0.1:${port[probe]}/_resume_stats" >/dev/null
wrk -t1 -c8 -d"${secs}s" "http://127.0.0.1:${port[probe]}/" >/dev/null 2>&1
stats="$(curl -fs "http://127.0.0.1:${port[probe]}/_resume_stats")"

echo "envoy-swift async filters: $(nproc) cores, workers: 1, wrk -t$threads -c$conns, ${secs}s x $rounds rounds (median)"
printf '%-14s %12s %8s\n' variant "req/s" "vs none"
base=$(echo "${results[none]}" | tr ' ' '\n' | grep . | median)
for v in "${variants[@]}"; do
    m=$(echo "${results[$v]}" | tr ' ' '\n' | grep . | median)
    printf '%-14s %12.0f %7.3fx\n' "$v" "$m" "$(echo "$m / $base" | bc -l)"
done
echo "resume latency (task completion on another thread -> stream continues on the worker): $stats"
