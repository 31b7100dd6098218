/*
 * options.h - every option of wemasy.new and of client:batch, one row each.
 *
 * An X-macro list (as Lua-cURLv3's lcopteasy.h): define OPTION and
 * BATCH_OPTION, include this file, and each row expands as you need.
 * options.c expands the rows into the names core.new accepts, the readers
 * (the kind decides the checks and the words of every error), the defaults
 * and core.options / core.batch_options, which tools/gen.lua, the fuzz
 * driver and the specs (README's options table among them) read.  Adding
 * an option is one row here plus its C use (a field and what reads it).
 *
 * OPTION(parent, name, kind, field, default, min, max, type, text, doc)
 *   parent   TOP, or the table it sits in: RATE_LIMIT, BACKOFF, BREAKER, or GROUP
 *            (rate_limit.groups.<name>.*, read by read_group)
 *   kind     the reader (options.c): URL, HEADER (no control bytes),
 *            STRING (non-empty), ANY_STRING ("" allowed), MILLIS (seconds
 *            > min, kept as milliseconds), SECONDS (>= min), POSITIVE_SECONDS
 *            (> min), SHARE (a fraction in (min, max]), INTEGER, BYTES (> 0),
 *            BOOLEAN, CHOICE (one of the quoted words of `type`, kept as its
 *            index), FUNCTION, TABLE (of the rows under it), RATE_LIMIT or
 *            BREAKER (false or a TABLE), GROUPS, or
 *            LUA (read by the Lua layer; core.new does not know it)
 *   field    where core.new keeps it (in client_options); `_` for none
 *   default  a number (0/1 for booleans, the index of a CHOICE); strings
 *            are given in `text`
 *   min, max the range, for the kinds that have one
 *   type     its Lua type, for the generated docs and annotations
 *   text     the default in words when it is not the number (NULL: the
 *            number): README's options table says exactly this; a URL's
 *            text is its default value
 *   doc      one line
 *
 * The order is the reading order: the first wrong option is the one named.
 */
#ifndef OPTION
#define OPTION(parent, name, kind, field, dflt, min, max, type, text, doc)
#endif
#ifndef BATCH_OPTION
#define BATCH_OPTION(name, kind, dflt, min, max, type, doc)
#endif

OPTION(TOP, token, HEADER, transport.token, 0, 0, 0, "string", "none",
       "Bearer token; Public endpoints work without one. Never printed or logged.")
/* wemasy.new's default: core.new has none (specs point it at their servers). */
OPTION(TOP, base_url, URL, transport.base_url, 0, 0, 0, "string", "https://api.wemasy.nl/api",
       "http(s) URL; no query, fragment or user info")
/* Read again by base_url's reader, which needs it first. */
OPTION(TOP, allow_http, BOOLEAN, allow_http, 0, 0, 0, "boolean", NULL,
       "allow plain http:// to a host other than this machine")
OPTION(TOP, timeout, MILLIS, transport.timeout_ms, 30, 0, MAX_SECONDS, "number", NULL,
       "total seconds per request")
OPTION(TOP, connect_timeout, MILLIS, transport.connect_timeout_ms, 10, 0, MAX_SECONDS, "number", NULL,
       "seconds to connect, TCP + TLS")
OPTION(TOP, ca_file, STRING, transport.ca_file, 0, 0, 0, "string", "system store",
       "CA bundle for TLS verification")
OPTION(TOP, ca_path, STRING, transport.ca_path, 0, 0, 0, "string", "system store",
       "CA directory for TLS verification")
OPTION(TOP, insecure, BOOLEAN, transport.insecure, 0, 0, 0, "boolean", NULL,
       "turns TLS verification off")
/* "" is meaningful to libcurl: no proxy, ignore the environment. */
OPTION(TOP, proxy, ANY_STRING, transport.proxy, 0, 0, 0, "string", "none",
       "proxy URL (without it libcurl honours https_proxy etc.; \"\": no proxy at all)")
OPTION(TOP, max_body, BYTES, transport.max_body, 16 * MiB, 0, MAX_BODY_LIMIT, "integer", NULL,
       "largest response body accepted, bytes")
/* Requests to this API are an order number or a few ids: 4 MiB is far
 * beyond any of them, and under what PHP (post_max_size 8M) accepts.  The
 * bound: lua-cjson 2.1 sizes the buffer for a string as an int of 6 times
 * its length, so past ~341 MiB the encoder crashes; every string the Lua
 * side hands it is within this bound, so well below. */
OPTION(TOP, max_request_body, BYTES, max_request_body, 4 * MiB, 0, 256 * MiB, "integer", NULL,
       "largest request body sent (its JSON text), bytes")
OPTION(TOP, user_agent, HEADER, transport.user_agent, 0, 0, 0, "string",
       "`wemasy-lua/<version> libcurl/<version>`", "User-Agent header")

OPTION(TOP, rate_limit, RATE_LIMIT, rate.on, 1, 0, 0, "wemasy.RateLimitOptions|false", "on, shared",
       "the client-side limiter; false turns it off")
OPTION(RATE_LIMIT, wait, BOOLEAN, rate.wait, 1, 0, 0, "boolean", NULL,
       "wait for a slot; false fails fast with rate_limited")
/* The default rides out any group's window (sync: 5 a minute), so a script
 * that waits never fails for want of patience; -1 until options_read knows
 * the groups and the margin.  Request handlers set their own, short. */
OPTION(RATE_LIMIT, max_wait, SECONDS, rate.max_wait, -1, 0, MAX_SECONDS, "number",
       "the longest group window + margin", "seconds; a longer wait (for a slot or a retry) fails fast")
