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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"
#include "window.h"

#define SEG_MAGIC 0x57454d53u /* "WEMS" */
/* 2: the breaker; 3: a window's span.  Also in the segment's name. */
#define SEG_VERSION LIMITER_SEGMENT_LAYOUT
/* state = generation << 2 | phase */
#define PHASE_MASK 3u
#define PHASE_INIT 1u
#define PHASE_READY 2u
#define GENERATION_STEP 4u
/* How long a segment may keep a caller waiting, for its lock or for its
 * setup: both take microseconds, so this long means the holder or the
 * initialiser died or the segment is garbage.  A test build may shorten it
 * (tests.h), so that a fuzzer's broken locks do not cost a second each. */
static double seg_bound = 1.0;

typedef struct {
    uint32_t state; /* only through __atomic builtins */
    uint32_t magic;
    uint32_t version;
    uint32_t size;
    pthread_mutex_t lock;
    window_state groups[LIMITER_GROUPS_MAX];
    breaker_state breaker; /* the API's, for every sharer; breaker_repair()ed before use */
} segment;

/* Everything in a segment may have been written by anyone who can open it
 * (a process of this user with a bug, or a hostile one), between any two
 * operations: each operation checks the file's size before touching the
 * mapping, the header before the lock, and every field it uses after it;
 * a segment that fails is set up again, and one that cannot be is left
 * for this client's own state (`local`, with the reason in `notice`). */
typedef struct {
    limiter_store base;
    segment *seg; /* NULL once refused: `local` serves */
    int fd;       /* kept, to fstat the size before each use, and held with a
                   * shared flock while the store lives (see sweep_one) */
    limiter_store *local;
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    char notice[LIMITER_ERRLEN];
} shared_store;

/* ---- opening: this user's segment alone, allocated for real ---------------- */

static void pause_briefly(void)
{
    struct timespec ts = {0, 1000000}; /* 1 ms */

    nanosleep(&ts, NULL);
}

/* Creates the segment exclusively (mode 0600 whatever the umask) or opens
 * the existing one; never follows a link (shm_open adds O_NOFOLLOW). */
static int open_segment(const char *name, char *err, size_t errlen)
{
    int tries, fd = -1;

    for (tries = 0; tries < 3 && fd < 0; tries++) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 && fchmod(fd, 0600) != 0) {
            close(fd);
            fd = -1;
            break;
        }
        if (fd < 0 && errno == EEXIST) {
            fd = shm_open(name, O_RDWR, 0);
            if (fd < 0 && errno != ENOENT)
                break;
            /* ENOENT: removed between the two calls, create it again */
        } else if (fd < 0) {
            break;
        }
    }
    if (fd < 0)
        snprintf(err, errlen, "cannot open shared memory %s: %s", name,
                 strerror(errno));
    return fd;
}

/* Another user who owns the segment, or may write it, could steer this
 * client's quota or its memory: such a segment is never used. */
static int check_owner(const struct stat *st, const char *name, char *err,
                       size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "shared memory %s is not a plain file", name);
        return -1;
    }
    if (st->st_uid != geteuid()) {
        snprintf(err, errlen, "shared memory %s belongs to uid %lu, not to "
                 "this user (uid %lu)", name, (unsigned long)st->st_uid,
                 (unsigned long)geteuid());
        return -1;
    }
    if ((st->st_mode & 077) != 0) {
        snprintf(err, errlen, "shared memory %s is open to other users (mode "
                 "%03o)", name, (unsigned)(st->st_mode & 0777));
        return -1;
    }
    return 0;
}

/* Backs every page now: a sparse segment on a full /dev/shm would kill the
 * process with SIGBUS at the first touch of a page instead. */
static int allocate(int fd, const char *name, char *err, size_t errlen)
{
    struct stat st;
    int rc = posix_fallocate(fd, 0, (off_t)sizeof(segment));

    if (rc != 0) {
        snprintf(err, errlen, "cannot allocate %lu bytes of shared memory "
                 "for %s: %s", (unsigned long)sizeof(segment), name,
                 strerror(rc));
        return -1;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(segment)) {
        snprintf(err, errlen, "shared memory %s is smaller than a segment",
                 name);
        return -1;
    }
    return 0;
}

