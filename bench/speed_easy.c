/*
 * speed_easy.c - the floor of `make bench`: sequential orders/detail POSTs
 * on one reused libcurl easy handle, nothing else around them.
 *
 *   speed_easy <base_url> <token> <calls> [warmup]
 *
 * Headers and options are wemasy's (csrc/settings.c): Accept and
 * Content-Type application/json, "Expect:", the Bearer token,
 * Accept-Encoding whatever libcurl decodes, keep-alive, no signals.  The
 * body goes into a reused buffer and is thrown away; the status comes from
 * CURLINFO_RESPONSE_CODE.  `warmup` calls (default 20) run first, untimed.
 * Prints one line:
 *   calls=N ok=N errors=N seconds=S cpu_us=C
 * and exits 1 if any call failed or answered other than 200.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

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
    char url[1024];
    struct curl_slist *hdrs;
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
    if (calls < 1 || warmup < 0 || make_url(url, sizeof url, base_url) != 0) {
        fprintf(stderr, "speed_easy: bad arguments\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    if ((hdrs = make_headers(token)) == NULL ||
        (e = make_easy(url, hdrs, "speed_easy-bench", &body)) == NULL)
        return 2;

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
    free(body.data);
    curl_global_cleanup();
    return errors + warm_errors > 0 ? 1 : 0;
}
