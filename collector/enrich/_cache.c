/*
 * collector.enrich._cache: the process cache's exec and exit, for the regular
 * case, in C.
 *
 * Why: with the ring walk, decode and encoders in C, the process cache was
 * the largest Python stage left in an exec storm: 4.6 µs of the reader's 5.0
 * per event on real storm records (bench/cache_native_ab.py), nearly all of
 * it frames, attribute reads and the builders' argument passing, not work.
 *
 * What it takes: an exec whose pid is not cached, or cached with the same
 * thread-group start (a fork's entry, an exec without fork; not one the
 * start-up scan read from /proc before its record came), whose lineage
 * is at hand (the parent's entry cached, with its record built); an exit of
 * a cached image whose record it can show as it is (the same tid, ppid and
 * cgroup). It then does exactly what ProcessCache.on_exec_py / on_exit_py
 * do, in the same order, with the same records: the builders' field order
 * is the schema's (it is handed the field names and fills them in order,
 * the template dicts carry them), the exec_id, user name, redaction, clock
 * and container answers come from the same Python objects.
 *
 * Everything else (a cache miss for the parent, which reads /proc; a pid
 * reused or known only with a coarse /proc start; a fork's record not built
 * yet; an exit that changes the record; namespaces) goes to the Python
 * methods, before this has changed anything. process_cache.py stays the
 * reference: tests/unit/test_process_cache_native.py holds the two to the
 * same events and the same cache state on the same records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "_slots.h"
#include <stddef.h>


static const char *const ENTRY_FIELDS[] = {"process", "lineage", "begin_ns", "start_ns", "cloned",
                                           "coarse", "forked", "seen_ns", "end_ns", NULL};
enum { E_PROCESS, E_LINEAGE, E_BEGIN, E_START, E_CLONED, E_COARSE, E_FORKED, E_SEEN, E_END };
static const char *const EXEC_FIELDS[] = {"ktime_ns", "task", "uid", "euid", "gid", "egid", "auid",
                                          "binary", "cwd", "args", "args_truncated", "flags", NULL};
enum { X_KTIME, X_TASK, X_UID, X_EUID, X_GID, X_EGID, X_AUID, X_BINARY, X_CWD, X_ARGS,
       X_TRUNCATED, X_FLAGS };
static const char *const EXIT_FIELDS[] = {"ktime_ns", "task", "exit_status", NULL};
enum { Q_KTIME, Q_TASK, Q_STATUS };
static const char *const TASK_FIELDS[] = {"pid", "tid", "ppid", "start_ns", "cgroup_id", "comm",
                                          NULL};
enum { T_PID, T_TID, T_PPID, T_START, T_CGROUP, T_COMM };

/* the schema's fields, in its order: what the two builders fill (init compares) */
static const char *const PROCESS_FIELDS[] = {
    "exec_id", "parent_exec_id", "pid", "tid", "ppid", "uid", "euid", "gid", "egid", "auid",
    "user", "comm", "binary", "args", "args_truncated", "cwd", "start_time", "cgroup_id",
    "container_id", "namespaces", "flags", NULL};
#define N_PROCESS 21
static const char *const EVENT_FIELDS[] = {"event_type", "time", "node", "process", "parent",
                                           "ancestors", "exit_code", "signal", "core_dumped",
                                           "duration_ns", NULL};
#define N_EVENT 10
enum { V_TYPE, V_TIME, V_NODE, V_PROCESS, V_PARENT, V_ANCESTORS, V_CODE, V_SIGNAL, V_CORE,
       V_DURATION };

/*
 * The redactor's keyword screen (collector.filter.redact.SCREEN_KEYWORDS): argv in
 * which no keyword occurs, lower-cased, comes back from the redactor unchanged, so
 * the call is skipped. The same question as its `_KEYWORDS.search("\0".join(argv)
 * .lower())`, answered here for ASCII argv only (no keyword holds a NUL, so none
 * spans two arguments; a non-ASCII character may lower-case to ASCII, e.g. the
 * Kelvin sign to k): anything else is the redactor's to decide.
 */
#define SCREEN_MAX 32
typedef struct {
    int n;
    unsigned int first[256]; /* lower-case first byte -> bit mask of keywords */
    Py_ssize_t len[SCREEN_MAX];
    char *word[SCREEN_MAX];
} Screen;

static inline unsigned char ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static void screen_free(Screen *sc) {
    for (int i = 0; i < sc->n; i++)
        PyMem_Free(sc->word[i]);
    sc->n = 0;
}

