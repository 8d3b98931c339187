/* backoff/wrappers.h — the decorated functions: BackoffFunction and
 * TimeoutFunction.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_WRAPPERS_H
#define AIOMISC_C_BACKOFF_WRAPPERS_H

/* ------------------------------------------------------------------------ */
/* The decorated functions: BackoffFunction and TimeoutFunction              */

static PyObject *
wrapper_new(backoff_state *st, PyTypeObject *type, PyObject *func,
            PyObject *backoff)
{
    WrapperObject *self = PyObject_GC_New(WrapperObject, type);
    if (self == NULL) {
        return NULL;
    }
    memset(&self->policy, 0, sizeof(self->policy));
    self->func = Py_NewRef(func);
    self->backoff = Py_XNewRef(backoff);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->vectorcall = NULL;
    PyObject_GC_Track(self);
    (void)st;
    return (PyObject *)self;
}

/* True when Backoff.execute/prepare are the module's own (not patched). */
static int
backoff_is_pristine(backoff_state *st, PyObject *backoff)
{
    if (Py_TYPE(backoff) != st->BackoffType) {
        return 0;
    }
    PyObject *dict = st->BackoffType->tp_dict;
    PyObject *execute = PyDict_GetItemWithError(dict, st->str_execute);
    if (execute != st->orig_execute) {
        return 0;
    }
    return PyDict_GetItemWithError(dict, st->str_prepare) == st->orig_prepare;
}

static PyObject *
backoff_function_vectorcall(PyObject *op, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
    WrapperObject *self = (WrapperObject *)op;
    backoff_state *st = state_of_final(op);
    PyObject *backoff = self->backoff;
    if (backoff_is_pristine(st, backoff)) {
        BackoffObject *b = (BackoffObject *)backoff;
        if (b->counters == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Backoff.__init__ was not called");
            return NULL;
        }
        return call_new(st, backoff, &b->policy, b->counters, NULL,
                        self->func, args, nargsf, kwnames);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    /* a subclass or a patched class: go through backoff.execute() */
    return aio_call_method_prepend(backoff, st->str_execute, self->func, args,
                                   nargsf, kwnames);
}

static PyObject *
timeout_function_vectorcall(PyObject *op, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
    WrapperObject *self = (WrapperObject *)op;
    return call_new(state_of_final(op), op, &self->policy, NULL, NULL,
                    self->func, args, nargsf, kwnames);
}

/* TimeoutFunction(func, value): the wrapper the C `timeout` decorator
 * returns (the checks are done by _backoff_base.make_timeout). */
static PyObject *
timeout_function_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *func, *value;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
        !PyArg_UnpackTuple(args, "TimeoutFunction", 2, 2, &func, &value)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError,
                            "TimeoutFunction() takes no keyword arguments");
        }
        return NULL;
    }
    backoff_state *st = (backoff_state *)PyType_GetModuleState(type);
    WrapperObject *self = (WrapperObject *)wrapper_new(st, type, func, NULL);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = timeout_function_vectorcall;
    Policy *p = &self->policy;
    PyObject *one = PyLong_FromLong(1);
    if (policy_init(p) < 0 || one == NULL ||
        policy_set(p, F_ATTEMPT_TIMEOUT, value) < 0 ||
        policy_set(p, F_MAX_TRIES, one) < 0) {
        Py_XDECREF(one);
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(one);
    return (PyObject *)self;
}

static int
wrapper_traverse(WrapperObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->func);
    Py_VISIT(self->backoff);
    Py_VISIT(self->dict);
    return policy_traverse(&self->policy, visit, arg);
}

static int
wrapper_clear(WrapperObject *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->backoff);
    Py_CLEAR(self->dict);
    policy_clear(&self->policy);
    return 0;
}

static void
wrapper_dealloc(WrapperObject *self)
{
    aio_gc_dealloc((PyObject *)self, 1);
}

static PyObject *
wrapper_repr(PyObject *op)
{
    WrapperObject *self = (WrapperObject *)op;
    return PyUnicode_FromFormat("<%s wrapping %R>", Py_TYPE(op)->tp_name,
                                self->func);
}

/* __code__, __defaults__, __kwdefaults__ make the wrapper "function-like"
 * for inspect (< 3.12 reads CO_COROUTINE from __code__); __wrapped__ is
 * followed first by inspect.signature, so signatures stay the wrapped
 * function's. */
static aio_wrapper_support *
wrapper_support_of(PyObject *op)
{
    return &state_of_final(op)->wrapper_support;
}

static aio_wrapper_layout wrapper_layout = {
    offsetof(WrapperObject, func), wrapper_support_of,
};

static PyObject *
wrapper_get_backoff(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *b = ((WrapperObject *)op)->backoff;
    return Py_NewRef(b != NULL ? b : Py_None);
}

static PyObject *
wrapper_get_timeout(PyObject *op, void *Py_UNUSED(closure))
{
    PyObject *t = ((WrapperObject *)op)->policy.attempt_timeout;
    return Py_NewRef(t != NULL ? t : Py_None);
}

static PyMemberDef wrapper_members[] = {
    AIO_WRAPPER_MEMBERS(WrapperObject),
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef backoff_function_getsets[] = {
    AIO_WRAPPER_FUNCTION_LIKE_GETSETS(&wrapper_layout),
    AIO_WRAPPER_DICT_GETSET,
    {"backoff", wrapper_get_backoff, NULL, "the Backoff", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef timeout_function_getsets[] = {
    AIO_WRAPPER_FUNCTION_LIKE_GETSETS(&wrapper_layout),
    AIO_WRAPPER_DICT_GETSET,
    {"timeout", wrapper_get_timeout, NULL, "the time limit", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot backoff_function_slots[] = {
    {Py_tp_doc, "A coroutine function decorated by a Backoff."},
    AIO_WRAPPER_SLOTS(wrapper_dealloc, wrapper_traverse, wrapper_clear,
                      wrapper_members),
    {Py_tp_repr, wrapper_repr},
    {Py_tp_getset, backoff_function_getsets},
    {0, NULL},
};

static PyType_Spec backoff_function_spec = {
    .name = "aiomisc_c._backoff.BackoffFunction",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = backoff_function_slots,
};

static PyType_Slot timeout_function_slots[] = {
    {Py_tp_doc,
     "TimeoutFunction(func, value)\n--\n\n"
     "A coroutine function decorated by timeout(value)."},
    {Py_tp_new, timeout_function_tp_new},
    AIO_WRAPPER_SLOTS(wrapper_dealloc, wrapper_traverse, wrapper_clear,
                      wrapper_members),
    {Py_tp_repr, wrapper_repr},
    {Py_tp_getset, timeout_function_getsets},
    {0, NULL},
};

static PyType_Spec timeout_function_spec = {
    .name = "aiomisc_c._backoff.TimeoutFunction",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = timeout_function_slots,
};

/* BackoffFunction's vectorcall is set per instance in wrapper_new's
 * caller. */
static PyObject *
wrapper_new_backoff(backoff_state *st, PyObject *func, PyObject *backoff)
{
    PyObject *self = wrapper_new(st, st->BackoffFunctionType, func, backoff);
    if (self != NULL) {
        ((WrapperObject *)self)->vectorcall = backoff_function_vectorcall;
    }
    return self;
}

#endif /* AIOMISC_C_BACKOFF_WRAPPERS_H */
