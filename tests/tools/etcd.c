/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-etcd: drives the etcd/dcs modules on a real sd-event loop against a real etcd, for the
 * integration tests. Prints JSON. Usage:
 *   pgha-test-etcd [--endpoints a,b] [--scope S] [--namespace N] [--ttl S] [--timeout-ms T]
 *                  [--rounds N] [--duration-ms D] [--concurrency C] [--name N] COMMAND
 * COMMAND: race | lease-expiry | watch-wait | frozen-timer-check | load | write-cluster |
 *          read-cluster-json | auth-check | ttl-change (with --new-ttl S)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "pgha/dcs.h"
#include "pgha/etcd.h"
#include "pgha/json.h"
#include "pgha/log.h"

static char *arg_endpoints = NULL;
static const char *arg_scope = "batman";
static const char *arg_namespace = "service";
static const char *arg_name = "node1";
static const char *arg_user = NULL, *arg_password = NULL, *arg_cacert = NULL, *arg_protocol = NULL;
static const char *arg_cert = NULL, *arg_key = NULL;
static usec_t arg_stall = 2 * USEC_PER_SEC;
static unsigned arg_ttl = 30, arg_rounds = 100, arg_concurrency = 8, arg_new_ttl = 20;
static usec_t arg_timeout = 2 * USEC_PER_SEC, arg_duration = 3 * USEC_PER_SEC;
static bool arg_use_proxies = false;

static sd_event *event = NULL;
static int exit_code = 0;

static usec_t mono(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static usec_t realtime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

static void fail(const char *what, int r, const char *message) {
        printf("{\"error\":\"%s: %s\"}\n", what, message ?: strerror(r < 0 ? -r : r));
        fflush(stdout);
        exit_code = 1;
        sd_event_exit(event, 1);
}

static EtcdClient *make_client(void) {
        char *list[65] = {};
        size_t n = 0;
        EtcdClient *c;
        int r;

        for (char *p = arg_endpoints; p && *p && n < 64;) {
                size_t l = strcspn(p, ",");

                list[n++] = strndup(p, l);
                p += l;
                if (*p)
                        p++;
        }
        r = etcd_client_new(
                event,
                &(EtcdClientOptions){
                        .endpoints = list,
                        .protocol = arg_protocol,
                        .username = arg_user,
                        .password = arg_password,
                        .cacert = arg_cacert,
                        .cert = arg_cert,
                        .key = arg_key,
                        .request_timeout = arg_timeout,
                        .use_proxies = arg_use_proxies,
                        .priority = -5,
                },
                &c);
        for (size_t i = 0; i < n; i++)
                free(list[i]);
        if (r < 0) {
                fprintf(stderr, "etcd_client_new: %s\n", strerror(-r));
                exit(2);
        }
        return c;
}

static Dcs *make_dcs(EtcdClient *c, const char *name) {
        Dcs *d;
        int r;

        r =
                dcs_new(event,
                        c,
                        &(DcsOptions){
                                .namespace = arg_namespace,
                                .scope = arg_scope,
                                .name = name,
                                .ttl = arg_ttl,
                                .priority = -10,
                        },
                        &d);
        if (r < 0) {
                fprintf(stderr, "dcs_new: %s\n", strerror(-r));
                exit(2);
        }
        return d;
}

/* ==== race ==== */

typedef struct Racer {
        Dcs *dcs;
        const char *name;
        bool done, won;
        char *seen;
        unsigned wins;
} Racer;

static Racer racers[2];
static unsigned round_no = 0, violations = 0, errors = 0, lease_ready = 0;

static void race_round(void);

static void on_deleted(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        if (error < 0 || !res->succeeded) {
                violations++;
                fprintf(stderr, "round %u: winner could not delete its key: %s\n", round_no, strna(message));
        }
        race_round();
}

static void on_acquired(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        Racer *r = userdata;
        Racer *winner = NULL;

        r->done = true;
        if (error < 0) {
                errors++;
                fprintf(stderr, "round %u: %s: %s\n", round_no, r->name, strna(message));
        } else {
                r->won = res->succeeded;
                free(r->seen);
                r->seen = res->leader ? strdup(res->leader) : NULL;
        }
        if (!racers[0].done || !racers[1].done)
                return;
        if (racers[0].won + racers[1].won != 1)
                violations++;
        for (size_t i = 0; i < 2; i++)
                if (racers[i].won)
                        winner = &racers[i];
        if (winner) {
                Racer *loser = winner == &racers[0] ? &racers[1] : &racers[0];

                winner->wins++;
                if (!streq_ptr(loser->seen, winner->name)) {
                        violations++;
                        fprintf(stderr,
                                "round %u: loser saw %s, winner %s\n",
                                round_no,
                                strna(loser->seen),
                                winner->name);
                }
                if (dcs_leader_delete(winner->dcs, on_deleted, NULL) < 0)
                        fail("delete", -EIO, NULL);
                return;
        }
        race_round();
}

static void race_round(void) {
        if (round_no >= arg_rounds) {
                printf("{\"rounds\":%u,\"wins\":{\"%s\":%u,\"%s\":%u},\"violations\":%u,\"errors\":%u}\n",
                       round_no,
                       racers[0].name,
                       racers[0].wins,
                       racers[1].name,
                       racers[1].wins,
                       violations,
                       errors);
                sd_event_exit(event, 0);
                return;
        }
        round_no++;
        for (size_t i = 0; i < 2; i++) {
                racers[i].done = racers[i].won = false;
                /* Alternate who sends first so neither side is favoured by ordering. */
                Racer *r = &racers[(i + round_no) % 2];

                if (dcs_leader_acquire(r->dcs, on_acquired, r) < 0)
                        fail("acquire", -EIO, NULL);
        }
}

static void on_race_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        if (error < 0 || lease == 0)
                return;
        if (++lease_ready == 2)
                race_round();
}

