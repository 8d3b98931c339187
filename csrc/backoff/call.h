/* backoff/call.h — the Call object (one awaited call of a decorated
 * function): its layout and constructor.
 *
 * A unit of the aiomisc_c._backoff translation unit: included once,
 * by backoff/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_BACKOFF_CALL_H
#define AIOMISC_C_BACKOFF_CALL_H

/* ------------------------------------------------------------------------ */
/* Call: one awaited call of a decorated function                            */

enum call_state { S_INIT, S_ATTEMPT, S_PAUSE, S_DONE };
enum timer_kind { K_NONE, K_ATTEMPT, K_DEADLINE };

typedef struct QueueObject QueueObject;

typedef struct CallObject {
    PyObject_HEAD
    backoff_state *st;            /* the module outlives its types' objects */
    PyObject *owner;              /* keeps `policy` (and `tries`) alive */
    Policy *policy;               /* inside owner */
    CountersObject *counters;     /* NULL: no statistics (timeout) */
    PyObject *func;
    PyObject *args;               /* positional then keyword values, or NULL */
    PyObject *kwnames;            /* NULL or tuple */
    Py_ssize_t nargs;

    PyObject *inner;              /* iterator of the running attempt */
    PyObject *loop;               /* set when timers are needed */
    PyObject *task;
    QueueObject *queue;           /* the loop's timer queue, when needed */
    Py_ssize_t heap_index;        /* in queue->heap; -1: no timer armed */
    double timer_when;            /* monotonic time the timer is due */
    PyObject *waiter;             /* the pause's future, if any */

    /* last_exception and total_tries live in the BackoffExecution when the
     * call belongs to one (17.x keeps them there), else here. */
    PyObject *own_last_exception;
    long long own_tries;
    PyObject **last_exception;
    long long *tries;

    double deadline_at;           /* monotonic; valid if has_deadline */
    double started;               /* monotonic start of the attempt */
    Py_ssize_t baseline;          /* task.cancelling() at the start */
    int state;
    int armed_kind;               /* what the armed timer stands for */
    int fired;                    /* which timer fired (not settled yet) */
    int has_deadline;
    int pause_hits_deadline;      /* the current pause ends at the deadline */
    int attempts_started;         /* in this call */
    int immediate_retries;        /* pause=0 retries in a row */
    int running;                  /* inside send/throw/close */
    /* the twin's coroutine name in "was never awaited" (NULL: __qualname__
     * of the function), for calls made by an execute()/__call__ method */
    const char *unawaited_name;
} CallObject;

/* With pause=0 the next attempt starts at once, but every YIELD_EVERY-th
 * retry in a row yields to the loop first (a function failing synchronously
 * forever must not starve the loop). */
#define YIELD_EVERY 16

/* `call` (passed through, may be NULL or not a Call) as the coroutine of
 * the twin's method `name` in its "was never awaited" warning. */
static PyObject *
call_named(backoff_state *st, PyObject *call, const char *name)
{
    if (call != NULL && Py_IS_TYPE(call, st->CallType)) {
        ((CallObject *)call)->unawaited_name = name;
    }
    return call;
}

static PyObject *
call_new(backoff_state *st, PyObject *owner, Policy *policy,
         CountersObject *counters, ExecutionObject *execution, PyObject *func,
         PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    CallObject *self = PyObject_GC_New(CallObject, st->CallType);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    self->unawaited_name = NULL;
    self->owner = Py_NewRef(owner);
    self->policy = policy;
    self->counters = (CountersObject *)Py_XNewRef((PyObject *)counters);
    self->func = Py_NewRef(func);
    self->args = NULL;
    self->kwnames = NULL;
    self->nargs = nargs;
    self->inner = self->loop = self->task = NULL;
    self->queue = NULL;
    self->heap_index = -1;
    self->timer_when = 0.0;
    self->waiter = NULL;
    self->own_last_exception = NULL;
    self->own_tries = 0;
    if (execution != NULL) {
        self->last_exception = &execution->last_exception;
        self->tries = &execution->total_tries;
    }
    else {
        self->last_exception = &self->own_last_exception;
        self->tries = &self->own_tries;
    }
    self->deadline_at = 0.0;
    self->started = 0.0;
    self->baseline = 0;
    self->state = S_INIT;
    self->armed_kind = self->fired = K_NONE;
    self->has_deadline = 0;
    self->pause_hits_deadline = 0;
    self->attempts_started = 0;
    self->immediate_retries = 0;
    self->running = 0;
    if (nargs + nkw > 0) {
        self->args = aio_args_tuple(NULL, args, nargs + nkw);
        if (self->args == NULL) {
            PyObject_GC_Track(self);
            Py_DECREF(self);
            return NULL;
        }
        self->kwnames = Py_XNewRef(nkw ? kwnames : NULL);
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

#endif /* AIOMISC_C_BACKOFF_CALL_H */
