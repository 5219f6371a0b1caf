/* SPDX-License-Identifier: MIT */
/*
 * Jobs that (re)build a data directory from elsewhere (patroni-compat.md §6.5, §6.9): create replica
 * (pg_basebackup or custom methods), single-user crash recovery, pg_rewind, and removing a data
 * directory.
 *
 * Invariant: a non-empty data directory is removed only when the caller asked for it (wipe=true or
 * pgctl_remove_data_dir()); keep_data methods run over it as is.
 */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/pgctl.h"
#include "pgha/proc.h"
#include "pgctl_internal.h"

/* ==== remove data directory ==== */

static int rm_argv(const PgSettings *s, char ***ret) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        if (proc_strv_push(&argv, "rm") < 0 || proc_strv_push(&argv, "-rf") < 0 ||
            proc_strv_push(&argv, "--") < 0 || proc_strv_push(&argv, s->data_dir) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(argv);
        return 0;
}

static void remove_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                return pgctl_job_finish(
                        j,
                        -EBUSY,
                        "refusing to remove data directory '%s' while postgres runs on it",
                        j->settings->data_dir);
        log_warning("Removing data directory '%s'.", j->settings->data_dir);
        JOB_TRY(j, rm_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, pgctl_finish_with_result),
                "could not run rm");
}

/* pgctl_remove_data_dir() - removes data_dir (only when the caller decided so). */
int pgctl_remove_data_dir(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_REMOVE_DATA_DIR, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, remove_first, ret);
}

/* ==== create replica ==== */

static void replica_next_method(PgCtlJob *j);

static const PgReplicaMethod *replica_method(const PgCtlJob *j) {
        static const PgReplicaMethod basebackup = {.name = (char *)"basebackup"};
        const PgSettings *s = j->settings;
        if (s->n_replica_methods == 0)
                return j->method_index == 0 ? &basebackup : NULL;
        return j->method_index < s->n_replica_methods ? &s->replica_methods[j->method_index] : NULL;
}

/* replica_dsn - the clone source's connection string for pg_basebackup or a custom method, with the
 * replication user's libpq keys (TLS and the like), as Patroni's conn_kwargs. */
static char *replica_dsn(const PgCtlJob *j) {
        _cleanup_(pg_params_done) PgParams p = {};
        if (pgconf_conn_params(&j->settings->replication, j->settings->database, j->host, j->port, &p) < 0)
                return NULL;
        return pgconf_format_dsn(&p);
}

static void replica_on_method(PgCtlJob *j, const ProcResult *r) {
        const PgReplicaMethod *m = replica_method(j);
        _cleanup_free_ char *why = NULL;

        if (proc_result_ok(r)) {
                int k;
                j->method = m->name;
                log_info("Replica created with method %s.", m->name);
                k = pgconf_restore_files(j->settings);
                if (k < 0)
                        log_warning_errno(
                                k, "Failed to restore configuration files from backups, ignoring: %m");
                else if (k > 0)
                        log_info("Restored %d configuration file(s) from their .backup copies.", k);
                return pgctl_job_finish(j, 0, NULL);
        }
        why = pgctl_result_reason(r);
        log_error("Replica creation method %s failed (attempt %u): %s", m->name, j->attempt, strna(why));
        if (streq(m->name, "basebackup") && j->attempt < PGCTL_BASEBACKUP_ATTEMPTS) {
                JOB_TRY(j,
                        pgctl_job_after(j, PGCTL_BASEBACKUP_RETRY, replica_next_method),
                        "could not arm timer");
                return;
        }
        j->method_index++;
        j->attempt = 0;
        replica_next_method(j);
}

