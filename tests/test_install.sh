#!/bin/sh
# SPDX-License-Identifier: MIT
# test_install.sh — consume altgrad the way a user does: `make install` into
# a temporary PREFIX (built in a private BUILD directory, so altgrad.pc holds
# that prefix), then compile the C example of README.md ("Using the C
# library") through pkg-config, run it against the installed shared library,
# link it statically (pkg-config --static) and run it again, compile the
# installed header as C++, stage an install with DESTDIR, and check that
# `make uninstall` removes every installed file. Then the Python package the
# way README.md installs it: pip from a copy of the tree into a target
# directory (the source tree stays clean), imported from elsewhere, running
# the acceptance script (python/tests/test_acceptance.py) against it.
# Ends with "test_install: N passed, N failed"; exits non-zero on failure.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_install.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix
# reuse the caller's build tree (make test-install passes AG_BUILD), else a
# private one; altgrad.pc is written at install time, so the prefix is right
# either way
case ${AG_BUILD:-} in
    "") bdir=$tmp/build ;;
    /*) bdir=$AG_BUILD ;;
    *) bdir=$root/$AG_BUILD ;;
esac
make=${MAKE:-make}
cc=${CC:-cc}
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: run the command, log its output, count it
check() {
    _what=$1; shift
    if "$@" >"$tmp/log" 2>&1; then ok; else
        fail "$_what"
        sed 's/^/    /' "$tmp/log" | tail -n 15
    fi
}
summary() {
    echo "test_install: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

version=$(sed -n 's/^#define ALTGRAD_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$root/include/altgrad.h" | paste -sd. -)
major=${version%%.*}

# --- make install -----------------------------------------------------------
# (MAKEFLAGS from an outer make would leak its BUILD/CFLAGS: start clean)
check "make install PREFIX=$prefix" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    $make -C "$root" BUILD="$bdir" PREFIX="$prefix" install
[ "$failed" -eq 0 ] || summary
installed="include/altgrad.h lib/libaltgrad.a lib/libaltgrad.so lib/libaltgrad.so.$major
lib/libaltgrad.so.$version lib/pkgconfig/altgrad.pc bin/altgrad"
for f in $installed; do
    if [ -e "$prefix/$f" ]; then ok; else fail "installed $f missing"; fi
done
check "installed altgrad --version" sh -c \
    "'$prefix/bin/altgrad' --version | grep -qx 'altgrad $version'"

# --- pkg-config -------------------------------------------------------------
PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR 2>/dev/null
got=$(pkg-config --modversion altgrad 2>&1)
[ "$got" = "$version" ] && ok || fail "pkg-config --modversion: '$got', want '$version'"
cflags=$(pkg-config --cflags altgrad) && libs=$(pkg-config --libs altgrad) &&
    slibs=$(pkg-config --static --libs altgrad)
case " $cflags " in *" -I$prefix/include "*) ok ;; *) fail "cflags '$cflags' lack -I$prefix/include" ;; esac
case " $libs " in *" -L$prefix/lib "*"-laltgrad "*) ok ;; *) fail "libs '$libs'" ;; esac

# --- the README example -------------------------------------------------------
# the first ```c block after the "## Using the C library" heading
awk '/^## Using the C library/ { s = 1; next }
     s && /^## / { exit }
     s && !b && /^```c[ \t]*$/ { b = 1; next }
     b && /^```/ { exit }
     b { print }' "$root/README.md" >"$tmp/example.c"
if [ -s "$tmp/example.c" ] && grep -q 'main' "$tmp/example.c"; then ok; else
    fail "no \`\`\`c block with main() in README.md's 'Using the C library'"
    summary
fi
# what the example must print: values from the format definition (E4M3: 448
# is the largest finite, 464 the tie above it, 2^-9 the smallest subnormal)
cat >"$tmp/want" <<'EOF'
0.3 -> 0.3125 (code 0x2a, decoded 0.3125)
464 -> 448 (code 0x7e, decoded 448)
1000 -> 448 (code 0x7e, decoded 448)
overflow 1, underflow 1, nan 0 of 6
EOF
expect_output() { # expect_output WHAT FILE: every line of $tmp/want is in FILE
    _miss=$(grep -Fxvf "$2" "$tmp/want")
    if [ -z "$_miss" ]; then ok; else fail "$1: output lacks: $_miss"; fi
    if grep -q '^scale 0: scale must be positive' "$2"; then ok; else
        fail "$1: no error message for scale 0"; fi
}

wflags="-std=c11 -Wall -Wextra -Wpedantic -Werror"
# shellcheck disable=SC2086
check "compile the README example with pkg-config (shared)" \
    $cc $wflags $cflags -o "$tmp/example" "$tmp/example.c" $libs
if [ -x "$tmp/example" ]; then
    LD_LIBRARY_PATH=$prefix/lib "$tmp/example" >"$tmp/out" 2>&1 && ok ||
        fail "README example (shared) exit status"
    expect_output "README example (shared)" "$tmp/out"
    # it really ran against the installed shared library
    LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/example" 2>/dev/null |
        grep -q "libaltgrad.so.$major => $prefix/lib/" && ok ||
        fail "README example does not load $prefix/lib/libaltgrad.so.$major"
fi

# static: the same flags with --static, the archive picked by name
# shellcheck disable=SC2086
check "link the README example statically (pkg-config --static)" \
    $cc $wflags $cflags -o "$tmp/example_static" "$tmp/example.c" \
    $(printf '%s\n' $slibs | sed 's/^-laltgrad$/-l:libaltgrad.a/')
if [ -x "$tmp/example_static" ]; then
    if readelf -d "$tmp/example_static" 2>/dev/null | grep -q 'NEEDED.*libaltgrad'; then
        fail "static example still needs libaltgrad.so"
    else ok; fi
    "$tmp/example_static" >"$tmp/out_static" 2>&1 && ok ||
        fail "README example (static) exit status"
    expect_output "README example (static)" "$tmp/out_static"
fi

# --- the header as C++ ------------------------------------------------------
if command -v "${CXX:-g++}" >/dev/null 2>&1; then
    cxx=${CXX:-g++}
    cat >"$tmp/hdr.cpp" <<'EOF'
#include <altgrad.h>
#include <cstdio>
int main()
{
    const ag_format *f = ag_format_get("E5M2");
    std::printf("%s %u\n", ag_version(), f ? ag_to_bits(f, 1.0f) : 0u);
    return f ? 0 : 1;
}
EOF
    # shellcheck disable=SC2086
    check "altgrad.h compiles as C++ (-fsyntax-only)" \
        $cxx -std=c++11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags "$tmp/hdr.cpp"
    # shellcheck disable=SC2086
    check "a C++ program links against altgrad (extern \"C\")" \
        $cxx -std=c++11 -o "$tmp/hdr" "$tmp/hdr.cpp" $cflags $libs
    [ -x "$tmp/hdr" ] && check "the C++ program runs" sh -c \
        "LD_LIBRARY_PATH='$prefix/lib' '$tmp/hdr' | grep -qx '$version 60'"
else
    echo "SKIP: no C++ compiler (${CXX:-g++}): the header was not compiled as C++"
fi

# --- DESTDIR staging, then uninstall ------------------------------------------
stage=$tmp/stage
check "make install DESTDIR=$stage" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    $make -C "$root" BUILD="$bdir" PREFIX="$prefix" DESTDIR="$stage" install
for f in $installed; do
    if [ -e "$stage$prefix/$f" ]; then ok; else fail "DESTDIR install: $f missing"; fi
done
check "make uninstall DESTDIR=$stage" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    $make -C "$root" BUILD="$bdir" PREFIX="$prefix" DESTDIR="$stage" uninstall
check "make uninstall" env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    $make -C "$root" BUILD="$bdir" PREFIX="$prefix" uninstall
for d in "$prefix" "$stage$prefix"; do
    left=$(find "$d" ! -type d 2>/dev/null)
    [ -z "$left" ] && ok || fail "left after uninstall: $left"
done

# --- pip ----------------------------------------------------------------------
# README.md's line, verbatim but for the directory: Debian 12 refuses a plain
# `pip install` into the system Python (externally-managed-environment).
py=${PYTHON:-/usr/bin/python3}
pipline=$(sed -n 's/^\(.* -m pip install .*--target\) ~\/altgrad-py \.$/\1/p' "$root/README.md" | head -n 1)
case $pipline in
    "/usr/bin/python3 -m pip install"*) ok ;;
    *) fail "README.md has no '/usr/bin/python3 -m pip install ... --target ~/altgrad-py .' line"
       pipline="/usr/bin/python3 -m pip install --no-build-isolation --no-deps --target" ;;
esac
pipline=$(printf '%s' "$pipline" | sed "s|^/usr/bin/python3 |$py |")
if ! "$py" -m pip --version >/dev/null 2>&1; then
    echo "SKIP: no pip for $py (python3-pip): the pip install was not tested"
else
    # a copy of the tree as a clone has it: no build outputs
    mkdir "$tmp/src"
    (cd "$root" && tar --exclude=./.git --exclude=./build --exclude=./python/build \
        --exclude='./python/*.egg-info' --exclude='./python/altgrad/_C*.so' \
        --exclude='*/__pycache__' --exclude=./runs -cf - .) | tar -C "$tmp/src" -xf -
    # shellcheck disable=SC2086
    check "pip install (README.md's line) into a target directory" \
        sh -c "cd '$tmp/src' && $pipline '$tmp/pysite' ."
    mkdir "$tmp/elsewhere"
    where=$(cd "$tmp/elsewhere" && PYTHONPATH=$tmp/pysite "$py" -c \
        'import altgrad; print(altgrad.__file__)' 2>&1)
    case $where in
        "$tmp/pysite/altgrad/"*) ok ;;
        *) fail "import altgrad from another directory: '$where'" ;;
    esac
    # the acceptance script, against the installed package: conftest.py
    # (which pytest imports from python/tests) takes the altgrad it finds on
    # PYTHONPATH, and hands its directory to the script
    pydir=$(cd "$tmp/elsewhere" && PYTHONPATH=$tmp/pysite "$py" -c "import sys
sys.path.insert(0, '$root/python/tests')
import conftest
print(conftest.PYDIR)" 2>&1)
    [ "$pydir" = "$tmp/pysite" ] && ok || fail "the tests would use '$pydir', not $tmp/pysite"
    check "the acceptance script against the pip-installed package" sh -c \
        "cd '$tmp/elsewhere' && PYTHONPATH='$tmp/pysite' '$py' -m pytest -q -p no:cacheprovider \
         '$root/python/tests/test_acceptance.py'"
fi

summary
