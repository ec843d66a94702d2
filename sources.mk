# SPDX-License-Identifier: MIT
# sources.mk — the C source lists of the library, in one place. The Makefile
# includes this file; setup.py reads it (lines `NAME := WORD...`, where a
# word may be $(wildcard PATTERN)), so `make` and `pip install` build the
# same sources.

# The library: every C file of src/.
AG_LIB_SRC := $(wildcard src/*.c)

# The registry generator (tools/gen_registry.c writes ag_registry.inc, the
# registry table that src/ag_registry.c includes) and the library sources it
# is linked with.
AG_GEN_SRC := tools/gen_registry.c src/ag_format.c src/ag_error.c src/ag_rng.c
