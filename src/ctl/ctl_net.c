/* SPDX-License-Identifier: MIT */
/*
 * How pghactl reaches the cluster. etcd: the daemon's own asynchronous client (endpoint fail-over,
 * authentication, TLS, Patroni's key parsing in dcs_cluster_parse) run on a private sd-event loop that
 * this short-lived process drives until the one operation it waits for completes or its deadline
 * passes; nothing of the etcd protocol is written twice. REST: a blocking libcurl easy handle per call
 * (PATCH and DELETE included, basic auth and TLS as patronictl's PatroniRequest), allowed here because
 * the CLI is not the event-driven daemon. Also the local configuration, read like patronictl does
 * (validator off): the YAML file and PATRONI_* variables merged as a plain tree, so a ctl-only file
 * with just an etcd3 section works. Invariant: every wait has a deadline.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../daemon/config/config-internal.h"
#include "ctl-internal.h"
#include "pgha/fileio.h"
#include "pgha/json.h"

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

int ctl_fail(const char *format, ...) {
        va_list ap;

        fflush(stdout);
        fputs("Error: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return -EINVAL;
}

/* ==== Configuration ==== */

const cJSON *ctl_config_get(const Ctl *c, const char *section, const char *key) {
        const cJSON *s = section ? cJSON_GetObjectItemCaseSensitive(c->config, section) : c->config;
        return cJSON_IsObject(s) ? cJSON_GetObjectItemCaseSensitive(s, key) : NULL;
}

static const char *config_string(const Ctl *c, const char *section, const char *key) {
        const cJSON *v = ctl_config_get(c, section, key);
        return cJSON_IsString(v) && !isempty(v->valuestring) ? v->valuestring : NULL;
}

const char *ctl_scope(const Ctl *c, const char *arg) {
        return arg ?: config_string(c, NULL, "scope");
}

/* -d/--dcs-url: [scheme://]host[:port]; replaces any etcd section with an etcd3 one. */
static int apply_dcs_url(Ctl *c) {
        _cleanup_free_ char *hostport = NULL;
        const char *s = c->dcs_url, *p;
        cJSON *section;

        p = strstr(s, "://");
        if (p) {
                size_t l = (size_t)(p - s);
                if (!((l == 4 && strneq(s, "etcd", 4)) || (l == 5 && strneq(s, "etcd3", 5))))
                        return ctl_fail("Unknown dcs scheme: %.*s (pghactl speaks etcd only)", (int)l, s);
                s = p + 3;
        } else if (startswith(s, "//"))
                s += 2;
        hostport = strndup(s, strcspn(s, "/"));
        if (!hostport)
                return -ENOMEM;
        if (isempty(hostport))
                return ctl_fail("Invalid --dcs-url %s: no host", c->dcs_url);
        if (!strchr(hostport, ':') || hostport[0] == '[') {
                char *t;
                if (hostport[0] != '[' || !strstr(hostport, "]:")) {
                        if (asprintf(&t, "%s:2379", hostport) < 0)
                                return -ENOMEM;
                        free_and_strdup(&hostport, t);
                        free(t);
                }
        }
        cJSON_DeleteItemFromObjectCaseSensitive(c->config, "etcd");
        cJSON_DeleteItemFromObjectCaseSensitive(c->config, "etcd3");
        section = cJSON_CreateObject();
        if (!section || json_add_item(c->config, "etcd3", section) < 0 ||
            json_add_string(section, "host", hostport) < 0)
                return -ENOMEM;
        return 0;
}

