/*
 * classify.c - libcurl's results as transport kinds (classify.h): the table
 * of codes, our own aborts, libcurl's refusals of the response headers, and
 * whether any byte of the request left.
 */
#include "classify.h"

#include <stdio.h>
#include <string.h>

#include "headers.h"
#include "interrupt.h"

/*
 * libcurl's own limits on response headers fail a transfer with codes that
 * also mean other things (7.88.1, measured): a header line of 100 KiB or
 * more is CURLE_OUT_OF_MEMORY before our header callback sees it
 * (CURLE_TOO_LARGE from 8.6), more than 300 KiB in all is CURLE_RECV_ERROR
 * "Too large response headers" (our cap, HEADERS_MAX, comes first for the
 * lines we see; libcurl also counts a proxy's CONNECT headers, which we are
 * not shown).  See headers_refused() for how they are told apart.
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
    /* no way to rewind the body: see transport.c's on_read() */
    {CURLE_SEND_FAIL_REWIND, TK_NETWORK, LIMIT_NONE},
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

static const struct error_class *class_of(CURLcode rc)
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

/*
 * Whether any byte of this request was handed to the connection: libcurl
 * counts them from the start of each transfer (CURLINFO_REQUEST_SIZE: the
 * request's head and what of the body went with it, after a proxy's
 * CONNECT; SIZE_UPLOAD: body bytes sent later).  None means the server
 * cannot have seen this request, whatever the error, and so does a request
 * libcurl never began (connect, tunnel or TLS failed).  When libcurl cannot
 * say, assume it left.
 */
static int request_left(const classify_facts *f)
{
    long size = 0;
#if LIBCURL_VERSION_NUM >= 0x073700
    curl_off_t body = 0;
#endif

    if (!f->began)
        return 0;
    if (curl_easy_getinfo(f->easy, CURLINFO_REQUEST_SIZE, &size) != CURLE_OK ||
        size > f->before_request)
        return 1;
#if LIBCURL_VERSION_NUM >= 0x073700
    return curl_easy_getinfo(f->easy, CURLINFO_SIZE_UPLOAD_T, &body) != CURLE_OK ||
           body > 0;
#else
    return 0;
#endif
}

/* Our own aborts are reported by libcurl as a write or callback error. */
static void describe_abort(const classify_facts *f, transport_result *out)
{
    out->sent = 1;
    switch (f->abort) {
    case ABORT_INTERRUPTED:
        out->kind = TK_INTERRUPTED;
        out->sent = request_left(f);
        snprintf(f->errbuf, CURL_ERROR_SIZE, "%s", INTERRUPT_MESSAGE);
        break;
    case ABORT_RESEND:
        out->kind = TK_NETWORK;
        snprintf(f->errbuf, CURL_ERROR_SIZE, "%s", died_unanswered);
        break;
    case ABORT_STALE: /* transport.c's STALE_REDO_MAX in a row, nothing sent */
        out->kind = TK_NETWORK;
        out->sent = 0;
        snprintf(f->errbuf, CURL_ERROR_SIZE, "every kept-alive connection had "
                 "unread bytes or was closed by the server");
        break;
    case ABORT_BODY_TOO_LARGE:
        out->kind = TK_TOO_LARGE;
        snprintf(f->errbuf, CURL_ERROR_SIZE,
                 "response body exceeds max_body (%zu bytes)", f->max_body);
        break;
    case ABORT_HEADERS_TOO_LARGE:
        out->kind = TK_TOO_LARGE;
        snprintf(f->errbuf, CURL_ERROR_SIZE,
                 "response headers exceed %zu bytes", HEADERS_MAX);
        break;
    default:
        out->kind = TK_INTERNAL;
        snprintf(f->errbuf, CURL_ERROR_SIZE,
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
 * Whether a result that may be libcurl's refusal of the response headers
 * (error_classes) is one.  A line too long: the request left and no body
 * byte came, so libcurl was reading the response's head.  Too much in all:
 * libcurl says so, or it counted more header bytes than our cap lets
 * through, which only its own limit then stopped.
 */
static int headers_refused(const classify_facts *f, header_limit limit)
{
    static const char too_large[] = "Too large response headers";
    long size = 0;

    switch (limit) {
    case LIMIT_LINE:
        return !f->body_seen && request_left(f);
    case LIMIT_ALL:
        return strncmp(f->errbuf, too_large, sizeof too_large - 1) == 0 ||
               (curl_easy_getinfo(f->easy, CURLINFO_HEADER_SIZE, &size) == CURLE_OK &&
                size > 0 && (size_t)size > HEADERS_MAX);
    default:
        return 0;
    }
}

static void describe_refusal(const classify_facts *f, CURLcode rc)
{
    char said[CURL_ERROR_SIZE];

    snprintf(said, sizeof said, "%s",
             f->errbuf[0] != '\0' ? f->errbuf : curl_easy_strerror(rc));
    snprintf(f->errbuf, CURL_ERROR_SIZE,
             "response headers exceed libcurl's limits (libcurl: %.180s)", said);
}

int classify_failure(const classify_facts *f, CURLcode rc, transport_result *out)
{
    const struct error_class *ec = class_of(rc);

    if (rc == CURLE_OK && !f->head_complete) {
        /* libcurl calls a close in the middle of the headers a complete
         * response (status 200, no body): it is a broken transfer. */
        out->kind = TK_NETWORK;
        out->sent = 1;
        snprintf(f->errbuf, CURL_ERROR_SIZE,
                 "the connection closed in the middle of the response headers");
    } else if (f->abort != ABORT_NONE) {
        describe_abort(f, out);
    } else if (headers_refused(f, ec->limit)) {
        /* The server's fault, as with our own cap: never worth a retry. */
        out->kind = TK_TOO_LARGE;
        out->sent = request_left(f); /* not after a proxy's CONNECT answer */
        describe_refusal(f, rc);
    } else {
        out->kind = ec->kind;
        out->sent = request_left(f);
        if (rc == CURLE_SEND_FAIL_REWIND) /* libcurl's words name its own need */
            snprintf(f->errbuf, CURL_ERROR_SIZE, "%s", died_unanswered);
        if (f->errbuf[0] == '\0')
            snprintf(f->errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    }
    one_line(f->errbuf);
    out->message = f->errbuf;
    return (int)out->kind;
}
