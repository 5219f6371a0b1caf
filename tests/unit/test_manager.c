/* SPDX-License-Identifier: MIT */
/*
 * Manager on a real sd_event loop: state names, the graceful shutdown (hook order, asynchronous hooks,
 * failing hooks, the overall deadline, late completions), reloads (success, failure keeping the running
 * configuration, the PATRONI_* environment re-applied), and the systemd notifications as received on a
 * notification socket of our own.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <systemd/sd-event.h>

#include "pgha/config.h"
#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/manager.h"
#include "tests.h"

/* The key table, to check the manager's list of start-only keys against its NO_RELOAD flags. */
#include "../../src/daemon/config/config-internal.h"

/* A complete local configuration (the keys Patroni's validator requires), with one name to vary. */
#define CONFIG_TEMPLATE                             \
        "scope: unit\n"                             \
        "namespace: /service/\n"                    \
        "name: %s\n"                                \
        "log:\n"                                    \
        "  level: %s\n"                             \
        "restapi:\n"                                \
        "  listen: 127.0.0.1:%u\n"                  \
        "  connect_address: 192.0.2.1:8008\n"       \
        "etcd3:\n"                                  \
        "  hosts: 127.0.0.1:2379\n"                 \
        "postgresql:\n"                             \
        "  listen: 127.0.0.1:5432\n"                \
        "  connect_address: 192.0.2.1:5432\n"       \
        "  data_dir: /tmp/pgha-unit-manager/data\n" \
        "  authentication:\n"                       \
        "    superuser:\n"                          \
        "      username: postgres\n"                \
        "    replication:\n"                        \
        "      username: replicator\n"              \
        "    rewind:\n"                             \
        "      username: rewind_user\n"

static char config_path[] = "/tmp/pgha-test-manager-XXXXXX";

static void write_config(const char *name, const char *level, unsigned port) {
        _cleanup_free_ char *text = NULL;

        ASSERT_TRUE(asprintf(&text, CONFIG_TEMPLATE, name, level, port) > 0);
        ASSERT_OK(write_file_atomic(config_path, text, strlen(text), 0600));
}

/* A copy of s with the first occurrence of what replaced by with. */
static char *strreplace_once(const char *s, const char *what, const char *with) {
        const char *p = strstr(s, what);
        char *r = NULL;

        ASSERT_NOT_NULL(p);
        ASSERT_TRUE(asprintf(&r, "%.*s%s%s", (int)(p - s), s, with, p + strlen(what)) > 0);
        return r;
}

static void write_broken_config(void) {
        static const char text[] = "scope: unit\nname: [unterminated\n";

        ASSERT_OK(write_file_atomic(config_path, text, strlen(text), 0600));
}

/* Whether config_path was created: a flag, not the template's last character (mkstemp() may pick an 'X',
 * and the next case then called mkstemp() on a name that is no template any more). */
static bool config_made = false;

static Manager *make_manager(const char *name) {
        Config *config = NULL;
        Manager *m = NULL;

        if (!config_made) {
                int fd = mkstemp(config_path);
                ASSERT_TRUE(fd >= 0);
                safe_close(fd);
                config_made = true;
        }
        write_config(name, "INFO", 8008);
        ASSERT_OK(manager_load_config(config_path, &config));
        ASSERT_OK(manager_new(config_path, config, &m));
        return m;
}

TEST(state_strings) {
        for (ManagerState s = 0; s < _MANAGER_STATE_MAX; s++) {
                ASSERT_NOT_NULL(manager_state_to_string(s));
                ASSERT_EQ(manager_state_from_string(manager_state_to_string(s)), s);
        }
        ASSERT_STREQ(manager_state_to_string(MANAGER_STOPPING), "stopping");
        ASSERT_NULL(manager_state_to_string(_MANAGER_STATE_MAX));
        ASSERT_EQ(manager_state_from_string("bogus"), _MANAGER_STATE_INVALID);
        ASSERT_EQ(manager_state_from_string(NULL), _MANAGER_STATE_INVALID);
}

/* ---- shutdown ---- */

typedef struct Step {
        const char *name;
        char *trace; /* shared record of the order hooks ran and finished in */
        int result;
        bool asynchronous; /* finish from a timer 5 ms later */
        bool never_finish;
        ManagerDoneFunc done;
        void *done_cookie;
        sd_event_source *timer;
} Step;

