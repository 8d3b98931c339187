/* circuit_breaker/hooks.h — the overridable hooks (clock, loop, class
 * constants), read through caches while the class is untouched.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_HOOKS_H
#define AIOMISC_C_CIRCUIT_BREAKER_HOOKS_H

/* --- hooks: clock and class constants -------------------------------------- */

/* Whether the hooks (`_get_time`, `loop`, the class constants) are the
 * originals: 1 for the exact type while its dict holds the objects it was
 * created with, 0 for subclasses or a patched class, -1 on error.
 *
 * The answer for the exact type is cached together with the type's version
 * tag: CPython invalidates the tag (the key of its own method cache) on
 * every change of the type's attributes, so a patched class is seen at the
 * next call and checked again by dict lookups. */
static int
check_hooks(cb_state *st, PyTypeObject *type)
{
    PyObject *dict = type->tp_dict;
    PyObject *names[2 + LIM_COUNT] = {st->str_get_time, st->str_loop};
    PyObject *originals[2 + LIM_COUNT] = {st->orig_get_time, st->orig_loop};
    for (int i = 0; i < LIM_COUNT; i++) {
        names[2 + i] = st->str_limits[i];
        originals[2 + i] = st->orig_limits[i];
    }
    for (int i = 0; i < 2 + LIM_COUNT; i++) {
        PyObject *value = PyDict_GetItemWithError(dict, names[i]);
        if (value == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (value != originals[i]) {
            return 0;
        }
    }
    return 1;
}

static inline int
tag_is_valid(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030C0000
    return type->tp_version_tag != 0; /* reset to 0 on modification */
#else
    return type->tp_version_tag != 0 &&
           PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG);
#endif
}

/* The tp_version_tag fast path: whether a cache filled when `type` had
 * version tag `tag` still holds (CPython gives a type a new tag, or none,
 * whenever one of its attributes changes).  Off: every cache misses. */
static inline int
version_tag_unchanged(PyTypeObject *type, unsigned int tag)
{
    return aio_fast_paths_on() && tag_is_valid(type) &&
           type->tp_version_tag == tag;
}

static int
original_hooks(BreakerObject *self)
{
    cb_state *st = self->st;
    PyTypeObject *type = Py_TYPE(self);
    if (type != st->breaker_type) {
        return 0;
    }
    if (version_tag_unchanged(type, st->hooks_tag)) {
        return st->hooks_original;
    }
    int original = check_hooks(st, type);
    if (original < 0) {
        return -1;
    }
    if (!tag_is_valid(type)) {
        /* a type lookup assigns a fresh tag */
        PyObject *unused = PyObject_GetAttr((PyObject *)type, st->str_loop);
        if (unused == NULL) {
            return -1;
        }
        Py_DECREF(unused);
    }
    st->hooks_tag = tag_is_valid(type) ? type->tp_version_tag : 0;
    st->hooks_original = original;
    return original;
}

