/*
 * backoff/module.c -> aiomisc_c._backoff: the retry engine of asyncbackoff /
 * asyncretry and the timeout decorator, which share one timer machinery.
 *
 * The readable source of truth is aiomisc_c/_backoff_py.py; this file does
 * the same thing without creating a coroutine frame per layer:
 *
 *   decorated(...)  -> a Call object (awaitable, coroutine-like: send, throw,
 *                      close, __await__, am_send) holding the arguments;
 *   await Call      -> drives the wrapped coroutine in the *current* task.
 *
 * One loop timer at most is armed per call: during an attempt for the
 * earliest of the attempt's end and the deadline (when it fires it cancels
 * the task, and the CancelledError is turned into TimeoutError after
 * task.uncancel() on 3.11+, as asyncio.timeout does); during a pause for the
 * earliest of the pause's end and the deadline (it resolves the future the
 * task waits on).
 *
 * Threading: every function here runs with the GIL held, in the loop's
 * thread.  Ownership is noted where it is not the usual "new reference".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <time.h>

#include "common/common.h"
#include "common/fast_paths.h"
#include "common/running_loop.h"
#include "common/wrapper.h"

/*
 * Layout: the multidict model.  This file is the only translation unit of
 * the extension; it includes the units below (headers of `static`
 * functions, one concern each) in dependency order.  Chosen over separate
 * .c files (uvloop's model) because everything stays `static` (no internal
 * symbols, no private header API to keep in sync), the compiler sees a
 * call's whole step (attempt -> timer queue -> counters) at once and
 * inlines across units, and the build is one object as before.  The price:
 * a unit is not self-contained; it may use anything defined by the units
 * included before it.
 *
 *   types.h        module state and small helpers
 *   counters.h     the statistic object and where its counters live
 *   policy.h       the retry/timeout settings shared by every owner
 *   call.h         the Call object's layout and constructor
 *   timer_queue.h  the per-loop timer queue (a heap of calls)
 *   call_steps.h   attempts, pauses and deadlines: a call's state machine
 *   call_coro.h    the coroutine protocol of a call and its type
 *   backoff.h      Backoff (the asyncbackoff decorator object)
 *   execution.h    BackoffExecution (one decorated function's execution)
 *   wrappers.h     the decorated functions: BackoffFunction, TimeoutFunction
 *   module.c       module init
 */
#include "backoff/types.h"
#include "backoff/counters.h"
#include "backoff/policy.h"
#include "backoff/call.h"
#include "backoff/timer_queue.h"
#include "backoff/call_steps.h"
#include "backoff/call_coro.h"
#include "backoff/backoff.h"
#include "backoff/execution.h"
#include "backoff/wrappers.h"

/* ------------------------------------------------------------------------ */
/* Module                                                                    */

