/*
 * options.c - reading and checking core.new's options table, and exporting
 * the declaration of every option (options.h) as core.options.
 *
 * Every error names the option (nested ones by their path, as in
 * 'rate_limit.groups.sync.limit'); none ever quotes a string value, because
 * that value might be the token.  Tables are read raw: reading options must
 * not run the caller's metamethods.  Each kind of option has one reader, so
 * options of a kind are checked, and their errors worded, alike.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "libcurl.h"
#include "url.h"

#define MiB ((int64_t)1024 * 1024)
/* Keeps the millisecond value inside a 32-bit long (about 24.8 days). */
#define MAX_SECONDS 2147483.0
/* Doubles represent every integer up to here, on 5.1 as on 5.4. */
#define MAX_BODY_LIMIT ((int64_t)1 << 53)

/* ---- the declaration, expanded ---------------------------------------------- */

/* The kinds of options.h, and their names in core.options. */
#define KINDS(X)                                                              \
    X(URL, url) X(HEADER, header) X(STRING, string) X(ANY_STRING, any_string) \
    X(MILLIS, millis) X(SECONDS, seconds)                                     \
    X(POSITIVE_SECONDS, positive_seconds) X(SHARE, share)                    \
    X(INTEGER, integer) X(BYTES, bytes)                                       \
    X(BOOLEAN, boolean) X(CHOICE, choice) X(FUNCTION, function)               \
    X(TABLE, table)                                                           \
    X(RATE_LIMIT, rate_limit) X(GROUPS, groups) X(LUA, lua)                 \
    X(BREAKER, breaker)

typedef enum {
#define KIND_ENUM(k, s) OPTION_##k,
    KINDS(KIND_ENUM)
#undef KIND_ENUM
} option_kind;

static const char *const kind_names[] = {
#define KIND_NAME(k, s) #s,
    KINDS(KIND_NAME)
#undef KIND_NAME
};

/* OPT_TOP_timeout, OPT_RATE_LIMIT_max_wait, OPT_BATCH_concurrency, ... */
enum {
#define OPTION(parent, name, ...) OPT_##parent##_##name,
#define BATCH_OPTION(name, ...) OPT_BATCH_##name,
#include "options.h"
    OPT_COUNT
};

/* The row a row sits under: the top level, a table's row, or batch's. */
#define PARENT_TOP (-1)
#define PARENT_BATCH (-2)
#define PARENT_RATE_LIMIT OPT_TOP_rate_limit
#define PARENT_BACKOFF OPT_TOP_backoff
#define PARENT_GROUP OPT_RATE_LIMIT_groups
#define PARENT_BREAKER OPT_TOP_breaker
#define PATH_TOP ""
#define PATH_RATE_LIMIT "rate_limit."
#define PATH_BACKOFF "backoff."
#define PATH_GROUP "rate_limit.groups.<name>."
#define PATH_BREAKER "breaker."

typedef struct {
    int parent;
    const char *name;
    const char *path; /* as errors name it */
    option_kind kind;
    double dflt, min, max;
    const char *type, *text, *doc;
} option_row;

static const option_row rows[OPT_COUNT] = {
#define OPTION(parent, name, kind, field, dflt, min, max, type, text, doc)   \
    {PARENT_##parent, #name, PATH_##parent #name, OPTION_##kind,              \
     (double)(dflt), (double)(min), (double)(max), type, text, doc},
#define BATCH_OPTION(name, kind, dflt, min, max, type, doc)                   \
    {PARENT_BATCH, #name, #name, OPTION_##kind,                               \
     (double)(dflt), (double)(min), (double)(max), type, NULL, doc},
#include "options.h"
};

/* ---- generic helpers -------------------------------------------------------- */

/* The value being complained about is on the stack top. */
static int option_error(lua_State *L, const char *name, const char *what)
{
    return luaL_error(L, NEW_PREFIX "option '%s' %s (got %s)", name, what,
                      luaL_typename(L, -1));
}

/* Whether `name` is an option core.new reads under `parent`. */
static int is_known(int parent, const char *name)
{
    int id;

    for (id = 0; id < OPT_COUNT; id++)
        if (rows[id].parent == parent && rows[id].kind != OPTION_LUA &&
            strcmp(rows[id].name, name) == 0)
            return 1;
    return 0;
}

/* Refuses keys of the table at idx that are not options under `parent`;
 * prefix names the table ("" at the top level, "rate_limit." below it). */
