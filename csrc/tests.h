/*
 * tests.h - the test build (WEMASY_TESTS, in the manner of Lua's ltests.h):
 * what specs need to see or provoke inside the core, and the hooks the
 * other files use for it.  The Makefile defines WEMASY_TESTS for the tree's
 * build, which every spec loads; the rockspec (the release) never does, so
 * there each macro below expands to nothing, tests.c is empty and the
 * limiter's back ends are not compiled (.ci/check-rock checks that the
 * installed core has no _debug_ function).
 *
 * Plain C (no lua.h), so that the limiter may include it too.
 */
#ifndef WEMASY_TESTS_H
#define WEMASY_TESTS_H

#ifdef WEMASY_TESTS

#include <stddef.h>

struct lua_State;

/* What a client counts for specs: the `tests` field of client.h's client. */
typedef struct {
    /* Queued items the last batch's scans looked at (a spec checks that
     * this grows with the batch, not with its square). */
    long batch_visits;
} tests_counters;

#define TESTS_CLIENT_FIELDS tests_counters tests;
#define TESTS_COUNT(c, name) ((c)->tests.name++)
#define TESTS_RESET(c, name) ((c)->tests.name = 0)

/* Adds the core._debug_* functions to the module table on the stack top
 * and client:_debug_* to the client's methods (tests.c). */
void tests_open(struct lua_State *L);
#define TESTS_OPEN(L) tests_open(L)

/* limiter_shm.c, which alone knows the segment's layout and lock: leave
 * the segment of (base_url, token) "being set up" as if its initialiser
 * had died, or hold its lock for `seconds` (so a spec can kill the
 * holder), calling locked() once it is held.  0 on success. */
int limiter_shared_stall_init(const char *base_url, const char *token,
                              char *err, size_t errlen);
int limiter_shared_hold_lock(const char *base_url, const char *token,
                             double seconds, void (*locked)(void),
                             char *err, size_t errlen);

/* Writes the segment's breaker fields as given, unchecked (as a stray or
 * hostile writer could): phase, failures, and the two times as seconds
 * from now on limiter_now().  0 on success. */
int limiter_shared_set_breaker(const char *base_url, const char *token,
                               double phase, double failures, double open_in,
                               double probe_in, char *err, size_t errlen);
/* How long a segment may keep a caller waiting (its lock, its setup)
 * before it counts as broken; 1 s unless a spec shortens it. */
void limiter_shared_set_bound(double seconds);

/* Where the segment's fields lie, for specs that write into the file as a
 * hostile process would: {name, offset, size} up to a NULL name.  The
 * group fields are those of groups[0]; "group" gives the stride. */
typedef struct {
    const char *name;
    size_t offset, size;
} tests_field;
const tests_field *limiter_shared_layout(void);

/* The mapping of a store limiter_open_shared made (NULL once it fell back
 * to its own state), its size and its file, for fuzz/segment_fuzz.c. */
struct limiter_store;
void *limiter_shared_mapping(struct limiter_store *s, size_t *size, int *fd);

#else /* the release */

#define TESTS_CLIENT_FIELDS
#define TESTS_COUNT(c, name) ((void)0)
#define TESTS_RESET(c, name) ((void)0)
#define TESTS_OPEN(L) ((void)0)

#endif /* WEMASY_TESTS */

#endif /* WEMASY_TESTS_H */
