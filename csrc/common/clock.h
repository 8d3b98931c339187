/* clock.h — the monotonic clock, read natively.
 *
 * The Python twins read `time.monotonic()` (asyncio's loop.time() is the
 * same clock), so the C side must produce the very same double for the same
 * instant, or a deadline computed in C and one computed in Python could
 * disagree by one ulp.  CPython converts the nanosecond count exactly as
 * aio_monotonic() does: whole seconds are converted as an integer, anything
 * else as `ns / 1e9` (one rounding).  `tv_sec + tv_nsec * 1e-9` rounds
 * twice and is not used.
 *
 * Header only.  Include after <Python.h>. */
#ifndef AIOMISC_C_COMMON_CLOCK_H
#define AIOMISC_C_COMMON_CLOCK_H

#include <Python.h>

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds */
static inline int64_t
aio_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* time.monotonic(): the same value the builtin returns */
static inline double
aio_monotonic(void)
{
    int64_t ns = aio_monotonic_ns();
    if (ns % 1000000000 == 0) {
        return (double)(ns / 1000000000);
    }
    return (double)ns / 1e9;
}

#endif /* AIOMISC_C_COMMON_CLOCK_H */
