/* circuit_breaker/breaker.h — CircuitBreaker: construction, methods and
 * properties.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_BREAKER_H
#define AIOMISC_C_CIRCUIT_BREAKER_BREAKER_H

/* --- construction --------------------------------------------------------------- */

static void
release_stat(BreakerObject *self)
{
    aio_counters_release(&self->stat_view);
    for (int i = 0; i < STAT_COUNT; i++) {
        self->stat[i] = NULL;
    }
}

static PyObject *
breaker_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
            PyObject *Py_UNUSED(kwargs))
{
    cb_state *st = cb_state_from_type(type);
    if (st == NULL) {
        return NULL;
    }
    BreakerObject *self = (BreakerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->state = ST_PASSING;
    return (PyObject *)self;
}

static int
bind_statistic(BreakerObject *self, PyObject *statistic_name)
{
    cb_state *st = self->st;
    PyObject *counters = PyObject_CallOneArg(st->statistic_class,
                                             statistic_name);
    if (counters == NULL) {
        return -1;
    }
    PyObject *threshold = PyFloat_FromDouble(self->error_ratio);
    if (threshold == NULL ||
        PyObject_SetAttrString(counters, "error_ratio_threshold",
                               threshold) < 0) {
        Py_XDECREF(threshold);
        Py_DECREF(counters);
        return -1;
    }
    Py_DECREF(threshold);
    Py_XSETREF(self->counters, counters);

    /* The counters live in one array("q") buffer of the statistic; keep it
     * exported (pins the memory) and increment the slots in place. */
    PyObject *array = NULL;
    for (int i = 0; i < STAT_COUNT; i++) {
        PyObject *slot = PyObject_CallMethod(counters, "_counter_slot", "s",
                                             STAT_NAMES[i]);
        if (slot == NULL) {
            goto fail;
        }
        if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 2) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_TypeError,
                            "_counter_slot() must return (buffer, index)");
            goto fail;
        }
        PyObject *buffer = PyTuple_GET_ITEM(slot, 0);
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
        if (index == -1 && PyErr_Occurred()) {
            Py_DECREF(slot);
            goto fail;
        }
        if (array == NULL) {
            array = buffer;
            if (aio_counters_export(array, &self->stat_view, "q") < 0) {
                Py_DECREF(slot);
                goto fail;
            }
        }
        if (buffer != array ||
            !aio_counters_has_slot(&self->stat_view, index)) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_RuntimeError,
                            "unexpected statistic counter layout");
            goto fail;
        }
        self->stat[i] = (long long *)self->stat_view.buf + index;
        Py_DECREF(slot);
    }
    return 0;
fail:
    release_stat(self);
    return -1;
}

