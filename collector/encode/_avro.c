/*
 * collector.encode._avro: a record → its Avro binary encoding, in C, run from
 * a plan of the schema that collector.encode.avro_gen makes (avro_gen.plan).
 *
 * Why: the generated Python encoder (avro_generated.py) was the largest part
 * of the Kafka Avro sink's CPU per event left in an exec storm
 * (bench/results/avro_native_ab.json for what this saves). The plan is the
 * schema's, made by the same walk that generates that module, so the schema
 * stays the one owner of the fields, their order and their types.
 *
 * It does what the generated code does, value by value: fields in schema
 * order, each record's got with its default; null, boolean, int (32-bit
 * range checked), long (int64), string (UTF-8, strict), ["null", T] unions by
 * `is None`, enums by their symbol table, arrays of any of these, records; a
 * SharedRecord's encoding kept on it (avro_datum) and reused. Anything else
 * (a bool for an int, a datetime, a tuple for a list, an int past 64 bits, a
 * record that is neither a dict nor a SharedRecord) raises the Slow it was
 * given, so collector.encode.avro hands the event to fastavro, as it does for
 * the generated code; a string with a lone surrogate raises UnicodeEncodeError,
 * as str.encode() does there. The generated module stays the reference and
 * the fallback: tests/unit/test_avro_native.py holds the two (and fastavro) to
 * the same bytes and the same refusals.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* the plan's opcodes: collector.encode.avro_gen.OPS names them, in this order */
enum { OP_NULL, OP_BOOLEAN, OP_INT, OP_LONG, OP_STRING, OP_UNION, OP_ENUM, OP_ARRAY, OP_RECORD,
       N_OPS };
static const char *const OP_NAMES[] = {"null", "boolean", "int", "long", "string", "union",
                                       "enum", "array", "record", NULL};

typedef struct Node {
    int op;
    int null_index;        /* OP_UNION: where "null" is (0 or 1) */
    struct Node *child;    /* OP_UNION: the other branch; OP_ARRAY: the items */
    PyObject *table;       /* OP_ENUM: symbol → its encoded index (bytes) */
    Py_ssize_t n;          /* OP_RECORD: fields */
    PyObject **names, **defaults;
    struct Node **fields;
} Node;

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int heap;          /* data is PyMem's, else the caller's stack array */
} Buf;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Node *top;
    PyObject *shared; /* SharedRecord */
    PyObject *slow;   /* collector.encode.avro_varint.Slow */
    PyObject *s_avro_datum;
} Plan;

