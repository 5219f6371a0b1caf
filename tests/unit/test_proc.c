/* SPDX-License-Identifier: MIT */
/* Tests for proc: real children on a real sd-event loop (SIGCHLD blocked here, as the Manager does). */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "pgha/proc.h"
#include "tests.h"

typedef struct Outcome {
        bool done;
        int calls;
        int exit_code;
        int signal;
        bool timed_out;
        char *out;
        size_t out_size;
        bool out_truncated;
        char *err;
        usec_t duration;
} Outcome;

static void on_done(Proc *p, const ProcResult *r, void *userdata) {
        Outcome *o = userdata;
        o->done = true;
        o->calls++;
        o->exit_code = r->exit_code;
        o->signal = r->signal;
        o->timed_out = r->timed_out;
        o->out = strdup(r->out);
        o->out_size = r->out_size;
        o->out_truncated = r->out_truncated;
        o->err = strdup(r->err);
        o->duration = r->duration;
}

static void outcome_done(Outcome *o) {
        free(o->out);
        free(o->err);
}

static sd_event *setup(void) {
        sigset_t ss;
        sd_event *e = NULL;

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ASSERT_OK(-sigprocmask(SIG_BLOCK, &ss, NULL));
        ASSERT_OK(sd_event_new(&e));
        return e;
}

/* Runs the loop until *flag is set or timeout passes. */
static bool run_until(sd_event *e, const bool *flag, usec_t timeout) {
        usec_t start, now;
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &start));
        for (;;) {
                if (*flag)
                        return true;
                ASSERT_OK(sd_event_run(e, 50 * USEC_PER_MSEC));
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
                if (now - start > timeout)
                        return *flag;
        }
}

static int run_cmd(sd_event *e, char *const *argv, const ProcOptions *opts, Outcome *o) {
        _cleanup_(proc_freep) Proc *p = NULL;
        int r = proc_spawn(e, argv, opts, on_done, o, &p);
        if (r < 0)
                return r;
        ASSERT_TRUE(proc_is_running(p));
        ASSERT_TRUE(run_until(e, &o->done, 20 * USEC_PER_SEC));
        ASSERT_FALSE(proc_is_running(p));
        return 0;
}

TEST(exit_codes) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        Outcome o = {};
        char *ok[] = {(char *)"true", NULL};
        char *three[] = {(char *)"/bin/sh", (char *)"-c", (char *)"echo hello; echo oops >&2; exit 3", NULL};
        char *missing[] = {(char *)"/nonexistent/program", NULL};

        ASSERT_OK(run_cmd(e, ok, NULL, &o));
        ASSERT_EQ(o.calls, 1);
        ASSERT_EQ(o.exit_code, 0);
        ASSERT_EQ(o.signal, 0);
        ASSERT_FALSE(o.timed_out);
        outcome_done(&o);

        o = (Outcome){};
        ASSERT_OK(run_cmd(e, three, NULL, &o));
        ASSERT_EQ(o.exit_code, 3);
        ASSERT_STREQ(o.out, "hello\n");
        ASSERT_STREQ(o.err, "oops\n");
        outcome_done(&o);

        o = (Outcome){};
        ASSERT_OK(run_cmd(e, missing, NULL, &o));
        ASSERT_EQ(o.exit_code, 127);
        ASSERT_TRUE(strstr(o.err, "/nonexistent/program") != NULL);
        outcome_done(&o);
}

TEST(signal_reported) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        Outcome o = {};
        char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)"kill -USR1 $$", NULL};

        ASSERT_OK(run_cmd(e, argv, NULL, &o));
        ASSERT_EQ(o.signal, SIGUSR1);
        ASSERT_EQ(o.exit_code, -1);
        ASSERT_FALSE(o.timed_out);
        outcome_done(&o);
}

TEST(timeout_kills) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        ProcOptions opts = PROC_OPTIONS_INIT;
        Outcome o = {};
        /* SIGTERM is ignored (and the ignore is inherited by sleep), so only SIGKILL ends it. */
        char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)"trap '' TERM; sleep 30; exit 0", NULL};
        char *polite[] = {(char *)"sleep", (char *)"30", NULL};

        opts.timeout = 200 * USEC_PER_MSEC;
        opts.kill_grace = 300 * USEC_PER_MSEC;
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_TRUE(o.timed_out);
        ASSERT_EQ(o.signal, SIGKILL);
        ASSERT_TRUE(o.duration >= 500 * USEC_PER_MSEC);
        ASSERT_TRUE(o.duration < 10 * USEC_PER_SEC);
        outcome_done(&o);

        o = (Outcome){};
        ASSERT_OK(run_cmd(e, polite, &opts, &o));
        ASSERT_TRUE(o.timed_out);
        ASSERT_EQ(o.signal, SIGTERM);
        ASSERT_TRUE(o.duration < 500 * USEC_PER_MSEC + 300 * USEC_PER_MSEC);
        outcome_done(&o);
}