static void replica_run(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        const PgReplicaMethod *m = replica_method(j);
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *dsn = NULL, *env_pgpass = NULL;
        static const char *const forbidden[] = {
                "pgdata",
                "format",
                "wal-method",
                "xlog-method",
                "gzip",
                "version",
                "compress",
                "dbname",
                "host",
                "port",
                "username",
                "password",
        };
        int r;

        j->attempt++;
        if (j->host) {
                dsn = replica_dsn(j);
                if (!dsn)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j,
                        pgconf_write_pgpass(s, j->host, j->port, &s->replication),
                        "could not write pgpass file");
        }
        if (asprintf(&env_pgpass, "PGPASSFILE=%s", s->pgpass) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        char *env[] = {env_pgpass, NULL};

        if (streq(m->name, "basebackup")) {
                _cleanup_free_ char *bin = pgconf_bin(s, "pg_basebackup");
                if (!bin)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                r = proc_strv_push(&argv, bin);
                if (r >= 0)
                        r = proc_strv_pushf(&argv, "--pgdata=%s", s->data_dir);
                if (r >= 0)
                        r = proc_strv_push(&argv, "-X");
                if (r >= 0)
                        r = proc_strv_push(&argv, "stream");
                if (r >= 0)
                        r = proc_strv_pushf(&argv, "--dbname=%s", dsn);
                for (size_t i = 0; r >= 0 && i < s->basebackup.n; i++) {
                        const PgParam *p = &s->basebackup.items[i];
                        bool bad = false;
                        for (size_t k = 0; k < ELEMENTSOF(forbidden); k++)
                                bad = bad || streq(p->name, forbidden[k]);
                        if (bad) {
                                log_error(
                                        "postgresql.basebackup: option %s is not allowed, skipping it.",
                                        p->name);
                                continue;
                        }
                        r = p->value ? proc_strv_pushf(&argv, "--%s=%s", p->name, p->value)
                                     : proc_strv_pushf(&argv, "--%s", p->name);
                }
                JOB_TRY(j, r, "out of memory");
                log_info(
                        "Creating replica from %s:%u with pg_basebackup (attempt %u).",
                        j->host,
                        j->port,
                        j->attempt);
                JOB_TRY(j,
                        pgctl_job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, replica_on_method),
                        "could not run pg_basebackup");
                return;
        }

        r = proc_split_command(m->command, &argv);
        if (r < 0)
                return pgctl_job_finish(
                        j, r, "postgresql.%s.command: cannot parse '%s'", m->name, m->command);
        /* As Patroni: every key of the method's section as --key=value, then (unless no_params) scope,
         * role, datadir and connstring; with no_params only the four flags are dropped. */
        {
                _cleanup_free_ char *datadir = strdup(s->data_dir), *connstring = strdup(strempty(dsn));
                const char *defaults[][2] = {
                        {"scope", s->scope},
                        {"role", "replica"},
                        {"datadir", datadir},
                        {"connstring", connstring},
                };
                bool used[ELEMENTSOF(defaults)] = {};

                if (!datadir || !connstring)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                for (size_t i = 0; r >= 0 && i < m->params.n; i++) {
                        const char *name = m->params.items[i].name,
                                   *value = strempty(m->params.items[i].value);
                        if (m->no_params &&
                            (streq(name, "no_params") || streq(name, "no_master") ||
                             streq(name, "no_leader") || streq(name, "keep_data")))
                                continue;
                        for (size_t d = 0; !m->no_params && d < ELEMENTSOF(defaults); d++)
                                if (streq(name, defaults[d][0])) {
                                        value = defaults[d][1];
                                        used[d] = true;
                                }
                        r = proc_strv_pushf(&argv, "--%s=%s", name, value);
                }
                for (size_t d = 0; r >= 0 && !m->no_params && d < ELEMENTSOF(defaults); d++)
                        if (!used[d])
                                r = proc_strv_pushf(&argv, "--%s=%s", defaults[d][0], defaults[d][1]);
        }
        JOB_TRY(j, r, "out of memory");
        log_info("Creating replica with method %s.", m->name);
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, replica_on_method),
                "could not run %s",
                m->name);
}

static void replica_on_wiped(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = pgctl_result_reason(r);
                return pgctl_job_finish(
                        j,
                        -EIO,
                        "could not remove data directory '%s': %s",
                        j->settings->data_dir,
                        strna(why));
        }
        replica_run(j);
}

static void replica_next_method(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        const PgReplicaMethod *m;

        for (;;) {
                m = replica_method(j);
                if (!m)
                        return pgctl_job_finish(
                                j,
                                -ENOENT,
                                "all replica creation methods failed or none was usable%s",
                                j->host ? "" : " without a leader");
                if (!j->host && !m->no_leader && j->attempt == 0) {
                        log_info("Replica method %s needs a leader, skipping it.", m->name);
                        j->method_index++;
                        continue;
                }
                break;
        }
        if (!m->keep_data && !pgctl_dir_is_empty(s->data_dir)) {
                _cleanup_(proc_strv_freep) char **argv = NULL;
                if (!j->wipe)
                        return pgctl_job_finish(
                                j,
                                -EEXIST,
                                "data directory '%s' is not empty; refusing to overwrite it without a "
                                "reinitialisation request",
                                s->data_dir);
                log_warning("Removing data directory '%s' before creating the replica.", s->data_dir);
                JOB_TRY(j, rm_argv(s, &argv), "out of memory");
                JOB_TRY(j,
                        pgctl_job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, replica_on_wiped),
                        "could not run rm");
                return;
        }
        replica_run(j);
}

