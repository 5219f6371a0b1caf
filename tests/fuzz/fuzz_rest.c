/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the REST API's parsers of untrusted bytes: the query string (parse_qs, lag via
 * parse_int, tag filters evaluated by the health rules), restart/switchover timestamps, PostgreSQL
 * versions, and JSON bodies run through patch_config and the Python-style serializer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgha/rest.h"

#define FUZZ_INPUT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const paths[] = {"/", "/replica", "/read-only", "/sync", "/health", "/x"};
        NodeSnapshot s = {
                .state = (char *)"running",
                .in_recovery = true,
                .status_ok = true,
                .role = SNAPSHOT_ROLE_REPLICA,
                .cluster_valid_until = USEC_INFINITY,
                .leader_optime = 1000,
                .replayed_location = 10};
        RestQuery q = {.now = 1};
        char *text, *err = NULL, *out = NULL;
        int64_t v;
        usec_t t;
        unsigned ver;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        text = strndup((const char *)data, size);
        if (!text)
                return 0;

        if (rest_query_parse(text, &q) >= 0)
                for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
                        (void)rest_health_status(&s, rest_health_check_from_path(paths[i]), &q);
        rest_query_done(&q);
        (void)rest_parse_int(text, "B", &v);
        (void)rest_parse_int(text, "s", &v);
        (void)rest_parse_timestamp(text, &t);
        (void)rest_parse_postgres_version(text, &ver, &err);
        free(err);

        cJSON *j = cJSON_ParseWithLength((const char *)data, size);
        if (j) {
                cJSON *config = cJSON_CreateObject();
                if (cJSON_IsObject(j) && config)
                        (void)rest_config_patch(config, j);
                if (rest_json_dumps(j, &out, NULL) >= 0)
                        free(out);
                cJSON_Delete(config);
                cJSON_Delete(j);
        }
        free(text);
        return 0;
}
