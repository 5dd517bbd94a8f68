/*
 * collector.encode._jsonline: a ProcessEvent as one JSON line, in C.
 *
 * Why: in an exec storm the stdout sink spent about a fifth of the collector's
 * CPU turning events into lines through collector.encode.json (json_ready's
 * copy of the event, rfc3339_ns, the fragments, orjson.dumps and the newline
 * concatenation): a stand-in line costing next to nothing took 9.8 µs per event
 * to 7.8 (bench/results/json_encode_free_bound.json). This writes the same
 * bytes in one pass over the event (bench/results/json_native_ab.json).
 *
 * The orjson path stays the reference and the fallback: for anything outside
 * the plain shapes the process cache builds (exact dict, list, str, int, bool,
 * None, SharedRecord), an int outside 64 bits, a str orjson would refuse, a
 * timestamp outside years 1000..9999, this calls the fallback it was given
 * (collector.encode.json's orjson path), which does the work as before. tests/unit/test_jsonline_native.py
 * holds the two to the same bytes.
 *
 * What it writes, as orjson does with no options: no spaces; keys in the
 * dict's order; str as UTF-8 with '"', '\\' and control characters escaped
 * (\b \t \n \f \r, else \u00xx); ints in decimal. Timestamp fields (the
 * schema's, handed in by collector.encode.json: top-level names, and per
 * field holding records the names inside those records) become RFC 3339 UTC
 * strings with nanoseconds. A SharedRecord (built once, never changed) is
 * written once: its JSON text is kept on it (json_text, and json_fragment as
 * the orjson.Fragment the Python path splices) and copied into every line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define UNSUPPORTED (-2) /* not for this path: the caller falls back to orjson */
#define MAX_DEPTH 16     /* deeper values go to the orjson path */
/* years 1000..9999: four digits, as strftime's %Y writes them */
#define MIN_EPOCH_S (-30610224000LL) /* 1000-01-01T00:00:00Z */
#define MAX_EPOCH_S 253402300800LL   /* 9999-12-31T23:59:59Z + 1 s */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char inline_space[4096];
} Buf;

static void buf_init(Buf *b) {
    b->data = b->inline_space;
    b->len = 0;
    b->cap = sizeof(b->inline_space);
}

static void buf_free(Buf *b) {
    if (b->data != b->inline_space)
        PyMem_Free(b->data);
}

static int buf_reserve(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap;
    while (cap < b->len + more)
        cap *= 2;
    char *data;
    if (b->data == b->inline_space) {
        data = PyMem_Malloc(cap);
        if (data)
            memcpy(data, b->data, b->len);
    } else {
        data = PyMem_Realloc(b->data, cap);
    }
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUT_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

typedef struct {
    PyObject_HEAD
    PyObject *shared_type; /* collector.schema.SharedRecord */
    PyObject *fragment;    /* orjson.Fragment */
    PyObject *top;         /* tuple of str: top-level timestamp fields */
    PyObject *heads;       /* tuple of str: fields holding records */
    PyObject *leaves;      /* tuple of tuples of str: each head's records' timestamp fields */
    PyObject *s_json_text, *s_json_fragment;
    PyObject *fallback; /* event → line, for what this does not write; None: return None */
    long long last_sec; /* events come in bursts within a second: its text is made once */
    char last_prefix[20]; /* "YYYY-MM-DDTHH:MM:SS" of last_sec */
} Encoder;

static const char HEX[] = "0123456789abcdef";

/* may any of these 8 bytes need an escape ('"', '\\', below 0x20)? No false "no";
   a false "yes" (a borrow between bytes) only sends the 8 bytes the slow way */
static inline int maybe_escape8(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t below = (x - 0x20 * ones) & ~x;
    uint64_t quote = x ^ ('"' * ones), slash = x ^ ('\\' * ones);
    quote = (quote - ones) & ~quote;
    slash = (slash - ones) & ~slash;
    return ((below | quote | slash) & highs) != 0;
}

static int put_str(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (!u) { /* surrogates: orjson refuses them with its own error */
        PyErr_Clear();
        return UNSUPPORTED;
    }
    if (buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) { /* 8 plain bytes at a time: the common case */
            uint64_t x;
            memcpy(&x, u + i, 8);
            if (!maybe_escape8(x)) {
                memcpy(o, &x, 8);
                o += 8;
                i += 8;
                continue;
            }
        }
        Py_ssize_t stop = i + 8 < n ? i + 8 : n;
        for (; i < stop; i++) {
            unsigned char c = (unsigned char)u[i];
            if (c >= 0x20 && c != '"' && c != '\\') {
                *o++ = (char)c;
                continue;
            }
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\t': *o++ = 't'; break;
            case '\n': *o++ = 'n'; break;
            case '\f': *o++ = 'f'; break;
            case '\r': *o++ = 'r'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = HEX[c >> 4]; *o++ = HEX[c & 0xf];
            }
        }
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* decimal digits of x, written backwards from end; returns the first */
static char *digits(char *end, unsigned long long x) {
    do {
        *--end = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    return end;
}

static int put_int(Buf *b, PyObject *v) {
    int overflow;
    char text[24], *end = text + sizeof(text), *start;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0) {
        /* the magnitude as unsigned: -LLONG_MIN overflows a long long */
        start = digits(end, x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x);
        if (x < 0)
            *--start = '-';
    } else if (overflow > 0) {
        unsigned long long ux = PyLong_AsUnsignedLongLong(v);
        if (ux == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear(); /* beyond 64 bits: orjson's error, from the fallback */
            return UNSUPPORTED;
        }
        start = digits(end, ux);
    } else {
        return UNSUPPORTED;
    }
    return buf_put(b, start, end - start);
}

/* n as exactly `width` digits, zero-padded (n < 10^width) */
static char *fixed(char *o, unsigned long long n, int width) {
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + n % 10);
        n /= 10;
    }
    return o + width;
}

