/* SPDX-License-Identifier: MIT */
/*
 * The Manager: pghad's one sd_event loop, its running configuration, the signal sources, systemd
 * notifications, reloads and the graceful shutdown.
 *
 * Invariant: shutdown is a state, not an exit. Once SIGTERM/SIGINT arrived the manager stays in
 * MANAGER_STOPPING, runs the registered shutdown hooks one at a time (the HA engine releases the leader
 * key and stops PostgreSQL there) and leaves the loop only when the last hook finished or the one overall
 * deadline passed; nothing else may call sd_event_exit(). Likewise a reload never leaves the daemon
 * without a valid configuration: the new one is swapped in only after it loaded without errors.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <systemd/sd-daemon.h>

#include "pgha/config.h"
#include "pgha/log.h"
#include "pgha/manager.h"

/* Hooks' names appear in log lines; a longer name is a programming error, not user input. */
#define MANAGER_HOOK_NAME_MAX 64

typedef enum ManagerHookType {
        MANAGER_HOOK_RELOAD,
        MANAGER_HOOK_SHUTDOWN,
} ManagerHookType;

struct ManagerHook {
        Manager *manager; /* NULL once unlinked */
        ManagerHookType type;
        char *name;
        int order; /* shutdown hooks only: position in the shutdown sequence */
        ManagerReloadFunc reload;
        ManagerShutdownFunc shutdown;
        void *userdata;
        bool floating; /* registered without ret_hook: owned and freed by the manager */

        /* Shutdown progress of this hook. */
        bool started;
        bool finished;

        ManagerHook *prev, *next;
};

struct Manager {
        sd_event *event;
        sd_event_source *sigterm_source;
        sd_event_source *sigint_source;
        sd_event_source *sighup_source;
        sd_event_source *shutdown_deadline_source; /* overall deadline of the graceful shutdown */
        sd_event_source *shutdown_step_source;     /* defer: continue with the next shutdown hook */

        char *config_path; /* NULL: the configuration came from the environment */
        Config *config;

        ManagerState state;
        char *status;         /* last STATUS= text set through manager_set_status(), NULL: none yet */
        unsigned ready_holds; /* READY=1 waits until every holder released */
        bool loop_started;

        ManagerHook *reload_hooks;
        ManagerHook *shutdown_hooks; /* sorted by order, then registration */
        ManagerHook *shutdown_current;
        usec_t shutdown_timeout;
        int shutdown_error; /* first error a shutdown hook reported */
        int exit_status;    /* manager_set_exit_status() */
        bool shutdown_over; /* finished or abandoned at the deadline: late done() calls are ignored */
};

static const char *const manager_state_table[_MANAGER_STATE_MAX] = {
        [MANAGER_STARTING] = "starting",
        [MANAGER_RUNNING] = "running",
        [MANAGER_RELOADING] = "reloading",
        [MANAGER_STOPPING] = "stopping",
};

DEFINE_STRING_TABLE_LOOKUP(manager_state, ManagerState);

