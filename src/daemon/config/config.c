/* SPDX-License-Identifier: MIT */
/*
 * Loading the local configuration: read the file, the directory of files or PATRONI_CONFIGURATION,
 * merge PATRONI_* overrides, walk the merged YAML tree against the key table (config_table.c), then
 * run the cross-field checks. Invariants: every problem found is reported (never only the first), each
 * with the source name and 1-based line/column of the node it concerns; a Config is handed out only
 * when no error was found, and it then has every default applied and every object member non-NULL
 * where config.h says so. Reading files is the only I/O here; config_checks.c also stat()s log.dir and
 * postgresql.bin_dir (warnings only). Nothing checks ports.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-internal.h"
#include "pgha/parse.h"
#include "pgha/fileio.h"
#include "pgha/rest.h"

#define CONFIG_FILE_SIZE_MAX (4U * 1024U * 1024U)

/* ---- diagnostics ---- */

void config_diagnostics_done(ConfigDiagnostics *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->items[i].file);
                free(d->items[i].key);
                free(d->items[i].message);
        }
        d->items = mfree(d->items);
        d->n = 0;
}

bool config_diagnostics_has_errors(const ConfigDiagnostics *d) {
        if (!d)
                return false;
        for (size_t i = 0; i < d->n; i++)
                if (d->items[i].severity == CONFIG_ERROR)
                        return true;
        return false;
}

static size_t config_diagnostics_count_errors(const ConfigDiagnostics *d) {
        size_t n = 0;

        if (!d)
                return 0;
        for (size_t i = 0; i < d->n; i++)
                n += d->items[i].severity == CONFIG_ERROR;
        return n;
}

void config_diagnostics_print(const ConfigDiagnostics *d, FILE *f) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                const ConfigDiagnostic *x = &d->items[i];

                fprintf(f, "%s:%u:%u: ", x->file, x->line, x->column);
                if (!isempty(x->key))
                        fprintf(f, "%s: ", x->key);
                fprintf(f, "%s%s\n", x->severity == CONFIG_WARNING ? "warning: " : "", x->message);
        }
}

static int config_diagnostics_addv(
        ConfigDiagnostics *d,
        ConfigSeverity severity,
        const char *file,
        unsigned line,
        unsigned column,
        const char *key,
        const char *format,
        va_list ap) _printf_(7, 0);
static int config_diagnostics_addv(
        ConfigDiagnostics *d,
        ConfigSeverity severity,
        const char *file,
        unsigned line,
        unsigned column,
        const char *key,
        const char *format,
        va_list ap) {
        ConfigDiagnostic x = {.severity = severity, .line = line, .column = column};
        ConfigDiagnostic *a;

        if (!d)
                return 0;
        x.file = strdup(strempty(file));
        x.key = strdup(strempty(key));
        if (vasprintf(&x.message, format, ap) < 0)
                x.message = NULL;
        if (!x.file || !x.key || !x.message)
                goto oom;
        a = reallocarray(d->items, d->n + 1, sizeof(ConfigDiagnostic));
        if (!a)
                goto oom;
        d->items = a;
        d->items[d->n++] = x;
        return 0;
oom:
        free(x.file);
        free(x.key);
        free(x.message);
        return -ENOMEM;
}

int config_diagnostics_add(
        ConfigDiagnostics *d,
        ConfigSeverity severity,
        const char *file,
        unsigned line,
        unsigned column,
        const char *key,
        const char *format,
        ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = config_diagnostics_addv(d, severity, file, line, column, key, format, ap);
        va_end(ap);
        return r;
}

int config_parser_error(ConfigParser *p, const YNode *n, const char *path, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = config_diagnostics_addv(
                p->diags,
                CONFIG_ERROR,
                n ? n->file : "",
                n ? n->line : 0,
                n ? n->column : 0,
                path,
                format,
                ap);
        va_end(ap);
        return r < 0 ? r : -EINVAL;
}

int config_parser_warning(ConfigParser *p, const YNode *n, const char *path, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = config_diagnostics_addv(
                p->diags,
                CONFIG_WARNING,
                n ? n->file : "",
                n ? n->line : 0,
                n ? n->column : 0,
                path,
                format,
                ap);
        va_end(ap);
        return r;
}

/* config_key_position - where a key is written, for diagnostics about the key itself rather than its
 * value (falls back to the value's position when the key's is unknown). */
YNode config_key_position(const YNode *n) {
        YNode at = {.file = n->file, .line = n->key_line, .column = n->key_column};

        if (at.line == 0 && at.column == 0) {
                at.line = n->line;
                at.column = n->column;
        }
        return at;
}

/* ---- the walk ---- */

bool config_is_dynamic_key(const char *key) {
        return STR_IN_SET(
                key,
                "ttl",
                "loop_wait",
                "retry_timeout",
                "maximum_lag_on_failover",
                "maximum_lag_on_syncnode",
                "max_timelines_history",
                "primary_start_timeout",
                "primary_stop_timeout",
                "master_start_timeout",
                "master_stop_timeout",
                "synchronous_mode",
                "synchronous_mode_strict",
                "synchronous_node_count",
                "failsafe_mode",
                "check_timeline",
                "standby_cluster",
                "slots",
                "permanent_slots",
                "permanent_replication_slots",
                "ignore_slots",
                "pause");
}

static bool node_list_contains(const YNode *l, const char *s) {
        if (!l)
                return false;
        if (l->type == YNODE_SCALAR)
                return streq_ptr(l->value, s);
        if (l->type != YNODE_SEQUENCE)
                return false;
        for (size_t i = 0; i < l->n; i++)
                if (l->items[i]->type == YNODE_SCALAR && streq_ptr(l->items[i]->value, s))
                        return true;
        return false;
}

