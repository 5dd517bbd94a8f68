/*
 * collector.probe._ring: walk the mapped BPF ring buffer's committed records, in C.
 *
 * Why: collector/probe/ringbuf.py's walk costs a few hundred ns of Python per
 * record (a header unpack, the bit tests, the slice); in an exec storm that
 * was 5-9 % of the running samples (bench/storm.py --profile; measured with two
 * other changes in bench/results/ring_inline_gc_ab.json).
 * This is the same walk: the layout and the ordering rules are the ones that
 * module's docstring sets out, and its Python walk (walk_py) stays the
 * reference (tests/unit/test_ring_walk.py) and the fallback.
 *
 * walk(data, page, mask, cons, record_max, out) -> (cons, busy, bad_length)
 *   data: the mapping from the producer page on (producer position at 0, the
 *   data pages from `page`); appends each committed, not discarded record to
 *   `out` as bytes, from `cons` up to the producer position read on entry;
 *   stops early at a busy record (busy = True) or at a header whose length is
 *   more than record_max (bad_length = that length, cons = its position).
 *   Storing the new consumer position is the caller's (ConsumerPosition).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define BUSY_BIT (1u << 31)
#define DISCARD_BIT (1u << 30)
#define HEADER_SIZE 8 /* struct bpf_ringbuf_hdr: u32 len, u32 pg_off */

static PyObject *walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "walk(data, page, mask, cons, record_max, out: list)");
        return NULL;
    }
    Py_ssize_t page = PyLong_AsSsize_t(args[1]);
    unsigned long long mask = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long cons = PyLong_AsUnsignedLongLong(args[3]);
    Py_ssize_t record_max = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = view.buf;
    PyObject *out = args[5];
    int busy = 0;
    unsigned long long bad = 0;
    if (view.len < 8 || page < 8 || page > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the mapping is smaller than its producer page");
        return NULL;
    }
    /* the kernel stores the producer position with release semantics after
       the record's header: acquire here, as libbpf's ringbuf.c does */
    unsigned long long prod = __atomic_load_n((const uint64_t *)data, __ATOMIC_ACQUIRE);
    while (cons < prod) {
        Py_ssize_t at = page + (Py_ssize_t)(cons & mask);
        if (at + HEADER_SIZE > view.len) {
            bad = (unsigned long long)-1;
            break;
        }
        uint32_t hdr = __atomic_load_n((const uint32_t *)(data + at), __ATOMIC_ACQUIRE);
        if (hdr & BUSY_BIT) { /* reserved, not yet submitted: the next poll takes it */
            busy = 1;
            break;
        }
        Py_ssize_t length = hdr & ~(BUSY_BIT | DISCARD_BIT);
        if (length > record_max || at + HEADER_SIZE + length > view.len) {
            bad = (unsigned long long)length;
            break;
        }
        if (!(hdr & DISCARD_BIT)) {
            PyObject *rec = PyBytes_FromStringAndSize(data + at + HEADER_SIZE, length);
            if (!rec || PyList_Append(out, rec) < 0) {
                Py_XDECREF(rec);
                PyBuffer_Release(&view);
                return NULL;
            }
            Py_DECREF(rec);
        }
        cons += (unsigned long long)((length + HEADER_SIZE + 7) & ~7);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(KOK)", cons, busy ? Py_True : Py_False, bad);
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(data, page, mask, cons, record_max, out) -> (cons, busy, bad_length): see the C "
     "source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.probe._ring",
    "The mapped ring buffer's walk in C; collector.probe.ringbuf.walk_py is its reference.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__ring(void) { return PyModule_Create(&module); }
