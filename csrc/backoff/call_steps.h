/* backoff/call_steps.h — attempts, pauses and deadlines: the state
 * machine of a call.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_CALL_STEPS_H
#define AIOMISC_C_BACKOFF_CALL_STEPS_H

/* --- attempt bookkeeping --------------------------------------------------- */

/* The attempt (and its pause) is over, whatever the outcome: count its
 * time, then that it is done.  Like a `finally:` block, a count that fails
 * stops there and its error replaces the exception in flight (if any),
 * which becomes its __context__; -1 then.  Otherwise the exception in
 * flight, if any, is pending again and 0 is returned. */
static int
call_end_attempt(CallObject *self)
{
    PyObject *in_flight = aio_err_take();
    if (counters_add_time(self->st, self->counters,
                          aio_monotonic() - self->started) < 0 ||
        counters_inc(self->st, self->counters, M_DONE) < 0) {
        if (in_flight != NULL) {
            PyObject *raised = aio_err_take();
            PyException_SetContext(raised, in_flight); /* steals in_flight */
            aio_err_restore(raised);
        }
        return -1;
    }
    aio_err_restore(in_flight);
    return 0;
}

/* The call is over: drop everything that is not needed any more. */
static void
call_finish(CallObject *self)
{
    self->state = S_DONE;
    call_disarm(self);
    if (self->queue != NULL) {
        queue_went_idle(self->queue);
    }
    Py_CLEAR(self->queue);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->task);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwnames);
}

/* Raise what the caller gets when the deadline expires. */
static void
call_raise_expired(CallObject *self, PyObject *cause)
{
    PyObject *last = *self->last_exception;
    if (last != NULL) {
        aio_err_restore(Py_NewRef(last));
        return;
    }
    PyObject *error = new_timeout_error(self->st, cause);
    if (error != NULL) {
        aio_err_restore(error);
    }
}

