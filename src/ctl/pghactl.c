/* SPDX-License-Identifier: MIT */
/*
 * pghactl: the operator's command line, interchangeable with patronictl 3.0.2. The command tree is one
 * table of verbs, each declaring its options and positional arguments for the one parser (ctl_args.c);
 * every command reads the cluster straight from etcd and calls the members' REST API where patronictl
 * does (edit-config writes the config key itself with a compare on its mod_revision). Output matches
 * patronictl's; errors are one "Error: ..." line on stderr and exit code 1. See docs/pghactl.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl-args.h"
#include "ctl-internal.h"
#include "pgha/fileio.h"
#include "pgha/json.h"
#include "pgha/log.h"

#define PATRONICTL_VERSION "3.0.2"

typedef struct Verb {
        CtlCommandSpec spec;
        int (*run)(Ctl *c, const CtlArgs *a);
        const char *help;
} Verb;

/* The positional cluster name, else the configuration's scope. */
static int cluster_name(Ctl *c, const char *arg, const char **ret) {
        const char *name = ctl_scope(c, arg);

        if (!name)
                return ctl_fail("No cluster name: give it as an argument or set scope in the configuration");
        *ret = name;
        return 0;
}

static CtlFormat format_arg(const CtlArgs *a, CtlFormat def) {
        /* validated by the parser */
        return a->value[CTL_SLOT_FORMAT] ? ctl_format_from_string(a->value[CTL_SLOT_FORMAT]) : def;
}

static int print_members(const DcsCluster *cluster, const char *name) {
        CtlListOptions o = {.name = name, .format = CTL_FORMAT_PRETTY};
        return ctl_cluster_print(cluster, &o, stdout);
}

static int aborted(int r) {
        if (r == -EPIPE) {
                fflush(stdout);
                fputs("Aborted!\n", stderr);
                return -EINVAL;
        }
        return r;
}

/* The time of a `what` ("restart", "switchover"): --scheduled as given, else (unless --force) asked with
 * patronictl's prompt, which shows an example an hour from now ("now" is the default; patronictl's
 * switchover prompt has a stray space before ")", kept for identical output), then parsed. *ret_text gets
 * what was given or typed, *ret_at the parsed time (NULL for "now"). Prints patronictl's error and returns
 * a negative errno on failure. */
static int ask_scheduled(const char *what, const char *given, bool force, char **ret_text, char **ret_at) {
        _cleanup_free_ char *scheduled = NULL;
        int r;

        if (given) {
                scheduled = strdup(given);
                if (!scheduled)
                        return -ENOMEM;
        } else if (!force) {
                _cleanup_free_ char *text = NULL;
                char next[32];
                time_t t = time(NULL) + 3600;
                struct tm tm;
                localtime_r(&t, &tm);
                strftime(next, sizeof(next), "%Y-%m-%dT%H:%M", &tm);
                if (asprintf(
                            &text,
                            "When should the %s take place (e.g. %s%s) ",
                            what,
                            next,
                            streq(what, "switchover") ? " " : "") < 0)
                        return -ENOMEM;
                r = ctl_prompt(text, "now", &scheduled);
                if (r < 0)
                        return aborted(r);
        }
        r = ctl_parse_scheduled(scheduled, ret_at);
        if (r < 0)
                return ctl_fail(
                        "Unable to parse scheduled timestamp (%s). It should be in an unambiguous format "
                        "(e.g. ISO 8601)",
                        scheduled);
        *ret_text = TAKE_PTR(scheduled);
        return 0;
}

/* ==== list / topology ==== */

static int list_like(Ctl *c, const CtlArgs *a, bool topology) {
        CtlListOptions o = {
                .format = topology ? CTL_FORMAT_TOPOLOGY : format_arg(a, CTL_FORMAT_PRETTY),
                .extended = ctl_args_has(a, CTL_SLOT_EXTENDED),
        };
        double watch = ctl_watch_interval(a);
        bool ts = ctl_args_has(a, CTL_SLOT_TIMESTAMP);
        char **names = a->many;
        size_t n_names = a->n_many;
        int r;

        if (n_names == 0) {
                static char *scope[1];
                scope[0] = (char *)ctl_scope(c, NULL);
                if (!scope[0]) {
                        fputs("Listing members: No cluster names were provided\n", stderr);
                        return 0;
                }
                names = scope;
                n_names = 1;
        }
        if (watch > 0)
                ctl_catch_interrupt();
        for (;;) {
                if (watch > 0 && isatty(STDOUT_FILENO))
                        fputs("\033[2J\033[1;1H", stdout);
                if (ts) {
                        _cleanup_free_ char *t = ctl_timestamp(0);
                        printf("%s\n", strna(t));
                }
                for (size_t i = 0; i < n_names; i++) {
                        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
                        r = ctl_get_cluster(c, names[i], &cluster);
                        if (r < 0)
                                return r;
                        o.name = names[i];
                        r = ctl_cluster_print(cluster, &o, stdout);
                        if (r < 0)
                                return ctl_fail("Cannot print the cluster: %s", strerror(-r));
                }
                fflush(stdout);
                if (watch <= 0 || ctl_interrupted())
                        return 0;
                ctl_sleep((usec_t)(watch * USEC_PER_SEC));
                if (ctl_interrupted())
                        return 0;
        }
}

static int verb_list(Ctl *c, const CtlArgs *a) {
        return list_like(c, a, false);
}

static int verb_topology(Ctl *c, const CtlArgs *a) {
        return list_like(c, a, true);
}

/* ==== show-config / history / dsn / version ==== */

static cJSON *cluster_config(const DcsCluster *cluster) {
        return cluster->config ? cJSON_Duplicate(cluster->config, true) : cJSON_CreateObject();
}

static int verb_show_config(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *config = NULL;
        const char *name = NULL;
        int r;

        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        config = cluster_config(cluster);
        if (!config)
                return -ENOMEM;
        r = ctl_yaml_dump(config, false, stdout);
        fputc('\n', stdout);
        return r;
}

static int verb_history(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        const char *name = NULL;
        int r;

        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        return ctl_history_print(cluster, format_arg(a, CTL_FORMAT_PRETTY), stdout);
}

static const DcsMember *find_member(const DcsCluster *cluster, const char *role, const char *member) {
        for (size_t i = 0; i < cluster->n_members; i++) {
                const DcsMember *m = &cluster->members[i];
                if (ctl_member_has_role(cluster, m, role) && (!member || streq(m->name, member)))
                        return m;
        }
        return NULL;
}

static int verb_dsn(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_free_ char *host = NULL;
        const char *name = NULL, *role = a->value[CTL_SLOT_ROLE], *member = a->value[CTL_SLOT_MEMBER];
        const DcsMember *m;
        unsigned port;
        int r;

        if (member && role)
                return ctl_fail("--role and --member are mutually exclusive options");
        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        if (member && !dcs_cluster_find_member(cluster, member))
                return ctl_fail("Member %s does not exist in cluster %s", member, name);
        m = find_member(cluster, member ? "any" : role ?: "leader", member);
        if (!m)
                return ctl_fail("Can not find a suitable member");
        if (ctl_conn_url_parse(m->conn_url, &host, &port, NULL) < 0)
                return ctl_fail("Member %s has no valid conn_url", m->name);
        printf("host=%s port=%u\n", host, port);
        return 0;
}

