/* SPDX-License-Identifier: MIT */
/*
 * The REST server: libmicrohttpd in external-epoll mode driven by the daemon's sd-event loop (MHD's epoll
 * descriptor is one EPOLLIN io source, one timer follows MHD_get_timeout() after every MHD_run()), with
 * access control (allowlist, basic authentication, client certificates), bounded request bodies, and
 * replies shaped like Patroni's (text/html texts, JSON documents, status-only lines, Python's HTML error
 * page).
 *
 * A reload (rest_server_reconfigure) swaps the access settings at once and, when the address or TLS
 * material changed, starts a new MHD daemon from a defer event while the old one drains its connections.
 * Allowlist and member host names are resolved with getaddrinfo_a() (glibc's helper thread), polled.
 *
 * Invariant: nothing here blocks or waits for another component. Requests that need the HA engine are
 * suspended (MHD_suspend_connection) and resumed when the engine answers; every suspended connection is
 * resumed before its MHD daemon is stopped.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgha/fileio.h"
#include "pgha/log.h"
#include "pgha/rest.h"
#include "rest-internal.h"
#include "rest-server.h"

/* ==== Small helpers ==== */

static char *base64_encode(const char *in) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t n = strlen(in), o = 0;
        char *out = malloc((n + 2) / 3 * 4 + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)(unsigned char)in[i + 1] << 8;
                if (i + 2 < n)
                        v |= (unsigned char)in[i + 2];
                out[o++] = tbl[(v >> 18) & 63];
                out[o++] = tbl[(v >> 12) & 63];
                out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < n ? tbl[v & 63] : '=';
        }
        out[o] = '\0';
        return out;
}

/* Constant-time comparison (hmac.compare_digest): time depends on the lengths only. */
static bool secure_streq(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        unsigned char d = la != lb;

        for (size_t i = 0; i < la; i++)
                d |= (unsigned char)(a[i] ^ b[lb ? i % lb : 0]);
        return d == 0;
}

/* Parses "10.0.0.0/8", "127.0.0.1", "::1", "fe80::/10" (host bits allowed, as ip_network(v, False)). */
static int network_parse(const char *s, RestNetwork *ret) {
        _cleanup_free_ char *addr = strdup(s);
        RestNetwork n = {};
        char *slash;

        if (!addr)
                return -ENOMEM;
        slash = strchr(addr, '/');
        if (slash)
                *slash = '\0';
        if (inet_pton(AF_INET, addr, n.addr) == 1) {
                n.family = AF_INET;
                n.prefix = 32;
        } else if (inet_pton(AF_INET6, addr, n.addr) == 1) {
                n.family = AF_INET6;
                n.prefix = 128;
        } else
                return -EINVAL;
        if (slash) {
                char *end;
                unsigned long p = strtoul(slash + 1, &end, 10);
                if (*end || end == slash + 1 || p > n.prefix)
                        return -EINVAL;
                n.prefix = (unsigned)p;
        }
        *ret = n;
        return 0;
}

static bool network_contains(const RestNetwork *n, int family, const uint8_t *addr) {
        if (n->family != family)
                return false;
        unsigned full = n->prefix / 8, bits = n->prefix % 8;
        if (memcmp(n->addr, addr, full) != 0)
                return false;
        if (bits == 0)
                return true;
        uint8_t mask = (uint8_t)(0xff << (8 - bits));
        return (n->addr[full] & mask) == (addr[full] & mask);
}

static void names_free(char **names) {
        for (char **n = names; n && *n; n++)
                free(*n);
        free(names);
}

