/*
 * aiomisc_c._thread_pool — the C core of aiomisc_c's ThreadPoolExecutor and
 * the `Threaded` / `BoundThreaded` wrappers behind `@threaded`.
 *
 * Design (a cross-thread wake-up costs ~50 us on this kind of machine, and every
 * GIL hand-off is one, so the whole design is about not waking threads):
 *
 * Queue.  One FIFO of `work_item` C structs per Executor, guarded by a
 *   pthread mutex.  The mutex is taken either with the GIL (submit, a worker
 *   popping, getters) or without it (a worker deciding to sleep) but *never*
 *   held while waiting for the GIL, and no Python code runs under it, so the
 *   two locks cannot deadlock.  At interpreter exit daemon workers die inside
 *   PyEval_RestoreThread; they never hold the mutex there.
 *
 * Work items own references to fn, the args tuple, the kwargs dict (or NULL),
 *   the submitter's copied context, the future and the per-loop channel.
 *   fn/args/kwargs/context are dropped right after the call; the item then
 *   carries the outcome (result or exception) to its channel and is freed
 *   (back to a small free list in the module state, GIL-guarded) by the
 *   channel's drain on the loop thread.  Items are only ever touched with
 *   the GIL held, except for the queue links, which the mutex guards.
 *
 * Wake-up policy (counters under the mutex):
 *   - `idle_awake` counts workers that are awake but not running an item
 *     (draining the queue, spinning, or woken and on their way to the GIL);
 *     `sleeping` counts workers blocked on the condvar.
 *   - submit signals one sleeper only when idle_awake == 0; the signaller
 *     moves it from `sleeping` to `idle_awake` and leaves a wake token, so a
 *     burst of submits costs one wake-up, not one per item.
 *   - a worker that pops an item while more are queued and nobody else is
 *     idle-awake wakes one more sleeper, so blocking functions still run
 *     concurrently up to max_workers.
 *   - a worker that holds the GIL drains the whole queue before it lets the
 *     GIL go; woken workers look at the queue (mutex only) *before* asking
 *     for the GIL, so a wasted wake-up never turns into a GIL hand-off.
 *   - optionally, at most one idle worker spins (GIL released, lock-free
 *     read of an atomic `queued`) for `_spin_us` microseconds before
 *     sleeping.  Off by default (DEFAULT_SPIN_US): on these 2-vCPU machines
 *     a spinner steals the CPU the loop thread needs and made one-by-one
 *     round trips slower (mean 31 us without, ~100 us with 20-100 us).
 *   - every wait checks `shutdown`; shutdown broadcasts the condvar.
 *
 * Delivery (batching).  Each event loop gets one `Channel` per pool (a dict
 *   keyed by loop plus a one-entry last-used cache; closed loops are purged
 *   when a new loop shows up).  A finished item is appended to its channel's
 *   batch (GIL-guarded); only the first item of a batch calls
 *   loop.call_soon_threadsafe(channel._drain) — one self-pipe write per
 *   batch, however many items join it before the loop runs the drain.  The
 *   drain (loop thread) takes the whole batch and resolves each future that
 *   is not done yet.  A closed loop makes call_soon_threadsafe raise: the
 *   batch is dropped with one warning and the worker carries on.
 *
 * Threaded calls submit straight to our core when the running loop's
 *   default executor is one of our pools: asyncio loops expose it as
 *   `loop._default_executor` (then `._core`).  uvloop keeps it in a C
 *   field with no attribute, so the loop's tp_traverse (what
 *   gc.get_referents uses) finds the one pool of ours the loop refers to:
 *   read on every call, nothing cached, so loop.set_default_executor()
 *   takes effect at once.  Otherwise the call goes through
 *   loop.run_in_executor / _thread_pool_base.
 *
 * Statistics are incremented natively through buffers exported by
 *   statistic._counter_slot(name); the buffers stay exported (pinned) for the
 *   core's lifetime and are only written with the GIL held.
 */
#include <Python.h>

#include <structmember.h> /* PyMemberDef, T_OBJECT (3.10, 3.11) */

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define FREE_ITEMS_MAX 1024
#define DEFAULT_SPIN_US 0

/* ------------------------------------------------------------------------ */
/* Module state                                                              */

typedef struct work_item work_item;

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
    PyObject *kwnames_loop;        /* ("loop",) */
    PyObject *kwnames_args;        /* ("args",) */
    PyObject *kwnames_args_kwargs; /* ("args", "kwargs") */
    PyObject *logger;              /* lazily: aiomisc_c.thread_pool logger */
    PyObject *run_in_executor;     /* lazily: _thread_pool_base's */
    PyObject *shell_type; /* lazily: _thread_pool_base.ThreadPoolExecutorBase */
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

    /* Free list of work items; only touched with the GIL held. */
    work_item *free_items;
    int n_free_items;
} tp_state;

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
} Channel;

struct work_item {
    work_item *next;
    PyObject *fn;      /* owned until the call */
    PyObject *args;    /* owned tuple until the call */
    PyObject *kwargs;  /* owned dict or NULL until the call */
    PyObject *context; /* owned until the call */
    PyObject *future;  /* owned */
    Channel *channel;  /* owned */
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
    PyObject *channels; /* dict: loop -> Channel */
    Channel *last_channel;
    work_item *running; /* items whose call runs now; GIL-guarded */
    Py_buffer counter_views[N_COUNTERS];
    int n_counter_views;
    int64_t *counters[N_COUNTERS - 1];
    double *sum_time;
    PyObject *weakreflist;
} Executor;

typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *func_type;
    PyObject *instance; /* BoundThreaded only */
    int bound;          /* a BoundThreaded: `instance` is prepended */
    PyObject *dict;
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} Threaded;

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

/* ------------------------------------------------------------------------ */
/* Work items                                                                */