static usec_t now_monotonic(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

/* Whether two configurations hold the same values (secrets included); false when unsure (OOM). */
static bool manager_config_equal(const Config *a, const Config *b) {
        cJSON *ja = config_to_json(a, /* mask_secrets= */ false);
        cJSON *jb = config_to_json(b, /* mask_secrets= */ false);
        bool equal = ja && jb && cJSON_Compare(ja, jb, /* case_sensitive= */ true);

        cJSON_Delete(ja);
        cJSON_Delete(jb);
        return equal;
}

/* Logs every diagnostic of a configuration load as its own line, in --validate-config's layout, errors
 * at error level. Problems about a whole source (unreadable file) carry no key. */
static void log_config_diagnostics(const ConfigDiagnostics *d) {
        for (size_t i = 0; i < d->n; i++) {
                const ConfigDiagnostic *item = &d->items[i];
                bool error = item->severity == CONFIG_ERROR;

                log_full(
                        error ? LOG_ERR : LOG_WARNING,
                        "%s:%u:%u: %s%s%s%s",
                        strna(item->file),
                        item->line,
                        item->column,
                        strempty(item->key),
                        isempty(item->key) ? "" : ": ",
                        error ? "" : "warning: ",
                        strna(item->message));
        }
}

/*
 * manager_load_config - loads the configuration from path (a file or a directory; NULL: the
 * environment) and logs every problem found, one line each. Logging: on failure the caller only adds
 * what it does about it. Returns 0 and the new Config in *ret, or -EINVAL when the configuration has
 * errors, or another negative errno.
 */
int manager_load_config(const char *path, Config **ret) {
        _cleanup_(config_diagnostics_done) ConfigDiagnostics diags = {};
        _cleanup_(config_freep) Config *c = NULL;
        int r;

        r = config_load(path, &c, &diags);
        log_config_diagnostics(&diags);
        if (r < 0) {
                if (diags.n == 0)
                        log_error_errno(r, "Failed to load the configuration: %m");
                return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

static void manager_notify(const char *state) {
        /* A failed notification must not stop the daemon; without NOTIFY_SOCKET this is a no-op. */
        if (sd_notify(false, state) < 0)
                log_debug("Failed to send the notification '%s' to the service manager, ignoring.", state);
}

/* manager_set_status - sends STATUS=<formatted text> to the service manager (no-op outside systemd)
 * and remembers it, so that the READY=1 after a reload repeats it instead of a generic text. */
void manager_set_status(Manager *m, const char *format, ...) {
        _cleanup_free_ char *text = NULL, *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&text, format, ap);
        va_end(ap);
        if (r < 0 || asprintf(&msg, "STATUS=%s", text) < 0) {
                log_oom();
                return;
        }
        manager_notify(msg);
        free(m->status);
        m->status = TAKE_PTR(text);
}

static void manager_send_ready(Manager *m) {
        _cleanup_free_ char *msg = NULL;
        int r;

        m->state = MANAGER_RUNNING;
        if (m->status)
                r = asprintf(&msg, "READY=1\nSTATUS=%s", m->status);
        else
                r = asprintf(
                        &msg,
                        "READY=1\nSTATUS=Running as member '%s' of cluster '%s'",
                        strna(m->config->name),
                        strna(m->config->scope));
        manager_notify(r < 0 ? "READY=1" : msg);
}

/* Sends READY=1 when the loop runs, nobody holds it back and we are still starting. */
static void manager_maybe_ready(Manager *m) {
        if (m->state != MANAGER_STARTING || !m->loop_started || m->ready_holds > 0)
                return;
        manager_send_ready(m);
        log_debug("Start-up complete, notified the service manager.");
}

/* manager_ready_hold - holds READY=1 back until a matching manager_ready_release(), so that systemd
 * considers pghad started only once, e.g., the REST API listens and the first HA tick decided a role.
 * Only meaningful before the start-up completed. */
void manager_ready_hold(Manager *m) {
        m->ready_holds++;
}

/* manager_ready_release - drops one hold; READY=1 is sent when the last hold is dropped. */
void manager_ready_release(Manager *m) {
        if (m->ready_holds == 0) {
                log_debug("manager_ready_release() without a hold, ignoring.");
                return;
        }
        m->ready_holds--;
        manager_maybe_ready(m);
}

/* log.level, log.format/dateformat and log.dir (file_size, file_num), at start and on each reload. The
 * layout was checked by config validation; a log directory that cannot be opened keeps the previous
 * output and says why there. */
static void manager_apply_log_config(Manager *m) {
        const Config *c = m->config;
        _cleanup_free_ char *path = NULL;
        const char *current = log_get_file();
        int r;

        log_set_max_level(c->log.level);

        /* Say where the lines go next where they went so far, in the layout used so far. */
        if (c->log.dir) {
                if (asprintf(&path, "%s/%s", c->log.dir, LOG_FILE_NAME) < 0) {
                        log_oom();
                        return;
                }
                if (!streq_ptr(current, path))
                        log_info("Logging to %s.", path);
        } else if (current)
                log_info("Logging to stderr, no longer to %s.", current);

        r = log_set_format(c->log.format, isempty(c->log.dateformat) ? NULL : c->log.dateformat);
        if (r < 0)
                log_warning_errno(r, "Invalid log.format or log.dateformat, keeping the previous layout.");
        r = log_set_file(c->log.dir, (uint64_t)c->log.file_size, (unsigned)c->log.file_num);
        if (r < 0)
                log_error_errno(
                        r,
                        "Cannot open the log file in %s: %m; logging to %s.",
                        c->log.dir,
                        log_get_file() ?: "stderr");
}

#define SWAP(a, b)                     \
        do {                           \
                typeof(a) _tmp_ = (a); \
                (a) = (b);             \
                (b) = _tmp_;           \
        } while (0)

/* Puts the running values of the keys that only take effect at start (name, scope, namespace, the etcd
 * section, the data and configuration directories, citus) back into a freshly loaded configuration,
 * so that "ignoring until restart" holds: every module keeps seeing the identity and locations it
 * started with. The values read from the file move into old, which is freed after the reload.
 * test_manager's no_reload_keys_are_all_kept checks this list against the key table's NO_RELOAD flags. */
static void manager_keep_start_only_values(Config *new_config, Config *old) {
        SWAP(new_config->name, old->name);
        SWAP(new_config->scope, old->scope);
        SWAP(new_config->namespace, old->namespace);
        SWAP(new_config->etcd, old->etcd);
        SWAP(new_config->postgresql.data_dir, old->postgresql.data_dir);
        SWAP(new_config->postgresql.config_dir, old->postgresql.config_dir);
        SWAP(new_config->citus, old->citus);
}

/*
 * manager_reload - reloads the configuration from its original source (file or directory plus the
 * PATRONI_* environment seen at start). On failure the running configuration stays in place. On success
 * the new configuration is swapped in, changed keys that need a restart are logged, the log level is
 * applied and every reload hook runs. Brackets the work with RELOADING=1 / READY=1. Logging. Returns 0
 * on success, -EINVAL if the new configuration has errors, -ESHUTDOWN while shutting down, -EBUSY when
 * called from a reload hook. Reload hooks must not free other hooks (they may free their own).
 */
int manager_reload(Manager *m) {
        _cleanup_(config_freep) Config *old = NULL;
        _cleanup_free_ char *msg = NULL, *restart_keys = NULL;
        Config *new = NULL;
        ManagerState previous = m->state;
        int r;

        if (m->state == MANAGER_STOPPING) {
                log_info("Shutting down, ignoring the reload request.");
                return -ESHUTDOWN;
        }
        if (m->state == MANAGER_RELOADING) {
                log_warning("A reload is already in progress, ignoring the reload request.");
                return -EBUSY;
        }

        if (asprintf(
                    &msg,
                    "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%llu",
                    (unsigned long long)now_monotonic()) < 0)
                return log_oom();
        manager_notify(msg);
        m->state = MANAGER_RELOADING;

        log_info(
                "Reloading the configuration from %s.", m->config_path ? m->config_path : "the environment");

        /* The PATRONI_* values scrubbed at start still apply: config_env_scrub() kept a copy. */
        r = manager_load_config(m->config_path, &new);
        if (r < 0) {
                log_error(
                        "Failed to reload the configuration from %s, keeping the running configuration.",
                        m->config_path ? m->config_path : "the environment");
                goto finish;
        }

        if (manager_config_equal(m->config, new))
                log_info("No local configuration items changed.");
        else if (config_needs_restart(m->config, new, &restart_keys)) {
                log_warning(
                        "Changed settings need a restart: %s, ignoring until restart.", strna(restart_keys));
                manager_keep_start_only_values(new, m->config);
        }

        old = TAKE_PTR(m->config);
        m->config = new;
        manager_apply_log_config(m);

        for (ManagerHook *h = m->reload_hooks, *next; h; h = next) {
                int k;

                next = h->next;
                k = h->reload(m, old, m->config, h->userdata);
                if (k < 0)
                        log_debug_errno(k, "Reload hook '%s' failed: %m", h->name);
        }
        log_info("Reloaded the configuration.");
        r = 0;

finish:
        /* A reload hook may have started the shutdown meanwhile: that state is never left. */
        if (m->state == MANAGER_RELOADING) {
                m->state = previous;
                if (previous == MANAGER_RUNNING)
                        manager_send_ready(m);
        }
        return r;
}

/* Late done() calls (after the deadline, or from a hook already finished) are ignored. */
static void on_shutdown_hook_done(void *done_cookie, int r) {
        ManagerHook *h = done_cookie;
        Manager *m = h->manager;

        if (!m || !h->started || h->finished || m->shutdown_over) {
                log_debug("Ignoring a late completion of shutdown step '%s'.", h->name);
                return;
        }
        h->finished = true;
        if (r < 0) {
                log_warning_errno(r, "Shutdown step '%s' failed: %m", h->name);
                if (m->shutdown_error == 0)
                        m->shutdown_error = r;
        } else
                log_debug("Shutdown step '%s' finished.", h->name);
        if (m->shutdown_current == h)
                m->shutdown_current = NULL;

        /* Continue from the loop, not from inside the hook owner's callback. */
        if (sd_event_source_set_enabled(m->shutdown_step_source, SD_EVENT_ONESHOT) < 0)
                log_error("Failed to schedule the next shutdown step.");
}

static void manager_shutdown_finish(Manager *m) {
        int r;

        m->shutdown_over = true;
        (void)sd_event_source_set_enabled(m->shutdown_deadline_source, SD_EVENT_OFF);
        if (m->shutdown_error < 0)
                log_warning("Shutdown finished with errors.");
        else
                log_info("Shutdown complete.");
        r = sd_event_exit(m->event, m->shutdown_error);
        if (r < 0)
                log_error_errno(r, "Failed to leave the event loop: %m");
}

/* Runs the shutdown hooks in order, as far as they finish synchronously; idempotent. */
static void manager_shutdown_continue(Manager *m) {
        if (m->shutdown_over)
                return;

        while (!m->shutdown_current) {
                ManagerHook *h = m->shutdown_hooks;
                int r;

                while (h && h->started)
                        h = h->next;
                if (!h) {
                        manager_shutdown_finish(m);
                        return;
                }

                h->started = true;
                m->shutdown_current = h;
                log_debug("Running shutdown step '%s'.", h->name);
                r = h->shutdown(m, on_shutdown_hook_done, h, h->userdata);
                if (r < 0 && !h->finished)
                        on_shutdown_hook_done(h, r);
        }
}

static int on_shutdown_step(sd_event_source *s, void *userdata) {
        manager_shutdown_continue(userdata);
        return 0;
}

static int on_shutdown_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_error(
                "Shutdown did not finish within %llu ms, still waiting for '%s'; exiting anyway.",
                (unsigned long long)(m->shutdown_timeout / USEC_PER_MSEC),
                m->shutdown_current ? m->shutdown_current->name : "?");
        m->shutdown_over = true;
        return sd_event_exit(m->event, -ETIMEDOUT);
}

/*
 * manager_start_shutdown - enters the graceful shutdown state: STOPPING=1, arm the overall deadline,
 * then run the shutdown hooks one at a time; the loop exits after the last one. Idempotent: a second
 * request while stopping only logs. Logging. Returns 0 or a negative errno if the deadline timer could
 * not be set up (then the loop is left at once).
 */
int manager_start_shutdown(Manager *m) {
        int r;

        if (m->state == MANAGER_STOPPING) {
                log_info("Shutdown already in progress.");
                return 0;
        }
        m->state = MANAGER_STOPPING;
        manager_notify("STOPPING=1\nSTATUS=Shutting down");

        r = sd_event_add_time_relative(
                m->event,
                &m->shutdown_deadline_source,
                CLOCK_MONOTONIC,
                m->shutdown_timeout,
                /* accuracy= */ 10 * USEC_PER_MSEC,
                on_shutdown_deadline,
                m);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the shutdown deadline, exiting at once: %m");
                m->shutdown_over = true;
                (void)sd_event_exit(m->event, r);
                return r;
        }
        (void)sd_event_source_set_description(m->shutdown_deadline_source, "manager-shutdown-deadline");
        (void)sd_event_source_set_priority(m->shutdown_deadline_source, PGHA_PRIORITY_MANAGER);

        manager_shutdown_continue(m);
        return 0;
}

