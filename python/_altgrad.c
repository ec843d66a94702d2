/* SPDX-License-Identifier: MIT */
/*
 * _altgrad.c — the CPython extension altgrad._C: a thin layer over the public
 * header altgrad.h. The pure-Python package (python/altgrad/) builds the
 * PyTorch autograd glue on top of it.
 *
 * Arrays come in through the buffer protocol: C-contiguous buffers of float32
 * (format 'f'), or uint8 / uint16 codes ('B' / 'H') for decode. numpy arrays
 * qualify, and so do CPU torch tensors through their zero-copy `.numpy()`
 * views (torch tensors do not export buffers themselves). Nothing is copied:
 * the kernels read and write the exporters' memory, with the GIL released.
 * An output is either given (`out=`, same shape, writable, C-contiguous) or
 * a new numpy array (numpy is imported on first need).
 *
 * Errors: a wrong element type is TypeError; a non-contiguous or read-only
 * buffer, a shape mismatch, a bad scale, format, spec or option is
 * ValueError; every message carries ag_status_string() text (or the spec
 * parser's own message). Allocation failure is MemoryError.
 *
 * Adding a function: write `static PyObject *fn(PyObject *module, PyObject
 * *args, PyObject *kw)` with the helpers below (get_array, new_or_given_out,
 * parse_qopts, raise_status) and add one line to module_methods[].
 *
 * Template: CPython's Modules/xxlimited.c (multi-phase init, a heap type,
 * module state, one `goto fail` cleanup per function).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <altgrad.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef Py_TPFLAGS_IMMUTABLETYPE /* Python < 3.10 */
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif

/* ------------------------------------------------------------------------ */
/* Module state                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject *format_type; /* altgrad._C.Format */
    PyObject *np_empty;    /* numpy.empty, imported on first need */
} module_state;

