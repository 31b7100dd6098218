/*
 * options.c - reading and checking core.new's options table.
 *
 * Every error names the option (nested ones by their path, as in
 * 'rate_limit.groups.sync.limit'); none ever quotes a string value, because
 * that value might be the token.  Tables are read raw: reading options must
 * not run the caller's metamethods.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "client.h"

#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_BODY ((int64_t)16 * 1024 * 1024)
/* Requests to this API are an order number or a few ids: 4 MiB is far
 * beyond any of them, and under what PHP (post_max_size 8M) accepts. */
#define DEFAULT_MAX_REQUEST_BODY ((int64_t)4 * 1024 * 1024)
/* lua-cjson 2.1 sizes the buffer for a string as an int of 6 times its
 * length: past ~341 MiB that overflows and the encoder crashes.  Every
 * string the Lua side hands it is within this bound, so well below. */
#define MAX_REQUEST_BODY_LIMIT ((int64_t)256 * 1024 * 1024)
/* Keeps the millisecond value inside a 32-bit long (about 24.8 days). */
#define MAX_SECONDS 2147483.0
/* Doubles represent every integer up to here, on 5.1 as on 5.4. */
#define MAX_BODY_LIMIT ((int64_t)1 << 53)

#define DEFAULT_MAX_WAIT 30.0
#define DEFAULT_MARGIN 0.25
#define DEFAULT_MAX_RETRIES 2
#define MAX_RETRIES_LIMIT 100
#define DEFAULT_BACKOFF_BASE 0.5
#define DEFAULT_BACKOFF_CAP 8.0

static const char *const option_names[] = {
    "base_url", "token",      "timeout", "connect_timeout", "ca_file",
    "ca_path",  "insecure",   "proxy",   "max_body",        "user_agent",
    "rate_limit", "max_retries", "backoff", "clock", "sleep", "random",
    "allow_http", "max_request_body", "interruptible", NULL};
static const char *const rate_limit_names[] = {
    "wait", "max_wait", "shared", "margin", "groups", NULL};
static const char *const group_names[] = {"limit", "window", NULL};
static const char *const backoff_names[] = {"base", "cap", NULL};

/* ---- generic helpers -------------------------------------------------------- */

/* The value being complained about is on the stack top. */
static int option_error(lua_State *L, const char *name, const char *what)
{
    return luaL_error(L, NEW_PREFIX "option '%s' %s (got %s)", name, what,
                      luaL_typename(L, -1));
}

static int is_known(const char *const *known, const char *name)
{
    for (; *known != NULL; known++)
        if (strcmp(*known, name) == 0)
            return 1;
    return 0;
}

/* Refuses keys of the table at idx that are not in `known`; prefix names
 * the table ("" at the top level, "rate_limit." below it). */
static void check_known(lua_State *L, int idx, const char *const *known,
                        const char *prefix)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            /* Nested tables are named by their path, without the last dot. */
            if (*prefix != '\0') {
                const char *key_type = luaL_typename(L, -2);
                lua_pushlstring(L, prefix, strlen(prefix) - 1);
                luaL_error(L, NEW_PREFIX "option '%s' must have string keys "
                           "(got a %s key)", lua_tostring(L, -1), key_type);
            }
            luaL_error(L, NEW_PREFIX "option names must be strings (got %s)",
                       luaL_typename(L, -2));
        }
        if (!is_known(known, lua_tostring(L, -2)))
            luaL_error(L, NEW_PREFIX "unknown option '%s%s'", prefix,
                       lua_tostring(L, -2));
        lua_pop(L, 1);
    }
}

/* Pushes t[name] (raw) and returns its type; the value stays on the stack
 * so C pointers into it remain valid. */
static int push_field(lua_State *L, int idx, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, idx);
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

/* Values that go into a request header (token, user_agent): no control
 * byte at all, not only CR/LF/NUL; libcurl would send them as they are. */
