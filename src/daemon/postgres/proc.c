/* SPDX-License-Identifier: MIT */
/*
 * Child processes for pg_ctl, initdb, pg_basebackup, pg_rewind, pg_controldata and user callbacks.
 * fork() + immediate exec() (no shell): the child unblocks signals, restores default dispositions, moves
 * to its own process group, gets /dev/null on stdin and pipes on stdout/stderr, and closes every other
 * descriptor. The parent reads both pipes from io sources into capped buffers, watches the child with an
 * sd-event child source (pidfd-based, so no PID-reuse race) and arms one timer for the deadline.
 *
 * Invariant: a Proc's completion callback runs at most once, from the loop, and never after
 * proc_free(); a freed Proc leaves no child behind (SIGKILL to its group; the loop reaps it when it has
 * exited, never waiting for it).
 */

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "pgha/log.h"
#include "pgha/proc.h"

extern char **environ;

typedef struct ProcStream {
        int fd; /* read end of the pipe, -EBADF once EOF was seen */
        sd_event_source *source;
        char *buf;
        size_t size;
        size_t allocated;
        bool truncated;
} ProcStream;

struct Proc {
        sd_event *event;
        char *description;
        pid_t pid;
        sd_event_source *child_source;
        sd_event_source *timer_source;
        ProcStream out;
        ProcStream err;
        size_t output_max;
        usec_t started;
        usec_t kill_grace;
        bool timed_out;
        bool kill_sent;
        bool exited;
        proc_handler_t handler;
        void *userdata;
};

/* proc_strv_free() - frees a NULL-terminated string array and its strings; NULL allowed, returns NULL. */
char **proc_strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

/* proc_strv_length() - number of strings before the terminating NULL (0 for NULL). */
size_t proc_strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

