/* SPDX-License-Identifier: MIT */
/*
 * The HA decision function: facts in, decision out. ha_fsm_decide() encodes Patroni 3.0.2's
 * `_run_cycle` decision list (patroni-compat.md §2) as one ordered table of rows
 * { current roles, predicate over HaFacts, next role, action, comment }; the first matching row wins.
 * It is pure: no clock reads (HaFacts.now and every deadline are monotonic microseconds gathered by the
 * caller), no I/O, no allocation. Names inside HaFacts are borrowed pointers that must stay valid for
 * the duration of one call; the decision copies what it keeps (target name, message).
 *
 * Safety invariant (design.md §Safety 1): a node whose PostgreSQL runs as a writable primary after its
 * local lease deadline has passed is demoted by the very first rows of the table, before TILT, before
 * shutdown, before anything else. No matching row is a bug: the decision is HA_ACTION_FENCE, which never
 * promotes and never touches the leader key.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgha/macro.h"

/* Bounds of the fixed-size arrays in HaFacts / HaDecision. The gather side truncates (and logs) beyond. */
#define HA_MEMBERS_MAX 1024 /* as many as the DCS parses (DCS_MEMBERS_MAX): no member is left out */
#define HA_SYNC_MAX    64
#define HA_NAME_MAX    128
#define HA_MESSAGE_MAX 384
/* A leaderless quorum cluster re-decides this often while voters detach (capped by loop_wait). */
#define HA_QUORUM_RECHECK_USEC (200 * USEC_PER_MSEC)

/* The node's HA role: the row dimension of the table. The ha module keeps it between ticks, sets it at
 * start-up from the data directory and PostgreSQL (empty → uninitialized, running primary → master,
 * running replica → replica, stopped without standby.signal → demoted, stopped with it → replica) and
 * changes it to HaDecision.next_role only when the decided action succeeded. The strings are the member
 * key's `role` values of Patroni 3.0.2 (from_string also accepts 4.x's "primary"). */
typedef enum HaRole {
        HA_ROLE_UNINITIALIZED,
        HA_ROLE_REPLICA,
        HA_ROLE_PRIMARY,
        HA_ROLE_DEMOTED,
        _HA_ROLE_MAX,
        _HA_ROLE_INVALID = -EINVAL,
} HaRole;

