/*
 * breaker.c - the circuit breaker's state and rules (breaker.h): pure
 * arithmetic on plain data, no clock, no lock, no I/O.
 */
#include "breaker.h"

/* As window.c's: a wait this short is "now" (an injected clock may round
 * now + wait back to now). */
#define BREAKER_EPSILON 1e-6

/* Written so that NaN is out of range too. */
static int time_ok(double t, double now)
{
    return t <= now + BREAKER_SPAN_MAX && t >= now - 2 * BREAKER_SPAN_MAX;
}

void breaker_repair(breaker_state *b, double now)
{
    /* Whatever another process (or a crash, or a stray write) left: a phase
     * we do not know is "closed" (tries go, and failures count anew), a
     * time out of range is "now" (a probe may go at once). */
    if (b->phase > BREAKER_HALF_OPEN) {
        b->phase = BREAKER_CLOSED;
        b->failures = 0;
    }
    if (b->failures > BREAKER_FAILURES_MAX)
        b->failures = BREAKER_FAILURES_MAX;
    if (!time_ok(b->open_until, now))
        b->open_until = now;
    if (!time_ok(b->probe_until, now))
        b->probe_until = now;
}

static double wait_until(double t, double now)
{
    double wait = t - now;

    return wait > BREAKER_EPSILON ? wait : 0;
}

static void open_for(breaker_state *b, double now, double seconds)
{
    b->phase = BREAKER_OPEN;
    b->open_until = now + seconds;
    b->probe_until = 0;
}

double breaker_admit(breaker_state *b, const breaker_config *cfg, double now,
                     double lease, int *probe)
{
    double wait = 0;

    (void)cfg;
    *probe = 0;
    if (b->phase == BREAKER_OPEN)
        wait = wait_until(b->open_until, now);
    else if (b->phase == BREAKER_HALF_OPEN)
        wait = wait_until(b->probe_until, now); /* a probe is out */
    else
        return 0;
    if (wait > 0)
        return wait;
    /* The cool-down is over, or the last probe's lease: this try probes,
     * and every other caller is refused until it tells the result. */
    if (!(lease > 0 && lease <= BREAKER_SPAN_MAX))
        lease = BREAKER_SPAN_MAX;
    b->phase = BREAKER_HALF_OPEN;
    b->probe_until = now + lease;
    *probe = 1;
    return 0;
}

double breaker_record(breaker_state *b, const breaker_config *cfg, double now,
                      breaker_result result, int probe)
{
    switch (result) {
    case BREAKER_SUCCESS:
        /* The server answers: whoever saw it, tries may go again. */
        b->phase = BREAKER_CLOSED;
        b->failures = 0;
        b->probe_until = 0;
        break;
    case BREAKER_FAILURE:
        if (b->failures < BREAKER_FAILURES_MAX)
            b->failures++;
        /* A late failure of a try admitted before the breaker opened says
         * nothing new while it is open or a probe is out. */
        if ((b->phase == BREAKER_HALF_OPEN && probe) ||
            (b->phase == BREAKER_CLOSED && b->failures >= (uint32_t)cfg->failures))
            open_for(b, now, cfg->cooldown);
        break;
    default:
        /* A probe that was not tried after all: the next try probes. */
        if (probe && b->phase == BREAKER_HALF_OPEN)
            open_for(b, now, 0);
        break;
    }
    if (b->phase == BREAKER_OPEN)
        return wait_until(b->open_until, now);
    return b->phase == BREAKER_HALF_OPEN ? wait_until(b->probe_until, now) : 0;
}