static int cmd_race(void) {
        EtcdClient *c1 = make_client(), *c2 = make_client();

        racers[0] = (Racer){.dcs = make_dcs(c1, "alpha"), .name = "alpha"};
        racers[1] = (Racer){.dcs = make_dcs(c2, "beta"), .name = "beta"};
        if (dcs_lease_start(racers[0].dcs, on_race_lease, NULL) < 0 ||
            dcs_lease_start(racers[1].dcs, on_race_lease, NULL) < 0)
                return 2;
        sd_event_loop(event);
        for (size_t i = 0; i < 2; i++) {
                dcs_free(racers[i].dcs);
                free(racers[i].seen);
        }
        etcd_client_free(c1);
        etcd_client_free(c2);
        return exit_code;
}

/* ==== lease-expiry ==== */

static Dcs *expiry_dcs;
static usec_t expiry_renewal;
static sd_event_source *poll_timer;

static void on_expiry_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        if (error >= 0 && !cluster->leader) {
                usec_t now = mono();

                printf("{\"gone_after_ms\":%" PRIu64 ",\"ttl\":%u}\n",
                       (now - expiry_renewal) / USEC_PER_MSEC,
                       arg_ttl);
                dcs_cluster_free(cluster);
                sd_event_exit(event, 0);
                return;
        }
        dcs_cluster_free(cluster);
        (void)sd_event_source_set_time_relative(poll_timer, 20 * USEC_PER_MSEC);
        (void)sd_event_source_set_enabled(poll_timer, SD_EVENT_ONESHOT);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        if (dcs_get_cluster(expiry_dcs, on_expiry_cluster, NULL) < 0)
                fail("get_cluster", -EIO, NULL);
        return 0;
}

static sd_event_source *hold_timer;
static usec_t hold_first_renewal;

static void start_expiry(Dcs *d) {
        /* Stop renewing; the key must vanish ttl seconds after the last renewal started. */
        dcs_lease_stop(d);
        expiry_renewal = dcs_lease_last_renewal(d);
        printf("{\"stopped\":true,\"valid_for_ms\":%" PRIu64 "}\n",
               (dcs_lease_valid_until(d) - expiry_renewal) / USEC_PER_MSEC);
        fflush(stdout);
        (void)sd_event_add_time_relative(
                event, &poll_timer, CLOCK_MONOTONIC, 20 * USEC_PER_MSEC, 1, on_poll, NULL);
}

static void on_held_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        if (error < 0) {
                fail("get_cluster", error, message);
                return;
        }
        /* After 2 x ttl with only the keep-alive timer running, the lock must still be ours. */
        printf("{\"held\":%s,\"leader\":\"%s\",\"lease_matches\":%s,\"renewed_for_ms\":%" PRIu64 "}\n",
               streq_ptr(cluster->leader, arg_name) ? "true" : "false",
               strna(cluster->leader),
               cluster->leader_lease == dcs_lease_id(d) ? "true" : "false",
               (dcs_lease_last_renewal(d) - hold_first_renewal) / USEC_PER_MSEC);
        fflush(stdout);
        dcs_cluster_free(cluster);
        start_expiry(d);
}

static int on_hold_done(sd_event_source *s, uint64_t usec, void *userdata) {
        if (dcs_get_cluster(expiry_dcs, on_held_cluster, NULL) < 0)
                fail("get_cluster", -EIO, NULL);
        return 0;
}

static void
on_expiry_acquired(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        if (error < 0 || !res->succeeded) {
                fail("acquire", error ?: -EBUSY, message);
                return;
        }
        printf("{\"acquired\":true}\n");
        fflush(stdout);
        hold_first_renewal = dcs_lease_last_renewal(d);
        (void)sd_event_add_time_relative(
                event,
                &hold_timer,
                CLOCK_MONOTONIC,
                2 * (usec_t)arg_ttl * USEC_PER_SEC,
                1,
                on_hold_done,
                NULL);
}

