/* SPDX-License-Identifier: MIT */
/*
 * pgconn: a libpq connection on the sd-event loop, never blocking it.
 *
 * The connect phase is PQconnectStartParams() plus PQconnectPoll() driven by one io source whose events
 * follow what libpq asks for (PGRES_POLLING_READING/WRITING); PQsocket() is re-read after every poll and
 * the source re-created when it changed. Once connected the socket is switched to non-blocking mode and
 * queries run one at a time from a FIFO queue: PQsendQueryParams(), PQflush() with EPOLLOUT while it
 * returns 1, and on EPOLLIN PQconsumeInput() then PQgetResult() while !PQisBusy() until NULL.
 *
 * Every query carries its own deadline timer; libpq 15 has no non-blocking cancel, so a query that passes
 * its deadline tears the connection down (PQfinish) and every other queued query fails with -ECONNRESET.
 * After any failure the connection sits in back-off (exponential with decorrelated jitter) during which
 * new queries are refused at once with -ENOTCONN, so callers see the real error instead of waiting.
 *
 * Invariant: a query's callback runs at most once, never after pgconn_query_cancel() or pgconn_free(),
 * and the connection is kept alive (reference count) while a callback runs, so callbacks may free it.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>

#include "pgha/log.h"
#include "pgha/pgconn.h"
#include "pgha/proc.h"

#define PGCONN_DEFAULT_CONNECT_TIMEOUT   (3 * USEC_PER_SEC)
#define PGCONN_DEFAULT_STATEMENT_TIMEOUT (2 * USEC_PER_SEC)
#define PGCONN_DEFAULT_BACKOFF_MIN       (100 * USEC_PER_MSEC)
#define PGCONN_DEFAULT_BACKOFF_MAX       (3 * USEC_PER_SEC)
/* Deadlines decide failovers: do not let sd-event coalesce them by its default 250 ms. */
#define PGCONN_DEADLINE_ACCURACY (1 * USEC_PER_MSEC)
#define PGCONN_MAX_QUEUE         64 /* a stuck server must not let callers pile up queries */
#define PGCONN_MAX_PARAMS        64

struct PgQuery {
        PgConn *conn;
        PgQuery *prev, *next;
        uint64_t generation; /* connection generation it was queued in; teardown fails older ones */
        char *sql;
        char **params;
        unsigned n_params;
        usec_t timeout;
        PgQueryFunc callback; /* NULL once cancelled while in flight */
        void *userdata;
        sd_event_source *timer; /* the deadline */
};

struct PgConn {
        unsigned n_ref;
        bool dead; /* pgconn_free() was called; memory lingers only while a callback runs */
        sd_event *event;

        char *host, *hostaddr, *user, *password, *dbname, *application_name, *description;
        char **libpq;        /* PgConnParams.libpq, copied; NULL when none */
        size_t n_libpq;      /* pairs in libpq */
        bool resolve_host;   /* host is a name: look it up before every connect */
        PgResolve *resolve;  /* lookup in progress */
        char *resolved_addr; /* result for the current attempt, passed as hostaddr */
        unsigned port;
        usec_t connect_timeout, statement_timeout, backoff_min, backoff_max;

        PGconn *pg;
        PgConnState state;
        int fd; /* socket the io source watches, -1 when none */
        sd_event_source *io;
        sd_event_source *connect_timer;
        sd_event_source *backoff_timer;
        sd_event_source *kick; /* defer source: start connecting or send from the loop, not the caller */
        bool connect_requested;

        PgQuery *queue_head, *queue_tail; /* waiting, oldest first */
        unsigned n_queued;
        PgQuery *in_flight;
        PGresult *result; /* result collected for in_flight */
        bool flushing;    /* PQflush() returned 1: wait for EPOLLOUT */
        uint64_t generation;

        usec_t backoff; /* last back-off delay; 0 after a successful connect */
        usec_t connected_since;
        int server_version;
        char *last_error;
};

