/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pgmon's pure parts: postmaster.pid and /proc/<pid>/stat parsing, the running decision
 * over a fake /proc tree (zombie, gone, PID reuse), the status-result parser over hand-built PGresults,
 * and the JSON rendering, including that a failed query leaves no stale facts behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "pgha/fileio.h"
#include "pgha/pgmon.h"
#include "tests.h"

static const char pidfile_ready[] =
        "14727\n/tmp/pgmon-dev/data\n1795727462\n25432\n/tmp/pgmon-dev\n\n"
        " 10962279        62\nready   \n";

TEST(pidfile_parse) {
        PostmasterPidFile p = {};

        ASSERT_OK(postmaster_pid_file_parse(pidfile_ready, &p));
        ASSERT_EQ(p.pid, 14727);
        ASSERT_STREQ(p.data_dir, "/tmp/pgmon-dev/data");
        ASSERT_EQ(p.start_time, 1795727462);
        ASSERT_EQ(p.port, 25432);
        ASSERT_STREQ(p.socket_dir, "/tmp/pgmon-dev");
        ASSERT_STREQ(p.status, "ready");
        postmaster_pid_file_done(&p);
        ASSERT_NULL(p.data_dir);

        /* written in steps while starting: the first three lines are enough */
        ASSERT_OK(postmaster_pid_file_parse("123\n/data\n1700000000\n", &p));
        ASSERT_EQ(p.pid, 123);
        ASSERT_EQ(p.port, 0);
        ASSERT_NULL(p.status);
        postmaster_pid_file_done(&p);
        ASSERT_OK(postmaster_pid_file_parse("123\n/data\n1700000000\n5432\n\n\n\nstopping", &p));
        ASSERT_STREQ(p.status, "stopping");
        ASSERT_NULL(p.socket_dir);
        postmaster_pid_file_done(&p);

        ASSERT_ERROR(postmaster_pid_file_parse("", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("123\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("123\n/data\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("abc\n/data\n1700000000\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("-5\n/data\n1700000000\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("0\n/data\n1700000000\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("99999999999\n/data\n1700000000\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("123\nrelative\n1700000000\n", &p), EINVAL);
        ASSERT_ERROR(postmaster_pid_file_parse("123\n/data\nsoon\n", &p), EINVAL);
        ASSERT_NULL(p.data_dir); /* untouched on failure */
}

TEST(proc_stat_parse) {
        ProcStat st;

        ASSERT_OK(proc_stat_parse(
                "18655 (cat) R 18596 18596 5141 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 65254 3133440 387 "
                "18446744073709551615 0 0 0\n",
                &st));
        ASSERT_EQ(st.state, 'R');
        ASSERT_U64_EQ(st.start_time, 65254);

        /* a zombie, and a comm with spaces and parentheses */
        ASSERT_OK(proc_stat_parse(
                "42 (po) (stgr) es) Z 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0", &st));
        ASSERT_EQ(st.state, 'Z');
        ASSERT_U64_EQ(st.start_time, 777);
        ASSERT_OK(proc_stat_parse("42 (x) X 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9", &st));
        ASSERT_EQ(st.state, 'X');
        ASSERT_U64_EQ(st.start_time, 9);

        ASSERT_ERROR(proc_stat_parse("", &st), EINVAL);
        ASSERT_ERROR(proc_stat_parse("42 (x) S 1 2 3", &st), EINVAL); /* truncated */
        ASSERT_ERROR(proc_stat_parse("42 (x)", &st), EINVAL);         /* nothing after comm */
        ASSERT_ERROR(proc_stat_parse("42 x S 1 2 3", &st), EINVAL);   /* no comm */
        ASSERT_ERROR(proc_stat_parse("42 (x) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -9 0", &st), EINVAL);
        ASSERT_ERROR(proc_stat_parse("42 (x) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9z 0", &st), EINVAL);
}

TEST(postmaster_state_strings) {
        for (PostmasterState s = 0; s < _POSTMASTER_STATE_MAX; s++)
                ASSERT_EQ(postmaster_state_from_string(postmaster_state_to_string(s)), s);
        ASSERT_EQ(postmaster_state_from_string("nope"), _POSTMASTER_STATE_INVALID);
        ASSERT_NULL(postmaster_state_to_string(_POSTMASTER_STATE_MAX));
}

/* Writes a fake /proc/<pid>/stat whose start time is `started` (epoch seconds) with state `state`. */
static void write_fake_stat(const char *proc_root, int pid, char state, time_t started) {
        struct timespec boot, real;
        long hz = sysconf(_SC_CLK_TCK);
        char dir[256], path[300], text[256];
        double since_boot;

        ASSERT_OK(clock_gettime(CLOCK_BOOTTIME, &boot));
        ASSERT_OK(clock_gettime(CLOCK_REALTIME, &real));
        since_boot = (double)boot.tv_sec - ((double)real.tv_sec - (double)started);
        ASSERT_TRUE(since_boot > 0);
        snprintf(dir, sizeof(dir), "%s/%d", proc_root, pid);
        (void)mkdir(dir, 0755);
        snprintf(path, sizeof(path), "%s/stat", dir);
        snprintf(
                text,
                sizeof(text),
                "%d (postgres) %c 1 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %llu 0 0\n",
                pid,
                state,
                pid,
                pid,
                (unsigned long long)(since_boot * (double)hz));
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0644));
}

static void write_pidfile(const char *data_dir, int pid, time_t started) {
        char path[300], text[512];

        snprintf(path, sizeof(path), "%s/postmaster.pid", data_dir);
        snprintf(
                text,
                sizeof(text),
                "%d\n%s\n%lld\n5432\n/tmp\n*\n  1 2\nready   \n",
                pid,
                data_dir,
                (long long)started);
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
}

TEST(postmaster_check_fake_proc) {
        char root[] = "/tmp/pgha-test-pgmon-XXXXXX", data[300], proc[300], path[400];
        time_t started = time(NULL) - 100;
        PostmasterPidFile pf = {};
        PostmasterState st;

        ASSERT_NOT_NULL(mkdtemp(root));
        snprintf(data, sizeof(data), "%s/data", root);
        snprintf(proc, sizeof(proc), "%s/proc", root);
        ASSERT_OK(mkdir(data, 0700));
        ASSERT_OK(mkdir(proc, 0755));

        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_NO_PIDFILE);

        write_pidfile(data, 4242, started);
        ASSERT_OK(postmaster_check(data, proc, &st, &pf));
        ASSERT_EQ(st, POSTMASTER_GONE);
        ASSERT_EQ(pf.pid, 4242);
        postmaster_pid_file_done(&pf);

        write_fake_stat(proc, 4242, 'S', started);
        ASSERT_OK(postmaster_check(data, proc, &st, &pf));
        ASSERT_EQ(st, POSTMASTER_RUNNING);
        ASSERT_STREQ(pf.status, "ready");
        postmaster_pid_file_done(&pf);

        write_fake_stat(proc, 4242, 'Z', started);
        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_ZOMBIE);
        write_fake_stat(proc, 4242, 'X', started);
        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_ZOMBIE);

        /* same pid, started 60 s later than the pid file says: another process */
        write_fake_stat(proc, 4242, 'S', started + 60);
        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_PID_REUSED);
        /* within the 3 s tolerance */
        write_fake_stat(proc, 4242, 'S', started + 2);
        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_RUNNING);

        snprintf(path, sizeof(path), "%s/postmaster.pid", data);
        ASSERT_OK(write_file_atomic(path, "garbage", 7, 0600));
        ASSERT_OK(postmaster_check(data, proc, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_BAD_PIDFILE);

        /* real /proc: our own process is running, and started when /proc says */
        write_pidfile(data, (int)getpid(), time(NULL));
        ASSERT_OK(postmaster_check(data, NULL, &st, NULL));
        ASSERT_EQ(st, POSTMASTER_RUNNING);

        snprintf(path, sizeof(path), "rm -rf '%s'", root);
        ASSERT_EQ(system(path), 0);
}

