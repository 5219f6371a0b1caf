/* SPDX-License-Identifier: MIT */
/*
 * The REST API: Patroni 3.0.2's endpoints, status codes and texts, served by libmicrohttpd on the
 * daemon's sd-event loop (no thread of its own). Reads are answered from a NodeSnapshot; requests that
 * need the HA engine (switchover, restart, reload, ...) are validated here and handed over as a
 * RestIntent through a RestIntentHandler, which answers through rest_call_reply_*() now or later.
 */
#pragma once

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "pgha/macro.h"
#include "pgha/snapshot.h"

/* ==== Health-check rules (pure) ==== */

/* Which status rule a request selects (patroni-compat.md §3.5). */
typedef enum RestHealthCheck {
        REST_CHECK_STANDBY_LEADER,   /* path contains standby_leader / standby-leader */
        REST_CHECK_LEADER,           /* contains leader */
        REST_CHECK_PRIMARY,          /* contains master, primary or read-write; also "/" */
        REST_CHECK_REPLICA,          /* contains replica */
        REST_CHECK_READ_ONLY,        /* contains read-only (and not sync) */
        REST_CHECK_HEALTH,           /* contains health */
        REST_CHECK_SYNC,             /* exactly /sync or /synchronous */
        REST_CHECK_ASYNC,            /* exactly /async or /asynchronous */
        REST_CHECK_READ_ONLY_SYNC,   /* exactly /read-only-sync or /read-only-synchronous */
        REST_CHECK_QUORUM,           /* exactly /quorum (Patroni 4) */
        REST_CHECK_READ_ONLY_QUORUM, /* exactly /read-only-quorum (Patroni 4) */
        REST_CHECK_OTHER,            /* anything else: 503 */
        REST_CHECK_LIVENESS,         /* GET /liveness only */
        REST_CHECK_READINESS,        /* GET /readiness only */
        _REST_HEALTH_CHECK_MAX,
        _REST_HEALTH_CHECK_INVALID = -EINVAL,
} RestHealthCheck;

const char *rest_health_check_to_string(RestHealthCheck c);
RestHealthCheck rest_health_check_from_string(const char *s);

/* rest_health_check_from_path - the rule a GET/HEAD/OPTIONS on path (no query string) selects. */
RestHealthCheck rest_health_check_from_path(const char *path);

typedef struct RestTagFilter {
        char *key; /* without the tag_ prefix */
        char *value;
} RestTagFilter;

/* The inputs of a health check besides the snapshot: the clock and the query string. */
typedef struct RestQuery {
        usec_t now;          /* CLOCK_MONOTONIC µs */
        bool has_lag;        /* ?lag= given and parsable */
        int64_t lag;         /* bytes */
        RestTagFilter *tags; /* ?tag_<key>=<value>, first value of each key, in order */
        size_t n_tags;
        bool leader_needs_postgres; /* policy: see RestServerOptions.leader_checks_need_postgres */
} RestQuery;

/* rest_query_parse - parses a raw query string (without '?', NULL allowed) as Python's parse_qs does
 * (fields split on '&', '+' is a space, %XX decoded, fields without '=' or with an empty value dropped,
 * first value of a key wins) into q->has_lag/lag/tags. q->now is left alone. */
int rest_query_parse(const char *query, RestQuery *q);
void rest_query_done(RestQuery *q);

/* rest_parse_int - Patroni's parse_int(value, base_unit): strtol-like integer (0x.., octal 0.., decimal),
 * or a float, optionally followed by a unit convertible to base_unit ("B", "kB", "MB", "ms", "s", "min"),
 * rounded half to even. Returns -EINVAL when Patroni would return None; saturates at INT64 limits. */
int rest_parse_int(const char *value, const char *base_unit, int64_t *ret);

/* rest_health_status - 200 or 503 for check on snapshot s with query q: every rule of
 * patroni-compat.md §3.5 plus /liveness and /readiness. Pure. */
int rest_health_status(const NodeSnapshot *s, RestHealthCheck check, const RestQuery *q);

