/*
 * classify.h - what a failed libcurl transfer comes to: the kind of
 * failure, whether the request may have reached the server, and one
 * readable line.  Plain C.
 *
 * transport.c hands over what the transfer knows (classify_facts) when
 * libcurl is done with it; nothing here keeps state.
 */
#ifndef WEMASY_CLASSIFY_H
#define WEMASY_CLASSIFY_H

#include <stddef.h>

#include <curl/curl.h>

#include "transport.h"

/* Why one of our callbacks stopped the transfer; libcurl only sees "0". */
typedef enum {
    ABORT_NONE = 0,
    ABORT_BODY_TOO_LARGE,
    ABORT_HEADERS_TOO_LARGE,
    ABORT_OOM,
    ABORT_RESEND, /* libcurl was about to send the request a second time */
    ABORT_INTERRUPTED, /* SIGINT (interrupt.h) */
    ABORT_STALE        /* the kept-alive connection had unread bytes or was closed */
} abort_reason;

/* What a transfer knows when libcurl is done with it. */
typedef struct {
    CURL *easy;          /* libcurl's counts of what went out and came in */
    abort_reason abort;  /* ABORT_NONE unless one of our callbacks stopped it */
    int began;           /* 0: libcurl never began the request (no prereq call) */
    long before_request; /* request bytes libcurl counted before ours: a proxy's CONNECT */
    int head_complete;   /* the final response's header block ended (headers.h) */
    int body_seen;       /* a byte of the response body had come */
    size_t max_body;     /* the cap of ABORT_BODY_TOO_LARGE */
    char *errbuf;        /* CURL_ERROR_SIZE bytes: libcurl's words in, ours out */
} classify_facts;

/*
 * Fills *out for a transfer libcurl ended with rc (an error, or its code
 * for our abort), or with CURLE_OK but cut off in its headers: kind,
 * `sent`, and the message, which is f->errbuf rewritten as one line.
 * Returns out->kind.
 */
int classify_failure(const classify_facts *f, CURLcode rc, transport_result *out);

#endif /* WEMASY_CLASSIFY_H */
