/* SPDX-License-Identifier: MIT */
/*
 * pgconn: one libpq connection driven without blocking by an sd-event loop, with a queue of queries,
 * a deadline per query, and reconnects with exponential back-off plus decorrelated jitter.
 *
 * Only non-blocking libpq entry points are used. Local PostgreSQL is reached over its Unix socket
 * (host = socket directory); remote servers by numeric hostaddr, because any name lookup inside libpq
 * would block the loop. A host name given as host (with no hostaddr) is resolved first with glibc's
 * getaddrinfo_a() (pg_resolve(), polled from a timer) and passed as hostaddr, host kept for TLS checks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <systemd/sd-event.h>

#include "pgha/macro.h"

typedef struct PgConn PgConn;
typedef struct PgQuery PgQuery;

typedef struct PgConnParams {
        const char *host;             /* absolute socket directory; NULL when hostaddr is used */
        const char *hostaddr;         /* numeric IPv4/IPv6 address only (no DNS) */
        unsigned port;                /* 0: libpq default 5432 */
        const char *user;             /* NULL: libpq default */
        const char *password;         /* NULL: none (or .pgpass) */
        const char *dbname;           /* NULL: "postgres" */
        const char *application_name; /* sent as fallback_application_name; NULL: "Patroni" */
        usec_t connect_timeout;       /* deadline of the whole connect phase; 0: 3 s (Patroni's) */
        usec_t statement_timeout;     /* server-side statement_timeout; 0: 2 s (Patroni's) */
        usec_t backoff_min;           /* first reconnect delay; 0: 100 ms */
        usec_t backoff_max;           /* reconnect delay cap; 0: 3 s */
        const char *description;      /* names the event sources and log lines; NULL: "pg" */
        /* NULL, or NULL-terminated key, value, key, value, ...: further libpq keywords of the user (sslmode,
         * sslcert, sslkey, sslrootcert, ..., as Patroni's conn_kwargs adds them). Ours win over them:
         * gssencmode stays disabled (GSSAPI may block) and the connect deadline is our timer. */
        const char *const *libpq;
} PgConnParams;

typedef enum PgConnState {
        PGCONN_DISCONNECTED, /* never connected, or closed; the next query connects */
        PGCONN_BACKOFF,      /* last attempt failed or the link broke; reconnect timer pending */
        PGCONN_CONNECTING,   /* PQconnectPoll() in progress */
        PGCONN_IDLE,         /* connected, nothing in flight */
        PGCONN_BUSY,         /* one query in flight */
        _PGCONN_STATE_MAX,
        _PGCONN_STATE_INVALID = -EINVAL,
} PgConnState;

const char *pgconn_state_to_string(PgConnState s);

/* Called exactly once per query unless the query was cancelled (or the connection freed) first.
 * error is 0 and res a successful result (PGRES_TUPLES_OK or PGRES_COMMAND_OK), or error is negative:
 * -ETIMEDOUT (deadline or statement_timeout), -ECONNRESET (connection lost or torn down while queued),
 * -ECONNREFUSED (could not connect), -ENOENT/-EHOSTUNREACH (host name lookup failed), -EREMOTEIO (the server
 * reported an error; res is that error result and error_message its text). res is owned by pgconn and freed
 * after the call. The callback may queue, cancel or free anything, including the connection. */
typedef void (*PgQueryFunc)(
        PgConn *c, const PGresult *res, int error, const char *error_message, void *userdata);

int pgconn_new(sd_event *e, const PgConnParams *params, PgConn **ret) _warn_unused_result_;
PgConn *pgconn_free(PgConn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(PgConn *, pgconn_free);

int pgconn_query(
        PgConn *c,
        const char *sql,
        unsigned n_params,
        const char *const *params,
        usec_t timeout,
        PgQueryFunc callback,
        void *userdata,
        PgQuery **ret_query) _warn_unused_result_;
void pgconn_query_cancel(PgQuery *q);

int pgconn_connect_now(PgConn *c);
void pgconn_disconnect(PgConn *c);

PgConnState pgconn_get_state(const PgConn *c);
const char *pgconn_last_error(const PgConn *c);
usec_t pgconn_connected_since(const PgConn *c);
unsigned pgconn_queue_length(const PgConn *c);
int pgconn_server_version(const PgConn *c);

/* Asynchronous name resolution with getaddrinfo_a(): the callback gets the first address as numeric
 * text ("127.0.0.1", "::1"), or a negative errno (-ETIMEDOUT, -ENOENT no such name, -EHOSTUNREACH
 * other lookup failures). Numeric input completes without a lookup. Runs from the loop, never inside
 * pg_resolve(); pg_resolve_cancel() guarantees the callback will not run. */
typedef struct PgResolve PgResolve;
typedef void (*PgResolveFunc)(PgResolve *r, int error, const char *address, void *userdata);
int pg_resolve(
        sd_event *e,
        const char *name,
        usec_t timeout,
        PgResolveFunc callback,
        void *userdata,
        PgResolve **ret) _warn_unused_result_;
PgResolve *pg_resolve_cancel(PgResolve *r);

/* Pure helpers (no loop, no logging), for parse callbacks and tests. */
int pg_lsn_from_string(const char *s, uint64_t *ret) _warn_unused_result_;
int pg_lsn_to_string(uint64_t lsn, char *buf, size_t size);
usec_t pgconn_backoff_next(usec_t previous, usec_t min, usec_t max, uint64_t random);

/* Typed getters over a result cell: -ENXIO when the cell is NULL (callers decide what NULL means),
 * -ERANGE when row/column are out of range, -EINVAL when the text does not parse. */
int pgresult_get_bool(const PGresult *res, int row, int col, bool *ret) _warn_unused_result_;
int pgresult_get_int64(const PGresult *res, int row, int col, int64_t *ret) _warn_unused_result_;
int pgresult_get_uint64(const PGresult *res, int row, int col, uint64_t *ret) _warn_unused_result_;
int pgresult_get_lsn(const PGresult *res, int row, int col, uint64_t *ret) _warn_unused_result_;
int pgresult_get_double(const PGresult *res, int row, int col, double *ret) _warn_unused_result_;
int pgresult_get_string(const PGresult *res, int row, int col, char **ret) _warn_unused_result_;
