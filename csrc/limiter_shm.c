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
#define SEG_VERSION 3u /* 2: the breaker; 3: a window's span */
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
    breaker_state breaker; /* the API's, for every sharer; breaker_repair()ed before use */
} segment;

typedef struct {
    limiter_store base;
    segment *seg;
    int fd; /* held (a shared flock) while the store lives: see sweep_one */
} shared_store;

/* ---- opening and first-time setup --------------------------------------- */

static void pause_briefly(void)
{
    struct timespec ts = {0, 1000000}; /* 1 ms */

    nanosleep(&ts, NULL);
}

/* The segment open and held with a shared flock: the sweep (sweep_one)
 * removes only segments that nobody holds.  One it unlinked between our
 * open and our flock has no name any more: open the name again. */
static int open_held(const char *name)
{
    int tries;

    for (tries = 0; tries < 100; tries++) {
        struct stat st;
        int fd = shm_open(name, O_RDWR | O_CREAT, 0600);

        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_SH) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0)
            return fd;
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

/* Maps the segment; *fdp (held, see open_held) stays open for the caller. */
static segment *map_segment(const char *name, int *fdp, char *err,
                            size_t errlen)
{
    struct stat st;
    void *p;
    int fd = open_held(name);

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
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map shared memory %s: %s", name,
                 strerror(errno));
        close(fd);
        return NULL;
    }
    *fdp = fd;
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
    if ((mine & ~PHASE_MASK) != 0) {
        memset(seg->groups, 0, sizeof seg->groups);
        memset(&seg->breaker, 0, sizeof seg->breaker);
    }
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

/* Every group's slot freed, under the lock: the sharers that have the
 * segment mapped see the reset at once, and new ones find it (unlinking
 * instead would leave those two groups with separate quotas). */
static int shm_reset(limiter_store *base)
{
    segment *seg = ((shared_store *)base)->seg;

    if (seg_lock(seg) != 0)
        return -1;
    memset(seg->groups, 0, sizeof seg->groups);
    seg_unlock(seg);
    return 0;
}

static void shm_close(limiter_store *base)
{
    shared_store *s = (shared_store *)base;

    /* The segment itself stays: other processes use it, and the next run
     * should find the quota already spent. */
    munmap(s->seg, sizeof(segment));
    close(s->fd);
    free(s);
}

/* Any process may have written the breaker: it is repaired under the lock
 * before every use.  When the lock fails the try goes (as without a
 * breaker), rather than failing every call for a broken lock. */
static double shm_breaker_admit(limiter_store *base, const breaker_config *cfg,
                                double now, double lease, int *probe)
{
    segment *seg = ((shared_store *)base)->seg;
    double wait;

    *probe = 0;
    if (seg_lock(seg) != 0)
        return 0;
    breaker_repair(&seg->breaker, now);
    wait = breaker_admit(&seg->breaker, cfg, now, lease, probe);
    seg_unlock(seg);
    return wait;
}

static double shm_breaker_record(limiter_store *base, const breaker_config *cfg,
                                 double now, breaker_result result, int probe)
{
    segment *seg = ((shared_store *)base)->seg;
    double wait;

    if (seg_lock(seg) != 0)
        return 0;
    breaker_repair(&seg->breaker, now);
    wait = breaker_record(&seg->breaker, cfg, now, result, probe);
    seg_unlock(seg);
    return wait;
}

static const limiter_ops shm_ops = {
    .acquire = shm_acquire, .learn = shm_learn, .report = shm_report,
    .reset = shm_reset, .close = shm_close,
    .breaker_admit = shm_breaker_admit, .breaker_record = shm_breaker_record};

static segment *open_ready(const char *base_url, const char *token, int *fdp,
                           char *err, size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    segment *seg;

    limiter_segment_name(base_url, token, name);
    seg = map_segment(name, fdp, err, errlen);
    if (seg != NULL && make_ready(seg, name, err, errlen) != 0) {
        munmap(seg, sizeof(segment));
        close(*fdp);
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
    limiter_sweep_once();
    s->seg = open_ready(base_url, token, &s->fd, err, errlen);
    if (s->seg == NULL) {
        free(s);
        return NULL;
    }
    s->base.ops = &shm_ops;
    s->base.margin = margin;
    s->base.kind = "shm";
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
                         LIMITER_SEGMENT_PREFIX + 1, (unsigned long)geteuid());
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

int limiter_shared_stall_init(const char *base_url, const char *token,
                              char *err, size_t errlen)
{
    char name[LIMITER_SEGMENT_NAME_LEN + 1];
    segment *seg;
    int fd;

    limiter_segment_name(base_url, token, name);
    seg = map_segment(name, &fd, err, errlen);
    if (seg == NULL)
        return -1;
    /* As if the process that claimed the setup died right after. */
    __atomic_store_n(&seg->state, PHASE_INIT, __ATOMIC_RELEASE);
    munmap(seg, sizeof(segment));
    close(fd);
    return 0;
}

int limiter_shared_hold_lock(const char *base_url, const char *token,
                             double seconds, void (*locked)(void),
                             char *err, size_t errlen)
{
    int fd;
    segment *seg = open_ready(base_url, token, &fd, err, errlen);
    struct timespec ts;

    if (seg == NULL)
        return -1;
    if (seg_lock(seg) != 0) {
        snprintf(err, errlen, "cannot lock the shared segment");
        munmap(seg, sizeof(segment));
        close(fd);
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
    close(fd);
    return 0;
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
    int fd;
    segment *seg = open_ready(base_url, token, &fd, err, errlen);
    double now = limiter_now();

    if (seg == NULL)
        return -1;
    if (seg_lock(seg) != 0) {
        snprintf(err, errlen, "cannot lock the shared segment");
        munmap(seg, sizeof(segment));
        close(fd);
        return -1;
    }
    seg->breaker.phase = as_u32(phase);
    seg->breaker.failures = as_u32(failures);
    seg->breaker.open_until = now + open_in;
    seg->breaker.probe_until = now + probe_in;
    seg_unlock(seg);
    munmap(seg, sizeof(segment));
    close(fd);
    return 0;
}

#endif /* WEMASY_TESTS */