/* A DNS host name (RFC 1123 letters, digits, '-' and dots; labels of 1 to 63 characters). */
static bool hostname_is_valid(const char *s) {
        size_t label = 0, n = strlen(s);

        if (n == 0 || n > 253)
                return false;
        for (; *s; s++) {
                if (*s == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                } else if (
                        (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                        *s == '-' || *s == '_') {
                        if (++label > 63)
                                return false;
                } else
                        return false;
        }
        return true;
}

/* ==== Host names: resolved without blocking ==== */

/* getaddrinfo_a() runs the lookup on glibc's helper thread; the loop polls for its end (lookups are rare:
 * a reload, a new member). A lookup that cannot be cancelled is kept until it ends: its gaicb is written
 * by that thread. */
#define REST_RESOLVE_POLL (20 * USEC_PER_MSEC)
/* A member's host name is looked up again when its answer is older than this. */
#define REST_NAME_TTL (60 * USEC_PER_SEC)
/* Member host names remembered at once. */
#define REST_NAMES_MAX 64U

struct RestName {
        char *name;
        RestNetwork *addrs;
        size_t n_addrs;
        bool allowlist; /* a restapi.allowlist entry */
        bool member;    /* a member's api_url host */
        bool resolved;  /* addrs holds an answer (possibly empty) */
        usec_t resolved_at;
        struct gaicb *gai; /* the lookup in flight */
        RestName *next;
};

static void gai_free(struct gaicb *g) {
        if (!g)
                return;
        if (g->ar_result)
                freeaddrinfo(g->ar_result);
        free((char *)g->ar_name);
        free((void *)g->ar_request);
        free(g);
}

/* Forgets a lookup: cancelled, or parked until glibc's thread is done with it. */
static void name_abandon_lookup(RestServer *s, RestName *n) {
        struct gaicb *g = TAKE_PTR(n->gai);
        struct gaicb **z;

        if (!g)
                return;
        if (gai_cancel(g) == EAI_CANCELED || gai_error(g) != EAI_INPROGRESS) {
                gai_free(g);
                return;
        }
        z = reallocarray(s->zombies, s->n_zombies + 1, sizeof(struct gaicb *));
        if (!z)
                return; /* leaked rather than freed under glibc's feet */
        s->zombies = z;
        s->zombies[s->n_zombies++] = g;
}

static RestName *name_free(RestServer *s, RestName *n) {
        name_abandon_lookup(s, n);
        free(n->name);
        free(n->addrs);
        return mfree(n);
}

static void resolve_arm(RestServer *s) {
        bool pending = s->n_zombies > 0;

        for (RestName *n = s->names; n && !pending; n = n->next)
                pending = n->gai;
        if (!pending) {
                (void)sd_event_source_set_enabled(s->resolve_source, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time_relative(s->resolve_source, REST_RESOLVE_POLL);
        (void)sd_event_source_set_enabled(s->resolve_source, SD_EVENT_ONESHOT);
}

static void name_lookup_start(RestServer *s, RestName *n) {
        struct gaicb *g;
        struct addrinfo *hints;
        struct gaicb *list[1];
        int r;

        if (n->gai || !s->resolve_source)
                return;
        g = calloc(1, sizeof(struct gaicb));
        hints = calloc(1, sizeof(struct addrinfo));
        if (!g || !hints) {
                free(g);
                free(hints);
                log_oom();
                return;
        }
        hints->ai_family = AF_UNSPEC;
        hints->ai_socktype = SOCK_STREAM;
        hints->ai_protocol = IPPROTO_TCP;
        g->ar_request = hints;
        g->ar_name = strdup(n->name);
        if (!g->ar_name) {
                gai_free(g);
                log_oom();
                return;
        }
        list[0] = g;
        r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (r != 0) {
                log_error("Failed to resolve %s: %s", n->name, gai_strerror(r));
                gai_free(g);
                return;
        }
        n->gai = g;
        resolve_arm(s);
}

static void name_lookup_done(RestServer *s, RestName *n) {
        struct gaicb *g = TAKE_PTR(n->gai);
        int r = gai_error(g);
        size_t count = 0;
        RestNetwork *addrs = NULL;

        if (r != 0)
                log_error("Failed to resolve %s: %s", n->name, gai_strerror(r));
        else {
                for (const struct addrinfo *a = g->ar_result; a; a = a->ai_next)
                        count++;
                addrs = calloc(MAX(count, 1U), sizeof(RestNetwork));
                count = 0;
                for (const struct addrinfo *a = addrs ? g->ar_result : NULL; a; a = a->ai_next) {
                        RestNetwork *x = &addrs[count];
                        if (a->ai_family == AF_INET) {
                                x->family = AF_INET;
                                x->prefix = 32;
                                memcpy(x->addr,
                                       &((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr,
                                       4);
                        } else if (a->ai_family == AF_INET6) {
                                x->family = AF_INET6;
                                x->prefix = 128;
                                memcpy(x->addr,
                                       &((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr,
                                       16);
                        } else
                                continue;
                        count++;
                }
                log_debug("REST: %s resolved to %zu addresses", n->name, count);
        }
        gai_free(g);
        /* A failed lookup of a name resolved before keeps the old answer until the next try. */
        if (r == 0 || !n->resolved) {
                free(n->addrs);
                n->addrs = addrs;
                n->n_addrs = count;
                n->resolved = true;
        } else
                free(addrs);
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &n->resolved_at);
}

static int on_resolve(sd_event_source *source, uint64_t usec, void *userdata) {
        RestServer *s = userdata;

        for (RestName *n = s->names; n; n = n->next)
                if (n->gai && gai_error(n->gai) != EAI_INPROGRESS)
                        name_lookup_done(s, n);
        for (size_t i = 0; i < s->n_zombies;)
                if (gai_error(s->zombies[i]) != EAI_INPROGRESS) {
                        gai_free(s->zombies[i]);
                        s->zombies[i] = s->zombies[--s->n_zombies];
                } else
                        i++;
        resolve_arm(s);
        return 0;
}

static RestName *name_find(RestServer *s, const char *name) {
        for (RestName *n = s->names; n; n = n->next)
                if (strcasecmp(n->name, name) == 0)
                        return n;
        return NULL;
}

static RestName *name_add(RestServer *s, const char *name) {
        RestName *n = calloc(1, sizeof(RestName));

        if (!n || !(n->name = strdup(name))) {
                free(n);
                return NULL;
        }
        n->next = s->names;
        s->names = n;
        return n;
}

static bool name_matches(const RestName *n, int family, const uint8_t *addr) {
        for (size_t i = 0; i < n->n_addrs; i++)
                if (network_contains(&n->addrs[i], family, addr))
                        return true;
        return false;
}

/* allowlist_resolve - looks the allowlist's host names up again (Patroni resolves them when it loads
 * the configuration); until an answer arrives a name allows nobody. Names no longer listed are dropped. */
static void allowlist_resolve(RestServer *s) {
        RestName **p = &s->names;

        for (RestName *n = s->names; n; n = n->next)
                n->allowlist = false;
        for (char **a = s->allowlist.names; a && *a; a++) {
                RestName *n = name_find(s, *a) ?: name_add(s, *a);
                if (!n) {
                        log_oom();
                        continue;
                }
                n->allowlist = true;
                name_abandon_lookup(s, n);
                name_lookup_start(s, n);
        }
        /* keep member names (they have their own TTL), drop names no longer used */
        while (*p) {
                RestName *n = *p;
                if (!n->allowlist && !n->member) {
                        *p = n->next;
                        (void)name_free(s, n);
                } else
                        p = &n->next;
        }
}

/* A member's api_url host name: true if it resolved to addr; starts or refreshes the lookup otherwise
 * (the request is refused until the answer is there). */
static bool member_name_matches(RestServer *s, const char *name, int family, const uint8_t *addr) {
        RestName *n = name_find(s, name);
        uint64_t now = 0;

        if (!n) {
                size_t count = 0;
                for (RestName *m = s->names; m; m = m->next)
                        count++;
                if (count >= REST_NAMES_MAX)
                        return false;
                n = name_add(s, name);
                if (!n)
                        return false;
        }
        n->member = true;
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (!n->allowlist && (!n->resolved || now - n->resolved_at > REST_NAME_TTL))
                name_lookup_start(s, n);
        return name_matches(n, family, addr);
}

static void allowlist_resolve_cancel(RestServer *s) {
        while (s->names) {
                RestName *n = s->names;
                s->names = n->next;
                (void)name_free(s, n);
        }
        /* glibc's thread may still write to these: leaked on purpose at shutdown */
        s->zombies = mfree(s->zombies);
        s->n_zombies = 0;
        s->resolve_source = sd_event_source_disable_unref(s->resolve_source);
}

/* allowlist_include_members: is addr the host of one of the members' api_url in the cached cluster view?
 * A host name counts once its lookup (started here, see member_name_matches()) has answered. */
static bool member_address_matches(RestServer *s, int family, const uint8_t *addr) {
        const cJSON *members = cJSON_GetObjectItemCaseSensitive(s->snapshot->cluster, "members"), *m;

        cJSON_ArrayForEach (m, members) {
                const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "api_url");
                const char *host, *end;
                char buf[64];
                RestNetwork n;

                if (!cJSON_IsString(u))
                        continue;
                host = strstr(u->valuestring, "://");
                host = host ? host + 3 : u->valuestring;
                if (*host == '[') {
                        host++;
                        end = strchr(host, ']');
                } else
                        end = host + strcspn(host, ":/");
                if (!end || (size_t)(end - host) >= sizeof buf)
                        continue;
                memcpy(buf, host, (size_t)(end - host));
                buf[end - host] = '\0';
                if (network_parse(buf, &n) == 0) {
                        if (network_contains(&n, family, addr))
                                return true;
                } else if (hostname_is_valid(buf) && member_name_matches(s, buf, family, addr))
                        return true;
        }
        return false;
}

/* rest_sockaddr_to_address - the family and address bytes of sa, IPv4-mapped IPv6 addresses as IPv4. Returns
 * 0, or -EAFNOSUPPORT for anything but IPv4 and IPv6. */
int rest_sockaddr_to_address(const struct sockaddr *sa, int *ret_family, uint8_t ret_addr[static 16]) {
        if (!sa)
                return -EAFNOSUPPORT;
        memset(ret_addr, 0, 16);
        if (sa->sa_family == AF_INET) {
                *ret_family = AF_INET;
                memcpy(ret_addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
                return 0;
        }
        if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        *ret_family = AF_INET;
                        memcpy(ret_addr, a6->s6_addr + 12, 4);
                } else {
                        *ret_family = AF_INET6;
                        memcpy(ret_addr, a6->s6_addr, 16);
                }
                return 0;
        }
        return -EAFNOSUPPORT;
}

bool rest_address_allowed(RestServer *s, const struct sockaddr *sa) {
        uint8_t addr[16];
        int family;

        if (rest_sockaddr_to_address(sa, &family, addr) < 0)
                return false;
        for (size_t i = 0; i < s->allowlist.n_networks; i++)
                if (network_contains(&s->allowlist.networks[i], family, addr))
                        return true;
        for (RestName *n = s->names; n; n = n->next)
                if (n->allowlist && name_matches(n, family, addr))
                        return true;
        if (s->allowlist.include_members && s->snapshot)
                return member_address_matches(s, family, addr);
        return false;
}

static bool client_allowed(RestServer *s, struct MHD_Connection *c) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        return rest_address_allowed(s, ci ? ci->client_addr : NULL);
}

bool rest_allowlist_in_use(const RestServer *s) {
        return s->allowlist.configured || s->allowlist.include_members;
}

/* The listener a connection came through (the draining one during a reload). */
static const RestListener *listener_of(RestServer *s, struct MHD_Connection *c) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

        if (ci && s->draining.daemon && ci->daemon == s->draining.daemon)
                return &s->draining;
        return &s->listener;
}

/* allowlist_build - o's allowlist: addresses and CIDRs are parsed, anything else is taken as a host
 * name. An entry that is neither (a bad CIDR) is logged and skipped, as Patroni skips it. */
static int allowlist_build(const RestServerOptions *o, RestAllowlist *ret) {
        RestAllowlist a = {
                .configured = o->n_allowlist > 0,
                .include_members = o->allowlist_include_members,
        };
        size_t n_names = 0;
        int r;

        if (o->n_allowlist > 0) {
                a.networks = calloc(o->n_allowlist, sizeof(RestNetwork));
                a.names = calloc(o->n_allowlist + 1, sizeof(char *));
                if (!a.networks || !a.names)
                        goto oom;
        }
        for (size_t i = 0; i < o->n_allowlist; i++) {
                const char *v = o->allowlist[i];
                r = network_parse(v, &a.networks[a.n_networks]);
                if (r == -ENOMEM)
                        goto oom;
                if (r >= 0) {
                        a.n_networks++;
                        continue;
                }
                if (!hostname_is_valid(v) || strchr(v, '/') || strspn(v, "0123456789.") == strlen(v)) {
                        log_error(
                                "Invalid value \"%s\" in the restapi.allowlist (not an IP address, network "
                                "or host name), ignoring",
                                v);
                        continue;
                }
                a.names[n_names] = strdup(v);
                if (!a.names[n_names])
                        goto oom;
                n_names++;
        }
        if (a.configured && a.n_networks == 0 && n_names == 0)
                log_warning(
                        "restapi.allowlist has no usable entry: every client is refused on the write "
                        "endpoints%s",
                        a.include_members ? " except the members" : "");
        *ret = a;
        return 0;
oom:
        free(a.networks);
        names_free(a.names);
        return log_oom();
}

/* The client sent a certificate that the TLS layer accepted. MHD exposes only the gnutls session; the
 * two gnutls calls are looked up in the already loaded libgnutls (libmicrohttpd's own dependency) so the
 * build needs no gnutls development files. */
static bool tls_has_peer_certificate(struct MHD_Connection *c) {
        typedef const void *(*get_peers_t)(void *session, unsigned *list_size);
        typedef int (*verify_peers2_t)(void *session, unsigned *status);
        static get_peers_t get_peers = NULL;
        static verify_peers2_t verify_peers2 = NULL;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        unsigned n = 0, status = 0;

        if (!ci || !ci->tls_session)
                return false;
        if (!get_peers)
                get_peers = (get_peers_t)dlsym(RTLD_DEFAULT, "gnutls_certificate_get_peers");
        if (!verify_peers2)
                verify_peers2 = (verify_peers2_t)dlsym(RTLD_DEFAULT, "gnutls_certificate_verify_peers2");
        if (!get_peers || !verify_peers2)
                return false;
        if (!get_peers(ci->tls_session, &n) || n == 0)
                return false;
        return verify_peers2(ci->tls_session, &status) == 0 && status == 0;
}

/* ==== Replies ==== */

const NodeSnapshot *rest_request_snapshot(RestRequest *req) {
        static const NodeSnapshot empty = {};
        return req->server->snapshot ?: &empty;
}

bool rest_request_leader_needs_postgres(RestRequest *req) {
        return req->server->leader_checks_need_postgres;
}

usec_t rest_request_now(RestRequest *req) {
        uint64_t now = 0;
        (void)sd_event_now(req->server->event, CLOCK_MONOTONIC, &now);
        return now;
}

usec_t rest_request_realtime(RestRequest *req) {
        uint64_t now = 0;
        (void)sd_event_now(req->server->event, CLOCK_REALTIME, &now);
        return now;
}

static void
request_set_reply(RestRequest *req, unsigned status, RestReplyKind kind, char *body, size_t size) {
        free(req->reply_body);
        req->status = status;
        req->reply_kind = kind;
        req->reply_body = body;
        req->reply_size = size;
        req->call.replied = true;
}

void rest_reply_text(RestRequest *req, unsigned status, const char *text) {
        char *b = strdup(text);
        if (!b)
                return rest_reply_status(req, 500);
        request_set_reply(req, status, REST_REPLY_TEXT, b, strlen(b));
}

void rest_reply_json(RestRequest *req, unsigned status, const cJSON *j) {
        char *b = NULL;
        size_t n = 0;

        if (rest_json_dumps(j, &b, &n) < 0)
                return rest_reply_status(req, 500);
        request_set_reply(req, status, REST_REPLY_JSON, b, n);
}

void rest_reply_plain(RestRequest *req, unsigned status, char *body_take, size_t size) {
        request_set_reply(req, status, REST_REPLY_PLAIN, body_take, size);
}

void rest_reply_status(RestRequest *req, unsigned status) {
        request_set_reply(req, status, REST_REPLY_STATUS_ONLY, NULL, 0);
}

static const char *http_reason(unsigned status) {
        switch (status) {
        case 200:
                return "OK";
        case 202:
                return "Accepted";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 409:
                return "Conflict";
        case 411:
                return "Length Required";
        case 412:
                return "Precondition Failed";
        case 413:
                return "Request Entity Too Large";
        case 422:
                return "Unprocessable Entity";
        case 500:
                return "Internal Server Error";
        case 501:
                return "Not Implemented";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        default:
                return "???";
        }
}

static const char *http_explain(unsigned status) {
        switch (status) {
        case 400:
                return "Bad request syntax or unsupported method";
        case 401:
                return "No permission -- see authorization schemes";
        case 403:
                return "Request forbidden -- authorization will not help";
        case 404:
                return "Nothing matches the given URI";
        case 409:
                return "Request conflict";
        case 411:
                return "Client must specify Content-Length";
        case 412:
                return "Precondition in headers is false";
        case 413:
                return "Entity is too large";
        case 422:
                return "";
        case 500:
                return "Server got itself in trouble";
        case 501:
                return "Server does not support this operation";
        case 502:
                return "Invalid responses from another server/proxy";
        case 503:
                return "The server cannot process the request due to a high load";
        default:
                return "???";
        }
}

static void html_escape(StrBuf *b, const char *s) {
        for (; *s; s++)
                if (*s == '&')
                        strbuf_puts(b, "&amp;");
                else if (*s == '<')
                        strbuf_puts(b, "&lt;");
                else if (*s == '>')
                        strbuf_puts(b, "&gt;");
                else
                        strbuf_putc(b, *s);
}

/* rest_reply_error - Python's BaseHTTPRequestHandler.send_error() page. */
void rest_reply_error(RestRequest *req, unsigned status, const char *message) {
        StrBuf b = {};

        strbuf_printf(
                &b,
                "<!DOCTYPE HTML>\n"
                "<html lang=\"en\">\n"
                "    <head>\n"
                "        <meta charset=\"utf-8\">\n"
                "        <title>Error response</title>\n"
                "    </head>\n"
                "    <body>\n"
                "        <h1>Error response</h1>\n"
                "        <p>Error code: %u</p>\n"
                "        <p>Message: ",
                status);
        html_escape(&b, message ?: http_reason(status));
        strbuf_printf(&b, ".</p>\n        <p>Error code explanation: %u - ", status);
        html_escape(&b, http_explain(status));
        strbuf_puts(&b, ".</p>\n    </body>\n</html>\n");
        if (b.failed) {
                strbuf_done(&b);
                return rest_reply_status(req, status);
        }
        request_set_reply(req, status, REST_REPLY_ERROR, b.buf, b.len);
}

static int queue_reply(RestRequest *req) {
        struct MHD_Response *resp;
        RestServer *s = req->server;
        enum MHD_Result r;

        resp = MHD_create_response_from_buffer(
                req->reply_size, req->reply_body ?: (void *)"", MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;

        /* Patroni's server speaks HTTP/1.0 and closes the connection after each reply; so do we, except
         * that an HTTP/1.1 client (wrk, urllib3 pools, Prometheus) keeps its connection for the next
         * request of a text, JSON or plain reply: its replies carry Content-Length, which every client in
         * scope accepts. HTTP/1.0 clients (HAProxy's httpchk), status-only replies and error pages stay
         * byte for byte Patroni's. */
        bool keep = req->keep_alive &&
                (req->reply_kind == REST_REPLY_TEXT || req->reply_kind == REST_REPLY_JSON ||
                 req->reply_kind == REST_REPLY_PLAIN);
        if (!keep)
                (void)MHD_set_response_options(resp, MHD_RF_HTTP_1_0_SERVER, MHD_RO_END);

        switch (req->reply_kind) {
        case REST_REPLY_TEXT:
                (void)MHD_add_response_header(resp, "Content-Type", "text/html");
                break;
        case REST_REPLY_JSON:
                (void)MHD_add_response_header(resp, "Content-Type", "application/json");
                break;
        case REST_REPLY_PLAIN:
                (void)MHD_add_response_header(resp, "Content-Type", "text/plain");
                break;
        case REST_REPLY_ERROR:
                (void)MHD_add_response_header(resp, "Connection", "close");
                (void)MHD_add_response_header(resp, "Content-Type", "text/html;charset=utf-8");
                break;
        case REST_REPLY_STATUS_ONLY:
                break;
        }
        if (req->www_authenticate)
                (void)MHD_add_response_header(resp, "WWW-Authenticate", req->www_authenticate);
        if (req->reply_kind != REST_REPLY_STATUS_ONLY && req->reply_kind != REST_REPLY_ERROR)
                for (size_t i = 0; i < s->n_extra_headers; i++)
                        (void)MHD_add_response_header(
                                resp, s->extra_headers[2 * i], s->extra_headers[2 * i + 1]);

        r = MHD_queue_response(req->connection, req->status, resp);
        MHD_destroy_response(resp);
        req->queued = r == MHD_YES;
        if (req->queued)
                rest_connection_hold(req->connection); /* MHD's own timeout covers a slow reader */
        return r;
}

/* ==== Intents ==== */

static void pending_unlink(RestServer *s, RestCall *c) {
        if (!c->submitted)
                return;
        if (c->pending_prev)
                c->pending_prev->pending_next = c->pending_next;
        else
                s->pending = c->pending_next;
        if (c->pending_next)
                c->pending_next->pending_prev = c->pending_prev;
        c->pending_next = c->pending_prev = NULL;
        c->submitted = false;
        s->n_pending--;
}

static void server_kick(RestServer *s) {
        /* Let MHD_run() pick up a resumed connection: the epoll fd may not signal it. */
        (void)sd_event_source_set_time(s->timer_source, 0);
        (void)sd_event_source_set_enabled(s->timer_source, SD_EVENT_ONESHOT);
}

static int call_answered(RestCall *c) {
        RestRequest *req = c->request;
        RestServer *s = req->server;

        if (c->submitted) {
                pending_unlink(s, c);
                if (req->suspended) {
                        req->suspended = false;
                        MHD_resume_connection(req->connection);
                        server_kick(s);
                }
        }
        return 0;
}

int rest_call_reply_text(RestCall *c, unsigned status, const char *text) {
        if (!c || c->replied)
                return -EALREADY;
        rest_reply_text(c->request, status, text);
        return call_answered(c);
}

int rest_call_reply_json(RestCall *c, unsigned status, const cJSON *body) {
        if (!c || c->replied)
                return -EALREADY;
        rest_reply_json(c->request, status, body);
        return call_answered(c);
}

int rest_call_reply_error(RestCall *c, unsigned status) {
        if (!c || c->replied)
                return -EALREADY;
        rest_reply_error(c->request, status, NULL);
        return call_answered(c);
}

void rest_request_submit(
        RestRequest *req, const RestIntent *intent, unsigned fallback_status, const char *fallback_text) {
        RestServer *s = req->server;
        RestCall *c = &req->call;

        if (!s->intent || !s->intent->submit || s->n_pending >= REST_PENDING_MAX) {
                if (s->intent && s->n_pending >= REST_PENDING_MAX)
                        log_warning(
                                "REST: %u requests already wait for the HA loop, refusing %s %s",
                                s->n_pending,
                                req->method,
                                req->path);
                if (fallback_text)
                        return rest_reply_text(req, fallback_status, fallback_text);
                return rest_reply_error(req, fallback_status, NULL);
        }

        c->submitted = true;
        c->pending_prev = NULL;
        c->pending_next = s->pending;
        if (s->pending)
                s->pending->pending_prev = c;
        s->pending = c;
        s->n_pending++;

        log_debug("REST: %s intent handed to the HA loop", rest_intent_kind_to_string(intent->kind));
        s->intent->submit(s->intent_userdata, c, intent);
}

/* ==== Request handling ==== */

int rest_request_json(RestRequest *req, bool optional, cJSON **ret) {
        _cleanup_free_ char *why = NULL;
        const char *end = NULL;
        cJSON *j;

        *ret = NULL;
        if (!req->has_content_length) {
                if (optional)
                        return 0;
                rest_reply_error(req, 411, NULL);
                return -EINVAL;
        }
        if (req->content_length == 0 && optional)
                return 0;
        if (req->body.len == 0) {
                why = strdup("the body is empty");
                goto bad;
        }
        if (!utf8_is_valid(req->body.buf, req->body.len)) {
                why = strdup("the body is not valid UTF-8");
                goto bad;
        }
        j = cJSON_ParseWithLengthOpts(
                req->body.buf, req->body.len, &end, /* require_null_terminated= */ false);
        if (!j) {
                if (asprintf(
                            &why,
                            "the body is not valid JSON (at byte %zu)",
                            end ? (size_t)(end - req->body.buf) : (size_t)0) < 0)
                        why = NULL;
                goto bad;
        }
        for (; end && end < req->body.buf + req->body.len; end++)
                if (!strchr(" \t\r\n", *end)) {
                        cJSON_Delete(j);
                        if (asprintf(
                                    &why,
                                    "the body has data after its JSON value (at byte %zu)",
                                    (size_t)(end - req->body.buf)) < 0)
                                why = NULL;
                        goto bad;
                }
        if (!cJSON_IsObject(j) || (!optional && !j->child)) {
                why =
                        strdup(cJSON_IsObject(j) ? "the body is an empty JSON object"
                                                 : "the body is not a JSON object");
                cJSON_Delete(j);
                goto bad;
        }
        *ret = j;
        return 0;
bad:
        /* Patroni logs "Bad request" with the exception; the page says what was wrong too. */
        log_warning("Bad request: %s %s: %s", req->method, req->path, why ?: "unreadable body");
        {
                _cleanup_free_ char *message = NULL;
                if (!why || asprintf(&message, "Bad request: %s", why) < 0)
                        message = NULL;
                rest_reply_error(req, 400, message);
        }
        return -EINVAL;
}

/* check_access(): allowlist, then client certificate, then basic authentication. Replies and returns
 * false when the request is refused. */
static bool check_access(RestRequest *req) {
        RestServer *s = req->server;

        const RestListener *l = listener_of(s, req->connection);

        if (rest_allowlist_in_use(s) && !client_allowed(s, req->connection)) {
                rest_reply_text(req, 403, "Access is denied");
                return false;
        }
        if (l->tls && l->verify_client != REST_VERIFY_CLIENT_NONE) {
                if (!tls_has_peer_certificate(req->connection)) {
                        rest_reply_text(req, 403, "client certificate required");
                        return false;
                }
        }
        if (s->auth_key) {
                const char *h =
                        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Authorization");
                const char *reason = NULL, *key;
                if (!h)
                        reason = "no auth header received";
                else if (!(key = startswith(h, "Basic ")) || !secure_streq(key, s->auth_key))
                        reason = "not authenticated";
                if (reason) {
                        (void)free_and_strdup(&req->www_authenticate, "Basic realm=\"Patroni\"");
                        rest_reply_text(req, 401, reason);
                        return false;
                }
        }
        return true;
}

static void request_dispatch(RestRequest *req) {
        if (req->route)
                req->route->handler(req);
        else
                rest_handle_health(req);
}

static enum MHD_Result finish(RestRequest *req) {
        if (!req->call.replied) {
                /* The engine holds the call: park the connection until it answers. */
                req->suspended = true;
                rest_connection_hold(req->connection);
                MHD_suspend_connection(req->connection);
                return MHD_YES;
        }
        return queue_reply(req);
}

static enum MHD_Result on_access(
        void *cls,
        struct MHD_Connection *connection,
        const char *url,
        const char *method,
        const char *version,
        const char *upload_data,
        size_t *upload_data_size,
        void **req_cls) {

        RestServer *s = cls;
        RestRequest *req = *req_cls;

        if (!req) {
                /* No URI callback ran (should not happen): build the request from what MHD parsed. */
                req = calloc(1, sizeof(RestRequest));
                if (!req)
                        return MHD_NO;
                req->server = s;
                req->path = strdup(url);
                if (!req->path) {
                        free(req);
                        return MHD_NO;
                }
                req->call.request = req;
                *req_cls = req;
        }
        req->connection = connection;

        if (req->queued) {
                /* Already answered; discard whatever body is still arriving. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->call.replied && req->started && !req->suspended && *upload_data_size == 0)
                /* Resumed after the engine answered. */
                return queue_reply(req);

        if (!req->started) {
                const char *conn_header =
                        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Connection");
                req->started = true;
                req->keep_alive = streq_ptr(version, MHD_HTTP_VERSION_1_1) &&
                        !(conn_header && strcasestr(conn_header, "close"));
                req->method = strdup(method);
                if (!req->method)
                        return MHD_NO;
                req->route = rest_route_find(method, req->path);
                const RestListener *l = listener_of(s, connection);
                if (l->tls && l->verify_client == REST_VERIFY_CLIENT_REQUIRED &&
                    !tls_has_peer_certificate(connection)) {
                        /* Patroni's TLS handshake already fails here; MHD only asks for the
                         * certificate, so every request without a valid one is refused. */
                        rest_reply_text(req, 403, "client certificate required");
                        return queue_reply(req);
                }
                if (!req->route && !streq(method, "GET") && !streq(method, "HEAD") &&
                    !streq(method, "OPTIONS")) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(&msg, "Unsupported method ('%s')", method) < 0)
                                msg = NULL;
                        rest_reply_error(req, 501, msg);
                        return queue_reply(req);
                }
                if (req->route && req->route->needs_auth && !check_access(req))
                        return queue_reply(req);

                const char *cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length");
                if (cl) {
                        char *end;
                        unsigned long long v;
                        errno = 0;
                        v = strtoull(cl, &end, 10);
                        req->has_content_length = errno == 0 && end != cl;
                        req->content_length = v;
                }
                if (req->route && req->route->body == REST_BODY_COLLECT) {
                        if (req->has_content_length && req->content_length > s->body_max) {
                                log_debug(
                                        "REST: request body of %llu bytes for %s %s refused",
                                        (unsigned long long)req->content_length,
                                        method,
                                        req->path);
                                rest_reply_error(req, 413, NULL);
                                return queue_reply(req);
                        }
                }
                /* The handler runs on the final call, once MHD has read the whole request (a body, if
                 * any): a reply queued before that counts as "early" and MHD then closes the connection
                 * even for a keep-alive client. */
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (req->route && req->route->body == REST_BODY_COLLECT && !req->body_too_large) {
                        if (req->body.len + *upload_data_size > s->body_max) {
                                req->body_too_large = true;
                                strbuf_done(&req->body);
                        } else {
                                strbuf_putn(&req->body, upload_data, *upload_data_size);
                                if (req->body.failed)
                                        return MHD_NO;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }

        /* Final call: the whole body is here. */
        if (req->body_too_large) {
                rest_reply_error(req, 413, NULL);
                return queue_reply(req);
        }
        if (!req->call.replied && !req->call.submitted)
                request_dispatch(req);
        return finish(req);
}

/* URI log callback: the first thing MHD reports about a request; it carries the raw URI (MHD's url
 * argument of on_access is already percent-decoded and lost its query string). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con) {
        RestServer *s = cls;
        RestRequest *req;
        const char *q;

        req = calloc(1, sizeof(RestRequest));
        if (!req)
                return NULL;
        req->server = s;
        req->call.request = req;
        q = strchr(uri, '?');
        req->path = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
        if (q)
                req->query = strdup(q + 1);
        if (!req->path || (q && !req->query)) {
                free(req->path);
                free(req->query);
                free(req);
                return NULL;
        }
        /* Patroni parses the path with urlparse(): a fragment is not part of it. */
        char *hash = strchr(req->path, '#');
        if (hash)
                *hash = '\0';
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &req->start);
        /* The request line is here: the rest of the request has request_timeout to arrive. */
        rest_connection_set_state(s, con, /* in_request= */ true);
        return req;
}

static void request_free(RestRequest *req) {
        RestServer *s = req->server;

        if (req->call.submitted) {
                pending_unlink(s, &req->call);
                if (s->intent && s->intent->cancel)
                        s->intent->cancel(s->intent_userdata, &req->call);
        }
        free(req->method);
        free(req->path);
        free(req->query);
        strbuf_done(&req->body);
        free(req->reply_body);
        free(req->www_authenticate);
        free(req);
}

static void on_completed(
        void *cls, struct MHD_Connection *connection, void **req_cls, enum MHD_RequestTerminationCode toe) {
        RestRequest *req = *req_cls;

        if (!req)
                return;
        /* A kept-alive connection has idle_timeout to start its next request. */
        rest_connection_set_state(req->server, connection, /* in_request= */ false);
        if (log_get_max_level() >= LOG_DEBUG) {
                uint64_t now = 0;
                (void)sd_event_now(req->server->event, CLOCK_MONOTONIC, &now);
                log_debug(
                        "API thread: \"%s %s\" %u latency: %0.3f ms%s",
                        strna(req->method),
                        strna(req->path),
                        req->status,
                        (double)(now - req->start) / 1000.0,
                        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (terminated early)");
        }
        request_free(req);
        *req_cls = NULL;
}

_printf_(2, 0) static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        va_list aq;
        char buf[512];

        va_copy(aq, ap);
        (void)vsnprintf(buf, sizeof buf, fmt, aq);
        va_end(aq);
        /* MHD's lines end with a newline of their own. */
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        /* While starting, MHD explains why it cannot bind; later it reports per-client trouble. */
        log_full(((RestServer *)cls)->starting ? LOG_ERR : LOG_DEBUG, "REST (libmicrohttpd): %s", buf);
}

/* ==== sd-event glue ==== */

static void server_rearm(RestServer *s, bool again) {
        MHD_UNSIGNED_LONG_LONG ms;
        uint64_t now = 0;
        usec_t next = USEC_INFINITY;

        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (again)
                next = now;
        if (MHD_get_timeout(s->listener.daemon, &ms) == MHD_YES)
                next = now + (usec_t)ms * USEC_PER_MSEC;
        if (s->draining.daemon) {
                next = MIN(next, s->draining.drain_until);
                if (MHD_get_timeout(s->draining.daemon, &ms) == MHD_YES)
                        next = MIN(next, now + (usec_t)ms * USEC_PER_MSEC);
        }
        if (next == USEC_INFINITY) {
                (void)sd_event_source_set_enabled(s->timer_source, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time(s->timer_source, next <= now ? 0 : next);
        (void)sd_event_source_set_enabled(s->timer_source, SD_EVENT_ONESHOT);
}

static void listener_stop(RestServer *s, RestListener *l);

/* server_run - one MHD_run() per daemon, then the timer re-armed from MHD_get_timeout().
 *
 * Why a closed connection means one more run at once: at its connection limit (or after accept() failed
 * with EMFILE) MHD takes its listen socket out of its epoll set, and it decides whether to put it back
 * only at the start of MHD_run(), from the count of connections at that moment; connections that close
 * during a run are released at its end. A run that takes the daemon from the limit down to no
 * connection at all therefore leaves an epoll set with nothing in it and no timeout: the epoll
 * descriptor never becomes readable again, the timer stays off, and clients queue on the listen socket
 * for ever (issue 19). The extra run puts the listen socket back; it costs one epoll_wait() with a zero
 * timeout. */
static int server_run(RestServer *s) {
        s->connection_closed = false;
        if (MHD_run(s->listener.daemon) != MHD_YES)
                log_debug("REST: MHD_run() failed, continuing");
        if (s->draining.daemon) {
                const union MHD_DaemonInfo *info;
                uint64_t now = 0;

                (void)MHD_run(s->draining.daemon);
                info = MHD_get_daemon_info(s->draining.daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
                (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
                if (!info || info->num_connections == 0 || now >= s->draining.drain_until) {
                        log_debug("REST: the listener replaced by the reload is stopped");
                        listener_stop(s, &s->draining);
                }
        }
        server_rearm(s, s->connection_closed);
        return 0;
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        return server_run(userdata);
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        return server_run(userdata);
}

/* ==== Construction ==== */

static int listen_address(const char *host, uint16_t port, struct sockaddr_storage *ret, bool *ret_dual) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;
        _cleanup_free_ char *h = NULL;

        *ret = (struct sockaddr_storage){};
        *ret_dual = false;
        if (isempty(host) || streq(host, "*") || streq(host, "::")) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                in6->sin6_addr = in6addr_any;
                *ret_dual = true;
                return 0;
        }
        if (streq(host, "localhost"))
                host = "127.0.0.1";
        h = strdup(host);
        if (!h)
                return -ENOMEM;
        if (h[0] == '[' && endswith(h, "]")) {
                memmove(h, h + 1, strlen(h));
                h[strlen(h) - 1] = '\0';
        }
        if (inet_pton(AF_INET, h, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons(port);
                return 0;
        }
        if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                return 0;
        }
        return -EINVAL;
}

static void listener_done(RestListener *l) {
        free(l->host);
        free(l->tls_cert);
        free(l->tls_key);
        free(l->tls_trust);
        free(l->key_password);
        *l = (RestListener){};
}

/* listener_load - what a listener for o needs, certificate files read; logs its errors. */
static int listener_load(const RestServerOptions *o, RestListener *ret) {
        _cleanup_(listener_done) RestListener l = {
                .port = o->listen_port,
                .verify_client = o->verify_client,
                .connection_limit = o->connection_limit ?: REST_CONNECTION_LIMIT_DEFAULT,
                .per_ip_limit = o->per_ip_connection_limit ?: REST_PER_IP_LIMIT_DEFAULT,
                .connection_timeout = o->connection_timeout ?: REST_CONNECTION_TIMEOUT_DEFAULT,
        };
        int r;

        if (o->listen_host && !(l.host = strdup(o->listen_host)))
                return log_oom();
        if (o->certfile) {
                if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
                        return log_error_errno(
                                SYNTHETIC_ERRNO(EOPNOTSUPP),
                                "restapi.certfile is set but libmicrohttpd was built without TLS");
                r = read_full_file(o->certfile, REST_TLS_FILE_MAX, &l.tls_cert, NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to read restapi.certfile \"%s\": %m", o->certfile);
                r = read_full_file(o->keyfile ?: o->certfile, REST_TLS_FILE_MAX, &l.tls_key, NULL);
                if (r < 0)
                        return log_error_errno(
                                r, "Failed to read restapi.keyfile \"%s\": %m", o->keyfile ?: o->certfile);
                if (o->cafile) {
                        r = read_full_file(o->cafile, REST_TLS_FILE_MAX, &l.tls_trust, NULL);
                        if (r < 0)
                                return log_error_errno(
                                        r, "Failed to read restapi.cafile \"%s\": %m", o->cafile);
                }
                if (o->keyfile_password && !(l.key_password = strdup(o->keyfile_password)))
                        return log_oom();
                l.tls = true;
        }
        *ret = l;
        l = (RestListener){};
        return 0;
}

/* Would a listener started from b be the same as a? (Same address, same certificate bytes, ...) */
static bool listener_same(const RestListener *a, const RestListener *b) {
        return streq_ptr(a->host, b->host) && a->port == b->port && a->tls == b->tls &&
                (!a->tls || a->verify_client == b->verify_client) && streq_ptr(a->tls_cert, b->tls_cert) &&
                streq_ptr(a->tls_key, b->tls_key) && streq_ptr(a->tls_trust, b->tls_trust) &&
                streq_ptr(a->key_password, b->key_password) && a->connection_limit == b->connection_limit &&
                a->per_ip_limit == b->per_ip_limit && a->connection_timeout == b->connection_timeout;
}

static struct MHD_Daemon *
start_daemon(RestServer *s, const RestListener *l, const struct sockaddr *sa, bool dual, int listen_fd) {
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
        struct MHD_OptionItem opts[8] = {};
        size_t n = 0;

        if (sa->sa_family == AF_INET6)
                flags |= dual ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
        if (listen_fd >= 0)
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL};
        else
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
        if (l->tls) {
                flags |= MHD_USE_TLS;
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert};
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key};
                if (l->key_password)
                        opts[n++] =
                                (struct MHD_OptionItem){MHD_OPTION_HTTPS_KEY_PASSWORD, 0, l->key_password};
                if (l->tls_trust && l->verify_client != REST_VERIFY_CLIENT_NONE)
                        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, l->tls_trust};
        }
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

        return MHD_start_daemon(
                flags,
                l->port, /* ignored with MHD_OPTION_SOCK_ADDR, but named in MHD's messages */
                rest_on_accept_policy,
                s,
                on_access,
                s,
                MHD_OPTION_EXTERNAL_LOGGER, /* first, so that MHD logs nothing on its own */
                on_mhd_log,
                s,
                MHD_OPTION_CONNECTION_LIMIT,
                l->connection_limit + REST_CONNECTION_SPARE,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                l->per_ip_limit + REST_CONNECTION_SPARE,
                MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned)((l->connection_timeout + USEC_PER_SEC - 1) / USEC_PER_SEC),
                MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                (size_t)REST_CONNECTION_MEMORY_LIMIT,
                MHD_OPTION_NOTIFY_COMPLETED,
                on_completed,
                s,
                MHD_OPTION_NOTIFY_CONNECTION,
                rest_on_connection,
                s,
                MHD_OPTION_URI_LOG_CALLBACK,
                on_uri,
                s,
                MHD_OPTION_ARRAY,
                opts,
                MHD_OPTION_END);
}

