/* SPDX-License-Identifier: MIT */
/*
 * Synchronous standby selection (ha_sync_select) and the synchronous_standby_names syntax: order,
 * exclusions (nosync, not running, not streaming, lag), node count, and the confirmation rule that keeps
 * a standby out of the `sync` key until PostgreSQL treats it as synchronous and it has caught up.
 */
#include <stdlib.h>

#include "pgha/ha_sync.h"
#include "pgha/proc.h"
#include "tests.h"

static const HaSyncMember members3[] = {
        {.name = "node1", .running = true},
        {.name = "node2", .running = true},
        {.name = "node3", .running = true},
};

static HaSyncReplica rep(const char *name, const char *sync_state, uint64_t lsn) {
        return (HaSyncReplica){
                .application_name = name,
                .state = "streaming",
                .sync_state = sync_state,
                .has_lsn = true,
                .lsn = lsn,
        };
}

static HaSyncInput input(const HaSyncReplica *r, size_t n) {
        return (HaSyncInput){
                .replicas = r,
                .n_replicas = n,
                .members = members3,
                .n_members = ELEMENTSOF(members3),
                .node_count = 1,
                .max_lag = -1,
                .primary_lsn = 1000,
        };
}

TEST(select_prefers_sync_state_then_lsn) {
        HaSyncReplica r[] = {rep("node2", "async", 900), rep("node3", "async", 950)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3"); /* higher LSN */
        ASSERT_EQ(res.n_confirmed, 0);        /* not in synchronous_standby_names */

        /* A standby already sync wins over a faster async one (no needless swaps). */
        r[0].sync_state = "sync";
        ha_sync_select(&in, &res);
        ASSERT_STREQ(res.picked[0], "node2");

        in.node_count = 2;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 2);
        ASSERT_STREQ(res.picked[0], "node2");
        ASSERT_STREQ(res.picked[1], "node3");
}

TEST(select_excludes_nosync_stopped_nonstreaming_unknown) {
        HaSyncMember m[] = {
                {.name = "node2", .running = true, .nosync = true},
                {.name = "node3", .running = false},
                {.name = "node4", .running = true},
                {.name = "Node5", .running = true},
        };
        HaSyncReplica r[] = {
                rep("node2", "async", 999),
                rep("node3", "async", 999),
                rep("node4", "async", 999),
                rep("node5", "async", 10), /* matches Node5 case-insensitively */
                rep("stranger", "async", 999),
        };
        HaSyncInput in = input(r, ELEMENTSOF(r));
        HaSyncResult res;

        r[2].state = "catchup";
        in.members = m;
        in.n_members = ELEMENTSOF(m);
        in.node_count = 5;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "Node5"); /* the member's spelling */

        /* NULL LSN (nothing flushed yet) is not a candidate either. */
        r[3].has_lsn = false;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 0);
}

TEST(select_nofailover_last) {
        HaSyncMember m[] = {
                {.name = "node2", .running = true, .nofailover = true},
                {.name = "node3", .running = true},
        };
        HaSyncReplica r[] = {rep("node2", "sync", 999), rep("node3", "async", 10)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        in.members = m;
        in.n_members = 2;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3");
}

TEST(select_maximum_lag_on_syncnode) {
        HaSyncReplica r[] = {rep("node2", "sync", 100), rep("node3", "async", 1000)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        in.max_lag = 500;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3"); /* node2 is 900 bytes behind the best */

        in.max_lag = 900;
        ha_sync_select(&in, &res);
        ASSERT_STREQ(res.picked[0], "node2");

        /* With one candidate it is compared with the primary's position. */
        in.n_replicas = 1;
        in.max_lag = 500;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 0);
        in.max_lag = 0; /* 0: no limit */
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
}

TEST(confirm_requires_live_setting_sync_state_and_catch_up) {
        HaSyncReplica r[] = {rep("node2", "async", 1000)};
        const char *ssn[] = {"node2"};
        HaSyncInput in = input(r, 1);
        HaSyncResult res;

        /* Not in the live setting: picked, never confirmed. */
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_EQ(res.n_confirmed, 0);
        ASSERT_EQ(res.n_ready, 0);

        /* Listed, but PostgreSQL still reports async. */
        in.ssn_names = ssn;
        in.n_ssn_names = 1;
        in.ready_lsn = 1000;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* sync, but behind the position recorded after the change. */
        r[0].sync_state = "sync";
        r[0].lsn = 999;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* No position recorded yet (the change was only just seen). */
        r[0].lsn = 5000;
        in.ready_lsn = 0;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        in.ready_lsn = 1000;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);
        ASSERT_STREQ(res.confirmed[0], "node2");
        ASSERT_EQ(res.n_ready, 1);

        /* Once ready it stays ready while listed, even if the LSN rule would fail now. */
        {
                const char *ready[] = {"node2"};
                in.ready = ready;
                in.n_ready = 1;
                in.ready_lsn = 99999;
                ha_sync_select(&in, &res);
                ASSERT_EQ(res.n_confirmed, 1);

                /* ... but a name no longer in the live setting is forgotten. */
                in.n_ssn_names = 0;
                ha_sync_select(&in, &res);
                ASSERT_EQ(res.n_ready, 0);
                ASSERT_EQ(res.n_confirmed, 0);
        }
}

