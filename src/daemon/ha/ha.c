/* SPDX-License-Identifier: MIT */
/*
 * The HA engine's tick: gather → decide → act on the Manager's sd-event loop (design.md, docs/ha.md).
 *
 * A tick reads the whole cluster prefix from etcd, asks pgmon for a fresh probe, runs pg_controldata
 * while PostgreSQL is down, fetches the members' GET /patroni when the decision may need them, builds
 * HaFacts, calls ha_fsm_decide() and carries the decision out: at most one etcd write for the action
 * (plus the side writes its flags name) and at most one PostgreSQL job at a time. The role changes to
 * the decision's next role only when the action succeeded. Ticks run every loop_wait, at once when the
 * etcd watch sees the leader key change, when a job ends and when a REST intent arrives.
 *
 * The engine's other concerns live beside this file, sharing the Ha struct through ha-internal.h: the
 * leader lock and fencing (ha_lock.c), PostgreSQL jobs (ha_jobs.c), synchronous standbys, slots and
 * history (ha_replication.c), the member key and REST snapshot (ha_member.c), the dynamic configuration
 * and reload (ha_config.c), REST requests (ha_requests.c) and the shutdown (ha_shutdown.c). This file
 * also builds and frees the engine.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ha-internal.h"

static void on_side_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        if (error < 0)
                log_warning("etcd write failed: %s", strna(message));
}

void ha_apply_flags_after(Ha *h, const HaDecision *dec) {
        const PgStatus *st = pgstatus(h);

        if ((dec->flags & HA_FLAG_CLEAR_FAILOVER) && h->cluster && h->cluster->has_failover) {
                log_info("Cleaning up failover key");
                if (dcs_write_failover(h->dcs, NULL, h->cluster->failover_revision, on_side_write, h) < 0)
                        log_warning("Failed to clean up the failover key");
        }
        if ((dec->flags & HA_FLAG_WRITE_STATUS) && h->lock_held && st && st->query_ok && !st->in_recovery)
                if (dcs_write_status(h->dcs, (int64_t)st->wal_write_lsn, NULL, on_side_write, h) < 0)
                        log_warning("Failed to write the status key");
        if ((dec->flags & HA_FLAG_WRITE_STATUS) && h->lock_held && h->dyn.failsafe_mode)
                ha_write_failsafe(h);
        if ((dec->flags & HA_FLAG_UPDATE_HISTORY) && h->lock_held)
                ha_write_history(h);
        if ((dec->flags & HA_FLAG_PROCESS_SYNC) && h->lock_held)
                ha_process_sync(h);
        if (dec->flags & HA_FLAG_DISABLE_WATCHDOG && h->watchdog)
                watchdog_disable(h->watchdog);
        if (dec->flags & HA_FLAG_CLEAR_RESTART) {
                h->restart_requested = false;
                ha_restart_request_done(&h->restart_now);
                ha_scheduled_restart_clear(h);
                if (dec->action != HA_ACTION_RESTART)
                        ha_call_reply(&h->restart_call, 503, "restart conditions are not satisfied");
        }
        if (dec->flags & HA_FLAG_CLEAR_REINIT)
                h->reinit_requested = false;
}

/* FOLLOW: point a running replica at the target if it follows someone else. */
static int act_follow(Ha *h, const HaDecision *dec) {
        _cleanup_(pg_params_done) PgParams rec = {};
        _cleanup_free_ char *host = NULL, *want = NULL;
        const PgStatus *st = pgstatus(h);
        unsigned port = 0;

        if (!st || !st->running)
                return 0;
        (void)ha_member_host_port(h, dec->target, &host, &port);
        if (host && asprintf(&want, "%s:%u", host, port) < 0)
                return -ENOMEM;
        /* Following nobody is settled only once we cleared the upstream ourselves: a PostgreSQL we found
         * running may still stream from a former leader. */
        if (want ? streq_ptr(want, h->following) : h->upstream_cleared)
                return 0;
        if (!h->following && st->receiver_host && host && streq(st->receiver_host, host) &&
            st->receiver_port == port) {
                h->following = TAKE_PTR(want);
                return 0;
        }
        log_info("Changing the upstream to %s", strna(want));
        if (ha_recovery_for(h, dec->target, &rec) < 0)
                return -ENOMEM;
        ha_job_begin(h, HA_JOB_RELOAD, STEP_NONE, dec->target);
        return pgctl_reload(h->event, &h->pgs, &rec, ha_on_job, h, &h->job);
}

