/* SPDX-License-Identifier: MIT */
/*
 * What this node publishes about itself: its member key in the DCS (rewritten when its text changes)
 * and the NodeSnapshot the REST API and /metrics answer from, both derived from the last probe, the job
 * under way and the lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha-internal.h"

/* A replica being started whose postmaster.pid already says it accepts read-only connections ("ready"
 * for a hot standby; the status query may take a moment longer on its first connection). */
static bool standby_ready(Ha *h) {
        const PgStatus *st = pgstatus(h);

        return h->job_step == STEP_START_REPLICA &&
                (h->pidfile_standby ||
                 (st && st->running &&
                  (streq_ptr(st->pidfile_status, "ready") || streq_ptr(st->pidfile_status, "standby"))));
}

static const char *pg_state_string(Ha *h) {
        const PgStatus *st = pgstatus(h);

        if (h->pg_stopped_clean)
                return "stopped";
        if (standby_ready(h))
                return "running";

        if ((h->job_step == STEP_START_REPLICA || h->job_step == STEP_CLONE) && st && st->running &&
            st->query_ok)
                return "running";
        switch (h->job_step) {
        case STEP_BOOTSTRAP:
                return "initializing new cluster";
        case STEP_CLONE:
        case STEP_REINIT_CLONE:
                return "creating replica";
        case STEP_START_REPLICA:
                return "starting";
        case STEP_RESTART:
                return "restarting";
        default:
                break;
        }
        if (!st || !st->running)
                return h->start_failed_seen ? "start failed" : "stopped";
        if (st->pidfile_status && streq(st->pidfile_status, "starting"))
                return "starting";
        if (st->pidfile_status && streq(st->pidfile_status, "stopping"))
                return "stopping";
        return "running";
}

const char *ha_member_role_string(Ha *h) {
        const PgStatus *st = pgstatus(h);
        HaRole r = h->decision.advertise_role;

        if (h->lock_held && st && st->running && st->query_ok && !st->in_recovery)
                return "master";
        if ((h->job_step == STEP_START_REPLICA && st && st->running && st->query_ok && st->in_recovery) ||
            standby_ready(h))
                return "replica";
        if ((int)r < 0 || r >= _HA_ROLE_MAX)
                r = h->role;
        if (r == HA_ROLE_PRIMARY && st && st->query_ok && st->in_recovery)
                return "replica";
        if (r == HA_ROLE_PRIMARY && !h->lock_held)
                return st && st->running && st->query_ok && !st->in_recovery ? "master" : "demoted";
        return ha_role_to_string(r);
}

static int build_member_key(Ha *h, cJSON **ret) {
        const PgStatus *st = pgstatus(h);
        const char *state = pg_state_string(h);
        _cleanup_(cJSON_Deletep) cJSON *tags = NULL;
        HaMemberKeyInfo i = {
                .conn_url = h->conn_url,
                .api_url = h->api_url,
                .state = state,
                .role = ha_member_role_string(h),
                .version = PGHA_COMPAT_VERSION,
                .tags = h->snap.tags,
                .checkpoint_pending = h->checkpoint_pending && h->lock_held,
                .pending_restart = st && st->query_ok && st->pending_restart,
                .scheduled_restart = h->restart_sched_json,
                .pause = h->dyn.pause,
        };

        if (h->disable_sync) {
                /* Going away: ask the leader to release us from synchronous duty (Patroni's
                 * while_not_sync_standby). */
                tags = h->snap.tags ? cJSON_Duplicate(h->snap.tags, true) : cJSON_CreateObject();
                if (!tags)
                        return -ENOMEM;
                cJSON_DeleteItemFromObjectCaseSensitive(tags, "nosync");
                if (!cJSON_AddTrueToObject(tags, "nosync"))
                        return -ENOMEM;
                i.tags = tags;
        }
        if (st && st->running && st->query_ok && streq(state, "running") &&
            (h->job_kind == HA_JOB_NONE || h->job_kind == HA_JOB_PROMOTE)) {
                i.has_xlog = true;
                i.xlog_location = pgstatus_wal_position(st);
                i.timeline = st->timeline;
        }
        return ha_member_key_json(&i, ret);
}

static int member_write_stopped(Ha *h, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        int r;

        r = build_member_key(h, &j);
        if (r < 0)
                return r;
        return dcs_touch_member(h->dcs, j, cb, userdata);
}

static void on_member_written(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        DcsWriteCallback cb = h->member_stopped_cb;
        int r;

        h->member_write_running = false;
        if (error < 0) {
                log_warning("Failed to update our member key: %s", strna(message));
                h->member_last = mfree(h->member_last);
        } else if (res)
                h->member_written_revision = res->revision;
        if (!cb)
                return;
        h->member_stopped_cb = NULL;
        r = member_write_stopped(h, cb, h->member_stopped_userdata);
        if (r < 0)
                cb(d, r, "could not send the member key", NULL, h->member_stopped_userdata);
}

