/*
 * request.c - one call as the caller sees it: wait for a limiter slot, send,
 * learn from the answer, and try again when the retry policy says so.
 *
 * The pieces (group lookup, acquire, learn) are shared with batch.c, which
 * runs the same steps for many calls at once.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

static const char *const kind_names[] = {
    "ok", "timeout", "network", "tls", "too_large", "closed", "internal",
    "interrupted", "rate_limited", "invalid_argument", "unauthenticated", "forbidden"};

const char *client_kind_name(int kind)
{
    if (kind < 0 || (size_t)kind >= sizeof kind_names / sizeof kind_names[0])
        return "internal";
    return kind_names[kind];
}

/* Every name a failure can carry ("ok" is not one): Lua maps each to a kind
 * of the contract (lua/wemasy/errors.lua) and a spec holds it to that. */
void client_push_kinds(lua_State *L)
{
    size_t i, n = sizeof kind_names / sizeof kind_names[0];

    lua_createtable(L, (int)n - 1, 0);
    for (i = 1; i < n; i++) {
        lua_pushstring(L, kind_names[i]);
        lua_rawseti(L, -2, (int)i);
    }
}

const limiter_group *client_group(client *c, const char *name)
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

const char *client_refusal(const client *c)
{
    return c->rate.wait ? c->refusal : "rate limit: no slot free and wait is off";
}

double client_acquire(client *c, const limiter_group *g, double now)
{
    if (c->limiter == NULL)
        return 0;
    return c->limiter->ops->acquire(c->limiter, g, now);
}

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
void client_learn(client *c, const limiter_group *g, double now, call_outcome *o)
{
    limiter_news news = {-1, -1, -1};
    const headers *h;
    const char *name, *value;
    size_t pos = 0;

    o->limit = o->remaining = -1;
    o->retry_after = -1;
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

void client_watch(client *c, interrupt_scope *s, const interrupt_scope **saved)
{
    interrupt_enter(s, c->interruptible && c->t != NULL);
    *saved = c->interrupt;
    c->interrupt = s;
    transport_watch(c->t, s);
}

interrupt_end client_unwatch(client *c, interrupt_scope *s,
                             const interrupt_scope *saved)
{
    c->interrupt = saved;
    transport_watch(c->t, saved);
    return interrupt_leave(s);
}

int client_interrupted(const client *c, call_outcome *o)
{
    if (!interrupt_pending(c->interrupt))
        return 0;
    o->kind = TK_INTERRUPTED;
    o->message = INTERRUPT_MESSAGE;
    o->retry_after = -1;
    return 1;
}

static void fail_outcome(call_outcome *o, int kind, const char *message,
                         double retry_after)
{
    o->kind = kind;
    o->message = message;
    o->sent = 0;
    o->retry_after = retry_after;
    o->limit = o->remaining = -1;
}

/* Waits (by sleeping: nothing else is in flight) until the limiter gives a
 * slot, or says why not in *o.  Returns 1 with a slot, 0 without one. */
static int wait_for_slot(lua_State *L, client *c, const limiter_group *g,
                         call_outcome *o, int *status)
{
    double start, now;

    if (c->limiter == NULL)
        return 1;
    if ((*status = inject_now(L, c, &start)) != LUA_OK)
        return 0;
    for (now = start;;) {
        double wait;

        /* Before the slot: an interrupted call takes none. */
        if (client_interrupted(c, o))
            return 0;
        wait = client_acquire(c, g, now);
        if (wait == 0)
            return 1;
        if (wait < 0) {
            fail_outcome(o, TK_INTERNAL, "rate limiter: no room for another group", -1);
            return 0;
        }
        /* Fail at once rather than after waiting max_wait for nothing. */
        if (!c->rate.wait || now + wait - start > c->rate.max_wait) {
            fail_outcome(o, KIND_RATE_LIMITED, client_refusal(c), wait);
            return 0;
        }
        if ((*status = inject_sleep(L, c, wait)) != LUA_OK ||
            (*status = inject_now(L, c, &now)) != LUA_OK)
            return 0;
    }
}

int client_want_retry(lua_State *L, client *c, const call_outcome *o,
                      int idempotent, double *delay, int *status)
{
    retry_outcome ro;
    double r;

    ro.kind = o->r.kind;
    ro.sent = o->r.sent;
    ro.status = o->r.status;
    ro.retry_after = o->retry_after;
    *delay = 0;
    /* Ask with r = 0 first: no need to call a Lua random hook for the
     * (common) final outcomes. */
    if (!retry_decide(&c->retry, &ro, idempotent, o->attempts, 0, delay))
        return 0;
    if ((*status = inject_random(L, c, &r)) != LUA_OK)
        return 0;
    return retry_decide(&c->retry, &ro, idempotent, o->attempts, r, delay);
}

/* One try: send, then fill *o from the result and learn from it. */
static int try_once(lua_State *L, client *c, const call_args *a,
                    call_outcome *o)
{
    double now = 0;
    int status;

    transport_perform(c->t, a->path, a->body, a->body_len, a->with_auth, &o->r);
    o->attempts++;
    o->tr = transport_last(c->t);
    o->kind = (int)o->r.kind;
    o->message = o->r.message;
    o->sent = o->r.sent;
    if (o->r.kind == TK_OK && c->limiter != NULL &&
        (status = inject_now(L, c, &now)) != LUA_OK)
        return status;
    client_learn(c, a->group, now, o);
    return LUA_OK;
}

int request_call(lua_State *L, client *c, const call_args *a, call_outcome *o)
{
    int status = LUA_OK;
    double delay;

    memset(o, 0, sizeof *o);
    o->retry_after = -1;
    o->limit = o->remaining = -1;
    if (c->t == NULL || c->closing) {
        fail_outcome(o, TK_CLOSED, "client is closed", -1);
        return LUA_OK;
    }
    for (;;) {
        if (!wait_for_slot(L, c, a->group, o, &status))
            return status;
        /* A hook may have closed the client meanwhile (the close waits for
         * this call to end): send nothing more. */
        if (c->closing) {
            fail_outcome(o, TK_CLOSED, "client is closed", -1);
            return LUA_OK;
        }
        /* A SIGINT during a hook: no new try. */
        if (client_interrupted(c, o))
            return LUA_OK;
        if ((status = try_once(L, c, a, o)) != LUA_OK)
            return status;
        if (!client_want_retry(L, c, o, a->idempotent, &delay, &status))
            return status;
        if ((status = inject_sleep(L, c, delay)) != LUA_OK)
            return status;
    }
}
