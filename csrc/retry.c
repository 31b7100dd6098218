/*
 * retry.c - which failures are worth another try.
 *
 * A request that certainly never left (resolve, connect) is always safe to
 * send again.  One that may have reached the server is sent again only when
 * the endpoint is idempotent.  A 429 was refused by the server, so nothing
 * happened there: it is retried after its Retry-After.  Anything the server
 * answered with a definite verdict (400/401/403/404/422, other statuses) and
 * anything a retry cannot fix (TLS, too large, closed) is final.
 */
#include "retry.h"

#include <stdlib.h>

#include <curl/curl.h>

#include "transport.h"

/* A day: beyond that a Retry-After is a server bug, and an unbounded value
 * would close a shared group for every process until reboot. */
#define RETRY_AFTER_MAX 86400.0

/* Full jitter: uniformly anywhere up to the exponential ceiling. */
static double backoff(const retry_policy *p, int tries, double random01)
{
    double ceiling = p->base;
    int i;

    for (i = 1; i < tries && ceiling < p->cap; i++)
        ceiling *= 2;
    if (ceiling > p->cap)
        ceiling = p->cap;
    return random01 * ceiling;
}

static int transient_status(long status)
{
    return status == 502 || status == 503 || status == 504;
}

/* Whether the outcome is retryable at all, ignoring how often and how long. */
static int retryable(const retry_outcome *o, int idempotent)
{
    switch ((transport_kind)o->kind) {
    case TK_OK:
        return o->status == 429 || (idempotent && transient_status(o->status));
    case TK_NETWORK:
    case TK_TIMEOUT:
        return !o->sent || idempotent;
    default:
        return 0; /* TLS, too large, closed, internal */
    }
}

int retry_decide(const retry_policy *p, const retry_outcome *o, int idempotent,
                 int tries, double random01, double *delay)
{
    double wait;

    *delay = 0;
    if (tries > p->max_retries || !retryable(o, idempotent))
        return 0;
    wait = backoff(p, tries, random01);
    /* The server said when; coming back sooner only earns another 429. */
    if (o->kind == TK_OK && o->retry_after > wait)
        wait = o->retry_after;
    if (wait > p->max_wait)
        return 0;
    *delay = wait;
    return 1;
}

double retry_parse_after(const char *value, time_t now)
{
    char *end;
    time_t when;

    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        double seconds = strtod(value, &end);

        while (*end == ' ' || *end == '\t')
            end++;
        if (*end != '\0')
            return -1;
        return seconds < RETRY_AFTER_MAX ? seconds : RETRY_AFTER_MAX;
    }
    when = curl_getdate(value, NULL);
    if (when == (time_t)-1)
        return -1;
    if (when <= now)
        return 0;
    return (double)(when - now) < RETRY_AFTER_MAX ? (double)(when - now)
                                                   : RETRY_AFTER_MAX;
}