static int
backoff_exec(PyObject *module)
{
    backoff_state *st = backoff_state_from_module(module);
    PyObject *base = NULL, *factories = NULL;
    PyObject *make_timeout = NULL, *timeout = NULL, *task_type = NULL;
    int rc = -1;

#define INTERN(field, text)                                                    \
    if (aio_intern(&st->field, text) < 0) {                                    \
        goto done;                                                             \
    }
    INTERN(str_cancel, "cancel")
    INTERN(str_cancelling, "cancelling")
    INTERN(str_uncancel, "uncancel")
    INTERN(str_time, "time")
    INTERN(str_call_at, "call_at")
    INTERN(str_call_soon, "call_soon")
    INTERN(str_create_future, "create_future")
    INTERN(str_set_result, "set_result")
    INTERN(str_done, "done")
    INTERN(str_throw, "throw")
    INTERN(str_close, "close")
    INTERN(str_future_blocking, "_asyncio_future_blocking")
    INTERN(str_counter_slot, "_counter_slot")
    INTERN(str_execute, "execute")
    INTERN(str_prepare, "prepare")
    INTERN(str_func, "func")
    INTERN(str_qualname, "__qualname__")
    INTERN(str_name, "__name__")
#undef INTERN
    for (int m = 0; m < 5; m++) {
        if (aio_intern(&st->metric_names[m], metric_texts[m]) < 0) {
            goto done;
        }
    }

    if ((st->get_running_loop = aio_import_attr("asyncio",
                                                "get_running_loop")) == NULL ||
        (st->current_task = aio_import_attr("asyncio", "current_task")) ==
            NULL ||
        (st->CancelledError = aio_import_attr("asyncio", "CancelledError")) ==
            NULL ||
        (st->TimeoutError = aio_import_attr("asyncio", "TimeoutError")) ==
            NULL ||
        (st->update_wrapper = aio_import_attr("functools", "update_wrapper")) ==
            NULL ||
        (task_type = aio_import_attr("asyncio", "Task")) == NULL) {
        goto done;
    }
    st->has_uncancel = PyObject_HasAttrString(task_type, "uncancel");
#if PY_VERSION_HEX < 0x030C0000
    /* asyncio.current_task is Python code reading this dict (3.12 has it
     * in C); use the dict when it is the C accelerator's */
    {
        PyObject *tasks = aio_import_attr("asyncio.tasks", "_current_tasks");
        PyObject *c_tasks = aio_import_attr("_asyncio", "_current_tasks");
        PyErr_Clear();
        if (tasks != NULL && tasks == c_tasks && PyDict_CheckExact(tasks)) {
            st->current_tasks = Py_NewRef(tasks);
        }
        Py_XDECREF(tasks);
        Py_XDECREF(c_tasks);
    }
#endif
    st->queues = PyDict_New();
    if (st->queues == NULL) {
        goto done;
    }

    base = PyImport_ImportModule("aiomisc_c._backoff_base");
    if (base == NULL ||
        (st->BackoffStatistic = PyObject_GetAttrString(
             base, "BackoffStatistic")) == NULL ||
        (st->check_policy = PyObject_GetAttrString(base, "check_policy")) ==
            NULL ||
        (st->iscoroutinefunction = PyObject_GetAttrString(
             base, "iscoroutinefunction")) == NULL ||
        aio_wrapper_support_init(&st->wrapper_support, base) < 0) {
        goto done;
    }

    if (aio_add_type(module, &st->CountersType, &counters_spec, NULL) < 0 ||
        aio_add_type(module, &st->CallType, &call_spec, NULL) < 0 ||
        aio_add_type(module, &st->QueueType, &queue_spec, NULL) < 0 ||
        aio_add_type(module, &st->BackoffType, &backoff_spec, NULL) < 0 ||
        aio_add_type(module, &st->ExecutionType, &execution_spec, NULL) < 0 ||
        aio_add_type(module, &st->BackoffFunctionType, &backoff_function_spec,
                     NULL) < 0 ||
        aio_add_type(module, &st->TimeoutFunctionType, &timeout_function_spec,
                     NULL) < 0) {
        goto done;
    }
    if (aio_wrapper_type_mark_coroutine(st->BackoffFunctionType, base) < 0 ||
        aio_wrapper_type_mark_coroutine(st->TimeoutFunctionType, base) < 0) {
        goto done;
    }
    st->orig_execute = PyDict_GetItemWithError(st->BackoffType->tp_dict,
                                               st->str_execute);
    st->orig_prepare = PyDict_GetItemWithError(st->BackoffType->tp_dict,
                                               st->str_prepare);
    if (st->orig_execute == NULL || st->orig_prepare == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_SystemError, "Backoff methods not found");
        }
        goto done;
    }
    Py_INCREF(st->orig_execute);
    Py_INCREF(st->orig_prepare);

    /* the argument-level API shared with the Python twin */
    factories = PyObject_CallMethod(base, "make_factories", "O",
                                    (PyObject *)st->BackoffType);
    if (factories == NULL) {
        goto done;
    }
    if (!PyTuple_Check(factories) || PyTuple_GET_SIZE(factories) != 2) {
        PyErr_SetString(PyExc_TypeError, "make_factories() result");
        goto done;
    }
    if (PyModule_AddObjectRef(module, "asyncbackoff",
                              PyTuple_GET_ITEM(factories, 0)) < 0 ||
        PyModule_AddObjectRef(module, "asyncretry",
                              PyTuple_GET_ITEM(factories, 1)) < 0) {
        goto done;
    }
    make_timeout = PyObject_GetAttrString(base, "make_timeout");
    if (make_timeout == NULL) {
        goto done;
    }
    timeout = PyObject_CallOneArg(make_timeout,
                                  (PyObject *)st->TimeoutFunctionType);
    if (timeout == NULL ||
        PyModule_AddObjectRef(module, "timeout", timeout) < 0) {
        goto done;
    }
    if (PyModule_AddObjectRef(module, "BackoffStatistic",
                              st->BackoffStatistic) < 0) {
        goto done;
    }
    PyObject *retry_statistic = PyObject_GetAttrString(base, "RetryStatistic");
    int added = retry_statistic == NULL ? -1 : PyModule_AddObjectRef(
        module, "RetryStatistic", retry_statistic);
    Py_XDECREF(retry_statistic);
    if (added < 0) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(base);
    Py_XDECREF(factories);
    Py_XDECREF(make_timeout);
    Py_XDECREF(timeout);
    Py_XDECREF(task_type);
    return rc;
}

