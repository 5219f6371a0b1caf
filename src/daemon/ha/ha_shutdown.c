/* SPDX-License-Identifier: MIT */
/*
 * Graceful shutdown (SIGTERM): a synchronous standby first asks to be released, PostgreSQL is stopped,
 * the leader key is handed over (deleted, so a replica takes it at once) and the member key written once
 * more with state "stopped", left to expire with the lease (as Patroni 3.0.2); a paused node leaves both
 * PostgreSQL and the keys alone. Callbacks fired on the way may finish first.
 */
#include "ha-internal.h"

static void shutdown_done(Ha *h) {
        ManagerDoneFunc done = h->done;

        h->callback_wait_timer = sd_event_source_disable_unref(h->callback_wait_timer);
        h->done = NULL;
        if (done)
                done(h->done_cookie, h->shutdown_result);
}

static void on_shutdown_callback_done(PgCallback action, int exit_code, void *userdata) {
        Ha *h = userdata;

        if (!callbacks_is_running(h->callbacks))
                shutdown_done(h);
}

static int on_callback_wait_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        log_warning("Callbacks still running %i s after the shutdown: killing them.", h->dyn.retry_timeout);
        shutdown_done(h); /* ha_free() kills them */
        return 0;
}

/* The end of the shutdown: a callback fired on the way (on_stop) may finish, for at most retry_timeout,
 * so the script is not killed the moment pghad exits (Patroni's outlive it). */
static void shutdown_finish(Ha *h, int r) {
        h->shutdown_result = r;
        if (!h->done || !callbacks_is_running(h->callbacks)) {
                shutdown_done(h);
                return;
        }
        callback_runner_set_notify(h->callbacks, on_shutdown_callback_done, h);
        if (sd_event_add_time_relative(
                    h->event,
                    &h->callback_wait_timer,
                    CLOCK_MONOTONIC,
                    retry_timeout_usec(h),
                    0,
                    on_callback_wait_timer,
                    h) < 0) {
                shutdown_done(h);
                return;
        }
        (void)sd_event_source_set_description(h->callback_wait_timer, "ha-shutdown-callbacks");
}

static void on_member_stopped(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        if (error < 0)
                log_warning("Failed to write our stopped member key: %s, ignoring", strna(message));
        shutdown_finish(ud, 0);
}

/* PostgreSQL stopped cleanly: the lease is no longer kept alive (nor revoked, as Patroni), and the member
 * key is written once more with state "stopped", left to expire with the lease. */
static void shutdown_touch_member(Ha *h) {
        dcs_lease_stop(h->dcs);
        if (!h->dcs_ok || dcs_lease_id(h->dcs) == 0) {
                /* etcd did not answer the last read, or there is no lease to bind the key to: do not hold
                 * the shutdown up; the member key expires with the lease it has. */
                shutdown_finish(h, 0);
                return;
        }
        if (ha_touch_member_stopped(h, on_member_stopped, h) < 0)
                shutdown_finish(h, 0);
}

static void
on_shutdown_release(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to delete the leader key: %s", strna(message));
        else
                log_info("Leader key released");
        ha_lock_dropped(h);
        shutdown_touch_member(h);
}

static void on_shutdown_stop(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;
        bool signalled = job && pgctl_job_signalled(job);

        h->job = pgctl_job_free(h->job);
        if (r < 0) {
                log_error("PostgreSQL shutdown failed, leader key not removed.");
                shutdown_finish(h, r);
                return;
        }
        /* Patroni's stop(): on_stop with the role it had, only when a postmaster was signalled */
        if (signalled)
                ha_fire_callback(h, PG_CALLBACK_ON_STOP, ha_callback_role(h));
        if (h->watchdog)
                watchdog_disable(h->watchdog);
        if (h->lock_held && dcs_leader_delete(h->dcs, on_shutdown_release, h) >= 0)
                return;
        shutdown_touch_member(h);
}

