/* SPDX-License-Identifier: MIT */
/*
 * _altgrad.c — the CPython extension altgrad._C: a thin layer over the public
 * header altgrad.h. The pure-Python package (python/altgrad/) builds the
 * PyTorch autograd glue on top of it.
 *
 * One mechanism binds every function: a signature (an arg_spec table) per
 * function drives one argument parser (parse_call), and one dispatcher
 * (dispatch) parses, calls the function's small wrapper and releases every
 * buffer in one place, whatever happened. Wrappers release the GIL around
 * the library call (NOGIL) and build the result.
 *
 * Arrays: C-contiguous buffers (numpy arrays, array.array, memoryview) of
 * float32 ('f'), uint8 / uint16 codes ('B' / 'H'; int16 counts as 16-bit
 * codes) or int32 ('i'), and CPU torch tensors read directly (dtype, device,
 * layout, contiguity and data_ptr(): no .numpy() view, no copy). A tensor
 * that requires grad is refused while grad mode is on (the call would cut the
 * graph). Nothing is copied: the kernels read and write the exporters'
 * memory. An output is either given (`out=`, same shape, writable,
 * C-contiguous) or new: a torch tensor when the input it follows is one,
 * else a numpy array (numpy and torch are looked up on first need).
 *
 * Errors: a wrong element type is TypeError; a non-contiguous or read-only
 * buffer, a shape mismatch, a bad scale, format, spec or option is
 * ValueError; every library failure carries ag_status_string() text.
 * Allocation failure is MemoryError.
 *
 * Adding a function NAME (one table row and one small wrapper):
 *   1. static const arg_spec sig_NAME[] = {{"x", A_IN, 0, 0},
 *      {"format", A_FORMAT, 0, 0}, {"scale", A_SCALE, OPT, 0},
 *      {"out", A_OUT, OPT, 0}, QOPTS, END};
 *      Each row: the Python name, its kind (enum arg_kind: arrays, scalars,
 *      options), flags (OPT: may be omitted, KW: keyword only) and, for an
 *      output, the index of the array whose shape and kind it follows.
 *      Options (rounding=, seed=, ... or an opts dict) land in c->q, an
 *      ag_qopts; QOPTS / BOPTS add the usual forward / backward sets.
 *   2. static PyObject *w_NAME(call *c): read c->a[i] (arrays: .ptr, .n,
 *      .kind), c->v[i] (scalars: .fmt, .f, .n, .i, .u, .s, .p), c->raw[i]
 *      (the object passed, NULL when omitted) and c->q; check what the
 *      signature cannot say (need_count, need_matrix); run the library
 *      call inside NOGIL(...); return a new reference (ret_array(c, i),
 *      none_ref(), ...) or NULL with an exception set (fail_status). Never
 *      release anything: the dispatcher does, and adds c->counts to a
 *      stats= dict.
 *   3. PyDoc_STRVAR(doc_NAME, "NAME(...) -> ...\n\n...") and X(NAME) in
 *      FUNCTIONS at the end of the file.
 *
 * Template: CPython's Modules/xxlimited.c (multi-phase init, a heap type,
 * module state).
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
    PyObject *np_empty;    /* numpy.empty, on first need */
    /* torch, looked up in sys.modules on the first object that is not a
     * buffer (so numpy-only users never load it) */
    PyObject *tensor_type; /* torch.Tensor */
    PyObject *t_float32, *t_uint8, *t_int16, *t_int32; /* dtypes */
    PyObject *t_strided;   /* torch.strided */
    PyObject *t_empty, *t_empty_like, *t_grad_enabled;
    PyObject *name[10]; /* interned tensor attribute names, by enum tname */
} module_state;

/* The tensor attributes and methods read_tensor uses (module_state.name). */
enum tname { N_IS_CPU, N_DEVICE, N_DTYPE, N_LAYOUT, N_REQUIRES_GRAD,
             N_IS_CONTIGUOUS, N_IS_NEG, N_NUMEL, N_DATA_PTR, N_SHAPE, N_COUNT };
static const char *const tensor_names[N_COUNT] = {
    "is_cpu", "device", "dtype", "layout", "requires_grad", "is_contiguous",
    "is_neg", "numel", "data_ptr", "shape"};

static module_state *get_state(PyObject *module)
{
    module_state *s = (module_state *)PyModule_GetState(module);
    assert(s != NULL);
    return s;
}

/* Look torch up once it is imported; 0 when it is not (nothing can be a
 * tensor then), 1 when found, -1 on error. */
static int load_torch(module_state *s)
{
    if (s->tensor_type != NULL)
        return 1;
    PyObject *mods = PyImport_GetModuleDict(); /* borrowed */
    PyObject *torch = mods ? PyDict_GetItemString(mods, "torch") : NULL;
    if (torch == NULL)
        return 0;
    static const char *names[] = {"float32", "uint8", "int16", "int32", "strided",
                                  "empty", "empty_like", "is_grad_enabled",
                                  "Tensor"};
    PyObject *got[9] = {NULL};
    for (size_t i = 0; i < 9; i++) {
        got[i] = PyObject_GetAttrString(torch, names[i]);
        if (got[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                Py_DECREF(got[j]);
            return -1;
        }
    }
    s->t_float32 = got[0];
    s->t_uint8 = got[1];
    s->t_int16 = got[2];
    s->t_int32 = got[3];
    s->t_strided = got[4];
    s->t_empty = got[5];
    s->t_empty_like = got[6];
    s->t_grad_enabled = got[7];
    s->tensor_type = got[8];
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Errors and scalars                                                       */
/* ------------------------------------------------------------------------ */

/* Raise the exception for a non-OK status: "<what>: <library message>". */
static PyObject *fail_status(ag_status st, const char *what)
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
/* A real number as a double (hyper-parameters). */
static int get_double(PyObject *obj, const char *what, double *out)
{
    if (!PyUnicode_Check(obj) && !PyBytes_Check(obj)) {
        const double d = PyFloat_AsDouble(obj);
        if (!(d == -1.0 && PyErr_Occurred())) {
            *out = d;
            return 0;
        }
        PyErr_Clear();
    }
    PyErr_Format(PyExc_TypeError, "%s must be a real number, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    return -1;
}

static int get_float(PyObject *obj, const char *what, float *out)
{
    if (PyFloat_CheckExact(obj)) { /* the common case, without a call */
        *out = to_f32(PyFloat_AS_DOUBLE(obj));
        return 0;
    }
    if (PyUnicode_Check(obj) || PyBytes_Check(obj))
        goto bad;
    const double d = PyFloat_AsDouble(obj);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        goto bad;
    }
    *out = to_f32(d);
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "%s must be a real number, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    return -1;
}

/* A non-negative integer below 2^64. */
static int get_u64(PyObject *obj, const char *what, uint64_t *out)
{
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

/* An int in lo .. hi (ValueError outside, TypeError for a non-int). */
static int get_int(PyObject *obj, const char *what, long long lo, long long hi,
                   long long *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in %lld .. %lld, got %R", what,
                     lo, hi, obj);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Option names                                                             */
/* ------------------------------------------------------------------------ */

/* The value of option name `obj` of `kind`, parsed by the library
 * (ag_option_parse: '-' and '_' alike, case ignored, aliases); ValueError
 * with its message (which lists the valid names) for an unknown one,
 * TypeError for a non-str. */
static int get_option(PyObject *obj, ag_option_kind kind, int *out)
{
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s",
                     ag_option_kind_name(kind), Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t len = 0;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (s == NULL)
        return -1;
    char err[256];
    if ((size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "unknown %s (the name holds a NUL)",
                     ag_option_kind_name(kind));
        return -1;
    }
    if (ag_option_parse(out, kind, s, err, sizeof err) != AG_OK) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    return 0;
}

/* Equal names, '-' and '_' alike (option kinds: "scaler-first"). */
static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        const char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* The Python spelling of a canonical name: '_' for '-' ("nearest_even"). */
static PyObject *python_name(const char *name)
{
    char buf[64];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof buf; i++)
        buf[i] = name[i] == '-' ? '_' : name[i];
    buf[i] = '\0';
    return PyUnicode_FromString(buf);
}

/* The Python names of every value of `kind` (available kernels only for
 * AG_OPTION_KERNEL), as a list. */
static PyObject *option_names(ag_option_kind kind)
{
    PyObject *list = PyList_New(0);
    const size_t n = ag_option_count(kind);
    for (size_t v = 0; list != NULL && v < n; v++) {
        if (kind == AG_OPTION_KERNEL && !ag_kernel_available((int)v))
            continue;
        PyObject *s = python_name(ag_option_name(kind, (int)v));
        if (s == NULL || PyList_Append(list, s) < 0)
            Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
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

/* ------------------------------------------------------------------------ */
/* Arrays: buffers and CPU torch tensors                                    */
/* ------------------------------------------------------------------------ */

/* One array argument, read (or allocated) by the parser, released by the
 * dispatcher. kind: 'f' float32, 'B' uint8, 'H' 16-bit codes, 'i' int32. */
typedef struct {
    PyObject *obj;     /* the array (owned reference), NULL when absent */
    void *ptr;         /* its first element */
    size_t n;          /* element count */
    char kind;
    int is_tensor;
    int have_view;
    Py_buffer view;    /* buffers: the exported view (shape in view.shape) */
} arr;

static void arr_release(arr *a)
{
    if (a->have_view)
        PyBuffer_Release(&a->view);
    a->have_view = 0;
    Py_CLEAR(a->obj);
}

static const char *kind_name(char k)
{
    switch (k) {
    case 'f': return "float32";
    case 'B': return "uint8";
    case 'H': return "uint16";
    case 'i': return "int32";
    default: return "uint8 or uint16"; /* 'c': codes of either width */
    }
}

/* The element kind of a buffer ('f', 'B', 'H', 'h'...), accepting the native
 * byte-order prefixes; 0 for anything longer. */
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
    if (f[0] == '\0' || f[1] != '\0')
        return 0;
    switch (f[0]) {
    case 'f': return v->itemsize == 4 ? 'f' : 0;
    case 'B': return v->itemsize == 1 ? 'B' : 0;
    case 'H': case 'h': return v->itemsize == 2 ? 'H' : 0; /* 16-bit codes */
    case 'i': return v->itemsize == 4 ? 'i' : 0;
    default: return 0;
    }
}

static int kind_ok(char want, char got)
{
    return want == got || (want == 'c' && (got == 'B' || got == 'H'));
}

/* How to convert to kind k: a tensor method or a numpy astype. */
static const char *conversion(char k, int tensor)
{
    switch (k) {
    case 'f': return tensor ? ".float()" : ".astype(np.float32)";
    case 'B': return tensor ? ".to(torch.uint8)" : ".astype(np.uint8)";
    case 'H': return tensor ? ".to(torch.int16)" : ".astype(np.uint16)";
    case 'i': return tensor ? ".int()" : ".astype(np.int32)";
    default: /* codes of either width */
        return tensor ? ".to(torch.uint8) (formats of up to 8 bits) or "
                        ".to(torch.int16) (16-bit codes)"
                      : ".astype(np.uint8) (formats of up to 8 bits) or "
                        ".astype(np.uint16) (16-bit codes)";
    }
}

/* A tensor's boolean attribute or method result; -1 on error. */
static int tensor_flag(module_state *s, PyObject *t, int name, int call)
{
    PyObject *v = call ? PyObject_CallMethodNoArgs(t, s->name[name])
                       : PyObject_GetAttr(t, s->name[name]);
    if (v == NULL)
        return -1;
    const int r = v == Py_True ? 1 : v == Py_False ? 0 : PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static int read_tensor(module_state *s, PyObject *t, arr *a, char want,
                       const char *what)
{
    int r = tensor_flag(s, t, N_IS_CPU, 0);
    if (r < 0)
        return -1;
    if (!r) {
        PyObject *dev = PyObject_GetAttr(t, s->name[N_DEVICE]);
        if (dev != NULL) {
            PyErr_Format(PyExc_ValueError, "%s is on device '%S': altgrad runs on "
                         "the CPU (move it with .cpu())", what, dev);
            Py_DECREF(dev);
        }
        return -1;
    }
    PyObject *dt = PyObject_GetAttr(t, s->name[N_DTYPE]);
    if (dt == NULL)
        return -1;
    char k = dt == s->t_float32 ? 'f' : dt == s->t_uint8 ? 'B'
           : dt == s->t_int16 ? 'H' : dt == s->t_int32 ? 'i' : 0;
    if (!kind_ok(want, k)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s tensor, got %S (convert "
                     "explicitly, e.g. %s%s)", what,
                     want == 'c' ? "uint8 or int16 (16-bit codes)" : kind_name(want),
                     dt, what, conversion(want, 1));
        Py_DECREF(dt);
        return -1;
    }
    Py_DECREF(dt);
    PyObject *layout = PyObject_GetAttr(t, s->name[N_LAYOUT]);
    if (layout == NULL)
        return -1;
    Py_DECREF(layout); /* only compared by identity */
    if (layout != s->t_strided) {
        PyErr_Format(PyExc_TypeError, "%s must be a dense (strided) tensor", what);
        return -1;
    }
    if ((r = tensor_flag(s, t, N_REQUIRES_GRAD, 0)) < 0)
        return -1;
    if (r) {
        PyObject *on = PyObject_CallNoArgs(s->t_grad_enabled);
        const int grad_on = on ? PyObject_IsTrue(on) : -1;
        Py_XDECREF(on);
        if (grad_on < 0)
            return -1;
        if (grad_on) {
            PyErr_Format(PyExc_TypeError, "%s requires grad: altgrad._C reads "
                         "buffers and tensors outside autograd (use "
                         "altgrad.quantization, or pass %s.detach())", what, what);
            return -1;
        }
    }
    if ((r = tensor_flag(s, t, N_IS_CONTIGUOUS, 1)) < 0)
        return -1;
    if (!r) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous (make a "
                     "contiguous copy first)", what);
        return -1;
    }
    if ((r = tensor_flag(s, t, N_IS_NEG, 1)) < 0)
        return -1;
    if (r) {
        PyErr_Format(PyExc_ValueError, "%s is a negative view: resolve it first "
                     "(%s.resolve_neg())", what, what);
        return -1;
    }
    PyObject *numel = PyObject_CallMethodNoArgs(t, s->name[N_NUMEL]);
    PyObject *dp = numel ? PyObject_CallMethodNoArgs(t, s->name[N_DATA_PTR]) : NULL;
    const Py_ssize_t n = numel ? PyLong_AsSsize_t(numel) : -1;
    void *p = dp ? PyLong_AsVoidPtr(dp) : NULL;
    Py_XDECREF(numel);
    Py_XDECREF(dp);
    if (PyErr_Occurred() || n < 0) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%s: bad element count", what);
        return -1;
    }
    static const float empty_dummy = 0.0f; /* never read or written: n == 0 */
    a->ptr = n == 0 ? (void *)&empty_dummy : p;
    a->n = (size_t)n;
    a->kind = k;
    a->is_tensor = 1;
    Py_INCREF(t);
    a->obj = t;
    return 0;
}

/* Read array argument obj into *a (C-contiguous, element kind `want`: 'f',
 * 'B', 'H', 'i' or 'c' for codes of either width; writable when asked). */
static int read_array(module_state *s, PyObject *obj, arr *a, char want,
                      int writable, const char *what)
{
    if (s->tensor_type && PyObject_TypeCheck(obj, (PyTypeObject *)s->tensor_type))
        return read_tensor(s, obj, a, want, what);
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        const int t = load_torch(s);
        if (t < 0)
            return -1;
        if (t && PyObject_TypeCheck(obj, (PyTypeObject *)s->tensor_type))
            return read_tensor(s, obj, a, want, what);
        PyErr_Format(PyExc_TypeError,
                     "%s must be a %s array exporting the buffer protocol "
                     "(numpy array) or a CPU torch tensor, not %.100s",
                     what, kind_name(want), Py_TYPE(obj)->tp_name);
        return -1;
    }
    a->have_view = 1;
    const char k = buffer_kind(&a->view);
    if (!kind_ok(want, k)) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype %s, got buffer format "
                     "'%.20s' (itemsize %zd; convert explicitly, e.g. %s%s)", what,
                     kind_name(want), a->view.format ? a->view.format : "B",
                     a->view.itemsize, what, conversion(want, 0));
        goto fail;
    }
    if (!PyBuffer_IsContiguous(&a->view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous (make a "
                     "contiguous copy first)", what);
        goto fail;
    }
    if (writable && a->view.readonly) {
        PyErr_Format(PyExc_ValueError, "%s is read-only", what);
        goto fail;
    }
    a->ptr = a->view.buf;
    a->n = (size_t)(a->view.len / a->view.itemsize);
    a->kind = k;
    a->is_tensor = 0;
    Py_INCREF(obj);
    a->obj = obj;
    return 0;
fail:
    PyBuffer_Release(&a->view);
    a->have_view = 0;
    return -1;
}

