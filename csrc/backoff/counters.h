/* backoff/counters.h — counters: the statistic object of a Backoff and
 * where its counters live.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_COUNTERS_H
#define AIOMISC_C_BACKOFF_COUNTERS_H

/* ------------------------------------------------------------------------ */
/* Counters: the statistic object of a Backoff and where its counters live. */

enum metric { M_DONE, M_ATTEMPTS, M_CANCELS, M_ERRORS, M_SUM_TIME };
static const char *const metric_texts[5] = {
    "done", "attempts", "cancels", "errors", "sum_time",
};

/* Shared (refcounted) by a Backoff, its executions and their calls.  When
 * the statistic is a counters.Statistic, the counters are slots of its
 * array buffers, exported for as long as this object lives (which pins
 * them), and incremented natively; otherwise by attribute arithmetic. */
typedef struct {
    PyObject_HEAD
    PyObject *statistic;
    int fast;
    Py_buffer ints;
    Py_buffer floats;
    long long *slots[4];          /* M_DONE .. M_ERRORS */
    double *sum_time;
} CountersObject;

static int
counters_slot(backoff_state *st, CountersObject *self, int metric,
              PyObject **array, Py_ssize_t *index)
{
    PyObject *slot = PyObject_CallMethodOneArg(
        self->statistic, st->str_counter_slot, st->metric_names[metric]);
    if (slot == NULL) {
        return -1;
    }
    if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 2) {
        Py_DECREF(slot);
        PyErr_SetString(PyExc_TypeError, "bad _counter_slot() result");
        return -1;
    }
    *array = Py_NewRef(PyTuple_GET_ITEM(slot, 0));
    *index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
    Py_DECREF(slot);
    return (*index == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Resolve the native slots; returns 0 (fast), 1 (slow: not a
 * counters.Statistic), -1 on a real error. */
static int
counters_resolve(backoff_state *st, CountersObject *self)
{
    PyObject *int_array = NULL, *array = NULL, *float_array = NULL;
    Py_ssize_t index[5];
    for (int m = M_DONE; m <= M_ERRORS; m++) {
        if (counters_slot(st, self, m, &array, &index[m]) < 0) {
            goto slow;
        }
        if (int_array == NULL) {
            int_array = array;
        }
        else {
            int same = array == int_array;
            Py_DECREF(array);
            if (!same) {
                goto slow;
            }
        }
        array = NULL;
    }
    if (counters_slot(st, self, M_SUM_TIME, &float_array, &index[M_SUM_TIME])
        < 0) {
        goto slow;
    }
    if (aio_counters_export(int_array, &self->ints, "q") < 0) {
        goto slow;
    }
    if (aio_counters_export(float_array, &self->floats, "d") < 0) {
        aio_counters_release(&self->ints);
        goto slow;
    }
    for (int m = M_DONE; m <= M_ERRORS; m++) {
        if (!aio_counters_has_slot(&self->ints, index[m])) {
            goto bad_index;
        }
        self->slots[m] = (long long *)self->ints.buf + index[m];
    }
    if (!aio_counters_has_slot(&self->floats, index[M_SUM_TIME])) {
        goto bad_index;
    }
    self->sum_time = (double *)self->floats.buf + index[M_SUM_TIME];
    self->fast = 1;
    Py_DECREF(int_array);
    Py_DECREF(float_array);
    return 0;

bad_index:
    aio_counters_release(&self->ints);
    aio_counters_release(&self->floats);
slow:
    Py_XDECREF(int_array);
    Py_XDECREF(float_array);
    /* Anything but a counters.Statistic lands here: fall back on
     * attribute arithmetic, which works for any object. */
    if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
        PyErr_ExceptionMatches(PyExc_KeyError) ||
        PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_BufferError) ||
        PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        return 1;
    }
    return -1;
}

static CountersObject *
counters_new(backoff_state *st, PyObject *statistic)
{
    CountersObject *self = PyObject_GC_New(CountersObject, st->CountersType);
    if (self == NULL) {
        return NULL;
    }
    self->statistic = Py_NewRef(statistic);
    self->fast = 0;
    self->ints.obj = NULL;
    self->floats.obj = NULL;
    PyObject_GC_Track(self);
    if (counters_resolve(st, self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static int
counters_traverse(CountersObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->statistic);
    return 0;
}

static int
counters_clear(CountersObject *self)
{
    aio_counters_release(&self->ints);
    aio_counters_release(&self->floats);
    self->fast = 0;
    Py_CLEAR(self->statistic);
    return 0;
}

static void
counters_dealloc(CountersObject *self)
{
    aio_gc_dealloc((PyObject *)self, 0);
}

/* stat.<metric> += delta: -1 with the error set when the statistic object
 * refuses it (a statistic_class without that field raises AttributeError,
 * as `stat.errors += 1` does).  Never called with an exception pending. */
static int
counters_add_slow(backoff_state *st, CountersObject *c, int metric,
                  PyObject *delta)
{
    PyObject *name = st->metric_names[metric];
    PyObject *value = PyObject_GetAttr(c->statistic, name);
    PyObject *sum = value == NULL ? NULL : PyNumber_Add(value, delta);
    int rc = sum == NULL ? -1 : PyObject_SetAttr(c->statistic, name, sum);
    Py_XDECREF(value);
    Py_XDECREF(sum);
    return rc;
}

static inline int
counters_inc(backoff_state *st, CountersObject *c, int metric)
{
    if (c == NULL) {
        return 0;
    }
    if (c->fast) {
        *c->slots[metric] += 1;
        return 0;
    }
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL) {
        return -1;
    }
    int rc = counters_add_slow(st, c, metric, one);
    Py_DECREF(one);
    return rc;
}

static inline int
counters_add_time(backoff_state *st, CountersObject *c, double seconds)
{
    if (c == NULL) {
        return 0;
    }
    if (c->fast) {
        *c->sum_time += seconds;
        return 0;
    }
    PyObject *delta = PyFloat_FromDouble(seconds);
    if (delta == NULL) {
        return -1;
    }
    int rc = counters_add_slow(st, c, M_SUM_TIME, delta);
    Py_DECREF(delta);
    return rc;
}

static PyType_Slot counters_slots[] = {
    {Py_tp_dealloc, counters_dealloc},
    {Py_tp_traverse, counters_traverse},
    {Py_tp_clear, counters_clear},
    {0, NULL},
};

static PyType_Spec counters_spec = {
    .name = "aiomisc_c._backoff._Counters",
    .basicsize = sizeof(CountersObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = counters_slots,
};

#endif /* AIOMISC_C_BACKOFF_COUNTERS_H */