static int verb_version(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        const char *name = a->positional[0];
        int r;

        printf("pghactl version %s (patronictl %s compatible)\n", PGHA_VERSION, PATRONICTL_VERSION);
        if (!name)
                return 0;
        printf("\n");
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        for (size_t i = 0; i < cluster->n_members; i++) {
                const DcsMember *m = &cluster->members[i];
                _cleanup_free_ char *body = NULL, *error = NULL, *pg = NULL;
                _cleanup_(cJSON_Deletep) cJSON *j = NULL;
                const cJSON *ver, *sv;
                bool wanted = a->n_many == 0;
                long status;

                for (size_t k = 0; k < a->n_many; k++)
                        wanted = wanted || streq(a->many[k], m->name);
                if (!wanted || isempty(m->api_url))
                        continue;
                r = ctl_rest(c, m, "GET", NULL, NULL, 0, &status, &body, &error);
                if (r < 0 || json_parse_string(body, &j) < 0) {
                        printf("%s: failed to get version: %s\n",
                               m->name,
                               r < 0 ? strna(error) : "invalid reply");
                        continue;
                }
                ver = json_get(json_get(j, "patroni"), "version");
                sv = json_get(j, "server_version");
                if (cJSON_IsNumber(sv) && sv->valuedouble > 0 &&
                    ctl_format_pg_version((int64_t)sv->valuedouble, &pg) < 0)
                        return -ENOMEM;
                printf("%s: Patroni %s%s%s\n",
                       m->name,
                       cJSON_IsString(ver) ? ver->valuestring : "None",
                       pg ? " PostgreSQL " : "",
                       strempty(pg));
        }
        return 0;
}

/* ==== member selection for reload / restart / reinit / flush ==== */

typedef struct Members {
        const DcsMember **m;
        size_t n;
} Members;

static void members_done(Members *s) {
        free(s->m);
}

/* patronictl's get_members(): prints the cluster, then the members matching role among those named
 * (all of them when none is named, except for reinitialize), asking which one when needed. Unlike
 * patronictl, a named member that does not exist is an error rather than silently dropped. */
static int get_members(
        const DcsCluster *cluster,
        const char *name,
        char **names,
        size_t n_names,
        const char *role,
        bool force,
        const char *action,
        bool ask_confirmation,
        Members *ret) {
        _cleanup_free_ char *answer = NULL;
        _cleanup_(members_done) Members s = {};
        size_t n_candidates = 0;
        int r;

        for (size_t k = 0; k < n_names; k++)
                if (!dcs_cluster_find_member(cluster, names[k]))
                        return ctl_fail("Member %s does not exist in cluster %s", names[k], name);
        for (size_t i = 0; i < cluster->n_members; i++)
                if (ctl_member_has_role(cluster, &cluster->members[i], role))
                        n_candidates++;
        if (n_names == 0 && n_candidates == 0)
                return ctl_fail("%s cluster doesn't have any members", name);
        r = print_members(cluster, name);
        if (r < 0)
                return r;

        s.m = new0(const DcsMember *, cluster->n_members);
        if (!s.m)
                return -ENOMEM;
        if (n_names == 0 && streq(action, "reinitialize") && !force && n_candidates > 0) {
                _cleanup_free_ char *text = NULL, *list = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&list, &size);
                bool first = true;
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; i < cluster->n_members; i++)
                        if (ctl_member_has_role(cluster, &cluster->members[i], role)) {
                                fprintf(f, "%s%s", first ? "" : ", ", cluster->members[i].name);
                                first = false;
                        }
                if (fclose(f) != 0)
                        return -ENOMEM;
                if (asprintf(&text, "Which member do you want to %s [%s]?", action, list) < 0)
                        return -ENOMEM;
                r = ctl_prompt(text, "", &answer);
                if (r < 0)
                        return aborted(r);
                if (!dcs_cluster_find_member(cluster, answer))
                        return ctl_fail("%s is not a member of cluster", answer);
                names = &answer;
                n_names = 1;
        }
        for (size_t i = 0; i < cluster->n_members; i++) {
                const DcsMember *m = &cluster->members[i];
                bool named = n_names == 0 && !streq(action, "reinitialize");
                for (size_t k = 0; k < n_names; k++)
                        named = named || streq(names[k], m->name);
                if (named && ctl_member_has_role(cluster, m, role))
                        s.m[s.n++] = m;
        }
        if (n_names > 0 && s.n == 0)
                return ctl_fail("No %s among provided members", role);

        if (ask_confirmation && !force && s.n > 0) {
                _cleanup_free_ char *q = NULL, *list = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&list, &size);
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; i < s.n; i++)
                        fprintf(f, "%s%s", i ? ", " : "", s.m[i]->name);
                if (fclose(f) != 0)
                        return -ENOMEM;
                if (asprintf(&q, "Are you sure you want to %s members %s?", action, list) < 0)
                        return -ENOMEM;
                r = ctl_confirm(q);
                if (r < 0)
                        return aborted(r);
                if (r == 0)
                        return ctl_fail("Aborted %s", action);
        }
        *ret = s;
        s = (Members){};
        return 0;
}

static void
print_response(const char *prefix, const char *action, const DcsMember *m, long status, const char *body) {
        printf("%s: %s for member %s, status code=%ld, (%s)\n", prefix, action, m->name, status, body);
}

static int rest_failed(const DcsMember *m, const char *error) {
        return ctl_fail("Member %s is not accessible: %s", m->name, strna(error));
}

/* The common start of the member commands (reload, restart, reinit): the cluster read from etcd and
 * the members to act on (patronictl's get_members()). role NULL: the --role option's, else any. */
static int member_command_start(
        Ctl *c,
        const CtlArgs *a,
        const char *role,
        const char *action,
        bool confirm,
        DcsCluster **ret_cluster,
        Members *ret_members) {
        const char *name = a->positional[0];
        int r;

        r = ctl_get_cluster(c, name, ret_cluster);
        if (r < 0)
                return r;
        return get_members(
                *ret_cluster,
                name,
                a->many,
                a->n_many,
                role ?: a->value[CTL_SLOT_ROLE] ?: "any",
                ctl_args_has(a, CTL_SLOT_FORCE),
                action,
                confirm,
                ret_members);
}

static int verb_reload(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        const cJSON *loop_wait;
        int r, ret = 0;

        r = member_command_start(c, a, NULL, "reload", true, &cluster, &s);
        if (r < 0)
                return r;
        loop_wait = json_get(cluster->config, "loop_wait");
        for (size_t i = 0; i < s.n; i++) {
                _cleanup_free_ char *body = NULL, *error = NULL, *lw = NULL;
                long status;
                r = ctl_rest(c, s.m[i], "POST", "reload", NULL, 0, &status, &body, &error);
                if (r < 0) {
                        ret = rest_failed(s.m[i], error);
                        continue;
                }
                if (status == 200)
                        printf("No changes to apply on member %s\n", s.m[i]->name);
                else if (status == 202) {
                        if (ctl_value_to_string(loop_wait, &lw) < 0)
                                return -ENOMEM;
                        printf("Reload request received for member %s and will be processed within %s "
                               "seconds\n",
                               s.m[i]->name,
                               lw);
                } else {
                        print_response("Failed", "reload", s.m[i], status, body);
                        ret = -EIO;
                }
        }
        return ret;
}

/* X.Y or X.Y.Z, as Patroni's postgres_version_to_int() accepts. */
static bool pg_version_valid(const char *v) {
        int parts = 1;
        if (!v || !*v)
                return false;
        for (const char *p = v; *p; p++) {
                if (*p == '.') {
                        if (p == v || p[1] == '\0' || p[1] == '.')
                                return false;
                        parts++;
                } else if (*p < '0' || *p > '9')
                        return false;
        }
        return parts == 2 || parts == 3;
}