static void on_expiry_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        if (error >= 0 && lease > 0 && dcs_leader_acquire(d, on_expiry_acquired, NULL) < 0)
                fail("acquire", -EIO, NULL);
}

static int cmd_lease_expiry(void) {
        EtcdClient *c = make_client();

        expiry_dcs = make_dcs(c, arg_name);
        if (dcs_lease_start(expiry_dcs, on_expiry_lease, NULL) < 0)
                return 2;
        sd_event_loop(event);
        sd_event_source_disable_unref(poll_timer);
        sd_event_source_disable_unref(hold_timer);
        dcs_free(expiry_dcs);
        etcd_client_free(c);
        return exit_code;
}

/* ==== watch-wait ==== */

static Dcs *watch_dcs;

static void on_wake(Dcs *d, DcsWakeReason reason, void *userdata) {
        printf("{\"wake\":\"%s\",\"realtime_us\":%" PRIu64 "}\n",
               dcs_wake_reason_to_string(reason),
               realtime());
        fflush(stdout);
        if (reason == DCS_WAKE_LEADER)
                sd_event_exit(event, 0);
}

static void on_watch_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        if (error < 0) {
                fail("get_cluster", error, message);
                return;
        }
        printf("{\"leader\":\"%s\"}\n", strna(cluster->leader));
        fflush(stdout);
        if (dcs_watch_start(d, cluster->revision + 1, arg_stall, on_wake, NULL) < 0)
                fail("watch", -EIO, NULL);
        dcs_cluster_free(cluster);
}

static int cmd_watch_wait(void) {
        EtcdClient *c = make_client();

        watch_dcs = make_dcs(c, arg_name);
        if (dcs_get_cluster(watch_dcs, on_watch_cluster, NULL) < 0)
                return 2;
        sd_event_loop(event);
        dcs_free(watch_dcs);
        etcd_client_free(c);
        return exit_code;
}

/* ==== frozen-timer-check and load ==== */

static EtcdClient *load_client;
static usec_t load_start, last_tick, max_gap, max_request;
static unsigned ticks, n_ok, n_failed, in_flight, max_in_flight_seen;
static unsigned ok_after_failure;
static bool stopping;
static sd_event_source *tick_timer, *stop_timer;
static cJSON *buckets;

static void load_issue(void);

static void record(bool ok) {
        char key[32]; /* a bucket index in decimal */
        cJSON *b;
        uint64_t ms = realtime() / USEC_PER_MSEC;

        (void)snprintf(key, sizeof(key), "%" PRIu64, ms - ms % 250);
        b = cJSON_GetObjectItem(buckets, key);
        if (!b) {
                b = cJSON_CreateArray();
                cJSON_AddItemToArray(b, cJSON_CreateNumber(0));
                cJSON_AddItemToArray(b, cJSON_CreateNumber(0));
                cJSON_AddItemToObject(buckets, key, b);
        }
        cJSON *slot = cJSON_GetArrayItem(b, ok ? 0 : 1);
        cJSON_SetNumberValue(slot, slot->valuedouble + 1);
}

static void finish_load(void) {
        _cleanup_free_ char *text = NULL;

        if (in_flight > 0)
                return;
        /* Everything answered: nothing may remain in the client (no leaked requests). */
        text = cJSON_PrintUnformatted(buckets);
        printf("{\"ticks\":%u,\"max_gap_ms\":%.1f,\"ok\":%u,\"failed\":%u,\"ok_after_last_failure\":%u,"
               "\"max_request_ms\":%.1f,\"active_at_end\":%zu,\"buckets\":%s}\n",
               ticks,
               (double)max_gap / USEC_PER_MSEC,
               n_ok,
               n_failed,
               ok_after_failure,
               (double)max_request / USEC_PER_MSEC,
               etcd_client_active(load_client),
               text);
        sd_event_exit(event, 0);
}

static void
on_load_reply(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        usec_t started = (usec_t)(uintptr_t)userdata, took = mono() - started;

        in_flight--;
        max_request = MAX(max_request, took);
        if (error < 0) {
                n_failed++;
                ok_after_failure = 0;
                if (n_failed <= 50) /* keep stderr bounded */
                        fprintf(stderr,
                                "request failed after %.0f ms: %s\n",
                                (double)took / 1000,
                                strna(message));
        } else {
                n_ok++;
                ok_after_failure++;
        }
        record(error >= 0);
        if (stopping) {
                finish_load();
                return;
        }
        load_issue();
}

