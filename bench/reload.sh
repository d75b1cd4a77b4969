#!/usr/bin/env bash
# Configuration reloads under load, measured and never asserted: envoy-swift (SIGHUP to its
# supervisor), nginx (SIGHUP to its master, what `nginx -s reload` sends) and HAProxy in
# master-worker mode (`-W`; SIGUSR2 to the master, the listening sockets handed to the new worker
# through the stats socket's `expose-fd listeners`), side by side in one run, each in front of the
# same upstream nginx as in bench/run.sh:
#
# - Failed requests: wrk -t2 -c32 over keep-alive connections for 12 s while the proxy is reloaded
#   10 times, once a second from the 1st second on. Every reload is a real change: the value of the
#   X-Config-Generation response header that each proxy sets (envoy-swift with a header_rewrite
#   Swift filter, nginx with add_header, HAProxy with http-response set-header). Failed = wrk's
#   socket errors (connect, read, write, timeout) + responses that are not 2xx or 3xx. The full run
#   also reloads HAProxy with `option idle-close-on-response` (its old worker answers one more
#   request with Connection: close instead of closing idle keep-alive connections).
# - Time to the new configuration: after each signal, a probe opens a new connection every 2 ms
#   until an answer carries the new header value; for envoy-swift also the time until the
#   supervisor logs "generation N serving" (all workers of the new generation ready). Median, max.
# - Memory: RSS of each proxy's processes idle after startup (one request answered), 1 and 2
#   workers: the master's (supervisor's) own and its children's.
#
# Prints Markdown; bench/run.sh includes it in BENCHMARKS.md. Exits non-zero only if a proxy could
# not be started; a proxy that dies on a reload is a result, shown in the tables.
#
#   bench/reload.sh [--smoke] [ENVOY_SWIFT_BINARY LIBSWIFTFILTER]
#       full: about 1 minute (`make bench-reload`); --smoke: 1 reload per proxy under 2 s of wrk,
#       1 worker, under 10 s in all. The binaries default to build/envoy-swift build/libswiftfilter.so.
#
# Environment: BENCH_RELOADS (10), BENCH_RELOAD_WORKERS (2: the workers of the reloaded proxies),
# BENCH_PORT_BASE (19640: ports 19640-19643 must be free). Needs the release build (make build), wrk,
# nginx, haproxy, python3 and curl. Everything runs from a temp dir, removed at exit with every
# process started here (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/configs.sh
. bench/procs.sh

smoke=0
[ "${1:-}" = --smoke ] && { smoke=1; shift; }
case "${1:-}" in
-*) echo "usage: $0 [--smoke] [ENVOY_SWIFT_BINARY LIBSWIFTFILTER]" >&2; exit 2 ;;
esac
if [ "$smoke" = 1 ]; then
    reloads=1 first_at=0.5 every=1 wrk_secs=2 rss_workers=(1) settle=0.3
else
    reloads="${BENCH_RELOADS:-10}" first_at=1 every=1 wrk_secs=$(( ${BENCH_RELOADS:-10} + 2 ))
    rss_workers=(1 2) settle=1
fi
reload_workers="${rss_workers[-1]}"
[ "$smoke" = 1 ] || reload_workers="${BENCH_RELOAD_WORKERS:-2}"
conns=32 threads=2 up_workers=2 max_conns=4096

bin="${1:-build/envoy-swift}" lib="${2:-build/libswiftfilter.so}"
for f in "$bin" "$lib"; do [ -e "$f" ] || { echo "missing $f: run make build" >&2; exit 2; }; done
for t in wrk curl python3 haproxy; do
    command -v "$t" >/dev/null || { echo "$t is not installed (make bench-deps installs it)" >&2; exit 2; }
done
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

base="${BENCH_PORT_BASE:-19640}"
servers=(envoy-swift nginx haproxy)
[ "$smoke" = 1 ] || servers+=(haproxy-icr)
declare -A port=([upstream]=$base [nginx]=$((base + 1)) [haproxy]=$((base + 2)) [envoy-swift]=$((base + 3)))
port[haproxy-icr]="${port[haproxy]}"
declare -A label=([envoy-swift]="envoy-swift" [nginx]="nginx" [haproxy]="HAProxy"
                  [haproxy-icr]="HAProxy, idle-close-on-response")
declare -A sig=([envoy-swift]=HUP [nginx]=HUP [haproxy]=USR2 [haproxy-icr]=USR2)
declare -A measure_rss=([envoy-swift]=1 [nginx]=1 [haproxy]=1)  # haproxy-icr: the same processes as haproxy
declare -A conf_file  # server -> the file it was started with (rewritten before each reload)

