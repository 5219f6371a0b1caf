/* SPDX-License-Identifier: MIT */
/*
 * PATRONI_* environment overrides (patroni-compat.md §5.5), recognised exactly as Patroni 3.0.2 does:
 * fixed names first, then the generic "PATRONI_<SECTION>_<SUFFIX>" DCS form, then
 * PATRONI_<user>_PASSWORD/_OPTIONS for bootstrap.users. The values become a YAML tree whose nodes carry
 * the variable's name and position 0:0, merged over the file's tree, so the same key table checks them
 * and reports "PATRONI_X:0:0: key: problem". Reading never modifies the environment; config_env_scrub()
 * removes the recognised variables when the caller wants Patroni's behaviour, keeping a private copy so
 * that later loads (reloads) still apply them, as Patroni keeps its environment configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

extern char **environ;

/* "NAME=value" of every variable config_env_scrub() removed. */
static char **scrubbed = NULL;

static const char *saved_get(const char *name) {
        size_t l = strlen(name);

        for (char **i = scrubbed; i && *i; i++)
                if (strneq(*i, name, l) && (*i)[l] == '=')
                        return *i + l + 1;
        return NULL;
}

const char *config_env_get(const char *name) {
        return getenv(name) ?: saved_get(name);
}

void config_env_forget(void) {
        scrubbed = strv_free(scrubbed);
}

typedef enum EnvKind {
        ENV_SCALAR,
        ENV_LIST,
        ENV_DICT,
} EnvKind;

typedef struct EnvItem {
        char *var;
        char *path;
        EnvKind kind;
} EnvItem;

typedef struct EnvItems {
        EnvItem *items;
        size_t n;
        char **consumed; /* every variable name recognised (also those with empty values) */
} EnvItems;

static void env_items_done(EnvItems *e) {
        for (size_t i = 0; i < e->n; i++) {
                free(e->items[i].var);
                free(e->items[i].path);
        }
        free(e->items);
        strv_free(e->consumed);
        *e = (EnvItems){};
}

static int consume(EnvItems *e, const char *var) {
        size_t n = strv_length(e->consumed);
        char **a, *d;

        if (strv_contains(e->consumed, var))
                return 0;
        d = strdup(var);
        if (!d)
                return -ENOMEM;
        a = reallocarray(e->consumed, n + 2, sizeof(char *));
        if (!a) {
                free(d);
                return -ENOMEM;
        }
        a[n] = d;
        a[n + 1] = NULL;
        e->consumed = a;
        return 0;
}

static bool consumed(const EnvItems *e, const char *var) {
        return strv_contains(e->consumed, var);
}

/* Records var → path when the variable is set and not empty (Patroni ignores empty values). */
static int add(EnvItems *e, const char *var, const char *path, EnvKind kind) {
        const char *v = config_env_get(var);
        EnvItem *a;
        int r;

        if (!v || consumed(e, var))
                return 0;
        r = consume(e, var);
        if (r < 0)
                return r;
        if (isempty(v))
                return 0;
        a = reallocarray(e->items, e->n + 1, sizeof(EnvItem));
        if (!a)
                return -ENOMEM;
        e->items = a;
        a[e->n] = (EnvItem){.var = strdup(var), .path = strdup(path), .kind = kind};
        if (!a[e->n].var || !a[e->n].path) {
                free(a[e->n].var);
                free(a[e->n].path);
                return -ENOMEM;
        }
        e->n++;
        return 0;
}

static bool has_item_prefix(const EnvItems *e, const char *prefix) {
        size_t l = strlen(prefix);

        for (size_t i = 0; i < e->n; i++)
                if (strneq(e->items[i].path, prefix, l) && e->items[i].path[l] == '.')
                        return true;
        return false;
}

static void lowercase(char *s) {
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        *s = (char)(*s - 'A' + 'a');
}

