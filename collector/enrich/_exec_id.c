/*
 * collector.enrich._exec_id: make_exec_id in C.
 *
 * Why: one exec_id per exec, and collector/enrich/exec_id.py's (an f-string,
 * its UTF-8, base64, translate, rstrip, decode) is about a tenth of the
 * process cache's time (cProfile of the cache on synthetic records; in the
 * storm with the encoder's changes: bench/results/exec_id_encoder_ab.json).
 * The same text: base64url, no padding, of "node:ktime_ns:pid" in UTF-8.
 * exec_id.make_exec_id_py stays the reference (tests/unit/test_exec_id_native.py)
 * and does what this does not take: a node that is not a str encodable as
 * UTF-8, numbers that are not ints within 64 bits.
 *
 * ExecIds(fallback)(node, ktime_ns, pid) -> str
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback; /* exec_id.make_exec_id_py */
} ExecIds;

/* decimal text of an int within 64 bits at o; returns the end, NULL if not */
static char *put_number(char *o, PyObject *v) {
    if (!PyLong_CheckExact(v))
        return NULL;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if ((x == -1 && PyErr_Occurred()) || overflow) {
        PyErr_Clear();
        return NULL;
    }
    char text[24], *end = text + sizeof(text), *p = end;
    unsigned long long m = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (x < 0)
        *--p = '-';
    memcpy(o, p, end - p);
    return o + (end - p);
}

static PyObject *ExecIds_vcall(PyObject *obj, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    ExecIds *self = (ExecIds *)obj;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || kwnames)
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    Py_ssize_t node_len = 0;
    const char *node = PyUnicode_CheckExact(args[0])
                           ? PyUnicode_AsUTF8AndSize(args[0], &node_len) : NULL;
    if (!node || node_len > 256) {
        PyErr_Clear();
        return PyObject_Vectorcall(self->fallback, args, nargsf, NULL);
    }
    char raw[256 + 2 + 2 * 21], *o = raw; /* node ':' ktime ':' pid */
    memcpy(o, node, node_len);
    o += node_len;
    *o++ = ':';
    if (!(o = put_number(o, args[1])))
        return PyObject_Vectorcall(self->fallback, args, nargsf, NULL);
    *o++ = ':';
    if (!(o = put_number(o, args[2])))
        return PyObject_Vectorcall(self->fallback, args, nargsf, NULL);
    Py_ssize_t n = o - raw;
    char text[(sizeof(raw) + 2) / 3 * 4], *t = text;
    const unsigned char *u = (const unsigned char *)raw;
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)u[i] << 16 | (unsigned)u[i + 1] << 8 | u[i + 2];
        *t++ = B64URL[v >> 18];
        *t++ = B64URL[(v >> 12) & 63];
        *t++ = B64URL[(v >> 6) & 63];
        *t++ = B64URL[v & 63];
    }
    if (n - i == 1) { /* no padding: the "=" are stripped, as exec_id.py does */
        unsigned v = (unsigned)u[i] << 16;
        *t++ = B64URL[v >> 18];
        *t++ = B64URL[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)u[i] << 16 | (unsigned)u[i + 1] << 8;
        *t++ = B64URL[v >> 18];
        *t++ = B64URL[(v >> 12) & 63];
        *t++ = B64URL[(v >> 6) & 63];
    }
    return PyUnicode_DecodeASCII(text, t - text, NULL);
}

static PyObject *ExecIds_call(PyObject *obj, PyObject *args, PyObject *kw) {
    return PyVectorcall_Call(obj, args, kw);
}

static int ExecIds_init(ExecIds *self, PyObject *args, PyObject *kwds) {
    PyObject *fallback;
    static char *kwlist[] = {"fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:ExecIds", kwlist, &fallback))
        return -1;
    Py_XSETREF(self->fallback, Py_NewRef(fallback));
    self->vectorcall = ExecIds_vcall;
    return 0;
}

static void ExecIds_dealloc(ExecIds *self) {
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ExecIdsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector.enrich._exec_id.ExecIds",
    .tp_basicsize = sizeof(ExecIds),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(ExecIds, vectorcall),
    .tp_doc = "ExecIds(fallback)(node, ktime_ns, pid) -> exec_id: see the module's C source.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ExecIds_init,
    .tp_dealloc = (destructor)ExecIds_dealloc,
    .tp_call = ExecIds_call,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.enrich._exec_id",
    "make_exec_id in C; collector.enrich.exec_id.make_exec_id_py is its reference.", -1, NULL,
};

PyMODINIT_FUNC PyInit__exec_id(void) {
    if (PyType_Ready(&ExecIdsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "ExecIds", (PyObject *)&ExecIdsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