void manager_set_exit_status(Manager *m, int status) {
        m->exit_status = status;
}

int manager_get_exit_status(const Manager *m) {
        return m->exit_status;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        switch (si->ssi_signo) {
        case SIGHUP:
                log_info("Received SIGHUP.");
                (void)manager_reload(m);
                break;
        case SIGTERM:
        case SIGINT:
                log_info("Received %s, shutting down.", si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                (void)manager_start_shutdown(m);
                break;
        default:
                break;
        }
        return 0;
}

static int manager_add_signal(Manager *m, sd_event_source **ret, int sig, const char *description) {
        int r;

        r = sd_event_add_signal(m->event, ret, sig, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the %s source: %m", description);
        (void)sd_event_source_set_description(*ret, description);
        r = sd_event_source_set_priority(*ret, PGHA_PRIORITY_MANAGER);
        if (r < 0)
                return log_error_errno(r, "Failed to set the priority of %s: %m", description);
        return 0;
}

/*
 * manager_new - builds the manager around the default sd_event and takes ownership of config (loaded
 * from config_path, NULL meaning the environment). Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD (child
 * sources need SIGCHLD blocked) and ignores SIGPIPE: child processes inherit both, so whoever spawns a
 * child must reset its signal mask and dispositions. Removes the PATRONI_* variables from the environment.
 * Enables the systemd watchdog if WatchdogSec= is set. Logging. On failure config is freed too.
 */
int manager_new(const char *config_path, Config *config, Manager **ret) {
        _cleanup_(config_freep) Config *config_owned = config;
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        if (!config)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "No configuration given to the manager.");

        m = new0(Manager, 1);
        if (!m)
                return log_oom();
        m->state = MANAGER_STARTING;
        m->shutdown_timeout = PGHA_SHUTDOWN_TIMEOUT_USEC;
        m->config = TAKE_PTR(config_owned);
        if (config_path) {
                m->config_path = strdup(config_path);
                if (!m->config_path)
                        return log_oom();
        }

        /* As Patroni: PostgreSQL and callbacks must not inherit PATRONI_* (passwords); the loader keeps
         * a private copy so that reloads apply the same overrides. */
        r = config_env_scrub();
        if (r < 0)
                return log_oom();

        manager_apply_log_config(m);

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");

        if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGTERM) < 0 || sigaddset(&mask, SIGINT) < 0 ||
            sigaddset(&mask, SIGHUP) < 0 || sigaddset(&mask, SIGCHLD) < 0)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Failed to build the signal mask.");
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return log_error_errno(errno, "Failed to ignore SIGPIPE: %m");

        r = manager_add_signal(m, &m->sigterm_source, SIGTERM, "manager-sigterm");
        if (r < 0)
                return r;
        r = manager_add_signal(m, &m->sigint_source, SIGINT, "manager-sigint");
        if (r < 0)
                return r;
        r = manager_add_signal(m, &m->sighup_source, SIGHUP, "manager-sighup");
        if (r < 0)
                return r;

        r = sd_event_add_defer(m->event, &m->shutdown_step_source, on_shutdown_step, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the shutdown step source: %m");
        (void)sd_event_source_set_description(m->shutdown_step_source, "manager-shutdown-step");
        (void)sd_event_source_set_priority(m->shutdown_step_source, PGHA_PRIORITY_MANAGER);
        r = sd_event_source_set_enabled(m->shutdown_step_source, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to disable the shutdown step source: %m");

        /* Pings systemd every WatchdogSec/2 from the loop itself: a blocked loop stops the pings. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the service manager's watchdog: %m");
        if (r > 0)
                log_debug("Service manager watchdog enabled.");

        *ret = TAKE_PTR(m);
        return 0;
}

static void manager_hook_unlink(ManagerHook *h) {
        Manager *m = h->manager;
        ManagerHook **head;

        if (!m)
                return;
        head = h->type == MANAGER_HOOK_RELOAD ? &m->reload_hooks : &m->shutdown_hooks;
        if (h->prev)
                h->prev->next = h->next;
        else
                *head = h->next;
        if (h->next)
                h->next->prev = h->prev;
        h->prev = h->next = NULL;

        /* The owner went away while its shutdown step was pending: count it as done. */
        if (m->shutdown_current == h) {
                m->shutdown_current = NULL;
                if (!m->shutdown_over)
                        (void)sd_event_source_set_enabled(m->shutdown_step_source, SD_EVENT_ONESHOT);
        }
        h->manager = NULL;
}

/* manager_hook_free - unregisters a hook and frees it; accepts NULL, returns NULL. A shutdown hook
 * freed while its step is pending counts as finished. Non-logging. */
ManagerHook *manager_hook_free(ManagerHook *h) {
        if (!h)
                return NULL;
        manager_hook_unlink(h);
        free(h->name);
        return mfree(h);
}

static int manager_hook_new(Manager *m, ManagerHookType type, const char *name, ManagerHook **ret) {
        _cleanup_free_ ManagerHook *h = NULL;

        if (isempty(name) || strlen(name) > MANAGER_HOOK_NAME_MAX)
                return -EINVAL;
        h = new0(ManagerHook, 1);
        if (!h)
                return -ENOMEM;
        h->name = strdup(name);
        if (!h->name)
                return -ENOMEM;
        h->type = type;
        *ret = TAKE_PTR(h);
        return 0;
}

/*
 * manager_add_reload_hook - registers func to run after every successful reload. With ret_hook the
 * caller owns the registration (free it with manager_hook_free() before userdata goes away); without,
 * the manager keeps it until manager_free(). Hooks run in registration order. Non-logging; returns 0,
 * -EINVAL or -ENOMEM.
 */
int manager_add_reload_hook(
        Manager *m, const char *name, ManagerReloadFunc func, void *userdata, ManagerHook **ret_hook) {
        ManagerHook *h, **tail;
        int r;

        if (!m || !func)
                return -EINVAL;
        r = manager_hook_new(m, MANAGER_HOOK_RELOAD, name, &h);
        if (r < 0)
                return r;
        h->reload = func;
        h->userdata = userdata;
        h->floating = !ret_hook;
        h->manager = m;

        for (tail = &m->reload_hooks; *tail; tail = &(*tail)->next)
                h->prev = *tail;
        *tail = h;

        if (ret_hook)
                *ret_hook = h;
        return 0;
}

/*
 * manager_add_shutdown_hook - registers func as one step of the graceful shutdown, run in ascending
 * order (PGHA_SHUTDOWN_ORDER_*), equal orders in registration order. Ownership as for
 * manager_add_reload_hook(). A hook added while the shutdown already runs is run too, after the current
 * one. Non-logging; returns 0, -EINVAL or -ENOMEM.
 */
int manager_add_shutdown_hook(
        Manager *m,
        const char *name,
        int order,
        ManagerShutdownFunc func,
        void *userdata,
        ManagerHook **ret_hook) {
        ManagerHook *h, *i, *prev = NULL;
        int r;

        if (!m || !func)
                return -EINVAL;
        r = manager_hook_new(m, MANAGER_HOOK_SHUTDOWN, name, &h);
        if (r < 0)
                return r;
        h->shutdown = func;
        h->order = order;
        h->userdata = userdata;
        h->floating = !ret_hook;
        h->manager = m;

        for (i = m->shutdown_hooks; i && i->order <= order; i = i->next)
                prev = i;
        h->prev = prev;
        h->next = prev ? prev->next : m->shutdown_hooks;
        if (h->next)
                h->next->prev = h;
        if (prev)
                prev->next = h;
        else
                m->shutdown_hooks = h;

        if (ret_hook)
                *ret_hook = h;
        return 0;
}

static void manager_hooks_release(ManagerHook **head) {
        while (*head) {
                ManagerHook *h = *head;

                manager_hook_unlink(h);
                /* Caller-owned hooks stay allocated (their owner frees them), merely detached. */
                if (h->floating)
                        manager_hook_free(h);
        }
}

/* manager_free - frees the manager, its sources, the configuration and the hooks it owns; hooks held
 * by callers are detached (manager_hook_free() on them stays valid). Accepts NULL, returns NULL. */
Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        m->shutdown_over = true;
        manager_hooks_release(&m->reload_hooks);
        manager_hooks_release(&m->shutdown_hooks);

        m->sigterm_source = sd_event_source_disable_unref(m->sigterm_source);
        m->sigint_source = sd_event_source_disable_unref(m->sigint_source);
        m->sighup_source = sd_event_source_disable_unref(m->sighup_source);
        m->shutdown_deadline_source = sd_event_source_disable_unref(m->shutdown_deadline_source);
        m->shutdown_step_source = sd_event_source_disable_unref(m->shutdown_step_source);
        m->event = sd_event_unref(m->event);

        m->config = config_free(m->config);
        free(m->config_path);
        free(m->status);
        return mfree(m);
}

