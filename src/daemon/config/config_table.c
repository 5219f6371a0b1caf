/* SPDX-License-Identifier: MIT */
/*
 * The key table: every local configuration key Patroni 3.0.2 knows, with its type, its place in
 * Config, its default, flags (REQUIRED, NO_RELOAD, SECRET, aliases) and, where the generic type is not
 * enough, a parser of its own. Invariant: parsing, defaults, freeing, JSON output and the reload diff
 * are all driven from this one table, so a key added here is handled everywhere.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "config-internal.h"
#include "pgha/log.h"
#include "pgha/parse.h"

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        return mfree(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        if (!l)
                return 0;
        while (l[n])
                n++;
        return n;
}

bool strv_contains(char *const *l, const char *s) {
        if (!l)
                return false;
        for (; *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

static int strv_push(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char **a, *c;

        c = strdup(s);
        if (!c)
                return -ENOMEM;
        a = reallocarray(*l, n + 2, sizeof(char *));
        if (!a) {
                free(c);
                return -ENOMEM;
        }
        a[n] = c;
        a[n + 1] = NULL;
        *l = a;
        return 0;
}

void config_address_done(ConfigAddress *a) {
        a->host = mfree(a->host);
        a->first_host = mfree(a->first_host);
        a->port = 0;
}

static char *strip_brackets(const char *s, size_t l) {
        while (l > 0 && (*s == ' ' || *s == '\t')) {
                s++;
                l--;
        }
        while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
                l--;
        if (l >= 2 && s[0] == '[' && s[l - 1] == ']') {
                s++;
                l -= 2;
        }
        return strndup(s, l);
}

/* "host:port", "[v6]:port", or with multi_host "h1,h2:port". Returns -EINVAL (shape) or -ERANGE
 * (port). */
int config_address_parse(const char *s, bool multi_host, ConfigAddress *ret) {
        _cleanup_free_ char *host = NULL, *first = NULL;
        const char *colon, *comma;
        uint16_t port;
        int r;

        if (isempty(s))
                return -EINVAL;
        colon = strrchr(s, ':');
        if (!colon)
                return -EINVAL;
        r = parse_port(colon + 1, &port);
        if (r < 0)
                return r == -EINVAL && colon[1] != '\0' &&
                                strspn(colon + 1, "0123456789") == strlen(colon + 1)
                        ? -ERANGE
                        : r;
        if (!multi_host && memchr(s, ',', colon - s))
                return -EINVAL;
        host = strip_brackets(s, colon - s);
        if (!host)
                return -ENOMEM;
        comma = multi_host ? strchr(host, ',') : NULL;
        first = strip_brackets(host, comma ? (size_t)(comma - host) : strlen(host));
        if (!first)
                return -ENOMEM;
        ret->host = TAKE_PTR(host);
        ret->first_host = TAKE_PTR(first);
        ret->port = port;
        return 0;
}

static const char *scalar_or_null(ConfigParser *p, const YNode *n, const char *path, const char *what) {
        if (n->type != YNODE_SCALAR) {
                config_parser_error(p, n, path, "expected %s, got %s", what, ynode_type_name(n));
                return NULL;
        }
        return n->value;
}

