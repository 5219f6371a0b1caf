/* SPDX-License-Identifier: MIT */
/* Unit tests for pgctl's helpers that need no PostgreSQL: pg_controldata parsing, postmaster.pid and
 * zombie detection, stop-mode strings, and the callback runner on a real event loop. */

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "pgha/callbacks.h"
#include "pgha/fileio.h"
#include "pgha/pgctl.h"
#include "pgha/proc.h"
#include "tests.h"

TEST(controldata_get) {
        const char *text =
                "pg_control version number:            1300\n"
                "Database cluster state:               in archive recovery\n"
                "Latest checkpoint's TimeLineID:       3\n"
                "wal_log_hints setting:                on\n"
                "Data page checksum version:           0\n";
        _cleanup_free_ char *state = pgctl_controldata_get(text, "Database cluster state"),
                            *hints = pgctl_controldata_get(text, "wal_log_hints setting"),
                            *sum = pgctl_controldata_get(text, "Data page checksum version"),
                            *none = pgctl_controldata_get(text, "Nope");
        ASSERT_STREQ(state, "in archive recovery");
        ASSERT_STREQ(hints, "on");
        ASSERT_STREQ(sum, "0");
        ASSERT_NULL(none);
}

TEST(stop_modes) {
        ASSERT_EQ(pg_stop_mode_from_string("fast"), PG_STOP_FAST);
        ASSERT_EQ(pg_stop_mode_from_string("immediate"), PG_STOP_IMMEDIATE);
        ASSERT_EQ(pg_stop_mode_from_string("smart"), PG_STOP_SMART);
        ASSERT_EQ(pg_stop_mode_from_string("slow"), -EINVAL);
        ASSERT_STREQ(pg_stop_mode_to_string(PG_STOP_FAST), "fast");
}

static void write_pidfile(const char *dir, pid_t pid, long start) {
        char path[512], text[128];
        (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
        (void)snprintf(text, sizeof(text), "%d\n%s\n%ld\n5432\n", (int)pid, dir, start);
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
}

TEST(postmaster_pid_and_zombies) {
        char dir[] = "/tmp/pgha-test-pgctl-XXXXXX";
        struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
        pid_t child, found = -1;
        char path[600];

        ASSERT_NOT_NULL(mkdtemp(dir));
        ASSERT_EQ(pgctl_postmaster_pid(dir, &found), 0); /* no file */
        ASSERT_EQ(found, 0);

        child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        /* Alive, start time "now": running. */
        write_pidfile(dir, child, (long)time(NULL));
        ASSERT_EQ(pgctl_postmaster_pid(dir, &found), 1);
        ASSERT_EQ(found, child);
        ASSERT_TRUE(pgctl_pid_alive(child));

        /* A start time far from the process's: a recycled PID, not our postmaster. */
        write_pidfile(dir, child, (long)time(NULL) - 3600);
        ASSERT_EQ(pgctl_postmaster_pid(dir, &found), 0);

        /* Killed but not reaped: a zombie passes kill(pid, 0) yet is dead. */
        write_pidfile(dir, child, (long)time(NULL));
        ASSERT_OK(-kill(child, SIGKILL));
        for (int i = 0; i < 400 && pgctl_pid_alive(child); i++)
                (void)nanosleep(&ts, NULL);
        ASSERT_EQ(kill(child, 0), 0);
        ASSERT_FALSE(pgctl_pid_alive(child));
        ASSERT_EQ(pgctl_postmaster_pid(dir, &found), 0);
        ASSERT_EQ(waitpid(child, NULL, 0), child);
        ASSERT_FALSE(pgctl_pid_alive(child));

        (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
        (void)unlink(path);
        (void)rmdir(dir);
}

static int finished_code = -100;
static PgCallback finished_action = _PG_CALLBACK_INVALID;

static void on_finished(PgCallback action, int exit_code, void *userdata) {
        finished_action = action;
        finished_code = exit_code;
}

TEST(callback_runner) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(callback_runner_freep) CallbackRunner *c = NULL;
        char dir[] = "/tmp/pgha-test-cb-XXXXXX", out[600], cmd[800];
        _cleanup_free_ char *text = NULL;
        PgSettings s = {.scope = (char *)"batman"};
        sigset_t ss;
        usec_t start, now;

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ASSERT_OK(-sigprocmask(SIG_BLOCK, &ss, NULL));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_NOT_NULL(mkdtemp(dir));
        (void)snprintf(out, sizeof(out), "%s/out", dir);
        (void)snprintf(cmd, sizeof(cmd), "/bin/sh -c 'echo \"$@\" > %s' sh 'an arg'", out);
        s.callbacks[PG_CALLBACK_ON_ROLE_CHANGE] = cmd;

        ASSERT_OK(callback_runner_new(e, &s, &c));
        callback_runner_set_notify(c, on_finished, NULL);
        ASSERT_EQ(callbacks_run(c, PG_CALLBACK_ON_START, "master"), 0); /* not configured */
        ASSERT_EQ(callbacks_run(c, PG_CALLBACK_ON_ROLE_CHANGE, "master"), 1);
        ASSERT_TRUE(callbacks_is_running(c));
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &start));
        do {
                ASSERT_OK(sd_event_run(e, 50 * USEC_PER_MSEC));
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
        } while (callbacks_is_running(c) && now - start < 10 * USEC_PER_SEC);
        ASSERT_EQ(finished_action, PG_CALLBACK_ON_ROLE_CHANGE);
        ASSERT_EQ(finished_code, 0);
        ASSERT_OK(read_full_file(out, 4096, &text, NULL));
        ASSERT_STREQ(text, "an arg on_role_change master batman\n");
        (void)unlink(out);
        (void)rmdir(dir);
}

