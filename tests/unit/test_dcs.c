/* SPDX-License-Identifier: MIT */
/*
 * The cluster view parser: a recorded range of a cluster written in Patroni's layout, and every value
 * form Patroni 3.0.2 tolerates (patroni-compat.md §1.2): invalid JSON, legacy formats, missing fields.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pgha/dcs.h"
#include "pgha/fileio.h"
#include "pgha/json.h"
#include "tests.h"

static DcsCluster *parse_fixture(const char *name) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        DcsCluster *c = NULL;
        EtcdKv *kvs = NULL;
        size_t n = 0;
        int64_t rev = 0;

        ASSERT_TRUE(asprintf(&path, "%s/etcd/%s", PGHA_FIXTURES_DIR, name) > 0);
        ASSERT_OK(read_full_file(path, 1 << 20, &data, NULL));
        ASSERT_OK(json_parse_string(data, &j));
        ASSERT_OK(etcd_range_parse(j, &kvs, &n, &rev));
        ASSERT_OK(dcs_cluster_parse("/service/batman/", kvs, n, rev, &c));
        etcd_kvs_free(kvs, n);
        return c;
}

TEST(recorded_cluster) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = parse_fixture("range-cluster.json");
        const DcsMember *m;
        int64_t ttl;

        ASSERT_TRUE(c->has_initialize);
        ASSERT_STREQ(c->initialize, "7712574132163962109");
        ASSERT_STREQ(c->leader, "node1");
        ASSERT_TRUE(c->leader_lease > 0);
        ASSERT_TRUE(c->leader_revision > 0);
        ASSERT_OK(json_get_int64(c->config, "ttl", &ttl));
        ASSERT_EQ(ttl, 30);
        ASSERT_TRUE(c->config_revision > 0);
        ASSERT_EQ(c->n_members, 2);
        m = dcs_cluster_find_member(c, "node2");
        ASSERT_NOT_NULL(m);
        ASSERT_STREQ(m->role, "replica");
        ASSERT_STREQ(m->state, "running");
        ASSERT_STREQ(m->conn_url, "postgres://127.0.0.1:25433/postgres");
        ASSERT_STREQ(m->api_url, "http://127.0.0.1:28009/patroni");
        ASSERT_STREQ(m->version, "3.0.2");
        ASSERT_TRUE(m->has_xlog_location);
        ASSERT_EQ(m->xlog_location, 83886752);
        ASSERT_EQ(m->timeline, 2);
        ASSERT_EQ(m->checkpoint_after_promote, -1);
        ASSERT_STREQ(cJSON_GetObjectItem(m->tags, "mytag")->valuestring, "hello");
        ASSERT_TRUE(c->has_status);
        ASSERT_EQ(dcs_cluster_optime(c), 83886752);
        ASSERT_STREQ(c->sync_leader, "node1");
        ASSERT_TRUE(dcs_cluster_is_sync_standby(c, "node2"));
        ASSERT_FALSE(dcs_cluster_is_sync_standby(c, "node1"));
        ASSERT_FALSE(c->has_failover); /* {} means none */
        ASSERT_TRUE(c->failover_revision > 0);
        ASSERT_EQ(c->history_timeline, 2);
        ASSERT_STREQ(
                cJSON_GetObjectItem(c->failsafe, "node1")->valuestring, "http://127.0.0.1:28008/patroni");
}

TEST(recorded_bootstrapping) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = parse_fixture("range-cluster-bootstrapping.json");

        /* initialize with an omitted (empty) value: bootstrap in progress, not "absent". */
        ASSERT_TRUE(c->has_initialize);
        ASSERT_STREQ(c->initialize, "");
        ASSERT_NULL(c->leader);
}

#define KV(k, v, rev)                                                                                   \
        {                                                                                               \
                .key = (char *)"/service/batman/" k, .value = (char *)(v), .value_size = sizeof(v) - 1, \
                .mod_revision = (rev)                                                                   \
        }

/* Member keys beyond DCS_MEMBERS_MAX are counted, never dropped unnoticed (the HA engine logs them). */
TEST(members_beyond_the_cap_are_counted) {
        size_t n = DCS_MEMBERS_MAX + 6;
        EtcdKv *kvs = calloc(n, sizeof(EtcdKv));
        char **names = calloc(n, sizeof(char *));
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;

        ASSERT_NOT_NULL(kvs);
        ASSERT_NOT_NULL(names);
        for (size_t i = 0; i < n; i++) {
                ASSERT_TRUE(asprintf(&names[i], "/service/batman/members/m%04zu", i) > 0);
                kvs[i] =
                        (EtcdKv){.key = names[i], .value = (char *)"{}", .value_size = 2, .mod_revision = 2};
        }
        ASSERT_OK(dcs_cluster_parse("/service/batman/", kvs, n, 5, &c));
        ASSERT_EQ(c->n_members, DCS_MEMBERS_MAX);
        ASSERT_EQ(c->n_members_ignored, 6);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(kvs);
}