/* The first step: bind the loop and the task when timers are needed. */
static int
call_start(CallObject *self)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    if (p->attempt_timeout_s < 0 && p->deadline_s < 0) {
        return 0;
    }
    if (call_get_loop(self) < 0) {
        return -1;
    }
    if (st->current_tasks != NULL) {
        /* what asyncio.current_task(loop) does there, minus its frame */
        self->task = PyDict_GetItemWithError(st->current_tasks, self->loop);
        if (self->task == NULL && PyErr_Occurred()) {
            return -1;
        }
        self->task = Py_NewRef(self->task != NULL ? self->task : Py_None);
    }
    else {
        self->task = PyObject_CallOneArg(st->current_task, self->loop);
        if (self->task == NULL) {
            return -1;
        }
    }
    if (self->task == Py_None) {
        Py_CLEAR(self->task);
        PyErr_SetString(PyExc_RuntimeError,
                        self->counters != NULL
                            ? "asyncbackoff with a time limit must run in a task"
                            : "timeout with a time limit must run in a task");
        return -1;
    }
    if (st->has_uncancel) {
        /* cancellations requested before the call are not ours to judge */
        PyObject *n = PyObject_CallMethodNoArgs(self->task, st->str_cancelling);
        if (n == NULL) {
            return -1;
        }
        self->baseline = PyLong_AsSsize_t(n);
        Py_DECREF(n);
        if (self->baseline == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (p->deadline_s >= 0) {
        if (p->deadline_s <= 0) {
            call_raise_expired(self, NULL);
            return -1;
        }
        self->has_deadline = 1;   /* deadline_at: set by the first attempt */
    }
    return call_get_queue(self);
}

/* The iterator to drive for the awaitable `aw` (steals `aw`). */
static PyObject *
awaitable_iter(PyObject *aw)
{
    if (PyCoro_CheckExact(aw)) {
        return aw;
    }
    PyTypeObject *type = Py_TYPE(aw);
    if (type->tp_as_async != NULL && type->tp_as_async->am_await != NULL) {
        PyObject *it = type->tp_as_async->am_await(aw);
        Py_DECREF(aw);
        if (it == NULL) {
            return NULL;
        }
        if (PyCoro_CheckExact(it) || !PyIter_Check(it)) {
            PyErr_Format(PyExc_TypeError,
                         "__await__() returned %s",
                         PyCoro_CheckExact(it) ? "a coroutine"
                                               : "a non-iterator");
            Py_DECREF(it);
            return NULL;
        }
        return it;
    }
    if (PyGen_CheckExact(aw)) {
        /* a generator-based coroutine (types.coroutine) */
        PyObject *code = PyObject_GetAttrString(aw, "gi_code");
        if (code == NULL) {
            Py_DECREF(aw);
            return NULL;
        }
        int ok = PyCode_Check(code) &&
                 (((PyCodeObject *)code)->co_flags & CO_ITERABLE_COROUTINE);
        Py_DECREF(code);
        if (ok) {
            return aw;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "object %.100s can't be used in 'await' expression",
                 type->tp_name);
    Py_DECREF(aw);
    return NULL;
}

static void
discard_awaitable(backoff_state *st, PyObject *aw)
{
    PyObject *close;
    int found = aio_getattr_optional(aw, st->str_close, &close);
    if (found > 0) {
        PyObject *r = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (r == NULL) {
            PyErr_WriteUnraisable(aw);
        }
        Py_XDECREF(r);
    }
    else if (found < 0) {
        PyErr_WriteUnraisable(aw);
    }
}

enum outcome {
    O_ERROR = -1,              /* no attempt was made; exception set */
    O_RUN = 0,                 /* self->inner is ready to be sent None */
    O_FAILED = 1,              /* the attempt failed at once; exception set */
    O_IMMEDIATE_TIMEOUT = 2,   /* attempt_timeout is 0 */
    O_FATAL = 3,               /* a loop error after the attempt was counted */
};

/* Start an attempt (see enum outcome). */
static int
call_begin_attempt(CallObject *self)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    double now = aio_monotonic();
    int timed = self->task != NULL;
    if (self->has_deadline) {
        if (!self->attempts_started) {
            self->deadline_at = now + p->deadline_s;
        }
        else if (now >= self->deadline_at) {
            call_raise_expired(self, NULL);
            return O_ERROR;
        }
    }
    if (counters_inc(st, self->counters, M_ATTEMPTS) < 0) {
        return O_ERROR;
    }
    self->attempts_started++;
    *self->tries += 1;
    self->started = now;
    self->state = S_ATTEMPT;

    PyObject *const *argv = self->args ? &PyTuple_GET_ITEM(self->args, 0) : NULL;
    if (timed) {
        double at = p->attempt_timeout_s;
        if (at >= 0 && at <= 0) {
            PyObject *aw = PyObject_Vectorcall(self->func, argv, self->nargs,
                                               self->kwnames);
            if (aw == NULL) {
                return O_FAILED;
            }
            discard_awaitable(st, aw);
            Py_DECREF(aw);
            return O_IMMEDIATE_TIMEOUT;
        }
        int rc;
        if (at >= 0 && (!self->has_deadline || now + at < self->deadline_at)) {
            rc = call_arm(self, now + at, K_ATTEMPT);
        }
        else {
            rc = call_arm(self, self->deadline_at, K_DEADLINE);
        }
        if (rc < 0) {
            return O_FATAL;
        }
    }
    PyObject *aw = PyObject_Vectorcall(self->func, argv, self->nargs,
                                       self->kwnames);
    if (aw == NULL) {
        return O_FAILED;
    }
    self->inner = awaitable_iter(aw);
    return self->inner == NULL ? O_FAILED : O_RUN;
}

/* Start the pause before the next attempt: *yielded is what to yield to
 * the task (a future, or None to just let the loop run once). */
static int
call_begin_pause(CallObject *self, PyObject **yielded)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    self->state = S_PAUSE;
    self->pause_hits_deadline = 0;
    if (p->pause_s <= 0) {
        *yielded = Py_NewRef(Py_None);
        return 0;
    }
    if (call_get_queue(self) < 0) {
        return -1;
    }
    double when = aio_monotonic() + p->pause_s;
    if (self->has_deadline && self->deadline_at <= when) {
        when = self->deadline_at;
        self->pause_hits_deadline = 1;
    }
    PyObject *waiter = PyObject_CallMethodNoArgs(self->loop,
                                                 st->str_create_future);
    if (waiter == NULL) {
        return -1;
    }
    Py_XSETREF(self->waiter, waiter);
    if (!isinf(when) && call_arm(self, when, K_NONE) < 0) {
        return -1;
    }
    /* what Future.__await__ does before yielding itself to the task */
    if (PyObject_SetAttr(waiter, st->str_future_blocking, Py_True) < 0) {
        return -1;
    }
    *yielded = Py_NewRef(waiter);
    return 0;
}