/* the keywords (a tuple of lower-case ASCII str) into sc; None: no screen */
static int screen_init(Screen *sc, PyObject *keywords) {
    memset(sc, 0, sizeof(*sc));
    if (keywords == Py_None)
        return 0;
    if (!PyTuple_Check(keywords) || PyTuple_GET_SIZE(keywords) > SCREEN_MAX) {
        PyErr_SetString(PyExc_TypeError, "redact_screen: a tuple of at most 32 keywords");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keywords); i++) {
        PyObject *w = PyTuple_GET_ITEM(keywords, i);
        Py_ssize_t n;
        const char *text = PyUnicode_Check(w) ? PyUnicode_AsUTF8AndSize(w, &n) : NULL;
        int ok = text && n > 0 && PyUnicode_IS_ASCII(w);
        for (Py_ssize_t j = 0; ok && j < n; j++)
            ok = ascii_lower((unsigned char)text[j]) == (unsigned char)text[j];
        if (!ok) {
            screen_free(sc);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "redact_screen: non-empty lower-case ASCII");
            return -1;
        }
        sc->word[sc->n] = PyMem_Malloc((size_t)n);
        if (!sc->word[sc->n]) {
            screen_free(sc);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(sc->word[sc->n], text, (size_t)n);
        sc->len[sc->n] = n;
        sc->first[(unsigned char)text[0]] |= 1u << sc->n;
        sc->n++;
    }
    return 0;
}

/* 1: a keyword occurs in the argv (or the screen cannot tell: not a list of ASCII
   str); 0: none does */
static int screen_hit(const Screen *sc, PyObject *argv) {
    if (!PyList_CheckExact(argv))
        return 1;
    for (Py_ssize_t a = 0; a < PyList_GET_SIZE(argv); a++) {
        PyObject *arg = PyList_GET_ITEM(argv, a);
        if (!PyUnicode_CheckExact(arg) || !PyUnicode_IS_ASCII(arg))
            return 1;
        const unsigned char *d = PyUnicode_1BYTE_DATA(arg);
        Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned int m = sc->first[ascii_lower(d[i])];
            while (m) {
                int k = __builtin_ctz(m);
                m &= m - 1;
                Py_ssize_t len = sc->len[k], j = 1;
                if (len > n - i)
                    continue;
                while (j < len && ascii_lower(d[i + j]) == (unsigned char)sc->word[k][j])
                    j++;
                if (j == len)
                    return 1;
            }
        }
    }
    return 0;
}

typedef struct {
    PyObject_HEAD
    Slots entry, exec, exit, task;
    PyObject *cache;                  /* the ProcessCache */
    PyObject *exec_py, *exit_py;      /* its reference methods, bound */
    PyObject *container_py;           /* its _container, bound */
    PyObject *shared;                 /* SharedRecord */
    PyObject *process_keys[N_PROCESS], *event_keys[N_EVENT];
    PyObject *process_template, *event_template; /* the keys in order, values None */
    PyObject *node, *clock, *redact, *cgroups, *resolver_type;
    PyObject *make_exec_id, *user_name, *exit_fields;
    PyObject *exec_type, *exit_type;
    PyObject *clock_type; /* BootClock: its offset is read here; another clock is called */
    long long ancestors, max_entries, ended_max, refresh_ns;
    Screen screen; /* the redactor's keyword screen (n == 0: none, always call it) */
    PyObject *s_live, *s_ended, *s_ended_before, *s_offset, *s_sampled_at, *s_to_wall_ns,
        *s_answers, *s_stats, *s_evictions, *s_popitem;
} Paths;


/* keys of the schema's record, checked against the order this fills */
static int keys_init(PyObject **keys, PyObject **template, PyObject *names,
                     const char *const *want, Py_ssize_t n) {
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != n) {
        PyErr_Format(PyExc_TypeError, "collector.enrich._cache fills %zd fields from %s", n,
                     want[0]);
        return -1;
    }
    *template = PyDict_New();
    if (!*template)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_CheckExact(name) || PyUnicode_CompareWithASCIIString(name, want[i]) != 0) {
            PyErr_Format(PyExc_TypeError, "the schema's field %zd is %R; collector.enrich._cache "
                         "fills %s there: rebuild it with the schema", i, name, want[i]);
            return -1;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        keys[i] = name;
        if (PyDict_SetItem(*template, name, Py_None) < 0)
            return -1;
    }
    return 0;
}