static void load_issue(void) {
        static unsigned seq = 0;
        char key[64], value[32]; /* short test keys */
        void *ud = (void *)(uintptr_t)mono();
        int r;

        (void)snprintf(key, sizeof(key), "/pgha-test/load/%u", seq % 16);
        (void)snprintf(value, sizeof(value), "%u", seq);
        if (seq++ % 2 == 0)
                r = etcd_put(load_client, key, value, 0, on_load_reply, ud, NULL);
        else
                r = etcd_range(load_client, key, NULL, on_load_reply, ud, NULL);
        if (r < 0) {
                fail("start request", r, NULL);
                return;
        }
        in_flight++;
        max_in_flight_seen = MAX(max_in_flight_seen, in_flight);
}

static size_t endpoints_seen; /* endpoint count last reported (the configured one at first) */

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        usec_t now = mono();

        /* Member-list discovery at work: one line each time the endpoint count changes. */
        if (etcd_client_n_endpoints(load_client) != endpoints_seen) {
                endpoints_seen = etcd_client_n_endpoints(load_client);
                printf("{\"endpoints\":%zu}\n", endpoints_seen);
                fflush(stdout);
        }
        if (last_tick > 0)
                max_gap = MAX(max_gap, now - last_tick);
        last_tick = now;
        ticks++;
        (void)sd_event_source_set_time(s, usec + 10 * USEC_PER_MSEC);
        return 0;
}

static int on_stop(sd_event_source *s, uint64_t usec, void *userdata) {
        stopping = true;
        finish_load();
        return 0;
}

static int cmd_load(unsigned concurrency) {
        load_client = make_client();
        endpoints_seen = etcd_client_n_endpoints(load_client);
        buckets = cJSON_CreateObject();
        load_start = mono();
        (void)sd_event_add_time_relative(
                event, &tick_timer, CLOCK_MONOTONIC, 10 * USEC_PER_MSEC, 1, on_tick, NULL);
        (void)sd_event_source_set_enabled(tick_timer, SD_EVENT_ON);
        (void)sd_event_source_set_priority(tick_timer, -20);
        (void)sd_event_add_time_relative(
                event, &stop_timer, CLOCK_MONOTONIC, arg_duration, 0, on_stop, NULL);
        printf("{\"started\":true,\"realtime_us\":%" PRIu64 "}\n", realtime());
        fflush(stdout);
        for (unsigned i = 0; i < concurrency; i++)
                load_issue();
        sd_event_loop(event);
        sd_event_source_disable_unref(tick_timer);
        sd_event_source_disable_unref(stop_timer);
        etcd_client_free(load_client);
        cJSON_Delete(buckets);
        return exit_code;
}

/* ==== write-cluster / read-cluster-json ==== */

static unsigned pending_writes;
static Dcs *w1, *w2;

static void on_written(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        if (error < 0 || !res->succeeded) {
                fail((const char *)userdata, error ?: -EBUSY, message);
                return;
        }
        if (--pending_writes == 0) {
                printf("{\"written\":true,\"lease\":%" PRIi64 "}\n", dcs_lease_id(w1));
                sd_event_exit(event, 0);
        }
}

static cJSON *member_json(const char *port, const char *api_port, const char *role) {
        _cleanup_free_ char *conn = NULL, *api = NULL;
        cJSON *m = cJSON_CreateObject(), *tags = cJSON_CreateObject();

        (void)asprintf(&conn, "postgres://127.0.0.1:%s/postgres", port);
        (void)asprintf(&api, "http://127.0.0.1:%s/patroni", api_port);
        (void)json_add_string(m, "conn_url", conn);
        (void)json_add_string(m, "api_url", api);
        (void)json_add_string(m, "state", "running");
        (void)json_add_string(m, "role", role);
        (void)json_add_string(m, "version", "3.0.2");
        (void)json_add_string(tags, "mytag", "hello");
        (void)json_add_item(m, "tags", tags);
        (void)json_add_int64(m, "xlog_location", 83886752);
        (void)json_add_int64(m, "timeline", 2);
        return m;
}

#define WRITE(call, what)                                    \
        do {                                                 \
                pending_writes++;                            \
                if ((call) < 0)                              \
                        fail(what, -EIO, "could not start"); \
        } while (0)

static unsigned leases_ready;

