/* SPDX-License-Identifier: MIT */
/*
 * The cluster as patronictl 3.0.2 shows it: the `list`/`topology` members table built from one DCS read
 * (Patroni's cluster_as_json() rules for role, host, lag and the optional columns), the history table,
 * member selection by role, and conn_url parsing. Pure: the DcsCluster comes from dcs_cluster_parse().
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ctl.h"
#include "pgha/dcs.h"
#include "pgha/json.h"

int ctl_conn_url_parse(const char *url, char **ret_host, unsigned *ret_port, char **ret_dbname) {
        _cleanup_free_ char *host = NULL, *db = NULL;
        const char *p, *netloc_end, *at, *hs, *he, *port = NULL;
        unsigned long portnum = 5432;

        if (!url)
                return -EINVAL;
        p = strstr(url, "://");
        if (!p)
                return -EINVAL;
        p += 3;
        netloc_end = p + strcspn(p, "/?#");
        /* userinfo@ */
        at = memrchr(p, '@', (size_t)(netloc_end - p));
        hs = at ? at + 1 : p;
        if (*hs == '[') {
                he = memchr(hs, ']', (size_t)(netloc_end - hs));
                if (!he)
                        return -EINVAL;
                hs++;
                if (he + 1 < netloc_end && he[1] == ':')
                        port = he + 2;
        } else {
                he = memchr(hs, ':', (size_t)(netloc_end - hs));
                if (he)
                        port = he + 1;
                else
                        he = netloc_end;
        }
        if (he == hs)
                return -EINVAL;
        host = strndup(hs, (size_t)(he - hs));
        if (!host)
                return -ENOMEM;
        for (char *c = host; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                        *c = (char)(*c - 'A' + 'a');
        if (port && port < netloc_end) {
                char *end;
                portnum = strtoul(port, &end, 10);
                if (end != netloc_end || portnum == 0 || portnum > 65535)
                        return -EINVAL;
        }
        if (*netloc_end == '/')
                db = strndup(netloc_end + 1, strcspn(netloc_end + 1, "?#"));
        else
                db = strdup("");
        if (!db)
                return -ENOMEM;
        if (ret_host)
                *ret_host = TAKE_PTR(host);
        if (ret_port)
                *ret_port = (unsigned)portnum;
        if (ret_dbname)
                *ret_dbname = TAKE_PTR(db);
        return 0;
}

bool ctl_role_valid(const char *role) {
        static const char *const roles[] = {
                "leader",
                "primary",
                "standby-leader",
                "replica",
                "standby",
                "any",
                "master",
        };
        for (size_t i = 0; role && i < ELEMENTSOF(roles); i++)
                if (streq(role, roles[i]))
                        return true;
        return false;
}

bool ctl_member_has_role(const DcsCluster *c, const DcsMember *m, const char *role) {
        bool is_leader = c->leader && !isempty(c->leader) && streq(c->leader, m->name);

        if (streq(role, "any"))
                return true;
        if (streq(role, "replica") || streq(role, "standby"))
                return !is_leader;
        if (!is_leader)
                return false;
        if (streq(role, "leader"))
                return true;
        if (streq(role, "primary") || streq(role, "master"))
                return !streq_ptr(m->role, "standby_leader");
        if (streq(role, "standby-leader"))
                return !streq_ptr(m->role, "master");
        return false;
}

static bool value_is_true(const cJSON *v) {
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v);
        if (cJSON_IsNumber(v))
                return v->valuedouble != 0;
        if (cJSON_IsString(v)) {
                const char *s = v->valuestring;
                return strcasecmp(s, "true") == 0 || strcasecmp(s, "on") == 0 || strcasecmp(s, "yes") == 0 ||
                        streq(s, "1");
        }
        return false;
}

bool ctl_is_paused(const DcsCluster *c) {
        return c->config && value_is_true(cJSON_GetObjectItemCaseSensitive(c->config, "pause"));
}

