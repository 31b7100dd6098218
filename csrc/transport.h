/*
 * transport.h - keep-alive HTTP(S) handles to the Wemasy API.
 *
 * Pure C, no Lua: the binding (core.c) validates options and converts
 * results; the retry loop (request.c) wraps transport_perform() and the
 * batch (batch.c, multi.c) drives more handles configured the same way.
 *
 * A transport is not thread-safe; use one per thread (as one Lua state is).
 */
#ifndef WEMASY_TRANSPORT_H
#define WEMASY_TRANSPORT_H

#include <stddef.h>

#include <curl/curl.h>

#include "headers.h"
#include "interrupt.h"

/* Why a request failed; TK_OK means an HTTP response (any status) arrived. */
typedef enum {
    TK_OK = 0,
    TK_TIMEOUT,
    TK_NETWORK,
    TK_TLS,
    TK_TOO_LARGE,
    TK_CLOSED,
    TK_INTERNAL,
    TK_INTERRUPTED /* SIGINT while the call waited (interrupt.h) */
} transport_kind;

/* Everything is copied by transport_new(); the caller keeps ownership. */
typedef struct {
    const char *base_url;   /* required, no trailing '/' expected */
    const char *token;      /* NULL: never send Authorization */
    long timeout_ms;        /* > 0 */
    long connect_timeout_ms;/* > 0 */
    const char *ca_file;    /* NULL: curl's default */
    const char *ca_path;    /* NULL: curl's default */
    int insecure;           /* non-zero: no peer/host verification */
    const char *proxy;      /* NULL: curl's default (environment) */
    size_t max_body;        /* > 0, cap on the decoded response body */
    const char *user_agent; /* required */
    int interruptible;      /* non-zero: transfers abort on SIGINT */
} transport_config;

/*
 * Filled by transport_perform() and transfer_end().  Every pointer refers to
 * memory owned by the transfer and stays valid only until its next use.
 */
typedef struct {
    transport_kind kind;
    long status;            /* HTTP status when kind == TK_OK */
    const char *body;       /* never NULL when kind == TK_OK */
    size_t body_len;
    const char *message;    /* kind != TK_OK: one readable line */
    int sent;               /* kind != TK_OK: request may have reached the server */
} transport_result;

/* The configuration every handle of one client shares. */
typedef struct transport transport;

/* One libcurl easy handle configured from a transport, with the buffers of
 * its current response. */
typedef struct transfer transfer;

/* Room for transport_new()'s error text. */
#define TRANSPORT_ERRLEN 256

/* Returns NULL on failure and writes a reason (never the token) to err. */
transport *transport_new(const transport_config *cfg, char *err, size_t errlen);

/* Zeroes the Authorization header, frees everything.  NULL is fine.  Every
 * transfer made from it must be freed first. */
void transport_free(transport *t);

/*
 * POST body[0..len) to base_url .. path on the transport's own handle and
 * wait for the answer.  The body must stay alive until the call returns (it
 * is not copied).  Returns out->kind.
 */
int transport_perform(transport *t, const char *path, const char *body,
                      size_t len, int with_auth, transport_result *out);

/*
 * fork(): 1 in a process other than the one whose calls opened t's
 * connections.  transport_after_fork() then forgets them without touching
 * them (they are the parent's) and makes t's own handle anew;
 * transport_perform() does it by itself.  Handles made with transfer_new()
 * keep the parent's connections: their owner frees them after it, and makes
 * new ones.  Returns -1 when a connection could not be let go of safely
 * (the old handles must then be leaked, not freed), else 0.
 */
int transport_forked(const transport *t);
int transport_after_fork(transport *t);

/* The transfer transport_perform() uses (for its response headers). */
const transfer *transport_last(const transport *t);

/* ---- transfers, for callers that drive libcurl themselves (multi) ---------- */

/* A new handle configured exactly like the transport's own. */
transfer *transfer_new(transport *t, char *err, size_t errlen);
void transfer_free(transfer *tr); /* NULL is fine; detach it from any multi first */

/*
 * Readies the handle for one request: clears the previous response, sets
 * URL, headers and body (not copied: keep it alive until transfer_end).
 * Returns TK_OK, or the failure in *out (nothing was sent).
 */
int transfer_begin(transfer *tr, const char *path, const char *body,
                   size_t len, int with_auth, transport_result *out);

CURL *transfer_easy(transfer *tr);

/*
 * After libcurl finished a transfer with rc: 1 when it sent nothing because
 * the kept-alive connection it picked had unread bytes or was closed by the
 * peer (libcurl has closed it), and the transfer is ready to run again as
 * it was; then run it again (perform, or add it to the multi anew).  0:
 * call transfer_end().
 */
int transfer_redo(transfer *tr, CURLcode rc);

/* Turns libcurl's result into *out and lets go of the caller's body.
 * Returns out->kind. */
int transfer_end(transfer *tr, CURLcode rc, transport_result *out);

/* transfer_end for a transfer cut short by SIGINT (detached from its multi
 * first): TK_INTERRUPTED, `sent` whether request bytes had left. */
int transfer_stop(transfer *tr, transport_result *out);

/* The response headers of the last request (headers_next() reads them);
 * NULL for a NULL transfer.  After a failure there are none. */
const headers *transfer_headers(const transfer *tr);

int transport_has_token(const transport *t);

/* The scope of the call in progress (NULL between calls): once it sees a
 * SIGINT, no transfer of t sends its request, and transport_perform()'s
 * aborts at libcurl's next look (its progress callback). */
void transport_watch(transport *t, const interrupt_scope *s);

#endif /* WEMASY_TRANSPORT_H */
