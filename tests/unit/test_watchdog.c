/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "pgha/log.h"
#include "pgha/watchdog.h"
#include "tests.h"

typedef struct Fifo {
        char dir[64];
        char path[96];
        int reader;
} Fifo;

static void fifo_open(Fifo *f) {
        snprintf(f->dir, sizeof f->dir, "/tmp/pgha-test-watchdog-XXXXXX");
        ASSERT_NOT_NULL(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/watchdog", f->dir);
        ASSERT_OK(mkfifo(f->path, 0600));
        f->reader = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        ASSERT_TRUE(f->reader >= 0);
}

static void fifo_close(Fifo *f) {
        safe_close(f->reader);
        (void)unlink(f->path);
        (void)rmdir(f->dir);
}

/* Everything written to the FIFO since the last call. */
static const char *fifo_read(Fifo *f) {
        static char buf[256];
        ssize_t n = read(f->reader, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static WatchdogOptions testing_options(const char *device, WatchdogMode mode, unsigned ttl) {
        return (WatchdogOptions){
                .mode = mode,
                .driver = WATCHDOG_DRIVER_TESTING,
                .device = device,
                .safety_margin = 5,
                .ttl = ttl,
                .loop_wait = 1,
        };
}

TEST(mode_names_follow_patroni) {
        ASSERT_EQ(watchdog_mode_from_string("off"), WATCHDOG_OFF);
        ASSERT_EQ(watchdog_mode_from_string("Disabled"), WATCHDOG_OFF);
        ASSERT_EQ(watchdog_mode_from_string("false"), WATCHDOG_OFF);
        ASSERT_EQ(watchdog_mode_from_string("auto"), WATCHDOG_AUTOMATIC);
        ASSERT_EQ(watchdog_mode_from_string("automatic"), WATCHDOG_AUTOMATIC);
        ASSERT_EQ(watchdog_mode_from_string("require"), WATCHDOG_REQUIRED);
        ASSERT_EQ(watchdog_mode_from_string("required"), WATCHDOG_REQUIRED);
        ASSERT_EQ(watchdog_mode_from_string("sometimes"), -EINVAL);
        ASSERT_EQ(watchdog_driver_from_string("testing"), WATCHDOG_DRIVER_TESTING);
        ASSERT_EQ(watchdog_driver_from_string("bogus"), -EINVAL);
        ASSERT_STREQ(watchdog_mode_to_string(WATCHDOG_REQUIRED), "required");
}

TEST(timeout_is_ttl_minus_margin) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL;
        WatchdogOptions o = testing_options("/nonexistent", WATCHDOG_REQUIRED, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_EQ(watchdog_wanted_timeout(w), 15);
        ASSERT_EQ(watchdog_timing_slack(w), 14);
        o.safety_margin = -1;
        ASSERT_OK(watchdog_reconfigure(w, &o));
        ASSERT_EQ(watchdog_wanted_timeout(w), 10);
}

TEST(testing_driver_sees_activation_keepalive_reconfigure_and_close) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL;
        Fifo f;
        fifo_open(&f);
        WatchdogOptions o = testing_options(f.path, WATCHDOG_REQUIRED, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_TRUE(watchdog_is_healthy(w));
        ASSERT_OK(watchdog_activate(w));
        ASSERT_TRUE(watchdog_is_active(w));
        ASSERT_STREQ(fifo_read(&f), "Ctimeout=15\n");
        ASSERT_OK(watchdog_keepalive(w));
        ASSERT_OK(watchdog_keepalive(w));
        ASSERT_STREQ(fifo_read(&f), "11");

        /* A ttl change is sent with the next keep-alive. */
        o.ttl = 30;
        ASSERT_OK(watchdog_reconfigure(w, &o));
        ASSERT_STREQ(fifo_read(&f), "");
        ASSERT_OK(watchdog_keepalive(w));
        ASSERT_STREQ(fifo_read(&f), "Ctimeout=25\n1");

        watchdog_disable(w);
        ASSERT_FALSE(watchdog_is_active(w));
        ASSERT_STREQ(fifo_read(&f), "V");
        /* Feeding a disabled watchdog writes nothing. */
        ASSERT_OK(watchdog_keepalive(w));
        ASSERT_STREQ(fifo_read(&f), "");
        w = watchdog_free(w);
        fifo_close(&f);
}

TEST(free_closes_with_magic_character) {
        Watchdog *w = NULL;
        Fifo f;
        fifo_open(&f);
        WatchdogOptions o = testing_options(f.path, WATCHDOG_AUTOMATIC, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_OK(watchdog_activate(w));
        (void)fifo_read(&f);
        w = watchdog_free(w);
        ASSERT_STREQ(fifo_read(&f), "V");
        fifo_close(&f);
}

TEST(activation_failures) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL, *off = NULL, *tight = NULL;
        Fifo f;
        fifo_open(&f);
        WatchdogOptions o = testing_options("/nonexistent/watchdog", WATCHDOG_REQUIRED, 20);

        /* Missing device: fails, and a required watchdog is unhealthy. */
        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_FALSE(watchdog_is_healthy(w));
        ASSERT_ERROR(watchdog_activate(w), ENOENT);
        ASSERT_FALSE(watchdog_is_active(w));

        /* ttl 6 - margin 5 = 1 s timeout, less than loop_wait 2: no slack, never armed. */
        o = testing_options(f.path, WATCHDOG_REQUIRED, 6);
        o.loop_wait = 2;
        ASSERT_OK(watchdog_new(&o, &tight));
        ASSERT_FALSE(watchdog_is_healthy(tight));
        ASSERT_ERROR(watchdog_activate(tight), ERANGE);
        ASSERT_STREQ(fifo_read(&f), "");

        /* Mode off: activation is a successful no-op and nothing is written. */
        o = testing_options(f.path, WATCHDOG_OFF, 20);
        ASSERT_OK(watchdog_new(&o, &off));
        ASSERT_OK(watchdog_activate(off));
        ASSERT_FALSE(watchdog_is_active(off));
        ASSERT_TRUE(watchdog_is_healthy(off));
        ASSERT_STREQ(fifo_read(&f), "");
        fifo_close(&f);
}

TEST(fifo_without_reader_fails_instead_of_blocking) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL;
        Fifo f;
        fifo_open(&f);
        f.reader = safe_close(f.reader);
        WatchdogOptions o = testing_options(f.path, WATCHDOG_REQUIRED, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_ERROR(watchdog_activate(w), ENXIO);
        fifo_close(&f);
}

/* A device that exists and is writable but cannot be armed (a FIFO without a reader here; EBUSY or a
 * failing SETTIMEOUT on a real device) makes a required watchdog unhealthy, so the node advertises
 * watchdog_failed and does not lead; it is not retried until the options change, as in Patroni. */
TEST(failed_activation_is_unhealthy_until_reconfigured) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL;
        Fifo f;
        fifo_open(&f);
        int reader = f.reader;
        f.reader = -EBADF;
        reader = safe_close(reader);
        WatchdogOptions o = testing_options(f.path, WATCHDOG_REQUIRED, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_TRUE(watchdog_is_healthy(w)); /* writable: looks usable before the first try */
        ASSERT_ERROR(watchdog_activate(w), ENXIO);
        ASSERT_FALSE(watchdog_is_active(w));
        ASSERT_FALSE(watchdog_is_healthy(w));

        /* A reader appears, but the same options are not tried again. */
        f.reader = open(f.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        ASSERT_TRUE(f.reader >= 0);
        ASSERT_OK(watchdog_reconfigure(w, &o));
        ASSERT_ERROR(watchdog_activate(w), ENXIO);
        ASSERT_FALSE(watchdog_is_healthy(w));
        ASSERT_STREQ(fifo_read(&f), "");

        /* A changed option clears the failure: healthy again, and armed at the next activation. */
        o.safety_margin = 4;
        ASSERT_OK(watchdog_reconfigure(w, &o));
        ASSERT_TRUE(watchdog_is_healthy(w));
        ASSERT_OK(watchdog_activate(w));
        ASSERT_TRUE(watchdog_is_active(w));
        ASSERT_STREQ(fifo_read(&f), "Ctimeout=16\n");
        watchdog_disable(w);
        fifo_close(&f);
}

/* In automatic mode the failure is not fatal but is remembered too: no retry (and no log) per tick. */
TEST(automatic_failure_stays_healthy) {
        _cleanup_(watchdog_freep) Watchdog *w = NULL;
        WatchdogOptions o = testing_options("/nonexistent/watchdog", WATCHDOG_AUTOMATIC, 20);

        ASSERT_OK(watchdog_new(&o, &w));
        ASSERT_ERROR(watchdog_activate(w), ENOENT);
        ASSERT_TRUE(watchdog_is_healthy(w));
        ASSERT_ERROR(watchdog_activate(w), ENOENT);
}

DEFINE_TEST_MAIN
