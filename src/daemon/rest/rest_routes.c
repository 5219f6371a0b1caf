/* SPDX-License-Identifier: MIT */
/*
 * The REST route table and its handlers: Patroni 3.0.2's endpoints with their exact status codes and
 * texts. Reads answer from the NodeSnapshot; writes validate their bodies exactly as Patroni does and
 * hand an intent to the HA engine (rest_request_submit()).
 *
 * Invariant: a handler answers exactly once, through rest_reply_*() or rest_request_submit(), and never
 * blocks; anything that needs etcd or PostgreSQL is the engine's job.
 */
#include <ctype.h>
#include <stdio.h>

#include "pgha/json.h"
#include "pgha/metrics.h"
#include "pgha/rest.h"
#include "rest-internal.h"

static const char *const rest_intent_kind_table[_REST_INTENT_KIND_MAX] = {
        [REST_INTENT_SWITCHOVER] = "switchover",
        [REST_INTENT_FAILOVER] = "failover",
        [REST_INTENT_SWITCHOVER_CANCEL] = "switchover-cancel",
        [REST_INTENT_RESTART] = "restart",
        [REST_INTENT_RESTART_CANCEL] = "restart-cancel",
        [REST_INTENT_RELOAD] = "reload",
        [REST_INTENT_REINITIALIZE] = "reinitialize",
        [REST_INTENT_CONFIG_PATCH] = "config-patch",
        [REST_INTENT_CONFIG_PUT] = "config-put",
        [REST_INTENT_FAILSAFE] = "failsafe",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(rest_intent_kind, RestIntentKind);

/* ==== Reads ==== */

static void rest_get_patroni(RestRequest *req) {
        cJSON *doc = NULL;

        if (snapshot_status_json(rest_request_snapshot(req), rest_request_now(req), &doc) < 0)
                return rest_reply_error(req, 500, NULL);
        rest_reply_json(req, 200, doc);
        cJSON_Delete(doc);
}

void rest_handle_health(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        RestQuery q = {
                .now = rest_request_now(req),
                .leader_needs_postgres = rest_request_leader_needs_postgres(req),
        };
        int code;

        if (rest_query_parse(req->query, &q) < 0)
                return rest_reply_error(req, 500, NULL);
        code = rest_health_status(s, rest_health_check_from_path(req->path), &q);
        rest_query_done(&q);

        /* HAProxy's OPTIONS and HEAD read only the status line. */
        if (!streq(req->method, "GET"))
                return rest_reply_status(req, (unsigned)code);

        cJSON *doc = NULL;
        if (snapshot_status_json(s, rest_request_now(req), &doc) < 0)
                return rest_reply_error(req, 500, NULL);
        rest_reply_json(req, (unsigned)code, doc);
        cJSON_Delete(doc);
}

static void rest_get_liveness(RestRequest *req) {
        RestQuery q = {.now = rest_request_now(req)};
        rest_reply_status(
                req, (unsigned)rest_health_status(rest_request_snapshot(req), REST_CHECK_LIVENESS, &q));
}

static void rest_get_readiness(RestRequest *req) {
        RestQuery q = {.now = rest_request_now(req)};
        rest_reply_status(
                req, (unsigned)rest_health_status(rest_request_snapshot(req), REST_CHECK_READINESS, &q));
}

static void rest_get_cluster(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);

        if (s->cluster)
                return rest_reply_json(req, 200, s->cluster);

        /* No view of the cluster yet: what cluster_as_json() gives for an empty cluster. */
        cJSON *empty = cJSON_CreateObject();
        if (!empty || !cJSON_AddArrayToObject(empty, "members")) {
                cJSON_Delete(empty);
                return rest_reply_error(req, 500, NULL);
        }
        rest_reply_json(req, 200, empty);
        cJSON_Delete(empty);
}

static void rest_get_history(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);

        if (cJSON_IsArray(s->history))
                return rest_reply_json(req, 200, s->history);
        cJSON *empty = cJSON_CreateArray();
        if (!empty)
                return rest_reply_error(req, 500, NULL);
        rest_reply_json(req, 200, empty);
        cJSON_Delete(empty);
}

static void rest_get_config(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);

        if (!s->config)
                return rest_reply_error(req, 502, NULL);
        rest_reply_json(req, 200, s->config);
}

