/* backoff/execution.h — BackoffExecution, one execution of a
 * decorated function.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_EXECUTION_H
#define AIOMISC_C_BACKOFF_EXECUTION_H

/* ------------------------------------------------------------------------ */
/* BackoffExecution                                                          */

static int
execution_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "function", "statistic", "attempt_timeout", "deadline", "pause",
        "exceptions", "max_tries", "giveup",
    };
    PyObject *v[8];
    if (aio_parse_tuple_dict("BackoffExecution", args, kwargs, names, 4, 8, 8,
                             v) < 0) {
        return -1;
    }
    ExecutionObject *self = (ExecutionObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    if (policy_check_and_set(st, &self->policy, v[2], v[3], v[4], v[5], v[6],
                             v[7], 0) < 0) {
        return -1;
    }
    CountersObject *counters = counters_new(st, v[1]);
    if (counters == NULL) {
        return -1;
    }
    Py_XSETREF(self->counters, counters);
    Py_XSETREF(self->function, Py_NewRef(v[0]));
    Py_CLEAR(self->last_exception);
    self->total_tries = 0;
    return 0;
}

static int
execution_traverse(ExecutionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->counters);
    Py_VISIT(self->function);
    Py_VISIT(self->last_exception);
    return policy_traverse(&self->policy, visit, arg);
}

static int
execution_clear(ExecutionObject *self)
{
    Py_CLEAR(self->counters);
    Py_CLEAR(self->function);
    Py_CLEAR(self->last_exception);
    policy_clear(&self->policy);
    return 0;
}

static void
execution_dealloc(ExecutionObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

/* execute(*args, **kwargs) and __call__: one call of the function, named
 * `name` in its "was never awaited" warning. */
static PyObject *
execution_start(PyObject *op, PyObject *const *args, size_t nargsf,
                PyObject *kwnames, const char *name)
{
    ExecutionObject *self = (ExecutionObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->function == NULL || self->counters == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "BackoffExecution.__init__ was not called");
        return NULL;
    }
    return call_named(st, call_new(st, op, &self->policy, self->counters, self,
                               self->function, args, nargsf, kwnames),
                      name);
}

static PyObject *
execution_execute(PyObject *op, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    return execution_start(op, args, nargsf, kwnames,
                           "BackoffExecution.execute");
}

static PyObject *
execution_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    PyObject *const *argv = &PyTuple_GET_ITEM(args, 0);
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0) {
        return execution_start(op, argv, (size_t)nargs, NULL,
                               "BackoffExecution.__call__");
    }
    /* rare: flatten the keywords for the vectorcall convention */
    Py_ssize_t nkw = PyDict_GET_SIZE(kwargs);
    PyObject *kwnames = PyTuple_New(nkw);
    PyObject **stack = PyMem_Malloc((size_t)(nargs + nkw) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (kwnames == NULL || stack == NULL) {
        if (stack == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        stack[i] = argv[i];
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, k = 0;
    while (PyDict_Next(kwargs, &pos, &key, &value)) {
        PyTuple_SET_ITEM(kwnames, k, Py_NewRef(key));
        stack[nargs + k] = value;
        k++;
    }
    result = execution_start(op, stack, (size_t)nargs, kwnames,
                             "BackoffExecution.__call__");
done:
    PyMem_Free(stack);
    Py_XDECREF(kwnames);
    return result;
}

static PyObject *
execution_get_function(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *f = ((ExecutionObject *)self)->function;
    return Py_NewRef(f != NULL ? f : Py_None);
}

static int
execution_set_function(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'function'");
        return -1;
    }
    Py_XSETREF(((ExecutionObject *)self)->function, Py_NewRef(value));
    return 0;
}

static PyObject *
execution_get_last_exception(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *e = ((ExecutionObject *)self)->last_exception;
    return Py_NewRef(e != NULL ? e : Py_None);
}

static int
execution_set_last_exception(PyObject *self, PyObject *value,
                             void *Py_UNUSED(c))
{
    ExecutionObject *e = (ExecutionObject *)self;
    if (value == NULL || value == Py_None) {
        Py_CLEAR(e->last_exception);
        return 0;
    }
    Py_XSETREF(e->last_exception, Py_NewRef(value));
    return 0;
}

static PyObject *
execution_get_total_tries(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(((ExecutionObject *)self)->total_tries);
}

static int
execution_set_total_tries(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'total_tries'");
        return -1;
    }
    long long n = PyLong_AsLongLong(value);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    ((ExecutionObject *)self)->total_tries = n;
    return 0;
}

static PyObject *
execution_get_statistic(PyObject *self, void *Py_UNUSED(closure))
{
    return get_statistic(((ExecutionObject *)self)->counters);
}

static int
execution_set_statistic(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    return set_statistic(self, &((ExecutionObject *)self)->counters, value);
}

static PyMethodDef execution_methods[] = {
    {"execute", (PyCFunction)(void (*)(void))execution_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute($self, /, *args, **kwargs)\n--\n\n"
     "An awaitable running the function with retries."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "See PEP 585"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef execution_getsets[] = {
    POLICY_GETSETS,
    {"function", execution_get_function, execution_set_function, NULL, NULL},
    {"statistic", execution_get_statistic, execution_set_statistic, NULL,
     NULL},
    {"last_exception", execution_get_last_exception,
     execution_set_last_exception, NULL, NULL},
    {"total_tries", execution_get_total_tries, execution_set_total_tries,
     NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot execution_slots[] = {
    {Py_tp_doc,
     "BackoffExecution(function, statistic, attempt_timeout, deadline, "
     "pause=0, exceptions=(), max_tries=None, giveup=None)\n--\n\n"
     "One decorated function with its retry settings; calling it (or "
     "execute()) returns an awaitable call."},
    {Py_tp_new, policy_object_new},
    {Py_tp_init, execution_init},
    {Py_tp_dealloc, execution_dealloc},
    {Py_tp_traverse, execution_traverse},
    {Py_tp_clear, execution_clear},
    {Py_tp_call, execution_call},
    {Py_tp_methods, execution_methods},
    {Py_tp_getset, execution_getsets},
    {0, NULL},
};

static PyType_Spec execution_spec = {
    .name = "aiomisc_c._backoff.BackoffExecution",
    .basicsize = sizeof(ExecutionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = execution_slots,
};

#endif /* AIOMISC_C_BACKOFF_EXECUTION_H */
