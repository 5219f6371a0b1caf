/* SPDX-License-Identifier: MIT */
/* Tests for pgconf: the generated files are compared with the exact text Patroni 3.0.2 writes. */

#include <stdio.h>
#include <sys/stat.h>

#include "pgha/fileio.h"
#include "pgha/pgconf.h"
#include "pgha/proc.h"
#include "tests.h"

static const char *config_json =
        "{\"scope\": \"demo\", \"name\": \"node2\","
        " \"bootstrap\": {\"initdb\": [{\"encoding\": \"UTF8\"}, \"data-checksums\"],"
        "                 \"pg_hba\": [\"host replication replicator 127.0.0.1/32 md5\", \"host all all "
        "0.0.0.0/0 md5\"],"
        "                 \"users\": {\"admin\": {\"password\": \"pw\", \"options\": [\"createrole\", "
        "\"createdb\"]}}},"
        " \"postgresql\": {\"listen\": \"127.0.0.1:25432\", \"connect_address\": \"127.0.0.1:25432\","
        "   \"data_dir\": \"DATA\", \"bin_dir\": \"/usr/lib/postgresql/15/bin\", \"pgpass\": "
        "\"DATA/../pgpass\","
        "   \"authentication\": {\"superuser\": {\"username\": \"postgres\", \"password\": \"secret\"},"
        "                        \"replication\": {\"username\": \"replicator\", \"password\": \"rep'pw\"},"
        "                        \"rewind\": {\"username\": \"rewind_user\", \"password\": \"rw\"}},"
        "   \"parameters\": {\"shared_buffers\": \"16MB\", \"max_connections\": 50, \"fsync\": false,"
        "                    \"log_line_prefix\": \"it's %m \\\\ \", \"primary_conninfo\": \"ignored\","
        "                    \"hot_standby\": \"off\", \"unix_socket_directories\": \"/tmp/sock\"},"
        "   \"recovery_conf\": {\"restore_command\": \"cp /a/%f %p\", \"recovery_target_time\": \"x\"},"
        "   \"basebackup\": [{\"checkpoint\": \"fast\"}, \"verbose\"],"
        "   \"callbacks\": {\"on_start\": \"/bin/cb.sh arg\", \"on_role_change\": \"/bin/cb.sh\"},"
        "   \"create_replica_methods\": [\"custom\", \"basebackup\"],"
        "   \"custom\": {\"command\": \"/bin/clone.sh\", \"keep_data\": true, \"no_leader\": \"1\", "
        "\"extra\": \"x\"},"
        "   \"use_pg_rewind\": true, \"pg_ctl_timeout\": 30}}";

static void load(PgSettings *s, const char *data_dir) {
        _cleanup_free_ char *text = strdup(config_json), *err = NULL;
        cJSON *j;
        char *p;

        /* Substitute the data directory. */
        while ((p = strstr(text, "DATA"))) {
                char *n = NULL;
                *p = '\0';
                ASSERT_TRUE(asprintf(&n, "%s%s%s", text, data_dir, p + 4) > 0);
                free(text);
                text = n;
        }
        j = cJSON_Parse(text);
        ASSERT_NOT_NULL(j);
        int r = pg_settings_from_json(j, s, &err);
        if (r < 0)
                fprintf(stderr, "  error: %s\n", strna(err));
        cJSON_Delete(j);
        ASSERT_OK(r);
}

