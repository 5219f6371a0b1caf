/* SPDX-License-Identifier: MIT */
/*
 * The HA decision table: well-formedness, the golden dump, docs/fsm.md freshness, one named scenario per
 * row (facts built from a baseline plus overrides → expected row, action, next role, message), a check
 * that every row was hit, the helper predicates, and a randomized sweep of the safety invariants.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pgha/fileio.h"
#include "pgha/ha_fsm.h"
#include "tests.h"

#define NOW     (1000 * USEC_PER_SEC)
#define WAL     UINT64_C(83886752)
#define SYSID   UINT64_C(7712574132163962109)
#define MEMBERS 3

/* ---- baseline: node1 leads a healthy 3-node cluster; node2 and node3 stream from it ------------------- */

static void member(HaMember *m, const char *name, bool primary, uint64_t wal) {
        *m = (HaMember){
                .name = name,
                .has_api_url = true,
                .state = HA_PG_RUNNING,
                .role = primary ? HA_ROLE_PRIMARY : HA_ROLE_REPLICA,
                .xlog_location = wal,
                .timeline = 2,
                .api =
                        {
                                .fetch = HA_FETCH_OK,
                                .in_recovery = !primary,
                                .has_wal_position = true,
                                .wal_position = wal,
                                .timeline = 2,
                        },
        };
}

/* The leader's view (node1). */
static void base(HaFacts *f) {
        *f = (HaFacts){
                .now = NOW,
                .last_tick = NOW - 10 * USEC_PER_SEC,
                .role = HA_ROLE_PRIMARY,
                .node = {.name = "node1", .watchdog_mode = HA_WATCHDOG_AUTOMATIC, .watchdog_usable = true},
                .pg =
                        {
                                .state = HA_PG_RUNNING,
                                .state_since = NOW - 100 * USEC_PER_SEC,
                                .is_primary = true,
                                .timeline = 2,
                                .wal_write = WAL,
                                .has_sysid = true,
                                .sysid = SYSID,
                                .data_dir = HA_DATA_DIR_VALID,
                                .postmaster_start_time = 111,
                                .divergence = HA_DIVERGENCE_NONE,
                                .rewind_usable = true,
                        },
                .lease = {.deadline = NOW + 20 * USEC_PER_SEC},
                .dcs =
                        {
                                .reachable = true,
                                .initialize = HA_INITIALIZE_SYSID,
                                .initialize_sysid = SYSID,
                                .leader = {.name = "node1", .optime = WAL},
                                .n_members = MEMBERS,
                                .config =
                                        {
                                                .ttl = 30 * USEC_PER_SEC,
                                                .loop_wait = 10 * USEC_PER_SEC,
                                                .retry_timeout = 10 * USEC_PER_SEC,
                                                .maximum_lag_on_failover = 1048576,
                                                .check_timeline = false,
                                                .primary_start_timeout = 300 * USEC_PER_SEC,
                                                .use_pg_rewind = true,
                                                .has_bootstrap_section = true,
                                        },
                                .history_timeline = 2,
                        },
                .restart = {.postmaster_start_time = 111, .filters_match = true},
        };
        member(&f->dcs.members[0], "node1", true, WAL);
        member(&f->dcs.members[1], "node2", false, WAL - 100);
        member(&f->dcs.members[2], "node3", false, WAL - 200);
}

/* node2's view of the same cluster: a streaming replica. */
static void base_replica(HaFacts *f) {
        base(f);
        f->node.name = "node2";
        f->role = HA_ROLE_REPLICA;
        f->pg.is_primary = false;
        f->pg.wal_write = 0;
        f->pg.wal_received = f->pg.wal_replayed = WAL - 100;
        f->lease.deadline = 0;
}

/* node2 after node1 died: no leader, node1's API does not answer. */
static void base_unlocked(HaFacts *f) {
        base_replica(f);
        f->dcs.leader.name = NULL;
        f->dcs.members[0].api.fetch = HA_FETCH_FAILED;
}

/* node1, the old primary, stopped after a demotion while node2 leads on timeline 3. */
static void base_old_primary(HaFacts *f) {
        base(f);
        f->role = HA_ROLE_DEMOTED;
        f->pg.state = HA_PG_STOPPED;
        f->pg.is_primary = false;
        f->lease.deadline = 0;
        f->dcs.leader.name = "node2";
        f->dcs.history_timeline = 3;
        f->pg.divergence = HA_DIVERGENCE_DIVERGED;
}

/* node4, a fresh node with an empty data directory. */
static void base_new_node(HaFacts *f) {
        base(f);
        f->node.name = "node4";
        f->role = HA_ROLE_UNINITIALIZED;
        f->pg = (typeof(f->pg)){.state = HA_PG_STOPPED, .data_dir = HA_DATA_DIR_EMPTY};
        f->lease.deadline = 0;
}

/* An empty etcd: nobody has bootstrapped yet. */
static void base_empty_cluster(HaFacts *f) {
        base_new_node(f);
        f->dcs.initialize = HA_INITIALIZE_ABSENT;
        f->dcs.initialize_sysid = 0;
        f->dcs.leader.name = NULL;
        f->dcs.leader.optime = 0;
        f->dcs.n_members = 0;
        f->dcs.history_timeline = 0;
}

static void sync_key(HaFacts *f, const char *leader, const char *standby) {
        f->dcs.config.synchronous_mode = true;
        f->dcs.sync.present = true;
        f->dcs.sync.leader = leader;
        f->dcs.sync.standbys[0] = standby;
        f->dcs.sync.n_standbys = standby ? 1 : 0;
}

static void switchover(HaFacts *f, const char *leader, const char *candidate) {
        f->dcs.failover.present = true;
        f->dcs.failover.leader = leader;
        f->dcs.failover.member = candidate;
}

/* ---- scenarios: one or more per row ------------------------------------------------------------------ */

#define SETUP(n) static void n(HaFacts *f)

/* safety */
SETUP(s_lease_expired_etcd_down) {
        base(f);
        f->dcs.reachable = false;
        f->dcs.leader.name = NULL;
        f->now = f->lease.deadline;
}
SETUP(s_lease_expired_after_freeze) {
        base(f);
        f->last_tick = NOW - 60 * USEC_PER_SEC; /* frozen for a minute: TILT, but safety comes first */
        f->lease.deadline = NOW - 25 * USEC_PER_SEC;
}
SETUP(s_lease_expired_promoting) {
        base(f);
        f->role = HA_ROLE_REPLICA;
        f->job.running = HA_JOB_PROMOTE;
        f->lease.deadline = NOW - 1;
}
SETUP(s_lease_expired_shutdown_paused) {
        base(f);
        f->shutdown_requested = true;
        f->dcs.config.pause = true;
        f->lease.deadline = NOW;
}
SETUP(s_renew_failed_paused) {
        base(f);
        f->dcs.config.pause = true;
        f->lease.renew_failed = true;
}
SETUP(s_renew_failed) {
        base(f);
        f->lease.renew_failed = true;
}
SETUP(s_primary_other_leader) {
        base(f);
        f->dcs.leader.name = "node2";
}
/* Fail closed: node1's postmaster runs but its status query fails (refused login, too many connections),
 * so whether it is in recovery is unknown; every safety row takes it for a primary. */
static void role_unknown(HaFacts *f) {
        f->pg.state = HA_PG_UNKNOWN;
        f->pg.is_primary = false;
}
SETUP(s_lease_expired_role_unknown) {
        base(f);
        role_unknown(f);
        f->lease.deadline = NOW;
}
SETUP(s_renew_failed_role_unknown) {
        s_renew_failed(f);
        role_unknown(f);
}
SETUP(s_role_unknown_other_leader) {
        s_primary_other_leader(f);
        role_unknown(f);
}
SETUP(s_role_unknown_replica_other_leader) {
        /* even a node last seen as a replica: its role may have changed since (a manual promote) */
        base_replica(f);
        role_unknown(f);
}
/* shutdown */
SETUP(s_shutdown_paused) {
        base(f);
        f->shutdown_requested = true;
        f->dcs.config.pause = true;
}
SETUP(s_shutdown_leader) {
        base(f);
        f->shutdown_requested = true;
}
SETUP(s_shutdown_replica) {
        base_replica(f);
        f->shutdown_requested = true;
}
/* TILT */
SETUP(s_tilt_leader) {
        base(f);
        f->last_tick = NOW - 31 * USEC_PER_SEC;
}
SETUP(s_tilt_replica_no_leader) {
        base_unlocked(f);
        f->tilt_until = NOW + 5 * USEC_PER_SEC; /* noticed on an earlier tick, still within one loop_wait */
}
/* DCS unreachable */
SETUP(s_dcs_down_paused) {
        base(f);
        f->dcs.reachable = false;
        f->dcs.config.pause = true;
}
SETUP(s_dcs_down_failsafe) {
        base(f);
        f->dcs.reachable = false;
        f->dcs.config.failsafe_mode = true;
        f->dcs.failsafe.present = true;
        f->dcs.failsafe.contains_us = true;
        f->dcs.failsafe.members_accepted = true;
}
SETUP(s_dcs_down_primary) {
        base(f);
        f->dcs.reachable = false;
}
SETUP(s_dcs_down_role_unknown) {
        s_dcs_down_primary(f);
        role_unknown(f);
}
/* The offline demotion restarted PostgreSQL read-only and the first status query failed: the demotion
 * job still runs, so it is not stopped again (no stop/start loop while etcd is down). */
