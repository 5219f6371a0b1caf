/* SPDX-License-Identifier: MIT */
/*
 * etcd gateway replies: recorded ones from etcd 3.4 (tests/fixtures/etcd/) and malformed variants, fed
 * to the parsers and, through a tiny loopback HTTP server on the test's own sd-event loop, to the
 * client (bad JSON, wrong types, errors, oversized bodies, hanging servers, cut streams, cancel).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "pgha/etcd.h"
#include "pgha/fileio.h"
#include "pgha/http_client.h"
#include "pgha/json.h"
#include "tests.h"

static char *fixture(const char *name) {
        _cleanup_free_ char *path = NULL;
        char *data = NULL;

        ASSERT_TRUE(asprintf(&path, "%s/etcd/%s", PGHA_FIXTURES_DIR, name) > 0);
        ASSERT_OK(read_full_file(path, 1 << 20, &data, NULL));
        return data;
}

static cJSON *fixture_json(const char *name) {
        _cleanup_free_ char *data = fixture(name);
        cJSON *j = NULL;

        ASSERT_OK(json_parse_string(data, &j));
        return j;
}

TEST(error_replies) {
        _cleanup_free_ char *body = fixture("error-lease-not-found.json"), *m = NULL, *m2 = NULL, *m3 = NULL;
        const char *stream =
                "{\"error\":{\"grpc_code\":16,\"http_code\":401,\"message\":\"etcdserver: invalid auth "
                "token\",\"http_status\":\"Unauthorized\"}}";

        ASSERT_ERROR(etcd_error_parse(404, body, strlen(body), &m), ENOENT);
        ASSERT_STREQ(m, "etcdserver: requested lease not found (code 5, HTTP 404)");
        ASSERT_ERROR(etcd_error_parse(401, stream, strlen(stream), &m2), EACCES);
        ASSERT_TRUE(strstr(m2, "invalid auth token") != NULL);
        /* Not JSON at all: mapped from the HTTP status, message says so. */
        ASSERT_ERROR(etcd_error_parse(503, "<html>", 6, &m3), EAGAIN);
        ASSERT_STREQ(m3, "HTTP 503 without an etcd error message");
        ASSERT_ERROR(etcd_error_parse(500, "{\"code\":\"x\"}", 12, NULL), EIO);
        ASSERT_ERROR(
                etcd_error_parse(
                        412,
                        "{\"code\":9,\"message\":\"etcdserver: authentication is not enabled\"}",
                        64,
                        NULL),
                EOPNOTSUPP);
}

TEST(range_recorded) {
        _cleanup_(cJSON_Deletep) cJSON *j = fixture_json("range-cluster-bootstrapping.json");
        EtcdKv *kvs = NULL;
        size_t n = 0;
        int64_t rev = 0;
        bool saw_init = false;

        ASSERT_OK(etcd_range_parse(j, &kvs, &n, &rev));
        ASSERT_EQ(n, 9);
        ASSERT_TRUE(rev > 0);
        for (size_t i = 0; i < n; i++) {
                if (streq(kvs[i].key, "/service/batman/initialize")) {
                        /* The gateway omits empty values. */
                        ASSERT_STREQ(kvs[i].value, "");
                        ASSERT_EQ(kvs[i].value_size, 0);
                        saw_init = true;
                }
                if (streq(kvs[i].key, "/service/batman/members/node1"))
                        ASSERT_TRUE(kvs[i].lease > 0);
                if (streq(kvs[i].key, "/service/batman/config"))
                        ASSERT_EQ(kvs[i].lease, 0);
        }
        ASSERT_TRUE(saw_init);
        etcd_kvs_free(kvs, n);
}

