/*
 * circuit_breaker.c -> aiomisc_c._circuit_breaker
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

enum { ST_PASSING = 0, ST_BROKEN = 1, ST_RECOVERING = 2 };

/* Statistic counters, in the order of STAT_NAMES. */
enum {
    STAT_CALL_COUNT,
    STAT_CALL_PASSING,
    STAT_CALL_BROKEN,
    STAT_CALL_RECOVERING,
    STAT_CALL_RECOVERING_OK,
    STAT_CALL_RECOVERING_FAILED,
    STAT_COUNT
};
static const char *const STAT_NAMES[STAT_COUNT] = {
    "call_count",     "call_passing",       "call_broken",
    "call_recovering", "call_recovering_ok", "call_recovering_failed",
};

/* Class constants, in the order of LIMIT_NAMES. */
enum { LIM_BUCKET_COUNT, LIM_RECOVER_BROKEN, LIM_PASSING_BROKEN, LIM_COUNT };
static const char *const LIMIT_NAMES[LIM_COUNT] = {
    "BUCKET_COUNT", "RECOVER_BROKEN_THRESHOLD", "PASSING_BROKEN_THRESHOLD",
};

typedef struct {
    PyTypeObject *breaker_type;
    PyTypeObject *context_type;
    PyTypeObject *call_async_type;
    PyTypeObject *wrapper_type;
    PyTypeObject *async_wrapper_type;

    PyObject *base_module;        /* aiomisc_c._circuit_breaker_base */
    PyObject *states[3];          /* CircuitBreakerStates members */
    PyObject *counter_keys[3];    /* CounterKey members */
    PyObject *circuit_broken;     /* CircuitBroken */
    PyObject *statistic_class;    /* CircuitBreakerStatistic */
    PyObject *validate_arguments;
    PyObject *log_inspector_error;
    PyObject *never_failures;     /* tuple of exception classes */
    PyObject *counter_class;      /* collections.Counter */
    PyObject *get_running_loop;   /* asyncio.get_running_loop */
    PyObject *update_wrapper;     /* functools.update_wrapper */
    PyObject *default_exceptions; /* (Exception,) */
    PyObject *coroutine_code;     /* _backoff_base.COROUTINE_CODE */

    PyObject *str_get_time;       /* "_get_time" */
    PyObject *str_loop;           /* "loop" */
    PyObject *str_time;           /* "time" */
    PyObject *str_random;         /* "random" */
    PyObject *str_throw;          /* "throw" */
    PyObject *str_close;          /* "close" */
    PyObject *str_func;           /* "func" */
    PyObject *str_call_async;     /* "call_async" */
    PyObject *str_code;           /* "__code__" */
    PyObject *str_defaults;       /* "__defaults__" */
    PyObject *str_kwdefaults;     /* "__kwdefaults__" */
    PyObject *str_recovery_ratio; /* "recovery_ratio" */
    PyObject *str_limits[LIM_COUNT];

    /* The objects the exact type's dict held at import: while they are
     * still there, nothing is overridden and the cached values apply. */
    PyObject *orig_get_time;
    PyObject *orig_loop;
    PyObject *orig_limits[LIM_COUNT];
    double limit_values[LIM_COUNT];
    PyObject *base_loop_time;     /* asyncio.BaseEventLoop.time */
    PyObject *time_dict;          /* time.__dict__ */
    PyObject *str_monotonic;      /* "monotonic" */
    PyObject *orig_monotonic;     /* time.monotonic */
#if PY_VERSION_HEX < 0x030C0000
    /* cache of monotonic_untouched(), see there */
    int time_dict_checked;
    uint64_t time_dict_version;
    int monotonic_untouched;
#endif
    /* cache of original_hooks() for the exact type, see there */
    unsigned int hooks_tag;
    int hooks_original;
} cb_state;

static PyModuleDef cb_module;
AIO_DEFINE_STATE_ACCESSORS(cb_state, cb_module)

/* ------------------------------------------------------------------------ */
/* Breaker                                                                   */

typedef struct {
    double id;          /* bucket id (an integral value) */
    uint64_t serial;    /* unique per breaker: finds the bucket again */
    long long fail, ok, total;
    int bad;            /* bucket_bad() as of the last change */
} Bucket;

typedef struct {
    PyObject_HEAD
    cb_state *st;               /* module state; the type keeps it alive */
    int initialized;            /* __init__ done and not cleared */

    PyObject *loop;             /* `_loop`; NULL when unset */
    PyObject *response_time;    /* as given (the property returns it) */
    PyObject *exceptions;       /* tuple of classes counted as failures */
    PyObject *inspector;        /* callable or NULL */
    PyObject *last_exception;   /* NULL means None */
    PyObject *counters;         /* CircuitBreakerStatistic */
    Py_buffer stat_view;        /* export of the counters' int buffer */
    long long *stat[STAT_COUNT];

    double error_ratio;
    double response_time_value;
    double recovery_time, broken_time, passing_time;
    double stuck_until, recovery_at;
    int state;

    /* loop_time(): the loop whose `time` was resolved, the function found
     * (NULL: not a plain method) and the loop type's version tag then */
    PyObject *clock_loop;
    PyObject *clock_func;
    unsigned int clock_tag;

    /* bucket_id_cached(): bucket ids are constant for
     * ts = now * BUCKET_COUNT in [id_ts_low, id_ts_high); valid only for
     * the BUCKET_COUNT it was computed with (id_count, 0 = empty) */
    double id_ts_low, id_ts_high, id_count, id_value;

    Bucket *ring;               /* deque(maxlen=cap) of buckets */
    Py_ssize_t cap, len, head;  /* head: index of the oldest */
    /* window_ratio() without a scan: how many buckets in the ring are bad,
     * and whether their ids increase from the oldest to the newest (false
     * after the clock went back, until the ring is emptied) */
    Py_ssize_t ring_bad;
    int ring_ordered;
    uint64_t next_serial;
} Breaker;

typedef struct {
    double bucket_count, recover_broken, passing_broken;
} Limits;

/* --- the bucketed window (pure C: called with no Python in between) ----- */

static double
bucket_id(double now, double bucket_count, double response_time)
{
    /* Python: ts = now * BUCKET_COUNT; int(ts - (ts % response_time)),
     * with Python's float modulo (sign of the divisor) */
    double ts = now * bucket_count;
    double mod = fmod(ts, response_time);
    if (mod != 0.0) {
        if ((response_time < 0) != (mod < 0)) {
            mod += response_time;
        }
    }
    else {
        mod = copysign(0.0, response_time);
    }
    return trunc(ts - mod);
}

/* bucket_id(), without the fmod() (a long division, the largest cost of a
 * guarded call) while the clock stays inside the bucket of the last
 * computation.
 *
 * For ts >= 0 and response_time > 0, ts - fmod(ts, rt) is k * rt rounded,
 * with k = floor(ts / rt): fmod is exact, so the value only depends on k and
 * every ts with the same k gives the same id.  After a computation at ts,
 * k is unchanged for every ts' in [ts, (k + 1) * rt); the upper end is
 * computed in floating point and lowered by a few ulps so that it never
 * exceeds the exact boundary.  Anything else (a clock that went back, a
 * negative time, another BUCKET_COUNT) takes the exact path. */
static double
bucket_id_cached(Breaker *self, double now, double bucket_count)
{
    double response_time = self->response_time_value;
    double ts = now * bucket_count;
    if (bucket_count == self->id_count && ts >= self->id_ts_low &&
        ts < self->id_ts_high) {
        return self->id_value;
    }
    double id = bucket_id(now, bucket_count, response_time);
    if (ts >= 0.0 && response_time > 0.0 && isfinite(ts) &&
        bucket_count != 0.0) {
        double start = ts - fmod(ts, response_time);
        double high = start + response_time;
        high -= high * (8 * DBL_EPSILON);
        self->id_ts_low = ts;
        self->id_ts_high = high;   /* may be <= ts: then it never hits */
        self->id_count = bucket_count;
        self->id_value = id;
    }
    else {
        self->id_count = 0.0;
    }
    return id;
}

static inline Bucket *
ring_at(Breaker *self, Py_ssize_t i)
{
    /* 0 <= head < cap and 0 <= i < cap: no division needed */
    Py_ssize_t index = self->head + i;
    if (index >= self->cap) {
        index -= self->cap;
    }
    return &self->ring[index];
}

/* The serial of the current bucket, appending a new one when the ring is
 * empty or the newest bucket is older. */
static uint64_t
current_bucket(Breaker *self, double id)
{
    if (self->len > 0) {
        Bucket *last = ring_at(self, self->len - 1);
        if (last->id == id) {
            return last->serial;
        }
    }
    uint64_t serial = ++self->next_serial;
    if (self->cap == 0) {
        return serial; /* deque(maxlen=0): dropped at once */
    }
    if (self->len == 0) {
        self->ring_bad = 0;
        self->ring_ordered = 1;
    }
    else if (id < ring_at(self, self->len - 1)->id) {
        self->ring_ordered = 0;
    }
    Bucket *slot;
    if (self->len < self->cap) {
        slot = ring_at(self, self->len);
        self->len++;
    }
    else {
        slot = ring_at(self, 0); /* drop the oldest */
        self->ring_bad -= slot->bad;
        self->head = self->head + 1 == self->cap ? 0 : self->head + 1;
    }
    slot->id = id;
    slot->serial = serial;
    slot->fail = slot->ok = slot->total = 0;
    slot->bad = 0;
    return serial;
}