/* Whether etcd holds the member key as we last wrote it (data, lease), as far as the cluster view read
 * this tick can tell. A view older than our last write cannot show it yet and is trusted; a newer one
 * that shows something else means someone else changed or re-put the key: write it back (Patroni's
 * touch_member() rewrites it at every cycle, so it repairs such keys too). */
static bool member_key_intact(Ha *h, const cJSON *want) {
        const DcsMember *m = h->cluster ? dcs_cluster_find_member(h->cluster, h->pgs.name) : NULL;

        if (!m)
                return false;
        if (h->cluster->revision < h->member_written_revision)
                return true;
        return m->lease == h->member_last_lease && m->data && cJSON_Compare(m->data, want, true);
}

void ha_touch_member(Ha *h) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *text = NULL;

        if (h->member_write_running || build_member_key(h, &j) < 0 || json_print_compact(j, &text) < 0)
                return;
        if (h->member_last && streq(h->member_last, text) && h->member_last_lease == dcs_lease_id(h->dcs) &&
            member_key_intact(h, j))
                return;
        if (dcs_touch_member(h->dcs, j, on_member_written, h) < 0)
                return;
        h->member_write_running = true;
        free(h->member_last);
        h->member_last = TAKE_PTR(text);
        h->member_last_lease = dcs_lease_id(h->dcs);
}

/* ha_touch_member_stopped - the last write of the shutdown, after a clean stop of PostgreSQL (Patroni's
 * Ha.shutdown() calls touch_member() then): the member key with state "stopped", on our lease, which is
 * no longer kept alive, so the key stays until the lease expires. The leader keeps our slot meanwhile,
 * and a quick restart streams through it again. When a tick's write is still in flight, ours is sent
 * once it ended, so "stopped" is the state etcd keeps. cb runs once the write ended; returns < 0 (cb not
 * called) when it could not be sent. Non-logging. */
int ha_touch_member_stopped(Ha *h, DcsWriteCallback cb, void *userdata) {
        h->pg_stopped_clean = true;
        if (h->member_write_running) {
                h->member_stopped_cb = cb;
                h->member_stopped_userdata = userdata;
                return 0;
        }
        return member_write_stopped(h, cb, userdata);
}

static cJSON *cluster_json(Ha *h) {
        const DcsCluster *c = h->cluster;
        cJSON *o, *members;

        if (!c)
                return NULL;
        o = cJSON_CreateObject();
        members = cJSON_AddArrayToObject(o, "members");
        for (size_t i = 0; i < c->n_members; i++) {
                const DcsMember *m = &c->members[i];
                cJSON *mo = cJSON_CreateObject();
                _cleanup_free_ char *host = NULL;
                unsigned port = 0;
                bool leader = c->leader && streq(c->leader, m->name);

                (void)json_add_string(mo, "name", m->name);
                (void)json_add_string(
                        mo,
                        "role",
                        leader                                                       ? "leader"
                                : !dcs_cluster_is_sync_standby(c, m->name)           ? "replica"
                                : h->dyn.synchronous_mode == SYNCHRONOUS_MODE_QUORUM ? "quorum_standby"
                                                                                     : "sync_standby");
                (void)json_add_string(mo, "state", m->state ?: "unknown");
                if (m->api_url)
                        (void)json_add_string(mo, "api_url", m->api_url);
                if (m->conn_url && pgconf_parse_conn_url(m->conn_url, &host, &port) >= 0) {
                        (void)json_add_string(mo, "host", host);
                        (void)json_add_int64(mo, "port", port);
                }
                if (m->has_timeline)
                        (void)json_add_int64(mo, "timeline", m->timeline);
                if (m->pending_restart)
                        (void)json_add_bool(mo, "pending_restart", true);
                if (m->scheduled_restart)
                        (void)json_add_item(
                                mo, "scheduled_restart", cJSON_Duplicate(m->scheduled_restart, true));
                if (m->tags && cJSON_GetArraySize(m->tags) > 0)
                        (void)json_add_item(mo, "tags", cJSON_Duplicate(m->tags, true));
                if (!leader) {
                        int64_t opt = dcs_cluster_optime(c);
                        if (m->has_xlog_location)
                                (void)json_add_int64(mo, "lag", MAX(opt - m->xlog_location, 0));
                        else
                                (void)json_add_string(mo, "lag", "unknown");
                }
                cJSON_AddItemToArray(members, mo);
        }
        if (h->dyn.pause)
                (void)json_add_bool(o, "pause", true);
        if (c->has_failover && !isempty(c->failover_scheduled_at)) {
                cJSON *s = cJSON_AddObjectToObject(o, "scheduled_switchover");
                (void)json_add_string(s, "at", c->failover_scheduled_at);
                if (c->failover_leader)
                        (void)json_add_string(s, "from", c->failover_leader);
                if (c->failover_member)
                        (void)json_add_string(s, "to", c->failover_member);
        }
        return o;
}

