/* SPDX-License-Identifier: MIT */
/*
 * NodeSnapshot helpers: the status document of GET /patroni built exactly as Patroni 3.0.2 builds it
 * (field order, types, which fields are left out when unknown), the predicates the health rules need,
 * and a loader from a JSON description used by tests and debugging tools.
 *
 * Invariant: nothing here reads a clock or does I/O; "now" is always passed in, so the same snapshot and
 * the same now give the same document (tests depend on it).
 */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "pgha/json.h"
#include "pgha/snapshot.h"

static const char *const snapshot_role_table[_SNAPSHOT_ROLE_MAX] = {
        [SNAPSHOT_ROLE_UNINITIALIZED] = "uninitialized",
        [SNAPSHOT_ROLE_MASTER] = "master",
        [SNAPSHOT_ROLE_PRIMARY] = "primary",
        [SNAPSHOT_ROLE_REPLICA] = "replica",
        [SNAPSHOT_ROLE_STANDBY_LEADER] = "standby_leader",
        [SNAPSHOT_ROLE_DEMOTED] = "demoted",
        [SNAPSHOT_ROLE_PROMOTED] = "promoted",
};

DEFINE_STRING_TABLE_LOOKUP(snapshot_role, SnapshotRole);

/* snapshot_done - frees everything the snapshot owns and leaves it zeroed, ready for reuse. */
void snapshot_done(NodeSnapshot *s) {
        if (!s)
                return;
        free(s->scope);
        free(s->name);
        free(s->version);
        free(s->state);
        for (size_t i = 0; i < s->n_replication; i++) {
                SnapshotReplication *r = &s->replication[i];
                free(r->usename);
                free(r->application_name);
                free(r->client_addr);
                free(r->state);
                free(r->sync_state);
        }
        free(s->replication);
        free(s->database_system_identifier);
        free(s->leader_name);
        cJSON_Delete(s->tags);
        cJSON_Delete(s->scheduled_restart);
        cJSON_Delete(s->cluster);
        cJSON_Delete(s->history);
        cJSON_Delete(s->config);
        cJSON_Delete(s->failsafe);
        *s = (NodeSnapshot){};
}

/* snapshot_set_tags_from_config - replaces s->tags with Patroni's get_tags() view of config_tags (NULL or
 * a JSON object): every tag, except clonefrom/nofailover/noloadbalance/nosync when falsy. */
int snapshot_set_tags_from_config(NodeSnapshot *s, const cJSON *config_tags) {
        static const char *const builtin[] = {"clonefrom", "nofailover", "noloadbalance", "nosync"};
        cJSON *tags = NULL;

        if (config_tags && !cJSON_IsObject(config_tags))
                return -EINVAL;
        if (config_tags) {
                tags = cJSON_CreateObject();
                if (!tags)
                        return -ENOMEM;
                const cJSON *t;
                cJSON_ArrayForEach (t, config_tags) {
                        bool skip = false;
                        for (size_t i = 0; i < ELEMENTSOF(builtin); i++)
                                if (streq(t->string, builtin[i]) && !json_truthy(t))
                                        skip = true;
                        if (skip)
                                continue;
                        cJSON *c = cJSON_Duplicate(t, true);
                        if (!c) {
                                cJSON_Delete(tags);
                                return -ENOMEM;
                        }
                        cJSON_AddItemToObject(tags, t->string, c);
                }
        }
        cJSON_Delete(s->tags);
        s->tags = tags;
        return 0;
}

bool snapshot_is_leader(const NodeSnapshot *s, usec_t now) {
        return s->leader_expiry > now;
}

bool snapshot_has_cluster(const NodeSnapshot *s, usec_t now) {
        return s->cluster_valid_until > now;
}

bool snapshot_is_primary_role(SnapshotRole r) {
        return r == SNAPSHOT_ROLE_MASTER || r == SNAPSHOT_ROLE_PRIMARY;
}

bool snapshot_noloadbalance(const NodeSnapshot *s) {
        return json_truthy(s->tags ? cJSON_GetObjectItemCaseSensitive(s->tags, "noloadbalance") : NULL);
}

/* snapshot_rest_role - role of the status document: from pg_is_in_recovery() when the probe worked
 * ("master" or "replica"; in a standby cluster a replica reports its internal role, e.g.
 * "standby_leader"), else the internal role. */