SETUP(s_dcs_down_offline_demotion_starting) {
        s_dcs_down_role_unknown(f);
        f->job.running = HA_JOB_DEMOTE;
}
/* The offline demotion's fast stop, the primary still answering: wait for it (the lease deadline fences). */
SETUP(s_dcs_down_offline_demotion_stopping) {
        s_dcs_down_primary(f);
        f->job.running = HA_JOB_DEMOTE;
}
SETUP(s_dcs_down_failsafe_unconfirmed) {
        s_dcs_down_failsafe(f);
        f->dcs.failsafe.members_accepted = false;
}
SETUP(s_dcs_down_replica) {
        base_replica(f);
        f->dcs.reachable = false;
}
SETUP(s_dcs_down_new_node) {
        base_new_node(f);
        f->dcs.reachable = false;
}
/* jobs */
SETUP(s_crash_recovery_timeout) {
        base(f);
        f->pg.state = HA_PG_STOPPED;
        f->pg.is_primary = false;
        f->job.running = HA_JOB_CRASH_RECOVERY;
        f->job.since = NOW - 301 * USEC_PER_SEC;
}
SETUP(s_job_leader) {
        base(f);
        f->job.running = HA_JOB_RESTART;
        f->job.since = NOW - 5 * USEC_PER_SEC;
}
SETUP(s_crash_recovery_timeout_no_candidate) {
        s_crash_recovery_timeout(f);
        f->dcs.members[1].api.fetch = HA_FETCH_FAILED;
        f->dcs.members[2].tags.nofailover = true;
}
SETUP(s_promote_lost_lock) {
        base_replica(f);
        f->job.running = HA_JOB_PROMOTE;
}
SETUP(s_job_replica) {
        base_replica(f);
        f->job.running = HA_JOB_REWIND;
}
SETUP(s_job_clone) {
        base_new_node(f);
        f->job.running = HA_JOB_CLONE;
}
/* reinitialize */
SETUP(s_reinit) {
        base_replica(f);
        f->reinit_requested = true;
}
SETUP(s_reinit_leader) {
        base(f);
        f->reinit_requested = true;
}
SETUP(s_reinit_no_leader) {
        base_unlocked(f);
        f->reinit_requested = true;
}
/* starting */
SETUP(s_starting_timeout_failover) {
        base(f);
        f->pg.state = HA_PG_STARTING;
        f->pg.is_primary = false;
        f->pg.state_since = NOW - 300 * USEC_PER_SEC;
}
SETUP(s_starting_timeout_alone) {
        s_starting_timeout_failover(f);
        f->dcs.n_members = 1;
}
SETUP(s_starting_leader) {
        s_starting_timeout_failover(f);
        f->pg.state_since = NOW - 100 * USEC_PER_SEC;
}
SETUP(s_starting_replica) {
        base_replica(f);
        f->pg.state = HA_PG_STARTING;
}
/* post-bootstrap */
SETUP(s_bootstrap_failed) {
        base_empty_cluster(f);
        f->dcs.initialize = HA_INITIALIZE_EMPTY;
        f->dcs.bootstrap_won = true;
        f->job.last = HA_JOB_BOOTSTRAP;
        f->job.last_failed = true;
}
SETUP(s_bootstrap_done) {
        base_empty_cluster(f);
        f->dcs.initialize = HA_INITIALIZE_EMPTY;
        f->dcs.bootstrap_won = true;
        f->job.last = HA_JOB_BOOTSTRAP;
        f->pg = (typeof(f->pg)){
                .state = HA_PG_RUNNING,
                .is_primary = true,
                .timeline = 1,
                .has_sysid = true,
                .sysid = SYSID,
                .data_dir = HA_DATA_DIR_VALID};
}
SETUP(s_bootstrap_done_no_watchdog) {
        s_bootstrap_done(f);
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_clone_failed) {
        base_new_node(f);
        f->job.last = HA_JOB_CLONE;
        f->job.last_failed = true;
}
/* start failed */
SETUP(s_start_failed_leader) {
        base(f);
        f->pg.state = HA_PG_CRASHED;
        f->pg.is_primary = false;
        f->job.last = HA_JOB_START;
        f->job.last_failed = true;
}
SETUP(s_start_failed_replica) {
        base_replica(f);
        f->pg.state = HA_PG_STOPPED;
        f->job.last = HA_JOB_RESTART;
        f->job.last_failed = true;
}
/* data directory */
SETUP(s_data_dir_empty_leader) {
        base(f);
        f->pg.state = HA_PG_STOPPED;
        f->pg.is_primary = false;
        f->pg.data_dir = HA_DATA_DIR_EMPTY;
}
SETUP(s_data_dir_inaccessible) {
        base_replica(f);
        f->pg.data_dir = HA_DATA_DIR_INACCESSIBLE;
}
SETUP(s_data_dir_empty_paused) {
        base_replica(f);
        f->pg.state = HA_PG_STOPPED;
        f->pg.data_dir = HA_DATA_DIR_EMPTY;
        f->dcs.config.pause = true;
}
SETUP(s_data_dir_empty) {
        s_data_dir_empty_paused(f);
        f->dcs.config.pause = false;
}
SETUP(s_data_dir_invalid) {
        base_replica(f);
        f->pg.state = HA_PG_STOPPED;
        f->pg.data_dir = HA_DATA_DIR_INVALID;
        f->pg.has_sysid = false;
}
SETUP(s_sysid_mismatch_paused_leader) {
        base(f);
        f->dcs.config.pause = true;
        f->pg.sysid = SYSID + 1;
}
SETUP(s_sysid_mismatch_paused) {
        base_replica(f);
        f->dcs.config.pause = true;
        f->pg.sysid = SYSID + 1;
}
SETUP(s_foreign_data_dir) {
        base_replica(f);
        f->pg.state = HA_PG_STOPPED;
        f->pg.sysid = 6000000000000000001;
}
SETUP(s_no_initialize_replica_at_start) {
        base_unlocked(f);
        f->last_tick = 0;
        f->dcs.initialize = HA_INITIALIZE_ABSENT;
}
/* uninitialized */
SETUP(s_uninit_inaccessible) {
        base_new_node(f);
        f->pg.data_dir = HA_DATA_DIR_INACCESSIBLE;
}
SETUP(s_uninit_has_data) {
        base_new_node(f);
        f->pg.data_dir = HA_DATA_DIR_VALID;
        f->pg.has_sysid = true;
        f->pg.sysid = SYSID;
}
SETUP(s_uninit_paused) {
        base_new_node(f);
        f->dcs.config.pause = true;
}
SETUP(s_clone_from_leader) {
        base_new_node(f);
}
SETUP(s_clone_from_replica) {
        base_new_node(f);
        f->dcs.members[2].tags.clonefrom = true;
}
SETUP(s_bootstrap_race) {
        base_empty_cluster(f);
}
SETUP(s_bootstrap_won) {
        base_empty_cluster(f);
        f->dcs.initialize = HA_INITIALIZE_EMPTY;
        f->dcs.bootstrap_won = true;
}
SETUP(s_bootstrap_lost) {
        base_empty_cluster(f);
        f->dcs.initialize = HA_INITIALIZE_EMPTY;
}
SETUP(s_bootstrap_nofailover) {
        base_empty_cluster(f);
        f->node.tags.nofailover = true;
}
/* A node whose configuration has no `bootstrap` section never races for initialize (Patroni's
 * "'bootstrap' in self.patroni.config"): it waits for another node to bootstrap the cluster. */
SETUP(s_bootstrap_no_section) {
        base_empty_cluster(f);
        f->dcs.config.has_bootstrap_section = false;
}
/* postgres not running */
SETUP(s_stopped_paused_leader) {
        base(f);
        f->dcs.config.pause = true;
        f->pg.state = HA_PG_STOPPED;
        f->pg.is_primary = false;
}
SETUP(s_stopped_paused_replica) {
        base_replica(f);
        f->dcs.config.pause = true;
        f->pg.state = HA_PG_STOPPED;
}
SETUP(s_stopped_paused_replica_restart) {
        s_stopped_paused_replica(f);
        f->restart.requested = true; /* POST /restart after the postmaster was killed while paused */
}
SETUP(s_crashed_fail_over) {
        base(f);
        f->pg.state = HA_PG_CRASHED;
        f->pg.is_primary = false;
        f->dcs.config.primary_start_timeout = 0;
}
SETUP(s_crashed_unclean_with_rewind) {
        base(f);
        f->pg.state = HA_PG_CRASHED;
        f->pg.is_primary = false;
        f->pg.unclean_shutdown = true;
}
SETUP(s_crashed_leader) {
        s_crashed_unclean_with_rewind(f);
        f->dcs.config.use_pg_rewind = false;
}
SETUP(s_crashed_no_candidate) {
        s_crashed_fail_over(f);
        f->dcs.members[1].api.fetch = HA_FETCH_FAILED;
        f->dcs.members[2].api.fetch = HA_FETCH_FAILED;
}
/* following */
SETUP(s_paused_primary_without_lock) {
        base(f);
        f->dcs.config.pause = true;
        f->dcs.leader.name = "node2";
}
SETUP(s_rewind_wait_checkpoint) {
        base_old_primary(f);
        f->dcs.leader.checkpoint_pending = true;
}
SETUP(s_rewind) {
        base_old_primary(f);
}
SETUP(s_reinit_diverged) {
        base_old_primary(f);
        f->dcs.config.use_pg_rewind = false;
        f->dcs.config.remove_data_directory_on_diverged_timelines = true;
}
SETUP(s_reinit_after_rewind_failure) {
        base_old_primary(f);
        f->pg.rewind_failed = true;
        f->dcs.config.remove_data_directory_on_rewind_failure = true;
}
SETUP(s_diverged_stuck) {
        base_old_primary(f);
        f->dcs.config.use_pg_rewind = false;
}
SETUP(s_old_primary_unchecked) {
        base_old_primary(f);
        f->pg.divergence = HA_DIVERGENCE_UNKNOWN;
}
SETUP(s_old_primary_not_diverged) {
        base_old_primary(f);
        f->pg.divergence = HA_DIVERGENCE_NONE;
}
/* A running replica that replayed past the new leader's fork point (e.g. a failover to a candidate behind
 * it): stopped, so that it can be rewound. */
SETUP(s_replica_diverged_running) {
        base_replica(f);
        f->pg.divergence = HA_DIVERGENCE_DIVERGED;
}
/* The same replica when pg_rewind is off but diverged timelines may be reinitialised: the reinit stops it.
 */
