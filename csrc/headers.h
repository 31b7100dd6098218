/*
 * headers.h - the response headers of one transfer: each line as libcurl
 * hands it over, stored as "name\0value\0" pairs for the final response
 * only, counted against a cap, read back one pair at a time.  Plain C.
 *
 * The store belongs to a transfer (transport.c): its header callback feeds
 * headers_line(), its readers (the binding, the limiter's learning) get it
 * through transfer_headers().
 */
#ifndef WEMASY_HEADERS_H
#define WEMASY_HEADERS_H

#include <stddef.h>
#include <string.h>

#include "buffer.h"

/*
 * Our cap on a transfer's response headers, counted as libcurl counts
 * towards its own limit: every line as received (CRLF, status lines and 1xx
 * responses included).  libcurl 7.88.1 fails past 300 KiB in all, right
 * after handing us the line that crossed it (measured), so ours always
 * comes first and the caller gets our "too_large".  Its other limit, a
 * line of 100 KiB, it enforces before we see the line: see classify.c.
 */
#define HEADERS_MAX ((size_t)256 * 1024)

typedef struct {
    buffer pairs; /* "name\0value\0" for each header of the final response */
    size_t raw;   /* bytes of every header line of the transfer (HEADERS_MAX) */
    int interim;  /* the response being read is a 1xx */
    int done;     /* the blank line ending the final header block came */
} headers;

/* What one line was. */
typedef enum {
    HEADERS_LINE = 0,  /* a header kept, or a line with nothing to keep */
    HEADERS_STATUS_H1, /* a status line ("HTTP/1.1 200 OK"): a response starts */
    HEADERS_STATUS_H2, /* the same, of HTTP/2 ("HTTP/2 200") */
    HEADERS_TOO_LARGE, /* past HEADERS_MAX: stop the transfer */
    HEADERS_OOM        /* out of memory: stop the transfer */
} headers_event;

/* A new transfer: nothing stored, nothing counted. */
static inline void headers_begin(headers *h)
{
    buffer_reset(&h->pairs);
    h->raw = 0;
    h->interim = h->done = 0;
}

/* Forgets the responses read so far (the byte count stays the transfer's):
 * a failed transfer leaves no header for the caller to misread, a request
 * sent again starts with none. */
static inline void headers_discard(headers *h)
{
    h->pairs.len = 0;
    h->interim = h->done = 0;
}

/* One line as libcurl hands it to its header callback: complete, CRLF
 * included, status lines and blank lines too. */
headers_event headers_line(headers *h, const char *line, size_t n);

/* Whether the final response's header block ended (its blank line came):
 * a transfer that ends without it was cut off in its headers. */
static inline int headers_complete(const headers *h)
{
    return h->done;
}

/*
 * The pairs of the final response, one at a time: start with *pos = 0;
 * returns the lower-case name and stores the trimmed value, or returns NULL
 * when done.  A header that appeared several times is returned several
 * times, in order.  NULL h: none.
 */
static inline const char *headers_next(const headers *h, size_t *pos,
                                       const char **value)
{
    const char *name;

    if (h == NULL || *pos >= h->pairs.len)
        return NULL;
    name = h->pairs.data + *pos;
    *value = name + strlen(name) + 1;
    *pos = (size_t)(*value - h->pairs.data) + strlen(*value) + 1;
    return name;
}

void headers_free(headers *h);

#endif /* WEMASY_HEADERS_H */