static int verb_restart(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        _cleanup_(cJSON_Deletep) cJSON *content = NULL;
        _cleanup_free_ char *scheduled = NULL, *scheduled_at = NULL, *version = NULL;
        const char *pg_version = a->value[CTL_SLOT_PG_VERSION], *timeout_arg = a->value[CTL_SLOT_TIMEOUT];
        bool force = ctl_args_has(a, CTL_SLOT_FORCE);
        usec_t timeout = 120 * USEC_PER_SEC;
        int r, ret = 0;

        r = member_command_start(c, a, NULL, "restart", false, &cluster, &s);
        if (r < 0)
                return r;

        r = ask_scheduled("restart", a->value[CTL_SLOT_SCHEDULED], force, &scheduled, &scheduled_at);
        if (r < 0)
                return r;
        if (!force && s.n > 0) {
                _cleanup_free_ char *q = NULL, *list = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&list, &size);
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; i < s.n; i++)
                        fprintf(f, "%s%s", i ? ", " : "", s.m[i]->name);
                if (fclose(f) != 0)
                        return -ENOMEM;
                if (scheduled_at)
                        r = asprintf(
                                &q,
                                "Are you sure you want to schedule restart of members %s at %s?",
                                list,
                                scheduled_at);
                else
                        r = asprintf(&q, "Are you sure you want to restart members %s?", list);
                if (r < 0)
                        return -ENOMEM;
                r = ctl_confirm(q);
                if (r < 0)
                        return aborted(r);
                if (r == 0)
                        return ctl_fail(scheduled_at ? "Aborted scheduled restart" : "Aborted restart");
        }
        if (ctl_args_has(a, CTL_SLOT_ANY) && s.n > 1) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                s.m[0] = s.m[(size_t)ts.tv_nsec % s.n];
                s.n = 1;
        }
        if (pg_version)
                version = strdup(pg_version);
        else if (!force) {
                r = ctl_prompt(
                        "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ",
                        "",
                        &version);
                if (r < 0)
                        return aborted(r);
        }

        content = cJSON_CreateObject();
        if (!content)
                return -ENOMEM;
        if (ctl_args_has(a, CTL_SLOT_PENDING) && json_add_bool(content, "restart_pending", true) < 0)
                return -ENOMEM;
        if (!isempty(version)) {
                if (!pg_version_valid(version))
                        return ctl_fail(
                                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s", version);
                if (json_add_string(content, "postgres_version", version) < 0)
                        return -ENOMEM;
        }
        if (scheduled_at) {
                if (ctl_is_paused(cluster))
                        return ctl_fail("Can't schedule restart in the paused state");
                if (json_add_string(content, "schedule", scheduled_at) < 0)
                        return -ENOMEM;
        }
        if (timeout_arg) {
                char *end;
                long t = strtol(timeout_arg, &end, 10);
                if (json_add_string(content, "timeout", timeout_arg) < 0)
                        return -ENOMEM;
                if (end != timeout_arg && t > 0 && t < 86400)
                        timeout = (usec_t)(t + 60) * USEC_PER_SEC;
        }

        for (size_t i = 0; i < s.n; i++) {
                const DcsMember *m = s.m[i];
                _cleanup_free_ char *body = NULL, *error = NULL;
                long status;

                if (scheduled_at && force && m->scheduled_restart) {
                        _cleanup_free_ char *b2 = NULL, *e2 = NULL;
                        r = ctl_rest(c, m, "DELETE", "restart", NULL, 0, &status, &b2, &e2);
                        if (r >= 0 && status >= 400)
                                print_response("Failed", "flush scheduled restart", m, status, b2);
                }
                r = ctl_rest(c, m, "POST", "restart", content, timeout, &status, &body, &error);
                if (r < 0) {
                        ret = rest_failed(m, error);
                        continue;
                }
                /* patronictl 3.0.2 reports a refused restart and still exits 0 */
                if (status == 200)
                        printf("Success: restart on member %s\n", m->name);
                else if (status == 202)
                        printf("Success: restart scheduled on member %s\n", m->name);
                else if (status == 409)
                        printf("Failed: another restart is already scheduled on member %s\n", m->name);
                else
                        print_response("Failed", "restart", m, status, body);
        }
        return ret;
}

static int member_start_time(Ctl *c, const DcsMember *m, char **ret_state, char **ret_start) {
        _cleanup_free_ char *body = NULL, *error = NULL;
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const char *state = NULL, *start = NULL;
        long status;
        int r;

        r = ctl_rest(c, m, "GET", "patroni", NULL, 5 * USEC_PER_SEC, &status, &body, &error);
        if (r < 0 || json_parse_string(body, &j) < 0)
                return -EIO;
        (void)json_get_string(j, "state", &state);
        (void)json_get_string(j, "postmaster_start_time", &start);
        *ret_state = strdup(strempty(state));
        *ret_start = strdup(strempty(start));
        return *ret_state && *ret_start ? 0 : -ENOMEM;
}

#define REINIT_WAIT_MAX (3600 * USEC_PER_SEC)

static int verb_reinit(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        const DcsMember **waiting;
        bool wait = ctl_args_has(a, CTL_SLOT_WAIT);
        char **before;
        size_t n_waiting = 0;
        int r, ret = 0;

        r = member_command_start(c, a, "replica", "reinitialize", true, &cluster, &s);
        if (r < 0)
                return r;
        waiting = new0(const DcsMember *, s.n);
        before = new0(char *, s.n);
        if (!waiting || !before) {
                free(waiting);
                free(before);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s.n; i++) {
                const DcsMember *m = s.m[i];
                bool force = ctl_args_has(a, CTL_SLOT_FORCE);
                _cleanup_free_ char *state = NULL;

                /* Remember when PostgreSQL started, so --wait can tell the rebuilt server from the old. */
                if (wait)
                        (void)member_start_time(c, m, &state, &before[n_waiting]);
                for (;;) {
                        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();
                        _cleanup_free_ char *reply = NULL, *error = NULL;
                        long status;
                        if (!body || json_add_bool(body, "force", force) < 0)
                                return -ENOMEM;
                        r = ctl_rest(c, m, "POST", "reinitialize", body, 0, &status, &reply, &error);
                        if (r < 0) {
                                ret = rest_failed(m, error);
                                break;
                        }
                        if (status < 400) {
                                printf("Success: reinitialize for member %s\n", m->name);
                                if (wait)
                                        waiting[n_waiting++] = m;
                                break;
                        }
                        print_response("Failed", "reinitialize", m, status, reply);
                        ret = -EIO;
                        if (!force && endswith(reply, " already in progress")) {
                                r = ctl_confirm("Do you want to cancel it and reinitialize anyway?");
                                if (r < 0)
                                        return aborted(r);
                                if (r > 0) {
                                        force = true;
                                        ret = 0;
                                        continue;
                                }
                        }
                        break;
                }
                if (wait && (n_waiting == 0 || waiting[n_waiting - 1] != m)) {
                        free(before[n_waiting]);
                        before[n_waiting] = NULL;
                }
        }

        if (n_waiting > 0) {
                struct timespec start;
                clock_gettime(CLOCK_MONOTONIC, &start);
                printf("Waiting for reinitialize to complete on: ");
                for (size_t i = 0; i < n_waiting; i++)
                        printf("%s%s", i ? ", " : "", waiting[i]->name);
                printf("\n");
                fflush(stdout);
                while (n_waiting > 0) {
                        struct timespec now;
                        ctl_sleep(2 * USEC_PER_SEC);
                        for (size_t i = 0; i < n_waiting;) {
                                _cleanup_free_ char *state = NULL, *started = NULL;
                                /* Done when it runs again on a newly started postmaster (patronictl only
                                 * waits for "creating replica" to end, which it may not have seen yet). */
                                if (member_start_time(c, waiting[i], &state, &started) >= 0 &&
                                    streq(state, "running") && !streq_ptr(started, before[i])) {
                                        printf("Reinitialize is completed on: %s\n", waiting[i]->name);
                                        fflush(stdout);
                                        free(before[i]);
                                        waiting[i] = waiting[n_waiting - 1];
                                        before[i] = before[n_waiting - 1];
                                        n_waiting--;
                                } else
                                        i++;
                        }
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        if (n_waiting > 0 &&
                            (usec_t)(now.tv_sec - start.tv_sec) * USEC_PER_SEC > REINIT_WAIT_MAX) {
                                ret = ctl_fail(
                                        "Reinitialize did not complete within %llu seconds",
                                        (unsigned long long)(REINIT_WAIT_MAX / USEC_PER_SEC));
                                break;
                        }
                }
        }
        for (size_t i = 0; i < n_waiting; i++)
                free(before[i]);
        free(before);
        free(waiting);
        return ret;
}

