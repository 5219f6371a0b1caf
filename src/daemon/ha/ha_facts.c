/* SPDX-License-Identifier: MIT */
/*
 * Pure helpers of the HA engine: the member key value, a member's GET /patroni reply, the DCS part of
 * HaFacts from a DcsCluster, and the rewind (divergence) check from the `history` key. No loop, no
 * clock, no logging; every pointer placed into HaFacts is borrowed from the inputs.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "pgha/ha.h"
#include "pgha/json.h"
#include "pgha/rest.h"

/* Every member the DCS view holds fits in the facts: none is silently left out of an election. */
static_assert(HA_MEMBERS_MAX >= DCS_MEMBERS_MAX, "HaFacts must hold every parsed member");

int ha_member_key_json(const HaMemberKeyInfo *i, cJSON **ret) {
        _cleanup_(cJSON_Deletep) cJSON *o = NULL;

        if (!i || !ret || !i->state || !i->role)
                return -EINVAL;
        o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        if (json_add_string(o, "conn_url", strempty(i->conn_url)) < 0 ||
            json_add_string(o, "api_url", strempty(i->api_url)) < 0 ||
            json_add_string(o, "state", i->state) < 0 || json_add_string(o, "role", i->role) < 0 ||
            json_add_string(o, "version", strempty(i->version)) < 0)
                return -ENOMEM;
        if (i->checkpoint_pending && json_add_bool(o, "checkpoint_after_promote", false) < 0)
                return -ENOMEM;
        if (i->tags && cJSON_IsObject(i->tags) && cJSON_GetArraySize(i->tags) > 0 &&
            json_add_item(o, "tags", cJSON_Duplicate(i->tags, true)) < 0)
                return -ENOMEM;
        if (i->pending_restart && json_add_bool(o, "pending_restart", true) < 0)
                return -ENOMEM;
        if (i->has_xlog) {
                if (json_add_int64(o, "xlog_location", (int64_t)i->xlog_location) < 0)
                        return -ENOMEM;
                if (i->timeline > 0 && json_add_int64(o, "timeline", i->timeline) < 0)
                        return -ENOMEM;
        }
        if (cJSON_IsObject(i->scheduled_restart) &&
            json_add_item(o, "scheduled_restart", cJSON_Duplicate(i->scheduled_restart, true)) < 0)
                return -ENOMEM;
        if (i->pause && json_add_bool(o, "pause", true) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int ha_member_api_parse(const char *body, size_t size, HaMemberApi *ret) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const cJSON *xlog = NULL, *tags = NULL;
        HaMemberApi a = {.fetch = HA_FETCH_OK, .in_recovery = true};
        const char *role = NULL;
        uint64_t v = 0, w = 0;
        int64_t tl;
        bool b;

        if (!body || json_parse(body, size, 1024 * 1024, 32, &j) < 0 || !cJSON_IsObject(j))
                return -EINVAL;
        if (json_get_string(j, "role", &role) >= 0)
                a.in_recovery = !(streq(role, "master") || streq(role, "primary"));
        if (json_get_object(j, "xlog", &xlog) >= 0) {
                if (json_get_uint64(xlog, "location", &v) >= 0) {
                        a.in_recovery = false;
                        a.has_wal_position = true;
                        a.wal_position = v;
                } else {
                        bool has_r = json_get_uint64(xlog, "received_location", &v) >= 0;
                        bool has_p = json_get_uint64(xlog, "replayed_location", &w) >= 0;
                        if (has_r || has_p) {
                                a.has_wal_position = true;
                                a.wal_position = MAX(has_r ? v : 0, has_p ? w : 0);
                        }
                }
        }
        if (json_get_int64(j, "timeline", &tl) >= 0 && tl > 0 && tl <= UINT32_MAX)
                a.timeline = (uint32_t)tl;
        if (json_get_object(j, "tags", &tags) >= 0 && json_get_bool(tags, "nofailover", &b) >= 0)
                a.nofailover = b;
        if (json_get_bool(j, "watchdog_failed", &b) >= 0)
                a.watchdog_failed = b;
        if (json_get_bool(j, "upstream_detached", &b) >= 0)
                a.upstream_detached = b;
        *ret = a;
        return 0;
}

static void tags_from_json(const cJSON *tags, HaTags *ret) {
        const char *s = NULL;
        bool b;

        *ret = (HaTags){};
        if (!tags)
                return;
        ret->nofailover = json_get_bool(tags, "nofailover", &b) >= 0 && b;
        ret->nosync = json_get_bool(tags, "nosync", &b) >= 0 && b;
        ret->noloadbalance = json_get_bool(tags, "noloadbalance", &b) >= 0 && b;
        ret->clonefrom = json_get_bool(tags, "clonefrom", &b) >= 0 && b;
        if (json_get_string(tags, "replicatefrom", &s) >= 0 && !isempty(s))
                ret->replicatefrom = s;
}

void ha_facts_fill_dcs(
        HaFacts *f, const DcsCluster *c, const HaMemberApi *api, usec_t now, usec_t realtime_now) {
        bool bootstrap_won = f->dcs.bootstrap_won;
        HaConfig config = f->dcs.config;
        usec_t since = f->dcs.unreachable_since;

        memset(&f->dcs, 0, sizeof(f->dcs));
        f->dcs.bootstrap_won = bootstrap_won;
        f->dcs.config = config;
        if (!c) {
                f->dcs.unreachable_since = since;
                return;
        }
        f->dcs.reachable = true;

        if (!c->has_initialize)
                f->dcs.initialize = HA_INITIALIZE_ABSENT;
        else if (isempty(c->initialize))
                f->dcs.initialize = HA_INITIALIZE_EMPTY;
        else {
                char *end = NULL;
                unsigned long long v = strtoull(c->initialize, &end, 10);
                bool digits = end && *end == 0 && strlen(c->initialize) >= 10;
                f->dcs.initialize = digits ? HA_INITIALIZE_SYSID : HA_INITIALIZE_EMPTY;
                f->dcs.initialize_sysid = digits ? v : 0;
        }

        f->dcs.leader.name = c->leader;
        f->dcs.leader.optime = (uint64_t)MAX(dcs_cluster_optime(c), 0);
        for (size_t i = 0; i < c->n_members && f->dcs.n_members < HA_MEMBERS_MAX; i++) {
                const DcsMember *dm = &c->members[i];
                HaMember *m = &f->dcs.members[f->dcs.n_members++];

                m->name = dm->name;
                m->has_api_url = !isempty(dm->api_url);
                tags_from_json(dm->tags, &m->tags);
                m->state = dm->state ? ha_pg_state_from_string(dm->state) : HA_PG_UNKNOWN;
                if ((int)m->state < 0)
                        m->state = HA_PG_STOPPED;
                m->role = dm->role ? ha_role_from_string(dm->role) : HA_ROLE_REPLICA;
                if ((int)m->role < 0)
                        m->role = HA_ROLE_REPLICA;
                m->xlog_location = dm->has_xlog_location ? (uint64_t)MAX(dm->xlog_location, 0) : 0;
                m->timeline = dm->has_timeline ? (uint32_t)MAX(dm->timeline, 0) : 0;
                if (api) {
                        m->api.fetch = api[i].fetch;
                        m->api.in_recovery = api[i].in_recovery;
                        m->api.has_wal_position = api[i].has_wal_position;
                        m->api.wal_position = api[i].wal_position;
                        m->api.timeline = api[i].timeline;
                        m->api.nofailover = api[i].nofailover;
                        m->api.watchdog_failed = api[i].watchdog_failed;
                        m->api.upstream_detached = api[i].upstream_detached;
                }
                if (c->leader && streq(c->leader, dm->name) && dm->checkpoint_after_promote == 0)
                        f->dcs.leader.checkpoint_pending = true;
        }

        if (c->has_failover && (!isempty(c->failover_leader) || !isempty(c->failover_member))) {
                f->dcs.failover.present = true;
                f->dcs.failover.leader = isempty(c->failover_leader) ? NULL : c->failover_leader;
                f->dcs.failover.member = isempty(c->failover_member) ? NULL : c->failover_member;
                if (!isempty(c->failover_scheduled_at)) {
                        usec_t at = 0;
                        if (rest_parse_timestamp(c->failover_scheduled_at, &at) >= 0) {
                                f->dcs.failover.has_scheduled_at = true;
                                if (at >= realtime_now)
                                        f->dcs.failover.scheduled_at = now + (at - realtime_now);
                                else
                                        f->dcs.failover.scheduled_at =
                                                now > realtime_now - at ? now - (realtime_now - at) : 1;
                        }
                }
        }

        if (c->has_sync && (c->sync_leader || (c->sync_standby && c->sync_standby[0]))) {
                f->dcs.sync.present = true;
                f->dcs.sync.leader = c->sync_leader;
                f->dcs.sync.quorum =
                        c->sync_quorum > 0 ? (unsigned)MIN(c->sync_quorum, (int64_t)HA_SYNC_MAX) : 0;
                for (size_t i = 0; c->sync_standby && c->sync_standby[i] && i < HA_SYNC_MAX; i++)
                        f->dcs.sync.standbys[f->dcs.sync.n_standbys++] = c->sync_standby[i];
        }
        f->dcs.history_timeline = (uint32_t)MAX(c->history_timeline, 0);
        /* Patroni's _is_healthiest_node(): a non-empty failsafe topology disqualifies a node it does not
         * name (only in failsafe mode, which the table checks). */
        if (c->failsafe && cJSON_GetArraySize(c->failsafe) > 0) {
                f->dcs.failsafe.present = true;
                f->dcs.failsafe.contains_us =
                        f->node.name && cJSON_GetObjectItemCaseSensitive(c->failsafe, f->node.name);
        }
}

/* The LSN at which the cluster's `history` says timeline tl ended (the switch to the next one); false
 * when history has no well-formed line for tl. */
static bool history_switch_lsn(const cJSON *history, uint32_t tl, uint64_t *ret_lsn) {
        const cJSON *line;

        cJSON_ArrayForEach (line, history) {
                int64_t line_tl, lsn;
                if (!cJSON_IsArray(line) || cJSON_GetArraySize(line) < 2 ||
                    json_value_int64(cJSON_GetArrayItem(line, 0), &line_tl) < 0 ||
                    json_value_int64(cJSON_GetArrayItem(line, 1), &lsn) < 0)
                        continue;
                if (line_tl == (int64_t)tl) {
                        *ret_lsn = (uint64_t)lsn;
                        return true;
                }
        }
        return false;
}

HaDivergence ha_divergence(uint32_t local_tl, uint64_t local_lsn, uint32_t leader_tl, const cJSON *history) {
        uint64_t switch_lsn;

        if (local_tl == 0 || leader_tl == 0)
                return HA_DIVERGENCE_UNKNOWN;
        if (local_tl == leader_tl)
                return HA_DIVERGENCE_NONE;
        if (local_tl > leader_tl)
                return HA_DIVERGENCE_DIVERGED;
        /* The leader switched away from our timeline at the LSN its history records for it: anything we
         * wrote at or past that point is not in the leader's history. */
        if (history_switch_lsn(history, local_tl, &switch_lsn))
                return local_lsn <= switch_lsn ? HA_DIVERGENCE_NONE : HA_DIVERGENCE_DIVERGED;
        return HA_DIVERGENCE_DIVERGED; /* unknown switch point: pg_rewind decides (and may find nothing) */
}

HaDivergence
ha_divergence_replica(uint32_t local_tl, uint64_t replay_lsn, uint32_t leader_tl, const cJSON *history) {
        uint64_t switch_lsn;

        if (local_tl == 0 || leader_tl == 0 || replay_lsn == 0)
                return HA_DIVERGENCE_UNKNOWN;
        if (local_tl >= leader_tl)
                return local_tl == leader_tl ? HA_DIVERGENCE_NONE : HA_DIVERGENCE_DIVERGED;
        if (history_switch_lsn(history, local_tl, &switch_lsn))
                return replay_lsn <= switch_lsn ? HA_DIVERGENCE_NONE : HA_DIVERGENCE_DIVERGED;
        /* The switch point is not in `history` yet (the new leader writes it after promoting): a
         * running replica is left alone until it is. */
        return HA_DIVERGENCE_UNKNOWN;
}
