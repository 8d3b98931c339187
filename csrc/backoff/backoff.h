/* backoff/backoff.h — Backoff, the object behind asyncbackoff and
 * asyncretry.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_BACKOFF_H
#define AIOMISC_C_BACKOFF_BACKOFF_H

/* ------------------------------------------------------------------------ */
/* Backoff                                                                   */

static int
backoff_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "attempt_timeout", "deadline", "pause", "exceptions", "max_tries",
        "giveup", "statistic_name", "statistic_class",
    };
    PyObject *v[8];
    if (aio_parse_tuple_dict("Backoff", args, kwargs, names, 2, 8, 8, v) < 0) {
        return -1;
    }
    BackoffObject *self = (BackoffObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    if (policy_check_and_set(st, &self->policy, v[0], v[1], v[2], v[3], v[4],
                             v[5], 1) < 0) {
        return -1;
    }
    PyObject *klass = v[7] ? v[7] : st->BackoffStatistic;
    PyObject *statistic = PyObject_CallOneArg(klass, v[6] ? v[6] : Py_None);
    if (statistic == NULL) {
        return -1;
    }
    CountersObject *counters = counters_new(st, statistic);
    Py_DECREF(statistic);
    if (counters == NULL) {
        return -1;
    }
    Py_XSETREF(self->counters, counters);
    return 0;
}

static int
backoff_traverse(BackoffObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->counters);
    return policy_traverse(&self->policy, visit, arg);
}

static int
backoff_clear(BackoffObject *self)
{
    Py_CLEAR(self->counters);
    policy_clear(&self->policy);
    return 0;
}

static void
backoff_dealloc(BackoffObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

static PyObject *
get_statistic(CountersObject *counters)
{
    if (counters == NULL || counters->statistic == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(counters->statistic);
}

static int
set_statistic(PyObject *self, CountersObject **slot, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete 'statistic'");
        return -1;
    }
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return -1;
    }
    CountersObject *counters = counters_new(st, value);
    if (counters == NULL) {
        return -1;
    }
    Py_XSETREF(*slot, counters);
    return 0;
}

static PyObject *
backoff_get_statistic(PyObject *self, void *Py_UNUSED(closure))
{
    return get_statistic(((BackoffObject *)self)->counters);
}

static int
backoff_set_statistic(PyObject *self, PyObject *value, void *Py_UNUSED(c))
{
    return set_statistic(self, &((BackoffObject *)self)->counters, value);
}

/* Backoff.prepare(func) -> BackoffExecution sharing this Backoff's
 * statistic (and its resolved counters). */
static PyObject *
backoff_prepare(PyObject *op, PyObject *func)
{
    BackoffObject *self = (BackoffObject *)op;
    backoff_state *st = backoff_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->counters == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Backoff.__init__ was not called");
        return NULL;
    }
    ExecutionObject *execution = (ExecutionObject *)policy_object_new(
        st->ExecutionType, NULL, NULL);
    if (execution == NULL) {
        return NULL;
    }
    policy_copy(&execution->policy, &self->policy);
    execution->counters = (CountersObject *)Py_NewRef(self->counters);
    execution->function = Py_NewRef(func);
    return (PyObject *)execution;
}

/* Backoff.execute(func=..., **kwargs), the rare spelling: as the Python
 * twin, `func` may be passed by name (the other arguments are then keyword
 * arguments too). */