static work_item *
item_alloc(tp_state *st)
{
    work_item *it = st->free_items;
    if (it != NULL) {
        st->free_items = it->next;
        st->n_free_items--;
    }
    else {
        it = PyMem_Malloc(sizeof(work_item));
        if (it == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    memset(it, 0, sizeof(*it));
    return it;
}

/* Drop what the call needed; the item keeps future, channel and outcome. */
static void
item_clear_call(work_item *it)
{
    Py_CLEAR(it->fn);
    Py_CLEAR(it->args);
    Py_CLEAR(it->kwargs);
    Py_CLEAR(it->context);
}

/* GIL held.  Frees the item (to the module's free list when `st` is given,
 * else with PyMem_Free); decrefs may run arbitrary code, so the item is
 * detached first. */
static void
item_free(tp_state *st, work_item *it)
{
    work_item copy = *it;
    if (st != NULL && st->n_free_items < FREE_ITEMS_MAX) {
        it->next = st->free_items;
        st->free_items = it;
        st->n_free_items++;
    }
    else {
        PyMem_Free(it);
    }
    Py_XDECREF(copy.fn);
    Py_XDECREF(copy.args);
    Py_XDECREF(copy.kwargs);
    Py_XDECREF(copy.context);
    Py_XDECREF(copy.future);
    Py_XDECREF((PyObject *)copy.channel);
    Py_XDECREF(copy.outcome);
}

static void
item_list_free(tp_state *st, work_item *it)
{
    while (it != NULL) {
        work_item *next = it->next;
        item_free(st, it);
        it = next;
    }
}

static int
item_traverse(work_item *it, visitproc visit, void *arg)
{
    Py_VISIT(it->fn);
    Py_VISIT(it->args);
    Py_VISIT(it->kwargs);
    Py_VISIT(it->context);
    Py_VISIT(it->future);
    Py_VISIT((PyObject *)it->channel);
    Py_VISIT(it->outcome);
    return 0;
}

/* 1 if fut.done(), 0 if not, -1 on error. */
static int
future_is_done(tp_state *st, PyObject *future)
{
    PyObject *r = PyObject_VectorcallMethod(
        st->str_done, &future, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        return -1;
    }
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    return done;
}

/* Loop thread (or a forked child's only thread), GIL held: resolve the
 * item's future with its outcome unless it is done already. */
static void
item_resolve(tp_state *st, work_item *it)
{
    int done = future_is_done(st, it->future);
    if (done == 0) {
        PyObject *stack[3] = {NULL, it->future, it->outcome};
        PyObject *r = PyObject_VectorcallMethod(
            it->failed ? st->str_set_exception : st->str_set_result, &stack[1],
            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {
            done = -1;
        }
        Py_XDECREF(r);
    }
    if (done < 0) {
        PyErr_WriteUnraisable(it->future);
    }
}

/* ------------------------------------------------------------------------ */
/* Channel: per-loop completion batches                                      */

static Channel *
channel_new(tp_state *st, PyObject *loop)
{
    Channel *ch = (Channel *)st->channel_type->tp_alloc(st->channel_type, 0);
    if (ch == NULL) {
        return NULL;
    }
    ch->loop_id = (void *)loop;
    ch->loop_ref = PyWeakref_NewRef(loop, NULL);
    if (ch->loop_ref == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            goto fail;
        }
        PyErr_Clear();
        ch->loop_ref = Py_NewRef(loop);
    }
    ch->drain = PyObject_GetAttr((PyObject *)ch, st->str_drain);
    if (ch->drain == NULL) {
        goto fail;
    }

    /* asyncio.Future(loop=loop) is what loop.create_future() does for
     * asyncio's loops and uvloop; skip the method call for those. */
    PyObject *create_future =
        PyObject_GetAttr((PyObject *)Py_TYPE(loop), st->str_create_future);
    if (create_future == NULL) {
        goto fail;
    }
    ch->stock_future = create_future == st->stock_create_future;
    if (!ch->stock_future) {
        /* uvloop.Loop.create_future: only if uvloop is imported already */
        PyObject *uv_name = PyUnicode_FromString("uvloop");
        PyObject *uvloop = uv_name ? PyImport_GetModule(uv_name) : NULL;
        Py_XDECREF(uv_name);
        if (uvloop != NULL) {
            PyObject *uv_loop = PyObject_GetAttrString(uvloop, "Loop");
            PyObject *uv_create =
                uv_loop ? PyObject_GetAttr(uv_loop, st->str_create_future)
                        : NULL;
            ch->stock_future = uv_create != NULL && uv_create == create_future;
            Py_XDECREF(uv_create);
            Py_XDECREF(uv_loop);
            Py_DECREF(uvloop);
        }
        PyErr_Clear();
    }
    Py_DECREF(create_future);
    return ch;

fail:
    Py_DECREF(ch);
    return NULL;
}

/* The channel's loop as a new reference, or NULL (no exception) if it died. */
static PyObject *
channel_loop(Channel *ch)
{
    if (ch->loop_ref == NULL) {
        return NULL;
    }
    if (!PyWeakref_CheckRef(ch->loop_ref)) {
        return Py_NewRef(ch->loop_ref);
    }
    return aio_weakref_get(ch->loop_ref);
}

/* Whether `ch` serves `loop` (alive: the caller holds it). */
static inline int
channel_is_for(Channel *ch, PyObject *loop)
{
    if (ch->loop_id != (void *)loop || ch->loop_ref == NULL) {
        return 0;
    }
    return !PyWeakref_CheckRef(ch->loop_ref) ||
           aio_weakref_is(ch->loop_ref, loop);
}

/* Loop thread, GIL held: resolve every future of the pending batch. */
static PyObject *
channel_drain(PyObject *op, PyObject *Py_UNUSED(unused))
{
    Channel *self = (Channel *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    work_item *it = self->batch_head;
    self->batch_head = self->batch_tail = NULL;
    self->batch_len = 0;
    /* Completions from now on need a new drain. */
    self->scheduled = 0;
    while (it != NULL) {
        work_item *next = it->next;
        item_resolve(st, it);
        item_free(st, it);
        it = next;
    }
    Py_RETURN_NONE;
}

static inline int
is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* GIL held: 1 if the channel's loop is closed or gone (remembered), else
 * 0.  Read through `loop._closed` (asyncio's loops and uvloop have it),
 * else loop.is_closed(); a loop that cannot tell counts as open. */
static int
channel_is_closed(tp_state *st, Channel *ch)
{
    if (ch->closed) {
        return 1;
    }
    PyObject *loop = channel_loop(ch);
    if (loop == NULL) {
        ch->closed = 1;
        return 1;
    }
    PyObject *flag = NULL;
    int found = lookup_attr_quiet(loop, st->str_closed, &flag);
    if (found == 0) {
        flag = PyObject_VectorcallMethod(
            st->str_is_closed, &loop, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            NULL);
    }
    Py_DECREF(loop);
    int closed = flag != NULL ? PyObject_IsTrue(flag) : -1;
    Py_XDECREF(flag);
    if (closed < 0) {
        PyErr_Clear();
        return 0;
    }
    ch->closed = closed;
    return closed;
}

/* Items a worker (or shutdown) could not deliver because their loop is
 * closed, counted per channel so that one log line covers a batch. */
typedef struct {
    Channel *channel; /* strong, or NULL */
    Py_ssize_t count;
} drop_tally;

/* GIL held, no exception set: log the tally (not while the interpreter
 * finalizes: logging may be half torn down, its locks held by dead
 * daemon threads) and reset it. */
static void
drop_tally_flush(tp_state *st, drop_tally *tally)
{
    Channel *ch = tally->channel;
    Py_ssize_t count = tally->count;
    tally->channel = NULL;
    tally->count = 0;
    if (ch == NULL) {
        return;
    }
    if (count > 0 && !is_finalizing()) {
        PyObject *loop = channel_loop(ch);
        log_warning(st,
                    "Event loop %r is closed. Dropping %d thread pool "
                    "call(s)",
                    loop != NULL ? loop : Py_None, count);
        Py_XDECREF(loop);
    }
    Py_DECREF(ch);
}

static void
drop_tally_add(tp_state *st, drop_tally *tally, Channel *ch, Py_ssize_t n)
{
    if (n <= 0) {
        return;
    }
    if (tally->channel != ch) {
        drop_tally_flush(st, tally);
        tally->channel = (Channel *)Py_NewRef(ch);
    }
    tally->count += n;
}

/* GIL held: report that call_soon_threadsafe failed for a reason other
 * than a closed loop (the exception is taken). */
static void
report_delivery_error(tp_state *st, Channel *ch, Py_ssize_t n)
{
    PyObject *exc = aio_err_take();
    if (is_finalizing() || tp_logger(st) < 0) {
        Py_XDECREF(exc);
        return;
    }
    PyObject *loop = channel_loop(ch);
    PyObject *error = PyObject_GetAttrString(st->logger, "error");
    PyObject *args = Py_BuildValue("(snO)",
                                   "Can not deliver %d thread pool result(s) "
                                   "to %r",
                                   n, loop != NULL ? loop : Py_None);
    PyObject *kwargs =
        Py_BuildValue("{sO}", "exc_info", exc != NULL ? exc : Py_True);
    PyObject *r = NULL;
    if (error != NULL && args != NULL && kwargs != NULL) {
        r = PyObject_Call(error, args, kwargs);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(st->logger);
    }
    Py_XDECREF(r);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(error);
    Py_XDECREF(loop);
    Py_XDECREF(exc);
}

/* Any thread, GIL held, no exception set: add a finished item to its
 * channel's batch; the first item of a batch schedules the drain.  Takes
 * ownership of `it`.  Returns how many items were dropped because the loop
 * is closed (the caller logs them through a drop_tally). */
static Py_ssize_t
channel_push(tp_state *st, work_item *it)
{
    Channel *ch = it->channel;
    if (ch->closed) {
        item_free(st, it);
        return 1;
    }
    it->next = NULL;
    if (ch->batch_tail != NULL) {
        ch->batch_tail->next = it;
    }
    else {
        ch->batch_head = it;
    }
    ch->batch_tail = it;
    ch->batch_len++;
    if (ch->scheduled) {
        return 0;
    }
    /* Set before calling out: other workers may run (and push) while
     * call_soon_threadsafe executes Python code. */
    ch->scheduled = 1;
    Py_INCREF(ch); /* the drain may free every item, and so the channel */
    PyObject *loop = channel_loop(ch);
    PyObject *r = NULL;
    if (loop != NULL) {
        PyObject *stack[3] = {NULL, loop, ch->drain};
        r = PyObject_VectorcallMethod(st->str_call_soon_threadsafe, &stack[1],
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        Py_DECREF(loop);
    }
    else {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is gone");
    }
    if (r != NULL) {
        Py_DECREF(r);
        Py_DECREF(ch);
        return 0;
    }
    /* Nobody will drain this batch: drop it (with everything pushed
     * meanwhile).  Only RuntimeError means the loop is closed. */
    work_item *batch = ch->batch_head;
    Py_ssize_t n = ch->batch_len;
    ch->batch_head = ch->batch_tail = NULL;
    ch->batch_len = 0;
    ch->scheduled = 0;
    Py_ssize_t dropped = 0;
    if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        PyErr_Clear();
        ch->closed = 1;
        dropped = n;
    }
    else {
        report_delivery_error(st, ch, n);
    }
    item_list_free(st, batch);
    Py_DECREF(ch);
    return dropped;
}

/* GIL held: channel_push(it), then tally what it dropped.  The push may
 * free `it` (and with it the item's reference to its channel), so the
 * channel is read and held before. */
static void
channel_deliver(tp_state *st, work_item *it, drop_tally *drops)
{
    Channel *ch = (Channel *)Py_NewRef(it->channel);
    Py_ssize_t dropped = channel_push(st, it);
    drop_tally_add(st, drops, ch, dropped);
    Py_DECREF(ch);
}

static int
channel_traverse(PyObject *op, visitproc visit, void *arg)
{
    Channel *self = (Channel *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->loop_ref);
    Py_VISIT(self->drain);
    for (work_item *it = self->batch_head; it != NULL; it = it->next) {
        int r = item_traverse(it, visit, arg);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

static int
channel_clear(PyObject *op)
{
    Channel *self = (Channel *)op;
    work_item *batch = self->batch_head;
    self->batch_head = self->batch_tail = NULL;
    self->batch_len = 0;
    /* No module state here: during a collection at interpreter exit the
     * type may be cleared in the same batch (its MRO gone), so
     * PyType_GetModuleByDef would crash.  Items go straight to PyMem_Free. */
    item_list_free(NULL, batch);
    Py_CLEAR(self->loop_ref);
    Py_CLEAR(self->drain);
    return 0;
}

static void
channel_dealloc(PyObject *op)
{
    aio_gc_dealloc(op, 0);
}

static PyObject *
channel_repr(PyObject *op)
{
    Channel *self = (Channel *)op;
    PyObject *loop = channel_loop(self);
    PyObject *r =
        PyUnicode_FromFormat("<_thread_pool.Channel for %R, %zd pending>",
                             loop != NULL ? loop : Py_None, self->batch_len);
    Py_XDECREF(loop);
    return r;
}

static PyMethodDef channel_methods[] = {
    {"_drain", channel_drain, METH_NOARGS,
     "Resolve the futures of the pending batch (runs on the loop)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
channel_get_loop(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *loop = channel_loop((Channel *)op);
    return loop != NULL ? loop : Py_NewRef(Py_None);
}

static PyGetSetDef channel_getset[] = {
    {"loop", channel_get_loop, NULL, "The loop (None once it is gone).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot channel_slots[] = {
    {Py_tp_doc, "Per-loop completion channel of a thread pool (internal)."},
    {Py_tp_dealloc, channel_dealloc},
    {Py_tp_traverse, channel_traverse},
    {Py_tp_clear, channel_clear},
    {Py_tp_repr, channel_repr},
    {Py_tp_methods, channel_methods},
    {Py_tp_getset, channel_getset},
    {0, NULL},
};

static PyType_Spec channel_spec = {
    .name = "aiomisc_c._thread_pool.Channel",
    .basicsize = sizeof(Channel),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = channel_slots,
};

/* ------------------------------------------------------------------------ */
/* Executor: queue and workers                                               */

#define LOCK(self) pthread_mutex_lock(&(self)->mutex)
#define UNLOCK(self) pthread_mutex_unlock(&(self)->mutex)

static inline Py_ssize_t
initial_workers(Executor *self)
{
    return self->max_workers > 1 ? 2 : 1;
}

/* Mutex held: hand a wake token to one sleeper.  Returns 1 when the caller
 * must pthread_cond_signal after unlocking. */
static inline int
claim_sleeper(Executor *self)
{
    if (self->sleeping <= 0) {
        return 0;
    }
    self->sleeping--;
    self->idle_awake++;
    self->wake_tokens++;
    return 1;
}

/* GIL held: call spawn_thread() `n` times; on failure un-reserve the
 * threads not started and return -1. */
static int
executor_spawn(Executor *self, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyObject_CallNoArgs(self->spawn_thread);
        if (r == NULL) {
            LOCK(self);
            self->spawned -= n - i;
            UNLOCK(self);
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

/* GIL held: start `n` reserved threads for a submit.  When none can be
 * started and the pool has no thread at all, raise (-1): nothing would run
 * the item.  Otherwise the live workers will: log and carry on (0). */
static int
executor_grow(Executor *self, tp_state *st, Py_ssize_t n)
{
    if (executor_spawn(self, n) == 0) {
        return 0;
    }
    LOCK(self);
    Py_ssize_t spawned = self->spawned;
    UNLOCK(self);
    if (spawned == 0 || !PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = aio_err_take();
    log_warning_exc(st, "Can not start a new thread pool worker", exc);
    Py_XDECREF(exc);
    return 0;
}

/* GIL held, mutex held: wait (mutex and GIL released meanwhile) while
 * another thread starts the first workers.  Returns with the mutex held. */
static void
wait_for_first_spawner(Executor *self)
{
    unsigned long me = PyThread_get_thread_ident();
    if (self->first_spawner == 0 || self->first_spawner == me) {
        return;
    }
    UNLOCK(self);
    Py_BEGIN_ALLOW_THREADS
        LOCK(self);
        while (self->first_spawner != 0) {
            pthread_cond_wait(&self->first_started, &self->mutex);
        }
        UNLOCK(self);
    Py_END_ALLOW_THREADS
    LOCK(self);
}

/* GIL held: the first workers started (or failed to): wake the waiters. */
static void
first_spawn_done(Executor *self)
{
    LOCK(self);
    self->first_spawner = 0;
    UNLOCK(self);
    pthread_cond_broadcast(&self->first_started);
}

static inline void
counter_add(Executor *self, int which, int64_t delta)
{
    if (self->counters[which] != NULL) {
        *self->counters[which] += delta;
    }
}

/* Drop channels whose loop died or is closed (before adding a channel). */
static int
executor_purge_closed(Executor *self, tp_state *st)
{
    PyObject *items = PyDict_Items(self->channels);
    if (items == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        PyObject *loop = channel_loop((Channel *)PyTuple_GET_ITEM(pair, 1));
        int drop = 1;
        if (loop != NULL) {
            PyObject *closed = PyObject_VectorcallMethod(
                st->str_is_closed, &loop, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                NULL);
            drop = closed == NULL ? 0 : PyObject_IsTrue(closed);
            Py_XDECREF(closed);
            Py_DECREF(loop);
            if (drop < 0) {
                drop = 0;
            }
            PyErr_Clear(); /* not a loop we can ask: keep it */
        }
        if (drop &&
            PyDict_DelItem(self->channels, PyTuple_GET_ITEM(pair, 0)) < 0) {
            PyErr_Clear();
        }
    }
    Py_DECREF(items);
    return 0;
}

/* GIL held: the channel for `loop` (borrowed; kept alive by last_channel).
 * The dict is keyed by the loop's address; an entry whose loop died is
 * replaced. */
static Channel *
executor_channel(Executor *self, tp_state *st, PyObject *loop)
{
    Channel *ch = self->last_channel;
    if (ch != NULL && channel_is_for(ch, loop)) {
        return ch;
    }
    PyObject *key = PyLong_FromVoidPtr((void *)loop);
    if (key == NULL) {
        return NULL;
    }
    ch = (Channel *)PyDict_GetItemWithError(self->channels, key);
    if (ch == NULL && PyErr_Occurred()) {
        goto fail;
    }
    if (ch == NULL || !channel_is_for(ch, loop)) {
        if (executor_purge_closed(self, st) < 0) {
            goto fail;
        }
        ch = channel_new(st, loop);
        if (ch == NULL) {
            goto fail;
        }
        int r = PyDict_SetItem(self->channels, key, (PyObject *)ch);
        Py_DECREF(ch);
        if (r < 0) {
            goto fail;
        }
    }
    Py_DECREF(key);
    Py_XSETREF(self->last_channel, (Channel *)Py_NewRef(ch));
    return ch;

fail:
    Py_DECREF(key);
    return NULL;
}

static PyObject *
new_future(tp_state *st, Channel *ch, PyObject *loop)
{
    PyObject *stack[2] = {NULL, loop};
    if (ch->stock_future) {
        return PyObject_Vectorcall(st->future_type, &stack[1],
                                   0 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   st->kwnames_loop);
    }
    return PyObject_VectorcallMethod(st->str_create_future, &stack[1],
                                     1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
raise_shutdown(void)
{
    PyErr_SetString(PyExc_RuntimeError, "Pool is shutdown");
    return NULL;
}

/* GIL held: queue fn(prefix, *args, **kwargs) for `loop`; returns the new
 * future.  `prefix` (the bound instance) may be NULL. */
static PyObject *
executor_submit_impl(Executor *self, tp_state *st, PyObject *loop,
                     PyObject *fn, PyObject *prefix, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        return raise_shutdown();
    }
    Channel *ch = executor_channel(self, st, loop);
    if (ch == NULL) {
        return NULL;
    }
    work_item *it = item_alloc(st);
    if (it == NULL) {
        return NULL;
    }
    it->channel = (Channel *)Py_NewRef(ch);
    it->future = new_future(st, ch, loop);
    if (it->future == NULL) {
        goto fail;
    }
    it->fn = Py_NewRef(fn);
    it->args = aio_args_tuple(prefix, args, nargs);
    if (it->args == NULL) {
        goto fail;
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        it->kwargs = aio_kwargs_dict(args, nargs, kwnames);
        if (it->kwargs == NULL) {
            goto fail;
        }
    }
    it->context = PyContext_CopyCurrent();
    if (it->context == NULL) {
        goto fail;
    }
    PyObject *future = Py_NewRef(it->future);

    /* Growth: double (capped) when every thread has an unfinished item.
     * Threads start before the item is queued: a submit that raises
     * leaves nothing behind for a worker to run later. */
    Py_ssize_t to_spawn = 0;
    int first = 0;
    LOCK(self);
    wait_for_first_spawner(self);
    if (self->spawned < self->max_workers &&
        atomic_load_explicit(&self->queued, memory_order_relaxed) +
                self->running_count >=
            self->spawned) {
        first = self->spawned == 0;
        to_spawn = first ? initial_workers(self)
                         : Py_MIN(self->spawned,
                                  self->max_workers - self->spawned);
        self->spawned += to_spawn;
        if (first) {
            self->first_spawner = PyThread_get_thread_ident();
        }
    }
    UNLOCK(self);
    if (to_spawn > 0) {
        int grown = executor_grow(self, st, to_spawn);
        if (first) {
            first_spawn_done(self);
        }
        if (grown < 0) {
            Py_DECREF(future);
            item_free(st, it);
            return NULL;
        }
    }

    int signal = 0;
    LOCK(self);
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        UNLOCK(self);
        Py_DECREF(future);
        item_free(st, it);
        return raise_shutdown();
    }
    if (self->tail != NULL) {
        self->tail->next = it;
    }
    else {
        self->head = it;
    }
    self->tail = it;
    atomic_fetch_add_explicit(&self->queued, 1, memory_order_release);
    if (self->idle_awake == 0) {
        signal = claim_sleeper(self);
    }
    UNLOCK(self);
    if (signal) {
        pthread_cond_signal(&self->wake);
    }
    counter_add(self, C_SUBMITTED, 1);
    return future;

fail:
    item_free(st, it);
    return NULL;
}

/* The exception delivered for `exc` raised by fn: StopIteration cannot go
 * into an asyncio.Future, so it travels as a chained RuntimeError. */
static PyObject *
worker_exception(PyObject *exc)
{
    if (exc == NULL) {
        return PyObject_CallFunction(PyExc_SystemError, "s",
                                     "error return without exception set");
    }
    if (!PyErr_GivenExceptionMatches(exc, PyExc_StopIteration)) {
        return exc;
    }
    PyObject *wrapped = PyObject_CallFunction(
        PyExc_RuntimeError, "s", "StopIteration raised in a worker");
    if (wrapped == NULL) {
        Py_DECREF(exc);
        return aio_err_take();
    }
    PyException_SetContext(wrapped, Py_NewRef(exc));
    PyException_SetCause(wrapped, exc); /* steals */
    return wrapped;
}

/* Worker thread, GIL held: run one item and push it to its channel (an
 * item of a closed loop is dropped unrun and counted in `drops`). */
static void
worker_run_item(Executor *self, tp_state *st, work_item *it,
                drop_tally *drops)
{
    if (channel_is_closed(st, it->channel)) {
        drop_tally_add(st, drops, it->channel, 1);
        item_free(st, it);
        return;
    }
    int done = future_is_done(st, it->future);
    if (done != 0) {
        /* Cancelled or failed by its owner meanwhile: skip silently. */
        if (done < 0) {
            PyErr_WriteUnraisable(it->future);
        }
        item_free(st, it);
        return;
    }

    /* Visible to shutdown() while the call runs. */
    it->run_prev = NULL;
    it->run_next = self->running;
    if (self->running != NULL) {
        self->running->run_prev = it;
    }
    self->running = it;

    double started = monotonic_seconds();
    PyObject *result = NULL;
    if (PyContext_Enter(it->context) == 0) {
        /* The item's context is a private copy: point EVENT_LOOP at the
         * future's loop there, so sync code in the thread can find it. */
        PyObject *loop = channel_loop(it->channel);
        PyObject *current = NULL;
        int ok = PyContextVar_Get(st->event_loop_var, NULL, &current) == 0;
        if (ok && loop != NULL && current != loop) {
            PyObject *token = PyContextVar_Set(st->event_loop_var, loop);
            ok = token != NULL;
            Py_XDECREF(token);
        }
        Py_XDECREF(current);
        Py_XDECREF(loop);
        if (ok) {
            result = PyObject_Call(it->fn, it->args, it->kwargs);
        }
        PyObject *exc = result == NULL ? aio_err_take() : NULL;
        if (PyContext_Exit(it->context) < 0) {
            PyErr_WriteUnraisable(it->context);
        }
        aio_err_restore(exc);
    }
    double elapsed = monotonic_seconds() - started;

    if (it->run_prev != NULL) {
        it->run_prev->run_next = it->run_next;
    }
    else {
        self->running = it->run_next;
    }
    if (it->run_next != NULL) {
        it->run_next->run_prev = it->run_prev;
    }
    it->run_prev = it->run_next = NULL;

    if (self->sum_time != NULL) {
        *self->sum_time += elapsed;
    }
    counter_add(self, C_DONE, 1);
    if (result != NULL) {
        counter_add(self, C_SUCCESS, 1);
        it->outcome = result;
        it->failed = 0;
    }
    else {
        counter_add(self, C_ERROR, 1);
        it->outcome = worker_exception(aio_err_take());
        it->failed = 1;
        if (it->outcome == NULL) { /* could not even build an exception */
            PyErr_Clear();
            item_free(st, it);
            return;
        }
    }
    if (it->abandoned) {
        /* shutdown() failed the future meanwhile: drop the outcome. */
        item_free(st, it);
        return;
    }
    item_clear_call(it);
    channel_deliver(st, it, drops);
}

/* Worker thread, GIL held: run items until the queue is empty (or the pool
 * shut down).  The GIL is kept across items: no hand-off per item. */
static void
worker_drain_queue(Executor *self, tp_state *st)
{
    int was_running = 0;
    drop_tally drops = {NULL, 0};
    for (;;) {
        int signal = 0;
        work_item *it = NULL;
        LOCK(self);
        if (was_running) {
            self->running_count--;
            self->idle_awake++;
        }
        if (!atomic_load_explicit(&self->shutdown, memory_order_relaxed) &&
            self->head != NULL) {
            it = self->head;
            self->head = it->next;
            if (self->head == NULL) {
                self->tail = NULL;
            }
            Py_ssize_t left =
                atomic_load_explicit(&self->queued, memory_order_relaxed) - 1;
            atomic_store_explicit(&self->queued, left, memory_order_relaxed);
            self->running_count++;
            self->idle_awake--;
            /* More work and nobody awake to take it: this item might block,
             * so get another worker going. */
            if (left > 0 && self->idle_awake == 0) {
                signal = claim_sleeper(self);
            }
        }
        UNLOCK(self);
        if (signal) {
            pthread_cond_signal(&self->wake);
        }
        if (it == NULL) {
            drop_tally_flush(st, &drops);
            return;
        }
        it->next = NULL;
        was_running = 1;
        worker_run_item(self, st, it, &drops);
    }
}

/* Worker thread, GIL released: spin (at most one spinner) and then sleep
 * until there is queued work (returns 0) or the pool shuts down (1). */
static int
worker_wait(Executor *self)
{
    int may_spin = 1;
    int stop;
    LOCK(self);
    for (;;) {
        if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
            stop = 1;
            break;
        }
        if (atomic_load_explicit(&self->queued, memory_order_relaxed) > 0) {
            stop = 0;
            break;
        }
        long spin_ns =
            atomic_load_explicit(&self->spin_ns, memory_order_relaxed);
        if (may_spin && spin_ns > 0 && !self->spinning) {
            self->spinning = 1;
            may_spin = 0;
            UNLOCK(self);
            int64_t deadline = monotonic_ns() + spin_ns;
            for (unsigned i = 1;; i++) {
                if (atomic_load_explicit(&self->queued, memory_order_acquire) >
                        0 ||
                    atomic_load_explicit(&self->shutdown,
                                         memory_order_relaxed)) {
                    break;
                }
                aio_cpu_relax();
                if ((i & 63) == 0 && monotonic_ns() > deadline) {
                    break;
                }
            }
            LOCK(self);
            self->spinning = 0;
            continue;
        }
        /* Sleep until a submitter hands us a wake token. */
        self->idle_awake--;
        self->sleeping++;
        while (self->wake_tokens == 0 &&
               !atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
            pthread_cond_wait(&self->wake, &self->mutex);
        }
        if (self->wake_tokens > 0) {
            self->wake_tokens--; /* the waker did the accounting */
        }
        else {
            self->sleeping--;
            self->idle_awake++;
        }
        may_spin = 1;
    }
    UNLOCK(self);
    return stop;
}

/* ------------------------------------------------------------------------ */
/* Executor: Python-facing methods                                           */

static PyObject *
executor_run_worker(PyObject *op, PyObject *Py_UNUSED(unused))
{
    Executor *self = (Executor *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    counter_add(self, C_THREADS, 1);
    LOCK(self);
    int stop = atomic_load_explicit(&self->shutdown, memory_order_relaxed);
    if (!stop) {
        self->idle_awake++;
    }
    UNLOCK(self);
    while (!stop) {
        worker_drain_queue(self, st);
        Py_BEGIN_ALLOW_THREADS
            stop = worker_wait(self);
        Py_END_ALLOW_THREADS
    }
    counter_add(self, C_THREADS, -1);
    Py_RETURN_NONE;
}

static PyObject *
executor_start(PyObject *op, PyObject *Py_UNUSED(unused))
{
    Executor *self = (Executor *)op;
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        return raise_shutdown();
    }
    LOCK(self);
    wait_for_first_spawner(self);
    Py_ssize_t n = self->spawned == 0 ? initial_workers(self) : 0;
    self->spawned += n;
    if (n > 0) {
        self->first_spawner = PyThread_get_thread_ident();
    }
    UNLOCK(self);
    if (n == 0) {
        Py_RETURN_NONE;
    }
    int rc = executor_spawn(self, n);
    first_spawn_done(self);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The loop a future made now belongs to: the running loop, else
 * asyncio.get_event_loop(). */
static PyObject *
current_loop(tp_state *st)
{
    PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
    if (loop == Py_None) {
        Py_DECREF(loop);
        loop = PyObject_CallNoArgs(st->get_event_loop);
    }
    return loop;
}

static PyObject *
executor_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    Executor *self = (Executor *)op;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "submit() missing required argument 'fn' (pos 1)");
        return NULL;
    }
    PyObject *fn = args[0];
    if (fn == Py_None || !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_ValueError, "First argument must be callable");
        return NULL;
    }
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        return raise_shutdown();
    }
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    PyObject *loop = current_loop(st);
    if (loop == NULL) {
        return NULL;
    }
    PyObject *future = executor_submit_impl(self, st, loop, fn, NULL, args + 1,
                                            nargs - 1, kwnames);
    Py_DECREF(loop);
    return future;
}

/* GIL held: fail the future of `it` (its call data is dropped) with
 * closed_exception(message): at once when this thread runs the future's
 * loop, else through its channel.  Takes ownership of `it`. */
static void
executor_fail_item(Executor *self, tp_state *st, work_item *it,
                   const char *message, PyObject *running_loop,
                   drop_tally *drops)
{
    it->next = NULL;
    item_clear_call(it);
    it->outcome = PyObject_CallFunction(self->closed_exception, "s", message);
    if (it->outcome == NULL) {
        it->outcome = aio_err_take();
    }
    it->failed = 1;
    if (running_loop != NULL && channel_is_for(it->channel, running_loop)) {
        item_resolve(st, it);
        item_free(st, it);
        return;
    }
    channel_deliver(st, it, drops);
}

/* GIL held: a failure item for each running call (marked abandoned, so its
 * worker drops the outcome), as a list. */
static work_item *
executor_abandon_running(tp_state *st, Executor *self)
{
    work_item *head = NULL;
    for (work_item *r = self->running; r != NULL; r = r->run_next) {
        r->abandoned = 1;
        work_item *f = item_alloc(st);
        if (f == NULL) {
            PyErr_Clear();
            continue;
        }
        f->future = Py_NewRef(r->future);
        f->channel = (Channel *)Py_NewRef(r->channel);
        f->next = head;
        head = f;
    }
    return head;
}

static PyObject *
executor_shutdown(PyObject *op, PyObject *Py_UNUSED(unused))
{
    Executor *self = (Executor *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    LOCK(self);
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        UNLOCK(self);
        Py_RETURN_NONE;
    }
    atomic_store_explicit(&self->shutdown, 1, memory_order_release);
    work_item *pending = self->head;
    self->head = self->tail = NULL;
    atomic_store_explicit(&self->queued, 0, memory_order_relaxed);
    UNLOCK(self);
    pthread_cond_broadcast(&self->wake);

    /* Like aiomisc: every unfinished future fails now, running calls
     * included (their results are dropped).  Snapshot the running ones
     * before any Python code runs: workers unlink them as they finish. */
    work_item *running = executor_abandon_running(st, self);
    PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
    if (loop == NULL) {
        PyErr_Clear();
    }
    drop_tally drops = {NULL, 0};
    work_item *lists[2] = {running, pending};
    for (int k = 0; k < 2; k++) {
        work_item *it = lists[k];
        while (it != NULL) {
            work_item *next = it->next;
            executor_fail_item(self, st, it, "Pool closed", loop, &drops);
            it = next;
        }
    }
    drop_tally_flush(st, &drops);
    Py_XDECREF(loop);
    Py_RETURN_NONE;
}

/* Forked child: resolve an item's future in place; a loop that refuses
 * (debug-mode thread check) is ignored, the child must not fail here. */
static void
child_resolve(tp_state *st, work_item *it)
{
    int done = future_is_done(st, it->future);
    if (done == 0) {
        PyObject *stack[3] = {NULL, it->future, it->outcome};
        PyObject *r = PyObject_VectorcallMethod(
            it->failed ? st->str_set_exception : st->str_set_result, &stack[1],
            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(r);
    }
    PyErr_Clear();
}

/* In a forked child (GIL held, the only thread): the worker threads are
 * gone; reset the synchronisation and the accounting. */
static PyObject *
executor_after_fork_in_child(PyObject *op, PyObject *Py_UNUSED(unused))
{
    Executor *self = (Executor *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    /* The parent's threads may have held these at fork time. */
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->first_started, NULL);
    self->first_spawner = 0;
    work_item *pending = self->head;
    self->head = self->tail = NULL;
    atomic_store_explicit(&self->queued, 0, memory_order_relaxed);
    self->running_count = 0;
    self->running = NULL; /* owned by the parent's workers */
    self->spawned = 0;
    self->sleeping = 0;
    self->idle_awake = 0;
    self->wake_tokens = 0;
    self->spinning = 0;
    if (self->counters[C_THREADS] != NULL) {
        *self->counters[C_THREADS] = 0;
    }

    /* This is the child's only thread, so no loop can be touched by
     * another thread: resolve everything inline (asyncio's own at-fork hook
     * has already forgotten the running loop, so we cannot tell which loop
     * is ours; the others simply get the callbacks queued). */
    while (pending != NULL) {
        work_item *next = pending->next;
        pending->next = NULL;
        item_clear_call(pending);
        pending->outcome = PyObject_CallFunction(self->closed_exception, "s",
                                                 "Pool was forked");
        if (pending->outcome == NULL) {
            pending->outcome = aio_err_take();
        }
        pending->failed = 1;
        child_resolve(st, pending);
        item_free(st, pending);
        pending = next;
    }
    /* Finished items whose drain a parent's thread may not have scheduled
     * yet: deliver them now. */
    PyObject *values = PyDict_Values(self->channels);
    if (values == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        Channel *ch = (Channel *)PyList_GET_ITEM(values, i);
        work_item *batch = ch->batch_head;
        ch->batch_head = ch->batch_tail = NULL;
        ch->batch_len = 0;
        ch->scheduled = 0;
        while (batch != NULL) {
            work_item *next = batch->next;
            child_resolve(st, batch);
            item_free(st, batch);
            batch = next;
        }
    }
    Py_DECREF(values);
    Py_RETURN_NONE;
}

/* Attributes */

static PyObject *
executor_get_max_workers(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(((Executor *)op)->max_workers);
}

static PyObject *
executor_get_spawned(PyObject *op, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    LOCK(self);
    Py_ssize_t n = self->spawned;
    UNLOCK(self);
    return PyLong_FromSsize_t(n);
}

static PyObject *
executor_get_queued(PyObject *op, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    return PyLong_FromSsize_t(
        atomic_load_explicit(&self->queued, memory_order_relaxed));
}

static PyObject *
executor_get_unfinished(PyObject *op, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    LOCK(self);
    Py_ssize_t n = atomic_load_explicit(&self->queued, memory_order_relaxed) +
                   self->running_count;
    UNLOCK(self);
    return PyLong_FromSsize_t(n);
}

static PyObject *
executor_get_is_shutdown(PyObject *op, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    return PyBool_FromLong(
        atomic_load_explicit(&self->shutdown, memory_order_relaxed));
}

static PyObject *
executor_get_statistic(PyObject *op, void *Py_UNUSED(closure))
{
    return Py_NewRef(((Executor *)op)->statistic);
}

static PyObject *
executor_get_spin_us(PyObject *op, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    return PyFloat_FromDouble(
        (double)atomic_load_explicit(&self->spin_ns, memory_order_relaxed) /
        1000.0);
}

static int
executor_set_spin_us(PyObject *op, PyObject *value, void *Py_UNUSED(closure))
{
    Executor *self = (Executor *)op;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _spin_us");
        return -1;
    }
    double us = PyFloat_AsDouble(value);
    if (us == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(us >= 0.0 && us <= 1e6)) {
        PyErr_SetString(PyExc_ValueError, "_spin_us must be in [0, 1e6]");
        return -1;
    }
    atomic_store_explicit(&self->spin_ns, (long)(us * 1000.0),
                          memory_order_relaxed);
    return 0;
}

/* Construction */

/* Take the six counter slots of `statistic` (buffers stay exported). */
static int
executor_take_counters(Executor *self, tp_state *st)
{
    for (int i = 0; i < N_COUNTERS; i++) {
        PyObject *name = PyUnicode_FromString(counter_names[i]);
        if (name == NULL) {
            return -1;
        }
        PyObject *stack[2] = {self->statistic, name};
        PyObject *slot =
            PyObject_VectorcallMethod(st->str_counter_slot, stack, 2, NULL);
        Py_DECREF(name);
        if (slot == NULL) {
            return -1;
        }
        Py_ssize_t index = -1;
        if (PyTuple_Check(slot) && PyTuple_GET_SIZE(slot) == 2) {
            index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
        }
        if (index < 0) {
            Py_DECREF(slot);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError,
                                "statistic._counter_slot() must return "
                                "(buffer, index)");
            }
            return -1;
        }
        Py_buffer *view = &self->counter_views[i];
        int r = PyObject_GetBuffer(PyTuple_GET_ITEM(slot, 0), view,
                                   PyBUF_WRITABLE | PyBUF_FORMAT);
        Py_DECREF(slot);
        if (r < 0) {
            return -1;
        }
        self->n_counter_views = i + 1;
        const char *want = i == C_SUM_TIME ? "d" : "q";
        if (view->itemsize != 8 || view->format == NULL ||
            strcmp(view->format, want) != 0 || index >= view->len / 8) {
            PyErr_Format(PyExc_TypeError,
                         "statistic counter %s is not an array('%s') slot",
                         counter_names[i], want);
            return -1;
        }
        char *p = (char *)view->buf + index * 8;
        if (i == C_SUM_TIME) {
            self->sum_time = (double *)(void *)p;
        }
        else {
            self->counters[i] = (int64_t *)(void *)p;
        }
    }
    return 0;
}

static PyObject *
executor_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "max_workers",
        "statistic",
        "spawn_thread",
        "closed_exception",
    };
    PyObject *values[4];
    if (aio_parse_tuple_dict("Executor", args, kwargs, names, 4, 4, 4,
                             values) < 0) {
        return NULL;
    }
    tp_state *st = tp_state_from_type(type);
    if (st == NULL) {
        return NULL;
    }
    if (PyBool_Check(values[0]) || !PyLong_Check(values[0])) {
        PyErr_Format(PyExc_TypeError, "max_workers must be an int, not %s",
                     Py_TYPE(values[0])->tp_name);
        return NULL;
    }
    Py_ssize_t max_workers = PyLong_AsSsize_t(values[0]);
    if (max_workers == -1 && PyErr_Occurred()) {
        /* Too large for a Py_ssize_t: huge positive is "unbounded". */
        int negative = PyObject_RichCompareBool(values[0], Py_False, Py_LT);
        PyErr_Clear();
        max_workers = negative ? 0 : PY_SSIZE_T_MAX;
    }
    if (max_workers < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "max_workers must be greater than 0");
        return NULL;
    }
    if (!PyCallable_Check(values[2])) {
        PyErr_SetString(PyExc_TypeError, "spawn_thread must be callable");
        return NULL;
    }
    if (!PyExceptionClass_Check(values[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "closed_exception must be an exception class");
        return NULL;
    }

    Executor *self = (Executor *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&self->mutex, NULL) != 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
        return NULL;
    }
    if (pthread_cond_init(&self->wake, NULL) != 0) {
        pthread_mutex_destroy(&self->mutex);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_cond_init failed");
        return NULL;
    }
    if (pthread_cond_init(&self->first_started, NULL) != 0) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->mutex);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_cond_init failed");
        return NULL;
    }
    self->sync_ready = 1;
    self->max_workers = max_workers;
    atomic_store(&self->spin_ns, (long)DEFAULT_SPIN_US * 1000);
    self->statistic = Py_NewRef(values[1]);
    self->spawn_thread = Py_NewRef(values[2]);
    self->closed_exception = Py_NewRef(values[3]);
    self->channels = PyDict_New();
    if (self->channels == NULL || executor_take_counters(self, st) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
executor_traverse(PyObject *op, visitproc visit, void *arg)
{
    Executor *self = (Executor *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->statistic);
    Py_VISIT(self->spawn_thread);
    Py_VISIT(self->closed_exception);
    Py_VISIT(self->channels);
    Py_VISIT((PyObject *)self->last_channel);
    for (int i = 0; i < self->n_counter_views; i++) {
        Py_VISIT(self->counter_views[i].obj);
    }
    if (self->sync_ready) {
        int r = 0;
        LOCK(self);
        for (work_item *it = self->head; it != NULL && r == 0; it = it->next) {
            r = item_traverse(it, visit, arg);
        }
        UNLOCK(self);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

static int
executor_clear(PyObject *op)
{
    Executor *self = (Executor *)op;
    if (self->sync_ready) {
        LOCK(self);
        work_item *pending = self->head;
        self->head = self->tail = NULL;
        atomic_store_explicit(&self->queued, 0, memory_order_relaxed);
        UNLOCK(self);
        /* No module state in tp_clear (see channel_clear). */
        item_list_free(NULL, pending);
    }
    for (int i = 0; i < N_COUNTERS - 1; i++) {
        self->counters[i] = NULL;
    }
    self->sum_time = NULL;
    for (int i = 0; i < self->n_counter_views; i++) {
        PyBuffer_Release(&self->counter_views[i]);
    }
    self->n_counter_views = 0;
    Py_CLEAR(self->statistic);
    Py_CLEAR(self->spawn_thread);
    Py_CLEAR(self->closed_exception);
    Py_CLEAR(self->channels);
    Py_CLEAR(self->last_channel);
    return 0;
}

static void
executor_dealloc(PyObject *op)
{
    Executor *self = (Executor *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    PyObject_ClearWeakRefs(op);
    (void)executor_clear(op);
    /* No worker can be inside: each one holds a reference to the core. */
    if (self->sync_ready) {
        pthread_cond_destroy(&self->wake);
        pthread_cond_destroy(&self->first_started);
        pthread_mutex_destroy(&self->mutex);
        self->sync_ready = 0;
    }
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *
executor_repr(PyObject *op)
{
    Executor *self = (Executor *)op;
    LOCK(self);
    Py_ssize_t spawned = self->spawned;
    Py_ssize_t queued =
        atomic_load_explicit(&self->queued, memory_order_relaxed);
    Py_ssize_t running = self->running_count;
    UNLOCK(self);
    return PyUnicode_FromFormat(
        "<_thread_pool.Executor max_workers=%zd spawned=%zd queued=%zd "
        "running=%zd%s>",
        self->max_workers, spawned, queued, running,
        atomic_load_explicit(&self->shutdown, memory_order_relaxed)
            ? " shutdown"
            : "");
}

static PyMethodDef executor_methods[] = {
    {"start", executor_start, METH_NOARGS,
     "start()\n--\n\nSpawn the initial workers (2, or 1 if max_workers is "
     "1)."},
    {"submit", (PyCFunction)(void (*)(void))executor_submit,
     METH_FASTCALL | METH_KEYWORDS,
     "submit(fn, /, *args, **kwargs)\n--\n\n"
     "Queue fn(*args, **kwargs); return an asyncio.Future of the current "
     "loop."},
    {"shutdown", executor_shutdown, METH_NOARGS,
     "shutdown()\n--\n\nStop accepting work, fail queued items, stop the "
     "workers (non-blocking, idempotent)."},
    {"run_worker", executor_run_worker, METH_NOARGS,
     "run_worker()\n--\n\nBody of a worker thread; returns at shutdown."},
    {"after_fork_in_child", executor_after_fork_in_child, METH_NOARGS,
     "after_fork_in_child()\n--\n\nReset the core in a forked child."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef executor_getset[] = {
    {"max_workers", executor_get_max_workers, NULL, NULL, NULL},
    {"spawned_threads", executor_get_spawned, NULL, NULL, NULL},
    {"queued", executor_get_queued, NULL, NULL, NULL},
    {"unfinished", executor_get_unfinished, NULL, NULL, NULL},
    {"is_shutdown", executor_get_is_shutdown, NULL, NULL, NULL},
    {"statistic", executor_get_statistic, NULL, NULL, NULL},
    {"_spin_us", executor_get_spin_us, executor_set_spin_us,
     "Microseconds an idle worker spins before sleeping (0 = never).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef executor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Executor, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot executor_slots[] = {
    {Py_tp_doc,
     "Executor(max_workers, statistic, spawn_thread, closed_exception)\n--\n\n"
     "Work queue and worker bodies of a thread pool (the core behind "
     "aiomisc_c.thread_pool.ThreadPoolExecutor)."},
    {Py_tp_new, executor_new},
    {Py_tp_dealloc, executor_dealloc},
    {Py_tp_traverse, executor_traverse},
    {Py_tp_clear, executor_clear},
    {Py_tp_repr, executor_repr},
    {Py_tp_methods, executor_methods},
    {Py_tp_getset, executor_getset},
    {Py_tp_members, executor_members},
    {0, NULL},
};

static PyType_Spec executor_spec = {
    .name = "aiomisc_c._thread_pool.Executor",
    .basicsize = sizeof(Executor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = executor_slots,
};

/* ------------------------------------------------------------------------ */
/* Threaded / BoundThreaded                                                  */

/* No running loop: return _thread_pool_base.run_in_executor(func,
 * args=(prefix, *args), kwargs=kwargs) — a coroutine. */
static PyObject *
threaded_run_in_executor(tp_state *st, PyObject *func, PyObject *prefix,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    if (st->run_in_executor == NULL) {
        /* Imported lazily: _thread_pool_base imports this module's users. */
        st->run_in_executor =
            aio_import_attr("aiomisc_c._thread_pool_base", "run_in_executor");
        if (st->run_in_executor == NULL) {
            return NULL;
        }
    }
    PyObject *tuple = aio_args_tuple(prefix, args, nargs);
    if (tuple == NULL) {
        return NULL;
    }
    PyObject *kwargs = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kwargs = aio_kwargs_dict(args, nargs, kwnames);
        if (kwargs == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
    }
    PyObject *stack[4] = {NULL, func, tuple, kwargs};
    PyObject *result = PyObject_Vectorcall(
        st->run_in_executor, &stack[1], 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        kwargs != NULL ? st->kwnames_args_kwargs : st->kwnames_args);
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* A running loop whose default executor is not one of ours. */
static PyObject *
threaded_via_loop(tp_state *st, PyObject *loop, int use_partial,
                  PyObject *func, PyObject *prefix, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *callable = NULL;
    PyObject *call_args = NULL;
    if (use_partial || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        /* loop.run_in_executor(None, partial(func, prefix, *a, **kw)) */
        PyObject *tuple = aio_args_tuple(func, args, nargs);
        if (tuple == NULL) {
            return NULL;
        }
        if (prefix != NULL) {
            /* (func, prefix, *args) */
            PyObject *with_prefix = PyTuple_New(nargs + 2);
            if (with_prefix == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            PyTuple_SET_ITEM(with_prefix, 0, Py_NewRef(func));
            PyTuple_SET_ITEM(with_prefix, 1, Py_NewRef(prefix));
            for (Py_ssize_t i = 0; i < nargs; i++) {
                PyTuple_SET_ITEM(with_prefix, i + 2, Py_NewRef(args[i]));
            }
            Py_SETREF(tuple, with_prefix);
        }
        PyObject *kwargs = aio_kwargs_dict(args, nargs, kwnames);
        if (kwargs == NULL && PyErr_Occurred()) {
            Py_DECREF(tuple);
            return NULL;
        }
        callable = PyObject_Call(st->partial, tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        if (callable == NULL) {
            return NULL;
        }
        call_args = PyTuple_Pack(2, Py_None, callable);
        Py_DECREF(callable);
    }
    else {
        /* loop.run_in_executor(None, func, [prefix,] *args) (uvloop) */
        PyObject *small[8];
        Py_ssize_t shift = prefix != NULL ? 4 : 3;
        Py_ssize_t n = nargs + shift;
        PyObject **stack = small;
        if (n > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
            stack = PyMem_Malloc((size_t)n * sizeof(PyObject *));
            if (stack == NULL) {
                return PyErr_NoMemory();
            }
        }
        stack[0] = loop;
        stack[1] = Py_None;
        stack[2] = func;
        if (prefix != NULL) {
            stack[3] = prefix;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            stack[i + shift] = args[i];
        }
        PyObject *result = PyObject_VectorcallMethod(
            st->str_run_in_executor, stack, (size_t)n, NULL);
        if (stack != small) {
            PyMem_Free(stack);
        }
        return result;
    }
    if (call_args == NULL) {
        return NULL;
    }
    PyObject *method = PyObject_GetAttr(loop, st->str_run_in_executor);
    PyObject *result = NULL;
    if (method != NULL) {
        result = PyObject_Call(method, call_args, NULL);
        Py_DECREF(method);
    }
    Py_DECREF(call_args);
    return result;
}

typedef struct {
    PyTypeObject *shell_type;
    PyObject *found; /* borrowed */
} find_shell_arg;

static int
find_shell_visit(PyObject *obj, void *arg)
{
    find_shell_arg *find = (find_shell_arg *)arg;
    if (PyObject_TypeCheck(obj, find->shell_type)) {
        find->found = obj;
        return 1;
    }
    return 0;
}

/* A loop that hides its default executor (uvloop): the core of the pool of
 * ours among the loop's own fields (only the default executor can be one),
 * as a new reference; NULL without an exception when there is none (or it
 * is shut down: the loop then reports that itself). */
static PyObject *
hidden_default_core(tp_state *st, PyObject *loop)
{
    traverseproc traverse = Py_TYPE(loop)->tp_traverse;
    if (traverse == NULL) {
        return NULL;
    }
    if (st->shell_type == NULL) {
        st->shell_type = aio_import_attr("aiomisc_c._thread_pool_base",
                                         "ThreadPoolExecutorBase");
        if (st->shell_type == NULL || !PyType_Check(st->shell_type)) {
            Py_CLEAR(st->shell_type);
            PyErr_Clear();
            return NULL;
        }
    }
    find_shell_arg find = {(PyTypeObject *)st->shell_type, NULL};
    (void)traverse(loop, find_shell_visit, &find);
    if (find.found == NULL) {
        return NULL;
    }
    PyObject *core = NULL;
    if (aio_getattr_optional(find.found, st->str_core, &core) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (core == NULL || !Py_IS_TYPE(core, st->executor_type) ||
        atomic_load_explicit(&((Executor *)core)->shutdown,
                             memory_order_relaxed)) {
        Py_XDECREF(core);
        return NULL;
    }
    return core;
}

/* The hot path of `await threaded_fn(...)`. */
static PyObject *
threaded_async_call_impl(tp_state *st, PyObject *func, PyObject *prefix,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
    if (loop == NULL) {
        return NULL;
    }
    if (loop == Py_None) {
        Py_DECREF(loop);
        return threaded_run_in_executor(st, func, prefix, args, nargs,
                                        kwnames);
    }
    PyObject *result = NULL;
    PyObject *executor = NULL;
    int has_executor_attr = 0;
    if ((PyObject *)Py_TYPE(loop) != st->loop_type_without_executor) {
        has_executor_attr =
            lookup_attr_quiet(loop, st->str_default_executor, &executor);
        if (has_executor_attr < 0) {
            goto done;
        }
        if (has_executor_attr == 0 && Py_TYPE(loop)->tp_dictoffset == 0) {
            /* No instance dict: no instance of this type will ever have it. */
            Py_XSETREF(st->loop_type_without_executor,
                       Py_NewRef((PyObject *)Py_TYPE(loop)));
        }
    }
    if (executor != NULL && executor != Py_None) {
        PyObject *core = NULL;
        if (aio_getattr_optional(executor, st->str_core, &core) < 0) {
            goto done;
        }
        if (core != NULL && Py_IS_TYPE(core, st->executor_type)) {
            result = executor_submit_impl((Executor *)core, st, loop, func,
                                          prefix, args, nargs, kwnames);
            Py_DECREF(core);
            goto done;
        }
        Py_XDECREF(core);
    }
    if (has_executor_attr) {
        result =
            threaded_via_loop(st, loop, 1, func, prefix, args, nargs, kwnames);
        goto done;
    }
    /* No visible default executor (uvloop): look it up every time, so
     * that loop.set_default_executor() takes effect at once. */
    PyObject *core = hidden_default_core(st, loop);
    if (core != NULL) {
        result = executor_submit_impl((Executor *)core, st, loop, func,
                                      prefix, args, nargs, kwnames);
        Py_DECREF(core);
        goto done;
    }
    result =
        threaded_via_loop(st, loop, 0, func, prefix, args, nargs, kwnames);
done:
    Py_XDECREF(executor);
    Py_DECREF(loop);
    return result;
}

static int
threaded_has_instance_override(Threaded *self, tp_state *st)
{
    if (self->dict == NULL || PyDict_GET_SIZE(self->dict) == 0) {
        return 0;
    }
    PyObject *v = PyDict_GetItemWithError(self->dict, st->str_async_call);
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return 1;
}

/* Strong references to what a call uses (func and instance are writable,
 * so user code could replace them during the call).  -1 if one is unset. */
static int
threaded_take_target(Threaded *self, PyObject **func, PyObject **instance)
{
    *func = Py_XNewRef(self->func);
    *instance = Py_XNewRef(self->instance);
    if (*func != NULL && (*instance != NULL || !self->bound)) {
        return 0;
    }
    PyErr_SetString(PyExc_AttributeError, *func == NULL ? "func" : "instance");
    Py_CLEAR(*func);
    Py_CLEAR(*instance);
    return -1;
}

static PyObject *
threaded_call_async(Threaded *self, tp_state *st, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *func, *instance;
    if (threaded_take_target(self, &func, &instance) < 0) {
        return NULL;
    }
    PyObject *r =
        threaded_async_call_impl(st, func, instance, args, nargs, kwnames);
    Py_DECREF(func);
    Py_XDECREF(instance);
    return r;
}

/* __call__: async_call, looked up normally for subclasses (and instances
 * that override it). */
static PyObject *
threaded_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames)
{
    Threaded *self = (Threaded *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    int override = 0;
    if (Py_TYPE(op) == st->threaded_type ||
        Py_TYPE(op) == st->bound_threaded_type) {
        override = threaded_has_instance_override(self, st);
        if (override < 0) {
            return NULL;
        }
    }
    else {
        override = 1;
    }
    if (override) {
        PyObject *method = PyObject_GetAttr(op, st->str_async_call);
        if (method == NULL) {
            return NULL;
        }
        PyObject *r = PyObject_Vectorcall(method, args, nargsf, kwnames);
        Py_DECREF(method);
        return r;
    }
    return threaded_call_async(self, st, args, PyVectorcall_NARGS(nargsf),
                               kwnames);
}

static PyObject *
threaded_async_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    Threaded *self = (Threaded *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    return threaded_call_async(self, st, args, nargs, kwnames);
}

static PyObject *
threaded_sync_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *func, *instance;
    if (threaded_take_target((Threaded *)op, &func, &instance) < 0) {
        return NULL;
    }
    PyObject *r =
        instance != NULL
            ? aio_call_prepend(func, instance, args, (size_t)nargs, kwnames)
            : PyObject_Vectorcall(func, args, (size_t)nargs, kwnames);
    Py_DECREF(func);
    Py_XDECREF(instance);
    return r;
}

static PyObject *
threaded_alloc(PyTypeObject *type, int bound)
{
    Threaded *self = (Threaded *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = threaded_vectorcall;
        self->bound = bound;
    }
    return (PyObject *)self;
}

static PyObject *
threaded_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
             PyObject *Py_UNUSED(kwargs))
{
    return threaded_alloc(type, 0);
}

static PyObject *
bound_threaded_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                   PyObject *Py_UNUSED(kwargs))
{
    return threaded_alloc(type, 1);
}

/* 1 if func is a coroutine function by inspect's or asyncio's rules. */
static int
is_coroutine_function(tp_state *st, PyObject *func)
{
    PyObject *r = PyObject_CallOneArg(st->iscoroutinefunction, func);
    if (r == NULL) {
        return -1;
    }
    int yes = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (yes != 0 || st->is_coroutine_marker == Py_None) {
        return yes;
    }
    /* asyncio.iscoroutinefunction also honours the `_is_coroutine` marker
     * (unittest.mock.AsyncMock on 3.11 and older). */
    PyObject *marker = NULL;
    if (aio_getattr_optional(func, st->str_is_coroutine, &marker) < 0) {
        PyErr_Clear();
        return 0;
    }
    yes = marker != NULL && marker == st->is_coroutine_marker;
    Py_XDECREF(marker);
    return yes;
}

static int
threaded_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {"func"};
    Threaded *self = (Threaded *)op;
    PyObject *arg;
    if (aio_parse_tuple_dict("Threaded", args, kwargs, names, 1, 1, 1, &arg) <
        0) {
        return -1;
    }
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    PyObject *func, *func_type;
    if (PyObject_TypeCheck(arg, &PyStaticMethod_Type) ||
        PyObject_TypeCheck(arg, &PyClassMethod_Type)) {
        func_type = PyObject_TypeCheck(arg, &PyStaticMethod_Type)
                        ? (PyObject *)&PyStaticMethod_Type
                        : (PyObject *)&PyClassMethod_Type;
        func = PyObject_GetAttrString(arg, "__func__");
        if (func == NULL) {
            return -1;
        }
    }
    else {
        func_type = (PyObject *)Py_TYPE(arg);
        func = Py_NewRef(arg);
    }
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "Can not wrap non-callable object %R",
                     func);
        goto fail;
    }
    int r = is_coroutine_function(st, func);
    if (r != 0) {
        if (r > 0) {
            PyErr_SetString(PyExc_TypeError, "Can not wrap coroutine");
        }
        goto fail;
    }
    PyObject *gen = PyObject_CallOneArg(st->isgeneratorfunction, func);
    r = gen == NULL ? -1 : PyObject_IsTrue(gen);
    Py_XDECREF(gen);
    if (r != 0) {
        if (r > 0) {
            PyErr_SetString(PyExc_TypeError,
                            "Can not wrap generator function");
        }
        goto fail;
    }
    Py_XSETREF(self->func, func);
    Py_XSETREF(self->func_type, Py_NewRef(func_type));
    return 0;

fail:
    Py_DECREF(func);
    return -1;
}

static PyObject *
bound_threaded_create(tp_state *st, PyObject *func, PyObject *func_type,
                      PyObject *instance)
{
    Threaded *bound = (Threaded *)threaded_alloc(st->bound_threaded_type, 1);
    if (bound == NULL) {
        return NULL;
    }
    bound->func = Py_NewRef(func);
    bound->func_type = Py_XNewRef(func_type);
    bound->instance = Py_NewRef(instance);
    return (PyObject *)bound;
}

static int
bound_threaded_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {"func", "instance"};
    Threaded *self = (Threaded *)op;
    PyObject *values[2];
    if (aio_parse_tuple_dict("BoundThreaded", args, kwargs, names, 2, 2, 2,
                             values) < 0) {
        return -1;
    }
    if (!PyCallable_Check(values[0])) {
        PyErr_Format(PyExc_TypeError, "Can not wrap non-callable object %R",
                     values[0]);
        return -1;
    }
    Py_XSETREF(self->func, Py_NewRef(values[0]));
    Py_XSETREF(self->func_type, Py_NewRef((PyObject *)Py_TYPE(values[0])));
    Py_XSETREF(self->instance, Py_NewRef(values[1]));
    return 0;
}

/* Threaded.__get__ */
static PyObject *
threaded_descr_get(PyObject *op, PyObject *instance, PyObject *owner)
{
    Threaded *self = (Threaded *)op;
    if (self->func == NULL ||
        self->func_type == (PyObject *)&PyStaticMethod_Type) {
        return Py_NewRef(op);
    }
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->func_type == (PyObject *)&PyClassMethod_Type) {
        PyObject *cls = owner;
        if (cls == NULL || cls == Py_None) {
            cls = (PyObject *)Py_TYPE(instance);
        }
        return bound_threaded_create(st, self->func, self->func_type, cls);
    }
    if (instance == NULL || instance == Py_None) {
        return Py_NewRef(op);
    }
    return bound_threaded_create(st, self->func, self->func_type, instance);
}

/* __name__, __qualname__, __doc__, __module__, __wrapped__: the instance's
 * own value (functools.update_wrapper) or else the wrapped function's. */
static int
is_wrapper_attr(PyObject *name)
{
    if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) < 7 ||
        PyUnicode_READ_CHAR(name, 0) != '_' ||
        PyUnicode_READ_CHAR(name, 1) != '_') {
        return 0;
    }
    static const char *const attrs[] = {
        "__name__", "__qualname__", "__doc__", "__module__", "__wrapped__",
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        if (PyUnicode_CompareWithASCIIString(name, attrs[i]) == 0) {
            return (int)i + 1;
        }
    }
    return 0;
}

static PyObject *
threaded_getattro(PyObject *op, PyObject *name)
{
    Threaded *self = (Threaded *)op;
    int which = is_wrapper_attr(name);
    if (which == 0 || self->func == NULL) {
        return PyObject_GenericGetAttr(op, name);
    }
    if (self->dict != NULL) {
        PyObject *v = PyDict_GetItemWithError(self->dict, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    if (which == 5) {
        return Py_NewRef(self->func);
    }
    return PyObject_GetAttr(self->func, name);
}

static PyObject *
threaded_repr(PyObject *op)
{
    Threaded *self = (Threaded *)op;
    PyObject *type_name = aio_type_name(Py_TYPE(op));
    if (type_name == NULL) {
        return NULL;
    }
    /* Like aiomisc: the name of getattr(func, "func", func) (partials), or
     * its type's name. */
    PyObject *name = NULL;
    if (self->func != NULL) {
        PyObject *target = PyObject_GetAttrString(self->func, "func");
        if (target == NULL) {
            PyErr_Clear();
            target = Py_NewRef(self->func);
        }
        name = PyObject_GetAttrString(target, "__name__");
        if (name == NULL || !PyUnicode_Check(name)) {
            PyErr_Clear();
            Py_XDECREF(name);
            name = aio_type_name(Py_TYPE(target));
        }
        Py_DECREF(target);
    }
    if (name == NULL) {
        PyErr_Clear();
        name = PyUnicode_FromString("?");
        if (name == NULL) {
            Py_DECREF(type_name);
            return NULL;
        }
    }
    PyObject *r = PyUnicode_FromFormat("<%U %U at %p>", type_name, name, op);
    Py_DECREF(type_name);
    Py_DECREF(name);
    return r;
}

static int
threaded_traverse(PyObject *op, visitproc visit, void *arg)
{
    Threaded *self = (Threaded *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->func);
    Py_VISIT(self->func_type);
    Py_VISIT(self->instance);
    Py_VISIT(self->dict);
    return 0;
}

static int
threaded_clear(PyObject *op)
{
    Threaded *self = (Threaded *)op;
    Py_CLEAR(self->func);
    Py_CLEAR(self->func_type);
    Py_CLEAR(self->instance);
    Py_CLEAR(self->dict);
    return 0;
}

static void
threaded_dealloc(PyObject *op)
{
    aio_gc_dealloc(op, 1);
}

static PyMethodDef threaded_methods[] = {
    {"async_call", (PyCFunction)(void (*)(void))threaded_async_call,
     METH_FASTCALL | METH_KEYWORDS,
     "async_call(*args, **kwargs)\n--\n\n"
     "Run func in the loop's default executor; returns an awaitable."},
    {"sync_call", (PyCFunction)(void (*)(void))threaded_sync_call,
     METH_FASTCALL | METH_KEYWORDS,
     "sync_call(*args, **kwargs)\n--\n\nCall func in the current thread."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"},
    {NULL, NULL, 0, NULL},
};

/* func/func_type/instance are writable (mock.patch.object sets, deletes
 * and restores them): every reader copes with NULL. */
static PyMemberDef threaded_members[] = {
    {"func", T_OBJECT_EX, offsetof(Threaded, func), 0,
     "The wrapped (unwrapped from static/classmethod) function."},
    {"func_type", T_OBJECT_EX, offsetof(Threaded, func_type), 0,
     "staticmethod, classmethod or type(func)."},
    {"__dictoffset__", T_PYSSIZET, offsetof(Threaded, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Threaded, weakreflist),
     READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Threaded, vectorcall),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef bound_threaded_members[] = {
    {"func", T_OBJECT_EX, offsetof(Threaded, func), 0,
     "The wrapped function."},
    {"func_type", T_OBJECT_EX, offsetof(Threaded, func_type), 0, NULL},
    {"instance", T_OBJECT_EX, offsetof(Threaded, instance), 0,
     "The object prepended to the arguments."},
    {"__dictoffset__", T_PYSSIZET, offsetof(Threaded, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Threaded, weakreflist),
     READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Threaded, vectorcall),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef threaded_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot threaded_slots[] = {
    {Py_tp_doc, "Threaded(func)\n--\n\n"
                "Run a blocking function in the loop's default thread pool: "
                "`await wrapped(...)`."},
    {Py_tp_new, threaded_new},
    {Py_tp_init, threaded_init},
    {Py_tp_dealloc, threaded_dealloc},
    {Py_tp_traverse, threaded_traverse},
    {Py_tp_clear, threaded_clear},
    {Py_tp_repr, threaded_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getattro, threaded_getattro},
    {Py_tp_setattro, PyObject_GenericSetAttr},
    {Py_tp_descr_get, threaded_descr_get},
    {Py_tp_methods, threaded_methods},
    {Py_tp_members, threaded_members},
    {Py_tp_getset, threaded_getset},
    {0, NULL},
};

static PyType_Spec threaded_spec = {
    .name = "aiomisc_c._thread_pool.Threaded",
    .basicsize = sizeof(Threaded),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = threaded_slots,
};

static PyType_Slot bound_threaded_slots[] = {
    {Py_tp_doc, "BoundThreaded(func, instance)\n--\n\n"
                "A Threaded function bound to `instance` (prepended to the "
                "arguments)."},
    {Py_tp_new, bound_threaded_new},
    {Py_tp_init, bound_threaded_init},
    {Py_tp_dealloc, threaded_dealloc},
    {Py_tp_traverse, threaded_traverse},
    {Py_tp_clear, threaded_clear},
    {Py_tp_repr, threaded_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getattro, threaded_getattro},
    {Py_tp_setattro, PyObject_GenericSetAttr},
    {Py_tp_methods, threaded_methods},
    {Py_tp_members, bound_threaded_members},
    {Py_tp_getset, threaded_getset},
    {0, NULL},
};

static PyType_Spec bound_threaded_spec = {
    .name = "aiomisc_c._thread_pool.BoundThreaded",
    .basicsize = sizeof(Threaded),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = bound_threaded_slots,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */

#define STATE_OBJECTS(X)                                                      \
    X(executor_type)                                                          \
    X(channel_type)                                                           \
    X(threaded_type)                                                          \
    X(bound_threaded_type)                                                    \
    X(future_type)                                                            \
    X(get_running_loop)                                                       \
    X(get_event_loop)                                                         \
    X(stock_create_future)                                                    \
    X(event_loop_var)                                                         \
    X(partial)                                                                \
    X(iscoroutinefunction)                                                    \
    X(isgeneratorfunction)                                                    \
    X(is_coroutine_marker)                                                    \
    X(kwnames_loop)                                                           \
    X(kwnames_args)                                                           \
    X(kwnames_args_kwargs)                                                    \
    X(logger)                                                                 \
    X(run_in_executor)                                                        \
    X(shell_type)                                                             \
    X(loop_type_without_executor)                                             \
    X(str_call_soon_threadsafe)                                               \
    X(str_closed)                                                             \
    X(str_core)                                                               \
    X(str_counter_slot)                                                       \
    X(str_create_future)                                                      \
    X(str_default_executor)                                                   \
    X(str_done)                                                               \
    X(str_drain)                                                              \
    X(str_is_closed)                                                          \
    X(str_is_coroutine)                                                       \
    X(str_run_in_executor)                                                    \
    X(str_set_exception)                                                      \
    X(str_set_result)                                                         \
    X(str_async_call)

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    tp_state *st = tp_state_from_module(module);
#define VISIT_FIELD(name) Py_VISIT((PyObject *)st->name);
    STATE_OBJECTS(VISIT_FIELD)
#undef VISIT_FIELD
    return 0;
}

static int
module_clear(PyObject *module)
{
    tp_state *st = tp_state_from_module(module);
#define CLEAR_FIELD(name) Py_CLEAR(st->name);
    STATE_OBJECTS(CLEAR_FIELD)
#undef CLEAR_FIELD
    return 0;
}

static void
module_free(void *module)
{
    (void)module_clear((PyObject *)module);
    tp_state *st = tp_state_from_module((PyObject *)module);
    while (st->free_items != NULL) {
        work_item *next = st->free_items->next;
        PyMem_Free(st->free_items);
        st->free_items = next;
    }
    st->n_free_items = 0;
}

static int
module_exec(PyObject *module)
{
    tp_state *st = tp_state_from_module(module);
    st->free_items = NULL;
    st->n_free_items = 0;

    if (aio_add_type(module, &st->channel_type, &channel_spec, NULL) < 0 ||
        aio_add_type(module, &st->executor_type, &executor_spec, NULL) < 0 ||
        aio_add_type(module, &st->threaded_type, &threaded_spec, NULL) < 0 ||
        aio_add_type(module, &st->bound_threaded_type, &bound_threaded_spec,
                     NULL) < 0) {
        return -1;
    }

#define INTERN(field, text)                                                   \
    if (aio_intern(&st->field, text) < 0) {                                   \
        return -1;                                                            \
    }
    INTERN(str_call_soon_threadsafe, "call_soon_threadsafe")
    INTERN(str_closed, "_closed")
    INTERN(str_core, "_core")
    INTERN(str_counter_slot, "_counter_slot")
    INTERN(str_create_future, "create_future")
    INTERN(str_default_executor, "_default_executor")
    INTERN(str_done, "done")
    INTERN(str_drain, "_drain")
    INTERN(str_is_closed, "is_closed")
    INTERN(str_is_coroutine, "_is_coroutine")
    INTERN(str_run_in_executor, "run_in_executor")
    INTERN(str_set_exception, "set_exception")
    INTERN(str_set_result, "set_result")
    INTERN(str_async_call, "async_call")
#undef INTERN

    st->kwnames_loop = Py_BuildValue("(s)", "loop");
    st->kwnames_args = Py_BuildValue("(s)", "args");
    st->kwnames_args_kwargs = Py_BuildValue("(ss)", "args", "kwargs");
    if (st->kwnames_loop == NULL || st->kwnames_args == NULL ||
        st->kwnames_args_kwargs == NULL) {
        return -1;
    }

#define IMPORT(field, module_name, attr)                                      \
    if ((st->field = aio_import_attr(module_name, attr)) == NULL) {           \
        return -1;                                                            \
    }
    IMPORT(future_type, "asyncio", "Future")
    IMPORT(get_running_loop, "asyncio.events", "_get_running_loop")
    IMPORT(get_event_loop, "asyncio.events", "get_event_loop")
    IMPORT(partial, "functools", "partial")
    IMPORT(iscoroutinefunction, "inspect", "iscoroutinefunction")
    IMPORT(isgeneratorfunction, "inspect", "isgeneratorfunction")
#undef IMPORT

    PyObject *base_loop = aio_import_attr("asyncio", "BaseEventLoop");
    if (base_loop == NULL) {
        return -1;
    }
    st->stock_create_future =
        PyObject_GetAttr(base_loop, st->str_create_future);
    Py_DECREF(base_loop);
    if (st->stock_create_future == NULL) {
        return -1;
    }

    /* Gone in future Pythons: then inspect's rules are all there is. */
    st->is_coroutine_marker =
        aio_import_attr("asyncio.coroutines", "_is_coroutine");
    if (st->is_coroutine_marker == NULL) {
        PyErr_Clear();
        st->is_coroutine_marker = Py_NewRef(Py_None);
    }

    PyObject *event_loop =
        aio_import_attr("aiomisc_c._context_vars", "EVENT_LOOP");
    if (event_loop == NULL) {
        return -1;
    }
    st->event_loop_var = PyObject_GetAttrString(event_loop, "context_var");
    Py_DECREF(event_loop);
    if (st->event_loop_var == NULL) {
        return -1;
    }
    if (!PyContextVar_CheckExact(st->event_loop_var)) {
        PyErr_SetString(PyExc_TypeError,
                        "EVENT_LOOP.context_var must be a ContextVar");
        return -1;
    }
    if (PyModule_AddIntConstant(module, "DEFAULT_SPIN_US", DEFAULT_SPIN_US) <
        0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static PyModuleDef thread_pool_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._thread_pool",
    .m_doc = "C core of aiomisc_c's thread pool: Executor, Threaded, "
             "BoundThreaded.",
    .m_size = sizeof(tp_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__thread_pool(void)
{
    return PyModuleDef_Init(&thread_pool_module);
}