/* listener_probe - does MHD accept l's TLS material (certificate, key, passphrase, CA)? Tried on a daemon
 * without a socket, before a reload hands the bound socket over. */
static int listener_probe(RestServer *s, const RestListener *l) {
        struct MHD_OptionItem opts[6] = {};
        struct MHD_Daemon *d;
        size_t n = 0;

        if (!l->tls)
                return 0;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key};
        if (l->key_password)
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_KEY_PASSWORD, 0, l->key_password};
        if (l->tls_trust && l->verify_client != REST_VERIFY_CLIENT_NONE)
                opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, l->tls_trust};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

        s->starting = true;
        d = MHD_start_daemon(
                MHD_USE_NO_LISTEN_SOCKET | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG,
                0,
                NULL,
                NULL,
                on_access,
                s,
                MHD_OPTION_EXTERNAL_LOGGER,
                on_mhd_log,
                s,
                MHD_OPTION_ARRAY,
                opts,
                MHD_OPTION_END);
        s->starting = false;
        if (!d)
                return log_error_errno(
                        SYNTHETIC_ERRNO(EINVAL),
                        "The restapi certificate, key, keyfile_password or cafile is not usable");
        MHD_stop_daemon(d);
        return 0;
}

/* listener_start - binds l's address (or serves listen_fd, which it then owns, when >= 0) and watches
 * the daemon on s's loop. Logs its errors. */
