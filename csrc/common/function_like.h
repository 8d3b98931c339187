/*
 * function_like.h — what a C callable needs to pass for a (coroutine)
 * function: inspect before 3.12 accepts an object with `__code__`,
 * `__defaults__` and `__kwdefaults__` as function-like and reads the
 * CO_COROUTINE flag from its `__code__`.  The wrapped callable's values are
 * used when they have the right type.
 *
 * Include after <Python.h> and compat.h.
 */
#ifndef AIOMISC_C_COMMON_FUNCTION_LIKE_H
#define AIOMISC_C_COMMON_FUNCTION_LIKE_H

#include <Python.h>

#include "common/compat.h"

/* func.__code__ when it is a coroutine's code object, else `fallback` (a
 * coroutine code object standing in for callables without one). */
static inline PyObject *
aio_coroutine_code(PyObject *func, PyObject *str_code, PyObject *fallback)
{
    PyObject *code;
    int found = aio_getattr_optional(func, str_code, &code);
    if (found < 0) {
        return NULL;
    }
    if (found && PyCode_Check(code) &&
        (((PyCodeObject *)code)->co_flags & CO_COROUTINE)) {
        return code;
    }
    Py_XDECREF(code);
    return Py_NewRef(fallback);
}

/* func.<name> when `check` accepts it, else None */
static inline PyObject *
aio_func_attr_or_none(PyObject *func, PyObject *name,
                      int (*check)(PyObject *))
{
    PyObject *value;
    int found = aio_getattr_optional(func, name, &value);
    if (found < 0) {
        return NULL;
    }
    if (found && check(value)) {
        return value;
    }
    Py_XDECREF(value);
    Py_RETURN_NONE;
}

static inline int
aio_is_tuple(PyObject *o)
{
    return PyTuple_Check(o);
}

static inline int
aio_is_dict(PyObject *o)
{
    return PyDict_Check(o);
}

#endif /* AIOMISC_C_COMMON_FUNCTION_LIKE_H */
