/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "pgha/config.h"
#include "pgha/fileio.h"
#include "tests.h"

#include <syslog.h>

static size_t strv_length_for_test(char **l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

extern char **environ;

static void clear_patroni_env(void) {
        config_env_forget();
        for (;;) {
                char name[256] = "";

                for (char **e = environ; e && *e; e++)
                        if (startswith(*e, "PATRONI_")) {
                                size_t l = strcspn(*e, "=");
                                if (l < sizeof(name)) {
                                        memcpy(name, *e, l);
                                        name[l] = '\0';
                                }
                                break;
                        }
                if (!name[0])
                        return;
                unsetenv(name);
        }
}

static char *diagnostics_text(const ConfigDiagnostics *d) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        config_diagnostics_print(d, f);
        fclose(f);
        return buf;
}

static int yml_filter(const struct dirent *de) {
        return endswith(de->d_name, ".yml");
}

/* Every tests/fixtures/config/NAME.yml is loaded and its printed diagnostics must equal NAME.expected
 * byte for byte; config_load() must fail exactly when an error line is expected. With
 * PGHA_UPDATE_FIXTURES=1 the expected files are (re)written instead. */
TEST(fixtures) {
        struct dirent **names = NULL;
        unsigned checked = 0, failed = 0;
        bool update = getenv("PGHA_UPDATE_FIXTURES");
        int n;

        clear_patroni_env();
        ASSERT_OK(chdir(PGHA_FIXTURES_DIR));
        n = scandir("config", &names, yml_filter, alphasort);
        ASSERT_TRUE(n > 0);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *expected_path = NULL, *expected = NULL, *got = NULL;
                ConfigDiagnostics d = {};
                Config *c = NULL;
                int r;

                ASSERT_TRUE(asprintf(&path, "config/%s", names[i]->d_name) > 0);
                ASSERT_TRUE(
                        asprintf(
                                &expected_path,
                                "config/%.*s.expected",
                                (int)(strlen(names[i]->d_name) - 4),
                                names[i]->d_name) > 0);
                r = config_load(path, &c, &d);
                got = diagnostics_text(&d);
                ASSERT_NOT_NULL(got);
                if (update) {
                        ASSERT_OK(write_file_atomic(expected_path, got, strlen(got), 0644));
                } else if (read_full_file(expected_path, 1 << 20, &expected, NULL) < 0) {
                        fprintf(stderr, "  %s: missing %s\n", path, expected_path);
                        failed++;
                } else if (!streq(expected, got)) {
                        fprintf(stderr,
                                "  %s: diagnostics differ.\n--- expected\n%s--- got\n%s---\n",
                                path,
                                expected,
                                got);
                        failed++;
                }
                if ((r == -EINVAL) != config_diagnostics_has_errors(&d) || (r < 0 && r != -EINVAL) ||
                    (r == 0) != (c != NULL)) {
                        fprintf(stderr, "  %s: config_load() = %d inconsistent with diagnostics\n", path, r);
                        failed++;
                }
                config_free(c);
                config_diagnostics_done(&d);
                free(names[i]);
                checked++;
        }
        free(names);
        printf("  %u fixtures checked\n", checked);
        ASSERT_EQ(failed, 0);
        ASSERT_TRUE(update || checked >= 25);
}

static Config *load_ok(const char *path) {
        ConfigDiagnostics d = {};
        Config *c = NULL;
        int r;

        r = config_load(path, &c, &d);
        if (r < 0)
                config_diagnostics_print(&d, stderr);
        config_diagnostics_done(&d);
        return r < 0 ? NULL : c;
}

static char *write_temp(const char *dir, const char *name, const char *text) {
        char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return NULL;
        if (write_file_atomic(path, text, strlen(text), 0644) < 0)
                return mfree(path);
        return path;
}

#define MINIMAL                                 \
        "scope: demo\n"                         \
        "name: node1\n"                         \
        "restapi:\n"                            \
        "  listen: 127.0.0.1:8008\n"            \
        "etcd3:\n"                              \
        "  host: 127.0.0.1:2379\n"              \
        "postgresql:\n"                         \
        "  listen: 127.0.0.1,::1:5432\n"        \
        "  data_dir: /data\n"                   \
        "  authentication:\n"                   \
        "    superuser: {username: postgres}\n" \
        "    replication: {username: repl}\n"

/* The seed's other snippets (synchronous replication, callbacks, pgBackRest and WAL-G replica methods,
 * recovery_conf), merged into good-seed.yml. */
