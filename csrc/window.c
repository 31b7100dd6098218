/*
 * window.c - "at most N sends in any (now - span, now]" with span = W +
 * margin, kept exact by remembering the times of the last sends.
 *
 * Only the N-th newest send matters: if it lies inside the span, N sends
 * do; if it lies outside, at most N - 1 do.  So acquire is O(1); the ring
 * keeps more than N times only so that a larger learned N stays exact.
 */
#include "window.h"

#include <math.h>
#include <string.h>

#include "retry.h"

/* Waits this short count as "free now": with an injected clock, now + wait
 * can round back to now and a caller would sleep forever on the remainder.
 * A microsecond is nothing next to the margin. */
#define WINDOW_EPSILON 1e-6
/* Senders read the clock before they wait for the lock, so a stored send
 * may be a little later than a reader's now; by more than this it is
 * garbage. */
#define WINDOW_CLOCK_SLACK 5.0

void window_init(window_state *w, const char *name)
{
    memset(w, 0, sizeof *w);
    strncpy(w->name, name, LIMITER_NAME_MAX);
    w->name[LIMITER_NAME_MAX] = '\0';
}

static int clamp_limit(long n)
{
    if (n < 1)
        return 1;
    return n > LIMITER_RING ? LIMITER_RING : (int)n;
}

/* ---- validation: one function per field ---- */

static int32_t valid_learned_limit(int32_t n)
{
    return n <= 0 ? 0 : clamp_limit(n); /* 0: the server has not said */
}

static uint32_t valid_count(uint32_t n)
{
    return n > LIMITER_RING ? LIMITER_RING : n;
}

/* A Retry-After is capped at RETRY_AFTER_MAX when learnt; so is what is
 * stored, whoever stored it.  NaN or -inf: not closed. */
static double valid_closed_until(double t, double now)
{
    if (!(t > now))
        return t > -INFINITY ? t : 0;
    return t - now > RETRY_AFTER_MAX ? now + RETRY_AFTER_MAX : t;
}

/* Only idle-segment removal reads it (window_expired); NaN or negative: 0. */
static double valid_span(double span)
{
    return span >= 0 ? span : 0;
}

void window_validate(window_state *w, double now)
{
    w->name[LIMITER_NAME_MAX] = '\0';
    w->learned_limit = valid_learned_limit(w->learned_limit);
    w->head %= LIMITER_RING;
    w->count = valid_count(w->count);
    w->closed_until = valid_closed_until(w->closed_until, now);
    w->span = valid_span(w->span);
}

/* The server's word wins over the configuration once it has spoken. */
static int limit_in_force(const window_state *w, const limiter_group *g)
{
    return clamp_limit(w->learned_limit > 0 ? w->learned_limit : g->limit);
}

/* The slots this caller may fill: N less its reserve, never below one (a
 * background job that may never send would only wait out max_wait). */
static int share_of(int limit, const limiter_group *g)
{
    if (g->reserve <= 0)
        return limit;
    return g->reserve >= limit ? 1 : limit - g->reserve;
}

/* k-th newest send time, 1 <= k <= count.  A time no sender could have
 * written (NaN, or later than now by more than WINDOW_CLOCK_SLACK) is
 * repaired to now where it lies: it then holds its slot for one window, as
 * a send would, instead of forever (1e300) or never (NaN). */
static double nth_newest(window_state *w, uint32_t k, double now)
{
    double *t = &w->sends[(w->head + LIMITER_RING - k) % LIMITER_RING];

    if (!(*t <= now + WINDOW_CLOCK_SLACK))
        *t = now;
    return *t;
}

static void record(window_state *w, double t)
{
    /* Processes read the clock before taking the lock, so a later caller may
     * bring an earlier time.  Keeping the ring sorted by moving such a send
     * to the newest time only makes its slot free later: conservative. */
    if (w->count > 0 && t < nth_newest(w, 1, t))
        t = nth_newest(w, 1, t);
    w->sends[w->head] = t;
    w->head = (w->head + 1) % LIMITER_RING;
    if (w->count < LIMITER_RING)
        w->count++;
}

static uint32_t sends_within(window_state *w, double span, double now)
{
    uint32_t k = 0;

    while (k < w->count && nth_newest(w, k + 1, now) > now - span)
        k++;
    return k;
}

/* Seconds until fewer than n sends lie in the span; 0 if already so. */
static double slot_wait(window_state *w, int n, double span, double now)
{
    double wait;

    if (w->count < (uint32_t)n)
        return 0;
    wait = nth_newest(w, (uint32_t)n, now) + span - now;
    return wait > WINDOW_EPSILON ? wait : 0;
}

static double closed_wait(const window_state *w, double now)
{
    double wait = w->closed_until - now;

    return wait > WINDOW_EPSILON ? wait : 0;
}

/* Read-only (the sweep maps other segments so): every index is taken in
 * range, and garbage times or spans (NaN) count as not expired. */
int window_expired(const window_state *w, double now)
{
    double newest;

    if (w->name[0] == '\0')
        return 1;
    if (!(w->closed_until <= now))
        return 0;
    if (w->count == 0)
        return 1;
    newest = w->sends[(w->head % LIMITER_RING + LIMITER_RING - 1) % LIMITER_RING];
    return newest + w->span <= now;
}

double window_acquire(window_state *w, const limiter_group *g, double margin,
                      double now)
{
    double span = g->window + margin;
    double wait = slot_wait(w, share_of(limit_in_force(w, g), g), span, now);
    double closed = closed_wait(w, now);

    if (closed > wait)
        wait = closed;
    if (wait > 0)
        return wait;
    record(w, now);
    w->span = span;
    return 0;
}

void window_learn(window_state *w, const limiter_group *g, double margin,
                  double now, const limiter_news *news)
{
    double span = g->window + margin;

    if (news->limit > 0)
        w->learned_limit = clamp_limit(news->limit);
    if (news->retry_after >= 0) {
        /* A 429 says exactly when the server's window ends; its
         * "Remaining: 0" would otherwise close us for a whole window. */
        if (now + news->retry_after > w->closed_until)
            w->closed_until = now + news->retry_after;
    } else if (news->remaining >= 0) {
        /* The server has counted limit - remaining in its window.  If we
         * know of fewer (other hosts, a restart, requests we did not see),
         * add the missing ones as sent now: that may free their slots
         * later than the server will, never sooner. */
        int limit = limit_in_force(w, g);
        long used = (long)limit - news->remaining;
        long have = (long)sends_within(w, span, now);

        for (; have < used; have++)
            record(w, now);
        w->span = span;
    }
}

void window_report(window_state *w, const limiter_group *g,
                   double margin, double now, limiter_report *out)
{
    double span = g->window + margin;
    int limit = limit_in_force(w, g);
    int share = share_of(limit, g); /* what this caller may use of it */
    uint32_t used = sends_within(w, span, now);

    out->limit = limit;
    out->remaining = used >= (uint32_t)share ? 0 : share - (int)used;
    out->reset_in = out->remaining > 0 ? 0 : slot_wait(w, share, span, now);
    out->closed_for = closed_wait(w, now);
}
