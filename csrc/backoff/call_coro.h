/* backoff/call_coro.h — the coroutine protocol of a call (send, throw,
 * close, __await__) and its type.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_CALL_CORO_H
#define AIOMISC_C_BACKOFF_CALL_CORO_H

/* A finished step as a method result: StopIteration(value) on return. */
static PyObject *
send_result_to_object(PySendResult status, PyObject *result, int iternext)
{
    if (status != PYGEN_RETURN) {
        return result;   /* the yielded value, or NULL with an error set */
    }
    if (result == Py_None && iternext) {
        Py_DECREF(result);
        return NULL;     /* exhausted, value None */
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
call_iternext(PyObject *self)
{
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, Py_None, NULL,
                                            &result);
    return send_result_to_object(status, result, 1);
}

static PyObject *
call_send(PyObject *self, PyObject *value)
{
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, value, NULL,
                                            &result);
    return send_result_to_object(status, result, 0);
}

/* throw(exc) / throw(type[, value[, traceback]]) as generators accept it. */
static PyObject *
call_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = aio_coro_throw_exception(args, nargs);
    if (exc == NULL) {
        return NULL;
    }
    PyObject *result;
    PySendResult status = call_step_guarded((CallObject *)self, NULL, exc,
                                            &result);
    Py_DECREF(exc);
    return send_result_to_object(status, result, 0);
}

/* close(): stop wherever the call is; the attempt in progress is closed. */
static PyObject *
call_close(PyObject *op, PyObject *Py_UNUSED(unused))
{
    CallObject *self = (CallObject *)op;
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return NULL;
    }
    PyObject *error = NULL;
    Py_INCREF(self);
    self->running = 1;
    if (self->state == S_ATTEMPT) {
        if (self->inner != NULL) {
            PyObject *close;
            int found = aio_getattr_optional(self->inner, self->st->str_close,
                                             &close);
            if (found > 0) {
                PyObject *r = PyObject_CallNoArgs(close);
                Py_DECREF(close);
                Py_XDECREF(r);
            }
            if (found < 0 || (found > 0 && PyErr_Occurred())) {
                error = aio_err_take();
            }
        }
        if (call_settle(self, NULL) < 0 && error == NULL) {
            error = aio_err_take();
        }
        /* a failing count replaces the error, as in a `finally:` */
        aio_err_restore(error);
        (void)call_end_attempt(self);
        error = aio_err_take();
    }
    else if (self->state == S_PAUSE) {
        call_end_pause(self);
        aio_err_restore(error);
        (void)call_end_attempt(self);
        error = aio_err_take();
    }
    call_finish(self);
    self->running = 0;
    Py_DECREF(self);
    if (error != NULL) {
        aio_err_restore(error);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A call dropped mid-way is closed, as a coroutine would be. */
static PyObject *call_get_qualname(PyObject *self, void *closure);

/* A call that was never started is dropped: warn as a coroutine does. */
static void
call_warn_unawaited(CallObject *self)
{
    PyObject *saved = aio_err_take();
    PyObject *name = self->unawaited_name != NULL
        ? PyUnicode_FromString(self->unawaited_name)
        : call_get_qualname((PyObject *)self, NULL);
    if (name == NULL ||
        PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "coroutine '%U' was never awaited", name) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(name);
    aio_err_restore(saved);
}

static void
call_finalize(PyObject *op)
{
    CallObject *self = (CallObject *)op;
    if (self->state == S_INIT) {
        self->state = S_DONE;
        call_warn_unawaited(self);
        return;
    }
    if (self->state != S_ATTEMPT && self->state != S_PAUSE) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *r = call_close(op, NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable(op);
    }
    Py_XDECREF(r);
    aio_err_restore(saved);
}

static PyObject *
call_await(PyObject *self)
{
    return Py_NewRef(self);
}

static int
call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->counters);
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->kwnames);
    Py_VISIT(self->inner);
    Py_VISIT(self->loop);
    Py_VISIT(self->task);
    Py_VISIT(self->queue);
    Py_VISIT(self->waiter);
    Py_VISIT(self->own_last_exception);
    return 0;
}

