/* SPDX-License-Identifier: MIT */
/*
 * libcurl's multi socket API glued to sd-event, after systemd's CurlGlue: curl tells us which sockets to
 * watch (one io source per socket) and when to call it back (one oneshot timer); our io and timer
 * handlers call curl_multi_socket_action() and then drain curl_multi_info_read() until it is empty.
 *
 * Invariant: a request's completion callback runs at most once, never from inside a curl callback, and
 * never after http_request_cancel(). Cancelling while curl is on the stack (from an on_data callback of
 * another request) only marks the request; it is reaped once curl has returned.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "pgha/http_client.h"

#define HTTP_MAX_BODY_DEFAULT (4U * 1024U * 1024U)

typedef struct HttpSocket HttpSocket;

struct HttpSocket {
        HttpClient *client;
        curl_socket_t fd;
        sd_event_source *io;
        HttpSocket *prev, *next;
};

struct HttpRequest {
        HttpClient *client;
        CURL *easy;
        struct curl_slist *headers;
        char *url;
        char *response; /* buffered body (non-streaming), NUL-terminated */
        size_t response_size;
        size_t response_allocated;
        size_t max_body;
        HttpRequestDone on_done;
        HttpRequestData on_data;
        void *userdata;
        bool cancelled; /* callbacks disarmed; freed at the next safe point */
        bool too_big;   /* the body exceeded max_body */
        bool aborted;   /* on_data asked to stop */
        HttpRequest *prev, *next;
        CURLcode result; /* of the finished transfer, for http_request_error() */
        char error[CURL_ERROR_SIZE];
};

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer; /* "http-timer": curl's single timeout */
        int64_t priority;
        HttpRequest *requests; /* every request not yet freed, cancelled ones included */
        size_t n_active;       /* requests whose callback may still run */
        HttpSocket *sockets;   /* io sources, one per socket curl watches */
        unsigned in_curl;      /* > 0 while curl_multi_socket_action() is on the stack */
};

static void http_request_free(HttpRequest *req) {
        HttpClient *c;

        if (!req)
                return;
        c = req->client;
        if (req->easy) {
                if (c && c->multi)
                        (void)curl_multi_remove_handle(c->multi, req->easy);
                curl_easy_cleanup(req->easy);
        }
        if (c) {
                if (req->prev)
                        req->prev->next = req->next;
                else
                        c->requests = req->next;
                if (req->next)
                        req->next->prev = req->prev;
                if (!req->cancelled)
                        c->n_active--;
        }
        curl_slist_free_all(req->headers);
        free(req->url);
        free(req->response);
        free(req);
}

static void http_socket_free(HttpSocket *s) {
        HttpClient *c = s->client;

        if (s->prev)
                s->prev->next = s->next;
        else
                c->sockets = s->next;
        if (s->next)
                s->next->prev = s->prev;
        sd_event_source_disable_unref(s->io);
        free(s);
}

static int http_errno_from_curl(const HttpRequest *req, CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_WRITE_ERROR:
                return req->too_big ? -EFBIG : req->aborted ? -ECANCELED : -EIO;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        case CURLE_UNSUPPORTED_PROTOCOL: /* also "Received HTTP/0.9": not an HTTP server */
        case CURLE_WEIRD_SERVER_REPLY:
                return -EPROTO;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/* Delivers every finished transfer. Runs only outside curl callbacks. */
static void http_client_check_finished(HttpClient *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                HttpRequest *req = NULL;
                long status = 0;
                int error;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req) != CURLE_OK || !req)
                        continue;
                req->result = msg->data.result;
                error = http_errno_from_curl(req, msg->data.result);
                (void)curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
                (void)curl_multi_remove_handle(c->multi, req->easy);
                if (!req->cancelled && req->on_done) {
                        HttpRequestDone done = req->on_done;

                        /* From here on a cancel from inside the callback is a no-op. */
                        req->cancelled = true;
                        c->n_active--;
                        done(req,
                             error,
                             error < 0 ? 0 : status,
                             req->response ?: "",
                             req->response_size,
                             req->userdata);
                }
                http_request_free(req);
        }

        /* Reap requests cancelled while curl was on the stack. */
        for (HttpRequest *r = c->requests, *n; r; r = n) {
                n = r->next;
                if (r->cancelled)
                        http_request_free(r);
        }
}

static void http_client_socket_action(HttpClient *c, curl_socket_t fd, int action) {
        int running;

        c->in_curl++;
        (void)curl_multi_socket_action(c->multi, fd, action, &running);
        c->in_curl--;
        http_client_check_finished(c);
}

static int on_http_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpSocket *hs = userdata;
        int action = 0;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        /* hs may be freed inside: do not touch it afterwards. */
        http_client_socket_action(hs->client, fd, action);
        return 0;
}

