/* The Kafka sink's per-message Python work in C: the Message record and the
 * loop that hands a round's messages to confluent-kafka's produce().
 *
 * Message mirrors sinks.kafka.message.MessagePy (the reference, and Message
 * when this module is not built): value, key and event type, len() = the
 * bytes of value and key (what the core's batch_bytes counts). Built once per
 * event and sized once, a dataclass cost about 0.4 us a message in Python
 * (__init__ and __len__ are Python functions); this is a plain C object.
 * Its fields hold bytes, bytes and str (the constructor refuses anything
 * else) and are read-only, so it cannot be part of a reference cycle and is
 * not tracked by the cyclic GC.
 *
 * produce_all mirrors sinks.kafka.producer.produce_all_py: produce() of
 * every message from `start`, by position (PRODUCE_BY_POSITION in
 * producer.py), stopping at the first message produce() refuses with one of
 * `refusals` and handing back (index, exception); any other exception is
 * raised. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *value;      /* bytes */
    PyObject *key;        /* bytes */
    PyObject *event_type; /* str */
} Message;

static PyTypeObject MessageType;

static PyObject *message_make(PyObject *value, PyObject *key, PyObject *event_type) {
    if (!PyBytes_Check(value) || !PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "Message: value and key must be bytes");
        return NULL;
    }
    if (!PyUnicode_Check(event_type)) {
        PyErr_SetString(PyExc_TypeError, "Message: event_type must be str");
        return NULL;
    }
    Message *m = PyObject_New(Message, &MessageType);
    if (!m)
        return NULL;
    m->value = Py_NewRef(value);
    m->key = Py_NewRef(key);
    m->event_type = Py_NewRef(event_type);
    return (PyObject *)m;
}

static PyObject *Message_new(PyTypeObject *type, PyObject *args, PyObject *kwds);

/* Message(value, key, event_type): the usual call, by position, without a
 * tuple or keyword parsing. */
static PyObject *Message_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && n == 3)
        return message_make(args[0], args[1], args[2]);
    PyObject *tuple = PyTuple_New(n);  /* keywords: the general path */
    if (!tuple)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    PyObject *kwds = NULL;
    if (kwnames) {
        kwds = PyDict_New();
        for (Py_ssize_t i = 0; kwds && i < PyTuple_GET_SIZE(kwnames); i++)
            if (PyDict_SetItem(kwds, PyTuple_GET_ITEM(kwnames, i), args[n + i]) < 0)
                Py_CLEAR(kwds);
        if (!kwds) {
            Py_DECREF(tuple);
            return NULL;
        }
    }
    PyObject *out = Message_new((PyTypeObject *)type, tuple, kwds);
    Py_DECREF(tuple);
    Py_XDECREF(kwds);
    return out;
}

static PyObject *Message_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"value", "key", "event_type", NULL};
    PyObject *value, *key, *event_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:Message", kwlist, &value, &key,
                                     &event_type))
        return NULL;
    return message_make(value, key, event_type);
}

static void Message_dealloc(Message *self) {
    Py_DECREF(self->value);
    Py_DECREF(self->key);
    Py_DECREF(self->event_type);
    PyObject_Free(self);
}

static Py_ssize_t Message_len(Message *self) {
    return PyBytes_GET_SIZE(self->value) + PyBytes_GET_SIZE(self->key);
}

static PyObject *Message_repr(Message *self) {
    return PyUnicode_FromFormat("Message(value=%R, key=%R, event_type=%R)", self->value,
                                self->key, self->event_type);
}

