/*
 * core.c - the Lua binding of wemasy.core: option checking, the client
 * userdata and the conversion of transport results into Lua values.
 *
 * Nothing here allocates C memory that a Lua error could leak: the only C
 * allocation (the transport) is owned by the userdata as soon as it exists,
 * and __gc frees it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "transport.h"

#ifndef WEMASY_VERSION
#define WEMASY_VERSION "0.0.0-dev"
#endif

#define CLIENT_MT "wemasy.core.client"
#define NEW_PREFIX "wemasy.core.new: "

#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_BODY ((int64_t)16 * 1024 * 1024)
/* Keeps the millisecond value inside a 32-bit long (about 24.8 days). */
#define MAX_SECONDS 2147483.0
/* Doubles represent every integer up to here, on 5.1 as on 5.4. */
#define MAX_BODY_LIMIT ((int64_t)1 << 53)

typedef struct {
    transport *t; /* NULL once closed */
    int insecure;
    /* Copied in so tostring still works after close. */
    char base_url[];
} client;

static const char *const kind_names[] = {
    "ok", "timeout", "network", "tls", "too_large", "closed", "internal"};

static const char *const option_names[] = {
    "base_url", "token",   "timeout", "connect_timeout", "ca_file",
    "ca_path",  "insecure", "proxy",  "max_body",        "user_agent",
    NULL};

/* ---- option parsing ------------------------------------------------------- */

/* Every option error names the option; none ever quotes a string value,
 * because that value might be the token. */
static int option_error(lua_State *L, const char *name, const char *what)
{
    return luaL_error(L, NEW_PREFIX "option '%s' %s (got %s)", name, what,
                      luaL_typename(L, -1));
}

static void check_known_options(lua_State *L)
{
    const char *const *known;

    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *name;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, NEW_PREFIX "option names must be strings (got %s)",
                       luaL_typename(L, -2));
        name = lua_tostring(L, -2);
        for (known = option_names; *known != NULL; known++)
            if (strcmp(*known, name) == 0)
                break;
        if (*known == NULL)
            luaL_error(L, NEW_PREFIX "unknown option '%s'", name);
        lua_pop(L, 1);
    }
}

/* Raw access: reading options must not run the caller's metamethods.  The
 * value stays on the stack so C pointers into it remain valid. */
static int push_option(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, 1);
    return lua_type(L, -1);
}

static int has_forbidden_byte(const char *s, size_t len)
{
    size_t i;

    /* CR and LF would let a value inject headers; NUL would silently cut
     * the value short inside libcurl. */
    for (i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

/* nil -> NULL.  Otherwise a string without CR/LF/NUL, non-empty if asked. */
static const char *opt_string(lua_State *L, const char *name, int allow_empty,
                              size_t *len_out)
{
    const char *s;
    size_t len;
    int type = push_option(L, name);

    if (type == LUA_TNIL)
        return NULL;
    if (type != LUA_TSTRING)
        option_error(L, name, allow_empty ? "must be a string" : "must be a non-empty string");
    s = lua_tolstring(L, -1, &len);
    if (!allow_empty && len == 0)
        option_error(L, name, "must be a non-empty string");
    if (has_forbidden_byte(s, len))
        luaL_error(L, NEW_PREFIX "option '%s' must not contain CR, LF or NUL bytes",
                   name);
    if (len_out != NULL)
        *len_out = len;
    return s;
}

static long opt_millis(lua_State *L, const char *name, lua_Number dflt)
{
    lua_Number seconds = dflt, ms;
    long rounded;
    int type = push_option(L, name);

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, name, "must be a positive number");
    if (type == LUA_TNUMBER) {
        seconds = lua_tonumber(L, -1);
        /* Written so that NaN fails too. */
        if (!(seconds > 0 && seconds <= MAX_SECONDS))
            luaL_error(L, NEW_PREFIX "option '%s' must be a positive number "
                          "of seconds up to %d (got %f)",
                       name, (int)MAX_SECONDS, seconds);
    }
    /* Round up: 0 would mean "no timeout" to libcurl. */
    ms = seconds * 1000;
    rounded = (long)ms;
    if ((lua_Number)rounded < ms)
        rounded++;
    lua_pop(L, 1);
    return rounded > 0 ? rounded : 1;
}

static int opt_boolean(lua_State *L, const char *name)
{
    int type = push_option(L, name);
    int value;

    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        option_error(L, name, "must be a boolean");
    value = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return value;
}

static size_t opt_max_body(lua_State *L)
{
    int64_t value = DEFAULT_MAX_BODY;
    int type = push_option(L, "max_body");

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, "max_body", "must be a positive integer");
    if (type == LUA_TNUMBER &&
        (!compat_tointeger(L, -1, &value) || value <= 0 || value > MAX_BODY_LIMIT))
        luaL_error(L, NEW_PREFIX "option 'max_body' must be a positive integer "
                      "up to 2^53 (got %s)",
                   lua_tostring(L, -1));
    lua_pop(L, 1);
    return (size_t)value;
}