/* A bucket with calls and an error ratio at or above the breaker's. */
static inline int
bucket_bad(Breaker *self, const Bucket *bucket)
{
    if (bucket->total == 0) {
        return 0;
    }
    if (bucket->fail == 0) { /* no division on the common path */
        return 0.0 >= self->error_ratio;
    }
    return (double)bucket->fail / (double)bucket->total >= self->error_ratio;
}

/* After a change of `bucket`'s counts: keep ring_bad exact. */
static inline void
bucket_changed(Breaker *self, Bucket *bucket)
{
    int bad = bucket_bad(self, bucket);
    self->ring_bad += bad - bucket->bad;
    bucket->bad = bad;
}

static Bucket *
find_bucket(Breaker *self, uint64_t serial)
{
    for (Py_ssize_t i = self->len - 1; i >= 0; i--) {
        Bucket *bucket = ring_at(self, i);
        if (bucket->serial == serial) {
            return bucket;
        }
    }
    return NULL; /* rotated out or cleared: the counts are dropped */
}

/* recovery_ratio; *any is 0 when the window is empty (the ratio is int 0) */
static double
window_ratio(Breaker *self, double current, double bucket_count, int *any)
{
    double not_before = current - self->response_time_value * bucket_count;
    Py_ssize_t total = 0, bad = 0;
    if (self->len > 0 && self->ring_ordered &&
        ring_at(self, 0)->id >= not_before) {
        /* every bucket is in the window: the tally is the answer */
        *any = 1;
        return (double)self->ring_bad / (double)self->len;
    }
    for (Py_ssize_t i = self->len - 1; i >= 0; i--) {
        Bucket *bucket = ring_at(self, i);
        if (bucket->id < not_before) {
            break;
        }
        total++;
        bad += bucket->bad;
    }
    *any = total > 0;
    return total ? (double)bad / (double)total : 0.0;
}

static void
break_circuit(Breaker *self, double now)
{
    self->stuck_until = now + self->broken_time;
    self->state = ST_BROKEN;
    self->len = 0;
    self->head = 0;
}

static void
compute_state(Breaker *self, double now, double current, const Limits *limits)
{
    if (now < self->stuck_until) {
        return;
    }
    if (self->state == ST_BROKEN) {
        self->state = ST_RECOVERING;
        self->recovery_at = now;
        return;
    }
    if (self->state == ST_PASSING &&
        (double)self->len < limits->bucket_count) {
        return; /* not enough statistics yet */
    }
    int any;
    double ratio = window_ratio(self, current, limits->bucket_count, &any);
    if (self->state == ST_PASSING) {
        if (ratio >= limits->passing_broken) {
            break_circuit(self, now);
        }
        return;
    }
    if (ratio >= limits->recover_broken * self->error_ratio) {
        break_circuit(self, now);
    }
    else if (now - self->recovery_at >= self->recovery_time) {
        self->stuck_until = now + self->passing_time;
        self->state = ST_PASSING;
    }
}

/* --- hooks: clock and class constants -------------------------------------- */

/* Whether the hooks (`_get_time`, `loop`, the class constants) are the
 * originals: 1 for the exact type while its dict holds the objects it was
 * created with, 0 for subclasses or a patched class, -1 on error.
 *
 * The answer for the exact type is cached together with the type's version
 * tag: CPython invalidates the tag (the key of its own method cache) on
 * every change of the type's attributes, so a patched class is seen at the
 * next call and checked again by dict lookups. */
static int
check_hooks(cb_state *st, PyTypeObject *type)
{
    PyObject *dict = type->tp_dict;
    PyObject *names[2 + LIM_COUNT] = {st->str_get_time, st->str_loop};
    PyObject *originals[2 + LIM_COUNT] = {st->orig_get_time, st->orig_loop};
    for (int i = 0; i < LIM_COUNT; i++) {
        names[2 + i] = st->str_limits[i];
        originals[2 + i] = st->orig_limits[i];
    }
    for (int i = 0; i < 2 + LIM_COUNT; i++) {
        PyObject *value = PyDict_GetItemWithError(dict, names[i]);
        if (value == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (value != originals[i]) {
            return 0;
        }
    }
    return 1;
}

static inline int
tag_is_valid(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030C0000
    return type->tp_version_tag != 0; /* reset to 0 on modification */
#else
    return type->tp_version_tag != 0 &&
           PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG);
#endif
}

static int
original_hooks(Breaker *self)
{
    cb_state *st = self->st;
    PyTypeObject *type = Py_TYPE(self);
    if (type != st->breaker_type) {
        return 0;
    }
    if (tag_is_valid(type) && type->tp_version_tag == st->hooks_tag) {
        return st->hooks_original;
    }
    int original = check_hooks(st, type);
    if (original < 0) {
        return -1;
    }
    if (!tag_is_valid(type)) {
        /* a type lookup assigns a fresh tag */
        PyObject *unused = PyObject_GetAttr((PyObject *)type, st->str_loop);
        if (unused == NULL) {
            return -1;
        }
        Py_DECREF(unused);
    }
    st->hooks_tag = tag_is_valid(type) ? type->tp_version_tag : 0;
    st->hooks_original = original;
    return original;
}