/* ==== switchover / failover ==== */

static bool member_nofailover(const DcsMember *m) {
        const cJSON *v = json_get(m->tags, "nofailover");
        return cJSON_IsTrue(v) ||
                (cJSON_IsString(v) && (streq(v->valuestring, "true") || streq(v->valuestring, "on")));
}

static int do_failover_or_switchover(
        Ctl *c,
        const char *action,
        const char *name,
        const char *leader_arg,
        const char *candidate_arg,
        bool force,
        const char *scheduled_arg) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_free_ char *leader = NULL, *candidate = NULL, *scheduled = NULL, *scheduled_at = NULL;
        _cleanup_free_ char *body = NULL, *error = NULL, *list = NULL;
        _cleanup_(cJSON_Deletep) cJSON *value = NULL;
        const DcsMember *target;
        bool is_switchover = streq(action, "switchover");
        const char *Action = is_switchover ? "Switchover" : "Failover";
        size_t n_candidates = 0;
        long status;
        int r;

        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        printf("Current cluster topology\n");
        r = print_members(cluster, name);
        if (r < 0)
                return r;

        if (is_switchover && isempty(cluster->leader))
                return ctl_fail("This cluster has no leader");
        if (leader_arg)
                leader = strdup(leader_arg);
        else if (force || !is_switchover)
                leader = cluster->leader ? strdup(cluster->leader) : NULL;
        else {
                const cJSON *sc = json_get(cluster->config, "standby_cluster");
                bool standby = cJSON_IsObject(sc) &&
                        (json_get(sc, "host") || json_get(sc, "port") || json_get(sc, "restore_command"));
                r = ctl_prompt(standby ? "Standby Leader" : "Primary", cluster->leader, &leader);
                if (r < 0)
                        return aborted(r);
        }
        if (leader && cluster->leader && !streq(cluster->leader, leader))
                return ctl_fail("Member %s is not the leader of cluster %s", leader, name);

        {
                size_t size = 0;
                FILE *f = open_memstream(&list, &size);
                if (!f)
                        return -ENOMEM;
                fputc('[', f);
                for (size_t i = 0; i < cluster->n_members; i++) {
                        const DcsMember *m = &cluster->members[i];
                        if (streq_ptr(m->name, leader) || member_nofailover(m))
                                continue;
                        fprintf(f, "%s'%s'", n_candidates ? ", " : "", m->name);
                        n_candidates++;
                }
                fputc(']', f);
                if (fclose(f) != 0)
                        return -ENOMEM;
        }
        if (n_candidates == 0)
                return ctl_fail("No candidates found to %s to", action);
        if (candidate_arg)
                candidate = strdup(candidate_arg);
        else if (!force) {
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text, "Candidate %s", list) < 0)
                        return -ENOMEM;
                r = ctl_prompt(text, "", &candidate);
                if (r < 0)
                        return aborted(r);
        }
        if (candidate && isempty(candidate))
                candidate = mfree(candidate);
        if (!is_switchover && !candidate)
                return ctl_fail("Failover could be performed only to a specific candidate");
        if (candidate && streq_ptr(candidate, leader))
                return ctl_fail("%s target and source are the same.", Action);
        if (candidate) {
                const DcsMember *m = dcs_cluster_find_member(cluster, candidate);
                if (!m || member_nofailover(m))
                        return ctl_fail(
                                "Member %s does not exist in cluster %s%s",
                                candidate,
                                name,
                                m ? " (or has the nofailover tag)" : "");
        }

        if (is_switchover) {
                r = ask_scheduled("switchover", scheduled_arg, force, &scheduled, &scheduled_at);
                if (r < 0)
                        return r;
                if (scheduled_at && ctl_is_paused(cluster))
                        return ctl_fail("Can't schedule switchover in the paused state");
        }

        if (!force) {
                _cleanup_free_ char *q = NULL, *demote = NULL;
                if (leader && asprintf(&demote, ", demoting current leader %s", leader) < 0)
                        return -ENOMEM;
                if (scheduled_at)
                        r = asprintf(
                                &q,
                                "Are you sure you want to schedule %s of cluster %s at %s%s?",
                                action,
                                name,
                                scheduled_at,
                                strempty(demote));
                else
                        r = asprintf(
                                &q,
                                "Are you sure you want to %s cluster %s%s?",
                                action,
                                name,
                                strempty(demote));
                if (r < 0)
                        return -ENOMEM;
                r = ctl_confirm(q);
                if (r < 0)
                        return aborted(r);
                if (r == 0)
                        return ctl_fail("Aborting %s%s", scheduled_at ? "scheduled " : "", action);
        }

        value = cJSON_CreateObject();
        if (!value ||
            json_add_item(value, "leader", leader ? cJSON_CreateString(leader) : cJSON_CreateNull()) < 0 ||
            json_add_item(
                    value, "candidate", candidate ? cJSON_CreateString(candidate) : cJSON_CreateNull()) <
                    0 ||
            json_add_item(
                    value,
                    "scheduled_at",
                    scheduled_at ? cJSON_CreateString(scheduled_at) : cJSON_CreateNull()) < 0)
                return -ENOMEM;

        target = cluster->leader ? dcs_cluster_find_member(cluster, cluster->leader) : NULL;
        if (!target && candidate)
                target = dcs_cluster_find_member(cluster, candidate);
        r = target ? ctl_rest(c, target, "POST", action, value, 60 * USEC_PER_SEC, &status, &body, &error)
                   : -ENOENT;
        if (r >= 0 && status == 501 && is_switchover && body &&
            strstr(body, "Server does not support this operation")) {
                body = mfree(body);
                r = ctl_rest(
                        c, target, "POST", "failover", value, 60 * USEC_PER_SEC, &status, &body, &error);
        }
        if (r >= 0) {
                _cleanup_free_ char *ts = ctl_timestamp(6);
                if (status != 200 && status != 202) {
                        printf("%s failed, details: %ld, %s\n", Action, status, strempty(body));
                        fflush(stdout);
                        return -EIO;
                }
                printf("%s %s\n", strna(ts), strempty(body));
                cluster = dcs_cluster_free(cluster);
                r = ctl_get_cluster(c, name, &cluster);
                if (r < 0)
                        return r;
        } else {
                _cleanup_(cJSON_Deletep) cJSON *key = cJSON_CreateObject();
                _cleanup_free_ char *ts = ctl_timestamp(6);
                printf("%s Could not %s using Patroni api, falling back to DCS\n", strna(ts), action);
                if (!key || (leader && json_add_string(key, "leader", leader) < 0) ||
                    (candidate && json_add_string(key, "member", candidate) < 0) ||
                    (scheduled_at && json_add_string(key, "scheduled_at", scheduled_at) < 0))
                        return -ENOMEM;
                r = ctl_write_failover(c, key, cluster->failover_revision);
                if (r < 0)
                        return r;
                if (r == 0)
                        return ctl_fail("The failover key changed concurrently, %s not requested", action);
        }
        return print_members(cluster, name);
}

