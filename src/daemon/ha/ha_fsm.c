/* SPDX-License-Identifier: MIT */
/*
 * The HA decision table (style.md §8, patroni-compat.md §2): Patroni 3.0.2's `_run_cycle` decision list
 * rewritten as rows { current roles, predicate over HaFacts, next role, action, flags, comment, message }.
 * ha_fsm_decide() walks the rows in order and the first row whose role set contains the current role and
 * whose predicate holds decides the tick. Invariants, checked by tests/unit/test_ha_fsm.c:
 *   - the first rows demote a writable primary whose local lease deadline has passed, before any other
 *     consideration (TILT, shutdown, DCS errors, pause);
 *   - rows whose role set is "all roles" (wildcards) come after every specific row; no row is shadowed
 *     by an earlier row with the same (or an always-true) predicate over an overlapping role set;
 *   - every row has a comment constant and a message; every role is reachable from `uninitialized`;
 *   - no matching row yields HA_ACTION_FENCE (never promote, leader key untouched) and -ENOENT.
 * The function is pure: facts carry `now`; nothing here reads a clock, does I/O or allocates.
 *
 * Roles and the edges the table creates (self-loops omitted; docs/fsm.md lists every row):
 *
 *                               bootstrap-finish (won the initialize race, initdb done)
 *        +---------------------------------------------------------------------------------+
 *        |                          clone-from-leader                                      v
 *   +---------------+ ---------------------------------------> +---------+  promote,   +--------+
 *   | uninitialized |                                          | replica | ---------> | master |
 *   +---------------+ <--------------------------------------- +---------+  acquire   +--------+
 *      |       ^        data dir empty / not accessible          |     ^     <------    |    ^
 *      |       |        (from replica, master and demoted)       |     |     follow,    |    |
 *      |       |                           primary mid-promotion |     |     start      |    |
 *      |       |                                        demote-* v     | start, follow, |    |
 *      |       +------------------------------------------ +---------+ rewind, reinit |    |
 *      +---- data dir already holds a cluster -----------> | demoted | <--------------+    |
 *                                                           +---------+  demote-*: lease    |
 *                                                                |       expired, lock lost,|
 *                                                                |       switchover, DCS    |
 *                                                                |       down, shutdown     |
 *                                                                +-- renew/promote/acquire -+
 *                                                                    (the lock is ours)
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pgha/ha_fsm.h"

#define R_U   (1u << HA_ROLE_UNINITIALIZED)
#define R_R   (1u << HA_ROLE_REPLICA)
#define R_P   (1u << HA_ROLE_PRIMARY)
#define R_D   (1u << HA_ROLE_DEMOTED)
#define R_PRD (R_P | R_R | R_D)
#define R_RDU (R_R | R_D | R_U)
#define KEEP  _HA_ROLE_INVALID

/* ---- string tables ---------------------------------------------------------------------------------- */

static const char *const ha_role_table[_HA_ROLE_MAX] = {
        [HA_ROLE_UNINITIALIZED] = "uninitialized",
        [HA_ROLE_REPLICA] = "replica",
        [HA_ROLE_PRIMARY] = "master",
        [HA_ROLE_DEMOTED] = "demoted",
};

static const char *const ha_action_table[_HA_ACTION_MAX] = {
        [HA_ACTION_NOOP] = "noop",
        [HA_ACTION_WAIT] = "wait",
        [HA_ACTION_FENCE] = "fence",
        [HA_ACTION_EXIT] = "exit",
        [HA_ACTION_BOOTSTRAP_RACE] = "bootstrap-race",
        [HA_ACTION_BOOTSTRAP_INITDB] = "bootstrap-initdb",
        [HA_ACTION_BOOTSTRAP_FINISH] = "bootstrap-finish",
        [HA_ACTION_BOOTSTRAP_CANCEL] = "bootstrap-cancel",
        [HA_ACTION_WAIT_FOR_BOOTSTRAP] = "wait-for-bootstrap",
        [HA_ACTION_CLONE_FROM_LEADER] = "clone-from-leader",
        [HA_ACTION_ACQUIRE_LOCK] = "acquire-lock",
        [HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE] = "acquire-lock-and-promote",
        [HA_ACTION_PROMOTE] = "promote",
        [HA_ACTION_RENEW_LOCK] = "renew-lock",
        [HA_ACTION_STAY_PRIMARY] = "stay-primary",
        [HA_ACTION_DEMOTE_GRACEFUL] = "demote-graceful",
        [HA_ACTION_DEMOTE_IMMEDIATE] = "demote-immediate",
        [HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK] = "demote-immediate-nolock",
        [HA_ACTION_DEMOTE_OFFLINE] = "demote-offline",
        [HA_ACTION_RELEASE_LOCK] = "release-lock",
        [HA_ACTION_FOLLOW] = "follow",
        [HA_ACTION_START_POSTGRES] = "start-postgres",
        [HA_ACTION_STOP_POSTGRES] = "stop-postgres",
        [HA_ACTION_RECOVER_CRASHED] = "recover-crashed",
        [HA_ACTION_REWIND] = "rewind",
        [HA_ACTION_REINIT] = "reinit",
        [HA_ACTION_RESTART] = "restart",
        [HA_ACTION_CANCEL_JOB] = "cancel-job",
        [HA_ACTION_SHUTDOWN_STOP] = "shutdown-stop",
        [HA_ACTION_SHUTDOWN_DETACH] = "shutdown-detach",
};

static const char *const ha_pg_state_table[_HA_PG_STATE_MAX] = {
        [HA_PG_STOPPED] = "stopped",
        [HA_PG_STARTING] = "starting",
        [HA_PG_RUNNING] = "running",
        [HA_PG_CRASHED] = "crashed",
        [HA_PG_UNKNOWN] = "unknown",
};

/* Job names double as Patroni's "scheduled action" wording in messages ("<job> in progress"). */
static const char *const ha_job_table[_HA_JOB_MAX] = {
        [HA_JOB_NONE] = "none",
        [HA_JOB_BOOTSTRAP] = "bootstrap",
        [HA_JOB_CLONE] = "clone",
        [HA_JOB_PROMOTE] = "promote",
        [HA_JOB_DEMOTE] = "demote",
        [HA_JOB_START] = "start",
        [HA_JOB_RESTART] = "restart",
        [HA_JOB_CRASH_RECOVERY] = "crash recovery",
        [HA_JOB_REWIND] = "rewind",
        [HA_JOB_REINIT] = "reinitialize",
        [HA_JOB_STOP] = "stop",
        [HA_JOB_RELOAD] = "reload",
};

static const char *const ha_switchover_table[_HA_SWITCHOVER_MAX] = {
        [HA_SWITCHOVER_NONE] = "none",
        [HA_SWITCHOVER_NOT_DUE] = "not-due",
        [HA_SWITCHOVER_STALE] = "stale",
        [HA_SWITCHOVER_DEMOTE] = "demote",
        [HA_SWITCHOVER_REJECT] = "reject",
};

static const char *const ha_flag_table[] = {
        "clear-failover",
        "process-sync",
        "claim-sync",
        "write-status",
        "update-history",
        "write-initialize",
        "arm-watchdog",
        "disable-watchdog",
        "extend-lease",
        "cancel-job",
        "clear-restart",
        "clear-reinit",
        "release-lock",
};

static int table_from_string(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int)i;
        return -EINVAL;
}

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(ha_role, HaRole);

HaRole ha_role_from_string(const char *s) {
        /* Patroni 4.x writes "primary", and "promoted" is the short step after a promotion. */
        if (s && (streq(s, "primary") || streq(s, "promoted")))
                return HA_ROLE_PRIMARY;
        return table_from_string(ha_role_table, ELEMENTSOF(ha_role_table), s);
}

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(ha_action, HaAction);

DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(ha_action, HaAction);

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(ha_pg_state, HaPgState);

HaPgState ha_pg_state_from_string(const char *s) {
        /* Member-key states (§1.1.1) that are not one of ours. */
        if (s && (streq(s, "restarting") || streq(s, "stopping")))
                return HA_PG_STARTING;
        if (s && (streq(s, "start failed") || startswith(s, "restart failed")))
                return HA_PG_CRASHED;
        return table_from_string(ha_pg_state_table, ELEMENTSOF(ha_pg_state_table), s);
}

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(ha_job, HaJob);

DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(ha_job, HaJob);

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(ha_switchover, HaSwitchover);

const char *ha_flag_to_string(unsigned single_flag) {
        for (size_t i = 0; i < ELEMENTSOF(ha_flag_table); i++)
                if (single_flag == 1u << i)
                        return ha_flag_table[i];
        return NULL;
}

/* ---- basic facts -------------------------------------------------------------------------------------- */

static bool is_me(const HaFacts *f, const char *name) {
        return name && f->node.name && streq(name, f->node.name);
}

static bool paused(const HaFacts *f) {
        return f->dcs.config.pause;
}

static bool pg_alive(const HaFacts *f) {
        return f->pg.state == HA_PG_RUNNING || f->pg.state == HA_PG_UNKNOWN;
}

static bool pg_primary(const HaFacts *f) {
        return pg_alive(f) && f->pg.is_primary;
}

/* A running postmaster whose status query failed (too many connections, a refused login, an overloaded
 * server): whether it is in recovery is not known, so it may be a writable primary. */
static bool pg_role_unknown(const HaFacts *f) {
        return f->pg.state == HA_PG_UNKNOWN && !f->pg.is_primary;
}

/* Fail closed: every safety rule (demote a primary without a provable lock, keep the lock while possibly
 * primary) treats a running postmaster of unknown role as a primary. */
static bool pg_maybe_primary(const HaFacts *f) {
        return pg_primary(f) || pg_role_unknown(f);
}

/* Running and known to be in recovery: only this is ever followed, detached, rewound or promoted. */
static bool pg_replica(const HaFacts *f) {
        return pg_alive(f) && !f->pg.is_primary && !pg_role_unknown(f);
}

static bool pg_not_running(const HaFacts *f) {
        return f->pg.state == HA_PG_STOPPED || f->pg.state == HA_PG_CRASHED;
}

static bool dcs_ok(const HaFacts *f) {
        return f->dcs.reachable;
}

static bool leader_is_us(const HaFacts *f) {
        return dcs_ok(f) && is_me(f, f->dcs.leader.name);
}

static bool leader_other(const HaFacts *f) {
        return dcs_ok(f) && f->dcs.leader.name && !is_me(f, f->dcs.leader.name);
}

static bool unlocked(const HaFacts *f) {
        return dcs_ok(f) && !f->dcs.leader.name;
}

/* We are the lock owner in the DCS view and the last refresh of the key did not fail. */
static bool owns_lock(const HaFacts *f) {
        return leader_is_us(f) && !f->lease.renew_failed;
}

static bool nofailover(const HaFacts *f) {
        return f->node.tags.nofailover;
}

static bool watchdog_blocks(const HaFacts *f) {
        return f->node.watchdog_mode == HA_WATCHDOG_REQUIRED && !f->node.watchdog_usable;
}

static bool job_running(const HaFacts *f) {
        return f->job.running != HA_JOB_NONE;
}

static bool start_job(HaJob j) {
        return j == HA_JOB_START || j == HA_JOB_RESTART || j == HA_JOB_CRASH_RECOVERY;
}

static bool rewind_possible(const HaFacts *f) {
        return f->dcs.config.use_pg_rewind && f->pg.rewind_usable;
}

static bool diverged(const HaFacts *f) {
        return f->pg.divergence == HA_DIVERGENCE_DIVERGED;
}

static bool sysid_mismatch(const HaFacts *f) {
        return dcs_ok(f) && f->pg.data_dir == HA_DATA_DIR_VALID && f->pg.has_sysid &&
                f->dcs.initialize == HA_INITIALIZE_SYSID && f->dcs.initialize_sysid != f->pg.sysid;
}