static int reserve(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    char *data = b->heap ? PyMem_Realloc(b->data, cap) : PyMem_Malloc(cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    if (!b->heap)
        memcpy(data, b->data, b->len);
    b->heap = 1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, Py_ssize_t n) {
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int put_byte(Buf *b, unsigned char c) {
    if (reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = (char)c;
    return 0;
}

/* an Avro int/long: zig-zag, then base-128, low group first */
static inline int put_varint(Buf *b, int64_t n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    if (reserve(b, 10) < 0)
        return -1;
    while (z >= 0x80) {
        b->data[b->len++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    b->data[b->len++] = (char)z;
    return 0;
}

static int slow(Plan *self) {
    PyErr_SetNone(self->slow);
    return -1;
}

static int put_value(Plan *self, Buf *b, Node *node, PyObject *x);

static int put_record(Plan *self, Buf *b, Node *node, PyObject *v) {
    int shared = Py_IS_TYPE(v, (PyTypeObject *)self->shared);
    if (shared) {
        PyObject *cached = PyObject_GetAttr(v, self->s_avro_datum);
        if (!cached)
            return -1;
        if (cached != Py_None) {
            int rc = PyBytes_Check(cached)
                         ? put(b, PyBytes_AS_STRING(cached), PyBytes_GET_SIZE(cached))
                         : slow(self);
            Py_DECREF(cached);
            return rc;
        }
        Py_DECREF(cached);
    } else if (!PyDict_CheckExact(v)) {
        return slow(self);
    }
    Py_ssize_t start = b->len;
    for (Py_ssize_t i = 0; i < node->n; i++) {
        PyObject *f = PyDict_GetItemWithError(v, node->names[i]);
        if (!f) {
            if (PyErr_Occurred())
                return -1;
            f = node->defaults[i];
        }
        Py_INCREF(f); /* the record could change under a call into Python (none here) */
        int rc = put_value(self, b, node->fields[i], f);
        Py_DECREF(f);
        if (rc < 0)
            return -1;
    }
    if (shared) {
        PyObject *mine = PyBytes_FromStringAndSize(b->data + start, b->len - start);
        int rc = mine ? PyObject_SetAttr(v, self->s_avro_datum, mine) : -1;
        Py_XDECREF(mine);
        return rc;
    }
    return 0;
}

static int put_value(Plan *self, Buf *b, Node *node, PyObject *x) {
    switch (node->op) {
    case OP_NULL:
        return x == Py_None ? 0 : slow(self);
    case OP_BOOLEAN:
        if (x == Py_True)
            return put_byte(b, 1);
        if (x == Py_False)
            return put_byte(b, 0);
        return slow(self);
    case OP_INT:
    case OP_LONG: {
        if (!PyLong_CheckExact(x))
            return slow(self);
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(x, &overflow);
        if (overflow) /* outside int64: fastavro's to refuse */
            return slow(self);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (node->op == OP_INT && (n < INT32_MIN || n > INT32_MAX))
            return slow(self);
        return put_varint(b, (int64_t)n);
    }
    case OP_STRING: {
        if (!PyUnicode_CheckExact(x))
            return slow(self);
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(x, &n); /* UnicodeEncodeError as str.encode */
        if (!s || put_varint(b, n) < 0)
            return -1;
        return put(b, s, n);
    }
    case OP_UNION:
        if (x == Py_None)
            return put_byte(b, (unsigned char)(node->null_index * 2));
        if (put_byte(b, (unsigned char)((1 - node->null_index) * 2)) < 0)
            return -1;
        return put_value(self, b, node->child, x);
    case OP_ENUM: { /* a str's symbol; anything else is fastavro's (no Python runs here) */
        PyObject *code = PyUnicode_CheckExact(x) ? PyDict_GetItemWithError(node->table, x) : NULL;
        if (!code)
            return PyErr_Occurred() ? -1 : slow(self);
        return put(b, PyBytes_AS_STRING(code), PyBytes_GET_SIZE(code));
    }
    case OP_ARRAY: {
        if (!PyList_CheckExact(x))
            return slow(self);
        Py_ssize_t n = PyList_GET_SIZE(x);
        if (n) {
            if (put_varint(b, n) < 0)
                return -1;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(x); i++) {
                PyObject *item = PyList_GET_ITEM(x, i);
                Py_INCREF(item);
                int rc = put_value(self, b, node->child, item);
                Py_DECREF(item);
                if (rc < 0)
                    return -1;
            }
        }
        return put_byte(b, 0);
    }
    case OP_RECORD:
        return put_record(self, b, node, x);
    }
    PyErr_SetString(PyExc_SystemError, "collector.encode._avro: unknown opcode");
    return -1;
}

static void free_node(Node *node) {
    if (!node)
        return;
    free_node(node->child);
    Py_XDECREF(node->table);
    for (Py_ssize_t i = 0; i < node->n; i++) {
        Py_XDECREF(node->names ? node->names[i] : NULL);
        Py_XDECREF(node->defaults ? node->defaults[i] : NULL);
        free_node(node->fields ? node->fields[i] : NULL);
    }
    PyMem_Free(node->names);
    PyMem_Free(node->defaults);
    PyMem_Free(node->fields);
    PyMem_Free(node);
}

/* a node from the plan: (op, ...) as avro_gen.plan writes it */
static Node *build(PyObject *t, int depth) {
    if (depth > 64) {
        PyErr_SetString(PyExc_ValueError, "the Avro plan nests too deep");
        return NULL;
    }
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 1 || !PyLong_Check(PyTuple_GET_ITEM(t, 0))) {
        PyErr_Format(PyExc_TypeError, "an Avro plan node is (op, ...), not %R", t);
        return NULL;
    }
    long op = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
    Node *node = PyMem_Calloc(1, sizeof(Node));
    if (!node)
        return (Node *)PyErr_NoMemory();
    node->op = (int)op;
    Py_ssize_t size = PyTuple_GET_SIZE(t);
    switch (op) {
    case OP_NULL:
    case OP_BOOLEAN:
    case OP_INT:
    case OP_LONG:
    case OP_STRING:
        if (size == 1)
            return node;
        break;
    case OP_UNION:
        if (size == 3 && PyLong_Check(PyTuple_GET_ITEM(t, 1))) {
            node->null_index = PyLong_AsLong(PyTuple_GET_ITEM(t, 1)) ? 1 : 0;
            node->child = build(PyTuple_GET_ITEM(t, 2), depth + 1);
            if (node->child)
                return node;
            free_node(node);
            return NULL;
        }
        break;
    case OP_ENUM:
        if (size == 2 && PyDict_CheckExact(PyTuple_GET_ITEM(t, 1))) {
            PyObject *table = PyTuple_GET_ITEM(t, 1);
            PyObject *k, *v;
            Py_ssize_t pos = 0;
            while (PyDict_Next(table, &pos, &k, &v))
                if (!PyBytes_CheckExact(v))
                    goto bad;
            node->table = Py_NewRef(table);
            return node;
        }
        break;
    case OP_ARRAY:
        if (size == 2) {
            node->child = build(PyTuple_GET_ITEM(t, 1), depth + 1);
            if (node->child)
                return node;
            free_node(node);
            return NULL;
        }
        break;
    case OP_RECORD:
        if (size == 2 && PyTuple_Check(PyTuple_GET_ITEM(t, 1))) {
            PyObject *fields = PyTuple_GET_ITEM(t, 1);
            Py_ssize_t n = PyTuple_GET_SIZE(fields);
            node->names = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
            node->defaults = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
            node->fields = PyMem_Calloc(n ? n : 1, sizeof(Node *));
            if (!node->names || !node->defaults || !node->fields) {
                free_node(node);
                return (Node *)PyErr_NoMemory();
            }
            node->n = n;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *f = PyTuple_GET_ITEM(fields, i);
                if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3 ||
                    !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 0)))
                    goto bad;
                PyObject *name = Py_NewRef(PyTuple_GET_ITEM(f, 0));
                PyUnicode_InternInPlace(&name);
                node->names[i] = name;
                node->defaults[i] = Py_NewRef(PyTuple_GET_ITEM(f, 1));
                node->fields[i] = build(PyTuple_GET_ITEM(f, 2), depth + 1);
                if (!node->fields[i]) {
                    free_node(node);
                    return NULL;
                }
            }
            return node;
        }
        break;
    }