static int on_http_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        http_client_socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

/* curl_socket_cb - curl's CURLMOPT_SOCKETFUNCTION: add, update or drop the io source of one socket. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
        HttpClient *c = userp;
        HttpSocket *hs = socketp;
        uint32_t events = 0;
        int r;

        if (action == CURL_POLL_REMOVE) {
                if (hs) {
                        (void)curl_multi_assign(c->multi, fd, NULL);
                        http_socket_free(hs);
                }
                return 0;
        }
        if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (hs) {
                r = sd_event_source_set_io_events(hs->io, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(hs->io, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }

        hs = calloc(1, sizeof(HttpSocket));
        if (!hs)
                return -1;
        hs->client = c;
        hs->fd = fd;
        r = sd_event_add_io(c->event, &hs->io, fd, events, on_http_io, hs);
        if (r < 0) {
                free(hs);
                return -1;
        }
        (void)sd_event_source_set_priority(hs->io, c->priority);
        (void)sd_event_source_set_description(hs->io, "http-io");
        hs->next = c->sockets;
        if (c->sockets)
                c->sockets->prev = hs;
        c->sockets = hs;
        if (curl_multi_assign(c->multi, fd, hs) != CURLM_OK) {
                http_socket_free(hs);
                return -1;
        }
        return 0;
}

/* curl_timer_cb - CURLMOPT_TIMERFUNCTION: (re)arm or disarm our one timer. Never calls into curl. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpClient *c = userp;
        usec_t now;
        int r;

        if (timeout_ms < 0)
                return c->timer && sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return -1;
        if (!c->timer) {
                r = sd_event_add_time(
                        c->event,
                        &c->timer,
                        CLOCK_MONOTONIC,
                        now + (usec_t)timeout_ms * USEC_PER_MSEC,
                        1,
                        on_http_timer,
                        c);
                if (r < 0)
                        return -1;
                (void)sd_event_source_set_priority(c->timer, c->priority);
                (void)sd_event_source_set_description(c->timer, "http-timer");
                return 0;
        }
        r = sd_event_source_set_time(c->timer, now + (usec_t)timeout_ms * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r < 0 ? -1 : 0;
}

/* Every socket curl opens is close-on-exec, so children we spawn inherit none. */
static curl_socket_t curl_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
        int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

        return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static size_t curl_write_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        HttpRequest *req = userdata;
        size_t n = size * nmemb;

        if (req->cancelled)
                return 0;
        if (req->on_data) {
                if (req->on_data(req, data, n, req->userdata) < 0) {
                        req->aborted = true;
                        return 0;
                }
                return n;
        }
        if (n > req->max_body || req->response_size > req->max_body - n) {
                req->too_big = true;
                return 0;
        }
        if (req->response_size + n + 1 > req->response_allocated) {
                size_t want = MAX(req->response_allocated * 2, req->response_size + n + 1);
                char *p;

                want = MAX(want, (size_t)1024);
                p = realloc(req->response, want);
                if (!p)
                        return 0;
                req->response = p;
                req->response_allocated = want;
        }
        memcpy(req->response + req->response_size, data, n);
        req->response_size += n;
        req->response[req->response_size] = 0;
        return n;
}

/* http_client_new - a client on event; its io and timer sources run at priority (lower runs first).
 * Non-logging. */
int http_client_new(sd_event *event, int64_t priority, HttpClient **ret) {
        _cleanup_(http_client_freep) HttpClient *c = NULL;

        if (!event || !ret)
                return -EINVAL;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        c = calloc(1, sizeof(HttpClient));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->priority = priority;
        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK)
                return -EIO;
        *ret = TAKE_PTR(c);
        return 0;
}

/* http_client_free - cancels every request (no callbacks run), closes the connections, frees c.
 * Must not be called from inside one of c's callbacks. Returns NULL. */
HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        while (c->requests) {
                HttpRequest *r = c->requests;

                if (!r->cancelled) {
                        r->cancelled = true;
                        c->n_active--;
                }
                http_request_free(r);
        }
        if (c->multi)
                (void)curl_multi_cleanup(c->multi);
        while (c->sockets)
                http_socket_free(c->sockets);
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

/* http_client_start - starts a request described by o (strings are copied). On success *ret (optional)
 * is a handle valid until the on_done callback returns or http_request_cancel() is called. Non-logging;
 * errors: -EINVAL (no url/on_done), -ENOMEM, -EIO (curl refused an option). */
