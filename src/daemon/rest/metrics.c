/* SPDX-License-Identifier: MIT */
/*
 * Prometheus text for GET /metrics, identical to Patroni 3.0.2's do_GET_metrics(): the same 20 metrics
 * in the same order, HELP texts verbatim (including the copy-pasted one of
 * patroni_failsafe_mode_is_active), counters without _total, and the space before the label set of
 * patroni_postgres_server_version. Dashboards and alerts written for Patroni keep working.
 *
 * Invariant: every value comes from the same facts as the status document (snapshot_status_json()), so
 * /metrics and /patroni never disagree. One deliberate difference: where Patroni would print "None"
 * (a replica whose timeline is unknown), which breaks the whole scrape, we print 0.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pgha/metrics.h"
#include "rest-internal.h"

typedef struct MetricDef {
        const char *name;
        const char *type;
        const char *help;
} MetricDef;

enum {
        M_VERSION,
        M_POSTGRES_RUNNING,
        M_POSTMASTER_START_TIME,
        M_MASTER,
        M_PRIMARY,
        M_XLOG_LOCATION,
        M_STANDBY_LEADER,
        M_REPLICA,
        M_SYNC_STANDBY,
        M_QUORUM_STANDBY,
        M_XLOG_RECEIVED_LOCATION,
        M_XLOG_REPLAYED_LOCATION,
        M_XLOG_REPLAYED_TIMESTAMP,
        M_XLOG_PAUSED,
        M_POSTGRES_SERVER_VERSION,
        M_CLUSTER_UNLOCKED,
        M_FAILSAFE_MODE_IS_ACTIVE,
        M_POSTGRES_TIMELINE,
        M_DCS_LAST_SEEN,
        M_PENDING_RESTART,
        M_IS_PAUSED,
        _M_MAX,
};

static const MetricDef metric_defs[_M_MAX] = {
        [M_VERSION] = {"patroni_version", "gauge", "Patroni semver without periods."},
        [M_POSTGRES_RUNNING] =
                {"patroni_postgres_running", "gauge", "Value is 1 if Postgres is running, 0 otherwise."},
        [M_POSTMASTER_START_TIME] =
                {"patroni_postmaster_start_time", "gauge", "Epoch seconds since Postgres started."},
        [M_MASTER] = {"patroni_master", "gauge", "Value is 1 if this node is the leader, 0 otherwise."},
        [M_PRIMARY] = {"patroni_primary", "gauge", "Value is 1 if this node is the leader, 0 otherwise."},
        [M_XLOG_LOCATION] =
                {"patroni_xlog_location",
                 "counter",
                 "Current location of the Postgres transaction log, 0 if this node is not the leader."},
        [M_STANDBY_LEADER] =
                {"patroni_standby_leader",
                 "gauge",
                 "Value is 1 if this node is the standby_leader, 0 otherwise."},
        [M_REPLICA] = {"patroni_replica", "gauge", "Value is 1 if this node is a replica, 0 otherwise."},
        [M_SYNC_STANDBY] =
                {"patroni_sync_standby",
                 "gauge",
                 "Value is 1 if this node is a sync standby replica, 0 otherwise."},
        [M_QUORUM_STANDBY] =
                {"patroni_quorum_standby",
                 "gauge",
                 "Value is 1 if this node is a quorum standby, 0 otherwise."},
        [M_XLOG_RECEIVED_LOCATION] =
                {"patroni_xlog_received_location",
                 "counter",
                 "Current location of the received Postgres transaction log, 0 if this node "
                 "is not a replica."},
        [M_XLOG_REPLAYED_LOCATION] =
                {"patroni_xlog_replayed_location",
                 "counter",
                 "Current location of the replayed Postgres transaction log, 0 if this node "
                 "is not a replica."},
        [M_XLOG_REPLAYED_TIMESTAMP] =
                {"patroni_xlog_replayed_timestamp",
                 "gauge",
                 "Current timestamp of the replayed Postgres transaction log, 0 if null."},
        [M_XLOG_PAUSED] =
                {"patroni_xlog_paused", "gauge", "Value is 1 if the Postgres xlog is paused, 0 otherwise."},
        [M_POSTGRES_SERVER_VERSION] =
                {"patroni_postgres_server_version",
                 "gauge",
                 "Version of Postgres (if running), 0 otherwise."},
        [M_CLUSTER_UNLOCKED] =
                {"patroni_cluster_unlocked", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked."},
        /* sic: 3.0.2 copied the HELP text of patroni_cluster_unlocked */
        [M_FAILSAFE_MODE_IS_ACTIVE] =
                {"patroni_failsafe_mode_is_active",
                 "gauge",
                 "Value is 1 if the cluster is unlocked, 0 if locked."},
        [M_POSTGRES_TIMELINE] =
                {"patroni_postgres_timeline",
                 "counter",
                 "Postgres timeline of this node (if running), 0 otherwise."},
        [M_DCS_LAST_SEEN] =
                {"patroni_dcs_last_seen",
                 "gauge",
                 "Epoch timestamp when DCS was last contacted successfully by Patroni."},
        [M_PENDING_RESTART] =
                {"patroni_pending_restart", "gauge", "Value is 1 if the node needs a restart, 0 otherwise."},
        [M_IS_PAUSED] =
                {"patroni_is_paused", "gauge", "Value is 1 if auto failover is disabled, 0 otherwise."},
};