static const char *const pgconn_state_table[_PGCONN_STATE_MAX] = {
        [PGCONN_DISCONNECTED] = "disconnected",
        [PGCONN_BACKOFF] = "backoff",
        [PGCONN_CONNECTING] = "connecting",
        [PGCONN_IDLE] = "idle",
        [PGCONN_BUSY] = "busy",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(pgconn_state, PgConnState);

static int conn_dispatch(PgConn *c);
static int conn_connect(PgConn *c);
static void conn_teardown(PgConn *c, int error_in_flight, int error_queued, const char *message);

static PgConn *conn_ref(PgConn *c) {
        c->n_ref++;
        return c;
}

static void conn_unref(PgConn *c) {
        if (!c || --c->n_ref > 0)
                return;
        free(c->host);
        free(c->hostaddr);
        free(c->user);
        free(c->password);
        free(c->dbname);
        free(c->application_name);
        free(c->description);
        proc_strv_free(c->libpq);
        free(c->last_error);
        free(c->resolved_addr);
        sd_event_unref(c->event);
        free(c);
}

static PgQuery *query_free(PgQuery *q) {
        if (!q)
                return NULL;
        sd_event_source_disable_unref(q->timer);
        free(q->sql);
        for (unsigned i = 0; i < q->n_params; i++)
                free(q->params[i]);
        free(q->params);
        return mfree(q);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PgQuery *, query_free);

static void queue_unlink(PgConn *c, PgQuery *q) {
        if (q->prev)
                q->prev->next = q->next;
        else
                c->queue_head = q->next;
        if (q->next)
                q->next->prev = q->prev;
        else
                c->queue_tail = q->prev;
        q->prev = q->next = NULL;
        c->n_queued--;
}

static void queue_append(PgConn *c, PgQuery *q) {
        q->prev = c->queue_tail;
        q->next = NULL;
        if (c->queue_tail)
                c->queue_tail->next = q;
        else
                c->queue_head = q;
        c->queue_tail = q;
        c->n_queued++;
}

static void conn_set_error(PgConn *c, const char *message) {
        char *m = strdup(message ?: "unknown error");
        size_t l;

        if (!m)
                return; /* keep the previous message rather than none */
        /* libpq messages end in a newline; logs and JSON do not want it */
        l = strlen(m);
        while (l > 0 && (m[l - 1] == '\n' || m[l - 1] == ' '))
                m[--l] = '\0';
        free(c->last_error);
        c->last_error = m;
}

/* Runs the callback of a query that has already been detached from the connection, then frees it.
 * The caller holds a connection reference. */
static void query_complete(PgQuery *q, const PGresult *res, int error, const char *message) {
        q->timer = sd_event_source_disable_unref(q->timer);
        if (q->callback)
                q->callback(q->conn, res, error, message, q->userdata);
        query_free(q);
}

static void conn_release_io(PgConn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = -1;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* Watches PQsocket() for events, re-creating the source when libpq switched sockets. With renew the
 * source is always re-created: while connecting, libpq may close its socket and open the next one under
 * the same descriptor number (next address, SSL fallback), and epoll silently forgets a closed
 * descriptor, so an unchanged number proves nothing.
 *
 * epoll watches our own duplicate of libpq's socket, owned by the source: libpq closes its socket by
 * itself (server gone, EOF), and a registration whose descriptor was closed first cannot be removed any
 * more — it lives on while a child between fork() and exec() holds a copy of the socket, and reports
 * events for a source already freed (sd-event aborts), or its number is reused and the removal hits
 * another source's registration. With the duplicate, removing the source always removes exactly its
 * registration, then closes the duplicate. */
static int conn_watch_full(PgConn *c, uint32_t events, bool renew) {
        _cleanup_close_ int watch_fd = -EBADF;
        int fd = PQsocket(c->pg), r;

        if (fd < 0)
                return -ENOTCONN;
        if (c->io && c->fd == fd && !renew) {
                r = sd_event_source_set_io_events(c->io, events);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(c->io, SD_EVENT_ON);
        }
        conn_release_io(c);
        watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (watch_fd < 0)
                return -errno;
        r = sd_event_add_io(c->event, &c->io, watch_fd, events, on_conn_io, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_io_fd_own(c->io, true);
        if (r < 0) {
                c->io = sd_event_source_disable_unref(c->io);
                return r;
        }
        TAKE_FD(watch_fd);
        c->fd = fd;
        (void)sd_event_source_set_description(c->io, c->description);
        return 0;
}

static int conn_watch(PgConn *c, uint32_t events) {
        return conn_watch_full(c, events, /* renew= */ false);
}

/* pgconn_backoff_next - the next reconnect delay after `previous` (0 for the first failure), using
 * decorrelated jitter: uniformly random in [min, 3 * previous], capped at max. `random` is any 64-bit
 * random value; taking it as an argument keeps this pure for tests. */
usec_t pgconn_backoff_next(usec_t previous, usec_t min, usec_t max, uint64_t random) {
        usec_t hi;

        if (min == 0)
                min = 1;
        if (max < min)
                max = min;
        hi = previous > max / 3 ? max : MAX(previous * 3, min);
        return MIN(max, min + random % (hi - min + 1));
}

static uint64_t random_u64(void) {
        uint64_t v;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
                return v;
        /* no entropy yet (early boot): jitter only needs to differ between nodes */
        return (uint64_t)time(NULL) * 6364136223846793005ULL ^ (uint64_t)getpid();
}

static int on_backoff_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        PgConn *c = userdata;

        c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
        if (c->state == PGCONN_BACKOFF)
                c->state = PGCONN_DISCONNECTED;
        return 0;
}

/* Closes the libpq connection, enters back-off and fails the in-flight query with error_in_flight and
 * every query queued before now with error_queued. Logs at debug only: callers decide what is worth a
 * warning. Safe to call from any handler; the caller must not touch c afterwards unless it holds a ref. */
static void conn_teardown(PgConn *c, int error_in_flight, int error_queued, const char *message) {
        uint64_t gen = c->generation++;
        PgQuery *q;
        int r;

        conn_set_error(c, message);
        log_debug("%s: connection closed: %s", c->description, strna(c->last_error));

        conn_release_io(c);
        c->connect_timer = sd_event_source_disable_unref(c->connect_timer);
        c->resolve = pg_resolve_cancel(c->resolve);
        c->resolved_addr = mfree(c->resolved_addr); /* look the name up again next time */
        if (c->pg) {
                PQfinish(c->pg);
                c->pg = NULL;
        }
        if (c->result) {
                PQclear(c->result);
                c->result = NULL;
        }
        c->flushing = false;
        c->connected_since = 0;

        c->backoff = pgconn_backoff_next(c->backoff, c->backoff_min, c->backoff_max, random_u64());
        c->state = PGCONN_BACKOFF;
        c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
        r = sd_event_add_time_relative(
                c->event, &c->backoff_timer, CLOCK_MONOTONIC, c->backoff, 0, on_backoff_timer, c);
        if (r < 0)
                c->state = PGCONN_DISCONNECTED; /* no timer: allow the next query to retry at once */
        else
                (void)sd_event_source_set_description(c->backoff_timer, "pg-backoff");

        conn_ref(c);
        q = TAKE_PTR(c->in_flight);
        if (q)
                query_complete(q, NULL, error_in_flight, c->last_error);
        for (;;) {
                if (c->dead)
                        break;
                for (q = c->queue_head; q && q->generation > gen; q = q->next)
                        ;
                if (!q)
                        break;
                queue_unlink(c, q);
                query_complete(q, NULL, error_queued, c->last_error);
        }
        conn_unref(c);
}

static int on_connect_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        PgConn *c = userdata;

        c->connect_timer = sd_event_source_disable_unref(c->connect_timer);
        if (c->state == PGCONN_CONNECTING)
                conn_teardown(c, -ETIMEDOUT, -ETIMEDOUT, "timed out while connecting");
        return 0;
}

static void notice_processor(void *arg, const char *message) {
        PgConn *c = arg;

        log_debug("%s: server notice: %s", c->description, message);
}

static void on_conn_resolved(PgResolve *r, int error, const char *address, void *userdata) {
        PgConn *c = userdata;
        char message[512];

        c->resolve = NULL;
        if (error >= 0 && free_and_strdup(&c->resolved_addr, address) < 0)
                error = -ENOMEM;
        if (error < 0) {
                (void)snprintf(
                        message,
                        sizeof(message),
                        "could not resolve host name \"%s\": %s",
                        c->host,
                        strerror(-error));
                conn_teardown(c, error, error, message);
                return;
        }
        log_debug("%s: \"%s\" resolved to %s", c->description, c->host, address);
        (void)conn_connect(c);
}

static int conn_connect(PgConn *c) {
        /* at most 12 keywords of ours, the user's, and the terminator */
        _cleanup_free_ const char **keys = new0(const char *, 13 + c->n_libpq);
        _cleanup_free_ const char **values = new0(const char *, 13 + c->n_libpq);
        const char *hostaddr = c->hostaddr ?: c->resolved_addr;
        char port[12], options[64];
        size_t n = 0;
        int r;

        assert(!c->pg);

        c->state = PGCONN_CONNECTING;
        if (!keys || !values) {
                r = -ENOMEM;
                goto fail;
        }
        if (!c->connect_timer) {
                /* one deadline for the whole connect phase, name lookup included */
                r = sd_event_add_time_relative(
                        c->event,
                        &c->connect_timer,
                        CLOCK_MONOTONIC,
                        c->connect_timeout,
                        PGCONN_DEADLINE_ACCURACY,
                        on_connect_timer,
                        c);
                if (r < 0)
                        goto fail;
                (void)sd_event_source_set_description(c->connect_timer, "pg-connect-timer");
        }

        if (c->resolve_host && !hostaddr) {
                r = pg_resolve(c->event, c->host, c->connect_timeout, on_conn_resolved, c, &c->resolve);
                if (r < 0)
                        goto fail;
                return 0;
        }

        if (c->host) {
                keys[n] = "host";
                values[n++] = c->host;
        }
        if (hostaddr) {
                keys[n] = "hostaddr";
                values[n++] = hostaddr;
        }
        if (c->port > 0) {
                (void)snprintf(port, sizeof(port), "%u", c->port);
                keys[n] = "port";
                values[n++] = port;
        }
        if (c->user) {
                keys[n] = "user";
                values[n++] = c->user;
        }
        if (c->password) {
                keys[n] = "password";
                values[n++] = c->password;
        }
        keys[n] = "dbname";
        values[n++] = c->dbname;
        /* the user's keywords before the ones below: libpq takes the last value of a repeated keyword */
        for (size_t i = 0; i < c->n_libpq; i++) {
                keys[n] = c->libpq[2 * i];
                values[n++] = c->libpq[2 * i + 1];
        }
        keys[n] = "fallback_application_name";
        values[n++] = c->application_name;
        (void)snprintf(
                options,
                sizeof(options),
                "-c statement_timeout=%llu",
                (unsigned long long)(c->statement_timeout / USEC_PER_MSEC));
        keys[n] = "options";
        values[n++] = options;
        /* GSSAPI negotiation may call into Kerberos libraries that block (and resolve names) */
        keys[n] = "gssencmode";
        values[n++] = "disable";
        /* the connect deadline is our own timer; libpq's would only apply to blocking connects */
        keys[n] = "connect_timeout";
        values[n++] = "0";
        keys[n] = NULL;
        values[n] = NULL;

        c->pg = PQconnectStartParams(keys, values, /* expand_dbname= */ 0);
        if (!c->pg) {
                r = -ENOMEM;
                goto fail;
        }
        PQsetNoticeProcessor(c->pg, notice_processor, c);
        if (PQstatus(c->pg) == CONNECTION_BAD) {
                conn_teardown(c, -ECONNREFUSED, -ECONNREFUSED, PQerrorMessage(c->pg));
                return 0;
        }

        /* libpq: "behave as if PQconnectPoll had last returned PGRES_POLLING_WRITING" */
        r = conn_watch_full(c, EPOLLOUT, /* renew= */ true);
        if (r < 0)
                goto fail;
        return 0;

fail:
        conn_teardown(c, r, r, "failed to start connecting");
        return r;
}

static void conn_connected(PgConn *c) {
        c->connect_timer = sd_event_source_disable_unref(c->connect_timer);
        if (PQsetnonblocking(c->pg, 1) < 0) {
                conn_teardown(c, -EIO, -EIO, PQerrorMessage(c->pg));
                return;
        }
        c->state = PGCONN_IDLE;
        c->backoff = 0;
        (void)sd_event_now(c->event, CLOCK_MONOTONIC, &c->connected_since);
        c->server_version = PQserverVersion(c->pg);
        log_debug("%s: connected, server version %d", c->description, c->server_version);
        if (conn_watch_full(c, EPOLLIN, /* renew= */ true) < 0) {
                conn_teardown(c, -EIO, -EIO, "failed to watch the connection socket");
                return;
        }
        (void)conn_dispatch(c);
}

static void conn_poll_connect(PgConn *c) {
        PostgresPollingStatusType st = PQconnectPoll(c->pg);

        switch (st) {
        case PGRES_POLLING_READING:
        case PGRES_POLLING_WRITING:
                if (conn_watch_full(c, st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT, /* renew= */ true) <
                    0)
                        conn_teardown(c, -EIO, -EIO, "failed to watch the connection socket");
                return;
        case PGRES_POLLING_OK:
                conn_connected(c);
                return;
        default:
                conn_teardown(c, -ECONNREFUSED, -ECONNREFUSED, PQerrorMessage(c->pg));
                return;
        }
}

/* A SQLSTATE of class 57014 (query_canceled) comes from statement_timeout: report it as a timeout. */
static int result_error(const PGresult *res) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (state && streq(state, "57014"))
                return -ETIMEDOUT;
        return -EREMOTEIO;
}

