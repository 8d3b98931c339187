/* backoff/policy.h — the retry/timeout settings (Policy) and the
 * layouts of the objects that embed them.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_POLICY_H
#define AIOMISC_C_BACKOFF_POLICY_H

/* ------------------------------------------------------------------------ */
/* Policy: the retry/timeout settings, embedded right after PyObject_HEAD in
 * Backoff, BackoffExecution and the timeout wrapper (so that one set of
 * attribute accessors serves all of them).                                 */

typedef struct {
    PyObject *attempt_timeout;    /* as given: None or a number */
    PyObject *deadline;
    PyObject *pause;
    PyObject *exceptions;         /* tuple (or an exception class) */
    PyObject *max_tries;          /* None or int */
    PyObject *giveup;             /* None or callable */
    double attempt_timeout_s;     /* seconds, -1: no limit */
    double deadline_s;
    double pause_s;
    long long max_tries_n;        /* 0: unlimited */
} Policy;

#define POLICY_OF(obj) ((Policy *)((char *)(obj) + sizeof(PyObject)))

/* The defaults: 0, or -1 with an exception set (what was set is released
 * by the owner's clear). */
static int
policy_init(Policy *p)
{
    p->attempt_timeout = Py_NewRef(Py_None);
    p->deadline = Py_NewRef(Py_None);
    p->pause = PyLong_FromLong(0);
    p->exceptions = PyTuple_New(0);
    p->max_tries = Py_NewRef(Py_None);
    p->giveup = Py_NewRef(Py_None);
    p->attempt_timeout_s = -1.0;
    p->deadline_s = -1.0;
    p->pause_s = 0.0;
    p->max_tries_n = 0;
    return p->pause == NULL || p->exceptions == NULL ? -1 : 0;
}

/* tp_new of the types whose objects start with a Policy (POLICY_OF):
 * Backoff and BackoffExecution. */