static module_state *get_state(PyObject *module)
{
    module_state *s = (module_state *)PyModule_GetState(module);
    assert(s != NULL);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Errors and scalars                                                       */
/* ------------------------------------------------------------------------ */

/* Raise the exception for a non-OK status: "<what>: <library message>". */
static PyObject *raise_status(ag_status st, const char *what)
{
    assert(st != AG_OK);
    PyObject *exc = st == AG_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError;
    PyErr_Format(exc, "%s: %s", what, ag_status_string(st));
    return NULL;
}

/* A double rounded to float32 (nearest, ties to even), with overflow made
 * explicit: C leaves an out-of-range double -> float conversion undefined. */
static float to_f32(double d)
{
    if (isfinite(d) && fabs(d) > (double)FLT_MAX) {
        /* 0x1.ffffffp127 is halfway between FLT_MAX and 2^128; the tie goes
         * to the even significand, 2^128, i.e. infinity. */
        const float big = fabs(d) >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
        return d < 0 ? -big : big;
    }
    return (float)d;
}

/* A Python real number (float, int, numpy scalar, 0-d tensor...) as float32. */
static int get_float(PyObject *obj, const char *what, float *out)
{
    if (PyUnicode_Check(obj) || PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a real number, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    const double d = PyFloat_AsDouble(obj);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a real number, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = to_f32(d);
    return 0;
}

/* A non-negative integer below 2^64 (None -> 0). */
static int get_u64(PyObject *obj, const char *what, uint64_t *out)
{
    if (obj == NULL || obj == Py_None) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be in 0 .. 2**64-1", what);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int value;
} named_value;

static const named_value rounding_names[] = {
    {"nearest_even", AG_ROUND_NEAREST_EVEN}, {"nearest", AG_ROUND_NEAREST_EVEN},
    {"nearest_away", AG_ROUND_NEAREST_AWAY}, {"toward_zero", AG_ROUND_TOWARD_ZERO},
    {"down", AG_ROUND_DOWN},                 {"up", AG_ROUND_UP},
    {"stochastic", AG_ROUND_STOCHASTIC},     {NULL, 0}};
static const named_value overflow_names[] = {
    {"saturate", AG_OVERFLOW_SATURATE}, {"ieee", AG_OVERFLOW_IEEE}, {NULL, 0}};
static const named_value ste_names[] = {
    {"identity", AG_STE_IDENTITY}, {"clipped", AG_STE_CLIPPED}, {NULL, 0}};
static const named_value kernel_names[] = {
    {"auto", AG_KERNEL_AUTO},         {"scalar", AG_KERNEL_SCALAR},
    {"portable", AG_KERNEL_PORTABLE}, {"avx2", AG_KERNEL_AVX2},
    {"avx512", AG_KERNEL_AVX512},     {NULL, 0}};
static const named_value specials_names[] = {
    {"none", AG_SPECIALS_NONE}, {"ieee", AG_SPECIALS_IEEE},
    {"fn", AG_SPECIALS_FN},     {"fnuz", AG_SPECIALS_FNUZ}, {NULL, 0}};

/* Look a str option up in table (None or absent keeps *out). */
static int get_named(PyObject *obj, const named_value *table, const char *what,
                     int *out)
{
    if (obj == NULL || obj == Py_None)
        return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *s = PyUnicode_AsUTF8(obj);
    if (s == NULL)
        return -1;
    for (const named_value *e = table; e->name; e++) {
        if (strcmp(s, e->name) == 0) {
            *out = e->value;
            return 0;
        }
    }
    /* the message lists the accepted names */
    char choices[160] = "";
    for (const named_value *e = table; e->name; e++) {
        if (e != table)
            strncat(choices, ", ", sizeof choices - strlen(choices) - 1);
        strncat(choices, e->name, sizeof choices - strlen(choices) - 1);
    }
    PyErr_Format(PyExc_ValueError, "unknown %s '%.50s': expected one of %s",
                 what, s, choices);
    return -1;
}

/* The keyword options shared by the bulk calls, as Python objects. */
typedef struct {
    PyObject *rounding, *overflow, *ste, *seed, *stream, *offset, *threads,
        *kernel;
} py_opts;

static int parse_qopts(const py_opts *p, ag_qopts *o)
{
    int r = (int)o->rounding, ov = (int)o->overflow, ste = (int)o->ste;
    int kernel = o->kernel;
    if (get_named(p->rounding, rounding_names, "rounding mode", &r) < 0 ||
        get_named(p->kernel, kernel_names, "kernel", &kernel) < 0 ||
        get_named(p->overflow, overflow_names, "overflow policy", &ov) < 0 ||
        get_named(p->ste, ste_names, "ste", &ste) < 0 ||
        get_u64(p->seed, "seed", &o->seed) < 0 ||
        get_u64(p->stream, "stream", &o->stream) < 0 ||
        get_u64(p->offset, "offset", &o->offset) < 0)
        return -1;
    o->rounding = (ag_rounding)r;
    o->overflow = (ag_overflow)ov;
    o->ste = (ag_ste)ste;
    o->kernel = kernel;
    if (kernel != AG_KERNEL_AUTO && !ag_kernel_available(kernel)) {
        PyErr_Format(PyExc_ValueError, "kernel '%s' is not available on this "
                     "machine or build (see altgrad._C.kernels())",
                     ag_kernel_name(kernel));
        return -1;
    }
    if (p->threads != NULL && p->threads != Py_None) {
        if (!PyLong_Check(p->threads)) {
            PyErr_Format(PyExc_TypeError, "threads must be an int, not %.100s",
                         Py_TYPE(p->threads)->tp_name);
            return -1;
        }
        const long t = PyLong_AsLong(p->threads);
        if (t == -1 && PyErr_Occurred())
            PyErr_Clear();
        if (t < 0 || t > 4096) {
            PyErr_SetString(PyExc_ValueError, "threads must be in 0 .. 4096 "
                                              "(0: the library's choice)");
            return -1;
        }
        o->threads = (int)t;
    }
    return 0;
}

/* Add the counters to a caller's dict (keys total, overflow, underflow, nan). */
static int add_stats(PyObject *dict, const ag_stats *st)
{
    const char *keys[] = {"total", "overflow", "underflow", "nan"};
    const uint64_t vals[] = {st->total, st->overflow, st->underflow, st->nan};
    for (size_t i = 0; i < 4; i++) {
        PyObject *old = PyDict_GetItemString(dict, keys[i]); /* borrowed */
        PyObject *add = PyLong_FromUnsignedLongLong(vals[i]);
        if (add == NULL)
            return -1;
        PyObject *sum = old ? PyNumber_Add(old, add) : add;
        if (old)
            Py_DECREF(add);
        if (sum == NULL)
            return -1;
        const int rc = PyDict_SetItemString(dict, keys[i], sum);
        Py_DECREF(sum);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int check_stats_arg(PyObject *stats)
{
    if (stats != NULL && stats != Py_None && !PyDict_Check(stats)) {
        PyErr_Format(PyExc_TypeError,
                     "stats must be a dict (counters are added to it), not %.100s",
                     Py_TYPE(stats)->tp_name);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                  */
/* ------------------------------------------------------------------------ */

/* The element type letter of a buffer ('f', 'B', 'H'...), accepting the
 * native byte-order prefixes; 0 for anything longer. */
static char buffer_kind(const Py_buffer *v)
{
    const char *f = v->format ? v->format : "B";
    if (f[0] == '@' || f[0] == '=')
        f++;
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<')
        f++;
#else
    else if (f[0] == '>' || f[0] == '!')
        f++;
#endif
    return (f[0] != '\0' && f[1] == '\0') ? f[0] : 0;
}

static const char *kind_name(char k)
{
    switch (k) {
    case 'f': return "float32";
    case 'B': return "uint8";
    case 'H': return "uint16";
    default: return "?";
    }
}

/* Get a C-contiguous buffer of element kind `kind` (with itemsize) from obj;
 * writable when asked. On success the caller releases view. */
static int get_array(PyObject *obj, Py_buffer *view, char kind, Py_ssize_t isz,
                     int writable, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s must be a %s array exporting the buffer protocol "
                     "(numpy array, or a CPU torch tensor through "
                     "altgrad.quantization), not %.100s",
                     what, kind_name(kind), Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char k = buffer_kind(view);
    if (k != kind || view->itemsize != isz) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype %s, got buffer format "
                     "'%.20s' (itemsize %zd)", what, kind_name(kind),
                     view->format ? view->format : "B", view->itemsize);
        goto fail;
    }
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous (make a "
                     "contiguous copy first)", what);
        goto fail;
    }
    if (writable && view->readonly) {
        PyErr_Format(PyExc_ValueError, "%s is read-only", what);
        goto fail;
    }
    return 0;
fail:
    PyBuffer_Release(view);
    return -1;
}

static int same_shape(const Py_buffer *a, const Py_buffer *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* A new numpy array of the shape of `like` and the given dtype name. */
static PyObject *new_array(PyObject *module, const Py_buffer *like,
                           const char *dtype)
{
    module_state *s = get_state(module);
    PyObject *shape = NULL, *res = NULL;
    if (s->np_empty == NULL) {
        PyObject *np = PyImport_ImportModule("numpy");
        if (np == NULL)
            return NULL;
        s->np_empty = PyObject_GetAttrString(np, "empty");
        Py_DECREF(np);
        if (s->np_empty == NULL)
            return NULL;
    }
    shape = PyTuple_New(like->ndim);
    if (shape == NULL)
        goto fail;
    for (int i = 0; i < like->ndim; i++) {
        PyObject *d = PyLong_FromSsize_t(like->shape[i]);
        if (d == NULL)
            goto fail;
        PyTuple_SET_ITEM(shape, i, d);
    }
    res = PyObject_CallFunction(s->np_empty, "Os", shape, dtype);
fail:
    Py_XDECREF(shape);
    return res;
}

/* The output: `out` (checked: kind, contiguity, writable, shape of `like`)
 * or a new array. Returns a new reference with *view filled, or NULL. */
static PyObject *new_or_given_out(PyObject *module, PyObject *out,
                                  Py_buffer *view, const Py_buffer *like,
                                  char kind, Py_ssize_t isz, const char *dtype)
{
    PyObject *res;
    if (out == NULL || out == Py_None) {
        res = new_array(module, like, dtype);
        if (res == NULL)
            return NULL;
    } else {
        res = out;
        Py_INCREF(res);
    }
    if (get_array(res, view, kind, isz, 1, "out") < 0) {
        Py_DECREF(res);
        return NULL;
    }
    if (!same_shape(view, like)) {
        PyErr_SetString(PyExc_ValueError,
                        "out must have the same shape as the input");
        PyBuffer_Release(view);
        Py_DECREF(res);
        return NULL;
    }
    return res;
}

static size_t count_of(const Py_buffer *v)
{
    return (size_t)(v->len / (v->itemsize ? v->itemsize : 1));
}

/* ------------------------------------------------------------------------ */
/* The Format type                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    ag_format fmt;
} FormatObject;

static PyObject *format_wrap(PyTypeObject *type, const ag_format *f)
{
    FormatObject *self = (FormatObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fmt = *f;
    return (PyObject *)self;
}

/* Parse a spec (registry name or BASE[:KEY=VALUE]...) into a format. */
static PyObject *format_from_spec(PyTypeObject *type, PyObject *spec)
{
    if (!PyUnicode_Check(spec)) {
        PyErr_Format(PyExc_TypeError, "a format spec must be a str, not %.100s",
                     Py_TYPE(spec)->tp_name);
        return NULL;
    }
    const char *s = PyUnicode_AsUTF8(spec);
    if (s == NULL)
        return NULL;
    if (strlen(s) != (size_t)PyUnicode_GET_LENGTH(spec)) {
        PyErr_SetString(PyExc_ValueError, "format spec contains a NUL or "
                                          "non-ASCII character");
        return NULL;
    }
    ag_format f;
    char err[256];
    const ag_status st = ag_format_parse(&f, s, err, sizeof err);
    if (st != AG_OK) {
        PyErr_Format(st == AG_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError,
                     "%s: %s", ag_status_string(st), err);
        return NULL;
    }
    return format_wrap(type, &f);
}

static PyObject *Format_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"spec", NULL};
    PyObject *spec;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:Format", kwlist, &spec))
        return NULL;
    return format_from_spec(type, spec);
}

static void Format_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

enum {
    F_NAME, F_SOURCE, F_EBITS, F_MBITS, F_BIAS, F_SIGNED, F_NO_ZERO, F_SPECIALS,
    F_BITS, F_HAS_INF, F_HAS_NAN, F_HAS_NEGZERO, F_NCODES, F_FINITE_CODES,
    F_MAX_CODE, F_NAN_CODE, F_INF_CODE, F_SIGN_MASK, F_MAX_FINITE,
    F_MIN_NORMAL, F_MIN_SUBNORMAL, F_EMIN, F_EMAX
};

static PyObject *Format_get(PyObject *op, void *closure)
{
    const ag_format *f = &((FormatObject *)op)->fmt;
    switch ((int)(intptr_t)closure) {
    case F_NAME: return PyUnicode_FromString(f->name);
    case F_SOURCE:
        if (f->source == NULL)
            Py_RETURN_NONE;
        return PyUnicode_FromString(f->source);
    case F_EBITS: return PyLong_FromLong(f->ebits);
    case F_MBITS: return PyLong_FromLong(f->mbits);
    case F_BIAS: return PyLong_FromLong(f->bias);
    case F_SIGNED: return PyBool_FromLong(f->is_signed);
    case F_NO_ZERO: return PyBool_FromLong(f->no_zero);
    case F_SPECIALS: return PyUnicode_FromString(ag_specials_name(f->specials));
    case F_BITS: return PyLong_FromLong(f->bits);
    case F_HAS_INF: return PyBool_FromLong(f->has_inf);
    case F_HAS_NAN: return PyBool_FromLong(f->has_nan);
    case F_HAS_NEGZERO: return PyBool_FromLong(f->has_negzero);
    case F_NCODES: return PyLong_FromUnsignedLong(f->ncodes);
    case F_FINITE_CODES: return PyLong_FromUnsignedLong(f->finite_codes);
    case F_MAX_CODE: return PyLong_FromUnsignedLong(f->max_code);
    case F_NAN_CODE: return PyLong_FromUnsignedLong(f->nan_code);
    case F_INF_CODE: return PyLong_FromUnsignedLong(f->inf_code);
    case F_SIGN_MASK: return PyLong_FromUnsignedLong(f->sign_mask);
    case F_MAX_FINITE: return PyFloat_FromDouble((double)f->max_finite);
    case F_MIN_NORMAL: return PyFloat_FromDouble((double)f->min_normal);
    case F_MIN_SUBNORMAL: return PyFloat_FromDouble((double)f->min_subnormal);
    case F_EMIN: return PyLong_FromLong(f->emin);
    case F_EMAX: return PyLong_FromLong(f->emax);
    }
    PyErr_SetString(PyExc_SystemError, "bad Format field");
    return NULL;
}

#define FIELD(pyname, id, doc) \
    {pyname, Format_get, NULL, PyDoc_STR(doc), (void *)(intptr_t)(id)}
static PyGetSetDef Format_getset[] = {
    FIELD("name", F_NAME, "registry name, or the spec it was parsed from"),
    FIELD("source", F_SOURCE, "where the definition comes from"),
    FIELD("ebits", F_EBITS, "exponent bits E"),
    FIELD("exponent_bits", F_EBITS, "exponent bits E (AltGrad name)"),
    FIELD("mbits", F_MBITS, "mantissa bits M"),
    FIELD("mantissa_bits", F_MBITS, "mantissa bits M (AltGrad name)"),
    FIELD("bias", F_BIAS, "exponent bias"),
    FIELD("is_signed", F_SIGNED, "True when a sign bit sits above the exponent"),
    FIELD("no_zero", F_NO_ZERO, "True when exponent field 0 is a normal binade (E8M0)"),
    FIELD("specials", F_SPECIALS, "special-value convention: none, ieee, fn or fnuz"),
    FIELD("bits", F_BITS, "total bits"),
    FIELD("has_inf", F_HAS_INF, "True when the format has infinities"),
    FIELD("has_nan", F_HAS_NAN, "True when the format has a NaN code"),
    FIELD("has_negzero", F_HAS_NEGZERO, "True when the format has -0"),
    FIELD("ncodes", F_NCODES, "number of codes, 2**bits"),
    FIELD("finite_codes", F_FINITE_CODES, "number of codes with finite values"),
    FIELD("max_code", F_MAX_CODE, "code of +max_finite"),
    FIELD("nan_code", F_NAN_CODE, "canonical NaN code (0 without NaN)"),
    FIELD("inf_code", F_INF_CODE, "code of +inf (0 without inf)"),
    FIELD("sign_mask", F_SIGN_MASK, "the sign bit (0 when unsigned)"),
    FIELD("max_finite", F_MAX_FINITE, "largest finite value"),
    FIELD("max_representable_value", F_MAX_FINITE, "largest finite value (AltGrad name)"),
    FIELD("min_normal", F_MIN_NORMAL, "smallest positive normal value"),
    FIELD("min_subnormal", F_MIN_SUBNORMAL, "smallest positive value"),
    FIELD("min_positive_value", F_MIN_SUBNORMAL, "smallest positive value (AltGrad name)"),
    FIELD("emin", F_EMIN, "unbiased exponent of the lowest binade"),
    FIELD("emax", F_EMAX, "unbiased exponent of max_finite"),
    {NULL, NULL, NULL, NULL, NULL}};
#undef FIELD

PyDoc_STRVAR(Format_to_bits_doc,
"to_bits(value, *, rounding='nearest_even', overflow='ieee', seed=0, stream=0, offset=0) -> int\n\n"
"The code of `value` (first rounded to float32). Default: ag_to_bits, i.e.\n"
"nearest-even with overflow to inf / NaN / max as the format allows; NaN gives\n"
"the NaN code, or 0 without one. Stochastic rounding uses stream element `offset`.");

static PyObject *Format_to_bits(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"value", "rounding", "overflow", "seed", "stream",
                             "offset", NULL};
    const ag_format *f = &((FormatObject *)op)->fmt;
    PyObject *value;
    py_opts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OOOOO:to_bits", kwlist, &value,
                                     &p.rounding, &p.overflow, &p.seed, &p.stream,
                                     &p.offset))
        return NULL;
    float x;
    if (get_float(value, "value", &x) < 0)
        return NULL;
    ag_qopts o = ag_qopts_default();
    o.overflow = AG_OVERFLOW_IEEE;
    if (parse_qopts(&p, &o) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ag_to_bits_opts(f, x, &o));
}

