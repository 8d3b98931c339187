/* thread_pool/queue.h — the queue: starting workers, channels, submit.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_QUEUE_H
#define AIOMISC_C_THREAD_POOL_QUEUE_H

/* ------------------------------------------------------------------------ */
/* Executor: queue and workers                                               */

#define LOCK(self) pthread_mutex_lock(&(self)->mutex)
#define UNLOCK(self) pthread_mutex_unlock(&(self)->mutex)

static inline Py_ssize_t
initial_workers(ExecutorObject *self)
{
    return self->max_workers > 1 ? 2 : 1;
}

/* Mutex held: hand a wake token to one sleeper.  Returns 1 when the caller
 * must pthread_cond_signal after unlocking. */
static inline int
claim_sleeper(ExecutorObject *self)
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
executor_spawn(ExecutorObject *self, Py_ssize_t n)
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
executor_grow(ExecutorObject *self, tp_state *st, Py_ssize_t n)
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
    PyObject *message =
        Py_BuildValue("(s)", "Can not start a new thread pool worker");
    aio_log_exc(&st->logger, TP_LOGGER_NAME, "warning", message, exc);
    Py_XDECREF(message);
    Py_XDECREF(exc);
    return 0;
}

/* GIL held, mutex held: wait (mutex and GIL released meanwhile) while
 * another thread starts the first workers.  Returns with the mutex held. */
static void
wait_for_first_spawner(ExecutorObject *self)
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
first_spawn_done(ExecutorObject *self)
{
    LOCK(self);
    self->first_spawner = 0;
    UNLOCK(self);
    pthread_cond_broadcast(&self->first_started);
}

static inline void
counter_add(ExecutorObject *self, int which, int64_t delta)
{
    if (self->counters[which] != NULL) {
        *self->counters[which] += delta;
    }
}

/* Drop channels whose loop died or is closed (before adding a channel). */
static int
executor_purge_closed(ExecutorObject *self, tp_state *st)
{
    PyObject *items = PyDict_Items(self->channels);
    if (items == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        PyObject *loop =
            channel_loop((ChannelObject *)PyTuple_GET_ITEM(pair, 1));
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
static ChannelObject *
executor_channel(ExecutorObject *self, tp_state *st, PyObject *loop)
{
    ChannelObject *ch = self->last_channel;
    if (ch != NULL && channel_is_for(ch, loop)) {
        return ch;
    }
    PyObject *key = PyLong_FromVoidPtr((void *)loop);
    if (key == NULL) {
        return NULL;
    }
    ch = (ChannelObject *)PyDict_GetItemWithError(self->channels, key);
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
        /* A shutdown while channel_new ran Python code has retired the
         * others already. */
        if (atomic_load_explicit(&self->shutdown, memory_order_acquire)) {
            channel_retire(ch);
        }
        int r = PyDict_SetItem(self->channels, key, (PyObject *)ch);
        Py_DECREF(ch);
        if (r < 0) {
            goto fail;
        }
    }
    Py_DECREF(key);
    Py_XSETREF(self->last_channel, (ChannelObject *)Py_NewRef(ch));
    return ch;

fail:
    Py_DECREF(key);
    return NULL;
}

/* asyncio.Future(loop=loop): what the stock loop.create_future() does.
 * Future has no vectorcall of its own, so a call with keyword names would
 * build a keyword dict per future (about a tenth of a threaded call's CPU).
 * One dict of the module state is reused instead: filled right before
 * Future.__init__, which reads it before it can run any Python code, and
 * emptied right after.  The object is made before the dict is filled: an
 * allocation may start a collection, and a finalizer that submits would
 * reuse the dict.  Whoever empties it second finds the key gone. */
static PyObject *
new_stock_future(tp_state *st, PyObject *loop)
{
    PyTypeObject *type = (PyTypeObject *)st->future_type;
    PyObject *future = type->tp_new(type, st->empty_args, NULL);
    if (future == NULL) {
        return NULL;
    }
    if (PyDict_SetItem(st->future_kwargs, st->str_loop, loop) < 0) {
        Py_DECREF(future);
        return NULL;
    }
    int failed = type->tp_init(future, st->empty_args, st->future_kwargs) < 0;
    PyObject *exc = failed ? aio_err_take() : NULL;
    if (PyDict_DelItem(st->future_kwargs, st->str_loop) < 0) {
        PyErr_Clear();
    }
    if (failed) {
        aio_err_restore(exc);
        Py_CLEAR(future);
    }
    return future;
}

static PyObject *
new_future(tp_state *st, ChannelObject *ch, PyObject *loop)
{
    if (ch->stock_future) {
        return new_stock_future(st, loop);
    }
    return PyObject_CallMethodNoArgs(loop, st->str_create_future);
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
executor_submit_impl(ExecutorObject *self, tp_state *st, PyObject *loop,
                     PyObject *fn, PyObject *prefix, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    if (atomic_load_explicit(&self->shutdown, memory_order_relaxed)) {
        return raise_shutdown();
    }
    ChannelObject *ch = executor_channel(self, st, loop);
    if (ch == NULL) {
        return NULL;
    }
    work_item *it = item_alloc(st);
    if (it == NULL) {
        return NULL;
    }
    it->channel = (ChannelObject *)Py_NewRef(ch);
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

#endif /* AIOMISC_C_THREAD_POOL_QUEUE_H */
