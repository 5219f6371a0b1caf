/* SPDX-License-Identifier: MIT */
/*
 * pghactl: the operator's command line, interchangeable with patronictl 3.0.2. The command tree is one
 * table of verbs, each with its own getopt_long parser; every command reads the cluster straight from
 * etcd and calls the members' REST API where patronictl does (edit-config writes the config key itself
 * with a compare on its mod_revision). Output matches patronictl's; errors are one "Error: ..." line on
 * stderr and exit code 1. See docs/pghactl.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl-internal.h"
#include "pgha/fileio.h"
#include "pgha/json.h"
#include "pgha/log.h"

#define PATRONICTL_VERSION "3.0.2"

typedef struct Verb {
        const char *name;
        int (*run)(Ctl *c, int argc, char **argv);
        const char *help;
        const char *usage; /* arguments and options after the verb */
} Verb;

enum {
        ARG_GROUP = 0x100,
        ARG_LEADER,
        ARG_CANDIDATE,
        ARG_SCHEDULED,
        ARG_FORCE,
        ARG_WAIT,
        ARG_ANY,
        ARG_PG_VERSION,
        ARG_PENDING,
        ARG_TIMEOUT,
        ARG_APPLY,
        ARG_REPLACE,
        ARG_PASSWORD,
        ARG_DELIMITER,
        ARG_FORMAT,
};

static const struct option no_options[] = {
        {"group", required_argument, NULL, ARG_GROUP},
        {"help", no_argument, NULL, 'h'},
        {},
};

/* getopt state is global: every verb starts from a clean slate. */
static void getopt_reset(void) {
        optind = 0;
        opterr = 0;
}

static int bad_option(int argc, char **argv, const char *verb) {
        if (optopt && optopt < 0x100)
                return ctl_fail("%s: no such option: -%c (or it needs a value)", verb, optopt);
        return ctl_fail("%s: no such option: %s (or it needs a value)", verb, argv[optind - 1]);
}

static int bad_group(const char *arg) {
        char *end;
        long g = strtol(arg, &end, 10);
        if (*end || end == arg || g < 0)
                return ctl_fail("Invalid value for '--group': '%s' is not a valid integer", arg);
        if (g != 0)
                return ctl_fail("Citus groups are not supported by pghactl (--group %ld)", g);
        return 0;
}

static int cluster_arg(Ctl *c, int argc, char **argv, bool required, const char **ret) {
        const char *name = optind < argc ? argv[optind++] : NULL;

        if (!name && required)
                return ctl_fail("Missing argument 'CLUSTER_NAME'");
        name = ctl_scope(c, name);
        if (!name)
                return ctl_fail("No cluster name: give it as an argument or set scope in the configuration");
        *ret = name;
        return 0;
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

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
        interrupted = 1;
}

static void sleep_usec(usec_t t) {
        struct timespec ts = {
                .tv_sec = (time_t)(t / USEC_PER_SEC), .tv_nsec = (long)(t % USEC_PER_SEC) * 1000};
        while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int parse_watch(const char *arg, double *ret) {
        char *end;
        double d = strtod(arg, &end);
        if (*end || end == arg || d <= 0 || d > 86400)
                return ctl_fail(
                        "Invalid value for '-w' / '--watch': '%s' is not a positive number of seconds", arg);
        *ret = d;
        return 0;
}

static int list_like(Ctl *c, int argc, char **argv, bool topology) {
        static const struct option options[] = {
                {"extended", no_argument, NULL, 'e'},
                {"timestamp", no_argument, NULL, 't'},
                {"format", required_argument, NULL, 'f'},
                {"watch", required_argument, NULL, 'w'},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        CtlListOptions o = {.format = topology ? CTL_FORMAT_TOPOLOGY : CTL_FORMAT_PRETTY};
        const char *verb = topology ? "topology" : "list";
        double watch = 0;
        bool ts = false;
        char **names;
        size_t n_names;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, topology ? "+Ww:" : "+etf:Ww:", options, NULL)) >= 0)
                switch (opt) {
                case 'e':
                        o.extended = true;
                        break;
                case 't':
                        ts = true;
                        break;
                case 'f':
                        o.format = ctl_format_from_string(optarg);
                        if ((int)o.format < 0)
                                return ctl_fail(
                                        "Invalid value for '--format' / '-f': '%s' (pretty, tsv, json, "
                                        "yaml)",
                                        optarg);
                        break;
                case 'W':
                        if (watch == 0)
                                watch = 2;
                        break;
                case 'w':
                        r = parse_watch(optarg, &watch);
                        if (r < 0)
                                return r;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, verb);
                }
        names = argv + optind;
        n_names = (size_t)(argc - optind);
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
        if (watch > 0) {
                signal(SIGINT, on_sigint);
                signal(SIGTERM, on_sigint);
        }
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
                if (watch <= 0 || interrupted)
                        return 0;
                sleep_usec((usec_t)(watch * USEC_PER_SEC));
                if (interrupted)
                        return 0;
        }
}

