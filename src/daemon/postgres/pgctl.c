/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL control jobs: the job machinery (see pgctl_internal.h), postmaster discovery, data
 * directory checks, and the jobs on a running or stopped server: start, stop, restart, reload, promote,
 * checkpoint, pg_controldata. Bootstrap lives in pgctl_bootstrap.c, replica creation and rewind in
 * pgctl_replica.c. The postmaster is started detached (double fork, new session, as Patroni does) so it
 * outlives pghad and is never our child; it is found again through postmaster.pid and /proc.
 *
 * Invariants: the completion handler runs exactly once unless the job is freed first; no step blocks
 * (all waiting is done by children and timers); no job removes a data directory except
 * pgctl_remove_data_dir() and pgctl_create_replica() with wipe=true, which the caller asks for.
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
#include "pgha/postmaster.h"
#include "pgha/proc.h"
#include "pgctl_internal.h"

static const char *const pgctl_kind_table[_PGCTL_KIND_MAX] = {
        [PGCTL_INITDB] = "initdb",
        [PGCTL_BOOTSTRAP] = "bootstrap",
        [PGCTL_START] = "start",
        [PGCTL_STOP] = "stop",
        [PGCTL_RESTART] = "restart",
        [PGCTL_RELOAD] = "reload",
        [PGCTL_PROMOTE] = "promote",
        [PGCTL_CREATE_REPLICA] = "create_replica",
        [PGCTL_REWIND] = "rewind",
        [PGCTL_CRASH_RECOVERY] = "crash_recovery",
        [PGCTL_REMOVE_DATA_DIR] = "remove_data_dir",
        [PGCTL_CHECKPOINT] = "checkpoint",
        [PGCTL_CONTROLDATA] = "controldata",
};

static const char *const pg_stop_mode_table[_PG_STOP_MODE_MAX] = {
        [PG_STOP_SMART] = "smart",
        [PG_STOP_FAST] = "fast",
        [PG_STOP_IMMEDIATE] = "immediate",
};

DEFINE_STRING_TABLE_LOOKUP(pg_stop_mode, PgStopMode);

int pgctl_pg_param_compare_name(const void *a, const void *b) {
        return strcmp(((const PgParam *)a)->name, ((const PgParam *)b)->name);
}

static const char *job_name(const PgCtlJob *j) {
        return pgctl_kind_table[j->kind];
}

/* pgctl_job_name() - "start", "stop", "promote", ... */
const char *pgctl_job_name(const PgCtlJob *j) {
        return j ? job_name(j) : NULL;
}

/* pgctl_job_signalled() - for stop/restart: whether a running postmaster was signalled (on_stop). */
bool pgctl_job_signalled(const PgCtlJob *j) {
        return j && j->signalled;
}

/* pgctl_job_method() - for create_replica: the method that succeeded. */
const char *pgctl_job_method(const PgCtlJob *j) {
        return j ? j->method : NULL;
}

/* pgctl_job_output() - for controldata: pg_controldata's output (valid until the job is freed). */
const char *pgctl_job_output(const PgCtlJob *j) {
        return j ? j->output : NULL;
}

/* A failed or cancelled custom bootstrap must not leave the temporary trust pg_hba.conf behind. */
static void job_restore_hba(PgCtlJob *j) {
        _cleanup_free_ char *hba = NULL;
        if (!j->saved_hba)
                return;
        hba = pgconf_path(j->settings, "pg_hba.conf");
        if (hba && rename(j->saved_hba, hba) < 0)
                log_warning_errno(-errno, "Failed to restore %s from %s: %m", hba, j->saved_hba);
        j->saved_hba = mfree(j->saved_hba);
}

static void job_remove_tmp(PgCtlJob *j) {
        if (j->tmp_file) {
                (void)unlink(j->tmp_file);
                j->tmp_file = mfree(j->tmp_file);
        }
        if (j->tmp_pgpass) {
                (void)unlink(j->tmp_pgpass);
                j->tmp_pgpass = mfree(j->tmp_pgpass);
        }
}

/* pgctl_job_free() - cancels a running job (children killed, temporary files removed, a custom
 * bootstrap's real pg_hba.conf put back; the handler will not run) and frees it. NULL allowed. */
PgCtlJob *pgctl_job_free(PgCtlJob *j) {
        if (!j)
                return NULL;
        j->proc = proc_free(j->proc);
        j->timer_source = sd_event_source_disable_unref(j->timer_source);
        j->sub = pgctl_job_free(j->sub);
        job_remove_tmp(j);
        job_restore_hba(j);
        pg_params_done(&j->recovery);
        pg_params_done(&j->raised);
        free(j->output);
        free(j->saved_hba);
        free(j->gucs);
        free(j->host);
        sd_event_unref(j->event);
        return mfree(j);
}

/* Logs the failure (or success) and calls the handler; must be the last thing a step does. */
void pgctl_job_finish(PgCtlJob *j, int r, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        if (j->finished)
                return;
        j->finished = true;
        /* Format first: the arguments may point into the running Proc's output. */
        if (r < 0) {
                va_start(ap, fmt);
                if (!fmt || vasprintf(&msg, fmt, ap) < 0)
                        msg = NULL;
                va_end(ap);
        }
        j->proc = proc_free(j->proc);
        j->timer_source = sd_event_source_disable_unref(j->timer_source);
        job_remove_tmp(j);
        job_restore_hba(j);
        if (r < 0)
                log_error_errno(r, "%s failed: %s", job_name(j), strna(msg));
        else
                log_full(
                        j->kind == PGCTL_CONTROLDATA ? LOG_DEBUG : LOG_INFO,
                        "%s of %s completed.",
                        job_name(j),
                        j->settings->data_dir);
        j->handler(j, r < 0 ? r : 0, r < 0 ? strna(msg) : NULL, j->userdata);
}

