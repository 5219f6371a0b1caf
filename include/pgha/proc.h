/* SPDX-License-Identifier: MIT */
/*
 * Child processes on the event loop: spawn without a shell, capture stdout/stderr into capped buffers,
 * watch the child with a child event source, enforce a deadline (SIGTERM, then SIGKILL after a grace
 * period) and report the outcome through one completion callback.
 *
 * Requirement: SIGCHLD must be blocked in every thread before the first proc_spawn() (sd-event's child
 * sources need it; the Manager blocks it at start-up, the unit tests block it themselves).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "pgha/macro.h"

typedef struct Proc Proc;

/* Default cap for each captured stream: enough for any pg_ctl/pg_rewind/pg_controldata report, small
 * enough that a chatty or hostile child cannot grow the daemon. Output beyond the cap is read and
 * discarded (so the child never blocks on a full pipe) and the stream is flagged truncated. */
#define PROC_OUTPUT_MAX_DEFAULT (64U * 1024U)
/* Time between the SIGTERM sent at the deadline and the SIGKILL that follows when the child ignores it. */
#define PROC_KILL_GRACE_DEFAULT (5 * USEC_PER_SEC)

typedef struct ProcResult {
        pid_t pid;
        int exit_code;   /* exit status when signal == 0, else -1 */
        int signal;      /* signal that terminated the child, 0 if it exited */
        bool timed_out;  /* the deadline passed and we signalled the child */
        const char *out; /* captured stdout, NUL-terminated, never NULL */
        size_t out_size;
        bool out_truncated; /* stdout exceeded output_max; the rest was discarded */
        const char *err;    /* captured stderr, likewise */
        size_t err_size;
        bool err_truncated;
        usec_t duration; /* from spawn to exit, CLOCK_MONOTONIC */
} ProcResult;

/* Success means the child exited with status 0. */
static inline bool proc_result_ok(const ProcResult *r) {
        return r->signal == 0 && r->exit_code == 0;
}

/* Called once from the event loop when the child has exited (and been reaped). The Proc may be freed
 * from inside the callback; the result's buffers live until then. */
typedef void (*proc_handler_t)(Proc *p, const ProcResult *result, void *userdata);

typedef struct ProcOptions {
        const char *description; /* names the event sources and log lines, e.g. "pg_rewind" */
        char *const *env_add;    /* "KEY=VALUE" entries set in the child (override inherited ones) */
        bool strip_patroni_env;  /* drop PATRONI_* and KUBERNETES_* from the child's environment */
        usec_t timeout;          /* relative deadline; 0 = none */
        usec_t kill_grace;       /* SIGTERM → SIGKILL delay; 0 = PROC_KILL_GRACE_DEFAULT */
        size_t output_max;       /* per-stream cap; 0 = PROC_OUTPUT_MAX_DEFAULT */
        const char *working_dir; /* chdir() in the child; NULL = inherit */
        /* Double fork for long-lived daemons (the postmaster): an intermediate child calls setsid(),
         * forks the real program and exits at once, printing the grandchild's PID on its stdout; the
         * result's out then holds that PID. The grandchild's stdout/stderr go to detached_log_fd (or
         * our stderr when -1), so it never depends on us reading a pipe and survives our exit. */
        bool detach;
        int detached_log_fd;
} ProcOptions;

#define PROC_OPTIONS_INIT \
        { .detached_log_fd = -1 }

/* proc_spawn() - starts argv[0] (absolute path, or looked up in PATH) with argv, no shell. The child
 * runs as our user in its own process group with an empty signal mask, default signal dispositions,
 * stdin on /dev/null and stdout/stderr on pipes; only fds 0-2 are open in it. Returns 0 and the new
 * Proc in *ret (owned by the caller: proc_free() cancels), or a negative errno (-ENOENT when argv[0]
 * cannot be found is reported through the callback as exit code 127 instead). Non-logging. */
int proc_spawn(
        sd_event *e,
        char *const *argv,
        const ProcOptions *opts,
        proc_handler_t handler,
        void *userdata,
        Proc **ret) _warn_unused_result_;

/* proc_free() - cancels: if the child still runs, its process group gets SIGKILL and the child is
 * reaped; the completion callback will not run. Accepts NULL, returns NULL. */
Proc *proc_free(Proc *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Proc *, proc_free);

/* proc_kill() - sends sig to the child's process group while it runs; 0 if it already exited. */
int proc_kill(Proc *p, int sig);

/* proc_get_pid() - the child's PID (the intermediate's when detached). */
pid_t proc_get_pid(const Proc *p);

/* proc_is_running() - true until the completion callback has been dispatched. */
bool proc_is_running(const Proc *p);

/* proc_argv_to_string() - argv joined with spaces, each element shell-quoted when needed, for logs. */
char *proc_argv_to_string(char *const *argv);

/* proc_split_command() - splits a command string shell-like (whitespace separates words; single
 * quotes, double quotes and backslash escapes as in sh; no expansion of any kind) into a NULL-terminated
 * heap strv. -EINVAL for an unterminated quote or an empty command. Non-logging. */
int proc_split_command(const char *command, char ***ret) _warn_unused_result_;

/* NULL-terminated string arrays (argv, environment) as used by this module and its callers; prefixed
 * so they cannot collide with another module's helpers. proc_strv_push*() append a copy. */
char **proc_strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, proc_strv_free);
size_t proc_strv_length(char *const *l);
int proc_strv_push(char ***l, const char *s) _warn_unused_result_;
int proc_strv_pushf(char ***l, const char *fmt, ...) _printf_(2, 3) _warn_unused_result_;