static uint64_t my_wal_position(const HaFacts *f) {
        if (pg_primary(f))
                return f->pg.wal_write;
        return MAX(f->pg.wal_received, f->pg.wal_replayed);
}

usec_t ha_fsm_tilt_threshold(const HaConfig *config) {
        /* A tick is due every loop_wait; one gather may take up to retry_timeout. Twice the period plus
         * one retry budget is far beyond any healthy gap. */
        return 2 * config->loop_wait + config->retry_timeout;
}

static bool tilt_gap(const HaFacts *f) {
        return f->last_tick != 0 && f->now > f->last_tick &&
                f->now - f->last_tick > ha_fsm_tilt_threshold(&f->dcs.config);
}

static bool in_tilt(const HaFacts *f) {
        return tilt_gap(f) || (f->tilt_until != 0 && f->now < f->tilt_until);
}

bool ha_fsm_lease_expired(const HaFacts *f) {
        return pg_maybe_primary(f) && f->lease.deadline != 0 && f->now >= f->lease.deadline;
}

/* Whether name is the sync key's leader: the former primary, which has every acknowledged commit. */
static bool is_sync_leader(const HaFacts *f, const char *name) {
        return name && f->dcs.sync.leader && streq(f->dcs.sync.leader, name);
}

bool ha_fsm_sync_matches(const HaFacts *f, const char *name) {
        if (!name || !f->dcs.sync.present)
                return false;
        if (is_sync_leader(f, name))
                return true;
        for (size_t i = 0; i < f->dcs.sync.n_standbys && i < HA_SYNC_MAX; i++)
                if (f->dcs.sync.standbys[i] && streq(f->dcs.sync.standbys[i], name))
                        return true;
        return false;
}

/* ha_fsm_restart_mismatch - see the header. */
const char *ha_fsm_restart_mismatch(
        const char *want_role,
        unsigned want_version,
        bool want_pending,
        const char *role,
        unsigned server_version,
        bool pending_restart) {
        const char *reason = NULL;

        /* Patroni checks all three and reports the last that failed. 3.0.2 calls its primary role
         * "master" while the API also accepts "primary": both name the same role here. */
        if (want_role) {
                bool want_primary = streq(want_role, "master") || streq(want_role, "primary");
                bool is_primary = streq_ptr(role, "master") || streq_ptr(role, "primary");
                if (want_primary ? !is_primary : !streq_ptr(role, want_role))
                        reason = "host role mismatch";
        }
        if (want_version != 0 && want_version <= server_version)
                reason = "postgres version mismatch";
        if (want_pending && !pending_restart)
                reason = "pending restart flag is not set";
        return reason;
}

static bool sync_nonempty(const HaFacts *f) {
        return f->dcs.sync.present && (f->dcs.sync.leader || f->dcs.sync.n_standbys > 0);
}

static const HaMember *find_member(const HaFacts *f, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < f->dcs.n_members; i++)
                if (f->dcs.members[i].name && streq(f->dcs.members[i].name, name))
                        return &f->dcs.members[i];
        return NULL;
}

static void set_reason(char *reason, size_t size, const char *fmt, ...) _printf_(3, 4);
static void set_reason(char *reason, size_t size, const char *fmt, ...) {
        va_list ap;

        if (!reason || size == 0)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(reason, size, fmt, ap);
        va_end(ap);
}

/* The reply of GET /patroni makes the member a possible candidate (Patroni's failover_limitation()). */
static const char *failover_limitation(const HaMember *m) {
        if (m->api.fetch != HA_FETCH_OK)
                return "not reachable";
        if (m->api.nofailover)
                return "not allowed to promote";
        if (m->api.watchdog_failed)
                return "not watchdog capable";
        return NULL;
}

bool ha_fsm_is_failover_possible(const HaFacts *f, const char *only, bool check_sync, uint64_t cluster_lsn) {
        const HaConfig *c = &f->dcs.config;

        for (size_t i = 0; i < f->dcs.n_members; i++) {
                const HaMember *m = &f->dcs.members[i];

                if (!m->name || is_me(f, m->name) || m->tags.nofailover || !m->has_api_url)
                        continue;
                if (only && !streq(only, m->name))
                        continue;
                if (check_sync && c->synchronous_mode && !ha_fsm_sync_matches(f, m->name))
                        continue;
                if (failover_limitation(m) || !m->api.has_wal_position)
                        continue;
                if (cluster_lsn != 0 ? m->api.wal_position < cluster_lsn
                                     : f->dcs.leader.optime > m->api.wal_position &&
                                    f->dcs.leader.optime - m->api.wal_position > c->maximum_lag_on_failover)
                        continue;
                if (c->check_timeline && m->api.timeline < f->dcs.history_timeline)
                        continue;
                return true;
        }
        return false;
}

/* Patroni's _is_healthiest_node(): compare ourselves with the members that pass `filter_sync` and are not
 * named `exclude`. Unreachable members (and nofailover / watchdog_failed ones) do not count. */
static bool is_healthiest_among(
        const HaFacts *f, bool filter_sync, const char *exclude, bool check_lag, char *reason, size_t size) {
        const HaConfig *c = &f->dcs.config;
        uint64_t mine = my_wal_position(f);

        if (check_lag && f->dcs.leader.optime > mine &&
            f->dcs.leader.optime - mine > c->maximum_lag_on_failover) {
                set_reason(reason, size, "My wal position exceeds maximum replication lag");
                return false;
        }
        if (c->check_timeline && f->pg.timeline < f->dcs.history_timeline) {
                set_reason(
                        reason,
                        size,
                        "My timeline %" PRIu32 " is behind last known cluster timeline %" PRIu32,
                        f->pg.timeline,
                        f->dcs.history_timeline);
                return false;
        }
        for (size_t i = 0; i < f->dcs.n_members; i++) {
                const HaMember *m = &f->dcs.members[i];

                if (!m->name || is_me(f, m->name) || m->tags.nofailover || !m->has_api_url)
                        continue;
                if (exclude && streq(exclude, m->name))
                        continue;
                if (filter_sync && !ha_fsm_sync_matches(f, m->name))
                        continue;
                if (failover_limitation(m))
                        continue;
                if (!m->api.in_recovery) {
                        set_reason(reason, size, "Primary (%s) is still alive", m->name);
                        return false;
                }
                if (mine < m->api.wal_position) {
                        bool former_leader = c->synchronous_mode && f->dcs.sync.leader &&
                                streq(f->dcs.sync.leader, m->name);
                        if (!former_leader) {
                                set_reason(
                                        reason,
                                        size,
                                        "Wal position of %s is ahead of my wal position",
                                        m->name);
                                return false;
                        }
                }
        }
        return true;
}

unsigned ha_fsm_quorum_votes(const HaFacts *f) {
        uint64_t mine = my_wal_position(f);
        unsigned votes = 0;

        for (size_t i = 0; i < f->dcs.sync.n_standbys; i++) {
                const char *name = f->dcs.sync.standbys[i];
                const HaMember *m = find_member(f, name);

                if (!m || is_me(f, name) || is_sync_leader(f, name))
                        continue;
                /* A voter still streaming from the former leader could acknowledge its commits after we
                 * promote; its vote counts only once it can no longer receive (docs/ha.md). */
                if (m->api.fetch != HA_FETCH_OK || !m->api.in_recovery || !m->api.upstream_detached ||
                    !m->api.has_wal_position || m->api.wal_position == 0 || m->api.wal_position > mine)
                        continue;
                votes++;
        }
        return votes;
}

/* We promote only with quorum votes: the key has a quorum and we are not its former leader. */
static bool needs_quorum_votes(const HaFacts *f) {
        return f->dcs.sync.quorum > 0 && !is_sync_leader(f, f->node.name);
}

/* A standby of a quorum key (one with votes to count), other than the key's former leader. */
static bool quorum_voter(const HaFacts *f) {
        return needs_quorum_votes(f) && ha_fsm_sync_matches(f, f->node.name);
}

/* Quorum commit (docs/ha.md): a standby of the key promotes only after seeing `quorum` other standbys of
 * the key, none ahead of it; the former leader (sync.leader) needs no votes. */
static bool quorum_votes_suffice(const HaFacts *f, char *reason, size_t size) {
        unsigned votes;

        if (!needs_quorum_votes(f))
                return true;
        votes = ha_fsm_quorum_votes(f);
        if (votes >= f->dcs.sync.quorum)
                return true;
        set_reason(
                reason,
                size,
                "quorum: got %u of %u votes needed from the other synchronous standbys",
                votes,
                f->dcs.sync.quorum);
        return false;
}

int ha_fsm_manual_failover_no_leader(const HaFacts *f, char *reason, size_t size) {
        const char *candidate = isempty(f->dcs.failover.member) ? NULL : f->dcs.failover.member;
        const char *old_leader = isempty(f->dcs.failover.leader) ? NULL : f->dcs.failover.leader;
        const HaConfig *c = &f->dcs.config;

        set_reason(reason, size, "%s", "");
        if (candidate) {
                const HaMember *m;

                if (is_me(f, candidate))
                        return 1;
                if (paused(f)) {
                        set_reason(
                                reason,
                                size,
                                "manual failover: only the candidate %s may race in pause",
                                candidate);
                        return 0;
                }
                if (c->synchronous_mode && !ha_fsm_sync_matches(f, f->node.name)) {
                        set_reason(reason, size, "manual failover: not in the sync key");
                        return 0;
                }
                m = find_member(f, candidate);
                if (m && !failover_limitation(m)) {
                        set_reason(reason, size, "manual failover: to %s, i am %s", candidate, f->node.name);
                        return 0;
                }
                /* The candidate is unhealthy: treat the request as if it named none. */
        } else if (paused(f)) {
                set_reason(
                        reason, size, "Failover is possible only to a specific candidate in a paused state");
                return 0;
        }

        if (old_leader && is_me(f, old_leader)) {
                /* We were the old primary: race only if no other healthy member exists. */
                for (size_t i = 0; i < f->dcs.n_members; i++) {
                        const char *n = f->dcs.members[i].name;
                        if (!n || streq_ptr(n, candidate) || streq(n, old_leader))
                                continue;
                        if (ha_fsm_is_failover_possible(
                                    f, n, /* check_sync= */ true, /* cluster_lsn= */ 0)) {
                                set_reason(
                                        reason,
                                        size,
                                        "manual failover: a healthier member than the former leader exists");
                                return 0;
                        }
                }
                return 1;
        }
        return is_healthiest_among(
                f, /* filter_sync= */ false, old_leader, /* check_lag= */ false, reason, size);
}

/* Named or not, a candidate of a synchronous cluster must hold every acknowledged commit: be in the sync
 * key and, with a quorum, have its votes (an operator's failover waits for them rather than lose
 * commits), also while paused. */
static bool manual_failover_keeps_commits(const HaFacts *f, char *reason, size_t size) {
        if (!f->dcs.config.synchronous_mode || !sync_nonempty(f))
                return true;
        if (!ha_fsm_sync_matches(f, f->node.name)) {
                set_reason(reason, size, "manual failover: not in the sync key");
                return false;
        }
        return quorum_votes_suffice(f, reason, size);
}