static int has_prefix_nocase(const char *s, size_t len, const char *prefix)
{
    size_t i, n = strlen(prefix);

    if (len < n)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != prefix[i])
            return 0;
    }
    return 1;
}

/* Leaves the (possibly shortened) base_url string on the stack. */
static const char *opt_base_url(lua_State *L)
{
    size_t len, scheme, i;
    const char *url = opt_string(L, "base_url", 0, &len);

    if (url == NULL)
        option_error(L, "base_url", "must be a non-empty string");
    scheme = has_prefix_nocase(url, len, "https://") ? 8
           : has_prefix_nocase(url, len, "http://")  ? 7 : 0;
    if (scheme == 0 || len == scheme)
        luaL_error(L, NEW_PREFIX "option 'base_url' must start with http:// or "
                      "https:// and name a host");
    for (i = 0; i < len; i++)
        if (url[i] == ' ' || url[i] == '\t')
            luaL_error(L, NEW_PREFIX "option 'base_url' must not contain spaces");
    /* Paths start with '/', so one trailing '/' here would double it. */
    if (url[len - 1] == '/' && len - 1 > scheme) {
        lua_pushlstring(L, url, len - 1); /* returns void on 5.1 */
        url = lua_tostring(L, -1);
    }
    return url;
}

static void read_options(lua_State *L, transport_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    luaL_checkstack(L, 16, "wemasy.core.new");
    cfg->base_url = opt_base_url(L);
    cfg->token = opt_string(L, "token", 0, NULL);
    cfg->timeout_ms = opt_millis(L, "timeout", DEFAULT_TIMEOUT);
    cfg->connect_timeout_ms = opt_millis(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    cfg->ca_file = opt_string(L, "ca_file", 0, NULL);
    cfg->ca_path = opt_string(L, "ca_path", 0, NULL);
    cfg->insecure = opt_boolean(L, "insecure");
    /* "" is meaningful to libcurl: no proxy, ignore the environment. */
    cfg->proxy = opt_string(L, "proxy", 1, NULL);
    cfg->max_body = opt_max_body(L);
    cfg->user_agent = opt_string(L, "user_agent", 0, NULL);
    if (cfg->user_agent == NULL)
        cfg->user_agent = lua_pushfstring(L, "wemasy-lua/%s libcurl/%s",
                                          WEMASY_VERSION, transport_curl_version());
}

/* ---- client ----------------------------------------------------------------- */

static client *check_client(lua_State *L)
{
    return (client *)luaL_checkudata(L, 1, CLIENT_MT);
}

static int core_new(lua_State *L)
{
    transport_config cfg;
    client *c;
    size_t len;
    char err[TRANSPORT_ERRLEN];

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_known_options(L);
    read_options(L, &cfg);
    len = strlen(cfg.base_url);
    /* The userdata (with its __gc) exists before the transport, so a Lua
     * error can never strand a curl handle. */
    c = (client *)lua_newuserdata(L, offsetof(client, base_url) + len + 1);
    c->t = NULL;
    c->insecure = cfg.insecure;
    memcpy(c->base_url, cfg.base_url, len + 1);
    compat_setmetatable(L, CLIENT_MT);
    c->t = transport_new(&cfg, err, sizeof err);
    if (c->t == NULL)
        return luaL_error(L, NEW_PREFIX "%s", err);
    return 1;
}

/* Strict: a number is not a path or a body, even though Lua could coerce it. */
static const char *check_lstring(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        compat_typeerror(L, idx, "string");
    return lua_tolstring(L, idx, len);
}

static void check_path(lua_State *L, const char *path, size_t len)
{
    size_t i;

    if (len == 0 || path[0] != '/')
        luaL_argerror(L, 2, "path must start with '/'");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c == 0x7f)
            luaL_argerror(L, 2, "path must not contain spaces or control characters");
    }
}

