/* SPDX-License-Identifier: MIT */
/*
 * pgmon: periodic probe of the local PostgreSQL.
 *
 * Each probe has two halves. The process half asks postmaster_check() (postmaster.c) whether the
 * postmaster runs: not a zombie, not a recycled PID. The query half runs ONE status query over a persistent
 * pgconn connection (the Patroni cluster_info_query idea: one round trip per probe) and parses it into typed
 * fields.
 *
 * Invariant: facts are never presented as fresher than they are. Every group carries the monotonic
 * time it was taken; a failed or skipped query clears the query facts and records since when the
 * server has not been answering, instead of leaving the previous answer in place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/pgmon.h"

#define PGMON_DEFAULT_INTERVAL       (10 * USEC_PER_SEC)
#define PGMON_MAX_REPLICAS           1024 /* bound on walsender rows we keep */
#define PGMON_REPLICATION_JSON_DEPTH 4

static void json_deletep(cJSON **j) {
        cJSON_Delete(*j);
}

/* ==== Query facts ==== */

/* The one status query. Every function is schema-qualified; columns are looked up by name. Branches
 * that would raise on the wrong role (pg_current_wal_lsn() in recovery, pg_is_wal_replay_paused()
 * outside it) sit behind CASE, which PostgreSQL evaluates lazily for volatile functions. */
const char pgmon_status_query[] =
        "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
        " pg_catalog.current_setting('server_version_num')::int AS server_version,"
        " (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS system_identifier,"
        " pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'YYYY-MM-DD HH24:MI:SS.USTZH:TZM')"
        " AS postmaster_start,"
        " extract(epoch FROM pg_catalog.pg_postmaster_start_time())::float8 AS postmaster_start_epoch,"
        " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END"
        " AS wal_write_lsn,"
        " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_flush_lsn() END"
        " AS wal_flush_lsn,"
        " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE ('x' || pg_catalog.substr("
        "pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS "
        "wal_timeline,"
        " pg_catalog.pg_last_wal_receive_lsn() AS receive_lsn,"
        " pg_catalog.pg_last_wal_replay_lsn() AS replay_lsn,"
        " pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(), 'YYYY-MM-DD HH24:MI:SS.USTZH:TZM')"
        " AS replay_timestamp,"
        " extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp())::float8 AS replay_timestamp_epoch,"
        " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() END"
        " AS replay_paused,"
        " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_get_wal_replay_pause_state() END"
        " AS replay_pause_state,"
        " (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_timeline,"
        " w.status AS receiver_status,"
        " CASE WHEN w.latest_end_lsn IS NULL THEN NULL ELSE w.received_tli END AS receiver_timeline,"
        " w.conninfo AS receiver_conninfo,"
        " w.slot_name AS receiver_slot,"
        " w.sender_host AS receiver_host,"
        " w.sender_port AS receiver_port,"
        " EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart) AS pending_restart,"
        " pg_catalog.current_setting('synchronous_standby_names') AS synchronous_standby_names,"
        " pg_catalog.current_setting('synchronous_commit') AS synchronous_commit,"
        " (SELECT pg_catalog.json_agg(r) FROM (SELECT usename, application_name,"
        " pg_catalog.host(client_addr) AS client_addr, state, sync_state, sync_priority,"
        " write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn"
        " FROM pg_catalog.pg_stat_replication ORDER BY pid) r) AS replication"
        " FROM pg_catalog.pg_stat_get_wal_receiver() w";

static void replicas_free(PgReplica *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(r[i].usename);
                free(r[i].application_name);
                free(r[i].client_addr);
                free(r[i].state);
                free(r[i].sync_state);
        }
        free(r);
}