static void trace_append(char *trace, const char *what) {
        strncat(trace, what, 255 - strlen(trace));
        strncat(trace, " ", 255 - strlen(trace));
}

static int on_step_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Step *st = userdata;
        char buf[64];

        snprintf(buf, sizeof buf, "%s-done", st->name);
        trace_append(st->trace, buf);
        st->done(st->done_cookie, st->result);
        return 0;
}

static int step_shutdown(Manager *m, ManagerDoneFunc done, void *done_cookie, void *userdata) {
        Step *st = userdata;

        ASSERT_EQ(manager_get_state(m), MANAGER_STOPPING);
        trace_append(st->trace, st->name);
        st->done = done;
        st->done_cookie = done_cookie;
        if (st->never_finish)
                return 0;
        if (st->asynchronous)
                return sd_event_add_time_relative(
                        manager_get_event(m),
                        &st->timer,
                        CLOCK_MONOTONIC,
                        5 * USEC_PER_MSEC,
                        0,
                        on_step_timer,
                        st);
        if (st->result < 0 && streq(st->name, "fails-by-return"))
                return st->result;
        done(done_cookie, st->result);
        return 0;
}

static void step_done(Step *st) {
        st->timer = sd_event_source_disable_unref(st->timer);
}

TEST(shutdown_runs_hooks_in_order_then_exits) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        char trace[256] = "";
        Step dcs = {.name = "dcs", .trace = trace}, rest = {.name = "rest", .trace = trace},
             ha = {.name = "ha", .trace = trace, .asynchronous = true},
             rest2 = {.name = "rest2", .trace = trace};

        /* Registered out of order on purpose; equal orders keep registration order. */
        ASSERT_OK(manager_add_shutdown_hook(m, "dcs", PGHA_SHUTDOWN_ORDER_DCS, step_shutdown, &dcs, NULL));
        ASSERT_OK(
                manager_add_shutdown_hook(m, "rest", PGHA_SHUTDOWN_ORDER_REST, step_shutdown, &rest, NULL));
        ASSERT_OK(manager_add_shutdown_hook(m, "ha", PGHA_SHUTDOWN_ORDER_HA, step_shutdown, &ha, NULL));
        ASSERT_OK(manager_add_shutdown_hook(
                m, "rest2", PGHA_SHUTDOWN_ORDER_REST, step_shutdown, &rest2, NULL));

        ASSERT_EQ(manager_get_state(m), MANAGER_STARTING);
        ASSERT_OK(kill(getpid(), SIGTERM)); /* blocked by manager_new(): waits for the loop */
        ASSERT_EQ(manager_run(m), 0);
        ASSERT_STREQ(trace, "rest rest2 ha ha-done dcs ");
        ASSERT_EQ(manager_get_state(m), MANAGER_STOPPING);
        step_done(&ha);
}

TEST(shutdown_failing_hooks_still_run_the_rest) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        char trace[256] = "";
        Step a = {.name = "fails-by-return", .trace = trace, .result = -EIO},
             b = {.name = "fails-async", .trace = trace, .result = -EBUSY, .asynchronous = true},
             c = {.name = "last", .trace = trace};

        ASSERT_OK(manager_add_shutdown_hook(m, "a", 1, step_shutdown, &a, NULL));
        ASSERT_OK(manager_add_shutdown_hook(m, "b", 2, step_shutdown, &b, NULL));
        ASSERT_OK(manager_add_shutdown_hook(m, "c", 3, step_shutdown, &c, NULL));
        ASSERT_OK(kill(getpid(), SIGINT));
        /* The first error is what the run reports. */
        ASSERT_ERROR(manager_run(m), EIO);
        ASSERT_STREQ(trace, "fails-by-return fails-async fails-async-done last ");
        step_done(&b);
}

