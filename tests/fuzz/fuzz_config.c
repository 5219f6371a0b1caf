/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the YAML configuration loader (build with -DPGHA_FUZZ=ON, clang). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgha/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ConfigDiagnostics d = {};
        Config *c = NULL;
        char *text;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (config_load_string("fuzz", text, &c, &d) >= 0) {
                cJSON *j = config_to_json(c, true);
                cJSON_Delete(j);
        }
        config_free(c);
        config_diagnostics_done(&d);
        free(text);
        return 0;
}
