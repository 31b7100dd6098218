/*
 * retry.c - which failures are worth another try.
 *
 * A request that certainly never left (resolve, connect) is always safe to
 * send again.  One that may have reached the server is sent again only when
 * the endpoint is idempotent.  A 429 was refused by the server, so nothing
 * happened there: it is retried after its Retry-After.  Anything the server
 * answered with a definite verdict (400/401/403/404/422, other statuses) and
 * anything a retry cannot fix (TLS, too large, closed) is final.
 */
#include "retry.h"

#include <string.h>

#include "transport.h"

/* Full jitter: uniformly anywhere up to the exponential ceiling. */
static double backoff(const retry_policy *p, int tries, double random01)
{
    double ceiling = p->base;
    int i;

    for (i = 1; i < tries && ceiling < p->cap; i++)
        ceiling *= 2;
    if (ceiling > p->cap)
        ceiling = p->cap;
    return random01 * ceiling;
}

static int transient_status(long status)
{
    return status == 502 || status == 503 || status == 504;
}

/* Whether the outcome is retryable at all, ignoring how often and how long. */
static int retryable(const retry_outcome *o, int idempotent)
{
    switch ((transport_kind)o->kind) {
    case TK_OK:
        return o->status == 429 || (idempotent && transient_status(o->status));
    case TK_NETWORK:
    case TK_TIMEOUT:
        return !o->sent || idempotent;
    default:
        return 0; /* TLS, too large, closed, internal */
    }
}

int retry_decide(const retry_policy *p, const retry_outcome *o, int idempotent,
                 int tries, double random01, double *delay)
{
    double wait;

    *delay = 0;
    if (tries > p->max_retries || !retryable(o, idempotent))
        return 0;
    wait = backoff(p, tries, random01);
    /* The server said when; coming back sooner only earns another 429. */
    if (o->kind == TK_OK && o->retry_after > wait)
        wait = o->retry_after;
    if (wait > p->max_wait)
        return 0;
    *delay = wait;
    return 1;
}

/* ---- Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date ---- */

static const char *const day_short[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Takes one of names (case-sensitive, as the grammar says) at *p. */
static int take_name(const char **p, const char *const *names, int count)
{
    int i;

    for (i = 0; i < count; i++) {
        size_t n = strlen(names[i]);

        if (strncmp(*p, names[i], n) == 0) {
            *p += n;
            return i;
        }
    }
    return -1;
}

static int take_char(const char **p, char c)
{
    if (**p != c)
        return 0;
    (*p)++;
    return 1;
}

/* Exactly n digits. */
static int take_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (; n > 0; n--, (*p)++) {
        if (**p < '0' || **p > '9')
            return 0;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 1;
}

/* time-of-day = hour ":" minute ":" second, as seconds into the day. */
static int take_time(const char **p, long *out)
{
    int h, m, s;

    if (!take_digits(p, 2, &h) || !take_char(p, ':') || !take_digits(p, 2, &m) ||
        !take_char(p, ':') || !take_digits(p, 2, &s) || h > 23 || m > 59 || s > 60)
        return 0;
    *out = (long)h * 3600 + m * 60 + s;
    return 1;
}

static int leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int month, long year)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return month == 1 && leap(year) ? 29 : days[month];
}

/* Days from 1970-01-01 to year-month-day (month 0-11), proleptic Gregorian:
 * whole 400-year eras of 146097 days, the years and months before it. */
static long days_since_epoch(long year, int month, int day)
{
    static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    long y = year - 1, days;

    days = y * 365 + y / 4 - y / 100 + y / 400; /* to the start of `year`, from 0001 */
    days += before[month] + (month > 1 && leap(year)) + day - 1;
    return days - 719162; /* 0001-01-01 to 1970-01-01 */
}

/* The most recent year ending in yy that is not more than 50 years after
 * now's (RFC 9110 5.6.7, for rfc850-date's two digits). */
static long full_year(int yy, time_t now)
{
    struct tm tm;
    long this_year, year;

    if (gmtime_r(&now, &tm) == NULL)
        return 1900 + yy;
    this_year = 1900L + tm.tm_year;
    year = this_year - this_year % 100 + yy;
    return year > this_year + 50 ? year - 100 : year;
}