busy="$(ports_busy "${port[@]}")"
[ -z "$busy" ] || { echo "ports in use: $busy(set BENCH_PORT_BASE)" >&2; exit 2; }

tmp="$(mktemp -d)"
chmod 755 "$tmp"  # nginx workers run as nobody
# Copies, as bench/run.sh runs them: build/ may be rebuilt meanwhile.
mkdir "$tmp/bin"
cp "$bin" "$lib" "$tmp/bin/"
bin="$tmp/bin/$(basename "$bin")" lib="$tmp/bin/$(basename "$lib")"
haproxy_sock="$tmp/haproxy.sock"

wrk_pid="" driver_pid=""
cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$wrk_pid" ] || kill -TERM "$wrk_pid" 2>/dev/null || true
    [ -z "$driver_pid" ] || kill -TERM "$driver_pid" 2>/dev/null || true
    stop "${!proc[@]}"
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- configurations -------------------------------------------------------------------------------
# nginx and HAProxy: bench/configs.sh's (as bench/run.sh measures them) with the X-Config-Generation
# header; HAProxy's stats socket with expose-fd listeners. envoy-swift: one listener, the
# header_rewrite filter setting the header, the stats route, the upstream as the cluster.
es_reload_conf() { # workers mark
    cat <<EOF
workers: $1
listeners:
  - name: main
    address: 127.0.0.1
    port: ${port[envoy-swift]}
    idle_timeout: 300s
    http_filters:
$(es_filter mark header_rewrite "{ response: { set: { x-config-generation: $2 } } }")
    routes:
      - match: { prefix: /stats }
        stats: {}
      - match: { prefix: / }
        cluster: backend
clusters:
  - name: backend
    endpoints: [ { address: 127.0.0.1, port: ${port[upstream]} } ]
EOF
}
write_conf() { # server workers mark file
    case "$1" in
    envoy-swift) es_reload_conf "$2" "$3" ;;
    nginx) conf_mark="$3" nginx_proxy_conf "$2" ;;
    haproxy) conf_mark="$3" haproxy_conf "$2" ;;
    haproxy-icr) conf_mark="$3" haproxy_conf "$2" | sed '/^defaults/a\    option idle-close-on-response' ;;
    esac >"$4"
}
start() { # server workers
    local s="$1"
    case "$s" in
    envoy-swift) conf_file[$s]="$tmp/envoy-swift.yaml"; write_conf "$s" "$2" g0 "${conf_file[$s]}"
                 launch "$s" "$bin" -c "${conf_file[$s]}" --log-level info ;;
    nginx) conf_file[$s]="$tmp/nginx.conf"; write_conf "$s" "$2" g0 "${conf_file[$s]}"
           launch "$s" "$nginx" -p "$tmp" -c "${conf_file[$s]}" -g 'daemon off;' ;;
    haproxy*) conf_file[$s]="$tmp/$s.cfg"; write_conf "$s" "$2" g0 "${conf_file[$s]}"
              launch "$s" haproxy -W -db -f "${conf_file[$s]}" ;;
    esac
}
# Answers "hello" with X-Config-Generation g0 within 5 s; 0 if so.
ready() { # server
    local s="$1" body
    for _ in $(seq 100); do
        body="$(curl -fsS -D "$tmp/headers" "http://127.0.0.1:${port[$s]}/" 2>/dev/null)" &&
            [ "$body" = hello ] && grep -qi '^x-config-generation: g0' "$tmp/headers" && return 0
        kill -0 "${proc[$s]}" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# VmRSS in kB of a process, and the sum over its children: "own children_sum n_children".
rss() { # pid
    local own kids=0 n=0 p v
    own="$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)"
    for p in $(children "$1"); do
        v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
        [ -n "$v" ] || continue
        kids=$((kids + v)) n=$((n + 1))
    done
    echo "${own:-0} $kids $n"
}

# --- the reload driver ----------------------------------------------------------------------------
# Puts CONF.i in place of CONF and signals PID, RELOADS times on a schedule; after each signal, a
# new connection every 2 ms (GET /, Connection: close) until the answer's X-Config-Generation is
# g<i>, and (with LOG) until a line "generation N serving" appears in the log; times in ms from
# the signal (the log line's own millisecond timestamp). Prints per reload
# "reload I HTTP_MS LOG_MS GEN PROBE_ERRORS" ("-" for what was not seen within 5 s), or "died I"
# when the process is gone after reload I.
cat >"$tmp/driver.py" <<'EOF'
import datetime, os, re, signal, socket, sys, time
pid, signame, conf, port, reloads, first, every, log = sys.argv[1:9]
pid, port, reloads, first, every = int(pid), int(port), int(reloads), float(first), float(every)
sig = getattr(signal, "SIG" + signame)

def alive():
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def probe():  # the X-Config-Generation value, or None on any error
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        m = re.search(rb"(?im)^x-config-generation:\s*(\S+)", data)
        return m.group(1).decode() if m and data.startswith(b"HTTP/1.1 2") else None
    except OSError:
        return None

line_re = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z\s.*generation (\d+) serving")
t0 = time.monotonic()
for i in range(1, reloads + 1):
    wait = t0 + first + (i - 1) * every - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    os.replace("%s.%d" % (conf, i), conf)
    log_at = os.path.getsize(log) if log != "-" else 0
    wall, start = time.time(), time.monotonic()
    os.kill(pid, sig)
    http_ms = log_ms = gen = None
    errors = 0
    while time.monotonic() - start < 5:
        if http_ms is None:
            v = probe()
            if v == "g%d" % i:
                http_ms = (time.monotonic() - start) * 1000
            elif v is None:
                errors += 1
        if log != "-" and log_ms is None:
            with open(log, errors="replace") as f:
                f.seek(log_at)
                for ln in f:
                    m = line_re.match(ln)
                    if m:
                        t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
                        log_ms, gen = max(0.0, (t.timestamp() - wall) * 1000), m.group(2)
                        break
        if http_ms is not None and (log == "-" or log_ms is not None):
            break
        if not alive():
            break
        time.sleep(0.002)
    fmt = lambda x: "-" if x is None else "%.1f" % x
    print("reload", i, fmt(http_ms), fmt(log_ms), gen or "-", errors, flush=True)
    if not alive():
        print("died", i, flush=True)
        break
EOF

# --- measuring ------------------------------------------------------------------------------------
parse_wrk() { # -> "requests req/s connect read write timeout non2xx3xx"
    awk '/ requests in / {n = $1}
         /Requests\/sec/ {rps = $2}
         /Socket errors/ {gsub(/,/, ""); c = $4; r = $6; w = $8; t = $10}
         /Non-2xx/ {x = $NF}
         END {printf "%d %.0f %d %d %d %d %d\n", n, rps, c, r, w, t, x}' "$tmp/wrk.out"
}
# Of a space-separated list, "-" when it is empty.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g |
           awk '{a[NR]=$1} END {if (NR == 0) print "-"; else printf "%.1f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}' || true; }
