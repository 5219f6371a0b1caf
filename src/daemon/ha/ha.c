/* SPDX-License-Identifier: MIT */
/*
 * The HA engine: gather → decide → act on the Manager's sd-event loop (design.md, docs/ha.md).
 *
 * A tick reads the whole cluster prefix from etcd, asks pgmon for a fresh probe, runs pg_controldata
 * while PostgreSQL is down, fetches the members' GET /patroni when the decision may need them, builds
 * HaFacts, calls ha_fsm_decide() and carries the decision out: at most one etcd write for the action
 * (plus the side writes its flags name) and at most one PostgreSQL job at a time. The role changes to
 * the decision's next role only when the action succeeded. Ticks run every loop_wait, at once when the
 * etcd watch sees the leader key change, when a job ends and when a REST intent arrives.
 *
 * Invariants: the leader key is taken only with the create-only txn bound to our lease and renewed or
 * deleted only with a compare on its value (dcs.c); while we hold it a timer at a higher priority than
 * anything else in the loop fires at the local lease deadline and stops a primary with SIGQUIT before
 * any other event is processed (also first thing after a SIGSTOP/SIGCONT freeze); the watchdog is
 * armed before a promotion and fed from the lease keep-alive.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgha/callbacks.h"
#include "pgha/config.h"
#include "pgha/dcs.h"
#include "pgha/etcd.h"
#include "pgha/fileio.h"
#include "pgha/ha.h"
#include "pgha/ha_fsm.h"
#include "pgha/ha_sync.h"
#include "pgha/http_client.h"
#include "pgha/json.h"
#include "pgha/log.h"
#include "pgha/manager.h"
#include "pgha/pgconf.h"
#include "pgha/pgconn.h"
#include "pgha/pgctl.h"
#include "pgha/pgmon.h"
#include "pgha/proc.h"
#include "pgha/rest.h"
#include "pgha/snapshot.h"
#include "pgha/watchdog.h"

#define PGHA_COMPAT_VERSION "3.0.2"
#define HA_FETCH_TIMEOUT    (2 * USEC_PER_SEC)

/* What the running job does after its current step. */
typedef enum JobStep {
        STEP_NONE,
        STEP_BOOTSTRAP,      /* pgctl_bootstrap */
        STEP_CLONE,          /* create_replica, then start as replica */
        STEP_START_REPLICA,  /* pgctl_start with recovery */
        STEP_PROMOTE,        /* pgctl_promote, then checkpoint */
        STEP_CHECKPOINT,     /* post-promote checkpoint */
        STEP_STOP,           /* stop; then release lock when job_release */
        STEP_REWIND,         /* rewind then start as replica */
        STEP_REINIT_STOP,    /* immediate stop, then clone with wipe */
        STEP_REINIT_CLONE,   /* create_replica wipe, then start */
        STEP_CRASH_RECOVERY, /* single-user crash recovery */
        STEP_RESTART,        /* pgctl_restart */
        STEP_CANCEL_STOP,    /* failed bootstrap: stop, move the data directory aside, exit */
} JobStep;

/* The filters of a POST /restart (Patroni's restart_data). */
typedef struct RestartRequest {
        char *role;       /* "master", "primary" or "replica"; NULL: any */
        unsigned version; /* restart only if the server is older than this (150002); 0: any */
        bool pending;     /* restart only if PostgreSQL has a pending restart */
        usec_t timeout;   /* "timeout": answer "postgres is still starting" after it; 0: when done */
} RestartRequest;

static void restart_request_done(RestartRequest *r) {
        r->role = mfree(r->role);
        *r = (RestartRequest){};
}

static int restart_request_set(RestartRequest *r, const RestIntent *in) {
        restart_request_done(r);
        if (in->role && !(r->role = strdup(in->role)))
                return -ENOMEM;
        r->version = in->postgres_version;
        r->pending = in->restart_pending;
        r->timeout = in->timeout > 0 ? (usec_t)in->timeout * USEC_PER_SEC : 0;
        return 0;
}

struct Ha {
        Manager *manager;
        sd_event *event;
        EtcdClient *etcd;
        Dcs *dcs;
        HttpClient *http;
        PgMon *pgmon;
        PgConn *conn; /* superuser connection for replication slots */
        RestServer *rest;
        Watchdog *watchdog;
        CallbackRunner *callbacks;
        ManagerHook *reload_hook, *shutdown_hook;

        PgSettings pgs;
        DynamicConfig dyn;
        char *dyn_text; /* compact JSON of the dynamic config applied */
        char *dyn_cache_path;
        char *conn_url, *api_url, *socket_dir;
        NodeSnapshot snap;

        sd_event_source *tick_timer;     /* "ha-tick" */
        sd_event_source *deadline_timer; /* "ha-lease-deadline" */
        sd_event_source *probe_timer;    /* "ha-fast-probe" */
        sd_event_source *lease_watch;    /* "ha-lease-watch" */
        usec_t lease_seen_renewal;

        /* tick */
        bool tick_running, tick_again, ready_released, stopping;
        bool probe_saw_running; /* the last probe found the postmaster running */
        unsigned pending;
        bool waiting_probe;
        usec_t now, last_tick, tilt_until, wake_at;
        DcsCluster *cluster;
        bool dcs_ok;
        usec_t dcs_unreachable_since;
        PgCtlJob *controldata;
        bool cd_ok;
        bool data_dir_error_logged; /* data_dir_state() logged why it cannot read data_dir */
        bool cb_called;             /* Patroni's cb_called: an on_start/stop/restart/role_change fired */
        bool cb_role_change;        /* the replica start under way ends a demotion: on_role_change */
        bool job_signalled;         /* the stop that just ended signalled a running postmaster */
        char *reload_before;        /* the managed files before a config reload (reload_files_text) */
        uint64_t cd_sysid;
        uint32_t cd_timeline;
        uint64_t cd_checkpoint;
        bool cd_unclean, cd_shut_down_in_recovery;
        HttpRequest *fetch[HA_MEMBERS_MAX];
        HaMemberApi api[HA_MEMBERS_MAX];
        size_t n_fetch;
        HaRole role;
        HaDecision decision;
        char last_message[HA_MESSAGE_MAX];
        char last_reason[HA_MESSAGE_MAX];
        usec_t last_logged_at; /* when last_message was logged */

        /* lock */
        bool lock_held, renew_failed, bootstrap_won;
        int64_t lock_lease;
        usec_t lease_deadline;
        usec_t release_wait_until;

        /* job */
        PgCtlJob *job;
        HaJob job_kind;
        JobStep job_step;
        usec_t job_since;
        HaJob job_last;
        bool job_last_failed, job_last_fresh;
        HaRole job_next_role;
        bool job_release, job_next_role_set;
        char job_target[HA_NAME_MAX];
        bool rewind_failed, checkpoint_pending, start_failed_seen, pidfile_standby;
        /* A running replica was found past the leader's fork point: it is stopped, and counts as
         * diverged once stopped (its pg_control may not show it) until a rewind or reinit starts. */
        bool replica_diverged;

        /* following */
        char *following; /* "host:port" the recovery section points at; NULL: none */
        /* The recovery section we last wrote names no upstream (recovery_for(NULL)) and the job that
         * applied it did not fail; detached_probes counts the probes since, taken with no job running,
         * that saw PostgreSQL in recovery without a walreceiver. Two of them: upstream detached. */
        bool upstream_cleared;
        unsigned detached_probes;

        /* intents */
        bool reinit_requested, restart_requested;
        RestCall *restart_call;
        RestCall *switch_call;
        char *switch_from, *switch_to;
        bool switch_failover;
        usec_t switch_deadline;
        int64_t switch_revision;
        bool scheduled_restart;
        usec_t scheduled_restart_at;
        RestartRequest restart_now;        /* filters of the requested (immediate) restart */
        RestartRequest restart_sched;      /* filters of the scheduled restart */
        cJSON *restart_sched_json;         /* the scheduled restart as the member key shows it */
        uint64_t restart_sched_start;      /* postmaster start (epoch s) when it was scheduled; 0: unknown */
        RestCall *cancel_call;             /* DELETE /switchover waiting for its etcd write */
        struct ConfigWrite *config_writes; /* PATCH/PUT /config calls waiting for etcd */
        bool switch_scheduled; /* switch_call is a scheduled switchover: 202 once we see the key */

        /* member key */
        char *member_last;
        int64_t member_last_lease;
        bool member_write_running;

        /* slots */
        char *slots_done;
        bool slots_running;
        bool pg_reload_pending; /* the dynamic config changed in etcd: rewrite postgresql.conf, reload */

        /* synchronous replication (leader side, §2.10) */
        char *ssn_want;                /* synchronous_standby_names we manage; NULL: not set by us */
        char *ssn_seen;                /* the live value the last evaluation saw */
        char **sync_ready;             /* standbys confirmed synchronous while the live value lists them */
        uint64_t sync_ready_lsn;       /* primary position recorded one probe after the live value changed */
        bool sync_ready_pending;       /* the live value changed: record the position at the next probe */
        bool sync_busy;                /* a write of the sync key is in flight */
        int64_t sync_written_revision; /* etcd revision of our last write of `sync`: older views are stale */
        char *sync_then_ssn;           /* after that write succeeds, set synchronous_standby_names to this */
        bool disable_sync;             /* shutting down: publish nosync until the leader releases us */
        usec_t release_deadline;
        sd_event_source *release_timer;       /* "ha-sync-release" */
        sd_event_source *restart_reply_timer; /* "ha-restart-reply": POST /restart's "timeout" */
        sd_event_source *callback_wait_timer; /* "ha-shutdown-callbacks": bounds the wait at exit */
        int shutdown_result;

        /* shutdown */
        ManagerDoneFunc done;
        void *done_cookie;
};

static void ha_tick_schedule(Ha *h, usec_t delay);
static void ha_act_done(Ha *h);
static void job_advance(Ha *h);
static void snapshot_update(Ha *h);
static int ha_apply_dynamic(Ha *h, const cJSON *json, bool from_dcs);
static bool pg_reload_config(Ha *h);

static usec_t now_mono(Ha *h) {
        usec_t t = 0;
        (void)sd_event_now(h->event, CLOCK_MONOTONIC, &t);
        return t;
}

static usec_t now_mono_fresh(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static usec_t now_real(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static usec_t ttl_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.ttl, 1) * USEC_PER_SEC;
}

static usec_t loop_wait_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.loop_wait, 1) * USEC_PER_SEC;
}

static usec_t retry_timeout_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.retry_timeout, 1) * USEC_PER_SEC;
}

static const PgStatus *pgstatus(Ha *h) {
        return pgmon_get_status(h->pgmon);
}

/* Answers a REST call the engine holds (switchover, restart), if there is one, and forgets it: each is
 * answered exactly once. */
static void call_reply(RestCall **call, unsigned status, const char *text) {
        if (!*call)
                return;
        (void)rest_call_reply_text(*call, status, text);
        *call = NULL;
}

/* ==== lease deadline ==== */

static void lease_deadline_arm(Ha *h) {
        if (!h->lock_held || h->lease_deadline == 0) {
                (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time(h->deadline_timer, h->lease_deadline);
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_ONESHOT);
}

/* The local deadline always comes from the lease the leader key is bound to (h->lock_lease), with the
 * TTL that lease was granted with: after a ttl change it stays the old lease's until the leader key is
 * re-bound to the new one, so a raised ttl never extends it beyond what etcd grants. */
static void lease_deadline_update(Ha *h) {
        usec_t until;

        if (!h->lock_held)
                return;
        until = dcs_lease_valid_until_of(h->dcs, h->lock_lease);
        if (until > 0)
                h->lease_deadline = until > HA_LEASE_MARGIN ? until - HA_LEASE_MARGIN : 1;
        h->snap.leader_expiry = h->lease_deadline;
        lease_deadline_arm(h);
}

static void lock_taken(Ha *h, int64_t lease) {
        h->lock_held = true;
        h->replica_diverged = false;
        h->renew_failed = false;
        h->lock_lease = lease;
        h->lease_deadline = 0;
        lease_deadline_update(h);
}

static void lock_dropped(Ha *h) {
        h->lock_held = false;
        h->lease_deadline = 0;
        h->snap.leader_expiry = 0;
        lease_deadline_arm(h);
}

/* Stops a running postmaster at once: SIGQUIT now, a stop job to wait for it. */
static void fence_postgres(Ha *h, const char *why) {
        pid_t pid = 0;

        if (pgctl_postmaster_pid(h->pgs.data_dir, &pid) > 0 && pid > 0) {
                _cleanup_free_ char *path = NULL, *children = NULL;

                (void)kill(pid, SIGQUIT);
                /* The backends too, directly: after a freeze they resume together with us and must not
                 * answer one more query while the postmaster relays the signal. */
                if (asprintf(&path, "/proc/%i/task/%i/children", (int)pid, (int)pid) >= 0 &&
                    read_full_file(path, 64 * 1024, &children, NULL) >= 0) {
                        char *p = children, *end;
                        for (long c; (c = strtol(p, &end, 10)) > 0 && end != p; p = end)
                                (void)kill((pid_t)c, SIGQUIT);
                }
                log_error("%s: stopped PostgreSQL (pid %i) immediately", why, (int)pid);
        }
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        usec_t now = now_mono_fresh();

        lease_deadline_update(h); /* a renewal may have arrived since the timer was set */
        if (!h->lock_held || now < h->lease_deadline) {
                lease_deadline_arm(h);
                return 0;
        }
        log_error("Local leader lease deadline passed without renewal: fencing this node");
        h->job = pgctl_job_free(h->job);
        h->job_kind = HA_JOB_NONE;
        h->job_step = STEP_NONE;
        fence_postgres(h, "demoted self because failed to update leader lock in DCS");
        h->lock_held = false;
        h->snap.leader_expiry = 0;
        /* lease_deadline stays set: the decision table's lease row still sees it while postgres runs. */
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);
        if (h->watchdog)
                watchdog_disable(h->watchdog);
        h->role = HA_ROLE_DEMOTED;
        ha_tick_schedule(h, 0);
        return 0;
}

/* The Dcs keep-alive timer reports only new grants: follow its renewals from a short timer of our own at
 * the lease priority, moving the local deadline forward and feeding the watchdog after each one. */
