/*
 * core.c - the Lua binding of wemasy.core: the module, the client userdata
 * and the conversion of results into Lua values.
 *
 * Nothing here allocates C memory that a Lua error could leak: every C
 * allocation (transport, limiter store, multi pool) is owned by the
 * userdata as soon as it exists, and the idempotent cleanup (close, __gc)
 * frees it.  Options are read in options.c, one call runs in request.c,
 * many in batch.c, both over the steps of call.c.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "libcurl.h"

/* ---- client ----------------------------------------------------------------- */

client *client_check(lua_State *L, int idx)
{
    return (client *)luaL_checkudata(L, idx, CLIENT_MT);
}

/* A registry reference to the function at idx, or LUA_NOREF. */
static int ref_hook(lua_State *L, int idx)
{
    if (idx == 0)
        return LUA_NOREF;
    lua_pushvalue(L, idx);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* rate_limit.store: "shm" (the default), "local", or a Redis URL.  shared
 * = false (or an injected clock, options.c) keeps the limiter in-process
 * whatever the store says. */
static limiter_store *open_store(const client_options *o, char *err, size_t errlen)
{
    const char *store = o->store != NULL ? o->store : "shm";
    const char *url = o->transport.base_url, *token = o->transport.token;

    if (strcmp(store, "local") == 0 || !o->rate.shared)
        return limiter_open_local(o->rate.margin, err, errlen);
    if (strcmp(store, "shm") == 0)
        return limiter_open_shared(url, token, o->rate.margin, err, errlen);
    return limiter_open_redis(store, url, token, o->rate.margin, o->store_timeout,
                              o->fallback_share, err, errlen);
}

static void open_limiter(lua_State *L, client *c, const client_options *o)
{
    char err[LIMITER_ERRLEN];

    if (!o->rate.on)
        return;
    c->limiter = open_store(o, err, sizeof err);
    if (c->limiter == NULL)
        luaL_error(L, NEW_PREFIX "%s%s", strncmp(err, "option ", 7) == 0 ? "" : "rate limiter: ", err);
}

static int core_new(lua_State *L)
{
    client_options o;
    client *c;
    size_t len;
    char err[TRANSPORT_ERRLEN];

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    options_read(L, &o);
    len = strlen(o.transport.base_url);
    /* The userdata (with its __gc) exists before any C resource, so a Lua
     * error can never strand a curl handle or a mapping. */
    c = (client *)lua_newuserdata(L, offsetof(client, base_url) + len + 1);
    memset(c, 0, offsetof(client, base_url));
    c->clock_ref = c->sleep_ref = c->random_ref = LUA_NOREF;
    c->insecure = o.transport.insecure;
    c->interruptible = o.transport.interruptible;
    c->rate = o.rate;
    c->retry = o.retry;
    c->max_request_body = o.max_request_body;
    snprintf(c->refusal, sizeof c->refusal,
             "rate limit: the next slot is further away than max_wait (%g s)", o.rate.max_wait);
    memcpy(c->base_url, o.transport.base_url, len + 1);
    compat_setmetatable(L, CLIENT_MT);
    inject_seed(c);
    c->clock_ref = ref_hook(L, o.clock_idx);
    c->sleep_ref = ref_hook(L, o.sleep_idx);
    c->random_ref = ref_hook(L, o.random_idx);
    c->t = transport_new(&o.transport, err, sizeof err);
    if (c->t == NULL)
        return luaL_error(L, NEW_PREFIX "%s", err);
    open_limiter(L, c, &o);
    return 1;
}

/* Strict: a number is not a path or a body, even though Lua could coerce it. */
static const char *check_lstring(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        compat_typeerror(L, idx, "string");
    return lua_tolstring(L, idx, len);
}

int client_check_path(const char *path, size_t len, const char **why)
{
    size_t i;

    if (len == 0 || path[0] != '/') {
        *why = "path must start with '/'";
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c == 0x7f) {
            *why = "path must not contain spaces or control characters";
            return 0;
        }
    }
    return 1;
}

/* A repeated header becomes one "a, b" value, as RFC 9110 allows.  The
 * table is made at its final size: growing it key by key rehashed it four
 * times for the usual ten headers. */