maxof() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{m = $1} END {print NR ? m : "-"}' || true; }
declare -A res rss_of times log_times stats_line died_at procs_after reloads_done

# One reload run: wrk in the background, the driver in the foreground, then the proxy's state.
reload_run() { # server
    local s="$1" pid="${proc[$1]}" i log=-
    for i in $(seq "$reloads"); do write_conf "$s" "$reload_workers" "g$i" "${conf_file[$s]}.$i"; done
    [ "$s" = envoy-swift ] && log="$tmp/envoy-swift.log"
    wrk -t"$threads" -c"$conns" -d"${wrk_secs}s" "http://127.0.0.1:${port[$s]}/" >"$tmp/wrk.out" 2>&1 &
    wrk_pid=$!
    python3 "$tmp/driver.py" "$pid" "${sig[$s]}" "${conf_file[$s]}" "${port[$s]}" "$reloads" "$first_at" \
        "$every" "$log" >"$tmp/driver.out" 2>"$tmp/driver.err" &
    driver_pid=$!
    wait "$driver_pid" || fail "${label[$s]}: the reload driver failed: $(tail -n 1 "$tmp/driver.err")"
    driver_pid=""
    wait "$wrk_pid" || true
    wrk_pid=""
    res[$s]="$(parse_wrk)"
    times[$s]="$(awk '$1 == "reload" && $3 != "-" {print $3}' "$tmp/driver.out" | tr '\n' ' ')"
    log_times[$s]="$(awk '$1 == "reload" && $4 != "-" {print $4}' "$tmp/driver.out" | tr '\n' ' ')"
    reloads_done[$s]="$(grep -c '^reload' "$tmp/driver.out" || true)"
    died_at[$s]="$(awk '$1 == "died" {print $2}' "$tmp/driver.out")"
    progress "${label[$s]}: $(tr '\n' ';' <"$tmp/driver.out")"
    progress "${label[$s]}: wrk: $(tr -s ' \n' ' ' <<<"${res[$s]}")"
    # The old generations have had a moment to finish; who is left, and what the proxy counted.
    sleep "$settle"
    if kill -0 "$pid" 2>/dev/null && [ -z "${died_at[$s]}" ]; then
        procs_after[$s]=$(( 1 + $(children "$pid" | wc -w) ))
        if [ "$s" = envoy-swift ]; then
            stats_line[$s]="$(curl -fsS "http://127.0.0.1:${port[$s]}/stats" 2>/dev/null |
                              grep -E '^server\.(generation|reloads)' | tr '\n' ' ' || true)"
        fi
    else
        procs_after[$s]="exited"
        [ -n "${died_at[$s]}" ] || died_at[$s]="after the run"
    fi
}