/* an int timestamp (ns since the epoch) as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ":
   whole seconds rounded down, as rfc3339_ns's divmod does for times before 1970 */
static int put_time(Encoder *self, Buf *b, PyObject *v) {
    int overflow;
    long long ns = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (ns == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return UNSUPPORTED;
    long long sec = ns / 1000000000LL, frac = ns % 1000000000LL;
    if (frac < 0) {
        sec -= 1;
        frac += 1000000000LL;
    }
    if (sec < MIN_EPOCH_S || sec >= MAX_EPOCH_S)
        return UNSUPPORTED;
    if (sec != self->last_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            return UNSUPPORTED;
        char *p = self->last_prefix;
        p = fixed(p, (unsigned long long)(tm.tm_year + 1900), 4);
        *p++ = '-';
        p = fixed(p, (unsigned long long)(tm.tm_mon + 1), 2);
        *p++ = '-';
        p = fixed(p, (unsigned long long)tm.tm_mday, 2);
        *p++ = 'T';
        p = fixed(p, (unsigned long long)tm.tm_hour, 2);
        *p++ = ':';
        p = fixed(p, (unsigned long long)tm.tm_min, 2);
        *p++ = ':';
        fixed(p, (unsigned long long)tm.tm_sec, 2);
        self->last_sec = sec;
    }
    char text[32], *o = text; /* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" with its quotes: 32 */
    *o++ = '"';
    memcpy(o, self->last_prefix, 19);
    o += 19;
    *o++ = '.';
    o = fixed(o, (unsigned long long)frac, 9);
    *o++ = 'Z';
    *o++ = '"';
    return buf_put(b, text, o - text);
}

static int put_value(Encoder *self, Buf *b, PyObject *v, int depth);

/* is key one of names (a tuple of str)? the schema's names are interned, as
   are the keys the builders write, so the pointer test answers almost always */
static int named(PyObject *key, PyObject *names) {
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyTuple_GET_ITEM(names, i) == key)
            return 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (PyUnicode_GET_LENGTH(name) == PyUnicode_GET_LENGTH(key) &&
            PyUnicode_Compare(name, key) == 0)
            return 1;
    }
    return 0;
}

/* `"key":`, after a comma unless it is the dict's first item (ordinal 1) */
static int put_key(Buf *b, PyObject *key, Py_ssize_t ordinal) {
    int rc;
    if (!PyUnicode_CheckExact(key))
        return UNSUPPORTED;
    if (ordinal > 1 && PUT_LIT(b, ",") < 0)
        return -1;
    if ((rc = put_str(b, key)) < 0)
        return rc;
    return PUT_LIT(b, ":");
}

/* a dict's items; keys named in `times` (may be NULL) with int values as timestamps */
static int put_dict(Encoder *self, Buf *b, PyObject *d, PyObject *times, int depth) {
    if (depth > MAX_DEPTH)
        return UNSUPPORTED;
    if (PUT_LIT(b, "{") < 0)
        return -1;
    Py_ssize_t pos = 0, items = 0;
    PyObject *key, *value;
    int rc;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if ((rc = put_key(b, key, ++items)) < 0)
            return rc;
        if (times && PyLong_Check(value) && named(key, times))
            rc = put_time(self, b, value);
        else
            rc = put_value(self, b, value, depth + 1);
        if (rc < 0)
            return rc;
    }
    return PUT_LIT(b, "}");
}