static int listener_start(RestServer *s, RestListener *l, int listen_fd) {
        struct sockaddr_storage sa;
        const union MHD_DaemonInfo *info;
        bool dual;
        int r;

        r = listen_address(l->host, l->port, &sa, &dual);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(
                        r,
                        "restapi.listen host \"%s\" is not an IP address (names are not resolved)",
                        strempty(l->host));

        s->starting = true;
        l->daemon = start_daemon(s, l, (const struct sockaddr *)&sa, dual, listen_fd);
        if (!l->daemon && dual && listen_fd < 0) {
                /* No IPv6 on this host: fall back to IPv4 for "every address". */
                struct sockaddr_in in4 = {
                        .sin_family = AF_INET,
                        .sin_port = htons(l->port),
                        .sin_addr.s_addr = htonl(INADDR_ANY),
                };
                l->daemon = start_daemon(s, l, (const struct sockaddr *)&in4, false, -1);
        }
        s->starting = false;
        if (!l->daemon)
                return log_error_errno(
                        SYNTHETIC_ERRNO(EADDRNOTAVAIL),
                        "Couldn't start a service on '%s:%u', please check your `restapi.listen` "
                        "configuration",
                        strempty(l->host),
                        l->port);

        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
        l->bound_port = info ? info->port : l->port;

        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(
                        SYNTHETIC_ERRNO(EIO), "libmicrohttpd did not give us its epoll descriptor");
        r = sd_event_add_io(s->event, &l->io_source, info->epoll_fd, EPOLLIN, on_io, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the REST API's epoll descriptor: %m");
        (void)sd_event_source_set_description(l->io_source, "rest-io");
        (void)sd_event_source_set_priority(l->io_source, REST_EVENT_PRIORITY);
        return 0;
}

/* listener_stop - answers the calls of l's connections that still wait for the engine (503, the engine is
 * told through cancel()), closes every connection of l and its socket, and frees l. */
static void listener_stop(RestServer *s, RestListener *l) {
        for (RestCall *c = s->pending, *next; c; c = next) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(c->request->connection, MHD_CONNECTION_INFO_DAEMON);
                next = c->pending_next;
                if (!l->daemon || !ci || ci->daemon != l->daemon)
                        continue;
                pending_unlink(s, c);
                if (s->intent && s->intent->cancel)
                        s->intent->cancel(s->intent_userdata, c);
                rest_reply_error(c->request, 503, NULL);
                if (c->request->suspended) {
                        c->request->suspended = false;
                        MHD_resume_connection(c->request->connection);
                }
        }
        l->io_source = sd_event_source_disable_unref(l->io_source);
        if (l->daemon)
                MHD_stop_daemon(l->daemon); /* closes every connection: rest_on_connection() frees them */
        listener_done(l);
}

