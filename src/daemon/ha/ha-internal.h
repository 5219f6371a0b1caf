/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to src/daemon/ha/: the engine's state (struct Ha), shared by the files that run the tick
 * (ha.c) and its concerns (ha_lock.c, ha_jobs.c, ha_replication.c, ha_member.c, ha_config.c,
 * ha_requests.c, ha_shutdown.c). Nothing outside this folder includes it; other parts see only
 * include/pgha/ha.h.
 */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

#define MSG_SYNC_CLAIM_FAILED \
        "Postponing promotion because synchronous replication state was updated by somebody else"

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

typedef struct ConfigWrite ConfigWrite;

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
        char *dyn_text;          /* compact JSON of the dynamic config applied */
        char *dyn_rejected_text; /* the DCS config last refused for a value that does not convert */
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
        size_t members_ignored_logged; /* the cluster view's n_members_ignored last logged */
        bool dcs_ok;
        usec_t dcs_unreachable_since;
        PgCtlJob *controldata;
        bool cd_ok;
        bool data_dir_error_logged; /* data_dir_state() logged why it cannot read data_dir */
        bool cb_called;             /* Patroni's cb_called: an on_start/stop/restart/role_change fired */
        bool cb_role_change;        /* the replica start under way ends a demotion: on_role_change */
        bool job_signalled;         /* the stop that just ended signalled a running postmaster */
        char *reload_before;        /* the managed files before a config reload (ha_reload_files_text) */
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
        /* The demotion under way is Patroni's demote('offline'): once stopped, PostgreSQL starts again
         * read-only, following nobody (follow(None)), so reads keep working while etcd is unreachable. */
        bool job_offline;
        char job_target[HA_NAME_MAX];
        bool rewind_failed, checkpoint_pending, start_failed_seen, pidfile_standby;
        /* The postmaster a status query last saw in recovery, 0 once a promotion starts: while its
         * queries fail it is still known to be a replica (only a promotion ends recovery); any other
         * postmaster whose queries fail is of unknown role, a possible primary (ha_fsm fails closed). */
        pid_t recovery_pid;
        /* A running replica was found past the leader's fork point: it is stopped, and counts as
         * diverged once stopped (its pg_control may not show it) until a rewind or reinit starts. */
        bool replica_diverged;

        /* following */
        char *following; /* "host:port" the recovery section points at; NULL: none */
        /* The recovery section we last wrote names no upstream (ha_recovery_for(NULL)) and the job that
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
        int64_t member_written_revision; /* etcd revision of our last member key write */
        bool member_write_running;
        bool pg_stopped_clean; /* shutting down, PostgreSQL stopped: the member key says "stopped" */
        DcsWriteCallback member_stopped_cb; /* the "stopped" write waits for the write in flight */
        void *member_stopped_userdata;

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

static inline usec_t now_mono(Ha *h) {
        usec_t t = 0;
        (void)sd_event_now(h->event, CLOCK_MONOTONIC, &t);
        return t;
}

static inline usec_t now_mono_fresh(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static inline usec_t now_real(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static inline usec_t ttl_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.ttl, 1) * USEC_PER_SEC;
}

static inline usec_t loop_wait_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.loop_wait, 1) * USEC_PER_SEC;
}

static inline usec_t retry_timeout_usec(Ha *h) {
        return (usec_t)MAX(h->dyn.retry_timeout, 1) * USEC_PER_SEC;
}

static inline const PgStatus *pgstatus(Ha *h) {
        return pgmon_get_status(h->pgmon);
}

/* ha.c */
void ha_apply_flags_after(Ha *h, const HaDecision *dec);
void ha_act_done(Ha *h);
void ha_tick_schedule(Ha *h, usec_t delay);
char *ha_join_url(const char *scheme, const ConfigAddress *a, const char *path);

/* ha_lock.c */
void ha_lock_dropped(Ha *h);
void ha_fence_postgres(Ha *h, const char *why);
int ha_lock_start(Ha *h);
void ha_release_lock(Ha *h);
bool ha_arm_watchdog(Ha *h);
void ha_release_lock_no_watchdog(Ha *h);
int ha_promote_held(Ha *h);
void ha_on_acquire(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);
void ha_on_renew(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);
void ha_on_release_action(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);

/* ha_member.c */
const char *ha_member_role_string(Ha *h);
void ha_touch_member(Ha *h);
int ha_touch_member_stopped(Ha *h, DcsWriteCallback cb, void *userdata);
bool ha_upstream_detached(Ha *h);
void ha_snapshot_update(Ha *h);

/* ha_jobs.c */
int ha_member_host_port(Ha *h, const char *name, char **ret_host, unsigned *ret_port);
int ha_recovery_for(Ha *h, const char *target, PgParams *ret);
char *ha_reload_files_text(Ha *h);
void ha_fire_callback(Ha *h, PgCallback action, const char *role);
const char *ha_callback_role(Ha *h);
void ha_job_finish(Ha *h, int r);
void ha_on_job(PgCtlJob *job, int r, const char *error, void *userdata);
int ha_start_replica_job(Ha *h);
int ha_job_begin(Ha *h, HaJob kind, JobStep step, const char *target);
void ha_job_set_next_role(Ha *h, HaRole r);
int ha_start_stop_job(Ha *h, PgStopMode mode, bool checkpoint, bool release, HaRole next);
int ha_start_promote(Ha *h);
void ha_on_initialize_set(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);
void ha_on_race(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);
void ha_on_cancel_bootstrap(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud);

/* ha_replication.c */
bool ha_sync_mode_on(Ha *h);
void ha_sync_render_ssn(Ha *h);
void ha_sync_forget(Ha *h);
void ha_process_sync(Ha *h);
void ha_maintain_slots(Ha *h);
void ha_write_history(Ha *h);
void ha_write_failsafe(Ha *h);
int ha_claim_sync_then_promote(Ha *h);

/* ha_config.c */
void ha_pg_settings_rebuild(Ha *h);
void ha_watchdog_apply(Ha *h);
int ha_apply_dynamic(Ha *h, const cJSON *json, bool from_dcs);
bool ha_pg_reload_config(Ha *h);
int ha_on_reload(Manager *m, const Config *old, const Config *new_config, void *userdata);

/* ha_requests.c */
extern const RestIntentHandler ha_intent_handler;
void ha_call_reply(RestCall **call, unsigned status, const char *text);
void ha_restart_request_done(RestartRequest *r);
void ha_scheduled_restart_clear(Ha *h);
void ha_switch_check(Ha *h);
const char *ha_restart_mismatch(Ha *h, const RestartRequest *rq);
ConfigWrite *ha_config_write_free(ConfigWrite *w);
void ha_restart_reply_arm(Ha *h, usec_t after);

/* ha_shutdown.c */
int ha_on_shutdown(Manager *m, ManagerDoneFunc done, void *cookie, void *userdata);
