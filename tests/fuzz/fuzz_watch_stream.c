/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the watch stream splitter, fed the input in chunks whose sizes come from the
 * input's first byte. */
#include "pgha/etcd.h"
#include "pgha/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_message(const char *msg, size_t size, void *userdata) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        EtcdWatchMessage m = {};

        if (json_parse(msg, size, 64 * 1024, 64, &j) >= 0 && etcd_watch_message_parse(j, &m, NULL) >= 0)
                etcd_watch_message_done(&m);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        EtcdStreamSplitter s = {.max = 16 * 1024};
        size_t chunk;

        if (size < 1 || size > 64 * 1024)
                return 0;
        chunk = (size_t)data[0] % 64 + 1;
        data++;
        size--;
        for (size_t off = 0; off < size; off += chunk)
                if (etcd_stream_feed(
                            &s, (const char *)data + off, MIN(chunk, size - off), on_message, NULL) < 0)
                        break;
        etcd_stream_done(&s);
        return 0;
}