/* replica_first - no check of data_dir's parent: pg_basebackup creates missing parents (as Patroni relies
 * on) and a custom method gets data_dir as it is. */
static void replica_first(PgCtlJob *j) {
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                return pgctl_job_finish(
                        j,
                        -EBUSY,
                        "postgres is running on '%s'; stop it before creating a replica",
                        j->settings->data_dir);
        replica_next_method(j);
}

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
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_CREATE_REPLICA, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0;
        j->wipe = wipe;
        j->port = port;
        if (host && !(j->host = strdup(host))) {
                pgctl_job_free(j);
                return -ENOMEM;
        }
        return pgctl_job_start(j, replica_first, ret);
}

/* ==== crash recovery and rewind ==== */

static void crash_recovery_done(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return pgctl_job_finish(j, 0, NULL);
        why = pgctl_result_reason(r);
        pgctl_job_finish(j, -EIO, "single-user crash recovery failed: %s", strna(why));
}

static int crash_recovery_spawn(PgCtlJob *j, job_proc_fn next) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "postgres"), *conf = pgconf_path(s, "postgresql.conf"),
                            *standby = pgdata_path(s, "standby.signal"),
                            *recovery = pgdata_path(s, "recovery.signal");

        if (!bin || !conf || !standby || !recovery)
                return -ENOMEM;
        (void)unlink(standby);
        (void)unlink(recovery);
        if (proc_strv_push(&argv, bin) < 0 || proc_strv_push(&argv, "--single") < 0 ||
            proc_strv_push(&argv, "-D") < 0 || proc_strv_push(&argv, s->data_dir) < 0 ||
            proc_strv_push(&argv, "-c") < 0 || proc_strv_pushf(&argv, "config_file=%s", conf) < 0 ||
            proc_strv_push(&argv, "-c") < 0 || proc_strv_push(&argv, "archive_mode=on") < 0 ||
            proc_strv_push(&argv, "-c") < 0 || proc_strv_push(&argv, "archive_command=false") < 0 ||
            proc_strv_push(&argv, "template1") < 0)
                return -ENOMEM;
        log_info("Running single-user crash recovery on %s.", s->data_dir);
        return pgctl_job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, next);
}

static void crash_recovery_run(PgCtlJob *j) {
        JOB_TRY(j, crash_recovery_spawn(j, crash_recovery_done), "could not run postgres --single");
}

static void crash_recovery_first(PgCtlJob *j) {
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                return pgctl_job_finish(j, -EBUSY, "postgres is running on '%s'", j->settings->data_dir);
        pgctl_job_wait_stale(j, crash_recovery_run);
}

/* pgctl_crash_recovery() - removes standby.signal/recovery.signal and runs postgres --single to bring
 * pg_control to "shut down" after a crash (Patroni §6.9). */
int pgctl_crash_recovery(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_CRASH_RECOVERY, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, crash_recovery_first, ret);
}

static void rewind_first(PgCtlJob *j);

static void rewind_on_pg_rewind(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return pgctl_job_finish(j, 0, NULL);
        why = pgctl_result_reason(r);
        pgctl_job_finish(j, -EIO, "pg_rewind failed: %s", strna(why));
}

static void rewind_on_crash_recovery(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = pgctl_result_reason(r);
                return pgctl_job_finish(
                        j, -EIO, "single-user crash recovery before pg_rewind failed: %s", strna(why));
        }
        j->crash_recovery_done = true;
        rewind_first(j);
}

static void rewind_crash_recovery_run(PgCtlJob *j) {
        JOB_TRY(j, crash_recovery_spawn(j, rewind_on_crash_recovery), "could not run postgres --single");
}

static usec_t now_plus_timeout(PgCtlJob *j) {
        usec_t now = 0;
        (void)sd_event_now(j->event, CLOCK_MONOTONIC, &now);
        return now + (j->settings->pg_ctl_timeout ?: 60 * USEC_PER_SEC);
}