TEST(range_malformed) {
        static const char *const bad[] = {
                "{\"kvs\":[]}",                                 /* no header */
                "{\"header\":{\"revision\":\"x\"}}",            /* revision not a number */
                "{\"header\":{\"revision\":\"1\"},\"kvs\":{}}", /* kvs not an array */
                "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"value\":\"eA==\"}]}", /* no key */
                "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"!!!\"}]}",    /* bad base64 */
                "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"eA==\",\"lease\":true}]}", /* wrong
                                                                                                    type */
                "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"eA==\",\"mod_revision\":\"1.5\"}]}",
                "{\"header\":{\"revision\":\"1\"},\"kvs\":[1]}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(cJSON_Deletep) cJSON *j = NULL;
                EtcdKv *kvs = NULL;
                size_t n = 0;

                ASSERT_OK(json_parse_string(bad[i], &j));
                ASSERT_ERROR(etcd_range_parse(j, &kvs, &n, NULL), EBADMSG);
                ASSERT_NULL(kvs);
        }

        {
                _cleanup_(cJSON_Deletep) cJSON *j = NULL;
                EtcdKv *kvs = NULL;
                size_t n = 7;

                /* No kvs at all: an empty result (proto3 omits empty repeated fields). */
                ASSERT_OK(json_parse_string("{\"header\":{\"revision\":\"5\"}}", &j));
                ASSERT_OK(etcd_range_parse(j, &kvs, &n, NULL));
                ASSERT_EQ(n, 0);
                etcd_kvs_free(kvs, n);
        }
}