static void on_job_proc(Proc *p, const ProcResult *r, void *userdata) {
        PgCtlJob *j = userdata;
        job_proc_fn next = j->proc_next;

        j->proc_next = NULL;
        /* j->proc stays valid (with r's buffers) until after next returns or a new pgctl_job_spawn. */
        next(j, r);
}

/* Spawns argv; continues with next(j, result). Ownership of the previous Proc: freed here, which is
 * safe even from inside its own callback because proc_free() defers to sd-event's dispatch rules. */
int pgctl_job_spawn(PgCtlJob *j, char *const *argv, char *const *env, usec_t timeout, job_proc_fn next) {
        ProcOptions opts = PROC_OPTIONS_INIT;
        _cleanup_free_ char *line = proc_argv_to_string(argv);
        Proc *old = j->proc;
        int r;

        opts.description = argv[0];
        opts.output_max = PGCTL_OUTPUT_MAX;
        opts.env_add = env;
        opts.strip_patroni_env = true;
        opts.timeout = timeout;
        j->proc = NULL;
        r = proc_spawn(j->event, argv, &opts, on_job_proc, j, &j->proc);
        proc_free(old);
        if (r < 0)
                return log_error_errno(r, "Failed to run %s: %m", strna(line));
        log_debug("%s: running %s", job_name(j), strna(line));
        j->proc_next = next;
        return 0;
}

static int on_job_timer(sd_event_source *s, usec_t usec, void *userdata) {
        PgCtlJob *j = userdata;
        job_timer_fn next = j->timer_next;
        j->timer_next = NULL;
        next(j);
        return 0;
}

int pgctl_job_after(PgCtlJob *j, usec_t delay, job_timer_fn next) {
        usec_t now = 0;
        int r;

        (void)sd_event_now(j->event, CLOCK_MONOTONIC, &now);
        j->timer_next = next;
        if (j->timer_source) {
                r = sd_event_source_set_time(j->timer_source, now + delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(j->timer_source, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(j->event, &j->timer_source, CLOCK_MONOTONIC, now + delay, 0, on_job_timer, j);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(j->timer_source, "pgctl-job");
        return 0;
}

bool pgctl_job_past_deadline(PgCtlJob *j) {
        usec_t now = 0;
        (void)sd_event_now(j->event, CLOCK_MONOTONIC, &now);
        return j->deadline > 0 && now >= j->deadline;
}

int pgctl_job_new(
        sd_event *e,
        const PgSettings *s,
        PgCtlKind kind,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        usec_t now = 0;

        if (!e || !s || !s->data_dir || !cb || !ret)
                return -EINVAL;
        j = calloc(1, sizeof(PgCtlJob));
        if (!j)
                return -ENOMEM;
        j->event = sd_event_ref(e);
        j->settings = s;
        j->kind = kind;
        j->handler = cb;
        j->userdata = userdata;
        (void)sd_event_now(e, CLOCK_MONOTONIC, &now);
        j->deadline = now + (s->pg_ctl_timeout ?: 60 * USEC_PER_SEC);
        *ret = j;
        return 0;
}

/* Runs the first step from the loop rather than from the constructor, so the handler never runs before
 * the caller has stored the job. */
int pgctl_job_start(PgCtlJob *j, job_timer_fn first, PgCtlJob **ret) {
        int r = pgctl_job_after(j, 0, first);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        *ret = j;
        return 0;
}

/* Last line of a child's stderr (or stdout), for error messages. */
static char *last_line(const ProcResult *r) {
        const char *t = r->err_size > 0 ? r->err : r->out;
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == ' '))
                n--;
        size_t b = n;
        while (b > 0 && t[b - 1] != '\n')
                b--;
        return strndup(t + b, n - b);
}

char *pgctl_result_reason(const ProcResult *r) {
        _cleanup_free_ char *l = last_line(r);
        char *s = NULL;
        int k;

        if (r->timed_out)
                k = asprintf(&s, "timed out%s%s", isempty(l) ? "" : ": ", strempty(l));
        else if (r->signal)
                k = asprintf(&s, "killed by signal %d%s%s", r->signal, isempty(l) ? "" : ": ", strempty(l));
        else
                k = asprintf(&s, "exit code %d%s%s", r->exit_code, isempty(l) ? "" : ": ", strempty(l));
        return k < 0 ? NULL : s;
}

/* ==== Postmaster discovery and data directory checks ==== */

/* pgctl_pid_alive() - whether pid exists and is neither a zombie nor dead. */
bool pgctl_pid_alive(pid_t pid) {
        return postmaster_pid_alive(pid);
}

/* pgctl_postmaster_pid() - whether the postmaster of data_dir runs, by postmaster_check(): a zombie or a
 * recycled PID does not count. Returns 1 and the PID when running, 0 when not, a negative errno when
 * data_dir cannot be read. Non-logging. */
int pgctl_postmaster_pid(const char *data_dir, pid_t *ret_pid) {
        _cleanup_(postmaster_pid_file_done) PostmasterPidFile pf = {};
        PostmasterState state;
        int r;

        r = postmaster_check(data_dir, NULL, &state, &pf);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = state == POSTMASTER_RUNNING ? pf.pid : 0;
        return state == POSTMASTER_RUNNING;
}

/* pgctl_controldata_get() - the value of "key:" in pg_controldata output (heap string), NULL if absent. */
char *pgctl_controldata_get(const char *text, const char *key) {
        size_t kl = strlen(key);
        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                const char *k = startswith(p, "Current ") ?: p;
                if (strneq(k, key, kl) && k[kl] == ':') {
                        const char *v = k + kl + 1;
                        v += strspn(v, " ");
                        return strndup(v, strcspn(v, "\n"));
                }
        }
        return NULL;
}

char **pgctl_controldata_env(void) {
        static char *env[] = {(char *)"LANG=C", (char *)"LC_ALL=C", NULL};
        return env;
}