bool ha_fsm_is_healthiest_node(const HaFacts *f, char *reason, size_t size) {
        const HaConfig *c = &f->dcs.config;

        set_reason(reason, size, "%s", "");
        if (paused(f) && !nofailover(f) && f->dcs.failover.present && !f->dcs.failover.has_scheduled_at) {
                int r = ha_fsm_manual_failover_no_leader(f, reason, size);
                if (r > 0)
                        return manual_failover_keeps_commits(f, reason, size);
                if (r == 0)
                        return false;
        }
        if (f->pg.state == HA_PG_STARTING) {
                set_reason(reason, size, "postgres is still starting up");
                return false;
        }
        /* Deliberately before the "already primary" rule (Patroni checks it later and then demotes after
         * taking the lock): a node whose required watchdog cannot be armed never takes the lock. */
        if (!paused(f) && watchdog_blocks(f)) {
                set_reason(reason, size, "Watchdog device is not usable");
                return false;
        }
        if (pg_primary(f)) {
                if (!paused(f) || f->dcs.initialize != HA_INITIALIZE_SYSID ||
                    (f->pg.has_sysid && f->pg.sysid == f->dcs.initialize_sysid))
                        return true;
                set_reason(reason, size, "system ID mismatch while paused");
                return false;
        }
        if (paused(f)) {
                set_reason(reason, size, "paused: not racing for the leader lock");
                return false;
        }
        if (nofailover(f)) {
                set_reason(reason, size, "tagged nofailover");
                return false;
        }
        if (f->dcs.failover.present) {
                if (c->synchronous_mode && !isempty(f->dcs.failover.leader) &&
                    !ha_fsm_sync_matches(f, f->node.name)) {
                        set_reason(reason, size, "switchover in synchronous mode: not in the sync key");
                        return false;
                }
                if (ha_fsm_manual_failover_no_leader(f, reason, size) <= 0)
                        return false;
                return manual_failover_keeps_commits(f, reason, size);
        }
        if (c->failsafe_mode && f->dcs.failsafe.present && !f->dcs.failsafe.contains_us) {
                set_reason(reason, size, "not listed in the failsafe key");
                return false;
        }
        if (c->synchronous_mode && sync_nonempty(f)) {
                if (!ha_fsm_sync_matches(f, f->node.name)) {
                        set_reason(reason, size, "synchronous mode: not listed in the sync key");
                        return false;
                }
                if (!is_healthiest_among(
                            f, /* filter_sync= */ true, NULL, /* check_lag= */ true, reason, size))
                        return false;
                return quorum_votes_suffice(f, reason, size);
        }
        return is_healthiest_among(f, /* filter_sync= */ false, NULL, /* check_lag= */ true, reason, size);
}

HaSwitchover ha_fsm_switchover_verdict(const HaFacts *f, char *reason, size_t size) {
        const char *candidate = isempty(f->dcs.failover.member) ? NULL : f->dcs.failover.member;
        const char *leader = isempty(f->dcs.failover.leader) ? NULL : f->dcs.failover.leader;
        const HaConfig *c = &f->dcs.config;
        bool possible;

        set_reason(reason, size, "%s", "");
        if (!f->dcs.failover.present || (paused(f) && !pg_primary(f)))
                return HA_SWITCHOVER_NONE;
        if (f->dcs.failover.has_scheduled_at) {
                if (paused(f))
                        return HA_SWITCHOVER_NONE;
                if (f->now < f->dcs.failover.scheduled_at) {
                        set_reason(reason, size, "Awaiting failover");
                        return HA_SWITCHOVER_NOT_DUE;
                }
                if (f->now - f->dcs.failover.scheduled_at > c->loop_wait + c->loop_wait / 2) {
                        set_reason(reason, size, "Found a stale failover value, cleaning up");
                        return HA_SWITCHOVER_STALE;
                }
        }
        if (!leader || is_me(f, leader)) {
                if (candidate && is_me(f, candidate)) {
                        set_reason(
                                reason,
                                size,
                                "manual failover: I am already the leader, no need to failover");
                        return HA_SWITCHOVER_REJECT;
                }
                if (paused(f) && !candidate) {
                        set_reason(
                                reason,
                                size,
                                "Failover is possible only to a specific candidate in a paused state");
                        return HA_SWITCHOVER_REJECT;
                }
                if (candidate) {
                        if (c->synchronous_mode && !ha_fsm_sync_matches(f, candidate)) {
                                set_reason(
                                        reason,
                                        size,
                                        "Failover candidate=%s does not match with sync_standbys",
                                        candidate);
                                return HA_SWITCHOVER_REJECT;
                        }
                        possible = ha_fsm_is_failover_possible(f, candidate, /* check_sync= */ false, 0);
                } else
                        possible = ha_fsm_is_failover_possible(f, NULL, c->synchronous_mode, 0);
                if (!possible) {
                        set_reason(
                                reason,
                                size,
                                "manual failover: no healthy members found, failover is not possible");
                        return HA_SWITCHOVER_REJECT;
                }
                set_reason(reason, size, "manual failover: demoting myself");
                return HA_SWITCHOVER_DEMOTE;
        }
        set_reason(
                reason, size, "manual failover: leader name does not match: %s != %s", leader, f->node.name);
        return HA_SWITCHOVER_REJECT;
}

/* ---- predicates: one per row, named after what they test -----------------------------------------------
 */

static bool start_timed_out(const HaFacts *f, usec_t since) {
        return f->now >= since && f->now - since >= f->dcs.config.primary_start_timeout;
}

static bool failover_possible(const HaFacts *f) {
        return ha_fsm_is_failover_possible(f, NULL, /* check_sync= */ true, /* cluster_lsn= */ 0);
}

static bool healthiest(const HaFacts *f) {
        return ha_fsm_is_healthiest_node(f, NULL, 0);
}

static HaSwitchover switchover(const HaFacts *f) {
        return ha_fsm_switchover_verdict(f, NULL, 0);
}

static bool locked_and_alive(const HaFacts *f) {
        return dcs_ok(f) && f->dcs.leader.name && pg_alive(f) && !job_running(f);
}

/* A scheduled restart is neither run nor cleaned up while paused (should_run_scheduled_action). */
static bool restart_window_stale(const HaFacts *f) {
        usec_t lw = f->dcs.config.loop_wait;
        return f->restart.scheduled && !paused(f) && f->now > f->restart.scheduled_at &&
                f->now - f->restart.scheduled_at > lw + lw / 2;
}

static bool restart_due(const HaFacts *f) {
        return f->restart.requested ||
                (f->restart.scheduled && !paused(f) && f->now >= f->restart.scheduled_at &&
                 !restart_window_stale(f));
}

/* Safety first: a writable primary past its local lease deadline, whatever else is true. */
static bool p_lease_expired(const HaFacts *f) {
        return ha_fsm_lease_expired(f);
}
static bool p_renew_failed_paused(const HaFacts *f) {
        return f->lease.renew_failed && leader_is_us(f) && pg_maybe_primary(f) && paused(f);
}
static bool p_renew_failed_primary(const HaFacts *f) {
        return f->lease.renew_failed && leader_is_us(f) && pg_maybe_primary(f);
}
static bool p_primary_but_other_leader(const HaFacts *f) {
        return pg_maybe_primary(f) && leader_other(f) && !paused(f);
}

/* Shutdown. */
static bool p_shutdown_paused(const HaFacts *f) {
        return f->shutdown_requested && paused(f);
}
static bool p_shutdown_paused_uninitialized(const HaFacts *f) {
        return f->shutdown_requested && paused(f);
}
static bool p_shutdown_primary(const HaFacts *f) {
        return f->shutdown_requested;
}
static bool p_shutdown(const HaFacts *f) {
        return f->shutdown_requested;
}

/* TILT. */
static bool p_tilt_primary(const HaFacts *f) {
        return in_tilt(f);
}
static bool p_tilt(const HaFacts *f) {
        return in_tilt(f);
}

/* DCS unreachable (_handle_dcs_error). */
static bool p_dcs_down_paused(const HaFacts *f) {
        return !dcs_ok(f) && paused(f);
}
static bool p_dcs_down_failsafe(const HaFacts *f) {
        return !dcs_ok(f) && pg_primary(f) && f->dcs.config.failsafe_mode && f->dcs.failsafe.contains_us &&
                f->dcs.failsafe.members_accepted;
}
/* A demotion already under way (Patroni's demote('offline') runs its stop and its read-only start as one
 * action) is not started again: while it stops, the lease deadline still fences a primary; once it starts
 * PostgreSQL read-only (standby.signal), a status query failing in that window must not stop it again. */
static bool p_dcs_down_demoting(const HaFacts *f) {
        return !dcs_ok(f) && f->job.running == HA_JOB_DEMOTE;
}
static bool p_dcs_down_primary(const HaFacts *f) {
        return !dcs_ok(f) && pg_maybe_primary(f);
}
static bool p_dcs_down(const HaFacts *f) {
        return !dcs_ok(f);
}
static bool p_dcs_down_uninitialized(const HaFacts *f) {
        return !dcs_ok(f);
}

/* A job is running (handle_long_action_in_progress). */
static bool p_job_start_timeout(const HaFacts *f) {
        return job_running(f) && owns_lock(f) && start_job(f->job.running) &&
                start_timed_out(f, f->job.since) && failover_possible(f);
}
static bool p_job_running_leader(const HaFacts *f) {
        return job_running(f) && owns_lock(f);
}
static bool p_job_promote_lost_lock(const HaFacts *f) {
        return f->job.running == HA_JOB_PROMOTE && !owns_lock(f);
}
static bool p_job_running(const HaFacts *f) {
        return job_running(f);
}
static bool p_job_running_uninitialized(const HaFacts *f) {
        return job_running(f);
}

/* POST /reinitialize. */
static bool p_reinit_requested(const HaFacts *f) {
        return f->reinit_requested && leader_other(f);
}
static bool p_reinit_requested_leader(const HaFacts *f) {
        return f->reinit_requested && leader_is_us(f);
}
static bool p_reinit_requested_no_leader(const HaFacts *f) {
        return f->reinit_requested;
}

/* PostgreSQL starting (handle_starting_instance). */
static bool p_starting_timeout_failover(const HaFacts *f) {
        return f->pg.state == HA_PG_STARTING && !paused(f) && owns_lock(f) &&
                start_timed_out(f, f->pg.state_since) && failover_possible(f);
}
static bool p_starting_timeout(const HaFacts *f) {
        return f->pg.state == HA_PG_STARTING && !paused(f) && owns_lock(f) &&
                start_timed_out(f, f->pg.state_since);
}
static bool p_starting_leader(const HaFacts *f) {
        return f->pg.state == HA_PG_STARTING && !paused(f) && owns_lock(f);
}
static bool p_starting(const HaFacts *f) {
        return f->pg.state == HA_PG_STARTING;
}

/* The bootstrap / clone job just ended (post_bootstrap). */
static bool p_bootstrap_failed(const HaFacts *f) {
        return f->job.last == HA_JOB_BOOTSTRAP && (f->job.last_failed || !pg_primary(f));
}
static bool p_bootstrap_no_watchdog(const HaFacts *f) {
        return f->job.last == HA_JOB_BOOTSTRAP && watchdog_blocks(f);
}
static bool p_bootstrap_done(const HaFacts *f) {
        return f->job.last == HA_JOB_BOOTSTRAP;
}
static bool p_clone_failed(const HaFacts *f) {
        return f->job.last == HA_JOB_CLONE && f->job.last_failed;
}

/* A start / restart / crash recovery just failed (post_recover). */
static bool p_start_failed_leader(const HaFacts *f) {
        return start_job(f->job.last) && f->job.last_failed && pg_not_running(f) && owns_lock(f);
}
static bool p_start_failed(const HaFacts *f) {
        return start_job(f->job.last) && f->job.last_failed && pg_not_running(f);
}

