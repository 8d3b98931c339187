/* thread_pool/types.h — constants, module state and the object layouts.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_TYPES_H
#define AIOMISC_C_THREAD_POOL_TYPES_H

#define FREE_ITEMS_MAX 1024
#define DEFAULT_SPIN_US 0

/* ------------------------------------------------------------------------ */
/* Module state                                                              */

typedef struct work_item work_item;
typedef struct loop_waker loop_waker;

typedef struct {
    PyTypeObject *executor_type;
    PyTypeObject *channel_type;
    PyTypeObject *threaded_type;
    PyTypeObject *bound_threaded_type;

    PyObject *future_type;         /* asyncio.Future */
    PyObject *get_running_loop;    /* asyncio.events._get_running_loop */
    PyObject *get_event_loop;      /* asyncio.events.get_event_loop */
    PyObject *stock_create_future; /* asyncio.BaseEventLoop.create_future */
    PyObject *event_loop_var;      /* _context_vars.EVENT_LOOP.context_var */
    PyObject *partial;             /* functools.partial */
    PyObject *iscoroutinefunction; /* inspect.iscoroutinefunction */
    PyObject *isgeneratorfunction; /* inspect.isgeneratorfunction */
    PyObject *is_coroutine_marker; /* asyncio.coroutines._is_coroutine/None */
    PyObject *str_loop;            /* "loop" */
    PyObject *empty_args;          /* () */
    /* {"loop": loop} only while new_stock_future() needs it */
    PyObject *future_kwargs;
    PyObject *kwnames_args;        /* ("args",) */
    PyObject *kwnames_args_kwargs; /* ("args", "kwargs") */
    PyObject *logger;              /* lazily: aiomisc_c.thread_pool logger */
    PyObject *run_in_executor;     /* lazily: _thread_pool_base's */
    /* lazily: _thread_pool_base.ThreadPoolExecutorBase */
    PyObject *shell_type;
    /* A loop type whose instances cannot have `_default_executor` (uvloop):
     * skips a failing attribute lookup per threaded call. */
    PyObject *loop_type_without_executor;

    PyObject *str_call_soon_threadsafe;
    PyObject *str_closed;
    PyObject *str_core;
    PyObject *str_counter_slot;
    PyObject *str_create_future;
    PyObject *str_default_executor;
    PyObject *str_done;
    PyObject *str_drain;
    PyObject *str_is_closed;
    PyObject *str_is_coroutine;
    PyObject *str_run_in_executor;
    PyObject *str_set_exception;
    PyObject *str_set_result;
    PyObject *str_async_call;
    PyObject *str_add_reader;
    PyObject *str_remove_reader;
    PyObject *str_on_wake;

    /* Free list of work items; only touched with the GIL held. */
    work_item *free_items;
    int n_free_items;
} tp_state;

/* Every object field of tp_state: the module's traverse and clear are
 * generated from this list (add a field here when adding it above). */
#define TP_STATE_FIELDS(X)                                                    \
    X(executor_type) X(channel_type) X(threaded_type) X(bound_threaded_type)  \
    X(future_type) X(get_running_loop) X(get_event_loop)                      \
    X(stock_create_future) X(event_loop_var) X(partial)                       \
    X(iscoroutinefunction) X(isgeneratorfunction) X(is_coroutine_marker)      \
    X(str_loop) X(empty_args) X(future_kwargs) X(kwnames_args)                \
    X(kwnames_args_kwargs) X(logger)                                          \
    X(run_in_executor) X(shell_type) X(loop_type_without_executor)            \
    X(str_call_soon_threadsafe) X(str_closed) X(str_core)                     \
    X(str_counter_slot) X(str_create_future) X(str_default_executor)          \
    X(str_done) X(str_drain) X(str_is_closed) X(str_is_coroutine)             \
    X(str_run_in_executor) X(str_set_exception) X(str_set_result)             \
    X(str_async_call) X(str_add_reader) X(str_remove_reader) X(str_on_wake)

