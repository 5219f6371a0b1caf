/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of pghactl's pure parts: PrettyTable/TSV/JSON/YAML rendering, PyYAML-compatible dumping,
 * difflib's unified diff, -s key=value application, patch_config, conn_url parsing, role filters, the
 * list/topology/history tables built from a parsed DCS read, and timestamp parsing. Expected texts were
 * produced by patronictl 3.0.2's own libraries (prettytable, PyYAML, difflib, json) for the same input.
 * src/ctl is not part of pgha_core, so its pure sources are compiled into this test directly.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/ctl/ctl_cluster.c"
#include "../../src/ctl/ctl_config.c"
#include "../../src/ctl/ctl_format.c"
#include "../../src/ctl/ctl_net.c"
#include "pgha/dcs.h"
#include "pgha/etcd.h"
#include "tests.h"

static char *render(int (*fn)(FILE *f, const void *ud), const void *ud) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        if (fn(f, ud) < 0) {
                fclose(f);
                free(s);
                return NULL;
        }
        fclose(f);
        return s;
}

static cJSON *parse(const char *s) {
        cJSON *j = NULL;
        if (json_parse_string(s, &j) < 0)
                return NULL;
        return j;
}

/* ---- tables ---- */

typedef struct TablePrint {
        const CtlTable *t;
        CtlFormat format;
        const char *title;
} TablePrint;

static int do_table_print(FILE *f, const void *ud) {
        const TablePrint *p = ud;
        return ctl_table_print(p->t, p->format, p->title, "\t", f);
}

static CtlTable *sample_table(void) {
        CtlTable *t = NULL;
        cJSON *row1[3], *row2[3];

        if (ctl_table_new((const char *const[]){"A", "Lag in MB", "Tags"}, 3, &t) < 0)
                return NULL;
        ctl_table_set_align(t, "Lag in MB", CTL_ALIGN_RIGHT);
        row1[0] = cJSON_CreateString("x");
        row1[1] = json_int64_new(3);
        row1[2] = cJSON_CreateString("a: 1\nb: 2");
        row2[0] = cJSON_CreateString("yyyyyy");
        row2[1] = cJSON_CreateString("");
        row2[2] = NULL;
        if (ctl_table_add_row(t, row1) < 0 || ctl_table_add_row(t, row2) < 0)
                return ctl_table_free(t);
        return t;
}

TEST(table_pretty_all_rules_for_multiline_cells) {
        _cleanup_(ctl_table_freep) CtlTable *t = sample_table();
        _cleanup_free_ char *s = NULL;

        ASSERT_TRUE(t);
        s = render(do_table_print, &(TablePrint){t, CTL_FORMAT_PRETTY, NULL});
        ASSERT_STREQ(
                s,
                "+--------+-----------+------+\n"
                "| A      | Lag in MB | Tags |\n"
                "+--------+-----------+------+\n"
                "| x      |         3 | a: 1 |\n"
                "|        |           | b: 2 |\n"
                "+--------+-----------+------+\n"
                "| yyyyyy |           |      |\n"
                "+--------+-----------+------+\n");
}

TEST(table_pretty_title_and_empty) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        ASSERT_OK(ctl_table_new((const char *const[]){"TL", "LSN", "Reason"}, 3, &t));
        ctl_table_set_align(t, "TL", CTL_ALIGN_RIGHT);
        s = render(do_table_print, &(TablePrint){t, CTL_FORMAT_PRETTY, NULL});
        ASSERT_STREQ(
                s,
                "+----+-----+--------+\n"
                "| TL | LSN | Reason |\n"
                "+----+-----+--------+\n"
                "+----+-----+--------+\n");
        /* the title replaces the top border after its first '+', cut to fit */
        s2 = render(do_table_print, &(TablePrint){t, CTL_FORMAT_PRETTY, " Cluster: a-very-long-name "});
        ASSERT_TRUE(startswith(s2, "+ Cluster: a-very-lo+\n| TL |"));
}