int pgctl_controldata_argv(const PgSettings *s, char ***ret) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "pg_controldata");
        int r;
        if (!bin)
                return -ENOMEM;
        if ((r = proc_strv_push(&argv, bin)) < 0 || (r = proc_strv_push(&argv, "-D")) < 0 ||
            (r = proc_strv_push(&argv, s->data_dir)) < 0)
                return r;
        *ret = TAKE_PTR(argv);
        return 0;
}

/* Live processes whose session is sid: the postmaster we start is a session leader, so this finds
 * backends a killed postmaster left behind (they still use its shared memory). */
static unsigned session_live_processes(pid_t sid) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[300];
                _cleanup_free_ char *text = NULL;
                const char *p;
                char state;
                int ppid, pgrp, session;

                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                (void)snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                if (read_full_file(path, 4096, &text, NULL) < 0)
                        continue;
                p = strrchr(text, ')');
                if (p && sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4 &&
                    session == sid && state != 'Z' && state != 'X' && state != 'x')
                        n++;
        }
        closedir(d);
        return n;
}

/* One lock file (postmaster.pid or a socket's .s.PGSQL.<port>.lock): 1 = wait (the dead postmaster's
 * processes are still alive), 0 = nothing in the way (stale file of a zombie removed). */
static int clear_stale_lock(const char *path, pid_t *ret_old) {
        _cleanup_free_ char *text = NULL;
        long pid;

        if (read_full_file(path, 4096, &text, NULL) < 0)
                return 0;
        pid = strtol(text, NULL, 10);
        if (pid <= 0 || pgctl_pid_alive((pid_t)pid))
                return 0; /* a live owner: PostgreSQL's own check decides */
        *ret_old = (pid_t)pid;
        if (session_live_processes((pid_t)pid) > 0)
                return 1;
        /* Only a zombie still passes PostgreSQL's kill(pid, 0); a vanished PID it handles itself. */
        if (kill((pid_t)pid, 0) == 0) {
                log_info("Removing stale lock file %s of dead postmaster (PID %ld).", path, pid);
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        }
        return 0;
}

/* A postmaster killed with SIGKILL may stay a zombie until PID 1 reaps it, and PostgreSQL's lock-file
 * checks (kill(pid, 0)) then refuse to start. Once /proc says it is dead and none of its processes is
 * left, its stale postmaster.pid and socket lock files are removed. Returns 1 when the caller must wait. */
static int clear_stale_pidfile(const PgSettings *s, pid_t *ret_old) {
        _cleanup_free_ char *path = pgdata_path(s, "postmaster.pid");
        const char *dirs = pg_params_get(&s->parameters, "unix_socket_directories");
        int r;

        if (!path)
                return -ENOMEM;
        r = clear_stale_lock(path, ret_old);
        if (r != 0)
                return r;
        for (const char *p = dirs ?: "/var/run/postgresql"; p && *p;) {
                _cleanup_free_ char *dir = NULL, *lock = NULL;
                size_t l;

                p += strspn(p, " ,");
                l = strcspn(p, ",");
                dir = strndup(p, l);
                p += l;
                if (!dir)
                        return -ENOMEM;
                while (*dir && dir[strlen(dir) - 1] == ' ')
                        dir[strlen(dir) - 1] = '\0';
                if (dir[0] != '/')
                        continue;
                if (asprintf(&lock, "%s/.s.PGSQL.%u.lock", dir, s->port) < 0)
                        return -ENOMEM;
                r = clear_stale_lock(lock, ret_old);
                if (r != 0)
                        return r;
        }
        return 0;
}

static void stale_poll(PgCtlJob *j) {
        pid_t old = 0;
        int r = clear_stale_pidfile(j->settings, &old);

        if (r < 0)
                return pgctl_job_finish(j, r, "could not remove a stale lock file: %s", strerror(-r));
        if (r == 0)
                return j->after_stale(j);
        if (pgctl_job_past_deadline(j))
                return pgctl_job_finish(
                        j,
                        -EBUSY,
                        "processes of the crashed postmaster (PID %d) are still running",
                        (int)old);
        JOB_TRY(j, pgctl_job_after(j, PGCTL_POLL_USEC, stale_poll), "could not arm timer");
}

/* Continues with next once no crashed postmaster's processes or lock file stand in the way. */
void pgctl_job_wait_stale(PgCtlJob *j, job_timer_fn next) {
        j->after_stale = next;
        stale_poll(j);
}

/* Data directory checks. */

bool pgctl_dir_is_empty(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        if (!d)
                return errno == ENOENT;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        empty = false;
                        break;
                }
        closedir(d);
        return empty;
}

/* Fills msg with one sentence naming the problem and returns a negative errno, or returns 0. */
int pgctl_check_parent_dir(const PgSettings *s, char **msg) {
        _cleanup_free_ char *parent = strdup(s->data_dir);
        struct stat st;
        char *slash;

        if (!parent)
                return -ENOMEM;
        for (size_t l = strlen(parent); l > 1 && parent[l - 1] == '/'; l--)
                parent[l - 1] = '\0';
        slash = strrchr(parent, '/');
        if (!slash)
                return 0;
        if (slash == parent)
                slash[1] = '\0';
        else
                *slash = '\0';
        if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
                (void)asprintf(
                        msg,
                        "parent directory '%s' of data directory '%s' does not exist",
                        parent,
                        s->data_dir);
                return -ENOENT;
        }
        return 0;
}

int pgctl_check_bin(const PgSettings *s, const char *program, char **msg) {
        _cleanup_free_ char *bin = pgconf_bin(s, program);
        if (!bin)
                return -ENOMEM;
        if (!isempty(s->bin_dir) && access(bin, X_OK) < 0) {
                (void)asprintf(msg, "postgresql.bin_dir '%s' has no executable %s", s->bin_dir, program);
                return -ENOENT;
        }
        return 0;
}

