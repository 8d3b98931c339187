/* log.h — logging a warning (or an error) from C, through the logging
 * module.
 *
 * Header only.  Include after <Python.h> and common/module_state.h. */
#ifndef AIOMISC_C_COMMON_LOG_H
#define AIOMISC_C_COMMON_LOG_H

#include <Python.h>

#include "common/module_state.h"

/* logging.getLogger(logger_name), looked up once and kept in *logger_slot
 * (a module state field, cleared by the module's clear).  Returns 0, or -1
 * after reporting the error as unraisable. */
static inline int
aio_logger(PyObject **logger_slot, const char *logger_name)
{
    if (*logger_slot != NULL) {
        return 0;
    }
    PyObject *get_logger = aio_import_attr("logging", "getLogger");
    if (get_logger != NULL) {
        *logger_slot = PyObject_CallFunction(get_logger, "s", logger_name);
        Py_DECREF(get_logger);
    }
    if (*logger_slot == NULL) {
        PyErr_WriteUnraisable(NULL);
        return -1;
    }
    return 0;
}

/* logging.getLogger(logger_name).warning(fmt, arg1, arg2), where `fmt` is
 * a %-style logging format taking an object and an integer.  Never raises:
 * errors become unraisable, since the caller is usually on a path that
 * must not fail. */
static inline void
aio_log_warning(PyObject **logger_slot, const char *logger_name,
                const char *fmt, PyObject *arg1, Py_ssize_t arg2)
{
    if (aio_logger(logger_slot, logger_name) < 0) {
        return;
    }
    PyObject *result = PyObject_CallMethod(*logger_slot, "warning", "sOn",
                                           fmt, arg1, arg2);
    if (result == NULL) {
        PyErr_WriteUnraisable(*logger_slot);
    }
    Py_XDECREF(result);
}

/* logging.getLogger(logger_name).<method>(*args, exc_info=exc), with
 * exc_info=True when `exc` is NULL.  `args` is the tuple of the message and
 * its arguments, or NULL when building it failed (the error is pending).
 * Never raises (errors become unraisable). */
static inline void
aio_log_exc(PyObject **logger_slot, const char *logger_name,
            const char *method, PyObject *args, PyObject *exc)
{
    if (args == NULL) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    if (aio_logger(logger_slot, logger_name) < 0) {
        return;
    }
    PyObject *log = PyObject_GetAttrString(*logger_slot, method);
    PyObject *kwargs =
        Py_BuildValue("{sO}", "exc_info", exc != NULL ? exc : Py_True);
    PyObject *result = NULL;
    if (log != NULL && kwargs != NULL) {
        result = PyObject_Call(log, args, kwargs);
    }
    if (result == NULL) {
        PyErr_WriteUnraisable(*logger_slot);
    }
    Py_XDECREF(result);
    Py_XDECREF(kwargs);
    Py_XDECREF(log);
}

#endif /* AIOMISC_C_COMMON_LOG_H */