/* The shape of an array as a new tuple. */
static PyObject *arr_shape(module_state *s, const arr *a)
{
    if (a->is_tensor)
        return PyObject_GetAttr(a->obj, s->name[N_SHAPE]);
    PyObject *t = PyTuple_New(a->view.ndim);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < a->view.ndim; i++) {
        PyObject *d = PyLong_FromSsize_t(a->view.shape[i]);
        if (d == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

static int same_shape(module_state *s, const arr *a, const arr *b)
{
    if (!a->is_tensor && !b->is_tensor) {
        if (a->view.ndim != b->view.ndim)
            return 0;
        for (int i = 0; i < a->view.ndim; i++)
            if (a->view.shape[i] != b->view.shape[i])
                return 0;
        return 1;
    }
    PyObject *sa = arr_shape(s, a), *sb = sa ? arr_shape(s, b) : NULL;
    const int eq = sb ? PyObject_RichCompareBool(sa, sb, Py_EQ) : -1;
    Py_XDECREF(sa);
    Py_XDECREF(sb);
    if (eq < 0)
        PyErr_Clear();
    return eq == 1;
}

/* A new array of `like`'s shape and kind (a tensor when like is one, else a
 * numpy array), read into *a. */
static int new_array(module_state *s, const arr *like, char kind, arr *a)
{
    PyObject *res = NULL;
    if (like->is_tensor) {
        if (kind == 'f' && like->kind == 'f') {
            res = PyObject_CallOneArg(s->t_empty_like, like->obj);
        } else {
            PyObject *dt = kind == 'f' ? s->t_float32 : kind == 'B' ? s->t_uint8
                         : kind == 'H' ? s->t_int16 : s->t_int32;
            PyObject *kw = Py_BuildValue("{sO}", "dtype", dt);
            PyObject *shape = kw ? arr_shape(s, like) : NULL;
            PyObject *args = shape ? PyTuple_Pack(1, shape) : NULL;
            res = args ? PyObject_Call(s->t_empty, args, kw) : NULL;
            Py_XDECREF(args);
            Py_XDECREF(shape);
            Py_XDECREF(kw);
        }
    } else {
        if (s->np_empty == NULL) {
            PyObject *np = PyImport_ImportModule("numpy");
            if (np == NULL)
                return -1;
            s->np_empty = PyObject_GetAttrString(np, "empty");
            Py_DECREF(np);
            if (s->np_empty == NULL)
                return -1;
        }
        PyObject *shape = arr_shape(s, like);
        const char *dt = kind == 'f' ? "float32" : kind == 'B' ? "uint8"
                       : kind == 'H' ? "uint16" : "int32";
        res = shape ? PyObject_CallFunction(s->np_empty, "Os", shape, dt) : NULL;
        Py_XDECREF(shape);
    }
    if (res == NULL)
        return -1;
    const int rc = read_array(s, res, a, kind, 1, "out");
    Py_DECREF(res);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The argument parser and the dispatcher                                   */
/* ------------------------------------------------------------------------ */

typedef enum {
    A_END = 0,
    /* arrays (c->a[i]) */
    A_IN,        /* float32 input */
    A_IN_NONE,   /* float32 input or None (c->a[i].obj NULL) */
    A_INOUT,     /* float32, written (accumulating outputs, given outputs) */
    A_INOUT_NONE,/* float32, written, or None / omitted (c->a[i].obj NULL) */
    A_OUT,       /* float32 output: given (same shape as arg `like`) or new */
    A_CODES_IN,  /* uint8 / 16-bit codes input */
    A_CODES_OUT, /* codes output: given (its width picks the storage) or new
                    (uint8 up to 8 bits of c->v[fmt], else uint16) */
    A_U8_INOUT,  /* uint8, written */
    A_U8_IN,     /* uint8 input */
    A_I32_INOUT, /* int32, written */
    /* scalars (c->v[i]) */
    A_FORMAT,    /* altgrad._C.Format -> .fmt */
    A_SCALE,     /* float32 scale -> .f (1.0 when omitted) */
    A_FLOAT,     /* float32 -> .f (0.0 when omitted) */
    A_DOUBLE,    /* real -> .d (0.0 when omitted) */
    A_FORMAT_NONE, /* altgrad._C.Format or None -> .fmt (NULL for None) */
    A_SIZE,      /* int >= 0 -> .n */
    A_INT,       /* int -> .i */
    A_BOOL,      /* truth value -> .i */
    A_U64,       /* int in 0 .. 2**64-1 -> .u */
    A_STR,       /* str -> .s (UTF-8, no NUL) */
    A_OBJ,       /* any object (c->raw[i]) */
    A_SPECIALS,  /* specials name -> .i */
    A_STATS,     /* dict or None: the call adds its counters (c->counts) */
    A_SCALER,    /* a scaler from scaler_create -> .p */
    /* options, into c->q */
    A_ROUNDING, A_OVERFLOW, A_STE, A_SEED, A_STREAM, A_OFFSET, A_THREADS,
    A_KERNEL, A_MX_SCALE,
    A_OPTS,      /* dict of the options above (None: the defaults) */
    A_OPTS_STE   /* the same, "ste" allowed */
} arg_kind;

enum { OPT = 1, KW = 2 }; /* arg_spec.flags: may be omitted; keyword only */

typedef struct {
    const char *name;
    unsigned char kind;  /* arg_kind */
    unsigned char flags; /* OPT, KW */
    unsigned char like;  /* A_OUT / A_CODES_OUT: the array it follows;
                            A_CODES_OUT: like + 1 is the format */
} arg_spec;

#define END {NULL, A_END, 0, 0}
#define MAX_ARGS 20

typedef union {
    const ag_format *fmt;
    float f;
    double d;
    Py_ssize_t n;
    long long i;
    uint64_t u;
    const char *s;
    void *p;
} scalar;

typedef struct {
    PyObject *module;
    module_state *st;
    const char *fname;
    const arg_spec *sig;
    int nsig;
    PyObject *raw[MAX_ARGS]; /* borrowed: the objects passed (NULL: omitted) */
    arr a[MAX_ARGS];
    scalar v[MAX_ARGS];
    ag_qopts q;
    PyObject *stats;         /* borrowed dict, or NULL */
    ag_stats counts;
} call;

typedef PyObject *(*wrapper)(call *c);

/* Run stmt without the GIL (no Python API inside). */
#define NOGIL(stmt)                                   \
    do {                                              \
        PyThreadState *nogil_ts_ = PyEval_SaveThread(); \
        stmt;                                         \
        PyEval_RestoreThread(nogil_ts_);              \
    } while (0)

static int is_array_kind(int k)
{
    return k >= A_IN && k <= A_I32_INOUT;
}

/* The ag_format behind a Format argument; NULL with TypeError otherwise. */
static const ag_format *get_format(module_state *s, PyObject *obj);

/* The ag_scaler in a capsule from scaler_create; NULL with TypeError. */
#define SCALER_CAPSULE "altgrad._C.scaler"
static ag_scaler *get_scaler(PyObject *cap)
{
    if (!PyCapsule_IsValid(cap, SCALER_CAPSULE)) {
        PyErr_Format(PyExc_TypeError, "expected a scaler (from scaler_create), "
                     "not %.100s", Py_TYPE(cap)->tp_name);
        return NULL;
    }
    return (ag_scaler *)PyCapsule_GetPointer(cap, SCALER_CAPSULE);
}

/* One option (rounding=, seed=...) into q. */
static int set_option(ag_qopts *q, int kind, PyObject *o, const char *name)
{
    int v = 0;
    long long t = 0;
    switch (kind) {
    case A_ROUNDING:
        if (get_option(o, AG_OPTION_ROUNDING, &v) < 0)
            return -1;
        q->rounding = (ag_rounding)v;
        return 0;
    case A_OVERFLOW:
        if (get_option(o, AG_OPTION_OVERFLOW, &v) < 0)
            return -1;
        q->overflow = (ag_overflow)v;
        return 0;
    case A_STE:
        if (get_option(o, AG_OPTION_STE, &v) < 0)
            return -1;
        q->ste = (ag_ste)v;
        return 0;
    case A_KERNEL:
        if (get_option(o, AG_OPTION_KERNEL, &v) < 0)
            return -1;
        if (v != AG_KERNEL_AUTO && !ag_kernel_available(v)) {
            PyErr_Format(PyExc_ValueError, "kernel '%s' is not available on this "
                         "machine or build (see altgrad._C.kernels())",
                         ag_kernel_name(v));
            return -1;
        }
        q->kernel = v;
        return 0;
    case A_MX_SCALE:
        if (get_option(o, AG_OPTION_MX_SCALE, &v) < 0)
            return -1;
        q->mx_scale = (ag_mx_scale)v;
        return 0;
    case A_SEED: return get_u64(o, name, &q->seed);
    case A_STREAM: return get_u64(o, name, &q->stream);
    case A_OFFSET: return get_u64(o, name, &q->offset);
    case A_THREADS:
        if (!PyLong_Check(o)) {
            PyErr_Format(PyExc_TypeError, "threads must be an int, not %.100s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        if (get_int(o, "threads (0: the library's choice)", 0, 4096, &t) < 0)
            return -1;
        q->threads = (int)t;
        return 0;
    }
    return 0;
}

/* An options dict: every key one of the option names. */
static int set_options_dict(ag_qopts *q, PyObject *d, int allow_ste)
{
    static const struct { const char *key; int kind; } keys[] = {
        {"rounding", A_ROUNDING}, {"overflow", A_OVERFLOW}, {"ste", A_STE},
        {"seed", A_SEED},         {"stream", A_STREAM},     {"offset", A_OFFSET},
        {"threads", A_THREADS},   {"kernel", A_KERNEL},     {"mx_scale", A_MX_SCALE}};
    if (d == Py_None)
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
        int kind = -1;
        for (size_t i = 0; k && i < sizeof keys / sizeof keys[0]; i++)
            if (strcmp(k, keys[i].key) == 0 && (allow_ste || keys[i].kind != A_STE))
                kind = keys[i].kind;
        if (kind < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "unknown option %R", key);
            return -1;
        }
        if (value != Py_None && set_option(q, kind, value, k) < 0)
            return -1;
    }
    return 0;
}

/* Decode the scalar argument i (pass 1). */
static int parse_scalar(call *c, int i)
{
    const arg_spec *sp = &c->sig[i];
    PyObject *o = c->raw[i];
    scalar *v = &c->v[i];
    if (o == NULL) { /* omitted: the defaults */
        if (sp->kind == A_SCALE)
            v->f = 1.0f;
        return 0;
    }
    switch (sp->kind) {
    case A_FORMAT:
        return (v->fmt = get_format(c->st, o)) ? 0 : -1;
    case A_FORMAT_NONE:
        v->fmt = NULL;
        return o == Py_None || (v->fmt = get_format(c->st, o)) ? 0 : -1;
    case A_DOUBLE:
        return get_double(o, sp->name, &v->d);
    case A_SCALE:
    case A_FLOAT:
        return get_float(o, sp->name, &v->f);
    case A_SIZE:
        return get_int(o, sp->name, 0, PY_SSIZE_T_MAX, &v->i) < 0
                   ? -1 : (v->n = (Py_ssize_t)v->i, 0);
    case A_INT:
        return get_int(o, sp->name, LLONG_MIN, LLONG_MAX, &v->i);
    case A_BOOL: {
        const int t = PyObject_IsTrue(o);
        v->i = t;
        return t < 0 ? -1 : 0;
    }
    case A_U64:
        return get_u64(o, sp->name, &v->u);
    case A_STR: {
        if (!PyUnicode_Check(o)) {
            PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", sp->name,
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        Py_ssize_t len = 0;
        v->s = PyUnicode_AsUTF8AndSize(o, &len);
        if (v->s == NULL)
            return -1;
        if ((size_t)len != strlen(v->s)) {
            PyErr_Format(PyExc_ValueError, "%s contains a NUL character", sp->name);
            return -1;
        }
        return 0;
    }
    case A_SPECIALS: {
        int sv = 0;
        if (o != Py_None && get_option(o, AG_OPTION_SPECIALS, &sv) < 0)
            return -1;
        v->i = sv;
        return 0;
    }
    case A_STATS:
        if (o == Py_None)
            return 0;
        if (!PyDict_Check(o)) {
            PyErr_Format(PyExc_TypeError, "stats must be a dict (counters are "
                         "added to it), not %.100s", Py_TYPE(o)->tp_name);
            return -1;
        }
        c->stats = o;
        return 0;
    case A_OPTS:
    case A_OPTS_STE:
        return set_options_dict(&c->q, o, sp->kind == A_OPTS_STE);
    case A_SCALER:
        return (v->p = get_scaler(o)) ? 0 : -1;
    case A_OBJ:
        return 0;
    default: /* an option: None keeps the default */
        return o == Py_None ? 0 : set_option(&c->q, sp->kind, o, sp->name);
    }
}

/* Read the array argument i (pass 2: inputs, pass 3: new outputs). */
static int parse_array(call *c, int i)
{
    const arg_spec *sp = &c->sig[i];
    PyObject *o = c->raw[i];
    arr *a = &c->a[i];
    switch (sp->kind) {
    case A_IN: return read_array(c->st, o, a, 'f', 0, sp->name);
    case A_IN_NONE:
        return o == Py_None ? 0 : read_array(c->st, o, a, 'f', 0, sp->name);
    case A_INOUT: return read_array(c->st, o, a, 'f', 1, sp->name);
    case A_INOUT_NONE:
        return o == NULL || o == Py_None ? 0
                                         : read_array(c->st, o, a, 'f', 1, sp->name);
    case A_CODES_IN: return read_array(c->st, o, a, 'c', 0, sp->name);
    case A_U8_IN: return read_array(c->st, o, a, 'B', 0, sp->name);
    case A_U8_INOUT: return read_array(c->st, o, a, 'B', 1, sp->name);
    case A_I32_INOUT: return read_array(c->st, o, a, 'i', 1, sp->name);
    }
    /* A_OUT, A_CODES_OUT */
    const arr *like = &c->a[sp->like];
    if (o != NULL && o != Py_None) {
        if (read_array(c->st, o, a, sp->kind == A_OUT ? 'f' : 'c', 1, sp->name) < 0)
            return -1;
        if (!same_shape(c->st, a, like)) {
            PyErr_Format(PyExc_ValueError, "%s must have the same shape as the "
                         "input", sp->name);
            return -1;
        }
        return 0;
    }
    char kind = 'f';
    if (sp->kind == A_CODES_OUT)
        kind = c->v[sp->like + 1].fmt->bits > 8 ? 'H' : 'B';
    return new_array(c->st, like, kind, a);
}

/* Match args / kwnames (vectorcall convention) to sig and decode them all. */
static int parse_call(call *c, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    int n = 0;
    while (c->sig[n].name)
        n++;
    assert(n <= MAX_ARGS);
    c->nsig = n;
    c->stats = NULL;
    c->q = ag_qopts_default();
    memset(&c->counts, 0, sizeof c->counts);
    for (int i = 0; i < n; i++) {
        c->raw[i] = NULL;
        c->a[i].obj = NULL;
        c->a[i].have_view = 0;
        memset(&c->v[i], 0, sizeof c->v[i]);
    }
    int npos = 0; /* arguments that may be given by position */
    while (npos < n && !(c->sig[npos].flags & KW))
        npos++;
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional "
                     "arguments (%zd given)", c->fname, npos, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        c->raw[i] = args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        for (; i < n; i++)
            if (PyUnicode_CompareWithASCIIString(key, c->sig[i].name) == 0)
                break;
        if (i == n) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword "
                         "argument '%U'", c->fname, key);
            return -1;
        }
        if (c->raw[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument "
                         "'%s'", c->fname, c->sig[i].name);
            return -1;
        }
        c->raw[i] = args[nargs + k];
    }
    for (int i = 0; i < n; i++) {
        if (c->raw[i] == NULL && !(c->sig[i].flags & OPT)) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
                         c->fname, c->sig[i].name);
            return -1;
        }
    }
    /* scalars and options first, then inputs, then outputs */
    for (int i = 0; i < n; i++)
        if (!is_array_kind(c->sig[i].kind) && parse_scalar(c, i) < 0)
            return -1;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            const int k = c->sig[i].kind;
            const int is_out = k == A_OUT || k == A_CODES_OUT;
            if (is_array_kind(k) && is_out == pass && parse_array(c, i) < 0)
                return -1;
        }
    }
    return 0;
}

