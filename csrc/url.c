/*
 * url.c - the checks of a base_url (url.h).  Strict on purpose: what
 * libcurl might read differently from us is refused, never guessed at.
 */
#include <string.h>

#include "url.h"

static int has_prefix_nocase(const char *s, size_t len, const char *prefix)
{
    size_t i, n = strlen(prefix);

    if (len < n)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != prefix[i])
            return 0;
    }
    return 1;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* 127.a.b.c written as four decimal numbers 0-255, nothing else. */
static int is_ipv4_loopback(const char *s, size_t n)
{
    size_t i = 0;
    int part;

    for (part = 0; part < 4; part++) {
        size_t start = i;
        unsigned value = 0;

        if (part > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            start = ++i;
        }
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            value = value * 10 + (unsigned)(s[i++] - '0');
        if (i == start || value > 255 || (part == 0 && value != 127))
            return 0;
    }
    return i == n;
}

/* Whether the authority (host[:port], nothing else) of an http:// URL is
 * this machine: 127.0.0.0/8, [::1] or localhost.  Strict on purpose: user
 * info, odd spellings and anything libcurl might read differently do not
 * count as loopback. */
static int is_loopback_authority(const char *a, size_t n)
{
    size_t host, i;

    for (i = 0; i < n; i++)
        if (a[i] == '/' || a[i] == '?' || a[i] == '#')
            n = i; /* the authority ends here */
    if (n > 0 && a[0] == '[') {
        for (host = 1; host < n && a[host] != ']'; host++)
            ;
        if (host >= n || host != 4 || memcmp(a, "[::1", 4) != 0)
            return 0;
        host++;
    } else {
        for (host = 0; host < n && a[host] != ':'; host++)
            ;
        if (!is_ipv4_loopback(a, host)) {
            static const char localhost[] = "localhost";

            if (host != sizeof localhost - 1)
                return 0;
            for (i = 0; i < host; i++)
                if (ascii_lower((unsigned char)a[i]) != localhost[i])
                    return 0;
        }
    }
    if (host == n)
        return 1;
    if (a[host] != ':')
        return 0;
    for (i = host + 1; i < n; i++)
        if (a[i] < '0' || a[i] > '9')
            return 0;
    return 1;
}

/* Paths are appended to base_url, so a query or a fragment in it would
 * swallow every path; user info would be a second credential beside the
 * token, sent to every host (and is not quoted: it holds a password). */
static const char *check_parts(const char *rest, size_t n)
{
    size_t authority = 0, i;

    while (authority < n && rest[authority] != '/' && rest[authority] != '?' &&
           rest[authority] != '#')
        authority++;
    if (memchr(rest, '@', authority) != NULL)
        return "must not have user info (user:password@ before the host): "
               "the token is the credential";
    for (i = authority; i < n; i++) {
        if (rest[i] == '?')
            return "must not have a query ('?...'): the API paths are appended "
                   "to base_url";
        if (rest[i] == '#')
            return "must not have a fragment ('#...'): the API paths are "
                   "appended to base_url";
    }
    return NULL;
}

const char *url_check(const char *url, size_t len, int allow_http,
                      size_t *scheme_len)
{
    size_t scheme, i;
    const char *why;

    scheme = has_prefix_nocase(url, len, "https://") ? 8
           : has_prefix_nocase(url, len, "http://")  ? 7 : 0;
    *scheme_len = scheme;
    if (scheme == 0 || len == scheme)
        return "must start with http:// or https:// and name a host";
    for (i = 0; i < len; i++)
        if (url[i] == ' ' || url[i] == '\t')
            return "must not contain spaces";
    why = check_parts(url + scheme, len - scheme);
    if (why != NULL)
        return why;
    /* The token and the orders would cross the network in clear text. */
    if (scheme == 7 && !allow_http &&
        !is_loopback_authority(url + scheme, len - scheme))
        return "is plain http:// to a host that is not this machine "
               "(127.0.0.0/8, ::1, localhost); use https://, or allow_http = "
               "true to send in clear text anyway";
    return NULL;
}

/* ---- the quota's key ------------------------------------------------------ */

/* The port digits a[0..n) without leading zeros, or "" for the scheme's
 * default (80 for http, 443 for https) and for an empty port. */
static void put_port(const char *a, size_t n, size_t scheme_len,
                     url_put put, void *ctx)
{
    const char *dflt = scheme_len == 8 ? "443" : "80";

    while (n > 0 && *a == '0') {
        a++;
        n--;
    }
    if (n == 0 || (n == strlen(dflt) && memcmp(a, dflt, n) == 0))
        return;
    put(ctx, ':');
    while (n-- > 0)
        put(ctx, *a++);
}

void url_normalise(const char *url, url_put put, void *ctx)
{
    size_t len = strlen(url), scheme, i, end, colon;

    scheme = has_prefix_nocase(url, len, "https://") ? 8
           : has_prefix_nocase(url, len, "http://")  ? 7 : 0;
    if (scheme == 0) { /* not a base_url url_check passed: as it is */
        for (i = 0; i < len; i++)
            put(ctx, url[i]);
        return;
    }
    for (i = 0; i < scheme; i++)
        put(ctx, (char)ascii_lower((unsigned char)url[i]));
    /* The authority: host (an IPv6 literal in brackets) and an optional port. */
    for (end = scheme; end < len && url[end] != '/'; end++)
        ;
    colon = end;
    for (i = end; i > scheme; i--) {
        if (url[i - 1] == ']')
            break;
        if (url[i - 1] == ':') {
            colon = i - 1;
            break;
        }
    }
    for (i = scheme; i < colon; i++)
        put(ctx, (char)ascii_lower((unsigned char)url[i]));
    if (colon < end)
        put_port(url + colon + 1, end - colon - 1, scheme, put, ctx);
    /* The path: one '/' for a run of them, none at the end. */
    for (i = end; i < len; i++) {
        if (url[i] == '/' && (i + 1 == len || url[i + 1] == '/'))
            continue;
        put(ctx, url[i]);
    }
}
