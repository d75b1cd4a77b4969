#!/usr/bin/env bash
# The cost of one proxied request in each proxy, counted rather than timed (issue 7): on a shared
# 2-core machine req/s moves with the load, while these counts do not.
#
# - User-space instructions per request: the proxy runs under valgrind --tool=callgrind (every
#   thread of its process counted) and one keep-alive client does N1 requests; then a fresh proxy
#   and N2 requests. (Ir(N2) - Ir(N1)) / (N2 - N1) is what a request costs, since start-up, the
#   readiness check, the first connection and shutdown are the same in both runs.
# - Syscalls per request: the proxy runs natively, strace -c -f attaches to it and the same client
#   does a fixed number of requests.
#
# Setups (the configurations bench/run.sh measures, 1 worker each): nginx proxy_pass (with
# `master_process off`, so that the one process valgrind sees is the worker), HAProxy (-db,
# nbthread 1), envoy-swift with no filter, 1 noop, 3 header_touch, 1 async_noop. All are behind
# one upstream nginx that runs natively. Prints Markdown; bench/run.sh includes it in
# BENCHMARKS.md. Exits non-zero only if a setup could not be driven.
#
#   bench/instr.sh [ENVOY_SWIFT_BINARY LIBSWIFTFILTER]    (default: build/envoy-swift build/libswiftfilter.so)
#
# Environment: BENCH_INSTR_N1 (2000), BENCH_INSTR_N2 (12000), BENCH_STRACE_N (5000),
# BENCH_PORT_BASE (19620: ports 19620-19623 must be free). Needs valgrind, strace, nginx, haproxy,
# python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh
. bench/procs.sh

bin="${1:-build/envoy-swift}" lib="${2:-build/libswiftfilter.so}"
n1="${BENCH_INSTR_N1:-2000}" n2="${BENCH_INSTR_N2:-12000}" ns="${BENCH_STRACE_N:-5000}"
[ "$n2" -gt "$n1" ] || { echo "BENCH_INSTR_N2 must be larger than BENCH_INSTR_N1" >&2; exit 2; }
for f in "$bin" "$lib"; do [ -e "$f" ] || { echo "missing $f: run make build" >&2; exit 2; }; done
for t in valgrind strace curl python3 haproxy; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench-deps installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

base="${BENCH_PORT_BASE:-19620}"
setups=(${BENCH_SETUPS:-nginx haproxy es-none es-noop es-headers3 es-async es-metric es-log-text es-log-json})
# One envoy-swift listener at a time, so the envoy-swift setups share a port.
declare -A port=([upstream]=$base [nginx]=$((base + 1)) [haproxy]=$((base + 2)) [es-none]=$((base + 3))
                 [es-noop]=$((base + 3)) [es-headers3]=$((base + 3)) [es-async]=$((base + 3))
                 [es-metric]=$((base + 3)) [es-log-text]=$((base + 3)) [es-log-json]=$((base + 3)))
declare -A label=([nginx]="nginx proxy_pass" [haproxy]="HAProxy"
                  [es-none]="envoy-swift, no filter" [es-noop]="envoy-swift, 1 no-op filter"
                  [es-headers3]="envoy-swift, 3 header filters" [es-async]="envoy-swift, 1 async no-op"
                  [es-metric]="envoy-swift, 1 filter: a counter and a histogram"
                  [es-log-text]="envoy-swift, no filter, access log (text)"
                  [es-log-json]="envoy-swift, no filter, access log (JSON)")

busy="$(ports_busy "$base" $((base + 1)) $((base + 2)) $((base + 3)))"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx workers run as nobody
# Copies, as bench/run.sh runs them: build/ may be rebuilt meanwhile, and a library rewritten
# under a running proxy crashes it.
mkdir "$tmp/bin"
cp "$bin" "$lib" "$tmp/bin/"
bin="$tmp/bin/$(basename "$bin")" lib="$tmp/bin/$(basename "$lib")"
tracer_pid="" client_pid=""
cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$tracer_pid" ] || kill -INT "$tracer_pid" 2>/dev/null || true
    [ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null || true
    stop "${!proc[@]}"
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- configurations: bench/configs.sh's, as bench/run.sh measures them, 1 worker ---------------------
max_conns=1024
upstream_conf 1 >"$tmp/upstream.conf"
# master_process off: nginx is the one process that valgrind and strace see, the worker itself.
{ echo "master_process off;"; nginx_proxy_conf 1; } >"$tmp/nginx.conf"
haproxy_conf 1 >"$tmp/haproxy.cfg"
for s in es-none es-noop es-headers3 es-async es-metric es-log-text es-log-json; do
    es_conf 1 "$s" >"$tmp/$s.yaml"
done

proxy_cmd() { # setup -> the command line, one word a line
    case "$1" in
    nginx) printf '%s\n' "$nginx" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' ;;
    haproxy) printf '%s\n' haproxy -db -f "$tmp/haproxy.cfg" ;;
    *) printf '%s\n' "$bin" -c "$tmp/$1.yaml" --log-level warn ;;
    esac
}