static int
to_double(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    double result = PyFloat_AsDouble(value);
    if (result == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *out = result;
    return 0;
}

static int
read_limits(Breaker *self, int original, Limits *out)
{
    cb_state *st = self->st;
    double values[LIM_COUNT];
    if (original) { /* the hot path: the class constants as created */
        out->bucket_count = st->limit_values[LIM_BUCKET_COUNT];
        out->recover_broken = st->limit_values[LIM_RECOVER_BROKEN];
        out->passing_broken = st->limit_values[LIM_PASSING_BROKEN];
        return 0;
    }
    for (int i = 0; i < LIM_COUNT; i++) {
        PyObject *value = PyObject_GetAttr((PyObject *)self, st->str_limits[i]);
        if (value == NULL) {
            return -1;
        }
        int rc = to_double(value, &values[i]);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    out->bucket_count = values[LIM_BUCKET_COUNT];
    out->recover_broken = values[LIM_RECOVER_BROKEN];
    out->passing_broken = values[LIM_PASSING_BROKEN];
    return 0;
}

/* Whether every instance of `type` is true (no __bool__, no __len__): what
 * PyObject_IsTrue() checks, without the call, for the loop on every call. */
static inline int
always_true(PyTypeObject *type)
{
    return (type->tp_as_number == NULL ||
            type->tp_as_number->nb_bool == NULL) &&
           (type->tp_as_mapping == NULL ||
            type->tp_as_mapping->mp_length == NULL) &&
           (type->tp_as_sequence == NULL ||
            type->tp_as_sequence->sq_length == NULL);
}

/* The `loop` property: `_loop`, filled with the running loop when unset
 * or falsy (new reference: the truth test runs Python code that may
 * replace `_loop`). */
static PyObject *
breaker_loop(Breaker *self)
{
    PyObject *loop = self->loop;
    if (loop != NULL && loop != Py_None) {
        if (always_true(Py_TYPE(loop))) {
            return Py_NewRef(loop);
        }
        Py_INCREF(loop);
        int truth = PyObject_IsTrue(loop);
        Py_DECREF(loop);
        if (truth < 0) {
            return NULL;
        }
        if (truth) {
            /* `_loop` as it is now, as `return self._loop` reads it */
            if (self->loop == NULL) {
                PyErr_SetString(PyExc_AttributeError, "_loop");
                return NULL;
            }
            return Py_NewRef(self->loop);
        }
    }
    PyObject *running = PyObject_CallNoArgs(self->st->get_running_loop);
    if (running == NULL) {
        return NULL;
    }
    Py_XSETREF(self->loop, Py_NewRef(running));
    return running;
}

static PyObject *
call_method0(PyObject *obj, PyObject *name)
{
    PyObject *args[2] = {NULL, obj};
    return PyObject_VectorcallMethod(
        name, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The time through `_get_time()` and the class constants, read before any
 * bookkeeping (they may run Python code). */
/* time.monotonic(), natively: the same value as the builtin */
static double
monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (ns % 1000000000 == 0) {
        return (double)(ns / 1000000000);
    }
    return (double)ns / 1e9;
}

/* 1 while time.monotonic is the builtin, 0 once patched, -1 on error.
 * Before 3.12 the answer is cached with the dict's version (PEP 509; it
 * changes on every modification of time.__dict__). */
static int
monotonic_untouched(cb_state *st)
{
#if PY_VERSION_HEX < 0x030C0000
    uint64_t version = ((PyDictObject *)st->time_dict)->ma_version_tag;
    if (st->time_dict_checked && version == st->time_dict_version) {
        return st->monotonic_untouched;
    }
#endif
    PyObject *monotonic = PyDict_GetItemWithError(st->time_dict,
                                                  st->str_monotonic);
    if (monotonic == NULL && PyErr_Occurred()) {
        return -1;
    }
    int untouched = monotonic == st->orig_monotonic;
#if PY_VERSION_HEX < 0x030C0000
    st->time_dict_checked = 1;
    st->time_dict_version = version;
    st->monotonic_untouched = untouched;
#endif
    return untouched;
}

/* The loop clock, loop.time(), with the lookup of `time` cached.
 *
 * `loop.time` is resolved by a normal attribute lookup whenever the loop
 * object or its class changes (the class's version tag, see
 * original_hooks()); the function found is then called directly.  When it
 * is asyncio's BaseEventLoop.time (`return time.monotonic()`) and
 * time.monotonic is still the builtin (checked on every call: freezegun
 * and friends patch it), the clock is read natively instead.
 *
 * Not noticed: `time` replaced on the loop *instance* after this breaker
 * first read that loop's clock (override `_get_time` to drive the clock;
 * that is the documented hook). */
static int
loop_time(Breaker *self, PyObject *loop, double *now, PyObject **result)
{
    cb_state *st = self->st;
    PyTypeObject *type = Py_TYPE(loop);
    if (loop != self->clock_loop || !tag_is_valid(type) ||
        type->tp_version_tag != self->clock_tag) {
        PyObject *method = PyObject_GetAttr(loop, st->str_time);
        if (method == NULL) {
            return -1;
        }
        PyObject *func = NULL;
        if (PyMethod_Check(method) && PyMethod_GET_SELF(method) == loop) {
            func = Py_NewRef(PyMethod_GET_FUNCTION(method));
        }
        Py_DECREF(method);
        Py_XSETREF(self->clock_loop, Py_NewRef(loop));
        Py_XSETREF(self->clock_func, func);
        self->clock_tag = tag_is_valid(type) ? type->tp_version_tag : 0;
    }
    if (self->clock_func == NULL) {
        /* not a plain method: look it up every time */
        *result = call_method0(loop, st->str_time);
        return *result == NULL ? -1 : 0;
    }
    if (self->clock_func == st->base_loop_time) {
        int untouched = monotonic_untouched(st);
        if (untouched < 0) {
            return -1;
        }
        if (untouched) {
            *now = monotonic_seconds();
            return 1;
        }
    }
    PyObject *func = Py_NewRef(self->clock_func);
    PyObject *args[2] = {NULL, loop};
    *result = PyObject_Vectorcall(
        func, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(func);
    return *result == NULL ? -1 : 0;
}

static int
read_clock_and_limits(Breaker *self, double *now, Limits *limits)
{
    cb_state *st = self->st;
    PyObject *result;
    int original = original_hooks(self);
    if (original < 0) {
        return -1;
    }
    if (original) {
        PyObject *loop = breaker_loop(self);
        if (loop == NULL) {
            return -1;
        }
        int native = loop_time(self, loop, now, &result);
        Py_DECREF(loop);
        if (native < 0) {
            return -1;
        }
        if (native) {
            return limits ? read_limits(self, original, limits) : 0;
        }
    }
    else {
        result = call_method0((PyObject *)self, st->str_get_time);
    }
    if (result == NULL) {
        return -1;
    }
    int rc = to_double(result, now);
    Py_DECREF(result);
    if (rc < 0) {
        return -1;
    }
    return limits ? read_limits(self, original, limits) : 0;
}

static int
check_initialized(Breaker *self)
{
    if (!self->initialized) {
        PyErr_SetString(PyExc_RuntimeError,
                        "CircuitBreaker.__init__() was not called");
        return -1;
    }
    return 0;
}

/* --- the guarded call -------------------------------------------------------- */

static int
raise_broken(Breaker *self)
{
    PyObject *last = self->last_exception ? self->last_exception : Py_None;
    PyObject *exc = PyObject_CallOneArg(self->st->circuit_broken, last);
    if (exc == NULL) {
        return -1;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

/* Start a guarded call: 0 with *serial = the bucket to record into, or -1
 * with an exception set (CircuitBroken when the body must not run). */
static int
guard_enter(Breaker *self, uint64_t *serial)
{
    double now;
    Limits limits;
    /* (initialized is checked again after each call into Python: that code
     * may have called __init__ again, which swaps the counters) */
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0 ||
        check_initialized(self) < 0) {
        return -1;
    }
    /* bookkeeping: no Python code runs from here ... */
    double current = bucket_id_cached(self, now, limits.bucket_count);
    *serial = current_bucket(self, current);
    compute_state(self, now, current, &limits);
    (*self->stat[STAT_CALL_COUNT])++;
    if (self->state == ST_PASSING) {
        (*self->stat[STAT_CALL_PASSING])++;
        return 0;
    }
    if (self->state == ST_BROKEN) {
        (*self->stat[STAT_CALL_BROKEN])++;
        return raise_broken(self);
    }
    (*self->stat[STAT_CALL_RECOVERING])++;
    double elapsed = now - self->recovery_at;
    double recovery_time = self->recovery_time;
    /* ... to here.  RECOVERING: the chance to pass grows from 0 to 1 over
     * recovery_time; the random source is looked up at call time. */
    PyObject *random = PyObject_GetAttr(self->st->base_module,
                                        self->st->str_random);
    if (random == NULL) {
        return -1;
    }
    PyObject *drawn = PyObject_CallNoArgs(random);
    Py_DECREF(random);
    if (drawn == NULL) {
        return -1;
    }
    double value;
    int rc = to_double(drawn, &value);
    Py_DECREF(drawn);
    if (rc < 0 || check_initialized(self) < 0) {
        return -1;
    }
    if (value + 1.0 < pow(2.0, elapsed / recovery_time)) {
        (*self->stat[STAT_CALL_RECOVERING_OK])++;
        return 0;
    }
    (*self->stat[STAT_CALL_RECOVERING_FAILED])++;
    return raise_broken(self);
}

static void
record_success(Breaker *self, uint64_t serial)
{
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->ok++;
        bucket->total++;
        bucket_changed(self, bucket);
    }
    Py_CLEAR(self->last_exception); /* may run a finalizer: last */
}

/* The body raised `exc` (a new reference, stolen): remember it, ask the
 * inspector, record it into the call's bucket (found after all user code
 * returned), then raise it again -- or what the inspector raised instead,
 * if that was not an Exception.  Returns -1. */
static int
guard_fail(Breaker *self, uint64_t serial, PyObject *exc)
{
    cb_state *st = self->st;
    int monitored =
        PyErr_GivenExceptionMatches(exc, self->exceptions) &&
        !PyErr_GivenExceptionMatches(exc, st->never_failures);
    long long weight = 0;
    PyObject *to_raise = exc;
    if (monitored) {
        Py_XSETREF(self->last_exception, Py_NewRef(exc));
        weight = 1;
        if (self->inspector != NULL) {
            PyObject *inspector = Py_NewRef(self->inspector);
            PyObject *verdict = PyObject_CallOneArg(inspector, exc);
            int truth = -1;
            if (verdict != NULL) {
                truth = PyObject_IsTrue(verdict);
                Py_DECREF(verdict);
            }
            if (truth >= 0) {
                weight = truth;
            }
            else {
                PyObject *error = aio_err_take();
                if (PyErr_GivenExceptionMatches(error, PyExc_Exception)) {
                    /* logged; the call still counts as a failure */
                    PyObject *logged = PyObject_CallFunctionObjArgs(
                        st->log_inspector_error, inspector, error, NULL);
                    if (logged == NULL) {
                        PyErr_WriteUnraisable(st->log_inspector_error);
                    }
                    Py_XDECREF(logged);
                    Py_DECREF(error);
                }
                else {
                    /* a BaseException (KeyboardInterrupt...) raised by the
                     * inspector replaces the call's exception */
                    PyException_SetContext(error, Py_NewRef(exc));
                    to_raise = error;
                    weight = 0;
                }
            }
            Py_DECREF(inspector);
        }
    }
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->fail += weight;
        bucket->total++;
        bucket_changed(self, bucket);
    }
    if (to_raise != exc) {
        Py_DECREF(exc);
    }
    aio_err_restore(to_raise);
    return -1;
}

/* Only TOTAL: the body was abandoned (a closed call_async). */
static void
record_abandoned(Breaker *self, uint64_t serial)
{
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->total++;
        bucket_changed(self, bucket);
    }
}

/* func(*args, **kwargs) guarded by the breaker (the body of `call`). */
static PyObject *
guarded_call(Breaker *self, PyObject *func, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t serial;
    if (guard_enter(self, &serial) < 0) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(func, args, nargs, kwnames);
    if (result == NULL) {
        guard_fail(self, serial, aio_err_take());
        return NULL;
    }
    record_success(self, serial);
    return result;
}

/* Split `func` off a `call(func, *args, **kwargs)` argument vector.  Returns
 * 0 when `func` is args[0] (the fast case), 1 when it was passed by keyword
 * (*slow_args / *slow_kwargs then hold the rest), -1 on error. */
static int
split_func(cb_state *st, const char *fname, PyObject *const *args,
           Py_ssize_t nargs, PyObject *kwnames, PyObject **func,
           PyObject **slow_args, PyObject **slow_kwargs)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t func_kw = -1;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name == st->str_func ||
            PyUnicode_Compare(name, st->str_func) == 0) {
            func_kw = i;
            break;
        }
    }
    if (nargs >= 1) {
        if (func_kw >= 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument 'func'",
                         fname);
            return -1;
        }
        *func = args[0];
        return 0;
    }
    if (func_kw < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: 'func'",
                     fname);
        return -1;
    }
    *func = args[func_kw];
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (i != func_kw &&
            PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                           args[i]) < 0) {
            Py_DECREF(kwargs);
            return -1;
        }
    }
    *slow_args = PyTuple_New(0);
    if (*slow_args == NULL) {
        Py_DECREF(kwargs);
        return -1;
    }
    *slow_kwargs = kwargs;
    return 1;
}

