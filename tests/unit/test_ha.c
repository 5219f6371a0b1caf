/* SPDX-License-Identifier: MIT */
/* Unit tests of the HA engine's pure helpers: member key value, GET /patroni parsing, the DCS part of
 * HaFacts from a parsed cluster, and the timeline divergence check. */
#include <string.h>

#include "pgha/dcs.h"
#include "pgha/ha.h"
#include "pgha/json.h"
#include "tests.h"

#define KV(k, v, rev)                                                                                 \
        (EtcdKv) {                                                                                    \
                .key = (char *)"/service/demo/" k, .value = (char *)(v), .value_size = sizeof(v) - 1, \
                .mod_revision = (rev)                                                                 \
        }

static char *compact(const cJSON *j) {
        char *s = NULL;
        if (json_print_compact(j, &s) < 0)
                return NULL;
        return s;
}

TEST(member_key_replica_running) {
        _cleanup_(cJSON_Deletep) cJSON *tags = NULL, *j = NULL;
        _cleanup_free_ char *s = NULL;
        HaMemberKeyInfo i = {
                .conn_url = "postgres://127.0.0.1:5432/postgres",
                .api_url = "http://127.0.0.1:8008/patroni",
                .state = "running",
                .role = "replica",
                .version = "3.0.2",
                .has_xlog = true,
                .xlog_location = 67108864,
                .timeline = 2,
        };

        ASSERT_OK(json_parse_string("{\"nofailover\":true}", &tags));
        i.tags = tags;
        ASSERT_OK(ha_member_key_json(&i, &j));
        s = compact(j);
        ASSERT_STREQ(
                s,
                "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:8008/"
                "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"tags\":{"
                "\"nofailover\":true},\"xlog_location\":67108864,\"timeline\":2}");
}

TEST(member_key_optional_fields) {
        _cleanup_(cJSON_Deletep) cJSON *empty = cJSON_CreateObject(), *j = NULL;
        _cleanup_free_ char *s = NULL;
        HaMemberKeyInfo i = {
                .conn_url = "c",
                .api_url = "a",
                .state = "stopped",
                .role = "master",
                .version = "3.0.2",
                .tags = empty,
                .checkpoint_pending = true,
                .pending_restart = true,
                .pause = true,
        };

        ASSERT_OK(ha_member_key_json(&i, &j));
        s = compact(j);
        /* no xlog while stopped, empty tags omitted, checkpoint_after_promote only false */
        ASSERT_STREQ(
                s,
                "{\"conn_url\":\"c\",\"api_url\":\"a\",\"state\":\"stopped\",\"role\":\"master\","
                "\"version\":"
                "\"3.0.2\",\"checkpoint_after_promote\":false,\"pending_restart\":true,\"pause\":true}");
        i.state = NULL;
        ASSERT_ERROR(ha_member_key_json(&i, &j), EINVAL);
}

TEST(member_key_scheduled_restart) {
        _cleanup_(cJSON_Deletep) cJSON *sr = NULL, *j = NULL;
        _cleanup_free_ char *s = NULL;
        HaMemberKeyInfo i = {
                .conn_url = "c",
                .api_url = "a",
                .state = "running",
                .role = "replica",
                .version = "3.0.2",
                .has_xlog = true,
                .xlog_location = 5,
                .timeline = 1,
                .pause = true,
        };

        ASSERT_OK(json_parse_string(
                "{\"postgres_version\":\"99.1\",\"schedule\":\"2026-11-27T10:00:00+00:00\","
                "\"postmaster_start_time\":\"2026-11-27 09:00:00.1+00:00\"}",
                &sr));
        i.scheduled_restart = sr;
        ASSERT_OK(ha_member_key_json(&i, &j));
        s = compact(j);
        /* after xlog_location and timeline, before pause, as Patroni's touch_member() builds it */
        ASSERT_STREQ(
                s,
                "{\"conn_url\":\"c\",\"api_url\":\"a\",\"state\":\"running\",\"role\":\"replica\","
                "\"version\":\"3.0.2\",\"xlog_location\":5,\"timeline\":1,\"scheduled_restart\":{"
                "\"postgres_version\":\"99.1\",\"schedule\":\"2026-11-27T10:00:00+00:00\","
                "\"postmaster_start_time\":\"2026-11-27 09:00:00.1+00:00\"},\"pause\":true}");
}

