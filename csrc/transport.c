/*
 * transport.c - reusable libcurl easy handles, all configured alike, and
 * one request on them.
 *
 * A transport holds what every handle of a client shares (its settings,
 * the sockets of its connections); a transfer is one easy handle
 * configured once from it in transfer_new().  A request only swaps the URL,
 * the POST body and one of two prebuilt header lists, so libcurl keeps the
 * connection (and TLS session) alive between calls.  The parts have files
 * of their own: settings.c (the handles' options and header lists),
 * headers.c (the response headers), buffer.c, sockets.c (the socket set)
 * and classify.c (what a failure comes to).
 */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buffer.h"
#include "classify.h"
#include "headers.h"
#include "settings.h"
#include "sockets.h"

/* How often one request goes out again after on_prereq() found its
 * kept-alive connection stale.  Each time libcurl closes that connection,
 * and a fresh one is never stale, so this only bounds a cache full of
 * spoilt connections (a multi keeps a few per transfer). */
#define STALE_REDO_MAX 100

/*
 * libcurl 7.80 can tell us before each request it sends (PREREQFUNCTION).
 * With it the body goes out as POSTFIELDS, in the same send() as the
 * headers: one packet and one syscall less per call than a read callback,
 * whose bytes libcurl always sends separately.  Older libcurl keeps the read
 * callback.  Either way libcurl never re-sends a request on its own: see
 * on_prereq() and on_read().
 */
#if LIBCURL_VERSION_NUM >= 0x075000
#define BODY_IN_FIRST_SEND 1
#else
#define BODY_IN_FIRST_SEND 0
#endif

struct transport {
    settings set; /* kept, so that handles made later are configured like the first */
    const interrupt_scope *watch; /* the call in progress, or NULL */
    transfer *own; /* the handle of transport_perform() */
    socket_set sockets;
    pid_t pid; /* the process that made own's connections */
};

struct transfer {
    CURL *easy;
    const transport *t;
    socket_set *sockets; /* t's, writable */
    buffer url;
    buffer body;
    headers head; /* of the final response */
#if BODY_IN_FIRST_SEND
    int sends; /* requests libcurl started for this transfer */
    long before_request; /* request bytes counted before ours: a proxy's CONNECT */
    int redos; /* times it went out again after a stale connection */
    int forbid_reuse; /* CURLOPT_FORBID_REUSE is set for this transfer */
#else
    const char *upload; /* the request body (the caller's), NULL between requests */
    size_t upload_len;
    size_t upload_pos;
#endif
    abort_reason abort;
    curl_socket_t conn_fd; /* the socket of the current request, if ours */
    /* libcurl writes here; the transfer is heap-allocated so it never moves */
    char errbuf[CURL_ERROR_SIZE];
};

static void copy_error(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* ---- response callbacks ------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer *tr = userp;
    size_t n = size * nmemb; /* size is always 1 */

    /* Checked against the decoded bytes, so a small gzip bomb is caught too.
     * Returning short makes libcurl fail the transfer with CURLE_WRITE_ERROR. */
    if (n > tr->t->set.max_body - tr->body.len) {
        tr->abort = ABORT_BODY_TOO_LARGE;
        return 0;
    }
    if (buffer_append(&tr->body, data, n) != 0) {
        tr->abort = ABORT_OOM;
        return 0;
    }
    return n;
}

#if BODY_IN_FIRST_SEND
/*
 * Called before every request libcurl sends.  When a reused connection dies
 * before any byte of the response, libcurl sends the request again on a new
 * connection by itself.  That would send a call the server may have
 * processed a second time, unseen by the retry policy and the attempt count:
 * the second request of one transfer is refused here, the transfer fails,
 * and the retry policy decides.  (Redirects are not followed, so a transfer
 * has exactly one legitimate request.)
 */
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
    transfer *t = userp;
    conn_socket *s;

    (void)conn_primary_ip;
    (void)conn_primary_port;
    /* The last look before the request goes out. */
    if (interrupt_pending(t->t->watch)) {
        t->abort = ABORT_INTERRUPTED;
        return CURL_PREREQFUNC_ABORT;
    }
    if (++t->sends > 1) {
        t->abort = ABORT_RESEND;
        return CURL_PREREQFUNC_ABORT;
    }
    /* libcurl counts a proxy's CONNECT as request bytes too (classify.c) */
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &t->before_request);
    s = sockets_find(t->sockets, conn_local_ip, conn_local_port);
    t->conn_fd = s != NULL ? s->fd : CURL_SOCKET_BAD;
    /*
     * An HTTP/1 connection that served a response before and has anything
     * to read now got bytes nobody asked for (a late or extra response, a
     * 408 before the close) or the peer's FIN: the request must not go out
     * on it, or it would read those bytes as its own answer.  Nothing is
     * sent; libcurl closes the connection when this transfer ends (instead
     * of caching it), and transfer_redo() sends the request anew, on
     * another connection (sockets_stale: only HTTP/1 ones are looked at).
     */
    if (s != NULL && sockets_stale(s)) {
        curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
        t->forbid_reuse = 1;
        t->abort = ABORT_STALE;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}