/* A custom bootstrap or replica-creation method section: stored generically in *target[name]. */
static int
parse_method_section(ConfigParser *p, const YNode *n, const char *path, bool bootstrap, cJSON **target) {
        static const char *const bool_keys[] = {
                "keep_data", "no_params", "no_leader", "no_master", "keep_existing_recovery_conf"};
        bool bad = false;
        cJSON *j;

        if (n->type != YNODE_MAPPING)
                return config_parser_error(
                        p, n, path, "method section must be a mapping, got %s", ynode_type_name(n));
        for (size_t i = 0; i < n->n; i++) {
                const YNode *v = n->items[i];
                _cleanup_free_ char *kp = NULL;

                if (asprintf(&kp, "%s.%s", path, v->key) < 0)
                        return -ENOMEM;
                if (streq(v->key, "command")) {
                        if (v->type != YNODE_SCALAR || ynode_is_null(v)) {
                                config_parser_error(
                                        p, v, kp, "expected a string, got %s", ynode_type_name(v));
                                bad = true;
                        }
                } else if (STR_IN_SET(
                                   v->key,
                                   bool_keys[0],
                                   bool_keys[1],
                                   bool_keys[2],
                                   bool_keys[3],
                                   bool_keys[4])) {
                        if (!ynode_is_null(v) && (v->type != YNODE_SCALAR || parse_boolean(v->value) < 0)) {
                                config_parser_error(
                                        p,
                                        v,
                                        kp,
                                        "invalid boolean (expected on/true/yes/1 or off/false/no/0)");
                                bad = true;
                        }
                } else if (streq(v->key, "recovery_conf")) {
                        if (!ynode_is_null(v) && v->type != YNODE_MAPPING) {
                                config_parser_error(
                                        p, v, kp, "expected a mapping, got %s", ynode_type_name(v));
                                bad = true;
                        }
                }
        }
        if (!ynode_get(n, "command") && !(!bootstrap && streq(n->key, "basebackup"))) {
                config_parser_error(p, n, path, "method section has no command");
                bad = true;
        }
        if (bad)
                return -EINVAL;
        if (!*target) {
                *target = cJSON_CreateObject();
                if (!*target)
                        return -ENOMEM;
        }
        j = ynode_to_json(n);
        if (!j)
                return -ENOMEM;
        cJSON_DeleteItemFromObjectCaseSensitive(*target, n->key);
        if (!cJSON_AddItemToObject(*target, n->key, j)) {
                cJSON_Delete(j);
                return -ENOMEM;
        }
        return 0;
}

static int walk_mapping(ConfigParser *p, const YNode *map, const char *written, const char *canon);

static int
walk_child(ConfigParser *p, const YNode *ch, const char *written_prefix, const char *canon_prefix) {
        _cleanup_free_ char *written = NULL, *canon = NULL;
        const ConfigKey *k;
        YNode kp = config_key_position(ch);
        int r;

        if (asprintf(&written, "%s%s%s", written_prefix, *written_prefix ? "." : "", ch->key) < 0 ||
            asprintf(&canon, "%s%s%s", canon_prefix, *canon_prefix ? "." : "", ch->key) < 0)
                return -ENOMEM;

        if (streq(canon, "etcd")) {
                p->etcd_seen = true;
                r = config_parser_warning(
                        p,
                        &kp,
                        written,
                        "pgha speaks only the etcd v3 API: section 'etcd' is read as 'etcd3' "
                        "(rename it to etcd3)");
                if (r < 0)
                        return r;
                if (free_and_strdup(&canon, "etcd3") < 0)
                        return -ENOMEM;
        } else if (streq(canon, "etcd3"))
                p->etcd3_seen = true;

        k = config_key_find(canon);
        if (k && k->type == CK_ALIAS) {
                if (k->flags & CK_DEPRECATED) {
                        r = config_parser_warning(p, &kp, written, "deprecated, use '%s'", k->alias_of);
                        if (r < 0)
                                return r;
                }
                if (free_and_strdup(&canon, k->alias_of) < 0)
                        return -ENOMEM;
                k = config_key_find(canon);
        }

        if (k) {
                p->seen[k - config_keys] = true;
                if (k->type == CK_SECTION) {
                        if (ynode_is_null(ch))
                                return 0;
                        if (ch->type != YNODE_MAPPING) {
                                r = config_parser_error(
                                        p, ch, written, "expected a mapping, got %s", ynode_type_name(ch));
                                return r == -ENOMEM ? r : 0;
                        }
                        return walk_mapping(p, ch, written, canon);
                }
                r = config_key_parse(p, ch, written, k);
                return r == -ENOMEM ? r : 0;
        }

        /* Not in the table. */
        if (!*canon_prefix && config_is_dynamic_key(ch->key))
                return config_parser_warning(
                        p,
                        &kp,
                        written,
                        "dynamic setting ignored in the local configuration: put it into "
                        "bootstrap.dcs (or change it in the DCS with pghactl edit-config)");
        if (!*canon_prefix &&
            STR_IN_SET(ch->key, "consul", "zookeeper", "exhibitor", "kubernetes", "raft")) {
                r = config_parser_error(
                        p, &kp, written, "DCS '%s' is not supported: pgha uses etcd (v3 API) only", ch->key);
                return r == -ENOMEM ? r : 0;
        }
        if (streq(canon_prefix, "postgresql")) {
                const YNode *pg = ynode_get(p->root, "postgresql");
                const YNode *m =
                        ynode_get(pg, "create_replica_methods") ?: ynode_get(pg, "create_replica_method");

                if (node_list_contains(m, ch->key)) {
                        r = parse_method_section(
                                p, ch, written, false, &p->config->postgresql.replica_methods);
                        return r == -ENOMEM ? r : 0;
                }
        }
        if (streq(canon_prefix, "bootstrap")) {
                const YNode *m = ynode_get(ynode_get(p->root, "bootstrap"), "method");

                if (m && m->type == YNODE_SCALAR && streq_ptr(m->value, ch->key)) {
                        r = parse_method_section(p, ch, written, true, &p->config->bootstrap.methods);
                        return r == -ENOMEM ? r : 0;
                }
        }
        return config_parser_warning(p, &kp, written, "unknown key, ignored");
}