static void shutdown_stop_postgres(Ha *h, bool primary) {
        h->job = pgctl_job_free(h->job);
        h->job_kind = HA_JOB_NONE;
        if (pgctl_stop(h->event, &h->pgs, PG_STOP_FAST, primary, on_shutdown_stop, h, &h->job) < 0)
                on_shutdown_stop(NULL, 0, NULL, h);
}

/* Whether the leader of c counts name as its synchronous standby (Patroni's is_sync_standby). */
static bool is_sync_standby(const DcsCluster *c, const char *name) {
        return c && c->leader && c->sync_leader && streq(c->sync_leader, c->leader) &&
                dcs_cluster_is_sync_standby(c, name);
}

static void release_wait_done(Ha *h) {
        h->release_timer = sd_event_source_disable_unref(h->release_timer);
        shutdown_stop_postgres(h, false);
}

static void on_release_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        Ha *h = ud;

        if (error < 0) {
                log_warning("Could not get cluster state, skipping synchronous standby disable");
                release_wait_done(h);
                return;
        }
        dcs_cluster_free(h->cluster);
        h->cluster = cluster;
        if (!is_sync_standby(cluster, h->pgs.name)) {
                release_wait_done(h);
                return;
        }
        log_info("Waiting for primary to release us from synchronous standby");
        (void)sd_event_source_set_time_relative(h->release_timer, 250 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(h->release_timer, SD_EVENT_ONESHOT);
}

static int on_release_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        if (now_mono_fresh() >= h->release_deadline) {
                release_wait_done(h);
                return 0;
        }
        ha_touch_member(h); /* in case the first write was still behind another one */
        if (dcs_get_cluster(h->dcs, on_release_cluster, h) < 0)
                release_wait_done(h);
        return 0;
}

/* A synchronous standby going away first publishes nosync and waits (at most 2 × loop_wait) for the
 * leader to take it out of `sync`, so the primary does not wait for a standby that is gone. Returns
 * whether the wait started. */
static bool shutdown_leave_sync(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        int r;

        /* The cluster view may be a tick old: the first poll reads it afresh, right after nosync is out. */
        if (!ha_sync_mode_on(h) || c->tag.nosync || h->lock_held || !h->cluster || !h->cluster->leader)
                return false;
        h->disable_sync = true;
        ha_touch_member(h);
        h->release_deadline = now_mono_fresh() + 2 * loop_wait_usec(h);
        r = sd_event_add_time_relative(
                h->event, &h->release_timer, CLOCK_MONOTONIC, 0, 1, on_release_timer, h);
        if (r < 0) {
                log_warning_errno(
                        r, "Updating member state failed, skipping synchronous standby disable: %m");
                return false;
        }
        (void)sd_event_source_set_priority(h->release_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->release_timer, "ha-sync-release");
        return true;
}

int ha_on_shutdown(Manager *m, ManagerDoneFunc done, void *cookie, void *userdata) {
        Ha *h = userdata;
        const PgStatus *st = pgstatus(h);
        bool primary = st && st->running && st->query_ok && !st->in_recovery;

        h->stopping = true;
        h->done = done;
        h->done_cookie = cookie;
        (void)sd_event_source_set_enabled(h->tick_timer, SD_EVENT_OFF);
        ha_call_reply(&h->switch_call, 503, "Switchover status unknown");
        ha_call_reply(&h->restart_call, 503, "restart failed");
        if (h->cancel_call) {
                (void)rest_call_reply_error(h->cancel_call, 503);
                h->cancel_call = NULL;
        }
        if (h->dyn.pause) {
                log_info("Leader key is not deleted and Postgresql is not stopped due paused state");
                if (h->watchdog)
                        watchdog_disable(h->watchdog);
                shutdown_finish(h, 0);
                return 0;
        }
        if (shutdown_leave_sync(h))
                return 0; /* shutdown_stop_postgres() follows once released */
        shutdown_stop_postgres(h, primary);
        return 0;
}
