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
static const named_value mx_scale_names[] = {
    {"floor", AG_MX_SCALE_FLOOR}, {"rceil", AG_MX_SCALE_RCEIL}, {NULL, 0}};
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
/* Scaling and diagnostics (issue 5)                                        */
/* ------------------------------------------------------------------------ */
/* Raw wrappers of the Scaling and Diagnostics sections of altgrad.h. Every
 * output array is given by the caller (the Python layer allocates it), so
 * shapes stay the caller's business: a matrix is (rows, cols) with rows *
 * cols the element count of x. Rounding options come as one dict `opts`
 * (keys rounding, overflow, seed, stream, offset, threads, kernel, and ste
 * for the backward calls; None: the defaults). Counts come back as ints. */

/* Several buffers of one call, released together. */
typedef struct {
    Py_buffer v[5];
    int n;
} sd_bufs;

static Py_buffer *sd_get(sd_bufs *b, PyObject *obj, char kind, Py_ssize_t isz,
                         int writable, const char *what)
{
    assert(b->n < 5);
    if (get_array(obj, &b->v[b->n], kind, isz, writable, what) < 0)
        return NULL;
    return &b->v[b->n++];
}

static void sd_release(sd_bufs *b)
{
    while (b->n > 0)
        PyBuffer_Release(&b->v[--b->n]);
}

/* 'H' for a uint16 buffer, else 'B' (get_array then checks it). */
static char sd_code_kind(PyObject *obj)
{
    char k = 'B';
    Py_buffer probe;
    if (PyObject_GetBuffer(obj, &probe, PyBUF_FORMAT) == 0) {
        if (buffer_kind(&probe) == 'H')
            k = 'H';
        PyBuffer_Release(&probe);
    } else {
        PyErr_Clear();
    }
    return k;
}

/* ag_qopts from an options dict (NULL / None: the defaults). */
static int sd_opts(PyObject *d, ag_qopts *o, int allow_ste)
{
    static const char *keys[] = {"rounding", "overflow", "ste", "seed", "stream",
                                 "offset", "threads", "kernel", "mx_scale", NULL};
    *o = ag_qopts_default();
    py_opts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    if (d == NULL || d == Py_None)
        return 0;
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "opts must be a dict, not %.100s",
                     Py_TYPE(d)->tp_name);
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        int ok = 0;
        for (const char **e = keys; k && *e; e++)
            if (strcmp(k, *e) == 0 && (allow_ste || strcmp(k, "ste") != 0))
                ok = 1;
        if (!ok) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "unknown option %R", key);
            return -1;
        }
    }
    p.rounding = PyDict_GetItemString(d, "rounding");
    p.overflow = PyDict_GetItemString(d, "overflow");
    p.ste = PyDict_GetItemString(d, "ste");
    p.seed = PyDict_GetItemString(d, "seed");
    p.stream = PyDict_GetItemString(d, "stream");
    p.offset = PyDict_GetItemString(d, "offset");
    p.threads = PyDict_GetItemString(d, "threads");
    p.kernel = PyDict_GetItemString(d, "kernel");
    int rule = (int)o->mx_scale; /* the MX shared-scale rule */
    if (get_named(PyDict_GetItemString(d, "mx_scale"), mx_scale_names,
                  "mx_scale rule", &rule) < 0)
        return -1;
    o->mx_scale = (ag_mx_scale)rule;
    return parse_qopts(&p, o);
}

/* The trailing "format, scale=1.0, opts=None" arguments of the
 * diagnostics calls: the format object, the scale (1.0 when absent) and
 * the options dict without an STE entry. -1 with an exception set. */
static int sd_fmt_scale_opts(PyObject *module, PyObject *fo, PyObject *so,
                             PyObject *oo, const ag_format **f, float *scale,
                             ag_qopts *o)
{
    *scale = 1.0f;
    *f = get_format(module, fo);
    if (*f == NULL || (so && get_float(so, "scale", scale) < 0) ||
        sd_opts(oo, o, 0) < 0)
        return -1;
    return 0;
}

/* Check rows, cols >= 0 and rows * cols == the element count of v. */
static int sd_shape(const Py_buffer *v, Py_ssize_t rows, Py_ssize_t cols)
{
    if (rows < 0 || cols < 0) {
        PyErr_SetString(PyExc_ValueError, "rows and cols must be >= 0");
        return -1;
    }
    if ((cols != 0 && (size_t)rows > (size_t)PY_SSIZE_T_MAX / (size_t)cols) ||
        (size_t)rows * (size_t)cols != count_of(v)) {
        PyErr_Format(PyExc_ValueError, "rows * cols (%zd * %zd) is not the "
                     "element count %zu of x", rows, cols, count_of(v));
        return -1;
    }
    return 0;
}

static int sd_len(const Py_buffer *v, size_t n, const char *what)
{
    if (count_of(v) != n) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zu elements, not %zu",
                     what, n, count_of(v));
        return -1;
    }
    return 0;
}

/* scale options for compute_scale / compute_scale_rows */
static int sd_scale_opts(PyObject *margin, PyObject *smin, int pow2,
                         ag_scale_opts *o)
{
    *o = ag_scale_opts_default();
    o->pow2 = pow2;
    if ((margin && margin != Py_None && get_float(margin, "margin", &o->margin) < 0) ||
        (smin && smin != Py_None && get_float(smin, "scale_min", &o->scale_min) < 0))
        return -1;
    return 0;
}

