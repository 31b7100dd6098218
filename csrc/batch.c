/*
 * batch.c - client:batch(items, concurrency, progress, on_result): many
 * calls at once on one curl multi handle, each through the steps of
 * client:request (call.c: limiter, learn, retry).
 *
 * Each result goes to on_result(index, ...) the moment its transfer ends, as
 * the values client:request returns: the Lua layer decodes a body while the
 * other transfers are still in flight, rather than all of them after the
 * last one, when the server has nothing left to do.
 *
 * One loop: start what may start (concurrency and limiter permitting), then
 * wait for network activity no longer than until the next item may start,
 * then collect finished transfers (retry them later, or record the result).
 * While anything is in flight the loop never sleeps; it polls.
 *
 * What the server refused is not sent again: after a 401 no item that needs
 * the token starts (the token is wrong for all of them; items of Public
 * endpoints, `public = true`, go on), after a 403 no item of that path.
 * They end as unauthenticated / forbidden with the attempts they had.
 *
 * Every C allocation is owned elsewhere (the items by a userdata on the
 * stack, the handles by the client), and Lua hooks run under pcall: when a
 * hook or the progress callback raises, the transfers are aborted first and
 * the error re-raised, leaving the client usable.
 */
#include <math.h> /* HUGE_VAL only: the module does not link libm */
#include <string.h>

#include "client.h"

/* Poll at least this often, so a fake clock or a closed group is rechecked. */
#define POLL_MAX_MS 1000
/* Paths whose 403 stops their other items; beyond this many, items of
 * further forbidden paths are sent and get their own 403. */
#define FORBIDDEN_MAX 16

/*
 * Where a queued item waits.  Nothing is ever found by scanning the items
 * (that made a batch O(N^2)): fresh items are taken in input order from a
 * cursor, items that wait for their group's next slot sit in that group's
 * FIFO (only its head asks the limiter), and items backing off before a
 * retry sit in a min-heap by the time they may go again.
 */
typedef enum {
    ITEM_QUEUED = 0, /* not reached yet: at or after b->next_fresh */
    ITEM_WAITING,    /* in its group's FIFO */
    ITEM_BACKOFF,    /* in the retry heap */
    ITEM_RUNNING,
    ITEM_DONE
} item_state;

typedef struct {
    call_args args;
    item_state state;
    call_outcome out;   /* tries and the last outcome so far */
    double ready_at;    /* ITEM_BACKOFF: may not start before this */
    double wait_since;  /* ITEM_WAITING: since when */
    int next;           /* ITEM_WAITING: the next item in the FIFO, or -1 */
    int public_ep;      /* a Public endpoint: a 401 does not stop it */
} batch_item;

/* The items waiting for one limiter group's next slot, oldest first. */
typedef struct {
    int head, tail;     /* -1 when empty */
    double until;       /* the group gives no slot before this */
} group_queue;

typedef struct {
    lua_State *L;
    client *c;
    batch_item *items;
    int total;
    int done;
    int concurrency;
    int progress;  /* stack index of the progress function, 0: none */
    int on_result; /* stack index of the on_result function */
    int next_fresh;            /* the first item never looked at */
    int *heap;                 /* ITEM_BACKOFF items, by ready_at */
    int nheap;
    group_queue queues[LIMITER_GROUPS_MAX];
    int unauthenticated;       /* a 401 came back: the token is refused */
    const char *forbidden[FORBIDDEN_MAX]; /* paths that came back 403 */
    int nforbidden;
} batch;

/* ---- results -------------------------------------------------------------------- */

/* Hands item i's result to on_result and tells the progress callback. */
static int finish(batch *b, int i)
{
    lua_State *L = b->L;
    batch_item *it = &b->items[i];
    int rc, nargs;

    lua_pushvalue(L, b->on_result);
    lua_pushinteger(L, i + 1);
    nargs = 1 + client_push_outcome(L, &it->out);
    /* Done before any Lua code runs: a callback may close the client. */
    it->state = ITEM_DONE;
    it->out.tr = NULL; /* the transfer goes back to the pool */
    b->done++;
    rc = lua_pcall(L, nargs, 0, 0);
    if (rc != LUA_OK || b->progress == 0)
        return rc;
    lua_pushvalue(L, b->progress);
    lua_pushinteger(L, b->done);
    lua_pushinteger(L, b->total);
    return lua_pcall(L, 2, 0, 0);
}