/* What the ha module must do this tick. Each is one job or one etcd write; see docs/ha.md. */
typedef enum HaAction {
        HA_ACTION_NOOP,                     /* steady state; only write the member key */
        HA_ACTION_WAIT,                     /* observe only: TILT, job in progress, nothing safe to do */
        HA_ACTION_FENCE,                    /* no row matched: never promote, leader key untouched */
        HA_ACTION_EXIT,                     /* fatal configuration/cluster mismatch: stop pghad, exit 1 */
        HA_ACTION_BOOTSTRAP_RACE,           /* create-only txn on `initialize` with "" */
        HA_ACTION_BOOTSTRAP_INITDB,         /* we own `initialize`: run initdb + start + post_bootstrap */
        HA_ACTION_BOOTSTRAP_FINISH,         /* write initialize=sysid and config, take the leader key */
        HA_ACTION_BOOTSTRAP_CANCEL,         /* delete `initialize`, stop, move data dir to <dir>.failed */
        HA_ACTION_WAIT_FOR_BOOTSTRAP,       /* someone else bootstraps (or we may not) */
        HA_ACTION_CLONE_FROM_LEADER,        /* pg_basebackup from target (leader or clonefrom member) */
        HA_ACTION_ACQUIRE_LOCK,             /* create-only txn on `leader`; postgres already primary */
        HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE, /* create-only txn on `leader`, then promote */
        HA_ACTION_PROMOTE,                  /* we hold the lock, postgres is a replica: promote */
        HA_ACTION_RENEW_LOCK,               /* value-guarded leader refresh, status/optime write */
        HA_ACTION_STAY_PRIMARY,             /* keep running as primary without touching the lock */
        HA_ACTION_DEMOTE_GRACEFUL,          /* CHECKPOINT, fast stop, release lock, restart as replica */
        HA_ACTION_DEMOTE_IMMEDIATE,         /* immediate stop, release lock, restart as replica */
        HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK,  /* immediate stop, lock untouched (it is not ours) */
        HA_ACTION_DEMOTE_OFFLINE,           /* fast stop, lock untouched, no upstream (DCS unreachable) */
        HA_ACTION_RELEASE_LOCK,             /* value-guarded delete of `leader`; postgres untouched */
        HA_ACTION_FOLLOW,                   /* make postgres a replica of target (conninfo/reload/restart) */
        HA_ACTION_START_POSTGRES,           /* start postgres in recovery, following target if any */
        HA_ACTION_STOP_POSTGRES,            /* immediate stop (data directory vanished) */
        HA_ACTION_RECOVER_CRASHED,          /* single-user crash recovery, then start as replica */
        HA_ACTION_REWIND,                   /* pg_rewind from target, then start as its replica */
        HA_ACTION_REINIT,                   /* wipe data directory, clone from target */
        HA_ACTION_RESTART,                  /* restart postgres (manual or scheduled restart) */
        HA_ACTION_CANCEL_JOB,               /* cancel the running job (e.g. promote after losing the lock) */
        HA_ACTION_SHUTDOWN_STOP,            /* shutdown: stop postgres fast; release lock if held */
        HA_ACTION_SHUTDOWN_DETACH,          /* shutdown while paused: leave postgres and the lock alone */
        _HA_ACTION_MAX,
        _HA_ACTION_INVALID = -EINVAL,
} HaAction;

/* Local and remote PostgreSQL state as the gather phase sees it (member key `state` values map onto it:
 * "running" → RUNNING, "starting"/"restarting" → STARTING, "crashed"/"start failed" → CRASHED,
 * "unknown" → UNKNOWN, anything else → STOPPED). */
typedef enum HaPgState {
        HA_PG_STOPPED,
        HA_PG_STARTING, /* postmaster up, rejecting connections (pg_isready "rejecting") */
        HA_PG_RUNNING,
        HA_PG_CRASHED, /* postmaster gone although we did not stop it */
        HA_PG_UNKNOWN, /* postmaster alive but the status query failed */
        _HA_PG_STATE_MAX,
        _HA_PG_STATE_INVALID = -EINVAL,
} HaPgState;

typedef enum HaDataDir {
        HA_DATA_DIR_VALID,   /* global/pg_control present, sysid readable */
        HA_DATA_DIR_EMPTY,   /* missing or only dot-files / lost+found */
        HA_DATA_DIR_INVALID, /* not empty, but no valid system identifier */
        HA_DATA_DIR_INACCESSIBLE,
        _HA_DATA_DIR_MAX,
        _HA_DATA_DIR_INVALID = -EINVAL,
} HaDataDir;

/* The `initialize` key. */
typedef enum HaInitialize {
        HA_INITIALIZE_ABSENT, /* never initialised */
        HA_INITIALIZE_EMPTY,  /* "": a bootstrap is running somewhere */
        HA_INITIALIZE_SYSID,  /* a valid sysid (all digits, ≥ 10 of them) */
        _HA_INITIALIZE_MAX,
        _HA_INITIALIZE_INVALID = -EINVAL,
} HaInitialize;

/* Result of the rewind check (§2.11) the gather phase runs against the leader. */
typedef enum HaDivergence {
        HA_DIVERGENCE_UNKNOWN, /* not checked (no leader, leader unreachable, check pending) */
        HA_DIVERGENCE_NONE,
        HA_DIVERGENCE_DIVERGED,
        _HA_DIVERGENCE_MAX,
        _HA_DIVERGENCE_INVALID = -EINVAL,
} HaDivergence;