static PyObject *sd_scale_error(ag_status st, const char *what)
{
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "%s: %s (amax must be >= 0 and not NaN; "
                     "margin and scale_min positive and finite)", what,
                     ag_status_string(st));
        return NULL;
    }
    return raise_status(st, what);
}

PyDoc_STRVAR(amax_doc,
"amax(x) -> (amax, nan_count)\n\n"
"max |x| over the non-NaN elements of a float32 buffer (0.0 when empty or\n"
"all NaN; inf for +-inf) and the number of NaN elements (ag_amax).");

static PyObject *mod_amax(PyObject *module, PyObject *arg)
{
    sd_bufs b = {.n = 0};
    (void)module;
    const Py_buffer *x = sd_get(&b, arg, 'f', 4, 0, "x");
    if (x == NULL)
        return NULL;
    float m = 0.0f;
    size_t nans = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_amax(&m, (const float *)x->buf, count_of(x), &nans);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "amax");
    return Py_BuildValue("(dn)", (double)m, (Py_ssize_t)nans);
}

/* The amax history: a capsule owning an ag_amax_history. The Python layer
 * (altgrad.quantization.scaling.AmaxHistory) wraps it; the GIL serializes
 * the calls, as the library requires. */
#define SD_HISTORY "altgrad._C.amax_history"

static void sd_history_free(PyObject *cap)
{
    ag_amax_history_free(
        (ag_amax_history *)PyCapsule_GetPointer(cap, SD_HISTORY));
}

static ag_amax_history *sd_history(PyObject *cap)
{
    if (!PyCapsule_IsValid(cap, SD_HISTORY)) {
        PyErr_Format(PyExc_TypeError, "expected an amax history (from "
                     "amax_history_create), not %.100s", Py_TYPE(cap)->tp_name);
        return NULL;
    }
    return (ag_amax_history *)PyCapsule_GetPointer(cap, SD_HISTORY);
}

PyDoc_STRVAR(amax_history_create_doc,
"amax_history_create(length) -> history\n\n"
"A new amax window of `length` >= 1 values (ag_amax_history_create), as an\n"
"opaque capsule for the amax_history_* functions. ValueError for length < 1.");

static PyObject *mod_amax_history_create(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "history length must be an int, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || n < 1) {
        PyErr_Format(PyExc_ValueError, "history length must be >= 1, got %R", arg);
        return NULL;
    }
    ag_amax_history *h = NULL;
    const ag_status st = ag_amax_history_create(&h, (size_t)n);
    if (st != AG_OK)
        return raise_status(st, "amax_history_create");
    PyObject *cap = PyCapsule_New(h, SD_HISTORY, sd_history_free);
    if (cap == NULL)
        ag_amax_history_free(h);
    return cap;
}

PyDoc_STRVAR(amax_history_push_doc,
"amax_history_push(history, amax) -> None\n\n"
"Push one amax (the oldest drops out when full). ValueError for NaN or < 0.");

static PyObject *mod_amax_history_push(PyObject *module, PyObject *args)
{
    PyObject *cap, *ao;
    float a;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO:amax_history_push", &cap, &ao))
        return NULL;
    ag_amax_history *h = sd_history(cap);
    if (h == NULL || get_float(ao, "amax", &a) < 0)
        return NULL;
    const ag_status st = ag_amax_history_push(h, a);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "amax_history_push: %s (amax %R is NaN "
                     "or negative)", ag_status_string(st), ao);
        return NULL;
    }
    if (st != AG_OK)
        return raise_status(st, "amax_history_push");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(amax_history_info_doc,
"amax_history_info(history) -> (max, count, length)\n\n"
"The window maximum (0.0 when empty), the number of values held and the\n"
"window length.");

static PyObject *mod_amax_history_info(PyObject *module, PyObject *cap)
{
    (void)module;
    const ag_amax_history *h = sd_history(cap);
    if (h == NULL)
        return NULL;
    return Py_BuildValue("(dnn)", (double)ag_amax_history_max(h),
                         (Py_ssize_t)ag_amax_history_count(h),
                         (Py_ssize_t)ag_amax_history_len(h));
}

PyDoc_STRVAR(amax_history_reset_doc,
"amax_history_reset(history) -> None\n\nForget every value (the length stays).");

static PyObject *mod_amax_history_reset(PyObject *module, PyObject *cap)
{
    (void)module;
    ag_amax_history *h = sd_history(cap);
    if (h == NULL)
        return NULL;
    ag_amax_history_reset(h);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(compute_scale_doc,
"compute_scale(amax, format, margin=1.0, scale_min=1e-10, pow2=False) -> float\n\n"
"max(amax * margin / max_finite, scale_min) as a positive finite float32\n"
"(ag_compute_scale; pow2 rounds it up to a power of two). ValueError for a\n"
"NaN or negative amax, or a bad margin / scale_min.");

static PyObject *mod_compute_scale(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"amax", "format", "margin", "scale_min", "pow2", NULL};
    PyObject *ao, *fo, *mo = NULL, *so = NULL;
    int pow2 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOp:compute_scale", kwlist, &ao,
                                     &fo, &mo, &so, &pow2))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float a, s = 0.0f;
    ag_scale_opts o;
    if (f == NULL || get_float(ao, "amax", &a) < 0 ||
        sd_scale_opts(mo, so, pow2, &o) < 0)
        return NULL;
    const ag_status st = ag_compute_scale(&s, a, f, &o);
    if (st != AG_OK)
        return sd_scale_error(st, "compute_scale");
    return PyFloat_FromDouble((double)s);
}

