/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-pgmon: drives pgmon and pgconn on a real sd-event loop against a real PostgreSQL, for the
 * integration tests. Prints one JSON object per line on stdout.
 *
 *   pgha-test-pgmon probe --data-dir D --host SOCKDIR --port P [--user U] [--count N] [--interval-ms MS]
 *       runs N probes (default 1) and prints each PgStatus (plus "now", monotonic usec).
 *   pgha-test-pgmon stall --host SOCKDIR --port P [--user U] [--timeout-ms MS] [--tick-ms MS]
 *       connects, prints {"event":"ready","backend_pid":N}, waits for a line on stdin (the test freezes
 *       PostgreSQL meanwhile), then runs a query that must end at its deadline, then a reconnect that
 *       must end at the connect deadline, while a tick timer on the same loop measures its lateness.
 *   pgha-test-pgmon queries --host SOCKDIR --port P [--user U]
 *       a scripted sequence of pgconn queries (see run_queries()), one JSON line per step.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "pgha/log.h"
#include "pgha/pgmon.h"

static const char *arg_data_dir = NULL;
static const char *arg_host = NULL;
static const char *arg_user = NULL;
static const char *arg_dbname = NULL;
static unsigned arg_port = 0;
static unsigned arg_count = 1;
static usec_t arg_interval = 100 * USEC_PER_MSEC;
static usec_t arg_timeout = 1 * USEC_PER_SEC;
static usec_t arg_tick = 10 * USEC_PER_MSEC;

static usec_t now_usec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

static void print_json(cJSON *j) {
        char *s = cJSON_PrintUnformatted(j);

        if (s) {
                printf("%s\n", s);
                fflush(stdout);
                free(s);
        }
}

static PgConnParams conn_params(void) {
        return (PgConnParams){
                .host = arg_host,
                .port = arg_port,
                .user = arg_user,
                .dbname = arg_dbname,
                .connect_timeout = arg_timeout,
                .statement_timeout = 30 * USEC_PER_SEC, /* stall mode: our deadline must be what fires */
                .backoff_min = 50 * USEC_PER_MSEC,
                .backoff_max = 200 * USEC_PER_MSEC,
        };
}

/* ==== probe ==== */

static void on_probe(PgMon *m, const PgStatus *status, void *userdata) {
        cJSON *j = NULL;

        if (pgstatus_to_json(status, &j) < 0) {
                fprintf(stderr, "pgstatus_to_json failed\n");
                exit(EXIT_FAILURE);
        }
        cJSON_AddNumberToObject(j, "now", (double)now_usec());
        print_json(j);
        cJSON_Delete(j);
        if (pgmon_probes_done(m) >= arg_count)
                (void)sd_event_exit(userdata, 0);
}

static int run_probe(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgmon_freep) PgMon *m = NULL;
        PgMonConfig cfg = {
                .data_dir = arg_data_dir,
                .conn = conn_params(),
                .interval = arg_interval,
                .query_timeout = arg_timeout,
        };
        int r;

        cfg.conn.statement_timeout = arg_timeout;
        if (!arg_data_dir || !arg_host) {
                fprintf(stderr, "probe needs --data-dir and --host\n");
                return EXIT_FAILURE;
        }
        r = sd_event_default(&e);
        if (r < 0)
                return EXIT_FAILURE;
        r = pgmon_new(e, &cfg, on_probe, e, &m);
        if (r < 0) {
                log_error_errno(r, "pgmon_new failed: %m");
                return EXIT_FAILURE;
        }
        r = pgmon_start(m);
        if (r < 0)
                return EXIT_FAILURE;
        r = sd_event_loop(e);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ==== stall ==== */