SETUP(s_replica_diverged_running_reinit) {
        s_replica_diverged_running(f);
        f->dcs.config.use_pg_rewind = false;
        f->dcs.config.remove_data_directory_on_diverged_timelines = true;
}
/* Paused: not stopped (nothing is touched), and never pg_rewind on a running server. */
SETUP(s_replica_diverged_running_paused) {
        s_replica_diverged_running(f);
        f->dcs.config.pause = true;
}
SETUP(s_replica_stopped) {
        base_replica(f);
        f->pg.state = HA_PG_STOPPED;
}
/* restarts */
SETUP(s_restart_already_happened) {
        base(f);
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW;
        f->restart.postmaster_start_time = 100;
}
SETUP(s_restart_stale) {
        base_replica(f);
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW - 16 * USEC_PER_SEC;
}
SETUP(s_restart_filters) {
        base_replica(f);
        f->restart.requested = true;
        f->restart.filters_match = false;
}
SETUP(s_restart_due) {
        base(f);
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW - 2 * USEC_PER_SEC;
}
SETUP(s_restart_not_due) {
        base(f);
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW + 60 * USEC_PER_SEC;
}
SETUP(s_restart_replica_requested) {
        base_replica(f);
        f->restart.requested = true;
}
SETUP(s_restart_scheduled_paused) {
        base(f);
        f->dcs.config.pause = true;
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW - 30 * USEC_PER_SEC; /* stale, but paused: kept, not run */
}
SETUP(s_restart_requested_paused) {
        base_replica(f);
        f->dcs.config.pause = true;
        f->restart.requested = true; /* a manual restart is allowed in maintenance mode */
}
SETUP(s_restart_start_time_unknown) {
        base(f);
        f->restart.scheduled = true;
        f->restart.scheduled_at = NOW;
        f->restart.postmaster_start_time = 0; /* scheduled while PostgreSQL was down */
}
/* lock holder */
SETUP(s_renew_failed_replica) {
        base_replica(f);
        f->dcs.leader.name = "node2";
        f->lease.renew_failed = true;
}
SETUP(s_paused_awaiting_promote) {
        base_replica(f);
        f->dcs.config.pause = true;
        f->dcs.leader.name = "node2";
        switchover(f, NULL, "node2");
}
SETUP(s_paused_leader_not_primary) {
        base_replica(f);
        f->dcs.config.pause = true;
        f->dcs.leader.name = "node2";
}
SETUP(s_switchover_not_due) {
        base(f);
        switchover(f, "node1", "node2");
        f->dcs.failover.has_scheduled_at = true;
        f->dcs.failover.scheduled_at = NOW + 3600 * USEC_PER_SEC;
}
SETUP(s_switchover_stale) {
        s_switchover_not_due(f);
        f->dcs.failover.scheduled_at = NOW - 16 * USEC_PER_SEC;
}
SETUP(s_switchover_due) {
        s_switchover_not_due(f);
        f->dcs.failover.scheduled_at = NOW - 1 * USEC_PER_SEC;
}
SETUP(s_switchover_to_candidate) {
        base(f);
        switchover(f, "node1", "node2");
}
SETUP(s_switchover_any) {
        base(f);
        switchover(f, "node1", NULL);
}
SETUP(s_switchover_candidate_unhealthy) {
        s_switchover_to_candidate(f);
        f->dcs.members[1].api.fetch = HA_FETCH_FAILED;
}
SETUP(s_switchover_wrong_leader) {
        base(f);
        switchover(f, "node3", "node2");
}
SETUP(s_switchover_paused_no_candidate) {
        s_switchover_any(f);
        f->dcs.config.pause = true;
}
SETUP(s_switchover_paused_candidate) {
        s_switchover_to_candidate(f);
        f->dcs.config.pause = true;
}
SETUP(s_switchover_sync_candidate_not_sync) {
        s_switchover_to_candidate(f);
        sync_key(f, "node1", "node3");
}
SETUP(s_watchdog_primary) {
        base(f);
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_watchdog_replica_with_lock) {
        base_replica(f);
        f->dcs.leader.name = "node2";
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_leader) {
        base(f);
}
SETUP(s_leader_paused) {
        base(f);
        f->dcs.config.pause = true;
}
SETUP(s_leader_after_restart_of_pghad) {
        base(f);
        f->lease.deadline = 0; /* the daemon restarted; the key in etcd is still ours */
}
SETUP(s_leader_sync) {
        base(f);
        sync_key(f, "node1", "node2");
}
SETUP(s_leader_role_unknown) {
        base(f);
        role_unknown(f);
}
SETUP(s_leader_role_unknown_after_restart_of_pghad) {
        s_leader_after_restart_of_pghad(f);
        f->role = HA_ROLE_REPLICA;
        role_unknown(f);
}
SETUP(s_leader_role_unknown_paused) {
        s_leader_role_unknown(f);
        f->dcs.config.pause = true;
}
SETUP(s_leader_role_unknown_watchdog) {
        s_leader_role_unknown(f);
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_promote_with_lock) {
        base_replica(f);
        f->dcs.leader.name = "node2";
        f->lease.deadline = NOW + 20 * USEC_PER_SEC;
}
SETUP(s_promote_with_lock_sync) {
        s_promote_with_lock(f);
        sync_key(f, "node1", "node2");
}
SETUP(s_replica_follows) {
        base_replica(f);
}
SETUP(s_replica_follows_paused) {
        base_replica(f);
        f->dcs.config.pause = true;
}
SETUP(s_replica_replicatefrom) {
        base_replica(f);
        f->node.tags.replicatefrom = "node3";
}
SETUP(s_demoted_running_follows) {
        base_replica(f);
        f->role = HA_ROLE_DEMOTED;
}
/* no leader */
SETUP(s_unlocked_primary_takes_lock) {
        base(f);
        f->lease.deadline = 0;
        f->dcs.leader.name = NULL;
}
SETUP(s_unlocked_healthiest) {
        base_unlocked(f);
}
SETUP(s_unlocked_healthiest_tie) {
        base_unlocked(f);
        f->dcs.members[2].api.wal_position = WAL - 100;
}
SETUP(s_unlocked_ignores_unreachable_ahead) {
        base_unlocked(f);
        f->dcs.members[2].api.wal_position = WAL + 1000;
        f->dcs.members[2].api.fetch = HA_FETCH_FAILED;
}
SETUP(s_unlocked_ignores_nofailover_ahead) {
        base_unlocked(f);
        f->dcs.members[2].api.wal_position = WAL + 1000;
        f->dcs.members[2].tags.nofailover = true;
}
SETUP(s_unlocked_other_ahead) {
        base_unlocked(f);
        f->dcs.members[2].api.wal_position = WAL + 1000;
}
SETUP(s_unlocked_lagging) {
        base_unlocked(f);
        f->pg.wal_received = f->pg.wal_replayed = WAL - 2 * 1048576;
        f->dcs.members[2].api.fetch = HA_FETCH_FAILED;
}
SETUP(s_unlocked_timeline_behind) {
        base_unlocked(f);
        f->dcs.config.check_timeline = true;
        f->dcs.history_timeline = 3;
}
SETUP(s_unlocked_old_primary_alive) {
        base_unlocked(f);
        f->dcs.members[0].api.fetch = HA_FETCH_OK;
}
SETUP(s_unlocked_nofailover) {
        base_unlocked(f);
        f->node.tags.nofailover = true;
}
SETUP(s_unlocked_watchdog) {
        base_unlocked(f);
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_unlocked_watchdog_primary) {
        s_unlocked_primary_takes_lock(f);
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_unlocked_role_unknown) {
        /* would be the healthiest by its last known position, but cannot prove it: no race, demote */
        base_unlocked(f);
        f->role = HA_ROLE_PRIMARY;
        f->pg.wal_received = f->pg.wal_replayed = WAL + 100;
        role_unknown(f);
}
SETUP(s_unlocked_role_unknown_paused) {
        s_unlocked_role_unknown(f);
        f->dcs.config.pause = true;
}
SETUP(s_role_unknown_other_leader_paused) {
        s_role_unknown_other_leader(f);
        f->dcs.config.pause = true;
}
SETUP(s_unlocked_primary_paused_failover_elsewhere) {
        /* Paused, a manual failover names node3: the running primary does not take the lock, keeps running.
         */
        s_unlocked_primary_takes_lock(f);
        f->dcs.config.pause = true;
        switchover(f, NULL, "node3");
}
SETUP(s_shutdown_paused_new_node) {
        base_new_node(f);
        f->dcs.config.pause = true;
        f->shutdown_requested = true;
}
SETUP(s_unlocked_primary_nofailover) {
        s_unlocked_primary_takes_lock(f);
        f->node.tags.nofailover = true;
        f->node.watchdog_mode = HA_WATCHDOG_REQUIRED;
        f->node.watchdog_usable = false;
}
SETUP(s_unlocked_primary_not_healthiest) {
        s_unlocked_primary_takes_lock(f);
        f->dcs.members[1].api.in_recovery = false; /* node2 also claims to be a primary */
}
SETUP(s_paused_leader_pg_stopped) {
        /* Paused, the leader's postgres is down but it still holds the lock: replicas do not fail over. */
        base_replica(f);
        f->dcs.config.pause = true;
        f->dcs.members[0].state = HA_PG_STOPPED;
        f->dcs.members[0].api.fetch = HA_FETCH_FAILED;
}
SETUP(s_unlocked_paused) {
        base_unlocked(f);
        f->dcs.config.pause = true;
}
SETUP(s_resume_after_pause) {
        base_unlocked(f);
        f->dcs.config.pause = false;
}
/* manual failover with no leader */
SETUP(s_failover_no_leader_to_me) {
        base_unlocked(f);
        switchover(f, NULL, "node2");
        f->dcs.members[2].api.wal_position = WAL + 1000; /* even if another member is ahead */
}
SETUP(s_failover_no_leader_to_other) {
        base_unlocked(f);
        switchover(f, NULL, "node3");
}
SETUP(s_failover_no_leader_unhealthy_candidate) {
        s_failover_no_leader_to_other(f);
        f->dcs.members[2].api.fetch = HA_FETCH_FAILED;
}
SETUP(s_failover_paused_to_me) {
        base_unlocked(f);
        f->dcs.config.pause = true;
        switchover(f, NULL, "node2");
}
SETUP(s_failover_paused_to_other) {
        base_unlocked(f);
        f->dcs.config.pause = true;
        switchover(f, NULL, "node3");
}
SETUP(s_switchover_old_leader_races_alone) {
        /* node1 demoted for a switchover to node3, which died: node1 is the only healthy one left. */
        base_old_primary(f);
        f->pg.state = HA_PG_RUNNING;
        f->pg.divergence = HA_DIVERGENCE_NONE;
        f->pg.wal_received = f->pg.wal_replayed = WAL;
        f->dcs.history_timeline = 2;
        f->dcs.leader.name = NULL;
        switchover(f, "node1", "node3");
        f->dcs.members[1].api.fetch = HA_FETCH_FAILED;
        f->dcs.members[2].api.fetch = HA_FETCH_FAILED;
}
/* synchronous mode */
SETUP(s_sync_non_sync_replica) {
        base_unlocked(f);
        sync_key(f, "node1", "node3");
}
SETUP(s_sync_sync_replica) {
        base_unlocked(f);
        sync_key(f, "node1", "node2");
        f->dcs.members[0].api.fetch = HA_FETCH_OK; /* old leader alive in recovery and ahead: ignored */
        f->dcs.members[0].api.in_recovery = true;
        f->dcs.members[0].api.wal_position = WAL + 5000;
        f->dcs.members[2].api.wal_position = WAL + 1000; /* not in sync: not compared */
}
SETUP(s_quorum_voter_attached) {
        /* ANY 1 (node2,node3), quorum 1; node2 still has the dead leader as its upstream. */
        base_unlocked(f);
        sync_key(f, "node1", "node2");
        f->dcs.sync.standbys[1] = "node3";
        f->dcs.sync.n_standbys = 2;
        f->dcs.sync.quorum = 1;
        f->dcs.members[2].api.upstream_detached = true;
}
SETUP(s_sync_switchover_non_sync) {
        base_unlocked(f);
        sync_key(f, "node1", "node3");
        switchover(f, "node1", NULL);
}
SETUP(s_failsafe_not_listed) {
        base_unlocked(f);
        f->dcs.config.failsafe_mode = true;
        f->dcs.failsafe.present = true;
        f->dcs.failsafe.contains_us = false;
}

typedef struct Scenario {
        const char *name;
        void (*setup)(HaFacts *f);
        const char *row; /* expected predicate name */
        HaAction action;
        HaRole next;
        const char *message; /* exact, or NULL */
        const char *target;  /* exact, or NULL */
        unsigned flags;      /* flags that must be set */
} Scenario;

