/* SPDX-License-Identifier: MIT */
/*
 * The leader lock: the one place that decides whether this node holds the leader key. The key is taken
 * only with the create-only txn bound to our lease and renewed or deleted only with a compare on its
 * value (dcs.c); lock_taken()/ha_lock_dropped() are the only writers of h->lock_held, and the key is
 * held once an acquire or a renewal of it succeeded, however this process came to find it.
 *
 * Invariants: while we hold the key a timer at a higher priority than anything else in the loop fires
 * at the local lease deadline (from the lease the key is bound to, never from a ttl we merely asked for)
 * and stops a primary with SIGQUIT before any other event is processed (also first thing after a
 * SIGSTOP/SIGCONT freeze); the watchdog is armed before a promotion and fed from the lease keep-alive.
 */
#include <assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ha-internal.h"

static void lease_deadline_arm(Ha *h) {
        if (!h->lock_held || h->lease_deadline == 0) {
                (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time(h->deadline_timer, h->lease_deadline);
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_ONESHOT);
}

/* The local deadline always comes from the lease the leader key is bound to (h->lock_lease), with the
 * TTL that lease was granted with: after a ttl change it stays the old lease's until the leader key is
 * re-bound to the new one, so a raised ttl never extends it beyond what etcd grants. */
static void lease_deadline_update(Ha *h) {
        usec_t until;

        if (!h->lock_held)
                return;
        until = dcs_lease_valid_until_of(h->dcs, h->lock_lease);
        if (until > 0)
                h->lease_deadline = until > HA_LEASE_MARGIN ? until - HA_LEASE_MARGIN : 1;
        h->snap.leader_expiry = h->lease_deadline;
        lease_deadline_arm(h);
}

static void lock_taken(Ha *h, int64_t lease) {
        h->lock_held = true;
        h->replica_diverged = false;
        h->renew_failed = false;
        h->lock_lease = lease;
        h->lease_deadline = 0;
        lease_deadline_update(h);
}

void ha_lock_dropped(Ha *h) {
        h->lock_held = false;
        h->lease_deadline = 0;
        h->snap.leader_expiry = 0;
        lease_deadline_arm(h);
}

/* Stops a running postmaster at once: SIGQUIT now, a stop job to wait for it. */
void ha_fence_postgres(Ha *h, const char *why) {
        pid_t pid = 0;

        if (pgctl_postmaster_pid(h->pgs.data_dir, &pid) > 0 && pid > 0) {
                _cleanup_free_ char *path = NULL, *children = NULL;

                (void)kill(pid, SIGQUIT);
                /* The backends too, directly: after a freeze they resume together with us and must not
                 * answer one more query while the postmaster relays the signal. */
                if (asprintf(&path, "/proc/%i/task/%i/children", (int)pid, (int)pid) >= 0 &&
                    read_full_file(path, 64 * 1024, &children, NULL) >= 0) {
                        char *p = children, *end;
                        for (long c; (c = strtol(p, &end, 10)) > 0 && end != p; p = end)
                                (void)kill((pid_t)c, SIGQUIT);
                }
                log_error("%s: stopped PostgreSQL (pid %i) immediately", why, (int)pid);
        }
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        usec_t now = now_mono_fresh();

        lease_deadline_update(h); /* a renewal may have arrived since the timer was set */
        if (!h->lock_held || now < h->lease_deadline) {
                lease_deadline_arm(h);
                return 0;
        }
        log_error("Local leader lease deadline passed without renewal: fencing this node");
        /* Fence first: nothing may come between the deadline and the SIGQUIT; the job (a promotion, a
         * restart) is cancelled after, and its child reaped later by the loop. */
        ha_fence_postgres(h, "demoted self because failed to update leader lock in DCS");
        h->job = pgctl_job_free(h->job);
        h->job_kind = HA_JOB_NONE;
        h->job_step = STEP_NONE;
        h->lock_held = false;
        h->snap.leader_expiry = 0;
        /* lease_deadline stays set: the decision table's lease row still sees it while postgres runs. */
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);
        if (h->watchdog)
                watchdog_disable(h->watchdog);
        h->role = HA_ROLE_DEMOTED;
        ha_tick_schedule(h, 0);
        return 0;
}

/* The Dcs keep-alive timer reports only new grants: follow its renewals from a short timer of our own at
 * the lease priority, moving the local deadline forward and feeding the watchdog after each one. */