static int put_value(Encoder *self, Buf *b, PyObject *v, int depth) {
    if (v == Py_None)
        return PUT_LIT(b, "null");
    if (v == Py_True)
        return PUT_LIT(b, "true");
    if (v == Py_False)
        return PUT_LIT(b, "false");
    if (PyUnicode_CheckExact(v))
        return put_str(b, v);
    if (PyLong_CheckExact(v))
        return put_int(b, v);
    if (depth > MAX_DEPTH)
        return UNSUPPORTED;
    if (PyList_CheckExact(v)) {
        if (PUT_LIT(b, "[") < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            int rc;
            if (i && PUT_LIT(b, ",") < 0)
                return -1;
            if ((rc = put_value(self, b, PyList_GET_ITEM(v, i), depth + 1)) < 0)
                return rc;
        }
        return PUT_LIT(b, "]");
    }
    if (PyDict_CheckExact(v) || Py_IS_TYPE(v, (PyTypeObject *)self->shared_type))
        return put_dict(self, b, v, NULL, depth);
    return UNSUPPORTED; /* floats, tuples, datetimes, subclasses...: orjson's */
}

/* a record in a field that holds records: a SharedRecord's kept text, or the
   record written with its timestamp fields rendered */
static int put_record(Encoder *self, Buf *b, PyObject *rec, PyObject *times) {
    if (PyDict_CheckExact(rec))
        return put_dict(self, b, rec, times, 1);
    if (!Py_IS_TYPE(rec, (PyTypeObject *)self->shared_type))
        return put_value(self, b, rec, 1);
    PyObject *text = PyObject_GetAttr(rec, self->s_json_text);
    if (!text)
        return -1;
    if (PyBytes_CheckExact(text)) {
        int rc = buf_put(b, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text));
        Py_DECREF(text);
        return rc;
    }
    Py_DECREF(text);
    Buf own;
    buf_init(&own);
    int rc = put_dict(self, &own, rec, times, 1);
    if (rc == 0) {
        text = PyBytes_FromStringAndSize(own.data, own.len);
        PyObject *frag = text ? PyObject_CallOneArg(self->fragment, text) : NULL;
        if (!frag || PyObject_SetAttr(rec, self->s_json_text, text) < 0 ||
            PyObject_SetAttr(rec, self->s_json_fragment, frag) < 0)
            rc = -1;
        else
            rc = buf_put(b, own.data, own.len);
        Py_XDECREF(frag);
        Py_XDECREF(text);
    }
    buf_free(&own);
    return rc;
}

static int put_event(Encoder *self, Buf *b, PyObject *event) {
    if (PUT_LIT(b, "{") < 0)
        return -1;
    Py_ssize_t pos = 0, items = 0;
    PyObject *key, *value;
    int rc;
    while (PyDict_Next(event, &pos, &key, &value)) {
        if ((rc = put_key(b, key, ++items)) < 0)
            return rc;
        PyObject *times = NULL;
        Py_ssize_t nh = PyTuple_GET_SIZE(self->heads);
        for (Py_ssize_t i = 0; i < nh; i++) {
            PyObject *head = PyTuple_GET_ITEM(self->heads, i);
            if (head == key || (PyUnicode_GET_LENGTH(head) == PyUnicode_GET_LENGTH(key) &&
                                PyUnicode_Compare(head, key) == 0)) {
                times = PyTuple_GET_ITEM(self->leaves, i);
                break;
            }
        }
        if (times && PyList_CheckExact(value)) { /* an array of records (ancestors) */
            if (PUT_LIT(b, "[") < 0)
                return -1;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
                PyObject *x = PyList_GET_ITEM(value, i);
                if (i && PUT_LIT(b, ",") < 0)
                    return -1;
                rc = PyDict_Check(x) ? put_record(self, b, x, times) : put_value(self, b, x, 1);
                if (rc < 0)
                    return rc;
            }
            rc = PUT_LIT(b, "]");
        } else if (times && PyDict_Check(value)) {
            rc = put_record(self, b, value, times);
        } else if (PyLong_Check(value) && named(key, self->top)) {
            rc = put_time(self, b, value);
        } else {
            rc = put_value(self, b, value, 1);
        }
        if (rc < 0)
            return rc;
    }
    return PUT_LIT(b, "}\n");
}