/* == and != as the dataclass's: the same type and equal fields, in order. */
static PyObject *Message_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(b, &MessageType))
        Py_RETURN_NOTIMPLEMENTED;
    Message *x = (Message *)a, *y = (Message *)b;
    PyObject *fields[3][2] = {{x->value, y->value}, {x->key, y->key},
                              {x->event_type, y->event_type}};
    int equal = 1;
    for (int i = 0; i < 3 && equal; i++) {
        equal = PyObject_RichCompareBool(fields[i][0], fields[i][1], Py_EQ);
        if (equal < 0)
            return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyMemberDef Message_members[] = {
    {"value", T_OBJECT_EX, offsetof(Message, value), READONLY, "the framed value (bytes)"},
    {"key", T_OBJECT_EX, offsetof(Message, key), READONLY, "the message key: exec_id (bytes)"},
    {"event_type", T_OBJECT_EX, offsetof(Message, event_type), READONLY,
     "picks the message's headers (str)"},
    {NULL},
};

static PySequenceMethods Message_as_sequence = {
    .sq_length = (lenfunc)Message_len,
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sinks.kafka._produce.Message",
    .tp_basicsize = sizeof(Message),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Message(value, key, event_type): see sinks.kafka.message.MessagePy.",
    .tp_new = Message_new,
    .tp_vectorcall = Message_vectorcall,
    .tp_dealloc = (destructor)Message_dealloc,
    .tp_repr = (reprfunc)Message_repr,
    .tp_richcompare = Message_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_members = Message_members,
    .tp_as_sequence = &Message_as_sequence,
};

/* The three fields of a message: a C Message's directly, any other object's
 * (MessagePy, a test's record) by attribute. New references. */
static int fields_of(PyObject *item, PyObject **value, PyObject **key, PyObject **event_type) {
    if (Py_IS_TYPE(item, &MessageType)) {
        Message *m = (Message *)item;
        *value = Py_NewRef(m->value);
        *key = Py_NewRef(m->key);
        *event_type = Py_NewRef(m->event_type);
        return 0;
    }
    *key = *event_type = NULL;
    *value = PyObject_GetAttrString(item, "value");
    if (*value && (*key = PyObject_GetAttrString(item, "key")) &&
        (*event_type = PyObject_GetAttrString(item, "event_type")))
        return 0;
    Py_XDECREF(*value);
    Py_XDECREF(*key);
    return -1;
}

static PyObject *produce_all(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "produce_all(produce, topic, items, start, callbacks, headers, refusals)");
        return NULL;
    }
    PyObject *produce = args[0], *topic = args[1], *items = args[2];
    PyObject *callbacks = args[4], *headers = args[5], *refusals = args[6];
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(callbacks) || !PyDict_Check(headers)) {
        PyErr_SetString(PyExc_TypeError, "produce_all: callbacks is a list, headers a dict");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(items, "produce_all: items is a sequence");
    if (!seq)
        return NULL;
    PyObject *partition = NULL, *timestamp = NULL, *out = NULL;
    if (!(partition = PyLong_FromLong(-1)) || !(timestamp = PyLong_FromLong(0)))
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = start; i < n; i++) {
        PyObject *value, *key, *event_type;
        if (fields_of(PySequence_Fast_GET_ITEM(seq, i), &value, &key, &event_type) < 0)
            goto done;
        /* borrowed; looked up in the reference's order: the callback, then the headers */
        PyObject *callback = i < PyList_GET_SIZE(callbacks) ? PyList_GET_ITEM(callbacks, i) : NULL;
        PyObject *hdrs = NULL;
        if (!callback)
            PyErr_SetString(PyExc_IndexError, "list index out of range");
        else if (!(hdrs = PyDict_GetItemWithError(headers, event_type)) && !PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, event_type);
        PyObject *result = NULL;
        if (hdrs && callback) {
            PyObject *call[8] = {topic, value, key, partition, callback, Py_None, timestamp, hdrs};
            result = PyObject_Vectorcall(produce, call, 8, NULL);
        }
        Py_DECREF(value);
        Py_DECREF(key);
        Py_DECREF(event_type);
        if (result) {
            Py_DECREF(result);
            continue;
        }
        if (!hdrs || !callback || !PyErr_ExceptionMatches(refusals))
            goto done;
        PyObject *type, *exc, *tb;  /* refused: (i, the exception) for the caller */
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        if (tb)
            PyException_SetTraceback(exc, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        out = Py_BuildValue("(nN)", i, exc);
        goto done;
    }
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(partition);
    Py_XDECREF(timestamp);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"produce_all", (PyCFunction)(void (*)(void))produce_all, METH_FASTCALL,
     "produce_all(produce, topic, items, start, callbacks, headers, refusals) -> None or "
     "(index, exception): see sinks.kafka.producer.produce_all_py."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sinks.kafka._produce",
    "Message and produce_all in C; sinks.kafka.message.MessagePy and "
    "sinks.kafka.producer.produce_all_py are their reference.", -1, methods,
};

PyMODINIT_FUNC PyInit__produce(void) {
    if (PyType_Ready(&MessageType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Message", (PyObject *)&MessageType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