static void seed_snippet_values(const Config *c) {
        const cJSON *dcs = c->bootstrap.dcs, *m, *v;

        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(dcs, "synchronous_mode")));
        ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(dcs, "synchronous_mode_strict")));
        ASSERT_EQ(cJSON_GetObjectItem(dcs, "synchronous_node_count")->valueint, 1);
        v = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(dcs, "postgresql"), "parameters"),
                "synchronous_commit");
        ASSERT_TRUE(cJSON_IsTrue(v)); /* YAML 1.1 "on", as PyYAML reads it */

        ASSERT_STREQ(c->postgresql.callbacks.on_start, "/scripts/on_start.sh");
        ASSERT_STREQ(c->postgresql.callbacks.on_stop, "/scripts/on_stop.sh");
        ASSERT_STREQ(c->postgresql.callbacks.on_restart, "/scripts/on_restart.sh");
        ASSERT_STREQ(c->postgresql.callbacks.on_reload, "/scripts/on_reload.sh");
        ASSERT_STREQ(c->postgresql.callbacks.on_role_change, "/scripts/on_role_change.sh");

        ASSERT_EQ(strv_length_for_test(c->postgresql.create_replica_methods), 3);
        ASSERT_STREQ(c->postgresql.create_replica_methods[0], "pgbackrest");
        ASSERT_STREQ(c->postgresql.create_replica_methods[1], "walg");
        ASSERT_STREQ(c->postgresql.create_replica_methods[2], "basebackup");
        m = cJSON_GetObjectItem(c->postgresql.replica_methods, "pgbackrest");
        ASSERT_STREQ(
                cJSON_GetObjectItem(m, "command")->valuestring,
                "/usr/bin/pgbackrest --stanza=main --delta restore");
        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(m, "keep_data")));
        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(m, "no_params")));
        m = cJSON_GetObjectItem(c->postgresql.replica_methods, "walg");
        ASSERT_STREQ(cJSON_GetObjectItem(m, "command")->valuestring, "/scripts/walg_restore.sh");
        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(m, "keep_data")));
        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(m, "no_params")));
        ASSERT_EQ(cJSON_GetArraySize(c->postgresql.replica_methods), 2);

        ASSERT_STREQ(
                cJSON_GetObjectItem(c->postgresql.recovery_conf, "restore_command")->valuestring,
                "pgbackrest --stanza=main archive-get %f %p");
        ASSERT_STREQ(
                cJSON_GetObjectItem(c->postgresql.parameters, "archive_command")->valuestring,
                "wal-g wal-push %p");
        ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(c->postgresql.parameters, "archive_mode")));
}

TEST(seed_values) {
        _cleanup_(config_freep) Config *c = NULL;
        const cJSON *v;

        clear_patroni_env();
        c = load_ok(PGHA_FIXTURES_DIR "/config/good-seed.yml");
        ASSERT_NOT_NULL(c);
        ASSERT_STREQ(c->name, "node1");
        ASSERT_STREQ(c->scope, "postgres-cluster");
        ASSERT_STREQ(c->namespace, "/service/");
        ASSERT_STREQ(c->restapi.listen.host, "0.0.0.0");
        ASSERT_EQ(c->restapi.listen.port, 8008);
        ASSERT_STREQ(c->restapi.connect_address.host, "192.168.1.1");
        ASSERT_STREQ(c->etcd.section, "etcd");
        ASSERT_EQ(strv_length_for_test(c->etcd.hosts), 3);
        ASSERT_STREQ(c->etcd.hosts[2], "192.168.1.3:2379");
        ASSERT_STREQ(c->etcd.protocol, "http");
        ASSERT_EQ(cJSON_GetObjectItem(c->bootstrap.dcs, "ttl")->valueint, 30);
        v = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(c->bootstrap.dcs, "postgresql"), "parameters"),
                "hot_standby");
        ASSERT_TRUE(cJSON_IsTrue(v)); /* YAML 1.1: on is a boolean */
        ASSERT_EQ(cJSON_GetArraySize(c->bootstrap.initdb), 3);
        ASSERT_STREQ(
                cJSON_GetObjectItem(cJSON_GetArrayItem(c->bootstrap.initdb, 0), "encoding")->valuestring,
                "UTF8");
        ASSERT_STREQ(cJSON_GetArrayItem(c->bootstrap.initdb, 1)->valuestring, "data-checksums");
        ASSERT_STREQ(c->bootstrap.method, "initdb");
        ASSERT_STREQ(c->bootstrap.pg_hba[0], "host replication replicator 192.168.1.0/24 scram-sha-256");
        v = cJSON_GetObjectItem(cJSON_GetObjectItem(c->bootstrap.users, "admin"), "options");
        ASSERT_EQ(cJSON_GetArraySize(v), 2);
        ASSERT_STREQ(c->postgresql.data_dir, "/var/lib/postgresql/16/main");
        ASSERT_STREQ(c->postgresql.config_dir, "/var/lib/postgresql/16/main");
        ASSERT_STREQ(c->postgresql.superuser.username, "postgres");
        ASSERT_STREQ(c->postgresql.replication.password, "replicator_password");
        ASSERT_STREQ(c->postgresql.rewind.username, "postgres");
        ASSERT_STREQ(c->postgresql.database, "postgres");
        ASSERT_U64_EQ(c->postgresql.pg_ctl_timeout, 60 * USEC_PER_SEC);
        /* parameters keep file order */
        ASSERT_STREQ(c->postgresql.parameters->child->string, "max_connections");
        ASSERT_STREQ(c->postgresql.parameters->child->next->string, "shared_buffers");
        ASSERT_EQ(c->watchdog.mode, WATCHDOG_AUTOMATIC);
        ASSERT_EQ(c->watchdog.safety_margin, 5);
        ASSERT_STREQ(c->watchdog.device, "/dev/watchdog");
        ASSERT_FALSE(c->tag.nofailover);
        ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(c->tags, "nosync")));
        ASSERT_EQ(c->log.level, LOG_INFO);
        ASSERT_EQ(c->log.file_num, 4);
        seed_snippet_values(c);
}

