/*
 * limiter_redis.c - the Redis store: one quota for every host on a token.
 *
 * Each (token hash, group) has a sliding log in Redis, a sorted set of
 * grant times, and a small hash of state (the learned limit, a Retry-After
 * closing, the last time seen).  One server-side script (SCRIPT below, run
 * with EVALSHA, reloaded with EVAL after a restart or SCRIPT FLUSH) does a
 * whole acquire, learn or report atomically: one round trip each.  Redis's
 * TIME is the only clock: hosts' clocks need not agree, and the caller's
 * `now` is used only by the fallback.
 *
 * Redis down or slow: every call into Redis has one deadline, `timeout`
 * seconds after it started (connect, AUTH and every command share it); a
 * failure drops the connection and the call is served by the host's shared
 * memory store (limiter_shm.c) at `share` of each group's quota.  After
 * BREAKER_FAILURES failures in a row the store stops asking Redis for
 * BREAKER_OPEN seconds; the first call after that tries again and a
 * success rejoins.  base.kind says which store served the last call.
 *
 * The password lives only in this struct (wiped on close) and goes out only
 * in AUTH: errors name the server as host:port/db.  Keys hold no token:
 * "wemasy:{<the segment name's 16 hex digits>}:<group>:log|state".
 *
 * hiredis 0.14 (Debian 12) has no TLS, so rediss:// is refused.
 */
#include "limiter.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* A few failures in a row (not one: a single slow answer is no outage)
 * open the breaker; for a few seconds the host then serves itself without
 * paying a timeout per call, and then Redis is asked again. */
#define BREAKER_FAILURES 3
#define BREAKER_OPEN 3.0

#define RING_MAX LIMITER_RING
/* Waits and times cross the wire as whole microseconds. */
#define US 1e6
/* Longer than any wait the script can answer (a day of Retry-After plus a
 * window): a larger number is not Redis's answer to our script. */
#define MAX_WAIT_US (2.0 * 86400 * US + 2147483.0 * US)

/* The script: KEYS = the log, the state; ARGV = op, N, span (W + margin),
 * reserve, news limit, news remaining, news retry_after (< 0: not said).
 * acquire and learn return {0 granted | 1 refused, wait µs, N in force,
 * sends in the span}; report {N, remaining to this caller (its reserve left
 * out), reset_in µs, closed_for µs}. */