const char *snapshot_rest_role(const NodeSnapshot *s) {
        if (!s->status_ok)
                return snapshot_role_to_string(s->role) ?: "uninitialized";
        if (!s->in_recovery)
                return s->role == SNAPSHOT_ROLE_PRIMARY ? "primary" : "master";
        if (s->standby_cluster)
                return snapshot_role_to_string(s->role) ?: "replica";
        return "replica";
}

const char *snapshot_rest_state(const NodeSnapshot *s) {
        const char *state = s->state ?: "stopped";
        if (!s->status_ok && streq(state, "running"))
                return "unknown";
        return state;
}

bool snapshot_is_sync_standby(const NodeSnapshot *s, usec_t now) {
        return s->status_ok && streq(snapshot_rest_role(s), "replica") && snapshot_has_cluster(s, now) &&
                s->synchronous_mode && !s->quorum_mode && s->sync_member;
}

bool snapshot_is_quorum_standby(const NodeSnapshot *s, usec_t now) {
        return s->status_ok && streq(snapshot_rest_role(s), "replica") && snapshot_has_cluster(s, now) &&
                s->quorum_mode && s->sync_member;
}

char *format_python_datetime(usec_t realtime, char buf[static 64]) {
        time_t t = (time_t)(realtime / USEC_PER_SEC);
        unsigned usec = (unsigned)(realtime % USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&t, &tm)) {
                snprintf(buf, 64, "1970-01-01 00:00:00+00:00");
                return buf;
        }
        if (usec == 0)
                snprintf(
                        buf,
                        64,
                        "%04d-%02d-%02d %02d:%02d:%02d+00:00",
                        tm.tm_year + 1900,
                        tm.tm_mon + 1,
                        tm.tm_mday,
                        tm.tm_hour,
                        tm.tm_min,
                        tm.tm_sec);
        else
                snprintf(
                        buf,
                        64,
                        "%04d-%02d-%02d %02d:%02d:%02d.%06u+00:00",
                        tm.tm_year + 1900,
                        tm.tm_mon + 1,
                        tm.tm_mday,
                        tm.tm_hour,
                        tm.tm_min,
                        tm.tm_sec,
                        usec);
        return buf;
}

/* format_python_float - Python's float repr: the shortest digit string that round-trips, written in fixed
 * notation when the decimal exponent is in [-4, 16) (always with a fractional part), else as d.ddde+XX. */
char *format_python_float(double d, char buf[static 40]) {
        char digits[40], *e;
        int exp10, n;

        if (isnan(d)) {
                snprintf(buf, 40, "nan");
                return buf;
        }
        if (isinf(d)) {
                snprintf(buf, 40, d < 0 ? "-inf" : "inf");
                return buf;
        }
        if (d == 0) {
                snprintf(buf, 40, signbit(d) ? "-0.0" : "0.0");
                return buf;
        }

        /* Shortest precision that reads back as the same double. */
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(digits, sizeof digits, "%.*e", prec - 1, d);
                if (strtod(digits, NULL) == d)
                        break;
        }
        /* digits is "[-]D.DDDDe±XX": split mantissa digits and exponent. */
        e = strchr(digits, 'e');
        exp10 = (int)strtol(e + 1, NULL, 10);
        *e = '\0';
        char mant[24];
        size_t m = 0;
        bool neg = digits[0] == '-';
        for (const char *p = digits + neg; *p && m < sizeof mant - 1; p++)
                if (*p != '.')
                        mant[m++] = *p;
        mant[m] = '\0';
        while (m > 1 && mant[m - 1] == '0')
                mant[--m] = '\0';

        if (exp10 >= -4 && exp10 < 16) {
                char out[64];
                size_t o = 0;
                if (neg)
                        out[o++] = '-';
                if (exp10 < 0) {
                        out[o++] = '0';
                        out[o++] = '.';
                        for (int i = 0; i < -exp10 - 1; i++)
                                out[o++] = '0';
                        for (size_t i = 0; i < m; i++)
                                out[o++] = mant[i];
                } else {
                        for (int i = 0; i <= exp10; i++)
                                out[o++] = (size_t)i < m ? mant[i] : '0';
                        out[o++] = '.';
                        if ((size_t)exp10 + 1 < m)
                                for (size_t i = (size_t)exp10 + 1; i < m; i++)
                                        out[o++] = mant[i];
                        else
                                out[o++] = '0';
                }
                out[o] = '\0';
                n = snprintf(buf, 40, "%s", out);
        } else if (m > 1)
                n = snprintf(
                        buf,
                        40,
                        "%s%c.%se%c%02d",
                        neg ? "-" : "",
                        mant[0],
                        mant + 1,
                        exp10 < 0 ? '-' : '+',
                        abs(exp10));
        else
                n = snprintf(
                        buf, 40, "%s%ce%c%02d", neg ? "-" : "", mant[0], exp10 < 0 ? '-' : '+', abs(exp10));
        (void)n;
        return buf;
}

