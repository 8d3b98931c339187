/* pool/acquisition.h — Acquisition: what PoolBase.acquire() returns, a
 * single-use async context manager (C twin of aiomisc_c._pool_py's).
 *
 * A unit of the aiomisc_c._pool translation unit: included once, by
 * pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_POOL_ACQUISITION_H
#define AIOMISC_C_POOL_ACQUISITION_H

static PyObject *
acquisition_make(PyTypeObject *type, PyObject *pool)
{
    /* the type is final: its own module state, no MRO walk */
    pool_state *st = (pool_state *)PyType_GetModuleState(type);
    if (st == NULL) {
        return NULL;
    }
    AcquisitionObject *self = (AcquisitionObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->pool = Py_NewRef(pool);
    self->instance = NULL;
    return (PyObject *)self;
}

static int
acquisition_check_arguments(Py_ssize_t nargs, int has_keywords)
{
    if (has_keywords) {
        PyErr_SetString(PyExc_TypeError,
                        "Acquisition() takes no keyword arguments");
        return -1;
    }
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "Acquisition() takes exactly one argument (%zd given)",
                     nargs);
        return -1;
    }
    return 0;
}

static PyObject *
acquisition_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (acquisition_check_arguments(
            PyTuple_GET_SIZE(args),
            kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) < 0) {
        return NULL;
    }
    return acquisition_make(type, PyTuple_GET_ITEM(args, 0));
}

/* Acquisition(pool) without an argument tuple: PoolBase.acquire()'s call
 * (installed as the type's tp_vectorcall by the module init). */
static PyObject *
acquisition_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames)
{
    if (acquisition_check_arguments(
            PyVectorcall_NARGS(nargsf),
            kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) < 0) {
        return NULL;
    }
    return acquisition_make((PyTypeObject *)type, args[0]);
}

static PyObject *
acquisition_aenter(AcquisitionObject *self, PyObject *Py_UNUSED(ignored))
{
    EnterObject *enter = PyObject_GC_New(EnterObject, self->st->enter_type);
    if (enter == NULL) {
        return NULL;
    }
    enter->st = self->st;
    enter->acquisition = (AcquisitionObject *)Py_NewRef(self);
    enter->instance = NULL;
    enter->hot = NULL;
    enter->inner = NULL;
    enter->stage = EN_NEW;
    enter->running = 0;
    PyObject_GC_Track(enter);
    return (PyObject *)enter;
}

/* used.discard(instance) */
static int
discard_used(pool_state *st, PyObject *used, PyObject *instance)
{
    if (PyAnySet_CheckExact(used)) {
        return PySet_Discard(used, instance) < 0 ? -1 : 0;
    }
    PyObject *discarded = PyObject_CallMethodOneArg(used, st->str_discard,
                                                    instance);
    Py_XDECREF(discarded);
    return discarded == NULL ? -1 : 0;
}

/* Give the instance back (hot: pool._hot): 0, or -1 with an error. */
static int
release(pool_state *st, PyObject *pool, PyObject *hot, PyObject *instance)
{
    int recycling = PyObject_IsTrue(PyTuple_GET_ITEM(hot, HOT_RECYCLE));
    if (recycling < 0) {
        return -1;
    }
    if (recycling) {
        return call_pool_method_void(pool, st->str_release_now, instance);
    }
    if (discard_used(st, PyTuple_GET_ITEM(hot, HOT_USED), instance) < 0) {
        return -1;
    }
    Py_ssize_t waiting = PyObject_Size(PyTuple_GET_ITEM(hot, HOT_WAITERS));
    if (waiting < 0) {
        return -1;
    }
    if (waiting) {
        return call_pool_method_void(pool, st->str_put_idle, instance);
    }
    PyObject *appended = PyObject_CallOneArg(PyTuple_GET_ITEM(hot, HOT_APPEND),
                                             instance);
    Py_XDECREF(appended);
    return appended == NULL ? -1 : 0;
}

/* Releasing never waits: the work is done here, and the result is the
 * pool's finished future (awaiting it costs no coroutine). */
static PyObject *
acquisition_aexit(AcquisitionObject *self, PyObject *const *args,
                  Py_ssize_t nargs)
{
    (void)args;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "__aexit__ expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    if (self->instance == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "The context manager was not entered");
        return NULL;
    }
    PyObject *hot = pool_hot(self->st, self->pool);
    if (hot == NULL) {
        return NULL;
    }
    PyObject *released = NULL;
    if (release(self->st, self->pool, hot, self->instance) == 0) {
        released = Py_NewRef(PyTuple_GET_ITEM(hot, HOT_RELEASED));
    }
    Py_DECREF(hot);
    return released;
}

static int
acquisition_traverse(AcquisitionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->pool);
    Py_VISIT(self->instance);
    return 0;
}

static int
acquisition_clear(AcquisitionObject *self)
{
    Py_CLEAR(self->pool);
    Py_CLEAR(self->instance);
    return 0;
}

static void
acquisition_dealloc(AcquisitionObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyMethodDef acquisition_methods[] = {
    {"__aenter__", (PyCFunction)acquisition_aenter, METH_NOARGS,
     "__aenter__($self, /)\n--\n\n"
     "Await to take an instance of the pool (the oldest idle one, checked)."},
    {"__aexit__", (PyCFunction)(void (*)(void))acquisition_aexit,
     METH_FASTCALL,
     "__aexit__($self, exc_type, exc_value, traceback, /)\n--\n\n"
     "Give the instance back to the pool; returns a finished awaitable."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot acquisition_slots[] = {
    {Py_tp_new, acquisition_new},
    {Py_tp_dealloc, acquisition_dealloc},
    {Py_tp_traverse, acquisition_traverse},
    {Py_tp_clear, acquisition_clear},
    {Py_tp_methods, acquisition_methods},
    {Py_tp_doc,
     "Acquisition(pool, /)\n--\n\n"
     "Single-use async context manager over one acquisition of pool."},
    {0, NULL},
};

static PyType_Spec acquisition_spec = {
    .name = "aiomisc_c.pool.Acquisition",
    .basicsize = sizeof(AcquisitionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = acquisition_slots,
};

#endif /* AIOMISC_C_POOL_ACQUISITION_H */