TEST(txn_and_lease_replies) {
        _cleanup_(cJSON_Deletep) cJSON *failed = fixture_json("txn-failed-acquire.json"),
                                       *expired = fixture_json("keepalive-expired.json"),
                                       *grant = fixture_json("lease-grant.json"), *ok = NULL, *weird = NULL;
        EtcdKv *kvs = NULL;
        size_t n = 0;
        int64_t id = 0, ttl = 0;

        /* A failed compare: HTTP 200 without "succeeded". */
        ASSERT_FALSE(etcd_txn_succeeded(failed));
        ASSERT_OK(etcd_txn_response_range(failed, 0, &kvs, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(kvs[0].value, "node1");
        etcd_kvs_free(kvs, n);
        ASSERT_ERROR(etcd_txn_response_range(failed, 1, &kvs, &n), ENOENT);

        ASSERT_OK(json_parse_string("{\"header\":{\"revision\":\"9\"},\"succeeded\":true}", &ok));
        ASSERT_TRUE(etcd_txn_succeeded(ok));
        ASSERT_OK(
                json_parse_string("{\"succeeded\":\"true\",\"responses\":[{\"response_put\":{}}]}", &weird));
        ASSERT_FALSE(etcd_txn_succeeded(weird)); /* a string is not true */
        ASSERT_ERROR(etcd_txn_response_range(weird, 0, &kvs, &n), EBADMSG);

        /* Keep-alive of an expired lease: no TTL. */
        ASSERT_ERROR(etcd_keepalive_parse(expired, &ttl), ENOENT);
        ASSERT_OK(etcd_lease_grant_parse(grant, &id, &ttl));
        ASSERT_TRUE(id > 0);
        ASSERT_EQ(ttl, 30);
        ASSERT_ERROR(etcd_lease_grant_parse(expired, &id, &ttl), EBADMSG);
        ASSERT_ERROR(etcd_keepalive_parse(grant, &ttl), EBADMSG);
}

typedef struct Collect {
        unsigned n;
        unsigned events;
        unsigned created;
        unsigned deletes;
        unsigned puts_without_type;
} Collect;

static int collect_message(const char *msg, size_t size, void *userdata) {
        Collect *c = userdata;
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        EtcdWatchMessage m = {};
        int r;

        r = json_parse(msg, size, ETCD_REPLY_MAX, 64, &j);
        if (r < 0)
                return r;
        r = etcd_watch_message_parse(j, &m, NULL);
        if (r < 0)
                return r;
        c->n++;
        c->created += m.created;
        c->events += (unsigned)m.n_events;
        for (size_t i = 0; i < m.n_events; i++) {
                if (m.events[i].type == ETCD_EVENT_DELETE)
                        c->deletes++;
                else
                        c->puts_without_type++;
        }
        etcd_watch_message_done(&m);
        return 0;
}

TEST(watch_stream_any_chunking) {
        _cleanup_free_ char *stream = fixture("watch-stream.txt");
        size_t len = strlen(stream);
        Collect whole = {};
        EtcdStreamSplitter s = {};

        ASSERT_OK(etcd_stream_feed(&s, stream, len, collect_message, &whole));
        etcd_stream_done(&s);
        ASSERT_TRUE(whole.n >= 2);
        ASSERT_EQ(whole.created, 1);
        ASSERT_TRUE(whole.deletes >= 1);
        ASSERT_TRUE(whole.puts_without_type >= 1);

        for (size_t chunk = 1; chunk <= 97; chunk += 3) {
                Collect c = {};

                for (size_t off = 0; off < len; off += chunk)
                        ASSERT_OK(etcd_stream_feed(
                                &s, stream + off, MIN(chunk, len - off), collect_message, &c));
                etcd_stream_done(&s);
                ASSERT_EQ(c.n, whole.n);
                ASSERT_EQ(c.events, whole.events);
        }
}

TEST(watch_stream_cut_and_malformed) {
        _cleanup_free_ char *stream = fixture("watch-stream.txt");
        const char *second = strchr(stream, '\n') + 1;
        EtcdStreamSplitter s = {};
        Collect c = {};

        /* Cut in the middle of the second message: only the first is delivered, the rest waits. */
        ASSERT_OK(etcd_stream_feed(&s, stream, (size_t)(second - stream) + 40, collect_message, &c));
        ASSERT_EQ(c.n, 1);
        ASSERT_EQ(s.size, 40);
        etcd_stream_done(&s);

        /* Garbage between messages. */
        c = (Collect){};
        ASSERT_ERROR(etcd_stream_feed(&s, "{\"a\":1} x {}", 12, collect_message, &c), EBADMSG);
        etcd_stream_done(&s);

        /* Braces inside strings, escaped quotes. */
        c = (Collect){};
        ASSERT_ERROR(
                etcd_stream_feed(&s, "{\"x\":\"}\\\"{\"}", 12, collect_message, &c),
                EBADMSG); /* not a watch message */
        etcd_stream_done(&s);

        /* A message over the cap. */
        s.max = 16;
        ASSERT_ERROR(etcd_stream_feed(&s, "{\"result\":{\"header\":{}}}", 24, collect_message, &c), EFBIG);
        etcd_stream_done(&s);
}

TEST(watch_message_malformed) {
        static const char *const bad[] = {
                "{}",
                "{\"result\":{}}",
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":{}}}",
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"type\":\"PATCH\",\"kv\":{"
                "\"key\":\"eA==\"}}]}}",
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"kv\":{}}]}}",
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{\"type\":5,\"kv\":{\"key\":\"eA=="
                "\"}}]}}",
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"events\":[{}]}}",
        };
        _cleanup_free_ char *err = NULL;
        _cleanup_(cJSON_Deletep) cJSON *e = NULL, *compact = NULL;
        EtcdWatchMessage m = {};

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(cJSON_Deletep) cJSON *j = NULL;

                ASSERT_OK(json_parse_string(bad[i], &j));
                ASSERT_ERROR(etcd_watch_message_parse(j, &m, NULL), EBADMSG);
        }
        ASSERT_OK(json_parse_string(
                "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"no leader\"}}", &e));
        ASSERT_ERROR(etcd_watch_message_parse(e, &m, &err), EAGAIN);
        ASSERT_TRUE(strstr(err, "no leader") != NULL);

        ASSERT_OK(json_parse_string(
                "{\"result\":{\"header\":{\"revision\":\"10\"},\"canceled\":true,\"compact_revision\":\"5\"}"
                "}",
                &compact));
        ASSERT_OK(etcd_watch_message_parse(compact, &m, NULL));
        ASSERT_TRUE(m.canceled);
        ASSERT_EQ(m.compact_revision, 5);
        etcd_watch_message_done(&m);
}

TEST(prefix_range_end) {
        _cleanup_free_ char *a = etcd_prefix_range_end("/service/batman/"),
                            *b = etcd_prefix_range_end("a\xff");

        ASSERT_STREQ(a, "/service/batman0");
        ASSERT_STREQ(b, "b");
        ASSERT_NULL(etcd_prefix_range_end("\xff\xff"));
}

/* ==== A loopback HTTP server answering canned replies ==== */

typedef struct Fake {
        int fd;
        int port;
        sd_event_source *accept_source;
        const char *reply; /* full HTTP response; NULL: never answer */
        size_t reply_size;
        unsigned requests;
        char last[4096]; /* start of the last request received */
        int conns[16];
        sd_event_source *conn_sources[16];
        unsigned n_conns;
} Fake;

static int on_fake_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fake *f = userdata;
        char buf[65536];
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n <= 0) {
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        /* Test requests are small: one read holds the whole request. */
        f->requests++;
        memcpy(f->last, buf, MIN((size_t)n, sizeof(f->last) - 1));
        f->last[MIN((size_t)n, sizeof(f->last) - 1)] = 0;
        if (f->reply) {
                size_t off = 0;

                while (off < f->reply_size) {
                        ssize_t w = write(fd, f->reply + off, f->reply_size - off);

                        if (w <= 0)
                                break;
                        off += (size_t)w;
                }
                shutdown(fd, SHUT_RDWR);
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        return 0;
}

static int on_fake_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fake *f = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0 || f->n_conns >= ELEMENTSOF(f->conns)) {
                if (c >= 0)
                        close(c);
                return 0;
        }
        f->conns[f->n_conns] = c;
        ASSERT_OK(sd_event_add_io(
                sd_event_source_get_event(s), &f->conn_sources[f->n_conns], c, EPOLLIN, on_fake_conn, f));
        f->n_conns++;
        return 0;
}

