/* SPDX-License-Identifier: MIT */
/*
 * The leader's replication duties, run after a successful lock renewal: the synchronous standbys and
 * quorum (the `sync` key and synchronous_standby_names, patroni-compat.md §2.10), the physical
 * replication slots of the members and the permanent ones, and the `history` key after a promotion.
 * Also claiming `sync` before a promotion in synchronous mode, and on a replica the slots of the members
 * that cascade from it (replicatefrom).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ha-internal.h"

bool ha_sync_mode_on(Ha *h) {
        return h->dyn.synchronous_mode != SYNCHRONOUS_MODE_OFF;
}

static bool sync_mode_quorum(Ha *h) {
        return h->dyn.synchronous_mode == SYNCHRONOUS_MODE_QUORUM;
}

/* The "quorum" field our writes of `sync` carry: 0 for a key without standbys in quorum mode, -1 (no
 * field) otherwise. */
static int64_t sync_null_quorum(Ha *h) {
        return sync_mode_quorum(h) ? 0 : -1;
}

/* synchronous_standby_names as postgresql.conf gets it; only in synchronous mode (otherwise the
 * configured parameters are used as they are). On a running primary the live value stays until
 * ha_process_sync() changes it, so a rewrite of postgresql.conf never drops a standby that `sync` names. */
void ha_sync_render_ssn(Ha *h) {
        const PgStatus *st = pgstatus(h);
        const char *v;

        if (!ha_sync_mode_on(h))
                return;
        if (h->ssn_want)
                v = h->ssn_want;
        else if (st && st->query_ok && !st->in_recovery && st->synchronous_standby_names)
                v = st->synchronous_standby_names;
        else
                v = h->dyn.synchronous_mode_strict ? "*" : "";
        if (pg_params_set(&h->pgs.parameters, "synchronous_standby_names", v) < 0)
                log_oom();
}

/* Forgets the leader-side state (we do not hold the lock). */
void ha_sync_forget(Ha *h) {
        h->ssn_want = mfree(h->ssn_want);
        h->ssn_seen = mfree(h->ssn_seen);
        h->sync_ready = proc_strv_free(h->sync_ready);
        h->sync_ready_lsn = 0;
        h->sync_ready_pending = false;
        h->sync_then_ssn = mfree(h->sync_then_ssn);
        h->sync_written_revision = 0;
}

/* Python's repr of a list of names, for Patroni's log lines. */
static void names_repr(const char *const *names, size_t n, char *buf, size_t size) {
        size_t len = 0;

        len += (size_t)snprintf(buf, size, "[");
        for (size_t i = 0; i < n && len < size; i++)
                len += (size_t)snprintf(buf + len, size - len, "%s'%s'", i > 0 ? ", " : "", names[i]);
        if (len < size)
                snprintf(buf + len, size - len, "]");
}

/* Sets the synchronous_standby_names we manage; rewrites postgresql.conf and reloads (now, or at the
 * next tick without a job). value NULL: not managed (strict: "*", else ""). */
static void ssn_set(Ha *h, const char *value) {
        char *v = NULL;

        if (streq_ptr(h->ssn_want, value))
                return;
        if (value && !(v = strdup(value))) {
                log_oom();
                return;
        }
        free(h->ssn_want);
        h->ssn_want = v;
        if (ha_pg_reload_config(h))
                h->pg_reload_pending = false;
        else
                h->pg_reload_pending = true;
}

static void on_sync_written(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        _cleanup_free_ char *then = TAKE_PTR(h->sync_then_ssn);

        h->sync_busy = false;
        if (res && res->revision > h->sync_written_revision)
                h->sync_written_revision = res->revision;
        if (error < 0 || !res || !res->succeeded) {
                if (error < 0)
                        log_warning("Failed to write the sync key: %s", strna(message));
                else
                        log_info("Synchronous replication key updated by someone else.");
                return;
        }
        if (then && h->lock_held && ha_sync_mode_on(h)) {
                if (!streq_ptr(h->ssn_want, then))
                        log_info("Assigning synchronous standby status to '%s'", then);
                ssn_set(h, then);
        }
}

