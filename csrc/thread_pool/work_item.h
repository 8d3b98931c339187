/* thread_pool/work_item.h — work items: free list, resolving a future.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_WORK_ITEM_H
#define AIOMISC_C_THREAD_POOL_WORK_ITEM_H

/* ------------------------------------------------------------------------ */
/* Work items                                                                */

static work_item *
item_alloc(tp_state *st)
{
    work_item *it = st->free_items;
    if (it != NULL) {
        st->free_items = it->next;
        st->n_free_items--;
    }
    else {
        it = PyMem_Malloc(sizeof(work_item));
        if (it == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    memset(it, 0, sizeof(*it));
    return it;
}

/* Drop what the call needed; the item keeps future, channel and outcome. */
static void
item_clear_call(work_item *it)
{
    Py_CLEAR(it->fn);
    Py_CLEAR(it->args);
    Py_CLEAR(it->kwargs);
    Py_CLEAR(it->context);
}

/* GIL held.  Frees the item (to the module's free list when `st` is given,
 * else with PyMem_Free); decrefs may run arbitrary code, so the item is
 * detached first. */
static void
item_free(tp_state *st, work_item *it)
{
    work_item copy = *it;
    if (st != NULL && st->n_free_items < FREE_ITEMS_MAX) {
        it->next = st->free_items;
        st->free_items = it;
        st->n_free_items++;
    }
    else {
        PyMem_Free(it);
    }
    Py_XDECREF(copy.fn);
    Py_XDECREF(copy.args);
    Py_XDECREF(copy.kwargs);
    Py_XDECREF(copy.context);
    Py_XDECREF(copy.future);
    Py_XDECREF((PyObject *)copy.channel);
    Py_XDECREF(copy.outcome);
}

static void
item_list_free(tp_state *st, work_item *it)
{
    while (it != NULL) {
        work_item *next = it->next;
        item_free(st, it);
        it = next;
    }
}

static int
item_traverse(work_item *it, visitproc visit, void *arg)
{
    Py_VISIT(it->fn);
    Py_VISIT(it->args);
    Py_VISIT(it->kwargs);
    Py_VISIT(it->context);
    Py_VISIT(it->future);
    Py_VISIT((PyObject *)it->channel);
    Py_VISIT(it->outcome);
    return 0;
}

/* 1 if fut.done(), 0 if not, -1 on error. */
static int
future_is_done(tp_state *st, PyObject *future)
{
    PyObject *r = PyObject_VectorcallMethod(
        st->str_done, &future, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        return -1;
    }
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    return done;
}

/* GIL held: resolve the item's future with its outcome unless it is done
 * already.  0, or -1 with the error the future raised. */
static int
item_try_resolve(tp_state *st, work_item *it)
{
    int done = future_is_done(st, it->future);
    if (done == 0) {
        PyObject *stack[3] = {NULL, it->future, it->outcome};
        PyObject *r = PyObject_VectorcallMethod(
            it->failed ? st->str_set_exception : st->str_set_result, &stack[1],
            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return done < 0 ? -1 : 0;
}

/* Loop thread (or a forked child's only thread), GIL held: resolve the
 * item's future; an error is reported as unraisable. */
static void
item_resolve(tp_state *st, work_item *it)
{
    if (item_try_resolve(st, it) < 0) {
        PyErr_WriteUnraisable(it->future);
    }
}

#endif /* AIOMISC_C_THREAD_POOL_WORK_ITEM_H */