static void check_known(lua_State *L, int idx, int parent, const char *prefix)
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
        if (!is_known(parent, lua_tostring(L, -2)))
            luaL_error(L, NEW_PREFIX "unknown option '%s%s'", prefix,
                       lua_tostring(L, -2));
        lua_pop(L, 1);
    }
}

/* Pushes t[name] (raw), or nil when there is no table (idx 0: a table
 * option left out, so everything in it takes its default). */
static int push_field(lua_State *L, int idx, const char *name)
{
    if (idx == 0) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
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

/* The value on the stack top (left there: the pointer stays valid) is nil
 * -> NULL, or a string without CR/LF/NUL, non-empty unless allow_empty. */
static const char *read_string(lua_State *L, const char *name, int allow_empty,
                               size_t *len_out)
{
    const char *s;
    size_t len;
    int type = lua_type(L, -1);

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

/* A header value option: read_string, and no control byte at all. */
static const char *read_header(lua_State *L, const char *name)
{
    size_t len;
    const char *s = read_string(L, name, 0, &len);

    if (s != NULL && has_control_byte(s, len))
        luaL_error(L, NEW_PREFIX "option '%s' must not contain control characters "
                      "(it is sent in a request header)", name);
    return s;
}

/* Seconds in (0, row->max], in milliseconds rounded up. */
static long read_millis(lua_State *L, const option_row *row)
{
    lua_Number seconds = row->dflt, ms;
    long rounded;
    int type = lua_type(L, -1);

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, row->path, "must be a positive number");
    if (type == LUA_TNUMBER) {
        seconds = lua_tonumber(L, -1);
        /* Written so that NaN fails too. */
        if (!(seconds > row->min && seconds <= row->max))
            luaL_error(L, NEW_PREFIX "option '%s' must be a positive number "
                          "of seconds up to %d (got %f)",
                       row->path, (int)row->max, seconds);
    }
    /* Round up: 0 would mean "no timeout" to libcurl. */
    ms = seconds * 1000;
    rounded = (long)ms;
    if ((lua_Number)rounded < ms)
        rounded++;
    lua_pop(L, 1);
    return rounded > 0 ? rounded : 1;
}

static int read_boolean(lua_State *L, const char *path, int dflt)
{
    int type = lua_type(L, -1);
    int value = dflt;

    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        option_error(L, path, "must be a boolean");
    if (type == LUA_TBOOLEAN)
        value = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return value;
}

/* Seconds in [row->min, row->max] (min itself excluded unless allow_min);
 * nil gives dflt.  `path` names it (a group's fields have their own). */
static double read_seconds(lua_State *L, const option_row *row, const char *path,
                           int allow_min, double dflt)
{
    int type = lua_type(L, -1);
    double value = dflt;

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, path, "must be a number of seconds");
    if (type == LUA_TNUMBER) {
        value = (double)lua_tonumber(L, -1);
        /* Written so that NaN fails too. */
        if (!((allow_min ? value >= row->min : value > row->min) && value <= row->max))
            luaL_error(L, NEW_PREFIX "option '%s' must be a number of seconds "
                          "%s %f and up to %d (got %f)",
                       path, allow_min ? ">=" : ">", row->min, (int)row->max, value);
    }
    lua_pop(L, 1);
    return value;
}

/* A fraction in (row->min, row->max]; nil gives the default. */
static double read_share(lua_State *L, const option_row *row)
{
    int type = lua_type(L, -1);
    double value = row->dflt;

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, row->path, "must be a number");
    if (type == LUA_TNUMBER) {
        value = (double)lua_tonumber(L, -1);
        /* Written so that NaN fails too. */
        if (!(value > row->min && value <= row->max)) {
            char range[64]; /* lua_pushfstring has no %g */

            snprintf(range, sizeof range, "> %g and up to %g", row->min, row->max);
            luaL_error(L, NEW_PREFIX "option '%s' must be a number %s (got %f)", row->path,
                       range, value);
        }
    }
    lua_pop(L, 1);
    return value;
}

/* An integer in [row->min, row->max]; nil gives dflt. */
static int64_t read_integer(lua_State *L, const option_row *row, const char *path,
                            int64_t dflt)
{
    int type = lua_type(L, -1);
    int64_t value = dflt;

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, path, "must be an integer");
    if (type == LUA_TNUMBER &&
        (!compat_tointeger(L, -1, &value) || value < row->min || value > row->max))
        luaL_error(L, NEW_PREFIX "option '%s' must be an integer from %d to %d "
                      "(got %s)",
                   path, (int)row->min, (int)row->max, lua_tostring(L, -1));
    lua_pop(L, 1);
    return value;
}