static void on_write_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *config = NULL, *history = NULL, *failsafe = NULL, *m1 = NULL,
                                       *m2 = NULL;
        char *standby[] = {"node2", NULL};
        int r;

        if (error < 0) {
                fail("lease", error, NULL);
                return;
        }
        if (lease == 0 || ++leases_ready < 2)
                return;
        r = json_parse_string(
                "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"
                "\"postgresql\":{\"use_pg_rewind\":true}}",
                &config);
        r = json_parse_string(
                "[[1,25165984,\"no recovery target specified\",\"2026-11-26T20:07:47.977486+00:00\","
                "\"node1\"]]",
                &history);
        r = json_parse_string(
                "{\"node1\":\"http://127.0.0.1:28008/patroni\",\"node2\":\"http://127.0.0.1:28009/"
                "patroni\"}",
                &failsafe);
        if (r < 0 || !config || !history || !failsafe) {
                fail("json", -EINVAL, NULL);
                return;
        }
        m1 = member_json("25432", "28008", "master");
        m2 = member_json("25433", "28009", "replica");
        WRITE(dcs_leader_acquire(w1, on_written, "leader"), "leader");
        WRITE(dcs_touch_member(w1, m1, on_written, "member node1"), "member node1");
        WRITE(dcs_touch_member(w2, m2, on_written, "member node2"), "member node2");
        WRITE(dcs_set_config(w1, config, 0, on_written, "config"), "config");
        WRITE(dcs_initialize_set(w1, "7712574132163962109", on_written, "initialize"), "initialize");
        WRITE(dcs_write_status(w1, 83886752, NULL, on_written, "status"), "status");
        WRITE(dcs_write_sync(w1, "node1", standby, -1, 0, on_written, "sync"), "sync");
        WRITE(dcs_write_failover(w1, NULL, 0, on_written, "failover"), "failover");
        WRITE(dcs_write_history(w1, history, on_written, "history"), "history");
        WRITE(dcs_write_failsafe(w1, failsafe, on_written, "failsafe"), "failsafe");
}

static int cmd_write_cluster(void) {
        EtcdClient *c = make_client();

        w1 = make_dcs(c, "node1");
        w2 = make_dcs(c, "node2");
        if (dcs_lease_start(w1, on_write_lease, NULL) < 0 || dcs_lease_start(w2, on_write_lease, NULL) < 0)
                return 2;
        sd_event_loop(event);
        dcs_free(w1);
        dcs_free(w2);
        etcd_client_free(c);
        return exit_code;
}

static void on_read_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *text = NULL;

        if (error < 0) {
                fail("get_cluster", error, message);
                return;
        }
        if (dcs_cluster_to_json(cluster, &j) < 0 || json_print_compact(j, &text) < 0) {
                fail("to_json", -ENOMEM, NULL);
                dcs_cluster_free(cluster);
                return;
        }
        printf("%s\n", text);
        dcs_cluster_free(cluster);
        sd_event_exit(event, 0);
}

static int cmd_read_cluster(void) {
        EtcdClient *c = make_client();
        Dcs *d = make_dcs(c, arg_name);

        if (dcs_get_cluster(d, on_read_cluster, NULL) < 0)
                return 2;
        sd_event_loop(event);
        dcs_free(d);
        etcd_client_free(c);
        return exit_code;
}

/* ==== cas-check: every guarded write against real etcd, in order ==== */

static Dcs *cas1, *cas2;
static DcsCluster *cas_view;
static unsigned cas_step, cas_failures, cas_leases;
static int cas_expect; /* 1: must succeed, 0: compare must fail, -1: read step */
static const char *cas_expect_leader;
static int64_t cas_old_lease;
static cJSON *cas_log;

static void cas_next(void);

static void cas_record(const char *what, bool ok, const char *detail) {
        cJSON *o = cJSON_CreateObject();

        (void)json_add_string(o, "step", what);
        (void)json_add_bool(o, "ok", ok);
        if (detail)
                (void)json_add_string(o, "detail", detail);
        cJSON_AddItemToArray(cas_log, o);
        if (!ok)
                cas_failures++;
}

static void on_cas_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        const char *what = userdata;
        bool ok = error >= 0 && res->succeeded == (cas_expect == 1);

        if (ok && cas_expect_leader)
                ok = streq_ptr(res->leader, cas_expect_leader);
        cas_record(what, ok, error < 0 ? message : res->leader);
        cas_next();
}

static void on_cas_read(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        if (error < 0) {
                cas_record("read", false, message);
                cas_next();
                return;
        }
        dcs_cluster_free(cas_view);
        cas_view = cluster;
        cas_next();
}

static cJSON *json_of(const char *text) {
        cJSON *j = NULL;

        if (json_parse_string(text, &j) < 0)
                return NULL;
        return j;
}

#define CAS(expect, leader, call)             \
        do {                                  \
                cas_expect = (expect);        \
                cas_expect_leader = (leader); \
                r = (call);                   \
        } while (0)

