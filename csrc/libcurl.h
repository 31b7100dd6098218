/*
 * libcurl.h - libcurl as loaded, process-wide: its one-time setup, and
 * what it is (the library at run time, not the headers we built with).
 * Plain C.
 */
#ifndef WEMASY_LIBCURL_H
#define WEMASY_LIBCURL_H

/* One-time process-wide libcurl setup; safe to call from any thread, any
 * number of times.  Returns 0 on success. */
int libcurl_global_init(void);

const char *libcurl_version(void);
const char *libcurl_ssl_version(void); /* NULL without TLS support */
int libcurl_has_http2(void);

#endif /* WEMASY_LIBCURL_H */