void client_push_headers(lua_State *L, const transfer *tr)
{
    const headers *h = transfer_headers(tr);
    size_t pos = 0, start;
    const char *name, *value;
    int n = 0;

    while (headers_next(h, &pos, &value) != NULL)
        n++;
    lua_createtable(L, 0, n);
    for (pos = 0; (start = pos, name = headers_next(h, &pos, &value)) != NULL;) {
        /* "name\0value\0": both lengths from where the next pair starts */
        lua_pushlstring(L, name, (size_t)(value - name) - 1);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, value, pos - start - (size_t)(value - name) - 1);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, value);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
}

static int opt_bool_arg(lua_State *L, int idx, int dflt)
{
    if (lua_isnoneornil(L, idx))
        return dflt;
    luaL_checktype(L, idx, LUA_TBOOLEAN);
    return lua_toboolean(L, idx);
}

/* nil -> "default"; otherwise a name of 1 to 31 characters. */
static const limiter_group *check_group(lua_State *L, client *c, int idx)
{
    const limiter_group *g;
    const char *name = NULL;
    size_t len;

    if (!lua_isnoneornil(L, idx)) {
        name = check_lstring(L, idx, &len);
        if (!call_group_name_ok(name, len))
            luaL_argerror(L, idx, "group " CALL_GROUP_NAME_RULE);
    }
    g = call_group(c, name);
    if (g == NULL)
        luaL_argerror(L, idx, CALL_GROUPS_FULL);
    return g;
}

static void push_seconds(lua_State *L, double seconds)
{
    if (seconds >= 0)
        lua_pushnumber(L, (lua_Number)seconds);
    else
        lua_pushnil(L);
}

static void push_count(lua_State *L, int n)
{
    if (n >= 0)
        lua_pushinteger(L, n);
    else
        lua_pushnil(L);
}

/* What client:request returns for o, and the count:
 *   status, body, headers, attempts, retry_after, limit, remaining
 *     (the response's Retry-After and X-RateLimit-* as the core read them,
 *     nil when absent or not valid), or
 *   nil, kind, message, sent, attempts, retry_after. */
int client_push_outcome(lua_State *L, const call_outcome *o)
{
    if (o->kind == TK_OK) {
        lua_pushinteger(L, (lua_Integer)o->r.status);
        lua_pushlstring(L, o->r.body, o->r.body_len);
        client_push_headers(L, o->tr);
        lua_pushinteger(L, o->attempts);
        push_seconds(L, o->retry_after);
        push_count(L, o->limit);
        push_count(L, o->remaining);
        return 7;
    }
    lua_pushnil(L);
    lua_pushstring(L, client_kind_name(o->kind));
    lua_pushstring(L, o->message != NULL ? o->message : "");
    lua_pushboolean(L, o->sent);
    lua_pushinteger(L, o->attempts);
    push_seconds(L, o->retry_after);
    return 6;
}

typedef struct {
    client *c;
    const call_args *a;
    call_outcome *o;
} request_job;

/* request_call under lua_pcall: whatever a hook does, even raise out of
 * memory, client_request gets control back and clears in_request. */
static int request_protected(lua_State *L)
{
    request_job *job = (request_job *)lua_touserdata(L, 1);

    if (request_call(L, job->c, job->a, job->o) != LUA_OK)
        return lua_error(L);
    return 0;
}

/* client:request(path, body [, with_auth [, group [, idempotent]]]) */
static int client_request(lua_State *L)
{
    client *c = client_check(L, 1);
    call_args a;
    call_outcome o;
    request_job job;
    interrupt_scope scope;
    const interrupt_scope *outer;
    size_t path_len;
    const char *why;
    int status, n;
    interrupt_end ended;

    memset(&a, 0, sizeof a);
    a.path = check_lstring(L, 2, &path_len);
    /* body stays referenced by the stack while libcurl reads it. */
    a.body = check_lstring(L, 3, &a.body_len);
    /* The Lua side refuses such a body before encoding it, naming the
     * field; this is the bound for callers of the core itself. */
    if (a.body_len > c->max_request_body)
        luaL_argerror(L, 3, "body is larger than max_request_body");
    if (!client_check_path(a.path, path_len, &why))
        luaL_argerror(L, 2, why);
    a.with_auth = opt_bool_arg(L, 4, 1);
    a.group = check_group(L, c, 5);
    a.idempotent = opt_bool_arg(L, 6, 0);
    /* A hook of this very request calling it again would reuse the handle
     * whose response the outer call is about to return. */
    if (c->in_request)
        return luaL_error(L, "wemasy.core: client:request called from a hook of a "
                             "request in progress on the same client");
    lua_settop(L, 6);
    job.c = c;
    job.a = &a;
    job.o = &o;
    c->in_request = 1;
    call_watch(c, &scope, &outer);
    lua_pushcfunction(L, request_protected);
    lua_pushlightuserdata(L, &job);
    status = lua_pcall(L, 1, 0, 0);
    c->in_request = 0;
    /* Here the host's SIGINT handler runs, if a SIGINT came (lua.c's
     * raises "interrupted!" as this function returns). */
    ended = call_unwatch(c, &scope, outer);
    if (status != LUA_OK) {
        client_close_pending(L, c);
        return lua_error(L);
    }
    if (ended == INTERRUPT_RAISE) {
        client_close_pending(L, c);
        return client_raise_interrupted(L);
    }
    /* The outcome points into the handle: push it before any deferred
     * close frees that. */
    n = client_push_outcome(L, &o);
    client_close_pending(L, c);
    return n;
}