static void conn_finish_query(PgConn *c) {
        PgQuery *q = TAKE_PTR(c->in_flight);
        PGresult *res = TAKE_PTR(c->result);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        const char *message = NULL;
        int error = 0;

        c->state = PGCONN_IDLE;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                error = res ? result_error(res) : -EIO;

        if (error < 0 && res) {
                /* the primary message alone ("division by zero"), without "ERROR:  " and newline */
                message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
                if (!message)
                        message = PQresultErrorMessage(res);
        } else if (error < 0)
                message = "no result";

        conn_ref(c);
        query_complete(q, res, error, message);
        PQclear(res);
        if (!c->dead && c->state == PGCONN_IDLE)
                (void)conn_dispatch(c);
        conn_unref(c);
}

static void conn_collect(PgConn *c) {
        while (!PQisBusy(c->pg)) {
                PGresult *res = PQgetResult(c->pg);
                ExecStatusType st;

                if (!res) {
                        conn_finish_query(c);
                        return;
                }
                st = PQresultStatus(res);
                if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                        PQclear(res);
                        conn_teardown(c, -EPROTO, -ECONNRESET, "COPY is not supported on this connection");
                        return;
                }
                /* keep the first error, otherwise the last result */
                if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR)
                        PQclear(res);
                else {
                        PQclear(c->result);
                        c->result = res;
                }
        }
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PgConn *c = userdata;
        int r;

        switch (c->state) {
        case PGCONN_CONNECTING:
                conn_poll_connect(c);
                return 0;

        case PGCONN_BUSY:
                if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                        if (!PQconsumeInput(c->pg)) {
                                conn_teardown(c, -ECONNRESET, -ECONNRESET, PQerrorMessage(c->pg));
                                return 0;
                        }
                }
                if (c->flushing) {
                        r = PQflush(c->pg);
                        if (r < 0) {
                                conn_teardown(c, -ECONNRESET, -ECONNRESET, PQerrorMessage(c->pg));
                                return 0;
                        }
                        if (r == 0) {
                                c->flushing = false;
                                if (conn_watch(c, EPOLLIN) < 0) {
                                        conn_teardown(c, -EIO, -ECONNRESET, "failed to watch the socket");
                                        return 0;
                                }
                        }
                }
                conn_collect(c);
                return 0;

        case PGCONN_IDLE:
                /* nothing expected: a notice, a parameter change, or the server going away */
                if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
                        conn_teardown(c, -ECONNRESET, -ECONNRESET, PQerrorMessage(c->pg));
                        return 0;
                }
                for (PGnotify *n; (n = PQnotifies(c->pg));)
                        PQfreemem(n);
                (void)conn_dispatch(c);
                return 0;

        default:
                conn_release_io(c);
                return 0;
        }
}