/* A one-row result with the status query's column names. NULL values are SQL NULLs. */
static PGresult *make_status_result(const char *const *names, const char *const *values, size_t n) {
        PGresAttDesc attrs[64] = {};
        PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

        ASSERT_TRUE(n <= ELEMENTSOF(attrs));
        for (size_t i = 0; i < n; i++) {
                attrs[i].name = (char *)names[i];
                attrs[i].typid = 25;
                attrs[i].typlen = -1;
                attrs[i].atttypmod = -1;
        }
        ASSERT_TRUE(PQsetResultAttrs(res, (int)n, attrs));
        for (size_t i = 0; i < n; i++)
                ASSERT_TRUE(PQsetvalue(
                        res, 0, (int)i, (char *)values[i], values[i] ? (int)strlen(values[i]) : -1));
        return res;
}

static const char *const status_columns[] = {
        "in_recovery",
        "server_version",
        "system_identifier",
        "postmaster_start",
        "postmaster_start_epoch",
        "wal_write_lsn",
        "wal_flush_lsn",
        "wal_timeline",
        "receive_lsn",
        "replay_lsn",
        "replay_timestamp",
        "replay_timestamp_epoch",
        "replay_paused",
        "replay_pause_state",
        "checkpoint_timeline",
        "receiver_status",
        "receiver_timeline",
        "receiver_conninfo",
        "receiver_slot",
        "receiver_host",
        "receiver_port",
        "pending_restart",
        "replication",
};

