/*
 * transport.c - reusable libcurl easy handles, all configured alike.
 *
 * A transport holds what every handle of a client shares (header lists,
 * options); a transfer is one easy handle configured once from it in
 * transfer_new().  A request only swaps the URL, the POST body and one of
 * two prebuilt header lists, so libcurl keeps the connection (and TLS
 * session) alive between calls.
 */
#define _GNU_SOURCE /* POLLRDHUP, dup3, SOCK_CLOEXEC */
#include "transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#define BUFFER_MIN 4096
/* A response that needed more than this is not kept around afterwards: one
 * large export should not pin megabytes for the client's lifetime. */
#define BUFFER_KEEP_MAX ((size_t)1 << 20)
/*
 * Our cap on a transfer's response headers, counted as libcurl counts
 * towards its own limit: every line as received (CRLF, status lines and 1xx
 * responses included).  libcurl 7.88.1 fails past 300 KiB in all, right
 * after handing us the line that crossed it (measured), so ours always
 * comes first and the caller gets our "too_large".  Its other limit, a
 * line of 100 KiB, it enforces before we see the line: see error_classes.
 */
#define HEADERS_MAX ((size_t)256 * 1024)

#define AUTH_PREFIX "Authorization: Bearer "

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buffer;

/* Why one of our callbacks stopped the transfer; libcurl only sees "0". */
typedef enum {
    ABORT_NONE = 0,
    ABORT_BODY_TOO_LARGE,
    ABORT_HEADERS_TOO_LARGE,
    ABORT_OOM,
    ABORT_RESEND, /* libcurl was about to send the request a second time */
    ABORT_INTERRUPTED, /* SIGINT (interrupt.h) */
    ABORT_STALE        /* the kept-alive connection had unread bytes or was closed */
} abort_reason;

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

/* What a connection's first response said it speaks.  Only an HTTP/1
 * connection is checked for unread bytes before reuse: over HTTP/2 the peer
 * may send frames at any time (PING, SETTINGS, other streams' data), and
 * every answer carries its stream's id anyway. */
typedef enum { PROTO_UNKNOWN = 0, PROTO_H1, PROTO_H2 } conn_proto;

/* One socket libcurl opened through on_open_socket(), until it closes it. */
typedef struct {
    curl_socket_t fd;         /* CURL_SOCKET_BAD: a free slot */
    pid_t pid;                /* the process that opened it */
    int port;                 /* local port; 0: not looked up yet, -1: never match */
    char ip[INET6_ADDRSTRLEN]; /* local address, as libcurl prints it */
    conn_proto proto;
} conn_socket;

/* The sockets of every handle of one transport (its own and a batch's). */
typedef struct {
    conn_socket *v;
    size_t n;
} socket_set;

