#!/usr/bin/env bash
# Runs each C test program; prints a summary and exits non-zero if any failed.
set -u
failed=()
passed=0
for t in "$@"; do
    echo "=== $t"
    if "$t"; then
        passed=$((passed + 1))
    else
        failed+=("$t")
    fi
done
echo "=== C tests: $passed passed, ${#failed[@]} failed"
for t in "${failed[@]}"; do echo "FAILED: $t"; done
[ ${#failed[@]} -eq 0 ]
