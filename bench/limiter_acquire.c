/*
 * limiter_acquire.c - what one uncontended limiter acquire costs, for the
 * in-process and the shared-memory store.
 *
 *   make bench-limiter        (prints ns per acquire for both stores)
 *
 * Each acquire takes a slot (the window is tiny, so slots free at once):
 * the path every request pays.  Timed twice: with `now` supplied, as the
 * store sees it, and with a CLOCK_MONOTONIC read per call, as a request
 * pays it.  Pure C: no Lua, no libcurl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "limiter.h"

#define ITERATIONS 5000000

static double run(limiter_store *s, const limiter_group *g, int read_clock)
{
    double start = limiter_now(), now = start, t;
    long i, refused = 0;

    for (i = 0; i < ITERATIONS; i++) {
        now = read_clock ? limiter_now() : now + 1e-6;
        if (s->ops->acquire(s, g, now) != 0)
            refused++;
    }
    t = limiter_now() - start;
    if (refused > 0)
        fprintf(stderr, "unexpected: %ld acquires refused\n", refused);
    return t / ITERATIONS * 1e9;
}

/* A group per run: a run with made-up times must not leave sends "in the
 * future" of the next run's clock. */
static double timed(limiter_store *s, const char *name, int read_clock)
{
    limiter_group g;

    memset(&g, 0, sizeof g);
    snprintf(g.name, sizeof g.name, "%s", name);
    g.limit = 1000;
    g.window = 1e-9; /* every slot frees at once: acquire always succeeds */
    return run(s, &g, read_clock);
}

static void bench(const char *label, limiter_store *s)
{
    double given, clocked;

    timed(s, "warm-up", 0);
    given = timed(s, "given", 0);
    clocked = timed(s, "clocked", 1);
    printf("%-14s %6.1f ns/acquire (now given)  %6.1f ns/acquire (clock read each time)\n",
           label, given, clocked);
}

int main(void)
{
    char err[LIMITER_ERRLEN], url[64], segment[LIMITER_SEGMENT_NAME_LEN + 1];
    limiter_store *local = limiter_open_local(0, err, sizeof err);
    limiter_store *shared;

    /* A private key: the benchmark must not touch a real quota. */
    snprintf(url, sizeof url, "http://bench.invalid/%ld", (long)getpid());
    shared = limiter_open_shared(url, "bench", 0, err, sizeof err);
    if (local == NULL || shared == NULL) {
        fprintf(stderr, "cannot open a store: %s\n", err);
        return 1;
    }
    bench("in-process", local);
    bench("shared memory", shared);
    limiter_close(local);
    limiter_close(shared);
    limiter_segment_name(url, "bench", segment);
    shm_unlink(segment);
    return 0;
}
