/* circuit_breaker/cutout.h — the synchronous and asynchronous cutout
 * wrappers.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_CUTOUT_H
#define AIOMISC_C_CIRCUIT_BREAKER_CUTOUT_H

/* ------------------------------------------------------------------------ */
/* The synchronous cutout wrapper                                            */

typedef struct {
    PyObject_HEAD
    PyObject *breaker;
    PyObject *func;
    PyObject *dict;       /* functools.update_wrapper fills it */
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} WrapperObject;

static PyObject *
wrapper_vectorcall(WrapperObject *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *breaker = self->breaker;
    cb_state *st = ((BreakerObject *)breaker)->st;
    if (Py_TYPE(breaker) == st->breaker_type) {
        return guarded_call((BreakerObject *)breaker, self->func, args, nargs,
                            kwnames);
    }
    /* a subclass: circuit_breaker.call(func, *args, **kwargs) */
    return aio_call_method_prepend(breaker, st->str_call, self->func, args,
                                   nargsf, kwnames);
}

static PyObject *
wrapper_repr(WrapperObject *self)
{
    return PyUnicode_FromFormat("<cutout wrapper of %R>", self->func);
}

static int
wrapper_traverse(WrapperObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->breaker);
    Py_VISIT(self->func);
    Py_VISIT(self->dict);
    return 0;
}

static int
wrapper_clear(WrapperObject *self)
{
    Py_CLEAR(self->breaker);
    Py_CLEAR(self->func);
    Py_CLEAR(self->dict);
    return 0;
}

static void
wrapper_dealloc(WrapperObject *self)
{
    aio_gc_dealloc((PyObject *)self, 1);
}

static PyMemberDef wrapper_members[] = {
    AIO_WRAPPER_MEMBERS(WrapperObject),
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef wrapper_getset[] = {
    AIO_WRAPPER_DICT_GETSET,
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wrapper_slots[] = {
    AIO_WRAPPER_SLOTS(wrapper_dealloc, wrapper_traverse, wrapper_clear,
                      wrapper_members),
    {Py_tp_repr, wrapper_repr},
    {Py_tp_getset, wrapper_getset},
    {Py_tp_doc, "A function guarded by a cutout() circuit breaker."},
    {0, NULL},
};

static PyType_Spec wrapper_spec = {
    .name = "aiomisc_c._circuit_breaker._CutoutWrapper",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = wrapper_slots,
};

/* ------------------------------------------------------------------------ */
/* The asynchronous cutout wrapper                                           */

/* Calling it returns the awaitable of breaker.call_async(func, ...) at once:
 * no coroutine frame of its own in between.  It passes for a coroutine
 * function: the `_is_coroutine` / markcoroutinefunction markers are class
 * attributes, and `__code__` (what inspect reads before 3.12) is func's
 * coroutine code, or a stand-in coroutine code object. */

static PyObject *
async_wrapper_vectorcall(WrapperObject *self, PyObject *const *args, size_t nargsf,
                        PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *breaker = self->breaker;
    cb_state *st = ((BreakerObject *)breaker)->st;
    if (Py_TYPE(breaker) == st->breaker_type) {
        return call_async_new((BreakerObject *)breaker, self->func, args, nargs,
                              kwnames);
    }
    /* a subclass: circuit_breaker.call_async(func, *args, **kwargs) */
    return aio_call_method_prepend(breaker, st->str_call_async, self->func,
                                   args, nargsf, kwnames);
}

static PyObject *
async_wrapper_repr(WrapperObject *self)
{
    return PyUnicode_FromFormat("<async cutout wrapper of %R>", self->func);
}

static aio_wrapper_support *
async_wrapper_support_of(PyObject *op)
{
    BreakerObject *breaker = (BreakerObject *)((WrapperObject *)op)->breaker;
    return &breaker->st->wrapper_support;
}

static aio_wrapper_layout async_wrapper_layout = {
    offsetof(WrapperObject, func), async_wrapper_support_of,
};

static PyGetSetDef async_wrapper_getset[] = {
    AIO_WRAPPER_DICT_GETSET,
    AIO_WRAPPER_FUNCTION_LIKE_GETSETS(&async_wrapper_layout),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot async_wrapper_slots[] = {
    AIO_WRAPPER_SLOTS(wrapper_dealloc, wrapper_traverse, wrapper_clear,
                      wrapper_members),
    {Py_tp_repr, async_wrapper_repr},
    {Py_tp_getset, async_wrapper_getset},
    {Py_tp_doc, "A coroutine function guarded by a cutout() circuit "
                "breaker."},
    {0, NULL},
};

static PyType_Spec async_wrapper_spec = {
    .name = "aiomisc_c._circuit_breaker._CutoutAsyncWrapper",
    .basicsize = sizeof(WrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = async_wrapper_slots,
};

/* A wrapper of `type` over (breaker, func), with func's metadata copied by
 * functools.update_wrapper. */
static PyObject *
make_wrapper(cb_state *st, PyTypeObject *type, vectorcallfunc vectorcall,
             const char *fname, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(breaker, func)", fname);
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], st->breaker_type)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a C CircuitBreaker",
                     fname);
        return NULL;
    }
    WrapperObject *wrapper = PyObject_GC_New(WrapperObject, type);
    if (wrapper == NULL) {
        return NULL;
    }
    wrapper->breaker = Py_NewRef(args[0]);
    wrapper->func = Py_NewRef(args[1]);
    wrapper->dict = NULL;
    wrapper->weakreflist = NULL;
    wrapper->vectorcall = vectorcall;
    PyObject_GC_Track(wrapper);
    PyObject *wrapped = PyObject_CallFunctionObjArgs(
        st->update_wrapper, (PyObject *)wrapper, args[1], NULL);
    Py_DECREF(wrapper);
    return wrapped;
}

/* _wrap_sync(breaker, func): the sync wrapper with func's metadata */
static PyObject *
module_wrap_sync(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    cb_state *st = cb_state_from_module(module);
    return make_wrapper(st, st->wrapper_type,
                        (vectorcallfunc)wrapper_vectorcall, "_wrap_sync",
                        args, nargs);
}

/* _wrap_async(breaker, func): the async wrapper with func's metadata */
static PyObject *
module_wrap_async(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    cb_state *st = cb_state_from_module(module);
    return make_wrapper(st, st->async_wrapper_type,
                        (vectorcallfunc)async_wrapper_vectorcall,
                        "_wrap_async", args, nargs);
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_CUTOUT_H */