PyDoc_STRVAR(Format_to_real_doc,
"to_real(code) -> float\n\n"
"The value of a code (NaN codes give NaN, inf codes +-inf). ValueError for a\n"
"code outside 0 .. ncodes-1.");

static PyObject *Format_to_real(PyObject *op, PyObject *arg)
{
    const ag_format *f = &((FormatObject *)op)->fmt;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "code must be an int, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow = 0;
    const long long c = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (c == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || c < 0 || (unsigned long long)c >= f->ncodes) {
        PyErr_Format(PyExc_ValueError,
                     "code %R is outside %s's codes 0 .. %lu", arg, f->name,
                     (unsigned long)f->ncodes - 1);
        return NULL;
    }
    return PyFloat_FromDouble((double)ag_to_real(f, (uint32_t)c));
}

static PyObject *Format_repr(PyObject *op)
{
    const ag_format *f = &((FormatObject *)op)->fmt;
    return PyUnicode_FromFormat(
        "altgrad.Format('%s': E%d M%d bias=%d specials=%s%s%s)", f->name,
        f->ebits, f->mbits, f->bias, ag_specials_name(f->specials),
        f->is_signed ? "" : " unsigned", f->no_zero ? " no-zero" : "");
}

/* Equality is semantic: same layout, bias, signedness, zero and specials
 * (the name is not compared: FP16 == float16). */
