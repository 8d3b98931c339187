/*
 * aiomisc_c._loop: event-loop setup behind utils.create_default_event_loop
 * and utils.new_event_loop.  The Python twin aiomisc_c/_loop_py.py is the
 * readable source of truth; this file does exactly the same calls in the same
 * order, so both twins are observably identical (results, exception types and
 * messages, side effects on the asyncio policy and the current loop).
 *
 * Everything that tests or users may patch is looked up at call time:
 *   - the asyncio functions, as attributes of the asyncio module;
 *   - the default policy, aiomisc_c.compat.event_loop_policy;
 *   - the executor class, aiomisc_c.thread_pool.ThreadPoolExecutor (the twin
 *     switch rebinds it at run time).
 * The module state only keeps modules, interned names and constant tuples.
 *
 * All functions run with the GIL held; nothing here touches other threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common/common.h"

/* Interned attribute names, one field `str_<name>` each. */
#define LOOP_NAMES(X)              \
    X(_get_running_loop)           \
    X(get_event_loop_policy)       \
    X(set_event_loop_policy)       \
    X(new_event_loop)              \
    X(set_event_loop)              \
    X(BaseDefaultEventLoopPolicy)  \
    X(get_event_loop)              \
    X(_local)                      \
    X(_loop)                       \
    X(is_running)                  \
    X(set_debug)                   \
    X(set_default_executor)        \
    X(shutdown)                    \
    X(close)                       \
    X(event_loop_policy)           \
    X(ThreadPoolExecutor)          \
    X(DEFAULT_POOL_SIZE)           \
    X(AbstractEventLoopPolicy)     \
    X(DEFAULT_POLICY)

typedef struct {
    PyObject *asyncio;        /* the asyncio module */
    PyObject *asyncio_events; /* the asyncio.events module */
    PyObject *mod_compat;     /* "aiomisc_c.compat" (a name, imported lazily) */
    PyObject *mod_thread_pool; /* "aiomisc_c.thread_pool" (likewise) */
    PyObject *mod_loop_py;    /* "aiomisc_c._loop_py" (likewise) */
    PyObject *str_default;    /* "default": the pool's statistic name */
    PyObject *kw_statistic_name; /* ("statistic_name",) */
    PyObject *kw_wait;        /* ("wait",) */
    PyObject *zero;           /* 0 */
#define LOOP_FIELD(name) PyObject *str_##name;
    LOOP_NAMES(LOOP_FIELD)
#undef LOOP_FIELD
} loop_state;

static inline loop_state *
get_loop_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (loop_state *)state;
}

static const char RUNNING_LOOP_MESSAGE[] =
    "Trying to create new event loop instance but another "
    "default loop in this thread is running right now.";

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/*
 * Parse positional-or-keyword arguments of a METH_FASTCALL | METH_KEYWORDS
 * function into out[0..nnames): borrowed references, NULL when not given.
 * Error messages are the ones CPython gives for a Python function, so both
 * twins fail the same way (hence not aio_parse_fastcall from common/args.h,
 * whose messages differ).
 */
static int
parse_fastcall(const char *fname, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames, const char *const *names, Py_ssize_t nnames,
               PyObject **out)
{
    for (Py_ssize_t i = 0; i < nnames; i++) {
        out[i] = NULL;
    }
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 0 to %zd positional arguments "
                     "but %zd were given",
                     fname, nnames, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t slot = -1;
        for (Py_ssize_t j = 0; j < nnames; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                slot = j;
                break;
            }
        }
        if (slot < 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         fname, key);
            return -1;
        }
        if (out[slot] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         fname, names[slot]);
            return -1;
        }
        out[slot] = args[nargs + k];
    }
    return 0;
}

/* getattr(obj, name, None): new reference, NULL only on errors other than
   AttributeError. */
static PyObject *
getattr_or_none(PyObject *obj, PyObject *name)
{
    PyObject *value;
    if (aio_getattr_optional(obj, name, &value) == 0) {
        Py_RETURN_NONE;
    }
    return value;
}

/* sys.modules[name] if present, else import it.  New reference. */
static PyObject *
import_module(PyObject *name)
{
    PyObject *module = PyImport_GetModule(name);
    if (module != NULL || PyErr_Occurred()) {
        return module;
    }
    return PyImport_Import(name);
}

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

/* ------------------------------------------------------------------ */
/* Module functions                                                    */

static const char *const create_names[] = {"pool_size", "policy", "debug"};

PyDoc_STRVAR(create_default_event_loop_doc,
"create_default_event_loop(pool_size=None, policy=<compat.event_loop_policy>, debug=False)\n"
"\n"
"Create an event loop and a thread pool executor; returns (loop, pool).\n"
"\n"
"Raises RuntimeError when the thread's current loop is running.  Installs\n"
"`policy` process-wide, makes the new loop current and installs\n"
"ThreadPoolExecutor(pool_size or DEFAULT_POOL_SIZE, statistic_name=\"default\")\n"
"as its default executor.");

static PyObject *
create_default_event_loop(PyObject *module, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[3];
    if (parse_fastcall("create_default_event_loop", args, nargs, kwnames,
                       create_names, 3, argv) < 0) {
        return NULL;
    }
    return create_default_event_loop_impl(get_loop_state(module), argv[0],
                                          argv[1], argv[2]);
}