TEST(member_api_parse) {
        static const char primary[] =
                "{\"state\":\"running\",\"role\":\"master\",\"xlog\":{\"location\":100},\"timeline\":3,"
                "\"tags\":{\"nofailover\":true}}";
        static const char replica[] =
                "{\"state\":\"running\",\"role\":\"replica\",\"xlog\":{\"received_location\":50,"
                "\"replayed_location\":70},\"timeline\":2,\"watchdog_failed\":true}";
        static const char bare[] = "{\"state\":\"stopped\",\"role\":\"replica\"}";
        HaMemberApi a;

        ASSERT_OK(ha_member_api_parse(primary, strlen(primary), &a));
        ASSERT_EQ(a.fetch, HA_FETCH_OK);
        ASSERT_FALSE(a.in_recovery);
        ASSERT_TRUE(a.has_wal_position);
        ASSERT_U64_EQ(a.wal_position, 100);
        ASSERT_EQ(a.timeline, 3);
        ASSERT_TRUE(a.nofailover);

        ASSERT_OK(ha_member_api_parse(replica, strlen(replica), &a));
        ASSERT_TRUE(a.in_recovery);
        ASSERT_U64_EQ(a.wal_position, 70);
        ASSERT_TRUE(a.watchdog_failed);
        ASSERT_FALSE(a.nofailover);

        ASSERT_OK(ha_member_api_parse(bare, strlen(bare), &a));
        ASSERT_FALSE(a.has_wal_position);

        ASSERT_ERROR(ha_member_api_parse("<html>", 6, &a), EINVAL);
        ASSERT_ERROR(ha_member_api_parse("[1]", 3, &a), EINVAL);
}