/* a slot's value as a C integer (-1 with an error set when it is not one) */
static inline long long as_ll(PyObject *o) { return PyLong_AsLongLong(o); }

/* a wall-clock time for a boot time: BootClock.to_wall_ns, its offset read here
   while it is fresh (the method itself refreshes it) */
static PyObject *to_wall(Paths *self, PyObject *boot) {
    if (Py_IS_TYPE(self->clock, (PyTypeObject *)self->clock_type)) {
        PyObject *offset = PyObject_GetAttr(self->clock, self->s_offset);
        PyObject *sampled = offset ? PyObject_GetAttr(self->clock, self->s_sampled_at) : NULL;
        if (!sampled) {
            Py_XDECREF(offset);
            return NULL;
        }
        long long b = as_ll(boot), off = as_ll(offset), at = as_ll(sampled);
        Py_DECREF(offset);
        Py_DECREF(sampled);
        if (PyErr_Occurred())
            return NULL;
        if (b - at <= self->refresh_ns)
            return PyLong_FromLongLong(b + off);
    }
    return PyObject_CallMethodOneArg(self->clock, self->s_to_wall_ns, boot);
}

/* lineage of a parent entry (ProcessCache._lineage); NULL without an error:
   its record is not built yet (Python builds it) */
static PyObject *lineage_of(Paths *self, PyObject *parent) {
    if (!Py_IS_TYPE(parent, self->entry.type))
        return NULL;
    PyObject *process = SLOT(parent, self->entry, E_PROCESS);
    if (!process || process == Py_None)
        return NULL;
    if (!self->ancestors)
        return PyTuple_Pack(1, process);
    PyObject *older = SLOT(parent, self->entry, E_LINEAGE);
    if (!older || !PyTuple_CheckExact(older))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(older);
    if (n > self->ancestors)
        n = (Py_ssize_t)self->ancestors;
    PyObject *out = PyTuple_New(n + 1);
    if (!out)
        return NULL;
    Py_INCREF(process);
    PyTuple_SET_ITEM(out, 0, process);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(older, i);
        Py_INCREF(p);
        PyTuple_SET_ITEM(out, i + 1, p);
    }
    return out;
}

