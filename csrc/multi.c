/*
 * multi.c - the pool behind client:batch.
 *
 * Each slot pairs a transfer with its state: idle, running (attached to
 * the multi) or done (detached, its response still readable until
 * released).  CURLOPT_PRIVATE points back at the slot.
 */
#include "multi.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* STOPPED: detached by multi_pool_interrupt(), not reported yet. */
typedef enum { SLOT_IDLE = 0, SLOT_RUNNING, SLOT_STOPPED, SLOT_DONE } slot_state;

typedef struct {
    transfer *tr; /* NULL until first needed */
    slot_state state;
    int tag;
} slot;

struct multi_pool {
    CURLM *multi;
    transport *t;
    pid_t pid; /* the process whose transfers opened its connections */
    int running;
    slot slots[MULTI_MAX];
};

multi_pool *multi_pool_new(transport *t, char *err, size_t errlen)
{
    multi_pool *p = calloc(1, sizeof *p);

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->t = t;
    p->pid = getpid();
    p->multi = curl_multi_init();
    if (p->multi == NULL) {
        snprintf(err, errlen, "curl_multi_init failed");
        free(p);
        return NULL;
    }
    return p;
}

static void detach(multi_pool *p, slot *s)
{
    if (s->state == SLOT_RUNNING) {
        curl_multi_remove_handle(p->multi, transfer_easy(s->tr));
        p->running--;
    }
}

void multi_pool_abort(multi_pool *p)
{
    size_t i;
    transport_result ignored;

    if (p == NULL)
        return;
    for (i = 0; i < MULTI_MAX; i++) {
        slot *s = &p->slots[i];

        if (s->state == SLOT_RUNNING || s->state == SLOT_STOPPED) {
            detach(p, s);
            /* Lets go of the caller's body and empties the buffers. */
            transfer_end(s->tr, CURLE_ABORTED_BY_CALLBACK, &ignored);
        }
        s->state = SLOT_IDLE;
    }
    p->running = 0;
}

void multi_pool_free(multi_pool *p)
{
    size_t i;

    if (p == NULL)
        return;
    multi_pool_abort(p);
    /* Easy handles go before the multi that cached their connections. */
    for (i = 0; i < MULTI_MAX; i++)
        transfer_free(p->slots[i].tr);
    curl_multi_cleanup(p->multi);
    free(p);
}

int multi_pool_in_flight(const multi_pool *p)
{
    return p->running;
}

int multi_pool_forked(const multi_pool *p)
{
    return p != NULL && p->pid != getpid();
}

static slot *idle_slot(multi_pool *p, transport_result *out)
{
    char err[TRANSPORT_ERRLEN];
    size_t i;

    for (i = 0; i < MULTI_MAX; i++) {
        slot *s = &p->slots[i];

        if (s->state != SLOT_IDLE)
            continue;
        if (s->tr == NULL && (s->tr = transfer_new(p->t, err, sizeof err)) == NULL)
            break;
        return s;
    }
    out->kind = TK_INTERNAL;
    out->message = "no transfer handle available";
    out->sent = 0;
    return NULL;
}

int multi_pool_start(multi_pool *p, int tag, const char *path,
                     const char *body, size_t len, int with_auth,
                     transport_result *out)
{
    slot *s = idle_slot(p, out);
    CURL *easy;

    if (s == NULL)
        return (int)out->kind;
    if (transfer_begin(s->tr, path, body, len, with_auth, out) != TK_OK)
        return (int)out->kind;
    easy = transfer_easy(s->tr);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)s);
    if (curl_multi_add_handle(p->multi, easy) != CURLM_OK) {
        transfer_end(s->tr, CURLE_FAILED_INIT, out);
        out->kind = TK_INTERNAL;
        out->message = "curl_multi_add_handle failed";
        out->sent = 0;
        return (int)out->kind;
    }
    s->state = SLOT_RUNNING;
    s->tag = tag;
    p->running++;
    return TK_OK;
}

int multi_pool_run(multi_pool *p, int timeout_ms, const char **message)
{
    int still;
    CURLMcode rc = curl_multi_poll(p->multi, NULL, 0, timeout_ms, NULL);

    if (rc == CURLM_OK)
        rc = curl_multi_perform(p->multi, &still);
    if (rc != CURLM_OK) {
        *message = curl_multi_strerror(rc);
        return -1;
    }
    return 0;
}

void multi_pool_interrupt(multi_pool *p)
{
    size_t i;

    for (i = 0; i < MULTI_MAX; i++) {
        slot *s = &p->slots[i];

        if (s->state == SLOT_RUNNING) {
            detach(p, s);
            s->state = SLOT_STOPPED;
        }
    }
}

/* A slot multi_pool_interrupt() stopped, reported as interrupted. */
static const transfer *next_stopped(multi_pool *p, int *tag,
                                    transport_result *out)
{
    size_t i;

    for (i = 0; i < MULTI_MAX; i++) {
        slot *s = &p->slots[i];

        if (s->state == SLOT_STOPPED) {
            transfer_stop(s->tr, out);
            s->state = SLOT_DONE;
            *tag = s->tag;
            return s->tr;
        }
    }
    return NULL;
}

const transfer *multi_pool_next_done(multi_pool *p, int *tag,
                                     transport_result *out)
{
    CURLMsg *msg;
    int queued;

    while ((msg = curl_multi_info_read(p->multi, &queued)) != NULL) {
        char *priv = NULL;
        slot *s;
        CURLcode result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        s = (slot *)(void *)priv;
        if (s == NULL || s->state != SLOT_RUNNING)
            continue;
        /* Read the result before detaching: msg belongs to the multi. */
        result = msg->data.result;
        detach(p, s);
        /* Refused a stale kept-alive connection, nothing sent: once more,
         * on another connection (the multi starts it at its next run). */
        if (transfer_redo(s->tr, result) &&
            curl_multi_add_handle(p->multi, transfer_easy(s->tr)) == CURLM_OK) {
            p->running++;
            continue;
        }
        transfer_end(s->tr, result, out);
        s->state = SLOT_DONE;
        *tag = s->tag;
        return s->tr;
    }
    return next_stopped(p, tag, out);
}

void multi_pool_release(multi_pool *p, const transfer *tr)
{
    size_t i;

    for (i = 0; i < MULTI_MAX; i++)
        if (p->slots[i].tr == tr && p->slots[i].state == SLOT_DONE)
            p->slots[i].state = SLOT_IDLE;
}