static int has_control_byte(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* nil -> NULL.  Otherwise a string without CR/LF/NUL, non-empty if asked. */
static const char *opt_string(lua_State *L, const char *name, int allow_empty,
                              size_t *len_out)
{
    const char *s;
    size_t len;
    int type = push_field(L, 1, name);

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
    int type = push_field(L, 1, name);

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

/* A boolean field of the table at idx; `path` names it in errors. */
static int opt_boolean_at(lua_State *L, int idx, const char *field,
                          const char *path, int dflt)
{
    int type = push_field(L, idx, field);
    int value = dflt;

    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        option_error(L, path, "must be a boolean");
    if (type == LUA_TBOOLEAN)
        value = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return value;
}

/* A number of seconds in [min, MAX_SECONDS] (min itself allowed when
 * allow_min); nil gives dflt. */
static double opt_seconds_at(lua_State *L, int idx, const char *field,
                             const char *path, double min, int allow_min,
                             double dflt)
{
    int type = push_field(L, idx, field);
    double value = dflt;

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, path, "must be a number of seconds");
    if (type == LUA_TNUMBER) {
        value = (double)lua_tonumber(L, -1);
        /* Written so that NaN fails too. */
        if (!((allow_min ? value >= min : value > min) && value <= MAX_SECONDS))
            luaL_error(L, NEW_PREFIX "option '%s' must be a number of seconds "
                          "%s %f and up to %d (got %f)",
                       path, allow_min ? ">=" : ">", min, (int)MAX_SECONDS, value);
    }
    lua_pop(L, 1);
    return value;
}

/* An integer in [min, max] from the table at idx; nil gives dflt. */
static int64_t opt_integer_at(lua_State *L, int idx, const char *field,
                              const char *path, int64_t min, int64_t max,
                              int64_t dflt)
{
    int type = push_field(L, idx, field);
    int64_t value = dflt;

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, path, "must be an integer");
    if (type == LUA_TNUMBER &&
        (!compat_tointeger(L, -1, &value) || value < min || value > max))
        luaL_error(L, NEW_PREFIX "option '%s' must be an integer from %d to %d "
                      "(got %s)",
                   path, (int)min, (int)max, lua_tostring(L, -1));
    lua_pop(L, 1);
    return value;
}

/* A positive number of bytes up to max (written out as max_text). */
static size_t opt_bytes(lua_State *L, const char *name, int64_t dflt,
                        int64_t max, const char *max_text)
{
    int64_t value = dflt;
    int type = push_field(L, 1, name);

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, name, "must be a positive integer");
    if (type == LUA_TNUMBER &&
        (!compat_tointeger(L, -1, &value) || value <= 0 || value > max))
        luaL_error(L, NEW_PREFIX "option '%s' must be a positive integer "
                      "up to %s (got %s)",
                   name, max_text, lua_tostring(L, -1));
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

/* A header value option: opt_string, and no control byte at all. */
static const char *opt_header_value(lua_State *L, const char *name)
{
    size_t len;
    const char *s = opt_string(L, name, 0, &len);

    if (s != NULL && has_control_byte(s, len))
        luaL_error(L, NEW_PREFIX "option '%s' must not contain control characters "
                      "(it is sent in a request header)", name);
    return s;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* 127.a.b.c written as four decimal numbers 0-255, nothing else. */
static int is_ipv4_loopback(const char *s, size_t n)
{
    size_t i = 0;
    int part;

    for (part = 0; part < 4; part++) {
        size_t start = i;
        unsigned value = 0;

        if (part > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            start = ++i;
        }
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            value = value * 10 + (unsigned)(s[i++] - '0');
        if (i == start || value > 255 || (part == 0 && value != 127))
            return 0;
    }
    return i == n;
}

/* Whether the authority (host[:port], nothing else) of an http:// URL is
 * this machine: 127.0.0.0/8, [::1] or localhost.  Strict on purpose: user
 * info, odd spellings and anything libcurl might read differently do not
 * count as loopback. */
static int is_loopback_authority(const char *a, size_t n)
{
    size_t host, i;

    for (i = 0; i < n; i++)
        if (a[i] == '/' || a[i] == '?' || a[i] == '#')
            n = i; /* the authority ends here */
    if (n > 0 && a[0] == '[') {
        for (host = 1; host < n && a[host] != ']'; host++)
            ;
        if (host >= n || host != 4 || memcmp(a, "[::1", 4) != 0)
            return 0;
        host++;
    } else {
        for (host = 0; host < n && a[host] != ':'; host++)
            ;
        if (!is_ipv4_loopback(a, host)) {
            static const char localhost[] = "localhost";

            if (host != sizeof localhost - 1)
                return 0;
            for (i = 0; i < host; i++)
                if (ascii_lower((unsigned char)a[i]) != localhost[i])
                    return 0;
        }
    }
    if (host == n)
        return 1;
    if (a[host] != ':')
        return 0;
    for (i = host + 1; i < n; i++)
        if (a[i] < '0' || a[i] > '9')
            return 0;
    return 1;
}

/* Paths are appended to base_url, so a query or a fragment in it would
 * swallow every path; user info would be a second credential beside the
 * token, sent to every host (and is not quoted: it holds a password). */
static void check_url_parts(lua_State *L, const char *rest, size_t n)
{
    size_t authority = 0, i;

    while (authority < n && rest[authority] != '/' && rest[authority] != '?' &&
           rest[authority] != '#')
        authority++;
    if (memchr(rest, '@', authority) != NULL)
        luaL_error(L, NEW_PREFIX "option 'base_url' must not have user info "
                      "(user:password@ before the host): the token is the credential");
    for (i = authority; i < n; i++) {
        if (rest[i] == '?')
            luaL_error(L, NEW_PREFIX "option 'base_url' must not have a query "
                          "('?...'): the API paths are appended to base_url");
        if (rest[i] == '#')
            luaL_error(L, NEW_PREFIX "option 'base_url' must not have a fragment "
                          "('#...'): the API paths are appended to base_url");
    }
}

/* Leaves the (possibly shortened) base_url string on the stack. */
static const char *opt_base_url(lua_State *L)
{
    size_t len, scheme, i;
    const char *url = opt_string(L, "base_url", 0, &len);
    int allow_http = opt_boolean_at(L, 1, "allow_http", "allow_http", 0);

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
    check_url_parts(L, url + scheme, len - scheme);
    /* The token and the orders would cross the network in clear text. */
    if (scheme == 7 && !allow_http &&
        !is_loopback_authority(url + scheme, len - scheme))
        luaL_error(L, NEW_PREFIX "option 'base_url' is plain http:// to a host that "
                      "is not this machine (127.0.0.0/8, ::1, localhost); use "
                      "https://, or allow_http = true to send in clear text anyway");
    /* Paths start with '/', so one trailing '/' here would double it. */
    if (url[len - 1] == '/' && len - 1 > scheme) {
        lua_pushlstring(L, url, len - 1); /* returns void on 5.1 */
        url = lua_tostring(L, -1);
    }
    return url;
}

/* ---- rate_limit ----------------------------------------------------------------- */

static void set_group(limiter_group *g, const char *name, int limit,
                      double window)
{
    memset(g, 0, sizeof *g);
    strncpy(g->name, name, LIMITER_NAME_MAX);
    g->limit = limit;
    g->window = window;
}

static limiter_group *find_group(rate_config *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->ngroups; i++)
        if (strcmp(r->groups[i].name, name) == 0)
            return &r->groups[i];
    return NULL;
}

