/* SPDX-License-Identifier: MIT */
/*
 * Internal to the pgctl module (pgctl.c, pgctl_bootstrap.c, pgctl_replica.c): the job structure and the
 * step helpers every job uses. A job is a chain of steps in continuation style: a step spawns a child
 * (pgctl_job_spawn(), continuing with its ProcResult), arms the job's timer (pgctl_job_after()), runs a
 * sub-job (pgctl_job_run_sub()) or finishes (pgctl_job_finish(), always the last thing a step does).
 */
#pragma once

#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "pgha/pgconf.h"
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
        unsigned polls; /* start/promote: readiness checks so far (pgctl_poll_backoff) */
};

/* pgctl_poll_backoff - the delay before the next readiness check of a start or promotion: 10, 20, 40,
 * 80 ms, then PGCTL_POLL_USEC. Most finish within tens of milliseconds, and every one of them is time a
 * primary does not take writes; a long crash recovery is not polled much faster than before. */
static inline usec_t pgctl_poll_backoff(PgCtlJob *j) {
        usec_t delay = (10 * USEC_PER_MSEC) << (j->polls < 4 ? j->polls : 4);

        j->polls++;
        return delay < PGCTL_POLL_USEC ? delay : PGCTL_POLL_USEC;
}

/* A step failed with an errno from our side (spawn, write, allocation): finish with the message and
 * the errno's text. */
#define JOB_TRY(j, expr, fmt, ...)                                                             \
        do {                                                                                   \
                int _r_ = (expr);                                                              \
                if (_r_ < 0) {                                                                 \
                        pgctl_job_finish((j), _r_, fmt ": %s", ##__VA_ARGS__, strerror(-_r_)); \
                        return;                                                                \
                }                                                                              \
        } while (0)

/* Job life cycle and steps (pgctl.c). */
int pgctl_job_new(
        sd_event *e,
        const PgSettings *s,
        PgCtlKind kind,
        pgctl_handler_t cb,
        void *userdata,
        PgCtlJob **ret);
int pgctl_job_start(PgCtlJob *j, job_timer_fn first, PgCtlJob **ret);
void pgctl_job_finish(PgCtlJob *j, int r, const char *fmt, ...) _printf_(3, 4);
int pgctl_job_spawn(PgCtlJob *j, char *const *argv, char *const *env, usec_t timeout, job_proc_fn next);
int pgctl_job_after(PgCtlJob *j, usec_t delay, job_timer_fn next);
bool pgctl_job_past_deadline(PgCtlJob *j);
int pgctl_job_run_sub(
        PgCtlJob *j,
        int (*ctor)(sd_event *, const PgSettings *, const PgParams *, pgctl_handler_t, void *, PgCtlJob **),
        const PgParams *recovery,
        job_sub_fn next);
void pgctl_job_wait_stale(PgCtlJob *j, job_timer_fn next);
void pgctl_finish_with_result(PgCtlJob *j, const ProcResult *r);
int pgctl_make_tmp_file(PgCtlJob *j, const char *content);
int pgctl_local_superuser_env(PgCtlJob *j, const char *host, char **ret);

/* Child helpers (pgctl.c). */
char *pgctl_result_reason(const ProcResult *r);
char **pgctl_controldata_env(void);
int pgctl_controldata_argv(const PgSettings *s, char ***ret);
char *pgctl_psql_dsn(const PgSettings *s, const char *host);
int pgctl_psql_argv(const PgSettings *s, const char *host, char ***ret);
char *pgctl_postmaster_log_reason(const PgSettings *s);
int pgctl_pg_param_compare_name(const void *a, const void *b);

/* Data directory checks (pgctl.c): each fills *msg with one sentence naming the problem and returns a
 * negative errno, or returns 0. */
bool pgctl_dir_is_empty(const char *path);
int pgctl_check_parent_dir(const PgSettings *s, char **msg);
int pgctl_check_bin(const PgSettings *s, const char *program, char **msg);
int pgctl_check_data_dir(const PgSettings *s, char **msg);
char *pgctl_read_pg_version(const PgSettings *s);