static void release_call(call *c)
{
    for (int i = 0; i < c->nsig; i++)
        arr_release(&c->a[i]);
}

/* Parse, run the wrapper, add the counters, release: the one call path. */
static PyObject *dispatch(PyObject *module, const char *fname, const arg_spec *sig,
                          wrapper fn, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    call c;
    c.module = module;
    c.st = get_state(module);
    c.fname = fname;
    c.sig = sig;
    PyObject *res = NULL;
    if (parse_call(&c, args, nargs, kwnames) == 0) {
        res = fn(&c);
        if (res != NULL && c.stats != NULL && add_stats(c.stats, &c.counts) < 0)
            Py_CLEAR(res);
    }
    release_call(&c);
    return res;
}

/* The array argument i as the result (new reference). */
static PyObject *ret_array(const call *c, int i)
{
    Py_INCREF(c->a[i].obj);
    return c->a[i].obj;
}

/* ValueError unless array i holds n elements. */
static int need_count(const call *c, int i, size_t n)
{
    if (c->a[i].obj != NULL && c->a[i].n != n) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must hold %zu elements, not %zu",
                     c->fname, c->sig[i].name, n, c->a[i].n);
        return -1;
    }
    return 0;
}

static PyObject *none_ref(void)
{
    Py_INCREF(Py_None);
    return Py_None;
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

static const arg_spec sig_to_bits[] = {
    {"value", A_FLOAT, 0, 0},       {"rounding", A_ROUNDING, OPT | KW, 0},
    {"overflow", A_OVERFLOW, OPT | KW, 0}, {"seed", A_SEED, OPT | KW, 0},
    {"stream", A_STREAM, OPT | KW, 0}, {"offset", A_OFFSET, OPT | KW, 0}, END};

static PyObject *Format_to_bits(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *module = PyType_GetModule(Py_TYPE(op));
    if (module == NULL)
        return NULL;
    call c;
    c.module = module;
    c.st = get_state(module);
    c.fname = "to_bits";
    c.sig = sig_to_bits;
    PyObject *res = NULL;
    if (parse_call(&c, args, nargs, kwnames) == 0) {
        if (c.raw[2] == NULL || c.raw[2] == Py_None) /* to_bits' own default */
            c.q.overflow = AG_OVERFLOW_IEEE;
        res = PyLong_FromUnsignedLong(
            ag_to_bits_opts(&((FormatObject *)op)->fmt, c.v[0].f, &c.q));
    }
    release_call(&c);
    return res;
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
     METH_FASTCALL | METH_KEYWORDS, Format_to_bits_doc},
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
static const ag_format *get_format(module_state *s, PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)s->format_type)) {
        PyErr_Format(PyExc_TypeError, "format must be an altgrad._C.Format, "
                     "not %.100s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return &((FormatObject *)obj)->fmt;
}

/* ------------------------------------------------------------------------ */
/* The functions: a signature, a wrapper and a doc string each              */
/* ------------------------------------------------------------------------ */

/* The rounding options as keywords (into c->q), forward and backward. */
#define QOPTS                                                              \
    {"rounding", A_ROUNDING, OPT | KW, 0}, {"overflow", A_OVERFLOW, OPT | KW, 0}, \
    {"seed", A_SEED, OPT | KW, 0}, {"stream", A_STREAM, OPT | KW, 0},       \
    {"offset", A_OFFSET, OPT | KW, 0}, {"threads", A_THREADS, OPT | KW, 0}, \
    {"kernel", A_KERNEL, OPT | KW, 0}
/* The MX shared-scale rule (ag_qopts.mx_scale) of the MX calls. */
#define MXOPT {"mx_scale", A_MX_SCALE, OPT | KW, 0}
#define BOPTS                                                              \
    {"ste", A_STE, OPT | KW, 0}, {"threads", A_THREADS, OPT | KW, 0},       \
    {"kernel", A_KERNEL, OPT | KW, 0}

/* --- the library ---------------------------------------------------------- */

PyDoc_STRVAR(doc_version, "version() -> str\n\nThe C library's version.");
static const arg_spec sig_version[] = {END};
static PyObject *w_version(call *c)
{
    (void)c;
    return PyUnicode_FromString(ag_version());
}

PyDoc_STRVAR(doc_format_names,
"format_names() -> list[str]\n\nThe names of every registry entry, in order.");
static const arg_spec sig_format_names[] = {END};
static PyObject *w_format_names(call *c)
{
    (void)c;
    const size_t n = ag_format_count();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *s = PyUnicode_FromString(ag_format_at(i)->name);
        if (s == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyDoc_STRVAR(doc_kernels,
"kernels() -> list[str]\n\nThe code paths available on this machine and build ('auto' first).");
static const arg_spec sig_kernels[] = {END};
static PyObject *w_kernels(call *c)
{
    (void)c;
    return option_names(AG_OPTION_KERNEL);
}

PyDoc_STRVAR(doc_format_init,
"format_init(name, ebits, mbits, bias, is_signed=True, specials='none', no_zero=False) -> Format\n\n"
"A custom format (ag_format_init). ValueError when the layout is out of range\n"
"(E > 8, M > 23, more than 16 bits, values beyond float32) or the specials do\n"
"not fit it.");
static const arg_spec sig_format_init[] = {
    {"name", A_STR, 0, 0},          {"ebits", A_INT, 0, 0},
    {"mbits", A_INT, 0, 0},         {"bias", A_INT, 0, 0},
    {"is_signed", A_BOOL, OPT, 0},  {"specials", A_SPECIALS, OPT, 0},
    {"no_zero", A_BOOL, OPT, 0},    END};
static PyObject *w_format_init(call *c)
{
    for (int i = 1; i <= 3; i++) {
        if (c->v[i].i < INT_MIN || c->v[i].i > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "%s is out of range", c->sig[i].name);
            return NULL;
        }
    }
    const int E = (int)c->v[1].i, M = (int)c->v[2].i, bias = (int)c->v[3].i;
    const int sgn = c->raw[4] ? (int)c->v[4].i : 1, nz = (int)c->v[6].i;
    const ag_specials sp = (ag_specials)c->v[5].i;
    ag_format f;
    const ag_status st = ag_format_init(&f, c->v[0].s, E, M, bias, sgn, sp, nz);
    if (st != AG_OK) {
        PyErr_Format(st == AG_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError,
                     "format E%dM%d bias=%d specials=%s%s%s: %s", E, M, bias,
                     ag_specials_name(sp), sgn ? "" : " unsigned",
                     nz ? " no-zero" : "", ag_status_string(st));
        return NULL;
    }
    return format_wrap((PyTypeObject *)c->st->format_type, &f);
}

/* --- quantize, dequantize, encode, decode --------------------------------- */

PyDoc_STRVAR(doc_quantize,
"quantize(x, format, scale=1.0, out=None, *, rounding='nearest_even',\n"
"         overflow='saturate', seed=0, stream=0, offset=0, threads=0, stats=None,\n"
"         kernel='auto') -> out\n\n"
"out[i] = to_real(to_bits(x[i] / scale)) * scale in float32 (ag_quantize).\n"
"x: C-contiguous float32 buffer or CPU tensor. out: same shape (may be x\n"
"itself), or None for a new array of x's kind. scale is rounded to float32\n"
"and must be positive and finite. stats: a dict to which total/overflow/\n"
"underflow/nan are added. kernel: the code path (auto, scalar, portable,\n"
"avx2, avx512; see kernels()), every one bit-identical: forcing one is for\n"
"tests and benchmarks. The GIL is released while the kernel runs.");
static const arg_spec sig_quantize[] = {
    {"x", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, {"scale", A_SCALE, OPT, 0},
    {"out", A_OUT, OPT, 0}, {"stats", A_STATS, OPT | KW, 0}, QOPTS, END};
static PyObject *w_quantize(call *c)
{
    ag_status st;
    NOGIL(st = ag_quantize(c->a[3].ptr, c->a[0].ptr, c->a[0].n, c->v[1].fmt,
                           c->v[2].f, &c->q, &c->counts));
    return st == AG_OK ? ret_array(c, 3) : fail_status(st, "quantize");
}

PyDoc_STRVAR(doc_quantize_backward,
"quantize_backward(dx, dy, x, format, scale=1.0, *, ste='identity', threads=0,\n"
"                  kernel='auto') -> None\n\n"
"Straight-through backward of quantize, ACCUMULATING: dx += dy, or with\n"
"ste='clipped' only where |x/scale| <= max_finite. x may be None for the\n"
"identity STE. dx, dy, x: float32 arrays of one shape; dx writable.");
static const arg_spec sig_quantize_backward[] = {
    {"dx", A_INOUT, 0, 0}, {"dy", A_IN, 0, 0}, {"x", A_IN_NONE, 0, 0},
    {"format", A_FORMAT, 0, 0}, {"scale", A_SCALE, OPT, 0}, BOPTS, END};
static PyObject *w_quantize_backward(call *c)
{
    const arr *dx = &c->a[0], *dy = &c->a[1], *x = &c->a[2];
    if (!same_shape(c->st, dx, dy) || (x->obj && !same_shape(c->st, dx, x))) {
        PyErr_SetString(PyExc_ValueError,
                        "quantize_backward: dx, dy and x must have one shape");
        return NULL;
    }
    if (x->obj == NULL && c->q.ste == AG_STE_CLIPPED) {
        PyErr_SetString(PyExc_ValueError, "quantize_backward: the clipped STE "
                                          "needs the forward input x");
        return NULL;
    }
    ag_status st;
    NOGIL(st = ag_quantize_backward(dx->ptr, dy->ptr, x->obj ? x->ptr : NULL, dx->n,
                                    c->v[3].fmt, c->v[4].f, &c->q));
    return st == AG_OK ? none_ref() : fail_status(st, "quantize_backward");
}

PyDoc_STRVAR(doc_dequantize,
"dequantize(x, scale=1.0, out=None) -> out\n\n"
"out[i] = x[i] * scale in float32 (ag_dequantize). out may be x itself.");
static const arg_spec sig_dequantize[] = {
    {"x", A_IN, 0, 0}, {"scale", A_SCALE, OPT, 0}, {"out", A_OUT, OPT, 0}, END};
static PyObject *w_dequantize(call *c)
{
    ag_status st;
    NOGIL(st = ag_dequantize(c->a[2].ptr, c->a[0].ptr, c->a[0].n, c->v[1].f));
    return st == AG_OK ? ret_array(c, 2) : fail_status(st, "dequantize");
}

PyDoc_STRVAR(doc_dequantize_backward,
"dequantize_backward(dx, dy, scale=1.0) -> None\n\n"
"dx += dy * scale, ACCUMULATING (ag_dequantize_backward).");
static const arg_spec sig_dequantize_backward[] = {
    {"dx", A_INOUT, 0, 0}, {"dy", A_IN, 0, 0}, {"scale", A_SCALE, OPT, 0}, END};
static PyObject *w_dequantize_backward(call *c)
{
    if (!same_shape(c->st, &c->a[0], &c->a[1])) {
        PyErr_SetString(PyExc_ValueError,
                        "dequantize_backward: dx and dy must have one shape");
        return NULL;
    }
    ag_status st;
    NOGIL(st = ag_dequantize_backward(c->a[0].ptr, c->a[1].ptr, c->a[0].n, c->v[2].f));
    return st == AG_OK ? none_ref() : fail_status(st, "dequantize_backward");
}

PyDoc_STRVAR(doc_encode,
"encode(x, format, scale=1.0, out=None, *, rounding='nearest_even',\n"
"       overflow='saturate', seed=0, stream=0, offset=0, threads=0, stats=None,\n"
"       kernel='auto') -> out\n\n"
"Packed codes of x / scale (ag_encode_u8 / _u16): out is uint8 for formats of\n"
"at most 8 bits, else uint16 (torch: int16 holding the 16 bits); a given out\n"
"picks the storage by its dtype.");
static const arg_spec sig_encode[] = {
    {"x", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, {"scale", A_SCALE, OPT, 0},
    {"out", A_CODES_OUT, OPT, 0}, {"stats", A_STATS, OPT | KW, 0}, QOPTS, END};
static PyObject *w_encode(call *c)
{
    const arr *x = &c->a[0], *out = &c->a[3];
    ag_status st;
    if (out->kind == 'H')
        NOGIL(st = ag_encode_u16(out->ptr, x->ptr, x->n, c->v[1].fmt, c->v[2].f, &c->q,
                                 &c->counts));
    else
        NOGIL(st = ag_encode_u8(out->ptr, x->ptr, x->n, c->v[1].fmt, c->v[2].f, &c->q,
                                &c->counts));
    return st == AG_OK ? ret_array(c, 3) : fail_status(st, "encode");
}

PyDoc_STRVAR(doc_decode,
"decode(codes, format, scale=1.0, out=None) -> out\n\n"
"out[i] = to_real(codes[i]) * scale (ag_decode_u8 / _u16 by the dtype of\n"
"codes: uint8, or uint16 / int16 holding 16-bit codes). ValueError for a\n"
"code outside the format.");
static const arg_spec sig_decode[] = {
    {"codes", A_CODES_IN, 0, 0}, {"format", A_FORMAT, 0, 0},
    {"scale", A_SCALE, OPT, 0},  {"out", A_OUT, OPT, 0}, END};
static PyObject *w_decode(call *c)
{
    const arr *codes = &c->a[0], *out = &c->a[3];
    ag_status st;
    if (codes->kind == 'H')
        NOGIL(st = ag_decode_u16(out->ptr, codes->ptr, codes->n, c->v[1].fmt, c->v[2].f));
    else
        NOGIL(st = ag_decode_u8(out->ptr, codes->ptr, codes->n, c->v[1].fmt, c->v[2].f));
    return st == AG_OK ? ret_array(c, 3) : fail_status(st, "decode");
}

/* --- scaling (issue 5) ---------------------------------------------------- */
/* Matrices are (rows, cols) with rows * cols the element count of x; the
 * Python layer allocates every output. The rows / MX / diagnostics calls also
 * take the options as one dict `opts` (the same names), for callers that
 * pass them along. */

/* ValueError unless rows * cols is the element count of array i. */
static int need_matrix(const call *c, int i, Py_ssize_t rows, Py_ssize_t cols)
{
    if ((cols != 0 && (size_t)rows > (size_t)PY_SSIZE_T_MAX / (size_t)cols) ||
        (size_t)rows * (size_t)cols != c->a[i].n) {
        PyErr_Format(PyExc_ValueError, "rows * cols (%zd * %zd) is not the "
                     "element count %zu of %s", rows, cols, c->a[i].n,
                     c->sig[i].name);
        return -1;
    }
    return 0;
}

static PyObject *scale_error(ag_status st, const char *what)
{
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "%s: %s (amax must be >= 0 and not NaN; "
                     "margin and scale_min positive and finite)", what,
                     ag_status_string(st));
        return NULL;
    }
    return fail_status(st, what);
}

/* ag_scale_opts from the margin, scale_min, pow2 arguments i .. i + 2
 * (omitted or None: the defaults). */
static ag_scale_opts scale_opts(const call *c, int i)
{
    ag_scale_opts o = ag_scale_opts_default();
    if (c->raw[i] && c->raw[i] != Py_None)
        o.margin = c->v[i].f;
    if (c->raw[i + 1] && c->raw[i + 1] != Py_None)
        o.scale_min = c->v[i + 1].f;
    o.pow2 = (int)c->v[i + 2].i;
    return o;
}

#define SCALE_OPTS                                                          \
    {"margin", A_FLOAT, OPT, 0}, {"scale_min", A_FLOAT, OPT, 0},            \
    {"pow2", A_BOOL, OPT, 0}

PyDoc_STRVAR(doc_amax,
"amax(x) -> (amax, nan_count)\n\n"
"max |x| over the non-NaN elements of a float32 array (0.0 when empty or\n"
"all NaN; inf for +-inf) and the number of NaN elements (ag_amax).");
static const arg_spec sig_amax[] = {{"x", A_IN, 0, 0}, END};
static PyObject *w_amax(call *c)
{
    float m = 0.0f;
    size_t nans = 0;
    ag_status st;
    NOGIL(st = ag_amax(&m, c->a[0].ptr, c->a[0].n, &nans));
    if (st != AG_OK)
        return fail_status(st, "amax");
    return Py_BuildValue("(dn)", (double)m, (Py_ssize_t)nans);
}

/* None, or the error of a call that pushes an amax (AG_ERR_ARG: a NaN or
 * negative amax). */
static PyObject *amax_status(ag_status st, const char *what, PyObject *amax)
{
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "%s: %s (amax %R is NaN or negative)", what,
                     ag_status_string(st), amax);
        return NULL;
    }
    return st == AG_OK ? none_ref() : fail_status(st, what);
}