static int env_collect(EnvItems *e) {
        static const char *const auth_params[] = {
                "username",
                "password",
                "sslmode",
                "sslcert",
                "sslkey",
                "sslpassword",
                "sslrootcert",
                "sslcrl",
                "sslcrldir",
                "gssencmode",
                "channel_binding",
        };
        static const struct {
                const char *var, *path;
                EnvKind kind;
        } fixed[] = {
                {"PATRONI_NAME", "name", ENV_SCALAR},
                {"PATRONI_NAMESPACE", "namespace", ENV_SCALAR},
                {"PATRONI_SCOPE", "scope", ENV_SCALAR},
                {"PATRONI_LOG_LEVEL", "log.level", ENV_SCALAR},
                {"PATRONI_LOGLEVEL", "log.level", ENV_SCALAR},
                {"PATRONI_LOG_TRACEBACK_LEVEL", "log.traceback_level", ENV_SCALAR},
                {"PATRONI_LOG_FORMAT", "log.format", ENV_SCALAR},
                {"PATRONI_LOGFORMAT", "log.format", ENV_SCALAR},
                {"PATRONI_LOG_DATEFORMAT", "log.dateformat", ENV_SCALAR},
                {"PATRONI_LOG_DATEFMT", "log.dateformat", ENV_SCALAR},
                {"PATRONI_LOG_MAX_QUEUE_SIZE", "log.max_queue_size", ENV_SCALAR},
                {"PATRONI_LOG_DIR", "log.dir", ENV_SCALAR},
                {"PATRONI_LOG_FILE_SIZE", "log.file_size", ENV_SCALAR},
                {"PATRONI_LOG_FILE_NUM", "log.file_num", ENV_SCALAR},
                {"PATRONI_LOG_LOGGERS", "log.loggers", ENV_DICT},
                {"PATRONI_RESTAPI_LISTEN", "restapi.listen", ENV_SCALAR},
                {"PATRONI_RESTAPI_CONNECT_ADDRESS", "restapi.connect_address", ENV_SCALAR},
                {"PATRONI_RESTAPI_CERTFILE", "restapi.certfile", ENV_SCALAR},
                {"PATRONI_RESTAPI_KEYFILE", "restapi.keyfile", ENV_SCALAR},
                {"PATRONI_RESTAPI_KEYFILE_PASSWORD", "restapi.keyfile_password", ENV_SCALAR},
                {"PATRONI_RESTAPI_CAFILE", "restapi.cafile", ENV_SCALAR},
                {"PATRONI_RESTAPI_CIPHERS", "restapi.ciphers", ENV_SCALAR},
                {"PATRONI_RESTAPI_VERIFY_CLIENT", "restapi.verify_client", ENV_SCALAR},
                {"PATRONI_RESTAPI_HTTP_EXTRA_HEADERS", "restapi.http_extra_headers", ENV_DICT},
                {"PATRONI_RESTAPI_HTTPS_EXTRA_HEADERS", "restapi.https_extra_headers", ENV_DICT},
                {"PATRONI_RESTAPI_ALLOWLIST", "restapi.allowlist", ENV_LIST},
                {"PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS",
                 "restapi.allowlist_include_members",
                 ENV_SCALAR},
                {"PATRONI_RESTAPI_USERNAME", "restapi.authentication.username", ENV_SCALAR},
                {"PATRONI_RESTAPI_PASSWORD", "restapi.authentication.password", ENV_SCALAR},
                {"PATRONI_CTL_INSECURE", "ctl.insecure", ENV_SCALAR},
                {"PATRONI_CTL_CACERT", "ctl.cacert", ENV_SCALAR},
                {"PATRONI_CTL_CERTFILE", "ctl.certfile", ENV_SCALAR},
                {"PATRONI_CTL_KEYFILE", "ctl.keyfile", ENV_SCALAR},
                {"PATRONI_CTL_KEYFILE_PASSWORD", "ctl.keyfile_password", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_LISTEN", "postgresql.listen", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_CONNECT_ADDRESS", "postgresql.connect_address", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_PROXY_ADDRESS", "postgresql.proxy_address", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_CONFIG_DIR", "postgresql.config_dir", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_DATA_DIR", "postgresql.data_dir", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_PGPASS", "postgresql.pgpass", ENV_SCALAR},
                {"PATRONI_POSTGRESQL_BIN_DIR", "postgresql.bin_dir", ENV_SCALAR},
        };
        static const char *const dcs_suffixes[] = {
                "HOST",
                "HOSTS",
                "PORT",
                "USE_PROXIES",
                "PROTOCOL",
                "SRV",
                "SRV_SUFFIX",
                "URL",
                "PROXY",
                "CACERT",
                "CERT",
                "KEY",
                "VERIFY",
                "TOKEN",
                "CHECKS",
                "DC",
                "CONSISTENCY",
                "REGISTER_SERVICE",
                "SERVICE_CHECK_INTERVAL",
                "SERVICE_CHECK_TLS_SERVER_NAME",
                "SERVICE_TAGS",
                "NAMESPACE",
                "CONTEXT",
                "USE_ENDPOINTS",
                "SCOPE_LABEL",
                "ROLE_LABEL",
                "POD_IP",
                "PORTS",
                "LABELS",
                "BYPASS_API_SERVICE",
                "RETRIABLE_HTTP_CODES",
                "KEY_PASSWORD",
                "USE_SSL",
                "SET_ACLS",
                "GROUP",
                "DATABASE",
        };
        _cleanup_(strv_freep) char **names = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
                r = add(e, fixed[i].var, fixed[i].path, fixed[i].kind);
                if (r < 0)
                        return r;
        }
        for (int u = 0; u < 3; u++) {
                const char *ut = (const char *const[]){"replication", "superuser", "rewind"}[u];

                for (size_t i = 0; i < ELEMENTSOF(auth_params); i++) {
                        char var[128], path[128];
                        _cleanup_free_ char *up = strdup(ut), *pp = strdup(auth_params[i]);

                        if (!up || !pp)
                                return -ENOMEM;
                        for (char *c = up; *c; c++)
                                *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
                        for (char *c = pp; *c; c++)
                                *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
                        (void)snprintf(var, sizeof(var), "PATRONI_%s_%s", up, pp);
                        (void)snprintf(
                                path, sizeof(path), "postgresql.authentication.%s.%s", ut, auth_params[i]);
                        r = add(e, var, path, ENV_SCALAR);
                        if (r < 0)
                                return r;
                }
        }

        /* Snapshot the names, of the environment and of what was scrubbed from it. */
        for (char **ep = environ, **sp = scrubbed; (ep && *ep) || (sp && *sp);) {
                const char *entry = ep && *ep ? *ep++ : *sp++;
                size_t l = strcspn(entry, "=");
                char *name;
                size_t n = strv_length(names);
                char **a;

                if (!startswith(entry, "PATRONI_"))
                        continue;
                name = strndup(entry, l);
                if (name && strv_contains(names, name)) {
                        free(name);
                        continue;
                }
                if (!name)
                        return -ENOMEM;
                a = reallocarray(names, n + 2, sizeof(char *));
                if (!a) {
                        free(name);
                        return -ENOMEM;
                }
                a[n] = name;
                a[n + 1] = NULL;
                names = a;
        }

        /* Generic DCS form: PATRONI_<SECTION>_<SUFFIX>, split at the first underscore. */
        for (char **v = names; v && *v; v++) {
                const char *rest = *v + strlen("PATRONI_"), *us = strchr(rest, '_');
                _cleanup_free_ char *section = NULL, *suffix = NULL, *path = NULL;
                EnvKind kind = ENV_SCALAR;
                bool known = false;

                if (consumed(e, *v) || !us || us == rest)
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(dcs_suffixes); i++)
                        if (streq(us + 1, dcs_suffixes[i]))
                                known = true;
                if (!known)
                        continue;
                section = strndup(rest, us - rest);
                suffix = strdup(us + 1);
                if (!section || !suffix)
                        return -ENOMEM;
                if (streq(section, "CITUS") && !STR_IN_SET(suffix, "GROUP", "DATABASE")) {
                        r = consume(e, *v);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (STR_IN_SET(suffix, "HOSTS", "PORTS", "CHECKS", "SERVICE_TAGS", "RETRIABLE_HTTP_CODES"))
                        kind = ENV_LIST;
                else if (STR_IN_SET(suffix, "LABELS", "SET_ACLS"))
                        kind = ENV_DICT;
                lowercase(section);
                lowercase(suffix);
                if (asprintf(&path, "%s.%s", section, suffix) < 0)
                        return -ENOMEM;
                r = add(e, *v, path, kind);
                if (r < 0)
                        return r;
        }
        /* Credentials only for etcd/etcd3 sections created from the environment. */
        for (int i = 0; i < 2; i++) {
                const char *sec = i == 0 ? "etcd" : "etcd3", *SEC = i == 0 ? "ETCD" : "ETCD3";
                char var[64], path[64];

                if (!has_item_prefix(e, sec))
                        continue;
                (void)snprintf(var, sizeof(var), "PATRONI_%s_USERNAME", SEC);
                (void)snprintf(path, sizeof(path), "%s.username", sec);
                r = add(e, var, path, ENV_SCALAR);
                if (r < 0)
                        return r;
                (void)snprintf(var, sizeof(var), "PATRONI_%s_PASSWORD", SEC);
                (void)snprintf(path, sizeof(path), "%s.password", sec);
                r = add(e, var, path, ENV_SCALAR);
                if (r < 0)
                        return r;
        }

        /* PATRONI_<user>_PASSWORD (+ _OPTIONS) → bootstrap.users.<user> (name kept as written). */
        for (char **v = names; v && *v; v++) {
                const char *rest = *v + strlen("PATRONI_");
                _cleanup_free_ char *user = NULL, *path = NULL, *opt_var = NULL;

                if (consumed(e, *v) || !endswith(rest, "_PASSWORD") || strlen(rest) <= strlen("_PASSWORD"))
                        continue;
                user = strndup(rest, strlen(rest) - strlen("_PASSWORD"));
                if (!user)
                        return -ENOMEM;
                if (asprintf(&path, "bootstrap.users.%s.password", user) < 0)
                        return -ENOMEM;
                r = add(e, *v, path, ENV_SCALAR);
                if (r < 0)
                        return r;
                if (isempty(config_env_get(*v)))
                        continue;
                free(path);
                path = NULL;
                if (asprintf(&path, "bootstrap.users.%s.options", user) < 0 ||
                    asprintf(&opt_var, "PATRONI_%s_OPTIONS", user) < 0)
                        return -ENOMEM;
                r = add(e, opt_var, path, ENV_LIST);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void zero_marks(YNode *n, const char *var) {
        n->line = n->column = n->key_line = n->key_column = 0;
        (void)free_and_strdup(&n->file, var);
        for (size_t i = 0; i < n->n; i++)
                zero_marks(n->items[i], var);
}

/* Puts value at the dotted path below root, creating mappings marked with the variable's name. */
static int tree_set(YNode *root, const char *path, const char *var, YNode *value) {
        const char *dot = strchr(path, '.');
        _cleanup_free_ char *head = strndup(path, dot ? (size_t)(dot - path) : strlen(path));
        YNode *child;
        int r;

        if (!head) {
                ynode_free(value);
                return -ENOMEM;
        }
        if (!dot) {
                YNode *wrapper = ynode_new(YNODE_MAPPING, var, 0, 0);

                if (!wrapper || ynode_append(wrapper, value) < 0) {
                        ynode_free(wrapper);
                        ynode_free(value);
                        return -ENOMEM;
                }
                value->key = TAKE_PTR(head);
                /* both are mappings, so root itself is never replaced */
                return ynode_merge(&root, wrapper);
        }
        child = ynode_get(root, head);
        if (!child || child->type != YNODE_MAPPING) {
                child = ynode_new(YNODE_MAPPING, var, 0, 0);
                if (!child) {
                        ynode_free(value);
                        return -ENOMEM;
                }
                child->key = TAKE_PTR(head);
                r = ynode_append(root, child);
                if (r < 0) {
                        ynode_free(child);
                        ynode_free(value);
                        return r;
                }
        }
        return tree_set(child, dot + 1, var, value);
}

int config_env_tree(YNode **ret, ConfigDiagnostics *diags) {
        _cleanup_(ynode_freep) YNode *root = NULL;
        EnvItems e = {};
        int r;

        r = env_collect(&e);
        if (r < 0)
                goto finish;
        if (e.n == 0) {
                *ret = NULL;
                goto finish;
        }
        root = ynode_new(YNODE_MAPPING, "environment", 0, 0);
        if (!root) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < e.n; i++) {
                const char *v = config_env_get(e.items[i].var);
                YNode *n = NULL;

                if (e.items[i].kind == ENV_SCALAR) {
                        n = ynode_new(YNODE_SCALAR, e.items[i].var, 0, 0);
                        if (!n || ynode_set_scalar(n, v) < 0) {
                                ynode_free(n);
                                r = -ENOMEM;
                                goto finish;
                        }
                        n->quoted = true;
                } else {
                        _cleanup_free_ char *text = NULL;
                        const char *s = v;
                        bool wrap;

                        while (*s == ' ' || *s == '\t')
                                s++;
                        wrap = e.items[i].kind == ENV_LIST ? !(*s == '-' || strchr(v, '[')) : *s != '{';
                        if (asprintf(
                                    &text,
                                    wrap ? (e.items[i].kind == ENV_LIST ? "[%s]" : "{%s}") : "%s",
                                    v) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        r = ynode_parse(e.items[i].var, text, true, &n, diags);
                        if (r == -EINVAL) /* reported; the caller sees the error in diags */
                                continue;
                        if (r < 0)
                                goto finish;
                        if (!n)
                                continue;
                        zero_marks(n, e.items[i].var);
                }
                r = tree_set(root, e.items[i].path, e.items[i].var, n);
                if (r < 0)
                        goto finish;
        }
        *ret = TAKE_PTR(root);
        r = 0;
finish:
        env_items_done(&e);
        return r;
}

int config_env_scrub(void) {
        EnvItems e = {};
        int r, n = 0;

        r = env_collect(&e);
        if (r < 0) {
                env_items_done(&e);
                return r;
        }
        if (getenv("PATRONI_CONFIGURATION"))
                r = consume(&e, "PATRONI_CONFIGURATION");
        for (char **v = e.consumed; r >= 0 && v && *v; v++) {
                const char *value = getenv(*v);
                char *entry = NULL;
                size_t k = strv_length(scrubbed);
                char **a;

                if (!value)
                        continue;
                if (asprintf(&entry, "%s=%s", *v, value) < 0) {
                        r = -ENOMEM;
                        break;
                }
                a = reallocarray(scrubbed, k + 2, sizeof(char *));
                if (!a) {
                        free(entry);
                        r = -ENOMEM;
                        break;
                }
                a[k] = entry;
                a[k + 1] = NULL;
                scrubbed = a;
                if (unsetenv(*v) == 0)
                        n++;
        }
        env_items_done(&e);
        return r < 0 ? r : n;
}