#define SC(n, ...) \
        { .name = #n, .setup = n, __VA_ARGS__ }

static const Scenario scenarios[] = {
        SC(s_lease_expired_etcd_down,
           .row = "lease_expired",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "demoted self because failed to update leader lock in DCS"),
        SC(s_lease_expired_after_freeze,
           .row = "lease_expired",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_lease_expired_promoting,
           .row = "lease_expired",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_lease_expired_shutdown_paused,
           .row = "lease_expired",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_renew_failed_paused,
           .row = "renew_failed_paused",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: continue to run as primary after failing to update leader lock in DCS"),
        SC(s_renew_failed,
           .row = "renew_failed_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "demoted self because failed to update leader lock in DCS"),
        SC(s_primary_other_leader,
           .row = "primary_but_other_leader",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "demoting self because I do not have the lock and I was a leader"),
        SC(s_lease_expired_role_unknown,
           .row = "lease_expired",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_renew_failed_role_unknown,
           .row = "renew_failed_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_role_unknown_other_leader,
           .row = "primary_but_other_leader",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_role_unknown_replica_other_leader,
           .row = "primary_but_other_leader",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_role_unknown_other_leader_paused,
           .row = "primary_without_lock_paused",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY),
        SC(s_shutdown_paused,
           .row = "shutdown_paused",
           .action = HA_ACTION_SHUTDOWN_DETACH,
           .next = HA_ROLE_PRIMARY),
        SC(s_shutdown_paused_new_node,
           .row = "shutdown_paused_uninitialized",
           .action = HA_ACTION_SHUTDOWN_DETACH,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_shutdown_leader,
           .row = "shutdown_primary",
           .action = HA_ACTION_SHUTDOWN_STOP,
           .next = HA_ROLE_DEMOTED),
        SC(s_shutdown_replica,
           .row = "shutdown",
           .action = HA_ACTION_SHUTDOWN_STOP,
           .next = HA_ROLE_REPLICA),
        SC(s_tilt_leader,
           .row = "tilt_primary",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_PRIMARY,
           .message = "TILT: 31 seconds since the last HA cycle, observing only for one loop_wait"),
        SC(s_tilt_replica_no_leader, .row = "tilt", .action = HA_ACTION_WAIT, .next = HA_ROLE_REPLICA),
        SC(s_dcs_down_paused,
           .row = "dcs_down_paused",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: DCS is not accessible"),
        SC(s_dcs_down_failsafe,
           .row = "dcs_down_failsafe",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_EXTEND_LEASE),
        SC(s_dcs_down_primary,
           .row = "dcs_down_primary",
           .action = HA_ACTION_DEMOTE_OFFLINE,
           .next = HA_ROLE_DEMOTED,
           .message = "demoting self because DCS is not accessible and I was a leader"),
        SC(s_dcs_down_role_unknown,
           .row = "dcs_down_primary",
           .action = HA_ACTION_DEMOTE_OFFLINE,
           .next = HA_ROLE_DEMOTED),
        SC(s_dcs_down_offline_demotion_starting,
           .row = "dcs_down_demoting",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_PRIMARY,
           .message = "DCS is not accessible; demote in progress"),
        SC(s_dcs_down_offline_demotion_stopping,
           .row = "dcs_down_demoting",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_PRIMARY),
        SC(s_dcs_down_failsafe_unconfirmed,
           .row = "dcs_down_primary",
           .action = HA_ACTION_DEMOTE_OFFLINE,
           .next = HA_ROLE_DEMOTED),
        SC(s_dcs_down_replica,
           .row = "dcs_down",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "DCS is not accessible"),
        SC(s_dcs_down_new_node,
           .row = "dcs_down_uninitialized",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_crash_recovery_timeout,
           .row = "job_start_timeout",
           .action = HA_ACTION_DEMOTE_IMMEDIATE,
           .next = HA_ROLE_DEMOTED,
           .flags = HA_FLAG_CANCEL_JOB,
           .message = "terminated crash recovery because of startup timeout"),
        SC(s_job_leader,
           .row = "job_running_leader",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "updated leader lock during restart"),
        SC(s_crash_recovery_timeout_no_candidate,
           .row = "job_running_leader",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "updated leader lock during crash recovery"),
        SC(s_promote_lost_lock,
           .row = "job_promote_lost_lock",
           .action = HA_ACTION_CANCEL_JOB,
           .next = HA_ROLE_REPLICA,
           .message = "lost leader before promote"),
        SC(s_job_replica,
           .row = "job_running",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "rewind in progress"),
        SC(s_job_clone,
           .row = "job_running_uninitialized",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "clone in progress"),
        SC(s_reinit,
           .row = "reinit_requested",
           .action = HA_ACTION_REINIT,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .flags = HA_FLAG_CLEAR_REINIT),
        SC(s_reinit_leader,
           .row = "reinit_requested_leader",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_PRIMARY,
           .message = "I am the leader, can not reinitialize"),
        SC(s_reinit_no_leader,
           .row = "reinit_requested_no_leader",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_REPLICA,
           .message = "Cluster has no leader, can not reinitialize"),
        SC(s_starting_timeout_failover,
           .row = "starting_timeout_failover",
           .action = HA_ACTION_DEMOTE_IMMEDIATE,
           .next = HA_ROLE_DEMOTED,
           .message = "stopped PostgreSQL because of startup timeout"),
        SC(s_starting_timeout_alone,
           .row = "starting_timeout",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY),
        SC(s_starting_leader,
           .row = "starting_leader",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "PostgreSQL is still starting up, 200 seconds until timeout"),
        SC(s_starting_replica, .row = "starting", .action = HA_ACTION_WAIT, .next = HA_ROLE_REPLICA),
        SC(s_bootstrap_failed,
           .row = "bootstrap_failed",
           .action = HA_ACTION_BOOTSTRAP_CANCEL,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_bootstrap_done_no_watchdog,
           .row = "bootstrap_no_watchdog",
           .action = HA_ACTION_BOOTSTRAP_CANCEL,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_bootstrap_done,
           .row = "bootstrap_done",
           .action = HA_ACTION_BOOTSTRAP_FINISH,
           .next = HA_ROLE_PRIMARY,
           .message = "initialized a new cluster",
           .flags = HA_FLAG_WRITE_INITIALIZE | HA_FLAG_ARM_WATCHDOG),
        SC(s_clone_failed,
           .row = "clone_failed",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "failed to bootstrap from leader 'node1'"),
        SC(s_start_failed_leader,
           .row = "start_failed_leader",
           .action = HA_ACTION_RELEASE_LOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "removed leader key after trying and failing to start postgres"),
        SC(s_start_failed_replica,
           .row = "start_failed",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "failed to start postgres"),
        SC(s_data_dir_empty_leader,
           .row = "data_dir_gone_leader",
           .action = HA_ACTION_STOP_POSTGRES,
           .next = HA_ROLE_UNINITIALIZED,
           .flags = HA_FLAG_RELEASE_LOCK,
           .message = "released leader key voluntarily as data dir empty and currently leader"),
        SC(s_data_dir_inaccessible,
           .row = "data_dir_inaccessible",
           .action = HA_ACTION_STOP_POSTGRES,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_data_dir_empty_paused,
           .row = "data_dir_empty_paused",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "PAUSE: running with empty data directory"),
        SC(s_data_dir_empty,
           .row = "data_dir_empty",
           .action = HA_ACTION_STOP_POSTGRES,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_data_dir_invalid, .row = "data_dir_invalid", .action = HA_ACTION_WAIT, .next = HA_ROLE_REPLICA),
        SC(s_sysid_mismatch_paused_leader,
           .row = "sysid_mismatch_paused_leader",
           .action = HA_ACTION_RELEASE_LOCK,
           .next = HA_ROLE_PRIMARY),
        SC(s_sysid_mismatch_paused,
           .row = "sysid_mismatch_paused",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA),
        SC(s_foreign_data_dir,
           .row = "sysid_mismatch",
           .action = HA_ACTION_EXIT,
           .next = HA_ROLE_REPLICA,
           .message =
                   "system ID mismatch, node node2 belongs to a different cluster: 7712574132163962109 != "
                   "6000000000000000001"),
        SC(s_no_initialize_replica_at_start,
           .row = "no_initialize_replica_at_start",
           .action = HA_ACTION_EXIT,
           .next = HA_ROLE_REPLICA),
        SC(s_uninit_inaccessible,
           .row = "uninit_inaccessible",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_uninit_has_data, .row = "uninit_has_data", .action = HA_ACTION_NOOP, .next = HA_ROLE_DEMOTED),
        SC(s_uninit_paused, .row = "uninit_paused", .action = HA_ACTION_WAIT, .next = HA_ROLE_UNINITIALIZED),
        SC(s_clone_from_leader,
           .row = "uninit_leader_exists",
           .action = HA_ACTION_CLONE_FROM_LEADER,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .message = "trying to bootstrap from leader 'node1'"),
        SC(s_clone_from_replica,
           .row = "uninit_leader_exists",
           .action = HA_ACTION_CLONE_FROM_LEADER,
           .next = HA_ROLE_REPLICA,
           .target = "node3",
           .message = "trying to bootstrap from replica 'node3'"),
        SC(s_bootstrap_race,
           .row = "uninit_may_race",
           .action = HA_ACTION_BOOTSTRAP_RACE,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "trying to bootstrap a new cluster"),
        SC(s_bootstrap_won,
           .row = "uninit_won_race",
           .action = HA_ACTION_BOOTSTRAP_INITDB,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_bootstrap_lost,
           .row = "always_uninitialized",
           .action = HA_ACTION_WAIT_FOR_BOOTSTRAP,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "waiting for leader to bootstrap"),
        SC(s_bootstrap_nofailover,
           .row = "always_uninitialized",
           .action = HA_ACTION_WAIT_FOR_BOOTSTRAP,
           .next = HA_ROLE_UNINITIALIZED),
        SC(s_bootstrap_no_section,
           .row = "always_uninitialized",
           .action = HA_ACTION_WAIT_FOR_BOOTSTRAP,
           .next = HA_ROLE_UNINITIALIZED,
           .message = "waiting for leader to bootstrap"),
        SC(s_stopped_paused_leader,
           .row = "stopped_paused_leader",
           .action = HA_ACTION_RELEASE_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: removed leader lock because postgres is not running"),
        SC(s_stopped_paused_replica,
           .row = "stopped_paused",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "PAUSE: postgres is not running"),
        SC(s_stopped_paused_replica_restart,
           .row = "restart_requested_stopped_paused",
           .action = HA_ACTION_RESTART,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .message = "PAUSE: restart initiated",
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_crashed_fail_over,
           .row = "crashed_leader_fail_over",
           .action = HA_ACTION_DEMOTE_IMMEDIATE,
           .next = HA_ROLE_DEMOTED,
           .message = "stopped PostgreSQL to fail over after a crash"),
        SC(s_crashed_unclean_with_rewind,
           .row = "stopped_unclean",
           .action = HA_ACTION_RECOVER_CRASHED,
           .next = HA_ROLE_PRIMARY,
           .message = "doing crash recovery in a single user mode"),
        SC(s_crashed_leader,
           .row = "stopped_leader",
           .action = HA_ACTION_START_POSTGRES,
           .next = HA_ROLE_PRIMARY,
           .message = "starting as readonly because i had the session lock"),
        SC(s_crashed_no_candidate,
           .row = "stopped_leader",
           .action = HA_ACTION_START_POSTGRES,
           .next = HA_ROLE_PRIMARY),
        SC(s_paused_primary_without_lock,
           .row = "primary_without_lock_paused",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: continue to run as primary without lock"),
        SC(s_rewind_wait_checkpoint,
           .row = "diverged_wait_checkpoint",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_DEMOTED,
           .message = "Waiting for checkpoint on node2 before rewind"),
        SC(s_rewind,
           .row = "diverged_rewind",
           .action = HA_ACTION_REWIND,
           .next = HA_ROLE_REPLICA,
           .target = "node2",
           .message = "running pg_rewind from node2"),
        SC(s_reinit_diverged,
           .row = "diverged_reinit",
           .action = HA_ACTION_REINIT,
           .next = HA_ROLE_REPLICA,
           .target = "node2",
           .message = "reinitializing due to diverged timelines"),
        SC(s_reinit_after_rewind_failure,
           .row = "diverged_reinit",
           .action = HA_ACTION_REINIT,
           .next = HA_ROLE_REPLICA),
        SC(s_replica_diverged_running,
           .row = "diverged_running",
           .action = HA_ACTION_STOP_POSTGRES,
           .next = HA_ROLE_REPLICA,
           .message = "stopping postgres to rewind: its timeline diverged from leader node1"),
        SC(s_replica_diverged_running_reinit,
           .row = "diverged_reinit",
           .action = HA_ACTION_REINIT,
           .next = HA_ROLE_REPLICA,
           .target = "node1"),
        SC(s_replica_diverged_running_paused,
           .row = "diverged_stuck",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA),
        SC(s_diverged_stuck, .row = "diverged_stuck", .action = HA_ACTION_WAIT, .next = HA_ROLE_DEMOTED),
        SC(s_old_primary_unchecked,
           .row = "demoted_divergence_unknown",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_DEMOTED),
        SC(s_old_primary_not_diverged,
           .row = "stopped",
           .action = HA_ACTION_START_POSTGRES,
           .next = HA_ROLE_REPLICA,
           .target = "node2",
           .message = "starting as a secondary"),
        SC(s_replica_stopped,
           .row = "stopped",
           .action = HA_ACTION_START_POSTGRES,
           .next = HA_ROLE_REPLICA,
           .target = "node1"),
        SC(s_restart_already_happened,
           .row = "restart_already_happened",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_stale,
           .row = "restart_stale",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_REPLICA,
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_filters,
           .row = "restart_filters_mismatch",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_REPLICA,
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_due,
           .row = "restart_due",
           .action = HA_ACTION_RESTART,
           .next = HA_ROLE_PRIMARY,
           .message = "restart initiated",
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_not_due,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY),
        /* a replica restarts still following its leader, never without primary_conninfo */
        SC(s_restart_replica_requested,
           .row = "restart_due",
           .action = HA_ACTION_RESTART,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_scheduled_paused,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: no action. I am (node1), the leader with the lock"),
        SC(s_restart_requested_paused,
           .row = "restart_due",
           .action = HA_ACTION_RESTART,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_restart_start_time_unknown,
           .row = "restart_due",
           .action = HA_ACTION_RESTART,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_RESTART),
        SC(s_renew_failed_replica,
           .row = "renew_failed_replica",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "not promoting because failed to update leader lock in DCS"),
        SC(s_paused_awaiting_promote,
           .row = "leader_paused_awaiting_promote",
           .action = HA_ACTION_WAIT,
           .next = HA_ROLE_REPLICA,
           .message = "PAUSE: waiting to become primary after promote..."),
        SC(s_paused_leader_not_primary,
           .row = "leader_paused_not_primary",
           .action = HA_ACTION_RELEASE_LOCK,
           .next = HA_ROLE_REPLICA),
        SC(s_switchover_not_due,
           .row = "switchover_not_due",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "no action. I am (node1), the leader with the lock"),
        SC(s_switchover_stale,
           .row = "switchover_stale",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_switchover_due,
           .row = "switchover_demote",
           .action = HA_ACTION_DEMOTE_GRACEFUL,
           .next = HA_ROLE_DEMOTED),
        SC(s_switchover_to_candidate,
           .row = "switchover_demote",
           .action = HA_ACTION_DEMOTE_GRACEFUL,
           .next = HA_ROLE_DEMOTED,
           .message = "manual failover: demoting myself"),
        SC(s_switchover_any,
           .row = "switchover_demote",
           .action = HA_ACTION_DEMOTE_GRACEFUL,
           .next = HA_ROLE_DEMOTED),
        SC(s_switchover_paused_candidate,
           .row = "switchover_demote",
           .action = HA_ACTION_DEMOTE_GRACEFUL,
           .next = HA_ROLE_DEMOTED),
        SC(s_switchover_candidate_unhealthy,
           .row = "switchover_reject",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_switchover_wrong_leader,
           .row = "switchover_reject",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_switchover_paused_no_candidate,
           .row = "switchover_reject",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_switchover_sync_candidate_not_sync,
           .row = "switchover_reject",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_watchdog_primary,
           .row = "leader_watchdog_unusable_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE,
           .next = HA_ROLE_DEMOTED,
           .message = "Demoting self because watchdog could not be activated"),
        SC(s_watchdog_replica_with_lock,
           .row = "leader_watchdog_unusable",
           .action = HA_ACTION_RELEASE_LOCK,
           .next = HA_ROLE_REPLICA,
           .message = "Not promoting self because watchdog could not be activated"),
        SC(s_leader,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "no action. I am (node1), the leader with the lock",
           .flags = HA_FLAG_WRITE_STATUS | HA_FLAG_PROCESS_SYNC | HA_FLAG_ARM_WATCHDOG),
        SC(s_leader_paused,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: no action. I am (node1), the leader with the lock",
           .flags = HA_FLAG_DISABLE_WATCHDOG),
        SC(s_leader_after_restart_of_pghad,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY),
        SC(s_leader_sync,
           .row = "leader_primary",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_PROCESS_SYNC),
        SC(s_leader_role_unknown,
           .row = "leader_role_unknown",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "no action. I am (node1), the leader with the lock; PostgreSQL's role cannot be read, "
                      "so it is treated as the primary"),
        SC(s_leader_role_unknown_after_restart_of_pghad,
           .row = "leader_role_unknown",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_REPLICA),
        SC(s_leader_role_unknown_paused,
           .row = "leader_role_unknown",
           .action = HA_ACTION_RENEW_LOCK,
           .next = HA_ROLE_PRIMARY),
        SC(s_leader_role_unknown_watchdog,
           .row = "leader_watchdog_unusable_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE,
           .next = HA_ROLE_DEMOTED),
        SC(s_promote_with_lock,
           .row = "leader_replica",
           .action = HA_ACTION_PROMOTE,
           .next = HA_ROLE_PRIMARY,
           .message = "promoted self to leader because I had the session lock"),
        SC(s_promote_with_lock_sync,
           .row = "leader_replica",
           .action = HA_ACTION_PROMOTE,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLAIM_SYNC),
        SC(s_replica_follows,
           .row = "follow_leader",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .target = "node1",
           .message = "no action. I am (node2), a secondary, and following a leader (node1)"),
        SC(s_replica_follows_paused,
           .row = "follow_leader",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .message = "PAUSE: no action. I am (node2), a secondary, and following a leader (node1)"),
        SC(s_replica_replicatefrom,
           .row = "follow_leader",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .target = "node3"),
        SC(s_demoted_running_follows,
           .row = "follow_leader",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_primary_takes_lock,
           .row = "unlocked_healthiest_primary",
           .action = HA_ACTION_ACQUIRE_LOCK,
           .next = HA_ROLE_PRIMARY,
           .message = "acquired session lock as a leader"),
        SC(s_unlocked_healthiest,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY,
           .message = "promoted self to leader by acquiring session lock"),
        SC(s_unlocked_healthiest_tie,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_unlocked_ignores_unreachable_ahead,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_unlocked_ignores_nofailover_ahead,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_unlocked_other_ahead,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .message = "following a different leader because i am not the healthiest node"),
        SC(s_unlocked_lagging,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_timeline_behind,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_old_primary_alive,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_watchdog,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_nofailover,
           .row = "unlocked_nofailover",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .message = "following a different leader because I am not allowed to promote"),
        SC(s_unlocked_watchdog_primary,
           .row = "unlocked_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "demoting self because i am not the healthiest node"),
        SC(s_unlocked_role_unknown,
           .row = "unlocked_primary",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED),
        SC(s_unlocked_role_unknown_paused,
           .row = "unlocked_primary_paused",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY),
        SC(s_unlocked_primary_paused_failover_elsewhere,
           .row = "unlocked_primary_paused",
           .action = HA_ACTION_STAY_PRIMARY,
           .next = HA_ROLE_PRIMARY,
           .message = "PAUSE: continue to run as primary without lock"),
        SC(s_unlocked_primary_nofailover,
           .row = "unlocked_primary_nofailover",
           .action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
           .next = HA_ROLE_DEMOTED,
           .message = "demoting self because I am not allowed to become primary"),
        SC(s_unlocked_primary_not_healthiest,
           .row = "unlocked_healthiest_primary",
           .action = HA_ACTION_ACQUIRE_LOCK,
           .next = HA_ROLE_PRIMARY),
        SC(s_paused_leader_pg_stopped,
           .row = "follow_leader",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_unlocked_paused,
           .row = "unlocked_paused",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_REPLICA,
           .message = "PAUSE: no action. I am (node2)"),
        SC(s_resume_after_pause,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_failover_no_leader_to_me,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLEAR_FAILOVER),
        SC(s_failover_no_leader_to_other,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_failover_no_leader_unhealthy_candidate,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_failover_paused_to_me,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_failover_paused_to_other,
           .row = "unlocked_paused",
           .action = HA_ACTION_NOOP,
           .next = HA_ROLE_REPLICA),
        SC(s_switchover_old_leader_races_alone,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY),
        SC(s_sync_non_sync_replica,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_sync_sync_replica,
           .row = "unlocked_healthiest",
           .action = HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
           .next = HA_ROLE_PRIMARY,
           .flags = HA_FLAG_CLAIM_SYNC),
        SC(s_quorum_voter_attached,
           .row = "unlocked_quorum_detach",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA,
           .message = "no leader: stopping replication from the former leader before the quorum vote"),
        SC(s_sync_switchover_non_sync,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
        SC(s_failsafe_not_listed,
           .row = "unlocked_not_healthiest",
           .action = HA_ACTION_FOLLOW,
           .next = HA_ROLE_REPLICA),
};

static bool run_scenario(const Scenario *s, bool *hit) {
        HaFacts f;
        HaDecision d;
        const HaFsmRowInfo *row;
        int r;

        s->setup(&f);
        r = ha_fsm_decide(&f, &d);
        if (r < 0) {
                fprintf(stderr, "  %s: ha_fsm_decide() = %d\n", s->name, r);
                return false;
        }
        row = ha_fsm_row(d.row);
        hit[d.row] = true;
        if (!streq(row->predicate, s->row) || d.action != s->action || d.next_role != s->next ||
            (s->message && !streq(d.message, s->message)) || (s->target && !streq(d.target, s->target)) ||
            (d.flags & s->flags) != s->flags) {
                fprintf(stderr,
                        "  %s: got row %zu %s, %s, next %s, flags 0x%x, target '%s', message '%s'\n"
                        "  %*s  expected %s, %s, next %s, flags 0x%x, target '%s', message '%s'\n",
                        s->name,
                        d.row,
                        row->predicate,
                        ha_action_to_string(d.action),
                        ha_role_to_string(d.next_role),
                        d.flags,
                        d.target,
                        d.message,
                        (int)strlen(s->name),
                        "",
                        s->row,
                        ha_action_to_string(s->action),
                        ha_role_to_string(s->next),
                        s->flags,
                        strna(s->target),
                        strna(s->message));
                return false;
        }
        return true;
}

TEST(scenarios_and_row_coverage) {
        bool hit[256] = {};
        unsigned failed = 0;

        ASSERT_TRUE(ha_fsm_n_rows() <= ELEMENTSOF(hit));
        for (size_t i = 0; i < ELEMENTSOF(scenarios); i++)
                if (!run_scenario(&scenarios[i], hit))
                        failed++;
        ASSERT_EQ(failed, 0);

        for (size_t i = 0; i < ha_fsm_n_rows(); i++)
                if (!hit[i]) {
                        fprintf(stderr,
                                "  row %zu (%s) is hit by no scenario\n",
                                i,
                                ha_fsm_row(i)->predicate);
                        failed++;
                }
        ASSERT_EQ(failed, 0);
}

/* ---- the table ------------------------------------------------------------------------------------------
 */

TEST(table_well_formed) {
        size_t n = ha_fsm_n_rows();
        bool reachable[_HA_ROLE_MAX] = {[HA_ROLE_UNINITIALIZED] = true};
        bool seen_wildcard = false, changed;

        ASSERT_TRUE(n > 0);
        ASSERT_NULL(ha_fsm_row(n));
        for (size_t i = 0; i < n; i++) {
                const HaFsmRowInfo *r = ha_fsm_row(i);

                /* Every row names roles, a predicate, an action, a comment and a message. */
                ASSERT_TRUE(r->roles != 0 && (r->roles & ~HA_ROLES_ALL) == 0);
                ASSERT_TRUE(!isempty(r->predicate) && !isempty(r->comment) && !isempty(r->message));
                ASSERT_NOT_NULL(ha_action_to_string(r->action));
                ASSERT_TRUE(r->action != HA_ACTION_FENCE);
                ASSERT_TRUE(r->next_role == _HA_ROLE_INVALID || ha_role_to_string(r->next_role));

                /* Wildcards only after every specific row. */
                if (r->roles == HA_ROLES_ALL)
                        seen_wildcard = true;
                else if (seen_wildcard)
                        TEST_FAIL("row %zu (%s) is specific but follows a wildcard row", i, r->predicate);

                /* No shadowing: an earlier row with the same predicate, or an always-true one, over an
                 * overlapping role set would make (part of) this row dead. Predicates and comments are
                 * unique per row. */
                for (size_t j = 0; j < i; j++) {
                        const HaFsmRowInfo *e = ha_fsm_row(j);
                        if (streq(e->predicate, r->predicate))
                                TEST_FAIL("rows %zu and %zu share predicate %s", j, i, r->predicate);
                        if (streq(e->comment, r->comment))
                                TEST_FAIL("rows %zu and %zu share comment '%s'", j, i, r->comment);
                        if ((e->roles & r->roles) && startswith(e->predicate, "always"))
                                TEST_FAIL(
                                        "row %zu (%s) is shadowed by row %zu (%s)",
                                        i,
                                        r->predicate,
                                        j,
                                        e->predicate);
                }
        }

        /* Every role is reachable from `uninitialized` through the rows' edges. */
        do {
                changed = false;
                for (size_t i = 0; i < n; i++) {
                        const HaFsmRowInfo *r = ha_fsm_row(i);
                        if (r->next_role == _HA_ROLE_INVALID || reachable[r->next_role])
                                continue;
                        for (int from = 0; from < _HA_ROLE_MAX; from++)
                                if (reachable[from] && (r->roles & (1u << from))) {
                                        reachable[r->next_role] = changed = true;
                                        break;
                                }
                }
        } while (changed);
        for (int role = 0; role < _HA_ROLE_MAX; role++)
                if (!reachable[role])
                        TEST_FAIL("role %s is not reachable from uninitialized", ha_role_to_string(role));

        /* The safety row is the very first one and covers every role postgres can run in. */
        ASSERT_STREQ(ha_fsm_row(0)->predicate, "lease_expired");
        ASSERT_EQ(ha_fsm_row(0)->action, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK);
        ASSERT_EQ(ha_fsm_row(0)->roles, HA_ROLES_ALL & ~(1u << HA_ROLE_UNINITIALIZED));
}

TEST(golden_dump) {
        test_compare_with_file(
                PGHA_FIXTURES_DIR "/ha_fsm/table.golden",
                ha_fsm_dump,
                "build/pgha-test-hafsm dump > tests/fixtures/ha_fsm/table.golden");
}

TEST(docs_fsm_md_up_to_date) {
        test_compare_with_file(
                PGHA_FIXTURES_DIR "/../../docs/fsm.md",
                ha_fsm_print_markdown,
                "build/pgha-test-hafsm markdown > docs/fsm.md");
}

TEST(dot_export) {
        _cleanup_free_ char *dot = test_render(ha_fsm_print_dot);

        ASSERT_TRUE(startswith(dot, "digraph pgha_ha_fsm {"));
        ASSERT_NOT_NULL(strstr(dot, "\"replica\" -> \"master\""));
        ASSERT_NOT_NULL(strstr(dot, "\"master\" -> \"demoted\""));
        ASSERT_NOT_NULL(strstr(dot, "\"uninitialized\" -> \"replica\""));
        ASSERT_TRUE(endswith(dot, "}\n"));
}

/* ---- string tables ---------------------------------------------------------------------------------- */

TEST(string_tables) {
        for (int r = 0; r < _HA_ROLE_MAX; r++)
                ASSERT_EQ(ha_role_from_string(ha_role_to_string(r)), r);
        for (int a = 0; a < _HA_ACTION_MAX; a++) {
                ASSERT_NOT_NULL(ha_action_to_string(a));
                ASSERT_EQ(ha_action_from_string(ha_action_to_string(a)), a);
        }
        for (int s = 0; s < _HA_PG_STATE_MAX; s++)
                ASSERT_EQ(ha_pg_state_from_string(ha_pg_state_to_string(s)), s);
        for (int j = 0; j < _HA_JOB_MAX; j++)
                ASSERT_EQ(ha_job_from_string(ha_job_to_string(j)), j);
        for (int s = 0; s < _HA_SWITCHOVER_MAX; s++)
                ASSERT_NOT_NULL(ha_switchover_to_string(s));
        ASSERT_STREQ(ha_role_to_string(HA_ROLE_PRIMARY), "master");
        ASSERT_EQ(ha_role_from_string("primary"), HA_ROLE_PRIMARY);
        ASSERT_EQ(ha_role_from_string("standby_leader"), -EINVAL);
        ASSERT_EQ(ha_role_from_string(NULL), -EINVAL);
        ASSERT_EQ(ha_pg_state_from_string("restarting"), HA_PG_STARTING);
        ASSERT_EQ(ha_pg_state_from_string("start failed"), HA_PG_CRASHED);
        ASSERT_NULL(ha_role_to_string(_HA_ROLE_MAX));
        ASSERT_NULL(ha_action_to_string(-1));
        ASSERT_STREQ(ha_flag_to_string(HA_FLAG_RELEASE_LOCK), "release-lock");
        ASSERT_NULL(ha_flag_to_string(HA_FLAG_RELEASE_LOCK | HA_FLAG_CLEAR_REINIT));
}

/* ---- helpers and housekeeping ----------------------------------------------------------------------------
 */

TEST(restart_filters) {
        /* no filter: always */
        ASSERT_TRUE(ha_fsm_restart_mismatch(NULL, 0, false, "replica", 150002, false) == NULL);
        /* role: primary and master name the same role */
        ASSERT_TRUE(ha_fsm_restart_mismatch("primary", 0, false, "master", 150002, false) == NULL);
        ASSERT_TRUE(ha_fsm_restart_mismatch("master", 0, false, "master", 150002, false) == NULL);
        ASSERT_TRUE(ha_fsm_restart_mismatch("replica", 0, false, "replica", 150002, false) == NULL);
        ASSERT_STREQ(
                ha_fsm_restart_mismatch("replica", 0, false, "master", 150002, false), "host role mismatch");
        ASSERT_STREQ(
                ha_fsm_restart_mismatch("primary", 0, false, "replica", 150002, false),
                "host role mismatch");
        /* postgres_version: restart only an older server */
        ASSERT_TRUE(ha_fsm_restart_mismatch(NULL, 150003, false, "replica", 150002, false) == NULL);
        ASSERT_STREQ(
                ha_fsm_restart_mismatch(NULL, 150002, false, "replica", 150002, false),
                "postgres version mismatch");
        ASSERT_STREQ(
                ha_fsm_restart_mismatch(NULL, 140000, false, "replica", 150002, false),
                "postgres version mismatch");
        /* restart_pending */
        ASSERT_TRUE(ha_fsm_restart_mismatch(NULL, 0, true, "replica", 150002, true) == NULL);
        ASSERT_STREQ(
                ha_fsm_restart_mismatch(NULL, 0, true, "replica", 150002, false),
                "pending restart flag is not set");
        /* several fail: the last checked is reported, as Patroni does */
        ASSERT_STREQ(
                ha_fsm_restart_mismatch("replica", 990100, true, "master", 150002, false),
                "pending restart flag is not set");
        ASSERT_STREQ(
                ha_fsm_restart_mismatch("replica", 140000, false, "master", 150002, false),
                "postgres version mismatch");
}

TEST(decision_carries_the_healthiest_reason) {
        HaFacts f;
        HaDecision d;

        s_unlocked_lagging(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_STREQ(d.message, "following a different leader because i am not the healthiest node");
        ASSERT_STREQ(d.reason, "My wal position exceeds maximum replication lag");

        s_unlocked_other_ahead(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_STREQ(d.reason, "Wal position of node3 is ahead of my wal position");
}

TEST(healthiest_reasons) {
        HaFacts f;
        char reason[HA_MESSAGE_MAX];

        s_unlocked_other_ahead(&f);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "Wal position of node3 is ahead of my wal position");

        s_unlocked_lagging(&f);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "My wal position exceeds maximum replication lag");

        s_unlocked_timeline_behind(&f);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "My timeline 2 is behind last known cluster timeline 3");

        s_unlocked_old_primary_alive(&f);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "Primary (node1) is still alive");

        s_unlocked_watchdog(&f);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "Watchdog device is not usable");

        s_sync_sync_replica(&f);
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "");

        /* Lag exactly at the limit still races. */
        base_unlocked(&f);
        f.pg.wal_received = f.pg.wal_replayed = WAL - 1048576;
        f.dcs.members[2].api.fetch = HA_FETCH_FAILED;
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, NULL, 0));
        f.pg.wal_replayed = f.pg.wal_received = WAL - 1048577;
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, NULL, 0));

        /* A member whose API answers but has no api_url in its key is not asked. */
        s_unlocked_other_ahead(&f);
        f.dcs.members[2].has_api_url = false;
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, NULL, 0));
}