#define STATE_FIELDS(X)                                                        \
    X(BackoffType) X(ExecutionType) X(BackoffFunctionType)                     \
    X(TimeoutFunctionType) X(CallType) X(CountersType) X(QueueType)           \
    X(queues) X(last_queue) X(get_running_loop)                                \
    X(current_task) X(current_tasks) X(CancelledError) X(TimeoutError)         \
    X(BackoffStatistic)                                                        \
    X(check_policy) X(iscoroutinefunction) X(update_wrapper)                   \
    X(orig_execute) X(orig_prepare) X(str_cancel)                              \
    X(str_cancelling) X(str_uncancel) X(str_time) X(str_call_at)               \
    X(str_call_soon)                                                           \
    X(str_create_future) X(str_set_result) X(str_done) X(str_throw)            \
    X(str_close) X(str_future_blocking) X(str_counter_slot) X(str_execute)     \
    X(str_prepare) X(str_qualname) X(str_name) X(str_func)                     \
    AIO_WRAPPER_SUPPORT_FIELDS(X, wrapper_support)

static int
backoff_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    backoff_state *st = backoff_state_from_module(module);
    if (st == NULL) {
        return 0;
    }
#define VISIT(field) Py_VISIT(st->field);
    STATE_FIELDS(VISIT)
#undef VISIT
    for (int m = 0; m < 5; m++) {
        Py_VISIT(st->metric_names[m]);
    }
    return 0;
}

static int
backoff_module_clear(PyObject *module)
{
    backoff_state *st = backoff_state_from_module(module);
    if (st == NULL) {
        return 0;
    }
#define CLEAR(field) Py_CLEAR(st->field);
    STATE_FIELDS(CLEAR)
#undef CLEAR
    for (int m = 0; m < 5; m++) {
        Py_CLEAR(st->metric_names[m]);
    }
    return 0;
}

static void
backoff_module_free(void *module)
{
    (void)backoff_module_clear((PyObject *)module);
}

/* _pending_timers(loop) -> how many calls have a timer armed on loop (for
 * tests: after a call, nothing of it must stay scheduled). */
static PyObject *
pending_timers(PyObject *module, PyObject *loop)
{
    backoff_state *st = backoff_state_from_module(module);
    QueueObject *q = find_queue(st, loop, NULL);
    if (q == NULL) {
        return PyErr_Occurred() ? NULL : PyLong_FromLong(0);
    }
    Py_ssize_t n = q->size;
    Py_DECREF(q);
    return PyLong_FromSsize_t(n);
}

/* _loop_timer_armed(loop) -> whether the timer queue of loop has its real
 * loop timer armed (for tests) */
static PyObject *
loop_timer_armed(PyObject *module, PyObject *loop)
{
    backoff_state *st = backoff_state_from_module(module);
    QueueObject *q = find_queue(st, loop, NULL);
    if (q == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    int armed = q->handle != NULL;
    Py_DECREF(q);
    return PyBool_FromLong(armed);
}

static PyMethodDef backoff_module_methods[] = {
    AIO_SET_FAST_PATHS_METHODDEF,
    {"_loop_timer_armed", loop_timer_armed, METH_O,
     "_loop_timer_armed($module, loop, /)\n--\n\n"
     "Whether a real timer of ours is armed on loop."},
    {"_pending_timers", pending_timers, METH_O,
     "_pending_timers($module, loop, /)\n--\n\n"
     "The number of calls with a timer armed on loop."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot backoff_module_slots[] = {
    {Py_mod_exec, backoff_exec},
    {0, NULL},
};

static PyModuleDef backoff_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._backoff",
    .m_doc = "C twin of aiomisc_c._backoff_py: asyncbackoff, asyncretry and "
             "timeout, run in the awaiting task with loop timers.",
    .m_size = sizeof(backoff_state),
    .m_methods = backoff_module_methods,
    .m_slots = backoff_module_slots,
    .m_traverse = backoff_module_traverse,
    .m_clear = backoff_module_clear,
    .m_free = backoff_module_free,
};

PyMODINIT_FUNC
PyInit__backoff(void)
{
    return PyModuleDef_Init(&backoff_module);
}