static void fake_start(Fake *f, sd_event *e, const char *reply) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof(a);

        *f = (Fake){.reply = reply, .reply_size = reply ? strlen(reply) : 0};
        f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(f->fd >= 0);
        ASSERT_OK(bind(f->fd, (struct sockaddr *)&a, sizeof(a)));
        ASSERT_OK(listen(f->fd, 16));
        ASSERT_OK(getsockname(f->fd, (struct sockaddr *)&a, &l));
        f->port = ntohs(a.sin_port);
        ASSERT_OK(sd_event_add_io(e, &f->accept_source, f->fd, EPOLLIN, on_fake_accept, f));
}

static void fake_stop(Fake *f) {
        for (unsigned i = 0; i < f->n_conns; i++) {
                sd_event_source_disable_unref(f->conn_sources[i]);
                close(f->conns[i]);
        }
        sd_event_source_disable_unref(f->accept_source);
        close(f->fd);
}

static int closed_port(void) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

        ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
        ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &l));
        port = ntohs(a.sin_port);
        close(fd); /* nobody listens there now */
        return port;
}

static usec_t mono(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static void run_until(sd_event *e, const bool *flag, usec_t timeout) {
        usec_t end = mono() + timeout;

        while (!*flag && mono() < end)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
}

typedef struct Result {
        bool done;
        unsigned calls;
        int error;
        char *message;
        char *reply;
} Result;

static void on_result(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        Result *r = userdata;

        r->done = true;
        r->calls++;
        r->error = error;
        free(r->message);
        r->message = message ? strdup(message) : NULL;
        free(r->reply);
        r->reply = reply ? cJSON_PrintUnformatted(reply) : NULL;
}

static void result_done(Result *r) {
        free(r->message);
        free(r->reply);
        *r = (Result){};
}

static EtcdClient *client_for(sd_event *e, int port1, int port2, usec_t timeout) {
        char a[32], b[32]; /* "127.0.0.1:65535" */
        char *eps[3] = {a, port2 ? b : NULL, NULL};
        EtcdClient *c = NULL;

        (void)snprintf(a, sizeof(a), "127.0.0.1:%d", port1);
        (void)snprintf(b, sizeof(b), "127.0.0.1:%d", port2);
        ASSERT_OK(etcd_client_new(
                e,
                &(EtcdClientOptions){
                        .endpoints = eps,
                        .request_timeout = timeout,
                        .use_proxies = true,
                },
                &c));
        return c;
}

#define HTTP_OK(body) "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" body

static void expect_call_error(const char *reply, int expected, const char *message_part) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        Fake f;
        Result r = {};

        ASSERT_OK(sd_event_new(&e));
        fake_start(&f, e, reply);
        c = client_for(e, f.port, 0, 2 * USEC_PER_SEC);
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        ASSERT_TRUE(r.done);
        ASSERT_EQ(r.calls, 1);
        if (r.error != expected)
                TEST_FAIL(
                        "reply %s: error %d (%s), expected %d", reply, r.error, strna(r.message), expected);
        if (message_part)
                ASSERT_TRUE(r.message && strstr(r.message, message_part));
        ASSERT_EQ(etcd_client_active(c), 0);
        result_done(&r);
        c = etcd_client_free(c);
        fake_stop(&f);
}

