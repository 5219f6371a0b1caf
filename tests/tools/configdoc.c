/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-configdoc: prints the configuration key reference from the key table. `markdown` writes
 * docs/config-keys.md, `man` the pgha.yml(5) page. Regenerate after a change to config_table.c:
 *   build/pgha-test-configdoc markdown > docs/config-keys.md
 *   build/pgha-test-configdoc man > docs/man/pgha.yml.5
 */
#include <stdio.h>

#include "pgha/config.h"

int main(int argc, char **argv) {
        if (argc == 2 && streq(argv[1], "markdown"))
                config_keys_print_markdown(stdout);
        else if (argc == 2 && streq(argv[1], "man"))
                config_keys_print_man(stdout);
        else {
                fprintf(stderr, "usage: %s markdown|man\n", argv[0]);
                return 2;
        }
        return fflush(stdout) == 0 ? 0 : 1;
}