typedef enum HaWatchdogMode {
        HA_WATCHDOG_OFF,
        HA_WATCHDOG_AUTOMATIC,
        HA_WATCHDOG_REQUIRED,
        _HA_WATCHDOG_MODE_MAX,
        _HA_WATCHDOG_MODE_INVALID = -EINVAL,
} HaWatchdogMode;

/* Jobs (the one "async executor" slot of Patroni). */
typedef enum HaJob {
        HA_JOB_NONE,
        HA_JOB_BOOTSTRAP,
        HA_JOB_CLONE,
        HA_JOB_PROMOTE,
        HA_JOB_DEMOTE,
        HA_JOB_START,
        HA_JOB_RESTART,
        HA_JOB_CRASH_RECOVERY,
        HA_JOB_REWIND,
        HA_JOB_REINIT,
        HA_JOB_STOP,
        HA_JOB_RELOAD, /* a reload of the configuration (new parameters or upstream), postgres keeps running
                        */
        _HA_JOB_MAX,
        _HA_JOB_INVALID = -EINVAL,
} HaJob;

/* Whether the gather phase fetched a member's GET /patroni this tick. */
typedef enum HaFetch {
        HA_FETCH_NOT_ASKED, /* treated like FAILED: the member is not a usable candidate */
        HA_FETCH_OK,
        HA_FETCH_FAILED, /* timeout (2 s), connection refused, bad reply */
        _HA_FETCH_MAX,
        _HA_FETCH_INVALID = -EINVAL,
} HaFetch;

typedef struct HaTags {
        bool nofailover;
        bool nosync;
        bool noloadbalance;
        bool clonefrom;
        const char *replicatefrom; /* NULL when unset */
} HaTags;

typedef struct HaMember {
        const char *name;
        bool has_api_url;
        HaTags tags;     /* from the member key */
        HaPgState state; /* member key `state` */
        HaRole role;     /* member key `role` (HA_ROLE_PRIMARY for "master"/"primary") */
        uint64_t xlog_location;
        uint32_t timeline;
        /* GET <api_url> (/patroni), fetched by the gather phase when the table may need it: no leader, a
         * failover key exists, or we are the leader and may hand over. */
        struct {
                HaFetch fetch;
                bool in_recovery; /* false: the reply shows a primary (xlog.location set) */
                bool has_wal_position;
                uint64_t wal_position; /* primary: xlog.location; replica: max(received, replayed) */
                uint32_t timeline;
                bool nofailover;
                bool watchdog_failed;
                /* its PostgreSQL cannot stream from anyone (primary_conninfo cleared and no walreceiver
                 * seen since): the WAL position it reported is final (quorum vote, docs/ha.md) */
                bool upstream_detached;
        } api;
} HaMember;

typedef struct HaConfig {
        usec_t ttl, loop_wait, retry_timeout;
        uint64_t maximum_lag_on_failover; /* bytes */
        bool check_timeline;
        bool synchronous_mode, synchronous_mode_strict;
        unsigned synchronous_node_count;
        bool failsafe_mode;
        bool pause;
        usec_t primary_start_timeout, primary_stop_timeout;
        bool use_pg_rewind;
        bool remove_data_directory_on_rewind_failure;
        bool remove_data_directory_on_diverged_timelines;
        bool has_bootstrap_section; /* `bootstrap` configured: this node may run initdb */
} HaConfig;