static PyObject *
Breaker_call(Breaker *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *func;
    if (kwnames == NULL && nargs >= 1) { /* the fast path */
        return guarded_call(self, args[0], args + 1, nargs - 1, NULL);
    }
    PyObject *slow_args = NULL, *slow_kwargs = NULL;
    int how = split_func(self->st, "call", args, nargs, kwnames, &func,
                         &slow_args, &slow_kwargs);
    if (how < 0) {
        return NULL;
    }
    if (how == 0) {
        return guarded_call(self, func, args + 1, nargs - 1, kwnames);
    }
    uint64_t serial;
    PyObject *result = NULL;
    Py_INCREF(func);
    if (guard_enter(self, &serial) == 0) {
        result = PyObject_Call(func, slow_args, slow_kwargs);
        if (result == NULL) {
            guard_fail(self, serial, aio_err_take());
        }
        else {
            record_success(self, serial);
        }
    }
    Py_DECREF(func);
    Py_DECREF(slow_args);
    Py_DECREF(slow_kwargs);
    return result;
}

/* --- construction --------------------------------------------------------------- */

static void
release_stat(Breaker *self)
{
    if (self->stat_view.obj != NULL) {
        PyBuffer_Release(&self->stat_view);
    }
    for (int i = 0; i < STAT_COUNT; i++) {
        self->stat[i] = NULL;
    }
}

static PyObject *
Breaker_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
            PyObject *Py_UNUSED(kwargs))
{
    cb_state *st = cb_state_from_type(type);
    if (st == NULL) {
        return NULL;
    }
    Breaker *self = (Breaker *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->state = ST_PASSING;
    return (PyObject *)self;
}

static int
bind_statistic(Breaker *self, PyObject *statistic_name)
{
    cb_state *st = self->st;
    PyObject *counters = PyObject_CallOneArg(st->statistic_class,
                                             statistic_name);
    if (counters == NULL) {
        return -1;
    }
    PyObject *threshold = PyFloat_FromDouble(self->error_ratio);
    if (threshold == NULL ||
        PyObject_SetAttrString(counters, "error_ratio_threshold",
                               threshold) < 0) {
        Py_XDECREF(threshold);
        Py_DECREF(counters);
        return -1;
    }
    Py_DECREF(threshold);
    Py_XSETREF(self->counters, counters);

    /* The counters live in one array("q") buffer of the statistic; keep it
     * exported (pins the memory) and increment the slots in place. */
    PyObject *array = NULL;
    for (int i = 0; i < STAT_COUNT; i++) {
        PyObject *slot = PyObject_CallMethod(counters, "_counter_slot", "s",
                                             STAT_NAMES[i]);
        if (slot == NULL) {
            goto fail;
        }
        if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 2) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_TypeError,
                            "_counter_slot() must return (buffer, index)");
            goto fail;
        }
        PyObject *buffer = PyTuple_GET_ITEM(slot, 0);
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
        if (index == -1 && PyErr_Occurred()) {
            Py_DECREF(slot);
            goto fail;
        }
        if (array == NULL) {
            array = buffer;
            if (PyObject_GetBuffer(array, &self->stat_view,
                                   PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
                Py_DECREF(slot);
                goto fail;
            }
            if (self->stat_view.itemsize != (Py_ssize_t)sizeof(long long) ||
                self->stat_view.format == NULL ||
                self->stat_view.format[0] != 'q') {
                Py_DECREF(slot);
                PyErr_SetString(PyExc_TypeError,
                                "statistic counters must be array('q')");
                goto fail;
            }
        }
        if (buffer != array || index < 0 ||
            index >= self->stat_view.len / self->stat_view.itemsize) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_RuntimeError,
                            "unexpected statistic counter layout");
            goto fail;
        }
        self->stat[i] = (long long *)self->stat_view.buf + index;
        Py_DECREF(slot);
    }
    return 0;
fail:
    release_stat(self);
    return -1;
}

static int
Breaker_init(Breaker *self, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "error_ratio",   "response_time", "exceptions",
        "recovery_time", "broken_time",   "passing_time",
        "exception_inspector", "statistic_name",
    };
    cb_state *st = self->st;
    PyObject *values[8];
    if (aio_parse_tuple_dict("CircuitBreaker", args, kwargs, names, 2, 8, 8,
                             values) < 0) {
        return -1;
    }
    PyObject *call_args[7] = {
        values[0], values[1],
        values[2] ? values[2] : st->default_exceptions,
        values[3] ? values[3] : Py_None,
        values[4] ? values[4] : Py_None,
        values[5] ? values[5] : Py_None,
        values[6] ? values[6] : Py_None,
    };
    PyObject *checked = PyObject_Vectorcall(st->validate_arguments, call_args,
                                            7, NULL);
    if (checked == NULL) {
        return -1;
    }
    if (!PyTuple_Check(checked) || PyTuple_GET_SIZE(checked) != 7) {
        Py_DECREF(checked);
        PyErr_SetString(PyExc_TypeError, "validate_arguments() broke");
        return -1;
    }
    double times[6];
    for (int i = 0; i < 6; i++) {
        if (i == 2) {
            continue; /* the exceptions tuple */
        }
        if (to_double(PyTuple_GET_ITEM(checked, i), &times[i]) < 0) {
            Py_DECREF(checked);
            return -1;
        }
    }
    /* BUCKET_COUNT at construction is the window's capacity (deque maxlen) */
    PyObject *bucket_count = PyObject_GetAttr(
        (PyObject *)self, st->str_limits[LIM_BUCKET_COUNT]);
    Py_ssize_t cap = -1;
    if (bucket_count != NULL) {
        cap = PyNumber_AsSsize_t(bucket_count, PyExc_OverflowError);
        Py_DECREF(bucket_count);
    }
    if (cap == -1 && PyErr_Occurred()) {
        Py_DECREF(checked);
        return -1;
    }
    if (cap < 0) {
        Py_DECREF(checked);
        PyErr_SetString(PyExc_ValueError, "maxlen must be non-negative");
        return -1;
    }
    Bucket *ring = PyMem_Calloc(cap > 0 ? (size_t)cap : 1, sizeof(Bucket));
    if (ring == NULL) {
        Py_DECREF(checked);
        PyErr_NoMemory();
        return -1;
    }

    /* (re)initialise: a second __init__ starts from scratch */
    self->initialized = 0;
    release_stat(self);
    PyMem_Free(self->ring);
    self->ring = ring;
    self->cap = cap;
    self->len = self->head = 0;
    /* next_serial keeps counting: a call still running from before the
     * re-init must not find a new bucket */
    self->error_ratio = times[0];
    self->response_time_value = times[1];
    self->id_count = 0.0; /* bucket_id_cached(): response time changed */
    self->recovery_time = times[3];
    self->broken_time = times[4];
    self->passing_time = times[5];
    self->stuck_until = self->recovery_at = 0.0;
    self->state = ST_PASSING;
    Py_XSETREF(self->response_time, Py_NewRef(values[1]));
    Py_XSETREF(self->exceptions, Py_NewRef(PyTuple_GET_ITEM(checked, 2)));
    PyObject *inspector = PyTuple_GET_ITEM(checked, 6);
    Py_XSETREF(self->inspector,
               inspector == Py_None ? NULL : Py_NewRef(inspector));
    Py_CLEAR(self->last_exception);
    Py_DECREF(checked);

    if (bind_statistic(self, values[7] ? values[7] : Py_None) < 0) {
        return -1;
    }
    self->initialized = 1;
    return 0;
}

static int
Breaker_traverse(Breaker *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->response_time);
    Py_VISIT(self->exceptions);
    Py_VISIT(self->inspector);
    Py_VISIT(self->last_exception);
    Py_VISIT(self->counters);
    Py_VISIT(self->stat_view.obj);
    Py_VISIT(self->clock_loop);
    Py_VISIT(self->clock_func);
    return 0;
}

static int
Breaker_clear(Breaker *self)
{
    self->initialized = 0;
    release_stat(self);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->response_time);
    Py_CLEAR(self->exceptions);
    Py_CLEAR(self->inspector);
    Py_CLEAR(self->last_exception);
    Py_CLEAR(self->counters);
    Py_CLEAR(self->clock_loop);
    Py_CLEAR(self->clock_func);
    return 0;
}

static void
Breaker_dealloc(Breaker *self)
{
    PyMem_Free(self->ring);
    self->ring = NULL;
    aio_gc_dealloc((PyObject *)self, 0);
}

/* --- methods and properties -------------------------------------------------------- */

static PyObject *
Breaker_get_time(Breaker *self, PyObject *Py_UNUSED(ignored))
{
    /* the default clock: self.loop.time(), with normal lookups */
    PyObject *loop = PyObject_GetAttr((PyObject *)self, self->st->str_loop);
    if (loop == NULL) {
        return NULL;
    }
    PyObject *result = call_method0(loop, self->st->str_time);
    Py_DECREF(loop);
    return result;
}

static PyObject *
Breaker_bucket(Breaker *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    return PyLong_FromDouble(
        bucket_id(now, limits.bucket_count, self->response_time_value));
}

static PyObject *
Breaker_counter(Breaker *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    uint64_t serial = current_bucket(
        self, bucket_id(now, limits.bucket_count, self->response_time_value));
    Bucket *bucket = find_bucket(self, serial);
    long long counts[3] = {0, 0, 0};
    if (bucket != NULL) {
        counts[0] = bucket->fail;
        counts[1] = bucket->ok;
        counts[2] = bucket->total;
    }
    /* a snapshot; read the counts before calling into Python */
    PyObject *counter = PyObject_CallNoArgs(self->st->counter_class);
    if (counter == NULL) {
        return NULL;
    }
    for (int key = 0; key < 3; key++) {
        if (counts[key] == 0) {
            continue;
        }
        PyObject *value = PyLong_FromLongLong(counts[key]);
        if (value == NULL ||
            PyObject_SetItem(counter, self->st->counter_keys[key], value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(counter);
            return NULL;
        }
        Py_DECREF(value);
    }
    return counter;
}

static PyObject *
Breaker_get_state_delay(Breaker *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, NULL) < 0) {
        return NULL;
    }
    double delay = self->stuck_until - now;
    if (delay < 0) {
        return PyLong_FromLong(0); /* max(delay, 0) */
    }
    return PyFloat_FromDouble(delay);
}