static PyObject *
policy_object_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                  PyObject *Py_UNUSED(kwargs))
{
    PyObject *self = type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (policy_init(POLICY_OF(self)) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static int
policy_traverse(Policy *p, visitproc visit, void *arg)
{
    Py_VISIT(p->attempt_timeout);
    Py_VISIT(p->deadline);
    Py_VISIT(p->pause);
    Py_VISIT(p->exceptions);
    Py_VISIT(p->max_tries);
    Py_VISIT(p->giveup);
    return 0;
}

static void
policy_clear(Policy *p)
{
    Py_CLEAR(p->attempt_timeout);
    Py_CLEAR(p->deadline);
    Py_CLEAR(p->pause);
    Py_CLEAR(p->exceptions);
    Py_CLEAR(p->max_tries);
    Py_CLEAR(p->giveup);
}

enum policy_field {
    F_ATTEMPT_TIMEOUT, F_DEADLINE, F_PAUSE, F_EXCEPTIONS, F_MAX_TRIES, F_GIVEUP,
};

/* Set one field (a new value owned by the caller, borrowed here). */
static int
policy_set(Policy *p, int field, PyObject *value)
{
    PyObject **slot = NULL;
    switch (field) {
    case F_ATTEMPT_TIMEOUT:
        if (timeout_seconds(value, &p->attempt_timeout_s) < 0) {
            return -1;
        }
        slot = &p->attempt_timeout;
        break;
    case F_DEADLINE:
        if (timeout_seconds(value, &p->deadline_s) < 0) {
            return -1;
        }
        slot = &p->deadline;
        break;
    case F_PAUSE: {
        double pause = 0.0;
        if (value != Py_None) {
            pause = PyFloat_AsDouble(value);
            if (pause == -1.0 && PyErr_Occurred()) {
                return -1;
            }
        }
        p->pause_s = (isnan(pause) || pause < 0) ? 0.0 : pause;
        slot = &p->pause;
        break;
    }
    case F_EXCEPTIONS:
        if (!PyTuple_Check(value) && !PyExceptionClass_Check(value)) {
            PyErr_SetString(PyExc_TypeError,
                            "'exceptions' must be a tuple of exception classes");
            return -1;
        }
        slot = &p->exceptions;
        break;
    case F_MAX_TRIES:
        if (value == Py_None) {
            p->max_tries_n = 0;
        }
        else {
            long long n = PyLong_AsLongLong(value);
            if (n == -1 && PyErr_Occurred()) {
                return -1;
            }
            p->max_tries_n = n < 1 ? 1 : n;
        }
        slot = &p->max_tries;
        break;
    case F_GIVEUP:
        if (value != Py_None && !PyCallable_Check(value)) {
            PyErr_SetString(PyExc_ValueError,
                            "'giveup' must be a callable or None");
            return -1;
        }
        slot = &p->giveup;
        break;
    default:
        PyErr_SetString(PyExc_SystemError, "bad policy field");
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* Run _backoff_base.check_policy(...) and store its normalised result.
 * NULL for pause, exceptions, max_tries or giveup (an argument not given)
 * stands for its default: 0, (), None, None. */
static int
policy_check_and_set(backoff_state *st, Policy *p, PyObject *attempt_timeout,
                     PyObject *deadline, PyObject *pause, PyObject *exceptions,
                     PyObject *max_tries, PyObject *giveup, int append_timeout)
{
    PyObject *zero = pause == NULL ? PyLong_FromLong(0) : NULL;
    PyObject *empty = exceptions == NULL ? PyTuple_New(0) : NULL;
    if ((pause == NULL && zero == NULL) ||
        (exceptions == NULL && empty == NULL)) {
        Py_XDECREF(zero);
        Py_XDECREF(empty);
        return -1;
    }
    PyObject *args[7] = {
        attempt_timeout, deadline, pause != NULL ? pause : zero,
        exceptions != NULL ? exceptions : empty,
        max_tries != NULL ? max_tries : Py_None,
        giveup != NULL ? giveup : Py_None,
        append_timeout ? Py_True : Py_False,
    };
    PyObject *checked = PyObject_Vectorcall(st->check_policy, args, 7, NULL);
    Py_XDECREF(zero);
    Py_XDECREF(empty);
    if (checked == NULL) {
        return -1;
    }
    int rc = -1;
    if (!PyTuple_Check(checked) || PyTuple_GET_SIZE(checked) != 6) {
        PyErr_SetString(PyExc_SystemError, "check_policy() result");
        goto done;
    }
    for (int field = F_ATTEMPT_TIMEOUT; field <= F_GIVEUP; field++) {
        if (policy_set(p, field, PyTuple_GET_ITEM(checked, field)) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(checked);
    return rc;
}

static void
policy_copy(Policy *dst, Policy *src)
{
    policy_clear(dst);
    *dst = *src;
    Py_XINCREF(dst->attempt_timeout);
    Py_XINCREF(dst->deadline);
    Py_XINCREF(dst->pause);
    Py_XINCREF(dst->exceptions);
    Py_XINCREF(dst->max_tries);
    Py_XINCREF(dst->giveup);
}

static PyObject *
policy_get(PyObject *self, void *closure)
{
    Policy *p = POLICY_OF(self);
    PyObject *value = NULL;
    switch ((int)(intptr_t)closure) {
    case F_ATTEMPT_TIMEOUT: value = p->attempt_timeout; break;
    case F_DEADLINE: value = p->deadline; break;
    case F_PAUSE: value = p->pause; break;
    case F_EXCEPTIONS: value = p->exceptions; break;
    case F_MAX_TRIES: value = p->max_tries; break;
    case F_GIVEUP: value = p->giveup; break;
    }
    return Py_NewRef(value != NULL ? value : Py_None);
}

static int
policy_setter(PyObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    return policy_set(POLICY_OF(self), (int)(intptr_t)closure, value);
}

#define POLICY_GETSETS                                                        \
    {"attempt_timeout", policy_get, policy_setter, NULL,                      \
     (void *)(intptr_t)F_ATTEMPT_TIMEOUT},                                    \
    {"deadline", policy_get, policy_setter, NULL,                             \
     (void *)(intptr_t)F_DEADLINE},                                           \
    {"pause", policy_get, policy_setter, NULL, (void *)(intptr_t)F_PAUSE},    \
    {"exceptions", policy_get, policy_setter, NULL,                           \
     (void *)(intptr_t)F_EXCEPTIONS},                                         \
    {"max_tries", policy_get, policy_setter, NULL,                            \
     (void *)(intptr_t)F_MAX_TRIES},                                          \
    {"giveup", policy_get, policy_setter, NULL, (void *)(intptr_t)F_GIVEUP}

/* ------------------------------------------------------------------------ */
/* Backoff and BackoffExecution                                              */

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF */
    CountersObject *counters;
} BackoffObject;

typedef struct {
    PyObject_HEAD
    Policy policy;                /* must stay first: POLICY_OF */
    CountersObject *counters;
    PyObject *function;
    PyObject *last_exception;     /* NULL or the last attempt's exception */
    long long total_tries;
} ExecutionObject;

#endif /* AIOMISC_C_BACKOFF_POLICY_H */
