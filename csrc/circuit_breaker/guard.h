/* circuit_breaker/guard.h — the guarded call: enter, record success or
 * failure, and CircuitBreaker.call().
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_GUARD_H
#define AIOMISC_C_CIRCUIT_BREAKER_GUARD_H

/* --- the guarded call -------------------------------------------------------- */

static int
raise_broken(BreakerObject *self)
{
    PyObject *last = self->last_exception ? self->last_exception : Py_None;
    PyObject *exc = PyObject_CallOneArg(self->st->circuit_broken, last);
    if (exc == NULL) {
        return -1;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

/* Start a guarded call: 0 with *serial = the bucket to record into, or -1
 * with an exception set (CircuitBroken when the body must not run). */
static int
guard_enter(BreakerObject *self, uint64_t *serial)
{
    double now;
    Limits limits;
    /* (initialized is checked again after each call into Python: that code
     * may have called __init__ again, which swaps the counters) */
    if (check_initialized(self) < 0 ||
        read_clock_and_limits(self, &now, &limits) < 0 ||
        check_initialized(self) < 0) {
        return -1;
    }
    /* bookkeeping: no Python code runs from here ... */
    double current = bucket_id_cached(self, now, limits.bucket_count);
    *serial = current_bucket(self, current);
    compute_state(self, now, current, &limits);
    (*self->stat[STAT_CALL_COUNT])++;
    if (self->state == ST_PASSING) {
        (*self->stat[STAT_CALL_PASSING])++;
        return 0;
    }
    if (self->state == ST_BROKEN) {
        (*self->stat[STAT_CALL_BROKEN])++;
        return raise_broken(self);
    }
    (*self->stat[STAT_CALL_RECOVERING])++;
    double elapsed = now - self->recovery_at;
    double recovery_time = self->recovery_time;
    /* ... to here.  RECOVERING: the chance to pass grows from 0 to 1 over
     * recovery_time; the random source is looked up at call time. */
    PyObject *random = PyObject_GetAttr(self->st->base_module,
                                        self->st->str_random);
    if (random == NULL) {
        return -1;
    }
    PyObject *drawn = PyObject_CallNoArgs(random);
    Py_DECREF(random);
    if (drawn == NULL) {
        return -1;
    }
    double value;
    int rc = to_double(drawn, &value);
    Py_DECREF(drawn);
    if (rc < 0 || check_initialized(self) < 0) {
        return -1;
    }
    if (value + 1.0 < pow(2.0, elapsed / recovery_time)) {
        (*self->stat[STAT_CALL_RECOVERING_OK])++;
        return 0;
    }
    (*self->stat[STAT_CALL_RECOVERING_FAILED])++;
    return raise_broken(self);
}

static void
record_success(BreakerObject *self, uint64_t serial)
{
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->ok++;
        bucket->total++;
        bucket_changed(self, bucket);
    }
    Py_CLEAR(self->last_exception); /* may run a finalizer: last */
}

/* The body raised `exc` (a new reference, stolen): remember it, ask the
 * inspector, record it into the call's bucket (found after all user code
 * returned), then raise it again -- or what the inspector raised instead,
 * if that was not an Exception.  Returns -1. */
static int
guard_fail(BreakerObject *self, uint64_t serial, PyObject *exc)
{
    cb_state *st = self->st;
    int monitored =
        PyErr_GivenExceptionMatches(exc, self->exceptions) &&
        !PyErr_GivenExceptionMatches(exc, st->never_failures);
    long long weight = 0;
    PyObject *to_raise = exc;
    if (monitored) {
        Py_XSETREF(self->last_exception, Py_NewRef(exc));
        weight = 1;
        if (self->inspector != NULL) {
            PyObject *inspector = Py_NewRef(self->inspector);
            PyObject *verdict = PyObject_CallOneArg(inspector, exc);
            int truth = -1;
            if (verdict != NULL) {
                truth = PyObject_IsTrue(verdict);
                Py_DECREF(verdict);
            }
            if (truth >= 0) {
                weight = truth;
            }
            else {
                PyObject *error = aio_err_take();
                if (PyErr_GivenExceptionMatches(error, PyExc_Exception)) {
                    /* logged; the call still counts as a failure */
                    PyObject *logged = PyObject_CallFunctionObjArgs(
                        st->log_inspector_error, inspector, error, NULL);
                    if (logged == NULL) {
                        PyErr_WriteUnraisable(st->log_inspector_error);
                    }
                    Py_XDECREF(logged);
                    Py_DECREF(error);
                }
                else {
                    /* a BaseException (KeyboardInterrupt...) raised by the
                     * inspector replaces the call's exception */
                    PyException_SetContext(error, Py_NewRef(exc));
                    to_raise = error;
                    weight = 0;
                }
            }
            Py_DECREF(inspector);
        }
    }
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->fail += weight;
        bucket->total++;
        bucket_changed(self, bucket);
    }
    if (to_raise != exc) {
        Py_DECREF(exc);
    }
    aio_err_restore(to_raise);
    return -1;
}