static int
generic_parse(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        const char *v;
        int r;

        if (ynode_is_null(n) && k->type != CK_JSON_ANY)
                return 0; /* "key:" with no value: keep the default, as Patroni's None does */

        switch (k->type) {
        case CK_STRING:
                v = scalar_or_null(p, n, path, "a string");
                if (!v)
                        return -EINVAL;
                return free_and_strdup(field, v);

        case CK_BOOL:
                v = scalar_or_null(p, n, path, "a boolean");
                if (!v)
                        return -EINVAL;
                r = parse_boolean(v);
                if (r < 0)
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "invalid boolean '%s' (expected on/true/yes/1 or off/false/no/0)",
                                v);
                *(bool *)field = r;
                return 0;

        case CK_INT:
        case CK_INT64: {
                long long ll;

                v = scalar_or_null(p, n, path, "an integer");
                if (!v)
                        return -EINVAL;
                r = safe_atolli(v, &ll);
                if (r == -ERANGE)
                        return config_parser_error(p, n, path, "integer '%s' is out of range", v);
                if (r < 0)
                        return config_parser_error(p, n, path, "expected an integer, got '%s'", v);
                if (k->type == CK_INT && (ll < INT32_MIN || ll > INT32_MAX))
                        return config_parser_error(p, n, path, "integer '%s' is out of range", v);
                if (k->min < k->max && (ll < k->min || ll > k->max))
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "value %lld is out of range [%" PRIi64 ", %" PRIi64 "]",
                                ll,
                                k->min,
                                k->max);
                if (k->type == CK_INT)
                        *(int *)field = (int)ll;
                else
                        *(int64_t *)field = ll;
                return 0;
        }

        case CK_DURATION: {
                usec_t u;

                v = scalar_or_null(p, n, path, "a duration");
                if (!v)
                        return -EINVAL;
                r = parse_duration(v, &u);
                if (r < 0)
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "invalid duration '%s' (integer seconds, or with a unit: us, ms, s, min, h, "
                                "d)",
                                v);
                if (k->min < k->max &&
                    (u < (usec_t)k->min * USEC_PER_SEC || u > (usec_t)k->max * USEC_PER_SEC))
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "duration '%s' is out of range [%" PRIi64 "s, %" PRIi64 "s]",
                                v,
                                k->min,
                                k->max);
                *(usec_t *)field = u;
                return 0;
        }

        case CK_ADDRESS:
        case CK_LISTEN: {
                ConfigAddress a = {};

                v = scalar_or_null(p, n, path, "an address");
                if (!v)
                        return -EINVAL;
                r = config_address_parse(v, k->type == CK_LISTEN, &a);
                if (r == -ERANGE)
                        return config_parser_error(
                                p, n, path, "invalid port in '%s' (expected 1..65535)", v);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "invalid address '%s' (expected %s)",
                                v,
                                k->type == CK_LISTEN ? "host[,host...]:port" : "host:port");
                config_address_done(field);
                *(ConfigAddress *)field = a;
                return 0;
        }

        case CK_STRV:
        case CK_STRV_COMMA: {
                char **l = NULL;

                if (n->type == YNODE_SCALAR && k->type == CK_STRV_COMMA) {
                        const char *s = n->value;

                        while (*s) {
                                size_t len = strcspn(s, ",");
                                _cleanup_free_ char *item = strip_brackets(s, len);

                                if (!item) {
                                        strv_free(l);
                                        return -ENOMEM;
                                }
                                if (!isempty(item) && strv_push(&l, item) < 0) {
                                        strv_free(l);
                                        return -ENOMEM;
                                }
                                s += len;
                                if (*s == ',')
                                        s++;
                        }
                } else if (n->type == YNODE_SEQUENCE) {
                        bool bad = false;

                        for (size_t i = 0; i < n->n; i++) {
                                const YNode *item = n->items[i];

                                if (item->type != YNODE_SCALAR || ynode_is_null(item)) {
                                        config_parser_error(
                                                p,
                                                item,
                                                path,
                                                "list items must be strings, got %s",
                                                ynode_type_name(item));
                                        bad = true;
                                        continue;
                                }
                                if (strv_push(&l, item->value) < 0) {
                                        strv_free(l);
                                        return -ENOMEM;
                                }
                        }
                        if (bad) {
                                strv_free(l);
                                return -EINVAL;
                        }
                } else
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "expected a list%s, got %s",
                                k->type == CK_STRV_COMMA ? " or a comma separated string" : "",
                                ynode_type_name(n));
                if (!l) {
                        l = calloc(1, sizeof(char *));
                        if (!l)
                                return -ENOMEM;
                }
                strv_free(*(char ***)field);
                *(char ***)field = l;
                return 0;
        }

        case CK_JSON_OBJECT:
        case CK_JSON_ANY: {
                cJSON *j;

                if (k->type == CK_JSON_OBJECT && n->type != YNODE_MAPPING)
                        return config_parser_error(
                                p, n, path, "expected a mapping, got %s", ynode_type_name(n));
                j = ynode_to_json(n);
                if (!j)
                        return -ENOMEM;
                cJSON_Delete(*(cJSON **)field);
                *(cJSON **)field = j;
                return 0;
        }

        case CK_LOG_LEVEL:
                v = scalar_or_null(p, n, path, "a log level");
                if (!v)
                        return -EINVAL;
                r = log_level_from_string(v);
                if (r < 0)
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "invalid log level '%s' (expected DEBUG, INFO, WARNING, ERROR or CRITICAL)",
                                v);
                *(int *)field = r;
                return 0;

        case CK_WATCHDOG_MODE: {
                WatchdogMode m;

                v = scalar_or_null(p, n, path, "a watchdog mode");
                if (!v)
                        return -EINVAL;
                m = watchdog_mode_from_string(v);
                if (m < 0)
                        return config_parser_error(
                                p,
                                n,
                                path,
                                "invalid watchdog mode '%s' (expected off, automatic or required)",
                                v);
                *(WatchdogMode *)field = m;
                return 0;
        }

        case CK_WATCHDOG_DRIVER: {
                WatchdogDriver d;

                v = scalar_or_null(p, n, path, "a watchdog driver");
                if (!v)
                        return -EINVAL;
                d = watchdog_driver_from_string(v);
                if (d < 0)
                        return config_parser_error(
                                p, n, path, "invalid watchdog driver '%s' (expected default or testing)", v);
                *(WatchdogDriver *)field = d;
                return 0;
        }

        default:
                return -EINVAL;
        }
}

int config_key_parse(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k) {
        void *field = (uint8_t *)p->config + k->offset;

        if (k->parse)
                return k->parse(p, n, path, k, field);
        return generic_parse(p, n, path, k, field);
}

int config_key_set_default(Config *c, const ConfigKey *k) {
        ConfigParser p = {.config = c};
        YNode n = {
                .type = YNODE_SCALAR, .file = (char *)"<default>", .value = (char *)k->def, .quoted = true};

        if (!k->def || k->type == CK_SECTION || k->type == CK_ALIAS)
                return 0;
        return generic_parse(&p, &n, k->path, k, (uint8_t *)c + k->offset);
}

void config_key_free_field(Config *c, const ConfigKey *k) {
        void *field = (uint8_t *)c + k->offset;

        switch (k->type) {
        case CK_STRING:
                *(char **)field = mfree(*(char **)field);
                break;
        case CK_ADDRESS:
        case CK_LISTEN:
                config_address_done(field);
                break;
        case CK_STRV:
        case CK_STRV_COMMA:
                *(char ***)field = strv_free(*(char ***)field);
                break;
        case CK_JSON_OBJECT:
        case CK_JSON_ANY:
                cJSON_Delete(*(cJSON **)field);
                *(cJSON **)field = NULL;
                break;
        default:
                break;
        }
}