static cJSON *json_string_or_null(const char *s) {
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *json_datetime_or_null(usec_t t) {
        char buf[64];
        return t > 0 ? cJSON_CreateString(format_python_datetime(t, buf)) : cJSON_CreateNull();
}

/* Adds item to o under key; on a NULL item (OOM) returns false so callers can bail out. */
static bool add(cJSON *o, const char *key, cJSON *item) {
        if (!item)
                return false;
        cJSON_AddItemToObject(o, key, item);
        return true;
}

/* Effective tags (Ha.get_effective_tags()): configured tags plus nosync while leaving sync duty. */
static cJSON *effective_tags(const NodeSnapshot *s) {
        cJSON *t = s->tags ? cJSON_Duplicate(s->tags, true) : cJSON_CreateObject();
        if (!t)
                return NULL;
        if (s->disable_sync) {
                cJSON_DeleteItemFromObjectCaseSensitive(t, "nosync");
                if (!cJSON_AddTrueToObject(t, "nosync")) {
                        cJSON_Delete(t);
                        return NULL;
                }
        }
        return t;
}

static int status_add_postgres(const NodeSnapshot *s, usec_t now, cJSON *doc) {
        cJSON *xlog;

        if (!s->status_ok) {
                /* get_postgresql_status() failed or postgres is not running: state and internal role. */
                if (!add(doc, "state", cJSON_CreateString(snapshot_rest_state(s))) ||
                    !add(doc, "role", cJSON_CreateString(snapshot_rest_role(s))))
                        return -ENOMEM;
                return 0;
        }

        if (!add(doc, "state", cJSON_CreateString(snapshot_rest_state(s))) ||
            !add(doc, "postmaster_start_time", json_datetime_or_null(s->postmaster_start_time)) ||
            !add(doc, "role", cJSON_CreateString(snapshot_rest_role(s))) ||
            !add(doc, "server_version", cJSON_CreateNumber(s->server_version)))
                return -ENOMEM;

        xlog = cJSON_CreateObject();
        if (!add(doc, "xlog", xlog))
                return -ENOMEM;
        if (s->in_recovery) {
                if (!add(xlog,
                         "received_location",
                         cJSON_CreateNumber((double)(s->received_location ?: s->replayed_location))) ||
                    !add(xlog, "replayed_location", cJSON_CreateNumber((double)s->replayed_location)) ||
                    !add(xlog, "replayed_timestamp", json_datetime_or_null(s->replayed_timestamp)) ||
                    !add(xlog, "paused", cJSON_CreateBool(s->replay_paused)))
                        return -ENOMEM;
        } else if (!add(xlog, "location", cJSON_CreateNumber((double)s->wal_location)))
                return -ENOMEM;

        if (snapshot_is_sync_standby(s, now) && !add(doc, "sync_standby", cJSON_CreateTrue()))
                return -ENOMEM;
        if (snapshot_is_quorum_standby(s, now) && !add(doc, "quorum_standby", cJSON_CreateTrue()))
                return -ENOMEM;
        if (s->in_recovery && s->upstream_detached && !add(doc, "upstream_detached", cJSON_CreateTrue()))
                return -ENOMEM;

        if (!add(doc,
                 "timeline",
                 !s->in_recovery || s->timeline > 0 ? cJSON_CreateNumber(s->timeline) : cJSON_CreateNull()))
                return -ENOMEM;

        if (s->n_replication > 0) {
                cJSON *rows = cJSON_CreateArray();
                if (!add(doc, "replication", rows))
                        return -ENOMEM;
                for (size_t i = 0; i < s->n_replication; i++) {
                        const SnapshotReplication *r = &s->replication[i];
                        cJSON *row = cJSON_CreateObject();
                        if (!row)
                                return -ENOMEM;
                        cJSON_AddItemToArray(rows, row);
                        if (!add(row, "usename", json_string_or_null(r->usename)) ||
                            !add(row, "application_name", json_string_or_null(r->application_name)) ||
                            !add(row, "client_addr", json_string_or_null(r->client_addr)) ||
                            !add(row, "state", json_string_or_null(r->state)) ||
                            !add(row, "sync_state", json_string_or_null(r->sync_state)) ||
                            !add(row, "sync_priority", cJSON_CreateNumber(r->sync_priority)))
                                return -ENOMEM;
                }
        }
        return 0;
}

/* snapshot_status_json - see the header. Order follows Patroni: the postgres part of
 * get_postgresql_status(), then cluster_unlocked, failsafe_mode_is_active, dcs_last_seen, then what
 * _write_status_response() appends (tags, sysid, pending_restart, patroni, scheduled_restart,
 * watchdog_failed, pause). The "patroni" object also carries "name" (added by 4.x, ignored by 3.0.2
 * readers). Returns 0 or -ENOMEM. */
int snapshot_status_json(const NodeSnapshot *s, usec_t now, cJSON **ret) {
        cJSON *doc, *patroni;
        int r;

        doc = cJSON_CreateObject();
        if (!doc)
                return -ENOMEM;

        r = status_add_postgres(s, now, doc);
        if (r < 0)
                goto fail;
        r = -ENOMEM;

        if ((!snapshot_has_cluster(s, now) || !s->leader_name) &&
            !add(doc, "cluster_unlocked", cJSON_CreateTrue()))
                goto fail;
        if (s->failsafe_active && !add(doc, "failsafe_mode_is_active", cJSON_CreateTrue()))
                goto fail;
        if (!add(doc, "dcs_last_seen", cJSON_CreateNumber((double)s->dcs_last_seen)))
                goto fail;

        if (s->tags || s->disable_sync) {
                cJSON *t = effective_tags(s);
                if (!t)
                        goto fail;
                if (cJSON_GetArraySize(t) > 0)
                        cJSON_AddItemToObject(doc, "tags", t);
                else
                        cJSON_Delete(t);
        }
        if (!isempty(s->database_system_identifier) &&
            !add(doc, "database_system_identifier", cJSON_CreateString(s->database_system_identifier)))
                goto fail;
        if (s->pending_restart && !add(doc, "pending_restart", cJSON_CreateTrue()))
                goto fail;

        patroni = cJSON_CreateObject();
        if (!add(doc, "patroni", patroni) ||
            !add(patroni, "version", cJSON_CreateString(s->version ?: "3.0.2")) ||
            !add(patroni, "scope", cJSON_CreateString(strempty(s->scope))))
                goto fail;
        if (s->name && !add(patroni, "name", cJSON_CreateString(s->name)))
                goto fail;

        if (cJSON_IsObject(s->scheduled_restart)) {
                cJSON *sr = cJSON_Duplicate(s->scheduled_restart, true);
                if (!add(doc, "scheduled_restart", sr))
                        goto fail;
                cJSON_DeleteItemFromObjectCaseSensitive(sr, "postmaster_start_time");
        }
        if (s->watchdog_failed && !add(doc, "watchdog_failed", cJSON_CreateTrue()))
                goto fail;
        if (s->paused && !add(doc, "pause", cJSON_CreateTrue()))
                goto fail;

        *ret = doc;
        return 0;
fail:
        cJSON_Delete(doc);
        return r;
}

/* ==== Loading a snapshot description (tests, debugging) ==== */

static int load_error(char **reterr, const char *what, const char *key) {
        if (reterr) {
                char *m = NULL;
                if (asprintf(&m, "%s%s%s%s", what, key ? " \"" : "", strempty(key), key ? "\"" : "") < 0)
                        m = NULL;
                free(*reterr);
                *reterr = m;
        }
        return -EINVAL;
}

static int load_string(const cJSON *v, char **dst) {
        if (cJSON_IsNull(v))
                return free_and_strdup(dst, NULL);
        if (!cJSON_IsString(v))
                return -EINVAL;
        return free_and_strdup(dst, v->valuestring);
}

static int load_u64(const cJSON *v, uint64_t *dst) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0)
                return -EINVAL;
        *dst = (uint64_t)v->valuedouble;
        return 0;
}