/* Item i ends as interrupted by SIGINT; its `sent` stays its last try's. */
static int interrupt_item(batch *b, int i)
{
    call_interrupted(b->c, &b->items[i].out);
    return finish(b, i);
}

/* ---- items -------------------------------------------------------------------------- */

/* Pushes item[field] (raw: items are data, their metamethods do not run). */
static int push_item_field(lua_State *L, int item, const char *field)
{
    lua_pushstring(L, field);
    lua_rawget(L, item);
    return lua_type(L, -1);
}

/* An optional boolean field; returns NULL or why it is malformed. */
static const char *item_boolean(lua_State *L, int item, const char *field,
                                const char *why, int *out)
{
    int type = push_item_field(L, item, field);

    if (type == LUA_TBOOLEAN)
        *out = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return type == LUA_TBOOLEAN || type == LUA_TNIL ? NULL : why;
}

/* A required string field, anchored at anchor[slot] so that a progress
 * callback that edits the items cannot free a body libcurl still sends. */
static const char *item_string(lua_State *L, int item, const char *field,
                               int anchor, int slot, size_t *len)
{
    const char *s = NULL;

    if (push_item_field(L, item, field) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, len);
        lua_pushvalue(L, -1);
        lua_rawseti(L, anchor, slot);
    }
    lua_pop(L, 1);
    return s;
}

static const char *item_group(lua_State *L, client *c, int item,
                              const limiter_group **out)
{
    int type = push_item_field(L, item, "group");
    const char *name;
    size_t len;

    *out = call_group(c, NULL);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (type != LUA_TSTRING) {
        lua_pop(L, 1);
        return "item.group must be a string";
    }
    name = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* still referenced by the item while we look */
    if (!call_group_name_ok(name, len))
        return "item.group " CALL_GROUP_NAME_RULE;
    *out = call_group(c, name);
    return *out == NULL ? "item.group: " CALL_GROUPS_FULL : NULL;
}

/* Reads items[i] into *it; returns NULL or why the item is malformed. */
static const char *read_item(lua_State *L, client *c, int anchor, int i,
                             batch_item *it)
{
    const char *why = NULL;
    size_t path_len;
    int item = lua_gettop(L) + 1;

    lua_rawgeti(L, 2, i + 1);
    if (lua_type(L, item) != LUA_TTABLE)
        why = "item must be a table";
    else if ((it->args.path = item_string(L, item, "path", anchor, 2 * i + 1,
                                          &path_len)) == NULL)
        why = "item.path must be a string";
    else if (!client_check_path(it->args.path, path_len, &why))
        ; /* why says it */
    else if ((it->args.body = item_string(L, item, "body", anchor, 2 * i + 2,
                                          &it->args.body_len)) == NULL)
        why = "item.body must be a string";
    else if (it->args.body_len > c->max_request_body)
        why = "item.body is larger than max_request_body";
    else {
        it->args.with_auth = 1;
        why = item_boolean(L, item, "with_auth", "item.with_auth must be a boolean",
                           &it->args.with_auth);
        if (why == NULL)
            why = item_boolean(L, item, "idempotent", "item.idempotent must be a boolean",
                               &it->args.idempotent);
        if (why == NULL)
            why = item_boolean(L, item, "public", "item.public must be a boolean",
                               &it->public_ep);
        if (why == NULL)
            why = item_group(L, c, item, &it->args.group);
    }
    lua_settop(L, item - 1);
    return why;
}

/* ---- the loop ------------------------------------------------------------------------ */

static group_queue *queue_of(batch *b, const batch_item *it)
{
    return &b->queues[it->args.group - b->c->rate.groups];
}

static int slots_free(const batch *b)
{
    return multi_pool_in_flight(b->c->pool) < b->concurrency;
}

/* ---- the retry heap: a binary min-heap of item indices by ready_at ---- */

static int heap_less(const batch *b, int x, int y)
{
    return b->items[b->heap[x]].ready_at < b->items[b->heap[y]].ready_at;
}

static void heap_swap(batch *b, int x, int y)
{
    int t = b->heap[x];

    b->heap[x] = b->heap[y];
    b->heap[y] = t;
}