struct transport {
    struct curl_slist *hdr_plain;
    struct curl_slist *hdr_auth; /* NULL when no token was configured */
    char *base_url;
    size_t base_len;
    size_t max_body;
    /* Kept so that handles made later are configured like the first. */
    long timeout_ms;
    long connect_timeout_ms;
    int insecure;
    char *ca_file;
    char *ca_path;
    char *proxy;
    char *user_agent;
    int interruptible;
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
    buffer headers; /* "name\0value\0" for each header of the final response */
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
    size_t head_bytes; /* raw header bytes of this transfer (HEADERS_MAX) */
    abort_reason abort;
    curl_socket_t conn_fd; /* the socket of the current request, if ours */
    int interim;   /* the response being read is a 1xx */
    int head_done; /* the blank line ending the final header block came */
    /* libcurl writes here; the transfer is heap-allocated so it never moves */
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- small helpers ------------------------------------------------------ */

/* A plain memset may be optimised away right before free(). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--)
        *v++ = 0;
}

static void copy_error(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

static int buffer_reserve(buffer *b, size_t need)
{
    size_t cap = b->cap ? b->cap : BUFFER_MIN;
    char *p;

    if (need <= b->cap)
        return 0;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buffer_append(buffer *b, const char *src, size_t n)
{
    if (n > SIZE_MAX - b->len || buffer_reserve(b, b->len + n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int buffer_append_byte(buffer *b, char c)
{
    return buffer_append(b, &c, 1);
}

static void buffer_free(buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Empty the buffer for the next response, shrinking it if it got huge. */
static void buffer_reset(buffer *b)
{
    if (b->cap > BUFFER_KEEP_MAX)
        buffer_free(b);
    b->len = 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void lowercase(char *s, size_t n)
{
    size_t i;

    /* ASCII only on purpose: header names are tokens, and the locale's
     * tolower() could map bytes differently. */
    for (i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* ---- process-wide state ------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int transport_global_init(void)
{
    /* curl_global_init is not thread-safe in older libcurl; OpenResty may
     * load the module from several worker threads' states. */
    if (pthread_once(&global_once, global_init_once) != 0)
        return -1;
    return global_rc == CURLE_OK ? 0 : -1;
}

const char *transport_curl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}

const char *transport_ssl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->ssl_version;
}

int transport_has_http2(void)
{
    return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0;
}

/* ---- sockets ---------------------------------------------------------------
 *
 * libcurl opens and closes every socket through us, so a transport knows
 * the sockets of its connections: to look at one before it is reused, and
 * to let go of those a fork() inherited without touching them.
 */

static int sockets_add(socket_set *set, curl_socket_t fd)
{
    conn_socket *grown;
    size_t i;

    for (i = 0; i < set->n && set->v[i].fd != CURL_SOCKET_BAD; i++)
        ;
    if (i == set->n) {
        grown = realloc(set->v, (set->n + 1) * sizeof *grown);
        if (grown == NULL)
            return -1;
        set->v = grown;
        set->n++;
    }
    memset(&set->v[i], 0, sizeof set->v[i]);
    set->v[i].fd = fd;
    set->v[i].pid = getpid();
    return 0;
}

static conn_socket *sockets_by_fd(socket_set *set, curl_socket_t fd)
{
    size_t i;

    for (i = 0; i < set->n; i++)
        if (set->v[i].fd == fd)
            return &set->v[i];
    return NULL;
}

/* Its local address, looked up once it has one (connect() binds it):
 * s->port stays 0 until then, -1 for what no prereq callback can name. */
static void socket_learn_address(conn_socket *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    const void *addr;
    int port;

    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&ss;
        port = ntohs(in->sin_port);
        addr = &in->sin_addr;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&ss;
        port = ntohs(in6->sin6_port);
        addr = &in6->sin6_addr;
    } else {
        s->port = -1;
        return;
    }
    if (port != 0)
        s->port = inet_ntop(ss.ss_family, addr, s->ip, sizeof s->ip) != NULL ? port : -1;
}

/* The socket of the connection libcurl chose for a request: the prereq
 * callback knows its local address only. */
static conn_socket *sockets_find(socket_set *set, const char *ip, int port)
{
    size_t i;

    if (ip == NULL || port <= 0)
        return NULL;
    for (i = 0; i < set->n; i++) {
        conn_socket *s = &set->v[i];

        if (s->fd == CURL_SOCKET_BAD)
            continue;
        if (s->port == 0)
            socket_learn_address(s);
        if (s->port == port && strcmp(s->ip, ip) == 0)
            return s;
    }
    return NULL;
}

/* Unread bytes (a response nobody asked for, a 408), the peer's FIN or
 * an error: a connection the next request must not go out on. */
static int socket_spoilt(curl_socket_t fd)
{
    struct pollfd p;

    p.fd = fd;
    p.events = POLLIN;
#ifdef POLLRDHUP
    p.events |= POLLRDHUP;
#endif
    p.revents = 0;
    return poll(&p, 1, 0) != 0; /* a failed poll too: better a new connection */
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    socket_set *set = clientp;
    curl_socket_t fd;
    int type = addr->socktype;

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
#ifdef SOCK_CLOEXEC
    type |= SOCK_CLOEXEC; /* a program we exec must not hold our connections */
#endif
    fd = socket(addr->family, type, addr->protocol);
    if (fd == CURL_SOCKET_BAD)
        return fd;
    if (sockets_add(set, fd) != 0) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    return fd;
}

static int on_close_socket(void *clientp, curl_socket_t fd)
{
    conn_socket *s = sockets_by_fd(clientp, fd);

    if (s != NULL)
        s->fd = CURL_SOCKET_BAD;
    return close(fd);
}

/*
 * In a child of fork(): every socket the parent opened becomes /dev/null,
 * so whatever libcurl does when it closes those connections (a TLS
 * close_notify, an HTTP/2 GOAWAY, close()) reaches nothing the parent
 * still uses.  Closing our copy of a socket sends nothing by itself; a
 * shutdown() or a TLS alert would.  Returns -1 when some could not be.
 */
static int sockets_disown(socket_set *set, pid_t me)
{
    int null = -1, rc = 0;
    size_t i;

    for (i = 0; i < set->n; i++) {
        conn_socket *s = &set->v[i];

        if (s->fd == CURL_SOCKET_BAD || s->pid == me)
            continue;
        if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
            return -1;
        if (dup3(null, s->fd, O_CLOEXEC) < 0)
            rc = -1;
        s->pid = me;
        s->port = -1;
        s->proto = PROTO_UNKNOWN;
    }
    if (null >= 0)
        close(null);
    return rc;
}

/* ---- response callbacks ------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer *tr = userp;
    size_t n = size * nmemb; /* size is always 1 */

