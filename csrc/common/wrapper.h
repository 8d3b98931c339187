/*
 * wrapper.h — what the C function wrappers share (the cutout wrappers,
 * BackoffFunction, TimeoutFunction): a callable object that stands for a
 * decorated function.  It binds as a method like a function does, keeps an
 * instance __dict__ for what functools.update_wrapper copies, and passes for
 * a (coroutine) function: the markers of _backoff_base.COROUTINE_MARKERS
 * are class attributes, and __code__, __defaults__ and __kwdefaults__ come
 * from the wrapped callable (see function_like.h).
 *
 * A wrapper object has `dict`, `weakreflist` and `vectorcall` fields (see
 * AIO_WRAPPER_MEMBERS); its module state embeds one aio_wrapper_support.
 *
 * Include after <Python.h>, compat.h, module_state.h and function_like.h.
 */
#ifndef AIOMISC_C_COMMON_WRAPPER_H
#define AIOMISC_C_COMMON_WRAPPER_H

#include <Python.h>
#include <stddef.h>

#include "common/compat.h"
#include "common/function_like.h"
#include "common/module_state.h"

#if PY_VERSION_HEX >= 0x030C0000
#define AIO_T_PYSSIZET Py_T_PYSSIZET
#define AIO_READONLY Py_READONLY
#else
#include <structmember.h>
#define AIO_T_PYSSIZET T_PYSSIZET
#define AIO_READONLY READONLY
#endif

/* What a module's wrappers read, in its state. */
typedef struct {
    PyObject *str_code;           /* "__code__" */
    PyObject *str_defaults;       /* "__defaults__" */
    PyObject *str_kwdefaults;     /* "__kwdefaults__" */
    PyObject *coroutine_code;     /* _backoff_base.COROUTINE_CODE */
} aio_wrapper_support;

/* The fields of aio_wrapper_support as `member.field` for a module's list of
 * state fields that generates its traverse and clear (X(field) each). */
#define AIO_WRAPPER_SUPPORT_FIELDS(X, member)                                 \
    X(member.str_code) X(member.str_defaults) X(member.str_kwdefaults)       \
    X(member.coroutine_code)

/* Fill `support` (from the module _backoff_base, `base`); 0, or -1 with an
 * exception set (what was set is released by the module's clear). */
static inline int
aio_wrapper_support_init(aio_wrapper_support *support, PyObject *base)
{
    if (aio_intern(&support->str_code, "__code__") < 0 ||
        aio_intern(&support->str_defaults, "__defaults__") < 0 ||
        aio_intern(&support->str_kwdefaults, "__kwdefaults__") < 0) {
        return -1;
    }
    support->coroutine_code = PyObject_GetAttrString(base, "COROUTINE_CODE");
    return support->coroutine_code == NULL ? -1 : 0;
}

/* Make the wrapper `type` pass asyncio's and inspect's
 * iscoroutinefunction: the items of _backoff_base.COROUTINE_MARKERS become
 * its class attributes. */
static inline int
aio_wrapper_type_mark_coroutine(PyTypeObject *type, PyObject *base)
{
    PyObject *markers = PyObject_GetAttrString(base, "COROUTINE_MARKERS");
    if (markers == NULL) {
        return -1;
    }
    int rc = -1;
    if (!PyDict_Check(markers)) {
        PyErr_SetString(PyExc_TypeError, "COROUTINE_MARKERS must be a dict");
        goto done;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(markers, &pos, &key, &value)) {
        if (PyObject_SetAttr((PyObject *)type, key, value) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(markers);
    return rc;
}

/* tp_descr_get: bound to an instance as a method, as functions are; read
 * from the class, the wrapper itself. */
static inline PyObject *
aio_wrapper_descr_get(PyObject *self, PyObject *obj,
                      PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

/* How the shared getters reach a wrapper type's wrapped callable and its
 * module's aio_wrapper_support: the closure of their PyGetSetDef entries. */
typedef struct {
    Py_ssize_t func_offset;       /* offsetof(<wrapper struct>, func) */
    aio_wrapper_support *(*support_of)(PyObject *wrapper);
} aio_wrapper_layout;

static inline PyObject *
aio_wrapper_func(PyObject *wrapper, const aio_wrapper_layout *layout)
{
    return *(PyObject **)((char *)wrapper + layout->func_offset);
}

static inline PyObject *
aio_wrapper_get_code(PyObject *op, void *closure)
{
    const aio_wrapper_layout *layout = (const aio_wrapper_layout *)closure;
    aio_wrapper_support *support = layout->support_of(op);
    return aio_coroutine_code(aio_wrapper_func(op, layout), support->str_code,
                              support->coroutine_code);
}

static inline PyObject *
aio_wrapper_get_defaults(PyObject *op, void *closure)
{
    const aio_wrapper_layout *layout = (const aio_wrapper_layout *)closure;
    return aio_func_attr_or_none(aio_wrapper_func(op, layout),
                                 layout->support_of(op)->str_defaults,
                                 aio_is_tuple);
}

static inline PyObject *
aio_wrapper_get_kwdefaults(PyObject *op, void *closure)
{
    const aio_wrapper_layout *layout = (const aio_wrapper_layout *)closure;
    return aio_func_attr_or_none(aio_wrapper_func(op, layout),
                                 layout->support_of(op)->str_kwdefaults,
                                 aio_is_dict);
}

/* The PyGetSetDef entries of a wrapper type: its instance __dict__ and, with
 * `layout` (an aio_wrapper_layout *), the function-like attributes. */
#define AIO_WRAPPER_DICT_GETSET                                               \
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL}
#define AIO_WRAPPER_FUNCTION_LIKE_GETSETS(layout)                             \
    {"__code__", aio_wrapper_get_code, NULL, NULL, (void *)(layout)},         \
    {"__defaults__", aio_wrapper_get_defaults, NULL, NULL,                    \
     (void *)(layout)},                                                       \
    {"__kwdefaults__", aio_wrapper_get_kwdefaults, NULL, NULL,                \
     (void *)(layout)}

/* The PyMemberDef entries that tell the type machinery where the wrapper
 * struct `Type` keeps its __dict__, weak references and vectorcall. */
#define AIO_WRAPPER_MEMBERS(Type)                                             \
    {"__dictoffset__", AIO_T_PYSSIZET, offsetof(Type, dict), AIO_READONLY,    \
     NULL},                                                                   \
    {"__weaklistoffset__", AIO_T_PYSSIZET, offsetof(Type, weakreflist),       \
     AIO_READONLY, NULL},                                                     \
    {"__vectorcalloffset__", AIO_T_PYSSIZET, offsetof(Type, vectorcall),      \
     AIO_READONLY, NULL}

/* The PyType_Slot entries every wrapper type has: its own dealloc, traverse,
 * clear and members, called through vectorcall, bound as a method. */
#define AIO_WRAPPER_SLOTS(dealloc, traverse, clear, members)                 \
    {Py_tp_dealloc, (dealloc)}, {Py_tp_traverse, (traverse)},                \
    {Py_tp_clear, (clear)}, {Py_tp_call, PyVectorcall_Call},                 \
    {Py_tp_descr_get, aio_wrapper_descr_get}, {Py_tp_members, (members)}

#endif /* AIOMISC_C_COMMON_WRAPPER_H */