/* Our PostgreSQL receives WAL from nobody and will not until we write another recovery section. */
bool ha_upstream_detached(Ha *h) {
        return h->upstream_cleared && h->detached_probes >= 2;
}

void ha_snapshot_update(Ha *h) {
        const PgStatus *st = pgstatus(h);
        NodeSnapshot *s = &h->snap;
        const char *role = ha_member_role_string(h);
        SnapshotRole sr = snapshot_role_from_string(role);

        free(s->state);
        s->state = strdup(pg_state_string(h));
        s->role = (int)sr >= 0 ? sr : SNAPSHOT_ROLE_UNINITIALIZED;
        s->status_ok = st && (st->query_ok || standby_ready(h));
        s->in_recovery = st && (st->in_recovery || standby_ready(h));
        s->postmaster_start_time = st && st->query_ok ? (usec_t)(st->postmaster_start_epoch * 1e6) : 0;
        s->server_version = st && st->query_ok ? (unsigned)st->server_version : 0;
        s->wal_location = st && st->query_ok ? st->wal_write_lsn : 0;
        s->received_location = st && st->query_ok ? st->receive_lsn : 0;
        s->replayed_location = st && st->query_ok ? st->replay_lsn : 0;
        s->replayed_timestamp = st && st->query_ok ? (usec_t)(st->replay_timestamp_epoch * 1e6) : 0;
        s->replay_paused = st && st->query_ok && st->replay_paused;
        s->timeline = st && st->query_ok ? st->timeline : 0;
        s->pending_restart = st && st->query_ok && st->pending_restart;
        for (size_t i = 0; i < s->n_replication; i++) {
                free(s->replication[i].usename);
                free(s->replication[i].application_name);
                free(s->replication[i].client_addr);
                free(s->replication[i].state);
                free(s->replication[i].sync_state);
        }
        s->replication = mfree(s->replication);
        s->n_replication = 0;
        if (st && st->query_ok && st->n_replicas > 0) {
                s->replication = new0(SnapshotReplication, st->n_replicas);
                if (s->replication) {
                        for (size_t i = 0; i < st->n_replicas; i++) {
                                SnapshotReplication *r = &s->replication[i];
                                const PgReplica *p = &st->replicas[i];
                                r->usename = p->usename ? strdup(p->usename) : NULL;
                                r->application_name =
                                        p->application_name ? strdup(p->application_name) : NULL;
                                r->client_addr = p->client_addr ? strdup(p->client_addr) : NULL;
                                r->state = p->state ? strdup(p->state) : NULL;
                                r->sync_state = p->sync_state ? strdup(p->sync_state) : NULL;
                                r->sync_priority = p->sync_priority;
                        }
                        s->n_replication = st->n_replicas;
                }
        }
        s->database_system_identifier = mfree(s->database_system_identifier);
        if (st && st->query_ok && st->system_identifier) {
                char buf[32];
                snprintf(buf, sizeof buf, "%llu", (unsigned long long)st->system_identifier);
                s->database_system_identifier = strdup(buf);
        }
        cJSON_Delete(s->scheduled_restart);
        s->scheduled_restart = NULL;
        if (h->restart_sched_json) {
                /* GET /patroni shows it without the start time it was scheduled against */
                s->scheduled_restart = cJSON_Duplicate(h->restart_sched_json, true);
                cJSON_DeleteItemFromObjectCaseSensitive(s->scheduled_restart, "postmaster_start_time");
        }
        s->leader_expiry = h->lock_held ? h->lease_deadline : 0;
        s->ttl = ttl_usec(h);
        s->paused = h->dyn.pause;
        s->failsafe_mode = h->dyn.failsafe_mode;
        s->synchronous_mode = h->dyn.synchronous_mode != SYNCHRONOUS_MODE_OFF;
        s->quorum_mode = h->dyn.synchronous_mode == SYNCHRONOUS_MODE_QUORUM;
        /* Published only where a quorum key counts votes, so other documents stay Patroni's. */
        s->upstream_detached = ha_upstream_detached(h) && h->cluster && h->cluster->sync_quorum > 0;
        s->watchdog_failed = h->watchdog && !watchdog_is_healthy(h->watchdog);
        if (h->cluster) {
                free(s->leader_name);
                s->leader_name = h->cluster->leader ? strdup(h->cluster->leader) : NULL;
                s->leader_optime = (uint64_t)MAX(dcs_cluster_optime(h->cluster), 0);
                s->sync_member = dcs_cluster_is_sync_standby(h->cluster, h->pgs.name);
                cJSON_Delete(s->cluster);
                s->cluster = cluster_json(h);
                cJSON_Delete(s->history);
                s->history = h->cluster->history ? cJSON_Duplicate(h->cluster->history, true) : NULL;
                cJSON_Delete(s->config);
                s->config = h->cluster->config ? cJSON_Duplicate(h->cluster->config, true) : NULL;
                cJSON_Delete(s->failsafe);
                s->failsafe = h->cluster->failsafe ? cJSON_Duplicate(h->cluster->failsafe, true) : NULL;
        }
}
