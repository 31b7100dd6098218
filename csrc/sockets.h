/*
 * sockets.h - the sockets of one transport's connections.  Plain C.
 *
 * libcurl opens and closes every socket through sockets_open() and
 * sockets_close() (its OPENSOCKET and CLOSESOCKET callbacks, with the set
 * as their data), so a transport knows the sockets of its connections: to
 * look at one before it is reused (sockets_stale), and to let go of those
 * a fork() inherited without touching them (sockets_disown).
 */
#ifndef WEMASY_SOCKETS_H
#define WEMASY_SOCKETS_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/types.h>

#include <curl/curl.h>

/* What a connection's first response said it speaks.  Only an HTTP/1
 * connection is checked for unread bytes before reuse: over HTTP/2 the peer
 * may send frames at any time (PING, SETTINGS, other streams' data), and
 * every answer carries its stream's id anyway. */
typedef enum { PROTO_UNKNOWN = 0, PROTO_H1, PROTO_H2 } conn_proto;

/* One socket libcurl opened through sockets_open(), until it closes it. */
typedef struct {
    curl_socket_t fd;         /* CURL_SOCKET_BAD: a free slot */
    pid_t pid;                /* the process that opened it */
    int port;                 /* local port; 0: not looked up yet, -1: never match */
    char ip[INET6_ADDRSTRLEN]; /* local address, as libcurl prints it */
    conn_proto proto;
} conn_socket;

/* The sockets of every handle of one transport (its own and a batch's);
 * all zero is an empty set. */
typedef struct {
    conn_socket *v;
    size_t n;
} socket_set;

/* libcurl's callbacks (CURLOPT_OPENSOCKETFUNCTION, CLOSESOCKETFUNCTION);
 * clientp is the socket_set. */
curl_socket_t sockets_open(void *clientp, curlsocktype purpose,
                           struct curl_sockaddr *addr);
int sockets_close(void *clientp, curl_socket_t fd);

/* The socket of the connection libcurl chose for a request, by the local
 * address its prereq callback names; NULL when it is not one of ours. */
conn_socket *sockets_find(socket_set *set, const char *ip, int port);

/* 1: s is an HTTP/1 connection that served a response before and has
 * unread bytes (a response nobody asked for, a 408), the peer's FIN or an
 * error: the next request must not go out on it. */
int sockets_stale(const conn_socket *s);

/* The first response on the connection of fd said what it speaks; later
 * ones change nothing.  An fd that is not ours is ignored. */
void sockets_learn_proto(socket_set *set, curl_socket_t fd, conn_proto proto);

/* In a child of fork() (me): every socket another process opened becomes
 * /dev/null, so closing its connection reaches nothing that process still
 * uses.  Returns -1 when some could not be. */
int sockets_disown(socket_set *set, pid_t me);

/* Frees the set; every handle, and with it every socket, must be gone. */
void sockets_free(socket_set *set);

#endif /* WEMASY_SOCKETS_H */