static int format_same(const ag_format *a, const ag_format *b)
{
    return a->ebits == b->ebits && a->mbits == b->mbits && a->bias == b->bias &&
           a->is_signed == b->is_signed && a->no_zero == b->no_zero &&
           a->specials == b->specials;
}

static PyObject *Format_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
        Py_RETURN_NOTIMPLEMENTED;
    const int eq = format_same(&((FormatObject *)a)->fmt, &((FormatObject *)b)->fmt);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t Format_hash(PyObject *op)
{
    const ag_format *f = &((FormatObject *)op)->fmt;
    Py_hash_t h = (Py_hash_t)(((uint32_t)f->ebits << 24) ^ ((uint32_t)f->mbits << 16) ^
                              ((uint32_t)f->specials << 12) ^
                              ((uint32_t)f->is_signed << 11) ^
                              ((uint32_t)f->no_zero << 10)) ^ (Py_hash_t)f->bias * 1000003;
    return h == -1 ? -2 : h;
}

/* Pickling: rebuild through format_init with the same fields. */
static PyObject *Format_reduce(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    const ag_format *f = &((FormatObject *)op)->fmt;
    const ag_format *reg = ag_format_get(f->name);
    if (reg != NULL && format_same(reg, f)) /* a registry entry: by name */
        return Py_BuildValue("(O(s))", (PyObject *)Py_TYPE(op), f->name);
    PyObject *module = PyType_GetModule(Py_TYPE(op));
    if (module == NULL)
        return NULL;
    PyObject *init = PyObject_GetAttrString(module, "format_init");
    if (init == NULL)
        return NULL;
    PyObject *res = Py_BuildValue("(N(siiiisi))", init, f->name, f->ebits,
                                  f->mbits, f->bias, f->is_signed,
                                  ag_specials_name(f->specials), f->no_zero);
    return res;
}