    /* Checked against the decoded bytes, so a small gzip bomb is caught too.
     * Returning short makes libcurl fail the transfer with CURLE_WRITE_ERROR. */
    if (n > tr->t->max_body - tr->body.len) {
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
    /* libcurl counts a proxy's CONNECT as request bytes too (request_left) */
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
     * another connection.  A fresh connection has served nothing yet
     * (PROTO_UNKNOWN) and may hold TLS session tickets.
     */
    if (s != NULL && s->proto == PROTO_H1 && socket_spoilt(s->fd)) {
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

static int headers_room(const transfer *t, size_t n)
{
    return n <= HEADERS_MAX && t->headers.len <= HEADERS_MAX - n;
}

/* obs-fold: a line starting with whitespace continues the previous value. */
static abort_reason header_continue(transfer *t, const char *s, size_t n)
{
    buffer *h = &t->headers;

    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    if (h->len == 0 || n == 0)
        return ABORT_NONE;
    if (!headers_room(t, n + 1))
        return ABORT_HEADERS_TOO_LARGE;
    h->len--; /* reopen the last value: drop its terminating NUL */
    if (h->data[h->len - 1] != '\0' && buffer_append_byte(h, ' ') != 0)
        return ABORT_OOM;
    if (buffer_append(h, s, n) != 0 || buffer_append_byte(h, '\0') != 0)
        return ABORT_OOM;
    return ABORT_NONE;
}

static abort_reason header_add(transfer *t, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    const char *value;
    size_t name_len, value_len, start;

    if (colon == NULL)
        return ABORT_NONE; /* not a header; nothing useful to keep */
    name_len = (size_t)(colon - s);
    while (name_len > 0 && is_space(s[name_len - 1]))
        name_len--;
    if (name_len == 0)
        return ABORT_NONE;
    value = colon + 1;
    value_len = n - (size_t)(value - s);
    while (value_len > 0 && is_space(*value)) {
        value++;
        value_len--;
    }
    if (!headers_room(t, name_len + value_len + 2))
        return ABORT_HEADERS_TOO_LARGE;
    start = t->headers.len;
    if (buffer_append(&t->headers, s, name_len) != 0 ||
        buffer_append_byte(&t->headers, '\0') != 0 ||
        buffer_append(&t->headers, value, value_len) != 0 ||
        buffer_append_byte(&t->headers, '\0') != 0)
        return ABORT_OOM;
    lowercase(t->headers.data + start, name_len);
    return ABORT_NONE;
}

/* A status line: is it an interim (1xx) response, and what does the
 * connection speak ("HTTP/2 200" or "HTTP/1.1 200 OK")? */
static void note_status_line(transfer *t, const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);
    conn_socket *s;

    t->interim = sp != NULL && (size_t)(sp - line) + 1 < n && sp[1] == '1';
    t->head_done = 0;
    if (t->conn_fd == CURL_SOCKET_BAD ||
        (s = sockets_by_fd(t->sockets, t->conn_fd)) == NULL || s->proto != PROTO_UNKNOWN)
        return;
    s->proto = n > 5 && line[5] == '2' ? PROTO_H2 : PROTO_H1;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userp)
{
    transfer *t = userp;
    size_t total = size * nitems;
    size_t n = total;

    if (total > HEADERS_MAX - t->head_bytes) {
        t->abort = ABORT_HEADERS_TOO_LARGE;
        return 0;
    }
    t->head_bytes += total;
    while (n > 0 && is_space(line[n - 1]))
        n--;
    if (n == 0) {
        /* the blank line ending a header block: the final one unless 1xx.
         * A transfer that ends without it was cut off in its headers. */
        t->head_done = !t->interim;
        return total;
    }
    /* Headers are kept as "name\0value\0": a NUL inside a line would split
     * it into pairs that do not exist, and the reader would run past the
     * buffer.  libcurl 7.88 refuses such lines itself; older ones do not. */
    if (memchr(line, '\0', n) != NULL)
        return total;
    /* Every status line starts a new response (1xx, proxy CONNECT, ...):
     * only the final response's headers may reach the caller. */
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        t->headers.len = 0;
        note_status_line(t, line, n);
        return total;
    }
    t->abort = (line[0] == ' ' || line[0] == '\t')
                   ? header_continue(t, line, n)
                   : header_add(t, line, n);
    return t->abort == ABORT_NONE ? total : 0;
}

const char *transfer_header_next(const transfer *t, size_t *pos,
                                 const char **value)
{
    const char *name;

    if (t == NULL || *pos >= t->headers.len)
        return NULL;
    name = t->headers.data + *pos;
    *value = name + strlen(name) + 1;
    *pos = (size_t)(*value - t->headers.data) + strlen(*value) + 1;
    return name;
}

/* ---- error mapping -------------------------------------------------------- */

/*
 * libcurl's own limits on response headers fail a transfer with codes that
 * also mean other things (7.88.1, measured): a header line of 100 KiB or
 * more is CURLE_OUT_OF_MEMORY before on_header sees it (CURLE_TOO_LARGE
 * from 8.6), more than 300 KiB in all is CURLE_RECV_ERROR "Too large
 * response headers" (our cap comes first for the lines we see; libcurl
 * also counts a proxy's CONNECT headers, which we are not shown).  See
 * headers_refused() for how they are told apart.
 */
typedef enum {
    LIMIT_NONE = 0,
    LIMIT_LINE, /* also a header line over libcurl's limit */
    LIMIT_ALL   /* also more headers in all than libcurl's limit */
} header_limit;

/*
 * The kind of every libcurl result we tell apart; anything else is
 * "internal".  Whether the request may have reached the server is not in
 * this table: one code comes before or after the request left (a reply that
 * is not HTTP is CURLE_UNSUPPORTED_PROTOCOL, as a scheme libcurl lacks
 * would be), so request_left() decides it for every result alike.
 */
static const struct error_class {
    CURLcode code;
    transport_kind kind;
    header_limit limit; /* when it is libcurl's refusal of the headers: TK_TOO_LARGE */
} error_classes[] = {
    {CURLE_OPERATION_TIMEDOUT, TK_TIMEOUT, LIMIT_NONE},

    {CURLE_COULDNT_RESOLVE_PROXY, TK_NETWORK, LIMIT_NONE},
    {CURLE_COULDNT_RESOLVE_HOST, TK_NETWORK, LIMIT_NONE},
    {CURLE_COULDNT_CONNECT, TK_NETWORK, LIMIT_NONE},
#if LIBCURL_VERSION_NUM >= 0x074900
    {CURLE_PROXY, TK_NETWORK, LIMIT_NONE}, /* proxy handshake: origin never reached */
#endif
#if LIBCURL_VERSION_NUM >= 0x074500
    {CURLE_QUIC_CONNECT_ERROR, TK_NETWORK, LIMIT_NONE},
#endif
    {CURLE_SEND_ERROR, TK_NETWORK, LIMIT_NONE},
    {CURLE_SEND_FAIL_REWIND, TK_NETWORK, LIMIT_NONE}, /* see on_read() */
    {CURLE_RECV_ERROR, TK_NETWORK, LIMIT_ALL},
    {CURLE_GOT_NOTHING, TK_NETWORK, LIMIT_NONE},
    {CURLE_PARTIAL_FILE, TK_NETWORK, LIMIT_NONE},
    {CURLE_WEIRD_SERVER_REPLY, TK_NETWORK, LIMIT_NONE},
    /* Our schemes are fixed (CURLOPT_PROTOCOLS_STR): this is a reply that is
     * not HTTP, HTTP/0.9 or a status line libcurl refuses (0, 099, 2000). */
    {CURLE_UNSUPPORTED_PROTOCOL, TK_NETWORK, LIMIT_NONE},
    {CURLE_BAD_CONTENT_ENCODING, TK_NETWORK, LIMIT_NONE},
    {CURLE_HTTP2, TK_NETWORK, LIMIT_NONE},
    {CURLE_HTTP2_STREAM, TK_NETWORK, LIMIT_NONE},
#if LIBCURL_VERSION_NUM >= 0x074400
    {CURLE_HTTP3, TK_NETWORK, LIMIT_NONE},
#endif
#if LIBCURL_VERSION_NUM >= 0x075400
    {CURLE_UNRECOVERABLE_POLL, TK_NETWORK, LIMIT_NONE},
#endif

    {CURLE_SSL_CONNECT_ERROR, TK_TLS, LIMIT_NONE},
    {CURLE_PEER_FAILED_VERIFICATION, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_CERTPROBLEM, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_CIPHER, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_CACERT_BADFILE, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_CRL_BADFILE, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_ISSUER_ERROR, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_PINNEDPUBKEYNOTMATCH, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_INVALIDCERTSTATUS, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_ENGINE_NOTFOUND, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_ENGINE_SETFAILED, TK_TLS, LIMIT_NONE},
    {CURLE_SSL_ENGINE_INITFAILED, TK_TLS, LIMIT_NONE},
    {CURLE_USE_SSL_FAILED, TK_TLS, LIMIT_NONE},
#if LIBCURL_VERSION_NUM >= 0x074d00
    {CURLE_SSL_CLIENTCERT, TK_TLS, LIMIT_NONE},
#endif
    {CURLE_SSL_SHUTDOWN_FAILED, TK_TLS, LIMIT_NONE},

    {CURLE_URL_MALFORMAT, TK_INTERNAL, LIMIT_NONE},
    {CURLE_OUT_OF_MEMORY, TK_INTERNAL, LIMIT_LINE},
#if LIBCURL_VERSION_NUM >= 0x080600
    {CURLE_TOO_LARGE, TK_INTERNAL, LIMIT_LINE},
#endif
};

static const struct error_class *classify(CURLcode rc)
{
    static const struct error_class unknown = {CURLE_OK, TK_INTERNAL, LIMIT_NONE};
    size_t i;

    for (i = 0; i < sizeof error_classes / sizeof error_classes[0]; i++)
        if (error_classes[i].code == rc)
            return &error_classes[i];
    return &unknown;
}

static const char died_unanswered[] =
    "the connection closed before any response (a reused connection; the "
    "request may have been processed)";

static int request_left(transfer *t);

/* Our own aborts are reported by libcurl as a write or callback error. */
static void describe_abort(transfer *t, transport_result *out)
{
    out->sent = 1;
    switch (t->abort) {
    case ABORT_INTERRUPTED:
        out->kind = TK_INTERRUPTED;
        out->sent = request_left(t);
        snprintf(t->errbuf, sizeof t->errbuf, "%s", INTERRUPT_MESSAGE);
        break;
    case ABORT_RESEND:
        out->kind = TK_NETWORK;
        snprintf(t->errbuf, sizeof t->errbuf, "%s", died_unanswered);
        break;
    case ABORT_STALE: /* STALE_REDO_MAX connections in a row, and nothing sent */
        out->kind = TK_NETWORK;
        out->sent = 0;
        snprintf(t->errbuf, sizeof t->errbuf, "every kept-alive connection had "
                 "unread bytes or was closed by the server");
        break;
    case ABORT_BODY_TOO_LARGE:
        out->kind = TK_TOO_LARGE;
        snprintf(t->errbuf, sizeof t->errbuf,
                 "response body exceeds max_body (%zu bytes)", t->t->max_body);
        break;
    case ABORT_HEADERS_TOO_LARGE:
        out->kind = TK_TOO_LARGE;
        snprintf(t->errbuf, sizeof t->errbuf,
                 "response headers exceed %zu bytes", HEADERS_MAX);
        break;
    default:
        out->kind = TK_INTERNAL;
        snprintf(t->errbuf, sizeof t->errbuf,
                 "out of memory while receiving the response");
        break;
    }
}

/* libcurl's messages are one line already; make sure of it anyway. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            *s = ' ';
}

/*
 * Whether any byte of this request was handed to the connection: libcurl
 * counts them from the start of each transfer (CURLINFO_REQUEST_SIZE: the
 * request's head and what of the body went with it, after a proxy's
 * CONNECT; SIZE_UPLOAD: body bytes sent later).  None means the server
 * cannot have seen this request, whatever the error, and so does a request
 * libcurl never began (on_prereq did not run: connect, tunnel or TLS
 * failed).  When libcurl cannot say, assume it left.
 */
static int request_left(transfer *t)
{
    long size = 0, before = 0;
#if LIBCURL_VERSION_NUM >= 0x073700
    curl_off_t body = 0;
#endif

#if BODY_IN_FIRST_SEND
    if (t->sends == 0)
        return 0;
    before = t->before_request;
#endif
    if (curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &size) != CURLE_OK ||
        size > before)
        return 1;
#if LIBCURL_VERSION_NUM >= 0x073700
    return curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &body) != CURLE_OK ||
           body > 0;
