/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL control as asynchronous jobs on the event loop (patroni-compat.md §6.2-§6.9): initdb and
 * bootstrap, start, stop, restart, reload, promote, base backup / custom replica methods, pg_rewind and
 * single-user crash recovery. Each job runs child processes through proc, has a deadline and reports
 * once through its completion handler. Vocabulary after pg_auto_failover's pgctl.c, but each call
 * returns a job instead of a finished result.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "pgha/macro.h"
#include "pgha/pgconf.h"

typedef struct PgCtlJob PgCtlJob;

typedef enum PgStopMode {
        PG_STOP_SMART,     /* SIGTERM: wait for clients to disconnect */
        PG_STOP_FAST,      /* SIGINT: abort transactions, shutdown checkpoint */
        PG_STOP_IMMEDIATE, /* SIGQUIT: no checkpoint, crash recovery at next start */
        _PG_STOP_MODE_MAX,
        _PG_STOP_MODE_INVALID = -EINVAL,
} PgStopMode;

const char *pg_stop_mode_to_string(PgStopMode m);
PgStopMode pg_stop_mode_from_string(const char *s);

/* Completion: r is 0 on success or a negative errno; error is a one-line description of the cause
 * (already logged at error level), NULL on success. The job may be freed from inside the handler. */
typedef void (*pgctl_handler_t)(PgCtlJob *job, int r, const char *error, void *userdata);

/* Every job borrows the PgSettings: they must stay valid and unchanged until the job completes or is
 * freed. Each constructor returns 0 and the job in *ret (owned by the caller), or a negative errno
 * without calling the handler. pgctl_job_free() cancels: child processes are killed, the handler does
 * not run. Cancelling never removes a data directory. */

/* pgctl_initdb() - runs initdb with bootstrap.initdb options, --username and --pwfile (superuser). */
int pgctl_initdb(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_bootstrap() - initdb, append bootstrap.pg_hba, write postgresql.conf, start as primary, then
 * create/alter the superuser, replication, rewind and bootstrap.users roles. */
int pgctl_bootstrap(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_start() - checks the data directory and binaries, writes the managed files (recovery != NULL:
 * as a replica with that recovery section, see pgconf_recovery_params()), starts the postmaster detached
 * and waits (pg_ctl_timeout) until pg_isready reports it accepting connections. If a postmaster already
 * runs on data_dir, its files are left alone and the job only waits until it accepts connections. */
int pgctl_start(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_stop() - optionally CHECKPOINT first (fast/smart only; speeds up the shutdown checkpoint, as
 * Patroni does; a failure is logged and ignored), then signals the postmaster (smart=SIGTERM,
 * fast=SIGINT, immediate=SIGQUIT) and waits for it to exit; after pg_ctl_timeout escalates to SIGQUIT,
 * then SIGKILL of its process group. Succeeds at once if nothing runs (pgctl_job_signalled() is then
 * false). */
int pgctl_stop(
        sd_event *e,
        const PgSettings *s,
        PgStopMode mode,
        bool checkpoint,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_checkpoint() - CHECKPOINT on the local server as the superuser (e.g. right after promotion, so
 * pg_control shows the new timeline before others pg_rewind from us). */
int pgctl_checkpoint(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_restart() - CHECKPOINT, fast stop, then start with recovery (NULL = primary). */
int pgctl_restart(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_reload() - rewrites the managed files (recovery as for pgctl_start) and runs pg_ctl reload. */
int pgctl_reload(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_promote() - runs pre_promote (non-zero exit cancels), removes the recovery section from
 * postgresql.conf, pg_ctl promote -W, then polls pg_controldata until "in production". */
int pgctl_promote(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_create_replica() - tries the create_replica_methods in order (default basebackup) against the
 * source host:port (host NULL: no leader, only methods with no_leader). basebackup = pg_basebackup
 * --pgdata -X stream --dbname=<dsn> [options], 2 attempts 5 s apart. A non-empty data directory is
 * removed first only when wipe is true (reinitialise); otherwise it is an error, except for methods
 * with keep_data. Does not start PostgreSQL. */
int pgctl_create_replica(
        sd_event *e,
        const PgSettings *s,
        const char *host,
        unsigned port,
        bool wipe,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_rewind() - requires a stopped postmaster; runs single-user crash recovery first when
 * pg_control is not in a shut-down state; checks data checksums or wal_log_hints; then pg_rewind
 * --source-server with the rewind (or superuser) credentials. Does not start PostgreSQL. */
int pgctl_rewind(
        sd_event *e,
        const PgSettings *s,
        const char *host,
        unsigned port,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);

/* pgctl_crash_recovery() - removes standby.signal/recovery.signal and runs postgres --single to bring
 * pg_control to "shut down" after a crash (Patroni §6.9). */
int pgctl_crash_recovery(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_remove_data_dir() - removes data_dir (only when the caller decided so). */
int pgctl_remove_data_dir(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

/* pgctl_controldata() - runs pg_controldata (LANG=C); on success pgctl_job_output() holds its output
 * for pgctl_controldata_get() (state, timeline, checkpoint locations for the rewind decision). */
int pgctl_controldata(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret);

PgCtlJob *pgctl_job_free(PgCtlJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(PgCtlJob *, pgctl_job_free);

/* pgctl_job_name() - "start", "stop", "promote", ... */
const char *pgctl_job_name(const PgCtlJob *j);

/* pgctl_job_signalled() - for stop/restart: whether a running postmaster was signalled (on_stop). */
bool pgctl_job_signalled(const PgCtlJob *j);

/* pgctl_job_method() - for create_replica: the method that succeeded. */
const char *pgctl_job_method(const PgCtlJob *j);

/* pgctl_job_output() - for controldata: pg_controldata's output (valid until the job is freed). */
const char *pgctl_job_output(const PgCtlJob *j);

/* pgctl_postmaster_pid() - reads <data_dir>/postmaster.pid and checks that the PID is a live process
 * (not a zombie: /proc/<pid>/stat state Z or X counts as dead, since PID 1 may reap late) whose start
 * time is within 3 s of the file's. Returns 1 and the PID when running, 0 when not. Non-logging. */
int pgctl_postmaster_pid(const char *data_dir, pid_t *ret_pid);

/* pgctl_pid_alive() - whether pid exists and is neither a zombie nor dead. */
bool pgctl_pid_alive(pid_t pid);

/* pgctl_controldata_get() - the value of "key:" in pg_controldata output (heap string), NULL if absent. */
char *pgctl_controldata_get(const char *text, const char *key);
