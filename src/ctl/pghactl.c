/* SPDX-License-Identifier: MIT */
/*
 * pghactl entry point: the operator's command line, interchangeable with patronictl.
 */
#include <stdio.h>

#include "pgha/macro.h"

int main(int argc, char **argv) {
        if (argc >= 2 && (streq(argv[1], "version") || streq(argv[1], "--version"))) {
                printf("pghactl version %s\n", PGHA_VERSION);
                return 0;
        }
        fprintf(stderr, "Usage: pghactl [-c CONFIG] COMMAND ...\n");
        return 1;
}