/* ProcessCache._container: the resolver's remembered answer, or its Python */
static PyObject *container(Paths *self, PyObject *cgroup_id, PyObject *pid, PyObject *lineage) {
    if (Py_IS_TYPE(self->cgroups, (PyTypeObject *)self->resolver_type)) {
        PyObject *answers = PyObject_GetAttr(self->cgroups, self->s_answers);
        if (!answers)
            return NULL;
        PyObject *found = PyDict_CheckExact(answers) ? PyDict_GetItemWithError(answers, cgroup_id)
                                                     : NULL;
        Py_DECREF(answers);
        if (found && found != Py_None) {
            Py_INCREF(found);
            return found;
        }
        if (found == Py_None) {
            if (PyTuple_GET_SIZE(lineage)) {
                PyObject *parent = PyTuple_GET_ITEM(lineage, 0);
                PyObject *pcg = PyObject_GetItem(parent, self->process_keys[17]); /* cgroup_id */
                if (!pcg)
                    return NULL;
                int same = PyObject_RichCompareBool(pcg, cgroup_id, Py_EQ);
                Py_DECREF(pcg);
                if (same < 0)
                    return NULL;
                if (same)
                    return PyObject_GetItem(parent, self->process_keys[18]); /* container_id */
            }
            Py_RETURN_NONE;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    PyObject *args[3] = {cgroup_id, pid, lineage};
    return PyObject_Vectorcall(self->container_py, args, 3, NULL);
}

/* ProcessCache._ended_image */
static int ended_image(Paths *self, PyObject *pid, PyObject *entry, PyObject *end_ns) {
    PyObject **end = &SLOT(entry, self->entry, E_END);
    Py_INCREF(end_ns);
    Py_XSETREF(*end, end_ns);
    PyObject *ended = PyObject_GetAttr(self->cache, self->s_ended);
    if (!ended)
        return -1;
    if (PyObject_SetItem(ended, pid, entry) < 0) {
        Py_DECREF(ended);
        return -1;
    }
    Py_ssize_t n = PyObject_Length(ended);
    int rc = n < 0 ? -1 : 0;
    if (n >= self->ended_max) {
        PyObject *fresh = PyDict_New();
        rc = (!fresh || PyObject_SetAttr(self->cache, self->s_ended_before, ended) < 0 ||
              PyObject_SetAttr(self->cache, self->s_ended, fresh) < 0)
                 ? -1
                 : 0;
        Py_XDECREF(fresh);
    }
    Py_DECREF(ended);
    return rc;
}

/* ProcessCache._put (live is the OrderedDict: writes go through its mapping methods) */
static int put(Paths *self, PyObject *live, PyObject *pid, PyObject *entry) {
    int has = PyDict_Contains(live, pid);
    if (has < 0 || (has && PyObject_DelItem(live, pid) < 0) ||
        PyObject_SetItem(live, pid, entry) < 0)
        return -1;
    Py_ssize_t n = PyObject_Length(live);
    if (n < 0)
        return -1;
    if (n > self->max_entries) {
        PyObject *old = PyObject_CallMethodOneArg(live, self->s_popitem, Py_False);
        if (!old)
            return -1;
        Py_DECREF(old);
        PyObject *stats = PyObject_GetAttr(self->cache, self->s_stats);
        PyObject *count = stats ? PyObject_GetAttr(stats, self->s_evictions) : NULL;
        PyObject *one = PyLong_FromLong(1);
        PyObject *more = count && one ? PyNumber_Add(count, one) : NULL;
        int rc = more ? PyObject_SetAttr(stats, self->s_evictions, more) : -1;
        Py_XDECREF(one);
        Py_XDECREF(more);
        Py_XDECREF(count);
        Py_XDECREF(stats);
        return rc;
    }
    return 0;
}

/* a new Entry with its nine slots set (the dataclass's own defaults after start_ns) */
static PyObject *new_entry(Paths *self, PyObject *process, PyObject *lineage, PyObject *begin_ns,
                           PyObject *start_ns) {
    PyObject *e = self->entry.type->tp_alloc(self->entry.type, 0);
    if (!e)
        return NULL;
    PyObject *zero = PyLong_FromLong(0);
    PyObject *vals[9] = {process, lineage, begin_ns, start_ns, Py_False, Py_False, Py_None,
                         zero, zero};
    for (int i = 0; i < 9; i++) {
        Py_INCREF(vals[i]);
        SLOT(e, self->entry, i) = vals[i];
    }
    Py_DECREF(zero);
    return e;
}

/* a ProcessEvent from the template (ProcessCache._event / records.event_record) */
static PyObject *new_event(Paths *self, PyObject *type, PyObject *time, PyObject *process,
                           PyObject *lineage, PyObject *ancestors) {
    PyObject *event = PyDict_Copy(self->event_template);
    if (!event)
        return NULL;
    PyObject *parent = PyTuple_GET_SIZE(lineage) ? PyTuple_GET_ITEM(lineage, 0) : Py_None;
    if (PyDict_SetItem(event, self->event_keys[V_TYPE], type) < 0 ||
        PyDict_SetItem(event, self->event_keys[V_TIME], time) < 0 ||
        PyDict_SetItem(event, self->event_keys[V_NODE], self->node) < 0 ||
        PyDict_SetItem(event, self->event_keys[V_PROCESS], process) < 0 ||
        PyDict_SetItem(event, self->event_keys[V_PARENT], parent) < 0 ||
        (ancestors && PyDict_SetItem(event, self->event_keys[V_ANCESTORS], ancestors) < 0)) {
        Py_DECREF(event);
        return NULL;
    }
    return event;
}

/* the lineage an exec gets, as on_exec_py finds it; NULL without an error: the
   Python method's case. *previous is the entry the exec replaces (borrowed) */
static PyObject *exec_lineage(Paths *self, PyObject *live, PyObject *task, PyObject *ktime,
                              PyObject **previous) {
    PyObject *pid = SLOT(task, self->task, T_PID);
    PyObject *prev = PyDict_GetItemWithError(live, pid);
    *previous = prev;
    if (prev) {
        if (!Py_IS_TYPE(prev, self->entry.type))
            return NULL;
        int same = PyObject_RichCompareBool(SLOT(prev, self->entry, E_START),
                                            SLOT(task, self->task, T_START), Py_EQ);
        if (same <= 0) /* a coarse /proc start, or a reused pid */
            return NULL;
        int before_seen = PyObject_RichCompareBool(ktime, SLOT(prev, self->entry, E_SEEN), Py_LT);
        if (before_seen < 0)
            return NULL;
        if (before_seen) /* an exec the start-up scan showed: rare, Python's */
            return NULL;
        if (SLOT(prev, self->entry, E_CLONED) == Py_True) {
            PyObject *lineage = SLOT(prev, self->entry, E_LINEAGE);
            if (!PyTuple_CheckExact(lineage))
                return NULL;
            Py_INCREF(lineage);
            return lineage;
        }
        return lineage_of(self, prev);
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *ppid = SLOT(task, self->task, T_PPID);
    long long pp = as_ll(ppid);
    if (pp == -1 && PyErr_Occurred())
        return NULL;
    if (pp <= 0)
        return PyTuple_New(0);
    PyObject *parent = PyDict_GetItemWithError(live, ppid);
    if (!parent) /* not cached: Python reads /proc */
        return NULL;
    return lineage_of(self, parent);
}

static PyObject *exec_event(Paths *self, PyObject *rec) {
    PyObject *task = SLOT(rec, self->exec, X_TASK);
    PyObject *ktime = SLOT(rec, self->exec, X_KTIME);
    PyObject *live = PyObject_GetAttr(self->cache, self->s_live);
    if (!live)
        return NULL;
    PyObject *previous = NULL;
    PyObject *lineage = exec_lineage(self, live, task, ktime, &previous);
    if (!lineage) {
        Py_DECREF(live);
        return PyErr_Occurred() ? NULL : PyObject_CallOneArg(self->exec_py, rec);
    }
    Py_XINCREF(previous);
    PyObject *pid = SLOT(task, self->task, T_PID), *cgroup_id = SLOT(task, self->task, T_CGROUP);
    PyObject *vals[N_PROCESS] = {NULL};
    PyObject *process = NULL, *entry = NULL, *event = NULL, *time = NULL, *ancestors = NULL;
    PyObject *id_args[3] = {self->node, ktime, pid};
    vals[0] = PyObject_Vectorcall(self->make_exec_id, id_args, 3, NULL);
    if (!vals[0])
        goto done;
    if (PyTuple_GET_SIZE(lineage)) {
        vals[1] = PyObject_GetItem(PyTuple_GET_ITEM(lineage, 0), self->process_keys[0]);
        if (!vals[1])
            goto done;
    } else {
        vals[1] = Py_NewRef(Py_None);
    }
    vals[2] = Py_NewRef(pid);
    vals[3] = Py_NewRef(SLOT(task, self->task, T_TID));
    vals[4] = Py_NewRef(SLOT(task, self->task, T_PPID));
    vals[5] = Py_NewRef(SLOT(rec, self->exec, X_UID));
    vals[6] = Py_NewRef(SLOT(rec, self->exec, X_EUID));
    vals[7] = Py_NewRef(SLOT(rec, self->exec, X_GID));
    vals[8] = Py_NewRef(SLOT(rec, self->exec, X_EGID));
    vals[9] = Py_NewRef(SLOT(rec, self->exec, X_AUID));
    vals[10] = PyObject_CallOneArg(self->user_name, vals[5]);
    if (!vals[10])
        goto done;
    vals[11] = Py_NewRef(SLOT(task, self->task, T_COMM));
    vals[12] = Py_NewRef(SLOT(rec, self->exec, X_BINARY));
    PyObject *args = SLOT(rec, self->exec, X_ARGS);
    vals[13] = self->redact && (!self->screen.n || screen_hit(&self->screen, args))
                   ? PyObject_CallOneArg(self->redact, args)
                   : Py_NewRef(args);
    if (!vals[13])
        goto done;
    vals[14] = Py_NewRef(SLOT(rec, self->exec, X_TRUNCATED));
    vals[15] = Py_NewRef(SLOT(rec, self->exec, X_CWD));
    vals[16] = to_wall(self, SLOT(task, self->task, T_START));
    if (!vals[16])
        goto done;
    vals[17] = Py_NewRef(cgroup_id);
    vals[18] = container(self, cgroup_id, pid, lineage);
    if (!vals[18])
        goto done;
    vals[19] = Py_NewRef(Py_None); /* namespaces: a cache that reads them is not taken here */
    vals[20] = Py_NewRef(SLOT(rec, self->exec, X_FLAGS));
    process = PyObject_CallNoArgs(self->shared);
    if (!process || PyDict_Update(process, self->process_template) < 0)
        goto done;
    for (int i = 0; i < N_PROCESS; i++)
        if (PyDict_SetItem(process, self->process_keys[i], vals[i]) < 0)
            goto done;
    if (previous && ended_image(self, pid, previous, ktime) < 0)
        goto done;
    entry = new_entry(self, process, lineage, ktime, SLOT(task, self->task, T_START));
    if (!entry || put(self, live, pid, entry) < 0)
        goto done;
    time = to_wall(self, ktime);
    if (!time)
        goto done;
    if (self->ancestors && PyTuple_GET_SIZE(lineage)) {
        ancestors = PyTuple_GetSlice(lineage, 1, PyTuple_GET_SIZE(lineage));
        PyObject *as_list = ancestors ? PySequence_List(ancestors) : NULL;
        Py_XSETREF(ancestors, as_list);
        if (!ancestors)
            goto done;
    } else if (self->ancestors) {
        ancestors = PyList_New(0);
        if (!ancestors)
            goto done;
    }
    event = new_event(self, self->exec_type, time, process, lineage, ancestors);
done:
    for (int i = 0; i < N_PROCESS; i++)
        Py_XDECREF(vals[i]);
    Py_XDECREF(process);
    Py_XDECREF(entry);
    Py_XDECREF(time);
    Py_XDECREF(ancestors);
    Py_XDECREF(previous);
    Py_DECREF(lineage);
    Py_DECREF(live);
    return event;
}

static PyObject *exit_event(Paths *self, PyObject *rec) {
    PyObject *task = SLOT(rec, self->exit, Q_TASK);
    PyObject *ktime = SLOT(rec, self->exit, Q_KTIME);
    PyObject *pid = SLOT(task, self->task, T_PID);
    PyObject *live = PyObject_GetAttr(self->cache, self->s_live);
    if (!live)
        return NULL;
    PyObject *entry = PyDict_GetItemWithError(live, pid);
    PyObject *process = NULL;
    int regular = 0;
    if (entry && Py_IS_TYPE(entry, self->entry.type)) {
        process = SLOT(entry, self->entry, E_PROCESS);
        int same = PyObject_RichCompareBool(SLOT(entry, self->entry, E_START),
                                            SLOT(task, self->task, T_START), Py_EQ);
        regular = same > 0 && process && PyDict_Check(process) &&
                  PyTuple_CheckExact(SLOT(entry, self->entry, E_LINEAGE));
        /* the record shows this exit as it is: the same tid, ppid and cgroup */
        static const int task_at[3] = {T_TID, T_PPID, T_CGROUP};
        static const int key_at[3] = {3, 4, 17};
        for (int i = 0; regular > 0 && i < 3; i++) {
            PyObject *was = PyDict_GetItemWithError(process, self->process_keys[key_at[i]]);
            regular = was ? PyObject_RichCompareBool(was, SLOT(task, self->task, task_at[i]),
                                                     Py_EQ)
                          : 0;
        }
        if (same < 0)
            regular = -1;
    }
    if (regular < 0 || PyErr_Occurred()) {
        Py_DECREF(live);
        return NULL;
    }
    if (!regular) {
        Py_DECREF(live);
        return PyObject_CallOneArg(self->exit_py, rec);
    }
    Py_INCREF(entry);
    Py_INCREF(process);
    PyObject *event = NULL, *time = NULL, *fields = NULL;
    if (PyObject_DelItem(live, pid) < 0 || ended_image(self, pid, entry, ktime) < 0)
        goto done;
    time = to_wall(self, ktime);
    if (!time)
        goto done;
    PyObject *lineage = SLOT(entry, self->entry, E_LINEAGE);
    event = new_event(self, self->exit_type, time, process, lineage, NULL);
    if (!event)
        goto done;
    PyObject *status_o = SLOT(rec, self->exit, Q_STATUS);
    long long status = as_ll(status_o);
    if (status == -1 && PyErr_Occurred())
        goto fail;
    if (status & 0x7F) { /* a signal: its name is collector.decode's */
        fields = PyObject_CallOneArg(self->exit_fields, status_o);
        if (!fields || !PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != 3)
            goto fail;
        for (int i = 0; i < 3; i++)
            if (PyDict_SetItem(event, self->event_keys[V_CODE + i],
                               PyTuple_GET_ITEM(fields, i)) < 0)
                goto fail;
    } else {
        PyObject *code = PyLong_FromLongLong((status >> 8) & 0xFF);
        int rc = code ? PyDict_SetItem(event, self->event_keys[V_CODE], code) : -1;
        Py_XDECREF(code);
        if (rc < 0 || PyDict_SetItem(event, self->event_keys[V_CORE], Py_False) < 0)
            goto fail;
    }
    long long k = as_ll(ktime), begin = as_ll(SLOT(entry, self->entry, E_BEGIN));
    if (PyErr_Occurred())
        goto fail;
    PyObject *duration = PyLong_FromLongLong(k > begin ? k - begin : 0);
    int rc = duration ? PyDict_SetItem(event, self->event_keys[V_DURATION], duration) : -1;
    Py_XDECREF(duration);
    if (rc < 0)
        goto fail;
    goto done;
fail:
    Py_CLEAR(event);
done:
    Py_XDECREF(fields);
    Py_XDECREF(time);
    Py_DECREF(process);
    Py_DECREF(entry);
    Py_DECREF(live);
    return event;
}

static PyObject *Paths_on_exec(Paths *self, PyObject *rec) {
    if (!Py_IS_TYPE(rec, self->exec.type) || !SLOT(rec, self->exec, X_TASK) ||
        !Py_IS_TYPE(SLOT(rec, self->exec, X_TASK), self->task.type))
        return PyObject_CallOneArg(self->exec_py, rec);
    return exec_event(self, rec);
}

static PyObject *Paths_on_exit(Paths *self, PyObject *rec) {
    if (!Py_IS_TYPE(rec, self->exit.type) || !SLOT(rec, self->exit, Q_TASK) ||
        !Py_IS_TYPE(SLOT(rec, self->exit, Q_TASK), self->task.type))
        return PyObject_CallOneArg(self->exit_py, rec);
    return exit_event(self, rec);
}

static int intern(PyObject **at, const char *s) {
    *at = PyUnicode_InternFromString(s);
    return *at ? 0 : -1;
}

static int Paths_init(Paths *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"cache", "types", "names", "process_fields", "event_fields",
                             "shared", "exec_py", "exit_py", "container_py", "node", "clock",
                             "clock_type", "refresh_ns", "redact", "cgroups", "resolver_type",
                             "make_exec_id", "user_name", "exit_fields", "exec_type",
                             "exit_type", "ancestors", "max_entries", "ended_max",
                             "redact_screen", NULL};
    PyObject *types, *names, *process_fields, *event_fields, *redact_screen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "OO!O!OOOOOOOOOLOOOOOOOOLLL|O:Paths", kwlist, &self->cache, &PyTuple_Type,
            &types, &PyTuple_Type, &names, &process_fields, &event_fields, &self->shared,
            &self->exec_py, &self->exit_py, &self->container_py, &self->node, &self->clock,
            &self->clock_type, &self->refresh_ns, &self->redact, &self->cgroups,
            &self->resolver_type, &self->make_exec_id, &self->user_name, &self->exit_fields,
            &self->exec_type, &self->exit_type, &self->ancestors, &self->max_entries,
            &self->ended_max, &redact_screen))
        return -1;
    PyObject **refs[] = {&self->cache, &self->shared, &self->exec_py, &self->exit_py,
                         &self->container_py, &self->node, &self->clock, &self->clock_type,
                         &self->redact, &self->cgroups, &self->resolver_type,
                         &self->make_exec_id, &self->user_name, &self->exit_fields,
                         &self->exec_type, &self->exit_type};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
        Py_INCREF(*refs[i]);
    if (self->redact == Py_None)
        Py_CLEAR(self->redact);
    screen_free(&self->screen); /* __init__ called again */
    if (screen_init(&self->screen, redact_screen) < 0)
        return -1;
    if (!PyType_Check(self->shared) ||
        !PyType_IsSubtype((PyTypeObject *)self->shared, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "shared: a dict subclass (SharedRecord)");
        return -1;
    }
    if (PyTuple_GET_SIZE(types) != 4 || PyTuple_GET_SIZE(names) != 4) {
        PyErr_SetString(PyExc_TypeError, "types and names: (Entry, ExecRecord, ExitRecord, "
                                         "TaskIds)");
        return -1;
    }
    Slots *slots[4] = {&self->entry, &self->exec, &self->exit, &self->task};
    const char *const *want[4] = {ENTRY_FIELDS, EXEC_FIELDS, EXIT_FIELDS, TASK_FIELDS};
    for (int i = 0; i < 4; i++)
        if (slots_init(slots[i], PyTuple_GET_ITEM(types, i), PyTuple_GET_ITEM(names, i),
                       want[i], "collector.enrich._cache") < 0)
            return -1;
    if (keys_init(self->process_keys, &self->process_template, process_fields, PROCESS_FIELDS,
                  N_PROCESS) < 0 ||
        keys_init(self->event_keys, &self->event_template, event_fields, EVENT_FIELDS,
                  N_EVENT) < 0)
        return -1;
    if (intern(&self->s_live, "_live") < 0 || intern(&self->s_ended, "_ended") < 0 ||
        intern(&self->s_ended_before, "_ended_before") < 0 ||
        intern(&self->s_offset, "_offset") < 0 || intern(&self->s_sampled_at, "_sampled_at") < 0 ||
        intern(&self->s_to_wall_ns, "to_wall_ns") < 0 || intern(&self->s_answers, "_answers") < 0 ||
        intern(&self->s_stats, "stats") < 0 || intern(&self->s_evictions, "evictions") < 0 ||
        intern(&self->s_popitem, "popitem") < 0)
        return -1;
    return 0;
}