static PyObject *
Breaker_get_recovery_ratio(Breaker *self, void *Py_UNUSED(closure))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    int any;
    double ratio = window_ratio(
        self, bucket_id(now, limits.bucket_count, self->response_time_value),
        limits.bucket_count, &any);
    if (!any) {
        return PyLong_FromLong(0);
    }
    return PyFloat_FromDouble(ratio);
}

static PyObject *
Breaker_get_state(Breaker *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->st->states[self->state]);
}

static PyObject *
Breaker_get_response_time(Breaker *self, void *Py_UNUSED(closure))
{
    if (check_initialized(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->response_time);
}

static PyObject *
Breaker_get_loop_property(Breaker *self, void *Py_UNUSED(closure))
{
    return breaker_loop(self);
}

static PyObject *
Breaker_get__loop(Breaker *self, void *Py_UNUSED(closure))
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_loop");
        return NULL;
    }
    return Py_NewRef(self->loop);
}

static int
Breaker_set__loop(Breaker *self, PyObject *value, void *Py_UNUSED(closure))
{
    Py_XSETREF(self->loop, Py_XNewRef(value));
    return 0;
}

#define OBJECT_GETTER(NAME, FIELD)                                            \
    static PyObject *Breaker_get_##NAME(Breaker *self,                        \
                                        void *Py_UNUSED(closure))             \
    {                                                                         \
        return Py_NewRef(self->FIELD ? self->FIELD : Py_None);                \
    }
OBJECT_GETTER(last_exception, last_exception)
OBJECT_GETTER(counters, counters)
OBJECT_GETTER(exceptions, exceptions)
OBJECT_GETTER(inspector, inspector)

#define DOUBLE_GETTER(NAME, FIELD)                                            \
    static PyObject *Breaker_get_##NAME(Breaker *self,                        \
                                        void *Py_UNUSED(closure))             \
    {                                                                         \
        return PyFloat_FromDouble(self->FIELD);                               \
    }
DOUBLE_GETTER(error_ratio, error_ratio)
DOUBLE_GETTER(recovery_time, recovery_time)
DOUBLE_GETTER(broken_time, broken_time)
DOUBLE_GETTER(passing_time, passing_time)
DOUBLE_GETTER(stuck_until, stuck_until)
DOUBLE_GETTER(recovery_at, recovery_at)

static PyObject *
Breaker_repr(Breaker *self)
{
    PyObject *name = aio_type_name(Py_TYPE(self));
    if (name == NULL) {
        return NULL;
    }
    PyObject *ratio = PyObject_GetAttr((PyObject *)self,
                                       self->st->str_recovery_ratio);
    if (ratio == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(name);
            return NULL;
        }
        PyErr_Clear(); /* e.g. no running loop to read the clock from */
        ratio = PyUnicode_FromString("?");
        if (ratio == NULL) {
            Py_DECREF(name);
            return NULL;
        }
    }
    PyObject *result = PyUnicode_FromFormat(
        "<%U: state=%R recovery_ratio=%S>", name,
        self->st->states[self->state], ratio);
    Py_DECREF(name);
    Py_DECREF(ratio);
    return result;
}

/* ------------------------------------------------------------------------ */
/* context(): a one-shot context manager                                    */

typedef struct {
    PyObject_HEAD
    Breaker *breaker;
    uint64_t serial;
    int stage; /* 0 new, 1 entered, 2 exited */
} Context;

static PyObject *
Breaker_context(Breaker *self, PyObject *Py_UNUSED(ignored))
{
    Context *ctx = PyObject_GC_New(Context, self->st->context_type);
    if (ctx == NULL) {
        return NULL;
    }
    ctx->breaker = (Breaker *)Py_NewRef(self);
    ctx->serial = 0;
    ctx->stage = 0;
    PyObject_GC_Track(ctx);
    return (PyObject *)ctx;
}

static PyObject *
Context_enter(Context *self, PyObject *Py_UNUSED(ignored))
{
    if (self->stage != 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a CircuitBreaker.context() is entered only once");
        return NULL;
    }
    if (guard_enter(self->breaker, &self->serial) < 0) {
        self->stage = 2;
        return NULL;
    }
    self->stage = 1;
    Py_RETURN_NONE;
}

static PyObject *
Context_exit(Context *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__() takes 3 arguments");
        return NULL;
    }
    if (self->stage != 1) {
        PyErr_SetString(PyExc_RuntimeError, "context() was not entered");
        return NULL;
    }
    self->stage = 2;
    PyObject *value = args[1];
    if (args[0] == Py_None) {
        record_success(self->breaker, self->serial);
        Py_RETURN_FALSE;
    }
    PyObject *exc;
    if (PyExceptionInstance_Check(value)) {
        exc = Py_NewRef(value);
    }
    else {
        /* __exit__(type, None, None) called by hand */
        exc = PyObject_CallNoArgs(args[0]);
        if (exc == NULL) {
            return NULL;
        }
    }
    guard_fail(self->breaker, self->serial, Py_NewRef(exc));
    /* guard_fail raised again: the original propagates by returning False,
     * anything else (from the inspector) by raising it here */
    PyObject *raised = aio_err_take();
    if (raised == exc) {
        Py_DECREF(raised);
        Py_DECREF(exc);
        Py_RETURN_FALSE;
    }
    Py_DECREF(exc);
    aio_err_restore(raised);
    return NULL;
}

static int
Context_traverse(Context *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    return 0;
}

static int
Context_clear(Context *self)
{
    Py_CLEAR(self->breaker);
    return 0;
}

