#!/usr/bin/env bash
# HTTP/2 front ends, measured and never asserted: h2load (-c64 -m10, -n requests) through nghttpx,
# nginx, HAProxy and envoy-swift, each with ONE worker (nghttpx --single-thread, worker_processes 1,
# nbthread 1, workers: 1), in front of the same HTTP/1.1 upstream (build/es-upstream), over h2c
# (prior knowledge) and TLS (ALPN h2). envoy-swift is measured with no filter and with one no-op
# Swift filter (plugin `noop` of libswiftfilter.so, as bench/run.sh's es-noop); a build that does not
# answer HTTP/2 is reported as "no HTTP/2 yet". Rounds alternate the setups; the medians of req/s,
# of h2load's mean and max request time and of the proxy's CPU time per request are printed as a
# table, req/s also as a ratio of nghttpx's, then the issue's targets computed from them (reported,
# never asserted) and each round's figures.
#
#   bench/h2.sh [--smoke] [ENVOY_SWIFT_BINARY LIBSWIFTFILTER]
#       (`make bench-h2`; --smoke: 2,000 requests, 1 round; default build/envoy-swift
#       build/libswiftfilter.so, run from copies)
#
# Environment: BENCH_H2_REQUESTS (100000), BENCH_H2_ROUNDS (3), BENCH_H2_PORT_BASE (19680: ports
# 19680-19690 must be free). Needs build/es-upstream, h2load (nghttp2-client), nghttpx
# (nghttp2-proxy), nginx (with http_v2_module), haproxy, openssl, curl. A throwaway self-signed
# certificate is made in build/bench-h2/ (never committed); everything else runs from a temp dir
# removed at exit with every process started here.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh  # ports_busy, nginx_conf
. bench/procs.sh    # launch, stop, fail, progress

requests="${BENCH_H2_REQUESTS:-100000}" rounds="${BENCH_H2_ROUNDS:-3}"
case "${1:-}" in
--smoke) requests=2000 rounds=1; shift ;;
-*) echo "usage: $0 [--smoke] [ENVOY_SWIFT_BINARY LIBSWIFTFILTER]" >&2; exit 2 ;;
esac
bin="${1:-build/envoy-swift}" lib="${2:-build/libswiftfilter.so}"
for f in "$bin" build/es-upstream; do [ -x "$f" ] || { echo "missing $f: make $f" >&2; exit 2; }; done
[ -e "$lib" ] || { echo "missing $lib: make build" >&2; exit 2; }
for t in h2load nghttpx haproxy openssl curl; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench-h2 installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
"$nginx" -V 2>&1 | grep -q http_v2_module || { echo "nginx lacks http_v2_module" >&2; exit 2; }

base="${BENCH_H2_PORT_BASE:-19680}"
declare -A port=([upstream]=$base [nghttpx/h2c]=$((base + 1)) [nghttpx/tls]=$((base + 2))
                 [nginx/h2c]=$((base + 3)) [nginx/tls]=$((base + 4)) [haproxy/h2c]=$((base + 5))
                 [haproxy/tls]=$((base + 6)) [envoy-swift/h2c]=$((base + 7)) [envoy-swift/tls]=$((base + 8))
                 [envoy-swift+noop/h2c]=$((base + 9)) [envoy-swift+noop/tls]=$((base + 10)))
