/*
 * thread_pool/module.c -> aiomisc_c._thread_pool: the C core of aiomisc_c's
 * ThreadPoolExecutor and the `Threaded` / `BoundThreaded` wrappers behind
 * `@threaded`.
 *
 * Design (a cross-thread wake-up costs ~50 us on this kind of machine, and
 * every GIL hand-off is one, so the whole design is about not waking
 * threads):
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
 *     A fast path: never taken with fast paths off (common/fast_paths.h).
 *   - every wait checks `shutdown`; shutdown broadcasts the condvar.
 *
 * Delivery (batching).  Each event loop gets one `Channel` per pool (a dict
 *   keyed by loop plus a one-entry last-used cache; closed loops are purged
 *   when a new loop shows up).  A finished item is appended to its channel's
 *   batch (GIL-guarded); only the first item of a batch wakes the loop —
 *   one wake-up per batch, however many items join it before the loop runs
 *   the drain.  The drain (loop thread) takes the whole batch and resolves
 *   each future that is not done yet.
 *
 * Waking the loop (waker.h).  A channel made on its loop's own thread has
 *   the loop watch a descriptor of its own (loop.add_reader); a worker
 *   signals it after releasing the GIL, so the loop thread wakes to a free
 *   GIL instead of waking only to wait for it (call_soon_threadsafe needs
 *   the GIL, so that wake-up would come while the worker still holds it).
 *   A worker with more queued items signals before running the next one.
 *   Other channels (made off the loop's thread; loops that cannot watch
 *   descriptors) call loop.call_soon_threadsafe(channel._drain); a closed
 *   loop makes it raise: the batch is dropped with one warning.  A pool
 *   that shuts down has each loop stop watching at its next wake-up, after
 *   the drain, so nothing signalled before is lost.
 *
 * Threaded calls submit straight to our core when the running loop's
 *   default executor is one of our pools: asyncio loops expose it as
 *   `loop._default_executor` (then `._core`).  uvloop keeps it in a C
 *   field with no attribute, so the loop's tp_traverse (what
 *   gc.get_referents uses) finds the one pool of ours the loop refers to:
 *   read on every call, nothing cached, so loop.set_default_executor()
 *   takes effect at once.  That read is a fast path: with fast paths off
 *   uvloop's calls go through loop.run_in_executor, as the Python twin's
 *   do.  Otherwise the call goes through loop.run_in_executor /
 *   _thread_pool_base.
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
#include "common/fast_paths.h"
#include "common/running_loop.h"

/*
 * Layout: the multidict model.  This file is the only translation unit of
 * the extension; it includes the units below (headers of `static`
 * functions, one concern each) in dependency order.  Chosen over separate
 * .c files (uvloop's model) because everything stays `static` (no internal
 * symbols, no private header API to keep in sync), the compiler sees the
 * whole hot path of a call (submit -> queue -> worker -> channel) at once
 * and inlines across units, and the build is one object as before.  The
 * price: a unit is not self-contained; it may use anything defined by the
 * units included before it.
 *
 *   types.h              constants, module state and the object layouts
 *   helpers.h            clock, quiet getattr, warning logging
 *   work_item.h          work items: free list, resolving a future
 *   waker.h              a channel's wake-up descriptor
 *   channel.h            the result channel: per-loop completion batches
 *   queue.h              the queue: starting workers, channels, submit
 *   workers.h            the workers: run an item, drain, sleep
 *   executor.h           Executor methods: start, submit, shutdown, fork
 *   executor_type.h      Executor attributes, construction, type spec
 *   threaded_dispatch.h  which executor runs a threaded call (and the
 *                        module's default_pool())
 *   threaded.h           the Threaded and BoundThreaded types
 *   module.c             module state's GC, module init
 */
#include "thread_pool/types.h"
#include "thread_pool/helpers.h"
#include "thread_pool/work_item.h"
#include "thread_pool/waker.h"
#include "thread_pool/channel.h"
#include "thread_pool/queue.h"
#include "thread_pool/workers.h"
#include "thread_pool/executor.h"
#include "thread_pool/executor_type.h"
#include "thread_pool/threaded_dispatch.h"
#include "thread_pool/threaded.h"