static const char SCRIPT[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local log, state = KEYS[1], KEYS[2]\n"
    "local op, n, span = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local reserve = tonumber(ARGV[4])\n"
    "local RING = 1024\n"
    /* Whether a key was written: it then gets its TTL again (save). */
    "local dirty = false\n"
    /* Garbage in a key (another type): start afresh, as a corrupt segment. */
    "local function keep(key, want)\n"
    "  local t = redis.call('TYPE', key)['ok']\n"
    "  if t ~= 'none' and t ~= want then redis.call('DEL', key) dirty = true end\n"
    "end\n"
    "keep(log, 'zset') keep(state, 'hash')\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"
    /* A field outside [lo, hi] (or not a number, NaN included) is absent. */
    "local function num(field, lo, hi)\n"
    "  local v = tonumber(redis.call('HGET', state, field))\n"
    "  if v and v >= lo and v <= hi then return v end\n"
    "  return nil\n"
    "end\n"
    /* Redis's clock stepping back must not shrink the log: stand still at
     * the last time seen (a step of more than a span, or garbage, is
     * forgotten; the times after now then count as sent now). */
    "local last = num('last', 0, now + span)\n"
    "if last and last > now then now = last end\n"
    "local nows = string.format('%.6f', now)\n"
    "now = tonumber(nows)\n"
    "local seq = num('seq', 0, 1e15) or 0\n"
    "local function add(k)\n"
    "  for _ = 1, k do\n"
    "    seq = seq + 1\n"
    "    redis.call('ZADD', log, nows, nows .. '#' .. string.format('%d', seq))\n"
    "  end\n"
    "  redis.call('HSET', state, 'seq', string.format('%d', seq))\n"
    "  dirty = true\n"
    "end\n"
    "local future = redis.call('ZREMRANGEBYSCORE', log, '(' .. nows, '+inf')\n"
    "redis.call('ZREMRANGEBYSCORE', log, '-inf', string.format('%.6f', now - span))\n"
    "if future > 0 then add(future) end\n"
    "local count = redis.call('ZCARD', log)\n"
    "if count > RING then\n"
    "  redis.call('ZREMRANGEBYRANK', log, 0, count - RING - 1)\n"
    "  count = RING\n"
    "end\n"
    "n = math.floor(num('limit', 1, RING) or n)\n"
    "if n < 1 then n = 1 elseif n > RING then n = RING end\n"
    "local closed_until = num('closed', 0, now + 86400) or 0\n"
    "local function slot_wait(k)\n"
    "  if count < k then return 0 end\n"
    "  local e = redis.call('ZRANGE', log, count - k, count - k, 'WITHSCORES')\n"
    "  return tonumber(e[2]) + span - now\n"
    "end\n"
    "local function us(s) if s > 1e-6 then return math.ceil(s * 1e6) end return 0 end\n"
    "local function save()\n"
    "  redis.call('HSET', state, 'last', nows)\n"
    "  local ttl = math.ceil((span + math.max(closed_until - now, 0)) * 1000) + 1000\n"
    "  redis.call('PEXPIRE', log, ttl)\n"
    "  redis.call('PEXPIRE', state, ttl)\n"
    "end\n"
    /* What this caller may fill: N less its reserve, never below one
     * (window.c's share_of). */
    "local allowed = n - reserve\n"
    "if reserve <= 0 then allowed = n elseif allowed < 1 then allowed = 1 end\n"
    "if op == 'report' then\n"
    "  local remaining = allowed - count\n"
    "  if remaining < 0 then remaining = 0 end\n"
    "  local reset = 0\n"
    "  if remaining == 0 then reset = slot_wait(allowed) end\n"
    "  if dirty then save() end\n"
    "  return {n, remaining, us(reset), us(closed_until - now)}\n"
    "elseif op == 'acquire' then\n"
    "  local wait = slot_wait(allowed)\n"
    "  if closed_until - now > wait then wait = closed_until - now end\n"
    "  if wait > 1e-6 then\n"
    "    if dirty then save() end\n"
    "    return {1, us(wait), n, count}\n"
    "  end\n"
    "  add(1)\n"
    "  save()\n"
    "  return {0, 0, n, count + 1}\n"
    "elseif op == 'learn' then\n"
    "  local nl, rem, ra = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "  if nl >= 1 then\n"
    "    n = math.min(math.floor(nl), RING)\n"
    "    redis.call('HSET', state, 'limit', string.format('%d', n))\n"
    "  end\n"
    "  if ra >= 0 then\n"
    /* A 429's Retry-After closes the group for every host. */
    "    if now + ra > closed_until then\n"
    "      closed_until = math.min(now + ra, now + 86400)\n"
    "      redis.call('HSET', state, 'closed', string.format('%.6f', closed_until))\n"
    "    end\n"
    "  elseif rem >= 0 then\n"
    /* The server counted more than the log holds: the missing ones as now. */
    "    local used = math.min(n - rem, RING)\n"
    "    if used > count then add(used - count) count = used end\n"
    "  end\n"
    "  save()\n"
    "  return {0, 0, n, count}\n"
    "end\n"
    "return redis.error_reply('wemasy: unknown op')\n";

/* What acquire told of a group, so that learn can skip a round trip when
 * the server's count adds nothing to the log's. */
typedef struct {
    char name[LIMITER_NAME_MAX + 1];
    int limit, count;
} seen_group;

typedef struct {
    limiter_store base;
    limiter_store *fallback; /* the host's shm store */
    double share;            /* of each group's quota while falling back */
    redisContext *ctx;       /* NULL until connected and after a failure */
    pid_t pid;               /* the process that made ctx */
    char host[256];
    int port, db;
    char *user, *password; /* NULL when not given; wiped on close */
    char where[300];       /* "host:port/db" for error messages */
    double timeout;
    char prefix[40];       /* "wemasy:{<16 hex>}:" */
    char sha[48];          /* the script's SHA1 on this server, "" before */
    int failures;          /* in a row */
    double open_until;     /* the breaker: Redis is not asked before this */
    seen_group seen[LIMITER_GROUPS_MAX];
} redis_store;

/* ---- the URL ------------------------------------------------------------------ */

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A percent-decoded copy of s[0, len), or NULL (a bad escape, an escaped
 * NUL, no memory). */
static char *decoded(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t i, j = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            c = hi * 16 + lo;
            i += 2;
        }
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return out;
}