# The process whose CPU time (with its children's: nginx's and nghttpx's workers, envoy-swift's) a
# setup's run is.
owner_of() { case "$1" in envoy-swift*) echo envoy-swift ;; *) echo "${1%/*}" ;; esac; }
label() { case "$1" in envoy-swift+noop/*) echo "envoy-swift, 1 no-op filter" ;; envoy-swift/*) echo "envoy-swift, no filter" ;; *) echo "${1%/*}" ;; esac; }
busy="$(ports_busy "${port[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_H2_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx's worker runs as nobody
max_conns=4096
# The binaries run from copies: build/ may be rebuilt during the run, and a library rewritten in place
# under a running proxy crashes it.
mkdir "$tmp/bin"
cp "$bin" "$lib" "$tmp/bin/"
es_rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- CHost Sources Filters 2>/dev/null || echo ' + uncommitted changes')"
bin="$tmp/bin/$(basename "$bin")" lib="$tmp/bin/$(basename "$lib")"
cleanup() { trap - EXIT INT TERM HUP; stop "${!proc[@]}"; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A throwaway self-signed certificate (EC P-256) for 127.0.0.1, kept in build/ across runs.
certdir=build/bench-h2
cert="$PWD/$certdir/cert.pem" key="$PWD/$certdir/key.pem"
if [ ! -s "$cert" ] || [ ! -s "$key" ]; then
    mkdir -p "$certdir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$key" -out "$cert" 2>/dev/null
fi
cat "$cert" "$key" >"$tmp/haproxy.pem"

# --- the servers -----------------------------------------------------------------------------------
up="127.0.0.1:${port[upstream]}"
launch upstream build/es-upstream --port "${port[upstream]}" --quiet

launch nghttpx nghttpx --conf=/dev/null --single-thread --workers=1 --no-ocsp \
    --frontend="127.0.0.1,${port[nghttpx/h2c]};no-tls" --frontend="127.0.0.1,${port[nghttpx/tls]}" \
    --backend="127.0.0.1,${port[upstream]}" --backend-keep-alive-timeout=300s \
    --errorlog-file="$tmp/nghttpx.err" "$key" "$cert"

{
    nginx_conf nginx 1
    cat <<EOF
    upstream backend { server $up; keepalive 1024; keepalive_requests 1000000; keepalive_timeout 60s; }
    server {
        listen 127.0.0.1:${port[nginx/h2c]} http2 backlog=4096;
        listen 127.0.0.1:${port[nginx/tls]} ssl http2 backlog=4096;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
} >"$tmp/nginx.conf"
launch nginx "$nginx" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;'

cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $max_conns
    no strict-limits
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:${port[haproxy/h2c]} proto h2
    bind 127.0.0.1:${port[haproxy/tls]} ssl crt $tmp/haproxy.pem alpn h2
    default_backend be
backend be
    server up $up
EOF
launch haproxy haproxy -db -f "$tmp/haproxy.cfg"

# envoy-swift: one worker; a plain and a TLS listener with no filter, the same two with the no-op filter.
es_listener() { # setup filter(none|noop)
    local s="$1"
    printf '  - name: %s\n    address: 127.0.0.1\n    port: %s\n    idle_timeout: 300s\n' "${s//[\/+]/-}" "${port[$s]}"
    [[ "$s" != */tls ]] || printf '    tls: { cert: %s, key: %s }\n' "$cert" "$key"
    [ "$2" = none ] || printf '    http_filters:\n      - { name: noop, so_path: %s, plugin_name: noop, plugin_config: {} }\n' "$lib"
    printf '    routes: [ { match: { prefix: / }, cluster: backend } ]\n'
}
{
    echo "workers: 1"
    echo "listeners:"
    es_listener envoy-swift/h2c none
    es_listener envoy-swift/tls none
    es_listener envoy-swift+noop/h2c noop
    es_listener envoy-swift+noop/tls noop
    printf 'clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %s } ]\n' "${port[upstream]}"
} >"$tmp/envoy-swift.yaml"
launch envoy-swift "$bin" -c "$tmp/envoy-swift.yaml" --log-level warn
sleep 0.5

url() { # setup -> the URL h2load and curl use
    local s="$1"
    case "$s" in */tls) echo "https://127.0.0.1:${port[$s]}/" ;; *) echo "http://127.0.0.1:${port[$s]}/" ;; esac
}
probe() { # setup -> "CODE VERSION" of one GET over HTTP/2 (h2c prior knowledge, or TLS with ALPN)
    local s="$1" how=(--http2-prior-knowledge)
    [[ "$s" != */tls ]] || how=(-k --http2)
    curl -s "${how[@]}" -m 2 -o /dev/null -w '%{http_code} %{http_version}' "$(url "$s")" || true
}

