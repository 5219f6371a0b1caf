/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL control jobs. A job is a chain of steps written in continuation style: a step either
 * spawns a child (job_spawn(), continuing in the given function with its ProcResult) or arms the job's
 * timer (job_after()), or finishes (job_finish()). Composite jobs (bootstrap, restart) own a sub-job.
 * The postmaster is started detached (double fork, new session, as Patroni does) so it outlives pghad
 * and is never our child; it is found again through postmaster.pid and /proc.
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
#include "pgha/proc.h"

/* How often a waiting job looks at the postmaster (start, stop, promote). Cheap: one /proc read. */
#define PGCTL_POLL_USEC (100 * USEC_PER_MSEC)
/* One pg_isready / pg_controldata / pg_ctl reload run. */
#define PGCTL_TOOL_TIMEOUT (10 * USEC_PER_SEC)
/* pg_basebackup, pg_rewind, custom replica methods and initdb may take long on big clusters; they are
 * still bounded so a hung tool cannot wedge the node forever. */
#define PGCTL_LONG_TIMEOUT (24 * USEC_PER_HOUR)
/* Stop escalation: after SIGQUIT at the stop deadline, SIGKILL this much later. */
#define PGCTL_KILL_GRACE (5 * USEC_PER_SEC)
/* Patroni: 2 base backup attempts, 5 s apart. */
#define PGCTL_BASEBACKUP_ATTEMPTS 2
#define PGCTL_BASEBACKUP_RETRY    (5 * USEC_PER_SEC)
/* Output kept per child stream: postgres --describe-config prints about 50 KiB on PostgreSQL 15;
 * buffers grow only as far as a child actually writes. */
#define PGCTL_OUTPUT_MAX (512U * 1024U)
/* Tail of the postmaster log read to explain a failed start. */
#define PGCTL_LOG_TAIL 8192

typedef enum PgCtlKind {
        PGCTL_INITDB,
        PGCTL_BOOTSTRAP,
        PGCTL_START,
        PGCTL_STOP,
        PGCTL_RESTART,
        PGCTL_RELOAD,
        PGCTL_PROMOTE,
        PGCTL_CREATE_REPLICA,
        PGCTL_REWIND,
        PGCTL_CRASH_RECOVERY,
        PGCTL_REMOVE_DATA_DIR,
        PGCTL_CHECKPOINT,
        PGCTL_CONTROLDATA,
        _PGCTL_KIND_MAX,
} PgCtlKind;

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

const char *pg_stop_mode_to_string(PgStopMode m) {
        return m >= 0 && m < _PG_STOP_MODE_MAX ? pg_stop_mode_table[m] : NULL;
}

PgStopMode pg_stop_mode_from_string(const char *s) {
        for (int i = 0; s && i < _PG_STOP_MODE_MAX; i++)
                if (streq(pg_stop_mode_table[i], s))
                        return (PgStopMode)i;
        return _PG_STOP_MODE_INVALID;
}

typedef void (*job_proc_fn)(PgCtlJob *j, const ProcResult *r);
typedef void (*job_timer_fn)(PgCtlJob *j);
typedef void (*job_sub_fn)(PgCtlJob *j, int r, const char *error);

struct PgCtlJob {
        sd_event *event;
        const PgSettings *settings;
        PgCtlKind kind;
        pgctl_handler_t handler;
        void *userdata;

        Proc *proc;
        job_proc_fn proc_next;
        sd_event_source *timer_source;
        job_timer_fn timer_next;
        PgCtlJob *sub; /* composite jobs: the running part */
        job_sub_fn sub_next;

        usec_t deadline; /* overall, CLOCK_MONOTONIC; 0 = none */
        bool finished;

        /* per-kind state */
        PgParams recovery; /* start/restart/reload */
        bool has_recovery;
        PgStopMode stop_mode;
        pid_t pid; /* postmaster being started or stopped */
        int stop_escalation;
        bool signalled;
        char *host;
        unsigned port;
        bool wipe;
        size_t method_index;
        unsigned attempt;
        const char *method; /* points into settings */
        char *tmp_file;     /* pwfile / SQL script, removed when the job ends */
        char *tmp_pgpass;   /* superuser password file for local connections, likewise */
        PgParams raised;    /* start as replica: parameters raised to pg_controldata's values */
        char *output;       /* controldata: stdout of pg_controldata */
        char *saved_hba;    /* custom bootstrap: the real pg_hba.conf while a temporary trust one is used */
        char *gucs;         /* start: "\n" + postgres --describe-config output, to drop unknown parameters */
        bool checkpoint;    /* stop: CHECKPOINT first */
        job_timer_fn after_stale; /* continuation once a crashed postmaster's lock file is cleared */
        bool crash_recovery_done;
};

static int pg_param_compare_name(const void *a, const void *b) {
        return strcmp(((const PgParam *)a)->name, ((const PgParam *)b)->name);
}

static const char *job_name(const PgCtlJob *j) {
        return pgctl_kind_table[j->kind];
}

const char *pgctl_job_name(const PgCtlJob *j) {
        return j ? job_name(j) : NULL;
}

bool pgctl_job_signalled(const PgCtlJob *j) {
        return j && j->signalled;
}

const char *pgctl_job_method(const PgCtlJob *j) {
        return j ? j->method : NULL;
}

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
static void job_finish(PgCtlJob *j, int r, const char *fmt, ...) _printf_(3, 4);
static void job_finish(PgCtlJob *j, int r, const char *fmt, ...) {
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
        /* j->proc stays valid (with r's buffers) until after next returns or a new job_spawn. */
        next(j, r);
}

/* Spawns argv; continues with next(j, result). Ownership of the previous Proc: freed here, which is
 * safe even from inside its own callback because proc_free() defers to sd-event's dispatch rules. */