TEST(table_tsv_json_yaml) {
        _cleanup_(ctl_table_freep) CtlTable *t = sample_table();
        _cleanup_free_ char *tsv = NULL, *json = NULL, *json_title = NULL, *yaml = NULL;

        ASSERT_TRUE(t);
        tsv = render(do_table_print, &(TablePrint){t, CTL_FORMAT_TSV, NULL});
        ASSERT_STREQ(tsv, "A\tLag in MB\tTags\nx\t3\ta: 1\nb: 2\nyyyyyy\t\t\n");
        json = render(do_table_print, &(TablePrint){t, CTL_FORMAT_JSON, NULL});
        ASSERT_STREQ(
                json,
                "[{\"A\": \"x\", \"Lag in MB\": 3, \"Tags\": \"a: 1\\nb: 2\"}, "
                "{\"A\": \"yyyyyy\", \"Lag in MB\": \"\", \"Tags\": \"\"}]\n");
        /* with a title (list) empty cells are left out */
        json_title = render(do_table_print, &(TablePrint){t, CTL_FORMAT_JSON, "x"});
        ASSERT_STREQ(
                json_title,
                "[{\"A\": \"x\", \"Lag in MB\": 3, \"Tags\": \"a: 1\\nb: 2\"}, {\"A\": \"yyyyyy\"}]\n");
        yaml = render(do_table_print, &(TablePrint){t, CTL_FORMAT_YAML, "x"});
        ASSERT_STREQ(yaml, "- A: x\n  Lag in MB: 3\n  Tags: 'a: 1\n\n    b: 2'\n- A: yyyyyy\n\n");
}

TEST(table_remove_column) {
        _cleanup_(ctl_table_freep) CtlTable *t = sample_table();
        _cleanup_free_ char *tsv = NULL;

        ASSERT_TRUE(t);
        ctl_table_remove_column(t, 0);
        ASSERT_EQ(t->n_columns, 2u);
        ASSERT_EQ(ctl_table_column(t, "A"), -ENOENT);
        ASSERT_EQ(ctl_table_column(t, "Tags"), 1);
        tsv = render(do_table_print, &(TablePrint){t, CTL_FORMAT_TSV, NULL});
        ASSERT_STREQ(tsv, "Lag in MB\tTags\n3\ta: 1\nb: 2\n\t\n");
}

TEST(value_to_string_like_python_str) {
        const struct {
                const char *json, *expected;
        } cases[] = {
                {"true", "True"},
                {"false", "False"},
                {"null", "None"},
                {"42", "42"},
                {"-7", "-7"},
                {"1.5", "1.5"},
                {"0.1", "0.1"},
                {"1e20", "1e+20"},
                {"\"s\"", "s"},
                {"[1, \"a\"]", "[1, \"a\"]"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cJSON_Deletep) cJSON *j = parse(cases[i].json);
                _cleanup_free_ char *s = NULL;
                ASSERT_TRUE(j);
                ASSERT_OK(ctl_value_to_string(j, &s));
                ASSERT_STREQ(s, cases[i].expected);
        }
}

TEST(format_from_string) {
        ASSERT_EQ((int)ctl_format_from_string("pretty"), CTL_FORMAT_PRETTY);
        ASSERT_EQ((int)ctl_format_from_string("yml"), CTL_FORMAT_YAML);
        ASSERT_EQ((int)ctl_format_from_string("json"), CTL_FORMAT_JSON);
        ASSERT_EQ((int)ctl_format_from_string("topology"), -EINVAL);
        ASSERT_EQ((int)ctl_format_from_string("xml"), -EINVAL);
}

/* ---- YAML and JSON dumps ---- */