static int sync_write(Ha *h, char *const *standbys, int64_t quorum, int64_t revision, const char *then_ssn) {
        int r;

        if (then_ssn && !(h->sync_then_ssn = strdup(then_ssn)))
                return -ENOMEM;
        r = dcs_write_sync(h->dcs, h->pgs.name, standbys, quorum, revision, on_sync_written, h);
        if (r < 0) {
                h->sync_then_ssn = mfree(h->sync_then_ssn);
                log_warning("Failed to write the sync key");
                return r;
        }
        h->sync_busy = true;
        return 0;
}

static void on_sync_deleted(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        h->sync_busy = false;
        if (error >= 0 && res && res->succeeded)
                log_info("Disabled synchronous replication");
}

static bool strv_contains_case(char *const *l, const char *name) {
        for (; l && *l; l++)
                if (strcasecmp(*l, name) == 0)
                        return true;
        return false;
}

static bool tag_true(const cJSON *tags, const char *name) {
        bool b = false;
        return tags && json_get_bool(tags, name, &b) >= 0 && b;
}

/* The synchronous_standby_names the leader wants: "*" in strict mode when no standby is picked (commits
 * wait rather than go unprotected), else the picked names ("ANY k (...)" in quorum mode). */
static int sync_wanted_ssn(Ha *h, const HaSyncResult *res, bool quorum, unsigned k, char **ret) {
        if (res->n_picked == 0 && h->dyn.synchronous_mode_strict) {
                const char *star[] = {"*"};
                if (!streq_ptr(h->ssn_want, "*"))
                        log_warning("No standbys available!");
                return ha_sync_format_ssn(star, 1, false, 0, ret);
        }
        return ha_sync_format_ssn(res->picked, res->n_picked, quorum, k, ret);
}

/* Quorum mode (docs/ha.md "Quorum commit"): one write per tick, chosen by ha_sync_quorum_step(). */
static void
process_quorum(Ha *h, const HaSyncResult *res, char **ssn_names, const HaSyncReplica *reps, size_t n_reps) {
        const PgStatus *st = pgstatus(h);
        const DcsCluster *c = h->cluster;
        _cleanup_(proc_strv_freep) char **pending_names = NULL, **l = NULL;
        _cleanup_free_ char *want = NULL;
        const char *caught_up[HA_SYNC_MAX];
        size_t n_caught_up = 0;
        const char *effective;
        unsigned k = (unsigned)MIN((size_t)MAX(h->dyn.synchronous_node_count, 1), res->n_picked);
        unsigned live_k = 0, pending_k = 0;
        HaQuorumInput in = {};
        HaQuorumResult out;
        char buf[512];

        /* A view read before our last write of `sync` completed shows an older key: deciding on it could
         * write a setting the stored key does not cover. Wait for a view that includes the write. */
        if (c->revision < h->sync_written_revision)
                return;

        /* No key, or one without a leader: first make it ours and empty (only we may take over). */
        if (!c->has_sync || !c->sync_leader) {
                (void)sync_write(h, NULL, 0, c->has_sync ? c->sync_revision : 0, NULL);
                return;
        }

        if (sync_wanted_ssn(h, res, true, k, &want) < 0) {
                log_oom();
                return;
        }

        if (ha_sync_ssn_count(st->synchronous_standby_names, &live_k) < 0)
                live_k = 0; /* unparseable: no named standby is known to have a commit */
        in.live = (HaQuorumRule){(const char *const *)ssn_names, proc_strv_length(ssn_names), live_k};
        effective = st->synchronous_standby_names;
        if (h->ssn_want && !streq_ptr(h->ssn_want, st->synchronous_standby_names)) {
                if (ha_sync_parse_ssn(h->ssn_want, &pending_names) < 0 ||
                    ha_sync_ssn_count(h->ssn_want, &pending_k) < 0) {
                        log_warning("Unparseable synchronous_standby_names value '%s'", h->ssn_want);
                        return;
                }
                in.has_pending = true;
                in.pending = (HaQuorumRule){
                        (const char *const *)pending_names, proc_strv_length(pending_names), pending_k};
                effective = h->ssn_want;
        }
        in.ssn_differs = !streq(strempty(effective), want);
        in.want = (HaQuorumRule){res->picked, res->n_picked, res->n_picked > 0 ? k : 0};
        for (char **s = c->sync_standby; s && *s && in.key.n_voters < HA_SYNC_MAX; s++)
                in.key.voters[in.key.n_voters++] = *s;
        in.key.quorum = c->sync_quorum > 0 ? (unsigned)MIN(c->sync_quorum, (int64_t)HA_SYNC_MAX) : 0;
        in.has_ready = h->sync_ready_lsn > 0 && !h->sync_ready_pending;
        if (in.has_ready)
                for (size_t i = 0; i < n_reps && n_caught_up < HA_SYNC_MAX; i++)
                        if (reps[i].application_name && reps[i].has_lsn && reps[i].lsn >= h->sync_ready_lsn)
                                caught_up[n_caught_up++] = reps[i].application_name;
        in.caught_up = caught_up;
        in.n_caught_up = n_caught_up;

        ha_sync_quorum_step(&in, &out);
        switch (out.action) {
        case HA_QUORUM_WRITE_SSN:
                log_info("Assigning synchronous standby status to '%s'", want);
                ssn_set(h, want);
                break;
        case HA_QUORUM_WRITE_KEY:
                for (size_t i = 0; i < out.key.n_voters; i++)
                        if (proc_strv_push(&l, out.key.voters[i]) < 0) {
                                log_oom();
                                return;
                        }
                names_repr(out.key.voters, out.key.n_voters, buf, sizeof buf);
                if (sync_write(h, l, out.key.quorum, c->sync_revision, NULL) >= 0)
                        log_info("Updating synchronous quorum to %s, quorum %u", buf, out.key.quorum);
                break;
        default:
                if (!in.ssn_differs)
                        ssn_set(h, want);
                break;
        }
}