/* The endpoint table's groups: default 60 a minute, sync 5 a minute. */
static void default_rate(rate_config *r)
{
    memset(r, 0, sizeof *r);
    r->on = 1;
    r->wait = 1;
    r->shared = 1;
    r->max_wait = DEFAULT_MAX_WAIT;
    r->margin = DEFAULT_MARGIN;
    set_group(&r->groups[0], "default", 60, 60.0);
    set_group(&r->groups[1], "sync", 5, 60.0);
    r->ngroups = 2;
}

/* One groups.<name> = { limit =, window = } entry, on the stack top. */
static void read_group(lua_State *L, rate_config *r, const char *name)
{
    int idx = lua_gettop(L);
    char path[96];
    limiter_group *g = find_group(r, name);
    const limiter_group *base = g != NULL ? g : &r->groups[0];
    int limit;
    double window;

    snprintf(path, sizeof path, "rate_limit.groups.%s", name);
    if (lua_type(L, idx) != LUA_TTABLE)
        option_error(L, path, "must be a table");
    lua_pushfstring(L, "%s.", path);
    check_known(L, idx, group_names, lua_tostring(L, -1));
    lua_pop(L, 1);
    snprintf(path, sizeof path, "rate_limit.groups.%s.limit", name);
    limit = (int)opt_integer_at(L, idx, "limit", path, 1, LIMITER_RING, base->limit);
    snprintf(path, sizeof path, "rate_limit.groups.%s.window", name);
    window = opt_seconds_at(L, idx, "window", path, 0, 0, base->window);
    if (g == NULL) {
        if (r->ngroups == LIMITER_GROUPS_MAX)
            luaL_error(L, NEW_PREFIX "option 'rate_limit.groups' has more than %d groups",
                       LIMITER_GROUPS_MAX);
        g = &r->groups[r->ngroups++];
    }
    set_group(g, name, limit, window);
}