static int
call_clear(CallObject *self)
{
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->task);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
    Py_CLEAR(self->own_last_exception);
    Py_CLEAR(self->func);
    Py_CLEAR(self->counters);
    /* `owner` holds what `policy`, `tries` and `last_exception` point into:
     * clear it last, and point them at our own storage first */
    self->last_exception = &self->own_last_exception;
    self->tries = &self->own_tries;
    Py_CLEAR(self->owner);
    self->state = S_DONE;
    /* off the queue (which only borrows it) before letting go of it */
    QueueObject *queue = self->queue;
    self->queue = NULL;
    if (self->heap_index >= 0) {
        queue_remove(queue, self);
    }
    Py_XDECREF(queue);
    return 0;
}

static void
call_dealloc(CallObject *self)
{
    if (self->state == S_INIT || self->state == S_ATTEMPT ||
        self->state == S_PAUSE) {
        if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
            return;   /* resurrected */
        }
    }
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyObject *
call_get_func_attr(CallObject *self, PyObject *name)
{
    if (self->func == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *value;
    int found = aio_getattr_optional(self->func, name, &value);
    if (found < 0) {
        return NULL;
    }
    return found ? value : PyUnicode_FromString(Py_TYPE(self)->tp_name);
}

static PyObject *
call_get_name(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    return call_get_func_attr(c, c->st->str_name);
}

static PyObject *
call_get_qualname(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    return call_get_func_attr(c, c->st->str_qualname);
}

static PyObject *
call_get_running(PyObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((CallObject *)self)->running);
}

static PyObject *
call_get_await(PyObject *self, void *Py_UNUSED(closure))
{
    CallObject *c = (CallObject *)self;
    PyObject *awaited = c->state == S_PAUSE ? c->waiter : c->inner;
    return Py_NewRef(awaited != NULL ? awaited : Py_None);
}

static PyObject *
call_repr(PyObject *self)
{
    static const char *const names[] = {"created", "attempt", "pause", "done"};
    CallObject *c = (CallObject *)self;
    PyObject *qualname = call_get_qualname(self, NULL);
    if (qualname == NULL) {
        return NULL;
    }
    PyObject *repr = PyUnicode_FromFormat("<%s %S %s>", Py_TYPE(self)->tp_name,
                                          qualname, names[c->state & 3]);
    Py_DECREF(qualname);
    return repr;
}

static PyMethodDef call_methods[] = {
    {"send", call_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Send a value into the call; return the next value yielded or raise "
     "StopIteration."},
    {"throw", (PyCFunction)(void (*)(void))call_throw, METH_FASTCALL,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise an exception inside the call, as coroutine.throw() does."},
    {"close", call_close, METH_NOARGS, 
     "close($self, /)\n--\n\nStop the call, as coroutine.close() does."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef call_getsets[] = {
    {"__name__", call_get_name, NULL, NULL, NULL},
    {"__qualname__", call_get_qualname, NULL, NULL, NULL},
    {"cr_running", call_get_running, NULL, NULL, NULL},
    {"cr_await", call_get_await, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot call_slots[] = {
    {Py_tp_doc,
     "One call of a function decorated by asyncbackoff/asyncretry/timeout: "
     "a coroutine-like awaitable that runs the attempts in the awaiting "
     "task."},
    {Py_tp_dealloc, call_dealloc},
    {Py_tp_traverse, call_traverse},
    {Py_tp_clear, call_clear},
    {Py_tp_finalize, call_finalize},
    {Py_tp_iter, call_await},
    {Py_tp_iternext, call_iternext},
    {Py_tp_repr, call_repr},
    {Py_tp_methods, call_methods},
    {Py_tp_getset, call_getsets},
    {Py_am_await, call_await},
    {Py_am_send, call_am_send},
    {0, NULL},
};

static PyType_Spec call_spec = {
    .name = "aiomisc_c._backoff.Call",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};

#endif /* AIOMISC_C_BACKOFF_CALL_CORO_H */