TEST(tolerant_values) {
        EtcdKv kvs[] = {
                KV("config", "{not json", 5),
                KV("members/a",
                   "{\"conn_url\":1,\"role\":\"master\",\"xlog_location\":\"12\",\"timeline\":\"x\","
                   "\"checkpoint_after_promote\":false,\"pending_restart\":true,\"tags\":[]}",
                   6),
                KV("members/b", "not json at all", 7),
                KV("members/legacy", "postgres://u:p@h:5432/db?application_name=http://h:8008/patroni", 8),
                KV("members/x/y", "{}", 9),
                KV("members/", "{}", 9),
                KV("status", "{\"optime\":\"123\",\"slots\":{\"s\":5}}", 10),
                KV("optime/leader", "999", 11),
                KV("sync", "{\"leader\":\"a\",\"sync_standby\":\" b , c,,\"}", 12),
                KV("failover", "a:b", 13),
                KV("history", "nope", 14),
                KV("failsafe", "[1]", 15),
                KV("unrelated", "x", 16),
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const DcsMember *m;

        ASSERT_OK(dcs_cluster_parse("/service/batman/", kvs, ELEMENTSOF(kvs), 20, &c));
        ASSERT_TRUE(cJSON_IsObject(c->config));
        ASSERT_NULL(c->config->child);
        ASSERT_EQ(c->config_revision, 0); /* invalid config counts as index 0 */
        ASSERT_FALSE(c->has_initialize);
        ASSERT_EQ(c->n_members, 3);

        m = dcs_cluster_find_member(c, "a");
        ASSERT_NULL(m->conn_url); /* wrong type: ignored */
        ASSERT_STREQ(m->role, "master");
        ASSERT_TRUE(m->has_xlog_location);
        ASSERT_EQ(m->xlog_location, 12);
        ASSERT_FALSE(m->has_timeline);
        ASSERT_EQ(m->checkpoint_after_promote, 0);
        ASSERT_TRUE(m->pending_restart);
        ASSERT_NULL(m->tags);

        m = dcs_cluster_find_member(c, "b");
        ASSERT_TRUE(cJSON_IsObject(m->data));
        ASSERT_NULL(m->role);

        m = dcs_cluster_find_member(c, "legacy");
        ASSERT_STREQ(m->conn_url, "postgres://u:p@h:5432/db?application_name=http://h:8008/patroni");
        ASSERT_STREQ(m->api_url, "http://h:8008/patroni");

        ASSERT_EQ(c->status_optime, 123);
        ASSERT_EQ(dcs_cluster_optime(c), 123); /* status wins over optime/leader */
        ASSERT_EQ(c->optime_leader, 999);
        ASSERT_STREQ(c->sync_leader, "a");
        ASSERT_STREQ(c->sync_standby[0], "b");
        ASSERT_STREQ(c->sync_standby[1], "c");
        ASSERT_NULL(c->sync_standby[2]);
        ASSERT_TRUE(c->has_failover);
        ASSERT_STREQ(c->failover_leader, "a");
        ASSERT_STREQ(c->failover_member, "b");
        ASSERT_TRUE(cJSON_IsArray(c->history));
        ASSERT_EQ(c->history_timeline, 0); /* invalid JSON: Patroni's Cluster.timeline is 0 */
        ASSERT_NULL(c->failsafe);

        ASSERT_OK(dcs_cluster_to_json(c, &j));
        ASSERT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(j, "members")));
}