static void cas_next(void) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        char *standby[] = {"node2", NULL};
        int r = 0;

        switch (cas_step++) {
        case 0:
                CAS(1, NULL, dcs_initialize_race(cas1, on_cas_write, "initialize race (first)"));
                break;
        case 1:
                CAS(0, NULL, dcs_initialize_race(cas2, on_cas_write, "initialize race (second loses)"));
                break;
        case 2:
                CAS(1,
                    NULL,
                    dcs_initialize_set(cas1, "7712574132163962109", on_cas_write, "initialize set"));
                break;
        case 3:
                j = json_of("{\"ttl\":30}");
                CAS(1, NULL, dcs_set_config(cas1, j, 0, on_cas_write, "config plain put"));
                break;
        case 4:
        case 8:
        case 14:
        case 17:
        case 20:
                r = dcs_get_cluster(cas1, on_cas_read, NULL);
                break;
        case 5:
                j = json_of("{\"ttl\":20}");
                CAS(1,
                    NULL,
                    dcs_set_config(cas2, j, cas_view->config_revision, on_cas_write, "config CAS current"));
                break;
        case 6:
                j = json_of("{\"ttl\":10}");
                CAS(0,
                    NULL,
                    dcs_set_config(cas1, j, cas_view->config_revision, on_cas_write, "config CAS stale"));
                break;
        case 7:
                CAS(1, "node1", dcs_leader_acquire(cas1, on_cas_write, "acquire (free)"));
                break;
        case 9:
                CAS(0, "node1", dcs_leader_acquire(cas2, on_cas_write, "acquire (held)"));
                break;
        case 10:
                CAS(0, "node1", dcs_leader_renew(cas2, on_cas_write, "renew by non-holder"));
                break;
        case 11:
                CAS(0, NULL, dcs_leader_delete(cas2, on_cas_write, "delete by non-holder"));
                break;
        case 12:
                CAS(1, "node1", dcs_leader_renew(cas1, on_cas_write, "renew by holder"));
                break;
        case 13:
                CAS(1, NULL, dcs_write_sync(cas1, "node1", standby, -1, 0, on_cas_write, "sync plain put"));
                break;
        case 15:
                CAS(1,
                    NULL,
                    dcs_write_sync(
                            cas1,
                            "node1",
                            standby,
                            -1,
                            cas_view->sync_revision,
                            on_cas_write,
                            "sync CAS current"));
                break;
        case 16:
                CAS(0,
                    NULL,
                    dcs_write_sync(
                            cas1,
                            "node1",
                            NULL,
                            -1,
                            cas_view->sync_revision,
                            on_cas_write,
                            "sync CAS stale"));
                break;
        case 18:
                CAS(1,
                    NULL,
                    dcs_delete_sync(cas1, cas_view->sync_revision, on_cas_write, "sync delete CAS"));
                break;
        case 19:
                CAS(1, NULL, dcs_write_failover(cas1, NULL, 0, on_cas_write, "failover {}"));
                break;
        case 21:
                CAS(1, NULL, dcs_leader_delete(cas1, on_cas_write, "delete by holder"));
                break;
        case 22:
                r = dcs_get_cluster(cas1, on_cas_read, NULL);
                break;
        case 23:
                /* A new ttl drops the lease and grants one with the new TTL (on_cas_lease continues). */
                cas_old_lease = dcs_lease_id(cas1);
                dcs_set_ttl(cas1, 7);
                return;
        default: {
                _cleanup_(cJSON_Deletep) cJSON *view = NULL;
                _cleanup_free_ char *log = NULL, *text = NULL;

                if (dcs_cluster_to_json(cas_view, &view) < 0 || json_print_compact(view, &text) < 0 ||
                    json_print_compact(cas_log, &log) < 0) {
                        fail("json", -ENOMEM, NULL);
                        return;
                }
                printf("{\"failures\":%u,\"steps\":%s,\"view\":%s}\n", cas_failures, log, text);
                sd_event_exit(event, 0);
                return;
        }
        }
        if (r < 0)
                fail("start step", r, NULL);
}

static void on_cas_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        if (error < 0) {
                fail("lease", error, NULL);
                return;
        }
        if (lease == 0)
                return;
        if (++cas_leases == 2)
                cas_next();
        else if (cas_leases > 2 && d == cas1) {
                bool ok = lease != cas_old_lease &&
                        dcs_lease_valid_until(d) - dcs_lease_last_renewal(d) == 7 * USEC_PER_SEC;

                cas_record("ttl change re-grants the lease", ok, NULL);
                cas_next();
        }
}

static int cmd_cas_check(void) {
        EtcdClient *c = make_client();

        cas_log = cJSON_CreateArray();
        cas1 = make_dcs(c, "node1");
        cas2 = make_dcs(c, "node2");
        if (dcs_lease_start(cas1, on_cas_lease, NULL) < 0 || dcs_lease_start(cas2, on_cas_lease, NULL) < 0)
                return 2;
        sd_event_loop(event);
        dcs_cluster_free(cas_view);
        dcs_free(cas1);
        dcs_free(cas2);
        etcd_client_free(c);
        cJSON_Delete(cas_log);
        return exit_code;
}