/* Copies s[0, len) into out[size]; 0, or -1 when empty or too long. */
static int copy_part(char *out, size_t size, const char *s, size_t len)
{
    if (len == 0 || len >= size)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* A number of at most 9 digits in s[0, len) within [lo, hi]; -1 if not. */
static long digits(const char *s, size_t len, long lo, long hi)
{
    long n = 0;
    size_t i;

    if (len == 0 || len > 9)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        n = n * 10 + (s[i] - '0');
    }
    return n >= lo && n <= hi ? n : -1;
}

/* The user info before `at`: [user]:password, each percent-decoded. */
static const char *parse_userinfo(redis_store *s, const char *p, const char *at)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));

    if (colon == NULL)
        return "has user info without a ':' (write redis://:password@host:port)";
    if (colon > p && (s->user = decoded(p, (size_t)(colon - p))) == NULL)
        return "has a bad %-escape in its user name";
    if ((s->password = decoded(colon + 1, (size_t)(at - colon - 1))) == NULL)
        return "has a bad %-escape in its password";
    return NULL;
}

/* redis://[[user]:password@]host[:port][/db] into s; NULL, or why not, in
 * words that never quote the URL (it may hold the password). */
static const char *parse_url(redis_store *s, const char *url)
{
    const char *p, *end, *at = NULL, *q, *host_end;

    if (strncmp(url, "rediss://", 9) == 0)
        return "is a rediss:// URL, but this build's hiredis (0.14) has no TLS: use redis:// "
               "on a trusted network, or a TLS tunnel to Redis";
    if (strncmp(url, "redis://", 8) != 0)
        return "must be \"shm\", \"local\" or a redis://[:password@]host:port[/db] URL";
    p = url + 8;
    end = p + strcspn(p, "/");
    for (q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *why = parse_userinfo(s, p, at);

        if (why != NULL)
            return why;
        p = at + 1;
    }
    if (*p == '[') { /* an IPv6 address */
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL || copy_part(s->host, sizeof s->host, p + 1,
                                          (size_t)(host_end - p - 1)) != 0)
            return "has a bad [IPv6] host";
        q = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        q = host_end != NULL ? host_end : end;
        if (copy_part(s->host, sizeof s->host, p, (size_t)(q - p)) != 0)
            return "has no host (or one too long)";
    }
    s->port = 6379;
    if (q < end && (*q != ':' ||
                    (s->port = (int)digits(q + 1, (size_t)(end - q - 1), 1, 65535)) < 0))
        return "has a bad port (1 to 65535)";
    if (*end == '/' && end[1] != '\0' &&
        (s->db = (int)digits(end + 1, strlen(end + 1), 0, 999999)) < 0)
        return "has a bad database number (the path must be /<number>)";
    snprintf(s->where, sizeof s->where, "%s:%d/%d", s->host, s->port, s->db);
    return NULL;
}

/* ---- one deadline per call, SIGPIPE held off ---------------------------------- */

static void drop(redis_store *s)
{
    if (s->ctx != NULL)
        redisFree(s->ctx);
    s->ctx = NULL;
}

