/* SPDX-License-Identifier: MIT */
/*
 * The REST status rules as a table: (node state, path, query) → status code, covering every rule of
 * patroni-compat.md §3.5 plus /liveness and /readiness; and the pure helpers behind the handlers
 * (Patroni's parse_int, version and timestamp parsing, patch_config, Python-style JSON, the status
 * document itself).
 */
#include <stdio.h>
#include <string.h>

#include "pgha/ha.h"
#include "pgha/rest.h"
#include "pgha/snapshot.h"
#include "tests.h"

#define NOW (1000 * USEC_PER_SEC)

/* Node states, as snapshot descriptions (docs/rest-api.md). */
#define LEADER                                                                                              \
        "{\"scope\":\"demo\",\"name\":\"node1\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":" \
        "false,"                                                                                            \
        "\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\",\"leader_optime\":1000,"        \
        "\"xlog_location\":1000,\"timeline\":1,\"tags\":{\"dc\":\"east\"}}"
#define LEADER_EXPIRED                                                                                      \
        "{\"scope\":\"demo\",\"name\":\"node1\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":" \
        "false,"                                                                                            \
        "\"leader_expires_in\":-1,\"cluster_view\":true,\"leader_name\":\"node1\"}"
#define REPLICA_FIELDS                                                                                     \
        "\"scope\":\"demo\",\"name\":\"node2\",\"role\":\"replica\",\"in_recovery\":true,\"leader_name\":" \
        "\"node1\","                                                                                       \
        "\"leader_optime\":1000,\"replayed_location\":900,\"received_location\":950,\"timeline\":1"
#define REPLICA                                                                                            \
        "{" REPLICA_FIELDS                                                                                 \
        ",\"state\":\"running\",\"cluster_view\":true,"                                                    \
        "\"tags\":{\"dc\":\"east\",\"nofailover\":false,\"weight\":1,\"flag\":true,\"ratio\":1.5,\"nil\":" \
        "null}}"
#define REPLICA_SYNC       \
        "{" REPLICA_FIELDS \
        ",\"state\":\"running\",\"cluster_view\":true,\"synchronous_mode\":true,\"sync_member\":true}"
#define REPLICA_QUORUM                                                                                 \
        "{" REPLICA_FIELDS                                                                             \
        ",\"state\":\"running\",\"cluster_view\":true,\"synchronous_mode\":true,\"quorum_mode\":true," \
        "\"sync_member\":true}"
#define REPLICA_NOLB                                                                     \
        "{" REPLICA_FIELDS                                                               \
        ",\"state\":\"running\",\"cluster_view\":true,\"tags\":{\"noloadbalance\":true}" \
        "}"
#define REPLICA_NOLB_OFF                                                            \
        "{" REPLICA_FIELDS                                                          \
        ",\"state\":\"running\",\"cluster_view\":true,\"tags\":{\"noloadbalance\":" \
        "false}}"
#define REPLICA_STOPPED \
        "{" REPLICA_FIELDS ",\"state\":\"stopped\",\"status_ok\":false,\"cluster_view\":true}"
#define REPLICA_UNKNOWN \
        "{" REPLICA_FIELDS ",\"state\":\"running\",\"status_ok\":false,\"cluster_view\":true}"
#define REPLICA_NOVIEW     \
        "{" REPLICA_FIELDS \
        ",\"state\":\"running\",\"cluster_view\":false,\"synchronous_mode\":true,\"sync_member\":true}"
#define REPLICA_STALE "{" REPLICA_FIELDS ",\"state\":\"running\",\"cluster_valid_for\":-0.5}"
#define PAUSED_MASTER_NOVIEW                                                                              \
        "{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":false,\"paused\":" \
        "true,"                                                                                           \
        "\"cluster_view\":false}"
#define PAUSED_REPLICA_NOVIEW \
        "{" REPLICA_FIELDS ",\"state\":\"running\",\"paused\":true,\"cluster_view\":false}"
#define PAUSED_STANDBY_NOVIEW                                                                               \
        "{\"state\":\"running\",\"role\":\"standby_leader\",\"in_recovery\":true,\"standby_cluster\":true," \
        "\"paused\":true,\"cluster_view\":false}"
#define STANDBY_LEADER                                                                                      \
        "{\"state\":\"running\",\"role\":\"standby_leader\",\"in_recovery\":true,\"standby_cluster\":true," \
        "\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\",\"name\":\"node1\"}"
#define STANDBY_REPLICA                                                                              \
        "{\"state\":\"running\",\"role\":\"replica\",\"in_recovery\":true,\"standby_cluster\":true," \
        "\"cluster_view\":true,\"leader_name\":\"node1\",\"name\":\"node2\"}"
#define PRIMARY_UNLOCKED                                                                                  \
        "{\"state\":\"running\",\"role\":\"master\",\"in_recovery\":false,\"cluster_view\":true,\"ttl\":" \
        "30,"                                                                                             \
        "\"next_run_in\":0}"