static int job_spawn(PgCtlJob *j, char *const *argv, char *const *env, usec_t timeout, job_proc_fn next) {
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

static int job_after(PgCtlJob *j, usec_t delay, job_timer_fn next) {
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

static bool job_past_deadline(PgCtlJob *j) {
        usec_t now = 0;
        (void)sd_event_now(j->event, CLOCK_MONOTONIC, &now);
        return j->deadline > 0 && now >= j->deadline;
}

static int
job_new(sd_event *e,
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
static int job_start(PgCtlJob *j, job_timer_fn first, PgCtlJob **ret) {
        int r = job_after(j, 0, first);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        *ret = j;
        return 0;
}

/* A step failed with an errno from our side (spawn, write, allocation): finish with the message and
 * the errno's text. */
#define JOB_TRY(j, expr, fmt, ...)                                                       \
        do {                                                                             \
                int _r_ = (expr);                                                        \
                if (_r_ < 0) {                                                           \
                        job_finish((j), _r_, fmt ": %s", ##__VA_ARGS__, strerror(-_r_)); \
                        return;                                                          \
                }                                                                        \
        } while (0)

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

static char *result_reason(const ProcResult *r) {
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

/* ==== Postmaster discovery ==== */

static int proc_stat_fields(pid_t pid, char *ret_state, unsigned long long *ret_start_ticks) {
        char path[64];
        _cleanup_free_ char *text = NULL;
        const char *p;
        int r;

        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        r = read_full_file(path, 4096, &text, NULL);
        if (r < 0)
                return r;
        p = strrchr(text, ')'); /* comm may contain spaces and parentheses */
        if (!p)
                return -EIO;
        *ret_state = p[2];
        if (ret_start_ticks) {
                /* Field 22 (starttime); after ") " the state is field 3. */
                p += 2;
                for (int f = 3; f < 22 && p; f++) {
                        p = strchr(p, ' ');
                        if (p)
                                p++;
                }
                if (!p)
                        return -EIO;
                *ret_start_ticks = strtoull(p, NULL, 10);
        }
        return 0;
}

bool pgctl_pid_alive(pid_t pid) {
        char state;
        if (pid <= 0)
                return false;
        if (proc_stat_fields(pid, &state, NULL) < 0)
                return false;
        return state != 'Z' && state != 'X' && state != 'x';
}

static int boot_time(unsigned long long *ret) {
        _cleanup_free_ char *text = NULL;
        const char *p;
        int r = read_full_file("/proc/stat", 1 << 20, &text, NULL);
        if (r < 0)
                return r;
        p = strstr(text, "\nbtime ");
        if (!p)
                return -EIO;
        *ret = strtoull(p + 7, NULL, 10);
        return 0;
}

int pgctl_postmaster_pid(const char *data_dir, pid_t *ret_pid) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        unsigned long long start_ticks, btime, file_start;
        long pid, hz = sysconf(_SC_CLK_TCK);
        char *line3, state;
        int r;

        if (asprintf(&path, "%s/postmaster.pid", data_dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, 4096, &text, NULL);
        if (r == -ENOENT)
                goto not_running;
        if (r < 0)
                return r;
        pid = strtol(text, NULL, 10);
        if (pid <= 0 || pid == getpid() || pid == getppid())
                goto not_running;
        if (proc_stat_fields((pid_t)pid, &state, &start_ticks) < 0 || state == 'Z' || state == 'X' ||
            state == 'x')
                goto not_running;
        /* Line 3 is the postmaster's start time (epoch seconds): a recycled PID fails this check. */
        line3 = strchr(text, '\n');
        if (line3)
                line3 = strchr(line3 + 1, '\n');
        if (line3 && hz > 0 && boot_time(&btime) >= 0) {
                file_start = strtoull(line3 + 1, NULL, 10);
                unsigned long long proc_start = btime + start_ticks / (unsigned long long)hz;
                if (file_start > 0 && (proc_start > file_start + 3 || file_start > proc_start + 3))
                        goto not_running;
        }
        if (ret_pid)
                *ret_pid = (pid_t)pid;
        return 1;

not_running:
        if (ret_pid)
                *ret_pid = 0;
        return 0;
}

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

static char **controldata_env(void) {
        static char *env[] = {(char *)"LANG=C", (char *)"LC_ALL=C", NULL};
        return env;
}

static int controldata_argv(const PgSettings *s, char ***ret) {
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
                return job_finish(j, r, "could not remove a stale lock file: %s", strerror(-r));
        if (r == 0)
                return j->after_stale(j);
        if (job_past_deadline(j))
                return job_finish(
                        j,
                        -EBUSY,
                        "processes of the crashed postmaster (PID %d) are still running",
                        (int)old);
        JOB_TRY(j, job_after(j, PGCTL_POLL_USEC, stale_poll), "could not arm timer");
}

/* Continues with next once no crashed postmaster's processes or lock file stand in the way. */
static void job_wait_stale(PgCtlJob *j, job_timer_fn next) {
        j->after_stale = next;
        stale_poll(j);
}

/* ==== Data directory checks ==== */

static bool dir_is_empty(const char *path) {
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
static int check_parent_dir(const PgSettings *s, char **msg) {
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

static int check_bin(const PgSettings *s, const char *program, char **msg) {
        _cleanup_free_ char *bin = pgconf_bin(s, program);
        if (!bin)
                return -ENOMEM;
        if (!isempty(s->bin_dir) && access(bin, X_OK) < 0) {
                (void)asprintf(msg, "postgresql.bin_dir '%s' has no executable %s", s->bin_dir, program);
                return -ENOENT;
        }
        return 0;
}

static int check_data_dir(const PgSettings *s, char **msg) {
        _cleanup_free_ char *pgv = NULL;
        struct stat st;
        int r;

        r = check_parent_dir(s, msg);
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
        return check_bin(s, "postgres", msg);
}

static char *read_pg_version(const PgSettings *s) {
        _cleanup_free_ char *path = pgdata_path(s, "PG_VERSION"), *text = NULL;
        if (!path || read_full_file(path, 64, &text, NULL) < 0)
                return NULL;
        text[strcspn(text, "\n")] = '\0';
        return TAKE_PTR(text);
}

/* ==== start ==== */

static void start_poll(PgCtlJob *j);

static char *postmaster_log_reason(const PgSettings *s) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        int fd;
        char *best = NULL;

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
        if (!text)
                return NULL;
        /* The last FATAL/PANIC line explains an exit during start-up; for "configuration file ...
         * contains errors" the LOG line naming the parameter, logged just before, says more. */
        _cleanup_free_ char *detail = NULL, *candidate = NULL;
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if (strstr(line, "FATAL:") || strstr(line, "PANIC:")) {
                        free(best);
                        best = strdup(line);
                        free(detail);
                        detail = TAKE_PTR(candidate);
                } else if (strstr(line, "parameter") && (strstr(line, "LOG:") || strstr(line, "ERROR:"))) {
                        free(candidate);
                        candidate = strdup(line);
                }
                line = nl ? nl + 1 : NULL;
        }
        if (best && detail) {
                char *both = NULL;
                if (asprintf(&both, "%s; %s", detail, best) >= 0) {
                        free(best);
                        best = both;
                }
        }
        return best;
}

static void start_succeeded(PgCtlJob *j) {
        int r = pgconf_backup_files(j->settings);
        if (r < 0)
                log_warning_errno(r, "Failed to back up configuration files, ignoring: %m");
        job_finish(j, 0, NULL);
}

static void start_on_isready(PgCtlJob *j, const ProcResult *r) {
        if (r->signal == 0 && r->exit_code == 0)
                return start_succeeded(j);
        if (r->signal == 0 && r->exit_code == 3) {
                log_warning(
                        "pg_isready could not tell whether postgres accepts connections, assuming it does.");
                return start_succeeded(j);
        }
        JOB_TRY(j, job_after(j, PGCTL_POLL_USEC, start_poll), "could not arm timer");
}

static void start_poll(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "pg_isready"), *host = pgconf_local_host(s);

        if (!pgctl_pid_alive(j->pid)) {
                _cleanup_free_ char *why = postmaster_log_reason(s);
                return job_finish(
                        j,
                        -ESRCH,
                        "postgres (PID %d) exited during start-up%s%s",
                        (int)j->pid,
                        why ? ": " : "",
                        strempty(why));
        }
        if (job_past_deadline(j))
                return job_finish(
                        j,
                        -ETIMEDOUT,
                        "postgres did not accept connections within %llu s",
                        (unsigned long long)(s->pg_ctl_timeout / USEC_PER_SEC));
        if (!bin || !host)
                return job_finish(j, -ENOMEM, "out of memory");
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
                job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, start_on_isready),
                "could not run pg_isready");
}

static void start_on_spawned(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r))
                return job_finish(j, -ECHILD, "could not start postgres: %s", strempty(r->err));
        j->pid = (pid_t)strtol(r->out, NULL, 10);
        if (j->pid <= 0)
                return job_finish(j, -EIO, "could not start postgres: no PID reported");
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
        return job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, next);
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
                        return job_finish(
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
        job_wait_stale(j, start_spawn);
}