TEST(shutdown_deadline) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        char trace[256] = "";
        Step stuck = {.name = "stuck", .trace = trace, .never_finish = true},
             after = {.name = "after", .trace = trace};

        manager_set_shutdown_timeout(m, 30 * USEC_PER_MSEC);
        ASSERT_OK(manager_add_shutdown_hook(m, "stuck", 1, step_shutdown, &stuck, NULL));
        ASSERT_OK(manager_add_shutdown_hook(m, "after", 2, step_shutdown, &after, NULL));
        ASSERT_OK(manager_start_shutdown(m));
        ASSERT_OK(manager_start_shutdown(m)); /* idempotent */
        ASSERT_ERROR(manager_run(m), ETIMEDOUT);
        ASSERT_STREQ(trace, "stuck ");
        /* A completion after the deadline is ignored, and so is a second one. */
        stuck.done(stuck.done_cookie, 0);
        stuck.done(stuck.done_cookie, -EIO);
}

TEST(shutdown_hook_freed_by_owner_counts_as_done) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        _cleanup_(manager_hook_freep) ManagerHook *after_hook = NULL;
        ManagerHook *stuck_hook = NULL;
        char trace[256] = "";
        Step stuck = {.name = "stuck", .trace = trace, .never_finish = true},
             after = {.name = "after", .trace = trace};

        ASSERT_OK(manager_add_shutdown_hook(m, "stuck", 1, step_shutdown, &stuck, &stuck_hook));
        ASSERT_OK(manager_add_shutdown_hook(m, "after", 2, step_shutdown, &after, &after_hook));
        ASSERT_OK(manager_start_shutdown(m));
        ASSERT_STREQ(trace, "stuck ");
        stuck_hook = manager_hook_free(stuck_hook);
        ASSERT_EQ(manager_run(m), 0);
        ASSERT_STREQ(trace, "stuck after ");
        /* after_hook outlives nothing: it is detached by manager_free() and freed by its cleanup. */
}

TEST(hook_registration_errors) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        Step s = {.name = "x"};

        ASSERT_ERROR(manager_add_shutdown_hook(m, "", 1, step_shutdown, &s, NULL), EINVAL);
        ASSERT_ERROR(manager_add_shutdown_hook(m, "x", 1, NULL, &s, NULL), EINVAL);
        ASSERT_ERROR(manager_add_reload_hook(m, NULL, NULL, &s, NULL), EINVAL);
        ASSERT_NULL(manager_hook_free(NULL));
        ASSERT_NULL(manager_free(NULL));
}

/* ---- reload ---- */

typedef struct ReloadRecord {
        unsigned calls;
        char new_name[64];
        unsigned old_port, new_port;
} ReloadRecord;

static int record_reload(Manager *m, const Config *old_config, const Config *new_config, void *userdata) {
        ReloadRecord *rec = userdata;

        ASSERT_TRUE(manager_get_config(m) == new_config);
        ASSERT_EQ(manager_get_state(m), MANAGER_RELOADING);
        rec->calls++;
        rec->old_port = old_config->restapi.listen.port;
        rec->new_port = new_config->restapi.listen.port;
        snprintf(rec->new_name, sizeof rec->new_name, "%s", new_config->name);
        return 0;
}

TEST(reload_swaps_configuration_and_keeps_it_on_error) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        ReloadRecord rec = {};
        const Config *before;
        int saved_level = log_get_max_level();

        ASSERT_STREQ(manager_get_config_path(m), config_path);
        ASSERT_OK(manager_add_reload_hook(m, "record", record_reload, &rec, NULL));

        /* Unchanged file: the hooks still run (PostgreSQL is reloaded on every SIGHUP, as Patroni does). */
        ASSERT_OK(manager_reload(m));
        ASSERT_EQ(rec.calls, 1u);
        ASSERT_STREQ(rec.new_name, "node1");

        write_config("node1", "DEBUG", 8009);
        ASSERT_OK(manager_reload(m));
        ASSERT_EQ(rec.calls, 2u);
        ASSERT_EQ(rec.old_port, 8008);
        ASSERT_EQ(rec.new_port, 8009);
        ASSERT_STREQ(manager_get_config(m)->name, "node1");
        ASSERT_EQ(manager_get_config(m)->restapi.listen.port, 8009);
        ASSERT_EQ(log_get_max_level(), LOG_DEBUG);
        ASSERT_EQ(manager_get_state(m), MANAGER_STARTING); /* a reload does not change the state */

        /* Start-only keys (name, data_dir, etcd hosts) keep their running values until a restart;
         * everything else (the REST port) is applied. */
        {
                _cleanup_free_ char *text = NULL, *changed = NULL;

                ASSERT_TRUE(asprintf(&text, CONFIG_TEMPLATE, "renamed", "DEBUG", 8010) > 0);
                changed = strreplace_once(text, "/tmp/pgha-unit-manager/data", "/tmp/elsewhere");
                ASSERT_OK(write_file_atomic(config_path, changed, strlen(changed), 0600));
        }
        ASSERT_OK(manager_reload(m));
        ASSERT_EQ(rec.calls, 3u);
        ASSERT_STREQ(rec.new_name, "node1");
        ASSERT_EQ(rec.new_port, 8010);
        ASSERT_STREQ(manager_get_config(m)->name, "node1");
        ASSERT_STREQ(manager_get_config(m)->postgresql.data_dir, "/tmp/pgha-unit-manager/data");
        ASSERT_EQ(manager_get_config(m)->restapi.listen.port, 8010);

        write_broken_config();
        before = manager_get_config(m);
        ASSERT_ERROR(manager_reload(m), EINVAL);
        ASSERT_TRUE(manager_get_config(m) == before);
        ASSERT_EQ(manager_get_config(m)->restapi.listen.port, 8010);
        ASSERT_EQ(rec.calls, 3u);

        ASSERT_OK(manager_start_shutdown(m));
        ASSERT_ERROR(manager_reload(m), ESHUTDOWN);
        ASSERT_EQ(manager_run(m), 0);
        log_set_max_level(saved_level);
}

