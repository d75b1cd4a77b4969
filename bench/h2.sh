#!/usr/bin/env bash
# HTTP/2 front ends, measured and never asserted: h2load (-c64 -m10, -n requests) through nghttpx,
# nginx and HAProxy, each with ONE worker (nghttpx --single-thread, worker_processes 1, nbthread 1),
# in front of the same HTTP/1.1 upstream (build/es-upstream), over h2c (prior knowledge) and TLS
# (ALPN h2). envoy-swift (workers: 1) is measured the same way when it answers HTTP/2, and otherwise
# reported as "no HTTP/2 yet". Rounds alternate the setups; medians of req/s and of h2load's mean
# request time are printed as a table, with req/s as a ratio of nghttpx's.
#
#   bench/h2.sh [--smoke]      (`make bench-h2`; --smoke: 2,000 requests, 1 round)
#
# Environment: BENCH_H2_REQUESTS (100000), BENCH_H2_ROUNDS (3), BENCH_H2_PORT_BASE (19680: ports
# 19680-19688 must be free). Needs build/envoy-swift, build/es-upstream, h2load (nghttp2-client),
# nghttpx (nghttp2-proxy), nginx (with http_v2_module), haproxy, openssl, curl. A throwaway
# self-signed certificate is made in build/bench-h2/ (never committed); everything else runs from a
# temp dir removed at exit with every process started here.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh  # ports_busy, nginx_conf
. bench/procs.sh    # launch, stop, fail, progress

requests="${BENCH_H2_REQUESTS:-100000}" rounds="${BENCH_H2_ROUNDS:-3}"
case "${1:-}" in
--smoke) requests=2000 rounds=1 ;;
"") ;;
*) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
for f in build/envoy-swift build/es-upstream; do [ -x "$f" ] || { echo "missing $f: make $f" >&2; exit 2; }; done
for t in h2load nghttpx haproxy openssl curl; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench-h2 installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
"$nginx" -V 2>&1 | grep -q http_v2_module || { echo "nginx lacks http_v2_module" >&2; exit 2; }

base="${BENCH_H2_PORT_BASE:-19680}"
declare -A port=([upstream]=$base [nghttpx/h2c]=$((base + 1)) [nghttpx/tls]=$((base + 2))
                 [nginx/h2c]=$((base + 3)) [nginx/tls]=$((base + 4)) [haproxy/h2c]=$((base + 5))
                 [haproxy/tls]=$((base + 6)) [envoy-swift/h2c]=$((base + 7)) [envoy-swift/tls]=$((base + 8)))
busy="$(ports_busy "${port[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_H2_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx's worker runs as nobody
max_conns=4096
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

# ==== envoy-swift slot: one worker, a plain and a TLS listener, no filter ==========================
cat >"$tmp/envoy-swift.yaml" <<EOF
workers: 1
listeners:
  - name: h2c
    address: 127.0.0.1
    port: ${port[envoy-swift/h2c]}
    idle_timeout: 300s
    routes: [ { match: { prefix: / }, cluster: backend } ]
  - name: tls
    address: 127.0.0.1
    port: ${port[envoy-swift/tls]}
    idle_timeout: 300s
    tls: { cert: $cert, key: $key }
    routes: [ { match: { prefix: / }, cluster: backend } ]
clusters:
  - name: backend
    endpoints: [ { address: 127.0.0.1, port: ${port[upstream]} } ]
EOF
launch envoy-swift build/envoy-swift -c "$tmp/envoy-swift.yaml"
# ===================================================================================================
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
for s in nghttpx/h2c nghttpx/tls nginx/h2c nginx/tls haproxy/h2c haproxy/tls envoy-swift/h2c envoy-swift/tls; do
    # Up to 3 s for the server to listen (curl's code 000: nothing answered), then one verdict.
    for _ in $(seq 15); do v="$(probe "$s")"; [[ "$v" == 000* ]] || break; sleep 0.2; done
    if [ "$v" = "200 2" ]; then
        setups+=("$s")
    elif [[ "$s" == envoy-swift/* ]]; then
        es_h2+=("$s: no HTTP/2 yet (curl: $v)")
        progress "envoy-swift: no HTTP/2 yet ($s, curl: $v)"
    else
        fail "$s does not answer 200 over HTTP/2 (curl: $v); its log ends: $(tail -n 3 "$tmp/${s%/*}.log" 2>/dev/null | tr '\n' ' ')"
    fi
done

# --- the measurements ------------------------------------------------------------------------------
declare -A rps=() mean=() maxl=() okreq=()
run_h2load() { # setup -> "req/s mean_ms max_ms succeeded"
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
        progress "round $r/$rounds: $s"
        run_h2load 1000 "$s" >/dev/null  # warm-up: connections, TLS sessions, upstream pool
        read -r a b c d <<<"$(run_h2load "$requests" "$s")"
        rps[$s]+="$a " mean[$s]+="$b " maxl[$s]+="$c " okreq[$s]+="$d "
        [ "${d:-0}" = "$requests" ] || fail "$s round $r: $d of $requests requests succeeded"
    done
done

med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}'; }
echo
echo "## HTTP/2 front ends: h2load -c64 -m10 -n $requests, $rounds round(s), medians; one worker each; upstream build/es-upstream (HTTP/1.1)"
echo
echo "| proxy | protocol | req/s | vs nghttpx | mean ms | max ms |"
echo "|---|---|---:|---:|---:|---:|"
for s in nghttpx/h2c nginx/h2c haproxy/h2c envoy-swift/h2c nghttpx/tls nginx/tls haproxy/tls envoy-swift/tls; do
    proto="${s#*/}" name="${s%/*}"
    if [ -z "${rps[$s]:-}" ]; then
        [[ "$name" == envoy-swift ]] && echo "| $name | $proto | no HTTP/2 yet | | | |" || echo "| $name | $proto | failed | | | |"
        continue
    fi
    r="$(med "${rps[$s]}")" ref="$(med "${rps[nghttpx/$proto]:-0}")"
    printf '| %s | %s | %.0f | %s | %s | %s |\n' "$name" "$proto" "$r" \
        "$(awk -v a="$r" -v b="$ref" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" \
        "$(med "${mean[$s]}")" "$(med "${maxl[$s]}")"
done
echo
for e in "${es_h2[@]}"; do echo "- $e"; done
echo "- $(nghttpx --version | head -n 1); $("$nginx" -v 2>&1 | sed 's/^nginx version: //'); $(haproxy -v | head -n 1 | awk '{print "HAProxy", $3}'); $(h2load --version | head -n 1)"
if [ "${#failures[@]}" -gt 0 ]; then
    echo
    for f in "${failures[@]}"; do echo "- FAILED: $f"; done
    exit 1
fi