static void rest_get_failsafe(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);

        if (!cJSON_IsObject(s->failsafe))
                return rest_reply_error(req, 502, NULL);
        rest_reply_json(req, 200, s->failsafe);
}

static void rest_get_metrics(RestRequest *req) {
        char *text = NULL;
        size_t size = 0;

        if (metrics_render(rest_request_snapshot(req), rest_request_now(req), &text, &size) < 0)
                return rest_reply_error(req, 500, NULL);
        rest_reply_plain(req, 200, text, size);
}

/* ==== Writes ==== */

/* parse_bool(): str(value).lower() in on/true/yes/1. */
static bool python_parse_bool_true(const cJSON *v) {
        if (!v)
                return false;
        _cleanup_free_ char *s = python_str(v);
        if (!s)
                return false;
        for (char *p = s; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return streq(s, "on") || streq(s, "true") || streq(s, "yes") || streq(s, "1");
}

static void rest_post_reload(RestRequest *req) {
        RestIntent intent = {.kind = REST_INTENT_RELOAD};
        rest_request_submit(req, &intent, 503, NULL);
}

static void rest_post_sigterm(RestRequest *req) {
        /* Patroni acts on this only on Windows under its test suite. */
        rest_reply_text(req, 202, "shutdown scheduled");
}

/* parse_schedule(): 0 with *ret set, or the status code with *reterr (a static text filled in for
 * action). */
static unsigned
parse_schedule(RestRequest *req, const cJSON *v, const char *action, usec_t *ret, char **reterr) {
        usec_t t;
        int r;

        r = cJSON_IsString(v) ? rest_parse_timestamp(v->valuestring, &t) : -EINVAL;
        if (r == -ENOMSG) {
                if (asprintf(reterr, "Timezone information is mandatory for the scheduled %s", action) < 0)
                        *reterr = NULL;
                return 400;
        }
        if (r < 0) {
                *reterr =
                        strdup("Unable to parse scheduled timestamp. It should be in an unambiguous format, "
                               "e.g. ISO 8601");
                return 422;
        }
        if (t < rest_request_realtime(req)) {
                if (asprintf(reterr, "Cannot schedule %s in the past", action) < 0)
                        *reterr = NULL;
                return 422;
        }
        *ret = t;
        return 0;
}

static void rest_post_restart(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        _cleanup_free_ char *err = NULL;
        RestIntent intent = {.kind = REST_INTENT_RESTART};
        unsigned status = 0;
        const cJSON *f;

        if (rest_request_json(req, /* optional= */ true, &body) < 0)
                return;
        intent.body = body;

        if (s->paused && cJSON_GetObjectItemCaseSensitive(body, "schedule"))
                return rest_reply_text(req, 500, "Can't schedule restart in the paused state");

        cJSON_ArrayForEach (f, body) {
                const char *k = f->string;

                if (streq(k, "schedule")) {
                        status = parse_schedule(req, f, "restart", &intent.scheduled_at, &err);
                        if (status)
                                break;
                } else if (streq(k, "role")) {
                        if (!cJSON_IsString(f) ||
                            !(streq(f->valuestring, "master") || streq(f->valuestring, "primary") ||
                              streq(f->valuestring, "replica"))) {
                                status = 400;
                                err = strdup("PostgreSQL role should be either primary or replica");
                                break;
                        }
                        intent.role = f->valuestring;
                } else if (streq(k, "postgres_version")) {
                        _cleanup_free_ char *v = python_str(f);
                        if (!v || rest_parse_postgres_version(v, &intent.postgres_version, &err) < 0) {
                                status = 400;
                                break;
                        }
                } else if (streq(k, "timeout")) {
                        _cleanup_free_ char *v = python_str(f);
                        int64_t t;
                        if (!v || cJSON_IsBool(f) || rest_parse_int(v, "s", &t) < 0 || t <= 0) {
                                status = 400;
                                err = strdup("Timeout should be a positive number of seconds");
                                break;
                        }
                        intent.timeout = t;
                } else if (streq(k, "restart_pending"))
                        intent.restart_pending = true;
                else {
                        status = 400;
                        if (asprintf(&err, "Unknown filter for the scheduled restart: %s", k) < 0)
                                err = NULL;
                        break;
                }
        }
        if (status)
                return rest_reply_text(req, status, err ?: "restart failed");

        rest_request_submit(req, &intent, 503, "restart failed");
}

static void rest_delete_restart(RestRequest *req) {
        RestIntent intent = {.kind = REST_INTENT_RESTART_CANCEL};

        if (!rest_request_snapshot(req)->scheduled_restart)
                return rest_reply_text(req, 404, "no restarts are scheduled");
        rest_request_submit(req, &intent, 503, NULL);
}

static void rest_delete_switchover(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        RestIntent intent = {.kind = REST_INTENT_SWITCHOVER_CANCEL};

        if (!s->cluster || !cJSON_GetObjectItemCaseSensitive(s->cluster, "scheduled_switchover"))
                return rest_reply_text(req, 404, "no switchover is scheduled");
        rest_request_submit(req, &intent, 503, NULL);
}

static void rest_post_reinitialize(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        RestIntent intent = {.kind = REST_INTENT_REINITIALIZE};

        if (rest_request_json(req, /* optional= */ true, &body) < 0)
                return;
        intent.body = body;
        intent.force = python_parse_bool_true(cJSON_GetObjectItemCaseSensitive(body, "force"));

        if (!s->leader_name)
                return rest_reply_text(req, 503, "Cluster has no leader, can not reinitialize");
        if (streq_ptr(s->leader_name, s->name))
                return rest_reply_text(req, 503, "I am the leader, can not reinitialize");
        rest_request_submit(req, &intent, 503, NULL);
}

/* A member name field: absent/null/"" → NULL, a string → it, anything else → error. */
static int name_field(const cJSON *body, const char *key, const char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

        *ret = NULL;
        if (!json_truthy(v))
                return 0;
        if (!cJSON_IsString(v))
                return -EINVAL;
        *ret = v->valuestring;
        return 0;
}

static void post_failover(RestRequest *req, bool switchover) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        const char *action = switchover ? "switchover" : "failover",
                   *Action = switchover ? "Switchover" : "Failover";
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        _cleanup_free_ char *data = NULL, *fallback = NULL;
        RestIntent intent = {.kind = switchover ? REST_INTENT_SWITCHOVER : REST_INTENT_FAILOVER};
        unsigned status = 400;

        if (rest_request_json(req, /* optional= */ false, &body) < 0)
                return;
        intent.body = body;

        if (name_field(body, "leader", &intent.leader) < 0)
                return rest_reply_text(req, 400, "leader should be a member name (string)");
        if (name_field(body, "candidate", &intent.candidate) < 0)
                return rest_reply_text(req, 400, "candidate should be a member name (string)");
        if (!intent.candidate && name_field(body, "member", &intent.candidate) < 0)
                return rest_reply_text(req, 400, "member should be a member name (string)");
        const cJSON *scheduled_at = cJSON_GetObjectItemCaseSensitive(body, "scheduled_at");

        if (!switchover && !intent.candidate)
                data = strdup("Failover could be performed only to a specific candidate");
        else if (switchover && !intent.leader)
                data = strdup("Switchover could be performed only from a specific leader");

        if (!data && json_truthy(scheduled_at)) {
                if (!intent.leader) {
                        if (asprintf(&data, "Scheduled %s is possible only from a specific leader", action) <
                            0)
                                data = NULL;
                } else if (s->paused) {
                        if (asprintf(&data, "Can't schedule %s in the paused state", action) < 0)
                                data = NULL;
                } else {
                        unsigned r = parse_schedule(req, scheduled_at, action, &intent.scheduled_at, &data);
                        if (r)
                                status = r;
                }
        }

        if (!data && s->paused && !intent.candidate) {
                if (asprintf(
                            &data, "%s is possible only to a specific candidate in a paused state", Action) <
                    0)
                        data = NULL;
        }

        if (data)
                return rest_reply_text(req, status, data);

        if (asprintf(&fallback, "failed to write %s key into DCS", action) < 0)
                return rest_reply_error(req, 500, NULL);
        rest_request_submit(req, &intent, 503, fallback);
}