static void
Context_dealloc(Context *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef Context_methods[] = {
    {"__enter__", (PyCFunction)Context_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Context_exit, METH_FASTCALL,
     NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Context_slots[] = {
    {Py_tp_dealloc, Context_dealloc},
    {Py_tp_traverse, Context_traverse},
    {Py_tp_clear, Context_clear},
    {Py_tp_methods, Context_methods},
    {Py_tp_doc, "The context manager returned by CircuitBreaker.context()."},
    {0, NULL},
};

static PyType_Spec Context_spec = {
    .name = "aiomisc_c._circuit_breaker._Context",
    .basicsize = sizeof(Context),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Context_slots,
};

/* ------------------------------------------------------------------------ */
/* call_async(): a coroutine-like awaitable                                  */

enum { CA_NEW = 0, CA_RUNNING = 1, CA_DONE = 2 };

typedef struct {
    PyObject_HEAD
    Breaker *breaker;
    PyObject *func;
    PyObject *args;      /* tuple: positional args then keyword values */
    PyObject *kwnames;   /* NULL or tuple */
    Py_ssize_t nargs;    /* positional count */
    PyObject *inner;     /* iterator of the awaited object (RUNNING) */
    uint64_t serial;
    int stage;
    int running;         /* a step (send/throw/close) is on the C stack */
} CallAsync;

/* A CallAsync of `func` with no arguments yet (untracked by the GC). */
static CallAsync *
call_async_alloc(Breaker *self, PyObject *func)
{
    CallAsync *ca = PyObject_GC_New(CallAsync, self->st->call_async_type);
    if (ca == NULL) {
        return NULL;
    }
    ca->breaker = (Breaker *)Py_NewRef(self);
    ca->func = Py_NewRef(func);
    ca->args = NULL;
    ca->kwnames = NULL;
    ca->nargs = 0;
    ca->inner = NULL;
    ca->serial = 0;
    ca->stage = CA_NEW;
    ca->running = 0;
    return ca;
}

/* The awaitable of call_async(func, *args, **kwargs), from a vectorcall
 * argument vector (nargs positional arguments, then kwnames' values). */
static PyObject *
call_async_new(Breaker *self, PyObject *func, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    CallAsync *ca = call_async_alloc(self, func);
    if (ca == NULL) {
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    ca->nargs = nargs;
    if (nargs + nkw > 0) {
        ca->args = aio_args_tuple(NULL, args, nargs + nkw);
        if (ca->args == NULL) {
            PyObject_GC_Track(ca);
            Py_DECREF(ca);
            return NULL;
        }
        ca->kwnames = Py_XNewRef(kwnames);
    }
    PyObject_GC_Track(ca);
    return (PyObject *)ca;
}

static PyObject *
Breaker_call_async(Breaker *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    cb_state *st = self->st;
    PyObject *func, *slow_args = NULL, *slow_kwargs = NULL;
    int how = split_func(st, "call_async", args, nargs, kwnames, &func,
                         &slow_args, &slow_kwargs);
    if (how < 0) {
        return NULL;
    }
    if (how == 0) {
        return call_async_new(self, func, args + 1, nargs - 1, kwnames);
    }
    CallAsync *ca = call_async_alloc(self, func);
    if (ca == NULL) {
        Py_XDECREF(slow_args);
        Py_XDECREF(slow_kwargs);
        return NULL;
    }
    /* func passed by keyword: keep the rest as a kwnames vector */
    Py_ssize_t nkw = PyDict_GET_SIZE(slow_kwargs);
    PyObject *values = PyTuple_New(nkw);
    PyObject *names = PyTuple_New(nkw);
    if (values == NULL || names == NULL) {
        Py_XDECREF(values);
        Py_XDECREF(names);
        Py_DECREF(slow_args);
        Py_DECREF(slow_kwargs);
        PyObject_GC_Track(ca);
        Py_DECREF(ca);
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, i = 0;
    while (PyDict_Next(slow_kwargs, &pos, &key, &value)) {
        PyTuple_SET_ITEM(names, i, Py_NewRef(key));
        PyTuple_SET_ITEM(values, i, Py_NewRef(value));
        i++;
    }
    ca->args = values;
    if (nkw > 0) {
        ca->kwnames = names;
    }
    else {
        Py_DECREF(names);
    }
    Py_DECREF(slow_args);
    Py_DECREF(slow_kwargs);
    PyObject_GC_Track(ca);
    return (PyObject *)ca;
}

/* The body finished with `exc` raised (new reference, stolen). */
static PySendResult
ca_failed(CallAsync *self, PyObject *exc)
{
    self->stage = CA_DONE;
    Py_CLEAR(self->inner);
    guard_fail(self->breaker, self->serial, exc);
    /* recorded as it was raised; what leaves the coroutine is PEP 479's */
    aio_coro_convert_stop_iteration();
    return PYGEN_ERROR;
}

static PySendResult
ca_returned(CallAsync *self, PyObject *value, PyObject **result)
{
    self->stage = CA_DONE;
    Py_CLEAR(self->inner);
    record_success(self->breaker, self->serial);
    *result = value;
    return PYGEN_RETURN;
}

static PySendResult
ca_forward(CallAsync *self, PySendResult sent, PyObject *value,
           PyObject **result)
{
    if (sent == PYGEN_NEXT) {
        *result = value;
        return PYGEN_NEXT;
    }
    if (sent == PYGEN_RETURN) {
        return ca_returned(self, value, result);
    }
    return ca_failed(self, aio_err_take());
}

/* The iterator to drive for an awaitable result, or NULL with *awaitable
 * = 0 when `value` is not awaitable (it is then the result itself). */
static PyObject *
await_iterator(PyObject *value, int *awaitable)
{
    if (PyCoro_CheckExact(value)) {
        *awaitable = 1;
        return Py_NewRef(value);
    }
    PyAsyncMethods *am = Py_TYPE(value)->tp_as_async;
    if (am == NULL || am->am_await == NULL) {
        *awaitable = 0;
        return NULL;
    }
    *awaitable = 1;
    PyObject *iterator = am->am_await(value);
    if (iterator == NULL) {
        return NULL;
    }
    if (PyCoro_CheckExact(iterator) || !PyIter_Check(iterator)) {
        PyErr_Format(PyExc_TypeError,
                     "__await__() returned %s of type '%.100s'",
                     PyCoro_CheckExact(iterator) ? "a coroutine"
                                                 : "non-iterator",
                     Py_TYPE(iterator)->tp_name);
        Py_DECREF(iterator);
        return NULL;
    }
    return iterator;
}

/* A step that the driven body re-enters (send/throw/close on the very
 * awaitable that runs it) is refused, as a coroutine refuses it. */
static int
ca_refuse_reentry(CallAsync *self)
{
    if (self->running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return -1;
    }
    return 0;
}

static PySendResult
ca_step(CallAsync *self, PyObject *arg, PyObject **result)
{
    if (self->stage == CA_DONE) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (self->stage == CA_NEW) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return PYGEN_ERROR;
        }
        self->stage = CA_DONE; /* until the body really runs */
        if (guard_enter(self->breaker, &self->serial) < 0) {
            Py_CLEAR(self->func);
            Py_CLEAR(self->args);
            Py_CLEAR(self->kwnames);
            return PYGEN_ERROR;
        }
        PyObject *func = self->func, *args = self->args,
                 *kwnames = self->kwnames;
        self->func = self->args = self->kwnames = NULL; /* owned here now */
        PyObject *value = PyObject_Vectorcall(
            func, args ? &PyTuple_GET_ITEM(args, 0) : NULL, self->nargs,
            kwnames);
        Py_DECREF(func);
        Py_XDECREF(args);
        Py_XDECREF(kwnames);
        if (value == NULL) {
            return ca_failed(self, aio_err_take());
        }
        int awaitable;
        PyObject *iterator = await_iterator(value, &awaitable);
        if (!awaitable) {
            return ca_returned(self, value, result);
        }
        Py_DECREF(value);
        if (iterator == NULL) {
            return ca_failed(self, aio_err_take());
        }
        self->inner = iterator;
        self->stage = CA_RUNNING;
        arg = Py_None;
    }
    /* own the delegate across the step: ca_forward may drop self->inner */
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *value = NULL;
    PySendResult sent = PyIter_Send(inner, arg, &value);
    sent = ca_forward(self, sent, value, result);
    Py_DECREF(inner);
    return sent;
}

static PySendResult
CallAsync_am_send(CallAsync *self, PyObject *arg, PyObject **result)
{
    if (ca_refuse_reentry(self) < 0) {
        return PYGEN_ERROR;
    }
    self->running = 1;
    PySendResult sent = ca_step(self, arg, result);
    self->running = 0;
    return sent;
}

/* PYGEN_RETURN -> StopIteration(value) for the method-style API */
static PyObject *
send_result_to_object(PySendResult sent, PyObject *value)
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

static PyObject *
CallAsync_iternext(CallAsync *self)
{
    PyObject *value = NULL;
    PySendResult sent = CallAsync_am_send(self, Py_None, &value);
    return send_result_to_object(sent, value);
}

static PyObject *
CallAsync_send(CallAsync *self, PyObject *arg)
{
    PyObject *value = NULL;
    PySendResult sent = CallAsync_am_send(self, arg, &value);
    return send_result_to_object(sent, value);
}

/* throw(exc) / throw(type[, value[, traceback]]) -> the exception object */
static PyObject *
make_exception(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *type = args[0];
    PyObject *value = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    PyObject *exc;
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError,
                        "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionInstance_Check(type)) {
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate "
                            "value");
            return NULL;
        }
        exc = Py_NewRef(type);
    }
    else if (PyExceptionClass_Check(type)) {
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

static PyObject *ca_throw(CallAsync *self, PyObject *exc);

static PyObject *
CallAsync_throw(CallAsync *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (ca_refuse_reentry(self) < 0) {
        return NULL;
    }
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *exc = make_exception(args, nargs);
    if (exc == NULL) {
        return NULL;
    }
    self->running = 1;
    PyObject *value = ca_throw(self, exc);
    self->running = 0;
    return value;
}

/* throw() of `exc` (stolen) into the call */
static PyObject *
ca_throw(CallAsync *self, PyObject *exc)
{
    if (self->stage != CA_RUNNING) {
        /* not started (the guard never ran) or finished: just raise */
        self->stage = CA_DONE;
        Py_CLEAR(self->func);
        Py_CLEAR(self->args);
        Py_CLEAR(self->kwnames);
        aio_err_restore(exc);
        return NULL;
    }
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *method = NULL;
    int found;
    if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        /* PEP 380: close the delegate, then raise GeneratorExit here */
        found = aio_getattr_optional(inner, self->breaker->st->str_close,
                                     &method);
        if (found > 0) {
            PyObject *closed = PyObject_CallNoArgs(method);
            Py_DECREF(method);
            if (closed == NULL) {
                Py_DECREF(inner);
                Py_DECREF(exc);
                return ca_failed(self, aio_err_take()), NULL;
            }
            Py_DECREF(closed);
        }
        Py_DECREF(inner);
        if (found < 0) {
            Py_DECREF(exc);
            return ca_failed(self, aio_err_take()), NULL;
        }
        return ca_failed(self, exc), NULL;
    }
    found = aio_getattr_optional(inner, self->breaker->st->str_throw, &method);
    Py_DECREF(inner);
    if (found <= 0) {
        if (found < 0) {
            Py_DECREF(exc);
            exc = aio_err_take();
        }
        return ca_failed(self, exc), NULL;
    }
    PyObject *value = PyObject_CallOneArg(method, exc);
    Py_DECREF(method);
    Py_DECREF(exc);
    if (value != NULL) {
        return value; /* the delegate yielded */
    }
    PyObject *raised = aio_err_take();
    if (PyErr_GivenExceptionMatches(raised, PyExc_StopIteration)) {
        /* the delegate returned: success, and StopIteration goes on up */
        self->stage = CA_DONE;
        Py_CLEAR(self->inner);
        record_success(self->breaker, self->serial);
        aio_err_restore(raised);
        return NULL;
    }
    return ca_failed(self, raised), NULL;
}

static PyObject *ca_close(CallAsync *self);

static PyObject *
CallAsync_close(CallAsync *self, PyObject *Py_UNUSED(ignored))
{
    if (ca_refuse_reentry(self) < 0) {
        return NULL;
    }
    self->running = 1;
    PyObject *closed = ca_close(self);
    self->running = 0;
    return closed;
}

static PyObject *
ca_close(CallAsync *self)
{
    if (self->stage != CA_RUNNING) {
        self->stage = CA_DONE;
        Py_CLEAR(self->func);
        Py_CLEAR(self->args);
        Py_CLEAR(self->kwnames);
        Py_RETURN_NONE;
    }
    self->stage = CA_DONE;
    PyObject *inner = self->inner;
    self->inner = NULL;
    PyObject *method = NULL;
    int found = aio_getattr_optional(inner, self->breaker->st->str_close,
                                     &method);
    Py_DECREF(inner);
    if (found > 0) {
        PyObject *closed = PyObject_CallNoArgs(method);
        Py_DECREF(method);
        if (closed == NULL) {
            return ca_failed(self, aio_err_take()), NULL;
        }
        Py_DECREF(closed);
    }
    else if (found < 0) {
        return ca_failed(self, aio_err_take()), NULL;
    }
    /* GeneratorExit went through the body: TOTAL only, never a failure */
    record_abandoned(self->breaker, self->serial);
    Py_RETURN_NONE;
}

static void
CallAsync_finalize(CallAsync *self)
{
    if (self->stage != CA_RUNNING) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *result = CallAsync_close(self, NULL);
    if (result == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    else {
        Py_DECREF(result);
    }
    aio_err_restore(saved);
}

static PyObject *
CallAsync_await(CallAsync *self)
{
    return Py_NewRef(self);
}

static PyObject *
CallAsync_get_name(CallAsync *Py_UNUSED(self), void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("call_async");
}

static PyObject *
CallAsync_get_qualname(CallAsync *Py_UNUSED(self), void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("CircuitBreaker.call_async");
}

static int
CallAsync_traverse(CallAsync *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->kwnames);
    Py_VISIT(self->inner);
    return 0;
}

static int
CallAsync_clear(CallAsync *self)
{
    Py_CLEAR(self->breaker);
    Py_CLEAR(self->func);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
    Py_CLEAR(self->inner);
    return 0;
}

static void
CallAsync_dealloc(CallAsync *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef CallAsync_methods[] = {
    {"send", (PyCFunction)CallAsync_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))CallAsync_throw, METH_FASTCALL,
     NULL},
    {"close", (PyCFunction)CallAsync_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef CallAsync_getset[] = {
    {"__name__", (getter)CallAsync_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)CallAsync_get_qualname, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot CallAsync_slots[] = {
    {Py_tp_dealloc, CallAsync_dealloc},
    {Py_tp_finalize, CallAsync_finalize},
    {Py_tp_traverse, CallAsync_traverse},
    {Py_tp_clear, CallAsync_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, CallAsync_iternext},
    {Py_tp_methods, CallAsync_methods},
    {Py_tp_getset, CallAsync_getset},
    {Py_am_await, CallAsync_await},
    {Py_am_send, CallAsync_am_send},
    {Py_tp_doc, "The awaitable returned by CircuitBreaker.call_async()."},
    {0, NULL},
};

static PyType_Spec CallAsync_spec = {
    .name = "aiomisc_c._circuit_breaker._CallAsync",
    .basicsize = sizeof(CallAsync),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = CallAsync_slots,
};

/* ------------------------------------------------------------------------ */
/* The synchronous cutout wrapper                                            */

typedef struct {
    PyObject_HEAD
    PyObject *breaker;
    PyObject *func;
    PyObject *dict;       /* functools.update_wrapper fills it */
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} Wrapper;

static PyObject *
Wrapper_vectorcall(Wrapper *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *breaker = self->breaker;
    cb_state *st = ((Breaker *)breaker)->st;
    if (Py_TYPE(breaker) == st->breaker_type) {
        return guarded_call((Breaker *)breaker, self->func, args, nargs,
                            kwnames);
    }
    /* a subclass: circuit_breaker.call(func, *args, **kwargs) */
    PyObject *call = PyObject_GetAttrString(breaker, "call");
    if (call == NULL) {
        return NULL;
    }
    PyObject *result = aio_call_prepend(call, self->func, args, nargs,
                                        kwnames);
    Py_DECREF(call);
    return result;
}

static PyObject *
Wrapper_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
Wrapper_repr(Wrapper *self)
{
    return PyUnicode_FromFormat("<cutout wrapper of %R>", self->func);
}

static int
Wrapper_traverse(Wrapper *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    Py_VISIT(self->func);
    Py_VISIT(self->dict);
    return 0;
}

static int
Wrapper_clear(Wrapper *self)
{
    Py_CLEAR(self->breaker);
    Py_CLEAR(self->func);
    Py_CLEAR(self->dict);
    return 0;
}

static void
Wrapper_dealloc(Wrapper *self)
{
    aio_gc_dealloc((PyObject *)self, 1);
}

static PyMemberDef Wrapper_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(Wrapper, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Wrapper, weakreflist),
     READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Wrapper, vectorcall),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Wrapper_slots[] = {
    {Py_tp_dealloc, Wrapper_dealloc},
    {Py_tp_traverse, Wrapper_traverse},
    {Py_tp_clear, Wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, Wrapper_descr_get},
    {Py_tp_repr, Wrapper_repr},
    {Py_tp_members, Wrapper_members},
    {Py_tp_getset, Wrapper_getset},
    {Py_tp_doc, "A function guarded by a cutout() circuit breaker."},
    {0, NULL},
};

static PyType_Spec Wrapper_spec = {
    .name = "aiomisc_c._circuit_breaker._CutoutWrapper",
    .basicsize = sizeof(Wrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Wrapper_slots,
};

/* ------------------------------------------------------------------------ */
/* The asynchronous cutout wrapper                                           */

/* Calling it returns the awaitable of breaker.call_async(func, ...) at once:
 * no coroutine frame of its own in between.  It passes for a coroutine
 * function: the `_is_coroutine` / markcoroutinefunction markers are class
 * attributes, and `__code__` (what inspect reads before 3.12) is func's
 * coroutine code, or a stand-in coroutine code object. */

static PyObject *
AsyncWrapper_vectorcall(Wrapper *self, PyObject *const *args, size_t nargsf,
                        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *breaker = self->breaker;
    cb_state *st = ((Breaker *)breaker)->st;
    if (Py_TYPE(breaker) == st->breaker_type) {
        return call_async_new((Breaker *)breaker, self->func, args, nargs,
                              kwnames);
    }
    /* a subclass: circuit_breaker.call_async(func, *args, **kwargs) */
    PyObject *call_async = PyObject_GetAttr(breaker, st->str_call_async);
    if (call_async == NULL) {
        return NULL;
    }
    PyObject *result = aio_call_prepend(call_async, self->func, args, nargs,
                                        kwnames);
    Py_DECREF(call_async);
    return result;
}

static PyObject *
AsyncWrapper_repr(Wrapper *self)
{
    return PyUnicode_FromFormat("<async cutout wrapper of %R>", self->func);
}

static cb_state *
async_wrapper_state(PyObject *op)
{
    return ((Breaker *)((Wrapper *)op)->breaker)->st;
}

static PyObject *
AsyncWrapper_get_code(PyObject *op, void *Py_UNUSED(closure))
{
    cb_state *st = async_wrapper_state(op);
    return aio_coroutine_code(((Wrapper *)op)->func, st->str_code,
                              st->coroutine_code);
}

static PyObject *
AsyncWrapper_get_defaults(PyObject *op, void *Py_UNUSED(closure))
{
    return aio_func_attr_or_none(((Wrapper *)op)->func,
                                 async_wrapper_state(op)->str_defaults,
                                 aio_is_tuple);
}

static PyObject *
AsyncWrapper_get_kwdefaults(PyObject *op, void *Py_UNUSED(closure))
{
    return aio_func_attr_or_none(((Wrapper *)op)->func,
                                 async_wrapper_state(op)->str_kwdefaults,
                                 aio_is_dict);
}

static PyGetSetDef AsyncWrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"__code__", AsyncWrapper_get_code, NULL, NULL, NULL},
    {"__defaults__", AsyncWrapper_get_defaults, NULL, NULL, NULL},
    {"__kwdefaults__", AsyncWrapper_get_kwdefaults, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot AsyncWrapper_slots[] = {
    {Py_tp_dealloc, Wrapper_dealloc},
    {Py_tp_traverse, Wrapper_traverse},
    {Py_tp_clear, Wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, Wrapper_descr_get},
    {Py_tp_repr, AsyncWrapper_repr},
    {Py_tp_members, Wrapper_members},
    {Py_tp_getset, AsyncWrapper_getset},
    {Py_tp_doc, "A coroutine function guarded by a cutout() circuit "
                "breaker."},
    {0, NULL},
};

static PyType_Spec AsyncWrapper_spec = {
    .name = "aiomisc_c._circuit_breaker._CutoutAsyncWrapper",
    .basicsize = sizeof(Wrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = AsyncWrapper_slots,
};

/* A wrapper of `type` over (breaker, func), with func's metadata copied by
 * functools.update_wrapper. */
static PyObject *
make_wrapper(cb_state *st, PyTypeObject *type, vectorcallfunc vectorcall,
             const char *fname, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(breaker, func)", fname);
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], st->breaker_type)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a C CircuitBreaker",
                     fname);
        return NULL;
    }
    Wrapper *wrapper = PyObject_GC_New(Wrapper, type);
    if (wrapper == NULL) {
        return NULL;
    }
    wrapper->breaker = Py_NewRef(args[0]);
    wrapper->func = Py_NewRef(args[1]);
    wrapper->dict = NULL;
    wrapper->weakreflist = NULL;
    wrapper->vectorcall = vectorcall;
    PyObject_GC_Track(wrapper);
    PyObject *wrapped = PyObject_CallFunctionObjArgs(
        st->update_wrapper, (PyObject *)wrapper, args[1], NULL);
    Py_DECREF(wrapper);
    return wrapped;
}

