/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pgconn: LSN text, back-off arithmetic, typed result getters over hand-built PGresults,
 * and the connection state machine against sockets that refuse or never answer (no server needed).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgha/pgconn.h"
#include "tests.h"

TEST(lsn_parse) {
        uint64_t v;

        ASSERT_OK(pg_lsn_from_string("16/B374D848", &v));
        ASSERT_U64_EQ(v, 0x16B374D848ULL);
        ASSERT_OK(pg_lsn_from_string("0/0", &v));
        ASSERT_U64_EQ(v, 0);
        ASSERT_OK(pg_lsn_from_string("0/3000060", &v));
        ASSERT_U64_EQ(v, 50331744); /* Patroni's observed xlog.location */
        ASSERT_OK(pg_lsn_from_string("FFFFFFFF/FFFFFFFF", &v));
        ASSERT_U64_EQ(v, UINT64_MAX);
        ASSERT_OK(pg_lsn_from_string("a/bcDEf", &v));
        ASSERT_U64_EQ(v, 0xA000BCDEFULL);

        ASSERT_ERROR(pg_lsn_from_string("", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("16", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("16/", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("/16", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("16/B374D848 ", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("16/B374D8480", &v), EINVAL); /* 9 digits */
        ASSERT_ERROR(pg_lsn_from_string("123456789/0", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("-1/0", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("1/2/3", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string("0x1/0", &v), EINVAL);
        ASSERT_ERROR(pg_lsn_from_string(NULL, &v), EINVAL);
}

TEST(lsn_roundtrip) {
        const uint64_t values[] = {0, 1, 0xFFFFFFFFULL, 0x100000000ULL, 0x16B374D848ULL, UINT64_MAX};
        char buf[32];

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                uint64_t v;

                ASSERT_TRUE(pg_lsn_to_string(values[i], buf, sizeof(buf)) > 0);
                ASSERT_OK(pg_lsn_from_string(buf, &v));
                ASSERT_U64_EQ(v, values[i]);
        }
        pg_lsn_to_string(0x16B374D848ULL, buf, sizeof(buf));
        ASSERT_STREQ(buf, "16/B374D848");
}

TEST(backoff) {
        const usec_t min = 100 * USEC_PER_MSEC, max = 3 * USEC_PER_SEC;
        usec_t prev = 0;

        /* first failure: exactly min, whatever the random value */
        ASSERT_U64_EQ(pgconn_backoff_next(0, min, max, 0), min);
        ASSERT_U64_EQ(pgconn_backoff_next(0, min, max, UINT64_MAX), min);
        /* decorrelated: within [min, 3 * previous], capped */
        ASSERT_U64_EQ(pgconn_backoff_next(min, min, max, 0), min);
        ASSERT_U64_EQ(pgconn_backoff_next(min, min, max, 2 * min), 3 * min);
        ASSERT_U64_EQ(
                pgconn_backoff_next(2 * USEC_PER_SEC, min, max, UINT64_MAX - 5),
                MIN(max, min + (UINT64_MAX - 5) % (max - min + 1)));
        for (unsigned i = 0; i < 1000; i++) {
                usec_t next =
                        pgconn_backoff_next(prev, min, max, (uint64_t)random() << 20 ^ (uint64_t)random());

                ASSERT_TRUE(next >= min);
                ASSERT_TRUE(next <= max);
                ASSERT_TRUE(next <= MAX(3 * prev, min));
                prev = next;
        }
        /* huge previous must not overflow */
        ASSERT_TRUE(pgconn_backoff_next(UINT64_MAX, min, max, 7) <= max);
}

static PGresult *make_result(unsigned ncols, const char *const *row) {
        PGresAttDesc attrs[16] = {};
        char names[16][8];
        PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

        ASSERT_NOT_NULL(res);
        for (unsigned i = 0; i < ncols; i++) {
                snprintf(names[i], sizeof(names[i]), "c%u", i);
                attrs[i].name = names[i];
                attrs[i].format = 0;
                attrs[i].typid = 25;
                attrs[i].typlen = -1;
                attrs[i].atttypmod = -1;
        }
        ASSERT_TRUE(PQsetResultAttrs(res, (int)ncols, attrs));
        for (unsigned i = 0; i < ncols; i++)
                ASSERT_TRUE(PQsetvalue(res, 0, (int)i, (char *)row[i], row[i] ? (int)strlen(row[i]) : -1));
        return res;
}

TEST(result_getters) {
        const char *row[] = {
                "t",
                "f",
                "150020",
                "7712574132163962109",
                "0/3000060",
                "1795723600.220474",
                NULL,
                "x",
                "-5",
                "18446744073709551616"};
        PGresult *res = make_result(ELEMENTSOF(row), row);
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        char *s = NULL;

        ASSERT_OK(pgresult_get_bool(res, 0, 0, &b));
        ASSERT_TRUE(b);
        ASSERT_OK(pgresult_get_bool(res, 0, 1, &b));
        ASSERT_FALSE(b);
        ASSERT_ERROR(pgresult_get_bool(res, 0, 2, &b), EINVAL);
        ASSERT_OK(pgresult_get_int64(res, 0, 2, &i));
        ASSERT_EQ(i, 150020);
        ASSERT_OK(pgresult_get_int64(res, 0, 8, &i));
        ASSERT_EQ(i, -5);
        ASSERT_OK(pgresult_get_uint64(res, 0, 3, &u));
        ASSERT_U64_EQ(u, 7712574132163962109ULL);
        ASSERT_ERROR(pgresult_get_uint64(res, 0, 8, &u), EINVAL);
        ASSERT_ERROR(pgresult_get_uint64(res, 0, 9, &u), EINVAL); /* 2^64 overflows */
        ASSERT_OK(pgresult_get_lsn(res, 0, 4, &u));
        ASSERT_U64_EQ(u, 50331744);
        ASSERT_ERROR(pgresult_get_lsn(res, 0, 7, &u), EINVAL);
        ASSERT_OK(pgresult_get_double(res, 0, 5, &d));
        ASSERT_TRUE(d > 1795723600.22 && d < 1795723600.23);
        ASSERT_ERROR(pgresult_get_int64(res, 0, 6, &i), ENXIO); /* NULL cell */
        ASSERT_ERROR(pgresult_get_string(res, 0, 6, &s), ENXIO);
        ASSERT_ERROR(pgresult_get_int64(res, 0, 7, &i), EINVAL);
        ASSERT_ERROR(pgresult_get_int64(res, 1, 0, &i), ERANGE);
        ASSERT_ERROR(pgresult_get_int64(res, 0, 10, &i), ERANGE);
        ASSERT_ERROR(pgresult_get_int64(NULL, 0, 0, &i), ERANGE);
        ASSERT_OK(pgresult_get_string(res, 0, 3, &s));
        ASSERT_STREQ(s, "7712574132163962109");
        free(s);
        PQclear(res);
}

TEST(new_rejects_host_names) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        PgConn *c = NULL;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_ERROR(pgconn_new(e, &(PgConnParams){}, &c), EINVAL);
        ASSERT_ERROR(pgconn_new(e, &(PgConnParams){.host = "/tmp", .port = 70000}, &c), EINVAL);
        ASSERT_OK(pgconn_new(e, &(PgConnParams){.hostaddr = "127.0.0.1", .port = 1}, &c));
        ASSERT_EQ(pgconn_get_state(c), PGCONN_DISCONNECTED);
        c = pgconn_free(c);
        ASSERT_NULL(c);
}

typedef struct Outcome {
        unsigned calls;
        int error;
        char message[256];
        sd_event *event;
        PgConn **free_conn; /* free this connection from inside the callback */
} Outcome;

static void on_done(PgConn *c, const PGresult *res, int error, const char *message, void *userdata) {
        Outcome *o = userdata;

        o->calls++;
        o->error = error;
        snprintf(o->message, sizeof(o->message), "%s", strempty(message));
        if (o->free_conn)
                *o->free_conn = pgconn_free(*o->free_conn);
}

/* Runs the loop until *calls becomes non-zero (calls may be NULL: run the full time) or max passes. */
static void run_until(sd_event *e, const unsigned *calls, usec_t max) {
        usec_t start, now;

        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &start));
        do {
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
        } while ((!calls || *calls == 0) && now - start < max);
}

TEST(connect_refused_then_backoff) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        char dir[] = "/tmp/pgha-test-pgconn-XXXXXX";
        Outcome o = {};
        PgQuery *q = NULL;

        ASSERT_NOT_NULL(mkdtemp(dir));
        ASSERT_OK(sd_event_new(&e));
        o.event = e;
        ASSERT_OK(pgconn_new(
                e,
                &(PgConnParams){
                        .host = dir,
                        .port = 5999,
                        .backoff_min = 50 * USEC_PER_MSEC,
                        .backoff_max = 50 * USEC_PER_MSEC},
                &c));
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 0, on_done, &o, &q));
        ASSERT_EQ(o.calls, 0); /* never inside the call */
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, -ECONNREFUSED);
        ASSERT_TRUE(strstr(o.message, dir) != NULL); /* libpq names the socket it tried */
        ASSERT_EQ(pgconn_get_state(c), PGCONN_BACKOFF);
        ASSERT_ERROR(pgconn_query(c, "SELECT 1", 0, NULL, 0, on_done, &o, NULL), ENOTCONN);
        ASSERT_NOT_NULL(pgconn_last_error(c));

        /* after the back-off the next query tries again */
        run_until(e, NULL, 200 * USEC_PER_MSEC);
        ASSERT_EQ(pgconn_get_state(c), PGCONN_DISCONNECTED);
        o.calls = 0;
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 0, on_done, &o, NULL));
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, -ECONNREFUSED);
        rmdir(dir);
}