TEST(etcd_default_port) {
        _cleanup_(config_freep) Config *c = NULL;

        ASSERT_OK(config_load_string(
                "t",
                MINIMAL "etcd3:\n  host: 10.0.0.1\n  port: 2380\n  hosts: 10.0.0.2, 10.0.0.3:2381\n",
                &c,
                NULL));
        ASSERT_STREQ(c->etcd.host, "10.0.0.1:2380");
        ASSERT_STREQ(c->etcd.hosts[0], "10.0.0.2:2380");
        ASSERT_STREQ(c->etcd.hosts[1], "10.0.0.3:2381");
        ASSERT_NULL(c->etcd.hosts[2]);
}

TEST(to_json_masks_secrets) {
        _cleanup_(config_freep) Config *c = NULL;
        cJSON *j;
        char *s;

        clear_patroni_env();
        c = load_ok(PGHA_FIXTURES_DIR "/config/good-seed.yml");
        ASSERT_NOT_NULL(c);
        j = config_to_json(c, true);
        ASSERT_NOT_NULL(j);
        s = cJSON_PrintUnformatted(j);
        ASSERT_NOT_NULL(s);
        ASSERT_NULL(strstr(s, "postgres_password"));
        ASSERT_NULL(strstr(s, "admin_password"));
        ASSERT_NOT_NULL(strstr(s, "\"listen\":\"0.0.0.0:8008\""));
        ASSERT_NOT_NULL(strstr(s, "\"mode\":\"automatic\""));
        free(s);
        cJSON_Delete(j);
        j = config_to_json(c, false);
        s = cJSON_PrintUnformatted(j);
        ASSERT_NOT_NULL(strstr(s, "postgres_password"));
        free(s);
        cJSON_Delete(j);
}

TEST(load_string_and_needs_restart) {
        _cleanup_(config_freep) Config *a = NULL, *b = NULL;
        ConfigDiagnostics d = {};
        char *keys = NULL;

        ASSERT_OK(config_load_string("a", MINIMAL, &a, &d));
        ASSERT_STREQ(a->postgresql.listen.host, "127.0.0.1,::1");
        ASSERT_STREQ(a->postgresql.listen.first_host, "127.0.0.1");
        ASSERT_EQ(a->postgresql.listen.port, 5432);
        ASSERT_STREQ(a->postgresql.connect_address.host, "127.0.0.1");
        ASSERT_STREQ(a->restapi.connect_address.host, "127.0.0.1");
        ASSERT_FALSE(config_diagnostics_has_errors(&d));
        config_diagnostics_done(&d);
        ASSERT_OK(config_load_string("b", MINIMAL "log:\n  level: debug\n", &b, NULL));
        ASSERT_EQ(b->log.level, LOG_DEBUG);
        ASSERT_FALSE(config_needs_restart(a, b, &keys));
        ASSERT_NULL(keys);
        b = config_free(b);
        ASSERT_OK(config_load_string("b", "scope: other\n" MINIMAL "namespace: /x/\n", &b, NULL));
        ASSERT_STREQ(b->scope, "demo"); /* the later key wins */
        free(b->scope);
        b->scope = strdup("other");
        ASSERT_TRUE(config_needs_restart(a, b, &keys));
        ASSERT_STREQ(keys, "scope, namespace");
        free(keys);
}

