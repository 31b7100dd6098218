/*
 * window.h - the exact sliding window of one limiter group, shared by every
 * store.  A window_state is plain old data with no pointers, so a store may
 * keep it in shared memory; the caller provides any locking.
 */
#ifndef WEMASY_WINDOW_H
#define WEMASY_WINDOW_H

#include <stdint.h>

#include "limiter.h"

typedef struct {
    char name[LIMITER_NAME_MAX + 1]; /* "" while the slot is free */
    int32_t learned_limit;           /* 0 until the server tells N */
    uint32_t head;                   /* where the next send time goes */
    uint32_t count;                  /* valid send times, <= LIMITER_RING */
    uint32_t pad_;
    double closed_until;             /* Retry-After: nothing before this */
    double span;                     /* window + margin of the last use: how
                                        long its sends count (for the sweep) */
    double sends[LIMITER_RING];      /* the last sends, oldest first from head */
} window_state;

/* A state whose slot is taken gets this name; the rest starts at zero. */
void window_init(window_state *w, const char *name);

/* Whether nothing in w counts any more at `now`: its sends are older than
 * their span and no Retry-After closes it (a free slot counts as expired).
 * A store whose groups have all expired may be dropped: it knows nothing
 * a fresh one would not, but a learned limit, which the next response
 * teaches again. */
int window_expired(const window_state *w, double now);

/* Before every use of a state that others can write (a shared segment, a
 * process that died mid-update): clamps every field into what the
 * operations can use, one check per field.  Send times are checked as they
 * are read (the operations below repair the ones they look at). */
void window_validate(window_state *w, double now);

double window_acquire(window_state *w, const limiter_group *g, double margin,
                      double now);
void window_learn(window_state *w, const limiter_group *g, double margin,
                  double now, const limiter_news *news);
void window_report(window_state *w, const limiter_group *g,
                   double margin, double now, limiter_report *out);

#endif /* WEMASY_WINDOW_H */