#define LIVE_PRIMARY_LATE "{\"state\":\"running\",\"role\":\"master\",\"ttl\":30,\"next_run_in\":-31}"
#define LIVE_REPLICA_LATE "{\"state\":\"running\",\"role\":\"replica\",\"ttl\":30,\"next_run_in\":-31}"
#define LIVE_REPLICA_DEAD "{\"state\":\"running\",\"role\":\"replica\",\"ttl\":30,\"next_run_in\":-61}"
#define LIVE_PAUSED_DEAD \
        "{\"state\":\"running\",\"role\":\"replica\",\"ttl\":30,\"next_run_in\":-61,\"paused\":true}"
#define LIVE_PRIMARY_FRESH "{\"state\":\"running\",\"role\":\"master\",\"ttl\":30,\"next_run_in\":-29}"

typedef struct StatusCase {
        const char *snapshot;
        const char *path;
        const char *query;
        int expected;
} StatusCase;

static const StatusCase status_cases[] = {
        /* Leader: /primary reflects holding the lock; tags are not applied to leader checks. */
        {LEADER, "/", NULL, 200},
        {LEADER, "/primary", NULL, 200},
        {LEADER, "/master", NULL, 200},
        {LEADER, "/leader", NULL, 200},
        {LEADER, "/read-write", NULL, 200},
        {LEADER, "/standby-leader", NULL, 503},
        {LEADER, "/standby_leader", NULL, 503},
        {LEADER, "/replica", NULL, 503},
        {LEADER, "/read-only", NULL, 200},
        {LEADER, "/health", NULL, 200},
        {LEADER, "/sync", NULL, 503},
        {LEADER, "/synchronous", NULL, 503},
        {LEADER, "/async", NULL, 503},
        {LEADER, "/asynchronous", NULL, 503},
        {LEADER, "/read-only-sync", NULL, 200},
        {LEADER, "/read-only-quorum", NULL, 200},
        {LEADER, "/quorum", NULL, 503},
        {LEADER, "/read-only-synchronous", NULL, 200},
        {LEADER, "/foo", NULL, 503},
        {LEADER, "/patroni", NULL, 503}, /* HEAD/OPTIONS /patroni go to the generic handler */
        {LEADER, "/liveness", NULL, 503},
        {LEADER, "/foo/primary", NULL, 200}, /* substring matching */
        {LEADER, "/primaryx", NULL, 200},
        {LEADER, "/primary", "tag_dc=west", 200},
        {LEADER, "/leader", "tag_missing=x", 200},
        {LEADER, "/read-only", "tag_dc=east", 200},
        {LEADER, "/read-only", "tag_dc=west", 503},
        {LEADER, "/health", "tag_dc=west", 503},
        {LEADER, "/health", "tag_dc=east", 200},
        {LEADER_EXPIRED, "/primary", NULL, 503},
        {LEADER_EXPIRED, "/leader", NULL, 503},
        {LEADER_EXPIRED, "/read-only", NULL, 503},
        {LEADER_EXPIRED, "/health", NULL, 200},

        /* Replica, 100 bytes behind the leader's optime. */
        {REPLICA, "/replica", NULL, 200},
        {REPLICA, "/replicas", NULL, 200},
        {REPLICA, "/replica", "lag=50", 503},
        {REPLICA, "/replica", "lag=99", 503},
        {REPLICA, "/replica", "lag=100", 200},
        {REPLICA, "/replica", "lag=1kB", 200},
        {REPLICA, "/replica", "lag=0x10", 503},
        {REPLICA, "/replica", "lag=0x64", 200},
        {REPLICA, "/replica", "lag=abc", 200}, /* unparsable: no limit */
        {REPLICA, "/replica", "lag=1XB", 200}, /* unknown unit: no limit */
        {REPLICA, "/replica", "lag=-1", 503},
        {REPLICA, "/replica", "lag=", 200},           /* blank values are dropped */
        {REPLICA, "/replica", "lag=10&lag=1MB", 503}, /* first value wins */
        {REPLICA, "/read-only", "lag=10", 503},
        {REPLICA, "/primary", NULL, 503},
        {REPLICA, "/leader", NULL, 503},
        {REPLICA, "/standby-leader", NULL, 503},
        {REPLICA, "/read-only", NULL, 200},
        {REPLICA, "/health", NULL, 200},
        {REPLICA, "/async", NULL, 200},
        {REPLICA, "/asynchronous", NULL, 200},
        {REPLICA, "/sync", NULL, 503},
        {REPLICA, "/read-only-sync", NULL, 503},
        {REPLICA, "/read-only-quorum", NULL, 503},
        {REPLICA, "/quorum", NULL, 503},
        {REPLICA, "/replica", "tag_dc=east", 200},
        {REPLICA, "/replica", "tag_dc=west", 503},
        {REPLICA, "/replica", "tag_dc=east&tag_dc=west", 200},
        {REPLICA, "/replica", "tag_missing=x", 503},
        {REPLICA, "/replica", "tag_weight=1", 200},
        {REPLICA, "/replica", "tag_flag=true", 200},
        {REPLICA, "/replica", "tag_flag=True", 503},
        {REPLICA, "/replica", "tag_ratio=1.5", 200},
        {REPLICA, "/replica", "tag_nil=None", 503},
        {REPLICA, "/replica", "tag_nofailover=false", 503}, /* falsy builtin tags are dropped */
        {REPLICA, "/replica", "tag_dc=ea%73t", 200},
        {REPLICA, "/replica", "tag_dc=east&other=1", 200},
        {REPLICA_SYNC, "/sync", NULL, 200},
        {REPLICA_SYNC, "/synchronous", NULL, 200},
        {REPLICA_SYNC, "/async", NULL, 503},
        {REPLICA_SYNC, "/read-only-sync", NULL, 200},
        {REPLICA_SYNC, "/read-only-synchronous", NULL, 200},
        {REPLICA_SYNC, "/sync", "lag=10", 503},
        {REPLICA_SYNC, "/quorum", NULL, 503},
        {REPLICA_SYNC, "/read-only-quorum", NULL, 503},
        /* Quorum mode (Patroni 4): a standby the key names is a quorum standby, not a sync one. */
        {REPLICA_QUORUM, "/quorum", NULL, 200},
        {REPLICA_QUORUM, "/read-only-quorum", NULL, 200},
        {REPLICA_QUORUM, "/sync", NULL, 503},
        {REPLICA_QUORUM, "/read-only-sync", NULL, 503},
        {REPLICA_QUORUM, "/async", NULL, 503},
        {REPLICA_QUORUM, "/read-only", NULL, 200},
        {REPLICA_NOLB, "/replica", NULL, 503},
        {REPLICA_NOLB, "/read-only", NULL, 503},
        {REPLICA_NOLB, "/health", NULL, 200},
        {REPLICA_NOLB_OFF, "/replica", NULL, 200},
        {REPLICA_STOPPED, "/replica", NULL, 503},
        {REPLICA_STOPPED, "/health", NULL, 503},
        {REPLICA_STOPPED, "/read-only", NULL, 503},
        {REPLICA_UNKNOWN, "/health", NULL, 503},
        {REPLICA_UNKNOWN, "/replica", NULL, 503},
        /* Without a cluster view the leader's optime is unknown (never lagging) and the sync checks fail. */
        {REPLICA_NOVIEW, "/replica", "lag=0", 200},
        {REPLICA_NOVIEW, "/sync", NULL, 503},
        {REPLICA_NOVIEW, "/async", NULL, 503},
        {REPLICA_NOVIEW, "/read-only-sync", NULL, 503},
        {REPLICA_STALE, "/replica", "lag=0", 200},
        {REPLICA_STALE, "/async", NULL, 503},

        /* Paused without a cluster view: the PostgreSQL role decides. */
        {PAUSED_MASTER_NOVIEW, "/leader", NULL, 200},
        {PAUSED_MASTER_NOVIEW, "/primary", NULL, 200},
        {PAUSED_MASTER_NOVIEW, "/read-only", NULL, 200},
        {PAUSED_MASTER_NOVIEW, "/standby-leader", NULL, 503},
        {PAUSED_REPLICA_NOVIEW, "/leader", NULL, 503},
        {PAUSED_REPLICA_NOVIEW, "/primary", NULL, 503},
        {PAUSED_REPLICA_NOVIEW, "/replica", NULL, 200},
        {PAUSED_STANDBY_NOVIEW, "/leader", NULL, 200},
        {PAUSED_STANDBY_NOVIEW, "/standby-leader", NULL, 200},
        {PAUSED_STANDBY_NOVIEW, "/primary", NULL, 503},

        /* Standby cluster. */
        {STANDBY_LEADER, "/standby-leader", NULL, 200},
        {STANDBY_LEADER, "/standby_leader", NULL, 200},
        {STANDBY_LEADER, "/leader", NULL, 200},
        {STANDBY_LEADER, "/primary", NULL, 503},
        {STANDBY_LEADER, "/replica", NULL, 503},
        {STANDBY_LEADER, "/read-only", NULL, 200},
        {STANDBY_REPLICA, "/replica", NULL, 200},
        {STANDBY_REPLICA, "/standby-leader", NULL, 503},

        /* A running primary without the lock is not /primary. */
        {PRIMARY_UNLOCKED, "/primary", NULL, 503},
        {PRIMARY_UNLOCKED, "/health", NULL, 200},
        {PRIMARY_UNLOCKED, "/replica", NULL, 503},
};

