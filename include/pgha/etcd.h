/* SPDX-License-Identifier: MIT */
/*
 * etcd v3 client over the JSON gateway (POST /v3/...), asynchronous on sd-event. Keys and values are
 * base64 on the wire and plain bytes here; int64 fields arrive as strings and are parsed as numbers.
 * The client fails over to the next endpoint on connection errors and timeouts, refreshes the endpoint
 * list from the cluster's member list (unless use_proxies), and authenticates with username/password
 * when configured (token in the "authorization" header, re-authenticating on an invalid token).
 * The reply parsers are exposed for unit tests and reuse; they never trust the reply's shape.
 */
#pragma once

#include <stdint.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "pgha/macro.h"

typedef struct EtcdClient EtcdClient;
typedef struct EtcdCall EtcdCall;
typedef struct EtcdWatch EtcdWatch;

/* Cap on one gateway reply (a whole cluster prefix range) and on one watch message. */
#define ETCD_REPLY_MAX (8U * 1024U * 1024U)

typedef struct EtcdClientOptions {
        char **endpoints;     /* NULL-terminated: "host:port", "host" (port 2379) or full URLs */
        const char *protocol; /* scheme for entries without one: "http" (default) or "https" */
        const char *username; /* NULL: no authentication */
        const char *password;
        const char *cacert; /* TLS options (https) */
        const char *cert;
        const char *key;
        usec_t request_timeout; /* budget of one operation over all attempts; 0: 10 s */
        bool use_proxies;       /* true: keep the endpoints as given, never read the member list */
        usec_t members_refresh; /* period of member-list refresh; 0: 300 s */
        int64_t priority;       /* sd-event priority of the client's sources (lower runs first) */
} EtcdClientOptions;

/* gRPC status codes that etcd puts into "code" of error replies. */
typedef enum EtcdGrpcCode {
        ETCD_GRPC_OK = 0,
        ETCD_GRPC_INVALID_ARGUMENT = 3,
        ETCD_GRPC_DEADLINE_EXCEEDED = 4,
        ETCD_GRPC_NOT_FOUND = 5,
        ETCD_GRPC_PERMISSION_DENIED = 7,
        ETCD_GRPC_FAILED_PRECONDITION = 9,
        ETCD_GRPC_OUT_OF_RANGE = 11,
        ETCD_GRPC_UNAVAILABLE = 14,
        ETCD_GRPC_UNAUTHENTICATED = 16,
} EtcdGrpcCode;

typedef struct EtcdKv {
        char *key;   /* NUL-terminated */
        char *value; /* NUL-terminated ("" when etcd omitted an empty value) */
        size_t value_size;
        int64_t create_revision;
        int64_t mod_revision;
        int64_t version;
        int64_t lease; /* 0: none */
} EtcdKv;

typedef enum EtcdEventType {
        ETCD_EVENT_PUT,
        ETCD_EVENT_DELETE,
} EtcdEventType;

typedef struct EtcdEvent {
        EtcdEventType type;
        EtcdKv kv;
} EtcdEvent;

/* One parsed watch message. */
typedef struct EtcdWatchMessage {
        int64_t revision; /* header.revision */
        bool created;
        bool canceled;
        int64_t compact_revision; /* > 0: our start revision was compacted */
        EtcdEvent *events;
        size_t n_events;
} EtcdWatchMessage;

/* Completion of a call. error < 0: transport error (-ETIMEDOUT, -ECONNREFUSED...), or an etcd error
 * mapped from its gRPC code (-ENOENT not found, -EACCES auth, -EINVAL, -EAGAIN unavailable, -EPROTO bad
 * reply); message then says what happened. On success reply is the parsed JSON object (borrowed). */
typedef void (*EtcdCallback)(
        EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata);

/* Watch notifications: created (stream established), events, or error < 0 (the watch reconnects by
 * itself, except -ESTALE: compacted, the caller must re-read and create a new watch). */
typedef void (*EtcdWatchCallback)(EtcdWatch *w, int error, const EtcdWatchMessage *m, void *userdata);

int etcd_client_new(sd_event *event, const EtcdClientOptions *o, EtcdClient **ret) _warn_unused_result_;
EtcdClient *etcd_client_free(EtcdClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdClient *, etcd_client_free);
const char *etcd_client_endpoint(const EtcdClient *c);
size_t etcd_client_n_endpoints(const EtcdClient *c);
size_t etcd_client_active(const EtcdClient *c);
void etcd_client_set_request_timeout(EtcdClient *c, usec_t timeout);
usec_t etcd_client_request_timeout(const EtcdClient *c);
int etcd_client_refresh_members(EtcdClient *c);

