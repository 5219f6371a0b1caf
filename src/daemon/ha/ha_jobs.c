/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL jobs run for the HA engine: at most one at a time (h->job), each a sequence of steps
 * (JobStep) that ends in ha_job_finish(), which sets the role the decision asked for only when the job
 * succeeded, fires Patroni's callbacks at Patroni's events and runs the next tick at once. Also the
 * bootstrap: the initialize race, and after a failed first bootstrap moving the data directory aside.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha-internal.h"

static void job_advance(Ha *h);

int ha_member_host_port(Ha *h, const char *name, char **ret_host, unsigned *ret_port) {
        const DcsMember *m;

        if (isempty(name) || !h->cluster)
                return -ENOENT;
        m = dcs_cluster_find_member(h->cluster, name);
        if (!m || isempty(m->conn_url))
                return -ENOENT;
        return pgconf_parse_conn_url(m->conn_url, ret_host, ret_port);
}

/* Fills *ret with the recovery section following target (NULL/"" = nobody); sets h->following. */
int ha_recovery_for(Ha *h, const char *target, PgParams *ret) {
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r;

        (void)ha_member_host_port(h, target, &host, &port);
        r = pgconf_recovery_params(&h->pgs, host, port, ret);
        if (r < 0)
                return r;
        free(h->following);
        h->following = NULL;
        if (host && asprintf(&h->following, "%s:%u", host, port) < 0)
                h->following = NULL;
        h->upstream_cleared = !host;
        h->detached_probes = 0;
        return 0;
}

/* postgresql.conf, pg_hba.conf and pg_ident.conf as they are now, concatenated; NULL on error. */
char *ha_reload_files_text(Ha *h) {
        static const char *const files[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"};
        char *all = NULL;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = pgconf_path(&h->pgs, files[i]), *text = NULL;
                char *joined;

                if (!path || read_full_file(path, 4 * 1024 * 1024, &text, NULL) < 0)
                        text = NULL;
                if (asprintf(&joined, "%s%s\n\f", strempty(all), strempty(text)) < 0) {
                        free(all);
                        return NULL;
                }
                free(all);
                all = joined;
        }
        return all;
}

/* Patroni's call_nowait(): runs the configured callback with the role ("master", "replica",
 * "demoted"); every action but ha_on_reload marks callbacks as called. */
void ha_fire_callback(Ha *h, PgCallback action, const char *role) {
        if (action != PG_CALLBACK_ON_RELOAD)
                h->cb_called = true;
        if (h->callbacks)
                (void)callbacks_run(h->callbacks, action, role);
}

/* The role a callback gets for the running PostgreSQL: "master" for a primary, else "replica". */
const char *ha_callback_role(Ha *h) {
        const PgStatus *st = pgstatus(h);

        if (h->role == HA_ROLE_PRIMARY || (st && st->query_ok && !st->in_recovery))
                return "master";
        return "replica";
}

void ha_job_finish(Ha *h, int r) {
        HaJob kind = h->job_kind;

        h->job_last = kind;
        h->job_last_failed = r < 0;
        h->job_last_fresh = true;
        if (r >= 0 && h->job_next_role_set)
                h->role = h->job_next_role;
        if (kind == HA_JOB_REWIND)
                h->rewind_failed = r < 0;
        if (kind == HA_JOB_START || kind == HA_JOB_RESTART)
                h->start_failed_seen = r < 0;
        if (r < 0) /* the recovery section it was to apply may not be live */
                h->upstream_cleared = false;
        if (r >= 0 && h->job_step == STEP_RESTART)
                ha_fire_callback(h, PG_CALLBACK_ON_RESTART, ha_callback_role(h));
        if (r >= 0 && kind == HA_JOB_RELOAD) {
                _cleanup_free_ char *after = h->reload_before ? ha_reload_files_text(h) : NULL;

                /* Patroni reloads (and calls ha_on_reload) only when a setting changed */
                if (!h->reload_before || !streq_ptr(after, h->reload_before))
                        ha_fire_callback(h, PG_CALLBACK_ON_RELOAD, ha_callback_role(h));
        }
        h->reload_before = mfree(h->reload_before);
        if (h->job_step == STEP_RESTART) {
                ha_call_reply(
                        &h->restart_call,
                        r < 0 ? 503 : 200,
                        r < 0 ? "restart failed" : "restarted successfully");
                h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        }
        h->job_kind = HA_JOB_NONE;
        h->job_step = STEP_NONE;
        h->job_next_role_set = false;
        h->pidfile_standby = false;
        ha_snapshot_update(h);
        (void)pgmon_probe_now(h->pgmon);
        ha_tick_schedule(h, 0);
}