static int switchover_like(Ctl *c, const CtlArgs *a, bool failover) {
        const char *leader = a->value[CTL_SLOT_LEADER], *name = NULL;
        int r;

        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;
        /* patronictl 3.0.2: failover with --leader is a switchover */
        return do_failover_or_switchover(
                c,
                failover && !leader ? "failover" : "switchover",
                name,
                leader,
                a->value[CTL_SLOT_CANDIDATE],
                ctl_args_has(a, CTL_SLOT_FORCE),
                a->value[CTL_SLOT_SCHEDULED]);
}

static int verb_switchover(Ctl *c, const CtlArgs *a) {
        return switchover_like(c, a, false);
}

static int verb_failover(Ctl *c, const CtlArgs *a) {
        return switchover_like(c, a, true);
}

/* ==== flush ==== */

static int verb_flush(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        const char *name = a->positional[0], *target = a->positional[2];
        int r, ret = 0;

        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        if (streq(target, "restart")) {
                r = get_members(
                        cluster,
                        name,
                        a->many,
                        a->n_many,
                        a->value[CTL_SLOT_ROLE] ?: "any",
                        ctl_args_has(a, CTL_SLOT_FORCE),
                        "flush",
                        true,
                        &s);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < s.n; i++) {
                        _cleanup_free_ char *body = NULL, *error = NULL;
                        long status;
                        if (!s.m[i]->scheduled_restart) {
                                printf("No scheduled restart for member %s\n", s.m[i]->name);
                                continue;
                        }
                        r = ctl_rest(c, s.m[i], "DELETE", "restart", NULL, 0, &status, &body, &error);
                        if (r < 0)
                                ret = rest_failed(s.m[i], error);
                        else if (status >= 400) {
                                print_response("Failed", "flush scheduled restart", s.m[i], status, body);
                                ret = -EIO;
                        } else
                                printf("Success: flush scheduled restart for member %s\n", s.m[i]->name);
                }
                return ret;
        }
        if (!cluster->failover_scheduled_at) {
                printf("No pending scheduled switchover\n");
                return 0;
        }
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < cluster->n_members; i++) {
                        const DcsMember *m = &cluster->members[i];
                        _cleanup_free_ char *body = NULL, *error = NULL;
                        long status;
                        bool is_leader = streq_ptr(cluster->leader, m->name);
                        if ((pass == 0) != is_leader || isempty(m->api_url))
                                continue;
                        r = ctl_rest(c, m, "DELETE", "switchover", NULL, 0, &status, &body, &error);
                        if (r < 0)
                                continue;
                        if (status == 200 || status == 404) {
                                printf("%s: %s\n", status == 200 ? "Success" : "Failed", body);
                                return status == 200 ? 0 : -EIO;
                        }
                        printf("Failed: member=%s, status_code=%ld, (%s)\n", m->name, status, body);
                }
        {
                _cleanup_free_ char *ts = ctl_timestamp(6);
                printf("%s Could not find any accessible member of cluster %s\n", strna(ts), name);
                r = ctl_write_failover(c, NULL, cluster->failover_revision);
                return r < 0 ? r : 0;
        }
}

/* ==== pause / resume ==== */

static int pause_like(Ctl *c, const CtlArgs *a, bool paused) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *body = NULL;
        const char *verb = paused ? "pause" : "resume", *name = NULL;
        bool wait = ctl_args_has(a, CTL_SLOT_WAIT);
        int r;

        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        if (ctl_is_paused(cluster) == paused)
                return ctl_fail("Cluster is %s paused", paused ? "already" : "not");
        body = cJSON_CreateObject();
        if (!body || json_add_item(body, "pause", paused ? cJSON_CreateTrue() : cJSON_CreateNull()) < 0)
                return -ENOMEM;

        /* the leader first, then the other members with an api_url */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < cluster->n_members; i++) {
                        const DcsMember *m = &cluster->members[i];
                        _cleanup_free_ char *reply = NULL, *error = NULL;
                        bool is_leader = streq_ptr(cluster->leader, m->name);
                        long status;
                        if ((pass == 0) != is_leader || isempty(m->api_url))
                                continue;
                        r = ctl_rest(c, m, "PATCH", "config", body, 0, &status, &reply, &error);
                        if (r < 0) {
                                fprintf(stderr, "Member %s is not accessible: %s\n", m->name, strna(error));
                                continue;
                        }
                        if (status != 200) {
                                printf("Failed: %s cluster management status code=%ld, (%s)\n",
                                       verb,
                                       status,
                                       reply);
                                return -EIO;
                        }
                        if (wait) {
                                const cJSON *lw = json_get(cluster->config, "loop_wait");
                                double loop_wait = cJSON_IsNumber(lw) ? lw->valuedouble : 10;
                                struct timespec start, now;
                                bool all = false;
                                printf("'%s' request sent, waiting until it is recognized by all nodes\n",
                                       verb);
                                fflush(stdout);
                                clock_gettime(CLOCK_MONOTONIC, &start);
                                for (;;) {
                                        _cleanup_(dcs_cluster_freep) DcsCluster *now_c = NULL;
                                        r = ctl_get_cluster(c, name, &now_c);
                                        if (r < 0)
                                                return r;
                                        all = true;
                                        for (size_t k = 0; k < now_c->n_members; k++)
                                                if (dcs_cluster_find_member(
                                                            cluster, now_c->members[k].name) &&
                                                    now_c->members[k].pause != paused)
                                                        all = false;
                                        clock_gettime(CLOCK_MONOTONIC, &now);
                                        if (all || (double)(now.tv_sec - start.tv_sec) >= loop_wait + 1) {
                                                if (!all) {
                                                        printf("Members didn't recognized pause state after "
                                                               "%g seconds:",
                                                               loop_wait);
                                                        for (size_t k = 0; k < now_c->n_members; k++)
                                                                if (now_c->members[k].pause != paused)
                                                                        printf(" %s",
                                                                               now_c->members[k].name);
                                                        printf("\n");
                                                        return -ETIMEDOUT;
                                                }
                                                break;
                                        }
                                        ctl_sleep(USEC_PER_SEC);
                                }
                        }
                        printf("Success: cluster management is %s\n", paused ? "paused" : "resumed");
                        return 0;
                }
        return ctl_fail("Can not find accessible cluster member");
}

static int verb_pause(Ctl *c, const CtlArgs *a) {
        return pause_like(c, a, true);
}

static int verb_resume(Ctl *c, const CtlArgs *a) {
        return pause_like(c, a, false);
}

/* ==== edit-config ==== */