/* Sends the oldest queued query when the connection is idle. */
static int conn_dispatch(PgConn *c) {
        PgQuery *q;
        int r;

        if (c->state != PGCONN_IDLE || !c->queue_head)
                return 0;

        q = c->queue_head;
        queue_unlink(c, q);
        c->in_flight = q;
        c->state = PGCONN_BUSY;

        if (!PQsendQueryParams(
                    c->pg,
                    q->sql,
                    (int)q->n_params,
                    /* paramTypes= */ NULL,
                    (const char *const *)q->params,
                    /* paramLengths= */ NULL,
                    /* paramFormats= */ NULL,
                    /* resultFormat= */ 0)) {
                conn_teardown(c, -ECONNRESET, -ECONNRESET, PQerrorMessage(c->pg));
                return -ECONNRESET;
        }
        r = PQflush(c->pg);
        if (r < 0) {
                conn_teardown(c, -ECONNRESET, -ECONNRESET, PQerrorMessage(c->pg));
                return -ECONNRESET;
        }
        c->flushing = r > 0;
        r = conn_watch(c, c->flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
        if (r < 0) {
                conn_teardown(c, r, -ECONNRESET, "failed to watch the connection socket");
                return r;
        }
        return 1;
}

static int on_kick(sd_event_source *s, void *userdata) {
        PgConn *c = userdata;

        c->kick = sd_event_source_disable_unref(c->kick);
        if (c->state == PGCONN_DISCONNECTED && (c->queue_head || c->connect_requested)) {
                c->connect_requested = false;
                (void)conn_connect(c);
        } else if (c->state == PGCONN_IDLE)
                (void)conn_dispatch(c);
        return 0;
}

/* Schedules on_kick() for the next loop iteration, so callbacks never run inside the caller's call. */
static int conn_kick(PgConn *c) {
        int r;

        if (c->kick)
                return 0;
        r = sd_event_add_defer(c->event, &c->kick, on_kick, c);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(c->kick, "pg-kick");
        return 0;
}

static int on_query_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        PgQuery *q = userdata;
        PgConn *c = q->conn;

        q->timer = sd_event_source_disable_unref(q->timer);
        if (c->in_flight == q) {
                /* no non-blocking cancel in libpq 15: drop the connection, reconnect later */
                conn_teardown(c, -ETIMEDOUT, -ECONNRESET, "query deadline exceeded, connection closed");
                return 0;
        }
        queue_unlink(c, q);
        conn_ref(c);
        query_complete(q, NULL, -ETIMEDOUT, "query deadline exceeded while queued");
        conn_unref(c);
        return 0;
}

