# The process helpers bench/run.sh, bench/instr.sh, bench/reload.sh and bench/ab.sh share: servers
# started in the background and stopped again, failures collected, progress on stderr. Sourced
# (after bench/configs.sh); the caller sets tmp (each server's output goes to $tmp/NAME.log) and
# keeps its own cleanup, which calls stop "${!proc[@]}".
# Declared here, global, and empty so that set -u accepts them:
#   proc[NAME]      the pid of a running server
#   launched[NAME]  the command that started it, quoted for eval (to start it again)
#   failures        what went wrong, in order (the scripts list them and exit 1)
declare -gA proc=() launched=()
failures=()

progress() { echo "[$(date +%T)] $*" >&2; }
fail() { echo "FAIL: $*" >&2; failures+=("$*"); }

children() { pgrep -P "$1" 2>/dev/null || true; }  # pid -> its children, one a line
descendants() { # pid -> its children, theirs, ..., one a line
    local c
    for c in $(children "$1"); do echo "$c"; descendants "$c"; done
}

# Starts a server in the background, its output appended to $tmp/NAME.log (a server started again
# under the same name adds to its log).
launch() { # name command...
    local name="$1"
    shift
    launched[$name]="$(printf '%q ' "$@")"
    "$@" >>"$tmp/$name.log" 2>&1 &
    proc[$name]=$!
}

# TERM to each, up to 5 s (--wait: that many; valgrind writes its counts on the way out) for all of
# them to exit, then KILL, also to any descendant left behind (a worker of an old generation, of
# envoy-swift's supervisor or nginx's master). Names not running are skipped.
stop() { # name... [--wait seconds]
    local secs=5 names=() n p alive kids=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --wait) secs="$2"; shift 2 ;;
        *) [ -z "${proc[$1]:-}" ] || names+=("$1"); shift ;;
        esac
    done
    [ "${#names[@]}" -gt 0 ] || return 0
    for n in "${names[@]}"; do
        kids+=" $(descendants "${proc[$n]}" | tr '\n' ' ')"
        kill -TERM "${proc[$n]}" 2>/dev/null || true
    done
    for _ in $(seq $((secs * 10))); do
        alive=0
        for n in "${names[@]}"; do kill -0 "${proc[$n]}" 2>/dev/null && { alive=1; break; }; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for n in "${names[@]}"; do
        p="${proc[$n]}"
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
        unset "proc[$n]"
    done
    for p in $kids; do kill -KILL "$p" 2>/dev/null || true; done
}