/* The protocol code of the first packet libpq sends to a TCP server that accepts and stays silent:
 * 196608 (protocol 3.0 StartupMessage) or 80877103 (SSLRequest). */
static uint32_t first_packet_code(const char *const *libpq) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), a;
        uint8_t buf[8];
        uint32_t code;

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
        ASSERT_OK(listen(fd, 8));
        ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(pgconn_new(
                e,
                &(PgConnParams){.hostaddr = "127.0.0.1", .port = ntohs(sa.sin_port), .libpq = libpq},
                &c));
        ASSERT_OK(pgconn_connect_now(c));
        run_until(e, NULL, 300 * USEC_PER_MSEC);
        a = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(a >= 0);
        ASSERT_EQ(recv(a, buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(buf));
        memcpy(&code, buf + 4, sizeof(code));
        close(a);
        close(fd);
        return ntohl(code);
}

/* PgConnParams.libpq reaches libpq: sslmode=disable makes the first packet the StartupMessage and
 * sslmode=require an SSLRequest (libpq's default, prefer, sends one too); a gssencmode of the user's
 * does not override ours (disable: GSSAPI negotiation may block), else a GSSENCRequest would come. */
TEST(libpq_keywords_reach_the_connection) {
        ASSERT_EQ(first_packet_code((const char *const[]){"sslmode", "disable", NULL}), 196608U);
        ASSERT_EQ(first_packet_code((const char *const[]){"sslmode", "require", NULL}), 80877103U);
        ASSERT_EQ(
                first_packet_code(
                        (const char *const[]){"sslmode", "disable", "gssencmode", "require", NULL}),
                196608U);
}

