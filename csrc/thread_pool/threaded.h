/* thread_pool/threaded.h — the Threaded and BoundThreaded types.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_THREADED_H
#define AIOMISC_C_THREAD_POOL_THREADED_H

static int
threaded_has_instance_override(ThreadedObject *self, tp_state *st)
{
    if (self->dict == NULL || PyDict_GET_SIZE(self->dict) == 0) {
        return 0;
    }
    PyObject *v = PyDict_GetItemWithError(self->dict, st->str_async_call);
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return 1;
}

/* Strong references to what a call uses (func and instance are writable,
 * so user code could replace them during the call).  -1 if one is unset. */
static int
threaded_take_target(ThreadedObject *self, PyObject **func,
                     PyObject **instance)
{
    *func = Py_XNewRef(self->func);
    *instance = Py_XNewRef(self->instance);
    if (*func != NULL && (*instance != NULL || !self->bound)) {
        return 0;
    }
    PyErr_SetString(PyExc_AttributeError, *func == NULL ? "func" : "instance");
    Py_CLEAR(*func);
    Py_CLEAR(*instance);
    return -1;
}

static PyObject *
threaded_call_async(ThreadedObject *self, tp_state *st, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *func, *instance;
    if (threaded_take_target(self, &func, &instance) < 0) {
        return NULL;
    }
    PyObject *r =
        threaded_async_call_impl(st, func, instance, args, nargs, kwnames);
    Py_DECREF(func);
    Py_XDECREF(instance);
    return r;
}

/* __call__: async_call, looked up normally for subclasses (and instances
 * that override it). */
static PyObject *
threaded_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames)
{
    ThreadedObject *self = (ThreadedObject *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    int override = 0;
    if (Py_TYPE(op) == st->threaded_type ||
        Py_TYPE(op) == st->bound_threaded_type) {
        override = threaded_has_instance_override(self, st);
        if (override < 0) {
            return NULL;
        }
    }
    else {
        override = 1;
    }
    if (override) {
        PyObject *method = PyObject_GetAttr(op, st->str_async_call);
        if (method == NULL) {
            return NULL;
        }
        PyObject *r = PyObject_Vectorcall(method, args, nargsf, kwnames);
        Py_DECREF(method);
        return r;
    }
    return threaded_call_async(self, st, args, PyVectorcall_NARGS(nargsf),
                               kwnames);
}

static PyObject *
threaded_async_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    ThreadedObject *self = (ThreadedObject *)op;
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    return threaded_call_async(self, st, args, nargs, kwnames);
}

static PyObject *
threaded_sync_call(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *func, *instance;
    if (threaded_take_target((ThreadedObject *)op, &func, &instance) < 0) {
        return NULL;
    }
    PyObject *r =
        instance != NULL
            ? aio_call_prepend(func, instance, args, (size_t)nargs, kwnames)
            : PyObject_Vectorcall(func, args, (size_t)nargs, kwnames);
    Py_DECREF(func);
    Py_XDECREF(instance);
    return r;
}

static PyObject *
threaded_alloc(PyTypeObject *type, int bound)
{
    ThreadedObject *self = (ThreadedObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = threaded_vectorcall;
        self->bound = bound;
    }
    return (PyObject *)self;
}

static PyObject *
threaded_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
             PyObject *Py_UNUSED(kwargs))
{
    return threaded_alloc(type, 0);
}

static PyObject *
bound_threaded_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                   PyObject *Py_UNUSED(kwargs))
{
    return threaded_alloc(type, 1);
}

/* 1 if func is a coroutine function by inspect's or asyncio's rules. */
static int
is_coroutine_function(tp_state *st, PyObject *func)
{
    PyObject *r = PyObject_CallOneArg(st->iscoroutinefunction, func);
    if (r == NULL) {
        return -1;
    }
    int yes = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (yes != 0 || st->is_coroutine_marker == Py_None) {
        return yes;
    }
    /* asyncio.iscoroutinefunction also honours the `_is_coroutine` marker
     * (unittest.mock.AsyncMock on 3.11 and older). */
    PyObject *marker = NULL;
    if (aio_getattr_optional(func, st->str_is_coroutine, &marker) < 0) {
        PyErr_Clear();
        return 0;
    }
    yes = marker != NULL && marker == st->is_coroutine_marker;
    Py_XDECREF(marker);
    return yes;
}