int ctl_load_config(Ctl *c) {
        _cleanup_(config_diagnostics_done) ConfigDiagnostics diags = {};
        _cleanup_(ynode_freep) YNode *root = NULL, *env = NULL;
        _cleanup_free_ char *default_path = NULL, *text = NULL;
        const char *path = c->config_path;
        bool explicit = true;
        const cJSON *v;
        int r;

        if (!path)
                path = getenv("PATRONICTL_CONFIG_FILE");
        if (!path) {
                const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
                if (!isempty(xdg))
                        r = asprintf(&default_path, "%s/patroni/patronictl.yaml", xdg);
                else
                        r = asprintf(&default_path, "%s/.config/patroni/patronictl.yaml", strempty(home));
                if (r < 0)
                        return -ENOMEM;
                path = default_path;
                explicit = false;
        }

        if (access(path, R_OK) < 0) {
                if (explicit)
                        return ctl_fail(
                                "Provided config file %s not existing or no read rights. Check the "
                                "-c/--config-file parameter",
                                path);
        } else {
                r = read_full_file(path, 4 * 1024 * 1024, &text, NULL);
                if (r < 0)
                        return ctl_fail("Cannot read %s: %s", path, strerror(-r));
                r = ynode_parse(path, text, false, &root, &diags);
                if (r < 0) {
                        const ConfigDiagnostic *d = diags.n > 0 ? &diags.items[0] : NULL;
                        if (d)
                                return ctl_fail("%s:%u:%u: %s", d->file, d->line, d->column, d->message);
                        return ctl_fail("%s: invalid YAML", path);
                }
                if (root && root->type != YNODE_MAPPING)
                        return ctl_fail("%s: the configuration must be a YAML mapping", path);
        }

        r = config_env_tree(&env, &diags);
        if (r < 0 && r != -EINVAL)
                return r;
        if (env) {
                r = ynode_merge(&root, TAKE_PTR(env));
                if (r < 0)
                        return r;
        }
        c->config = root ? ynode_to_json(root) : cJSON_CreateObject();
        if (!c->config)
                return -ENOMEM;
        if (!cJSON_IsObject(c->config)) {
                cJSON_Delete(c->config);
                c->config = cJSON_CreateObject();
                if (!c->config)
                        return -ENOMEM;
        }
        if (c->dcs_url) {
                r = apply_dcs_url(c);
                if (r < 0)
                        return r;
        }

        /* REST client settings, as PatroniRequest: ctl.X falling back to restapi.X */
        v = ctl_config_get(c, "ctl", "insecure");
        c->insecure = c->insecure || json_parse_bool(v);
        {
                const char *auth = config_string(c, "ctl", "auth") ?: config_string(c, "restapi", "auth");
                const cJSON *a = ctl_config_get(c, "restapi", "authentication");
                if (auth)
                        c->auth = strdup(auth);
                else if (cJSON_IsObject(a)) {
                        const cJSON *u = cJSON_GetObjectItemCaseSensitive(a, "username");
                        const cJSON *p = cJSON_GetObjectItemCaseSensitive(a, "password");
                        if (cJSON_IsString(u) &&
                            asprintf(
                                    &c->auth,
                                    "%s:%s",
                                    u->valuestring,
                                    cJSON_IsString(p) ? p->valuestring : "") < 0)
                                c->auth = NULL;
                }
        }
        c->cacert =
                strdup_or_null(config_string(c, "ctl", "cacert") ?: config_string(c, "restapi", "cafile"));
        c->cert = strdup_or_null(
                config_string(c, "ctl", "certfile") ?: config_string(c, "restapi", "certfile"));
        c->key =
                strdup_or_null(config_string(c, "ctl", "keyfile") ?: config_string(c, "restapi", "keyfile"));
        c->key_password = strdup_or_null(
                config_string(c, "ctl", "keyfile_password")
                        ?: config_string(c, "restapi", "keyfile_password"));
        return 0;
}

void ctl_done(Ctl *c) {
        c->dcs = dcs_free(c->dcs);
        c->etcd = etcd_client_free(c->etcd);
        c->event = sd_event_unref(c->event);
        cJSON_Delete(c->config);
        c->config = NULL;
        free(c->scope);
        free(c->endpoints_text);
        free(c->auth);
        free(c->cacert);
        free(c->cert);
        free(c->key);
        free(c->key_password);
        c->scope = c->endpoints_text = c->auth = c->cacert = c->cert = c->key = c->key_password = NULL;
}

/* ==== etcd on a private event loop ==== */