/* client:rate_limit([group]) -> { limit, remaining, reset_in, closed_for,
 * store }: store is the kind of store that answered ("redis", or "shm" when
 * a Redis store fell back). */
static int client_rate_limit(lua_State *L)
{
    client *c = client_check(L, 1);
    const limiter_group *g = check_group(L, c, 2);
    limiter_report rep;
    double now;

    if (c->limiter == NULL || c->closing) {
        lua_pushnil(L);
        lua_pushstring(L, c->t == NULL || c->closing ? CALL_CLOSED : "rate limiting is off");
        return 2;
    }
    if (inject_now(L, c, &now) != LUA_OK)
        return lua_error(L);
    if (c->limiter->ops->report(c->limiter, g, now, &rep) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, CALL_LIMITER_FULL);
        return 2;
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, rep.limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, rep.remaining);
    lua_setfield(L, -2, "remaining");
    lua_pushnumber(L, (lua_Number)rep.reset_in);
    lua_setfield(L, -2, "reset_in");
    lua_pushnumber(L, (lua_Number)rep.closed_for);
    lua_setfield(L, -2, "closed_for");
    lua_pushstring(L, c->limiter->kind);
    lua_setfield(L, -2, "store");
    return 1;
}

/* client:max_request_body() -> bytes; the option's value, or its default
 * (the one place that knows it), also once the client is closed. */
static int client_max_request_body(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)client_check(L, 1)->max_request_body);
    return 1;
}

/* Lua's own words for Ctrl-C, as lua.c and luajit.c raise them. */
int client_raise_interrupted(lua_State *L)
{
    lua_pushliteral(L, "interrupted!");
    return lua_error(L);
}

/* core.on_interrupt([mode]) -> the mode before: what a call stopped by
 * SIGINT does at its end.  "deliver" (the default): hand the signal to the
 * handler the host had (lua.c's raises "interrupted!").  "raise": raise
 * "interrupted!" here, for a prompt that must survive every Ctrl-C
 * (wemasy.repl).  Process-wide, as signal dispositions are. */
static int core_on_interrupt(lua_State *L)
{
    static const char *const modes[] = {"deliver", "raise", NULL};
    int before;

    before = interrupt_set_raise(lua_isnoneornil(L, 1)
                                     ? -1
                                     : luaL_checkoption(L, 1, NULL, modes));
    lua_pushstring(L, modes[before]);
    return 1;
}

static int client_has_token(lua_State *L)
{
    client *c = client_check(L, 1);

    /* A closed client holds no token any more (its header line is wiped). */
    lua_pushboolean(L, !c->closing && transport_has_token(c->t));
    return 1;
}

static void unref_hook(lua_State *L, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref); /* LUA_NOREF is ignored */
    *ref = LUA_NOREF;
}

void client_after_fork(client *c)
{
    if (!transport_forked(c->t) && !multi_pool_forked(c->pool))
        return;
    /* The pool's connections are disowned with the transport's (one set
     * of sockets); if that failed, the pool is leaked, not closed. */
    if (transport_after_fork(c->t) == 0)
        multi_pool_free(c->pool);
    c->pool = NULL;
}