static int on_lease_watch(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        usec_t last = dcs_lease_last_renewal(h->dcs);

        if (h->lock_held && dcs_lease_id(h->dcs) == h->lock_lease && last != h->lease_seen_renewal) {
                h->lease_seen_renewal = last;
                lease_deadline_update(h);
                if (h->watchdog && watchdog_is_active(h->watchdog))
                        (void)watchdog_keepalive(h->watchdog);
        }
        (void)sd_event_source_set_time_relative(s, 200 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static void on_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        Ha *h = userdata;

        if (!h->lock_held)
                return;
        lease_deadline_update(h);
        if (error >= 0 && lease > 0 && lease != h->lock_lease) {
                /* A new lease (ttl change, expiry): re-bind the leader key to it at once, as Patroni's
                 * _update_leader(), before the lease it is bound to runs out. */
                log_info(
                        "etcd lease %" PRIi64 " granted while the leader key is bound to %" PRIi64
                        ": re-binding it",
                        lease,
                        h->lock_lease);
                ha_tick_schedule(h, 0);
        }
        if (error >= 0 && lease == h->lock_lease && h->watchdog && watchdog_is_active(h->watchdog))
                (void)watchdog_keepalive(h->watchdog);
}

static void on_release_done(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to delete the leader key: %s", strna(message));
        ha_lock_dropped(h);
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
        ha_tick_schedule(h, 0);
}

void ha_release_lock(Ha *h) {
        if (!h->lock_held && !(h->cluster && streq_ptr(h->cluster->leader, h->pgs.name)))
                return;
        if (dcs_leader_delete(h->dcs, on_release_done, h) < 0)
                log_warning("Failed to delete the leader key");
        ha_lock_dropped(h); /* we no longer act as the leader from now on */
}

/* Arms (and feeds) the watchdog before this node runs the primary. Returns false when the configuration
 * requires a watchdog that could not be armed: the caller must not promote (Patroni's
 * enforce_primary_role); watchdog_is_healthy() is false from then on, so the next tick demotes or
 * releases the lock through the watchdog rows of the table. */
bool ha_arm_watchdog(Ha *h) {
        const Config *c = manager_get_config(h->manager);

        if (!h->watchdog)
                return c->watchdog.mode != WATCHDOG_REQUIRED;
        if (watchdog_activate(h->watchdog) < 0) {
                if (c->watchdog.mode != WATCHDOG_REQUIRED)
                        return true; /* automatic: carry on without */
                h->tick_again = true;
                return false;
        }
        if (watchdog_is_active(h->watchdog))
                (void)watchdog_keepalive(h->watchdog);
        return true;
}

#define MSG_WATCHDOG_NOT_PROMOTING "Not promoting self because watchdog could not be activated"

/* The lock was won but a required watchdog cannot be armed: give the key back at once. */
void ha_release_lock_no_watchdog(Ha *h) {
        log_warning("%s", MSG_WATCHDOG_NOT_PROMOTING);
        if (!h->lock_held)
                return;
        if (dcs_leader_delete(h->dcs, NULL, NULL) < 0)
                log_warning("Failed to delete the leader key");
        ha_lock_dropped(h);
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
}

/* ha_promote_held - promotes PostgreSQL once this node holds the lock, claiming `sync` first when the
 * decision says so. Returns 1 when on_sync_claimed() owns the rest of the action (it starts the
 * promotion and calls ha_act_done()), otherwise 0 or a negative errno from starting the promotion; logs
 * a failed claim. */
int ha_promote_held(Ha *h) {
        int r;

        assert(h->lock_held);
        if (h->decision.flags & HA_FLAG_CLAIM_SYNC) {
                if (ha_claim_sync_then_promote(h) >= 0)
                        return 1;
                log_info("%s", MSG_SYNC_CLAIM_FAILED);
                return 0;
        }
        r = ha_start_promote(h);
        return MIN(r, 0);
}

void ha_on_acquire(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        HaDecision *dec = &h->decision;

        if (error < 0 || !res || !res->succeeded) {
                log_info("%s", error < 0 ? strna(message) : "failed to acquire the leader lock");
                ha_act_done(h);
                return;
        }
        if (h->stopping) {
                /* won the race while shutting down: give the key back at once */
                if (dcs_leader_delete(h->dcs, NULL, NULL) < 0)
                        log_warning("Failed to delete the leader key");
                return;
        }
        lock_taken(h, res->lease);
        log_info("%s", dec->message);
        if (dec->action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE) {
                if (ha_promote_held(h) > 0)
                        return; /* on_sync_claimed() continues */
        } else if (dec->action == HA_ACTION_BOOTSTRAP_FINISH) {
                h->role = HA_ROLE_PRIMARY;
                h->bootstrap_won = false;
                ha_fire_callback(h, PG_CALLBACK_ON_START, "master"); /* Patroni's post_bootstrap */
        } else
                h->role = dec->next_role;
        ha_apply_flags_after(h, dec);
        ha_act_done(h);
}

void ha_on_renew(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error == 0 && res && !res->succeeded) {
                log_error("Leader key refresh refused (holder: %s)", strna(res->leader));
                h->renew_failed = true;
        } else if (error < 0)
                log_warning("Leader key refresh failed: %s", strna(message));
        else {
                if (res && res->succeeded && !h->lock_held && !h->stopping &&
                    h->decision.action == HA_ACTION_PROMOTE &&
                    dcs_lease_valid_until_of(h->dcs, res->lease) <= now_mono_fresh() + HA_LEASE_MARGIN) {
                        /* A replica about to be promoted under a key bound to a lease no keep-alive has
                         * renewed since etcd answered again (an etcd restart re-arms leases, but we
                         * cannot know for how long): its deadline is already past, so taking the lock
                         * now would fence PostgreSQL right after the promotion. Take it once the
                         * keep-alive (retried every second) has renewed it. A running primary is not
                         * left waiting: without a deadline it cannot prove the lock, so it is taken
                         * and the past deadline fences it, as before. */
                        log_info(
                                "Leader key holding our name is bound to etcd lease %" PRIi64
                                ", not renewed since the DCS answered again: waiting for its keep-alive",
                                res->lease);
                        ha_act_done(h);
                        ha_tick_schedule(h, 200 * USEC_PER_MSEC);
                        return;
                }
                if (res && res->succeeded && !h->lock_held && !h->stopping) {
                        /* A key holding our name that this process did not take itself: found after a
                         * daemon restart, kept across an etcd restart, or an acquire whose reply was
                         * lost. The value-guarded renewal just bound it to our lease, so it is ours now,
                         * with that lease's deadline, exactly as if we had acquired it. */
                        log_info(
                                "Leader key holding our name is bound to etcd lease %" PRIi64
                                ": this node holds the lock",
                                res->lease);
                        lock_taken(h, res->lease);
                } else if (res && res->lease > 0 && res->lease != h->lock_lease) {
                        log_info("Leader key re-bound to etcd lease %" PRIi64, res->lease);
                        h->lock_lease = res->lease;
                }
                lease_deadline_update(h);
                if (h->decision.action == HA_ACTION_PROMOTE && h->lock_held) {
                        /* act() renewed a found key before promoting: the lock is ours now */
                        int r = ha_promote_held(h);
                        if (r > 0)
                                return; /* on_sync_claimed() continues */
                        if (r < 0)
                                log_error_errno(r, "Failed to start the promotion: %m");
                        ha_act_done(h);
                        return;
                }
                if (h->decision.action == HA_ACTION_RENEW_LOCK && (int)h->decision.next_role >= 0)
                        h->role = h->decision.next_role;
                ha_apply_flags_after(h, &h->decision);
                if ((h->decision.flags & HA_FLAG_ARM_WATCHDOG))
                        (void)ha_arm_watchdog(h); /* on failure the next tick demotes */
                ha_maintain_slots(h);
        }
        ha_act_done(h);
}

