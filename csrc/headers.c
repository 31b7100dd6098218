/*
 * headers.c - response header lines into "name\0value\0" pairs (headers.h):
 * the final response's only, obs-fold joined, names lower-cased, the whole
 * counted against HEADERS_MAX.
 */
#include "headers.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void lowercase(char *s, size_t n)
{
    size_t i;

    /* ASCII only on purpose: header names are tokens, and the locale's
     * tolower() could map bytes differently. */
    for (i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

static int has_room(const headers *h, size_t n)
{
    return n <= HEADERS_MAX && h->pairs.len <= HEADERS_MAX - n;
}

/* obs-fold: a line starting with whitespace continues the previous value. */
static headers_event add_continuation(headers *h, const char *s, size_t n)
{
    buffer *p = &h->pairs;

    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    if (p->len == 0 || n == 0)
        return HEADERS_LINE;
    if (!has_room(h, n + 1))
        return HEADERS_TOO_LARGE;
    p->len--; /* reopen the last value: drop its terminating NUL */
    if (p->data[p->len - 1] != '\0' && buffer_append_byte(p, ' ') != 0)
        return HEADERS_OOM;
    if (buffer_append(p, s, n) != 0 || buffer_append_byte(p, '\0') != 0)
        return HEADERS_OOM;
    return HEADERS_LINE;
}

static headers_event add_pair(headers *h, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    const char *value;
    size_t name_len, value_len, start;

    if (colon == NULL)
        return HEADERS_LINE; /* not a header; nothing useful to keep */
    name_len = (size_t)(colon - s);
    while (name_len > 0 && is_space(s[name_len - 1]))
        name_len--;
    if (name_len == 0)
        return HEADERS_LINE;
    value = colon + 1;
    value_len = n - (size_t)(value - s);
    while (value_len > 0 && is_space(*value)) {
        value++;
        value_len--;
    }
    if (!has_room(h, name_len + value_len + 2))
        return HEADERS_TOO_LARGE;
    start = h->pairs.len;
    if (buffer_append(&h->pairs, s, name_len) != 0 ||
        buffer_append_byte(&h->pairs, '\0') != 0 ||
        buffer_append(&h->pairs, value, value_len) != 0 ||
        buffer_append_byte(&h->pairs, '\0') != 0)
        return HEADERS_OOM;
    lowercase(h->pairs.data + start, name_len);
    return HEADERS_LINE;
}

/* Every status line starts a new response (1xx, proxy CONNECT, ...): only
 * the final response's headers may reach the caller.  Is it an interim
 * (1xx) one, and what does the connection speak ("HTTP/2 200" or
 * "HTTP/1.1 200 OK")? */
static headers_event start_response(headers *h, const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);

    h->pairs.len = 0;
    h->interim = sp != NULL && (size_t)(sp - line) + 1 < n && sp[1] == '1';
    h->done = 0;
    return n > 5 && line[5] == '2' ? HEADERS_STATUS_H2 : HEADERS_STATUS_H1;
}

headers_event headers_line(headers *h, const char *line, size_t total)
{
    size_t n = total;

    if (total > HEADERS_MAX - h->raw)
        return HEADERS_TOO_LARGE;
    h->raw += total;
    while (n > 0 && is_space(line[n - 1]))
        n--;
    if (n == 0) {
        /* the blank line ending a header block: the final one unless 1xx */
        h->done = !h->interim;
        return HEADERS_LINE;
    }
    /* Headers are kept as "name\0value\0": a NUL inside a line would split
     * it into pairs that do not exist, and the reader would run past the
     * buffer.  libcurl 7.88 refuses such lines itself; older ones do not. */
    if (memchr(line, '\0', n) != NULL)
        return HEADERS_LINE;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0)
        return start_response(h, line, n);
    return line[0] == ' ' || line[0] == '\t' ? add_continuation(h, line, n)
                                               : add_pair(h, line, n);
}

void headers_free(headers *h)
{
    buffer_free(&h->pairs);
}
