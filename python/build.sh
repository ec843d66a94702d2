#!/bin/sh
# SPDX-License-Identifier: MIT
# build.sh PYTHON BUILD — build the extension altgrad._C in place
# (python/altgrad/_C<EXT_SUFFIX>) from python/_altgrad.c and the static
# library BUILD/libaltgrad.a (objects built with -fPIC), with the headers of
# the given Python (sysconfig). Called by `make python`; run from the
# repository root. Afterwards:
#     PYTHONPATH=python PYTHON -c 'import altgrad'
set -eu
py=${1:-/usr/bin/python3}
build=${2:-build}
cc=${CC:-cc}
lib="$build/libaltgrad.a"
[ -f "$lib" ] || { echo "build.sh: $lib missing (run make BUILD=$build lib)" >&2; exit 1; }
command -v "$py" >/dev/null 2>&1 || { echo "build.sh: no Python at $py" >&2; exit 1; }
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX") or ".so")')
if [ ! -f "$inc/Python.h" ]; then
    echo "build.sh: $inc/Python.h missing: install python3-dev (scripts/install-deps.sh)" >&2
    exit 1
fi
out="python/altgrad/_C$suffix"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# The project's warning set, less -Wpedantic: CPython's slot tables
# (PyType_Slot, PyModuleDef_Slot) store function pointers in void *, which
# ISO C does not promise but POSIX does. Python.h is a system header
# (-isystem), so only our own code is held to the rest.
WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wcast-align -Wundef \
-Wdouble-promotion -Werror"
set -x
# shellcheck disable=SC2086
"$cc" -std=c11 $WARN ${CFLAGS:--O2 -g} -fPIC -fvisibility=hidden -fopenmp \
    -Iinclude -isystem "$inc" -shared -o "$tmp" python/_altgrad.c "$lib" -lm
{ set +x; } 2>/dev/null
# Load it once before it replaces the old one: an unresolved symbol (a stale
# library) fails here, at build time, not at `import altgrad`.
"$py" -c 'import importlib.machinery as m, importlib.util as u, sys
loader = m.ExtensionFileLoader("altgrad._C", sys.argv[1])
spec = u.spec_from_file_location("altgrad._C", sys.argv[1], loader=loader)
loader.exec_module(u.module_from_spec(spec))' "$tmp" \
    || { echo "build.sh: the new extension does not load" >&2; exit 1; }
mv -f "$tmp" "$out"
trap - EXIT
echo "built $out"
