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

#endif /* AIOMISC_C_COMMON_CORO_H */
