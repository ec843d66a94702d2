#!/bin/sh
# run_c_tests.sh BUILD BIN... — run each C test binary, then print the sum
# of their "N passed, N failed" lines; exit non-zero if any binary failed.
# AG_TEST_WRAP, when set, is a command each binary runs under (make
# test-aarch64: qemu-aarch64 -L sysroot).
set -u
build=$1; shift
passed=0; failed=0; bad=""
for t in "$@"; do
    out=$(AG_BUILD="$build" ${AG_TEST_WRAP:-} "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | tail -n 60
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ] || [ -z "$line" ]; then bad="$bad $(basename "$t")"; [ "${f:-0}" = 0 ] && failed=$((failed + 1)); fi
done
[ -n "$bad" ] && echo "failing binaries:$bad"
echo "C tests ($build): $passed passed, $failed failed"
[ -z "$bad" ]