static void act(Ha *h) {
        HaDecision *dec = &h->decision;
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r = 0;

        switch (dec->action) {
        case HA_ACTION_NOOP:
        case HA_ACTION_WAIT:
        case HA_ACTION_WAIT_FOR_BOOTSTRAP:
        case HA_ACTION_STAY_PRIMARY:
                if ((int)dec->next_role >= 0)
                        h->role = dec->next_role;
                ha_apply_flags_after(h, dec);
                if (dec->flags & HA_FLAG_ARM_WATCHDOG)
                        (void)ha_arm_watchdog(h); /* on failure the next tick demotes */
                break;
        case HA_ACTION_FENCE:
                break;
        case HA_ACTION_EXIT:
                /* Patroni: logger.fatal (CRITICAL) for the system ID mismatch, logger.error otherwise */
                if (startswith(dec->message, "system ID mismatch"))
                        log_crit("%s", dec->message);
                else
                        log_error("%s", dec->message);
                manager_set_exit_status(h->manager, 1);
                (void)manager_start_shutdown(h->manager);
                break;
        case HA_ACTION_BOOTSTRAP_RACE:
                if (dcs_initialize_race(h->dcs, ha_on_race, h) >= 0)
                        return;
                break;
        case HA_ACTION_BOOTSTRAP_INITDB:
                if (dec->flags & HA_FLAG_DISABLE_WATCHDOG && h->watchdog)
                        watchdog_disable(h->watchdog);
                ha_job_begin(h, HA_JOB_BOOTSTRAP, STEP_BOOTSTRAP, NULL);
                r = pgctl_bootstrap(h->event, &h->pgs, ha_on_job, h, &h->job);
                break;
        case HA_ACTION_BOOTSTRAP_FINISH: {
                const PgStatus *st = pgstatus(h);
                char sysid[32];

                if (!st || !st->query_ok || !st->system_identifier)
                        break;
                if ((dec->flags & HA_FLAG_ARM_WATCHDOG) && !ha_arm_watchdog(h)) {
                        /* Patroni cancels the bootstrap: the next tick sees the bootstrap job again,
                         * now with an unhealthy watchdog (row bootstrap_no_watchdog). */
                        h->job_last_fresh = true;
                        break;
                }
                snprintf(sysid, sizeof sysid, "%llu", (unsigned long long)st->system_identifier);
                if (dcs_initialize_set(h->dcs, sysid, ha_on_initialize_set, h) >= 0)
                        return;
                break;
        }
        case HA_ACTION_BOOTSTRAP_CANCEL:
                log_info("removing initialize key after failed attempt to bootstrap the cluster");
                if (dcs_initialize_delete(h->dcs, ha_on_cancel_bootstrap, h) >= 0)
                        return;
                break;
        case HA_ACTION_CLONE_FROM_LEADER:
                r = ha_member_host_port(h, dec->target, &host, &port);
                if (r < 0)
                        break;
                ha_job_begin(h, HA_JOB_CLONE, STEP_CLONE, dec->target);
                ha_job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_create_replica(h->event, &h->pgs, host, port, false, ha_on_job, h, &h->job);
                break;
        case HA_ACTION_ACQUIRE_LOCK:
        case HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE:
                if (dcs_leader_acquire(h->dcs, ha_on_acquire, h) >= 0)
                        return;
                break;
        case HA_ACTION_PROMOTE:
                if (!h->lock_held) {
                        /* The key holds our name, but this process has not taken it (found after a
                         * restart, kept across an etcd restart): renew it first, which binds it to our
                         * lease and arms the deadline; ha_on_renew() then promotes. */
                        if (dcs_leader_renew(h->dcs, ha_on_renew, h) >= 0)
                                return;
                        break;
                }
                r = ha_promote_held(h);
                if (r > 0)
                        return; /* on_sync_claimed() continues */
                break;
        case HA_ACTION_RENEW_LOCK:
                if (dcs_leader_renew(h->dcs, ha_on_renew, h) >= 0)
                        return;
                break;
        case HA_ACTION_DEMOTE_GRACEFUL:
                log_info("%s", dec->message);
                r = ha_start_stop_job(h, PG_STOP_FAST, true, true, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_IMMEDIATE:
                r = ha_start_stop_job(h, PG_STOP_IMMEDIATE, false, true, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK:
                ha_fence_postgres(h, dec->message);
                ha_lock_dropped(h);
                r = ha_start_stop_job(h, PG_STOP_IMMEDIATE, false, false, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_OFFLINE:
                r = ha_start_stop_job(h, PG_STOP_FAST, false, false, HA_ROLE_DEMOTED);
                if (r >= 0)
                        h->job_offline = true; /* then start read-only, following nobody */
                break;
        case HA_ACTION_RELEASE_LOCK:
                if (dcs_leader_delete(h->dcs, ha_on_release_action, h) >= 0)
                        return;
                break;
        case HA_ACTION_FOLLOW:
                if ((int)dec->next_role >= 0)
                        h->role = dec->next_role;
                r = act_follow(h, dec);
                break;
        case HA_ACTION_START_POSTGRES:
                ha_job_begin(h, HA_JOB_START, STEP_NONE, dec->target);
                ha_job_set_next_role(h, (int)dec->next_role >= 0 ? dec->next_role : h->role);
                r = ha_start_replica_job(h);
                break;
        case HA_ACTION_STOP_POSTGRES:
                r = ha_start_stop_job(
                        h,
                        /* a diverged replica is rewound next: pg_rewind needs a clean shutdown */
                        h->replica_diverged ? PG_STOP_FAST : PG_STOP_IMMEDIATE,
                        false,
                        false,
                        (int)dec->next_role >= 0 ? dec->next_role : h->role);
                if (r >= 0)
                        h->job_kind = HA_JOB_STOP;
                break;
        case HA_ACTION_RECOVER_CRASHED:
                ha_job_begin(h, HA_JOB_CRASH_RECOVERY, STEP_CRASH_RECOVERY, NULL);
                r = pgctl_crash_recovery(h->event, &h->pgs, ha_on_job, h, &h->job);
                break;
        case HA_ACTION_REWIND:
                r = ha_member_host_port(h, dec->target, &host, &port);
                if (r < 0)
                        break;
                h->replica_diverged = false;
                ha_job_begin(h, HA_JOB_REWIND, STEP_REWIND, dec->target);
                ha_job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_rewind(h->event, &h->pgs, host, port, ha_on_job, h, &h->job);
                break;
        case HA_ACTION_REINIT:
                ha_apply_flags_after(h, dec); /* the request is taken: clear it, or it runs forever */
                h->replica_diverged = false;
                ha_job_begin(h, HA_JOB_REINIT, STEP_REINIT_STOP, dec->target);
                ha_job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_stop(h->event, &h->pgs, PG_STOP_IMMEDIATE, false, ha_on_job, h, &h->job);
                break;
        case HA_ACTION_RESTART: {
                _cleanup_(pg_params_done) PgParams rec = {};
                const PgStatus *st = pgstatus(h);
                bool replica = !(st && st->query_ok && !st->in_recovery);
                usec_t reply_after = h->restart_call ? h->restart_now.timeout : 0;

                ha_apply_flags_after(h, dec); /* clears restart_now */
                if (replica && ha_recovery_for(h, dec->target, &rec) < 0)
                        break;
                ha_job_begin(h, HA_JOB_RESTART, STEP_RESTART, dec->target);
                r = pgctl_restart(h->event, &h->pgs, replica ? &rec : NULL, ha_on_job, h, &h->job);
                if (r >= 0 && reply_after > 0)
                        ha_restart_reply_arm(h, reply_after);
                else if (r >= 0) /* without a timeout the request waits for the job */
                        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
                break;
        }
        case HA_ACTION_CANCEL_JOB:
                h->job = pgctl_job_free(h->job);
                ha_job_finish(h, -ECANCELED);
                break;
        case HA_ACTION_SHUTDOWN_STOP:
        case HA_ACTION_SHUTDOWN_DETACH:
        default:
                break;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to start %s: %m", ha_action_to_string(dec->action));
                if (h->job_kind != HA_JOB_NONE && !h->job) {
                        h->job_kind = HA_JOB_NONE;
                        h->job_step = STEP_NONE;
                }
        }
        ha_act_done(h);
}

/* The data directory as Patroni's data_directory_empty() sees it: with global/pg_control it holds a cluster;
 * without, it is empty only if it is missing or holds nothing but dot-files and lost+found. Anything else
 * (a stray file, a half-copied cluster) is "not empty, but no valid system identifier": never bootstrapped
 * or cloned over, never removed. A directory that cannot be read is inaccessible. */
static HaDataDir data_dir_state(Ha *h, const char *ctl) {
        struct dirent *de;
        bool empty = true;
        DIR *d;

        if (ctl && access(ctl, F_OK) >= 0)
                return HA_DATA_DIR_VALID;
        d = opendir(h->pgs.data_dir);
        if (!d) {
                if (errno == ENOENT)
                        return HA_DATA_DIR_EMPTY;
                if (!h->data_dir_error_logged)
                        log_error("data directory %s is not accessible: %m", h->pgs.data_dir);
                h->data_dir_error_logged = true;
                return HA_DATA_DIR_INACCESSIBLE;
        }
        h->data_dir_error_logged = false;
        while (empty && (de = readdir(d)))
                empty = de->d_name[0] == '.' || streq(de->d_name, "lost+found");
        closedir(d);
        return empty ? HA_DATA_DIR_EMPTY : HA_DATA_DIR_INVALID;
}

/* Whether pg_wal holds a WAL segment of a timeline after tl. A running replica reports the timeline of
 * its walreceiver, or without one its last restartpoint's: right after following a new leader across a
 * timeline switch, while that leader restarts, it can report the old timeline with a replay position
 * past the fork point although it replayed the new timeline's records. Its walreceiver wrote them into
 * segments named after the new timeline; a replica that really went past the fork on the old timeline
 * could never stream the new one, so it has none. */
static bool wal_has_segment_after_timeline(Ha *h, uint32_t tl) {
        _cleanup_free_ char *dir = pgdata_path(&h->pgs, "pg_wal");
        struct dirent *de;
        bool found = false;
        DIR *d;

        if (!dir || !(d = opendir(dir)))
                return false;
        while (!found && (de = readdir(d))) {
                unsigned seg_tl;

                if (strlen(de->d_name) == 24 && strspn(de->d_name, "0123456789ABCDEF") == 24 &&
                    sscanf(de->d_name, "%8X", &seg_tl) == 1)
                        found = seg_tl > tl;
        }
        closedir(d);
        return found;
}

static void decide_and_act(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        const PgStatus *st = pgstatus(h);
        HaFacts f = {};
        HaDecision dec = {};
        int r;

        if (h->stopping) {
                /* the shutdown hook owns PostgreSQL and the leader key now */
                h->tick_running = false;
                return;
        }

        f.now = h->now;
        f.last_tick = h->last_tick;
        f.tilt_until = h->tilt_until;
        f.role = h->role;
        f.node.name = h->pgs.name;
        f.node.tags.nofailover = c->tag.nofailover;
        f.node.tags.nosync = c->tag.nosync;
        f.node.tags.noloadbalance = c->tag.noloadbalance;
        f.node.tags.clonefrom = c->tag.clonefrom;
        f.node.tags.replicatefrom = c->tag.replicatefrom;
        f.node.watchdog_mode = c->watchdog.mode == WATCHDOG_REQUIRED ? HA_WATCHDOG_REQUIRED
                : c->watchdog.mode == WATCHDOG_AUTOMATIC             ? HA_WATCHDOG_AUTOMATIC
                                                                     : HA_WATCHDOG_OFF;
        f.node.watchdog_usable = !h->watchdog || watchdog_is_healthy(h->watchdog);

        /* local postgres */
        if (st && st->running) {
                bool starting = st->pidfile_status && (streq(st->pidfile_status, "starting"));
                bool replica;

                if (st->query_ok)
                        h->recovery_pid = st->in_recovery ? st->postmaster_pid : 0;
                /* A failed status query leaves the role unknown, a possible primary for every safety
                 * row (ha_fsm fails closed), unless this very postmaster was last seen in recovery and
                 * we have not promoted it since (h->recovery_pid). */
                replica = !st->query_ok && st->postmaster_pid > 0 && st->postmaster_pid == h->recovery_pid;
                f.pg.state = st->query_ok || replica ? HA_PG_RUNNING
                        : starting                   ? HA_PG_STARTING
                                                     : HA_PG_UNKNOWN;
                if (!st->query_ok && st->probe_error_message &&
                    strstr(st->probe_error_message, "starting up"))
                        f.pg.state = HA_PG_STARTING;
                f.pg.is_primary = st->query_ok && !st->in_recovery;
                f.pg.timeline = st->timeline;
                f.pg.wal_received = st->receive_lsn;
                f.pg.wal_replayed = st->replay_lsn;
                f.pg.wal_write = st->wal_write_lsn;
                f.pg.has_sysid = st->query_ok && st->system_identifier;
                f.pg.sysid = st->system_identifier;
                f.pg.data_dir = HA_DATA_DIR_VALID;
                f.pg.pending_restart = st->query_ok && st->pending_restart;
                f.pg.postmaster_start_time = (uint64_t)st->postmaster_start_epoch;
        } else {
                _cleanup_free_ char *ctl = pgdata_path(&h->pgs, "global/pg_control");
                f.pg.state = h->start_failed_seen ? HA_PG_CRASHED : HA_PG_STOPPED;
                if (st && (st->postmaster == POSTMASTER_GONE || st->postmaster == POSTMASTER_ZOMBIE) &&
                    h->role == HA_ROLE_PRIMARY)
                        f.pg.state = HA_PG_CRASHED;
                f.pg.data_dir = data_dir_state(h, ctl);
                if (h->cd_ok) {
                        f.pg.has_sysid = h->cd_sysid != 0;
                        f.pg.sysid = h->cd_sysid;
                        f.pg.timeline = h->cd_timeline;
                        f.pg.unclean_shutdown = h->cd_unclean;
                } else if (f.pg.data_dir == HA_DATA_DIR_VALID)
                        f.pg.data_dir = HA_DATA_DIR_INVALID;
                if (h->job_step == STEP_BOOTSTRAP || h->job_step == STEP_CLONE)
                        f.pg.data_dir = HA_DATA_DIR_EMPTY;
        }
        f.pg.state_since = st ? (st->running ? st->process_checked_at : st->not_running_since) : 0;
        f.pg.rewind_usable = h->pgs.use_pg_rewind;
        f.pg.rewind_failed = h->rewind_failed;
        f.pg.upstream_detached = ha_upstream_detached(h);
        f.pg.divergence = HA_DIVERGENCE_UNKNOWN;
        if (h->cluster && h->cluster->leader && !streq(h->cluster->leader, h->pgs.name)) {
                const DcsMember *lm = dcs_cluster_find_member(h->cluster, h->cluster->leader);
                /* Only a leader that finished its promotion (member key role master, checkpoint done)
                 * advertises the timeline we must compare with. */
                bool settled = lm && lm->has_timeline && lm->checkpoint_after_promote != 0 &&
                        (streq_ptr(lm->role, "master") || streq_ptr(lm->role, "primary"));
                if (settled && !(st && st->running) && h->cd_ok) {
                        uint32_t leader_tl = (uint32_t)MAX(lm->timeline, h->cluster->history_timeline);
                        f.pg.divergence = ha_divergence(
                                h->cd_timeline, h->cd_checkpoint, leader_tl, h->cluster->history);
                        log_info(
                                "Timeline check against %s: local timeline %u, end of WAL %" PRIu64
                                ", leader timeline %" PRIi64 ": %s",
                                lm->name,
                                h->cd_timeline,
                                h->cd_checkpoint,
                                lm->timeline,
                                f.pg.divergence == HA_DIVERGENCE_NONE ? "no divergence" : "diverged");
                } else if (st && st->running && st->query_ok && st->in_recovery) {
                        /* A running replica too (Patroni checks it with its replay position): one that
                         * replayed past the fork point can never stream from this leader. Not while
                         * paused: nothing is touched then. */
                        uint32_t leader_tl =
                                settled ? (uint32_t)MAX(lm->timeline, h->cluster->history_timeline) : 0;
                        f.pg.divergence = HA_DIVERGENCE_NONE;
                        if (settled && !h->dyn.pause &&
                            ha_divergence_replica(
                                    st->timeline, st->replay_lsn, leader_tl, h->cluster->history) ==
                                    HA_DIVERGENCE_DIVERGED &&
                            !wal_has_segment_after_timeline(h, st->timeline)) {
                                f.pg.divergence = HA_DIVERGENCE_DIVERGED;
                                if (!h->replica_diverged)
                                        log_info(
                                                "Timeline check against %s: local timeline %u, replayed "
                                                "up to %" PRIu64 ", leader timeline %u: diverged",
                                                lm->name,
                                                st->timeline,
                                                st->replay_lsn,
                                                leader_tl);
                                h->replica_diverged = true;
                        }
                }
                if (h->replica_diverged && !(st && st->running) &&
                    f.pg.divergence != HA_DIVERGENCE_DIVERGED && settled && h->cd_ok)
                        f.pg.divergence = HA_DIVERGENCE_DIVERGED;
        }

        f.lease.deadline = h->lease_deadline;
        f.lease.renew_failed = h->renew_failed;

        f.dcs.config.ttl = ttl_usec(h);
        f.dcs.config.loop_wait = loop_wait_usec(h);
        f.dcs.config.retry_timeout = (usec_t)h->dyn.retry_timeout * USEC_PER_SEC;
        f.dcs.config.maximum_lag_on_failover = (uint64_t)MAX(h->dyn.maximum_lag_on_failover, 0);
        f.dcs.config.check_timeline = h->dyn.check_timeline;
        f.dcs.config.synchronous_mode = h->dyn.synchronous_mode != SYNCHRONOUS_MODE_OFF;
        f.dcs.config.synchronous_mode_strict = h->dyn.synchronous_mode_strict;
        f.dcs.config.synchronous_node_count = (unsigned)MAX(h->dyn.synchronous_node_count, 0);
        f.dcs.config.failsafe_mode = h->dyn.failsafe_mode;
        f.dcs.config.pause = h->dyn.pause;
        f.dcs.config.primary_start_timeout = (usec_t)MAX(h->dyn.primary_start_timeout, 0) * USEC_PER_SEC;
        f.dcs.config.primary_stop_timeout = (usec_t)MAX(h->dyn.primary_stop_timeout, 0) * USEC_PER_SEC;
        f.dcs.config.use_pg_rewind = h->pgs.use_pg_rewind;
        f.dcs.config.remove_data_directory_on_rewind_failure =
                h->pgs.remove_data_directory_on_rewind_failure;
        f.dcs.config.remove_data_directory_on_diverged_timelines =
                h->pgs.remove_data_directory_on_diverged_timelines;
        f.dcs.config.has_bootstrap_section = c->bootstrap.present;
        f.dcs.bootstrap_won = h->bootstrap_won;
        f.dcs.unreachable_since = h->dcs_unreachable_since;
        ha_facts_fill_dcs(&f, h->dcs_ok ? h->cluster : NULL, h->api, h->now, now_real());

        f.job.running = h->job_kind;
        f.job.since = h->job_since;
        if (h->job_last_fresh) {
                f.job.last = h->job_last;
                f.job.last_failed = h->job_last_failed;
        }
        f.shutdown_requested = false;
        f.reinit_requested = h->reinit_requested;
        f.restart.requested = h->restart_requested;
        f.restart.scheduled = h->scheduled_restart;
        f.restart.scheduled_at = h->scheduled_restart_at;
        f.restart.postmaster_start_time = h->restart_sched_start;
        f.restart.filters_match = true;
        if (h->restart_requested || h->scheduled_restart) {
                const char *why =
                        ha_restart_mismatch(h, h->restart_requested ? &h->restart_now : &h->restart_sched);
                f.restart.filters_match = !why;
                if (why && (h->restart_requested || (f.restart.scheduled_at <= h->now && !h->dyn.pause)))
                        log_info("not proceeding with the restart: %s", why);
        }

        /* After releasing the lock ourselves, give the others a moment before racing again. */
        if (h->dcs_ok && !f.dcs.leader.name && h->release_wait_until > h->now &&
            h->role != HA_ROLE_PRIMARY) {
                h->tick_running = false;
                ha_tick_schedule(h, h->release_wait_until - h->now);
                return;
        }

        if (f.dcs.failover.present && h->lock_held) {
                char reason[HA_MESSAGE_MAX] = "";
                HaSwitchover v = ha_fsm_switchover_verdict(&f, reason, sizeof reason);
                if (v != HA_SWITCHOVER_NONE && reason[0])
                        log_info("%s", reason);
        }
        r = ha_fsm_decide(&f, &dec);
        if (r == -EINVAL) {
                log_error("HA facts are malformed; skipping this cycle");
                h->tick_running = false;
                ha_tick_schedule(h, loop_wait_usec(h));
                return;
        }
        if (r == -ENOENT)
                log_error("No HA rule matched (bug): fencing");
        h->job_last_fresh = false;
        h->last_tick = h->now;
        h->tilt_until = dec.tilt_until;
        h->wake_at = dec.wake_at;
        if (dec.next_role != h->role && (int)dec.next_role >= 0 && dec.comment)
                log_debug(
                        "transition from %s to %s: %s",
                        ha_role_to_string(h->role),
                        ha_role_to_string(dec.next_role),
                        dec.comment);
        /* A decision repeated by ticks closer than loop_wait (a quorum recheck) is logged about once per
         * loop_wait, as Patroni logs each cycle; a renewal only when its message changes. */
        if (!streq(dec.message, h->last_message) || !streq(dec.reason, h->last_reason) ||
            (dec.action != HA_ACTION_RENEW_LOCK &&
             h->now + loop_wait_usec(h) / 2 >= h->last_logged_at + loop_wait_usec(h))) {
                if (dec.reason[0])
                        log_info("%s", dec.reason);
                log_info("%s", dec.message);
                h->last_logged_at = h->now;
        }
        snprintf(h->last_message, sizeof h->last_message, "%s", dec.message);
        snprintf(h->last_reason, sizeof h->last_reason, "%s", dec.reason);
        h->decision = dec;
        if (!h->lock_held)
                ha_sync_forget(h);
        if (!h->ready_released) {
                h->ready_released = true;
                manager_ready_release(h->manager);
        }
        act(h);
}

static void on_fetch(HttpRequest *req, int error, long status, const char *body, size_t size, void *ud) {
        Ha *h = ud;
        size_t i;

        for (i = 0; i < h->n_fetch; i++)
                if (h->fetch[i] == req)
                        break;
        if (i < h->n_fetch) {
                h->fetch[i] = NULL;
                if (error < 0)
                        log_warning_errno(error, "Request failed: GET %s: %m", http_request_url(req));
                else if (status != 200)
                        log_warning(
                                "Request failed: GET %s: HTTP status %ld", http_request_url(req), status);
                if (error < 0 || status != 200 || ha_member_api_parse(body, size, &h->api[i]) < 0)
                        h->api[i] = (HaMemberApi){.fetch = HA_FETCH_FAILED};
        }
        if (--h->pending == 0)
                decide_and_act(h);
}

static bool need_fetch(Ha *h) {
        const DcsCluster *c = h->cluster;
        const PgStatus *st = pgstatus(h);

        if (!c)
                return false;
        if (!c->leader || c->has_failover)
                return true;
        if (streq(c->leader, h->pgs.name) && !(st && st->running && st->query_ok))
                return true;
        return false;
}

/* peer_tls_options - the TLS side of a request to another member, as Patroni's daemon makes it
 * (patroni-compat.md §3.8): the client certificate, key and CA are ctl.* or else restapi.*; the daemon's
 * client is "insecure": without a client certificate the server's certificate is not checked at all,
 * with one the chain is verified (against the CA) but not the host name. Like Patroni's it also sends
 * restapi.authentication as Basic credentials. Strings borrow from c. */
static void peer_tls_options(const Config *c, HttpRequestOptions *o) {
        o->username = c->restapi.username;
        o->password = c->restapi.password;
        o->cert = c->ctl.certfile ?: c->restapi.certfile;
        o->cacert = c->ctl.cacert ?: c->restapi.cafile;
        if (o->cert) {
                o->key = c->ctl.keyfile ?: c->restapi.keyfile;
                o->key_password = c->ctl.keyfile_password ?: c->restapi.keyfile_password;
                o->tls_no_verify_host = true;
        } else
                o->tls_no_verify_peer = true;
}

static void gather_done(Ha *h) {
        const DcsCluster *c = h->cluster;

        memset(h->api, 0, sizeof h->api);
        h->n_fetch = 0;
        if (h->dcs_ok && need_fetch(h)) {
                h->n_fetch = MIN(c->n_members, (size_t)HA_MEMBERS_MAX);
                h->pending = 1;
                for (size_t i = 0; i < h->n_fetch; i++) {
                        const DcsMember *m = &c->members[i];
                        HttpRequestOptions o = {
                                .url = m->api_url,
                                .timeout = HA_FETCH_TIMEOUT,
                                .connect_timeout = HA_FETCH_TIMEOUT,
                                .max_body = 256 * 1024,
                                .on_done = on_fetch,
                                .userdata = h,
                        };
                        peer_tls_options(manager_get_config(h->manager), &o);
                        h->fetch[i] = NULL;
                        if (isempty(m->api_url) || streq(m->name, h->pgs.name)) {
                                h->api[i].fetch = HA_FETCH_NOT_ASKED;
                                continue;
                        }
                        if (http_client_start(h->http, &o, &h->fetch[i]) >= 0)
                                h->pending++;
                        else
                                h->api[i].fetch = HA_FETCH_FAILED;
                }
                if (--h->pending > 0)
                        return;
        }
        decide_and_act(h);
}

static void gather_step_done(Ha *h) {
        if (--h->pending == 0)
                gather_done(h);
}

static void on_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        Ha *h = ud;

        if (error < 0) {
                if (h->dcs_ok || h->dcs_unreachable_since == 0)
                        h->dcs_unreachable_since = now_mono(h);
                h->dcs_ok = false;
                log_warning("Failed to read the cluster from etcd: %s", strna(message));
        } else {
                dcs_cluster_free(h->cluster);
                h->cluster = cluster;
                h->dcs_ok = true;
                h->dcs_unreachable_since = 0;
                h->snap.cluster_valid_until = now_mono(h) + ttl_usec(h);
                h->snap.dcs_last_seen = now_real() / USEC_PER_SEC;
                if (cluster->n_members_ignored != h->members_ignored_logged &&
                    cluster->n_members_ignored > 0)
                        log_error(
                                "etcd holds %zu member keys, pghad reads the first %u: the other %zu take "
                                "no "
                                "part in elections or synchronous replication",
                                cluster->n_members + cluster->n_members_ignored,
                                DCS_MEMBERS_MAX,
                                cluster->n_members_ignored);
                h->members_ignored_logged = cluster->n_members_ignored;
                if (cluster->config && cJSON_GetArraySize(cluster->config) > 0)
                        (void)ha_apply_dynamic(h, cluster->config, true);
                ha_switch_check(h);
        }
        gather_step_done(h);
}

static void on_controldata(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;

        h->cd_ok = false;
        if (r >= 0) {
                const char *out = pgctl_job_output(job);
                _cleanup_free_ char *sysid = pgctl_controldata_get(out, "Database system identifier");
                _cleanup_free_ char *tl = pgctl_controldata_get(out, "Latest checkpoint's TimeLineID");
                _cleanup_free_ char *state = pgctl_controldata_get(out, "Database cluster state");
                _cleanup_free_ char *loc = pgctl_controldata_get(out, "Latest checkpoint location");
                _cleanup_free_ char *minrec = pgctl_controldata_get(out, "Minimum recovery ending location");
                unsigned hi = 0, lo = 0;

                h->cd_ok = sysid != NULL;
                h->cd_sysid = sysid ? strtoull(sysid, NULL, 10) : 0;
                h->cd_timeline = tl ? (uint32_t)strtoul(tl, NULL, 10) : 0;
                h->cd_unclean = state &&
                        (streq(state, "in production") || streq(state, "shutting down") ||
                         streq(state, "in crash recovery"));
                h->cd_checkpoint = 0;
                /* The end of local WAL: the checkpoint record's end (a shutdown checkpoint record is
                 * 114 bytes), or the minimum recovery point of a replica when that is later. */
                if (loc && sscanf(loc, "%X/%X", &hi, &lo) == 2)
                        h->cd_checkpoint = (((uint64_t)hi << 32) | lo) + 114;
                if (minrec && sscanf(minrec, "%X/%X", &hi, &lo) == 2)
                        h->cd_checkpoint = MAX(h->cd_checkpoint, ((uint64_t)hi << 32) | lo);
        }
        h->controldata = pgctl_job_free(h->controldata);
        gather_step_done(h);
}

static int on_fast_probe(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        _cleanup_free_ char *path = pgdata_path(&h->pgs, "postmaster.pid"), *text = NULL;

        /* The postmaster this start job runs was started with standby.signal: it is in recovery from its
         * first moment, so it is a replica (recovery_pid) even while its status query still fails
         * (recovery not yet consistent). Without that, the decision table fails closed on a postmaster
         * of unknown role and fenced the replica it had just started after a rewind. postmaster.pid's
         * status line says "ready" once a hot standby accepts read-only connections ("standby" when it
         * accepts none). */
        if (h->job_step == STEP_START_REPLICA && !h->pidfile_standby && path &&
            read_full_file(path, 4096, &text, NULL) >= 0) {
                _cleanup_(postmaster_pid_file_done) PostmasterPidFile pf = {};
                if (postmaster_pid_file_parse(text, &pf) >= 0 && pf.pid > 0 && pgctl_pid_alive(pf.pid)) {
                        h->recovery_pid = pf.pid;
                        if (streq_ptr(pf.status, "ready") || streq_ptr(pf.status, "standby")) {
                                h->pidfile_standby = true;
                                log_debug("PostgreSQL accepts read-only connections");
                                ha_snapshot_update(h);
                        }
                }
        }
        if (h->job_step == STEP_START_REPLICA && !h->pidfile_standby) {
                (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
                (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        }

        (void)pgmon_probe_now(h->pgmon);
        return 0;
}

static void on_probe(PgMon *m, const PgStatus *status, void *userdata) {
        Ha *h = userdata;

        /* While PostgreSQL starts, probe often so the REST API reports it running as soon as it is. */
        if (h->job_step == STEP_START_REPLICA || h->job_step == STEP_RESTART) {
                (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
                (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        }

        if (h->upstream_cleared && !h->job && status->running && status->query_ok && status->in_recovery &&
            !status->receiver_status)
                h->detached_probes = MIN(h->detached_probes + 1, 2u);
        else
                h->detached_probes = 0;

        ha_snapshot_update(h);
        if (h->waiting_probe) {
                h->waiting_probe = false;
                gather_step_done(h);
        }

        /* PostgreSQL died under us (no job of ours stops it): decide now, not at the next loop_wait. A
         * crashed primary still holding the lock is back up a whole period sooner. */
        if (h->probe_saw_running && !status->running && !h->job) {
                log_debug("PostgreSQL stopped running, running the HA loop now");
                ha_tick_schedule(h, 0);
        }
        h->probe_saw_running = status->running;
}

static void tick_start(Ha *h) {
        _cleanup_free_ char *ctl = NULL;
        const PgStatus *st;

        if (h->stopping)
                return;
        if (h->tick_running) {
                h->tick_again = true;
                return;
        }
        h->tick_running = true;
        h->tick_again = false;
        h->now = now_mono(h);
        h->snap.next_run = h->now + loop_wait_usec(h);
        if (!h->job)
                ha_pg_settings_rebuild(h);
        if (!h->job && h->pg_reload_pending) {
                const PgStatus *ps = pgstatus(h);
                if (!ps || !ps->running || ha_pg_reload_config(h))
                        h->pg_reload_pending = false;
        }
        h->pending = 1;
        if (dcs_get_cluster(h->dcs, on_cluster, h) >= 0)
                h->pending++;
        else
                h->dcs_ok = false;
        if (pgmon_probe_now(h->pgmon) >= 0) {
                h->waiting_probe = true;
                h->pending++;
        }
        st = pgstatus(h);
        ctl = pgdata_path(&h->pgs, "global/pg_control");
        if (!h->job && !(st && st->running) && ctl && access(ctl, F_OK) >= 0 && !h->controldata &&
            pgctl_controldata(h->event, &h->pgs, on_controldata, h, &h->controldata) >= 0)
                h->pending++;
        else if (!(st && st->running) && (!ctl || access(ctl, F_OK) < 0))
                h->cd_ok = false;
        gather_step_done(h);
}

/* The end of Patroni's run_cycle: PostgreSQL runs, no job is under way, and no start, stop, restart
 * or role change callback fired since pghad started (it found PostgreSQL running): on_start. */
static void callbacks_first_start(Ha *h) {
        const PgStatus *st = pgstatus(h);

        if (h->cb_called || h->job || h->role == HA_ROLE_UNINITIALIZED || !st || !st->running ||
            !st->query_ok)
                return;
        ha_fire_callback(h, PG_CALLBACK_ON_START, ha_callback_role(h));
}

void ha_act_done(Ha *h) {
        usec_t delay = loop_wait_usec(h);

        if (h->stopping) {
                h->tick_running = false;
                return;
        }

        ha_touch_member(h);
        ha_snapshot_update(h);
        ha_maintain_slots(h);
        callbacks_first_start(h);
        h->tick_running = false;
        if (h->wake_at > 0 && h->wake_at > h->now)
                delay = MIN(delay, h->wake_at - h->now);
        if (h->tick_again)
                delay = 0;
        ha_tick_schedule(h, delay);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        tick_start(userdata);
        return 0;
}

void ha_tick_schedule(Ha *h, usec_t delay) {
        usec_t now = now_mono(h), next;
        uint64_t cur = 0;

        if (h->stopping)
                return;
        if (h->tick_running) {
                if (delay == 0)
                        h->tick_again = true;
                return;
        }
        next = now + delay;
        if (sd_event_source_get_enabled(h->tick_timer, NULL) > 0 &&
            sd_event_source_get_time(h->tick_timer, &cur) >= 0 && cur <= next)
                return;
        (void)sd_event_source_set_time(h->tick_timer, next);
        (void)sd_event_source_set_enabled(h->tick_timer, SD_EVENT_ONESHOT);
}

static void on_wake(Dcs *d, DcsWakeReason reason, void *userdata) {
        Ha *h = userdata;

        if (reason == DCS_WAKE_LEADER || reason == DCS_WAKE_CONFIG || reason == DCS_WAKE_RESYNC)
                ha_tick_schedule(h, 0);
}

static int derive_start_role(Ha *h) {
        _cleanup_free_ char *ver = pgdata_path(&h->pgs, "PG_VERSION");
        _cleanup_free_ char *sig = pgdata_path(&h->pgs, "standby.signal");
        pid_t pid;

        if (!ver || access(ver, F_OK) < 0)
                return HA_ROLE_UNINITIALIZED;
        if (pgctl_postmaster_pid(h->pgs.data_dir, &pid) > 0)
                return sig && access(sig, F_OK) >= 0 ? HA_ROLE_REPLICA : HA_ROLE_PRIMARY;
        return sig && access(sig, F_OK) >= 0 ? HA_ROLE_REPLICA : HA_ROLE_DEMOTED;
}

char *ha_join_url(const char *scheme, const ConfigAddress *a, const char *path) {
        char *s = NULL;
        bool v6 = a->first_host && strchr(a->first_host, ':');

        if (asprintf(
                    &s,
                    "%s://%s%s%s:%u%s",
                    scheme,
                    v6 ? "[" : "",
                    strna(a->first_host ?: a->host),
                    v6 ? "]" : "",
                    a->port,
                    path) < 0)
                return NULL;
        return s;
}

int ha_new(Manager *m, Ha **ret) {
        _cleanup_(ha_freep) Ha *h = NULL;
        const Config *c = manager_get_config(m);
        _cleanup_(rest_server_options_done) RestServerOptions ro = {};
        _cleanup_free_ char *cache_text = NULL;
        _cleanup_(cJSON_Deletep) cJSON *cached = NULL;
        char *single[2] = {};
        int r;

        h = new0(Ha, 1);
        if (!h)
                return log_oom();
        h->manager = m;
        h->event = manager_get_event(m);
        h->decision.advertise_role = _HA_ROLE_INVALID;
        r = dynamic_config_init(&h->dyn);
        if (r < 0)
                return log_oom();

        if (asprintf(&h->dyn_cache_path, "%s/patroni.dynamic.json", c->postgresql.data_dir) < 0)
                return log_oom();
        /* bootstrap.dcs first; the cached copy of the etcd config wins over it; etcd wins over both. */
        (void)ha_apply_dynamic(h, c->bootstrap.dcs, false);
        if (read_full_file(h->dyn_cache_path, 1024 * 1024, &cache_text, NULL) >= 0 &&
            json_parse_string(cache_text, &cached) >= 0)
                (void)ha_apply_dynamic(h, cached, false);
        if (!h->pgs.name) {
                ha_pg_settings_rebuild(h);
                if (!h->pgs.name)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Invalid PostgreSQL settings");
        }

        h->conn_url = ha_join_url("postgres", &c->postgresql.connect_address, "/postgres");
        h->api_url =
                ha_join_url(c->restapi.certfile ? "https" : "http", &c->restapi.connect_address, "/patroni");
        if (!h->conn_url || !h->api_url)
                return log_oom();
        if (c->postgresql.database) {
                free(h->conn_url);
                if (asprintf(
                            &h->conn_url,
                            "postgres://%s:%u/%s",
                            c->postgresql.connect_address.first_host,
                            c->postgresql.connect_address.port,
                            c->postgresql.database) < 0)
                        return log_oom();
        }

        /* etcd */
        {
                EtcdClientOptions eo = {
                        .protocol = c->etcd.protocol,
                        .username = c->etcd.username,
                        .password = c->etcd.password,
                        .cacert = c->etcd.cacert,
                        .cert = c->etcd.cert,
                        .key = c->etcd.key,
                        .request_timeout = retry_timeout_usec(h),
                        .use_proxies = c->etcd.use_proxies,
                        .priority = PGHA_PRIORITY_DCS,
                };
                /* Patroni's precedence: proxy (which also means use_proxies), url, hosts, host. */
                if (c->etcd.proxy) {
                        single[0] = c->etcd.proxy;
                        eo.endpoints = single;
                        eo.use_proxies = true;
                } else if (c->etcd.url) {
                        single[0] = c->etcd.url;
                        eo.endpoints = single;
                } else if (c->etcd.hosts)
                        eo.endpoints = c->etcd.hosts;
                else {
                        single[0] = c->etcd.host;
                        eo.endpoints = single;
                }
                r = etcd_client_new(h->event, &eo, &h->etcd);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the etcd client: %m");
        }
        {
                DcsOptions dopt = {
                        .namespace = c->namespace,
                        .scope = c->scope,
                        .name = c->name,
                        .ttl = (unsigned)h->dyn.ttl,
                        .priority = PGHA_PRIORITY_LEASE,
                };
                r = dcs_new(h->event, h->etcd, &dopt, &h->dcs);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the DCS: %m");
        }
        r = http_client_new(h->event, PGHA_PRIORITY_HA, &h->http);
        if (r < 0)
                return log_error_errno(r, "Failed to create the HTTP client: %m");

        /* PostgreSQL monitoring */
        h->socket_dir = pgconf_local_host(&h->pgs);
        {
                PgMonConfig pc = {
                        .data_dir = h->pgs.data_dir,
                        .conn =
                                {
                                        .host = h->socket_dir && h->socket_dir[0] == '/' ? h->socket_dir
                                                                                         : NULL,
                                        .hostaddr = h->socket_dir && h->socket_dir[0] != '/' ? h->socket_dir
                                                                                             : NULL,
                                        .port = h->pgs.port,
                                        .user = h->pgs.superuser.username,
                                        .password = h->pgs.superuser.password,
                                        .dbname = h->pgs.database,
                                        .description = "pgmon",
                                        /* reconnect soon after a (re)start: the REST API reports from the
                                           probe */
                                        .backoff_min = 5 * USEC_PER_MSEC,
                                        .backoff_max = 20 * USEC_PER_MSEC,
                                },
                        .interval = loop_wait_usec(h),
                };
                r = pgmon_new(h->event, &pc, on_probe, h, &h->pgmon);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up PostgreSQL monitoring: %m");
                pc.conn.description = "pg-slots";
                r = pgconn_new(h->event, &pc.conn, &h->conn);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the PostgreSQL connection: %m");
        }
        r = callback_runner_new(h->event, &h->pgs, &h->callbacks);
        if (r < 0)
                log_warning_errno(r, "Callbacks disabled: %m");

        ha_watchdog_apply(h);

        /* snapshot + REST */
        h->snap.scope = strdup(c->scope);
        h->snap.name = strdup(c->name);
        h->snap.version = strdup(PGHA_COMPAT_VERSION);
        h->snap.state = strdup("stopped");
        (void)snapshot_set_tags_from_config(&h->snap, c->tags);
        r = rest_server_options_from_config(c, &ro);
        if (r < 0)
                return log_error_errno(r, "Invalid restapi settings: %m");
        ro.leader_checks_need_postgres = true;
        r = rest_server_new(h->event, &ro, &h->snap, &h->rest);
        if (r < 0)
                return r;
        rest_server_set_intent_handler(h->rest, &ha_intent_handler, h);

        /* timers */
        r = sd_event_add_time(h->event, &h->tick_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_tick, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HA timer: %m");
        (void)sd_event_source_set_priority(h->tick_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->tick_timer, "ha-tick");
        r = sd_event_add_time_relative(h->event, &h->probe_timer, CLOCK_MONOTONIC, 0, 1, on_fast_probe, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the probe timer: %m");
        (void)sd_event_source_set_priority(h->probe_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->probe_timer, "ha-fast-probe");
        (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_OFF);

        h->role = derive_start_role(h);
        log_info("Starting as %s", ha_role_to_string(h->role));

        r = ha_lock_start(h);
        if (r < 0)
                return r;
        r = dcs_watch_start(h->dcs, 0, 0, on_wake, h);
        if (r < 0)
                log_warning_errno(r, "Failed to start the etcd watch: %m");
        r = pgmon_start(h->pgmon);
        if (r < 0)
                return log_error_errno(r, "Failed to start PostgreSQL monitoring: %m");

        r = manager_add_reload_hook(m, "ha", ha_on_reload, h, &h->reload_hook);
        if (r < 0)
                return r;
        r = manager_add_shutdown_hook(m, "ha", PGHA_SHUTDOWN_ORDER_HA, ha_on_shutdown, h, &h->shutdown_hook);
        if (r < 0)
                return r;
        manager_ready_hold(m);
        *ret = TAKE_PTR(h);
        return 0;
}

Ha *ha_free(Ha *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_fetch; i++)
                if (h->fetch[i])
                        http_request_cancel(h->fetch[i]);
        h->job = pgctl_job_free(h->job);
        h->controldata = pgctl_job_free(h->controldata);
        h->reload_hook = manager_hook_free(h->reload_hook);
        h->shutdown_hook = manager_hook_free(h->shutdown_hook);
        h->rest = rest_server_free(h->rest);
        h->tick_timer = sd_event_source_disable_unref(h->tick_timer);
        h->deadline_timer = sd_event_source_disable_unref(h->deadline_timer);
        h->probe_timer = sd_event_source_disable_unref(h->probe_timer);
        h->release_timer = sd_event_source_disable_unref(h->release_timer);
        while (h->config_writes)
                ha_config_write_free(h->config_writes);
        h->callback_wait_timer = sd_event_source_disable_unref(h->callback_wait_timer);
        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        h->lease_watch = sd_event_source_disable_unref(h->lease_watch);
        h->pgmon = pgmon_free(h->pgmon);
        h->conn = pgconn_free(h->conn);
        h->callbacks = callback_runner_free(h->callbacks);
        h->dcs = dcs_free(h->dcs);
        h->etcd = etcd_client_free(h->etcd);
        h->http = http_client_free(h->http);
        h->watchdog = watchdog_free(h->watchdog);
        h->cluster = dcs_cluster_free(h->cluster);
        snapshot_done(&h->snap);
        pg_settings_done(&h->pgs);
        dynamic_config_done(&h->dyn);
        free(h->dyn_text);
        free(h->dyn_rejected_text);
        free(h->dyn_cache_path);
        free(h->conn_url);
        free(h->api_url);
        free(h->socket_dir);
        free(h->following);
        free(h->reload_before);
        free(h->switch_from);
        free(h->switch_to);
        ha_restart_request_done(&h->restart_now);
        ha_restart_request_done(&h->restart_sched);
        cJSON_Delete(h->restart_sched_json);
        free(h->member_last);
        free(h->slots_done);
        free(h->ssn_want);
        free(h->ssn_seen);
        proc_strv_free(h->sync_ready);
        free(h->sync_then_ssn);
        free(h);
        return NULL;
}