setups=() es_h2=()
all_setups=(nghttpx/h2c nginx/h2c haproxy/h2c envoy-swift/h2c envoy-swift+noop/h2c
            nghttpx/tls nginx/tls haproxy/tls envoy-swift/tls envoy-swift+noop/tls)
for s in "${all_setups[@]}"; do
    # Up to 3 s for the server to listen (curl's code 000: nothing answered), then one verdict.
    for _ in $(seq 15); do v="$(probe "$s")"; [[ "$v" == 000* ]] || break; sleep 0.2; done
    if [ "$v" = "200 2" ]; then
        setups+=("$s")
    elif [[ "$s" == envoy-swift* ]]; then
        es_h2+=("$s: no HTTP/2 yet (curl: $v)")
        progress "envoy-swift: no HTTP/2 yet ($s, curl: $v)"
    else
        fail "$s does not answer 200 over HTTP/2 (curl: $v); its log ends: $(tail -n 3 "$tmp/$(owner_of "$s").log" 2>/dev/null | tr '\n' ' ')"
    fi
done

# --- the measurements ------------------------------------------------------------------------------
clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { # pid -> utime + stime of it and its children (every thread), in clock ticks
    local t=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        v="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)"
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
declare -A rps=() mean=() maxl=() cpu=()
run_h2load() { # requests setup -> "req/s mean_ms max_ms succeeded"
    local o
    o="$(h2load -c64 -m10 -n "$1" "$(url "$2")" 2>&1)" || true
    awk '
        /^finished in/ { r = $4 }
        /^requests:/ { s = $8 }
        /^time for request:/ { mx = $5; me = $6 }   # min max mean sd
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        END { printf "%s %.2f %.2f %s\n", r, ms(me), ms(mx), s }' <<<"$o"
}
for r in $(seq "$rounds"); do
    for s in "${setups[@]}"; do
        run_h2load 1000 "$s" >/dev/null  # warm-up: connections, TLS sessions, upstream pool
        pid="${proc[$(owner_of "$s")]}"
        t0="$(cpu_ticks "$pid")"
        read -r a b c d <<<"$(run_h2load "$requests" "$s")"
        t1="$(cpu_ticks "$pid")"
        u="$(awk -v t="$((t1 - t0))" -v h="$clk_tck" -v n="${d:-0}" 'BEGIN {printf "%.2f", (n > 0 ? t * 1e6 / h / n : 0)}')"
        rps[$s]+="$a " mean[$s]+="$b " maxl[$s]+="$c " cpu[$s]+="$u "
        progress "round $r/$rounds: $s: $a req/s, mean $b ms, CPU $u µs/req"
        [ "${d:-0}" = "$requests" ] || fail "$s round $r: ${d:-0} of $requests requests succeeded"
    done
done

med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
cost() { awk -v o="$1" -v z="$2" 'BEGIN { if (z > 0) printf "%.1f%%", 100 * (1 - o / z); else print "-" }'; }
cpu_cost() { awk -v o="$1" -v z="$2" 'BEGIN { if (z > 0) printf "+%.2f µs (%.1f%%)", o - z, 100 * (o - z) / z; else print "-" }'; }
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "**HTTP/2 front ends** (\`bench/h2.sh\`, \`make bench-h2\`): \`h2load -c64 -m10 -n $requests\` (one"
echo "h2load thread: 64 connections, 10 streams in flight on each) against each proxy with one worker"
echo "(nghttpx \`--single-thread --workers=1\`, nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`,"
echo "envoy-swift \`workers: 1\`), all in front of the same HTTP/1.1 upstream (\`build/es-upstream\`,"
echo "keep-alive; each proxy pools its connections to it), over h2c (prior knowledge) and TLS (ALPN h2,"
echo "an EC P-256 certificate). envoy-swift runs with no filter and with one no-op Swift filter (\`noop\`"
echo "from \`libswiftfilter.so\`). $rounds round(s) alternate the setups, each after a discarded run of"
echo "1,000 requests; every column is the median of its rounds. CPU µs/req is the proxy's own CPU"
echo "time (user + sys of its processes, every thread, from \`/proc/PID/stat\`) over the run, divided by"
echo "the requests: it depends much less than req/s on how h2load, the upstream and the proxy share the"
echo "$(nproc) cores, though it too rises on a busy machine. Load (1, 5, 15 min) at the end: $load."
echo
echo "| proxy | protocol | req/s | vs nghttpx | mean ms | max ms | CPU µs/req |"
echo "|---|---|---:|---:|---:|---:|---:|"
for s in "${all_setups[@]}"; do
    proto="${s#*/}" name="$(label "$s")"
    if [ -z "${rps[$s]:-}" ]; then
        [[ "$s" == envoy-swift* ]] && echo "| $name | $proto | no HTTP/2 yet | | | | |" || echo "| $name | $proto | failed | | | | |"
        continue
    fi
    r="$(med "${rps[$s]}")"
    printf '| %s | %s | %.0f | %s | %s | %s | %s |\n' "$name" "$proto" "$r" "$(ratio "$r" "$(med "${rps[nghttpx/$proto]:-0}")")" \
        "$(med "${mean[$s]}")" "$(med "${maxl[$s]}")" "$(med "${cpu[$s]}")"
done
echo
if [ -n "${rps[envoy-swift/h2c]:-}${rps[envoy-swift/tls]:-}" ]; then
    t1="" t1ok=1 t2="" t2c="" t2ok=1
    for proto in h2c tls; do
        z="$(med "${rps[envoy-swift/$proto]:-0}")" o="$(med "${rps[envoy-swift+noop/$proto]:-0}")"
        n="$(med "${rps[nghttpx/$proto]:-0}")"
        t1+="$proto $(ratio "$z" "$n"); " t2+="$proto $(cost "$o" "$z"); "
        t2c+="$proto $(cpu_cost "$(med "${cpu[envoy-swift+noop/$proto]:-0}")" "$(med "${cpu[envoy-swift/$proto]:-0}")"); "
        awk -v a="$z" -v b="$n" 'BEGIN {exit !(b > 0 && a >= 1.1 * b)}' || t1ok=0
        awk -v o="$o" -v z="$z" 'BEGIN {exit !(z > 0 && 100 * (1 - o / z) <= 5)}' || t2ok=0
    done
    yn() { [ "$1" = 1 ] && echo yes || echo no; }
    echo "| target (HTTP/2) | measured | met |"
    echo "|---|---|---|"
    echo "| envoy-swift, no filter: req/s ≥ 1.1x nghttpx | ${t1%; } | $(yn $t1ok) |"
    echo "| a no-op Swift filter costs ≤ 5% of envoy-swift's no-filter req/s | ${t2%; } | $(yn $t2ok) |"
    echo "| (the no-op filter's added CPU per request, same runs) | ${t2c%; } | — |"
    echo
fi
for e in "${es_h2[@]}"; do echo "- $e"; done
echo "- each round's req/s (CPU µs/req):"
for s in "${setups[@]}"; do
    line=""
    read -ra rr <<<"${rps[$s]}"
    read -ra cc <<<"${cpu[$s]}"
    for i in "${!rr[@]}"; do line+="${rr[$i]} (${cc[$i]:-?}), "; done
    echo "  - $(label "$s"), ${s#*/}: ${line%, }"
done
echo "- envoy-swift $es_rev; $(nghttpx --version | head -n 1); $("$nginx" -v 2>&1 | sed 's/^nginx version: //'); $(haproxy -v | head -n 1 | awk '{print "HAProxy", $3}'); $(h2load --version | head -n 1)"
if [ "${#failures[@]}" -gt 0 ]; then
    echo
    for f in "${failures[@]}"; do echo "- FAILED: $f"; done
    exit 1
fi