/* How a number of bytes is written: 2^53, 256 MiB, 1000. */
static void bytes_text(double bytes, char *out, size_t size)
{
    int64_t n = (int64_t)bytes;
    int bits = 0;

    while (bits < 62 && ((int64_t)1 << bits) < n)
        bits++;
    if (bits >= 40 && ((int64_t)1 << bits) == n)
        snprintf(out, size, "2^%d", bits);
    else if (n > 0 && n % MiB == 0)
        snprintf(out, size, "%d MiB", (int)(n / MiB));
    else
        snprintf(out, size, "%lld", (long long)n);
}

/* A positive number of bytes up to row->max. */
static size_t read_bytes(lua_State *L, const option_row *row)
{
    int64_t value = (int64_t)row->dflt;
    int type = lua_type(L, -1);

    if (type != LUA_TNIL && type != LUA_TNUMBER)
        option_error(L, row->path, "must be a positive integer");
    if (type == LUA_TNUMBER &&
        (!compat_tointeger(L, -1, &value) || value <= 0 || value > (int64_t)row->max)) {
        char max[32];

        bytes_text(row->max, max, sizeof max);
        luaL_error(L, NEW_PREFIX "option '%s' must be a positive integer "
                      "up to %s (got %s)",
                   row->path, max, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    return (size_t)value;
}

/* The i-th (from 0) quoted word of a CHOICE row's type, '"a"|"b"', into
 * out; 0 when there is none. */
static int choice_word(const option_row *row, int i, char *out, size_t size)
{
    const char *p = row->type, *end;

    for (;; i--) {
        p = strchr(p, '"');
        end = p != NULL ? strchr(p + 1, '"') : NULL;
        if (end == NULL)
            return 0;
        if (i == 0)
            break;
        p = end + 1;
    }
    snprintf(out, size, "%.*s", (int)(end - p - 1), p + 1);
    return 1;
}

/* One of the words of the row's type; nil gives the default.  The error
 * lists the words, never the value given (it might be the token). */
static int read_choice(lua_State *L, const option_row *row)
{
    int value = (int)row->dflt;
    const char *s = read_string(L, row->path, 1, NULL);

    if (s != NULL) {
        char word[32];
        int i;

        for (i = 0; choice_word(row, i, word, sizeof word); i++)
            if (strcmp(s, word) == 0)
                break;
        if (!choice_word(row, i, word, sizeof word))
            luaL_error(L, NEW_PREFIX "option '%s' must be one of %s", row->path,
                       row->type);
        value = i;
    }
    lua_pop(L, 1);
    return value;
}

/* Leaves the function on the stack and returns its index, or 0 for nil. */
static int read_function(lua_State *L, const char *name)
{
    int type = lua_type(L, -1);

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (type != LUA_TFUNCTION)
        option_error(L, name, "must be a function");
    return lua_gettop(L);
}

static void read_option(lua_State *L, int idx, int id, client_options *o);

/* base_url, on the stack top; leaves the (possibly shortened) string on
 * the stack.  It reads allow_http first, to know what it allows. */
static const char *read_url(lua_State *L, client_options *o)
{
    size_t len, scheme;
    const char *why, *url = read_string(L, "base_url", 0, &len);

    read_option(L, 1, OPT_TOP_allow_http, o);
    if (url == NULL)
        option_error(L, "base_url", "must be a non-empty string");
    why = url_check(url, len, o->allow_http, &scheme);
    if (why != NULL)
        luaL_error(L, NEW_PREFIX "option 'base_url' %s", why);
    /* Paths start with '/', so one trailing '/' here would double it. */
    if (url[len - 1] == '/' && len - 1 > scheme) {
        lua_pushlstring(L, url, len - 1); /* returns void on 5.1 */
        url = lua_tostring(L, -1);
    }
    return url;
}

/* Reads every row under `parent` from the table at idx (0: none given). */
static void read_rows(lua_State *L, int idx, int parent, client_options *o)
{
    int id;

    for (id = 0; id < OPT_COUNT; id++)
        if (rows[id].parent == parent)
            read_option(L, idx, id, o);
}

/* A table of options (backoff), on the stack top (left there). */
static void read_table(lua_State *L, int id, client_options *o)
{
    int idx = lua_gettop(L);
    char prefix[64];

    if (lua_type(L, idx) == LUA_TNIL) {
        read_rows(L, 0, id, o);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        option_error(L, rows[id].path, "must be a table");
    snprintf(prefix, sizeof prefix, "%s.", rows[id].path);
    check_known(L, idx, id, prefix);
    read_rows(L, idx, id, o);
}

/* rate_limit or breaker, on the stack top (left there): false, true or nil
 * (the defaults) or a table.  Returns whether it is on. */
static int read_rate_limit(lua_State *L, int id, client_options *o)
{
    int type = lua_type(L, -1);
    int on = type != LUA_TBOOLEAN || lua_toboolean(L, -1);

    if (type != LUA_TNIL && type != LUA_TBOOLEAN && type != LUA_TTABLE)
        option_error(L, rows[id].path, "must be false or a table");
    /* Even with limiting off, max_wait bounds the retries. */
    if (type == LUA_TTABLE)
        read_table(L, id, o);
    else
        read_rows(L, 0, id, o);
    return on;
}

/* ---- rate_limit.groups -------------------------------------------------------- */

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

/* One groups.<name> = { limit =, window = } entry, on the stack top; a
 * field left out keeps the group's value, or a new group's default's. */
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
    check_known(L, idx, PARENT_GROUP, lua_tostring(L, -1));
    lua_pop(L, 1);
    snprintf(path, sizeof path, "rate_limit.groups.%s.limit", name);
    push_field(L, idx, "limit");
    limit = (int)read_integer(L, &rows[OPT_GROUP_limit], path, base->limit);
    snprintf(path, sizeof path, "rate_limit.groups.%s.window", name);
    push_field(L, idx, "window");
    window = read_seconds(L, &rows[OPT_GROUP_window], path, 0, base->window);
    if (g == NULL) {
        if (r->ngroups == LIMITER_GROUPS_MAX)
            luaL_error(L, NEW_PREFIX "option 'rate_limit.groups' has more than %d groups",
                       LIMITER_GROUPS_MAX);
        g = &r->groups[r->ngroups++];
    }
    set_group(g, name, limit, window);
}

/* The groups table at idx over what r has: "default" first, so new groups
 * inherit its (overridden) limits. */
static void read_group_table(lua_State *L, rate_config *r, int idx)
{
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
        if (!call_group_name_ok(name, len))
            luaL_error(L, NEW_PREFIX "option 'rate_limit.groups' names must have "
                          "1 to %d characters", LIMITER_NAME_MAX);
        if (strcmp(name, "default") != 0)
            read_group(L, r, name);
        lua_pop(L, 1);
    }
}

/* The quotas are a fact of the API, stated once in the endpoint table
 * (lua/wemasy/endpoints.lua, which the sandbox serves too): every client
 * starts from its groups, then takes the caller's, on the stack top. */
static void read_groups(lua_State *L, rate_config *r)
{
    int given = lua_gettop(L);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "wemasy.endpoints");
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TTABLE ||
        push_field(L, lua_gettop(L), "groups") != LUA_TTABLE)
        luaL_error(L, NEW_PREFIX "wemasy.endpoints has no groups table");
    read_group_table(L, r, lua_gettop(L));
    lua_pop(L, 2);
    if (r->ngroups == 0 || strcmp(r->groups[0].name, "default") != 0)
        luaL_error(L, NEW_PREFIX "wemasy.endpoints.groups has no 'default' group");
    if (lua_type(L, given) != LUA_TNIL) {
        if (lua_type(L, given) != LUA_TTABLE)
            option_error(L, rows[OPT_RATE_LIMIT_groups].path, "must be a table");
        read_group_table(L, r, given);
    }
    lua_pop(L, 1);
}