/* ==== Validation helpers (pure, exposed for tests) ==== */

/* rest_parse_postgres_version - Patroni's postgres_version_to_int(): "X.Y" (X >= 10) or "X.Y.Z" →
 * 150002; on failure *reterr_message is Patroni's text. */
int rest_parse_postgres_version(const char *v, unsigned *ret, char **reterr_message);

/* rest_parse_timestamp - an ISO 8601 timestamp ("2026-11-27T10:00:00+01:00", "2026-11-27 10:00Z", ...)
 * → CLOCK_REALTIME µs. -EINVAL: unparsable; -ENOMSG: parsed but without a time zone. */
int rest_parse_timestamp(const char *s, usec_t *ret);

/* rest_config_patch - Patroni's patch_config(): merges patch into config in place (null deletes, objects
 * merge, scalars replace when their string forms differ). Returns 1 if config changed, 0 if not. */
int rest_config_patch(cJSON *config, const cJSON *patch);

/* rest_json_dumps - Python json.dumps() text of j: ", " and ": " separators, ensure_ascii escapes,
 * integral numbers without a fraction. */
int rest_json_dumps(const cJSON *j, char **ret, size_t *ret_size);

/* ==== Intents: requests the HA engine must act on ==== */

typedef enum RestIntentKind {
        REST_INTENT_SWITCHOVER, /* POST /switchover, validated up to feasibility (412 is the engine's) */
        REST_INTENT_FAILOVER,   /* POST /failover */
        REST_INTENT_SWITCHOVER_CANCEL, /* DELETE /switchover while one is scheduled */
        REST_INTENT_RESTART,           /* POST /restart, filters validated */
        REST_INTENT_RESTART_CANCEL,    /* DELETE /restart while one is scheduled */
        REST_INTENT_RELOAD,            /* POST /reload */
        REST_INTENT_REINITIALIZE,      /* POST /reinitialize: cluster has a leader and it is not us */
        REST_INTENT_CONFIG_PATCH,      /* PATCH /config: the patch in .body (merged by the engine) */
        REST_INTENT_CONFIG_PUT,        /* PUT /config: the new config in .body */
        REST_INTENT_FAILSAFE,          /* POST /failsafe in failsafe mode, on a non-primary */
        _REST_INTENT_KIND_MAX,
        _REST_INTENT_KIND_INVALID = -EINVAL,
} RestIntentKind;

const char *rest_intent_kind_to_string(RestIntentKind k);

typedef struct RestIntent {
        RestIntentKind kind;
        const char *leader;        /* switchover/failover: "leader" (NULL if absent) */
        const char *candidate;     /* "candidate" or "member" (NULL if absent) */
        usec_t scheduled_at;       /* CLOCK_REALTIME µs; 0 = now (switchover) / not scheduled (restart) */
        const char *role;          /* restart filter, NULL if absent */
        unsigned postgres_version; /* restart filter as int (150002), 0 if absent */
        int64_t timeout;           /* restart timeout in seconds, 0 if absent */
        bool restart_pending;      /* restart filter present */
        bool force;                /* reinitialize */
        const cJSON *body;         /* the request body object (NULL when there was none) */
} RestIntent;

typedef struct RestCall RestCall;

/* Implemented by the HA engine. submit() runs on the event loop inside the REST request and must answer
 * exactly once with rest_call_reply_*(), either before returning or later (the connection is suspended
 * meanwhile). The intent and everything it points to are valid only during submit(): copy what is kept.
 * cancel() tells the engine a call it has not answered yet is being dropped (server shutdown); the engine
 * must forget the pointer. */
typedef struct RestIntentHandler {
        void (*submit)(void *userdata, RestCall *call, const RestIntent *intent);
        void (*cancel)(void *userdata, RestCall *call);
} RestIntentHandler;

/* Answers a call: a text/html body (Patroni's plain-text replies), a JSON body, or Patroni's HTML error
 * page. Return -EALREADY when the call was answered before. */
