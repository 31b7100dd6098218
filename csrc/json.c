/*
 * json.c - core.json_decode(text): JSON text to Lua values, for every
 * response body, in one pass and without the Lua-side walk that Lua 5.4
 * needed to turn lua-cjson's floats into integers.
 *
 * It accepts and produces exactly what wemasy.json's lua-cjson path did
 * (lua-cjson 2.1.0 with decode_invalid_numbers(false), then, on Lua 5.4,
 * every whole number below 2^53 in a table made an integer): null is the
 * NULL light userdata (cjson.null); a NUL byte ends the text; strings are
 * taken as they are (no UTF-8 check) with \uXXXX escapes and surrogate
 * pairs turned into UTF-8; numbers are what the C locale's strtod reads,
 * refusing a leading zero, hex, "inf" and "nan"; nesting stops at 1000.
 * Errors are raised with lua-cjson's messages ("Expected value but found
 * T_END at character 1"); wemasy.json calls it under pcall.
 *
 * Why it is faster: a string without escapes goes from the text to Lua
 * without a copy, whole numbers skip strtod, and a container's members wait
 * on the Lua stack until it ends, so its table is made once at its final
 * size instead of growing (and rehashing) member by member.
 */
#define _GNU_SOURCE /* strtod_l, newlocale */
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define MAX_DEPTH 1000
/* Stack slots that members may hold while their containers are open.  Past
 * it a container makes its table at once and fills it member by member, so
 * the stack stays far below LuaJIT's 8000 slots for a C function. */
#define PENDING_MAX 2048
/* A decimal of at most this many digits is exact without strtod. */
#define FAST_DIGITS 15
/* Object keys of at most KEY_MAX bytes go through the key cache, which has
 * KEY_SLOTS slots (a power of two). */
#define KEY_MAX 32
#define KEY_SLOTS 512

typedef enum {
    T_OBJ_BEGIN, T_OBJ_END, T_ARR_BEGIN, T_ARR_END, T_STRING, T_NUMBER,
    T_BOOLEAN, T_NULL, T_COLON, T_COMMA, T_END, T_WHITESPACE, T_ERROR,
    T_UNKNOWN
} token_type;

static const char *const token_names[] = {
    "T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING",
    "T_NUMBER", "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END",
    "T_WHITESPACE", "T_ERROR", "T_UNKNOWN"};

typedef struct {
    token_type type;
    size_t index;      /* 0-based offset of the token in the text */
    const char *error; /* T_ERROR: what was wrong */
    const char *s;     /* T_STRING: the bytes (in the text or in scratch) */
    size_t len;
    int boolean;
    int whole;         /* T_NUMBER: i holds the value exactly */
    int64_t i;
    double d;
} token;

/*
 * The object keys a Lua state decoded last, by slot.  Responses of one API
 * repeat the same keys call after call, and Lua makes every string it is
 * given unique by hashing it and searching its string table: for a key seen
 * before, a look at this cache and the Lua string kept in the decoder's
 * upvalue costs about a third of that.  Each Lua state has its own (an
 * upvalue of its json_decode), so no lock is needed.  LuaJIT makes short
 * strings unique more cheaply than the cache finds them (callgrind, the 2 KB
 * orders/detail body: 80k instructions without, 83k with), so only Lua 5.3
 * and later use it (103k -> 97k on 5.4).
 */
#define USE_KEY_CACHE (LUA_VERSION_NUM >= 503)
typedef struct {
    unsigned char len[KEY_SLOTS]; /* 0: the slot is empty */
    char bytes[KEY_SLOTS][KEY_MAX];
} key_cache;

#define KEY_STRINGS lua_upvalueindex(1) /* slot + 1 -> the Lua string */
#define KEY_CACHE lua_upvalueindex(2)   /* the key_cache userdata */

typedef struct {
    lua_State *L;
    key_cache *keys;
    const char *data;
    const char *p;
    const char *end; /* data + length: the NUL Lua keeps after every string */
    char *scratch; /* room for unescaped strings, NULL when there are none */
    int depth;
    int pending;
} parser;

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* ---- tokens ----------------------------------------------------------------- */