OPTION(RATE_LIMIT, shared, BOOLEAN, rate.shared, 1, 0, 0, "boolean", NULL,
       "share the quota with every process on this host and token")
/* Checked when the store opens (core.c, limiter_redis.c): a URL's errors
 * never quote it, since it may hold a password. */
OPTION(RATE_LIMIT, store, STRING, store, 0, 0, 0, "string", "`\"shm\"`",
       "\"shm\" (this host), \"local\" (this client) or redis://[:password@]host:port[/db] (every host)")
/* A healthy Redis answers in well under a millisecond on a LAN; 0.1 s is two
 * orders above that, yet what a storefront request can afford to lose a few
 * times before the breaker stops asking (README "Rate limiting"). */
OPTION(RATE_LIMIT, store_timeout, POSITIVE_SECONDS, store_timeout, 0.1, 0, 10, "number", NULL,
       "seconds for Redis to connect and to answer each call; then the host's shm store serves")
/* Four hosts at a quarter each stay within the quota while Redis is away;
 * more hosts lean on the server's 429 and Retry-After, which each host learns. */
OPTION(RATE_LIMIT, fallback_share, SHARE, fallback_share, 0.25, 0, 1, "number", NULL,
       "of each group's quota a host takes from its shm store while Redis is unreachable, (0, 1]")
OPTION(RATE_LIMIT, margin, SECONDS, rate.margin, 0.25, 0, MAX_SECONDS, "number", NULL,
       "seconds added to every window for network delay")
/* A cron job that saturates the quota still leaves the storefront a slot. */
OPTION(RATE_LIMIT, priority, CHOICE, rate.priority, RATE_INTERACTIVE, 0, 0,
       "\"interactive\"|\"background\"", NULL,
       "background: never take the last `reserve` slots of a window")
OPTION(RATE_LIMIT, reserve, INTEGER, rate.reserve, 0, 0, LIMITER_RING - 1, "integer", NULL,
       "slots of each window a background client leaves free (it keeps at least one)")
/* The quotas themselves are the endpoint table's (lua/wemasy/endpoints.lua). */
OPTION(RATE_LIMIT, groups, GROUPS, _, 0, 0, 0, "table<string, { limit: integer, window: number }>",
       "the endpoint table's", "overrides of the group quotas, per field")
OPTION(GROUP, limit, INTEGER, _, 0, 1, LIMITER_RING, "integer", "the endpoint table's",
       "requests per window")
OPTION(GROUP, window, POSITIVE_SECONDS, _, 0, 0, MAX_SECONDS, "number", "the endpoint table's",
       "the window, seconds")

OPTION(TOP, max_retries, INTEGER, retry.max_retries, 2, 0, 100, "integer", NULL,
       "retries after a failure that is safe to retry")
OPTION(TOP, backoff, TABLE, _, 0, 0, 0, "{ base: number, cap: number }", NULL,
       "full-jitter backoff, seconds")
OPTION(BACKOFF, base, SECONDS, retry.base, 0.5, 0, MAX_SECONDS, "number", NULL,
       "the first retry's longest delay, seconds")
OPTION(BACKOFF, cap, SECONDS, retry.cap, 8, 0, MAX_SECONDS, "number", NULL,
       "the longest delay of any retry, seconds")

/* Per try, so a dead API opens it within two calls (3 tries each by
 * default), while one call's bad luck (a reset, a 502 from a deploy) and its
 * retries do not; 10 s gives a restarting server room and still notices the
 * recovery within seconds.  README "Circuit breaker" says more. */
OPTION(TOP, breaker, BREAKER, breaker.on, 1, 0, 0, "wemasy.BreakerOptions|false", "on, shared",
       "the circuit breaker, kept with the limiter's state; false turns it off")
OPTION(BREAKER, failures, INTEGER, breaker.failures, 5, 1, BREAKER_FAILURES_MAX, "integer", NULL,
       "failed tries in a row (timeout, network error, 5xx) that open it")
OPTION(BREAKER, cooldown, POSITIVE_SECONDS, breaker.cooldown, 10, 0, MAX_SECONDS, "number", NULL,
       "seconds it stays open before one probe may go")

OPTION(TOP, clock, FUNCTION, clock_idx, 0, 0, 0, "fun(): number", "built in",
       "injected clock, seconds (makes the limiter in-process)")
OPTION(TOP, sleep, FUNCTION, sleep_idx, 0, 0, 0, "fun(seconds: number)", "built in",
       "injected sleep")
OPTION(TOP, random, FUNCTION, random_idx, 0, 0, 0, "fun(): number", "built in",
       "injected random source, [0, 1)")

/* Read by the Lua layer (wemasy.hooks); core.new refuses them. */
OPTION(TOP, hooks, LUA, _, 0, 0, 0, "wemasy.Hooks", "none",
       "on_request / on_response observers (no token in their info)")
OPTION(TOP, debug, LUA, _, 0, 0, 0, "boolean|fun(line: string)", "false",
       "one log line per call: true for stderr, or a function")
OPTION(TOP, interruptible, BOOLEAN, transport.interruptible, 1, 0, 0, "boolean", NULL,
       "Ctrl-C (SIGINT) stops a call that waits or transfers")

/* client:batch(calls, opts).  The most is what one multi pool runs. */
BATCH_OPTION(concurrency, INTEGER, 8, 1, MULTI_MAX, "integer", "calls in flight at most")
BATCH_OPTION(progress, LUA, 0, 0, 0, "fun(done: integer, total: integer)",
             "called as calls finish")

#undef OPTION
#undef BATCH_OPTION