int http_client_start(HttpClient *c, const HttpRequestOptions *o, HttpRequest **ret) {
        HttpRequest *req;
        CURL *e;
        int r;

        if (!c || !o || !o->url || !o->on_done)
                return -EINVAL;

        req = calloc(1, sizeof(HttpRequest));
        if (!req)
                return -ENOMEM;
        req->client = c;
        req->next = c->requests;
        if (c->requests)
                c->requests->prev = req;
        c->requests = req;
        c->n_active++;
        req->on_done = o->on_done;
        req->on_data = o->on_data;
        req->userdata = o->userdata;
        req->max_body = o->max_body ?: HTTP_MAX_BODY_DEFAULT;
        req->url = strdup(o->url);
        req->easy = e = curl_easy_init();
        if (!req->url || !e) {
                r = -ENOMEM;
                goto fail;
        }
        r = -EIO;
        if (curl_easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PRIVATE, req) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->error) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROXY, "") !=
                    CURLE_OK || /* never an http_proxy from the environment */
            curl_easy_setopt(e, CURLOPT_USERAGENT, "pgha/" PGHA_VERSION) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_write_cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, req) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, curl_opensocket_cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout / USEC_PER_MSEC)) != CURLE_OK)
                goto fail;
        if (o->timeout > 0 && o->timeout < USEC_PER_MSEC &&
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1L) != CURLE_OK)
                goto fail;
        if (o->connect_timeout > 0 &&
            curl_easy_setopt(
                    e, CURLOPT_CONNECTTIMEOUT_MS, (long)MAX(o->connect_timeout / USEC_PER_MSEC, 1U)) !=
                    CURLE_OK)
                goto fail;
        if (o->body &&
            (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)o->body_size) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body) != CURLE_OK))
                goto fail;
        if (o->tcp_keepalive &&
            (curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L) != CURLE_OK))
                goto fail;
        if ((o->cacert && curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert) != CURLE_OK) ||
            (o->cert && curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert) != CURLE_OK) ||
            (o->key && curl_easy_setopt(e, CURLOPT_SSLKEY, o->key) != CURLE_OK) ||
            (o->key_password && curl_easy_setopt(e, CURLOPT_KEYPASSWD, o->key_password) != CURLE_OK) ||
            ((o->tls_no_verify_peer || o->tls_no_verify_host) &&
             curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK) ||
            (o->tls_no_verify_peer && curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK))
                goto fail;
        if (o->username &&
            (curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_USERNAME, o->username) != CURLE_OK ||
             curl_easy_setopt(e, CURLOPT_PASSWORD, strempty(o->password)) != CURLE_OK))
                goto fail;

        /* No "Expect: 100-continue" round trip for larger bodies. */
        req->headers = curl_slist_append(NULL, "Expect:");
        for (const char *const *h = o->headers; req->headers && h && *h; h++) {
                struct curl_slist *l = curl_slist_append(req->headers, *h);

                if (!l) {
                        curl_slist_free_all(req->headers);
                        req->headers = NULL;
                        break;
                }
                req->headers = l;
        }
        if (!req->headers) {
                r = -ENOMEM;
                goto fail;
        }
        if (curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers) != CURLE_OK)
                goto fail;
        if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
                goto fail;

        if (ret)
                *ret = req;
        return 0;

fail:
        req->cancelled = true;
        c->n_active--;
        if (req->easy) {
                curl_easy_cleanup(req->easy);
                req->easy = NULL;
        }
        http_request_free(req);
        return r;
}

/* http_request_cancel - stops req; its on_done callback will not run. Safe to call from any callback
 * of this client, including for a request whose on_done is running (then a no-op). */
void http_request_cancel(HttpRequest *req) {
        HttpClient *c;

        if (!req || req->cancelled)
                return;
        c = req->client;
        req->cancelled = true;
        req->on_done = NULL;
        req->on_data = NULL;
        c->n_active--;
        if (c->in_curl == 0)
                http_request_free(req);
        /* else reaped by http_client_check_finished() once curl returns */
}

/* http_client_active - number of requests whose callback may still run (for leak checks). */
size_t http_client_active(const HttpClient *c) {
        return c ? c->n_active : 0;
}

/* http_request_error - libcurl's own words on why req failed (e.g. "error setting certificate file:
 * /x", "SSL certificate problem: unable to get local issuer certificate", "Operation timed out after
 * 1000 milliseconds with 0 bytes received"), for the callback's error messages; "" when it did not
 * fail in the transport. Valid until the completion callback returns. */
const char *http_request_error(const HttpRequest *req) {
        if (!req || req->result == CURLE_OK)
                return "";
        return req->error[0] ? req->error : curl_easy_strerror(req->result);
}

/* http_request_url - the URL of req (for log lines). */
const char *http_request_url(const HttpRequest *req) {
        return req ? req->url : NULL;
}
