/* SPDX-License-Identifier: MIT */
/*
 * The REST rules that depend on the request method, access control and the body, as a table driven
 * through the real server in-process: (node state, server settings, method, path and query, headers,
 * body) → status (and a piece of the reply). Covers patroni-compat.md §3.1 routing (GET/HEAD/OPTIONS vs
 * other methods, 501), §3.2 access control (403 before 401, reads never authenticated), and the body
 * and validation codes of §3.7 that the REST layer decides (411, 400, 413, 422, 404, 500, 502, 503);
 * requests that pass validation reach a stand-in engine that answers 200 with the intent's name. The
 * engine's own answers (412 feasibility, switchover outcomes) are the HA engine's (test_ha.py).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgha/http_client.h"
#include "pgha/json.h"
#include "pgha/rest.h"
#include "pgha/snapshot.h"
#include "tests.h"

#define CLUSTER                                                                                   \
        "\"cluster\":{\"members\":[{\"name\":\"node1\",\"role\":\"leader\",\"api_url\":\"http://" \
        "127.0.0.1:8008/patroni\"}]},\"config\":{\"ttl\":30},\"history\":[]"
#define LEADER                                                                                              \
        "{\"scope\":\"demo\",\"name\":\"node1\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":" \
        "false,\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\"," CLUSTER "}"
#define REPLICA                                                                                   \
        "{\"scope\":\"demo\",\"name\":\"node2\",\"state\":\"running\",\"role\":\"replica\",\"in_" \
        "recovery\":"                                                                             \
        "true,\"cluster_view\":true,\"leader_name\":\"node1\",\"leader_optime\":1000,"            \
        "\"replayed_location\":900,\"received_location\":950," CLUSTER "}"
#define PAUSED_REPLICA                                                                            \
        "{\"scope\":\"demo\",\"name\":\"node2\",\"state\":\"running\",\"role\":\"replica\",\"in_" \
        "recovery\":"                                                                             \
        "true,\"cluster_view\":true,\"leader_name\":\"node1\",\"paused\":true," CLUSTER "}"
#define UNLOCKED                                                                                  \
        "{\"scope\":\"demo\",\"name\":\"node2\",\"state\":\"running\",\"role\":\"replica\",\"in_" \
        "recovery\":"                                                                             \
        "true,\"cluster_view\":true}"
#define NO_CONFIG                                                                                           \
        "{\"scope\":\"demo\",\"name\":\"node1\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":" \
        "false,\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\"}"
#define FAILSAFE_LEADER                                                                                     \
        "{\"scope\":\"demo\",\"name\":\"node1\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":" \
        "false,\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\",\"failsafe_mode\":true}"

#define AUTH     "Authorization: Basic YWRtaW46czNjcmV0\r\n" /* admin:s3cret */
#define BAD_AUTH "Authorization: Basic YWRtaW46d3Jvbmc=\r\n" /* admin:wrong */

/* Server settings of a row. */
typedef enum Server {
        OPEN,   /* no access control */
        AUTHED, /* restapi.authentication admin:s3cret */
        DENIED, /* allowlist 10.0.0.0/8 (not 127.0.0.1) and authentication */
        SMALL,  /* body cap 64 bytes */
        _SERVER_MAX,
} Server;

typedef struct Row {
        const char *snapshot;
        Server server;
        const char *method;
        const char *target; /* path and query */
        const char *headers;
        const char *body; /* sent with Content-Length; NULL: no body and no Content-Length */
        unsigned expected;
        const char *reply; /* substring of the reply body, or NULL */
} Row;