TEST(yaml_dump_like_pyyaml) {
        _cleanup_(cJSON_Deletep) cJSON *j = parse(
                "{\"b\": {\"x\": \"on\", \"y\": \"\", \"z\": \"123\", \"w\": \"a: b\", \"u\": null, \"t\": "
                "true,"
                " \"s\": [1, \"x\", {\"k\": 2, \"a\": [3]}], \"r\": [], \"q\": {}}, \"a\": \"hello world\","
                " \"e\": \"#x\", \"d\": \"-x\", \"g\": \"null\", \"h\": \"1.0\", \"j\": \"2026-01-01\", "
                "\"k\": 1.5,"
                " \"l\": \"x y\", \"m\": \"~\"}");
        _cleanup_free_ char *s = NULL;

        ASSERT_TRUE(j);
        ASSERT_OK(ctl_yaml_dump_string(j, false, &s));
        ASSERT_STREQ(
                s,
                "a: hello world\nb:\n  q: {}\n  r: []\n  s:\n  - 1\n  - x\n  - a:\n    - 3\n    k: 2\n  t: "
                "true\n"
                "  u: null\n  w: 'a: b'\n  x: 'on'\n  y: ''\n  z: '123'\nd: -x\ne: '#x'\ng: 'null'\nh: "
                "'1.0'\n"
                "j: '2026-01-01'\nk: 1.5\nl: x y\nm: '~'\n");
}

TEST(yaml_dump_flow_and_empty) {
        _cleanup_(cJSON_Deletep) cJSON *j =
                parse("{\"nofailover\": true, \"x\": \"a\", \"z\": {\"q\": [1, \"on\"]}}");
        _cleanup_(cJSON_Deletep) cJSON *e = cJSON_CreateObject();
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        ASSERT_TRUE(j && e);
        ASSERT_OK(ctl_yaml_dump_string(j, true, &s));
        ASSERT_STREQ(s, "{nofailover: true, x: a, z: {q: [1, 'on']}}\n");
        ASSERT_OK(ctl_yaml_dump_string(e, false, &s2));
        ASSERT_STREQ(s2, "{}\n");
}

TEST(json_dump_like_python) {
        _cleanup_(cJSON_Deletep) cJSON *j =
                parse("[{\"a\": \"\xc3\xa9\\\"\\n\", \"b\": [1, 2.5, null, true]}]");
        _cleanup_free_ char *s = NULL;

        ASSERT_TRUE(j);
        ASSERT_OK(ctl_json_dump_string(j, &s));
        ASSERT_STREQ(s, "[{\"a\": \"\\u00e9\\\"\\n\", \"b\": [1, 2.5, null, true]}]");
}

/* ---- unified diff ---- */

typedef struct DiffArgs {
        const char *a, *b;
} DiffArgs;

static int do_diff(FILE *f, const void *ud) {
        const DiffArgs *d = ud;
        return ctl_unified_diff(d->a, d->b, f);
}

TEST(unified_diff_like_difflib) {
        _cleanup_free_ char *s = NULL, *same = NULL, *grow = NULL;
        const char *a =
                "line1\nline2\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10\nline11\nline12\n"
                "line13\nline14\n";
        const char *b =
                "line1\nline2x\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10\nline11\n"
                "line13\nline14\nline15\n";

        s = render(do_diff, &(DiffArgs){a, b});
        ASSERT_STREQ(
                s,
                "--- \n+++ \n@@ -1,5 +1,5 @@\n line1\n-line2\n+line2x\n line3\n line4\n line5\n"
                "@@ -9,6 +9,6 @@\n line9\n line10\n line11\n-line12\n line13\n line14\n+line15\n");
        same = render(do_diff, &(DiffArgs){a, a});
        ASSERT_STREQ(same, "");
        grow = render(do_diff, &(DiffArgs){"ttl: 30\n", "loop_wait: 5\nttl: 10\n"});
        ASSERT_STREQ(grow, "--- \n+++ \n@@ -1 +1,2 @@\n-ttl: 30\n+loop_wait: 5\n+ttl: 10\n");
}