#else
/*
 * The request body, handed to libcurl as it asks for it.  On purpose there
 * is no seek callback: when a reused connection dies before any byte of the
 * response, libcurl sends the request again on a new connection by itself,
 * and needs to rewind the body to do it.  That would send a call the server
 * may have processed a second time, unseen by the retry policy and the
 * attempt count.  Without a way to rewind, libcurl fails the transfer with
 * CURLE_SEND_FAIL_REWIND instead, and the retry policy decides.
 */
static size_t on_read(char *dest, size_t size, size_t nitems, void *userp)
{
    transfer *t = userp;
    size_t room = size * nitems;
    size_t n = t->upload_len - t->upload_pos;

    if (n > room)
        n = room;
    if (n > 0)
        memcpy(dest, t->upload + t->upload_pos, n);
    t->upload_pos += n;
    return n;
}
#endif

/*
 * libcurl calls this on every pass over the transfer, also when its poll
 * returned early with EINTR: a SIGINT ends the transfer within that pass.
 * Only set up for interruptible clients (the call costs a little on every
 * pass).
 */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    transfer *t = userp;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (!interrupt_pending(t->t->watch))
        return 0;
    t->abort = ABORT_INTERRUPTED;
    return 1;
}

/* The headers are headers.c's; what a status line says the connection
 * speaks is the socket set's. */
static size_t on_header(char *line, size_t size, size_t nitems, void *userp)
{
    transfer *t = userp;
    size_t total = size * nitems;
    headers_event e = headers_line(&t->head, line, total);

    if (e == HEADERS_STATUS_H1 || e == HEADERS_STATUS_H2) {
        sockets_learn_proto(t->sockets, t->conn_fd,
                            e == HEADERS_STATUS_H2 ? PROTO_H2 : PROTO_H1);
    } else if (e != HEADERS_LINE) {
        t->abort = e == HEADERS_TOO_LARGE ? ABORT_HEADERS_TOO_LARGE : ABORT_OOM;
        return 0;
    }
    return total;
}

const headers *transfer_headers(const transfer *t)
{
    return t != NULL ? &t->head : NULL;
}

/* ---- failures ------------------------------------------------------------ */

/* What a failed transfer comes to (classify.c).  It must leave nothing for
 * the caller to misread. */
static int fail_curl(transfer *t, CURLcode rc, transport_result *out)
{
    classify_facts f = {.easy = t->easy, .abort = t->abort,
                        .head_complete = headers_complete(&t->head),
                        .body_seen = t->body.len > 0,
                        .max_body = t->t->set.max_body, .errbuf = t->errbuf};

#if BODY_IN_FIRST_SEND
    f.began = t->sends > 0;
    f.before_request = t->before_request;
#else
    f.began = 1; /* libcurl cannot say: its byte counts decide */
#endif
    t->body.len = 0;
    headers_discard(&t->head);
    return classify_failure(&f, rc, out);
}

static int fail_plain(transport_result *out, transport_kind kind,
                      const char *message, int sent)
{
    out->kind = kind;
    out->message = message;
    out->sent = sent;
    return (int)kind;
}

/* ---- one request ------------------------------------------------------------ */

static int build_url(transfer *t, const char *path)
{
    t->url.len = 0;
    return buffer_append(&t->url, t->t->set.base_url, t->t->set.base_len) != 0 ||
           buffer_append(&t->url, path, strlen(path) + 1) != 0;
}

static CURLcode set_request(transfer *t, const char *body, size_t len,
                            int with_auth)
{
    struct curl_slist *hdrs =
        with_auth && t->t->set.hdr_auth != NULL ? t->t->set.hdr_auth : t->t->set.hdr_plain;
    CURLcode rc;

    rc = curl_easy_setopt(t->easy, CURLOPT_URL, t->url.data);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, hdrs);
    /* Content-Length, and the length of the bytes, NULs included. */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                              (curl_off_t)len);
#if BODY_IN_FIRST_SEND
    if (rc == CURLE_OK) /* not copied: the caller keeps body alive until the end */
        rc = curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, body);
    t->sends = 0;