#else
    return 0;
#endif
}

/*
 * Whether a result that may be libcurl's refusal of the response headers
 * (error_classes) is one.  A line too long: the request left and no body
 * byte came, so libcurl was reading the response's head.  Too much in all:
 * libcurl says so, or it counted more header bytes than our cap lets
 * through, which only its own limit then stopped.
 */
static int headers_refused(transfer *t, header_limit limit, int body_seen)
{
    static const char too_large[] = "Too large response headers";
    long size = 0;

    switch (limit) {
    case LIMIT_LINE:
        return !body_seen && request_left(t);
    case LIMIT_ALL:
        return strncmp(t->errbuf, too_large, sizeof too_large - 1) == 0 ||
               (curl_easy_getinfo(t->easy, CURLINFO_HEADER_SIZE, &size) == CURLE_OK &&
                size > 0 && (size_t)size > HEADERS_MAX);
    default:
        return 0;
    }
}

static void describe_refusal(transfer *t, CURLcode rc)
{
    char said[CURL_ERROR_SIZE];

    snprintf(said, sizeof said, "%s",
             t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(rc));
    snprintf(t->errbuf, sizeof t->errbuf,
             "response headers exceed libcurl's limits (libcurl: %.180s)", said);
}

static int fail_curl(transfer *t, CURLcode rc, transport_result *out)
{
    const struct error_class *ec = classify(rc);
    int body_seen = t->body.len > 0;

    /* A failed transfer must leave nothing for the caller to misread. */
    t->body.len = 0;
    t->headers.len = 0;
    if (t->abort != ABORT_NONE) {
        describe_abort(t, out);
    } else if (headers_refused(t, ec->limit, body_seen)) {
        /* The server's fault, as with our own cap: never worth a retry. */
        out->kind = TK_TOO_LARGE;
        out->sent = request_left(t); /* not after a proxy's CONNECT answer */
        describe_refusal(t, rc);
    } else {
        out->kind = ec->kind;
        out->sent = request_left(t);
        if (rc == CURLE_SEND_FAIL_REWIND) /* libcurl's words name its own need */
            snprintf(t->errbuf, sizeof t->errbuf, "%s", died_unanswered);
        if (t->errbuf[0] == '\0')
            snprintf(t->errbuf, sizeof t->errbuf, "%s", curl_easy_strerror(rc));
    }
    one_line(t->errbuf);
    out->message = t->errbuf;
    return (int)out->kind;
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
    return buffer_append(&t->url, t->t->base_url, t->t->base_len) != 0 ||
           buffer_append(&t->url, path, strlen(path) + 1) != 0;
}

