/* pool/enter.h — the awaitable that Acquisition.__aenter__() returns.
 *
 * It behaves as the coroutine of the Python twin's __aenter__ (read
 * aiomisc_c/_pool_py.py), without being one: the oldest idle instance is
 * popped and pool._check_instance(instance) is driven from here, in the
 * awaiting task, so a check that finishes without suspending costs no
 * Task, no extra frame and no StopIteration.  A check that suspends has its
 * yields passed to the loop, and send/throw/close passed back to it.
 *
 * A unit of the aiomisc_c._pool translation unit: included once, by
 * pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_POOL_ENTER_H
#define AIOMISC_C_POOL_ENTER_H

/* The iterator to drive for the awaitable `value` (new reference), or NULL
 * with an error: a coroutine drives itself, anything else by __await__(). */
static PyObject *
await_iterator(PyObject *value)
{
    if (PyCoro_CheckExact(value)) {
        return Py_NewRef(value);
    }
    PyAsyncMethods *am = Py_TYPE(value)->tp_as_async;
    if (am == NULL || am->am_await == NULL) {
        PyErr_Format(PyExc_TypeError,
                     "object %.100s can't be used in 'await' expression",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
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

/* Start driving the awaitable `pool.<name>(arg)` in `stage`: 0, or -1
 * with an error (the stage is set either way, nothing is driven then). */
static int
enter_begin(EnterObject *self, PyObject *name, PyObject *arg, int stage)
{
    self->stage = stage;
    PyObject *awaitable = call_pool_method(self->acquisition->pool, name, arg);
    if (awaitable == NULL) {
        return -1;
    }
    PyObject *iterator = await_iterator(awaitable);
    Py_DECREF(awaitable);
    if (iterator == NULL) {
        return -1;
    }
    Py_XSETREF(self->inner, iterator);
    return 0;
}

/* The first step: the oldest idle instance to check when there is no free
 * creation slot, else the general pool._acquire().  0, or -1 with an error
 * (in EN_CHECK when it is the check's error, else in EN_DONE). */
static int
enter_start(EnterObject *self)
{
    pool_state *st = self->st;
    AcquisitionObject *acquisition = self->acquisition;
    PyObject *pool = acquisition->pool;
    self->stage = EN_DONE;  /* until something is being driven */
    if (acquisition->instance != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Reuse of context manager is not acceptable");
        return -1;
    }
    PyObject *free_slots = PyObject_GetAttr(pool, st->str_free_slots);
    if (free_slots == NULL) {
        return -1;
    }
    int has_free = PyObject_IsTrue(free_slots);
    Py_DECREF(free_slots);
    if (has_free < 0) {
        return -1;
    }
    PyObject *hot = has_free ? NULL : pool_hot(st, pool);
    if (hot == NULL && !has_free) {
        return -1;
    }
    Py_ssize_t idle = hot == NULL ? 0
                                  : PyObject_Size(PyTuple_GET_ITEM(hot, HOT_IDLE));
    if (idle <= 0) {
        Py_XDECREF(hot);
        if (idle < 0) {
            return -1;
        }
        if (enter_begin(self, st->str_acquire, NULL, EN_ACQUIRE) < 0) {
            self->stage = EN_DONE;
            return -1;
        }
        return 0;
    }
    PyObject *instance = PyObject_CallNoArgs(PyTuple_GET_ITEM(hot, HOT_POPLEFT));
    if (instance == NULL) {
        Py_DECREF(hot);
        return -1;
    }
    self->hot = hot;
    self->instance = instance;
    return enter_begin(self, st->str_check_instance, instance, EN_CHECK);
}

/* The checked instance (owned by self) is good: it is in use now. */
static PySendResult
enter_checked_good(EnterObject *self, PyObject **result)
{
    PyObject *instance = self->instance;
    self->instance = NULL;
    self->stage = EN_DONE;
    PyObject *hot = self->hot;
    self->hot = NULL;
    PyObject *used = PyTuple_GET_ITEM(hot, HOT_USED);
    int rc;
    if (PyAnySet_CheckExact(used)) {
        rc = PySet_Add(used, instance);
    }
    else {
        PyObject *added = PyObject_CallMethodOneArg(used, self->st->str_add,
                                                    instance);
        rc = added == NULL ? -1 : 0;
        Py_XDECREF(added);
    }
    Py_DECREF(hot);
    if (rc < 0) {
        Py_DECREF(instance);
        return PYGEN_ERROR;
    }
    Py_XSETREF(self->acquisition->instance, Py_NewRef(instance));
    *result = instance;
    return PYGEN_RETURN;
}

/* The check raised (the error is pending).  An Exception is logged and the
 * instance replaced: 1.  Anything else (a cancellation, GeneratorExit)
 * puts the instance back, unchecked, and goes on: -1 with the error. */
static int
enter_check_raised(EnterObject *self)
{
    pool_state *st = self->st;
    PyObject *pool = self->acquisition->pool;
    PyObject *exc = aio_err_take();
    if (!PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
        self->stage = EN_DONE;
        PyObject *instance = self->instance;
        self->instance = NULL;
        Py_CLEAR(self->hot);
        int put = call_pool_method_void(pool, st->str_put_idle, instance);
        Py_DECREF(instance);
        if (put < 0) {
            Py_DECREF(exc);
            return -1;
        }
        aio_err_restore(exc);
        return -1;
    }
    PyObject *args[4] = {NULL, pool, self->instance, exc};
    PyObject *logged = PyObject_VectorcallMethod(
        st->str_check_failed, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
    Py_DECREF(exc);
    if (logged == NULL) {
        self->stage = EN_DONE;
        Py_CLEAR(self->instance);
        Py_CLEAR(self->hot);
        return -1;
    }
    Py_DECREF(logged);
    return 1;
}

/* What a step of the driven iterator gave (`sent`, `value`), carried on:
 * a yield goes up to the task; the end of a failed check starts
 * pool._acquire() in the same step; the end of the check or of the
 * acquisition is the result. */
static PySendResult
enter_after(EnterObject *self, PySendResult sent, PyObject *value,
            PyObject **result)
{
    pool_state *st = self->st;
    PyObject *pool = self->acquisition->pool;
    for (;;) {
        if (sent == PYGEN_NEXT) {
            *result = value;
            return PYGEN_NEXT;
        }
        Py_CLEAR(self->inner);
        if (self->stage != EN_CHECK) {
            self->stage = EN_DONE;
            if (sent == PYGEN_ERROR) {
                aio_coro_convert_stop_iteration();
                return PYGEN_ERROR;
            }
            Py_XSETREF(self->acquisition->instance, Py_NewRef(value));
            *result = value;
            return PYGEN_RETURN;
        }
        if (sent == PYGEN_RETURN) {
            int good = PyObject_IsTrue(value);
            Py_DECREF(value);
            if (good < 0) {
                self->stage = EN_DONE;
                Py_CLEAR(self->instance);
                Py_CLEAR(self->hot);
                return PYGEN_ERROR;
            }
            if (good) {
                return enter_checked_good(self, result);
            }
        }
        else if (enter_check_raised(self) < 0) {
            return PYGEN_ERROR;
        }
        /* not good: replaced by whatever pool._acquire() gives */
        Py_CLEAR(self->hot);
        PyObject *instance = self->instance;
        self->instance = NULL;
        self->stage = EN_DONE;
        int recycled = call_pool_method_void(pool, st->str_recycle_instance,
                                             instance);
        Py_DECREF(instance);
        if (recycled < 0 ||
            enter_begin(self, st->str_acquire, NULL, EN_ACQUIRE) < 0) {
            self->stage = EN_DONE;
            return PYGEN_ERROR;
        }
        PyObject *inner = Py_NewRef(self->inner);
        value = NULL;
        sent = PyIter_Send(inner, Py_None, &value);
        Py_DECREF(inner);
    }
}

static PySendResult
enter_step(EnterObject *self, PyObject *arg, PyObject **result)
{
    if (self->stage == EN_DONE) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (self->stage == EN_NEW) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return PYGEN_ERROR;
        }
        if (enter_start(self) < 0) {
            if (self->stage == EN_CHECK) {
                return enter_after(self, PYGEN_ERROR, NULL, result);
            }
            self->stage = EN_DONE;
            return PYGEN_ERROR;
        }
    }
    /* own the delegate across the step: enter_after drops self->inner */
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *value = NULL;
    PySendResult sent = PyIter_Send(inner, arg, &value);
    Py_DECREF(inner);
    return enter_after(self, sent, value, result);
}

static PySendResult
enter_am_send(EnterObject *self, PyObject *arg, PyObject **result)
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return PYGEN_ERROR;
    }
    self->running = 1;
    PySendResult sent = enter_step(self, arg, result);
    self->running = 0;
    return sent;
}

