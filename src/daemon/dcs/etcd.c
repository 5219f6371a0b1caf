/* SPDX-License-Identifier: MIT */
/*
 * etcd v3 JSON-gateway client. Every call is a POST of a JSON body to "<endpoint>/v3/<path>"; its
 * completion callback runs exactly once (unless cancelled) with the parsed reply or an error. A call
 * that fails at the connection level or times out moves the client to the next endpoint and is retried
 * there while its time budget lasts. Watches are long-lived streamed POSTs whose messages are split
 * incrementally and delivered from a deferred event source, never from inside curl.
 *
 * Invariant: no callback of this module runs inside a libcurl callback, and none runs after its call or
 * watch was cancelled/freed. Logging: only debug lines; callers log failures with the message given.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pgha/etcd.h"
#include "pgha/http_client.h"
#include "pgha/json.h"
#include "pgha/log.h"

#define ETCD_DEFAULT_TIMEOUT     (10 * USEC_PER_SEC)
#define ETCD_DEFAULT_MEMBERS     (300 * USEC_PER_SEC)
#define ETCD_MIN_ATTEMPT_TIMEOUT (100 * USEC_PER_MSEC) /* never give one attempt less than this */
#define ETCD_MEMBERS_MIN_GAP     (5 * USEC_PER_SEC)    /* failure-driven member-list refreshes */
#define ETCD_WATCH_RETRY         (500 * USEC_PER_MSEC) /* pause before re-creating a dropped watch */
#define ETCD_WATCH_QUEUE_MAX     4096U /* undelivered watch messages before we drop the stream */
#define ETCD_MAX_ENDPOINTS       64U

struct EtcdCall {
        EtcdClient *client;
        char *path;
        char *body;
        EtcdCallback cb;
        void *userdata;
        HttpRequest *req;
        char *endpoint; /* endpoint of the attempt in flight */
        unsigned attempt;
        unsigned max_attempts;
        usec_t deadline; /* CLOCK_MONOTONIC end of the whole budget */
        bool no_auth;    /* the authenticate call itself */
        bool auth_retried;
        bool waiting_auth; /* parked until a token arrives */
        bool auth_batch;   /* parked before the authentication reply being handled */
        EtcdCall *prev, *next;
};

struct EtcdClient {
        sd_event *event;
        HttpClient *http;
        char **endpoints; /* base URLs, e.g. "http://127.0.0.1:2379" */
        size_t n_endpoints;
        size_t current;
        char *username, *password, *cacert, *cert, *key;
        usec_t request_timeout;
        usec_t members_refresh;
        bool use_proxies;
        int64_t priority;
        char *token;        /* auth token, NULL before authentication */
        bool auth_disabled; /* server said authentication is not enabled */
        EtcdCall *auth_call;
        EtcdCall *members_call;
        usec_t members_last;
        sd_event_source *members_timer; /* "etcd-members": periodic member-list refresh */
        EtcdCall *calls;
        size_t n_calls;
};

struct EtcdWatch {
        EtcdClient *client;
        char *key, *range_end;
        int64_t next_revision; /* start revision of the next (re)connect; 0: from now */
        usec_t stall_timeout;
        EtcdWatchCallback cb;
        void *userdata;
        HttpRequest *req;
        char *endpoint;
        EtcdStreamSplitter splitter;
        char **queue; /* complete messages received, not yet delivered */
        size_t n_queue;
        bool overflow;
        usec_t last_data;
        EtcdCall *probe;
        sd_event_source *dispatch; /* "etcd-watch-dispatch": delivers queued messages outside curl */
        sd_event_source *retry;    /* "etcd-watch-retry": reconnect after a drop */
        sd_event_source *stall;    /* "etcd-watch-stall": probes a silent stream */
        bool dead;                 /* compacted or cancelled by the server: not reconnecting */
        bool dispatching;
        bool free_requested;
};

static usec_t now_usec(sd_event *e) {
        usec_t t = 0;

        (void)sd_event_now(e, CLOCK_MONOTONIC, &t);
        return t;
}

/* ==== Reply parsers ==== */

/* etcd_errno_from_grpc - negative errno for a gRPC status code in an etcd error reply. */
int etcd_errno_from_grpc(int code) {
        switch (code) {
        case ETCD_GRPC_INVALID_ARGUMENT:
                return -EINVAL;
        case ETCD_GRPC_DEADLINE_EXCEEDED:
                return -ETIMEDOUT;
        case ETCD_GRPC_NOT_FOUND:
                return -ENOENT;
        case ETCD_GRPC_PERMISSION_DENIED:
                return -EPERM;
        case ETCD_GRPC_FAILED_PRECONDITION:
                return -EOPNOTSUPP;
        case ETCD_GRPC_OUT_OF_RANGE:
                return -ERANGE;
        case ETCD_GRPC_UNAVAILABLE:
                return -EAGAIN;
        case ETCD_GRPC_UNAUTHENTICATED:
                return -EACCES;
        default:
                return -EIO;
        }
}

/* etcd_error_parse - turns a non-2xx gateway reply into a negative errno and (optionally) a message
 * "<etcd message> (code N, HTTP S)". Accepts both the unary form {"error","message","code"} and the
 * streaming form {"error":{"grpc_code","http_code","message"}}; anything else maps from the HTTP status. */
int etcd_error_parse(long http_status, const char *body, size_t size, char **ret_message) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const char *message = NULL;
        const cJSON *err;
        int64_t code = -1;
        int r;

        if (body && json_parse(body, size, ETCD_REPLY_MAX, JSON_MAX_DEPTH_DEFAULT, &j) >= 0) {
                if (json_get_object(j, "error", &err) >= 0) {
                        (void)json_get_int64(err, "grpc_code", &code);
                        (void)json_get_string(err, "message", &message);
                } else {
                        (void)json_get_int64(j, "code", &code);
                        if (json_get_string(j, "message", &message) < 0)
                                (void)json_get_string(j, "error", &message);
                }
        }
        if (code >= 0 && code <= INT32_MAX)
                r = etcd_errno_from_grpc((int)code);
        else if (http_status == 401)
                r = -EACCES;
        else if (http_status == 404)
                r = -ENOENT;
        else if (http_status == 503)
                r = -EAGAIN;
        else
                r = -EIO;
        if (ret_message) {
                char *m = NULL;

                if (message)
                        (void)asprintf(&m, "%s (code %" PRIi64 ", HTTP %ld)", message, code, http_status);
                else
                        (void)asprintf(&m, "HTTP %ld without an etcd error message", http_status);
                *ret_message = m;
        }
        return r;
}

static int b64_field(const cJSON *obj, const char *field, bool required, char **ret, size_t *ret_size) {
        const char *s;
        int r;

        r = json_get_string(obj, field, &s);
        if (r == -ENOENT && !required) {
                /* proto3 omits empty bytes fields */
                *ret = strdup("");
                if (!*ret)
                        return -ENOMEM;
                if (ret_size)
                        *ret_size = 0;
                return 0;
        }
        if (r < 0)
                return r;
        r = base64_decode(s, strlen(s), ret, ret_size);
        return r;
}

