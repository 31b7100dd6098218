/*
 * segment_fuzz.c - libFuzzer harness for the shared limiter store against a
 * segment that someone else writes between its operations (issue 15): the
 * input is a script of hostile writes into the mapped segment (anywhere:
 * state word, header, mutex, groups), truncations of its file, and
 * acquire / learn / report calls on three groups.
 *
 * Input, byte by byte: b >= 0x80 is a write of (b & 15) + 1 bytes at the
 * offset in the next two bytes (times 4, within the segment), taken from
 * the input or, when b & 0x40, a hostile double (NaN, inf, 1e300, ...) or
 * word; b == 0x7f truncates the file; any other b is a call, group b & 3,
 * now moved on by (b >> 2) ms.  Every call must return within a few lock
 * bounds, with values in range; the store must repair the segment, not
 * give it up.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limiter.h"
#include "tests.h"
#include "fuzz.h"

#define BOUND 0.02 /* seconds a broken lock may cost; 1 s outside tests */

static limiter_store *store;
static int fd_of_store;
static char url[64];

static void forget_segment(void)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];

    limiter_segment_name(url, NULL, name);
    shm_unlink(name);
}

static void open_store(void)
{
    char err[LIMITER_ERRLEN];

    snprintf(url, sizeof url, "fuzz://segment-%ld", (long)getpid());
    limiter_shared_set_bound(BOUND);
    store = limiter_open_shared(url, NULL, 0.01, err, sizeof err);
    CHECK_WHY(store != NULL && strcmp(store->kind, "shm") == 0, err);
    atexit(forget_segment);
}

static void hostile_write(uint8_t *seg, size_t segsize, const uint8_t **p,
                          const uint8_t *end, uint8_t b)
{
    static const double doubles[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300,
                                     0, 86401, 1e6, -0.0, 5e-324};
    static const uint32_t words[] = {0, 1, 1023, 1024, 1025, 0x7fffffffu,
                                     0x80000000u, 0xfffffffeu, 0xffffffffu,
                                     12345};
    size_t len = (size_t)(b & 15) + 1, off;

    struct stat st;

    if (end - *p < 2)
        return;
    /* After a truncation, only the store's next call may grow it back. */
    if (fstat(fd_of_store, &st) != 0 || (size_t)st.st_size < segsize)
        return;
    off = ((size_t)(*p)[0] << 8 | (*p)[1]) * 4 % segsize;
    *p += 2;
    if (b & 0x40) {
        uint8_t v[8];
        size_t pick = len % 10;

        len = (b & 0x20) ? 8 : 4;
        if (b & 0x20)
            memcpy(v, &doubles[pick], len);
        else
            memcpy(v, &words[pick], len);
        if (off + len <= segsize)
            memcpy(seg + off, v, len);
        return;
    }
    if ((size_t)(end - *p) < len)
        len = (size_t)(end - *p);
    if (off + len > segsize)
        len = segsize - off;
    memcpy(seg + off, *p, len);
    *p += len;
}

static void call(uint8_t b, double now)
{
    static const limiter_group groups[] = {
        {"default", 1000, 1, 0}, {"sync", 3, 0.5, 0}, {"g3", 50, 2, 0}, {"default", 5, 60, 0}};
    const limiter_group *g = &groups[b & 3];
    limiter_news news = {(b & 4) ? 40 : -1, (b & 8) ? 2 : -1,
                         (b & 16) ? 1.5 : -1};
    limiter_report r;
    double t0 = limiter_now(), wait = 0;

    switch (b >> 5 & 3) {
    case 0:
    case 1:
        wait = store->ops->acquire(store, g, now);
        CHECK(wait == LIMITER_FAILED || (wait >= 0 && wait <= 86400 + 60));
        break;
    case 2:
        store->ops->learn(store, g, now, &news);
        break;
    default:
        if (store->ops->report(store, g, now, &r) == 0) {
            CHECK(r.limit >= 1 && r.limit <= LIMITER_RING);
            CHECK(r.remaining >= 0 && r.remaining <= r.limit);
            CHECK(r.closed_for >= 0 && r.closed_for <= 86400);
            CHECK(r.reset_in >= 0 && r.reset_in <= g->window + 0.01 + 5);
        }
    }
    /* A few bounds (setup, lock, again), never a hang. */
    CHECK(limiter_now() - t0 < 20 * BOUND + 0.5);
    CHECK_WHY(strcmp(store->kind, "shm") == 0, store->notice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    double now = limiter_now();
    size_t segsize;
    uint8_t *seg;
    int fd;

    if (store == NULL)
        open_store();
    seg = limiter_shared_mapping(store, &segsize, &fd);
    CHECK(seg != NULL);
    fd_of_store = fd;
    while (p < end) {
        uint8_t b = *p++;

        if (b >= 0x80)
            hostile_write(seg, segsize, &p, end, b);
        else if (b == 0x7f)
            CHECK(ftruncate(fd, 0) == 0); /* as someone else would */
        else
            call(b, now += (double)(b >> 2) / 1000);
    }
    return 0;
}