static PyObject *
enter_iternext(EnterObject *self)
{
    PyObject *value = NULL;
    PySendResult sent = enter_am_send(self, Py_None, &value);
    return aio_coro_send_result(sent, value);
}

static PyObject *
enter_send(EnterObject *self, PyObject *arg)
{
    PyObject *value = NULL;
    PySendResult sent = enter_am_send(self, arg, &value);
    return aio_coro_send_result(sent, value);
}

/* close() of the driven iterator: 0, or -1 with the error it raised. */
static int
enter_close_inner(EnterObject *self)
{
    PyObject *inner = self->inner;
    self->inner = NULL;
    if (inner == NULL) {
        return 0;
    }
    PyObject *method = NULL;
    int found = aio_getattr_optional(inner, self->st->str_close, &method);
    Py_DECREF(inner);
    if (found <= 0) {
        return found;
    }
    PyObject *closed = PyObject_CallNoArgs(method);
    Py_DECREF(method);
    if (closed == NULL) {
        return -1;
    }
    Py_DECREF(closed);
    return 0;
}

/* throw() of `exc` (stolen) into the awaitable: the driven iterator's
 * answer, carried on as a step's (PEP 380). */
static PySendResult
enter_throw_step(EnterObject *self, PyObject *exc, PyObject **result)
{
    if (self->stage != EN_CHECK && self->stage != EN_ACQUIRE) {
        /* not started or finished: just raise */
        self->stage = EN_DONE;
        aio_err_restore(exc);
        return PYGEN_ERROR;
    }
    if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        /* close the delegate, then raise GeneratorExit here */
        if (enter_close_inner(self) < 0) {
            Py_DECREF(exc);
        }
        else {
            aio_err_restore(exc);
        }
        return enter_after(self, PYGEN_ERROR, NULL, result);
    }
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *method = NULL;
    int found = aio_getattr_optional(inner, self->st->str_throw, &method);
    Py_DECREF(inner);
    if (found <= 0) {
        if (found < 0) {
            Py_DECREF(exc);
        }
        else {
            aio_err_restore(exc);
        }
        return enter_after(self, PYGEN_ERROR, NULL, result);
    }
    PyObject *value = PyObject_CallOneArg(method, exc);
    Py_DECREF(method);
    Py_DECREF(exc);
    if (value != NULL) {
        return enter_after(self, PYGEN_NEXT, value, result);
    }
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
        return enter_after(self, PYGEN_ERROR, NULL, result);
    }
    /* the delegate returned: its StopIteration's value */
    PyObject *stop = aio_err_take();
    value = PyObject_GetAttr(stop, self->st->str_value);
    Py_DECREF(stop);
    if (value == NULL) {
        return enter_after(self, PYGEN_ERROR, NULL, result);
    }
    return enter_after(self, PYGEN_RETURN, value, result);
}