static int
breaker_init(BreakerObject *self, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "error_ratio",   "response_time", "exceptions",
        "recovery_time", "broken_time",   "passing_time",
        "exception_inspector", "statistic_name",
    };
    cb_state *st = self->st;
    PyObject *values[8];
    if (aio_parse_tuple_dict("CircuitBreaker", args, kwargs, names, 2, 8, 8,
                             values) < 0) {
        return -1;
    }
    PyObject *call_args[7] = {
        values[0], values[1],
        values[2] ? values[2] : st->default_exceptions,
        values[3] ? values[3] : Py_None,
        values[4] ? values[4] : Py_None,
        values[5] ? values[5] : Py_None,
        values[6] ? values[6] : Py_None,
    };
    PyObject *checked = PyObject_Vectorcall(st->validate_arguments, call_args,
                                            7, NULL);
    if (checked == NULL) {
        return -1;
    }
    if (!PyTuple_Check(checked) || PyTuple_GET_SIZE(checked) != 7) {
        Py_DECREF(checked);
        PyErr_SetString(PyExc_TypeError, "validate_arguments() broke");
        return -1;
    }
    double times[6];
    for (int i = 0; i < 6; i++) {
        if (i == 2) {
            continue; /* the exceptions tuple */
        }
        if (to_double(PyTuple_GET_ITEM(checked, i), &times[i]) < 0) {
            Py_DECREF(checked);
            return -1;
        }
    }
    /* BUCKET_COUNT at construction is the window's capacity (deque maxlen) */
    PyObject *bucket_count = PyObject_GetAttr(
        (PyObject *)self, st->str_limits[LIM_BUCKET_COUNT]);
    Py_ssize_t cap = -1;
    if (bucket_count != NULL) {
        cap = PyNumber_AsSsize_t(bucket_count, PyExc_OverflowError);
        Py_DECREF(bucket_count);
    }
    if (cap == -1 && PyErr_Occurred()) {
        Py_DECREF(checked);
        return -1;
    }
    if (cap < 0) {
        Py_DECREF(checked);
        PyErr_SetString(PyExc_ValueError, "maxlen must be non-negative");
        return -1;
    }
    Bucket *ring = PyMem_Calloc(cap > 0 ? (size_t)cap : 1, sizeof(Bucket));
    if (ring == NULL) {
        Py_DECREF(checked);
        PyErr_NoMemory();
        return -1;
    }

    /* (re)initialise: a second __init__ starts from scratch */
    self->initialized = 0;
    release_stat(self);
    PyMem_Free(self->ring);
    self->ring = ring;
    self->cap = cap;
    self->len = self->head = 0;
    /* next_serial keeps counting: a call still running from before the
     * re-init must not find a new bucket */
    self->error_ratio = times[0];
    self->response_time_value = times[1];
    self->id_count = 0.0; /* bucket_id_cached(): response time changed */
    self->recovery_time = times[3];
    self->broken_time = times[4];
    self->passing_time = times[5];
    self->stuck_until = self->recovery_at = 0.0;
    self->state = ST_PASSING;
    Py_XSETREF(self->response_time, Py_NewRef(values[1]));
    Py_XSETREF(self->exceptions, Py_NewRef(PyTuple_GET_ITEM(checked, 2)));
    PyObject *inspector = PyTuple_GET_ITEM(checked, 6);
    Py_XSETREF(self->inspector,
               inspector == Py_None ? NULL : Py_NewRef(inspector));
    Py_CLEAR(self->last_exception);
    Py_DECREF(checked);

    if (bind_statistic(self, values[7] ? values[7] : Py_None) < 0) {
        return -1;
    }
    self->initialized = 1;
    return 0;
}

static int
breaker_traverse(BreakerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->response_time);
    Py_VISIT(self->exceptions);
    Py_VISIT(self->inspector);
    Py_VISIT(self->last_exception);
    Py_VISIT(self->counters);
    Py_VISIT(self->stat_view.obj);
    Py_VISIT(self->clock_loop);
    Py_VISIT(self->clock_func);
    return 0;
}

static int
breaker_clear(BreakerObject *self)
{
    self->initialized = 0;
    release_stat(self);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->response_time);
    Py_CLEAR(self->exceptions);
    Py_CLEAR(self->inspector);
    Py_CLEAR(self->last_exception);
    Py_CLEAR(self->counters);
    Py_CLEAR(self->clock_loop);
    Py_CLEAR(self->clock_func);
    return 0;
}

static void
breaker_dealloc(BreakerObject *self)
{
    PyMem_Free(self->ring);
    self->ring = NULL;
    aio_gc_dealloc((PyObject *)self, 0);
}

/* --- methods and properties -------------------------------------------------------- */

static PyObject *
breaker_get_time(BreakerObject *self, PyObject *Py_UNUSED(ignored))
{
    /* the default clock: self.loop.time(), with normal lookups */
    PyObject *loop = PyObject_GetAttr((PyObject *)self, self->st->str_loop);
    if (loop == NULL) {
        return NULL;
    }
    PyObject *result = call_method0(loop, self->st->str_time);
    Py_DECREF(loop);
    return result;
}

static PyObject *
breaker_bucket(BreakerObject *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    return PyLong_FromDouble(
        bucket_id(now, limits.bucket_count, self->response_time_value));
}

