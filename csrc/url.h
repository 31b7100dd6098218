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

/* Gets the bytes of url_normalise's result one at a time. */
typedef void (*url_put)(void *ctx, char c);

/* The spelling of an API that one quota is keyed on: scheme and host in
 * lower case, the scheme's default port (and leading zeros of a port)
 * dropped, each run of '/' in the path one '/', none at its end.  The path's
 * case stays (servers may tell it apart); different host names stay
 * different (127.0.0.1 and localhost may well be two servers).  A url that
 * does not start with http:// or https:// is given as it is. */
void url_normalise(const char *url, url_put put, void *ctx);

#endif /* WEMASY_URL_H */