cJSON *config_key_to_json(const Config *c, const ConfigKey *k, bool mask_secrets) {
        const void *field = (const uint8_t *)c + k->offset;

        switch (k->type) {
        case CK_STRING: {
                const char *s = *(char *const *)field;
                if (!s)
                        return NULL;
                return cJSON_CreateString(mask_secrets && (k->flags & CK_SECRET) ? "********" : s);
        }
        case CK_BOOL:
                return cJSON_CreateBool(*(const bool *)field);
        case CK_INT:
                return cJSON_CreateNumber(*(const int *)field);
        case CK_INT64:
                return cJSON_CreateNumber((double)*(const int64_t *)field);
        case CK_DURATION: {
                usec_t u = *(const usec_t *)field;
                char buf[64];

                if (u % USEC_PER_SEC == 0)
                        return cJSON_CreateNumber((double)(u / USEC_PER_SEC));
                if (u % USEC_PER_MSEC == 0)
                        (void)snprintf(buf, sizeof(buf), "%" PRIu64 "ms", u / USEC_PER_MSEC);
                else
                        (void)snprintf(buf, sizeof(buf), "%" PRIu64 "us", u);
                return cJSON_CreateString(buf);
        }
        case CK_ADDRESS:
        case CK_LISTEN: {
                const ConfigAddress *a = field;
                char buf[1100];
                bool v6 = k->type == CK_ADDRESS && a->host && strchr(a->host, ':');

                if (!a->host)
                        return NULL;
                (void)snprintf(
                        buf, sizeof(buf), "%s%s%s:%u", v6 ? "[" : "", a->host, v6 ? "]" : "", a->port);
                return cJSON_CreateString(buf);
        }
        case CK_STRV:
        case CK_STRV_COMMA: {
                char *const *l = *(char **const *)field;
                if (!l)
                        return NULL;
                return cJSON_CreateStringArray((const char *const *)l, (int)strv_length(l));
        }
        case CK_JSON_OBJECT:
        case CK_JSON_ANY: {
                const cJSON *j = *(cJSON *const *)field;
                return j ? cJSON_Duplicate(j, true) : NULL;
        }
        case CK_LOG_LEVEL:
                return cJSON_CreateString(log_level_to_string(*(const int *)field));
        case CK_WATCHDOG_MODE:
                return cJSON_CreateString(watchdog_mode_to_string(*(const WatchdogMode *)field));
        case CK_WATCHDOG_DRIVER:
                return cJSON_CreateString(watchdog_driver_to_string(*(const WatchdogDriver *)field));
        default:
                return NULL;
        }
}

/* ---- custom parsers ---- */

static int parse_tags(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        Config *c = p->config;
        cJSON *j;
        bool bad = false;

        if (ynode_is_null(n))
                return 0;
        if (n->type != YNODE_MAPPING)
                return config_parser_error(p, n, path, "expected a mapping, got %s", ynode_type_name(n));
        j = cJSON_CreateObject();
        if (!j)
                return -ENOMEM;
        for (size_t i = 0; i < n->n; i++) {
                const YNode *t = n->items[i];
                _cleanup_free_ char *tp = NULL;
                cJSON *v = NULL;

                if (asprintf(&tp, "%s.%s", path, t->key) < 0) {
                        cJSON_Delete(j);
                        return -ENOMEM;
                }
                if (t->type != YNODE_SCALAR) {
                        config_parser_error(
                                p, t, tp, "tag values must be scalars, got %s", ynode_type_name(t));
                        bad = true;
                        continue;
                }
                if (STR_IN_SET(t->key, "nofailover", "clonefrom", "noloadbalance", "nosync")) {
                        int b = ynode_is_null(t) ? 0 : parse_boolean(t->value);

                        if (b < 0) {
                                config_parser_error(
                                        p,
                                        t,
                                        tp,
                                        "invalid boolean '%s' (expected on/true/yes/1 or off/false/no/0)",
                                        t->value);
                                bad = true;
                                continue;
                        }
                        if (streq(t->key, "nofailover"))
                                c->tag.nofailover = b;
                        else if (streq(t->key, "clonefrom"))
                                c->tag.clonefrom = b;
                        else if (streq(t->key, "noloadbalance"))
                                c->tag.noloadbalance = b;
                        else
                                c->tag.nosync = b;
                        v = cJSON_CreateBool(b);
                } else {
                        if (streq(t->key, "replicatefrom") && !ynode_is_null(t) &&
                            free_and_strdup(&c->tag.replicatefrom, t->value) < 0) {
                                cJSON_Delete(j);
                                return -ENOMEM;
                        }
                        v = streq(t->key, "replicatefrom") && !ynode_is_null(t)
                                ? cJSON_CreateString(t->value)
                                : ynode_to_json(t);
                }
                if (!v) {
                        cJSON_Delete(j);
                        return -ENOMEM;
                }
                cJSON_DeleteItemFromObjectCaseSensitive(j, t->key);
                if (!cJSON_AddItemToObject(j, t->key, v)) {
                        cJSON_Delete(v);
                        cJSON_Delete(j);
                        return -ENOMEM;
                }
        }
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return bad ? -EINVAL : 0;
}