TEST(env_overrides) {
        _cleanup_free_ char *dir = strdup("/tmp/pgha-test-config-XXXXXX"), *file = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        ConfigDiagnostics d = {};
        const cJSON *u;

        clear_patroni_env();
        ASSERT_NOT_NULL(mkdtemp(dir));
        file = write_temp(dir, "a.yml", MINIMAL);
        ASSERT_NOT_NULL(file);
        setenv("PATRONI_NAME", "envnode", 1);
        setenv("PATRONI_ETCD3_HOSTS", "'10.0.0.1:2379','10.0.0.2:2379'", 1);
        setenv("PATRONI_ETCD3_USERNAME", "root", 1); /* etcd3 created from env: credentials taken */
        setenv("PATRONI_RESTAPI_USERNAME", "admin", 1);
        setenv("PATRONI_RESTAPI_PASSWORD", "s3cret", 1);
        setenv("PATRONI_RESTAPI_ALLOWLIST", "[127.0.0.1, 10.0.0.0/8]", 1);
        setenv("PATRONI_CTL_INSECURE", "on", 1);
        setenv("PATRONI_LOGLEVEL", "WARNING", 1);
        setenv("PATRONI_REPLICATION_PASSWORD", "replpw", 1);
        setenv("PATRONI_alice_PASSWORD", "pw", 1);
        setenv("PATRONI_alice_OPTIONS", "createdb, createrole", 1);
        setenv("PATRONI_RESTAPI_HTTP_EXTRA_HEADERS", "X-A: 1, X-B: two", 1);
        ASSERT_OK(config_load(file, &c, &d));
        config_diagnostics_done(&d);
        ASSERT_STREQ(c->name, "envnode");
        ASSERT_STREQ(c->etcd.host, "127.0.0.1:2379"); /* file value kept */
        ASSERT_STREQ(c->etcd.hosts[1], "10.0.0.2:2379");
        ASSERT_STREQ(c->etcd.username, "root");
        ASSERT_STREQ(c->restapi.username, "admin");
        ASSERT_STREQ(c->restapi.password, "s3cret");
        ASSERT_STREQ(c->restapi.allowlist[1], "10.0.0.0/8");
        ASSERT_TRUE(c->ctl.insecure);
        ASSERT_EQ(c->log.level, LOG_WARNING);
        ASSERT_STREQ(c->postgresql.replication.password, "replpw");
        ASSERT_STREQ(c->postgresql.replication.username, "repl");
        u = cJSON_GetObjectItem(c->bootstrap.users, "alice");
        ASSERT_STREQ(cJSON_GetObjectItem(u, "password")->valuestring, "pw");
        ASSERT_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(u, "options"), 1)->valuestring, "createrole");
        ASSERT_STREQ(cJSON_GetObjectItem(c->restapi.http_extra_headers, "X-B")->valuestring, "two");
        c = config_free(c);

        /* Bad values are reported against the variable. */
        setenv("PATRONI_RESTAPI_LISTEN", "nohost", 1);
        setenv("PATRONI_CTL_INSECURE", "perhaps", 1);
        ASSERT_ERROR(config_load(file, &c, &d), EINVAL);
        {
                _cleanup_free_ char *text = diagnostics_text(&d);
                ASSERT_NOT_NULL(text);
                ASSERT_NOT_NULL(startswith(
                        text,
                        "PATRONI_RESTAPI_LISTEN:0:0: restapi.listen: invalid address 'nohost' "
                        "(expected host:port)\n"
                        "PATRONI_CTL_INSECURE:0:0: ctl.insecure: invalid boolean 'perhaps' "
                        "(expected on/true/yes/1 or off/false/no/0)\n"));
        }
        config_diagnostics_done(&d);
        ASSERT_NULL(c);

        /* Scrub removes every recognised variable, and only those. */
        setenv("PATRONI_UNRELATED_THING", "x", 1);
        ASSERT_TRUE(config_env_scrub() >= 13);
        ASSERT_NULL(getenv("PATRONI_NAME"));
        ASSERT_NULL(getenv("PATRONI_alice_OPTIONS"));
        ASSERT_NULL(getenv("PATRONI_ETCD3_HOSTS"));
        ASSERT_NULL(getenv("PATRONI_LOGLEVEL"));
        ASSERT_STREQ(getenv("PATRONI_UNRELATED_THING"), "x");
        /* ... but a reload still applies them (the bad ones too). */
        unsetenv("PATRONI_UNRELATED_THING");
        ASSERT_ERROR(config_load(file, &c, &d), EINVAL);
        ASSERT_STREQ(d.items[0].file, "PATRONI_RESTAPI_LISTEN");
        config_diagnostics_done(&d);
        setenv("PATRONI_RESTAPI_LISTEN", "127.0.0.1:8010", 1); /* the real environment wins */
        setenv("PATRONI_CTL_INSECURE", "off", 1);
        ASSERT_OK(config_load(file, &c, &d));
        config_diagnostics_done(&d);
        ASSERT_EQ(c->restapi.listen.port, 8010);
        ASSERT_STREQ(c->name, "envnode");
        ASSERT_STREQ(c->etcd.hosts[1], "10.0.0.2:2379");
        c = config_free(c);
        config_env_forget();
        unsetenv("PATRONI_RESTAPI_LISTEN");
        unsetenv("PATRONI_CTL_INSECURE");
        ASSERT_OK(config_load(file, &c, &d));
        config_diagnostics_done(&d);
        ASSERT_STREQ(c->name, "node1");
        c = config_free(c);
        unlink(file);
        rmdir(dir);
}

