/*
 * retry.h - the retry policy shared by client:request and client:batch:
 * should this outcome be tried again, and after how long.
 *
 * Pure C and pure functions: the caller supplies the random number, so
 * specs can pin the jitter and the policy never sleeps itself.
 */
#ifndef WEMASY_RETRY_H
#define WEMASY_RETRY_H

#include <time.h>

/* A day: beyond that a Retry-After is a server bug, and an unbounded value
 * would close a shared group for every process until reboot.  The limiter
 * caps what it finds stored in a segment by the same. */
#define RETRY_AFTER_MAX 86400.0

typedef struct {
    int max_retries;  /* tries = max_retries + 1 at most */
    double base, cap; /* full-jitter backoff, seconds */
    double max_wait;  /* no retry that would wait longer than this */
} retry_policy;

/* One try's outcome.  kind is a transport_kind; status and retry_after
 * only mean something when kind is TK_OK. */
typedef struct {
    int kind;
    int sent;           /* the request may have reached the server */
    long status;
    double retry_after; /* seconds from a Retry-After header, < 0: none */
} retry_outcome;

/*
 * `tries` is how many tries were made so far (>= 1), random01 in [0, 1).
 * Returns 1 and the delay before the next try, or 0 when this outcome is
 * final.
 */
int retry_decide(const retry_policy *p, const retry_outcome *o, int idempotent,
                 int tries, double random01, double *delay);

/* Retry-After as whole seconds from now, at most a day: delay-seconds
 * (1*DIGIT) or an HTTP-date in RFC 9110's three forms, OWS around it
 * allowed; -1 for anything else (fractions, signs, hex, other dates). */
double retry_parse_after(const char *value, time_t now);

#endif /* WEMASY_RETRY_H */