static int verb_list(Ctl *c, int argc, char **argv) {
        return list_like(c, argc, argv, false);
}

static int verb_topology(Ctl *c, int argc, char **argv) {
        return list_like(c, argc, argv, true);
}

/* ==== show-config / history / dsn / version ==== */

static int simple_cluster_verb(Ctl *c, int argc, char **argv, const char *verb, const char **ret_name) {
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "+", no_options, NULL)) >= 0)
                switch (opt) {
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, verb);
                }
        r = cluster_arg(c, argc, argv, false, ret_name);
        if (r < 0)
                return r;
        if (optind < argc)
                return ctl_fail("%s: unexpected argument '%s'", verb, argv[optind]);
        return 0;
}

static cJSON *cluster_config(const DcsCluster *cluster) {
        return cluster->config ? cJSON_Duplicate(cluster->config, true) : cJSON_CreateObject();
}

static int verb_show_config(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *config = NULL;
        const char *name;
        int r;

        r = simple_cluster_verb(c, argc, argv, "show-config", &name);
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

static int verb_history(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                {"format", required_argument, NULL, 'f'},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        CtlFormat format = CTL_FORMAT_PRETTY;
        const char *name;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "+f:", options, NULL)) >= 0)
                switch (opt) {
                case 'f':
                        format = ctl_format_from_string(optarg);
                        if ((int)format < 0)
                                return ctl_fail(
                                        "Invalid value for '--format' / '-f': '%s' (pretty, tsv, json, "
                                        "yaml)",
                                        optarg);
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, "history");
                }
        r = cluster_arg(c, argc, argv, false, &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        return ctl_history_print(cluster, format, stdout);
}

static const DcsMember *find_member(const DcsCluster *cluster, const char *role, const char *member) {
        for (size_t i = 0; i < cluster->n_members; i++) {
                const DcsMember *m = &cluster->members[i];
                if (ctl_member_has_role(cluster, m, role) && (!member || streq(m->name, member)))
                        return m;
        }
        return NULL;
}

static int verb_dsn(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                {"role", required_argument, NULL, 'r'},
                {"member", required_argument, NULL, 'm'},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_free_ char *host = NULL;
        const char *name, *role = NULL, *member = NULL;
        const DcsMember *m;
        unsigned port;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "+r:m:", options, NULL)) >= 0)
                switch (opt) {
                case 'r':
                        if (!ctl_role_valid(optarg))
                                return ctl_fail("Invalid value for '--role' / '-r': '%s'", optarg);
                        role = optarg;
                        break;
                case 'm':
                        member = optarg;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, "dsn");
                }
        if (member && role)
                return ctl_fail("--role and --member are mutually exclusive options");
        r = cluster_arg(c, argc, argv, false, &name);
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

