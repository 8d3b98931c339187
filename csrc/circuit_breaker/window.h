/* circuit_breaker/window.h — the bucketed statistics window (pure C: no
 * Python is called in between).
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_WINDOW_H
#define AIOMISC_C_CIRCUIT_BREAKER_WINDOW_H

/* --- the bucketed window (pure C: called with no Python in between) ----- */

static double
bucket_id(double now, double bucket_count, double response_time)
{
    /* Python: ts = now * BUCKET_COUNT; int(ts - (ts % response_time)),
     * with Python's float modulo (sign of the divisor) */
    double ts = now * bucket_count;
    double mod = fmod(ts, response_time);
    if (mod != 0.0) {
        if ((response_time < 0) != (mod < 0)) {
            mod += response_time;
        }
    }
    else {
        mod = copysign(0.0, response_time);
    }
    return trunc(ts - mod);
}

/* bucket_id(), without the fmod() (a long division, the largest cost of a
 * guarded call) while the clock stays inside the bucket of the last
 * computation.
 *
 * For ts >= 0 and response_time > 0, ts - fmod(ts, rt) is k * rt rounded,
 * with k = floor(ts / rt): fmod is exact, so the value only depends on k and
 * every ts with the same k gives the same id.  After a computation at ts,
 * k is unchanged for every ts' in [ts, (k + 1) * rt); the upper end is
 * computed in floating point and lowered by a few ulps so that it never
 * exceeds the exact boundary.  Anything else (a clock that went back, a
 * negative time, another BUCKET_COUNT) takes the exact path. */
static double
bucket_id_cached(BreakerObject *self, double now, double bucket_count)
{
    double response_time = self->response_time_value;
    double ts = now * bucket_count;
    if (bucket_count == self->id_count && ts >= self->id_ts_low &&
        ts < self->id_ts_high) {
        return self->id_value;
    }
    double id = bucket_id(now, bucket_count, response_time);
    if (ts >= 0.0 && response_time > 0.0 && isfinite(ts) &&
        bucket_count != 0.0) {
        double start = ts - fmod(ts, response_time);
        double high = start + response_time;
        high -= high * (8 * DBL_EPSILON);
        self->id_ts_low = ts;
        self->id_ts_high = high;   /* may be <= ts: then it never hits */
        self->id_count = bucket_count;
        self->id_value = id;
    }
    else {
        self->id_count = 0.0;
    }
    return id;
}

static inline Bucket *
ring_at(BreakerObject *self, Py_ssize_t i)
{
    /* 0 <= head < cap and 0 <= i < cap: no division needed */
    Py_ssize_t index = self->head + i;
    if (index >= self->cap) {
        index -= self->cap;
    }
    return &self->ring[index];
}

/* The serial of the current bucket, appending a new one when the ring is
 * empty or the newest bucket is older. */
static uint64_t
current_bucket(BreakerObject *self, double id)
{
    if (self->len > 0) {
        Bucket *last = ring_at(self, self->len - 1);
        if (last->id == id) {
            return last->serial;
        }
    }
    uint64_t serial = ++self->next_serial;
    if (self->cap == 0) {
        return serial; /* deque(maxlen=0): dropped at once */
    }
    if (self->len == 0) {
        self->ring_bad = 0;
        self->ring_ordered = 1;
    }
    else if (id < ring_at(self, self->len - 1)->id) {
        self->ring_ordered = 0;
    }
    Bucket *slot;
    if (self->len < self->cap) {
        slot = ring_at(self, self->len);
        self->len++;
    }
    else {
        slot = ring_at(self, 0); /* drop the oldest */
        self->ring_bad -= slot->bad;
        self->head = self->head + 1 == self->cap ? 0 : self->head + 1;
    }
    slot->id = id;
    slot->serial = serial;
    slot->fail = slot->ok = slot->total = 0;
    slot->bad = 0;
    return serial;
}

/* A bucket with calls and an error ratio at or above the breaker's. */
static inline int
bucket_bad(BreakerObject *self, const Bucket *bucket)
{
    if (bucket->total == 0) {
        return 0;
    }
    if (bucket->fail == 0) { /* no division on the common path */
        return 0.0 >= self->error_ratio;
    }
    return (double)bucket->fail / (double)bucket->total >= self->error_ratio;
}

/* After a change of `bucket`'s counts: keep ring_bad exact. */
static inline void
bucket_changed(BreakerObject *self, Bucket *bucket)
{
    int bad = bucket_bad(self, bucket);
    self->ring_bad += bad - bucket->bad;
    bucket->bad = bad;
}

static Bucket *
find_bucket(BreakerObject *self, uint64_t serial)
{
    for (Py_ssize_t i = self->len - 1; i >= 0; i--) {
        Bucket *bucket = ring_at(self, i);
        if (bucket->serial == serial) {
            return bucket;
        }
    }
    return NULL; /* rotated out or cleared: the counts are dropped */
}

/* recovery_ratio; *any is 0 when the window is empty (the ratio is int 0) */
static double
window_ratio(BreakerObject *self, double current, double bucket_count, int *any)
{
    double not_before = current - self->response_time_value * bucket_count;
    Py_ssize_t total = 0, bad = 0;
    if (self->len > 0 && self->ring_ordered &&
        ring_at(self, 0)->id >= not_before) {
        /* every bucket is in the window: the tally is the answer */
        *any = 1;
        return (double)self->ring_bad / (double)self->len;
    }
    for (Py_ssize_t i = self->len - 1; i >= 0; i--) {
        Bucket *bucket = ring_at(self, i);
        if (bucket->id < not_before) {
            break;
        }
        total++;
        bad += bucket->bad;
    }
    *any = total > 0;
    return total ? (double)bad / (double)total : 0.0;
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_WINDOW_H */