/* The leader's synchronous replication step, run after a successful lock renewal (HA_FLAG_PROCESS_SYNC).
 * At most one write of the sync key per tick; synchronous_standby_names changes after it. */
void ha_process_sync(Ha *h) {
        const PgStatus *st = pgstatus(h);
        const DcsCluster *c = h->cluster;
        HaSyncReplica reps[HA_SYNC_MAX];
        HaSyncMember mems[HA_MEMBERS_MAX];
        const char *current[HA_SYNC_MAX], *common[HA_SYNC_MAX];
        size_t n_reps = 0, n_mems = 0, n_current = 0, n_common = 0;
        _cleanup_(proc_strv_freep) char **ssn_names = NULL, **ready = NULL;
        _cleanup_free_ char *want = NULL;
        const char *commit_mode;
        HaSyncInput in;
        HaSyncResult res;
        char buf1[512], buf2[512];
        bool mine, stale = false;

        if (h->sync_busy || !c || !h->lock_held || !st || !st->query_ok || st->in_recovery)
                return;

        if (!ha_sync_mode_on(h)) {
                if (c->has_sync && (c->sync_leader || (c->sync_standby && c->sync_standby[0]))) {
                        if (dcs_delete_sync(h->dcs, c->sync_revision, on_sync_deleted, h) >= 0)
                                h->sync_busy = true;
                }
                ha_sync_forget(h);
                return;
        }

        /* A sync key left by another leader: claim it before anything else. */
        mine = c->has_sync && c->sync_leader && streq(c->sync_leader, h->pgs.name);
        if (c->has_sync && c->sync_leader && !mine) {
                log_info("Taking over the sync key from %s", c->sync_leader);
                (void)sync_write(h, NULL, sync_null_quorum(h), c->sync_revision, NULL);
                return;
        }

        /* The live value: its change restarts the catch-up rule. */
        if (!streq_ptr(st->synchronous_standby_names, h->ssn_seen)) {
                free(h->ssn_seen);
                h->ssn_seen = st->synchronous_standby_names ? strdup(st->synchronous_standby_names) : NULL;
                h->sync_ready_lsn = 0;
                h->sync_ready_pending = true;
        } else if (h->sync_ready_pending) {
                h->sync_ready_lsn = MAX(st->wal_write_lsn, UINT64_C(1));
                h->sync_ready_pending = false;
        }
        if (ha_sync_parse_ssn(st->synchronous_standby_names, &ssn_names) < 0) {
                log_warning(
                        "Unparseable synchronous_standby_names value '%s'",
                        strna(st->synchronous_standby_names));
                ssn_names = NULL;
        }

        commit_mode = strempty(st->synchronous_commit);
        for (size_t i = 0; i < st->n_replicas && n_reps < HA_SYNC_MAX; i++) {
                const PgReplica *p = &st->replicas[i];
                uint64_t lsn = streq(commit_mode, "remote_apply") ? p->replay_lsn
                        : streq(commit_mode, "remote_write")      ? p->write_lsn
                                                                  : p->flush_lsn;
                reps[n_reps++] = (HaSyncReplica){
                        .application_name = p->application_name,
                        .state = p->state,
                        .sync_state = p->sync_state,
                        .has_lsn = lsn != 0,
                        .lsn = lsn,
                };
        }
        for (size_t i = 0; i < c->n_members && n_mems < HA_MEMBERS_MAX; i++) {
                const DcsMember *m = &c->members[i];
                mems[n_mems++] = (HaSyncMember){
                        .name = m->name,
                        .running = streq_ptr(m->state, "running"),
                        .nosync = tag_true(m->tags, "nosync"),
                        .nofailover = tag_true(m->tags, "nofailover"),
                };
        }
        if (mine)
                for (char **s = c->sync_standby; s && *s && n_current < HA_SYNC_MAX; s++)
                        current[n_current++] = *s;

        in = (HaSyncInput){
                .replicas = reps,
                .n_replicas = n_reps,
                .members = mems,
                .n_members = n_mems,
                /* quorum mode lists every candidate: ANY k of them */
                .node_count =
                        sync_mode_quorum(h) ? HA_SYNC_MAX : (unsigned)MAX(h->dyn.synchronous_node_count, 1),
                .max_lag = h->dyn.maximum_lag_on_syncnode,
                .primary_lsn = st->wal_write_lsn,
                .ssn_names = (const char *const *)ssn_names,
                .n_ssn_names = proc_strv_length(ssn_names),
                .sync_names = current,
                .n_sync_names = n_current,
                .ready = (const char *const *)h->sync_ready,
                .n_ready = proc_strv_length(h->sync_ready),
                .ready_lsn = h->sync_ready_lsn,
                .quorum = sync_mode_quorum(h),
        };
        ha_sync_select(&in, &res);
        for (size_t i = 0; i < res.n_ready; i++)
                if (proc_strv_push(&ready, res.ready[i]) < 0) {
                        log_oom();
                        return;
                }
        proc_strv_free(h->sync_ready);
        h->sync_ready = TAKE_PTR(ready);

        if (sync_mode_quorum(h)) {
                process_quorum(h, &res, ssn_names, reps, n_reps);
                return;
        }

        if (sync_wanted_ssn(h, &res, false, 0, &want) < 0) {
                log_oom();
                return;
        }

        /* A name `sync` keeps although the live setting lost it (edited by hand, or a key left from an
         * earlier period of synchronous mode) must leave `sync` at once, whatever is picked. */
        for (size_t i = 0; i < n_current; i++)
                if (!strv_contains_case(ssn_names, current[i]))
                        stale = true;
        if (stale || !ha_sync_same_set(res.picked, res.n_picked, current, n_current)) {
                _cleanup_(proc_strv_freep) char **l = NULL;

                for (size_t i = 0; i < n_current; i++)
                        for (size_t j = 0; j < res.n_confirmed; j++)
                                if (strcasecmp(current[i], res.confirmed[j]) == 0)
                                        common[n_common++] = current[i];
                if (n_common != n_current) {
                        /* Leave sync duty first; synchronous_standby_names changes once that is stored. */
                        names_repr(current, n_current, buf1, sizeof buf1);
                        names_repr(common, n_common, buf2, sizeof buf2);
                        log_info("Updating synchronous privilege temporarily from %s to %s", buf1, buf2);
                        for (size_t i = 0; i < n_common; i++)
                                if (proc_strv_push(&l, common[i]) < 0)
                                        return;
                        (void)sync_write(h, l, -1, c->sync_revision, want);
                        return;
                }
                if (!streq_ptr(h->ssn_want, want)) {
                        names_repr(res.picked, res.n_picked, buf1, sizeof buf1);
                        log_info(
                                "Assigning synchronous standby status to %s",
                                res.n_picked == 0 && h->dyn.synchronous_mode_strict ? "['*']" : buf1);
                }
                ssn_set(h, want);
                if (res.n_confirmed > 0 &&
                    !ha_sync_same_set(res.confirmed, res.n_confirmed, common, n_common)) {
                        for (size_t i = 0; i < res.n_confirmed; i++)
                                if (proc_strv_push(&l, res.confirmed[i]) < 0)
                                        return;
                        names_repr(res.confirmed, res.n_confirmed, buf1, sizeof buf1);
                        if (sync_write(h, l, -1, c->sync_revision, NULL) >= 0)
                                log_info("Synchronous standby status assigned to %s", buf1);
                }
                return;
        }
        /* The wanted set is what `sync` names: keep synchronous_standby_names in step with it. */
        ssn_set(h, want);
}