static int load_bool(const cJSON *v, bool *dst) {
        if (!cJSON_IsBool(v))
                return -EINVAL;
        *dst = cJSON_IsTrue(v);
        return 0;
}

/* Seconds (may be negative: already expired) from now, as a CLOCK_MONOTONIC deadline; 0 stays "never". */
static int load_deadline(const cJSON *v, usec_t now, usec_t *dst) {
        if (cJSON_IsNull(v)) {
                *dst = 0;
                return 0;
        }
        if (!cJSON_IsNumber(v))
                return -EINVAL;
        double d = (double)now + v->valuedouble * (double)USEC_PER_SEC;
        *dst = d <= 1 ? 1 : (usec_t)d;
        return 0;
}

static int load_epoch(const cJSON *v, usec_t *dst) {
        if (cJSON_IsNull(v)) {
                *dst = 0;
                return 0;
        }
        if (!cJSON_IsNumber(v) || v->valuedouble < 0)
                return -EINVAL;
        *dst = (usec_t)llround(v->valuedouble * (double)USEC_PER_SEC);
        return 0;
}

static int load_json(const cJSON *v, cJSON **dst) {
        cJSON *c = NULL;
        if (!cJSON_IsNull(v)) {
                c = cJSON_Duplicate(v, true);
                if (!c)
                        return -ENOMEM;
        }
        cJSON_Delete(*dst);
        *dst = c;
        return 0;
}

