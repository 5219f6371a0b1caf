/* SPDX-License-Identifier: MIT */
/* libFuzzer target: arbitrary bytes as an etcd gateway reply, through every reply parser and, for
 * range replies, the Patroni-layout cluster parser. */
#include "pgha/dcs.h"
#include "pgha/etcd.h"
#include "pgha/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *message = NULL, *werr = NULL;
        EtcdKv *kvs = NULL;
        EtcdWatchMessage m = {};
        int64_t rev, id, ttl;
        size_t n = 0;

        if (size > 64 * 1024)
                return 0;
        (void)etcd_error_parse(400, (const char *)data, size, &message);
        if (json_parse((const char *)data, size, 64 * 1024, 64, &j) < 0)
                return 0;
        if (etcd_range_parse(j, &kvs, &n, &rev) >= 0) {
                DcsCluster *c = NULL;
                cJSON *out = NULL;

                if (dcs_cluster_parse("/service/batman/", kvs, n, rev, &c) >= 0) {
                        if (dcs_cluster_to_json(c, &out) >= 0)
                                cJSON_Delete(out);
                        dcs_cluster_free(c);
                }
                etcd_kvs_free(kvs, n);
        }
        (void)etcd_txn_succeeded(j);
        if (etcd_txn_response_range(j, 0, &kvs, &n) >= 0)
                etcd_kvs_free(kvs, n);
        (void)etcd_keepalive_parse(j, &ttl);
        (void)etcd_lease_grant_parse(j, &id, &ttl);
        if (etcd_watch_message_parse(j, &m, &werr) >= 0)
                etcd_watch_message_done(&m);
        return 0;
}
