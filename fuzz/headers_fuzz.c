/*
 * headers_fuzz.c - libFuzzer harness for what wemasy.core reads of a
 * response's head and body: transport.c's header callback (on_header: status
 * lines, obs-fold, the headers cap), its body callback (on_body: max_body),
 * the stored "name\0value\0" pairs and their reader, the Lua table the
 * binding makes of them (client_push_headers), and what the limiter learns
 * from them (call_learn: X-RateLimit-*, Retry-After, each read once, the
 * most cautious of repeated headers).
 *
 * transport.c is included, so its static callbacks are called exactly as
 * libcurl calls them: one complete line per call, CRLF included, then the
 * body in chunks.  Input layout:
 *   byte 0      flags: bit 0 body after the first blank line, bits 1-7 the
 *               body chunk size - 1
 *   byte 1      max_body: 1 << (byte % 25)
 *   byte 2      status: 200, 429, 503 or 302
 *   bytes 3-4   the limiter's clock, seconds
 *   the rest    header lines ('\n'-terminated), then the body
 * Every check that fails aborts (libFuzzer reports it as a crash).
 */
#include "../csrc/transport.c"

#include <lualib.h>

#include "client.h"
#include "fuzz.h"

static lua_State *L;

/* The pairs as the reader gives them: inside the buffer, contiguous, names
 * non-empty and lower-case, no NUL inside a name or a value. */
static size_t check_pairs(const transfer *t)
{
    const char *name, *value;
    size_t pos = 0, prev = 0, n = 0;

    while ((name = transfer_header_next(t, &pos, &value)) != NULL) {
        size_t nl = strlen(name), vl;
        size_t i;

        CHECK(name == t->headers.data + prev);
        CHECK(nl > 0);
        CHECK(value == name + nl + 1);
        vl = strlen(value);
        CHECK(pos == prev + nl + 1 + vl + 1);
        CHECK(pos <= t->headers.len);
        for (i = 0; i < nl; i++)
            CHECK(!(name[i] >= 'A' && name[i] <= 'Z'));
        CHECK(nl == 0 || !is_space(name[nl - 1]));
        CHECK(vl == 0 || !is_space(value[0]));
        prev = pos;
        n++;
    }
    CHECK(prev == t->headers.len);
    CHECK(t->headers.len <= HEADERS_MAX);
    return n;
}

static int push_headers(lua_State *LL)
{
    client_push_headers(LL, (const transfer *)lua_touserdata(LL, 1));
    return 1;
}

/* The binding's table: one entry per distinct name, each value the joined
 * values of that name. */
static void check_table(const transfer *t)
{
    const char *name, *value;
    size_t pos = 0;

    lua_settop(L, 0);
    lua_pushcfunction(L, push_headers);
    lua_pushlightuserdata(L, (void *)t);
    CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK);
    CHECK(lua_type(L, 1) == LUA_TTABLE);
    while ((name = transfer_header_next(t, &pos, &value)) != NULL) {
        size_t len;
        const char *joined;

        lua_getfield(L, 1, name);
        CHECK(lua_type(L, -1) == LUA_TSTRING);
        joined = lua_tolstring(L, -1, &len);
        CHECK(strlen(joined) == len);              /* no NUL made it in */
        CHECK(strstr(joined, value) != NULL);      /* each value is in it */
        lua_pop(L, 1);
    }
    lua_settop(L, 0);
}

/* What the limiter learnt stays within its bounds. */
static void check_learning(const transfer *t, long status, double now)
{
    char err[LIMITER_ERRLEN];
    client c;
    call_outcome o;
    limiter_report rep;
    const limiter_group *g;
    double wait;

    memset(&c, 0, sizeof c);
    c.limiter = limiter_open_local(0.25, err, sizeof err);
    CHECK(c.limiter != NULL);
    c.rate.ngroups = 1;
    strcpy(c.rate.groups[0].name, "default");
    c.rate.groups[0].limit = 60;
    c.rate.groups[0].window = 60;
    g = call_group(&c, NULL);
    memset(&o, 0, sizeof o);
    o.r.kind = TK_OK;
    o.r.status = status;
    o.tr = t;
    call_learn(&c, g, now, &o);
    CHECK(o.retry_after == -1 || (o.retry_after >= 0 && o.retry_after <= 86400));
    CHECK(o.limit >= -1 && o.limit <= 1000000);
    CHECK(o.remaining >= -1 && o.remaining <= 1000000);
    CHECK(c.limiter->ops->report(c.limiter, g, now, &rep) == 0);
    CHECK(rep.limit >= 1 && rep.limit <= LIMITER_RING);
    CHECK(rep.remaining >= 0 && rep.remaining <= rep.limit);
    CHECK(rep.reset_in >= 0 && rep.reset_in <= 60.25);
    CHECK(rep.closed_for >= 0 && rep.closed_for <= 86400);
    /* A slot is either free now or a finite wait away. */
    wait = c.limiter->ops->acquire(c.limiter, g, now);
    CHECK(wait >= 0 && wait <= 86400 + 60.25);
    limiter_close(c.limiter);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 429, 503, 302};
    struct transport stub;
    transfer tr;
    transport_result out;
    size_t i = 5, chunk;
    int body_mode, in_body = 0, stopped = 0;
    double now;

    if (size < 5)
        return 0;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    memset(&stub, 0, sizeof stub);
    memset(&tr, 0, sizeof tr);
    body_mode = data[0] & 1;
    chunk = (size_t)(data[0] >> 1) + 1;
    stub.max_body = (size_t)1 << (data[1] % 25);
    now = 1000.0 + (double)(data[3] | (data[4] << 8));
    tr.t = &stub;

    while (i < size && !stopped) {
        if (in_body) {
            size_t n = size - i < chunk ? size - i : chunk;
            char *copy = malloc(n); /* libcurl's buffer: exactly n bytes */

            memcpy(copy, data + i, n);
            if (on_body(copy, 1, n, &tr) != n) {
                CHECK(tr.abort == ABORT_BODY_TOO_LARGE);
                CHECK(tr.body.len + n > stub.max_body);
                stopped = 1;
            }
            free(copy);
            CHECK(tr.body.len <= stub.max_body);
            i += n;
        } else {
            const uint8_t *nl = memchr(data + i, '\n', size - i);
            size_t n = nl != NULL ? (size_t)(nl - (data + i)) + 1 : size - i;
            char *line = malloc(n);
            size_t trimmed = n;

            memcpy(line, data + i, n);
            if (on_header(line, 1, n, &tr) != n) {
                CHECK(tr.abort == ABORT_HEADERS_TOO_LARGE);
                stopped = 1;
            }
            while (trimmed > 0 && is_space(line[trimmed - 1]))
                trimmed--;
            free(line);
            check_pairs(&tr);
            if (body_mode && trimmed == 0)
                in_body = 1;
            i += n;
        }
    }

    check_pairs(&tr);
    check_table(&tr);
    check_learning(&tr, statuses[data[2] % 4], now);

    /* What libcurl would report next: an abort is a write error. */
    transfer_end(&tr, stopped ? CURLE_WRITE_ERROR : CURLE_OK, &out);
    if (stopped) {
        CHECK(out.kind == TK_TOO_LARGE);
        CHECK(tr.headers.len == 0 && tr.body.len == 0);
        CHECK(out.message != NULL && strchr(out.message, '\n') == NULL);
    } else {
        CHECK(out.kind == TK_OK);
        CHECK(out.body_len == tr.body.len);
    }
    buffer_free(&tr.url);
    buffer_free(&tr.body);
    buffer_free(&tr.headers);
    return 0;
}