loads=("$(cut -d' ' -f1-3 /proc/loadavg)")
started_at=$(date +%s)
upstream_conf "$up_workers" >"$tmp/upstream.conf"
launch upstream "$nginx" -p "$tmp" -c "$tmp/upstream.conf" -g 'daemon off;'
for _ in $(seq 100); do
    [ "$(curl -fsS "http://127.0.0.1:${port[upstream]}/" 2>/dev/null)" = hello ] && break
    sleep 0.05
done
[ "$(curl -fsS "http://127.0.0.1:${port[upstream]}/" 2>/dev/null)" = hello ] ||
    { echo "the upstream nginx did not answer; its log:" >&2; cat "$tmp"/upstream*.log >&2; exit 1; }

for s in "${servers[@]}"; do
    for w in "${rss_workers[@]}"; do
        [ -n "${measure_rss[$s]:-}" ] || break
        start "$s" "$w"
        if ! ready "$s"; then
            fail "${label[$s]} (workers $w) did not start and answer: $(tail -n 3 "$tmp/$s.log" 2>/dev/null | tr '\n' ' ')"
            stop "$s"
            continue 2
        fi
        sleep "$settle"
        rss_of[$s/$w]="$(rss "${proc[$s]}")"
        progress "${label[$s]}, workers $w, idle: RSS own, children, n: ${rss_of[$s/$w]}"
        if [ "$w" != "$reload_workers" ]; then stop "$s"; fi
    done
    if [ -z "${proc[$s]:-}" ]; then  # the reloaded setup's worker count was not among the RSS ones
        start "$s" "$reload_workers"
        ready "$s" || { fail "${label[$s]} (workers $reload_workers) did not start and answer"; stop "$s"; continue; }
    fi
    reload_run "$s"
    stop "$s"
done
stop upstream
loads+=("$(cut -d' ' -f1-3 /proc/loadavg)")
took=$(( $(date +%s) - started_at ))

# --- the report -----------------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
plural() { [ "$1" = 1 ] && echo "$1 $2" || echo "$1 $2s"; }
icr_text=""
[ "$smoke" = 1 ] || icr_text=", and HAProxy again
with \`option idle-close-on-response\` (its old worker answers one more request on an idle
keep-alive connection, with Connection: close, instead of closing it)"
[ "$smoke" = 1 ] && { echo "**A smoke run (\`bench/reload.sh --smoke\`): one reload each; the numbers only show that it ran.**"; echo; }
cat <<EOF
**Reloads under load** (\`bench/reload.sh\`, \`make bench-reload\`): each proxy with
$(plural "$reload_workers" worker) (envoy-swift \`workers: $reload_workers\`, nginx
\`worker_processes $reload_workers\`, HAProxy \`nbthread $reload_workers\` in master-worker mode, \`-W\`) in
front of the upstream nginx, \`wrk -t$threads -c$conns -d${wrk_secs}s\` over keep-alive connections, and $(plural "$reloads" reload) during it,
one every ${every} s from ${first_at} s on: envoy-swift by SIGHUP to the supervisor, nginx by SIGHUP to the
master (what \`nginx -s reload\` sends), HAProxy by SIGUSR2 to the master (its stats socket has
\`expose-fd listeners\`, so the new worker takes over the listening sockets)$icr_text. Before each signal
the configuration file is replaced by one that sets another value of the \`X-Config-Generation\`
response header (envoy-swift: the \`header_rewrite\` Swift filter's configuration; nginx
\`add_header\`; HAProxy \`http-response set-header\`). Failed = wrk's socket errors + responses that
are not 2xx/3xx. "processes after" is the proxy's process count ${settle} s after wrk ended (the
master or supervisor and its children: old generations still draining would show here).
$(nproc) cores shared by wrk, the upstream and the proxy; load (1, 5, 15 min) before ${loads[0]}, after ${loads[1]}.

| proxy | reloads | requests | req/s | connect | read | write | timeout | non-2xx/3xx | failed | processes after |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for s in "${servers[@]}"; do
    if [ -z "${res[$s]:-}" ]; then
        printf '| %s | did not start | - | - | - | - | - | - | - | - | - |\n' "${label[$s]}"
        continue
    fi
    read -r n rps c r w t x <<<"${res[$s]}"
    done_note="${reloads_done[$s]}"
    [ -z "${died_at[$s]}" ] || done_note+=" (exited after reload ${died_at[$s]})"
    printf '| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n' "${label[$s]}" "$done_note" "$n" "$rps" \
        "$c" "$r" "$w" "$t" "$x" $((c + r + w + t + x)) "${procs_after[$s]}"
done
cat <<EOF

**Time from the signal to the new configuration** (ms, over the reloads above, under the same
load): "answers" is when a new connection (one every 2 ms, \`Connection: close\`) first gets the
new header value; "generation serving" is the timestamp of envoy-swift's supervisor log line
\`generation N serving\` (every worker of the new generation ready; millisecond resolution).
"seen" counts the reloads whose new value (log line) appeared within 5 s; only those are in the
median and max.

| proxy | answers: median | answers: max | seen | generation serving: median | generation serving: max | seen |
|---|---:|---:|---:|---:|---:|---:|
EOF
for s in "${servers[@]}"; do
    [ -n "${res[$s]:-}" ] || continue
    a="${times[$s]}" l="${log_times[$s]}"
    if [ "$s" = envoy-swift ]; then
        lm="$(median "$l")" lx="$(maxof "$l")"
        ln="$(wc -w <<<"$l") of ${reloads_done[$s]}"
    else
        lm="-" lx="-" ln="-"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${label[$s]}" "$(median "$a")" \
        "$(maxof "$a")" "$(wc -w <<<"$a") of ${reloads_done[$s]}" "$lm" "$lx" "$ln"
done
echo
for s in "${servers[@]}"; do
    [ -n "${res[$s]:-}" ] || continue
    a="${times[$s]:-none}"
    echo "- ${label[$s]}, answers per reload (ms): ${a% }"
done
if [ -n "${stats_line[envoy-swift]:-}" ]; then
    echo "- envoy-swift's \`/stats\` after the run: ${stats_line[envoy-swift]% }"
elif [ -n "${res[envoy-swift]:-}" ]; then
    echo "- envoy-swift's \`/stats\` after the run: no server.generation or server.reloads line"
fi
cat <<EOF

**Memory of the processes, idle after startup** (MiB, VmRSS from \`/proc/PID/status\`, ${settle} s after
one request answered): the master's (nginx, HAProxy \`-W\`) or supervisor's (envoy-swift) own, and
its children's, summed and per child. Each proxy runs the configuration above with the worker
count given (HAProxy's threads are in its one worker process; envoy-swift loads the Swift filter
library in each worker).

| proxy | workers | processes | master / supervisor | children | per child | total |
|---|---:|---:|---:|---:|---:|---:|
EOF
for s in "${servers[@]}"; do
    [ -n "${measure_rss[$s]:-}" ] || continue
    for w in "${rss_workers[@]}"; do
        [ -n "${rss_of[$s/$w]:-}" ] || { printf '| %s | %s | did not start | - | - | - | - |\n' "${label[$s]}" "$w"; continue; }
        read -r own kids n <<<"${rss_of[$s/$w]}"
        if [ "$n" -gt 0 ]; then
            printf '| %s | %s | %d | %s | %s | %s | %s |\n' "${label[$s]}" "$w" $((n + 1)) "$(mib "$own")" \
                "$(mib "$kids")" "$(mib $((kids / n)))" "$(mib $((own + kids)))"
        else
            printf '| %s | %s | 1 (no children) | %s | - | - | %s |\n' "${label[$s]}" "$w" "$(mib "$own")" "$(mib "$own")"
        fi
    done
done
echo
echo "Run in $took s; envoy-swift $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- CHost 2>/dev/null || echo ' + uncommitted CHost changes')," \
     "$("$nginx" -v 2>&1 | sed 's/^nginx version: //'), HAProxy $(haproxy -v 2>&1 | head -n 1 | awk '{print $3}'), $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')."
if [ "${#failures[@]}" -gt 0 ]; then
    echo
    for f in "${failures[@]}"; do echo "- failed: $f"; done
    exit 1
fi
