/*
 * multi.h - a curl multi handle with a pool of transfers, for running many
 * requests at once on one thread.
 *
 * Transfers are made on demand (configured like the client's own handle)
 * and kept for the next batch, and the multi's connection cache keeps their
 * connections alive between batches.  Pure C, no Lua, no scheduling policy:
 * the caller decides what to start and when (batch.c).
 */
#ifndef WEMASY_MULTI_H
#define WEMASY_MULTI_H

#include "transport.h"

#define MULTI_MAX 64 /* transfers in flight at most */

typedef struct multi_pool multi_pool;

/* t must outlive the pool. */
multi_pool *multi_pool_new(transport *t, char *err, size_t errlen);
void multi_pool_free(multi_pool *p); /* NULL is fine */

int multi_pool_in_flight(const multi_pool *p);

/* 1 in a child of fork() (the connections are the parent's): free the
 * pool after transport_after_fork() and make a new one. */
int multi_pool_forked(const multi_pool *p);

/*
 * Starts one request tagged `tag` (the body is not copied: keep it alive
 * until the transfer is done or aborted).  Returns TK_OK, or the failure in
 * *out when nothing could be started (then nothing was sent).
 */
int multi_pool_start(multi_pool *p, int tag, const char *path,
                     const char *body, size_t len, int with_auth,
                     transport_result *out);

/* Waits up to timeout_ms for network activity and lets libcurl work.
 * Returns 0, or -1 with a message when the multi handle failed. */
int multi_pool_run(multi_pool *p, int timeout_ms, const char **message);

/*
 * The next finished transfer, or NULL.  Its response (*out and
 * transfer_headers) stays valid until multi_pool_release().
 */
const transfer *multi_pool_next_done(multi_pool *p, int *tag,
                                     transport_result *out);
void multi_pool_release(multi_pool *p, const transfer *tr);

/* After a SIGINT: stops every transfer in flight; each then comes out of
 * multi_pool_next_done() as TK_INTERRUPTED, with its own `sent`. */
void multi_pool_interrupt(multi_pool *p);

/* Stops everything in flight; every transfer becomes idle again.  Safe at
 * any time, e.g. after a Lua error left a batch half done. */
void multi_pool_abort(multi_pool *p);

#endif /* WEMASY_MULTI_H */
