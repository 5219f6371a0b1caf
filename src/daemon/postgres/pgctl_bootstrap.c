/* SPDX-License-Identifier: MIT */
/*
 * Bootstrap jobs (patroni-compat.md §6.3): initdb, then start, the bootstrap roles and the
 * post_bootstrap script; or a custom bootstrap method (restore, point-in-time recovery with a temporary
 * trust pg_hba.conf, then the same finishing steps).
 *
 * Invariant: a custom bootstrap never leaves its temporary trust pg_hba.conf in place, whether it
 * succeeds, fails or is cancelled (pgctl_job_free() and pgctl_job_finish() put the real one back).
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

static void initdb_done(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return pgctl_job_finish(j, 0, NULL);
        why = pgctl_result_reason(r);
        pgctl_job_finish(j, -EIO, "initdb failed: %s", strna(why));
}

static void initdb_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "initdb"), *msg = NULL, *pw = NULL;
        int r;

        /* A missing parent of data_dir is no error: initdb creates it, as Patroni relies on. */
        r = pgctl_check_bin(s, "initdb", &msg);
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(msg));
        if (!pgctl_dir_is_empty(s->data_dir))
                return pgctl_job_finish(
                        j,
                        -EEXIST,
                        "data directory '%s' exists and is not empty, refusing to initdb",
                        s->data_dir);
        if (!bin)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j,
                proc_strv_push(&argv, bin) < 0 || proc_strv_pushf(&argv, "--pgdata=%s", s->data_dir) < 0
                        ? -ENOMEM
                        : 0,
                "out of memory");
        for (size_t i = 0; i < s->initdb.n; i++) {
                const PgParam *p = &s->initdb.items[i];
                r = p->value ? proc_strv_pushf(&argv, "--%s=%s", p->name, p->value)
                             : proc_strv_pushf(&argv, "--%s", p->name);
                JOB_TRY(j, r, "out of memory");
        }
        JOB_TRY(j, proc_strv_pushf(&argv, "--username=%s", s->superuser.username), "out of memory");
        if (s->superuser.password) {
                if (asprintf(&pw, "%s\n", s->superuser.password) < 0)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j, pgctl_make_tmp_file(j, pw), "could not write the password file");
                JOB_TRY(j, proc_strv_pushf(&argv, "--pwfile=%s", j->tmp_file), "out of memory");
        }
        JOB_TRY(j, pgctl_job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, initdb_done), "could not run initdb");
}

/* pgctl_initdb() - runs initdb with bootstrap.initdb options, --username and --pwfile (superuser). */
int pgctl_initdb(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_INITDB, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, initdb_first, ret);
}

/* SQL literal / identifier quoting for the role statements. */
static void sql_literal(FILE *f, const char *v) {
        fputc('\'', f);
        for (; *v; v++) {
                if (*v == '\'')
                        fputc('\'', f);
                fputc(*v, f);
        }
        fputc('\'', f);
}

static void sql_ident(FILE *f, const char *v) {
        fputc('"', f);
        for (; *v; v++) {
                if (*v == '"')
                        fputc('"', f);
                fputc(*v, f);
        }
        fputc('"', f);
}

/* One DO block: ALTER the role if it exists, CREATE it otherwise (Patroni's create_or_update_role). */
static void sql_role(FILE *f, const char *name, const char *password, const char *options) {
        fputs("DO $pgha$\nBEGIN\n  SET local synchronous_commit = 'local';\n"
              "  IF EXISTS (SELECT 1 FROM pg_catalog.pg_authid WHERE rolname = ",
              f);
        sql_literal(f, name);
        fputs(") THEN\n    ALTER ROLE ", f);
        sql_ident(f, name);
        fprintf(f, " WITH %s", options);
        if (password) {
                fputs(" PASSWORD ", f);
                sql_literal(f, password);
        }
        fputs(";\n  ELSE\n    CREATE ROLE ", f);
        sql_ident(f, name);
        fprintf(f, " WITH %s", options);
        if (password) {
                fputs(" PASSWORD ", f);
                sql_literal(f, password);
        }
        fputs(";\n  END IF;\nEND;\n$pgha$;\n", f);
}

static bool is_valid_option(const char *o) {
        if (isempty(o))
                return false;
        for (; *o; o++)
                if (!((*o >= 'a' && *o <= 'z') || (*o >= 'A' && *o <= 'Z') || *o == '_' || *o == ' ' ||
                      (*o >= '0' && *o <= '9') || *o == '-'))
                        return false;
        return true;
}