static int strv_push(char ***l, size_t *n, const char *s) {
        char **t = realloc(*l, (*n + 2) * sizeof(char *));
        if (!t)
                return -ENOMEM;
        *l = t;
        t[*n] = strdup(s);
        if (!t[*n])
                return -ENOMEM;
        t[++*n] = NULL;
        return 0;
}

static void strv_freep_local(char ***l) {
        for (char **p = *l; p && *p; p++)
                free(*p);
        free(*l);
}

/* Endpoints from the etcd3 (or etcd) section: hosts (list or comma string), host, url, proxy. */
static int etcd_endpoints(Ctl *c, const cJSON *sec, char ***ret, size_t *ret_n, bool *ret_proxy) {
        _cleanup_(strv_freep_local) char **l = NULL;
        const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(sec, "hosts");
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(sec, "host");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(sec, "url");
        const cJSON *proxy = cJSON_GetObjectItemCaseSensitive(sec, "proxy");
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(sec, "port");
        size_t n = 0;
        int r;

        *ret_proxy = false;
        if (cJSON_IsString(proxy) && !isempty(proxy->valuestring)) {
                r = strv_push(&l, &n, proxy->valuestring);
                *ret_proxy = true;
        } else if (cJSON_IsString(url) && !isempty(url->valuestring))
                r = strv_push(&l, &n, url->valuestring);
        else if (cJSON_IsArray(hosts)) {
                const cJSON *e;
                r = 0;
                cJSON_ArrayForEach (e, hosts)
                        if (cJSON_IsString(e) && r >= 0)
                                r = strv_push(&l, &n, e->valuestring);
        } else if (cJSON_IsString(hosts) || cJSON_IsString(host)) {
                _cleanup_free_ char *copy =
                        strdup(cJSON_IsString(hosts) ? hosts->valuestring : host->valuestring);
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                r = 0;
                for (char *t = strtok_r(copy, ",", &save); t && r >= 0; t = strtok_r(NULL, ",", &save)) {
                        _cleanup_free_ char *withport = NULL;
                        t += strspn(t, " ");
                        if (isempty(t))
                                continue;
                        if (!strchr(t, ':') && cJSON_IsNumber(port)) {
                                if (asprintf(&withport, "%s:%d", t, (int)port->valuedouble) < 0)
                                        return -ENOMEM;
                        }
                        r = strv_push(&l, &n, withport ?: t);
                }
        } else
                r = 0;
        if (r < 0)
                return r;
        if (n == 0)
                return ctl_fail(
                        "No etcd endpoint configured: give -c with an etcd3 section (hosts), "
                        "PATRONI_ETCD3_HOSTS or --dcs-url");
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static int ctl_open(Ctl *c, const char *cluster) {
        _cleanup_(strv_freep_local) char **endpoints = NULL;
        const cJSON *sec = ctl_config_get(c, NULL, "etcd3");
        const char *namespace = config_string(c, NULL, "namespace");
        EtcdClientOptions eo = {};
        DcsOptions dopts = {};
        size_t n = 0;
        bool proxy = false;
        int r;

        if (c->dcs && streq(c->scope, cluster))
                return 0;
        c->dcs = dcs_free(c->dcs);
        if (isempty(cluster) || strchr(cluster, '/'))
                return ctl_fail("Invalid cluster name '%s'", strempty(cluster));
        if (!cJSON_IsObject(sec))
                sec = ctl_config_get(c, NULL, "etcd");
        if (!cJSON_IsObject(sec))
                return ctl_fail(
                        "No etcd endpoint configured: give -c with an etcd3 section (hosts), "
                        "PATRONI_ETCD3_HOSTS or --dcs-url");
        if (!c->event) {
                r = sd_event_new(&c->event);
                if (r < 0)
                        return r;
        }
        if (!c->etcd) {
                const cJSON *up = cJSON_GetObjectItemCaseSensitive(sec, "use_proxies");
                const char *s;
                r = etcd_endpoints(c, sec, &endpoints, &n, &proxy);
                if (r < 0)
                        return r;
                eo.endpoints = endpoints;
                s = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sec, "protocol"))
                        ? cJSON_GetObjectItemCaseSensitive(sec, "protocol")->valuestring
                        : NULL;
                eo.protocol = s;
#define SEC_STRING(k)                                                    \
        (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sec, k))        \
                 ? cJSON_GetObjectItemCaseSensitive(sec, k)->valuestring \
                 : NULL)
                eo.username = SEC_STRING("username") ?: SEC_STRING("user");
                eo.password = SEC_STRING("password");
                eo.cacert = SEC_STRING("cacert");
                eo.cert = SEC_STRING("cert");
                eo.key = SEC_STRING("key");