static int job_calls;

static void on_job_done(PgCtlJob *j, int r, const char *error, void *userdata) {
        job_calls++;
        *(int *)userdata = r;
}

/* A fake bin_dir whose initdb records its PID and hangs: cancelling the job must kill it and never call
 * the handler; a deadline-less wait would otherwise block forever. */
TEST(job_cancel_kills_child) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char dir[] = "/tmp/pgha-test-pgctl-XXXXXX", script[100], pidfile[100], data[100], cmd[400];
        _cleanup_free_ char *pidtext = NULL;
        PgSettings s = {.scope = (char *)"demo", .name = (char *)"n1", .pg_ctl_timeout = 60 * USEC_PER_SEC};
        PgCtlJob *j = NULL;
        sigset_t ss;
        int result = 1;
        pid_t child = 0;
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ASSERT_OK(-sigprocmask(SIG_BLOCK, &ss, NULL));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_NOT_NULL(mkdtemp(dir));
        (void)snprintf(script, sizeof(script), "%s/initdb", dir);
        (void)snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
        (void)snprintf(data, sizeof(data), "%s/data", dir);
        (void)snprintf(
                cmd,
                sizeof(cmd),
                "#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 30\n",
                pidfile,
                pidfile,
                pidfile);
        ASSERT_OK(write_file_atomic(script, cmd, strlen(cmd), 0755));
        s.bin_dir = dir;
        s.data_dir = data;
        s.superuser.username = (char *)"postgres";

        ASSERT_OK(pgctl_initdb(e, &s, on_job_done, &result, &j));
        for (int i = 0; i < 500 && read_full_file(pidfile, 64, &pidtext, NULL) < 0; i++) {
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
                (void)nanosleep(&ts, NULL);
        }
        ASSERT_NOT_NULL(pidtext);
        child = (pid_t)strtol(pidtext, NULL, 10);
        ASSERT_TRUE(pgctl_pid_alive(child));
        /* Freeing the job kills the child's group at once; the loop reaps it (proc_free() never waits). */
        j = pgctl_job_free(j);
        for (int i = 0; i < 500 && pgctl_pid_alive(child); i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_FALSE(pgctl_pid_alive(child));
        for (int i = 0; i < 20; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_EQ(job_calls, 0);
        ASSERT_EQ(result, 1);

        (void)unlink(script);
        (void)unlink(pidfile);
        (void)rmdir(dir);
}

/* Checks run before anything is spawned and name the problem. */
TEST(job_reports_missing_parent) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        PgSettings s = {.data_dir = (char *)"/nonexistent-pgha/x/data", .pg_ctl_timeout = USEC_PER_SEC};
        PgCtlJob *j = NULL;
        int result = 0;

        job_calls = 0;
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(pgctl_start(e, &s, NULL, on_job_done, &result, &j));
        ASSERT_EQ(job_calls, 0); /* never from inside the constructor */
        for (int i = 0; i < 10 && job_calls == 0; i++)
                ASSERT_OK(sd_event_run(e, 10 * USEC_PER_MSEC));
        ASSERT_EQ(job_calls, 1);
        ASSERT_EQ(result, -ENOENT);
        j = pgctl_job_free(j);
}