int pgctl_check_data_dir(const PgSettings *s, char **msg) {
        _cleanup_free_ char *pgv = NULL;
        struct stat st;
        int r;

        r = pgctl_check_parent_dir(s, msg);
        if (r < 0)
                return r;
        if (stat(s->data_dir, &st) < 0) {
                (void)asprintf(msg, "data directory '%s' does not exist", s->data_dir);
                return -ENOENT;
        }
        if (!S_ISDIR(st.st_mode)) {
                (void)asprintf(msg, "data directory '%s' is not a directory", s->data_dir);
                return -ENOTDIR;
        }
        if (st.st_uid != geteuid()) {
                (void)asprintf(
                        msg,
                        "data directory '%s' belongs to uid %u, not to this user (uid %u)",
                        s->data_dir,
                        (unsigned)st.st_uid,
                        (unsigned)geteuid());
                return -EPERM;
        }
        pgv = pgdata_path(s, "PG_VERSION");
        if (!pgv)
                return -ENOMEM;
        if (access(pgv, F_OK) < 0) {
                (void)asprintf(msg, "'%s' is not a PostgreSQL data directory (no PG_VERSION)", s->data_dir);
                return -ENOENT;
        }
        return pgctl_check_bin(s, "postgres", msg);
}

char *pgctl_read_pg_version(const PgSettings *s) {
        _cleanup_free_ char *path = pgdata_path(s, "PG_VERSION"), *text = NULL;
        if (!path || read_full_file(path, 64, &text, NULL) < 0)
                return NULL;
        text[strcspn(text, "\n")] = '\0';
        return TAKE_PTR(text);
}

/* ==== Jobs on the local server ==== */

/* start: checks, postgres -V, --describe-config, (replica) pg_controldata, write files, spawn, pg_isready.
 */

static void start_poll(PgCtlJob *j);
static void start_spawn_probe(PgCtlJob *j);

/* The message of a log line after its severity ("FATAL:  "), without log_line_prefix's timestamp and
 * PID; NULL when the line has none of the severities. */
static const char *log_line_message(const char *line, const char *const *severities) {
        for (const char *const *sev = severities; *sev; sev++) {
                const char *p = strstr(line, *sev);
                if (p)
                        return p + strlen(*sev) + strspn(p + strlen(*sev), " ");
        }
        return NULL;
}

/* Why postgres exited during start-up, from its log text: the last FATAL or PANIC message; for
 * "configuration file ... contains errors" the message naming the parameter, logged just before, says
 * more and is put first. Modifies text. */
static char *startup_reason_from_text(char *text) {
        static const char *const fatal[] = {"FATAL:", "PANIC:", NULL},
                                 *const detail_sev[] = {"LOG:", "ERROR:", NULL};
        const char *best = NULL, *detail = NULL, *candidate = NULL, *msg;
        char *reason = NULL;

        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if ((msg = log_line_message(line, fatal))) {
                        best = msg;
                        detail = candidate;
                        candidate = NULL;
                } else if ((msg = log_line_message(line, detail_sev)) && strstr(msg, "parameter"))
                        candidate = msg;
                line = nl ? nl + 1 : NULL;
        }
        if (!best)
                return NULL;
        if (asprintf(&reason, "%s%s%s", strempty(detail), detail ? "; " : "", best) < 0)
                return NULL;
        return reason;
}

char *pgctl_postmaster_log_reason(const PgSettings *s) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        int fd;

        if (!s->postmaster_log)
                return NULL;
        fd = open(s->postmaster_log, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        if (fstat(fd, &st) == 0 && st.st_size > PGCTL_LOG_TAIL)
                (void)lseek(fd, st.st_size - PGCTL_LOG_TAIL, SEEK_SET);
        text = calloc(1, PGCTL_LOG_TAIL + 1);
        if (text && read(fd, text, PGCTL_LOG_TAIL) < 0)
                text[0] = '\0';
        safe_close(fd);
        return text ? startup_reason_from_text(text) : NULL;
}

static void start_succeeded(PgCtlJob *j) {
        int r = pgconf_backup_files(j->settings);
        if (r < 0)
                log_warning_errno(r, "Failed to back up configuration files, ignoring: %m");
        pgctl_job_finish(j, 0, NULL);
}

static void start_on_isready(PgCtlJob *j, const ProcResult *r) {
        if (r->signal == 0 && r->exit_code == 0)
                return start_succeeded(j);
        if (r->signal == 0 && r->exit_code == 3) {
                log_warning(
                        "pg_isready could not tell whether postgres accepts connections, assuming it does.");
                return start_succeeded(j);
        }
        JOB_TRY(j, pgctl_job_after(j, pgctl_poll_backoff(j), start_poll), "could not arm timer");
}

static void start_exited(PgCtlJob *j, const char *why) {
        pgctl_job_finish(j, -ESRCH, "postgres (PID %d) exited during start-up: %s", (int)j->pid, why);
}

/* postgres exited during start-up and its stderr went to our own log, out of reach: run it again with
 * the same options and -C, which reads and checks the configuration as the start did and exits. A
 * configuration error (the usual cause) is named from its output; anything else is only in PostgreSQL's
 * own log. */
static void start_on_probe(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *text = NULL, *why = NULL;

        if (!proc_result_ok(r) && (text = strdup(r->err_size > 0 ? r->err : r->out)))
                why = startup_reason_from_text(text);
        if (why)
                return start_exited(j, why);
        pgctl_job_finish(
                j,
                -ESRCH,
                "postgres (PID %d) exited during start-up; its configuration checks out, PostgreSQL's log "
                "names the cause",
                (int)j->pid);
}

static void start_spawn_probe(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;

        /* The configured settings: the values raised from pg_controldata only matter to a real start. */
        JOB_TRY(j, pgconf_postmaster_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                proc_strv_push(&argv, "-C") < 0 || proc_strv_push(&argv, "data_directory") < 0 ? -ENOMEM : 0,
                "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, start_on_probe),
                "could not run postgres -C to find why it exited");
}