static void allowlist_done(RestAllowlist *a) {
        free(a->networks);
        names_free(a->names);
        *a = (RestAllowlist){};
}

/* settings_apply - the access-control and header settings of o, replacing s's only when all of them
 * could be built. */
static int settings_apply(RestServer *s, const RestServerOptions *o) {
        _cleanup_free_ char *auth_key = NULL;
        _cleanup_(allowlist_done) RestAllowlist allow = {};
        char **headers = NULL;
        int r;

        if (!o->auth_username != !o->auth_password)
                return log_error_errno(
                        SYNTHETIC_ERRNO(EINVAL), "restapi.authentication needs both username and password");
        if (o->auth_username) {
                _cleanup_free_ char *userpass = NULL;
                if (asprintf(&userpass, "%s:%s", o->auth_username, o->auth_password) < 0)
                        return log_oom();
                auth_key = base64_encode(userpass);
                if (!auth_key)
                        return log_oom();
        }

        r = allowlist_build(o, &allow);
        if (r < 0)
                return r;

        if (o->n_extra_headers > 0) {
                headers = calloc(2 * o->n_extra_headers, sizeof(char *));
                if (!headers)
                        return log_oom();
                for (size_t i = 0; i < 2 * o->n_extra_headers; i++) {
                        headers[i] = strdup(o->extra_headers[i]);
                        if (!headers[i]) {
                                for (size_t j = 0; j < i; j++)
                                        free(headers[j]);
                                free(headers);
                                return log_oom();
                        }
                }
        }

        free(s->auth_key);
        s->auth_key = TAKE_PTR(auth_key);
        allowlist_done(&s->allowlist);
        s->allowlist = allow;
        allow = (RestAllowlist){};
        for (size_t i = 0; i < 2 * s->n_extra_headers; i++)
                free(s->extra_headers[i]);
        free(s->extra_headers);
        s->extra_headers = headers;
        s->n_extra_headers = o->n_extra_headers;
        s->leader_checks_need_postgres = o->leader_checks_need_postgres;
        s->request_timeout = o->connection_timeout ?: REST_CONNECTION_TIMEOUT_DEFAULT;
        s->idle_timeout = MIN(o->idle_timeout ?: REST_IDLE_TIMEOUT_DEFAULT, s->request_timeout);
        s->connection_limit = o->connection_limit ?: REST_CONNECTION_LIMIT_DEFAULT;
        s->per_ip_limit = MIN(o->per_ip_connection_limit ?: REST_PER_IP_LIMIT_DEFAULT, s->connection_limit);
        allowlist_resolve(s);
        return 0;
}