PyDoc_STRVAR(amax_rows_doc,
"amax_rows(amax, x, rows, cols) -> nan_count\n\n"
"amax[r] = amax of row r of the rows x cols matrix x (ag_amax_rows); amax:\n"
"writable float32 buffer of rows elements. Returns the NaN count of x.");

static PyObject *mod_amax_rows(PyObject *module, PyObject *args)
{
    PyObject *ao, *xo;
    Py_ssize_t rows, cols;
    sd_bufs b = {.n = 0};
    (void)module;
    if (!PyArg_ParseTuple(args, "OOnn:amax_rows", &ao, &xo, &rows, &cols))
        return NULL;
    const Py_buffer *a = sd_get(&b, ao, 'f', 4, 1, "amax");
    const Py_buffer *x = a ? sd_get(&b, xo, 'f', 4, 0, "x") : NULL;
    if (x == NULL || sd_shape(x, rows, cols) < 0 ||
        sd_len(a, (size_t)rows, "amax") < 0) {
        sd_release(&b);
        return NULL;
    }
    size_t nans = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_amax_rows((float *)a->buf, (const float *)x->buf, (size_t)rows,
                      (size_t)cols, &nans);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "amax_rows");
    return PyLong_FromSize_t(nans);
}

PyDoc_STRVAR(compute_scale_rows_doc,
"compute_scale_rows(scales, amax, format, margin=1.0, scale_min=1e-10,\n"
"                   pow2=False) -> None\n\n"
"scales[r] = compute_scale(amax[r], ...) (ag_compute_scale_rows); every amax\n"
"is checked first. scales may be amax itself.");

static PyObject *mod_compute_scale_rows(PyObject *module, PyObject *args,
                                        PyObject *kw)
{
    static char *kwlist[] = {"scales", "amax", "format", "margin", "scale_min",
                             "pow2", NULL};
    PyObject *so, *ao, *fo, *mo = NULL, *mino = NULL;
    int pow2 = 0;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOp:compute_scale_rows",
                                     kwlist, &so, &ao, &fo, &mo, &mino, &pow2))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_scale_opts o;
    if (f == NULL || sd_scale_opts(mo, mino, pow2, &o) < 0)
        return NULL;
    const Py_buffer *s = sd_get(&b, so, 'f', 4, 1, "scales");
    const Py_buffer *a = s ? sd_get(&b, ao, 'f', 4, 0, "amax") : NULL;
    if (a == NULL || sd_len(s, count_of(a), "scales") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_compute_scale_rows((float *)s->buf, (const float *)a->buf,
                               count_of(a), f, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return sd_scale_error(st, "compute_scale_rows");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(quantize_rows_doc,
"quantize_rows(y, x, rows, cols, scales, format, opts=None, stats=None) -> None\n\n"
"Row r of y = quantize(row r of x, scales[r]) (ag_quantize_rows). y may be x.\n"
"ValueError when some scale is not positive and finite.");

static PyObject *mod_quantize_rows(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"y", "x", "rows", "cols", "scales", "format", "opts",
                             "stats", NULL};
    PyObject *yo, *xo, *so, *fo, *oo = NULL, *stats = NULL;
    Py_ssize_t rows, cols;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOnnOO|OO:quantize_rows", kwlist,
                                     &yo, &xo, &rows, &cols, &so, &fo, &oo, &stats))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_qopts o;
    if (f == NULL || sd_opts(oo, &o, 0) < 0 || check_stats_arg(stats) < 0)
        return NULL;
    const Py_buffer *y = sd_get(&b, yo, 'f', 4, 1, "y");
    const Py_buffer *x = y ? sd_get(&b, xo, 'f', 4, 0, "x") : NULL;
    const Py_buffer *s = x ? sd_get(&b, so, 'f', 4, 0, "scales") : NULL;
    if (s == NULL || sd_shape(x, rows, cols) < 0 || sd_len(y, count_of(x), "y") < 0 ||
        sd_len(s, (size_t)rows, "scales") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_stats counts = {0, 0, 0, 0};
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_quantize_rows((float *)y->buf, (const float *)x->buf, (size_t)rows,
                          (size_t)cols, (const float *)s->buf, f, &o, &counts);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "quantize_rows");
    if (stats && stats != Py_None && add_stats(stats, &counts) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(quantize_rows_backward_doc,
"quantize_rows_backward(dx, dy, x, rows, cols, scales, format, opts=None) -> None\n\n"
"Straight-through backward of quantize_rows, ACCUMULATING into dx\n"
"(ag_quantize_rows_backward; opts['ste'] 'identity' or 'clipped'; x may be\n"
"None for the identity STE).");

static PyObject *mod_quantize_rows_backward(PyObject *module, PyObject *args,
                                            PyObject *kw)
{
    static char *kwlist[] = {"dx", "dy", "x", "rows", "cols", "scales", "format",
                             "opts", NULL};
    PyObject *dxo, *dyo, *xo, *so, *fo, *oo = NULL;
    Py_ssize_t rows, cols;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOnnOO|O:quantize_rows_backward",
                                     kwlist, &dxo, &dyo, &xo, &rows, &cols, &so,
                                     &fo, &oo))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_qopts o;
    if (f == NULL || sd_opts(oo, &o, 1) < 0)
        return NULL;
    const Py_buffer *dx = sd_get(&b, dxo, 'f', 4, 1, "dx");
    const Py_buffer *dy = dx ? sd_get(&b, dyo, 'f', 4, 0, "dy") : NULL;
    const Py_buffer *s = dy ? sd_get(&b, so, 'f', 4, 0, "scales") : NULL;
    const Py_buffer *x = NULL;
    if (s != NULL && xo != Py_None)
        x = sd_get(&b, xo, 'f', 4, 0, "x");
    if (s == NULL || (xo != Py_None && x == NULL) || sd_shape(dx, rows, cols) < 0 ||
        sd_len(dy, count_of(dx), "dy") < 0 ||
        (x && sd_len(x, count_of(dx), "x") < 0) ||
        sd_len(s, (size_t)rows, "scales") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_quantize_rows_backward((float *)dx->buf, (const float *)dy->buf,
                                   x ? (const float *)x->buf : NULL, (size_t)rows,
                                   (size_t)cols, (const float *)s->buf, f, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "quantize_rows_backward");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mx_scale_count_doc,
"mx_scale_count(rows, cols, block=32) -> int\n\n"
"rows * ceil(cols / block): the number of MX block scales. ValueError for\n"
"block 0 or negative sizes.");

