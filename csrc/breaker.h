/*
 * breaker.h - the circuit breaker of one API (base URL and token), shared
 * by every store.  A breaker_state is plain old data with no pointers, so a
 * store may keep it in shared memory; the caller provides any locking.
 *
 * Closed: every try goes.  After `failures` failed tries in a row (timeout,
 * network error, 5xx) it opens: tries are refused for `cooldown` seconds.
 * Then one try, the probe, goes (half-open); its success closes it, its
 * failure opens it again.  A probe holds a lease: should its process die
 * before it tells the result, another probe may go when the lease ends.
 *
 * Times are seconds on the store's clock (limiter_now() when shared).
 */
#ifndef WEMASY_BREAKER_H
#define WEMASY_BREAKER_H

#include <stdint.h>

/* Bounds of the options (options.h) and of what a state may hold. */
#define BREAKER_FAILURES_MAX 1000
#define BREAKER_SPAN_MAX 4294966.0 /* cooldown or lease, seconds: 2 x MAX_SECONDS */

typedef enum {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN,
    BREAKER_HALF_OPEN
} breaker_phase;

/* What a finished try tells the breaker. */
typedef enum {
    BREAKER_SUCCESS, /* the server answered (2xx, 3xx, 4xx, 429) */
    BREAKER_FAILURE, /* timeout, network error, 5xx */
    BREAKER_NEUTRAL  /* says nothing about the server: not tried, Ctrl-C, TLS */
} breaker_result;

typedef struct {
    int on;          /* 0: breaker = false */
    int failures;    /* failed tries in a row that open it, >= 1 */
    double cooldown; /* seconds open before a probe, > 0 */
} breaker_config;

typedef struct {
    uint32_t phase;     /* breaker_phase */
    uint32_t failures;  /* failed tries in a row, <= BREAKER_FAILURES_MAX */
    double open_until;  /* BREAKER_OPEN: no try before this */
    double probe_until; /* BREAKER_HALF_OPEN: the probe's lease ends */
} breaker_state;

/* A state read from memory another process may have written (or a crash
 * cut short): every field brought into range, times not past now + the
 * longest span.  A valid state is left as it is. */
void breaker_repair(breaker_state *b, double now);

/* Whether a try may go at `now`: returns 0 and sets *probe (1: this try is
 * the half-open probe, holding it for `lease` seconds), or the seconds
 * until a probe may go (> 0). */
double breaker_admit(breaker_state *b, const breaker_config *cfg, double now,
                     double lease, int *probe);

/* A try admitted by breaker_admit ended with `result`.  Returns the seconds
 * until a probe may go now (0: closed, tries go). */
double breaker_record(breaker_state *b, const breaker_config *cfg, double now,
                    breaker_result result, int probe);

#endif /* WEMASY_BREAKER_H */