/* Data directory checks. */
static bool p_data_dir_gone_leader(const HaFacts *f) {
        return (f->pg.data_dir == HA_DATA_DIR_EMPTY || f->pg.data_dir == HA_DATA_DIR_INACCESSIBLE) &&
                owns_lock(f);
}
static bool p_data_dir_inaccessible(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_INACCESSIBLE;
}
static bool p_data_dir_empty_paused(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_EMPTY && paused(f);
}
static bool p_data_dir_empty(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_EMPTY;
}
static bool p_data_dir_invalid(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_INVALID;
}
static bool p_sysid_mismatch_paused_leader(const HaFacts *f) {
        return sysid_mismatch(f) && paused(f) && owns_lock(f);
}
static bool p_sysid_mismatch_paused(const HaFacts *f) {
        return sysid_mismatch(f) && paused(f);
}
static bool p_sysid_mismatch(const HaFacts *f) {
        return sysid_mismatch(f);
}
static bool p_no_initialize_replica_at_start(const HaFacts *f) {
        return f->last_tick == 0 && f->dcs.initialize != HA_INITIALIZE_SYSID && unlocked(f) && !paused(f) &&
                pg_replica(f);
}

/* Uninitialized: bootstrap or clone (Ha.bootstrap). */
static bool p_uninit_inaccessible(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_INACCESSIBLE;
}
static bool p_uninit_has_data(const HaFacts *f) {
        return f->pg.data_dir == HA_DATA_DIR_VALID || f->pg.data_dir == HA_DATA_DIR_INVALID;
}
static bool p_uninit_paused(const HaFacts *f) {
        return paused(f);
}
static bool p_uninit_leader_exists(const HaFacts *f) {
        return leader_other(f);
}
static bool p_uninit_may_race(const HaFacts *f) {
        return f->dcs.initialize == HA_INITIALIZE_ABSENT && !nofailover(f) &&
                f->dcs.config.has_bootstrap_section;
}
static bool p_uninit_won_race(const HaFacts *f) {
        return f->dcs.initialize == HA_INITIALIZE_EMPTY && f->dcs.bootstrap_won;
}
/* Predicates named p_always* hold unconditionally; the well-formedness test knows them by name. */
static bool p_always_uninitialized(const HaFacts *f) {
        return true;
}

/* PostgreSQL is not running (paused, or recover()). */
static bool p_stopped_paused_leader(const HaFacts *f) {
        return pg_not_running(f) && paused(f) && owns_lock(f);
}
/* Patroni's POST /restart runs the restart itself, in maintenance mode too: a replica whose postmaster is
 * gone while paused is started again on request (the leader's own case is the lock-release row above). */
static bool p_restart_requested_stopped_paused(const HaFacts *f) {
        return pg_not_running(f) && paused(f) && f->restart.requested && f->restart.filters_match &&
                dcs_ok(f) && !owns_lock(f) && !job_running(f);
}
static bool p_stopped_paused(const HaFacts *f) {
        return pg_not_running(f) && paused(f);
}
static bool p_crashed_leader_fail_over(const HaFacts *f) {
        return pg_not_running(f) && owns_lock(f) && f->dcs.config.primary_start_timeout == 0 &&
                failover_possible(f);
}
static bool p_stopped_unclean(const HaFacts *f) {
        return pg_not_running(f) && f->pg.unclean_shutdown && (unlocked(f) || rewind_possible(f));
}
static bool p_stopped_leader(const HaFacts *f) {
        return pg_not_running(f) && owns_lock(f);
}

/* Following a leader that is not us: paused primary, rewind/reinit (§2.11), start, follow. */
static bool p_primary_without_lock_paused(const HaFacts *f) {
        return pg_maybe_primary(f) && leader_other(f) && paused(f);
}
static bool p_diverged_wait_checkpoint(const HaFacts *f) {
        return leader_other(f) && diverged(f) && rewind_possible(f) && !f->pg.rewind_failed &&
                f->dcs.leader.checkpoint_pending;
}
/* A running replica that replayed past the new leader's fork point cannot stream from it: stop it, so that
 * the rows below rewind it (Patroni's Rewind.execute stops a running server first). Reinitialising stops
 * PostgreSQL by itself, so only the rewind needs this. */
static bool p_diverged_running(const HaFacts *f) {
        return leader_other(f) && diverged(f) && pg_replica(f) && !paused(f) && rewind_possible(f) &&
                !f->pg.rewind_failed;
}
static bool p_diverged_rewind(const HaFacts *f) {
        return leader_other(f) && diverged(f) && rewind_possible(f) && !f->pg.rewind_failed && !pg_alive(f);
}
static bool p_diverged_reinit(const HaFacts *f) {
        const HaConfig *c = &f->dcs.config;
        return leader_other(f) && diverged(f) &&
                (c->remove_data_directory_on_diverged_timelines ||
                 (f->pg.rewind_failed && c->remove_data_directory_on_rewind_failure));
}
static bool p_diverged_stuck(const HaFacts *f) {
        return leader_other(f) && diverged(f);
}
static bool p_demoted_divergence_unknown(const HaFacts *f) {
        return pg_not_running(f) && leader_other(f) && f->pg.divergence == HA_DIVERGENCE_UNKNOWN &&
                (rewind_possible(f) || f->dcs.config.remove_data_directory_on_diverged_timelines);
}
static bool p_stopped(const HaFacts *f) {
        return pg_not_running(f);
}

/* Scheduled or requested restart (evaluate_scheduled_restart). */
static bool p_restart_already_happened(const HaFacts *f) {
        /* Only when both start times are known, as Patroni compares them. */
        return locked_and_alive(f) && f->restart.scheduled && f->restart.postmaster_start_time != 0 &&
                f->pg.postmaster_start_time != 0 &&
                f->pg.postmaster_start_time != f->restart.postmaster_start_time;
}
static bool p_restart_stale(const HaFacts *f) {
        return locked_and_alive(f) && restart_window_stale(f);
}
static bool p_restart_filters_mismatch(const HaFacts *f) {
        return locked_and_alive(f) && restart_due(f) && !f->restart.filters_match;
}
static bool p_restart_due(const HaFacts *f) {
        return locked_and_alive(f) && restart_due(f);
}

/* We hold the lock (process_healthy_cluster). */
static bool p_renew_failed_replica(const HaFacts *f) {
        return f->lease.renew_failed && leader_is_us(f);
}
static bool p_leader_paused_awaiting_promote(const HaFacts *f) {
        return owns_lock(f) && paused(f) && !pg_maybe_primary(f) && is_me(f, f->dcs.failover.member);
}
static bool p_leader_paused_not_primary(const HaFacts *f) {
        return owns_lock(f) && paused(f) && !pg_maybe_primary(f);
}
static bool p_switchover_not_due(const HaFacts *f) {
        return owns_lock(f) && pg_primary(f) && switchover(f) == HA_SWITCHOVER_NOT_DUE;
}
static bool p_switchover_stale(const HaFacts *f) {
        return owns_lock(f) && pg_primary(f) && switchover(f) == HA_SWITCHOVER_STALE;
}
static bool p_switchover_demote(const HaFacts *f) {
        return owns_lock(f) && pg_primary(f) && switchover(f) == HA_SWITCHOVER_DEMOTE;
}
static bool p_switchover_reject(const HaFacts *f) {
        return owns_lock(f) && pg_primary(f) && switchover(f) == HA_SWITCHOVER_REJECT;
}
static bool p_leader_watchdog_unusable_primary(const HaFacts *f) {
        return owns_lock(f) && !paused(f) && watchdog_blocks(f) && pg_maybe_primary(f);
}
static bool p_leader_watchdog_unusable(const HaFacts *f) {
        return owns_lock(f) && !paused(f) && watchdog_blocks(f);
}
static bool p_leader_primary(const HaFacts *f) {
        return owns_lock(f) && pg_primary(f);
}
/* Holding the lock over a postmaster whose role cannot be read: it may be the primary, so keep (renew)
 * the lock, which keeps its lease deadline armed, and never try to promote it. */
static bool p_leader_role_unknown(const HaFacts *f) {
        return owns_lock(f) && pg_role_unknown(f);
}
static bool p_leader_replica(const HaFacts *f) {
        return owns_lock(f);
}

/* Someone else holds the lock. */
static bool p_follow_leader(const HaFacts *f) {
        return leader_other(f);
}

/* Nobody holds the lock (process_unhealthy_cluster). */
/* A quorum voter of a leaderless cluster stops streaming from the former leader before anything else:
 * until it does, that leader (frozen, not dead) could still collect its acknowledgements for commits
 * the winner of the race will not have. */
static bool p_unlocked_quorum_detach(const HaFacts *f) {
        return unlocked(f) && !paused(f) && pg_replica(f) && quorum_voter(f) && !f->pg.upstream_detached;
}
static bool p_unlocked_healthiest_primary(const HaFacts *f) {
        return unlocked(f) && pg_primary(f) && healthiest(f);
}
static bool p_unlocked_healthiest(const HaFacts *f) {
        return unlocked(f) && !pg_role_unknown(f) && healthiest(f);
}
static bool p_unlocked_primary_paused(const HaFacts *f) {
        return unlocked(f) && pg_maybe_primary(f) && paused(f);
}
static bool p_unlocked_primary_nofailover(const HaFacts *f) {
        return unlocked(f) && pg_maybe_primary(f) && nofailover(f);
}
static bool p_unlocked_primary(const HaFacts *f) {
        return unlocked(f) && pg_maybe_primary(f);
}
static bool p_unlocked_paused(const HaFacts *f) {
        return unlocked(f) && paused(f);
}
static bool p_unlocked_nofailover(const HaFacts *f) {
        return unlocked(f) && nofailover(f);
}
static bool p_unlocked_not_healthiest(const HaFacts *f) {
        return unlocked(f);
}

/* ---- comments: one named constant per transition, reused in logs, events and docs/fsm.md
 * ------------------ */