/* The amax history: a capsule owning an ag_amax_history. The GIL serializes
 * the calls, as the library requires. */
#define HISTORY_CAPSULE "altgrad._C.amax_history"

static void history_free(PyObject *cap)
{
    ag_amax_history_free((ag_amax_history *)PyCapsule_GetPointer(cap, HISTORY_CAPSULE));
}

static ag_amax_history *get_history(PyObject *cap)
{
    if (!PyCapsule_IsValid(cap, HISTORY_CAPSULE)) {
        PyErr_Format(PyExc_TypeError, "expected an amax history (from "
                     "amax_history_create), not %.100s", Py_TYPE(cap)->tp_name);
        return NULL;
    }
    return (ag_amax_history *)PyCapsule_GetPointer(cap, HISTORY_CAPSULE);
}

PyDoc_STRVAR(doc_amax_history_create,
"amax_history_create(length) -> history\n\n"
"A new amax window of `length` >= 1 values (ag_amax_history_create), as an\n"
"opaque capsule for the amax_history_* functions. ValueError for length < 1.");
static const arg_spec sig_amax_history_create[] = {{"length", A_OBJ, 0, 0}, END};
static PyObject *w_amax_history_create(call *c)
{
    long long n = 0;
    if (get_int(c->raw[0], "history length (>= 1)", 1, PY_SSIZE_T_MAX, &n) < 0)
        return NULL;
    ag_amax_history *h = NULL;
    const ag_status st = ag_amax_history_create(&h, (size_t)n);
    if (st != AG_OK)
        return fail_status(st, "amax_history_create");
    PyObject *cap = PyCapsule_New(h, HISTORY_CAPSULE, history_free);
    if (cap == NULL)
        ag_amax_history_free(h);
    return cap;
}

