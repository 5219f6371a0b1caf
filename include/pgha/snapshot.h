/* SPDX-License-Identifier: MIT */
/*
 * NodeSnapshot: the in-memory picture of this node that the REST API and /metrics answer from. The HA
 * engine rewrites it at the end of every tick (and whenever a probe or a DCS read completes); the REST
 * server only reads it, so a health check never waits for etcd or PostgreSQL.
 *
 * Invariant: every field is a fact as of the moment the engine wrote it. Nothing here is refreshed by the
 * reader; freshness is expressed by deadlines on CLOCK_MONOTONIC (leader_expiry, cluster_valid_until,
 * next_run) that the reader compares with its own "now", exactly as Patroni compares _leader_expiry and
 * the cluster cache's validity with time.time() at request time.
 *
 * How the HA engine keeps the deadlines (Patroni's rules): leader_expiry = time of the last successful
 * lock acquisition/renewal + ttl, 0 as soon as the lock is released or lost; cluster_valid_until = time
 * of the last successful cluster read + ttl (and dcs_last_seen = that read's wall-clock second);
 * next_run = when the next HA cycle is due. Everything else is copied from the last probe/read.
 */
#pragma once

#include <cjson/cJSON.h>

#include "pgha/macro.h"

/* Roles as Patroni names them: the internal role (member key "role") and, derived from it, the "role"
 * of the REST status document. 3.0.2 says "master"; SNAPSHOT_ROLE_PRIMARY exists for 4.x naming and is
 * treated as "master" by every rule. */
typedef enum SnapshotRole {
        SNAPSHOT_ROLE_UNINITIALIZED,
        SNAPSHOT_ROLE_MASTER,
        SNAPSHOT_ROLE_PRIMARY,
        SNAPSHOT_ROLE_REPLICA,
        SNAPSHOT_ROLE_STANDBY_LEADER,
        SNAPSHOT_ROLE_DEMOTED,
        SNAPSHOT_ROLE_PROMOTED,
        _SNAPSHOT_ROLE_MAX,
        _SNAPSHOT_ROLE_INVALID = -EINVAL,
} SnapshotRole;

const char *snapshot_role_to_string(SnapshotRole r);
SnapshotRole snapshot_role_from_string(const char *s);

/* One row of pg_stat_replication as Patroni's status query returns it (row_to_json): NULL strings are
 * rendered as JSON null. */
typedef struct SnapshotReplication {
        char *usename;
        char *application_name;
        char *client_addr;
        char *state;
        char *sync_state;
        int sync_priority;
} SnapshotReplication;