/* ---- -s key=value and patch_config ---- */

static char *set_pairs(const char *initial, const char *const *pairs, size_t n, int *ret) {
        _cleanup_(cJSON_Deletep) cJSON *j = parse(initial);
        char *s = NULL;

        *ret = 0;
        for (size_t i = 0; i < n && *ret >= 0; i++) {
                _cleanup_free_ char *error = NULL;
                *ret = ctl_config_set_pair(j, pairs[i], &error);
        }
        if (*ret < 0 || ctl_json_dump_string(j, &s) < 0)
                return NULL;
        return s;
}

TEST(config_set_pairs) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        int r;

        a = set_pairs(
                "{\"ttl\": 30}",
                (const char *const[]){
                        "ttl=10",
                        "loop_wait = 5",
                        "postgresql.parameters.work_mem=8MB",
                        "postgresql.parameters.auto_explain.log_min_duration=5",
                        "postgresql.use_slots=false",
                        "synchronous_mode=on",
                        "x.y.z='on'"},
                7,
                &r);
        ASSERT_OK(r);
        ASSERT_STREQ(
                a,
                "{\"ttl\": 10, \"loop_wait\": 5, \"postgresql\": {\"parameters\": {\"work_mem\": \"8MB\", "
                "\"auto_explain.log_min_duration\": 5}, \"use_slots\": false}, \"synchronous_mode\": true, "
                "\"x\": {\"y\": {\"z\": \"on\"}}}");
        /* empty value = null deletes, and sections left empty disappear */
        b = set_pairs(
                "{\"ttl\": 30, \"postgresql\": {\"parameters\": {\"a.b\": 1}}}",
                (const char *const[]){"postgresql.parameters.a.b=", "ttl=null", "nothere="},
                3,
                &r);
        ASSERT_OK(r);
        ASSERT_STREQ(b, "{}");
        /* a scalar in the way is replaced by a section */
        c = set_pairs("{\"standby_cluster\": 5}", (const char *const[]){"standby_cluster.host=h"}, 1, &r);
        ASSERT_OK(r);
        ASSERT_STREQ(c, "{\"standby_cluster\": {\"host\": \"h\"}}");
        /* the value is YAML: lists and maps */
        d = set_pairs(
                "{}", (const char *const[]){"slots={s1: {type: physical}}", "ignore_slots=[1, 2]"}, 2, &r);
        ASSERT_OK(r);
        ASSERT_STREQ(d, "{\"slots\": {\"s1\": {\"type\": \"physical\"}}, \"ignore_slots\": [1, 2]}");
}

TEST(config_set_pair_errors) {
        _cleanup_(cJSON_Deletep) cJSON *j = cJSON_CreateObject();
        _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

        ASSERT_ERROR(ctl_config_set_pair(j, "ttl", &e1), EINVAL);
        ASSERT_STREQ(e1, "Invalid parameter setting ttl");
        ASSERT_ERROR(ctl_config_set_pair(j, "", &e2), EINVAL);
        ASSERT_STREQ(e2, "Invalid parameter setting ");
        ASSERT_ERROR(ctl_config_set_pair(j, " =1", &e3), EINVAL);
        ASSERT_STREQ(e3, "Invalid parameter setting  =1");
        ASSERT_ERROR(ctl_config_set_pair(j, "ttl=[", &e4), EINVAL);
        ASSERT_TRUE(startswith(e4, "Invalid value in parameter setting ttl=[: "));
        ASSERT_TRUE(cJSON_GetArraySize(j) == 0);
}

