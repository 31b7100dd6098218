/*
 * call.c - the steps of one call, each written once for the two loops over
 * them: request.c (one call, sleeping while it waits) and batch.c (many
 * calls on the multi pool, polling while it waits).
 *
 * A call: find its limiter group; ask the circuit breaker (per try: a retry
 * asks again); take a slot, wait for one or be refused;
 * check that it may still send (closed client, SIGINT); send; record the
 * try's result and learn the quota headers from it; ask the retry policy.
 * Every way a call ends without a server's answer is a failure outcome
 * made here, so both loops report it in the same words.
 */
#include <string.h>
#include <time.h>

#include "client.h"

/* ---- outcomes ---- */

void call_begin(call_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->retry_after = -1;
    o->limit = o->remaining = -1;
}

void call_fail(call_outcome *o, int kind, const char *message,
               double retry_after)
{
    o->kind = kind;
    o->message = message;
    o->sent = 0;
    o->retry_after = retry_after;
    o->limit = o->remaining = -1;
}

int call_closed(const client *c, call_outcome *o)
{
    if (c->t != NULL && !c->closing)
        return 0;
    call_fail(o, TK_CLOSED, CALL_CLOSED, -1);
    return 1;
}

int call_interrupted(const client *c, call_outcome *o)
{
    if (!interrupt_pending(c->interrupt))
        return 0;
    o->kind = TK_INTERRUPTED;
    o->message = INTERRUPT_MESSAGE;
    o->retry_after = -1;
    return 1;
}

int call_may_try(const client *c, call_outcome *o)
{
    /* A hook or callback may have closed the client meanwhile (the close
     * waits for the call to end), or a SIGINT came during one. */
    return !call_closed(c, o) && !call_interrupted(c, o);
}

void call_record(call_outcome *o, const transport_result *r, const transfer *tr)
{
    o->r = *r;
    o->tr = tr;
    o->kind = (int)r->kind;
    o->message = r->message;
    o->sent = r->sent;
    o->attempts++;
}

/* ---- the SIGINT watch ---- */

void call_watch(client *c, interrupt_scope *s, const interrupt_scope **saved)
{
    interrupt_enter(s, c->interruptible && c->t != NULL);
    *saved = c->interrupt;
    c->interrupt = s;
    transport_watch(c->t, s);
}

interrupt_end call_unwatch(client *c, interrupt_scope *s,
                           const interrupt_scope *saved)
{
    c->interrupt = saved;
    transport_watch(c->t, saved);
    return interrupt_leave(s);
}

/* ---- limiter groups ---- */

int call_group_name_ok(const char *name, size_t len)
{
    return len > 0 && len <= LIMITER_NAME_MAX && strlen(name) == len;
}

const limiter_group *call_group(client *c, const char *name)
{
    rate_config *r = &c->rate;
    limiter_group *g;
    size_t i;

    if (name == NULL)
        return &r->groups[0];
    for (i = 0; i < r->ngroups; i++)
        if (strcmp(r->groups[i].name, name) == 0)
            return &r->groups[i];
    if (r->ngroups == LIMITER_GROUPS_MAX)
        return NULL;
    /* Not configured: default's limits under its own name, so it still
     * has a quota of its own on the server's side. */
    g = &r->groups[r->ngroups++];
    *g = r->groups[0];
    memset(g->name, 0, sizeof g->name);
    strncpy(g->name, name, LIMITER_NAME_MAX);
    return g;
}

/* ---- a slot ---- */

double call_acquire(client *c, const limiter_group *g, double now,
                    call_outcome *o)
{
    double wait;

    if (c->limiter == NULL)
        return 0;
    wait = c->limiter->ops->acquire(c->limiter, g, now);
    if (wait < 0)
        call_fail(o, TK_INTERNAL, CALL_LIMITER_FULL, -1);
    return wait;
}

int call_may_wait(const client *c, call_outcome *o, double since, double now,
                  double wait)
{
    /* Fail at once rather than after waiting max_wait for nothing. */
    if (c->rate.wait && now + wait - since <= c->rate.max_wait)
        return 1;
    call_fail(o, KIND_RATE_LIMITED,
              c->rate.wait ? c->refusal : "rate limit: no slot free and wait is off", wait);
    return 0;
}

/* ---- the circuit breaker ---- */

/* The store's breaker, shared as its quota is; the client's own without. */
static int store_breaker(const client *c)
{
    return c->limiter != NULL && c->limiter->ops->breaker_admit != NULL;
}

int call_admit(client *c, double now, call_outcome *o)
{
    double wait;
    int sent = o->attempts > 0 ? o->sent : 0;

    o->probe = 0;
    o->admitted_at = now;
    if (!c->breaker.on)
        return 1;
    wait = store_breaker(c)
        ? c->limiter->ops->breaker_admit(c->limiter, &c->breaker, now, c->probe_lease, &o->probe)
        : breaker_admit(&c->own_breaker, &c->breaker, now, c->probe_lease, &o->probe);
    if (wait <= 0)
        return 1;
    call_fail(o, KIND_CIRCUIT_OPEN, CALL_CIRCUIT_OPEN, wait);
    o->sent = sent; /* a retry refused: whether its call's last try left */
    return 0;
}