static struct timeval time_left(double deadline)
{
    double left = deadline - limiter_now();
    struct timeval tv = {0, 1}; /* 0 would mean "no timeout" */

    if (left > 1e-6) {
        tv.tv_sec = (time_t)left;
        tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
        if (tv.tv_sec == 0 && tv.tv_usec == 0)
            tv.tv_usec = 1;
    }
    return tv;
}

/* The socket's timeouts set to what is left of the deadline; -1 if none. */
static int until(redis_store *s, double deadline)
{
    if (deadline - limiter_now() <= 0)
        return -1;
    return redisSetTimeout(s->ctx, time_left(deadline)) == REDIS_OK ? 0 : -1;
}

/* Writing on a connection the peer has reset raises SIGPIPE, which would
 * kill the process (hiredis 0.14 uses write(), not send with MSG_NOSIGNAL).
 * A killed Redis does not provoke it (its FIN makes our read fail first),
 * but a reset between two writes would: block it around our I/O and swallow
 * one we caused, leaving any other alone. */
typedef struct {
    sigset_t old;
    int pending; /* one was pending already: not ours */
} pipe_guard;

static void guard_on(pipe_guard *g)
{
    sigset_t pipe, pending;

    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    g->pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
}

static void guard_off(const pipe_guard *g)
{
    sigset_t pipe, pending;
    struct timespec zero = {0, 0};

    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    if (!g->pending && sigismember(&pending, SIGPIPE))
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- the connection ------------------------------------------------------------ */

static int reply_ok(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
}

/* Whether r is SCRIPT LOAD's answer: 40 hex digits, kept in s->sha. */
static int keep_sha(redis_store *s, const redisReply *r)
{
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != 40)
        return 0;
    for (i = 0; i < 40; i++)
        if (hex_value(r->str[i]) < 0)
            return 0;
    memcpy(s->sha, r->str, 40);
    s->sha[40] = '\0';
    return 1;
}

/* Connects, authenticates, selects the database and loads the script, in
 * one round trip after the connect; 0 or -1 (nothing kept). */
static int connect_redis(redis_store *s, double deadline)
{
    int n = 0, i, ok = 1;

    s->ctx = redisConnectWithTimeout(s->host, s->port, time_left(deadline));
    if (s->ctx == NULL || s->ctx->err != 0 || until(s, deadline) != 0) {
        drop(s);
        return -1;
    }
    s->pid = getpid();
    if (s->password != NULL) {
        if (s->user != NULL)
            ok &= redisAppendCommand(s->ctx, "AUTH %s %s", s->user, s->password) == REDIS_OK;
        else
            ok &= redisAppendCommand(s->ctx, "AUTH %s", s->password) == REDIS_OK;
        n++;
    }
    if (s->db != 0) {
        ok &= redisAppendCommand(s->ctx, "SELECT %d", s->db) == REDIS_OK;
        n++;
    }
    ok &= redisAppendCommand(s->ctx, "SCRIPT LOAD %s", SCRIPT) == REDIS_OK;
    for (i = 0; ok && i <= n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK)
            ok = 0;
        else
            ok = i < n ? reply_ok(r) : keep_sha(s, r);
        freeReplyObject(r);
    }
    if (!ok)
        drop(s);
    return ok ? 0 : -1;
}

/* ---- the script ------------------------------------------------------------------ */

/* Whether r is four integers as the script answers `report` (or not). */
static int reply_values(const redisReply *r, int report, long long v[4])
{
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return 0;
    for (i = 0; i < 4; i++) {
        const redisReply *e = r->element[i];

        if (e == NULL || e->type != REDIS_REPLY_INTEGER || e->integer < 0 ||
            (double)e->integer > MAX_WAIT_US)
            return 0;
        v[i] = e->integer;
    }
    if (report) /* N, remaining, reset_in, closed_for */
        return v[0] >= 1 && v[0] <= RING_MAX && v[1] <= v[0];
    /* granted with no wait, or refused with one; N; sends in the span */
    return (v[0] == 0 ? v[1] == 0 : v[0] == 1 && v[1] > 0) && v[2] >= 1 &&
           v[2] <= RING_MAX && v[3] <= RING_MAX;
}