static bool is_standby_cluster(const DcsCluster *c) {
        const cJSON *s;

        if (!c->config || c->config_revision <= 0)
                return false;
        s = cJSON_GetObjectItemCaseSensitive(c->config, "standby_cluster");
        return cJSON_IsObject(s) &&
                (json_truthy(cJSON_GetObjectItemCaseSensitive(s, "host")) ||
                 json_truthy(cJSON_GetObjectItemCaseSensitive(s, "port")) ||
                 json_truthy(cJSON_GetObjectItemCaseSensitive(s, "restore_command")));
}

/* One member as cluster_as_json() describes it. */
typedef struct MemberView {
        const DcsMember *m;
        const char *role; /* leader, standby_leader, sync_standby, replica */
        char *host;       /* NULL: no host in conn_url */
        unsigned port;
} MemberView;

static void views_free(MemberView *v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i].host);
        free(v);
}

static int views_build(const DcsCluster *c, MemberView **ret) {
        MemberView *v;

        v = new0(MemberView, c->n_members);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_members; i++) {
                const DcsMember *m = &c->members[i];
                v[i].m = m;
                if (c->leader && streq(c->leader, m->name))
                        v[i].role = is_standby_cluster(c) ? "standby_leader" : "leader";
                else if (dcs_cluster_is_sync_standby(c, m->name))
                        v[i].role = "sync_standby";
                else
                        v[i].role = "replica";
                if (m->conn_url) {
                        int r = ctl_conn_url_parse(m->conn_url, &v[i].host, &v[i].port, NULL);
                        if (r == -ENOMEM) {
                                views_free(v, c->n_members);
                                return r;
                        }
                }
        }
        *ret = v;
        return 0;
}

/* "sync_standby" → "Sync Standby" (Python's str.replace('_', ' ').title()). */
static char *role_title(const char *role) {
        char *s = strdup(role);
        bool start = true;

        if (!s)
                return NULL;
        for (char *p = s; *p; p++) {
                if (*p == '_')
                        *p = ' ';
                if (*p >= 'a' && *p <= 'z' && start)
                        *p = (char)(*p - 'a' + 'A');
                else if (*p >= 'A' && *p <= 'Z' && !start)
                        *p = (char)(*p - 'A' + 'a');
                start = !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'));
        }
        return s;
}

/* topology_sort(): the leader first, then each replica under its replicatefrom parent (else under the
 * leader), depth-first, names prefixed with "+ " and two spaces per extra level. */
static const char *replica_parent(const MemberView *v, size_t n, size_t i, const char *root) {
        const cJSON *rf = json_get(v[i].m->tags, "replicatefrom");
        const char *p = cJSON_IsString(rf) ? rf->valuestring : NULL;

        /* the parent must be another replica, else the leader */
        if (isempty(p) || streq(p, v[i].m->name))
                return root;
        for (size_t j = 0; j < n; j++)
                if (!strstr(v[j].role, "leader") && streq(v[j].m->name, p))
                        return p;
        return root;
}