TEST(settings_from_json) {
        _cleanup_(pg_settings_done) PgSettings s = {};

        load(&s, "/data");
        ASSERT_STREQ(s.scope, "demo");
        ASSERT_STREQ(s.name, "node2");
        ASSERT_STREQ(s.listen_addresses, "127.0.0.1");
        ASSERT_STREQ(s.listen_host, "127.0.0.1");
        ASSERT_EQ(s.port, 25432);
        ASSERT_STREQ(s.superuser.password, "secret");
        ASSERT_STREQ(s.rewind.username, "rewind_user");
        ASSERT_STREQ(pg_params_get(&s.parameters, "max_connections"), "50");
        ASSERT_STREQ(pg_params_get(&s.parameters, "fsync"), "off");
        ASSERT_STREQ(s.callbacks[PG_CALLBACK_ON_START], "/bin/cb.sh arg");
        ASSERT_NULL(s.callbacks[PG_CALLBACK_ON_STOP]);
        ASSERT_EQ(s.n_replica_methods, 2);
        ASSERT_STREQ(s.replica_methods[0].command, "/bin/clone.sh");
        ASSERT_TRUE(s.replica_methods[0].keep_data);
        ASSERT_TRUE(s.replica_methods[0].no_leader);
        ASSERT_FALSE(s.replica_methods[0].no_params);
        ASSERT_EQ(s.replica_methods[0].params.n, 3);
        ASSERT_STREQ(pg_params_get(&s.replica_methods[0].params, "keep_data"), "True"); /* Python's str() */
        ASSERT_STREQ(pg_params_get(&s.replica_methods[0].params, "no_leader"), "1");
        ASSERT_STREQ(s.replica_methods[1].name, "basebackup");
        ASSERT_EQ(s.basebackup.n, 2);
        ASSERT_STREQ(pg_params_get(&s.basebackup, "checkpoint"), "fast");
        ASSERT_TRUE(pg_params_has(&s.basebackup, "verbose"));
        ASSERT_EQ(s.initdb.n, 2);
        ASSERT_EQ(s.n_bootstrap_users, 1);
        ASSERT_STREQ(s.bootstrap_users[0].options[1], "createdb");
        ASSERT_EQ(s.pg_ctl_timeout, 30 * USEC_PER_SEC);
        ASSERT_TRUE(s.use_pg_rewind);
        ASSERT_TRUE(s.use_slots);
}

TEST(initdb_map_form) {
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *err = NULL;
        cJSON *j = cJSON_Parse(
                "{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/d\",\"listen\":\"x:1\","
                "\"authentication\":{\"replication\":{\"username\":\"r\"}}},"
                "\"bootstrap\":{\"initdb\":{\"encoding\":\"UTF8\",\"locale\":\"C\"}}}");
        ASSERT_NOT_NULL(j);
        ASSERT_OK(pg_settings_from_json(j, &s, &err));
        cJSON_Delete(j);
        ASSERT_EQ(s.initdb.n, 2);
        ASSERT_STREQ(s.initdb.items[0].name, "encoding");
        ASSERT_STREQ(s.initdb.items[1].value, "C");
        ASSERT_STREQ(s.superuser.username, "postgres"); /* default */
        ASSERT_STREQ(s.database, "postgres");
}

TEST(settings_errors) {
        static const struct {
                const char *json;
                const char *error;
        } cases[] = {
                {"{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/d\"}}",
                 "postgresql.listen: missing"},
                {"{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/"
                 "d\",\"listen\":\"x:99999\"}}",
                 "postgresql.listen: invalid port in 'x:99999'"},
                {"{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/d\",\"listen\":\"x:1\","
                 "\"authentication\":{\"replication\":{\"username\":\"r\"}}},\"bootstrap\":{\"initdb\":["
                 "\"pgdata\"]}}",
                 "bootstrap.initdb: pgdata can not be set"},
                {"{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/d\",\"listen\":\"x:1\","
                 "\"authentication\":{\"replication\":{\"username\":\"r\"}},\"callbacks\":{\"on_x\":\"a\"}}"
                 "}",
                 "postgresql.callbacks.on_x: unknown callback"},
                {"{\"scope\":\"a\",\"name\":\"b\",\"postgresql\":{\"data_dir\":\"/d\",\"listen\":\"x:1\","
                 "\"authentication\":{\"replication\":{\"username\":\"r\"}},\"create_replica_methods\":["
                 "\"m\"]}}",
                 "postgresql.m: section of replica method missing"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(pg_settings_done) PgSettings s = {};
                _cleanup_free_ char *err = NULL;
                cJSON *j = cJSON_Parse(cases[i].json);
                ASSERT_NOT_NULL(j);
                ASSERT_ERROR(pg_settings_from_json(j, &s, &err), EINVAL);
                cJSON_Delete(j);
                ASSERT_STREQ(err, cases[i].error);
        }
}

TEST(slot_names) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"node1", "node1"},
                {"Node-2.example", "node_2_example"},
                {"a@b", "au0064b"},
                {"x y", "xu0032y"},
                {"caf\xc3\xa9", "cafu0233"},
                {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = NULL;
                ASSERT_OK(pgconf_slot_name(cases[i].in, &s));
                ASSERT_STREQ(s, cases[i].out);
        }
}

