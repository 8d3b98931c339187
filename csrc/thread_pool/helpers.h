/* thread_pool/helpers.h — clock, quiet getattr, warning logging.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_HELPERS_H
#define AIOMISC_C_THREAD_POOL_HELPERS_H

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static inline double
monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* getattr without building the AttributeError when it is missing (0 with
 * *result = NULL); uvloop's loops go through here on every threaded call. */
static inline int
lookup_attr_quiet(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

/* logging.getLogger("aiomisc_c.thread_pool"), made once: 0, or -1 after
 * reporting the error as unraisable. */
static int
tp_logger(tp_state *st)
{
    if (st->logger != NULL) {
        return 0;
    }
    PyObject *get_logger = aio_import_attr("logging", "getLogger");
    if (get_logger != NULL) {
        st->logger =
            PyObject_CallFunction(get_logger, "s", "aiomisc_c.thread_pool");
        Py_DECREF(get_logger);
    }
    if (st->logger == NULL) {
        PyErr_WriteUnraisable(NULL);
        return -1;
    }
    return 0;
}

/* Log a warning through the module's logger; never raises (errors become
 * unraisable). */
static void
log_warning(tp_state *st, const char *fmt, PyObject *arg1, Py_ssize_t arg2)
{
    if (tp_logger(st) < 0) {
        return;
    }
    PyObject *r =
        PyObject_CallMethod(st->logger, "warning", "sOn", fmt, arg1, arg2);
    if (r == NULL) {
        PyErr_WriteUnraisable(st->logger);
    }
    Py_XDECREF(r);
}

/* logger.warning(message, exc_info=exc); never raises. */
static void
log_warning_exc(tp_state *st, const char *message, PyObject *exc)
{
    if (tp_logger(st) < 0) {
        return;
    }
    PyObject *warning = PyObject_GetAttrString(st->logger, "warning");
    PyObject *args = Py_BuildValue("(s)", message);
    PyObject *kwargs =
        Py_BuildValue("{sO}", "exc_info", exc != NULL ? exc : Py_True);
    PyObject *r = NULL;
    if (warning != NULL && args != NULL && kwargs != NULL) {
        r = PyObject_Call(warning, args, kwargs);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(st->logger);
    }
    Py_XDECREF(r);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(warning);
}

#endif /* AIOMISC_C_THREAD_POOL_HELPERS_H */