static int topology_walk(
        const MemberView *v,
        size_t n,
        const char *root,
        const char *parent,
        unsigned level,
        size_t *order,
        char **names,
        size_t *k) {
        for (size_t i = 0; i < n; i++) {
                if (strstr(v[i].role, "leader") || !streq_ptr(replica_parent(v, n, i, root), parent))
                        continue;
                if (*k >= n)
                        return 0;
                order[*k] = i;
                if (asprintf(&names[*k], "%*s+ %s", (int)(2 * level), "", v[i].m->name) < 0)
                        return -ENOMEM;
                (*k)++;
                if (level < 64) {
                        int r = topology_walk(v, n, root, v[i].m->name, level + 1, order, names, k);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int ctl_cluster_table(const DcsCluster *c, const CtlListOptions *o, CtlTable **ret) {
        static const char *const base[] = {"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"};
        static const char *const extra[] = {"Pending restart", "Scheduled restart", "Tags"};
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        const char *columns[ELEMENTSOF(base) + ELEMENTSOF(extra)];
        bool show[ELEMENTSOF(extra)] = {}, append_port = false;
        size_t n_columns = 0, n_with_host = 0, *order = NULL, n_order = 0;
        char **names = NULL;
        MemberView *v = NULL;
        int64_t cluster_lsn = dcs_cluster_optime(c);
        int r;

        r = views_build(c, &v);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(base); i++)
                columns[n_columns++] = base[i];
        for (size_t i = 0; i < c->n_members; i++) {
                const DcsMember *m = v[i].m;
                if (!v[i].host)
                        continue;
                n_with_host++;
                show[0] = show[0] || m->pending_restart;
                show[1] = show[1] || json_truthy(m->scheduled_restart);
                show[2] = show[2] || json_truthy(m->tags);
                if (v[i].port != 5432)
                        append_port = true;
                for (size_t j = 0; j < i; j++)
                        if (v[j].host && streq(v[j].host, v[i].host))
                                append_port = true;
        }
        (void)n_with_host;
        for (size_t i = 0; i < ELEMENTSOF(extra); i++)
                if (o->extended || show[i])
                        columns[n_columns++] = extra[i];

        r = ctl_table_new(columns, n_columns, &t);
        if (r < 0)
                goto finish;
        ctl_table_set_align(t, "Lag in MB", CTL_ALIGN_RIGHT);
        ctl_table_set_align(t, "TL", CTL_ALIGN_RIGHT);

        order = new0(size_t, c->n_members);
        names = new0(char *, c->n_members);
        if (!order || !names) {
                r = -ENOMEM;
                goto finish;
        }
        if (o->format == CTL_FORMAT_TOPOLOGY) {
                size_t leader = SIZE_MAX;
                const char *root;
                for (size_t i = 0; i < c->n_members; i++)
                        if (strstr(v[i].role, "leader") && leader == SIZE_MAX)
                                leader = i;
                if (leader != SIZE_MAX) {
                        order[n_order] = leader;
                        names[n_order] = strdup(v[leader].m->name);
                        if (!names[n_order++]) {
                                r = -ENOMEM;
                                goto finish;
                        }
                }
                root = leader != SIZE_MAX ? v[leader].m->name : NULL;
                r = topology_walk(v, c->n_members, root, root, 0, order, names, &n_order);
                if (r < 0)
                        goto finish;
        } else
                for (; n_order < c->n_members; n_order++) {
                        order[n_order] = n_order;
                        names[n_order] = strdup(v[n_order].m->name);
                        if (!names[n_order]) {
                                r = -ENOMEM;
                                goto finish;
                        }
                }

        for (size_t k = 0; k < n_order; k++) {
                const MemberView *mv = &v[order[k]];
                const DcsMember *m = mv->m;
                cJSON *items[ELEMENTSOF(base) + ELEMENTSOF(extra)] = {};
                _cleanup_free_ char *host = NULL, *title = NULL;
                size_t col = 0;

                if (mv->host && append_port && mv->port > 0) {
                        if (asprintf(&host, "%s:%u", mv->host, mv->port) < 0)
                                host = NULL;
                } else
                        host = strdup(mv->host ?: "");
                title = role_title(mv->role);
                items[col++] = cJSON_CreateString(o->name);
                items[col++] = cJSON_CreateString(names[k]);
                items[col++] = cJSON_CreateString(strempty(host));
                items[col++] = cJSON_CreateString(strempty(title));
                items[col++] = cJSON_CreateString(strempty(m->state));
                items[col++] = m->has_timeline ? json_int64_new(m->timeline) : cJSON_CreateString("");
                if (c->leader && streq(c->leader, m->name))
                        items[col++] = cJSON_CreateString("");
                else if (!m->has_xlog_location)
                        items[col++] = cJSON_CreateString("unknown");
                else {
                        int64_t lag = cluster_lsn >= m->xlog_location ? cluster_lsn - m->xlog_location : 0;
                        items[col++] = json_int64_new((int64_t)rint((double)lag / 1024.0 / 1024.0));
                }
                for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
                        if (!(o->extended || show[i]))
                                continue;
                        if (i == 0)
                                items[col++] = cJSON_CreateString(m->pending_restart ? "*" : "");
                        else if (i == 1) {
                                const cJSON *sched = json_get(m->scheduled_restart, "schedule");
                                const cJSON *ver = json_get(m->scheduled_restart, "postgres_version");
                                _cleanup_free_ char *s = NULL, *vs = NULL, *text = NULL;
                                if (!m->scheduled_restart) {
                                        items[col++] = cJSON_CreateString("");
                                        continue;
                                }
                                if (ctl_value_to_string(sched, &s) < 0 ||
                                    (ver && ctl_value_to_string(ver, &vs) < 0))
                                        r = -ENOMEM;
                                else if (
                                        asprintf(
                                                &text,
                                                "%s%s%s",
                                                s,
                                                vs ? " if version < " : "",
                                                strempty(vs)) < 0)
                                        text = NULL;
                                items[col++] = cJSON_CreateString(strempty(text));
                        } else {
                                _cleanup_free_ char *y = NULL;
                                if (!json_truthy(m->tags)) {
                                        items[col++] = cJSON_CreateString("");
                                        continue;
                                }
                                if (o->format == CTL_FORMAT_JSON || o->format == CTL_FORMAT_YAML) {
                                        items[col++] = cJSON_Duplicate(m->tags, true);
                                        continue;
                                }
                                if (ctl_yaml_dump_string(m->tags, o->format == CTL_FORMAT_TSV, &y) < 0)
                                        r = -ENOMEM;
                                else {
                                        size_t l = strlen(y);
                                        while (l > 0 && strchr(" \n\t", y[l - 1]))
                                                y[--l] = '\0';
                                }
                                items[col++] = cJSON_CreateString(strempty(y));
                        }
                }
                if (ctl_table_add_row(t, items) < 0)
                        r = -ENOMEM;
                if (r < 0)
                        goto finish;
        }
        *ret = TAKE_PTR(t);
        r = 0;
finish:
        for (size_t k = 0; names && k < c->n_members; k++)
                free(names[k]);
        free(names);
        free(order);
        views_free(v, c->n_members);
        return r;
}

int ctl_cluster_print(const DcsCluster *c, const CtlListOptions *o, FILE *f) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        _cleanup_free_ char *title = NULL;
        bool pretty = o->format == CTL_FORMAT_PRETTY || o->format == CTL_FORMAT_TOPOLOGY;
        int r;

        r = ctl_cluster_table(c, o, &t);
        if (r < 0)
                return r;
        if (asprintf(&title, " Cluster: %s ", o->name) < 0)
                return -ENOMEM;
        if (pretty)
                ctl_table_remove_column(t, 0);
        r = ctl_table_print(t, o->format, title, "\t", f);
        if (r < 0 || !pretty)
                return r;

        if (ctl_is_paused(c) || c->failover_scheduled_at) {
                fputs(" ", f);
                if (ctl_is_paused(c))
                        fprintf(f, "Maintenance mode: on%s", c->failover_scheduled_at ? "\n " : "");
                if (c->failover_scheduled_at) {
                        /* as Patroni shows it: parsed, then isoformat() */
                        _cleanup_free_ char *at = NULL;
                        if (ctl_parse_scheduled(c->failover_scheduled_at, &at) < 0 || !at)
                                at = strdup(c->failover_scheduled_at);
                        fprintf(f, "Switchover scheduled at: %s", strna(at));
                        if (!isempty(c->failover_leader))
                                fprintf(f, "\n%24s: %s", "from", c->failover_leader);
                        if (!isempty(c->failover_member))
                                fprintf(f, "\n%24s: %s", "to", c->failover_member);
                }
                fputc('\n', f);
        }
        return 0;
}