#undef SEC_STRING
                eo.request_timeout = CTL_ETCD_TIMEOUT;
                eo.use_proxies = proxy || json_parse_bool(up);
                r = etcd_client_new(c->event, &eo, &c->etcd);
                if (r < 0)
                        return ctl_fail("Cannot set up the etcd client: %s", strerror(-r));
                free(c->endpoints_text);
                c->endpoints_text = NULL;
                {
                        size_t size = 0;
                        FILE *f = open_memstream(&c->endpoints_text, &size);
                        if (!f)
                                return -ENOMEM;
                        for (size_t i = 0; i < n; i++)
                                fprintf(f, "%s%s", i > 0 ? "," : "", endpoints[i]);
                        if (fclose(f) != 0)
                                return -ENOMEM;
                }
        }
        dopts.namespace = namespace;
        dopts.scope = cluster;
        dopts.name = cluster; /* patronictl uses the scope as its name; it never writes member keys */
        r = dcs_new(c->event, c->etcd, &dopts, &c->dcs);
        if (r < 0)
                return ctl_fail("Cannot open cluster '%s' in etcd: %s", cluster, strerror(-r));
        return free_and_strdup(&c->scope, cluster);
}

static usec_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

/* Runs the private loop until *done or the deadline. */
static int ctl_wait(Ctl *c, const bool *done, usec_t timeout) {
        usec_t deadline = now_mono() + timeout;

        while (!*done) {
                usec_t n = now_mono();
                int r;
                if (n >= deadline)
                        return -ETIMEDOUT;
                r = sd_event_run(c->event, deadline - n);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct Pending {
        bool done;
        int error;
        char *message;
        DcsCluster *cluster;
        bool succeeded;
} Pending;

static void pending_done(Pending *p) {
        free(p->message);
        dcs_cluster_free(p->cluster);
}

static void on_cluster(Dcs *d, int error, const char *message, DcsCluster *cluster, void *userdata) {
        Pending *p = userdata;

        p->done = true;
        p->error = error;
        p->message = message ? strdup(message) : NULL;
        p->cluster = cluster;
}

static void on_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *userdata) {
        Pending *p = userdata;

        p->done = true;
        p->error = error;
        p->message = message ? strdup(message) : NULL;
        p->succeeded = error >= 0 && res && res->succeeded;
}

static bool cluster_is_empty(const DcsCluster *c) {
        return !c->has_initialize && !c->config && !c->leader && c->n_members == 0 && !c->has_status &&
                !c->history && !c->has_sync && !c->has_failover && c->failover_revision == 0 &&
                !c->failsafe && !c->has_optime_leader;
}

int ctl_get_cluster(Ctl *c, const char *cluster, DcsCluster **ret) {
        _cleanup_(pending_done) Pending p = {};
        int r;

        r = ctl_open(c, cluster);
        if (r < 0)
                return r;
        r = dcs_get_cluster(c->dcs, on_cluster, &p);
        if (r < 0)
                return ctl_fail("Cannot read cluster '%s' from etcd: %s", cluster, strerror(-r));
        r = ctl_wait(c, &p.done, CTL_ETCD_TIMEOUT + 5 * USEC_PER_SEC);
        if (r < 0 || p.error < 0)
                return ctl_fail("etcd is not reachable at %s: %s", strna(c->endpoints_text),
                                r < 0 ? strerror(-r) : p.message ?: strerror(-p.error));
        if (cluster_is_empty(p.cluster))
                return ctl_fail(
                        "Cluster '%s' does not exist: no keys under %s in etcd at %s",
                        cluster,
                        dcs_prefix(c->dcs),
                        strna(c->endpoints_text));
        *ret = TAKE_PTR(p.cluster);
        return 0;
}

static int ctl_write(
        Ctl *c,
        int (*start)(Dcs *, const cJSON *, int64_t, DcsWriteCallback, void *),
        const cJSON *value,
        int64_t mod_revision,
        const char *what) {
        _cleanup_(pending_done) Pending p = {};
        int r;

        r = start(c->dcs, value, mod_revision, on_write, &p);
        if (r < 0)
                return ctl_fail("Cannot write %s to etcd: %s", what, strerror(-r));
        r = ctl_wait(c, &p.done, CTL_ETCD_TIMEOUT + 5 * USEC_PER_SEC);
        if (r < 0 || p.error < 0)
                return ctl_fail("Writing %s to etcd at %s failed: %s", what, strna(c->endpoints_text),
                                r < 0 ? strerror(-r) : p.message ?: strerror(-p.error));
        return p.succeeded ? 1 : 0;
}

int ctl_set_config(Ctl *c, const cJSON *config, int64_t mod_revision) {
        return ctl_write(c, dcs_set_config, config, mod_revision, "the config key");
}

int ctl_write_failover(Ctl *c, const cJSON *failover, int64_t mod_revision) {
        return ctl_write(c, dcs_write_failover, failover, mod_revision, "the failover key");
}

static void
on_etcd_reply(EtcdClient *e, int error, const char *message, const cJSON *reply, void *userdata) {
        Pending *p = userdata;

        p->done = true;
        p->error = error;
        p->message = message ? strdup(message) : NULL;
        p->succeeded = error >= 0;
}

int ctl_delete_cluster(Ctl *c) {
        _cleanup_(pending_done) Pending p = {};
        _cleanup_free_ char *end = NULL;
        int r;

        if (!c->dcs)
                return -ENOTCONN;
        end = etcd_prefix_range_end(dcs_prefix(c->dcs));
        if (!end)
                return -ENOMEM;
        r = etcd_delete(c->etcd, dcs_prefix(c->dcs), end, on_etcd_reply, &p, NULL);
        if (r < 0)
                return ctl_fail("Cannot delete %s from etcd: %s", dcs_prefix(c->dcs), strerror(-r));
        r = ctl_wait(c, &p.done, CTL_ETCD_TIMEOUT + 5 * USEC_PER_SEC);
        if (r < 0 || p.error < 0)
                return ctl_fail("Deleting %s from etcd at %s failed: %s", dcs_prefix(c->dcs), strna(c->endpoints_text),
                                r < 0 ? strerror(-r) : p.message ?: strerror(-p.error));
        return 0;
}

/* ==== REST (blocking libcurl) ==== */

typedef struct Buffer {
        char *data;
        size_t size;
} Buffer;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Buffer *b = userdata;
        size_t n = size * nmemb;
        char *t;

        if (b->size + n > 4 * 1024 * 1024)
                return 0;
        t = realloc(b->data, b->size + n + 1);
        if (!t)
                return 0;
        memcpy(t + b->size, ptr, n);
        b->data = t;
        b->size += n;
        t[b->size] = '\0';
        return n;
}

