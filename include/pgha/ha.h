/* SPDX-License-Identifier: MIT */
/*
 * The HA engine: every tick gathers facts (one range read of the cluster prefix, the local PostgreSQL
 * probe, pg_controldata while PostgreSQL is down, the members' GET /patroni when the decision may need
 * them), asks ha_fsm_decide() what to do, and acts: etcd writes, PostgreSQL jobs, the watchdog, the
 * member key, the REST snapshot. It owns every other module of pghad (etcd client, DCS view, pgmon,
 * REST server, watchdog, callbacks) on the Manager's event loop. See docs/ha.md.
 *
 * Safety: while we hold the leader key a timer at the highest priority fires at the local lease
 * deadline (last lease renewal start + ttl - margin) and stops a primary at once (SIGQUIT), before any
 * other source of the loop runs, whether or not etcd ever answers again.
 */
#pragma once

#include <stdint.h>

#include <cjson/cJSON.h>

#include "pgha/dcs.h"
#include "pgha/ha_fsm.h"
#include "pgha/macro.h"

typedef struct Ha Ha;
typedef struct Manager Manager;

/* ha_new - builds the engine and every module it drives from the Manager's configuration, registers
 * the reload and shutdown hooks and holds READY=1 until the first decided tick. Logs its errors. */
int ha_new(Manager *m, Ha **ret) _warn_unused_result_;
Ha *ha_free(Ha *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ha *, ha_free);

/* The lease margin subtracted from last renewal + ttl for the local deadline. */
#define HA_LEASE_MARGIN (500 * USEC_PER_MSEC)

/* ==== Pure helpers (exposed for unit tests) ==== */

/* The inputs of our member key value (Patroni §1.1.1). */
typedef struct HaMemberKeyInfo {
        const char *conn_url;
        const char *api_url;
        const char *state;
        const char *role;
        const char *version;
        const cJSON *tags; /* Patroni's filtered tags, NULL or {} to omit */
        bool checkpoint_pending;
        bool pending_restart;
        bool has_xlog;
        uint64_t xlog_location;
        uint32_t timeline;              /* 0: omitted */
        const cJSON *scheduled_restart; /* POST /restart with a schedule; NULL to omit */
        bool pause;
} HaMemberKeyInfo;

/* ha_member_key_json - the members/<name> value as a JSON object in Patroni's field order. */
int ha_member_key_json(const HaMemberKeyInfo *i, cJSON **ret) _warn_unused_result_;

/* The reply of a member's GET /patroni, as the facts need it. */
typedef struct HaMemberApi {
        HaFetch fetch;
        bool in_recovery;
        bool has_wal_position;
        uint64_t wal_position;
        uint32_t timeline;
        bool nofailover;
        bool watchdog_failed;
        bool upstream_detached; /* "upstream_detached": true (quorum vote, docs/ha.md) */
} HaMemberApi;

/* ha_member_api_parse - fills *ret from a GET /patroni body (fetch = OK), -EINVAL when unusable. */
int ha_member_api_parse(const char *body, size_t size, HaMemberApi *ret);

/* ha_facts_fill_dcs - fills f->dcs from a cluster view (pointers borrowed from c and api; api has
 * c->n_members entries or is NULL). now: CLOCK_MONOTONIC, realtime_now: CLOCK_REALTIME, both µs. */
void ha_facts_fill_dcs(
        HaFacts *f, const DcsCluster *c, const HaMemberApi *api, usec_t now, usec_t realtime_now);

/* ha_divergence - the rewind check: local timeline and end-of-WAL position (end of the last checkpoint
 * record of a stopped cluster) against the leader's timeline and the cluster's `history` key. */
HaDivergence ha_divergence(uint32_t local_tl, uint64_t local_lsn, uint32_t leader_tl, const cJSON *history);

/* ha_divergence_replica - the same check for a running replica (Patroni's _check_timeline_and_lsn with
 * in_recovery): its timeline (received or replayed) and replay position against the switch point the
 * leader's history records for that timeline. UNKNOWN when the history does not record it yet. */
HaDivergence
ha_divergence_replica(uint32_t local_tl, uint64_t replay_lsn, uint32_t leader_tl, const cJSON *history);