/* A date as parsed: day 1-31, month 0-11, the full year, seconds into the day. */
typedef struct {
    int day, month;
    long year, secs;
} http_date;

static int gmt_at(const char *p, const char *end)
{
    return end - p == 4 && memcmp(p, " GMT", 4) == 0;
}

/* The two forms after the weekday: " DD<sep>Mon<sep>YEAR HH:MM:SS GMT",
 * the year of `digits` digits (not yet a full year). */
static int parse_day_month_year(const char *p, const char *end, char sep, int digits, int *year,
                                http_date *d)
{
    return take_char(&p, ' ') && take_digits(&p, 2, &d->day) && take_char(&p, sep) &&
           (d->month = take_name(&p, months, 12)) >= 0 && take_char(&p, sep) &&
           take_digits(&p, digits, year) && take_char(&p, ' ') && take_time(&p, &d->secs) &&
           gmt_at(p, end);
}

/* IMF-fixdate after "Sun,": " 06 Nov 1994 08:49:37 GMT" */
static int parse_imf(const char *p, const char *end, http_date *d)
{
    int year;

    if (!parse_day_month_year(p, end, ' ', 4, &year, d))
        return 0;
    d->year = year;
    return 1;
}

/* rfc850-date after "Sunday,": " 06-Nov-94 08:49:37 GMT" */
static int parse_rfc850(const char *p, const char *end, time_t now, http_date *d)
{
    int yy;

    if (!parse_day_month_year(p, end, '-', 2, &yy, d))
        return 0;
    d->year = full_year(yy, now);
    return 1;
}

/* asctime-date after "Sun": " Nov  6 08:49:37 1994" (the day 2DIGIT or SP DIGIT) */
static int parse_asctime(const char *p, const char *end, http_date *d)
{
    int year;

    if (!take_char(&p, ' ') || (d->month = take_name(&p, months, 12)) < 0 ||
        !take_char(&p, ' ') ||
        !(take_char(&p, ' ') ? take_digits(&p, 1, &d->day) : take_digits(&p, 2, &d->day)) ||
        !take_char(&p, ' ') || !take_time(&p, &d->secs) || !take_char(&p, ' ') ||
        !take_digits(&p, 4, &year) || p != end)
        return 0;
    d->year = year;
    return 1;
}

/*
 * HTTP-date in its three forms, nothing else (curl_getdate would also take
 * time zones, ISO dates and more), as seconds from now.  The text ends at
 * `end` (what follows is OWS: never a digit or a name).  The day name is not
 * checked against the date (RFC 9110 does not ask it).
 */
static int parse_http_date(const char *p, const char *end, time_t now, double *out)
{
    http_date d;
    int ok;

    if (take_name(&p, day_long, 7) >= 0)
        ok = take_char(&p, ',') && parse_rfc850(p, end, now, &d);
    else if (take_name(&p, day_short, 7) >= 0)
        ok = take_char(&p, ',') ? parse_imf(p, end, &d) : parse_asctime(p, end, &d);
    else
        ok = 0;
    if (!ok || d.day < 1 || d.day > days_in(d.month, d.year))
        return 0;
    *out = (double)days_since_epoch(d.year, d.month, d.day) * 86400 + (double)d.secs -
           (double)now;
    return 1;
}

/* delay-seconds = 1*DIGIT, saturating: a longer wait is capped anyway. */
static int parse_delay(const char *p, const char *end, double *out)
{
    double seconds = 0;

    if (p == end)
        return 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        if (seconds <= RETRY_AFTER_MAX)
            seconds = seconds * 10 + (*p - '0');
    }
    *out = seconds;
    return 1;
}

double retry_parse_after(const char *value, time_t now)
{
    const char *end = value + strlen(value);
    double seconds;

    /* OWS around a field value is not part of it. */
    while (*value == ' ' || *value == '\t')
        value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!parse_delay(value, end, &seconds) && !parse_http_date(value, end, now, &seconds))
        return -1;
    if (seconds < 0)
        return 0; /* a date in the past: now */
    return seconds < RETRY_AFTER_MAX ? seconds : RETRY_AFTER_MAX;
}