static void tell_breaker(client *c, double now, call_outcome *o,
                         breaker_result result)
{
    o->breaker_wait = store_breaker(c)
        ? c->limiter->ops->breaker_record(c->limiter, &c->breaker, now, result, o->probe)
        : breaker_record(&c->own_breaker, &c->breaker, now, result, o->probe);
    o->probe = 0;
}

void call_unadmit(client *c, call_outcome *o)
{
    /* At the time it was admitted: a Lua error (a clock hook's) may be
     * pending, and no later reading is needed to free the probe. */
    if (c->breaker.on && o->probe)
        tell_breaker(c, o->admitted_at, o, BREAKER_NEUTRAL);
}

/*
 * One failure is one try that got no answer in time or none at all
 * (timeout, network error: the server is down, hung or unreachable) or a
 * 5xx.  Any other answer, 4xx and 429 included, shows a server that
 * answers.  A TLS failure (the certificate, our CA setup), a call stopped
 * by Ctrl-C or the client itself say nothing about the server either way.
 */
static breaker_result try_result(const call_outcome *o)
{
    switch (o->r.kind) {
    case TK_OK:
        return o->r.status >= 500 ? BREAKER_FAILURE : BREAKER_SUCCESS;
    case TK_TIMEOUT:
    case TK_NETWORK:
        return BREAKER_FAILURE;
    case TK_TOO_LARGE:
        return BREAKER_SUCCESS;
    default:
        return BREAKER_NEUTRAL;
    }
}

int call_learns(const client *c, const call_outcome *o)
{
    return c->breaker.on || (o->r.kind == TK_OK && c->limiter != NULL);
}

/* ---- learning from a try ---- */

/* A whole non-negative number, as X-RateLimit-* carry; -1 otherwise. */
static int header_count(const char *v)
{
    long n = 0;

    while (*v == ' ')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++)
        if ((n = n * 10 + (*v - '0')) > 1000000)
            return -1;
    return *v == '\0' ? (int)n : -1;
}

/* Of several counts, the most cautious: the lowest. */
static void keep_lowest(int *kept, int v)
{
    if (v >= 0 && (*kept < 0 || v < *kept))
        *kept = v;
}

/*
 * Reads X-RateLimit-Limit, X-RateLimit-Remaining and Retry-After once per
 * response, each instance of a repeated header on its own: the error,
 * res.rate_limit, the hooks and the limiter all get these values.
 */
void call_learn(client *c, const limiter_group *g, double now, call_outcome *o)
{
    limiter_news news = {-1, -1, -1};
    const headers *h;
    const char *name, *value;
    size_t pos = 0;

    o->limit = o->remaining = -1;
    o->retry_after = -1;
    if (c->breaker.on)
        tell_breaker(c, now, o, try_result(o));
    if (o->r.kind != TK_OK)
        return;
    h = transfer_headers(o->tr);
    while ((name = headers_next(h, &pos, &value)) != NULL) {
        if (strcmp(name, "x-ratelimit-limit") == 0) {
            keep_lowest(&o->limit, header_count(value));
        } else if (strcmp(name, "x-ratelimit-remaining") == 0) {
            keep_lowest(&o->remaining, header_count(value));
        } else if (strcmp(name, "retry-after") == 0) {
            double after = retry_parse_after(value, time(NULL));

            if (after > o->retry_after) /* of several waits, the longest */
                o->retry_after = after;
        }
    }
    news.limit = o->limit;
    news.remaining = o->remaining;
    /* Only a 429's Retry-After is about the quota; a 503's is about the
     * server, and closing the group for everyone would not help it. */
    if (o->r.status == 429)
        news.retry_after = o->retry_after;
    if (c->limiter != NULL)
        c->limiter->ops->learn(c->limiter, g, now, &news);
}

/* ---- the retry decision ---- */

int call_want_retry(lua_State *L, client *c, const call_outcome *o,
                    int idempotent, double *delay, int *status)
{
    retry_outcome ro;
    double r;

    ro.kind = o->r.kind;
    ro.sent = o->r.sent;
    ro.status = o->r.status;
    ro.retry_after = o->retry_after;
    *delay = 0;
    /* This try opened the breaker, or found it open: a retry would be
     * refused, so the call ends now, with the try's own result. */
    if (o->breaker_wait > 0)
        return 0;
    /* Ask with r = 0 first: no need to call a Lua random hook for the
     * (common) final outcomes. */
    if (!retry_decide(&c->retry, &ro, idempotent, o->attempts, 0, delay))
        return 0;
    if ((*status = inject_random(L, c, &r)) != LUA_OK)
        return 0;
    return retry_decide(&c->retry, &ro, idempotent, o->attempts, r, delay);
}