/* max_wait's default: the longest window of the client's groups. */
static double longest_window(const rate_config *r)
{
    double w = 0;
    size_t i;

    for (i = 0; i < r->ngroups; i++)
        if (r->groups[i].window > w)
            w = r->groups[i].window;
    return w;
}

/* ---- one option ------------------------------------------------------------------ */

/* How each kind is read into its field; the value is on the stack top. */
#define READ_URL(dst) (dst) = read_url(L, o)
#define READ_HEADER(dst) (dst) = read_header(L, row->path)
#define READ_STRING(dst) (dst) = read_string(L, row->path, 0, NULL)
#define READ_ANY_STRING(dst) (dst) = read_string(L, row->path, 1, NULL)
#define READ_MILLIS(dst) (dst) = read_millis(L, row)
#define READ_SECONDS(dst) (dst) = read_seconds(L, row, row->path, 1, row->dflt)
#define READ_POSITIVE_SECONDS(dst) (dst) = read_seconds(L, row, row->path, 0, row->dflt)
#define READ_SHARE(dst) (dst) = read_share(L, row)
#define READ_INTEGER(dst) (dst) = (int)read_integer(L, row, row->path, (int64_t)row->dflt)
#define READ_BYTES(dst) (dst) = read_bytes(L, row)
#define READ_BOOLEAN(dst) (dst) = read_boolean(L, row->path, (int)row->dflt)
#define READ_CHOICE(dst) (dst) = read_choice(L, row)
#define READ_FUNCTION(dst) (dst) = read_function(L, row->path)
#define READ_TABLE(dst) read_table(L, id, o)
#define READ_RATE_LIMIT(dst) (dst) = read_rate_limit(L, id, o)
#define READ_GROUPS(dst) read_groups(L, &o->rate)
#define READ_BREAKER(dst) (dst) = read_rate_limit(L, id, o)
#define READ_LUA(dst) lua_pop(L, 1) /* refused by check_known if given */
/* A group's fields are read by read_group, under the group's name. */
#define READ_UNDER_TOP(kind, field) READ_##kind(o->field)
#define READ_UNDER_RATE_LIMIT(kind, field) READ_##kind(o->field)
#define READ_UNDER_BACKOFF(kind, field) READ_##kind(o->field)
#define READ_UNDER_BREAKER(kind, field) READ_##kind(o->field)
#define READ_UNDER_GROUP(kind, field) lua_pop(L, 1)

