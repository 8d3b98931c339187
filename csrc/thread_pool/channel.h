/* thread_pool/channel.h — the result channel: per-loop completion batches.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_CHANNEL_H
#define AIOMISC_C_THREAD_POOL_CHANNEL_H

/* ------------------------------------------------------------------------ */
/* Channel: per-loop completion batches                                      */

static void channel_watch(tp_state *st, ChannelObject *ch, PyObject *loop);

static ChannelObject *
channel_new(tp_state *st, PyObject *loop)
{
    ChannelObject *ch =
        (ChannelObject *)st->channel_type->tp_alloc(st->channel_type, 0);
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
    channel_watch(st, ch, loop);
    return ch;

fail:
    Py_DECREF(ch);
    return NULL;
}

/* The channel's loop as a new reference, or NULL (no exception) if it died. */
static PyObject *
channel_loop(ChannelObject *ch)
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
channel_is_for(ChannelObject *ch, PyObject *loop)
{
    if (ch->loop_id != (void *)loop || ch->loop_ref == NULL) {
        return 0;
    }
    return !PyWeakref_CheckRef(ch->loop_ref) ||
           aio_weakref_is(ch->loop_ref, loop);
}

/* GIL held, on the thread that runs `loop`: have the loop watch a new
 * waker of the channel.  Only the loop's own thread may call add_reader
 * (asyncio's selector is not thread-safe); a channel made elsewhere, or
 * for a loop that cannot watch descriptors, keeps call_soon_threadsafe. */