TEST(env_only_and_patroni_configuration) {
        _cleanup_(config_freep) Config *c = NULL;
        ConfigDiagnostics d = {};

        clear_patroni_env();
        ASSERT_ERROR(config_load(NULL, &c, &d), EINVAL);
        {
                _cleanup_free_ char *text = diagnostics_text(&d);
                ASSERT_STREQ(text, "environment:0:0: Config is empty.\n");
        }
        config_diagnostics_done(&d);

        setenv("PATRONI_NAME", "n1", 1);
        setenv("PATRONI_SCOPE", "s1", 1);
        setenv("PATRONI_RESTAPI_LISTEN", "127.0.0.1:8008", 1);
        setenv("PATRONI_ETCD3_HOST", "127.0.0.1:2379", 1);
        setenv("PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:5432", 1);
        setenv("PATRONI_POSTGRESQL_DATA_DIR", "/data", 1);
        setenv("PATRONI_SUPERUSER_USERNAME", "postgres", 1);
        setenv("PATRONI_REPLICATION_USERNAME", "repl", 1);
        ASSERT_OK(config_load(NULL, &c, &d));
        ASSERT_STREQ(c->scope, "s1");
        ASSERT_STREQ(c->etcd.host, "127.0.0.1:2379");
        ASSERT_STREQ(c->sources[0], "environment");
        config_diagnostics_done(&d);
        c = config_free(c);

        /* PATRONI_CONFIGURATION wins and other variables are not applied. */
        setenv("PATRONI_CONFIGURATION", MINIMAL, 1);
        ASSERT_OK(config_load(NULL, &c, &d));
        ASSERT_STREQ(c->name, "node1");
        ASSERT_STREQ(c->sources[0], "PATRONI_CONFIGURATION");
        config_diagnostics_done(&d);
        c = config_free(c);
        setenv("PATRONI_CONFIGURATION", "name: [", 1);
        ASSERT_ERROR(config_load(NULL, &c, &d), EINVAL);
        ASSERT_STREQ(d.items[0].file, "PATRONI_CONFIGURATION");
        config_diagnostics_done(&d);
        clear_patroni_env();
}