TEST(client_bad_replies) {
        expect_call_error(HTTP_OK("{\"header\":"), -EPROTO, "malformed reply");
        expect_call_error(HTTP_OK("[1,2]"), -EPROTO, "not a JSON object");
        expect_call_error(HTTP_OK(""), -EPROTO, "malformed reply");
        expect_call_error(
                "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n"
                "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}",
                -ENOENT,
                "requested lease not found");
        expect_call_error("HTTP/1.1 500 Internal\r\nConnection: close\r\n\r\nboom", -EIO, "HTTP 500");
        expect_call_error("garbage\r\n\r\n", -EPROTO, NULL);
        expect_call_error(HTTP_OK("{\"header\":{\"revision\":\"1\"}}"), 0, NULL);
}

TEST(client_hanging_server_times_out_and_fails_over) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        Fake hang, good;
        Result r = {};
        usec_t start;

        ASSERT_OK(sd_event_new(&e));
        fake_start(&hang, e, NULL);
        fake_start(&good, e, HTTP_OK("{\"header\":{\"revision\":\"3\"}}"));

        /* Both endpoints hang: the call fails within its budget. */
        c = client_for(e, hang.port, hang.port, 600 * USEC_PER_MSEC);
        start = mono();
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        ASSERT_EQ(r.error, -ETIMEDOUT);
        ASSERT_TRUE(mono() - start < 900 * USEC_PER_MSEC);
        result_done(&r);
        c = etcd_client_free(c);

        /* First endpoint hangs, second answers: success, and the client stays on the good one. */
        c = client_for(e, hang.port, good.port, 1 * USEC_PER_SEC);
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        ASSERT_OK(r.error);
        ASSERT_TRUE(strstr(etcd_client_endpoint(c), "127.0.0.1") != NULL);
        {
                char want[64]; /* "http://127.0.0.1:65535" */

                (void)snprintf(want, sizeof(want), "http://127.0.0.1:%d", good.port);
                ASSERT_STREQ(etcd_client_endpoint(c), want);
        }
        result_done(&r);
        c = etcd_client_free(c);

        /* Refused connection on the first endpoint: moves on at once. */
        c = client_for(e, closed_port(), good.port, 1 * USEC_PER_SEC);
        start = mono();
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        ASSERT_OK(r.error);
        ASSERT_TRUE(mono() - start < 400 * USEC_PER_MSEC);
        result_done(&r);
        c = etcd_client_free(c);
        fake_stop(&hang);
        fake_stop(&good);
}

TEST(client_cancel_never_calls_back) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        Fake hang;
        Result r = {};
        EtcdCall *call = NULL;
        bool never = false;

        ASSERT_OK(sd_event_new(&e));
        fake_start(&hang, e, NULL);
        c = client_for(e, hang.port, 0, 300 * USEC_PER_MSEC);
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, &call));
        run_until(e, &never, 50 * USEC_PER_MSEC);
        etcd_call_cancel(call);
        ASSERT_EQ(etcd_client_active(c), 0);
        run_until(e, &never, 500 * USEC_PER_MSEC); /* past the timeout */
        ASSERT_EQ(r.calls, 0);

        /* Freeing the client with calls in flight runs no callback either. */
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &never, 20 * USEC_PER_MSEC);
        c = etcd_client_free(c);
        run_until(e, &never, 50 * USEC_PER_MSEC);
        ASSERT_EQ(r.calls, 0);
        fake_stop(&hang);
}

typedef struct HttpResult {
        bool done;
        int error;
        long status;
} HttpResult;

static void
on_http(HttpRequest *req, int error, long status, const char *body, size_t size, void *userdata) {
        HttpResult *h = userdata;

        h->done = true;
        h->error = error;
        h->status = status;
}

