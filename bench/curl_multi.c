/*
 * curl_multi.c - the reference for `make bench-batch`: the same POSTs that
 * client:batch sends to orders/detail, made by plain C on libcurl's multi
 * interface, with nothing else around them.
 *
 *   curl_multi <base_url> <token> <requests> <in_flight> [warmup]
 *
 * `in_flight` easy handles are made once and reused (a finished handle is
 * removed, refilled and added again), so their connections stay alive in the
 * multi's cache as wemasy's pool does.  Headers and options are wemasy's
 * (transport.c): Accept and Content-Type application/json, "Expect:", the
 * Bearer token, Accept-Encoding whatever libcurl decodes, keep-alive, no
 * signals; bodies go into a per-handle buffer that is then discarded.
 *
 * `warmup` requests (default: in_flight) run first, untimed.  Prints one line:
 *   requests=N ok=N errors=N seconds=S rps=R cpu_us_per_req=C
 * and exits 1 if any request failed or answered other than 200.
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
    CURL *easy;
    char *data;
    size_t len, cap;
} handle;

typedef struct {
    long ok, errors;
} tally;

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
    handle *h = ud;
    size_t len = size * n;

    if (h->len + len > h->cap) {
        size_t cap = h->cap ? h->cap : 16384;
        char *grown;

        while (cap < h->len + len)
            cap *= 2;
        if ((grown = realloc(h->data, cap)) == NULL)
            return 0; /* aborts the transfer: counted as an error */
        h->data = grown;
        h->cap = cap;
    }
    memcpy(h->data + h->len, p, len);
    h->len += len;
    return len;
}

static int setup(handle *h, const char *url, struct curl_slist *hdrs)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        return -1;
    h->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(BODY));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "curl_multi-bench");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)h);
    return 0;
}

/* Runs `total` requests with at most `in_flight` at once. */
static int run(CURLM *multi, handle *hs, int in_flight, long total, tally *t)
{
    long started = 0, done = 0;
    int i, still;

    for (i = 0; i < in_flight && started < total; i++, started++) {
        hs[i].len = 0;
        curl_multi_add_handle(multi, hs[i].easy);
    }
    while (done < total) {
        CURLMsg *msg;
        int queued;

        if (curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK ||
            curl_multi_perform(multi, &still) != CURLM_OK)
            return -1;
        while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
            char *priv = NULL;
            long status = 0;
            handle *h;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            h = (handle *)(void *)priv;
            curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status == 200 && h->len > 0)
                t->ok++;
            else
                t->errors++;
            done++;
            curl_multi_remove_handle(multi, h->easy);
            if (started < total) {
                h->len = 0; /* the body is discarded */
                curl_multi_add_handle(multi, h->easy);
                started++;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *base_url, *token;
    long total, warmup;
    int in_flight, i, rc = 0;
    char url[1024], *auth;
    struct curl_slist *hdrs = NULL;
    handle *hs;
    CURLM *multi;
    tally warm = {0, 0}, t = {0, 0};
    double t0, c0, secs, cpu;

    if (argc < 5) {
        fprintf(stderr, "usage: %s base_url token requests in_flight [warmup]\n", argv[0]);
        return 2;
    }
    base_url = argv[1];
    token = argv[2];
    total = atol(argv[3]);
    in_flight = atoi(argv[4]);
    warmup = argc > 5 ? atol(argv[5]) : in_flight;
    if (total < 1 || in_flight < 1 || in_flight > 1024 || warmup < 0 ||
        strlen(base_url) + sizeof PATH > sizeof url) {
        fprintf(stderr, "curl_multi: bad arguments\n");
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
    multi = curl_multi_init();
    hs = calloc((size_t)in_flight, sizeof *hs);
    if (hdrs == NULL || multi == NULL || hs == NULL)
        return 2;
    for (i = 0; i < in_flight; i++)
        if (setup(&hs[i], url, hdrs) != 0)
            return 2;

    if (warmup > 0 && run(multi, hs, in_flight, warmup, &warm) != 0)
        rc = 1;
    t0 = now();
    c0 = cpu_seconds();
    if (rc == 0 && run(multi, hs, in_flight, total, &t) != 0)
        rc = 1;
    secs = now() - t0;
    cpu = cpu_seconds() - c0;
    printf("requests=%ld ok=%ld errors=%ld seconds=%.4f rps=%.1f cpu_us_per_req=%.1f\n",
           total, t.ok, t.errors + warm.errors, secs, (double)total / secs,
           cpu / (double)total * 1e6);

    for (i = 0; i < in_flight; i++) {
        curl_easy_cleanup(hs[i].easy);
        free(hs[i].data);
    }
    free(hs);
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    free(auth);
    curl_global_cleanup();
    return rc != 0 || t.errors + warm.errors > 0 ? 1 : 0;
}