static int opt_int64(const cJSON *obj, const char *field, int64_t *ret) {
        int r = json_get_int64(obj, field, ret);

        if (r == -ENOENT) {
                *ret = 0; /* proto3 omits zero */
                return 0;
        }
        return r;
}

/* etcd_kv_parse - decodes one mvccpb.KeyValue. Missing value/revisions/lease are 0/empty (proto3);
 * a missing key, bad base64 or a non-integer revision is -EBADMSG. */
int etcd_kv_parse(const cJSON *kv, EtcdKv *ret) {
        EtcdKv k = {};
        int r;

        if (!cJSON_IsObject(kv))
                return -EBADMSG;
        r = b64_field(kv, "key", true, &k.key, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        r = b64_field(kv, "value", false, &k.value, &k.value_size);
        if (r >= 0)
                r = opt_int64(kv, "create_revision", &k.create_revision);
        if (r >= 0)
                r = opt_int64(kv, "mod_revision", &k.mod_revision);
        if (r >= 0)
                r = opt_int64(kv, "version", &k.version);
        if (r >= 0)
                r = opt_int64(kv, "lease", &k.lease);
        if (r < 0) {
                etcd_kv_done(&k);
                return r == -ENOMEM ? r : -EBADMSG;
        }
        *ret = k;
        return 0;
}

/* etcd_kv_done - frees the strings of kv (not kv itself). */
void etcd_kv_done(EtcdKv *kv) {
        if (!kv)
                return;
        kv->key = mfree(kv->key);
        kv->value = mfree(kv->value);
}

/* etcd_kvs_free - frees an array of n kvs. */
void etcd_kvs_free(EtcdKv *kvs, size_t n) {
        for (size_t i = 0; kvs && i < n; i++)
                etcd_kv_done(&kvs[i]);
        free(kvs);
}

/* etcd_header_revision - header.revision of a reply; -EBADMSG when absent or not an integer. */
int etcd_header_revision(const cJSON *reply, int64_t *ret) {
        const cJSON *h;
        int r;

        r = json_get_object(reply, "header", &h);
        if (r < 0)
                return -EBADMSG;
        r = json_get_int64(h, "revision", ret);
        return r < 0 ? -EBADMSG : 0;
}

static int kvs_parse(const cJSON *container, EtcdKv **ret_kvs, size_t *ret_n) {
        const cJSON *arr = NULL, *i;
        EtcdKv *kvs = NULL;
        size_t n = 0;
        int r;

        r = json_get_array(container, "kvs", &arr);
        if (r == -EBADMSG)
                return r;
        if (arr) {
                kvs = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(EtcdKv));
                if (!kvs)
                        return -ENOMEM;
                cJSON_ArrayForEach (i, arr) {
                        r = etcd_kv_parse(i, &kvs[n]);
                        if (r < 0) {
                                etcd_kvs_free(kvs, n);
                                return r;
                        }
                        n++;
                }
        }
        *ret_kvs = kvs;
        *ret_n = n;
        return 0;
}

/* etcd_range_parse - the kvs and header revision of a /v3/kv/range reply. An absent "kvs" is an empty
 * result. Owned by the caller: etcd_kvs_free(). */
int etcd_range_parse(const cJSON *reply, EtcdKv **ret_kvs, size_t *ret_n, int64_t *ret_revision) {
        int64_t rev;
        int r;

        if (!cJSON_IsObject(reply))
                return -EBADMSG;
        r = etcd_header_revision(reply, &rev);
        if (r < 0)
                return r;
        r = kvs_parse(reply, ret_kvs, ret_n);
        if (r < 0)
                return r;
        if (ret_revision)
                *ret_revision = rev;
        return 0;
}

/* etcd_txn_succeeded - whether a /v3/kv/txn reply says its compares held. The gateway omits
 * "succeeded" when false, so anything but an explicit true is false. */
bool etcd_txn_succeeded(const cJSON *reply) {
        return cJSON_IsTrue(json_get(reply, "succeeded"));
}

/* etcd_txn_response_range - the kvs of the index-th response of a txn, which must be a
 * response_range. -ENOENT when there is no such response, -EBADMSG when it is not a range. */
int etcd_txn_response_range(const cJSON *reply, size_t index, EtcdKv **ret_kvs, size_t *ret_n) {
        const cJSON *arr, *item, *range;
        int r;

        r = json_get_array(reply, "responses", &arr);
        if (r < 0)
                return r;
        item = cJSON_GetArrayItem(arr, (int)index);
        if (!item)
                return -ENOENT;
        r = json_get_object(item, "response_range", &range);
        if (r < 0)
                return -EBADMSG;
        return kvs_parse(range, ret_kvs, ret_n);
}

/* etcd_lease_grant_parse - ID and TTL of a /v3/lease/grant reply; -EBADMSG without a positive ID. */
int etcd_lease_grant_parse(const cJSON *reply, int64_t *ret_id, int64_t *ret_ttl) {
        int64_t id = 0, ttl = 0;
        const char *err;

        if (json_get_string(reply, "error", &err) >= 0 && !isempty(err))
                return -EIO;
        if (json_get_int64(reply, "ID", &id) < 0 || id <= 0)
                return -EBADMSG;
        if (opt_int64(reply, "TTL", &ttl) < 0)
                return -EBADMSG;
        *ret_id = id;
        if (ret_ttl)
                *ret_ttl = ttl;
        return 0;
}

/* etcd_keepalive_parse - remaining TTL from a /v3/lease/keepalive reply ({"result":{...}}). A reply
 * without TTL (or TTL 0) means the lease no longer exists: -ENOENT. */
int etcd_keepalive_parse(const cJSON *reply, int64_t *ret_ttl) {
        const cJSON *res;
        int64_t ttl = 0;

        if (json_get_object(reply, "result", &res) < 0)
                return -EBADMSG;
        if (opt_int64(res, "TTL", &ttl) < 0)
                return -EBADMSG;
        if (ttl <= 0)
                return -ENOENT;
        *ret_ttl = ttl;
        return 0;
}

/* etcd_watch_message_done - frees the events of m. */
void etcd_watch_message_done(EtcdWatchMessage *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_events; i++)
                etcd_kv_done(&m->events[i].kv);
        m->events = mfree(m->events);
        m->n_events = 0;
}

/* etcd_watch_message_parse - one message of a /v3/watch stream. A stream error ({"error":{...}})
 * returns its errno and message in *ret_error. PUT events carry no "type" (proto3 default). */
