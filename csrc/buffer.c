/*
 * buffer.c - growing and freeing a buffer (buffer.h); appending is inline.
 */
#include "buffer.h"

#include <stdlib.h>

#define BUFFER_MIN 4096

int buffer_grow(buffer *b, size_t need)
{
    size_t cap = b->cap ? b->cap : BUFFER_MIN;
    char *p;

    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void buffer_free(buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