/* manager_get_event - the loop every module attaches its sources to; owned by the manager. */
sd_event *manager_get_event(Manager *m) {
        return m->event;
}

/* manager_get_config - the running configuration. Do not keep the pointer across a reload: the old
 * configuration is freed once the reload hooks returned. */
const Config *manager_get_config(Manager *m) {
        return m->config;
}

/* manager_get_config_path - the file or directory the configuration comes from, NULL for the
 * environment. */
const char *manager_get_config_path(Manager *m) {
        return m->config_path;
}

/* manager_get_state - starting, running, reloading or stopping. */
ManagerState manager_get_state(Manager *m) {
        return m->state;
}

/* manager_set_shutdown_timeout - overall deadline of the graceful shutdown (default
 * PGHA_SHUTDOWN_TIMEOUT_USEC); takes effect at the next shutdown start. */
void manager_set_shutdown_timeout(Manager *m, usec_t timeout) {
        m->shutdown_timeout = timeout;
}

/*
 * manager_run - runs the loop until the graceful shutdown ends. Sends READY=1 at once unless held
 * back with manager_ready_hold(). Logging. Returns 0 after a clean shutdown, -ETIMEDOUT when the
 * shutdown deadline passed, the first error of a failed shutdown step, or the loop's own error.
 */
int manager_run(Manager *m) {
        int r;

        m->loop_started = true;
        manager_maybe_ready(m);

        r = sd_event_loop(m->event);
        if (r < 0 && r != m->shutdown_error && r != -ETIMEDOUT)
                log_error_errno(r, "Event loop failed: %m");
        return r;
}
