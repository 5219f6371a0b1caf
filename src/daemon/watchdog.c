/* SPDX-License-Identifier: MIT */
/*
 * Watchdog device handling, Linux and Patroni's "testing" FIFO driver. Invariant: while active, the
 * device's effective timeout is at most ttl - safety_margin, so the host is reset before the leader lease
 * can expire and another node be promoted; an activation that cannot guarantee that fails in "required"
 * mode and only warns in "automatic" mode, as Patroni does.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <linux/watchdog.h>

#include "pgha/log.h"
#include "pgha/watchdog.h"

#define WATCHDOG_DEFAULT_DEVICE "/dev/watchdog"
/* The testing driver reports this timeout until one is set, like Patroni's. */
#define WATCHDOG_TESTING_INITIAL_TIMEOUT 60
/* Linux drivers take 1..65534 seconds. */
#define WATCHDOG_TIMEOUT_MAX 65534

struct Watchdog {
        WatchdogMode mode;
        WatchdogDriver driver;
        char *device;
        int safety_margin;
        unsigned ttl;
        unsigned loop_wait;

        int fd;                   /* open while active */
        unsigned active_timeout;  /* effective timeout the device reported */
        bool reconfigure_pending; /* ttl or margin changed while active: applied at the next keep-alive */
        unsigned support;         /* WDIOF_* flags of the open device (WDIOC_GETSUPPORT) */
        int failed; /* negative errno of a failed activation: not retried until the options change */
        char identity[64];
};

static const char *const watchdog_mode_table[_WATCHDOG_MODE_MAX] = {
        [WATCHDOG_OFF] = "off",
        [WATCHDOG_AUTOMATIC] = "automatic",
        [WATCHDOG_REQUIRED] = "required",
};

static const char *const watchdog_driver_table[_WATCHDOG_DRIVER_MAX] = {
        [WATCHDOG_DRIVER_DEFAULT] = "default",
        [WATCHDOG_DRIVER_TESTING] = "testing",
};

const char *watchdog_mode_to_string(WatchdogMode m) {
        return m >= 0 && m < _WATCHDOG_MODE_MAX ? watchdog_mode_table[m] : NULL;
}

/* watchdog_mode_from_string - Patroni's spellings: off/disable/disabled/false, automatic/auto,
 * required/require (case-insensitive). Anything else is -EINVAL; the caller decides (Patroni warns and
 * turns the watchdog off). */
WatchdogMode watchdog_mode_from_string(const char *s) {
        static const struct {
                const char *name;
                WatchdogMode mode;
        } names[] = {
                {"off", WATCHDOG_OFF},
                {"disable", WATCHDOG_OFF},
                {"disabled", WATCHDOG_OFF},
                {"false", WATCHDOG_OFF},
                {"automatic", WATCHDOG_AUTOMATIC},
                {"auto", WATCHDOG_AUTOMATIC},
                {"required", WATCHDOG_REQUIRED},
                {"require", WATCHDOG_REQUIRED},
        };

        if (!s)
                return _WATCHDOG_MODE_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i].name) == 0)
                        return names[i].mode;
        return _WATCHDOG_MODE_INVALID;
}

DEFINE_STRING_TABLE_LOOKUP(watchdog_driver, WatchdogDriver);

static int watchdog_apply_options(Watchdog *w, const WatchdogOptions *o) {
        if (o->mode < 0 || o->mode >= _WATCHDOG_MODE_MAX || o->driver < 0 ||
            o->driver >= _WATCHDOG_DRIVER_MAX)
                return -EINVAL;
        if (!streq_ptr(w->device, o->device ?: WATCHDOG_DEFAULT_DEVICE))
                w->failed = 0;
        if (free_and_strdup(&w->device, o->device ?: WATCHDOG_DEFAULT_DEVICE) < 0)
                return -ENOMEM;
        if (w->fd >= 0 && (w->ttl != o->ttl || w->safety_margin != o->safety_margin))
                w->reconfigure_pending = true;
        /* As Patroni, a failed activation is retried (and logged) only once the configuration changed. */
        if (w->mode != o->mode || w->driver != o->driver || w->safety_margin != o->safety_margin ||
            w->ttl != o->ttl || w->loop_wait != o->loop_wait)
                w->failed = 0;
        w->mode = o->mode;
        w->driver = o->driver;
        w->safety_margin = o->safety_margin;
        w->ttl = o->ttl;
        w->loop_wait = o->loop_wait;
        return 0;
}