TEST(directory_merge) {
        _cleanup_free_ char *dir = strdup("/tmp/pgha-test-config-XXXXXX"), *f1 = NULL, *f2 = NULL,
                            *f3 = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        ConfigDiagnostics d = {};

        clear_patroni_env();
        ASSERT_NOT_NULL(mkdtemp(dir));
        f1 = write_temp(dir, "10-base.yml", MINIMAL "tags:\n  nofailover: true\n  zone: a\n");
        f2 = write_temp(
                dir,
                "20-node.yaml",
                "name: node2\npostgresql:\n  parameters:\n    work_mem: 8MB\ntags:\n  zone: b\n");
        f3 = write_temp(dir, "README.txt", "not: yaml: at: all\n");
        ASSERT_TRUE(f1 && f2 && f3);
        ASSERT_OK(config_load(dir, &c, &d));
        config_diagnostics_done(&d);
        ASSERT_STREQ(c->name, "node2");
        ASSERT_STREQ(c->postgresql.data_dir, "/data"); /* deep merge keeps siblings */
        ASSERT_STREQ(cJSON_GetObjectItem(c->postgresql.parameters, "work_mem")->valuestring, "8MB");
        ASSERT_TRUE(c->tag.nofailover);
        ASSERT_STREQ(cJSON_GetObjectItem(c->tags, "zone")->valuestring, "b");
        ASSERT_TRUE(endswith(c->sources[0], "/10-base.yml"));
        ASSERT_TRUE(endswith(c->sources[1], "/20-node.yaml"));
        ASSERT_NULL(c->sources[2]);
        c = config_free(c);

        /* A broken file is reported with its own name and position. */
        free(f2);
        f2 = write_temp(dir, "20-node.yaml", "name: node2\nwatchdog:\n  mode: sometimes\n");
        ASSERT_ERROR(config_load(dir, &c, &d), EINVAL);
        {
                const ConfigDiagnostic *e = NULL;
                unsigned errors = 0;

                for (size_t i = 0; i < d.n; i++)
                        if (d.items[i].severity == CONFIG_ERROR) {
                                e = &d.items[i];
                                errors++;
                        }
                ASSERT_EQ(errors, 1);
                ASSERT_TRUE(endswith(e->file, "/20-node.yaml"));
                ASSERT_EQ(e->line, 3);
                ASSERT_EQ(e->column, 9);
                ASSERT_STREQ(e->key, "watchdog.mode");
        }
        config_diagnostics_done(&d);
        unlink(f1);
        unlink(f2);
        unlink(f3);
        rmdir(dir);

        ASSERT_ERROR(config_load("/nonexistent/pgha.yml", &c, &d), ENOENT);
        ASSERT_TRUE(config_diagnostics_has_errors(&d));
        config_diagnostics_done(&d);
}

TEST(dynamic_config) {
        DynamicConfig dc = {};
        ConfigDiagnostics d = {};
        cJSON *j;

        ASSERT_OK(dynamic_config_init(&dc));
        ASSERT_EQ(dc.ttl, 30);
        ASSERT_EQ(dc.loop_wait, 10);
        ASSERT_EQ(dc.retry_timeout, 10);
        ASSERT_EQ(dc.maximum_lag_on_failover, 1048576);
        ASSERT_EQ(dc.maximum_lag_on_syncnode, -1);
        ASSERT_EQ(dc.primary_start_timeout, 300);
        ASSERT_EQ(dc.primary_stop_timeout, 0);
        ASSERT_EQ(dc.synchronous_node_count, 1);
        ASSERT_TRUE(dc.use_slots);
        ASSERT_FALSE(dc.use_pg_rewind);
        ASSERT_EQ(dc.synchronous_mode, SYNCHRONOUS_MODE_OFF);

        j = cJSON_Parse(
                "{\"ttl\": \"20\", \"loop_wait\": 5.0, \"retry_timeout\": \"x\", \"master_start_timeout\": "
                "60,"
                "\"synchronous_mode\": \"on\", \"failsafe_mode\": \"yes\", \"pause\": true,"
                "\"check_timeline\": 1, \"synchronous_mode_strict\": \"perhaps\","
                "\"maximum_lag_on_failover\": 33554432,"
                "\"postgresql\": {\"use_pg_rewind\": \"true\", \"use_slots\": \"off\","
                "  \"parameters\": {\"max_connections\": 200}},"
                "\"standby_cluster\": {\"host\": \"10.0.0.1\"}, \"permanent_slots\": {\"s1\": {\"type\": "
                "\"physical\"}}}");
        ASSERT_NOT_NULL(j);
        ASSERT_OK(dynamic_config_from_json(j, &dc, "config", &d));
        ASSERT_EQ(dc.ttl, 20);
        ASSERT_EQ(dc.loop_wait, 5);
        ASSERT_EQ(dc.retry_timeout, 10);
        ASSERT_EQ(dc.primary_start_timeout, 60);
        ASSERT_EQ(dc.synchronous_mode, SYNCHRONOUS_MODE_ON);
        ASSERT_TRUE(dc.failsafe_mode);
        ASSERT_TRUE(dc.pause);
        ASSERT_TRUE(dc.check_timeline);
        ASSERT_FALSE(dc.synchronous_mode_strict);
        ASSERT_EQ(dc.maximum_lag_on_failover, 33554432);
        ASSERT_TRUE(dc.use_pg_rewind);
        ASSERT_FALSE(dc.use_slots);
        ASSERT_EQ(cJSON_GetObjectItem(dc.parameters, "max_connections")->valueint, 200);
        ASSERT_STREQ(cJSON_GetObjectItem(dc.standby_cluster, "host")->valuestring, "10.0.0.1");
        ASSERT_NOT_NULL(cJSON_GetObjectItem(dc.slots, "s1"));
        ASSERT_EQ(d.n, 2);
        ASSERT_STREQ(d.items[0].key, "retry_timeout");
        ASSERT_STREQ(d.items[1].key, "synchronous_mode_strict");
        config_diagnostics_done(&d);
        cJSON_Delete(j);

        j = cJSON_Parse(
                "{\"synchronous_mode\": \"quorum\", \"primary_start_timeout\": 10, "
                "\"master_start_timeout\": 99}");
        ASSERT_OK(dynamic_config_from_json(j, &dc, NULL, NULL));
        ASSERT_EQ(dc.synchronous_mode, SYNCHRONOUS_MODE_QUORUM);
        ASSERT_EQ(dc.primary_start_timeout, 10);
        ASSERT_EQ(dc.ttl, 30); /* back to defaults */
        ASSERT_NULL(dc.standby_cluster);
        cJSON_Delete(j);
        ASSERT_ERROR(dynamic_config_from_json(NULL, &dc, NULL, NULL), EINVAL);
        ASSERT_EQ(dc.ttl, 30);
        dynamic_config_done(&dc);
}