/* ==== ttl-change ====
 * Takes the leader key with a lease of --ttl, changes the ttl to --new-ttl, and reports what the HA
 * engine's deadline rule relies on: the old lease's validity does not move (it is dropped, not
 * extended), the new lease has the new TTL, the leader key stays bound to the old lease until a renewal
 * re-binds it, and the renewal reports the lease it bound. Then keeps the new lease alive for
 * --duration-ms, so the test can watch the old one expire while the key lives on. */

static Dcs *ttl_dcs;
static cJSON *ttl_out;
static int ttl_step;
static int64_t ttl_old_lease;
static usec_t ttl_old_valid;
static sd_event_source *ttl_hold;

static int on_ttl_hold_done(sd_event_source *s, uint64_t usec, void *userdata) {
        sd_event_exit(event, 0);
        return 0;
}

static void ttl_next(void);

static void on_ttl_read(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        if (error < 0) {
                fail("get_cluster", error, message);
                return;
        }
        (void)json_add_int64(ttl_out, userdata, cluster->leader ? cluster->leader_lease : 0);
        dcs_cluster_free(cluster);
        ttl_next();
}

static void on_ttl_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        if (error < 0 || !res->succeeded) {
                fail(userdata, error < 0 ? error : -EBUSY, message);
                return;
        }
        (void)json_add_int64(ttl_out, userdata, res->lease);
        ttl_next();
}

static void ttl_next(void) {
        _cleanup_free_ char *text = NULL;
        int r = 0;

        switch (ttl_step++) {
        case 0:
                r = dcs_leader_acquire(ttl_dcs, on_ttl_write, "acquire_lease");
                break;
        case 1:
                ttl_old_lease = dcs_lease_id(ttl_dcs);
                ttl_old_valid = dcs_lease_valid_until_of(ttl_dcs, ttl_old_lease);
                (void)json_add_int64(ttl_out, "old_lease", ttl_old_lease);
                (void)json_add_int64(ttl_out, "old_ttl", dcs_lease_ttl(ttl_dcs));
                dcs_set_ttl(ttl_dcs, arg_new_ttl);
                (void)json_add_bool(
                        ttl_out,
                        "old_valid_unchanged_after_set",
                        dcs_lease_valid_until_of(ttl_dcs, ttl_old_lease) == ttl_old_valid);
                (void)json_add_int64(ttl_out, "lease_after_set", dcs_lease_id(ttl_dcs));
                return; /* on_ttl_lease() continues with the new lease */
        case 2:
                (void)json_add_int64(ttl_out, "new_lease", dcs_lease_id(ttl_dcs));
                (void)json_add_int64(ttl_out, "new_ttl", dcs_lease_ttl(ttl_dcs));
                (void)json_add_int64(
                        ttl_out,
                        "new_valid_ms",
                        (int64_t)(dcs_lease_valid_until(ttl_dcs) - dcs_lease_last_renewal(ttl_dcs)) /
                                (int64_t)USEC_PER_MSEC);
                (void)json_add_bool(
                        ttl_out,
                        "old_valid_unchanged_after_grant",
                        dcs_lease_valid_until_of(ttl_dcs, ttl_old_lease) == ttl_old_valid);
                r = dcs_get_cluster(ttl_dcs, on_ttl_read, "bound_before_renew");
                break;
        case 3:
                r = dcs_leader_renew(ttl_dcs, on_ttl_write, "renew_lease");
                break;
        case 4:
                r = dcs_get_cluster(ttl_dcs, on_ttl_read, "bound_after_renew");
                break;
        default:
                (void)json_add_int64(
                        ttl_out,
                        "old_valid_left_ms",
                        ((int64_t)ttl_old_valid - (int64_t)mono()) / (int64_t)USEC_PER_MSEC);
                if (json_print_compact(ttl_out, &text) < 0) {
                        fail("json", -ENOMEM, NULL);
                        return;
                }
                printf("%s\n", text);
                fflush(stdout);
                r = sd_event_add_time_relative(
                        event, &ttl_hold, CLOCK_MONOTONIC, arg_duration, 1, on_ttl_hold_done, NULL);
                break;
        }
        if (r < 0)
                fail("ttl-change step", r, NULL);
}

static void on_ttl_lease(Dcs *d, int error, int64_t lease, void *userdata) {
        if (error < 0 || lease <= 0)
                return;
        if (ttl_step == 0 || ttl_step == 2)
                ttl_next();
}

static int cmd_ttl_change(void) {
        EtcdClient *c = make_client();

        ttl_out = cJSON_CreateObject();
        ttl_dcs = make_dcs(c, arg_name);
        if (!ttl_out || dcs_lease_start(ttl_dcs, on_ttl_lease, NULL) < 0)
                return 2;
        sd_event_loop(event);
        sd_event_source_disable_unref(ttl_hold);
        dcs_free(ttl_dcs);
        etcd_client_free(c);
        cJSON_Delete(ttl_out);
        return exit_code;
}

