/*
 * common.h - what the C benchmark programs (curl_multi.c, speed_easy.c)
 * share: the request they send, clocks, and an easy handle set up with
 * wemasy's headers and options (csrc/settings.c).
 */
#ifndef WEMASY_BENCH_COMMON_H
#define WEMASY_BENCH_COMMON_H

#include <curl/curl.h>
#include <stddef.h>

#define BODY "{\"order_number\":\"ORD-2025-001\"}"
#define PATH "/services/webshop/v1/orders/detail"

/* A response body, kept only to be counted and thrown away. */
typedef struct {
    char *data;
    size_t len, cap;
} buffer;

/* Wall-clock seconds on the monotonic clock. */
double now(void);

/* This process's CPU time so far (user + system), in seconds. */
double cpu_seconds(void);

/* url = base_url + PATH; -1 if it does not fit in `size` bytes. */
int make_url(char *url, size_t size, const char *base_url);

/* Accept and Content-Type application/json, "Expect:", the Bearer token;
 * NULL if out of memory. */
struct curl_slist *make_headers(const char *token);

/* A new easy handle that POSTs BODY to url with hdrs, keep-alive, no
 * signals, Accept-Encoding whatever libcurl decodes, the body into `body`;
 * NULL if libcurl cannot make one. */
CURL *make_easy(const char *url, struct curl_slist *hdrs, const char *user_agent, buffer *body);

#endif