static void read_groups(lua_State *L, rate_config *r, int rl_idx)
{
    int idx;

    if (push_field(L, rl_idx, "groups") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    idx = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE)
        option_error(L, "rate_limit.groups", "must be a table");
    /* "default" first, so other new groups inherit its overridden limits. */
    if (push_field(L, idx, "default") != LUA_TNIL)
        read_group(L, r, "default");
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t len;
        const char *name;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, NEW_PREFIX "option 'rate_limit.groups' names must be "
                          "strings (got %s)", luaL_typename(L, -2));
        name = lua_tolstring(L, -2, &len);
        if (len == 0 || len > LIMITER_NAME_MAX || strlen(name) != len)
            luaL_error(L, NEW_PREFIX "option 'rate_limit.groups' names must have "
                          "1 to %d characters", LIMITER_NAME_MAX);
        if (strcmp(name, "default") != 0)
            read_group(L, r, name);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void read_rate_limit(lua_State *L, rate_config *r)
{
    int type = push_field(L, 1, "rate_limit");
    int idx = lua_gettop(L);

    default_rate(r);
    if (type == LUA_TBOOLEAN) {
        r->on = lua_toboolean(L, idx); /* true: the defaults */
    } else if (type == LUA_TTABLE) {
        check_known(L, idx, rate_limit_names, "rate_limit.");
        r->wait = opt_boolean_at(L, idx, "wait", "rate_limit.wait", 1);
        r->shared = opt_boolean_at(L, idx, "shared", "rate_limit.shared", 1);
        r->max_wait = opt_seconds_at(L, idx, "max_wait", "rate_limit.max_wait",
                                     0, 1, DEFAULT_MAX_WAIT);
        r->margin = opt_seconds_at(L, idx, "margin", "rate_limit.margin", 0, 1,
                                   DEFAULT_MARGIN);
        read_groups(L, r, idx);
    } else if (type != LUA_TNIL) {
        option_error(L, "rate_limit", "must be false or a table");
    }
    lua_pop(L, 1);
}

/* ---- retries and hooks ------------------------------------------------------------ */

static void read_retry(lua_State *L, client_options *o)
{
    o->retry.max_retries = (int)opt_integer_at(L, 1, "max_retries", "max_retries",
                                               0, MAX_RETRIES_LIMIT,
                                               DEFAULT_MAX_RETRIES);
    o->retry.base = DEFAULT_BACKOFF_BASE;
    o->retry.cap = DEFAULT_BACKOFF_CAP;
    if (push_field(L, 1, "backoff") != LUA_TNIL) {
        int idx = lua_gettop(L);

        if (lua_type(L, idx) != LUA_TTABLE)
            option_error(L, "backoff", "must be a table");
        check_known(L, idx, backoff_names, "backoff.");
        o->retry.base = opt_seconds_at(L, idx, "base", "backoff.base", 0, 1,
                                       DEFAULT_BACKOFF_BASE);
        o->retry.cap = opt_seconds_at(L, idx, "cap", "backoff.cap", 0, 1,
                                      DEFAULT_BACKOFF_CAP);
    }
    lua_pop(L, 1);
    /* A retry may wait as long as a slot may: the caller's one bound. */
    o->retry.max_wait = o->rate.max_wait;
}

/* Leaves the function on the stack and returns its index, or 0 for nil. */
static int opt_function(lua_State *L, const char *name)
{
    int type = push_field(L, 1, name);

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (type != LUA_TFUNCTION)
        option_error(L, name, "must be a function");
    return lua_gettop(L);
}

/* ---- all of them --------------------------------------------------------------------- */

static void read_transport(lua_State *L, transport_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->base_url = opt_base_url(L);
    cfg->token = opt_header_value(L, "token");
    cfg->timeout_ms = opt_millis(L, "timeout", DEFAULT_TIMEOUT);
    cfg->connect_timeout_ms = opt_millis(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    cfg->ca_file = opt_string(L, "ca_file", 0, NULL);
    cfg->ca_path = opt_string(L, "ca_path", 0, NULL);
    cfg->insecure = opt_boolean_at(L, 1, "insecure", "insecure", 0);
    /* "" is meaningful to libcurl: no proxy, ignore the environment. */
    cfg->proxy = opt_string(L, "proxy", 1, NULL);
    cfg->max_body = opt_bytes(L, "max_body", DEFAULT_MAX_BODY, MAX_BODY_LIMIT, "2^53");
    cfg->user_agent = opt_header_value(L, "user_agent");
    cfg->interruptible = opt_boolean_at(L, 1, "interruptible", "interruptible", 1);
    if (cfg->user_agent == NULL)
        cfg->user_agent = lua_pushfstring(L, "wemasy-lua/%s libcurl/%s",
                                          WEMASY_VERSION, transport_curl_version());
}

void options_read(lua_State *L, client_options *o)
{
    memset(o, 0, sizeof *o);
    luaL_checkstack(L, 32, "wemasy.core.new");
    check_known(L, 1, option_names, "");
    read_transport(L, &o->transport);
    read_rate_limit(L, &o->rate);
    read_retry(L, o);
    o->max_request_body = opt_bytes(L, "max_request_body", DEFAULT_MAX_REQUEST_BODY,
                                    MAX_REQUEST_BODY_LIMIT, "256 MiB");
    o->clock_idx = opt_function(L, "clock");
    o->sleep_idx = opt_function(L, "sleep");
    o->random_idx = opt_function(L, "random");
    /* Timestamps of a fake clock mean nothing to other processes. */
    if (o->clock_idx != 0)
        o->rate.shared = 0;
}