PyDoc_STRVAR(doc_amax_history_push,
"amax_history_push(history, amax) -> None\n\n"
"Push one amax (the oldest drops out when full). ValueError for NaN or < 0.");
static const arg_spec sig_amax_history_push[] = {
    {"history", A_OBJ, 0, 0}, {"amax", A_FLOAT, 0, 0}, END};
static PyObject *w_amax_history_push(call *c)
{
    ag_amax_history *h = get_history(c->raw[0]);
    if (h == NULL)
        return NULL;
    return amax_status(ag_amax_history_push(h, c->v[1].f), "amax_history_push",
                       c->raw[1]);
}

PyDoc_STRVAR(doc_amax_history_info,
"amax_history_info(history) -> (max, count, length)\n\n"
"The window maximum (0.0 when empty), the number of values held and the\n"
"window length.");
static const arg_spec sig_amax_history_info[] = {{"history", A_OBJ, 0, 0}, END};
static PyObject *w_amax_history_info(call *c)
{
    const ag_amax_history *h = get_history(c->raw[0]);
    if (h == NULL)
        return NULL;
    return Py_BuildValue("(dnn)", (double)ag_amax_history_max(h),
                         (Py_ssize_t)ag_amax_history_count(h),
                         (Py_ssize_t)ag_amax_history_len(h));
}

PyDoc_STRVAR(doc_amax_history_reset,
"amax_history_reset(history) -> None\n\nForget every value (the length stays).");
static const arg_spec sig_amax_history_reset[] = {{"history", A_OBJ, 0, 0}, END};
static PyObject *w_amax_history_reset(call *c)
{
    ag_amax_history *h = get_history(c->raw[0]);
    if (h == NULL)
        return NULL;
    ag_amax_history_reset(h);
    return none_ref();
}

PyDoc_STRVAR(doc_compute_scale,
"compute_scale(amax, format, margin=1.0, scale_min=1e-10, pow2=False) -> float\n\n"
"max(amax * margin / max_finite, scale_min) as a positive finite float32\n"
"(ag_compute_scale; pow2 rounds it up to a power of two). ValueError for a\n"
"NaN or negative amax, or a bad margin / scale_min.");
static const arg_spec sig_compute_scale[] = {
    {"amax", A_FLOAT, 0, 0}, {"format", A_FORMAT, 0, 0}, SCALE_OPTS, END};
static PyObject *w_compute_scale(call *c)
{
    const ag_scale_opts o = scale_opts(c, 2);
    float s = 0.0f;
    const ag_status st = ag_compute_scale(&s, c->v[0].f, c->v[1].fmt, &o);
    return st == AG_OK ? PyFloat_FromDouble((double)s) : scale_error(st, "compute_scale");
}

PyDoc_STRVAR(doc_amax_rows,
"amax_rows(amax, x, rows, cols) -> nan_count\n\n"
"amax[r] = amax of row r of the rows x cols matrix x (ag_amax_rows); amax:\n"
"writable float32 array of rows elements. Returns the NaN count of x.");
static const arg_spec sig_amax_rows[] = {
    {"amax", A_INOUT, 0, 0}, {"x", A_IN, 0, 0}, {"rows", A_SIZE, 0, 0},
    {"cols", A_SIZE, 0, 0}, END};
static PyObject *w_amax_rows(call *c)
{
    const Py_ssize_t rows = c->v[2].n, cols = c->v[3].n;
    if (need_matrix(c, 1, rows, cols) < 0 || need_count(c, 0, (size_t)rows) < 0)
        return NULL;
    size_t nans = 0;
    ag_status st;
    NOGIL(st = ag_amax_rows(c->a[0].ptr, c->a[1].ptr, (size_t)rows, (size_t)cols, &nans));
    return st == AG_OK ? PyLong_FromSize_t(nans) : fail_status(st, "amax_rows");
}

PyDoc_STRVAR(doc_compute_scale_rows,
"compute_scale_rows(scales, amax, format, margin=1.0, scale_min=1e-10,\n"
"                   pow2=False) -> None\n\n"
"scales[r] = compute_scale(amax[r], ...) (ag_compute_scale_rows); every amax\n"
"is checked first. scales may be amax itself.");
static const arg_spec sig_compute_scale_rows[] = {
    {"scales", A_INOUT, 0, 0}, {"amax", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0},
    SCALE_OPTS, END};
static PyObject *w_compute_scale_rows(call *c)
{
    if (need_count(c, 0, c->a[1].n) < 0)
        return NULL;
    const ag_scale_opts o = scale_opts(c, 3);
    ag_status st;
    NOGIL(st = ag_compute_scale_rows(c->a[0].ptr, c->a[1].ptr, c->a[1].n, c->v[2].fmt, &o));
    return st == AG_OK ? none_ref() : scale_error(st, "compute_scale_rows");
}

PyDoc_STRVAR(doc_quantize_rows,
"quantize_rows(y, x, rows, cols, scales, format, opts=None, stats=None, *,\n"
"              rounding=..., ...) -> None\n\n"
"Row r of y = quantize(row r of x, scales[r]) (ag_quantize_rows). y may be x.\n"
"ValueError when some scale is not positive and finite.");
static const arg_spec sig_quantize_rows[] = {
    {"y", A_INOUT, 0, 0}, {"x", A_IN, 0, 0}, {"rows", A_SIZE, 0, 0},
    {"cols", A_SIZE, 0, 0}, {"scales", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0},
    {"opts", A_OPTS, OPT, 0}, {"stats", A_STATS, OPT, 0}, QOPTS, END};
static PyObject *w_quantize_rows(call *c)
{
    const Py_ssize_t rows = c->v[2].n, cols = c->v[3].n;
    if (need_matrix(c, 1, rows, cols) < 0 || need_count(c, 0, c->a[1].n) < 0 ||
        need_count(c, 4, (size_t)rows) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_quantize_rows(c->a[0].ptr, c->a[1].ptr, (size_t)rows, (size_t)cols,
                                c->a[4].ptr, c->v[5].fmt, &c->q, &c->counts));
    return st == AG_OK ? none_ref() : fail_status(st, "quantize_rows");
}

PyDoc_STRVAR(doc_quantize_rows_backward,
"quantize_rows_backward(dx, dy, x, rows, cols, scales, format, opts=None, *,\n"
"                       ste='identity', threads=0, kernel='auto') -> None\n\n"
"Straight-through backward of quantize_rows, ACCUMULATING into dx\n"
"(ag_quantize_rows_backward; ste 'identity' or 'clipped'; x may be None for\n"
"the identity STE).");
static const arg_spec sig_quantize_rows_backward[] = {
    {"dx", A_INOUT, 0, 0}, {"dy", A_IN, 0, 0}, {"x", A_IN_NONE, 0, 0},
    {"rows", A_SIZE, 0, 0}, {"cols", A_SIZE, 0, 0}, {"scales", A_IN, 0, 0},
    {"format", A_FORMAT, 0, 0}, {"opts", A_OPTS_STE, OPT, 0}, BOPTS, END};
static PyObject *w_quantize_rows_backward(call *c)
{
    const Py_ssize_t rows = c->v[3].n, cols = c->v[4].n;
    const size_t n = c->a[0].n;
    if (need_matrix(c, 0, rows, cols) < 0 || need_count(c, 1, n) < 0 ||
        need_count(c, 2, n) < 0 || need_count(c, 5, (size_t)rows) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_quantize_rows_backward(c->a[0].ptr, c->a[1].ptr,
                                         c->a[2].obj ? c->a[2].ptr : NULL, (size_t)rows,
                                         (size_t)cols, c->a[5].ptr, c->v[6].fmt, &c->q));
    return st == AG_OK ? none_ref() : fail_status(st, "quantize_rows_backward");
}

/* --- MX blocks -------------------------------------------------------------- */

PyDoc_STRVAR(doc_mx_scale_count,
"mx_scale_count(rows, cols, block=32) -> int\n\n"
"rows * ceil(cols / block): the number of MX block scales. ValueError for\n"
"block 0 or negative sizes.");
static const arg_spec sig_mx_scale_count[] = {
    {"rows", A_SIZE, 0, 0}, {"cols", A_SIZE, 0, 0}, {"block", A_SIZE, OPT, 0}, END};
static PyObject *w_mx_scale_count(call *c)
{
    const size_t block = c->raw[2] ? (size_t)c->v[2].n : AG_MX_BLOCK;
    size_t n = 0;
    const ag_status st = ag_mx_scale_count(&n, (size_t)c->v[0].n, (size_t)c->v[1].n, block);
    return st == AG_OK ? PyLong_FromSize_t(n) : fail_status(st, "mx_scale_count");
}

PyDoc_STRVAR(doc_mx_scale_code,
"mx_scale_code(amax, format, mx_scale='floor') -> int\n\n"
"The E8M0 scale code of a block with this amax (ag_mx_scale_code_rule): 127 +\n"
"clamp(floor(log2 amax) - emax, -127, 127) under 'floor' (OCP MX), the smallest\n"
"code with amax / X <= max_finite under 'rceil'; 0 for amax 0, 255 for NaN or\n"
"inf.");
static const arg_spec sig_mx_scale_code[] = {
    {"amax", A_FLOAT, 0, 0}, {"format", A_FORMAT, 0, 0}, {"mx_scale", A_OBJ, OPT, 0}, END};
static PyObject *w_mx_scale_code(call *c)
{
    uint8_t code = 0;
    int rule = AG_MX_SCALE_FLOOR;
    if (c->raw[2] && get_option(c->raw[2], AG_OPTION_MX_SCALE, &rule) < 0)
        return NULL;
    const ag_status st = ag_mx_scale_code_rule(&code, c->v[0].f, c->v[1].fmt,
                                               (ag_mx_scale)rule);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "mx_scale_code: %s (amax must be >= 0)",
                     ag_status_string(st));
        return NULL;
    }
    return st == AG_OK ? PyLong_FromLong(code) : fail_status(st, "mx_scale_code");
}

/* The MX arrays of one call: array i is rows x cols with blocks of `block`;
 * array si (if >= 0) holds its scale codes. */
