/* SPDX-License-Identifier: MIT */
/*
 * The cluster view in etcd, in Patroni 3.0.2's exact key layout under /<namespace>/<scope>/: leader,
 * members/<name>, config, initialize, status, optime/leader, sync, failover, history, failsafe.
 * Reads parse every value as tolerantly as Patroni does; writes use Patroni's encodings (compact JSON,
 * plain strings). The leader lock is taken with a create-only txn bound to our lease and renewed or
 * deleted only with a compare on its value. The lease is kept alive by its own timer, independent of
 * the HA loop, which records when the last renewal started so the HA engine can compute how long the
 * lock is certainly ours.
 */
#pragma once

#include <stdint.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "pgha/etcd.h"
#include "pgha/macro.h"

typedef struct Dcs Dcs;

/* Member keys parsed per cluster view; more are counted in DcsCluster.n_members_ignored. */
#define DCS_MEMBERS_MAX 1024U

typedef struct DcsOptions {
        const char *namespace;     /* default "service"; slashes normalised */
        const char *scope;         /* cluster name, required */
        const char *name;          /* our member name, required for member/leader writes */
        unsigned ttl;              /* lease TTL in seconds; default 30 */
        usec_t keepalive_interval; /* lease keep-alive period; 0: ttl/3 */
        int64_t priority;          /* sd-event priority of the keep-alive timer (negative: first) */
} DcsOptions;

/* One members/<name> key. String fields are NULL when absent; ints have has_* flags. */
typedef struct DcsMember {
        char *name;
        int64_t mod_revision;
        int64_t lease;
        cJSON *data; /* the parsed value ({} when it was not JSON); owned */
        char *conn_url;
        char *api_url;
        char *state;
        char *role;
        char *version;
        char *proxy_url;
        const cJSON *tags;              /* into data; NULL when absent */
        const cJSON *scheduled_restart; /* into data; NULL when absent */
        bool has_xlog_location;
        int64_t xlog_location;
        bool has_timeline;
        int64_t timeline;
        int checkpoint_after_promote; /* -1 absent (checkpoint done), 0 false, 1 true */
        bool pending_restart;
        bool pause;
} DcsMember;

/* The whole cluster as read with one range. Revisions are mod_revisions (0: key absent or, for config,
 * invalid JSON, as Patroni treats it). */
typedef struct DcsCluster {
        int64_t revision; /* header.revision of the read */

        bool has_initialize; /* key present */
        char *initialize;    /* "" while bootstrapping, else the system identifier */
        int64_t initialize_revision;

        cJSON *config; /* NULL: key absent; {} when invalid */
        int64_t config_revision;

        char *leader; /* lock holder's name; NULL: no leader key */
        int64_t leader_revision;
        int64_t leader_create_revision;
        int64_t leader_lease;

        DcsMember *members; /* sorted by name */
        size_t n_members;
        size_t n_members_ignored; /* member keys beyond DCS_MEMBERS_MAX, left out of members */

        bool has_status;       /* status key present */
        int64_t status_optime; /* int(optime), 0 when invalid */
        cJSON *status_slots;   /* "slots" object or NULL */
        int64_t status_revision;
        bool has_optime_leader; /* legacy optime/leader present */
        int64_t optime_leader;

        bool has_sync; /* sync key present (maybe empty/invalid) */
        char *sync_leader;
        char **sync_standby; /* NULL-terminated, trimmed names; never NULL */
        int64_t sync_revision;
        int64_t sync_quorum; /* Patroni 4's "quorum" (quorum mode); -1: absent or null */

        bool has_failover; /* a failover is requested: leader or member non-empty */
        char *failover_leader;
        char *failover_member;
        char *failover_scheduled_at;
        int64_t failover_revision; /* of the key even when it holds {} */

        cJSON *history; /* array; NULL when the key is absent; [] when invalid */
        int64_t history_revision;
        int64_t history_timeline; /* last line's timeline + 1; 1 for []; 0 when absent */

        cJSON *failsafe; /* object, NULL when absent or invalid */
        int64_t failsafe_revision;
} DcsCluster;

typedef struct DcsWriteResult {
        bool succeeded;     /* false: a compare failed (lock held by someone else, CAS lost) */
        int64_t revision;   /* header.revision of the write */
        const char *leader; /* leader_acquire/renew: the holder seen (NULL when none) */
        int64_t lease;      /* leader_acquire/renew succeeded: the lease the leader key is now bound to */
} DcsWriteResult;

