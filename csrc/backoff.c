/*
 * backoff.c -> aiomisc_c._backoff: the retry engine of asyncbackoff /
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
#include "common/running_loop.h"

#if PY_VERSION_HEX >= 0x030C0000
#define AIO_T_PYSSIZET Py_T_PYSSIZET
#define AIO_READONLY Py_READONLY
#else
#include <structmember.h>
#define AIO_T_PYSSIZET T_PYSSIZET
#define AIO_READONLY READONLY
#endif

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
    PyObject *coroutine_code;     /* _backoff_base.COROUTINE_CODE */
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
    PyObject *str_code;
    PyObject *str_defaults;
    PyObject *str_kwdefaults;
    PyObject *str_qualname;
    PyObject *str_name;
    PyObject *metric_names[5];    /* see enum metric */

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

static double
monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* ------------------------------------------------------------------------ */
/* Counters: the statistic object of a Backoff and where its counters live. */

enum metric { M_DONE, M_ATTEMPTS, M_CANCELS, M_ERRORS, M_SUM_TIME };
static const char *const metric_texts[5] = {
    "done", "attempts", "cancels", "errors", "sum_time",
};

/* Shared (refcounted) by a Backoff, its executions and their calls.  When
 * the statistic is a counters.Statistic, the counters are slots of its
 * array buffers, exported for as long as this object lives (which pins
 * them), and incremented natively; otherwise by attribute arithmetic. */
typedef struct {
    PyObject_HEAD
    PyObject *statistic;
    int fast;
    Py_buffer ints;
    Py_buffer floats;
    long long *slots[4];          /* M_DONE .. M_ERRORS */
    double *sum_time;
} CountersObject;