static PyObject *mod_mx_scale_count(PyObject *module, PyObject *args)
{
    Py_ssize_t rows, cols, block = AG_MX_BLOCK;
    (void)module;
    if (!PyArg_ParseTuple(args, "nn|n:mx_scale_count", &rows, &cols, &block))
        return NULL;
    if (rows < 0 || cols < 0 || block < 0) {
        PyErr_SetString(PyExc_ValueError, "rows, cols and block must be >= 0");
        return NULL;
    }
    size_t c = 0;
    const ag_status st = ag_mx_scale_count(&c, (size_t)rows, (size_t)cols,
                                           (size_t)block);
    if (st != AG_OK)
        return raise_status(st, "mx_scale_count");
    return PyLong_FromSize_t(c);
}

PyDoc_STRVAR(mx_scale_code_doc,
"mx_scale_code(amax, format, mx_scale='floor') -> int\n\n"
"The E8M0 scale code of a block with this amax (ag_mx_scale_code_rule): 127 +\n"
"clamp(floor(log2 amax) - emax, -127, 127) ('floor', OCP MX), or the smallest\n"
"code with amax / X <= max_finite ('rceil'); 0 for amax 0, 255 for NaN or inf.");

static PyObject *mod_mx_scale_code(PyObject *module, PyObject *args)
{
    PyObject *ao, *fo, *ro = NULL;
    if (!PyArg_ParseTuple(args, "OO|O:mx_scale_code", &ao, &fo, &ro))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float a;
    int rule = AG_MX_SCALE_FLOOR;
    if (f == NULL || get_float(ao, "amax", &a) < 0 ||
        get_named(ro, mx_scale_names, "mx_scale rule", &rule) < 0)
        return NULL;
    uint8_t code = 0;
    const ag_status st = ag_mx_scale_code_rule(&code, a, f, (ag_mx_scale)rule);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "mx_scale_code: %s (amax must be >= 0)",
                     ag_status_string(st));
        return NULL;
    }
    if (st != AG_OK)
        return raise_status(st, "mx_scale_code");
    return PyLong_FromLong(code);
}

/* the MX arrays of one call: x / y float32 (rows x cols), codes uint8 of the
 * same count, scales uint8 of mx_scale_count */
static int sd_mx_shape(const Py_buffer *x, Py_ssize_t rows, Py_ssize_t cols,
                       Py_ssize_t block, const Py_buffer *scales)
{
    if (sd_shape(x, rows, cols) < 0)
        return -1;
    if (block < 1) {
        PyErr_Format(PyExc_ValueError, "block must be >= 1, got %zd", block);
        return -1;
    }
    size_t nb = 0;
    const ag_status st = ag_mx_scale_count(&nb, (size_t)rows, (size_t)cols,
                                           (size_t)block);
    if (st != AG_OK) {
        raise_status(st, "MX shape");
        return -1;
    }
    return scales ? sd_len(scales, nb, "scales") : 0;
}

PyDoc_STRVAR(mx_encode_doc,
"mx_encode(codes, scales, x, rows, cols, block, format, opts=None, stats=None) -> None\n\n"
"MX block encode (ag_mx_encode): codes (uint8, rows*cols) and E8M0 scale\n"
"codes (uint8, mx_scale_count(rows, cols, block)) of x.");

