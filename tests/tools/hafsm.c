/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-hafsm: prints the HA decision table. `dot` writes Graphviz, `markdown` writes docs/fsm.md,
 * `dump` writes the golden table (tests/fixtures/ha_fsm/table.golden). Regenerate after a rule change:
 *   build/pgha-test-hafsm markdown > docs/fsm.md
 *   build/pgha-test-hafsm dump > tests/fixtures/ha_fsm/table.golden
 */
#include <stdio.h>

#include "pgha/ha_fsm.h"

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s dot|markdown|dump\n", argv[0]);
                return 2;
        }
        if (streq(argv[1], "dot"))
                ha_fsm_print_dot(stdout);
        else if (streq(argv[1], "markdown"))
                ha_fsm_print_markdown(stdout);
        else if (streq(argv[1], "dump"))
                ha_fsm_dump(stdout);
        else {
                fprintf(stderr,
                        "%s: unknown subcommand '%s' (expected dot, markdown or dump)\n",
                        argv[0],
                        argv[1]);
                return 2;
        }
        return fflush(stdout) == 0 ? 0 : 1;
}