static int strv_consume(char ***l, char *s) {
        size_t n;
        char **c;

        if (!s)
                return -ENOMEM;
        n = proc_strv_length(*l);
        c = realloc(*l, sizeof(char *) * (n + 2));
        if (!c) {
                free(s);
                return -ENOMEM;
        }
        c[n] = s;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

/* proc_strv_push() - appends a copy of s, keeping the array NULL-terminated; -ENOMEM on failure. */
int proc_strv_push(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}

/* proc_strv_pushf() - appends a printf-formatted string; -ENOMEM on failure. */
int proc_strv_pushf(char ***l, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_consume(l, s);
}

static bool needs_quoting(const char *s) {
        if (!*s)
                return true;
        for (; *s; s++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,+@%", *s))
                        return true;
        return false;
}

/* proc_argv_to_string() - argv joined with spaces, each element shell-quoted when needed, for logs. */
char *proc_argv_to_string(char *const *argv) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; argv && argv[i]; i++) {
                if (i > 0)
                        fputc(' ', f);
                if (!needs_quoting(argv[i])) {
                        fputs(argv[i], f);
                        continue;
                }
                fputc('\'', f);
                for (const char *c = argv[i]; *c; c++)
                        if (*c == '\'')
                                fputs("'\\''", f);
                        else
                                fputc(*c, f);
                fputc('\'', f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* proc_split_command() - splits a command string shell-like (whitespace separates words; single
 * quotes, double quotes and backslash escapes as in sh; no expansion of any kind) into a NULL-terminated
 * heap strv. -EINVAL for an unterminated quote or an empty command. Non-logging. */
int proc_split_command(const char *command, char ***ret) {
        _cleanup_(proc_strv_freep) char **l = NULL;
        _cleanup_free_ char *word = NULL;
        size_t n = 0;
        bool in_word = false;
        int r;

        if (!command)
                return -EINVAL;
        word = malloc(strlen(command) + 1);
        if (!word)
                return -ENOMEM;

        for (const char *p = command;; p++) {
                if (*p == '\0' || strchr(" \t\n\r", *p)) {
                        if (in_word) {
                                word[n] = '\0';
                                r = proc_strv_push(&l, word);
                                if (r < 0)
                                        return r;
                                n = 0;
                                in_word = false;
                        }
                        if (*p == '\0')
                                break;
                        continue;
                }
                in_word = true;
                if (*p == '\\') {
                        if (p[1] == '\0')
                                return -EINVAL;
                        word[n++] = *++p;
                } else if (*p == '\'') {
                        for (p++; *p != '\''; p++) {
                                if (*p == '\0')
                                        return -EINVAL;
                                word[n++] = *p;
                        }
                } else if (*p == '"') {
                        for (p++; *p != '"'; p++) {
                                if (*p == '\0')
                                        return -EINVAL;
                                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                                        p++;
                                word[n++] = *p;
                        }
                } else
                        word[n++] = *p;
        }

        if (proc_strv_length(l) == 0)
                return -EINVAL;
        *ret = TAKE_PTR(l);
        return 0;
}

static void proc_stream_done(ProcStream *s) {
        s->source = sd_event_source_disable_unref(s->source);
        s->fd = safe_close(s->fd);
        s->buf = mfree(s->buf);
        s->size = s->allocated = 0;
}

/* Hands a cancelled child's source to the loop: it reaps the child whenever it exits. Dropping a source
 * that owns its process instead makes libsystemd send SIGKILL and block in waitid until the child is
 * gone, and a child stuck in uninterruptible I/O (pg_basebackup writing to a hung volume) would stall the
 * whole loop that long. On success the caller still drops its own reference. */
static int proc_reap_later(sd_event_source *s) {
        int r;

        r = sd_event_source_set_child_process_own(s, false);
        if (r < 0)
                return r;
        r = sd_event_source_set_floating(s, true);
        if (r < 0) {
                (void)sd_event_source_set_child_process_own(s, true);
                return r;
        }
        sd_event_source_set_userdata(s, NULL);
        return 0;
}

/* proc_free() - cancels: if the child still runs, its process group gets SIGKILL and the child is
 * reaped; the completion callback will not run. Accepts NULL, returns NULL. */
Proc *proc_free(Proc *p) {
        if (!p)
                return NULL;

        if (p->pid > 0 && !p->exited) {
                /* The whole group: a callback script's own children go too. */
                (void)kill(-p->pid, SIGKILL);
                log_debug("Cancelled %s (PID %d).", strna(p->description), (int)p->pid);
                if (p->child_source && proc_reap_later(p->child_source) >= 0)
                        p->child_source = sd_event_source_unref(p->child_source);
        }
        p->child_source = sd_event_source_disable_unref(p->child_source);
        p->timer_source = sd_event_source_disable_unref(p->timer_source);
        proc_stream_done(&p->out);
        proc_stream_done(&p->err);
        sd_event_unref(p->event);
        free(p->description);
        return mfree(p);
}

/* proc_get_pid() - the child's PID (the intermediate's when detached). */
pid_t proc_get_pid(const Proc *p) {
        return p ? p->pid : 0;
}

/* proc_is_running() - true until the completion callback has been dispatched. */
bool proc_is_running(const Proc *p) {
        return p && p->pid > 0 && !p->exited;
}

/* proc_kill() - sends sig to the child's process group while it runs; 0 if it already exited. */
int proc_kill(Proc *p, int sig) {
        if (!p || p->pid <= 0)
                return -ESRCH;
        if (p->exited)
                return 0;
        if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0)
                return -errno;
        return 1;
}

/* Reads what is available now; returns 1 on EOF (fd closed), 0 when the pipe is merely empty. */
static int proc_stream_read(Proc *p, ProcStream *s) {
        char tmp[4096];

        while (s->fd >= 0) {
                ssize_t n = read(s->fd, tmp, sizeof(tmp));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        n = 0; /* treat errors like EOF */
                }
                if (n == 0) {
                        s->source = sd_event_source_disable_unref(s->source);
                        s->fd = safe_close(s->fd);
                        return 1;
                }

                size_t keep = MIN((size_t)n, p->output_max - s->size);
                if (keep < (size_t)n)
                        s->truncated = true;
                if (keep > 0) {
                        if (s->size + keep + 1 > s->allocated) {
                                size_t a = MAX(s->allocated * 2, s->size + keep + 1);
                                a = MIN(a, p->output_max + 1);
                                char *b = realloc(s->buf, a);
                                if (!b) {
                                        s->truncated = true;
                                        continue;
                                }
                                s->buf = b;
                                s->allocated = a;
                        }
                        memcpy(s->buf + s->size, tmp, keep);
                        s->size += keep;
                        s->buf[s->size] = '\0';
                }
        }
        return 1;
}

static int on_proc_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Proc *p = userdata;
        (void)proc_stream_read(p, fd == p->out.fd ? &p->out : &p->err);
        return 0;
}