/* A mapping whose values must all be scalars (postgresql.parameters, recovery_conf). */
static int
parse_scalar_map(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        bool bad = false;
        cJSON *j;

        if (ynode_is_null(n))
                return 0;
        if (n->type != YNODE_MAPPING)
                return config_parser_error(p, n, path, "expected a mapping, got %s", ynode_type_name(n));
        for (size_t i = 0; i < n->n; i++)
                if (n->items[i]->type != YNODE_SCALAR) {
                        config_parser_error(
                                p,
                                n->items[i],
                                path,
                                "value of '%s' must be a scalar, got %s",
                                n->items[i]->key,
                                ynode_type_name(n->items[i]));
                        bad = true;
                }
        if (bad)
                return -EINVAL;
        j = ynode_to_json(n);
        if (!j)
                return -ENOMEM;
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return 0;
}

static int parse_initdb(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        cJSON *j;
        bool bad = false;

        if (ynode_is_null(n))
                return 0;
        if (!IN_SET(n->type, YNODE_SEQUENCE, YNODE_MAPPING))
                return config_parser_error(
                        p, n, path, "expected a list or a mapping, got %s", ynode_type_name(n));
        j = cJSON_CreateArray();
        if (!j)
                return -ENOMEM;
        for (size_t i = 0; i < n->n; i++) {
                const YNode *item = n->items[i];
                cJSON *v = NULL;

                if (n->type == YNODE_MAPPING) {
                        /* dict form: every key: value is one option */
                        if (item->type != YNODE_SCALAR) {
                                config_parser_error(
                                        p,
                                        item,
                                        path,
                                        "value of option '%s' must be a scalar, got %s",
                                        item->key,
                                        ynode_type_name(item));
                                bad = true;
                                continue;
                        }
                        v = cJSON_CreateObject();
                        if (v && !cJSON_AddStringToObject(v, item->key, strempty(item->value)))
                                v = (cJSON_Delete(v), NULL);
                } else if (item->type == YNODE_SCALAR && !ynode_is_null(item))
                        v = cJSON_CreateString(item->value);
                else if (
                        item->type == YNODE_MAPPING && item->n == 1 &&
                        item->items[0]->type == YNODE_SCALAR) {
                        v = cJSON_CreateObject();
                        if (v &&
                            !cJSON_AddStringToObject(
                                    v, item->items[0]->key, strempty(item->items[0]->value)))
                                v = (cJSON_Delete(v), NULL);
                } else {
                        config_parser_error(
                                p,
                                item,
                                path,
                                "invalid item: expected a string or a single-key mapping with a scalar "
                                "value, got %s",
                                item->type == YNODE_MAPPING ? "a mapping with several keys or a nested value"
                                                            : ynode_type_name(item));
                        bad = true;
                        continue;
                }
                if (!v || !cJSON_AddItemToArray(j, v)) {
                        cJSON_Delete(v);
                        cJSON_Delete(j);
                        return -ENOMEM;
                }
        }
        if (bad) {
                cJSON_Delete(j);
                return -EINVAL;
        }
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return 0;
}

static int parse_users(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        cJSON *j;
        bool bad = false;

        if (ynode_is_null(n))
                return 0;
        if (n->type != YNODE_MAPPING)
                return config_parser_error(p, n, path, "expected a mapping, got %s", ynode_type_name(n));
        for (size_t i = 0; i < n->n; i++) {
                const YNode *u = n->items[i], *opts;
                _cleanup_free_ char *up = NULL;

                if (asprintf(&up, "%s.%s", path, u->key) < 0)
                        return -ENOMEM;
                if (u->type != YNODE_MAPPING) {
                        config_parser_error(
                                p,
                                u,
                                up,
                                "expected a mapping with password and options, got %s",
                                ynode_type_name(u));
                        bad = true;
                        continue;
                }
                for (size_t x = 0; x < u->n; x++)
                        if (!STR_IN_SET(u->items[x]->key, "password", "options"))
                                config_parser_warning(
                                        p, u->items[x], up, "unknown key '%s' ignored", u->items[x]->key);
                if (ynode_get(u, "password") && ynode_get(u, "password")->type != YNODE_SCALAR) {
                        config_parser_error(p, ynode_get(u, "password"), up, "password must be a string");
                        bad = true;
                }
                opts = ynode_get(u, "options");
                if (opts && !ynode_is_null(opts)) {
                        if (opts->type != YNODE_SEQUENCE) {
                                config_parser_error(
                                        p,
                                        opts,
                                        up,
                                        "options must be a list of strings, got %s",
                                        ynode_type_name(opts));
                                bad = true;
                        } else
                                for (size_t x = 0; x < opts->n; x++)
                                        if (opts->items[x]->type != YNODE_SCALAR) {
                                                config_parser_error(
                                                        p,
                                                        opts->items[x],
                                                        up,
                                                        "options must be a list of strings");
                                                bad = true;
                                        }
                }
        }
        if (bad)
                return -EINVAL;
        j = ynode_to_json(n);
        if (!j)
                return -ENOMEM;
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return 0;
}