int etcd_watch_message_parse(const cJSON *msg, EtcdWatchMessage *ret, char **ret_error) {
        EtcdWatchMessage m = {};
        const cJSON *res, *events = NULL, *ev;
        int r;

        if (!cJSON_IsObject(msg))
                return -EBADMSG;
        if (json_get(msg, "error")) {
                _cleanup_free_ char *text = cJSON_PrintUnformatted(msg);

                return etcd_error_parse(0, text, text ? strlen(text) : 0, ret_error);
        }
        r = json_get_object(msg, "result", &res);
        if (r < 0)
                return -EBADMSG;
        if (etcd_header_revision(res, &m.revision) < 0)
                return -EBADMSG;
        m.created = cJSON_IsTrue(json_get(res, "created"));
        m.canceled = cJSON_IsTrue(json_get(res, "canceled"));
        if (opt_int64(res, "compact_revision", &m.compact_revision) < 0)
                return -EBADMSG;
        r = json_get_array(res, "events", &events);
        if (r == -EBADMSG)
                return r;
        if (events) {
                m.events = calloc((size_t)cJSON_GetArraySize(events) + 1, sizeof(EtcdEvent));
                if (!m.events)
                        return -ENOMEM;
                cJSON_ArrayForEach (ev, events) {
                        const cJSON *kv;
                        const char *type = NULL;

                        r = json_get_string(ev, "type", &type);
                        if (r == -EBADMSG || (type && !streq(type, "PUT") && !streq(type, "DELETE")) ||
                            json_get_object(ev, "kv", &kv) < 0) {
                                etcd_watch_message_done(&m);
                                return -EBADMSG;
                        }
                        r = etcd_kv_parse(kv, &m.events[m.n_events].kv);
                        if (r < 0) {
                                etcd_watch_message_done(&m);
                                return r;
                        }
                        m.events[m.n_events++].type =
                                type && streq(type, "DELETE") ? ETCD_EVENT_DELETE : ETCD_EVENT_PUT;
                }
        }
        *ret = m;
        return 0;
}

/* etcd_prefix_range_end - range_end covering every key that starts with prefix: the prefix with its
 * last byte below 0xff incremented (as Patroni computes it). NULL on OOM or an all-0xff prefix. */
char *etcd_prefix_range_end(const char *prefix) {
        char *e = strdup(prefix);
        size_t n;

        if (!e)
                return NULL;
        for (n = strlen(e); n > 0; n--)
                if ((uint8_t)e[n - 1] < 0xff) {
                        e[n - 1]++;
                        e[n] = 0;
                        return e;
                }
        free(e);
        return NULL;
}

/* ==== Stream splitter ==== */

/* etcd_stream_feed - appends data and calls cb for every complete top-level JSON object. Whitespace
 * between objects is skipped; any other byte there is -EBADMSG; a message over s->max is -EFBIG. A
 * negative return of cb stops and is returned. */
int etcd_stream_feed(
        EtcdStreamSplitter *s, const char *data, size_t size, EtcdStreamMessage cb, void *userdata) {
        size_t start = 0;
        int r;

        if (size > 0) {
                size_t max = s->max ?: ETCD_REPLY_MAX;

                if (s->size + size > max)
                        return -EFBIG;
                if (s->size + size + 1 > s->allocated) {
                        size_t want = MAX(s->allocated * 2, s->size + size + 1);
                        char *p = realloc(s->buf, want);

                        if (!p)
                                return -ENOMEM;
                        s->buf = p;
                        s->allocated = want;
                }
                memcpy(s->buf + s->size, data, size);
                s->size += size;
        }

        for (size_t i = s->scanned; i < s->size; i++) {
                char c = s->buf[i];

                if (s->depth == 0) {
                        if (strchr(" \t\r\n", c) && c != 0) {
                                if (i == start)
                                        start = i + 1;
                                continue;
                        }
                        if (c != '{')
                                return -EBADMSG;
                        start = i;
                        s->depth = 1;
                        continue;
                }
                if (s->in_string) {
                        if (s->escaped)
                                s->escaped = false;
                        else if (c == '\\')
                                s->escaped = true;
                        else if (c == '"')
                                s->in_string = false;
                        continue;
                }
                if (c == '"')
                        s->in_string = true;
                else if (c == '{' || c == '[') {
                        if (++s->depth > JSON_MAX_DEPTH_DEFAULT)
                                return -ELOOP;
                } else if (c == '}' || c == ']') {
                        if (--s->depth == 0) {
                                r = cb(s->buf + start, i + 1 - start, userdata);
                                if (r < 0)
                                        return r;
                                start = i + 1;
                        }
                }
        }
        /* Keep only the unfinished message. */
        if (s->depth == 0)
                start = s->size;
        memmove(s->buf, s->buf + start, s->size - start);
        s->size -= start;
        s->scanned = s->size;
        return 0;
}

/* etcd_stream_done - drops buffered bytes and resets the splitter for a new stream. */
void etcd_stream_done(EtcdStreamSplitter *s) {
        s->buf = mfree(s->buf);
        s->size = s->allocated = s->scanned = 0;
        s->depth = 0;
        s->in_string = s->escaped = false;
}

/* ==== Client and calls ==== */

static char *endpoint_to_url(const char *e, const char *protocol) {
        char *u = NULL;
        size_t n;

        if (strstr(e, "://"))
                u = strdup(e);
        else if (strchr(e, ':') || e[0] == '[')
                (void)asprintf(&u, "%s://%s", protocol, e);
        else
                (void)asprintf(&u, "%s://%s:2379", protocol, e);
        if (!u)
                return NULL;
        n = strlen(u);
        while (n > 0 && u[n - 1] == '/')
                u[--n] = 0;
        return u;
}

/* Moves "user:password@" out of a URL (Patroni accepts credentials in etcd3.url): the URL loses them,
 * *ret_user and *ret_password get them unless already set. */
static int endpoint_take_userinfo(char *url, char **ret_user, char **ret_password) {
        char *authority = strstr(url, "://"), *at, *end, *colon;

        if (!authority)
                return 0;
        authority += 3;
        end = authority + strcspn(authority, "/?#");
        at = memchr(authority, '@', (size_t)(end - authority));
        if (!at)
                return 0;
        colon = memchr(authority, ':', (size_t)(at - authority));
        if (!*ret_user) {
                *ret_user = strndup(authority, (size_t)((colon ?: at) - authority));
                if (!*ret_user)
                        return -ENOMEM;
                if (colon && !*ret_password) {
                        *ret_password = strndup(colon + 1, (size_t)(at - colon - 1));
                        if (!*ret_password)
                                return -ENOMEM;
                }
        }
        memmove(authority, at + 1, strlen(at + 1) + 1);
        return 1;
}

static void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static void etcd_call_unlink(EtcdCall *call) {
        EtcdClient *c = call->client;

        if (!c)
                return;
        if (call->prev)
                call->prev->next = call->next;
        else if (c->calls == call)
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->prev = call->next = NULL;
        c->n_calls--;
        if (c->auth_call == call)
                c->auth_call = NULL;
        if (c->members_call == call)
                c->members_call = NULL;
        call->client = NULL;
}

static void etcd_call_free(EtcdCall *call) {
        if (!call)
                return;
        http_request_cancel(call->req);
        etcd_call_unlink(call);
        free(call->path);
        free(call->body);
        free(call->endpoint);
        free(call);
}

/* etcd_call_cancel - stops call; its callback will not run. Do not use a call handle after its
 * callback has started. */
void etcd_call_cancel(EtcdCall *call) {
        etcd_call_free(call);
}

static void etcd_call_finish(EtcdCall *call, int error, const char *message, const cJSON *reply) {
        EtcdClient *c = call->client;
        EtcdCallback cb = call->cb;
        void *userdata = call->userdata;

        etcd_call_free(call);
        if (cb)
                cb(c, error, message, reply, userdata);
}