TEST(parse_primary) {
        const char *values[] = {
                "f",
                "150020",
                "7712574132163962109",
                "2026-11-26 20:06:40.220474+00:00",
                "1795723600.220474",
                "0/3000060",
                "0/3000000",
                "1",
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                "1",
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                "t",
                "[{\"usename\":\"replicator\",\"application_name\":\"node2\",\"client_addr\":\"127.0.0.1\","
                "\"state\":\"streaming\",\"sync_state\":\"async\",\"sync_priority\":0,\"write_lsn\":\"0/"
                "3000060\","
                "\"flush_lsn\":\"0/3000060\",\"replay_lsn\":\"0/2FFFFF0\"},"
                "{\"usename\":\"replicator\",\"application_name\":\"node3\",\"client_addr\":null,"
                "\"state\":\"catchup\",\"sync_state\":\"sync\",\"sync_priority\":1,\"write_lsn\":null,"
                "\"flush_lsn\":null,\"replay_lsn\":null}]",
        };
        PGresult *res;
        PgStatus s = {};
        cJSON *j = NULL;
        char *text;

        _Static_assert(ELEMENTSOF(values) == ELEMENTSOF(status_columns), "columns");
        res = make_status_result(status_columns, values, ELEMENTSOF(values));
        ASSERT_OK(pgstatus_parse_result(res, &s));
        ASSERT_TRUE(s.query_ok);
        ASSERT_FALSE(s.in_recovery);
        ASSERT_EQ(s.server_version, 150020);
        ASSERT_U64_EQ(s.system_identifier, 7712574132163962109ULL);
        ASSERT_STREQ(s.postmaster_start_time, "2026-11-26 20:06:40.220474+00:00");
        ASSERT_U64_EQ(s.wal_write_lsn, 50331744);
        ASSERT_U64_EQ(s.wal_flush_lsn, 50331648);
        ASSERT_U64_EQ(pgstatus_wal_position(&s), 50331744);
        ASSERT_EQ(s.timeline, 1);
        ASSERT_TRUE(s.pending_restart);
        ASSERT_EQ(s.n_replicas, 2);
        ASSERT_STREQ(s.replicas[0].application_name, "node2");
        ASSERT_STREQ(s.replicas[0].client_addr, "127.0.0.1");
        ASSERT_U64_EQ(s.replicas[0].replay_lsn, 0x2FFFFF0);
        ASSERT_STREQ(s.replicas[1].sync_state, "sync");
        ASSERT_EQ(s.replicas[1].sync_priority, 1);
        ASSERT_NULL(s.replicas[1].client_addr);
        ASSERT_U64_EQ(s.replicas[1].write_lsn, 0);

        ASSERT_OK(pgstatus_to_json(&s, &j));
        text = cJSON_PrintUnformatted(j);
        ASSERT_TRUE(strstr(text, "\"system_identifier\":\"7712574132163962109\"") != NULL);
        ASSERT_TRUE(strstr(text, "\"wal_write_lsn\":50331744") != NULL);
        ASSERT_TRUE(strstr(text, "\"application_name\":\"node3\"") != NULL);
        free(text);
        cJSON_Delete(j);

        /* a failed probe afterwards must not leave the primary's facts in place */
        pgstatus_clear_query_facts(&s);
        ASSERT_FALSE(s.query_ok);
        ASSERT_EQ(s.n_replicas, 0);
        ASSERT_U64_EQ(pgstatus_wal_position(&s), 0);
        ASSERT_OK(pgstatus_to_json(&s, &j));
        ASSERT_NULL(cJSON_GetObjectItem(j, "wal_write_lsn"));
        ASSERT_NULL(cJSON_GetObjectItem(j, "in_recovery"));
        cJSON_Delete(j);

        pgstatus_done(&s);
        PQclear(res);
}