TEST(quote_and_dsn) {
        _cleanup_free_ char *q = pgconf_quote("it's a \\ test"), *dsn = NULL;
        _cleanup_(pg_params_done) PgParams p = {};

        ASSERT_STREQ(q, "'it''s a \\\\ test'");
        ASSERT_OK(pg_params_set(&p, "port", "5432"));
        ASSERT_OK(pg_params_set(&p, "host", "h"));
        ASSERT_OK(pg_params_set(&p, "user", "a b'c"));
        ASSERT_OK(pg_params_set(&p, "password", "pw"));
        ASSERT_OK(pg_params_set(&p, "dbname", "postgres"));
        dsn = pgconf_format_dsn(&p);
        ASSERT_STREQ(dsn, "dbname=postgres user=a\\ b\\'c password=pw host=h port=5432");
}

TEST(conn_url) {
        _cleanup_free_ char *h1 = NULL, *h2 = NULL, *h3 = NULL;
        char *bad = NULL;
        unsigned port;

        ASSERT_OK(pgconf_parse_conn_url("postgres://10.0.0.1:5433/postgres", &h1, &port));
        ASSERT_STREQ(h1, "10.0.0.1");
        ASSERT_EQ(port, 5433);
        ASSERT_OK(pgconf_parse_conn_url("postgresql://u:p@[::1]/db", &h2, &port));
        ASSERT_STREQ(h2, "::1");
        ASSERT_EQ(port, 5432);
        ASSERT_OK(pgconf_parse_conn_url("postgres://host", &h3, &port));
        ASSERT_STREQ(h3, "host");
        ASSERT_ERROR(pgconf_parse_conn_url("http://x:1/", &bad, &port), EINVAL);
        ASSERT_ERROR(pgconf_parse_conn_url("postgres://x:0/", &bad, &port), EINVAL);
}

static const char *expected_conf =
        "# Do not edit this file manually!\n"
        "# It will be overwritten by Patroni!\n"
        "include 'postgresql.base.conf'\n"
        "\n"
        "cluster_name = 'demo'\n"
        "fsync = 'off'\n"
        "hot_standby = 'on'\n"
        "listen_addresses = '127.0.0.1'\n"
        "log_line_prefix = 'it''s %m \\\\ '\n"
        "max_connections = '50'\n"
        "max_locks_per_transaction = '64'\n"
        "max_prepared_transactions = '0'\n"
        "max_replication_slots = '10'\n"
        "max_wal_senders = '10'\n"
        "max_worker_processes = '8'\n"
        "port = '25432'\n"
        "shared_buffers = '16MB'\n"
        "track_commit_timestamp = 'off'\n"
        "unix_socket_directories = '/tmp/sock'\n"
        "wal_keep_size = '128MB'\n"
        "wal_level = 'replica'\n"
        "wal_log_hints = 'on'\n"
        "hba_file = '/data/pg_hba.conf'\n"
        "ident_file = '/data/pg_ident.conf'\n";

static const char *expected_recovery =
        "\n"
        "# recovery.conf\n"
        "primary_conninfo = 'user=replicator passfile=/data/../pgpass host=10.0.0.1 port=5433 "
        "sslmode=prefer "
        "application_name=node2 gssencmode=prefer channel_binding=prefer'\n"
        "primary_slot_name = 'node2'\n"
        "recovery_target = ''\n"
        "recovery_target_lsn = ''\n"
        "recovery_target_name = ''\n"
        "recovery_target_time = ''\n"
        "recovery_target_timeline = 'latest'\n"
        "recovery_target_xid = ''\n"
        "restore_command = 'cp /a/%f %p'\n";