TEST(output_capped) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        ProcOptions opts = PROC_OPTIONS_INIT;
        Outcome o = {};
        /* 1 MB, far beyond a pipe buffer: the child must not block even though we keep only 1000 B. */
        char *argv[] = {
                (char *)"/bin/sh", (char *)"-c", (char *)"head -c 1000000 /dev/zero | tr '\\0' a", NULL};

        opts.output_max = 1000;
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_EQ(o.exit_code, 0);
        ASSERT_EQ(o.out_size, 1000);
        ASSERT_EQ(strlen(o.out), 1000);
        ASSERT_TRUE(o.out_truncated);
        ASSERT_EQ(o.out[999], 'a');
        outcome_done(&o);
}

TEST(environment) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        ProcOptions opts = PROC_OPTIONS_INIT;
        Outcome o = {};
        char *add[] = {(char *)"PGHA_TEST_ADDED=1", (char *)"PGHA_TEST_OVERRIDE=new", NULL};
        char *argv[] = {
                (char *)"/bin/sh",
                (char *)"-c",
                (char *)"echo "
                        "\"$PATRONI_X|$KUBERNETES_Y|$PGHA_TEST_ADDED|$PGHA_TEST_OVERRIDE|$PGHA_TEST_KEPT\"",
                NULL};

        ASSERT_OK(setenv("PATRONI_X", "x", 1));
        ASSERT_OK(setenv("KUBERNETES_Y", "y", 1));
        ASSERT_OK(setenv("PGHA_TEST_OVERRIDE", "old", 1));
        ASSERT_OK(setenv("PGHA_TEST_KEPT", "kept", 1));
        opts.env_add = add;
        opts.strip_patroni_env = true;
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_STREQ(o.out, "||1|new|kept\n");
        outcome_done(&o);

        o = (Outcome){};
        opts.strip_patroni_env = false;
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_STREQ(o.out, "x|y|1|new|kept\n");
        outcome_done(&o);
}

TEST(systemd_notification_env_never_inherited) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        ProcOptions opts = PROC_OPTIONS_INIT;
        Outcome o = {};
        char *argv[] = {
                (char *)"/bin/sh",
                (char *)"-c",
                (char *)"echo \"$NOTIFY_SOCKET|$WATCHDOG_USEC|$WATCHDOG_PID\"",
                NULL};

        ASSERT_OK(setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1));
        ASSERT_OK(setenv("WATCHDOG_USEC", "20000000", 1));
        ASSERT_OK(setenv("WATCHDOG_PID", "1", 1));
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_STREQ(o.out, "||\n");
        outcome_done(&o);
        ASSERT_OK(unsetenv("NOTIFY_SOCKET"));
        ASSERT_OK(unsetenv("WATCHDOG_USEC"));
        ASSERT_OK(unsetenv("WATCHDOG_PID"));
}

static bool child_is_sleep(pid_t pid) {
        char path[64], comm[64] = "";
        FILE *f;
        (void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
        fclose(f);
        return streq(comm, "sleep\n");
}

TEST(fds_not_inherited) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        _cleanup_(proc_freep) Proc *p = NULL;
        _cleanup_close_ int cloexec_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int plain_fd = open("/dev/null", O_RDONLY); /* even a careless fd must not leak */
        Outcome o = {};
        char *argv[] = {(char *)"sleep", (char *)"30", NULL};
        char path[64];
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        DIR *d;
        struct dirent *de;
        int n = 0, others = 0;

        ASSERT_TRUE(cloexec_fd >= 0 && plain_fd >= 0);
        ASSERT_OK(proc_spawn(e, argv, NULL, on_done, &o, &p));
        /* Wait (bounded) until the child has exec'd sleep, then look at its descriptor table. */
        for (int i = 0; i < 500 && !child_is_sleep(proc_get_pid(p)); i++)
                (void)nanosleep(&ts, NULL);
        ASSERT_TRUE(child_is_sleep(proc_get_pid(p)));

        /* sleep itself opens files while it starts (the locale archive), briefly: look until its table
         * holds nothing but 0, 1 and 2 (bounded); a descriptor leaked by the spawn would never go away. */
        (void)snprintf(path, sizeof(path), "/proc/%d/fd", (int)proc_get_pid(p));
        for (int i = 0; i < 200; i++) {
                n = others = 0;
                d = opendir(path);
                ASSERT_NOT_NULL(d);
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        n++;
                        if (!streq(de->d_name, "0") && !streq(de->d_name, "1") && !streq(de->d_name, "2")) {
                                if (i == 199)
                                        fprintf(stderr, "  child has extra fd %s\n", de->d_name);
                                others++;
                        }
                }
                closedir(d);
                if (others == 0)
                        break;
                (void)nanosleep(&ts, NULL);
        }
        ASSERT_EQ(n, 3);
        ASSERT_EQ(others, 0);
}