static void etcd_client_endpoint_failed(EtcdClient *c, const char *endpoint);
static int etcd_call_send(EtcdCall *call);

static void
on_call_http_done(HttpRequest *req, int error, long status, const char *body, size_t size, void *userdata) {
        EtcdCall *call = userdata;
        EtcdClient *c = call->client;
        _cleanup_free_ char *message = NULL;
        _cleanup_(cJSON_Deletep) cJSON *reply = NULL;
        int r;

        call->req = NULL;

        if (error < 0 && error != -EFBIG) {
                /* With curl's own words: which file, which certificate check, which timeout. */
                const char *why = http_request_error(req);

                if (isempty(why))
                        (void)asprintf(&message, "%s: %s", call->endpoint, strerror(-error));
                else
                        (void)asprintf(&message, "%s: %s: %s", call->endpoint, strerror(-error), why);
                etcd_client_endpoint_failed(c, call->endpoint);
                if (++call->attempt < call->max_attempts && now_usec(c->event) < call->deadline &&
                    etcd_call_send(call) >= 0)
                        return;
                etcd_call_finish(call, error, message, NULL);
                return;
        }
        if (error == -EFBIG) {
                (void)asprintf(&message, "%s: reply larger than %u bytes", call->endpoint, ETCD_REPLY_MAX);
                etcd_call_finish(call, error, message, NULL);
                return;
        }
        if (status >= 200 && status < 300) {
                r = json_parse(body, size, ETCD_REPLY_MAX, JSON_MAX_DEPTH_DEFAULT, &reply);
                if (r < 0 || !cJSON_IsObject(reply)) {
                        (void)asprintf(
                                &message,
                                "%s: malformed reply to %s: %s",
                                call->endpoint,
                                call->path,
                                r < 0 ? strerror(-r) : "not a JSON object");
                        etcd_call_finish(call, -EPROTO, message, NULL);
                        return;
                }
                etcd_call_finish(call, 0, NULL, reply);
                return;
        }

        r = etcd_error_parse(status, body, size, &message);
        if (c->username && !call->no_auth && !call->auth_retried && message &&
            (r == -EACCES || strstr(message, "user name is empty") || strstr(message, "permission denied") ||
             strstr(message, "invalid auth token"))) {
                /* The token expired or etcd restarted: authenticate again and repeat once. */
                call->auth_retried = true;
                c->token = mfree(c->token);
                if (etcd_call_send(call) >= 0)
                        return;
        }
        if (r == -EAGAIN) {
                etcd_client_endpoint_failed(c, call->endpoint);
                if (++call->attempt < call->max_attempts && now_usec(c->event) < call->deadline &&
                    etcd_call_send(call) >= 0)
                        return;
        }
        etcd_call_finish(call, r, message, NULL);
}

static int etcd_client_authenticate(EtcdClient *c);

static int etcd_call_send(EtcdCall *call) {
        EtcdClient *c = call->client;
        _cleanup_free_ char *url = NULL, *auth = NULL;
        const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
        usec_t now, left, per;
        unsigned attempts_left;
        int r;

        if (c->n_endpoints == 0)
                return -ENXIO;
        if (c->username && !c->token && !c->auth_disabled && !call->no_auth) {
                call->waiting_auth = true;
                return etcd_client_authenticate(c);
        }
        call->waiting_auth = false;

        free(call->endpoint);
        call->endpoint = strdup(c->endpoints[c->current % c->n_endpoints]);
        if (!call->endpoint || asprintf(&url, "%s%s", call->endpoint, call->path) < 0)
                return -ENOMEM;
        if (c->token && !call->no_auth) {
                if (asprintf(&auth, "authorization: %s", c->token) < 0)
                        return -ENOMEM;
                headers[1] = auth;
        }

        /* Split what is left of the budget over the attempts still allowed. */
        now = now_usec(c->event);
        left = call->deadline > now ? call->deadline - now : 0;
        attempts_left = call->max_attempts > call->attempt ? call->max_attempts - call->attempt : 1;
        per = MAX(left / attempts_left, ETCD_MIN_ATTEMPT_TIMEOUT);

        r = http_client_start(
                c->http,
                &(HttpRequestOptions){
                        .url = url,
                        .body = call->body,
                        .body_size = strlen(call->body),
                        .headers = headers,
                        .timeout = per,
                        .connect_timeout = MAX(per / 2, ETCD_MIN_ATTEMPT_TIMEOUT),
                        .max_body = ETCD_REPLY_MAX,
                        .cacert = c->cacert,
                        .cert = c->cert,
                        .key = c->key,
                        .on_done = on_call_http_done,
                        .userdata = call,
                },
                &call->req);
        return r;
}

static int etcd_call_new(
        EtcdClient *c,
        const char *path,
        const cJSON *body,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) {
        EtcdCall *call;

        call = calloc(1, sizeof(EtcdCall));
        if (!call)
                return -ENOMEM;
        call->client = c;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->n_calls++;
        call->cb = cb;
        call->userdata = userdata;
        call->path = strdup(path);
        call->body = body ? cJSON_PrintUnformatted(body) : strdup("{}");
        if (!call->path || !call->body) {
                etcd_call_free(call);
                return -ENOMEM;
        }
        /* Patroni: one endpoint gets several attempts, several endpoints one each. */
        call->max_attempts = (unsigned)MAX(c->n_endpoints, (size_t)2);
        call->deadline = now_usec(c->event) + c->request_timeout;
        *ret = call;
        return 0;
}

/* etcd_call - POSTs body (borrowed, serialised now) to "/v3/<path>" (path starts with "/v3/"); cb runs
 * once with the reply unless the call is cancelled. *ret (optional) is valid until then. Must not be
 * used from inside a libcurl callback (this module never calls out from one). Non-logging. */
int etcd_call(
        EtcdClient *c,
        const char *path,
        const cJSON *body,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) {
        EtcdCall *call;
        int r;

        if (!c || !path || !cb)
                return -EINVAL;
        r = etcd_call_new(c, path, body, cb, userdata, &call);
        if (r < 0)
                return r;
        r = etcd_call_send(call);
        if (r < 0) {
                etcd_call_free(call);
                return r;
        }
        if (ret)
                *ret = call;
        return 0;
}

static void
on_authenticated(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        const char *token;

        if (error == -EOPNOTSUPP && message && strstr(message, "authentication is not enabled")) {
                c->auth_disabled = true;
                error = 0;
        } else if (error >= 0) {
                if (json_get_string(reply, "token", &token) < 0 || isempty(token)) {
                        error = -EPROTO;
                        message = "authenticate reply carries no token";
                } else if (free_and_strdup(&c->token, token) < 0)
                        error = -ENOMEM;
        }
        if (error < 0)
                log_debug("etcd authentication failed: %s", strna(message));

        /* Resume (or fail) every call parked for a token. Callbacks may park new calls (for a new
         * authentication attempt): only those parked before this reply are handled here. */
        for (EtcdCall *call = c->calls; call; call = call->next)
                call->auth_batch = call->waiting_auth;
        for (bool again = true; again;) {
                again = false;
                for (EtcdCall *call = c->calls; call; call = call->next) {
                        if (!call->auth_batch)
                                continue;
                        call->auth_batch = call->waiting_auth = false;
                        if (error < 0 || etcd_call_send(call) < 0) {
                                _cleanup_free_ char *m = NULL;

                                (void)asprintf(&m, "etcd authentication failed: %s", strna(message));
                                etcd_call_finish(call, error < 0 ? error : -EIO, m, NULL);
                                again = true; /* the list changed under us */
                                break;
                        }
                }
        }
}