static NodeSnapshot load(const char *json) {
        NodeSnapshot s = {};
        _cleanup_free_ char *err = NULL;
        cJSON *j = cJSON_Parse(json);

        if (!j)
                TEST_FAIL("bad JSON in test: %s", json);
        if (snapshot_load_json(j, NOW, &s, &err) < 0) {
                cJSON_Delete(j);
                TEST_FAIL("snapshot_load_json: %s", strna(err));
        }
        cJSON_Delete(j);
        return s;
}

static int status_of(NodeSnapshot *s, RestHealthCheck check, const char *query) {
        RestQuery q = {.now = NOW};
        int r;

        ASSERT_OK(rest_query_parse(query, &q));
        r = rest_health_status(s, check, &q);
        rest_query_done(&q);
        return r;
}

TEST(status_table) {
        unsigned failed = 0;

        for (size_t i = 0; i < ELEMENTSOF(status_cases); i++) {
                const StatusCase *c = &status_cases[i];
                NodeSnapshot s = load(c->snapshot);
                int got = status_of(&s, rest_health_check_from_path(c->path), c->query);
                if (got != c->expected) {
                        fprintf(stderr,
                                "  case %zu: %s?%s on %s: got %d, expected %d\n",
                                i,
                                c->path,
                                strempty(c->query),
                                c->snapshot,
                                got,
                                c->expected);
                        failed++;
                }
                snapshot_done(&s);
        }
        ASSERT_EQ(failed, 0);
}