static CURLcode set_request(transfer *t, const char *body, size_t len,
                            int with_auth)
{
    struct curl_slist *hdrs =
        with_auth && t->t->hdr_auth != NULL ? t->t->hdr_auth : t->t->hdr_plain;
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
    buffer_reset(&t->headers);
    t->abort = ABORT_NONE;
    t->head_bytes = 0;
    t->errbuf[0] = '\0';
    t->conn_fd = CURL_SOCKET_BAD;
    t->interim = t->head_done = 0;
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
    t->body.len = t->headers.len = 0;
    t->interim = t->head_done = 0;
    return 1;
#else
    (void)rc;
    return 0;
#endif
}

static const char cut_headers[] =
    "the connection closed in the middle of the response headers";

int transfer_end(transfer *t, CURLcode rc, transport_result *out)
{
    memset(out, 0, sizeof *out);
    allow_reuse(t);
    release_body(t);
    if (rc != CURLE_OK)
        return fail_curl(t, rc, out);
    /* libcurl calls a close in the middle of the headers a complete
     * response (status 200, no body): it is a broken transfer. */
    if (!t->head_done) {
        t->body.len = 0;
        t->headers.len = 0;
        return fail_plain(out, TK_NETWORK, cut_headers, 1);
    }
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

static void free_header_list(struct curl_slist *list)
{
    struct curl_slist *node;

    for (node = list; node != NULL; node = node->next)
        wipe(node->data, strlen(node->data));
    curl_slist_free_all(list);
}

static struct curl_slist *append_or_free(struct curl_slist *list,
                                         const char *line)
{
    struct curl_slist *grown = curl_slist_append(list, line);

    if (grown == NULL)
        free_header_list(list);
    return grown;
}

/* Builds the list every request sends; with a token, adds Authorization.
 * Our temporary copy of the header line is wiped: the slist keeps the only
 * one, and that is wiped in free_header_list(). */
static struct curl_slist *build_header_list(const char *token)
{
    /* "Expect:" stops libcurl from waiting for 100-continue on big bodies. */
    static const char *const common[] = {
        "Accept: application/json", "Content-Type: application/json", "Expect:"};
    struct curl_slist *list = NULL;
    size_t i, n;
    char *line;

    for (i = 0; i < sizeof common / sizeof common[0]; i++)
        if ((list = append_or_free(list, common[i])) == NULL)
            return NULL;
    if (token == NULL)
        return list;
    n = sizeof AUTH_PREFIX + strlen(token);
    line = malloc(n);
    if (line == NULL) {
        free_header_list(list);
        return NULL;
    }
    snprintf(line, n, "%s%s", AUTH_PREFIX, token);
    list = append_or_free(list, line);
    wipe(line, n);
    free(line);
    return list;
}

/* NULL stays NULL; returns -1 only when a copy was needed and failed. */
static int copy_string(char **dst, const char *src)
{
    size_t n;

    *dst = NULL;
    if (src == NULL)
        return 0;
    n = strlen(src) + 1;
    *dst = malloc(n);
    if (*dst == NULL)
        return -1;
    memcpy(*dst, src, n);
    return 0;
}

static int copy_config(transport *t, const transport_config *cfg)
{
    t->base_len = strlen(cfg->base_url);
    t->max_body = cfg->max_body;
    t->timeout_ms = cfg->timeout_ms;
    t->connect_timeout_ms = cfg->connect_timeout_ms;
    t->insecure = cfg->insecure;
    t->interruptible = cfg->interruptible;
    return copy_string(&t->base_url, cfg->base_url) != 0 ||
           copy_string(&t->ca_file, cfg->ca_file) != 0 ||
           copy_string(&t->ca_path, cfg->ca_path) != 0 ||
           copy_string(&t->proxy, cfg->proxy) != 0 ||
           copy_string(&t->user_agent, cfg->user_agent) != 0
               ? -1
               : 0;
}

#define SETOPT(opt, val)                                                      \
    do {                                                                      \
        CURLcode rc_ = curl_easy_setopt(tr->easy, opt, val);                  \
        if (rc_ != CURLE_OK) {                                                \
            snprintf(err, errlen, "cannot set " #opt ": %s",                  \
                     curl_easy_strerror(rc_));                                \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* Settings that never change over the handle's life. */
static int configure_fixed(transfer *tr, char *err, size_t errlen)
{
    SETOPT(CURLOPT_ERRORBUFFER, tr->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);      /* timeouts must not use SIGALRM */
    SETOPT(CURLOPT_NOPROGRESS, 1L);
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L); /* the caller sees 3xx as is */
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (transport_has_http2())
        SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
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
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SETOPT(CURLOPT_OPENSOCKETDATA, tr->sockets);
    SETOPT(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SETOPT(CURLOPT_CLOSESOCKETDATA, tr->sockets);
    return 0;
}

/* A caller's value libcurl refuses (e.g. a string over its 8 MB input
 * limit): the error names the caller's option, not libcurl's. */
#define SETOPT_USER(opt, val, name)                                           \
    do {                                                                      \
        CURLcode rc_ = curl_easy_setopt(tr->easy, opt, val);                  \
        if (rc_ != CURLE_OK) {                                                \
            snprintf(err, errlen, "option '%s' was refused by libcurl: %s",   \
                     name, curl_easy_strerror(rc_));                          \
            return -1;                                                        \
        }                                                                     \
    } while (0)

/* Settings from the caller's configuration; libcurl copies the strings. */
static int configure_user(transfer *tr, const transport *t, char *err,
                          size_t errlen)
{
    SETOPT_USER(CURLOPT_TIMEOUT_MS, t->timeout_ms, "timeout");
    SETOPT_USER(CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms, "connect_timeout");
    SETOPT_USER(CURLOPT_USERAGENT, t->user_agent, "user_agent");
    SETOPT_USER(CURLOPT_SSL_VERIFYPEER, t->insecure ? 0L : 1L, "insecure");
    SETOPT_USER(CURLOPT_SSL_VERIFYHOST, t->insecure ? 0L : 2L, "insecure");
    if (t->ca_file != NULL)
        SETOPT_USER(CURLOPT_CAINFO, t->ca_file, "ca_file");
    if (t->ca_path != NULL)
        SETOPT_USER(CURLOPT_CAPATH, t->ca_path, "ca_path");
    if (t->proxy != NULL)
        SETOPT_USER(CURLOPT_PROXY, t->proxy, "proxy");
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

#undef SETOPT_USER
#undef SETOPT

/* A new easy handle for tr, configured from its transport. */
static int transfer_setup(transfer *tr, char *err, size_t errlen)
{
    tr->easy = curl_easy_init();
    if (tr->easy == NULL) {
        copy_error(err, errlen, "curl_easy_init failed");
        return -1;
    }
    if (configure_fixed(tr, err, errlen) != 0 ||
        configure_user(tr, tr->t, err, errlen) != 0) {
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
    buffer_free(&tr->headers);
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
    if (copy_config(t, cfg) != 0 ||
        (t->hdr_plain = build_header_list(NULL)) == NULL ||
        (cfg->token != NULL &&
         (t->hdr_auth = build_header_list(cfg->token)) == NULL)) {
        copy_error(err, errlen, "out of memory");
        goto fail;
    }
    t->own = transfer_new(t, err, errlen);
    if (t->own == NULL ||
        (t->interruptible && watch_progress(t->own, err, errlen) != 0))
        goto fail;
    return t;
fail:
    transport_free(t);
    return NULL;
}

int transport_has_token(const transport *t)
{
    return t != NULL && t->hdr_auth != NULL;
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
    /* The handle first: it points at the header lists below. */
    transfer_free(t->own);
    free_header_list(t->hdr_auth);
    free_header_list(t->hdr_plain);
    free(t->base_url);
    free(t->ca_file);
    free(t->ca_path);
    free(t->proxy);
    free(t->user_agent);
    free(t->sockets.v); /* every handle, and with it every socket, is gone */
    free(t);
}
