/*
 * limiter.h - client-side rate limiting: at most N requests in any sliding
 * window of W (+ a safety margin) seconds, per limiter group.
 *
 * The state sits behind a small "store" interface (acquire, learn, report,
 * reset, close; and the API's circuit breaker, breaker.h, kept alongside) so
 * where it lives is a detail of the store: plain memory for one client,
 * shared memory for every process on the host, or Redis for several hosts
 * (limiter_redis.c), without the callers changing.
 *
 * Pure C, no Lua.  Times are seconds on one monotonic clock chosen by the
 * caller (limiter_now() for anything shared between processes).
 */
#ifndef WEMASY_LIMITER_H
#define WEMASY_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"

#define LIMITER_NAME_MAX 31   /* longest group name */
#define LIMITER_GROUPS_MAX 16 /* groups one store keeps */
#define LIMITER_RING 1024     /* send times kept per group; caps N */
#define LIMITER_ERRLEN 256

/* A group as one caller configured it.  The server may later change N
 * (X-RateLimit-Limit); W and the margin stay the caller's. */
typedef struct {
    char name[LIMITER_NAME_MAX + 1];
    int limit;     /* N >= 1 */
    double window; /* W > 0, seconds */
    /* Slots of the window this caller leaves free for others: 0 for an
     * interactive caller, rate_limit.reserve for a background one.  A
     * caller always gets at least one slot of the N. */
    int reserve;
} limiter_group;

/* What a response told us; a negative value means "not said". */
typedef struct {
    int limit;          /* X-RateLimit-Limit */
    int remaining;      /* X-RateLimit-Remaining */
    double retry_after; /* Retry-After of a 429, seconds from now */
} limiter_news;

typedef struct {
    int limit;         /* N in force */
    int remaining;     /* sends still free to this caller now (its reserve left out) */
    double reset_in;   /* seconds until a slot frees; 0 when remaining > 0 */
    double closed_for; /* seconds a Retry-After still closes the group */
} limiter_report;

typedef struct limiter_store limiter_store;

/*
 * acquire: takes a slot and returns 0, or takes nothing and returns the
 *          seconds until one may be free (it may be gone by then: ask
 *          again); LIMITER_FAILED when the store cannot serve (e.g. its
 *          group table is full).
 * learn:   folds a response's headers into the state; 0 or -1.
 * report:  fills *out without taking anything; 0 or -1.
 * reset:   forgets everything the store knows of the quota (sends, learned
 *          limits, Retry-After closures) for every group and every sharer
 *          of the store: what `client:rate_limit_reset()` asks; 0 or -1.
 * close:   frees the store.
 * breaker_admit, breaker_record: breaker.h's, on the store's breaker (one
 *          per store, as the quota is); NULL when the store keeps none (the
 *          client keeps one itself then).  A store that cannot serve lets
 *          the try go.
 */
typedef struct {
    double (*acquire)(limiter_store *s, const limiter_group *g, double now);
    int (*learn)(limiter_store *s, const limiter_group *g, double now,
                 const limiter_news *news);
    int (*report)(limiter_store *s, const limiter_group *g, double now,
                  limiter_report *out);
    int (*reset)(limiter_store *s);
    void (*close)(limiter_store *s);
    double (*breaker_admit)(limiter_store *s, const breaker_config *cfg,
                            double now, double lease, int *probe);
    double (*breaker_record)(limiter_store *s, const breaker_config *cfg,
                           double now, breaker_result result, int probe);
} limiter_ops;

/* Every store starts with this; the rest is the store's own. */
struct limiter_store {
    const limiter_ops *ops;
    double margin; /* seconds added to every window for network delay */
    /* "local", "shm" or "redis": which store served the last operation (a
     * Redis store that fell back says "shm"), as info.limiter.store. */
    const char *kind;
    const char *notice; /* NULL, or why it is not where it was asked to be */
};

#define LIMITER_FAILED (-1.0)

/* CLOCK_MONOTONIC in seconds: one clock for every process on the host. */
double limiter_now(void);

/* The state in this process's memory only (one client). */
limiter_store *limiter_open_local(double margin, char *err, size_t errlen);

/* The state in the named shared memory segment of (base_url, token):
 * every process and thread using the same pair shares one quota.
 * token may be NULL.  A segment that cannot be used safely (another
 * user's, open to others, no room in /dev/shm, broken
 * beyond repair) is never used: the store then keeps this client's own
 * state, with kind "local" and the reason in notice.  NULL only when out
 * of memory. */
limiter_store *limiter_open_shared(const char *base_url, const char *token,
                                   double margin, char *err, size_t errlen);

/* The shared store's reset for (base_url, token) without a client: 0 when
 * done, or when there is no segment (none is made); -1 with err. */
int limiter_reset_shared(const char *base_url, const char *token, char *err,
                         size_t errlen);
/* The Redis store (limiter_redis.c): `url` is redis://[:password@]host:port[/db];
 * no call waits on Redis longer than `timeout` seconds, and while Redis
 * fails the host's shared memory store serves `share` (0, 1] of each group's
 * quota.  Connects on first use; a bad URL fails here (err never holds the
 * password). */
limiter_store *limiter_open_redis(const char *url, const char *base_url,
                                  const char *token, double margin,
                                  double timeout, double share, char *err,
                                  size_t errlen);

/* NULL is fine. */
void limiter_close(limiter_store *s);

/* Removes this user's segments (own euid, our names only) that no process
 * holds and whose records have all expired (every send older than its
 * window + margin, no Retry-After still closing a group): what a fresh
 * segment would know.  Returns how many it removed.  limiter_open_shared
 * runs it once per process (limiter_sweep_once). */
int limiter_sweep(void);
void limiter_sweep_once(void);

/* The 64-bit FNV-1a hash of the normalised base_url (url_normalise), "\n"
 * and the token that names a quota in every store (segment names, Redis
 * keys); token may be NULL.  The token never appears in a name. */
uint64_t limiter_quota_key(const char *base_url, const char *token);

/* The shared segment's layout (limiter_shm.c).  It is part of the segment's
 * name: during a rolling upgrade the processes of each wemasy version share
 * a quota among themselves, instead of the new ones finding a segment they
 * cannot read. */
#define LIMITER_SEGMENT_LAYOUT 3u

/* "/wemasy-<euid>-" + 16 hex digits: the quota key mixed with the layout.
 * One segment per user, API, token and layout.  At most
 * LIMITER_SEGMENT_NAME_LEN characters (a uid has at most 10 digits). */
#define LIMITER_SEGMENT_PREFIX "/wemasy-"
#define LIMITER_SEGMENT_NAME_LEN 35
void limiter_segment_name(const char *base_url, const char *token,
                          char out[LIMITER_SEGMENT_NAME_LEN + 1]);

#endif /* WEMASY_LIMITER_H */
