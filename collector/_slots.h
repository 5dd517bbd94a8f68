/*
 * The slots of a slots=True dataclass, found by their member descriptors, so C
 * can read and fill them at their offsets; shared by collector/_decode.c and
 * collector/enrich/_cache.c. slots_init refuses a class whose fields are not
 * the ones the C side names, in that order (rebuild it with the dataclass).
 */
#ifndef COLLECTOR_SLOTS_H
#define COLLECTOR_SLOTS_H

#include <Python.h>
#include <structmember.h>

#define MAX_FIELDS 16
typedef struct {
    PyTypeObject *type;
    Py_ssize_t n;
    Py_ssize_t offset[MAX_FIELDS];
} Slots;

/* slot i of obj (borrowed; NULL if never set) */
#define SLOT(obj, s, i) (*(PyObject **)((char *)(obj) + (s).offset[i]))

/* who: the C module, for the error messages; want: the field names, NULL-ended */
static int slots_init(Slots *s, PyObject *type, PyObject *names, const char *const *want,
                      const char *who) {
    Py_ssize_t n = 0;
    while (want[n])
        n++;
    if (n > MAX_FIELDS || !PyType_Check(type) || !PyTuple_Check(names) ||
        PyTuple_GET_SIZE(names) != n) {
        PyErr_Format(PyExc_TypeError, "%s reads %zd fields of %s", who, n, want[0]);
        return -1;
    }
    s->type = (PyTypeObject *)type; /* its reference is taken at the end */
    s->n = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, want[i]) != 0) {
            PyErr_Format(PyExc_TypeError, "%s's field %zd is %R; %s reads %s there: rebuild it "
                         "with the dataclass", s->type->tp_name, i, name, who, want[i]);
            return -1;
        }
        PyObject *d = PyDict_GetItemWithError(s->type->tp_dict, name);
        if (!d || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s.%U is not a slot", s->type->tp_name, name);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%s.%U is not a plain object slot", s->type->tp_name,
                         name);
            return -1;
        }
        s->offset[i] = m->offset;
    }
    Py_INCREF(type);
    return 0;
}

#endif