/* bootstrap.dcs: kept whole as JSON; the keys Patroni types are checked here, with positions. */
static int parse_dcs(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        static const char *const int_keys[] = {
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
                "synchronous_node_count",
        };
        static const char *const bool_keys[] = {
                "synchronous_mode_strict", "failsafe_mode", "check_timeline", "pause"};
        long long ttl = 30, loop_wait = 10, retry_timeout = 10;
        const YNode *pg;
        bool bad = false;
        cJSON *j;

        if (ynode_is_null(n))
                return 0;
        if (n->type != YNODE_MAPPING)
                return config_parser_error(p, n, path, "expected a mapping, got %s", ynode_type_name(n));

        for (size_t i = 0; i < ELEMENTSOF(int_keys); i++) {
                const YNode *v = ynode_get(n, int_keys[i]);
                _cleanup_free_ char *kp = NULL;
                long long ll;

                if (!v)
                        continue;
                if (asprintf(&kp, "%s.%s", path, int_keys[i]) < 0)
                        return -ENOMEM;
                if (v->type != YNODE_SCALAR || safe_atolli(v->value, &ll) < 0) {
                        config_parser_error(
                                p,
                                v,
                                kp,
                                "expected an integer, got %s%s%s",
                                v->type == YNODE_SCALAR ? "'" : "",
                                v->type == YNODE_SCALAR ? v->value : ynode_type_name(v),
                                v->type == YNODE_SCALAR ? "'" : "");
                        bad = true;
                        continue;
                }
                if (STR_IN_SET(int_keys[i], "ttl", "loop_wait", "retry_timeout", "synchronous_node_count") &&
                    ll <= 0) {
                        config_parser_error(p, v, kp, "must be a positive integer, got %lld", ll);
                        bad = true;
                        continue;
                }
                if (STR_IN_SET(
                            int_keys[i],
                            "primary_start_timeout",
                            "primary_stop_timeout",
                            "max_timelines_history") &&
                    ll < 0) {
                        config_parser_error(p, v, kp, "must not be negative, got %lld", ll);
                        bad = true;
                        continue;
                }
                if (streq(int_keys[i], "ttl"))
                        ttl = ll;
                else if (streq(int_keys[i], "loop_wait"))
                        loop_wait = ll;
                else if (streq(int_keys[i], "retry_timeout"))
                        retry_timeout = ll;
        }
        for (size_t i = 0; i < ELEMENTSOF(bool_keys); i++) {
                const YNode *v = ynode_get(n, bool_keys[i]);
                _cleanup_free_ char *kp = NULL;

                if (!v || ynode_is_null(v))
                        continue;
                if (asprintf(&kp, "%s.%s", path, bool_keys[i]) < 0)
                        return -ENOMEM;
                if (v->type != YNODE_SCALAR || parse_boolean(v->value) < 0) {
                        config_parser_error(
                                p, v, kp, "invalid boolean (expected on/true/yes/1 or off/false/no/0)");
                        bad = true;
                }
        }
        {
                const YNode *v = ynode_get(n, "synchronous_mode");

                if (v && !ynode_is_null(v) &&
                    (v->type != YNODE_SCALAR ||
                     (parse_boolean(v->value) < 0 && !streq(v->value, "quorum")))) {
                        config_parser_error(
                                p,
                                v,
                                "bootstrap.dcs.synchronous_mode",
                                "invalid value (expected a boolean or 'quorum')");
                        bad = true;
                }
        }
        if (ynode_get(n, "watchdog")) {
                config_parser_error(
                        p,
                        ynode_get(n, "watchdog"),
                        "bootstrap.dcs.watchdog",
                        "watchdog is a local setting and must not be in the dynamic configuration");
                bad = true;
        }
        pg = ynode_get(n, "postgresql");
        if (pg && !ynode_is_null(pg)) {
                if (pg->type != YNODE_MAPPING) {
                        config_parser_error(
                                p,
                                pg,
                                "bootstrap.dcs.postgresql",
                                "expected a mapping, got %s",
                                ynode_type_name(pg));
                        bad = true;
                } else {
                        const YNode *params = ynode_get(pg, "parameters");

                        for (size_t i = 0; i < pg->n; i++) {
                                const YNode *v = pg->items[i];

                                if (STR_IN_SET(
                                            v->key,
                                            "use_pg_rewind",
                                            "use_slots",
                                            "remove_data_directory_on_rewind_failure",
                                            "remove_data_directory_on_diverged_timelines") &&
                                    !ynode_is_null(v) &&
                                    (v->type != YNODE_SCALAR || parse_boolean(v->value) < 0)) {
                                        _cleanup_free_ char *kp = NULL;

                                        if (asprintf(&kp, "bootstrap.dcs.postgresql.%s", v->key) < 0)
                                                return -ENOMEM;
                                        config_parser_error(
                                                p,
                                                v,
                                                kp,
                                                "invalid boolean (expected on/true/yes/1 or "
                                                "off/false/no/0)");
                                        bad = true;
                                }
                        }
                        if (params && !ynode_is_null(params)) {
                                ConfigKey pk = {.type = CK_JSON_OBJECT};
                                cJSON *tmp = NULL;

                                if (parse_scalar_map(
                                            p, params, "bootstrap.dcs.postgresql.parameters", &pk, &tmp) < 0)
                                        bad = true;
                                cJSON_Delete(tmp);
                        }
                }
        }
        /* Patroni 3.0.2 starts on such a configuration (its acceptance suite's watchdog feature runs
         * with loop_wait 2, retry_timeout 10 and ttl 20), so a drop-in must too: the leader key may expire
         * before a retried DCS write gives up, which the operator should hear about, but it is not a reason
         * to refuse to run. */
        if (!bad && loop_wait + 2 * retry_timeout > ttl) {
                const YNode *at = ynode_get(n, "ttl") ?: ynode_get(n, "loop_wait") ?: ynode_get(n, "retry_timeout") ?: n;
                int r;

                r = config_parser_warning(
                        p,
                        at,
                        ynode_get(n, "ttl")                 ? "bootstrap.dcs.ttl"
                                : ynode_get(n, "loop_wait") ? "bootstrap.dcs.loop_wait"
                                                            : "bootstrap.dcs.retry_timeout",
                        "loop_wait + 2*retry_timeout exceeds ttl (%lld + 2*%lld > %lld): the leader key may "
                        "expire while a DCS request is still being retried",
                        loop_wait,
                        retry_timeout,
                        ttl);
                if (r < 0)
                        return r;
        }
        if (bad)
                return -EINVAL;
        j = ynode_to_json(n);
        if (!j)
                return -ENOMEM;
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return 0;
}

