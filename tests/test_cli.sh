#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli.sh BUILD_DIR — run the built `altgrad` tool (BUILD_DIR/altgrad)
# through its commands and error paths; check outputs and exit codes.
# Ends with "test_cli: N passed, N failed"; exits non-zero on any failure.
# Expected values come from the format definitions (DESIGN.md), e.g. E4M3's
# largest finite value 448 = 1.75 * 2^8 at code 0x7e.
set -u
build=${1:?usage: test_cli.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/altgrad
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
passed=0
failed=0

if [ ! -x "$bin" ]; then
    echo "test_cli: $bin not found (build it first)"
    echo "test_cli: 0 passed, 1 failed"
    exit 1
fi

ok() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
    if [ -s "$tmp/err" ]; then sed 's/^/    stderr: /' "$tmp/err" | head -n 3; fi
}

# run [ARGS...]: run the tool; stdout -> $tmp/out, stderr -> $tmp/err, $rc.
run() {
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
}
# run_in TEXT [ARGS...]: as run, with TEXT on stdin.
run_in() {
    _in=$1; shift
    printf '%s' "$_in" | "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

expect_rc() { # expect_rc WANT DESCRIPTION
    if [ "$rc" -eq "$1" ]; then ok; else fail "$2: exit $rc, want $1"; fi
}
expect_out() { # expect_out ERE DESCRIPTION: some stdout line matches
    if grep -Eq -- "$1" "$tmp/out"; then ok; else fail "$2: no stdout line matches /$1/"; fi
}
expect_no_out() { # expect_no_out ERE DESCRIPTION
    if grep -Eq -- "$1" "$tmp/out"; then fail "$2: stdout matches /$1/"; else ok; fi
}
# expect_error RC WORD DESCRIPTION: exit RC, exactly one stderr line, which
# contains WORD (fixed string, the bad argument), and nothing on stdout.
expect_error() {
    expect_rc "$1" "$3"
    if [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -Fq -- "$2" "$tmp/err"; then ok; else
        fail "$3: want one stderr line naming '$2'"; fi
    if [ -s "$tmp/out" ]; then fail "$3: stdout not empty"; else ok; fi
}
# qrow INPUT: the data row (not '#') of quantize output whose input is INPUT,
# as "quantized code".
qrow() { awk -v x="$1" '$1 !~ /^#/ && ($1 "") == (x "") { print $2, $3; exit }' "$tmp/out"; }
expect_q() { # expect_q INPUT "QUANTIZED CODE" DESCRIPTION
    got=$(qrow "$1")
    if [ "$got" = "$2" ]; then ok; else fail "$3: $1 -> '$got', want '$2'"; fi
}
# trow CODE: the row of `table` output for a code, as "class value".
trow() { awk -v c="$1" '($1 "") == (c "") { print $3, $4; exit }' "$tmp/out"; }
expect_t() { # expect_t CODE "CLASS VALUE" DESCRIPTION
    got=$(trow "$1")
    if [ "$got" = "$2" ]; then ok; else fail "$3: $1 -> '$got', want '$2'"; fi
}
rows() { grep -vc '^#' "$tmp/out"; }

# --- global: help, version, usage errors -------------------------------------
for h in --help -h help; do
    run $h
    expect_rc 0 "altgrad $h"
    expect_out '^usage: altgrad COMMAND' "altgrad $h"
    for c in formats table quantize tour; do expect_out "^  $c " "altgrad $h lists $c"; done
done
version=$(sed -n 's/^#define ALTGRAD_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$root/include/altgrad.h" | paste -sd. -)
run --version
expect_rc 0 "--version"
expect_out "^altgrad $version\$" "--version prints $version"
run
expect_error 1 "missing COMMAND" "no command"
run frobnicate
expect_error 1 frobnicate "unknown command"
run --frobnicate
expect_error 1 --frobnicate "unknown global option"
run help frobnicate
expect_error 1 frobnicate "help on an unknown command"
for c in formats table quantize tour; do
    for h in --help -h; do
        run $c $h
        expect_rc 0 "$c $h"
        expect_out "^usage: altgrad $c" "$c $h"
    done
    run help $c
    expect_rc 0 "help $c"
    expect_out "^usage: altgrad $c" "help $c"
done

# --- formats -----------------------------------------------------------------
run formats
expect_rc 0 "formats"
# every registry name (from the registry's definitions) has a row
for name in $(sed -n 's/^AG_FMT("\([^"]*\)".*/\1/p' "$root/src/ag_registry_defs.h"); do
    expect_out "^$name " "formats lists $name"
done
# E4M3: 8 bits, E 4, M 3, bias 7, fn, signed, 2^-9, 2^-6, 448, 254 finite
expect_out '^E4M3 +8 +4 +3 +7 +fn +yes +2\^-9 +2\^-6 +448 +254 ' "formats E4M3 row"
expect_out '^E5M2 +8 +5 +2 +15 +ieee +yes +2\^-16 +2\^-14 +57344 +248 ' "formats E5M2 row"
expect_out '^E7M0 +8 +7 +0 +63 +none +yes +2\^-62 +2\^-62 +2\^64 +256 ' "formats E7M0 row"
expect_out '^float8_e8m0fnu .*fn, no zero +no +2\^-127 +2\^-127 +2\^127 +255 ' "formats E8M0 row"
expect_out '^  E4M3 +.*OCP' "formats cites the OCP spec for E4M3"
run formats extra
expect_error 1 extra "formats with an extra argument"

# --- table -------------------------------------------------------------------
run table E4M3
expect_rc 0 "table E4M3"
[ "$(rows)" -eq 256 ] && ok || fail "table E4M3: $(rows) rows, want 256"
[ "$(grep -v '^#' "$tmp/out" | awk '{print $1}' | sort -u | wc -l)" -eq 256 ] && ok ||
    fail "table E4M3: codes not distinct"
expect_t 0x00 "zero 0" "table E4M3"
expect_t 0x01 "subnormal 0.001953125" "table E4M3 (2^-9)"
expect_t 0x08 "normal 0.015625" "table E4M3 (2^-6)"
expect_t 0x7e "normal 448" "table E4M3"
expect_t 0x7f "nan nan" "table E4M3"
expect_t 0x80 "zero -0" "table E4M3"
expect_t 0xfe "normal -448" "table E4M3"
expect_out '^  0x7e +0\|1111\|110 +normal +448 +1\.75 \* 2\^8$' "table E4M3 0x7e fields"
expect_out '^  0x01 +0\|0000\|001 +subnormal +0\.001953125 +0\.125 \* 2\^-6$' "table E4M3 0x01 fields"
run table e5m2
expect_rc 0 "table e5m2 (case-insensitive)"
expect_t 0x7b "normal 57344" "table E5M2"
expect_t 0x7c "inf inf" "table E5M2"
expect_t 0xfc "inf -inf" "table E5M2"
expect_t 0x7d "nan nan" "table E5M2"
run table E0M7
expect_t 0x7f "normal 0.9921875" "table E0M7"
expect_out '^  0x7f +0\|1111111 +normal +0\.9921875 +127 \* 2\^-7$' "table E0M7 fixed point"
run table float8_e8m0fnu
[ "$(rows)" -eq 256 ] && ok || fail "table float8_e8m0fnu: $(rows) rows"
expect_out '^  0x7f +01111111 +normal +1 ' "table E8M0 unsigned fields"
expect_t 0xff "nan nan" "table float8_e8m0fnu"
run table float4_e2m1fn
[ "$(rows)" -eq 16 ] && ok || fail "table float4_e2m1fn: $(rows) rows, want 16"
expect_t 0x7 "normal 6" "table float4_e2m1fn"
run table e3m4:bias=2
expect_rc 0 "table e3m4:bias=2"
expect_out '^# e3m4:bias=2: .*bias 2' "table e3m4:bias=2 header"
expect_t 0x10 "normal 0.5" "table e3m4:bias=2 (2^(1-2))"
run table E5M10
[ "$(rows)" -eq 65536 ] && ok || fail "table E5M10: $(rows) rows, want 65536"
expect_t 0x7bff "normal 65504" "table E5M10"
run table e3m4:bias=x
expect_error 1 "'x'" "table with a bad bias"
run table e3m4:colour=red
expect_error 1 colour "table with an unknown spec key"
run table E9M3
expect_error 1 E9M3 "table E9M3 (beyond float32)"
run table nosuchformat
expect_error 1 nosuchformat "table with an unknown format"
run table
expect_error 1 FORMAT "table without a format"
run table E4M3 E5M2
expect_error 1 E5M2 "table with two formats"
run table E4M3 --frob
expect_error 1 --frob "table with an unknown option"

# --- quantize: values, rounding, overflow -----------------------------------
run quantize -f E4M3 464
expect_rc 0 "quantize -f E4M3 464"
expect_q 464 "448 0x7e" "E4M3 tie at the top rounds to even 448"
run quantize -f E4M3 465 0.3 -0.3 -1.5 0 -0 1e-50 nan -inf
expect_rc 0 "quantize -f E4M3 (several)"
expect_q 465 "448 0x7e" "E4M3 overflow saturates"
expect_q 0.3 "0.3125 0x2a" "E4M3 0.3 nearest"
expect_q -0.3 "-0.3125 0xaa" "E4M3 -0.3 nearest"
expect_q -1.5 "-1.5 0xbc" "E4M3 negative argument"
expect_q 0 "0 0x00" "E4M3 zero"
expect_q -0 "-0 0x80" "E4M3 negative zero"
expect_q nan "nan 0x7f" "E4M3 NaN"
expect_q -inf "-448 0xfe" "E4M3 -inf saturates"
expect_out '^# 9 values: 2 overflow, 0 underflow, 1 nan$' "quantize stats line"
[ "$(rows)" -eq 9 ] && ok || fail "quantize: $(rows) rows, want 9"
run quantize -f E0M7 nan -inf inf 0.5
expect_rc 0 "quantize -f E0M7 specials"
expect_q nan "nan 0x00" "E0M7 NaN stays NaN, code 0 (no NaN code)"
expect_q -inf "-0.9921875 0xff" "E0M7 -inf saturates"
expect_q inf "0.9921875 0x7f" "E0M7 inf saturates"
expect_q 0.5 "0.5 0x40" "E0M7 0.5 = 64/128"
run quantize -f E4M3 --overflow ieee 465 464
expect_q 465 "nan 0x7f" "E4M3 overflow under ieee is NaN"
expect_q 464 "448 0x7e" "E4M3 464 under ieee"
run quantize -f E5M2 61440 -s 1
expect_q 61440 "57344 0x7b" "E5M2 61440 saturates"
run quantize -f E5M2 61440 -s 1 --overflow ieee
expect_q 61440 "inf 0x7c" "E5M2 61440 overflows to inf under ieee"
run quantize -f E5M2 -s 2 2.25 122880
expect_q 2.25 "2 0x3c" "E5M2 scale 2: 2.25/2 = 1.125 is a tie, to even 1"
expect_q 122880 "114688 0x7b" "E5M2 scale 2 saturates at 2*57344"
run quantize -f E5M2 -r nearest-away 1.125
expect_q 1.125 "1.25 0x3d" "E5M2 nearest-away"
for m in down toward-zero; do
    run quantize -f E4M3 -r $m 0.3 -- -0.3
    expect_q 0.3 "0.28125 0x29" "E4M3 -r $m 0.3"
done
run quantize -f E4M3 -r down -- -0.3
expect_q -0.3 "-0.3125 0xaa" "E4M3 -r down -0.3"
run quantize -f E4M3 -r toward-zero -- -0.3
expect_q -0.3 "-0.28125 0xa9" "E4M3 -r toward-zero -0.3"
run quantize -f E4M3 -r up -0.3 0.3
expect_q -0.3 "-0.28125 0xa9" "E4M3 -r up -0.3"
expect_q 0.3 "0.3125 0x2a" "E4M3 -r up 0.3"
run quantize --format=E3M4 --scale=0.5 --rounding=nearest-even 0.03
expect_rc 0 "quantize with --opt=value forms"
expect_q 0.03 "0.03125 0x01" "E3M4 scale 0.5: 0.03/0.5 -> 2^-4"
run quantize -fe3m4:bias=2 -s4 1
expect_q 1 "1 0x08" "attached short values, a spec: 1/4 = 8/16 * 2^(1-2), subnormal"
run quantize -f float8_e8m0fnu 3 0.1 -1
expect_q 3 "2 0x80" "E8M0: 3 is a tie, to the even exponent field (2^1: 128)"
expect_q -1 "nan 0xff" "E8M0: negative -> NaN"
expect_out '^# float8_e8m0fnu, scale 1, nearest-even, saturate$' "quantize header"

# stochastic: reproducible from the seed, always one of the two neighbours,
# and both neighbours show up (P(all 400 the same) < 0.7^400)
vals=$(awk 'BEGIN { for (i = 0; i < 400; i++) printf "0.3 "; }')
# shellcheck disable=SC2086
run quantize -f E4M3 -r stochastic --seed 7 $vals
expect_rc 0 "stochastic"
cp "$tmp/out" "$tmp/s7"
# shellcheck disable=SC2086
run quantize -f E4M3 -r stochastic --seed 7 $vals
cmp -s "$tmp/out" "$tmp/s7" && ok || fail "stochastic: same seed, different output"
lo=$(grep -c '^  0\.3 *0\.28125 *0x29$' "$tmp/out")
hi=$(grep -c '^  0\.3 *0\.3125 *0x2a$' "$tmp/out")
[ $((lo + hi)) -eq 400 ] && ok || fail "stochastic: $lo + $hi rows at the neighbours, want 400"
[ "$lo" -gt 0 ] && [ "$hi" -gt 0 ] && ok || fail "stochastic: only one neighbour ($lo, $hi)"
# shellcheck disable=SC2086
run quantize -f E4M3 -r stochastic --seed 8 $vals
cmp -s "$tmp/out" "$tmp/s7" && fail "stochastic: seeds 7 and 8 agree on 400 draws" || ok

# values from stdin
run_in '1 2
  3.3	-4e-3
0x1p-3 inf
' quantize -f E4M3
expect_rc 0 "quantize from stdin"
[ "$(rows)" -eq 6 ] && ok || fail "quantize stdin: $(rows) rows, want 6"
expect_q 3.3 "3.25 0x45" "stdin 3.3"
expect_q 0.125 "0.125 0x20" "stdin hex float (2^-3)"
run_in '' quantize -f E4M3
expect_rc 0 "quantize with empty stdin"
[ "$(rows)" -eq 0 ] && ok || fail "quantize empty stdin: $(rows) rows"
run_in '1 2
3 4x 5
' quantize -f E4M3
expect_error 2 "'4x'" "malformed number on stdin"
grep -Fq "line 2, value 4" "$tmp/err" && ok || fail "stdin error names line 2, value 4"
run_in '1e40' quantize -f E4M3
expect_error 2 "'1e40' on stdin (line 1, value 1) is beyond float32's range" "stdin number beyond float32"

# a NUL or other control byte on stdin is an error naming the line (a NUL
# used to end the token: "1\0002" quantized 1 and dropped the 2)
printf '1\0002' | "$bin" quantize -f E4M3 >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_error 2 "control byte 0x00 on stdin (line 1, value 1)" "NUL on stdin"
printf '1 2\n3\n4\0015\n' | "$bin" quantize -f E4M3 >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_error 2 "control byte 0x01 on stdin (line 3, value 4)" "control byte on stdin"
printf '1\0332' | "$bin" quantize -f E4M3 >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_error 2 "control byte 0x1b" "escape byte on stdin"

# messages never echo raw control bytes: they are written as \xHH
esc=$(printf '\033')
run quantize -f "E4${esc}[31mM3" 1
expect_error 1 'E4\x1b[31mM3' "a format with an escape byte is named, escaped"
run quantize -f E4M3 "1${esc}[2J"
expect_error 1 '1\x1b[2J' "a value with an escape byte is named, escaped"
run "frob${esc}"
expect_error 1 'frob\x1b' "an unknown command with an escape byte, escaped"
run train --name "$(printf 'a\tb')" --epochs "$(printf '1\r')" --data /nonexistent-agt
expect_error 1 "'1\x0d'" "train: a number with a CR, escaped"
for f in "$tmp/err"; do
    if LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')" "$f"; then
        fail "stderr holds a raw control byte"; else ok; fi
done

# table -> quantize round trip: every non-NaN value the table prints reads
# back (stdin) as the same float and quantizes to its own code
for f in E4M3 E5M2 E0M7 E7M0 float8_e8m0fnu float4_e2m1fn e3m4:bias=2:specials=fnuz; do
    run table "$f"
    grep -v '^#' "$tmp/out" | awk '$3 != "nan" { print $1, $4 }' >"$tmp/codes"
    awk '{ print $2 }' "$tmp/codes" >"$tmp/values"
    "$bin" quantize -f "$f" <"$tmp/values" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 0 "round trip $f"
    grep -v '^#' "$tmp/out" | awk '{ print $3, $1 }' >"$tmp/back"
    if [ -s "$tmp/codes" ] && cmp -s "$tmp/codes" "$tmp/back"; then ok; else
        fail "round trip $f: table codes and quantized codes differ"
        diff "$tmp/codes" "$tmp/back" | head -n 4
    fi
done

# --- quantize: usage errors ---------------------------------------------------
for s in 0 -1 -0 nan inf -inf abc '' 1e40 1e-50 '2 '; do
    run quantize -f E4M3 -s "$s" 1
    expect_error 1 "bad scale '$s'" "bad scale '$s'"
done
run quantize -f E4M3 -s
expect_error 1 "'-s' needs a value" "-s without a value"
run quantize -f
expect_error 1 "'-f' needs a value" "-f without a value"
run quantize 1 2
expect_error 1 "-f FORMAT" "quantize without a format"
run quantize -f E4M3x 1
expect_error 1 E4M3x "quantize with an unknown format"
run quantize -f e4m3:specials=odd 1
expect_error 1 odd "quantize with a bad specials value"
run quantize -f E4M3 -f E5M2 1
expect_error 1 "-f" "quantize with two formats"
run quantize -f E4M3 -r nearset 1
expect_error 1 "'nearset' (expected one of: nearest-even, nearest-away, toward-zero, down, up, stochastic)" "bad rounding mode lists the valid ones"
run quantize -f E4M3 --overflow clamp 1
expect_error 1 "unknown overflow 'clamp' (expected one of: saturate, ieee)" "bad overflow policy"
run quantize -f E4M3 -r "$(printf 'up\033[2J')" 1
expect_error 1 "unknown rounding 'up?[2J'" "a control byte in a rounding name is not echoed"
# the library's vocabulary: aliases, '_' for '-', any case
for m in nearest rne NEAREST_EVEN Nearest-Even; do
    run quantize -f E4M3 -r $m 0.3
    expect_q 0.3 "0.3125 0x2a" "E4M3 -r $m 0.3"
    expect_out '^# E4M3, scale 1, nearest-even, saturate$' "-r $m prints the canonical name"
done
run quantize -f E4M3 --overflow IEEE 465
expect_q 465 "nan 0x7f" "--overflow IEEE"
for s in -1 abc 1.5 18446744073709551616 ''; do
    run quantize -f E4M3 --seed "$s" 1
    expect_error 1 "bad seed '$s'" "bad seed '$s'"
done
run quantize -f E4M3 --seed 18446744073709551615 -r stochastic 1
expect_rc 0 "largest seed"
run quantize -f E4M3 --frob 1
expect_error 1 "'--frob'" "quantize with an unknown option"
run quantize -f E4M3 -x 1
expect_error 1 "'-x'" "quantize with an unknown short option"
run quantize -f E4M3 1 1.2.3
expect_error 1 "'1.2.3' (value 2) is not a number" "malformed value argument"
run quantize -f E4M3 1e40
expect_error 1 "'1e40' (value 1) is beyond float32's range" "value argument beyond float32"
run quantize -f E4M3 -- -s
expect_error 1 "'-s'" "option name after --"

# --- tour -----------------------------------------------------------------
run tour
expect_rc 0 "tour"
expect_out '^ +x +E0M7 +E1M6 +E3M4 +E5M2 +E7M0 +note$' "tour header row"
for f in E0M7 E1M6 E2M5 E3M4 E4M3 E5M2 E6M1 E7M0; do expect_out "^$f " "tour format table lists $f"; done
expect_out '^ +100000 +0\.9921875 +3\.96875 +124 +57344 +131072 ' "tour row 1e5"
expect_out '^ +1\.125 .* tie E5M2' "tour marks the E5M2 tie"
expect_out '^ +nan +nan +nan +nan +nan +nan$' "tour NaN row"
expect_out '^ +overflow( +[0-9]+){5}$' "tour overflow counts"
expect_out '^ +nan +1 +1 +1 +1 +1$' "tour nan counts"
[ "$(grep -Ec '^ +-?([0-9.e+-]+|inf|nan) ' "$tmp/out")" -ge 16 ] && ok || fail "tour: fewer than 16 sample rows"
cp "$tmp/out" "$tmp/tour1"
run tour
cmp -s "$tmp/out" "$tmp/tour1" && ok || fail "tour: two runs differ"
run tour extra
expect_error 1 extra "tour with an extra argument"

# --- train / compare: every option checked before anything runs --------------
# (--data names no data set: a check that came after loading would say so,
# exit 2, instead of the usage error)
nodata=/nonexistent-agt
for c in train compare; do
    for h in --help -h; do
        run $c $h
        expect_rc 0 "$c $h"
        expect_out "^usage: altgrad $c" "$c $h"
    done
done
run compare --help
expect_no_out '--save' "compare --help does not offer --save"
expect_out 'matrix\.csv \(one' "compare --help names the matrix's summary CSV"
expect_out 'report\.md' "compare --help names the report"
run compare --model mlp --help
expect_out 'compare\.csv \(one' "compare --model mlp --help names the summary CSV"
run train --help
expect_no_out 'summary CSV' "train --help promises no summary CSV"
expect_out 'NAME\.svg' "train --help names its plot"
run compare --model mlp --layer-formats fp32,fp32,fp32 --formats fp32,E3M4 --data $nodata
expect_error 1 "entry 'E3M4' is applied to no tensor" "compare: a format applied to no tensor"
run compare --model mlp --layer-formats fp32,fp32,fp32 --formats fp8 --data $nodata
expect_error 1 "entry 'fp8' is applied to no tensor" "compare: fp8 applied to no tensor"
run compare --model mlp --layer-formats fp32,fp32,fp32 --formats fp32/E5M2 --data $nodata
expect_error 1 "'fp32/E5M2' is applied to no tensor" "compare: a gradient format applied to no tensor"
run compare --model mlp --formats fp32,E3M4/E4M3 --grad-format E5M2 --data $nodata
expect_error 1 "--grad-format E5M2 is applied to no tensor" "compare: --grad-format no entry takes"
run compare --formats fp32 --grad-format nosuch --data $nodata
expect_error 1 nosuch "compare: --grad-format checked up front"
run compare --formats E3M4,E3M4 --data $nodata
expect_error 1 "'E3M4' is listed twice" "compare: an entry twice"
run compare --formats fp32,E9M9 --data $nodata
expect_error 1 E9M9 "compare: a bad format"
run train --grad-format nosuch --data $nodata
expect_error 1 nosuch "train: --grad-format checked when no layer is quantized"
run train --grad-format E5M2 --data $nodata
expect_error 1 "--grad-format E5M2 is applied to no tensor" "train: --grad-format on fp32 layers"
run train --layer-formats fp32,E3M4/E4M3,fp32 --grad-format E5M2 --data $nodata
expect_error 1 "--grad-format E5M2 is applied to no tensor" "train: every quantized layer has /G"
run train --layer-formats 'fp32,*,fp32' --data $nodata
expect_error 1 "'*' (the format under test) is for compare" "train: '*' in --layer-formats"
run train --format fp32 --grad-format fp32 --data $nodata
expect_error 2 "$nodata" "train: fp32 everywhere names no format (reaches the data)"
run train --layer-formats fp32,E3M4,fp32 --grad-format E5M2 --data $nodata
expect_error 2 "$nodata" "train: --grad-format taken by a layer (reaches the data)"
for n in '' .hidden; do
    run train --name "$n" --data $nodata
    expect_error 1 "--name '$n'" "train --name '$n'"
done
run train --name "$(printf '%070d' 0)" --data $nodata
expect_error 1 "--name" "train: a name too long for the files"
# numbers: one parser, errors that say what is wrong
for a in "--epochs 0:out of range" "--epochs -3:is negative" "--epochs 1x:not an integer" \
         "--epochs 99999999999999999999:out of range" "--epochs= 1:not an integer" \
         "--batch 1.5:not an integer" "--threads +2:not an integer" \
         "--train-limit 0:out of range" "--max-steps -1:is negative" \
         "--seed -1:is negative" "--seed 18446744073709551616:out of range" \
         "--seed 0x10:not an integer" "--lr 0:too small" "--lr -1:is negative" \
         "--lr nan:not a number" "--lr inf:too large" "--wd -0.5:is negative" \
         "--wd abc:not a number" "--history 65:out of range"; do
    opt=${a%%:*}; want=${a#*:}
    # shellcheck disable=SC2086
    run train $opt --data $nodata
    expect_error 1 "$want" "train $opt"
done
run compare --jobs 65 --data $nodata
expect_error 1 "--jobs: '65' is out of range" "compare --jobs 65"
run train --epochs=2 --lr=1e-3 --seed=18446744073709551615 --data $nodata
expect_error 2 "$nodata" "train: --opt=value forms and the largest seed are accepted"
run train --epochs
expect_error 1 "'--epochs' needs a value" "train --epochs without a value"
# outputs that cannot be written: before the data is even loaded
run train --save "$tmp/no-such-dir/ck.bin" --data $nodata
expect_error 2 "no-such-dir/ck.bin: cannot save a checkpoint there" "train --save to a missing directory"
run train --save "$tmp" --data $nodata
expect_error 2 "is a directory" "train --save to a directory"
: >"$tmp/file"
run train --out "$tmp/file/sub" --data $nodata
expect_error 2 "--out" "train --out under a file"
run compare --out "$tmp/file" --data $nodata
expect_error 2 "--out" "compare --out a file"

# --- gpt / compare --model gpt (the matrix) -----------------------------------
for c in gpt; do
    run $c --help
    expect_rc 0 "$c --help"
    expect_out "^usage: altgrad $c" "$c --help"
done
run compare --model transformer
expect_error 1 "'transformer' is not a model" "compare --model: an unknown model"
run compare --optimizers adamw,nosuch --data $nodata
expect_error 1 "'nosuch' is not an optimizer" "compare --optimizers: an unknown one"
run compare --optimizers adamw,adamw --data $nodata
expect_error 1 "'adamw' is listed twice" "compare --optimizers: one twice"
run compare --steps 55 --data $nodata
expect_error 1 "--steps 55 must be a multiple of --eval-every 50" "compare: --steps and --eval-every"
run compare --formats fp32,E3M4/E4M3 --grad-format E5M2 --data $nodata
expect_error 1 "--grad-format E5M2 is applied to no tensor" "compare (gpt): --grad-format no entry takes"
run compare --formats fp32,E9M9 --data $nodata
expect_error 1 E9M9 "compare (gpt): a bad format"
run compare --recipe fp8 --data $nodata
expect_error 1 "--recipe" "compare (gpt): --recipe is the fp8 entry"
run compare --epochs 3
expect_error 1 "unknown option '--epochs'" "compare (gpt): an MLP option"
run gpt --optimizer nosuch
expect_error 1 "'nosuch' is not an optimizer" "gpt --optimizer: an unknown one"
run gpt --embd 130 --heads 4
expect_error 1 "--embd 130 must be a multiple of --heads 4" "gpt: width and heads"
run gpt --format E3M4 --recipe fp8
expect_error 1 "--recipe fp8 sets the formats" "gpt: --recipe and --format"
run gpt --attn nosuch
expect_error 1 nosuch "gpt --attn: a bad format"
run gpt --data $nodata/text
expect_error 2 "$nodata/text" "gpt --data: a missing file"
printf 'too short' >"$tmp/short.txt"
run gpt --data "$tmp/short.txt"
expect_error 2 "too little text" "gpt --data: a text too short"
run gpt --save "$tmp/no-such-dir/ck" --data $nodata/text
expect_error 2 "cannot save a checkpoint there" "gpt --save to a missing directory (before the data)"
# a small text, a tiny model: one run, a checkpoint, a resume that ends
# where the uninterrupted run does (the same final row, bit for bit)
i=0
while [ $i -lt 400 ]; do
    printf 'in the beginning the grid rounds ties to even and weights move. ' >>"$tmp/text.txt"
    i=$((i + 1))
done
small="--data $tmp/text.txt --layers 1 --heads 2 --embd 16 --ctx 8 --batch 2 --steps 6 --eval-every 2 --eval-batches 2 --quiet --threads 1"
# shellcheck disable=SC2086
run gpt $small --format E3M4 --grad-format E5M2 --stochastic-grads --name full --out "$tmp/g"
expect_rc 0 "gpt: a small run"
expect_out "^E3M4|^full " "gpt: the table row"
# shellcheck disable=SC2086
run gpt $small --format E3M4 --grad-format E5M2 --stochastic-grads --name part --out "$tmp/g" --max-steps 3 --save "$tmp/g/ck"
expect_rc 0 "gpt: stopped at step 3 with a checkpoint"
# shellcheck disable=SC2086
run gpt $small --format E3M4 --grad-format E5M2 --stochastic-grads --name resumed --out "$tmp/g" --resume "$tmp/g/ck"
expect_rc 0 "gpt: resumed"
if [ -f "$tmp/g/full.csv" ] && [ -f "$tmp/g/resumed.csv" ] &&
   [ "$(tail -1 "$tmp/g/full.csv" | cut -d, -f3-5)" = "$(tail -1 "$tmp/g/resumed.csv" | cut -d, -f3-5)" ]; then ok
else fail "gpt: the resumed run's last row is the uninterrupted run's"; fi
# shellcheck disable=SC2086
run gpt $small --lr 0.002 --format E3M4 --grad-format E5M2 --stochastic-grads --resume "$tmp/g/ck"
expect_error 2 "different --lr" "gpt --resume with another --lr"
# the matrix, tiny: every file, a report with its sections
# shellcheck disable=SC2086
run compare $small --formats fp32,E3M4,fp8 --optimizers adamw,manifold,grid --out "$tmp/m" --jobs 2
expect_rc 0 "compare (gpt): a tiny matrix"
for f in matrix.csv val_loss.svg rates.svg report.md fp32-adamw.csv fp8-e4m3fn-e5m2-grid.csv E3M4-manifold.csv; do
    [ -s "$tmp/m/$f" ] && ok || fail "compare (gpt): $f written"
done
[ "$(wc -l <"$tmp/m/matrix.csv")" -eq 13 ] && ok || fail "compare (gpt): matrix.csv has 9 runs and 3 seed checks"
grep -q '^fp32-seed2-grid,fp32 (seed 2),grid,' "$tmp/m/matrix.csv" && ok || fail "compare (gpt): the seed check's row"
for h in '^## The answer' '^## How much a seed alone changes' '^## Does geometry-aware optimization help' '^## Validation loss' '^## Failures' '^## Per layer type'; do
    grep -q "$h" "$tmp/m/report.md" && ok || fail "report.md: section $h"
done
expect_out '^report: ' "compare (gpt): the report's path on stdout"
# shellcheck disable=SC2086
run compare $small --formats fp32,E3M4 --optimizers adamw --seed-check 0 --out "$tmp/m0"
expect_rc 0 "compare (gpt): --seed-check 0"
[ "$(wc -l <"$tmp/m0/matrix.csv")" -eq 3 ] && ok || fail "compare (gpt): --seed-check 0 adds no run"
grep -q 'How much a seed' "$tmp/m0/report.md" && fail "report.md: no seed section without the check" || ok
run compare --seed-check 2 --data $nodata
expect_error 1 "--seed-check: '2' is out of range" "compare --seed-check 2"

# --- runtime errors -----------------------------------------------------------
if [ -w /dev/full ]; then
    "$bin" formats >/dev/full 2>"$tmp/err"
    rc=$?
    : >"$tmp/out"
    expect_error 2 "error writing output" "formats > /dev/full"
fi

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