/* the fallback's line, without its newline when `cut` (a Kafka value) */
static PyObject *fallback_line(Encoder *self, PyObject *event, int cut) {
    if (self->fallback == Py_None)
        return Py_NewRef(Py_None);
    PyObject *line = PyObject_CallOneArg(self->fallback, event);
    if (!line || !cut)
        return line;
    if (!PyBytes_Check(line) || PyBytes_GET_SIZE(line) < 1) {
        Py_DECREF(line);
        PyErr_SetString(PyExc_TypeError, "the fallback must return a newline-terminated line");
        return NULL;
    }
    PyObject *value = PyBytes_FromStringAndSize(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line) - 1);
    Py_DECREF(line);
    return value;
}

/* cut: 1 leaves the newline out (one copy, where line()[:-1] made two) */
static PyObject *encode(Encoder *self, PyObject *event, int cut) {
    if (!PyDict_CheckExact(event))
        return fallback_line(self, event, cut);
    Buf b;
    buf_init(&b);
    int rc = put_event(self, &b, event);
    PyObject *out = NULL;
    if (rc == 0) /* exact size, unlike orjson's */
        out = PyBytes_FromStringAndSize(b.data, b.len - (cut ? 1 : 0));
    buf_free(&b);
    if (rc == UNSUPPORTED)
        out = fallback_line(self, event, cut);
    return out;
}

static PyObject *Encoder_line(Encoder *self, PyObject *event) {
    return encode(self, event, 0);
}

static PyObject *Encoder_value(Encoder *self, PyObject *event) {
    return encode(self, event, 1);
}

/* a new tuple of the interned str equal to names' items: the keys the record
   builders write are interned identifiers, so named() matches them by pointer */
static PyObject *interned(PyObject *names) {
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *out = PyTuple_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_CheckExact(name)) {
            PyErr_SetString(PyExc_TypeError, "field names must be str");
            Py_CLEAR(out);
            break;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(out, i, name);
    }
    return out;
}

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwds) {
    PyObject *shared_type, *fragment, *top, *nested, *fallback;
    static char *kwlist[] = {"shared_type", "fragment", "top", "nested", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!O!O:Encoder", kwlist, &shared_type,
                                     &fragment, &PyTuple_Type, &top, &PyTuple_Type, &nested,
                                     &fallback))
        return -1;
    if (!PyType_Check(shared_type)) {
        PyErr_SetString(PyExc_TypeError, "shared_type must be a type");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(nested);
    PyObject *heads = PyTuple_New(n), *leaves = PyTuple_New(n);
    top = interned(top);
    if (!heads || !leaves || !top)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(nested, i), *head, *names;
        if (!PyArg_ParseTuple(pair, "UO!:nested", &head, &PyTuple_Type, &names))
            goto fail;
        Py_INCREF(head);
        PyUnicode_InternInPlace(&head);
        PyTuple_SET_ITEM(heads, i, head);
        if (!(names = interned(names)))
            goto fail;
        PyTuple_SET_ITEM(leaves, i, names);
    }
    Py_XSETREF(self->shared_type, Py_NewRef(shared_type));
    Py_XSETREF(self->fragment, Py_NewRef(fragment));
    Py_XSETREF(self->fallback, Py_NewRef(fallback));
    self->last_sec = MIN_EPOCH_S - 1; /* no second formatted yet */
    Py_XSETREF(self->top, top);
    Py_XSETREF(self->heads, heads);
    Py_XSETREF(self->leaves, leaves);
    Py_XSETREF(self->s_json_text, PyUnicode_InternFromString("json_text"));
    Py_XSETREF(self->s_json_fragment, PyUnicode_InternFromString("json_fragment"));
    if (!self->s_json_text || !self->s_json_fragment)
        return -1;
    return 0;
fail:
    Py_XDECREF(heads);
    Py_XDECREF(leaves);
    Py_XDECREF(top);
    return -1;
}

static void Encoder_dealloc(Encoder *self) {
    Py_XDECREF(self->shared_type);
    Py_XDECREF(self->fragment);
    Py_XDECREF(self->top);
    Py_XDECREF(self->heads);
    Py_XDECREF(self->leaves);
    Py_XDECREF(self->s_json_text);
    Py_XDECREF(self->s_json_fragment);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Encoder_methods[] = {
    {"line", (PyCFunction)Encoder_line, METH_O,
     "The event as a newline-terminated JSON line (bytes); what this does not write, "
     "the fallback's line (or None when the fallback is None)."},
    {"value", (PyCFunction)Encoder_value, METH_O,
     "line() without its newline: a Kafka message's value."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector.encode._jsonline.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(shared_type, fragment, top, nested, fallback): see the module's C "
              "source.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.encode._jsonline",
    "ProcessEvent → JSON line in C; collector.encode.json is its reference.", -1, NULL,
};

PyMODINIT_FUNC PyInit__jsonline(void) {
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