void ha_on_release_action(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        ha_lock_dropped(h);
        if ((int)h->decision.next_role >= 0)
                h->role = h->decision.next_role;
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
        ha_act_done(h);
}

/* The lock's event sources: the deadline timer (above everything else in the loop, so a frozen and
 * thawed node fences before it handles anything else), the timer that follows the lease renewals, and
 * the etcd lease itself. */
int ha_lock_start(Ha *h) {
        int r;

        r = sd_event_add_time(h->event, &h->deadline_timer, CLOCK_MONOTONIC, 0, 1, on_deadline, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the lease deadline timer: %m");
        (void)sd_event_source_set_priority(h->deadline_timer, PGHA_PRIORITY_LEASE - 100);
        (void)sd_event_source_set_description(h->deadline_timer, "ha-lease-deadline");
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);

        r = sd_event_add_time_relative(h->event, &h->lease_watch, CLOCK_MONOTONIC, 0, 1, on_lease_watch, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the lease watch timer: %m");
        (void)sd_event_source_set_priority(h->lease_watch, PGHA_PRIORITY_LEASE);
        (void)sd_event_source_set_description(h->lease_watch, "ha-lease-watch");

        r = dcs_lease_start(h->dcs, on_lease, h);
        if (r < 0)
                return log_error_errno(r, "Failed to start the etcd lease: %m");
        return 0;
}