static int on_proc_exit(sd_event_source *source, const siginfo_t *si, void *userdata) {
        Proc *p = userdata;
        ProcResult result = {
                .exit_code = -1,
        };
        usec_t now = 0;

        if (si->si_code != CLD_EXITED && si->si_code != CLD_KILLED && si->si_code != CLD_DUMPED)
                return 0; /* stopped/continued: not interesting */
        if (!p) {
                /* A cancelled child (proc_reap_later()): sd-event reaps it when this returns; the loop
                 * lets go of its source. */
                (void)sd_event_source_set_floating(source, false);
                return 0;
        }
        result.pid = p->pid;

        p->exited = true;
        p->timer_source = sd_event_source_disable_unref(p->timer_source);

        /* Whatever the child wrote before exiting is in the pipes now; a grandchild still holding them
         * open does not delay completion. */
        (void)proc_stream_read(p, &p->out);
        (void)proc_stream_read(p, &p->err);
        p->out.source = sd_event_source_disable_unref(p->out.source);
        p->err.source = sd_event_source_disable_unref(p->err.source);
        p->out.fd = safe_close(p->out.fd);
        p->err.fd = safe_close(p->err.fd);

        if (si->si_code == CLD_EXITED)
                result.exit_code = si->si_status;
        else
                result.signal = si->si_status;
        result.timed_out = p->timed_out;
        result.out = p->out.buf ?: "";
        result.out_size = p->out.size;
        result.out_truncated = p->out.truncated;
        result.err = p->err.buf ?: "";
        result.err_size = p->err.size;
        result.err_truncated = p->err.truncated;
        (void)sd_event_now(p->event, CLOCK_MONOTONIC, &now);
        result.duration = now > p->started ? now - p->started : 0;

        log_debug(
                "%s (PID %d) finished: exit code %d, signal %d%s.",
                strna(p->description),
                (int)p->pid,
                result.exit_code,
                result.signal,
                result.timed_out ? ", timed out" : "");

        /* Last thing: the handler may free p. */
        p->handler(p, &result, p->userdata);
        return 0;
}

static int on_proc_timer(sd_event_source *source, usec_t usec, void *userdata) {
        Proc *p = userdata;

        if (p->exited)
                return 0;
        if (!p->kill_sent) {
                log_warning(
                        "%s (PID %d) exceeded its deadline, sending SIGTERM.",
                        strna(p->description),
                        (int)p->pid);
                p->timed_out = p->kill_sent = true;
                (void)proc_kill(p, SIGTERM);
                (void)proc_kill(p, SIGCONT);
                (void)sd_event_source_set_time(source, usec + p->kill_grace);
                (void)sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
                return 0;
        }
        log_warning("%s (PID %d) ignored SIGTERM, sending SIGKILL.", strna(p->description), (int)p->pid);
        (void)proc_kill(p, SIGKILL);
        return 0;
}

static bool env_is_stripped(const char *entry, const ProcOptions *opts) {
        /* systemd's notification and watchdog variables address pghad itself: a child (PostgreSQL is
         * built with systemd support) must never speak for us. */
        if (startswith(entry, "NOTIFY_SOCKET=") || startswith(entry, "WATCHDOG_USEC=") ||
            startswith(entry, "WATCHDOG_PID="))
                return true;
        if (opts->strip_patroni_env && (startswith(entry, "PATRONI_") || startswith(entry, "KUBERNETES_")))
                return true;
        for (char *const *a = opts->env_add; a && *a; a++) {
                const char *eq = strchr(*a, '=');
                size_t klen = eq ? (size_t)(eq - *a) : strlen(*a);
                if (strneq(entry, *a, klen) && entry[klen] == '=')
                        return true;
        }
        return false;
}

static int build_env(const ProcOptions *opts, char ***ret) {
        _cleanup_(proc_strv_freep) char **env = NULL;
        int r;

        /* Start with an empty list so the result is never NULL. */
        env = calloc(1, sizeof(char *));
        if (!env)
                return -ENOMEM;
        for (char **e = environ; e && *e; e++) {
                if (env_is_stripped(*e, opts))
                        continue;
                r = proc_strv_push(&env, *e);
                if (r < 0)
                        return r;
        }
        for (char *const *a = opts->env_add; a && *a; a++) {
                r = proc_strv_push(&env, *a);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(env);
        return 0;
}

/* Async-signal-safe write of a short message to fd 2 of the child. */
static void child_write_error(const char *what, const char *arg) {
        (void)!write(STDERR_FILENO, what, strlen(what));
        (void)!write(STDERR_FILENO, arg, strlen(arg));
        (void)!write(STDERR_FILENO, "\n", 1);
}

static void child_reset_signals(void) {
        struct sigaction sa = {
                .sa_handler = SIG_DFL,
        };
        sigset_t ss;

        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void)sigaction(sig, &sa, NULL);
        sigemptyset(&ss);
        (void)sigprocmask(SIG_SETMASK, &ss, NULL);
}

_noreturn_ static void child_exec(char *const *argv, char **envp, const char *working_dir) {
        if (working_dir && chdir(working_dir) < 0) {
                child_write_error("Failed to change directory to ", working_dir);
                _exit(126);
        }
        (void)close_range(3, ~0U, 0);
        if (strchr(argv[0], '/'))
                execve(argv[0], argv, envp);
        else
                execvpe(argv[0], argv, envp);
        child_write_error("Failed to execute ", argv[0]);
        _exit(127);
}

