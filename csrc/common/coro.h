/* coro.h — what the C awaitables do at their boundary, as a coroutine does.
 *
 * Header only.  Include after common/compat.h. */
#ifndef AIOMISC_C_COMMON_CORO_H
#define AIOMISC_C_COMMON_CORO_H

#include <Python.h>

#include "common/compat.h"

/* PEP 479: a StopIteration (or subclass) leaving a coroutine becomes
 * RuntimeError("coroutine raised StopIteration") with the StopIteration as
 * its __cause__ and __context__.  A raw StopIteration out of an awaitable is
 * refused by asyncio's tasks, which then never finish.  Call with the step's
 * error pending; any other error is left as it is. */
static inline void
aio_coro_convert_stop_iteration(void)
{
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return;
    }
    PyObject *stop = aio_err_take();
    PyErr_SetString(PyExc_RuntimeError, "coroutine raised StopIteration");
    PyObject *error = aio_err_take();
    if (error == NULL) {
        Py_DECREF(stop);
        return;
    }
    PyException_SetCause(error, Py_NewRef(stop));    /* steals */
    PyException_SetContext(error, stop);              /* steals */
    aio_err_restore(error);
}

/* The exception a coroutine's throw() raises into it, from throw()'s
 * arguments (new reference), or NULL with the error throw() raises:
 * throw(exc) and the deprecated throw(type[, value[, traceback]]), checked
 * in CPython's order and with its messages (the traceback first; a
 * DeprecationWarning for more than one argument on 3.12+, an error under
 * -W error). */
static inline PyObject *
aio_coro_throw_exception(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "throw expected at least 1 argument, got 0");
        return NULL;
    }
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "throw expected at most 3 arguments, got %zd", nargs);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (nargs > 1 &&
        PyErr_WarnEx(PyExc_DeprecationWarning,
                     "the (type, exc, tb) signature of throw() is deprecated, "
                     "use the single-arg signature instead.",
                     1) < 0) {
        return NULL;
    }
#endif
    PyObject *type = args[0];
    PyObject *value = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError,
                        "throw() third argument must be a traceback object");
        return NULL;
    }
    PyObject *exc;
    if (PyExceptionClass_Check(type)) {
        if (PyObject_TypeCheck(value, (PyTypeObject *)type)) {
            exc = Py_NewRef(value);
        }
        else if (value == Py_None) {
            exc = PyObject_CallNoArgs(type);
        }
        else if (PyTuple_Check(value)) {
            exc = PyObject_Call(type, value, NULL);
        }
        else {
            exc = PyObject_CallOneArg(type, value);
        }
        if (exc == NULL) {
            return NULL;
        }
        if (!PyExceptionInstance_Check(exc)) {
            PyErr_Format(PyExc_TypeError,
                         "calling %R should have returned an instance of "
                         "BaseException, not %s",
                         type, Py_TYPE(exc)->tp_name);
            Py_DECREF(exc);
            return NULL;
        }
    }
    else if (PyExceptionInstance_Check(type)) {
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate "
                            "value");
            return NULL;
        }
        exc = Py_NewRef(type);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from "
                     "BaseException, not %s",
                     Py_TYPE(type)->tp_name);
        return NULL;
    }
    if (tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

/* A step into an awaitable that is running already (its own body calls
 * send/throw/close on it) is refused, as a coroutine refuses it: -1 with
 * ValueError when `running`, else 0. */
static inline int
aio_coro_refuse_reentry(int running)
{
    if (running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return -1;
    }
    return 0;
}

/* A finished step of an awaitable as the result of its send() or
 * __next__(): the yielded value; on return NULL with StopIteration set,
 * carrying `value` unless it is None (as a generator does); else NULL with
 * the step's error.  Steals `value`. */
static inline PyObject *
aio_coro_send_result(PySendResult sent, PyObject *value)
{
    if (sent == PYGEN_NEXT) {
        return value;
    }
    if (sent == PYGEN_RETURN) {
        if (value == Py_None) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        else {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(value);
    }
    return NULL;
}

#endif /* AIOMISC_C_COMMON_CORO_H */