/* pgconn_new - creates a connection object for params (strings are copied). Nothing connects until the
 * first query or pgconn_connect_now(). A host that is a name rather than a socket directory, with no
 * hostaddr, is resolved with pg_resolve() before each connect (libpq would resolve it blocking).
 * Returns -EINVAL when neither host nor hostaddr is set. Non-logging. */
int pgconn_new(sd_event *e, const PgConnParams *params, PgConn **ret) {
        _cleanup_(pgconn_freep) PgConn *c = NULL;

        if (!e || !params || !ret)
                return -EINVAL;
        if (isempty(params->host) && isempty(params->hostaddr))
                return -EINVAL;
        if (params->port > 65535)
                return -EINVAL;

        c = new0(PgConn, 1);
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->fd = -1;
        c->event = sd_event_ref(e);
        c->port = params->port;
        c->connect_timeout = params->connect_timeout ?: PGCONN_DEFAULT_CONNECT_TIMEOUT;
        c->statement_timeout = params->statement_timeout ?: PGCONN_DEFAULT_STATEMENT_TIMEOUT;
        c->backoff_min = params->backoff_min ?: PGCONN_DEFAULT_BACKOFF_MIN;
        c->backoff_max = MAX(params->backoff_max ?: PGCONN_DEFAULT_BACKOFF_MAX, c->backoff_min);
        if (free_and_strdup(&c->host, isempty(params->host) ? NULL : params->host) < 0 ||
            free_and_strdup(&c->hostaddr, isempty(params->hostaddr) ? NULL : params->hostaddr) < 0 ||
            free_and_strdup(&c->user, params->user) < 0 ||
            free_and_strdup(&c->password, params->password) < 0 ||
            free_and_strdup(&c->dbname, params->dbname ?: "postgres") < 0 ||
            free_and_strdup(&c->application_name, params->application_name ?: "Patroni") < 0 ||
            free_and_strdup(&c->description, params->description ?: "pg") < 0)
                return -ENOMEM;
        for (const char *const *kv = params->libpq; kv && kv[0] && kv[1]; kv += 2, c->n_libpq++)
                if (proc_strv_push(&c->libpq, kv[0]) < 0 || proc_strv_push(&c->libpq, kv[1]) < 0)
                        return -ENOMEM;
        /* a name (not a socket directory) without hostaddr: never let libpq resolve it */
        c->resolve_host = c->host && c->host[0] != '/' && !c->hostaddr;

        *ret = TAKE_PTR(c);
        return 0;
}

/* pgconn_free - closes the connection, drops every queued and in-flight query without running its
 * callback, releases all event sources. Accepts NULL, returns NULL. May be called from a callback. */
PgConn *pgconn_free(PgConn *c) {
        PgQuery *q;

        if (!c)
                return NULL;
        c->dead = true;
        while ((q = c->queue_head)) {
                queue_unlink(c, q);
                query_free(q);
        }
        c->in_flight = query_free(c->in_flight);
        conn_release_io(c);
        c->connect_timer = sd_event_source_disable_unref(c->connect_timer);
        c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
        c->kick = sd_event_source_disable_unref(c->kick);
        c->resolve = pg_resolve_cancel(c->resolve);
        if (c->result) {
                PQclear(c->result);
                c->result = NULL;
        }
        if (c->pg) {
                PQfinish(c->pg);
                c->pg = NULL;
        }
        c->state = PGCONN_DISCONNECTED;
        conn_unref(c);
        return NULL;
}