static void heap_push(batch *b, int i)
{
    int k = b->nheap++;

    b->heap[k] = i;
    while (k > 0 && heap_less(b, k, (k - 1) / 2)) {
        heap_swap(b, k, (k - 1) / 2);
        k = (k - 1) / 2;
    }
}

static int heap_pop(batch *b)
{
    int top = b->heap[0], k = 0;

    b->heap[0] = b->heap[--b->nheap];
    for (;;) {
        int l = 2 * k + 1, m = k;

        if (l < b->nheap && heap_less(b, l, m))
            m = l;
        if (l + 1 < b->nheap && heap_less(b, l + 1, m))
            m = l + 1;
        if (m == k)
            return top;
        heap_swap(b, k, m);
        k = m;
    }
}

/* ---- group FIFOs ---- */

static void enqueue(batch *b, int i, double now)
{
    batch_item *it = &b->items[i];
    group_queue *q = queue_of(b, it);

    it->state = ITEM_WAITING;
    it->wait_since = now;
    it->next = -1;
    if (q->tail >= 0)
        b->items[q->tail].next = i;
    else
        q->head = i;
    q->tail = i;
}

static int dequeue(batch *b, group_queue *q)
{
    int i = q->head;

    q->head = b->items[i].next;
    if (q->head < 0)
        q->tail = -1;
    b->items[i].state = ITEM_QUEUED;
    return i;
}

/*
 * The group of q gives no slot for `wait` seconds: its waiting items that
 * may not wait that long fail now.  They are oldest first, so the first
 * one that may wait ends the check.
 */
static int expire(batch *b, group_queue *q, double now, double wait)
{
    while (q->head >= 0) {
        batch_item *it = &b->items[q->head];
        int rc;

        if (call_may_wait(b->c, &it->out, it->wait_since, now, wait))
            return LUA_OK;
        if ((rc = finish(b, dequeue(b, q))) != LUA_OK)
            return rc;
    }
    return LUA_OK;
}

/* Starts item i, or fails it; it has its slot (or needs none). */
static int launch(batch *b, int i)
{
    batch_item *it = &b->items[i];
    transport_result r;

    /* Closed by a hook or the progress callback, or a SIGINT during a
     * callback of this very pass: start nothing more. */
    if (!call_may_try(b->c, &it->out)) {
        call_unadmit(b->c, &it->out);
        return finish(b, i);
    }
    if (multi_pool_start(b->c->pool, i, it->args.path, it->args.body,
                         it->args.body_len, it->args.with_auth, &r) != TK_OK) {
        call_unadmit(b->c, &it->out);
        it->out.r = r;
        call_fail(&it->out, (int)r.kind, r.message, -1);
        return finish(b, i);
    }
    it->state = ITEM_RUNNING;
    return LUA_OK;
}

/* ---- what the server refused ---- */

static const char not_sent_401[] =
    "not sent: another call of this batch got 401 (the token is refused)";
static const char not_sent_403[] =
    "not sent: another call to this endpoint in this batch got 403 (the token "
    "lacks the permission)";

/* Remembers a 401 or 403 of item i, so that no item it condemns starts. */
static void note_refusal(batch *b, int i, long status)
{
    int k;

    if (status == 401) {
        b->unauthenticated = 1;
    } else if (status == 403 && b->nforbidden < FORBIDDEN_MAX) {
        for (k = 0; k < b->nforbidden; k++)
            if (strcmp(b->forbidden[k], b->items[i].args.path) == 0)
                return;
        b->forbidden[b->nforbidden++] = b->items[i].args.path; /* anchored */
    }
}

/* The kind item i ends with instead of starting, or 0: it may start. */
static int refused_kind(const batch *b, int i)
{
    const batch_item *it = &b->items[i];
    int k;

    if (b->unauthenticated && !it->public_ep)
        return KIND_UNAUTHENTICATED;
    for (k = 0; k < b->nforbidden; k++)
        if (strcmp(b->forbidden[k], it->args.path) == 0)
            return KIND_FORBIDDEN;
    return 0;
}

static int refuse(batch *b, int i, int kind)
{
    call_fail(&b->items[i].out, kind, kind == KIND_FORBIDDEN ? not_sent_403 : not_sent_401, -1);
    return finish(b, i);
}