static PyObject *
breaker_counter(BreakerObject *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    uint64_t serial = current_bucket(
        self, bucket_id(now, limits.bucket_count, self->response_time_value));
    Bucket *bucket = find_bucket(self, serial);
    long long counts[3] = {0, 0, 0};
    if (bucket != NULL) {
        counts[0] = bucket->fail;
        counts[1] = bucket->ok;
        counts[2] = bucket->total;
    }
    /* a snapshot; read the counts before calling into Python */
    PyObject *counter = PyObject_CallNoArgs(self->st->counter_class);
    if (counter == NULL) {
        return NULL;
    }
    for (int key = 0; key < 3; key++) {
        if (counts[key] == 0) {
            continue;
        }
        PyObject *value = PyLong_FromLongLong(counts[key]);
        if (value == NULL ||
            PyObject_SetItem(counter, self->st->counter_keys[key], value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(counter);
            return NULL;
        }
        Py_DECREF(value);
    }
    return counter;
}

static PyObject *
breaker_get_state_delay(BreakerObject *self, PyObject *Py_UNUSED(ignored))
{
    double now;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, NULL) < 0) {
        return NULL;
    }
    double delay = self->stuck_until - now;
    if (delay < 0) {
        return PyLong_FromLong(0); /* max(delay, 0) */
    }
    return PyFloat_FromDouble(delay);
}

static PyObject *
breaker_get_recovery_ratio(BreakerObject *self, void *Py_UNUSED(closure))
{
    double now;
    Limits limits;
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0) {
        return NULL;
    }
    int any;
    double ratio = window_ratio(
        self, bucket_id(now, limits.bucket_count, self->response_time_value),
        limits.bucket_count, &any);
    if (!any) {
        return PyLong_FromLong(0);
    }
    return PyFloat_FromDouble(ratio);
}

static PyObject *
breaker_get_state(BreakerObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->st->states[self->state]);
}

static PyObject *
breaker_get_response_time(BreakerObject *self, void *Py_UNUSED(closure))
{
    if (check_initialized(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->response_time);
}

static PyObject *
breaker_get_loop_property(BreakerObject *self, void *Py_UNUSED(closure))
{
    return breaker_loop(self);
}

static PyObject *
breaker_get__loop(BreakerObject *self, void *Py_UNUSED(closure))
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_loop");
        return NULL;
    }
    return Py_NewRef(self->loop);
}

static int
breaker_set__loop(BreakerObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    Py_XSETREF(self->loop, Py_XNewRef(value));
    return 0;
}

#define OBJECT_GETTER(NAME, FIELD)                                            \
    static PyObject *breaker_get_##NAME(BreakerObject *self,                        \
                                        void *Py_UNUSED(closure))             \
    {                                                                         \
        return Py_NewRef(self->FIELD ? self->FIELD : Py_None);                \
    }
OBJECT_GETTER(last_exception, last_exception)
OBJECT_GETTER(counters, counters)
OBJECT_GETTER(exceptions, exceptions)
OBJECT_GETTER(inspector, inspector)

#define DOUBLE_GETTER(NAME, FIELD)                                            \
    static PyObject *breaker_get_##NAME(BreakerObject *self,                        \
                                        void *Py_UNUSED(closure))             \
    {                                                                         \
        return PyFloat_FromDouble(self->FIELD);                               \
    }
DOUBLE_GETTER(error_ratio, error_ratio)
DOUBLE_GETTER(recovery_time, recovery_time)
DOUBLE_GETTER(broken_time, broken_time)
DOUBLE_GETTER(passing_time, passing_time)
DOUBLE_GETTER(stuck_until, stuck_until)
DOUBLE_GETTER(recovery_at, recovery_at)

static PyObject *
breaker_repr(BreakerObject *self)
{
    PyObject *name = aio_type_name(Py_TYPE(self));
    if (name == NULL) {
        return NULL;
    }
    PyObject *ratio = PyObject_GetAttr((PyObject *)self,
                                       self->st->str_recovery_ratio);
    if (ratio == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(name);
            return NULL;
        }
        PyErr_Clear(); /* e.g. no running loop to read the clock from */
        ratio = PyUnicode_FromString("?");
        if (ratio == NULL) {
            Py_DECREF(name);
            return NULL;
        }
    }
    PyObject *result = PyUnicode_FromFormat(
        "<%U: state=%R recovery_ratio=%S>", name,
        self->st->states[self->state], ratio);
    Py_DECREF(name);
    Py_DECREF(ratio);
    return result;
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_BREAKER_H */
