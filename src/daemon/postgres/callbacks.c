/* SPDX-License-Identifier: MIT */
/*
 * Runs user callback scripts asynchronously with Patroni's arguments. Two slots: on_reload, and all
 * other actions; starting a callback in a busy slot kills the previous one (its whole process group),
 * as Patroni's CallbackExecutor does, so a stale on_role_change can never finish after a newer one.
 *
 * Invariant: callbacks_run() never blocks and never calls back into the caller synchronously.
 */

#include <stdio.h>

#include "pgha/callbacks.h"
#include "pgha/log.h"
#include "pgha/proc.h"

enum {
        SLOT_MAIN,
        SLOT_RELOAD,
        _SLOT_MAX,
};

typedef struct CallbackSlot {
        CallbackRunner *runner;
        Proc *proc;
        PgCallback action;
} CallbackSlot;

struct CallbackRunner {
        sd_event *event;
        const PgSettings *settings;
        usec_t timeout;
        callback_done_t done;
        void *userdata;
        CallbackSlot slots[_SLOT_MAX];
};

/* callback_runner_new() - a runner for the callbacks and scope in s (borrowed: must outlive it). */
int callback_runner_new(sd_event *e, const PgSettings *s, CallbackRunner **ret) {
        CallbackRunner *c;

        if (!e || !s || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(CallbackRunner));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        c->settings = s;
        c->timeout = CALLBACK_TIMEOUT_DEFAULT;
        for (size_t i = 0; i < _SLOT_MAX; i++)
                c->slots[i].runner = c;
        *ret = c;
        return 0;
}

/* callback_runner_free() - kills running callbacks; no notification runs afterwards. */
CallbackRunner *callback_runner_free(CallbackRunner *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < _SLOT_MAX; i++)
                c->slots[i].proc = proc_free(c->slots[i].proc);
        sd_event_unref(c->event);
        return mfree(c);
}

/* callback_runner_set_timeout() - deadline for callbacks started from now on. */
void callback_runner_set_timeout(CallbackRunner *c, usec_t timeout) {
        c->timeout = timeout;
}

/* callback_runner_set_notify() - optional completion notification (not for killed callbacks). */
void callback_runner_set_notify(CallbackRunner *c, callback_done_t done, void *userdata) {
        c->done = done;
        c->userdata = userdata;
}

/* callbacks_is_running() - whether a callback (any slot) is still running. */
bool callbacks_is_running(const CallbackRunner *c) {
        for (size_t i = 0; c && i < _SLOT_MAX; i++)
                if (proc_is_running(c->slots[i].proc))
                        return true;
        return false;
}

static void on_callback_done(Proc *p, const ProcResult *r, void *userdata) {
        CallbackSlot *slot = userdata;
        CallbackRunner *c = slot->runner;
        PgCallback action = slot->action;
        int code = r->signal ? -1 : r->exit_code;

        if (proc_result_ok(r))
                log_info("Callback %s finished.", pg_callback_to_string(action));
        else
                log_warning(
                        "Callback %s failed: %s %d%s; stderr: %.200s",
                        pg_callback_to_string(action),
                        r->signal ? "signal" : "exit code",
                        r->signal ?: r->exit_code,
                        r->timed_out ? " (timed out)" : "",
                        r->err);
        slot->proc = proc_free(slot->proc);
        if (c->done)
                c->done(action, code, c->userdata);
}

/* callbacks_run() - starts the configured script for action with role ("master", "replica",
 * "standby_leader", "demoted") if one is configured; returns 1 if started, 0 if none is configured,
 * negative errno (logged) if it could not be started. Never waits. Logging. */
int callbacks_run(CallbackRunner *c, PgCallback action, const char *role) {
        const char *script;
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *line = NULL;
        ProcOptions opts = PROC_OPTIONS_INIT;
        CallbackSlot *slot;
        int r;

        if (!c || action < 0 || action >= _PG_CALLBACK_MAX || isempty(role))
                return -EINVAL;
        script = c->settings->callbacks[action];
        if (isempty(script))
                return 0;
        r = proc_split_command(script, &argv);
        if (r < 0)
                return log_error_errno(
                        r,
                        "postgresql.callbacks.%s: cannot parse '%s': %m",
                        pg_callback_to_string(action),
                        script);
        if (proc_strv_push(&argv, pg_callback_to_string(action)) < 0 || proc_strv_push(&argv, role) < 0 ||
            proc_strv_push(&argv, strempty(c->settings->scope)) < 0)
                return log_oom();

        slot = &c->slots[action == PG_CALLBACK_ON_RELOAD ? SLOT_RELOAD : SLOT_MAIN];
        if (proc_is_running(slot->proc))
                log_warning(
                        "Killing the still running %s callback (PID %d) to run %s.",
                        pg_callback_to_string(slot->action),
                        (int)proc_get_pid(slot->proc),
                        pg_callback_to_string(action));
        slot->proc = proc_free(slot->proc); /* kills its process group, no notification */

        opts.description = pg_callback_to_string(action);
        opts.timeout = c->timeout;
        opts.strip_patroni_env = false;
        slot->action = action;
        r = proc_spawn(c->event, argv, &opts, on_callback_done, slot, &slot->proc);
        line = proc_argv_to_string(argv);
        if (r < 0)
                return log_error_errno(r, "Failed to run callback %s: %m", strna(line));
        log_info("Running callback: %s", strna(line));
        return 1;
}
