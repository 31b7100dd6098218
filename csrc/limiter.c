/*
 * limiter.c - the store interface's common parts and the in-process store.
 *
 * The in-process store belongs to one client (one Lua state, one thread),
 * so it needs no lock.  Its groups are allocated on first use: most clients
 * only ever touch "default".
 */
#include "limiter.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "url.h"
#include "window.h"

double limiter_now(void)
{
    struct timespec ts;

    /* Linux's monotonic clock is system-wide, so shared timestamps agree
     * between processes; it never jumps with the wall clock. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void limiter_close(limiter_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/* 64-bit FNV-1a: small, stable across builds and platforms. */
static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void fnv1a_put(void *ctx, char c)
{
    uint64_t *h = ctx;

    *h = (*h ^ (unsigned char)c) * 0x100000001b3ULL;
}

uint64_t limiter_quota_key(const char *base_url, const char *token)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    /* One quota per API however its URL is spelled. */
    url_normalise(base_url, fnv1a_put, &h);
    h = fnv1a(h, "\n");
    return fnv1a(h, token != NULL ? token : "");
}

void limiter_segment_name(const char *base_url, const char *token,
                          char out[LIMITER_SEGMENT_NAME_LEN + 1])
{
    char layout[24];
    uint64_t h = limiter_quota_key(base_url, token);

    snprintf(layout, sizeof layout, "\nlayout %u", LIMITER_SEGMENT_LAYOUT);
    h = fnv1a(h, layout);
    /* The uid keeps every user's segments apart (and out of each other's way). */
    snprintf(out, LIMITER_SEGMENT_NAME_LEN + 1, LIMITER_SEGMENT_PREFIX "%lu-%016llx",
             (unsigned long)geteuid(), (unsigned long long)h);
}

/* ---- the in-process store ------------------------------------------------ */

typedef struct {
    limiter_store base;
    window_state *groups[LIMITER_GROUPS_MAX];
    breaker_state breaker;
} local_store;

static window_state *local_group(local_store *s, const char *name)
{
    size_t i;

    for (i = 0; i < LIMITER_GROUPS_MAX && s->groups[i] != NULL; i++)
        if (strcmp(s->groups[i]->name, name) == 0)
            return s->groups[i];
    if (i == LIMITER_GROUPS_MAX)
        return NULL;
    s->groups[i] = malloc(sizeof *s->groups[i]);
    if (s->groups[i] != NULL)
        window_init(s->groups[i], name);
    return s->groups[i];
}

static double local_acquire(limiter_store *base, const limiter_group *g,
                            double now)
{
    window_state *w = local_group((local_store *)base, g->name);

    return w == NULL ? LIMITER_FAILED : window_acquire(w, g, base->margin, now);
}

static int local_learn(limiter_store *base, const limiter_group *g, double now,
                       const limiter_news *news)
{
    window_state *w = local_group((local_store *)base, g->name);

    if (w == NULL)
        return -1;
    window_learn(w, g, base->margin, now, news);
    return 0;
}

static int local_report(limiter_store *base, const limiter_group *g,
                        double now, limiter_report *out)
{
    window_state *w = local_group((local_store *)base, g->name);

    if (w == NULL)
        return -1;
    window_report(w, g, base->margin, now, out);
    return 0;
}

static int local_reset(limiter_store *base)
{
    local_store *s = (local_store *)base;
    size_t i;

    for (i = 0; i < LIMITER_GROUPS_MAX; i++) {
        free(s->groups[i]);
        s->groups[i] = NULL;
    }
    return 0;
}

static void local_close(limiter_store *base)
{
    local_store *s = (local_store *)base;
    size_t i;

    for (i = 0; i < LIMITER_GROUPS_MAX; i++)
        free(s->groups[i]);
    free(s);
}

static double local_breaker_admit(limiter_store *base, const breaker_config *cfg,
                                  double now, double lease, int *probe)
{
    return breaker_admit(&((local_store *)base)->breaker, cfg, now, lease, probe);
}

static double local_breaker_record(limiter_store *base, const breaker_config *cfg,
                                   double now, breaker_result result, int probe)
{
    return breaker_record(&((local_store *)base)->breaker, cfg, now, result, probe);
}

static const limiter_ops local_ops = {
    .acquire = local_acquire, .learn = local_learn, .report = local_report,
    .reset = local_reset, .close = local_close,
    .breaker_admit = local_breaker_admit, .breaker_record = local_breaker_record};

limiter_store *limiter_open_local(double margin, char *err, size_t errlen)
{
    local_store *s = calloc(1, sizeof *s);

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &local_ops;
    s->base.margin = margin;
    s->base.kind = "local";
    return &s->base;
}