static PyObject *mod_mx_encode(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"codes", "scales", "x", "rows", "cols", "block",
                             "format", "opts", "stats", NULL};
    PyObject *co, *so, *xo, *fo, *oo = NULL, *stats = NULL;
    Py_ssize_t rows, cols, block;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOnnnO|OO:mx_encode", kwlist, &co,
                                     &so, &xo, &rows, &cols, &block, &fo, &oo,
                                     &stats))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_qopts o;
    if (f == NULL || sd_opts(oo, &o, 0) < 0 || check_stats_arg(stats) < 0)
        return NULL;
    const Py_buffer *c = sd_get(&b, co, 'B', 1, 1, "codes");
    const Py_buffer *s = c ? sd_get(&b, so, 'B', 1, 1, "scales") : NULL;
    const Py_buffer *x = s ? sd_get(&b, xo, 'f', 4, 0, "x") : NULL;
    if (x == NULL || sd_mx_shape(x, rows, cols, block, s) < 0 ||
        sd_len(c, count_of(x), "codes") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_stats counts = {0, 0, 0, 0};
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_mx_encode((uint8_t *)c->buf, (uint8_t *)s->buf, (const float *)x->buf,
                      (size_t)rows, (size_t)cols, (size_t)block, f, &o, &counts);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "mx_encode");
    if (stats && stats != Py_None && add_stats(stats, &counts) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mx_decode_doc,
"mx_decode(y, codes, scales, rows, cols, block, format) -> None\n\n"
"y = to_real(codes) * the block's scale, NaN for a block with scale code 255\n"
"(ag_mx_decode). ValueError for a code outside the format.");

static PyObject *mod_mx_decode(PyObject *module, PyObject *args)
{
    PyObject *yo, *co, *so, *fo;
    Py_ssize_t rows, cols, block;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTuple(args, "OOOnnnO:mx_decode", &yo, &co, &so, &rows, &cols,
                          &block, &fo))
        return NULL;
    const ag_format *f = get_format(module, fo);
    if (f == NULL)
        return NULL;
    const Py_buffer *y = sd_get(&b, yo, 'f', 4, 1, "y");
    const Py_buffer *c = y ? sd_get(&b, co, 'B', 1, 0, "codes") : NULL;
    const Py_buffer *s = c ? sd_get(&b, so, 'B', 1, 0, "scales") : NULL;
    if (s == NULL || sd_mx_shape(y, rows, cols, block, s) < 0 ||
        sd_len(c, count_of(y), "codes") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_mx_decode((float *)y->buf, (const uint8_t *)c->buf,
                      (const uint8_t *)s->buf, (size_t)rows, (size_t)cols,
                      (size_t)block, f);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "mx_decode");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mx_quantize_doc,
"mx_quantize(y, x, rows, cols, block, format, opts=None, stats=None) -> None\n\n"
"y = mx_decode(mx_encode(x)) without the codes (ag_mx_quantize). y may be x.");

static PyObject *mod_mx_quantize(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"y", "x", "rows", "cols", "block", "format", "opts",
                             "stats", NULL};
    PyObject *yo, *xo, *fo, *oo = NULL, *stats = NULL;
    Py_ssize_t rows, cols, block;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOnnnO|OO:mx_quantize", kwlist, &yo,
                                     &xo, &rows, &cols, &block, &fo, &oo, &stats))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_qopts o;
    if (f == NULL || sd_opts(oo, &o, 0) < 0 || check_stats_arg(stats) < 0)
        return NULL;
    const Py_buffer *y = sd_get(&b, yo, 'f', 4, 1, "y");
    const Py_buffer *x = y ? sd_get(&b, xo, 'f', 4, 0, "x") : NULL;
    if (x == NULL || sd_mx_shape(x, rows, cols, block, NULL) < 0 ||
        sd_len(y, count_of(x), "y") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_stats counts = {0, 0, 0, 0};
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_mx_quantize((float *)y->buf, (const float *)x->buf, (size_t)rows,
                        (size_t)cols, (size_t)block, f, &o, &counts);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "mx_quantize");
    if (stats && stats != Py_None && add_stats(stats, &counts) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mx_quantize_backward_doc,
"mx_quantize_backward(dx, dy, x, rows, cols, block, format, opts=None) -> None\n\n"
"Straight-through backward of mx_quantize, ACCUMULATING into dx\n"
"(ag_mx_quantize_backward; opts['ste'] 'identity' or 'clipped').");

static PyObject *mod_mx_quantize_backward(PyObject *module, PyObject *args,
                                          PyObject *kw)
{
    static char *kwlist[] = {"dx", "dy", "x", "rows", "cols", "block", "format",
                             "opts", NULL};
    PyObject *dxo, *dyo, *xo, *fo, *oo = NULL;
    Py_ssize_t rows, cols, block;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOnnnO|O:mx_quantize_backward",
                                     kwlist, &dxo, &dyo, &xo, &rows, &cols, &block,
                                     &fo, &oo))
        return NULL;
    const ag_format *f = get_format(module, fo);
    ag_qopts o;
    if (f == NULL || sd_opts(oo, &o, 1) < 0)
        return NULL;
    const Py_buffer *dx = sd_get(&b, dxo, 'f', 4, 1, "dx");
    const Py_buffer *dy = dx ? sd_get(&b, dyo, 'f', 4, 0, "dy") : NULL;
    const Py_buffer *x = NULL;
    if (dy != NULL && xo != Py_None)
        x = sd_get(&b, xo, 'f', 4, 0, "x");
    if (dy == NULL || (xo != Py_None && x == NULL) ||
        sd_mx_shape(dx, rows, cols, block, NULL) < 0 ||
        sd_len(dy, count_of(dx), "dy") < 0 || (x && sd_len(x, count_of(dx), "x") < 0)) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_mx_quantize_backward((float *)dx->buf, (const float *)dy->buf,
                                 x ? (const float *)x->buf : NULL, (size_t)rows,
                                 (size_t)cols, (size_t)block, f, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "mx_quantize_backward");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bit_stall_doc,