static const Row rows[] = {
        /* §3.1 routing: health paths answer GET, HEAD and OPTIONS; other methods there are 501. */
        {LEADER, OPEN, "GET", "/primary", NULL, NULL, 200, "\"role\": \"master\""},
        {LEADER, OPEN, "HEAD", "/primary", NULL, NULL, 200, NULL},
        {LEADER, OPEN, "OPTIONS", "/primary", NULL, NULL, 200, NULL},
        {LEADER, OPEN, "POST", "/primary", NULL, NULL, 501, "Unsupported method ('POST')"},
        {LEADER, OPEN, "PUT", "/primary", NULL, "{}", 501, "Unsupported method ('PUT')"},
        {LEADER, OPEN, "DELETE", "/primary", NULL, NULL, 501, NULL},
        {LEADER, OPEN, "PATCH", "/replica", NULL, "{}", 501, NULL},
        {LEADER, OPEN, "BREW", "/primary", NULL, NULL, 501, "Unsupported method ('BREW')"},
        {REPLICA, OPEN, "GET", "/primary", NULL, NULL, 503, NULL},
        {REPLICA, OPEN, "HEAD", "/replica", NULL, NULL, 200, NULL},
        {REPLICA, OPEN, "OPTIONS", "/replica?lag=10", NULL, NULL, 503, NULL},
        {REPLICA, OPEN, "OPTIONS", "/replica?lag=100", NULL, NULL, 200, NULL},
        {REPLICA, OPEN, "GET", "/read-only", NULL, NULL, 200, NULL},
        /* GET-only routes: HEAD/OPTIONS on them take the generic handler (503 unless a rule matches) */
        {LEADER, OPEN, "GET", "/patroni", NULL, NULL, 200, "\"role\": \"master\""},
        {LEADER, OPEN, "HEAD", "/patroni", NULL, NULL, 503, NULL},
        {LEADER, OPEN, "GET", "/cluster", NULL, NULL, 200, "\"members\""},
        {LEADER, OPEN, "GET", "/config", NULL, NULL, 200, "\"ttl\": 30"},
        {NO_CONFIG, OPEN, "GET", "/config", NULL, NULL, 502, NULL},
        {LEADER, OPEN, "GET", "/history", NULL, NULL, 200, "[]"},
        {LEADER, OPEN, "GET", "/metrics", NULL, NULL, 200, "patroni_primary{scope=\"demo\"} 1"},
        {LEADER, OPEN, "GET", "/no/such/path", NULL, NULL, 503, "\"state\": \"running\""},
        /* write paths with a read method: the generic handler, never the write handler */
        {LEADER, OPEN, "GET", "/switchover", NULL, NULL, 503, NULL},
        {LEADER, OPEN, "OPTIONS", "/reload", NULL, NULL, 503, NULL},
        /* write methods on paths without such a route */
        {LEADER, OPEN, "POST", "/patroni", NULL, "{}", 501, NULL},
        {LEADER, OPEN, "DELETE", "/config", NULL, NULL, 501, NULL},
        {LEADER, OPEN, "PUT", "/switchover", NULL, "{}", 501, NULL},

        /* §3.2 access: the allowlist first (403), then credentials (401); reads are never checked. */
        {LEADER, AUTHED, "POST", "/reload", NULL, NULL, 401, "no auth header received"},
        {LEADER, AUTHED, "POST", "/reload", BAD_AUTH, NULL, 401, "not authenticated"},
        {LEADER, AUTHED, "POST", "/reload", "Authorization: Bearer x\r\n", NULL, 401, "not authenticated"},
        {LEADER, AUTHED, "POST", "/reload", AUTH, NULL, 200, "reload"},
        {LEADER, AUTHED, "DELETE", "/restart", NULL, NULL, 401, NULL},
        {LEADER, AUTHED, "PATCH", "/config", NULL, "{\"ttl\": 20}", 401, NULL},
        {LEADER, AUTHED, "PUT", "/config", BAD_AUTH, "{\"ttl\": 20}", 401, NULL},
        {LEADER, AUTHED, "POST", "/switchover", BAD_AUTH, "{", 401, NULL}, /* before the body */
        {LEADER, AUTHED, "POST", "/sigterm", NULL, NULL, 401, NULL},
        {LEADER, AUTHED, "GET", "/primary", NULL, NULL, 200, NULL},
        {LEADER, AUTHED, "GET", "/config", BAD_AUTH, NULL, 200, NULL},
        {LEADER, AUTHED, "OPTIONS", "/reload", NULL, NULL, 503, NULL},
        {LEADER, DENIED, "POST", "/reload", AUTH, NULL, 403, "Access is denied"},
        {LEADER, DENIED, "POST", "/reload", NULL, NULL, 403, "Access is denied"},
        {LEADER, DENIED, "GET", "/primary", NULL, NULL, 200, NULL},
        {LEADER, DENIED, "GET", "/metrics", NULL, NULL, 200, NULL},

        /* §3.7 bodies: required bodies need Content-Length (411), a non-empty JSON object (400). */
        {LEADER, OPEN, "POST", "/switchover", NULL, NULL, 411, NULL},
        {LEADER, OPEN, "PATCH", "/config", NULL, NULL, 411, NULL},
        {LEADER, OPEN, "POST", "/citus", NULL, NULL, 411, NULL},
        {LEADER, OPEN, "POST", "/switchover", NULL, "{", 400, "not valid JSON"},
        {LEADER, OPEN, "POST", "/switchover", NULL, "[1]", 400, "not a JSON object"},
        {LEADER, OPEN, "POST", "/switchover", NULL, "{}", 400, "an empty JSON object"},
        {LEADER, OPEN, "POST", "/failover", NULL, "{\"leader\": \"a\"} x", 400, "after its JSON value"},
        {LEADER, OPEN, "PUT", "/config", NULL, "", 400, "the body is empty"},
        {LEADER,
         SMALL,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"candidate\": \"node2\", \"scheduled_at\": \"2099-01-01T00:00:00Z\"}",
         413,
         NULL},
        {LEADER, SMALL, "POST", "/reload", NULL, NULL, 200, "reload"},
        /* optional bodies: absent or empty is {} */
        {LEADER, OPEN, "POST", "/restart", NULL, NULL, 200, "restart"},
        {LEADER, OPEN, "POST", "/restart", NULL, "", 200, "restart"},
        {LEADER, OPEN, "POST", "/restart", NULL, "{}", 200, "restart"},
        {LEADER, OPEN, "POST", "/restart", NULL, "[]", 400, "not a JSON object"},

        /* §3.7 validation decided before the engine */
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": 5}",
         400,
         "leader should be a member name (string)"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"candidate\": [1]}",
         400,
         "candidate should be a member name (string)"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"candidate\": \"node2\"}",
         400,
         "Switchover could be performed only from a specific leader"},
        {LEADER,
         OPEN,
         "POST",
         "/failover",
         NULL,
         "{\"leader\": \"node1\"}",
         400,
         "Failover could be performed only to a specific candidate"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"scheduled_at\": \"2099-01-01\"}",
         400,
         "Timezone information is mandatory for the scheduled switchover"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"scheduled_at\": \"2001-01-01T00:00:00Z\"}",
         422,
         "Cannot schedule switchover in the past"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"scheduled_at\": \"soon\"}",
         422,
         "Unable to parse scheduled timestamp"},
        {LEADER,
         OPEN,
         "POST",
         "/failover",
         NULL,
         "{\"candidate\": \"node2\", \"scheduled_at\": \"x\"}",
         400,
         "Scheduled failover is possible only from a specific leader"},
        {PAUSED_REPLICA,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"scheduled_at\": \"2099-01-01T00:00:00Z\"}",
         400,
         "Can't schedule switchover in the paused state"},
        {PAUSED_REPLICA,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\"}",
         400,
         "Switchover is possible only to a specific candidate in a paused state"},
        {PAUSED_REPLICA,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"candidate\": \"node2\"}",
         200,
         "switchover"},
        {LEADER,
         OPEN,
         "POST",
         "/switchover",
         NULL,
         "{\"leader\": \"node1\", \"member\": \"node2\"}",
         200,
         "switchover"},
        {LEADER, OPEN, "POST", "/failover", NULL, "{\"candidate\": \"node2\"}", 200, "failover"},
        {LEADER,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"role\": \"standby\"}",
         400,
         "PostgreSQL role should be either primary or replica"},
        {LEADER,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"timeout\": 0}",
         400,
         "Timeout should be a positive number of seconds"},
        {LEADER,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"postgres_version\": \"9\"}",
         400,
         "Invalid PostgreSQL version format"},
        {LEADER,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"when\": 1}",
         400,
         "Unknown filter for the scheduled restart: when"},
        {LEADER,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"schedule\": \"2001-01-01T00:00:00Z\"}",
         422,
         "Cannot schedule restart in the past"},
        {PAUSED_REPLICA,
         OPEN,
         "POST",
         "/restart",
         NULL,
         "{\"schedule\": \"2099-01-01T00:00:00Z\"}",
         500,
         "Can't schedule restart in the paused state"},
        {LEADER, OPEN, "DELETE", "/restart", NULL, NULL, 404, "no restarts are scheduled"},
        {LEADER, OPEN, "DELETE", "/switchover", NULL, NULL, 404, "no switchover is scheduled"},
        {LEADER, OPEN, "POST", "/reinitialize", NULL, NULL, 503, "I am the leader, can not reinitialize"},
        {UNLOCKED,
         OPEN,
         "POST",
         "/reinitialize",
         NULL,
         NULL,
         503,
         "Cluster has no leader, can not reinitialize"},
        {REPLICA, OPEN, "POST", "/reinitialize", NULL, "{\"force\": true}", 200, "reinitialize"},
        {NO_CONFIG, OPEN, "PATCH", "/config", NULL, "{\"ttl\": 20}", 503, NULL},
        {LEADER, OPEN, "PATCH", "/config", NULL, "{\"ttl\": 20}", 200, "config-patch"},
        {LEADER, OPEN, "PUT", "/config", NULL, "{\"ttl\": 20}", 200, "config-put"},
        {LEADER, OPEN, "POST", "/failsafe", NULL, "{\"a\": 1}", 502, NULL},
        {FAILSAFE_LEADER, OPEN, "POST", "/failsafe", NULL, "{\"a\": 1}", 500, "Running as a leader"},
        {LEADER, OPEN, "POST", "/citus", NULL, "{\"type\": \"after_promote\"}", 200, "OK"},
        {LEADER, OPEN, "POST", "/sigterm", NULL, NULL, 202, "shutdown scheduled"},
};