/* ------------------------------------------------------------------------ */
/* Module                                                                    */

static int
thread_pool_traverse(PyObject *module, visitproc visit, void *arg)
{
    tp_state *st = tp_state_from_module(module);
#define VISIT(field) Py_VISIT(st->field);
    TP_STATE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
thread_pool_clear(PyObject *module)
{
    tp_state *st = tp_state_from_module(module);
#define CLEAR(field) Py_CLEAR(st->field);
    TP_STATE_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
thread_pool_free(void *module)
{
    (void)thread_pool_clear((PyObject *)module);
    tp_state *st = tp_state_from_module((PyObject *)module);
    while (st->free_items != NULL) {
        work_item *next = st->free_items->next;
        PyMem_Free(st->free_items);
        st->free_items = next;
    }
    st->n_free_items = 0;
}

static int
thread_pool_exec(PyObject *module)
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
    INTERN(str_add_reader, "add_reader")
    INTERN(str_remove_reader, "remove_reader")
    INTERN(str_on_wake, "_on_wake")
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

    st->str_loop = PyUnicode_InternFromString("loop");
    st->empty_args = PyTuple_New(0);
    st->future_kwargs = PyDict_New();
    st->kwnames_args = Py_BuildValue("(s)", "args");
    st->kwnames_args_kwargs = Py_BuildValue("(ss)", "args", "kwargs");
    if (st->str_loop == NULL || st->empty_args == NULL ||
        st->future_kwargs == NULL || st->kwnames_args == NULL ||
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
    if (!PyType_Check(st->future_type)) {
        PyErr_SetString(PyExc_TypeError, "asyncio.Future must be a class");
        return -1;
    }

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
    /* EVENT_LOOP.get() in our worker threads asks item_loop(). */
    PyObject *item_loop = PyObject_GetAttrString(module, "item_loop");
    if (item_loop == NULL) {
        return -1;
    }
    PyObject *add_lookup =
        aio_import_attr("aiomisc_c._context_vars", "add_item_loop_lookup");
    PyObject *lookup_added = add_lookup != NULL
                          ? PyObject_CallOneArg(add_lookup, item_loop)
                          : NULL;
    Py_XDECREF(add_lookup);
    Py_DECREF(item_loop);
    if (lookup_added == NULL) {
        return -1;
    }
    Py_DECREF(lookup_added);
    PyObject *spin_us = PyLong_FromLong(DEFAULT_SPIN_US);
    int added = PyModule_AddObjectRef(module, "DEFAULT_SPIN_US", spin_us);
    Py_XDECREF(spin_us);
    return added;
}

static PyMethodDef thread_pool_functions[] = {
    {"default_pool", module_default_pool, METH_O,
     "default_pool($module, loop, /)\n--\n\n"
     "The loop's default executor when it is one of this package's thread "
     "pools (asyncio's loops show it, uvloop's are searched), else None."},
    {"item_loop", module_item_loop, METH_O,
     "item_loop($module, value, /)\n--\n\n"
     "In a worker thread running an item: the item's loop, if `value` (what "
     "EVENT_LOOP's variable holds now, None when unset) is what it held when "
     "the item started; else None."},
    AIO_SET_FAST_PATHS_METHODDEF,
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot thread_pool_slots[] = {
    {Py_mod_exec, thread_pool_exec},
    {0, NULL},
};

static PyModuleDef thread_pool_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._thread_pool",
    .m_doc = "C core of aiomisc_c's thread pool: Executor, Threaded, "
             "BoundThreaded.",
    .m_size = sizeof(tp_state),
    .m_methods = thread_pool_functions,
    .m_slots = thread_pool_slots,
    .m_traverse = thread_pool_traverse,
    .m_clear = thread_pool_clear,
    .m_free = thread_pool_free,
};

PyMODINIT_FUNC
PyInit__thread_pool(void)
{
    return PyModuleDef_Init(&thread_pool_module);
}