static void rest_post_failover(RestRequest *req) {
        post_failover(req, /* switchover= */ false);
}

static void rest_post_switchover(RestRequest *req) {
        post_failover(req, /* switchover= */ true);
}

/* PATCH /config: the engine merges the body onto the config key read afresh from etcd (see ha.c); a
 * node that has seen no config key at all answers 503 at once, as Patroni does for a missing one. */
static void rest_patch_config(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        RestIntent intent = {.kind = REST_INTENT_CONFIG_PATCH};

        if (rest_request_json(req, /* optional= */ false, &body) < 0)
                return;
        if (!cJSON_IsObject(s->config))
                return rest_reply_error(req, 503, NULL);
        intent.body = body;
        rest_request_submit(req, &intent, 503, NULL);
}

static void rest_put_config(RestRequest *req) {
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        RestIntent intent = {.kind = REST_INTENT_CONFIG_PUT};

        if (rest_request_json(req, /* optional= */ false, &body) < 0)
                return;
        intent.body = body;
        rest_request_submit(req, &intent, 502, NULL);
}

static void rest_post_failsafe(RestRequest *req) {
        const NodeSnapshot *s = rest_request_snapshot(req);
        _cleanup_(rest_json_deletep) cJSON *body = NULL;
        RestIntent intent = {.kind = REST_INTENT_FAILSAFE};

        if (!s->failsafe_mode)
                return rest_reply_error(req, 502, NULL);
        if (rest_request_json(req, /* optional= */ false, &body) < 0)
                return;
        if (streq_ptr(s->state, "running") && snapshot_is_primary_role(s->role))
                return rest_reply_text(req, 500, "Running as a leader");
        intent.body = body;
        rest_request_submit(req, &intent, 503, NULL);
}