static void start_on_describe(PgCtlJob *j, const ProcResult *r);

static void start_on_version(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *data_version = read_pg_version(s);
        const char *v;
        char bin_major[16] = "";

        if (!proc_result_ok(r))
                return job_finish(
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
                return job_finish(
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
                        return job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j,
                        job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, start_on_describe),
                        "could not run postgres --describe-config");
        }
}

static void start_on_describe(PgCtlJob *j, const ProcResult *r) {
        const PgSettings *s = j->settings;

        JOB_TRY(j, job_store_gucs(j, r), "out of memory");
        if (j->has_recovery) {
                _cleanup_(proc_strv_freep) char **argv = NULL;
                JOB_TRY(j, controldata_argv(s, &argv), "out of memory");
                JOB_TRY(j,
                        job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, start_on_controldata),
                        "could not run pg_controldata");
                return;
        }
        job_wait_stale(j, start_spawn);
}

static void start_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *msg = NULL, *bin = pgconf_bin(s, "postgres");
        char *argv[] = {bin, (char *)"-V", NULL};
        pid_t pid;
        int r;

        r = check_data_dir(s, &msg);
        if (r < 0)
                return job_finish(j, r, "%s", strna(msg));
        if (pgctl_postmaster_pid(s->data_dir, &pid) > 0) {
                log_info("postgres is already running on %s (PID %d).", s->data_dir, (int)pid);
                j->pid = pid;
                return job_finish(j, 0, NULL);
        }
        if (!bin)
                return job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j,
                job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, start_on_version),
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

int pgctl_start(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_START, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return job_start(j, start_first, ret);
}

static void finish_with_result(PgCtlJob *j, const ProcResult *r);

/* ==== stop ==== */

static void stop_poll(PgCtlJob *j) {
        if (!pgctl_pid_alive(j->pid))
                return job_finish(j, 0, NULL);
        if (job_past_deadline(j)) {
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
                        return job_finish(j, -ETIMEDOUT, "postgres (PID %d) survived SIGKILL", (int)j->pid);
                j->stop_escalation++;
                j->deadline += PGCTL_KILL_GRACE;
        }
        JOB_TRY(j, job_after(j, PGCTL_POLL_USEC / 2, stop_poll), "could not arm timer");
}

static void stop_signal(PgCtlJob *j) {
        static const int signals[_PG_STOP_MODE_MAX] = {
                [PG_STOP_SMART] = SIGTERM,
                [PG_STOP_FAST] = SIGINT,
                [PG_STOP_IMMEDIATE] = SIGQUIT,
        };

        if (pgctl_postmaster_pid(j->settings->data_dir, &j->pid) <= 0) {
                log_info("postgres is not running on %s, nothing to stop.", j->settings->data_dir);
                return job_finish(j, 0, NULL);
        }
        log_info("Stopping postgres (PID %d, mode %s).", (int)j->pid, pg_stop_mode_to_string(j->stop_mode));
        if (kill(j->pid, signals[j->stop_mode]) < 0 && errno != ESRCH)
                return job_finish(j, -errno, "could not signal postgres (PID %d): %m", (int)j->pid);
        j->signalled = true;
        stop_poll(j);
}