typedef enum { SLOT_TAKEN, GROUP_CLOSED, LIMITER_BROKEN, CIRCUIT_OPEN } answer;

/* Asks the breaker, then the limiter for a slot, for item i (of queue q);
 * when the group has none, q->until says until when; when the limiter
 * failed or the breaker refused, the item's outcome says so. */
static answer ask(batch *b, int i, group_queue *q, double now)
{
    batch_item *it = &b->items[i];
    double wait;

    if (b->c->closing)
        return SLOT_TAKEN; /* launch() fails the item */
    /* Before the slot: a refused item takes none.  A refusal is not a
     * wait: the breaker frees no one at a known time but its probe. */
    if (!call_admit(b->c, now, &it->out))
        return CIRCUIT_OPEN;
    wait = call_acquire(b->c, it->args.group, now, &it->out);
    if (wait != 0)
        call_unadmit(b->c, &it->out); /* asked again with its next ask() */
    if (wait < 0)
        return LIMITER_BROKEN;
    if (wait == 0)
        return SLOT_TAKEN;
    q->until = now + wait;
    return GROUP_CLOSED;
}

/* Starts item i (not queued) or ends it as ask() failed it. */
static int act(batch *b, int i, answer a)
{
    return a == LIMITER_BROKEN || a == CIRCUIT_OPEN ? finish(b, i) : launch(b, i);
}

/* Starts the waiting items of one group while it gives slots (a closing
 * client fails them all, and items the server refused end at once). */
static int serve(batch *b, group_queue *q, double now)
{
    while (q->head >= 0) {
        /* A closing client fails it in launch(); a refused one needs no slot. */
        int refused = b->c->closing ? 0 : refused_kind(b, q->head), rc;

        if (refused == 0 && !b->c->closing && !(slots_free(b) && q->until <= now))
            return LUA_OK;
        TESTS_COUNT(b->c, batch_visits);
        if (refused != 0) {
            rc = refuse(b, dequeue(b, q), refused);
        } else {
            answer a = ask(b, q->head, q, now);

            rc = a == GROUP_CLOSED ? expire(b, q, now, q->until - now) : act(b, dequeue(b, q), a);
        }
        if (rc != LUA_OK)
            return rc;
    }
    return LUA_OK;
}

/* Item i, never looked at before: start it, or queue it behind its group. */
static int take_fresh(batch *b, int i, double now)
{
    batch_item *it = &b->items[i];
    group_queue *q = queue_of(b, it);
    int refused = b->c->closing ? 0 : refused_kind(b, i);
    answer a;

    TESTS_COUNT(b->c, batch_visits);
    if (refused != 0)
        return refuse(b, i, refused);
    /* Others of its group wait already, or the group is closed: behind them. */
    if (q->head < 0 && q->until <= now && (a = ask(b, i, q, now)) != GROUP_CLOSED)
        return act(b, i, a);
    enqueue(b, i, now);
    return q->until > now ? expire(b, q, now, q->until - now) : LUA_OK;
}

/* Starts what may start: retries that are due, then each group's waiting
 * items, then fresh items in input order, while transfer slots are free. */
static int start_ready(batch *b, double now)
{
    int k, rc;

    while (b->nheap > 0 && b->items[b->heap[0]].ready_at <= now) {
        TESTS_COUNT(b->c, batch_visits);
        enqueue(b, heap_pop(b), now);
    }
    for (k = 0; k < LIMITER_GROUPS_MAX; k++)
        if (b->queues[k].head >= 0 && (rc = serve(b, &b->queues[k], now)) != LUA_OK)
            return rc;
    while (b->next_fresh < b->total && slots_free(b)) {
        int i = b->next_fresh++;

        if (b->items[i].state == ITEM_DONE) /* malformed: reported already */
            continue;
        if ((rc = take_fresh(b, i, now)) != LUA_OK)
            return rc;
    }
    return LUA_OK;
}

/* The earliest time a queued item may start, or HUGE_VAL. */
static double next_start(const batch *b)
{
    double next = b->nheap > 0 ? b->items[b->heap[0]].ready_at : HUGE_VAL;
    int k;

    for (k = 0; k < LIMITER_GROUPS_MAX; k++)
        if (b->queues[k].head >= 0 && b->queues[k].until < next)
            next = b->queues[k].until;
    return next;
}

