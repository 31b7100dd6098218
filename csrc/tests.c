/*
 * tests.c - the test build's functions (tests.h): core._debug_* and
 * client:_debug_*, for specs to look inside the core or to provoke what a
 * dead process leaves behind.  Compiled to nothing without WEMASY_TESTS,
 * so the release wemasy.core has none of them.
 */
#ifdef WEMASY_TESTS

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"

/* nil or absent: no token. */
#define token_arg(L, idx) luaL_optstring((L), (idx), NULL)

/* The shared segment's name of (base_url, token), the arguments 1 and 2. */
static void segment_arg(lua_State *L, char *name)
{
    limiter_segment_name(luaL_checkstring(L, 1), token_arg(L, 2), name);
}

/* true, or raises "wemasy.core.<fn>: <err>" when the limiter said no (rc). */
static int true_or_raise(lua_State *L, int rc, const char *fn, const char *err)
{
    if (rc != 0)
        return luaL_error(L, "wemasy.core.%s: %s", fn, err);
    lua_pushboolean(L, 1);
    return 1;
}

static void say_locked(void)
{
    fputs("LOCKED\n", stdout);
    fflush(stdout);
}

/* core._debug_hold_lock(base_url, token, seconds) takes the shared limiter
 * lock of (base_url, token), prints "LOCKED" on stdout and holds it for
 * `seconds`, so a spec can kill the process mid-hold. */
static int debug_hold_lock(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *token = token_arg(L, 2);
    double seconds = (double)luaL_checknumber(L, 3);
    char err[LIMITER_ERRLEN];
    int rc = limiter_shared_hold_lock(url, token, seconds, say_locked, err, sizeof err);

    return true_or_raise(L, rc, "_debug_hold_lock", err);
}

/* core._debug_quota_key(base_url, token) -> the 16 hex digits that name
 * the quota of (base_url, token) in Redis keys. */
static int debug_quota_key(lua_State *L)
{
    char hex[17];

    snprintf(hex, sizeof hex, "%016llx",
             (unsigned long long)limiter_quota_key(luaL_checkstring(L, 1),
                                                   token_arg(L, 2)));
    lua_pushstring(L, hex);
    return 1;
}

/* core._debug_unlink(base_url, token) removes the shared limiter segment of
 * (base_url, token), so specs leave /dev/shm as they found it. */
static int debug_unlink(lua_State *L)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];

    segment_arg(L, name);
    lua_pushboolean(L, shm_unlink(name) == 0 || errno == ENOENT);
    return 1;
}

/* core._debug_stall_init(base_url, token) leaves the segment of
 * (base_url, token) marked "being set up", as if that process had died. */
static int debug_stall_init(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    char err[LIMITER_ERRLEN];
    int rc = limiter_shared_stall_init(url, token_arg(L, 2), err, sizeof err);

    return true_or_raise(L, rc, "_debug_stall_init", err);
}

/* core._debug_set_breaker(base_url, token, phase, failures, open_in,
 * probe_in) writes the segment's breaker fields unchecked (times: seconds
 * from now), for a spec of what the next user makes of them. */
static int debug_set_breaker(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    char err[LIMITER_ERRLEN];
    int rc = limiter_shared_set_breaker(url, token_arg(L, 2), luaL_checknumber(L, 3),
                                        luaL_checknumber(L, 4), luaL_checknumber(L, 5),
                                        luaL_checknumber(L, 6), err, sizeof err);

    return true_or_raise(L, rc, "_debug_set_breaker", err);
}

/* core._debug_segment(base_url, token) -> the segment name, for specs to
 * check it. */
static int debug_segment(lua_State *L)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];

    segment_arg(L, name);
    lua_pushstring(L, name);
    return 1;
}

/* core._debug_segment_layout() -> { <field> = { offset =, size = } }: where
 * the segment's fields lie (group fields: of the first group; "group" is
 * the stride), for specs that write into /dev/shm/<name> as a hostile
 * process would. */