static void stop_on_checkpoint(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = result_reason(r);
                log_warning("CHECKPOINT before stopping failed (%s), stopping anyway.", strna(why));
        }
        stop_signal(j);
}

static int psql_argv(const PgSettings *s, const char *host, char ***ret);
static int local_superuser_env(PgCtlJob *j, const char *host, char **ret);

/* Runs CHECKPOINT through psql as the superuser; continues with next(j, result). */
static int job_spawn_checkpoint(PgCtlJob *j, job_proc_fn next) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *host = pgconf_local_host(j->settings), *env_pgpass = NULL;
        int r;

        if (!host)
                return -ENOMEM;
        r = local_superuser_env(j, host, &env_pgpass);
        if (r < 0)
                return r;
        r = psql_argv(j->settings, host, &argv);
        if (r < 0)
                return r;
        if (proc_strv_push(&argv, "--command=CHECKPOINT") < 0)
                return -ENOMEM;
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c statement_timeout=0", NULL};
        return job_spawn(j, argv, env, j->settings->pg_ctl_timeout ?: 60 * USEC_PER_SEC, next);
}

static void stop_first(PgCtlJob *j) {
        if (j->checkpoint && j->stop_mode != PG_STOP_IMMEDIATE &&
            pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0) {
                JOB_TRY(j, job_spawn_checkpoint(j, stop_on_checkpoint), "could not run CHECKPOINT");
                return;
        }
        stop_signal(j);
}

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
        r = job_new(e, s, PGCTL_STOP, cb, userdata, &j);
        if (r < 0)
                return r;
        j->stop_mode = mode;
        j->checkpoint = checkpoint;
        return job_start(j, stop_first, ret);
}

/* ==== checkpoint ==== */

static void checkpoint_first(PgCtlJob *j) {
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0)
                return job_finish(j, -ESRCH, "postgres is not running on %s", j->settings->data_dir);
        JOB_TRY(j, job_spawn_checkpoint(j, finish_with_result), "could not run CHECKPOINT");
}

int pgctl_checkpoint(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_CHECKPOINT, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, checkpoint_first, ret);
}

/* ==== composite jobs: restart, bootstrap ==== */

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

static int job_run_sub(
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
        job_finish(j, r, "%s", strna(error));
}

static void restart_on_stopped(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return job_finish(j, r, "%s", strna(error));
        JOB_TRY(j,
                job_run_sub(j, pgctl_start, j->has_recovery ? &j->recovery : NULL, restart_on_started),
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
        JOB_TRY(j, job_run_sub(j, stop_fast_ctor, NULL, restart_on_stopped), "could not stop postgres");
}

int pgctl_restart(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_RESTART, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return job_start(j, restart_first, ret);
}

/* ==== reload ==== */

static void finish_with_result(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return job_finish(j, 0, NULL);
        why = result_reason(r);
        job_finish(j, -EIO, "%s", strna(why));
}

static void reload_on_describe(PgCtlJob *j, const ProcResult *r) {
        PgSettings eff = *j->settings; /* shallow copy with the effective parameters, see start_spawn() */
        _cleanup_(pg_params_done) PgParams merged = {};
        _cleanup_free_ char *bin = pgconf_bin(&eff, "pg_ctl");
        char *argv[] = {bin, (char *)"reload", (char *)"-D", eff.data_dir, NULL};

        if (!bin)
                return job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, job_store_gucs(j, r), "out of memory");
        JOB_TRY(j, job_effective_parameters(j, &merged), "out of memory");
        eff.parameters = merged;
        /* Only the configuration files: signal files of a running server are not touched. */
        JOB_TRY(j,
                pgconf_write_config(&eff, j->has_recovery ? &j->recovery : NULL),
                "could not write configuration");
        JOB_TRY(j, job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, finish_with_result), "could not run pg_ctl");
}

static void reload_first(PgCtlJob *j) {
        JOB_TRY(j,
                job_spawn_describe_config(j, reload_on_describe),
                "could not run postgres --describe-config");
}

int pgctl_reload(
        sd_event *e,
        const PgSettings *s,
        const PgParams *recovery,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_RELOAD, cb, userdata, &j);
        if (r < 0)
                return r;
        r = copy_recovery(j, recovery);
        if (r < 0) {
                pgctl_job_free(j);
                return r;
        }
        return job_start(j, reload_first, ret);
}

/* ==== promote ==== */

static void promote_poll(PgCtlJob *j);

static void promote_on_controldata(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *state =
                proc_result_ok(r) ? pgctl_controldata_get(r->out, "Database cluster state") : NULL;
        if (state && streq(state, "in production"))
                return job_finish(j, 0, NULL);
        if (job_past_deadline(j))
                return job_finish(
                        j, -ETIMEDOUT, "postgres did not leave recovery in time (state: %s)", strna(state));
        JOB_TRY(j, job_after(j, PGCTL_POLL_USEC * 2, promote_poll), "could not arm timer");
}

static void promote_poll(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0) {
                _cleanup_free_ char *why = postmaster_log_reason(j->settings);
                return job_finish(
                        j, -ESRCH, "postgres exited during promotion%s%s", why ? ": " : "", strempty(why));
        }
        JOB_TRY(j, controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, promote_on_controldata),
                "could not run pg_controldata");
}

static void promote_on_pg_ctl(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = result_reason(r);
                return job_finish(j, -EIO, "pg_ctl promote failed: %s", strna(why));
        }
        promote_poll(j);
}

static void promote_run(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *bin = pgconf_bin(s, "pg_ctl");
        char *argv[] = {bin, (char *)"promote", (char *)"-D", s->data_dir, (char *)"-W", NULL};

        if (!bin)
                return job_finish(j, -ENOMEM, "out of memory");
        /* Configuration files are left alone: the startup process removes standby.signal itself and
         * fails the promotion if it is already gone. */
        if (pgctl_postmaster_pid(s->data_dir, NULL) <= 0)
                return job_finish(j, -ESRCH, "postgres is not running on %s", s->data_dir);
        JOB_TRY(j, job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, promote_on_pg_ctl), "could not run pg_ctl");
}