int main(int argc, char *argv[]) {
        enum {
                ARG_ENDPOINTS = 0x100,
                ARG_SCOPE,
                ARG_NAMESPACE,
                ARG_TTL,
                ARG_TIMEOUT,
                ARG_ROUNDS,
                ARG_DURATION,
                ARG_CONCURRENCY,
                ARG_NAME,
                ARG_USER,
                ARG_PASSWORD,
                ARG_CACERT,
                ARG_PROTOCOL,
                ARG_USE_PROXIES,
                ARG_CERT,
                ARG_KEY,
                ARG_STALL,
                ARG_NEW_TTL
        };
        static const struct option options[] = {
                {"endpoints", required_argument, NULL, ARG_ENDPOINTS},
                {"scope", required_argument, NULL, ARG_SCOPE},
                {"namespace", required_argument, NULL, ARG_NAMESPACE},
                {"ttl", required_argument, NULL, ARG_TTL},
                {"timeout-ms", required_argument, NULL, ARG_TIMEOUT},
                {"rounds", required_argument, NULL, ARG_ROUNDS},
                {"duration-ms", required_argument, NULL, ARG_DURATION},
                {"concurrency", required_argument, NULL, ARG_CONCURRENCY},
                {"name", required_argument, NULL, ARG_NAME},
                {"user", required_argument, NULL, ARG_USER},
                {"password", required_argument, NULL, ARG_PASSWORD},
                {"cacert", required_argument, NULL, ARG_CACERT},
                {"protocol", required_argument, NULL, ARG_PROTOCOL},
                {"use-proxies", no_argument, NULL, ARG_USE_PROXIES},
                {"cert", required_argument, NULL, ARG_CERT},
                {"key", required_argument, NULL, ARG_KEY},
                {"stall-ms", required_argument, NULL, ARG_STALL},
                {"new-ttl", required_argument, NULL, ARG_NEW_TTL},
                {},
        };
        const char *cmd;
        int c, r;

        log_set_force_stderr(true);
        log_set_max_level(getenv("PGHA_DEBUG") ? LOG_DEBUG : LOG_WARNING);
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case ARG_ENDPOINTS:
                        arg_endpoints = optarg;
                        break;
                case ARG_SCOPE:
                        arg_scope = optarg;
                        break;
                case ARG_NAMESPACE:
                        arg_namespace = optarg;
                        break;
                case ARG_TTL:
                        arg_ttl = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case ARG_TIMEOUT:
                        arg_timeout = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case ARG_ROUNDS:
                        arg_rounds = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case ARG_DURATION:
                        arg_duration = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case ARG_CONCURRENCY:
                        arg_concurrency = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case ARG_NAME:
                        arg_name = optarg;
                        break;
                case ARG_USER:
                        arg_user = optarg;
                        break;
                case ARG_PASSWORD:
                        arg_password = optarg;
                        break;
                case ARG_CACERT:
                        arg_cacert = optarg;
                        break;
                case ARG_PROTOCOL:
                        arg_protocol = optarg;
                        break;
                case ARG_USE_PROXIES:
                        arg_use_proxies = true;
                        break;
                case ARG_CERT:
                        arg_cert = optarg;
                        break;
                case ARG_KEY:
                        arg_key = optarg;
                        break;
                case ARG_STALL:
                        arg_stall = strtoull(optarg, NULL, 10) * USEC_PER_MSEC;
                        break;
                case ARG_NEW_TTL:
                        arg_new_ttl = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        }
        if (optind >= argc || !arg_endpoints) {
                fprintf(stderr, "usage: pgha-test-etcd --endpoints HOST:PORT[,...] COMMAND\n");
                return 2;
        }
        cmd = argv[optind];
        r = sd_event_default(&event);
        if (r < 0)
                return 2;
        if (streq(cmd, "race"))
                r = cmd_race();
        else if (streq(cmd, "lease-expiry"))
                r = cmd_lease_expiry();
        else if (streq(cmd, "watch-wait"))
                r = cmd_watch_wait();
        else if (streq(cmd, "frozen-timer-check"))
                r = cmd_load(1);
        else if (streq(cmd, "load"))
                r = cmd_load(arg_concurrency);
        else if (streq(cmd, "write-cluster"))
                r = cmd_write_cluster();
        else if (streq(cmd, "cas-check"))
                r = cmd_cas_check();
        else if (streq(cmd, "read-cluster-json"))
                r = cmd_read_cluster();
        else if (streq(cmd, "ttl-change"))
                r = cmd_ttl_change();
        else {
                fprintf(stderr, "unknown command %s\n", cmd);
                r = 2;
        }
        fflush(stdout);
        sd_event_unref(event);
        return r;
}
