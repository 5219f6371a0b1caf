/* SPDX-License-Identifier: MIT */
/*
 * pgmon: the periodic probe of the local PostgreSQL, producing a PgStatus with the facts the HA tick,
 * the REST status document and /metrics need: is the postmaster alive, primary or replica, WAL
 * positions, timeline, system identifier, walsenders and walreceiver, pending restart, replay pause.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "pgha/macro.h"
#include "pgha/postmaster.h"
#include "pgha/pgconn.h"

typedef struct PgMon PgMon;

/* One pg_stat_replication row. */
typedef struct PgReplica {
        char *usename;
        char *application_name;
        char *client_addr; /* NULL for Unix-socket walsenders */
        char *state;
        char *sync_state;
        int sync_priority;
        uint64_t write_lsn, flush_lsn, replay_lsn; /* 0 when NULL */
} PgReplica;

/*
 * Facts about the local PostgreSQL. Two groups, each with the monotonic time it was taken: process facts
 * (every probe) and query facts (only when the status query answered). When the query fails, the query
 * facts are cleared, never left stale: query_ok is false, probe_error says why and not_responding_since
 * since when. Timestamps are sd_event_now(CLOCK_MONOTONIC) values; 0 means never.
 */
typedef struct PgStatus {
        /* process facts */
        usec_t process_checked_at;
        PostmasterState postmaster;
        bool running; /* postmaster == POSTMASTER_RUNNING */
        pid_t postmaster_pid;
        char *pidfile_status; /* line 8 of postmaster.pid, e.g. "ready", "starting" */
        usec_t not_running_since;

        /* query bookkeeping */
        bool query_ok;
        usec_t queried_at;           /* when the facts below were taken (the answer arrived) */
        usec_t last_ok_at;           /* last successful query, kept across failures */
        usec_t not_responding_since; /* first failure since the last success; 0 while answering */
        int probe_error;             /* negative errno of the last failure, 0 after a success */
        char *probe_error_message;

        /* query facts */
        bool in_recovery;
        int server_version;
        uint64_t system_identifier;
        char *postmaster_start_time;   /* Patroni's str(datetime): "2026-11-26 20:06:40.220474+00:00" */
        double postmaster_start_epoch; /* epoch seconds */
        uint64_t wal_write_lsn;        /* primary: pg_current_wal_lsn(); 0 on a replica */
        uint64_t wal_flush_lsn;        /* primary: pg_current_wal_flush_lsn(); 0 on a replica */
        uint64_t receive_lsn;          /* replica: pg_last_wal_receive_lsn(), 0 when NULL */
        uint64_t replay_lsn;           /* replica: pg_last_wal_replay_lsn(), 0 when NULL */
        char *replay_timestamp;        /* pg_last_xact_replay_timestamp() as text, NULL when none */
        double replay_timestamp_epoch; /* 0 when none */
        bool replay_paused;            /* pg_is_wal_replay_paused() */
        char *replay_pause_state;      /* pg_get_wal_replay_pause_state(): "not paused", "pause requested",
                                          "paused" */
        unsigned timeline; /* primary: from the current WAL file; replica: walreceiver or checkpoint */
        unsigned checkpoint_timeline; /* pg_control_checkpoint().timeline_id */
        unsigned receiver_timeline;   /* pg_stat_get_wal_receiver().received_tli once it received, else 0 */
        char *receiver_status;        /* "streaming", "starting", ...; NULL without walreceiver */
        char *receiver_conninfo;      /* the walreceiver's conninfo (password obfuscated by PostgreSQL) */
        char *receiver_slot;
        char *receiver_host;
        unsigned receiver_port;
        bool pending_restart;            /* any pg_settings.pending_restart */
        char *synchronous_standby_names; /* the live value (after the last reload) */
        char *synchronous_commit;
        PgReplica *replicas;
        size_t n_replicas;
} PgStatus;

void pgstatus_done(PgStatus *s);
void pgstatus_clear_query_facts(PgStatus *s);
int pgstatus_parse_result(const PGresult *res, PgStatus *s) _warn_unused_result_;
uint64_t pgstatus_wal_position(const PgStatus *s);
int pgstatus_to_json(const PgStatus *s, cJSON **ret) _warn_unused_result_;

/* The single status query; exposed for tests and documentation. */
extern const char pgmon_status_query[];

typedef struct PgMonConfig {
        const char *data_dir;  /* required: where postmaster.pid lives */
        PgConnParams conn;     /* how to reach the server (Unix socket directory as host) */
        usec_t interval;       /* probe period, jittered by ±10%; 0: 10 s */
        usec_t query_timeout;  /* deadline of the status query; 0: conn.statement_timeout + 1 s */
        const char *proc_root; /* NULL: "/proc"; tests point it elsewhere */
} PgMonConfig;

/* Called after every completed probe (from the loop, never from inside a pgmon_* call). */
typedef void (*PgMonFunc)(PgMon *m, const PgStatus *status, void *userdata);

int pgmon_new(sd_event *e, const PgMonConfig *config, PgMonFunc callback, void *userdata, PgMon **ret)
        _warn_unused_result_;
PgMon *pgmon_free(PgMon *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(PgMon *, pgmon_free);

int pgmon_start(PgMon *m);
void pgmon_stop(PgMon *m);
int pgmon_probe_now(PgMon *m);
const PgStatus *pgmon_get_status(const PgMon *m);
unsigned pgmon_probes_done(const PgMon *m);
