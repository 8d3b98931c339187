/* circuit_breaker/call_async.h — call_async(): a coroutine-like awaitable
 * guarding an awaited call.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_CALL_ASYNC_H
#define AIOMISC_C_CIRCUIT_BREAKER_CALL_ASYNC_H

/* ------------------------------------------------------------------------ */
/* call_async(): a coroutine-like awaitable                                  */

enum { CA_NEW = 0, CA_RUNNING = 1, CA_DONE = 2 };

typedef struct {
    PyObject_HEAD
    BreakerObject *breaker;
    PyObject *func;
    PyObject *args;      /* tuple: positional args then keyword values */
    PyObject *kwnames;   /* NULL or tuple */
    Py_ssize_t nargs;    /* positional count */
    PyObject *inner;     /* iterator of the awaited object (RUNNING) */
    uint64_t serial;
    int stage;
    int running;         /* a step (send/throw/close) is on the C stack */
} CallAsyncObject;

/* A CallAsync of `func` with no arguments yet (untracked by the GC). */
static CallAsyncObject *
call_async_alloc(BreakerObject *self, PyObject *func)
{
    CallAsyncObject *ca = PyObject_GC_New(CallAsyncObject, self->st->call_async_type);
    if (ca == NULL) {
        return NULL;
    }
    ca->breaker = (BreakerObject *)Py_NewRef(self);
    ca->func = Py_NewRef(func);
    ca->args = NULL;
    ca->kwnames = NULL;
    ca->nargs = 0;
    ca->inner = NULL;
    ca->serial = 0;
    ca->stage = CA_NEW;
    ca->running = 0;
    return ca;
}

/* The awaitable of call_async(func, *args, **kwargs), from a vectorcall
 * argument vector (nargs positional arguments, then kwnames' values). */
static PyObject *
call_async_new(BreakerObject *self, PyObject *func, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    CallAsyncObject *ca = call_async_alloc(self, func);
    if (ca == NULL) {
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    ca->nargs = nargs;
    if (nargs + nkw > 0) {
        ca->args = aio_args_tuple(NULL, args, nargs + nkw);
        if (ca->args == NULL) {
            PyObject_GC_Track(ca);
            Py_DECREF(ca);
            return NULL;
        }
        ca->kwnames = Py_XNewRef(kwnames);
    }
    PyObject_GC_Track(ca);
    return (PyObject *)ca;
}

static PyObject *
breaker_call_async(BreakerObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    cb_state *st = self->st;
    PyObject *func, *slow_args = NULL, *slow_kwargs = NULL;
    int how = split_func(st, "call_async", args, nargs, kwnames, &func,
                         &slow_args, &slow_kwargs);
    if (how < 0) {
        return NULL;
    }
    if (how == 0) {
        return call_async_new(self, func, args + 1, nargs - 1, kwnames);
    }
    CallAsyncObject *ca = call_async_alloc(self, func);
    if (ca == NULL) {
        Py_XDECREF(slow_args);
        Py_XDECREF(slow_kwargs);
        return NULL;
    }
    /* func passed by keyword: keep the rest as a kwnames vector */
    Py_ssize_t nkw = PyDict_GET_SIZE(slow_kwargs);
    PyObject *values = PyTuple_New(nkw);
    PyObject *names = PyTuple_New(nkw);
    if (values == NULL || names == NULL) {
        Py_XDECREF(values);
        Py_XDECREF(names);
        Py_DECREF(slow_args);
        Py_DECREF(slow_kwargs);
        PyObject_GC_Track(ca);
        Py_DECREF(ca);
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, i = 0;
    while (PyDict_Next(slow_kwargs, &pos, &key, &value)) {
        PyTuple_SET_ITEM(names, i, Py_NewRef(key));
        PyTuple_SET_ITEM(values, i, Py_NewRef(value));
        i++;
    }
    ca->args = values;
    if (nkw > 0) {
        ca->kwnames = names;
    }
    else {
        Py_DECREF(names);
    }
    Py_DECREF(slow_args);
    Py_DECREF(slow_kwargs);
    PyObject_GC_Track(ca);
    return (PyObject *)ca;
}

/* The body finished with `exc` raised (new reference, stolen). */
static PySendResult
ca_failed(CallAsyncObject *self, PyObject *exc)
{
    self->stage = CA_DONE;
    Py_CLEAR(self->inner);
    guard_fail(self->breaker, self->serial, exc);
    /* recorded as it was raised; what leaves the coroutine is PEP 479's */
    aio_coro_convert_stop_iteration();
    return PYGEN_ERROR;
}

static PySendResult
ca_returned(CallAsyncObject *self, PyObject *value, PyObject **result)
{
    self->stage = CA_DONE;
    Py_CLEAR(self->inner);
    record_success(self->breaker, self->serial);
    *result = value;
    return PYGEN_RETURN;
}

static PySendResult
ca_forward(CallAsyncObject *self, PySendResult sent, PyObject *value,
           PyObject **result)
{
    if (sent == PYGEN_NEXT) {
        *result = value;
        return PYGEN_NEXT;
    }
    if (sent == PYGEN_RETURN) {
        return ca_returned(self, value, result);
    }
    return ca_failed(self, aio_err_take());
}

/* The iterator to drive for an awaitable result, or NULL with *awaitable
 * = 0 when `value` is not awaitable (it is then the result itself). */
static PyObject *
await_iterator(PyObject *value, int *awaitable)
{
    if (PyCoro_CheckExact(value)) {
        *awaitable = 1;
        return Py_NewRef(value);
    }
    PyAsyncMethods *am = Py_TYPE(value)->tp_as_async;
    if (am == NULL || am->am_await == NULL) {
        *awaitable = 0;
        return NULL;
    }
    *awaitable = 1;
    PyObject *iterator = am->am_await(value);
    if (iterator == NULL) {
        return NULL;
    }
    if (PyCoro_CheckExact(iterator) || !PyIter_Check(iterator)) {
        PyErr_Format(PyExc_TypeError,
                     "__await__() returned %s of type '%.100s'",
                     PyCoro_CheckExact(iterator) ? "a coroutine"
                                                 : "non-iterator",
                     Py_TYPE(iterator)->tp_name);
        Py_DECREF(iterator);
        return NULL;
    }
    return iterator;
}

static PySendResult
ca_step(CallAsyncObject *self, PyObject *arg, PyObject **result)
{
    if (self->stage == CA_DONE) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (self->stage == CA_NEW) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return PYGEN_ERROR;
        }
        self->stage = CA_DONE; /* until the body really runs */
        if (guard_enter(self->breaker, &self->serial) < 0) {
            Py_CLEAR(self->func);
            Py_CLEAR(self->args);
            Py_CLEAR(self->kwnames);
            return PYGEN_ERROR;
        }
        PyObject *func = self->func, *args = self->args,
                 *kwnames = self->kwnames;
        self->func = self->args = self->kwnames = NULL; /* owned here now */
        PyObject *value = PyObject_Vectorcall(
            func, args ? &PyTuple_GET_ITEM(args, 0) : NULL, self->nargs,
            kwnames);
        Py_DECREF(func);
        Py_XDECREF(args);
        Py_XDECREF(kwnames);
        if (value == NULL) {
            return ca_failed(self, aio_err_take());
        }
        int awaitable;
        PyObject *iterator = await_iterator(value, &awaitable);
        if (!awaitable) {
            return ca_returned(self, value, result);
        }
        Py_DECREF(value);
        if (iterator == NULL) {
            return ca_failed(self, aio_err_take());
        }
        self->inner = iterator;
        self->stage = CA_RUNNING;
        arg = Py_None;
    }
    /* own the delegate across the step: ca_forward may drop self->inner */
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *value = NULL;
    PySendResult sent = PyIter_Send(inner, arg, &value);
    sent = ca_forward(self, sent, value, result);
    Py_DECREF(inner);
    return sent;
}