/* Quorum commit: sync = {leader: node1, sync_standby: "node2,node3", quorum: q}; node1 died. */
static void quorum_key(HaFacts *f, unsigned quorum) {
        base_unlocked(f);
        sync_key(f, "node1", "node2");
        f->dcs.sync.standbys[1] = "node3";
        f->dcs.sync.n_standbys = 2;
        f->dcs.sync.quorum = quorum;
        /* every voter already stopped streaming from node1 */
        f->pg.upstream_detached = true;
        for (size_t i = 0; i < f->dcs.n_members; i++)
                f->dcs.members[i].api.upstream_detached = true;
}

TEST(quorum_votes) {
        HaFacts f;
        char reason[HA_MESSAGE_MAX];

        /* ANY 1 (node2,node3), quorum 1: node2 sees node3 behind it: 1 vote, promotes. */
        quorum_key(&f, 1);
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 1);
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));

        /* node3 unreachable: node2 alone may lack the last acknowledged commit: no promotion. */
        f.dcs.members[2].api.fetch = HA_FETCH_FAILED;
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "quorum: got 0 of 1 votes needed from the other synchronous standbys");

        /* Too few votes: quorum 2 needs two other standbys, one answers. */
        quorum_key(&f, 2);
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 1);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "quorum: got 1 of 2 votes needed from the other synchronous standbys");

        /* A voter still able to stream from node1 does not vote: node1 may only be frozen, and once
         * awake have that voter acknowledge commits the new primary never receives. */
        quorum_key(&f, 1);
        f.dcs.members[2].api.upstream_detached = false;
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "quorum: got 0 of 1 votes needed from the other synchronous standbys");

        /* A voter whose PostgreSQL is down (no WAL position) does not vote. */
        quorum_key(&f, 1);
        f.dcs.members[2].api.wal_position = 0;
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, NULL, 0));
        f.dcs.members[2].api.has_wal_position = false;
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);

        /* A voter ahead of us: it is the better candidate. */
        quorum_key(&f, 1);
        f.dcs.members[2].api.wal_position = WAL;
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "Wal position of node3 is ahead of my wal position");

        /* Equal positions vote. */
        f.dcs.members[2].api.wal_position = WAL - 100;
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, NULL, 0));

        /* The failed leader never votes, even alive in recovery and behind us. */
        quorum_key(&f, 1);
        f.dcs.members[2].api.fetch = HA_FETCH_FAILED;
        f.dcs.members[0].api.fetch = HA_FETCH_OK;
        f.dcs.members[0].api.in_recovery = true;
        f.dcs.members[0].api.wal_position = WAL - 500;
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, NULL, 0));

        /* A member not named by the key does not vote. */
        quorum_key(&f, 1);
        f.dcs.sync.standbys[1] = "node4";
        ASSERT_EQ(ha_fsm_quorum_votes(&f), 0);
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, NULL, 0));

        /* quorum 0 (ANY 2 of 2, or a key without the field): every named standby has every commit. */
        quorum_key(&f, 0);
        f.dcs.members[2].api.fetch = HA_FETCH_FAILED;
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, NULL, 0));

        /* Not named at all: no race, whatever the votes. */
        quorum_key(&f, 1);
        f.node.name = "node3";
        f.dcs.sync.standbys[1] = "node4";
        f.pg.wal_received = f.pg.wal_replayed = WAL;
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "synchronous mode: not listed in the sync key");

        /* The former leader (back as a replica, lock expired) needs no votes. */
        quorum_key(&f, 2);
        f.node.name = "node1";
        f.pg.wal_received = f.pg.wal_replayed = WAL;
        f.dcs.members[1].api.fetch = HA_FETCH_FAILED;
        f.dcs.members[2].api.fetch = HA_FETCH_FAILED;
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, NULL, 0));
}