/* pgconn_query - queues sql with n_params text parameters (copied) and a deadline of timeout from now
 * (0: statement_timeout + 1 s). Connects first if needed. The callback runs later, from the loop, never
 * from inside this call. *ret_query (optional) is a handle for pgconn_query_cancel(), valid until the
 * callback starts. Returns -ENOTCONN while the connection is in back-off after a failure (see
 * pgconn_last_error()), -ENOBUFS when the queue is full. Non-logging. */
int pgconn_query(
        PgConn *c,
        const char *sql,
        unsigned n_params,
        const char *const *params,
        usec_t timeout,
        PgQueryFunc callback,
        void *userdata,
        PgQuery **ret_query) {

        _cleanup_(query_freep) PgQuery *q = NULL;
        int r;

        if (!c || c->dead || !sql || !callback || n_params > PGCONN_MAX_PARAMS || (n_params > 0 && !params))
                return -EINVAL;
        if (c->state == PGCONN_BACKOFF)
                return -ENOTCONN;
        if (c->n_queued >= PGCONN_MAX_QUEUE)
                return -ENOBUFS;

        q = new0(PgQuery, 1);
        if (!q)
                return -ENOMEM;
        q->conn = c;
        q->callback = callback;
        q->userdata = userdata;
        q->timeout = timeout ?: c->statement_timeout + USEC_PER_SEC;
        q->sql = strdup(sql);
        if (!q->sql)
                return -ENOMEM;
        if (n_params > 0) {
                q->params = new0(char *, n_params);
                if (!q->params)
                        return -ENOMEM;
                for (unsigned i = 0; i < n_params; i++, q->n_params++)
                        if (params[i]) {
                                q->params[i] = strdup(params[i]);
                                if (!q->params[i])
                                        return -ENOMEM;
                        }
        }
        r = sd_event_add_time_relative(
                c->event,
                &q->timer,
                CLOCK_MONOTONIC,
                q->timeout,
                PGCONN_DEADLINE_ACCURACY,
                on_query_timer,
                q);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(q->timer, "pg-query-deadline");

        if (c->state == PGCONN_DISCONNECTED || c->state == PGCONN_IDLE) {
                r = conn_kick(c);
                if (r < 0)
                        return r;
        }
        q->generation = c->generation;
        queue_append(c, q);
        if (ret_query)
                *ret_query = q;
        TAKE_PTR(q);
        return 0;
}

/* pgconn_query_cancel - guarantees q's callback will not run. A queued query is dropped; an in-flight
 * one keeps running on the server (libpq 15 cannot cancel without blocking) and its result is
 * discarded. q must not be used afterwards. Accepts NULL. */
void pgconn_query_cancel(PgQuery *q) {
        PgConn *c;

        if (!q)
                return;
        c = q->conn;
        if (c->in_flight == q) {
                q->callback = NULL;
                q->userdata = NULL;
                return;
        }
        queue_unlink(c, q);
        query_free(q);
}

/* pgconn_connect_now - starts connecting on the next loop iteration, cutting a pending back-off short.
 * Does nothing when connecting or connected. */
int pgconn_connect_now(PgConn *c) {
        if (!c || c->dead)
                return -EINVAL;
        if (c->state == PGCONN_BACKOFF) {
                c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
                c->state = PGCONN_DISCONNECTED;
        }
        if (c->state != PGCONN_DISCONNECTED)
                return 0;
        c->connect_requested = true;
        return conn_kick(c);
}

/* pgconn_disconnect - closes the connection (queries fail with -ECONNRESET) without back-off; the next
 * query reconnects. */
void pgconn_disconnect(PgConn *c) {
        if (!c || c->dead || c->state == PGCONN_DISCONNECTED)
                return;
        if (c->state != PGCONN_BACKOFF)
                conn_teardown(c, -ECONNRESET, -ECONNRESET, "disconnected on request");
        if (c->dead)
                return;
        c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
        c->backoff = 0;
        c->state = PGCONN_DISCONNECTED;
}

PgConnState pgconn_get_state(const PgConn *c) {
        return c ? c->state : _PGCONN_STATE_INVALID;
}

/* pgconn_last_error - libpq's text for the last failure (no trailing newline), NULL if none yet. */
const char *pgconn_last_error(const PgConn *c) {
        return c ? c->last_error : NULL;
}

/* pgconn_connected_since - monotonic time the current connection was established, 0 if not connected. */
usec_t pgconn_connected_since(const PgConn *c) {
        return c ? c->connected_since : 0;
}

unsigned pgconn_queue_length(const PgConn *c) {
        return c ? c->n_queued + !!c->in_flight : 0;
}

/* pgconn_server_version - PQserverVersion() of the last successful connection (e.g. 150020), 0 before. */
int pgconn_server_version(const PgConn *c) {
        return c ? c->server_version : 0;
}

/* ==== Name resolution ==== */

/* getaddrinfo_a() runs the lookup on a glibc helper thread. Completion is polled with gai_error() from
 * a timer (1 ms doubling to 50 ms) instead of a signal or a notification thread: no process-wide signal
 * to own, and no foreign thread writing to descriptors that may already be closed. A request that is
 * cancelled while glibc still works on it cannot be freed (glibc holds the gaicb); it moves to the
 * orphan list and is reaped once glibc lets go. */