TEST(http_body_cap) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(http_client_freep) HttpClient *c = NULL;
        _cleanup_free_ char *reply = NULL, *url = NULL;
        HttpResult h = {};
        Fake f;
        size_t n;

        ASSERT_OK(sd_event_new(&e));
        reply = malloc(20000);
        ASSERT_NOT_NULL(reply);
        n = (size_t)snprintf(reply, 200, "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n");
        memset(reply + n, 'x', 10000);
        reply[n + 10000] = 0;
        fake_start(&f, e, reply);
        ASSERT_OK(http_client_new(e, 0, &c));
        ASSERT_TRUE(asprintf(&url, "http://127.0.0.1:%d/", f.port) > 0);
        ASSERT_OK(http_client_start(
                c,
                &(HttpRequestOptions){
                        .url = url,
                        .body = "{}",
                        .body_size = 2,
                        .timeout = 2 * USEC_PER_SEC,
                        .max_body = 1000,
                        .on_done = on_http,
                        .userdata = &h,
                },
                NULL));
        run_until(e, &h.done, 5 * USEC_PER_SEC);
        ASSERT_EQ(h.error, -EFBIG);
        ASSERT_EQ(http_client_active(c), 0);
        c = http_client_free(c);
        fake_stop(&f);
}

typedef struct WatchLog {
        unsigned created, errors, messages;
        int last_error;
} WatchLog;

static void on_watch(EtcdWatch *w, int error, const EtcdWatchMessage *m, void *userdata) {
        WatchLog *l = userdata;

        if (error < 0) {
                l->errors++;
                l->last_error = error;
                return;
        }
        l->messages++;
        l->created += m->created;
}

TEST(watch_stream_cut_mid_message_reconnects) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        EtcdWatch *w = NULL;
        WatchLog log = {};
        Fake f;
        bool never = false;

        ASSERT_OK(sd_event_new(&e));
        fake_start(
                &f,
                e,
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":true}}\n"
                "{\"result\":{\"header\":{\"revision\":\"8\"},\"events\":[{\"kv\":{\"key\":\"eA==\",\"mod_"
                "re");
        c = client_for(e, f.port, 0, 1 * USEC_PER_SEC);
        ASSERT_OK(etcd_watch_new(c, "x", NULL, 0, 0, on_watch, &log, &w));
        run_until(e, &never, 1200 * USEC_PER_MSEC);
        /* Each connection: one whole message delivered, then the cut ends the stream; it reconnects. */
        ASSERT_TRUE(log.created >= 2);
        ASSERT_EQ(log.messages, log.created);
        ASSERT_TRUE(log.errors >= 1);
        ASSERT_EQ(log.last_error, -ECONNRESET);
        ASSERT_TRUE(f.requests >= 2);
        ASSERT_EQ(etcd_watch_revision(w), 8);
        w = etcd_watch_free(w);
        ASSERT_EQ(etcd_client_active(c), 0);
        c = etcd_client_free(c);
        fake_stop(&f);
}

typedef struct Reissue {
        EtcdClient *client;
        unsigned calls;
        unsigned left;
        int last_error;
        char *last_message;
} Reissue;

static void on_reissue(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        Reissue *r = userdata;

        r->calls++;
        r->last_error = error;
        free(r->last_message);
        r->last_message = message ? strdup(message) : NULL;
        if (r->left > 0) {
                r->left--;
                ASSERT_OK(etcd_range(c, "k", NULL, on_reissue, r, NULL));
        }
}

TEST(auth_failure_with_callbacks_that_retry) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        char ep[32]; /* "127.0.0.1:65535" */
        char *eps[] = {ep, NULL};
        Reissue r = {.left = 5};
        bool never = false;
        Fake f;

        ASSERT_OK(sd_event_new(&e));
        fake_start(
                &f,
                e,
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
                "{\"error\":\"etcdserver: authentication failed, invalid user ID or password\",\"code\":3}");
        (void)snprintf(ep, sizeof(ep), "127.0.0.1:%d", f.port);
        ASSERT_OK(etcd_client_new(
                e,
                &(EtcdClientOptions){
                        .endpoints = eps,
                        .username = "root",
                        .password = "bad",
                        .request_timeout = USEC_PER_SEC,
                        .use_proxies = true,
                },
                &c));
        ASSERT_OK(etcd_range(c, "k", NULL, on_reissue, &r, NULL));
        ASSERT_OK(etcd_range(c, "k", NULL, on_reissue, &r, NULL));
        run_until(e, &never, 300 * USEC_PER_MSEC);
        /* Every call failed with the authentication error; a call issued from a callback waited for its
         * own authentication attempt instead of inheriting the old failure in a loop. */
        ASSERT_EQ(r.calls, 7);
        ASSERT_EQ(r.last_error, -EINVAL);
        ASSERT_TRUE(strstr(r.last_message, "authentication failed") != NULL);
        ASSERT_EQ(f.requests, 4); /* batches share one attempt each: 2+2+2+1 calls */
        ASSERT_EQ(etcd_client_active(c), 0);
        free(r.last_message);
        c = etcd_client_free(c);
        fake_stop(&f);
}