static int walk_mapping(ConfigParser *p, const YNode *map, const char *written, const char *canon) {
        for (size_t i = 0; i < map->n; i++) {
                const YNode *later = NULL;
                int r;

                /* As in PyYAML, the last occurrence of a key wins (whole value, no merging). */
                for (size_t j = i + 1; j < map->n && !later; j++)
                        if (streq_ptr(map->items[j]->key, map->items[i]->key))
                                later = map->items[j];
                if (later) {
                        _cleanup_free_ char *kp = NULL;
                        YNode at = config_key_position(map->items[i]), lat = config_key_position(later);

                        if (asprintf(&kp, "%s%s%s", written, *written ? "." : "", map->items[i]->key) < 0)
                                return -ENOMEM;
                        r = config_parser_warning(
                                p,
                                &at,
                                kp,
                                "duplicate key: this occurrence is ignored, the one at %s:%u:%u wins",
                                lat.file,
                                lat.line,
                                lat.column);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = walk_child(p, map->items[i], written, canon);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Deepest node of the tree along a dotted path (for placing "missing key" errors). */
static const YNode *tree_deepest(const YNode *root, const char *path) {
        const YNode *n = root;
        const char *p = path;

        while (n && *p) {
                size_t l = strcspn(p, ".");
                _cleanup_free_ char *part = strndup(p, l);
                const YNode *c;

                if (!part)
                        break;
                c = ynode_get(n, part);
                if (!c && streq(part, "etcd3"))
                        c = ynode_get(n, "etcd");
                if (!c || c->type != YNODE_MAPPING)
                        break;
                n = c;
                p += l;
                if (*p == '.')
                        p++;
        }
        return n;
}

static int missing(ConfigParser *p, const char *path, const char *what) {
        const YNode *at = tree_deepest(p->root, path);
        YNode pos = at && at != p->root ? config_key_position(at) : (YNode){};
        int r;

        r = config_parser_error(p, at && at != p->root ? &pos : at, path, "%s", what);
        return r == -ENOMEM ? r : 0;
}

static bool is_local_or_wildcard(const char *host) {
        return isempty(host) || STR_IN_SET(host, "127.0.0.1", "0.0.0.0", "*", "::1", "::", "localhost") ||
                startswith(host, "127.");
}

static int copy_address(ConfigAddress *to, const ConfigAddress *from) {
        ConfigAddress a = {.port = from->port};

        a.host = strdup(from->host);
        a.first_host = strdup(from->first_host ?: from->host);
        if (!a.host || !a.first_host) {
                config_address_done(&a);
                return -ENOMEM;
        }
        config_address_done(to);
        *to = a;
        return 0;
}

static int ensure_object(cJSON **j) {
        if (*j)
                return 0;
        *j = cJSON_CreateObject();
        return *j ? 0 : -ENOMEM;
}

/* Where a top-level section's key is written (the root when absent). */
static const YNode *section_pos(ConfigParser *p, const char *name, YNode *buf) {
        const YNode *n = ynode_get(p->root, name);

        if (!n)
                return p->root;
        *buf = config_key_position(n);
        return buf;
}

/* A restapi.allowlist entry: an IP address, a network (host bits allowed) or a host name. */
static bool allowlist_entry_is_valid(const char *v) {
        _cleanup_free_ char *addr = strdup(v);
        uint8_t buf[16];
        char *slash;
        size_t label = 0;

        if (!addr || isempty(v))
                return false;
        slash = strchr(addr, '/');
        if (slash)
                *slash = '\0';
        if (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1) {
                unsigned max = strchr(addr, ':') ? 128 : 32;
                char *end;
                unsigned long prefix;

                if (!slash)
                        return true;
                errno = 0;
                prefix = strtoul(slash + 1, &end, 10);
                return errno == 0 && end != slash + 1 && !*end && prefix <= max;
        }
        if (slash || strspn(v, "0123456789.") == strlen(v) || strlen(v) > 253)
                return false;
        for (const char *c = v; *c; c++)
                if (*c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                } else if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_') || ++label > 63)
                        return false;
        return true;
}

/* restapi_file_check - a certificate/key/CA file that the daemon will read at start-up and on reload. */
static int restapi_file_check(ConfigParser *p, const YNode *sec, const char *key, const char *path) {
        const YNode *v = ynode_get(sec, key);
        _cleanup_free_ char *name = NULL;

        if (!path || access(path, R_OK) >= 0)
                return 0;
        if (asprintf(&name, "restapi.%s", key) < 0)
                return -ENOMEM;
        return config_parser_error(p, v ?: sec ?: p->root, name, "cannot read '%s': %m", path);
}

/* restapi_checks - values of the restapi section the daemon cannot use (Patroni fails on them at start-up,
 * or silently ignores them): errors, or warnings where Patroni goes on. */
static int restapi_checks(ConfigParser *p) {
        const Config *c = p->config;
        const YNode *sec = ynode_get(p->root, "restapi"), *v;
        YNode pos;
        int r, ret = 0;

        if (!sec)
                return 0;
        if (!c->restapi.username != !c->restapi.password) {
                v = ynode_get(sec, "authentication");
                r = config_parser_error(
                        p,
                        v ? (pos = config_key_position(v), &pos) : sec,
                        "restapi.authentication",
                        "needs both username and password (only the %s is set)",
                        c->restapi.username ? "username" : "password");
                if (r == -ENOMEM)
                        return r;
                ret = r;
        }
        if (c->restapi.verify_client && rest_verify_client_from_string(c->restapi.verify_client) < 0) {
                r = config_parser_error(
                        p,
                        ynode_get(sec, "verify_client") ?: sec,
                        "restapi.verify_client",
                        "invalid value '%s' (expected none, optional or required)",
                        c->restapi.verify_client);
                if (r == -ENOMEM)
                        return r;
                ret = r;
        }
        if (c->restapi.certfile) {
                r = restapi_file_check(p, sec, "certfile", c->restapi.certfile);
                if (r >= 0)
                        r = restapi_file_check(p, sec, "keyfile", c->restapi.keyfile);
                if (r >= 0)
                        r = restapi_file_check(p, sec, "cafile", c->restapi.cafile);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        ret = r;
                if (c->restapi.verify_client &&
                    rest_verify_client_from_string(c->restapi.verify_client) > REST_VERIFY_CLIENT_NONE &&
                    !c->restapi.cafile) {
                        r = config_parser_warning(
                                p,
                                ynode_get(sec, "verify_client") ?: sec,
                                "restapi.verify_client",
                                "'%s' without restapi.cafile: no client certificate can be verified, every "
                                "request that needs one is refused",
                                c->restapi.verify_client);
                        if (r < 0)
                                return r;
                }
        } else
                for (const char *const *k =
                             (const char *const[]){"keyfile", "cafile", "verify_client", NULL};
                     *k;
                     k++)
                        if ((v = ynode_get(sec, *k)) && !ynode_is_null(v)) {
                                _cleanup_free_ char *name = NULL;
                                if (asprintf(&name, "restapi.%s", *k) < 0)
                                        return -ENOMEM;
                                r = config_parser_warning(p, v, name, "ignored without restapi.certfile");
                                if (r < 0)
                                        return r;
                        }
        if (c->restapi.ciphers) {
                r = config_parser_warning(
                        p,
                        ynode_get(sec, "ciphers") ?: sec,
                        "restapi.ciphers",
                        "an OpenSSL cipher list, which the GnuTLS back-end cannot use: ignored");
                if (r < 0)
                        return r;
        }
        v = ynode_get(sec, "allowlist");
        for (size_t i = 0; c->restapi.allowlist && c->restapi.allowlist[i]; i++)
                if (!allowlist_entry_is_valid(c->restapi.allowlist[i])) {
                        /* Patroni logs such an entry and goes on without it */
                        r = config_parser_warning(
                                p,
                                v && v->type == YNODE_SEQUENCE && i < v->n ? v->items[i] : v ?: sec,
                                "restapi.allowlist",
                                "'%s' is not an IP address, network or host name: it is ignored",
                                c->restapi.allowlist[i]);
                        if (r < 0)
                                return r;
                }
        return ret;
}

/* "host:port" or "[v6]:port" with a port from 1 to 65535 (Patroni's split_host_port() would fail on
 * anything else at start); NULL when valid, else what is wrong. */
static const char *etcd_host_port_problem(const char *s, size_t len) {
        const char *colon, *port;
        size_t hlen;
        unsigned long v = 0;

        if (len == 0)
                return "empty";
        if (s[0] == '[') {
                const char *close = memchr(s, ']', len);
                if (!close || close == s + 1 || close + 1 >= s + len || close[1] != ':')
                        return "expected [address]:port";
                colon = close + 1;
        } else {
                colon = NULL;
                for (const char *c = s; c < s + len; c++)
                        if (*c == ':')
                                colon = c;
                if (!colon)
                        return "no port";
                if (memchr(s, ':', (size_t)(colon - s)))
                        return "an IPv6 address needs brackets: [address]:port";
        }
        hlen = (size_t)(colon - s);
        if (hlen == 0)
                return "no host";
        for (size_t i = 0; i < hlen; i++)
                if (strchr(" \t/@?#", s[i]))
                        return "invalid character in the host";
        port = colon + 1;
        if (port >= s + len)
                return "no port";
        for (const char *c = port; c < s + len; c++) {
                if (*c < '0' || *c > '9' || v > 65535)
                        return "the port must be a number from 1 to 65535";
                v = v * 10 + (unsigned long)(*c - '0');
        }
        if (v < 1 || v > 65535)
                return "the port must be a number from 1 to 65535";
        return NULL;
}

/* http(s)://[user[:password]@]host[:port][/path]; NULL when valid, else what is wrong. */
static const char *etcd_url_problem(const char *url) {
        const char *rest, *end, *at;
        _cleanup_free_ char *hp = NULL;

        rest = startswith(url, "http://") ?: startswith(url, "https://");
        if (!rest)
                return "expected an http:// or https:// URL";
        end = rest + strcspn(rest, "/?#");
        at = NULL;
        for (const char *c = rest; c < end; c++)
                if (*c == '@')
                        at = c;
        if (at)
                rest = at + 1;
        if (rest == end)
                return "no host";
        if (*rest == '[' ? end[-1] == ']' : !memchr(rest, ':', (size_t)(end - rest))) {
                /* No port: Patroni's default, 2379. */
                if (asprintf(&hp, "%.*s:2379", (int)(end - rest), rest) < 0)
                        return "out of memory";
                return etcd_host_port_problem(hp, strlen(hp));
        }
        return etcd_host_port_problem(rest, (size_t)(end - rest));
}

/* Endpoint values of the etcd section, srv and key_password; errors and warnings with positions. */
static int etcd_section_checks(ConfigParser *p, const char *sec, const YNode *n) {
        Config *c = p->config;
        _cleanup_free_ char *path = NULL;
        const YNode *v;
        int r;

#define SET_PATH(key)                                         \
        do {                                                  \
                path = mfree(path);                           \
                if (asprintf(&path, "%s.%s", sec, (key)) < 0) \
                        return -ENOMEM;                       \
        } while (0)

        if (c->etcd.host) {
                const char *why = etcd_host_port_problem(c->etcd.host, strlen(c->etcd.host));
                if (why) {
                        v = ynode_get(n, "host");
                        SET_PATH("host");
                        r = config_parser_error(
                                p, v ?: n, path, "invalid etcd endpoint '%s': %s", c->etcd.host, why);
                        if (r == -ENOMEM)
                                return r;
                }
        }
        if (c->etcd.hosts) {
                size_t count = 0;

                v = ynode_get(n, "hosts");
                SET_PATH("hosts");
                for (char **h = c->etcd.hosts; *h; h++)
                        count++;
                for (size_t i = 0; i < count; i++) {
                        const char *h = c->etcd.hosts[i];
                        const char *why = startswith(h, "http://") || startswith(h, "https://")
                                ? etcd_url_problem(h)
                                : etcd_host_port_problem(h, strlen(h));
                        const YNode *at = v && v->type == YNODE_SEQUENCE && v->n == count ? v->items[i] : v;

                        if (!why)
                                continue;
                        r = config_parser_error(p, at ?: n, path, "invalid etcd endpoint '%s': %s", h, why);
                        if (r == -ENOMEM)
                                return r;
                }
        }
        for (size_t i = 0; i < 2; i++) {
                const char *key = i == 0 ? "url" : "proxy";
                const char *value = i == 0 ? c->etcd.url : c->etcd.proxy;
                const char *why = value ? etcd_url_problem(value) : NULL;

                if (!why)
                        continue;
                v = ynode_get(n, key);
                SET_PATH(key);
                r = config_parser_error(p, v ?: n, path, "invalid URL '%s': %s", value, why);
                if (r == -ENOMEM)
                        return r;
        }
        if (c->etcd.srv || c->etcd.srv_suffix) {
                const char *key = c->etcd.srv ? "srv" : "srv_suffix";

                v = ynode_get(n, key) ?: ynode_get(n, c->etcd.srv ? "discovery_srv" : "srv_domain");
                SET_PATH(key);
                if (!c->etcd.host && !c->etcd.hosts && !c->etcd.url && !c->etcd.proxy)
                        r = config_parser_error(
                                p,
                                v ?: n,
                                path,
                                "DNS SRV discovery is not supported by pgha: list the etcd members in "
                                "hosts");
                else
                        r = config_parser_warning(
                                p,
                                v ?: n,
                                path,
                                "DNS SRV discovery is not supported by pgha: ignored, the members come from "
                                "%s",
                                c->etcd.proxy           ? "proxy"
                                        : c->etcd.url   ? "url"
                                        : c->etcd.hosts ? "hosts"
                                                        : "host");
                if (r == -ENOMEM)
                        return r;
        }
        if (c->etcd.key_password) {
                v = ynode_get(n, "key_password");
                SET_PATH("key_password");
                r = config_parser_warning(
                        p,
                        v ?: n,
                        path,
                        "ignored: pgha (as Patroni 3.0.2) cannot use an encrypted etcd client key; give an "
                        "unencrypted key file");
                if (r < 0)
                        return r;
        }
#undef SET_PATH
        return 0;
}

static int post_checks(ConfigParser *p) {
        Config *c = p->config;
        YNode pos;
        const YNode *n;
        int r;

        /* Required keys of the table. */
        for (size_t i = 0; i < config_keys_n; i++) {
                const ConfigKey *k = &config_keys[i];
                const void *field = (const uint8_t *)c + k->offset;
                bool unset;

                if (!(k->flags & CK_REQUIRED))
                        continue;
                if (k->type == CK_STRING)
                        unset = isempty(*(char *const *)field);
                else if (IN_SET(k->type, CK_ADDRESS, CK_LISTEN))
                        unset = !((const ConfigAddress *)field)->host;
                else
                        unset = !p->seen[i];
                /* present but invalid: already reported */
                if (unset && !p->seen[i]) {
                        r = missing(p, k->path, "required key is missing");
                        if (r < 0)
                                return r;
                }
        }
        if (isempty(c->postgresql.superuser.username) &&
            !p->seen[config_key_find("postgresql.authentication.superuser.username") - config_keys]) {
                r = missing(p, "postgresql.authentication.superuser.username", "required key is missing");
                if (r < 0)
                        return r;
        }
        if (isempty(c->postgresql.replication.username) &&
            !p->seen[config_key_find("postgresql.authentication.replication.username") - config_keys]) {
                r = missing(p, "postgresql.authentication.replication.username", "required key is missing");
                if (r < 0)
                        return r;
        }

        /* DCS section. */
        if (p->etcd_seen && p->etcd3_seen) {
                n = ynode_get(p->root, "etcd");
                r = config_parser_error(
                        p, n, "etcd", "both 'etcd' and 'etcd3' sections are present: keep only etcd3");
                if (r == -ENOMEM)
                        return r;
        } else if (!p->etcd_seen && !p->etcd3_seen) {
                if (!ynode_get(p->root, "consul") && !ynode_get(p->root, "zookeeper") &&
                    !ynode_get(p->root, "exhibitor") && !ynode_get(p->root, "kubernetes") &&
                    !ynode_get(p->root, "raft")) {
                        r =
                                missing(p,
                                        "etcd3",
                                        "no DCS section: add an etcd3 section with hosts (or host, url, "
                                        "proxy, srv)");
                        if (r < 0)
                                return r;
                }
        } else {
                const char *sec = p->etcd3_seen ? "etcd3" : "etcd";

                r = free_and_strdup(&c->etcd.section, sec);
                if (r < 0)
                        return r;
                n = ynode_get(p->root, sec);
                if (!c->etcd.host && !c->etcd.hosts && !c->etcd.url && !c->etcd.proxy && !c->etcd.srv &&
                    !c->etcd.srv_suffix) {
                        r = config_parser_error(
                                p,
                                section_pos(p, sec, &pos),
                                sec,
                                "one of host, hosts, url, proxy, srv or srv_suffix is required");
                        if (r == -ENOMEM)
                                return r;
                }
                if (c->etcd.protocol && !STR_IN_SET(c->etcd.protocol, "http", "https")) {
                        const YNode *v = ynode_get(n, "protocol");
                        r = config_parser_error(
                                p,
                                v ?: n,
                                v ? (p->etcd3_seen ? "etcd3.protocol" : "etcd.protocol") : sec,
                                "invalid protocol '%s' (expected http or https)",
                                c->etcd.protocol);
                        if (r == -ENOMEM)
                                return r;
                }
                if (c->etcd.host && !strchr(c->etcd.host, ':')) {
                        _cleanup_free_ char *s = NULL;
                        if (asprintf(&s, "%s:%d", c->etcd.host, c->etcd.port) < 0)
                                return -ENOMEM;
                        free(c->etcd.host);
                        c->etcd.host = TAKE_PTR(s);
                }
                if (c->etcd.hosts)
                        for (char **h = c->etcd.hosts; *h; h++)
                                if (!strchr(*h, ':') && !startswith(*h, "http")) {
                                        /* default port, as Patroni does */
                                        _cleanup_free_ char *s = NULL;
                                        if (asprintf(&s, "%s:%d", *h, c->etcd.port) < 0)
                                                return -ENOMEM;
                                        free(*h);
                                        *h = TAKE_PTR(s);
                                }
                r = etcd_section_checks(p, sec, n);
                if (r < 0)
                        return r;
        }

        r = restapi_checks(p);
        if (r == -ENOMEM)
                return r;

        /* Addresses. */
        if (c->restapi.listen.host && !c->restapi.connect_address.host) {
                r = config_parser_warning(
                        p,
                        section_pos(p, "restapi", &pos),
                        "restapi.connect_address",
                        "not set, using restapi.listen (%s:%u)",
                        c->restapi.listen.host,
                        c->restapi.listen.port);
                if (r < 0)
                        return r;
                r = copy_address(&c->restapi.connect_address, &c->restapi.listen);
                if (r < 0)
                        return r;
        } else if (
                c->restapi.connect_address.host && is_local_or_wildcard(c->restapi.connect_address.host)) {
                r = config_parser_warning(
                        p,
                        ynode_get(ynode_get(p->root, "restapi"), "connect_address") ?: p->root,
                        "restapi.connect_address",
                        "'%s' is a loopback or wildcard address: other members and clients on other "
                        "hosts cannot reach it",
                        c->restapi.connect_address.host);
                if (r < 0)
                        return r;
        }
        if (c->postgresql.listen.host && !c->postgresql.connect_address.host) {
                ConfigAddress a = {.port = c->postgresql.listen.port};
                const char *h = c->postgresql.listen.first_host;

                if (isempty(h) || STR_IN_SET(h, "0.0.0.0", "*", "::"))
                        h = "127.0.0.1";
                r = config_parser_warning(
                        p,
                        section_pos(p, "postgresql", &pos),
                        "postgresql.connect_address",
                        "not set, using %s:%u from postgresql.listen",
                        h,
                        a.port);
                if (r < 0)
                        return r;
                a.host = strdup(h);
                a.first_host = strdup(h);
                if (!a.host || !a.first_host) {
                        config_address_done(&a);
                        return -ENOMEM;
                }
                config_address_done(&c->postgresql.connect_address);
                c->postgresql.connect_address = a;
        } else if (
                c->postgresql.connect_address.host &&
                is_local_or_wildcard(c->postgresql.connect_address.host)) {
                r = config_parser_warning(
                        p,
                        ynode_get(ynode_get(p->root, "postgresql"), "connect_address") ?: p->root,
                        "postgresql.connect_address",
                        "'%s' is a loopback or wildcard address: replicas on other hosts cannot "
                        "reach it",
                        c->postgresql.connect_address.host);
                if (r < 0)
                        return r;
        }

        /* Custom bootstrap method. */
        if (c->bootstrap.method && !streq(c->bootstrap.method, "initdb") &&
            !cJSON_GetObjectItemCaseSensitive(c->bootstrap.methods, c->bootstrap.method) &&
            !ynode_get(ynode_get(p->root, "bootstrap"), c->bootstrap.method)) {
                n = ynode_get(ynode_get(p->root, "bootstrap"), "method");
                r = config_parser_error(
                        p,
                        n,
                        "bootstrap.method",
                        "no section bootstrap.%s for this method",
                        c->bootstrap.method);
                if (r == -ENOMEM)
                        return r;
        }
        if (c->postgresql.create_replica_methods)
                for (char **m = c->postgresql.create_replica_methods; *m; m++)
                        if (!streq(*m, "basebackup") && !ynode_get(ynode_get(p->root, "postgresql"), *m)) {
                                n = ynode_get(ynode_get(p->root, "postgresql"), "create_replica_methods")
                                        ?: ynode_get(
                                                   ynode_get(p->root, "postgresql"),
                                                   "create_replica_method");
                                r = config_parser_warning(
                                        p,
                                        n,
                                        "postgresql.create_replica_methods",
                                        "no section postgresql.%s: method '%s' will be skipped",
                                        *m,
                                        *m);
                                if (r < 0)
                                        return r;
                        }

        /* Citus. */
        n = ynode_get(p->root, "citus");
        if (n && n->type == YNODE_MAPPING) {
                c->citus.enabled = true;
                if (!ynode_get(n, "group")) {
                        r = missing(p, "citus.group", "required key is missing");
                        if (r < 0)
                                return r;
                }
                if (!c->citus.database) {
                        r = missing(p, "citus.database", "required key is missing");
                        if (r < 0)
                                return r;
                }
        }

        /* Defaults that are not scalars. */
        if (!c->postgresql.config_dir && c->postgresql.data_dir) {
                c->postgresql.config_dir = strdup(c->postgresql.data_dir);
                if (!c->postgresql.config_dir)
                        return -ENOMEM;
        }
        if (!c->postgresql.create_replica_methods) {
                c->postgresql.create_replica_methods = calloc(2, sizeof(char *));
                if (!c->postgresql.create_replica_methods)
                        return -ENOMEM;
                c->postgresql.create_replica_methods[0] = strdup("basebackup");
                if (!c->postgresql.create_replica_methods[0])
                        return -ENOMEM;
        }
        if (ensure_object(&c->tags) < 0 || ensure_object(&c->postgresql.parameters) < 0 ||
            ensure_object(&c->bootstrap.dcs) < 0)
                return -ENOMEM;
        if (c->citus.enabled && !cJSON_GetObjectItemCaseSensitive(c->bootstrap.dcs, "synchronous_mode") &&
            !cJSON_AddTrueToObject(c->bootstrap.dcs, "synchronous_mode"))
                return -ENOMEM;
        return 0;
}

static int config_from_tree(const YNode *root, char **sources, Config **ret, ConfigDiagnostics *diags) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ bool *seen = NULL;
        size_t errors_before = config_diagnostics_count_errors(diags);
        ConfigParser p;
        int r;

        c = calloc(1, sizeof(Config));
        seen = calloc(config_keys_n, sizeof(bool));
        if (!c || !seen) {
                strv_free(sources);
                return -ENOMEM;
        }
        c->sources = sources;
        for (size_t i = 0; i < config_keys_n; i++) {
                r = config_key_set_default(c, &config_keys[i]);
                if (r < 0)
                        return r;
        }

        p = (ConfigParser){.config = c, .diags = diags, .seen = seen, .root = root};
        if (root->type != YNODE_MAPPING) {
                r = config_parser_error(
                        &p, root, "", "the configuration must be a mapping, got %s", ynode_type_name(root));
                return r == -ENOMEM ? r : -EINVAL;
        }
        r = walk_mapping(&p, root, "", "");
        if (r < 0)
                return r;
        c->bootstrap.present = ynode_get(root, "bootstrap") != NULL;
        r = post_checks(&p);
        if (r < 0)
                return r;
        r = config_extra_checks(&p);
        if (r < 0)
                return r;
        if (config_diagnostics_count_errors(diags) > errors_before)
                return -EINVAL;
        *ret = TAKE_PTR(c);
        return 0;
}

static int strv_add(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char **a, *d;

        d = strdup(s);
        if (!d)
                return -ENOMEM;
        a = reallocarray(*l, n + 2, sizeof(char *));
        if (!a) {
                free(d);
                return -ENOMEM;
        }
        a[n] = d;
        a[n + 1] = NULL;
        *l = a;
        return 0;
}

static int load_file(const char *path, YNode **root, char ***sources, ConfigDiagnostics *diags) {
        _cleanup_free_ char *text = NULL;
        YNode *n = NULL;
        int r;

        r = read_full_file(path, CONFIG_FILE_SIZE_MAX, &text, NULL);
        if (r < 0) {
                (void)config_diagnostics_add(
                        diags, CONFIG_ERROR, path, 0, 0, "", "cannot read: %s", strerror(-r));
                return r;
        }
        r = strv_add(sources, path);
        if (r < 0)
                return r;
        r = ynode_parse(path, text, false, &n, diags);
        if (r < 0)
                return r;
        return ynode_merge(root, n);
}

static int yaml_name_filter(const struct dirent *de) {
        return de->d_name[0] != '.' && (endswith(de->d_name, ".yml") || endswith(de->d_name, ".yaml"));
}

static int name_compare(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int load_directory(const char *path, YNode **root, char ***sources, ConfigDiagnostics *diags) {
        struct dirent **names = NULL;
        int n, ret = 0;

        n = scandir(path, &names, yaml_name_filter, name_compare);
        if (n < 0) {
                int r = -errno;
                (void)config_diagnostics_add(
                        diags, CONFIG_ERROR, path, 0, 0, "", "cannot read directory: %s", strerror(errno));
                return r;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *full = NULL;
                int r;

                if (asprintf(&full, "%s%s%s", path, endswith(path, "/") ? "" : "/", names[i]->d_name) < 0)
                        r = -ENOMEM;
                else
                        r = load_file(full, root, sources, diags);
                /* Keep going so that every file's problems are reported; remember the first failure. */
                if (r < 0 && (ret == 0 || ret == -EINVAL))
                        ret = r;
                free(names[i]);
        }
        free(names);
        return ret;
}

int config_load(const char *path, Config **ret, ConfigDiagnostics *diags) {
        _cleanup_(ynode_freep) YNode *root = NULL, *env = NULL;
        ConfigDiagnostics local = {};
        Config *c = NULL;
        char **sources = NULL;
        size_t errors_before;
        const char *conf;
        int r = 0;

        if (!diags)
                diags = &local;
        errors_before = config_diagnostics_count_errors(diags);

        if (path) {
                struct stat st;

                if (stat(path, &st) < 0) {
                        r = -errno;
                        (void)config_diagnostics_add(
                                diags, CONFIG_ERROR, path, 0, 0, "", "cannot read: %s", strerror(errno));
                        goto finish;
                }
                if (S_ISDIR(st.st_mode))
                        r = load_directory(path, &root, &sources, diags);
                else
                        r = load_file(path, &root, &sources, diags);
                if (r < 0 && r != -EINVAL)
                        goto finish;
                r = config_env_tree(&env, diags);
        } else if ((conf = config_env_get("PATRONI_CONFIGURATION"))) {
                r = strv_add(&sources, "PATRONI_CONFIGURATION");
                if (r >= 0)
                        r = ynode_parse("PATRONI_CONFIGURATION", conf, false, &root, diags);
        } else {
                r = strv_add(&sources, "environment");
                if (r >= 0)
                        r = config_env_tree(&env, diags);
        }
        if (r < 0 && r != -EINVAL)
                goto finish;
        if (env) {
                r = ynode_merge(&root, TAKE_PTR(env));
                if (r < 0)
                        goto finish;
        }
        if (!root || (root->type == YNODE_MAPPING && root->n == 0)) {
                if (config_diagnostics_count_errors(diags) == errors_before)
                        (void)config_diagnostics_add(
                                diags,
                                CONFIG_ERROR,
                                path ?: (sources && sources[0] ? sources[0] : "environment"),
                                0,
                                0,
                                "",
                                "Config is empty.");
                r = -EINVAL;
                goto finish;
        }
        r = config_from_tree(root, TAKE_PTR(sources), &c, diags);
        if (r >= 0 && config_diagnostics_count_errors(diags) > errors_before) {
                c = config_free(c);
                r = -EINVAL;
        }
        if (r >= 0)
                *ret = c;
finish:
        strv_free(sources);
        config_diagnostics_done(&local);
        if (r >= 0 && config_diagnostics_count_errors(diags) > errors_before)
                r = -EINVAL;
        return r;
}

int config_load_string(const char *name, const char *yaml, Config **ret, ConfigDiagnostics *diags) {
        _cleanup_(ynode_freep) YNode *root = NULL;
        ConfigDiagnostics local = {};
        char **sources = NULL;
        int r;

        if (!diags)
                diags = &local;
        r = ynode_parse(name, yaml, false, &root, diags);
        if (r >= 0 && !root) {
                (void)config_diagnostics_add(diags, CONFIG_ERROR, name, 0, 0, "", "Config is empty.");
                r = -EINVAL;
        }
        if (r >= 0)
                r = strv_add(&sources, name);
        if (r >= 0)
                r = config_from_tree(root, TAKE_PTR(sources), ret, diags);
        strv_free(sources);
        config_diagnostics_done(&local);
        return r;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < config_keys_n; i++)
                if (!IN_SET(config_keys[i].type, CK_SECTION, CK_ALIAS))
                        config_key_free_field(c, &config_keys[i]);
        /* Fields outside the table. */
        free(c->etcd.section);
        free(c->tag.replicatefrom);
        cJSON_Delete(c->bootstrap.methods);
        cJSON_Delete(c->postgresql.replica_methods);
        strv_free(c->sources);
        return mfree(c);
}

/* Places v at the dotted path inside obj, creating intermediate objects. Consumes v. */
static int json_set_path(cJSON *obj, const char *path, cJSON *v) {
        const char *dot = strchr(path, '.');

        if (!dot) {
                cJSON_DeleteItemFromObjectCaseSensitive(obj, path);
                if (!cJSON_AddItemToObject(obj, path, v)) {
                        cJSON_Delete(v);
                        return -ENOMEM;
                }
                return 0;
        }
        {
                _cleanup_free_ char *head = strndup(path, dot - path);
                cJSON *sub;

                if (!head) {
                        cJSON_Delete(v);
                        return -ENOMEM;
                }
                sub = cJSON_GetObjectItemCaseSensitive(obj, head);
                if (!sub) {
                        sub = cJSON_AddObjectToObject(obj, head);
                        if (!sub) {
                                cJSON_Delete(v);
                                return -ENOMEM;
                        }
                }
                return json_set_path(sub, dot + 1, v);
        }
}

static void mask_users(cJSON *users) {
        cJSON *u;

        cJSON_ArrayForEach (u, users) {
                cJSON *pw = cJSON_GetObjectItemCaseSensitive(u, "password");
                if (pw)
                        cJSON_ReplaceItemInObjectCaseSensitive(
                                u, "password", cJSON_CreateString("********"));
        }
}

cJSON *config_to_json(const Config *c, bool mask_secrets) {
        cJSON *j;

        j = cJSON_CreateObject();
        if (!j)
                return NULL;
        for (size_t i = 0; i < config_keys_n; i++) {
                const ConfigKey *k = &config_keys[i];
                cJSON *v;

                if (IN_SET(k->type, CK_SECTION, CK_ALIAS))
                        continue;
                v = config_key_to_json(c, k, mask_secrets);
                if (!v)
                        continue;
                if (mask_secrets && (k->flags & CK_SECRET) && cJSON_IsObject(v))
                        mask_users(v);
                if (json_set_path(j, streq(k->path, "etcd3") ? k->path : k->path, v) < 0) {
                        cJSON_Delete(j);
                        return NULL;
                }
        }
        /* Method sections live beside the table's keys. */
        for (int pass = 0; pass < 2; pass++) {
                const cJSON *methods = pass == 0 ? c->bootstrap.methods : c->postgresql.replica_methods;
                const cJSON *m;

                cJSON_ArrayForEach (m, methods) {
                        _cleanup_free_ char *path = NULL;
                        cJSON *dup = cJSON_Duplicate(m, true);

                        if (!dup ||
                            asprintf(&path, "%s.%s", pass == 0 ? "bootstrap" : "postgresql", m->string) <
                                    0 ||
                            json_set_path(j, path, dup) < 0) {
                                if (!path)
                                        cJSON_Delete(dup);
                                cJSON_Delete(j);
                                return NULL;
                        }
                }
        }
        return j;
}

bool config_needs_restart(const Config *old, const Config *new_config, char **ret_keys) {
        _cleanup_free_ char *keys = NULL;
        bool changed = false;

        for (size_t i = 0; i < config_keys_n; i++) {
                const ConfigKey *k = &config_keys[i];
                cJSON *a, *b;
                bool same;

                if (!(k->flags & CK_NO_RELOAD) || IN_SET(k->type, CK_SECTION, CK_ALIAS))
                        continue;
                a = config_key_to_json(old, k, false);
                b = config_key_to_json(new_config, k, false);
                same = (!a && !b) || (a && b && cJSON_Compare(a, b, true));
                cJSON_Delete(a);
                cJSON_Delete(b);
                if (same)
                        continue;
                changed = true;
                if (ret_keys) {
                        char *s = NULL;

                        if (asprintf(&s, "%s%s%s", strempty(keys), keys ? ", " : "", k->path) < 0)
                                return changed;
                        free(keys);
                        keys = s;
                }
        }
        if (ret_keys && changed)
                *ret_keys = TAKE_PTR(keys);
        return changed;
}