typedef struct Stall {
        sd_event *event;
        PgConn *conn;
        sd_event_source *tick;
        usec_t tick_due;
        usec_t max_lateness;
        unsigned ticks;
        int backend_pid;
        int step; /* 0: waiting for backend pid, 1: query under freeze, 2: reconnect under freeze */
        usec_t started;
        cJSON *report;
} Stall;

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Stall *st = userdata;
        usec_t now = now_usec();

        if (now > st->tick_due)
                st->max_lateness = MAX(st->max_lateness, now - st->tick_due);
        st->ticks++;
        st->tick_due = now + arg_tick;
        (void)sd_event_source_set_time(s, st->tick_due);
        (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void on_stall_result(PgConn *c, const PGresult *res, int error, const char *message, void *userdata);

static void stall_query(Stall *st, const char *sql, usec_t timeout) {
        int r;

        st->started = now_usec();
        r = pgconn_query(st->conn, sql, 0, NULL, timeout, on_stall_result, st, NULL);
        if (r < 0) {
                fprintf(stderr, "pgconn_query failed: %s\n", strerror(-r));
                exit(EXIT_FAILURE);
        }
}

static void on_stall_result(PgConn *c, const PGresult *res, int error, const char *message, void *userdata) {
        Stall *st = userdata;
        usec_t elapsed = now_usec() - st->started;
        cJSON *step;
        char line[64];

        if (st->step == 0) {
                if (error < 0) {
                        fprintf(stderr, "initial query failed: %s\n", strna(message));
                        exit(EXIT_FAILURE);
                }
                st->backend_pid = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
                printf("{\"event\":\"ready\",\"backend_pid\":%d}\n", st->backend_pid);
                fflush(stdout);
                if (!fgets(line, sizeof(line), stdin)) {
                        fprintf(stderr, "stdin closed before go\n");
                        exit(EXIT_FAILURE);
                }
                /* start measuring only now: the wait on stdin above was a deliberate block */
                st->tick_due = now_usec() + arg_tick;
                (void)sd_event_source_set_time(st->tick, st->tick_due);
                (void)sd_event_source_set_enabled(st->tick, SD_EVENT_ONESHOT);
                st->max_lateness = 0;
                st->ticks = 0;
                st->step = 1;
                stall_query(st, "SELECT 1", arg_timeout);
                return;
        }

        step = cJSON_CreateObject();
        cJSON_AddNumberToObject(step, "error", error);
        cJSON_AddStringToObject(
                step,
                "error_name",
                error == -ETIMEDOUT  ? "ETIMEDOUT"
                        : error == 0 ? "OK"
                                     : "OTHER");
        cJSON_AddStringToObject(step, "message", strempty(message));
        cJSON_AddNumberToObject(step, "elapsed_ms", (double)elapsed / 1000.0);
        cJSON_AddStringToObject(step, "state_after", pgconn_state_to_string(pgconn_get_state(c)));
        cJSON_AddItemToObject(st->report, st->step == 1 ? "query" : "reconnect", step);

        if (st->step == 1) {
                /* second: a fresh connection attempt against the frozen postmaster */
                st->step = 2;
                (void)pgconn_connect_now(c);
                /* a longer query deadline so that the connect deadline (arg_timeout) is what fires */
                stall_query(st, "SELECT 2", 3 * arg_timeout);
                return;
        }
        cJSON_AddNumberToObject(st->report, "ticks", st->ticks);
        cJSON_AddNumberToObject(st->report, "tick_ms", (double)arg_tick / 1000.0);
        cJSON_AddNumberToObject(st->report, "max_lateness_ms", (double)st->max_lateness / 1000.0);
        print_json(st->report);
        (void)sd_event_exit(st->event, 0);
}

static int run_stall(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *tick = NULL;
        PgConnParams params = conn_params();
        Stall st = {};
        int r;

        if (!arg_host) {
                fprintf(stderr, "stall needs --host\n");
                return EXIT_FAILURE;
        }
        r = sd_event_default(&e);
        if (r < 0)
                return EXIT_FAILURE;
        r = pgconn_new(e, &params, &c);
        if (r < 0)
                return EXIT_FAILURE;
        /* accuracy 1 us: sd-event must not coalesce the tick, or lateness would be meaningless */
        r = sd_event_add_time(e, &tick, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_tick, &st);
        if (r < 0)
                return EXIT_FAILURE;
        (void)sd_event_source_set_enabled(tick, SD_EVENT_OFF);
        st.event = e;
        st.conn = c;
        st.tick = tick;
        st.report = cJSON_CreateObject();
        cJSON_AddStringToObject(st.report, "event", "result");
        cJSON_AddNumberToObject(st.report, "timeout_ms", (double)arg_timeout / 1000.0);
        r = pgconn_query(
                c,
                "SELECT pg_catalog.pg_backend_pid()",
                0,
                NULL,
                10 * USEC_PER_SEC,
                on_stall_result,
                &st,
                NULL);
        if (r < 0)
                return EXIT_FAILURE;
        r = sd_event_loop(e);
        cJSON_Delete(st.report);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ==== queries ==== */

/* A scripted sequence over one connection, each step printed as JSON: parameters, a server error that
 * leaves the connection usable, a server-side statement_timeout, a pipelined queue, a large result, a
 * large parameter (PQflush() returning 1), and the backend killed from a second connection while idle. */
typedef struct Queries {
        sd_event *event;
        PgConn *conn, *killer;
        sd_event_source *wait;
        unsigned step;
        unsigned pending; /* replies outstanding in the pipelined step */
        char *big;
        int backend_pid;
        usec_t started;
} Queries;

static void queries_next(Queries *q);

static void
queries_report(Queries *q, const char *name, const PGresult *res, int error, const char *message) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "step", name);
        cJSON_AddNumberToObject(j, "error", error);
        cJSON_AddStringToObject(j, "message", strempty(message));
        if (res && error == 0 && PQntuples(res) > 0 && PQnfields(res) > 0) {
                const char *v = PQgetvalue(res, 0, 0);

                /* long values are reported by length only */
                if (strlen(v) > 64)
                        cJSON_AddNumberToObject(j, "value_length", (double)strlen(v));
                else
                        cJSON_AddStringToObject(j, "value", v);
        }
        cJSON_AddNumberToObject(j, "elapsed_ms", (double)(now_usec() - q->started) / 1000.0);
        cJSON_AddStringToObject(j, "state_after", pgconn_state_to_string(pgconn_get_state(q->conn)));
        print_json(j);
        cJSON_Delete(j);
}

