#!/usr/bin/env bash
# The Python test tools' dependencies (Tests/py/, bench/), pinned, in a venv at build/venv.
# Idempotent: a stamp file holding the pins skips everything when nothing changed.
#   scripts/py-deps.sh [BUILD_DIR]        (default build; `make py-deps`)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
venv="$build/venv"
pins=(h2==4.4.1 websockets==17.4 grpcio==1.85.3 prometheus_client==0.26.0)
stamp="$venv/.py-deps-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi
echo "py-deps: installing ${pins[*]} into $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
echo "${pins[*]}" >"$stamp"