TEST(manual_failover_keeps_synchronous_guarantees) {
        HaFacts f;
        char reason[HA_MESSAGE_MAX];

        /* Failover key naming node2 (no leader), quorum key ANY 1 (node2,node3), quorum 1: the named
         * candidate still needs node3's vote, as an unnamed one would. */
        quorum_key(&f, 1);
        switchover(&f, NULL, "node2");
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        f.dcs.members[2].api.upstream_detached = false;
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "quorum: got 0 of 1 votes needed from the other synchronous standbys");

        /* synchronous_mode on, sync = {node1, node3}: a failover key naming node2 (written straight to
         * etcd; the REST API refuses it) does not make node2, which may lack commits, promote. */
        base_unlocked(&f);
        sync_key(&f, "node1", "node3");
        switchover(&f, NULL, "node2");
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "manual failover: not in the sync key");

        /* Named and in the key: it promotes. */
        sync_key(&f, "node1", "node2");
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));

        /* Paused, the named candidate alone may race: still only if it is in the sync key (it promoted
         * regardless before, losing the commits only node3 had acknowledged). */
        base_unlocked(&f);
        f.dcs.config.pause = true;
        sync_key(&f, "node1", "node3");
        switchover(&f, NULL, "node2");
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "manual failover: not in the sync key");
        sync_key(&f, "node1", "node2");
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));

        /* Paused, quorum key ANY 1 (node2,node3): the named node2 still needs node3's vote. */
        quorum_key(&f, 1);
        f.dcs.config.pause = true;
        switchover(&f, NULL, "node2");
        ASSERT_TRUE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        f.dcs.members[2].api.upstream_detached = false;
        ASSERT_FALSE(ha_fsm_is_healthiest_node(&f, reason, sizeof reason));
        ASSERT_STREQ(reason, "quorum: got 0 of 1 votes needed from the other synchronous standbys");
}