/* The libpq keys under postgresql.authentication.<user> reach every connection made as that user, as
 * Patroni's conn_kwargs: primary_conninfo (Patroni's "prefer" defaults only for the keys left unset), and
 * the DSN of pg_basebackup / pg_rewind / psql built by pgconf_conn_params(). */
TEST(auth_libpq_keys) {
        static const char *json =
                "{\"scope\": \"demo\", \"name\": \"node2\", \"postgresql\": {\"listen\": "
                "\"127.0.0.1:5432\", \"data_dir\": \"/data\", \"pgpass\": \"/pgpass\","
                " \"authentication\": {\"superuser\": {\"username\": \"postgres\", \"sslmode\": "
                "\"require\"},"
                " \"replication\": {\"username\": \"rep\", \"password\": \"pw\", \"sslmode\": "
                "\"verify-ca\", \"sslcert\": \"/c/my cert.pem\", \"sslkey\": \"/c/key.pem\", "
                "\"sslrootcert\": \"/c/ca.pem\", \"sslcrl\": \"/c/crl\", \"sslcrldir\": \"/c/crls\", "
                "\"sslpassword\": \"kp\", \"channel_binding\": \"require\", \"target_session_attrs\": "
                "\"any\"},"
                " \"rewind\": {\"username\": \"rw\", \"gssencmode\": \"disable\", "
                "\"target_session_attrs\": \"primary\"}}}}";
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_(pg_params_done) PgParams rec = {}, rw = {};
        _cleanup_free_ char *err = NULL, *dsn = NULL;
        cJSON *j = cJSON_Parse(json);

        ASSERT_NOT_NULL(j);
        ASSERT_OK(pg_settings_from_json(j, &s, &err));
        cJSON_Delete(j);

        ASSERT_OK(pgconf_recovery_params(&s, "10.0.0.1", 5433, &rec));
        ASSERT_STREQ(
                pg_params_get(&rec, "primary_conninfo"),
                "user=rep passfile=/pgpass host=10.0.0.1 port=5433 sslmode=verify-ca sslcert=/c/my\\ "
                "cert.pem "
                "sslkey=/c/key.pem sslpassword=kp sslrootcert=/c/ca.pem sslcrl=/c/crl sslcrldir=/c/crls "
                "application_name=node2 gssencmode=prefer channel_binding=require target_session_attrs=any");

        {
                _cleanup_(proc_strv_freep) char **kv = NULL;

                ASSERT_OK(pgconf_auth_libpq_strv(&s.superuser, &kv));
                ASSERT_NOT_NULL(kv);
                ASSERT_STREQ(kv[0], "sslmode");
                ASSERT_STREQ(kv[1], "require");
                ASSERT_NULL(kv[2]);
        }

        ASSERT_OK(pg_params_set(&rw, "target_session_attrs", "read-write"));
        ASSERT_OK(pgconf_conn_params(&s.rewind, "postgres", "10.0.0.1", 5433, &rw));
        dsn = pgconf_format_dsn(&rw);
        ASSERT_STREQ(
                dsn,
                "dbname=postgres user=rw host=10.0.0.1 port=5433 gssencmode=disable "
                "target_session_attrs=primary");
}

TEST(render_postgresql_conf) {
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_(pg_params_done) PgParams rec = {};
        _cleanup_free_ char *primary = NULL, *replica = NULL, *expected = NULL;

        load(&s, "/data");
        ASSERT_OK(pgconf_render_postgresql_conf(&s, NULL, &primary));
        ASSERT_STREQ(primary, expected_conf);

        ASSERT_OK(pgconf_recovery_params(&s, "10.0.0.1", 5433, &rec));
        ASSERT_OK(pgconf_render_postgresql_conf(&s, &rec, &replica));
        ASSERT_TRUE(asprintf(&expected, "%s%s", expected_conf, expected_recovery) > 0);
        ASSERT_STREQ(replica, expected);
}