/* The pause is over or aborted: cancel what is left of it. */
static void
call_end_pause(CallObject *self)
{
    call_disarm(self);
    PyObject *waiter = self->waiter;
    if (waiter != NULL) {
        self->waiter = NULL;
        PyObject *r = PyObject_CallMethodNoArgs(waiter, self->st->str_cancel);
        if (r == NULL) {
            PyErr_WriteUnraisable(waiter);
        }
        Py_XDECREF(r);
        Py_DECREF(waiter);
    }
}

static PySendResult call_run_attempt(CallObject *self, PyObject **result);

static int
is_never_retried(backoff_state *st, PyObject *error)
{
    return PyErr_GivenExceptionMatches(error, st->CancelledError) ||
           PyErr_GivenExceptionMatches(error, PyExc_KeyboardInterrupt) ||
           PyErr_GivenExceptionMatches(error, PyExc_SystemExit) ||
           PyErr_GivenExceptionMatches(error, PyExc_GeneratorExit);
}

/* The attempt failed with the exception currently set (or timed out before
 * starting when `immediate`).  Either raises (returns PYGEN_ERROR, the call
 * is finished) or starts the pause (returns PYGEN_NEXT, *yielded set). */
static PySendResult
call_attempt_failed(CallObject *self, int immediate, PyObject **yielded)
{
    backoff_state *st = self->st;
    Policy *p = self->policy;
    PyObject *error = immediate ? NULL : aio_err_take();
    int fired;
    if (immediate) {
        call_disarm(self);
        fired = K_ATTEMPT;
    }
    else {
        fired = call_settle(self, error);
        if (fired < 0) {
            /* uncancel() failed: report that, the attempt's error chained */
            goto raise_current;
        }
    }

    if (fired == K_DEADLINE) {
        /* the deadline's */
        if (counters_inc(st, self->counters, M_CANCELS) < 0) {
            goto raise_current;
        }
        call_raise_expired(self, error);
        goto raise_current;
    }
    if (fired == K_ATTEMPT) {
        PyObject *timeout = new_timeout_error(st, error);
        if (timeout == NULL) {
            goto raise_current;
        }
        Py_XSETREF(error, timeout);
    }
    if (error == NULL) {
        PyErr_SetString(PyExc_SystemError, "attempt failed without error");
        goto raise_current;
    }
    if (is_never_retried(st, error)) {
        if (PyErr_GivenExceptionMatches(error, st->CancelledError) &&
            counters_inc(st, self->counters, M_CANCELS) < 0) {
            goto raise_current;
        }
        goto raise_error;
    }
    if (!PyErr_GivenExceptionMatches(error, p->exceptions)) {
        if (PyErr_GivenExceptionMatches(error, PyExc_Exception)) {
            Py_XSETREF(*self->last_exception, Py_NewRef(error));
        }
        goto raise_error;
    }

    if (counters_inc(st, self->counters, M_ERRORS) < 0) {
        goto raise_current;
    }
    Py_XSETREF(*self->last_exception, Py_NewRef(error));
    if (p->max_tries_n > 0 && *self->tries >= p->max_tries_n) {
        goto raise_error;
    }
    if (p->giveup != NULL && p->giveup != Py_None) {
        PyObject *giveup = Py_NewRef(p->giveup);   /* user code may reset it */
        PyObject *verdict = PyObject_CallOneArg(giveup, error);
        Py_DECREF(giveup);
        if (verdict == NULL) {
            goto raise_current;
        }
        int stop = PyObject_IsTrue(verdict);
        Py_DECREF(verdict);
        if (stop < 0) {
            goto raise_current;
        }
        if (stop) {
            goto raise_error;
        }
    }
    Py_CLEAR(error);
    Py_CLEAR(self->inner);
    if (p->pause_s <= 0 && ++self->immediate_retries % YIELD_EVERY != 0) {
        /* retry at once (no loop iteration in between) */
        if (call_end_attempt(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, yielded);
    }
    if (call_begin_pause(self, yielded) < 0) {
        goto raise_current;
    }
    return PYGEN_NEXT;

raise_error:
    aio_err_restore(error);
    error = NULL;
raise_current:
    Py_XDECREF(error);
    (void)call_end_attempt(self); /* an error stays pending */
    call_finish(self);
    return PYGEN_ERROR;
}

/* The running attempt returned `value` (stolen into *result). */
static PySendResult
call_attempt_returned(CallObject *self, PyObject *value, PyObject **result)
{
    int rc = call_settle(self, NULL);
    if (call_end_attempt(self) < 0) {
        rc = -1;
    }
    call_finish(self);
    if (rc < 0) {
        Py_DECREF(value);
        return PYGEN_ERROR;
    }
    *result = value;
    return PYGEN_RETURN;
}

/* Send `value` or throw `exc` (borrowed; value is then ignored) into the
 * running attempt. */
static PySendResult
call_drive(CallObject *self, PyObject *value, PyObject *exc, PyObject **result)
{
    PyObject *out = NULL;
    PySendResult status;
    if (exc == NULL) {
        status = PyIter_Send(self->inner, value, &out);
    }
    else {
        PyObject *throw;
        int found = aio_getattr_optional(self->inner, self->st->str_throw,
                                         &throw);
        if (found == 0) {
            /* no throw(): raised right here, as PEP 380 says */
            aio_err_restore(Py_NewRef(exc));
            status = PYGEN_ERROR;
        }
        else if (found < 0) {
            status = PYGEN_ERROR;
        }
        else {
            out = PyObject_CallOneArg(throw, exc);
            Py_DECREF(throw);
            if (out != NULL) {
                status = PYGEN_NEXT;
            }
            else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *stop = aio_err_take();
                out = Py_NewRef(((PyStopIterationObject *)stop)->value);
                Py_DECREF(stop);
                status = PYGEN_RETURN;
            }
            else {
                status = PYGEN_ERROR;
            }
        }
    }
    if (status == PYGEN_NEXT) {
        *result = out;
        return PYGEN_NEXT;
    }
    if (status == PYGEN_RETURN) {
        return call_attempt_returned(self, out, result);
    }
    return call_attempt_failed(self, 0, result);
}

