/*
 * sockets.c - the socket set of a transport (sockets.h): libcurl's open and
 * close callbacks, the look before reuse, letting go after fork().
 */
#define _GNU_SOURCE /* POLLRDHUP, dup3, SOCK_CLOEXEC */
#include "sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int add_socket(socket_set *set, curl_socket_t fd)
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

static conn_socket *by_fd(socket_set *set, curl_socket_t fd)
{
    size_t i;

    for (i = 0; i < set->n; i++)
        if (set->v[i].fd == fd)
            return &set->v[i];
    return NULL;
}

/* Its local address, looked up once it has one (connect() binds it):
 * s->port stays 0 until then, -1 for what no prereq callback can name. */
static void learn_address(conn_socket *s)
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

conn_socket *sockets_find(socket_set *set, const char *ip, int port)
{
    size_t i;

    if (ip == NULL || port <= 0)
        return NULL;
    for (i = 0; i < set->n; i++) {
        conn_socket *s = &set->v[i];

        if (s->fd == CURL_SOCKET_BAD)
            continue;
        if (s->port == 0)
            learn_address(s);
        if (s->port == port && strcmp(s->ip, ip) == 0)
            return s;
    }
    return NULL;
}

/* A fresh connection has served nothing yet (PROTO_UNKNOWN) and may hold
 * TLS session tickets: only an HTTP/1 one is looked at. */
int sockets_stale(const conn_socket *s)
{
    struct pollfd p;

    if (s->proto != PROTO_H1)
        return 0;
    p.fd = s->fd;
    p.events = POLLIN;
#ifdef POLLRDHUP
    p.events |= POLLRDHUP;
#endif
    p.revents = 0;
    return poll(&p, 1, 0) != 0; /* a failed poll too: better a new connection */
}

void sockets_learn_proto(socket_set *set, curl_socket_t fd, conn_proto proto)
{
    conn_socket *s;

    if (fd == CURL_SOCKET_BAD || (s = by_fd(set, fd)) == NULL || s->proto != PROTO_UNKNOWN)
        return;
    s->proto = proto;
}

curl_socket_t sockets_open(void *clientp, curlsocktype purpose,
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
    if (add_socket(set, fd) != 0) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    return fd;
}

int sockets_close(void *clientp, curl_socket_t fd)
{
    conn_socket *s = by_fd(clientp, fd);

    if (s != NULL)
        s->fd = CURL_SOCKET_BAD;
    return close(fd);
}

/*
 * Whatever libcurl does when it closes an inherited connection (a TLS
 * close_notify, an HTTP/2 GOAWAY, close()) then reaches /dev/null.  Closing
 * our copy of a socket sends nothing by itself; a shutdown() or a TLS alert
 * would.
 */
int sockets_disown(socket_set *set, pid_t me)
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

void sockets_free(socket_set *set)
{
    free(set->v);
    set->v = NULL;
    set->n = 0;
}