TEST(confirm_sync_key_member_without_lsn) {
        HaSyncReplica r[] = {rep("node2", "sync", 10)};
        const char *ssn[] = {"node2"};
        const char *key[] = {"node2"};
        HaSyncInput in = input(r, 1);
        HaSyncResult res;

        in.ssn_names = ssn;
        in.n_ssn_names = 1;
        in.sync_names = key;
        in.n_sync_names = 1;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);

        /* Still must be reported sync by PostgreSQL. */
        r[0].sync_state = "potential";
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* Quorum mode wants "quorum". */
        r[0].sync_state = "quorum";
        in.quorum = true;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);
}

TEST(same_set) {
        const char *a[] = {"a", "b"}, *b[] = {"B", "a"}, *c[] = {"a"};

        ASSERT_TRUE(ha_sync_same_set(a, 2, b, 2));
        ASSERT_FALSE(ha_sync_same_set(a, 2, c, 1));
        ASSERT_FALSE(ha_sync_same_set(c, 1, a, 2));
        ASSERT_TRUE(ha_sync_same_set(NULL, 0, NULL, 0));
}

TEST(format_ssn) {
        const char *one[] = {"node2"}, *two[] = {"node2", "node-3"}, *star[] = {"*"};
        char *s = NULL;

        ASSERT_OK(ha_sync_format_ssn(NULL, 0, false, 0, &s));
        ASSERT_STREQ(s, "");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(one, 1, false, 0, &s));
        ASSERT_STREQ(s, "node2");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(two, 2, false, 0, &s));
        ASSERT_STREQ(s, "2 (node2,\"node-3\")");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(star, 1, false, 0, &s));
        ASSERT_STREQ(s, "*");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(two, 2, true, 1, &s));
        ASSERT_STREQ(s, "ANY 1 (node2,\"node-3\")");
        free(s);
}

TEST(parse_ssn) {
        char **l = NULL;

        ASSERT_OK(ha_sync_parse_ssn("", &l));
        ASSERT_EQ(proc_strv_length(l), 0);
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("node2", &l));
        ASSERT_EQ(proc_strv_length(l), 1);
        ASSERT_STREQ(l[0], "node2");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("2 (node2,\"node-3\")", &l));
        ASSERT_EQ(proc_strv_length(l), 2);
        ASSERT_STREQ(l[1], "node-3");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("ANY 1 (a, \"b\"\"c\", *)", &l));
        ASSERT_EQ(proc_strv_length(l), 3);
        ASSERT_STREQ(l[1], "b\"c");
        ASSERT_STREQ(l[2], "*");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn(" a , b ", &l));
        ASSERT_EQ(proc_strv_length(l), 2);
        l = proc_strv_free(l);
        ASSERT_ERROR(ha_sync_parse_ssn("a,", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("1", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("2 (,)", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("ANY 4(\"a\" b)", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("\"unterminated", &l), EINVAL);
}

DEFINE_TEST_MAIN
