/* SPDX-License-Identifier: MIT */
/*
 * Patroni's cluster layout over the etcd client. Every operation is asynchronous and owned by the Dcs
 * object (freed with it, callbacks then never run). Parsing is pure (dcs_cluster_parse) so it is tested
 * with recorded replies.
 *
 * Invariants: the leader key is only ever created with a create-only txn bound to our lease, and only
 * renewed or deleted under a compare on its value being our name, so a lock someone else took after
 * our lease expired is never overwritten. The keep-alive timer runs on its own, at the priority given,
 * and lease_last_renewal is the *start* time of the last successful grant/keep-alive, so
 * last_renewal + ttl never overestimates how long etcd keeps the lease.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>

#include "pgha/dcs.h"
#include "pgha/json.h"
#include "pgha/log.h"

#define DCS_LEASE_RETRY (1 * USEC_PER_SEC) /* keep-alive/grant retry after a failure, at most */

typedef enum DcsOpKind {
        DCS_OP_WRITE,   /* plain put/delete: success is any 2xx */
        DCS_OP_TXN,     /* txn: success is "succeeded" */
        DCS_OP_ACQUIRE, /* leader create-only txn, failure branch reads the holder */
        DCS_OP_RENEW,   /* leader value-guarded txn, failure branch reads the holder */
        DCS_OP_CLUSTER, /* prefix range */
} DcsOpKind;

typedef struct DcsOp DcsOp;
struct DcsOp {
        Dcs *dcs;
        EtcdCall *call;
        DcsOpKind kind;
        DcsWriteCallback write_cb;
        DcsClusterCallback cluster_cb;
        void *userdata;
        int64_t lease; /* acquire/renew: the lease the leader key is put with */
        DcsOp *prev, *next;
};

/* A lease we stopped keeping alive (ttl change, expiry): the leader key may still be bound to it until
 * the next renewal, so its last known validity is remembered. */
typedef struct DcsOldLease {
        int64_t id;
        usec_t valid_until;
} DcsOldLease;

#define DCS_OLD_LEASES 4

struct Dcs {
        sd_event *event;
        EtcdClient *etcd; /* borrowed; outlives us */
        char *prefix;     /* "/<ns>/<scope>/" */
        char *name;
        unsigned ttl;
        usec_t keepalive_interval;
        bool keepalive_explicit; /* set in DcsOptions: not derived from ttl */
        int64_t priority;
        DcsOp *ops;

        int64_t lease_id;          /* 0: none */
        unsigned lease_ttl;        /* TTL of lease_id: the ttl asked for, or less if etcd granted less */
        usec_t lease_last_renewal; /* CLOCK_MONOTONIC start of the last successful grant/keep-alive */
        DcsOldLease old_leases[DCS_OLD_LEASES]; /* ring of dropped leases */
        unsigned old_lease_next;
        usec_t lease_request_start;
        EtcdCall *lease_call;
        sd_event_source *lease_timer; /* "dcs-lease": keep-alive, independent of the HA loop */
        DcsLeaseCallback lease_cb;
        void *lease_userdata;

        EtcdWatch *watch;
        DcsWakeCallback wake_cb;
        void *wake_userdata;
        usec_t watch_stall;
        char *watch_leader; /* leader value as last seen (read or watch) */
        bool watch_created_once;
};

static const char *const dcs_wake_reason_table[_DCS_WAKE_REASON_MAX] = {
        [DCS_WAKE_READY] = "ready",
        [DCS_WAKE_LEADER] = "leader",
        [DCS_WAKE_STATUS] = "status",
        [DCS_WAKE_CONFIG] = "config",
        [DCS_WAKE_RESYNC] = "resync",
};

/* dcs_wake_reason_to_string - "ready", "leader", ... for logs; NULL when out of range. */
const char *dcs_wake_reason_to_string(DcsWakeReason r) {
        return r >= 0 && r < _DCS_WAKE_REASON_MAX ? dcs_wake_reason_table[r] : NULL;
}

static usec_t now_usec(sd_event *e) {
        usec_t t = 0;

        (void)sd_event_now(e, CLOCK_MONOTONIC, &t);
        return t;
}

/* ==== Parsing ==== */

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static void dcs_member_done(DcsMember *m) {
        free(m->name);
        cJSON_Delete(m->data);
        free(m->conn_url);
        free(m->api_url);
        free(m->state);
        free(m->role);
        free(m->version);
        free(m->proxy_url);
        *m = (DcsMember){};
}

static char **strv_free(char **v) {
        for (char **i = v; i && *i; i++)
                free(*i);
        free(v);
        return NULL;
}

/* dcs_cluster_free - frees c and everything it owns; returns NULL. */
DcsCluster *dcs_cluster_free(DcsCluster *c) {
        if (!c)
                return NULL;
        free(c->initialize);
        cJSON_Delete(c->config);
        free(c->leader);
        for (size_t i = 0; i < c->n_members; i++)
                dcs_member_done(&c->members[i]);
        free(c->members);
        cJSON_Delete(c->status_slots);
        free(c->sync_leader);
        strv_free(c->sync_standby);
        free(c->failover_leader);
        free(c->failover_member);
        free(c->failover_scheduled_at);
        cJSON_Delete(c->history);
        cJSON_Delete(c->failsafe);
        free(c);
        return NULL;
}

static int parse_json_value(const EtcdKv *kv, cJSON **ret) {
        return json_parse(kv->value, kv->value_size, ETCD_REPLY_MAX, JSON_MAX_DEPTH_DEFAULT, ret);
}

/* Python's int() on a JSON value: integers, floats (truncated), decimal strings with optional sign and
 * surrounding white space, booleans (1/0). false where int() would raise. */
static bool python_int(const cJSON *v, int64_t *ret) {
        if (!v)
                return false;
        if (cJSON_IsString(v) && v->valuestring) {
                const char *s = v->valuestring;
                char *end;
                long long l;

                while (isspace((unsigned char)*s))
                        s++;
                if (!*s)
                        return false;
                errno = 0;
                l = strtoll(s, &end, 10);
                if (errno != 0 || end == s)
                        return false;
                while (isspace((unsigned char)*end))
                        end++;
                if (*end)
                        return false;
                *ret = (int64_t)l;
                return true;
        }
        if (cJSON_IsNumber(v)) {
                double d = v->valuedouble;

                if (d != d || d >= 9.2e18 || d <= -9.2e18)
                        return false;
                *ret = (int64_t)d; /* int() truncates */
                return true;
        }
        if (cJSON_IsBool(v)) {
                *ret = cJSON_IsTrue(v) ? 1 : 0;
                return true;
        }
        return false;
}

/* Python's int() on an optime; 0 where it would raise. */
static int64_t parse_int_loose(const cJSON *v) {
        int64_t x;

        return python_int(v, &x) ? x : 0;
}