TEST(liveness_readiness) {
        static const struct {
                const char *snapshot;
                RestHealthCheck check;
                int expected;
        } cases[] = {
                {PRIMARY_UNLOCKED, REST_CHECK_LIVENESS, 200},
                {LIVE_PRIMARY_FRESH, REST_CHECK_LIVENESS, 200},
                {LIVE_PRIMARY_LATE, REST_CHECK_LIVENESS, 503}, /* a running primary gets ttl */
                {LIVE_REPLICA_LATE, REST_CHECK_LIVENESS, 200}, /* anything else 2 × ttl */
                {LIVE_REPLICA_DEAD, REST_CHECK_LIVENESS, 503},
                {LIVE_PAUSED_DEAD, REST_CHECK_LIVENESS, 200},
                {LEADER, REST_CHECK_READINESS, 200},
                {REPLICA, REST_CHECK_READINESS, 200},
                {REPLICA_UNKNOWN, REST_CHECK_READINESS, 200}, /* postgresql.state, not the reported one */
                {REPLICA_NOVIEW, REST_CHECK_READINESS, 503},
                {REPLICA_STOPPED, REST_CHECK_READINESS, 503},
                {LEADER_EXPIRED, REST_CHECK_READINESS, 200},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                NodeSnapshot s = load(cases[i].snapshot);
                int got = status_of(&s, cases[i].check, NULL);
                snapshot_done(&s);
                if (got != cases[i].expected)
                        TEST_FAIL(
                                "case %zu (%s): got %d expected %d",
                                i,
                                cases[i].snapshot,
                                got,
                                cases[i].expected);
        }
}

TEST(leader_needs_postgres) {
        /* Lock held, PostgreSQL being restarted after a crash: Patroni says 200, the opt-in policy 503. */
        NodeSnapshot s =
                load("{\"state\":\"starting\",\"status_ok\":false,\"role\":\"master\",\"is_leader\":true,"
                     "\"cluster_view\":true,\"leader_name\":\"node1\"}");
        NodeSnapshot p = load(PAUSED_MASTER_NOVIEW);
        RestQuery q = {.now = NOW};

        ASSERT_EQ(rest_health_status(&s, REST_CHECK_LEADER, &q), 200);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_PRIMARY, &q), 200);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_READ_ONLY, &q), 200);
        q.leader_needs_postgres = true;
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_LEADER, &q), 503);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_PRIMARY, &q), 503);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_STANDBY_LEADER, &q), 503);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_READ_ONLY, &q), 503);
        ASSERT_EQ(rest_health_status(&p, REST_CHECK_PRIMARY, &q), 200); /* running: unchanged */
        snapshot_done(&s);
        snapshot_done(&p);

        /* Lock held, PostgreSQL restarted read-only after a crash and not promoted yet: not writable. */
        s =
                load("{\"state\":\"running\",\"status_ok\":true,\"role\":\"replica\",\"in_recovery\":true,"
                     "\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\"}");
        q.leader_needs_postgres = false;
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_LEADER, &q), 200);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_PRIMARY, &q), 200);
        q.leader_needs_postgres = true;
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_LEADER, &q), 503);
        ASSERT_EQ(rest_health_status(&s, REST_CHECK_PRIMARY, &q), 503);
        snapshot_done(&s);
}