/* Only TOTAL: the body was abandoned (a closed call_async). */
static void
record_abandoned(BreakerObject *self, uint64_t serial)
{
    Bucket *bucket = find_bucket(self, serial);
    if (bucket != NULL) {
        bucket->total++;
        bucket_changed(self, bucket);
    }
}

/* func(*args, **kwargs) guarded by the breaker (the body of `call`). */
static PyObject *
guarded_call(BreakerObject *self, PyObject *func, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t serial;
    if (guard_enter(self, &serial) < 0) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(func, args, nargs, kwnames);
    if (result == NULL) {
        guard_fail(self, serial, aio_err_take());
        return NULL;
    }
    record_success(self, serial);
    return result;
}

/* Split `func` off a `call(func, *args, **kwargs)` argument vector.  Returns
 * 0 when `func` is args[0] (the fast case), 1 when it was passed by keyword
 * (*slow_args / *slow_kwargs then hold the rest), -1 on error. */
static int
split_func(cb_state *st, const char *fname, PyObject *const *args,
           Py_ssize_t nargs, PyObject *kwnames, PyObject **func,
           PyObject **slow_args, PyObject **slow_kwargs)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t func_kw = -1;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name == st->str_func ||
            PyUnicode_Compare(name, st->str_func) == 0) {
            func_kw = i;
            break;
        }
    }
    if (nargs >= 1) {
        if (func_kw >= 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument 'func'",
                         fname);
            return -1;
        }
        *func = args[0];
        return 0;
    }
    if (func_kw < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: 'func'",
                     fname);
        return -1;
    }
    *func = args[func_kw];
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (i != func_kw &&
            PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                           args[i]) < 0) {
            Py_DECREF(kwargs);
            return -1;
        }
    }
    *slow_args = PyTuple_New(0);
    if (*slow_args == NULL) {
        Py_DECREF(kwargs);
        return -1;
    }
    *slow_kwargs = kwargs;
    return 1;
}

static PyObject *
breaker_call(BreakerObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *func;
    if (kwnames == NULL && nargs >= 1) { /* the fast path */
        return guarded_call(self, args[0], args + 1, nargs - 1, NULL);
    }
    PyObject *slow_args = NULL, *slow_kwargs = NULL;
    int how = split_func(self->st, "call", args, nargs, kwnames, &func,
                         &slow_args, &slow_kwargs);
    if (how < 0) {
        return NULL;
    }
    if (how == 0) {
        return guarded_call(self, func, args + 1, nargs - 1, kwnames);
    }
    uint64_t serial;
    PyObject *result = NULL;
    Py_INCREF(func);
    if (guard_enter(self, &serial) == 0) {
        result = PyObject_Call(func, slow_args, slow_kwargs);
        if (result == NULL) {
            guard_fail(self, serial, aio_err_take());
        }
        else {
            record_success(self, serial);
        }
    }
    Py_DECREF(func);
    Py_DECREF(slow_args);
    Py_DECREF(slow_kwargs);
    return result;
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_GUARD_H */
