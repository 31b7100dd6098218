/*
 * speed_easy.c - the floor of `make bench`: sequential orders/detail POSTs
 * on one reused libcurl easy handle, nothing else around them.
 *
 *   speed_easy <base_url> <token> <calls> [warmup]
 *
 * Headers and options are wemasy's (csrc/transport.c): Accept and
 * Content-Type application/json, "Expect:", the Bearer token,
 * Accept-Encoding whatever libcurl decodes, keep-alive, no signals.  The
 * body goes into a reused buffer and is thrown away; the status comes from
 * CURLINFO_RESPONSE_CODE.  `warmup` calls (default 20) run first, untimed.
 * Prints one line:
 *   calls=N ok=N errors=N seconds=S cpu_us=C
 * and exits 1 if any call failed or answered other than 200.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BODY "{\"order_number\":\"ORD-2025-001\"}"
#define PATH "/services/webshop/v1/orders/detail"

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    buffer *b = ud;
    size_t len = size * n;

    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *grown;

        while (cap < b->len + len)
            cap *= 2;
        if ((grown = realloc(b->data, cap)) == NULL)
            return 0; /* aborts the transfer: counted as an error */
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return len;
}

static long run(CURL *e, buffer *b, long calls)
{
    long i, errors = 0;

    for (i = 0; i < calls; i++) {
        long status = 0;

        b->len = 0; /* the body is discarded */
        if (curl_easy_perform(e) != CURLE_OK ||
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
            status != 200 || b->len == 0)
            errors++;
    }
    return errors;
}

int main(int argc, char **argv)
{
    const char *base_url, *token;
    long calls, warmup, errors, warm_errors;
    char url[1024], *auth;
    struct curl_slist *hdrs = NULL;
    buffer body = {NULL, 0, 0};
    CURL *e;
    double t0, c0, secs, cpu;

    if (argc < 4) {
        fprintf(stderr, "usage: %s base_url token calls [warmup]\n", argv[0]);
        return 2;
    }
    base_url = argv[1];
    token = argv[2];
    calls = atol(argv[3]);
    warmup = argc > 4 ? atol(argv[4]) : 20;
    if (calls < 1 || warmup < 0 || strlen(base_url) + sizeof PATH > sizeof url) {
        fprintf(stderr, "speed_easy: bad arguments\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s%s", base_url, PATH);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    auth = malloc(strlen(token) + 32);
    if (auth == NULL)
        return 2;
    sprintf(auth, "Authorization: Bearer %s", token);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, auth);
    if (hdrs == NULL || (e = curl_easy_init()) == NULL)
        return 2;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(BODY));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "speed_easy-bench");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);

    warm_errors = run(e, &body, warmup);
    t0 = now();
    c0 = cpu_seconds();
    errors = run(e, &body, calls);
    secs = now() - t0;
    cpu = cpu_seconds() - c0;
    printf("calls=%ld ok=%ld errors=%ld seconds=%.4f cpu_us=%.2f\n", calls,
           calls - errors, errors + warm_errors, secs, cpu / (double)calls * 1e6);

    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    free(auth);
    free(body.data);
    curl_global_cleanup();
    return errors + warm_errors > 0 ? 1 : 0;
}
