/* thread_pool/threaded_dispatch.h — which executor runs a threaded call.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_THREADED_DISPATCH_H
#define AIOMISC_C_THREAD_POOL_THREADED_DISPATCH_H

/* ------------------------------------------------------------------------ */
/* Threaded / BoundThreaded                                                  */

/* No running loop: return _thread_pool_base.run_in_executor(func,
 * args=(prefix, *args), kwargs=kwargs) — a coroutine. */
static PyObject *
threaded_run_in_executor(tp_state *st, PyObject *func, PyObject *prefix,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    if (st->run_in_executor == NULL) {
        /* Imported lazily: _thread_pool_base imports this module's users. */
        st->run_in_executor =
            aio_import_attr("aiomisc_c._thread_pool_base", "run_in_executor");
        if (st->run_in_executor == NULL) {
            return NULL;
        }
    }
    PyObject *tuple = aio_args_tuple(prefix, args, nargs);
    if (tuple == NULL) {
        return NULL;
    }
    PyObject *kwargs = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kwargs = aio_kwargs_dict(args, nargs, kwnames);
        if (kwargs == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
    }
    PyObject *stack[4] = {NULL, func, tuple, kwargs};
    PyObject *result = PyObject_Vectorcall(
        st->run_in_executor, &stack[1], 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        kwargs != NULL ? st->kwnames_args_kwargs : st->kwnames_args);
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* A running loop whose default executor is not one of ours. */
static PyObject *
threaded_via_loop(tp_state *st, PyObject *loop, int use_partial,
                  PyObject *func, PyObject *prefix, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *callable = NULL;
    PyObject *call_args = NULL;
    if (use_partial || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        /* loop.run_in_executor(None, partial(func, prefix, *a, **kw)) */
        PyObject *tuple = aio_args_tuple(func, args, nargs);
        if (tuple == NULL) {
            return NULL;
        }
        if (prefix != NULL) {
            /* (func, prefix, *args) */
            PyObject *with_prefix = PyTuple_New(nargs + 2);
            if (with_prefix == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            PyTuple_SET_ITEM(with_prefix, 0, Py_NewRef(func));
            PyTuple_SET_ITEM(with_prefix, 1, Py_NewRef(prefix));
            for (Py_ssize_t i = 0; i < nargs; i++) {
                PyTuple_SET_ITEM(with_prefix, i + 2, Py_NewRef(args[i]));
            }
            Py_SETREF(tuple, with_prefix);
        }
        PyObject *kwargs = aio_kwargs_dict(args, nargs, kwnames);
        if (kwargs == NULL && PyErr_Occurred()) {
            Py_DECREF(tuple);
            return NULL;
        }
        callable = PyObject_Call(st->partial, tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        if (callable == NULL) {
            return NULL;
        }
        call_args = PyTuple_Pack(2, Py_None, callable);
        Py_DECREF(callable);
    }
    else {
        /* loop.run_in_executor(None, func, [prefix,] *args) (uvloop) */
        PyObject *small[8];
        Py_ssize_t shift = prefix != NULL ? 4 : 3;
        Py_ssize_t n = nargs + shift;
        PyObject **stack = small;
        if (n > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
            stack = PyMem_Malloc((size_t)n * sizeof(PyObject *));
            if (stack == NULL) {
                return PyErr_NoMemory();
            }
        }
        stack[0] = loop;
        stack[1] = Py_None;
        stack[2] = func;
        if (prefix != NULL) {
            stack[3] = prefix;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            stack[i + shift] = args[i];
        }
        PyObject *result = PyObject_VectorcallMethod(
            st->str_run_in_executor, stack, (size_t)n, NULL);
        if (stack != small) {
            PyMem_Free(stack);
        }
        return result;
    }
    if (call_args == NULL) {
        return NULL;
    }
    PyObject *method = PyObject_GetAttr(loop, st->str_run_in_executor);
    PyObject *result = NULL;
    if (method != NULL) {
        result = PyObject_Call(method, call_args, NULL);
        Py_DECREF(method);
    }
    Py_DECREF(call_args);
    return result;
}

typedef struct {
    PyTypeObject *shell_type;
    PyObject *found; /* borrowed */
} find_shell_arg;

static int
find_shell_visit(PyObject *obj, void *arg)
{
    find_shell_arg *find = (find_shell_arg *)arg;
    if (PyObject_TypeCheck(obj, find->shell_type)) {
        find->found = obj;
        return 1;
    }
    return 0;
}

/* _thread_pool_base.ThreadPoolExecutorBase (borrowed), imported on first
 * use; NULL without an exception if it cannot be. */
static PyTypeObject *
shell_type(tp_state *st)
{
    if (st->shell_type == NULL) {
        st->shell_type = aio_import_attr("aiomisc_c._thread_pool_base",
                                         "ThreadPoolExecutorBase");
        if (st->shell_type == NULL || !PyType_Check(st->shell_type)) {
            Py_CLEAR(st->shell_type);
            PyErr_Clear();
            return NULL;
        }
    }
    return (PyTypeObject *)st->shell_type;
}

/* A loop that hides its default executor (uvloop): the pool of ours among
 * the loop's own fields (only the default executor can be one), borrowed;
 * NULL without an exception when there is none. */
static PyObject *
hidden_default_shell(tp_state *st, PyObject *loop)
{
    traverseproc traverse = Py_TYPE(loop)->tp_traverse;
    if (traverse == NULL) {
        return NULL;
    }
    PyTypeObject *type = shell_type(st);
    if (type == NULL) {
        return NULL;
    }
    find_shell_arg find = {type, NULL};
    (void)traverse(loop, find_shell_visit, &find);
    return find.found;
}

/* The C core of hidden_default_shell(), as a new reference; NULL without an
 * exception when there is none (or it is shut down: the loop then reports
 * that itself). */
static PyObject *
hidden_default_core(tp_state *st, PyObject *loop)
{
    /* A fast path (it reads the loop's C fields through tp_traverse): with
     * fast paths off the call goes through loop.run_in_executor. */
    if (!aio_fast_paths_on()) {
        return NULL;
    }
    PyObject *shell = hidden_default_shell(st, loop);
    if (shell == NULL) {
        return NULL;
    }
    PyObject *core = NULL;
    if (aio_getattr_optional(shell, st->str_core, &core) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (core == NULL || !Py_IS_TYPE(core, st->executor_type) ||
        atomic_load_explicit(&((ExecutorObject *)core)->shutdown,
                             memory_order_relaxed)) {
        Py_XDECREF(core);
        return NULL;
    }
    return core;
}

/* getattr(loop, "_default_executor") (new reference in *executor; 1 found,
 * 0 not, -1 error).  A loop type that cannot have it (no instance dict and
 * no such attribute: uvloop) is remembered and skipped next time, unless
 * the fast paths are off. */
static int
loop_shows_default_executor(tp_state *st, PyObject *loop,
                            PyObject **executor)
{
    *executor = NULL;
    int fast = aio_fast_paths_on();
    if (fast && (PyObject *)Py_TYPE(loop) == st->loop_type_without_executor) {
        return 0;
    }
    int found = aio_getattr_optional(loop, st->str_default_executor, executor);
    if (fast && found == 0 && Py_TYPE(loop)->tp_dictoffset == 0) {
        /* No instance dict: no instance of this type will ever have it. */
        Py_XSETREF(st->loop_type_without_executor,
                   Py_NewRef((PyObject *)Py_TYPE(loop)));
    }
    return found;
}

/* default_pool(loop): the loop's default executor when it is one of the
 * package's pools, else None (shut down or not: its submit says so).  Read
 * on every call, nothing cached (like the threaded calls), so
 * loop.set_default_executor() takes effect at once.  Not a fast path: the
 * Python twin finds a hidden pool the same way (gc.get_referents). */
static PyObject *
module_default_pool(PyObject *module, PyObject *loop)
{
    tp_state *st = tp_state_from_module(module);
    PyObject *executor = NULL;
    int shown = loop_shows_default_executor(st, loop, &executor);
    if (shown < 0) {
        return NULL;
    }
    if (shown) {
        PyTypeObject *type = shell_type(st);
        if (type != NULL && PyObject_TypeCheck(executor, type)) {
            return executor;
        }
        Py_DECREF(executor);
        Py_RETURN_NONE;
    }
    PyObject *shell = hidden_default_shell(st, loop);
    return Py_NewRef(shell != NULL ? shell : Py_None);
}

/* The hot path of `await threaded_fn(...)`. */
static PyObject *
threaded_async_call_impl(tp_state *st, PyObject *func, PyObject *prefix,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *loop = aio_running_loop(st->get_running_loop);
    if (loop == NULL) {
        return NULL;
    }
    if (loop == Py_None) {
        Py_DECREF(loop);
        return threaded_run_in_executor(st, func, prefix, args, nargs,
                                        kwnames);
    }
    PyObject *result = NULL;
    PyObject *executor = NULL;
    int has_executor_attr = loop_shows_default_executor(st, loop, &executor);
    if (has_executor_attr < 0) {
        goto done;
    }
    if (executor != NULL && executor != Py_None) {
        PyObject *core = NULL;
        if (aio_getattr_optional(executor, st->str_core, &core) < 0) {
            goto done;
        }
        if (core != NULL && Py_IS_TYPE(core, st->executor_type)) {
            result = executor_submit_impl((ExecutorObject *)core, st, loop,
                                          func, prefix, args, nargs, kwnames);
            Py_DECREF(core);
            goto done;
        }
        Py_XDECREF(core);
    }
    if (has_executor_attr) {
        result =
            threaded_via_loop(st, loop, 1, func, prefix, args, nargs, kwnames);
        goto done;
    }
    /* No visible default executor (uvloop): look it up every time, so
     * that loop.set_default_executor() takes effect at once. */
    PyObject *core = hidden_default_core(st, loop);
    if (core != NULL) {
        result = executor_submit_impl((ExecutorObject *)core, st, loop, func,
                                      prefix, args, nargs, kwnames);
        Py_DECREF(core);
        goto done;
    }
    result =
        threaded_via_loop(st, loop, 0, func, prefix, args, nargs, kwnames);
done:
    Py_XDECREF(executor);
    Py_DECREF(loop);
    return result;
}

#endif /* AIOMISC_C_THREAD_POOL_THREADED_DISPATCH_H */
