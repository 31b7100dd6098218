/*
 * headers_fuzz.c - libFuzzer harness for what wemasy.core reads of a
 * response's head: headers.c's line parser (status lines, obs-fold, NULs,
 * the headers cap, the end of the final header block), the stored
 * "name\0value\0" pairs and their reader, the Lua table the binding makes
 * of them (client_push_headers), what the limiter learns from them
 * (call_learn: X-RateLimit-*, Retry-After, each read once, the most
 * cautious of repeated headers), and what the transfer then comes to
 * (transfer_end, classify.c).
 *
 * The harness plays libcurl: it feeds headers_line() one complete line per
 * call, CRLF included, into the header store of a real transfer (made once,
 * never sent), as transport.c's header callback does.  Input layout:
 *   byte 0      flags: bit 0 the head ends at the first blank line (the
 *               rest would be the body, which is not fed); bits 1-7 unused
 *   byte 1      unused
 *   byte 2      status: 200, 429, 503 or 302
 *   bytes 3-4   the limiter's clock, seconds
 *   the rest    header lines ('\n'-terminated)
 * Every check that fails aborts (libFuzzer reports it as a crash).
 */
#include <string.h>

#include <lualib.h>

#include "classify.h"
#include "client.h"
#include "fuzz.h"
#include "headers.h"
#include "libcurl.h"

static lua_State *L;
static transfer *TR;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The pairs as the reader gives them: inside the buffer, contiguous, names
 * non-empty and lower-case, no NUL inside a name or a value. */
static size_t check_pairs(const headers *h)
{
    const char *name, *value;
    size_t pos = 0, prev = 0, n = 0;

    while ((name = headers_next(h, &pos, &value)) != NULL) {
        size_t nl = strlen(name), vl;
        size_t i;

        CHECK(name == h->pairs.data + prev);
        CHECK(nl > 0);
        CHECK(value == name + nl + 1);
        vl = strlen(value);
        CHECK(pos == prev + nl + 1 + vl + 1);
        CHECK(pos <= h->pairs.len);
        for (i = 0; i < nl; i++)
            CHECK(!(name[i] >= 'A' && name[i] <= 'Z'));
        CHECK(nl == 0 || !is_space(name[nl - 1]));
        CHECK(vl == 0 || !is_space(value[0]));
        prev = pos;
        n++;
    }
    CHECK(prev == h->pairs.len);
    CHECK(h->pairs.len <= HEADERS_MAX);
    CHECK(h->raw <= HEADERS_MAX);
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
    while ((name = headers_next(transfer_headers(t), &pos, &value)) != NULL) {
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

static void check_one_line(const char *message)
{
    CHECK(message != NULL && message[0] != '\0');
    CHECK(strchr(message, '\n') == NULL && strchr(message, '\r') == NULL);
}

/* What the transfer comes to when libcurl ends it as the head left it:
 * stopped by the cap (libcurl reports a write error), or complete. */
static void check_end(transfer *t, int stopped)
{
    transport_result out;
    const char *value;
    size_t pos = 0;
    int complete = headers_complete(transfer_headers(t));

    if (stopped) {
        char errbuf[CURL_ERROR_SIZE] = "";
        classify_facts f = {.easy = transfer_easy(t), .abort = ABORT_HEADERS_TOO_LARGE,
                            .errbuf = errbuf};

        CHECK(classify_failure(&f, CURLE_WRITE_ERROR, &out) == TK_TOO_LARGE);
        check_one_line(out.message);
    }
    transfer_end(t, stopped ? CURLE_WRITE_ERROR : CURLE_OK, &out);
    if (!stopped && complete) {
        CHECK(out.kind == TK_OK && out.body != NULL && out.body_len == 0);
        return;
    }
    /* A failed transfer leaves nothing to misread. */
    CHECK(out.kind != TK_OK && out.body == NULL);
    CHECK(headers_next(transfer_headers(t), &pos, &value) == NULL);
    CHECK(stopped || (out.kind == TK_NETWORK && out.sent == 1));
    check_one_line(out.message);
}

static void setup(void)
{
    transport_config cfg;
    char err[TRANSPORT_ERRLEN];
    transport *t;

    L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(libcurl_global_init() == 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.base_url = "http://127.0.0.1:9"; /* never reached: nothing is sent */
    cfg.timeout_ms = cfg.connect_timeout_ms = 1000;
    cfg.max_body = 1;
    cfg.user_agent = "headers_fuzz";
    t = transport_new(&cfg, err, sizeof err);
    CHECK_WHY(t != NULL, err);
    TR = transfer_new(t, err, sizeof err);
    CHECK_WHY(TR != NULL, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 429, 503, 302};
    transport_result out;
    headers *h;
    size_t i = 5;
    int stopped = 0;
    double now;

    if (size < 5)
        return 0;
    if (TR == NULL)
        setup();
    CHECK(transfer_begin(TR, "/fuzz", "", 0, 0, &out) == TK_OK);
    /* The store is the transfer's own, written as its header callback
     * writes it; readers see it const. */
    h = (headers *)transfer_headers(TR);
    now = 1000.0 + (double)(data[3] | (data[4] << 8));

    while (i < size && !stopped) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t n = nl != NULL ? (size_t)(nl - (data + i)) + 1 : size - i;
        char *line = malloc(n); /* libcurl's buffer: exactly n bytes */
        size_t trimmed = n;
        size_t raw = h->raw;
        headers_event e;

        memcpy(line, data + i, n);
        e = headers_line(h, line, n);
        if (e == HEADERS_TOO_LARGE || e == HEADERS_OOM) {
            CHECK(e == HEADERS_TOO_LARGE);
            stopped = 1;
        } else {
            CHECK(h->raw == raw + n);
        }
        while (trimmed > 0 && is_space(line[trimmed - 1]))
            trimmed--;
        free(line);
        check_pairs(h);
        if ((data[0] & 1) && trimmed == 0)
            break;
        i += n;
    }

    check_pairs(h);
    check_table(TR);
    check_learning(TR, statuses[data[2] % 4], now);
    check_end(TR, stopped);
    return 0;
}