static PyMethodDef Format_methods[] = {
    {"to_bits", (PyCFunction)(void (*)(void))Format_to_bits,
     METH_VARARGS | METH_KEYWORDS, Format_to_bits_doc},
    {"to_real", Format_to_real, METH_O, Format_to_real_doc},
    {"__reduce__", Format_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

PyDoc_STRVAR(Format_doc,
"Format(spec)\n\n"
"A number format of the altgrad library: a registry name ('E5M2',\n"
"'float8_e4m3fn', 'bfloat16', ...) or a spec 'BASE[:KEY=VALUE]...' with\n"
"BASE a registry name or eXmY and KEYs bias=INT, specials=none|ieee|fn|fnuz,\n"
"signed=yes|no, zero=yes|no. Immutable. ValueError for a bad spec, naming\n"
"the bad part. Equality compares the semantics, not the name.");

static PyType_Slot Format_slots[] = {
    {Py_tp_doc, (void *)Format_doc},
    {Py_tp_new, (void *)Format_new},
    {Py_tp_dealloc, (void *)Format_dealloc},
    {Py_tp_repr, (void *)Format_repr},
    {Py_tp_richcompare, (void *)Format_richcompare},
    {Py_tp_hash, (void *)Format_hash},
    {Py_tp_getset, (void *)Format_getset},
    {Py_tp_methods, (void *)Format_methods},
    {0, NULL}};

static PyType_Spec Format_spec = {
    .name = "altgrad._C.Format",
    .basicsize = sizeof(FormatObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Format_slots,
};

/* The ag_format behind a Format argument; NULL with TypeError otherwise. */
static const ag_format *get_format(PyObject *module, PyObject *obj)
{
    PyTypeObject *tp = (PyTypeObject *)get_state(module)->format_type;
    if (!PyObject_TypeCheck(obj, tp)) {
        PyErr_Format(PyExc_TypeError, "format must be an altgrad._C.Format, "
                     "not %.100s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return &((FormatObject *)obj)->fmt;
}

/* ------------------------------------------------------------------------ */
/* Module functions                                                         */
/* ------------------------------------------------------------------------ */

PyDoc_STRVAR(version_doc, "version() -> str\n\nThe C library's version.");

static PyObject *mod_version(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyUnicode_FromString(ag_version());
}

PyDoc_STRVAR(format_names_doc,
"format_names() -> list[str]\n\nThe names of every registry entry, in order.");

static PyObject *mod_format_names(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    const size_t n = ag_format_count();
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(ag_format_at(i)->name);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyDoc_STRVAR(kernels_doc,
"kernels() -> list[str]\n\nThe code paths available on this machine and build ('auto' first).");

static PyObject *mod_kernels(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (const named_value *e = kernel_names; e->name; e++) {
        if (!ag_kernel_available(e->value))
            continue;
        PyObject *s = PyUnicode_FromString(e->name);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

PyDoc_STRVAR(format_init_doc,
"format_init(name, ebits, mbits, bias, is_signed=True, specials='none', no_zero=False) -> Format\n\n"
"A custom format (ag_format_init). ValueError when the layout is out of range\n"
"(E > 8, M > 23, more than 16 bits, values beyond float32) or the specials do\n"
"not fit it.");

static PyObject *mod_format_init(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "ebits", "mbits", "bias", "is_signed",
                             "specials", "no_zero", NULL};
    const char *name;
    int E, M, bias, sgn = 1, nz = 0;
    PyObject *specials = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ziii|pOp:format_init", kwlist,
                                     &name, &E, &M, &bias, &sgn, &specials, &nz))
        return NULL;
    int sp = AG_SPECIALS_NONE;
    if (get_named(specials, specials_names, "specials", &sp) < 0)
        return NULL;
    ag_format f;
    const ag_status st = ag_format_init(&f, name, E, M, bias, sgn, (ag_specials)sp, nz);
    if (st != AG_OK) {
        PyErr_Format(st == AG_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError,
                     "format E%dM%d bias=%d specials=%s%s%s: %s", E, M, bias,
                     ag_specials_name((ag_specials)sp), sgn ? "" : " unsigned",
                     nz ? " no-zero" : "", ag_status_string(st));
        return NULL;
    }
    return format_wrap((PyTypeObject *)get_state(module)->format_type, &f);
}

PyDoc_STRVAR(quantize_doc,
"quantize(x, format, scale=1.0, out=None, *, rounding='nearest_even',\n"
"         overflow='saturate', seed=0, stream=0, offset=0, threads=0, stats=None,\n"
"         kernel='auto') -> out\n\n"
"out[i] = to_real(to_bits(x[i] / scale)) * scale in float32 (ag_quantize).\n"
"x: C-contiguous float32 buffer. out: same shape (may be x itself), or None\n"
"for a new numpy array. scale is rounded to float32 and must be positive\n"
"and finite. stats: a dict to which total/overflow/underflow/nan are added.\n"
"kernel: the code path (auto, scalar, portable, avx2, avx512; see kernels()),\n"
"every one bit-identical: forcing one is for tests and benchmarks.\n"
"The GIL is released while the kernel runs.");

static PyObject *mod_quantize(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"x", "format", "scale", "out", "rounding",
                             "overflow", "seed", "stream", "offset", "threads",
                             "stats", "kernel", NULL};
    PyObject *xo, *fo, *so = NULL, *out = NULL, *stats = NULL, *res = NULL;
    py_opts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    Py_buffer xv = {0}, yv = {0};
    int have_x = 0, have_y = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO$OOOOOOOO:quantize", kwlist,
                                     &xo, &fo, &so, &out, &p.rounding, &p.overflow,
                                     &p.seed, &p.stream, &p.offset, &p.threads,
                                     &stats, &p.kernel))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float scale = 1.0f;
    ag_qopts o = ag_qopts_default();
    if (f == NULL || (so && get_float(so, "scale", &scale) < 0) ||
        parse_qopts(&p, &o) < 0 || check_stats_arg(stats) < 0)
        goto fail;
    if (get_array(xo, &xv, 'f', 4, 0, "x") < 0)
        goto fail;
    have_x = 1;
    res = new_or_given_out(module, out, &yv, &xv, 'f', 4, "float32");
    if (res == NULL)
        goto fail;
    have_y = 1;
    ag_stats counts = {0, 0, 0, 0};
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_quantize((float *)yv.buf, (const float *)xv.buf, count_of(&xv), f,
                     scale, &o, &counts);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        raise_status(st, "quantize");
        goto fail;
    }
    if (stats && stats != Py_None && add_stats(stats, &counts) < 0)
        goto fail;
    PyBuffer_Release(&xv);
    PyBuffer_Release(&yv);
    return res;
fail:
    if (have_x)
        PyBuffer_Release(&xv);
    if (have_y)
        PyBuffer_Release(&yv);
    Py_XDECREF(res);
    return NULL;
}

PyDoc_STRVAR(quantize_backward_doc,
"quantize_backward(dx, dy, x, format, scale=1.0, *, ste='identity', threads=0,\n"
"                  kernel='auto') -> None\n\n"
"Straight-through backward of quantize, ACCUMULATING: dx += dy, or with\n"
"ste='clipped' only where |x/scale| <= max_finite. x may be None for the\n"
"identity STE. dx, dy, x: float32 buffers of one shape; dx writable.");

static PyObject *mod_quantize_backward(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"dx", "dy", "x", "format", "scale", "ste", "threads",
                             "kernel", NULL};
    PyObject *dxo, *dyo, *xo, *fo, *so = NULL;
    py_opts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    Py_buffer dxv = {0}, dyv = {0}, xv = {0};
    int have_dx = 0, have_dy = 0, have_x = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|O$OOO:quantize_backward",
                                     kwlist, &dxo, &dyo, &xo, &fo, &so, &p.ste,
                                     &p.threads, &p.kernel))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float scale = 1.0f;
    ag_qopts o = ag_qopts_default();
    if (f == NULL || (so && get_float(so, "scale", &scale) < 0) ||
        parse_qopts(&p, &o) < 0)
        goto fail;
    if (get_array(dxo, &dxv, 'f', 4, 1, "dx") < 0)
        goto fail;
    have_dx = 1;
    if (get_array(dyo, &dyv, 'f', 4, 0, "dy") < 0)
        goto fail;
    have_dy = 1;
    if (xo != Py_None) {
        if (get_array(xo, &xv, 'f', 4, 0, "x") < 0)
            goto fail;
        have_x = 1;
    }
    if (!same_shape(&dxv, &dyv) || (have_x && !same_shape(&dxv, &xv))) {
        PyErr_SetString(PyExc_ValueError,
                        "quantize_backward: dx, dy and x must have one shape");
        goto fail;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_quantize_backward((float *)dxv.buf, (const float *)dyv.buf,
                              have_x ? (const float *)xv.buf : NULL,
                              count_of(&dxv), f, scale, &o);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        if (st == AG_ERR_NULL && !have_x)
            PyErr_SetString(PyExc_ValueError, "quantize_backward: the clipped "
                                              "STE needs the forward input x");
        else
            raise_status(st, "quantize_backward");
        goto fail;
    }
    PyBuffer_Release(&dxv);
    PyBuffer_Release(&dyv);
    if (have_x)
        PyBuffer_Release(&xv);
    Py_RETURN_NONE;