TEST(custom_conf) {
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *text = NULL;

        load(&s, "/data");
        s.custom_conf = strdup("/etc/pg/it's.conf");
        ASSERT_OK(pgconf_render_postgresql_conf(&s, NULL, &text));
        ASSERT_TRUE(startswith(
                text,
                "# Do not edit this file manually!\n# It will be overwritten by Patroni!\n"
                "include '/etc/pg/it''s.conf'\n\ncluster_name = 'demo'\n"));
}

TEST(postmaster_argv) {
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *line = NULL;

        load(&s, "/data");
        ASSERT_OK(pgconf_postmaster_argv(&s, &argv));
        line = proc_argv_to_string(argv);
        ASSERT_STREQ(
                line,
                "/usr/lib/postgresql/15/bin/postgres -D /data --config-file=/data/postgresql.conf "
                "--listen_addresses=127.0.0.1 --port=25432 --cluster_name=demo --wal_level=replica "
                "--hot_standby=on --max_connections=50 --max_wal_senders=10 --max_prepared_transactions=0 "
                "--max_locks_per_transaction=64 --track_commit_timestamp=off --max_replication_slots=10 "
                "--max_worker_processes=8 --wal_log_hints=on");
}

static char *read_text(const char *dir, const char *file) {
        char path[512];
        char *t = NULL;
        (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
        if (read_full_file(path, 1 << 20, &t, NULL) < 0)
                return NULL;
        return t;
}

static const char *strjoina_dir(const char *dir, const char *file) {
        static char path[512];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
        return path;
}

static void put_text(const char *dir, const char *file, const char *text) {
        char path[512];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, file);
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
}

TEST(write_all) {
        char dir[] = "/tmp/pgha-test-pgconf-XXXXXX";
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_(pg_params_done) PgParams rec = {};
        _cleanup_free_ char *base = NULL, *conf = NULL, *auto_conf = NULL, *hba = NULL, *pgpass = NULL,
                            *cmd = NULL;
        struct stat st;

        ASSERT_NOT_NULL(mkdtemp(dir));
        load(&s, dir);
        put_text(dir, "postgresql.conf", "# from initdb\n");
        put_text(dir, "pg_hba.conf", "local all all trust\n");
        put_text(
                dir,
                "postgresql.auto.conf",
                "# Do not edit\nwork_mem = '8MB'\nprimary_conninfo = 'host=old'\n  restore_command='x'\n");

        /* Primary: base conf renamed once, no standby.signal, bootstrap hba appended. */
        ASSERT_OK(pgconf_write_all(&s, NULL));
        base = read_text(dir, "postgresql.base.conf");
        ASSERT_STREQ(base, "# from initdb\n");
        conf = read_text(dir, "postgresql.conf");
        ASSERT_TRUE(startswith(conf, "# Do not edit this file manually!\n"));
        ASSERT_NOT_NULL(strstr(conf, "include 'postgresql.base.conf'\n"));
        ASSERT_NULL(strstr(conf, "# recovery.conf"));
        auto_conf = read_text(dir, "postgresql.auto.conf");
        ASSERT_STREQ(auto_conf, "# Do not edit\nwork_mem = '8MB'\n");
        ASSERT_OK(pgconf_append_bootstrap_hba(&s));
        hba = read_text(dir, "pg_hba.conf");
        ASSERT_STREQ(
                hba,
                "local all all trust\n\nhost replication replicator 127.0.0.1/32 md5\n"
                "host all all 0.0.0.0/0 md5\n");

        /* Replica: standby.signal, recovery section, pgpass for the replication user. */
        ASSERT_OK(pgconf_recovery_params(&s, "10.0.0.1", 5433, &rec));
        ASSERT_OK(pgconf_write_all(&s, &rec));
        free(base);
        base = read_text(dir, "postgresql.base.conf");
        ASSERT_STREQ(base, "# from initdb\n"); /* not renamed again */
        ASSERT_OK(stat(strjoina_dir(dir, "standby.signal"), &st));
        free(conf);
        conf = read_text(dir, "postgresql.conf");
        ASSERT_NOT_NULL(strstr(conf, "primary_slot_name = 'node2'\n"));
        ASSERT_TRUE(asprintf(&cmd, "%s/../pgpass", dir) > 0);
        ASSERT_OK(read_full_file(cmd, 4096, &pgpass, NULL));
        ASSERT_STREQ(pgpass, "10.0.0.1:5433:*:replicator:rep'pw\n");
        ASSERT_OK(stat(cmd, &st));
        ASSERT_EQ(st.st_mode & 0777, 0600);
        (void)unlink(cmd);

        /* Back to primary: standby.signal removed. */
        ASSERT_OK(pgconf_write_all(&s, NULL));
        ASSERT_TRUE(stat(strjoina_dir(dir, "standby.signal"), &st) < 0 && errno == ENOENT);

        free(cmd);
        cmd = NULL;
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_EQ(system(cmd), 0); /* allow-banned: test cleanup of a temp dir */
}

