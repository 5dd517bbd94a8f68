/*
 * collector._decode: raw ring-buffer records → ExecRecord / ExitRecord /
 * ForkRecord, in C.
 *
 * Why: in an exec storm decode() was a sixth of the collector's running
 * samples (bench/storm.py --profile), most of it in the dataclasses'
 * generated __init__ (Python code, two per record: the record and its
 * TaskIds) and in struct's tuple of twenty fields; this takes an exec record
 * from 2.1 to 1.0 µs, an exit from 0.8 to 0.3 (with their deallocation;
 * bench/results/decode_native_ab.json for the storm). This reads the fields at the
 * offsets of bpf/process.h, the header the BPF programs are built with, and
 * fills the dataclasses' slots directly.
 *
 * collector.decode stays the reference and the fallback: a record this does
 * not take as regular (too short, lengths past its end, an unknown kind)
 * goes to collector.decode.decode_py, which raises the DecodeError with its
 * message. comm, binary and cwd go through the same memo dicts as there
 * (a miss calls collector.decode's _comm / _path, which fill them); argv is
 * decoded item by item with backslashreplace, which gives the same strings
 * as decoding the whole list and splitting it (see collector.decode).
 * tests/unit/test_decode_native.py holds the two paths to the same records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <linux/types.h>
#include <stddef.h>
#include <string.h>

#include "process.h"
#include "_slots.h"

#define AUID_UNSET 0xFFFFFFFFu

/* one field of a record at its offset in the layout (raw bytes need not be aligned;
   and a struct exec_event on the stack would be 64 KiB, probed page by page) */
#define FIELD(T, raw, type, field)                                   \
    ({                                                               \
        T v_;                                                        \
        memcpy(&v_, (raw) + offsetof(type, field), sizeof(v_));      \
        v_;                                                          \
    })


typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall; /* calls without an argument tuple */
    Slots exec, exit, fork, task;
    PyObject *comms, *paths;      /* collector.decode's memo dicts */
    PyObject *comm_miss, *path_miss; /* collector.decode._comm / _path */
    PyObject *fallback;           /* collector.decode.decode_py */
    PyObject *s_execve, *s_truncated, *s_args_unreadable;
} Decoder;

/* a new instance with every slot set from vals (references stolen) */
static PyObject *make(Slots *s, PyObject **vals) {
    PyObject *obj = s->type->tp_alloc(s->type, 0);
    for (Py_ssize_t i = 0; i < s->n; i++) {
        if (!vals[i] || !obj) {
            for (Py_ssize_t j = i; j < s->n; j++)
                Py_XDECREF(vals[j]);
            Py_XDECREF(obj);
            return NULL;
        }
        *(PyObject **)((char *)obj + s->offset[i]) = vals[i];
    }
    return obj;
}

/* the fields this file fills, in the order it fills them: the dataclasses'
   own order (the Python side hands in dataclasses.fields(); init refuses others) */
static const char *const EXEC_FIELDS[] = {"ktime_ns", "task", "uid", "euid", "gid", "egid", "auid",
                                          "binary", "cwd", "args", "args_truncated", "flags", NULL};
static const char *const EXIT_FIELDS[] = {"ktime_ns", "task", "exit_status", NULL};
static const char *const FORK_FIELDS[] = {"ktime_ns", "task", NULL};
static const char *const TASK_FIELDS[] = {"pid", "tid", "ppid", "start_ns", "cgroup_id", "comm",
                                          NULL};


/* a memoised text (comm, binary, cwd): the memo's, or what the Python side
   makes of it on a miss (and remembers) */