/* scheme://netloc of the api_url followed by /endpoint. */
static int endpoint_url(const char *api_url, const char *endpoint, char **ret) {
        const char *p = strstr(api_url, "://");
        size_t netloc;

        if (!endpoint)
                return (*ret = strdup(api_url)) ? 0 : -ENOMEM;
        if (!p)
                return -EINVAL;
        netloc = (size_t)(p + 3 - api_url) + strcspn(p + 3, "/?#");
        return asprintf(ret, "%.*s/%s", (int)netloc, api_url, endpoint) < 0 ? -ENOMEM : 0;
}

int ctl_rest(
        Ctl *c,
        const DcsMember *m,
        const char *method,
        const char *endpoint,
        const cJSON *body,
        usec_t timeout,
        long *ret_status,
        char **ret_body,
        char **ret_error) {
        _cleanup_free_ char *url = NULL, *json = NULL, *agent = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        Buffer b = {};
        CURL *h;
        CURLcode cc;
        long status = 0;
        int r;

        if (isempty(m->api_url)) {
                (void)asprintf(ret_error, "member %s has no api_url", m->name);
                return -EINVAL;
        }
        r = endpoint_url(m->api_url, endpoint, &url);
        if (r < 0) {
                (void)asprintf(ret_error, "invalid api_url %s", m->api_url);
                return r;
        }
        if (body && ctl_json_dump_string(body, &json) < 0)
                return -ENOMEM;
        h = curl_easy_init();
        if (!h)
                return -ENOMEM;
        if (asprintf(&agent, "pghactl/%s", PGHA_VERSION) < 0)
                agent = NULL;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)((timeout ?: CTL_REST_TIMEOUT) / USEC_PER_MSEC));
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (agent)
                curl_easy_setopt(h, CURLOPT_USERAGENT, agent);
        if (json) {
                headers = curl_slist_append(headers, "Content-Type: application/json");
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
        } else if (!streq(method, "GET"))
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        if (headers)
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        if (c->auth) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERPWD, c->auth);
        }
        if (c->cacert)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
        if (c->cert) {
                curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
                if (c->key)
                        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
                if (c->key_password)
                        curl_easy_setopt(h, CURLOPT_KEYPASSWD, c->key_password);
                /* With a client certificate the chain is verified; -k only skips the host name. */
                if (c->insecure)
                        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        } else if (c->insecure) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }

        cc = curl_easy_perform(h);
        if (cc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        if (cc != CURLE_OK) {
                free(b.data);
                if (ret_error &&
                    asprintf(
                            ret_error,
                            "%s %s: %s",
                            method,
                            url,
                            errbuf[0] ? errbuf : curl_easy_strerror(cc)) < 0)
                        *ret_error = NULL;
                return cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
        }
        *ret_status = status;
        if (ret_body)
                *ret_body = b.data ?: strdup("");
        else
                free(b.data);
        return 0;
}

