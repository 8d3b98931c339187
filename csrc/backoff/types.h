/* backoff/types.h — module state and small helpers.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_TYPES_H
#define AIOMISC_C_BACKOFF_TYPES_H

/* ------------------------------------------------------------------------ */
/* Module state                                                              */

typedef struct {
    PyTypeObject *BackoffType;
    PyTypeObject *ExecutionType;
    PyTypeObject *BackoffFunctionType;
    PyTypeObject *TimeoutFunctionType;
    PyTypeObject *CallType;
    PyTypeObject *CountersType;
    PyTypeObject *QueueType;
    PyObject *queues;             /* id(loop) -> weakref(timer queue) */
    PyObject *last_queue;         /* weakref to the queue used last */

    PyObject *get_running_loop;   /* asyncio.get_running_loop */
    PyObject *current_task;       /* asyncio.current_task */
    PyObject *current_tasks;      /* its dict {loop: task} (3.10, 3.11) */
    PyObject *CancelledError;
    PyObject *TimeoutError;       /* asyncio.TimeoutError */
    PyObject *BackoffStatistic;
    PyObject *check_policy;       /* _backoff_base.check_policy */
    PyObject *iscoroutinefunction;
    PyObject *update_wrapper;     /* functools.update_wrapper */
    PyObject *orig_execute;       /* Backoff.__dict__["execute"] at import */
    PyObject *orig_prepare;       /* Backoff.__dict__["prepare"] at import */

    PyObject *str_cancel;
    PyObject *str_cancelling;
    PyObject *str_uncancel;
    PyObject *str_time;
    PyObject *str_call_at;
    PyObject *str_call_soon;
    PyObject *str_create_future;
    PyObject *str_set_result;
    PyObject *str_done;
    PyObject *str_throw;
    PyObject *str_close;
    PyObject *str_future_blocking;
    PyObject *str_counter_slot;
    PyObject *str_execute;
    PyObject *str_prepare;
    PyObject *str_func;            /* "func" */
    PyObject *str_qualname;
    PyObject *str_name;
    PyObject *metric_names[5];    /* see enum metric */
    aio_wrapper_support wrapper_support;

    int has_uncancel;             /* asyncio.Task.uncancel exists (3.11+) */
} backoff_state;

static PyModuleDef backoff_module;
AIO_DEFINE_STATE_ACCESSORS(backoff_state, backoff_module)

/* For the module's final types (no subclasses): the defining module's
 * state directly. */
static inline backoff_state *
state_of_final(PyObject *obj)
{
    return (backoff_state *)PyType_GetModuleState(Py_TYPE(obj));
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* loop.time() as a double; -1 with an exception on error. */
static int
loop_time(backoff_state *st, PyObject *loop, double *now)
{
    PyObject *value = PyObject_CallMethodNoArgs(loop, st->str_time);
    if (value == NULL) {
        return -1;
    }
    *now = PyFloat_AsDouble(value);
    Py_DECREF(value);
    if (*now == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* A timeout object as seconds: -1 for "no limit" (None or inf). */
static int
timeout_seconds(PyObject *value, double *seconds)
{
    if (value == NULL || value == Py_None) {
        *seconds = -1.0;
        return 0;
    }
    double s = PyFloat_AsDouble(value);
    if (s == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *seconds = (isinf(s) && s > 0) ? -1.0 : (s < 0 ? 0.0 : s);
    return 0;
}

/* TimeoutError() whose __cause__/__context__ is `cause` (may be NULL). */
static PyObject *
new_timeout_error(backoff_state *st, PyObject *cause)
{
    PyObject *error = PyObject_CallNoArgs(st->TimeoutError);
    if (error != NULL && cause != NULL) {
        PyException_SetCause(error, Py_NewRef(cause));
        PyException_SetContext(error, Py_NewRef(cause));
    }
    return error;
}

#endif /* AIOMISC_C_BACKOFF_TYPES_H */
