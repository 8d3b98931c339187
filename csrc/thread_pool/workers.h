/* thread_pool/workers.h — the workers: run an item, drain, sleep.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_WORKERS_H
#define AIOMISC_C_THREAD_POOL_WORKERS_H

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

/* ------------------------------------------------------------------------ */
/* EVENT_LOOP in a worker                                                    */

/* While a worker runs an item, EVENT_LOOP.get() answers the item's loop
 * for as long as the variable still holds the value it held when the item
 * started (_context_vars asks through item_loop() below).  Writing the loop
 * into the item's context instead would build a new context mapping per
 * item: about a sixth of a threaded call's CPU.  Owned references; the
 * previous slot is saved on the C stack, so the slot nests. */
typedef struct {
    PyObject *loop;
    PyObject *entry; /* EVENT_LOOP's value at the start (None: unset) */
} item_loop_slot;

static AIO_THREAD_LOCAL item_loop_slot current_item_loop;

/* GIL held, inside the item's context: fill the slot (the previous one
 * goes to *saved).  0, or -1 with an exception set. */
static int
item_loop_enter(tp_state *st, item_loop_slot *saved, ChannelObject *ch)
{
    *saved = current_item_loop;
    PyObject *entry = NULL;
    if (PyContextVar_Get(st->event_loop_var, Py_None, &entry) < 0) {
        current_item_loop.loop = current_item_loop.entry = NULL;
        return -1;
    }
    current_item_loop.loop = channel_loop(ch); /* NULL: the loop is gone */
    current_item_loop.entry = entry;
    return 0;
}

/* GIL held: empty the slot and put the saved one back. */
static void
item_loop_leave(item_loop_slot *saved)
{
    item_loop_slot done = current_item_loop;
    current_item_loop = *saved;
    Py_XDECREF(done.loop);
    Py_XDECREF(done.entry);
}

/* item_loop(value): the loop of the item this thread runs, if `value` (what
 * EVENT_LOOP's variable holds now; None when unset) is still the value it
 * held when the item started; else None. */
static PyObject *
module_item_loop(PyObject *Py_UNUSED(module), PyObject *value)
{
    if (current_item_loop.loop != NULL && value == current_item_loop.entry) {
        return Py_NewRef(current_item_loop.loop);
    }
    Py_RETURN_NONE;
}

/* Worker thread, GIL held: run one item and push it to its channel (an
 * item of a closed loop is dropped unrun and counted in `drops`); a
 * channel's wake-up is owed through `owed`. */
static void
worker_run_item(ExecutorObject *self, tp_state *st, work_item *it,
                drop_tally *drops, pending_wake *owed)
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

    double started = aio_monotonic();
    PyObject *result = NULL;
    if (PyContext_Enter(it->context) == 0) {
        item_loop_slot saved;
        if (item_loop_enter(st, &saved, it->channel) == 0) {
            result = PyObject_Call(it->fn, it->args, it->kwargs);
        }
        PyObject *exc = result == NULL ? aio_err_take() : NULL;
        item_loop_leave(&saved);
        if (PyContext_Exit(it->context) < 0) {
            PyErr_WriteUnraisable(it->context);
        }
        aio_err_restore(exc);
    }
    double elapsed = aio_monotonic() - started;

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
    channel_deliver(st, it, drops, owed);
}

/* Worker thread, GIL held: run items until the queue is empty (or the pool
 * shut down).  The GIL is kept across items: no hand-off per item.  The
 * wake-up a finished item owes its loop waits in `owed` for the GIL's
 * release, unless another item is to run first: that one may take long. */
static void
worker_drain_queue(ExecutorObject *self, tp_state *st, pending_wake *owed)
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
        pending_wake_flush(owed);
        worker_run_item(self, st, it, &drops, owed);
    }
}

/* Worker thread, GIL released: spin (at most one spinner, and only when
 * `spin_allowed`) and then sleep until there is queued work (returns 0) or
 * the pool shuts down (1). */
static int
worker_wait(ExecutorObject *self, int spin_allowed)
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
        if (may_spin && spin_allowed && spin_ns > 0 && !self->spinning) {
            self->spinning = 1;
            may_spin = 0;
            UNLOCK(self);
            int64_t deadline = aio_monotonic_ns() + spin_ns;
            for (unsigned i = 1;; i++) {
                if (atomic_load_explicit(&self->queued, memory_order_acquire) >
                        0 ||
                    atomic_load_explicit(&self->shutdown,
                                         memory_order_relaxed)) {
                    break;
                }
                aio_cpu_relax();
                if ((i & 63) == 0 && aio_monotonic_ns() > deadline) {
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

#endif /* AIOMISC_C_THREAD_POOL_WORKERS_H */
