/*
 * libcurl.c - libcurl's process-wide setup and version facts (libcurl.h).
 */
#include "libcurl.h"

#include <pthread.h>

#include <curl/curl.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int libcurl_global_init(void)
{
    /* curl_global_init is not thread-safe in older libcurl; OpenResty may
     * load the module from several worker threads' states. */
    if (pthread_once(&global_once, global_init_once) != 0)
        return -1;
    return global_rc == CURLE_OK ? 0 : -1;
}

const char *libcurl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}

const char *libcurl_ssl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->ssl_version;
}

int libcurl_has_http2(void)
{
    return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0;
}