TEST(path_to_check) {
        ASSERT_EQ(rest_health_check_from_path("/"), REST_CHECK_PRIMARY);
        ASSERT_EQ(rest_health_check_from_path("/standby-leader"), REST_CHECK_STANDBY_LEADER);
        ASSERT_EQ(rest_health_check_from_path("/x/standby_leader"), REST_CHECK_STANDBY_LEADER);
        ASSERT_EQ(rest_health_check_from_path("/leader"), REST_CHECK_LEADER);
        ASSERT_EQ(rest_health_check_from_path("/read-only-sync"), REST_CHECK_READ_ONLY_SYNC);
        ASSERT_EQ(rest_health_check_from_path("/read-only-sync/"), REST_CHECK_OTHER);
        ASSERT_EQ(rest_health_check_from_path("/read-only"), REST_CHECK_READ_ONLY);
        ASSERT_EQ(rest_health_check_from_path("/replica-sync"), REST_CHECK_REPLICA);
        ASSERT_EQ(rest_health_check_from_path("/healthz"), REST_CHECK_HEALTH);
        ASSERT_EQ(rest_health_check_from_path("/sync/"), REST_CHECK_OTHER);
        ASSERT_EQ(rest_health_check_from_path("/liveness"), REST_CHECK_OTHER);
        ASSERT_STREQ(rest_health_check_to_string(REST_CHECK_READ_ONLY), "read-only");
        ASSERT_EQ(rest_health_check_from_string("read-only"), REST_CHECK_READ_ONLY);
        ASSERT_EQ(rest_health_check_from_string("nope"), -EINVAL);
}

static int64_t parse_int(const char *v, const char *unit) {
        int64_t r = 0;
        ASSERT_OK(rest_parse_int(v, unit, &r));
        return r;
}