TEST(config_patch) {
        _cleanup_(cJSON_Deletep) cJSON *c =
                parse("{\"ttl\": 30, \"pg\": {\"a\": 1, \"b\": 2}, \"s\": \"5\", \"n\": null}");
        _cleanup_(cJSON_Deletep) cJSON *p1 =
                parse("{\"ttl\": null, \"pg\": {\"b\": 3, \"c\": 4}, \"s\": 5}");
        _cleanup_(cJSON_Deletep) cJSON *p2 = parse("{\"s\": 5, \"pg\": {\"a\": 1}, \"n\": null}");
        _cleanup_free_ char *s = NULL;

        ASSERT_TRUE(c && p1 && p2);
        ASSERT_TRUE(ctl_config_patch(c, p1));
        ASSERT_OK(ctl_json_dump_string(c, &s));
        /* "5" and 5 compare equal by their string forms: unchanged */
        ASSERT_STREQ(s, "{\"pg\": {\"a\": 1, \"b\": 3, \"c\": 4}, \"s\": \"5\", \"n\": null}");
        /* removing a key whose value is null is not a change (Patroni's pop() is not None) */
        ASSERT_FALSE(ctl_config_patch(c, p2));
}

TEST(yaml_parse_typing_and_errors) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL, *empty = NULL;
        _cleanup_free_ char *s = NULL, *error = NULL;

        ASSERT_OK(ctl_yaml_parse("t", "a: on\nb: '5'\nc: 5\nd: 1.5\ne: ~\nf: [x, 2]\n", &j, NULL));
        ASSERT_OK(ctl_json_dump_string(j, &s));
        ASSERT_STREQ(s, "{\"a\": true, \"b\": \"5\", \"c\": 5, \"d\": 1.5, \"e\": null, \"f\": [\"x\", 2]}");
        ASSERT_OK(ctl_yaml_parse("t", "", &empty, NULL));
        ASSERT_TRUE(cJSON_IsNull(empty));
        ASSERT_ERROR(ctl_yaml_parse("f.yaml", "ttl: [\n", &j, &error), EINVAL);
        ASSERT_TRUE(startswith(error, "f.yaml:2:1: "));
}

/* ---- cluster view ---- */

TEST(conn_url_parse) {
        _cleanup_free_ char *h1 = NULL, *d1 = NULL, *h2 = NULL, *d2 = NULL, *h3 = NULL, *d3 = NULL;
        unsigned p;

        ASSERT_OK(ctl_conn_url_parse("postgres://Node1.Example:6432/appdb", &h1, &p, &d1));
        ASSERT_STREQ(h1, "node1.example");
        ASSERT_EQ(p, 6432u);
        ASSERT_STREQ(d1, "appdb");
        ASSERT_OK(ctl_conn_url_parse("postgres://user:pw@[::1]/postgres?sslmode=require", &h2, &p, &d2));
        ASSERT_STREQ(h2, "::1");
        ASSERT_EQ(p, 5432u);
        ASSERT_STREQ(d2, "postgres");
        ASSERT_OK(ctl_conn_url_parse("postgres://10.0.0.1", &h3, &p, &d3));
        ASSERT_STREQ(d3, "");
        ASSERT_ERROR(ctl_conn_url_parse("postgres:///db", NULL, NULL, NULL), EINVAL);
        ASSERT_ERROR(ctl_conn_url_parse("127.0.0.1:5432", NULL, NULL, NULL), EINVAL);
        ASSERT_ERROR(ctl_conn_url_parse("postgres://h:99999/db", NULL, NULL, NULL), EINVAL);
}

static DcsCluster *make_cluster(const char *const *kv, size_t n) {
        EtcdKv *kvs = new0(EtcdKv, n / 2);
        DcsCluster *c = NULL;

        for (size_t i = 0; i < n / 2; i++) {
                kvs[i].key = (char *)kv[2 * i];
                kvs[i].value = (char *)kv[2 * i + 1];
                kvs[i].value_size = strlen(kv[2 * i + 1]);
                kvs[i].mod_revision = kvs[i].create_revision = (int64_t)i + 10;
                kvs[i].version = 1;
        }
        if (dcs_cluster_parse("/service/demo/", kvs, n / 2, 100, &c) < 0)
                c = NULL;
        free(kvs);
        return c;
}