"bit_stall(w, g, lr, format, scale=1.0, opts=None) -> (stalled, considered)\n\n"
"Among the elements with |g| > 1e-10 (considered), those whose quantized\n"
"value does not move with the update w - lr*g (ag_bit_stall).");

static PyObject *mod_bit_stall(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"w", "g", "lr", "format", "scale", "opts", NULL};
    PyObject *wo, *go, *lro, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|OO:bit_stall", kwlist, &wo, &go,
                                     &lro, &fo, &so, &oo))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float lr, scale = 1.0f;
    ag_qopts o;
    if (f == NULL || get_float(lro, "lr", &lr) < 0 ||
        (so && get_float(so, "scale", &scale) < 0) || sd_opts(oo, &o, 0) < 0)
        return NULL;
    const Py_buffer *w = sd_get(&b, wo, 'f', 4, 0, "w");
    const Py_buffer *g = w ? sd_get(&b, go, 'f', 4, 0, "g") : NULL;
    if (g == NULL || sd_len(g, count_of(w), "g") < 0) {
        sd_release(&b);
        return NULL;
    }
    uint64_t stalled = 0, considered = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_bit_stall(&stalled, &considered, (const float *)w->buf,
                      (const float *)g->buf, count_of(w), lr, f, scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st == AG_ERR_ARG && !isfinite(lr)) {
        PyErr_Format(PyExc_ValueError, "bit_stall: %s (lr must be finite)",
                     ag_status_string(st));
        return NULL;
    }
    if (st != AG_OK)
        return raise_status(st, "bit_stall");
    return Py_BuildValue("(KK)", (unsigned long long)stalled,
                         (unsigned long long)considered);
}

PyDoc_STRVAR(flips_doc,
"flips(a, b, format, scale=1.0, opts=None) -> int\n\n"
"Elements where a and b quantize to different grid points (ag_flips); a NaN\n"
"is never the same point as anything.");

static PyObject *mod_flips(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"a", "b", "format", "scale", "opts", NULL};
    PyObject *ao, *bo, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OO:flips", kwlist, &ao, &bo,
                                     &fo, &so, &oo))
        return NULL;
    const ag_format *f;
    float scale;
    ag_qopts o;
    if (sd_fmt_scale_opts(module, fo, so, oo, &f, &scale, &o) < 0)
        return NULL;
    const Py_buffer *a = sd_get(&b, ao, 'f', 4, 0, "a");
    const Py_buffer *bb = a ? sd_get(&b, bo, 'f', 4, 0, "b") : NULL;
    if (bb == NULL || sd_len(bb, count_of(a), "b") < 0) {
        sd_release(&b);
        return NULL;
    }
    uint64_t n = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_flips(&n, (const float *)a->buf, (const float *)bb->buf, count_of(a), f,
                  scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "flips");
    return PyLong_FromUnsignedLongLong(n);
}

PyDoc_STRVAR(flips_codes_doc,
"flips_codes(a, b, format) -> int\n\n"
"Flips between two code snapshots (uint8 or uint16, one dtype for both;\n"
"ag_flips_u8 / _u16). ValueError for a code outside the format.");

static PyObject *mod_flips_codes(PyObject *module, PyObject *args)
{
    PyObject *ao, *bo, *fo;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTuple(args, "OOO:flips_codes", &ao, &bo, &fo))
        return NULL;
    const ag_format *f = get_format(module, fo);
    if (f == NULL)
        return NULL;
    const char k = sd_code_kind(ao);
    const Py_ssize_t isz = k == 'H' ? 2 : 1;
    const Py_buffer *a = sd_get(&b, ao, k, isz, 0, "a");
    const Py_buffer *bb = a ? sd_get(&b, bo, k, isz, 0, "b") : NULL;
    if (bb == NULL || sd_len(bb, count_of(a), "b") < 0) {
        sd_release(&b);
        return NULL;
    }
    uint64_t n = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'H')
        st = ag_flips_u16(&n, (const uint16_t *)a->buf, (const uint16_t *)bb->buf,
                          count_of(a), f);
    else
        st = ag_flips_u8(&n, (const uint8_t *)a->buf, (const uint8_t *)bb->buf,
                         count_of(a), f);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "flips_codes");
    return PyLong_FromUnsignedLongLong(n);
}

PyDoc_STRVAR(update_flips_doc,
"update_flips(before, after, g, format, scale=1.0, opts=None) -> (updates, flips)\n\n"
"updates = elements with |g| > 1e-10, flips = how many of those moved to\n"
"another grid point between before and after (ag_update_flips).");

static PyObject *mod_update_flips(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"before", "after", "g", "format", "scale", "opts", NULL};
    PyObject *bo, *ao, *go, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|OO:update_flips", kwlist, &bo,
                                     &ao, &go, &fo, &so, &oo))
        return NULL;
    const ag_format *f;
    float scale;
    ag_qopts o;
    if (sd_fmt_scale_opts(module, fo, so, oo, &f, &scale, &o) < 0)
        return NULL;
    const Py_buffer *bv = sd_get(&b, bo, 'f', 4, 0, "before");
    const Py_buffer *av = bv ? sd_get(&b, ao, 'f', 4, 0, "after") : NULL;
    const Py_buffer *gv = av ? sd_get(&b, go, 'f', 4, 0, "g") : NULL;
    if (gv == NULL || sd_len(av, count_of(bv), "after") < 0 ||
        sd_len(gv, count_of(bv), "g") < 0) {
        sd_release(&b);
        return NULL;
    }
    uint64_t updates = 0, nflips = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_update_flips(&updates, &nflips, (const float *)bv->buf,
                         (const float *)av->buf, (const float *)gv->buf,
                         count_of(bv), f, scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "update_flips");
    return Py_BuildValue("(KK)", (unsigned long long)updates,
                         (unsigned long long)nflips);
}