typedef struct NodeSnapshot {
        /* Identity. */
        char *scope;
        char *name;
        char *version; /* Patroni version we claim, "3.0.2" */

        /* PostgreSQL, as the last status probe saw it. */
        char *state;       /* member-key state: "running", "stopped", "restart failed (running)", ... */
        SnapshotRole role; /* internal role (postgresql.role) */
        bool status_ok;    /* the status probe succeeded; false: document has only state and role, and a
                            * "running" state is reported as "unknown" (Patroni's failed-query path) */
        bool in_recovery;  /* pg_is_in_recovery() */
        usec_t postmaster_start_time; /* CLOCK_REALTIME µs since the epoch; 0 = unknown */
        unsigned server_version;      /* 150020; 0 = unknown (omitted) */
        uint64_t wal_location;        /* primary: pg_current_wal_lsn() as int */
        uint64_t received_location;   /* replica: receive LSN; 0 = NULL (falls back to replayed) */
        uint64_t replayed_location;   /* replica: replay LSN */
        usec_t replayed_timestamp;    /* CLOCK_REALTIME µs of pg_last_xact_replay_timestamp(); 0 = NULL */
        bool replay_paused;           /* pg_is_wal_replay_paused() */
        unsigned timeline;            /* 0 = unknown: a replica then reports "timeline": null */
        SnapshotReplication *replication;
        size_t n_replication;
        char *database_system_identifier; /* NULL = unknown (omitted) */
        bool pending_restart;

        /* HA state. */
        usec_t leader_expiry; /* CLOCK_MONOTONIC: we hold the lock until then (Ha.is_leader()); 0 = never */
        usec_t cluster_valid_until; /* CLOCK_MONOTONIC: the cached DCS view is usable until then; 0 = none */
        usec_t next_run;            /* CLOCK_MONOTONIC: when the HA loop is due next (for /liveness) */
        usec_t ttl;                 /* DCS ttl, for /liveness thresholds */
        uint64_t dcs_last_seen;     /* CLOCK_REALTIME epoch seconds of the last successful DCS read */
        char *leader_name;          /* leader key value in the cached view; NULL = cluster unlocked */
        uint64_t leader_optime;     /* cluster.last_lsn: the status key's optime; 0 = unknown */
        bool synchronous_mode;      /* cluster config synchronous_mode */
        bool quorum_mode;           /* synchronous_mode: quorum (Patroni 4) */
        bool sync_member;           /* this node is listed in the sync key */
        bool upstream_detached;     /* quorum vote: replica detached from the former leader (docs/ha.md) */
        bool standby_cluster;       /* config has a standby_cluster section (host/port/restore_command) */
        bool paused;                /* maintenance mode (config "pause") */
        bool failsafe_mode;         /* config failsafe_mode is on */
        bool failsafe_active;       /* Ha.failsafe_is_active() */
        bool watchdog_failed;       /* watchdog required but not healthy */
        bool disable_sync;          /* temporarily leaving sync duty: effective tags get nosync: true */

        /* Owned JSON pieces, NULL when unknown. */
        cJSON *tags;              /* configured tags, Patroni's filtered view (falsy builtin tags dropped) */
        cJSON *scheduled_restart; /* {"schedule": ISO, ...filters}, without postmaster_start_time */
        cJSON *cluster;           /* GET /cluster document (cluster_as_json of the cached view) */
        cJSON *history;           /* history key as a JSON array */
        cJSON *config;   /* config key as a JSON object; NULL = no config key (GET /config → 502) */
        cJSON *failsafe; /* last failsafe key seen; NULL → GET /failsafe 502 */
} NodeSnapshot;

/* snapshot_done - frees everything the snapshot owns and zeroes it. */
void snapshot_done(NodeSnapshot *s);

/* snapshot_set_tags_from_config - stores Patroni's view of the configured tags: a copy of config_tags
 * without clonefrom/nofailover/noloadbalance/nosync when those are falsy. */
int snapshot_set_tags_from_config(NodeSnapshot *s, const cJSON *config_tags);

/* Predicates evaluated at `now` (CLOCK_MONOTONIC µs). */
bool snapshot_is_leader(const NodeSnapshot *s, usec_t now);
bool snapshot_has_cluster(const NodeSnapshot *s, usec_t now);
bool snapshot_is_sync_standby(const NodeSnapshot *s, usec_t now);
/* Quorum mode: a replica the sync key names (Patroni 4's is_quorum_standby). */
bool snapshot_is_quorum_standby(const NodeSnapshot *s, usec_t now);
bool snapshot_noloadbalance(const NodeSnapshot *s);
bool snapshot_is_primary_role(SnapshotRole r);

/* snapshot_rest_role - the status document's "role". */
const char *snapshot_rest_role(const NodeSnapshot *s);
/* snapshot_rest_state - the status document's "state" ("unknown" when running but the probe failed). */
const char *snapshot_rest_state(const NodeSnapshot *s);

/* snapshot_status_json - builds Patroni's status document (GET /patroni and every health-check GET)
 * with its field order, types and omissions. now is CLOCK_MONOTONIC µs (cluster validity). */
int snapshot_status_json(const NodeSnapshot *s, usec_t now, cJSON **ret);

/* snapshot_load_json - fills *ret from a test/debug description (docs/rest-api.md, "Snapshot files");
 * relative deadlines ("leader_expires_in", "cluster_valid_for", "next_run_in") are taken from now
 * (CLOCK_MONOTONIC µs). Unknown keys are an error naming the key. Non-logging. */
int snapshot_load_json(const cJSON *j, usec_t now, NodeSnapshot *ret, char **reterr_message);

/* format_python_datetime - str() of a UTC datetime: "2026-11-26 20:06:40.220474+00:00" (no fraction when
 * the microseconds are 0). */
char *format_python_datetime(usec_t realtime, char buf[static 64]);

/* format_python_float - repr() of a Python float: shortest round-trip digits, ".0" for integral values,
 * exponent form outside 1e-4..1e16. */
char *format_python_float(double d, char buf[static 40]);
