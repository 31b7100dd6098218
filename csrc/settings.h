/*
 * settings.h - what every handle of one client is configured with: our
 * fixed choices, the caller's transport_config (copied), and the two header
 * lists its requests send (without and with Authorization).  Plain C.
 * transport.c adds its callbacks to each handle.
 *
 * The token lives only in hdr_auth's line, and is wiped when it is freed.
 */
#ifndef WEMASY_SETTINGS_H
#define WEMASY_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>

#include "transport.h"

typedef struct {
    struct curl_slist *hdr_plain;
    struct curl_slist *hdr_auth; /* NULL when no token was configured */
    char *base_url;
    size_t base_len;
    size_t max_body;
    long timeout_ms;
    long connect_timeout_ms;
    int insecure;
    char *ca_file;
    char *ca_path;
    char *proxy;
    char *user_agent;
    int interruptible;
} settings;

/* Sets option opt of a new handle to val, in a function that has `char
 * *err, size_t errlen` and returns -1 on failure (writing which option it
 * was to err). */
#define SETTINGS_SET(easy, opt, val)                                          \
    do {                                                                      \
        CURLcode rc_ = curl_easy_setopt(easy, opt, val);                      \
        if (rc_ != CURLE_OK) {                                                \
            snprintf(err, errlen, "cannot set " #opt ": %s",                  \
                     curl_easy_strerror(rc_));                                \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* Copies cfg into s, which must be all zero.  Returns -1 when out of
 * memory; settings_free(s) is needed either way. */
int settings_copy(settings *s, const transport_config *cfg);

/* Sets our choices and the caller's settings on a new handle (libcurl
 * copies the strings).  Returns -1 with a message: a caller's value libcurl
 * refused is named by the caller's option. */
int settings_apply(const settings *s, CURL *easy, char *err, size_t errlen);

/* Frees everything, the token's header line wiped first.  Every handle
 * that uses the header lists must be gone. */
void settings_free(settings *s);

#endif /* WEMASY_SETTINGS_H */
