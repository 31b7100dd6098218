/*
 * client.h - the client userdata and what the binding's files share:
 * core.c (module and methods), options.c (core.new's options), inject.c
 * (clock, sleep, random), call.c (the steps of a call: limiter, learn,
 * retry, outcomes) and its two loops, request.c (one call) and batch.c
 * (many calls on a multi handle).
 */
#ifndef WEMASY_CLIENT_H
#define WEMASY_CLIENT_H

#include <stdint.h>

#include "compat.h"
#include "limiter.h"
#include "multi.h"
#include "retry.h"
#include "tests.h"
#include "transport.h"

#define CLIENT_MT "wemasy.core.client"
/* What core.new's errors start with (options.c, core.c). */
#define NEW_PREFIX "wemasy.core.new: "

/* The Makefile and the rockspec define it (the rockspec's value). */
#ifndef WEMASY_VERSION
#define WEMASY_VERSION "0.0.0-dev"
#endif

/* Failure kinds beyond the transport's. */
enum {
    KIND_RATE_LIMITED = TK_INTERRUPTED + 1, /* our own limiter refused */
    KIND_INVALID,                           /* a malformed batch item */
    KIND_UNAUTHENTICATED,                   /* not sent: the batch had a 401 */
    KIND_FORBIDDEN,                         /* not sent: its endpoint had a 403 */
    KIND_CIRCUIT_OPEN                       /* not sent: the breaker is open */
};

/* rate_limit.priority: the index of its word in options.h's row. */
enum { RATE_INTERACTIVE, RATE_BACKGROUND };

typedef struct {
    int on;          /* 0: rate_limit = false */
    int wait;        /* wait for a slot, or fail fast */
    int shared;      /* shared memory, or this client's own memory */
    double max_wait; /* longest wait for a slot or a retry, seconds */
    double margin;   /* network-delay safety margin, seconds */
    int priority;    /* RATE_INTERACTIVE or RATE_BACKGROUND */
    int reserve;     /* what a background client leaves free (groups[].reserve) */
    size_t ngroups;  /* groups[0] is always "default" */
    size_t nknown;   /* the first ones, configured: the endpoint table's
                        and rate_limit.groups' (client:groups()) */
    limiter_group groups[LIMITER_GROUPS_MAX];
} rate_config;

typedef struct {
    transport *t;           /* NULL once closed */
    multi_pool *pool;       /* NULL until the first batch */
    limiter_store *limiter; /* NULL when limiting is off or closed */
    rate_config rate;
    retry_policy retry;
    breaker_config breaker;
    /* The breaker when the limiter's store keeps none (rate_limit = false). */
    breaker_state own_breaker;
    double probe_lease; /* seconds a probe may take: its slot wait and its try */
    size_t max_request_body; /* the longest body a call may send */
    /* Registry references to the caller's hooks; LUA_NOREF: built in. */
    int clock_ref;
    int sleep_ref;
    int random_ref;
    uint64_t rng; /* state of the built-in random */
    /* An injected clock that stands still while the sleep hook "sleeps"
     * would make every wait loop spin forever (inject.c). */
    double clock_seen;  /* the clock hook's last reading */
    double clock_stall; /* seconds slept since it last changed */
    int insecure;
    int interruptible; /* calls stop at a SIGINT (interrupt.h) */
    /* The SIGINT watch of the call in progress (NULL between calls), for
     * the waits and the retry loop to look at. */
    const interrupt_scope *interrupt;
    /* A call in progress reads buffers the client owns, and runs Lua (hooks,
     * progress) meanwhile; that Lua may use the client again.  in_request
     * and in_batch refuse a second call of the same kind, and a close() that
     * comes meanwhile only sets `closing`: the call ends first, then frees. */
    int in_request;
    int in_batch;
    int closing;
    TESTS_CLIENT_FIELDS /* the test build's counters (tests.h) */
    /* What a limiter refusal with wait on says, max_wait included. */
    char refusal[96];
    /* Copied in so tostring still works after close. */
    char base_url[];
} client;