static void set_error(parser *ps, token *t, const char *what)
{
    t->type = T_ERROR;
    t->index = (size_t)(ps->p - ps->data);
    t->error = what;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of "XXXX" at s, or -1 (a NUL ends it too). */
static long hex4(const char *s)
{
    long v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        int h = hex_value(s[i]);

        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

static size_t put_utf8(char *out, long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* \uXXXX at ps->p (a surrogate pair takes two); appends UTF-8 at *out. */
static int unicode_escape(parser *ps, char **out)
{
    long cp = hex4(ps->p + 2);
    int len = 6;

    if (cp < 0)
        return -1;
    if ((cp & 0xF800) == 0xD800) {
        long low;

        if ((cp & 0x400) != 0 || ps->p[6] != '\\' || ps->p[7] != 'u')
            return -1;
        low = hex4(ps->p + 8);
        if (low < 0 || (low & 0xFC00) != 0xDC00)
            return -1;
        cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
        len = 12;
    }
    *out += put_utf8(*out, cp);
    ps->p += len;
    return 0;
}

static char escaped(char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return 0;
    }
}

/* A string with escapes, from the first backslash on, into scratch. */
static void string_escaped(parser *ps, token *t, const char *start)
{
    char *out = ps->scratch;

    memcpy(out, start, (size_t)(ps->p - start));
    out += ps->p - start;
    for (;;) {
        char c = *ps->p;

        if (c == '"')
            break;
        if (c == '\0') {
            set_error(ps, t, "unexpected end of string");
            return;
        }
        if (c == '\\') {
            if (ps->p[1] == 'u') {
                if (unicode_escape(ps, &out) != 0) {
                    set_error(ps, t, "invalid unicode escape code");
                    return;
                }
                continue;
            }
            if ((c = escaped(ps->p[1])) == 0) {
                set_error(ps, t, "invalid escape code");
                return;
            }
            ps->p++;
        }
        *out++ = c;
        ps->p++;
    }
    ps->p++;
    t->type = T_STRING;
    t->s = ps->scratch;
    t->len = (size_t)(out - ps->scratch);
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* The high bit of each byte of w that is '"', '\\' or NUL (a byte equal
 * to c leaves a zero byte in w ^ c...).  Bytes above the first such byte may
 * be marked wrongly (a borrow), the lowest mark never is. */
static uint64_t stop_bytes(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');

    return (((w - ONES) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

static void string_token(parser *ps, token *t)
{
    const char *start = ++ps->p;
    const char *p = start;

    /* Most strings have no escapes: they are used where they lie.  Eight
     * bytes at a time while they are all inside the text. */
    while (p + 8 <= ps->end) {
        uint64_t w, m;

        memcpy(&w, p, 8);
        m = stop_bytes(w);
        if (m != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            p += __builtin_ctzll(m) / 8; /* the first byte in memory is the lowest */
#else
            (void)m; /* the byte loop below finds it */
#endif
            break;
        }
        p += 8;
    }
    while (*p != '"' && *p != '\\' && *p != '\0')
        p++;
    ps->p = p;
    if (*p == '"') {
        ps->p++;
        t->type = T_STRING;
        t->s = start;
        t->len = (size_t)(p - start);
        return;
    }
    if (*p == '\0') {
        set_error(ps, t, "unexpected end of string");
        return;
    }
    string_escaped(ps, t, start);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int prefix_nocase(const char *p, const char *word)
{
    for (; *word; p++, word++)
        if ((*p | 0x20) != *word)
            return 0;
    return 1;
}

/* Powers of ten a double holds exactly. */
static const double exact_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * A plain decimal number at p ("-" already skipped): -?D+(.D+)?([eE][+-]?D+)?
 * with at most FAST_DIGITS digits and a power of ten within 10^+-22.  Then
 * both the digits and the power are exact doubles and one IEEE division or
 * multiplication rounds the quotient correctly: the double strtod would
 * give.  Returns the end, or NULL for anything else (strtod decides).
 */
static const char *fast_decimal(const char *p, int neg, double *out)
{
    uint64_t m = 0;
    int digits = 0, exp10 = 0;

    while (is_digit(*p)) {
        m = m * 10 + (uint64_t)(*p++ - '0');
        if (++digits > FAST_DIGITS)
            return NULL;
    }
    if (digits == 0)
        return NULL; /* "-.5", "-e5": strtod's call */
    if (*p == '.') {
        if (!is_digit(p[1]))
            return NULL; /* "1." and "1.e5": strtod's call */
        for (p++; is_digit(*p); p++, exp10--) {
            m = m * 10 + (uint64_t)(*p - '0');
            if (++digits > FAST_DIGITS)
                return NULL;
        }
    }
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        int sign = 1, e = 0;

        if (*q == '+' || *q == '-')
            sign = *q++ == '-' ? -1 : 1;
        if (!is_digit(*q))
            return NULL;
        for (; is_digit(*q); q++)
            if ((e = e * 10 + (*q - '0')) > 1000)
                return NULL;
        exp10 += sign * e;
        p = q;
    }
    if (exp10 < -22 || exp10 > 22)
        return NULL;
    *out = exp10 < 0 ? (double)m / exact_pow10[-exp10] : (double)m * exact_pow10[exp10];
    if (neg)
        *out = -*out; /* "-0" is -0.0, as strtod says */
    return p;
}

static void number_token(parser *ps, token *t)
{
    const char *p = ps->p;
    char *end;
    int neg = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    /* What lua-cjson refuses before strtod could take it: hex, leading
     * zeros, infinities and NaNs. */
    if (*p == '0' ? ((p[1] | 0x20) == 'x' || is_digit(p[1]))
                  : !is_digit(*p) && (prefix_nocase(p, "inf") || prefix_nocase(p, "nan"))) {
        set_error(ps, t, "invalid number");
        return;
    }
    if ((p = fast_decimal(p, neg, &t->d)) != NULL) {
        end = (char *)(uintptr_t)p;
    } else {
        pthread_once(&c_locale_once, make_c_locale);
        t->d = c_locale != (locale_t)0 ? strtod_l(ps->p, &end, c_locale)
                                       : strtod(ps->p, &end);
        if (end == ps->p) {
            set_error(ps, t, "invalid number");
            return;
        }
    }
    t->type = T_NUMBER;
    /* Whole and exact in a double: an integer on Lua 5.4.  The bounds are
     * powers of two, so the comparisons are exact (NaN fails them). */
    t->whole = t->d > -9007199254740992.0 && t->d < 9007199254740992.0 &&
               (double)(int64_t)t->d == t->d;
    t->i = t->whole ? (int64_t)t->d : 0;
    ps->p = end;
}

static void next_token(parser *ps, token *t)
{
    char c;

    while ((c = *ps->p) == ' ' || c == '\t' || c == '\n' || c == '\r')
        ps->p++;
    t->index = (size_t)(ps->p - ps->data);
    switch (c) {
    case '{': t->type = T_OBJ_BEGIN; break;
    case '}': t->type = T_OBJ_END; break;
    case '[': t->type = T_ARR_BEGIN; break;
    case ']': t->type = T_ARR_END; break;
    case ':': t->type = T_COLON; break;
    case ',': t->type = T_COMMA; break;
    case '\0': t->type = T_END; return; /* as lua-cjson: a NUL ends the text */
    case '"': string_token(ps, t); return;
    case 't':
        if (strncmp(ps->p, "true", 4) != 0)
            break;
        t->type = T_BOOLEAN;
        t->boolean = 1;
        ps->p += 4;
        return;
    case 'f':
        if (strncmp(ps->p, "false", 5) != 0)
            break;
        t->type = T_BOOLEAN;
        t->boolean = 0;
        ps->p += 5;
        return;
    case 'n':
        if (strncmp(ps->p, "null", 4) != 0)
            break;
        t->type = T_NULL;
        ps->p += 4;
        return;
    default:
        if (c == '-' || is_digit(c)) {
            number_token(ps, t);
            return;
        }
        set_error(ps, t, "invalid token");
        return;
    }
    if (c == 't' || c == 'f' || c == 'n') {
        set_error(ps, t, "invalid token");
        return;
    }
    ps->p++;
}

/* ---- values ------------------------------------------------------------------ */

static void parse_error(parser *ps, const char *expected, const token *t)
{
    luaL_error(ps->L, "Expected %s but found %s at character %d", expected,
               t->type == T_ERROR ? t->error : token_names[t->type],
               (int)t->index + 1);
}

static void too_deep(parser *ps)
{
    luaL_error(ps->L, "Found too many nested data structures (%d) at character %d",
               ps->depth, (int)(ps->p - ps->data));
}

/* Stack room for the next 16 members of an object (or 32 of an array) and
 * what pushing one of them takes; asked for every 16 (32) members. */
static void room(parser *ps)
{
    if (!lua_checkstack(ps->L, 40))
        too_deep(ps);
}

/* Whether the next token is the one-character token c (then it is eaten).
 * The structure of a document is mostly these: no token is made for them. */
static int punct(parser *ps, char c)
{
    const char *p = ps->p;

    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    ps->p = p;
    if (*p != c)
        return 0;
    ps->p = p + 1;
    return 1;
}

/* Raises "Expected <what> but found <the next token>". */
static void expected(parser *ps, const char *what)
{
    token t;

    next_token(ps, &t);
    parse_error(ps, what, &t);
}

/* The next token, where an object key is due: most often a string. */
static void key_token(parser *ps, token *t)
{
    if (*ps->p == '"') {
        t->index = (size_t)(ps->p - ps->data);
        string_token(ps, t);
    } else {
        next_token(ps, t);
    }
}

static unsigned key_slot(const char *s, size_t len)
{
    uint64_t head = 0, tail = 0;

    /* The first and last eight bytes tell most keys of a schema apart
     * ("invoice_city" / "shipping_city"); a clash only costs a miss. */
    memcpy(&head, s, len < 8 ? len : 8);
    if (len > 8)
        memcpy(&tail, s + len - 8, 8);
    head = (head ^ (tail * UINT64_C(0x9E3779B97F4A7C15)) ^ len) * UINT64_C(0xFF51AFD7ED558CCD);
    return (unsigned)(head >> 40) & (KEY_SLOTS - 1);
}

static void push_key(parser *ps, const char *s, size_t len)
{
    lua_State *L = ps->L;
    key_cache *kc = ps->keys;
    unsigned slot;

    if (!USE_KEY_CACHE || len == 0 || len > KEY_MAX) {
        lua_pushlstring(L, s, len);
        return;
    }
    slot = key_slot(s, len);
    if (kc->len[slot] == len && memcmp(kc->bytes[slot], s, len) == 0) {
        lua_rawgeti(L, KEY_STRINGS, (int)slot + 1);
        return;
    }
    lua_pushlstring(L, s, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, KEY_STRINGS, (int)slot + 1); /* an array slot: no allocation */
    memcpy(kc->bytes[slot], s, len);
    kc->len[slot] = (unsigned char)len;
}

static void descend(parser *ps)
{
    /* The table's slot, and room for what pushing a value may take. */
    if (++ps->depth > MAX_DEPTH || !lua_checkstack(ps->L, 8))
        too_deep(ps);
}

static void parse_value(parser *ps, token *t, int top);

static void push_number(lua_State *L, const token *t, int top)
{
#if LUA_VERSION_NUM >= 503
    /* lua-cjson made floats; wemasy.json turned the whole ones inside a
     * table into integers (a bare number stayed a float). */
    if (t->whole && !top) {
        lua_pushinteger(L, (lua_Integer)t->i);
        return;
    }
#else
    (void)top;
#endif
    lua_pushnumber(L, (lua_Number)t->d);
}

/*
 * Makes the table of a container whose `n` members (n key/value pairs, or
 * n values) wait above slot `base`, which holds a placeholder; the table
 * takes the placeholder's slot and the members leave the stack.
 */
static void make_table(parser *ps, int base, int n, int pairs, int extra)
{
    lua_State *L = ps->L;
    int i;

    if (pairs) {
        lua_createtable(L, 0, n + extra);
        for (i = 0; i < n; i++) {
            lua_pushvalue(L, base + 1 + 2 * i);
            lua_pushvalue(L, base + 2 + 2 * i);
            lua_rawset(L, -3);
        }
    } else {
        lua_createtable(L, n + extra, 0);
        for (i = 0; i < n; i++) {
            lua_pushvalue(L, base + 1 + i);
            lua_rawseti(L, -2, i + 1);
        }
    }
    lua_replace(L, base);
    lua_settop(L, base);
    ps->pending -= pairs ? 2 * n : n;
}

static void parse_object(parser *ps)
{
    lua_State *L = ps->L;
    int base, n = 0, filling = 0;
    token t;

    descend(ps);
    lua_pushnil(L); /* the table's slot */
    base = lua_gettop(L);
    key_token(ps, &t);
    if (t.type != T_OBJ_END) {
        for (;;) {
            if (t.type != T_STRING)
                parse_error(ps, "object key string", &t);
            if ((n & 15) == 0)
                room(ps);
            push_key(ps, t.s, t.len);
            if (!punct(ps, ':'))
                expected(ps, "colon");
            next_token(ps, &t);
            parse_value(ps, &t, 0);
            if (filling) {
                lua_rawset(L, base);
            } else {
                n++;
                if ((ps->pending += 2) > PENDING_MAX) {
                    make_table(ps, base, n, 1, n);
                    filling = 1;
                }
            }
            if (punct(ps, '}'))
                break;
            if (!punct(ps, ','))
                expected(ps, "comma or object end");
            key_token(ps, &t);
        }
    }
    if (!filling)
        make_table(ps, base, n, 1, 0);
    ps->depth--;
}

static void parse_array(parser *ps)
{
    lua_State *L = ps->L;
    int base, n = 0, filling = 0;
    token t;

    descend(ps);
    lua_pushnil(L);
    base = lua_gettop(L);
    next_token(ps, &t);
    if (t.type != T_ARR_END) {
        for (;;) {
            if ((n & 31) == 0)
                room(ps);
            parse_value(ps, &t, 0);
            n++;
            if (filling) {
                lua_rawseti(L, base, n);
            } else if (++ps->pending > PENDING_MAX) {
                make_table(ps, base, n, 0, n);
                filling = 1;
            }
            if (punct(ps, ']'))
                break;
            if (!punct(ps, ','))
                expected(ps, "comma or array end");
            next_token(ps, &t);
        }
    }
    if (!filling)
        make_table(ps, base, n, 0, 0);
    ps->depth--;
}

static void parse_value(parser *ps, token *t, int top)
{
    lua_State *L = ps->L;

    switch (t->type) {
    case T_STRING:
        lua_pushlstring(L, t->s, t->len);
        break;
    case T_NUMBER:
        push_number(L, t, top);
        break;
    case T_BOOLEAN:
        lua_pushboolean(L, t->boolean);
        break;
    case T_NULL:
        lua_pushlightuserdata(L, NULL);
        break;
    case T_OBJ_BEGIN:
        parse_object(ps);
        break;
    case T_ARR_BEGIN:
        parse_array(ps);
        break;
    default:
        parse_error(ps, "value", t);
    }
}

/* core.json_decode(text) -> value; raises on invalid JSON. */
static int json_decode(lua_State *L)
{
    parser ps;
    token t;
    size_t len;
    const char *text;

    text = luaL_checklstring(L, 1, &len); /* a number is read as its text, as lua-cjson does */
    lua_settop(L, 1);
    if (len >= 2 && (text[0] == '\0' || text[1] == '\0'))
        return luaL_error(L, "JSON parser does not support UTF-16 or UTF-32");
    memset(&ps, 0, sizeof ps);
    ps.L = L;
#if USE_KEY_CACHE
    ps.keys = lua_touserdata(L, KEY_CACHE);
#endif
    ps.data = ps.p = text;
    ps.end = text + len;
    /* An unescaped string is never longer than its text. */
    if (memchr(text, '\\', len) != NULL)
        ps.scratch = lua_newuserdata(L, len + 1);
    next_token(&ps, &t);
    parse_value(&ps, &t, 1);
    next_token(&ps, &t);
    if (t.type != T_END)
        parse_error(&ps, "the end", &t);
    return 1;
}

/* Pushes json_decode, with this Lua state's key cache where it is used. */
void json_push_decoder(lua_State *L)
{
#if USE_KEY_CACHE
    key_cache *kc;

    lua_createtable(L, KEY_SLOTS, 0);
    kc = lua_newuserdata(L, sizeof *kc);
    memset(kc->len, 0, sizeof kc->len);
    lua_pushcclosure(L, json_decode, 2);
#else
    lua_pushcfunction(L, json_decode);
#endif
}