static PyObject *memo(PyObject *dict, PyObject *miss, const char *raw, Py_ssize_t n) {
    PyObject *key = PyBytes_FromStringAndSize(raw, n);
    if (!key)
        return NULL;
    PyObject *found = PyDict_GetItemWithError(dict, key);
    if (found) {
        Py_DECREF(key);
        return Py_NewRef(found);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    found = PyObject_CallOneArg(miss, key);
    Py_DECREF(key);
    return found;
}

static PyObject *text(const char *raw, Py_ssize_t n) {
    return PyUnicode_DecodeUTF8(raw, n, "backslashreplace");
}

/* argv as the kernel lays it out: NUL-separated, NUL-terminated */
static PyObject *args_list(const char *raw, Py_ssize_t n) {
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    Py_ssize_t at = 0;
    while (at < n) {
        const char *nul = memchr(raw + at, 0, n - at);
        Py_ssize_t end = nul ? nul - raw : n;
        PyObject *item = text(raw + at, end - at);
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        at = end + 1; /* past the NUL: a trailing NUL ends the list, no empty item */
    }
    return out;
}

/* the task_ids at t (inside a record) */
static PyObject *task_ids(Decoder *self, const char *t) {
    PyObject *v[6] = {
        PyLong_FromUnsignedLong(FIELD(__u32, t, struct task_ids, pid)),
        PyLong_FromUnsignedLong(FIELD(__u32, t, struct task_ids, tid)),
        PyLong_FromUnsignedLong(FIELD(__u32, t, struct task_ids, ppid)),
        PyLong_FromUnsignedLongLong(FIELD(__u64, t, struct task_ids, start_ns)),
        PyLong_FromUnsignedLongLong(FIELD(__u64, t, struct task_ids, cgroup_id)),
        memo(self->comms, self->comm_miss, t + offsetof(struct task_ids, comm), TASK_COMM_LEN),
    };
    return make(&self->task, v);
}

#define KTIME(raw) PyLong_FromUnsignedLongLong(FIELD(__u64, raw, struct event_header, ktime_ns))

static PyObject *decode_exec(Decoder *self, const char *raw, Py_ssize_t n) {
#define EXEC(T, f) FIELD(T, raw, struct exec_event, f)
    const __u32 flags = EXEC(__u32, flags), auid = EXEC(__u32, auid);
    const Py_ssize_t binary_len = EXEC(__u32, binary_len), cwd_len = EXEC(__u32, cwd_len),
                     args_len = EXEC(__u32, args_len);
    const Py_ssize_t at = offsetof(struct exec_event, data);
    const Py_ssize_t cwd_at = at + binary_len, args_at = cwd_at + cwd_len;
    if (args_at + args_len > n)
        return NULL; /* the fallback names it */
    PyObject *marks = PyList_New(0);
    if (!marks)
        return NULL;
    if (PyList_Append(marks, self->s_execve) < 0 ||
        ((flags & (EXEC_ARGS_TRUNCATED | EXEC_BINARY_TRUNCATED | EXEC_CWD_TRUNCATED)) &&
         PyList_Append(marks, self->s_truncated) < 0) ||
        ((flags & EXEC_ARGS_UNREADABLE) && PyList_Append(marks, self->s_args_unreadable) < 0)) {
        Py_DECREF(marks);
        return NULL;
    }
    PyObject *v[12] = {
        KTIME(raw),
        task_ids(self, raw + offsetof(struct exec_event, task)),
        PyLong_FromUnsignedLong(EXEC(__u32, uid)),
        PyLong_FromUnsignedLong(EXEC(__u32, euid)),
        PyLong_FromUnsignedLong(EXEC(__u32, gid)),
        PyLong_FromUnsignedLong(EXEC(__u32, egid)),
        auid == AUID_UNSET ? Py_NewRef(Py_None) : PyLong_FromUnsignedLong(auid),
        memo(self->paths, self->path_miss, raw + at, binary_len),
        memo(self->paths, self->path_miss, raw + cwd_at, cwd_len),
        args_list(raw + args_at, args_len),
        PyBool_FromLong(flags & EXEC_ARGS_TRUNCATED),
        marks,
    };
    return make(&self->exec, v);
#undef EXEC
}

static PyObject *Decoder_call(Decoder *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *raw = view.buf;
    Py_ssize_t n = view.len;
    PyObject *out = NULL;
    __u32 kind = 0;
    if (n >= (Py_ssize_t)sizeof(struct event_header))
        kind = FIELD(__u32, raw, struct event_header, kind);
    if (kind == EVENT_EXEC && n >= (Py_ssize_t)offsetof(struct exec_event, data)) {
        out = decode_exec(self, raw, n);
    } else if (kind == EVENT_EXIT && n >= (Py_ssize_t)sizeof(struct exit_event)) {
        PyObject *v[3] = {KTIME(raw), task_ids(self, raw + offsetof(struct exit_event, task)),
                          PyLong_FromUnsignedLong(FIELD(__u32, raw, struct exit_event,
                                                        exit_status))};
        out = make(&self->exit, v);
    } else if (kind == EVENT_FORK && n >= (Py_ssize_t)sizeof(struct fork_event)) {
        PyObject *v[2] = {KTIME(raw), task_ids(self, raw + offsetof(struct fork_event, task))};
        out = make(&self->fork, v);
    }
    PyBuffer_Release(&view);
    if (out || PyErr_Occurred())
        return out;
    return PyObject_CallOneArg(self->fallback, arg); /* raises its DecodeError */
}

static PyObject *Decoder_vcall(PyObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "decode(raw) takes one bytes-like record");
        return NULL;
    }
    return Decoder_call((Decoder *)self, args[0]);
}


