/* thread_pool/executor.h — Executor methods: start, submit, shutdown, fork.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_EXECUTOR_H
#define AIOMISC_C_THREAD_POOL_EXECUTOR_H

/* ------------------------------------------------------------------------ */
/* Executor: Python-facing methods                                           */

static PyObject *
executor_run_worker(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ExecutorObject *self = (ExecutorObject *)op;
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
    pending_wake owed = {NULL};
    while (!stop) {
        worker_drain_queue(self, st, &owed);
        /* The idle spin is a fast path: the switch is read with the GIL. */
        int spin_allowed = aio_fast_paths_on();
        Py_BEGIN_ALLOW_THREADS
            /* Now the woken loop finds the GIL free. */
            pending_wake_flush(&owed);
            stop = worker_wait(self, spin_allowed);
        Py_END_ALLOW_THREADS
    }
    counter_add(self, C_THREADS, -1);
    Py_RETURN_NONE;
}

static PyObject *
executor_start(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ExecutorObject *self = (ExecutorObject *)op;
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
    PyObject *loop = aio_running_loop(st->get_running_loop);
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
    ExecutorObject *self = (ExecutorObject *)op;
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
executor_fail_item(ExecutorObject *self, tp_state *st, work_item *it,
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
    channel_deliver(st, it, drops, NULL);
}

/* GIL held: a failure item for each running call (marked abandoned, so its
 * worker drops the outcome), as a list. */
static work_item *
executor_abandon_running(tp_state *st, ExecutorObject *self)
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
        f->channel = (ChannelObject *)Py_NewRef(r->channel);
        f->next = head;
        head = f;
    }
    return head;
}

static PyObject *
executor_shutdown(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ExecutorObject *self = (ExecutorObject *)op;
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
    /* No new channel can appear now (submit refuses). */
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(self->channels, &pos, &key, &value)) {
        channel_retire((ChannelObject *)value);
    }
    Py_RETURN_NONE;
}

/* Forked child: resolve an item's future in place; a loop that refuses
 * (debug-mode thread check) is ignored, the child must not fail here. */
static void
child_resolve(tp_state *st, work_item *it)
{
    if (item_try_resolve(st, it) < 0) {
        PyErr_Clear();
    }
}

/* In a forked child (GIL held, the only thread): the worker threads are
 * gone; reset the synchronisation and the accounting. */
static PyObject *
executor_after_fork_in_child(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ExecutorObject *self = (ExecutorObject *)op;
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
        ChannelObject *ch = (ChannelObject *)PyList_GET_ITEM(values, i);
        /* The waker (and the epoll set of an inherited loop) is shared with
         * the parent: signalling it, or unwatching it, would act on the
         * parent's loop.  The child goes through call_soon_threadsafe. */
        ch->waker_state = WAKER_OFF;
        Py_ssize_t n;
        work_item *batch = channel_take_batch(ch, &n);
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

#endif /* AIOMISC_C_THREAD_POOL_EXECUTOR_H */
