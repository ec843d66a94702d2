#!/bin/sh
# SPDX-License-Identifier: MIT
# run_python_tests.sh [PYTHON] — run the Python tests (python/tests, pytest)
# against the in-place extension built by `make python`, with PYTHONPATH=python.
# Exits non-zero when a test fails, when pytest is missing, or when it
# collects no tests (pytest's exit status 5), so that `make test` fails too.
# Extra arguments go to pytest (e.g. -k stochastic). Run from the repo root.
set -u
py=${1:-/usr/bin/python3}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.." || exit 1
if ! "$py" -c 'import pytest' 2>/dev/null; then
    echo "run_python_tests: $py has no pytest (install python3-pytest)" >&2
    exit 1
fi
if ! ls python/altgrad/_C*.so >/dev/null 2>&1; then
    echo "run_python_tests: the extension is not built (run make python)" >&2
    exit 1
fi
PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pytest -q -p no:cacheprovider \
    python/tests "$@"
rc=$?
case $rc in
    0) echo "Python tests: passed" ;;
    5) echo "Python tests: pytest collected no tests (exit 5): failing" >&2 ;;
    *) echo "Python tests: FAILED (pytest exit $rc)" >&2 ;;
esac
exit $rc