/* Renames path to the first free name among <path>.failed, <path>.failed.1 … .failed.99 (Patroni
 * removes an older <path>.failed first; pgha never removes it). Returns 0 or a negative errno. */
static int rename_failed(const char *path, char **ret_new) {
        _cleanup_free_ char *to = NULL;

        for (unsigned i = 0; i < 100; i++) {
                to = mfree(to);
                if ((i == 0 ? asprintf(&to, "%s.failed", path) : asprintf(&to, "%s.failed.%u", path, i)) < 0)
                        return -ENOMEM;
                if (access(to, F_OK) < 0 && errno == ENOENT)
                        break;
        }
        if (access(to, F_OK) >= 0)
                return -EEXIST;
        if (rename(path, to) < 0)
                return -errno;
        if (ret_new)
                *ret_new = TAKE_PTR(to);
        return 0;
}

/* Patroni's move_data_directory(): after a failed bootstrap the data directory (and the target of a
 * pg_wal symlink, which initdb --waldir makes) is renamed to <data_dir>.failed, never removed. */
static void data_dir_move_aside(Ha *h) {
        _cleanup_free_ char *wal = pgdata_path(&h->pgs, "pg_wal"), *moved = NULL;
        char target[PATH_MAX];
        struct stat st;
        ssize_t n;
        int r;

        if (stat(h->pgs.data_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        if (pgctl_postmaster_pid(h->pgs.data_dir, NULL) > 0) {
                log_error("Not renaming data directory %s: postgres still runs on it", h->pgs.data_dir);
                return;
        }
        if (wal && (n = readlink(wal, target, sizeof target - 1)) > 0) {
                _cleanup_free_ char *wal_moved = NULL;

                target[n] = '\0';
                log_info("renaming WAL directory and updating symlink: %s", target);
                r = rename_failed(target, &wal_moved);
                if (r < 0 || unlink(wal) < 0 || symlink(wal_moved, wal) < 0)
                        log_error_errno(r < 0 ? r : -errno, "Could not rename WAL directory %s: %m", target);
        }
        r = rename_failed(h->pgs.data_dir, &moved);
        if (r < 0)
                log_error_errno(r, "Could not rename data directory %s: %m", h->pgs.data_dir);
        else
                log_info("renaming data directory to %s", moved);
}

/* The end of Patroni's cancel_initialization(): the initialize key is gone and postgres stopped (or the
 * stop failed); move the data directory aside and exit with status 1 ("Failed to bootstrap cluster"). */
static void bootstrap_abort(Ha *h) {
        data_dir_move_aside(h);
        ha_job_finish(h, 0);
        log_error("Failed to bootstrap cluster");
        manager_set_exit_status(h->manager, 1);
        (void)manager_start_shutdown(h->manager);
}

void ha_on_job(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;

        h->job_signalled = pgctl_job_signalled(job);
        h->job = pgctl_job_free(h->job);
        if (h->job_step == STEP_CANCEL_STOP) {
                bootstrap_abort(h);
                return;
        }
        if (r < 0) {
                /* pgctl_job_finish() logged the error already */
                if (h->job_step == STEP_STOP && h->job_release)
                        log_error("PostgreSQL shutdown failed, leader key not removed.");
                if (h->job_step == STEP_CHECKPOINT) {
                        h->checkpoint_pending = false;
                        ha_job_finish(h, 0);
                        return;
                }
                ha_job_finish(h, r);
                return;
        }
        job_advance(h);
}

int ha_start_replica_job(Ha *h) {
        _cleanup_(pg_params_done) PgParams rec = {};
        int r;

        r = ha_recovery_for(h, h->job_target, &rec);
        if (r < 0)
                return r;
        h->job_step = STEP_START_REPLICA;
        h->cb_role_change = h->cb_called && (h->role == HA_ROLE_PRIMARY || h->role == HA_ROLE_DEMOTED);
        ha_snapshot_update(h);
        (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        return pgctl_start(h->event, &h->pgs, &rec, ha_on_job, h, &h->job);
}

/* Moves the job to its next step after a step succeeded. */
static void job_advance(Ha *h) {
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r = 0;

        switch (h->job_step) {
        case STEP_CLONE:
        case STEP_REINIT_CLONE:
        case STEP_REWIND:
                r = ha_start_replica_job(h);
                break;
        case STEP_REINIT_STOP:
                r = ha_member_host_port(h, h->job_target, &host, &port);
                if (r >= 0) {
                        h->job_step = STEP_REINIT_CLONE;
                        r = pgctl_create_replica(h->event, &h->pgs, host, port, true, ha_on_job, h, &h->job);
                }
                break;
        case STEP_PROMOTE:
                h->role = HA_ROLE_PRIMARY;
                h->job_next_role_set = false;
                ha_fire_callback(h, PG_CALLBACK_ON_ROLE_CHANGE, "master");
                (void)pgmon_probe_now(h->pgmon);
                h->slots_done = mfree(h->slots_done);
                h->job_step = STEP_CHECKPOINT;
                r = pgctl_checkpoint(h->event, &h->pgs, ha_on_job, h, &h->job);
                if (r < 0) {
                        h->checkpoint_pending = false;
                        ha_job_finish(h, 0);
                        return;
                }
                ha_tick_schedule(h, 0);
                return;
        case STEP_CHECKPOINT:
                h->checkpoint_pending = false;
                ha_job_finish(h, 0);
                return;
        case STEP_STOP: {
                /* Patroni: on_stop only if a running postmaster was signalled; a demotion that gives
                 * the leader key away reports the role "demoted" */
                const char *role = h->job_release ? "demoted" : ha_member_role_string(h);

                if (h->job_signalled)
                        ha_fire_callback(h, PG_CALLBACK_ON_STOP, role);
                if (h->job_release) {
                        h->job_release = false;
                        ha_release_lock(h);
                }
                if (h->job_offline) {
                        /* Patroni's demote('offline'): no longer the leader (set_is_leader(False)), so
                         * the lease deadline no longer fences the read-only standby started now; a key
                         * still holding our name when etcd returns is renewed before any promotion. */
                        h->job_offline = false;
                        ha_lock_dropped(h);
                        log_info(
                                "starting PostgreSQL read-only, following nobody, while the DCS is not "
                                "accessible");
                        h->job_target[0] = '\0';
                        ha_job_set_next_role(h, HA_ROLE_REPLICA);
                        r = ha_start_replica_job(h);
                        break;
                }
                ha_job_finish(h, 0);
                return;
        }
        case STEP_START_REPLICA: {
                pid_t pid = 0;

                /* Started with standby.signal: in recovery until a promotion (which clears
                 * recovery_pid), so a status query failing right after the start leaves it a replica,
                 * not a postmaster of unknown role (a possible primary). */
                if (pgctl_postmaster_pid(h->pgs.data_dir, &pid) > 0 && pid > 0)
                        h->recovery_pid = pid;
                /* Patroni's follow(): a node that was primary (or demoted) and had its callbacks
                 * called reports on_role_change, not on_start */
                ha_fire_callback(
                        h, h->cb_role_change ? PG_CALLBACK_ON_ROLE_CHANGE : PG_CALLBACK_ON_START, "replica");
                h->cb_role_change = false;
                ha_job_finish(h, 0);
                return;
        }
        default:
                ha_job_finish(h, 0);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to continue %s: %m", ha_job_to_string(h->job_kind));
                ha_job_finish(h, r);
        }
}

int ha_job_begin(Ha *h, HaJob kind, JobStep step, const char *target) {
        h->job = pgctl_job_free(h->job);
        h->job_kind = kind;
        h->job_step = step;
        h->job_since = now_mono(h);
        h->job_release = false;
        h->job_offline = false;
        h->job_next_role_set = false;
        snprintf(h->job_target, sizeof h->job_target, "%s", strempty(target));
        return 0;
}

void ha_job_set_next_role(Ha *h, HaRole r) {
        h->job_next_role = r;
        h->job_next_role_set = true;
}

int ha_start_stop_job(Ha *h, PgStopMode mode, bool checkpoint, bool release, HaRole next) {
        int r;

        ha_job_begin(h, HA_JOB_DEMOTE, STEP_STOP, NULL);
        h->job_release = release;
        ha_job_set_next_role(h, next);
        r = pgctl_stop(h->event, &h->pgs, mode, checkpoint, ha_on_job, h, &h->job);
        if (r < 0)
                h->job_kind = HA_JOB_NONE, h->job_step = STEP_NONE;
        return r;
}

/* Starts the promote job (the lock is ours). */
int ha_start_promote(Ha *h) {
        int r;

        if ((h->decision.flags & HA_FLAG_ARM_WATCHDOG) && !ha_arm_watchdog(h)) {
                ha_release_lock_no_watchdog(h);
                return 0;
        }
        h->recovery_pid = 0; /* its role is unknown again until a status query reads it */
        ha_job_begin(h, HA_JOB_PROMOTE, STEP_PROMOTE, NULL);
        ha_job_set_next_role(h, HA_ROLE_PRIMARY);
        h->checkpoint_pending = true;
        r = pgctl_promote(h->event, &h->pgs, ha_on_job, h, &h->job);
        if (r < 0) {
                h->job_kind = HA_JOB_NONE;
                h->job_step = STEP_NONE;
        }
        return r;
}

static void
on_bootstrap_config(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to write the config key: %s", strna(message));
        if (dcs_leader_acquire(h->dcs, ha_on_acquire, h) < 0)
                ha_act_done(h);
}

void ha_on_initialize_set(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        const Config *c = manager_get_config(h->manager);

        if (error < 0) {
                log_error("Failed to write the initialize key: %s", strna(message));
                ha_act_done(h);
                return;
        }
        if (!h->cluster || !h->cluster->config) {
                if (dcs_set_config(h->dcs, c->bootstrap.dcs, 0, on_bootstrap_config, h) >= 0)
                        return;
        }
        on_bootstrap_config(d, 0, NULL, NULL, h);
}

void ha_on_race(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error >= 0 && res && res->succeeded) {
                log_info("Won the initialize race");
                h->bootstrap_won = true;
                h->tick_again = true;
        } else
                log_info(
                        "%s",
                        h->decision.message_failed[0] ? h->decision.message_failed
                                                      : "failed to acquire initialize lock");
        ha_act_done(h);
}

void ha_on_cancel_bootstrap(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        h->bootstrap_won = false;
        /* stop what the bootstrap started, then bootstrap_abort() */
        ha_job_begin(h, HA_JOB_STOP, STEP_CANCEL_STOP, NULL);
        if (pgctl_stop(h->event, &h->pgs, PG_STOP_IMMEDIATE, false, ha_on_job, h, &h->job) < 0)
                bootstrap_abort(h);
        ha_act_done(h);
}