static int
threaded_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {"func"};
    ThreadedObject *self = (ThreadedObject *)op;
    PyObject *arg;
    if (aio_parse_tuple_dict("Threaded", args, kwargs, names, 1, 1, 1, &arg) <
        0) {
        return -1;
    }
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return -1;
    }
    PyObject *func, *func_type;
    if (PyObject_TypeCheck(arg, &PyStaticMethod_Type) ||
        PyObject_TypeCheck(arg, &PyClassMethod_Type)) {
        func_type = PyObject_TypeCheck(arg, &PyStaticMethod_Type)
                        ? (PyObject *)&PyStaticMethod_Type
                        : (PyObject *)&PyClassMethod_Type;
        func = PyObject_GetAttrString(arg, "__func__");
        if (func == NULL) {
            return -1;
        }
    }
    else {
        func_type = (PyObject *)Py_TYPE(arg);
        func = Py_NewRef(arg);
    }
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "Can not wrap non-callable object %R",
                     func);
        goto fail;
    }
    int r = is_coroutine_function(st, func);
    if (r != 0) {
        if (r > 0) {
            PyErr_SetString(PyExc_TypeError, "Can not wrap coroutine");
        }
        goto fail;
    }
    PyObject *gen = PyObject_CallOneArg(st->isgeneratorfunction, func);
    r = gen == NULL ? -1 : PyObject_IsTrue(gen);
    Py_XDECREF(gen);
    if (r != 0) {
        if (r > 0) {
            PyErr_SetString(PyExc_TypeError,
                            "Can not wrap generator function");
        }
        goto fail;
    }
    Py_XSETREF(self->func, func);
    Py_XSETREF(self->func_type, Py_NewRef(func_type));
    return 0;

fail:
    Py_DECREF(func);
    return -1;
}

static PyObject *
bound_threaded_create(tp_state *st, PyObject *func, PyObject *func_type,
                      PyObject *instance)
{
    ThreadedObject *bound =
        (ThreadedObject *)threaded_alloc(st->bound_threaded_type, 1);
    if (bound == NULL) {
        return NULL;
    }
    bound->func = Py_NewRef(func);
    bound->func_type = Py_XNewRef(func_type);
    bound->instance = Py_NewRef(instance);
    return (PyObject *)bound;
}

static int
bound_threaded_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static const char *const names[] = {"func", "instance"};
    ThreadedObject *self = (ThreadedObject *)op;
    PyObject *values[2];
    if (aio_parse_tuple_dict("BoundThreaded", args, kwargs, names, 2, 2, 2,
                             values) < 0) {
        return -1;
    }
    if (!PyCallable_Check(values[0])) {
        PyErr_Format(PyExc_TypeError, "Can not wrap non-callable object %R",
                     values[0]);
        return -1;
    }
    Py_XSETREF(self->func, Py_NewRef(values[0]));
    Py_XSETREF(self->func_type, Py_NewRef((PyObject *)Py_TYPE(values[0])));
    Py_XSETREF(self->instance, Py_NewRef(values[1]));
    return 0;
}

/* Threaded.__get__ */
static PyObject *
threaded_descr_get(PyObject *op, PyObject *instance, PyObject *owner)
{
    ThreadedObject *self = (ThreadedObject *)op;
    if (self->func == NULL ||
        self->func_type == (PyObject *)&PyStaticMethod_Type) {
        return Py_NewRef(op);
    }
    tp_state *st = tp_state_from_object(op);
    if (st == NULL) {
        return NULL;
    }
    if (self->func_type == (PyObject *)&PyClassMethod_Type) {
        PyObject *cls = owner;
        if (cls == NULL || cls == Py_None) {
            cls = (PyObject *)Py_TYPE(instance);
        }
        return bound_threaded_create(st, self->func, self->func_type, cls);
    }
    if (instance == NULL || instance == Py_None) {
        return Py_NewRef(op);
    }
    return bound_threaded_create(st, self->func, self->func_type, instance);
}

/* __name__, __qualname__, __doc__, __module__, __wrapped__: the instance's
 * own value (functools.update_wrapper) or else the wrapped function's. */
static int
is_wrapper_attr(PyObject *name)
{
    if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) < 7 ||
        PyUnicode_READ_CHAR(name, 0) != '_' ||
        PyUnicode_READ_CHAR(name, 1) != '_') {
        return 0;
    }
    static const char *const attrs[] = {
        "__name__", "__qualname__", "__doc__", "__module__", "__wrapped__",
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        if (PyUnicode_CompareWithASCIIString(name, attrs[i]) == 0) {
            return (int)i + 1;
        }
    }
    return 0;
}

