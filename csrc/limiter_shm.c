/*
 * limiter_shm.c - the shared-memory store: one named POSIX segment per
 * (base URL, token), so every process and thread on the host that uses the
 * same token draws from one quota.
 *
 * A robust, process-shared mutex guards the groups: a process killed while
 * holding it hands the next locker EOWNERDEAD instead of a dead lock.  The
 * lock is held only for a few hundred instructions of arithmetic (callers
 * read the clock before and never do I/O or call Lua inside).
 *
 * First use races are settled by an atomic state word: the process that
 * moves it from 0 to "initialising" sets the segment up and then marks it
 * ready; one that waits too long on "initialising" assumes the initialiser
 * died and takes over under a new generation number.
 */
#include "limiter.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"
#include "window.h"

#define SEG_MAGIC 0x57454d53u /* "WEMS" */
#define SEG_VERSION 1u
/* state = generation << 2 | phase */
#define PHASE_MASK 3u
#define PHASE_INIT 1u
#define PHASE_READY 2u
#define GENERATION_STEP 4u
/* Setting up takes microseconds; this long means the initialiser died. */
#define TAKEOVER_AFTER 1.0

typedef struct {
    uint32_t state; /* only through __atomic builtins */
    uint32_t magic;
    uint32_t version;
    uint32_t size;
    pthread_mutex_t lock;
    window_state groups[LIMITER_GROUPS_MAX];
} segment;

typedef struct {
    limiter_store base;
    segment *seg;
} shared_store;

/* ---- opening and first-time setup --------------------------------------- */

static void pause_briefly(void)
{
    struct timespec ts = {0, 1000000}; /* 1 ms */

    nanosleep(&ts, NULL);
}

static segment *map_segment(const char *name, char *err, size_t errlen)
{
    struct stat st;
    void *p;
    int fd = shm_open(name, O_RDWR | O_CREAT, 0600);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open shared memory %s: %s", name,
                 strerror(errno));
        return NULL;
    }
    /* Only ever grow it: several processes may race here with the same size,
     * and a larger segment may belong to a newer layout (checked later). */
    if (fstat(fd, &st) != 0 ||
        ((size_t)st.st_size < sizeof(segment) &&
         ftruncate(fd, (off_t)sizeof(segment)) != 0)) {
        snprintf(err, errlen, "cannot size shared memory %s: %s", name,
                 strerror(errno));
        close(fd);
        return NULL;
    }
    p = mmap(NULL, sizeof(segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd); /* the mapping keeps the segment */
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map shared memory %s: %s", name,
                 strerror(errno));
        return NULL;
    }
    return p;
}

static int init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);

    if (rc != 0)
        return rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

/* Returns 1 when this caller's generation became ready, 0 when another
 * process took over meanwhile (go back to waiting), -1 on error. */
static int initialise(segment *seg, uint32_t mine)
{
    uint32_t expected = mine;

    /* A fresh segment is all zeros already; clearing it anyway would make
     * the kernel back every page of it.  Only a takeover needs the wipe. */
    if ((mine & ~PHASE_MASK) != 0)
        memset(seg->groups, 0, sizeof seg->groups);
    if (init_lock(&seg->lock) != 0)
        return -1;
    seg->magic = SEG_MAGIC;
    seg->version = SEG_VERSION;
    seg->size = (uint32_t)sizeof(segment);
    /* Release: whoever sees "ready" also sees the lock and the fields. */
    return __atomic_compare_exchange_n(&seg->state, &expected,
                                       (mine & ~PHASE_MASK) | PHASE_READY, 0,
                                       __ATOMIC_RELEASE, __ATOMIC_RELAXED)
               ? 1
               : 0;
}

static int check_layout(const segment *seg, const char *name, char *err,
                        size_t errlen)
{
    if (seg->magic == SEG_MAGIC && seg->version == SEG_VERSION &&
        seg->size == sizeof(segment))
        return 0;
    snprintf(err, errlen, "shared memory %s has another layout (another "
             "wemasy version?): remove it or use rate_limit.shared = false", name);
    return -1;
}