#define PG_RESOLVE_POLL_MIN (1 * USEC_PER_MSEC)
#define PG_RESOLVE_POLL_MAX (50 * USEC_PER_MSEC)

struct PgResolve {
        sd_event *event;
        char *name;
        struct addrinfo hints;
        struct gaicb gai; /* glibc keeps a pointer to it while the lookup runs */
        bool started;     /* getaddrinfo_a() accepted the request */
        char address[INET6_ADDRSTRLEN];
        usec_t poll_interval;
        sd_event_source *poll;
        sd_event_source *deadline;
        PgResolveFunc callback;
        void *userdata;
        PgResolve *orphan_next;
};

static PgResolve *resolve_orphans = NULL;

static void resolve_free_now(PgResolve *r) {
        sd_event_source_disable_unref(r->poll);
        sd_event_source_disable_unref(r->deadline);
        if (r->gai.ar_result)
                freeaddrinfo(r->gai.ar_result);
        sd_event_unref(r->event);
        free(r->name);
        free(r);
}

static void resolve_reap_orphans(void) {
        for (PgResolve **p = &resolve_orphans; *p;) {
                PgResolve *r = *p;

                if (gai_error(&r->gai) == EAI_INPROGRESS) {
                        p = &r->orphan_next;
                        continue;
                }
                *p = r->orphan_next;
                resolve_free_now(r);
        }
}

/* Stops r and frees it, or parks it as an orphan when glibc still owns the request. */
static void resolve_release(PgResolve *r) {
        r->poll = sd_event_source_disable_unref(r->poll);
        r->deadline = sd_event_source_disable_unref(r->deadline);
        r->callback = NULL;
        if (r->started && gai_error(&r->gai) == EAI_INPROGRESS && gai_cancel(&r->gai) == EAI_NOTCANCELED) {
                r->orphan_next = resolve_orphans;
                resolve_orphans = r;
                return;
        }
        resolve_free_now(r);
}

static void resolve_complete(PgResolve *r, int error) {
        PgResolveFunc cb = r->callback;

        r->poll = sd_event_source_disable_unref(r->poll);
        r->deadline = sd_event_source_disable_unref(r->deadline);
        if (cb)
                cb(r, error, error < 0 ? NULL : r->address, r->userdata);
        resolve_release(r);
}

static int gai_error_to_errno(int e) {
        switch (e) {
        case EAI_NONAME:
        case EAI_NODATA:
        case EAI_ADDRFAMILY:
                return -ENOENT;
        case EAI_MEMORY:
                return -ENOMEM;
        default: /* EAI_AGAIN, EAI_FAIL, EAI_SYSTEM, ...: the resolver is unwell, not the name */
                return -EHOSTUNREACH;
        }
}

static int resolve_take_result(PgResolve *r) {
        for (const struct addrinfo *ai = r->gai.ar_result; ai; ai = ai->ai_next) {
                const void *a;

                if (ai->ai_family == AF_INET)
                        a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
                else if (ai->ai_family == AF_INET6)
                        a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
                else
                        continue;
                if (inet_ntop(ai->ai_family, a, r->address, sizeof(r->address)))
                        return 0;
        }
        return -ENOENT;
}

static int on_resolve_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        PgResolve *r = userdata;
        int e;

        resolve_reap_orphans();
        if (!r->started) { /* numeric input, nothing was looked up */
                resolve_complete(r, 0);
                return 0;
        }
        e = gai_error(&r->gai);
        if (e == EAI_INPROGRESS) {
                r->poll_interval = MIN(r->poll_interval * 2, PG_RESOLVE_POLL_MAX);
                if (sd_event_source_set_time_relative(s, r->poll_interval) >= 0 &&
                    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) >= 0)
                        return 0;
                resolve_complete(r, -EIO);
                return 0;
        }
        resolve_complete(r, e == 0 ? resolve_take_result(r) : gai_error_to_errno(e));
        return 0;
}

static int on_resolve_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        resolve_complete(userdata, -ETIMEDOUT);
        return 0;
}

/* pg_resolve - looks name up without blocking (see pgconn.h). timeout 0 means 5 s. *ret (optional) is a
 * handle for pg_resolve_cancel(), valid until the callback starts. Non-logging. */
