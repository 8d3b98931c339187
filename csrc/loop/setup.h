/* loop/setup.h — the steps of create_default_event_loop.
 *
 * A unit of the aiomisc_c._loop translation unit: included once,
 * by loop/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_LOOP_SETUP_H
#define AIOMISC_C_LOOP_SETUP_H

/* ------------------------------------------------------------------ */
/* The steps of create_default_event_loop                              */

/*
 * pool_size validated: None (new ref) or an exact int >= 0 (0 and None
 * both mean the pool's default size, as `pool_size or DEFAULT_POOL_SIZE`).
 */
static PyObject *
check_pool_size(loop_state *st, PyObject *pool_size)
{
    if (pool_size == NULL || pool_size == Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *size = PyNumber_Index(pool_size);
    if (size == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return NULL;
        }
        PyErr_Clear();
        PyObject *type_name = aio_type_name(Py_TYPE(pool_size));
        if (type_name != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "pool_size must be an int or None, not %R",
                         type_name);
            Py_DECREF(type_name);
        }
        return NULL;
    }
    int negative = PyObject_RichCompareBool(size, st->zero, Py_LT);
    if (negative != 0) {
        if (negative > 0) {
            PyErr_Format(PyExc_ValueError,
                         "pool_size must be >= 1 (0 or None for the default "
                         "size), got %R",
                         size);
        }
        Py_DECREF(size);
        return NULL;
    }
    return size;
}

/* isinstance(obj, asyncio.AbstractEventLoopPolicy) or obj is None: the check
   asyncio.set_event_loop_policy makes (with a mere assert on 3.10). */
static int
is_policy(loop_state *st, PyObject *obj)
{
    if (obj == Py_None) {
        return 1;
    }
    PyObject *abstract = PyObject_GetAttr(st->asyncio, st->str_AbstractEventLoopPolicy);
    if (abstract == NULL) {
        return -1;
    }
    int ok = PyObject_IsInstance(obj, abstract);
    Py_DECREF(abstract);
    return ok;
}

static void
raise_not_a_policy(PyObject *obj)
{
    PyObject *type_name = aio_type_name(Py_TYPE(obj));
    if (type_name != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "policy must be an instance of AbstractEventLoopPolicy "
                     "or None, not %R",
                     type_name);
        Py_DECREF(type_name);
    }
}

/*
 * The policy to install (new reference), as _resolve_policy + _check_policy
 * of the Python twin: when not given, or given as the Python twin's
 * DEFAULT_POLICY marker, the current aiomisc_c.compat.event_loop_policy.
 */
static PyObject *
resolve_policy(loop_state *st, PyObject *given)
{
    if (given != NULL) {
        int ok = is_policy(st, given);
        if (ok != 0) {
            return ok > 0 ? Py_NewRef(given) : NULL;
        }
        /* Only a non-policy can be the marker: look it up on this slow path. */
        PyObject *module = import_module(st->mod_loop_py);
        if (module == NULL) {
            return NULL;
        }
        PyObject *marker = PyObject_GetAttr(module, st->str_DEFAULT_POLICY);
        Py_DECREF(module);
        if (marker == NULL) {
            return NULL;
        }
        int is_marker = given == marker;
        Py_DECREF(marker);
        if (!is_marker) {
            raise_not_a_policy(given);
            return NULL;
        }
    }
    PyObject *compat = import_module(st->mod_compat);
    if (compat == NULL) {
        return NULL;
    }
    PyObject *policy = PyObject_GetAttr(compat, st->str_event_loop_policy);
    Py_DECREF(compat);
    if (policy == NULL) {
        return NULL;
    }
    int ok = is_policy(st, policy);
    if (ok <= 0) {
        if (ok == 0) {
            raise_not_a_policy(policy);
        }
        Py_DECREF(policy);
        return NULL;
    }
    return policy;
}

/*
 * Whether the thread's current loop exists and is running: 1, 0, or -1 with
 * an exception set.  Unlike asyncio.get_event_loop() this never creates a
 * loop (the default policy does so in the main thread, and the loop would
 * leak) and never warns.
 */
static int
current_loop_is_running(loop_state *st)
{
    int result = -1;
    PyObject *policy = NULL, *base = NULL, *type_get = NULL, *base_get = NULL;
    PyObject *local = NULL, *current = NULL, *running = NULL;
    int stock;

    running = PyObject_CallMethodNoArgs(st->asyncio, st->str__get_running_loop);
    if (running == NULL) {
        goto fail;
    }
    if (running != Py_None) {
        result = 1;
        goto done;
    }
    Py_CLEAR(running);

    policy = PyObject_CallMethodNoArgs(st->asyncio, st->str_get_event_loop_policy);
    if (policy == NULL) {
        goto fail;
    }
    base = PyObject_GetAttr(st->asyncio_events, st->str_BaseDefaultEventLoopPolicy);
    if (base == NULL) {
        goto fail;
    }
    stock = PyObject_IsInstance(policy, base);
    if (stock < 0) {
        goto fail;
    }
    if (stock) {
        type_get = PyObject_GetAttr((PyObject *)Py_TYPE(policy), st->str_get_event_loop);
        if (type_get == NULL) {
            goto fail;
        }
        base_get = PyObject_GetAttr(base, st->str_get_event_loop);
        if (base_get == NULL) {
            goto fail;
        }
        stock = type_get == base_get;
    }

    if (stock) {
        /* The stock lookup: peek at the thread-local slot it reads. */
        local = getattr_or_none(policy, st->str__local);
        if (local == NULL) {
            goto fail;
        }
        current = getattr_or_none(local, st->str__loop);
        if (current == NULL) {
            goto fail;
        }
    }
    else {
        current = PyObject_CallMethodNoArgs(policy, st->str_get_event_loop);
        if (current == NULL) {
            /* No current loop (DeprecationWarning: raised under -W error). */
            if (PyErr_ExceptionMatches(PyExc_RuntimeError) ||
                PyErr_ExceptionMatches(PyExc_DeprecationWarning)) {
                PyErr_Clear();
                result = 0;
                goto done;
            }
            goto fail;
        }
    }

    if (current == Py_None) {
        result = 0;
        goto done;
    }
    running = PyObject_CallMethodNoArgs(current, st->str_is_running);
    if (running == NULL) {
        goto fail;
    }
    result = PyObject_IsTrue(running);
    goto done;

fail:
    result = -1;
done:
    Py_XDECREF(policy);
    Py_XDECREF(base);
    Py_XDECREF(type_get);
    Py_XDECREF(base_get);
    Py_XDECREF(local);
    Py_XDECREF(current);
    Py_XDECREF(running);
    return result;
}