static int push_failure(lua_State *L, const transport_result *r)
{
    lua_pushnil(L);
    lua_pushstring(L, kind_names[r->kind]);
    lua_pushstring(L, r->message);
    lua_pushboolean(L, r->sent);
    return 4;
}

/* A repeated header becomes one "a, b" value, as RFC 9110 allows. */
static void push_headers(lua_State *L, const transport *t)
{
    size_t pos = 0;
    const char *name, *value;

    lua_newtable(L);
    while ((name = transport_header_next(t, &pos, &value)) != NULL) {
        lua_pushstring(L, name);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushstring(L, value);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, value);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
}

static int client_request(lua_State *L)
{
    client *c = check_client(L);
    size_t path_len, body_len;
    const char *path = check_lstring(L, 2, &path_len);
    const char *body = check_lstring(L, 3, &body_len);
    int with_auth = 1;
    transport_result r;

    check_path(L, path, path_len);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TBOOLEAN);
        with_auth = lua_toboolean(L, 4);
    }
    /* body stays referenced by the stack while libcurl reads it. */
    if (transport_perform(c->t, path, body, body_len, with_auth, &r) != TK_OK)
        return push_failure(L, &r);
    lua_pushinteger(L, (lua_Integer)r.status);
    lua_pushlstring(L, r.body, r.body_len);
    push_headers(L, c->t);
    return 3;
}

static int client_has_token(lua_State *L)
{
    client *c = check_client(L);

    lua_pushboolean(L, transport_has_token(c->t));
    return 1;
}

/* Shared by close, __gc and __close; safe to run any number of times. */
static int client_cleanup(lua_State *L)
{
    client *c = check_client(L);

    transport_free(c->t);
    c->t = NULL;
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
    client *c = check_client(L);

    lua_pushfstring(L, "wemasy.core client (%s)%s%s", c->base_url,
                    c->t == NULL ? " [closed]" : "",
                    c->insecure ? " [INSECURE: TLS verification disabled]" : "");
    return 1;
}

/* ---- module ------------------------------------------------------------------ */

static const luaL_Reg client_methods[] = {
    {"request", client_request},
    {"has_token", client_has_token},
    {"close", client_close},
    {NULL, NULL}};

static const luaL_Reg client_meta[] = {
    {"__gc", client_cleanup},
    {"__close", client_cleanup}, /* 5.4 to-be-closed variables; ignored on 5.1 */
    {"__tostring", client_tostring},
    {NULL, NULL}};

static const luaL_Reg module_functions[] = {
    {"new", core_new},
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
    const char *ssl = transport_ssl_version();

    lua_newtable(L);
    lua_pushboolean(L, transport_has_http2());
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
    if (transport_global_init() != 0)
        return luaL_error(L, "wemasy.core: curl_global_init failed");
    create_metatable(L);
    compat_newlib(L, module_functions);
    lua_pushliteral(L, WEMASY_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushstring(L, transport_curl_version());
    lua_setfield(L, -2, "curl_version");
    push_features(L);
    lua_setfield(L, -2, "features");
    return 1;
}