/* ==== Prompts and time ==== */

static int read_answer(char **ret) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t l;

        fflush(stdout);
        l = getline(&line, &size, stdin);
        if (l < 0) {
                fputc('\n', stdout);
                return -EPIPE;
        }
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
                line[--l] = '\0';
        *ret = TAKE_PTR(line);
        return 0;
}

int ctl_prompt(const char *text, const char *def, char **ret) {
        _cleanup_free_ char *a = NULL;
        int r;

        if (def)
                printf("%s [%s]: ", text, def);
        else
                printf("%s: ", text);
        r = read_answer(&a);
        if (r < 0)
                return r;
        if (isempty(a) && def)
                return (*ret = strdup(def)) ? 0 : -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

int ctl_confirm(const char *text) {
        for (;;) {
                _cleanup_free_ char *a = NULL;
                int r;
                printf("%s [y/N]: ", text);
                r = read_answer(&a);
                if (r < 0)
                        return r;
                if (isempty(a) || strcasecmp(a, "n") == 0 || strcasecmp(a, "no") == 0)
                        return 0;
                if (strcasecmp(a, "y") == 0 || strcasecmp(a, "yes") == 0)
                        return 1;
                printf("Error: invalid input\n");
        }
}

char *ctl_timestamp(unsigned precision) {
        struct timespec ts;
        struct tm tm;
        char buf[64], *s;
        size_t l;

        /* Python: datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')[:precision - 7] */
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
        if (asprintf(&s, "%s.%06ld", buf, ts.tv_nsec / 1000) < 0)
                return NULL;
        l = strlen(s);
        s[l - (7 - MIN(precision, 6U))] = '\0';
        return s;
}

static volatile sig_atomic_t interrupted = 0;

static void on_interrupt(int sig) {
        interrupted = 1;
}

void ctl_catch_interrupt(void) {
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
}

bool ctl_interrupted(void) {
        return interrupted;
}

void ctl_sleep(usec_t t) {
        struct timespec ts = {
                .tv_sec = (time_t)(t / USEC_PER_SEC), .tv_nsec = (long)(t % USEC_PER_SEC) * 1000};
        while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}
