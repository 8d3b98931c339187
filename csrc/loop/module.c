/*
 * loop/module.c -> aiomisc_c._loop: event-loop setup behind utils.create_default_event_loop
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

/*
 * Layout: the multidict model, as the other folders of csrc/: this file is
 * the only translation unit and includes the units below (headers of
 * `static` functions, one concern each) in dependency order, so nothing but
 * PyInit__loop is exported and the build stays one object.  A unit may use
 * anything defined by the units included before it.
 *
 *   state.h      interned names and the module state
 *   helpers.h    argument parsing and small lookups
 *   setup.h      the steps of create_default_event_loop
 *   functions.h  the module functions (create_default_event_loop,
 *                new_event_loop)
 *   module.c     module state and multi-phase init
 */
#include "loop/state.h"
#include "loop/helpers.h"
#include "loop/setup.h"
#include "loop/functions.h"

/* ------------------------------------------------------------------ */
/* Module state and multi-phase init                                   */

static int
loop_traverse(PyObject *module, visitproc visit, void *arg)
{
    loop_state *st = loop_state_from_module(module);
#define VISIT(field) Py_VISIT(st->field);
#define VISIT_NAME(name) Py_VISIT(st->str_##name);
    LOOP_STATE_FIELDS(VISIT)
    LOOP_NAMES(VISIT_NAME)
#undef VISIT_NAME
#undef VISIT
    return 0;
}

static int
loop_clear(PyObject *module)
{
    loop_state *st = loop_state_from_module(module);
#define CLEAR(field) Py_CLEAR(st->field);
#define CLEAR_NAME(name) Py_CLEAR(st->str_##name);
    LOOP_STATE_FIELDS(CLEAR)
    LOOP_NAMES(CLEAR_NAME)
#undef CLEAR_NAME
#undef CLEAR
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
    loop_state *st = loop_state_from_module(module);

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

static PyModuleDef loop_module = {
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
