/* pool/types.h — module state and the object layouts.
 *
 * A unit of the aiomisc_c._pool translation unit: included once, by
 * pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_POOL_TYPES_H
#define AIOMISC_C_POOL_TYPES_H

typedef struct {
    PyTypeObject *acquisition_type;
    PyTypeObject *enter_type;

    /* attributes of the pool (aiomisc_c.pool.PoolBase) */
    PyObject *str_free_slots;       /* "_free_slots" */
    PyObject *str_idle;             /* "_idle" */
    PyObject *str_used;             /* "_used" */
    PyObject *str_waiters;          /* "_waiters" */
    PyObject *str_recycle;          /* "_recycle" */
    PyObject *str_released;         /* "_released" */
    PyObject *str_check_instance;   /* "_check_instance" */
    PyObject *str_acquire;          /* "_acquire" */
    PyObject *str_check_failed;     /* "_check_failed" */
    PyObject *str_put_idle;         /* "_put_idle" */
    PyObject *str_recycle_instance; /* "_recycle_instance" */
    PyObject *str_release_now;      /* "_release_now" */
    PyObject *str_hot;              /* "_hot" */
    /* methods of the containers and of the driven awaitables */
    PyObject *str_popleft;          /* "popleft" */
    PyObject *str_append;           /* "append" */
    PyObject *str_add;              /* "add" */
    PyObject *str_discard;          /* "discard" */
    PyObject *str_throw;            /* "throw" */
    PyObject *str_close;            /* "close" */
    PyObject *str_value;            /* "value" */
} pool_state;

/* Generates traverse/clear of the state. */
#define POOL_STATE_FIELDS(X)                                                  \
    X(acquisition_type) X(enter_type) X(str_free_slots) X(str_idle)           \
    X(str_used) X(str_waiters) X(str_recycle) X(str_released)                 \
    X(str_check_instance) X(str_acquire) X(str_check_failed)                  \
    X(str_put_idle) X(str_recycle_instance) X(str_release_now) X(str_hot)      \
    X(str_popleft) X(str_append) X(str_add) X(str_discard) X(str_throw)       \
    X(str_close) X(str_value)

static PyModuleDef pool_module;
AIO_DEFINE_STATE_ACCESSORS(pool_state, pool_module)

/* What PoolBase.acquire() returns. */
typedef struct {
    PyObject_HEAD
    pool_state *st;      /* module state; the type keeps it alive */
    PyObject *pool;
    PyObject *instance;  /* NULL until an __aenter__ succeeded */
} AcquisitionObject;

/* The stages of the awaitable __aenter__() returns. */
enum {
    EN_NEW = 0,      /* not awaited yet */
    EN_CHECK = 1,    /* driving pool._check_instance(instance) */
    EN_ACQUIRE = 2,  /* driving pool._acquire() */
    EN_DONE = 3,     /* finished, failed or closed */
};

typedef struct {
    PyObject_HEAD
    pool_state *st;
    AcquisitionObject *acquisition;
    PyObject *instance;  /* the instance being checked (EN_CHECK) */
    PyObject *hot;       /* pool._hot, while checking (EN_CHECK) */
    PyObject *inner;     /* the iterator being driven (EN_CHECK/EN_ACQUIRE) */
    int stage;
    int running;         /* a step (send/throw/close) is on the C stack */
} EnterObject;

/* pool._hot: the pool's objects that never change, read in one lookup
 * (see PoolBase.__init__), in this order. */
enum {
    HOT_IDLE,       /* deque of idle instances */
    HOT_POPLEFT,    /* its bound popleft */
    HOT_APPEND,     /* its bound append */
    HOT_USED,       /* set of instances in use */
    HOT_WAITERS,    /* deque of waiting acquirers' futures */
    HOT_RECYCLE,    /* the recycle setting (None or seconds) */
    HOT_RELEASED,   /* a finished future: what __aexit__ returns */
    HOT_COUNT
};

/* pool._hot (new reference), checked; NULL with an error. */
static inline PyObject *
pool_hot(pool_state *st, PyObject *pool)
{
    PyObject *hot = PyObject_GetAttr(pool, st->str_hot);
    if (hot == NULL) {
        return NULL;
    }
    if (!PyTuple_CheckExact(hot) || PyTuple_GET_SIZE(hot) != HOT_COUNT) {
        PyErr_Format(PyExc_TypeError,
                     "%.100s._hot must be a tuple of %d items",
                     Py_TYPE(pool)->tp_name, (int)HOT_COUNT);
        Py_DECREF(hot);
        return NULL;
    }
    return hot;
}

/* pool.<name>(*args): a method call without a bound-method object. */
static inline PyObject *
call_pool_method(PyObject *pool, PyObject *name, PyObject *arg)
{
    /* args[0] is free for the callee (PY_VECTORCALL_ARGUMENTS_OFFSET) */
    PyObject *args[3] = {NULL, pool, arg};
    return PyObject_VectorcallMethod(
        name, args + 1, (arg == NULL ? 1 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
}

/* Like call_pool_method, for a call whose result is not needed: 0 or -1. */
static inline int
call_pool_method_void(PyObject *pool, PyObject *name, PyObject *arg)
{
    PyObject *result = call_pool_method(pool, name, arg);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

#endif /* AIOMISC_C_POOL_TYPES_H */
