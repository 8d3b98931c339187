/* log.h — logging a warning from C, through the logging module.
 *
 * Header only.  Include after <Python.h> and common/module_state.h. */
#ifndef AIOMISC_C_COMMON_LOG_H
#define AIOMISC_C_COMMON_LOG_H

#include <Python.h>

#include "common/module_state.h"

/* logging.getLogger(logger_name).warning(fmt, arg1, arg2), where `fmt` is
 * a %-style logging format taking an object and an integer.  The logger is
 * looked up once and kept in *logger_slot (a module state field, cleared by
 * the module's clear).  Never raises: errors become unraisable, since the
 * caller is usually on a path that must not fail. */
static inline void
aio_log_warning(PyObject **logger_slot, const char *logger_name,
                const char *fmt, PyObject *arg1, Py_ssize_t arg2)
{
    if (*logger_slot == NULL) {
        PyObject *get_logger = aio_import_attr("logging", "getLogger");
        if (get_logger != NULL) {
            *logger_slot = PyObject_CallFunction(get_logger, "s",
                                                 logger_name);
            Py_DECREF(get_logger);
        }
        if (*logger_slot == NULL) {
            PyErr_WriteUnraisable(NULL);
            return;
        }
    }
    PyObject *result = PyObject_CallMethod(*logger_slot, "warning", "sOn",
                                           fmt, arg1, arg2);
    if (result == NULL) {
        PyErr_WriteUnraisable(*logger_slot);
    }
    Py_XDECREF(result);
}

#endif /* AIOMISC_C_COMMON_LOG_H */
