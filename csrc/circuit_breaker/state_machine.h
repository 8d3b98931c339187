/* circuit_breaker/state_machine.h — the state machine: passing, broken and
 * recovering, computed from the window.
 *
 * A unit of the aiomisc_c._circuit_breaker translation unit: included once,
 * by circuit_breaker/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_CIRCUIT_BREAKER_STATE_MACHINE_H
#define AIOMISC_C_CIRCUIT_BREAKER_STATE_MACHINE_H

static void
break_circuit(BreakerObject *self, double now)
{
    self->stuck_until = now + self->broken_time;
    self->state = ST_BROKEN;
    self->len = 0;
    self->head = 0;
}

static void
compute_state(BreakerObject *self, double now, double current, const Limits *limits)
{
    if (now < self->stuck_until) {
        return;
    }
    if (self->state == ST_BROKEN) {
        self->state = ST_RECOVERING;
        self->recovery_at = now;
        return;
    }
    if (self->state == ST_PASSING &&
        (double)self->len < limits->bucket_count) {
        return; /* not enough statistics yet */
    }
    int any;
    double ratio = window_ratio(self, current, limits->bucket_count, &any);
    if (self->state == ST_PASSING) {
        if (ratio >= limits->passing_broken) {
            break_circuit(self, now);
        }
        return;
    }
    if (ratio >= limits->recover_broken * self->error_ratio) {
        break_circuit(self, now);
    }
    else if (now - self->recovery_at >= self->recovery_time) {
        self->stuck_until = now + self->passing_time;
        self->state = ST_PASSING;
    }
}

#endif /* AIOMISC_C_CIRCUIT_BREAKER_STATE_MACHINE_H */