int rest_call_reply_text(RestCall *c, unsigned status, const char *text);
int rest_call_reply_json(RestCall *c, unsigned status, const cJSON *body);
int rest_call_reply_error(RestCall *c, unsigned status);

/* ==== Server ==== */

typedef enum RestVerifyClient {
        REST_VERIFY_CLIENT_NONE,
        REST_VERIFY_CLIENT_OPTIONAL,
        REST_VERIFY_CLIENT_REQUIRED,
        _REST_VERIFY_CLIENT_MAX,
        _REST_VERIFY_CLIENT_INVALID = -EINVAL,
} RestVerifyClient;

typedef struct RestServerOptions {
        const char *listen_host;   /* numeric IPv4/IPv6, "localhost", or "", "*" for every address */
        uint16_t listen_port;      /* 0: any free port (tests) */
        const char *auth_username; /* restapi.authentication; both NULL: no authentication */
        const char *auth_password;
        char **allowlist; /* restapi.allowlist entries: IP addresses or CIDRs */
        size_t n_allowlist;
        bool allowlist_include_members; /* also allow the hosts of the members' api_url (cached view) */
        const char *certfile;           /* restapi.certfile: enables HTTPS */
        const char *keyfile;            /* restapi.keyfile (default: certfile) */
        const char *keyfile_password;
        const char *cafile; /* CA for client certificates */
        RestVerifyClient verify_client;
        char **extra_headers;   /* http_extra_headers as name, value, name, value, ... */
        size_t n_extra_headers; /* number of pairs */
        /* Connections at once; one more makes the oldest idle one close (0: 256). */
        unsigned connection_limit;
        unsigned per_ip_connection_limit; /* the same for one client address (0: 64) */
        /* Deliberate difference from Patroni, off by default: /leader, /primary, /standby-leader (and the
         * leader part of /read-only) answer 503 while PostgreSQL is not "running", even with the lock
         * held (Patroni answers 200 while it restarts a crashed primary; design.md wants 503). */
        bool leader_checks_need_postgres;
        usec_t connection_timeout; /* a request must arrive whole within this; 0: 10 s */
        usec_t idle_timeout;       /* a connection must start a request within this; 0: 5 s */
        size_t body_max;           /* request body cap; 0: 1 MiB */
} RestServerOptions;

RestVerifyClient rest_verify_client_from_string(const char *s); /* case-insensitive */

struct Config;
/* rest_server_options_from_config - the options for the restapi section of c: strings are borrowed from
 * c (which must outlive the options), the extra-headers array is owned (rest_server_options_done()).
 * Logs what it cannot honour (a bad verify_client). */
int rest_server_options_from_config(const struct Config *c, RestServerOptions *ret);
void rest_server_options_done(RestServerOptions *o);

typedef struct RestServer RestServer;

/* rest_server_new - binds, and starts serving on e. Nothing in o is referenced after it returns. The
 * snapshot is read (never written) on every request and must outlive the server (or be replaced with
 * rest_server_set_snapshot()). Logs its errors. */
int rest_server_new(sd_event *e, const RestServerOptions *o, const NodeSnapshot *snapshot, RestServer **ret);
/* rest_server_reconfigure - applies o (a reloaded restapi section) to a running server: authentication,
 * allowlist and extra headers at once; a changed listen address, certificate, key, CA or verify_client
 * starts a new listener from the event loop (not from inside a request), which takes the bound socket
 * over when the address is the same, while the old one finishes its connections. Whatever cannot be
 * applied is logged and the server keeps serving as before. Returns 1 when a new listener is on its
 * way, 0 when none is needed, < 0 when o could not be used (nothing changed, or only the access
 * settings). */
int rest_server_reconfigure(RestServer *s, const RestServerOptions *o);
RestServer *rest_server_free(RestServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RestServer *, rest_server_free);

void rest_server_set_snapshot(RestServer *s, const NodeSnapshot *snapshot);
void rest_server_set_intent_handler(RestServer *s, const RestIntentHandler *h, void *userdata);
/* rest_server_port - the port actually bound (useful with listen_port 0). */
uint16_t rest_server_port(const RestServer *s);