static int read_input(const char *path, char **ret) {
        if (streq(path, "-")) {
                _cleanup_free_ char *s = NULL;
                size_t size = 0, n;
                FILE *f = open_memstream(&s, &size);
                char buf[4096];
                if (!f)
                        return -ENOMEM;
                while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
                        if (size + n > 4 * 1024 * 1024) {
                                fclose(f);
                                return -EFBIG;
                        }
                        fwrite(buf, 1, n, f);
                }
                if (fclose(f) != 0)
                        return -ENOMEM;
                *ret = TAKE_PTR(s);
                return 0;
        }
        return read_full_file(path, 4 * 1024 * 1024, ret, NULL);
}

static int apply_yaml_file(cJSON *data, const char *path) {
        _cleanup_free_ char *text = NULL, *error = NULL;
        _cleanup_(cJSON_Deletep) cJSON *patch = NULL;
        int r;

        r = read_input(path, &text);
        if (r < 0)
                return ctl_fail(
                        "Cannot read %s: %s", streq(path, "-") ? "standard input" : path, strerror(-r));
        r = ctl_yaml_parse(streq(path, "-") ? "<stdin>" : path, text, &patch, &error);
        if (r < 0)
                return ctl_fail("Invalid YAML, the configuration was not changed: %s", strna(error));
        if (cJSON_IsNull(patch))
                return 0;
        if (!cJSON_IsObject(patch))
                return ctl_fail("%s: the configuration must be a YAML mapping, not changed", path);
        ctl_config_patch(data, patch);
        return 0;
}

static int invoke_editor(const char *before, const char *name, char **ret_after, cJSON **ret_data) {
        _cleanup_free_ char *tmp = NULL, *after = NULL, *error = NULL;
        const char *editor = getenv("EDITOR"), *tmpdir = getenv("TMPDIR");
        _cleanup_free_ char *found = NULL;
        int fd, status, r;
        pid_t pid;

        if (isempty(editor)) {
                const char *path = getenv("PATH");
                _cleanup_free_ char *copy = strdup(path ?: "/usr/bin:/bin");
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                for (const char *e = "editor"; !found && e; e = streq(e, "editor") ? "vi" : NULL)
                        for (char *d = strtok_r(copy, ":", &save); d && !found;
                             d = strtok_r(NULL, ":", &save)) {
                                _cleanup_free_ char *p = NULL;
                                if (asprintf(&p, "%s/%s", d, e) >= 0 && access(p, X_OK) == 0)
                                        found = TAKE_PTR(p);
                        }
                if (!found)
                        return ctl_fail(
                                "EDITOR environment variable is not set. editor or vi are not available");
                editor = found;
        }
        if (asprintf(&tmp, "%s/%s-config-XXXXXX.yaml", isempty(tmpdir) ? "/tmp" : tmpdir, name) < 0)
                return -ENOMEM;
        fd = mkstemps(tmp, 5);
        if (fd < 0)
                return ctl_fail("Cannot create a temporary file: %m");
        if (write(fd, before, strlen(before)) != (ssize_t)strlen(before)) {
                close(fd);
                unlink(tmp);
                return ctl_fail("Cannot write %s: %m", tmp);
        }
        close(fd);
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                unlink(tmp);
                return ctl_fail("fork: %m");
        }
        if (pid == 0) {
                execlp(editor, editor, tmp, (char *)NULL);
                fprintf(stderr, "Error: cannot run editor %s: %m\n", editor);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        unlink(tmp);
                        return ctl_fail("waitpid: %m");
                }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                unlink(tmp);
                return ctl_fail(
                        "Editor exited with return code %d",
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
        r = read_full_file(tmp, 4 * 1024 * 1024, &after, NULL);
        unlink(tmp);
        if (r < 0)
                return ctl_fail("Cannot read the edited file: %s", strerror(-r));
        r = ctl_yaml_parse(tmp, after, ret_data, &error);
        if (r < 0)
                return ctl_fail("Invalid YAML, the configuration was not changed: %s", strna(error));
        if (!cJSON_IsObject(*ret_data)) {
                cJSON_Delete(*ret_data);
                *ret_data = NULL;
                return ctl_fail("The configuration must be a YAML mapping, not changed");
        }
        *ret_after = TAKE_PTR(after);
        return 0;
}

static int verb_edit_config(Ctl *c, const CtlArgs *a) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *before_data = NULL, *data = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL;
        const char *apply = a->value[CTL_SLOT_APPLY], *replace = a->value[CTL_SLOT_REPLACE], *name = NULL;
        bool quiet = ctl_args_has(a, CTL_SLOT_QUIET), force = ctl_args_has(a, CTL_SLOT_FORCE),
             changed_requested = false;
        int r;

        r = cluster_name(c, a->positional[0], &name);
        if (r < 0)
                return r;

        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        before_data = cluster_config(cluster);
        if (!before_data)
                return -ENOMEM;
        r = ctl_yaml_dump_string(before_data, false, &before);
        if (r < 0)
                return r;
        data = cJSON_Duplicate(before_data, true);
        if (!data)
                return -ENOMEM;

        if (replace) {
                cJSON_Delete(data);
                data = cJSON_CreateObject();
                if (!data)
                        return -ENOMEM;
                r = apply_yaml_file(data, replace);
                if (r < 0)
                        return r;
                changed_requested = true;
        }
        if (apply) {
                r = apply_yaml_file(data, apply);
                if (r < 0)
                        return r;
                changed_requested = true;
        }
        /* -s pairs, then -p pairs as postgresql.parameters.<pair>, in the order patronictl applies them */
        for (size_t i = 0; i < a->n_values[CTL_SLOT_SET] + a->n_values[CTL_SLOT_PG]; i++) {
                _cleanup_free_ char *error = NULL, *pg = NULL;
                const char *pair;
                if (i < a->n_values[CTL_SLOT_SET])
                        pair = a->values[CTL_SLOT_SET][i];
                else {
                        const char *v = a->values[CTL_SLOT_PG][i - a->n_values[CTL_SLOT_SET]];
                        if (asprintf(&pg, "postgresql.parameters.%s", v + strspn(v, " \t")) < 0)
                                return -ENOMEM;
                        pair = pg;
                }
                r = ctl_config_set_pair(data, pair, &error);
                if (r < 0)
                        return ctl_fail("%s", error ?: strerror(-r));
                changed_requested = true;
        }

        if (changed_requested) {
                r = ctl_yaml_dump_string(data, false, &after);
                if (r < 0)
                        return r;
        } else {
                cJSON_Delete(data);
                data = NULL;
                r = invoke_editor(before, name, &after, &data);
                if (r < 0)
                        return r;
        }

        if (cJSON_Compare(before_data, data, true)) {
                if (!quiet)
                        printf("Not changed\n");
                return 0;
        }
        if (!quiet)
                ctl_unified_diff(before, after, stdout);
        if (((apply && streq(apply, "-")) || (replace && streq(replace, "-"))) && !force) {
                printf("Use --force option to apply changes\n");
                return 0;
        }
        if (!force) {
                r = ctl_confirm("Apply these changes?");
                if (r < 0)
                        return aborted(r);
                if (r == 0)
                        return 0;
        }
        r = ctl_set_config(c, data, cluster->config_revision);
        if (r < 0)
                return r;
        if (r == 0)
                return ctl_fail("Config modification aborted due to concurrent changes");
        printf("Configuration changed\n");
        return 0;
}

/* ==== remove ==== */