static void promote_on_pre_promote(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = result_reason(r);
                return job_finish(
                        j, -ECANCELED, "pre_promote script failed (%s), promotion cancelled", strna(why));
        }
        promote_run(j);
}

static void promote_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;

        if (isempty(j->settings->pre_promote))
                return promote_run(j);
        if (proc_split_command(j->settings->pre_promote, &argv) < 0)
                return job_finish(
                        j, -EINVAL, "postgresql.pre_promote: cannot parse '%s'", j->settings->pre_promote);
        JOB_TRY(j,
                job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT * 6, promote_on_pre_promote),
                "could not run pre_promote");
}

int pgctl_promote(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_PROMOTE, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, promote_first, ret);
}

/* ==== initdb and bootstrap ==== */

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

static int make_tmp_file(PgCtlJob *j, const char *content) {
        return make_tmp(&j->tmp_file, content);
}

/* "PGPASSFILE=<temp file>" with the superuser's line for the local host: the configured pgpass file
 * is left alone because primary_conninfo's passfile= points at it. */
static int local_superuser_env(PgCtlJob *j, const char *host, char **ret) {
        _cleanup_free_ char *text = pgconf_render_pgpass(host, j->settings->port, &j->settings->superuser);
        int r;

        if (!text)
                return -ENOMEM;
        r = make_tmp(&j->tmp_pgpass, text);
        if (r < 0)
                return r;
        return asprintf(ret, "PGPASSFILE=%s", j->tmp_pgpass) < 0 ? -ENOMEM : 0;
}

static void initdb_done(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return job_finish(j, 0, NULL);
        why = result_reason(r);
        job_finish(j, -EIO, "initdb failed: %s", strna(why));
}

static void initdb_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "initdb"), *msg = NULL, *pw = NULL;
        int r;

        r = check_parent_dir(s, &msg);
        if (r >= 0)
                r = check_bin(s, "initdb", &msg);
        if (r < 0)
                return job_finish(j, r, "%s", strna(msg));
        if (!dir_is_empty(s->data_dir))
                return job_finish(
                        j,
                        -EEXIST,
                        "data directory '%s' exists and is not empty, refusing to initdb",
                        s->data_dir);
        if (!bin)
                return job_finish(j, -ENOMEM, "out of memory");
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
                        return job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j, make_tmp_file(j, pw), "could not write the password file");
                JOB_TRY(j, proc_strv_pushf(&argv, "--pwfile=%s", j->tmp_file), "out of memory");
        }
        JOB_TRY(j, job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, initdb_done), "could not run initdb");
}

int pgctl_initdb(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_INITDB, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, initdb_first, ret);
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

static int psql_argv(const PgSettings *s, const char *host, char ***ret) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *bin = pgconf_bin(s, "psql");
        if (!bin)
                return -ENOMEM;
        if (proc_strv_push(&argv, bin) < 0 || proc_strv_push(&argv, "-X") < 0 ||
            proc_strv_push(&argv, "-q") < 0 || proc_strv_push(&argv, "-v") < 0 ||
            proc_strv_push(&argv, "ON_ERROR_STOP=1") < 0 || proc_strv_pushf(&argv, "--host=%s", host) < 0 ||
            proc_strv_pushf(&argv, "--port=%u", s->port) < 0 ||
            proc_strv_pushf(&argv, "--username=%s", s->superuser.username) < 0 ||
            proc_strv_pushf(&argv, "--dbname=%s", s->database) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(argv);
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
                return job_finish(j, -ENOMEM, "out of memory");
        r = bootstrap_sql(s, j->attempt, &sql);
        if (r == -EINVAL)
                return job_finish(j, r, "bootstrap.users: invalid role option");
        JOB_TRY(j, r, "out of memory");
        JOB_TRY(j, make_tmp_file(j, sql), "could not write the bootstrap SQL file");
        JOB_TRY(j, local_superuser_env(j, host, &env_pgpass), "could not write a password file");
        JOB_TRY(j, psql_argv(s, host, &argv), "out of memory");
        JOB_TRY(j, proc_strv_pushf(&argv, "--file=%s", j->tmp_file), "out of memory");
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c synchronous_commit=local", NULL};
        JOB_TRY(j, job_spawn(j, argv, env, PGCTL_TOOL_TIMEOUT * 6, bootstrap_on_sql), "could not run psql");
}

static void bootstrap_on_post_bootstrap(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = result_reason(r);
                return job_finish(j, -EIO, "bootstrap.post_bootstrap script failed: %s", strna(why));
        }
        j->attempt = 1;
        bootstrap_run_sql(j);
}

/* post_bootstrap gets the local superuser DSN (no password; PGPASSFILE has it) as last argument. */
static void bootstrap_run_post_bootstrap(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_(pg_params_done) PgParams p = {};
        _cleanup_free_ char *host = pgconf_local_host(s), *env_pgpass = NULL, *dsn = NULL;
        char port[16];

        if (!host)
                return job_finish(j, -ENOMEM, "out of memory");
        if (proc_split_command(s->post_bootstrap, &argv) < 0)
                return job_finish(
                        j, -EINVAL, "bootstrap.post_bootstrap: cannot parse '%s'", s->post_bootstrap);
        (void)snprintf(port, sizeof(port), "%u", s->port);
        if (pg_params_set(&p, "dbname", s->database) < 0 ||
            pg_params_set(&p, "user", s->superuser.username) < 0 || pg_params_set(&p, "host", host) < 0 ||
            pg_params_set(&p, "port", port) < 0 || !(dsn = pgconf_format_dsn(&p)) ||
            proc_strv_push(&argv, dsn) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, local_superuser_env(j, host, &env_pgpass), "could not write a password file");
        char *env[] = {env_pgpass, (char *)"PGOPTIONS=-c synchronous_commit=local", NULL};
        log_info("Running post_bootstrap script.");
        JOB_TRY(j,
                job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, bootstrap_on_post_bootstrap),
                "could not run bootstrap.post_bootstrap");
}

