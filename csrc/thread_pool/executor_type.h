/* thread_pool/executor_type.h — Executor attributes, construction, type.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_EXECUTOR_TYPE_H
#define AIOMISC_C_THREAD_POOL_EXECUTOR_TYPE_H

/* Attributes */

static PyObject *
executor_get_max_workers(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(((ExecutorObject *)op)->max_workers);
}

static PyObject *
executor_get_spawned(PyObject *op, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    LOCK(self);
    Py_ssize_t n = self->spawned;
    UNLOCK(self);
    return PyLong_FromSsize_t(n);
}

static PyObject *
executor_get_queued(PyObject *op, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    return PyLong_FromSsize_t(
        atomic_load_explicit(&self->queued, memory_order_relaxed));
}

static PyObject *
executor_get_unfinished(PyObject *op, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    LOCK(self);
    Py_ssize_t n = atomic_load_explicit(&self->queued, memory_order_relaxed) +
                   self->running_count;
    UNLOCK(self);
    return PyLong_FromSsize_t(n);
}

static PyObject *
executor_get_is_shutdown(PyObject *op, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    return PyBool_FromLong(
        atomic_load_explicit(&self->shutdown, memory_order_relaxed));
}

static PyObject *
executor_get_statistic(PyObject *op, void *Py_UNUSED(closure))
{
    return Py_NewRef(((ExecutorObject *)op)->statistic);
}

static PyObject *
executor_get_spin_us(PyObject *op, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    return PyFloat_FromDouble(
        (double)atomic_load_explicit(&self->spin_ns, memory_order_relaxed) /
        1000.0);
}

static int
executor_set_spin_us(PyObject *op, PyObject *value, void *Py_UNUSED(closure))
{
    ExecutorObject *self = (ExecutorObject *)op;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _spin_us");
        return -1;
    }
    double us = PyFloat_AsDouble(value);
    if (us == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(us >= 0.0 && us <= 1e6)) {
        PyErr_SetString(PyExc_ValueError, "_spin_us must be in [0, 1e6]");
        return -1;
    }
    atomic_store_explicit(&self->spin_ns, (long)(us * 1000.0),
                          memory_order_relaxed);
    return 0;
}

/* Construction */

/* Take the six counter slots of `statistic` (buffers stay exported). */
static int
executor_take_counters(ExecutorObject *self, tp_state *st)
{
    for (int i = 0; i < N_COUNTERS; i++) {
        PyObject *name = PyUnicode_FromString(counter_names[i]);
        if (name == NULL) {
            return -1;
        }
        PyObject *stack[2] = {self->statistic, name};
        PyObject *slot =
            PyObject_VectorcallMethod(st->str_counter_slot, stack, 2, NULL);
        Py_DECREF(name);
        if (slot == NULL) {
            return -1;
        }
        Py_ssize_t index = -1;
        if (PyTuple_Check(slot) && PyTuple_GET_SIZE(slot) == 2) {
            index = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 1));
        }
        if (index < 0) {
            Py_DECREF(slot);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError,
                                "statistic._counter_slot() must return "
                                "(buffer, index)");
            }
            return -1;
        }
        Py_buffer *view = &self->counter_views[i];
        const char *want = i == C_SUM_TIME ? "d" : "q";
        int exported =
            aio_counters_export(PyTuple_GET_ITEM(slot, 0), view, want);
        Py_DECREF(slot);
        if (exported < 0 && !PyErr_ExceptionMatches(PyExc_TypeError) &&
            !PyErr_ExceptionMatches(PyExc_BufferError)) {
            return -1;
        }
        if (exported < 0 || !aio_counters_has_slot(view, index)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "statistic counter %s is not an array('%s') slot",
                         counter_names[i], want);
            return -1;
        }
        char *p = (char *)view->buf + index * 8;
        if (i == C_SUM_TIME) {
            self->sum_time = (double *)(void *)p;
        }
        else {
            self->counters[i] = (int64_t *)(void *)p;
        }
    }
    return 0;
}

