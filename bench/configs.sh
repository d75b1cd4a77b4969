# The configurations bench/run.sh and bench/instr.sh measure, in one place so both measure the same
# proxies. Sourced; the caller sets:
#   tmp         the run's directory (nginx writes nothing outside it)
#   port[...]   ports by setup: upstream, nginx, haproxy, and each envoy-swift setup
#   lib         the filter library the envoy-swift configurations load
#   max_conns   nginx worker_connections and HAProxy maxconn
#   fd_limit    (optional) nginx worker_rlimit_nofile
#   conf_mark   (optional) nginx and HAProxy set the response header X-Config-Generation to it, so
#               that bench/reload.sh tells a reloaded configuration's answers from the old one's
#   haproxy_sock (optional) HAProxy's stats socket, with `expose-fd listeners`: in master-worker
#               mode a reload passes the listening sockets to the new worker through it
# Idle timeouts everywhere are 300 s, far beyond a measurement; keep-alive request limits are
# lifted (nginx closes after 1000 by default, the others never do).

# Prints which of the given 127.0.0.1 ports cannot be bound (TIME_WAIT is no obstacle: the servers
# set SO_REUSEADDR too).
ports_busy() { # port...
    python3 - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(p, end=" ")
    finally:
        s.close()
EOF
}

nginx_conf() { # name workers -> head of the file, up to "http {" and its common settings
    mkdir -p "$tmp/$1.tmp"
    cat <<EOF
worker_processes $2;
${fd_limit:+worker_rlimit_nofile $fd_limit;}
pid $tmp/$1.pid;
error_log $tmp/$1.error.log warn;
events { worker_connections $max_conns; }
http {
    access_log off;
    client_body_temp_path $tmp/$1.tmp/body;
    proxy_temp_path $tmp/$1.tmp/proxy;
    fastcgi_temp_path $tmp/$1.tmp/fastcgi;
    uwsgi_temp_path $tmp/$1.tmp/uwsgi;
    scgi_temp_path $tmp/$1.tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
EOF
}

# The upstream: nginx answering a fixed "hello\n" with keep-alive.
upstream_conf() { # workers
    nginx_conf upstream "$1"
    cat <<EOF
    server {
        listen 127.0.0.1:${port[upstream]} reuseport backlog=4096;
        location / { default_type text/plain; return 200 "hello\n"; }
    }
}
EOF
}

# nginx in front: reuseport (a socket per worker, as envoy-swift's SO_REUSEPORT), an idle upstream
# connection cache larger than any connection count used, the headers envoy-swift sets.
nginx_proxy_conf() { # workers
    nginx_conf nginx "$1"
    cat <<EOF
    upstream backend {
        server 127.0.0.1:${port[upstream]};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:${port[nginx]} reuseport backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            ${conf_mark:+add_header X-Config-Generation $conf_mark always;}
        }
    }
}
EOF
}

# HAProxy: one process, nbthread N, keep-alive both ways, any idle server connection reused.
# HAProxy wants 2 descriptors per maxconn; where it cannot raise its limit that far (no
# CAP_SYS_RESOURCE), "no strict-limits" lets it run with what there is, which is enough here: the
# idle connections need one each and the upstream side only a few.
haproxy_conf() { # workers
    cat <<EOF
global
    nbthread $1
    maxconn $max_conns
    no strict-limits
    ${haproxy_sock:+stats socket $haproxy_sock mode 600 level admin expose-fd listeners}
defaults
    mode http
    maxconn $max_conns
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:${port[haproxy]} backlog 4096
    http-request set-header X-Forwarded-Proto http
    ${conf_mark:+http-response set-header X-Config-Generation $conf_mark}
    default_backend be
backend be
    server up 127.0.0.1:${port[upstream]}
EOF
}

es_filter() { # name plugin config
    printf '      - { name: %s, so_path: %s, plugin_name: %s, plugin_config: %s }\n' "$1" "$lib" "$2" "$3"
}

# envoy-swift: one listener per setup named, so each measurement hits one chain.
es_conf() { # workers setup...
    local s i
    echo "workers: $1"
    echo "listeners:"
    shift
    for s in "$@"; do
        printf '  - name: %s\n    address: 127.0.0.1\n    port: %s\n    idle_timeout: 300s\n' "$s" "${port[$s]}"
        case "$s" in
        es-noop) echo "    http_filters:"; es_filter noop noop '{}' ;;
        es-headers3) echo "    http_filters:"
                     for i in 1 2 3; do es_filter "touch$i" header_touch "{ name: x-t$i }"; done ;;
        es-async) echo "    http_filters:"; es_filter anoop async_noop '{}' ;;
        es-probe) echo "    http_filters:"; es_filter probe resume_probe '{}' ;;
        es-metric) echo "    http_filters:"; es_filter metric metric_probe '{}' ;;
        es-log-text) printf '    access_log: [ { path: %s } ]\n' "${tmp:-/tmp}/$s.access.log" ;;
        es-log-json) printf '    access_log:\n      - path: %s\n        json_format: %s\n' "${tmp:-/tmp}/$s.access.log" \
                     "{ start: '%START_TIME%', method: '%REQ(:METHOD)%', path: '%REQ(:PATH)%', protocol: '%PROTOCOL%', code: '%RESPONSE_CODE%', flags: '%RESPONSE_FLAGS%', rx: '%BYTES_RECEIVED%', tx: '%BYTES_SENT%', duration: '%DURATION%', upstream: '%UPSTREAM_HOST%', ua: '%REQ(USER-AGENT)%' }" ;;
        esac
        printf '    routes:\n      - match: { prefix: / }\n        cluster: backend\n'
    done
    printf 'clusters:\n  - name: backend\n    endpoints: [ { address: 127.0.0.1, port: %s } ]\n' "${port[upstream]}"
}
