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
 * (csrc/settings.c): Accept and Content-Type application/json, "Expect:", the
 * Bearer token, Accept-Encoding whatever libcurl decodes, keep-alive, no
 * signals; bodies go into a per-handle buffer that is then discarded.
 *
 * `warmup` requests (default: in_flight) run first, untimed.  Prints one line:
 *   requests=N ok=N errors=N seconds=S rps=R cpu_us_per_req=C
 * and exits 1 if any request failed or answered other than 200.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    CURL *easy;
    buffer body;
} handle;

typedef struct {
    long ok, errors;
} tally;

static int setup(handle *h, const char *url, struct curl_slist *hdrs)
{
    if ((h->easy = make_easy(url, hdrs, "curl_multi-bench", &h->body)) == NULL)
        return -1;
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (void *)h);
    return 0;
}

/* Runs `total` requests with at most `in_flight` at once. */
static int run(CURLM *multi, handle *hs, int in_flight, long total, tally *t)
{
    long started = 0, done = 0;
    int i, still;

    for (i = 0; i < in_flight && started < total; i++, started++) {
        hs[i].body.len = 0;
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
            if (msg->data.result == CURLE_OK && status == 200 && h->body.len > 0)
                t->ok++;
            else
                t->errors++;
            done++;
            curl_multi_remove_handle(multi, h->easy);
            if (started < total) {
                h->body.len = 0; /* the body is discarded */
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
    char url[1024];
    struct curl_slist *hdrs;
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
        make_url(url, sizeof url, base_url) != 0) {
        fprintf(stderr, "curl_multi: bad arguments\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    hdrs = make_headers(token);
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
        free(hs[i].body.data);
    }
    free(hs);
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    return rc != 0 || t.errors + warm.errors > 0 ? 1 : 0;
}
