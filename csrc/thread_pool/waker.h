/* thread_pool/waker.h — a channel's wake-up descriptor.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there.
 *
 * Why: loop.call_soon_threadsafe() needs the GIL, so a worker that calls
 * it wakes the loop thread while still holding the GIL; the loop thread
 * then wakes only to sleep again on the GIL until the worker lets it go.
 * That is one more sleeping wake-up per round trip (about a third of a
 * one-by-one `threaded` call here).  A waker is a descriptor the loop
 * watches (loop.add_reader); a worker writes it *after* releasing the GIL,
 * so the loop wakes to a free GIL.
 *
 * Lifetime: reference counted with an atomic count, because a worker holds
 * a reference across the GIL-free write (the channel, a Python object,
 * cannot be touched there).  The last reference closes the descriptors,
 * with or without the GIL. */
#ifndef AIOMISC_C_THREAD_POOL_WAKER_H
#define AIOMISC_C_THREAD_POOL_WAKER_H

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

struct loop_waker {
    _Atomic long refs;
    int read_fd;
    int write_fd; /* == read_fd for an eventfd */
};

#ifndef __linux__
static int
waker_set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}
#endif

/* GIL held: a new waker (one reference), or NULL with OSError set. */
static loop_waker *
waker_new(void)
{
    loop_waker *w = PyMem_RawMalloc(sizeof(loop_waker));
    if (w == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    atomic_init(&w->refs, 1);
#ifdef __linux__
    w->read_fd = w->write_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->read_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        PyMem_RawFree(w);
        return NULL;
    }
#else
    int fds[2];
    if (pipe(fds) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        PyMem_RawFree(w);
        return NULL;
    }
    if (waker_set_flags(fds[0]) < 0 || waker_set_flags(fds[1]) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(fds[0]);
        close(fds[1]);
        PyMem_RawFree(w);
        return NULL;
    }
    w->read_fd = fds[0];
    w->write_fd = fds[1];
#endif
    return w;
}

static inline loop_waker *
waker_ref(loop_waker *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

/* Any thread, GIL or not. */
static void
waker_unref(loop_waker *w)
{
    if (w == NULL ||
        atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    close(w->read_fd);
    if (w->write_fd != w->read_fd) {
        close(w->write_fd);
    }
    PyMem_RawFree(w);
}

/* Any thread, GIL or not: make the read end readable.  A full pipe or an
 * eventfd at its maximum is readable already, so EAGAIN is success. */
static void
waker_signal(loop_waker *w)
{
#ifdef __linux__
    uint64_t one = 1;
    const void *data = &one;
    size_t size = sizeof one;
#else
    const char data[1] = {0};
    size_t size = 1;
#endif
    while (write(w->write_fd, data, size) < 0 && errno == EINTR) {
    }
}

/* Loop thread: consume every pending signal (non-blocking reads). */
static void
waker_consume(loop_waker *w)
{
    char buf[64];
    for (;;) {
        ssize_t n = read(w->read_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
#ifdef __linux__
        break; /* one read resets an eventfd */
#else
        if (n < (ssize_t)sizeof buf) {
            break;
        }
#endif
    }
}

/* A signal a worker owes a loop: kept across the worker's items while the
 * GIL is held, sent once it is released (or before a next item runs). */
typedef struct {
    loop_waker *waker; /* owned reference, or NULL */
} pending_wake;

/* Any thread: send the pending signal, if any, and forget it. */
static void
pending_wake_flush(pending_wake *p)
{
    loop_waker *w = p->waker;
    if (w != NULL) {
        p->waker = NULL;
        waker_signal(w);
        waker_unref(w);
    }
}

/* Owe a signal to `w` (a new reference is taken); one owed to another
 * waker is sent now. */
static void
pending_wake_add(pending_wake *p, loop_waker *w)
{
    if (p->waker == w) {
        return;
    }
    pending_wake_flush(p);
    p->waker = waker_ref(w);
}

#endif /* AIOMISC_C_THREAD_POOL_WAKER_H */
