/*
 * inject.c - the clock, sleep and random number source of a client: the
 * built-in ones, or Lua functions injected through core.new (so specs can
 * run a minute of rate limiting in milliseconds).
 *
 * Lua hooks run under lua_pcall: an error comes back as a status, so the
 * caller can first put its C state in order (abort transfers) and then
 * raise it.  No hook is ever called with a limiter lock held.
 */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

/* splitmix64: tiny and good enough for jitter, which needs no secrecy. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void inject_seed(client *c)
{
    struct timespec ts;

    /* Different per process and per client, so workers that fail together
     * do not retry together. */
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
             ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)c;
}

/* Calls the hook with an optional number argument and wants a number back
 * (or nothing, when want_result is 0). */
static int call_hook(lua_State *L, int ref, const char *name, int nargs,
                     double arg, int want_result, double *out)
{
    int rc;

    luaL_checkstack(L, 3, "wemasy hook");
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (nargs > 0)
        lua_pushnumber(L, (lua_Number)arg);
    rc = lua_pcall(L, nargs, want_result ? 1 : 0, 0);
    if (rc != LUA_OK)
        return rc;
    if (!want_result)
        return LUA_OK;
    if (lua_type(L, -1) != LUA_TNUMBER) {
        const char *got = luaL_typename(L, -1);

        lua_pop(L, 1);
        lua_pushfstring(L, "wemasy.core: the %s hook must return a number (got %s)",
                        name, got);
        return LUA_ERRRUN;
    }
    *out = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return LUA_OK;
}

/* Seconds an injected clock may stand still while the sleep hook sleeps.
 * A clock of coarse resolution moves within its tick; one that stays put
 * this long is not the sleep hook's clock, and every wait for a slot or a
 * retry would ask it again forever. */
#define CLOCK_STALL_MAX 60.0

int inject_now(lua_State *L, client *c, double *now)
{
    int rc;

    if (c->clock_ref == LUA_NOREF) {
        *now = limiter_now();
        return LUA_OK;
    }
    rc = call_hook(L, c->clock_ref, "clock", 0, 0, 1, now);
    if (rc != LUA_OK)
        return rc;
    /* NaN or infinity would poison the limiter's ring for good. */
    if (!(*now > -1e15 && *now < 1e15)) {
        lua_pushliteral(L, "wemasy.core: the clock hook must return a finite number");
        return LUA_ERRRUN;
    }
    if (*now != c->clock_seen) {
        c->clock_seen = *now;
        c->clock_stall = 0;
    }
    return LUA_OK;
}

int inject_sleep(lua_State *L, client *c, double seconds)
{
    if (seconds <= 0)
        return LUA_OK;
    /* Counted after the sleep: one long wait (max_wait may well pass 60 s)
     * is not a stall; asking again of a clock that did not move is. */
    if (c->clock_ref != LUA_NOREF && c->clock_stall > CLOCK_STALL_MAX) {
        c->clock_stall = 0;
        lua_pushfstring(L, "wemasy.core: the clock hook stood still while the sleep hook slept "
                           "%d s: the two hooks must share one time", (int)CLOCK_STALL_MAX);
        return LUA_ERRRUN;
    }
    if (c->clock_ref != LUA_NOREF)
        c->clock_stall += seconds;
    /* A Lua sleep hook is the caller's: the call looks at SIGINT after it. */
    if (c->sleep_ref != LUA_NOREF)
        return call_hook(L, c->sleep_ref, "sleep", 1, seconds, 0, NULL);
    /* Wakes early for a SIGINT; the caller looks before going on. */
    interrupt_sleep(c->interrupt, seconds);
    return LUA_OK;
}

int inject_random(lua_State *L, client *c, double *r)
{
    int rc;

    if (c->random_ref == LUA_NOREF) {
        /* 53 random bits: every double in [0, 1) this can produce is exact. */
        *r = (double)(next_random(&c->rng) >> 11) / 9007199254740992.0;
        return LUA_OK;
    }
    rc = call_hook(L, c->random_ref, "random", 0, 0, 1, r);
    /* Keep the jitter bounds whatever the hook returns (NaN included). */
    if (rc == LUA_OK && !(*r >= 0))
        *r = 0;
    if (rc == LUA_OK && *r > 1)
        *r = 1;
    return rc;
}