/* part 0: the superuser's password; part 1 (after post_bootstrap): replication, rewind and
 * bootstrap.users roles, in Patroni's order. */
static int bootstrap_sql(const PgSettings *s, unsigned part, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        const char *su = s->superuser.username;

        if (!f)
                return -ENOMEM;
        /* Keep passwords out of the server log. */
        fputs("SET log_statement TO 'none';\nSET log_min_duration_statement TO -1;\n"
              "SET log_min_error_statement TO 'log';\n",
              f);
        if (part == 0) {
                if (s->superuser.password)
                        sql_role(f, su, s->superuser.password, "SUPERUSER");
                goto done;
        }
        if (s->replication.username && !streq(s->replication.username, su))
                sql_role(f, s->replication.username, s->replication.password, "LOGIN REPLICATION");
        if (s->rewind.username && !streq(s->rewind.username, su)) {
                static const char *const fns[] = {
                        "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                        "pg_catalog.pg_stat_file(text, boolean)",
                        "pg_catalog.pg_read_binary_file(text)",
                        "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
                };
                sql_role(f, s->rewind.username, s->rewind.password, "LOGIN");
                for (size_t i = 0; i < ELEMENTSOF(fns); i++) {
                        fprintf(f, "GRANT EXECUTE ON function %s TO ", fns[i]);
                        sql_ident(f, s->rewind.username);
                        fputs(";\n", f);
                }
        }
        for (size_t i = 0; i < s->n_bootstrap_users; i++) {
                const PgBootstrapUser *u = &s->bootstrap_users[i];
                _cleanup_free_ char *opts = NULL;
                size_t osize = 0;
                bool nologin = false;
                FILE *o;

                if (streq(u->name, su) || streq_ptr(u->name, s->replication.username) ||
                    streq_ptr(u->name, s->rewind.username))
                        continue;
                o = open_memstream(&opts, &osize);
                if (!o) {
                        fclose(f);
                        return -ENOMEM;
                }
                for (char **p = u->options; p && *p; p++) {
                        if (!is_valid_option(*p)) {
                                fclose(o);
                                fclose(f);
                                return -EINVAL;
                        }
                        for (const char *c = *p; *c; c++)
                                fputc(*c >= 'a' && *c <= 'z' ? *c - 32 : *c, o);
                        fputc(' ', o);
                        if (strcasecmp(*p, "nologin") == 0)
                                nologin = true;
                }
                if (!nologin)
                        fputs("LOGIN", o);
                if (fclose(o) != 0) {
                        fclose(f);
                        return -ENOMEM;
                }
                sql_role(f, u->name, u->password, opts);
        }
done:
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static void bootstrap_on_sql(PgCtlJob *j, const ProcResult *r);
static void custom_finish(PgCtlJob *j);

static void bootstrap_run_sql(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *sql = NULL, *host = pgconf_local_host(s), *env_pgpass = NULL;
        int r;

        if (!host)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        r = bootstrap_sql(s, j->attempt, &sql);
        if (r == -EINVAL)
                return pgctl_job_finish(j, r, "bootstrap.users: invalid role option");
        JOB_TRY(j, r, "out of memory");
        JOB_TRY(j, pgctl_make_tmp_file(j, sql), "could not write the bootstrap SQL file");
        JOB_TRY(j, pgctl_local_superuser_env(j, host, &env_pgpass), "could not write a password file");
        JOB_TRY(j, pgctl_psql_argv(s, host, &argv), "out of memory");
        JOB_TRY(j, proc_strv_pushf(&argv, "--file=%s", j->tmp_file), "out of memory");
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c synchronous_commit=local", NULL};
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, env, PGCTL_TOOL_TIMEOUT * 6, bootstrap_on_sql),
                "could not run psql");
}

static void bootstrap_on_post_bootstrap(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                return pgctl_job_finish(j, -EIO, "bootstrap.post_bootstrap script failed: %s", strna(why));
        }
        j->attempt = 1;
        bootstrap_run_sql(j);
}