static int Paths_traverse(Paths *self, visitproc visit, void *arg) {
    Py_VISIT(self->cache);
    Py_VISIT(self->exec_py);
    Py_VISIT(self->exit_py);
    Py_VISIT(self->container_py);
    Py_VISIT(self->clock);
    Py_VISIT(self->redact);
    Py_VISIT(self->cgroups);
    Py_VISIT(self->user_name);
    Py_VISIT(self->make_exec_id);
    Py_VISIT(self->exit_fields);
    return 0;
}

static int Paths_clear(Paths *self) {
    Py_CLEAR(self->cache);
    Py_CLEAR(self->exec_py);
    Py_CLEAR(self->exit_py);
    Py_CLEAR(self->container_py);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->redact);
    Py_CLEAR(self->cgroups);
    Py_CLEAR(self->user_name);
    Py_CLEAR(self->make_exec_id);
    Py_CLEAR(self->exit_fields);
    return 0;
}

static void Paths_dealloc(Paths *self) {
    PyObject_GC_UnTrack(self);
    Paths_clear(self);
    Slots *slots[4] = {&self->entry, &self->exec, &self->exit, &self->task};
    for (int i = 0; i < 4; i++)
        Py_XDECREF(slots[i]->type);
    for (int i = 0; i < N_PROCESS; i++)
        Py_XDECREF(self->process_keys[i]);
    for (int i = 0; i < N_EVENT; i++)
        Py_XDECREF(self->event_keys[i]);
    PyObject *rest[] = {self->process_template, self->event_template, self->shared, self->node,
                        self->clock_type, self->resolver_type, self->exec_type, self->exit_type,
                        self->s_live, self->s_ended, self->s_ended_before, self->s_offset,
                        self->s_sampled_at, self->s_to_wall_ns, self->s_answers, self->s_stats,
                        self->s_evictions, self->s_popitem};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        Py_XDECREF(rest[i]);
    screen_free(&self->screen);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Paths_methods[] = {
    {"on_exec", (PyCFunction)Paths_on_exec, METH_O,
     "ProcessCache.on_exec_py's event, built here for the regular case."},
    {"on_exit", (PyCFunction)Paths_on_exit, METH_O,
     "ProcessCache.on_exit_py's event, built here for the regular case."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PathsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector.enrich._cache.Paths",
    .tp_basicsize = sizeof(Paths),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Paths(cache, ...): the regular exec and exit of one ProcessCache; see the "
              "module's C source.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Paths_init,
    .tp_traverse = (traverseproc)Paths_traverse,
    .tp_clear = (inquiry)Paths_clear,
    .tp_dealloc = (destructor)Paths_dealloc,
    .tp_methods = Paths_methods,
};

/* the screen alone, for tests/unit/test_redact_screen.py */
static PyObject *screen(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "screen(argv, keywords)");
        return NULL;
    }
    Screen sc;
    if (screen_init(&sc, args[1]) < 0)
        return NULL;
    int hit = screen_hit(&sc, args[0]);
    screen_free(&sc);
    return PyBool_FromLong(hit);
}

static PyMethodDef module_methods[] = {
    {"screen", (PyCFunction)(void (*)(void))screen, METH_FASTCALL,
     "screen(argv, keywords) -> bool: True when the redactor must see argv (a keyword "
     "occurs, lower-cased, or argv is not a list of ASCII str)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "collector.enrich._cache",
    "The process cache's regular exec and exit in C; collector.enrich.process_cache is its "
    "reference.",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit__cache(void) {
    if (PyType_Ready(&PathsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Paths", (PyObject *)&PathsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