static const char *param(const cJSON *p, const char *name) {
        static char buf[64];
        const cJSON *v = cJSON_GetObjectItem(p, name);

        if (cJSON_IsString(v))
                return v->valuestring;
        if (cJSON_IsNumber(v)) {
                snprintf(buf, sizeof(buf), "%g", v->valuedouble);
                return buf;
        }
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v) ? "true" : "false";
        return NULL;
}

TEST(effective_parameters) {
        _cleanup_(config_freep) Config *c = NULL;
        DynamicConfig dc = {};
        cJSON *j, *p;

        ASSERT_OK(config_load_string(
                "t",
                MINIMAL
                "  parameters:\n    max_connections: 500\n    work_mem: 8MB\n"
                "    shared_buffers: 1GB\n",
                &c,
                NULL));
        j = cJSON_Parse(
                "{\"postgresql\": {\"parameters\": {\"max_connections\": 10, \"max_wal_senders\": \"20\","
                "\"wal_level\": \"hot_standby\", \"wal_keep_size\": \"1GB\", \"hot_standby\": \"off\","
                "\"max_locks_per_transaction\": 16, \"track_commit_timestamp\": true, \"work_mem\": \"4MB\","
                "\"random_page_cost\": 1.1, \"wal_log_hints\": \"off\"}}}");
        ASSERT_OK(dynamic_config_from_json(j, &dc, NULL, NULL));
        cJSON_Delete(j);
        p = config_effective_parameters(c, &dc, 15);
        ASSERT_NOT_NULL(p);
        ASSERT_STREQ(param(p, "listen_addresses"), "127.0.0.1,::1");
        ASSERT_STREQ(param(p, "port"), "5432");
        ASSERT_STREQ(param(p, "cluster_name"), "demo");
        ASSERT_STREQ(param(p, "max_connections"), "100"); /* DCS 10 < 25 → default; local 500 dropped */
        ASSERT_STREQ(param(p, "max_wal_senders"), "20");
        ASSERT_STREQ(param(p, "wal_level"), "replica");
        ASSERT_STREQ(param(p, "wal_keep_size"), "1GB");
        ASSERT_NULL(param(p, "wal_keep_segments"));
        ASSERT_STREQ(param(p, "hot_standby"), "on");
        ASSERT_STREQ(param(p, "max_locks_per_transaction"), "64");
        ASSERT_STREQ(param(p, "track_commit_timestamp"), "on");
        ASSERT_STREQ(param(p, "wal_log_hints"), "on");
        ASSERT_STREQ(param(p, "max_prepared_transactions"), "0");
        ASSERT_STREQ(param(p, "max_replication_slots"), "10");
        ASSERT_STREQ(param(p, "max_worker_processes"), "8");
        ASSERT_STREQ(param(p, "work_mem"), "8MB"); /* local wins */
        ASSERT_STREQ(param(p, "shared_buffers"), "1GB");
        ASSERT_STREQ(param(p, "random_page_cost"), "1.1");
        cJSON_Delete(p);

        /* PG 12: wal_keep_segments, converted from the DCS wal_keep_size */
        p = config_effective_parameters(c, &dc, 12);
        ASSERT_STREQ(param(p, "wal_keep_segments"), "64");
        ASSERT_NULL(param(p, "wal_keep_size"));
        cJSON_Delete(p);
        dynamic_config_done(&dc);

        /* No dynamic config at all: defaults */
        p = config_effective_parameters(c, NULL, 0);
        ASSERT_STREQ(param(p, "wal_keep_size"), "128MB");
        ASSERT_STREQ(param(p, "max_connections"), "100");
        ASSERT_STREQ(param(p, "track_commit_timestamp"), "off");
        cJSON_Delete(p);
}