/* EVALSHA, or EVAL when the server forgot the script (a restart, SCRIPT
 * FLUSH): which also loads it again under the same SHA1. */
static redisReply *evaluate(redis_store *s, double deadline, const char **argv,
                            int argc)
{
    redisReply *r;

    argv[0] = "EVALSHA";
    argv[1] = s->sha;
    if (until(s, deadline) != 0)
        return NULL;
    r = redisCommandArgv(s->ctx, argc, argv, NULL);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = SCRIPT;
        if (until(s, deadline) != 0)
            return NULL;
        r = redisCommandArgv(s->ctx, argc, argv, NULL);
    }
    return r;
}

static int asks_redis(const redis_store *s)
{
    return limiter_now() >= s->open_until;
}

static void failed(redis_store *s)
{
    drop(s);
    if (++s->failures >= BREAKER_FAILURES) {
        /* Stays at the threshold: after the pause one more failure
         * opens it again at once. */
        s->failures = BREAKER_FAILURES;
        s->open_until = limiter_now() + BREAKER_OPEN;
    }
}

/* Runs op for group g within one timeout: the script's four values in v,
 * or -1 (counted by the breaker; the caller falls back). */
static int run_script(redis_store *s, const limiter_group *g, const char *op,
                      const limiter_news *news, long long v[4])
{
    double deadline = limiter_now() + s->timeout;
    char log[sizeof s->prefix + LIMITER_NAME_MAX + 8];
    char state[sizeof s->prefix + LIMITER_NAME_MAX + 8];
    char n[16], span[32], reserve[16], nl[16], rem[16], ra[32];
    const char *argv[12];
    redisReply *r = NULL;
    pipe_guard guard;
    int ok = 0;

    snprintf(log, sizeof log, "%s%s:log", s->prefix, g->name);
    snprintf(state, sizeof state, "%s%s:state", s->prefix, g->name);
    snprintf(n, sizeof n, "%d", g->limit);
    snprintf(span, sizeof span, "%.6f", g->window + s->base.margin);
    snprintf(reserve, sizeof reserve, "%d", g->reserve > 0 ? g->reserve : 0);
    snprintf(nl, sizeof nl, "%d", news != NULL ? news->limit : -1);
    snprintf(rem, sizeof rem, "%d", news != NULL ? news->remaining : -1);
    snprintf(ra, sizeof ra, "%.6f", news != NULL ? news->retry_after : -1.0);
    argv[2] = "2";
    argv[3] = log;
    argv[4] = state;
    argv[5] = op;
    argv[6] = n;
    argv[7] = span;
    argv[8] = reserve;
    argv[9] = nl;
    argv[10] = rem;
    argv[11] = ra;
    guard_on(&guard);
    /* A child of fork() must not talk on its parent's socket. */
    if (s->ctx != NULL && s->pid != getpid())
        drop(s);
    if (s->ctx != NULL || connect_redis(s, deadline) == 0) {
        r = evaluate(s, deadline, argv, 12);
        ok = reply_values(r, strcmp(op, "report") == 0, v);
    }
    freeReplyObject(r);
    if (ok)
        s->failures = 0;
    else
        failed(s);
    guard_off(&guard);
    return ok ? 0 : -1;
}

/* ---- the fallback: the host's shm store ------------------------------------------ */

/*
 * While Redis cannot serve, each host takes `share` of each group's quota
 * from its own shared memory; learning is scaled the same way.  This is
 * also the place where a store-level breaker state would look: the Redis
 * store's is its own (failures, open_until above), and anything the shm
 * store says about its own health belongs to s->fallback.
 */