TEST(managed_hba_and_pgpass_escaping) {
        char dir[] = "/tmp/pgha-test-pgconf-XXXXXX";
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *hba = NULL, *pgpass = NULL, *cmd = NULL;
        char *lines[] = {(char *)"local all all trust", (char *)"host all all 127.0.0.1/32 md5", NULL};
        PgAuth a = {.username = (char *)"u:x", .password = (char *)"p\\w"};

        ASSERT_NOT_NULL(mkdtemp(dir));
        load(&s, dir);
        s.pg_hba = calloc(3, sizeof(char *));
        s.pg_hba[0] = strdup(lines[0]);
        s.pg_hba[1] = strdup(lines[1]);
        ASSERT_OK(pgconf_write_all(&s, NULL));
        hba = read_text(dir, "pg_hba.conf");
        ASSERT_STREQ(
                hba,
                "# Do not edit this file manually!\n# It will be overwritten by Patroni!\n"
                "local all all trust\nhost all all 127.0.0.1/32 md5\n");
        /* Managed pg_hba: bootstrap lines are not appended. */
        ASSERT_OK(pgconf_append_bootstrap_hba(&s));
        free(hba);
        hba = read_text(dir, "pg_hba.conf");
        ASSERT_NULL(strstr(hba, "replication"));

        free(s.pgpass);
        ASSERT_TRUE(asprintf(&s.pgpass, "%s/pgpass", dir) > 0);
        ASSERT_OK(pgconf_write_pgpass(&s, "/tmp/sock", 5432, &a));
        pgpass = read_text(dir, "pgpass");
        ASSERT_STREQ(pgpass, "/tmp/sock:5432:*:u\\:x:p\\\\w\nlocalhost:5432:*:u\\:x:p\\\\w\n");

        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_EQ(system(cmd), 0); /* allow-banned: test cleanup of a temp dir */
}

TEST(backup_and_restore) {
        char dir[] = "/tmp/pgha-test-pgconf-XXXXXX";
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *hba = NULL, *conf = NULL, *cmd = NULL;
        char path[600];

        ASSERT_NOT_NULL(mkdtemp(dir));
        load(&s, dir);
        put_text(dir, "postgresql.conf", "a = 1\n");
        put_text(dir, "pg_hba.conf", "local all all trust\n");
        ASSERT_OK(pgconf_backup_files(&s));
        (void)snprintf(path, sizeof(path), "%s/pg_hba.conf", dir);
        ASSERT_OK(unlink(path));
        put_text(dir, "postgresql.conf", "a = 2\n");
        ASSERT_EQ(pgconf_restore_files(&s), 1); /* only the missing one */
        hba = read_text(dir, "pg_hba.conf");
        ASSERT_STREQ(hba, "local all all trust\n");
        conf = read_text(dir, "postgresql.conf");
        ASSERT_STREQ(conf, "a = 2\n");
        ASSERT_EQ(pgconf_restore_files(&s), 0);

        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_EQ(system(cmd), 0); /* allow-banned: test cleanup of a temp dir */
}

DEFINE_TEST_MAIN
