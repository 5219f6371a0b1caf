/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-pgctl: drives one pgctl job (or callbacks) on a real sd-event loop against real PostgreSQL,
 * for tests/integration/test_pgctl*.py. Usage: pgha-test-pgctl CONFIG.json COMMAND [ARGS...]; prints one
 * JSON object {"command", "ok", "error", ...} on stdout and exits 0 when ok, 1 otherwise.
 */

#include <signal.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "pgha/callbacks.h"
#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/pgconf.h"
#include "pgha/pgctl.h"
#include "pgha/proc.h"

static bool done;
static int result;
static char *error;
static bool signalled;
static char *method;
static char *output;

static void on_job(PgCtlJob *j, int r, const char *err, void *userdata) {
        done = true;
        result = r;
        error = err ? strdup(err) : NULL;
        signalled = pgctl_job_signalled(j);
        method = pgctl_job_method(j) ? strdup(pgctl_job_method(j)) : NULL;
        output = pgctl_job_output(j) ? strdup(pgctl_job_output(j)) : NULL;
        (void)sd_event_exit(userdata, 0);
}

static int parse_hostport(const char *s, char **host, unsigned *port) {
        const char *c = strrchr(s, ':');
        if (!c)
                return -EINVAL;
        *host = strndup(s, (size_t)(c - s));
        *port = (unsigned)strtoul(c + 1, NULL, 10);
        return *host ? 0 : -ENOMEM;
}

static cJSON *callbacks_log;

static void on_callback_done(PgCallback action, int exit_code, void *userdata) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "action", pg_callback_to_string(action));
        cJSON_AddNumberToObject(o, "exit_code", exit_code);
        cJSON_AddItemToArray(callbacks_log, o);
}

