/*
 * redis_acquire.c - the Redis store seen from one process, for
 * bench/redis.lua (make bench-redis).  Pure C on csrc/limiter*.c: no Lua.
 *
 *   redis_acquire latency <redis_url> <n>
 *       n acquires, each timed on its own, on the shm store and then on the
 *       Redis store, and n bare PINGs: p50, p99 and the longest, in
 *       microseconds; and, from
 *       Redis's INFO commandstats, the commands the store sent per acquire.
 *   redis_acquire fallback <redis_url> <seconds>
 *       an acquire every 2 ms for that long, printing "<time> <store>" each
 *       time the store that served changes (time on limiter_now()'s clock,
 *       which core.now() reads too) and the longest acquire per store; the
 *       driver kills and restarts redis-server meanwhile.
 *
 * The key is private to the run (a base URL with this pid), so no real
 * quota is touched; the run's keys and segment are removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "limiter.h"

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* A group whose slots free at once: every acquire succeeds, each one the
 * path a request pays. */
static limiter_group open_group(const char *name)
{
    limiter_group g;

    memset(&g, 0, sizeof g);
    snprintf(g.name, sizeof g.name, "%s", name);
    g.limit = 1000;
    g.window = 1e-6;
    return g;
}

static void timed(const char *label, limiter_store *s, long n)
{
    limiter_group g = open_group("bench");
    double *took = malloc((size_t)n * sizeof *took);
    long i, refused = 0;

    if (took == NULL)
        exit(1);
    for (i = 0; i < 1000; i++) /* warm-up: connection, script, pages */
        s->ops->acquire(s, &g, limiter_now());
    for (i = 0; i < n; i++) {
        double t0 = limiter_now();

        if (s->ops->acquire(s, &g, t0) != 0)
            refused++;
        took[i] = (limiter_now() - t0) * 1e6;
    }
    qsort(took, (size_t)n, sizeof *took, by_value);
    printf("latency %s n=%ld p50=%.1f p99=%.1f max=%.1f served_by=%s refused=%ld\n",
           label, n, took[n / 2], took[(n * 99) / 100], took[n - 1],
           s->kind != NULL ? s->kind : "?", refused);
    free(took);
}

/* The yardstick: a bare PING on the same loopback and machine, so the
 * store's own cost shows apart from the scheduling of two busy cores. */
static void pings(redisContext *c, long n)
{
    double *took = malloc((size_t)n * sizeof *took);
    long i;

    if (took == NULL)
        exit(1);
    for (i = 0; i < n; i++) {
        double t0 = limiter_now();

        freeReplyObject(redisCommand(c, "PING"));
        took[i] = (limiter_now() - t0) * 1e6;
    }
    qsort(took, (size_t)n, sizeof *took, by_value);
    printf("latency ping n=%ld p50=%.1f p99=%.1f max=%.1f\n", n, took[n / 2],
           took[(n * 99) / 100], took[n - 1]);
    free(took);
}

/* Calls of one command in INFO commandstats' text, 0 if absent. */
static long calls_of(const char *info, const char *name)
{
    char key[64];
    const char *p;

    snprintf(key, sizeof key, "cmdstat_%s:calls=", name);
    p = strstr(info, key);
    return p != NULL ? atol(p + strlen(key)) : 0;
}

static redisContext *admin(const char *url)
{
    char host[128] = "127.0.0.1";
    int port = 6379;
    redisContext *c;

    if (sscanf(url, "redis://%127[^:]:%d", host, &port) < 1)
        return NULL;
    c = redisConnect(host, port);
    if (c == NULL || c->err) {
        fprintf(stderr, "cannot reach redis at %s\n", url);
        exit(1);
    }
    return c;
}

static void round_trips(redisContext *c, long n, limiter_store *s)
{
    /* What the store itself sends; the script's own calls (ZADD, HGET...)
     * are counted by Redis too, but they are no round trips. */
    static const char *const sent[] = {"evalsha", "eval", "script|load", "auth",
                                        "select", "ping", "fcall", NULL};
    limiter_group g = open_group("trips");
    redisReply *r;
    long i, total = 0;
    int k;

    freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    for (i = 0; i < n; i++)
        s->ops->acquire(s, &g, limiter_now());
    r = redisCommand(c, "INFO commandstats");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "INFO commandstats failed\n");
        exit(1);
    }
    printf("trips acquires=%ld", n);
    for (k = 0; sent[k] != NULL; k++) {
        long calls = calls_of(r->str, sent[k]);

        total += calls;
        if (calls > 0)
            printf(" %s=%ld", sent[k], calls);
    }
    /* Redis's own time in the script, apart from loopback and scheduling. */
    {
        const char *p = strstr(r->str, "cmdstat_evalsha:");

        p = p != NULL ? strstr(p, "usec_per_call=") : NULL;
        printf(" per_acquire=%.3f server_us=%.1f\n", (double)total / (double)n,
               p != NULL ? atof(p + strlen("usec_per_call=")) : -1.0);
    }
    freeReplyObject(r);
}

static void fallback(limiter_store *s, double seconds)
{
    limiter_group g = open_group("fallback");
    double start = limiter_now(), longest[2] = {0, 0};
    const char *last = "";

    printf("start %.6f\n", start);
    fflush(stdout);
    while (limiter_now() - start < seconds) {
        double t0 = limiter_now(), took;
        int redis;

        s->ops->acquire(s, &g, t0);
        took = limiter_now() - t0;
        redis = strcmp(s->kind, "redis") == 0;
        if (took > longest[redis])
            longest[redis] = took;
        if (strcmp(s->kind, last) != 0) {
            printf("served %.6f %s\n", t0, s->kind);
            fflush(stdout);
            last = s->kind;
        }
        usleep(2000);
    }
    printf("longest redis=%.1f shm=%.1f\n", longest[1] * 1e3, longest[0] * 1e3);
}

int main(int argc, char **argv)
{
    char err[LIMITER_ERRLEN], base[64], segment[LIMITER_SEGMENT_NAME_LEN + 1];
    limiter_store *shm, *redis;

    if (argc != 4 || (strcmp(argv[1], "latency") != 0 && strcmp(argv[1], "fallback") != 0)) {
        fprintf(stderr, "usage: redis_acquire latency|fallback <redis_url> <n|seconds>\n");
        return 2;
    }
    snprintf(base, sizeof base, "http://bench.invalid/%ld", (long)getpid());
    shm = limiter_open_shared(base, "bench", 0, err, sizeof err);
    redis = shm != NULL ? limiter_open_redis(argv[2], base, "bench", 0, 0.1, 0.25, err, sizeof err)
                        : NULL;
    if (redis == NULL) {
        fprintf(stderr, "cannot open a store: %s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "latency") == 0) {
        redisContext *c = admin(argv[2]);
        long n = atol(argv[3]);

        timed("shm", shm, n);
        timed("redis", redis, n);
        pings(c, n);
        round_trips(c, n / 10, redis);
        redisFree(c);
    } else {
        fallback(redis, atof(argv[3]));
    }
    if (redis->ops->reset != NULL)
        redis->ops->reset(redis);
    limiter_close(redis);
    limiter_close(shm);
    limiter_segment_name(base, "bench", segment);
    shm_unlink(segment);
    return 0;
}