/* Begin the next attempt and run it up to its first suspension. */
static PySendResult
call_run_attempt(CallObject *self, PyObject **result)
{
    switch (call_begin_attempt(self)) {
    case O_RUN:
        return call_drive(self, Py_None, NULL, result);
    case O_FAILED:
        return call_attempt_failed(self, 0, result);
    case O_IMMEDIATE_TIMEOUT:
        return call_attempt_failed(self, 1, result);
    case O_FATAL:
        (void)call_end_attempt(self); /* an error stays pending */
        call_finish(self);
        return PYGEN_ERROR;
    default:
        call_finish(self);
        return PYGEN_ERROR;
    }
}

static PySendResult
call_step(CallObject *self, PyObject *value, PyObject *exc, PyObject **result)
{
    *result = NULL;
    switch (self->state) {
    case S_INIT:
        if (exc != NULL) {
            call_finish(self);
            aio_err_restore(Py_NewRef(exc));
            return PYGEN_ERROR;
        }
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started "
                            "coroutine");
            return PYGEN_ERROR;
        }
        if (call_start(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, result);

    case S_ATTEMPT:
        return call_drive(self, value, exc, result);

    case S_PAUSE:
        call_end_pause(self);
        if (exc != NULL) {
            /* thrown in during the pause (the caller was cancelled, ...):
             * never swallowed, never retried */
            aio_err_restore(Py_NewRef(exc));
            (void)call_end_attempt(self); /* an error stays pending */
            call_finish(self);
            return PYGEN_ERROR;
        }
        if (call_end_attempt(self) < 0) {
            call_finish(self);
            return PYGEN_ERROR;
        }
        if (self->pause_hits_deadline) {
            call_raise_expired(self, NULL);
            call_finish(self);
            return PYGEN_ERROR;
        }
        return call_run_attempt(self, result);

    default:
        if (exc != NULL) {
            aio_err_restore(Py_NewRef(exc));
        }
        else {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot reuse already awaited coroutine");
        }
        return PYGEN_ERROR;
    }
}

static PySendResult
call_step_guarded(CallObject *self, PyObject *value, PyObject *exc,
                  PyObject **result)
{
    if (aio_coro_refuse_reentry(self->running) < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    self->running = 1;
    Py_INCREF(self);   /* the timer callback may drop the last other ref */
    PySendResult status = call_step(self, value, exc, result);
    if (status == PYGEN_ERROR) {
        aio_coro_convert_stop_iteration();   /* as a coroutine's frame does */
    }
    self->running = 0;
    Py_DECREF(self);
    return status;
}

static PySendResult
call_am_send(PyObject *self, PyObject *value, PyObject **result)
{
    return call_step_guarded((CallObject *)self, value, NULL, result);
}

#endif /* AIOMISC_C_BACKOFF_CALL_STEPS_H */
