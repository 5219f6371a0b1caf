/* SPDX-License-Identifier: MIT */
/*
 * pghad entry point. Exit statuses:
 *   0  clean shutdown, or --validate-config found no problem
 *   1  bad configuration or command line
 *   2  start-up failed (refused to run as root, could not set up the event loop, ...)
 */
#include <getopt.h>
#include <stdio.h>

#include "pgha/log.h"

int main(int argc, char **argv) {
        static const struct option options[] = {
                {"version", no_argument, NULL, 'V'},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'V':
                        printf("pghad %s\n", PGHA_VERSION);
                        return 0;
                default:
                        return 1;
                }
        log_error("Configuration loading is not built yet.");
        return 2;
}