static int on_lease_watch(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        usec_t last = dcs_lease_last_renewal(h->dcs);

        if (h->lock_held && dcs_lease_id(h->dcs) == h->lock_lease && last != h->lease_seen_renewal) {
                h->lease_seen_renewal = last;
                lease_deadline_update(h);
                if (h->watchdog && watchdog_is_active(h->watchdog))
                        (void)watchdog_keepalive(h->watchdog);
        }
        (void)sd_event_source_set_time_relative(s, 200 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static void on_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        Ha *h = userdata;

        if (!h->lock_held)
                return;
        lease_deadline_update(h);
        if (error >= 0 && lease > 0 && lease != h->lock_lease) {
                /* A new lease (ttl change, expiry): re-bind the leader key to it at once, as Patroni's
                 * _update_leader(), before the lease it is bound to runs out. */
                log_info(
                        "etcd lease %" PRIi64 " granted while the leader key is bound to %" PRIi64
                        ": re-binding it",
                        lease,
                        h->lock_lease);
                ha_tick_schedule(h, 0);
        }
        if (error >= 0 && lease == h->lock_lease && h->watchdog && watchdog_is_active(h->watchdog))
                (void)watchdog_keepalive(h->watchdog);
}

/* ==== member key, snapshot ==== */

/* A replica being started whose postmaster.pid already says it accepts read-only connections (the
 * status query may take a moment longer on its first connection). */
static bool standby_ready(Ha *h) {
        const PgStatus *st = pgstatus(h);

        return h->job_step == STEP_START_REPLICA &&
                (h->pidfile_standby || (st && st->running && streq_ptr(st->pidfile_status, "standby")));
}

static const char *pg_state_string(Ha *h) {
        const PgStatus *st = pgstatus(h);

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

static const char *member_role_string(Ha *h) {
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
                .role = member_role_string(h),
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

static void on_member_written(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        h->member_write_running = false;
        if (error < 0) {
                log_warning("Failed to update our member key: %s", strna(message));
                h->member_last = mfree(h->member_last);
        }
}

static void touch_member(Ha *h) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *text = NULL;

        if (h->member_write_running || build_member_key(h, &j) < 0 || json_print_compact(j, &text) < 0)
                return;
        if (h->member_last && streq(h->member_last, text) && h->member_last_lease == dcs_lease_id(h->dcs) &&
            h->cluster && dcs_cluster_find_member(h->cluster, h->pgs.name))
                return;
        if (dcs_touch_member(h->dcs, j, on_member_written, h) < 0)
                return;
        h->member_write_running = true;
        free(h->member_last);
        h->member_last = TAKE_PTR(text);
        h->member_last_lease = dcs_lease_id(h->dcs);
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
static bool upstream_detached(Ha *h) {
        return h->upstream_cleared && h->detached_probes >= 2;
}

static void snapshot_update(Ha *h) {
        const PgStatus *st = pgstatus(h);
        NodeSnapshot *s = &h->snap;
        const char *role = member_role_string(h);
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
        s->upstream_detached = upstream_detached(h) && h->cluster && h->cluster->sync_quorum > 0;
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

/* ==== recovery target ==== */

static int member_host_port(Ha *h, const char *name, char **ret_host, unsigned *ret_port) {
        const DcsMember *m;

        if (isempty(name) || !h->cluster)
                return -ENOENT;
        m = dcs_cluster_find_member(h->cluster, name);
        if (!m || isempty(m->conn_url))
                return -ENOENT;
        return pgconf_parse_conn_url(m->conn_url, ret_host, ret_port);
}

/* Fills *ret with the recovery section following target (NULL/"" = nobody); sets h->following. */
static int recovery_for(Ha *h, const char *target, PgParams *ret) {
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r;

        (void)member_host_port(h, target, &host, &port);
        r = pgconf_recovery_params(&h->pgs, host, port, ret);
        if (r < 0)
                return r;
        free(h->following);
        h->following = NULL;
        if (host && asprintf(&h->following, "%s:%u", host, port) < 0)
                h->following = NULL;
        h->upstream_cleared = !host;
        h->detached_probes = 0;
        return 0;
}

/* ==== jobs ==== */

/* postgresql.conf, pg_hba.conf and pg_ident.conf as they are now, concatenated; NULL on error. */
static char *reload_files_text(Ha *h) {
        static const char *const files[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"};
        char *all = NULL;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = pgconf_path(&h->pgs, files[i]), *text = NULL;
                char *joined;

                if (!path || read_full_file(path, 4 * 1024 * 1024, &text, NULL) < 0)
                        text = NULL;
                if (asprintf(&joined, "%s%s\n\f", strempty(all), strempty(text)) < 0) {
                        free(all);
                        return NULL;
                }
                free(all);
                all = joined;
        }
        return all;
}

/* Patroni's call_nowait(): runs the configured callback with the role ("master", "replica",
 * "demoted"); every action but on_reload marks callbacks as called. */
static void fire_callback(Ha *h, PgCallback action, const char *role) {
        if (action != PG_CALLBACK_ON_RELOAD)
                h->cb_called = true;
        if (h->callbacks)
                (void)callbacks_run(h->callbacks, action, role);
}

/* The role a callback gets for the running PostgreSQL: "master" for a primary, else "replica". */
static const char *callback_role(Ha *h) {
        const PgStatus *st = pgstatus(h);

        if (h->role == HA_ROLE_PRIMARY || (st && st->query_ok && !st->in_recovery))
                return "master";
        return "replica";
}

static void job_finish(Ha *h, int r) {
        HaJob kind = h->job_kind;

        h->job_last = kind;
        h->job_last_failed = r < 0;
        h->job_last_fresh = true;
        if (r >= 0 && h->job_next_role_set)
                h->role = h->job_next_role;
        if (kind == HA_JOB_REWIND)
                h->rewind_failed = r < 0;
        if (kind == HA_JOB_START || kind == HA_JOB_RESTART)
                h->start_failed_seen = r < 0;
        if (r < 0) /* the recovery section it was to apply may not be live */
                h->upstream_cleared = false;
        if (r >= 0 && h->job_step == STEP_RESTART)
                fire_callback(h, PG_CALLBACK_ON_RESTART, callback_role(h));
        if (r >= 0 && kind == HA_JOB_RELOAD) {
                _cleanup_free_ char *after = h->reload_before ? reload_files_text(h) : NULL;

                /* Patroni reloads (and calls on_reload) only when a setting changed */
                if (!h->reload_before || !streq_ptr(after, h->reload_before))
                        fire_callback(h, PG_CALLBACK_ON_RELOAD, callback_role(h));
        }
        h->reload_before = mfree(h->reload_before);
        if (h->job_step == STEP_RESTART) {
                call_reply(
                        &h->restart_call,
                        r < 0 ? 503 : 200,
                        r < 0 ? "restart failed" : "restarted successfully");
                h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        }
        h->job_kind = HA_JOB_NONE;
        h->job_step = STEP_NONE;
        h->job_next_role_set = false;
        h->pidfile_standby = false;
        snapshot_update(h);
        (void)pgmon_probe_now(h->pgmon);
        ha_tick_schedule(h, 0);
}

static void on_release_done(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to delete the leader key: %s", strna(message));
        lock_dropped(h);
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
        ha_tick_schedule(h, 0);
}

static void release_lock(Ha *h) {
        if (!h->lock_held && !(h->cluster && streq_ptr(h->cluster->leader, h->pgs.name)))
                return;
        if (dcs_leader_delete(h->dcs, on_release_done, h) < 0)
                log_warning("Failed to delete the leader key");
        lock_dropped(h); /* we no longer act as the leader from now on */
}

/* Renames path to the first free name among <path>.failed, <path>.failed.1 … .failed.99 (Patroni
 * removes an older <path>.failed first; pgha never removes it). Returns 0 or a negative errno. */
static int rename_failed(const char *path, char **ret_new) {
        _cleanup_free_ char *to = NULL;

        for (unsigned i = 0; i < 100; i++) {
                to = mfree(to);
                if ((i == 0 ? asprintf(&to, "%s.failed", path) : asprintf(&to, "%s.failed.%u", path, i)) < 0)
                        return -ENOMEM;
                if (access(to, F_OK) < 0 && errno == ENOENT)
                        break;
        }
        if (access(to, F_OK) >= 0)
                return -EEXIST;
        if (rename(path, to) < 0)
                return -errno;
        if (ret_new)
                *ret_new = TAKE_PTR(to);
        return 0;
}

/* Patroni's move_data_directory(): after a failed bootstrap the data directory (and the target of a
 * pg_wal symlink, which initdb --waldir makes) is renamed to <data_dir>.failed, never removed. */
static void data_dir_move_aside(Ha *h) {
        _cleanup_free_ char *wal = pgdata_path(&h->pgs, "pg_wal"), *moved = NULL;
        char target[PATH_MAX];
        struct stat st;
        ssize_t n;
        int r;

        if (stat(h->pgs.data_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        if (pgctl_postmaster_pid(h->pgs.data_dir, NULL) > 0) {
                log_error("Not renaming data directory %s: postgres still runs on it", h->pgs.data_dir);
                return;
        }
        if (wal && (n = readlink(wal, target, sizeof target - 1)) > 0) {
                _cleanup_free_ char *wal_moved = NULL;

                target[n] = '\0';
                log_info("renaming WAL directory and updating symlink: %s", target);
                r = rename_failed(target, &wal_moved);
                if (r < 0 || unlink(wal) < 0 || symlink(wal_moved, wal) < 0)
                        log_error_errno(r < 0 ? r : -errno, "Could not rename WAL directory %s: %m", target);
        }
        r = rename_failed(h->pgs.data_dir, &moved);
        if (r < 0)
                log_error_errno(r, "Could not rename data directory %s: %m", h->pgs.data_dir);
        else
                log_info("renaming data directory to %s", moved);
}

/* The end of Patroni's cancel_initialization(): the initialize key is gone and postgres stopped (or the
 * stop failed); move the data directory aside and exit with status 1 ("Failed to bootstrap cluster"). */
static void bootstrap_abort(Ha *h) {
        data_dir_move_aside(h);
        job_finish(h, 0);
        log_error("Failed to bootstrap cluster");
        manager_set_exit_status(h->manager, 1);
        (void)manager_start_shutdown(h->manager);
}

static void on_job(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;

        h->job_signalled = pgctl_job_signalled(job);
        h->job = pgctl_job_free(h->job);
        if (h->job_step == STEP_CANCEL_STOP) {
                bootstrap_abort(h);
                return;
        }
        if (r < 0) {
                /* pgctl_job_finish() logged the error already */
                if (h->job_step == STEP_STOP && h->job_release)
                        log_error("PostgreSQL shutdown failed, leader key not removed.");
                if (h->job_step == STEP_CHECKPOINT) {
                        h->checkpoint_pending = false;
                        job_finish(h, 0);
                        return;
                }
                job_finish(h, r);
                return;
        }
        job_advance(h);
}

static int start_replica_job(Ha *h) {
        _cleanup_(pg_params_done) PgParams rec = {};
        int r;

        r = recovery_for(h, h->job_target, &rec);
        if (r < 0)
                return r;
        h->job_step = STEP_START_REPLICA;
        h->cb_role_change = h->cb_called && (h->role == HA_ROLE_PRIMARY || h->role == HA_ROLE_DEMOTED);
        snapshot_update(h);
        (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        return pgctl_start(h->event, &h->pgs, &rec, on_job, h, &h->job);
}

/* Moves the job to its next step after a step succeeded. */
static void job_advance(Ha *h) {
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r = 0;

        switch (h->job_step) {
        case STEP_CLONE:
        case STEP_REINIT_CLONE:
        case STEP_REWIND:
                r = start_replica_job(h);
                break;
        case STEP_REINIT_STOP:
                r = member_host_port(h, h->job_target, &host, &port);
                if (r >= 0) {
                        h->job_step = STEP_REINIT_CLONE;
                        r = pgctl_create_replica(h->event, &h->pgs, host, port, true, on_job, h, &h->job);
                }
                break;
        case STEP_PROMOTE:
                h->role = HA_ROLE_PRIMARY;
                h->job_next_role_set = false;
                fire_callback(h, PG_CALLBACK_ON_ROLE_CHANGE, "master");
                (void)pgmon_probe_now(h->pgmon);
                h->slots_done = mfree(h->slots_done);
                h->job_step = STEP_CHECKPOINT;
                r = pgctl_checkpoint(h->event, &h->pgs, on_job, h, &h->job);
                if (r < 0) {
                        h->checkpoint_pending = false;
                        job_finish(h, 0);
                        return;
                }
                ha_tick_schedule(h, 0);
                return;
        case STEP_CHECKPOINT:
                h->checkpoint_pending = false;
                job_finish(h, 0);
                return;
        case STEP_STOP: {
                /* Patroni: on_stop only if a running postmaster was signalled; a demotion that gives
                 * the leader key away reports the role "demoted" */
                const char *role = h->job_release ? "demoted" : member_role_string(h);

                if (h->job_signalled)
                        fire_callback(h, PG_CALLBACK_ON_STOP, role);
                if (h->job_release) {
                        h->job_release = false;
                        release_lock(h);
                }
                job_finish(h, 0);
                return;
        }
        case STEP_START_REPLICA:
                /* Patroni's follow(): a node that was primary (or demoted) and had its callbacks
                 * called reports on_role_change, not on_start */
                fire_callback(
                        h, h->cb_role_change ? PG_CALLBACK_ON_ROLE_CHANGE : PG_CALLBACK_ON_START, "replica");
                h->cb_role_change = false;
                job_finish(h, 0);
                return;
        default:
                job_finish(h, 0);
                return;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to continue %s: %m", ha_job_to_string(h->job_kind));
                job_finish(h, r);
        }
}

static int job_begin(Ha *h, HaJob kind, JobStep step, const char *target) {
        h->job = pgctl_job_free(h->job);
        h->job_kind = kind;
        h->job_step = step;
        h->job_since = now_mono(h);
        h->job_release = false;
        h->job_next_role_set = false;
        snprintf(h->job_target, sizeof h->job_target, "%s", strempty(target));
        return 0;
}

static void job_set_next_role(Ha *h, HaRole r) {
        h->job_next_role = r;
        h->job_next_role_set = true;
}

static int start_stop_job(Ha *h, PgStopMode mode, bool checkpoint, bool release, HaRole next) {
        int r;

        job_begin(h, HA_JOB_DEMOTE, STEP_STOP, NULL);
        h->job_release = release;
        job_set_next_role(h, next);
        r = pgctl_stop(h->event, &h->pgs, mode, checkpoint, on_job, h, &h->job);
        if (r < 0)
                h->job_kind = HA_JOB_NONE, h->job_step = STEP_NONE;
        return r;
}

/* ==== synchronous replication (patroni-compat.md §2.10) ==== */

/* The order of the writes is the safety argument: a standby is named in `sync` only once the live
 * synchronous_standby_names lists it and PostgreSQL reports it synchronous (ha_sync_select); a name
 * leaves `sync` before it leaves synchronous_standby_names; promotion first claims `sync` for itself
 * with a compare on its mod_revision. */

static bool sync_mode_on(Ha *h) {
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
 * process_sync() changes it, so a rewrite of postgresql.conf never drops a standby that `sync` names. */
static void sync_render_ssn(Ha *h) {
        const PgStatus *st = pgstatus(h);
        const char *v;

        if (!sync_mode_on(h))
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
static void sync_forget(Ha *h) {
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
        if (pg_reload_config(h))
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
        if (then && h->lock_held && sync_mode_on(h)) {
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
static void process_sync(Ha *h) {
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

        if (!sync_mode_on(h)) {
                if (c->has_sync && (c->sync_leader || (c->sync_standby && c->sync_standby[0]))) {
                        if (dcs_delete_sync(h->dcs, c->sync_revision, on_sync_deleted, h) >= 0)
                                h->sync_busy = true;
                }
                sync_forget(h);
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

/* ==== dynamic configuration ==== */

static void pg_settings_rebuild(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        _cleanup_(cJSON_Deletep) cJSON *j = config_to_json(c, false);
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *err = NULL;
        cJSON *pg, *params;

        if (!j)
                return;
        pg = cJSON_GetObjectItemCaseSensitive(j, "postgresql");
        params = config_effective_parameters(c, &h->dyn, 15);
        if (!pg || !params) {
                cJSON_Delete(params);
                return;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(pg, "parameters");
        cJSON_AddItemToObject(pg, "parameters", params);
        cJSON_DeleteItemFromObjectCaseSensitive(pg, "use_slots");
        cJSON_AddBoolToObject(pg, "use_slots", h->dyn.use_slots);
        /* Boolean switches set in the dynamic configuration (Patroni merges every non-local
         * postgresql.* key from it); true in either place turns them on. */
        if (h->dyn.use_pg_rewind) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "use_pg_rewind");
                cJSON_AddBoolToObject(pg, "use_pg_rewind", true);
        }
        if (h->dyn.remove_data_directory_on_rewind_failure) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "remove_data_directory_on_rewind_failure");
                cJSON_AddBoolToObject(pg, "remove_data_directory_on_rewind_failure", true);
        }
        if (h->dyn.remove_data_directory_on_diverged_timelines) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "remove_data_directory_on_diverged_timelines");
                cJSON_AddBoolToObject(pg, "remove_data_directory_on_diverged_timelines", true);
        }
        if (pg_settings_from_json(j, &s, &err) < 0) {
                log_error("Cannot build the PostgreSQL settings: %s", strna(err));
                return;
        }
        if (h->job) {
                /* a running job borrows the settings: apply at the next tick without a job */
                return;
        }
        pg_settings_done(&h->pgs);
        h->pgs = s;
        s = (PgSettings){};
        sync_render_ssn(h);
}

static void watchdog_apply(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        WatchdogOptions o = {
                .mode = c->watchdog.mode,
                .driver = c->watchdog.driver,
                .device = c->watchdog.device,
                .safety_margin = c->watchdog.safety_margin,
                .ttl = (unsigned)h->dyn.ttl,
                .loop_wait = (unsigned)h->dyn.loop_wait,
        };

        if (!h->watchdog) {
                if (watchdog_new(&o, &h->watchdog) < 0)
                        log_warning("Failed to set up the watchdog");
        } else
                (void)watchdog_reconfigure(h->watchdog, &o);
}

static bool data_dir_populated(Ha *h) {
        _cleanup_free_ char *ver = pgdata_path(&h->pgs, "PG_VERSION");
        return ver && access(ver, F_OK) >= 0;
}

/* Applies a dynamic configuration (etcd `config` key, cached file or bootstrap.dcs). */
static int ha_apply_dynamic(Ha *h, const cJSON *json, bool from_dcs) {
        _cleanup_(dynamic_config_done) DynamicConfig d = {};
        _cleanup_free_ char *text = NULL;
        bool ttl_changed, retry_changed;
        int r;

        if (!cJSON_IsObject(json) || json_print_compact(json, &text) < 0)
                return -EINVAL;
        if (h->dyn_text && streq(h->dyn_text, text))
                return 0;
        r = dynamic_config_from_json(json, &d, "config", NULL);
        if (r < 0 && r != -EINVAL)
                return r;
        ttl_changed = d.ttl != h->dyn.ttl;
        retry_changed = d.retry_timeout != h->dyn.retry_timeout;
        dynamic_config_done(&h->dyn);
        h->dyn = d;
        d = (DynamicConfig){};
        free(h->dyn_text);
        h->dyn_text = TAKE_PTR(text);
        if (from_dcs && h->dyn_cache_path && h->pgs.data_dir && data_dir_populated(h))
                if (write_file_atomic(h->dyn_cache_path, h->dyn_text, strlen(h->dyn_text), 0600) < 0)
                        log_debug("Failed to cache the dynamic configuration");
        pg_settings_rebuild(h);
        watchdog_apply(h);
        /* A change made through edit-config or PATCH /config reaches PostgreSQL without a restart, as
         * in Patroni: the next tick without a job rewrites postgresql.conf and reloads. */
        if (from_dcs)
                h->pg_reload_pending = true;
        if (ttl_changed && h->dcs) {
                log_info("Dynamic configuration: ttl=%i loop_wait=%i", h->dyn.ttl, h->dyn.loop_wait);
                /* A new lease with the new TTL; the leader key is re-bound to it by the next renewal
                 * (on_lease() asks for one), its deadline stays the old lease's until then. */
                dcs_set_ttl(h->dcs, (unsigned)MAX(h->dyn.ttl, 1));
        }
        if (retry_changed && h->etcd) {
                /* Patroni's set_retry_timeout: the budget of each etcd operation from now on. */
                log_info("Dynamic configuration: retry_timeout=%i", h->dyn.retry_timeout);
                etcd_client_set_request_timeout(h->etcd, retry_timeout_usec(h));
        }
        return 1;
}

/* ==== replication slots ==== */

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

/* On the primary: creates the physical slots of the members (except ones with a replicatefrom tag
 * naming another member) and the permanent physical `slots`, and drops inactive physical slots that are
 * neither of those nor matched by `ignore_slots`. Logical slots are never touched. */
static void maintain_slots(Ha *h) {
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
        bool keep_all = false;
        const char *params[3];

        if (!h->dyn.use_slots || !h->cluster || !h->lock_held || h->slots_running || !st || !st->query_ok ||
            st->in_recovery)
                return;
        for (size_t i = 0; i < h->cluster->n_members; i++) {
                const DcsMember *m = &h->cluster->members[i];
                _cleanup_free_ char *slot = NULL;
                const char *rf = NULL;

                if (streq(m->name, h->pgs.name))
                        continue;
                if (m->tags && json_get_string(m->tags, "replicatefrom", &rf) >= 0 && !isempty(rf) &&
                    !streq(rf, h->pgs.name) && dcs_cluster_find_member(h->cluster, rf))
                        continue;
                if (pgconf_slot_name(m->name, &slot) < 0)
                        continue;
                if (!slot_list_add(want, sizeof want, &len, slot))
                        return;
        }
        if (!slots_add_permanent(h, want, sizeof want, &len) ||
            !slots_add_ignored(h, keep, sizeof keep, &klen, &keep_all))
                return;
        if (h->dyn.pause) /* Patroni drops no slot while paused */
                keep_all = true;
        want[len++] = '}';
        want[len] = 0;
        keep[klen++] = '}';
        keep[klen] = 0;
        snprintf(key, sizeof key, "%s|%s|%d", want, keep, keep_all);
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

/* ==== history ==== */

static void write_history(Ha *h) {
        const PgStatus *st = pgstatus(h);
        _cleanup_(cJSON_Deletep) cJSON *arr = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL, *name = NULL;
        char *line, *save = NULL;

        if (!st || !st->query_ok || st->in_recovery || st->timeline <= 1 || !h->cluster ||
            h->cluster->history_timeline == (int64_t)st->timeline)
                return;
        if (asprintf(&name, "pg_wal/%08X.history", st->timeline) < 0 || !(path = pgdata_path(&h->pgs, name)))
                return;
        if (read_full_file(path, 1024 * 1024, &text, NULL) < 0)
                return;
        arr = cJSON_CreateArray();
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned tl, hi, lo;
                char reason[256] = "";
                cJSON *l;

                if (sscanf(line, "%u\t%X/%X\t%255[^\n]", &tl, &hi, &lo, reason) < 3)
                        continue;
                l = cJSON_CreateArray();
                cJSON_AddItemToArray(l, cJSON_CreateNumber(tl));
                cJSON_AddItemToArray(l, json_int64_new((int64_t)(((uint64_t)hi << 32) | lo)));
                cJSON_AddItemToArray(l, cJSON_CreateString(reason));
                cJSON_AddItemToArray(arr, l);
        }
        if (cJSON_GetArraySize(arr) > 0) {
                cJSON *last = cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1);
                char ts[64];
                time_t t = time(NULL);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
                cJSON_AddItemToArray(last, cJSON_CreateString(ts));
                cJSON_AddItemToArray(last, cJSON_CreateString(h->pgs.name));
        }
        if (dcs_write_history(h->dcs, arr, NULL, NULL) < 0)
                log_warning("Failed to write the history key");
}

/* ==== acting ==== */

static void on_side_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        if (error < 0)
                log_warning("etcd write failed: %s", strna(message));
}

/* Forgets the scheduled restart (done, cancelled, stale or refused); the member key and GET /patroni
 * stop showing it. */
static void scheduled_restart_clear(Ha *h) {
        if (!h->scheduled_restart && !h->restart_sched_json)
                return;
        h->scheduled_restart = false;
        h->scheduled_restart_at = 0;
        h->restart_sched_start = 0;
        restart_request_done(&h->restart_sched);
        cJSON_Delete(h->restart_sched_json);
        h->restart_sched_json = NULL;
        snapshot_update(h);
}

static void apply_flags_after(Ha *h, const HaDecision *dec) {
        const PgStatus *st = pgstatus(h);

        if ((dec->flags & HA_FLAG_CLEAR_FAILOVER) && h->cluster && h->cluster->has_failover) {
                log_info("Cleaning up failover key");
                if (dcs_write_failover(h->dcs, NULL, h->cluster->failover_revision, on_side_write, h) < 0)
                        log_warning("Failed to clean up the failover key");
        }
        if ((dec->flags & HA_FLAG_WRITE_STATUS) && h->lock_held && st && st->query_ok && !st->in_recovery)
                if (dcs_write_status(h->dcs, (int64_t)st->wal_write_lsn, NULL, on_side_write, h) < 0)
                        log_warning("Failed to write the status key");
        if ((dec->flags & HA_FLAG_UPDATE_HISTORY) && h->lock_held)
                write_history(h);
        if ((dec->flags & HA_FLAG_PROCESS_SYNC) && h->lock_held)
                process_sync(h);
        if (dec->flags & HA_FLAG_DISABLE_WATCHDOG && h->watchdog)
                watchdog_disable(h->watchdog);
        if (dec->flags & HA_FLAG_CLEAR_RESTART) {
                h->restart_requested = false;
                restart_request_done(&h->restart_now);
                scheduled_restart_clear(h);
                if (dec->action != HA_ACTION_RESTART)
                        call_reply(&h->restart_call, 503, "restart conditions are not satisfied");
        }
        if (dec->flags & HA_FLAG_CLEAR_REINIT)
                h->reinit_requested = false;
}

static void restart_reply_arm(Ha *h, usec_t after);

/* Arms (and feeds) the watchdog before this node runs the primary. Returns false when the configuration
 * requires a watchdog that could not be armed: the caller must not promote (Patroni's
 * enforce_primary_role); watchdog_is_healthy() is false from then on, so the next tick demotes or
 * releases the lock through the watchdog rows of the table. */
static bool arm_watchdog(Ha *h) {
        const Config *c = manager_get_config(h->manager);

        if (!h->watchdog)
                return c->watchdog.mode != WATCHDOG_REQUIRED;
        if (watchdog_activate(h->watchdog) < 0) {
                if (c->watchdog.mode != WATCHDOG_REQUIRED)
                        return true; /* automatic: carry on without */
                h->tick_again = true;
                return false;
        }
        if (watchdog_is_active(h->watchdog))
                (void)watchdog_keepalive(h->watchdog);
        return true;
}

#define MSG_WATCHDOG_NOT_PROMOTING "Not promoting self because watchdog could not be activated"

/* The lock was won but a required watchdog cannot be armed: give the key back at once. */
static void release_lock_no_watchdog(Ha *h) {
        log_warning("%s", MSG_WATCHDOG_NOT_PROMOTING);
        if (!h->lock_held)
                return;
        if (dcs_leader_delete(h->dcs, NULL, NULL) < 0)
                log_warning("Failed to delete the leader key");
        lock_dropped(h);
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
}

#define MSG_SYNC_CLAIM_FAILED \
        "Postponing promotion because synchronous replication state was updated by somebody else"

/* Starts the promote job (the lock is ours). */
static int start_promote(Ha *h) {
        int r;

        if ((h->decision.flags & HA_FLAG_ARM_WATCHDOG) && !arm_watchdog(h)) {
                release_lock_no_watchdog(h);
                return 0;
        }
        job_begin(h, HA_JOB_PROMOTE, STEP_PROMOTE, NULL);
        job_set_next_role(h, HA_ROLE_PRIMARY);
        h->checkpoint_pending = true;
        r = pgctl_promote(h->event, &h->pgs, on_job, h, &h->job);
        if (r < 0) {
                h->job_kind = HA_JOB_NONE;
                h->job_step = STEP_NONE;
        }
        return r;
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
                sync_forget(h);
                if (h->lock_held && start_promote(h) < 0)
                        log_error("Failed to start the promotion");
        }
        if (h->decision.action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE)
                apply_flags_after(h, &h->decision);
        ha_act_done(h);
}

/* HA_FLAG_CLAIM_SYNC: sync = {leader: me, sync_standby: null}, compared against the revision this tick
 * read; the promotion follows only when that write succeeds. */
static int claim_sync_then_promote(Ha *h) {
        int64_t rev = h->cluster && h->cluster->has_sync ? h->cluster->sync_revision : 0;
        int r;

        r = dcs_write_sync(h->dcs, h->pgs.name, NULL, sync_null_quorum(h), rev, on_sync_claimed, h);
        if (r >= 0)
                h->sync_busy = true;
        return r;
}

static void on_acquire(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        HaDecision *dec = &h->decision;

        if (error < 0 || !res || !res->succeeded) {
                log_info("%s", error < 0 ? strna(message) : "failed to acquire the leader lock");
                ha_act_done(h);
                return;
        }
        if (h->stopping) {
                /* won the race while shutting down: give the key back at once */
                if (dcs_leader_delete(h->dcs, NULL, NULL) < 0)
                        log_warning("Failed to delete the leader key");
                return;
        }
        lock_taken(h, res->lease);
        log_info("%s", dec->message);
        if (dec->action == HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE) {
                if ((dec->flags & HA_FLAG_CLAIM_SYNC) && claim_sync_then_promote(h) >= 0)
                        return; /* on_sync_claimed() continues */
                if (dec->flags & HA_FLAG_CLAIM_SYNC)
                        log_info("%s", MSG_SYNC_CLAIM_FAILED);
                else
                        (void)start_promote(h);
        } else if (dec->action == HA_ACTION_BOOTSTRAP_FINISH) {
                h->role = HA_ROLE_PRIMARY;
                h->bootstrap_won = false;
                fire_callback(h, PG_CALLBACK_ON_START, "master"); /* Patroni's post_bootstrap */
        } else
                h->role = dec->next_role;
        apply_flags_after(h, dec);
        ha_act_done(h);
}

static void on_renew(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error == 0 && res && !res->succeeded) {
                log_error("Leader key refresh refused (holder: %s)", strna(res->leader));
                h->renew_failed = true;
        } else if (error < 0)
                log_warning("Leader key refresh failed: %s", strna(message));
        else {
                if (res && res->lease > 0 && res->lease != h->lock_lease) {
                        log_info("Leader key re-bound to etcd lease %" PRIi64, res->lease);
                        h->lock_lease = res->lease;
                }
                lease_deadline_update(h);
                if (h->decision.action == HA_ACTION_RENEW_LOCK && (int)h->decision.next_role >= 0)
                        h->role = h->decision.next_role;
                apply_flags_after(h, &h->decision);
                if ((h->decision.flags & HA_FLAG_ARM_WATCHDOG))
                        (void)arm_watchdog(h); /* on failure the next tick demotes */
                maintain_slots(h);
        }
        ha_act_done(h);
}

static void
on_bootstrap_config(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to write the config key: %s", strna(message));
        if (dcs_leader_acquire(h->dcs, on_acquire, h) < 0)
                ha_act_done(h);
}

static void on_initialize_set(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        const Config *c = manager_get_config(h->manager);

        if (error < 0) {
                log_error("Failed to write the initialize key: %s", strna(message));
                ha_act_done(h);
                return;
        }
        if (!h->cluster || !h->cluster->config) {
                if (dcs_set_config(h->dcs, c->bootstrap.dcs, 0, on_bootstrap_config, h) >= 0)
                        return;
        }
        on_bootstrap_config(d, 0, NULL, NULL, h);
}

static void on_race(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error >= 0 && res && res->succeeded) {
                log_info("Won the initialize race");
                h->bootstrap_won = true;
                h->tick_again = true;
        } else
                log_info(
                        "%s",
                        h->decision.message_failed[0] ? h->decision.message_failed
                                                      : "failed to acquire initialize lock");
        ha_act_done(h);
}

static void
on_cancel_bootstrap(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        h->bootstrap_won = false;
        /* stop what the bootstrap started, then bootstrap_abort() */
        job_begin(h, HA_JOB_STOP, STEP_CANCEL_STOP, NULL);
        if (pgctl_stop(h->event, &h->pgs, PG_STOP_IMMEDIATE, false, on_job, h, &h->job) < 0)
                bootstrap_abort(h);
        ha_act_done(h);
}

static void on_release_action(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        lock_dropped(h);
        if ((int)h->decision.next_role >= 0)
                h->role = h->decision.next_role;
        h->release_wait_until = now_mono(h) + 2 * USEC_PER_SEC;
        ha_act_done(h);
}

/* FOLLOW: point a running replica at the target if it follows someone else. */
static int act_follow(Ha *h, const HaDecision *dec) {
        _cleanup_(pg_params_done) PgParams rec = {};
        _cleanup_free_ char *host = NULL, *want = NULL;
        const PgStatus *st = pgstatus(h);
        unsigned port = 0;

        if (!st || !st->running)
                return 0;
        (void)member_host_port(h, dec->target, &host, &port);
        if (host && asprintf(&want, "%s:%u", host, port) < 0)
                return -ENOMEM;
        /* Following nobody is settled only once we cleared the upstream ourselves: a PostgreSQL we found
         * running may still stream from a former leader. */
        if (want ? streq_ptr(want, h->following) : h->upstream_cleared)
                return 0;
        if (!h->following && st->receiver_host && host && streq(st->receiver_host, host) &&
            st->receiver_port == port) {
                h->following = TAKE_PTR(want);
                return 0;
        }
        log_info("Changing the upstream to %s", strna(want));
        if (recovery_for(h, dec->target, &rec) < 0)
                return -ENOMEM;
        job_begin(h, HA_JOB_RELOAD, STEP_NONE, dec->target);
        return pgctl_reload(h->event, &h->pgs, &rec, on_job, h, &h->job);
}

static void act(Ha *h) {
        HaDecision *dec = &h->decision;
        _cleanup_free_ char *host = NULL;
        unsigned port = 0;
        int r = 0;

        switch (dec->action) {
        case HA_ACTION_NOOP:
        case HA_ACTION_WAIT:
        case HA_ACTION_WAIT_FOR_BOOTSTRAP:
        case HA_ACTION_STAY_PRIMARY:
                if ((int)dec->next_role >= 0)
                        h->role = dec->next_role;
                apply_flags_after(h, dec);
                if (dec->flags & HA_FLAG_ARM_WATCHDOG)
                        (void)arm_watchdog(h); /* on failure the next tick demotes */
                break;
        case HA_ACTION_FENCE:
                break;
        case HA_ACTION_EXIT:
                /* Patroni: logger.fatal (CRITICAL) for the system ID mismatch, logger.error otherwise */
                if (startswith(dec->message, "system ID mismatch"))
                        log_crit("%s", dec->message);
                else
                        log_error("%s", dec->message);
                manager_set_exit_status(h->manager, 1);
                (void)manager_start_shutdown(h->manager);
                break;
        case HA_ACTION_BOOTSTRAP_RACE:
                if (dcs_initialize_race(h->dcs, on_race, h) >= 0)
                        return;
                break;
        case HA_ACTION_BOOTSTRAP_INITDB:
                if (dec->flags & HA_FLAG_DISABLE_WATCHDOG && h->watchdog)
                        watchdog_disable(h->watchdog);
                job_begin(h, HA_JOB_BOOTSTRAP, STEP_BOOTSTRAP, NULL);
                r = pgctl_bootstrap(h->event, &h->pgs, on_job, h, &h->job);
                break;
        case HA_ACTION_BOOTSTRAP_FINISH: {
                const PgStatus *st = pgstatus(h);
                char sysid[32];

                if (!st || !st->query_ok || !st->system_identifier)
                        break;
                if ((dec->flags & HA_FLAG_ARM_WATCHDOG) && !arm_watchdog(h)) {
                        /* Patroni cancels the bootstrap: the next tick sees the bootstrap job again,
                         * now with an unhealthy watchdog (row bootstrap_no_watchdog). */
                        h->job_last_fresh = true;
                        break;
                }
                snprintf(sysid, sizeof sysid, "%llu", (unsigned long long)st->system_identifier);
                if (dcs_initialize_set(h->dcs, sysid, on_initialize_set, h) >= 0)
                        return;
                break;
        }
        case HA_ACTION_BOOTSTRAP_CANCEL:
                log_info("removing initialize key after failed attempt to bootstrap the cluster");
                if (dcs_initialize_delete(h->dcs, on_cancel_bootstrap, h) >= 0)
                        return;
                break;
        case HA_ACTION_CLONE_FROM_LEADER:
                r = member_host_port(h, dec->target, &host, &port);
                if (r < 0)
                        break;
                job_begin(h, HA_JOB_CLONE, STEP_CLONE, dec->target);
                job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_create_replica(h->event, &h->pgs, host, port, false, on_job, h, &h->job);
                break;
        case HA_ACTION_ACQUIRE_LOCK:
        case HA_ACTION_ACQUIRE_LOCK_AND_PROMOTE:
                if (dcs_leader_acquire(h->dcs, on_acquire, h) >= 0)
                        return;
                break;
        case HA_ACTION_PROMOTE:
                if (dec->flags & HA_FLAG_CLAIM_SYNC) {
                        if (claim_sync_then_promote(h) >= 0)
                                return; /* on_sync_claimed() continues */
                        log_info("%s", MSG_SYNC_CLAIM_FAILED);
                        break;
                }
                r = start_promote(h);
                break;
        case HA_ACTION_RENEW_LOCK:
                if (dcs_leader_renew(h->dcs, on_renew, h) >= 0)
                        return;
                break;
        case HA_ACTION_DEMOTE_GRACEFUL:
                log_info("%s", dec->message);
                r = start_stop_job(h, PG_STOP_FAST, true, true, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_IMMEDIATE:
                r = start_stop_job(h, PG_STOP_IMMEDIATE, false, true, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_IMMEDIATE_NOLOCK:
                fence_postgres(h, dec->message);
                lock_dropped(h);
                r = start_stop_job(h, PG_STOP_IMMEDIATE, false, false, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_DEMOTE_OFFLINE:
                r = start_stop_job(h, PG_STOP_FAST, false, false, HA_ROLE_DEMOTED);
                break;
        case HA_ACTION_RELEASE_LOCK:
                if (dcs_leader_delete(h->dcs, on_release_action, h) >= 0)
                        return;
                break;
        case HA_ACTION_FOLLOW:
                if ((int)dec->next_role >= 0)
                        h->role = dec->next_role;
                r = act_follow(h, dec);
                break;
        case HA_ACTION_START_POSTGRES:
                job_begin(h, HA_JOB_START, STEP_NONE, dec->target);
                job_set_next_role(h, (int)dec->next_role >= 0 ? dec->next_role : h->role);
                r = start_replica_job(h);
                break;
        case HA_ACTION_STOP_POSTGRES:
                r = start_stop_job(
                        h,
                        /* a diverged replica is rewound next: pg_rewind needs a clean shutdown */
                        h->replica_diverged ? PG_STOP_FAST : PG_STOP_IMMEDIATE,
                        false,
                        false,
                        (int)dec->next_role >= 0 ? dec->next_role : h->role);
                if (r >= 0)
                        h->job_kind = HA_JOB_STOP;
                break;
        case HA_ACTION_RECOVER_CRASHED:
                job_begin(h, HA_JOB_CRASH_RECOVERY, STEP_CRASH_RECOVERY, NULL);
                r = pgctl_crash_recovery(h->event, &h->pgs, on_job, h, &h->job);
                break;
        case HA_ACTION_REWIND:
                r = member_host_port(h, dec->target, &host, &port);
                if (r < 0)
                        break;
                h->replica_diverged = false;
                job_begin(h, HA_JOB_REWIND, STEP_REWIND, dec->target);
                job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_rewind(h->event, &h->pgs, host, port, on_job, h, &h->job);
                break;
        case HA_ACTION_REINIT:
                apply_flags_after(h, dec); /* the request is taken: clear it, or it runs forever */
                h->replica_diverged = false;
                job_begin(h, HA_JOB_REINIT, STEP_REINIT_STOP, dec->target);
                job_set_next_role(h, HA_ROLE_REPLICA);
                r = pgctl_stop(h->event, &h->pgs, PG_STOP_IMMEDIATE, false, on_job, h, &h->job);
                break;
        case HA_ACTION_RESTART: {
                _cleanup_(pg_params_done) PgParams rec = {};
                const PgStatus *st = pgstatus(h);
                bool replica = !(st && st->query_ok && !st->in_recovery);
                usec_t reply_after = h->restart_call ? h->restart_now.timeout : 0;

                apply_flags_after(h, dec); /* clears restart_now */
                if (replica && recovery_for(h, dec->target, &rec) < 0)
                        break;
                job_begin(h, HA_JOB_RESTART, STEP_RESTART, dec->target);
                r = pgctl_restart(h->event, &h->pgs, replica ? &rec : NULL, on_job, h, &h->job);
                if (r >= 0 && reply_after > 0)
                        restart_reply_arm(h, reply_after);
                else if (r >= 0) /* without a timeout the request waits for the job */
                        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
                break;
        }
        case HA_ACTION_CANCEL_JOB:
                h->job = pgctl_job_free(h->job);
                job_finish(h, -ECANCELED);
                break;
        case HA_ACTION_SHUTDOWN_STOP:
        case HA_ACTION_SHUTDOWN_DETACH:
        default:
                break;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to start %s: %m", ha_action_to_string(dec->action));
                if (h->job_kind != HA_JOB_NONE && !h->job) {
                        h->job_kind = HA_JOB_NONE;
                        h->job_step = STEP_NONE;
                }
        }
        ha_act_done(h);
}

/* ==== REST intents: pending switchover ==== */

static void switch_check(Ha *h) {
        const char *what = h->switch_failover ? "failed over" : "switched over";
        const DcsCluster *c = h->cluster;
        char buf[512];

        if (!h->switch_call || h->switch_deadline == 0)
                return;
        if (h->switch_scheduled) {
                if (h->switch_revision <= 0 ||
                    !((c && c->revision >= h->switch_revision) || now_mono(h) >= h->switch_deadline))
                        return;
                snapshot_update(h);
                call_reply(
                        &h->switch_call,
                        202,
                        h->switch_failover ? "Failover scheduled" : "Switchover scheduled");
                h->switch_from = mfree(h->switch_from);
                h->switch_to = mfree(h->switch_to);
                return;
        }
        if (c && c->revision >= h->switch_revision && h->switch_revision > 0 && c->leader &&
            !streq_ptr(c->leader, h->switch_from)) {
                if (!h->switch_to || streq(c->leader, h->switch_to))
                        snprintf(buf, sizeof buf, "Successfully %s to \"%s\"", what, c->leader);
                else
                        snprintf(
                                buf,
                                sizeof buf,
                                "%s over to \"%s\" instead of \"%s\"",
                                h->switch_failover ? "Failed" : "Switched",
                                c->leader,
                                h->switch_to);
                (void)rest_call_reply_text(h->switch_call, 200, buf);
        } else if (
                c && c->revision >= h->switch_revision && h->switch_revision > 0 && !c->has_failover &&
                c->leader && streq_ptr(c->leader, h->switch_from))
                /* the leader cleaned the key up without handing over */
                (void)rest_call_reply_text(
                        h->switch_call, 503, h->switch_failover ? "Failover failed" : "Switchover failed");
        else if (now_mono(h) >= h->switch_deadline)
                (void)rest_call_reply_text(
                        h->switch_call,
                        503,
                        h->switch_failover ? "Failover status unknown" : "Switchover status unknown");
        else
                return;
        h->switch_call = NULL;
        h->switch_from = mfree(h->switch_from);
        h->switch_to = mfree(h->switch_to);
}

/* ==== the tick ==== */

/* Why the restart filters rq refuse a restart of this node now (ha_fsm_restart_mismatch()); NULL: go. */
static const char *restart_mismatch(Ha *h, const RestartRequest *rq) {
        const PgStatus *st = pgstatus(h);

        return ha_fsm_restart_mismatch(
                rq->role,
                rq->version,
                rq->pending,
                member_role_string(h),
                st && st->query_ok ? (unsigned)MAX(st->server_version, 0) : 0,
                st && st->query_ok && st->pending_restart);
}

/* The data directory as Patroni's data_directory_empty() sees it: with global/pg_control it holds a cluster;
 * without, it is empty only if it is missing or holds nothing but dot-files and lost+found. Anything else
 * (a stray file, a half-copied cluster) is "not empty, but no valid system identifier": never bootstrapped
 * or cloned over, never removed. A directory that cannot be read is inaccessible. */
static HaDataDir data_dir_state(Ha *h, const char *ctl) {
        struct dirent *de;
        bool empty = true;
        DIR *d;

        if (ctl && access(ctl, F_OK) >= 0)
                return HA_DATA_DIR_VALID;
        d = opendir(h->pgs.data_dir);
        if (!d) {
                if (errno == ENOENT)
                        return HA_DATA_DIR_EMPTY;
                if (!h->data_dir_error_logged)
                        log_error("data directory %s is not accessible: %m", h->pgs.data_dir);
                h->data_dir_error_logged = true;
                return HA_DATA_DIR_INACCESSIBLE;
        }
        h->data_dir_error_logged = false;
        while (empty && (de = readdir(d)))
                empty = de->d_name[0] == '.' || streq(de->d_name, "lost+found");
        closedir(d);
        return empty ? HA_DATA_DIR_EMPTY : HA_DATA_DIR_INVALID;
}

/* Whether pg_wal holds a WAL segment of a timeline after tl. A running replica reports the timeline of
 * its walreceiver, or without one its last restartpoint's: right after following a new leader across a
 * timeline switch, while that leader restarts, it can report the old timeline with a replay position
 * past the fork point although it replayed the new timeline's records. Its walreceiver wrote them into
 * segments named after the new timeline; a replica that really went past the fork on the old timeline
 * could never stream the new one, so it has none. */
static bool wal_has_segment_after_timeline(Ha *h, uint32_t tl) {
        _cleanup_free_ char *dir = pgdata_path(&h->pgs, "pg_wal");
        struct dirent *de;
        bool found = false;
        DIR *d;

        if (!dir || !(d = opendir(dir)))
                return false;
        while (!found && (de = readdir(d))) {
                unsigned seg_tl;

                if (strlen(de->d_name) == 24 && strspn(de->d_name, "0123456789ABCDEF") == 24 &&
                    sscanf(de->d_name, "%8X", &seg_tl) == 1)
                        found = seg_tl > tl;
        }
        closedir(d);
        return found;
}

static void decide_and_act(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        const PgStatus *st = pgstatus(h);
        HaFacts f = {};
        HaDecision dec = {};
        int r;

        if (h->stopping) {
                /* the shutdown hook owns PostgreSQL and the leader key now */
                h->tick_running = false;
                return;
        }

        f.now = h->now;
        f.last_tick = h->last_tick;
        f.tilt_until = h->tilt_until;
        f.role = h->role;
        f.node.name = h->pgs.name;
        f.node.tags.nofailover = c->tag.nofailover;
        f.node.tags.nosync = c->tag.nosync;
        f.node.tags.noloadbalance = c->tag.noloadbalance;
        f.node.tags.clonefrom = c->tag.clonefrom;
        f.node.tags.replicatefrom = c->tag.replicatefrom;
        f.node.watchdog_mode = c->watchdog.mode == WATCHDOG_REQUIRED ? HA_WATCHDOG_REQUIRED
                : c->watchdog.mode == WATCHDOG_AUTOMATIC             ? HA_WATCHDOG_AUTOMATIC
                                                                     : HA_WATCHDOG_OFF;
        f.node.watchdog_usable = !h->watchdog || watchdog_is_healthy(h->watchdog);

        /* local postgres */
        if (st && st->running) {
                bool starting = st->pidfile_status && (streq(st->pidfile_status, "starting"));
                f.pg.state = st->query_ok ? HA_PG_RUNNING : starting ? HA_PG_STARTING : HA_PG_UNKNOWN;
                if (!st->query_ok && st->probe_error_message &&
                    strstr(st->probe_error_message, "starting up"))
                        f.pg.state = HA_PG_STARTING;
                f.pg.is_primary = st->query_ok && !st->in_recovery;
                f.pg.timeline = st->timeline;
                f.pg.wal_received = st->receive_lsn;
                f.pg.wal_replayed = st->replay_lsn;
                f.pg.wal_write = st->wal_write_lsn;
                f.pg.has_sysid = st->query_ok && st->system_identifier;
                f.pg.sysid = st->system_identifier;
                f.pg.data_dir = HA_DATA_DIR_VALID;
                f.pg.pending_restart = st->query_ok && st->pending_restart;
                f.pg.postmaster_start_time = (uint64_t)st->postmaster_start_epoch;
        } else {
                _cleanup_free_ char *ctl = pgdata_path(&h->pgs, "global/pg_control");
                f.pg.state = h->start_failed_seen ? HA_PG_CRASHED : HA_PG_STOPPED;
                if (st && (st->postmaster == POSTMASTER_GONE || st->postmaster == POSTMASTER_ZOMBIE) &&
                    h->role == HA_ROLE_PRIMARY)
                        f.pg.state = HA_PG_CRASHED;
                f.pg.data_dir = data_dir_state(h, ctl);
                if (h->cd_ok) {
                        f.pg.has_sysid = h->cd_sysid != 0;
                        f.pg.sysid = h->cd_sysid;
                        f.pg.timeline = h->cd_timeline;
                        f.pg.unclean_shutdown = h->cd_unclean;
                } else if (f.pg.data_dir == HA_DATA_DIR_VALID)
                        f.pg.data_dir = HA_DATA_DIR_INVALID;
                if (h->job_step == STEP_BOOTSTRAP || h->job_step == STEP_CLONE)
                        f.pg.data_dir = HA_DATA_DIR_EMPTY;
        }
        f.pg.state_since = st ? (st->running ? st->process_checked_at : st->not_running_since) : 0;
        f.pg.rewind_usable = h->pgs.use_pg_rewind;
        f.pg.rewind_failed = h->rewind_failed;
        f.pg.upstream_detached = upstream_detached(h);
        f.pg.divergence = HA_DIVERGENCE_UNKNOWN;
        if (h->cluster && h->cluster->leader && !streq(h->cluster->leader, h->pgs.name)) {
                const DcsMember *lm = dcs_cluster_find_member(h->cluster, h->cluster->leader);
                /* Only a leader that finished its promotion (member key role master, checkpoint done)
                 * advertises the timeline we must compare with. */
                bool settled = lm && lm->has_timeline && lm->checkpoint_after_promote != 0 &&
                        (streq_ptr(lm->role, "master") || streq_ptr(lm->role, "primary"));
                if (settled && !(st && st->running) && h->cd_ok) {
                        uint32_t leader_tl = (uint32_t)MAX(lm->timeline, h->cluster->history_timeline);
                        f.pg.divergence = ha_divergence(
                                h->cd_timeline, h->cd_checkpoint, leader_tl, h->cluster->history);
                        log_info(
                                "Timeline check against %s: local timeline %u, end of WAL %" PRIu64
                                ", leader timeline %" PRIi64 ": %s",
                                lm->name,
                                h->cd_timeline,
                                h->cd_checkpoint,
                                lm->timeline,
                                f.pg.divergence == HA_DIVERGENCE_NONE ? "no divergence" : "diverged");
                } else if (st && st->running && st->query_ok && st->in_recovery) {
                        /* A running replica too (Patroni checks it with its replay position): one that
                         * replayed past the fork point can never stream from this leader. Not while
                         * paused: nothing is touched then. */
                        uint32_t leader_tl =
                                settled ? (uint32_t)MAX(lm->timeline, h->cluster->history_timeline) : 0;
                        f.pg.divergence = HA_DIVERGENCE_NONE;
                        if (settled && !h->dyn.pause &&
                            ha_divergence_replica(
                                    st->timeline, st->replay_lsn, leader_tl, h->cluster->history) ==
                                    HA_DIVERGENCE_DIVERGED &&
                            !wal_has_segment_after_timeline(h, st->timeline)) {
                                f.pg.divergence = HA_DIVERGENCE_DIVERGED;
                                if (!h->replica_diverged)
                                        log_info(
                                                "Timeline check against %s: local timeline %u, replayed "
                                                "up to %" PRIu64 ", leader timeline %u: diverged",
                                                lm->name,
                                                st->timeline,
                                                st->replay_lsn,
                                                leader_tl);
                                h->replica_diverged = true;
                        }
                }
                if (h->replica_diverged && !(st && st->running) &&
                    f.pg.divergence != HA_DIVERGENCE_DIVERGED && settled && h->cd_ok)
                        f.pg.divergence = HA_DIVERGENCE_DIVERGED;
        }

        f.lease.deadline = h->lease_deadline;
        f.lease.renew_failed = h->renew_failed;

        f.dcs.config.ttl = ttl_usec(h);
        f.dcs.config.loop_wait = loop_wait_usec(h);
        f.dcs.config.retry_timeout = (usec_t)h->dyn.retry_timeout * USEC_PER_SEC;
        f.dcs.config.maximum_lag_on_failover = (uint64_t)MAX(h->dyn.maximum_lag_on_failover, 0);
        f.dcs.config.check_timeline = h->dyn.check_timeline;
        f.dcs.config.synchronous_mode = h->dyn.synchronous_mode != SYNCHRONOUS_MODE_OFF;
        f.dcs.config.synchronous_mode_strict = h->dyn.synchronous_mode_strict;
        f.dcs.config.synchronous_node_count = (unsigned)MAX(h->dyn.synchronous_node_count, 0);
        f.dcs.config.failsafe_mode = h->dyn.failsafe_mode;
        f.dcs.config.pause = h->dyn.pause;
        f.dcs.config.primary_start_timeout = (usec_t)MAX(h->dyn.primary_start_timeout, 0) * USEC_PER_SEC;
        f.dcs.config.primary_stop_timeout = (usec_t)MAX(h->dyn.primary_stop_timeout, 0) * USEC_PER_SEC;
        f.dcs.config.use_pg_rewind = h->pgs.use_pg_rewind;
        f.dcs.config.remove_data_directory_on_rewind_failure =
                h->pgs.remove_data_directory_on_rewind_failure;
        f.dcs.config.remove_data_directory_on_diverged_timelines =
                h->pgs.remove_data_directory_on_diverged_timelines;
        f.dcs.config.has_bootstrap_section = true;
        f.dcs.bootstrap_won = h->bootstrap_won;
        f.dcs.unreachable_since = h->dcs_unreachable_since;
        ha_facts_fill_dcs(&f, h->dcs_ok ? h->cluster : NULL, h->api, h->now, now_real());

        f.job.running = h->job_kind;
        f.job.since = h->job_since;
        if (h->job_last_fresh) {
                f.job.last = h->job_last;
                f.job.last_failed = h->job_last_failed;
        }
        f.shutdown_requested = false;
        f.reinit_requested = h->reinit_requested;
        f.restart.requested = h->restart_requested;
        f.restart.scheduled = h->scheduled_restart;
        f.restart.scheduled_at = h->scheduled_restart_at;
        f.restart.postmaster_start_time = h->restart_sched_start;
        f.restart.filters_match = true;
        if (h->restart_requested || h->scheduled_restart) {
                const char *why =
                        restart_mismatch(h, h->restart_requested ? &h->restart_now : &h->restart_sched);
                f.restart.filters_match = !why;
                if (why && (h->restart_requested || (f.restart.scheduled_at <= h->now && !h->dyn.pause)))
                        log_info("not proceeding with the restart: %s", why);
        }

        /* After releasing the lock ourselves, give the others a moment before racing again. */
        if (h->dcs_ok && !f.dcs.leader.name && h->release_wait_until > h->now &&
            h->role != HA_ROLE_PRIMARY) {
                h->tick_running = false;
                ha_tick_schedule(h, h->release_wait_until - h->now);
                return;
        }

        if (f.dcs.failover.present && h->lock_held) {
                char reason[HA_MESSAGE_MAX] = "";
                HaSwitchover v = ha_fsm_switchover_verdict(&f, reason, sizeof reason);
                if (v != HA_SWITCHOVER_NONE && reason[0])
                        log_info("%s", reason);
        }
        r = ha_fsm_decide(&f, &dec);
        if (r == -EINVAL) {
                log_error("HA facts are malformed; skipping this cycle");
                h->tick_running = false;
                ha_tick_schedule(h, loop_wait_usec(h));
                return;
        }
        if (r == -ENOENT)
                log_error("No HA rule matched (bug): fencing");
        h->job_last_fresh = false;
        h->last_tick = h->now;
        h->tilt_until = dec.tilt_until;
        h->wake_at = dec.wake_at;
        if (dec.next_role != h->role && (int)dec.next_role >= 0 && dec.comment)
                log_debug(
                        "transition from %s to %s: %s",
                        ha_role_to_string(h->role),
                        ha_role_to_string(dec.next_role),
                        dec.comment);
        /* A decision repeated by ticks closer than loop_wait (a quorum recheck) is logged about once per
         * loop_wait, as Patroni logs each cycle; a renewal only when its message changes. */
        if (!streq(dec.message, h->last_message) || !streq(dec.reason, h->last_reason) ||
            (dec.action != HA_ACTION_RENEW_LOCK &&
             h->now + loop_wait_usec(h) / 2 >= h->last_logged_at + loop_wait_usec(h))) {
                if (dec.reason[0])
                        log_info("%s", dec.reason);
                log_info("%s", dec.message);
                h->last_logged_at = h->now;
        }
        snprintf(h->last_message, sizeof h->last_message, "%s", dec.message);
        snprintf(h->last_reason, sizeof h->last_reason, "%s", dec.reason);
        h->decision = dec;
        if (!h->lock_held)
                sync_forget(h);
        if (!h->ready_released) {
                h->ready_released = true;
                manager_ready_release(h->manager);
        }
        act(h);
}

static void gather_done(Ha *h);

static void on_fetch(HttpRequest *req, int error, long status, const char *body, size_t size, void *ud) {
        Ha *h = ud;
        size_t i;

        for (i = 0; i < h->n_fetch; i++)
                if (h->fetch[i] == req)
                        break;
        if (i < h->n_fetch) {
                h->fetch[i] = NULL;
                if (error < 0)
                        log_warning_errno(error, "Request failed: GET %s: %m", http_request_url(req));
                else if (status != 200)
                        log_warning(
                                "Request failed: GET %s: HTTP status %ld", http_request_url(req), status);
                if (error < 0 || status != 200 || ha_member_api_parse(body, size, &h->api[i]) < 0)
                        h->api[i] = (HaMemberApi){.fetch = HA_FETCH_FAILED};
        }
        if (--h->pending == 0)
                decide_and_act(h);
}

static bool need_fetch(Ha *h) {
        const DcsCluster *c = h->cluster;
        const PgStatus *st = pgstatus(h);

        if (!c)
                return false;
        if (!c->leader || c->has_failover)
                return true;
        if (streq(c->leader, h->pgs.name) && !(st && st->running && st->query_ok))
                return true;
        return false;
}

/* peer_tls_options - the TLS side of a request to another member, as Patroni's daemon makes it
 * (patroni-compat.md §3.8): the client certificate, key and CA are ctl.* or else restapi.*; the daemon's
 * client is "insecure": without a client certificate the server's certificate is not checked at all,
 * with one the chain is verified (against the CA) but not the host name. Like Patroni's it also sends
 * restapi.authentication as Basic credentials. Strings borrow from c. */
static void peer_tls_options(const Config *c, HttpRequestOptions *o) {
        o->username = c->restapi.username;
        o->password = c->restapi.password;
        o->cert = c->ctl.certfile ?: c->restapi.certfile;
        o->cacert = c->ctl.cacert ?: c->restapi.cafile;
        if (o->cert) {
                o->key = c->ctl.keyfile ?: c->restapi.keyfile;
                o->key_password = c->ctl.keyfile_password ?: c->restapi.keyfile_password;
                o->tls_no_verify_host = true;
        } else
                o->tls_no_verify_peer = true;
}

static void gather_done(Ha *h) {
        const DcsCluster *c = h->cluster;

        memset(h->api, 0, sizeof h->api);
        h->n_fetch = 0;
        if (h->dcs_ok && need_fetch(h)) {
                h->n_fetch = MIN(c->n_members, (size_t)HA_MEMBERS_MAX);
                h->pending = 1;
                for (size_t i = 0; i < h->n_fetch; i++) {
                        const DcsMember *m = &c->members[i];
                        HttpRequestOptions o = {
                                .url = m->api_url,
                                .timeout = HA_FETCH_TIMEOUT,
                                .connect_timeout = HA_FETCH_TIMEOUT,
                                .max_body = 256 * 1024,
                                .on_done = on_fetch,
                                .userdata = h,
                        };
                        peer_tls_options(manager_get_config(h->manager), &o);
                        h->fetch[i] = NULL;
                        if (isempty(m->api_url) || streq(m->name, h->pgs.name)) {
                                h->api[i].fetch = HA_FETCH_NOT_ASKED;
                                continue;
                        }
                        if (http_client_start(h->http, &o, &h->fetch[i]) >= 0)
                                h->pending++;
                        else
                                h->api[i].fetch = HA_FETCH_FAILED;
                }
                if (--h->pending > 0)
                        return;
        }
        decide_and_act(h);
}

static void gather_step_done(Ha *h) {
        if (--h->pending == 0)
                gather_done(h);
}

static void on_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        Ha *h = ud;

        if (error < 0) {
                if (h->dcs_ok || h->dcs_unreachable_since == 0)
                        h->dcs_unreachable_since = now_mono(h);
                h->dcs_ok = false;
                log_warning("Failed to read the cluster from etcd: %s", strna(message));
        } else {
                dcs_cluster_free(h->cluster);
                h->cluster = cluster;
                h->dcs_ok = true;
                h->dcs_unreachable_since = 0;
                h->snap.cluster_valid_until = now_mono(h) + ttl_usec(h);
                h->snap.dcs_last_seen = now_real() / USEC_PER_SEC;
                if (cluster->config && cJSON_GetArraySize(cluster->config) > 0)
                        (void)ha_apply_dynamic(h, cluster->config, true);
                switch_check(h);
        }
        gather_step_done(h);
}

static void on_controldata(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;

        h->cd_ok = false;
        if (r >= 0) {
                const char *out = pgctl_job_output(job);
                _cleanup_free_ char *sysid = pgctl_controldata_get(out, "Database system identifier");
                _cleanup_free_ char *tl = pgctl_controldata_get(out, "Latest checkpoint's TimeLineID");
                _cleanup_free_ char *state = pgctl_controldata_get(out, "Database cluster state");
                _cleanup_free_ char *loc = pgctl_controldata_get(out, "Latest checkpoint location");
                _cleanup_free_ char *minrec = pgctl_controldata_get(out, "Minimum recovery ending location");
                unsigned hi = 0, lo = 0;

                h->cd_ok = sysid != NULL;
                h->cd_sysid = sysid ? strtoull(sysid, NULL, 10) : 0;
                h->cd_timeline = tl ? (uint32_t)strtoul(tl, NULL, 10) : 0;
                h->cd_unclean = state &&
                        (streq(state, "in production") || streq(state, "shutting down") ||
                         streq(state, "in crash recovery"));
                h->cd_checkpoint = 0;
                /* The end of local WAL: the checkpoint record's end (a shutdown checkpoint record is
                 * 114 bytes), or the minimum recovery point of a replica when that is later. */
                if (loc && sscanf(loc, "%X/%X", &hi, &lo) == 2)
                        h->cd_checkpoint = (((uint64_t)hi << 32) | lo) + 114;
                if (minrec && sscanf(minrec, "%X/%X", &hi, &lo) == 2)
                        h->cd_checkpoint = MAX(h->cd_checkpoint, ((uint64_t)hi << 32) | lo);
        }
        h->controldata = pgctl_job_free(h->controldata);
        gather_step_done(h);
}

static int on_fast_probe(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;
        _cleanup_free_ char *path = pgdata_path(&h->pgs, "postmaster.pid"), *text = NULL;

        /* postmaster.pid's status line turns "standby" the moment read-only connections are allowed. */
        if (h->job_step == STEP_START_REPLICA && !h->pidfile_standby && path &&
            read_full_file(path, 4096, &text, NULL) >= 0) {
                _cleanup_(postmaster_pid_file_done) PostmasterPidFile pf = {};
                if (postmaster_pid_file_parse(text, &pf) >= 0 && streq_ptr(pf.status, "standby") &&
                    pgctl_pid_alive(pf.pid)) {
                        h->pidfile_standby = true;
                        log_debug("PostgreSQL accepts read-only connections");
                        snapshot_update(h);
                }
        }
        if (h->job_step == STEP_START_REPLICA && !h->pidfile_standby) {
                (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
                (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        }

        (void)pgmon_probe_now(h->pgmon);
        return 0;
}

static void on_probe(PgMon *m, const PgStatus *status, void *userdata) {
        Ha *h = userdata;

        /* While PostgreSQL starts, probe often so the REST API reports it running as soon as it is. */
        if (h->job_step == STEP_START_REPLICA || h->job_step == STEP_RESTART) {
                (void)sd_event_source_set_time_relative(h->probe_timer, 10 * USEC_PER_MSEC);
                (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_ONESHOT);
        }

        if (h->upstream_cleared && !h->job && status->running && status->query_ok && status->in_recovery &&
            !status->receiver_status)
                h->detached_probes = MIN(h->detached_probes + 1, 2u);
        else
                h->detached_probes = 0;

        snapshot_update(h);
        if (h->waiting_probe) {
                h->waiting_probe = false;
                gather_step_done(h);
        }

        /* PostgreSQL died under us (no job of ours stops it): decide now, not at the next loop_wait. A
         * crashed primary still holding the lock is back up a whole period sooner. */
        if (h->probe_saw_running && !status->running && !h->job) {
                log_debug("PostgreSQL stopped running, running the HA loop now");
                ha_tick_schedule(h, 0);
        }
        h->probe_saw_running = status->running;
}

static void tick_start(Ha *h) {
        _cleanup_free_ char *ctl = NULL;
        const PgStatus *st;

        if (h->stopping)
                return;
        if (h->tick_running) {
                h->tick_again = true;
                return;
        }
        h->tick_running = true;
        h->tick_again = false;
        h->now = now_mono(h);
        h->snap.next_run = h->now + loop_wait_usec(h);
        if (!h->job)
                pg_settings_rebuild(h);
        if (!h->job && h->pg_reload_pending) {
                const PgStatus *ps = pgstatus(h);
                if (!ps || !ps->running || pg_reload_config(h))
                        h->pg_reload_pending = false;
        }
        h->pending = 1;
        if (dcs_get_cluster(h->dcs, on_cluster, h) >= 0)
                h->pending++;
        else
                h->dcs_ok = false;
        if (pgmon_probe_now(h->pgmon) >= 0) {
                h->waiting_probe = true;
                h->pending++;
        }
        st = pgstatus(h);
        ctl = pgdata_path(&h->pgs, "global/pg_control");
        if (!h->job && !(st && st->running) && ctl && access(ctl, F_OK) >= 0 && !h->controldata &&
            pgctl_controldata(h->event, &h->pgs, on_controldata, h, &h->controldata) >= 0)
                h->pending++;
        else if (!(st && st->running) && (!ctl || access(ctl, F_OK) < 0))
                h->cd_ok = false;
        gather_step_done(h);
}

/* The end of Patroni's run_cycle: PostgreSQL runs, no job is under way, and no start, stop, restart
 * or role change callback fired since pghad started (it found PostgreSQL running): on_start. */
static void callbacks_first_start(Ha *h) {
        const PgStatus *st = pgstatus(h);

        if (h->cb_called || h->job || h->role == HA_ROLE_UNINITIALIZED || !st || !st->running ||
            !st->query_ok)
                return;
        fire_callback(h, PG_CALLBACK_ON_START, callback_role(h));
}

static void ha_act_done(Ha *h) {
        usec_t delay = loop_wait_usec(h);

        if (h->stopping) {
                h->tick_running = false;
                return;
        }

        touch_member(h);
        snapshot_update(h);
        if (h->lock_held)
                maintain_slots(h);
        callbacks_first_start(h);
        h->tick_running = false;
        if (h->wake_at > 0 && h->wake_at > h->now)
                delay = MIN(delay, h->wake_at - h->now);
        if (h->tick_again)
                delay = 0;
        ha_tick_schedule(h, delay);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        tick_start(userdata);
        return 0;
}

static void ha_tick_schedule(Ha *h, usec_t delay) {
        usec_t now = now_mono(h), next;
        uint64_t cur = 0;

        if (h->stopping)
                return;
        if (h->tick_running) {
                if (delay == 0)
                        h->tick_again = true;
                return;
        }
        next = now + delay;
        if (sd_event_source_get_enabled(h->tick_timer, NULL) > 0 &&
            sd_event_source_get_time(h->tick_timer, &cur) >= 0 && cur <= next)
                return;
        (void)sd_event_source_set_time(h->tick_timer, next);
        (void)sd_event_source_set_enabled(h->tick_timer, SD_EVENT_ONESHOT);
}

static void on_wake(Dcs *d, DcsWakeReason reason, void *userdata) {
        Ha *h = userdata;

        if (reason == DCS_WAKE_LEADER || reason == DCS_WAKE_CONFIG || reason == DCS_WAKE_RESYNC)
                ha_tick_schedule(h, 0);
}

/* ==== REST intents ==== */

static void on_intent_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (!h->switch_call)
                return;
        if (error < 0) {
                call_reply(
                        &h->switch_call,
                        503,
                        h->switch_failover ? "failed to write failover key into DCS"
                                           : "failed to write switchover key into DCS");
                return;
        }
        /* A scheduled one is answered once a tick has read the key back, so a DELETE /switchover
         * right after the answer finds it in our view of the cluster. */
        h->switch_revision = res ? res->revision : 0;
        ha_tick_schedule(h, 0);
}

/* A PATCH or PUT of /config on its way to etcd. Kept on h->config_writes so that a client that goes
 * away (intent_cancel) leaves no dangling call behind. */
typedef struct ConfigWrite {
        Ha *h;
        RestCall *call; /* NULL once the client is gone */
        cJSON *config;  /* what is written: PUT's body, or PATCH's merge onto a fresh read */
        cJSON *patch;   /* PATCH: the request body */
        bool put;
        struct ConfigWrite *next;
} ConfigWrite;

static ConfigWrite *config_write_free(ConfigWrite *w) {
        if (!w)
                return NULL;
        for (ConfigWrite **p = &w->h->config_writes; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        cJSON_Delete(w->config);
        cJSON_Delete(w->patch);
        return mfree(w);
}

static void on_config_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        ConfigWrite *w = ud;
        Ha *h = w->h;

        if (error < 0)
                (void)rest_call_reply_error(w->call, w->put ? 502 : 503);
        else if (res && !res->succeeded)
                (void)rest_call_reply_error(w->call, 409);
        else {
                (void)rest_call_reply_json(w->call, 200, w->config);
                (void)ha_apply_dynamic(h, w->config, true);
        }
        config_write_free(w);
        ha_tick_schedule(h, 0);
}

/* PATCH /config as Patroni's do_PATCH_config(): the patch is merged onto the config key read afresh (not
 * onto the last tick's view, which a PATCH just before may have made stale) and written with a compare
 * on the revision read, so a concurrent change answers 409 and is never overwritten. */
static void on_config_read(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        ConfigWrite *w = ud;
        Ha *h = w->h;
        int64_t revision = cluster ? cluster->config_revision : 0;
        int r;

        if (error < 0 || !cluster || !cJSON_IsObject(cluster->config) || revision <= 0) {
                (void)rest_call_reply_error(w->call, 503);
                dcs_cluster_free(cluster);
                config_write_free(w);
                return;
        }
        w->config = cJSON_Duplicate(cluster->config, true);
        dcs_cluster_free(cluster);
        r = w->config ? rest_config_patch(w->config, w->patch) : -ENOMEM;
        if (r < 0)
                (void)rest_call_reply_error(w->call, 500);
        else if (r == 0)
                (void)rest_call_reply_json(w->call, 200, w->config);
        else if (dcs_set_config(h->dcs, w->config, revision, on_config_write, w) >= 0)
                return;
        else
                (void)rest_call_reply_error(w->call, 503);
        config_write_free(w);
}

static void switchover_intent(Ha *h, RestCall *call, const RestIntent *in) {
        bool failover = in->kind == REST_INTENT_FAILOVER;
        const char *action = failover ? "failover" : "switchover";
        const DcsCluster *c = h->cluster;
        _cleanup_(cJSON_Deletep) cJSON *fo = NULL;
        char buf[256];
        bool others = false;

        if (h->switch_call) {
                (void)rest_call_reply_text(call, 503, "Switchover already in progress");
                return;
        }
        if (!c) {
                (void)rest_call_reply_text(call, 503, "Cluster is not reachable");
                return;
        }
        if (in->scheduled_at == 0) {
                if (in->leader && !streq_ptr(in->leader, c->leader)) {
                        (void)rest_call_reply_text(call, 412, "leader name does not match");
                        return;
                }
                /* Synchronous mode: only a member `sync` names can take over (Patroni's checks). */
                if (sync_mode_on(h) && in->candidate && !failover &&
                    !dcs_cluster_is_sync_standby(c, in->candidate)) {
                        (void)rest_call_reply_text(
                                call, 412, "candidate name does not match with sync_standby");
                        return;
                }
                if (sync_mode_on(h) && !in->candidate) {
                        bool found = false;
                        for (size_t i = 0; i < c->n_members; i++)
                                if (dcs_cluster_is_sync_standby(c, c->members[i].name))
                                        found = true;
                        if (!found) {
                                snprintf(
                                        buf,
                                        sizeof buf,
                                        "%s is not possible: can not find sync_standby",
                                        action);
                                (void)rest_call_reply_text(call, 412, buf);
                                return;
                        }
                }
                if (in->candidate && !dcs_cluster_find_member(c, in->candidate)) {
                        (void)rest_call_reply_text(call, 412, "candidate does not exists");
                        return;
                }
                for (size_t i = 0; i < c->n_members; i++)
                        if (!streq_ptr(c->members[i].name, c->leader))
                                others = true;
                if (!others) {
                        snprintf(
                                buf,
                                sizeof buf,
                                "%s is not possible: cluster does not have members except leader",
                                failover ? "failover" : "switchover");
                        (void)rest_call_reply_text(call, 412, buf);
                        return;
                }
                if (in->candidate) {
                        /* Health is the leader's call (it checks the candidate's GET /patroni). */
                        if (streq_ptr(in->candidate, c->leader)) {
                                snprintf(
                                        buf,
                                        sizeof buf,
                                        "%s is not possible: no good candidates have been found",
                                        failover ? "failover" : "switchover");
                                (void)rest_call_reply_text(call, 412, buf);
                                return;
                        }
                }
        }
        fo = cJSON_CreateObject();
        if (in->leader)
                (void)json_add_string(fo, "leader", in->leader);
        if (in->candidate)
                (void)json_add_string(fo, "member", in->candidate);
        if (in->scheduled_at) {
                char ts[64];
                time_t t = (time_t)(in->scheduled_at / USEC_PER_SEC);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
                snprintf(buf, sizeof buf, "%s.%06u+00:00", ts, (unsigned)(in->scheduled_at % USEC_PER_SEC));
                (void)json_add_string(fo, "scheduled_at", buf);
        }
        if (dcs_write_failover(h->dcs, fo, 0, on_intent_write, h) < 0) {
                snprintf(buf, sizeof buf, "failed to write %s key into DCS", action);
                (void)rest_call_reply_text(call, 503, buf);
                return;
        }
        h->switch_call = call;
        h->switch_revision = 0;
        h->switch_failover = failover;
        free(h->switch_from);
        h->switch_from = c->leader ? strdup(c->leader) : NULL;
        free(h->switch_to);
        h->switch_to = in->candidate ? strdup(in->candidate) : NULL;
        h->switch_scheduled = in->scheduled_at != 0;
        h->switch_deadline = now_mono(h) + 2 * (usec_t)MAX(10, h->dyn.loop_wait) * USEC_PER_SEC;
}

/* The UTC offset (seconds) written in an ISO 8601 timestamp that rest_parse_timestamp() accepted:
 * Z, UTC, GMT or ±HH[[:]MM] after the date. */
static int schedule_offset(const char *s) {
        const char *p = strlen(s) > 10 ? s + 10 : "", *sign = NULL;
        int hh = 0, mm = 0;

        for (const char *q = p; *q; q++)
                if (*q == '+' || *q == '-')
                        sign = q;
        if (!sign || sscanf(sign + 1, "%2d", &hh) != 1)
                return 0;
        if (sign[3] == ':')
                (void)sscanf(sign + 4, "%2d", &mm);
        else if (isdigit((unsigned char)sign[3]))
                (void)sscanf(sign + 3, "%2d", &mm);
        return (*sign == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
}

/* schedule_isoformat - what Python's datetime.isoformat() prints for the parsed schedule: local time in
 * the offset the user gave, microseconds only when not zero, and the offset as ±HH:MM. */
static int schedule_isoformat(const char *input, usec_t t, char **ret) {
        int off = input ? schedule_offset(input) : 0;
        time_t local = (time_t)(t / USEC_PER_SEC) + off;
        unsigned usec = (unsigned)(t % USEC_PER_SEC);
        char date[32], frac[16] = "";
        struct tm tm;

        if (!gmtime_r(&local, &tm) || strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -EINVAL;
        if (usec)
                snprintf(frac, sizeof frac, ".%06u", usec);
        if (asprintf(
                    ret,
                    "%s%s%c%02d:%02d",
                    date,
                    frac,
                    off < 0 ? '-' : '+',
                    abs(off) / 3600,
                    abs(off) % 3600 / 60) < 0)
                return -ENOMEM;
        return 0;
}

/* Records a POST /restart with a schedule (Patroni's schedule_future_restart()): its filters, the
 * request as the member key and GET /patroni show it, and the postmaster start time it is checked
 * against; the member key is updated at once. */
static int schedule_restart(Ha *h, const RestIntent *in) {
        const PgStatus *st = pgstatus(h);
        const cJSON *sched = cJSON_GetObjectItemCaseSensitive(in->body, "schedule");
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *iso = NULL;
        usec_t real = now_real();
        cJSON *v;

        if (schedule_isoformat(cJSON_IsString(sched) ? sched->valuestring : NULL, in->scheduled_at, &iso) <
            0)
                return -ENOMEM;
        j = cJSON_IsObject(in->body) ? cJSON_Duplicate(in->body, true) : cJSON_CreateObject();
        if (!j || !(v = cJSON_CreateString(iso)))
                return -ENOMEM;
        if (!cJSON_ReplaceItemInObjectCaseSensitive(j, "schedule", v) &&
            !cJSON_AddItemToObject(j, "schedule", v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        if (in->timeout > 0) {
                if (!(v = cJSON_CreateNumber((double)in->timeout)))
                        return -ENOMEM;
                if (!cJSON_ReplaceItemInObjectCaseSensitive(j, "timeout", v)) {
                        cJSON_Delete(v);
                        return -ENOMEM;
                }
        }
        if (st && st->query_ok && st->postmaster_start_time) {
                if (json_add_string(j, "postmaster_start_time", st->postmaster_start_time) < 0)
                        return -ENOMEM;
        } else if (!cJSON_AddNullToObject(j, "postmaster_start_time"))
                return -ENOMEM;
        if (restart_request_set(&h->restart_sched, in) < 0)
                return -ENOMEM;

        cJSON_Delete(h->restart_sched_json);
        h->restart_sched_json = TAKE_PTR(j);
        h->scheduled_restart = true;
        h->scheduled_restart_at = now_mono(h) + (in->scheduled_at > real ? in->scheduled_at - real : 0);
        h->restart_sched_start = st && st->query_ok ? (uint64_t)st->postmaster_start_epoch : 0;
        log_info("Scheduled restart at %s", iso);
        snapshot_update(h);
        touch_member(h);
        ha_tick_schedule(h, 0);
        return 0;
}

static void on_cancel_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        RestCall *call = TAKE_PTR(h->cancel_call);

        if (error < 0)
                log_warning("Failed to delete the scheduled switchover: %s", strna(message));
        ha_tick_schedule(h, 0);
        if (!call)
                return;
        if (error < 0 || (res && !res->succeeded))
                (void)rest_call_reply_error(call, 409);
        else
                (void)rest_call_reply_text(call, 200, "scheduled switchover deleted");
}

static void intent_submit(void *userdata, RestCall *call, const RestIntent *in) {
        Ha *h = userdata;
        const char *why;
        char buf[256];

        switch (in->kind) {
        case REST_INTENT_SWITCHOVER:
        case REST_INTENT_FAILOVER:
                switchover_intent(h, call, in);
                break;
        case REST_INTENT_SWITCHOVER_CANCEL:
                if (!h->cluster || !h->cluster->has_failover || isempty(h->cluster->failover_scheduled_at)) {
                        (void)rest_call_reply_text(call, 404, "no switchover is scheduled");
                        break;
                }
                if (h->cancel_call) {
                        (void)rest_call_reply_error(call, 503);
                        break;
                }
                /* answered when etcd confirms, so the key is gone when the client hears back */
                if (dcs_write_failover(h->dcs, NULL, h->cluster->failover_revision, on_cancel_write, h) < 0)
                        (void)rest_call_reply_error(call, 409);
                else
                        h->cancel_call = call;
                break;
        case REST_INTENT_RESTART:
                if (in->scheduled_at) {
                        if (h->scheduled_restart) {
                                (void)rest_call_reply_text(
                                        call, 409, "Another restart is already scheduled");
                                break;
                        }
                        if (schedule_restart(h, in) < 0) {
                                (void)rest_call_reply_error(call, 500);
                                break;
                        }
                        (void)rest_call_reply_text(call, 202, "Restart scheduled");
                        break;
                }
                /* the filters first, as Patroni's restart() checks them before anything else */
                why = restart_mismatch(
                        h,
                        &(RestartRequest){
                                .role = (char *)in->role,
                                .version = in->postgres_version,
                                .pending = in->restart_pending,
                        });
                if (why) {
                        log_info("not proceeding with the restart: %s", why);
                        (void)rest_call_reply_text(call, 503, "restart conditions are not satisfied");
                        break;
                }
                if (h->job_kind != HA_JOB_NONE) {
                        snprintf(buf, sizeof buf, "%s already in progress", ha_job_to_string(h->job_kind));
                        (void)rest_call_reply_text(call, 503, buf);
                        break;
                }
                if (h->restart_call) {
                        (void)rest_call_reply_text(call, 503, "restart already in progress");
                        break;
                }
                if (restart_request_set(&h->restart_now, in) < 0) {
                        (void)rest_call_reply_error(call, 500);
                        break;
                }
                /* answered when the restart job ends, or refused when the tick decides against it or no
                 * tick has begun it within two loops and a retry */
                h->restart_requested = true;
                h->restart_call = call;
                restart_reply_arm(h, 2 * loop_wait_usec(h) + retry_timeout_usec(h));
                ha_tick_schedule(h, 0);
                break;
        case REST_INTENT_RESTART_CANCEL:
                if (!h->scheduled_restart)
                        (void)rest_call_reply_text(call, 404, "no restarts are scheduled");
                else {
                        scheduled_restart_clear(h);
                        touch_member(h);
                        (void)rest_call_reply_text(call, 200, "scheduled restart deleted");
                }
                break;
        case REST_INTENT_RELOAD:
                (void)rest_call_reply_text(call, 202, "reload scheduled");
                (void)manager_reload(h->manager);
                break;
        case REST_INTENT_REINITIALIZE:
                if (h->job_kind != HA_JOB_NONE && !in->force) {
                        snprintf(buf, sizeof buf, "%s already in progress", ha_job_to_string(h->job_kind));
                        (void)rest_call_reply_text(call, 503, buf);
                        break;
                }
                if (in->force)
                        h->job = pgctl_job_free(h->job), h->job_kind = HA_JOB_NONE, h->job_step = STEP_NONE;
                h->reinit_requested = true;
                (void)rest_call_reply_text(call, 200, "reinitialize started");
                ha_tick_schedule(h, 0);
                break;
        case REST_INTENT_CONFIG_PATCH:
        case REST_INTENT_CONFIG_PUT: {
                bool put = in->kind == REST_INTENT_CONFIG_PUT;
                ConfigWrite *w;
                int r;

                if (!in->body) {
                        (void)rest_call_reply_error(call, 400);
                        break;
                }
                w = new0(ConfigWrite, 1);
                if (!w ||
                    !(put ? (w->config = cJSON_Duplicate(in->body, true))
                          : (w->patch = cJSON_Duplicate(in->body, true)))) {
                        free(w);
                        (void)rest_call_reply_error(call, 503);
                        break;
                }
                w->h = h;
                w->call = call;
                w->put = put;
                w->next = h->config_writes;
                h->config_writes = w;
                r = put ? dcs_set_config(h->dcs, w->config, 0, on_config_write, w)
                        : dcs_get_cluster(h->dcs, on_config_read, w);
                if (r < 0) {
                        (void)rest_call_reply_error(call, 503);
                        config_write_free(w);
                }
                break;
        }
        case REST_INTENT_FAILSAFE:
                (void)rest_call_reply_text(call, 200, "Accepted");
                break;
        default:
                (void)rest_call_reply_error(call, 501);
        }
}

static void intent_cancel(void *userdata, RestCall *call) {
        Ha *h = userdata;

        if (h->switch_call == call)
                h->switch_call = NULL;
        if (h->restart_call == call)
                h->restart_call = NULL;
        if (h->cancel_call == call)
                h->cancel_call = NULL;
        for (ConfigWrite *w = h->config_writes; w; w = w->next)
                if (w->call == call)
                        w->call = NULL;
}

static const RestIntentHandler intent_handler = {
        .submit = intent_submit,
        .cancel = intent_cancel,
};

/* ==== shutdown ==== */

static void shutdown_done(Ha *h) {
        ManagerDoneFunc done = h->done;

        h->callback_wait_timer = sd_event_source_disable_unref(h->callback_wait_timer);
        h->done = NULL;
        if (done)
                done(h->done_cookie, h->shutdown_result);
}

static void on_shutdown_callback_done(PgCallback action, int exit_code, void *userdata) {
        Ha *h = userdata;

        if (!callbacks_is_running(h->callbacks))
                shutdown_done(h);
}

static int on_callback_wait_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        log_warning("Callbacks still running %i s after the shutdown: killing them.", h->dyn.retry_timeout);
        shutdown_done(h); /* ha_free() kills them */
        return 0;
}

/* The end of the shutdown: a callback fired on the way (on_stop) may finish, for at most retry_timeout,
 * so the script is not killed the moment pghad exits (Patroni's outlive it). */
static void shutdown_finish(Ha *h, int r) {
        h->shutdown_result = r;
        if (!h->done || !callbacks_is_running(h->callbacks)) {
                shutdown_done(h);
                return;
        }
        callback_runner_set_notify(h->callbacks, on_shutdown_callback_done, h);
        if (sd_event_add_time_relative(
                    h->event,
                    &h->callback_wait_timer,
                    CLOCK_MONOTONIC,
                    retry_timeout_usec(h),
                    0,
                    on_callback_wait_timer,
                    h) < 0) {
                shutdown_done(h);
                return;
        }
        (void)sd_event_source_set_description(h->callback_wait_timer, "ha-shutdown-callbacks");
}

static void on_member_deleted(EtcdClient *c, int error, const char *message, const cJSON *reply, void *ud) {
        shutdown_finish(ud, 0);
}

static void shutdown_delete_member(Ha *h) {
        _cleanup_free_ char *key = NULL, *suffix = NULL;

        dcs_lease_stop(h->dcs);
        if (!h->dcs_ok) {
                /* etcd did not answer the last read: do not hold the shutdown up for its timeout; the
                 * member key expires with our lease. */
                shutdown_finish(h, 0);
                return;
        }
        if (asprintf(&suffix, "members/%s", h->pgs.name) < 0 || dcs_key(h->dcs, suffix, &key) < 0 ||
            etcd_delete(h->etcd, key, NULL, on_member_deleted, h, NULL) < 0)
                shutdown_finish(h, 0);
}

static void
on_shutdown_release(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (error < 0)
                log_warning("Failed to delete the leader key: %s", strna(message));
        else
                log_info("Leader key released");
        lock_dropped(h);
        shutdown_delete_member(h);
}

static void on_shutdown_stop(PgCtlJob *job, int r, const char *error, void *userdata) {
        Ha *h = userdata;
        bool signalled = job && pgctl_job_signalled(job);

        h->job = pgctl_job_free(h->job);
        if (r < 0) {
                log_error("PostgreSQL shutdown failed, leader key not removed.");
                shutdown_finish(h, r);
                return;
        }
        /* Patroni's stop(): on_stop with the role it had, only when a postmaster was signalled */
        if (signalled)
                fire_callback(h, PG_CALLBACK_ON_STOP, callback_role(h));
        if (h->watchdog)
                watchdog_disable(h->watchdog);
        if (h->lock_held && dcs_leader_delete(h->dcs, on_shutdown_release, h) >= 0)
                return;
        shutdown_delete_member(h);
}

static void shutdown_stop_postgres(Ha *h, bool primary) {
        h->job = pgctl_job_free(h->job);
        h->job_kind = HA_JOB_NONE;
        if (pgctl_stop(h->event, &h->pgs, PG_STOP_FAST, primary, on_shutdown_stop, h, &h->job) < 0)
                on_shutdown_stop(NULL, 0, NULL, h);
}

/* Whether the leader of c counts name as its synchronous standby (Patroni's is_sync_standby). */
static bool is_sync_standby(const DcsCluster *c, const char *name) {
        return c && c->leader && c->sync_leader && streq(c->sync_leader, c->leader) &&
                dcs_cluster_is_sync_standby(c, name);
}

static void release_wait_done(Ha *h) {
        h->release_timer = sd_event_source_disable_unref(h->release_timer);
        shutdown_stop_postgres(h, false);
}

static void on_release_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        Ha *h = ud;

        if (error < 0) {
                log_warning("Could not get cluster state, skipping synchronous standby disable");
                release_wait_done(h);
                return;
        }
        dcs_cluster_free(h->cluster);
        h->cluster = cluster;
        if (!is_sync_standby(cluster, h->pgs.name)) {
                release_wait_done(h);
                return;
        }
        log_info("Waiting for primary to release us from synchronous standby");
        (void)sd_event_source_set_time_relative(h->release_timer, 250 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(h->release_timer, SD_EVENT_ONESHOT);
}

static int on_restart_reply_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        if (h->restart_call && h->job_step == STEP_RESTART) {
                /* Patroni's answer when the restart outlasts the request's timeout; the job goes on. */
                log_info("restart still running after the request's timeout: answering the request now");
                call_reply(&h->restart_call, 503, "postgres is still starting");
        } else if (h->restart_call) {
                /* The loop kept deciding something else (postgres failing to start, etcd unreachable):
                 * refuse rather than leave the request waiting for a restart that may never begin. */
                log_info("restart request not acted on in time: %s", h->decision.comment ?: "busy");
                call_reply(&h->restart_call, 503, "restart failed");
                h->restart_requested = false;
                restart_request_done(&h->restart_now);
        }
        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        return 0;
}

static void restart_reply_arm(Ha *h, usec_t after) {
        int r;

        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        r = sd_event_add_time_relative(
                h->event, &h->restart_reply_timer, CLOCK_MONOTONIC, after, 0, on_restart_reply_timer, h);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the restart request's timeout, ignoring: %m");
                return;
        }
        (void)sd_event_source_set_priority(h->restart_reply_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->restart_reply_timer, "ha-restart-reply");
}

static int on_release_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        if (now_mono_fresh() >= h->release_deadline) {
                release_wait_done(h);
                return 0;
        }
        touch_member(h); /* in case the first write was still behind another one */
        if (dcs_get_cluster(h->dcs, on_release_cluster, h) < 0)
                release_wait_done(h);
        return 0;
}

/* A synchronous standby going away first publishes nosync and waits (at most 2 × loop_wait) for the
 * leader to take it out of `sync`, so the primary does not wait for a standby that is gone. Returns
 * whether the wait started. */
static bool shutdown_leave_sync(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        int r;

        /* The cluster view may be a tick old: the first poll reads it afresh, right after nosync is out. */
        if (!sync_mode_on(h) || c->tag.nosync || h->lock_held || !h->cluster || !h->cluster->leader)
                return false;
        h->disable_sync = true;
        touch_member(h);
        h->release_deadline = now_mono_fresh() + 2 * loop_wait_usec(h);
        r = sd_event_add_time_relative(
                h->event, &h->release_timer, CLOCK_MONOTONIC, 0, 1, on_release_timer, h);
        if (r < 0) {
                log_warning_errno(
                        r, "Updating member state failed, skipping synchronous standby disable: %m");
                return false;
        }
        (void)sd_event_source_set_priority(h->release_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->release_timer, "ha-sync-release");
        return true;
}

static int on_shutdown(Manager *m, ManagerDoneFunc done, void *cookie, void *userdata) {
        Ha *h = userdata;
        const PgStatus *st = pgstatus(h);
        bool primary = st && st->running && st->query_ok && !st->in_recovery;

        h->stopping = true;
        h->done = done;
        h->done_cookie = cookie;
        (void)sd_event_source_set_enabled(h->tick_timer, SD_EVENT_OFF);
        call_reply(&h->switch_call, 503, "Switchover status unknown");
        call_reply(&h->restart_call, 503, "restart failed");
        if (h->cancel_call) {
                (void)rest_call_reply_error(h->cancel_call, 503);
                h->cancel_call = NULL;
        }
        if (h->dyn.pause) {
                log_info("Leader key is not deleted and Postgresql is not stopped due paused state");
                if (h->watchdog)
                        watchdog_disable(h->watchdog);
                shutdown_finish(h, 0);
                return 0;
        }
        if (shutdown_leave_sync(h))
                return 0; /* shutdown_stop_postgres() follows once released */
        shutdown_stop_postgres(h, primary);
        return 0;
}

/* Rewrites postgresql.conf from the current settings and reloads a running PostgreSQL (as a replica
 * with its recovery settings), as the job of this node. Returns whether the reload was started; without
 * a free job slot or a running server nothing happens. */
static bool pg_reload_config(Ha *h) {
        _cleanup_(pg_params_done) PgParams rec = {};
        const PgStatus *st = pgstatus(h);

        pg_settings_rebuild(h);
        if (!h->job && st && st->running) {
                bool replica = !st->query_ok || st->in_recovery;
                char target[HA_NAME_MAX] = "";
                if (replica && h->cluster && h->cluster->leader)
                        snprintf(target, sizeof target, "%s", h->cluster->leader);
                if (replica)
                        (void)recovery_for(h, target, &rec);
                job_begin(h, HA_JOB_RELOAD, STEP_NONE, target);
                free(h->reload_before);
                h->reload_before = reload_files_text(h);
                if (pgctl_reload(h->event, &h->pgs, replica ? &rec : NULL, on_job, h, &h->job) < 0) {
                        h->job_kind = HA_JOB_NONE;
                        h->reload_before = mfree(h->reload_before);
                }
                return h->job != NULL;
        }
        return false;
}

static char *join_url(const char *scheme, const ConfigAddress *a, const char *path);

static int on_reload(Manager *m, const Config *old, const Config *new_config, void *userdata) {
        Ha *h = userdata;

        _cleanup_(rest_server_options_done) RestServerOptions ro = {};
        char *api_url;

        watchdog_apply(h);
        if (rest_server_options_from_config(new_config, &ro) >= 0) {
                ro.leader_checks_need_postgres = true;
                (void)rest_server_reconfigure(h->rest, &ro);
        }
        api_url = join_url(
                new_config->restapi.certfile ? "https" : "http",
                &new_config->restapi.connect_address,
                "/patroni");
        if (api_url) {
                free(h->api_url);
                h->api_url = api_url;
        }
        (void)snapshot_set_tags_from_config(&h->snap, new_config->tags);
        (void)pg_reload_config(h);
        ha_tick_schedule(h, 0);
        return 0;
}

/* ==== construction ==== */

static int derive_start_role(Ha *h) {
        _cleanup_free_ char *ver = pgdata_path(&h->pgs, "PG_VERSION");
        _cleanup_free_ char *sig = pgdata_path(&h->pgs, "standby.signal");
        pid_t pid;

        if (!ver || access(ver, F_OK) < 0)
                return HA_ROLE_UNINITIALIZED;
        if (pgctl_postmaster_pid(h->pgs.data_dir, &pid) > 0)
                return sig && access(sig, F_OK) >= 0 ? HA_ROLE_REPLICA : HA_ROLE_PRIMARY;
        return sig && access(sig, F_OK) >= 0 ? HA_ROLE_REPLICA : HA_ROLE_DEMOTED;
}

static char *join_url(const char *scheme, const ConfigAddress *a, const char *path) {
        char *s = NULL;
        bool v6 = a->first_host && strchr(a->first_host, ':');

        if (asprintf(
                    &s,
                    "%s://%s%s%s:%u%s",
                    scheme,
                    v6 ? "[" : "",
                    strna(a->first_host ?: a->host),
                    v6 ? "]" : "",
                    a->port,
                    path) < 0)
                return NULL;
        return s;
}

int ha_new(Manager *m, Ha **ret) {
        _cleanup_(ha_freep) Ha *h = NULL;
        const Config *c = manager_get_config(m);
        _cleanup_(rest_server_options_done) RestServerOptions ro = {};
        _cleanup_free_ char *cache_text = NULL;
        _cleanup_(cJSON_Deletep) cJSON *cached = NULL;
        char *single[2] = {};
        int r;

        h = new0(Ha, 1);
        if (!h)
                return log_oom();
        h->manager = m;
        h->event = manager_get_event(m);
        h->decision.advertise_role = _HA_ROLE_INVALID;
        r = dynamic_config_init(&h->dyn);
        if (r < 0)
                return log_oom();

        if (asprintf(&h->dyn_cache_path, "%s/patroni.dynamic.json", c->postgresql.data_dir) < 0)
                return log_oom();
        /* bootstrap.dcs first; the cached copy of the etcd config wins over it; etcd wins over both. */
        (void)ha_apply_dynamic(h, c->bootstrap.dcs, false);
        if (read_full_file(h->dyn_cache_path, 1024 * 1024, &cache_text, NULL) >= 0 &&
            json_parse_string(cache_text, &cached) >= 0)
                (void)ha_apply_dynamic(h, cached, false);
        if (!h->pgs.name) {
                pg_settings_rebuild(h);
                if (!h->pgs.name)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Invalid PostgreSQL settings");
        }

        h->conn_url = join_url("postgres", &c->postgresql.connect_address, "/postgres");
        h->api_url =
                join_url(c->restapi.certfile ? "https" : "http", &c->restapi.connect_address, "/patroni");
        if (!h->conn_url || !h->api_url)
                return log_oom();
        if (c->postgresql.database) {
                free(h->conn_url);
                if (asprintf(
                            &h->conn_url,
                            "postgres://%s:%u/%s",
                            c->postgresql.connect_address.first_host,
                            c->postgresql.connect_address.port,
                            c->postgresql.database) < 0)
                        return log_oom();
        }

        /* etcd */
        {
                EtcdClientOptions eo = {
                        .protocol = c->etcd.protocol,
                        .username = c->etcd.username,
                        .password = c->etcd.password,
                        .cacert = c->etcd.cacert,
                        .cert = c->etcd.cert,
                        .key = c->etcd.key,
                        .request_timeout = retry_timeout_usec(h),
                        .use_proxies = c->etcd.use_proxies,
                        .priority = PGHA_PRIORITY_DCS,
                };
                /* Patroni's precedence: proxy (which also means use_proxies), url, hosts, host. */
                if (c->etcd.proxy) {
                        single[0] = c->etcd.proxy;
                        eo.endpoints = single;
                        eo.use_proxies = true;
                } else if (c->etcd.url) {
                        single[0] = c->etcd.url;
                        eo.endpoints = single;
                } else if (c->etcd.hosts)
                        eo.endpoints = c->etcd.hosts;
                else {
                        single[0] = c->etcd.host;
                        eo.endpoints = single;
                }
                r = etcd_client_new(h->event, &eo, &h->etcd);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the etcd client: %m");
        }
        {
                DcsOptions dopt = {
                        .namespace = c->namespace,
                        .scope = c->scope,
                        .name = c->name,
                        .ttl = (unsigned)h->dyn.ttl,
                        .priority = PGHA_PRIORITY_LEASE,
                };
                r = dcs_new(h->event, h->etcd, &dopt, &h->dcs);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the DCS: %m");
        }
        r = http_client_new(h->event, PGHA_PRIORITY_HA, &h->http);
        if (r < 0)
                return log_error_errno(r, "Failed to create the HTTP client: %m");

        /* PostgreSQL monitoring */
        h->socket_dir = pgconf_local_host(&h->pgs);
        {
                PgMonConfig pc = {
                        .data_dir = h->pgs.data_dir,
                        .conn =
                                {
                                        .host = h->socket_dir && h->socket_dir[0] == '/' ? h->socket_dir
                                                                                         : NULL,
                                        .hostaddr = h->socket_dir && h->socket_dir[0] != '/' ? h->socket_dir
                                                                                             : NULL,
                                        .port = h->pgs.port,
                                        .user = h->pgs.superuser.username,
                                        .password = h->pgs.superuser.password,
                                        .dbname = h->pgs.database,
                                        .description = "pgmon",
                                        /* reconnect soon after a (re)start: the REST API reports from the
                                           probe */
                                        .backoff_min = 5 * USEC_PER_MSEC,
                                        .backoff_max = 20 * USEC_PER_MSEC,
                                },
                        .interval = loop_wait_usec(h),
                };
                r = pgmon_new(h->event, &pc, on_probe, h, &h->pgmon);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up PostgreSQL monitoring: %m");
                pc.conn.description = "pg-slots";
                r = pgconn_new(h->event, &pc.conn, &h->conn);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the PostgreSQL connection: %m");
        }
        r = callback_runner_new(h->event, &h->pgs, &h->callbacks);
        if (r < 0)
                log_warning_errno(r, "Callbacks disabled: %m");

        watchdog_apply(h);

        /* snapshot + REST */
        h->snap.scope = strdup(c->scope);
        h->snap.name = strdup(c->name);
        h->snap.version = strdup(PGHA_COMPAT_VERSION);
        h->snap.state = strdup("stopped");
        (void)snapshot_set_tags_from_config(&h->snap, c->tags);
        r = rest_server_options_from_config(c, &ro);
        if (r < 0)
                return log_error_errno(r, "Invalid restapi settings: %m");
        ro.leader_checks_need_postgres = true;
        r = rest_server_new(h->event, &ro, &h->snap, &h->rest);
        if (r < 0)
                return r;
        rest_server_set_intent_handler(h->rest, &intent_handler, h);

        /* timers */
        r = sd_event_add_time(h->event, &h->tick_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_tick, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the HA timer: %m");
        (void)sd_event_source_set_priority(h->tick_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->tick_timer, "ha-tick");
        r = sd_event_add_time(h->event, &h->deadline_timer, CLOCK_MONOTONIC, 0, 1, on_deadline, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the lease deadline timer: %m");
        (void)sd_event_source_set_priority(h->deadline_timer, PGHA_PRIORITY_LEASE - 100);
        (void)sd_event_source_set_description(h->deadline_timer, "ha-lease-deadline");
        (void)sd_event_source_set_enabled(h->deadline_timer, SD_EVENT_OFF);

        r = sd_event_add_time_relative(h->event, &h->probe_timer, CLOCK_MONOTONIC, 0, 1, on_fast_probe, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the probe timer: %m");
        (void)sd_event_source_set_priority(h->probe_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->probe_timer, "ha-fast-probe");
        (void)sd_event_source_set_enabled(h->probe_timer, SD_EVENT_OFF);

        r = sd_event_add_time_relative(h->event, &h->lease_watch, CLOCK_MONOTONIC, 0, 1, on_lease_watch, h);
        if (r < 0)
                return log_error_errno(r, "Failed to add the lease watch timer: %m");
        (void)sd_event_source_set_priority(h->lease_watch, PGHA_PRIORITY_LEASE);
        (void)sd_event_source_set_description(h->lease_watch, "ha-lease-watch");

        h->role = derive_start_role(h);
        log_info("Starting as %s", ha_role_to_string(h->role));

        r = dcs_lease_start(h->dcs, on_lease, h);
        if (r < 0)
                return log_error_errno(r, "Failed to start the etcd lease: %m");
        r = dcs_watch_start(h->dcs, 0, 0, on_wake, h);
        if (r < 0)
                log_warning_errno(r, "Failed to start the etcd watch: %m");
        r = pgmon_start(h->pgmon);
        if (r < 0)
                return log_error_errno(r, "Failed to start PostgreSQL monitoring: %m");

        r = manager_add_reload_hook(m, "ha", on_reload, h, &h->reload_hook);
        if (r < 0)
                return r;
        r = manager_add_shutdown_hook(m, "ha", PGHA_SHUTDOWN_ORDER_HA, on_shutdown, h, &h->shutdown_hook);
        if (r < 0)
                return r;
        manager_ready_hold(m);
        *ret = TAKE_PTR(h);
        return 0;
}

Ha *ha_free(Ha *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_fetch; i++)
                if (h->fetch[i])
                        http_request_cancel(h->fetch[i]);
        h->job = pgctl_job_free(h->job);
        h->controldata = pgctl_job_free(h->controldata);
        h->reload_hook = manager_hook_free(h->reload_hook);
        h->shutdown_hook = manager_hook_free(h->shutdown_hook);
        h->rest = rest_server_free(h->rest);
        h->tick_timer = sd_event_source_disable_unref(h->tick_timer);
        h->deadline_timer = sd_event_source_disable_unref(h->deadline_timer);
        h->probe_timer = sd_event_source_disable_unref(h->probe_timer);
        h->release_timer = sd_event_source_disable_unref(h->release_timer);
        while (h->config_writes)
                config_write_free(h->config_writes);
        h->callback_wait_timer = sd_event_source_disable_unref(h->callback_wait_timer);
        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        h->lease_watch = sd_event_source_disable_unref(h->lease_watch);
        h->pgmon = pgmon_free(h->pgmon);
        h->conn = pgconn_free(h->conn);
        h->callbacks = callback_runner_free(h->callbacks);
        h->dcs = dcs_free(h->dcs);
        h->etcd = etcd_client_free(h->etcd);
        h->http = http_client_free(h->http);
        h->watchdog = watchdog_free(h->watchdog);
        h->cluster = dcs_cluster_free(h->cluster);
        snapshot_done(&h->snap);
        pg_settings_done(&h->pgs);
        dynamic_config_done(&h->dyn);
        free(h->dyn_text);
        free(h->dyn_cache_path);
        free(h->conn_url);
        free(h->api_url);
        free(h->socket_dir);
        free(h->following);
        free(h->reload_before);
        free(h->switch_from);
        free(h->switch_to);
        restart_request_done(&h->restart_now);
        restart_request_done(&h->restart_sched);
        cJSON_Delete(h->restart_sched_json);
        free(h->member_last);
        free(h->slots_done);
        free(h->ssn_want);
        free(h->ssn_seen);
        proc_strv_free(h->sync_ready);
        free(h->sync_then_ssn);
        free(h);
        return NULL;
}