/* A Unix socket that accepts into the backlog but never speaks: the connect phase must end at its
 * deadline, and the loop must keep running meanwhile. */
static int make_silent_server(const char *dir, unsigned port) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ASSERT_TRUE(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%u", dir, port);
        ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
        ASSERT_OK(listen(fd, 8));
        return fd;
}

TEST(connect_deadline_and_cancel) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        char dir[] = "/tmp/pgha-test-pgconn-XXXXXX", path[128];
        Outcome o = {}, cancelled = {};
        PgQuery *q = NULL;
        usec_t t0, t1;
        int fd;

        ASSERT_NOT_NULL(mkdtemp(dir));
        fd = make_silent_server(dir, 5432);
        ASSERT_OK(sd_event_new(&e));
        o.event = cancelled.event = e;
        ASSERT_OK(pgconn_new(
                e, &(PgConnParams){.host = dir, .port = 5432, .connect_timeout = 300 * USEC_PER_MSEC}, &c));
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 10 * USEC_PER_SEC, on_done, &cancelled, &q));
        ASSERT_OK(pgconn_query(c, "SELECT 2", 0, NULL, 10 * USEC_PER_SEC, on_done, &o, NULL));
        ASSERT_EQ(pgconn_queue_length(c), 2);
        pgconn_query_cancel(q);
        ASSERT_EQ(pgconn_queue_length(c), 1);
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &t0));
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &t1));
        ASSERT_EQ(cancelled.calls, 0);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, -ETIMEDOUT);
        ASSERT_TRUE(t1 - t0 >= 250 * USEC_PER_MSEC);
        ASSERT_TRUE(t1 - t0 < 2 * USEC_PER_SEC);
        close(fd);
        snprintf(path, sizeof(path), "%s/.s.PGSQL.5432", dir);
        unlink(path);
        rmdir(dir);
}

