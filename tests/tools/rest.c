/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-rest: runs the REST server on a real sd-event loop, answering from a snapshot described in a
 * JSON file (docs/rest-api.md, "Snapshot files"), so integration tests can put a node into any state.
 * SIGHUP reloads the file; SIGTERM/SIGINT exit and print {"ticks": N, "max_lateness_usec": N} when
 * --lateness kept a 10 ms timer running to measure how late the loop dispatches under REST load.
 *
 * --intents echo|delay registers a stand-in for the HA engine that answers every intent with 200 and a
 * JSON description of what it received, at once (echo) or --delay seconds later (delay, default 0.2,
 * exercising suspended connections). Without it no engine is registered and write endpoints answer as
 * Patroni does when it cannot act.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include <systemd/sd-event.h>

#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/rest.h"

#define SNAPSHOT_FILE_MAX (4U * 1024U * 1024U)
#define LATENESS_INTERVAL (10 * USEC_PER_MSEC)
#define DELAYED_MAX       64

static const char *arg_snapshot = NULL;
static RestServerOptions arg_options = {.listen_host = "127.0.0.1"};
static bool arg_lateness = false;
static const char *arg_intents = NULL;
static usec_t arg_delay = 200 * USEC_PER_MSEC;
static char *arg_allow[16];
static size_t arg_n_allow = 0;
static char *arg_headers[16];
static size_t arg_n_headers = 0;

static NodeSnapshot snapshot = {};
static RestServer *server = NULL;
static uint64_t ticks = 0, max_lateness = 0;

typedef struct Delayed {
        RestCall *call;
        sd_event_source *timer;
        cJSON *reply;
} Delayed;
static Delayed delayed[DELAYED_MAX];

static int load_snapshot(sd_event *e) {
        _cleanup_free_ char *text = NULL, *err = NULL;
        uint64_t now = 0;
        cJSON *j;
        int r;

        r = read_full_file(arg_snapshot, SNAPSHOT_FILE_MAX, &text, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to read snapshot file \"%s\": %m", arg_snapshot);
        j = cJSON_Parse(text);
        if (!j)
                return log_error_errno(
                        SYNTHETIC_ERRNO(EINVAL), "Snapshot file \"%s\" is not JSON", arg_snapshot);
        (void)sd_event_now(e, CLOCK_MONOTONIC, &now);
        r = snapshot_load_json(j, now, &snapshot, &err);
        cJSON_Delete(j);
        if (r < 0)
                return log_error_errno(r, "Snapshot file \"%s\": %s", arg_snapshot, strna(err));
        log_info("snapshot loaded from %s", arg_snapshot);
        return 0;
}

static cJSON *describe_intent(const RestIntent *i) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "intent", rest_intent_kind_to_string(i->kind));
        if (i->leader)
                cJSON_AddStringToObject(o, "leader", i->leader);
        if (i->candidate)
                cJSON_AddStringToObject(o, "candidate", i->candidate);
        if (i->scheduled_at)
                cJSON_AddNumberToObject(o, "scheduled_at", (double)(i->scheduled_at / USEC_PER_SEC));
        if (i->role)
                cJSON_AddStringToObject(o, "role", i->role);
        if (i->postgres_version)
                cJSON_AddNumberToObject(o, "postgres_version", i->postgres_version);
        if (i->timeout)
                cJSON_AddNumberToObject(o, "timeout", (double)i->timeout);
        if (i->restart_pending)
                cJSON_AddTrueToObject(o, "restart_pending");
        if (i->force)
                cJSON_AddTrueToObject(o, "force");
        if ((i->kind == REST_INTENT_CONFIG_PATCH || i->kind == REST_INTENT_CONFIG_PUT) && i->body)
                cJSON_AddItemToObject(o, "body", cJSON_Duplicate(i->body, true));
        return o;
}

static int on_delayed(sd_event_source *s, uint64_t usec, void *userdata) {
        Delayed *d = userdata;

        (void)rest_call_reply_json(d->call, 200, d->reply);
        cJSON_Delete(d->reply);
        d->timer = sd_event_source_disable_unref(d->timer);
        *d = (Delayed){};
        return 0;
}