/* A callback that outlives its deadline is killed (its whole process group: the sleep child too) and
 * reported as failed by a signal; the loop is never held up meanwhile. */
TEST(callback_timeout) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(callback_runner_freep) CallbackRunner *c = NULL;
        char dir[] = "/tmp/pgha-test-cb-XXXXXX", pidfile[100], cmd[300];
        _cleanup_free_ char *pidtext = NULL;
        PgSettings s = {.scope = (char *)"batman"};
        sigset_t ss;
        usec_t start, now;
        pid_t sleeper;

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ASSERT_OK(-sigprocmask(SIG_BLOCK, &ss, NULL));
        ASSERT_OK(sd_event_new(&e));
        ASSERT_NOT_NULL(mkdtemp(dir));
        (void)snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
        (void)snprintf(cmd, sizeof(cmd), "/bin/sh -c 'sleep 30 & echo $! > %s; wait' sh", pidfile);
        s.callbacks[PG_CALLBACK_ON_STOP] = cmd;

        finished_action = _PG_CALLBACK_INVALID;
        finished_code = -100;
        ASSERT_OK(callback_runner_new(e, &s, &c));
        callback_runner_set_notify(c, on_finished, NULL);
        callback_runner_set_timeout(c, 300 * USEC_PER_MSEC);
        ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &start));
        ASSERT_EQ(callbacks_run(c, PG_CALLBACK_ON_STOP, "master"), 1);
        do {
                ASSERT_OK(sd_event_run(e, 50 * USEC_PER_MSEC));
                ASSERT_OK(sd_event_now(e, CLOCK_MONOTONIC, &now));
        } while (callbacks_is_running(c) && now - start < 10 * USEC_PER_SEC);
        ASSERT_FALSE(callbacks_is_running(c));
        ASSERT_TRUE(now - start >= 300 * USEC_PER_MSEC);
        ASSERT_TRUE(now - start < 5 * USEC_PER_SEC);
        ASSERT_EQ(finished_action, PG_CALLBACK_ON_STOP);
        ASSERT_EQ(finished_code, -1); /* killed by a signal */
        ASSERT_OK(read_full_file(pidfile, 64, &pidtext, NULL));
        sleeper = (pid_t)atoi(pidtext);
        ASSERT_TRUE(sleeper > 0);
        /* the sleep of its process group is gone as well (it may be a zombie until init reaps it) */
        for (int i = 0; i < 200 && pgctl_pid_alive(sleeper); i++)
                (void)sd_event_run(e, 10 * USEC_PER_MSEC);
        ASSERT_FALSE(pgctl_pid_alive(sleeper));
        (void)unlink(pidfile);
        (void)rmdir(dir);
}

DEFINE_TEST_MAIN