static int verb_remove(Ctl *c, const CtlArgs *a) {
        static const char *const aware = "Yes I am aware";
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_free_ char *a1 = NULL, *a2 = NULL, *a3 = NULL, *q = NULL;
        const char *name = a->positional[0];
        int r;

        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        r = print_members(cluster, name);
        if (r < 0)
                return r;
        r = ctl_prompt("Please confirm the cluster name to remove", NULL, &a1);
        if (r < 0)
                return aborted(r);
        if (!streq(a1, name))
                return ctl_fail("Cluster names specified do not match");
        if (asprintf(
                    &q,
                    "You are about to remove all information in DCS for %s, please type: \"%s\"",
                    name,
                    aware) < 0)
                return -ENOMEM;
        r = ctl_prompt(q, NULL, &a2);
        if (r < 0)
                return aborted(r);
        if (!streq(a2, aware))
                return ctl_fail("You did not exactly type \"%s\"", aware);
        if (!isempty(cluster->leader)) {
                r = ctl_prompt(
                        "This cluster currently is healthy. Please specify the leader name to continue",
                        NULL,
                        &a3);
                if (r < 0)
                        return aborted(r);
                if (!streq(a3, cluster->leader))
                        return ctl_fail("You did not specify the current leader of the cluster");
        }
        return ctl_delete_cluster(c);
}

static int verb_help(Ctl *c, const CtlArgs *a);

/* ==== the command table ==== */

#define FLAG(slot, s, l, h) \
        { (slot), (s), {(l)}, 0, NULL, (h), NULL }
#define VALUE(slot, s, l, m, h) \
        { (slot), (s), {(l)}, CTL_OPTION_VALUE, (m), (h), NULL }

static const CtlOption opt_extended =
        FLAG(CTL_SLOT_EXTENDED, 'e', "extended", "Show some extra information");
static const CtlOption opt_timestamp = FLAG(CTL_SLOT_TIMESTAMP, 't', "timestamp", "Print timestamp");
static const CtlOption opt_dsn_member =
        VALUE(CTL_SLOT_MEMBER, 'm', "member", "TEXT", "Generate a dsn for this member");
static const CtlOption opt_leader = {
        CTL_SLOT_LEADER,
        0,
        {"leader", "primary", "master"},
        CTL_OPTION_VALUE,
        "TEXT",
        "The name of the current leader",
        NULL};
static const CtlOption opt_candidate =
        VALUE(CTL_SLOT_CANDIDATE, 0, "candidate", "TEXT", "The name of the candidate");
static const CtlOption opt_scheduled =
        VALUE(CTL_SLOT_SCHEDULED,
              0,
              "scheduled",
              "TEXT",
              "Timestamp of a scheduled event in unambiguous format (e.g. ISO 8601)");
static const CtlOption opt_any = FLAG(CTL_SLOT_ANY, 0, "any", "Restart a single member only");
static const CtlOption opt_pg_version =
        VALUE(CTL_SLOT_PG_VERSION,
              0,
              "pg-version",
              "TEXT",
              "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)");
static const CtlOption opt_pending = FLAG(CTL_SLOT_PENDING, 0, "pending", "Restart if pending");
static const CtlOption opt_timeout =
        VALUE(CTL_SLOT_TIMEOUT,
              0,
              "timeout",
              "TEXT",
              "Return error and fail over if necessary when restarting takes longer than this");
static const CtlOption opt_quiet = FLAG(CTL_SLOT_QUIET, 'q', "quiet", "Do not show changes");
static const CtlOption opt_set = {
        CTL_SLOT_SET,
        's',
        {"set"},
        CTL_OPTION_VALUE | CTL_OPTION_REPEAT,
        "TEXT",
        "Set specific configuration value. Can be specified multiple times",
        NULL};
static const CtlOption opt_pg = {
        CTL_SLOT_PG,
        'p',
        {"pg"},
        CTL_OPTION_VALUE | CTL_OPTION_REPEAT,
        "TEXT",
        "Set specific PostgreSQL parameter value (shorthand for -s postgresql.parameters.). Repeatable",
        NULL};
static const CtlOption opt_apply =
        VALUE(CTL_SLOT_APPLY, 0, "apply", "TEXT", "Apply configuration from file. Use - for stdin.");
static const CtlOption opt_replace =
        VALUE(CTL_SLOT_REPLACE,
              0,
              "replace",
              "TEXT",
              "Apply configuration from file, replacing existing configuration");
static const CtlOption opt_query_format = {
        CTL_SLOT_FORMAT,
        0,
        {"format"},
        CTL_OPTION_VALUE,
        "TEXT",
        "Output format (pretty, tsv, json, yaml)",
        ctl_check_format};
static const CtlOption opt_file =
        VALUE(CTL_SLOT_FILE, 'f', "file", "FILENAME", "Execute the SQL commands from this file");
static const CtlOption opt_password = FLAG(CTL_SLOT_PASSWORD, 0, "password", "force password prompt");
static const CtlOption opt_username =
        VALUE(CTL_SLOT_USERNAME, 'U', "username", "TEXT", "database user name");
static const CtlOption opt_query_member =
        VALUE(CTL_SLOT_MEMBER, 'm', "member", "TEXT", "Query a specific member");
static const CtlOption opt_delimiter =
        VALUE(CTL_SLOT_DELIMITER, 0, "delimiter", "TEXT", "The column delimiter");
static const CtlOption opt_command =
        VALUE(CTL_SLOT_COMMAND, 'c', "command", "TEXT", "The SQL commands to execute");
static const CtlOption opt_dbname =
        VALUE(CTL_SLOT_DBNAME, 'd', "dbname", "TEXT", "database name to connect to");

#define G &ctl_option_group
static const CtlOption *const only_group[] = {G};
static const CtlOption *const list_options[] = {
        G, &opt_extended, &opt_timestamp, &ctl_option_format, &ctl_option_watch_default, &ctl_option_watch};
static const CtlOption *const topology_options[] = {G, &ctl_option_watch_default, &ctl_option_watch};
static const CtlOption *const format_options[] = {G, &ctl_option_format};
static const CtlOption *const dsn_options[] = {&ctl_option_role, &opt_dsn_member, G};
static const CtlOption *const switchover_options[] = {
        G, &opt_leader, &opt_candidate, &opt_scheduled, &ctl_option_force};
static const CtlOption *const failover_options[] = {G, &opt_leader, &opt_candidate, &ctl_option_force};
static const CtlOption *const restart_options[] = {
        G,
        &ctl_option_role,
        &opt_any,
        &opt_scheduled,
        &opt_pg_version,
        &opt_pending,
        &opt_timeout,
        &ctl_option_force};
static const CtlOption *const role_force_options[] = {G, &ctl_option_role, &ctl_option_force};
static const CtlOption *const reinit_options[] = {G, &ctl_option_force, &ctl_option_wait};
static const CtlOption *const wait_options[] = {G, &ctl_option_wait};
static const CtlOption *const edit_config_options[] = {
        G, &opt_quiet, &opt_set, &opt_pg, &opt_apply, &opt_replace, &ctl_option_force};
static const CtlOption *const query_options[] = {
        G,
        &opt_query_format,
        &opt_file,
        &opt_password,
        &opt_username,
        &ctl_option_watch_default,
        &ctl_option_watch,
        &ctl_option_role,
        &opt_query_member,
        &opt_delimiter,
        &opt_command,
        &opt_dbname};
#undef G

