/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by rest.c (libmicrohttpd glue, access control, replies), rest_routes.c (the route
 * table and handlers) and rest_json.c (Python-compatible text). Not a public interface.
 */
#pragma once

#include <microhttpd.h>

#include "pgha/rest.h"

/* A growable string; an allocation failure sticks in .failed and later appends are dropped. */
typedef struct StrBuf {
        char *buf;
        size_t len;
        size_t cap;
        bool failed;
} StrBuf;

int strbuf_grow(StrBuf *b, size_t more);
void strbuf_putn(StrBuf *b, const char *s, size_t n);
void strbuf_puts(StrBuf *b, const char *s);
void strbuf_putc(StrBuf *b, char c);
void strbuf_printf(StrBuf *b, const char *fmt, ...) _printf_(2, 3);
void strbuf_done(StrBuf *b);

/* str() of the Python value json.loads() gives for j (True, None, 1.5, ['a'], the string itself). */
char *python_str(const cJSON *j);
/* Appends a number as Python prints it (json: NaN/Infinity spelled as json.dumps does). */
void format_number(StrBuf *b, double d, bool json);
bool utf8_is_valid(const char *s, size_t len);

typedef struct RestRequest RestRequest;
typedef void (*RestHandler)(RestRequest *req);

typedef enum RestBodyMode {
        REST_BODY_NONE,    /* the body is not read (and not required) */
        REST_BODY_COLLECT, /* the body is collected (up to body_max) for the handler to parse */
} RestBodyMode;

/* One row of the route table: a method plus the first path segment selects a handler, as Patroni's
 * do_<METHOD>_<segment> dispatch does. */
typedef struct RestRoute {
        const char *method;
        const char *segment; /* first path segment, "" for none */
        RestHandler handler;
        bool needs_auth; /* check_access: allowlist, client certificate, basic auth */
        RestBodyMode body;
} RestRoute;

/* rest_route_find - the route for method and path, or NULL (generic health handler for GET, HEAD and
 * OPTIONS; 501 for anything else). */
const RestRoute *rest_route_find(const char *method, const char *path);
/* The generic GET/HEAD/OPTIONS handler (health checks). */
void rest_handle_health(RestRequest *req);

typedef enum RestReplyKind {
        REST_REPLY_TEXT,        /* text/html body */
        REST_REPLY_JSON,        /* application/json body */
        REST_REPLY_PLAIN,       /* text/plain body (/metrics) */
        REST_REPLY_ERROR,       /* Python send_error() HTML page */
        REST_REPLY_STATUS_ONLY, /* status line only (OPTIONS, HEAD, /liveness, /readiness) */
} RestReplyKind;

struct RestCall {
        RestRequest *request;
        bool replied;
        bool submitted; /* handed to the intent handler and not answered yet */
        RestCall *pending_next, *pending_prev;
};

struct RestRequest {
        RestServer *server;
        struct MHD_Connection *connection;
        char *method;
        char *path;  /* raw path, no query string */
        char *query; /* raw query string after '?', or NULL */
        const RestRoute *route;
        bool started;
        bool suspended;
        bool queued;
        bool has_content_length;
        bool keep_alive; /* an HTTP/1.1 client that did not ask to close */
        uint64_t content_length;
        StrBuf body;
        bool body_too_large;
        RestCall call;
        usec_t start;

        /* the reply, once decided */
        unsigned status;
        RestReplyKind reply_kind;
        char *reply_body;
        size_t reply_size;
        char *www_authenticate; /* extra header for 401 */
};

/* Accessors for handlers (rest.c). */
bool rest_request_leader_needs_postgres(RestRequest *req);
const NodeSnapshot *rest_request_snapshot(RestRequest *req);
usec_t rest_request_now(RestRequest *req);
usec_t rest_request_realtime(RestRequest *req);
/* Parses the collected body as Patroni's _read_json_content(): on failure it has already replied
 * (411/400) and returns negative; *ret is NULL for an absent/empty optional body. */
int rest_request_json(RestRequest *req, bool optional, cJSON **ret);
/* Hands a validated intent to the engine, or answers fallback_status/fallback_text (text) or
 * fallback_status (HTML error page, when fallback_text is NULL) if no engine is registered. */
void rest_request_submit(
        RestRequest *req, const RestIntent *intent, unsigned fallback_status, const char *fallback_text);

void rest_reply_text(RestRequest *req, unsigned status, const char *text);
void rest_reply_json(RestRequest *req, unsigned status, const cJSON *j);
void rest_reply_plain(RestRequest *req, unsigned status, char *body_take, size_t size);
void rest_reply_error(RestRequest *req, unsigned status, const char *message);
void rest_reply_status(RestRequest *req, unsigned status);

static inline void rest_json_deletep(cJSON **p) {
        cJSON_Delete(*p);
        *p = NULL;
}
