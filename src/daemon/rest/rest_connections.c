/* SPDX-License-Identifier: MIT */
/*
 * Slow, idle and surplus clients of the REST server: every TCP connection is tracked from accept to
 * close so that a client trickling a request is cut off after request_timeout, one that sends nothing
 * after idle_timeout, and so that at the global or the per-client limit the oldest idle connection is
 * shut down first and a new health check always gets through (docs/rest-api.md).
 */
#include <sys/socket.h>

#include "pgha/log.h"
#include "rest-internal.h"
#include "rest-server.h"

static void reaper_arm(RestServer *s) {
        usec_t next = USEC_INFINITY;

        for (RestConnection *c = s->connections; c; c = c->next)
                next = MIN(next, c->deadline);
        if (next == USEC_INFINITY) {
                (void)sd_event_source_set_enabled(s->reaper_source, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time(s->reaper_source, next);
        (void)sd_event_source_set_enabled(s->reaper_source, SD_EVENT_ONESHOT);
}

/* connection_close - shuts c's socket down (unless !shut: the client already closed it); MHD sees it
 * closed on its next run (the shutdown wakes its epoll set) and releases the connection itself. Never
 * closes the descriptor, which MHD owns. */
static void connection_close(RestServer *s, RestConnection *c, bool shut) {
        if (c->closing)
                return;
        if (shut)
                (void)shutdown(c->fd, SHUT_RDWR);
        c->closing = true;
        c->deadline = USEC_INFINITY;
        s->n_live--;
}

/* A connection that sent nothing within idle_timeout, or whose request did not arrive whole within
 * request_timeout, is shut down. */
int rest_on_reaper(sd_event_source *source, uint64_t usec, void *userdata) {
        RestServer *s = userdata;
        uint64_t now = 0;

        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        for (RestConnection *c = s->connections; c; c = c->next)
                if (c->deadline <= now) {
                        log_debug(
                                "REST: closing a connection that %s",
                                c->in_request ? "did not send a whole request in time"
                                              : "sent no request in time");
                        connection_close(s, c, /* shut= */ true);
                }
        reaper_arm(s);
        return 0;
}

static RestConnection *connection_of(struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static bool connection_same_client(const RestConnection *a, const RestConnection *b) {
        return a->family != 0 && a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* rest_connection_set_state - a request started (in_request) or finished on the connection; its deadline
 * becomes now + request_timeout or now + idle_timeout. */
void rest_connection_set_state(RestServer *s, struct MHD_Connection *connection, bool in_request) {
        RestConnection *c = connection_of(connection);
        uint64_t now = 0;

        if (!c || c->closing)
                return;
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        c->in_request = in_request;
        c->busy = false;
        c->deadline = now + (in_request ? s->request_timeout : s->idle_timeout);
        if (sd_event_source_get_enabled(s->reaper_source, NULL) == 0)
                reaper_arm(s);
}

/* rest_connection_hold - the connection's request arrived whole and the engine or the reply has it: no
 * deadline of ours until the reply is sent, and not evicted. */
void rest_connection_hold(struct MHD_Connection *connection) {
        RestConnection *c = connection_of(connection);

        if (c && !c->closing) {
                c->busy = true;
                c->deadline = USEC_INFINITY;
        }
}

/* connections_evict - shuts down the oldest connection that is not busy (idle, or still receiving its
 * request: a slowloris is idle in this sense), among those of
 * peer's client address (peer NULL: among all), preferring clients that are not on the allowlist.
 * The newcomer itself may be the one (then it is refused). Returns false when every candidate is busy:
 * MHD's own limits (the limit plus REST_CONNECTION_SPARE) then refuse further clients. */
static bool connections_evict(RestServer *s, const RestConnection *peer) {
        RestConnection *victim = NULL;

        /* The list runs from the newest to the oldest: among equal times (one loop iteration accepts
         * several connections) "<=" picks the oldest. */
        for (RestConnection *c = s->connections; c; c = c->next) {
                if (c->closing || c->busy || (peer && !connection_same_client(c, peer)))
                        continue;
                if (!victim || (victim->allowlisted && !c->allowlisted) ||
                    (victim->allowlisted == c->allowlisted && c->accepted <= victim->accepted))
                        victim = c;
        }
        if (!victim)
                return false;
        log_debug(
                "REST: %s connection limit reached, closing the oldest idle connection",
                peer ? "per-client" : "global");
        connection_close(s, victim, /* shut= */ true);
        return true;
}

/* connections_enforce_limits - after c arrived: the per-client limit, then the global one. Idle
 * connections make room for new ones, so a health check always gets through while others only hold
 * connections open. */
static void connections_enforce_limits(RestServer *s, const RestConnection *c) {
        unsigned same = 0;

        if (c->family != 0) {
                for (RestConnection *i = s->connections; i; i = i->next)
                        if (!i->closing && connection_same_client(i, c))
                                same++;
                for (; same > s->per_ip_limit; same--)
                        if (!connections_evict(s, c))
                                break;
        }
        while (s->n_live > s->connection_limit)
                if (!connections_evict(s, NULL))
                        break;
}

/* peer_has_closed - the client already closed (a FIN and nothing else, or a reset): nothing to answer. */
static bool peer_has_closed(int fd) {
        char b;
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

        return n == 0 || (n < 0 && (errno == ECONNRESET || errno == ENOTCONN));
}

/* rest_on_accept_policy - MHD's accept policy callback: the allowlist is checked once, at accept time, and
 * the verdict travels to rest_on_connection() (MHD calls it next for the same socket, on the same thread).
 * Nobody is refused here: Patroni's allowlist guards the write endpoints only (check_access() keeps doing
 * that per request), and HAProxy's health checks must still pass from anywhere. The verdict protects
 * allowlisted clients' connections from eviction while others exist. */
enum MHD_Result rest_on_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
        RestServer *s = cls;

        if (rest_sockaddr_to_address(addr, &s->accepted.family, s->accepted.addr) < 0)
                s->accepted.family = 0;
        s->accepted.allowlisted = rest_allowlist_in_use(s) && rest_address_allowed(s, addr);
        return MHD_YES;
}

void rest_on_connection(
        void *cls,
        struct MHD_Connection *connection,
        void **socket_context,
        enum MHD_ConnectionNotificationCode toe) {
        RestServer *s = cls;
        RestConnection *c;

        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
                const union MHD_ConnectionInfo *ca =
                        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                uint64_t now = 0;

                c = calloc(1, sizeof(RestConnection));
                if (!c || !ci) {
                        free(c);
                        return;
                }
                (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
                c->fd = ci->connect_fd;
                c->accepted = now;
                c->deadline = now + s->idle_timeout;
                if (!ca || rest_sockaddr_to_address(ca->client_addr, &c->family, c->addr) < 0)
                        c->family = 0;
                c->allowlisted = s->accepted.allowlisted && s->accepted.family == c->family &&
                        memcmp(s->accepted.addr, c->addr, sizeof c->addr) == 0;
                c->next = s->connections;
                if (s->connections)
                        s->connections->prev = c;
                s->connections = c;
                s->n_live++;
                *socket_context = c;
                if (peer_has_closed(c->fd))
                        /* A connect-and-close flood: gone before we saw it, it must not count against
                         * the limits (and make a live client's connection the oldest idle one). MHD
                         * reads the end of it in this run. */
                        connection_close(s, c, /* shut= */ false);
                else
                        connections_enforce_limits(s, c);
                if (sd_event_source_get_enabled(s->reaper_source, NULL) == 0)
                        reaper_arm(s);
                return;
        }

        s->connection_closed = true;
        c = *socket_context;
        if (!c)
                return;
        if (!c->closing)
                s->n_live--;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        free(c);
        *socket_context = NULL;
}