/* Frees every C resource; safe to run any number of times. */
static void client_free(lua_State *L, client *c)
{
    client_after_fork(c); /* closed in a child of fork(): touch nothing of the parent's */
    /* The pool's handles point at the transport's header lists. */
    multi_pool_free(c->pool);
    c->pool = NULL;
    transport_free(c->t);
    c->t = NULL;
    limiter_close(c->limiter);
    c->limiter = NULL;
    unref_hook(L, &c->clock_ref);
    unref_hook(L, &c->sleep_ref);
    unref_hook(L, &c->random_ref);
}

void client_close_pending(lua_State *L, client *c)
{
    if (c->closing && !c->in_request && !c->in_batch)
        client_free(L, c);
}

/* Shared by close, __gc and __close.  From a hook or progress callback of
 * a call in progress (never __gc: the call holds the userdata) it only
 * marks the client closed; the call frees it when it returns. */
static int client_cleanup(lua_State *L)
{
    client *c = client_check(L, 1);

    c->closing = 1;
    client_close_pending(L, c);
    return 0;
}

static int client_close(lua_State *L)
{
    client_cleanup(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int client_tostring(lua_State *L)
{
    client *c = client_check(L, 1);

    lua_pushfstring(L, "wemasy.core client (%s)%s%s", c->base_url,
                    c->t == NULL || c->closing ? " [closed]" : "",
                    c->insecure ? " [INSECURE: TLS verification disabled]" : "");
    return 1;
}

/* ---- module functions ---------------------------------------------------------- */

/* core.now() -> seconds on the monotonic clock the limiter uses: for
 * durations (hooks, debug lines); it never jumps with the wall clock. */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)limiter_now());
    return 1;
}

/* core.file_mode(path) -> permission bits (st_mode & 07777), is_regular;
 * or nil, reason.  For the CLI's --token-file, which warns about a token
 * that other users can read, without needing luaposix. */
static int core_file_mode(lua_State *L)
{
    size_t len;
    const char *path = check_lstring(L, 1, &len);
    struct stat st;

    if (stat(path, &st) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_pushboolean(L, S_ISREG(st.st_mode));
    return 2;
}

/* ---- module ------------------------------------------------------------------ */

static const luaL_Reg client_methods[] = {
    {"request", client_request},
    {"batch", client_batch},
    {"rate_limit", client_rate_limit},
    {"has_token", client_has_token},
    {"max_request_body", client_max_request_body},
    {"close", client_close},
    {NULL, NULL}};

static const luaL_Reg client_meta[] = {
    {"__gc", client_cleanup},
    {"__close", client_cleanup}, /* 5.4 to-be-closed variables; ignored on 5.1 */
    {"__tostring", client_tostring},
    {NULL, NULL}};

static const luaL_Reg module_functions[] = {
    {"new", core_new},
    {"now", core_now},
    {"file_mode", core_file_mode},
    {"on_interrupt", core_on_interrupt},
    {NULL, NULL}};

static void create_metatable(lua_State *L)
{
    luaL_newmetatable(L, CLIENT_MT); /* reused if the module is loaded twice */
    compat_setfuncs(L, client_meta);
    compat_newlib(L, client_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

static void push_features(lua_State *L)
{
    const char *ssl = libcurl_ssl_version();

    lua_newtable(L);
    lua_pushboolean(L, libcurl_has_http2());
    lua_setfield(L, -2, "http2");
    if (ssl != NULL)
        lua_pushstring(L, ssl);
    else
        lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ssl");
}

int luaopen_wemasy_core(lua_State *L);

int luaopen_wemasy_core(lua_State *L)
{
    if (libcurl_global_init() != 0)
        return luaL_error(L, "wemasy.core: curl_global_init failed");
    create_metatable(L);
    compat_newlib(L, module_functions);
    lua_pushliteral(L, WEMASY_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushstring(L, libcurl_version());
    lua_setfield(L, -2, "curl_version");
    push_features(L);
    lua_setfield(L, -2, "features");
    client_push_kinds(L);
    lua_setfield(L, -2, "kinds");
    json_push_decoder(L);
    lua_setfield(L, -2, "json_decode");
    options_push(L);
    lua_setfield(L, -2, "options");
    options_push_batch(L);
    lua_setfield(L, -2, "batch_options");
    TESTS_OPEN(L); /* the test build's _debug_ functions (tests.c) */
    return 1;
}