static void rewind_on_controldata(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *state = NULL, *hints = NULL, *checksums = NULL, *bin = NULL, *dsn = NULL,
                            *env_pgpass = NULL, *why = NULL;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_(pg_params_done) PgParams p = {};
        const PgAuth *auth = s->rewind.username ? &s->rewind : &s->superuser;

        if (!proc_result_ok(r)) {
                why = pgctl_result_reason(r);
                return pgctl_job_finish(j, -EIO, "pg_controldata failed: %s", strna(why));
        }
        state = pgctl_controldata_get(r->out, "Database cluster state");
        hints = pgctl_controldata_get(r->out, "wal_log_hints setting");
        checksums = pgctl_controldata_get(r->out, "Data page checksum version");
        if (!streq_ptr(hints, "on") && streq_ptr(checksums, "0"))
                return pgctl_job_finish(
                        j,
                        -EOPNOTSUPP,
                        "pg_rewind is not possible on '%s': neither data checksums nor wal_log_hints are "
                        "enabled",
                        s->data_dir);
        if (!streq_ptr(state, "shut down") && !streq_ptr(state, "shut down in recovery")) {
                if (j->crash_recovery_done)
                        return pgctl_job_finish(
                                j,
                                -EIO,
                                "pg_control state is still '%s' after crash recovery",
                                strna(state));
                log_info("pg_control state is '%s', running crash recovery before pg_rewind.", strna(state));
                j->deadline = now_plus_timeout(j);
                return pgctl_job_wait_stale(j, rewind_crash_recovery_run);
        }

        /* the rewind user's libpq keys (TLS and the like) win over our read-write default */
        if (pg_params_set(&p, "target_session_attrs", "read-write") < 0 ||
            pgconf_conn_params(auth, s->database, j->host, j->port, &p) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        dsn = pgconf_format_dsn(&p);
        bin = pgconf_bin(s, "pg_rewind");
        if (!dsn || !bin || asprintf(&env_pgpass, "PGPASSFILE=%s", s->pgpass) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, pgconf_write_pgpass(s, j->host, j->port, auth), "could not write pgpass file");
        if (proc_strv_push(&argv, bin) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        /* With a restore_command, pg_rewind fetches WAL missing on the target from the archive; it reads
         * the setting through the configuration file, which it must be told about when elsewhere. */
        if (pg_params_get(&s->recovery_conf, "restore_command") ||
            pg_params_get(&s->parameters, "restore_command")) {
                if (proc_strv_push(&argv, "--restore-target-wal") < 0)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                if (s->config_dir && !streq(s->config_dir, s->data_dir)) {
                        _cleanup_free_ char *conf = pgconf_path(s, "postgresql.conf");
                        if (!conf || proc_strv_pushf(&argv, "--config-file=%s", conf) < 0)
                                return pgctl_job_finish(j, -ENOMEM, "out of memory");
                }
        }
        if (proc_strv_pushf(&argv, "--target-pgdata=%s", s->data_dir) < 0 ||
            proc_strv_pushf(&argv, "--source-server=%s", dsn) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        char *env[] = {
                env_pgpass,
                (char *)"LANG=C",
                (char *)"LC_ALL=C",
                (char *)"PGOPTIONS=-c statement_timeout=0",
                NULL};
        log_info("Running pg_rewind from %s:%u.", j->host, j->port);
        /* r points into the Proc that pgctl_job_spawn frees: nothing below may use it. */
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, rewind_on_pg_rewind),
                "could not run pg_rewind");
}

static void rewind_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *msg = NULL;
        int r;

        if (!j->crash_recovery_done) {
                r = pgctl_check_data_dir(j->settings, &msg);
                if (r >= 0)
                        r = pgctl_check_bin(j->settings, "pg_rewind", &msg);
                if (r < 0)
                        return pgctl_job_finish(j, r, "%s", strna(msg));
                if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                        return pgctl_job_finish(
                                j,
                                -EBUSY,
                                "postgres is running on '%s'; stop it before pg_rewind",
                                j->settings->data_dir);
        }
        JOB_TRY(j, pgctl_controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, rewind_on_controldata),
                "could not run pg_controldata");
}

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
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r;

        if (!host)
                return -EINVAL;
        r = pgctl_job_new(e, s, PGCTL_REWIND, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0;
        j->port = port;
        j->host = strdup(host);
        if (!j->host) {
                pgctl_job_free(j);
                return -ENOMEM;
        }
        return pgctl_job_start(j, rewind_first, ret);
}