#define COMMENT_LEASE_EXPIRED             "local lease deadline passed while running as primary"
#define COMMENT_RENEW_FAILED_PAUSED       "leader key refresh refused while paused: keep running"
#define COMMENT_RENEW_FAILED              "leader key refresh refused: demote without touching the lock"
#define COMMENT_OTHER_LEADER              "running as primary while another node holds the lock"
#define COMMENT_SHUTDOWN_PAUSED           "shutdown while paused: leave postgres and the lock alone"
#define COMMENT_SHUTDOWN_PAUSED_UNINIT    "shutdown while paused before initialisation: leave postgres alone"
#define COMMENT_SHUTDOWN_PRIMARY          "shutdown as primary: stop postgres, then release the lock"
#define COMMENT_SHUTDOWN                  "shutdown: stop postgres"
#define COMMENT_TILT_PRIMARY              "TILT: observe only, the lease keep-alive goes on"
#define COMMENT_TILT                      "TILT: ticks too far apart, observe only"
#define COMMENT_DCS_DOWN_PAUSED           "DCS unreachable while paused"
#define COMMENT_DCS_DOWN_FAILSAFE         "DCS unreachable, failsafe: every member confirmed us"
#define COMMENT_DCS_DOWN_DEMOTING         "DCS unreachable while demoting: let the demotion finish"
#define COMMENT_DCS_DOWN_PRIMARY          "DCS unreachable while primary: demote offline"
#define COMMENT_DCS_DOWN                  "DCS unreachable: keep running, change nothing"
#define COMMENT_DCS_DOWN_UNINIT           "DCS unreachable before initialisation"
#define COMMENT_JOB_START_TIMEOUT         "start job past primary_start_timeout, failover possible"
#define COMMENT_JOB_LEADER                "job in progress while holding the lock: renew"
#define COMMENT_JOB_PROMOTE_LOST          "lost the lock while promoting: cancel the promotion"
#define COMMENT_JOB                       "job in progress"
#define COMMENT_JOB_UNINIT                "bootstrap or clone in progress"
#define COMMENT_REINIT                    "reinitialize requested: wipe and clone from the leader"
#define COMMENT_REINIT_LEADER             "reinitialize refused: we are the leader"
#define COMMENT_REINIT_NO_LEADER          "reinitialize refused: no leader to clone from"
#define COMMENT_STARTING_TIMEOUT_FAILOVER "primary start timed out and a failover is possible"
#define COMMENT_STARTING_TIMEOUT          "primary start timed out, nobody can take over: keep waiting"
#define COMMENT_STARTING_LEADER           "primary still starting within primary_start_timeout"
#define COMMENT_STARTING                  "postgres starting as a standby"
#define COMMENT_BOOTSTRAP_FAILED          "bootstrap failed: cancel initialisation"
#define COMMENT_BOOTSTRAP_NO_WATCHDOG     "bootstrap done but the required watchdog cannot be armed"
#define COMMENT_BOOTSTRAP_DONE            "bootstrap done: take the lock as the first primary"
#define COMMENT_CLONE_FAILED              "clone from the leader failed"
#define COMMENT_START_FAILED_LEADER       "postgres failed to start while holding the lock: release it"
#define COMMENT_START_FAILED              "postgres failed to start"
#define COMMENT_DATA_DIR_GONE_LEADER      "data directory empty or inaccessible while holding the lock"
#define COMMENT_DATA_DIR_INACCESSIBLE     "data directory not accessible"
#define COMMENT_DATA_DIR_EMPTY_PAUSED     "data directory empty while paused"
#define COMMENT_DATA_DIR_EMPTY            "data directory empty: re-initialise from the cluster"
#define COMMENT_DATA_DIR_INVALID          "data directory without a valid system identifier"
#define COMMENT_SYSID_PAUSED_LEADER       "system ID mismatch while paused and holding the lock"
#define COMMENT_SYSID_PAUSED              "system ID mismatch while paused"
#define COMMENT_SYSID                     "system ID mismatch: this node belongs to another cluster"
#define COMMENT_NO_INITIALIZE_REPLICA     "no initialize key and postgres runs as a replica at start-up"
#define COMMENT_UNINIT_INACCESSIBLE       "uninitialised and the data directory is not accessible"
#define COMMENT_UNINIT_HAS_DATA           "uninitialised but the data directory holds a cluster"
#define COMMENT_UNINIT_PAUSED             "uninitialised while paused"
#define COMMENT_UNINIT_CLONE              "a leader exists: clone from it"
#define COMMENT_UNINIT_RACE               "no initialize key: race to bootstrap"
#define COMMENT_UNINIT_WON                "won the initialize race: run initdb"
#define COMMENT_UNINIT_WAIT               "somebody else bootstraps the cluster"
#define COMMENT_STOPPED_PAUSED_LEADER     "postgres not running while paused and holding the lock"
#define COMMENT_STOPPED_PAUSED            "postgres not running while paused"
#define COMMENT_RESTART_STOPPED_PAUSED    "restart requested while paused and postgres is not running"
#define COMMENT_CRASHED_FAIL_OVER         "primary crashed, primary_start_timeout 0, failover possible"
#define COMMENT_STOPPED_UNCLEAN           "stopped uncleanly: single-user crash recovery first"
#define COMMENT_STOPPED_LEADER            "postgres not running while holding the lock: start it"
#define COMMENT_PAUSED_PRIMARY_NO_LOCK    "primary without the lock while paused"
#define COMMENT_DIVERGED_CHECKPOINT       "diverged: wait for the new leader's post-promote checkpoint"
#define COMMENT_DIVERGED_RUNNING          "running replica diverged from the leader's timeline: stop, then rewind"
#define COMMENT_DIVERGED_REWIND           "diverged from the leader's timeline: pg_rewind"
#define COMMENT_DIVERGED_REINIT           "diverged and pg_rewind unusable: reinitialise"
#define COMMENT_DIVERGED_STUCK            "diverged, neither rewind nor reinitialise allowed: stay stopped"
#define COMMENT_DEMOTED_UNCHECKED         "old primary: wait for the timeline check before rejoining"
#define COMMENT_STOPPED                   "postgres not running: start as a replica"
#define COMMENT_RESTART_HAPPENED          "scheduled restart already happened"
#define COMMENT_RESTART_STALE             "scheduled restart is stale"
#define COMMENT_RESTART_FILTERS           "restart filters do not match"
#define COMMENT_RESTART                   "restart requested or due"
#define COMMENT_RENEW_FAILED_REPLICA      "leader key refresh refused before promotion"
#define COMMENT_PAUSED_AWAIT_PROMOTE      "paused: lock held, waiting for a manual promote"
#define COMMENT_PAUSED_NOT_PRIMARY        "paused: lock held but postgres is not a primary"
#define COMMENT_SWITCHOVER_NOT_DUE        "scheduled switchover not due yet"
#define COMMENT_SWITCHOVER_STALE          "scheduled switchover is stale: clean the key"
#define COMMENT_SWITCHOVER                "manual switchover: a healthy candidate exists"
#define COMMENT_SWITCHOVER_REJECT         "manual switchover not applicable: clean the key"
#define COMMENT_WATCHDOG_PRIMARY          "required watchdog cannot be armed while primary"
#define COMMENT_WATCHDOG                  "required watchdog cannot be armed: do not promote"
#define COMMENT_LEADER                    "leader with the lock"
#define COMMENT_LEADER_ROLE_UNKNOWN       "lock held, postgres role unknown: keep the lock, do not promote"
#define COMMENT_PROMOTE                   "lock held, postgres in recovery: promote"
#define COMMENT_FOLLOW                    "another node leads: follow it"
#define COMMENT_QUORUM_DETACH             "no leader, quorum voter: stop streaming from the former leader"
#define COMMENT_ACQUIRE                   "no leader, healthiest, already primary: take the lock"
#define COMMENT_ACQUIRE_PROMOTE           "no leader and healthiest: take the lock and promote"
#define COMMENT_UNLOCKED_PRIMARY_PAUSED   "no leader, primary while paused"
#define COMMENT_UNLOCKED_PRIMARY_NOFAIL   "no leader, primary tagged nofailover"
#define COMMENT_UNLOCKED_PRIMARY          "no leader, primary but not the healthiest"
#define COMMENT_UNLOCKED_PAUSED           "no leader while paused: no failover"
#define COMMENT_UNLOCKED_NOFAILOVER       "no leader, tagged nofailover: do not race"
#define COMMENT_UNLOCKED                  "no leader, not the healthiest: do not race"
#define COMMENT_FENCE                     "no rule matched: fence (never promote)"

/* Message templates: Patroni 3.0.2's cycle messages where it has one. Placeholders: {me}, {leader},
 * {target}, {source} ("leader 'x'" or "replica 'y'"), {job}, {secs} (start timeout left), {gap} (TILT
 * gap), {datadir} ("empty" or "not accessible"), {dcs_sysid}, {sysid}. */
#define MSG_LEADER "no action. I am ({me}), the leader with the lock"

typedef bool (*HaPredicate)(const HaFacts *f);

typedef struct HaFsmRow {
        HaFsmRowInfo info;
        HaPredicate pred;
} HaFsmRow;

