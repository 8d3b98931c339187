/* loop/functions.h — the module functions create_default_event_loop
 * and new_event_loop.
 *
 * A unit of the aiomisc_c._loop translation unit: included once,
 * by loop/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_LOOP_FUNCTIONS_H
#define AIOMISC_C_LOOP_FUNCTIONS_H

/* ------------------------------------------------------------------ */
/* Module functions                                                    */

static const char *const create_names[] = {"pool_size", "policy", "debug"};

PyDoc_STRVAR(create_default_event_loop_doc,
"create_default_event_loop($module, /, pool_size=None, policy=...,\n"
"                          debug=False)\n"
"--\n"
"\n"
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
    return create_default_event_loop_impl(loop_state_from_module(module), argv[0],
                                          argv[1], argv[2]);
}

static const char *const new_loop_names[] = {"pool_size", "policy"};

PyDoc_STRVAR(new_event_loop_doc,
"new_event_loop($module, /, pool_size=None, policy=...)\n"
"--\n"
"\n"
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
    PyObject *pair = create_default_event_loop_impl(loop_state_from_module(module),
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

#endif /* AIOMISC_C_LOOP_FUNCTIONS_H */