static int etcd_client_authenticate(EtcdClient *c) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();
        EtcdCall *call;
        int r;

        if (c->auth_call)
                return 0;
        if (!body || json_add_string(body, "name", c->username) < 0 ||
            json_add_string(body, "password", strempty(c->password)) < 0)
                return -ENOMEM;
        r = etcd_call_new(c, "/v3/auth/authenticate", body, on_authenticated, NULL, &call);
        if (r < 0)
                return r;
        call->no_auth = true;
        c->auth_call = call;
        r = etcd_call_send(call);
        if (r < 0) {
                etcd_call_free(call);
                return r;
        }
        return 0;
}

static void on_members(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        const cJSON *members, *m, *urls, *u;
        char **list = NULL;
        size_t n = 0, current = 0;

        if (error < 0) {
                log_debug("etcd member list refresh failed: %s", strna(message));
                return;
        }
        if (json_get_array(reply, "members", &members) < 0)
                return;
        list = calloc(MAX((size_t)ETCD_MAX_ENDPOINTS, (size_t)1), sizeof(char *));
        if (!list)
                return;
        cJSON_ArrayForEach (m, members) {
                if (json_get_array(m, "clientURLs", &urls) < 0)
                        continue;
                cJSON_ArrayForEach (u, urls) {
                        if (!cJSON_IsString(u) || isempty(u->valuestring) || n >= ETCD_MAX_ENDPOINTS)
                                continue;
                        list[n] = endpoint_to_url(u->valuestring, "http");
                        if (!list[n])
                                break;
                        if (c->n_endpoints > 0 && streq(list[n], c->endpoints[c->current]))
                                current = n;
                        n++;
                }
        }
        if (n == 0) {
                strv_free_n(list, n);
                return;
        }
        strv_free_n(c->endpoints, c->n_endpoints);
        c->endpoints = list;
        c->n_endpoints = n;
        c->current = current;
        log_debug("etcd endpoints refreshed from the member list: %zu endpoint(s)", n);
}

/* etcd_client_refresh_members - starts reading /v3/cluster/member/list and replaces the endpoints with
 * the members' client URLs (no-op with use_proxies or while a refresh runs). Non-logging. */
int etcd_client_refresh_members(EtcdClient *c) {
        EtcdCall *call;
        int r;

        if (c->use_proxies || c->members_call)
                return 0;
        c->members_last = now_usec(c->event);
        r = etcd_call(c, "/v3/cluster/member/list", NULL, on_members, NULL, &call);
        if (r < 0)
                return r;
        c->members_call = call;
        return 0;
}

static void etcd_client_endpoint_failed(EtcdClient *c, const char *endpoint) {
        if (c->n_endpoints == 0)
                return;
        if (endpoint && streq(c->endpoints[c->current % c->n_endpoints], endpoint)) {
                c->current = (c->current + 1) % c->n_endpoints;
                log_debug("etcd endpoint %s failed, switching to %s", endpoint, c->endpoints[c->current]);
        }
        if (!c->use_proxies && now_usec(c->event) >= c->members_last + ETCD_MEMBERS_MIN_GAP)
                (void)etcd_client_refresh_members(c);
}

static int on_members_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        EtcdClient *c = userdata;

        (void)etcd_client_refresh_members(c);
        (void)sd_event_source_set_time(s, usec + c->members_refresh);
        return 0;
}

/* etcd_client_new - a client on event with options o (copied). Starts a member-list refresh unless
 * o->use_proxies. Non-logging; -EINVAL without endpoints or with a bad protocol. */