TEST(quorum_voter_detaches_before_racing) {
        HaFacts f;
        HaDecision d;

        /* node2, a voter still attached to the dead leader: it detaches first (follow nobody), before
         * racing, and looks again soon rather than after loop_wait. */
        quorum_key(&f, 1);
        f.pg.upstream_detached = false;
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_EQ(d.action, HA_ACTION_FOLLOW);
        ASSERT_STREQ(d.target, "");
        ASSERT_STREQ(d.comment, "no leader, quorum voter: stop streaming from the former leader");
        ASSERT_TRUE(d.wake_at > 0 && d.wake_at <= f.now + HA_QUORUM_RECHECK_USEC);

        /* Detached, with node3's vote: it races. */
        f.pg.upstream_detached = true;
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_EQ(d.action, HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE);

        /* Detached, node3 not yet: it waits for the vote and looks again soon. */
        f.dcs.members[2].api.upstream_detached = false;
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_EQ(d.action, HA_ACTION_FOLLOW);
        ASSERT_STREQ(d.reason, "quorum: got 0 of 1 votes needed from the other synchronous standbys");
        ASSERT_TRUE(d.wake_at > 0 && d.wake_at <= f.now + HA_QUORUM_RECHECK_USEC);

        /* Not a voter of the key (quorum 0: every named standby has every commit), paused, or a leader
         * present: no detaching. */
        quorum_key(&f, 0);
        f.pg.upstream_detached = false;
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_EQ(d.action, HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE);
        quorum_key(&f, 1);
        f.pg.upstream_detached = false;
        f.dcs.config.pause = true;
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_TRUE(d.action != HA_ACTION_FOLLOW);
        quorum_key(&f, 1);
        f.pg.upstream_detached = false;
        f.node.name = "node1"; /* the key's former leader: it votes for nobody and needs no votes */
        ASSERT_EQ(ha_fsm_decide(&f, &d), 0);
        ASSERT_TRUE(d.action != HA_ACTION_FOLLOW);
}

TEST(failover_possible) {
        HaFacts f;

        base(&f);
        ASSERT_TRUE(ha_fsm_is_failover_possible(&f, NULL, true, 0));
        ASSERT_TRUE(ha_fsm_is_failover_possible(&f, "node3", true, 0));
        ASSERT_FALSE(ha_fsm_is_failover_possible(&f, "node1", true, 0)); /* never ourselves */
        ASSERT_FALSE(ha_fsm_is_failover_possible(&f, "node9", true, 0));
        /* cluster_lsn: the shutdown checkpoint must have been received. */
        ASSERT_FALSE(ha_fsm_is_failover_possible(&f, NULL, true, WAL));
        ASSERT_TRUE(ha_fsm_is_failover_possible(&f, NULL, true, WAL - 100));
        f.dcs.members[1].api.watchdog_failed = true;
        f.dcs.members[2].api.nofailover = true;
        ASSERT_FALSE(ha_fsm_is_failover_possible(&f, NULL, true, 0));

        base(&f);
        sync_key(&f, "node1", "node3");
        ASSERT_TRUE(ha_fsm_is_failover_possible(&f, NULL, true, 0));
        ASSERT_FALSE(ha_fsm_is_failover_possible(&f, "node2", true, 0));
        ASSERT_TRUE(ha_fsm_is_failover_possible(&f, "node2", false, 0));
        ASSERT_TRUE(ha_fsm_sync_matches(&f, "node1"));
        ASSERT_TRUE(ha_fsm_sync_matches(&f, "node3"));
        ASSERT_FALSE(ha_fsm_sync_matches(&f, "node2"));
}

TEST(switchover_verdicts) {
        HaFacts f;
        char reason[HA_MESSAGE_MAX];

        base(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_NONE);
        s_switchover_not_due(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_NOT_DUE);
        s_switchover_stale(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_STALE);
        /* 1.5 × loop_wait after the time is still due. */
        s_switchover_not_due(&f);
        f.dcs.failover.scheduled_at = NOW - 15 * USEC_PER_SEC;
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_DEMOTE);
        s_switchover_wrong_leader(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_REJECT);
        ASSERT_STREQ(reason, "manual failover: leader name does not match: node3 != node1");
        base(&f);
        switchover(&f, NULL, "node1");
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_REJECT);
        ASSERT_STREQ(reason, "manual failover: I am already the leader, no need to failover");
        s_switchover_candidate_unhealthy(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_REJECT);
        ASSERT_STREQ(reason, "manual failover: no healthy members found, failover is not possible");
        s_switchover_paused_no_candidate(&f);
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_REJECT);
        ASSERT_STREQ(reason, "Failover is possible only to a specific candidate in a paused state");
        /* Paused: a scheduled switchover is never executed. */
        s_switchover_due(&f);
        f.dcs.config.pause = true;
        ASSERT_EQ(ha_fsm_switchover_verdict(&f, reason, sizeof reason), HA_SWITCHOVER_NONE);
}

TEST(manual_failover_no_leader) {
        HaFacts f;
        char reason[HA_MESSAGE_MAX];

        s_failover_no_leader_to_me(&f);
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 1);
        s_failover_no_leader_to_other(&f);
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 0);
        ASSERT_STREQ(reason, "manual failover: to node3, i am node2");
        s_failover_no_leader_unhealthy_candidate(&f);
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 1);
        s_failover_paused_to_other(&f);
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 0);
        s_switchover_old_leader_races_alone(&f);
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 1);
        f.dcs.members[1].api.fetch = HA_FETCH_OK; /* node2 is healthy after all: the old leader yields */
        ASSERT_EQ(ha_fsm_manual_failover_no_leader(&f, reason, sizeof reason), 0);
}