/* Tries to move the state from `seen` to a new initialising generation. */
static int claim(segment *seg, uint32_t seen, uint32_t *mine)
{
    *mine = seen == 0 ? PHASE_INIT
                      : ((seen & ~PHASE_MASK) + GENERATION_STEP) | PHASE_INIT;
    return __atomic_compare_exchange_n(&seg->state, &seen, *mine, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static int make_ready(segment *seg, const char *name, char *err, size_t errlen)
{
    uint32_t watched = 0, mine;
    double since = 0;

    for (;;) {
        uint32_t st = __atomic_load_n(&seg->state, __ATOMIC_ACQUIRE);

        if ((st & PHASE_MASK) == PHASE_READY)
            return check_layout(seg, name, err, errlen);
        if (st != watched || since == 0) {
            watched = st;
            since = limiter_now();
        }
        /* A fresh segment, or an initialiser that has been silent too long. */
        if ((st == 0 || limiter_now() - since > TAKEOVER_AFTER) &&
            claim(seg, st, &mine)) {
            if (initialise(seg, mine) < 0) {
                snprintf(err, errlen, "cannot set up the lock in %s", name);
                return -1;
            }
            continue; /* ready, or taken over: either way look again */
        }
        pause_briefly();
    }
}

/* ---- the lock ---------------------------------------------------------------- */

static int seg_lock(segment *seg)
{
    int rc = pthread_mutex_lock(&seg->lock);

    if (rc == EOWNERDEAD) {
        size_t i;

        /* The holder died mid-update.  Each update leaves a group usable (at
         * worst one send time lost or doubled), so bring the indices back in
         * range and carry on rather than wedge every sharer. */
        for (i = 0; i < LIMITER_GROUPS_MAX; i++)
            window_repair(&seg->groups[i]);
        rc = pthread_mutex_consistent(&seg->lock);
    }
    return rc;
}

static void seg_unlock(segment *seg)
{
    pthread_mutex_unlock(&seg->lock);
}

/* Under the lock: the group's state, claiming a free slot on first use. */
static window_state *seg_group(segment *seg, const char *name)
{
    size_t i;

    for (i = 0; i < LIMITER_GROUPS_MAX; i++) {
        window_state *w = &seg->groups[i];

        if (w->name[0] == '\0') {
            window_init(w, name);
            return w;
        }
        if (strncmp(w->name, name, sizeof w->name) == 0)
            return w;
    }
    return NULL;
}

/* ---- the store operations ---------------------------------------------------- */

/* The group's state with the segment locked (the caller unlocks), or NULL
 * (nothing locked) when the lock failed or there is no room for the group. */
static window_state *locked_group(limiter_store *base, const limiter_group *g)
{
    segment *seg = ((shared_store *)base)->seg;
    window_state *w;

    if (seg_lock(seg) != 0)
        return NULL;
    w = seg_group(seg, g->name);
    if (w == NULL)
        seg_unlock(seg);
    return w;
}

static double shm_acquire(limiter_store *base, const limiter_group *g,
                          double now)
{
    window_state *w = locked_group(base, g);
    double wait;

    if (w == NULL)
        return LIMITER_FAILED;
    wait = window_acquire(w, g, base->margin, now);
    seg_unlock(((shared_store *)base)->seg);
    return wait;
}

static int shm_learn(limiter_store *base, const limiter_group *g, double now,
                     const limiter_news *news)
{
    window_state *w = locked_group(base, g);

    if (w == NULL)
        return -1;
    window_learn(w, g, base->margin, now, news);
    seg_unlock(((shared_store *)base)->seg);
    return 0;
}

static int shm_report(limiter_store *base, const limiter_group *g, double now,
                      limiter_report *out)
{
    window_state *w = locked_group(base, g);

    if (w == NULL)
        return -1;
    window_report(w, g, base->margin, now, out);
    seg_unlock(((shared_store *)base)->seg);
    return 0;
}

static void shm_close(limiter_store *base)
{
    shared_store *s = (shared_store *)base;

    /* The segment itself stays: other processes use it, and the next run
     * should find the quota already spent. */
    munmap(s->seg, sizeof(segment));
    free(s);
}

static const limiter_ops shm_ops = {shm_acquire, shm_learn, shm_report,
                                    NULL, shm_close};

static segment *open_ready(const char *base_url, const char *token, char *err,
                           size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    segment *seg;

    limiter_segment_name(base_url, token, name);
    seg = map_segment(name, err, errlen);
    if (seg != NULL && make_ready(seg, name, err, errlen) != 0) {
        munmap(seg, sizeof(segment));
        seg = NULL;
    }
    return seg;
}

limiter_store *limiter_open_shared(const char *base_url, const char *token,
                                   double margin, char *err, size_t errlen)
{
    shared_store *s = calloc(1, sizeof *s);

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->seg = open_ready(base_url, token, err, errlen);
    if (s->seg == NULL) {
        free(s);
        return NULL;
    }
    s->base.ops = &shm_ops;
    s->base.margin = margin;
    s->base.kind = "shm";
    return &s->base;
}

/* ---- the test build's back ends (tests.h) ------------------------------------- */

#ifdef WEMASY_TESTS

int limiter_shared_stall_init(const char *base_url, const char *token,
                              char *err, size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    segment *seg;

    limiter_segment_name(base_url, token, name);
    seg = map_segment(name, err, errlen);
    if (seg == NULL)
        return -1;
    /* As if the process that claimed the setup died right after. */
    __atomic_store_n(&seg->state, PHASE_INIT, __ATOMIC_RELEASE);
    munmap(seg, sizeof(segment));
    return 0;
}

int limiter_shared_hold_lock(const char *base_url, const char *token,
                             double seconds, void (*locked)(void),
                             char *err, size_t errlen)
{
    segment *seg = open_ready(base_url, token, err, errlen);
    struct timespec ts;

    if (seg == NULL)
        return -1;
    if (seg_lock(seg) != 0) {
        snprintf(err, errlen, "cannot lock the shared segment");
        munmap(seg, sizeof(segment));
        return -1;
    }
    if (locked != NULL)
        locked();
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    seg_unlock(seg);
    munmap(seg, sizeof(segment));
    return 0;
}

#endif /* WEMASY_TESTS */
