/* circuit_breaker/context.h — context(): a one-shot context manager guarding
 * its body.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_CONTEXT_H
#define AIOMISC_C_CIRCUIT_BREAKER_CONTEXT_H

/* ------------------------------------------------------------------------ */
/* context(): a one-shot context manager                                    */

typedef struct {
    PyObject_HEAD
    BreakerObject *breaker;
    uint64_t serial;
    int stage; /* 0 new, 1 entered, 2 exited */
} ContextObject;

static PyObject *
breaker_context(BreakerObject *self, PyObject *Py_UNUSED(ignored))
{
    ContextObject *ctx = PyObject_GC_New(ContextObject, self->st->context_type);
    if (ctx == NULL) {
        return NULL;
    }
    ctx->breaker = (BreakerObject *)Py_NewRef(self);
    ctx->serial = 0;
    ctx->stage = 0;
    PyObject_GC_Track(ctx);
    return (PyObject *)ctx;
}

static PyObject *
context_enter(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->stage != 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a CircuitBreaker.context() is entered only once");
        return NULL;
    }
    if (guard_enter(self->breaker, &self->serial) < 0) {
        self->stage = 2;
        return NULL;
    }
    self->stage = 1;
    Py_RETURN_NONE;
}

static PyObject *
context_exit(ContextObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__() takes 3 arguments");
        return NULL;
    }
    if (self->stage != 1) {
        PyErr_SetString(PyExc_RuntimeError, "context() was not entered");
        return NULL;
    }
    self->stage = 2;
    PyObject *value = args[1];
    if (args[0] == Py_None) {
        record_success(self->breaker, self->serial);
        Py_RETURN_FALSE;
    }
    PyObject *exc;
    if (PyExceptionInstance_Check(value)) {
        exc = Py_NewRef(value);
    }
    else {
        /* __exit__(type, None, None) called by hand */
        exc = PyObject_CallNoArgs(args[0]);
        if (exc == NULL) {
            return NULL;
        }
    }
    guard_fail(self->breaker, self->serial, Py_NewRef(exc));
    /* guard_fail raised again: the original propagates by returning False,
     * anything else (from the inspector) by raising it here */
    PyObject *raised = aio_err_take();
    if (raised == exc) {
        Py_DECREF(raised);
        Py_DECREF(exc);
        Py_RETURN_FALSE;
    }
    Py_DECREF(exc);
    aio_err_restore(raised);
    return NULL;
}

static int
context_traverse(ContextObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    return 0;
}

static int
context_clear(ContextObject *self)
{
    Py_CLEAR(self->breaker);
    return 0;
}

static void
context_dealloc(ContextObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef context_methods[] = {
    {"__enter__", (PyCFunction)context_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nStart the guarded block."},
    {"__exit__", (PyCFunction)(void (*)(void))context_exit, METH_FASTCALL,
     "__exit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
     "Record the outcome of the guarded block."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot context_slots[] = {
    {Py_tp_dealloc, context_dealloc},
    {Py_tp_traverse, context_traverse},
    {Py_tp_clear, context_clear},
    {Py_tp_methods, context_methods},
    {Py_tp_doc, "The context manager returned by CircuitBreaker.context()."},
    {0, NULL},
};

static PyType_Spec context_spec = {
    .name = "aiomisc_c._circuit_breaker._Context",
    .basicsize = sizeof(ContextObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = context_slots,
};

#endif /* AIOMISC_C_CIRCUIT_BREAKER_CONTEXT_H */