static seen_group *seen_of(redis_store *s, const char *name, int add)
{
    size_t i;

    for (i = 0; i < LIMITER_GROUPS_MAX && s->seen[i].name[0] != '\0'; i++)
        if (strcmp(s->seen[i].name, name) == 0)
            return &s->seen[i];
    if (!add || i == LIMITER_GROUPS_MAX)
        return NULL;
    strncpy(s->seen[i].name, name, LIMITER_NAME_MAX);
    return &s->seen[i];
}

/* The quota Redis last said (the learned N), else the configured one. */
static int limit_known(redis_store *s, const limiter_group *g)
{
    const seen_group *k = seen_of(s, g->name, 0);

    return k != NULL && k->limit > 0 ? k->limit : g->limit;
}

static limiter_group host_part(redis_store *s, const limiter_group *g)
{
    limiter_group part = *g;

    part.limit = (int)floor((double)limit_known(s, g) * s->share);
    if (part.limit < 1)
        part.limit = 1;
    return part;
}

static double fallback_acquire(redis_store *s, const limiter_group *g, double now)
{
    limiter_group part = host_part(s, g);

    s->base.kind = "shm";
    return s->fallback->ops->acquire(s->fallback, &part, now);
}

static int fallback_learn(redis_store *s, const limiter_group *g, double now,
                          const limiter_news *news)
{
    limiter_group part = host_part(s, g);
    limiter_news scaled = *news;
    int whole = news->limit > 0 ? news->limit : limit_known(s, g);

    /* The server's N, shared out as the configured one; what the server
     * has left, less what the other hosts may take. */
    if (news->limit > 0) {
        scaled.limit = (int)floor((double)(whole > RING_MAX ? RING_MAX : whole) * s->share);
        part.limit = scaled.limit = scaled.limit < 1 ? 1 : scaled.limit;
    }
    if (news->remaining >= 0) {
        scaled.remaining = news->remaining - (whole - part.limit);
        if (scaled.remaining < 0)
            scaled.remaining = 0;
    }
    s->base.kind = "shm";
    return s->fallback->ops->learn(s->fallback, &part, now, &scaled);
}

/* ---- the store operations ---------------------------------------------------------- */

static double redis_acquire(limiter_store *base, const limiter_group *g,
                            double now)
{
    redis_store *s = (redis_store *)base;
    long long v[4];
    seen_group *k;

    if (!asks_redis(s) || run_script(s, g, "acquire", NULL, v) != 0)
        return fallback_acquire(s, g, now);
    base->kind = "redis";
    if ((k = seen_of(s, g->name, 1)) != NULL) {
        k->limit = (int)v[2];
        k->count = (int)v[3];
    }
    return v[0] == 0 ? 0 : (double)v[1] / US;
}

/* Whether the news cannot change the log: no 429, the same N, and the
 * server has counted no more than the log held at our last acquire. */
static int adds_nothing(redis_store *s, const limiter_group *g,
                        const limiter_news *news)
{
    const seen_group *k = seen_of(s, g->name, 0);
    int limit = news->limit > RING_MAX ? RING_MAX : news->limit;

    if (news->retry_after >= 0)
        return 0;
    if (news->limit < 0 && news->remaining < 0)
        return 1;
    if (k == NULL || k->limit <= 0 || (limit > 0 && limit != k->limit))
        return 0;
    return news->remaining < 0 || k->limit - news->remaining <= k->count;
}

static int redis_learn(limiter_store *base, const limiter_group *g, double now,
                       const limiter_news *news)
{
    redis_store *s = (redis_store *)base;
    long long v[4];
    seen_group *k;

    if (asks_redis(s) && adds_nothing(s, g, news))
        return 0;
    if (!asks_redis(s) || run_script(s, g, "learn", news, v) != 0)
        return fallback_learn(s, g, now, news);
    base->kind = "redis";
    if ((k = seen_of(s, g->name, 1)) != NULL) {
        k->limit = (int)v[2];
        k->count = (int)v[3];
    }
    return 0;
}