typedef struct FreeInside {
        EtcdWatch *w;
        unsigned calls;
        int error;
} FreeInside;

static void on_watch_free_inside(EtcdWatch *w, int error, const EtcdWatchMessage *m, void *userdata) {
        FreeInside *f = userdata;

        f->calls++;
        f->error = error;
        f->w = etcd_watch_free(w); /* from inside its own callback */
}

TEST(watch_compacted_and_freed_from_its_callback) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        FreeInside fi = {};
        bool never = false;
        Fake f;

        ASSERT_OK(sd_event_new(&e));
        /* Two messages in one chunk: the callback frees the watch on the first; the second must not
         * be delivered. */
        fake_start(
                &f,
                e,
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                "{\"result\":{\"header\":{\"revision\":\"9\"},\"canceled\":true,\"compact_revision\":\"5\"}}"
                "{\"result\":{\"header\":{\"revision\":\"9\"},\"created\":true}}");
        c = client_for(e, f.port, 0, 1 * USEC_PER_SEC);
        ASSERT_OK(etcd_watch_new(c, "x", NULL, 3, 0, on_watch_free_inside, &fi, &fi.w));
        run_until(e, &never, 300 * USEC_PER_MSEC);
        ASSERT_EQ(fi.calls, 1);
        ASSERT_EQ(fi.error, -ESTALE);
        ASSERT_NULL(fi.w);
        ASSERT_EQ(etcd_client_active(c), 0);
        c = etcd_client_free(c);
        fake_stop(&f);
}

TEST(credentials_in_url_become_authentication) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        char ep[64]; /* "http://root:secret@127.0.0.1:65535" */
        char *eps[] = {ep, NULL};
        Result r = {};
        Fake f;

        ASSERT_OK(sd_event_new(&e));
        fake_start(
                &f,
                e,
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n{\"code\":3,\"message\":\"x\"}");
        (void)snprintf(ep, sizeof(ep), "http://root:secret@127.0.0.1:%d", f.port);
        ASSERT_OK(etcd_client_new(e, &(EtcdClientOptions){.endpoints = eps, .use_proxies = true}, &c));
        ASSERT_FALSE(strstr(etcd_client_endpoint(c), "secret"));
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 2 * USEC_PER_SEC);
        ASSERT_TRUE(strstr(f.last, "POST /v3/auth/authenticate ") == f.last);
        ASSERT_TRUE(strstr(f.last, "{\"name\":\"root\",\"password\":\"secret\"}") != NULL);
        ASSERT_NULL(strstr(f.last, "Authorization: Basic"));
        result_done(&r);
        c = etcd_client_free(c);
        fake_stop(&f);
}

/* retry_timeout from the dynamic config: a new budget applies to the operations started after it. */
TEST(request_timeout_follows_setter) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        Fake hang;
        Result r = {};
        usec_t start, took;

        ASSERT_OK(sd_event_new(&e));
        fake_start(&hang, e, NULL);
        c = client_for(e, hang.port, hang.port, 3 * USEC_PER_SEC);
        ASSERT_EQ(etcd_client_request_timeout(c), 3 * USEC_PER_SEC);
        etcd_client_set_request_timeout(c, 400 * USEC_PER_MSEC);
        ASSERT_EQ(etcd_client_request_timeout(c), 400 * USEC_PER_MSEC);
        start = mono();
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        took = mono() - start;
        ASSERT_EQ(r.error, -ETIMEDOUT);
        ASSERT_TRUE(took >= 350 * USEC_PER_MSEC && took < 1500 * USEC_PER_MSEC);
        result_done(&r);

        /* Raised again: an operation now waits longer than the old budget before it fails. */
        etcd_client_set_request_timeout(c, 1200 * USEC_PER_MSEC);
        start = mono();
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        took = mono() - start;
        ASSERT_EQ(r.error, -ETIMEDOUT);
        ASSERT_TRUE(took >= 1100 * USEC_PER_MSEC);
        result_done(&r);

        etcd_client_set_request_timeout(c, 0);
        ASSERT_TRUE(etcd_client_request_timeout(c) > 0);
        c = etcd_client_free(c);
        fake_stop(&hang);
}

