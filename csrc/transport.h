/*
 * transport.h - one keep-alive HTTP(S) connection to the Wemasy API.
 *
 * Pure C, no Lua: the binding (core.c) validates options and converts
 * results, a future rate limiter or retry loop can wrap transport_perform()
 * without knowing anything about Lua.
 *
 * A transport is not thread-safe; use one per thread (as one Lua state is).
 */
#ifndef WEMASY_TRANSPORT_H
#define WEMASY_TRANSPORT_H

#include <stddef.h>

/* Why a request failed; TK_OK means an HTTP response (any status) arrived. */
typedef enum {
    TK_OK = 0,
    TK_TIMEOUT,
    TK_NETWORK,
    TK_TLS,
    TK_TOO_LARGE,
    TK_CLOSED,
    TK_INTERNAL
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
} transport_config;

/*
 * Filled by transport_perform().  Every pointer refers to memory owned by
 * the transport and stays valid only until the next perform or free.
 */
typedef struct {
    transport_kind kind;
    long status;            /* HTTP status when kind == TK_OK */
    const char *body;       /* never NULL when kind == TK_OK */
    size_t body_len;
    const char *message;    /* kind != TK_OK: one readable line */
    int sent;               /* kind != TK_OK: request may have reached the server */
} transport_result;

typedef struct transport transport;

/* One-time process-wide libcurl setup; safe to call from any thread, any
 * number of times.  Returns 0 on success. */
int transport_global_init(void);

/* Room for transport_new()'s error text. */
#define TRANSPORT_ERRLEN 256

/* Returns NULL on failure and writes a reason (never the token) to err. */
transport *transport_new(const transport_config *cfg, char *err, size_t errlen);

/* Zeroes the Authorization header, frees everything.  NULL is fine. */
void transport_free(transport *t);

/*
 * POST body[0..len) to base_url .. path.  The body must stay alive until
 * the call returns (it is not copied).  Returns out->kind.
 */
int transport_perform(transport *t, const char *path, const char *body,
                      size_t len, int with_auth, transport_result *out);

/*
 * Response headers of the final response of the last perform, one pair at
 * a time: start with *pos = 0; returns the lower-case name and stores the
 * trimmed value, or returns NULL when done.  A header that appeared several
 * times is returned several times, in order.
 */
const char *transport_header_next(const transport *t, size_t *pos,
                                  const char **value);

int transport_has_token(const transport *t);

/* Describes libcurl as loaded at run time (not the headers we built with). */
const char *transport_curl_version(void);
const char *transport_ssl_version(void); /* NULL without TLS support */
int transport_has_http2(void);

#endif /* WEMASY_TRANSPORT_H */
