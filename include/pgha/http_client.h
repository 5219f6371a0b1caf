/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous HTTP client: libcurl's multi socket API driven by an sd-event loop. Requests complete
 * through a callback; each has its own timeout and a cap on the response body; a streaming request hands
 * the body over chunk by chunk as it arrives (etcd watches). http_request_cancel() guarantees the
 * completion callback will not run.
 */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

#include "pgha/macro.h"

typedef struct HttpClient HttpClient;
typedef struct HttpRequest HttpRequest;

/* Called once when a request ends. error: 0 when an HTTP response was received (any status), else a
 * negative errno: -ETIMEDOUT (request timeout), -ECONNREFUSED / -EHOSTUNREACH (could not connect),
 * -EFBIG (body over max_body), -ECONNRESET / -EIO (transport failure), -ECANCELED (on_data aborted).
 * body is NUL-terminated (empty for streaming requests). The request is freed after the callback
 * returns: drop every pointer to it there. The callback may start or cancel other requests. */
typedef void (*HttpRequestDone)(
        HttpRequest *req, int error, long status, const char *body, size_t size, void *userdata);

/* Streaming requests: called for every chunk of the body as it arrives. Return < 0 to abort the
 * request (it then completes with -ECANCELED). Must not cancel its own request (return < 0 instead). */
typedef int (*HttpRequestData)(HttpRequest *req, const char *data, size_t size, void *userdata);

typedef struct HttpRequestOptions {
        const char *url;
        const char *body; /* POST body (copied); NULL: GET */
        size_t body_size;
        const char *const *headers; /* NULL-terminated "Name: value" list, copied */
        usec_t timeout;             /* whole request; 0: none (streaming watches) */
        usec_t connect_timeout;     /* 0: curl's default */
        size_t max_body;            /* cap on a buffered body; 0: 4 MiB */
        const char *cacert;         /* TLS: CA bundle to verify the server with (NULL: system store) */
        const char *cert;           /* TLS client certificate (PEM) */
        const char *key;            /* its key, if not inside cert */
        const char *key_password;   /* passphrase of an encrypted key */
        bool tls_no_verify_peer;    /* do not verify the server's certificate at all */
        bool tls_no_verify_host;    /* verify the chain, but not that it names the URL's host */
        const char *username;       /* HTTP Basic authentication, sent with the request (NULL: none) */
        const char *password;
        bool tcp_keepalive;      /* SO_KEEPALIVE with 5 s idle/interval, for long-lived streams */
        HttpRequestDone on_done; /* required */
        HttpRequestData on_data; /* optional: stream the body instead of buffering it */
        void *userdata;
} HttpRequestOptions;

int http_client_new(sd_event *event, int64_t priority, HttpClient **ret) _warn_unused_result_;
HttpClient *http_client_free(HttpClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpClient *, http_client_free);

int http_client_start(HttpClient *c, const HttpRequestOptions *o, HttpRequest **ret) _warn_unused_result_;
void http_request_cancel(HttpRequest *req);
size_t http_client_active(const HttpClient *c);
const char *http_request_url(const HttpRequest *req);
const char *http_request_error(const HttpRequest *req);