/* Replaces every occurrence of what in *s by with. */
static void replace_all(char **s, const char *what, const char *with) {
        char *p;

        while ((p = strstr(*s, what))) {
                char *n = NULL;

                ASSERT_TRUE(asprintf(&n, "%.*s%s%s", (int)(p - *s), *s, with, p + strlen(what)) > 0);
                free(*s);
                *s = n;
        }
}

static void run_until_endpoints(sd_event *e, EtcdClient *c, size_t n, usec_t timeout) {
        usec_t end = mono() + timeout;

        while (etcd_client_n_endpoints(c) != n && mono() < end)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
}

/* Member-list discovery: a client given one member (the recorded 3-member reply of etcd 3.4, its
 * client URLs pointed at our fakes) learns the others, stays on the member it was using, and when that
 * one dies goes on through a discovered member (past a dead one). A reply without client URLs keeps the
 * endpoints. */
TEST(member_list_discovery) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        _cleanup_free_ char *list = fixture("member-list.json"), *reply = NULL;
        char a[64], b[64], dead[64];
        char *eps[] = {a, NULL};
        Fake fa, fb;
        Result r = {};

        ASSERT_OK(sd_event_new(&e));
        fake_start(&fb, e, HTTP_OK("{\"header\":{\"revision\":\"9\"}}"));
        (void)snprintf(b, sizeof(b), "http://127.0.0.1:%d", fb.port);
        (void)snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", closed_port());
        /* etcd1 (the one we were given) is fa: its port is known only once it listens. */
        fake_start(&fa, e, NULL);
        (void)snprintf(a, sizeof(a), "http://127.0.0.1:%d", fa.port);
        replace_all(&list, "http://127.0.0.1:21633", a);
        replace_all(&list, "http://127.0.0.1:20640", b);
        replace_all(&list, "http://127.0.0.1:19157", dead);
        ASSERT_TRUE(asprintf(&reply, HTTP_OK("%s"), list) > 0);
        fa.reply = reply;
        fa.reply_size = strlen(reply);

        ASSERT_OK(etcd_client_new(
                e, &(EtcdClientOptions){.endpoints = eps, .request_timeout = 2 * USEC_PER_SEC}, &c));
        ASSERT_EQ(etcd_client_n_endpoints(c), 1);
        run_until_endpoints(e, c, 3, 5 * USEC_PER_SEC);
        ASSERT_EQ(etcd_client_n_endpoints(c), 3);
        ASSERT_TRUE(strstr(fa.last, "POST /v3/cluster/member/list ") == fa.last);
        ASSERT_STREQ(etcd_client_endpoint(c), a); /* still on the member it was using */

        /* The given member dies: the call goes on through the discovered ones. */
        fake_stop(&fa);
        ASSERT_OK(etcd_range(c, "k", NULL, on_result, &r, NULL));
        run_until(e, &r.done, 5 * USEC_PER_SEC);
        ASSERT_OK(r.error);
        ASSERT_STREQ(etcd_client_endpoint(c), b);
        ASSERT_TRUE(strstr(fb.last, "POST /v3/kv/range ") == fb.last);
        result_done(&r);
        c = etcd_client_free(c);
        fake_stop(&fb);

        /* A member list without client URLs (or not a list) leaves the endpoints as they were. */
        fake_start(&fa, e, HTTP_OK("{\"header\":{},\"members\":[{\"ID\":\"1\",\"name\":\"x\"}]}"));
        (void)snprintf(a, sizeof(a), "http://127.0.0.1:%d", fa.port);
        ASSERT_OK(etcd_client_new(
                e, &(EtcdClientOptions){.endpoints = eps, .request_timeout = 2 * USEC_PER_SEC}, &c));
        run_until(e, &r.done, 300 * USEC_PER_MSEC); /* r.done stays false: just runs the loop */
        ASSERT_TRUE(fa.requests >= 1);
        ASSERT_EQ(etcd_client_n_endpoints(c), 1);
        ASSERT_STREQ(etcd_client_endpoint(c), a);
        c = etcd_client_free(c);
        fake_stop(&fa);
}

DEFINE_TEST_MAIN