/* The manager keeps these keys' running values on reload (config_keep_running_values() in manager.c);
 * a NO_RELOAD key added to the table without being added there would silently change on reload. */
TEST(no_reload_keys_are_all_kept) {
        static const char *const kept[] = {
                "name",
                "scope",
                "namespace",
                "etcd3.",
                "etcd.",
                "postgresql.data_dir",
                "postgresql.config_dir",
                "citus.",
        };

        for (size_t i = 0; i < config_keys_n; i++) {
                const ConfigKey *k = &config_keys[i];
                bool found = false;

                if (!(k->flags & CK_NO_RELOAD))
                        continue;
                for (size_t j = 0; j < ELEMENTSOF(kept); j++)
                        found = found || streq(k->path, kept[j]) ||
                                (endswith(kept[j], ".") && startswith(k->path, kept[j]));
                if (!found)
                        TEST_FAIL("NO_RELOAD key '%s' is not kept by the manager on reload", k->path);
        }
}

TEST(reload_reapplies_patroni_environment) {
        _cleanup_(manager_freep) Manager *m = NULL;

        ASSERT_OK(setenv("PATRONI_NAME", "from-env", 1));
        ASSERT_OK(setenv("PATRONI_RESTAPI_LISTEN", "127.0.0.1:9999", 1));
        m = make_manager("node1");
        ASSERT_STREQ(manager_get_config(m)->name, "from-env");
        ASSERT_EQ(manager_get_config(m)->restapi.listen.port, 9999);
        /* Scrubbed so that PostgreSQL and callbacks do not inherit them... */
        ASSERT_NULL(getenv("PATRONI_NAME"));
        ASSERT_NULL(getenv("PATRONI_RESTAPI_LISTEN"));
        /* ...but a reload applies the environment seen at start again, over the file's 8010. */
        write_config("node1", "INFO", 8010);
        ASSERT_OK(manager_reload(m));
        ASSERT_EQ(manager_get_config(m)->restapi.listen.port, 9999);
        ASSERT_STREQ(manager_get_config(m)->name, "from-env");
        ASSERT_NULL(getenv("PATRONI_RESTAPI_LISTEN"));
        config_env_forget();
}

static int reload_then_stop(Manager *m, const Config *old_config, const Config *new_config, void *userdata) {
        int *calls = userdata;

        (*calls)++;
        ASSERT_ERROR(manager_reload(m), EBUSY); /* no nested reload */
        ASSERT_OK(manager_start_shutdown(m));
        return -EIO; /* a failing hook is noted, the others still run */
}

static int count_reload(Manager *m, const Config *old_config, const Config *new_config, void *userdata) {
        (*(int *)userdata)++;
        return 0;
}

