/* SPDX-License-Identifier: MIT */
/*
 * Manager: the one object of pghad that knows every other module. It owns the single sd_event loop,
 * the running configuration, the signal sources (SIGTERM/SIGINT: graceful shutdown, SIGHUP: reload),
 * the systemd notifications (READY=1, RELOADING=1, STOPPING=1, STATUS=, watchdog) and two small hook
 * lists through which the HA engine, the REST server and the etcd client take part in reloads and in
 * the graceful shutdown. Modules attach their own sources to manager_get_event() with the priorities
 * below, and read the configuration through manager_get_config() at the time they need it.
 */
#pragma once

#include <systemd/sd-event.h>

#include "pgha/macro.h"

typedef struct Config Config;
typedef struct Manager Manager;
typedef struct ManagerHook ManagerHook;

/*
 * Event source priorities (sd_event_source_set_priority(); a smaller value is dispatched first when
 * several sources are pending in the same iteration). Leadership must never wait behind API traffic:
 * the lease keep-alive and the etcd I/O carrying it come first, then the manager's own signal sources
 * (so a pending SIGHUP is applied before the next HA tick, as Patroni reloads before each cycle), then
 * the HA tick with its PostgreSQL probes and jobs, and the REST API last.
 */
#define PGHA_PRIORITY_LEASE    (-400) /* leader lease keep-alive and watchdog feed timers */
#define PGHA_PRIORITY_DCS      (-300) /* etcd client: curl io sources and timer, watch stream */
#define PGHA_PRIORITY_MANAGER  (-200) /* SIGTERM/SIGINT/SIGHUP, shutdown deadline */
#define PGHA_PRIORITY_HA       (-100) /* HA tick timer, job step timers, child processes of jobs */
#define PGHA_PRIORITY_POSTGRES (-50)  /* libpq connection io sources and query deadlines */
#define PGHA_PRIORITY_REST     0      /* REST API (libmicrohttpd epoll fd and timer) */
#define PGHA_PRIORITY_IDLE     100    /* housekeeping that may always wait */

/*
 * Shutdown hook order: hooks run one after another, lowest order first (equal orders in registration
 * order), mirroring Patroni: stop the REST server first, then let the HA engine finish or abort its job,
 * stop PostgreSQL and release the leader key, and let the etcd client go last so that the HA engine's
 * final writes (leader key delete, member key "stopped") still reach etcd.
 */
#define PGHA_SHUTDOWN_ORDER_REST 100
#define PGHA_SHUTDOWN_ORDER_HA   200
#define PGHA_SHUTDOWN_ORDER_DCS  300

/* Default overall deadline of the graceful shutdown; systemd/pghad.service's TimeoutStopSec= is larger
 * so pghad always reaches its own deadline (and logs what did not finish) before systemd SIGKILLs it. */
#define PGHA_SHUTDOWN_TIMEOUT_USEC (60 * USEC_PER_SEC)

typedef enum ManagerState {
        MANAGER_STARTING,  /* built, loop not yet running or READY=1 still held back */
        MANAGER_RUNNING,   /* READY=1 sent */
        MANAGER_RELOADING, /* inside a reload (RELOADING=1 sent, READY=1 follows) */
        MANAGER_STOPPING,  /* graceful shutdown in progress (STOPPING=1 sent); never left */
        _MANAGER_STATE_MAX,
        _MANAGER_STATE_INVALID = -EINVAL,
} ManagerState;

const char *manager_state_to_string(ManagerState s);
ManagerState manager_state_from_string(const char *s);

/*
 * Reload hook: called after a successful reload, once the new configuration is in place
 * (manager_get_config() already returns new_config; old_config stays valid until every hook returned).
 * Keys that take effect only at start (NO_RELOAD: name, scope, namespace, etcd3.*, data_dir, ...) keep
 * their running values in new_config (a change is logged "..., ignoring until restart"); old_config then
 * holds what the file says for them, so compare only reloadable keys. Hooks also run when nothing
 * changed (PostgreSQL is reloaded on every SIGHUP, as Patroni does). Synchronous and logging: a hook
 * logs its own problems; a negative return is noted by the manager and the remaining hooks still run.
 */
typedef int (*ManagerReloadFunc)(
        Manager *m, const Config *old_config, const Config *new_config, void *userdata);

/*
 * Shutdown hook: called once when the graceful shutdown reaches this hook's turn. It may finish at once
 * or start asynchronous work (stop PostgreSQL, delete the leader key) and finish later. Either way it
 * must call done(done_cookie, r) exactly once, possibly before returning, with r = 0 or a negative
 * errno, and then return 0; or return a negative errno without calling done (same as finishing with
 * that error). Logging: the hook logs its own details. done may be called from any later callback of
 * the same loop while the Manager exists; a call after the overall deadline passed is ignored.
 */
typedef void (*ManagerDoneFunc)(void *done_cookie, int r);
typedef int (*ManagerShutdownFunc)(Manager *m, ManagerDoneFunc done, void *done_cookie, void *userdata);

int manager_load_config(const char *path, Config **ret) _warn_unused_result_;

int manager_new(const char *config_path, Config *config, Manager **ret) _warn_unused_result_;
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

sd_event *manager_get_event(Manager *m);
const Config *manager_get_config(Manager *m);
const char *manager_get_config_path(Manager *m);
ManagerState manager_get_state(Manager *m);

void manager_set_shutdown_timeout(Manager *m, usec_t timeout);

int manager_add_reload_hook(
        Manager *m, const char *name, ManagerReloadFunc func, void *userdata, ManagerHook **ret_hook);
int manager_add_shutdown_hook(
        Manager *m,
        const char *name,
        int order,
        ManagerShutdownFunc func,
        void *userdata,
        ManagerHook **ret_hook);
ManagerHook *manager_hook_free(ManagerHook *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerHook *, manager_hook_free);

void manager_ready_hold(Manager *m);
void manager_ready_release(Manager *m);

void manager_set_status(Manager *m, const char *format, ...) _printf_(2, 3);

int manager_reload(Manager *m);
int manager_start_shutdown(Manager *m);

/* manager_set_exit_status() - the status pghad exits with once the loop ends (default 0); a fatal
 * condition (Patroni's PatroniFatalException: failed bootstrap, system ID mismatch) sets 1 before
 * manager_start_shutdown(). manager_get_exit_status() reads it back. */
void manager_set_exit_status(Manager *m, int status);
int manager_get_exit_status(const Manager *m);
int manager_run(Manager *m);