static const char *const queries_names[] = {
        "param",
        "server_error",
        "after_error",
        "statement_timeout",
        "pipelined",
        "large_result",
        "large_param",
        "backend_pid",
        "kill_backend",
        "killed_idle",
        "during_backoff",
        "reconnected",
};

static void
on_queries_result(PgConn *c, const PGresult *res, int error, const char *message, void *userdata) {
        Queries *q = userdata;

        if (q->step == 4) { /* pipelined: three replies, in order */
                char name[32];

                (void)snprintf(name, sizeof(name), "pipelined_%u", 3 - q->pending);
                queries_report(q, name, res, error, message);
                if (--q->pending > 0)
                        return;
        } else if (q->step == 7) {
                q->backend_pid = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
                queries_report(q, queries_names[q->step], res, error, message);
        } else
                queries_report(q, queries_names[q->step], res, error, message);
        q->step++;
        queries_next(q);
}

static int on_queries_wait(sd_event_source *s, uint64_t usec, void *userdata) {
        Queries *q = userdata;

        q->wait = sd_event_source_disable_unref(q->wait);
        queries_next(q);
        return 0;
}

static void queries_send(Queries *q, PgConn *c, const char *sql, unsigned n, const char *const *params) {
        int r = pgconn_query(c, sql, n, params, 10 * USEC_PER_SEC, on_queries_result, q, NULL);

        if (r < 0) {
                /* a synchronous refusal is a step result too */
                queries_report(q, queries_names[q->step], NULL, r, "refused synchronously");
                q->step++;
                (void)sd_event_add_time_relative(
                        q->event, &q->wait, CLOCK_MONOTONIC, 0, 0, on_queries_wait, q);
        }
}

static void queries_next(Queries *q) {
        char pid[16];
        const char *params[1];

        q->started = now_usec();
        switch (q->step) {
        case 0:
                params[0] = "41";
                queries_send(q, q->conn, "SELECT $1::int + 1", 1, params);
                return;
        case 1:
                queries_send(q, q->conn, "SELECT 1/0", 0, NULL);
                return;
        case 2:
                queries_send(q, q->conn, "SELECT 'still usable'", 0, NULL);
                return;
        case 3: /* statement_timeout is 300 ms on this connection; our deadline is 10 s */
                queries_send(q, q->conn, "SELECT pg_catalog.pg_sleep(5)", 0, NULL);
                return;
        case 4:
                q->pending = 3;
                for (unsigned i = 1; i <= 3; i++) {
                        char sql[32];

                        (void)snprintf(sql, sizeof(sql), "SELECT %u", i);
                        if (pgconn_query(
                                    q->conn, sql, 0, NULL, 10 * USEC_PER_SEC, on_queries_result, q, NULL) <
                            0)
                                exit(EXIT_FAILURE);
                }
                return;
        case 5:
                queries_send(q, q->conn, "SELECT pg_catalog.repeat('x', 4000000)", 0, NULL);
                return;
        case 6:
                params[0] = q->big;
                queries_send(q, q->conn, "SELECT pg_catalog.length($1)", 1, params);
                return;
        case 7:
                queries_send(q, q->conn, "SELECT pg_catalog.pg_backend_pid()", 0, NULL);
                return;
        case 8:
                (void)snprintf(pid, sizeof(pid), "%d", q->backend_pid);
                params[0] = pid;
                queries_send(
                        q, q->killer, "SELECT pg_catalog.pg_terminate_backend($1::int, 5000)", 1, params);
                return;
        case 9: /* the idle connection must notice the server closed it */
                if (pgconn_get_state(q->conn) == PGCONN_IDLE) {
                        if (now_usec() - q->started > 5 * USEC_PER_SEC) {
                                queries_report(q, "killed_idle", NULL, -ETIMEDOUT, "still idle");
                                (void)sd_event_exit(q->event, 1);
                                return;
                        }
                        (void)sd_event_add_time_relative(
                                q->event,
                                &q->wait,
                                CLOCK_MONOTONIC,
                                10 * USEC_PER_MSEC,
                                0,
                                on_queries_wait,
                                q);
                        q->step = 9;
                        return;
                }
                queries_report(q, "killed_idle", NULL, 0, pgconn_last_error(q->conn));
                q->step = 10;
                queries_send(q, q->conn, "SELECT 'too early'", 0, NULL);
                return;
        case 11:
                /* after the back-off a new query reconnects */
                if (pgconn_get_state(q->conn) == PGCONN_BACKOFF) {
                        (void)sd_event_add_time_relative(
                                q->event,
                                &q->wait,
                                CLOCK_MONOTONIC,
                                50 * USEC_PER_MSEC,
                                0,
                                on_queries_wait,
                                q);
                        return;
                }
                queries_send(q, q->conn, "SELECT 'reconnected'", 0, NULL);
                return;
        default:
                (void)sd_event_exit(q->event, 0);
                return;
        }
}

