/*
 * circuit_breaker/module.c -> aiomisc_c._circuit_breaker
 *
 * The C twin of aiomisc_c/_circuit_breaker_py.py (read that file for the
 * semantics).  Exposes `CircuitBreaker` and `cutout`; the enums,
 * `CircuitBroken`, `CircuitBreakerStatistic`, argument validation and the
 * `cutout` factory come from aiomisc_c/_circuit_breaker_base.py, shared with
 * the Python twin.
 *
 * Threads: every field of a breaker is read and written with the GIL held.
 * A guarded call does its bookkeeping (bucket, state, counters) without
 * calling into Python in between, so it is atomic with respect to other
 * threads; the clock (`_get_time`), the random source, the guarded function
 * and the exception inspector are called outside those sections, and their
 * results are recorded afterwards into the bucket that was current when the
 * call started (found again by its serial number).
 *
 * Overridable hooks: `_get_time`, `loop` and the class constants
 * BUCKET_COUNT, RECOVER_BROKEN_THRESHOLD and PASSING_BROKEN_THRESHOLD are
 * looked up normally on subclasses.  For the exact type, each call checks
 * that the type's dict still holds the original objects (a patched class
 * falls back to normal lookup) and then uses cached values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"
#include "common/fast_paths.h"
#include "common/wrapper.h"

/*
 * Layout: the multidict model.  This file is the only translation unit of
 * the extension; it includes the units below (headers of `static`
 * functions, one concern each) in dependency order.  Chosen over separate
 * .c files (uvloop's model) because everything stays `static` (no internal
 * symbols, no private header API to keep in sync), the compiler sees the
 * whole breaker at once and inlines the hot path of a guarded call across
 * units (window -> state machine -> guard), and the build is one object as
 * before.  The price: a unit is not self-contained; it may use anything
 * defined by the units included before it.
 *
 *   types.h          constants, module state, the object layouts
 *   window.h         the bucketed statistics window (pure C)
 *   state_machine.h  passing -> broken -> recovering transitions
 *   hooks.h          clock, class constants and limits (cached hooks)
 *   guard.h          the guarded call: enter, record, fail, call()
 *   breaker.h        CircuitBreaker: construction, methods, properties
 *   context.h        context(): the one-shot context manager
 *   call_async.h     call_async(): the coroutine-like awaitable
 *   cutout.h         the sync and async cutout wrappers
 *   module.c         the CircuitBreaker type spec and module init
 */
#include "circuit_breaker/types.h"
#include "circuit_breaker/window.h"
#include "circuit_breaker/state_machine.h"
#include "circuit_breaker/hooks.h"
#include "circuit_breaker/guard.h"
#include "circuit_breaker/breaker.h"
#include "circuit_breaker/context.h"
#include "circuit_breaker/call_async.h"
#include "circuit_breaker/cutout.h"

/* ------------------------------------------------------------------------ */
/* The CircuitBreaker type                                                   */

