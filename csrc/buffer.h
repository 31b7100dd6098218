/*
 * buffer.h - a growable byte buffer: a response's body and header store, a
 * request's URL.  Plain C.
 *
 * Appending is inline: libcurl hands over every chunk of a body and every
 * header line through it, and only growing the buffer is worth a call.
 */
#ifndef WEMASY_BUFFER_H
#define WEMASY_BUFFER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A response that needed more than this is not kept around afterwards: one
 * large export should not pin megabytes for the client's lifetime. */
#define BUFFER_KEEP_MAX ((size_t)1 << 20)

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buffer;

/* Room for need bytes in all (need > b->cap); -1 when out of memory. */
int buffer_grow(buffer *b, size_t need);

/* Frees the memory; the buffer is empty and usable again. */
void buffer_free(buffer *b);

/* Appends src[0..n); -1 when out of memory (the buffer is unchanged). */
static inline int buffer_append(buffer *b, const char *src, size_t n)
{
    if (n > SIZE_MAX - b->len ||
        (b->len + n > b->cap && buffer_grow(b, b->len + n) != 0))
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int buffer_append_byte(buffer *b, char c)
{
    return buffer_append(b, &c, 1);
}

/* Empty the buffer for the next response, shrinking it if it got huge. */
static inline void buffer_reset(buffer *b)
{
    if (b->cap > BUFFER_KEEP_MAX)
        buffer_free(b);
    b->len = 0;
}

#endif /* WEMASY_BUFFER_H */
