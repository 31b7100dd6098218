/*
 * retry_fuzz.c - libFuzzer harness for the retry policy's reading of a
 * server's Retry-After (retry_parse_after: delay-seconds or an HTTP-date in
 * RFC 9110's three forms) and the delay it turns into (retry_decide).
 *
 * Input: byte 0 the status class, byte 1 the policy, bytes 2-9 "now" (a
 * time_t), the rest the header value (cut at the first NUL, as the header
 * reader stores it).  A value is -1 or a whole number of seconds in
 * [0, 86400]; a delay is never negative, NaN, or past max_wait.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"
#include "transport.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {429, 503, 502, 504, 500, 200, 404, 302};
    static const double waits[] = {0, 0.5, 30, 2147483};
    retry_policy p;
    retry_outcome o;
    int64_t now64 = 0;
    time_t now;
    char *value;
    double after, delay;
    int tries, decided;

    if (size < 10)
        return 0;
    memcpy(&now64, data + 2, sizeof now64);
    /* Any date from 1970 to about 2500: what a clock may say. */
    now = (time_t)((uint64_t)now64 % 16725225600ULL);
    value = malloc(size - 10 + 1);
    memcpy(value, data + 10, size - 10);
    value[size - 10] = '\0';

    after = retry_parse_after(value, now);
    CHECK(after == -1 || (after >= 0 && after <= 86400));
    CHECK(after == (double)(long)after); /* digits, or a date to the second */

    p.max_retries = data[1] & 7;
    p.base = (data[1] >> 3 & 1) ? 0.5 : 0;
    p.cap = (data[1] >> 4 & 1) ? 8 : 0.01;
    p.max_wait = waits[data[1] >> 5 & 3];
    o.kind = TK_OK;
    o.sent = 1;
    o.status = statuses[data[0] & 7];
    o.retry_after = after;
    for (tries = 1; tries <= 8; tries++) {
        double r = (double)(data[0] >> 3) / 32.0; /* in [0, 1) */

        decided = retry_decide(&p, &o, data[0] >> 7, tries, r, &delay);
        CHECK(decided == 0 || decided == 1);
        CHECK(delay == delay && delay >= 0);
        if (decided) {
            CHECK(tries <= p.max_retries);
            CHECK(delay <= p.max_wait);
            CHECK(o.retry_after < 0 || delay >= o.retry_after);
        } else {
            CHECK(delay == 0);
        }
    }
    free(value);
    return 0;
}