fail:
    if (have_dx)
        PyBuffer_Release(&dxv);
    if (have_dy)
        PyBuffer_Release(&dyv);
    if (have_x)
        PyBuffer_Release(&xv);
    return NULL;
}

PyDoc_STRVAR(dequantize_doc,
"dequantize(x, scale=1.0, out=None) -> out\n\n"
"out[i] = x[i] * scale in float32 (ag_dequantize). out may be x itself.");

static PyObject *mod_dequantize(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"x", "scale", "out", NULL};
    PyObject *xo, *so = NULL, *out = NULL, *res = NULL;
    Py_buffer xv = {0}, yv = {0};
    int have_x = 0, have_y = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:dequantize", kwlist, &xo,
                                     &so, &out))
        return NULL;
    float scale = 1.0f;
    if (so && get_float(so, "scale", &scale) < 0)
        goto fail;
    if (get_array(xo, &xv, 'f', 4, 0, "x") < 0)
        goto fail;
    have_x = 1;
    res = new_or_given_out(module, out, &yv, &xv, 'f', 4, "float32");
    if (res == NULL)
        goto fail;
    have_y = 1;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_dequantize((float *)yv.buf, (const float *)xv.buf, count_of(&xv), scale);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        raise_status(st, "dequantize");
        goto fail;
    }
    PyBuffer_Release(&xv);
    PyBuffer_Release(&yv);
    return res;
