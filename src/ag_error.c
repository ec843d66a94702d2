/* SPDX-License-Identifier: MIT */
/*
 * ag_error.c — status strings and the version.
 */
#include "ag_internal.h"

#define AG__STR2(x) #x
#define AG__STR(x) AG__STR2(x)

const char *ag_version(void)
{
    return AG__STR(ALTGRAD_VERSION_MAJOR) "." AG__STR(
        ALTGRAD_VERSION_MINOR) "." AG__STR(ALTGRAD_VERSION_PATCH);
}

const char *ag_status_string(ag_status st)
{
    switch (st) {
    case AG_OK: return "success";
    case AG_ERR_NULL: return "a required pointer is NULL";
    case AG_ERR_SCALE: return "scale must be positive and finite (not zero, negative, NaN or inf)";
    case AG_ERR_FORMAT: return "invalid format (NULL, or not made by ag_format_init/ag_format_parse)";
    case AG_ERR_SPEC: return "malformed format spec";
    case AG_ERR_RANGE: return "format out of range: its values do not fit float32 or it is wider than 16 bits";
    case AG_ERR_ALIAS: return "input and output overlap partially (only exact in-place is allowed)";
    case AG_ERR_ARG: return "argument out of range";
    case AG_ERR_NOMEM: return "out of memory";
    case AG_ERR_CODE: return "code outside the format's range of codes";
    case AG_ERR_STORAGE: return "format is wider than the storage type";
    case AG_ERR_SHAPE: return "sizes disagree or their product overflows";
    }
    return "unknown altgrad status";
}