static void start_poll(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "pg_isready"), *host = pgconf_local_host(s);

        if (!pgctl_pid_alive(j->pid)) {
                _cleanup_free_ char *why = pgctl_postmaster_log_reason(s);
                if (why)
                        return start_exited(j, why);
                return start_spawn_probe(j);
        }
        if (pgctl_job_past_deadline(j))
                return pgctl_job_finish(
                        j,
                        -ETIMEDOUT,
                        "postgres did not accept connections within %llu s",
                        (unsigned long long)(s->pg_ctl_timeout / USEC_PER_SEC));
        if (!bin || !host)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j,
                proc_strv_push(&argv, bin) < 0 || proc_strv_push(&argv, "-h") < 0 ||
                                proc_strv_push(&argv, host) < 0 ||
                                proc_strv_pushf(&argv, "--port=%u", s->port) < 0 ||
                                proc_strv_pushf(&argv, "--dbname=%s", s->database) < 0 ||
                                proc_strv_pushf(&argv, "--username=%s", s->superuser.username) < 0 ||
                                proc_strv_push(&argv, "--timeout=2") < 0
                        ? -ENOMEM
                        : 0,
                "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, start_on_isready),
                "could not run pg_isready");
}

static void start_on_spawned(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r))
                return pgctl_job_finish(j, -ECHILD, "could not start postgres: %s", strempty(r->err));
        j->pid = (pid_t)strtol(r->out, NULL, 10);
        if (j->pid <= 0)
                return pgctl_job_finish(j, -EIO, "could not start postgres: no PID reported");
        log_info("postmaster started (PID %d), waiting for it to accept connections.", (int)j->pid);
        start_poll(j);
}

/* Names with a dot are extension settings and always pass, as in Patroni; without the list (the
 * describe step failed) everything passes and PostgreSQL itself reports bad names. */
static bool guc_is_known(const PgCtlJob *j, const char *name) {
        _cleanup_free_ char *needle = NULL;

        if (!j->gucs || strchr(name, '.'))
                return true;
        if (asprintf(&needle, "\n%s\t", name) < 0)
                return true;
        for (char *c = needle; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        return strstr(j->gucs, needle) != NULL;
}

/* The parameters actually written: the configured ones minus names this PostgreSQL does not know
 * (Patroni 3.0.2 drops them instead of failing), plus those raised from pg_controldata. */
static int job_effective_parameters(PgCtlJob *j, PgParams *ret) {
        int r;

        for (size_t i = 0; i < j->settings->parameters.n; i++) {
                const PgParam *p = &j->settings->parameters.items[i];
                if (!guc_is_known(j, p->name)) {
                        log_warning(
                                "Removing unexpected parameter=%s value=%s from the config",
                                p->name,
                                strna(p->value));
                        continue;
                }
                r = pg_params_set(ret, p->name, p->value);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < j->raised.n; i++) {
                r = pg_params_set(ret, j->raised.items[i].name, j->raised.items[i].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int job_spawn_describe_config(PgCtlJob *j, job_proc_fn next) {
        _cleanup_free_ char *bin = pgconf_bin(j->settings, "postgres");
        char *argv[] = {bin, (char *)"--describe-config", NULL};
        if (!bin)
                return -ENOMEM;
        return pgctl_job_spawn(j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, next);
}

/* Keeps the GUC list from postgres --describe-config; without it nothing is filtered. */
static int job_store_gucs(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r) || r->out_truncated) {
                log_warning("postgres --describe-config failed, not checking parameter names.");
                return 0;
        }
        free(j->gucs);
        j->gucs = NULL;
        return asprintf(&j->gucs, "\n%s", r->out) < 0 ? -ENOMEM : 0;
}

static void start_spawn(PgCtlJob *j) {
        /* A shallow copy whose parameters include the raised ones; never pg_settings_done()'d. */
        PgSettings eff = *j->settings;
        const PgSettings *s = &eff;
        _cleanup_(pg_params_done) PgParams merged = {};
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int log_fd = -EBADF;
        ProcOptions opts = PROC_OPTIONS_INIT;
        Proc *old = j->proc;

        JOB_TRY(j, job_effective_parameters(j, &merged), "out of memory");
        eff.parameters = merged;

        JOB_TRY(j,
                pgconf_write_all(s, j->has_recovery ? &j->recovery : NULL),
                "could not write configuration");
        JOB_TRY(j, pgconf_postmaster_argv(s, &argv), "out of memory");
        if (s->postmaster_log) {
                log_fd = open(s->postmaster_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
                if (log_fd < 0)
                        return pgctl_job_finish(
                                j, -errno, "could not open postmaster log '%s': %m", s->postmaster_log);
        }
        line = proc_argv_to_string(argv);
        log_info("Starting postgres: %s", strna(line));
        opts.description = "postgres";
        opts.strip_patroni_env = true;
        opts.detach = true;
        opts.detached_log_fd = log_fd;
        opts.timeout = PGCTL_TOOL_TIMEOUT;
        j->proc = NULL;
        JOB_TRY(j, proc_spawn(j->event, argv, &opts, on_job_proc, j, &j->proc), "could not spawn postgres");
        proc_free(old);
        j->proc_next = start_on_spawned;
}

/* A standby refuses to start with lower values than its primary had for these (pg_control records
 * them); Patroni raises them from pg_controldata, and so do we. */
static void start_on_controldata(PgCtlJob *j, const ProcResult *r) {
        static const struct {
                const char *param, *key, *def;
        } raise[] = {
                {"max_connections", "max_connections setting", "100"},
                {"max_worker_processes", "max_worker_processes setting", "8"},
                {"max_wal_senders", "max_wal_senders setting", "10"},
                {"max_prepared_transactions", "max_prepared_xacts setting", "0"},
                {"max_locks_per_transaction", "max_locks_per_xact setting", "64"},
        };

        if (!proc_result_ok(r))
                log_warning("pg_controldata failed, starting with the configured parameters.");
        for (size_t i = 0; proc_result_ok(r) && i < ELEMENTSOF(raise); i++) {
                _cleanup_free_ char *v = pgctl_controldata_get(r->out, raise[i].key);
                const char *cur = pg_params_get(&j->settings->parameters, raise[i].param) ?: raise[i].def;
                if (!v || strtoull(v, NULL, 10) <= strtoull(cur, NULL, 10))
                        continue;
                log_info("Raising %s from %s to %s, the value in pg_control.", raise[i].param, cur, v);
                JOB_TRY(j, pg_params_set(&j->raised, raise[i].param, v), "out of memory");
        }
        pgctl_job_wait_stale(j, start_spawn);
}

static void start_on_describe(PgCtlJob *j, const ProcResult *r);

static void start_on_version(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *data_version = pgctl_read_pg_version(s);
        const char *v;
        char bin_major[16] = "";

        if (!proc_result_ok(r))
                return pgctl_job_finish(
                        j,
                        -ENOEXEC,
                        "postgresql.bin_dir '%s': postgres -V failed (%s)",
                        strempty(s->bin_dir),
                        strempty(r->err));
        /* "postgres (PostgreSQL) 15.5 (Debian 15.5-0+deb12u1)" */
        v = strstr(r->out, ") ");
        if (v)
                (void)snprintf(bin_major, sizeof(bin_major), "%.*s", (int)strcspn(v + 2, ". \n"), v + 2);
        if (data_version && !isempty(bin_major) && !streq(data_version, bin_major))
                return pgctl_job_finish(
                        j,
                        -EINVAL,
                        "data directory '%s' belongs to PostgreSQL %s but postgresql.bin_dir '%s' has "
                        "PostgreSQL %s",
                        s->data_dir,
                        data_version,
                        strempty(s->bin_dir),
                        bin_major);
        {
                _cleanup_free_ char *bin = pgconf_bin(s, "postgres");
                char *argv[] = {bin, (char *)"--describe-config", NULL};
                if (!bin)
                        return pgctl_job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j,
                        pgctl_job_spawn(
                                j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, start_on_describe),
                        "could not run postgres --describe-config");
        }
}

static void start_on_describe(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;

        JOB_TRY(j, job_store_gucs(j, r), "out of memory");
        if (j->has_recovery) {
                _cleanup_(proc_strv_freep) char **argv = NULL;
                JOB_TRY(j, pgctl_controldata_argv(s, &argv), "out of memory");
                JOB_TRY(j,
                        pgctl_job_spawn(
                                j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, start_on_controldata),
                        "could not run pg_controldata");
                return;
        }
        pgctl_job_wait_stale(j, start_spawn);
}

static void start_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *msg = NULL, *bin = pgconf_bin(s, "postgres");
        char *argv[] = {bin, (char *)"-V", NULL};
        pid_t pid;
        int r;

        r = pgctl_check_data_dir(s, &msg);
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(msg));
        if (pgctl_postmaster_pid(s->data_dir, &pid) > 0) {
                /* It may still be starting (e.g. a start whose job was cancelled): wait until it accepts
                 * connections, without touching its files. */
                log_info("postgres is already running on %s (PID %d).", s->data_dir, (int)pid);
                j->pid = pid;
                return start_poll(j);
        }
        if (!bin)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, start_on_version),
                "could not run postgres -V");
}