TEST(facts_from_cluster) {
        EtcdKv kvs[] = {
                KV("initialize", "7301234567890123456", 2),
                KV("config", "{\"ttl\":6}", 3),
                KV("leader", "node1", 4),
                KV("members/node1",
                   "{\"conn_url\":\"postgres://127.0.0.1:1/postgres\",\"api_url\":\"http://127.0.0.1:2/"
                   "patroni\","
                   "\"state\":\"running\",\"role\":\"master\",\"xlog_location\":500,\"timeline\":2,"
                   "\"checkpoint_after_promote\":false}",
                   5),
                KV("members/node2",
                   "{\"api_url\":\"http://127.0.0.1:3/patroni\",\"state\":\"starting\",\"role\":\"replica\","
                   "\"tags\":{\"nofailover\":true,\"replicatefrom\":\"node1\"}}",
                   6),
                KV("status", "{\"optime\":480}", 7),
                KV("failover", "{\"leader\":\"node1\",\"member\":\"node2\"}", 8),
                KV("sync", "{\"leader\":\"node1\",\"sync_standby\":\"node2\"}", 9),
                KV("history", "[[1,1000,\"no recovery target specified\"]]", 10),
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
        HaMemberApi api[2] = {
                {.fetch = HA_FETCH_NOT_ASKED},
                {.fetch = HA_FETCH_OK, .in_recovery = true, .has_wal_position = true, .wal_position = 470},
        };
        HaFacts f = {};

        ASSERT_OK(dcs_cluster_parse("/service/demo/", kvs, ELEMENTSOF(kvs), 20, &c));
        f.dcs.bootstrap_won = true;
        f.dcs.config.ttl = 6 * USEC_PER_SEC;
        ha_facts_fill_dcs(&f, c, api, 1000 * USEC_PER_SEC, 2000000 * USEC_PER_SEC);

        ASSERT_TRUE(f.dcs.reachable);
        ASSERT_TRUE(f.dcs.bootstrap_won);              /* kept */
        ASSERT_EQ(f.dcs.config.ttl, 6 * USEC_PER_SEC); /* kept: filled by the caller */
        ASSERT_EQ(f.dcs.initialize, HA_INITIALIZE_SYSID);
        ASSERT_U64_EQ(f.dcs.initialize_sysid, 7301234567890123456ULL);
        ASSERT_STREQ(f.dcs.leader.name, "node1");
        ASSERT_U64_EQ(f.dcs.leader.optime, 480);
        ASSERT_TRUE(f.dcs.leader.checkpoint_pending);
        ASSERT_EQ(f.dcs.n_members, 2);
        ASSERT_STREQ(f.dcs.members[0].name, "node1");
        ASSERT_EQ(f.dcs.members[0].role, HA_ROLE_PRIMARY);
        ASSERT_EQ(f.dcs.members[0].state, HA_PG_RUNNING);
        ASSERT_U64_EQ(f.dcs.members[0].xlog_location, 500);
        ASSERT_EQ(f.dcs.members[0].timeline, 2);
        ASSERT_EQ(f.dcs.members[0].api.fetch, HA_FETCH_NOT_ASKED);
        ASSERT_EQ(f.dcs.members[1].state, HA_PG_STARTING);
        ASSERT_FALSE(f.dcs.members[1].has_api_url == false);
        ASSERT_TRUE(f.dcs.members[1].tags.nofailover);
        ASSERT_STREQ(f.dcs.members[1].tags.replicatefrom, "node1");
        ASSERT_EQ(f.dcs.members[1].api.fetch, HA_FETCH_OK);
        ASSERT_U64_EQ(f.dcs.members[1].api.wal_position, 470);
        ASSERT_TRUE(f.dcs.failover.present);
        ASSERT_STREQ(f.dcs.failover.leader, "node1");
        ASSERT_STREQ(f.dcs.failover.member, "node2");
        ASSERT_FALSE(f.dcs.failover.has_scheduled_at);
        ASSERT_TRUE(f.dcs.sync.present);
        ASSERT_EQ(f.dcs.sync.n_standbys, 1);
        ASSERT_STREQ(f.dcs.sync.standbys[0], "node2");
        ASSERT_EQ(f.dcs.history_timeline, 2);

        /* unreachable: nothing from keys, but the caller's config and the outage start survive */
        f.dcs.unreachable_since = 5;
        ha_facts_fill_dcs(&f, NULL, NULL, 1, 1);
        ASSERT_FALSE(f.dcs.reachable);
        ASSERT_EQ(f.dcs.unreachable_since, 5);
        ASSERT_NULL(f.dcs.leader.name);
        ASSERT_EQ(f.dcs.n_members, 0);
        ASSERT_EQ(f.dcs.config.ttl, 6 * USEC_PER_SEC);
}

/* The failsafe key names the members that may race in failsafe mode: contains_us says whether it names
 * this node (it was never set, so every node counted as unlisted and no failover could happen). */
TEST(facts_failsafe_topology) {
        EtcdKv kvs[] = {
                KV("failsafe",
                   "{\"node1\":\"http://127.0.0.1:2/patroni\",\"node2\":\"http://127.0.0.1:3/patroni\"}",
                   2),
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
        HaFacts f = {.node.name = "node2"};

        ASSERT_OK(dcs_cluster_parse("/service/demo/", kvs, ELEMENTSOF(kvs), 20, &c));
        ha_facts_fill_dcs(&f, c, NULL, 1, 1);
        ASSERT_TRUE(f.dcs.failsafe.present);
        ASSERT_TRUE(f.dcs.failsafe.contains_us);
        f = (HaFacts){.node.name = "node3"};
        ha_facts_fill_dcs(&f, c, NULL, 1, 1);
        ASSERT_TRUE(f.dcs.failsafe.present);
        ASSERT_FALSE(f.dcs.failsafe.contains_us);
}

TEST(facts_initialize_and_schedule) {
        EtcdKv kvs[] = {
                KV("initialize", "", 2),
                KV("failover", "{\"leader\":\"a\",\"scheduled_at\":\"2026-01-01T00:00:10+00:00\"}", 3),
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
        HaFacts f = {};
        usec_t real = 1767225600ULL * USEC_PER_SEC; /* 2026-01-01T00:00:00Z */

        ASSERT_OK(dcs_cluster_parse("/service/demo/", kvs, ELEMENTSOF(kvs), 20, &c));
        ha_facts_fill_dcs(&f, c, NULL, 100 * USEC_PER_SEC, real);
        ASSERT_EQ(f.dcs.initialize, HA_INITIALIZE_EMPTY);
        ASSERT_NULL(f.dcs.leader.name);
        ASSERT_TRUE(f.dcs.failover.present);
        ASSERT_TRUE(f.dcs.failover.has_scheduled_at);
        ASSERT_EQ(
                f.dcs.failover.scheduled_at,
                110 * USEC_PER_SEC); /* 10 s after now, on the monotonic clock */
        ASSERT_EQ(f.dcs.history_timeline, 0);
}

TEST(divergence) {
        _cleanup_(cJSON_Deletep) cJSON *h = NULL;

        ASSERT_OK(json_parse_string("[[1,1000,\"r\"],[2,5000,\"r\"]]", &h));
        ASSERT_EQ(ha_divergence(0, 10, 2, h), HA_DIVERGENCE_UNKNOWN);
        ASSERT_EQ(ha_divergence(2, 10, 0, h), HA_DIVERGENCE_UNKNOWN);
        ASSERT_EQ(ha_divergence(3, 10, 3, h), HA_DIVERGENCE_NONE);
        ASSERT_EQ(ha_divergence(4, 10, 3, h), HA_DIVERGENCE_DIVERGED); /* ahead of the leader */
        ASSERT_EQ(ha_divergence(1, 999, 3, h), HA_DIVERGENCE_NONE);    /* stopped before the switch */
        ASSERT_EQ(ha_divergence(1, 1000, 3, h), HA_DIVERGENCE_NONE);   /* exactly at it */
        ASSERT_EQ(ha_divergence(1, 1001, 3, h), HA_DIVERGENCE_DIVERGED);
        ASSERT_EQ(ha_divergence(2, 6000, 3, h), HA_DIVERGENCE_DIVERGED);
        ASSERT_EQ(
                ha_divergence(2, 4000, 3, NULL),
                HA_DIVERGENCE_DIVERGED); /* no history: let pg_rewind decide */
}

TEST(divergence_of_a_running_replica) {
        _cleanup_(cJSON_Deletep) cJSON *h = NULL;

        ASSERT_OK(json_parse_string("[[1,1000,\"r\"],[2,5000,\"r\"]]", &h));
        ASSERT_EQ(ha_divergence_replica(3, 10, 3, h), HA_DIVERGENCE_NONE);       /* follows the leader */
        ASSERT_EQ(ha_divergence_replica(1, 999, 3, h), HA_DIVERGENCE_NONE);      /* behind the switch */
        ASSERT_EQ(ha_divergence_replica(1, 1000, 3, h), HA_DIVERGENCE_NONE);     /* exactly at it */
        ASSERT_EQ(ha_divergence_replica(1, 1001, 3, h), HA_DIVERGENCE_DIVERGED); /* replayed past it */
        ASSERT_EQ(ha_divergence_replica(4, 10, 3, h), HA_DIVERGENCE_DIVERGED);   /* ahead of the leader */
        /* no replay position yet, or a switch the history does not record yet: leave it alone */
        ASSERT_EQ(ha_divergence_replica(1, 0, 3, h), HA_DIVERGENCE_UNKNOWN);
        ASSERT_EQ(ha_divergence_replica(2, 6000, 4, h), HA_DIVERGENCE_DIVERGED);
        ASSERT_EQ(ha_divergence_replica(3, 6000, 4, h), HA_DIVERGENCE_UNKNOWN);
        ASSERT_EQ(ha_divergence_replica(1, 4000, 3, NULL), HA_DIVERGENCE_UNKNOWN);
}

DEFINE_TEST_MAIN