int etcd_client_new(sd_event *event, const EtcdClientOptions *o, EtcdClient **ret) {
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        const char *protocol;
        size_t n = 0;
        int r;

        if (!event || !o || !ret || !o->endpoints || !o->endpoints[0])
                return -EINVAL;
        protocol = o->protocol ?: "http";
        if (!streq(protocol, "http") && !streq(protocol, "https"))
                return -EINVAL;
        c = calloc(1, sizeof(EtcdClient));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->priority = o->priority;
        c->request_timeout = o->request_timeout ?: ETCD_DEFAULT_TIMEOUT;
        c->members_refresh = o->members_refresh ?: ETCD_DEFAULT_MEMBERS;
        c->use_proxies = o->use_proxies;
        while (o->endpoints[n])
                n++;
        if (n > ETCD_MAX_ENDPOINTS)
                return -E2BIG;
        c->endpoints = calloc(MAX((size_t)n, (size_t)1), sizeof(char *));
        if (!c->endpoints)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (isempty(o->endpoints[i]))
                        return -EINVAL;
                c->endpoints[i] = endpoint_to_url(o->endpoints[i], protocol);
                if (!c->endpoints[i])
                        return -ENOMEM;
                c->n_endpoints++;
        }
        if (free_and_strdup(&c->username, isempty(o->username) ? NULL : o->username) < 0 ||
            free_and_strdup(&c->password, o->password) < 0 || free_and_strdup(&c->cacert, o->cacert) < 0 ||
            free_and_strdup(&c->cert, o->cert) < 0 || free_and_strdup(&c->key, o->key) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (endpoint_take_userinfo(c->endpoints[i], &c->username, &c->password) < 0)
                        return -ENOMEM;
        r = http_client_new(event, o->priority, &c->http);
        if (r < 0)
                return r;
        if (!c->use_proxies) {
                r = sd_event_add_time_relative(
                        event,
                        &c->members_timer,
                        CLOCK_MONOTONIC,
                        c->members_refresh,
                        0,
                        on_members_timer,
                        c);
                if (r < 0)
                        return r;
                (void)sd_event_source_set_enabled(c->members_timer, SD_EVENT_ON);
                (void)sd_event_source_set_description(c->members_timer, "etcd-members");
                r = etcd_client_refresh_members(c);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

/* etcd_client_free - cancels every call (no callbacks run) and frees c. Watches must be freed first. */
EtcdClient *etcd_client_free(EtcdClient *c) {
        if (!c)
                return NULL;
        while (c->calls)
                etcd_call_free(c->calls);
        c->http = http_client_free(c->http);
        sd_event_source_disable_unref(c->members_timer);
        strv_free_n(c->endpoints, c->n_endpoints);
        free(c->username);
        if (c->password)
                explicit_bzero(c->password, strlen(c->password));
        free(c->password);
        free(c->cacert);
        free(c->cert);
        free(c->key);
        free(c->token);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

/* etcd_client_endpoint - the endpoint (base URL) the next request goes to. */
const char *etcd_client_endpoint(const EtcdClient *c) {
        return c && c->n_endpoints > 0 ? c->endpoints[c->current % c->n_endpoints] : NULL;
}

/* etcd_client_n_endpoints - number of endpoints currently known. */
size_t etcd_client_n_endpoints(const EtcdClient *c) {
        return c ? c->n_endpoints : 0;
}

/* etcd_client_active - calls in flight plus live HTTP requests (watches included); for leak checks. */
size_t etcd_client_active(const EtcdClient *c) {
        return c ? c->n_calls + http_client_active(c->http) : 0;
}

/* etcd_client_set_request_timeout - a new budget for each operation started from now on (retry_timeout
 * from the dynamic config, as Patroni's set_retry_timeout); 0: the default. Calls in flight keep theirs. */
void etcd_client_set_request_timeout(EtcdClient *c, usec_t timeout) {
        if (c)
                c->request_timeout = timeout ?: ETCD_DEFAULT_TIMEOUT;
}

/* etcd_client_request_timeout - the current budget of one operation. */
usec_t etcd_client_request_timeout(const EtcdClient *c) {
        return c ? c->request_timeout : 0;
}

/* ==== Operations ==== */

static int add_b64(cJSON *obj, const char *field, const char *s) {
        _cleanup_free_ char *b = NULL;
        int r;

        r = base64_encode(s, strlen(s), &b);
        if (r < 0)
                return r;
        return json_add_string(obj, field, b);
}

static int add_int64_string(cJSON *obj, const char *field, int64_t v) {
        char buf[32]; /* an int64 in decimal */

        (void)snprintf(buf, sizeof(buf), "%" PRIi64, v);
        return json_add_string(obj, field, buf);
}

/* etcd_range - reads key, or [key, range_end) when range_end is set (serializable, as Patroni). */
int etcd_range(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (!body || add_b64(body, "key", key) < 0 ||
            (range_end && add_b64(body, "range_end", range_end) < 0) ||
            json_add_bool(body, "serializable", true) < 0)
                return -ENOMEM;
        return etcd_call(c, "/v3/kv/range", body, cb, userdata, ret);
}

/* etcd_put - writes key = value, attached to lease when lease > 0. */
int etcd_put(
        EtcdClient *c,
        const char *key,
        const char *value,
        int64_t lease,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (!body || add_b64(body, "key", key) < 0 || add_b64(body, "value", value) < 0 ||
            (lease > 0 && add_int64_string(body, "lease", lease) < 0))
                return -ENOMEM;
        return etcd_call(c, "/v3/kv/put", body, cb, userdata, ret);
}

/* etcd_delete - deletes key, or [key, range_end). */
int etcd_delete(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        EtcdCallback cb,
        void *userdata,
        EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (!body || add_b64(body, "key", key) < 0 ||
            (range_end && add_b64(body, "range_end", range_end) < 0))
                return -ENOMEM;
        return etcd_call(c, "/v3/kv/deleterange", body, cb, userdata, ret);
}

/* etcd_lease_grant - asks for a new lease of ttl seconds; parse the reply with etcd_lease_grant_parse(). */
int etcd_lease_grant(EtcdClient *c, int64_t ttl, EtcdCallback cb, void *userdata, EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (ttl <= 0)
                return -EINVAL;
        if (!body || add_int64_string(body, "TTL", ttl) < 0)
                return -ENOMEM;
        return etcd_call(c, "/v3/lease/grant", body, cb, userdata, ret);
}

/* etcd_lease_keepalive - refreshes lease id once; parse the reply with etcd_keepalive_parse(). */
int etcd_lease_keepalive(EtcdClient *c, int64_t id, EtcdCallback cb, void *userdata, EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (!body || add_int64_string(body, "ID", id) < 0)
                return -ENOMEM;
        return etcd_call(c, "/v3/lease/keepalive", body, cb, userdata, ret);
}

/* etcd_lease_revoke - revokes lease id (its keys disappear at once). */
int etcd_lease_revoke(EtcdClient *c, int64_t id, EtcdCallback cb, void *userdata, EtcdCall **ret) {
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();

        if (!body || add_int64_string(body, "ID", id) < 0)
                return -ENOMEM;
        return etcd_call(c, "/v3/lease/revoke", body, cb, userdata, ret);
}

/* etcd_txn_new - an empty txn body: {"compare":[],"success":[],"failure":[]}. NULL on OOM. */
cJSON *etcd_txn_new(void) {
        cJSON *t = cJSON_CreateObject();

        if (!t || !cJSON_AddArrayToObject(t, "compare") || !cJSON_AddArrayToObject(t, "success") ||
            !cJSON_AddArrayToObject(t, "failure")) {
                cJSON_Delete(t);
                return NULL;
        }
        return t;
}

/* etcd_txn_compare - adds a compare: target "VALUE" with a string value. result: "EQUAL", "NOT_EQUAL",
 * "GREATER", "LESS". */
int etcd_txn_compare(
        cJSON *txn, const char *key, const char *target, const char *result, const char *value) {
        cJSON *cmp = cJSON_CreateObject();

        if (!cmp || add_b64(cmp, "key", key) < 0 || json_add_string(cmp, "target", target) < 0 ||
            json_add_string(cmp, "result", result) < 0 || add_b64(cmp, "value", value) < 0 ||
            !cJSON_AddItemToArray(cJSON_GetObjectItem(txn, "compare"), cmp)) {
                cJSON_Delete(cmp);
                return -ENOMEM;
        }
        return 0;
}

/* etcd_txn_compare_int - adds a compare on an integer target: "CREATE" (create_revision), "MOD"
 * (mod_revision), "VERSION" or "LEASE". */
int etcd_txn_compare_int(
        cJSON *txn, const char *key, const char *target, const char *result, int64_t value) {
        const char *field = streq(target, "CREATE") ? "create_revision"
                : streq(target, "MOD")              ? "mod_revision"
                : streq(target, "VERSION")          ? "version"
                : streq(target, "LEASE")            ? "lease"
                                                    : NULL;
        cJSON *cmp;

        if (!field)
                return -EINVAL;
        cmp = cJSON_CreateObject();
        if (!cmp || add_b64(cmp, "key", key) < 0 || json_add_string(cmp, "target", target) < 0 ||
            json_add_string(cmp, "result", result) < 0 || add_int64_string(cmp, field, value) < 0 ||
            !cJSON_AddItemToArray(cJSON_GetObjectItem(txn, "compare"), cmp)) {
                cJSON_Delete(cmp);
                return -ENOMEM;
        }
        return 0;
}

static int txn_add_op(cJSON *txn, bool success, const char *op, cJSON *req) {
        cJSON *wrap = cJSON_CreateObject();

        if (!wrap || !req || !cJSON_AddItemToObject(wrap, op, req)) {
                cJSON_Delete(wrap);
                cJSON_Delete(req);
                return -ENOMEM;
        }
        if (!cJSON_AddItemToArray(cJSON_GetObjectItem(txn, success ? "success" : "failure"), wrap)) {
                cJSON_Delete(wrap);
                return -ENOMEM;
        }
        return 0;
}

/* etcd_txn_put - adds a put to the success or failure branch. */
int etcd_txn_put(cJSON *txn, bool success, const char *key, const char *value, int64_t lease) {
        cJSON *req = cJSON_CreateObject();

        if (!req || add_b64(req, "key", key) < 0 || add_b64(req, "value", value) < 0 ||
            (lease > 0 && add_int64_string(req, "lease", lease) < 0)) {
                cJSON_Delete(req);
                return -ENOMEM;
        }
        return txn_add_op(txn, success, "request_put", req);
}

/* etcd_txn_delete - adds a single-key delete to the success or failure branch. */
int etcd_txn_delete(cJSON *txn, bool success, const char *key) {
        cJSON *req = cJSON_CreateObject();

        if (!req || add_b64(req, "key", key) < 0) {
                cJSON_Delete(req);
                return -ENOMEM;
        }
        return txn_add_op(txn, success, "request_delete_range", req);
}

/* etcd_txn_range - adds a single-key read to the success or failure branch (e.g. to learn who holds
 * a lock we failed to take). */
int etcd_txn_range(cJSON *txn, bool success, const char *key) {
        cJSON *req = cJSON_CreateObject();

        if (!req || add_b64(req, "key", key) < 0) {
                cJSON_Delete(req);
                return -ENOMEM;
        }
        return txn_add_op(txn, success, "request_range", req);
}

/* etcd_txn - runs txn; check the outcome with etcd_txn_succeeded(). */
int etcd_txn(EtcdClient *c, const cJSON *txn, EtcdCallback cb, void *userdata, EtcdCall **ret) {
        return etcd_call(c, "/v3/kv/txn", txn, cb, userdata, ret);
}

/* ==== Watch ==== */

static int etcd_watch_connect(EtcdWatch *w);

static void etcd_watch_schedule_retry(EtcdWatch *w) {
        if (w->dead || w->free_requested)
                return;
        (void)sd_event_source_set_time_relative(w->retry, ETCD_WATCH_RETRY);
        (void)sd_event_source_set_enabled(w->retry, SD_EVENT_ONESHOT);
}

static void etcd_watch_drop_stream(EtcdWatch *w) {
        http_request_cancel(w->req);
        w->req = NULL;
        etcd_stream_done(&w->splitter);
}

static void etcd_watch_really_free(EtcdWatch *w) {
        etcd_watch_drop_stream(w);
        etcd_call_cancel(w->probe);
        for (size_t i = 0; i < w->n_queue; i++)
                free(w->queue[i]);
        free(w->queue);
        sd_event_source_disable_unref(w->dispatch);
        sd_event_source_disable_unref(w->retry);
        sd_event_source_disable_unref(w->stall);
        free(w->key);
        free(w->range_end);
        free(w->endpoint);
        free(w);
}

/* etcd_watch_free - stops the watch; its callback will not run again. May be called from the watch's
 * own callback. Returns NULL. */
EtcdWatch *etcd_watch_free(EtcdWatch *w) {
        if (!w)
                return NULL;
        if (w->dispatching) {
                w->free_requested = true;
                etcd_watch_drop_stream(w);
                return NULL;
        }
        etcd_watch_really_free(w);
        return NULL;
}

/* Calls the user; returns false when the watch was freed meanwhile (then w is gone). */
static bool etcd_watch_notify(EtcdWatch *w, int error, const EtcdWatchMessage *m) {
        bool was = w->dispatching;

        w->dispatching = true;
        w->cb(w, error, m, w->userdata);
        w->dispatching = was;
        if (w->free_requested && !was) {
                etcd_watch_really_free(w);
                return false;
        }
        return !w->free_requested;
}

/* Handles one complete message; false when w was freed. */
static bool etcd_watch_handle(EtcdWatch *w, const char *text) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *error = NULL;
        EtcdWatchMessage m = {};
        bool alive;
        int r;

        r = json_parse(text, strlen(text), ETCD_REPLY_MAX, JSON_MAX_DEPTH_DEFAULT, &j);
        if (r >= 0)
                r = etcd_watch_message_parse(j, &m, &error);
        if (r < 0) {
                log_debug("etcd watch on %s: bad message: %s", w->endpoint, error ?: strerror(-r));
                if (r == -EACCES || r == -EPERM)
                        w->client->token = mfree(w->client->token);
                etcd_watch_drop_stream(w);
                etcd_watch_schedule_retry(w);
                return etcd_watch_notify(w, r == -EBADMSG ? -EPROTO : r, NULL);
        }
        if (m.compact_revision > 0 || m.canceled) {
                w->dead = true;
                etcd_watch_drop_stream(w);
                etcd_watch_message_done(&m);
                return etcd_watch_notify(w, -ESTALE, NULL);
        }
        for (size_t i = 0; i < m.n_events; i++)
                w->next_revision = MAX(w->next_revision, m.events[i].kv.mod_revision + 1);
        if (m.created && w->next_revision == 0)
                w->next_revision = m.revision + 1;
        alive = etcd_watch_notify(w, 0, &m);
        etcd_watch_message_done(&m);
        return alive;
}

static int on_watch_dispatch(sd_event_source *s, void *userdata) {
        EtcdWatch *w = userdata;

        while (w->n_queue > 0) {
                char *text = w->queue[0];
                bool alive;

                memmove(w->queue, w->queue + 1, (w->n_queue - 1) * sizeof(char *));
                w->n_queue--;
                alive = etcd_watch_handle(w, text);
                free(text);
                if (!alive)
                        return 0;
        }
        return 0;
}

static int on_watch_message(const char *msg, size_t size, void *userdata) {
        EtcdWatch *w = userdata;
        char **q, *copy;

        if (w->n_queue >= ETCD_WATCH_QUEUE_MAX)
                return -ENOBUFS;
        copy = strndup(msg, size);
        if (!copy)
                return -ENOMEM;
        q = realloc(w->queue, (w->n_queue + 1) * sizeof(char *));
        if (!q) {
                free(copy);
                return -ENOMEM;
        }
        w->queue = q;
        w->queue[w->n_queue++] = copy;
        (void)sd_event_source_set_enabled(w->dispatch, SD_EVENT_ONESHOT);
        return 0;
}

/* Runs inside curl: only buffers; delivery happens from the dispatch source. */
static int on_watch_data(HttpRequest *req, const char *data, size_t size, void *userdata) {
        EtcdWatch *w = userdata;

        w->last_data = now_usec(w->client->event);
        return etcd_stream_feed(&w->splitter, data, size, on_watch_message, w);
}

static void
on_watch_done(HttpRequest *req, int error, long status, const char *body, size_t size, void *userdata) {
        EtcdWatch *w = userdata;
        int r = error;

        w->req = NULL;
        /* Deliver what arrived before the end first. */
        w->dispatching = true;
        on_watch_dispatch(w->dispatch, w);
        w->dispatching = false;
        if (w->free_requested) {
                etcd_watch_really_free(w);
                return;
        }
        if (w->dead)
                return;
        if (r >= 0 && (status < 200 || status >= 300)) {
                /* The body went through the splitter; an error reply becomes a stream error message. */
                r = status == 401 ? -EACCES : -EIO;
        }
        if (r == -EACCES || r == -EPERM)
                w->client->token = mfree(w->client->token);
        if (r >= 0)
                r = -ECONNRESET; /* the server ended the stream */
        etcd_client_endpoint_failed(w->client, w->endpoint);
        etcd_stream_done(&w->splitter);
        etcd_watch_schedule_retry(w);
        log_debug(
                "etcd watch on %s ended: %s%s%s, reconnecting",
                strna(w->endpoint),
                strerror(-r),
                isempty(http_request_error(req)) ? "" : ": ",
                http_request_error(req));
        (void)etcd_watch_notify(w, r, NULL);
}

static int etcd_watch_connect(EtcdWatch *w) {
        EtcdClient *c = w->client;
        _cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();
        _cleanup_free_ char *url = NULL, *auth = NULL, *text = NULL;
        const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
        cJSON *create;
        int r;

        if (c->n_endpoints == 0)
                return -ENXIO;
        if (c->username && !c->token && !c->auth_disabled) {
                /* Get a token first; the retry timer tries again. */
                r = etcd_client_authenticate(c);
                if (r < 0)
                        return r;
                etcd_watch_schedule_retry(w);
                return 0;
        }
        create = cJSON_CreateObject();
        if (!body || !create || json_add_item(body, "create_request", create) < 0)
                return -ENOMEM;
        if (add_b64(create, "key", w->key) < 0 ||
            (w->range_end && add_b64(create, "range_end", w->range_end) < 0) ||
            (w->next_revision > 0 && add_int64_string(create, "start_revision", w->next_revision) < 0))
                return -ENOMEM;
        text = cJSON_PrintUnformatted(body);
        if (!text)
                return -ENOMEM;
        r = free_and_strdup(&w->endpoint, c->endpoints[c->current % c->n_endpoints]);
        if (r < 0)
                return r;
        if (asprintf(&url, "%s/v3/watch", w->endpoint) < 0)
                return -ENOMEM;
        if (c->token) {
                if (asprintf(&auth, "authorization: %s", c->token) < 0)
                        return -ENOMEM;
                headers[1] = auth;
        }
        etcd_stream_done(&w->splitter);
        w->splitter.max = ETCD_REPLY_MAX;
        w->last_data = now_usec(c->event);
        r = http_client_start(
                c->http,
                &(HttpRequestOptions){
                        .url = url,
                        .body = text,
                        .body_size = strlen(text),
                        .headers = headers,
                        .timeout = 0,
                        .connect_timeout = MAX(c->request_timeout / 2, ETCD_MIN_ATTEMPT_TIMEOUT),
                        .cacert = c->cacert,
                        .cert = c->cert,
                        .key = c->key,
                        .tcp_keepalive = true,
                        .on_done = on_watch_done,
                        .on_data = on_watch_data,
                        .userdata = w,
                },
                &w->req);
        return r;
}

static int on_watch_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        EtcdWatch *w = userdata;
        int r;

        if (w->req || w->dead)
                return 0;
        r = etcd_watch_connect(w);
        if (r < 0) {
                log_debug("etcd watch: cannot reconnect: %s, retrying", strerror(-r));
                etcd_watch_schedule_retry(w);
        }
        return 0;
}

static void
on_watch_probe(EtcdClient *c, int error, const char *message, const cJSON *reply, void *userdata) {
        EtcdWatch *w = userdata;

        w->probe = NULL;
        if (error >= 0 && w->endpoint && streq_ptr(etcd_client_endpoint(c), w->endpoint)) {
                w->last_data = now_usec(c->event); /* etcd answers: the stream is merely quiet */
                return;
        }
        /* The watched member does not answer (or the client moved on): re-create the stream. */
        log_debug("etcd watch on %s is stalled (%s), reconnecting", strna(w->endpoint), strna(message));
        etcd_watch_drop_stream(w);
        etcd_watch_schedule_retry(w);
        (void)etcd_watch_notify(w, -ETIMEDOUT, NULL); /* may free w */
}

static int on_watch_stall(sd_event_source *s, uint64_t usec, void *userdata) {
        EtcdWatch *w = userdata;
        usec_t now = now_usec(w->client->event);
        _cleanup_(cJSON_Deletep) cJSON *body = NULL;

        (void)sd_event_source_set_time(s, now + w->stall_timeout / 2);
        if (w->dead || w->probe)
                return 0;
        if (!w->req) {
                if (sd_event_source_get_enabled(w->retry, NULL) <= 0)
                        etcd_watch_schedule_retry(w);
                return 0;
        }
        if (now < w->last_data + w->stall_timeout)
                return 0;
        body = cJSON_CreateObject();
        if (!body || add_b64(body, "key", w->key) < 0 || json_add_bool(body, "count_only", true) < 0)
                return 0;
        if (etcd_call(w->client, "/v3/kv/range", body, on_watch_probe, w, &w->probe) < 0)
                w->probe = NULL;
        return 0;
}

/* etcd_watch_new - watches key (or [key, range_end)) from start_revision (0: from now). A stream
 * silent for stall_timeout (0: 10 s) is probed with a read; if the member does not answer the stream
 * is re-created on the next endpoint. Dropped streams are re-created from the revision after the last
 * event seen. cb runs from the event loop, never inside curl. Non-logging (debug only). */
int etcd_watch_new(
        EtcdClient *c,
        const char *key,
        const char *range_end,
        int64_t start_revision,
        usec_t stall_timeout,
        EtcdWatchCallback cb,
        void *userdata,
        EtcdWatch **ret) {
        _cleanup_(etcd_watch_freep) EtcdWatch *w = NULL;
        int r;

        if (!c || !key || !cb || !ret)
                return -EINVAL;
        w = calloc(1, sizeof(EtcdWatch));
        if (!w)
                return -ENOMEM;
        w->client = c;
        w->cb = cb;
        w->userdata = userdata;
        w->next_revision = start_revision > 0 ? start_revision : 0;
        w->stall_timeout = stall_timeout ?: 10 * USEC_PER_SEC;
        w->key = strdup(key);
        w->range_end = range_end ? strdup(range_end) : NULL;
        if (!w->key || (range_end && !w->range_end))
                return -ENOMEM;
        r = sd_event_add_defer(c->event, &w->dispatch, on_watch_dispatch, w);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(w->dispatch, SD_EVENT_OFF);
        (void)sd_event_source_set_priority(w->dispatch, c->priority);
        (void)sd_event_source_set_description(w->dispatch, "etcd-watch-dispatch");
        r = sd_event_add_time_relative(
                c->event, &w->retry, CLOCK_MONOTONIC, ETCD_WATCH_RETRY, 0, on_watch_retry, w);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(w->retry, SD_EVENT_OFF);
        (void)sd_event_source_set_description(w->retry, "etcd-watch-retry");
        r = sd_event_add_time_relative(
                c->event, &w->stall, CLOCK_MONOTONIC, w->stall_timeout / 2, 0, on_watch_stall, w);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(w->stall, SD_EVENT_ON);
        (void)sd_event_source_set_description(w->stall, "etcd-watch-stall");
        r = etcd_watch_connect(w);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

/* etcd_watch_revision - the revision the watch resumes from after a drop (0: not yet known). */
int64_t etcd_watch_revision(const EtcdWatch *w) {
        return w ? w->next_revision : 0;
}