fail:
    if (have_x)
        PyBuffer_Release(&xv);
    if (have_y)
        PyBuffer_Release(&yv);
    Py_XDECREF(res);
    return NULL;
}

PyDoc_STRVAR(dequantize_backward_doc,
"dequantize_backward(dx, dy, scale=1.0) -> None\n\n"
"dx += dy * scale, ACCUMULATING (ag_dequantize_backward).");

static PyObject *mod_dequantize_backward(PyObject *module, PyObject *args,
                                         PyObject *kw)
{
    static char *kwlist[] = {"dx", "dy", "scale", NULL};
    PyObject *dxo, *dyo, *so = NULL;
    Py_buffer dxv = {0}, dyv = {0};
    int have_dx = 0, have_dy = 0;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:dequantize_backward", kwlist,
                                     &dxo, &dyo, &so))
        return NULL;
    float scale = 1.0f;
    if (so && get_float(so, "scale", &scale) < 0)
        goto fail;
    if (get_array(dxo, &dxv, 'f', 4, 1, "dx") < 0)
        goto fail;
    have_dx = 1;
    if (get_array(dyo, &dyv, 'f', 4, 0, "dy") < 0)
        goto fail;
    have_dy = 1;
    if (!same_shape(&dxv, &dyv)) {
        PyErr_SetString(PyExc_ValueError,
                        "dequantize_backward: dx and dy must have one shape");
        goto fail;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_dequantize_backward((float *)dxv.buf, (const float *)dyv.buf,
                                count_of(&dxv), scale);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        raise_status(st, "dequantize_backward");
        goto fail;
    }
    PyBuffer_Release(&dxv);
    PyBuffer_Release(&dyv);
    Py_RETURN_NONE;
fail:
    if (have_dx)
        PyBuffer_Release(&dxv);
    if (have_dy)
        PyBuffer_Release(&dyv);
    return NULL;
}

PyDoc_STRVAR(encode_doc,
"encode(x, format, scale=1.0, out=None, *, rounding='nearest_even',\n"
"       overflow='saturate', seed=0, stream=0, offset=0, threads=0, stats=None,\n"
"       kernel='auto') -> out\n\n"
"Packed codes of x / scale (ag_encode_u8 / _u16): out is uint8 for formats of\n"
"at most 8 bits, else uint16 (a given out picks the storage by its dtype).");

static PyObject *mod_encode(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"x", "format", "scale", "out", "rounding",
                             "overflow", "seed", "stream", "offset", "threads",
                             "stats", "kernel", NULL};
    PyObject *xo, *fo, *so = NULL, *out = NULL, *stats = NULL, *res = NULL;
    py_opts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    Py_buffer xv = {0}, cv = {0};
    int have_x = 0, have_c = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO$OOOOOOOO:encode", kwlist,
                                     &xo, &fo, &so, &out, &p.rounding, &p.overflow,
                                     &p.seed, &p.stream, &p.offset, &p.threads,
                                     &stats, &p.kernel))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float scale = 1.0f;
    ag_qopts o = ag_qopts_default();
    if (f == NULL || (so && get_float(so, "scale", &scale) < 0) ||
        parse_qopts(&p, &o) < 0 || check_stats_arg(stats) < 0)
        goto fail;
    if (get_array(xo, &xv, 'f', 4, 0, "x") < 0)
        goto fail;
    have_x = 1;
    int wide = f->bits > 8;
    if (out != NULL && out != Py_None) {
        /* the storage follows the given buffer's element size */
        Py_buffer probe;
        if (PyObject_GetBuffer(out, &probe, PyBUF_FORMAT) == 0) {
            wide = buffer_kind(&probe) == 'H';
            PyBuffer_Release(&probe);
        } else {
            PyErr_Clear();
        }
    }
    res = new_or_given_out(module, out, &cv, &xv, wide ? 'H' : 'B', wide ? 2 : 1,
                           wide ? "uint16" : "uint8");
    if (res == NULL)
        goto fail;
    have_c = 1;
    ag_stats counts = {0, 0, 0, 0};
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    if (wide)
        st = ag_encode_u16((uint16_t *)cv.buf, (const float *)xv.buf,
                           count_of(&xv), f, scale, &o, &counts);
    else
        st = ag_encode_u8((uint8_t *)cv.buf, (const float *)xv.buf,
                          count_of(&xv), f, scale, &o, &counts);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        raise_status(st, "encode");
        goto fail;
    }
    if (stats && stats != Py_None && add_stats(stats, &counts) < 0)
        goto fail;
    PyBuffer_Release(&xv);
    PyBuffer_Release(&cv);
    return res;
