#!/usr/bin/env bash
# `make run`: start the local upstream the default config points at, then the proxy in the foreground.
set -euo pipefail
build=${1:-build}
config=${2:-envoy-swift.yaml}
level=${3:-info}

upstream_pid=""
cleanup() {
    [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true
}
trap cleanup EXIT

# The default config sends /api to 127.0.0.1:8080. Start the test upstream there unless
# something already listens on that port (then that is the backend).
if [ "$config" = envoy-swift.yaml ]; then
    if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
        echo "make run: 127.0.0.1:8080 is already serving; using it as the backend" >&2
    else
        "$build/es-upstream" --port 8080 --quiet &
        upstream_pid=$!
    fi
fi

echo "make run: proxy on 127.0.0.1:10000 (try: curl -v localhost:10000/ and curl -v localhost:10000/api/hi); Ctrl-C stops" >&2
echo "make run: --watch: edit a filter and run \`make build\` in another terminal; the proxy reloads by itself" >&2
"$build/envoy-swift" -c "$config" --log-level "$level" --watch &
proxy_pid=$!
trap 'kill -TERM $proxy_pid 2>/dev/null || true' INT TERM
wait "$proxy_pid" || status=$?
wait "$proxy_pid" 2>/dev/null || true
exit "${status:-0}"