PyDoc_STRVAR(stall_ratio_doc,
"stall_ratio(flips, updates) -> float\n\n"
"1 - flips / updates, 0.0 when updates == 0 (ag_stall_ratio). ValueError\n"
"when flips > updates.");

static PyObject *mod_stall_ratio(PyObject *module, PyObject *args)
{
    PyObject *fo, *uo;
    uint64_t nf, nu;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO:stall_ratio", &fo, &uo))
        return NULL;
    if (get_u64(fo, "flips", &nf) < 0 || get_u64(uo, "updates", &nu) < 0)
        return NULL;
    double r = 0.0;
    const ag_status st = ag_stall_ratio(&r, nf, nu);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "stall_ratio: %s (flips %llu > updates "
                     "%llu)", ag_status_string(st), (unsigned long long)nf,
                     (unsigned long long)nu);
        return NULL;
    }
    if (st != AG_OK)
        return raise_status(st, "stall_ratio");
    return PyFloat_FromDouble(r);
}

PyDoc_STRVAR(ulp_distance_doc,
"ulp_distance(d, a, b, format, scale=1.0, opts=None) -> None\n\n"
"d[i] = pos(b[i]) - pos(a[i]) on the format's ordered grid, in codes\n"
"(ag_ulp_distance); -2**31 (AG_ULP_NAN) where a NaN is involved. d: writable\n"
"int32 buffer of the same element count.");

static PyObject *mod_ulp_distance(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"d", "a", "b", "format", "scale", "opts", NULL};
    PyObject *dob, *ao, *bo, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|OO:ulp_distance", kwlist, &dob,
                                     &ao, &bo, &fo, &so, &oo))
        return NULL;
    const ag_format *f;
    float scale;
    ag_qopts o;
    if (sd_fmt_scale_opts(module, fo, so, oo, &f, &scale, &o) < 0)
        return NULL;
    const Py_buffer *d = sd_get(&b, dob, 'i', 4, 1, "d (int32)");
    const Py_buffer *a = d ? sd_get(&b, ao, 'f', 4, 0, "a") : NULL;
    const Py_buffer *bb = a ? sd_get(&b, bo, 'f', 4, 0, "b") : NULL;
    if (bb == NULL || sd_len(bb, count_of(a), "b") < 0 ||
        sd_len(d, count_of(a), "d") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_ulp_distance((int32_t *)d->buf, (const float *)a->buf,
                         (const float *)bb->buf, count_of(a), f, scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "ulp_distance");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ulp_distance_stats_doc,
"ulp_distance_stats(a, b, format, scale=1.0, opts=None) -> (sum_abs, max_abs, nan_pairs)\n\n"
"The ULP distances summed (ag_ulp_distance_stats): sum and max of |d| over\n"
"the pairs without NaN, and the number of pairs with a NaN.");

static PyObject *mod_ulp_distance_stats(PyObject *module, PyObject *args,
                                        PyObject *kw)
{
    static char *kwlist[] = {"a", "b", "format", "scale", "opts", NULL};
    PyObject *ao, *bo, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OO:ulp_distance_stats", kwlist,
                                     &ao, &bo, &fo, &so, &oo))
        return NULL;
    const ag_format *f;
    float scale;
    ag_qopts o;
    if (sd_fmt_scale_opts(module, fo, so, oo, &f, &scale, &o) < 0)
        return NULL;
    const Py_buffer *a = sd_get(&b, ao, 'f', 4, 0, "a");
    const Py_buffer *bb = a ? sd_get(&b, bo, 'f', 4, 0, "b") : NULL;
    if (bb == NULL || sd_len(bb, count_of(a), "b") < 0) {
        sd_release(&b);
        return NULL;
    }
    uint64_t sum = 0, nan_pairs = 0;
    uint32_t mx = 0;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_ulp_distance_stats(&sum, &mx, &nan_pairs, (const float *)a->buf,
                               (const float *)bb->buf, count_of(a), f, scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "ulp_distance_stats");
    return Py_BuildValue("(KkK)", (unsigned long long)sum, (unsigned long)mx,
                         (unsigned long long)nan_pairs);
}

PyDoc_STRVAR(stiffness_doc,
"stiffness(s, w, format, scale=1.0) -> None\n\n"
"s[i] = the format's grid spacing at w[i] (ag_stiffness): 2^(floor(log2|v|)\n"
"- M) * scale with v = w / scale (subnormal step below min_normal; the fixed\n"
"step for E = 0); 0 for +-0, NaN for NaN, inf for +-inf. s may be w.");

