/* SPDX-License-Identifier: MIT */
/*
 * /metrics text compared byte for byte with golden files that Patroni 3.0.2's own do_GET_metrics()
 * produced for the same node states (tests/fixtures/metrics/generate.py).
 */
#include <stdio.h>

#include "pgha/fileio.h"
#include "pgha/metrics.h"
#include "tests.h"

#define NOW (1000 * USEC_PER_SEC)

static void check_golden(const char *snapshot_json, const char *golden) {
        _cleanup_free_ char *expected = NULL, *got = NULL, *path = NULL, *err = NULL;
        NodeSnapshot s = {};
        size_t size = 0;
        cJSON *j;

        ASSERT_TRUE(asprintf(&path, "%s/metrics/%s", PGHA_FIXTURES_DIR, golden) > 0);
        ASSERT_OK(read_full_file(path, 1024 * 1024, &expected, NULL));
        j = cJSON_Parse(snapshot_json);
        ASSERT_NOT_NULL(j);
        ASSERT_OK(snapshot_load_json(j, NOW, &s, &err));
        cJSON_Delete(j);
        ASSERT_OK(metrics_render(&s, NOW, &got, &size));
        snapshot_done(&s);
        ASSERT_EQ(size, strlen(got));
        if (!streq(got, expected)) {
                fprintf(stderr, "--- expected (%s)\n%s--- got\n%s", golden, expected, got);
                TEST_FAIL("metrics differ from %s", golden);
        }
}

TEST(leader) {
        check_golden(
                "{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"master\",\"in_recovery\":false,"
                "\"postmaster_start_time\":1795723600.220474,\"server_version\":150020,"
                "\"xlog_location\":50331744,\"timeline\":1,\"is_leader\":true,\"cluster_view\":true,"
                "\"leader_name\":\"node1\",\"dcs_last_seen\":1795723645,\"tags\":{\"a\":\"b\"}}",
                "leader.prom");
}

TEST(replica) {
        check_golden(
                "{\"scope\":\"demo\",\"state\":\"running\",\"role\":\"replica\",\"in_recovery\":true,"
                "\"postmaster_start_time\":1795723670.821318,\"server_version\":150020,"
                "\"received_location\":83886848,\"replayed_location\":83886000,"
                "\"replayed_timestamp\":1795723687.048036,\"replay_paused\":true,\"timeline\":2,"
                "\"cluster_view\":true,\"leader_name\":\"node1\",\"synchronous_mode\":true,"
                "\"sync_member\":true,\"failsafe_active\":true,\"dcs_last_seen\":1795723692,"
                "\"pending_restart\":true,\"paused\":true}",
                "replica.prom");
}

TEST(down) {
        check_golden(
                "{\"scope\":\"demo\",\"state\":\"stopped\",\"status_ok\":false,\"role\":\"replica\","
                "\"cluster_view\":false,\"server_version\":150020,\"timeline\":3,\"dcs_last_seen\":0}",
                "down.prom");
}

TEST(label_escaping_and_version) {
        NodeSnapshot s = {
                .scope = (char *)"a\"b\\c", .version = (char *)"10.1.12", .state = (char *)"running"};
        _cleanup_free_ char *got = NULL;

        ASSERT_OK(metrics_render(&s, NOW, &got, NULL));
        ASSERT_NOT_NULL(strstr(got, "patroni_version{scope=\"a\\\"b\\\\c\"} 100112\n"));
}

DEFINE_TEST_MAIN