static int on_callback_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        CallbackRunner *c = userdata;
        if (!callbacks_is_running(c)) {
                done = true;
                return sd_event_exit(sd_event_source_get_event(s), 0);
        }
        (void)sd_event_source_set_time(s, usec + 20 * USEC_PER_MSEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int main(int argc, char **argv) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_(pg_params_done) PgParams recovery = {};
        _cleanup_(pgctl_job_freep) PgCtlJob *job = NULL;
        _cleanup_(callback_runner_freep) CallbackRunner *runner = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *poll = NULL;
        _cleanup_free_ char *text = NULL, *err = NULL, *host = NULL, *conf = NULL;
        const char *cmd;
        cJSON *config, *out;
        sigset_t ss;
        usec_t t0, t1;
        int r;

        if (argc < 3) {
                fprintf(stderr, "usage: %s CONFIG.json COMMAND [ARGS...]\n", argv[0]);
                return 2;
        }
        log_set_force_stderr(true);
        log_set_max_level(LOG_DEBUG);
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        sigprocmask(SIG_BLOCK, &ss, NULL);

        r = read_full_file(argv[1], 1 << 20, &text, NULL);
        if (r < 0) {
                fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(-r));
                return 2;
        }
        config = cJSON_Parse(text);
        if (!config || pg_settings_from_json(config, &s, &err) < 0) {
                fprintf(stderr, "bad configuration: %s\n", strna(err));
                return 2;
        }
        cJSON_Delete(config);

        if (sd_event_default(&e) < 0)
                return 2;
        cmd = argv[2];
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "command", cmd);
        (void)sd_event_now(e, CLOCK_MONOTONIC, &t0);

        /* Optional HOST:PORT upstream for start/restart/reload (replica), create-replica, rewind. */
        if (argc > 3 && !streq(argv[3], "-") && strchr(argv[3], ':') && !streq(cmd, "callback")) {
                unsigned port;
                if (parse_hostport(argv[3], &host, &port) < 0)
                        return 2;
                if (streq(cmd, "start") || streq(cmd, "restart") || streq(cmd, "reload") ||
                    streq(cmd, "render-conf")) {
                        if (pgconf_recovery_params(&s, host, port, &recovery) < 0)
                                return 2;
                }
                if (streq(cmd, "create-replica"))
                        r = pgctl_create_replica(
                                e, &s, host, port, argc > 4 && streq(argv[4], "wipe"), on_job, e, &job);
                else if (streq(cmd, "rewind"))
                        r = pgctl_rewind(e, &s, host, port, on_job, e, &job);
        }
        const PgParams *rec = recovery.n > 0 ? &recovery : NULL;

        if (streq(cmd, "bootstrap"))
                r = pgctl_bootstrap(e, &s, on_job, e, &job);
        else if (streq(cmd, "initdb"))
                r = pgctl_initdb(e, &s, on_job, e, &job);
        else if (streq(cmd, "start"))
                r = pgctl_start(e, &s, rec, on_job, e, &job);
        else if (streq(cmd, "stop"))
                r = pgctl_stop(
                        e,
                        &s,
                        pg_stop_mode_from_string(argc > 3 ? argv[3] : "fast"),
                        argc > 4 && streq(argv[4], "checkpoint"),
                        on_job,
                        e,
                        &job);
        else if (streq(cmd, "restart"))
                r = pgctl_restart(e, &s, rec, on_job, e, &job);
        else if (streq(cmd, "reload"))
                r = pgctl_reload(e, &s, rec, on_job, e, &job);
        else if (streq(cmd, "controldata"))
                r = pgctl_controldata(e, &s, on_job, e, &job);
        else if (streq(cmd, "checkpoint"))
                r = pgctl_checkpoint(e, &s, on_job, e, &job);
        else if (streq(cmd, "promote"))
                r = pgctl_promote(e, &s, on_job, e, &job);
        else if (streq(cmd, "create-replica")) {
                if (!job)
                        r = pgctl_create_replica(
                                e, &s, NULL, 0, argc > 4 && streq(argv[4], "wipe"), on_job, e, &job);
        } else if (streq(cmd, "rewind")) {
                if (!job)
                        r = -EINVAL;
        } else if (streq(cmd, "crash-recovery"))
                r = pgctl_crash_recovery(e, &s, on_job, e, &job);
        else if (streq(cmd, "remove-data-dir"))
                r = pgctl_remove_data_dir(e, &s, on_job, e, &job);
        else if (streq(cmd, "postmaster-pid")) {
                pid_t pid = 0;
                r = pgctl_postmaster_pid(s.data_dir, &pid);
                cJSON_AddNumberToObject(out, "pid", pid);
                done = true;
                result = r < 0 ? r : 0;
        } else if (streq(cmd, "render-conf")) {
                r = pgconf_render_postgresql_conf(&s, rec, &conf);
                cJSON_AddStringToObject(out, "text", strempty(conf));
                done = true;
                result = r < 0 ? r : 0;
        } else if (streq(cmd, "callback")) {
                /* callback ACTION ROLE [ACTION ROLE ...]: started back to back, then wait for all. */
                callbacks_log = cJSON_AddArrayToObject(out, "finished");
                r = callback_runner_new(e, &s, &runner);
                if (r >= 0) {
                        callback_runner_set_notify(runner, on_callback_done, NULL);
                        for (int i = 3; i + 1 < argc && r >= 0; i += 2)
                                r = callbacks_run(runner, pg_callback_from_string(argv[i]), argv[i + 1]);
                }
                if (r >= 0)
                        r = sd_event_add_time_relative(
                                e, &poll, CLOCK_MONOTONIC, 0, 0, on_callback_poll, runner);
        } else {
                fprintf(stderr, "unknown command %s\n", cmd);
                return 2;
        }

        if (r < 0) {
                result = r;
                error = strdup(strerror(-r));
        } else if (!done)
                (void)sd_event_loop(e);

        (void)sd_event_now(e, CLOCK_MONOTONIC, &t1);
        cJSON_AddBoolToObject(out, "ok", result >= 0);
        if (error)
                cJSON_AddStringToObject(out, "error", error);
        cJSON_AddBoolToObject(out, "signalled", signalled);
        if (method)
                cJSON_AddStringToObject(out, "method", method);
        if (output) {
                /* pg_controldata's "key: value" lines as an object. */
                cJSON *cd = cJSON_AddObjectToObject(out, "controldata");
                for (char *line = output; line && *line;) {
                        char *nl = strchr(line, '\n'), *colon;
                        if (nl)
                                *nl = '\0';
                        colon = strchr(line, ':');
                        if (colon) {
                                *colon = '\0';
                                cJSON_AddStringToObject(cd, line, colon + 1 + strspn(colon + 1, " "));
                        }
                        line = nl ? nl + 1 : NULL;
                }
                free(output);
        }
        cJSON_AddNumberToObject(out, "seconds", (double)(t1 - t0) / USEC_PER_SEC);
        char *printed = cJSON_PrintUnformatted(out);
        printf("%s\n", printed);
        free(printed);
        cJSON_Delete(out);
        free(error);
        free(method);
        return result >= 0 ? 0 : 1;
}