static void
channel_watch(tp_state *st, ChannelObject *ch, PyObject *loop)
{
    PyObject *running = aio_running_loop(st->get_running_loop);
    if (running == NULL) {
        PyErr_Clear();
        return;
    }
    int own_thread = running == loop;
    Py_DECREF(running);
    if (!own_thread) {
        return;
    }
    loop_waker *w = waker_new();
    if (w == NULL) {
        PyErr_Clear(); /* out of descriptors: the slower path still works */
        return;
    }
    PyObject *on_wake = PyObject_GetAttr((PyObject *)ch, st->str_on_wake);
    PyObject *fd = on_wake ? PyLong_FromLong(w->read_fd) : NULL;
    /* The loop keeps a copy of the current context with the watch: an
     * empty one, so the first submitter's context variables are not kept
     * alive for as long as the loop watches the pool. */
    PyObject *empty = fd ? PyContext_New() : NULL;
    PyObject *r = NULL;
    if (empty != NULL && PyContext_Enter(empty) == 0) {
        PyObject *stack[4] = {NULL, loop, fd, on_wake};
        r = PyObject_VectorcallMethod(st->str_add_reader, &stack[1],
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        PyObject *exc = aio_err_take();
        if (PyContext_Exit(empty) < 0) {
            PyErr_Clear(); /* cannot happen: entered just above */
        }
        aio_err_restore(exc);
    }
    Py_XDECREF(empty);
    Py_XDECREF(fd);
    Py_XDECREF(on_wake);
    if (r == NULL) {
        PyErr_Clear(); /* e.g. NotImplementedError: not a selector loop */
        waker_unref(w);
        return;
    }
    Py_DECREF(r);
    ch->waker = w;
    ch->waker_state = WAKER_ON;
}

/* GIL held, on the loop's thread: stop watching the waker.  The loop held
 * the channel through the watch; it may be freed by this call. */
static void
channel_unwatch(tp_state *st, ChannelObject *ch)
{
    ch->waker_state = WAKER_OFF;
    PyObject *loop = channel_loop(ch);
    if (loop == NULL) {
        return;
    }
    Py_INCREF(ch);
    PyObject *fd = PyLong_FromLong(ch->waker->read_fd);
    PyObject *r = NULL;
    if (fd != NULL) {
        PyObject *stack[3] = {NULL, loop, fd};
        r = PyObject_VectorcallMethod(st->str_remove_reader, &stack[1],
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        Py_DECREF(fd);
    }
    Py_XDECREF(r);
    PyErr_Clear(); /* a closed loop forgot it already */
    Py_DECREF(loop);
    Py_DECREF(ch);
}

/* GIL held: take the pending batch off the channel (unscheduled); the
 * caller frees it.  `n` gets how many items it holds. */
static work_item *
channel_take_batch(ChannelObject *ch, Py_ssize_t *n)
{
    work_item *batch = ch->batch_head;
    *n = ch->batch_len;
    ch->batch_head = ch->batch_tail = NULL;
    ch->batch_len = 0;
    ch->scheduled = 0;
    return batch;
}

/* Loop thread, GIL held: resolve every future of the pending batch. */
static PyObject *
channel_drain(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ChannelObject *self = (ChannelObject *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    /* Completions from now on need a new drain. */
    Py_ssize_t n;
    work_item *it = channel_take_batch(self, &n);
    while (it != NULL) {
        work_item *next = it->next;
        item_resolve(st, it);
        item_free(st, it);
        it = next;
    }
    Py_RETURN_NONE;
}

/* GIL held, any thread: the pool shut down.  The loop stops watching the
 * waker at its next wake-up, after draining what is pending (a batch
 * signalled before must not be lost); until then pushes still signal. */
static void
channel_retire(ChannelObject *ch)
{
    if (ch->waker_state == WAKER_ON) {
        ch->waker_state = WAKER_RETIRING;
        waker_signal(ch->waker);
    }
}

/* Loop thread: the waker was signalled.  Consume the signal before taking
 * the batch: a push after this point signals again. */
static PyObject *
channel_on_wake(PyObject *op, PyObject *Py_UNUSED(unused))
{
    ChannelObject *self = (ChannelObject *)op;
    if (self->waker == NULL) {
        Py_RETURN_NONE;
    }
    waker_consume(self->waker);
    PyObject *r = channel_drain(op, NULL);
    if (r != NULL && self->waker_state == WAKER_RETIRING) {
        tp_state *st = tp_state_from_object(op);
        if (st == NULL) {
            Py_DECREF(r);
            return NULL;
        }
        channel_unwatch(st, self);
    }
    return r;
}

/* GIL held: 1 if the channel's loop is closed or gone (remembered), else
 * 0.  Read through `loop._closed` (asyncio's loops and uvloop have it),
 * else loop.is_closed(); a loop that cannot tell counts as open. */
static int
channel_is_closed(tp_state *st, ChannelObject *ch)
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
    int found = aio_getattr_optional(loop, st->str_closed, &flag);
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
    ChannelObject *channel; /* strong, or NULL */
    Py_ssize_t count;
} drop_tally;

/* GIL held, no exception set: log the tally (not while the interpreter
 * finalizes: logging may be half torn down, its locks held by dead
 * daemon threads) and reset it. */
static void
drop_tally_flush(tp_state *st, drop_tally *tally)
{
    ChannelObject *ch = tally->channel;
    Py_ssize_t count = tally->count;
    tally->channel = NULL;
    tally->count = 0;
    if (ch == NULL) {
        return;
    }
    if (count > 0 && !is_finalizing()) {
        PyObject *loop = channel_loop(ch);
        aio_log_warning(&st->logger, TP_LOGGER_NAME,
                        "Event loop %r is closed. Dropping %d thread pool "
                        "call(s)",
                        loop != NULL ? loop : Py_None, count);
        Py_XDECREF(loop);
    }
    Py_DECREF(ch);
}

static void
drop_tally_add(tp_state *st, drop_tally *tally, ChannelObject *ch,
               Py_ssize_t n)
{
    if (n <= 0) {
        return;
    }
    if (tally->channel != ch) {
        drop_tally_flush(st, tally);
        tally->channel = (ChannelObject *)Py_NewRef(ch);
    }
    tally->count += n;
}

/* GIL held: report that call_soon_threadsafe failed for a reason other
 * than a closed loop (the exception is taken). */
static void
report_delivery_error(tp_state *st, ChannelObject *ch, Py_ssize_t n)
{
    PyObject *exc = aio_err_take();
    if (!is_finalizing()) {
        PyObject *loop = channel_loop(ch);
        PyObject *args = Py_BuildValue(
            "(snO)", "Can not deliver %d thread pool result(s) to %r", n,
            loop != NULL ? loop : Py_None);
        aio_log_exc(&st->logger, TP_LOGGER_NAME, "error", args, exc);
        Py_XDECREF(args);
        Py_XDECREF(loop);
    }
    Py_XDECREF(exc);
}


/* Any thread, GIL held, no exception set: add a finished item to its
 * channel's batch; the first item of a batch schedules the drain.  Takes
 * ownership of `it`.  A channel with a waker is signalled at once, or,
 * with `defer`, owes the signal through it (a worker sends it after
 * releasing the GIL).  Returns how many items were dropped because the
 * loop is closed (the caller logs them through a drop_tally). */
static Py_ssize_t
channel_push(tp_state *st, work_item *it, pending_wake *defer)
{
    ChannelObject *ch = it->channel;
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
     * Python code executes below. */
    ch->scheduled = 1;
    Py_INCREF(ch); /* the drain may free every item, and so the channel */
    Py_ssize_t dropped = 0;
    if (ch->waker_state != WAKER_OFF) {
        /* A closed loop watches nothing: what is signalled would never be
         * drained. */
        if (channel_is_closed(st, ch)) {
            item_list_free(st, channel_take_batch(ch, &dropped));
        }
        else if (defer != NULL) {
            pending_wake_add(defer, ch->waker);
        }
        else {
            waker_signal(ch->waker);
        }
        Py_DECREF(ch);
        return dropped;
    }
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
    Py_ssize_t n;
    work_item *batch = channel_take_batch(ch, &n);
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

/* GIL held: channel_push(it, defer), then tally what it dropped.  The push
 * may free `it` (and with it the item's reference to its channel), so the
 * channel is read and held before. */
static void
channel_deliver(tp_state *st, work_item *it, drop_tally *drops,
                pending_wake *defer)
{
    ChannelObject *ch = (ChannelObject *)Py_NewRef(it->channel);
    Py_ssize_t dropped = channel_push(st, it, defer);
    drop_tally_add(st, drops, ch, dropped);
    Py_DECREF(ch);
}

static int
channel_traverse(PyObject *op, visitproc visit, void *arg)
{
    ChannelObject *self = (ChannelObject *)op;
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
    ChannelObject *self = (ChannelObject *)op;
    Py_ssize_t n;
    work_item *batch = channel_take_batch(self, &n);
    /* No module state here: during a collection at interpreter exit the
     * type may be cleared in the same batch (its MRO gone), so
     * PyType_GetModuleByDef would crash.  Items go straight to PyMem_Free. */
    item_list_free(NULL, batch);
    Py_CLEAR(self->loop_ref);
    Py_CLEAR(self->drain);
    /* A loop that still watched the waker holds the channel, so it cannot
     * be cleared while watched, unless the loop is going away with it. */
    loop_waker *w = self->waker;
    self->waker = NULL;
    self->waker_state = WAKER_OFF;
    waker_unref(w);
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
    ChannelObject *self = (ChannelObject *)op;
    PyObject *loop = channel_loop(self);
    PyObject *r =
        PyUnicode_FromFormat("<_thread_pool.Channel for %R, %zd pending>",
                             loop != NULL ? loop : Py_None, self->batch_len);
    Py_XDECREF(loop);
    return r;
}

static PyMethodDef channel_methods[] = {
    {"_on_wake", channel_on_wake, METH_NOARGS,
     "_on_wake($self, /)\n--\n\n"
     "Consume the waker's signal and resolve the pending batch (runs on\n"
     "the loop, which watches the waker)."},
    {"_drain", channel_drain, METH_NOARGS,
     "_drain($self, /)\n--\n\n"
     "Resolve the futures of the pending batch (runs on the loop)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
channel_get_loop(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *loop = channel_loop((ChannelObject *)op);
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
    .basicsize = sizeof(ChannelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = channel_slots,
};

#endif /* AIOMISC_C_THREAD_POOL_CHANNEL_H */