static void emit(StrBuf *b, int m, const char *label, const char *value) {
        const MetricDef *d = &metric_defs[m];

        strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        /* sic: Patroni 3.0.2 prints a space between this name and its label set */
        strbuf_printf(b, "%s%s%s %s\n", d->name, m == M_POSTGRES_SERVER_VERSION ? " " : "", label, value);
}

static void emit_u64(StrBuf *b, int m, const char *label, uint64_t v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, v);
        emit(b, m, label, buf);
}

/* (t - epoch).total_seconds() printed with str(): a float, or the int 0 when unknown. */
static void emit_epoch(StrBuf *b, int m, const char *label, usec_t t) {
        char buf[40];
        if (t == 0)
                emit(b, m, label, "0");
        else
                emit(b, m, label, format_python_float((double)t / (double)USEC_PER_SEC, buf));
}

/* "3.0.2" → "030002": each dot-separated part zero-padded to two characters. */
static void version_padded(StrBuf *b, const char *version) {
        for (const char *p = version;;) {
                const char *dot = strchrnul(p, '.');
                size_t n = (size_t)(dot - p);
                for (size_t i = n; i < 2; i++)
                        strbuf_putc(b, '0');
                strbuf_putn(b, p, n);
                if (!*dot)
                        break;
                p = dot + 1;
        }
}

/* metrics_render - see the header. */
int metrics_render(const NodeSnapshot *s, usec_t now, char **ret, size_t *ret_size) {
        StrBuf b = {}, label = {}, ver = {};
        const char *role = snapshot_rest_role(s);
        bool ok = s->status_ok, replica = ok && s->in_recovery;
        bool primary_role = streq(role, "master") || streq(role, "primary");

        /* {scope="<scope>"}, with the text format's escapes for a label value */
        strbuf_puts(&label, "{scope=\"");
        for (const char *p = strempty(s->scope); *p; p++) {
                if (*p == '\\' || *p == '"')
                        strbuf_putc(&label, '\\');
                if (*p == '\n')
                        strbuf_puts(&label, "\\n");
                else
                        strbuf_putc(&label, *p);
        }
        strbuf_puts(&label, "\"}");
        version_padded(&ver, s->version ?: "3.0.2");
        if (label.failed || ver.failed)
                goto oom;

        emit(&b, M_VERSION, label.buf, ver.buf);
        emit_u64(&b, M_POSTGRES_RUNNING, label.buf, streq(snapshot_rest_state(s), "running"));
        emit_epoch(&b, M_POSTMASTER_START_TIME, label.buf, ok ? s->postmaster_start_time : 0);
        emit_u64(&b, M_MASTER, label.buf, primary_role);
        emit_u64(&b, M_PRIMARY, label.buf, primary_role);
        emit_u64(&b, M_XLOG_LOCATION, label.buf, ok && !s->in_recovery ? s->wal_location : 0);
        emit_u64(&b, M_STANDBY_LEADER, label.buf, streq(role, "standby_leader"));
        emit_u64(&b, M_REPLICA, label.buf, streq(role, "replica"));
        emit_u64(&b, M_SYNC_STANDBY, label.buf, snapshot_is_sync_standby(s, now));
        if (s->quorum_mode) /* Patroni 4's gauge; 3.0.2 has none, so only in quorum mode */
                emit_u64(&b, M_QUORUM_STANDBY, label.buf, snapshot_is_quorum_standby(s, now));
        emit_u64(
                &b,
                M_XLOG_RECEIVED_LOCATION,
                label.buf,
                replica ? (s->received_location ?: s->replayed_location) : 0);
        emit_u64(&b, M_XLOG_REPLAYED_LOCATION, label.buf, replica ? s->replayed_location : 0);
        emit_epoch(&b, M_XLOG_REPLAYED_TIMESTAMP, label.buf, replica ? s->replayed_timestamp : 0);
        emit_u64(&b, M_XLOG_PAUSED, label.buf, replica && s->replay_paused);
        emit_u64(&b, M_POSTGRES_SERVER_VERSION, label.buf, ok ? s->server_version : 0);
        emit_u64(&b, M_CLUSTER_UNLOCKED, label.buf, !snapshot_has_cluster(s, now) || !s->leader_name);
        emit_u64(&b, M_FAILSAFE_MODE_IS_ACTIVE, label.buf, s->failsafe_active);
        emit_u64(&b, M_POSTGRES_TIMELINE, label.buf, ok ? s->timeline : 0);
        emit_u64(&b, M_DCS_LAST_SEEN, label.buf, s->dcs_last_seen);
        emit_u64(&b, M_PENDING_RESTART, label.buf, s->pending_restart);
        emit_u64(&b, M_IS_PAUSED, label.buf, s->paused);
        if (b.failed)
                goto oom;

        strbuf_done(&label);
        strbuf_done(&ver);
        if (ret_size)
                *ret_size = b.len;
        *ret = b.buf;
        return 0;
oom:
        strbuf_done(&b);
        strbuf_done(&label);
        strbuf_done(&ver);
        return -ENOMEM;
}