#define M(name, extra)                                                                                      \
        "/service/demo/members/" name,                                                                      \
                "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:8008/" \
                "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\"" extra "}"

static DcsCluster *sample_cluster(bool paused) {
        const char *kv[] = {
                "/service/demo/config",
                paused ? "{\"ttl\":30,\"loop_wait\":10,\"pause\":true}" : "{\"ttl\":30,\"loop_wait\":10}",
                "/service/demo/initialize",
                "7712574132163962109",
                "/service/demo/leader",
                "n1",
                "/service/demo/status",
                "{\"optime\":83886752}",
                "/service/demo/sync",
                "{\"leader\":\"n1\",\"sync_standby\":\"n2\"}",
                "/service/demo/failover",
                "{\"leader\":\"n1\",\"member\":\"n3\",\"scheduled_at\":\"2030-01-01T10:00:00+00:00\"}",
                "/service/demo/history",
                "[[1,83886472,\"no recovery target "
                "specified\",\"2026-11-26T20:07:47.977486+00:00\",\"n1\"],[2,99]]",
                M("n1", ",\"role\":\"master\",\"xlog_location\":83886752,\"timeline\":3"),
                M("n2", ",\"xlog_location\":81788928,\"timeline\":3,\"tags\":{\"zone\":\"b\"}"),
                M("n3",
                  ",\"xlog_location\":83886760,\"timeline\":3,\"pending_restart\":true,"
                  "\"scheduled_restart\":{\"schedule\":\"2030-01-01T00:00:00+00:00\",\"postgres_version\":"
                  "\"16.1\"},"
                  "\"tags\":{\"replicatefrom\":\"n2\"}"),
                M("n4", ""),
        };
        return make_cluster(kv, ELEMENTSOF(kv));
}

typedef struct ClusterPrint {
        const DcsCluster *c;
        CtlListOptions o;
} ClusterPrint;

static int do_cluster_print(FILE *f, const void *ud) {
        const ClusterPrint *p = ud;
        return ctl_cluster_print(p->c, &p->o, f);
}

TEST(cluster_list_pretty) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = sample_cluster(true);
        _cleanup_free_ char *s = NULL;

        ASSERT_TRUE(c);
        s = render(do_cluster_print, &(ClusterPrint){c, {.name = "demo", .format = CTL_FORMAT_PRETTY}});
        /* all on one host: host:port everywhere; lag 2 MiB for n2, 0 when ahead (n3), unknown without
         * xlog_location (n4); n2 is the sync standby; the optional columns appear because someone has a
         * value */
        ASSERT_STREQ(
                s,
                "+ Cluster: demo ----------+--------------+---------+----+-----------+-----------------+"
                "---------------------------------------------+-------------------+\n"
                "| Member | Host           | Role         | State   | TL | Lag in MB | Pending restart | "
                "Scheduled restart                           | Tags              |\n"
                "+--------+----------------+--------------+---------+----+-----------+-----------------+"
                "---------------------------------------------+-------------------+\n"
                "| n1     | 127.0.0.1:5432 | Leader       | running |  3 |           |                 | "
                "                                            |                   |\n"
                "| n2     | 127.0.0.1:5432 | Sync Standby | running |  3 |         2 |                 | "
                "                                            | zone: b           |\n"
                "| n3     | 127.0.0.1:5432 | Replica      | running |  3 |         0 | *               | "
                "2030-01-01T00:00:00+00:00 if version < 16.1 | replicatefrom: n2 |\n"
                "| n4     | 127.0.0.1:5432 | Replica      | running |    |   unknown |                 | "
                "                                            |                   |\n"
                "+--------+----------------+--------------+---------+----+-----------+-----------------+"
                "---------------------------------------------+-------------------+\n"
                " Maintenance mode: on\n"
                " Switchover scheduled at: 2030-01-01T10:00:00+00:00\n"
                "                    from: n1\n"
                "                      to: n3\n");
}