static PyObject *
enter_throw(EnterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return NULL;
    }
    PyObject *exc = aio_coro_throw_exception(args, nargs);
    if (exc == NULL) {
        return NULL;
    }
    self->running = 1;
    PyObject *value = NULL;
    PySendResult sent = enter_throw_step(self, exc, &value);
    self->running = 0;
    return aio_coro_send_result(sent, value);
}

/* close(): the driven iterator is closed; an instance being checked goes
 * back to the pool, unchecked. */
static PyObject *
enter_close_now(EnterObject *self)
{
    int stage = self->stage;
    self->stage = EN_DONE;
    if (stage != EN_CHECK && stage != EN_ACQUIRE) {
        Py_RETURN_NONE;
    }
    int closed = enter_close_inner(self);
    PyObject *error = closed < 0 ? aio_err_take() : NULL;
    PyObject *instance = self->instance;
    self->instance = NULL;
    Py_CLEAR(self->hot);
    if (instance != NULL) {
        int put = call_pool_method_void(self->acquisition->pool,
                                        self->st->str_put_idle, instance);
        Py_DECREF(instance);
        if (put < 0) {
            Py_XDECREF(error);
            return NULL;
        }
    }
    if (error != NULL) {
        aio_err_restore(error);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
enter_close(EnterObject *self, PyObject *Py_UNUSED(ignored))
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        return NULL;
    }
    self->running = 1;
    PyObject *closed = enter_close_now(self);
    self->running = 0;
    return closed;
}

static void
enter_finalize(EnterObject *self)
{
    if (self->stage != EN_CHECK && self->stage != EN_ACQUIRE) {
        return;
    }
    PyObject *saved = aio_err_take();
    PyObject *result = enter_close(self, NULL);
    if (result == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    else {
        Py_DECREF(result);
    }
    aio_err_restore(saved);
}

static PyObject *
enter_await(EnterObject *self)
{
    return Py_NewRef(self);
}

static int
enter_traverse(EnterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->acquisition);
    Py_VISIT(self->instance);
    Py_VISIT(self->hot);
    Py_VISIT(self->inner);
    return 0;
}

static int
enter_clear(EnterObject *self)
{
    Py_CLEAR(self->acquisition);
    Py_CLEAR(self->instance);
    Py_CLEAR(self->hot);
    Py_CLEAR(self->inner);
    return 0;
}

static void
enter_dealloc(EnterObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef enter_methods[] = {
    {"send", (PyCFunction)enter_send, METH_O,
     "send($self, value, /)\n--\n\n"
     "Send a value into the acquisition; return the next value yielded or "
     "raise StopIteration."},
    {"throw", (PyCFunction)(void (*)(void))enter_throw, METH_FASTCALL,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise an exception inside the acquisition, as coroutine.throw() "
     "does."},
    {"close", (PyCFunction)enter_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Stop the acquisition, as coroutine.close() does."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot enter_slots[] = {
    {Py_tp_dealloc, enter_dealloc},
    {Py_tp_finalize, enter_finalize},
    {Py_tp_traverse, enter_traverse},
    {Py_tp_clear, enter_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, enter_iternext},
    {Py_tp_methods, enter_methods},
    {Py_am_await, enter_await},
    {Py_am_send, enter_am_send},
    {Py_tp_doc, "The awaitable returned by Acquisition.__aenter__()."},
    {0, NULL},
};

static PyType_Spec enter_spec = {
    .name = "aiomisc_c._pool._Enter",
    .basicsize = sizeof(EnterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = enter_slots,
};

#endif /* AIOMISC_C_POOL_ENTER_H */