int pg_resolve(
        sd_event *e,
        const char *name,
        usec_t timeout,
        PgResolveFunc callback,
        void *userdata,
        PgResolve **ret) {
        struct sigevent sev = {.sigev_notify = SIGEV_NONE};
        struct gaicb *list[1];
        unsigned char buf[sizeof(struct in6_addr)];
        PgResolve *r;
        int q;

        if (!e || isempty(name) || !callback)
                return -EINVAL;
        resolve_reap_orphans();

        r = new0(PgResolve, 1);
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        r->callback = callback;
        r->userdata = userdata;
        r->poll_interval = PG_RESOLVE_POLL_MIN;
        r->name = strdup(name);
        if (!r->name) {
                resolve_free_now(r);
                return -ENOMEM;
        }

        if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1) {
                /* already numeric: report it (normalised) from the loop, no lookup */
                int family = inet_pton(AF_INET, name, buf) == 1 ? AF_INET : AF_INET6;

                (void)inet_ntop(family, buf, r->address, sizeof(r->address));
                r->gai.ar_result = NULL;
                q = sd_event_add_time_relative(e, &r->poll, CLOCK_MONOTONIC, 0, 0, on_resolve_poll, r);
        } else {
                r->hints.ai_family = AF_UNSPEC;
                r->hints.ai_socktype = SOCK_STREAM;
                /* no AI_ADDRCONFIG: it hides IPv4 answers on hosts whose only IPv4 address is loopback */
                r->gai.ar_name = r->name;
                r->gai.ar_request = &r->hints;
                list[0] = &r->gai;
                q = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
                if (q != 0) {
                        resolve_free_now(r);
                        return gai_error_to_errno(q);
                }
                r->started = true;
                q = sd_event_add_time_relative(
                        e, &r->poll, CLOCK_MONOTONIC, r->poll_interval, 0, on_resolve_poll, r);
        }
        if (q >= 0)
                q = sd_event_add_time_relative(
                        e,
                        &r->deadline,
                        CLOCK_MONOTONIC,
                        timeout ?: 5 * USEC_PER_SEC,
                        PGCONN_DEADLINE_ACCURACY,
                        on_resolve_deadline,
                        r);
        if (q < 0) {
                resolve_release(r);
                return q;
        }
        (void)sd_event_source_set_description(r->poll, "pg-resolve-poll");
        (void)sd_event_source_set_description(r->deadline, "pg-resolve-deadline");
        if (ret)
                *ret = r;
        return 0;
}

/* pg_resolve_cancel - guarantees r's callback will not run and releases it. Accepts NULL, returns NULL. */
PgResolve *pg_resolve_cancel(PgResolve *r) {
        if (r)
                resolve_release(r);
        return NULL;
}

/* ==== Pure helpers ==== */

/* pg_lsn_from_string - parses PostgreSQL's LSN text "16/B374D848" (two hex numbers of up to 8 digits)
 * into a 64-bit position. -EINVAL on anything else. */
int pg_lsn_from_string(const char *s, uint64_t *ret) {
        uint64_t parts[2] = {};
        const char *p = s;

        if (!s || !ret)
                return -EINVAL;
        for (unsigned i = 0; i < 2; i++) {
                unsigned digits = 0;

                for (;; p++, digits++) {
                        int v;

                        if (*p >= '0' && *p <= '9')
                                v = *p - '0';
                        else if (*p >= 'a' && *p <= 'f')
                                v = *p - 'a' + 10;
                        else if (*p >= 'A' && *p <= 'F')
                                v = *p - 'A' + 10;
                        else
                                break;
                        if (digits >= 8)
                                return -EINVAL;
                        parts[i] = parts[i] << 4 | (uint64_t)v;
                }
                if (digits == 0)
                        return -EINVAL;
                if (i == 0) {
                        if (*p != '/')
                                return -EINVAL;
                        p++;
                }
        }
        if (*p != '\0')
                return -EINVAL;
        *ret = parts[0] << 32 | parts[1];
        return 0;
}

/* pg_lsn_to_string - formats lsn as PostgreSQL does ("16/B374D848"); returns snprintf's result. */
int pg_lsn_to_string(uint64_t lsn, char *buf, size_t size) {
        return snprintf(buf, size, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xFFFFFFFFU));
}

static int result_cell(const PGresult *res, int row, int col, const char **ret) {
        if (!res || row < 0 || col < 0 || row >= PQntuples(res) || col >= PQnfields(res))
                return -ERANGE;
        if (PQgetisnull(res, row, col))
                return -ENXIO;
        *ret = PQgetvalue(res, row, col);
        return 0;
}

/* pgresult_get_bool - a boolean cell ("t"/"f" in text format). */
int pgresult_get_bool(const PGresult *res, int row, int col, bool *ret) {
        const char *v;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        if (streq(v, "t") || streq(v, "true"))
                *ret = true;
        else if (streq(v, "f") || streq(v, "false"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* pgresult_get_int64 - a signed decimal integer cell. */
int pgresult_get_int64(const PGresult *res, int row, int col, int64_t *ret) {
        const char *v;
        char *end;
        long long x;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        errno = 0;
        x = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0')
                return -EINVAL;
        *ret = x;
        return 0;
}

/* pgresult_get_uint64 - a non-negative decimal integer cell (e.g. a system identifier). */
int pgresult_get_uint64(const PGresult *res, int row, int col, uint64_t *ret) {
        const char *v;
        char *end;
        unsigned long long x;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        if (v[0] < '0' || v[0] > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = x;
        return 0;
}

/* pgresult_get_lsn - a pg_lsn cell. */
int pgresult_get_lsn(const PGresult *res, int row, int col, uint64_t *ret) {
        const char *v;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        return pg_lsn_from_string(v, ret);
}

/* pgresult_get_double - a floating point cell (e.g. epoch seconds). */
int pgresult_get_double(const PGresult *res, int row, int col, double *ret) {
        const char *v;
        char *end;
        double x;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        errno = 0;
        x = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0')
                return -EINVAL;
        *ret = x;
        return 0;
}

/* pgresult_get_string - a copy of a text cell; the caller frees it. */
int pgresult_get_string(const PGresult *res, int row, int col, char **ret) {
        const char *v;
        char *s;
        int r = result_cell(res, row, col, &v);

        if (r < 0)
                return r;
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
