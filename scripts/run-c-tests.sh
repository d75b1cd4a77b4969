#!/usr/bin/env bash
# Runs each C test program (cmocka), prints its output, then a summary of tests passed and failed.
# Exits non-zero if any program failed: a failed test, a crash, a sanitizer report at exit, a timeout.
#
#   scripts/run-c-tests.sh build/tests/test_proxy_basic build/tests/test_config ...
#
# ES_BIN and ES_BUILD reach the tests through the environment as they are.
# ES_TEST_TIMEOUT: seconds one program may run (default 300).
set -u

if [ $# -eq 0 ]; then
    echo "usage: $0 TEST..." >&2
    exit 2
fi

timeout_s="${ES_TEST_TIMEOUT:-300}"
passed=0
failed=0
bad_programs=()
failed_tests=()
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

for t in "$@"; do
    echo "=== $t"
    start=$(date +%s)
    timeout -k 10 "$timeout_s" "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    took=$(( $(date +%s) - start ))

    # cmocka's own summary: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:".
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$out" | tail -n1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:.*/\1/p' "$out" | tail -n1)
    p=${p:-0}
    f=${f:-0}
    while IFS= read -r name; do
        failed_tests+=("$(basename "$t"): $name")
    done < <(sed -n 's/^\[  FAILED  \] \([A-Za-z_][A-Za-z0-9_]*\)$/\1/p' "$out" | sort -u)

    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # The program failed outside any test: a crash, a leak report at exit, a timeout.
        f=1
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why="timed out after ${timeout_s}s"; else why="exit status $rc"; fi
        failed_tests+=("$(basename "$t"): $why")
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ]; then
        bad_programs+=("$t")
        echo "=== $t: FAILED (exit status $rc, ${took}s)"
    else
        echo "=== $t: ok ($p tests, ${took}s)"
    fi
done

echo
echo "=== C test programs: $(( $# - ${#bad_programs[@]} )) of $# passed"
for name in "${failed_tests[@]+"${failed_tests[@]}"}"; do echo "FAILED: $name"; done
echo "c-tests: $passed passed, $failed failed"
[ ${#bad_programs[@]} -eq 0 ]