static PyObject *
executor_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {
        "max_workers",
        "statistic",
        "spawn_thread",
        "closed_exception",
    };
    PyObject *values[4];
    if (aio_parse_tuple_dict("Executor", args, kwargs, names, 4, 4, 4,
                             values) < 0) {
        return NULL;
    }
    tp_state *st = tp_state_from_type(type);
    if (st == NULL) {
        return NULL;
    }
    if (PyBool_Check(values[0]) || !PyLong_Check(values[0])) {
        PyErr_Format(PyExc_TypeError, "max_workers must be an int, not %s",
                     Py_TYPE(values[0])->tp_name);
        return NULL;
    }
    Py_ssize_t max_workers = PyLong_AsSsize_t(values[0]);
    if (max_workers == -1 && PyErr_Occurred()) {
        /* Too large for a Py_ssize_t: huge positive is "unbounded". */
        int negative = PyObject_RichCompareBool(values[0], Py_False, Py_LT);
        PyErr_Clear();
        max_workers = negative ? 0 : PY_SSIZE_T_MAX;
    }
    if (max_workers < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "max_workers must be greater than 0");
        return NULL;
    }
    if (!PyCallable_Check(values[2])) {
        PyErr_SetString(PyExc_TypeError, "spawn_thread must be callable");
        return NULL;
    }
    if (!PyExceptionClass_Check(values[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "closed_exception must be an exception class");
        return NULL;
    }

    ExecutorObject *self = (ExecutorObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&self->mutex, NULL) != 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
        return NULL;
    }
    if (pthread_cond_init(&self->wake, NULL) != 0) {
        pthread_mutex_destroy(&self->mutex);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_cond_init failed");
        return NULL;
    }
    if (pthread_cond_init(&self->first_started, NULL) != 0) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->mutex);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_cond_init failed");
        return NULL;
    }
    self->sync_ready = 1;
    self->max_workers = max_workers;
    atomic_store(&self->spin_ns, (long)DEFAULT_SPIN_US * 1000);
    self->statistic = Py_NewRef(values[1]);
    self->spawn_thread = Py_NewRef(values[2]);
    self->closed_exception = Py_NewRef(values[3]);
    self->channels = PyDict_New();
    if (self->channels == NULL || executor_take_counters(self, st) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
executor_traverse(PyObject *op, visitproc visit, void *arg)
{
    ExecutorObject *self = (ExecutorObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->statistic);
    Py_VISIT(self->spawn_thread);
    Py_VISIT(self->closed_exception);
    Py_VISIT(self->channels);
    Py_VISIT((PyObject *)self->last_channel);
    for (int i = 0; i < N_COUNTERS; i++) {
        Py_VISIT(self->counter_views[i].obj);
    }
    if (self->sync_ready) {
        int r = 0;
        LOCK(self);
        for (work_item *it = self->head; it != NULL && r == 0; it = it->next) {
            r = item_traverse(it, visit, arg);
        }
        UNLOCK(self);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

static int
executor_clear(PyObject *op)
{
    ExecutorObject *self = (ExecutorObject *)op;
    if (self->sync_ready) {
        LOCK(self);
        work_item *pending = self->head;
        self->head = self->tail = NULL;
        atomic_store_explicit(&self->queued, 0, memory_order_relaxed);
        UNLOCK(self);
        /* No module state in tp_clear (see channel_clear). */
        item_list_free(NULL, pending);
    }
    for (int i = 0; i < N_COUNTERS - 1; i++) {
        self->counters[i] = NULL;
    }
    self->sum_time = NULL;
    for (int i = 0; i < N_COUNTERS; i++) {
        aio_counters_release(&self->counter_views[i]);
    }
    Py_CLEAR(self->statistic);
    Py_CLEAR(self->spawn_thread);
    Py_CLEAR(self->closed_exception);
    Py_CLEAR(self->channels);
    Py_CLEAR(self->last_channel);
    return 0;
}

static void
executor_dealloc(PyObject *op)
{
    ExecutorObject *self = (ExecutorObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    PyObject_ClearWeakRefs(op);
    (void)executor_clear(op);
    /* No worker can be inside: each one holds a reference to the core. */
    if (self->sync_ready) {
        pthread_cond_destroy(&self->wake);
        pthread_cond_destroy(&self->first_started);
        pthread_mutex_destroy(&self->mutex);
        self->sync_ready = 0;
    }
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *
executor_repr(PyObject *op)
{
    ExecutorObject *self = (ExecutorObject *)op;
    LOCK(self);
    Py_ssize_t spawned = self->spawned;
    Py_ssize_t queued =
        atomic_load_explicit(&self->queued, memory_order_relaxed);
    Py_ssize_t running = self->running_count;
    UNLOCK(self);
    return PyUnicode_FromFormat(
        "<_thread_pool.Executor max_workers=%zd spawned=%zd queued=%zd "
        "running=%zd%s>",
        self->max_workers, spawned, queued, running,
        atomic_load_explicit(&self->shutdown, memory_order_relaxed)
            ? " shutdown"
            : "");
}

static PyMethodDef executor_methods[] = {
    {"start", executor_start, METH_NOARGS,
     "start($self, /)\n--\n\n"
     "Spawn the initial workers (2, or 1 if max_workers is 1)."},
    {"submit", (PyCFunction)(void (*)(void))executor_submit,
     METH_FASTCALL | METH_KEYWORDS,
     "submit($self, fn, /, *args, **kwargs)\n--\n\n"
     "Queue fn(*args, **kwargs); return an asyncio.Future of the current "
     "loop."},
    {"shutdown", executor_shutdown, METH_NOARGS,
     "shutdown($self, /)\n--\n\n"
     "Stop accepting work, fail queued items, stop the workers "
     "(non-blocking, idempotent)."},
    {"run_worker", executor_run_worker, METH_NOARGS,
     "run_worker($self, /)\n--\n\n"
     "Body of a worker thread; returns at shutdown."},
    {"after_fork_in_child", executor_after_fork_in_child, METH_NOARGS,
     "after_fork_in_child($self, /)\n--\n\n"
     "Reset the core in a forked child."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef executor_getset[] = {
    {"max_workers", executor_get_max_workers, NULL, NULL, NULL},
    {"spawned_threads", executor_get_spawned, NULL, NULL, NULL},
    {"queued", executor_get_queued, NULL, NULL, NULL},
    {"unfinished", executor_get_unfinished, NULL, NULL, NULL},
    {"is_shutdown", executor_get_is_shutdown, NULL, NULL, NULL},
    {"statistic", executor_get_statistic, NULL, NULL, NULL},
    {"_spin_us", executor_get_spin_us, executor_set_spin_us,
     "Microseconds an idle worker spins before sleeping (0 = never).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef executor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ExecutorObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot executor_slots[] = {
    {Py_tp_doc,
     "Executor(max_workers, statistic, spawn_thread, closed_exception)\n--\n\n"
     "Work queue and worker bodies of a thread pool (the core behind "
     "aiomisc_c.thread_pool.ThreadPoolExecutor)."},
    {Py_tp_new, executor_new},
    {Py_tp_dealloc, executor_dealloc},
    {Py_tp_traverse, executor_traverse},
    {Py_tp_clear, executor_clear},
    {Py_tp_repr, executor_repr},
    {Py_tp_methods, executor_methods},
    {Py_tp_getset, executor_getset},
    {Py_tp_members, executor_members},
    {0, NULL},
};

static PyType_Spec executor_spec = {
    .name = "aiomisc_c._thread_pool.Executor",
    .basicsize = sizeof(ExecutorObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = executor_slots,
};

#endif /* AIOMISC_C_THREAD_POOL_EXECUTOR_TYPE_H */