TEST(cluster_topology_and_json) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = sample_cluster(false);
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        _cleanup_free_ char *json = NULL, *tsv = NULL;
        const char *expected[] = {"n1", "+ n2", "  + n3", "+ n4"};

        ASSERT_TRUE(c);
        ASSERT_OK(
                ctl_cluster_table(c, &(CtlListOptions){.name = "demo", .format = CTL_FORMAT_TOPOLOGY}, &t));
        ASSERT_EQ(t->n_rows, 4u);
        for (size_t i = 0; i < 4; i++)
                ASSERT_STREQ(t->cells[i * t->n_columns + 1]->valuestring, expected[i]);
        json = render(do_cluster_print, &(ClusterPrint){c, {.name = "demo", .format = CTL_FORMAT_JSON}});
        ASSERT_TRUE(startswith(
                json,
                "[{\"Cluster\": \"demo\", \"Member\": \"n1\", \"Host\": \"127.0.0.1:5432\", \"Role\": "
                "\"Leader\", \"State\": \"running\", \"TL\": 3}, {\"Cluster\": \"demo\", \"Member\": "
                "\"n2\", \"Host\": \"127.0.0.1:5432\", \"Role\": \"Sync Standby\", \"State\": "
                "\"running\", \"TL\": 3, \"Lag in MB\": 2, \"Tags\": {\"zone\": \"b\"}}"));
        tsv = render(do_cluster_print, &(ClusterPrint){c, {.name = "demo", .format = CTL_FORMAT_TSV}});
        ASSERT_TRUE(strstr(tsv, "demo\tn2\t127.0.0.1:5432\tSync Standby\trunning\t3\t2\t\t\t{zone: b}\n"));
        /* no service lines outside pretty output */
        ASSERT_FALSE(strstr(tsv, "Maintenance"));
}

TEST(cluster_host_without_port_and_roles) {
        const char *kv[] = {
                "/service/demo/leader",
                "a",
                "/service/demo/config",
                "{\"standby_cluster\":{\"host\":\"x\"}}",
                "/service/demo/members/a",
                ("{\"conn_url\":\"postgres://10.0.0.1:5432/postgres\","
                 "\"role\":\"standby_leader\",\"state\":\"running\"}"),
                "/service/demo/members/b",
                "{\"conn_url\":\"postgres://10.0.0.2/postgres\",\"role\":\"replica\",\"state\":\"running\"}",
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *c = make_cluster(kv, ELEMENTSOF(kv));
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;

        ASSERT_TRUE(c);
        ASSERT_OK(ctl_cluster_table(c, &(CtlListOptions){.name = "demo", .format = CTL_FORMAT_PRETTY}, &t));
        ASSERT_EQ(t->n_columns, 7u); /* no optional column */
        ASSERT_STREQ(t->cells[2]->valuestring, "10.0.0.1");
        ASSERT_STREQ(t->cells[3]->valuestring, "Standby Leader");

        ASSERT_TRUE(ctl_member_has_role(c, &c->members[0], "leader"));
        ASSERT_TRUE(ctl_member_has_role(c, &c->members[0], "standby-leader"));
        ASSERT_FALSE(ctl_member_has_role(c, &c->members[0], "primary"));
        ASSERT_FALSE(ctl_member_has_role(c, &c->members[0], "replica"));
        ASSERT_TRUE(ctl_member_has_role(c, &c->members[1], "replica"));
        ASSERT_TRUE(ctl_member_has_role(c, &c->members[1], "standby"));
        ASSERT_TRUE(ctl_member_has_role(c, &c->members[1], "any"));
        ASSERT_FALSE(ctl_member_has_role(c, &c->members[1], "leader"));
        ASSERT_TRUE(ctl_role_valid("master"));
        ASSERT_FALSE(ctl_role_valid("sync"));
        ASSERT_FALSE(ctl_is_paused(c));
}

typedef struct HistoryPrint {
        const DcsCluster *c;
        CtlFormat f;
} HistoryPrint;

static int do_history(FILE *f, const void *ud) {
        const HistoryPrint *p = ud;
        return ctl_history_print(p->c, p->f, f);
}

TEST(history_table) {
        _cleanup_(dcs_cluster_freep) DcsCluster *c = sample_cluster(false);
        _cleanup_free_ char *s = NULL, *j = NULL;

        ASSERT_TRUE(c);
        s = render(do_history, &(HistoryPrint){c, CTL_FORMAT_PRETTY});
        ASSERT_STREQ(
                s,
                "+----+----------+------------------------------+----------------------------------+--------"
                "----+\n"
                "| TL |      LSN | Reason                       | Timestamp                        | New "
                "Leader |\n"
                "+----+----------+------------------------------+----------------------------------+--------"
                "----+\n"
                "|  1 | 83886472 | no recovery target specified | 2026-11-26T20:07:47.977486+00:00 | n1     "
                "    |\n"
                "|  2 |       99 |                              |                                  |        "
                "    |\n"
                "+----+----------+------------------------------+----------------------------------+--------"
                "----+\n");
        j = render(do_history, &(HistoryPrint){c, CTL_FORMAT_JSON});
        ASSERT_TRUE(strstr(
                j, "{\"TL\": 2, \"LSN\": 99, \"Reason\": \"\", \"Timestamp\": \"\", \"New Leader\": \"\"}"));
}

TEST(pg_version_format) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        ASSERT_OK(ctl_format_pg_version(150004, &a));
        ASSERT_STREQ(a, "15.4");
        ASSERT_OK(ctl_format_pg_version(90605, &b));
        ASSERT_STREQ(b, "9.6.5");
}

