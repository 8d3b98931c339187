/* backoff/timer_queue.h — the per-loop timer queue (a heap of calls,
 * one real loop timer) and a call's timer.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_TIMER_QUEUE_H
#define AIOMISC_C_BACKOFF_TIMER_QUEUE_H

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
        loop_now + (when - aio_monotonic()));
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
    double due = aio_monotonic();
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

#endif /* AIOMISC_C_BACKOFF_TIMER_QUEUE_H */