/* Legacy restapi.auth: "username:password". */
static int
parse_restapi_auth(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field) {
        const char *colon;
        _cleanup_free_ char *user = NULL;

        if (ynode_is_null(n))
                return 0;
        if (n->type != YNODE_SCALAR || !(colon = strchr(n->value, ':')))
                return config_parser_error(p, n, path, "expected 'username:password'");
        (void)config_parser_warning(p, n, path, "deprecated, use restapi.authentication.username/password");
        user = strndup(n->value, colon - n->value);
        if (!user)
                return -ENOMEM;
        if (free_and_strdup(&p->config->restapi.password, colon + 1) < 0)
                return -ENOMEM;
        free(p->config->restapi.username);
        p->config->restapi.username = TAKE_PTR(user);
        return 0;
}

/* ---- the table ---- */

#define F(f) offsetof(Config, f)
#define SEC(p) \
        { .path = p, .type = CK_SECTION }
#define KEY(p, t, f, d, fl) \
        { .path = p, .type = t, .offset = F(f), .def = d, .flags = fl }
#define KEYR(p, t, f, d, fl, lo, hi) \
        { .path = p, .type = t, .offset = F(f), .def = d, .flags = fl, .min = lo, .max = hi }
#define KEYC(p, t, f, fl, fn) \
        { .path = p, .type = t, .offset = F(f), .flags = fl, .parse = fn }
#define ALIAS(p, of, fl) \
        { .path = p, .type = CK_ALIAS, .alias_of = of, .flags = fl }