#else
    t->upload = body;
    t->upload_len = len;
    t->upload_pos = 0;
#endif
    return rc;
}

/* The body belongs to the caller (a Lua string the GC may free next): keep
 * no pointer to it. */
static void release_body(transfer *t)
{
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
#if BODY_IN_FIRST_SEND
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, "");
#else
    t->upload = NULL;
    t->upload_len = t->upload_pos = 0;
#endif
}

int transfer_begin(transfer *t, const char *path, const char *body,
                   size_t len, int with_auth, transport_result *out)
{
    CURLcode rc;

    memset(out, 0, sizeof *out);
    if (t == NULL || t->easy == NULL)
        return fail_plain(out, TK_CLOSED, "client is closed", 0);
    buffer_reset(&t->body);
    headers_begin(&t->head);
    t->abort = ABORT_NONE;
    t->errbuf[0] = '\0';
    t->conn_fd = CURL_SOCKET_BAD;
#if BODY_IN_FIRST_SEND
    t->redos = 0;
#endif
    if (build_url(t, path) != 0)
        return fail_plain(out, TK_INTERNAL, "out of memory", 0);
    rc = set_request(t, body, len, with_auth);
    if (rc != CURLE_OK) {
        /* e.g. a URL over libcurl's length limit: nothing went out */
        release_body(t);
        fail_curl(t, rc, out);
        out->sent = 0;
        return (int)out->kind;
    }
    return TK_OK;
}

CURL *transfer_easy(transfer *t)
{
    return t->easy;
}

/* Back to reusing connections, after on_prereq() forbade it for one. */
static void allow_reuse(transfer *t)
{
#if BODY_IN_FIRST_SEND
    if (t->forbid_reuse) {
        curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 0L);
        t->forbid_reuse = 0;
    }
#else
    (void)t;
#endif
}

int transfer_redo(transfer *t, CURLcode rc)
{
    allow_reuse(t);
#if BODY_IN_FIRST_SEND
    if (rc != CURLE_ABORTED_BY_CALLBACK || t->abort != ABORT_STALE ||
        ++t->redos > STALE_REDO_MAX)
        return 0;
    /* Nothing was sent or received: the request as it was, URL and body
     * included, on the next connection libcurl picks. */
    t->abort = ABORT_NONE;
    t->errbuf[0] = '\0';
    t->sends = 0;
    t->conn_fd = CURL_SOCKET_BAD;
    t->body.len = 0;
    headers_discard(&t->head);
    return 1;
#else
    (void)rc;
    return 0;
#endif
}

int transfer_end(transfer *t, CURLcode rc, transport_result *out)
{
    memset(out, 0, sizeof *out);
    allow_reuse(t);
    release_body(t);
    if (rc != CURLE_OK || !headers_complete(&t->head))
        return fail_curl(t, rc, out);
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &out->status);
    out->kind = TK_OK;
    out->body = t->body.data != NULL ? t->body.data : "";
    out->body_len = t->body.len;
    out->sent = 1;
    return TK_OK;
}

int transfer_stop(transfer *t, transport_result *out)
{
    t->abort = ABORT_INTERRUPTED;
    return transfer_end(t, CURLE_ABORTED_BY_CALLBACK, out);
}

int transport_perform(transport *t, const char *path, const char *body,
                      size_t len, int with_auth, transport_result *out)
{
    transfer *tr;
    CURLcode rc;

    transport_after_fork(t); /* a no-op but in a child of fork() */
    tr = t != NULL ? t->own : NULL;
    if (transfer_begin(tr, path, body, len, with_auth, out) != TK_OK)
        return (int)out->kind;
    do
        rc = curl_easy_perform(tr->easy);
    while (transfer_redo(tr, rc));
    return transfer_end(tr, rc, out);
}

const transfer *transport_last(const transport *t)
{
    return t != NULL ? t->own : NULL;
}

/* ---- construction ------------------------------------------------------- */

#define SETOPT(opt, val) SETTINGS_SET(tr->easy, opt, val)

/* The handle's ties to this transfer: our callbacks and libcurl's message
 * buffer (the rest is settings.c's). */
