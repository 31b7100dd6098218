/*
 * settings.c - how every handle of a client is configured (settings.h):
 * the caller's settings copied and the header lists built once, applied
 * with our fixed choices to each new handle.
 */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcurl.h"

#define AUTH_PREFIX "Authorization: Bearer "

/* A plain memset may be optimised away right before free(). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--)
        *v++ = 0;
}

static void free_header_list(struct curl_slist *list)
{
    struct curl_slist *node;

    for (node = list; node != NULL; node = node->next)
        wipe(node->data, strlen(node->data));
    curl_slist_free_all(list);
}

static struct curl_slist *append_or_free(struct curl_slist *list,
                                         const char *line)
{
    struct curl_slist *grown = curl_slist_append(list, line);

    if (grown == NULL)
        free_header_list(list);
    return grown;
}

/* Builds the list every request sends; with a token, adds Authorization.
 * Our temporary copy of the header line is wiped: the slist keeps the only
 * one, and that is wiped in free_header_list(). */
static struct curl_slist *build_header_list(const char *token)
{
    /* "Expect:" stops libcurl from waiting for 100-continue on big bodies. */
    static const char *const common[] = {
        "Accept: application/json", "Content-Type: application/json", "Expect:"};
    struct curl_slist *list = NULL;
    size_t i, n;
    char *line;

    for (i = 0; i < sizeof common / sizeof common[0]; i++)
        if ((list = append_or_free(list, common[i])) == NULL)
            return NULL;
    if (token == NULL)
        return list;
    n = sizeof AUTH_PREFIX + strlen(token);
    line = malloc(n);
    if (line == NULL) {
        free_header_list(list);
        return NULL;
    }
    snprintf(line, n, "%s%s", AUTH_PREFIX, token);
    list = append_or_free(list, line);
    wipe(line, n);
    free(line);
    return list;
}

/* NULL stays NULL; returns -1 only when a copy was needed and failed. */
static int copy_string(char **dst, const char *src)
{
    size_t n;

    *dst = NULL;
    if (src == NULL)
        return 0;
    n = strlen(src) + 1;
    *dst = malloc(n);
    if (*dst == NULL)
        return -1;
    memcpy(*dst, src, n);
    return 0;
}

int settings_copy(settings *s, const transport_config *cfg)
{
    s->base_len = strlen(cfg->base_url);
    s->max_body = cfg->max_body;
    s->timeout_ms = cfg->timeout_ms;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->insecure = cfg->insecure;
    s->interruptible = cfg->interruptible;
    return copy_string(&s->base_url, cfg->base_url) != 0 ||
           copy_string(&s->ca_file, cfg->ca_file) != 0 ||
           copy_string(&s->ca_path, cfg->ca_path) != 0 ||
           copy_string(&s->proxy, cfg->proxy) != 0 ||
           copy_string(&s->user_agent, cfg->user_agent) != 0 ||
           (s->hdr_plain = build_header_list(NULL)) == NULL ||
           (cfg->token != NULL && (s->hdr_auth = build_header_list(cfg->token)) == NULL)
               ? -1
               : 0;
}

/* Ours: the same for every client. */
static int apply_fixed(CURL *easy, char *err, size_t errlen)
{
    SETTINGS_SET(easy, CURLOPT_NOSIGNAL, 1L);      /* timeouts must not use SIGALRM */
    SETTINGS_SET(easy, CURLOPT_NOPROGRESS, 1L);
    SETTINGS_SET(easy, CURLOPT_POST, 1L);
    SETTINGS_SET(easy, CURLOPT_FOLLOWLOCATION, 0L); /* the caller sees 3xx as is */
    SETTINGS_SET(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    SETTINGS_SET(easy, CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    SETTINGS_SET(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETTINGS_SET(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETTINGS_SET(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (libcurl_has_http2())
        SETTINGS_SET(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    return 0;
}

/* A caller's value libcurl refuses (e.g. a string over its 8 MB input
 * limit): the error names the caller's option, not libcurl's. */
#define SETOPT_USER(opt, val, name)                                           \
    do {                                                                      \
        CURLcode rc_ = curl_easy_setopt(easy, opt, val);                      \
        if (rc_ != CURLE_OK) {                                                \
            snprintf(err, errlen, "option '%s' was refused by libcurl: %s",   \
                     name, curl_easy_strerror(rc_));                          \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* The caller's: one client's options. */
static int apply_user(const settings *s, CURL *easy, char *err, size_t errlen)
{
    SETOPT_USER(CURLOPT_TIMEOUT_MS, s->timeout_ms, "timeout");
    SETOPT_USER(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms, "connect_timeout");
    SETOPT_USER(CURLOPT_USERAGENT, s->user_agent, "user_agent");
    SETOPT_USER(CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L, "insecure");
    SETOPT_USER(CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L, "insecure");
    if (s->ca_file != NULL)
        SETOPT_USER(CURLOPT_CAINFO, s->ca_file, "ca_file");
    if (s->ca_path != NULL)
        SETOPT_USER(CURLOPT_CAPATH, s->ca_path, "ca_path");
    if (s->proxy != NULL)
        SETOPT_USER(CURLOPT_PROXY, s->proxy, "proxy");
    return 0;
}

#undef SETOPT_USER

int settings_apply(const settings *s, CURL *easy, char *err, size_t errlen)
{
    return apply_fixed(easy, err, errlen) != 0 || apply_user(s, easy, err, errlen) != 0
               ? -1
               : 0;
}

void settings_free(settings *s)
{
    free_header_list(s->hdr_auth);
    free_header_list(s->hdr_plain);
    free(s->base_url);
    free(s->ca_file);
    free(s->ca_path);
    free(s->proxy);
    free(s->user_agent);
    memset(s, 0, sizeof *s);
}