/* _wrap_sync(breaker, func): the sync wrapper with func's metadata */
static PyObject *
module_wrap_sync(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    cb_state *st = cb_state_from_module(module);
    return make_wrapper(st, st->wrapper_type,
                        (vectorcallfunc)Wrapper_vectorcall, "_wrap_sync",
                        args, nargs);
}

/* _wrap_async(breaker, func): the async wrapper with func's metadata */
static PyObject *
module_wrap_async(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    cb_state *st = cb_state_from_module(module);
    return make_wrapper(st, st->async_wrapper_type,
                        (vectorcallfunc)AsyncWrapper_vectorcall,
                        "_wrap_async", args, nargs);
}

/* ------------------------------------------------------------------------ */
/* The CircuitBreaker type                                                   */

static PyMethodDef Breaker_methods[] = {
    {"_get_time", (PyCFunction)Breaker_get_time, METH_NOARGS,
     "The clock of the breaker: self.loop.time() (override to drive it)."},
    {"bucket", (PyCFunction)Breaker_bucket, METH_NOARGS,
     "The id of the current statistics bucket."},
    {"counter", (PyCFunction)Breaker_counter, METH_NOARGS,
     "A snapshot Counter of the current bucket."},
    {"get_state_delay", (PyCFunction)Breaker_get_state_delay, METH_NOARGS,
     "Seconds until the state may change: max(stuck_until - now, 0)."},
    {"context", (PyCFunction)Breaker_context, METH_NOARGS,
     "A context manager guarding its body."},
    {"call", (PyCFunction)(void (*)(void))Breaker_call,
     METH_FASTCALL | METH_KEYWORDS, "func(*args, **kwargs), guarded."},
    {"call_async", (PyCFunction)(void (*)(void))Breaker_call_async,
     METH_FASTCALL | METH_KEYWORDS,
     "Await func(*args, **kwargs) (or take its value), guarded."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Breaker_getset[] = {
    {"state", (getter)Breaker_get_state, NULL, "CircuitBreakerStates", NULL},
    {"response_time", (getter)Breaker_get_response_time, NULL, NULL, NULL},
    {"recovery_ratio", (getter)Breaker_get_recovery_ratio, NULL, NULL, NULL},
    {"loop", (getter)Breaker_get_loop_property, NULL,
     "The event loop (the running one, taken on first use).", NULL},
    {"_loop", (getter)Breaker_get__loop, (setter)Breaker_set__loop, NULL,
     NULL},
    {"_last_exception", (getter)Breaker_get_last_exception, NULL, NULL, NULL},
    {"_counters", (getter)Breaker_get_counters, NULL, NULL, NULL},
    {"_exceptions", (getter)Breaker_get_exceptions, NULL, NULL, NULL},
    {"_exception_inspector", (getter)Breaker_get_inspector, NULL, NULL, NULL},
    {"_error_ratio", (getter)Breaker_get_error_ratio, NULL, NULL, NULL},
    {"_recovery_time", (getter)Breaker_get_recovery_time, NULL, NULL, NULL},
    {"_broken_time", (getter)Breaker_get_broken_time, NULL, NULL, NULL},
    {"_passing_time", (getter)Breaker_get_passing_time, NULL, NULL, NULL},
    {"_stuck_until", (getter)Breaker_get_stuck_until, NULL, NULL, NULL},
    {"_recovery_at", (getter)Breaker_get_recovery_at, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Breaker_slots[] = {
    {Py_tp_new, Breaker_new},
    {Py_tp_init, Breaker_init},
    {Py_tp_dealloc, Breaker_dealloc},
    {Py_tp_traverse, Breaker_traverse},
    {Py_tp_clear, Breaker_clear},
    {Py_tp_repr, Breaker_repr},
    {Py_tp_methods, Breaker_methods},
    {Py_tp_getset, Breaker_getset},
    {Py_tp_doc,
     "Circuit breaker: collects call statistics in time buckets and stops "
     "calls (CircuitBroken) while the error ratio is too high."},
    {0, NULL},
};

static PyType_Spec Breaker_spec = {
    .name = "aiomisc_c.circuit_breaker.CircuitBreaker",
    .basicsize = sizeof(Breaker),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = Breaker_slots,
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


/* The async wrapper type passes asyncio/inspect.iscoroutinefunction: the
 * markers of _backoff_base.COROUTINE_MARKERS become class attributes, and
 * COROUTINE_CODE is its __code__ stand-in. */
static int
set_coroutine_markers(cb_state *st)
{
    PyObject *base = PyImport_ImportModule("aiomisc_c._backoff_base");
    if (base == NULL) {
        return -1;
    }
    int rc = -1;
    PyObject *markers = PyObject_GetAttrString(base, "COROUTINE_MARKERS");
    if (markers == NULL) {
        goto done;
    }
    if (!PyDict_Check(markers)) {
        PyErr_SetString(PyExc_TypeError, "COROUTINE_MARKERS must be a dict");
        goto done;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(markers, &pos, &key, &value)) {
        if (PyObject_SetAttr((PyObject *)st->async_wrapper_type, key, value) <
            0) {
            goto done;
        }
    }
    st->coroutine_code = PyObject_GetAttrString(base, "COROUTINE_CODE");
    if (st->coroutine_code != NULL) {
        rc = 0;
    }
done:
    Py_XDECREF(markers);
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
        aio_intern(&st->str_call_async, "call_async") < 0 ||
        aio_intern(&st->str_code, "__code__") < 0 ||
        aio_intern(&st->str_defaults, "__defaults__") < 0 ||
        aio_intern(&st->str_kwdefaults, "__kwdefaults__") < 0 ||
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

    if (aio_add_type(module, &st->breaker_type, &Breaker_spec, NULL) < 0 ||
        aio_add_type(module, &st->context_type, &Context_spec, NULL) < 0 ||
        aio_add_type(module, &st->call_async_type, &CallAsync_spec, NULL) <
            0 ||
        aio_add_type(module, &st->wrapper_type, &Wrapper_spec, NULL) < 0 ||
        aio_add_type(module, &st->async_wrapper_type, &AsyncWrapper_spec,
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
    if (PyModule_AddObject(module, "cutout", cutout) < 0) {
        Py_DECREF(cutout);
        return -1;
    }
    return 0;
}

static int
cb_traverse(PyObject *module, visitproc visit, void *arg)
{
    cb_state *st = cb_state_from_module(module);
    Py_VISIT(st->breaker_type);
    Py_VISIT(st->context_type);
    Py_VISIT(st->call_async_type);
    Py_VISIT(st->wrapper_type);
    Py_VISIT(st->async_wrapper_type);
    Py_VISIT(st->coroutine_code);
    Py_VISIT(st->base_module);
    for (int i = 0; i < 3; i++) {
        Py_VISIT(st->states[i]);
        Py_VISIT(st->counter_keys[i]);
    }
    Py_VISIT(st->circuit_broken);
    Py_VISIT(st->statistic_class);
    Py_VISIT(st->validate_arguments);
    Py_VISIT(st->log_inspector_error);
    Py_VISIT(st->never_failures);
    Py_VISIT(st->counter_class);
    Py_VISIT(st->get_running_loop);
    Py_VISIT(st->update_wrapper);
    Py_VISIT(st->default_exceptions);
    Py_VISIT(st->base_loop_time);
    Py_VISIT(st->time_dict);
    Py_VISIT(st->orig_monotonic);
    Py_VISIT(st->orig_get_time);
    Py_VISIT(st->orig_loop);
    for (int i = 0; i < LIM_COUNT; i++) {
        Py_VISIT(st->orig_limits[i]);
    }
    return 0;
}

static int
cb_clear(PyObject *module)
{
    cb_state *st = cb_state_from_module(module);
    Py_CLEAR(st->breaker_type);
    Py_CLEAR(st->context_type);
    Py_CLEAR(st->call_async_type);
    Py_CLEAR(st->wrapper_type);
    Py_CLEAR(st->async_wrapper_type);
    Py_CLEAR(st->coroutine_code);
    Py_CLEAR(st->base_module);
    for (int i = 0; i < 3; i++) {
        Py_CLEAR(st->states[i]);
        Py_CLEAR(st->counter_keys[i]);
    }
    Py_CLEAR(st->circuit_broken);
    Py_CLEAR(st->statistic_class);
    Py_CLEAR(st->validate_arguments);
    Py_CLEAR(st->log_inspector_error);
    Py_CLEAR(st->never_failures);
    Py_CLEAR(st->counter_class);
    Py_CLEAR(st->get_running_loop);
    Py_CLEAR(st->update_wrapper);
    Py_CLEAR(st->default_exceptions);
    Py_CLEAR(st->base_loop_time);
    Py_CLEAR(st->time_dict);
    Py_CLEAR(st->orig_monotonic);
    Py_CLEAR(st->str_monotonic);
    Py_CLEAR(st->str_get_time);
    Py_CLEAR(st->str_loop);
    Py_CLEAR(st->str_time);
    Py_CLEAR(st->str_random);
    Py_CLEAR(st->str_throw);
    Py_CLEAR(st->str_close);
    Py_CLEAR(st->str_func);
    Py_CLEAR(st->str_call_async);
    Py_CLEAR(st->str_code);
    Py_CLEAR(st->str_defaults);
    Py_CLEAR(st->str_kwdefaults);
    Py_CLEAR(st->str_recovery_ratio);
    Py_CLEAR(st->orig_get_time);
    Py_CLEAR(st->orig_loop);
    for (int i = 0; i < LIM_COUNT; i++) {
        Py_CLEAR(st->str_limits[i]);
        Py_CLEAR(st->orig_limits[i]);
    }
    return 0;
}

static void
cb_free(void *module)
{
    (void)cb_clear((PyObject *)module);
}

static PyMethodDef cb_functions[] = {
    {"_wrap_sync", (PyCFunction)(void (*)(void))module_wrap_sync,
     METH_FASTCALL, "The synchronous cutout wrapper of func."},
    {"_wrap_async", (PyCFunction)(void (*)(void))module_wrap_async,
     METH_FASTCALL, "The asynchronous cutout wrapper of func."},
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