static int debug_segment_layout(lua_State *L)
{
    const tests_field *f;

    lua_newtable(L);
    for (f = limiter_shared_layout(); f->name != NULL; f++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (lua_Integer)f->offset);
        lua_setfield(L, -2, "offset");
        lua_pushinteger(L, (lua_Integer)f->size);
        lua_setfield(L, -2, "size");
        lua_setfield(L, -2, f->name);
    }
    return 1;
}

/* core._debug_segment_bound(seconds): how long a segment's lock or setup
 * may keep a caller waiting before it counts as broken (default 1 s). */
static int debug_segment_bound(lua_State *L)
{
    limiter_shared_set_bound((double)luaL_checknumber(L, 1));
    return 0;
}

/* core._debug_pack(format, value) -> the bytes of value in this machine's
 * order: "u32", "i32" or "f64" (LuaJIT has no string.pack). */
static int debug_pack(lua_State *L)
{
    const char *fmt = luaL_checkstring(L, 1);
    char bytes[8];
    size_t n;

    if (strcmp(fmt, "f64") == 0) {
        double d = (double)luaL_checknumber(L, 2);

        memcpy(bytes, &d, n = sizeof d);
    } else if (strcmp(fmt, "u32") == 0 || strcmp(fmt, "i32") == 0) {
        /* Wraps: -1 gives ffffffff either way. */
        uint32_t u = (uint32_t)(int64_t)luaL_checknumber(L, 2);

        memcpy(bytes, &u, n = sizeof u);
    } else {
        return luaL_argerror(L, 1, "u32, i32 or f64");
    }
    lua_pushlstring(L, bytes, n);
    return 1;
}

/* client:_debug_batch_visits() -> queued items the last batch's scans
 * looked at. */
static int debug_batch_visits(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)client_check(L, 1)->tests.batch_visits);
    return 1;
}

/* client:_debug_limiter_reset() -> true, or nil and why: the store's reset
 * op (forget this token's quota), which no public method calls yet. */
static int debug_limiter_reset(lua_State *L)
{
    client *c = client_check(L, 1);

    if (c->limiter == NULL || c->limiter->ops->reset == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "this store has no reset");
        return 2;
    }
    if (c->limiter->ops->reset(c->limiter) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "the store could not reset");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* core._debug_fork() -> fork()'s result (0 in the child), so
 * spec/core/fork_spec.lua can fork a process that holds a client on Lua 5.4 as
 * well (Debian's lua-posix is for 5.1 to 5.3). */
static int debug_fork(lua_State *L)
{
    fflush(NULL); /* or both processes would flush what was buffered */
    lua_pushinteger(L, (lua_Integer)fork());
    return 1;
}

/* core._debug_wait(pid) -> the child's exit status, or nil. */
static int debug_wait(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            lua_pushnil(L);
            return 1;
        }
    if (WIFEXITED(status))
        lua_pushinteger(L, WEXITSTATUS(status));
    else
        lua_pushinteger(L, 128 + WTERMSIG(status));
    return 1;
}

static const luaL_Reg module_functions[] = {
    {"_debug_hold_lock", debug_hold_lock},
    {"_debug_unlink", debug_unlink},
    {"_debug_stall_init", debug_stall_init},
    {"_debug_segment", debug_segment},
    {"_debug_quota_key", debug_quota_key},
    {"_debug_set_breaker", debug_set_breaker},
    {"_debug_segment_layout", debug_segment_layout},
    {"_debug_segment_bound", debug_segment_bound},
    {"_debug_pack", debug_pack},
    {"_debug_fork", debug_fork},
    {"_debug_wait", debug_wait},
    {NULL, NULL}};

static const luaL_Reg client_methods[] = {
    {"_debug_batch_visits", debug_batch_visits},
    {"_debug_limiter_reset", debug_limiter_reset},
    {NULL, NULL}};

void tests_open(lua_State *L)
{
    compat_setfuncs(L, module_functions);
    luaL_getmetatable(L, CLIENT_MT);
    lua_getfield(L, -1, "__index");
    compat_setfuncs(L, client_methods);
    lua_pop(L, 2);
}

#endif /* WEMASY_TESTS */