bad:
    free_node(node);
    PyErr_Format(PyExc_TypeError, "not an Avro plan node: %R", t);
    return NULL;
}

static PyObject *Plan_vcall(PyObject *obj, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    Plan *self = (Plan *)obj;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "a Plan takes one record");
        return NULL;
    }
    if (!self->top) {
        PyErr_SetString(PyExc_TypeError, "Plan not initialised");
        return NULL;
    }
    char stack[4096]; /* an event's datum mostly fits: no allocation but the result */
    Buf b = {stack, 0, sizeof(stack), 0};
    PyObject *out = put_value(self, &b, self->top, args[0]) < 0
                        ? NULL
                        : PyBytes_FromStringAndSize(b.data, b.len);
    if (b.heap)
        PyMem_Free(b.data);
    return out;
}

static int Plan_init(Plan *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"plan", "ops", "shared", "slow", NULL};
    PyObject *plan, *ops, *shared, *slow_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!OO:Plan", kwlist, &plan, &PyTuple_Type,
                                     &ops, &shared, &slow_type))
        return -1;
    if (PyTuple_GET_SIZE(ops) != N_OPS) {
        PyErr_Format(PyExc_TypeError, "collector.encode._avro knows %d opcodes", N_OPS);
        return -1;
    }
    for (int i = 0; i < N_OPS; i++) {
        PyObject *name = PyTuple_GET_ITEM(ops, i);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, OP_NAMES[i]) != 0) {
            PyErr_Format(PyExc_TypeError, "opcode %d is %R; collector.encode._avro has %s: "
                         "rebuild it with avro_gen", i, name, OP_NAMES[i]);
            return -1;
        }
    }
    if (!PyType_Check(shared) || !PyExceptionClass_Check(slow_type)) {
        PyErr_SetString(PyExc_TypeError, "shared: SharedRecord; slow: an exception class");
        return -1;
    }
    Node *top = build(plan, 0);
    if (!top)
        return -1;
    free_node(self->top);
    self->top = top;
    Py_XSETREF(self->shared, Py_NewRef(shared));
    Py_XSETREF(self->slow, Py_NewRef(slow_type));
    Py_XSETREF(self->s_avro_datum, PyUnicode_InternFromString("avro_datum"));
    if (!self->s_avro_datum)
        return -1;
    self->vectorcall = Plan_vcall;
    return 0;
}

static void Plan_dealloc(Plan *self) {
    free_node(self->top);
    Py_XDECREF(self->shared);
    Py_XDECREF(self->slow);
    Py_XDECREF(self->s_avro_datum);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector.encode._avro.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Plan, vectorcall),
    .tp_doc = "Plan(plan, ops, shared, slow)(record) -> bytes: see the module's C source.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Plan_init,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_call = PyVectorcall_Call,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.encode._avro",
    "Records → Avro binary in C from avro_gen's plan; avro_generated.py is its reference.", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__avro(void) {
    if (PyType_Ready(&PlanType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
