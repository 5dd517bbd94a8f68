/*
 * collector.pipeline._reader: the reader's loop over one poll's records, in C.
 *
 * Why: with decode and the process cache's regular paths in C, what was left
 * of Reader.handle per record was the interpreter's own work: the loop, the
 * kind tests, the counters and the appends (bench/results/reader_native_ab.json
 * for what it saves in an exec storm). This does the same calls in the same
 * order: decode each raw record; an ExecRecord to on_exec and an ExitRecord to
 * on_exit, whose events are kept in order; a ForkRecord to on_fork; a record
 * that decode refuses (it raises decode_error) to on_decode_error, which logs
 * it, and the loop goes on. It returns the events and the counts of execs,
 * exits, forks and decode errors, for the caller's stats.
 *
 * collector.pipeline.reader's Reader.handle_py stays the reference and the
 * fallback: tests/unit/test_reader_native.py holds the two to the same events
 * and counts on the same records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* the decode_error being raised, handed to on_decode_error; -1: another error */
static int refused(PyObject *decode_error, PyObject *on_decode_error) {
    if (!PyErr_ExceptionMatches(decode_error))
        return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *done = value ? PyObject_CallOneArg(on_decode_error, value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (!done)
        return -1;
    Py_DECREF(done);
    return 0;
}

static PyObject *dispatch(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 10 || !PyList_Check(args[0]) || !PyType_Check(args[2]) ||
        !PyType_Check(args[3]) || !PyType_Check(args[4]) || !PyExceptionClass_Check(args[8])) {
        PyErr_SetString(PyExc_TypeError,
                        "dispatch(raws: list, decode, ExecRecord, ExitRecord, ForkRecord, "
                        "on_exec, on_exit, on_fork, DecodeError, on_decode_error)");
        return NULL;
    }
    PyObject *raws = args[0], *decode = args[1];
    PyTypeObject *exec_t = (PyTypeObject *)args[2], *exit_t = (PyTypeObject *)args[3],
                 *fork_t = (PyTypeObject *)args[4];
    PyObject *on_exec = args[5], *on_exit = args[6], *on_fork = args[7];
    PyObject *decode_error = args[8], *on_decode_error = args[9];
    Py_ssize_t execs = 0, exits = 0, forks = 0, errors = 0;
    PyObject *events = PyList_New(0);
    if (!events)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(raws); i++) {
        PyObject *raw = PyList_GET_ITEM(raws, i);
        Py_INCREF(raw); /* the list is the caller's: hold the item across the call */
        PyObject *rec = PyObject_Vectorcall(decode, &raw, 1, NULL);
        Py_DECREF(raw);
        if (!rec) {
            if (refused(decode_error, on_decode_error) < 0)
                goto fail;
            errors++;
            continue;
        }
        PyObject *event = NULL;
        if (PyObject_TypeCheck(rec, exec_t)) {
            execs++;
            event = PyObject_Vectorcall(on_exec, &rec, 1, NULL);
        } else if (PyObject_TypeCheck(rec, exit_t)) {
            exits++;
            event = PyObject_Vectorcall(on_exit, &rec, 1, NULL);
        } else if (PyObject_TypeCheck(rec, fork_t)) {
            forks++;
            PyObject *none = PyObject_Vectorcall(on_fork, &rec, 1, NULL);
            Py_DECREF(rec);
            if (!none)
                goto fail;
            Py_DECREF(none);
            continue;
        } else { /* no kind the reader knows: skipped, as by Reader.handle_py */
            Py_DECREF(rec);
            continue;
        }
        Py_DECREF(rec);
        if (!event)
            goto fail;
        int rc = PyList_Append(events, event);
        Py_DECREF(event);
        if (rc < 0)
            goto fail;
    }
    return Py_BuildValue("(Nnnnn)", events, execs, exits, forks, errors);
fail:
    Py_DECREF(events);
    return NULL;
}

static PyMethodDef methods[] = {
    {"dispatch", (PyCFunction)(void (*)(void))dispatch, METH_FASTCALL,
     "dispatch(raws, decode, ExecRecord, ExitRecord, ForkRecord, on_exec, on_exit, on_fork, "
     "DecodeError, on_decode_error) -> (events, execs, exits, forks, decode_errors)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.pipeline._reader",
    "The reader's loop over a poll's records in C; collector.pipeline.reader is its reference.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__reader(void) { return PyModule_Create(&module); }