static int run_queries(void) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pgconn_freep) PgConn *c = NULL, *killer = NULL;
        PgConnParams params = conn_params();
        Queries q = {};
        size_t big = 4 * 1024 * 1024;
        int r;

        if (!arg_host) {
                fprintf(stderr, "queries needs --host\n");
                return EXIT_FAILURE;
        }
        r = sd_event_default(&e);
        if (r < 0)
                return EXIT_FAILURE;
        params.statement_timeout = 300 * USEC_PER_MSEC;
        params.backoff_min = params.backoff_max = 1 * USEC_PER_SEC; /* long enough to observe */
        params.description = "pg-test";
        if (pgconn_new(e, &params, &c) < 0)
                return EXIT_FAILURE;
        params = conn_params();
        params.description = "pg-killer";
        if (pgconn_new(e, &params, &killer) < 0)
                return EXIT_FAILURE;
        q.big = malloc(big + 1);
        if (!q.big)
                return EXIT_FAILURE;
        memset(q.big, 'y', big);
        q.big[big] = '\0';
        q.event = e;
        q.conn = c;
        q.killer = killer;
        queries_next(&q);
        r = sd_event_loop(e);
        q.wait = sd_event_source_disable_unref(q.wait);
        free(q.big);
        return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int parse_ms(const char *s, usec_t *ret) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);

        if (end == s || *end)
                return -EINVAL;
        *ret = (usec_t)v * USEC_PER_MSEC;
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                {"data-dir", required_argument, NULL, 'D'},
                {"host", required_argument, NULL, 'h'},
                {"port", required_argument, NULL, 'p'},
                {"user", required_argument, NULL, 'U'},
                {"dbname", required_argument, NULL, 'd'},
                {"count", required_argument, NULL, 'n'},
                {"interval-ms", required_argument, NULL, 'i'},
                {"timeout-ms", required_argument, NULL, 't'},
                {"tick-ms", required_argument, NULL, 'k'},
                {"debug", no_argument, NULL, 'v'},
                {},
        };
        const char *mode;
        int c;

        log_set_force_stderr(true);
        log_set_max_level(LOG_WARNING);
        if (argc < 2) {
                fprintf(stderr, "usage: %s probe|stall [options]\n", argv[0]);
                return EXIT_FAILURE;
        }
        mode = argv[1];
        optind = 2;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'D':
                        arg_data_dir = optarg;
                        break;
                case 'h':
                        arg_host = optarg;
                        break;
                case 'p':
                        arg_port = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'U':
                        arg_user = optarg;
                        break;
                case 'd':
                        arg_dbname = optarg;
                        break;
                case 'n':
                        arg_count = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'i':
                        if (parse_ms(optarg, &arg_interval) < 0)
                                return EXIT_FAILURE;
                        break;
                case 't':
                        if (parse_ms(optarg, &arg_timeout) < 0)
                                return EXIT_FAILURE;
                        break;
                case 'k':
                        if (parse_ms(optarg, &arg_tick) < 0)
                                return EXIT_FAILURE;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (streq(mode, "probe"))
                return run_probe();
        if (streq(mode, "stall"))
                return run_stall();
        if (streq(mode, "queries"))
                return run_queries();
        fprintf(stderr, "unknown mode \"%s\"\n", mode);
        return EXIT_FAILURE;
}