static const char *const new_loop_names[] = {"pool_size", "policy"};

PyDoc_STRVAR(new_event_loop_doc,
"new_event_loop(pool_size=None, policy=<compat.event_loop_policy>)\n"
"\n"
"create_default_event_loop(pool_size, policy)[0]: a new current loop whose\n"
"default executor is the package's ThreadPoolExecutor.");

static PyObject *
new_event_loop(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    PyObject *argv[2];
    if (parse_fastcall("new_event_loop", args, nargs, kwnames, new_loop_names,
                       2, argv) < 0) {
        return NULL;
    }
    PyObject *pair = create_default_event_loop_impl(get_loop_state(module),
                                                    argv[0], argv[1], NULL);
    if (pair == NULL) {
        return NULL;
    }
    PyObject *loop = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    Py_DECREF(pair);
    return loop;
}

static PyMethodDef loop_methods[] = {
    {"create_default_event_loop", (PyCFunction)(void (*)(void))create_default_event_loop,
     METH_FASTCALL | METH_KEYWORDS, create_default_event_loop_doc},
    {"new_event_loop", (PyCFunction)(void (*)(void))new_event_loop,
     METH_FASTCALL | METH_KEYWORDS, new_event_loop_doc},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Module state and multi-phase init                                   */

static int
loop_traverse(PyObject *module, visitproc visit, void *arg)
{
    loop_state *st = get_loop_state(module);
    Py_VISIT(st->asyncio);
    Py_VISIT(st->asyncio_events);
    Py_VISIT(st->mod_compat);
    Py_VISIT(st->mod_thread_pool);
    Py_VISIT(st->mod_loop_py);
    Py_VISIT(st->str_default);
    Py_VISIT(st->kw_statistic_name);
    Py_VISIT(st->kw_wait);
    Py_VISIT(st->zero);
#define LOOP_VISIT(name) Py_VISIT(st->str_##name);
    LOOP_NAMES(LOOP_VISIT)
#undef LOOP_VISIT
    return 0;
}

static int
loop_clear(PyObject *module)
{
    loop_state *st = get_loop_state(module);
    Py_CLEAR(st->asyncio);
    Py_CLEAR(st->asyncio_events);
    Py_CLEAR(st->mod_compat);
    Py_CLEAR(st->mod_thread_pool);
    Py_CLEAR(st->mod_loop_py);
    Py_CLEAR(st->str_default);
    Py_CLEAR(st->kw_statistic_name);
    Py_CLEAR(st->kw_wait);
    Py_CLEAR(st->zero);
#define LOOP_CLEAR(name) Py_CLEAR(st->str_##name);
    LOOP_NAMES(LOOP_CLEAR)
#undef LOOP_CLEAR
    return 0;
}

static void
loop_free(void *module)
{
    (void)loop_clear((PyObject *)module);
}

static int
loop_exec(PyObject *module)
{
    loop_state *st = get_loop_state(module);

#define LOOP_INTERN(name)                                \
    st->str_##name = PyUnicode_InternFromString(#name); \
    if (st->str_##name == NULL) {                        \
        return -1;                                       \
    }
    LOOP_NAMES(LOOP_INTERN)
#undef LOOP_INTERN

    st->asyncio = PyImport_ImportModule("asyncio");
    if (st->asyncio == NULL) {
        return -1;
    }
    st->asyncio_events = PyImport_ImportModule("asyncio.events");
    if (st->asyncio_events == NULL) {
        return -1;
    }
    st->mod_compat = PyUnicode_InternFromString("aiomisc_c.compat");
    if (st->mod_compat == NULL) {
        return -1;
    }
    st->mod_thread_pool = PyUnicode_InternFromString("aiomisc_c.thread_pool");
    if (st->mod_thread_pool == NULL) {
        return -1;
    }
    st->mod_loop_py = PyUnicode_InternFromString("aiomisc_c._loop_py");
    if (st->mod_loop_py == NULL) {
        return -1;
    }
    st->str_default = PyUnicode_InternFromString("default");
    if (st->str_default == NULL) {
        return -1;
    }
    st->kw_statistic_name = Py_BuildValue("(s)", "statistic_name");
    if (st->kw_statistic_name == NULL) {
        return -1;
    }
    st->kw_wait = Py_BuildValue("(s)", "wait");
    if (st->kw_wait == NULL) {
        return -1;
    }
    st->zero = PyLong_FromLong(0);
    if (st->zero == NULL) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot loop_slots[] = {
    {Py_mod_exec, (void *)loop_exec},
    /* Sub-interpreter support is not declared: it is untested, and the
     * thread pool this module installs is not declared either. */
    {0, NULL},
};

PyDoc_STRVAR(loop_module_doc,
"C twin of aiomisc_c._loop_py: event-loop setup for aiomisc_c.utils.");

static struct PyModuleDef loop_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "aiomisc_c._loop",
    .m_doc = loop_module_doc,
    .m_size = sizeof(loop_state),
    .m_methods = loop_methods,
    .m_slots = loop_slots,
    .m_traverse = loop_traverse,
    .m_clear = loop_clear,
    .m_free = loop_free,
};

PyMODINIT_FUNC
PyInit__loop(void)
{
    return PyModuleDef_Init(&loop_module);
}