static int copy_recovery(PgCtlJob *j, const PgParams *recovery) {
        if (!recovery)
                return 0;
        j->has_recovery = true;
        for (size_t i = 0; i < recovery->n; i++) {
                int r = pg_params_set(&j->recovery, recovery->items[i].name, recovery->items[i].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

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
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_START, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return pgctl_job_start(j, start_first, ret);
}

/* stop: optional CHECKPOINT, signal, wait with escalation. */

static void stop_poll(PgCtlJob *j) {
        if (!pgctl_pid_alive(j->pid))
                return pgctl_job_finish(j, 0, NULL);
        if (pgctl_job_past_deadline(j)) {
                if (j->stop_escalation == 0) {
                        log_warning("postgres (PID %d) did not stop in time, sending SIGQUIT.", (int)j->pid);
                        (void)kill(j->pid, SIGQUIT);
                } else if (j->stop_escalation == 1) {
                        log_warning(
                                "postgres (PID %d) still running, sending SIGKILL to its process group.",
                                (int)j->pid);
                        (void)kill(-j->pid, SIGKILL);
                        (void)kill(j->pid, SIGKILL);
                } else
                        return pgctl_job_finish(
                                j, -ETIMEDOUT, "postgres (PID %d) survived SIGKILL", (int)j->pid);
                j->stop_escalation++;
                j->deadline += PGCTL_KILL_GRACE;
        }
        JOB_TRY(j, pgctl_job_after(j, PGCTL_POLL_USEC / 2, stop_poll), "could not arm timer");
}

static void stop_signal(PgCtlJob *j) {
        static const int signals[_PG_STOP_MODE_MAX] = {
                [PG_STOP_SMART] = SIGTERM,
                [PG_STOP_FAST] = SIGINT,
                [PG_STOP_IMMEDIATE] = SIGQUIT,
        };

        if (pgctl_postmaster_pid(j->settings->data_dir, &j->pid) <= 0) {
                log_info("postgres is not running on %s, nothing to stop.", j->settings->data_dir);
                return pgctl_job_finish(j, 0, NULL);
        }
        log_info("Stopping postgres (PID %d, mode %s).", (int)j->pid, pg_stop_mode_to_string(j->stop_mode));
        if (kill(j->pid, signals[j->stop_mode]) < 0 && errno != ESRCH)
                return pgctl_job_finish(j, -errno, "could not signal postgres (PID %d): %m", (int)j->pid);
        j->signalled = true;
        stop_poll(j);
}

static void stop_on_checkpoint(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                log_warning("CHECKPOINT before stopping failed (%s), stopping anyway.", strna(why));
        }
        stop_signal(j);
}

/* Runs CHECKPOINT through psql as the superuser; continues with next(j, result). */
static int job_spawn_checkpoint(PgCtlJob *j, job_proc_fn next) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *host = pgconf_local_host(j->settings), *env_pgpass = NULL;
        int r;

        if (!host)
                return -ENOMEM;
        r = pgctl_local_superuser_env(j, host, &env_pgpass);
        if (r < 0)
                return r;
        r = pgctl_psql_argv(j->settings, host, &argv);
        if (r < 0)
                return r;
        if (proc_strv_push(&argv, "--command=CHECKPOINT") < 0)
                return -ENOMEM;
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c statement_timeout=0", NULL};
        return pgctl_job_spawn(j, argv, env, j->settings->pg_ctl_timeout ?: 60 * USEC_PER_SEC, next);
}