static int member_string(const cJSON *data, const char *field, char **ret) {
        const char *s;

        if (json_get_string(data, field, &s) < 0)
                return 0; /* missing or wrong type: tolerated, left NULL */
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* Legacy Governor format: "postgres://...?application_name=<api_url>". */
static int member_parse_legacy(DcsMember *m, const char *value) {
        const char *p;

        m->conn_url = strdup(value);
        if (!m->conn_url)
                return -ENOMEM;
        p = strstr(value, "application_name=");
        if (p) {
                p += strlen("application_name=");
                m->api_url = strndup(p, strcspn(p, "&"));
                if (!m->api_url)
                        return -ENOMEM;
        }
        m->data = cJSON_CreateObject();
        if (!m->data || json_add_string(m->data, "conn_url", m->conn_url) < 0 ||
            (m->api_url && json_add_string(m->data, "api_url", m->api_url) < 0))
                return -ENOMEM;
        return 0;
}

static int member_parse(DcsMember *m, const char *name, const EtcdKv *kv) {
        const cJSON *d;
        bool b;
        int64_t v;
        int r;

        m->checkpoint_after_promote = -1;
        m->name = strdup(name);
        if (!m->name)
                return -ENOMEM;
        m->mod_revision = kv->mod_revision;
        m->lease = kv->lease;
        if (startswith(kv->value, "postgres"))
                return member_parse_legacy(m, kv->value);
        if (parse_json_value(kv, &m->data) < 0 || !cJSON_IsObject(m->data)) {
                cJSON_Delete(m->data);
                m->data = cJSON_CreateObject(); /* invalid JSON counts as {} */
                return m->data ? 0 : -ENOMEM;
        }
        d = m->data;
        if ((r = member_string(d, "conn_url", &m->conn_url)) < 0 ||
            (r = member_string(d, "api_url", &m->api_url)) < 0 ||
            (r = member_string(d, "state", &m->state)) < 0 || (r = member_string(d, "role", &m->role)) < 0 ||
            (r = member_string(d, "version", &m->version)) < 0 ||
            (r = member_string(d, "proxy_url", &m->proxy_url)) < 0)
                return r;
        if (cJSON_IsObject(json_get(d, "tags")))
                m->tags = json_get(d, "tags");
        if (cJSON_IsObject(json_get(d, "scheduled_restart")))
                m->scheduled_restart = json_get(d, "scheduled_restart");
        if (json_get(d, "xlog_location") && json_get_int64(d, "xlog_location", &v) >= 0) {
                m->has_xlog_location = true;
                m->xlog_location = v;
        }
        if (json_get(d, "timeline") && json_get_int64(d, "timeline", &v) >= 0) {
                m->has_timeline = true;
                m->timeline = v;
        }
        if (json_get_bool(d, "checkpoint_after_promote", &b) >= 0)
                m->checkpoint_after_promote = b;
        m->pending_restart = cJSON_IsTrue(json_get(d, "pending_restart"));
        m->pause = cJSON_IsTrue(json_get(d, "pause"));
        return 0;
}

static int split_sync_standby(const char *s, char ***ret) {
        char **v;
        size_t n = 0;

        v = calloc(strlen(s ?: "") / 2 + 2, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (const char *p = s; p && *p;) {
                size_t len = strcspn(p, ",");
                const char *b = p, *e = p + len;

                while (b < e && (*b == ' ' || *b == '\t'))
                        b++;
                while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if (e > b) {
                        v[n] = strndup(b, (size_t)(e - b));
                        if (!v[n]) {
                                strv_free(v);
                                return -ENOMEM;
                        }
                        n++;
                }
                p += len;
                if (*p == ',')
                        p++;
        }
        *ret = v;
        return 0;
}

static int cluster_parse_sync(DcsCluster *c, const EtcdKv *kv) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const char *leader = NULL, *standby = NULL;

        c->has_sync = true;
        c->sync_revision = kv->mod_revision;
        c->sync_quorum = -1;
        if (parse_json_value(kv, &j) >= 0 && cJSON_IsObject(j)) {
                int64_t q;

                (void)json_get_string(j, "leader", &leader);
                (void)json_get_string(j, "sync_standby", &standby);
                if (json_get_int64(j, "quorum", &q) >= 0 && q >= 0)
                        c->sync_quorum = q;
        }
        c->sync_standby = strv_free(c->sync_standby);
        if (leader && !(c->sync_leader = strdup(leader)))
                return -ENOMEM;
        return split_sync_standby(standby, &c->sync_standby);
}

/* A copy of s[0..n) without the white space around it, as Python's str.strip(). */
static char *strndup_strip(const char *s, size_t n) {
        while (n > 0 && isspace((unsigned char)*s))
                s++, n--;
        while (n > 0 && isspace((unsigned char)s[n - 1]))
                n--;
        return strndup(s, n);
}

static int cluster_parse_failover(DcsCluster *c, const EtcdKv *kv) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const char *leader = NULL, *member = NULL, *at = NULL;

        c->failover_revision = kv->mod_revision;
        if (parse_json_value(kv, &j) >= 0) {
                if (cJSON_IsObject(j)) {
                        (void)json_get_string(j, "leader", &leader);
                        (void)json_get_string(j, "member", &member);
                        (void)json_get_string(j, "scheduled_at", &at);
                }
        } else if (!isempty(kv->value)) {
                /* Not JSON: Patroni's Failover.from_node() splits on every ':' and strips each part;
                 * the first is the leader, the second (if any) the candidate, the rest is ignored. */
                const char *colon = strchr(kv->value, ':');
                const char *second = colon ? colon + 1 : NULL;

                c->failover_leader =
                        strndup_strip(kv->value, colon ? (size_t)(colon - kv->value) : strlen(kv->value));
                if (!c->failover_leader)
                        return -ENOMEM;
                if (second) {
                        c->failover_member = strndup_strip(second, strcspn(second, ":"));
                        if (!c->failover_member)
                                return -ENOMEM;
                }
        }
        if ((leader && !(c->failover_leader = strdup(leader))) ||
            (member && !(c->failover_member = strdup(member))) ||
            (at && !(c->failover_scheduled_at = strdup(at))))
                return -ENOMEM;
        c->has_failover = !isempty(c->failover_leader) || !isempty(c->failover_member);
        return 0;
}