static int configure_callbacks(transfer *tr, char *err, size_t errlen)
{
    SETOPT(CURLOPT_ERRORBUFFER, tr->errbuf);
#if BODY_IN_FIRST_SEND
    SETOPT(CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(CURLOPT_PREREQDATA, tr);
#else
    SETOPT(CURLOPT_READFUNCTION, on_read);
    SETOPT(CURLOPT_READDATA, tr);
#endif
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, tr);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, tr);
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, sockets_open);
    SETOPT(CURLOPT_OPENSOCKETDATA, tr->sockets);
    SETOPT(CURLOPT_CLOSESOCKETFUNCTION, sockets_close);
    SETOPT(CURLOPT_CLOSESOCKETDATA, tr->sockets);
    return 0;
}

/*
 * Only for the handle of transport_perform(), which libcurl drives by
 * itself: a batch looks at the signal between its own polls and stops its
 * transfers itself (transfer_stop), so its handles do without the cost of
 * this callback on every pass.
 */
static int watch_progress(transfer *tr, char *err, size_t errlen)
{
    SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(CURLOPT_XFERINFODATA, tr);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    return 0;
}

#undef SETOPT

/* A new easy handle for tr, configured from its transport. */
static int transfer_setup(transfer *tr, char *err, size_t errlen)
{
    tr->easy = curl_easy_init();
    if (tr->easy == NULL) {
        copy_error(err, errlen, "curl_easy_init failed");
        return -1;
    }
    if (settings_apply(&tr->t->set, tr->easy, err, errlen) != 0 ||
        configure_callbacks(tr, err, errlen) != 0) {
        curl_easy_cleanup(tr->easy);
        tr->easy = NULL;
        return -1;
    }
    return 0;
}

transfer *transfer_new(transport *t, char *err, size_t errlen)
{
    transfer *tr = calloc(1, sizeof *tr);

    if (tr == NULL) {
        copy_error(err, errlen, "out of memory");
        return NULL;
    }
    tr->t = t;
    tr->sockets = &t->sockets;
    tr->conn_fd = CURL_SOCKET_BAD;
    if (transfer_setup(tr, err, errlen) != 0) {
        transfer_free(tr);
        return NULL;
    }
    return tr;
}

void transfer_free(transfer *tr)
{
    if (tr == NULL)
        return;
    /* The handle first: it points at the buffers below. */
    if (tr->easy != NULL)
        curl_easy_cleanup(tr->easy);
    buffer_free(&tr->url);
    buffer_free(&tr->body);
    headers_free(&tr->head);
    free(tr);
}

transport *transport_new(const transport_config *cfg, char *err, size_t errlen)
{
    transport *t = calloc(1, sizeof *t);

    if (t == NULL) {
        copy_error(err, errlen, "out of memory");
        return NULL;
    }
    t->pid = getpid();
    if (settings_copy(&t->set, cfg) != 0) {
        copy_error(err, errlen, "out of memory");
        goto fail;
    }
    t->own = transfer_new(t, err, errlen);
    if (t->own == NULL ||
        (t->set.interruptible && watch_progress(t->own, err, errlen) != 0))
        goto fail;
    return t;
fail:
    transport_free(t);
    return NULL;
}

int transport_has_token(const transport *t)
{
    return t != NULL && t->set.hdr_auth != NULL;
}

void transport_watch(transport *t, const interrupt_scope *s)
{
    if (t != NULL)
        t->watch = s;
}

int transport_forked(const transport *t)
{
    return t != NULL && t->pid != getpid();
}

/*
 * The first call in a child of fork() forgets the connections it inherited
 * (they are the parent's: sharing one would hand each process the other's
 * answers) and connects anew.  Their sockets become /dev/null before the
 * old handle closes them (sockets_disown); when that cannot be done the
 * old handle is leaked rather than closed.
 */
int transport_after_fork(transport *t)
{
    char err[TRANSPORT_ERRLEN];
    pid_t me = getpid();
    int rc;

    if (t == NULL || t->pid == me)
        return 0;
    rc = sockets_disown(&t->sockets, me);
    t->pid = me;
    if (t->own == NULL || t->own->easy == NULL)
        return rc;
    if (rc == 0)
        curl_easy_cleanup(t->own->easy);
    /* On failure no handle: every call says "client is closed". */
    transfer_setup(t->own, err, sizeof err);
    return rc;
}

void transport_free(transport *t)
{
    if (t == NULL)
        return;
    /* Closed by a child of fork() without a call since: the connections
     * are the parent's (transport_after_fork). */
    if (transport_forked(t) && sockets_disown(&t->sockets, getpid()) != 0 &&
        t->own != NULL)
        t->own->easy = NULL; /* leaked: closing it would touch them */
    /* The handle first: it points at the header lists of the settings. */
    transfer_free(t->own);
    settings_free(&t->set);
    sockets_free(&t->sockets); /* every handle, and with it every socket, is gone */
    free(t);
}