static void on_slots(PgConn *c, const PGresult *res, int error, const char *message, void *userdata) {
        Ha *h = userdata;

        h->slots_running = false;
        if (error < 0) {
                log_warning("Failed to maintain replication slots: %s", strna(message));
                h->slots_done = mfree(h->slots_done);
        }
}

/* Appends name to the text[] literal in buf (slot names are [a-z0-9_], no quoting needed). Returns
 * false when it does not fit. */
static bool slot_list_add(char *buf, size_t size, size_t *len, const char *name) {
        int n = snprintf(buf + *len, size - *len, "%s%s", *len > 1 ? "," : "", name);
        if (n < 0 || (size_t)n >= size - *len - 1)
                return false;
        *len += (size_t)n;
        return true;
}

/* Patroni's slot name rule for permanent slots. */
static bool slot_name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > 63)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

/* Permanent physical slots from the dynamic `slots` (Patroni's permanent_physical_slots: a null or
 * empty value, or an object whose type is "physical", or without a type and without database+plugin),
 * except our own member slot. */
static bool slots_add_permanent(Ha *h, char *buf, size_t size, size_t *len) {
        _cleanup_free_ char *own = NULL;
        const cJSON *v;

        if (!cJSON_IsObject(h->dyn.slots))
                return true;
        if (pgconf_slot_name(h->pgs.name, &own) < 0)
                own = NULL;
        cJSON_ArrayForEach (v, h->dyn.slots) {
                const char *type = NULL, *db = NULL, *plugin = NULL;
                bool physical;

                if (!slot_name_valid(v->string) || streq_ptr(own, v->string))
                        continue;
                if (cJSON_IsObject(v)) {
                        (void)json_get_string(v, "type", &type);
                        (void)json_get_string(v, "database", &db);
                        (void)json_get_string(v, "plugin", &plugin);
                        physical = type ? streq(type, "physical") : !(!isempty(db) && !isempty(plugin));
                } else
                        physical = cJSON_IsNull(v) || (cJSON_IsString(v) && isempty(v->valuestring));
                if (physical && !slot_list_add(buf, size, len, v->string))
                        return false;
        }
        return true;
}