TEST(query_deadline_while_queued) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        char dir[] = "/tmp/pgha-test-pgconn-XXXXXX", path[128];
        Outcome o = {};
        int fd;

        ASSERT_NOT_NULL(mkdtemp(dir));
        fd = make_silent_server(dir, 5433);
        ASSERT_OK(sd_event_new(&e));
        o.event = e;
        ASSERT_OK(pgconn_new(
                e, &(PgConnParams){.host = dir, .port = 5433, .connect_timeout = 10 * USEC_PER_SEC}, &c));
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 200 * USEC_PER_MSEC, on_done, &o, NULL));
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, -ETIMEDOUT);
        ASSERT_EQ(pgconn_get_state(c), PGCONN_CONNECTING); /* the connection attempt goes on */
        close(fd);
        snprintf(path, sizeof(path), "%s/.s.PGSQL.5433", dir);
        unlink(path);
        rmdir(dir);
}

TEST(free_inside_callback) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        PgConn *c = NULL;
        char dir[] = "/tmp/pgha-test-pgconn-XXXXXX";
        Outcome first = {}, second = {};

        ASSERT_NOT_NULL(mkdtemp(dir));
        ASSERT_OK(sd_event_new(&e));
        first.event = second.event = e;
        ASSERT_OK(pgconn_new(e, &(PgConnParams){.host = dir, .port = 5998}, &c));
        first.free_conn = &c;
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 0, on_done, &first, NULL));
        ASSERT_OK(pgconn_query(c, "SELECT 2", 0, NULL, 0, on_done, &second, NULL));
        run_until(e, &first.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(first.calls, 1);
        ASSERT_NULL(c);
        ASSERT_EQ(second.calls, 0); /* freed with the connection, callback never runs */
        rmdir(dir);
}

/* A server that completes the start-up handshake (AuthenticationOk, ReadyForQuery), then, on the first
 * query, forks a child that holds a copy of every descriptor (as a child of pghad between fork() and
 * exec() does) and hangs up. libpq closes its socket itself on the EOF; the loop must not be left with
 * an epoll registration it cannot remove: one for a freed source aborts sd-event on its next wake-up. */
typedef struct HangUpServer {
        int listen_fd, conn_fd;
        sd_event_source *listen_source, *conn_source;
        char buf[512];
        size_t len;
        bool started;
        pid_t holder;
} HangUpServer;

static int on_hangup_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static const char ready[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
        HangUpServer *h = userdata;
        ssize_t n = read(fd, h->buf + h->len, sizeof(h->buf) - h->len);

        if (n <= 0)
                return 0;
        h->len += (size_t)n;
        if (!h->started) {
                /* the start-up packet: its int32 length comes first */
                if (h->len < 4 ||
                    h->len < ((size_t)(unsigned char)h->buf[2] << 8 | (unsigned char)h->buf[3]))
                        return 0;
                h->started = true;
                h->len = 0;
                ASSERT_TRUE(write(fd, ready, sizeof(ready)) == (ssize_t)sizeof(ready));
                return 0;
        }
        h->holder = fork();
        ASSERT_TRUE(h->holder >= 0);
        if (h->holder == 0) {
                safe_close(h->conn_fd); /* the client's socket only: the hang-up must reach it */
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that aborts */
                for (;;)
                        pause();
        }
        h->conn_source = sd_event_source_disable_unref(h->conn_source);
        h->conn_fd = safe_close(h->conn_fd);
        return 0;
}

static int on_hangup_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HangUpServer *h = userdata;

        h->conn_fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(h->conn_fd >= 0);
        ASSERT_OK(sd_event_add_io(
                sd_event_source_get_event(s), &h->conn_source, h->conn_fd, EPOLLIN, on_hangup_conn, h));
        return 0;
}

