/*
 * curl_fold_uaf.c - libcurl before 8.1.0 uses freed memory when a response's
 * first header line is a folded continuation (" : v") and the easy handle
 * served a response before (curl issue #11101, fixed by curl PR #11103).
 *
 * Plain libcurl, no wemasy code: a server thread on 127.0.0.1 answers the
 * first request normally and the second, on the same kept-alive connection,
 * with "HTTP/1.1 200 OK\r\n : v\r\n...".  libcurl's header store
 * (headers.c, Curl_headers_push) unfolds the line into the previous header
 * it remembers (state.prevhead), which was freed when the second transfer
 * began: strlen() and realloc() of freed memory.
 *
 *   make repro-curl-fold   (runs it under valgrind; or build it with
 *                           -fsanitize=address and run it directly)
 *
 * Exit status: 0 when both transfers ended, whatever libcurl said; a crash
 * (glibc "double free" abort, a segfault) or valgrind's error exit code
 * otherwise.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

static const char normal[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-First: a-header-libcurl-stores\r\n"
    "Content-Length: 2\r\n\r\n{}";
static const char folded[] =
    "HTTP/1.1 200 OK\r\n : v\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

static int listener = -1;

/* Reads one request head; 0 at EOF. */
static int read_request(int fd)
{
    char buf[4096];
    size_t len = 0;

    while (len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);

        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return 1;
    }
    return 0;
}

static void *serve(void *arg)
{
    int answered = 0;

    (void)arg;
    while (answered < 2) {
        int fd = accept(listener, NULL, NULL);

        if (fd < 0)
            break;
        while (answered < 2 && read_request(fd)) {
            const char *r = answered++ == 0 ? normal : folded;

            if (send(fd, r, strlen(r), 0) < 0)
                break;
        }
        close(fd);
    }
    return NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

int main(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    pthread_t server;
    char url[64];
    CURL *easy;
    int i;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listener, 4) != 0 ||
        getsockname(listener, (struct sockaddr *)&a, &alen) != 0) {
        perror("listen");
        return 2;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    if (pthread_create(&server, NULL, serve, NULL) != 0)
        return 2;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    printf("libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
    easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    for (i = 1; i <= 2; i++) {
        CURLcode rc = curl_easy_perform(easy);
        long status = 0;

        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        printf("transfer %d (%s): %s, status %ld\n", i,
               i == 1 ? "a normal response" : "first header folded",
               curl_easy_strerror(rc), status);
        fflush(stdout);
    }
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    close(listener);
    pthread_join(server, NULL);
    return 0;
}