int etcd_call(
        EtcdClient *c, const char *path, const cJSON *body, EtcdCallback cb, void *userdata, EtcdCall **ret)
        _warn_unused_result_;
void etcd_call_cancel(EtcdCall *call);

int etcd_range(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) _warn_unused_result_;
int etcd_put(
        EtcdClient *c,
        const char *key,
        const char *value,
        int64_t lease,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) _warn_unused_result_;
int etcd_delete(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) _warn_unused_result_;
int etcd_lease_grant(EtcdClient *c, int64_t ttl, EtcdCallback cb, void *userdata, EtcdCall **ret)
        _warn_unused_result_;
int etcd_lease_keepalive(EtcdClient *c, int64_t id, EtcdCallback cb, void *userdata, EtcdCall **ret)
        _warn_unused_result_;
int etcd_lease_revoke(EtcdClient *c, int64_t id, EtcdCallback cb, void *userdata, EtcdCall **ret)
        _warn_unused_result_;

/* Transaction builders (JSON for /v3/kv/txn). Keys and values are plain; they are base64-encoded here. */
cJSON *etcd_txn_new(void);
int etcd_txn_compare(cJSON *txn, const char *key, const char *target, const char *result, const char *value)
        _warn_unused_result_;
int etcd_txn_compare_int(cJSON *txn, const char *key, const char *target, const char *result, int64_t value)
        _warn_unused_result_;
int etcd_txn_put(cJSON *txn, bool success, const char *key, const char *value, int64_t lease)
        _warn_unused_result_;
int etcd_txn_delete(cJSON *txn, bool success, const char *key) _warn_unused_result_;
int etcd_txn_range(cJSON *txn, bool success, const char *key) _warn_unused_result_;
int etcd_txn(EtcdClient *c, const cJSON *txn, EtcdCallback cb, void *userdata, EtcdCall **ret)
        _warn_unused_result_;

/* Reply parsers (pure). */
int etcd_error_parse(long http_status, const char *body, size_t size, char **ret_message);
int etcd_errno_from_grpc(int code);
int etcd_kv_parse(const cJSON *kv, EtcdKv *ret) _warn_unused_result_;
void etcd_kv_done(EtcdKv *kv);
int etcd_range_parse(const cJSON *reply, EtcdKv **ret_kvs, size_t *ret_n, int64_t *ret_revision)
        _warn_unused_result_;
void etcd_kvs_free(EtcdKv *kvs, size_t n);
int etcd_header_revision(const cJSON *reply, int64_t *ret);
bool etcd_txn_succeeded(const cJSON *reply);
int etcd_txn_response_range(const cJSON *reply, size_t index, EtcdKv **ret_kvs, size_t *ret_n)
        _warn_unused_result_;
int etcd_lease_grant_parse(const cJSON *reply, int64_t *ret_id, int64_t *ret_ttl) _warn_unused_result_;
int etcd_keepalive_parse(const cJSON *reply, int64_t *ret_ttl) _warn_unused_result_;
int etcd_watch_message_parse(const cJSON *msg, EtcdWatchMessage *ret, char **ret_error) _warn_unused_result_;
void etcd_watch_message_done(EtcdWatchMessage *m);
char *etcd_prefix_range_end(const char *prefix);

/* Splits a byte stream of concatenated JSON objects (a watch response) into whole messages, across
 * chunk boundaries. A message larger than max fails with -EFBIG. */
typedef struct EtcdStreamSplitter {
        char *buf;
        size_t size;
        size_t allocated;
        size_t max;
        size_t scanned; /* bytes of buf already scanned */
        unsigned depth;
        bool in_string;
        bool escaped;
} EtcdStreamSplitter;

typedef int (*EtcdStreamMessage)(const char *msg, size_t size, void *userdata);
int etcd_stream_feed(
        EtcdStreamSplitter *s, const char *data, size_t size, EtcdStreamMessage cb, void *userdata)
        _warn_unused_result_;
void etcd_stream_done(EtcdStreamSplitter *s);

int etcd_watch_new(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        int64_t start_revision,
        usec_t stall_timeout,
        EtcdWatchCallback cb,
        void *userdata,
        EtcdWatch **ret) _warn_unused_result_;
EtcdWatch *etcd_watch_free(EtcdWatch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdWatch *, etcd_watch_free);
int64_t etcd_watch_revision(const EtcdWatch *w);