typedef struct HaFacts {
        usec_t now;        /* CLOCK_MONOTONIC at the start of this tick */
        usec_t last_tick;  /* `now` of the previous decided tick; 0 on the first tick */
        usec_t tilt_until; /* TILT in force while now < tilt_until (0: none); from HaDecision.tilt_until */

        HaRole role; /* current role (see HaRole) */

        /* This node. */
        struct {
                const char *name;
                HaTags tags;
                HaWatchdogMode watchdog_mode;
                bool watchdog_usable; /* device opens, ttl - safety_margin >= loop_wait */
        } node;

        /* Local PostgreSQL. */
        struct {
                HaPgState state;
                usec_t state_since; /* monotonic time the state was entered (start timeout) */
                bool is_primary;    /* running and pg_is_in_recovery() = false */
                uint32_t timeline;
                uint64_t wal_received, wal_replayed, wal_write;
                bool has_sysid;
                uint64_t sysid;
                HaDataDir data_dir;
                bool unclean_shutdown; /* pg_control: in production / shutting down / in crash recovery */
                bool pending_restart;
                uint64_t postmaster_start_time; /* opaque, compared for equality only */
                HaDivergence divergence;
                bool rewind_usable; /* pg_rewind runs and wal_log_hints=on or data checksums */
                bool rewind_failed; /* the last pg_rewind failed */
                /* a replica whose primary_conninfo we cleared, with no walreceiver in two probes
                 * since: it receives no more WAL from the former leader (quorum vote) */
                bool upstream_detached;
        } pg;

        /* Our own lease as seen by the lease keep-alive timer. */
        struct {
                usec_t deadline;   /* "I may act as primary until"; 0: we hold no lease for `leader` */
                bool renew_failed; /* the last refresh of a leader key we own failed */
        } lease;

        /* The DCS (etcd) view read this tick. */
        struct {
                bool reachable;
                usec_t unreachable_since;
                HaInitialize initialize;
                uint64_t initialize_sysid;
                bool bootstrap_won; /* we created `initialize` (kept by ha until bootstrap ends) */
                struct {
                        const char *name;        /* NULL: cluster unlocked */
                        uint64_t optime;         /* `status.optime` (or optime/leader) */
                        bool checkpoint_pending; /* its member key has checkpoint_after_promote: false */
                } leader;
                HaMember members[HA_MEMBERS_MAX]; /* current members ∪ last view that had a leader */
                size_t n_members;
                HaConfig config;
                struct {
                        bool present; /* leader or member non-empty */
                        const char *leader, *member;
                        bool has_scheduled_at;
                        usec_t scheduled_at; /* monotonic: ha converts the ISO time against now */
                } failover;
                struct {
                        bool present;
                        const char *leader;
                        const char *standbys[HA_SYNC_MAX];
                        size_t n_standbys;
                        /* Patroni 4's "quorum": a standby promotes only after seeing this many other
                         * standbys of the key, none ahead of it; 0 when absent. */
                        unsigned quorum;
                } sync;
                uint32_t history_timeline; /* cluster timeline derived from `history` (0: key missing) */
                struct {
                        bool present; /* a non-empty object */
                        bool contains_us;
                        bool members_accepted; /* every other member answered POST /failsafe "Accepted" */
                } failsafe;
        } dcs;

        /* The running job and the one that just ended (reported for exactly one tick). */
        struct {
                HaJob running;
                usec_t since;
                HaJob last;
                bool last_failed;
        } job;

        /* Requests from signals and the REST API. */
        bool shutdown_requested;
        bool reinit_requested;
        struct {
                bool requested; /* POST /restart without schedule */
                bool scheduled;
                usec_t scheduled_at;
                uint64_t postmaster_start_time; /* when the restart was scheduled */
                bool filters_match; /* role / postgres_version / restart_pending filters all pass */
        } restart;
} HaFacts;

