/* SPDX-License-Identifier: MIT */
/*
 * pghad entry point: the command line, the first configuration load, the Manager, the exit status.
 * Everything long-lived (the loop, signals, reloads, shutdown) belongs to the Manager; main() only
 * decides whether to start and turns the outcome into one of the exit statuses below. This is the only
 * place in the daemon that exits.
 *
 *   pghad [--validate-config] [--version] [CONFIG]
 *
 * Exit statuses:
 *   0  clean shutdown after SIGTERM/SIGINT; --validate-config found no error (warnings allowed);
 *      --version, --help
 *   1  bad configuration (errors printed as FILE:LINE:COLUMN: key.path: problem) or bad command line
 *   2  start-up failed: refused to run as root, or the event loop could not be set up
 *   3  runtime failure: the graceful shutdown did not complete (deadline passed or a step failed) or
 *      the event loop failed
 * systemd/pghad.service relies on 1 and 2 to stop restarting a node that cannot start.
 */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "pgha/config.h"
#include "pgha/ha.h"
#include "pgha/log.h"
#include "pgha/manager.h"

enum {
        EXIT_OK = 0,
        EXIT_CONFIG = 1,  /* bad configuration or command line; a fatal HA condition as in Patroni */
        EXIT_STARTUP = 2, /* could not start: root, loop set-up */
        EXIT_RUNTIME = 3, /* shutdown incomplete or loop failure */
};

static bool arg_validate_config = false;
static const char *arg_config_path = NULL; /* NULL: PATRONI_CONFIGURATION / PATRONI_* variables */

static void help(void) {
        printf("Usage: %s [--validate-config] [--version] [CONFIG]\n\n"
               "PostgreSQL high-availability supervisor, a drop-in replacement for Patroni 3.0.2.\n\n"
               "CONFIG is a YAML file or a directory of *.yml and *.yaml files. Without it the\n"
               "configuration comes from PATRONI_CONFIGURATION or the PATRONI_* variables.\n\n"
               "  --validate-config  check the configuration, print every problem, and exit\n"
               "  --version          print the version and exit\n"
               "  -h, --help         print this help and exit\n",
               program_invocation_short_name);
}

/* Returns 1 to go on, 0 to exit successfully (--help, --version), or a negative errno (usage error,
 * already reported on stderr). */
static int parse_argv(int argc, char **argv) {
        enum {
                ARG_VALIDATE_CONFIG = 0x100,
                ARG_VERSION,
        };
        static const struct option options[] = {
                {"validate-config", no_argument, NULL, ARG_VALIDATE_CONFIG},
                {"version", no_argument, NULL, ARG_VERSION},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_VALIDATE_CONFIG:
                        arg_validate_config = true;
                        break;
                case ARG_VERSION:
                        printf("pghad %s\n", PGHA_VERSION);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        /* getopt_long() already named the bad option. */
                        fprintf(stderr,
                                "Try '%s --help' for more information.\n",
                                program_invocation_short_name);
                        return -EINVAL;
                }

        if (argc - optind > 1) {
                fprintf(stderr,
                        "%s: expected at most one configuration file or directory, got %i arguments.\n",
                        program_invocation_short_name,
                        argc - optind);
                return -EINVAL;
        }
        if (optind < argc)
                arg_config_path = argv[optind];
        return 1;
}

/* --validate-config: every problem on stderr, nothing on stdout; exit status from errors only. */
static int run_validate_config(void) {
        _cleanup_(config_diagnostics_done) ConfigDiagnostics diags = {};
        _cleanup_(config_freep) Config *config = NULL;
        int r;

        r = config_load(arg_config_path, &config, &diags);
        config_diagnostics_print(&diags, stderr);
        if (r < 0) {
                if (diags.n == 0)
                        fprintf(stderr,
                                "%s: %s\n",
                                arg_config_path ?: "environment",
                                strerror(ERRNO_VALUE(r)));
                return EXIT_CONFIG;
        }
        return config_diagnostics_has_errors(&diags) ? EXIT_CONFIG : EXIT_OK;
}

int main(int argc, char **argv) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(ha_freep) Ha *ha = NULL;
        Config *config = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_CONFIG : EXIT_OK;

        if (arg_validate_config)
                return run_validate_config();

        log_open();

        /* pghad runs PostgreSQL, which refuses root; and a supervisor holding root would hand it to every
         * callback script. No override on purpose. */
        if (geteuid() == 0) {
                log_error(
                        "pghad must not run as root: it runs PostgreSQL, which refuses to start as root. "
                        "Start it as the operating system user owning the data directory (usually "
                        "'postgres'), e.g. with User=postgres in its systemd unit.");
                return EXIT_STARTUP;
        }

        r = manager_load_config(arg_config_path, &config);
        if (r < 0) {
                log_error(
                        "Not starting: failed to load the configuration from %s.",
                        arg_config_path ?: "the environment");
                return EXIT_CONFIG;
        }

        log_info(
                "Starting pghad %s as member '%s' of cluster '%s'.",
                PGHA_VERSION,
                strna(config->name),
                strna(config->scope));

        r = manager_new(arg_config_path, config, &m);
        if (r < 0)
                return EXIT_STARTUP; /* errors have already been logged */

        /* The HA engine builds the etcd client, PostgreSQL supervision and the REST API on the Manager's
         * loop and registers their reload and shutdown hooks. */
        r = ha_new(m, &ha);
        if (r < 0)
                return EXIT_STARTUP;

        r = manager_run(m);
        return r < 0 ? EXIT_RUNTIME : manager_get_exit_status(m);
}