fail:
    if (have_x)
        PyBuffer_Release(&xv);
    if (have_c)
        PyBuffer_Release(&cv);
    Py_XDECREF(res);
    return NULL;
}

PyDoc_STRVAR(decode_doc,
"decode(codes, format, scale=1.0, out=None) -> out\n\n"
"out[i] = to_real(codes[i]) * scale (ag_decode_u8 / _u16 by the dtype of\n"
"codes: uint8 or uint16). ValueError for a code outside the format.");

static PyObject *mod_decode(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"codes", "format", "scale", "out", NULL};
    PyObject *co, *fo, *so = NULL, *out = NULL, *res = NULL;
    Py_buffer cv = {0}, yv = {0};
    int have_c = 0, have_y = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO:decode", kwlist, &co, &fo,
                                     &so, &out))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float scale = 1.0f;
    if (f == NULL || (so && get_float(so, "scale", &scale) < 0))
        goto fail;
    int wide = 0;
    {
        Py_buffer probe;
        if (PyObject_GetBuffer(co, &probe, PyBUF_FORMAT) == 0) {
            wide = buffer_kind(&probe) == 'H';
            PyBuffer_Release(&probe);
        } else {
            PyErr_Clear();
        }
    }
    if (get_array(co, &cv, wide ? 'H' : 'B', wide ? 2 : 1, 0, "codes") < 0)
        goto fail;
    have_c = 1;
    res = new_or_given_out(module, out, &yv, &cv, 'f', 4, "float32");
    if (res == NULL)
        goto fail;
    have_y = 1;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    if (wide)
        st = ag_decode_u16((float *)yv.buf, (const uint16_t *)cv.buf,
                           count_of(&cv), f, scale);
    else
        st = ag_decode_u8((float *)yv.buf, (const uint8_t *)cv.buf,
                          count_of(&cv), f, scale);
    Py_END_ALLOW_THREADS
    if (st != AG_OK) {
        raise_status(st, "decode");
        goto fail;
    }
    PyBuffer_Release(&cv);
    PyBuffer_Release(&yv);
    return res;
fail:
    if (have_c)
        PyBuffer_Release(&cv);
    if (have_y)
        PyBuffer_Release(&yv);
    Py_XDECREF(res);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Module definition                                                        */
/* ------------------------------------------------------------------------ */

#define KWFN(f) (PyCFunction)(void (*)(void))(f)
/* The one table of functions: add new entry points here. */
static PyMethodDef module_methods[] = {
    {"version", mod_version, METH_NOARGS, version_doc},
    {"format_names", mod_format_names, METH_NOARGS, format_names_doc},
    {"kernels", mod_kernels, METH_NOARGS, kernels_doc},
    {"format_init", KWFN(mod_format_init), METH_VARARGS | METH_KEYWORDS, format_init_doc},
    {"quantize", KWFN(mod_quantize), METH_VARARGS | METH_KEYWORDS, quantize_doc},
    {"quantize_backward", KWFN(mod_quantize_backward), METH_VARARGS | METH_KEYWORDS,
     quantize_backward_doc},
    {"dequantize", KWFN(mod_dequantize), METH_VARARGS | METH_KEYWORDS, dequantize_doc},
    {"dequantize_backward", KWFN(mod_dequantize_backward), METH_VARARGS | METH_KEYWORDS,
     dequantize_backward_doc},
    {"encode", KWFN(mod_encode), METH_VARARGS | METH_KEYWORDS, encode_doc},
    {"decode", KWFN(mod_decode), METH_VARARGS | METH_KEYWORDS, decode_doc},
    {NULL, NULL, 0, NULL}};
#undef KWFN

static int module_exec(PyObject *module)
{
    module_state *s = get_state(module);
    s->format_type = PyType_FromModuleAndSpec(module, &Format_spec, NULL);
    if (s->format_type == NULL)
        return -1;
    if (PyModule_AddType(module, (PyTypeObject *)s->format_type) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "__version__", ag_version()) < 0)
        return -1;
    PyObject *modes = Py_BuildValue("(ssssss)", "nearest_even", "nearest_away",
                                    "toward_zero", "down", "up", "stochastic");
    if (modes == NULL)
        return -1;
    if (PyModule_AddObject(module, "ROUNDING_MODES", modes) < 0) {
        Py_DECREF(modes);
        return -1;
    }
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *s = get_state(module);
    Py_VISIT(s->format_type);
    Py_VISIT(s->np_empty);
    return 0;
}

static int module_clear(PyObject *module)
{
    module_state *s = get_state(module);
    Py_CLEAR(s->format_type);
    Py_CLEAR(s->np_empty);
    return 0;
}

static void module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
    {0, NULL}};

PyDoc_STRVAR(module_doc,
"altgrad._C — the altgrad C library for Python: formats (Format), quantize,\n"
"dequantize, their straight-through backward passes, encode and decode, on\n"
"C-contiguous float32 buffers without copies. Use the altgrad package for\n"
"the PyTorch API.");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "altgrad._C",
    .m_doc = module_doc,
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__C(void)
{
    return PyModuleDef_Init(&module_def);
}