static void bootstrap_on_sql(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = result_reason(r);
                return job_finish(j, -EIO, "creating bootstrap users failed: %s", strna(why));
        }
        if (j->attempt == 1)
                return j->settings->custom_bootstrap.name ? custom_finish(j) : job_finish(j, 0, NULL);
        if (!isempty(j->settings->post_bootstrap))
                return bootstrap_run_post_bootstrap(j);
        j->attempt = 1;
        bootstrap_run_sql(j);
}

static void bootstrap_on_started(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return job_finish(j, r, "%s", strna(error));
        j->attempt = 0; /* SQL part */
        bootstrap_run_sql(j);
}

static void bootstrap_on_initdb(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return job_finish(j, r, "%s", strna(error));
        JOB_TRY(j,
                pgconf_append_bootstrap_hba(j->settings),
                "could not append bootstrap.pg_hba to pg_hba.conf");
        /* The start deadline counts from now, not from initdb's start. */
        JOB_TRY(j, job_run_sub(j, pgctl_start, NULL, bootstrap_on_started), "could not start postgres");
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
                _cleanup_free_ char *why = result_reason(r);
                return job_finish(j, -EIO, "pg_ctl reload after custom bootstrap failed: %s", strna(why));
        }
        job_finish(j, 0, NULL);
}

static void custom_finish(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        _cleanup_free_ char *hba = pgconf_path(s, "pg_hba.conf"), *bin = pgconf_bin(s, "pg_ctl"),
                            *standby = pgdata_path(s, "standby.signal"),
                            *recovery = pgdata_path(s, "recovery.signal");
        char *argv[] = {bin, (char *)"reload", (char *)"-D", s->data_dir, NULL};

        if (!hba || !bin || !standby || !recovery)
                return job_finish(j, -ENOMEM, "out of memory");
        if (j->saved_hba && rename(j->saved_hba, hba) < 0)
                return job_finish(j, -errno, "could not restore %s: %m", hba);
        j->saved_hba = mfree(j->saved_hba);
        (void)unlink(standby);
        (void)unlink(recovery);
        /* Writes a managed pg_hba.conf too, when configured. */
        JOB_TRY(j, pgconf_write_config(s, NULL), "could not write configuration");
        JOB_TRY(j, job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, custom_on_reload), "could not run pg_ctl");
}

static void custom_poll_recovery(PgCtlJob *j);

static void custom_on_recovery_state(PgCtlJob *j, const ProcResult *r) {
        if (proc_result_ok(r) && startswith(r->out, "f")) {
                log_info("Recovery after the custom bootstrap has ended.");
                j->attempt = 0;
                return bootstrap_run_sql(j);
        }
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) <= 0) {
                _cleanup_free_ char *why = postmaster_log_reason(j->settings);
                return job_finish(
                        j,
                        -ESRCH,
                        "postgres exited during recovery after the custom bootstrap%s%s",
                        why ? ": " : "",
                        strempty(why));
        }
        JOB_TRY(j, job_after(j, 5 * PGCTL_POLL_USEC, custom_poll_recovery), "could not arm timer");
}

static void custom_poll_recovery(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *host = pgconf_local_host(j->settings);

        if (!host)
                return job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, psql_argv(j->settings, host, &argv), "out of memory");
        JOB_TRY(j, proc_strv_push(&argv, "-At") < 0 ? -ENOMEM : 0, "out of memory");
        JOB_TRY(j,
                proc_strv_push(&argv, "--command=SELECT pg_catalog.pg_is_in_recovery()") < 0 ? -ENOMEM : 0,
                "out of memory");
        JOB_TRY(j,
                job_spawn(j, argv, NULL, PGCTL_TOOL_TIMEOUT, custom_on_recovery_state),
                "could not run psql");
}

static void custom_on_started(PgCtlJob *j, int r, const char *error) {
        if (r < 0)
                return job_finish(j, r, "%s", strna(error));
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
                _cleanup_free_ char *why = result_reason(r);
                return job_finish(j, -EIO, "custom bootstrap script %s failed: %s", cb->name, strna(why));
        }
        if (!hba || !promote)
                return job_finish(j, -ENOMEM, "out of memory");
        k = pgconf_restore_files(s);
        if (k < 0)
                log_warning_errno(k, "Failed to restore configuration files from backups, ignoring: %m");
        /* A leftover trigger file would promote the server before recovery reached its target. */
        (void)unlink(promote);

        /* Temporary trust for the superuser on the local socket and loopback. */
        if (asprintf(&j->saved_hba, "%s.pgha-bootstrap", hba) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        if (rename(hba, j->saved_hba) < 0) {
                if (errno != ENOENT)
                        return job_finish(j, -errno, "could not move %s aside: %m", hba);
                j->saved_hba = mfree(j->saved_hba);
        }
        if (asprintf(
                    &text,
                    "local all %s trust\nhost all %s 127.0.0.1/32 trust\nhost all %s ::1/128 trust\n",
                    su,
                    su,
                    su) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
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
                qsort(recovery.items, recovery.n, sizeof(PgParam), pg_param_compare_name);
        }
        JOB_TRY(j,
                job_run_sub(j, pgctl_start, cb->has_recovery_conf ? &recovery : NULL, custom_on_started),
                "could not start postgres");
}