/* The `ignore_slots` matchers that can match a physical slot (Patroni's ignore_replication_slot():
 * every attribute given must equal the slot's, and a physical slot has no database or plugin): their
 * names go to buf; a matcher without a name matches every physical slot (*ret_all). */
static bool slots_add_ignored(Ha *h, char *buf, size_t size, size_t *len, bool *ret_all) {
        const cJSON *m;

        *ret_all = false;
        if (!cJSON_IsArray(h->dyn.ignore_slots))
                return true;
        cJSON_ArrayForEach (m, h->dyn.ignore_slots) {
                const char *name = NULL, *type = NULL, *db = NULL, *plugin = NULL;

                if (!cJSON_IsObject(m))
                        continue;
                (void)json_get_string(m, "name", &name);
                (void)json_get_string(m, "type", &type);
                (void)json_get_string(m, "database", &db);
                (void)json_get_string(m, "plugin", &plugin);
                if ((!isempty(type) && !streq(type, "physical")) || !isempty(db) || !isempty(plugin))
                        continue;
                if (isempty(name))
                        *ret_all = true;
                else if (slot_name_valid(name) && !slot_list_add(buf, size, len, name))
                        return false;
        }
        return true;
}

/* Whether member m gets a physical slot here. On the primary: every other member, except one whose
 * replicatefrom tag names another existing member (it streams from there). On a replica: the members
 * whose replicatefrom tag names us, except the leader (Patroni's get_replication_slots()). */