/* What one call came to, for request.c and batch.c to turn into Lua. */
typedef struct {
    int kind;               /* transport_kind or KIND_* */
    transport_result r;     /* the last try's result, when one was made */
    const transfer *tr;     /* headers of r when kind == TK_OK */
    const char *message;    /* kind != TK_OK */
    int sent;
    int attempts;           /* tries actually made */
    int probe;              /* the try admitted is the breaker's probe */
    double admitted_at;     /* when the breaker admitted it */
    double breaker_wait;    /* > 0: the last try left the breaker open */
    double retry_after;     /* < 0: none; the server's Retry-After when kind == TK_OK */
    int limit, remaining;   /* X-RateLimit-* when kind == TK_OK, < 0: none */
} call_outcome;

/* One call's arguments, checked by the caller. */
typedef struct {
    const char *path;
    const char *body;
    size_t body_len;
    int with_auth;
    int idempotent;
    const limiter_group *group;
} call_args;

/* ---- options.c: the rows of options.h, read and exported ---- */
typedef struct {
    transport_config transport;
    rate_config rate;
    retry_policy retry;
    breaker_config breaker;
    size_t max_request_body;
    int allow_http; /* plain http:// to another host (base_url's check) */
    const char *store;     /* rate_limit.store; NULL: "shm" */
    double store_timeout;  /* Redis's, seconds */
    double fallback_share; /* of each quota while Redis is away */
    int clock_idx, sleep_idx, random_idx; /* stack slots of hooks, 0: none */
} client_options;

/* Reads and checks core.new's table at index 1, raising on any problem.
 * Strings stay valid while the values it pushes stay on the stack. */
void options_read(lua_State *L, client_options *o);

/* Pushes core.options (wemasy.new's) or core.batch_options (client:batch's):
 * each a list of rows { name, kind, type, doc, default, default_text, ... },
 * also keyed by name. */
void options_push(lua_State *L);
void options_push_batch(lua_State *L);

/* The batch concurrency at stack index arg (nil: the default), raising
 * luaL_argerror when it is out of range. */
int options_batch_concurrency(lua_State *L, int arg);

/* ---- inject.c: each returns LUA_OK, or an error status with the error
 * value on the stack top (the caller cleans up, then raises it). ---- */
void inject_seed(client *c);
int inject_now(lua_State *L, client *c, double *now);
int inject_sleep(lua_State *L, client *c, double seconds);
int inject_random(lua_State *L, client *c, double *r);

/* ---- call.c: the steps of a call, for the loops of request.c and batch.c ---- */

/* What a call fails with when the client is closed, when the limiter's
 * store has no room for its group, and the name rules of a group. */
#define CALL_CLOSED "client is closed"
#define CALL_LIMITER_FULL "rate limiter: no room for another group"
#define CALL_CIRCUIT_OPEN "circuit breaker open: the last tries to this API failed " \
    "(timeouts, network errors or 5xx), so calls fail at once until a probe gets an answer"
#define CALL_STR_(x) #x
#define CALL_STR(x) CALL_STR_(x)
#define CALL_GROUP_NAME_RULE "must be a name of 1 to " CALL_STR(LIMITER_NAME_MAX) " characters"
#define CALL_GROUPS_FULL "no room for another limiter group (" CALL_STR(LIMITER_GROUPS_MAX) " at most)"

/* A call that has made no try yet: nothing sent, no headers read. */
void call_begin(call_outcome *o);

/* Ends *o as `kind` without an answer of its own: nothing sent by it. */
void call_fail(call_outcome *o, int kind, const char *message, double retry_after);

/* Whether c is closed or closing; if so, *o says so. */
int call_closed(const client *c, call_outcome *o);

/* Whether a SIGINT came during the call; if so, *o says so (its `sent` is
 * the last try's: an earlier try may have reached the server). */