static int
to_double(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    double result = PyFloat_AsDouble(value);
    if (result == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *out = result;
    return 0;
}

static int
read_limits(BreakerObject *self, int original, Limits *out)
{
    cb_state *st = self->st;
    double values[LIM_COUNT];
    if (original) { /* the hot path: the class constants as created */
        out->bucket_count = st->limit_values[LIM_BUCKET_COUNT];
        out->recover_broken = st->limit_values[LIM_RECOVER_BROKEN];
        out->passing_broken = st->limit_values[LIM_PASSING_BROKEN];
        return 0;
    }
    for (int i = 0; i < LIM_COUNT; i++) {
        PyObject *value = PyObject_GetAttr((PyObject *)self, st->str_limits[i]);
        if (value == NULL) {
            return -1;
        }
        int rc = to_double(value, &values[i]);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    out->bucket_count = values[LIM_BUCKET_COUNT];
    out->recover_broken = values[LIM_RECOVER_BROKEN];
    out->passing_broken = values[LIM_PASSING_BROKEN];
    return 0;
}

/* Whether every instance of `type` is true (no __bool__, no __len__): what
 * PyObject_IsTrue() checks, without the call, for the loop on every call. */
static inline int
always_true(PyTypeObject *type)
{
    return (type->tp_as_number == NULL ||
            type->tp_as_number->nb_bool == NULL) &&
           (type->tp_as_mapping == NULL ||
            type->tp_as_mapping->mp_length == NULL) &&
           (type->tp_as_sequence == NULL ||
            type->tp_as_sequence->sq_length == NULL);
}

/* The `loop` property: `_loop`, filled with the running loop when unset
 * or falsy (new reference: the truth test runs Python code that may
 * replace `_loop`). */
static PyObject *
breaker_loop(BreakerObject *self)
{
    PyObject *loop = self->loop;
    if (loop != NULL && loop != Py_None) {
        if (always_true(Py_TYPE(loop))) {
            return Py_NewRef(loop);
        }
        Py_INCREF(loop);
        int truth = PyObject_IsTrue(loop);
        Py_DECREF(loop);
        if (truth < 0) {
            return NULL;
        }
        if (truth) {
            /* `_loop` as it is now, as `return self._loop` reads it */
            if (self->loop == NULL) {
                PyErr_SetString(PyExc_AttributeError, "_loop");
                return NULL;
            }
            return Py_NewRef(self->loop);
        }
    }
    PyObject *running = PyObject_CallNoArgs(self->st->get_running_loop);
    if (running == NULL) {
        return NULL;
    }
    Py_XSETREF(self->loop, Py_NewRef(running));
    return running;
}

static PyObject *
call_method0(PyObject *obj, PyObject *name)
{
    PyObject *args[2] = {NULL, obj};
    return PyObject_VectorcallMethod(
        name, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The time through `_get_time()` and the class constants, read before any
 * bookkeeping (they may run Python code). */

/* 1 while time.monotonic is the builtin, 0 once patched, -1 on error.
 * Before 3.12 the answer is cached with the dict's version (PEP 509; it
 * changes on every modification of time.__dict__). */
#if PY_VERSION_HEX < 0x030C0000
/* The ma_version_tag fast path: whether time.__dict__ is unchanged since
 * the last check (its version was `version` then).  Off: always checked. */
static inline int
time_dict_unchanged(cb_state *st, uint64_t version)
{
    return aio_fast_paths_on() && st->time_dict_checked &&
           version == st->time_dict_version;
}
#endif

static int
monotonic_untouched(cb_state *st)
{
#if PY_VERSION_HEX < 0x030C0000
    uint64_t version = ((PyDictObject *)st->time_dict)->ma_version_tag;
    if (time_dict_unchanged(st, version)) {
        return st->monotonic_untouched;
    }
#endif
    PyObject *monotonic = PyDict_GetItemWithError(st->time_dict,
                                                  st->str_monotonic);
    if (monotonic == NULL && PyErr_Occurred()) {
        return -1;
    }
    int untouched = monotonic == st->orig_monotonic;
#if PY_VERSION_HEX < 0x030C0000
    st->time_dict_checked = 1;
    st->time_dict_version = version;
    st->monotonic_untouched = untouched;
#endif
    return untouched;
}

/* The loop clock, loop.time(), with the lookup of `time` cached.
 *
 * `loop.time` is resolved by a normal attribute lookup whenever the loop
 * object or its class changes (the class's version tag, see
 * original_hooks()); the function found is then called directly.  When it
 * is asyncio's BaseEventLoop.time (`return time.monotonic()`) and
 * time.monotonic is still the builtin (checked on every call: freezegun
 * and friends patch it), the clock is read natively instead.
 *
 * Not noticed: `time` replaced on the loop *instance* after this breaker
 * first read that loop's clock (override `_get_time` to drive the clock;
 * that is the documented hook). */
static int
loop_time(BreakerObject *self, PyObject *loop, double *now, PyObject **result)
{
    cb_state *st = self->st;
    PyTypeObject *type = Py_TYPE(loop);
    if (loop != self->clock_loop ||
        !version_tag_unchanged(type, self->clock_tag)) {
        PyObject *method = PyObject_GetAttr(loop, st->str_time);
        if (method == NULL) {
            return -1;
        }
        PyObject *func = NULL;
        if (PyMethod_Check(method) && PyMethod_GET_SELF(method) == loop) {
            func = Py_NewRef(PyMethod_GET_FUNCTION(method));
        }
        Py_DECREF(method);
        Py_XSETREF(self->clock_loop, Py_NewRef(loop));
        Py_XSETREF(self->clock_func, func);
        self->clock_tag = tag_is_valid(type) ? type->tp_version_tag : 0;
    }
    if (self->clock_func == NULL) {
        /* not a plain method: look it up every time */
        *result = call_method0(loop, st->str_time);
        return *result == NULL ? -1 : 0;
    }
    if (self->clock_func == st->base_loop_time) {
        int untouched = monotonic_untouched(st);
        if (untouched < 0) {
            return -1;
        }
        if (untouched) {
            *now = aio_monotonic();
            return 1;
        }
    }
    PyObject *func = Py_NewRef(self->clock_func);
    PyObject *args[2] = {NULL, loop};
    *result = PyObject_Vectorcall(
        func, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(func);
    return *result == NULL ? -1 : 0;
}

static int
read_clock_and_limits(BreakerObject *self, double *now, Limits *limits)
{
    cb_state *st = self->st;
    PyObject *result;
    int original = original_hooks(self);
    if (original < 0) {
        return -1;
    }
    if (original) {
        PyObject *loop = breaker_loop(self);
        if (loop == NULL) {
            return -1;
        }
        int native = loop_time(self, loop, now, &result);
        Py_DECREF(loop);
        if (native < 0) {
            return -1;
        }
        if (native) {
            return limits ? read_limits(self, original, limits) : 0;
        }
    }
    else {
        result = call_method0((PyObject *)self, st->str_get_time);
    }
    if (result == NULL) {
        return -1;
    }
    int rc = to_double(result, now);
    Py_DECREF(result);
    if (rc < 0) {
        return -1;
    }
    return limits ? read_limits(self, original, limits) : 0;
}

static int
check_initialized(BreakerObject *self)
{
    if (!self->initialized) {
        PyErr_SetString(PyExc_RuntimeError,
                        "CircuitBreaker.__init__() was not called");
        return -1;
    }
    return 0;
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_HOOKS_H */
