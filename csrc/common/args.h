/*
 * args.h — a small argument parser for METH_FASTCALL | METH_KEYWORDS
 * functions and vectorcall entries, plus helpers to materialise
 * (args, nargs, kwnames) into a tuple and a dict.
 *
 * Include after <Python.h>.
 */
#ifndef AIOMISC_C_COMMON_ARGS_H
#define AIOMISC_C_COMMON_ARGS_H

#include <string.h>

#include <Python.h>

/* The steps shared by the two parsers below; each returns 0, or -1 with
 * TypeError set. */

static inline int
aio_args_check_positional_(const char *fname, Py_ssize_t nargs,
                           Py_ssize_t max_positional)
{
    if (nargs > max_positional) {
        PyErr_Format(
            PyExc_TypeError,
            "%s() takes at most %zd positional argument%s (%zd given)", fname,
            max_positional, max_positional == 1 ? "" : "s", nargs);
        return -1;
    }
    return 0;
}

/* out[i] = value for the parameter named `key` */
static inline int
aio_args_bind_keyword_(const char *fname, const char *const *names,
                       Py_ssize_t max_args, PyObject *key, PyObject *value,
                       PyObject **out)
{
    const char *key_text = PyUnicode_AsUTF8(key);
    if (key_text == NULL) {
        return -1;
    }
    Py_ssize_t i = 0;
    while (i < max_args && strcmp(names[i], key_text) != 0) {
        i++;
    }
    if (i == max_args) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument '%s'", fname,
                     key_text);
        return -1;
    }
    if (out[i] != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got multiple values for argument '%s'", fname,
                     key_text);
        return -1;
    }
    out[i] = value;
    return 0;
}

static inline int
aio_args_check_required_(const char *fname, const char *const *names,
                         Py_ssize_t min_args, PyObject **out)
{
    for (Py_ssize_t i = 0; i < min_args; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zd)",
                         fname, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* Unpack up to `max_args` parameters named `names` (NULL-terminated is not
 * required; `max_args` entries) from a fastcall signature into `out` (borrowed
 * references; NULL for omitted optional parameters).  The first `min_args`
 * are required; the first `max_positional` may be passed positionally.
 * Returns 0, or -1 with TypeError set. */
static inline int
aio_parse_fastcall(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, const char *const *names,
                   Py_ssize_t min_args, Py_ssize_t max_positional,
                   Py_ssize_t max_args, PyObject **out)
{
    if (aio_args_check_positional_(fname, nargs, max_positional) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < max_args; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        if (aio_args_bind_keyword_(fname, names, max_args,
                                   PyTuple_GET_ITEM(kwnames, k),
                                   args[nargs + k], out) < 0) {
            return -1;
        }
    }
    return aio_args_check_required_(fname, names, min_args, out);
}

/* Same as aio_parse_fastcall for a (tuple, dict) signature (tp_init). */
static inline int
aio_parse_tuple_dict(const char *fname, PyObject *args, PyObject *kwargs,
                     const char *const *names, Py_ssize_t min_args,
                     Py_ssize_t max_positional, Py_ssize_t max_args,
                     PyObject **out)
{
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (aio_args_check_positional_(fname, nargs, max_positional) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < max_args; i++) {
        out[i] = i < nargs ? PyTuple_GET_ITEM(args, i) : NULL;
    }
    if (kwargs != NULL) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            if (aio_args_bind_keyword_(fname, names, max_args, key, value,
                                       out) < 0) {
                return -1;
            }
        }
    }
    return aio_args_check_required_(fname, names, min_args, out);
}

/* A new tuple (prefix, *args); `prefix` may be NULL. */
static inline PyObject *
aio_args_tuple(PyObject *prefix, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t shift = prefix != NULL ? 1 : 0;
    PyObject *tuple = PyTuple_New(nargs + shift);
    if (tuple == NULL) {
        return NULL;
    }
    if (prefix != NULL) {
        PyTuple_SET_ITEM(tuple, 0, Py_NewRef(prefix));
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i + shift, Py_NewRef(args[i]));
    }
    return tuple;
}

/* A new dict of the keyword arguments of a vectorcall, or NULL *without* an
 * exception when there are none (check PyErr_Occurred() on NULL only when
 * kwnames is non-empty). */
static inline PyObject *
aio_kwargs_dict(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nkw == 0) {
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        if (PyDict_SetItem(dict, PyTuple_GET_ITEM(kwnames, k),
                           args[nargs + k]) < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

/* Call `callable(prefix, *args, **kwnames)` through vectorcall; copies the
 * argument vector into a small stack buffer when it fits. */
static inline PyObject *
aio_call_prepend(PyObject *callable, PyObject *prefix, PyObject *const *args,
                 size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t total = nargs + nkw;
    PyObject *small[9];
    PyObject **stack = small;
    if (total + 2 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        stack = PyMem_Malloc((size_t)(total + 2) * sizeof(PyObject *));
        if (stack == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    /* stack[0] is scratch space for PY_VECTORCALL_ARGUMENTS_OFFSET */
    stack[1] = prefix;
    if (total > 0) {
        memcpy(&stack[2], args, (size_t)total * sizeof(PyObject *));
    }
    PyObject *result = PyObject_Vectorcall(
        callable, &stack[1],
        (size_t)(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

/* Call `obj.<name>(prefix, *args, **kwnames)`: how a wrapper reaches an
 * overridden method of the object it serves (a subclass, a patched class). */
static inline PyObject *
aio_call_method_prepend(PyObject *obj, PyObject *name, PyObject *prefix,
                        PyObject *const *args, size_t nargsf,
                        PyObject *kwnames)
{
    PyObject *method = PyObject_GetAttr(obj, name);
    if (method == NULL) {
        return NULL;
    }
    PyObject *result = aio_call_prepend(method, prefix, args, nargsf, kwnames);
    Py_DECREF(method);
    return result;
}

#endif /* AIOMISC_C_COMMON_ARGS_H */
