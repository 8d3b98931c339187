/* circuit_breaker/types.h — constants, module state and the object layouts.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_TYPES_H
#define AIOMISC_C_CIRCUIT_BREAKER_TYPES_H

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

    PyObject *str_get_time;       /* "_get_time" */
    PyObject *str_loop;           /* "loop" */
    PyObject *str_time;           /* "time" */
    PyObject *str_random;         /* "random" */
    PyObject *str_throw;          /* "throw" */
    PyObject *str_close;          /* "close" */
    PyObject *str_func;           /* "func" */
    PyObject *str_call;           /* "call" */
    PyObject *str_call_async;     /* "call_async" */
    PyObject *str_recovery_ratio; /* "recovery_ratio" */
    PyObject *str_limits[LIM_COUNT];
    aio_wrapper_support wrapper_support;

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

/* Every object field of cb_state: the module's traverse and clear are
 * generated from these lists (add a field here when adding it above). */
#define CB_STATE_FIELDS(X)                                                    \
    X(breaker_type) X(context_type) X(call_async_type) X(wrapper_type)        \
    X(async_wrapper_type) X(base_module) X(circuit_broken)                    \
    X(statistic_class) X(validate_arguments) X(log_inspector_error)           \
    X(never_failures) X(counter_class) X(get_running_loop) X(update_wrapper)  \
    X(default_exceptions) X(str_get_time) X(str_loop)                         \
    X(str_time) X(str_random) X(str_throw) X(str_close) X(str_func)           \
    X(str_call) X(str_call_async)                                             \
    X(str_recovery_ratio) X(orig_get_time) X(orig_loop) X(base_loop_time)     \
    X(time_dict) X(str_monotonic) X(orig_monotonic)                          \
    AIO_WRAPPER_SUPPORT_FIELDS(X, wrapper_support)
#define CB_STATE_ARRAYS(X)                                                    \
    X(states, 3) X(counter_keys, 3) X(str_limits, LIM_COUNT)                  \
    X(orig_limits, LIM_COUNT)

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
} BreakerObject;

typedef struct {
    double bucket_count, recover_broken, passing_broken;
} Limits;

#endif /* AIOMISC_C_CIRCUIT_BREAKER_TYPES_H */