typedef enum DcsWakeReason {
        DCS_WAKE_READY,  /* the watch is established */
        DCS_WAKE_LEADER, /* the leader key changed value or disappeared */
        DCS_WAKE_STATUS, /* status/optime changed while someone else leads */
        DCS_WAKE_CONFIG, /* config changed */
        DCS_WAKE_RESYNC, /* the watch was re-created after a drop: re-read the cluster */
        _DCS_WAKE_REASON_MAX,
        _DCS_WAKE_REASON_INVALID = -EINVAL,
} DcsWakeReason;

/* error < 0 with a message on failure; on success cluster is handed over to the callback. */
typedef void (*DcsClusterCallback)(
        Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata);
typedef void (*DcsWriteCallback)(
        Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata);
typedef void (*DcsWakeCallback)(Dcs *d, DcsWakeReason reason, void *userdata);
/* lease: the new lease id (0 while none); error < 0 when a keep-alive or grant failed. */
typedef void (*DcsLeaseCallback)(Dcs *d, int error, int64_t lease, void *userdata);

int dcs_new(sd_event *event, EtcdClient *etcd, const DcsOptions *o, Dcs **ret) _warn_unused_result_;
Dcs *dcs_free(Dcs *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Dcs *, dcs_free);
const char *dcs_prefix(const Dcs *d);
int dcs_key(const Dcs *d, const char *suffix, char **ret) _warn_unused_result_;
const char *dcs_wake_reason_to_string(DcsWakeReason r);

/* Reading */
int dcs_cluster_parse(const char *prefix, const EtcdKv *kvs, size_t n, int64_t revision, DcsCluster **ret)
        _warn_unused_result_;
DcsCluster *dcs_cluster_free(DcsCluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(DcsCluster *, dcs_cluster_free);
const DcsMember *dcs_cluster_find_member(const DcsCluster *c, const char *name);
int64_t dcs_cluster_optime(const DcsCluster *c);
bool dcs_cluster_is_sync_standby(const DcsCluster *c, const char *name);
int dcs_cluster_to_json(const DcsCluster *c, cJSON **ret) _warn_unused_result_;
int dcs_get_cluster(Dcs *d, DcsClusterCallback cb, void *userdata) _warn_unused_result_;

/* Lease */
int dcs_lease_start(Dcs *d, DcsLeaseCallback cb, void *userdata) _warn_unused_result_;
void dcs_lease_stop(Dcs *d);
void dcs_set_ttl(Dcs *d, unsigned ttl);
int64_t dcs_lease_id(const Dcs *d);
usec_t dcs_lease_valid_until(const Dcs *d);
usec_t dcs_lease_valid_until_of(const Dcs *d, int64_t lease);
unsigned dcs_lease_ttl(const Dcs *d);
usec_t dcs_lease_last_renewal(const Dcs *d);

/* Leader lock */
int dcs_leader_acquire(Dcs *d, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_leader_renew(Dcs *d, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_leader_delete(Dcs *d, DcsWriteCallback cb, void *userdata) _warn_unused_result_;

/* Other keys */
int dcs_touch_member(Dcs *d, const cJSON *data, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_set_config(Dcs *d, const cJSON *config, int64_t mod_revision, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;
int dcs_initialize_race(Dcs *d, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_initialize_set(Dcs *d, const char *sysid, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_initialize_delete(Dcs *d, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_write_status(Dcs *d, int64_t optime, const cJSON *slots, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;
int dcs_write_optime_leader(Dcs *d, int64_t optime, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;
int dcs_write_sync(
        Dcs *d,
        const char *leader,
        char *const *sync_standby,
        int64_t quorum,
        int64_t mod_revision,
        DcsWriteCallback cb,
        void *userdata) _warn_unused_result_;
int dcs_delete_sync(Dcs *d, int64_t mod_revision, DcsWriteCallback cb, void *userdata) _warn_unused_result_;
int dcs_write_failover(
        Dcs *d, const cJSON *failover, int64_t mod_revision, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;
int dcs_write_history(Dcs *d, const cJSON *history, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;
int dcs_write_failsafe(Dcs *d, const cJSON *failsafe, DcsWriteCallback cb, void *userdata)
        _warn_unused_result_;

/* Watch */
int dcs_watch_start(Dcs *d, int64_t start_revision, usec_t stall_timeout, DcsWakeCallback cb, void *userdata)
        _warn_unused_result_;
void dcs_watch_stop(Dcs *d);
