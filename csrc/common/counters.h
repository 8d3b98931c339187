/* counters.h — exporting the statistics counters' buffer.
 *
 * A statistic object (aiomisc_c.counters) keeps its counters in array("q")
 * (integers) and array("d") (floats) buffers.  The C types keep such a
 * buffer exported for as long as they live, which pins its memory, and
 * increment the slots in place with the GIL held.
 *
 * Header only.  Include after <Python.h>. */
#ifndef AIOMISC_C_COMMON_COUNTERS_H
#define AIOMISC_C_COMMON_COUNTERS_H

#include <Python.h>

#include <string.h>

/* Export `array` (writable) into *view, checking it holds 8-byte items of
 * struct `format` ("q" or "d").  Returns 0, or -1 with an exception set
 * (TypeError for a buffer of another kind) and view->obj == NULL. */
static inline int
aio_counters_export(PyObject *array, Py_buffer *view, const char *format)
{
    if (PyObject_GetBuffer(array, view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        view->obj = NULL;
        return -1;
    }
    if (view->itemsize != 8 || view->format == NULL ||
        strcmp(view->format, format) != 0) {
        PyBuffer_Release(view);
        view->obj = NULL;
        PyErr_Format(PyExc_TypeError,
                     "statistic counters must be array('%s')", format);
        return -1;
    }
    return 0;
}

/* Whether `index` is a slot of the exported `view` */
static inline int
aio_counters_has_slot(const Py_buffer *view, Py_ssize_t index)
{
    return index >= 0 && index < view->len / view->itemsize;
}

/* Release an export made by aio_counters_export (no-op when empty). */
static inline void
aio_counters_release(Py_buffer *view)
{
    if (view->obj != NULL) {
        PyBuffer_Release(view);
        view->obj = NULL;
    }
}

#endif /* AIOMISC_C_COMMON_COUNTERS_H */