/* Undo a half-made setup.  Called with an exception set; errors raised here
   are dropped so the original one propagates. */
static void
discard_setup(loop_state *st, PyObject *loop, PyObject *pool)
{
    PyObject *error = aio_err_take();
    if (pool != NULL) {
        PyObject *args[2] = {pool, Py_False};
        PyObject *res = PyObject_VectorcallMethod(
            st->str_shutdown, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            st->kw_wait);
        if (res == NULL) {
            PyErr_Clear();
        }
        Py_XDECREF(res);
    }
    PyObject *res = PyObject_CallMethodNoArgs(loop, st->str_close);
    if (res == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(res);
    aio_err_restore(error);
}

/* The loop's default executor: ThreadPoolExecutor(size or DEFAULT_POOL_SIZE,
   statistic_name="default").  `size` is borrowed. */
static PyObject *
make_pool(loop_state *st, PyObject *size)
{
    PyObject *pool = NULL, *pool_class = NULL, *module = NULL;
    int given;

    module = import_module(st->mod_thread_pool);
    if (module == NULL) {
        goto done;
    }
    pool_class = PyObject_GetAttr(module, st->str_ThreadPoolExecutor);
    if (pool_class == NULL) {
        goto done;
    }
    given = PyObject_IsTrue(size);
    if (given < 0) {
        goto done;
    }
    if (given) {
        Py_INCREF(size);
    }
    else {
        size = PyObject_GetAttr(pool_class, st->str_DEFAULT_POOL_SIZE);
        if (size == NULL) {
            goto done;
        }
    }
    /* args[0] is scratch space for the callee (ARGUMENTS_OFFSET). */
    PyObject *args[3] = {NULL, size, st->str_default};
    pool = PyObject_Vectorcall(pool_class, args + 1,
                               1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                               st->kw_statistic_name);
    Py_DECREF(size);
done:
    Py_XDECREF(module);
    Py_XDECREF(pool_class);
    return pool;
}

/* Returns a new (loop, pool) tuple.  `given_policy`, `debug` may be NULL
   (not given); all arguments are borrowed. */
static PyObject *
create_default_event_loop_impl(loop_state *st, PyObject *pool_size,
                               PyObject *given_policy, PyObject *debug)
{
    PyObject *size = NULL, *policy = NULL, *loop = NULL, *pool = NULL;
    PyObject *res = NULL, *result = NULL;
    int running;

    size = check_pool_size(st, pool_size);
    if (size == NULL) {
        return NULL;
    }
    policy = resolve_policy(st, given_policy);
    if (policy == NULL) {
        goto done;
    }

    running = current_loop_is_running(st);
    if (running != 0) {
        if (running > 0) {
            PyErr_SetString(PyExc_RuntimeError, RUNNING_LOOP_MESSAGE);
        }
        goto done;
    }

    /* Process-wide: 17.x sets the policy, then asks asyncio for a loop. */
    res = PyObject_CallMethodOneArg(st->asyncio, st->str_set_event_loop_policy,
                                    policy);
    if (res == NULL) {
        goto done;
    }
    Py_CLEAR(res);
    loop = PyObject_CallMethodNoArgs(st->asyncio, st->str_new_event_loop);
    if (loop == NULL) {
        goto done;
    }

    /* From here on a failure closes the new loop (and the pool). */
    res = PyObject_CallMethodOneArg(loop, st->str_set_debug,
                                    debug != NULL ? debug : Py_False);
    if (res == NULL) {
        goto discard;
    }
    Py_CLEAR(res);
    pool = make_pool(st, size);
    if (pool == NULL) {
        goto discard;
    }
    res = PyObject_CallMethodOneArg(loop, st->str_set_default_executor, pool);
    if (res == NULL) {
        goto discard;
    }
    Py_CLEAR(res);
    /* Made current last, so a failure above leaves the current loop as is. */
    res = PyObject_CallMethodOneArg(st->asyncio, st->str_set_event_loop, loop);
    if (res == NULL) {
        goto discard;
    }
    Py_CLEAR(res);

    result = PyTuple_Pack(2, loop, pool);
    goto done;

discard:
    discard_setup(st, loop, pool);
done:
    Py_XDECREF(size);
    Py_XDECREF(policy);
    Py_XDECREF(loop);
    Py_XDECREF(pool);
    Py_XDECREF(res);
    return result;
}

#endif /* AIOMISC_C_LOOP_SETUP_H */