TEST(reload_hook_may_start_shutdown) {
        _cleanup_(manager_freep) Manager *m = make_manager("node1");
        int first = 0, second = 0;

        ASSERT_OK(manager_add_reload_hook(m, "stop", reload_then_stop, &first, NULL));
        ASSERT_OK(manager_add_reload_hook(m, "count", count_reload, &second, NULL));
        ASSERT_OK(manager_reload(m));
        ASSERT_EQ(first, 1);
        ASSERT_EQ(second, 1);
        /* The shutdown state survives the end of the reload. */
        ASSERT_EQ(manager_get_state(m), MANAGER_STOPPING);
        ASSERT_EQ(manager_run(m), 0);
}

/* ---- sd_notify ---- */

typedef struct NotifyCheck {
        Manager *manager;
        int fd;
        char seen[1024];
        sd_event_source *timer;
        unsigned ticks;
} NotifyCheck;

static void notify_drain(NotifyCheck *n) {
        char buf[512];
        ssize_t l;

        while ((l = recv(n->fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
                buf[l] = '\0';
                strncat(n->seen, buf, sizeof n->seen - 1 - strlen(n->seen));
                strncat(n->seen, "|", sizeof n->seen - 1 - strlen(n->seen));
        }
}

static int on_notify_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        NotifyCheck *n = userdata;

        notify_drain(n);
        switch (n->ticks++) {
        case 0:
                /* Held back: no READY=1 yet although the loop runs. */
                ASSERT_NULL(strstr(n->seen, "READY=1"));
                ASSERT_EQ(manager_get_state(n->manager), MANAGER_STARTING);
                manager_ready_release(n->manager);
                ASSERT_EQ(manager_get_state(n->manager), MANAGER_RUNNING);
                manager_set_status(n->manager, "Role: %s", "replica");
                break;
        case 1:
                ASSERT_OK(kill(getpid(), SIGHUP));
                break;
        default:
                ASSERT_OK(kill(getpid(), SIGTERM));
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        ASSERT_OK(sd_event_source_set_time_relative(s, 10 * USEC_PER_MSEC));
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

TEST(notifications) {
        _cleanup_(manager_freep) Manager *m = NULL;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        NotifyCheck n = {};
        const char *ready, *reloading, *stopping;

        snprintf(sa.sun_path, sizeof sa.sun_path, "/tmp/pgha-test-notify-%i", (int)getpid());
        (void)unlink(sa.sun_path);
        n.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(n.fd >= 0);
        ASSERT_OK(bind(n.fd, (struct sockaddr *)&sa, sizeof sa));
        ASSERT_OK(setenv("NOTIFY_SOCKET", sa.sun_path, 1));

        m = make_manager("node1");
        n.manager = m;
        manager_ready_hold(m);
        ASSERT_OK(sd_event_add_time_relative(
                manager_get_event(m), &n.timer, CLOCK_MONOTONIC, 10 * USEC_PER_MSEC, 0, on_notify_tick, &n));
        ASSERT_EQ(manager_run(m), 0);
        notify_drain(&n);

        ASSERT_OK(unsetenv("NOTIFY_SOCKET"));
        (void)unlink(sa.sun_path);
        safe_close(n.fd);
        n.timer = sd_event_source_disable_unref(n.timer);

        /* READY=1 with a STATUS, then our STATUS, a reload bracket, and STOPPING=1, in that order. */
        ready = strstr(n.seen, "READY=1\nSTATUS=Running as member 'node1' of cluster 'unit'");
        ASSERT_NOT_NULL(ready);
        ASSERT_NOT_NULL(strstr(n.seen, "STATUS=Role: replica"));
        reloading = strstr(n.seen, "RELOADING=1\n");
        ASSERT_NOT_NULL(reloading);
        ASSERT_NOT_NULL(strstr(reloading, "MONOTONIC_USEC="));
        ASSERT_TRUE(reloading > ready);
        /* READY=1 after the reload repeats the last STATUS set by a module. */
        ASSERT_NOT_NULL(strstr(reloading, "|READY=1\nSTATUS=Role: replica|"));
        stopping = strstr(n.seen, "STOPPING=1");
        ASSERT_NOT_NULL(stopping);
        ASSERT_TRUE(stopping > reloading);
}

/* Runs after the cases (destructor order is not guaranteed, but the file is only ours). */
__attribute__((destructor)) static void remove_config(void) {
        if (config_made)
                (void)unlink(config_path);
}

DEFINE_TEST_MAIN
