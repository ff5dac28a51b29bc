/*
 * aio_pycall.c -- the direct calls from Python: ctx.bh_schedule(bh) and
 * ctx.notify() as built-in functions bound to one context, so that a Python
 * loop scheduling bottom halves pays for one C call and the protocol, not for
 * a Python-level method around a cffi call.
 *
 * A cffi call converts its arguments, releases and retakes the GIL and saves
 * errno (~55 ns here); a method in Python around it adds a frame and an
 * addition (~60 ns more).  A built-in METH_O function bound to its context
 * does neither: it converts the id with PyLong_AsLongAndOverflow, calls the
 * strategy module's own aio_bh_schedule (whose address cffi gives us, so the
 * strategy's generated schedule hook is whatever that module compiled) with
 * the GIL held -- the call never blocks: a notifier write on a non-blocking
 * eventfd at most -- and returns None.  The bounds check stays in C
 * (aio_bh_get); only when the C call fails is the context's Python error
 * mapper called with the code and the id, so a bad id raises exactly what it
 * raised before (BadBottomHalf naming the id, ContextClosed, OwnerGone...).
 * An int that does not fit a C int is passed as -1 (out of range for the C
 * check) and reported with its own value.
 *
 * A CPython extension (not cffi) because only the C API can build a callable
 * bound to data; it is strategy-independent and built once, at install
 * (setup.py) or, for a source tree, into the build cache.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>

typedef int (*aio_call_id_fn)(void *ctx, int id);
typedef int (*aio_call_fn)(void *ctx);

/* The data a bound call carries (its PyCFunction's m_self). */
typedef struct {
    PyObject_HEAD
    void *fn;             /* aio_bh_schedule / aio_notify of the strategy module */
    void *ctx;            /* the AioContext, kept alive by `keep` */
    PyObject *on_error;   /* on_error(code[, id]) raises the mapped error */
    PyObject *keep;       /* the cffi cdata owning ctx */
    PyObject *name;       /* the strings def's name and doc point into */
    PyObject *doc;
    PyMethodDef def;
} AioBoundCall;

static int bound_traverse(AioBoundCall *b, visitproc visit, void *arg)
{
    Py_VISIT(b->on_error);
    Py_VISIT(b->keep);
    return 0;
}

static int bound_clear(AioBoundCall *b)
{
    Py_CLEAR(b->on_error);
    Py_CLEAR(b->keep);
    return 0;
}

static void bound_dealloc(AioBoundCall *b)
{
    PyObject_GC_UnTrack(b);
    bound_clear(b);
    Py_CLEAR(b->name);
    Py_CLEAR(b->doc);
    PyObject_GC_Del(b);
}

static PyTypeObject AioBoundCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aiocore._pycall.BoundCall",
    .tp_doc = "what a direct call of aiocore._pycall.bind carries",
    .tp_basicsize = sizeof(AioBoundCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)bound_traverse,
    .tp_clear = (inquiry)bound_clear,
    .tp_dealloc = (destructor)bound_dealloc,
};

/* The slow path: let the context map the code to its exception. */
static PyObject *bound_failed(AioBoundCall *b, int r, PyObject *id)
{
    PyObject *res = id ? PyObject_CallFunction(b->on_error, "iO", r, id)
                       : PyObject_CallFunction(b->on_error, "i", r);
    if (!res) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

static PyObject *bound_call_id(PyObject *self, PyObject *id)
{
    AioBoundCall *b = (AioBoundCall *)self;
    int overflow;
    long v = PyLong_AsLongAndOverflow(id, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return NULL;      /* not an integer: TypeError */
    }
    int c_id = (overflow || v < INT_MIN || v > INT_MAX) ? -1 : (int)v;
    int r = ((aio_call_id_fn)b->fn)(b->ctx, c_id);
    if (r >= 0) {
        Py_RETURN_NONE;
    }
    return bound_failed(b, r, id);
}

static PyObject *bound_call(PyObject *self, PyObject *unused)
{
    AioBoundCall *b = (AioBoundCall *)self;
    (void)unused;
    int r = ((aio_call_fn)b->fn)(b->ctx);
    if (r >= 0) {
        Py_RETURN_NONE;
    }
    return bound_failed(b, r, NULL);
}

static PyObject *pycall_bind(PyObject *mod, PyObject *args)
{
    unsigned long long fn, ctx;
    int takes_id;
    PyObject *on_error, *keep, *name, *doc;
    (void)mod;
    if (!PyArg_ParseTuple(args, "pKKOOUU:bind", &takes_id, &fn, &ctx, &on_error, &keep,
                          &name, &doc)) {
        return NULL;
    }
    if (!fn || !ctx) {
        PyErr_SetString(PyExc_ValueError, "bind: NULL function or context");
        return NULL;
    }
    if (!PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "bind: on_error must be callable");
        return NULL;
    }
    const char *cname = PyUnicode_AsUTF8(name), *cdoc = PyUnicode_AsUTF8(doc);
    if (!cname || !cdoc) {
        return NULL;
    }
    AioBoundCall *b = PyObject_GC_New(AioBoundCall, &AioBoundCallType);
    if (!b) {
        return NULL;
    }
    b->fn = (void *)(uintptr_t)fn;
    b->ctx = (void *)(uintptr_t)ctx;
    Py_INCREF(on_error);
    b->on_error = on_error;
    Py_INCREF(keep);
    b->keep = keep;
    Py_INCREF(name);
    b->name = name;
    Py_INCREF(doc);
    b->doc = doc;
    b->def.ml_name = cname;
    b->def.ml_doc = cdoc;
    b->def.ml_meth = takes_id ? bound_call_id : bound_call;
    b->def.ml_flags = takes_id ? METH_O : METH_NOARGS;
    PyObject_GC_Track(b);
    PyObject *f = PyCFunction_NewEx(&b->def, (PyObject *)b, NULL);
    Py_DECREF(b);
    return f;
}

static PyObject *pycall_empty(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    Py_RETURN_NONE;
}

static PyMethodDef pycall_methods[] = {
    {"bind", pycall_bind, METH_VARARGS,
     "bind(takes_id, fn, ctx, on_error, keep, name, doc) -> a built-in calling\n"
     "int fn(ctx, id) (takes_id) or int fn(ctx); on a negative result it calls\n"
     "on_error(code, id) / on_error(code), which raises."},
    {"empty", pycall_empty, METH_NOARGS, "does nothing (the benchmark's floor of a bound call)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pycall_module = {
    PyModuleDef_HEAD_INIT, "_pycall",
    "Direct calls of a context's bh_schedule and notify (aiocore/_csrc/aio_pycall.c).",
    -1, pycall_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pycall(void)
{
    if (PyType_Ready(&AioBoundCallType) < 0) {
        return NULL;
    }
    return PyModule_Create(&pycall_module);
}
