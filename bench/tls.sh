#!/usr/bin/env bash
# TLS termination, measured: requests per second and p50/p99 latency of HTTPS through envoy-swift
# (a TLS listener, workers: 1, no filter) and through nginx terminating TLS with the same
# certificate (worker_processes 1, proxy_pass with upstream keep-alive), both in front of the same
# plain-HTTP nginx upstream answering "hello\n"; the same two proxies over plain HTTP for reference.
# wrk keeps its connections open (-t2 -c64), so this is the cost of record encryption on a
# keep-alive path, not of handshakes. Rounds alternate the four variants; medians are reported.
# Numbers are reported, never asserted.
#
#   bench/tls.sh [SECONDS_PER_RUN] [ROUNDS]      (defaults 5 and 3; `make bench-tls`)
#
# Needs the release build (make build), wrk, nginx and openssl. A throwaway CA and an EC P-256
# certificate for localhost/127.0.0.1 are made in a temp dir, removed at exit with every process
# started here (also on Ctrl-C or failure). Ports: 19443-19447 (BENCH_TLS_PORT_BASE moves them).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh  # ports_busy, nginx_conf (the same nginx settings as bench/run.sh)
max_conns=4096

secs="${1:-5}"
rounds="${2:-3}"
conns="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
bin=build/envoy-swift
[ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 2; }
for t in wrk openssl curl python3; do
    command -v "$t" >/dev/null || { echo "$t is not installed" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

base="${BENCH_TLS_PORT_BASE:-19443}"
declare -A port=([envoy-swift/https]=$base [nginx/https]=$((base + 1))
                 [envoy-swift/http]=$((base + 2)) [nginx/http]=$((base + 3)))
up_port=$((base + 4))
variants=(envoy-swift/https nginx/https envoy-swift/http nginx/http)

# Every port must be free before anything starts.
busy="$(ports_busy "${port[@]}" "$up_port")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_TLS_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
    trap - EXIT INT TERM HUP
    local p
    [ -z "${wrk_pid:-}" ] || kill -TERM "$wrk_pid" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    # nginx masters stop their workers on TERM; give everyone a moment before KILL.
    for _ in $(seq 30); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# 1. A throwaway CA and a server certificate for localhost and 127.0.0.1, EC P-256.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days 1 \
    -subj "/CN=envoy-swift bench CA" 2>/dev/null
openssl req -new "${ec[@]}" -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$tmp/server.ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 1 \
    -extfile "$tmp/server.ext" -out "$tmp/server.crt" 2>/dev/null
cert="$tmp/server.crt" key="$tmp/server.key"

start_nginx() { # name
    mkdir -p "$tmp/$1.tmp"
    "$nginx" -p "$tmp" -c "$tmp/$1.conf" -g 'daemon off;' >"$tmp/$1.log" 2>&1 &
    pids+=($!)
}

# 2. The upstream: nginx answering a fixed "hello\n" with keep-alive.
{
    nginx_conf upstream 1
    cat <<EOF
    server {
        listen 127.0.0.1:$up_port backlog=4096;
        location / { default_type text/plain; return 200 "hello\n"; }
    }
}
EOF
} >"$tmp/upstream.conf"
start_nginx upstream

# 3b. nginx terminating TLS (and plain HTTP) in front of it, headers as envoy-swift sets them.
proxy_location='location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }'
{
    nginx_conf proxy 1
    cat <<EOF
    upstream backend { server 127.0.0.1:$up_port; keepalive 64; keepalive_requests 1000000; }
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:${port[nginx/https]} ssl backlog=4096;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        $proxy_location
    }
    server {
        listen 127.0.0.1:${port[nginx/http]} backlog=4096;
        $proxy_location
    }
}
EOF
} >"$tmp/proxy.conf"
start_nginx proxy

# 3a. envoy-swift: one TLS and one plain listener, workers: 1, no filter.
cat >"$tmp/envoy-swift.yaml" <<EOF
workers: 1
listeners:
  - name: https
    address: 127.0.0.1
    port: ${port[envoy-swift/https]}
    tls: { cert: $cert, key: $key }
    routes:
      - match: { prefix: / }
        cluster: backend
  - name: http
    address: 127.0.0.1
    port: ${port[envoy-swift/http]}
    routes:
      - match: { prefix: / }
        cluster: backend
clusters:
  - name: backend
    endpoints: [ { address: 127.0.0.1, port: $up_port } ]
EOF
"$bin" -c "$tmp/envoy-swift.yaml" --log-level warn >"$tmp/envoy-swift.log" 2>&1 &
pids+=($!)