static PyObject *
backoff_execute_func_keyword(PyObject *self, backoff_state *st,
                             PyObject *const *args, PyObject *kwnames)
{
    PyObject *kwargs = aio_kwargs_dict(args, 0, kwnames);
    if (kwargs == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *func = NULL;
    if (kwargs != NULL) {
        func = PyDict_GetItemWithError(kwargs, st->str_func);
        if (func == NULL && PyErr_Occurred()) {
            Py_DECREF(kwargs);
            return NULL;
        }
    }
    if (func == NULL) {
        Py_XDECREF(kwargs);
        PyErr_SetString(PyExc_TypeError,
                        "execute() missing required argument 'func'");
        return NULL;
    }
    Py_INCREF(func);
    PyObject *call = NULL;
    PyObject *execution = NULL;
    PyObject *no_args = NULL;
    if (PyDict_DelItem(kwargs, st->str_func) < 0) {
        goto done;
    }
    execution = PyObject_CallMethodOneArg(self, st->str_prepare, func);
    if (execution == NULL) {
        goto done;
    }
    no_args = PyTuple_New(0);
    if (no_args == NULL) {
        goto done;
    }
    call = call_named(st, PyObject_Call(execution, no_args, kwargs),
                      "Backoff.execute");
done:
    Py_XDECREF(no_args);
    Py_XDECREF(execution);
    Py_DECREF(func);
    Py_DECREF(kwargs);
    return call;
}

/* Backoff.execute(func, *args, **kwargs): self.prepare(func)(*args, ...). */
static PyObject *
backoff_execute(PyObject *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return NULL;
    }
    if (nargs < 1) {
        return backoff_execute_func_keyword(self, st, args, kwnames);
    }
    PyObject *execution = PyObject_CallMethodOneArg(self, st->str_prepare,
                                                    args[0]);
    if (execution == NULL) {
        return NULL;
    }
    PyObject *call = PyObject_Vectorcall(execution, args + 1, nargs - 1,
                                         kwnames);
    Py_DECREF(execution);
    return call_named(st, call, "Backoff.execute");
}

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF (timeout) */
    vectorcallfunc vectorcall;
    PyObject *func;
    PyObject *backoff;            /* BackoffFunction: the Backoff */
    PyObject *dict;
    PyObject *weakreflist;
} WrapperObject;

static PyObject *wrapper_new_backoff(backoff_state *st, PyObject *func,
                                     PyObject *backoff);

/* Backoff(func) -> the wrapped coroutine function. */
static PyObject *
backoff_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "Backoff() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Backoff", 1, 1, &func)) {
        return NULL;
    }
    backoff_state *st = backoff_state_from_object(self);
    if (st == NULL) {
        return NULL;
    }
    PyObject *ok = PyObject_CallOneArg(st->iscoroutinefunction, func);
    if (ok == NULL) {
        return NULL;
    }
    int is_coro = PyObject_IsTrue(ok);
    Py_DECREF(ok);
    if (is_coro < 0) {
        return NULL;
    }
    if (!is_coro) {
        PyErr_SetString(PyExc_TypeError, "Function must be a coroutine function");
        return NULL;
    }
    PyObject *wrapper = wrapper_new_backoff(st, func, self);
    if (wrapper == NULL) {
        return NULL;
    }
    PyObject *wrapped = PyObject_CallFunctionObjArgs(st->update_wrapper,
                                                     wrapper, func, NULL);
    Py_DECREF(wrapper);
    return wrapped;
}

/* Backoff.prepare(func): like the Python twin, func may be passed by name. */
static PyObject *
backoff_prepare_method(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    static const char *const names[] = {"func"};
    PyObject *func = NULL;
    if (aio_parse_fastcall("prepare", args, nargs, kwnames, names, 1, 1, 1,
                           &func) < 0) {
        return NULL;
    }
    return backoff_prepare(op, func);
}

static PyMethodDef backoff_methods[] = {
    {"prepare", (PyCFunction)(void (*)(void))backoff_prepare_method,
     METH_FASTCALL | METH_KEYWORDS,
     "prepare($self, /, func)\n--\n\n"
     "BackoffExecution for one call of func."},
    {"execute", (PyCFunction)(void (*)(void))backoff_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute($self, func, *args, **kwargs)\n--\n\n"
     "An awaitable running ``prepare(func)(*args, **kwargs)``."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef backoff_getsets[] = {
    POLICY_GETSETS,
    {"statistic", backoff_get_statistic, backoff_set_statistic, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot backoff_slots[] = {
    {Py_tp_doc,
     "Backoff(attempt_timeout, deadline, pause=0, exceptions=(), "
     "max_tries=None, giveup=None, statistic_name=None, "
     "statistic_class=...)\n--\n\n"
     "statistic_class defaults to BackoffStatistic.  The decorator returned by "
     "asyncbackoff() and asyncretry()."},
    {Py_tp_new, policy_object_new},
    {Py_tp_init, backoff_init},
    {Py_tp_dealloc, backoff_dealloc},
    {Py_tp_traverse, backoff_traverse},
    {Py_tp_clear, backoff_clear},
    {Py_tp_call, backoff_call},
    {Py_tp_methods, backoff_methods},
    {Py_tp_getset, backoff_getsets},
    {0, NULL},
};

static PyType_Spec backoff_spec = {
    .name = "aiomisc_c._backoff.Backoff",
    .basicsize = sizeof(BackoffObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = backoff_slots,
};

#endif /* AIOMISC_C_BACKOFF_BACKOFF_H */