static bool slot_member_wanted(Ha *h, const DcsMember *m, bool primary) {
        const char *rf = NULL;
        bool tagged;

        if (streq(m->name, h->pgs.name))
                return false;
        tagged = m->tags && json_get_string(m->tags, "replicatefrom", &rf) >= 0 && !isempty(rf);
        if (!primary)
                return tagged && streq(rf, h->pgs.name) && !streq_ptr(h->cluster->leader, m->name);
        return !tagged || streq(rf, h->pgs.name) || !dcs_cluster_find_member(h->cluster, rf);
}

/* Reconciles the physical replication slots, on the primary and, for cascading replication, on a
 * running replica (Patroni's sync_replication_slots() runs on both). The wanted set: the member slots
 * of slot_member_wanted(), plus on the primary the permanent physical `slots`. Created when missing;
 * inactive physical slots that are neither wanted nor matched by `ignore_slots` are dropped (none while
 * paused). A replica keeps no permanent physical slot, as in Patroni 3.0.2, and touches no slot while
 * the DCS did not answer. Logical slots are never touched. Runs again only when the wanted set, the
 * role or the matchers change. */
void ha_maintain_slots(Ha *h) {
        static const char sql[] =
                "WITH want AS (SELECT DISTINCT unnest($1::text[]) AS n), "
                "c AS (SELECT pg_create_physical_replication_slot(n, true) FROM want "
                "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = n)), "
                "d AS (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_type = 'physical' AND NOT active AND NOT temporary AND NOT $3::bool "
                "AND slot_name <> ALL($1::text[]) AND slot_name <> ALL($2::text[])) "
                "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM d)";
        const PgStatus *st = pgstatus(h);
        char want[4096] = "{", keep[2048] = "{", key[sizeof want + sizeof keep + 8];
        size_t len = 1, klen = 1;
        bool keep_all = false, primary;
        const char *params[3];

        if (!h->dyn.use_slots || !h->cluster || h->slots_running || !st || !st->running || !st->query_ok)
                return;
        if (h->lock_held && !st->in_recovery)
                primary = true;
        else if (!h->lock_held && st->in_recovery && h->dcs_ok && !h->job)
                primary = false;
        else
                return; /* promoting or demoting: the next tick decides */
        for (size_t i = 0; i < h->cluster->n_members; i++) {
                const DcsMember *m = &h->cluster->members[i];
                _cleanup_free_ char *slot = NULL;

                if (!slot_member_wanted(h, m, primary))
                        continue;
                if (pgconf_slot_name(m->name, &slot) < 0)
                        continue;
                if (!slot_list_add(want, sizeof want, &len, slot))
                        return;
        }
        if ((primary && !slots_add_permanent(h, want, sizeof want, &len)) ||
            !slots_add_ignored(h, keep, sizeof keep, &klen, &keep_all))
                return;
        if (h->dyn.pause) /* Patroni drops no slot while paused */
                keep_all = true;
        want[len++] = '}';
        want[len] = 0;
        keep[klen++] = '}';
        keep[klen] = 0;
        snprintf(key, sizeof key, "%c|%s|%s|%d", primary ? 'p' : 'r', want, keep, keep_all);
        if (h->slots_done && streq(h->slots_done, key))
                return;
        params[0] = want;
        params[1] = keep;
        params[2] = keep_all ? "true" : "false";
        if (pgconn_query(h->conn, sql, 3, params, 5 * USEC_PER_SEC, on_slots, h, NULL) < 0)
                return;
        h->slots_running = true;
        free(h->slots_done);
        h->slots_done = strdup(key);
}