/* post_bootstrap gets the local superuser DSN (no password; PGPASSFILE has it) as last argument. */
static void bootstrap_run_post_bootstrap(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *host = pgconf_local_host(s), *env_pgpass = NULL, *dsn = NULL;

        if (!host)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        if (proc_split_command(s->post_bootstrap, &argv) < 0)
                return pgctl_job_finish(
                        j, -EINVAL, "bootstrap.post_bootstrap: cannot parse '%s'", s->post_bootstrap);
        if (!(dsn = pgctl_psql_dsn(s, host)) || proc_strv_push(&argv, dsn) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, pgctl_local_superuser_env(j, host, &env_pgpass), "could not write a password file");
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c synchronous_commit=local", NULL};
        log_info("Running post_bootstrap script.");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, bootstrap_on_post_bootstrap),
                "could not run bootstrap.post_bootstrap");
}

static void bootstrap_on_sql(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                return pgctl_job_finish(j, -EIO, "creating bootstrap users failed: %s", strna(why));
        }
        if (j->attempt == 1)
                return j->settings->custom_bootstrap.name ? custom_finish(j) : pgctl_job_finish(j, 0, NULL);
        if (!isempty(j->settings->post_bootstrap))
                return bootstrap_run_post_bootstrap(j);
        j->attempt = 1;
        bootstrap_run_sql(j);
}

static void bootstrap_on_started(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(error));
        j->attempt = 0; /* SQL part */
        bootstrap_run_sql(j);
}

static void bootstrap_on_initdb(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(error));
        JOB_TRY(j,
                pgconf_append_bootstrap_hba(j->settings),
                "could not append bootstrap.pg_hba to pg_hba.conf");
        /* The start deadline counts from now, not from initdb's start. */
        JOB_TRY(j,
                pgctl_job_run_sub(j, pgctl_start, NULL, bootstrap_on_started),
                "could not start postgres");
}

static int initdb_ctor(
        sd_event *e,
        const PgSettings *s,
        const PgParams *unused,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        return pgctl_initdb(e, s, cb, userdata, ret);
}

/* ---- custom bootstrap (bootstrap.method) ----
 * The method's command restores a data directory (e.g. from a backup); PostgreSQL then starts with its
 * recovery_conf (recovery.signal: point-in-time recovery, not a standby) and a temporary pg_hba.conf
 * that trusts the superuser locally, since its password in the restored cluster is unknown. Once
 * recovery has ended: the usual roles and post_bootstrap, then the real pg_hba.conf, postgresql.conf
 * without the recovery section, and a reload. */

static void custom_on_reload(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                return pgctl_job_finish(
                        j, -EIO, "pg_ctl reload after custom bootstrap failed: %s", strna(why));
        }
        pgctl_job_finish(j, 0, NULL);
}

static void custom_finish(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *hba = pgconf_path(s, "pg_hba.conf"), *bin = pgconf_bin(s, "pg_ctl"),
                            *standby = pgdata_path(s, "standby.signal"),
                            *recovery = pgdata_path(s, "recovery.signal");
        char *argv[] = {bin, (char *)"reload", (char *)"-D", s->data_dir, NULL};

        if (!hba || !bin || !standby || !recovery)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        if (j->saved_hba && rename(j->saved_hba, hba) < 0)
                return pgctl_job_finish(j, -errno, "could not restore %s: %m", hba);
        j->saved_hba = mfree(j->saved_hba);
        (void)unlink(standby);
        (void)unlink(recovery);
        /* Writes a managed pg_hba.conf too, when configured. */
        JOB_TRY(j, pgconf_write_config(s, NULL), "could not write configuration");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, custom_on_reload),
                "could not run pg_ctl");
}

static void custom_poll_recovery(PgCtlJob *j);

static void custom_on_recovery_state(PgCtlJob *j, const ProcResult *r) {
        if (proc_result_ok(r) && startswith(r->out, "f")) {
                log_info("Recovery after the custom bootstrap has ended.");
                j->attempt = 0;
                return bootstrap_run_sql(j);
        }
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0) {
                _cleanup_free_ char *why = pgctl_postmaster_log_reason(j->settings);
                return pgctl_job_finish(
                        j,
                        -ESRCH,
                        "postgres exited during recovery after the custom bootstrap%s%s",
                        why ? ": " : "",
                        strempty(why));
        }
        JOB_TRY(j, pgctl_job_after(j, 5 * PGCTL_POLL_USEC, custom_poll_recovery), "could not arm timer");
}