TEST(parse_scheduled) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *f = NULL;

        ASSERT_OK(setenv("TZ", "UTC", 1));
        tzset();
        ASSERT_OK(ctl_parse_scheduled("2030-01-02T03:04:05+02:00", &a));
        ASSERT_STREQ(a, "2030-01-02T03:04:05+02:00");
        ASSERT_OK(ctl_parse_scheduled("2030-01-02 03:04Z", &b));
        ASSERT_STREQ(b, "2030-01-02T03:04:00+00:00");
        ASSERT_OK(ctl_parse_scheduled("2030-01-02T03:04:05.25-0130", &c));
        ASSERT_STREQ(c, "2030-01-02T03:04:05.250000-01:30");
        ASSERT_OK(ctl_parse_scheduled("2030-06-01T12:00", &d)); /* local time zone */
        ASSERT_STREQ(d, "2030-06-01T12:00:00+00:00");
        ASSERT_OK(
                ctl_parse_scheduled("2030-01-02T03:04:05.000000+00:00", &f)); /* isoformat drops zero usec */
        ASSERT_STREQ(f, "2030-01-02T03:04:05+00:00");
        ASSERT_OK(ctl_parse_scheduled("now", &e));
        ASSERT_TRUE(e == NULL);
        ASSERT_ERROR(ctl_parse_scheduled("tomorrow", &e), EINVAL);
        ASSERT_ERROR(ctl_parse_scheduled("2030-13-01", &e), EINVAL);
        ASSERT_ERROR(ctl_parse_scheduled("2030-01-01T25:00", &e), EINVAL);
        ASSERT_ERROR(ctl_parse_scheduled("2030-01-01T10:00 junk", &e), EINVAL);
}

TEST(timestamp_precision) {
        _cleanup_free_ char *a = ctl_timestamp(0), *b = ctl_timestamp(6);
        ASSERT_EQ(strlen(a), strlen("2026-11-26 21:46:25"));
        ASSERT_EQ(strlen(b), strlen("2026-11-26 21:46:25.55127"));
}

DEFINE_TEST_MAIN