/* Flags on a decision: side effects beside the main action. */
enum {
        HA_FLAG_CLEAR_FAILOVER = 1 << 0,   /* put `failover` = {} */
        HA_FLAG_PROCESS_SYNC = 1 << 1,     /* leader: §2.10 (choose sync standbys, CAS or delete `sync`) */
        HA_FLAG_CLAIM_SYNC = 1 << 2,       /* before promoting: CAS `sync` = {leader: me, null} */
        HA_FLAG_WRITE_STATUS = 1 << 3,     /* leader: `status` (optime), `failsafe` in failsafe mode */
        HA_FLAG_UPDATE_HISTORY = 1 << 4,   /* leader: append the timeline switch to `history` */
        HA_FLAG_WRITE_INITIALIZE = 1 << 5, /* put `initialize` = our sysid */
        HA_FLAG_ARM_WATCHDOG = 1 << 6,     /* activate (if mode is not off) and keep alive */
        HA_FLAG_DISABLE_WATCHDOG = 1 << 7,
        HA_FLAG_EXTEND_LEASE = 1 << 8, /* failsafe: act as leader for another ttl */
        HA_FLAG_CANCEL_JOB = 1 << 9,
        HA_FLAG_CLEAR_RESTART = 1 << 10, /* drop the scheduled/requested restart */
        HA_FLAG_CLEAR_REINIT = 1 << 11,
        HA_FLAG_RELEASE_LOCK = 1 << 12, /* after the action, value-guarded delete of `leader` */
};

typedef struct HaDecision {
        HaAction action;
        HaRole next_role;
        HaRole advertise_role; /* member key `role` to write this tick */
        unsigned flags;        /* HA_FLAG_* */
        bool write_member_key;
        char target[HA_NAME_MAX];            /* FOLLOW/START/CLONE/REWIND/REINIT source; "" for none */
        size_t row;                          /* index of the matching row, (size_t) -1 for FENCE */
        const char *comment;                 /* the row's comment constant (static storage) */
        usec_t tilt_until;                   /* store into HaFacts.tilt_until for the next tick */
        usec_t wake_at;                      /* run the next tick no later than this (0: loop_wait) */
        char reason[HA_MESSAGE_MAX];         /* logged before message: why this node lost the leader race
                                              * ("My wal position exceeds maximum replication lag"), or "" */
        char message[HA_MESSAGE_MAX];        /* the cycle's INFO line (Patroni wording, "PAUSE: " prefix) */
        char message_failed[HA_MESSAGE_MAX]; /* log this instead when the action's etcd write fails */
} HaDecision;

/* Decides. Returns 0 (a row matched), -ENOENT when no row matched (ret is then a FENCE decision, which
 * the caller must still apply, and log at error), or -EINVAL for facts that are not well formed (NULL
 * node name, n_members > HA_MEMBERS_MAX, ...; ret untouched). */
int ha_fsm_decide(const HaFacts *facts, HaDecision *ret);

/* The decision ha_fsm_decide() returns when no row matched (exported for tests): HA_ACTION_FENCE, or
 * DEMOTE_IMMEDIATE_NOLOCK when postgres is a writable primary without a provably valid lock. */
void ha_fsm_fence_decision(const HaFacts *facts, HaDecision *ret);

/* Leader race eligibility (§2.8, is_healthiest_node). reason (may be NULL) receives Patroni's log line
 * explaining a false answer (or why a manual failover decided it), "" otherwise. */
bool ha_fsm_is_healthiest_node(const HaFacts *facts, char *reason, size_t reason_size);

/* §2.8 is_failover_possible: is there another member (only `only`, when not NULL) that could take over?
 * cluster_lsn: 0 to compare against maximum_lag_on_failover, else the LSN a member must have reached.
 * check_sync: in synchronous mode, only members matching `sync` count. */
bool ha_fsm_is_failover_possible(
        const HaFacts *facts, const char *only, bool check_sync, uint64_t cluster_lsn);