static PyObject *
threaded_getattro(PyObject *op, PyObject *name)
{
    ThreadedObject *self = (ThreadedObject *)op;
    int which = is_wrapper_attr(name);
    if (which == 0 || self->func == NULL) {
        return PyObject_GenericGetAttr(op, name);
    }
    if (self->dict != NULL) {
        PyObject *v = PyDict_GetItemWithError(self->dict, name);
        if (v != NULL) {
            return Py_NewRef(v);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    if (which == 5) {
        return Py_NewRef(self->func);
    }
    return PyObject_GetAttr(self->func, name);
}

static PyObject *
threaded_repr(PyObject *op)
{
    ThreadedObject *self = (ThreadedObject *)op;
    PyObject *type_name = aio_type_name(Py_TYPE(op));
    if (type_name == NULL) {
        return NULL;
    }
    /* Like aiomisc: the name of getattr(func, "func", func) (partials), or
     * its type's name. */
    PyObject *name = NULL;
    if (self->func != NULL) {
        PyObject *target = PyObject_GetAttrString(self->func, "func");
        if (target == NULL) {
            PyErr_Clear();
            target = Py_NewRef(self->func);
        }
        name = PyObject_GetAttrString(target, "__name__");
        if (name == NULL || !PyUnicode_Check(name)) {
            PyErr_Clear();
            Py_XDECREF(name);
            name = aio_type_name(Py_TYPE(target));
        }
        Py_DECREF(target);
    }
    if (name == NULL) {
        PyErr_Clear();
        name = PyUnicode_FromString("?");
        if (name == NULL) {
            Py_DECREF(type_name);
            return NULL;
        }
    }
    PyObject *r = PyUnicode_FromFormat("<%U %U at %p>", type_name, name, op);
    Py_DECREF(type_name);
    Py_DECREF(name);
    return r;
}

static int
threaded_traverse(PyObject *op, visitproc visit, void *arg)
{
    ThreadedObject *self = (ThreadedObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->func);
    Py_VISIT(self->func_type);
    Py_VISIT(self->instance);
    Py_VISIT(self->dict);
    return 0;
}

static int
threaded_clear(PyObject *op)
{
    ThreadedObject *self = (ThreadedObject *)op;
    Py_CLEAR(self->func);
    Py_CLEAR(self->func_type);
    Py_CLEAR(self->instance);
    Py_CLEAR(self->dict);
    return 0;
}

static void
threaded_dealloc(PyObject *op)
{
    aio_gc_dealloc(op, 1);
}

static PyMethodDef threaded_methods[] = {
    {"async_call", (PyCFunction)(void (*)(void))threaded_async_call,
     METH_FASTCALL | METH_KEYWORDS,
     "async_call($self, /, *args, **kwargs)\n--\n\n"
     "Run func in the loop's default executor; returns an awaitable."},
    {"sync_call", (PyCFunction)(void (*)(void))threaded_sync_call,
     METH_FASTCALL | METH_KEYWORDS,
     "sync_call($self, /, *args, **kwargs)\n--\n\n"
     "Call func in the current thread."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"},
    {NULL, NULL, 0, NULL},
};

/* func/func_type/instance are writable (mock.patch.object sets, deletes
 * and restores them): every reader copes with NULL. */
static PyMemberDef threaded_members[] = {
    {"func", T_OBJECT_EX, offsetof(ThreadedObject, func), 0,
     "The wrapped (unwrapped from static/classmethod) function."},
    {"func_type", T_OBJECT_EX, offsetof(ThreadedObject, func_type), 0,
     "staticmethod, classmethod or type(func)."},
    {"__dictoffset__", T_PYSSIZET, offsetof(ThreadedObject, dict), READONLY,
     NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ThreadedObject, weakreflist),
     READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ThreadedObject, vectorcall),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef bound_threaded_members[] = {
    {"func", T_OBJECT_EX, offsetof(ThreadedObject, func), 0,
     "The wrapped function."},
    {"func_type", T_OBJECT_EX, offsetof(ThreadedObject, func_type), 0, NULL},
    {"instance", T_OBJECT_EX, offsetof(ThreadedObject, instance), 0,
     "The object prepended to the arguments."},
    {"__dictoffset__", T_PYSSIZET, offsetof(ThreadedObject, dict), READONLY,
     NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ThreadedObject, weakreflist),
     READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ThreadedObject, vectorcall),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef threaded_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot threaded_slots[] = {
    {Py_tp_doc, "Threaded(func)\n--\n\n"
                "Run a blocking function in the loop's default thread pool: "
                "`await wrapped(...)`."},
    {Py_tp_new, threaded_new},
    {Py_tp_init, threaded_init},
    {Py_tp_dealloc, threaded_dealloc},
    {Py_tp_traverse, threaded_traverse},
    {Py_tp_clear, threaded_clear},
    {Py_tp_repr, threaded_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getattro, threaded_getattro},
    {Py_tp_setattro, PyObject_GenericSetAttr},
    {Py_tp_descr_get, threaded_descr_get},
    {Py_tp_methods, threaded_methods},
    {Py_tp_members, threaded_members},
    {Py_tp_getset, threaded_getset},
    {0, NULL},
};

static PyType_Spec threaded_spec = {
    .name = "aiomisc_c._thread_pool.Threaded",
    .basicsize = sizeof(ThreadedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = threaded_slots,
};

static PyType_Slot bound_threaded_slots[] = {
    {Py_tp_doc, "BoundThreaded(func, instance)\n--\n\n"
                "A Threaded function bound to `instance` (prepended to the "
                "arguments)."},
    {Py_tp_new, bound_threaded_new},
    {Py_tp_init, bound_threaded_init},
    {Py_tp_dealloc, threaded_dealloc},
    {Py_tp_traverse, threaded_traverse},
    {Py_tp_clear, threaded_clear},
    {Py_tp_repr, threaded_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getattro, threaded_getattro},
    {Py_tp_setattro, PyObject_GenericSetAttr},
    {Py_tp_methods, threaded_methods},
    {Py_tp_members, bound_threaded_members},
    {Py_tp_getset, threaded_getset},
    {0, NULL},
};

static PyType_Spec bound_threaded_spec = {
    .name = "aiomisc_c._thread_pool.BoundThreaded",
    .basicsize = sizeof(ThreadedObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = bound_threaded_slots,
};

#endif /* AIOMISC_C_THREAD_POOL_THREADED_H */