TEST(housekeeping) {
        HaFacts f;
        HaDecision d;

        /* Member key written whenever etcd answers; never when it does not. */
        base(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_TRUE(d.write_member_key);
        ASSERT_EQ(d.advertise_role, HA_ROLE_PRIMARY);
        ASSERT_EQ(d.tilt_until, 0);
        ASSERT_FALSE(d.flags & HA_FLAG_WRITE_INITIALIZE);
        s_dcs_down_replica(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_FALSE(d.write_member_key);

        /* The lock holder repairs a missing initialize key; an unlocked primary takes an empty cluster. */
        base(&f);
        f.dcs.initialize = HA_INITIALIZE_ABSENT;
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_TRUE(d.flags & HA_FLAG_WRITE_INITIALIZE);
        s_unlocked_primary_takes_lock(&f);
        f.dcs.initialize = HA_INITIALIZE_ABSENT;
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_EQ(d.action, HA_ACTION_ACQUIRE_LOCK);
        ASSERT_TRUE(d.flags & HA_FLAG_WRITE_INITIALIZE);

        /* TILT starts for one loop_wait from the tick that noticed the gap, then ends. */
        s_tilt_leader(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_U64_EQ(d.tilt_until, NOW + 10 * USEC_PER_SEC);
        ASSERT_U64_EQ(d.wake_at, NOW + 10 * USEC_PER_SEC);
        base(&f);
        f.tilt_until = NOW + 10 * USEC_PER_SEC;
        f.lease.deadline = NOW + 50 * USEC_PER_SEC;
        f.now = NOW + 5 * USEC_PER_SEC;
        f.last_tick = NOW;
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_EQ(d.action, HA_ACTION_WAIT);
        f.now = NOW + 10 * USEC_PER_SEC;
        f.last_tick = NOW + 5 * USEC_PER_SEC;
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_EQ(d.action, HA_ACTION_RENEW_LOCK);
        ASSERT_EQ(d.tilt_until, 0);

        /* Scheduled switchover and restart wake the loop at their time. */
        s_switchover_not_due(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_U64_EQ(d.wake_at, NOW + 3600 * USEC_PER_SEC);
        s_restart_not_due(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_U64_EQ(d.wake_at, NOW + 60 * USEC_PER_SEC);
        s_bootstrap_race(&f);
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_U64_EQ(d.wake_at, NOW);
        ASSERT_STREQ(d.message_failed, "failed to acquire initialize lock");

        /* The watchdog is never armed when its mode is off or while paused. */
        s_unlocked_healthiest(&f);
        f.node.watchdog_mode = HA_WATCHDOG_OFF;
        ASSERT_OK(ha_fsm_decide(&f, &d));
        ASSERT_FALSE(d.flags & HA_FLAG_ARM_WATCHDOG);
        ASSERT_STREQ(d.message_failed, "following new leader after trying and failing to obtain lock");
}

TEST(invalid_facts) {
        HaFacts f;
        HaDecision d = {.action = HA_ACTION_NOOP};

        base(&f);
        f.node.name = NULL;
        ASSERT_ERROR(ha_fsm_decide(&f, &d), EINVAL);
        base(&f);
        f.dcs.n_members = HA_MEMBERS_MAX + 1;
        ASSERT_ERROR(ha_fsm_decide(&f, &d), EINVAL);
        base(&f);
        f.role = _HA_ROLE_MAX;
        ASSERT_ERROR(ha_fsm_decide(&f, &d), EINVAL);
        ASSERT_ERROR(ha_fsm_decide(NULL, &d), EINVAL);
        ASSERT_EQ(d.action, HA_ACTION_NOOP); /* untouched on error */
}

TEST(fence_never_promotes) {
        HaFacts f;
        HaDecision d;

        base_replica(&f);
        ha_fsm_fence_decision(&f, &d);
        ASSERT_EQ(d.action, HA_ACTION_FENCE);
        ASSERT_EQ(d.next_role, HA_ROLE_REPLICA);
        ASSERT_EQ(d.row, (size_t)-1);
        ASSERT_TRUE(startswith(d.message, "BUG: no HA rule matched in role replica"));

        /* A primary whose lock cannot be proven is demoted even by the fence. */
        base(&f);
        f.lease.deadline = 0;
        ha_fsm_fence_decision(&f, &d);
        ASSERT_EQ(d.action, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK);
        base(&f);
        ha_fsm_fence_decision(&f, &d);
        ASSERT_EQ(d.action, HA_ACTION_FENCE);
        ASSERT_FALSE(d.flags & (HA_FLAG_WRITE_INITIALIZE | HA_FLAG_CLAIM_SYNC | HA_FLAG_RELEASE_LOCK));
}

/* ---- multi-tick flows: apply each decision's next role, change the facts as the jobs would ---------- */

static HaDecision step(HaFacts *f, HaAction expected) {
        HaDecision d;

        ASSERT_OK(ha_fsm_decide(f, &d));
        if (d.action != expected)
                TEST_FAIL(
                        "role %s: got %s (%s), expected %s",
                        ha_role_to_string(f->role),
                        ha_action_to_string(d.action),
                        d.message,
                        ha_action_to_string(expected));
        f->role = d.next_role;
        f->last_tick = f->now;
        f->now += USEC_PER_SEC;
        f->tilt_until = d.tilt_until;
        return d;
}

TEST(flow_bootstrap_new_cluster) {
        HaFacts f;
        HaDecision d;

        s_bootstrap_race(&f);
        d = step(&f, HA_ACTION_BOOTSTRAP_RACE);
        ASSERT_U64_EQ(d.wake_at, f.now - USEC_PER_SEC);
        f.dcs.initialize = HA_INITIALIZE_EMPTY; /* the create-only txn succeeded */
        f.dcs.bootstrap_won = true;
        step(&f, HA_ACTION_BOOTSTRAP_INITDB);
        f.job.running = HA_JOB_BOOTSTRAP;
        step(&f, HA_ACTION_WAIT);
        f.job.running = HA_JOB_NONE;
        f.job.last = HA_JOB_BOOTSTRAP;
        f.pg = (typeof(f.pg)){
                .state = HA_PG_RUNNING,
                .is_primary = true,
                .timeline = 1,
                .has_sysid = true,
                .sysid = SYSID,
                .data_dir = HA_DATA_DIR_VALID};
        step(&f, HA_ACTION_BOOTSTRAP_FINISH);
        ASSERT_EQ(f.role, HA_ROLE_PRIMARY);
        f.job.last = HA_JOB_NONE;
        f.dcs.initialize = HA_INITIALIZE_SYSID;
        f.dcs.initialize_sysid = SYSID;
        f.dcs.leader.name = "node4";
        f.lease.deadline = f.now + 20 * USEC_PER_SEC;
        d = step(&f, HA_ACTION_RENEW_LOCK);
        ASSERT_STREQ(d.message, "no action. I am (node4), the leader with the lock");
}

TEST(flow_switchover_and_rejoin) {
        HaFacts f;
        HaDecision d;

        /* The leader hands over to node2 ... */
        s_switchover_to_candidate(&f);
        step(&f, HA_ACTION_DEMOTE_GRACEFUL);
        ASSERT_EQ(f.role, HA_ROLE_DEMOTED);
        /* ... the demote job stopped postgres and released the key; node2 took it and promoted. */
        f.pg.state = HA_PG_STOPPED;
        f.pg.is_primary = false;
        f.lease.deadline = 0;
        f.dcs.leader.name = "node2";
        f.dcs.failover = (typeof(f.dcs.failover)){};
        f.dcs.history_timeline = 3;
        f.pg.divergence = HA_DIVERGENCE_UNKNOWN;
        step(&f, HA_ACTION_WAIT); /* the timeline check has not run yet */
        f.pg.divergence = HA_DIVERGENCE_NONE;
        d = step(&f, HA_ACTION_START_POSTGRES);
        ASSERT_STREQ(d.target, "node2");
        ASSERT_EQ(f.role, HA_ROLE_REPLICA);
        f.pg.state = HA_PG_RUNNING;
        d = step(&f, HA_ACTION_FOLLOW);
        ASSERT_STREQ(d.message, "no action. I am (node1), a secondary, and following a leader (node2)");
}

TEST(flow_failover_after_leader_death) {
        HaFacts f;

        /* node2 follows; node1 dies and its key expires; node2 is the healthiest and takes over. */
        s_replica_follows(&f);
        step(&f, HA_ACTION_FOLLOW);
        f.dcs.leader.name = NULL;
        f.dcs.members[0].api.fetch = HA_FETCH_FAILED;
        step(&f, HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE);
        ASSERT_EQ(f.role, HA_ROLE_PRIMARY);
        /* The lock is ours, the promote job runs; then postgres is a primary. */
        f.dcs.leader.name = "node2";
        f.lease.deadline = f.now + 20 * USEC_PER_SEC;
        f.job.running = HA_JOB_PROMOTE;
        step(&f, HA_ACTION_RENEW_LOCK);
        f.job.running = HA_JOB_NONE;
        f.pg.is_primary = true;
        f.pg.wal_write = WAL;
        step(&f, HA_ACTION_RENEW_LOCK);
        /* Then etcd becomes unreachable: demote offline before the lease runs out... */
        f.dcs.reachable = false;
        step(&f, HA_ACTION_DEMOTE_OFFLINE);
        /* ... and if that demotion has not happened by the deadline, the lease row forces it. */
        f.now = f.lease.deadline;
        step(&f, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK);
}

/* ---- randomized sweep of the safety invariants ---------------------------------------------------------
 */

static uint64_t rng_state = 0x9e3779b97f4a7c15;

static uint64_t rnd(void) {
        /* xorshift64*: deterministic, so a failure reproduces. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static bool coin(void) {
        return rnd() & 1;
}

static const char *pick_name(void) {
        static const char *const names[] = {NULL, "node1", "node2", "node3"};
        return names[rnd() % ELEMENTSOF(names)];
}

static void random_facts(HaFacts *f) {
        base(f);
        if (coin())
                base_replica(f);
        f->role = rnd() % _HA_ROLE_MAX;
        f->pg.state = rnd() % _HA_PG_STATE_MAX;
        f->pg.is_primary = coin();
        f->pg.data_dir = rnd() % _HA_DATA_DIR_MAX;
        f->pg.divergence = rnd() % _HA_DIVERGENCE_MAX;
        f->pg.unclean_shutdown = coin();
        f->pg.state_since = NOW - (rnd() % 600) * USEC_PER_SEC;
        f->pg.sysid = coin() ? SYSID : SYSID + 1;
        f->lease.deadline = coin() ? 0 : NOW - 30 * USEC_PER_SEC + (rnd() % 60) * USEC_PER_SEC;
        f->lease.renew_failed = rnd() % 4 == 0;
        f->last_tick = coin() ? 0 : NOW - (rnd() % 60) * USEC_PER_SEC;
        f->tilt_until = rnd() % 4 == 0 ? NOW + USEC_PER_SEC : 0;
        f->dcs.reachable = rnd() % 4 != 0;
        f->dcs.initialize = rnd() % _HA_INITIALIZE_MAX;
        f->dcs.bootstrap_won = coin();
        f->dcs.leader.name = pick_name();
        f->dcs.leader.checkpoint_pending = coin();
        f->dcs.config.pause = rnd() % 3 == 0;
        f->dcs.config.synchronous_mode = coin();
        f->dcs.config.failsafe_mode = coin();
        f->dcs.config.use_pg_rewind = coin();
        f->dcs.config.check_timeline = coin();
        f->dcs.config.primary_start_timeout = (rnd() % 2) * 300 * USEC_PER_SEC;
        f->dcs.config.remove_data_directory_on_diverged_timelines = coin();
        f->dcs.failsafe.present = coin();
        f->dcs.failsafe.contains_us = coin();
        f->dcs.failsafe.members_accepted = coin();
        /* Arguments drawn one statement at a time: the evaluation order of call arguments is unspecified,
         * and gcc and clang must see the same facts. */
        if (coin()) {
                const char *leader = pick_name(), *standby = pick_name();
                sync_key(f, leader, standby);
        }
        if (rnd() % 4 == 0) {
                const char *leader = pick_name(), *candidate = pick_name();
                switchover(f, leader, candidate);
                f->dcs.failover.has_scheduled_at = coin();
                f->dcs.failover.scheduled_at = NOW - 20 * USEC_PER_SEC + (rnd() % 40) * USEC_PER_SEC;
        }
        for (size_t i = 0; i < f->dcs.n_members; i++) {
                f->dcs.members[i].api.fetch = rnd() % _HA_FETCH_MAX;
                f->dcs.members[i].api.in_recovery = rnd() % 4 != 0;
                f->dcs.members[i].api.wal_position = WAL - 2000000 + rnd() % 4000000;
                f->dcs.members[i].tags.nofailover = rnd() % 4 == 0;
                f->dcs.members[i].tags.clonefrom = coin();
        }
        f->node.tags.nofailover = rnd() % 4 == 0;
        f->node.tags.replicatefrom = rnd() % 4 == 0 ? pick_name() : NULL;
        f->node.watchdog_mode = rnd() % _HA_WATCHDOG_MODE_MAX;
        f->node.watchdog_usable = coin();
        f->job.running = rnd() % 3 == 0 ? rnd() % _HA_JOB_MAX : HA_JOB_NONE;
        f->job.since = NOW - (rnd() % 600) * USEC_PER_SEC;
        f->job.last = rnd() % 3 == 0 ? rnd() % _HA_JOB_MAX : HA_JOB_NONE;
        f->job.last_failed = coin();
        f->shutdown_requested = rnd() % 8 == 0;
        f->reinit_requested = rnd() % 8 == 0;
        f->restart.requested = rnd() % 8 == 0;
        f->restart.scheduled = rnd() % 8 == 0;
        f->restart.scheduled_at = NOW - 20 * USEC_PER_SEC + (rnd() % 40) * USEC_PER_SEC;
        f->restart.filters_match = coin();
}

static bool promotes(HaAction a) {
        return a == HA_ACTION_PROMOTE || a == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE;
}

TEST(random_facts_keep_invariants) {
        const char *seed = getenv("PGHA_TEST_SEED"); /* explore other sequences: PGHA_TEST_SEED=n */

        if (seed && strtoull(seed, NULL, 10) != 0)
                rng_state = strtoull(seed, NULL, 10);
        for (unsigned i = 0; i < 200000; i++) {
                HaFacts f;
                HaDecision d;
                bool writable, lease_gone;

                random_facts(&f);
                /* fail closed: a running postmaster whose role is unknown counts as writable */
                writable = (f.pg.state == HA_PG_RUNNING && f.pg.is_primary) || f.pg.state == HA_PG_UNKNOWN;
                lease_gone = f.lease.deadline != 0 && f.now >= f.lease.deadline;

                /* The table is total: no facts fall through to the fence. */
                if (ha_fsm_decide(&f, &d) < 0)
                        TEST_FAIL("iteration %u: no row matched (role %s)", i, ha_role_to_string(f.role));

                /* 1. A writable primary past its lease deadline demotes, first row, always. */
                if (writable && lease_gone && f.role != HA_ROLE_UNINITIALIZED) {
                        ASSERT_EQ(d.row, 0);
                        ASSERT_EQ(d.action, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK);
                }
                /* 2. Promotion or taking the lock only with etcd reachable, not paused unless we are the
                 *    named candidate, not in TILT, never while shutting down, never with nofailover, and
                 *    never when a required watchdog cannot be armed (unless already holding the lock). */
                if (promotes(d.action) || d.action == HA_ACTION_ACQUIRE_LOCK) {
                        ASSERT_TRUE(f.dcs.reachable);
                        ASSERT_FALSE(f.shutdown_requested);
                        ASSERT_FALSE(f.tilt_until > f.now);
                        if (d.action != HA_ACTION_PROMOTE) {
                                ASSERT_TRUE(f.dcs.leader.name == NULL);
                                if (!writable) {
                                        ASSERT_FALSE(f.node.tags.nofailover);
                                        ASSERT_FALSE(
                                                f.node.watchdog_mode == HA_WATCHDOG_REQUIRED &&
                                                !f.node.watchdog_usable && !f.dcs.config.pause);
                                }
                                if (f.dcs.config.pause && !writable)
                                        ASSERT_STREQ(f.dcs.failover.member, f.node.name);
                        } else
                                ASSERT_STREQ(f.dcs.leader.name, f.node.name);
                }
                /* 3. In synchronous mode with a non-empty sync key, only sync members race. */
                if (d.action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE && f.dcs.config.synchronous_mode &&
                    f.dcs.sync.present && (f.dcs.sync.leader || f.dcs.sync.n_standbys > 0) &&
                    !f.dcs.config.pause && !f.dcs.failover.present)
                        ASSERT_TRUE(ha_fsm_sync_matches(&f, f.node.name));
                /* 4. Paused: postgres is neither started, stopped nor demoted automatically, except by the
                 *    safety row, a broken data directory, or a switchover to a named candidate. */
                if (f.dcs.config.pause && d.action == HA_ACTION_DEMOTE_GRACEFUL)
                        ASSERT_FALSE(isempty(f.dcs.failover.member));
                if (f.dcs.config.pause && d.row != 0 && f.pg.data_dir == HA_DATA_DIR_VALID)
                        ASSERT_FALSE(
                                d.action == HA_ACTION_DEMOTE_OFFLINE ||
                                d.action == HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK ||
                                d.action == HA_ACTION_START_POSTGRES || d.action == HA_ACTION_SHUTDOWN_STOP);
                /* 5. A diverged node never starts or follows without rewind/reinit first. */
                if (f.pg.divergence == HA_DIVERGENCE_DIVERGED && f.dcs.reachable && f.dcs.leader.name &&
                    !streq(f.dcs.leader.name, f.node.name))
                        ASSERT_FALSE(d.action == HA_ACTION_START_POSTGRES || d.action == HA_ACTION_FOLLOW);
                /* 6. A postmaster whose role cannot be read is never promoted, followed or rewound. */
                if (f.pg.state == HA_PG_UNKNOWN && !f.pg.is_primary)
                        ASSERT_FALSE(
                                promotes(d.action) || d.action == HA_ACTION_FOLLOW ||
                                d.action == HA_ACTION_REWIND);
                ASSERT_TRUE(memchr(d.message, '\0', sizeof d.message) != NULL);
        }
}

DEFINE_TEST_MAIN