/* The manual switchover/failover verdict for the lock holder (§2.9, leader side). */
typedef enum HaSwitchover {
        HA_SWITCHOVER_NONE,    /* no failover key (or paused while not primary): nothing to do */
        HA_SWITCHOVER_NOT_DUE, /* scheduled_at later than now: wait (decision.wake_at is set) */
        HA_SWITCHOVER_STALE,   /* scheduled more than 1.5 × loop_wait ago: clean up */
        HA_SWITCHOVER_DEMOTE,  /* demote gracefully, a healthy candidate exists */
        HA_SWITCHOVER_REJECT,  /* not applicable or nobody healthy: clean up the key */
        _HA_SWITCHOVER_MAX,
        _HA_SWITCHOVER_INVALID = -EINVAL,
} HaSwitchover;

HaSwitchover ha_fsm_switchover_verdict(const HaFacts *facts, char *reason, size_t reason_size);

/* §2.9 replica side (manual_failover_process_no_leader): 1 eligible, 0 not, -EAGAIN undecided. */
int ha_fsm_manual_failover_no_leader(const HaFacts *facts, char *reason, size_t reason_size);

/* True when PostgreSQL runs as a writable primary and our local lease deadline has passed. */
bool ha_fsm_lease_expired(const HaFacts *facts);

/* TILT: the gap between two ticks above which one TTL is spent observing only. */
usec_t ha_fsm_tilt_threshold(const HaConfig *config);

/* Quorum commit: how many other standbys of the sync key (not its leader) answered /patroni as replicas
 * with a WAL position not ahead of ours. */
unsigned ha_fsm_quorum_votes(const HaFacts *facts);

/* Does `name` match the sync key (its leader or one of its standbys)? */
bool ha_fsm_sync_matches(const HaFacts *facts, const char *name);

/* ha_fsm_restart_mismatch - Patroni's restart_matches(): the filters of a restart request (want_role
 * "master", "primary" or "replica", NULL for any; want_version as an int like 150002, 0 for any;
 * want_pending from restart_pending) against this node's member role, server version and
 * pending_restart flag. Returns NULL when the restart may go ahead, else the reason in Patroni's words
 * ("host role mismatch", "postgres version mismatch", "pending restart flag is not set"). */
const char *ha_fsm_restart_mismatch(
        const char *want_role,
        unsigned want_version,
        bool want_pending,
        const char *role,
        unsigned server_version,
        bool pending_restart);

const char *ha_role_to_string(HaRole r);
HaRole ha_role_from_string(const char *s);
const char *ha_action_to_string(HaAction a);
HaAction ha_action_from_string(const char *s);
const char *ha_pg_state_to_string(HaPgState s);
HaPgState ha_pg_state_from_string(const char *s);
const char *ha_job_to_string(HaJob j);
HaJob ha_job_from_string(const char *s);
const char *ha_switchover_to_string(HaSwitchover s);

/* Introspection of the table, for the tests and the exporters. */
typedef struct HaFsmRowInfo {
        unsigned roles;        /* bit (1 << HaRole) per matching role */
        const char *predicate; /* the predicate's name */
        HaRole next_role;      /* _HA_ROLE_INVALID: unchanged */
        HaAction action;
        unsigned flags;
        const char *comment;
        const char *message;        /* template, see ha_fsm.c: {me} {leader} {target} {job} ... */
        const char *message_failed; /* template used when the action's etcd write fails, or NULL */
} HaFsmRowInfo;

#define HA_ROLES_ALL ((1u << _HA_ROLE_MAX) - 1)

/* Number of rows, excluding the sentinel. */
size_t ha_fsm_n_rows(void);
/* Row i (0 <= i < ha_fsm_n_rows()), or NULL. */
const HaFsmRowInfo *ha_fsm_row(size_t i);
const char *ha_flag_to_string(unsigned single_flag);

/* Prints the table, one row per line, in a stable format (tests/fixtures/ha_fsm/table.golden). */
void ha_fsm_dump(FILE *f);
/* Prints the role graph as Graphviz dot: one edge per row that changes the role. */
void ha_fsm_print_dot(FILE *f);
/* Prints docs/fsm.md: the diagram source, the table and the actions. */
void ha_fsm_print_markdown(FILE *f);