/* watchdog_new - a closed watchdog with the given options. Non-logging. */
int watchdog_new(const WatchdogOptions *options, Watchdog **ret) {
        _cleanup_(watchdog_freep) Watchdog *w = new0(Watchdog, 1);
        int r;

        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        r = watchdog_apply_options(w, options);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

/* watchdog_free - disables (magic close) an active watchdog, then frees. Accepts NULL. */
Watchdog *watchdog_free(Watchdog *w) {
        if (!w)
                return NULL;
        watchdog_disable(w);
        free(w->device);
        return mfree(w);
}

/* watchdog_reconfigure - takes new ttl/loop_wait/margin/mode. A change of timeout while active is sent
 * to the device at the next keep-alive, as Patroni does; turning the mode off disables at once. */
int watchdog_reconfigure(Watchdog *w, const WatchdogOptions *options) {
        int r = watchdog_apply_options(w, options);
        if (r < 0)
                return r;
        if (w->mode == WATCHDOG_OFF)
                watchdog_disable(w);
        return 0;
}

/* The timeout asked of the device: ttl - safety_margin, or ttl / 2 with a margin of -1. */
unsigned watchdog_wanted_timeout(const Watchdog *w) {
        if (w->safety_margin == -1)
                return w->ttl / 2;
        return w->ttl > (unsigned)MAX(w->safety_margin, 0) ? w->ttl - (unsigned)MAX(w->safety_margin, 0) : 0;
}

/* Seconds between the last keep-alive a healthy loop sends and the reset: timeout - loop_wait. */
int watchdog_timing_slack(const Watchdog *w) {
        return (int)watchdog_wanted_timeout(w) - (int)w->loop_wait;
}

static int write_all(int fd, const char *s) {
        size_t n = strlen(s);
        ssize_t k = write(fd, s, n);

        if (k < 0)
                return -errno;
        return (size_t)k == n ? 0 : -EIO;
}

static int device_open(Watchdog *w) {
        /* O_NONBLOCK: for the testing FIFO, fail (ENXIO) without a reader instead of blocking the loop;
         * real watchdog devices ignore it. */
        int fd = open(w->device, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_warning_errno(errno, "Can't open watchdog device: %m (%s)", w->device);
        w->fd = fd;
        if (w->driver == WATCHDOG_DRIVER_TESTING) {
                snprintf(w->identity, sizeof w->identity, "Testing watchdog");
                w->active_timeout = WATCHDOG_TESTING_INITIAL_TIMEOUT;
                w->support = WDIOF_MAGICCLOSE | WDIOF_SETTIMEOUT; /* as Patroni's test harness reports */
        } else {
                struct watchdog_info info = {};
                /* Without the support flags nothing is assumed: no settable timeout, no magic close. */
                if (ioctl(fd, WDIOC_GETSUPPORT, &info) >= 0) {
                        snprintf(w->identity, sizeof w->identity, "%.32s", (const char *)info.identity);
                        w->support = info.options;
                } else {
                        snprintf(w->identity, sizeof w->identity, "Linux watchdog device");
                        w->support = 0;
                }
        }
        if (!(w->support & WDIOF_MAGICCLOSE))
                log_warning(
                        "Watchdog implementation can't be disabled. Watchdog will trigger after pghad loses "
                        "leader key.");
        return 0;
}

static void device_close(Watchdog *w, bool magic) {
        if (w->fd < 0)
                return;
        if (magic && !(w->support & WDIOF_MAGICCLOSE)) {
                /* It keeps running once closed: one last keep-alive gives the host a full timeout. */
                (void)write_all(w->fd, "1");
                log_warning(
                        "Watchdog implementation can't be disabled. System will reboot after %u seconds "
                        "when "
                        "watchdog times out.",
                        w->active_timeout);
        }
        if (magic && write_all(w->fd, "V") < 0)
                log_warning_errno(errno, "Failed to write the magic close character to %s: %m", w->device);
        w->fd = safe_close(w->fd);
        w->active_timeout = 0;
        w->support = 0;
        w->reconfigure_pending = false;
}

/* Asks the device for `wanted` seconds and returns what it took (the testing driver echoes it). */
static int device_set_timeout(Watchdog *w, unsigned wanted, unsigned *ret_effective) {
        int t = (int)wanted;

        if (wanted < 1 || wanted > WATCHDOG_TIMEOUT_MAX)
                return -ERANGE;
        if (w->driver == WATCHDOG_DRIVER_TESTING) {
                char buf[32];
                snprintf(buf, sizeof buf, "Ctimeout=%u\n", wanted);
                int r = write_all(w->fd, buf);
                if (r < 0)
                        return r;
                *ret_effective = wanted;
                return 0;
        }
        /* A device without WDIOF_SETTIMEOUT keeps its own timeout: read it and let the caller judge. */
        if ((w->support & WDIOF_SETTIMEOUT) && ioctl(w->fd, WDIOC_SETTIMEOUT, &t) < 0)
                return -errno;
        if (ioctl(w->fd, WDIOC_GETTIMEOUT, &t) < 0)
                return -errno;
        *ret_effective = (unsigned)t;
        return 0;
}

/* Sets the wanted timeout and checks the device's answer; logs; closes the device on an unsafe result. */
static int watchdog_set_timeout(Watchdog *w) {
        unsigned wanted = watchdog_wanted_timeout(w), effective = 0;
        int r;

        r = device_set_timeout(w, wanted, &effective);
        if (r < 0) {
                log_error_errno(r, "Failed to set watchdog timeout %u on %s: %m", wanted, w->device);
                device_close(w, true);
                return r;
        }
        if (effective < w->loop_wait) {
                log_error(
                        "loop_wait of %u seconds is too long for watchdog %u second timeout",
                        w->loop_wait,
                        effective);
                log_info("Disabling watchdog due to unsafe timeout.");
                device_close(w, true);
                return -ERANGE;
        }
        if (effective > wanted) {
                if (w->mode == WATCHDOG_REQUIRED) {
                        log_error(
                                "Configuration requires watchdog, but a safe watchdog timeout %u could not "
                                "be "
                                "configured. Watchdog timeout is %u.",
                                wanted,
                                effective);
                        device_close(w, true);
                        return -ERANGE;
                }
                log_warning(
                        "Watchdog timeout %u seconds does not ensure safe termination within %u seconds",
                        effective,
                        wanted);
        }
        w->active_timeout = effective;
        return 0;
}

/* watchdog_activate - opens the device and sets the timeout, unless already active. Returns 0 when the
 * watchdog is armed or the mode is off; a negative errno when it could not be armed. A failure is
 * remembered: later calls return it without trying (and logging) again until watchdog_reconfigure()
 * changes an option, as Patroni does. In automatic mode a failure only means "carry on without"; in
 * required mode the caller must not lead. Logs. */
int watchdog_activate(Watchdog *w) {
        int r;

        if (w->mode == WATCHDOG_OFF)
                return 0;
        if (w->fd >= 0)
                return 0;
        if (w->failed < 0)
                return w->failed;
        if (watchdog_timing_slack(w) < 0) {
                log_warning(
                        "Watchdog not supported because leader TTL %u is less than 2x loop_wait %u",
                        w->ttl,
                        w->loop_wait);
                r = -ERANGE;
                goto fail;
        }
        r = device_open(w);
        if (r < 0)
                goto fail;
        r = watchdog_set_timeout(w);
        if (r < 0)
                goto fail;
        w->failed = 0;
        log_info(
                "%s at %s activated with %u second timeout, timing slack %d seconds",
                w->identity,
                w->device,
                w->active_timeout,
                watchdog_timing_slack(w));
        return 0;

fail:
        w->failed = r;
        if (w->mode == WATCHDOG_REQUIRED)
                log_error("Configuration requires watchdog, but watchdog could not be activated");
        return r;
}

/* watchdog_keepalive - feeds an active watchdog (write "1"), first applying a pending timeout change.
 * A no-op when not active. Logs failures. */
int watchdog_keepalive(Watchdog *w) {
        int r;

        if (w->fd < 0)
                return 0;
        if (w->reconfigure_pending) {
                w->reconfigure_pending = false;
                r = watchdog_set_timeout(w);
                if (r < 0) {
                        w->failed = r; /* closed: a required watchdog no longer protects us */
                        return r;
                }
                log_info(
                        "%s updated with %u second timeout, timing slack %d seconds",
                        w->device,
                        w->active_timeout,
                        watchdog_timing_slack(w));
        }
        r = write_all(w->fd, "1");
        if (r < 0)
                return log_error_errno(r, "Error while sending keepalive to %s: %m", w->device);
        return 0;
}

/* watchdog_disable - magic close when active; a no-op otherwise. */
void watchdog_disable(Watchdog *w) {
        if (!w || w->fd < 0)
                return;
        device_close(w, true);
        log_info("Watchdog %s disabled", w->device);
}

bool watchdog_is_active(const Watchdog *w) {
        return w && w->fd >= 0;
}

/* watchdog_is_healthy - whether a required watchdog could be used: it is armed, or it did not fail to arm
 * since the options last changed and the device exists and is writable and the timing leaves slack.
 * Always true when the mode is not "required" (Patroni's is_healthy). The node advertises
 * watchdog_failed when this is false. */
bool watchdog_is_healthy(const Watchdog *w) {
        if (w->mode != WATCHDOG_REQUIRED)
                return true;
        if (w->fd >= 0)
                return true;
        if (w->failed < 0)
                return false;
        return watchdog_timing_slack(w) >= 0 && access(w->device, W_OK) == 0;
}