/* pgstatus_clear_query_facts - forgets every query-derived fact (keeps bookkeeping and process facts). */
void pgstatus_clear_query_facts(PgStatus *s) {
        if (!s)
                return;
        s->query_ok = false;
        s->queried_at = 0;
        s->in_recovery = false;
        s->server_version = 0;
        s->system_identifier = 0;
        s->postmaster_start_time = mfree(s->postmaster_start_time);
        s->postmaster_start_epoch = 0;
        s->wal_write_lsn = s->wal_flush_lsn = s->receive_lsn = s->replay_lsn = 0;
        s->replay_timestamp = mfree(s->replay_timestamp);
        s->replay_timestamp_epoch = 0;
        s->replay_paused = false;
        s->replay_pause_state = mfree(s->replay_pause_state);
        s->timeline = s->checkpoint_timeline = s->receiver_timeline = 0;
        s->receiver_status = mfree(s->receiver_status);
        s->receiver_conninfo = mfree(s->receiver_conninfo);
        s->receiver_slot = mfree(s->receiver_slot);
        s->receiver_host = mfree(s->receiver_host);
        s->receiver_port = 0;
        s->pending_restart = false;
        s->synchronous_standby_names = mfree(s->synchronous_standby_names);
        s->synchronous_commit = mfree(s->synchronous_commit);
        replicas_free(s->replicas, s->n_replicas);
        s->replicas = NULL;
        s->n_replicas = 0;
}

/* pgstatus_done - frees everything s owns and zeroes it. */
void pgstatus_done(PgStatus *s) {
        if (!s)
                return;
        pgstatus_clear_query_facts(s);
        free(s->pidfile_status);
        free(s->probe_error_message);
        *s = (PgStatus){};
}

static int column(const PGresult *res, const char *name) {
        return PQfnumber(res, name);
}

/* Optional getters: a NULL cell leaves the default and is not an error. */
static int opt_lsn(const PGresult *res, const char *name, uint64_t *ret) {
        int r = pgresult_get_lsn(res, 0, column(res, name), ret);
        return r == -ENXIO ? 0 : r;
}

static int opt_string(const PGresult *res, const char *name, char **ret) {
        int r = pgresult_get_string(res, 0, column(res, name), ret);
        return r == -ENXIO ? 0 : r;
}

static int opt_double(const PGresult *res, const char *name, double *ret) {
        int r = pgresult_get_double(res, 0, column(res, name), ret);
        return r == -ENXIO ? 0 : r;
}

static int opt_bool(const PGresult *res, const char *name, bool *ret) {
        int r = pgresult_get_bool(res, 0, column(res, name), ret);
        return r == -ENXIO ? 0 : r;
}

static int opt_uint(const PGresult *res, const char *name, unsigned max, unsigned *ret) {
        int64_t v;
        int r = pgresult_get_int64(res, 0, column(res, name), &v);

        if (r == -ENXIO)
                return 0;
        if (r < 0)
                return r;
        if (v < 0 || v > (int64_t)max)
                return -ERANGE;
        *ret = (unsigned)v;
        return 0;
}

static int json_dup_string(const cJSON *o, const char *key, char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsString(v))
                return -EINVAL;
        *ret = strdup(v->valuestring);
        return *ret ? 0 : -ENOMEM;
}

static int json_lsn(const cJSON *o, const char *key, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsString(v))
                return -EINVAL;
        return pg_lsn_from_string(v->valuestring, ret);
}