int ctl_history_print(const DcsCluster *c, CtlFormat format, FILE *f) {
        static const char *const columns[] = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        const cJSON *line;
        int r;

        r = ctl_table_new(columns, ELEMENTSOF(columns), &t);
        if (r < 0)
                return r;
        ctl_table_set_align(t, "TL", CTL_ALIGN_RIGHT);
        ctl_table_set_align(t, "LSN", CTL_ALIGN_RIGHT);
        cJSON_ArrayForEach (line, c->history) {
                cJSON *items[ELEMENTSOF(columns)] = {};
                size_t i = 0;
                const cJSON *e;
                if (!cJSON_IsArray(line))
                        continue;
                cJSON_ArrayForEach (e, line) {
                        if (i >= ELEMENTSOF(columns))
                                break;
                        items[i++] = cJSON_Duplicate(e, true);
                }
                r = ctl_table_add_row(t, items);
                if (r < 0)
                        return r;
        }
        return ctl_table_print(t, format, NULL, "\t", f);
}

int ctl_format_pg_version(int64_t version, char **ret) {
        char *s;
        int r;

        if (version < 100000)
                r = asprintf(
                        &s,
                        "%" PRIi64 ".%" PRIi64 ".%" PRIi64,
                        version / 10000,
                        version / 100 % 100,
                        version % 100);
        else
                r = asprintf(&s, "%" PRIi64 ".%" PRIi64, version / 10000, version % 100);
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int ctl_parse_scheduled(const char *s, char **ret) {
        struct tm tm = {};
        const char *p;
        long offset = 0;
        int usec = -1, n = 0;
        bool has_tz = false;
        char sign;

        if (!s || streq(s, "now")) {
                *ret = NULL;
                return 0;
        }
        p = s + strspn(s, " ");
        if (sscanf(p, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3)
                return -EINVAL;
        p += n;
        if (*p == 'T' || *p == 't' || *p == ' ') {
                int h, m, sec = 0;
                p++;
                n = 0;
                if (sscanf(p, "%2d:%2d%n", &h, &m, &n) != 2)
                        return -EINVAL;
                p += n;
                if (*p == ':') {
                        n = 0;
                        if (sscanf(p + 1, "%2d%n", &sec, &n) != 1)
                                return -EINVAL;
                        p += 1 + n;
                        if (*p == '.' || *p == ',') {
                                char digits[7] = "000000";
                                size_t k = 0;
                                p++;
                                while (*p >= '0' && *p <= '9') {
                                        if (k < 6)
                                                digits[k++] = *p;
                                        p++;
                                }
                                usec = (int)strtol(digits, NULL, 10);
                        }
                }
                if (h > 23 || m > 59 || sec > 59)
                        return -EINVAL;
                tm.tm_hour = h, tm.tm_min = m, tm.tm_sec = sec;
        }
        p += strspn(p, " ");
        if (*p == 'Z' || *p == 'z') {
                has_tz = true;
                p++;
        } else if (*p == '+' || *p == '-') {
                int oh = 0, om = 0;
                sign = *p++;
                n = 0;
                if (sscanf(p, "%2d%n", &oh, &n) != 1)
                        return -EINVAL;
                p += n;
                if (*p == ':')
                        p++;
                n = 0;
                if (*p >= '0' && *p <= '9' && sscanf(p, "%2d%n", &om, &n) == 1)
                        p += n;
                if (oh > 23 || om > 59)
                        return -EINVAL;
                offset = (sign == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
                has_tz = true;
        }
        p += strspn(p, " ");
        if (*p)
                return -EINVAL;
        if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        if (!has_tz) {
                struct tm copy = tm;
                time_t t;
                copy.tm_isdst = -1;
                t = mktime(&copy);
                if (t == (time_t)-1)
                        return -EINVAL;
                offset = copy.tm_gmtoff;
                tm = copy;
        }
        {
                char date[64], usecs[16] = "", tz[48];
                long a = labs(offset);
                strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
                if (usec > 0)
                        snprintf(usecs, sizeof(usecs), ".%06d", usec);
                snprintf(tz, sizeof(tz), "%c%02ld:%02ld", offset < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
                if (asprintf(ret, "%s%s%s", date, usecs, tz) < 0)
                        return -ENOMEM;
        }
        return 0;
}