static void stop_first(PgCtlJob *j) {
        if (j->checkpoint && j->stop_mode != PG_STOP_IMMEDIATE &&
            pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0) {
                JOB_TRY(j, job_spawn_checkpoint(j, stop_on_checkpoint), "could not run CHECKPOINT");
                return;
        }
        stop_signal(j);
}

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
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r;

        if (mode < 0 || mode >= _PG_STOP_MODE_MAX)
                return -EINVAL;
        r = pgctl_job_new(e, s, PGCTL_STOP, cb, userdata, &j);
        if (r < 0)
                return r;
        j->stop_mode = mode;
        j->checkpoint = checkpoint;
        return pgctl_job_start(j, stop_first, ret);
}

/* checkpoint. */

static void checkpoint_first(PgCtlJob *j) {
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0)
                return pgctl_job_finish(j, -ESRCH, "postgres is not running on %s", j->settings->data_dir);
        JOB_TRY(j, job_spawn_checkpoint(j, pgctl_finish_with_result), "could not run CHECKPOINT");
}

/* pgctl_checkpoint() - CHECKPOINT on the local server as the superuser (e.g. right after promotion, so
 * pg_control shows the new timeline before others pg_rewind from us). */
int pgctl_checkpoint(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_CHECKPOINT, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, checkpoint_first, ret);
}

/* Composite jobs (restart here, bootstrap in pgctl_bootstrap.c) run a sub-job and continue. */

static void on_sub_done(PgCtlJob *sub, int r, const char *error, void *userdata) {
        PgCtlJob *j = userdata;
        job_sub_fn next = j->sub_next;
        _cleanup_free_ char *err = error ? strdup(error) : NULL;

        if (sub->signalled)
                j->signalled = true;
        j->sub_next = NULL;
        j->sub = pgctl_job_free(j->sub);
        next(j, r, err);
}

int pgctl_job_run_sub(
        PgCtlJob *j,
        int (*ctor)(sd_event *, const PgSettings *, const PgParams *, pgctl_handler_t, void *, PgCtlJob **),
        const PgParams *recovery,
        job_sub_fn next) {
        int r = ctor(j->event, j->settings, recovery, on_sub_done, j, &j->sub);
        if (r >= 0)
                j->sub_next = next;
        return r;
}

static void restart_on_started(PgCtlJob *j, int r, const char *error) {
        pgctl_job_finish(j, r, "%s", strna(error));
}

static void restart_on_stopped(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return pgctl_job_finish(j, r, "%s", strna(error));
        JOB_TRY(j,
                pgctl_job_run_sub(j, pgctl_start, j->has_recovery ? &j->recovery : NULL, restart_on_started),
                "could not start postgres");
}

static int stop_fast_ctor(
        sd_event *e,
        const PgSettings *s,
        const PgParams *unused,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        return pgctl_stop(e, s, PG_STOP_FAST, /* checkpoint= */ true, cb, userdata, ret);
}

static void restart_first(PgCtlJob *j) {
        JOB_TRY(j,
                pgctl_job_run_sub(j, stop_fast_ctor, NULL, restart_on_stopped),
                "could not stop postgres");
}

/* pgctl_restart() - CHECKPOINT, fast stop, then start with recovery (NULL = primary). */
int pgctl_restart(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_RESTART, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return pgctl_job_start(j, restart_first, ret);
}

/* reload. */

void pgctl_finish_with_result(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return pgctl_job_finish(j, 0, NULL);
        why = pgctl_result_reason(r);
        pgctl_job_finish(j, -EIO, "%s", strna(why));
}

static void reload_on_describe(PgCtlJob *j, const ProcResult *r) {
        PgSettings eff = *j->settings; /* shallow copy with the effective parameters, see start_spawn() */
        _cleanup_(pg_params_done) PgParams merged = {};
        _cleanup_free_ char *bin = pgconf_bin(&eff, "pg_ctl");
        char *argv[] = {bin, (char *)"reload", (char *)"-D", eff.data_dir, NULL};

        if (!bin)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, job_store_gucs(j, r), "out of memory");
        JOB_TRY(j, job_effective_parameters(j, &merged), "out of memory");
        eff.parameters = merged;
        /* Only the configuration files: signal files of a running server are not touched. */
        JOB_TRY(j,
                pgconf_write_config(&eff, j->has_recovery ? &j->recovery : NULL),
                "could not write configuration");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, pgctl_finish_with_result),
                "could not run pg_ctl");
}

static void reload_first(PgCtlJob *j) {
        JOB_TRY(j,
                job_spawn_describe_config(j, reload_on_describe),
                "could not run postgres --describe-config");
}

/* pgctl_reload() - rewrites the managed files (recovery as for pgctl_start) and runs pg_ctl reload. */
int pgctl_reload(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_RELOAD, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return pgctl_job_start(j, reload_first, ret);
}

/* promote. */

static void promote_poll(PgCtlJob *j);

