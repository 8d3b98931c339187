/* thread_pool/helpers.h — finalization, the logger.
 *
 * A unit of the aiomisc_c._thread_pool translation unit: included once,
 * by thread_pool/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_THREAD_POOL_HELPERS_H
#define AIOMISC_C_THREAD_POOL_HELPERS_H

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* Whether the interpreter is finalizing (logging may be torn down). */
static inline int
is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* The logger of the pool's warnings (common/log.h keeps it in
 * st->logger). */
#define TP_LOGGER_NAME "aiomisc_c.thread_pool"

#endif /* AIOMISC_C_THREAD_POOL_HELPERS_H */