static int redis_report(limiter_store *base, const limiter_group *g,
                        double now, limiter_report *out)
{
    redis_store *s = (redis_store *)base;
    long long v[4];

    if (!asks_redis(s) || run_script(s, g, "report", NULL, v) != 0) {
        limiter_group part = host_part(s, g);

        base->kind = "shm";
        return s->fallback->ops->report(s->fallback, &part, now, out);
    }
    base->kind = "redis";
    out->limit = (int)v[0];
    out->remaining = (int)v[1];
    out->reset_in = (double)v[2] / US;
    out->closed_for = (double)v[3] / US;
    return 0;
}

/* Deletes every key of this token: SCAN by the prefix (it holds no glob
 * character: hex digits and braces), each command within the timeout. */
static int forget_keys(redis_store *s)
{
    char pattern[sizeof s->prefix + 2], cursor[32] = "0";
    int rounds, ok = 1;

    snprintf(pattern, sizeof pattern, "%s*", s->prefix);
    if (s->ctx != NULL && s->pid != getpid())
        drop(s);
    if (s->ctx == NULL && connect_redis(s, limiter_now() + s->timeout) != 0)
        return -1;
    for (rounds = 0; ok && rounds < 10000; rounds++) {
        redisReply *r;
        size_t i;

        ok = until(s, limiter_now() + s->timeout) == 0 &&
             (r = redisCommand(s->ctx, "SCAN %s MATCH %s COUNT 1000", cursor, pattern)) != NULL;
        if (!ok)
            break;
        ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof cursor &&
             r->element[1]->type == REDIS_REPLY_ARRAY;
        for (i = 0; ok && i < r->element[1]->elements; i++) {
            const redisReply *key = r->element[1]->element[i];
            redisReply *d;

            ok = key->type == REDIS_REPLY_STRING &&
                 (d = redisCommand(s->ctx, "DEL %b", key->str, key->len)) != NULL;
            if (ok)
                freeReplyObject(d);
        }
        if (ok)
            memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        freeReplyObject(r);
        if (ok && strcmp(cursor, "0") == 0)
            break;
    }
    return ok ? 0 : -1;
}

static int redis_reset(limiter_store *base)
{
    redis_store *s = (redis_store *)base;
    pipe_guard guard;
    int rc;

    memset(s->seen, 0, sizeof s->seen);
    guard_on(&guard);
    rc = forget_keys(s);
    if (rc != 0)
        failed(s);
    guard_off(&guard);
    if (s->fallback->ops->reset != NULL && s->fallback->ops->reset(s->fallback) != 0)
        rc = -1;
    return rc;
}

static void wipe(char *secret)
{
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

static void redis_close(limiter_store *base)
{
    redis_store *s = (redis_store *)base;

    drop(s);
    wipe(s->password);
    wipe(s->user);
    limiter_close(s->fallback);
    free(s);
}

static const limiter_ops redis_ops = {
    .acquire = redis_acquire,
    .learn = redis_learn,
    .report = redis_report,
    .reset = redis_reset,
    .close = redis_close,
};

limiter_store *limiter_open_redis(const char *url, const char *base_url,
                                  const char *token, double margin,
                                  double timeout, double share, char *err,
                                  size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    redis_store *s = calloc(1, sizeof *s);
    const char *why;

    if (s == NULL) {
        snprintf(err, errlen, "rate limiter: out of memory");
        return NULL;
    }
    s->base.ops = &redis_ops;
    s->base.margin = margin;
    s->base.kind = "redis";
    s->timeout = timeout;
    s->share = share;
    if ((why = parse_url(s, url)) != NULL) {
        snprintf(err, errlen, "option 'rate_limit.store' %s", why);
        redis_close(&s->base);
        return NULL;
    }
    s->fallback = limiter_open_shared(base_url, token, margin, err, errlen);
    if (s->fallback == NULL) {
        redis_close(&s->base);
        return NULL;
    }
    /* "/wemasy-<16 hex>": the same hash, so no token in any key. */
    limiter_segment_name(base_url, token, name);
    snprintf(s->prefix, sizeof s->prefix, "wemasy:{%s}:", name + 8);
    return &s->base;
}
