/*
 * compat.h — small shims over CPython version differences (3.10 .. 3.13).
 *
 * Header only, public C API only.  Include after <Python.h>.  Every shim is
 * `static inline` so a translation unit that does not use one pays nothing.
 */
#ifndef AIOMISC_C_COMMON_COMPAT_H
#define AIOMISC_C_COMMON_COMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000
#error "aiomisc_c needs CPython 3.10 or newer"
#endif

/* Take the raised exception as one object (normalized, traceback attached);
 * NULL if none is set.  The error indicator is cleared. */
static inline PyObject *
aio_err_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise `exc` again (steals the reference); no-op for NULL. */
static inline void
aio_err_restore(PyObject *exc)
{
    if (exc == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
#endif
}

/* getattr(obj, name) that returns 0 with *result = NULL when the attribute
 * is missing (AttributeError cleared, or never built for the usual
 * getattr), 1 when found, -1 on other errors.  A missing attribute is the
 * common case on some hot paths (uvloop's loops have no
 * `_default_executor`), hence the lookup that skips the exception. */
static inline int
aio_getattr_optional(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

/* The module object of the first class in type(obj).__mro__ defined by
 * `def` (borrowed), or NULL with an exception set. */
static inline PyObject *
aio_module_by_def(PyTypeObject *type, PyModuleDef *def)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyType_GetModuleByDef(type, def);
#else
    PyObject *mro = type->tp_mro;
    if (mro != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
            PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
            if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE)) {
                continue;
            }
            PyObject *module = PyType_GetModule(base);
            if (module == NULL) {
                PyErr_Clear();
                continue;
            }
            if (PyModule_GetDef(module) == def) {
                return module;
            }
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "PyType_GetModuleByDef: No superclass of '%s' has the given "
                 "module",
                 type->tp_name);
    return NULL;
#endif
}

/* type.__name__ as a new reference (the short name, without the module). */
static inline PyObject *
aio_type_name(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyType_GetName(type);
#else
    return PyObject_GetAttrString((PyObject *)type, "__name__");
#endif
}

/* The referent of weakref `ref` as a new reference, or NULL (no exception
 * set) when it is dead. */
static inline PyObject *
aio_weakref_get(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj = NULL;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GET_OBJECT(ref);
    return obj == Py_None ? NULL : Py_NewRef(obj);
#endif
}

/* Whether weakref `ref` points at `obj` (which the caller keeps alive). */
static inline int
aio_weakref_is(PyObject *ref, PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *referent = aio_weakref_get(ref);
    Py_XDECREF(referent);
    return referent == obj;
#else
    return PyWeakref_GET_OBJECT(ref) == obj;
#endif
}

/* A pause instruction for spin loops. */
static inline void
aio_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Storage that each OS thread has its own copy of (C11). */
#if defined(_MSC_VER)
#define AIO_THREAD_LOCAL __declspec(thread)
#else
#define AIO_THREAD_LOCAL _Thread_local
#endif

#endif /* AIOMISC_C_COMMON_COMPAT_H */