static int need_mx(const call *c, int i, Py_ssize_t rows, Py_ssize_t cols,
                   Py_ssize_t block, int si)
{
    if (need_matrix(c, i, rows, cols) < 0)
        return -1;
    if (block < 1) {
        PyErr_Format(PyExc_ValueError, "block must be >= 1, got %zd", block);
        return -1;
    }
    size_t nb = 0;
    const ag_status st = ag_mx_scale_count(&nb, (size_t)rows, (size_t)cols, (size_t)block);
    if (st != AG_OK) {
        fail_status(st, "MX shape");
        return -1;
    }
    return si >= 0 ? need_count(c, si, nb) : 0;
}

PyDoc_STRVAR(doc_mx_encode,
"mx_encode(codes, scales, x, rows, cols, block, format, opts=None, stats=None,\n"
"          *, rounding=..., ...) -> None\n\n"
"MX block encode (ag_mx_encode): codes (uint8, rows*cols) and E8M0 scale\n"
"codes (uint8, mx_scale_count(rows, cols, block)) of x.");
static const arg_spec sig_mx_encode[] = {
    {"codes", A_U8_INOUT, 0, 0}, {"scales", A_U8_INOUT, 0, 0}, {"x", A_IN, 0, 0},
    {"rows", A_SIZE, 0, 0}, {"cols", A_SIZE, 0, 0}, {"block", A_SIZE, 0, 0},
    {"format", A_FORMAT, 0, 0}, {"opts", A_OPTS, OPT, 0}, {"stats", A_STATS, OPT, 0},
    QOPTS, MXOPT, END};
