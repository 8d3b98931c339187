/*
 * pool/module.c -> aiomisc_c._pool
 *
 * The C twin of aiomisc_c/_pool_py.py (read that file for the semantics):
 * `Acquisition`, what PoolBase.acquire() returns.  Only the hot path is in
 * C: entering pops the oldest idle instance and drives its
 * `_check_instance` coroutine inline; leaving gives the instance back.
 * Creating, waiting, recycling and closing stay in the shared Python code of
 * aiomisc_c/pool.py (PoolBase), which this module calls by attribute name.
 *
 * Threads: a pool belongs to one event loop; everything here runs in the
 * loop's thread with the GIL held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common/common.h"

/*
 * Layout: the multidict model, as the other extensions (see
 * circuit_breaker/module.c): this file is the only translation unit and
 * includes the units below, each of one concern, in dependency order, so
 * that everything stays `static` and the compiler sees the whole hot path.
 *
 *   types.h        module state, the object layouts, calling the pool
 *   enter.h        the awaitable of __aenter__ (drives the check inline)
 *   acquisition.h  Acquisition: construction, __aenter__, __aexit__
 *   module.c       module init
 */
#include "pool/types.h"
#include "pool/enter.h"
#include "pool/acquisition.h"

static int
pool_exec(PyObject *module)
{
    pool_state *st = pool_state_from_module(module);
    if (aio_intern(&st->str_free_slots, "_free_slots") < 0 ||
        aio_intern(&st->str_idle, "_idle") < 0 ||
        aio_intern(&st->str_used, "_used") < 0 ||
        aio_intern(&st->str_waiters, "_waiters") < 0 ||
        aio_intern(&st->str_recycle, "_recycle") < 0 ||
        aio_intern(&st->str_released, "_released") < 0 ||
        aio_intern(&st->str_check_instance, "_check_instance") < 0 ||
        aio_intern(&st->str_acquire, "_acquire") < 0 ||
        aio_intern(&st->str_check_failed, "_check_failed") < 0 ||
        aio_intern(&st->str_put_idle, "_put_idle") < 0 ||
        aio_intern(&st->str_recycle_instance, "_recycle_instance") < 0 ||
        aio_intern(&st->str_release_now, "_release_now") < 0 ||
        aio_intern(&st->str_hot, "_hot") < 0 ||
        aio_intern(&st->str_popleft, "popleft") < 0 ||
        aio_intern(&st->str_append, "append") < 0 ||
        aio_intern(&st->str_add, "add") < 0 ||
        aio_intern(&st->str_discard, "discard") < 0 ||
        aio_intern(&st->str_throw, "throw") < 0 ||
        aio_intern(&st->str_close, "close") < 0 ||
        aio_intern(&st->str_value, "value") < 0) {
        return -1;
    }
    if (aio_add_type(module, &st->acquisition_type, &acquisition_spec,
                     NULL) < 0 ||
        aio_add_type(module, &st->enter_type, &enter_spec, NULL) < 0) {
        return -1;
    }
    /* Acquisition(pool) skips the argument tuple (the type is final, so
     * no subclass needs the tp_new path) */
    st->acquisition_type->tp_vectorcall = acquisition_vectorcall;

    /* asyncio.iscoroutine() accepts the awaitable of __aenter__, as it
     * accepts the Python twin's coroutine (create_task needs it) */
    PyObject *coroutine_abc = aio_import_attr("collections.abc", "Coroutine");
    if (coroutine_abc == NULL) {
        return -1;
    }
    PyObject *registered = PyObject_CallMethod(coroutine_abc, "register", "O",
                                               st->enter_type);
    Py_DECREF(coroutine_abc);
    if (registered == NULL) {
        return -1;
    }
    Py_DECREF(registered);
    return 0;
}

static int
pool_traverse(PyObject *module, visitproc visit, void *arg)
{
    pool_state *st = pool_state_from_module(module);
#define VISIT(field) Py_VISIT(st->field);
    POOL_STATE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
pool_clear(PyObject *module)
{
    pool_state *st = pool_state_from_module(module);
#define CLEAR(field) Py_CLEAR(st->field);
    POOL_STATE_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
pool_free(void *module)
{
    (void)pool_clear((PyObject *)module);
}

static PyModuleDef_Slot pool_slots[] = {
    {Py_mod_exec, pool_exec},
    {0, NULL},
};

static PyModuleDef pool_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._pool",
    .m_doc = "The acquisition of aiomisc_c.pool.PoolBase, C twin of "
             "aiomisc_c._pool_py.",
    .m_size = sizeof(pool_state),
    .m_methods = NULL,
    .m_slots = pool_slots,
    .m_traverse = pool_traverse,
    .m_clear = pool_clear,
    .m_free = pool_free,
};

PyMODINIT_FUNC
PyInit__pool(void)
{
    return PyModuleDef_Init(&pool_module);
}