static int verb_version(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        const char *name;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "+", no_options, NULL)) >= 0)
                switch (opt) {
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, "version");
                }
        printf("pghactl version %s (patronictl %s compatible)\n", PGHA_VERSION, PATRONICTL_VERSION);
        if (optind >= argc)
                return 0;
        name = argv[optind++];
        printf("\n");
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        for (size_t i = 0; i < cluster->n_members; i++) {
                const DcsMember *m = &cluster->members[i];
                _cleanup_free_ char *body = NULL, *error = NULL, *pg = NULL;
                _cleanup_(cJSON_Deletep) cJSON *j = NULL;
                const cJSON *ver, *sv;
                bool wanted = optind >= argc;
                long status;

                for (int k = optind; k < argc; k++)
                        wanted = wanted || streq(argv[k], m->name);
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

typedef struct MemberArgs {
        const char *role;
        bool force, any, pending, wait;
        const char *scheduled, *pg_version, *timeout;
        const char *target; /* flush */
} MemberArgs;

static int parse_member_args(int argc, char **argv, const char *verb, bool with_role, MemberArgs *a) {
        static const struct option options[] = {
                {"role", required_argument, NULL, 'r'},
                {"force", no_argument, NULL, ARG_FORCE},
                {"any", no_argument, NULL, ARG_ANY},
                {"scheduled", required_argument, NULL, ARG_SCHEDULED},
                {"pg-version", required_argument, NULL, ARG_PG_VERSION},
                {"pending", no_argument, NULL, ARG_PENDING},
                {"timeout", required_argument, NULL, ARG_TIMEOUT},
                {"wait", no_argument, NULL, ARG_WAIT},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        bool restart = streq(verb, "restart"), reinit = streq(verb, "reinit");
        int opt, r;

        getopt_reset();
        /* Options may follow the positional arguments, as click allows. */
        while ((opt = getopt_long(argc, argv, with_role ? "r:" : "", options, NULL)) >= 0)
                switch (opt) {
                case 'r':
                        if (!ctl_role_valid(optarg))
                                return ctl_fail(
                                        "Invalid value for '--role' / '-r': '%s' (leader, primary, "
                                        "standby-leader, replica, standby, any, master)",
                                        optarg);
                        a->role = optarg;
                        break;
                case ARG_FORCE:
                        a->force = true;
                        break;
                case ARG_ANY:
                case ARG_SCHEDULED:
                case ARG_PG_VERSION:
                case ARG_PENDING:
                case ARG_TIMEOUT:
                        if (!restart)
                                return bad_option(argc, argv, verb);
                        if (opt == ARG_ANY)
                                a->any = true;
                        else if (opt == ARG_SCHEDULED)
                                a->scheduled = optarg;
                        else if (opt == ARG_PG_VERSION)
                                a->pg_version = optarg;
                        else if (opt == ARG_PENDING)
                                a->pending = true;
                        else
                                a->timeout = optarg;
                        break;
                case ARG_WAIT:
                        if (!reinit)
                                return bad_option(argc, argv, verb);
                        a->wait = true;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, verb);
                }
        return 0;
}

static void
print_response(const char *prefix, const char *action, const DcsMember *m, long status, const char *body) {
        printf("%s: %s for member %s, status code=%ld, (%s)\n", prefix, action, m->name, status, body);
}

static int rest_failed(const DcsMember *m, const char *error) {
        return ctl_fail("Member %s is not accessible: %s", m->name, strna(error));
}

/* The common start of the member commands (reload, restart, reinit): their options, the cluster name,
 * the cluster read from etcd and the members to act on (patronictl's get_members()). role NULL: the
 * --role option's. */
static int member_command_start(
        Ctl *c,
        int argc,
        char **argv,
        const char *verb,
        const char *role,
        const char *action,
        bool confirm,
        MemberArgs *a,
        DcsCluster **ret_cluster,
        Members *ret_members) {
        const char *name;
        int r;

        r = parse_member_args(argc, argv, verb, !role, a);
        if (r < 0)
                return r;
        r = cluster_arg(c, argc, argv, true, &name);
        if (r < 0)
                return r;
        r = ctl_get_cluster(c, name, ret_cluster);
        if (r < 0)
                return r;
        return get_members(
                *ret_cluster,
                name,
                argv + optind,
                (size_t)(argc - optind),
                role ?: a->role,
                a->force,
                action,
                confirm,
                ret_members);
}

static int verb_reload(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        MemberArgs a = {.role = "any"};
        const cJSON *loop_wait;
        int r, ret = 0;

        r = member_command_start(c, argc, argv, "reload", NULL, "reload", true, &a, &cluster, &s);
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

static int verb_restart(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        _cleanup_(cJSON_Deletep) cJSON *content = NULL;
        _cleanup_free_ char *scheduled = NULL, *scheduled_at = NULL, *version = NULL;
        MemberArgs a = {.role = "any"};
        usec_t timeout = 120 * USEC_PER_SEC;
        int r, ret = 0;

        r = member_command_start(c, argc, argv, "restart", NULL, "restart", false, &a, &cluster, &s);
        if (r < 0)
                return r;

        r = ask_scheduled("restart", a.scheduled, a.force, &scheduled, &scheduled_at);
        if (r < 0)
                return r;
        if (!a.force && s.n > 0) {
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
        if (a.any && s.n > 1) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                s.m[0] = s.m[(size_t)ts.tv_nsec % s.n];
                s.n = 1;
        }
        if (a.pg_version)
                version = strdup(a.pg_version);
        else if (!a.force) {
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
        if (a.pending && json_add_bool(content, "restart_pending", true) < 0)
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
        if (a.timeout) {
                char *end;
                long t = strtol(a.timeout, &end, 10);
                if (json_add_string(content, "timeout", a.timeout) < 0)
                        return -ENOMEM;
                if (end != a.timeout && t > 0 && t < 86400)
                        timeout = (usec_t)(t + 60) * USEC_PER_SEC;
        }

        for (size_t i = 0; i < s.n; i++) {
                const DcsMember *m = s.m[i];
                _cleanup_free_ char *body = NULL, *error = NULL;
                long status;

                if (scheduled_at && a.force && m->scheduled_restart) {
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
                if (status == 200)
                        printf("Success: restart on member %s\n", m->name);
                else if (status == 202)
                        printf("Success: restart scheduled on member %s\n", m->name);
                else if (status == 409) {
                        printf("Failed: another restart is already scheduled on member %s\n", m->name);
                        ret = -EIO;
                } else {
                        print_response("Failed", "restart", m, status, body);
                        ret = -EIO;
                }
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

static int verb_reinit(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        MemberArgs a = {};
        const DcsMember **waiting;
        char **before;
        size_t n_waiting = 0;
        int r, ret = 0;

        r = member_command_start(c, argc, argv, "reinit", "replica", "reinitialize", true, &a, &cluster, &s);
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
                bool force = a.force;
                _cleanup_free_ char *state = NULL;

                /* Remember when PostgreSQL started, so --wait can tell the rebuilt server from the old. */
                if (a.wait)
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
                                if (a.wait)
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
                if (a.wait && (n_waiting == 0 || waiting[n_waiting - 1] != m)) {
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
                        sleep_usec(2 * USEC_PER_SEC);
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

static int switchover_like(Ctl *c, int argc, char **argv, bool failover) {
        static const struct option options[] = {
                {"leader", required_argument, NULL, ARG_LEADER},
                {"primary", required_argument, NULL, ARG_LEADER},
                {"master", required_argument, NULL, ARG_LEADER},
                {"candidate", required_argument, NULL, ARG_CANDIDATE},
                {"scheduled", required_argument, NULL, ARG_SCHEDULED},
                {"force", no_argument, NULL, ARG_FORCE},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        const char *leader = NULL, *candidate = NULL, *scheduled = NULL, *name,
                   *verb = failover ? "failover" : "switchover";
        bool force = false;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case ARG_LEADER:
                        leader = optarg;
                        break;
                case ARG_CANDIDATE:
                        candidate = optarg;
                        break;
                case ARG_SCHEDULED:
                        if (failover)
                                return bad_option(argc, argv, verb);
                        scheduled = optarg;
                        break;
                case ARG_FORCE:
                        force = true;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, verb);
                }
        r = cluster_arg(c, argc, argv, false, &name);
        if (r < 0)
                return r;
        if (optind < argc)
                return ctl_fail("%s: unexpected argument '%s'", verb, argv[optind]);
        /* patronictl 3.0.2: failover with --leader is a switchover */
        return do_failover_or_switchover(
                c,
                failover && !leader ? "failover" : "switchover",
                name,
                leader,
                candidate,
                force,
                scheduled);
}

static int verb_switchover(Ctl *c, int argc, char **argv) {
        return switchover_like(c, argc, argv, false);
}

static int verb_failover(Ctl *c, int argc, char **argv) {
        return switchover_like(c, argc, argv, true);
}

/* ==== flush ==== */

static int verb_flush(Ctl *c, int argc, char **argv) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(members_done) Members s = {};
        MemberArgs a = {.role = "any"};
        const char *name, *target;
        int r, ret = 0;

        r = parse_member_args(argc, argv, "flush", true, &a);
        if (r < 0)
                return r;
        r = cluster_arg(c, argc, argv, true, &name);
        if (r < 0)
                return r;
        if (optind >= argc)
                return ctl_fail("Missing argument 'TARGET' (restart or switchover)");
        target = argv[--argc];
        if (!streq(target, "restart") && !streq(target, "switchover"))
                return ctl_fail(
                        "Invalid value for 'TARGET': '%s' is not one of 'restart', 'switchover'", target);
        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        if (streq(target, "restart")) {
                r = get_members(
                        cluster,
                        name,
                        argv + optind,
                        (size_t)(argc - optind),
                        a.role,
                        a.force,
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

static int pause_like(Ctl *c, int argc, char **argv, bool paused) {
        static const struct option options[] = {
                {"wait", no_argument, NULL, ARG_WAIT},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *body = NULL;
        const char *verb = paused ? "pause" : "resume", *name;
        bool wait = false;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case ARG_WAIT:
                        wait = true;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, verb);
                }
        r = cluster_arg(c, argc, argv, false, &name);
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
                                        sleep_usec(USEC_PER_SEC);
                                }
                        }
                        printf("Success: cluster management is %s\n", paused ? "paused" : "resumed");
                        return 0;
                }
        return ctl_fail("Can not find accessible cluster member");
}

static int verb_pause(Ctl *c, int argc, char **argv) {
        return pause_like(c, argc, argv, true);
}

static int verb_resume(Ctl *c, int argc, char **argv) {
        return pause_like(c, argc, argv, false);
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

static int verb_edit_config(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                {"quiet", no_argument, NULL, 'q'},
                {"set", required_argument, NULL, 's'},
                {"pg", required_argument, NULL, 'p'},
                {"apply", required_argument, NULL, ARG_APPLY},
                {"replace", required_argument, NULL, ARG_REPLACE},
                {"force", no_argument, NULL, ARG_FORCE},
                {"group", required_argument, NULL, ARG_GROUP},
                {},
        };
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(cJSON_Deletep) cJSON *before_data = NULL, *data = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL;
        _cleanup_free_ char **pairs = NULL;
        const char *apply = NULL, *replace = NULL, *name;
        size_t n_pairs = 0, n_set = 0;
        bool quiet = false, force = false, changed_requested = false;
        int opt, r;

        pairs = new0(char *, (size_t)argc + 1);
        if (!pairs)
                return -ENOMEM;
        /* First pass: collect -s pairs, then -p pairs, in the order patronictl applies them. */
        getopt_reset();
        while ((opt = getopt_long(argc, argv, "qs:p:", options, NULL)) >= 0)
                switch (opt) {
                case 'q':
                        quiet = true;
                        break;
                case 's':
                        pairs[n_pairs++] = optarg;
                        n_set++;
                        break;
                case 'p':
                        break;
                case ARG_APPLY:
                        apply = optarg;
                        break;
                case ARG_REPLACE:
                        replace = optarg;
                        break;
                case ARG_FORCE:
                        force = true;
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, "edit-config");
                }
        r = cluster_arg(c, argc, argv, false, &name);
        if (r < 0)
                return r;
        if (optind < argc)
                return ctl_fail("edit-config: unexpected argument '%s'", argv[optind]);

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
        /* -s pairs, then -p pairs as postgresql.parameters.<pair> */
        getopt_reset();
        while ((opt = getopt_long(argc, argv, "qs:p:", options, NULL)) >= 0)
                if (opt == 'p') {
                        char *p;
                        if (asprintf(&p, "postgresql.parameters.%s", optarg + strspn(optarg, " \t")) < 0)
                                return -ENOMEM;
                        pairs[n_pairs++] = p;
                }
        for (size_t i = 0; i < n_pairs; i++) {
                _cleanup_free_ char *error = NULL;
                r = ctl_config_set_pair(data, pairs[i], &error);
                if (r < 0) {
                        r = ctl_fail("%s", error ?: strerror(-r));
                        for (size_t k = n_set; k < n_pairs; k++)
                                free(pairs[k]);
                        return r;
                }
                changed_requested = true;
        }
        for (size_t k = n_set; k < n_pairs; k++)
                free(pairs[k]);

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

static int verb_remove(Ctl *c, int argc, char **argv) {
        static const char *const aware = "Yes I am aware";
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_free_ char *a1 = NULL, *a2 = NULL, *a3 = NULL, *q = NULL;
        const char *name;
        int opt, r;

        getopt_reset();
        while ((opt = getopt_long(argc, argv, "+f:", no_options, NULL)) >= 0)
                switch (opt) {
                case 'f':
                        if ((int)ctl_format_from_string(optarg) < 0)
                                return ctl_fail("Invalid value for '--format' / '-f': '%s'", optarg);
                        break;
                case ARG_GROUP:
                        r = bad_group(optarg);
                        if (r < 0)
                                return r;
                        break;
                default:
                        return bad_option(argc, argv, "remove");
                }
        if (optind >= argc)
                return ctl_fail("Missing argument 'CLUSTER_NAME'");
        name = argv[optind];
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

static int verb_query(Ctl *c, int argc, char **argv) {
        return ctl_run_query(c, argc, argv);
}

static int verb_help(Ctl *c, int argc, char **argv);

static const Verb verbs[] = {
        {"dsn",
         verb_dsn,
         "Generate a dsn for the provided member, defaults to a dsn of the leader",
         "[CLUSTER_NAME] [-r ROLE | -m MEMBER]"},
        {"edit-config",
         verb_edit_config,
         "Edit cluster configuration",
         "[CLUSTER_NAME] [-q] [-s KEY=VALUE]... [-p GUC=VALUE]... [--apply FILE|-] [--replace FILE|-] "
         "[--force]"},
        {"failover",
         verb_failover,
         "Failover to a replica",
         "[CLUSTER_NAME] [--leader NAME] --candidate NAME [--force]"},
        {"flush",
         verb_flush,
         "Discard scheduled events",
         "CLUSTER_NAME [MEMBER_NAMES]... {restart|switchover} [-r ROLE] [--force]"},
        {"help", verb_help, "Show this help", ""},
        {"history", verb_history, "Show the history of failovers/switchovers", "[CLUSTER_NAME] [-f FORMAT]"},
        {"list",
         verb_list,
         "List the Patroni members for a given Patroni",
         "[CLUSTER_NAMES]... [-e] [-t] [-f pretty|tsv|json|yaml] [-W | -w SECONDS]"},
        {"pause", verb_pause, "Disable auto failover", "[CLUSTER_NAME] [--wait]"},
        {"query",
         verb_query,
         "Query a Patroni PostgreSQL member",
         "[CLUSTER_NAME] (-c SQL | --file FILE) [-r ROLE | -m MEMBER] [-U USER] [--password] [-d DBNAME] "
         "[--format FORMAT] [--delimiter D]"},
        {"reinit",
         verb_reinit,
         "Reinitialize cluster member",
         "CLUSTER_NAME [MEMBER_NAMES]... [--force] [--wait]"},
        {"reload",
         verb_reload,
         "Reload cluster member configuration",
         "CLUSTER_NAME [MEMBER_NAMES]... [-r ROLE] [--force]"},
        {"restart",
         verb_restart,
         "Restart cluster member",
         "CLUSTER_NAME [MEMBER_NAMES]... [-r ROLE] [--any] [--scheduled TS] [--pg-version V] [--pending] "
         "[--timeout T] [--force]"},
        {"remove", verb_remove, "Remove cluster from DCS", "CLUSTER_NAME"},
        {"resume", verb_resume, "Resume auto failover", "[CLUSTER_NAME] [--wait]"},
        {"show-config", verb_show_config, "Show cluster configuration", "[CLUSTER_NAME]"},
        {"switchover",
         verb_switchover,
         "Switchover to a replica",
         "[CLUSTER_NAME] [--leader NAME] [--candidate NAME] [--scheduled TS] [--force]"},
        {"topology",
         verb_topology,
         "Prints ASCII topology for given cluster",
         "[CLUSTER_NAMES]... [-W | -w SECONDS]"},
        {"version",
         verb_version,
         "Output version of pghactl command or a running Patroni instance",
         "[CLUSTER_NAME [MEMBER_NAMES]...]"},
};

static int verb_help(Ctl *c, int argc, char **argv) {
        printf("Usage: pghactl [OPTIONS] COMMAND [ARGS]...\n\n"
               "Options:\n"
               "  -c, --config-file TEXT  Configuration file\n"
               "  -d, --dcs-url, --dcs TEXT\n"
               "                          The DCS connect url\n"
               "  -k, --insecure          Allow connections to SSL sites without certs\n"
               "  --help                  Show this message and exit.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-12s %s\n", verbs[i].name, verbs[i].help);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                {"config-file", required_argument, NULL, 'c'},
                {"dcs-url", required_argument, NULL, 'd'},
                {"dcs", required_argument, NULL, 'd'},
                {"insecure", no_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        _cleanup_(ctl_done) Ctl c = {};
        const char *level = NULL;
        const Verb *verb = NULL;
        int opt, r;

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

        opterr = 0;
        while ((opt = getopt_long(argc, argv, "+c:d:kh", options, NULL)) >= 0)
                switch (opt) {
                case 'c':
                        c.config_path = optarg;
                        break;
                case 'd':
                        c.dcs_url = optarg;
                        break;
                case 'k':
                        c.insecure = true;
                        break;
                case 'h':
                        return verb_help(&c, argc, argv), 0;
                case 'V':
                        printf("pghactl version %s\n", PGHA_VERSION);
                        return 0;
                default:
                        ctl_fail("no such option: %s", argv[optind - 1]);
                        return 1;
                }
        if (!c.dcs_url)
                c.dcs_url = getenv("DCS_URL");
        if (optind >= argc) {
                verb_help(&c, argc, argv);
                return 1;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[optind], verbs[i].name))
                        verb = &verbs[i];
        if (!verb) {
                ctl_fail("No such command '%s'. See 'pghactl help'.", argv[optind]);
                return 1;
        }
        if (verb->run == verb_help)
                return verb_help(&c, argc, argv), 0;
        for (int i = optind + 1; i < argc; i++)
                if (streq(argv[i], "--help")) {
                        printf("Usage: pghactl [OPTIONS] %s %s\n\n  %s\n\nSee docs/pghactl.md for every "
                               "option.\n",
                               verb->name,
                               verb->usage,
                               verb->help);
                        return 0;
                }
        /* version without a cluster needs no configuration */
        r = ctl_load_config(&c);
        if (r < 0) {
                if (r != -EINVAL)
                        ctl_fail("%s", strerror(-r));
                return 1;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = verb->run(&c, argc - optind, argv + optind);
        fflush(stdout);
        curl_global_cleanup();
        if (r == -ENOMEM)
                ctl_fail("Out of memory");
        return r < 0 ? 1 : 0;
}