TEST(parse_int_like_patroni) {
        /* patroni.utils.parse_int doctests and strtol/strtod corners */
        ASSERT_EQ(parse_int("1", NULL), 1);
        ASSERT_EQ(parse_int("1MB", "kB"), 1024);
        ASSERT_EQ(parse_int("1000 ms", "s"), 1);
        ASSERT_EQ(parse_int("4097.4kB", "kB"), 4097);
        ASSERT_EQ(parse_int("4097.5kB", "kB"), 4098);
        ASSERT_EQ(parse_int("0", NULL), 0);
        ASSERT_EQ(parse_int(" 0x400 ", "B"), 1024);
        ASSERT_EQ(parse_int("010", "B"), 8);
        ASSERT_EQ(parse_int("-0x10", "B"), -16);
        ASSERT_EQ(parse_int("1kB", "B"), 1024);
        ASSERT_EQ(parse_int("10MB", "B"), 10 * 1024 * 1024);
        ASSERT_EQ(parse_int("1GB", "B"), 1024LL * 1024 * 1024);
        ASSERT_EQ(parse_int("1TB", "B"), 1024LL * 1024 * 1024 * 1024);
        ASSERT_EQ(parse_int("1.5MB", "B"), 1572864);
        ASSERT_EQ(parse_int("1e3", "B"), 1000);
        ASSERT_EQ(parse_int(".5", NULL), 0); /* rint(0.5) = 0, half to even */
        ASSERT_EQ(parse_int("2.5", NULL), 2);
        ASSERT_EQ(parse_int("3.5", NULL), 4);
        ASSERT_EQ(parse_int("30", "s"), 30);
        ASSERT_EQ(parse_int("1min", "s"), 60);
        ASSERT_EQ(parse_int("1h", "s"), 3600);
        ASSERT_EQ(parse_int("1d", "s"), 86400);
        ASSERT_EQ(parse_int("500ms", "s"), 0);
        ASSERT_EQ(parse_int("1500ms", "s"), 2);
        ASSERT_EQ(parse_int("99999999999999999999999", "B"), INT64_MAX);
        ASSERT_EQ(parse_int("-99999999999999999999999", "B"), INT64_MIN);
        int64_t r;
        ASSERT_ERROR(rest_parse_int("1TB", "GB", &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("abc", "B", &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("", "B", &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("1 XB", "B", &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("1mb", "B", &r), EINVAL); /* units are case-sensitive */
        ASSERT_ERROR(rest_parse_int("-.5", NULL, &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("1.", NULL, &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("True", "s", &r), EINVAL);
        ASSERT_ERROR(rest_parse_int("1 e", "B", &r), EINVAL);
}

TEST(query_parse) {
        RestQuery q = {};

        ASSERT_OK(rest_query_parse("lag=1kB&tag_a=b+c&tag_x=%41&junk&tag_a=zzz&tag_e=&&tag_n=1", &q));
        ASSERT_TRUE(q.has_lag);
        ASSERT_EQ(q.lag, 1024);
        ASSERT_EQ(q.n_tags, 3);
        ASSERT_STREQ(q.tags[0].key, "a");
        ASSERT_STREQ(q.tags[0].value, "b c");
        ASSERT_STREQ(q.tags[1].key, "x");
        ASSERT_STREQ(q.tags[1].value, "A");
        ASSERT_STREQ(q.tags[2].key, "n");
        rest_query_done(&q);
        ASSERT_OK(rest_query_parse("lag=xyz", &q));
        ASSERT_FALSE(q.has_lag);
        ASSERT_OK(rest_query_parse("lag=%zz", &q));
        ASSERT_FALSE(q.has_lag);
        ASSERT_OK(rest_query_parse(NULL, &q));
        ASSERT_EQ(q.n_tags, 0);
        rest_query_done(&q);
}

TEST(postgres_version) {
        unsigned v;
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

        ASSERT_OK(rest_parse_postgres_version("9.5.3", &v, NULL));
        ASSERT_EQ(v, 90503);
        ASSERT_OK(rest_parse_postgres_version("10.1", &v, NULL));
        ASSERT_EQ(v, 100001);
        ASSERT_OK(rest_parse_postgres_version("15.2", &v, NULL));
        ASSERT_EQ(v, 150002);
        ASSERT_ERROR(rest_parse_postgres_version("10", &v, &e1), EINVAL);
        ASSERT_STREQ(e1, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10");
        ASSERT_ERROR(rest_parse_postgres_version("9.6", &v, &e2), EINVAL);
        ASSERT_STREQ(e2, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6");
        ASSERT_ERROR(rest_parse_postgres_version("a.b.c", &v, &e3), EINVAL);
        ASSERT_STREQ(e3, "Invalid PostgreSQL version: a.b.c");
        ASSERT_ERROR(rest_parse_postgres_version("1.2.3.4", &v, &e4), EINVAL);
        ASSERT_STREQ(e4, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 1.2.3.4");
        _cleanup_free_ char *e5 = NULL;
        ASSERT_ERROR(rest_parse_postgres_version("1.2.3.4.x", &v, &e5), EINVAL);
        ASSERT_STREQ(e5, "Invalid PostgreSQL version: 1.2.3.4.x");
}

TEST(timestamps) {
        usec_t t;

        ASSERT_OK(rest_parse_timestamp("2026-11-27T10:00:00+00:00", &t));
        ASSERT_U64_EQ(t, 1795773600ULL * USEC_PER_SEC);
        ASSERT_OK(rest_parse_timestamp("2026-11-27 11:00:00+01:00", &t));
        ASSERT_U64_EQ(t, 1795773600ULL * USEC_PER_SEC);
        ASSERT_OK(rest_parse_timestamp("2026-11-27T10:00Z", &t));
        ASSERT_U64_EQ(t, 1795773600ULL * USEC_PER_SEC);
        ASSERT_OK(rest_parse_timestamp("2026-11-27T10:00:00.5 UTC", &t));
        ASSERT_U64_EQ(t, 1795773600ULL * USEC_PER_SEC + 500000);
        ASSERT_OK(rest_parse_timestamp("2026-11-27T09:00:00-0100", &t));
        ASSERT_U64_EQ(t, 1795773600ULL * USEC_PER_SEC);
        ASSERT_OK(rest_parse_timestamp("1960-01-01T00:00:00Z", &t));
        ASSERT_U64_EQ(t, 0);
        ASSERT_ERROR(rest_parse_timestamp("2026-11-27T10:00:00", &t), ENOMSG);
        ASSERT_ERROR(rest_parse_timestamp("2026-11-27", &t), ENOMSG);
        ASSERT_ERROR(rest_parse_timestamp("tomorrow", &t), EINVAL);
        ASSERT_ERROR(rest_parse_timestamp("2026-02-30T10:00Z", &t), EINVAL);
        ASSERT_ERROR(rest_parse_timestamp("2026-11-27T25:00Z", &t), EINVAL);
}

static char *dumps(const cJSON *j) {
        char *s = NULL;
        ASSERT_OK(rest_json_dumps(j, &s, NULL));
        return s;
}

TEST(config_patch) {
        cJSON *config = cJSON_Parse(
                "{\"ttl\":30,\"loop_wait\":10,\"postgresql\":{\"parameters\":{\"max_connections\":100,"
                "\"work_mem\":\"4MB\"}},\"pause\":null}");
        cJSON *p1 = cJSON_Parse("{\"ttl\":\"30\"}");
        cJSON *p2 = cJSON_Parse(
                "{\"ttl\":10,\"postgresql\":{\"parameters\":{\"work_mem\":null,\"max_wal_senders\":5}},"
                "\"pause\":null,\"new\":{\"a\":1}}");
        _cleanup_free_ char *out = NULL;

        ASSERT_EQ(rest_config_patch(config, p1), 0); /* str(30) == str("30"): unchanged */
        ASSERT_EQ(rest_config_patch(config, p2), 1);
        out = dumps(config);
        ASSERT_STREQ(
                out,
                "{\"ttl\": 10, \"loop_wait\": 10, \"postgresql\": {\"parameters\": {\"max_connections\": "
                "100, "
                "\"max_wal_senders\": 5}}, \"new\": {\"a\": 1}}");
        cJSON_Delete(config);
        cJSON_Delete(p1);
        cJSON_Delete(p2);
}

TEST(python_json) {
        cJSON *j = cJSON_Parse(
                "{\"a\":[1,2.5,true,false,null,\"x\\\"y\\n\"],\"b\":{},\"c\":[],\"é\":\"ü€😀\",\"d\":1e20}");
        _cleanup_free_ char *out = dumps(j);
        ASSERT_STREQ(
                out,
                "{\"a\": [1, 2.5, true, false, null, \"x\\\"y\\n\"], \"b\": {}, \"c\": [], \"\\u00e9\": "
                "\"\\u00fc\\u20ac\\ud83d\\ude00\", \"d\": 1e+20}");
        cJSON_Delete(j);
}

TEST(python_float_and_datetime) {
        char buf[64];

        ASSERT_STREQ(format_python_float(1795723600.220474, buf), "1795723600.220474");
        ASSERT_STREQ(format_python_float(1.5, buf), "1.5");
        ASSERT_STREQ(format_python_float(1.0, buf), "1.0");
        ASSERT_STREQ(format_python_float(0.1, buf), "0.1");
        ASSERT_STREQ(format_python_float(0.0001, buf), "0.0001");
        ASSERT_STREQ(format_python_float(0.00001, buf), "1e-05");
        ASSERT_STREQ(format_python_float(1e16, buf), "1e+16");
        ASSERT_STREQ(format_python_float(1e15, buf), "1000000000000000.0");
        ASSERT_STREQ(format_python_float(-2.5e-7, buf), "-2.5e-07");
        ASSERT_STREQ(format_python_float(1795723621.9, buf), "1795723621.9");
        ASSERT_STREQ(format_python_datetime(1795723600220474ULL, buf), "2026-11-26 20:06:40.220474+00:00");
        ASSERT_STREQ(format_python_datetime(1795723600000000ULL, buf), "2026-11-26 20:06:40+00:00");
}

/* The observed Patroni 3.0.2 documents of patroni-compat.md §3.4, rebuilt from snapshots. */
TEST(status_document_primary) {
        NodeSnapshot s = load(
                "{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":false,"
                "\"postmaster_start_time\":1795723600.220474,\"server_version\":150020,\"xlog_location\":"
                "50331744,"
                "\"timeline\":1,\"replication\":[{\"usename\":\"replicator\",\"application_name\":\"node2\","
                "\"client_addr\":\"127.0.0.1\",\"state\":\"streaming\",\"sync_state\":\"async\",\"sync_"
                "priority\":0}],"
                "\"is_leader\":true,\"cluster_view\":true,\"leader_name\":\"node1\",\"dcs_last_seen\":"
                "1795723645,"
                "\"tags\":{\"mytag\":\"hello\",\"nofailover\":false},"
                "\"database_system_identifier\":\"7712574132163962109\"}");
        cJSON *doc = NULL;
        _cleanup_free_ char *out = NULL;

        ASSERT_OK(snapshot_status_json(&s, NOW, &doc));
        out = dumps(doc);
        ASSERT_STREQ(
                out,
                "{\"state\": \"running\", \"postmaster_start_time\": \"2026-11-26 20:06:40.220474+00:00\", "
                "\"role\": \"master\", \"server_version\": 150020, \"xlog\": {\"location\": 50331744}, "
                "\"timeline\": 1, \"replication\": [{\"usename\": \"replicator\", \"application_name\": "
                "\"node2\", \"client_addr\": \"127.0.0.1\", \"state\": \"streaming\", \"sync_state\": "
                "\"async\", \"sync_priority\": 0}], \"dcs_last_seen\": 1795723645, \"tags\": {\"mytag\": "
                "\"hello\"}, \"database_system_identifier\": \"7712574132163962109\", \"patroni\": "
                "{\"version\": \"3.0.2\", \"scope\": \"demo\"}}");
        cJSON_Delete(doc);
        snapshot_done(&s);
}

TEST(status_document_replica) {
        NodeSnapshot s =
                load("{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"replica\",\"in_recovery\":true,"
                     "\"postmaster_start_time\":1795723670.821318,\"server_version\":150020,"
                     "\"received_location\":83886848,\"replayed_location\":83886848,"
                     "\"replayed_timestamp\":1795723687.048036,\"timeline\":2,\"cluster_view\":true,"
                     "\"leader_name\":\"node1\",\"synchronous_mode\":true,\"sync_member\":true,"
                     "\"dcs_last_seen\":1795723692,\"tags\":{\"mytag\":\"hello\"},"
                     "\"database_system_identifier\":\"7712574132163962109\"}");
        cJSON *doc = NULL;
        _cleanup_free_ char *out = NULL;

        ASSERT_OK(snapshot_status_json(&s, NOW, &doc));
        out = dumps(doc);
        ASSERT_STREQ(
                out,
                "{\"state\": \"running\", \"postmaster_start_time\": \"2026-11-26 20:07:50.821318+00:00\", "
                "\"role\": \"replica\", \"server_version\": 150020, \"xlog\": {\"received_location\": "
                "83886848, \"replayed_location\": 83886848, \"replayed_timestamp\": \"2026-11-26 "
                "20:08:07.048036+00:00\", \"paused\": false}, \"sync_standby\": true, \"timeline\": 2, "
                "\"dcs_last_seen\": 1795723692, \"tags\": {\"mytag\": \"hello\"}, "
                "\"database_system_identifier\": \"7712574132163962109\", \"patroni\": {\"version\": "
                "\"3.0.2\", \"scope\": \"demo\"}}");
        cJSON_Delete(doc);
        snapshot_done(&s);
}

TEST(status_document_quorum_vote) {
        /* A detached quorum voter says so; the leader race reads it back with ha_member_api_parse(). */
        NodeSnapshot s =
                load("{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"replica\",\"in_recovery\":true,"
                     "\"received_location\":83886848,\"replayed_location\":83886800,\"timeline\":1,"
                     "\"cluster_view\":true,\"synchronous_mode\":true,\"quorum_mode\":true,"
                     "\"sync_member\":true,\"upstream_detached\":true}");
        cJSON *doc = NULL;
        _cleanup_free_ char *out = NULL;
        HaMemberApi api;

        ASSERT_OK(snapshot_status_json(&s, NOW, &doc));
        out = dumps(doc);
        ASSERT_TRUE(strstr(out, "\"upstream_detached\": true") != NULL);
        ASSERT_OK(ha_member_api_parse(out, strlen(out), &api));
        ASSERT_TRUE(api.upstream_detached && api.in_recovery && api.wal_position == 83886848);
        cJSON_Delete(doc);
        out = mfree(out);

        /* Attached (the default): no field, no vote. */
        s.upstream_detached = false;
        ASSERT_OK(snapshot_status_json(&s, NOW, &doc));
        out = dumps(doc);
        ASSERT_TRUE(strstr(out, "upstream_detached") == NULL);
        ASSERT_OK(ha_member_api_parse(out, strlen(out), &api));
        ASSERT_FALSE(api.upstream_detached);
        cJSON_Delete(doc);
        snapshot_done(&s);
}

TEST(status_document_down_and_flags) {
        NodeSnapshot s =
                load("{\"scope\":\"demo\",\"name\":\"node3\",\"state\":\"running\",\"status_ok\":false,"
                     "\"role\":\"replica\","
                     "\"cluster_view\":false,\"dcs_last_seen\":5,\"pending_restart\":true,\"watchdog_"
                     "failed\":true,"
                     "\"paused\":true,\"failsafe_active\":true,\"disable_sync\":true,"
                     "\"scheduled_restart\":{\"schedule\":\"2026-11-27T10:00:00+00:00\",\"postmaster_start_"
                     "time\":\"x\","
                     "\"role\":\"replica\"}}");
        cJSON *doc = NULL;
        _cleanup_free_ char *out = NULL;

        ASSERT_OK(snapshot_status_json(&s, NOW, &doc));
        out = dumps(doc);
        ASSERT_STREQ(
                out,
                "{\"state\": \"unknown\", \"role\": \"replica\", \"cluster_unlocked\": true, "
                "\"failsafe_mode_is_active\": true, \"dcs_last_seen\": 5, \"tags\": {\"nosync\": true}, "
                "\"pending_restart\": true, \"patroni\": {\"version\": \"3.0.2\", \"scope\": \"demo\", "
                "\"name\": \"node3\"}, \"scheduled_restart\": {\"schedule\": \"2026-11-27T10:00:00+00:00\", "
                "\"role\": \"replica\"}, \"watchdog_failed\": true, \"pause\": true}");
        cJSON_Delete(doc);
        snapshot_done(&s);
}

TEST(snapshot_load_errors) {
        NodeSnapshot s = {};
        _cleanup_free_ char *err = NULL, *err2 = NULL;
        cJSON *j = cJSON_Parse("{\"state\":\"running\",\"bogus\":1}");
        cJSON *k = cJSON_Parse("{\"role\":\"captain\"}");

        ASSERT_ERROR(snapshot_load_json(j, NOW, &s, &err), EINVAL);
        ASSERT_STREQ(err, "unknown snapshot key \"bogus\"");
        ASSERT_ERROR(snapshot_load_json(k, NOW, &s, &err2), EINVAL);
        ASSERT_STREQ(err2, "bad value for snapshot key \"role\"");
        cJSON_Delete(j);
        cJSON_Delete(k);
}

DEFINE_TEST_MAIN