static int Decoder_init(Decoder *self, PyObject *args, PyObject *kwds) {
    PyObject *types, *names;
    static char *kwlist[] = {"types", "names", "comms", "paths", "comm_miss", "path_miss",
                             "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!OOO:Decoder", kwlist, &PyTuple_Type,
                                     &types, &PyTuple_Type, &names, &PyDict_Type, &self->comms,
                                     &PyDict_Type, &self->paths, &self->comm_miss,
                                     &self->path_miss, &self->fallback))
        return -1;
    Py_INCREF(self->comms);
    Py_INCREF(self->paths);
    Py_INCREF(self->comm_miss);
    Py_INCREF(self->path_miss);
    Py_INCREF(self->fallback);
    if (PyTuple_GET_SIZE(types) != 4 || PyTuple_GET_SIZE(names) != 4) {
        PyErr_SetString(PyExc_TypeError, "types and names: (exec, exit, fork, task)");
        return -1;
    }
    Slots *slots[4] = {&self->exec, &self->exit, &self->fork, &self->task};
    const char *const *want[4] = {EXEC_FIELDS, EXIT_FIELDS, FORK_FIELDS, TASK_FIELDS};
    for (int i = 0; i < 4; i++)
        if (slots_init(slots[i], PyTuple_GET_ITEM(types, i), PyTuple_GET_ITEM(names, i),
                       want[i], "collector._decode") < 0)
            return -1;
    self->s_execve = PyUnicode_InternFromString("execve");
    self->s_truncated = PyUnicode_InternFromString("truncated");
    self->s_args_unreadable = PyUnicode_InternFromString("args_unreadable");
    if (!self->s_execve || !self->s_truncated || !self->s_args_unreadable)
        return -1;
    self->vectorcall = Decoder_vcall;
    return 0;
}

static void Decoder_dealloc(Decoder *self) {
    Slots *slots[4] = {&self->exec, &self->exit, &self->fork, &self->task};
    for (int i = 0; i < 4; i++)
        Py_XDECREF(slots[i]->type);
    Py_XDECREF(self->comms);
    Py_XDECREF(self->paths);
    Py_XDECREF(self->comm_miss);
    Py_XDECREF(self->path_miss);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->s_execve);
    Py_XDECREF(self->s_truncated);
    Py_XDECREF(self->s_args_unreadable);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector._decode.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Decoder, vectorcall),
    .tp_doc = "Decoder(types, names, comms, paths, comm_miss, path_miss, fallback)(raw): "
              "see the module's C source.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_call = PyVectorcall_Call,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector._decode",
    "Raw records → kernel facts in C; collector.decode is its reference.", -1, NULL,
};

PyMODINIT_FUNC PyInit__decode(void) {
    if (PyType_Ready(&DecoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