url() { # variant -> URL
    local scheme="${1#*/}"
    echo "$scheme://127.0.0.1:${port[$1]}/"
}
# Each variant must answer "hello" through the proxy (certificate verified) before any run.
for v in "${variants[@]}"; do
    body=""
    for _ in $(seq 100); do
        body="$(curl -fsS --cacert "$tmp/ca.crt" "$(url "$v")" 2>/dev/null)" && break
        sleep 0.05
    done
    if [ "$body" != hello ]; then
        echo "$v did not answer through $(url "$v") (got: '$body'); logs:" >&2
        tail -n 20 "$tmp"/*.log >&2
        exit 1
    fi
done

# What each TLS listener negotiates with OpenSSL's client defaults (what wrk uses too).
negotiated() { # port
    openssl s_client -connect "127.0.0.1:$1" -servername localhost -CAfile "$tmp/ca.crt" -alpn http/1.1 \
        </dev/null 2>&1 |
        awk -F': ' '/^New, / {split($0, n, ", "); p = n[2]; c = n[3]; sub(/^Cipher is /, "", c)}
                    /^Server Temp Key/ {k = $2} /^Peer signature type/ {s = $2}
                    /^ALPN protocol/ {a = $2} /^Verify return code/ {v = $2}
                    END {printf "%s %s, key exchange %s, signature %s, ALPN %s, verify %s",
                                p, c, k, s, (a ? a : "none"), v}'
}

# wrk in the background, so that a signal reaches the trap at once.
wrk_pid=""
run_wrk() { # variant secs: the report in $tmp/wrk.out
    wrk -t"$threads" -c"$conns" -d"$2s" --latency "$(url "$1")" >"$tmp/wrk.out" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || true
    wrk_pid=""
}
parse_wrk() { # -> "req/s p50_ms p99_ms errors"
    awk 'function ms(s) {
             if (s ~ /us$/) return s / 1000; if (s ~ /ms$/) return s + 0; if (s ~ /s$/) return s * 1000
             return s + 0 }
         /Requests\/sec/ {rps = $2}
         $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
         /Non-2xx/ {err += $NF}
         /Socket errors/ {gsub(/,/, ""); err += $4 + $6 + $8 + $10}
         END {printf "%s %s %s %d\n", rps + 0, p50 + 0, p99 + 0, err}' "$tmp/wrk.out"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

load="$(cut -d' ' -f1-3 /proc/loadavg)"
# A short discarded run each, then alternating rounds.
for v in "${variants[@]}"; do run_wrk "$v" 1; done
declare -A rps p50 p99 errs
for _ in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        run_wrk "$v" "$secs"
        read -r r a b e < <(parse_wrk)
        rps[$v]+="$r " p50[$v]+="$a " p99[$v]+="$b " errs[$v]=$(( ${errs[$v]:-0} + e ))
    done
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }

echo "envoy-swift vs nginx, TLS termination: $(nproc) cores, one worker each, upstream nginx (1 worker) on loopback,"
echo "wrk -t$threads -c$conns keep-alive, ${secs}s x $rounds alternating rounds (median of each column); load before: $load"
printf '%-12s %-6s %10s %9s %9s %9s %7s\n' proxy scheme "req/s" "p50 ms" "p99 ms" "vs nginx" errors
for v in "${variants[@]}"; do
    scheme="${v#*/}"
    m="$(med "${rps[$v]}")" n="$(med "${rps[nginx/$scheme]}")"
    printf '%-12s %-6s %10.0f %9.3f %9.3f %8.3fx %7d\n' "${v%/*}" "$scheme" "$m" "$(med "${p50[$v]}")" \
        "$(med "${p99[$v]}")" "$(awk -v a="$m" -v b="$n" 'BEGIN {print a / b}')" "${errs[$v]}"
done
for v in "${variants[@]}"; do printf 'req/s per round, %-17s %s\n' "$v:" "${rps[$v]}"; done
for p in envoy-swift nginx; do
    h="$(med "${rps[$p/https]}")" c="$(med "${rps[$p/http]}")"
    printf 'HTTPS/HTTP req/s, %s: %.3f\n' "$p" "$(awk -v a="$h" -v b="$c" 'BEGIN {print a / b}')"
done
echo "negotiated, envoy-swift: $(negotiated "${port[envoy-swift/https]}")"
echo "negotiated, nginx:       $(negotiated "${port[nginx/https]}")"
echo "certificate: EC P-256 leaf signed by a throwaway CA (ECDSA-SHA256)"
echo "versions: envoy-swift $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- CHost 2>/dev/null || echo ' (CHost modified)')" \
    "on $(ldd "$bin" | awk '/libssl/ {print $1}');" \
    "$("$nginx" -v 2>&1 | sed 's/^nginx version: //') on OpenSSL $("$nginx" -V 2>&1 | grep -o 'running with OpenSSL [0-9.a-z]*\|^built with OpenSSL [0-9.a-z]*' | tail -1 | sed 's/^.*OpenSSL //');" \
    "$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}');" \
    "system $(openssl version | awk '{print $1, $2}')"
