/* fast_paths.h — the switch of the fast paths that read CPython internals.
 *
 * A fast path that relies on an implementation detail (a type's or a dict's
 * version tag, asyncio's running-loop holder) is taken through one named
 * function that asks aio_fast_paths_on() first, so a test can turn every
 * one of them off through the module's private `_set_fast_paths(False)`,
 * run the fallback and compare the results.  The switch is a C int per
 * extension, not module state: it is a process-wide test switch that user
 * code never sets, and it holds no Python object.
 *
 * Header only, included by the modules that have such fast paths (not by
 * common.h).  Include after <Python.h>. */
#ifndef AIOMISC_C_COMMON_FAST_PATHS_H
#define AIOMISC_C_COMMON_FAST_PATHS_H

#include <Python.h>

static int aio_fast_paths_enabled = 1;

static inline int
aio_fast_paths_on(void)
{
    return aio_fast_paths_enabled;
}

/* _set_fast_paths(enabled) -> the previous setting */
static inline PyObject *
aio_set_fast_paths(PyObject *Py_UNUSED(module), PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);
    if (on < 0) {
        return NULL;
    }
    int previous = aio_fast_paths_enabled;
    aio_fast_paths_enabled = on;
    return PyBool_FromLong(previous);
}

#define AIO_SET_FAST_PATHS_METHODDEF                                          \
    {"_set_fast_paths", aio_set_fast_paths, METH_O,                           \
     "_set_fast_paths($module, enabled, /)\n--\n\n"                           \
     "For tests: take (True) or skip (False) the fast paths that read "       \
     "CPython internals; returns the previous setting."}

#endif /* AIOMISC_C_COMMON_FAST_PATHS_H */