TEST(server_hang_up_while_a_child_holds_the_socket) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        char dir[] = "/tmp/pgha-test-pgconn-XXXXXX", path[128];
        HangUpServer h = {.conn_fd = -EBADF};
        Outcome o = {};

        ASSERT_NOT_NULL(mkdtemp(dir));
        h.listen_fd = make_silent_server(dir, 5434);
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(sd_event_add_io(e, &h.listen_source, h.listen_fd, EPOLLIN, on_hangup_listen, &h));
        ASSERT_OK(pgconn_new(e, &(PgConnParams){.host = dir, .port = 5434, .user = "postgres"}, &c));
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 5 * USEC_PER_SEC, on_done, &o, NULL));
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(o.calls, 1);
        ASSERT_TRUE(o.error < 0);
        ASSERT_TRUE(h.holder > 0);
        /* the hung-up socket stays readable while the child holds it: keep the loop waking */
        run_until(e, NULL, 300 * USEC_PER_MSEC);
        ASSERT_OK(kill(h.holder, SIGKILL));
        ASSERT_EQ(waitpid(h.holder, NULL, 0), h.holder);
        sd_event_source_disable_unref(h.listen_source);
        safe_close(h.listen_fd);
        snprintf(path, sizeof(path), "%s/.s.PGSQL.5434", dir);
        unlink(path);
        rmdir(dir);
}

typedef struct Resolved {
        unsigned calls;
        int error;
        char address[64];
} Resolved;

static void on_resolved(PgResolve *r, int error, const char *address, void *userdata) {
        Resolved *o = userdata;

        o->calls++;
        o->error = error;
        snprintf(o->address, sizeof(o->address), "%s", strempty(address));
}

TEST(resolve) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Resolved a = {}, b = {}, cancelled = {}, bad = {};
        PgResolve *r = NULL;
        usec_t t0, t1;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_ERROR(pg_resolve(e, "", 0, on_resolved, &a, NULL), EINVAL);

        /* /etc/hosts */
        ASSERT_OK(pg_resolve(e, "localhost", 2 * USEC_PER_SEC, on_resolved, &a, NULL));
        /* numeric input needs no lookup and is normalised */
        ASSERT_OK(pg_resolve(e, "0:0::1", 2 * USEC_PER_SEC, on_resolved, &b, NULL));
        /* cancelled while glibc works on it: never called back */
        ASSERT_OK(pg_resolve(e, "pgha-cancelled.invalid", 2 * USEC_PER_SEC, on_resolved, &cancelled, &r));
        ASSERT_EQ(a.calls + b.calls, 0); /* never inside the call */
        r = pg_resolve_cancel(r);
        ASSERT_NULL(r);

        run_until(e, &a.calls, 3 * USEC_PER_SEC);
        run_until(e, &b.calls, 3 * USEC_PER_SEC);
        ASSERT_EQ(a.calls, 1);
        ASSERT_OK(a.error);
        ASSERT_TRUE(streq(a.address, "127.0.0.1") || streq(a.address, "::1"));
        ASSERT_EQ(b.calls, 1);
        ASSERT_STREQ(b.address, "::1");

        /* a name that cannot exist ends in an error by the deadline at the latest, whatever DNS does */
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &t0));
        ASSERT_OK(pg_resolve(e, "pgha-no-such-host.invalid", 1 * USEC_PER_SEC, on_resolved, &bad, NULL));
        run_until(e, &bad.calls, 5 * USEC_PER_SEC);
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &t1));
        ASSERT_EQ(bad.calls, 1);
        ASSERT_TRUE(bad.error == -ENOENT || bad.error == -EHOSTUNREACH || bad.error == -ETIMEDOUT);
        ASSERT_TRUE(t1 - t0 < 2 * USEC_PER_SEC);
        ASSERT_EQ(cancelled.calls, 0);
}

TEST(connect_by_host_name) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        Outcome o = {};

        ASSERT_OK(sd_event_new(&e));
        o.event = e;
        /* port 1 on loopback: nothing listens, so the lookup is followed by a refused connect */
        ASSERT_OK(pgconn_new(e, &(PgConnParams){.host = "localhost", .port = 1}, &c));
        ASSERT_OK(pgconn_query(c, "SELECT 1", 0, NULL, 0, on_done, &o, NULL));
        run_until(e, &o.calls, 5 * USEC_PER_SEC);
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.error, -ECONNREFUSED);
        ASSERT_TRUE(strstr(o.message, "127.0.0.1") != NULL || strstr(o.message, "::1") != NULL);
}

DEFINE_TEST_MAIN