/* The segment's file held with a shared flock: the sweep (sweep_one)
 * removes only segments nobody holds.  One it unlinked between our open and
 * our flock has no name any more: open the name again.  -1 with err. */
static int open_held(const char *name, char *err, size_t errlen)
{
    int tries;

    for (tries = 0; tries < 100; tries++) {
        struct stat st;
        int fd = open_segment(name, err, errlen);

        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_SH) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0)
            return fd;
        close(fd);
    }
    snprintf(err, errlen, "shared memory %s keeps being removed", name);
    return -1;
}

/* The segment's file, held, checked and allocated, or -1. */
static int open_checked(const char *name, char *err, size_t errlen)
{
    struct stat st;
    int fd = open_held(name, err, errlen);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat shared memory %s: %s", name,
                 strerror(errno));
    } else if (check_owner(&st, name, err, errlen) == 0 &&
               allocate(fd, name, err, errlen) == 0) {
        return fd;
    }
    close(fd);
    return -1;
}

static segment *map_fd(int fd, const char *name, char *err, size_t errlen)
{
    void *p = mmap(NULL, sizeof(segment), PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);

    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map shared memory %s: %s", name,
                 strerror(errno));
        return NULL;
    }
    return p;
}

/* ---- setting a segment up, the first time or again ------------------------- */

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

/* The one word of the mutex whose garbage could make glibc do more than
 * fail or time out: its type (a priority-protect type would change this
 * thread's priority).  It must be what init_lock writes. */
static int lock_type_ok(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
    static int expected = -1;

    if (expected == -1) {
        pthread_mutex_t probe;

        if (init_lock(&probe) != 0)
            return 0;
        expected = probe.__data.__kind;
        pthread_mutex_destroy(&probe);
    }
    return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) == expected;
#else
    (void)m;
    return 1;
#endif
}

/* Returns 1 when this caller's generation became ready, 0 when another
 * process took over meanwhile (go back to waiting), -1 on error. */