static void rest_post_citus(RestRequest *req) {
        _cleanup_(rest_json_deletep) cJSON *body = NULL;

        if (rest_request_json(req, /* optional= */ false, &body) < 0)
                return;
        /* Not a Citus coordinator: Patroni validates and answers OK. */
        rest_reply_text(req, 200, "OK");
}

/* The route table. Methods without a row here: GET, HEAD and OPTIONS fall back to the health-check
 * handler, anything else is 501 (Patroni's BaseHTTPRequestHandler behaviour). */
static const RestRoute rest_routes[] = {
        {"GET", "patroni", rest_get_patroni, false, REST_BODY_NONE},
        {"GET", "cluster", rest_get_cluster, false, REST_BODY_NONE},
        {"GET", "history", rest_get_history, false, REST_BODY_NONE},
        {"GET", "config", rest_get_config, false, REST_BODY_NONE},
        {"GET", "failsafe", rest_get_failsafe, false, REST_BODY_NONE},
        {"GET", "metrics", rest_get_metrics, false, REST_BODY_NONE},
        {"GET", "liveness", rest_get_liveness, false, REST_BODY_NONE},
        {"GET", "readiness", rest_get_readiness, false, REST_BODY_NONE},
        {"PATCH", "config", rest_patch_config, true, REST_BODY_COLLECT},
        {"PUT", "config", rest_put_config, true, REST_BODY_COLLECT},
        {"POST", "reload", rest_post_reload, true, REST_BODY_NONE},
        {"POST", "restart", rest_post_restart, true, REST_BODY_COLLECT},
        {"DELETE", "restart", rest_delete_restart, true, REST_BODY_NONE},
        {"DELETE", "switchover", rest_delete_switchover, true, REST_BODY_NONE},
        {"POST", "reinitialize", rest_post_reinitialize, true, REST_BODY_COLLECT},
        {"POST", "failover", rest_post_failover, true, REST_BODY_COLLECT},
        {"POST", "switchover", rest_post_switchover, true, REST_BODY_COLLECT},
        {"POST", "failsafe", rest_post_failsafe, true, REST_BODY_COLLECT},
        {"POST", "citus", rest_post_citus, true, REST_BODY_COLLECT},
        {"POST", "sigterm", rest_post_sigterm, true, REST_BODY_NONE},
};

/* rest_route_find - first path segment as Patroni's parse_request() computes it
 * (path.lstrip('/').split('/')[0]). */
const RestRoute *rest_route_find(const char *method, const char *path) {
        const char *seg = path, *end;

        while (*seg == '/')
                seg++;
        end = strchrnul(seg, '/');
        for (size_t i = 0; i < ELEMENTSOF(rest_routes); i++)
                if (streq(rest_routes[i].method, method) &&
                    strlen(rest_routes[i].segment) == (size_t)(end - seg) &&
                    strneq(rest_routes[i].segment, seg, (size_t)(end - seg)) && end > seg)
                        return &rest_routes[i];
        return NULL;
}
