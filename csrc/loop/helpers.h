/* loop/helpers.h — argument parsing and small lookups.
 *
 * A unit of the aiomisc_c._loop translation unit: included once,
 * by loop/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_LOOP_HELPERS_H
#define AIOMISC_C_LOOP_HELPERS_H

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/*
 * Parse positional-or-keyword arguments of a METH_FASTCALL | METH_KEYWORDS
 * function into out[0..nnames): borrowed references, NULL when not given.
 * Error messages are the ones CPython gives for a Python function, so both
 * twins fail the same way (hence not aio_parse_fastcall from common/args.h,
 * whose messages differ).
 */
static int
parse_fastcall(const char *fname, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames, const char *const *names, Py_ssize_t nnames,
               PyObject **out)
{
    for (Py_ssize_t i = 0; i < nnames; i++) {
        out[i] = NULL;
    }
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 0 to %zd positional arguments "
                     "but %zd were given",
                     fname, nnames, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t slot = -1;
        for (Py_ssize_t j = 0; j < nnames; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                slot = j;
                break;
            }
        }
        if (slot < 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, key);
            return -1;
        }
        if (out[slot] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         fname, names[slot]);
            return -1;
        }
        out[slot] = args[nargs + k];
    }
    return 0;
}

/* getattr(obj, name, None): new reference, NULL only on errors other than
   AttributeError. */
static PyObject *
getattr_or_none(PyObject *obj, PyObject *name)
{
    PyObject *value;
    if (aio_getattr_optional(obj, name, &value) == 0) {
        Py_RETURN_NONE;
    }
    return value;
}

/* sys.modules[name] if present, else import it.  New reference. */
static PyObject *
import_module(PyObject *name)
{
    PyObject *module = PyImport_GetModule(name);
    if (module != NULL || PyErr_Occurred()) {
        return module;
    }
    return PyImport_Import(name);
}

#endif /* AIOMISC_C_LOOP_HELPERS_H */
