/*
 * url.h - what a base_url may be: http(s), a host, no query, fragment or
 * user info, and plain http:// only to this machine unless allowed.
 *
 * Pure C, no Lua: options.c raises what url_check() says, naming the option.
 */
#ifndef WEMASY_URL_H
#define WEMASY_URL_H

#include <stddef.h>

/* NULL when url[0..len) is acceptable, else why not, as words that follow
 * "option 'base_url' ".  *scheme_len is the length of "http://" or
 * "https://" (0 when it has neither). */
const char *url_check(const char *url, size_t len, int allow_http,
                      size_t *scheme_len);

#endif /* WEMASY_URL_H */