static PyMethodDef breaker_methods[] = {
    {"_get_time", (PyCFunction)breaker_get_time, METH_NOARGS,
     "_get_time($self, /)\n--\n\n"
     "The clock of the breaker: self.loop.time() (override to drive it)."},
    {"bucket", (PyCFunction)breaker_bucket, METH_NOARGS,
     "bucket($self, /)\n--\n\nThe id of the current statistics bucket."},
    {"counter", (PyCFunction)breaker_counter, METH_NOARGS,
     "counter($self, /)\n--\n\nA snapshot Counter of the current bucket."},
    {"get_state_delay", (PyCFunction)breaker_get_state_delay, METH_NOARGS,
     "get_state_delay($self, /)\n--\n\n"
     "Seconds until the state may change: max(stuck_until - now, 0)."},
    {"context", (PyCFunction)breaker_context, METH_NOARGS,
     "context($self, /)\n--\n\nA context manager guarding its body."},
    {"call", (PyCFunction)(void (*)(void))breaker_call,
     METH_FASTCALL | METH_KEYWORDS,
     "call($self, func, *args, **kwargs)\n--\n\n"
     "Call ``func(*args, **kwargs)``, guarded."},
    {"call_async", (PyCFunction)(void (*)(void))breaker_call_async,
     METH_FASTCALL | METH_KEYWORDS,
     "call_async($self, func, *args, **kwargs)\n--\n\n"
     "Await ``func(*args, **kwargs)`` (or take its value), guarded."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef breaker_getset[] = {
    {"state", (getter)breaker_get_state, NULL, "CircuitBreakerStates", NULL},
    {"response_time", (getter)breaker_get_response_time, NULL, NULL, NULL},
    {"recovery_ratio", (getter)breaker_get_recovery_ratio, NULL, NULL, NULL},
    {"loop", (getter)breaker_get_loop_property, NULL,
     "The event loop (the running one, taken on first use).", NULL},
    {"_loop", (getter)breaker_get__loop, (setter)breaker_set__loop, NULL,
     NULL},
    {"_last_exception", (getter)breaker_get_last_exception, NULL, NULL, NULL},
    {"_counters", (getter)breaker_get_counters, NULL, NULL, NULL},
    {"_exceptions", (getter)breaker_get_exceptions, NULL, NULL, NULL},
    {"_exception_inspector", (getter)breaker_get_inspector, NULL, NULL, NULL},
    {"_error_ratio", (getter)breaker_get_error_ratio, NULL, NULL, NULL},
    {"_recovery_time", (getter)breaker_get_recovery_time, NULL, NULL, NULL},
    {"_broken_time", (getter)breaker_get_broken_time, NULL, NULL, NULL},
    {"_passing_time", (getter)breaker_get_passing_time, NULL, NULL, NULL},
    {"_stuck_until", (getter)breaker_get_stuck_until, NULL, NULL, NULL},
    {"_recovery_at", (getter)breaker_get_recovery_at, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot breaker_slots[] = {
    {Py_tp_new, breaker_new},
    {Py_tp_init, breaker_init},
    {Py_tp_dealloc, breaker_dealloc},
    {Py_tp_traverse, breaker_traverse},
    {Py_tp_clear, breaker_clear},
    {Py_tp_repr, breaker_repr},
    {Py_tp_methods, breaker_methods},
    {Py_tp_getset, breaker_getset},
    {Py_tp_doc,
     "CircuitBreaker(error_ratio, response_time, exceptions=..., "
     "recovery_time=None, broken_time=None, passing_time=None, "
     "exception_inspector=None, statistic_name=None)\n--\n\n"
     "exceptions defaults to (Exception,).  "
     "Circuit breaker: collects call statistics in time buckets and stops "
     "calls (CircuitBroken) while the error ratio is too high."},
    {0, NULL},
};

static PyType_Spec breaker_spec = {
    .name = "aiomisc_c.circuit_breaker.CircuitBreaker",
    .basicsize = sizeof(BreakerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = breaker_slots,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */

static int
set_constants(cb_state *st)
{
    PyObject *type = (PyObject *)st->breaker_type;
    PyObject *values[LIM_COUNT] = {
        PyLong_FromLong(10), PyFloat_FromDouble(0.5), PyLong_FromLong(1),
    };
    int rc = 0;
    for (int i = 0; i < LIM_COUNT; i++) {
        if (values[i] == NULL ||
            PyObject_SetAttr(type, st->str_limits[i], values[i]) < 0) {
            rc = -1;
            break;
        }
        st->orig_limits[i] = Py_NewRef(values[i]);
        st->limit_values[i] = PyFloat_AsDouble(values[i]);
    }
    for (int i = 0; i < LIM_COUNT; i++) {
        Py_XDECREF(values[i]);
    }
    return rc;
}

static int
dict_original(cb_state *st, PyObject *name, PyObject **slot)
{
    PyObject *value = PyDict_GetItemWithError(st->breaker_type->tp_dict,
                                              name);
    if (value == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_AttributeError, name);
        }
        return -1;
    }
    *slot = Py_NewRef(value);
    return 0;
}

static int
import_members(PyObject *enum_class, PyObject **slots, const char *const *names,
               int count)
{
    for (int i = 0; i < count; i++) {
        slots[i] = PyObject_GetAttrString(enum_class, names[i]);
        if (slots[i] == NULL) {
            return -1;
        }
    }
    return 0;
}


/* The async wrapper type passes asyncio/inspect.iscoroutinefunction (see
 * common/wrapper.h). */
static int
set_coroutine_markers(cb_state *st)
{
    PyObject *base = PyImport_ImportModule("aiomisc_c._backoff_base");
    if (base == NULL) {
        return -1;
    }
    int rc = -1;
    if (aio_wrapper_type_mark_coroutine(st->async_wrapper_type, base) == 0 &&
        aio_wrapper_support_init(&st->wrapper_support, base) == 0) {
        rc = 0;
    }
    Py_DECREF(base);
    return rc;
}

static int
cb_exec(PyObject *module)
{
    cb_state *st = cb_state_from_module(module);
    static const char *const state_names[] = {"PASSING", "BROKEN",
                                              "RECOVERING"};
    static const char *const key_names[] = {"FAIL", "OK", "TOTAL"};

    if (aio_intern(&st->str_get_time, "_get_time") < 0 ||
        aio_intern(&st->str_loop, "loop") < 0 ||
        aio_intern(&st->str_time, "time") < 0 ||
        aio_intern(&st->str_random, "random") < 0 ||
        aio_intern(&st->str_throw, "throw") < 0 ||
        aio_intern(&st->str_close, "close") < 0 ||
        aio_intern(&st->str_func, "func") < 0 ||
        aio_intern(&st->str_call, "call") < 0 ||
        aio_intern(&st->str_call_async, "call_async") < 0 ||
        aio_intern(&st->str_recovery_ratio, "recovery_ratio") < 0) {
        return -1;
    }
    for (int i = 0; i < LIM_COUNT; i++) {
        if (aio_intern(&st->str_limits[i], LIMIT_NAMES[i]) < 0) {
            return -1;
        }
    }

    st->base_module = PyImport_ImportModule("aiomisc_c._circuit_breaker_base");
    if (st->base_module == NULL) {
        return -1;
    }
    PyObject *base = st->base_module;
    PyObject *states = PyObject_GetAttrString(base, "CircuitBreakerStates");
    if (states == NULL) {
        return -1;
    }
    int rc = import_members(states, st->states, state_names, 3);
    Py_DECREF(states);
    if (rc < 0) {
        return -1;
    }
    PyObject *keys = PyObject_GetAttrString(base, "CounterKey");
    if (keys == NULL) {
        return -1;
    }
    rc = import_members(keys, st->counter_keys, key_names, 3);
    Py_DECREF(keys);
    if (rc < 0) {
        return -1;
    }
    if ((st->circuit_broken = PyObject_GetAttrString(base, "CircuitBroken")) ==
            NULL ||
        (st->statistic_class =
             PyObject_GetAttrString(base, "CircuitBreakerStatistic")) == NULL ||
        (st->validate_arguments =
             PyObject_GetAttrString(base, "validate_arguments")) == NULL ||
        (st->log_inspector_error =
             PyObject_GetAttrString(base, "log_inspector_error")) == NULL ||
        (st->never_failures = PyObject_GetAttrString(base, "NEVER_FAILURES")) ==
            NULL ||
        (st->counter_class = aio_import_attr("collections", "Counter")) ==
            NULL ||
        (st->get_running_loop =
             aio_import_attr("asyncio", "get_running_loop")) == NULL ||
        (st->update_wrapper =
             aio_import_attr("functools", "update_wrapper")) == NULL) {
        return -1;
    }
    PyObject *base_loop = aio_import_attr("asyncio", "BaseEventLoop");
    if (base_loop == NULL) {
        return -1;
    }
    st->base_loop_time = PyObject_GetAttrString(base_loop, "time");
    Py_DECREF(base_loop);
    if (st->base_loop_time == NULL ||
        (st->time_dict = aio_import_attr("time", "__dict__")) == NULL ||
        (st->orig_monotonic = aio_import_attr("time", "monotonic")) == NULL ||
        aio_intern(&st->str_monotonic, "monotonic") < 0) {
        return -1;
    }
    st->default_exceptions = PyTuple_Pack(1, PyExc_Exception);
    if (st->default_exceptions == NULL) {
        return -1;
    }

    if (aio_add_type(module, &st->breaker_type, &breaker_spec, NULL) < 0 ||
        aio_add_type(module, &st->context_type, &context_spec, NULL) < 0 ||
        aio_add_type(module, &st->call_async_type, &call_async_spec, NULL) <
            0 ||
        aio_add_type(module, &st->wrapper_type, &wrapper_spec, NULL) < 0 ||
        aio_add_type(module, &st->async_wrapper_type, &async_wrapper_spec,
                     NULL) < 0) {
        return -1;
    }
    if (set_coroutine_markers(st) < 0) {
        return -1;
    }
    if (set_constants(st) < 0 ||
        dict_original(st, st->str_get_time, &st->orig_get_time) < 0 ||
        dict_original(st, st->str_loop, &st->orig_loop) < 0) {
        return -1;
    }

    /* asyncio.iscoroutine() accepts the awaitable (Task needs it) */
    PyObject *coroutine_abc = aio_import_attr("collections.abc", "Coroutine");
    if (coroutine_abc == NULL) {
        return -1;
    }
    PyObject *registered = PyObject_CallMethod(coroutine_abc, "register", "O",
                                               st->call_async_type);
    Py_DECREF(coroutine_abc);
    if (registered == NULL) {
        return -1;
    }
    Py_DECREF(registered);

    /* cutout: the shared factory over the C breaker and C wrappers */
    PyObject *wrap_sync = PyObject_GetAttrString(module, "_wrap_sync");
    if (wrap_sync == NULL) {
        return -1;
    }
    PyObject *wrap_async = PyObject_GetAttrString(module, "_wrap_async");
    if (wrap_async == NULL) {
        Py_DECREF(wrap_sync);
        return -1;
    }
    PyObject *cutout = PyObject_CallMethod(
        base, "build_cutout", "OOsO", st->breaker_type, wrap_sync,
        "aiomisc_c.circuit_breaker", wrap_async);
    Py_DECREF(wrap_sync);
    Py_DECREF(wrap_async);
    if (cutout == NULL) {
        return -1;
    }
    int added = PyModule_AddObjectRef(module, "cutout", cutout);
    Py_DECREF(cutout);
    return added;
}

static int
cb_traverse(PyObject *module, visitproc visit, void *arg)
{
    cb_state *st = cb_state_from_module(module);
#define VISIT(field) Py_VISIT(st->field);
#define VISIT_ARRAY(field, count)                                             \
    for (int i = 0; i < (count); i++) {                                       \
        Py_VISIT(st->field[i]);                                               \
    }
    CB_STATE_FIELDS(VISIT)
    CB_STATE_ARRAYS(VISIT_ARRAY)
#undef VISIT_ARRAY
#undef VISIT
    return 0;
}

static int
cb_clear(PyObject *module)
{
    cb_state *st = cb_state_from_module(module);
#define CLEAR(field) Py_CLEAR(st->field);
#define CLEAR_ARRAY(field, count)                                             \
    for (int i = 0; i < (count); i++) {                                       \
        Py_CLEAR(st->field[i]);                                               \
    }
    CB_STATE_FIELDS(CLEAR)
    CB_STATE_ARRAYS(CLEAR_ARRAY)
#undef CLEAR_ARRAY
#undef CLEAR
    return 0;
}

static void
cb_free(void *module)
{
    (void)cb_clear((PyObject *)module);
}

static PyMethodDef cb_functions[] = {
    AIO_SET_FAST_PATHS_METHODDEF,
    {"_wrap_sync", (PyCFunction)(void (*)(void))module_wrap_sync,
     METH_FASTCALL,
     "_wrap_sync($module, circuit_breaker, func, /)\n--\n\n"
     "The synchronous cutout wrapper of func."},
    {"_wrap_async", (PyCFunction)(void (*)(void))module_wrap_async,
     METH_FASTCALL,
     "_wrap_async($module, circuit_breaker, func, /)\n--\n\n"
     "The asynchronous cutout wrapper of func."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot cb_slots[] = {
    {Py_mod_exec, cb_exec},
    {0, NULL},
};

static PyModuleDef cb_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._circuit_breaker",
    .m_doc = "Circuit breaker, C twin of aiomisc_c._circuit_breaker_py.",
    .m_size = sizeof(cb_state),
    .m_methods = cb_functions,
    .m_slots = cb_slots,
    .m_traverse = cb_traverse,
    .m_clear = cb_clear,
    .m_free = cb_free,
};

PyMODINIT_FUNC
PyInit__circuit_breaker(void)
{
    return PyModuleDef_Init(&cb_module);
}