static int initialise(segment *seg, uint32_t mine)
{
    uint32_t expected = mine;

    /* A fresh segment is all zeros already.  Only a takeover needs the
     * wipe (of everything after the state word: header, lock, groups). */
    if ((mine & ~PHASE_MASK) != 0)
        memset((char *)seg + sizeof seg->state, 0,
               sizeof *seg - sizeof seg->state);
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

/* The header as this build writes it: anything else is garbage (another
 * layout has another name). */
static int header_ok(const segment *seg)
{
    return seg->magic == SEG_MAGIC && seg->version == SEG_VERSION &&
           seg->size == sizeof(segment) && lock_type_ok(&seg->lock);
}

/* Tries to move the state from `seen` to a new initialising generation. */
static int claim(segment *seg, uint32_t seen, uint32_t *mine)
{
    *mine = seen == 0 ? PHASE_INIT
                      : ((seen & ~PHASE_MASK) + GENERATION_STEP) | PHASE_INIT;
    return __atomic_compare_exchange_n(&seg->state, &seen, *mine, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Sets the segment up again under a new generation: for a broken one. */
static int reinitialise(segment *seg)
{
    uint32_t seen = __atomic_load_n(&seg->state, __ATOMIC_ACQUIRE), mine;

    /* Lost the race: another process is at it; make_ready waits for it. */
    if (!claim(seg, seen, &mine))
        return 0;
    return initialise(seg, mine) < 0 ? -1 : 0;
}

/* Waits until the segment is ready, setting it up when it is fresh, or
 * again when its initialiser has been silent for the bound or its header
 * is garbage.  0, or -1 once three bounds have passed and it was set up
 * twice meanwhile (someone keeps breaking it: not just a slow machine), or
 * ten bounds in any case. */
static int make_ready(segment *seg, const char *name, char *err, size_t errlen)
{
    uint32_t watched = 0, mine;
    double since = 0, start = limiter_now();
    int setups = 0;

    for (;;) {
        uint32_t st = __atomic_load_n(&seg->state, __ATOMIC_ACQUIRE);
        double waited = limiter_now() - start;

        if (waited > 10 * seg_bound || (waited > 3 * seg_bound && setups >= 2))
            break;

        if ((st & PHASE_MASK) == PHASE_READY) {
            if (header_ok(seg))
                return 0;
            if (reinitialise(seg) < 0)
                break;
            setups++;
            continue;
        }
        if (st != watched || since == 0) {
            watched = st;
            since = limiter_now();
        }
        /* A fresh segment, an initialiser silent too long, or garbage. */
        if ((st == 0 || (st & PHASE_MASK) != PHASE_INIT ||
             limiter_now() - since > seg_bound) &&
            claim(seg, st, &mine)) {
            if (initialise(seg, mine) < 0)
                break;
            setups++;
            continue; /* ready, or taken over: either way look again */
        }
        pause_briefly();
    }
    snprintf(err, errlen, "shared memory %s could not be set up", name);
    return -1;
}

/* ---- the lock: bounded ----------------------------------------------------- */

static int seg_lock(segment *seg)
{
    struct timespec until;
    int rc;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seg_bound;
    until.tv_nsec += (long)((seg_bound - (double)(time_t)seg_bound) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    rc = pthread_mutex_timedlock(&seg->lock, &until);
    /* The holder died mid-update.  Each update leaves a group usable, and
     * every group is validated before use anyway: carry on. */
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&seg->lock);
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

/* ---- falling back to this client's own state -------------------------------- */

static void unmap(shared_store *s)
{
    if (s->seg != NULL)
        munmap(s->seg, sizeof(segment));
    if (s->fd >= 0)
        close(s->fd);
    s->seg = NULL;
    s->fd = -1;
}

/* From now on this client keeps its own quota; `why` says what was wrong
 * with the segment.  -1 when even that fails (out of memory). */
static int fall_back(shared_store *s, const char *why)
{
    unmap(s);
    snprintf(s->notice, sizeof s->notice, "%s: this client keeps its own "
             "quota, not shared with other processes", why);
    s->base.kind = "local";
    s->base.notice = s->notice;
    if (s->local == NULL) {
        char err[LIMITER_ERRLEN];

        s->local = limiter_open_local(s->base.margin, err, sizeof err);
    }
    return s->local != NULL ? 0 : -1;
}

/* ---- each operation: check, lock, validate ---------------------------------- */

static int ready(const segment *seg)
{
    return (__atomic_load_n(&seg->state, __ATOMIC_ACQUIRE) & PHASE_MASK) ==
               PHASE_READY &&
           header_ok(seg);
}

/* Locks a checked segment: 0; -1 (give it up, err says why); 1 when the
 * lock is broken or was not free within the bound; 2 when the segment was
 * set up again meanwhile (by another process that found it broken). */
static int seg_enter(shared_store *s, char *err, size_t errlen)
{
    struct stat st;
    uint32_t before;
    int rc;

    /* The size first: touching the mapping of a truncated file raises
     * SIGBUS.  Allocate it again; its zeros are then set up anew. */
    if (fstat(s->fd, &st) != 0 || (size_t)st.st_size < sizeof(segment)) {
        if (allocate(s->fd, s->name, err, errlen) != 0)
            return -1;
    }
    if (!ready(s->seg) && make_ready(s->seg, s->name, err, errlen) != 0)
        return -1;
    before = __atomic_load_n(&s->seg->state, __ATOMIC_ACQUIRE);
    rc = seg_lock(s->seg);
    if (rc == 0)
        return 0;
    if (__atomic_load_n(&s->seg->state, __ATOMIC_ACQUIRE) != before)
        return 2;
    snprintf(err, errlen, "the lock of shared memory %s %s", s->name,
             rc == ETIMEDOUT ? "was not free within its bound" : "is broken");
    return 1;
}

/* 0 with the segment locked (the caller unlocks), or -1 when it was given
 * up: s->local serves from now on. */
static int locked_segment(shared_store *s)
{
    char err[LIMITER_ERRLEN];
    int tries, rc = -1;

    if (s->seg == NULL)
        return -1;
    for (tries = 0; tries < 3; tries++) {
        rc = seg_enter(s, err, sizeof err);
        if (rc <= 0)
            break;
        /* A lock that cannot be had: a broken segment, not a hang. */
        if (rc == 1 && reinitialise(s->seg) < 0)
            break;
    }
    if (rc != 0) {
        fall_back(s, err);
        return -1;
    }
    return 0;
}

/* The group's state of g with the segment locked and validated (the caller
 * unlocks), or NULL: then s->seg == NULL when the segment was given up
 * (use s->local), else the group table is full. */
static window_state *locked_group(shared_store *s, const limiter_group *g,
                                  double now)
{
    window_state *w;

    if (locked_segment(s) != 0)
        return NULL;
    w = seg_group(s->seg, g->name);
    if (w == NULL)
        seg_unlock(s->seg);
    else
        window_validate(w, now);
    return w;
}

static double shm_acquire(limiter_store *base, const limiter_group *g,
                          double now)
{
    shared_store *s = (shared_store *)base;
    window_state *w = s->seg != NULL ? locked_group(s, g, now) : NULL;
    double wait;

    if (w == NULL)
        return s->seg == NULL && s->local != NULL
                   ? s->local->ops->acquire(s->local, g, now)
                   : LIMITER_FAILED;
    wait = window_acquire(w, g, base->margin, now);
    seg_unlock(s->seg);
    return wait;
}

static int shm_learn(limiter_store *base, const limiter_group *g, double now,
                     const limiter_news *news)
{
    shared_store *s = (shared_store *)base;
    window_state *w = s->seg != NULL ? locked_group(s, g, now) : NULL;

    if (w == NULL)
        return s->seg == NULL && s->local != NULL
                   ? s->local->ops->learn(s->local, g, now, news)
                   : -1;
    window_learn(w, g, base->margin, now, news);
    seg_unlock(s->seg);
    return 0;
}

static int shm_report(limiter_store *base, const limiter_group *g, double now,
                      limiter_report *out)
{
    shared_store *s = (shared_store *)base;
    window_state *w = s->seg != NULL ? locked_group(s, g, now) : NULL;

    if (w == NULL)
        return s->seg == NULL && s->local != NULL
                   ? s->local->ops->report(s->local, g, now, out)
                   : -1;
    window_report(w, g, base->margin, now, out);
    seg_unlock(s->seg);
    return 0;
}

static void shm_close(limiter_store *base)
{
    shared_store *s = (shared_store *)base;

    /* The segment itself stays: other processes use it, and the next run
     * should find the quota already spent. */
    unmap(s);
    limiter_close(s->local);
    free(s);
}

/* Every group's slot freed, under the lock: the sharers that have the
 * segment mapped see the reset at once, and new ones find it (unlinking
 * instead would leave those two groups with separate quotas). */
static int shm_reset(limiter_store *base)
{
    shared_store *s = (shared_store *)base;

    if (locked_segment(s) != 0)
        return s->local != NULL ? s->local->ops->reset(s->local) : -1;
    memset(s->seg->groups, 0, sizeof s->seg->groups);
    seg_unlock(s->seg);
    return 0;
}

/* Any process may have written the breaker: it is repaired under the lock
 * before every use.  A segment given up hands it to this client's own
 * state, as the quota. */
static double shm_breaker_admit(limiter_store *base, const breaker_config *cfg,
                                double now, double lease, int *probe)
{
    shared_store *s = (shared_store *)base;
    double wait;

    *probe = 0;
    if (locked_segment(s) != 0)
        return s->local != NULL
                   ? s->local->ops->breaker_admit(s->local, cfg, now, lease, probe)
                   : 0;
    breaker_repair(&s->seg->breaker, now);
    wait = breaker_admit(&s->seg->breaker, cfg, now, lease, probe);
    seg_unlock(s->seg);
    return wait;
}

static double shm_breaker_record(limiter_store *base, const breaker_config *cfg,
                                 double now, breaker_result result, int probe)
{
    shared_store *s = (shared_store *)base;
    double wait;

    if (locked_segment(s) != 0)
        return s->local != NULL
                   ? s->local->ops->breaker_record(s->local, cfg, now, result, probe)
                   : 0;
    breaker_repair(&s->seg->breaker, now);
    wait = breaker_record(&s->seg->breaker, cfg, now, result, probe);
    seg_unlock(s->seg);
    return wait;
}

static const limiter_ops shm_ops = {
    .acquire = shm_acquire, .learn = shm_learn, .report = shm_report,
    .reset = shm_reset, .close = shm_close,
    .breaker_admit = shm_breaker_admit, .breaker_record = shm_breaker_record};

/* Opens, checks and maps the segment; 0, or -1 with the reason in err. */
static int open_ready(shared_store *s, char *err, size_t errlen)
{
    s->fd = open_checked(s->name, err, errlen);
    if (s->fd < 0)
        return -1;
    s->seg = map_fd(s->fd, s->name, err, errlen);
    if (s->seg == NULL)
        return -1;
    /* The layout is part of the name (limiter.h): a header that says another
     * one is garbage like any other, and make_ready sets it up again. */
    return make_ready(s->seg, s->name, err, errlen);
}

limiter_store *limiter_open_shared(const char *base_url, const char *token,
                                   double margin, char *err, size_t errlen)
{
    shared_store *s = calloc(1, sizeof *s);
    char why[LIMITER_ERRLEN];

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &shm_ops;
    s->base.margin = margin;
    s->base.kind = "shm";
    s->fd = -1;
    limiter_sweep_once();
    limiter_segment_name(base_url, token, s->name);
    if (open_ready(s, why, sizeof why) != 0 && fall_back(s, why) != 0) {
        snprintf(err, errlen, "out of memory");
        shm_close(&s->base);
        return NULL;
    }
    return &s->base;
}

int limiter_reset_shared(const char *base_url, const char *token, char *err,
                         size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    limiter_store *s;
    int fd, rc;

    limiter_segment_name(base_url, token, name);
    fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0; /* nothing recorded: nothing to forget, nothing made */
        snprintf(err, errlen, "cannot open shared memory %s: %s", name,
                 strerror(errno));
        return -1;
    }
    close(fd);
    s = limiter_open_shared(base_url, token, 0, err, errlen);
    if (s == NULL)
        return -1;
    rc = s->ops->reset(s);
    if (rc != 0)
        snprintf(err, errlen, "cannot lock shared memory %s", name);
    limiter_close(s);
    return rc;
}

/* ---- removing idle segments ------------------------------------------------------ */

#define SHM_DIR "/dev/shm"

/* Whether a /dev/shm entry is one of this user's segment names: "wemasy-",
 * the euid, "-" and 16 lower-case hex digits, nothing else. */
static int own_segment_name(const char *entry)
{
    char prefix[32];
    size_t n, i;

    n = (size_t)snprintf(prefix, sizeof prefix, "%s%lu-",
                         &LIMITER_SEGMENT_PREFIX[1], (unsigned long)geteuid());
    if (strncmp(entry, prefix, n) != 0 || strlen(entry + n) != 16)
        return 0;
    for (i = n; entry[i] != '\0'; i++)
        if (!((entry[i] >= '0' && entry[i] <= '9') ||
              (entry[i] >= 'a' && entry[i] <= 'f')))
            return 0;
    return 1;
}

/* Whether every record in a mapped segment has expired at `now`.  Nobody
 * else holds it (the caller has the exclusive flock), so no lock. */
static int segment_expired(const segment *seg, double now)
{
    size_t i;

    if ((__atomic_load_n(&seg->state, __ATOMIC_ACQUIRE) & PHASE_MASK) != PHASE_READY ||
        seg->magic != SEG_MAGIC || seg->version != SEG_VERSION ||
        seg->size != sizeof(segment))
        return 0; /* not a segment of this layout: not ours to judge */
    for (i = 0; i < LIMITER_GROUPS_MAX; i++)
        if (!window_expired(&seg->groups[i], now))
            return 0;
    return 1;
}

/* Removes /dev/shm/<entry> when nobody holds it (every store holds its
 * segment with a shared flock, so an exclusive one that we get at once
 * means no process has it open), it is this user's own regular file of
 * our size and mode 0600, and all its records expired.  The flock makes it
 * safe: a process that opens the name meanwhile waits for our flock and
 * then sees the file unlinked (open_held opens the name again).  1 when
 * removed. */
static int sweep_one(const char *entry, double now)
{
    char name[NAME_MAX + 2];
    struct stat st;
    void *p;
    int fd, removed = 0;

    snprintf(name, sizeof name, "/%s", entry);
    fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0 || st.st_nlink == 0 ||
        st.st_size != (off_t)sizeof(segment)) {
        close(fd);
        return 0;
    }
    p = mmap(NULL, sizeof(segment), PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
        removed = segment_expired(p, now) && shm_unlink(name) == 0;
        munmap(p, sizeof(segment));
    }
    close(fd);
    return removed;
}

int limiter_sweep(void)
{
    DIR *dir = opendir(SHM_DIR);
    struct dirent *e;
    double now = limiter_now();
    int removed = 0;

    if (dir == NULL)
        return 0;
    while ((e = readdir(dir)) != NULL)
        if (own_segment_name(e->d_name))
            removed += sweep_one(e->d_name, now);
    closedir(dir);
    return removed;
}

void limiter_sweep_once(void)
{
    static int swept;

    /* The first shared store of the process looks; threads race harmlessly
     * to be that one. */
    if (__atomic_exchange_n(&swept, 1, __ATOMIC_ACQ_REL) == 0)
        limiter_sweep();
}

/* ---- the test build's back ends (tests.h) ------------------------------------- */

#ifdef WEMASY_TESTS

void limiter_shared_set_bound(double seconds)
{
    seg_bound = seconds;
}

/* The segment of (base_url, token) as limiter_open_shared finds it. */
static segment *test_map(const char *base_url, const char *token, char *err,
                         size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    segment *seg;
    int fd;

    limiter_segment_name(base_url, token, name);
    fd = open_checked(name, err, errlen);
    if (fd < 0)
        return NULL;
    seg = map_fd(fd, name, err, errlen);
    close(fd); /* the mapping keeps the segment */
    return seg;
}

int limiter_shared_stall_init(const char *base_url, const char *token,
                              char *err, size_t errlen)
{
    segment *seg = test_map(base_url, token, err, errlen);

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
    segment *seg = test_map(base_url, token, err, errlen);
    struct timespec ts;

    if (seg == NULL)
        return -1;
    if (make_ready(seg, "the segment", err, errlen) != 0 ||
        seg_lock(seg) != 0) {
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

void *limiter_shared_mapping(limiter_store *base, size_t *size, int *fd)
{
    shared_store *s = (shared_store *)base;

    *size = sizeof(segment);
    *fd = s->fd;
    return base->ops == &shm_ops ? s->seg : NULL;
}

/* A double as a uint32_t without undefined behaviour (NaN and out of range: 0). */
static uint32_t as_u32(double v)
{
    return v >= 0 && v <= 4294967295.0 ? (uint32_t)v : 0;
}

int limiter_shared_set_breaker(const char *base_url, const char *token,
                               double phase, double failures, double open_in,
                               double probe_in, char *err, size_t errlen)
{
    segment *seg = test_map(base_url, token, err, errlen);
    double now = limiter_now();

    if (seg == NULL)
        return -1;
    if (make_ready(seg, "the segment", err, errlen) != 0 || seg_lock(seg) != 0) {
        snprintf(err, errlen, "cannot lock the shared segment");
        munmap(seg, sizeof(segment));
        return -1;
    }
    seg->breaker.phase = as_u32(phase);
    seg->breaker.failures = as_u32(failures);
    seg->breaker.open_until = now + open_in;
    seg->breaker.probe_until = now + probe_in;
    seg_unlock(seg);
    munmap(seg, sizeof(segment));
    return 0;
}

#define FIELD(f) {#f, offsetof(segment, f), sizeof(((segment *)NULL)->f)}
#define GROUP_FIELD(f)                                                  \
    {#f, offsetof(segment, groups[0].f),                               \
     sizeof(((segment *)NULL)->groups[0].f)}

const tests_field *limiter_shared_layout(void)
{
    static const tests_field fields[] = {
        {"segment", 0, sizeof(segment)},
        FIELD(state), FIELD(magic), FIELD(version), FIELD(size), FIELD(lock),
        {"group", offsetof(segment, groups), sizeof(window_state)},
        GROUP_FIELD(name), GROUP_FIELD(learned_limit), GROUP_FIELD(head),
        GROUP_FIELD(count), GROUP_FIELD(closed_until), GROUP_FIELD(span),
        GROUP_FIELD(sends), FIELD(breaker), {NULL, 0, 0}};

    return fields;
}

#endif /* WEMASY_TESTS */