/* The stand-in engine: every intent that reaches it is answered 200 with its name. */
static void submit(void *userdata, RestCall *call, const RestIntent *intent) {
        unsigned *count = userdata;

        (*count)++;
        ASSERT_OK(rest_call_reply_text(call, 200, rest_intent_kind_to_string(intent->kind)));
}

static const RestIntentHandler handler = {.submit = submit};

typedef struct Exchange {
        char reply[65536];
        size_t len;
        bool done;
} Exchange;

static int on_reply(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Exchange *x = userdata;
        ssize_t n = recv(fd, x->reply + x->len, sizeof x->reply - 1 - x->len, 0);

        if (n <= 0 || x->len + (size_t)n >= sizeof x->reply - 1)
                x->done = true;
        if (n > 0)
                x->len += (size_t)n;
        x->reply[x->len] = '\0';
        return 0;
}

/* One HTTP/1.0 request (the server closes after its reply); returns the status, *ret_body the body. */
static unsigned exchange(sd_event *e, uint16_t port, const char *request, Exchange *x) {
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *source = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        unsigned status = 0;

        *x = (Exchange){};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
        ASSERT_EQ(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
        ASSERT_OK(sd_event_add_io(e, &source, fd, EPOLLIN, on_reply, x));
        for (unsigned i = 0; !x->done && i < 10000; i++)
                ASSERT_OK(sd_event_run(e, 100 * USEC_PER_MSEC));
        ASSERT_TRUE(x->done);
        ASSERT_EQ(sscanf(x->reply, "HTTP/1.%*c %u ", &status), 1);
        return status;
}

TEST(method_access_body_table) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char *allow[] = {(char *)"10.0.0.0/8", NULL};
        RestServerOptions options[_SERVER_MAX] = {
                [OPEN] = {.listen_host = "127.0.0.1"},
                [AUTHED] = {.listen_host = "127.0.0.1", .auth_username = "admin", .auth_password = "s3cret"},
                [DENIED] =
                        {.listen_host = "127.0.0.1",
                         .auth_username = "admin",
                         .auth_password = "s3cret",
                         .allowlist = allow,
                         .n_allowlist = 1},
                [SMALL] = {.listen_host = "127.0.0.1", .body_max = 64},
        };
        unsigned failures = 0, engine_calls = 0, expected_engine_calls = 0;
        uint64_t now = 0;

        ASSERT_OK(sd_event_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                const Row *row = &rows[i];
                _cleanup_(rest_server_freep) RestServer *server = NULL;
                _cleanup_(cJSON_Deletep) cJSON *j = cJSON_Parse(row->snapshot);
                _cleanup_free_ char *request = NULL, *err = NULL;
                NodeSnapshot snap = {};
                Exchange x;
                unsigned status;
                const char *body;

                ASSERT_NOT_NULL(j);
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
                if (snapshot_load_json(j, now, &snap, &err) < 0)
                        TEST_FAIL("row %zu: snapshot: %s", i, strna(err));
                ASSERT_OK(rest_server_new(e, &options[row->server], &snap, &server));
                rest_server_set_intent_handler(server, &handler, &engine_calls);

                if (row->body)
                        ASSERT_TRUE(
                                asprintf(
                                        &request,
                                        "%s %s HTTP/1.0\r\n%sContent-Type: application/json\r\n"
                                        "Content-Length: %zu\r\n\r\n%s",
                                        row->method,
                                        row->target,
                                        strempty(row->headers),
                                        strlen(row->body),
                                        row->body) > 0);
                else
                        ASSERT_TRUE(
                                asprintf(
                                        &request,
                                        "%s %s HTTP/1.0\r\n%s\r\n",
                                        row->method,
                                        row->target,
                                        strempty(row->headers)) > 0);
                status = exchange(e, rest_server_port(server), request, &x);
                body = strstr(x.reply, "\r\n\r\n");
                body = body ? body + 4 : "";
                if (status != row->expected || (row->reply && !strstr(body, row->reply))) {
                        fprintf(stderr,
                                "  row %zu: %s %s: got %u, expected %u%s%s\n    reply: %.300s\n",
                                i,
                                row->method,
                                row->target,
                                status,
                                row->expected,
                                row->reply ? " with " : "",
                                strempty(row->reply),
                                body);
                        failures++;
                }
                for (int k = 0; k < _REST_INTENT_KIND_MAX; k++)
                        if (row->expected == 200 && streq_ptr(row->reply, rest_intent_kind_to_string(k)))
                                expected_engine_calls++;
                if (streq(row->method, "HEAD"))
                        ASSERT_EQ(*body, '\0'); /* HEAD: headers only */
                server = rest_server_free(server);
                snapshot_done(&snap);
        }
        ASSERT_EQ(failures, 0U);
        ASSERT_EQ(engine_calls, expected_engine_calls);
        printf("  %zu rows checked, %u reached the engine\n", ELEMENTSOF(rows), engine_calls);
}