static void custom_poll_recovery(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *host = pgconf_local_host(j->settings);

        if (!host)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, pgctl_psql_argv(j->settings, host, &argv), "out of memory");
        JOB_TRY(j, proc_strv_push(&argv, "-At") < 0 ? -ENOMEM : 0, "out of memory");
        JOB_TRY(j,
                proc_strv_push(&argv, "--command=SELECT pg_catalog.pg_is_in_recovery()") < 0 ? -ENOMEM : 0,
                "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, custom_on_recovery_state),
                "could not run psql");
}

static void custom_on_started(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(error));
        custom_poll_recovery(j);
}

static void custom_on_command(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;
        const PgCustomBootstrap *cb = &s->custom_bootstrap;
        _cleanup_(pg_params_done) PgParams recovery = {};
        _cleanup_free_ char *hba = pgconf_path(s, "pg_hba.conf"), *promote = pgdata_path(s, "promote"),
                            *text = NULL;
        const char *su = s->superuser.username;
        int k;

        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                return pgctl_job_finish(
                        j, -EIO, "custom bootstrap script %s failed: %s", cb->name, strna(why));
        }
        if (!hba || !promote)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        k = pgconf_restore_files(s);
        if (k < 0)
                log_warning_errno(k, "Failed to restore configuration files from backups, ignoring: %m");
        /* A leftover trigger file would promote the server before recovery reached its target. */
        (void)unlink(promote);

        /* Temporary trust for the superuser on the local socket and loopback. */
        if (asprintf(&j->saved_hba, "%s.pgha-bootstrap", hba) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        if (rename(hba, j->saved_hba) < 0) {
                if (errno != ENOENT)
                        return pgctl_job_finish(j, -errno, "could not move %s aside: %m", hba);
                j->saved_hba = mfree(j->saved_hba);
        }
        if (asprintf(
                    &text,
                    "local all %s trust\nhost all %s 127.0.0.1/32 trust\nhost all %s ::1/128 trust\n",
                    su,
                    su,
                    su) < 0)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j,
                write_file_atomic(hba, text, strlen(text), 0600),
                "could not write a temporary pg_hba.conf");

        if (cb->has_recovery_conf) {
                for (size_t i = 0; i < cb->recovery_conf.n; i++)
                        JOB_TRY(j,
                                pg_params_set(
                                        &recovery,
                                        cb->recovery_conf.items[i].name,
                                        cb->recovery_conf.items[i].value),
                                "out of memory");
                if (!pg_params_has(&recovery, "standby_mode"))
                        JOB_TRY(j, pg_params_set(&recovery, "standby_mode", "off"), "out of memory");
                qsort(recovery.items, recovery.n, sizeof(PgParam), pgctl_pg_param_compare_name);
        }
        JOB_TRY(j,
                pgctl_job_run_sub(
                        j, pgctl_start, cb->has_recovery_conf ? &recovery : NULL, custom_on_started),
                "could not start postgres");
}

static void custom_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        const PgCustomBootstrap *cb = &s->custom_bootstrap;
        _cleanup_(proc_strv_freep) char **argv = NULL;

        /* As Patroni: the custom command gets data_dir as it is and creates it (and its parents). */
        if (!pgctl_dir_is_empty(s->data_dir))
                return pgctl_job_finish(
                        j,
                        -EEXIST,
                        "data directory '%s' exists and is not empty, refusing to bootstrap",
                        s->data_dir);
        if (proc_split_command(cb->command, &argv) < 0)
                return pgctl_job_finish(
                        j, -EINVAL, "bootstrap.%s.command: cannot parse '%s'", cb->name, cb->command);
        if (!cb->no_params &&
            (proc_strv_pushf(&argv, "--scope=%s", s->scope) < 0 ||
             proc_strv_pushf(&argv, "--datadir=%s", s->data_dir) < 0))
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        log_info("Running custom bootstrap script: %s", cb->command);
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, custom_on_command),
                "could not run %s",
                cb->name);
}

static void bootstrap_first(PgCtlJob *j) {
        if (j->settings->custom_bootstrap.name)
                return custom_first(j);
        JOB_TRY(j, pgctl_job_run_sub(j, initdb_ctor, NULL, bootstrap_on_initdb), "could not run initdb");
}

/* pgctl_bootstrap() - initdb, append bootstrap.pg_hba, write postgresql.conf, start as primary, then
 * create/alter the superuser, replication, rewind and bootstrap.users roles. */
int pgctl_bootstrap(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_BOOTSTRAP, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0; /* the parts have their own */
        return pgctl_job_start(j, bootstrap_first, ret);
}
