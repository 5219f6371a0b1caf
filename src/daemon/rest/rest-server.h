/* SPDX-License-Identifier: MIT */
/*
 * The REST server's state, private to rest.c (libmicrohttpd glue, access control, replies) and
 * rest_connections.c (connection limits and timeouts). The route handlers see only rest-internal.h.
 */
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "rest-internal.h"

/* REST traffic runs below the HA tick and the lease keep-alive (style.md §7). */
#define REST_EVENT_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)
/* Defaults for RestServerOptions zero values (docs/config.md, restapi). */
#define REST_CONNECTION_LIMIT_DEFAULT   256U
#define REST_PER_IP_LIMIT_DEFAULT       64U
#define REST_CONNECTION_TIMEOUT_DEFAULT (10 * USEC_PER_SEC)
#define REST_IDLE_TIMEOUT_DEFAULT       (5 * USEC_PER_SEC)
#define REST_BODY_MAX_DEFAULT           (1024U * 1024U)
/* Connections MHD may hold beyond connection_limit (and per_ip_connection_limit). Each new connection
 * over a limit makes us shut the oldest idle one down, but MHD counts that one until its next run
 * releases it: without room above the limit MHD would take its listen socket out of epoll (and refuse
 * newcomers) at every eviction. The room is bounded, so MHD's own limits stay the hard cap when every
 * connection is busy. */
#define REST_CONNECTION_SPARE 32U
/* Descriptors the rest of the daemon may hold (etcd, PostgreSQL, children's pipes, logs, sd-event). */
#define REST_DESCRIPTORS_OTHER 128U
/* Per-connection memory pool: request line, headers and the reply headers must fit in it; larger
 * headers are refused by MHD with 431. */
#define REST_CONNECTION_MEMORY_LIMIT (32U * 1024U)
/* Requests waiting for the HA engine at once; more are refused with 503 (each holds a connection). */
#define REST_PENDING_MAX 32U
/* A TLS certificate, key or CA file larger than this is not a PEM file we want. */
#define REST_TLS_FILE_MAX (1024U * 1024U)

/* One TCP connection, tracked so that a client trickling a request byte by byte (which resets MHD's idle
 * timeout every time) is still cut off once the request has taken longer than request_timeout, a client
 * that sends nothing is cut off after idle_timeout, and so that the oldest idle connections can be shut
 * down first when a limit is reached (connections_evict()). */
typedef struct RestConnection RestConnection;
struct RestConnection {
        int fd;
        usec_t accepted; /* CLOCK_MONOTONIC: eviction order, oldest first */
        usec_t deadline; /* CLOCK_MONOTONIC; USEC_INFINITY while the engine holds its request */
        int family;      /* AF_INET (IPv4-mapped IPv6 included) or AF_INET6; 0: unknown */
        uint8_t addr[16];
        bool allowlisted; /* the client is on restapi.allowlist (checked at accept): evicted last */
        bool in_request;  /* a request line has arrived and its reply is not finished */
        bool busy;        /* that request arrived whole: a handler, the engine or the reply has it */
        bool closing;     /* shut down by us; MHD releases it on its next run */
        RestConnection *next, *prev;
};

typedef struct RestNetwork {
        int family;
        uint8_t addr[16];
        unsigned prefix;
} RestNetwork;

/* restapi.allowlist: networks written as addresses or CIDRs, and host names. */
typedef struct RestAllowlist {
        RestNetwork *networks;
        size_t n_networks;
        char **names;    /* host names, allowed by what they resolve to */
        bool configured; /* an allowlist was given: a client no entry matches is refused, even when no
                          * entry is usable */
        bool include_members;
} RestAllowlist;

/* One libmicrohttpd daemon and what it was started with. A reload that changes the listen address or the
 * TLS material starts a new one; the old one stops accepting and finishes its connections. */
typedef struct RestListener {
        struct MHD_Daemon *daemon;
        sd_event_source *io_source;
        char *host;    /* restapi.listen host as configured */
        uint16_t port; /* as configured (0: any free port) */
        uint16_t bound_port;
        bool tls;
        RestVerifyClient verify_client;
        char *tls_cert, *tls_key, *tls_trust, *key_password; /* kept alive while MHD runs */
        unsigned connection_limit; /* MHD's limits are these plus REST_CONNECTION_SPARE */
        unsigned per_ip_limit;
        usec_t connection_timeout;
        usec_t drain_until; /* the replaced listener: stopped then at the latest */
} RestListener;

typedef struct RestName RestName;

struct RestServer {
        sd_event *event;
        RestListener listener; /* serving */
        RestListener draining; /* replaced by a reload, finishing its connections (daemon NULL: none) */
        RestListener next;     /* asked for by a reload, started by restart_source */
        bool restart_wanted;
        sd_event_source *restart_source;
        sd_event_source *timer_source;
        RestName *names;        /* allowlist and member host names with their addresses */
        struct gaicb **zombies; /* cancelled lookups glibc has not finished yet */
        size_t n_zombies;
        sd_event_source *resolve_source;
        const NodeSnapshot *snapshot;
        const RestIntentHandler *intent;
        void *intent_userdata;
        char *auth_key; /* base64("user:password"), compared with what follows "Basic " */
        RestAllowlist allowlist;
        char **extra_headers;
        size_t n_extra_headers;
        size_t body_max;
        RestCall *pending;
        unsigned n_pending;
        usec_t request_timeout;    /* a request must arrive whole within this (slow-client cut-off) */
        usec_t idle_timeout;       /* a connection must start a request within this */
        unsigned connection_limit; /* live connections; one more evicts the oldest idle one */
        unsigned per_ip_limit;     /* the same for one client address */
        RestConnection *connections;
        unsigned n_live; /* connections not closing */
        /* on_accept_policy()'s verdict for the client it saw last, for on_connection(): MHD may still refuse
         * that socket (at its own limits), so the address says whom the verdict is about. */
        struct {
                int family;
                uint8_t addr[16];
                bool allowlisted;
        } accepted;
        sd_event_source *reaper_source;
        bool leader_checks_need_postgres;
        bool starting; /* inside MHD_start_daemon() */
        /* A connection closed during MHD_run(): MHD must run once more (see server_run()). */
        bool connection_closed;
};

/* rest.c */
int rest_sockaddr_to_address(const struct sockaddr *sa, int *ret_family, uint8_t ret_addr[static 16]);
bool rest_address_allowed(RestServer *s, const struct sockaddr *sa);
bool rest_allowlist_in_use(const RestServer *s);

/* rest_connections.c: MHD's accept policy and connection notifications, the reaper timer's callback, and
 * what the request handlers tell about a connection (a request under way; held by the engine). */
enum MHD_Result rest_on_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void rest_on_connection(
        void *cls,
        struct MHD_Connection *connection,
        void **socket_context,
        enum MHD_ConnectionNotificationCode toe);
int rest_on_reaper(sd_event_source *source, uint64_t usec, void *userdata);
void rest_connection_set_state(RestServer *s, struct MHD_Connection *connection, bool in_request);
void rest_connection_hold(struct MHD_Connection *connection);