static int retry_or_finish(batch *b, int i, double now)
{
    batch_item *it = &b->items[i];
    double delay;
    int rc = LUA_OK;

    if (call_want_retry(b->L, b->c, &it->out, it->args.idempotent, &delay, &rc)) {
        /* Back in the queue: other items go on meanwhile. */
        it->state = ITEM_BACKOFF;
        it->ready_at = now + delay;
        heap_push(b, i);
        return LUA_OK;
    }
    return rc != LUA_OK ? rc : finish(b, i);
}

/* One finished transfer: learn from it, then retry or record it. */
static int collect_one(batch *b, const transfer *tr, int i,
                       const transport_result *r)
{
    batch_item *it = &b->items[i];
    double now;
    int rc;

    call_record(&it->out, r, tr);
    if ((rc = inject_now(b->L, b->c, &now)) != LUA_OK)
        return rc;
    call_learn(b->c, it->args.group, now, &it->out);
    if (r->kind == TK_OK)
        note_refusal(b, i, r->status);
    return retry_or_finish(b, i, now);
}

static int collect(batch *b)
{
    const transfer *tr;
    transport_result r;
    int i;

    while ((tr = multi_pool_next_done(b->c->pool, &i, &r)) != NULL) {
        int rc = collect_one(b, tr, i, &r);

        multi_pool_release(b->c->pool, tr);
        if (rc != LUA_OK)
            return rc;
    }
    return LUA_OK;
}

static int poll_ms(const batch *b, double now)
{
    double next, ms;

    /* Every slot busy: only a finished transfer can change anything. */
    if (!slots_free(b) || (next = next_start(b)) == HUGE_VAL)
        return POLL_MAX_MS;
    ms = (next - now) * 1000;
    if (ms <= 0)
        return 0;
    /* Rounded up: waking a little early would only poll again. */
    return ms >= POLL_MAX_MS ? POLL_MAX_MS : (int)ms + 1;
}

/*
 * After a SIGINT nothing more starts: the transfers in flight stop (each
 * reported with its own `sent`), and every item still queued ends as
 * interrupted.  (A SIGINT wakes the poll in pump() with EINTR.)
 */
static int drain(batch *b)
{
    int k, rc;

    multi_pool_interrupt(b->c->pool);
    if ((rc = collect(b)) != LUA_OK)
        return rc;
    while (b->next_fresh < b->total) {
        int i = b->next_fresh++;

        if (b->items[i].state != ITEM_DONE && (rc = interrupt_item(b, i)) != LUA_OK)
            return rc;
    }
    for (k = 0; k < LIMITER_GROUPS_MAX; k++)
        while (b->queues[k].head >= 0)
            if ((rc = interrupt_item(b, dequeue(b, &b->queues[k]))) != LUA_OK)
                return rc;
    while (b->nheap > 0)
        if ((rc = interrupt_item(b, heap_pop(b))) != LUA_OK)
            return rc;
    return LUA_OK;
}

/* Waits for the network, or sleeps when nothing is in flight. */
static int pump(batch *b, double now)
{
    const char *message = NULL;

    if (multi_pool_in_flight(b->c->pool) == 0) {
        double next = next_start(b);

        return next == HUGE_VAL || next <= now ? LUA_OK : inject_sleep(b->L, b->c, next - now);
    }
    if (multi_pool_run(b->c->pool, poll_ms(b, now), &message) != 0) {
        lua_pushfstring(b->L, "wemasy.core: batch: %s", message);
        return LUA_ERRRUN;
    }
    return collect(b);
}

static int run(batch *b)
{
    double now;
    int i, rc;

    for (i = 0; i < LIMITER_GROUPS_MAX; i++)
        b->queues[i].head = b->queues[i].tail = -1;
    /* Malformed items are done before anything starts. */
    for (i = 0; i < b->total; i++)
        if (b->items[i].state == ITEM_DONE) {
            b->items[i].state = ITEM_QUEUED;
            if ((rc = finish(b, i)) != LUA_OK)
                return rc;
        }
    while (b->done < b->total) {
        if (interrupt_pending(b->c->interrupt) && (rc = drain(b)) != LUA_OK)
            return rc;
        if (b->done == b->total)
            break;
        if ((rc = inject_now(b->L, b->c, &now)) != LUA_OK ||
            (rc = start_ready(b, now)) != LUA_OK)
            return rc;
        if (b->done < b->total && (rc = pump(b, now)) != LUA_OK)
            return rc;
    }
    return LUA_OK;
}