TEST(parse_replica) {
        const char *values[] = {
                "t",
                "150020",
                "7712574132163962109",
                "2026-11-26 20:07:50.821318+00:00",
                "1795723670.821318",
                NULL,
                NULL,
                NULL,
                "0/5000100",
                "0/5000000",
                "2026-11-26 20:08:07.048036+00:00",
                "1795723687.048036",
                "f",
                "not paused",
                "1",
                "streaming",
                "2",
                "user=replicator password=******** host=127.0.0.1 port=5432",
                "node2",
                "127.0.0.1",
                "5432",
                "f",
                NULL,
        };
        PGresult *res = make_status_result(status_columns, values, ELEMENTSOF(values));
        PgStatus s = {};

        ASSERT_OK(pgstatus_parse_result(res, &s));
        ASSERT_TRUE(s.in_recovery);
        ASSERT_U64_EQ(s.receive_lsn, 0x5000100);
        ASSERT_U64_EQ(s.replay_lsn, 0x5000000);
        ASSERT_U64_EQ(pgstatus_wal_position(&s), 0x5000100);
        ASSERT_EQ(s.timeline, 2); /* the walreceiver's, ahead of the last checkpoint's */
        ASSERT_EQ(s.checkpoint_timeline, 1);
        ASSERT_STREQ(s.receiver_status, "streaming");
        ASSERT_EQ(s.receiver_port, 5432);
        ASSERT_STREQ(s.replay_pause_state, "not paused");
        ASSERT_FALSE(s.replay_paused);
        ASSERT_EQ(s.n_replicas, 0);
        pgstatus_done(&s);
        PQclear(res);
}

TEST(parse_rejects_bad_replies) {
        const char *good[] = {
                "t",  "150020", "1", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL,     "1", NULL, NULL, NULL, NULL, NULL, NULL, "f",  NULL,
        };
        const char *values[ELEMENTSOF(good)];
        PgStatus s = {};
        PGresult *res;

        /* the minimal reply parses: a replica with nothing received yet */
        res = make_status_result(status_columns, good, ELEMENTSOF(good));
        ASSERT_OK(pgstatus_parse_result(res, &s));
        ASSERT_EQ(s.timeline, 1);
        ASSERT_U64_EQ(pgstatus_wal_position(&s), 0);
        PQclear(res);

        struct {
                size_t col;
                const char *value;
                int error;
        } cases[] = {
                {0, NULL, ENXIO},          /* in_recovery NULL */
                {1, "abc", EINVAL},        /* server_version */
                {2, "-1", EINVAL},         /* system identifier */
                {8, "0/XYZ", EINVAL},      /* receive LSN */
                {20, "70000", EBADMSG},    /* port out of range */
                {22, "{\"a\":1}", EINVAL}, /* replication is not an array */
                {22, "[1]", EINVAL},
                {22, "[{\"write_lsn\":\"nope\"}]", EINVAL},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                memcpy(values, good, sizeof(good));
                values[cases[i].col] = cases[i].value;
                res = make_status_result(status_columns, values, ELEMENTSOF(values));
                ASSERT_ERROR(pgstatus_parse_result(res, &s), cases[i].error);
                ASSERT_FALSE(s.query_ok);
                PQclear(res);
        }

        /* missing columns and wrong row counts */
        res = make_status_result(status_columns, good, 2);
        ASSERT_ERROR(pgstatus_parse_result(res, &s), EBADMSG);
        PQclear(res);
        res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
        ASSERT_ERROR(pgstatus_parse_result(res, &s), EBADMSG);
        PQclear(res);
        pgstatus_done(&s);
}

DEFINE_TEST_MAIN