/* Number of non-zombie processes in process group pgid. */
static int live_in_group(pid_t pgid) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;

        ASSERT_NOT_NULL(d);
        while ((de = readdir(d))) {
                char path[300], buf[512], state;
                int pgrp;
                FILE *f;
                char *rp;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                (void)snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
                    sscanf(rp + 1, " %c %*d %d", &state, &pgrp) == 2 && pgrp == pgid && state != 'Z' &&
                    state != 'X')
                        n++;
                fclose(f);
        }
        closedir(d);
        return n;
}

TEST(cancel) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        Proc *p = NULL;
        Outcome o = {};
        bool never = false;
        char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)"sleep 30 & wait", NULL};
        pid_t pid;

        ASSERT_OK(proc_spawn(e, argv, NULL, on_done, &o, &p));
        pid = proc_get_pid(p);
        ASSERT_TRUE(pid > 0);
        /* Let it start, then cancel: the callback must never run and the child must be gone. proc_free()
         * does not wait for it (a child in uninterruptible sleep would stall the loop): right after it the
         * child still exists, at least as a zombie only we can reap, and the loop reaps it. */
        (void)run_until(e, &never, 100 * USEC_PER_MSEC);
        p = proc_free(p);
        ASSERT_NULL(p);
        ASSERT_OK(kill(pid, 0));
        for (int i = 0; i < 500 && kill(pid, 0) == 0; i++)
                (void)run_until(e, &never, 10 * USEC_PER_MSEC);
        ASSERT_TRUE(kill(pid, 0) < 0 && errno == ESRCH);
        ASSERT_EQ(o.calls, 0);
        /* Its background sleep was in the same process group and got SIGKILL too (it may linger as a
         * zombie until PID 1 reaps it, which counts as dead). */
        for (int i = 0; i < 200 && live_in_group(pid) > 0; i++)
                (void)run_until(e, &never, 10 * USEC_PER_MSEC);
        ASSERT_EQ(live_in_group(pid), 0);
}

TEST(free_from_callback) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        Outcome o = {};
        char *argv[] = {(char *)"true", NULL};
        Proc *p = NULL;

        ASSERT_OK(proc_spawn(e, argv, NULL, on_done, &o, &p));
        ASSERT_TRUE(run_until(e, &o.done, 10 * USEC_PER_SEC));
        p = proc_free(p);
        outcome_done(&o);
}

TEST(detach) {
        _cleanup_(sd_event_unrefp) sd_event *e = setup();
        ProcOptions opts = PROC_OPTIONS_INIT;
        Outcome o = {};
        char *argv[] = {(char *)"sleep", (char *)"30", NULL};
        int gc;

        opts.detach = true;
        ASSERT_OK(run_cmd(e, argv, &opts, &o));
        ASSERT_EQ(o.exit_code, 0);
        gc = atoi(o.out); /* allow-banned: test code */
        ASSERT_TRUE(gc > 1);
        ASSERT_OK(-kill(gc, 0));
        ASSERT_OK(-kill(gc, SIGKILL));
        outcome_done(&o);
}

TEST(split_command) {
        char **l = NULL;

        ASSERT_OK(proc_split_command("/bin/cb.sh  --flag 'a b' \"c \\\"d\\\"\" e\\ f", &l));
        ASSERT_EQ(proc_strv_length(l), 5);
        ASSERT_STREQ(l[0], "/bin/cb.sh");
        ASSERT_STREQ(l[1], "--flag");
        ASSERT_STREQ(l[2], "a b");
        ASSERT_STREQ(l[3], "c \"d\"");
        ASSERT_STREQ(l[4], "e f");
        l = proc_strv_free(l);

        ASSERT_OK(proc_split_command("x''y \"\"", &l));
        ASSERT_EQ(proc_strv_length(l), 2);
        ASSERT_STREQ(l[0], "xy");
        ASSERT_STREQ(l[1], "");
        l = proc_strv_free(l);

        ASSERT_ERROR(proc_split_command("a 'b", &l), EINVAL);
        ASSERT_ERROR(proc_split_command("a \"b", &l), EINVAL);
        ASSERT_ERROR(proc_split_command("   ", &l), EINVAL);
        ASSERT_ERROR(proc_split_command("a\\", &l), EINVAL);
}

TEST(argv_to_string) {
        char *argv[] = {(char *)"pg_ctl", (char *)"-o", (char *)"--a=1 --b", (char *)"it's", NULL};
        _cleanup_free_ char *s = proc_argv_to_string(argv);
        ASSERT_STREQ(s, "pg_ctl -o '--a=1 --b' 'it'\\''s'");
}

DEFINE_TEST_MAIN