static void promote_on_controldata(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *state =
                proc_result_ok(r) ? pgctl_controldata_get(r->out, "Database cluster state") : NULL;
        if (state && streq(state, "in production"))
                return pgctl_job_finish(j, 0, NULL);
        if (pgctl_job_past_deadline(j))
                return pgctl_job_finish(
                        j, -ETIMEDOUT, "postgres did not leave recovery in time (state: %s)", strna(state));
        JOB_TRY(j, pgctl_job_after(j, pgctl_poll_backoff(j), promote_poll), "could not arm timer");
}

static void promote_poll(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0) {
                _cleanup_free_ char *why = pgctl_postmaster_log_reason(j->settings);
                return pgctl_job_finish(
                        j, -ESRCH, "postgres exited during promotion%s%s", why ? ": " : "", strempty(why));
        }
        JOB_TRY(j, pgctl_controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(
                        j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, promote_on_controldata),
                "could not run pg_controldata");
}

static void promote_on_pg_ctl(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = pgctl_result_reason(r);
                return pgctl_job_finish(j, -EIO, "pg_ctl promote failed: %s", strna(why));
        }
        promote_poll(j);
}

static void promote_run(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *bin = pgconf_bin(s, "pg_ctl");
        char *argv[] = {bin, (char *)"promote", (char *)"-D", s->data_dir, (char *)"-W", NULL};

        if (!bin)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        /* Configuration files are left alone: the startup process removes standby.signal itself and
         * fails the promotion if it is already gone. */
        if (pgctl_postmaster_pid(s->data_dir, NULL) <= 0)
                return pgctl_job_finish(j, -ESRCH, "postgres is not running on %s", s->data_dir);
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, promote_on_pg_ctl),
                "could not run pg_ctl");
}

static void promote_on_pre_promote(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = pgctl_result_reason(r);
                return pgctl_job_finish(
                        j, -ECANCELED, "pre_promote script failed (%s), promotion cancelled", strna(why));
        }
        promote_run(j);
}

static void promote_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;

        if (isempty(j->settings->pre_promote))
                return promote_run(j);
        if (proc_split_command(j->settings->pre_promote, &argv) < 0)
                return pgctl_job_finish(
                        j, -EINVAL, "postgresql.pre_promote: cannot parse '%s'", j->settings->pre_promote);
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT * 6, promote_on_pre_promote),
                "could not run pre_promote");
}

/* pgctl_promote() - runs pre_promote (non-zero exit cancels), removes the recovery section from
 * postgresql.conf, pg_ctl promote -W, then polls pg_controldata until "in production". */
int pgctl_promote(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_PROMOTE, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, promote_first, ret);
}

static int make_tmp(char **field, const char *content) {
        char path[] = "/tmp/pgha-XXXXXX";
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        size_t n = strlen(content);

        if (fd < 0)
                return -errno;
        if (write(fd, content, n) != (ssize_t)n) {
                (void)unlink(path);
                return -EIO;
        }
        if (*field) {
                (void)unlink(*field);
                free(*field);
        }
        *field = strdup(path);
        if (!*field) {
                (void)unlink(path);
                return -ENOMEM;
        }
        return 0;
}

int pgctl_make_tmp_file(PgCtlJob *j, const char *content) {
        return make_tmp(&j->tmp_file, content);
}

/* "PGPASSFILE=<temp file>" with the superuser's line for the local host: the configured pgpass file
 * is left alone because primary_conninfo's passfile= points at it. */
int pgctl_local_superuser_env(PgCtlJob *j, const char *host, char **ret) {
        _cleanup_free_ char *text = pgconf_render_pgpass(host, j->settings->port, &j->settings->superuser);
        int r;

        if (!text)
                return -ENOMEM;
        r = make_tmp(&j->tmp_pgpass, text);
        if (r < 0)
                return r;
        return asprintf(ret, "PGPASSFILE=%s", j->tmp_pgpass) < 0 ? -ENOMEM : 0;
}

/* pgctl_psql_dsn() - the local superuser's connection string (with its libpq keys, as Patroni's
 * local_connect_kwargs: they matter when host is an address rather than a socket directory). */
char *pgctl_psql_dsn(const PgSettings *s, const char *host) {
        _cleanup_(pg_params_done) PgParams p = {};
        if (pgconf_conn_params(&s->superuser, s->database, host, s->port, &p) < 0)
                return NULL;
        return pgconf_format_dsn(&p);
}

int pgctl_psql_argv(const PgSettings *s, const char *host, char ***ret) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "psql"), *dsn = pgctl_psql_dsn(s, host);
        if (!bin || !dsn)
                return -ENOMEM;
        if (proc_strv_push(&argv, bin) < 0 || proc_strv_push(&argv, "-X") < 0 ||
            proc_strv_push(&argv, "-q") < 0 || proc_strv_push(&argv, "-v") < 0 ||
            proc_strv_push(&argv, "ON_ERROR_STOP=1") < 0 || proc_strv_pushf(&argv, "--dbname=%s", dsn) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(argv);
        return 0;
}

/* pg_controldata. */

static void controldata_done(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = pgctl_result_reason(r);
                return pgctl_job_finish(j, -EIO, "pg_controldata failed: %s", strna(why));
        }
        j->output = strdup(r->out);
        if (!j->output)
                return pgctl_job_finish(j, -ENOMEM, "out of memory");
        pgctl_job_finish(j, 0, NULL);
}

static void controldata_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        JOB_TRY(j, pgctl_controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                pgctl_job_spawn(j, argv, pgctl_controldata_env(), PGCTL_TOOL_TIMEOUT, controldata_done),
                "could not run pg_controldata");
}

/* pgctl_controldata() - runs pg_controldata (LANG=C); on success pgctl_job_output() holds its output
 * for pgctl_controldata_get() (state, timeline, checkpoint locations for the rewind decision). */
int pgctl_controldata(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = pgctl_job_new(e, s, PGCTL_CONTROLDATA, cb, userdata, &j);
        if (r < 0)
                return r;
        return pgctl_job_start(j, controldata_first, ret);
}