static void read_option(lua_State *L, int idx, int id, client_options *o)
{
    const option_row *row = &rows[id];

    push_field(L, idx, row->name);
    switch (id) {
#define OPTION(parent, name, kind, field, ...)                                \
    case OPT_##parent##_##name:                                               \
        READ_UNDER_##parent(kind, field);                                     \
        break;
#include "options.h"
    default: /* client:batch's: read by options_batch_concurrency and Lua */
        lua_pop(L, 1);
        break;
    }
}

void options_read(lua_State *L, client_options *o)
{
    size_t i;

    memset(o, 0, sizeof *o);
    luaL_checkstack(L, 48, "wemasy.core.new");
    check_known(L, 1, PARENT_TOP, "");
    read_rows(L, 1, PARENT_TOP, o);
    if (o->transport.user_agent == NULL)
        o->transport.user_agent = lua_pushfstring(L, "wemasy-lua/%s libcurl/%s",
                                                  WEMASY_VERSION, libcurl_version());
    o->rate.nknown = o->rate.ngroups;
    if (o->rate.max_wait < 0)
        o->rate.max_wait = longest_window(&o->rate) + o->rate.margin;
    /* Each group carries what its caller must leave free (window.c). */
    for (i = 0; i < o->rate.ngroups; i++)
        o->rate.groups[i].reserve =
            o->rate.priority == RATE_BACKGROUND ? o->rate.reserve : 0;
    /* A retry may wait as long as a slot may: the caller's one bound. */
    o->retry.max_wait = o->rate.max_wait;
    /* Timestamps of a fake clock mean nothing to other processes. */
    if (o->clock_idx != 0)
        o->rate.shared = 0;
}

int options_batch_concurrency(lua_State *L, int arg)
{
    const option_row *row = &rows[OPT_BATCH_concurrency];
    int64_t n = (int64_t)row->dflt;

    if (!lua_isnoneornil(L, arg) &&
        (!compat_tointeger(L, arg, &n) || n < row->min || n > row->max))
        luaL_argerror(L, arg, lua_pushfstring(L, "concurrency must be an integer "
                                                 "from %d to %d",
                                              (int)row->min, (int)row->max));
    return (int)n;
}

/* ---- core.options: the declaration, for Lua ---------------------------------- */

/* Whole numbers as integers: 30, not 30.0, on 5.4. */
static void push_number(lua_State *L, double v)
{
    if (v == (double)(lua_Integer)v)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, (lua_Number)v);
}