static int cluster_parse_history(DcsCluster *c, const EtcdKv *kv) {
        const cJSON *last, *tl;
        int64_t t;

        c->history_revision = kv->mod_revision;
        if (parse_json_value(kv, &c->history) < 0 || !cJSON_IsArray(c->history)) {
                cJSON_Delete(c->history);
                c->history = cJSON_CreateArray();
                if (!c->history)
                        return -ENOMEM;
        }
        /* Patroni's Cluster.timeline: int(lines[-1][0]) + 1, 0 where that raises; without lines 1 only
         * for the exact value "[]" (invalid JSON or a non-list gives 0). A timeline outside 0..2^31-2
         * is taken as unparsable (0). */
        c->history_timeline = 0;
        if (cJSON_GetArraySize(c->history) == 0) {
                if (kv->value_size == 2 && memcmp(kv->value, "[]", 2) == 0)
                        c->history_timeline = 1;
                return 0;
        }
        last = cJSON_GetArrayItem(c->history, cJSON_GetArraySize(c->history) - 1);
        if (cJSON_IsArray(last)) {
                tl = cJSON_GetArrayItem(last, 0);
                if (python_int(tl, &t) && t >= 0 && t < INT32_MAX)
                        c->history_timeline = t + 1;
        } else if (
                cJSON_IsString(last) && last->valuestring && last->valuestring[0] >= '0' &&
                last->valuestring[0] <= '9')
                c->history_timeline = last->valuestring[0] - '0' + 1; /* a string's [0]: its first char */
        return 0;
}

static int member_compare(const void *a, const void *b) {
        return strcmp(((const DcsMember *)a)->name, ((const DcsMember *)b)->name);
}

/* dcs_cluster_parse - builds the cluster view from the kvs of a prefix range under prefix
 * ("/<ns>/<scope>/"). Values are parsed as Patroni 3.0.2 does (§1.2 of patroni-compat.md): invalid
 * JSON never fails the read, it becomes the documented default. Only out-of-memory fails. */
int dcs_cluster_parse(const char *prefix, const EtcdKv *kvs, size_t n, int64_t revision, DcsCluster **ret) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
        size_t plen = strlen(prefix);
        int r;

        c = calloc(1, sizeof(DcsCluster));
        if (!c)
                return -ENOMEM;
        c->revision = revision;
        c->members = calloc(MIN(n, (size_t)DCS_MEMBERS_MAX) + 1, sizeof(DcsMember));
        if (!c->members)
                return -ENOMEM;
        c->sync_standby = calloc(1, sizeof(char *));
        if (!c->sync_standby)
                return -ENOMEM;
        c->sync_quorum = -1;

        for (size_t i = 0; i < n; i++) {
                const EtcdKv *kv = &kvs[i];
                const char *k, *name;

                if (!kv->key || strncmp(kv->key, prefix, plen) != 0)
                        continue;
                k = kv->key + plen;

                if (streq(k, "initialize")) {
                        c->has_initialize = true;
                        c->initialize_revision = kv->mod_revision;
                        if (free_and_strdup(&c->initialize, kv->value) < 0)
                                return -ENOMEM;
                } else if (streq(k, "config")) {
                        cJSON_Delete(c->config);
                        c->config = NULL;
                        c->config_revision = kv->mod_revision;
                        if (parse_json_value(kv, &c->config) < 0 || !cJSON_IsObject(c->config)) {
                                cJSON_Delete(c->config);
                                c->config = cJSON_CreateObject(); /* Patroni: {} with index 0 */
                                c->config_revision = 0;
                                if (!c->config)
                                        return -ENOMEM;
                        }
                } else if (streq(k, "leader")) {
                        if (free_and_strdup(&c->leader, kv->value) < 0)
                                return -ENOMEM;
                        c->leader_revision = kv->mod_revision;
                        c->leader_create_revision = kv->create_revision;
                        c->leader_lease = kv->lease;
                } else if ((name = startswith(k, "members/"))) {
                        if (isempty(name) || strchr(name, '/'))
                                continue;
                        if (c->n_members >= DCS_MEMBERS_MAX) {
                                c->n_members_ignored++;
                                continue;
                        }
                        r = member_parse(&c->members[c->n_members], name, kv);
                        if (r < 0) {
                                dcs_member_done(&c->members[c->n_members]);
                                return r;
                        }
                        c->n_members++;
                } else if (streq(k, "status")) {
                        _cleanup_(cJSON_Deletep) cJSON *j = NULL;

                        c->has_status = true;
                        c->status_revision = kv->mod_revision;
                        if (parse_json_value(kv, &j) >= 0 && cJSON_IsObject(j)) {
                                c->status_optime = parse_int_loose(json_get(j, "optime"));
                                if (cJSON_IsObject(json_get(j, "slots"))) {
                                        c->status_slots = cJSON_Duplicate(json_get(j, "slots"), true);
                                        if (!c->status_slots)
                                                return -ENOMEM;
                                }
                        }
                } else if (streq(k, "optime/leader")) {
                        cJSON tmp = {.type = cJSON_String, .valuestring = kv->value};

                        c->has_optime_leader = true;
                        c->optime_leader = parse_int_loose(&tmp);
                } else if (streq(k, "sync")) {
                        r = cluster_parse_sync(c, kv);
                        if (r < 0)
                                return r;
                } else if (streq(k, "failover")) {
                        r = cluster_parse_failover(c, kv);
                        if (r < 0)
                                return r;
                } else if (streq(k, "history")) {
                        r = cluster_parse_history(c, kv);
                        if (r < 0)
                                return r;
                } else if (streq(k, "failsafe")) {
                        c->failsafe_revision = kv->mod_revision;
                        if (parse_json_value(kv, &c->failsafe) < 0 || !cJSON_IsObject(c->failsafe)) {
                                cJSON_Delete(c->failsafe);
                                c->failsafe = NULL; /* "no failsafe data" */
                        }
                }
        }
        qsort(c->members, c->n_members, sizeof(DcsMember), member_compare);
        *ret = TAKE_PTR(c);
        return 0;
}

/* dcs_cluster_find_member - the member called name, or NULL. */
const DcsMember *dcs_cluster_find_member(const DcsCluster *c, const char *name) {
        for (size_t i = 0; c && name && i < c->n_members; i++)
                if (streq(c->members[i].name, name))
                        return &c->members[i];
        return NULL;
}

/* dcs_cluster_optime - the leader's last reported WAL position: status.optime, or the legacy
 * optime/leader when status is absent. */
int64_t dcs_cluster_optime(const DcsCluster *c) {
        if (c->has_status)
                return c->status_optime;
        return c->has_optime_leader ? c->optime_leader : 0;
}

/* dcs_cluster_is_sync_standby - whether name is listed in sync.sync_standby. */
bool dcs_cluster_is_sync_standby(const DcsCluster *c, const char *name) {
        for (char **s = c->sync_standby; s && *s; s++)
                if (streq(*s, name))
                        return true;
        return false;
}

static int add_dup(cJSON *o, const char *k, const cJSON *v) {
        if (!v)
                return json_add_item(o, k, cJSON_CreateNull());
        return json_add_item(o, k, cJSON_Duplicate(v, true));
}

