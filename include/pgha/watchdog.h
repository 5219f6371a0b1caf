/* SPDX-License-Identifier: MIT */
/*
 * The watchdog (Patroni's watchdog section): while this node runs the primary, a device that resets the
 * host unless fed in time. Armed before promotion with timeout ttl - safety_margin, fed after every
 * successful lease renewal, closed with the magic character whenever PostgreSQL stops being primary, so
 * a frozen or hung node is reset before another node can take over the lease.
 *
 * Drivers: "default" is a Linux watchdog device (ioctls, keep-alive is write "1", magic close "V");
 * "testing" is Patroni's named-pipe stand-in used by acceptance tests: ioctls become writes of
 * "Ctimeout=<n>\n", so a reader of the FIFO sees every activation, keep-alive and close.
 *
 * All calls are short non-blocking writes or ioctls; the FIFO is opened O_NONBLOCK, so a test FIFO without
 * a reader makes activation fail instead of freezing the loop (Patroni blocks there).
 */
#pragma once

#include "pgha/macro.h"

typedef enum WatchdogMode {
        WATCHDOG_OFF,
        WATCHDOG_AUTOMATIC, /* use it when the device works, carry on without it otherwise */
        WATCHDOG_REQUIRED,  /* never lead without an armed watchdog */
        _WATCHDOG_MODE_MAX,
        _WATCHDOG_MODE_INVALID = -EINVAL,
} WatchdogMode;

typedef enum WatchdogDriver {
        WATCHDOG_DRIVER_DEFAULT,
        WATCHDOG_DRIVER_TESTING,
        _WATCHDOG_DRIVER_MAX,
        _WATCHDOG_DRIVER_INVALID = -EINVAL,
} WatchdogDriver;

typedef struct WatchdogOptions {
        WatchdogMode mode;
        WatchdogDriver driver;
        const char *device; /* NULL: /dev/watchdog */
        int safety_margin;  /* seconds; -1 means timeout = ttl / 2 */
        unsigned ttl;       /* seconds, from the dynamic configuration */
        unsigned loop_wait; /* seconds */
} WatchdogOptions;

typedef struct Watchdog Watchdog;

const char *watchdog_mode_to_string(WatchdogMode m);
WatchdogMode watchdog_mode_from_string(const char *s);
const char *watchdog_driver_to_string(WatchdogDriver d);
WatchdogDriver watchdog_driver_from_string(const char *s);

int watchdog_new(const WatchdogOptions *options, Watchdog **ret);
Watchdog *watchdog_free(Watchdog *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Watchdog *, watchdog_free);

int watchdog_reconfigure(Watchdog *w, const WatchdogOptions *options);
int watchdog_activate(Watchdog *w);
int watchdog_keepalive(Watchdog *w);
void watchdog_disable(Watchdog *w);

bool watchdog_is_active(const Watchdog *w);
bool watchdog_is_healthy(const Watchdog *w);
unsigned watchdog_wanted_timeout(const Watchdog *w);
int watchdog_timing_slack(const Watchdog *w);