TEST(shipped_configs) {
        const char *files[] = {
                PGHA_FIXTURES_DIR "/../../conf/pgha.yml", PGHA_FIXTURES_DIR "/../../conf/pgha-minimal.yml"};

        clear_patroni_env();
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                ConfigDiagnostics d = {};
                Config *c = NULL;

                ASSERT_OK(config_load(files[i], &c, &d));
                ASSERT_FALSE(config_diagnostics_has_errors(&d));
                config_free(c);
                config_diagnostics_done(&d);
        }
}

/* The key reference is generated from the table: a key added to config_table.c must show up in the
 * committed docs/config-keys.md and docs/man/pgha.yml.5 (shipped in the Debian package). */
TEST(keys_reference_up_to_date) {
        test_compare_with_file(
                PGHA_FIXTURES_DIR "/../../docs/config-keys.md",
                config_keys_print_markdown,
                "build/pgha-test-configdoc markdown > docs/config-keys.md");
        test_compare_with_file(
                PGHA_FIXTURES_DIR "/../../docs/man/pgha.yml.5",
                config_keys_print_man,
                "build/pgha-test-configdoc man > docs/man/pgha.yml.5");
}

TEST(keys_reference_lists_every_key) {
        _cleanup_free_ char *md = test_render(config_keys_print_markdown);
        _cleanup_free_ char *man = test_render(config_keys_print_man);

        ASSERT_NOT_NULL(
                strstr(md, "| `postgresql.data_dir` | string |  | required; a change needs a restart"));
        ASSERT_NOT_NULL(strstr(md, "| `etcd3.port` | integer | `2379` |"));
        ASSERT_NOT_NULL(strstr(md, "| `postgresql.superuser` | alias |  | deprecated spelling of "));
        ASSERT_NOT_NULL(strstr(man, ".TP\n.B watchdog.safety_margin\ninteger; default \\(lq5\\(rq.\n"));
        ASSERT_NOT_NULL(strstr(man, ".B restapi.authentication.password\nstring.\n.br\nsecret"));
        ASSERT_NOT_NULL(strstr(man, "\\-\\-validate\\-config"));
}

/* postgresql.remove_data_directory_on_* in the dynamic configuration: Patroni's booleans, a bad value is
 * reported with its key and leaves the default (false). */
TEST(dynamic_config_remove_data_directory) {
        DynamicConfig dc = {};
        ConfigDiagnostics d = {};
        cJSON *j;

        ASSERT_OK(dynamic_config_init(&dc));
        ASSERT_FALSE(dc.remove_data_directory_on_rewind_failure);
        ASSERT_FALSE(dc.remove_data_directory_on_diverged_timelines);

        j = cJSON_Parse(
                "{\"postgresql\": {\"remove_data_directory_on_rewind_failure\": \"on\","
                " \"remove_data_directory_on_diverged_timelines\": true}}");
        ASSERT_NOT_NULL(j);
        ASSERT_OK(dynamic_config_from_json(j, &dc, "config", &d));
        ASSERT_TRUE(dc.remove_data_directory_on_rewind_failure);
        ASSERT_TRUE(dc.remove_data_directory_on_diverged_timelines);
        ASSERT_EQ(d.n, 0);
        cJSON_Delete(j);

        j = cJSON_Parse(
                "{\"postgresql\": {\"remove_data_directory_on_rewind_failure\": 3,"
                " \"remove_data_directory_on_diverged_timelines\": \"maybe\"}}");
        ASSERT_NOT_NULL(j);
        ASSERT_OK(dynamic_config_from_json(j, &dc, "config", &d));
        ASSERT_FALSE(dc.remove_data_directory_on_rewind_failure);
        ASSERT_FALSE(dc.remove_data_directory_on_diverged_timelines);
        ASSERT_EQ(d.n, 2);
        ASSERT_STREQ(d.items[0].key, "postgresql.remove_data_directory_on_rewind_failure");
        ASSERT_STREQ(d.items[1].key, "postgresql.remove_data_directory_on_diverged_timelines");
        config_diagnostics_done(&d);
        cJSON_Delete(j);
        dynamic_config_done(&dc);
}

DEFINE_TEST_MAIN