int call_interrupted(const client *c, call_outcome *o);

/* Whether a call that has its slot may still send: not when the client was
 * closed or a SIGINT came meanwhile (then *o says which). */
int call_may_try(const client *c, call_outcome *o);

/* Records a finished try's result (and its transfer, for the headers). */
void call_record(call_outcome *o, const transport_result *r, const transfer *tr);

/* Starts (and ends) the SIGINT watch of a call on c; nested calls (a hook
 * using another client) keep the outer one's. */
void call_watch(client *c, interrupt_scope *s, const interrupt_scope **saved);
interrupt_end call_unwatch(client *c, interrupt_scope *s,
                           const interrupt_scope *saved);

/* Whether name (len bytes) may name a limiter group: 1 to LIMITER_NAME_MAX
 * characters, no NUL. */
int call_group_name_ok(const char *name, size_t len);

/* The group called `name` (NULL: "default"), added with default's limits
 * on first use; NULL when the table is full. */
const limiter_group *call_group(client *c, const char *name);

/* Asks the limiter for a slot at `now`.  Returns 0 (slot taken or no
 * limiter), the seconds to wait (> 0), or LIMITER_FAILED (< 0: *o says so). */
double call_acquire(client *c, const limiter_group *g, double now, call_outcome *o);

/* Whether a call waiting for a slot since `since` may wait `wait` more
 * seconds at `now` (wait on, within max_wait); if not, *o is the refusal. */
int call_may_wait(const client *c, call_outcome *o, double since, double now,
                  double wait);

/* Asks the breaker whether a try may go at `now`: 1 (o->probe says whether
 * it is the probe), or 0 and *o is circuit_open (retry_after: seconds until
 * a probe may go; `sent` stays an earlier try's). */
int call_admit(client *c, double now, call_outcome *o);

/* The try call_admit let go is not made after all (no slot, closed, SIGINT):
 * a probe is handed back, so the next try probes. */
void call_unadmit(client *c, call_outcome *o);

/* Whether a try that ended in *o needs the clock for call_learn. */
int call_learns(const client *c, const call_outcome *o);

/* Reads a finished try's quota headers (o->r, o->tr) into o->retry_after,
 * o->limit and o->remaining, and teaches the limiter (if one is on) and
 * the breaker what the try came to. */
void call_learn(client *c, const limiter_group *g, double now, call_outcome *o);

/* After a try recorded in *o: 1 and the delay before the next try when the
 * retry policy wants one, else 0 (*status says whether a hook failed). */
int call_want_retry(lua_State *L, client *c, const call_outcome *o,
                    int idempotent, double *delay, int *status);

/* ---- request.c: one call, sleeping while it waits ---- */

/* The name of a failure kind. */
const char *client_kind_name(int kind);

/* Pushes the list of failure kinds' names (core.kinds), in enum order. */
void client_push_kinds(lua_State *L);

/* One call with limiter and retries; fills *o.  LUA_OK or a hook's error. */
int request_call(lua_State *L, client *c, const call_args *a, call_outcome *o);

/* ---- batch.c: many calls on the multi pool ---- */
int client_batch(lua_State *L);

/* ---- json.c ---- */
void json_push_decoder(lua_State *L); /* pushes core.json_decode(text) */

/* ---- core.c ---- */
client *client_check(lua_State *L, int idx);
/* Frees what a close() asked for while a call was running (see `closing`). */
void client_close_pending(lua_State *L, client *c);
/* In a child of fork(): lets go of the parent's connections (transport and
 * batch pool) without touching them; a no-op otherwise. */
void client_after_fork(client *c);
void client_push_headers(lua_State *L, const transfer *tr);
int client_push_outcome(lua_State *L, const call_outcome *o);
int client_check_path(const char *path, size_t len, const char **why);
int client_raise_interrupted(lua_State *L); /* raises "interrupted!" */

#endif /* WEMASY_CLIENT_H */