static void intent_submit(void *userdata, RestCall *call, const RestIntent *intent) {
        sd_event *e = userdata;
        cJSON *reply = describe_intent(intent);

        if (streq(arg_intents, "delay"))
                for (size_t i = 0; i < DELAYED_MAX; i++) {
                        uint64_t now = 0;
                        if (delayed[i].call)
                                continue;
                        (void)sd_event_now(e, CLOCK_MONOTONIC, &now);
                        if (sd_event_add_time(
                                    e,
                                    &delayed[i].timer,
                                    CLOCK_MONOTONIC,
                                    now + arg_delay,
                                    /* accuracy= */ 1,
                                    on_delayed,
                                    &delayed[i]) < 0)
                                break;
                        delayed[i].call = call;
                        delayed[i].reply = reply;
                        return;
                }
        (void)rest_call_reply_json(call, 200, reply);
        cJSON_Delete(reply);
}

static void intent_cancel(void *userdata, RestCall *call) {
        for (size_t i = 0; i < DELAYED_MAX; i++)
                if (delayed[i].call == call) {
                        delayed[i].timer = sd_event_source_disable_unref(delayed[i].timer);
                        cJSON_Delete(delayed[i].reply);
                        delayed[i] = (Delayed){};
                }
}

static const RestIntentHandler intent_handler = {
        .submit = intent_submit,
        .cancel = intent_cancel,
};

static int on_lateness(sd_event_source *s, uint64_t usec, void *userdata) {
        uint64_t now = 0;

        (void)sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now);
        if (now > usec && now - usec > max_lateness)
                max_lateness = now - usec;
        ticks++;
        (void)sd_event_source_set_time(s, now + LATENESS_INTERVAL);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void)load_snapshot(sd_event_source_get_event(s));
        return 0;
}