static int load_replication(const cJSON *v, NodeSnapshot *s) {
        size_t n;

        if (!cJSON_IsArray(v))
                return -EINVAL;
        n = (size_t)cJSON_GetArraySize(v);
        s->replication = calloc(n ?: 1, sizeof(SnapshotReplication));
        if (!s->replication)
                return -ENOMEM;
        const cJSON *row;
        cJSON_ArrayForEach (row, v) {
                SnapshotReplication *r = &s->replication[s->n_replication++];
                const cJSON *f;
                if (!cJSON_IsObject(row))
                        return -EINVAL;
                cJSON_ArrayForEach (f, row) {
                        int k;
                        if (streq(f->string, "usename"))
                                k = load_string(f, &r->usename);
                        else if (streq(f->string, "application_name"))
                                k = load_string(f, &r->application_name);
                        else if (streq(f->string, "client_addr"))
                                k = load_string(f, &r->client_addr);
                        else if (streq(f->string, "state"))
                                k = load_string(f, &r->state);
                        else if (streq(f->string, "sync_state"))
                                k = load_string(f, &r->sync_state);
                        else if (streq(f->string, "sync_priority") && cJSON_IsNumber(f)) {
                                r->sync_priority = f->valueint;
                                k = 0;
                        } else
                                k = -EINVAL;
                        if (k < 0)
                                return k;
                }
        }
        return 0;
}

/* snapshot_load_json - see the header. Every key of the description maps onto one field; "role" is the
 * internal role; "is_leader": true is shorthand for a lock that never expires, "cluster_view": true for a
 * cache that never expires. On failure *ret is left untouched and *reterr_message names the bad key. */