#define ROW(roles_, pred_, next_, action_, flags_, comment_, message_, failed_) \
        {                                                                       \
                .info =                                                         \
                        {                                                       \
                                .roles = (roles_),                              \
                                .predicate = &(#pred_)[2],                      \
                                .next_role = (next_),                           \
                                .action = (action_),                            \
                                .flags = (flags_),                              \
                                .comment = (comment_),                          \
                                .message = (message_),                          \
                                .message_failed = (failed_),                    \
                        },                                                      \
                .pred = (pred_),                                                \
        }

#define F_LEADER \
        (HA_FLAG_WRITE_STATUS | HA_FLAG_PROCESS_SYNC | HA_FLAG_UPDATE_HISTORY | HA_FLAG_ARM_WATCHDOG)

/* clang-format off */
static const HaFsmRow ha_fsm_table[] = {
        /* Safety: nothing outranks a primary that can no longer prove it holds the lock. */
        ROW(R_PRD, p_lease_expired, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_LEASE_EXPIRED,
            "demoted self because failed to update leader lock in DCS", NULL),
        ROW(R_PRD, p_renew_failed_paused, KEEP, HA_ACTION_STAY_PRIMARY, 0, COMMENT_RENEW_FAILED_PAUSED,
            "continue to run as primary after failing to update leader lock in DCS", NULL),
        ROW(R_PRD, p_renew_failed_primary, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_RENEW_FAILED,
            "demoted self because failed to update leader lock in DCS", NULL),
        ROW(R_PRD, p_primary_but_other_leader, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_OTHER_LEADER,
            "demoting self because I do not have the lock and I was a leader", NULL),

        /* Shutdown (SIGTERM/SIGINT). */
        ROW(R_PRD, p_shutdown_paused, KEEP, HA_ACTION_SHUTDOWN_DETACH, 0, COMMENT_SHUTDOWN_PAUSED,
            "Leader key is not deleted and Postgresql is not stopped due paused state", NULL),
        ROW(R_U, p_shutdown_paused_uninitialized, KEEP, HA_ACTION_SHUTDOWN_DETACH, 0,
            COMMENT_SHUTDOWN_PAUSED_UNINIT,
            "Leader key is not deleted and Postgresql is not stopped due paused state", NULL),
        ROW(R_P, p_shutdown_primary, HA_ROLE_DEMOTED, HA_ACTION_SHUTDOWN_STOP, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_SHUTDOWN_PRIMARY, "shutting down: stopping PostgreSQL, then releasing the leader key",
            "PostgreSQL shutdown failed, leader key not removed."),
        ROW(R_RDU, p_shutdown, KEEP, HA_ACTION_SHUTDOWN_STOP, HA_FLAG_DISABLE_WATCHDOG, COMMENT_SHUTDOWN,
            "shutting down: stopping PostgreSQL", NULL),

        /* TILT: a stalled process or a clock jump; observe for one loop_wait. */
        ROW(R_P, p_tilt_primary, KEEP, HA_ACTION_WAIT, 0, COMMENT_TILT_PRIMARY,
            "TILT: {gap} seconds since the last HA cycle, observing only for one loop_wait", NULL),
        ROW(R_RDU, p_tilt, KEEP, HA_ACTION_WAIT, 0, COMMENT_TILT,
            "TILT: {gap} seconds since the last HA cycle, observing only for one loop_wait", NULL),

        /* DCS unreachable (_handle_dcs_error). */
        ROW(R_PRD, p_dcs_down_paused, KEEP, HA_ACTION_WAIT, 0, COMMENT_DCS_DOWN_PAUSED,
            "DCS is not accessible", NULL),
        ROW(R_PRD, p_dcs_down_failsafe, HA_ROLE_PRIMARY, HA_ACTION_STAY_PRIMARY,
            HA_FLAG_EXTEND_LEASE | HA_FLAG_ARM_WATCHDOG, COMMENT_DCS_DOWN_FAILSAFE,
            "continue to run as a leader because failsafe mode is enabled and all members are accessible",
            NULL),
        ROW(R_PRD, p_dcs_down_demoting, KEEP, HA_ACTION_WAIT, 0, COMMENT_DCS_DOWN_DEMOTING,
            "DCS is not accessible; {job} in progress", NULL),
        ROW(R_PRD, p_dcs_down_primary, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_OFFLINE, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_DCS_DOWN_PRIMARY, "demoting self because DCS is not accessible and I was a leader",
            NULL),
        ROW(R_PRD, p_dcs_down, KEEP, HA_ACTION_WAIT, 0, COMMENT_DCS_DOWN, "DCS is not accessible", NULL),
        ROW(R_U, p_dcs_down_uninitialized, KEEP, HA_ACTION_WAIT, 0, COMMENT_DCS_DOWN_UNINIT,
            "DCS is not accessible", NULL),

        /* A job is running (handle_long_action_in_progress). */
        ROW(R_PRD, p_job_start_timeout, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE,
            HA_FLAG_CANCEL_JOB | HA_FLAG_DISABLE_WATCHDOG, COMMENT_JOB_START_TIMEOUT,
            "terminated crash recovery because of startup timeout", NULL),
        ROW(R_PRD, p_job_running_leader, KEEP, HA_ACTION_RENEW_LOCK, 0, COMMENT_JOB_LEADER,
            "updated leader lock during {job}", NULL),
        ROW(R_PRD, p_job_promote_lost_lock, KEEP, HA_ACTION_CANCEL_JOB, HA_FLAG_CANCEL_JOB,
            COMMENT_JOB_PROMOTE_LOST, "lost leader before promote", NULL),
        ROW(R_PRD, p_job_running, KEEP, HA_ACTION_WAIT, 0, COMMENT_JOB, "{job} in progress", NULL),
        ROW(R_U, p_job_running_uninitialized, KEEP, HA_ACTION_WAIT, 0, COMMENT_JOB_UNINIT,
            "{job} in progress", NULL),

        /* POST /reinitialize. */
        ROW(R_PRD, p_reinit_requested, HA_ROLE_REPLICA, HA_ACTION_REINIT, HA_FLAG_CLEAR_REINIT,
            COMMENT_REINIT, "reinitialize started: removing the data directory and cloning from {source}",
            NULL),
        ROW(R_PRD, p_reinit_requested_leader, KEEP, HA_ACTION_NOOP, HA_FLAG_CLEAR_REINIT,
            COMMENT_REINIT_LEADER, "I am the leader, can not reinitialize", NULL),
        ROW(R_PRD, p_reinit_requested_no_leader, KEEP, HA_ACTION_NOOP, HA_FLAG_CLEAR_REINIT,
            COMMENT_REINIT_NO_LEADER, "Cluster has no leader, can not reinitialize", NULL),

        /* PostgreSQL is starting (handle_starting_instance). */
        ROW(R_PRD, p_starting_timeout_failover, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_STARTING_TIMEOUT_FAILOVER,
            "stopped PostgreSQL because of startup timeout", NULL),
        ROW(R_PRD, p_starting_timeout, KEEP, HA_ACTION_RENEW_LOCK, 0, COMMENT_STARTING_TIMEOUT,
            "primary start has timed out, but continuing to wait because failover is not possible", NULL),
        ROW(R_PRD, p_starting_leader, KEEP, HA_ACTION_RENEW_LOCK, 0, COMMENT_STARTING_LEADER,
            "PostgreSQL is still starting up, {secs} seconds until timeout", NULL),
        ROW(R_PRD, p_starting, KEEP, HA_ACTION_WAIT, 0, COMMENT_STARTING, "Still starting up as a standby.",
            NULL),

        /* The bootstrap or clone job just ended. */
        ROW(R_U, p_bootstrap_failed, KEEP, HA_ACTION_BOOTSTRAP_CANCEL, 0, COMMENT_BOOTSTRAP_FAILED,
            "Failed to bootstrap cluster", NULL),
        ROW(R_U, p_bootstrap_no_watchdog, KEEP, HA_ACTION_BOOTSTRAP_CANCEL, 0, COMMENT_BOOTSTRAP_NO_WATCHDOG,
            "Cancelling bootstrap because watchdog activation failed", NULL),
        ROW(R_U, p_bootstrap_done, HA_ROLE_PRIMARY, HA_ACTION_BOOTSTRAP_FINISH,
            HA_FLAG_WRITE_INITIALIZE | HA_FLAG_ARM_WATCHDOG | HA_FLAG_WRITE_STATUS, COMMENT_BOOTSTRAP_DONE,
            "initialized a new cluster", "Failed to bootstrap cluster"),
        ROW(R_U, p_clone_failed, KEEP, HA_ACTION_WAIT, 0, COMMENT_CLONE_FAILED,
            "failed to bootstrap from leader '{leader}'", NULL),

        /* A start just failed (post_recover). */
        ROW(R_PRD, p_start_failed_leader, HA_ROLE_DEMOTED, HA_ACTION_RELEASE_LOCK, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_START_FAILED_LEADER, "removed leader key after trying and failing to start postgres",
            NULL),
        ROW(R_PRD, p_start_failed, KEEP, HA_ACTION_WAIT, 0, COMMENT_START_FAILED, "failed to start postgres",
            NULL),

        /* The data directory. */
        ROW(R_PRD, p_data_dir_gone_leader, HA_ROLE_UNINITIALIZED, HA_ACTION_STOP_POSTGRES,
            HA_FLAG_RELEASE_LOCK | HA_FLAG_DISABLE_WATCHDOG, COMMENT_DATA_DIR_GONE_LEADER,
            "released leader key voluntarily as data dir {datadir} and currently leader", NULL),
        ROW(R_PRD, p_data_dir_inaccessible, HA_ROLE_UNINITIALIZED, HA_ACTION_STOP_POSTGRES,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_DATA_DIR_INACCESSIBLE, "data directory is not accessible",
            NULL),
        ROW(R_PRD, p_data_dir_empty_paused, HA_ROLE_UNINITIALIZED, HA_ACTION_WAIT, 0,
            COMMENT_DATA_DIR_EMPTY_PAUSED, "running with empty data directory", NULL),
        ROW(R_PRD, p_data_dir_empty, HA_ROLE_UNINITIALIZED, HA_ACTION_STOP_POSTGRES,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_DATA_DIR_EMPTY, "data directory is empty", NULL),
        ROW(R_PRD, p_data_dir_invalid, KEEP, HA_ACTION_WAIT, 0, COMMENT_DATA_DIR_INVALID,
            "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize",
            NULL),
        ROW(R_PRD, p_sysid_mismatch_paused_leader, KEEP, HA_ACTION_RELEASE_LOCK, 0,
            COMMENT_SYSID_PAUSED_LEADER, "released leader key voluntarily due to the system ID mismatch",
            NULL),
        ROW(R_PRD, p_sysid_mismatch_paused, KEEP, HA_ACTION_WAIT, 0, COMMENT_SYSID_PAUSED,
            "system ID mismatch, node {me} belongs to a different cluster: {dcs_sysid} != {sysid}", NULL),
        ROW(R_PRD, p_sysid_mismatch, KEEP, HA_ACTION_EXIT, 0, COMMENT_SYSID,
            "system ID mismatch, node {me} belongs to a different cluster: {dcs_sysid} != {sysid}", NULL),
        ROW(R_PRD, p_no_initialize_replica_at_start, KEEP, HA_ACTION_EXIT, 0, COMMENT_NO_INITIALIZE_REPLICA,
            "No initialize key in DCS and PostgreSQL is running as replica, aborting start", NULL),

        /* Uninitialized: bootstrap or clone (Ha.bootstrap). */
        ROW(R_U, p_uninit_inaccessible, KEEP, HA_ACTION_WAIT, 0, COMMENT_UNINIT_INACCESSIBLE,
            "data directory is not accessible", NULL),
        ROW(R_U, p_uninit_has_data, HA_ROLE_DEMOTED, HA_ACTION_NOOP, 0, COMMENT_UNINIT_HAS_DATA,
            "data directory holds a cluster, treating this node as stopped", NULL),
        ROW(R_U, p_uninit_paused, KEEP, HA_ACTION_WAIT, 0, COMMENT_UNINIT_PAUSED,
            "running with empty data directory", NULL),
        ROW(R_U, p_uninit_leader_exists, HA_ROLE_REPLICA, HA_ACTION_CLONE_FROM_LEADER, 0,
            COMMENT_UNINIT_CLONE, "trying to bootstrap from {source}", "failed to bootstrap from {source}"),
        ROW(R_U, p_uninit_may_race, KEEP, HA_ACTION_BOOTSTRAP_RACE, 0, COMMENT_UNINIT_RACE,
            "trying to bootstrap a new cluster", "failed to acquire initialize lock"),
        ROW(R_U, p_uninit_won_race, KEEP, HA_ACTION_BOOTSTRAP_INITDB, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_UNINIT_WON, "trying to bootstrap a new cluster", NULL),
        ROW(R_U, p_always_uninitialized, KEEP, HA_ACTION_WAIT_FOR_BOOTSTRAP, 0, COMMENT_UNINIT_WAIT,
            "waiting for leader to bootstrap", NULL),

        /* PostgreSQL is not running: paused, crashed, or needs to start. */
        ROW(R_PRD, p_stopped_paused_leader, KEEP, HA_ACTION_RELEASE_LOCK, 0, COMMENT_STOPPED_PAUSED_LEADER,
            "removed leader lock because postgres is not running", NULL),
        ROW(R_PRD, p_restart_requested_stopped_paused, KEEP, HA_ACTION_RESTART, HA_FLAG_CLEAR_RESTART,
            COMMENT_RESTART_STOPPED_PAUSED, "restart initiated", NULL),
        ROW(R_PRD, p_stopped_paused, KEEP, HA_ACTION_WAIT, 0, COMMENT_STOPPED_PAUSED,
            "postgres is not running", NULL),
        ROW(R_PRD, p_crashed_leader_fail_over, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_CRASHED_FAIL_OVER,
            "stopped PostgreSQL to fail over after a crash", NULL),
        ROW(R_PRD, p_stopped_unclean, KEEP, HA_ACTION_RECOVER_CRASHED, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_STOPPED_UNCLEAN, "doing crash recovery in a single user mode", NULL),
        ROW(R_PRD, p_stopped_leader, KEEP, HA_ACTION_START_POSTGRES, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_STOPPED_LEADER, "starting as readonly because i had the session lock", NULL),

        /* Another node holds the lock: a paused primary keeps running, diverged nodes rewind first. */
        ROW(R_PRD, p_primary_without_lock_paused, HA_ROLE_PRIMARY, HA_ACTION_STAY_PRIMARY, 0,
            COMMENT_PAUSED_PRIMARY_NO_LOCK, "continue to run as primary without lock", NULL),
        ROW(R_PRD, p_diverged_wait_checkpoint, KEEP, HA_ACTION_WAIT, 0, COMMENT_DIVERGED_CHECKPOINT,
            "Waiting for checkpoint on {leader} before rewind", NULL),
        ROW(R_PRD, p_diverged_running, KEEP, HA_ACTION_STOP_POSTGRES, 0, COMMENT_DIVERGED_RUNNING,
            "stopping postgres to rewind: its timeline diverged from leader {leader}", NULL),
        ROW(R_PRD, p_diverged_rewind, HA_ROLE_REPLICA, HA_ACTION_REWIND, 0, COMMENT_DIVERGED_REWIND,
            "running pg_rewind from {leader}", NULL),
        ROW(R_PRD, p_diverged_reinit, HA_ROLE_REPLICA, HA_ACTION_REINIT, 0, COMMENT_DIVERGED_REINIT,
            "reinitializing due to diverged timelines", NULL),
        ROW(R_PRD, p_diverged_stuck, KEEP, HA_ACTION_WAIT, 0, COMMENT_DIVERGED_STUCK,
            "postgres is not running: timeline diverged from leader {leader}, pg_rewind is not possible and "
            "remove_data_directory_on_diverged_timelines is off",
            NULL),
        ROW(R_D, p_demoted_divergence_unknown, KEEP, HA_ACTION_WAIT, 0, COMMENT_DEMOTED_UNCHECKED,
            "waiting for the timeline check against leader {leader} before rejoining", NULL),
        ROW(R_PRD, p_stopped, HA_ROLE_REPLICA, HA_ACTION_START_POSTGRES, HA_FLAG_DISABLE_WATCHDOG,
            COMMENT_STOPPED, "starting as a secondary", NULL),

        /* Scheduled or requested restart (evaluate_scheduled_restart). */
        ROW(R_PRD, p_restart_already_happened, KEEP, HA_ACTION_NOOP, HA_FLAG_CLEAR_RESTART,
            COMMENT_RESTART_HAPPENED, "Cancelling scheduled restart: postgres restart has already happened",
            NULL),
        ROW(R_PRD, p_restart_stale, KEEP, HA_ACTION_NOOP, HA_FLAG_CLEAR_RESTART, COMMENT_RESTART_STALE,
            "Found a stale scheduled restart value, cleaning up", NULL),
        ROW(R_PRD, p_restart_filters_mismatch, KEEP, HA_ACTION_NOOP, HA_FLAG_CLEAR_RESTART,
            COMMENT_RESTART_FILTERS, "not proceeding with the restart: filters do not match", NULL),
        ROW(R_PRD, p_restart_due, KEEP, HA_ACTION_RESTART, HA_FLAG_CLEAR_RESTART, COMMENT_RESTART,
            "restart initiated", NULL),

        /* We hold the lock (process_healthy_cluster, enforce_primary_role). */
        ROW(R_PRD, p_renew_failed_replica, KEEP, HA_ACTION_WAIT, 0, COMMENT_RENEW_FAILED_REPLICA,
            "not promoting because failed to update leader lock in DCS", NULL),
        ROW(R_PRD, p_leader_paused_awaiting_promote, KEEP, HA_ACTION_WAIT, 0, COMMENT_PAUSED_AWAIT_PROMOTE,
            "waiting to become primary after promote...", NULL),
        ROW(R_PRD, p_leader_paused_not_primary, KEEP, HA_ACTION_RELEASE_LOCK, 0, COMMENT_PAUSED_NOT_PRIMARY,
            "removed leader lock because postgres is not running as primary", NULL),
        ROW(R_PRD, p_switchover_not_due, HA_ROLE_PRIMARY, HA_ACTION_RENEW_LOCK, F_LEADER,
            COMMENT_SWITCHOVER_NOT_DUE, MSG_LEADER,
            "demoted self because failed to update leader lock in DCS"),
        ROW(R_PRD, p_switchover_stale, HA_ROLE_PRIMARY, HA_ACTION_RENEW_LOCK,
            F_LEADER | HA_FLAG_CLEAR_FAILOVER, COMMENT_SWITCHOVER_STALE, MSG_LEADER,
            "demoted self because failed to update leader lock in DCS"),
        ROW(R_PRD, p_switchover_demote, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_GRACEFUL, 0, COMMENT_SWITCHOVER,
            "manual failover: demoting myself", NULL),
        ROW(R_PRD, p_switchover_reject, HA_ROLE_PRIMARY, HA_ACTION_RENEW_LOCK,
            F_LEADER | HA_FLAG_CLEAR_FAILOVER, COMMENT_SWITCHOVER_REJECT, MSG_LEADER,
            "demoted self because failed to update leader lock in DCS"),
        ROW(R_PRD, p_leader_watchdog_unusable_primary, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE, 0,
            COMMENT_WATCHDOG_PRIMARY, "Demoting self because watchdog could not be activated", NULL),
        ROW(R_PRD, p_leader_watchdog_unusable, KEEP, HA_ACTION_RELEASE_LOCK, 0, COMMENT_WATCHDOG,
            "Not promoting self because watchdog could not be activated", NULL),
        ROW(R_PRD, p_leader_primary, HA_ROLE_PRIMARY, HA_ACTION_RENEW_LOCK, F_LEADER, COMMENT_LEADER,
            MSG_LEADER, "demoted self because failed to update leader lock in DCS"),
        ROW(R_PRD, p_leader_role_unknown, KEEP, HA_ACTION_RENEW_LOCK, 0, COMMENT_LEADER_ROLE_UNKNOWN,
            MSG_LEADER "; PostgreSQL's role cannot be read, so it is treated as the primary",
            "demoted self because failed to update leader lock in DCS"),
        ROW(R_PRD, p_leader_replica, HA_ROLE_PRIMARY, HA_ACTION_PROMOTE, HA_FLAG_ARM_WATCHDOG,
            COMMENT_PROMOTE, "promoted self to leader because I had the session lock",
            "Postponing promotion because synchronous replication state was updated by somebody else"),

        /* Someone else holds the lock (follow). */
        ROW(R_PRD, p_follow_leader, HA_ROLE_REPLICA, HA_ACTION_FOLLOW, 0, COMMENT_FOLLOW,
            "no action. I am ({me}), a secondary, and following a leader ({leader})", NULL),

        /* Nobody holds the lock (process_unhealthy_cluster). */
        ROW(R_PRD, p_unlocked_quorum_detach, HA_ROLE_REPLICA, HA_ACTION_FOLLOW, 0, COMMENT_QUORUM_DETACH,
            "no leader: stopping replication from the former leader before the quorum vote", NULL),
        ROW(R_PRD, p_unlocked_healthiest_primary, HA_ROLE_PRIMARY, HA_ACTION_ACQUIRE_LOCK,
            F_LEADER | HA_FLAG_CLEAR_FAILOVER, COMMENT_ACQUIRE, "acquired session lock as a leader",
            "demoted self after trying and failing to obtain lock"),
        ROW(R_PRD, p_unlocked_healthiest, HA_ROLE_PRIMARY, HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE,
            HA_FLAG_ARM_WATCHDOG | HA_FLAG_CLEAR_FAILOVER, COMMENT_ACQUIRE_PROMOTE,
            "promoted self to leader by acquiring session lock",
            "following new leader after trying and failing to obtain lock"),
        ROW(R_PRD, p_unlocked_primary_paused, HA_ROLE_PRIMARY, HA_ACTION_STAY_PRIMARY, 0,
            COMMENT_UNLOCKED_PRIMARY_PAUSED, "continue to run as primary without lock", NULL),
        ROW(R_PRD, p_unlocked_primary_nofailover, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_UNLOCKED_PRIMARY_NOFAIL,
            "demoting self because I am not allowed to become primary", NULL),
        ROW(R_PRD, p_unlocked_primary, HA_ROLE_DEMOTED, HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,
            HA_FLAG_DISABLE_WATCHDOG, COMMENT_UNLOCKED_PRIMARY,
            "demoting self because i am not the healthiest node", NULL),
        ROW(R_PRD, p_unlocked_paused, HA_ROLE_REPLICA, HA_ACTION_NOOP, 0, COMMENT_UNLOCKED_PAUSED,
            "no action. I am ({me})", NULL),
        ROW(R_PRD, p_unlocked_nofailover, HA_ROLE_REPLICA, HA_ACTION_FOLLOW, 0, COMMENT_UNLOCKED_NOFAILOVER,
            "following a different leader because I am not allowed to promote", NULL),
        ROW(R_PRD, p_unlocked_not_healthiest, HA_ROLE_REPLICA, HA_ACTION_FOLLOW, 0, COMMENT_UNLOCKED,
            "following a different leader because i am not the healthiest node", NULL),

        /* Sentinel. */
        {},
};
/* clang-format on */

#define N_ROWS (ELEMENTSOF(ha_fsm_table) - 1)

size_t ha_fsm_n_rows(void) {
        return N_ROWS;
}

const HaFsmRowInfo *ha_fsm_row(size_t i) {
        return i < N_ROWS ? &ha_fsm_table[i].info : NULL;
}

/* ---- the decision ------------------------------------------------------------------------------------- */

static const HaMember *upstream_member(const HaFacts *f) {
        const HaMember *m = NULL;

        if (!leader_other(f))
                return NULL;
        if (f->node.tags.replicatefrom && !is_me(f, f->node.tags.replicatefrom))
                m = find_member(f, f->node.tags.replicatefrom);
        return m ?: find_member(f, f->dcs.leader.name);
}

/* Upstream to follow: the member named by our replicatefrom tag if it exists, else the leader. */
static const char *upstream_name(const HaFacts *f) {
        const HaMember *m = upstream_member(f);

        if (m)
                return m->name;
        return leader_other(f) ? f->dcs.leader.name : NULL;
}

/* Clone source: a running member tagged clonefrom (not us, not the leader), else the leader. */
static const HaMember *clone_source(const HaFacts *f, bool *ret_is_leader) {
        for (size_t i = 0; i < f->dcs.n_members; i++) {
                const HaMember *m = &f->dcs.members[i];
                if (m->name && m->tags.clonefrom && m->state == HA_PG_RUNNING && !is_me(f, m->name) &&
                    !streq_ptr(m->name, f->dcs.leader.name)) {
                        *ret_is_leader = false;
                        return m;
                }
        }
        *ret_is_leader = true;
        return NULL;
}

static void copy_name(char *dst, size_t size, const char *src) {
        (void)snprintf(dst, size, "%s", strempty(src));
}

/* Appends to buf at *pos, never past size - 1, always NUL-terminated. */
static void append(char *buf, size_t size, size_t *pos, const char *s, size_t n) {
        if (*pos >= size - 1)
                return;
        n = MIN(n, size - 1 - *pos);
        memcpy(buf + *pos, s, n);
        *pos += n;
        buf[*pos] = '\0';
}

static void expand(const HaFacts *f, const HaDecision *d, const char *tmpl, char *buf, size_t size) {
        char num[64];
        size_t pos = 0;

        buf[0] = '\0';
        if (paused(f))
                append(buf, size, &pos, "PAUSE: ", 7);
        for (const char *p = tmpl; *p;) {
                const char *end, *v = NULL;
                size_t klen;

                if (*p != '{' || !(end = strchr(p, '}'))) {
                        append(buf, size, &pos, p, 1);
                        p++;
                        continue;
                }
                klen = (size_t)(end - p - 1);
#define KEY(k) (klen == strlen(k) && strneq(p + 1, k, klen))
                if (KEY("me"))
                        v = strempty(f->node.name);
                else if (KEY("leader"))
                        v = strempty(f->dcs.leader.name);
                else if (KEY("target"))
                        v = d->target;
                else if (KEY("source")) {
                        bool is_leader;
                        const HaMember *m = clone_source(f, &is_leader);
                        (void)snprintf(
                                num,
                                sizeof num,
                                "%s '%.40s'",
                                is_leader ? "leader" : "replica",
                                is_leader ? strempty(f->dcs.leader.name) : m->name);
                        v = num;
                } else if (KEY("job"))
                        v = ha_job_to_string(f->job.running) ?: "job";
                else if (KEY("secs")) {
                        usec_t end_t = f->pg.state_since + f->dcs.config.primary_start_timeout;
                        (void)snprintf(
                                num,
                                sizeof num,
                                "%" PRIu64,
                                end_t > f->now ? (end_t - f->now) / USEC_PER_SEC : 0);
                        v = num;
                } else if (KEY("gap")) {
                        (void)snprintf(
                                num,
                                sizeof num,
                                "%" PRIu64,
                                f->last_tick && f->now > f->last_tick
                                        ? (f->now - f->last_tick) / USEC_PER_SEC
                                        : 0);
                        v = num;
                } else if (KEY("datadir"))
                        v = f->pg.data_dir == HA_DATA_DIR_EMPTY ? "empty" : "not accessible";
                else if (KEY("dcs_sysid")) {
                        (void)snprintf(num, sizeof num, "%" PRIu64, f->dcs.initialize_sysid);
                        v = num;
                } else if (KEY("sysid")) {
                        (void)snprintf(num, sizeof num, "%" PRIu64, f->pg.sysid);
                        v = num;
                }
#undef KEY
                if (!v) {
                        append(buf, size, &pos, p, 1);
                        p++;
                        continue;
                }
                append(buf, size, &pos, v, strlen(v));
                p = end + 1;
        }
}

static void fill_target(const HaFacts *f, HaDecision *d) {
        bool is_leader;
        const HaMember *m;

        switch (d->action) {
        case HA_ACTION_FOLLOW:
        case HA_ACTION_START_POSTGRES:
        case HA_ACTION_RESTART: /* a replica comes back following its upstream */
                copy_name(d->target, sizeof d->target, upstream_name(f));
                break;
        case HA_ACTION_CLONE_FROM_LEADER:
        case HA_ACTION_REINIT:
                m = clone_source(f, &is_leader);
                copy_name(d->target, sizeof d->target, is_leader ? f->dcs.leader.name : m->name);
                break;
        case HA_ACTION_REWIND:
                copy_name(d->target, sizeof d->target, f->dcs.leader.name);
                break;
        default:
                d->target[0] = '\0';
        }
}

static void min_wake(usec_t *wake, usec_t t) {
        if (t != 0 && (*wake == 0 || t < *wake))
                *wake = t;
}

/* Side effects that Patroni performs around the decision list regardless of the branch taken. */
static void housekeeping(const HaFacts *f, HaDecision *d) {
        const HaConfig *c = &f->dcs.config;
        HaSwitchover so;

        d->write_member_key = dcs_ok(f) && d->action != HA_ACTION_EXIT;
        d->advertise_role = f->role;

        /* Step 4 and 10 of §2.3: the lock holder repairs `initialize`; an unlocked cluster without one is
         * taken over by the node that has data. */
        if (dcs_ok(f) && f->pg.data_dir == HA_DATA_DIR_VALID && f->pg.has_sysid &&
            f->dcs.initialize != HA_INITIALIZE_SYSID && d->action != HA_ACTION_EXIT &&
            (owns_lock(f) || (unlocked(f) && !paused(f) && f->dcs.initialize == HA_INITIALIZE_ABSENT)))
                d->flags |= HA_FLAG_WRITE_INITIALIZE;

        if ((d->action == HA_ACTION_PROMOTE || d->action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE) &&
            c->synchronous_mode)
                d->flags |= HA_FLAG_CLAIM_SYNC;
        if (f->node.watchdog_mode == HA_WATCHDOG_OFF || paused(f))
                d->flags &= ~(unsigned)HA_FLAG_ARM_WATCHDOG;
        if (paused(f))
                d->flags |= HA_FLAG_DISABLE_WATCHDOG;

        /* TILT lasts one loop_wait (at most a ttl) from the tick that noticed the gap: that tick's facts
         * were gathered after the wake-up, so one ordinary period of observing is enough; a whole ttl
         * kept a fenced old primary out of the cluster for as long again. */
        if (tilt_gap(f))
                d->tilt_until = f->now + MIN(c->loop_wait, c->ttl);
        else if (f->tilt_until > f->now)
                d->tilt_until = f->tilt_until;
        else
                d->tilt_until = 0;

        d->wake_at = 0;
        if (d->action == HA_ACTION_BOOTSTRAP_RACE)
                min_wake(&d->wake_at, f->now); /* decide again at once with the race's outcome */
        so = owns_lock(f) ? ha_fsm_switchover_verdict(f, NULL, 0) : HA_SWITCHOVER_NONE;
        if (so == HA_SWITCHOVER_NOT_DUE)
                min_wake(&d->wake_at, f->dcs.failover.scheduled_at);
        if (f->restart.scheduled && f->restart.scheduled_at > f->now)
                min_wake(&d->wake_at, f->restart.scheduled_at);
        if (d->tilt_until)
                min_wake(&d->wake_at, d->tilt_until);
        /* A leaderless quorum cluster waits for voters to detach (ours and theirs): look again soon, not
         * a whole loop_wait later. */
        if (unlocked(f) && !paused(f) && f->dcs.sync.quorum > 0 && d->action == HA_ACTION_FOLLOW)
                min_wake(&d->wake_at, f->now + MIN(HA_QUORUM_RECHECK_USEC, c->loop_wait));
}

static bool facts_valid(const HaFacts *f) {
        if (isempty(f->node.name) || f->dcs.n_members > HA_MEMBERS_MAX ||
            f->dcs.sync.n_standbys > HA_SYNC_MAX)
                return false;
        if (f->role < 0 || f->role >= _HA_ROLE_MAX)
                return false;
        if (f->pg.state < 0 || f->pg.state >= _HA_PG_STATE_MAX || f->pg.data_dir < 0 ||
            f->pg.data_dir >= _HA_DATA_DIR_MAX || f->job.running < 0 || f->job.running >= _HA_JOB_MAX)
                return false;
        return true;
}

int ha_fsm_decide(const HaFacts *f, HaDecision *ret) {
        unsigned bit;

        if (!f || !ret || !facts_valid(f))
                return -EINVAL;

        bit = 1u << f->role;
        for (size_t i = 0; i < N_ROWS; i++) {
                const HaFsmRow *row = &ha_fsm_table[i];

                if (!(row->info.roles & bit) || !row->pred(f))
                        continue;

                *ret = (HaDecision){
                        .action = row->info.action,
                        .next_role = row->info.next_role == KEEP ? f->role : row->info.next_role,
                        .flags = row->info.flags,
                        .row = i,
                        .comment = row->info.comment,
                };
                fill_target(f, ret);
                housekeeping(f, ret);
                /* Patroni says why first, then "... because i am not the healthiest node". */
                if ((row->pred == p_unlocked_not_healthiest || row->pred == p_unlocked_primary) &&
                    ha_fsm_is_healthiest_node(f, ret->reason, sizeof ret->reason))
                        ret->reason[0] = '\0';
                expand(f, ret, row->info.message, ret->message, sizeof ret->message);
                expand(f,
                       ret,
                       row->info.message_failed ?: row->info.message,
                       ret->message_failed,
                       sizeof ret->message_failed);
                return 0;
        }

        ha_fsm_fence_decision(f, ret);
        return -ENOENT;
}

void ha_fsm_fence_decision(const HaFacts *f, HaDecision *ret) {
        /* No row: a bug in the table. Fence: never promote, leave the lock alone, keep the role; a writable
         * primary without a valid lease is still demoted (the one thing that is always safe). */
        *ret = (HaDecision){
                .action = HA_ACTION_FENCE,
                .next_role = f->role,
                .row = (size_t)-1,
                .comment = COMMENT_FENCE,
        };
        if (pg_maybe_primary(f) && (f->lease.deadline == 0 || f->now >= f->lease.deadline || !owns_lock(f)))
                ret->action = HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK;
        housekeeping(f, ret);
        ret->flags = HA_FLAG_DISABLE_WATCHDOG;
        (void)snprintf(
                ret->message,
                sizeof ret->message,
                "BUG: no HA rule matched in role %s (postgres %s%s): fencing",
                ha_role_to_string(f->role),
                ha_pg_state_to_string(f->pg.state),
                pg_primary(f) ? ", primary" : "");
        (void)snprintf(ret->message_failed, sizeof ret->message_failed, "%s", ret->message);
}

/* ---- exporters ---------------------------------------------------------------------------------------- */

static void roles_to_string(unsigned roles, char *buf, size_t size) {
        size_t pos = 0;

        buf[0] = '\0';
        if (roles == HA_ROLES_ALL) {
                append(buf, size, &pos, "*", 1);
                return;
        }
        for (int r = 0; r < _HA_ROLE_MAX; r++) {
                const char *s = ha_role_to_string(r);
                if (!(roles & (1u << r)))
                        continue;
                if (pos > 0)
                        append(buf, size, &pos, ",", 1);
                append(buf, size, &pos, s, strlen(s));
        }
}

static void flags_to_string(unsigned flags, char *buf, size_t size) {
        size_t pos = 0;

        buf[0] = '\0';
        for (unsigned i = 0; i < 32; i++) {
                const char *s = ha_flag_to_string(1u << i);
                if (!(flags & (1u << i)) || !s)
                        continue;
                if (pos > 0)
                        append(buf, size, &pos, ",", 1);
                append(buf, size, &pos, s, strlen(s));
        }
        if (pos == 0)
                append(buf, size, &pos, "-", 1);
}

static const char *next_role_string(const HaFsmRowInfo *r) {
        return r->next_role == KEEP ? "=" : ha_role_to_string(r->next_role);
}

void ha_fsm_dump(FILE *f) {
        fprintf(f, "# pgha HA decision table: first match wins; '=' keeps the role.\n");
        fprintf(f,
                "# row | roles | predicate | next role | action | flags | comment | message | message on "
                "failure\n");
        for (size_t i = 0; i < N_ROWS; i++) {
                const HaFsmRowInfo *r = &ha_fsm_table[i].info;
                char roles[64], flags[256];

                roles_to_string(r->roles, roles, sizeof roles);
                flags_to_string(r->flags, flags, sizeof flags);
                fprintf(f,
                        "%zu | %s | %s | %s | %s | %s | %s | %s | %s\n",
                        i,
                        roles,
                        r->predicate,
                        next_role_string(r),
                        ha_action_to_string(r->action),
                        flags,
                        r->comment,
                        r->message,
                        r->message_failed ?: "-");
        }
}

void ha_fsm_print_dot(FILE *f) {
        fprintf(f, "digraph pgha_ha_fsm {\n");
        fprintf(f, "        rankdir=LR;\n        node [shape=box, style=rounded];\n");
        for (int r = 0; r < _HA_ROLE_MAX; r++)
                fprintf(f, "        \"%s\";\n", ha_role_to_string(r));
        for (size_t i = 0; i < N_ROWS; i++) {
                const HaFsmRowInfo *row = &ha_fsm_table[i].info;

                if (row->next_role == KEEP)
                        continue;
                for (int r = 0; r < _HA_ROLE_MAX; r++) {
                        if (!(row->roles & (1u << r)) || r == (int)row->next_role)
                                continue;
                        fprintf(f,
                                "        \"%s\" -> \"%s\" [label=\"#%zu %s\\n%s\"];\n",
                                ha_role_to_string(r),
                                ha_role_to_string(row->next_role),
                                i,
                                ha_action_to_string(row->action),
                                row->comment);
                }
        }
        fprintf(f, "}\n");
}

static void md_escape(FILE *f, const char *s) {
        for (; *s; s++) {
                if (*s == '|')
                        fputs("\\|", f);
                else
                        fputc(*s, f);
        }
}

void ha_fsm_print_markdown(FILE *f) {
        fprintf(f,
                "<!-- Generated by `build/pgha-test-hafsm markdown` from src/daemon/ha/ha_fsm.c; do not "
                "edit. "
                "-->\n"
                "# HA decision table\n\n"
                "`ha_fsm_decide()` walks these rows in order; the first row whose roles contain the node's\n"
                "current role and whose predicate holds decides the tick (next role `=` keeps the role). "
                "No\n"
                "matching row is a bug: the decision is `fence` (never promote, leader key untouched).\n"
                "See docs/ha.md for the facts, the actions and the safety invariants.\n\n"
                "## Role graph\n\n"
                "Edges are the rows that change the role (self-loops omitted). Render with `dot -Tsvg`.\n\n"
                "```dot\n");
        ha_fsm_print_dot(f);
        fprintf(f,
                "```\n\n## Rows\n\n"
                "| # | roles | predicate | next | action | flags | comment | message |\n"
                "|---|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < N_ROWS; i++) {
                const HaFsmRowInfo *r = &ha_fsm_table[i].info;
                char roles[64], flags[256];

                roles_to_string(r->roles, roles, sizeof roles);
                flags_to_string(r->flags, flags, sizeof flags);
                fprintf(f,
                        "| %zu | %s | `%s` | %s | `%s` | %s | ",
                        i,
                        roles,
                        r->predicate,
                        next_role_string(r),
                        ha_action_to_string(r->action),
                        flags);
                md_escape(f, r->comment);
                fputs(" | ", f);
                md_escape(f, r->message);
                fputs(" |\n", f);
        }
        fprintf(f, "\n## Actions\n\n");
        for (int a = 0; a < _HA_ACTION_MAX; a++) {
                size_t n = 0;
                for (size_t i = 0; i < N_ROWS; i++)
                        n += ha_fsm_table[i].info.action == (HaAction)a;
                fprintf(f, "- `%s`: %zu row%s\n", ha_action_to_string(a), n, n == 1 ? "" : "s");
        }
}