static PySendResult
call_async_am_send(CallAsyncObject *self, PyObject *arg, PyObject **result)
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return PYGEN_ERROR;
    }
    self->running = 1;
    PySendResult sent = ca_step(self, arg, result);
    self->running = 0;
    return sent;
}

static PyObject *
call_async_iternext(CallAsyncObject *self)
{
    PyObject *value = NULL;
    PySendResult sent = call_async_am_send(self, Py_None, &value);
    return aio_coro_send_result(sent, value);
}

static PyObject *
call_async_send(CallAsyncObject *self, PyObject *arg)
{
    PyObject *value = NULL;
    PySendResult sent = call_async_am_send(self, arg, &value);
    return aio_coro_send_result(sent, value);
}

/* throw(exc) / throw(type[, value[, traceback]]) -> the exception object */
static PyObject *ca_throw(CallAsyncObject *self, PyObject *exc);

static PyObject *
call_async_throw(CallAsyncObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return NULL;
    }
    PyObject *exc = aio_coro_throw_exception(args, nargs);
    if (exc == NULL) {
        return NULL;
    }
    self->running = 1;
    PyObject *value = ca_throw(self, exc);
    self->running = 0;
    return value;
}

/* throw() of `exc` (stolen) into the call */
static PyObject *
ca_throw(CallAsyncObject *self, PyObject *exc)
{
    if (self->stage != CA_RUNNING) {
        /* not started (the guard never ran) or finished: just raise */
        self->stage = CA_DONE;
        Py_CLEAR(self->func);
        Py_CLEAR(self->args);
        Py_CLEAR(self->kwnames);
        aio_err_restore(exc);
        return NULL;
    }
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *method = NULL;
    int found;
    if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        /* PEP 380: close the delegate, then raise GeneratorExit here */
        found = aio_getattr_optional(inner, self->breaker->st->str_close,
                                     &method);
        if (found > 0) {
            PyObject *closed = PyObject_CallNoArgs(method);
            Py_DECREF(method);
            if (closed == NULL) {
                Py_DECREF(inner);
                Py_DECREF(exc);
                return ca_failed(self, aio_err_take()), NULL;
            }
            Py_DECREF(closed);
        }
        Py_DECREF(inner);
        if (found < 0) {
            Py_DECREF(exc);
            return ca_failed(self, aio_err_take()), NULL;
        }
        return ca_failed(self, exc), NULL;
    }
    found = aio_getattr_optional(inner, self->breaker->st->str_throw, &method);
    Py_DECREF(inner);
    if (found <= 0) {
        if (found < 0) {
            Py_DECREF(exc);
            exc = aio_err_take();
        }
        return ca_failed(self, exc), NULL;
    }
    PyObject *value = PyObject_CallOneArg(method, exc);
    Py_DECREF(method);
    Py_DECREF(exc);
    if (value != NULL) {
        return value; /* the delegate yielded */
    }
    PyObject *raised = aio_err_take();
    if (PyErr_GivenExceptionMatches(raised, PyExc_StopIteration)) {
        /* the delegate returned: success, and StopIteration goes on up */
        self->stage = CA_DONE;
        Py_CLEAR(self->inner);
        record_success(self->breaker, self->serial);
        aio_err_restore(raised);
        return NULL;
    }
    return ca_failed(self, raised), NULL;
}