TEST(more_edge_values) {
        EtcdKv kvs[] = {
                KV("status", "[]", 1),
                KV("optime/leader", "12x", 2),
                KV("sync", "", 3),
                KV("failover", "{\"scheduled_at\":\"2026-01-01T00:00:00+00:00\"}", 4),
                KV("history", "[[3,100,\"r\"],[\"x\"]]", 5),
                KV("leader", "", 6),
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;

        ASSERT_OK(dcs_cluster_parse("/service/batman/", kvs, ELEMENTSOF(kvs), 20, &c));
        ASSERT_TRUE(c->has_status);
        ASSERT_EQ(c->status_optime, 0);
        ASSERT_EQ(c->optime_leader, 0);
        ASSERT_TRUE(c->has_sync);
        ASSERT_NULL(c->sync_leader);
        ASSERT_NULL(c->sync_standby[0]);
        ASSERT_FALSE(c->has_failover); /* scheduled_at alone is no failover */
        ASSERT_STREQ(c->failover_scheduled_at, "2026-01-01T00:00:00+00:00");
        ASSERT_EQ(c->history_timeline, 0); /* last line has no integer timeline: 0, as Patroni */
        ASSERT_STREQ(c->leader, "");
}

/* The failover and history values of Patroni 3.0.2's own tolerance rules; every expectation below is
 * what Failover.from_node() and Cluster.timeline answer for the same value (checked with Patroni). */
TEST(patroni_failover_and_timeline_parity) {
        static const struct {
                const char *value;
                int64_t timeline;
        } histories[] = {
                {"[]", 1},
                {" []", 0},
                {"nope", 0},
                {"", 0},
                {"{}", 0},
                {"[[3,100,\"r\"],[\"x\"]]", 0},
                {"[[\"3\"]]", 4},
                {"[[3.7]]", 4},
                {"[[true]]", 2},
                {"[[\" 4 \"]]", 5},
                {"[[\"3.5\"]]", 0},
                {"[\"12\"]", 2}, /* lines[-1][0] of a string is its first character */
                {"[\"x\"]", 0},
                {"[[]]", 0},
                {"[7]", 0},
                {"[{\"a\":1}]", 0},
                {"[[1,2],[5,3]]", 6},
                {"[[\"+6\"]]", 7},
                {"[[null]]", 0},
                {"[[1e3]]", 1001},
                {"[[-3]]", 0}, /* Patroni: -2; pgha takes a negative timeline as unparsable */
        };
        static const struct {
                const char *value;
                bool has;
                const char *leader, *member;
        } failovers[] = {
                {"a:b", true, "a", "b"},
                {" a : b ", true, "a", "b"},
                {"a", true, "a", NULL},
                {"a:b:c", true, "a", "b"},
                {":b", true, "", "b"},
                {"a:", true, "a", ""},
                {"a :", true, "a", ""},
                {"   ", false, NULL, NULL},
                {":", false, NULL, NULL},
                {"5", false, NULL, NULL},
                {"\"a:b\"", false, NULL, NULL},
                {"[1]", false, NULL, NULL},
                {"{\"leader\":\"x\"}", true, "x", NULL},
        };

        for (size_t i = 0; i < ELEMENTSOF(histories); i++) {
                _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
                EtcdKv kv = {
                        .key = (char *)"/service/batman/history",
                        .value = (char *)histories[i].value,
                        .value_size = strlen(histories[i].value),
                        .mod_revision = 3,
                };

                ASSERT_OK(dcs_cluster_parse("/service/batman/", &kv, 1, 5, &c));
                if (c->history_timeline != histories[i].timeline)
                        TEST_FAIL(
                                "history %s: timeline %" PRIi64 ", expected %" PRIi64,
                                histories[i].value,
                                c->history_timeline,
                                histories[i].timeline);
                ASSERT_TRUE(cJSON_IsArray(c->history));
        }
        {
                _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;

                ASSERT_OK(dcs_cluster_parse("/service/batman/", NULL, 0, 5, &c));
                ASSERT_EQ(c->history_timeline, 0); /* no history key */
        }
        for (size_t i = 0; i < ELEMENTSOF(failovers); i++) {
                _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
                EtcdKv kv = {
                        .key = (char *)"/service/batman/failover",
                        .value = (char *)failovers[i].value,
                        .value_size = strlen(failovers[i].value),
                        .mod_revision = 3,
                };

                ASSERT_OK(dcs_cluster_parse("/service/batman/", &kv, 1, 5, &c));
                if (c->has_failover != failovers[i].has ||
                    (failovers[i].has && !streq_ptr(c->failover_leader, failovers[i].leader)) ||
                    (failovers[i].has && !streq_ptr(c->failover_member, failovers[i].member)))
                        TEST_FAIL(
                                "failover '%s': has %d leader '%s' member '%s'",
                                failovers[i].value,
                                c->has_failover,
                                strna(c->failover_leader),
                                strna(c->failover_member));
        }
}

DEFINE_TEST_MAIN