/* ---- the method ---------------------------------------------------------------------- */

/* Reads every item into b; a malformed one, or every one when the client
 * is closed, is done already (run() reports them first). */
static void read_items(lua_State *L, batch *b, int anchor)
{
    int i;

    for (i = 0; i < b->total; i++) {
        batch_item *it = &b->items[i];
        const char *why = read_item(L, b->c, anchor, i, it);

        call_begin(&it->out);
        it->wait_since = -1;
        if (why != NULL)
            call_fail(&it->out, KIND_INVALID, why, -1);
        else if (!call_closed(b->c, &it->out))
            continue;
        it->state = ITEM_DONE;
    }
}

/* The arguments (items, concurrency, progress or nil, on_result) into *b,
 * raising for a wrong one.  Returns 0 when there is nothing to run; else
 * the items are read, owned by a userdata on the stack, and the pool is
 * ready. */
static int prepare(lua_State *L, client *c, batch *b)
{
    memset(b, 0, sizeof *b);
    luaL_checktype(L, 2, LUA_TTABLE);
    b->concurrency = options_batch_concurrency(L, 3);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    /* One multi pool per client: a batch started from the progress callback
     * (or a hook) of another would abort the outer one's transfers. */
    if (c->in_batch)
        return luaL_error(L, "wemasy.core: client:batch called from the progress "
                             "callback or a hook of a batch in progress on the "
                             "same client");
    lua_settop(L, 5);
    b->L = L;
    b->c = c;
    TESTS_RESET(c, batch_visits);
    b->total = (int)compat_rawlen(L, 2);
    if (b->total == 0)
        return 0;
    lua_createtable(L, 2 * b->total, 0); /* anchor for paths and bodies */
    b->items = lua_newuserdata(L, (sizeof(batch_item) + sizeof(int)) * (size_t)b->total);
    memset(b->items, 0, sizeof(batch_item) * (size_t)b->total);
    b->heap = (int *)(void *)(b->items + b->total);
    read_items(L, b, lua_gettop(L) - 1);
    if (c->t != NULL && !c->closing) {
        char err[TRANSPORT_ERRLEN];

        client_after_fork(c);
        if (c->pool == NULL && (c->pool = multi_pool_new(c->t, err, sizeof err)) == NULL)
            return luaL_error(L, "wemasy.core: batch: %s", err);
    }
    return 1;
}

/* run() under lua_pcall, so client_batch always gets control back (to
 * abort the transfers and clear in_batch), even when Lua raises out of
 * memory.  Arguments: the batch, the progress or nil, on_result. */
static int run_protected(lua_State *L)
{
    batch *b = (batch *)lua_touserdata(L, 1);

    b->progress = lua_isnil(L, 2) ? 0 : 2;
    b->on_result = 3;
    if (run(b) != LUA_OK)
        return lua_error(L);
    return 0;
}

/* client:batch(items, concurrency, progress, on_result): every result goes
 * to on_result; returns nothing. */
int client_batch(lua_State *L)
{
    client *c = client_check(L, 1);
    batch b;
    interrupt_scope scope;
    const interrupt_scope *outer;
    interrupt_end ended;
    int rc;

    if (!prepare(L, c, &b))
        return 0;
    /* A batch cut short by an error (even out of memory) left transfers
     * behind: start clean. */
    multi_pool_abort(c->pool);
    c->in_batch = 1;
    call_watch(c, &scope, &outer);
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, &b);
    lua_pushvalue(L, 4); /* progress or nil */
    lua_pushvalue(L, 5); /* on_result */
    rc = lua_pcall(L, 3, 0, 0);
    c->in_batch = 0;
    multi_pool_abort(c->pool);
    ended = call_unwatch(c, &scope, outer); /* the host's handler runs here */
    client_close_pending(L, c);
    if (rc != LUA_OK)
        return lua_error(L);
    if (ended == INTERRUPT_RAISE)
        return client_raise_interrupted(L);
    return 0;
}