static PyObject *mod_stiffness(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"s", "w", "format", "scale", NULL};
    PyObject *so, *wo, *fo, *sco = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|O:stiffness", kwlist, &so, &wo,
                                     &fo, &sco))
        return NULL;
    const ag_format *f = get_format(module, fo);
    float scale = 1.0f;
    if (f == NULL || (sco && get_float(sco, "scale", &scale) < 0))
        return NULL;
    const Py_buffer *s = sd_get(&b, so, 'f', 4, 1, "s");
    const Py_buffer *w = s ? sd_get(&b, wo, 'f', 4, 0, "w") : NULL;
    if (w == NULL || sd_len(s, count_of(w), "s") < 0) {
        sd_release(&b);
        return NULL;
    }
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_stiffness((float *)s->buf, (const float *)w->buf, count_of(w), f, scale);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "stiffness");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(exp_hist_doc,
"exp_hist(x, format, scale=1.0, opts=None) -> tuple[int, ...]\n\n"
"Exponent occupancy of x on the format (ag_exp_hist): bins nan, overflow,\n"
"underflow, zero, subnormal, then one per exponent field 0 .. 2^E - 1.");

static PyObject *mod_exp_hist(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"x", "format", "scale", "opts", NULL};
    PyObject *xo, *fo, *so = NULL, *oo = NULL;
    sd_bufs b = {.n = 0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO:exp_hist", kwlist, &xo, &fo,
                                     &so, &oo))
        return NULL;
    const ag_format *f;
    float scale;
    ag_qopts o;
    if (sd_fmt_scale_opts(module, fo, so, oo, &f, &scale, &o) < 0)
        return NULL;
    uint64_t counts[AG_HIST_FIELD + 256];
    const size_t len = ag_exp_hist_len(f);
    if (len == 0 || len > sizeof counts / sizeof counts[0])
        return raise_status(AG_ERR_FORMAT, "exp_hist");
    memset(counts, 0, sizeof counts);
    const Py_buffer *x = sd_get(&b, xo, 'f', 4, 0, "x");
    if (x == NULL)
        return NULL;
    ag_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ag_exp_hist(counts, len, (const float *)x->buf, count_of(x), f, scale, &o);
    Py_END_ALLOW_THREADS
    sd_release(&b);
    if (st != AG_OK)
        return raise_status(st, "exp_hist");
    PyObject *t = PyTuple_New((Py_ssize_t)len);
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(counts[i]);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

/* ---------------- end of scaling and diagnostics (issue 5) -------------- */

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
    /* scaling and diagnostics (issue 5) */
    {"amax", mod_amax, METH_O, amax_doc},
    {"amax_history_create", mod_amax_history_create, METH_O, amax_history_create_doc},
    {"amax_history_push", mod_amax_history_push, METH_VARARGS, amax_history_push_doc},
    {"amax_history_info", mod_amax_history_info, METH_O, amax_history_info_doc},
    {"amax_history_reset", mod_amax_history_reset, METH_O, amax_history_reset_doc},
    {"compute_scale", KWFN(mod_compute_scale), METH_VARARGS | METH_KEYWORDS,
     compute_scale_doc},
    {"amax_rows", mod_amax_rows, METH_VARARGS, amax_rows_doc},
    {"compute_scale_rows", KWFN(mod_compute_scale_rows), METH_VARARGS | METH_KEYWORDS,
     compute_scale_rows_doc},
    {"quantize_rows", KWFN(mod_quantize_rows), METH_VARARGS | METH_KEYWORDS,
     quantize_rows_doc},
    {"quantize_rows_backward", KWFN(mod_quantize_rows_backward),
     METH_VARARGS | METH_KEYWORDS, quantize_rows_backward_doc},
    {"mx_scale_count", mod_mx_scale_count, METH_VARARGS, mx_scale_count_doc},
    {"mx_scale_code", mod_mx_scale_code, METH_VARARGS, mx_scale_code_doc},
    {"mx_encode", KWFN(mod_mx_encode), METH_VARARGS | METH_KEYWORDS, mx_encode_doc},
    {"mx_decode", mod_mx_decode, METH_VARARGS, mx_decode_doc},
    {"mx_quantize", KWFN(mod_mx_quantize), METH_VARARGS | METH_KEYWORDS, mx_quantize_doc},
    {"mx_quantize_backward", KWFN(mod_mx_quantize_backward), METH_VARARGS | METH_KEYWORDS,
     mx_quantize_backward_doc},
    {"bit_stall", KWFN(mod_bit_stall), METH_VARARGS | METH_KEYWORDS, bit_stall_doc},
    {"flips", KWFN(mod_flips), METH_VARARGS | METH_KEYWORDS, flips_doc},
    {"flips_codes", mod_flips_codes, METH_VARARGS, flips_codes_doc},
    {"update_flips", KWFN(mod_update_flips), METH_VARARGS | METH_KEYWORDS, update_flips_doc},
    {"stall_ratio", mod_stall_ratio, METH_VARARGS, stall_ratio_doc},
    {"ulp_distance", KWFN(mod_ulp_distance), METH_VARARGS | METH_KEYWORDS, ulp_distance_doc},
    {"ulp_distance_stats", KWFN(mod_ulp_distance_stats), METH_VARARGS | METH_KEYWORDS,
     ulp_distance_stats_doc},
    {"stiffness", KWFN(mod_stiffness), METH_VARARGS | METH_KEYWORDS, stiffness_doc},
    {"exp_hist", KWFN(mod_exp_hist), METH_VARARGS | METH_KEYWORDS, exp_hist_doc},
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