int snapshot_load_json(const cJSON *j, usec_t now, NodeSnapshot *ret, char **reterr_message) {
        NodeSnapshot s = {
                .status_ok = true,
                .ttl = 30 * USEC_PER_SEC,
                .next_run = now,
        };
        const cJSON *f;
        int r = 0;

        if (!cJSON_IsObject(j))
                return load_error(reterr_message, "snapshot description is not a JSON object", NULL);

        cJSON_ArrayForEach (f, j) {
                const char *k = f->string;
                bool b = false;

                if (streq(k, "scope"))
                        r = load_string(f, &s.scope);
                else if (streq(k, "name"))
                        r = load_string(f, &s.name);
                else if (streq(k, "version"))
                        r = load_string(f, &s.version);
                else if (streq(k, "state"))
                        r = load_string(f, &s.state);
                else if (streq(k, "role")) {
                        s.role = cJSON_IsString(f) ? snapshot_role_from_string(f->valuestring)
                                                   : _SNAPSHOT_ROLE_INVALID;
                        r = s.role < 0 ? -EINVAL : 0;
                } else if (streq(k, "status_ok"))
                        r = load_bool(f, &s.status_ok);
                else if (streq(k, "in_recovery"))
                        r = load_bool(f, &s.in_recovery);
                else if (streq(k, "postmaster_start_time"))
                        r = load_epoch(f, &s.postmaster_start_time);
                else if (streq(k, "server_version")) {
                        uint64_t v = 0;
                        r = load_u64(f, &v);
                        s.server_version = (unsigned)v;
                } else if (streq(k, "xlog_location"))
                        r = load_u64(f, &s.wal_location);
                else if (streq(k, "received_location"))
                        r = load_u64(f, &s.received_location);
                else if (streq(k, "replayed_location"))
                        r = load_u64(f, &s.replayed_location);
                else if (streq(k, "replayed_timestamp"))
                        r = load_epoch(f, &s.replayed_timestamp);
                else if (streq(k, "replay_paused"))
                        r = load_bool(f, &s.replay_paused);
                else if (streq(k, "timeline")) {
                        uint64_t v = 0;
                        r = cJSON_IsNull(f) ? 0 : load_u64(f, &v);
                        s.timeline = (unsigned)v;
                } else if (streq(k, "replication"))
                        r = load_replication(f, &s);
                else if (streq(k, "database_system_identifier"))
                        r = load_string(f, &s.database_system_identifier);
                else if (streq(k, "pending_restart"))
                        r = load_bool(f, &s.pending_restart);
                else if (streq(k, "is_leader")) {
                        r = load_bool(f, &b);
                        s.leader_expiry = b ? USEC_INFINITY : 0;
                } else if (streq(k, "leader_expires_in"))
                        r = load_deadline(f, now, &s.leader_expiry);
                else if (streq(k, "cluster_view")) {
                        r = load_bool(f, &b);
                        s.cluster_valid_until = b ? USEC_INFINITY : 0;
                } else if (streq(k, "cluster_valid_for"))
                        r = load_deadline(f, now, &s.cluster_valid_until);
                else if (streq(k, "next_run_in"))
                        r = load_deadline(f, now, &s.next_run);
                else if (streq(k, "ttl")) {
                        usec_t t = 0;
                        r = load_epoch(f, &t);
                        s.ttl = t;
                } else if (streq(k, "dcs_last_seen"))
                        r = load_u64(f, &s.dcs_last_seen);
                else if (streq(k, "leader_name"))
                        r = load_string(f, &s.leader_name);
                else if (streq(k, "leader_optime"))
                        r = load_u64(f, &s.leader_optime);
                else if (streq(k, "synchronous_mode"))
                        r = load_bool(f, &s.synchronous_mode);
                else if (streq(k, "sync_member"))
                        r = load_bool(f, &s.sync_member);
                else if (streq(k, "quorum_mode"))
                        r = load_bool(f, &s.quorum_mode);
                else if (streq(k, "upstream_detached"))
                        r = load_bool(f, &s.upstream_detached);
                else if (streq(k, "standby_cluster"))
                        r = load_bool(f, &s.standby_cluster);
                else if (streq(k, "paused"))
                        r = load_bool(f, &s.paused);
                else if (streq(k, "failsafe_mode"))
                        r = load_bool(f, &s.failsafe_mode);
                else if (streq(k, "failsafe_active"))
                        r = load_bool(f, &s.failsafe_active);
                else if (streq(k, "watchdog_failed"))
                        r = load_bool(f, &s.watchdog_failed);
                else if (streq(k, "disable_sync"))
                        r = load_bool(f, &s.disable_sync);
                else if (streq(k, "tags"))
                        r = cJSON_IsNull(f) ? 0 : snapshot_set_tags_from_config(&s, f);
                else if (streq(k, "scheduled_restart"))
                        r = load_json(f, &s.scheduled_restart);
                else if (streq(k, "cluster"))
                        r = load_json(f, &s.cluster);
                else if (streq(k, "history"))
                        r = load_json(f, &s.history);
                else if (streq(k, "config"))
                        r = load_json(f, &s.config);
                else if (streq(k, "failsafe"))
                        r = load_json(f, &s.failsafe);
                else {
                        snapshot_done(&s);
                        return load_error(reterr_message, "unknown snapshot key", k);
                }
                if (r < 0) {
                        snapshot_done(&s);
                        if (r == -ENOMEM)
                                return r;
                        return load_error(reterr_message, "bad value for snapshot key", k);
                }
        }

        snapshot_done(ret);
        *ret = s;
        return 0;
}