static PyObject *ca_close(CallAsyncObject *self);

static PyObject *
call_async_close(CallAsyncObject *self, PyObject *Py_UNUSED(ignored))
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return NULL;
    }
    self->running = 1;
    PyObject *closed = ca_close(self);
    self->running = 0;
    return closed;
}

static PyObject *
ca_close(CallAsyncObject *self)
{
    if (self->stage != CA_RUNNING) {
        self->stage = CA_DONE;
        Py_CLEAR(self->func);
        Py_CLEAR(self->args);
        Py_CLEAR(self->kwnames);
        Py_RETURN_NONE;
    }
    self->stage = CA_DONE;
    PyObject *inner = self->inner;
    self->inner = NULL;
    PyObject *method = NULL;
    int found = aio_getattr_optional(inner, self->breaker->st->str_close,
                                     &method);
    Py_DECREF(inner);
    if (found > 0) {
        PyObject *closed = PyObject_CallNoArgs(method);
        Py_DECREF(method);
        if (closed == NULL) {
            return ca_failed(self, aio_err_take()), NULL;
        }
        Py_DECREF(closed);
    }
    else if (found < 0) {
        return ca_failed(self, aio_err_take()), NULL;
    }
    /* GeneratorExit went through the body: TOTAL only, never a failure */
    record_abandoned(self->breaker, self->serial);
    Py_RETURN_NONE;
}

static void
call_async_finalize(CallAsyncObject *self)
{
    if (self->stage != CA_RUNNING) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *result = call_async_close(self, NULL);
    if (result == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    else {
        Py_DECREF(result);
    }
    aio_err_restore(saved);
}

static PyObject *
call_async_await(CallAsyncObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
call_async_get_name(CallAsyncObject *Py_UNUSED(self), void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("call_async");
}

static PyObject *
call_async_get_qualname(CallAsyncObject *Py_UNUSED(self), void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("CircuitBreaker.call_async");
}

static int
call_async_traverse(CallAsyncObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    Py_VISIT(self->kwnames);
    Py_VISIT(self->inner);
    return 0;
}

static int
call_async_clear(CallAsyncObject *self)
{
    Py_CLEAR(self->breaker);
    Py_CLEAR(self->func);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
    Py_CLEAR(self->inner);
    return 0;
}

static void
call_async_dealloc(CallAsyncObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef call_async_methods[] = {
    {"send", (PyCFunction)call_async_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Send a value into the call; return the next value yielded or raise "
     "StopIteration."},
    {"throw", (PyCFunction)(void (*)(void))call_async_throw, METH_FASTCALL,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise an exception inside the call, as coroutine.throw() does."},
    {"close", (PyCFunction)call_async_close, METH_NOARGS,
     "close($self, /)\n--\n\nStop the call, as coroutine.close() does."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef call_async_getset[] = {
    {"__name__", (getter)call_async_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)call_async_get_qualname, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot call_async_slots[] = {
    {Py_tp_dealloc, call_async_dealloc},
    {Py_tp_finalize, call_async_finalize},
    {Py_tp_traverse, call_async_traverse},
    {Py_tp_clear, call_async_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, call_async_iternext},
    {Py_tp_methods, call_async_methods},
    {Py_tp_getset, call_async_getset},
    {Py_am_await, call_async_await},
    {Py_am_send, call_async_am_send},
    {Py_tp_doc, "The awaitable returned by CircuitBreaker.call_async()."},
    {0, NULL},
};

static PyType_Spec call_async_spec = {
    .name = "aiomisc_c._circuit_breaker._CallAsync",
    .basicsize = sizeof(CallAsyncObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_async_slots,
};

#endif /* AIOMISC_C_CIRCUIT_BREAKER_CALL_ASYNC_H */