/* The default as README's options table writes it. */
static void push_default_text(lua_State *L, int id)
{
    const option_row *row = &rows[id];
    char buf[64];
    int child, n = 0;

    if (row->kind == OPTION_URL) {
        lua_pushfstring(L, "`%s`", row->text);
    } else if (row->text != NULL) {
        lua_pushstring(L, row->text);
    } else if (row->kind == OPTION_BOOLEAN) {
        lua_pushstring(L, row->dflt != 0 ? "true" : "false");
    } else if (row->kind == OPTION_CHOICE) {
        choice_word(row, (int)row->dflt, buf, sizeof buf);
        lua_pushfstring(L, "\"%s\"", buf); /* as a Lua literal */
    } else if (row->kind == OPTION_TABLE) {
        /* `{ base = 0.5, cap = 8 }`, from the rows under it */
        lua_pushliteral(L, "`{ ");
        for (child = 0; child < OPT_COUNT; child++)
            if (rows[child].parent == id) {
                lua_pushfstring(L, "%s%s = ", n++ > 0 ? ", " : "", rows[child].name);
                push_default_text(L, child);
                lua_concat(L, 3);
            }
        lua_pushliteral(L, " }`");
        lua_concat(L, 2);
    } else {
        if (row->kind == OPTION_BYTES)
            bytes_text(row->dflt, buf, sizeof buf);
        else
            snprintf(buf, sizeof buf, "%.14g", row->dflt);
        lua_pushstring(L, buf);
    }
}

/* The default as a Lua value; nil when `text` says it in words. */
static void push_default(lua_State *L, int id)
{
    const option_row *row = &rows[id];
    char word[32];
    int child;

    switch (row->text != NULL && row->kind != OPTION_URL ? OPTION_LUA : row->kind) {
    case OPTION_URL:
        lua_pushstring(L, row->text);
        break;
    case OPTION_BOOLEAN:
        lua_pushboolean(L, row->dflt != 0);
        break;
    case OPTION_CHOICE:
        if (choice_word(row, (int)row->dflt, word, sizeof word))
            lua_pushstring(L, word);
        else
            lua_pushnil(L);
        break;
    case OPTION_INTEGER:
    case OPTION_BYTES:
    case OPTION_MILLIS:
    case OPTION_SECONDS:
    case OPTION_POSITIVE_SECONDS:
    case OPTION_SHARE:
        push_number(L, row->dflt);
        break;
    case OPTION_TABLE:
        lua_newtable(L);
        for (child = 0; child < OPT_COUNT; child++)
            if (rows[child].parent == id) {
                push_default(L, child);
                lua_setfield(L, -2, rows[child].name);
            }
        break;
    default:
        lua_pushnil(L);
    }
}

static void push_rows(lua_State *L, int parent);

static void set_field(lua_State *L, const char *key, const char *value)
{
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

/* { name, path, kind, type, doc, default, default_text, min, max,
 *   min_excluded, max_text, choices, fields } */
static void push_row(lua_State *L, int id)
{
    const option_row *row = &rows[id];
    option_kind k = row->kind;

    lua_newtable(L);
    set_field(L, "name", row->name);
    set_field(L, "path", row->path);
    set_field(L, "kind", kind_names[k]);
    set_field(L, "type", row->type);
    set_field(L, "doc", row->doc);
    push_default(L, id);
    lua_setfield(L, -2, "default");
    push_default_text(L, id);
    lua_setfield(L, -2, "default_text");
    if (row->min != 0 || row->max != 0) {
        push_number(L, row->min);
        lua_setfield(L, -2, "min");
        push_number(L, row->max);
        lua_setfield(L, -2, "max");
        /* "a positive number": min itself is refused */
        lua_pushboolean(L, k == OPTION_MILLIS || k == OPTION_BYTES || k == OPTION_POSITIVE_SECONDS ||
                               k == OPTION_SHARE);
        lua_setfield(L, -2, "min_excluded");
    }
    if (k == OPTION_BYTES) {
        char max[32];

        bytes_text(row->max, max, sizeof max);
        set_field(L, "max_text", max);
    }
    if (k == OPTION_CHOICE) {
        char word[32];
        int i;

        lua_newtable(L);
        for (i = 0; choice_word(row, i, word, sizeof word); i++) {
            lua_pushstring(L, word);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "choices");
    }
    if (k == OPTION_TABLE || k == OPTION_RATE_LIMIT || k == OPTION_BREAKER ||
        k == OPTION_GROUPS) {
        push_rows(L, id);
        lua_setfield(L, -2, "fields");
    }
}

/* The rows under `parent`, in order, and each also by its name. */
static void push_rows(lua_State *L, int parent)
{
    int id, n = 0;

    lua_newtable(L);
    for (id = 0; id < OPT_COUNT; id++) {
        if (rows[id].parent != parent)
            continue;
        push_row(L, id);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);
        lua_setfield(L, -2, rows[id].name);
    }
}

void options_push(lua_State *L)
{
    push_rows(L, PARENT_TOP);
}

void options_push_batch(lua_State *L)
{
    push_rows(L, PARENT_BATCH);
}
