/*
 * module_state.h — helpers for multi-phase-init modules with one state
 * struct per module object (no C globals holding Python objects).
 *
 * A module defines its state struct and its PyModuleDef, then:
 *
 *     static PyModuleDef my_module;            // forward declaration
 *     AIO_DEFINE_STATE_ACCESSORS(my_state, my_module)
 *
 * which gives `my_state_from_module(mod)`, `my_state_from_type(type)` (works
 * for subclasses defined in Python, too) and `my_state_from_object(obj)`.
 * Include after <Python.h>.
 */
#ifndef AIOMISC_C_COMMON_MODULE_STATE_H
#define AIOMISC_C_COMMON_MODULE_STATE_H

#include <Python.h>

#include "common/compat.h"

#define AIO_DEFINE_STATE_ACCESSORS(STATE, MODULE_DEF)                         \
    static inline STATE *STATE##_from_module(PyObject *module)                \
    {                                                                         \
        return (STATE *)PyModule_GetState(module);                            \
    }                                                                         \
    static inline STATE *STATE##_from_type(PyTypeObject *type)                \
    {                                                                         \
        PyObject *module = aio_module_by_def(type, &MODULE_DEF);              \
        return module == NULL ? NULL : (STATE *)PyModule_GetState(module);    \
    }                                                                         \
    static inline STATE *STATE##_from_object(PyObject *obj)                   \
    {                                                                         \
        return STATE##_from_type(Py_TYPE(obj));                               \
    }

/* Import `module_name` and return getattr(module, attr) (new reference). */
static inline PyObject *
aio_import_attr(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return value;
}

/* Intern `text` into *slot; returns -1 on error. */
static inline int
aio_intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

/* Add a heap type built from `spec` (bases may be NULL) to `module` and keep
 * a strong reference in *slot. */
static inline int
aio_add_type(PyObject *module, PyTypeObject **slot, PyType_Spec *spec,
             PyObject *bases)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, bases);
    if (type == NULL) {
        return -1;
    }
    *slot = (PyTypeObject *)type;
    return PyModule_AddType(module, (PyTypeObject *)type);
}

/* Standard dealloc body for GC heap types: untrack, clear weakrefs (when
 * `has_weakrefs`), tp_clear, free, decref the type. */
static inline void
aio_gc_dealloc(PyObject *self, int has_weakrefs)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (has_weakrefs) {
        PyObject_ClearWeakRefs(self);
    }
    if (type->tp_clear != NULL) {
        (void)type->tp_clear(self);
    }
    type->tp_free(self);
    Py_DECREF(type);
}

#endif /* AIOMISC_C_COMMON_MODULE_STATE_H */