static PyModuleDef thread_pool_module;
AIO_DEFINE_STATE_ACCESSORS(tp_state, thread_pool_module)

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

typedef struct {
    PyObject_HEAD
    /* The loop, held weakly so that a pool never keeps a dead loop alive
     * (items in flight do: each future references its loop); a strong
     * reference only for loops that cannot be weakly referenced. */
    PyObject *loop_ref;
    void *loop_id;   /* identity of the loop (no reference) */
    PyObject *drain; /* bound self._drain, prebuilt */
    /* Finished items waiting for the drain; GIL-guarded. */
    work_item *batch_head;
    work_item *batch_tail;
    Py_ssize_t batch_len;
    int scheduled;    /* a drain is pending on the loop */
    int stock_future; /* type(loop).create_future is asyncio's / uvloop's */
    int closed;       /* the loop is closed or gone: nothing is delivered */
    /* The loop watches `waker` (WAKER_ON, WAKER_RETIRING) and drains when
     * it is signalled; else (WAKER_OFF) drains go through
     * call_soon_threadsafe.  GIL-guarded. */
    loop_waker *waker; /* owned reference, or NULL */
    int waker_state;
} ChannelObject;

enum {
    WAKER_OFF = 0,
    WAKER_ON = 1,
    /* Still watched; the next wake-up stops watching (pool shut down). */
    WAKER_RETIRING = 2,
};

struct work_item {
    work_item *next;
    PyObject *fn;      /* owned until the call */
    PyObject *args;    /* owned tuple until the call */
    PyObject *kwargs;  /* owned dict or NULL until the call */
    PyObject *context; /* owned until the call */
    PyObject *future;  /* owned */
    ChannelObject *channel;  /* owned */
    PyObject *outcome; /* owned after the call: result or exception */
    int failed;        /* outcome is an exception */
    /* While its call runs: links in the executor's `running` list, and
     * whether shutdown() failed its future already (GIL-guarded). */
    work_item *run_prev;
    work_item *run_next;
    int abandoned;
};

enum {
    C_THREADS,
    C_DONE,
    C_ERROR,
    C_SUCCESS,
    C_SUBMITTED,
    C_SUM_TIME,
    N_COUNTERS
};
static const char *const counter_names[N_COUNTERS] = {
    "threads", "done", "error", "success", "submitted", "sum_time",
};

typedef struct {
    PyObject_HEAD
    /* --- guarded by `mutex` (read by the spinner lock-free: queued,
     * shutdown) --- */
    pthread_mutex_t mutex;
    pthread_cond_t wake; /* sleeping workers wait here */
    /* The thread starting the first workers of a pool that has none (0:
     * none); other submitters wait on `first_started` for its outcome, so
     * an item is never queued for threads that then fail to start. */
    unsigned long first_spawner;
    pthread_cond_t first_started;
    work_item *head;
    work_item *tail;
    _Atomic Py_ssize_t queued;
    Py_ssize_t running_count;
    Py_ssize_t spawned;
    int sleeping;
    int idle_awake;
    int wake_tokens;
    int spinning;
    _Atomic int shutdown;
    /* --- set at construction or GIL-guarded --- */
    int sync_ready; /* mutex and condvar initialised */
    Py_ssize_t max_workers;
    _Atomic long spin_ns;
    PyObject *statistic;
    PyObject *spawn_thread;
    PyObject *closed_exception;
    PyObject *channels; /* dict: loop -> ChannelObject */
    ChannelObject *last_channel;
    work_item *running; /* items whose call runs now; GIL-guarded */
    /* Exported for the core's lifetime (.obj NULL: not exported). */
    Py_buffer counter_views[N_COUNTERS];
    int64_t *counters[N_COUNTERS - 1];
    double *sum_time;
    PyObject *weakreflist;
} ExecutorObject;

typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *func_type;
    PyObject *instance; /* BoundThreaded only */
    int bound;          /* a BoundThreaded: `instance` is prepended */
    PyObject *dict;
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} ThreadedObject;

#endif /* AIOMISC_C_THREAD_POOL_TYPES_H */