/* The stored line of `history` for timeline tl whose switch position is lsn (NULL: none). */
static const cJSON *history_stored_line(const cJSON *stored, int64_t tl, int64_t lsn) {
        const cJSON *line;

        cJSON_ArrayForEach (line, stored) {
                int64_t t, l;

                if (cJSON_GetArraySize(line) >= 2 &&
                    json_value_int64(cJSON_GetArrayItem(line, 0), &t) >= 0 &&
                    json_value_int64(cJSON_GetArrayItem(line, 1), &l) >= 0 && t == tl && l == lsn)
                        return line;
        }
        return NULL;
}

/* Parses the timeline history file of timeline tl into Patroni's lines [tl, lsn, reason]; the last line,
 * when it is the switch from tl - 1, also gets the time and this node's name, as Patroni's get_history().
 * Returns 0 (*ret NULL when the file cannot be read), or -ENOMEM. */
static int history_from_file(Ha *h, uint32_t tl, cJSON **ret) {
        _cleanup_(cJSON_Deletep) cJSON *arr = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL, *name = NULL;
        char *line, *save = NULL;
        cJSON *last;

        *ret = NULL;
        if (asprintf(&name, "pg_wal/%08X.history", tl) < 0 || !(path = pgdata_path(&h->pgs, name)))
                return -ENOMEM;
        if (read_full_file(path, 1024 * 1024, &text, NULL) < 0)
                return 0;
        if (!(arr = cJSON_CreateArray()))
                return -ENOMEM;
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned t, hi, lo;
                char reason[256] = "";
                cJSON *l;

                if (sscanf(line, "%u\t%X/%X\t%255[^\n]", &t, &hi, &lo, reason) < 3)
                        continue;
                if (!(l = cJSON_CreateArray()) || !cJSON_AddItemToArray(arr, l) ||
                    !cJSON_AddItemToArray(l, cJSON_CreateNumber(t)) ||
                    !cJSON_AddItemToArray(l, json_int64_new((int64_t)(((uint64_t)hi << 32) | lo))) ||
                    !cJSON_AddItemToArray(l, cJSON_CreateString(reason)))
                        return -ENOMEM;
        }
        last = cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1);
        if (last && cJSON_GetArrayItem(last, 0)->valuedouble == (double)tl - 1) {
                char ts[64];
                time_t now = time(NULL);
                struct tm tm;

                gmtime_r(&now, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
                if (!cJSON_AddItemToArray(last, cJSON_CreateString(ts)) ||
                    !cJSON_AddItemToArray(last, cJSON_CreateString(h->pgs.name)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(arr);
        return 0;
}

/* Patroni's update_cluster_history(): the leader keeps `history` as its timeline history file says,
 * the newest max_timelines_history lines only (0: all), older lines keeping the time and name stored
 * with them; on timeline 1 a leftover history is reset to []. */
void ha_write_history(Ha *h) {
        const PgStatus *st = pgstatus(h);
        const cJSON *stored = h->cluster ? h->cluster->history : NULL;
        const cJSON *last = stored ? cJSON_GetArrayItem(stored, cJSON_GetArraySize(stored) - 1) : NULL;
        _cleanup_(cJSON_Deletep) cJSON *arr = NULL;
        cJSON *line;

        if (!st || !st->query_ok || st->in_recovery || !h->cluster)
                return;
        if (st->timeline <= 1) {
                if (cJSON_GetArraySize(stored) == 0)
                        return;
                if (!(arr = cJSON_CreateArray()))
                        goto oom;
        } else {
                if (last && h->cluster->history_timeline == (int64_t)st->timeline &&
                    cJSON_GetArraySize(last) == 5)
                        return;
                if (history_from_file(h, st->timeline, &arr) < 0)
                        goto oom;
                if (!arr || cJSON_GetArraySize(arr) == 0)
                        return;
                while (h->dyn.max_timelines_history > 0 &&
                       cJSON_GetArraySize(arr) > h->dyn.max_timelines_history)
                        cJSON_DeleteItemFromArray(arr, 0);
                cJSON_ArrayForEach (line, arr) {
                        const cJSON *old;
                        int64_t tl, lsn;

                        if (cJSON_GetArraySize(line) != 3 ||
                            json_value_int64(cJSON_GetArrayItem(line, 0), &tl) < 0 ||
                            json_value_int64(cJSON_GetArrayItem(line, 1), &lsn) < 0)
                                continue;
                        old = history_stored_line(stored, tl, lsn);
                        for (int i = 3; old && i < MIN(cJSON_GetArraySize(old), 5); i++)
                                if (!cJSON_AddItemToArray(
                                            line, cJSON_Duplicate(cJSON_GetArrayItem(old, i), true)))
                                        goto oom;
                }
        }
        if (dcs_write_history(h->dcs, arr, NULL, NULL) < 0)
                log_warning("Failed to write the history key");
        return;
oom:
        log_oom();
}

static void on_sync_claimed(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        h->sync_busy = false;
        if (error < 0 || !res || !res->succeeded) {
                /* Someone else changed `sync` (maybe we lost the lock meanwhile): do not promote. */
                if (error < 0)
                        log_warning("Failed to write the sync key: %s", strna(message));
                log_info("%s", MSG_SYNC_CLAIM_FAILED);
        } else {
                /* We are the only source of truth now; pick standbys at the next ticks. */
                ha_sync_forget(h);
                if (h->lock_held && ha_start_promote(h) < 0)
                        log_error("Failed to start the promotion");
        }
        if (h->decision.action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE)
                ha_apply_flags_after(h, &h->decision);
        ha_act_done(h);
}

/* HA_FLAG_CLAIM_SYNC: sync = {leader: me, sync_standby: null}, compared against the revision this tick
 * read; the promotion follows only when that write succeeds. */
int ha_claim_sync_then_promote(Ha *h) {
        int64_t rev = h->cluster && h->cluster->has_sync ? h->cluster->sync_revision : 0;
        int r;

        r = dcs_write_sync(h->dcs, h->pgs.name, NULL, sync_null_quorum(h), rev, on_sync_claimed, h);
        if (r >= 0)
                h->sync_busy = true;
        return r;
}

/* Patroni's _failsafe_config(), written with each leader update: in failsafe mode the leader keeps the
 * `failsafe` key naming every member with its REST URL (itself included), the members that may race
 * and must confirm it while the DCS is gone. Written only when it differs from the key as read, so a
 * stale key (another member set, or left by an earlier leader) is replaced at the leader's next tick. */
void ha_write_failsafe(Ha *h) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();

        if (!o || !h->cluster)
                return;
        for (size_t i = 0; i < h->cluster->n_members; i++) {
                const DcsMember *m = &h->cluster->members[i];

                if (!(m->api_url ? cJSON_AddStringToObject(o, m->name, m->api_url)
                                 : cJSON_AddNullToObject(o, m->name)))
                        goto oom;
        }
        if (!cJSON_GetObjectItemCaseSensitive(o, h->pgs.name) &&
            !cJSON_AddStringToObject(o, h->pgs.name, h->api_url))
                goto oom;
        if (h->cluster->failsafe && cJSON_Compare(h->cluster->failsafe, o, true))
                return;
        if (dcs_write_failsafe(h->dcs, o, NULL, NULL) < 0)
                log_warning("Failed to write the failsafe key");
        return;
oom:
        log_oom();
}