static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                {"snapshot", required_argument, NULL, 's'},
                {"listen", required_argument, NULL, 'l'},
                {"port", required_argument, NULL, 'p'},
                {"auth", required_argument, NULL, 'a'},
                {"allow", required_argument, NULL, 'A'},
                {"header", required_argument, NULL, 'H'},
                {"allow-members", no_argument, NULL, 'M'},
                {"delay", required_argument, NULL, 'D'},
                {"leader-needs-postgres", no_argument, NULL, 'P'},
                {"timeout", required_argument, NULL, 't'},
                {"body-max", required_argument, NULL, 'b'},
                {"connection-limit", required_argument, NULL, 'c'},
                {"per-ip-limit", required_argument, NULL, 'I'},
                {"idle-timeout", required_argument, NULL, 'T'},
                {"lateness", no_argument, NULL, 'L'},
                {"intents", required_argument, NULL, 'i'},
                {"certfile", required_argument, NULL, 'C'},
                {"keyfile", required_argument, NULL, 'K'},
                {"cafile", required_argument, NULL, 'F'},
                {"verify-client", required_argument, NULL, 'V'},
                {"debug", no_argument, NULL, 'd'},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        arg_snapshot = optarg;
                        break;
                case 'l':
                        arg_options.listen_host = optarg;
                        break;
                case 'p':
                        arg_options.listen_port = (uint16_t)strtoul(optarg, NULL, 10);
                        break;
                case 'a': {
                        char *colon = strchr(optarg, ':');
                        if (!colon)
                                return log_error_errno(
                                        SYNTHETIC_ERRNO(EINVAL), "--auth takes USER:PASSWORD");
                        *colon = '\0';
                        arg_options.auth_username = optarg;
                        arg_options.auth_password = colon + 1;
                        break;
                }
                case 'A':
                        if (arg_n_allow < ELEMENTSOF(arg_allow))
                                arg_allow[arg_n_allow++] = optarg;
                        break;
                case 'P':
                        arg_options.leader_checks_need_postgres = true;
                        break;
                case 'D':
                        arg_delay = (usec_t)(strtod(optarg, NULL) * USEC_PER_SEC);
                        break;
                case 'M':
                        arg_options.allowlist_include_members = true;
                        break;
                case 'H': {
                        char *colon = strchr(optarg, ':');
                        if (!colon || arg_n_headers + 2 > ELEMENTSOF(arg_headers))
                                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--header takes NAME:VALUE");
                        *colon = '\0';
                        arg_headers[arg_n_headers++] = optarg;
                        arg_headers[arg_n_headers++] = colon + 1;
                        break;
                }
                case 't':
                        arg_options.connection_timeout = (usec_t)(strtod(optarg, NULL) * USEC_PER_SEC);
                        break;
                case 'b':
                        arg_options.body_max = strtoul(optarg, NULL, 10);
                        break;
                case 'c':
                        arg_options.connection_limit = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'I':
                        arg_options.per_ip_connection_limit = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'T':
                        arg_options.idle_timeout = (usec_t)(strtod(optarg, NULL) * USEC_PER_SEC);
                        break;
                case 'L':
                        arg_lateness = true;
                        break;
                case 'i':
                        if (!streq(optarg, "echo") && !streq(optarg, "delay"))
                                return log_error_errno(
                                        SYNTHETIC_ERRNO(EINVAL), "--intents takes echo or delay");
                        arg_intents = optarg;
                        break;
                case 'C':
                        arg_options.certfile = optarg;
                        break;
                case 'K':
                        arg_options.keyfile = optarg;
                        break;
                case 'F':
                        arg_options.cafile = optarg;
                        break;
                case 'V':
                        arg_options.verify_client = streq(optarg, "required") ? REST_VERIFY_CLIENT_REQUIRED
                                : streq(optarg, "optional")                   ? REST_VERIFY_CLIENT_OPTIONAL
                                                                              : REST_VERIFY_CLIENT_NONE;
                        break;
                case 'd':
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return -EINVAL;
                }
        if (!arg_snapshot)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--snapshot FILE is required");
        arg_options.allowlist = arg_allow;
        arg_options.n_allowlist = arg_n_allow;
        arg_options.extra_headers = arg_headers;
        arg_options.n_extra_headers = arg_n_headers / 2;
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *lateness = NULL;
        sigset_t mask;
        int r;

        log_set_force_stderr(true);
        r = parse_argv(argc, argv);
        if (r < 0)
                return 2;

        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&e);
        if (r < 0)
                return log_error_errno(r, "sd_event_default: %m"), 1;
        (void)sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
        (void)sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
        (void)sd_event_add_signal(e, NULL, SIGHUP, on_sighup, NULL);

        if (load_snapshot(e) < 0)
                return 1;

        r = rest_server_new(e, &arg_options, &snapshot, &server);
        if (r < 0)
                return 1;
        if (arg_intents)
                rest_server_set_intent_handler(server, &intent_handler, e);

        if (arg_lateness) {
                uint64_t now = 0;
                (void)sd_event_now(e, CLOCK_MONOTONIC, &now);
                r = sd_event_add_time(
                        e,
                        &lateness,
                        CLOCK_MONOTONIC,
                        now + LATENESS_INTERVAL,
                        /* accuracy= */ 1,
                        on_lateness,
                        NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to add the lateness timer: %m"), 1;
                (void)sd_event_source_set_enabled(lateness, SD_EVENT_ON);
                (void)sd_event_source_set_description(lateness, "lateness-probe");
        }

        printf("{\"listening\": %u}\n", rest_server_port(server));
        fflush(stdout);

        r = sd_event_loop(e);
        server = rest_server_free(server);
        for (size_t i = 0; i < DELAYED_MAX; i++)
                if (delayed[i].call) {
                        delayed[i].timer = sd_event_source_disable_unref(delayed[i].timer);
                        cJSON_Delete(delayed[i].reply);
                }
        snapshot_done(&snapshot);
        printf("{\"ticks\": %" PRIu64 ", \"max_lateness_usec\": %" PRIu64 "}\n", ticks, max_lateness);
        fflush(stdout);
        return r < 0 ? 1 : 0;
}