# The client: one keep-alive connection, N requests one after the other, each response read by its
# Content-Length; the first one must be "hello" (with x-t1..x-t3 for the header filters).
cat >"$tmp/client.py" <<'EOF'
import socket, sys
port, n, want = int(sys.argv[1]), int(sys.argv[2]), [h.encode() for h in sys.argv[3:]]
req = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=120)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def more(i):
    d = s.recv(65536)
    if not d:
        sys.exit(f"the connection closed after {i} responses")
    return d
for i in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += more(i)
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200 "):
        sys.exit(f"response {i}: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" not in headers:
        sys.exit(f"response {i}: no Content-Length")
    size = int(headers[b"content-length"])
    while len(buf) < size:
        buf += more(i)
    body, buf = buf[:size], buf[size:]
    if i == 0 and (body != b"hello\n" or any(h not in headers for h in want)):
        sys.exit(f"response 0: body {body!r}, headers {sorted(headers)}, wanted {want}")
print(n, "responses")
EOF
drive() { # setup count -> 0 when every response came
    local want=()
    [ "$1" != es-headers3 ] || want=(x-t1 x-t2 x-t3)
    python3 "$tmp/client.py" "${port[$1]}" "$2" "${want[@]}" >"$tmp/client.out" 2>&1 &
    client_pid=$!
    local rc=0
    wait "$client_pid" || rc=$?
    client_pid=""
    [ "$rc" = 0 ] || echo "the client: $(tail -n 1 "$tmp/client.out")" >&2
    return "$rc"
}
ready() { # setup seconds -> 0 once it answers "hello" (under valgrind, start-up takes seconds)
    local i
    for i in $(seq $(( $2 * 10 ))); do
        [ "$(curl -fsS --max-time 10 "http://127.0.0.1:${port[$1]}/" 2>/dev/null)" = hello ] && return 0
        kill -0 "${proc[$1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "${label[$1]} did not answer on port ${port[$1]}; its log ends:" >&2
    tail -n 5 "$tmp/$1.log" >&2
    return 1
}

launch upstream "$nginx" -p "$tmp" -c "$tmp/upstream.conf" -g 'daemon off;'
for i in $(seq 100); do
    [ "$(curl -fsS "http://127.0.0.1:${port[upstream]}/" 2>/dev/null)" = hello ] && break
    [ "$i" = 100 ] && { echo "the upstream nginx did not answer; its log:" >&2; cat "$tmp/upstream.log" "$tmp/upstream.error.log" >&2 2>/dev/null; exit 1; }
    sleep 0.05
done

# --- instructions: callgrind, two runs per setup -----------------------------------------------------
declare -A ir per_req sys_calls
for s in "${setups[@]}"; do
    mapfile -t cmd < <(proxy_cmd "$s")
    for n in "$n1" "$n2"; do
        out="$tmp/callgrind.$s.$n"
        progress "callgrind: ${label[$s]}, $n requests"
        # %p: one file per process (envoy-swift's supervisor and its forked worker, which valgrind follows).
        launch "$s" valgrind --tool=callgrind --callgrind-out-file="$out.%p" "${cmd[@]}"
        if ready "$s" 120 && drive "$s" "$n"; then
            stop "$s" --wait 60
            # "totals:" is the sum over the whole run, all threads (no --separate-threads), and the files
            # of every process are added up.
            ir[$s/$n]="$(awk '/^(totals|summary):/ {t += $2; seen = 1; nextfile} END {if (seen) print t}' "$out".* \
                         2>/dev/null || true)"
            [ -n "${ir[$s/$n]}" ] || fail "${label[$s]}: callgrind wrote no totals ($(tail -n 2 "$tmp/$s.log" | tr '\n' ' '))"
        else
            fail "${label[$s]}: could not be driven under callgrind ($n requests)"
            stop "$s" --wait 60
        fi
    done
    if [ -n "${ir[$s/$n1]:-}" ] && [ -n "${ir[$s/$n2]:-}" ]; then
        per_req[$s]="$(awk -v a="${ir[$s/$n1]}" -v b="${ir[$s/$n2]}" -v n1="$n1" -v n2="$n2" \
                       'BEGIN {printf "%.0f", (b - a) / (n2 - n1)}')"
        progress "${label[$s]}: ${per_req[$s]} instructions per request (Ir ${ir[$s/$n1]} / ${ir[$s/$n2]})"
    fi
done

# --- syscalls: strace -c -f on the native proxy --------------------------------------------------
for s in "${setups[@]}"; do
    mapfile -t cmd < <(proxy_cmd "$s")
    progress "strace: ${label[$s]}, $ns requests"
    launch "$s" "${cmd[@]}"
    if ! ready "$s" 20; then
        fail "${label[$s]}: did not start natively"
        stop "$s"
        continue
    fi
    # -f with -p attaches every thread of the process (and, for envoy-swift's supervisor, -p each worker
    # process it forked); counting starts once strace says so.
    : >"$tmp/strace.$s.err"
    pids=(-p "${proc[$s]}")
    for c in $(pgrep -P "${proc[$s]}" || true); do pids+=(-p "$c"); done
    strace -c -f "${pids[@]}" -o "$tmp/strace.$s" 2>"$tmp/strace.$s.err" &
    tracer_pid=$!
    for _ in $(seq 100); do grep -q attached "$tmp/strace.$s.err" && break; sleep 0.05; done
    sleep 0.2
    rc=0
    drive "$s" "$ns" || rc=$?
    kill -INT "$tracer_pid" 2>/dev/null || true
    wait "$tracer_pid" 2>/dev/null || true
    tracer_pid=""
    stop "$s"
    if [ "$rc" != 0 ]; then
        fail "${label[$s]}: could not be driven under strace"
        continue
    fi
    # The table: "% time seconds usecs/call calls [errors] syscall"; the last column lists what
    # happens at least once per 200 requests, most frequent first.
    sys_calls[$s]="$(awk '$1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {print $4, $NF}' "$tmp/strace.$s" |
        sort -k1,1nr -k2 | awk -v n="$ns" '
        {   all += $1
            if ($2 ~ /^(read|readv|recv|recvfrom|recvmsg)$/) rd += $1
            else if ($2 ~ /^(write|writev|send|sendto|sendmsg)$/) wr += $1
            else if ($2 ~ /^epoll_(p)?wait2?$/) ep += $1
            if ($1 / n >= 0.005) names = names sprintf("%s%s %.2f", names == "" ? "" : ", ", $2, $1 / n) }
        END {printf "%.2f|%.2f|%.2f|%.2f|%s", rd / n, wr / n, ep / n, all / n, names}')"
    progress "${label[$s]}: ${sys_calls[$s]}"
done
stop upstream

# --- the report --------------------------------------------------------------------------------------
cat <<EOF
**Instructions per request**, counted by \`valgrind --tool=callgrind\` (\`bench/instr.sh\`, \`make
bench-instr\`): each proxy with 1 worker under callgrind, all of its threads counted, behind the
upstream nginx (not under valgrind); one keep-alive client doing $n1 requests, then a fresh proxy
and $n2 requests: (Ir($n2) - Ir($n1)) / $((n2 - n1)), so start-up and shutdown cancel out. This is
user-space work only (the proxy's code and its libraries, libc included); the kernel's part of each
request is in the syscall counts below. nginx runs with \`master_process off\` (one process, the
worker), HAProxy with \`-db\` and \`nbthread 1\`.

| setup | instructions/request | vs nginx |
|---|---:|---:|
EOF
for s in "${setups[@]}"; do
    if [ -n "${per_req[$s]:-}" ]; then
        printf '| %s | %s | %s |\n' "${label[$s]}" "${per_req[$s]}" \
            "$(awk -v a="${per_req[$s]}" -v b="${per_req[nginx]:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}')"
    else
        printf '| %s | failed | - |\n' "${label[$s]}"
    fi
done
cat <<EOF

**Syscalls per request**: \`strace -c -f -p PID\` on each proxy running natively, around $ns
requests of the same client on one keep-alive connection, every thread of the process counted.
The client's connection is accepted and closed within the count (less than 0.01 per request); "of
which" names the syscalls made at least once per 200 requests.

| setup | read, recv | write, writev, send | epoll_wait | all syscalls | of which |
|---|---:|---:|---:|---:|---|
EOF
for s in "${setups[@]}"; do
    if [ -n "${sys_calls[$s]:-}" ]; then
        IFS='|' read -r rd wr ep all names <<<"${sys_calls[$s]}"
        printf '| %s | %s | %s | %s | %s | %s |\n' "${label[$s]}" "$rd" "$wr" "$ep" "$all" "$names"
    else
        printf '| %s | failed | - | - | - | - |\n' "${label[$s]}"
    fi
done
if [ "${#failures[@]}" -gt 0 ]; then
    echo
    for f in "${failures[@]}"; do echo "- failed: $f"; done
    exit 1
fi