static PyObject *w_mx_encode(call *c)
{
    const Py_ssize_t rows = c->v[3].n, cols = c->v[4].n, block = c->v[5].n;
    if (need_mx(c, 2, rows, cols, block, 1) < 0 || need_count(c, 0, c->a[2].n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_mx_encode(c->a[0].ptr, c->a[1].ptr, c->a[2].ptr, (size_t)rows,
                            (size_t)cols, (size_t)block, c->v[6].fmt, &c->q, &c->counts));
    return st == AG_OK ? none_ref() : fail_status(st, "mx_encode");
}

PyDoc_STRVAR(doc_mx_decode,
"mx_decode(y, codes, scales, rows, cols, block, format) -> None\n\n"
"y = to_real(codes) * the block's scale, NaN for a block with scale code 255\n"
"(ag_mx_decode). ValueError for a code outside the format.");
static const arg_spec sig_mx_decode[] = {
    {"y", A_INOUT, 0, 0}, {"codes", A_U8_IN, 0, 0}, {"scales", A_U8_IN, 0, 0},
    {"rows", A_SIZE, 0, 0}, {"cols", A_SIZE, 0, 0}, {"block", A_SIZE, 0, 0},
    {"format", A_FORMAT, 0, 0}, END};
static PyObject *w_mx_decode(call *c)
{
    const Py_ssize_t rows = c->v[3].n, cols = c->v[4].n, block = c->v[5].n;
    if (need_mx(c, 0, rows, cols, block, 2) < 0 || need_count(c, 1, c->a[0].n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_mx_decode(c->a[0].ptr, c->a[1].ptr, c->a[2].ptr, (size_t)rows,
                            (size_t)cols, (size_t)block, c->v[6].fmt));
    return st == AG_OK ? none_ref() : fail_status(st, "mx_decode");
}

PyDoc_STRVAR(doc_mx_quantize,
"mx_quantize(y, x, rows, cols, block, format, opts=None, stats=None, *,\n"
"            rounding=..., ...) -> None\n\n"
"y = mx_decode(mx_encode(x)) without the codes (ag_mx_quantize). y may be x.");
static const arg_spec sig_mx_quantize[] = {
    {"y", A_INOUT, 0, 0}, {"x", A_IN, 0, 0}, {"rows", A_SIZE, 0, 0},
    {"cols", A_SIZE, 0, 0}, {"block", A_SIZE, 0, 0}, {"format", A_FORMAT, 0, 0},
    {"opts", A_OPTS, OPT, 0}, {"stats", A_STATS, OPT, 0}, QOPTS, MXOPT, END};
static PyObject *w_mx_quantize(call *c)
{
    const Py_ssize_t rows = c->v[2].n, cols = c->v[3].n, block = c->v[4].n;
    if (need_mx(c, 1, rows, cols, block, -1) < 0 || need_count(c, 0, c->a[1].n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_mx_quantize(c->a[0].ptr, c->a[1].ptr, (size_t)rows, (size_t)cols,
                              (size_t)block, c->v[5].fmt, &c->q, &c->counts));
    return st == AG_OK ? none_ref() : fail_status(st, "mx_quantize");
}

PyDoc_STRVAR(doc_mx_quantize_backward,
"mx_quantize_backward(dx, dy, x, rows, cols, block, format, opts=None, *,\n"
"                     ste='identity', threads=0, kernel='auto') -> None\n\n"
"Straight-through backward of mx_quantize, ACCUMULATING into dx\n"
"(ag_mx_quantize_backward; ste 'identity' or 'clipped').");
static const arg_spec sig_mx_quantize_backward[] = {
    {"dx", A_INOUT, 0, 0}, {"dy", A_IN, 0, 0}, {"x", A_IN_NONE, 0, 0},
    {"rows", A_SIZE, 0, 0}, {"cols", A_SIZE, 0, 0}, {"block", A_SIZE, 0, 0},
    {"format", A_FORMAT, 0, 0}, {"opts", A_OPTS_STE, OPT, 0}, BOPTS, MXOPT, END};
static PyObject *w_mx_quantize_backward(call *c)
{
    const Py_ssize_t rows = c->v[3].n, cols = c->v[4].n, block = c->v[5].n;
    const size_t n = c->a[0].n;
    if (need_mx(c, 0, rows, cols, block, -1) < 0 || need_count(c, 1, n) < 0 ||
        need_count(c, 2, n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_mx_quantize_backward(c->a[0].ptr, c->a[1].ptr,
                                       c->a[2].obj ? c->a[2].ptr : NULL, (size_t)rows,
                                       (size_t)cols, (size_t)block, c->v[6].fmt, &c->q));
    return st == AG_OK ? none_ref() : fail_status(st, "mx_quantize_backward");
}

/* --- delayed scaling: ag_scaler ------------------------------------------ */
/* A scaler is a capsule owning an ag_scaler (altgrad.quantization.
 * DelayedScaler wraps it); the GIL serializes the calls on one object, as
 * the library requires. */

static void scaler_free(PyObject *cap)
{
    ag_scaler_free((ag_scaler *)PyCapsule_GetPointer(cap, SCALER_CAPSULE));
}

PyDoc_STRVAR(doc_scaler_create,
"scaler_create(format, history_len=16, margin=1.0, scale_min=1e-10, pow2=False,\n"
"              first='current', *, rounding=..., overflow=..., ste='identity',\n"
"              seed=0, stream=0, offset=0, threads=0, kernel='auto') -> scaler\n\n"
"A delayed scaler (ag_scaler_create): an amax window of history_len values,\n"
"the scale options, the quantize options and the empty-window policy\n"
"`first` ('current': the buffer's own amax, 'amax_one': amax 1,\n"
"'scale_one': scale 1). ValueError for a bad option or history_len < 1.");
static const arg_spec sig_scaler_create[] = {
    {"format", A_FORMAT, 0, 0}, {"history_len", A_OBJ, OPT, 0}, SCALE_OPTS,
    {"first", A_OBJ, OPT, 0}, QOPTS, {"ste", A_STE, OPT | KW, 0}, END};
static PyObject *w_scaler_create(call *c)
{
    ag_scaler_opts o = ag_scaler_opts_default();
    long long n = (long long)o.history_len;
    if (c->raw[1] && get_int(c->raw[1], "history_len", 1, PY_SSIZE_T_MAX / 8, &n) < 0)
        return NULL;
    o.history_len = (size_t)n;
    o.scale = scale_opts(c, 2);
    int first = (int)o.first;
    if (c->raw[5] && get_option(c->raw[5], AG_OPTION_SCALER_FIRST, &first) < 0)
        return NULL;
    o.first = (ag_scaler_first)first;
    o.quant = c->q;
    ag_scaler *sc = NULL;
    const ag_status st = ag_scaler_create(&sc, c->v[0].fmt, &o);
    if (st != AG_OK)
        return scale_error(st, "scaler_create");
    PyObject *cap = PyCapsule_New(sc, SCALER_CAPSULE, scaler_free);
    if (cap == NULL)
        ag_scaler_free(sc);
    return cap;
}

PyDoc_STRVAR(doc_scaler_quantize,
"scaler_quantize(scaler, x, out=None, stats=None) -> out\n\n"
"One step of delayed scaling (ag_scaler_quantize): out = quantize(x, the\n"
"scale from the window), then x's amax joins the window. out may be x.");
static const arg_spec sig_scaler_quantize[] = {
    {"scaler", A_SCALER, 0, 0}, {"x", A_IN, 0, 0}, {"out", A_OUT, OPT, 1},
    {"stats", A_STATS, OPT, 0}, END};
static PyObject *w_scaler_quantize(call *c)
{
    ag_status st;
    NOGIL(st = ag_scaler_quantize(c->v[0].p, c->a[2].ptr, c->a[1].ptr, c->a[1].n,
                                  &c->counts));
    return st == AG_OK ? ret_array(c, 2) : fail_status(st, "scaler_quantize");
}

PyDoc_STRVAR(doc_scaler_scale,
"scaler_scale(scaler, amax_now=0.0) -> float\n\n"
"The scale the next scaler_quantize would use for a buffer of amax amax_now\n"
"(read only while the window is empty under first='current').");
static const arg_spec sig_scaler_scale[] = {
    {"scaler", A_SCALER, 0, 0}, {"amax_now", A_FLOAT, OPT, 0}, END};
static PyObject *w_scaler_scale(call *c)
{
    float s = 0.0f;
    const ag_status st = ag_scaler_scale(c->v[0].p, c->v[1].f, &s);
    return st == AG_OK ? PyFloat_FromDouble((double)s) : scale_error(st, "scaler_scale");
}

PyDoc_STRVAR(doc_scaler_record,
"scaler_record(scaler, amax, n=0) -> None\n\n"
"Record an amax measured elsewhere (ag_scaler_record): step 3 of\n"
"scaler_quantize without quantizing; the stochastic offset advances by n.");
static const arg_spec sig_scaler_record[] = {
    {"scaler", A_SCALER, 0, 0}, {"amax", A_FLOAT, 0, 0}, {"n", A_SIZE, OPT, 0}, END};
static PyObject *w_scaler_record(call *c)
{
    return amax_status(ag_scaler_record(c->v[0].p, c->v[1].f, (size_t)c->v[2].n),
                       "scaler_record", c->raw[1]);
}

PyDoc_STRVAR(doc_scaler_reset,
"scaler_reset(scaler) -> None\n\n"
"Empty the window, zero the steps and the last scale, rewind the offset.");
static const arg_spec sig_scaler_reset[] = {{"scaler", A_SCALER, 0, 0}, END};
static PyObject *w_scaler_reset(call *c)
{
    ag_scaler_reset(c->v[0].p);
    return none_ref();
}

PyDoc_STRVAR(doc_scaler_info,
"scaler_info(scaler) -> dict\n\n"
"The scaler's state and settings: last_scale (0 before a step), window_max\n"
"(0 when empty), window_count, steps, offset, history_len, ste, format.");
static const arg_spec sig_scaler_info[] = {{"scaler", A_SCALER, 0, 0}, END};
static PyObject *w_scaler_info(call *c)
{
    const ag_scaler *sc = c->v[0].p;
    const ag_scaler_opts *o = ag_scaler_options(sc);
    PyObject *fmt = format_wrap((PyTypeObject *)c->st->format_type, ag_scaler_format(sc));
    PyObject *ste = fmt ? python_name(ag_option_name(AG_OPTION_STE, (int)o->quant.ste)) : NULL;
    PyObject *d = ste ? Py_BuildValue(
        "{sdsdsnsKsKsnsOsO}", "last_scale", (double)ag_scaler_last_scale(sc),
        "window_max", (double)ag_scaler_window_max(sc), "window_count",
        (Py_ssize_t)ag_scaler_window_count(sc), "steps",
        (unsigned long long)ag_scaler_steps(sc), "offset",
        (unsigned long long)ag_scaler_offset(sc), "history_len",
        (Py_ssize_t)o->history_len, "ste", ste, "format", fmt) : NULL;
    Py_XDECREF(fmt);
    Py_XDECREF(ste);
    return d;
}

PyDoc_STRVAR(doc_scaler_save,
"scaler_save(scaler) -> bytes\n\n"
"The whole state (ag_scaler_save): a versioned little-endian record that\n"
"scaler_load restores bit for bit into a scaler of the same settings.");
static const arg_spec sig_scaler_save[] = {{"scaler", A_SCALER, 0, 0}, END};
static PyObject *w_scaler_save(call *c)
{
    size_t n = 0;
    ag_status st = ag_scaler_state_size(c->v[0].p, &n);
    if (st != AG_OK)
        return fail_status(st, "scaler_save");
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (b == NULL)
        return NULL;
    st = ag_scaler_save(c->v[0].p, PyBytes_AS_STRING(b), n);
    if (st != AG_OK) {
        Py_DECREF(b);
        return fail_status(st, "scaler_save");
    }
    return b;
}

PyDoc_STRVAR(doc_scaler_load,
"scaler_load(scaler, state) -> None\n\n"
"Restore a state from scaler_save (bytes, or a uint8 array / tensor) into a\n"
"scaler of the same format and options (ag_scaler_load). ValueError for a\n"
"short, corrupt, other-version or mismatched record; the scaler is then\n"
"unchanged.");
static const arg_spec sig_scaler_load[] = {
    {"scaler", A_SCALER, 0, 0}, {"state", A_U8_IN, 0, 0}, END};
static PyObject *w_scaler_load(call *c)
{
    const ag_status st = ag_scaler_load(c->v[0].p, c->a[1].ptr, c->a[1].n);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "scaler_load: %s (a state from scaler_save "
                     "of a scaler with the same format and options, unchanged)",
                     ag_status_string(st));
        return NULL;
    }
    return st == AG_OK ? none_ref() : fail_status(st, "scaler_load");
}

/* --- diagnostics (issue 5) -------------------------------------------------- */

#define DIAG_TAIL {"scale", A_SCALE, OPT, 0}, {"opts", A_OPTS, OPT, 0}, QOPTS

PyDoc_STRVAR(doc_bit_stall,
"bit_stall(w, g, lr, format, scale=1.0, opts=None, *, rounding=..., ...)\n"
"    -> (stalled, considered)\n\n"
"Among the elements with |g| > 1e-10 (considered), those whose quantized\n"
"value does not move with the update w - lr*g (ag_bit_stall).");
static const arg_spec sig_bit_stall[] = {
    {"w", A_IN, 0, 0}, {"g", A_IN, 0, 0}, {"lr", A_FLOAT, 0, 0},
    {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_bit_stall(call *c)
{
    if (need_count(c, 1, c->a[0].n) < 0)
        return NULL;
    const float lr = c->v[2].f;
    uint64_t stalled = 0, considered = 0;
    ag_status st;
    NOGIL(st = ag_bit_stall(&stalled, &considered, c->a[0].ptr, c->a[1].ptr, c->a[0].n,
                            lr, c->v[3].fmt, c->v[4].f, &c->q));
    if (st == AG_ERR_ARG && !isfinite(lr)) {
        PyErr_Format(PyExc_ValueError, "bit_stall: %s (lr must be finite)",
                     ag_status_string(st));
        return NULL;
    }
    if (st != AG_OK)
        return fail_status(st, "bit_stall");
    return Py_BuildValue("(KK)", (unsigned long long)stalled,
                         (unsigned long long)considered);
}

PyDoc_STRVAR(doc_flips,
"flips(a, b, format, scale=1.0, opts=None, *, rounding=..., ...) -> int\n\n"
"Elements where a and b quantize to different grid points (ag_flips); a NaN\n"
"is never the same point as anything.");
static const arg_spec sig_flips[] = {
    {"a", A_IN, 0, 0}, {"b", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_flips(call *c)
{
    if (need_count(c, 1, c->a[0].n) < 0)
        return NULL;
    uint64_t n = 0;
    ag_status st;
    NOGIL(st = ag_flips(&n, c->a[0].ptr, c->a[1].ptr, c->a[0].n, c->v[2].fmt,
                        c->v[3].f, &c->q));
    return st == AG_OK ? PyLong_FromUnsignedLongLong(n) : fail_status(st, "flips");
}

PyDoc_STRVAR(doc_flips_codes,
"flips_codes(a, b, format) -> int\n\n"
"Flips between two code snapshots (uint8 or uint16, one dtype for both;\n"
"ag_flips_u8 / _u16). ValueError for a code outside the format.");
static const arg_spec sig_flips_codes[] = {
    {"a", A_CODES_IN, 0, 0}, {"b", A_CODES_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, END};
static PyObject *w_flips_codes(call *c)
{
    const arr *a = &c->a[0], *b = &c->a[1];
    if (a->kind != b->kind) {
        PyErr_Format(PyExc_TypeError, "b must have dtype %s, as a", kind_name(a->kind));
        return NULL;
    }
    if (need_count(c, 1, a->n) < 0)
        return NULL;
    uint64_t n = 0;
    ag_status st;
    if (a->kind == 'H')
        NOGIL(st = ag_flips_u16(&n, a->ptr, b->ptr, a->n, c->v[2].fmt));
    else
        NOGIL(st = ag_flips_u8(&n, a->ptr, b->ptr, a->n, c->v[2].fmt));
    return st == AG_OK ? PyLong_FromUnsignedLongLong(n) : fail_status(st, "flips_codes");
}

PyDoc_STRVAR(doc_update_flips,
"update_flips(before, after, g, format, scale=1.0, opts=None, *, rounding=...,\n"
"             ...) -> (updates, flips)\n\n"
"updates = elements with |g| > 1e-10, flips = how many of those moved to\n"
"another grid point between before and after (ag_update_flips).");
static const arg_spec sig_update_flips[] = {
    {"before", A_IN, 0, 0}, {"after", A_IN, 0, 0}, {"g", A_IN, 0, 0},
    {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_update_flips(call *c)
{
    const size_t n = c->a[0].n;
    if (need_count(c, 1, n) < 0 || need_count(c, 2, n) < 0)
        return NULL;
    uint64_t updates = 0, nflips = 0;
    ag_status st;
    NOGIL(st = ag_update_flips(&updates, &nflips, c->a[0].ptr, c->a[1].ptr, c->a[2].ptr,
                               n, c->v[3].fmt, c->v[4].f, &c->q));
    if (st != AG_OK)
        return fail_status(st, "update_flips");
    return Py_BuildValue("(KK)", (unsigned long long)updates,
                         (unsigned long long)nflips);
}

PyDoc_STRVAR(doc_stall_ratio,
"stall_ratio(flips, updates) -> float\n\n"
"1 - flips / updates, 0.0 when updates == 0 (ag_stall_ratio). ValueError\n"
"when flips > updates.");
static const arg_spec sig_stall_ratio[] = {
    {"flips", A_U64, 0, 0}, {"updates", A_U64, 0, 0}, END};
static PyObject *w_stall_ratio(call *c)
{
    const uint64_t nf = c->v[0].u, nu = c->v[1].u;
    double r = 0.0;
    const ag_status st = ag_stall_ratio(&r, nf, nu);
    if (st == AG_ERR_ARG) {
        PyErr_Format(PyExc_ValueError, "stall_ratio: %s (flips %llu > updates %llu)",
                     ag_status_string(st), (unsigned long long)nf,
                     (unsigned long long)nu);
        return NULL;
    }
    return st == AG_OK ? PyFloat_FromDouble(r) : fail_status(st, "stall_ratio");
}

PyDoc_STRVAR(doc_ulp_distance,
"ulp_distance(d, a, b, format, scale=1.0, opts=None, *, rounding=..., ...) -> None\n\n"
"d[i] = pos(b[i]) - pos(a[i]) on the format's ordered grid, in codes\n"
"(ag_ulp_distance); -2**31 (AG_ULP_NAN) where a NaN is involved. d: writable\n"
"int32 array of the same element count.");
static const arg_spec sig_ulp_distance[] = {
    {"d", A_I32_INOUT, 0, 0}, {"a", A_IN, 0, 0}, {"b", A_IN, 0, 0},
    {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_ulp_distance(call *c)
{
    const size_t n = c->a[1].n;
    if (need_count(c, 2, n) < 0 || need_count(c, 0, n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_ulp_distance(c->a[0].ptr, c->a[1].ptr, c->a[2].ptr, n, c->v[3].fmt,
                               c->v[4].f, &c->q));
    return st == AG_OK ? none_ref() : fail_status(st, "ulp_distance");
}

PyDoc_STRVAR(doc_ulp_distance_stats,
"ulp_distance_stats(a, b, format, scale=1.0, opts=None, *, rounding=..., ...)\n"
"    -> (sum_abs, max_abs, nan_pairs)\n\n"
"The ULP distances summed (ag_ulp_distance_stats): sum and max of |d| over\n"
"the pairs without NaN, and the number of pairs with a NaN.");
static const arg_spec sig_ulp_distance_stats[] = {
    {"a", A_IN, 0, 0}, {"b", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_ulp_distance_stats(call *c)
{
    const size_t n = c->a[0].n;
    if (need_count(c, 1, n) < 0)
        return NULL;
    uint64_t sum = 0, nan_pairs = 0;
    uint32_t mx = 0;
    ag_status st;
    NOGIL(st = ag_ulp_distance_stats(&sum, &mx, &nan_pairs, c->a[0].ptr, c->a[1].ptr, n,
                                     c->v[2].fmt, c->v[3].f, &c->q));
    if (st != AG_OK)
        return fail_status(st, "ulp_distance_stats");
    return Py_BuildValue("(KkK)", (unsigned long long)sum, (unsigned long)mx,
                         (unsigned long long)nan_pairs);
}

PyDoc_STRVAR(doc_stiffness,
"stiffness(s, w, format, scale=1.0) -> None\n\n"
"s[i] = the format's grid spacing at w[i] (ag_stiffness): 2^(floor(log2|v|)\n"
"- M) * scale with v = w / scale (subnormal step below min_normal; the fixed\n"
"step for E = 0); 0 for +-0, NaN for NaN, inf for +-inf. s may be w.");
static const arg_spec sig_stiffness[] = {
    {"s", A_INOUT, 0, 0}, {"w", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0},
    {"scale", A_SCALE, OPT, 0}, END};
static PyObject *w_stiffness(call *c)
{
    if (need_count(c, 0, c->a[1].n) < 0)
        return NULL;
    ag_status st;
    NOGIL(st = ag_stiffness(c->a[0].ptr, c->a[1].ptr, c->a[1].n, c->v[2].fmt, c->v[3].f));
    return st == AG_OK ? none_ref() : fail_status(st, "stiffness");
}

PyDoc_STRVAR(doc_exp_hist,
"exp_hist(x, format, scale=1.0, opts=None, *, rounding=..., ...) -> tuple[int, ...]\n\n"
"Exponent occupancy of x on the format (ag_exp_hist): bins nan, overflow,\n"
"underflow, zero, subnormal, then one per exponent field 0 .. 2^E - 1.");
static const arg_spec sig_exp_hist[] = {
    {"x", A_IN, 0, 0}, {"format", A_FORMAT, 0, 0}, DIAG_TAIL, END};
static PyObject *w_exp_hist(call *c)
{
    uint64_t counts[AG_HIST_FIELD + 256];
    const size_t len = ag_exp_hist_len(c->v[1].fmt);
    if (len == 0 || len > sizeof counts / sizeof counts[0])
        return fail_status(AG_ERR_FORMAT, "exp_hist");
    memset(counts, 0, sizeof counts);
    ag_status st;
    NOGIL(st = ag_exp_hist(counts, len, c->a[0].ptr, c->a[0].n, c->v[1].fmt, c->v[2].f,
                           &c->q));
    if (st != AG_OK)
        return fail_status(st, "exp_hist");
    PyObject *t = PyTuple_New((Py_ssize_t)len);
    for (size_t i = 0; t != NULL && i < len; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(counts[i]);
        if (v == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

/* --- option names ------------------------------------------------------------ */

PyDoc_STRVAR(doc_option,
"option(kind, name) -> str\n\n"
"The canonical name of option `name` of `kind` ('rounding', 'overflow', 'ste',\n"
"'kernel', 'specials', 'scaler_first', 'mx_scale'), in Python spelling ('_' for '-'), by\n"
"the library's ag_option_parse: '-' and '_' alike, case ignored, aliases.\n"
"ValueError listing the valid names for an unknown one.");
static const arg_spec sig_option[] = {{"kind", A_STR, 0, 0}, {"name", A_OBJ, 0, 0}, END};
static PyObject *w_option(call *c)
{
    for (int k = 0; ag_option_count((ag_option_kind)k) > 0; k++) {
        if (!same_name(c->v[0].s, ag_option_kind_name((ag_option_kind)k)))
            continue;
        int v = 0;
        if (get_option(c->raw[1], (ag_option_kind)k, &v) < 0)
            return NULL;
        return python_name(ag_option_name((ag_option_kind)k, v));
    }
    PyErr_Format(PyExc_ValueError, "unknown option kind '%s'", c->v[0].s);
    return NULL;
}

PyDoc_STRVAR(doc_option_names,
"option_names(kind) -> list[str]\n\n"
"Every canonical name of option `kind` in Python spelling (for 'kernel', the\n"
"paths available here).");
static const arg_spec sig_option_names[] = {{"kind", A_STR, 0, 0}, END};
static PyObject *w_option_names(call *c)
{
    for (int k = 0; ag_option_count((ag_option_kind)k) > 0; k++)
        if (same_name(c->v[0].s, ag_option_kind_name((ag_option_kind)k)))
            return option_names((ag_option_kind)k);
    PyErr_Format(PyExc_ValueError, "unknown option kind '%s'", c->v[0].s);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The table of functions and the module                                    */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Optimizers                                                               */
/* ------------------------------------------------------------------------ */

PyDoc_STRVAR(doc_adamw_step,
"adamw_step(w, m, v, g, step, lr, beta1, beta2, eps, weight_decay,\n"
"           precondition=0, format=None, scale=1.0, mantissa_bits=2,\n"
"           max_stiffness=1e6, movement=None, *, threads=0)\n"
"    -> (updates, flips, stalls)\n\n"
"One fused AdamW step t = step >= 1 in place on w, m, v (ag_adamw_step):\n"
"decoupled weight decay, bias correction, and the stiffness preconditioning\n"
"precondition 0 none, 1 grad (AltGrad: g * S before the moments), 2 update\n"
"(the normalised update * S). S is the grid step of format (times scale) at\n"
"w, or AltGrad's 2^(floor(log2|w|) - mantissa_bits) when format is None;\n"
"at most max_stiffness. movement (None or float32 like w) accumulates each\n"
"weight's signed move in grid steps (float32 ULPs, AltGrad's bit_position,\n"
"without a format). Returns this step's counts on the grid: updates\n"
"(|g| > 1e-10), flips (moved to another grid point), stalls (updates that\n"
"did not move).");
static const arg_spec sig_adamw_step[] = {
    {"w", A_INOUT, 0, 0},          {"m", A_INOUT, 0, 0},
    {"v", A_INOUT, 0, 0},          {"g", A_IN, 0, 0},
    {"step", A_U64, 0, 0},         {"lr", A_DOUBLE, 0, 0},
    {"beta1", A_DOUBLE, 0, 0},     {"beta2", A_DOUBLE, 0, 0},
    {"eps", A_DOUBLE, 0, 0},       {"weight_decay", A_DOUBLE, 0, 0},
    {"precondition", A_INT, OPT, 0}, {"format", A_FORMAT_NONE, OPT, 0},
    {"scale", A_SCALE, OPT, 0},    {"mantissa_bits", A_INT, OPT, 0},
    {"max_stiffness", A_DOUBLE, OPT, 0}, {"movement", A_INOUT_NONE, OPT, 0},
    {"threads", A_THREADS, OPT | KW, 0}, END};
static PyObject *w_adamw_step(call *c)
{
    const size_t n = c->a[0].n;
    if (need_count(c, 1, n) < 0 || need_count(c, 2, n) < 0 ||
        need_count(c, 3, n) < 0 || need_count(c, 15, n) < 0)
        return NULL;
    ag_adamw_opts o = ag_adamw_opts_default();
    o.lr = c->v[5].d;
    o.beta1 = c->v[6].d;
    o.beta2 = c->v[7].d;
    o.eps = c->v[8].d;
    o.weight_decay = c->v[9].d;
    if (c->raw[10] != NULL) {
        if (c->v[10].i < 0 || c->v[10].i > AG_PRECONDITION_UPDATE) {
            PyErr_Format(PyExc_ValueError, "adamw_step(): precondition must be "
                         "0 (none), 1 (grad) or 2 (update), not %lld", c->v[10].i);
            return NULL;
        }
        o.precondition = (ag_precondition)c->v[10].i;
    }
    o.format = c->v[11].fmt;
    o.scale = c->v[12].f;
    if (c->raw[13] != NULL) {
        if (c->v[13].i < 0 || c->v[13].i > 23) {
            PyErr_Format(PyExc_ValueError, "adamw_step(): mantissa_bits must be "
                         "in 0 .. 23, not %lld", c->v[13].i);
            return NULL;
        }
        o.mantissa_bits = (int)c->v[13].i;
    }
    if (c->raw[14] != NULL)
        o.max_stiffness = c->v[14].d > 3.4028234663852886e38 ? INFINITY
                                                             : (float)c->v[14].d;
    o.threads = c->q.threads;
    ag_optim_counts k = {0, 0, 0};
    ag_status st;
    NOGIL(st = ag_adamw_step(c->a[0].ptr, c->a[1].ptr, c->a[2].ptr, c->a[3].ptr, n,
                             c->v[4].u, &o, &k, c->a[15].obj ? c->a[15].ptr : NULL));
    if (st != AG_OK)
        return fail_status(st, "adamw_step");
    return Py_BuildValue("(KKK)", (unsigned long long)k.updates,
                         (unsigned long long)k.flips, (unsigned long long)k.stalls);
}

PyDoc_STRVAR(doc_grid_step,
"grid_step(w, vel, g, format, scale=1.0, rate=6.0, momentum=0.9,\n"
"          weight_decay=1e-4, rung_clip=10, *, seed=0, stream=0, offset=0,\n"
"          threads=0) -> (updates, flips)\n\n"
"One step of AltGrad's grid optimizer in place on w and vel (ag_grid_step):\n"
"vel = momentum * vel + g + weight_decay * w, then each weight moves\n"
"down by k rungs of format's grid (times scale) from its nearest grid value,\n"
"k = clamp(rate * vel, +-rung_clip) rounded stochastically from the stream\n"
"(seed, stream, offset + i). Returns updates (|g| > 1e-10) and flips\n"
"(weights whose value changed).");
static const arg_spec sig_grid_step[] = {
    {"w", A_INOUT, 0, 0},       {"vel", A_INOUT, 0, 0},
    {"g", A_IN, 0, 0},          {"format", A_FORMAT, 0, 0},
    {"scale", A_SCALE, OPT, 0}, {"rate", A_DOUBLE, OPT, 0},
    {"momentum", A_DOUBLE, OPT, 0}, {"weight_decay", A_DOUBLE, OPT, 0},
    {"rung_clip", A_INT, OPT, 0}, {"seed", A_SEED, OPT | KW, 0},
    {"stream", A_STREAM, OPT | KW, 0}, {"offset", A_OFFSET, OPT | KW, 0},
    {"threads", A_THREADS, OPT | KW, 0}, END};
static PyObject *w_grid_step(call *c)
{
    const size_t n = c->a[0].n;
    if (need_count(c, 1, n) < 0 || need_count(c, 2, n) < 0)
        return NULL;
    ag_grid_opts o = ag_grid_opts_default();
    if (c->raw[5] != NULL)
        o.rate = c->v[5].d;
    if (c->raw[6] != NULL)
        o.momentum = c->v[6].d;
    if (c->raw[7] != NULL)
        o.weight_decay = c->v[7].d;
    if (c->raw[8] != NULL) {
        if (c->v[8].i < 0 || c->v[8].i > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "grid_step(): rung_clip must be in "
                         "0 .. 2**31-1, not %lld", c->v[8].i);
            return NULL;
        }
        o.rung_clip = (int)c->v[8].i;
    }
    o.seed = c->q.seed;
    o.stream = c->q.stream;
    o.offset = c->q.offset;
    o.threads = c->q.threads;
    uint64_t updates = 0, nflips = 0;
    ag_status st;
    NOGIL(st = ag_grid_step(c->a[0].ptr, c->a[1].ptr, c->a[2].ptr, n, c->v[3].fmt,
                            c->v[4].f, &o, &updates, &nflips));
    if (st != AG_OK)
        return fail_status(st, "grid_step");
    return Py_BuildValue("(KK)", (unsigned long long)updates,
                         (unsigned long long)nflips);
}

/* Every module function: X(name) needs sig_name, w_name and doc_name. */
#define FUNCTIONS(X)                                                         \
    X(version) X(format_names) X(kernels) X(format_init) X(option) X(option_names)                     \
    X(quantize) X(quantize_backward) X(dequantize) X(dequantize_backward)    \
    X(encode) X(decode)                                                      \
    X(amax) X(amax_history_create) X(amax_history_push) X(amax_history_info) \
    X(amax_history_reset) X(compute_scale) X(amax_rows) X(compute_scale_rows) \
    X(quantize_rows) X(quantize_rows_backward)                               \
    X(scaler_create) X(scaler_quantize) X(scaler_scale) X(scaler_record)     \
    X(scaler_reset) X(scaler_info) X(scaler_save) X(scaler_load)             \
    X(mx_scale_count) X(mx_scale_code) X(mx_encode) X(mx_decode)             \
    X(mx_quantize) X(mx_quantize_backward)                                   \
    X(bit_stall) X(flips) X(flips_codes) X(update_flips) X(stall_ratio)      \
    X(ulp_distance) X(ulp_distance_stats) X(stiffness) X(exp_hist)          \
    X(adamw_step) X(grid_step)

/* One vectorcall entry point per row, each handing its row to dispatch(). */
#define X_ENTRY(name)                                                        \
    static PyObject *py_##name(PyObject *module, PyObject *const *args,      \
                               Py_ssize_t nargs, PyObject *kwnames)          \
    {                                                                        \
        return dispatch(module, #name, sig_##name, w_##name, args, nargs,    \
                        kwnames);                                            \
    }
FUNCTIONS(X_ENTRY)
#undef X_ENTRY

#define X_DEF(name)                                                          \
    {#name, (PyCFunction)(void (*)(void))py_##name, METH_FASTCALL | METH_KEYWORDS, \
     doc_##name},
static PyMethodDef module_methods[] = {FUNCTIONS(X_DEF){NULL, NULL, 0, NULL}};
#undef X_DEF

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
    for (int i = 0; i < N_COUNT; i++)
        if ((s->name[i] = PyUnicode_InternFromString(tensor_names[i])) == NULL)
            return -1;
    PyObject *list = option_names(AG_OPTION_ROUNDING);
    PyObject *modes = list ? PyList_AsTuple(list) : NULL;
    Py_XDECREF(list);
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
    Py_VISIT(s->tensor_type);
    Py_VISIT(s->t_float32);
    Py_VISIT(s->t_uint8);
    Py_VISIT(s->t_int16);
    Py_VISIT(s->t_int32);
    Py_VISIT(s->t_strided);
    Py_VISIT(s->t_empty);
    Py_VISIT(s->t_empty_like);
    Py_VISIT(s->t_grad_enabled);
    for (int i = 0; i < N_COUNT; i++)
        Py_VISIT(s->name[i]);
    return 0;
}

static int module_clear(PyObject *module)
{
    module_state *s = get_state(module);
    Py_CLEAR(s->format_type);
    Py_CLEAR(s->np_empty);
    Py_CLEAR(s->tensor_type);
    Py_CLEAR(s->t_float32);
    Py_CLEAR(s->t_uint8);
    Py_CLEAR(s->t_int16);
    Py_CLEAR(s->t_int32);
    Py_CLEAR(s->t_strided);
    Py_CLEAR(s->t_empty);
    Py_CLEAR(s->t_empty_like);
    Py_CLEAR(s->t_grad_enabled);
    for (int i = 0; i < N_COUNT; i++)
        Py_CLEAR(s->name[i]);
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
"dequantize, their straight-through backward passes, encode and decode,\n"
"scaling and diagnostics, on C-contiguous float32 buffers and CPU tensors\n"
"without copies. Use the altgrad package for the PyTorch API.");

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