static int add_str_or_null(cJSON *o, const char *k, const char *v) {
        return json_add_item(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* dcs_cluster_to_json - the parsed view as one JSON object (for tools, tests and debugging). */
int dcs_cluster_to_json(const DcsCluster *c, cJSON **ret) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        cJSON *members, *sync;

        if (!o)
                return -ENOMEM;
        if (json_add_int64(o, "revision", c->revision) < 0 ||
            add_str_or_null(o, "initialize", c->has_initialize ? c->initialize : NULL) < 0 ||
            add_dup(o, "config", c->config) < 0 ||
            json_add_int64(o, "config_revision", c->config_revision) < 0 ||
            add_str_or_null(o, "leader", c->leader) < 0 ||
            json_add_int64(o, "leader_revision", c->leader_revision) < 0 ||
            json_add_int64(o, "leader_lease", c->leader_lease) < 0 ||
            json_add_item(
                    o,
                    "status_optime",
                    c->has_status ? json_int64_new(c->status_optime) : cJSON_CreateNull()) < 0 ||
            add_dup(o, "status_slots", c->status_slots) < 0 ||
            json_add_item(
                    o,
                    "optime_leader",
                    c->has_optime_leader ? json_int64_new(c->optime_leader) : cJSON_CreateNull()) < 0 ||
            json_add_int64(o, "optime", dcs_cluster_optime(c)) < 0 ||
            add_str_or_null(o, "failover_leader", c->failover_leader) < 0 ||
            add_str_or_null(o, "failover_member", c->failover_member) < 0 ||
            add_str_or_null(o, "failover_scheduled_at", c->failover_scheduled_at) < 0 ||
            json_add_bool(o, "has_failover", c->has_failover) < 0 ||
            json_add_int64(o, "failover_revision", c->failover_revision) < 0 ||
            add_dup(o, "history", c->history) < 0 ||
            json_add_int64(o, "history_timeline", c->history_timeline) < 0 ||
            add_dup(o, "failsafe", c->failsafe) < 0)
                return -ENOMEM;

        sync = cJSON_CreateArray();
        if (json_add_bool(o, "has_sync", c->has_sync) < 0 ||
            add_str_or_null(o, "sync_leader", c->sync_leader) < 0 ||
            json_add_item(o, "sync_standby", sync) < 0 ||
            json_add_int64(o, "sync_revision", c->sync_revision) < 0 ||
            json_add_int64(o, "sync_quorum", c->sync_quorum) < 0)
                return -ENOMEM;
        for (char **s = c->sync_standby; s && *s; s++)
                if (!cJSON_AddItemToArray(sync, cJSON_CreateString(*s)))
                        return -ENOMEM;

        members = cJSON_CreateObject();
        if (json_add_item(o, "members", members) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_members; i++) {
                const DcsMember *m = &c->members[i];
                cJSON *mo = cJSON_CreateObject();

                if (json_add_item(members, m->name, mo) < 0 ||
                    add_str_or_null(mo, "conn_url", m->conn_url) < 0 ||
                    add_str_or_null(mo, "api_url", m->api_url) < 0 ||
                    add_str_or_null(mo, "state", m->state) < 0 || add_str_or_null(mo, "role", m->role) < 0 ||
                    add_str_or_null(mo, "version", m->version) < 0 ||
                    add_str_or_null(mo, "proxy_url", m->proxy_url) < 0 || add_dup(mo, "tags", m->tags) < 0 ||
                    add_dup(mo, "scheduled_restart", m->scheduled_restart) < 0 ||
                    json_add_item(
                            mo,
                            "xlog_location",
                            m->has_xlog_location ? json_int64_new(m->xlog_location) : cJSON_CreateNull()) <
                            0 ||
                    json_add_item(
                            mo,
                            "timeline",
                            m->has_timeline ? json_int64_new(m->timeline) : cJSON_CreateNull()) < 0 ||
                    json_add_item(
                            mo,
                            "checkpoint_after_promote",
                            m->checkpoint_after_promote < 0
                                    ? cJSON_CreateNull()
                                    : cJSON_CreateBool(m->checkpoint_after_promote)) < 0 ||
                    json_add_bool(mo, "pending_restart", m->pending_restart) < 0 ||
                    json_add_bool(mo, "pause", m->pause) < 0 ||
                    json_add_int64(mo, "mod_revision", m->mod_revision) < 0 ||
                    json_add_int64(mo, "lease", m->lease) < 0 || add_dup(mo, "data", m->data) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* ==== Operations ==== */

static void dcs_op_free(DcsOp *op) {
        Dcs *d;

        if (!op)
                return;
        d = op->dcs;
        etcd_call_cancel(op->call);
        if (op->prev)
                op->prev->next = op->next;
        else if (d && d->ops == op)
                d->ops = op->next;
        if (op->next)
                op->next->prev = op->prev;
        free(op);
}

static const char *
holder_from_failure(const cJSON *reply, size_t index, char **ret_value, int64_t *ret_lease) {
        EtcdKv *kvs = NULL;
        size_t n = 0;

        *ret_value = NULL;
        *ret_lease = 0;
        if (etcd_txn_response_range(reply, index, &kvs, &n) >= 0 && n > 0) {
                *ret_value = TAKE_PTR(kvs[0].value);
                *ret_lease = kvs[0].lease;
        }
        etcd_kvs_free(kvs, n);
        return *ret_value;
}

static void dcs_lease_drop(Dcs *d);

static void on_op_done(EtcdClient *e, int error, const char *message, const cJSON *reply, void *userdata) {
        DcsOp *op = userdata;
        Dcs *d = op->dcs;
        _cleanup_free_ char *holder = NULL;
        DcsWriteResult res = {};
        DcsWriteCallback wcb = op->write_cb;
        DcsClusterCallback ccb = op->cluster_cb;
        void *ud = op->userdata;
        DcsOpKind kind = op->kind;
        int64_t op_lease = op->lease;

        op->call = NULL;
        dcs_op_free(op);

        if (kind == DCS_OP_CLUSTER) {
                _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
                EtcdKv *kvs = NULL;
                size_t n = 0;
                int64_t rev = 0;
                int r = error;

                if (r >= 0) {
                        r = etcd_range_parse(reply, &kvs, &n, &rev);
                        if (r < 0)
                                message = "malformed range reply";
                        else {
                                r = dcs_cluster_parse(d->prefix, kvs, n, rev, &c);
                                etcd_kvs_free(kvs, n);
                        }
                }
                if (r >= 0 && (!streq_ptr(d->watch_leader, c->leader)))
                        (void)free_and_strdup(&d->watch_leader, c->leader);
                if (ccb)
                        ccb(d, r, message, r < 0 ? NULL : TAKE_PTR(c), ud);
                return;
        }

        if (error < 0) {
                if (error == -ENOENT && message && strstr(message, "lease not found") && d->lease_id > 0) {
                        /* Our lease is gone: have the keep-alive timer grant a new one right away. */
                        dcs_lease_drop(d);
                        (void)sd_event_source_set_time_relative(d->lease_timer, 0);
                        (void)sd_event_source_set_enabled(d->lease_timer, SD_EVENT_ONESHOT);
                }
                if (wcb)
                        wcb(d, error, message, NULL, ud);
                return;
        }
        (void)etcd_header_revision(reply, &res.revision);
        switch (kind) {
        case DCS_OP_WRITE:
                res.succeeded = true;
                break;
        case DCS_OP_TXN:
                res.succeeded = etcd_txn_succeeded(reply);
                break;
        case DCS_OP_ACQUIRE:
        case DCS_OP_RENEW: {
                int64_t lease = 0;

                res.succeeded = etcd_txn_succeeded(reply);
                if (res.succeeded) {
                        res.leader = d->name;
                        res.lease = op_lease;
                } else {
                        res.leader = holder_from_failure(reply, 0, &holder, &lease);
                        /* An attempt retried after a timeout may find its own earlier success. */
                        if (kind == DCS_OP_ACQUIRE && holder && streq(holder, d->name) &&
                            lease == d->lease_id && lease > 0) {
                                res.succeeded = true;
                                res.lease = lease;
                        }
                }
                break;
        }
        default:
                break;
        }
        if (wcb)
                wcb(d, 0, NULL, &res, ud);
}

static int
dcs_op_new(Dcs *d, DcsOpKind kind, DcsWriteCallback wcb, DcsClusterCallback ccb, void *ud, DcsOp **ret) {
        DcsOp *op = calloc(1, sizeof(DcsOp));

        if (!op)
                return -ENOMEM;
        op->dcs = d;
        op->kind = kind;
        op->write_cb = wcb;
        op->cluster_cb = ccb;
        op->userdata = ud;
        op->next = d->ops;
        if (d->ops)
                d->ops->prev = op;
        d->ops = op;
        *ret = op;
        return 0;
}

static int dcs_start_txn(Dcs *d, DcsOpKind kind, const cJSON *txn, DcsWriteCallback cb, void *ud) {
        DcsOp *op;
        int r;

        r = dcs_op_new(d, kind, cb, NULL, ud, &op);
        if (r < 0)
                return r;
        op->lease = d->lease_id; /* acquire/renew put the leader key with it */
        r = etcd_txn(d->etcd, txn, on_op_done, op, &op->call);
        if (r < 0)
                dcs_op_free(op);
        return r;
}

/* dcs_key - "<prefix><suffix>" in *ret. */
int dcs_key(const Dcs *d, const char *suffix, char **ret) {
        return asprintf(ret, "%s%s", d->prefix, suffix) < 0 ? -ENOMEM : 0;
}

static int
dcs_put(Dcs *d, const char *suffix, const char *value, int64_t lease, DcsWriteCallback cb, void *ud) {
        _cleanup_free_ char *key = NULL;
        DcsOp *op;
        int r;

        r = dcs_key(d, suffix, &key);
        if (r < 0)
                return r;
        r = dcs_op_new(d, DCS_OP_WRITE, cb, NULL, ud, &op);
        if (r < 0)
                return r;
        r = etcd_put(d->etcd, key, value, lease, on_op_done, op, &op->call);
        if (r < 0)
                dcs_op_free(op);
        return r;
}

static int dcs_put_json(Dcs *d, const char *suffix, const cJSON *value, DcsWriteCallback cb, void *ud) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = json_print_compact(value, &text);
        if (r < 0)
                return r;
        return dcs_put(d, suffix, text, 0, cb, ud);
}

/* CAS put when mod_revision > 0, plain put otherwise. */
static int dcs_cas_put(
        Dcs *d, const char *suffix, const char *value, int64_t mod_revision, DcsWriteCallback cb, void *ud) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (mod_revision <= 0)
                return dcs_put(d, suffix, value, 0, cb, ud);
        if (dcs_key(d, suffix, &key) < 0 || !(txn = etcd_txn_new()) ||
            etcd_txn_compare_int(txn, key, "MOD", "EQUAL", mod_revision) < 0 ||
            etcd_txn_put(txn, true, key, value, 0) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_TXN, txn, cb, ud);
}

/* dcs_get_cluster - reads the whole prefix with one range and hands the parsed view to cb (which then
 * owns it). Also refreshes the leader value the watch compares against. */
int dcs_get_cluster(Dcs *d, DcsClusterCallback cb, void *userdata) {
        _cleanup_free_ char *end = NULL;
        DcsOp *op;
        int r;

        end = etcd_prefix_range_end(d->prefix);
        if (!end)
                return -ENOMEM;
        r = dcs_op_new(d, DCS_OP_CLUSTER, NULL, cb, userdata, &op);
        if (r < 0)
                return r;
        r = etcd_range(d->etcd, d->prefix, end, on_op_done, op, &op->call);
        if (r < 0)
                dcs_op_free(op);
        return r;
}

/* dcs_leader_acquire - races for the lock: create-only txn putting leader=<name> with our lease; the
 * failure branch reads the key, so res->leader names the winner. -ENOLCK without a lease. */
int dcs_leader_acquire(Dcs *d, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (d->lease_id <= 0)
                return -ENOLCK;
        if (dcs_key(d, "leader", &key) < 0 || !(txn = etcd_txn_new()) ||
            etcd_txn_compare_int(txn, key, "CREATE", "EQUAL", 0) < 0 ||
            etcd_txn_put(txn, true, key, d->name, d->lease_id) < 0 || etcd_txn_range(txn, false, key) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_ACQUIRE, txn, cb, userdata);
}

/* dcs_leader_renew - confirms we still hold the lock: only if leader == <name> it is re-put with our
 * current lease (Patroni 4.x's value-guarded form; never the unguarded put of 3.0.2). res->succeeded
 * false means the lock is lost; res->leader then names the holder (NULL: none). */
int dcs_leader_renew(Dcs *d, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (d->lease_id <= 0)
                return -ENOLCK;
        if (dcs_key(d, "leader", &key) < 0 || !(txn = etcd_txn_new()) ||
            etcd_txn_compare(txn, key, "VALUE", "EQUAL", d->name) < 0 ||
            etcd_txn_put(txn, true, key, d->name, d->lease_id) < 0 || etcd_txn_range(txn, false, key) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_RENEW, txn, cb, userdata);
}

/* dcs_leader_delete - releases the lock, only while its value is our name. */
int dcs_leader_delete(Dcs *d, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (dcs_key(d, "leader", &key) < 0 || !(txn = etcd_txn_new()) ||
            etcd_txn_compare(txn, key, "VALUE", "EQUAL", d->name) < 0 || etcd_txn_delete(txn, true, key) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_TXN, txn, cb, userdata);
}

/* dcs_touch_member - writes members/<name> = compact JSON of data, attached to our lease (when one
 * exists; Patroni writes it with the lease once granted). */
int dcs_touch_member(Dcs *d, const cJSON *data, DcsWriteCallback cb, void *userdata) {
        _cleanup_free_ char *text = NULL, *suffix = NULL;
        int r;

        if (!cJSON_IsObject(data))
                return -EINVAL;
        r = json_print_compact(data, &text);
        if (r < 0)
                return r;
        if (asprintf(&suffix, "members/%s", d->name) < 0)
                return -ENOMEM;
        return dcs_put(d, suffix, text, d->lease_id, cb, userdata);
}

/* dcs_set_config - writes config (compact JSON); a compare on mod_revision when it is > 0. */
int dcs_set_config(Dcs *d, const cJSON *config, int64_t mod_revision, DcsWriteCallback cb, void *userdata) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (!cJSON_IsObject(config))
                return -EINVAL;
        r = json_print_compact(config, &text);
        if (r < 0)
                return r;
        return dcs_cas_put(d, "config", text, mod_revision, cb, userdata);
}

/* dcs_initialize_race - the bootstrap race: create initialize = "" only if it does not exist. */
int dcs_initialize_race(Dcs *d, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (dcs_key(d, "initialize", &key) < 0 || !(txn = etcd_txn_new()) ||
            etcd_txn_compare_int(txn, key, "CREATE", "EQUAL", 0) < 0 ||
            etcd_txn_put(txn, true, key, "", 0) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_TXN, txn, cb, userdata);
}

/* dcs_initialize_set - plain put of the system identifier after a successful bootstrap. */
int dcs_initialize_set(Dcs *d, const char *sysid, DcsWriteCallback cb, void *userdata) {
        return dcs_put(d, "initialize", sysid, 0, cb, userdata);
}

/* dcs_initialize_delete - removes initialize (failed bootstrap). */
int dcs_initialize_delete(Dcs *d, DcsWriteCallback cb, void *userdata) {
        _cleanup_free_ char *key = NULL;
        DcsOp *op;
        int r;

        r = dcs_key(d, "initialize", &key);
        if (r < 0)
                return r;
        r = dcs_op_new(d, DCS_OP_WRITE, cb, NULL, userdata, &op);
        if (r < 0)
                return r;
        r = etcd_delete(d->etcd, key, NULL, on_op_done, op, &op->call);
        if (r < 0)
                dcs_op_free(op);
        return r;
}

/* dcs_write_status - status = {"optime":<int>[,"slots":{...}]} (slots only when given and non-empty). */
int dcs_write_status(Dcs *d, int64_t optime, const cJSON *slots, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();

        if (!o || json_add_int64(o, "optime", optime) < 0)
                return -ENOMEM;
        if (cJSON_IsObject(slots) && slots->child &&
            json_add_item(o, "slots", cJSON_Duplicate(slots, true)) < 0)
                return -ENOMEM;
        return dcs_put_json(d, "status", o, cb, userdata);
}

/* dcs_write_optime_leader - legacy optime/leader = decimal optime. */
int dcs_write_optime_leader(Dcs *d, int64_t optime, DcsWriteCallback cb, void *userdata) {
        char buf[32]; /* an int64 in decimal */

        (void)snprintf(buf, sizeof(buf), "%" PRIi64, optime);
        return dcs_put(d, "optime/leader", buf, 0, cb, userdata);
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dcs_write_sync - sync = {"leader":"<leader>","sync_standby":"a,b"|null}, names sorted, plus
 * "quorum": <quorum> when quorum >= 0 (Patroni 4's quorum mode); a CAS on mod_revision when > 0. */
int dcs_write_sync(
        Dcs *d,
        const char *leader,
        char *const *sync_standby,
        int64_t quorum,
        int64_t mod_revision,
        DcsWriteCallback cb,
        void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char **sorted = NULL, *joined = NULL, *text = NULL;
        size_t n = 0, len = 0;

        if (!o)
                return -ENOMEM;
        while (sync_standby && sync_standby[n]) {
                len += strlen(sync_standby[n]) + 1;
                n++;
        }
        if (n > 0) {
                sorted = calloc(n, sizeof(char *));
                joined = calloc(len + 1, 1);
                if (!sorted || !joined)
                        return -ENOMEM;
                memcpy(sorted, sync_standby, n * sizeof(char *));
                qsort(sorted, n, sizeof(char *), strcmp_ptr);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                strncat(joined, ",", len - strlen(joined));
                        strncat(joined, sorted[i], len - strlen(joined));
                }
        }
        if (add_str_or_null(o, "leader", leader) < 0 || add_str_or_null(o, "sync_standby", joined) < 0 ||
            (quorum >= 0 && json_add_int64(o, "quorum", quorum) < 0))
                return -ENOMEM;
        if (json_print_compact(o, &text) < 0)
                return -ENOMEM;
        return dcs_cas_put(d, "sync", text, mod_revision, cb, userdata);
}

/* dcs_delete_sync - deletes sync (synchronous mode off); guarded by mod_revision when > 0. */
int dcs_delete_sync(Dcs *d, int64_t mod_revision, DcsWriteCallback cb, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *txn = NULL;
        _cleanup_free_ char *key = NULL;

        if (dcs_key(d, "sync", &key) < 0 || !(txn = etcd_txn_new()) ||
            (mod_revision > 0 && etcd_txn_compare_int(txn, key, "MOD", "EQUAL", mod_revision) < 0) ||
            etcd_txn_delete(txn, true, key) < 0)
                return -ENOMEM;
        return dcs_start_txn(d, DCS_OP_TXN, txn, cb, userdata);
}

/* dcs_write_failover - failover = compact JSON of failover, or {} ("no failover") when NULL; the key
 * is never deleted, as in Patroni. CAS on mod_revision when > 0. */
int dcs_write_failover(
        Dcs *d, const cJSON *failover, int64_t mod_revision, DcsWriteCallback cb, void *userdata) {
        _cleanup_free_ char *text = NULL;

        if (failover && !cJSON_IsObject(failover))
                return -EINVAL;
        if (failover ? json_print_compact(failover, &text) < 0 : !(text = strdup("{}")))
                return -ENOMEM;
        return dcs_cas_put(d, "failover", text, mod_revision, cb, userdata);
}

/* dcs_write_history - history = compact JSON array of [tl, lsn, reason, timestamp, new_leader]. */
int dcs_write_history(Dcs *d, const cJSON *history, DcsWriteCallback cb, void *userdata) {
        if (!cJSON_IsArray(history))
                return -EINVAL;
        return dcs_put_json(d, "history", history, cb, userdata);
}

/* dcs_write_failsafe - failsafe = {"<member>":"<api_url>",...}. */
int dcs_write_failsafe(Dcs *d, const cJSON *failsafe, DcsWriteCallback cb, void *userdata) {
        if (!cJSON_IsObject(failsafe))
                return -EINVAL;
        return dcs_put_json(d, "failsafe", failsafe, cb, userdata);
}

/* ==== Lease ==== */

static void dcs_lease_schedule(Dcs *d, usec_t delay) {
        (void)sd_event_source_set_time_relative(d->lease_timer, delay);
        (void)sd_event_source_set_enabled(d->lease_timer, SD_EVENT_ONESHOT);
}

/* Stops using the current lease (not revoked: it lives on for its TTL) and remembers until when etcd
 * keeps it, for a leader key that may still be bound to it. */
static void dcs_lease_drop(Dcs *d) {
        if (d->lease_id > 0) {
                d->old_leases[d->old_lease_next] = (DcsOldLease){
                        .id = d->lease_id,
                        .valid_until = dcs_lease_valid_until(d),
                };
                d->old_lease_next = (d->old_lease_next + 1) % DCS_OLD_LEASES;
        }
        d->lease_id = 0;
        d->lease_ttl = 0;
        d->lease_last_renewal = 0;
}

static void dcs_lease_notify(Dcs *d, int error) {
        if (d->lease_cb)
                d->lease_cb(d, error, d->lease_id, d->lease_userdata);
}

static void
on_lease_reply(EtcdClient *e, int error, const char *message, const cJSON *reply, void *userdata) {
        Dcs *d = userdata;
        bool grant = d->lease_id == 0;
        int64_t id = 0, ttl = 0;
        int r = error;

        d->lease_call = NULL;
        if (r >= 0)
                r = grant ? etcd_lease_grant_parse(reply, &id, &ttl) : etcd_keepalive_parse(reply, &ttl);
        if (r >= 0) {
                if (grant) {
                        d->lease_id = id;
                        d->lease_ttl = d->ttl;
                        log_debug("etcd lease %" PRIi64 " granted, TTL %" PRIi64 "s", id, ttl);
                }
                /* etcd may grant more than asked (its minimum TTL), never trust more than asked */
                if (ttl > 0 && (uint64_t)ttl < d->lease_ttl)
                        d->lease_ttl = (unsigned)ttl;
                d->lease_last_renewal = d->lease_request_start;
                dcs_lease_schedule(d, d->keepalive_interval);
                if (grant)
                        dcs_lease_notify(d, 0);
                return;
        }
        if (!grant && (r == -ENOENT)) {
                /* Keep-alive answered without TTL (or "lease not found"): the lease expired. Grant a
                 * new one at once; everything attached to the old one is gone. */
                log_warning("etcd lease %" PRIi64 " expired, granting a new one", d->lease_id);
                dcs_lease_drop(d);
                dcs_lease_notify(d, -ENOENT);
                dcs_lease_schedule(d, 0);
                return;
        }
        log_debug(
                "etcd lease %s failed: %s, retrying",
                grant ? "grant" : "keep-alive",
                message ?: strerror(-r));
        dcs_lease_notify(d, r);
        dcs_lease_schedule(d, MIN(d->keepalive_interval, DCS_LEASE_RETRY));
}

static int on_lease_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Dcs *d = userdata;
        int r;

        if (d->lease_call)
                return 0; /* one request at a time; its reply re-arms us */
        d->lease_request_start = now_usec(d->event);
        if (d->lease_id == 0)
                r = etcd_lease_grant(d->etcd, d->ttl, on_lease_reply, d, &d->lease_call);
        else
                r = etcd_lease_keepalive(d->etcd, d->lease_id, on_lease_reply, d, &d->lease_call);
        if (r < 0) {
                d->lease_call = NULL;
                dcs_lease_schedule(d, DCS_LEASE_RETRY);
        }
        return 0;
}

/* dcs_lease_start - grants our lease and keeps it alive every keepalive_interval from a timer at the
 * Dcs priority, re-granting at once when it expired. cb (optional) hears about new leases and
 * failures. Idempotent. */
int dcs_lease_start(Dcs *d, DcsLeaseCallback cb, void *userdata) {
        d->lease_cb = cb;
        d->lease_userdata = userdata;
        if (sd_event_source_get_enabled(d->lease_timer, NULL) > 0 || d->lease_call)
                return 0;
        dcs_lease_schedule(d, 0);
        return 0;
}

/* dcs_lease_stop - stops keeping the lease alive (it then expires after ttl); does not revoke it. */
void dcs_lease_stop(Dcs *d) {
        (void)sd_event_source_set_enabled(d->lease_timer, SD_EVENT_OFF);
        etcd_call_cancel(d->lease_call);
        d->lease_call = NULL;
}

/* dcs_set_ttl - a new ttl from the dynamic config: as Patroni, the current lease is dropped (not
 * revoked: keys bound to it live until its own TTL runs out, see dcs_lease_valid_until_of()) and a new
 * one with the new TTL is granted at once if the keep-alive runs; the lease callback hears about it, and
 * the next dcs_leader_renew() re-binds the leader key to it. The keep-alive interval follows (ttl/3)
 * unless it was set explicitly. */
void dcs_set_ttl(Dcs *d, unsigned ttl) {
        if (ttl == 0 || ttl == d->ttl)
                return;
        d->ttl = ttl;
        if (!d->keepalive_explicit)
                d->keepalive_interval = MAX((usec_t)ttl * USEC_PER_SEC / 3, 100 * USEC_PER_MSEC);
        if (d->lease_id == 0 && !d->lease_call && sd_event_source_get_enabled(d->lease_timer, NULL) <= 0)
                return; /* the lease was never started */
        etcd_call_cancel(d->lease_call);
        d->lease_call = NULL;
        dcs_lease_drop(d);
        dcs_lease_schedule(d, 0);
}

/* dcs_lease_id - our current lease (0 while none). */
int64_t dcs_lease_id(const Dcs *d) {
        return d->lease_id;
}

/* dcs_lease_valid_until - CLOCK_MONOTONIC time until which etcd certainly keeps our lease: start of the
 * last successful grant/keep-alive + the TTL this lease was granted with (not a newer ttl set since).
 * 0 without a lease. */
usec_t dcs_lease_valid_until(const Dcs *d) {
        if (d->lease_id == 0 || d->lease_last_renewal == 0)
                return 0;
        return d->lease_last_renewal + (usec_t)d->lease_ttl * USEC_PER_SEC;
}

/* dcs_lease_valid_until_of - as dcs_lease_valid_until() for a given lease: the current one, or one of
 * the last leases dropped (ttl change, expiry), whose validity no longer moves. 0 when unknown. */
usec_t dcs_lease_valid_until_of(const Dcs *d, int64_t lease) {
        if (lease <= 0)
                return 0;
        if (lease == d->lease_id)
                return dcs_lease_valid_until(d);
        for (unsigned i = 0; i < DCS_OLD_LEASES; i++)
                if (d->old_leases[i].id == lease)
                        return d->old_leases[i].valid_until;
        return 0;
}

/* dcs_lease_ttl - the TTL (seconds) of our current lease; 0 without one. */
unsigned dcs_lease_ttl(const Dcs *d) {
        return d->lease_id > 0 ? d->lease_ttl : 0;
}

/* dcs_lease_last_renewal - CLOCK_MONOTONIC start of the last successful grant/keep-alive. */
usec_t dcs_lease_last_renewal(const Dcs *d) {
        return d->lease_last_renewal;
}

/* ==== Watch ==== */

static void dcs_wake(Dcs *d, DcsWakeReason reason) {
        if (d->wake_cb)
                d->wake_cb(d, reason, d->wake_userdata);
}

static int dcs_watch_create(Dcs *d, int64_t start_revision);

static void on_dcs_watch(EtcdWatch *w, int error, const EtcdWatchMessage *m, void *userdata) {
        Dcs *d = userdata;
        size_t plen = strlen(d->prefix);
        bool leader = false, status = false, config = false;

        if (error == -ESTALE) {
                /* Compacted: start over from now and let the HA loop re-read everything. */
                d->watch = etcd_watch_free(d->watch);
                if (dcs_watch_create(d, 0) < 0)
                        log_warning("Failed to re-create the etcd watch, retrying at the next read");
                dcs_wake(d, DCS_WAKE_RESYNC);
                return;
        }
        if (error < 0 || !m)
                return; /* the watch reconnects by itself */
        if (m->created) {
                dcs_wake(d, d->watch_created_once ? DCS_WAKE_RESYNC : DCS_WAKE_READY);
                d->watch_created_once = true;
        }
        for (size_t i = 0; i < m->n_events; i++) {
                const EtcdEvent *ev = &m->events[i];
                const char *k;

                if (!ev->kv.key || strncmp(ev->kv.key, d->prefix, plen) != 0)
                        continue;
                k = ev->kv.key + plen;
                if (streq(k, "leader")) {
                        if (ev->type == ETCD_EVENT_DELETE) {
                                d->watch_leader = mfree(d->watch_leader);
                                leader = true;
                        } else if (!streq_ptr(d->watch_leader, ev->kv.value)) {
                                (void)free_and_strdup(&d->watch_leader, ev->kv.value);
                                leader = true;
                        }
                } else if (
                        (streq(k, "status") || streq(k, "optime/leader")) && ev->type == ETCD_EVENT_PUT &&
                        !streq_ptr(d->watch_leader, d->name))
                        status = true;
                else if (streq(k, "config") && ev->type == ETCD_EVENT_PUT)
                        config = true;
        }
        if (leader)
                dcs_wake(d, DCS_WAKE_LEADER);
        else if (status)
                dcs_wake(d, DCS_WAKE_STATUS);
        else if (config)
                dcs_wake(d, DCS_WAKE_CONFIG);
}

static int dcs_watch_create(Dcs *d, int64_t start_revision) {
        _cleanup_free_ char *end = etcd_prefix_range_end(d->prefix);

        if (!end)
                return -ENOMEM;
        d->watch_created_once = false;
        return etcd_watch_new(
                d->etcd, d->prefix, end, start_revision, d->watch_stall, on_dcs_watch, d, &d->watch);
}

/* dcs_watch_start - watches the cluster prefix from start_revision (0: now; pass a cluster read's
 * revision + 1 to miss nothing) and calls cb when the HA loop should wake up. Replaces a running
 * watch. stall_timeout: see etcd_watch_new(). */
int dcs_watch_start(
        Dcs *d, int64_t start_revision, usec_t stall_timeout, DcsWakeCallback cb, void *userdata) {
        d->watch = etcd_watch_free(d->watch);
        d->wake_cb = cb;
        d->wake_userdata = userdata;
        d->watch_stall = stall_timeout;
        return dcs_watch_create(d, start_revision);
}

/* dcs_watch_stop - stops the watch; the wake callback will not run again. */
void dcs_watch_stop(Dcs *d) {
        d->watch = etcd_watch_free(d->watch);
}

/* ==== Object ==== */

static char *dcs_make_prefix(const char *ns, const char *scope) {
        _cleanup_free_ char *raw = NULL;
        char *out, *o;

        if (asprintf(&raw, "/%s/%s/", ns, scope) < 0)
                return NULL;
        out = malloc(strlen(raw) + 1);
        if (!out)
                return NULL;
        o = out;
        for (const char *p = raw; *p; p++)
                if (!(*p == '/' && o > out && o[-1] == '/'))
                        *o++ = *p;
        *o = 0;
        return out;
}

/* dcs_new - a cluster view for o->scope over etcd (borrowed: must outlive the Dcs). Does no I/O until
 * asked. -EINVAL without scope, or with a scope/name containing '/'. Non-logging. */
int dcs_new(sd_event *event, EtcdClient *etcd, const DcsOptions *o, Dcs **ret) {
        _cleanup_(dcs_freep) Dcs *d = NULL;
        int r;

        if (!event || !etcd || !o || !ret || isempty(o->scope) || strchr(o->scope, '/') ||
            (o->name && (isempty(o->name) || strchr(o->name, '/'))))
                return -EINVAL;
        d = calloc(1, sizeof(Dcs));
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(event);
        d->etcd = etcd;
        d->ttl = o->ttl ?: 30;
        d->keepalive_explicit = o->keepalive_interval > 0;
        d->keepalive_interval =
                o->keepalive_interval ?: MAX((usec_t)d->ttl * USEC_PER_SEC / 3, 100 * USEC_PER_MSEC);
        d->priority = o->priority;
        d->prefix = dcs_make_prefix(isempty(o->namespace) ? "service" : o->namespace, o->scope);
        d->name = strdup_or_null(o->name ?: "");
        if (!d->prefix || !d->name)
                return -ENOMEM;
        r = sd_event_add_time_relative(event, &d->lease_timer, CLOCK_MONOTONIC, 0, 1, on_lease_timer, d);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(d->lease_timer, SD_EVENT_OFF);
        (void)sd_event_source_set_priority(d->lease_timer, d->priority);
        (void)sd_event_source_set_description(d->lease_timer, "dcs-lease");
        *ret = TAKE_PTR(d);
        return 0;
}

/* dcs_free - cancels every operation (callbacks do not run), stops the watch and the keep-alive (the
 * lease is not revoked, as Patroni on shutdown). Returns NULL. */
Dcs *dcs_free(Dcs *d) {
        if (!d)
                return NULL;
        while (d->ops)
                dcs_op_free(d->ops);
        etcd_call_cancel(d->lease_call);
        sd_event_source_disable_unref(d->lease_timer);
        etcd_watch_free(d->watch);
        free(d->watch_leader);
        free(d->prefix);
        free(d->name);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}

/* dcs_prefix - "/<namespace>/<scope>/". */
const char *dcs_prefix(const Dcs *d) {
        return d->prefix;
}
