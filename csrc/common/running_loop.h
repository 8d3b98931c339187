/* running_loop.h — asyncio.get_running_loop() without its getpid().
 *
 * On CPython 3.10 and 3.11, get_running_loop() makes a getpid() system call
 * on every call (to refuse a loop inherited through fork()), which costs
 * more than everything else a timed backoff call does on the hot path.  The
 * running loop lives in a small holder object stored in the thread state's
 * dict, next to the pid of the process that set it; this reads the holder
 * and compares that pid with ours, cached and forgotten in a fork()ed child
 * (pthread_atfork).  The holder's layout is checked once against the slow
 * path's answer; on any doubt, and on 3.12+ (where get_running_loop has no
 * system call), the function itself is called.
 *
 * Header only.  Include after <Python.h>. */
#ifndef AIOMISC_C_COMMON_RUNNING_LOOP_H
#define AIOMISC_C_COMMON_RUNNING_LOOP_H

#include <Python.h>

#include "common/fast_paths.h"

#if PY_VERSION_HEX < 0x030C0000 && !defined(MS_WINDOWS)
#define AIO_RUNNING_LOOP_FAST_PATH 1
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* _asyncio's _RunningLoopHolder on 3.10 and 3.11 */
typedef struct {
    PyObject_HEAD
    PyObject *rl_loop;
    pid_t rl_pid;
} aio_running_loop_holder;

static PyTypeObject *aio_holder_type;   /* set once the layout is checked */
static int aio_holder_checked;          /* 1 checked (good or not) */
static PyObject *aio_holder_key;        /* "__asyncio_running_event_loop__" */
static volatile pid_t aio_our_pid;      /* 0: not known yet / forked child */

static void
aio_forget_pid(void)
{
    aio_our_pid = 0;
}

static PyObject *
aio_holder_of_thread(void)
{
    PyObject *dict = PyThreadState_GetDict();   /* borrowed, no error */
    if (dict == NULL || aio_holder_key == NULL) {
        return NULL;
    }
    PyObject *holder = PyDict_GetItemWithError(dict, aio_holder_key);
    if (holder == NULL) {
        PyErr_Clear();
    }
    return holder;
}

/* After a slow-path answer `loop`: does the holder say the same thing? */
static void
aio_check_holder(PyObject *loop)
{
    aio_holder_checked = 1;
    aio_holder_key = PyUnicode_InternFromString(
        "__asyncio_running_event_loop__");
    if (aio_holder_key == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *holder = aio_holder_of_thread();
    if (holder == NULL) {
        return;
    }
    PyTypeObject *type = Py_TYPE(holder);
    const char *name = strrchr(type->tp_name, '.');
    name = name == NULL ? type->tp_name : name + 1;
    aio_running_loop_holder *h = (aio_running_loop_holder *)holder;
    if (strcmp(name, "_RunningLoopHolder") != 0 ||
        type->tp_basicsize != (Py_ssize_t)sizeof(aio_running_loop_holder) ||
        h->rl_loop != loop || h->rl_pid != getpid()) {
        return;
    }
    if (pthread_atfork(NULL, NULL, aio_forget_pid) != 0) {
        return;
    }
    aio_our_pid = getpid();
    aio_holder_type = (PyTypeObject *)Py_NewRef(type);
}
#endif

#ifdef AIO_RUNNING_LOOP_FAST_PATH
/* The fast path: the running loop read from the holder (borrowed), or NULL
 * (no exception set) when the holder is not known to be readable, says
 * "none" or belongs to another process.  Off: always NULL. */
static inline PyObject *
aio_running_loop_from_holder(void)
{
    if (aio_holder_type == NULL || !aio_fast_paths_on()) {
        return NULL;
    }
    PyObject *holder = aio_holder_of_thread();
    if (holder == NULL || !Py_IS_TYPE(holder, aio_holder_type)) {
        return NULL;
    }
    aio_running_loop_holder *h = (aio_running_loop_holder *)holder;
    pid_t pid = aio_our_pid;
    if (pid == 0) {
        aio_our_pid = pid = getpid();
    }
    if (h->rl_loop != Py_None && h->rl_pid == pid) {
        return h->rl_loop;
    }
    return NULL;
}
#endif

/* The running loop (new reference), or what `get_running_loop` (borrowed)
 * returns or raises when there is none: asyncio.get_running_loop raises
 * RuntimeError, asyncio.events._get_running_loop returns None. */
static inline PyObject *
aio_running_loop(PyObject *get_running_loop)
{
#ifdef AIO_RUNNING_LOOP_FAST_PATH
    PyObject *fast = aio_running_loop_from_holder();
    if (fast != NULL) {
        return Py_NewRef(fast);
    }
#endif
    PyObject *loop = PyObject_CallNoArgs(get_running_loop);
#ifdef AIO_RUNNING_LOOP_FAST_PATH
    /* A holder is only checked against a loop: without one there may be
     * no holder yet, and one check is all there is. */
    if (loop != NULL && loop != Py_None && !aio_holder_checked) {
        aio_check_holder(loop);
    }
#endif
    return loop;
}

#endif /* AIOMISC_C_COMMON_RUNNING_LOOP_H */