/* The engine of the reload test: keeps the call to answer it later. */
static void submit_later(void *userdata, RestCall *call, const RestIntent *intent) {
        RestCall **held = userdata;

        *held = call;
}

static void cancel_later(void *userdata, RestCall *call) {
        RestCall **held = userdata;

        if (*held == call)
                *held = NULL;
}

static const RestIntentHandler later_handler = {.submit = submit_later, .cancel = cancel_later};

static int connect_port(uint16_t port) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                close(fd);
                return -errno;
        }
        return fd;
}

TEST(reconfigure) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(rest_server_freep) RestServer *server = NULL;
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *source = NULL;
        _cleanup_(cJSON_Deletep) cJSON *j = cJSON_Parse(LEADER);
        _cleanup_free_ char *err = NULL;
        _cleanup_close_ int held_fd = -EBADF;
        char path[] = "/tmp/pgha-test-rest-XXXXXX";
        _cleanup_close_ int garbage = mkstemp(path);
        RestServerOptions o = {
                .listen_host = "127.0.0.1", .auth_username = "admin", .auth_password = "s3cret"};
        NodeSnapshot snap = {};
        RestCall *held = NULL;
        Exchange x, pending = {};
        uint16_t port, new_port;
        uint64_t now = 0;
        static const char reload[] = "POST /reload HTTP/1.0\r\n" AUTH "\r\n";
        static const char reload_new[] =
                "POST /reload HTTP/1.0\r\nAuthorization: Basic YWRtaW46bmV3\r\n\r\n";

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
        ASSERT_OK(snapshot_load_json(j, now, &snap, &err));
        ASSERT_OK(rest_server_new(e, &o, &snap, &server));
        rest_server_set_intent_handler(server, &handler, &(unsigned){0});
        port = rest_server_port(server);
        ASSERT_EQ(exchange(e, port, reload, &x), 200U);

        /* new credentials: at once, no new listener */
        o.auth_password = "new";
        ASSERT_EQ(rest_server_reconfigure(server, &o), 0);
        ASSERT_EQ(exchange(e, port, reload, &x), 401U);
        ASSERT_EQ(exchange(e, port, reload_new, &x), 200U); /* admin:new */

        /* an allowlist that excludes us, then none */
        o.allowlist = (char *[]){(char *)"192.0.2.0/24", NULL};
        o.n_allowlist = 1;
        ASSERT_EQ(rest_server_reconfigure(server, &o), 0);
        ASSERT_EQ(exchange(e, port, reload_new, &x), 403U);
        o.allowlist = NULL;
        o.n_allowlist = 0;
        ASSERT_EQ(rest_server_reconfigure(server, &o), 0);
        ASSERT_EQ(exchange(e, port, reload_new, &x), 200U);

        /* unusable TLS material: refused before anything changes, the server keeps serving */
        ASSERT_TRUE(garbage >= 0);
        ASSERT_EQ(write(garbage, "junk\n", 5), 5);
        o.certfile = path;
        ASSERT_EQ(rest_server_reconfigure(server, &o), 1);
        for (unsigned i = 0; i < 10; i++)
                ASSERT_OK(sd_event_run(e, 0));
        ASSERT_EQ(rest_server_port(server), port);
        ASSERT_EQ(exchange(e, port, reload_new, &x), 200U);
        o.certfile = NULL;

        /* a new port while a request waits for the engine: the old listener finishes it */
        rest_server_set_intent_handler(server, &later_handler, &held);
        held_fd = connect_port(port);
        ASSERT_TRUE(held_fd >= 0);
        ASSERT_EQ(send(held_fd, reload_new, strlen(reload_new), MSG_NOSIGNAL), (ssize_t)strlen(reload_new));
        for (unsigned i = 0; !held && i < 1000; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_NOT_NULL(held);
        o.listen_port = 0;
        o.listen_host = "127.0.0.2"; /* another address of lo */
        ASSERT_EQ(rest_server_reconfigure(server, &o), 1);
        for (unsigned i = 0; rest_server_port(server) == port && i < 100; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        new_port = rest_server_port(server);
        ASSERT_TRUE(new_port != port);
        ASSERT_EQ(connect_port(port), -ECONNREFUSED); /* the old socket is closed */
        ASSERT_OK(sd_event_add_io(e, &source, held_fd, EPOLLIN, on_reply, &pending));
        ASSERT_OK(rest_call_reply_text(held, 200, "answered late"));
        for (unsigned i = 0; !pending.done && i < 1000; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_TRUE(startswith(pending.reply, "HTTP/1.0 200 OK"));
        ASSERT_NOT_NULL(strstr(pending.reply, "answered late"));

        (void)unlink(path);
        server = rest_server_free(server);
        snapshot_done(&snap);
}

static void
on_client_done(HttpRequest *req, int error, long status, const char *body, size_t size, void *userdata) {
        long *ret = userdata;

        *ret = error < 0 ? error : status;
}

static long
client_post(sd_event *e, HttpClient *client, uint16_t port, const char *user, const char *password) {
        _cleanup_free_ char *url = NULL;
        long status = 0;

        ASSERT_TRUE(asprintf(&url, "http://127.0.0.1:%u/reload", port) > 0);
        HttpRequestOptions o = {
                .url = url,
                .body = "",
                .timeout = 5 * USEC_PER_SEC,
                .username = user,
                .password = password,
                .on_done = on_client_done,
                .userdata = &status,
        };
        ASSERT_OK(http_client_start(client, &o, NULL));
        for (unsigned i = 0; status == 0 && i < 1000; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        return status;
}

/* The HTTP client's Basic credentials (pghad sends restapi.authentication to other members, as Patroni
 * does) against the server's check. */
TEST(http_client_credentials) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(rest_server_freep) RestServer *server = NULL;
        _cleanup_(http_client_freep) HttpClient *client = NULL;
        _cleanup_(cJSON_Deletep) cJSON *j = cJSON_Parse(LEADER);
        _cleanup_free_ char *err = NULL;
        RestServerOptions o = {
                .listen_host = "127.0.0.1", .auth_username = "admin", .auth_password = "s3cret"};
        NodeSnapshot snap = {};
        uint64_t now = 0;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
        ASSERT_OK(snapshot_load_json(j, now, &snap, &err));
        ASSERT_OK(rest_server_new(e, &o, &snap, &server));
        rest_server_set_intent_handler(server, &handler, &(unsigned){0});
        ASSERT_OK(http_client_new(e, 0, &client));
        ASSERT_EQ(client_post(e, client, rest_server_port(server), "admin", "s3cret"), 200);
        ASSERT_EQ(client_post(e, client, rest_server_port(server), "admin", "wrong"), 401);
        ASSERT_EQ(client_post(e, client, rest_server_port(server), NULL, NULL), 401);
        client = http_client_free(client);
        server = rest_server_free(server);
        snapshot_done(&snap);
}

DEFINE_TEST_MAIN