static const char *const flush_targets[] = {"restart", "switchover", NULL};
static const CtlPositional cluster_optional[] = {{.name = "CLUSTER_NAME"}};
static const CtlPositional cluster_required[] = {{.name = "CLUSTER_NAME", .required = true}};
static const CtlPositional cluster_names[] = {{.name = "CLUSTER_NAMES", .many = true}};
static const CtlPositional cluster_members[] = {
        {.name = "CLUSTER_NAME", .required = true}, {.name = "MEMBER_NAMES", .many = true}};
static const CtlPositional cluster_members_optional[] = {
        {.name = "CLUSTER_NAME"}, {.name = "MEMBER_NAMES", .many = true}};
static const CtlPositional flush_positionals[] = {
        {.name = "CLUSTER_NAME", .required = true},
        {.name = "MEMBER_NAMES", .many = true},
        {.name = "TARGET", .required = true, .choices = flush_targets}};
static const CtlPositional help_positionals[] = {{.name = "COMMAND"}};

#define VERB(n, run, help, opts, pos) \
        { {n, opts, ELEMENTSOF(opts), pos, ELEMENTSOF(pos), false}, run, help }

static const Verb verbs[] = {
        VERB("dsn",
             verb_dsn,
             "Generate a dsn for the provided member, defaults to a dsn of the leader",
             dsn_options,
             cluster_optional),
        VERB("edit-config",
             verb_edit_config,
             "Edit cluster configuration",
             edit_config_options,
             cluster_optional),
        VERB("failover", verb_failover, "Failover to a replica", failover_options, cluster_optional),
        VERB("flush", verb_flush, "Discard scheduled events", role_force_options, flush_positionals),
        {{"help", NULL, 0, help_positionals, ELEMENTSOF(help_positionals), false},
         verb_help,
         "Show this help"},
        VERB("history",
             verb_history,
             "Show the history of failovers/switchovers",
             format_options,
             cluster_optional),
        VERB("list", verb_list, "List the Patroni members for a given Patroni", list_options, cluster_names),
        VERB("pause", verb_pause, "Disable auto failover", wait_options, cluster_optional),
        VERB("query", ctl_run_query, "Query a Patroni PostgreSQL member", query_options, cluster_optional),
        VERB("reinit", verb_reinit, "Reinitialize cluster member", reinit_options, cluster_members),
        VERB("reload",
             verb_reload,
             "Reload cluster member configuration",
             role_force_options,
             cluster_members),
        VERB("restart", verb_restart, "Restart cluster member", restart_options, cluster_members),
        VERB("remove", verb_remove, "Remove cluster from DCS", format_options, cluster_required),
        VERB("resume", verb_resume, "Resume auto failover", wait_options, cluster_optional),
        VERB("show-config", verb_show_config, "Show cluster configuration", only_group, cluster_optional),
        VERB("switchover", verb_switchover, "Switchover to a replica", switchover_options, cluster_optional),
        VERB("topology",
             verb_topology,
             "Prints ASCII topology for given cluster",
             topology_options,
             cluster_names),
        VERB("version",
             verb_version,
             "Output version of pghactl command or a running Patroni instance",
             only_group,
             cluster_members_optional),
};

/* pghactl's own options, before the command */
static const CtlOption opt_config_file =
        VALUE(CTL_SLOT_CONFIG_FILE, 'c', "config-file", "TEXT", "Configuration file");
static const CtlOption opt_dcs_url = {
        CTL_SLOT_DCS_URL, 'd', {"dcs-url", "dcs"}, CTL_OPTION_VALUE, "TEXT", "The DCS connect url", NULL};
static const CtlOption opt_insecure =
        FLAG(CTL_SLOT_INSECURE, 'k', "insecure", "Allow connections to SSL sites without certs");
static const CtlOption opt_version = FLAG(CTL_SLOT_VERSION, 0, "version", "Show the version and exit.");
static const CtlOption *const main_options[] = {&opt_config_file, &opt_dcs_url, &opt_insecure, &opt_version};
static const CtlCommandSpec main_spec = {
        "pghactl", main_options, ELEMENTSOF(main_options), NULL, 0, .stop_at_positional = true};

static const Verb *find_verb(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(verbs); i++)
                if (streq(name, verbs[i].spec.name))
                        return &verbs[i];
        return NULL;
}

static void print_main_help(void) {
        printf("Usage: pghactl [OPTIONS] COMMAND [ARGS]...\n\n"
               "Options:\n"
               "  -c, --config-file TEXT  Configuration file\n"
               "  -d, --dcs-url, --dcs TEXT\n"
               "                          The DCS connect url\n"
               "  -k, --insecure          Allow connections to SSL sites without certs\n"
               "  --version               Show the version and exit.\n"
               "  --help                  Show this message and exit.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-12s %s\n", verbs[i].spec.name, verbs[i].help);
}

static int verb_help(Ctl *c, const CtlArgs *a) {
        const Verb *v = find_verb(a->positional[0]);

        if (a->positional[0] && !v)
                return ctl_fail("No such command '%s'. See 'pghactl help'.", a->positional[0]);
        if (v)
                ctl_args_print_help(&v->spec, "pghactl", v->help, stdout);
        else
                print_main_help();
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(ctl_args_done) CtlArgs global = {}, args = {};
        _cleanup_(ctl_done) Ctl c = {};
        const char *level = NULL;
        const Verb *verb;
        int r;

        /* Quiet unless asked: the etcd client's retries are not the operator's business. */
        for (const char *const *v =
                     (const char *const[]){"LOGLEVEL", "PATRONI_LOGLEVEL", "PATRONI_LOG_LEVEL", NULL};
             *v;
             v++)
                if (getenv(*v))
                        level = getenv(*v);
        log_set_force_stderr(true);
        log_set_max_level(
                level && log_level_from_string(level) >= 0 ? log_level_from_string(level)
                                                           : 2 /* LOG_CRIT */);

        r = ctl_args_parse(&main_spec, argc - 1, argv + 1, &global);
        if (r < 0)
                return 1;
        if (r > 0) {
                print_main_help();
                return 0;
        }
        if (ctl_args_has(&global, CTL_SLOT_VERSION)) {
                printf("pghactl version %s\n", PGHA_VERSION);
                return 0;
        }
        c.config_path = (char *)global.value[CTL_SLOT_CONFIG_FILE];
        c.dcs_url = (char *)global.value[CTL_SLOT_DCS_URL];
        c.insecure = ctl_args_has(&global, CTL_SLOT_INSECURE);
        if (!c.dcs_url)
                c.dcs_url = getenv("DCS_URL");
        if (global.n_rest == 0) {
                print_main_help();
                return 1;
        }
        verb = find_verb(global.rest[0]);
        if (!verb) {
                ctl_fail("No such command '%s'. See 'pghactl help'.", global.rest[0]);
                return 1;
        }
        /* the command's arguments are checked before the configuration is read */
        r = ctl_args_parse(&verb->spec, global.n_rest - 1, global.rest + 1, &args);
        if (r < 0)
                return 1;
        if (r > 0) {
                ctl_args_print_help(&verb->spec, "pghactl", verb->help, stdout);
                return 0;
        }
        if (verb->run == verb_help)
                return verb_help(&c, &args) < 0 ? 1 : 0;
        r = ctl_load_config(&c);
        if (r < 0) {
                if (r != -EINVAL)
                        ctl_fail("%s", strerror(-r));
                return 1;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = verb->run(&c, &args);
        fflush(stdout);
        curl_global_cleanup();
        if (r == -ENOMEM)
                ctl_fail("Out of memory");
        return r < 0 ? 1 : 0;
}