static void custom_first(PgCtlJob *j) {
        const PgSettings *s = j->settings;
        const PgCustomBootstrap *cb = &s->custom_bootstrap;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *msg = NULL;
        int r;

        r = check_parent_dir(s, &msg);
        if (r < 0)
                return job_finish(j, r, "%s", strna(msg));
        if (!dir_is_empty(s->data_dir))
                return job_finish(
                        j,
                        -EEXIST,
                        "data directory '%s' exists and is not empty, refusing to bootstrap",
                        s->data_dir);
        if (proc_split_command(cb->command, &argv) < 0)
                return job_finish(
                        j, -EINVAL, "bootstrap.%s.command: cannot parse '%s'", cb->name, cb->command);
        if (!cb->no_params &&
            (proc_strv_pushf(&argv, "--scope=%s", s->scope) < 0 ||
             proc_strv_pushf(&argv, "--datadir=%s", s->data_dir) < 0))
                return job_finish(j, -ENOMEM, "out of memory");
        log_info("Running custom bootstrap script: %s", cb->command);
        JOB_TRY(j,
                job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, custom_on_command),
                "could not run %s",
                cb->name);
}

static void bootstrap_first(PgCtlJob *j) {
        if (j->settings->custom_bootstrap.name)
                return custom_first(j);
        JOB_TRY(j, job_run_sub(j, initdb_ctor, NULL, bootstrap_on_initdb), "could not run initdb");
}

int pgctl_bootstrap(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_BOOTSTRAP, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0; /* the parts have their own */
        return job_start(j, bootstrap_first, ret);
}

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
                return job_finish(
                        j,
                        -EBUSY,
                        "refusing to remove data directory '%s' while postgres runs on it",
                        j->settings->data_dir);
        log_warning("Removing data directory '%s'.", j->settings->data_dir);
        JOB_TRY(j, rm_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j, job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, finish_with_result), "could not run rm");
}

int pgctl_remove_data_dir(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_REMOVE_DATA_DIR, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, remove_first, ret);
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

static char *replica_dsn(const PgCtlJob *j) {
        _cleanup_(pg_params_done) PgParams p = {};
        char port[16];
        (void)snprintf(port, sizeof(port), "%u", j->port);
        if (pg_params_set(&p, "dbname", j->settings->database) < 0 ||
            pg_params_set(&p, "user", j->settings->replication.username) < 0 ||
            pg_params_set(&p, "host", j->host) < 0 || pg_params_set(&p, "port", port) < 0)
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
                return job_finish(j, 0, NULL);
        }
        why = result_reason(r);
        log_error("Replica creation method %s failed (attempt %u): %s", m->name, j->attempt, strna(why));
        if (streq(m->name, "basebackup") && j->attempt < PGCTL_BASEBACKUP_ATTEMPTS) {
                JOB_TRY(j, job_after(j, PGCTL_BASEBACKUP_RETRY, replica_next_method), "could not arm timer");
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
                        return job_finish(j, -ENOMEM, "out of memory");
                JOB_TRY(j,
                        pgconf_write_pgpass(s, j->host, j->port, &s->replication),
                        "could not write pgpass file");
        }
        if (asprintf(&env_pgpass, "PGPASSFILE=%s", s->pgpass) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        char *env[] = {env_pgpass, NULL};

        if (streq(m->name, "basebackup")) {
                _cleanup_free_ char *bin = pgconf_bin(s, "pg_basebackup");
                if (!bin)
                        return job_finish(j, -ENOMEM, "out of memory");
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
                        job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, replica_on_method),
                        "could not run pg_basebackup");
                return;
        }

        r = proc_split_command(m->command, &argv);
        if (r < 0)
                return job_finish(j, r, "postgresql.%s.command: cannot parse '%s'", m->name, m->command);
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
                        return job_finish(j, -ENOMEM, "out of memory");
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
                job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, replica_on_method),
                "could not run %s",
                m->name);
}

static void replica_on_wiped(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = result_reason(r);
                return job_finish(
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
                        return job_finish(
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
        if (!m->keep_data && !dir_is_empty(s->data_dir)) {
                _cleanup_(proc_strv_freep) char **argv = NULL;
                if (!j->wipe)
                        return job_finish(
                                j,
                                -EEXIST,
                                "data directory '%s' is not empty; refusing to overwrite it without a "
                                "reinitialisation request",
                                s->data_dir);
                log_warning("Removing data directory '%s' before creating the replica.", s->data_dir);
                JOB_TRY(j, rm_argv(s, &argv), "out of memory");
                JOB_TRY(j,
                        job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, replica_on_wiped),
                        "could not run rm");
                return;
        }
        replica_run(j);
}

static void replica_first(PgCtlJob *j) {
        _cleanup_free_ char *msg = NULL;
        int r = check_parent_dir(j->settings, &msg);
        if (r < 0)
                return job_finish(j, r, "%s", strna(msg));
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                return job_finish(
                        j,
                        -EBUSY,
                        "postgres is running on '%s'; stop it before creating a replica",
                        j->settings->data_dir);
        replica_next_method(j);
}

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
        int r = job_new(e, s, PGCTL_CREATE_REPLICA, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0;
        j->wipe = wipe;
        j->port = port;
        if (host && !(j->host = strdup(host))) {
                pgctl_job_free(j);
                return -ENOMEM;
        }
        return job_start(j, replica_first, ret);
}

/* ==== crash recovery and rewind ==== */

static void crash_recovery_done(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return job_finish(j, 0, NULL);
        why = result_reason(r);
        job_finish(j, -EIO, "single-user crash recovery failed: %s", strna(why));
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
        return job_spawn(j, argv, NULL, PGCTL_LONG_TIMEOUT, next);
}

static void crash_recovery_run(PgCtlJob *j) {
        JOB_TRY(j, crash_recovery_spawn(j, crash_recovery_done), "could not run postgres --single");
}

static void crash_recovery_first(PgCtlJob *j) {
        if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                return job_finish(j, -EBUSY, "postgres is running on '%s'", j->settings->data_dir);
        job_wait_stale(j, crash_recovery_run);
}

int pgctl_crash_recovery(
        sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_CRASH_RECOVERY, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, crash_recovery_first, ret);
}

static void rewind_first(PgCtlJob *j);