/* Parses the json_agg() of pg_stat_replication rows. */
static int parse_replication(const char *text, PgReplica **ret, size_t *ret_n) {
        _cleanup_(json_deletep) cJSON *j = NULL;
        PgReplica *rows = NULL;
        size_t n = 0;
        const cJSON *o;
        int r = 0;

        j = cJSON_Parse(text);
        if (!j || !cJSON_IsArray(j))
                return -EINVAL;
        if ((size_t)cJSON_GetArraySize(j) > PGMON_MAX_REPLICAS)
                return -E2BIG;
        rows = new0(PgReplica, (size_t)cJSON_GetArraySize(j));
        if (!rows)
                return -ENOMEM;
        cJSON_ArrayForEach (o, j) {
                PgReplica *p = &rows[n++];
                const cJSON *prio;

                if (!cJSON_IsObject(o)) {
                        r = -EINVAL;
                        break;
                }
                if ((r = json_dup_string(o, "usename", &p->usename)) < 0 ||
                    (r = json_dup_string(o, "application_name", &p->application_name)) < 0 ||
                    (r = json_dup_string(o, "client_addr", &p->client_addr)) < 0 ||
                    (r = json_dup_string(o, "state", &p->state)) < 0 ||
                    (r = json_dup_string(o, "sync_state", &p->sync_state)) < 0 ||
                    (r = json_lsn(o, "write_lsn", &p->write_lsn)) < 0 ||
                    (r = json_lsn(o, "flush_lsn", &p->flush_lsn)) < 0 ||
                    (r = json_lsn(o, "replay_lsn", &p->replay_lsn)) < 0)
                        break;
                prio = cJSON_GetObjectItemCaseSensitive(o, "sync_priority");
                if (cJSON_IsNumber(prio))
                        p->sync_priority = prio->valueint;
        }
        if (r < 0) {
                replicas_free(rows, n);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

/* pgstatus_parse_result - fills the query facts of s from a result of pgmon_status_query (exactly one
 * row). On failure s's query facts are cleared and the error returned (-EBADMSG for a wrong shape,
 * -EINVAL for a cell that does not parse). Does not touch bookkeeping timestamps. Non-logging. */
int pgstatus_parse_result(const PGresult *res, PgStatus *s) {
        int64_t v;
        unsigned wal_tli = 0;
        _cleanup_free_ char *replication = NULL;
        int r;

        if (!res || !s)
                return -EINVAL;
        pgstatus_clear_query_facts(s);
        if (PQntuples(res) != 1)
                return -EBADMSG;

        r = pgresult_get_bool(res, 0, column(res, "in_recovery"), &s->in_recovery);
        if (r < 0)
                goto fail;
        r = pgresult_get_int64(res, 0, column(res, "server_version"), &v);
        if (r < 0)
                goto fail;
        if (v <= 0 || v > INT32_MAX) {
                r = -ERANGE;
                goto fail;
        }
        s->server_version = (int)v;
        r = pgresult_get_uint64(res, 0, column(res, "system_identifier"), &s->system_identifier);
        if (r < 0)
                goto fail;

        if ((r = opt_string(res, "postmaster_start", &s->postmaster_start_time)) < 0 ||
            (r = opt_double(res, "postmaster_start_epoch", &s->postmaster_start_epoch)) < 0 ||
            (r = opt_lsn(res, "wal_write_lsn", &s->wal_write_lsn)) < 0 ||
            (r = opt_lsn(res, "wal_flush_lsn", &s->wal_flush_lsn)) < 0 ||
            (r = opt_uint(res, "wal_timeline", UINT32_MAX, &wal_tli)) < 0 ||
            (r = opt_lsn(res, "receive_lsn", &s->receive_lsn)) < 0 ||
            (r = opt_lsn(res, "replay_lsn", &s->replay_lsn)) < 0 ||
            (r = opt_string(res, "replay_timestamp", &s->replay_timestamp)) < 0 ||
            (r = opt_double(res, "replay_timestamp_epoch", &s->replay_timestamp_epoch)) < 0 ||
            (r = opt_bool(res, "replay_paused", &s->replay_paused)) < 0 ||
            (r = opt_string(res, "replay_pause_state", &s->replay_pause_state)) < 0 ||
            (r = opt_uint(res, "checkpoint_timeline", UINT32_MAX, &s->checkpoint_timeline)) < 0 ||
            (r = opt_string(res, "receiver_status", &s->receiver_status)) < 0 ||
            (r = opt_uint(res, "receiver_timeline", UINT32_MAX, &s->receiver_timeline)) < 0 ||
            (r = opt_string(res, "receiver_conninfo", &s->receiver_conninfo)) < 0 ||
            (r = opt_string(res, "receiver_slot", &s->receiver_slot)) < 0 ||
            (r = opt_string(res, "receiver_host", &s->receiver_host)) < 0 ||
            (r = opt_uint(res, "receiver_port", 65535, &s->receiver_port)) < 0 ||
            (r = opt_bool(res, "pending_restart", &s->pending_restart)) < 0 ||
            (r = opt_string(res, "replication", &replication)) < 0)
                goto fail;
        /* Newer columns: absent from recorded results of older versions. */
        if ((column(res, "synchronous_standby_names") >= 0 &&
             (r = opt_string(res, "synchronous_standby_names", &s->synchronous_standby_names)) < 0) ||
            (column(res, "synchronous_commit") >= 0 &&
             (r = opt_string(res, "synchronous_commit", &s->synchronous_commit)) < 0))
                goto fail;

        if (replication) {
                r = parse_replication(replication, &s->replicas, &s->n_replicas);
                if (r < 0)
                        goto fail;
        }

        /* Timeline as Patroni reports it: a primary's comes from its current WAL file name; a replica's
         * from the walreceiver once it has received something, otherwise from the last checkpoint. */
        if (!s->in_recovery)
                s->timeline = wal_tli ?: s->checkpoint_timeline;
        else
                s->timeline = s->receiver_timeline ?: s->checkpoint_timeline;
        s->query_ok = true;
        return 0;

fail:
        pgstatus_clear_query_facts(s);
        return r == -ERANGE ? -EBADMSG : r; /* a missing column or an out-of-range value */
}

/* pgstatus_wal_position - the WAL position used in the leader race (patroni-compat §2.8): a primary's
 * write position, a replica's max(received, replayed). 0 when the query facts are missing. */
uint64_t pgstatus_wal_position(const PgStatus *s) {
        if (!s || !s->query_ok)
                return 0;
        if (!s->in_recovery)
                return s->wal_write_lsn;
        return MAX(s->receive_lsn, s->replay_lsn);
}

static cJSON *json_string_or_null(const char *s) {
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static int json_add(cJSON *o, const char *key, cJSON *v) {
        if (!v)
                return -ENOMEM;
        if (!cJSON_AddItemToObject(o, key, v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        return 0;
}

static int json_add_lsn(cJSON *o, const char *key, uint64_t lsn) {
        /* doubles are exact to 2^53 bytes of WAL (8 PiB): enough for tests and debugging output */
        return json_add(o, key, cJSON_CreateNumber((double)lsn));
}

/* pgstatus_to_json - a JSON object with every field of s, for debugging and tests. Times are monotonic
 * microseconds as in PgStatus; LSNs are numbers (bytes). Non-logging. */
int pgstatus_to_json(const PgStatus *s, cJSON **ret) {
        _cleanup_(json_deletep) cJSON *o = NULL;
        char buf[32];
        cJSON *a;

        if (!s || !ret)
                return -EINVAL;
        o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;

        if (json_add(o, "running", cJSON_CreateBool(s->running)) < 0 ||
            json_add(o, "postmaster", json_string_or_null(postmaster_state_to_string(s->postmaster))) < 0 ||
            json_add(o, "postmaster_pid", cJSON_CreateNumber(s->postmaster_pid)) < 0 ||
            json_add(o, "pidfile_status", json_string_or_null(s->pidfile_status)) < 0 ||
            json_add(o, "process_checked_at", cJSON_CreateNumber((double)s->process_checked_at)) < 0 ||
            json_add(o, "not_running_since", cJSON_CreateNumber((double)s->not_running_since)) < 0 ||
            json_add(o, "query_ok", cJSON_CreateBool(s->query_ok)) < 0 ||
            json_add(o, "queried_at", cJSON_CreateNumber((double)s->queried_at)) < 0 ||
            json_add(o, "last_ok_at", cJSON_CreateNumber((double)s->last_ok_at)) < 0 ||
            json_add(o, "not_responding_since", cJSON_CreateNumber((double)s->not_responding_since)) < 0 ||
            json_add(o, "probe_error", cJSON_CreateNumber(s->probe_error)) < 0 ||
            json_add(o, "probe_error_message", json_string_or_null(s->probe_error_message)) < 0)
                return -ENOMEM;
        if (!s->query_ok) {
                *ret = TAKE_PTR(o);
                return 0;
        }

        (void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)s->system_identifier);
        if (json_add(o, "in_recovery", cJSON_CreateBool(s->in_recovery)) < 0 ||
            json_add(o, "server_version", cJSON_CreateNumber(s->server_version)) < 0 ||
            json_add(o, "system_identifier", cJSON_CreateString(buf)) < 0 ||
            json_add(o, "postmaster_start_time", json_string_or_null(s->postmaster_start_time)) < 0 ||
            json_add(o, "postmaster_start_epoch", cJSON_CreateNumber(s->postmaster_start_epoch)) < 0 ||
            json_add_lsn(o, "wal_write_lsn", s->wal_write_lsn) < 0 ||
            json_add_lsn(o, "wal_flush_lsn", s->wal_flush_lsn) < 0 ||
            json_add_lsn(o, "receive_lsn", s->receive_lsn) < 0 ||
            json_add_lsn(o, "replay_lsn", s->replay_lsn) < 0 ||
            json_add_lsn(o, "wal_position", pgstatus_wal_position(s)) < 0 ||
            json_add(o, "replay_timestamp", json_string_or_null(s->replay_timestamp)) < 0 ||
            json_add(o, "replay_timestamp_epoch", cJSON_CreateNumber(s->replay_timestamp_epoch)) < 0 ||
            json_add(o, "replay_paused", cJSON_CreateBool(s->replay_paused)) < 0 ||
            json_add(o, "replay_pause_state", json_string_or_null(s->replay_pause_state)) < 0 ||
            json_add(o, "timeline", cJSON_CreateNumber(s->timeline)) < 0 ||
            json_add(o, "checkpoint_timeline", cJSON_CreateNumber(s->checkpoint_timeline)) < 0 ||
            json_add(o, "receiver_timeline", cJSON_CreateNumber(s->receiver_timeline)) < 0 ||
            json_add(o, "receiver_status", json_string_or_null(s->receiver_status)) < 0 ||
            json_add(o, "receiver_conninfo", json_string_or_null(s->receiver_conninfo)) < 0 ||
            json_add(o, "receiver_slot", json_string_or_null(s->receiver_slot)) < 0 ||
            json_add(o, "receiver_host", json_string_or_null(s->receiver_host)) < 0 ||
            json_add(o, "receiver_port", cJSON_CreateNumber(s->receiver_port)) < 0 ||
            json_add(o, "pending_restart", cJSON_CreateBool(s->pending_restart)) < 0)
                return -ENOMEM;

        a = cJSON_CreateArray();
        if (json_add(o, "replication", a) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_replicas; i++) {
                const PgReplica *p = &s->replicas[i];
                cJSON *row = cJSON_CreateObject();

                if (!row || !cJSON_AddItemToArray(a, row)) {
                        cJSON_Delete(row);
                        return -ENOMEM;
                }
                if (json_add(row, "usename", json_string_or_null(p->usename)) < 0 ||
                    json_add(row, "application_name", json_string_or_null(p->application_name)) < 0 ||
                    json_add(row, "client_addr", json_string_or_null(p->client_addr)) < 0 ||
                    json_add(row, "state", json_string_or_null(p->state)) < 0 ||
                    json_add(row, "sync_state", json_string_or_null(p->sync_state)) < 0 ||
                    json_add(row, "sync_priority", cJSON_CreateNumber(p->sync_priority)) < 0 ||
                    json_add_lsn(row, "write_lsn", p->write_lsn) < 0 ||
                    json_add_lsn(row, "flush_lsn", p->flush_lsn) < 0 ||
                    json_add_lsn(row, "replay_lsn", p->replay_lsn) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(o);
        return 0;
}

/* ==== The probe loop ==== */

struct PgMon {
        sd_event *event;
        char *data_dir;
        char *proc_root;
        usec_t interval;
        usec_t query_timeout;
        PgConn *conn;
        PgQuery *query;         /* in-flight status query, NULL when none */
        sd_event_source *timer; /* periodic probe */
        sd_event_source *kick;  /* on-demand probe from the loop */
        bool rerun;             /* probe requested while a query was in flight */
        PgMonFunc callback;
        void *userdata;
        PgStatus status;
        unsigned probes_done;
        PostmasterState logged_state; /* last state logged, to log changes once */
        sd_event_source *exit_watch;  /* pidfd of the running postmaster: readable once it exits */
        pid_t watched_pid;
        unsigned received_tli;  /* the last timeline a walreceiver of this replica reported ... */
        pid_t received_tli_pid; /* ... under this postmaster */
};

/* A replica's timeline once its walreceiver is gone (a standby detached before a quorum vote, a leader
 * down): the last one it received, for as long as the same postmaster runs, not the last checkpoint's,
 * which stays behind a timeline switch until the next restartpoint. (Patroni asks IDENTIFY_SYSTEM on a
 * replication connection to itself for it.) */
static void pgmon_remember_timeline(PgMon *m, PgStatus *s) {
        if (!s->in_recovery || s->postmaster_pid != m->received_tli_pid) {
                m->received_tli = 0;
                m->received_tli_pid = s->in_recovery ? s->postmaster_pid : 0;
        }
        if (!s->in_recovery)
                return;
        if (s->receiver_timeline > 0)
                m->received_tli = s->receiver_timeline;
        else if (m->received_tli > s->timeline)
                s->timeline = m->received_tli;
}

static usec_t jittered(usec_t interval) {
        uint64_t r;
        usec_t spread = interval / 5; /* ±10% */

        if (spread == 0 || getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
                return interval;
        return interval - spread / 2 + r % (spread + 1);
}

static void pgmon_finish_probe(PgMon *m) {
        m->probes_done++;
        if (m->callback)
                m->callback(m, &m->status, m->userdata);
}

static void pgmon_record_failure(PgMon *m, usec_t now, int error, const char *message) {
        PgStatus *s = &m->status;

        pgstatus_clear_query_facts(s);
        s->probe_error = error < 0 ? error : -EIO;
        (void)free_and_strdup(&s->probe_error_message, message ?: "unknown error");
        if (s->not_responding_since == 0)
                s->not_responding_since = now;
}

static void
on_status_result(PgConn *c, const PGresult *res, int error, const char *message, void *userdata) {
        PgMon *m = userdata;
        PgStatus *s = &m->status;
        usec_t now = 0;
        int r;

        m->query = NULL;
        (void)sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (error < 0) {
                if (s->not_responding_since == 0)
                        log_warning_errno(error, "PostgreSQL status query failed: %s", strna(message));
                pgmon_record_failure(m, now, error, message);
        } else {
                r = pgstatus_parse_result(res, s);
                if (r < 0) {
                        log_error_errno(r, "Failed to parse the PostgreSQL status reply: %m");
                        pgmon_record_failure(m, now, r, "unexpected reply to the status query");
                } else {
                        pgmon_remember_timeline(m, s);
                        if (s->not_responding_since != 0)
                                log_info("PostgreSQL answers again.");
                        s->queried_at = s->last_ok_at = now;
                        s->not_responding_since = 0;
                        s->probe_error = 0;
                        s->probe_error_message = mfree(s->probe_error_message);
                }
        }
        pgmon_finish_probe(m);
        if (m->rerun) {
                m->rerun = false;
                (void)pgmon_probe_now(m);
        }
}

static void pgmon_check_process(PgMon *m, usec_t now) {
        _cleanup_(postmaster_pid_file_done) PostmasterPidFile pf = {};
        PgStatus *s = &m->status;
        PostmasterState st;
        int r;

        r = postmaster_check(m->data_dir, m->proc_root, &st, &pf);
        if (r < 0) {
                log_warning_errno(r, "Failed to read postmaster.pid in \"%s\": %m", m->data_dir);
                st = POSTMASTER_BAD_PIDFILE;
        }
        s->process_checked_at = now;
        s->postmaster = st;
        s->running = st == POSTMASTER_RUNNING;
        s->postmaster_pid = pf.pid;
        free(s->pidfile_status);
        s->pidfile_status = TAKE_PTR(pf.status);
        if (s->running)
                s->not_running_since = 0;
        else if (s->not_running_since == 0)
                s->not_running_since = now;

        if (st != m->logged_state) {
                if (st == POSTMASTER_RUNNING)
                        log_info("PostgreSQL postmaster (pid %d) is running.", (int)pf.pid);
                else
                        log_info(
                                "PostgreSQL postmaster is not running: %s (pid %d).",
                                postmaster_state_to_string(st),
                                (int)pf.pid);
                m->logged_state = st;
        }
}

static int on_postmaster_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void pgmon_unwatch_exit(PgMon *m) {
        m->exit_watch = sd_event_source_disable_unref(m->exit_watch);
        m->watched_pid = 0;
}

/* Watches the running postmaster through a pidfd, so its death is probed at once instead of at the next
 * period (a crashed primary's recovery starts up to a whole loop_wait earlier). Best effort: without
 * pidfds (kernels before 5.3) the periodic probe still notices. Never with a fake /proc root (tests),
 * whose PIDs are not real processes. */
static void pgmon_watch_exit(PgMon *m, pid_t pid) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (m->proc_root || pid <= 0 || (m->exit_watch && m->watched_pid == pid))
                return;
        pgmon_unwatch_exit(m);
        fd = pidfd_open(pid, 0);
        if (fd < 0) {
                log_debug_errno(errno, "Failed to open a pidfd for postmaster %d, ignoring: %m", (int)pid);
                return;
        }
        r = sd_event_add_io(m->event, &m->exit_watch, fd, EPOLLIN, on_postmaster_exit, m);
        if (r >= 0)
                r = sd_event_source_set_io_fd_own(m->exit_watch, true);
        if (r < 0) {
                log_debug_errno(r, "Failed to watch postmaster %d, ignoring: %m", (int)pid);
                pgmon_unwatch_exit(m);
                return;
        }
        TAKE_FD(fd);
        m->watched_pid = pid;
        (void)sd_event_source_set_description(m->exit_watch, "pg-postmaster-exit");
}

static int on_postmaster_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PgMon *m = userdata;

        log_debug("postmaster %d exited, probing now", (int)m->watched_pid);
        pgmon_unwatch_exit(m);
        (void)pgmon_probe_now(m);
        return 0;
}

static void pgmon_probe(PgMon *m) {
        PgStatus *s = &m->status;
        usec_t now = 0;
        int r;

        if (m->query) {
                m->rerun = true;
                return;
        }
        (void)sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        pgmon_check_process(m, now);
        if (s->running)
                pgmon_watch_exit(m, s->postmaster_pid);
        else
                pgmon_unwatch_exit(m);

        if (!s->running) {
                /* no server to ask: drop the connection so a restarted one is reached without back-off */
                pgconn_disconnect(m->conn);
                pgmon_record_failure(m, now, -ESRCH, "postmaster is not running");
                pgmon_finish_probe(m);
                return;
        }

        r = pgconn_query(
                m->conn, pgmon_status_query, 0, NULL, m->query_timeout, on_status_result, m, &m->query);
        if (r < 0) {
                _cleanup_free_ char *msg = NULL;

                if (r == -ENOTCONN &&
                    asprintf(
                            &msg,
                            "not connected, retrying after back-off: %s",
                            strna(pgconn_last_error(m->conn))) < 0)
                        msg = NULL;
                pgmon_record_failure(m, now, r, msg ?: "failed to queue the status query");
                pgmon_finish_probe(m);
        }
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        PgMon *m = userdata;
        int r;

        pgmon_probe(m);
        r = sd_event_source_set_time_relative(s, jittered(m->interval));
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the PostgreSQL probe timer: %m");
        return 0;
}

static int on_probe_kick(sd_event_source *s, void *userdata) {
        PgMon *m = userdata;

        m->kick = sd_event_source_disable_unref(m->kick);
        pgmon_probe(m);
        return 0;
}

/* pgmon_new - creates a monitor for the server described by config (copied). Probing starts with
 * pgmon_start() or pgmon_probe_now(). callback (optional) runs after every probe. Non-logging. */
int pgmon_new(sd_event *e, const PgMonConfig *config, PgMonFunc callback, void *userdata, PgMon **ret) {
        _cleanup_(pgmon_freep) PgMon *m = NULL;
        PgConnParams params;
        int r;

        if (!e || !config || !ret || isempty(config->data_dir))
                return -EINVAL;

        m = new0(PgMon, 1);
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->callback = callback;
        m->userdata = userdata;
        m->interval = config->interval ?: PGMON_DEFAULT_INTERVAL;
        m->query_timeout = config->query_timeout;
        m->logged_state = _POSTMASTER_STATE_INVALID;
        m->status.postmaster = _POSTMASTER_STATE_INVALID;
        m->data_dir = strdup(config->data_dir);
        if (!m->data_dir)
                return -ENOMEM;
        if (config->proc_root) {
                m->proc_root = strdup(config->proc_root);
                if (!m->proc_root)
                        return -ENOMEM;
        }
        params = config->conn;
        params.description = params.description ?: "pg-local";
        r = pgconn_new(e, &params, &m->conn);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

/* pgmon_free - stops probing, closes the connection (no callback runs afterwards), frees everything.
 * Accepts NULL, returns NULL. */
PgMon *pgmon_free(PgMon *m) {
        if (!m)
                return NULL;
        m->timer = sd_event_source_disable_unref(m->timer);
        m->kick = sd_event_source_disable_unref(m->kick);
        pgmon_unwatch_exit(m);
        m->conn = pgconn_free(m->conn); /* drops the in-flight query without its callback */
        m->query = NULL;
        pgstatus_done(&m->status);
        free(m->data_dir);
        free(m->proc_root);
        sd_event_unref(m->event);
        return mfree(m);
}

/* pgmon_start - arms the periodic probe (first probe on the next loop iteration). Idempotent. */
int pgmon_start(PgMon *m) {
        int r;

        if (!m)
                return -EINVAL;
        if (m->timer)
                return sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
        r = sd_event_add_time_relative(m->event, &m->timer, CLOCK_MONOTONIC, 0, 0, on_probe_timer, m);
        if (r < 0)
                return r;
        /* the probe period is jittered anyway; a tenth of it (at most sd-event's default) is plenty */
        (void)sd_event_source_set_time_accuracy(m->timer, MIN(m->interval / 10, 250 * USEC_PER_MSEC) ?: 1);
        (void)sd_event_source_set_description(m->timer, "pg-probe-timer");
        return 0;
}

/* pgmon_stop - disarms the periodic probe; an in-flight query still completes and is reported. */
void pgmon_stop(PgMon *m) {
        if (m && m->timer)
                (void)sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
}

/* pgmon_probe_now - asks for a probe on the next loop iteration (or right after the one in flight);
 * the callback reports it. */
int pgmon_probe_now(PgMon *m) {
        int r;

        if (!m)
                return -EINVAL;
        if (m->query) {
                m->rerun = true;
                return 0;
        }
        if (m->kick)
                return 0;
        r = sd_event_add_defer(m->event, &m->kick, on_probe_kick, m);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(m->kick, "pg-probe-now");
        return 0;
}

/* pgmon_get_status - the facts of the last completed probe (see PgStatus for freshness rules). */
const PgStatus *pgmon_get_status(const PgMon *m) {
        return m ? &m->status : NULL;
}

unsigned pgmon_probes_done(const PgMon *m) {
        return m ? m->probes_done : 0;
}