static int on_restart(sd_event_source *source, void *userdata);

/* descriptors_check - warns when MHD's connection limit cannot be reached within RLIMIT_NOFILE: accept()
 * would then fail with EMFILE first, and MHD stops accepting until a connection closes, without the
 * oldest idle one being closed to make room. */
static void descriptors_check(unsigned connection_limit) {
        struct rlimit rl;
        uint64_t need = (uint64_t)connection_limit + REST_CONNECTION_SPARE + REST_DESCRIPTORS_OTHER;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
                return;
        log_warning(
                "restapi.connection_limit %u needs about %" PRIu64
                " file descriptors, but RLIMIT_NOFILE is %" PRIu64
                "; raise LimitNOFILE= (or ulimit -n) or lower the limit",
                connection_limit,
                need,
                (uint64_t)rl.rlim_cur);
}

/* rest_server_new - see the header. */
int rest_server_new(
        sd_event *e, const RestServerOptions *o, const NodeSnapshot *snapshot, RestServer **ret) {
        _cleanup_(rest_server_freep) RestServer *s = NULL;
        int r;

        if (!e || !o || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(RestServer));
        if (!s)
                return log_oom();
        s->event = sd_event_ref(e);
        s->snapshot = snapshot;
        s->body_max = o->body_max ?: REST_BODY_MAX_DEFAULT;

        /* The reaper exists before MHD so connection callbacks can always arm it. */
        r = sd_event_add_time(
                e, &s->reaper_source, CLOCK_MONOTONIC, USEC_INFINITY, USEC_PER_MSEC * 10, rest_on_reaper, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the REST API connection reaper: %m");
        (void)sd_event_source_set_enabled(s->reaper_source, SD_EVENT_OFF);
        (void)sd_event_source_set_description(s->reaper_source, "rest-reaper");
        (void)sd_event_source_set_priority(s->reaper_source, REST_EVENT_PRIORITY);

        r = sd_event_add_defer(e, &s->restart_source, on_restart, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the REST API restart event: %m");
        (void)sd_event_source_set_enabled(s->restart_source, SD_EVENT_OFF);
        (void)sd_event_source_set_description(s->restart_source, "rest-restart");
        (void)sd_event_source_set_priority(s->restart_source, REST_EVENT_PRIORITY);

        r = sd_event_add_time_relative(
                e, &s->resolve_source, CLOCK_MONOTONIC, REST_RESOLVE_POLL, 0, on_resolve, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the REST API resolver timer: %m");
        (void)sd_event_source_set_enabled(s->resolve_source, SD_EVENT_OFF);
        (void)sd_event_source_set_description(s->resolve_source, "rest-resolve");
        (void)sd_event_source_set_priority(s->resolve_source, REST_EVENT_PRIORITY);

        r = settings_apply(s, o);
        if (r < 0)
                return r;

        r = listener_load(o, &s->listener);
        if (r < 0)
                return r;
        descriptors_check(s->listener.connection_limit);
        r = listener_start(s, &s->listener, -1);
        if (r < 0)
                return r;

        r = sd_event_add_time(e, &s->timer_source, CLOCK_MONOTONIC, 0, /* accuracy= */ 1, on_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the REST API timer: %m");
        (void)sd_event_source_set_description(s->timer_source, "rest-timer");
        (void)sd_event_source_set_priority(s->timer_source, REST_EVENT_PRIORITY);
        server_rearm(s, /* again= */ false);

        log_info(
                "REST API listening on %s:%u%s",
                isempty(o->listen_host) ? "*" : o->listen_host,
                s->listener.bound_port,
                s->listener.tls ? " (https)" : "");
        *ret = TAKE_PTR(s);
        return 0;
}

/* Starts the listener a reload asked for, outside MHD_run() (the reload may come from a request). The
 * old listener stops accepting and finishes its connections; on failure it simply keeps serving. */
static int on_restart(sd_event_source *source, void *userdata) {
        RestServer *s = userdata;
        _cleanup_(listener_done) RestListener l = s->next;
        const union MHD_DaemonInfo *info;
        uint64_t now = 0;
        int fd = -1, r;

        s->next = (RestListener){};
        if (!s->restart_wanted)
                return 0;
        s->restart_wanted = false;
        r = listener_probe(s, &l);
        if (r < 0)
                goto keep;

        if (streq_ptr(l.host, s->listener.host) && l.port == s->listener.port) {
                /* Same address: the new daemon takes over the bound socket, no moment without one. */
                info = MHD_get_daemon_info(s->listener.daemon, MHD_DAEMON_INFO_LISTEN_FD);
                fd = info ? fcntl(info->listen_fd, F_DUPFD_CLOEXEC, 3) : -1;
                if (fd < 0) {
                        log_error_errno(
                                errno, "Failed to duplicate the REST API socket, not restarting: %m");
                        return 0;
                }
        }
        /* On failure MHD closes the socket it was given. */
        r = listener_start(s, &l, fd);
        if (r < 0) {
                if (l.daemon) {
                        l.io_source = sd_event_source_disable_unref(l.io_source);
                        MHD_stop_daemon(l.daemon);
                        l.daemon = NULL;
                }
        keep:
                log_error(
                        "The new restapi listen/TLS settings could not be applied: still serving on %s:%u%s "
                        "as before",
                        isempty(s->listener.host) ? "*" : s->listener.host,
                        s->listener.bound_port,
                        s->listener.tls ? " (https)" : "");
                return 0;
        }

        if (s->draining.daemon)
                listener_stop(s, &s->draining);
        fd = MHD_quiesce_daemon(s->listener.daemon);
        if (fd >= 0)
                (void)close(fd);
        (void)sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        s->draining = s->listener;
        s->draining.drain_until = now + s->request_timeout;
        s->listener = l;
        l = (RestListener){};
        log_info(
                "REST API listening on %s:%u%s (reloaded)",
                isempty(s->listener.host) ? "*" : s->listener.host,
                s->listener.bound_port,
                s->listener.tls ? " (https)" : "");
        server_rearm(s, /* again= */ true);
        return 0;
}

/* rest_server_reconfigure - see the header. */
int rest_server_reconfigure(RestServer *s, const RestServerOptions *o) {
        _cleanup_(listener_done) RestListener l = {};
        int r;

        r = settings_apply(s, o);
        if (r < 0)
                return log_error_errno(r, "Keeping the previous restapi access settings: %m");
        s->body_max = o->body_max ?: REST_BODY_MAX_DEFAULT;

        r = listener_load(o, &l);
        if (r < 0) {
                log_error(
                        "Keeping the REST API on %s:%u%s as it is",
                        isempty(s->listener.host) ? "*" : s->listener.host,
                        s->listener.bound_port,
                        s->listener.tls ? " (https)" : "");
                return r;
        }
        listener_done(&s->next);
        s->restart_wanted = false;
        if (listener_same(&l, &s->listener)) {
                (void)sd_event_source_set_enabled(s->restart_source, SD_EVENT_OFF);
                return 0;
        }
        s->next = l;
        l = (RestListener){};
        s->restart_wanted = true;
        (void)sd_event_source_set_enabled(s->restart_source, SD_EVENT_ONESHOT);
        return 1;
}

/* rest_server_free - cancels calls still waiting for the engine (the engine is told through cancel()),
 * closes every connection and the listening socket. Accepts NULL; returns NULL. */
RestServer *rest_server_free(RestServer *s) {
        if (!s)
                return NULL;

        listener_stop(s, &s->draining);
        s->draining.daemon = NULL;
        /* every call left belongs to the current listener */
        listener_stop(s, &s->listener);
        listener_done(&s->next);
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        s->restart_source = sd_event_source_disable_unref(s->restart_source);
        s->reaper_source = sd_event_source_disable_unref(s->reaper_source);
        allowlist_resolve_cancel(s);
        free(s->auth_key);
        allowlist_done(&s->allowlist);
        for (size_t i = 0; i < 2 * s->n_extra_headers; i++)
                free(s->extra_headers[i]);
        free(s->extra_headers);
        sd_event_unref(s->event);
        return mfree(s);
}

void rest_server_set_snapshot(RestServer *s, const NodeSnapshot *snapshot) {
        s->snapshot = snapshot;
}

void rest_server_set_intent_handler(RestServer *s, const RestIntentHandler *h, void *userdata) {
        s->intent = h;
        s->intent_userdata = userdata;
}

uint16_t rest_server_port(const RestServer *s) {
        return s->listener.bound_port;
}