static void rewind_on_pg_rewind(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (proc_result_ok(r))
                return job_finish(j, 0, NULL);
        why = result_reason(r);
        job_finish(j, -EIO, "pg_rewind failed: %s", strna(why));
}

static void rewind_on_crash_recovery(PgCtlJob *j, const ProcResult *r) {
        _cleanup_free_ char *why = NULL;
        if (!proc_result_ok(r)) {
                why = result_reason(r);
                return job_finish(
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
        char port[16];

        if (!proc_result_ok(r)) {
                why = result_reason(r);
                return job_finish(j, -EIO, "pg_controldata failed: %s", strna(why));
        }
        state = pgctl_controldata_get(r->out, "Database cluster state");
        hints = pgctl_controldata_get(r->out, "wal_log_hints setting");
        checksums = pgctl_controldata_get(r->out, "Data page checksum version");
        if (!streq_ptr(hints, "on") && streq_ptr(checksums, "0"))
                return job_finish(
                        j,
                        -EOPNOTSUPP,
                        "pg_rewind is not possible on '%s': neither data checksums nor wal_log_hints are "
                        "enabled",
                        s->data_dir);
        if (!streq_ptr(state, "shut down") && !streq_ptr(state, "shut down in recovery")) {
                if (j->crash_recovery_done)
                        return job_finish(
                                j,
                                -EIO,
                                "pg_control state is still '%s' after crash recovery",
                                strna(state));
                log_info("pg_control state is '%s', running crash recovery before pg_rewind.", strna(state));
                j->deadline = now_plus_timeout(j);
                return job_wait_stale(j, rewind_crash_recovery_run);
        }

        (void)snprintf(port, sizeof(port), "%u", j->port);
        if (pg_params_set(&p, "dbname", s->database) < 0 || pg_params_set(&p, "user", auth->username) < 0 ||
            pg_params_set(&p, "host", j->host) < 0 || pg_params_set(&p, "port", port) < 0 ||
            pg_params_set(&p, "target_session_attrs", "read-write") < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        dsn = pgconf_format_dsn(&p);
        bin = pgconf_bin(s, "pg_rewind");
        if (!dsn || !bin || asprintf(&env_pgpass, "PGPASSFILE=%s", s->pgpass) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        JOB_TRY(j, pgconf_write_pgpass(s, j->host, j->port, auth), "could not write pgpass file");
        if (proc_strv_push(&argv, bin) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        /* With a restore_command, pg_rewind fetches WAL missing on the target from the archive; it reads
         * the setting through the configuration file, which it must be told about when elsewhere. */
        if (pg_params_get(&s->recovery_conf, "restore_command") ||
            pg_params_get(&s->parameters, "restore_command")) {
                if (proc_strv_push(&argv, "--restore-target-wal") < 0)
                        return job_finish(j, -ENOMEM, "out of memory");
                if (s->config_dir && !streq(s->config_dir, s->data_dir)) {
                        _cleanup_free_ char *conf = pgconf_path(s, "postgresql.conf");
                        if (!conf || proc_strv_pushf(&argv, "--config-file=%s", conf) < 0)
                                return job_finish(j, -ENOMEM, "out of memory");
                }
        }
        if (proc_strv_pushf(&argv, "--target-pgdata=%s", s->data_dir) < 0 ||
            proc_strv_pushf(&argv, "--source-server=%s", dsn) < 0)
                return job_finish(j, -ENOMEM, "out of memory");
        char *env[] = {
                env_pgpass,
                (char *)"LANG=C",
                (char *)"LC_ALL=C",
                (char *)"PGOPTIONS=-c statement_timeout=0",
                NULL};
        log_info("Running pg_rewind from %s:%u.", j->host, j->port);
        /* r points into the Proc that job_spawn frees: nothing below may use it. */
        JOB_TRY(j,
                job_spawn(j, argv, env, PGCTL_LONG_TIMEOUT, rewind_on_pg_rewind),
                "could not run pg_rewind");
}

static void rewind_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *msg = NULL;
        int r;

        if (!j->crash_recovery_done) {
                r = check_data_dir(j->settings, &msg);
                if (r >= 0)
                        r = check_bin(j->settings, "pg_rewind", &msg);
                if (r < 0)
                        return job_finish(j, r, "%s", strna(msg));
                if (pgctl_postmaster_pid(j->settings->data_dir, NULL) > 0)
                        return job_finish(
                                j,
                                -EBUSY,
                                "postgres is running on '%s'; stop it before pg_rewind",
                                j->settings->data_dir);
        }
        JOB_TRY(j, controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, rewind_on_controldata),
                "could not run pg_controldata");
}

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
        r = job_new(e, s, PGCTL_REWIND, cb, userdata, &j);
        if (r < 0)
                return r;
        j->deadline = 0;
        j->port = port;
        j->host = strdup(host);
        if (!j->host) {
                pgctl_job_free(j);
                return -ENOMEM;
        }
        return job_start(j, rewind_first, ret);
}

/* ==== pg_controldata ==== */

static void controldata_done(PgCtlJob *j, const ProcResult *r) {
        if (!proc_result_ok(r)) {
                _cleanup_free_ char *why = result_reason(r);
                return job_finish(j, -EIO, "pg_controldata failed: %s", strna(why));
        }
        j->output = strdup(r->out);
        if (!j->output)
                return job_finish(j, -ENOMEM, "out of memory");
        job_finish(j, 0, NULL);
}

static void controldata_first(PgCtlJob *j) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        JOB_TRY(j, controldata_argv(j->settings, &argv), "out of memory");
        JOB_TRY(j,
                job_spawn(j, argv, controldata_env(), PGCTL_TOOL_TIMEOUT, controldata_done),
                "could not run pg_controldata");
}

int pgctl_controldata(sd_event *e, const PgSettings *s, pgctl_handler_t cb, void *userdata, PgCtlJob **ret) {
        PgCtlJob *j;
        int r = job_new(e, s, PGCTL_CONTROLDATA, cb, userdata, &j);
        if (r < 0)
                return r;
        return job_start(j, controldata_first, ret);
}
