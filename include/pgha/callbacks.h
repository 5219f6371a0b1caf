/* SPDX-License-Identifier: MIT */
/*
 * User callbacks (postgresql.callbacks.on_start/on_stop/on_restart/on_reload/on_role_change) run as
 * Patroni runs them (patroni-compat.md §6.10): the configured string split shell-like into argv (no
 * shell), plus three arguments "<action> <role> <scope>", e.g. "on_role_change master batman".
 * Fire-and-forget for the caller: callbacks_run() only spawns. One callback runs at a time (on_reload
 * has its own slot, as Patroni has a separate executor for it); a new one kills the running one and
 * its process group. Each has a deadline after which it is terminated.
 */
#pragma once

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "pgha/macro.h"
#include "pgha/pgconf.h"

typedef struct CallbackRunner CallbackRunner;

/* Default deadline of one callback run; Patroni has none, but a hung script must not live forever. */
#define CALLBACK_TIMEOUT_DEFAULT (10 * USEC_PER_MINUTE)

/* Optional notification when a callback finished (tests, metrics): exit_code -1 when killed. */
typedef void (*callback_done_t)(PgCallback action, int exit_code, void *userdata);

/* callback_runner_new() - a runner for the callbacks and scope in s (borrowed: must outlive it). */
int callback_runner_new(sd_event *e, const PgSettings *s, CallbackRunner **ret) _warn_unused_result_;
/* callback_runner_free() - kills running callbacks; no notification runs afterwards. */
CallbackRunner *callback_runner_free(CallbackRunner *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CallbackRunner *, callback_runner_free);

void callback_runner_set_timeout(CallbackRunner *c, usec_t timeout);
void callback_runner_set_notify(CallbackRunner *c, callback_done_t done, void *userdata);

/* callbacks_run() - starts the configured script for action with role ("master", "replica",
 * "standby_leader", "demoted") if one is configured; returns 1 if started, 0 if none is configured,
 * negative errno (logged) if it could not be started. Never waits. Logging. */
int callbacks_run(CallbackRunner *c, PgCallback action, const char *role);

/* callbacks_is_running() - whether a callback (any slot) is still running. */
bool callbacks_is_running(const CallbackRunner *c);