static int
counters_slot(backoff_state *st, CountersObject *self, int metric,
              PyObject **array, Py_ssize_t *index)
{
    PyObject *slot = PyObject_CallMethodOneArg(
        self->statistic, st->str_counter_slot, st->metric_names[metric]);
    if (slot == NULL) {
        return -1;
    }
    if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 2) {
        Py_DECREF(slot);
        PyErr_SetString(PyExc_TypeError, "bad _counter_slot() result");
        return -1;
    }
    *array = Py_NewRef(PyTuple_GET_ITEM(slot, 0));
    *index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
    Py_DECREF(slot);
    return (*index == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
counters_export(PyObject *array, Py_buffer *view, const char *format)
{
    if (PyObject_GetBuffer(array, view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (view->itemsize != 8 || view->format == NULL ||
        strcmp(view->format, format) != 0) {
        PyBuffer_Release(view);
        view->obj = NULL;
        PyErr_SetString(PyExc_TypeError, "unexpected counter buffer");
        return -1;
    }
    return 0;
}

/* Resolve the native slots; returns 0 (fast), 1 (slow: not a
 * counters.Statistic), -1 on a real error. */
static int
counters_resolve(backoff_state *st, CountersObject *self)
{
    PyObject *int_array = NULL, *array = NULL, *float_array = NULL;
    Py_ssize_t index[5];
    for (int m = M_DONE; m <= M_ERRORS; m++) {
        if (counters_slot(st, self, m, &array, &index[m]) < 0) {
            goto slow;
        }
        if (int_array == NULL) {
            int_array = array;
        }
        else {
            int same = array == int_array;
            Py_DECREF(array);
            if (!same) {
                goto slow;
            }
        }
        array = NULL;
    }
    if (counters_slot(st, self, M_SUM_TIME, &float_array, &index[M_SUM_TIME])
        < 0) {
        goto slow;
    }
    if (counters_export(int_array, &self->ints, "q") < 0) {
        goto slow;
    }
    if (counters_export(float_array, &self->floats, "d") < 0) {
        PyBuffer_Release(&self->ints);
        self->ints.obj = NULL;
        goto slow;
    }
    for (int m = M_DONE; m <= M_ERRORS; m++) {
        if (index[m] < 0 || index[m] >= self->ints.len / 8) {
            goto bad_index;
        }
        self->slots[m] = (long long *)self->ints.buf + index[m];
    }
    if (index[M_SUM_TIME] < 0 || index[M_SUM_TIME] >= self->floats.len / 8) {
        goto bad_index;
    }
    self->sum_time = (double *)self->floats.buf + index[M_SUM_TIME];
    self->fast = 1;
    Py_DECREF(int_array);
    Py_DECREF(float_array);
    return 0;

bad_index:
    PyBuffer_Release(&self->ints);
    PyBuffer_Release(&self->floats);
    self->ints.obj = self->floats.obj = NULL;
slow:
    Py_XDECREF(int_array);
    Py_XDECREF(float_array);
    /* Anything but a counters.Statistic lands here: fall back on
     * attribute arithmetic, which works for any object. */
    if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
        PyErr_ExceptionMatches(PyExc_KeyError) ||
        PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_BufferError) ||
        PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        return 1;
    }
    return -1;
}

static CountersObject *
counters_new(backoff_state *st, PyObject *statistic)
{
    CountersObject *self = PyObject_GC_New(CountersObject, st->CountersType);
    if (self == NULL) {
        return NULL;
    }
    self->statistic = Py_NewRef(statistic);
    self->fast = 0;
    self->ints.obj = NULL;
    self->floats.obj = NULL;
    PyObject_GC_Track(self);
    if (counters_resolve(st, self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static int
counters_traverse(CountersObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->statistic);
    return 0;
}

static int
counters_clear(CountersObject *self)
{
    if (self->ints.obj != NULL) {
        PyBuffer_Release(&self->ints);
        self->ints.obj = NULL;
    }
    if (self->floats.obj != NULL) {
        PyBuffer_Release(&self->floats);
        self->floats.obj = NULL;
    }
    self->fast = 0;
    Py_CLEAR(self->statistic);
    return 0;
}

static void
counters_dealloc(CountersObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

/* stat.<metric> += delta: -1 with the error set when the statistic object
 * refuses it (a statistic_class without that field raises AttributeError,
 * as `stat.errors += 1` does).  Never called with an exception pending. */
static int
counters_add_slow(backoff_state *st, CountersObject *c, int metric,
                  PyObject *delta)
{
    PyObject *name = st->metric_names[metric];
    PyObject *value = PyObject_GetAttr(c->statistic, name);
    PyObject *sum = value == NULL ? NULL : PyNumber_Add(value, delta);
    int rc = sum == NULL ? -1 : PyObject_SetAttr(c->statistic, name, sum);
    Py_XDECREF(value);
    Py_XDECREF(sum);
    return rc;
}

static inline int
counters_inc(backoff_state *st, CountersObject *c, int metric)
{
    if (c == NULL) {
        return 0;
    }
    if (c->fast) {
        *c->slots[metric] += 1;
        return 0;
    }
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL) {
        return -1;
    }
    int rc = counters_add_slow(st, c, metric, one);
    Py_DECREF(one);
    return rc;
}

static inline int
counters_add_time(backoff_state *st, CountersObject *c, double seconds)
{
    if (c == NULL) {
        return 0;
    }
    if (c->fast) {
        *c->sum_time += seconds;
        return 0;
    }
    PyObject *delta = PyFloat_FromDouble(seconds);
    if (delta == NULL) {
        return -1;
    }
    int rc = counters_add_slow(st, c, M_SUM_TIME, delta);
    Py_DECREF(delta);
    return rc;
}

static PyType_Slot counters_slots[] = {
    {Py_tp_dealloc, counters_dealloc},
    {Py_tp_traverse, counters_traverse},
    {Py_tp_clear, counters_clear},
    {0, NULL},
};

static PyType_Spec counters_spec = {
    .name = "aiomisc_c._backoff._Counters",
    .basicsize = sizeof(CountersObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = counters_slots,
};

/* ------------------------------------------------------------------------ */
/* Policy: the retry/timeout settings, embedded right after PyObject_HEAD in
 * Backoff, BackoffExecution and the timeout wrapper (so that one set of
 * attribute accessors serves all of them).                                 */

typedef struct {
    PyObject *attempt_timeout;    /* as given: None or a number */
    PyObject *deadline;
    PyObject *pause;
    PyObject *exceptions;         /* tuple (or an exception class) */
    PyObject *max_tries;          /* None or int */
    PyObject *giveup;             /* None or callable */
    double attempt_timeout_s;     /* seconds, -1: no limit */
    double deadline_s;
    double pause_s;
    long long max_tries_n;        /* 0: unlimited */
} Policy;

#define POLICY_OF(obj) ((Policy *)((char *)(obj) + sizeof(PyObject)))

/* The defaults: 0, or -1 with an exception set (what was set is released
 * by the owner's clear). */
static int
policy_init(Policy *p)
{
    p->attempt_timeout = Py_NewRef(Py_None);
    p->deadline = Py_NewRef(Py_None);
    p->pause = PyLong_FromLong(0);
    p->exceptions = PyTuple_New(0);
    p->max_tries = Py_NewRef(Py_None);
    p->giveup = Py_NewRef(Py_None);
    p->attempt_timeout_s = -1.0;
    p->deadline_s = -1.0;
    p->pause_s = 0.0;
    p->max_tries_n = 0;
    return p->pause == NULL || p->exceptions == NULL ? -1 : 0;
}

/* tp_new of the types whose objects start with a Policy (POLICY_OF):
 * Backoff and BackoffExecution. */
static PyObject *
policy_object_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                  PyObject *Py_UNUSED(kwargs))
{
    PyObject *self = type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (policy_init(POLICY_OF(self)) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static int
policy_traverse(Policy *p, visitproc visit, void *arg)
{
    Py_VISIT(p->attempt_timeout);
    Py_VISIT(p->deadline);
    Py_VISIT(p->pause);
    Py_VISIT(p->exceptions);
    Py_VISIT(p->max_tries);
    Py_VISIT(p->giveup);
    return 0;
}

static void
policy_clear(Policy *p)
{
    Py_CLEAR(p->attempt_timeout);
    Py_CLEAR(p->deadline);
    Py_CLEAR(p->pause);
    Py_CLEAR(p->exceptions);
    Py_CLEAR(p->max_tries);
    Py_CLEAR(p->giveup);
}

enum policy_field {
    F_ATTEMPT_TIMEOUT, F_DEADLINE, F_PAUSE, F_EXCEPTIONS, F_MAX_TRIES, F_GIVEUP,
};

/* Set one field (a new value owned by the caller, borrowed here). */
static int
policy_set(Policy *p, int field, PyObject *value)
{
    PyObject **slot = NULL;
    switch (field) {
    case F_ATTEMPT_TIMEOUT:
        if (timeout_seconds(value, &p->attempt_timeout_s) < 0) {
            return -1;
        }
        slot = &p->attempt_timeout;
        break;
    case F_DEADLINE:
        if (timeout_seconds(value, &p->deadline_s) < 0) {
            return -1;
        }
        slot = &p->deadline;
        break;
    case F_PAUSE: {
        double pause = 0.0;
        if (value != Py_None) {
            pause = PyFloat_AsDouble(value);
            if (pause == -1.0 && PyErr_Occurred()) {
                return -1;
            }
        }
        p->pause_s = (isnan(pause) || pause < 0) ? 0.0 : pause;
        slot = &p->pause;
        break;
    }
    case F_EXCEPTIONS:
        if (!PyTuple_Check(value) && !PyExceptionClass_Check(value)) {
            PyErr_SetString(PyExc_TypeError,
                            "'exceptions' must be a tuple of exception classes");
            return -1;
        }
        slot = &p->exceptions;
        break;
    case F_MAX_TRIES:
        if (value == Py_None) {
            p->max_tries_n = 0;
        }
        else {
            long long n = PyLong_AsLongLong(value);
            if (n == -1 && PyErr_Occurred()) {
                return -1;
            }
            p->max_tries_n = n < 1 ? 1 : n;
        }
        slot = &p->max_tries;
        break;
    case F_GIVEUP:
        if (value != Py_None && !PyCallable_Check(value)) {
            PyErr_SetString(PyExc_ValueError,
                            "'giveup' must be a callable or None");
            return -1;
        }
        slot = &p->giveup;
        break;
    default:
        PyErr_SetString(PyExc_SystemError, "bad policy field");
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* Run _backoff_base.check_policy(...) and store its normalised result. */
static int
policy_check_and_set(backoff_state *st, Policy *p, PyObject *attempt_timeout,
                     PyObject *deadline, PyObject *pause, PyObject *exceptions,
                     PyObject *max_tries, PyObject *giveup, int append_timeout)
{
    PyObject *args[7] = {
        attempt_timeout, deadline, pause, exceptions, max_tries, giveup,
        append_timeout ? Py_True : Py_False,
    };
    PyObject *checked = PyObject_Vectorcall(st->check_policy, args, 7, NULL);
    if (checked == NULL) {
        return -1;
    }
    int rc = -1;
    if (!PyTuple_Check(checked) || PyTuple_GET_SIZE(checked) != 6) {
        PyErr_SetString(PyExc_SystemError, "check_policy() result");
        goto done;
    }
    for (int field = F_ATTEMPT_TIMEOUT; field <= F_GIVEUP; field++) {
        if (policy_set(p, field, PyTuple_GET_ITEM(checked, field)) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(checked);
    return rc;
}

static void
policy_copy(Policy *dst, Policy *src)
{
    policy_clear(dst);
    *dst = *src;
    Py_XINCREF(dst->attempt_timeout);
    Py_XINCREF(dst->deadline);
    Py_XINCREF(dst->pause);
    Py_XINCREF(dst->exceptions);
    Py_XINCREF(dst->max_tries);
    Py_XINCREF(dst->giveup);
}

static PyObject *
policy_get(PyObject *self, void *closure)
{
    Policy *p = POLICY_OF(self);
    PyObject *value = NULL;
    switch ((int)(intptr_t)closure) {
    case F_ATTEMPT_TIMEOUT: value = p->attempt_timeout; break;
    case F_DEADLINE: value = p->deadline; break;
    case F_PAUSE: value = p->pause; break;
    case F_EXCEPTIONS: value = p->exceptions; break;
    case F_MAX_TRIES: value = p->max_tries; break;
    case F_GIVEUP: value = p->giveup; break;
    }
    return Py_NewRef(value != NULL ? value : Py_None);
}

static int
policy_setter(PyObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    return policy_set(POLICY_OF(self), (int)(intptr_t)closure, value);
}

#define POLICY_GETSETS                                                        \
    {"attempt_timeout", policy_get, policy_setter, NULL,                      \
     (void *)(intptr_t)F_ATTEMPT_TIMEOUT},                                    \
    {"deadline", policy_get, policy_setter, NULL,                             \
     (void *)(intptr_t)F_DEADLINE},                                           \
    {"pause", policy_get, policy_setter, NULL, (void *)(intptr_t)F_PAUSE},    \
    {"exceptions", policy_get, policy_setter, NULL,                           \
     (void *)(intptr_t)F_EXCEPTIONS},                                         \
    {"max_tries", policy_get, policy_setter, NULL,                            \
     (void *)(intptr_t)F_MAX_TRIES},                                          \
    {"giveup", policy_get, policy_setter, NULL, (void *)(intptr_t)F_GIVEUP}

/* ------------------------------------------------------------------------ */
/* Backoff and BackoffExecution                                              */

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF */
    CountersObject *counters;
} BackoffObject;

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF */
    CountersObject *counters;
    PyObject *function;
    PyObject *last_exception;     /* NULL or the last attempt's exception */
    long long total_tries;
} ExecutionObject;

/* ------------------------------------------------------------------------ */
/* Call: one awaited call of a decorated function                            */

enum call_state { S_INIT, S_ATTEMPT, S_PAUSE, S_DONE };
enum timer_kind { K_NONE, K_ATTEMPT, K_DEADLINE };

typedef struct QueueObject QueueObject;

typedef struct CallObject {
    PyObject_HEAD
    backoff_state *st;            /* the module outlives its types' objects */
    PyObject *owner;              /* keeps `policy` (and `tries`) alive */
    Policy *policy;               /* inside owner */
    CountersObject *counters;     /* NULL: no statistics (timeout) */
    PyObject *func;
    PyObject *args;               /* positional then keyword values, or NULL */
    PyObject *kwnames;            /* NULL or tuple */
    Py_ssize_t nargs;

    PyObject *inner;              /* iterator of the running attempt */
    PyObject *loop;               /* set when timers are needed */
    PyObject *task;
    QueueObject *queue;           /* the loop's timer queue, when needed */
    Py_ssize_t heap_index;        /* in queue->heap; -1: no timer armed */
    double timer_when;            /* monotonic time the timer is due */
    PyObject *waiter;             /* the pause's future, if any */

    /* last_exception and total_tries live in the BackoffExecution when the
     * call belongs to one (17.x keeps them there), else here. */
    PyObject *own_last_exception;
    long long own_tries;
    PyObject **last_exception;
    long long *tries;

    double deadline_at;           /* monotonic; valid if has_deadline */
    double started;               /* monotonic start of the attempt */
    Py_ssize_t baseline;          /* task.cancelling() at the start */
    int state;
    int armed_kind;               /* what the armed timer stands for */
    int fired;                    /* which timer fired (not settled yet) */
    int has_deadline;
    int pause_hits_deadline;      /* the current pause ends at the deadline */
    int attempts_started;         /* in this call */
    int immediate_retries;        /* pause=0 retries in a row */
    int running;                  /* inside send/throw/close */
    /* the twin's coroutine name in "was never awaited" (NULL: __qualname__
     * of the function), for calls made by an execute()/__call__ method */
    const char *unawaited_name;
} CallObject;

/* With pause=0 the next attempt starts at once, but every YIELD_EVERY-th
 * retry in a row yields to the loop first (a function failing synchronously
 * forever must not starve the loop). */
#define YIELD_EVERY 16

/* `call` (passed through, may be NULL or not a Call) as the coroutine of
 * the twin's method `name` in its "was never awaited" warning. */
static PyObject *
call_named(backoff_state *st, PyObject *call, const char *name)
{
    if (call != NULL && Py_IS_TYPE(call, st->CallType)) {
        ((CallObject *)call)->unawaited_name = name;
    }
    return call;
}

static PyObject *
call_new(backoff_state *st, PyObject *owner, Policy *policy,
         CountersObject *counters, ExecutionObject *execution, PyObject *func,
         PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    CallObject *self = PyObject_GC_New(CallObject, st->CallType);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->unawaited_name = NULL;
    self->owner = Py_NewRef(owner);
    self->policy = policy;
    self->counters = (CountersObject *)Py_XNewRef((PyObject *)counters);
    self->func = Py_NewRef(func);
    self->args = NULL;
    self->kwnames = NULL;
    self->nargs = nargs;
    self->inner = self->loop = self->task = NULL;
    self->queue = NULL;
    self->heap_index = -1;
    self->timer_when = 0.0;
    self->waiter = NULL;
    self->own_last_exception = NULL;
    self->own_tries = 0;
    if (execution != NULL) {
        self->last_exception = &execution->last_exception;
        self->tries = &execution->total_tries;
    }
    else {
        self->last_exception = &self->own_last_exception;
        self->tries = &self->own_tries;
    }
    self->deadline_at = 0.0;
    self->started = 0.0;
    self->baseline = 0;
    self->state = S_INIT;
    self->armed_kind = self->fired = K_NONE;
    self->has_deadline = 0;
    self->pause_hits_deadline = 0;
    self->attempts_started = 0;
    self->immediate_retries = 0;
    self->running = 0;
    if (nargs + nkw > 0) {
        self->args = aio_args_tuple(NULL, args, nargs + nkw);
        if (self->args == NULL) {
            PyObject_GC_Track(self);
            Py_DECREF(self);
            return NULL;
        }
        self->kwnames = Py_XNewRef(nkw ? kwnames : NULL);
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* --- timers --------------------------------------------------------------- */

static int
call_get_loop(CallObject *self)
{
    if (self->loop == NULL) {
        self->loop = aio_running_loop(self->st->get_running_loop);
        if (self->loop == NULL) {
            return -1;
        }
    }
    return 0;
}


/* The timer queue of one event loop.  A Python TimerHandle per call costs
 * ~1-2 us on asyncio's loop (created in Python, cancelled in Python), more
 * than everything else a call does; so calls queue their timers here, in a
 * binary heap ordered by due time (monotonic clock), and the queue keeps one
 * real loop timer armed for the earliest of them.  Disarming a call only
 * takes it off the heap: the real timer stays armed and, when it fires with
 * nothing due, re-arms for the new earliest entry; once the heap is empty it
 * is dropped on the loop's next turn (queue_went_idle).
 *
 * The heap borrows its calls (a call leaves it whenever it is finished,
 * closed, finalized or cleared: a dropped call must not fire at its task);
 * a call holds a reference to its queue.  Queues are found by loop through
 * weak references kept in the module state. */
struct QueueObject {
    PyObject_HEAD
    backoff_state *st;
    PyObject *loop;
    PyObject *handle;             /* the real TimerHandle, or NULL (idle) */
    double armed_at;              /* monotonic time `handle` is due */
    CallObject **heap;
    Py_ssize_t size;
    Py_ssize_t capacity;
    PyObject *weakreflist;
    int idle_check;               /* queue_idle is scheduled (call_soon) */
};

static inline void
heap_place(QueueObject *q, Py_ssize_t i, CallObject *c)
{
    q->heap[i] = c;
    c->heap_index = i;
}

static void
heap_sift_up(QueueObject *q, Py_ssize_t i)
{
    CallObject *c = q->heap[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (q->heap[parent]->timer_when <= c->timer_when) {
            break;
        }
        heap_place(q, i, q->heap[parent]);
        i = parent;
    }
    heap_place(q, i, c);
}

static void
heap_sift_down(QueueObject *q, Py_ssize_t i)
{
    CallObject *c = q->heap[i];
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= q->size) {
            break;
        }
        if (child + 1 < q->size &&
            q->heap[child + 1]->timer_when < q->heap[child]->timer_when) {
            child++;
        }
        if (c->timer_when <= q->heap[child]->timer_when) {
            break;
        }
        heap_place(q, i, q->heap[child]);
        i = child;
    }
    heap_place(q, i, c);
}

/* Queue `c`.  The heap borrows it: a call takes itself off the heap when it
 * is finished, closed, finalized or cleared, so a dropped call never stays
 * alive (or fires at its task) because its timer is armed. */
static int
queue_push(QueueObject *q, CallObject *c)
{
    if (q->size == q->capacity) {
        Py_ssize_t capacity = q->capacity ? q->capacity * 2 : 8;
        CallObject **heap = PyMem_Realloc(
            q->heap, (size_t)capacity * sizeof(CallObject *));
        if (heap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        q->heap = heap;
        q->capacity = capacity;
    }
    q->heap[q->size] = c;
    c->heap_index = q->size;
    q->size++;
    heap_sift_up(q, q->size - 1);
    return 0;
}

/* Take `c` off the heap. */
static void
queue_remove(QueueObject *q, CallObject *c)
{
    Py_ssize_t i = c->heap_index;
    c->heap_index = -1;
    q->size--;
    if (i != q->size) {
        CallObject *last = q->heap[q->size];
        heap_place(q, i, last);
        heap_sift_up(q, i);
        heap_sift_down(q, last->heap_index);
    }
}

static int call_fire(CallObject *self);
static PyObject *queue_fire(PyObject *op, PyObject *unused);
static PyObject *queue_idle(PyObject *op, PyObject *unused);

static PyMethodDef queue_fire_def = {
    "_fire", queue_fire, METH_NOARGS, NULL,
};

static PyMethodDef queue_idle_def = {
    "_idle", queue_idle, METH_NOARGS, NULL,
};

static void
cancel_handle(backoff_state *st, PyObject *handle)
{
    PyObject *r = PyObject_CallMethodNoArgs(handle, st->str_cancel);
    if (r == NULL) {
        PyErr_WriteUnraisable(handle);
    }
    Py_XDECREF(r);
}

static void
queue_drop_handle(QueueObject *q)
{
    PyObject *old = q->handle;
    if (old != NULL) {
        q->handle = NULL;
        cancel_handle(q->st, old);
        Py_DECREF(old);
    }
}

/* Scheduled by queue_went_idle: still no call armed after what the loop
 * ran meanwhile, so the real timer goes. */
static PyObject *
queue_idle(PyObject *op, PyObject *Py_UNUSED(unused))
{
    QueueObject *q = (QueueObject *)op;
    q->idle_check = 0;
    if (q->size == 0) {
        queue_drop_handle(q);
    }
    Py_RETURN_NONE;
}

/* The last call armed on the queue is over.  Its real timer would wake the
 * loop at a stale time: drop it, but on the loop's next turn, so that calls
 * following one another in the same turn (the common case) share one timer
 * instead of each cancelling and re-creating it.  Keeps the pending
 * exception, if any. */
static void
queue_went_idle(QueueObject *q)
{
    if (q->size != 0 || q->handle == NULL || q->idle_check) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *callback = PyCFunction_New(&queue_idle_def, (PyObject *)q);
    PyObject *handle = NULL;
    if (callback != NULL) {
        PyObject *args[2] = {q->loop, callback};
        handle = PyObject_VectorcallMethod(
            q->st->str_call_soon, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            NULL);
        Py_DECREF(callback);
    }
    if (handle != NULL) {
        q->idle_check = 1;
        Py_DECREF(handle);
    }
    else {
        PyErr_Clear();          /* a closed loop: drop the timer at once */
        queue_drop_handle(q);
    }
    aio_err_restore(saved);
}

/* Arm the real loop timer for `when` (monotonic), replacing the old one. */
static int
queue_arm(QueueObject *q, double when)
{
    backoff_state *st = q->st;
    queue_drop_handle(q);
    double loop_now;
    if (loop_time(st, q->loop, &loop_now) < 0) {
        return -1;
    }
    PyObject *when_obj = PyFloat_FromDouble(
        loop_now + (when - monotonic_seconds()));
    if (when_obj == NULL) {
        return -1;
    }
    PyObject *callback = PyCFunction_New(&queue_fire_def, (PyObject *)q);
    if (callback == NULL) {
        Py_DECREF(when_obj);
        return -1;
    }
    PyObject *args[3] = {q->loop, when_obj, callback};
    PyObject *handle = PyObject_VectorcallMethod(
        st->str_call_at, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(when_obj);
    Py_DECREF(callback);
    if (handle == NULL) {
        return -1;
    }
    q->handle = handle;
    q->armed_at = when;
    return 0;
}

/* The real timer fired: fire every call that is due, re-arm for the rest. */
static PyObject *
queue_fire(PyObject *op, PyObject *Py_UNUSED(unused))
{
    QueueObject *q = (QueueObject *)op;
    Py_INCREF(q);
    Py_CLEAR(q->handle);
    /* the loop says armed_at is reached, whatever its clock's rounding */
    double due = monotonic_seconds();
    if (q->armed_at > due) {
        due = q->armed_at;
    }
    while (q->size > 0 && q->heap[0]->timer_when <= due) {
        CallObject *c = (CallObject *)Py_NewRef(q->heap[0]);
        queue_remove(q, c);
        if (call_fire(c) < 0) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        Py_DECREF(c);
    }
    if (q->size > 0 && q->handle == NULL &&
        queue_arm(q, q->heap[0]->timer_when) < 0) {
        PyErr_WriteUnraisable(op);
    }
    Py_DECREF(q);
    Py_RETURN_NONE;
}

static int
queue_traverse(QueueObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->handle);
    return 0;   /* the heap's calls are borrowed */
}

static int
queue_clear(QueueObject *self)
{
    while (self->size > 0) {
        queue_remove(self, self->heap[self->size - 1]);
    }
    Py_CLEAR(self->handle);
    Py_CLEAR(self->loop);
    return 0;
}

static void
queue_dealloc(QueueObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    PyObject_ClearWeakRefs((PyObject *)self);
    (void)queue_clear(self);
    PyMem_Free(self->heap);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyMemberDef queue_members[] = {
    {"__weaklistoffset__", AIO_T_PYSSIZET, offsetof(QueueObject, weakreflist),
     AIO_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot queue_slots[] = {
    {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse},
    {Py_tp_clear, queue_clear},
    {Py_tp_members, queue_members},
    {0, NULL},
};

static PyType_Spec queue_spec = {
    .name = "aiomisc_c._backoff._TimerQueue",
    .basicsize = sizeof(QueueObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = queue_slots,
};

static PyObject *
weak_deref(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    if (obj == NULL || obj == Py_None) {
        PyErr_Clear();
        return NULL;
    }
    return Py_NewRef(obj);
#endif
}

/* The queue of `loop` if there is one (new reference), else NULL without
 * an exception. */
static QueueObject *
find_queue(backoff_state *st, PyObject *loop, PyObject **key_out)
{
    if (st->last_queue != NULL) {
        QueueObject *q = (QueueObject *)weak_deref(st->last_queue);
        if (q != NULL && q->loop == loop) {
            return q;
        }
        Py_XDECREF(q);
    }
    PyObject *key = PyLong_FromVoidPtr(loop);
    if (key == NULL) {
        return NULL;
    }
    PyObject *ref = PyDict_GetItemWithError(st->queues, key);   /* borrowed */
    QueueObject *q = NULL;
    if (ref != NULL) {
        q = (QueueObject *)weak_deref(ref);
        /* alive means its loop is alive too: same address, same loop */
        if (q != NULL && q->loop != loop) {
            Py_CLEAR(q);
        }
        if (q != NULL) {
            Py_XSETREF(st->last_queue, Py_NewRef(ref));
        }
    }
    if (key_out != NULL) {
        *key_out = key;
    }
    else {
        Py_DECREF(key);
    }
    return q;
}

/* The queue of `loop`, created on first use (new reference). */
static QueueObject *
get_queue(backoff_state *st, PyObject *loop)
{
    PyObject *key = NULL;
    QueueObject *q = find_queue(st, loop, &key);
    if (q != NULL || PyErr_Occurred()) {
        Py_XDECREF(key);
        return q;
    }
    /* forget the queues of dead loops */
    PyObject *items = PyDict_Items(st->queues);
    if (items == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        PyObject *alive = weak_deref(PyTuple_GET_ITEM(pair, 1));
        if (alive == NULL &&
            PyDict_DelItem(st->queues, PyTuple_GET_ITEM(pair, 0)) < 0) {
            Py_DECREF(items);
            goto fail;
        }
        Py_XDECREF(alive);
    }
    Py_DECREF(items);

    q = PyObject_GC_New(QueueObject, st->QueueType);
    if (q == NULL) {
        goto fail;
    }
    q->st = st;
    q->loop = Py_NewRef(loop);
    q->handle = NULL;
    q->armed_at = 0.0;
    q->heap = NULL;
    q->size = q->capacity = 0;
    q->weakreflist = NULL;
    q->idle_check = 0;
    PyObject_GC_Track(q);
    PyObject *ref = PyWeakref_NewRef((PyObject *)q, NULL);
    if (ref == NULL || PyDict_SetItem(st->queues, key, ref) < 0) {
        Py_XDECREF(ref);
        Py_DECREF(q);
        goto fail;
    }
    Py_XSETREF(st->last_queue, ref);
    Py_DECREF(key);
    return q;
fail:
    Py_XDECREF(key);
    return NULL;
}

/* Bind the call to its loop's timer queue. */
static int
call_get_queue(CallObject *self)
{
    if (self->queue != NULL) {
        return 0;
    }
    if (call_get_loop(self) < 0) {
        return -1;
    }
    self->queue = get_queue(self->st, self->loop);
    return self->queue == NULL ? -1 : 0;
}

/* Arm the call's timer for `when` (monotonic). */
static int
call_arm(CallObject *self, double when, int kind)
{
    QueueObject *q = self->queue;
    if (self->heap_index >= 0) {
        queue_remove(q, self);
    }
    self->timer_when = when;
    self->armed_kind = kind;
    self->fired = K_NONE;
    if (queue_push(q, self) < 0) {
        return -1;
    }
    if (q->handle == NULL || when < q->armed_at) {
        if (queue_arm(q, when) < 0) {
            queue_remove(q, self);
            return -1;
        }
    }
    return 0;
}

/* Disarm the call's timer, if any.  Never fails, never calls Python. */
static void
call_disarm(CallObject *self)
{
    if (self->heap_index >= 0) {
        queue_remove(self->queue, self);
    }
}

/* The call's timer is due (called by its queue, between task steps). */
static int
call_fire(CallObject *self)
{
    backoff_state *st = self->st;
    PyObject *r = NULL;
    if (self->state == S_ATTEMPT && self->task != NULL) {
        /* cancel the task, as asyncio.timeout does; the CancelledError is
         * recognised as ours by `fired` (and uncancel bookkeeping) */
        self->fired = self->armed_kind;
        r = PyObject_CallMethodNoArgs(self->task, st->str_cancel);
    }
    else if (self->state == S_PAUSE && self->waiter != NULL) {
        PyObject *done = PyObject_CallMethodNoArgs(self->waiter, st->str_done);
        if (done == NULL) {
            return -1;
        }
        int is_done = PyObject_IsTrue(done);
        Py_DECREF(done);
        if (is_done < 0) {
            return -1;
        }
        if (is_done) {
            return 0;
        }
        r = PyObject_CallMethodOneArg(self->waiter, st->str_set_result,
                                      Py_None);
    }
    else {
        return 0;
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* After an attempt that ended with `error` (NULL: it returned): disarm and
 * return the kind of timer that turned it into a CancelledError, K_NONE
 * when the error is not ours.  -1 on error. */
static int
call_settle(CallObject *self, PyObject *error)
{
    call_disarm(self);
    int fired = self->fired;
    self->fired = K_NONE;
    if (fired == K_NONE) {
        return K_NONE;
    }
    if (self->st->has_uncancel) {
        PyObject *left = PyObject_CallMethodNoArgs(self->task,
                                                   self->st->str_uncancel);
        if (left == NULL) {
            return -1;
        }
        Py_ssize_t n = PyLong_AsSsize_t(left);
        Py_DECREF(left);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (n > self->baseline) {
            return K_NONE;   /* somebody else cancelled the task too */
        }
    }
    if (error != NULL &&
        PyErr_GivenExceptionMatches(error, self->st->CancelledError)) {
        return fired;
    }
    return K_NONE;
}

/* --- attempt bookkeeping --------------------------------------------------- */

/* The attempt (and its pause) is over, whatever the outcome: count its
 * time, then that it is done.  Like a `finally:` block, a count that fails
 * stops there and its error replaces the exception in flight (if any),
 * which becomes its __context__; -1 then.  Otherwise the exception in
 * flight, if any, is pending again and 0 is returned. */
static int
call_end_attempt(CallObject *self)
{
    PyObject *in_flight = aio_err_take();
    if (counters_add_time(self->st, self->counters,
                          monotonic_seconds() - self->started) < 0 ||
        counters_inc(self->st, self->counters, M_DONE) < 0) {
        if (in_flight != NULL) {
            PyObject *raised = aio_err_take();
            PyException_SetContext(raised, in_flight); /* steals in_flight */
            aio_err_restore(raised);
        }
        return -1;
    }
    aio_err_restore(in_flight);
    return 0;
}

/* The call is over: drop everything that is not needed any more. */
static void
call_finish(CallObject *self)
{
    self->state = S_DONE;
    call_disarm(self);
    if (self->queue != NULL) {
        queue_went_idle(self->queue);
    }
    Py_CLEAR(self->queue);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->task);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
}

/* Raise what the caller gets when the deadline expires. */
static void
call_raise_expired(CallObject *self, PyObject *cause)
{
    PyObject *last = *self->last_exception;
    if (last != NULL) {
        aio_err_restore(Py_NewRef(last));
        return;
    }
    PyObject *error = new_timeout_error(self->st, cause);
    if (error != NULL) {
        aio_err_restore(error);
    }
}

/* The first step: bind the loop and the task when timers are needed. */
static int
call_start(CallObject *self)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    if (p->attempt_timeout_s < 0 && p->deadline_s < 0) {
        return 0;
    }
    if (call_get_loop(self) < 0) {
        return -1;
    }
    if (st->current_tasks != NULL) {
        /* what asyncio.current_task(loop) does there, minus its frame */
        self->task = PyDict_GetItemWithError(st->current_tasks, self->loop);
        if (self->task == NULL && PyErr_Occurred()) {
            return -1;
        }
        self->task = Py_NewRef(self->task != NULL ? self->task : Py_None);
    }
    else {
        self->task = PyObject_CallOneArg(st->current_task, self->loop);
        if (self->task == NULL) {
            return -1;
        }
    }
    if (self->task == Py_None) {
        Py_CLEAR(self->task);
        PyErr_SetString(PyExc_RuntimeError,
                        self->counters != NULL
                            ? "asyncbackoff with a time limit must run in a task"
                            : "timeout with a time limit must run in a task");
        return -1;
    }
    if (st->has_uncancel) {
        /* cancellations requested before the call are not ours to judge */
        PyObject *n = PyObject_CallMethodNoArgs(self->task, st->str_cancelling);
        if (n == NULL) {
            return -1;
        }
        self->baseline = PyLong_AsSsize_t(n);
        Py_DECREF(n);
        if (self->baseline == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (p->deadline_s >= 0) {
        if (p->deadline_s <= 0) {
            call_raise_expired(self, NULL);
            return -1;
        }
        self->has_deadline = 1;   /* deadline_at: set by the first attempt */
    }
    return call_get_queue(self);
}

/* The iterator to drive for the awaitable `aw` (steals `aw`). */
static PyObject *
awaitable_iter(PyObject *aw)
{
    if (PyCoro_CheckExact(aw)) {
        return aw;
    }
    PyTypeObject *type = Py_TYPE(aw);
    if (type->tp_as_async != NULL && type->tp_as_async->am_await != NULL) {
        PyObject *it = type->tp_as_async->am_await(aw);
        Py_DECREF(aw);
        if (it == NULL) {
            return NULL;
        }
        if (PyCoro_CheckExact(it) || !PyIter_Check(it)) {
            PyErr_Format(PyExc_TypeError,
                         "__await__() returned %s",
                         PyCoro_CheckExact(it) ? "a coroutine"
                                               : "a non-iterator");
            Py_DECREF(it);
            return NULL;
        }
        return it;
    }
    if (PyGen_CheckExact(aw)) {
        /* a generator-based coroutine (types.coroutine) */
        PyObject *code = PyObject_GetAttrString(aw, "gi_code");
        if (code == NULL) {
            Py_DECREF(aw);
            return NULL;
        }
        int ok = PyCode_Check(code) &&
                 (((PyCodeObject *)code)->co_flags & CO_ITERABLE_COROUTINE);
        Py_DECREF(code);
        if (ok) {
            return aw;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "object %.100s can't be used in 'await' expression",
                 type->tp_name);
    Py_DECREF(aw);
    return NULL;
}

static void
discard_awaitable(backoff_state *st, PyObject *aw)
{
    PyObject *close;
    int found = aio_getattr_optional(aw, st->str_close, &close);
    if (found > 0) {
        PyObject *r = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (r == NULL) {
            PyErr_WriteUnraisable(aw);
        }
        Py_XDECREF(r);
    }
    else if (found < 0) {
        PyErr_WriteUnraisable(aw);
    }
}

enum outcome {
    O_ERROR = -1,              /* no attempt was made; exception set */
    O_RUN = 0,                 /* self->inner is ready to be sent None */
    O_FAILED = 1,              /* the attempt failed at once; exception set */
    O_IMMEDIATE_TIMEOUT = 2,   /* attempt_timeout is 0 */
    O_FATAL = 3,               /* a loop error after the attempt was counted */
};

/* Start an attempt (see enum outcome). */
static int
call_begin_attempt(CallObject *self)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    double now = monotonic_seconds();
    int timed = self->task != NULL;
    if (self->has_deadline) {
        if (!self->attempts_started) {
            self->deadline_at = now + p->deadline_s;
        }
        else if (now >= self->deadline_at) {
            call_raise_expired(self, NULL);
            return O_ERROR;
        }
    }
    if (counters_inc(st, self->counters, M_ATTEMPTS) < 0) {
        return O_ERROR;
    }
    self->attempts_started++;
    *self->tries += 1;
    self->started = now;
    self->state = S_ATTEMPT;

    PyObject *const *argv = self->args ? &PyTuple_GET_ITEM(self->args, 0) : NULL;
    if (timed) {
        double at = p->attempt_timeout_s;
        if (at >= 0 && at <= 0) {
            PyObject *aw = PyObject_Vectorcall(self->func, argv, self->nargs,
                                               self->kwnames);
            if (aw == NULL) {
                return O_FAILED;
            }
            discard_awaitable(st, aw);
            Py_DECREF(aw);
            return O_IMMEDIATE_TIMEOUT;
        }
        int rc;
        if (at >= 0 && (!self->has_deadline || now + at < self->deadline_at)) {
            rc = call_arm(self, now + at, K_ATTEMPT);
        }
        else {
            rc = call_arm(self, self->deadline_at, K_DEADLINE);
        }
        if (rc < 0) {
            return O_FATAL;
        }
    }
    PyObject *aw = PyObject_Vectorcall(self->func, argv, self->nargs,
                                       self->kwnames);
    if (aw == NULL) {
        return O_FAILED;
    }
    self->inner = awaitable_iter(aw);
    return self->inner == NULL ? O_FAILED : O_RUN;
}

/* Start the pause before the next attempt: *yielded is what to yield to
 * the task (a future, or None to just let the loop run once). */
static int
call_begin_pause(CallObject *self, PyObject **yielded)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    self->state = S_PAUSE;
    self->pause_hits_deadline = 0;
    if (p->pause_s <= 0) {
        *yielded = Py_NewRef(Py_None);
        return 0;
    }
    if (call_get_queue(self) < 0) {
        return -1;
    }
    double when = monotonic_seconds() + p->pause_s;
    if (self->has_deadline && self->deadline_at <= when) {
        when = self->deadline_at;
        self->pause_hits_deadline = 1;
    }
    PyObject *waiter = PyObject_CallMethodNoArgs(self->loop,
                                                 st->str_create_future);
    if (waiter == NULL) {
        return -1;
    }
    Py_XSETREF(self->waiter, waiter);
    if (!isinf(when) && call_arm(self, when, K_NONE) < 0) {
        return -1;
    }
    /* what Future.__await__ does before yielding itself to the task */
    if (PyObject_SetAttr(waiter, st->str_future_blocking, Py_True) < 0) {
        return -1;
    }
    *yielded = Py_NewRef(waiter);
    return 0;
}

/* The pause is over or aborted: cancel what is left of it. */
static void
call_end_pause(CallObject *self)
{
    call_disarm(self);
    PyObject *waiter = self->waiter;
    if (waiter != NULL) {
        self->waiter = NULL;
        PyObject *r = PyObject_CallMethodNoArgs(waiter, self->st->str_cancel);
        if (r == NULL) {
            PyErr_WriteUnraisable(waiter);
        }
        Py_XDECREF(r);
        Py_DECREF(waiter);
    }
}

static PySendResult call_run_attempt(CallObject *self, PyObject **result);

static int
is_never_retried(backoff_state *st, PyObject *error)
{
    return PyErr_GivenExceptionMatches(error, st->CancelledError) ||
           PyErr_GivenExceptionMatches(error, PyExc_KeyboardInterrupt) ||
           PyErr_GivenExceptionMatches(error, PyExc_SystemExit) ||
           PyErr_GivenExceptionMatches(error, PyExc_GeneratorExit);
}

/* The attempt failed with the exception currently set (or timed out before
 * starting when `immediate`).  Either raises (returns PYGEN_ERROR, the call
 * is finished) or starts the pause (returns PYGEN_NEXT, *yielded set). */
static PySendResult
call_attempt_failed(CallObject *self, int immediate, PyObject **yielded)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    PyObject *error = immediate ? NULL : aio_err_take();
    int fired;
    if (immediate) {
        call_disarm(self);
        fired = K_ATTEMPT;
    }
    else {
        fired = call_settle(self, error);
        if (fired < 0) {
            /* uncancel() failed: report that, the attempt's error chained */
            goto raise_current;
        }
    }

    if (fired == K_DEADLINE) {
        /* the deadline's */
        if (counters_inc(st, self->counters, M_CANCELS) < 0) {
            goto raise_current;
        }
        call_raise_expired(self, error);
        goto raise_current;
    }
    if (fired == K_ATTEMPT) {
        PyObject *timeout = new_timeout_error(st, error);
        if (timeout == NULL) {
            goto raise_current;
        }
        Py_XSETREF(error, timeout);
    }
    if (error == NULL) {
        PyErr_SetString(PyExc_SystemError, "attempt failed without error");
        goto raise_current;
    }
    if (is_never_retried(st, error)) {
        if (PyErr_GivenExceptionMatches(error, st->CancelledError) &&
            counters_inc(st, self->counters, M_CANCELS) < 0) {
            goto raise_current;
        }
        goto raise_error;
    }
    if (!PyErr_GivenExceptionMatches(error, p->exceptions)) {
        if (PyErr_GivenExceptionMatches(error, PyExc_Exception)) {
            Py_XSETREF(*self->last_exception, Py_NewRef(error));
        }
        goto raise_error;
    }

    if (counters_inc(st, self->counters, M_ERRORS) < 0) {
        goto raise_current;
    }
    Py_XSETREF(*self->last_exception, Py_NewRef(error));
    if (p->max_tries_n > 0 && *self->tries >= p->max_tries_n) {
        goto raise_error;
    }
    if (p->giveup != NULL && p->giveup != Py_None) {
        PyObject *giveup = Py_NewRef(p->giveup);   /* user code may reset it */
        PyObject *verdict = PyObject_CallOneArg(giveup, error);
        Py_DECREF(giveup);
        if (verdict == NULL) {
            goto raise_current;
        }
        int stop = PyObject_IsTrue(verdict);
        Py_DECREF(verdict);
        if (stop < 0) {
            goto raise_current;
        }
        if (stop) {
            goto raise_error;
        }
    }
    Py_CLEAR(error);
    Py_CLEAR(self->inner);
    if (p->pause_s <= 0 && ++self->immediate_retries % YIELD_EVERY != 0) {
        /* retry at once (no loop iteration in between) */
        if (call_end_attempt(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, yielded);
    }
    if (call_begin_pause(self, yielded) < 0) {
        goto raise_current;
    }
    return PYGEN_NEXT;

raise_error:
    aio_err_restore(error);
    error = NULL;
raise_current:
    Py_XDECREF(error);
    (void)call_end_attempt(self); /* an error stays pending */
    call_finish(self);
    return PYGEN_ERROR;
}

/* The running attempt returned `value` (stolen into *result). */
static PySendResult
call_attempt_returned(CallObject *self, PyObject *value, PyObject **result)
{
    int rc = call_settle(self, NULL);
    if (call_end_attempt(self) < 0) {
        rc = -1;
    }
    call_finish(self);
    if (rc < 0) {
        Py_DECREF(value);
        return PYGEN_ERROR;
    }
    *result = value;
    return PYGEN_RETURN;
}

/* Send `value` or throw `exc` (borrowed; value is then ignored) into the
 * running attempt. */
static PySendResult
call_drive(CallObject *self, PyObject *value, PyObject *exc, PyObject **result)
{
    PyObject *out = NULL;
    PySendResult status;
    if (exc == NULL) {
        status = PyIter_Send(self->inner, value, &out);
    }
    else {
        PyObject *throw;
        int found = aio_getattr_optional(self->inner, self->st->str_throw,
                                         &throw);
        if (found == 0) {
            /* no throw(): raised right here, as PEP 380 says */
            aio_err_restore(Py_NewRef(exc));
            status = PYGEN_ERROR;
        }
        else if (found < 0) {
            status = PYGEN_ERROR;
        }
        else {
            out = PyObject_CallOneArg(throw, exc);
            Py_DECREF(throw);
            if (out != NULL) {
                status = PYGEN_NEXT;
            }
            else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *stop = aio_err_take();
                out = Py_NewRef(((PyStopIterationObject *)stop)->value);
                Py_DECREF(stop);
                status = PYGEN_RETURN;
            }
            else {
                status = PYGEN_ERROR;
            }
        }
    }
    if (status == PYGEN_NEXT) {
        *result = out;
        return PYGEN_NEXT;
    }
    if (status == PYGEN_RETURN) {
        return call_attempt_returned(self, out, result);
    }
    return call_attempt_failed(self, 0, result);
}

/* Begin the next attempt and run it up to its first suspension. */
static PySendResult
call_run_attempt(CallObject *self, PyObject **result)
{
    switch (call_begin_attempt(self)) {
    case O_RUN:
        return call_drive(self, Py_None, NULL, result);
    case O_FAILED:
        return call_attempt_failed(self, 0, result);
    case O_IMMEDIATE_TIMEOUT:
        return call_attempt_failed(self, 1, result);
    case O_FATAL:
        (void)call_end_attempt(self); /* an error stays pending */
        call_finish(self);
        return PYGEN_ERROR;
    default:
        call_finish(self);
        return PYGEN_ERROR;
    }
}

static PySendResult
call_step(CallObject *self, PyObject *value, PyObject *exc, PyObject **result)
{
    *result = NULL;
    switch (self->state) {
    case S_INIT:
        if (exc != NULL) {
            call_finish(self);
            aio_err_restore(Py_NewRef(exc));
            return PYGEN_ERROR;
        }
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return PYGEN_ERROR;
        }
        if (call_start(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, result);

    case S_ATTEMPT:
        return call_drive(self, value, exc, result);

    case S_PAUSE:
        call_end_pause(self);
        if (exc != NULL) {
            /* thrown in during the pause (the caller was cancelled, ...):
             * never swallowed, never retried */
            aio_err_restore(Py_NewRef(exc));
            (void)call_end_attempt(self); /* an error stays pending */
            call_finish(self);
            return PYGEN_ERROR;
        }
        if (call_end_attempt(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        if (self->pause_hits_deadline) {
            call_raise_expired(self, NULL);
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, result);

    default:
        if (exc != NULL) {
            aio_err_restore(Py_NewRef(exc));
        }
        else {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot reuse already awaited coroutine");
        }
        return PYGEN_ERROR;
    }
}

static PySendResult
call_step_guarded(CallObject *self, PyObject *value, PyObject *exc,
                  PyObject **result)
{
    if (self->running) {
        *result = NULL;
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return PYGEN_ERROR;
    }
    self->running = 1;
    Py_INCREF(self);   /* the timer callback may drop the last other ref */
    PySendResult status = call_step(self, value, exc, result);
    if (status == PYGEN_ERROR) {
        aio_coro_convert_stop_iteration();   /* as a coroutine's frame does */
    }
    self->running = 0;
    Py_DECREF(self);
    return status;
}

static PySendResult
call_am_send(PyObject *self, PyObject *value, PyObject **result)
{
    return call_step_guarded((CallObject *)self, value, NULL, result);
}

/* A finished step as a method result: StopIteration(value) on return. */
static PyObject *
send_result_to_object(PySendResult status, PyObject *result, int iternext)
{
    if (status != PYGEN_RETURN) {
        return result;   /* the yielded value, or NULL with an error set */
    }
    if (result == Py_None && iternext) {
        Py_DECREF(result);
        return NULL;     /* exhausted, value None */
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
call_iternext(PyObject *self)
{
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, Py_None, NULL,
                                            &result);
    return send_result_to_object(status, result, 1);
}

static PyObject *
call_send(PyObject *self, PyObject *value)
{
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, value, NULL,
                                            &result);
    return send_result_to_object(status, result, 0);
}

/* throw(exc) / throw(type[, value[, traceback]]) as generators accept it. */
static PyObject *
call_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    PyObject *exc;
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate value");
            return NULL;
        }
        exc = Py_NewRef(typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        if (PyObject_TypeCheck(val, (PyTypeObject *)typ)) {
            exc = Py_NewRef(val);
        }
        else if (val == Py_None) {
            exc = PyObject_CallNoArgs(typ);
        }
        else if (PyTuple_Check(val)) {
            exc = PyObject_Call(typ, val, NULL);
        }
        else {
            exc = PyObject_CallOneArg(typ, val);
        }
        if (exc == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from "
                     "BaseException, not %.100s",
                     Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != Py_None) {
        if (!PyTraceBack_Check(tb)) {
            Py_DECREF(exc);
            PyErr_SetString(PyExc_TypeError,
                            "throw() third argument must be a traceback object");
            return NULL;
        }
        PyException_SetTraceback(exc, tb);
    }
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, NULL, exc,
                                            &result);
    Py_DECREF(exc);
    return send_result_to_object(status, result, 0);
}

/* close(): stop wherever the call is; the attempt in progress is closed. */
static PyObject *
call_close(PyObject *op, PyObject *Py_UNUSED(unused))
{
    CallObject *self = (CallObject *)op;
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return NULL;
    }
    PyObject *error = NULL;
    Py_INCREF(self);
    self->running = 1;
    if (self->state == S_ATTEMPT) {
        if (self->inner != NULL) {
            PyObject *close;
            int found = aio_getattr_optional(self->inner, self->st->str_close,
                                             &close);
            if (found > 0) {
                PyObject *r = PyObject_CallNoArgs(close);
                Py_DECREF(close);
                Py_XDECREF(r);
            }
            if (found < 0 || (found > 0 && PyErr_Occurred())) {
                error = aio_err_take();
            }
        }
        if (call_settle(self, NULL) < 0 && error == NULL) {
            error = aio_err_take();
        }
        /* a failing count replaces the error, as in a `finally:` */
        aio_err_restore(error);
        (void)call_end_attempt(self);
        error = aio_err_take();
    }
    else if (self->state == S_PAUSE) {
        call_end_pause(self);
        aio_err_restore(error);
        (void)call_end_attempt(self);
        error = aio_err_take();
    }
    call_finish(self);
    self->running = 0;
    Py_DECREF(self);
    if (error != NULL) {
        aio_err_restore(error);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A call dropped mid-way is closed, as a coroutine would be. */
static PyObject *call_get_qualname(PyObject *self, void *closure);

/* A call that was never started is dropped: warn as a coroutine does. */
static void
call_warn_unawaited(CallObject *self)
{
    PyObject *saved = aio_err_take();
    PyObject *name = self->unawaited_name != NULL
        ? PyUnicode_FromString(self->unawaited_name)
        : call_get_qualname((PyObject *)self, NULL);
    if (name == NULL ||
        PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "coroutine '%U' was never awaited", name) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(name);
    aio_err_restore(saved);
}

static void
call_finalize(PyObject *op)
{
    CallObject *self = (CallObject *)op;
    if (self->state == S_INIT) {
        self->state = S_DONE;
        call_warn_unawaited(self);
        return;
    }
    if (self->state != S_ATTEMPT && self->state != S_PAUSE) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *r = call_close(op, NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable(op);
    }
    Py_XDECREF(r);
    aio_err_restore(saved);
}

static PyObject *
call_await(PyObject *self)
{
    return Py_NewRef(self);
}

static int
call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->counters);
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->kwnames);
    Py_VISIT(self->inner);
    Py_VISIT(self->loop);
    Py_VISIT(self->task);
    Py_VISIT(self->queue);
    Py_VISIT(self->waiter);
    Py_VISIT(self->own_last_exception);
    return 0;
}

static int
call_clear(CallObject *self)
{
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->task);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
    Py_CLEAR(self->own_last_exception);
    Py_CLEAR(self->func);
    Py_CLEAR(self->counters);
    /* `owner` holds what `policy`, `tries` and `last_exception` point into:
     * clear it last, and point them at our own storage first */
    self->last_exception = &self->own_last_exception;
    self->tries = &self->own_tries;
    Py_CLEAR(self->owner);
    self->state = S_DONE;
    /* off the queue (which only borrows it) before letting go of it */
    QueueObject *queue = self->queue;
    self->queue = NULL;
    if (self->heap_index >= 0) {
        queue_remove(queue, self);
    }
    Py_XDECREF(queue);
    return 0;
}

static void
call_dealloc(CallObject *self)
{
    if (self->state == S_INIT || self->state == S_ATTEMPT ||
        self->state == S_PAUSE) {
        if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
            return;   /* resurrected */
        }
    }
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyObject *
call_get_func_attr(CallObject *self, PyObject *name)
{
    if (self->func == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *value;
    int found = aio_getattr_optional(self->func, name, &value);
    if (found < 0) {
        return NULL;
    }
    return found ? value : PyUnicode_FromString(Py_TYPE(self)->tp_name);
}

static PyObject *
call_get_name(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    return call_get_func_attr(c, c->st->str_name);
}

static PyObject *
call_get_qualname(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    return call_get_func_attr(c, c->st->str_qualname);
}

static PyObject *
call_get_running(PyObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((CallObject *)self)->running);
}

static PyObject *
call_get_await(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    PyObject *awaited = c->state == S_PAUSE ? c->waiter : c->inner;
    return Py_NewRef(awaited != NULL ? awaited : Py_None);
}

static PyObject *
call_repr(PyObject *self)
{
    static const char *const names[] = {"created", "attempt", "pause", "done"};
    CallObject *c = (CallObject *)self;
    PyObject *qualname = call_get_qualname(self, NULL);
    if (qualname == NULL) {
        return NULL;
    }
    PyObject *repr = PyUnicode_FromFormat("<%s %S %s>", Py_TYPE(self)->tp_name,
                                          qualname, names[c->state & 3]);
    Py_DECREF(qualname);
    return repr;
}

static PyMethodDef call_methods[] = {
    {"send", call_send, METH_O,
     "send(value) -> the next value yielded, or raise StopIteration."},
    {"throw", (PyCFunction)(void (*)(void))call_throw, METH_FASTCALL,
     "throw(exc) -> raise exc inside the call."},
    {"close", call_close, METH_NOARGS, "close() -> stop the call."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef call_getsets[] = {
    {"__name__", call_get_name, NULL, NULL, NULL},
    {"__qualname__", call_get_qualname, NULL, NULL, NULL},
    {"cr_running", call_get_running, NULL, NULL, NULL},
    {"cr_await", call_get_await, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot call_slots[] = {
    {Py_tp_doc,
     "One call of a function decorated by asyncbackoff/asyncretry/timeout: "
     "a coroutine-like awaitable that runs the attempts in the awaiting "
     "task."},
    {Py_tp_dealloc, call_dealloc},
    {Py_tp_traverse, call_traverse},
    {Py_tp_clear, call_clear},
    {Py_tp_finalize, call_finalize},
    {Py_tp_iter, call_await},
    {Py_tp_iternext, call_iternext},
    {Py_tp_repr, call_repr},
    {Py_tp_methods, call_methods},
    {Py_tp_getset, call_getsets},
    {Py_am_await, call_await},
    {Py_am_send, call_am_send},
    {0, NULL},
};

static PyType_Spec call_spec = {
    .name = "aiomisc_c._backoff.Call",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};

/* ------------------------------------------------------------------------ */
/* Backoff                                                                   */

static int
backoff_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "attempt_timeout", "deadline", "pause", "exceptions", "max_tries",
        "giveup", "statistic_name", "statistic_class",
    };
    PyObject *v[8];
    if (aio_parse_tuple_dict("Backoff", args, kwargs, names, 2, 8, 8, v) < 0) {
        return -1;
    }
    BackoffObject *self = (BackoffObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    PyObject *zero = PyLong_FromLong(0);
    PyObject *empty = PyTuple_New(0);
    int rc = -1;
    if (zero == NULL || empty == NULL) {
        goto done;
    }
    if (policy_check_and_set(st, &self->policy, v[0], v[1],
                             v[2] ? v[2] : zero, v[3] ? v[3] : empty,
                             v[4] ? v[4] : Py_None, v[5] ? v[5] : Py_None,
                             1) < 0) {
        goto done;
    }
    PyObject *klass = v[7] ? v[7] : st->BackoffStatistic;
    PyObject *statistic = PyObject_CallOneArg(klass, v[6] ? v[6] : Py_None);
    if (statistic == NULL) {
        goto done;
    }
    CountersObject *counters = counters_new(st, statistic);
    Py_DECREF(statistic);
    if (counters == NULL) {
        goto done;
    }
    Py_XSETREF(self->counters, counters);
    rc = 0;
done:
    Py_XDECREF(zero);
    Py_XDECREF(empty);
    return rc;
}

static int
backoff_traverse(BackoffObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->counters);
    return policy_traverse(&self->policy, visit, arg);
}

static int
backoff_clear(BackoffObject *self)
{
    Py_CLEAR(self->counters);
    policy_clear(&self->policy);
    return 0;
}

static void
backoff_dealloc(BackoffObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyObject *
get_statistic(CountersObject *counters)
{
    if (counters == NULL || counters->statistic == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(counters->statistic);
}

static int
set_statistic(PyObject *self, CountersObject **slot, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'statistic'");
        return -1;
    }
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return -1;
    }
    CountersObject *counters = counters_new(st, value);
    if (counters == NULL) {
        return -1;
    }
    Py_XSETREF(*slot, counters);
    return 0;
}

static PyObject *
backoff_get_statistic(PyObject *self, void *Py_UNUSED(closure))
{
    return get_statistic(((BackoffObject *)self)->counters);
}

static int
backoff_set_statistic(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    return set_statistic(self, &((BackoffObject *)self)->counters, value);
}

/* Backoff.prepare(func) -> BackoffExecution sharing this Backoff's
 * statistic (and its resolved counters). */
static PyObject *
backoff_prepare(PyObject *op, PyObject *func)
{
    BackoffObject *self = (BackoffObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->counters == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Backoff.__init__ was not called");
        return NULL;
    }
    ExecutionObject *execution = (ExecutionObject *)policy_object_new(
        st->ExecutionType, NULL, NULL);
    if (execution == NULL) {
        return NULL;
    }
    policy_copy(&execution->policy, &self->policy);
    execution->counters = (CountersObject *)Py_NewRef(self->counters);
    execution->function = Py_NewRef(func);
    return (PyObject *)execution;
}

/* Backoff.execute(func, *args, **kwargs): self.prepare(func)(*args, ...). */
static PyObject *
backoff_execute(PyObject *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "execute() missing required argument 'func'");
        return NULL;
    }
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return NULL;
    }
    PyObject *execution = PyObject_CallMethodOneArg(self, st->str_prepare,
                                                    args[0]);
    if (execution == NULL) {
        return NULL;
    }
    PyObject *call = PyObject_Vectorcall(execution, args + 1, nargs - 1,
                                         kwnames);
    Py_DECREF(execution);
    return call_named(st, call, "Backoff.execute");
}

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF (timeout) */
    vectorcallfunc vectorcall;
    PyObject *func;
    PyObject *backoff;            /* BackoffFunction: the Backoff */
    PyObject *dict;
    PyObject *weakreflist;
} WrapperObject;

static PyObject *wrapper_new_backoff(backoff_state *st, PyObject *func,
                                     PyObject *backoff);

/* Backoff(func) -> the wrapped coroutine function. */
static PyObject *
backoff_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "Backoff() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Backoff", 1, 1, &func)) {
        return NULL;
    }
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return NULL;
    }
    PyObject *ok = PyObject_CallOneArg(st->iscoroutinefunction, func);
    if (ok == NULL) {
        return NULL;
    }
    int is_coro = PyObject_IsTrue(ok);
    Py_DECREF(ok);
    if (is_coro < 0) {
        return NULL;
    }
    if (!is_coro) {
        PyErr_SetString(PyExc_TypeError, "Function must be a coroutine function");
        return NULL;
    }
    PyObject *wrapper = wrapper_new_backoff(st, func, self);
    if (wrapper == NULL) {
        return NULL;
    }
    PyObject *wrapped = PyObject_CallFunctionObjArgs(st->update_wrapper,
                                                     wrapper, func, NULL);
    Py_DECREF(wrapper);
    return wrapped;
}

/* Backoff.prepare(func): like the Python twin, func may be passed by name. */
static PyObject *
backoff_prepare_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    static const char *const names[] = {"func"};
    PyObject *func = NULL;
    if (aio_parse_fastcall("prepare", args, nargs, kwnames, names, 1, 1, 1,
                           &func) < 0) {
        return NULL;
    }
    return backoff_prepare(op, func);
}

static PyMethodDef backoff_methods[] = {
    {"prepare", (PyCFunction)(void (*)(void))backoff_prepare_method,
     METH_FASTCALL | METH_KEYWORDS,
     "prepare($self, /, func)\n--\n\n"
     "BackoffExecution for one call of func."},
    {"execute", (PyCFunction)(void (*)(void))backoff_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute(func, *args, **kwargs) -> awaitable: prepare(func)(*args, ...)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef backoff_getsets[] = {
    POLICY_GETSETS,
    {"statistic", backoff_get_statistic, backoff_set_statistic, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot backoff_slots[] = {
    {Py_tp_doc,
     "Backoff(attempt_timeout, deadline, pause=0, exceptions=(), "
     "max_tries=None, giveup=None, statistic_name=None, "
     "statistic_class=BackoffStatistic)\n\nThe decorator returned by "
     "asyncbackoff() and asyncretry()."},
    {Py_tp_new, policy_object_new},
    {Py_tp_init, backoff_init},
    {Py_tp_dealloc, backoff_dealloc},
    {Py_tp_traverse, backoff_traverse},
    {Py_tp_clear, backoff_clear},
    {Py_tp_call, backoff_call},
    {Py_tp_methods, backoff_methods},
    {Py_tp_getset, backoff_getsets},
    {0, NULL},
};

static PyType_Spec backoff_spec = {
    .name = "aiomisc_c._backoff.Backoff",
    .basicsize = sizeof(BackoffObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = backoff_slots,
};

/* ------------------------------------------------------------------------ */
/* BackoffExecution                                                          */

static int
execution_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "function", "statistic", "attempt_timeout", "deadline", "pause",
        "exceptions", "max_tries", "giveup",
    };
    PyObject *v[8];
    if (aio_parse_tuple_dict("BackoffExecution", args, kwargs, names, 4, 8, 8,
                             v) < 0) {
        return -1;
    }
    ExecutionObject *self = (ExecutionObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    PyObject *zero = PyLong_FromLong(0);
    PyObject *empty = PyTuple_New(0);
    int rc = -1;
    if (zero == NULL || empty == NULL) {
        goto done;
    }
    if (policy_check_and_set(st, &self->policy, v[2], v[3],
                             v[4] ? v[4] : zero, v[5] ? v[5] : empty,
                             v[6] ? v[6] : Py_None, v[7] ? v[7] : Py_None,
                             0) < 0) {
        goto done;
    }
    CountersObject *counters = counters_new(st, v[1]);
    if (counters == NULL) {
        goto done;
    }
    Py_XSETREF(self->counters, counters);
    Py_XSETREF(self->function, Py_NewRef(v[0]));
    Py_CLEAR(self->last_exception);
    self->total_tries = 0;
    rc = 0;
done:
    Py_XDECREF(zero);
    Py_XDECREF(empty);
    return rc;
}

static int
execution_traverse(ExecutionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->counters);
    Py_VISIT(self->function);
    Py_VISIT(self->last_exception);
    return policy_traverse(&self->policy, visit, arg);
}

static int
execution_clear(ExecutionObject *self)
{
    Py_CLEAR(self->counters);
    Py_CLEAR(self->function);
    Py_CLEAR(self->last_exception);
    policy_clear(&self->policy);
    return 0;
}

static void
execution_dealloc(ExecutionObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

/* execute(*args, **kwargs) and __call__: one call of the function, named
 * `name` in its "was never awaited" warning. */
static PyObject *
execution_start(PyObject *op, PyObject *const *args, size_t nargsf,
                PyObject *kwnames, const char *name)
{
    ExecutionObject *self = (ExecutionObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->function == NULL || self->counters == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "BackoffExecution.__init__ was not called");
        return NULL;
    }
    return call_named(st, call_new(st, op, &self->policy, self->counters, self,
                               self->function, args, nargsf, kwnames),
                      name);
}

static PyObject *
execution_execute(PyObject *op, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    return execution_start(op, args, nargsf, kwnames,
                           "BackoffExecution.execute");
}

static PyObject *
execution_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    PyObject *const *argv = &PyTuple_GET_ITEM(args, 0);
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0) {
        return execution_start(op, argv, (size_t)nargs, NULL,
                               "BackoffExecution.__call__");
    }
    /* rare: flatten the keywords for the vectorcall convention */
    Py_ssize_t nkw = PyDict_GET_SIZE(kwargs);
    PyObject *kwnames = PyTuple_New(nkw);
    PyObject **stack = PyMem_Malloc((size_t)(nargs + nkw) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (kwnames == NULL || stack == NULL) {
        if (stack == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        stack[i] = argv[i];
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, k = 0;
    while (PyDict_Next(kwargs, &pos, &key, &value)) {
        PyTuple_SET_ITEM(kwnames, k, Py_NewRef(key));
        stack[nargs + k] = value;
        k++;
    }
    result = execution_start(op, stack, (size_t)nargs, kwnames,
                             "BackoffExecution.__call__");
done:
    PyMem_Free(stack);
    Py_XDECREF(kwnames);
    return result;
}

static PyObject *
execution_get_function(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *f = ((ExecutionObject *)self)->function;
    return Py_NewRef(f != NULL ? f : Py_None);
}

static int
execution_set_function(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'function'");
        return -1;
    }
    Py_XSETREF(((ExecutionObject *)self)->function, Py_NewRef(value));
    return 0;
}

static PyObject *
execution_get_last_exception(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *e = ((ExecutionObject *)self)->last_exception;
    return Py_NewRef(e != NULL ? e : Py_None);
}

static int
execution_set_last_exception(PyObject *self, PyObject *value,
                             void *Py_UNUSED(c))
{
    ExecutionObject *e = (ExecutionObject *)self;
    if (value == NULL || value == Py_None) {
        Py_CLEAR(e->last_exception);
        return 0;
    }
    Py_XSETREF(e->last_exception, Py_NewRef(value));
    return 0;
}

static PyObject *
execution_get_total_tries(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(((ExecutionObject *)self)->total_tries);
}

static int
execution_set_total_tries(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'total_tries'");
        return -1;
    }
    long long n = PyLong_AsLongLong(value);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    ((ExecutionObject *)self)->total_tries = n;
    return 0;
}

static PyObject *
execution_get_statistic(PyObject *self, void *Py_UNUSED(closure))
{
    return get_statistic(((ExecutionObject *)self)->counters);
}

static int
execution_set_statistic(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    return set_statistic(self, &((ExecutionObject *)self)->counters, value);
}

static PyMethodDef execution_methods[] = {
    {"execute", (PyCFunction)(void (*)(void))execution_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute(*args, **kwargs) -> awaitable running the function with "
     "retries."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "See PEP 585"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef execution_getsets[] = {
    POLICY_GETSETS,
    {"function", execution_get_function, execution_set_function, NULL, NULL},
    {"statistic", execution_get_statistic, execution_set_statistic, NULL,
     NULL},
    {"last_exception", execution_get_last_exception,
     execution_set_last_exception, NULL, NULL},
    {"total_tries", execution_get_total_tries, execution_set_total_tries,
     NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot execution_slots[] = {
    {Py_tp_doc,
     "BackoffExecution(function, statistic, attempt_timeout, deadline, "
     "pause=0, exceptions=(), max_tries=None, giveup=None)"},
    {Py_tp_new, policy_object_new},
    {Py_tp_init, execution_init},
    {Py_tp_dealloc, execution_dealloc},
    {Py_tp_traverse, execution_traverse},
    {Py_tp_clear, execution_clear},
    {Py_tp_call, execution_call},
    {Py_tp_methods, execution_methods},
    {Py_tp_getset, execution_getsets},
    {0, NULL},
};

static PyType_Spec execution_spec = {
    .name = "aiomisc_c._backoff.BackoffExecution",
    .basicsize = sizeof(ExecutionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = execution_slots,
};

/* ------------------------------------------------------------------------ */
/* The decorated functions: BackoffFunction and TimeoutFunction              */

static PyObject *
wrapper_new(backoff_state *st, PyTypeObject *type, PyObject *func,
            PyObject *backoff)
{
    WrapperObject *self = PyObject_GC_New(WrapperObject, type);
    if (self == NULL) {
        return NULL;
    }
    memset(&self->policy, 0, sizeof(self->policy));
    self->func = Py_NewRef(func);
    self->backoff = Py_XNewRef(backoff);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->vectorcall = NULL;
    PyObject_GC_Track(self);
    (void)st;
    return (PyObject *)self;
}

/* True when Backoff.execute/prepare are the module's own (not patched). */
static int
backoff_is_pristine(backoff_state *st, PyObject *backoff)
{
    if (Py_TYPE(backoff) != st->BackoffType) {
        return 0;
    }
    PyObject *dict = st->BackoffType->tp_dict;
    PyObject *execute = PyDict_GetItemWithError(dict, st->str_execute);
    if (execute != st->orig_execute) {
        return 0;
    }
    return PyDict_GetItemWithError(dict, st->str_prepare) == st->orig_prepare;
}

static PyObject *
backoff_function_vectorcall(PyObject *op, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
    WrapperObject *self = (WrapperObject *)op;
    backoff_state *st = state_of_final(op);
    PyObject *backoff = self->backoff;
    if (backoff_is_pristine(st, backoff)) {
        BackoffObject *b = (BackoffObject *)backoff;
        if (b->counters == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Backoff.__init__ was not called");
            return NULL;
        }
        return call_new(st, backoff, &b->policy, b->counters, NULL,
                        self->func, args, nargsf, kwnames);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    /* a subclass or a patched class: go through backoff.execute() */
    PyObject *execute = PyObject_GetAttr(backoff, st->str_execute);
    if (execute == NULL) {
        return NULL;
    }
    PyObject *result = aio_call_prepend(execute, self->func, args, nargsf,
                                        kwnames);
    Py_DECREF(execute);
    return result;
}

static PyObject *
timeout_function_vectorcall(PyObject *op, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
    WrapperObject *self = (WrapperObject *)op;
    return call_new(state_of_final(op), op, &self->policy, NULL, NULL,
                    self->func, args, nargsf, kwnames);
}

/* TimeoutFunction(func, value): the wrapper the C `timeout` decorator
 * returns (the checks are done by _backoff_base.make_timeout). */
static PyObject *
timeout_function_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *func, *value;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
        !PyArg_UnpackTuple(args, "TimeoutFunction", 2, 2, &func, &value)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError,
                            "TimeoutFunction() takes no keyword arguments");
        }
        return NULL;
    }
    backoff_state *st = (backoff_state *)PyType_GetModuleState(type);
    WrapperObject *self = (WrapperObject *)wrapper_new(st, type, func, NULL);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = timeout_function_vectorcall;
    Policy *p = &self->policy;
    PyObject *one = PyLong_FromLong(1);
    if (policy_init(p) < 0 || one == NULL ||
        policy_set(p, F_ATTEMPT_TIMEOUT, value) < 0 ||
        policy_set(p, F_MAX_TRIES, one) < 0) {
        Py_XDECREF(one);
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(one);
    return (PyObject *)self;
}

static PyObject *
wrapper_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static int
wrapper_traverse(WrapperObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->func);
    Py_VISIT(self->backoff);
    Py_VISIT(self->dict);
    return policy_traverse(&self->policy, visit, arg);
}

static int
wrapper_clear(WrapperObject *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->backoff);
    Py_CLEAR(self->dict);
    policy_clear(&self->policy);
    return 0;
}

static void
wrapper_dealloc(WrapperObject *self)
{
    aio_gc_dealloc((PyObject *)self, 1);
}

static PyObject *
wrapper_repr(PyObject *op)
{
    WrapperObject *self = (WrapperObject *)op;
    return PyUnicode_FromFormat("<%s wrapping %R>", Py_TYPE(op)->tp_name,
                                self->func);
}

/* __code__, __defaults__, __kwdefaults__ make the wrapper "function-like"
 * for inspect (< 3.12 reads CO_COROUTINE from __code__); __wrapped__ is
 * followed first by inspect.signature, so signatures stay the wrapped
 * function's. */
static PyObject *
wrapper_get_code(PyObject *op, void *Py_UNUSED(closure))
{
    backoff_state *st = state_of_final(op);
    return aio_coroutine_code(((WrapperObject *)op)->func, st->str_code,
                              st->coroutine_code);
}

static PyObject *
wrapper_get_defaults(PyObject *op, void *Py_UNUSED(closure))
{
    return aio_func_attr_or_none(((WrapperObject *)op)->func,
                                 state_of_final(op)->str_defaults,
                                 aio_is_tuple);
}

static PyObject *
wrapper_get_kwdefaults(PyObject *op, void *Py_UNUSED(closure))
{
    return aio_func_attr_or_none(((WrapperObject *)op)->func,
                                 state_of_final(op)->str_kwdefaults,
                                 aio_is_dict);
}

static PyObject *
wrapper_get_backoff(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *b = ((WrapperObject *)op)->backoff;
    return Py_NewRef(b != NULL ? b : Py_None);
}

static PyObject *
wrapper_get_timeout(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *t = ((WrapperObject *)op)->policy.attempt_timeout;
    return Py_NewRef(t != NULL ? t : Py_None);
}

static PyMemberDef wrapper_members[] = {
    {"__dictoffset__", AIO_T_PYSSIZET, offsetof(WrapperObject, dict),
     AIO_READONLY, NULL},
    {"__weaklistoffset__", AIO_T_PYSSIZET,
     offsetof(WrapperObject, weakreflist), AIO_READONLY, NULL},
    {"__vectorcalloffset__", AIO_T_PYSSIZET,
     offsetof(WrapperObject, vectorcall), AIO_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef backoff_function_getsets[] = {
    {"__code__", wrapper_get_code, NULL, NULL, NULL},
    {"__defaults__", wrapper_get_defaults, NULL, NULL, NULL},
    {"__kwdefaults__", wrapper_get_kwdefaults, NULL, NULL, NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"backoff", wrapper_get_backoff, NULL, "the Backoff", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef timeout_function_getsets[] = {
    {"__code__", wrapper_get_code, NULL, NULL, NULL},
    {"__defaults__", wrapper_get_defaults, NULL, NULL, NULL},
    {"__kwdefaults__", wrapper_get_kwdefaults, NULL, NULL, NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"timeout", wrapper_get_timeout, NULL, "the time limit", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot backoff_function_slots[] = {
    {Py_tp_doc, "A coroutine function decorated by a Backoff."},
    {Py_tp_dealloc, wrapper_dealloc},
    {Py_tp_traverse, wrapper_traverse},
    {Py_tp_clear, wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, wrapper_descr_get},
    {Py_tp_repr, wrapper_repr},
    {Py_tp_members, wrapper_members},
    {Py_tp_getset, backoff_function_getsets},
    {0, NULL},
};

static PyType_Spec backoff_function_spec = {
    .name = "aiomisc_c._backoff.BackoffFunction",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = backoff_function_slots,
};

static PyType_Slot timeout_function_slots[] = {
    {Py_tp_doc,
     "TimeoutFunction(func, value): a coroutine function decorated by "
     "timeout(value)."},
    {Py_tp_new, timeout_function_tp_new},
    {Py_tp_dealloc, wrapper_dealloc},
    {Py_tp_traverse, wrapper_traverse},
    {Py_tp_clear, wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, wrapper_descr_get},
    {Py_tp_repr, wrapper_repr},
    {Py_tp_members, wrapper_members},
    {Py_tp_getset, timeout_function_getsets},
    {0, NULL},
};

static PyType_Spec timeout_function_spec = {
    .name = "aiomisc_c._backoff.TimeoutFunction",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = timeout_function_slots,
};

/* BackoffFunction's vectorcall is set per instance in wrapper_new's
 * caller. */
static PyObject *
wrapper_new_backoff(backoff_state *st, PyObject *func, PyObject *backoff)
{
    PyObject *self = wrapper_new(st, st->BackoffFunctionType, func, backoff);
    if (self != NULL) {
        ((WrapperObject *)self)->vectorcall = backoff_function_vectorcall;
    }
    return self;
}

/* ------------------------------------------------------------------------ */
/* Module                                                                    */

static int
set_class_attrs(PyTypeObject *type, PyObject *markers)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(markers, &pos, &key, &value)) {
        if (PyObject_SetAttr((PyObject *)type, key, value) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
backoff_exec(PyObject *module)
{
    backoff_state *st = backoff_state_from_module(module);
    PyObject *base = NULL, *markers = NULL, *factories = NULL;
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
    INTERN(str_code, "__code__")
    INTERN(str_defaults, "__defaults__")
    INTERN(str_kwdefaults, "__kwdefaults__")
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
        (st->coroutine_code = PyObject_GetAttrString(
             base, "COROUTINE_CODE")) == NULL ||
        (markers = PyObject_GetAttrString(base, "COROUTINE_MARKERS")) ==
            NULL) {
        goto done;
    }
    if (!PyDict_Check(markers)) {
        PyErr_SetString(PyExc_TypeError, "COROUTINE_MARKERS must be a dict");
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
    if (set_class_attrs(st->BackoffFunctionType, markers) < 0 ||
        set_class_attrs(st->TimeoutFunctionType, markers) < 0) {
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
    if (retry_statistic == NULL ||
        PyModule_AddObject(module, "RetryStatistic", retry_statistic) < 0) {
        Py_XDECREF(retry_statistic);
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(base);
    Py_XDECREF(markers);
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
    X(coroutine_code) X(orig_execute) X(orig_prepare) X(str_cancel)            \
    X(str_cancelling) X(str_uncancel) X(str_time) X(str_call_at)               \
    X(str_call_soon)                                                           \
    X(str_create_future) X(str_set_result) X(str_done) X(str_throw)            \
    X(str_close) X(str_future_blocking) X(str_counter_slot) X(str_execute)     \
    X(str_prepare) X(str_code) X(str_defaults) X(str_kwdefaults)               \
    X(str_qualname) X(str_name)

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
    {"_loop_timer_armed", loop_timer_armed, METH_O,
     "_loop_timer_armed(loop) -> whether a real timer of ours is armed"},
    {"_pending_timers", pending_timers, METH_O,
     "_pending_timers(loop) -> number of calls with a timer armed on loop"},
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