#define PGUSER(u)                                                                                          \
        SEC("postgresql.authentication." #u),                                                              \
                KEY("postgresql.authentication." #u ".username",                                           \
                    CK_STRING,                                                                             \
                    postgresql.u.username,                                                                 \
                    NULL,                                                                                  \
                    0),                                                                                    \
                KEY("postgresql.authentication." #u ".password",                                           \
                    CK_STRING,                                                                             \
                    postgresql.u.password,                                                                 \
                    NULL,                                                                                  \
                    CK_SECRET),                                                                            \
                KEY("postgresql.authentication." #u ".sslmode", CK_STRING, postgresql.u.sslmode, NULL, 0), \
                KEY("postgresql.authentication." #u ".sslcert", CK_STRING, postgresql.u.sslcert, NULL, 0), \
                KEY("postgresql.authentication." #u ".sslkey", CK_STRING, postgresql.u.sslkey, NULL, 0),   \
                KEY("postgresql.authentication." #u ".sslpassword",                                        \
                    CK_STRING,                                                                             \
                    postgresql.u.sslpassword,                                                              \
                    NULL,                                                                                  \
                    CK_SECRET),                                                                            \
                KEY("postgresql.authentication." #u ".sslrootcert",                                        \
                    CK_STRING,                                                                             \
                    postgresql.u.sslrootcert,                                                              \
                    NULL,                                                                                  \
                    0),                                                                                    \
                KEY("postgresql.authentication." #u ".sslcrl", CK_STRING, postgresql.u.sslcrl, NULL, 0),   \
                KEY("postgresql.authentication." #u ".sslcrldir",                                          \
                    CK_STRING,                                                                             \
                    postgresql.u.sslcrldir,                                                                \
                    NULL,                                                                                  \
                    0),                                                                                    \
                KEY("postgresql.authentication." #u ".gssencmode",                                         \
                    CK_STRING,                                                                             \
                    postgresql.u.gssencmode,                                                               \
                    NULL,                                                                                  \
                    0),                                                                                    \
                KEY("postgresql.authentication." #u ".channel_binding",                                    \
                    CK_STRING,                                                                             \
                    postgresql.u.channel_binding,                                                          \
                    NULL,                                                                                  \
                    0),                                                                                    \
                KEY("postgresql.authentication." #u ".target_session_attrs",                               \
                    CK_STRING,                                                                             \
                    postgresql.u.target_session_attrs,                                                     \
                    NULL,                                                                                  \
                    0)

const ConfigKey config_keys[] = {
        KEY("name", CK_STRING, name, NULL, CK_REQUIRED | CK_NO_RELOAD),
        KEY("scope", CK_STRING, scope, NULL, CK_REQUIRED | CK_NO_RELOAD),
        KEY("namespace", CK_STRING, namespace, "/service/", CK_NO_RELOAD),

        SEC("log"),
        KEY("log.level", CK_LOG_LEVEL, log.level, "INFO", 0),
        KEY("log.traceback_level", CK_LOG_LEVEL, log.traceback_level, "ERROR", 0),
        KEY("log.format", CK_STRING, log.format, "%(asctime)s %(levelname)s: %(message)s", 0),
        KEY("log.dateformat", CK_STRING, log.dateformat, NULL, 0),
        KEYR("log.max_queue_size", CK_INT64, log.max_queue_size, "1000", 0, 1, INT32_MAX),
        KEY("log.dir", CK_STRING, log.dir, NULL, 0),
        KEYR("log.file_num", CK_INT64, log.file_num, "4", 0, 1, INT32_MAX),
        KEYR("log.file_size", CK_INT64, log.file_size, "25000000", 0, 1, INT64_MAX),
        KEY("log.loggers", CK_JSON_OBJECT, log.loggers, NULL, 0),

        SEC("restapi"),
        KEY("restapi.listen", CK_ADDRESS, restapi.listen, NULL, CK_REQUIRED),
        KEY("restapi.connect_address", CK_ADDRESS, restapi.connect_address, NULL, 0),
        {.path = "restapi.auth", .type = CK_VIRTUAL, .flags = CK_SECRET, .parse = parse_restapi_auth},
        SEC("restapi.authentication"),
        KEY("restapi.authentication.username", CK_STRING, restapi.username, NULL, 0),
        KEY("restapi.authentication.password", CK_STRING, restapi.password, NULL, CK_SECRET),
        KEY("restapi.certfile", CK_STRING, restapi.certfile, NULL, 0),
        KEY("restapi.keyfile", CK_STRING, restapi.keyfile, NULL, 0),
        KEY("restapi.keyfile_password", CK_STRING, restapi.keyfile_password, NULL, CK_SECRET),
        KEY("restapi.cafile", CK_STRING, restapi.cafile, NULL, 0),
        KEY("restapi.ciphers", CK_STRING, restapi.ciphers, NULL, 0),
        KEY("restapi.verify_client", CK_STRING, restapi.verify_client, NULL, 0),
        KEY("restapi.allowlist", CK_STRV, restapi.allowlist, NULL, 0),
        KEY("restapi.allowlist_include_members", CK_BOOL, restapi.allowlist_include_members, "false", 0),
        KEY("restapi.http_extra_headers", CK_JSON_OBJECT, restapi.http_extra_headers, NULL, 0),
        KEY("restapi.https_extra_headers", CK_JSON_OBJECT, restapi.https_extra_headers, NULL, 0),
        KEYR("restapi.connection_limit", CK_INT, restapi.connection_limit, "256", 0, 8, 65536),
        KEYR("restapi.per_ip_connection_limit", CK_INT, restapi.per_ip_connection_limit, "64", 0, 1, 65536),
        KEYR("restapi.idle_timeout", CK_DURATION, restapi.idle_timeout, "5", 0, 1, 3600),
        KEYR("restapi.request_timeout", CK_DURATION, restapi.request_timeout, "10", 0, 1, 3600),

        SEC("ctl"),
        KEY("ctl.insecure", CK_BOOL, ctl.insecure, "false", 0),
        KEY("ctl.cacert", CK_STRING, ctl.cacert, NULL, 0),
        KEY("ctl.certfile", CK_STRING, ctl.certfile, NULL, 0),
        KEY("ctl.keyfile", CK_STRING, ctl.keyfile, NULL, 0),
        KEY("ctl.keyfile_password", CK_STRING, ctl.keyfile_password, NULL, CK_SECRET),

        SEC("etcd3"),
        KEY("etcd3.host", CK_STRING, etcd.host, NULL, CK_NO_RELOAD),
        KEYR("etcd3.port", CK_INT, etcd.port, "2379", CK_NO_RELOAD, 1, 65535),
        KEY("etcd3.hosts", CK_STRV_COMMA, etcd.hosts, NULL, CK_NO_RELOAD),
        KEY("etcd3.url", CK_STRING, etcd.url, NULL, CK_NO_RELOAD),
        KEY("etcd3.proxy", CK_STRING, etcd.proxy, NULL, CK_NO_RELOAD),
        KEY("etcd3.srv", CK_STRING, etcd.srv, NULL, CK_NO_RELOAD),
        KEY("etcd3.srv_suffix", CK_STRING, etcd.srv_suffix, NULL, CK_NO_RELOAD),
        ALIAS("etcd3.discovery_srv", "etcd3.srv", 0),
        ALIAS("etcd3.srv_domain", "etcd3.srv", 0), /* Patroni: discovery_srv and srv_domain are srv */
        KEY("etcd3.protocol", CK_STRING, etcd.protocol, "http", CK_NO_RELOAD),
        KEY("etcd3.use_proxies", CK_BOOL, etcd.use_proxies, "false", CK_NO_RELOAD),
        KEY("etcd3.username", CK_STRING, etcd.username, NULL, CK_NO_RELOAD),
        KEY("etcd3.password", CK_STRING, etcd.password, NULL, CK_SECRET | CK_NO_RELOAD),
        KEY("etcd3.cacert", CK_STRING, etcd.cacert, NULL, CK_NO_RELOAD),
        KEY("etcd3.cert", CK_STRING, etcd.cert, NULL, CK_NO_RELOAD),
        KEY("etcd3.key", CK_STRING, etcd.key, NULL, CK_NO_RELOAD),
        KEY("etcd3.key_password", CK_STRING, etcd.key_password, NULL, CK_SECRET | CK_NO_RELOAD),

        SEC("bootstrap"),
        KEYC("bootstrap.dcs", CK_JSON_OBJECT, bootstrap.dcs, 0, parse_dcs),
        KEY("bootstrap.method", CK_STRING, bootstrap.method, "initdb", 0),
        KEYC("bootstrap.initdb", CK_JSON_ANY, bootstrap.initdb, 0, parse_initdb),
        KEY("bootstrap.pg_hba", CK_STRV, bootstrap.pg_hba, NULL, 0),
        KEYC("bootstrap.users", CK_JSON_OBJECT, bootstrap.users, CK_SECRET, parse_users),
        KEY("bootstrap.post_bootstrap", CK_STRING, bootstrap.post_bootstrap, NULL, 0),
        ALIAS("bootstrap.post_init", "bootstrap.post_bootstrap", 0),

        SEC("postgresql"),
        KEY("postgresql.listen", CK_LISTEN, postgresql.listen, NULL, CK_REQUIRED),
        KEY("postgresql.connect_address", CK_ADDRESS, postgresql.connect_address, NULL, 0),
        KEY("postgresql.proxy_address", CK_ADDRESS, postgresql.proxy_address, NULL, 0),
        KEY("postgresql.data_dir", CK_STRING, postgresql.data_dir, NULL, CK_REQUIRED | CK_NO_RELOAD),
        KEY("postgresql.config_dir", CK_STRING, postgresql.config_dir, NULL, CK_NO_RELOAD),
        KEY("postgresql.bin_dir", CK_STRING, postgresql.bin_dir, NULL, 0),
        KEY("postgresql.pgpass", CK_STRING, postgresql.pgpass, NULL, 0),
        KEY("postgresql.database", CK_STRING, postgresql.database, "postgres", 0),
        SEC("postgresql.authentication"),
        PGUSER(superuser),
        PGUSER(replication),
        PGUSER(rewind),
        ALIAS("postgresql.superuser", "postgresql.authentication.superuser", CK_DEPRECATED),
        ALIAS("postgresql.replication", "postgresql.authentication.replication", CK_DEPRECATED),
        KEYC("postgresql.parameters", CK_JSON_OBJECT, postgresql.parameters, 0, parse_scalar_map),
        KEY("postgresql.pg_hba", CK_STRV, postgresql.pg_hba, NULL, 0),
        KEY("postgresql.pg_ident", CK_STRV, postgresql.pg_ident, NULL, 0),
        SEC("postgresql.callbacks"),
        KEY("postgresql.callbacks.on_start", CK_STRING, postgresql.callbacks.on_start, NULL, 0),
        KEY("postgresql.callbacks.on_stop", CK_STRING, postgresql.callbacks.on_stop, NULL, 0),
        KEY("postgresql.callbacks.on_restart", CK_STRING, postgresql.callbacks.on_restart, NULL, 0),
        KEY("postgresql.callbacks.on_reload", CK_STRING, postgresql.callbacks.on_reload, NULL, 0),
        KEY("postgresql.callbacks.on_role_change", CK_STRING, postgresql.callbacks.on_role_change, NULL, 0),
        KEY("postgresql.create_replica_methods", CK_STRV, postgresql.create_replica_methods, NULL, 0),
        ALIAS("postgresql.create_replica_method", "postgresql.create_replica_methods", 0),
        KEY("postgresql.basebackup", CK_JSON_ANY, postgresql.basebackup, NULL, 0),
        KEYC("postgresql.recovery_conf", CK_JSON_OBJECT, postgresql.recovery_conf, 0, parse_scalar_map),
        KEY("postgresql.custom_conf", CK_STRING, postgresql.custom_conf, NULL, 0),
        KEYR("postgresql.pg_ctl_timeout", CK_DURATION, postgresql.pg_ctl_timeout, "60", 0, 1, 86400),
        KEY("postgresql.use_unix_socket", CK_BOOL, postgresql.use_unix_socket, "false", 0),
        KEY("postgresql.use_unix_socket_repl", CK_BOOL, postgresql.use_unix_socket_repl, "false", 0),
        KEY("postgresql.use_pg_rewind", CK_BOOL, postgresql.use_pg_rewind, "false", 0),
        KEY("postgresql.remove_data_directory_on_rewind_failure",
            CK_BOOL,
            postgresql.remove_data_directory_on_rewind_failure,
            "false",
            0),
        KEY("postgresql.remove_data_directory_on_diverged_timelines",
            CK_BOOL,
            postgresql.remove_data_directory_on_diverged_timelines,
            "false",
            0),
        KEY("postgresql.pre_promote", CK_STRING, postgresql.pre_promote, NULL, 0),
        KEY("postgresql.krbsrvname", CK_STRING, postgresql.krbsrvname, NULL, 0),

        SEC("watchdog"),
        KEY("watchdog.mode", CK_WATCHDOG_MODE, watchdog.mode, "automatic", 0),
        KEY("watchdog.device", CK_STRING, watchdog.device, "/dev/watchdog", 0),
        KEYR("watchdog.safety_margin", CK_INT, watchdog.safety_margin, "5", 0, -1, 3600),
        KEY("watchdog.driver", CK_WATCHDOG_DRIVER, watchdog.driver, "default", 0),

        KEYC("tags", CK_JSON_OBJECT, tags, 0, parse_tags),

        SEC("citus"),
        KEYR("citus.group", CK_INT, citus.group, NULL, CK_NO_RELOAD, 0, INT32_MAX),
        KEY("citus.database", CK_STRING, citus.database, NULL, CK_NO_RELOAD),
};

const size_t config_keys_n = ELEMENTSOF(config_keys);

const ConfigKey *config_key_find(const char *path) {
        for (size_t i = 0; i < config_keys_n; i++)
                if (streq(config_keys[i].path, path))
                        return &config_keys[i];
        return NULL;
}
