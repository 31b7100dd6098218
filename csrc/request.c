/*
 * request.c - one call as the caller sees it: wait for a limiter slot
 * (sleeping: nothing else is in flight), send, learn from the answer, and
 * sleep before trying again when the retry policy says so.  The steps are
 * call.c's, which batch.c runs for many calls at once.
 */
#include "client.h"

static const char *const kind_names[] = {
    "ok", "timeout", "network", "tls", "too_large", "closed", "internal",
    "interrupted", "rate_limited", "invalid_argument", "unauthenticated", "forbidden",
    "circuit_open"};

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

/* Waits (by sleeping: nothing else is in flight) until the limiter gives a
 * slot, asking first at `start`, or says why not in *o.  Returns 1 with a
 * slot, 0 without one. */
static int wait_for_slot(lua_State *L, client *c, const limiter_group *g,
                         double start, call_outcome *o, int *status)
{
    double now;

    if (c->limiter == NULL)
        return 1;
    for (now = start;;) {
        double wait;

        /* Before the slot: an interrupted call takes none. */
        if (call_interrupted(c, o))
            return 0;
        wait = call_acquire(c, g, now, o);
        if (wait == 0)
            return 1;
        if (wait < 0 || !call_may_wait(c, o, start, now, wait))
            return 0;
        if ((*status = inject_sleep(L, c, wait)) != LUA_OK ||
            (*status = inject_now(L, c, &now)) != LUA_OK)
            return 0;
    }
}

/* One try: send, then record the result in *o and learn from it. */
static int try_once(lua_State *L, client *c, const call_args *a,
                    call_outcome *o)
{
    transport_result r;
    double now = 0;
    int status;

    transport_perform(c->t, a->path, a->body, a->body_len, a->with_auth, &r);
    call_record(o, &r, transport_last(c->t));
    /* The clock (maybe a Lua hook) only when limiter or breaker learn. */
    if (call_learns(c, o) && (status = inject_now(L, c, &now)) != LUA_OK)
        return status;
    call_learn(c, a->group, now, o);
    return LUA_OK;
}

int request_call(lua_State *L, client *c, const call_args *a, call_outcome *o)
{
    int status;
    double delay;

    call_begin(o);
    if (call_closed(c, o))
        return LUA_OK;
    for (;;) {
        double now = 0;

        /* One reading for the breaker and the first ask for a slot. */
        status = c->breaker.on || c->limiter != NULL ? inject_now(L, c, &now) : LUA_OK;
        if (status != LUA_OK)
            return status;
        /* The breaker first: a refused try takes no slot. */
        if (!call_admit(c, now, o))
            return LUA_OK;
        if (!wait_for_slot(L, c, a->group, now, o, &status) || !call_may_try(c, o)) {
            call_unadmit(c, o); /* not tried after all: a probe goes back */
            return status;
        }
        if ((status = try_once(L, c, a, o)) != LUA_OK)
            return status;
        if (!call_want_retry(L, c, o, a->idempotent, &delay, &status))
            return status;
        if ((status = inject_sleep(L, c, delay)) != LUA_OK)
            return status;
    }
}