_noreturn_ static void
child_main(char *const *argv, char **envp, const ProcOptions *opts, int null_fd, int out_w, int err_w) {
        child_reset_signals();

        if (opts->detach) {
                /* Intermediate: new session, fork the real program, report its PID, exit. */
                char buf[32];
                pid_t gc;
                int log_fd = opts->detached_log_fd >= 0 ? opts->detached_log_fd : STDERR_FILENO;

                if (setsid() < 0)
                        _exit(125);
                gc = fork();
                if (gc < 0)
                        _exit(125);
                if (gc == 0) {
                        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
                            (log_fd != STDERR_FILENO && dup2(log_fd, STDERR_FILENO) < 0))
                                _exit(125);
                        child_exec(argv, envp, opts->working_dir);
                }
                int n = snprintf(buf, sizeof(buf), "%d\n", (int)gc);
                (void)!write(out_w, buf, (size_t)n);
                _exit(0);
        }

        if (setpgid(0, 0) < 0)
                _exit(125);
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_w, STDOUT_FILENO) < 0 ||
            dup2(err_w, STDERR_FILENO) < 0)
                _exit(125);
        child_exec(argv, envp, opts->working_dir);
}

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
        Proc **ret) {
        static const ProcOptions default_opts = PROC_OPTIONS_INIT;
        _cleanup_(proc_freep) Proc *p = NULL;
        _cleanup_(proc_strv_freep) char **envp = NULL;
        _cleanup_close_ int null_fd = -EBADF, out_w = -EBADF, err_w = -EBADF;
        int out_pipe[2], err_pipe[2];
        char name[64];
        pid_t pid;
        int r;

        if (!e || !argv || !argv[0] || !handler || !ret)
                return -EINVAL;
        if (!opts)
                opts = &default_opts;

        p = calloc(1, sizeof(Proc));
        if (!p)
                return -ENOMEM;
        p->out.fd = p->err.fd = -EBADF;
        p->event = sd_event_ref(e);
        p->handler = handler;
        p->userdata = userdata;
        p->output_max = opts->output_max ?: PROC_OUTPUT_MAX_DEFAULT;
        p->kill_grace = opts->kill_grace ?: PROC_KILL_GRACE_DEFAULT;
        p->description = strdup(opts->description ?: argv[0]);
        if (!p->description)
                return -ENOMEM;

        r = build_env(opts, &envp);
        if (r < 0)
                return r;

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (null_fd < 0)
                return -errno;
        if (pipe2(out_pipe, O_CLOEXEC) < 0)
                return -errno;
        p->out.fd = out_pipe[0];
        out_w = out_pipe[1];
        if (pipe2(err_pipe, O_CLOEXEC) < 0)
                return -errno;
        p->err.fd = err_pipe[0];
        err_w = err_pipe[1];
        if (fcntl(p->out.fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(p->err.fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        (void)sd_event_now(e, CLOCK_MONOTONIC, &p->started);

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_main(argv, envp, opts, null_fd, out_w, err_w);

        p->pid = pid;
        /* Also from the parent, so a kill(-pgid) right after spawn cannot race the child's setpgid(). */
        if (!opts->detach)
                (void)setpgid(pid, pid);

        r = sd_event_add_child(e, &p->child_source, pid, WEXITED, on_proc_exit, p);
        if (r < 0) {
                (void)kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0); /* allow-blocking: just SIGKILLed, returns at once */
                p->pid = 0;
                return r;
        }
        (void)sd_event_source_set_child_process_own(p->child_source, true);
        (void)snprintf(name, sizeof(name), "proc-%s", p->description);
        (void)sd_event_source_set_description(p->child_source, name);

        r = sd_event_add_io(e, &p->out.source, p->out.fd, EPOLLIN, on_proc_io, p);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(p->out.source, "proc-stdout");
        r = sd_event_add_io(e, &p->err.source, p->err.fd, EPOLLIN, on_proc_io, p);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(p->err.source, "proc-stderr");

        if (opts->timeout > 0) {
                r = sd_event_add_time(
                        e,
                        &p->timer_source,
                        CLOCK_MONOTONIC,
                        p->started + opts->timeout,
                        USEC_PER_MSEC,
                        on_proc_timer,
                        p);
                if (r < 0)
                        return r;
                (void)sd_event_source_set_description(p->timer_source, "proc-deadline");
        }

        log_debug("Spawned %s (PID %d).", p->description, (int)pid);
        *ret = TAKE_PTR(p);
        return 0;
}
