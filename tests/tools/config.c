/* SPDX-License-Identifier: MIT */
/*
 * pgha-test-config [--show-secrets] [FILE|DIR]: loads a configuration as pghad would (environment overrides
 * included), prints the diagnostics on stderr and the configuration as JSON (secrets masked) on stdout. Exit
 * status 0 = valid, 1 = errors, 2 = I/O failure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pgha/config.h"

int main(int argc, char **argv) {
        ConfigDiagnostics d = {};
        Config *c = NULL;
        bool mask = true;
        int r;

        if (argc > 1 && streq(argv[1], "--show-secrets")) {
                mask = false;
                argc--;
                argv++;
        }
        r = config_load(argc > 1 ? argv[1] : NULL, &c, &d);
        config_diagnostics_print(&d, stderr);
        config_diagnostics_done(&d);
        if (r < 0)
                return r == -EINVAL ? 1 : 2;
        {
                cJSON *j = config_to_json(c, mask);
                char *s = j ? cJSON_Print(j) : NULL;

                if (s)
                        puts(s);
                free(s);
                cJSON_Delete(j);
        }
        config_free(c);
        return 0;
}
