/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL files pgha owns, rendered exactly as Patroni 3.0.2 renders them (patroni-compat.md
 * §6.1, §6.4) so a node can move between Patroni and pgha: postgresql.conf (header, include of
 * postgresql.base.conf, sorted single-quoted parameters, hba_file/ident_file, "# recovery.conf"
 * section), standby.signal, pg_hba.conf/pg_ident.conf when configured, and the pgpass file.
 *
 * Invariant: every file is replaced atomically (write_file_atomic), so a crash leaves the old or the new
 * content and PostgreSQL never reads a torn configuration; nothing here ever deletes a data directory.
 */

#include <ctype.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "pgha/fileio.h"
#include "pgha/json.h"
#include "pgha/log.h"
#include "pgha/pgconf.h"
#include "pgha/proc.h"

/* A postgresql.conf, pg_hba.conf or postgresql.auto.conf larger than this is not something we wrote or
 * should rewrite. */
#define PGCONF_FILE_MAX (4U * 1024U * 1024U)

/* Parameter lists. */

static PgParam *pg_params_find(const PgParams *p, const char *name) {
        for (size_t i = 0; p && i < p->n; i++)
                if (streq(p->items[i].name, name))
                        return &p->items[i];
        return NULL;
}

/* pg_params_set() - sets name (replacing an existing entry in place) to a copy of value (NULL = flag). */
int pg_params_set(PgParams *p, const char *name, const char *value) {
        PgParam *f = pg_params_find(p, name);
        char *v = NULL;

        if (value) {
                v = strdup(value);
                if (!v)
                        return -ENOMEM;
        }
        if (f) {
                free(f->value);
                f->value = v;
                return 0;
        }
        PgParam *items = realloc(p->items, sizeof(PgParam) * (p->n + 1));
        if (!items) {
                free(v);
                return -ENOMEM;
        }
        p->items = items;
        p->items[p->n].name = strdup(name);
        if (!p->items[p->n].name) {
                free(v);
                return -ENOMEM;
        }
        p->items[p->n].value = v;
        p->n++;
        return 0;
}

/* pg_params_get() - the value of name, NULL when absent or a flag (pg_params_has() tells them apart). */
const char *pg_params_get(const PgParams *p, const char *name) {
        PgParam *f = pg_params_find(p, name);
        return f ? f->value : NULL;
}

/* pg_params_has() - whether name is in the list (with a value or as a flag). */
bool pg_params_has(const PgParams *p, const char *name) {
        return pg_params_find(p, name) != NULL;
}

/* pg_params_done() - frees the entries; the list is empty and reusable afterwards. */
void pg_params_done(PgParams *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->items[i].name);
                free(p->items[i].value);
        }
        p->items = mfree(p->items);
        p->n = 0;
}

static int pg_param_compare(const void *a, const void *b) {
        return strcmp(((const PgParam *)a)->name, ((const PgParam *)b)->name);
}

/* ==== Settings ==== */

static const char *const pg_callback_table[_PG_CALLBACK_MAX] = {
        [PG_CALLBACK_ON_START] = "on_start",
        [PG_CALLBACK_ON_STOP] = "on_stop",
        [PG_CALLBACK_ON_RESTART] = "on_restart",
        [PG_CALLBACK_ON_RELOAD] = "on_reload",
        [PG_CALLBACK_ON_ROLE_CHANGE] = "on_role_change",
};

DEFINE_STRING_TABLE_LOOKUP(pg_callback, PgCallback);

static void pg_auth_done(PgAuth *a) {
        a->username = mfree(a->username);
        a->password = mfree(a->password);
        pg_params_done(&a->libpq);
}

/* pg_settings_done() - frees every field and zeroes the struct; safe on a zeroed or half-filled one. */
void pg_settings_done(PgSettings *s) {
        if (!s)
                return;
        free(s->scope);
        free(s->name);
        free(s->bin_dir);
        free(s->data_dir);
        free(s->config_dir);
        free(s->listen_addresses);
        free(s->listen_host);
        free(s->connect_address);
        free(s->database);
        free(s->pgpass);
        free(s->postmaster_log);
        free(s->custom_conf);
        pg_auth_done(&s->superuser);
        pg_auth_done(&s->replication);
        pg_auth_done(&s->rewind);
        pg_params_done(&s->parameters);
        pg_params_done(&s->recovery_conf);
        proc_strv_free(s->pg_hba);
        proc_strv_free(s->pg_ident);
        for (size_t i = 0; i < _PG_CALLBACK_MAX; i++)
                free(s->callbacks[i]);
        for (size_t i = 0; i < s->n_replica_methods; i++) {
                free(s->replica_methods[i].name);
                free(s->replica_methods[i].command);
                pg_params_done(&s->replica_methods[i].params);
        }
        free(s->replica_methods);
        pg_params_done(&s->basebackup);
        free(s->pre_promote);
        pg_params_done(&s->initdb);
        proc_strv_free(s->bootstrap_pg_hba);
        free(s->post_bootstrap);
        free(s->custom_bootstrap.name);
        free(s->custom_bootstrap.command);
        pg_params_done(&s->custom_bootstrap.recovery_conf);
        for (size_t i = 0; i < s->n_bootstrap_users; i++) {
                free(s->bootstrap_users[i].name);
                free(s->bootstrap_users[i].password);
                proc_strv_free(s->bootstrap_users[i].options);
        }
        free(s->bootstrap_users);
        *s = (PgSettings){};
}

/* A JSON scalar as PostgreSQL/Patroni would print it: strings as is, integers without a fraction,
 * booleans as on/off (Patroni's YAML true becomes 'on' in postgresql.conf). */
static char *json_scalar(const cJSON *j) {
        char *s = NULL;

        if (cJSON_IsString(j))
                return strdup(j->valuestring);
        if (cJSON_IsBool(j))
                return strdup(cJSON_IsTrue(j) ? "on" : "off");
        if (cJSON_IsNumber(j)) {
                double d = j->valuedouble;
                if (d == (double)(long long)d)
                        return asprintf(&s, "%lld", (long long)d) < 0 ? NULL : s;
                return asprintf(&s, "%g", d) < 0 ? NULL : s;
        }
        return NULL;
}

static int fail(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int fail(char **reterr, const char *fmt, ...) {
        va_list ap;
        if (reterr) {
                va_start(ap, fmt);
                if (vasprintf(reterr, fmt, ap) < 0)
                        *reterr = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

static int get_string(const cJSON *obj, const char *key, char **ret, char **reterr, const char *path) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
        char *v;

        if (!j || cJSON_IsNull(j))
                return 0;
        v = json_scalar(j);
        if (!v)
                return fail(reterr, "%s.%s: expected a string", path, key);
        free(*ret);
        *ret = v;
        return 0;
}

static int get_strv(const cJSON *obj, const char *key, char ***ret, char **reterr, const char *path) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key), *i;
        _cleanup_(proc_strv_freep) char **l = NULL;

        if (!j || cJSON_IsNull(j))
                return 0;
        if (!cJSON_IsArray(j))
                return fail(reterr, "%s.%s: expected a list of strings", path, key);
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        cJSON_ArrayForEach (i, j) {
                if (!cJSON_IsString(i))
                        return fail(reterr, "%s.%s: expected a list of strings", path, key);
                if (proc_strv_push(&l, i->valuestring) < 0)
                        return -ENOMEM;
        }
        proc_strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

/* A map {k: v} → pairs; for option lists (initdb, basebackup) also the list form with strings (flags)
 * and single-key maps. */
static int get_params(
        const cJSON *obj, const char *key, bool allow_list, PgParams *ret, char **reterr, const char *path) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key), *i;
        int r;

        if (!j || cJSON_IsNull(j))
                return 0;
        if (cJSON_IsObject(j)) {
                cJSON_ArrayForEach (i, j) {
                        _cleanup_free_ char *v = json_scalar(i);
                        if (!v && !cJSON_IsNull(i))
                                return fail(
                                        reterr, "%s.%s.%s: expected a scalar value", path, key, i->string);
                        r = pg_params_set(ret, i->string, v);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (!allow_list || !cJSON_IsArray(j))
                return fail(reterr, "%s.%s: expected a mapping", path, key);
        cJSON_ArrayForEach (i, j) {
                if (cJSON_IsString(i))
                        r = pg_params_set(ret, i->valuestring, NULL);
                else if (cJSON_IsObject(i) && cJSON_GetArraySize(i) == 1) {
                        _cleanup_free_ char *v = json_scalar(i->child);
                        if (!v)
                                return fail(
                                        reterr,
                                        "%s.%s: option %s needs a scalar value",
                                        path,
                                        key,
                                        i->child->string);
                        r = pg_params_set(ret, i->child->string, v);
                } else
                        return fail(
                                reterr, "%s.%s: items must be strings or single-key mappings", path, key);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int get_auth(const cJSON *auth, const char *key, PgAuth *ret, char **reterr);

static int parse_listen(PgSettings *s, const char *listen, char **reterr) {
        const char *colon = strrchr(listen, ':');
        _cleanup_free_ char *addrs = NULL;
        char *end = NULL;
        unsigned long port;

        if (!colon)
                return fail(
                        reterr, "postgresql.listen: '%s' has no port (expected host[,host]:port)", listen);
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno != 0 || !end || *end || port == 0 || port > 65535)
                return fail(reterr, "postgresql.listen: invalid port in '%s'", listen);
        addrs = strndup(listen, (size_t)(colon - listen));
        if (!addrs)
                return -ENOMEM;
        if (isempty(addrs))
                return fail(reterr, "postgresql.listen: '%s' has no address", listen);
        s->port = (unsigned)port;
        s->listen_host = strndup(addrs, strcspn(addrs, ","));
        if (!s->listen_host)
                return -ENOMEM;
        free(s->listen_addresses);
        s->listen_addresses = TAKE_PTR(addrs);
        return 0;
}

static int parse_replica_methods(const cJSON *pg, PgSettings *s, char **reterr) {
        const cJSON *methods = cJSON_GetObjectItemCaseSensitive(pg, "create_replica_methods"), *m;
        int r;

        if (!methods || cJSON_IsNull(methods))
                return 0;
        if (!cJSON_IsArray(methods))
                return fail(reterr, "postgresql.create_replica_methods: expected a list");
        s->replica_methods = calloc((size_t)cJSON_GetArraySize(methods) + 1, sizeof(PgReplicaMethod));
        if (!s->replica_methods)
                return -ENOMEM;
        cJSON_ArrayForEach (m, methods) {
                PgReplicaMethod *rm = &s->replica_methods[s->n_replica_methods];
                const cJSON *sec, *k;

                if (!cJSON_IsString(m))
                        return fail(reterr, "postgresql.create_replica_methods: expected method names");
                rm->name = strdup(m->valuestring);
                if (!rm->name)
                        return -ENOMEM;
                s->n_replica_methods++;
                sec = cJSON_GetObjectItemCaseSensitive(pg, m->valuestring);
                if (streq(m->valuestring, "basebackup"))
                        continue;
                if (!cJSON_IsObject(sec))
                        return fail(
                                reterr, "postgresql.%s: section of replica method missing", m->valuestring);
                cJSON_ArrayForEach (k, sec) {
                        if (streq(k->string, "command")) {
                                if (!cJSON_IsString(k))
                                        return fail(
                                                reterr,
                                                "postgresql.%s.command: expected a string",
                                                rm->name);
                                rm->command = strdup(k->valuestring);
                                if (!rm->command)
                                        return -ENOMEM;
                                continue;
                        }
                        if (streq(k->string, "keep_data"))
                                rm->keep_data = json_parse_bool(k);
                        else if (streq(k->string, "no_params"))
                                rm->no_params = json_parse_bool(k);
                        else if (streq(k->string, "no_leader") || streq(k->string, "no_master"))
                                rm->no_leader = json_parse_bool(k);
                        /* Patroni passes every other key (these flags included) as --k=v, the value
                         * printed by Python: booleans as True/False. */
                        _cleanup_free_ char *v = cJSON_IsBool(k) ? strdup(cJSON_IsTrue(k) ? "True" : "False")
                                                                 : json_scalar(k);
                        if (!v)
                                return fail(
                                        reterr, "postgresql.%s.%s: expected a scalar", rm->name, k->string);
                        r = pg_params_set(&rm->params, k->string, v);
                        if (r < 0)
                                return r;
                }
                if (!rm->command)
                        return fail(reterr, "postgresql.%s.command: missing", rm->name);
        }
        return 0;
}

static int parse_bootstrap(const cJSON *root, PgSettings *s, char **reterr) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "bootstrap"), *users, *u;
        static const char *const forbidden[] = {"pgdata", "nosync", "pwfile", "sync-only", "version"};
        int r;

        if (!b)
                return 0;
        r = get_params(b, "initdb", true, &s->initdb, reterr, "bootstrap");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(forbidden); i++)
                if (pg_params_has(&s->initdb, forbidden[i]))
                        return fail(reterr, "bootstrap.initdb: %s can not be set", forbidden[i]);
        r = get_strv(b, "pg_hba", &s->bootstrap_pg_hba, reterr, "bootstrap");
        if (r < 0)
                return r;
        r = get_string(b, "post_init", &s->post_bootstrap, reterr, "bootstrap");
        if (r < 0)
                return r;
        r = get_string(b, "post_bootstrap", &s->post_bootstrap, reterr, "bootstrap");
        if (r < 0)
                return r;
        r = get_string(b, "method", &s->custom_bootstrap.name, reterr, "bootstrap");
        if (r < 0)
                return r;
        if (s->custom_bootstrap.name && streq(s->custom_bootstrap.name, "initdb"))
                s->custom_bootstrap.name = mfree(s->custom_bootstrap.name);
        if (s->custom_bootstrap.name) {
                PgCustomBootstrap *cb = &s->custom_bootstrap;
                const cJSON *sec = cJSON_GetObjectItemCaseSensitive(b, cb->name);
                if (!cJSON_IsObject(sec))
                        return fail(reterr, "bootstrap.%s: section of bootstrap method missing", cb->name);
                r = get_string(sec, "command", &cb->command, reterr, "bootstrap.method");
                if (r < 0)
                        return r;
                if (!cb->command)
                        return fail(reterr, "bootstrap.%s.command: missing", cb->name);
                cb->no_params = json_parse_bool(cJSON_GetObjectItemCaseSensitive(sec, "no_params"));
                cb->keep_existing_recovery_conf = json_parse_bool(
                        cJSON_GetObjectItemCaseSensitive(sec, "keep_existing_recovery_conf"));
                cb->has_recovery_conf = cJSON_GetObjectItemCaseSensitive(sec, "recovery_conf") != NULL;
                r = get_params(sec, "recovery_conf", false, &cb->recovery_conf, reterr, "bootstrap.method");
                if (r < 0)
                        return r;
        }
        users = cJSON_GetObjectItemCaseSensitive(b, "users");
        if (!users)
                return 0;
        if (!cJSON_IsObject(users))
                return fail(reterr, "bootstrap.users: expected a mapping");
        s->bootstrap_users = calloc((size_t)cJSON_GetArraySize(users) + 1, sizeof(PgBootstrapUser));
        if (!s->bootstrap_users)
                return -ENOMEM;
        cJSON_ArrayForEach (u, users) {
                PgBootstrapUser *bu = &s->bootstrap_users[s->n_bootstrap_users++];
                bu->name = strdup(u->string);
                if (!bu->name)
                        return -ENOMEM;
                r = get_string(u, "password", &bu->password, reterr, "bootstrap.users");
                if (r < 0)
                        return r;
                r = get_strv(u, "options", &bu->options, reterr, "bootstrap.users");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* pg_settings_from_json() - fills *ret from a Patroni-shaped document ({scope, name, postgresql{...},
 * bootstrap{...}}), e.g. the effective configuration as JSON. On error returns -EINVAL and a message
 * naming the key in *reterr (caller frees). Non-logging. */
int pg_settings_from_json(const cJSON *root, PgSettings *ret, char **reterr) {
        _cleanup_(pg_settings_done) PgSettings s = {
                .use_slots = true,
                .pg_ctl_timeout = 60 * USEC_PER_SEC,
        };
        const cJSON *pg, *j;
        _cleanup_free_ char *listen = NULL;
        int r;

        if (!cJSON_IsObject(root))
                return fail(reterr, "configuration: expected a mapping");
        if ((r = get_string(root, "scope", &s.scope, reterr, "")) < 0 ||
            (r = get_string(root, "name", &s.name, reterr, "")) < 0)
                return r;
        if (!s.scope || !s.name)
                return fail(reterr, "%s: missing", s.scope ? "name" : "scope");

        pg = cJSON_GetObjectItemCaseSensitive(root, "postgresql");
        if (!cJSON_IsObject(pg))
                return fail(reterr, "postgresql: section missing");
        if ((r = get_string(pg, "bin_dir", &s.bin_dir, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "data_dir", &s.data_dir, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "config_dir", &s.config_dir, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "listen", &listen, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "connect_address", &s.connect_address, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "database", &s.database, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "pgpass", &s.pgpass, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "postmaster_log", &s.postmaster_log, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "pre_promote", &s.pre_promote, reterr, "postgresql")) < 0 ||
            (r = get_string(pg, "custom_conf", &s.custom_conf, reterr, "postgresql")) < 0)
                return r;
        if (!s.data_dir)
                return fail(reterr, "postgresql.data_dir: missing");
        if (!listen)
                return fail(reterr, "postgresql.listen: missing");
        r = parse_listen(&s, listen, reterr);
        if (r < 0)
                return r;
        if (!s.database && !(s.database = strdup("postgres")))
                return -ENOMEM;
        if (!s.pgpass) {
                /* Patroni's default: ~/pgpass of the user running the daemon. */
                const char *home = getenv("HOME");
                struct passwd *pw = isempty(home) ? getpwuid(geteuid()) : NULL;
                if (pw)
                        home = pw->pw_dir;
                if (asprintf(&s.pgpass, "%s/pgpass", isempty(home) ? "/tmp" : home) < 0)
                        return -ENOMEM;
        }

        j = cJSON_GetObjectItemCaseSensitive(pg, "authentication");
        if (j &&
            ((r = get_auth(j, "superuser", &s.superuser, reterr)) < 0 ||
             (r = get_auth(j, "replication", &s.replication, reterr)) < 0 ||
             (r = get_auth(j, "rewind", &s.rewind, reterr)) < 0))
                return r;
        if (!s.superuser.username && !(s.superuser.username = strdup("postgres")))
                return -ENOMEM;
        if (!s.replication.username)
                return fail(reterr, "postgresql.authentication.replication.username: missing");

        if ((r = get_params(pg, "parameters", false, &s.parameters, reterr, "postgresql")) < 0 ||
            (r = get_params(pg, "recovery_conf", false, &s.recovery_conf, reterr, "postgresql")) < 0 ||
            (r = get_params(pg, "basebackup", true, &s.basebackup, reterr, "postgresql")) < 0 ||
            (r = get_strv(pg, "pg_hba", &s.pg_hba, reterr, "postgresql")) < 0 ||
            (r = get_strv(pg, "pg_ident", &s.pg_ident, reterr, "postgresql")) < 0)
                return r;

        j = cJSON_GetObjectItemCaseSensitive(pg, "callbacks");
        if (j) {
                const cJSON *c;
                if (!cJSON_IsObject(j))
                        return fail(reterr, "postgresql.callbacks: expected a mapping");
                cJSON_ArrayForEach (c, j) {
                        PgCallback cb = pg_callback_from_string(c->string);
                        if (cb < 0)
                                return fail(reterr, "postgresql.callbacks.%s: unknown callback", c->string);
                        r = get_string(j, c->string, &s.callbacks[cb], reterr, "postgresql.callbacks");
                        if (r < 0)
                                return r;
                }
        }

        j = cJSON_GetObjectItemCaseSensitive(pg, "pg_ctl_timeout");
        if (j) {
                if (!cJSON_IsNumber(j) || j->valuedouble <= 0)
                        return fail(
                                reterr, "postgresql.pg_ctl_timeout: expected a positive number of seconds");
                s.pg_ctl_timeout = (usec_t)(j->valuedouble * USEC_PER_SEC);
        }
        s.use_pg_rewind = json_parse_bool(cJSON_GetObjectItemCaseSensitive(pg, "use_pg_rewind"));
        j = cJSON_GetObjectItemCaseSensitive(pg, "use_slots");
        if (j)
                s.use_slots = json_parse_bool(j);
        s.remove_data_directory_on_rewind_failure = json_parse_bool(
                cJSON_GetObjectItemCaseSensitive(pg, "remove_data_directory_on_rewind_failure"));
        s.remove_data_directory_on_diverged_timelines = json_parse_bool(
                cJSON_GetObjectItemCaseSensitive(pg, "remove_data_directory_on_diverged_timelines"));

        r = parse_replica_methods(pg, &s, reterr);
        if (r < 0)
                return r;
        r = parse_bootstrap(root, &s, reterr);
        if (r < 0)
                return r;

        *ret = s;
        s = (PgSettings){};
        return 0;
}

/* ==== Names, quoting, DSNs ==== */

/* pgconf_path() - <config_dir or data_dir>/<file>, heap string, NULL on OOM. */
char *pgconf_path(const PgSettings *s, const char *file) {
        char *p = NULL;
        return asprintf(&p, "%s/%s", s->config_dir ?: s->data_dir, file) < 0 ? NULL : p;
}

/* pgdata_path() - <data_dir>/<file>, heap string, NULL on OOM. */
char *pgdata_path(const PgSettings *s, const char *file) {
        char *p = NULL;
        return asprintf(&p, "%s/%s", s->data_dir, file) < 0 ? NULL : p;
}

/* pgconf_bin() - <bin_dir>/<program>, or the bare name (PATH lookup) without bin_dir; NULL on OOM. */
char *pgconf_bin(const PgSettings *s, const char *program) {
        char *p = NULL;
        if (isempty(s->bin_dir))
                return strdup(program);
        return asprintf(&p, "%s/%s", s->bin_dir, program) < 0 ? NULL : p;
}

/* pgconf_quote() - a postgresql.conf value: wrapped in ', every ' and \ doubled. */
char *pgconf_quote(const char *value) {
        size_t n = 0;
        char *r, *o;

        for (const char *c = value; *c; c++)
                n += (*c == '\'' || *c == '\\') ? 2 : 1;
        r = o = malloc(n + 3);
        if (!r)
                return NULL;
        *o++ = '\'';
        for (const char *c = value; *c; c++) {
                if (*c == '\'' || *c == '\\')
                        *o++ = *c;
                *o++ = *c;
        }
        *o++ = '\'';
        *o = '\0';
        return r;
}

/* pgconf_slot_name() - Patroni's replication slot name for a member name (lower-case, - and . → _,
 * other characters outside [a-z0-9_] → u + 4-digit code point, at most 63 chars). */
int pgconf_slot_name(const char *member, char **ret) {
        /* Worst case every byte becomes "u" + up to 7 digits; truncated to 63 afterwards. */
        _cleanup_free_ char *s = NULL;
        size_t n = 0;

        if (isempty(member))
                return -EINVAL;
        s = malloc(strlen(member) * 8 + 1);
        if (!s)
                return -ENOMEM;
        for (const unsigned char *c = (const unsigned char *)member; *c; c++) {
                /* Decode UTF-8 so the code point (not the byte) is used, as Python does. */
                unsigned cp = *c;
                int extra = 0;
                if (cp >= 0xf0)
                        cp &= 0x07, extra = 3;
                else if (cp >= 0xe0)
                        cp &= 0x0f, extra = 2;
                else if (cp >= 0xc0)
                        cp &= 0x1f, extra = 1;
                for (; extra > 0 && (c[1] & 0xc0) == 0x80; extra--)
                        cp = (cp << 6) | (*++c & 0x3f);

                if (cp < 128 && isupper((int)cp))
                        cp = (unsigned)tolower((int)cp);
                if (cp == '-' || cp == '.')
                        s[n++] = '_';
                else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == '_')
                        s[n++] = (char)cp;
                else
                        n += (size_t)snprintf(s + n, 9, "u%04u", cp);
        }
        s[MIN(n, 63U)] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

static const char *const dsn_keywords[] = {
        "dbname",
        "user",
        "passfile",
        "password",
        "host",
        "port",
        "sslmode",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "application_name",
        "krbsrvname",
        "gssencmode",
        "channel_binding",
        "target_session_attrs",
};

/* Keys of postgresql.authentication.<user> that go into that user's connections as they are: every
 * keyword Patroni's format_dsn() writes, but those pgha sets itself. */
static bool auth_key_is_libpq(const char *key) {
        static const char *const own[] = {
                "dbname", "user", "passfile", "password", "host", "port", "application_name"};
        for (size_t i = 0; i < ELEMENTSOF(own); i++)
                if (streq(key, own[i]))
                        return false;
        return true;
}

static int get_auth(const cJSON *auth, const char *key, PgAuth *ret, char **reterr) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(auth, key);
        _cleanup_free_ char *path = NULL;
        int r;

        if (!j)
                return 0;
        if (asprintf(&path, "postgresql.authentication.%s", key) < 0)
                return -ENOMEM;
        r = get_string(j, "username", &ret->username, reterr, path);
        if (r < 0)
                return r;
        r = get_string(j, "password", &ret->password, reterr, path);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(dsn_keywords); i++) {
                _cleanup_free_ char *v = NULL;

                if (!auth_key_is_libpq(dsn_keywords[i]))
                        continue;
                r = get_string(j, dsn_keywords[i], &v, reterr, path);
                if (r < 0)
                        return r;
                if (v && (r = pg_params_set(&ret->libpq, dsn_keywords[i], v)) < 0)
                        return r;
        }
        return 0;
}

/* pgconf_format_dsn() - libpq key/value string in Patroni's fixed keyword order, values with ', \ and
 * space backslash-escaped; keywords whose value is NULL are skipped. params is a list of pairs. */
char *pgconf_format_dsn(const PgParams *params) {
        char *buf = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t k = 0; k < ELEMENTSOF(dsn_keywords); k++) {
                const char *v = pg_params_get(params, dsn_keywords[k]);
                if (!v)
                        continue;
                /* Patroni writes passfile instead of password when both are present. */
                if (streq(dsn_keywords[k], "password") && pg_params_get(params, "passfile"))
                        continue;
                fprintf(f, "%s%s=", first ? "" : " ", dsn_keywords[k]);
                for (const char *c = v; *c; c++) {
                        if (*c == '\'' || *c == '\\' || *c == ' ')
                                fputc('\\', f);
                        fputc(*c, f);
                }
                first = false;
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* pgconf_conn_params() - dbname, user, host and port, then auth's own libpq keys over them (Patroni's
 * conn_kwargs(auth)); never the password, which the pgpass file carries. Non-logging. */
int pgconf_conn_params(
        const PgAuth *auth, const char *dbname, const char *host, unsigned port, PgParams *p) {
        char port_s[16];
        int r;

        (void)snprintf(port_s, sizeof(port_s), "%u", port);
        if ((dbname && (r = pg_params_set(p, "dbname", dbname)) < 0) ||
            (r = pg_params_set(p, "user", auth->username)) < 0 || (r = pg_params_set(p, "host", host)) < 0 ||
            (r = pg_params_set(p, "port", port_s)) < 0)
                return r;
        for (size_t i = 0; i < auth->libpq.n; i++)
                if ((r = pg_params_set(p, auth->libpq.items[i].name, auth->libpq.items[i].value)) < 0)
                        return r;
        return 0;
}

/* pgconf_auth_libpq_strv() - see pgconf.h: for pghad's own connections as that user. */
int pgconf_auth_libpq_strv(const PgAuth *auth, char ***ret) {
        _cleanup_(proc_strv_freep) char **l = NULL;

        for (size_t i = 0; i < auth->libpq.n; i++)
                if (auth->libpq.items[i].value &&
                    (proc_strv_push(&l, auth->libpq.items[i].name) < 0 ||
                     proc_strv_push(&l, auth->libpq.items[i].value) < 0))
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

/* pgconf_parse_conn_url() - host and port from a member's conn_url (postgres://host:port/db). */
int pgconf_parse_conn_url(const char *url, char **ret_host, unsigned *ret_port) {
        const char *p = startswith(url, "postgres://") ?: startswith(url, "postgresql://");
        _cleanup_free_ char *host = NULL;
        unsigned long port = 5432;
        size_t hl;

        if (!p)
                return -EINVAL;
        if (strchr(p, '@') && strchr(p, '@') < p + strcspn(p, "/"))
                p = strchr(p, '@') + 1;
        if (*p == '[') {
                hl = strcspn(p + 1, "]");
                if (p[1 + hl] != ']')
                        return -EINVAL;
                host = strndup(p + 1, hl);
                p += hl + 2;
        } else {
                hl = strcspn(p, ":/?");
                host = strndup(p, hl);
                p += hl;
        }
        if (!host)
                return -ENOMEM;
        if (isempty(host))
                return -EINVAL;
        if (*p == ':') {
                char *end = NULL;
                errno = 0;
                port = strtoul(p + 1, &end, 10);
                if (errno || end == p + 1 || port == 0 || port > 65535 || (*end && !strchr("/?", *end)))
                        return -EINVAL;
        }
        *ret_host = TAKE_PTR(host);
        *ret_port = (unsigned)port;
        return 0;
}

/* pgconf_local_host() - the host for local connections (heap string): the first absolute
 * unix_socket_directories entry, else the first listen address (localhost for wildcard addresses). */
char *pgconf_local_host(const PgSettings *s) {
        const char *dirs = pg_params_get(&s->parameters, "unix_socket_directories");

        if (dirs) {
                /* First absolute entry of the comma-separated list. */
                for (const char *p = dirs; *p;) {
                        p += strspn(p, " ,");
                        size_t l = strcspn(p, ",");
                        while (l > 0 && p[l - 1] == ' ')
                                l--;
                        if (l > 0 && p[0] == '/')
                                return strndup(p, l);
                        p += strcspn(p, ",");
                }
        }
        if (!s->listen_host || streq(s->listen_host, "*") || streq(s->listen_host, "0.0.0.0") ||
            streq(s->listen_host, "::") || streq(s->listen_host, "127.0.0.1"))
                return strdup("localhost");
        return strdup(s->listen_host);
}

/* ==== postgresql.conf ==== */

/* Recovery settings never appear in the main parameter list (§6.1). */
static const char *const recovery_parameters[] = {
        "archive_cleanup_command",
        "pause_at_recovery_target",
        "primary_conninfo",
        "primary_slot_name",
        "promote_trigger_file",
        "recovery_end_command",
        "recovery_min_apply_delay",
        "recovery_target",
        "recovery_target_action",
        "recovery_target_inclusive",
        "recovery_target_lsn",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_timeline",
        "recovery_target_xid",
        "restore_command",
        "standby_mode",
        "trigger_file",
};

static bool is_recovery_parameter(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(recovery_parameters); i++)
                if (strcasecmp(name, recovery_parameters[i]) == 0)
                        return true;
        return false;
}

/* Patroni's command-line parameters (§5.2) in the order they appear on the postmaster's command line,
 * with their defaults; listen_addresses/port/cluster_name come from the settings. */
static const struct {
        const char *name;
        const char *def;
        bool forced; /* never taken from the configuration */
} cmdline_parameters[] = {
        {"listen_addresses", NULL, true},
        {"port", NULL, true},
        {"cluster_name", NULL, true},
        {"wal_level", "replica", false},
        {"hot_standby", "on", true},
        {"max_connections", "100", false},
        {"max_wal_senders", "10", false},
        {"max_prepared_transactions", "0", false},
        {"max_locks_per_transaction", "64", false},
        {"track_commit_timestamp", "off", false},
        {"max_replication_slots", "10", false},
        {"max_worker_processes", "8", false},
        {"wal_log_hints", "on", true},
};

/* pgconf_server_parameters() - the parameters written to postgresql.conf: the given ones plus
 * listen_addresses, port, cluster_name, the defaults of the command-line parameters (§5.2), hba_file
 * and ident_file. Sorted by name except hba_file/ident_file last. */
int pgconf_server_parameters(const PgSettings *s, PgParams *ret) {
        _cleanup_(pg_params_done) PgParams p = {};
        _cleanup_free_ char *hba = NULL, *ident = NULL;
        char port[16];
        bool has_hba, has_ident;
        int r;

        for (size_t i = 0; i < s->parameters.n; i++) {
                const PgParam *pp = &s->parameters.items[i];
                if (is_recovery_parameter(pp->name) || !pp->value)
                        continue;
                r = pg_params_set(&p, pp->name, pp->value);
                if (r < 0)
                        return r;
        }
        (void)snprintf(port, sizeof(port), "%u", s->port);
        for (size_t i = 0; i < ELEMENTSOF(cmdline_parameters); i++) {
                const char *name = cmdline_parameters[i].name, *v;
                if (streq(name, "listen_addresses"))
                        v = s->listen_addresses;
                else if (streq(name, "port"))
                        v = port;
                else if (streq(name, "cluster_name"))
                        v = s->scope;
                else if (cmdline_parameters[i].forced || !pg_params_has(&p, name))
                        v = cmdline_parameters[i].def;
                else
                        continue;
                r = pg_params_set(&p, name, strempty(v));
                if (r < 0)
                        return r;
        }
        if (!pg_params_has(&p, "wal_keep_size") && !pg_params_has(&p, "wal_keep_segments")) {
                r = pg_params_set(&p, "wal_keep_size", "128MB");
                if (r < 0)
                        return r;
        } else if (pg_params_has(&p, "wal_keep_segments")) {
                /* PG ≥ 13 knows only wal_keep_size: convert (16 MB segments), as Patroni does. */
                char v[32];
                (void)snprintf(
                        v,
                        sizeof(v),
                        "%lluMB",
                        strtoull(pg_params_get(&p, "wal_keep_segments"), NULL, 10) * 16ULL);
                PgParam *f = pg_params_find(&p, "wal_keep_segments");
                free(f->name);
                f->name = strdup("wal_keep_size");
                if (!f->name)
                        return -ENOMEM;
                r = pg_params_set(&p, "wal_keep_size", v);
                if (r < 0)
                        return r;
        }

        qsort(p.items, p.n, sizeof(PgParam), pg_param_compare);
        has_hba = pg_params_has(&p, "hba_file");
        has_ident = pg_params_has(&p, "ident_file");
        hba = pgconf_path(s, "pg_hba.conf");
        ident = pgconf_path(s, "pg_ident.conf");
        if (!hba || !ident)
                return -ENOMEM;
        if (!has_hba && (r = pg_params_set(&p, "hba_file", hba)) < 0)
                return r;
        if (!has_ident && (r = pg_params_set(&p, "ident_file", ident)) < 0)
                return r;

        *ret = p;
        p = (PgParams){};
        return 0;
}

/* pgconf_postmaster_argv() - postgres -D <data_dir> --config-file=<conf> --listen_addresses=... and the
 * other command-line parameters in Patroni's order. */
int pgconf_postmaster_argv(const PgSettings *s, char ***ret) {
        _cleanup_(pg_params_done) PgParams p = {};
        _cleanup_(proc_strv_freep) char **argv = NULL;
        _cleanup_free_ char *postgres = pgconf_bin(s, "postgres"), *conf = pgconf_path(s, "postgresql.conf");
        int r;

        if (!postgres || !conf)
                return -ENOMEM;
        r = pgconf_server_parameters(s, &p);
        if (r < 0)
                return r;
        if ((r = proc_strv_push(&argv, postgres)) < 0 || (r = proc_strv_push(&argv, "-D")) < 0 ||
            (r = proc_strv_push(&argv, s->data_dir)) < 0 ||
            (r = proc_strv_pushf(&argv, "--config-file=%s", conf)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(cmdline_parameters); i++) {
                r = proc_strv_pushf(
                        &argv,
                        "--%s=%s",
                        cmdline_parameters[i].name,
                        strempty(pg_params_get(&p, cmdline_parameters[i].name)));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(argv);
        return 0;
}

/* pgconf_recovery_params() - the recovery section for a replica following host:port (host NULL =
 * following nobody): recovery_conf extras, primary_conninfo with application_name = our name and
 * passfile when the replication user has a password, primary_slot_name when use_slots,
 * recovery_target_timeline = latest and the other recovery_target* neutralised. */
int pgconf_recovery_params(const PgSettings *s, const char *host, unsigned port, PgParams *ret) {
        _cleanup_(pg_params_done) PgParams p = {};
        static const char *const neutralised[] = {
                "recovery_target",
                "recovery_target_lsn",
                "recovery_target_name",
                "recovery_target_time",
                "recovery_target_xid",
        };
        int r;

        for (size_t i = 0; i < s->recovery_conf.n; i++) {
                const PgParam *pp = &s->recovery_conf.items[i];
                if (startswith(pp->name, "recovery_target") || streq(pp->name, "primary_conninfo") ||
                    streq(pp->name, "primary_slot_name") || streq(pp->name, "standby_mode") || !pp->value)
                        continue;
                r = pg_params_set(&p, pp->name, pp->value);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(neutralised); i++)
                if ((r = pg_params_set(&p, neutralised[i], "")) < 0)
                        return r;
        if ((r = pg_params_set(&p, "recovery_target_timeline", "latest")) < 0)
                return r;

        if (host) {
                static const char *const prefer[] = {"sslmode", "gssencmode", "channel_binding"};
                _cleanup_(pg_params_done) PgParams c = {};
                _cleanup_free_ char *dsn = NULL;

                /* As Patroni: the replication user's libpq keys, and "prefer" for those it leaves unset. */
                if ((r = pgconf_conn_params(&s->replication, /* dbname= */ NULL, host, port, &c)) < 0 ||
                    (s->replication.password && (r = pg_params_set(&c, "passfile", s->pgpass)) < 0) ||
                    (r = pg_params_set(&c, "application_name", s->name)) < 0)
                        return r;
                for (size_t i = 0; i < ELEMENTSOF(prefer); i++)
                        if (!pg_params_get(&c, prefer[i]) &&
                            (r = pg_params_set(&c, prefer[i], "prefer")) < 0)
                                return r;
                dsn = pgconf_format_dsn(&c);
                if (!dsn)
                        return -ENOMEM;
                if ((r = pg_params_set(&p, "primary_conninfo", dsn)) < 0)
                        return r;
                if (s->use_slots) {
                        _cleanup_free_ char *slot = NULL;
                        r = pgconf_slot_name(s->name, &slot);
                        if (r < 0)
                                return r;
                        if ((r = pg_params_set(&p, "primary_slot_name", slot)) < 0)
                                return r;
                }
        }
        qsort(p.items, p.n, sizeof(PgParam), pg_param_compare);
        *ret = p;
        p = (PgParams){};
        return 0;
}

static int write_param(FILE *f, const PgParam *p) {
        _cleanup_free_ char *q = pgconf_quote(p->value);
        if (!q)
                return -ENOMEM;
        fprintf(f, "%s = %s\n", p->name, q);
        return 0;
}

/* pgconf_render_postgresql_conf() - the complete postgresql.conf text; recovery may be NULL. */
int pgconf_render_postgresql_conf(const PgSettings *s, const PgParams *recovery, char **ret) {
        _cleanup_(pg_params_done) PgParams p = {};
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        r = pgconf_server_parameters(s, &p);
        if (r < 0)
                return r;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Do not edit this file manually!\n# It will be overwritten by Patroni!\n", f);
        if (s->custom_conf) {
                _cleanup_free_ char *q = pgconf_quote(s->custom_conf);
                if (!q) {
                        fclose(f);
                        return -ENOMEM;
                }
                fprintf(f, "include %s\n\n", q);
        } else
                fputs("include 'postgresql.base.conf'\n\n", f);
        for (size_t i = 0; i < p.n && r >= 0; i++)
                r = write_param(f, &p.items[i]);
        if (recovery && recovery->n > 0) {
                fputs("\n# recovery.conf\n", f);
                for (size_t i = 0; i < recovery->n && r >= 0; i++)
                        if (!streq(recovery->items[i].name, "standby_mode")) /* a signal file on PG >= 12 */
                                r = write_param(f, &recovery->items[i]);
        }
        if (fclose(f) != 0 || r < 0)
                return r < 0 ? r : -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int write_text(const char *path, const char *text, mode_t mode) {
        return write_file_atomic(path, text, strlen(text), mode);
}

/* pg_hba.conf / pg_ident.conf: two header lines, then the configured lines. */
static int write_managed_list(const PgSettings *s, const char *file, char *const *lines) {
        _cleanup_free_ char *path = pgconf_path(s, file), *buf = NULL;
        size_t size = 0;
        FILE *f;

        if (!path)
                return -ENOMEM;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Do not edit this file manually!\n# It will be overwritten by Patroni!\n", f);
        for (char *const *l = lines; l && *l; l++)
                fprintf(f, "%s\n", *l);
        if (fclose(f) != 0)
                return -ENOMEM;
        return write_text(path, buf, 0600);
}

/* Removes recovery settings from postgresql.auto.conf (an ALTER SYSTEM or an old pg_basebackup -R may
 * have put them there), keeping every other line. */
static int sanitize_auto_conf(const PgSettings *s) {
        _cleanup_free_ char *path = pgdata_path(s, "postgresql.auto.conf"), *text = NULL, *out = NULL;
        size_t size = 0;
        bool changed = false;
        FILE *f;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, PGCONF_FILE_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        for (char *line = text; *line;) {
                size_t l = strcspn(line, "\n");
                const char *p = line + strspn(line, " \t");
                size_t nl = strcspn(p, " \t=");
                _cleanup_free_ char *name = strndup(p, nl);
                if (name && is_recovery_parameter(name))
                        changed = true;
                else
                        fwrite(line, 1, l + (line[l] == '\n'), f);
                line += l + (line[l] == '\n');
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        return changed ? write_text(path, out, 0600) : 0;
}

static int remove_if_exists(const char *dir_path) {
        if (unlink(dir_path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* pgconf_write_config() - renames an initdb/basebackup postgresql.conf to postgresql.base.conf on
 * first use, then atomically writes postgresql.conf (with the recovery section when recovery != NULL);
 * writes pg_hba.conf/pg_ident.conf when managed and the pgpass file for the replication user when the
 * recovery section uses it. Safe while PostgreSQL runs (before a reload). Logging. */
int pgconf_write_config(const PgSettings *s, const PgParams *recovery) {
        _cleanup_free_ char *conf = pgconf_path(s, "postgresql.conf"),
                            *base = pgconf_path(s, "postgresql.base.conf"), *text = NULL;
        struct stat st;
        int r;

        if (!conf || !base)
                return log_oom();

        /* First write: keep initdb's (or the base backup's) file reachable through the include. */
        if (!s->custom_conf && stat(base, &st) < 0 && errno == ENOENT && stat(conf, &st) == 0) {
                if (rename(conf, base) < 0)
                        return log_error_errno(-errno, "Failed to rename %s to %s: %m", conf, base);
                log_info("Renamed %s to %s.", conf, base);
        }

        r = pgconf_render_postgresql_conf(s, recovery, &text);
        if (r < 0)
                return log_error_errno(r, "Failed to render postgresql.conf: %m");
        r = write_text(conf, text, 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", conf);

        if (s->pg_hba && s->pg_hba[0] && !pg_params_has(&s->parameters, "hba_file")) {
                r = write_managed_list(s, "pg_hba.conf", s->pg_hba);
                if (r < 0)
                        return log_error_errno(r, "Failed to write pg_hba.conf: %m");
        }
        if (s->pg_ident && s->pg_ident[0] && !pg_params_has(&s->parameters, "ident_file")) {
                r = write_managed_list(s, "pg_ident.conf", s->pg_ident);
                if (r < 0)
                        return log_error_errno(r, "Failed to write pg_ident.conf: %m");
        }

        if (recovery && s->replication.password && pg_params_get(recovery, "primary_conninfo")) {
                /* primary_conninfo names the passfile; the walreceiver reads it at each connect. */
                _cleanup_free_ char *host = NULL;
                const char *ci = pg_params_get(recovery, "primary_conninfo"), *h = strstr(ci, "host="),
                           *pt = strstr(ci, "port=");
                if (h && pt) {
                        host = strndup(h + 5, strcspn(h + 5, " "));
                        if (!host)
                                return log_oom();
                        r = pgconf_write_pgpass(
                                s, host, (unsigned)strtoul(pt + 5, NULL, 10), &s->replication);
                        if (r < 0)
                                return log_error_errno(r, "Failed to write pgpass file %s: %m", s->pgpass);
                }
        }
        return 0;
}

/* pgconf_write_all() - pgconf_write_config(), plus the signal files: for a replica (recovery != NULL)
 * standby.signal is created (recovery.signal instead when recovery has standby_mode = off, as for a
 * custom bootstrap's point-in-time recovery), for a primary standby.signal/recovery.signal are removed;
 * recovery settings are removed from postgresql.auto.conf. Only while PostgreSQL is stopped (before a
 * start): a running standby whose standby.signal vanished fails its promotion. Logging. */
int pgconf_write_all(const PgSettings *s, const PgParams *recovery) {
        _cleanup_free_ char *standby = pgdata_path(s, "standby.signal"),
                            *recovery_signal = pgdata_path(s, "recovery.signal");
        int r;

        if (!standby || !recovery_signal)
                return log_oom();
        r = pgconf_write_config(s, recovery);
        if (r < 0)
                return r;

        if (recovery) {
                const char *sm = pg_params_get(recovery, "standby_mode");
                bool standby_mode = !sm ||
                        (strcasecmp(sm, "off") != 0 && strcasecmp(sm, "false") != 0 &&
                         strcasecmp(sm, "no") != 0 && !streq(sm, "0"));
                r = write_text(standby_mode ? standby : recovery_signal, "", 0600);
                if (r < 0)
                        return log_error_errno(
                                r, "Failed to create the recovery signal file in %s: %m", s->data_dir);
                r = remove_if_exists(standby_mode ? recovery_signal : standby);
        } else {
                r = remove_if_exists(standby);
                if (r >= 0)
                        r = remove_if_exists(recovery_signal);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to update recovery signal files in %s: %m", s->data_dir);

        r = sanitize_auto_conf(s);
        if (r < 0)
                return log_error_errno(
                        r, "Failed to remove recovery settings from postgresql.auto.conf: %m");
        return 0;
}

static void pgpass_field(FILE *f, const char *v) {
        if (isempty(v)) {
                fputc('*', f);
                return;
        }
        for (; *v; v++) {
                if (*v == ':' || *v == '\\')
                        fputc('\\', f);
                fputc(*v, f);
        }
}

/* pgconf_render_pgpass() - the text pgconf_write_pgpass() writes (heap string, NULL on OOM). */
char *pgconf_render_pgpass(const char *host, unsigned port, const PgAuth *auth) {
        char *buf = NULL;
        size_t size = 0;
        char port_s[16];
        FILE *f;

        (void)snprintf(port_s, sizeof(port_s), "%u", port);
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        for (int i = 0; i < 2; i++) {
                const char *h = i == 0 ? host : "localhost";
                if (i == 1 && (!host || host[0] != '/'))
                        break; /* libpq matches Unix-socket connections against "localhost" */
                pgpass_field(f, h);
                fputc(':', f);
                pgpass_field(f, port_s);
                fputs(":*:", f);
                pgpass_field(f, auth->username);
                fputc(':', f);
                pgpass_field(f, auth->password);
                fputc('\n', f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* pgconf_write_pgpass() - overwrites the pgpass file (mode 0600) with one line for host:port/auth
 * (plus a localhost line so Unix-socket connections match too). Non-logging. */
int pgconf_write_pgpass(const PgSettings *s, const char *host, unsigned port, const PgAuth *auth) {
        _cleanup_free_ char *buf = NULL;

        if (!s->pgpass)
                return -EINVAL;
        buf = pgconf_render_pgpass(host, port, auth);
        if (!buf)
                return -ENOMEM;
        return write_text(s->pgpass, buf, 0600);
}

/* pgconf_append_bootstrap_hba() - appends bootstrap.pg_hba to pg_hba.conf (blank line, lines,
 * newline) unless pg_hba.conf is managed. Non-logging. */
int pgconf_append_bootstrap_hba(const PgSettings *s) {
        _cleanup_free_ char *path = pgconf_path(s, "pg_hba.conf"), *old = NULL, *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        if (!path)
                return -ENOMEM;
        if ((s->pg_hba && s->pg_hba[0]) || !s->bootstrap_pg_hba || !s->bootstrap_pg_hba[0])
                return 0;
        r = read_full_file(path, PGCONF_FILE_MAX, &old, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs(strempty(old), f);
        fputc('\n', f);
        for (size_t i = 0; s->bootstrap_pg_hba[i]; i++)
                fprintf(f, "%s%s", i > 0 ? "\n" : "", s->bootstrap_pg_hba[i]);
        fputc('\n', f);
        if (fclose(f) != 0)
                return -ENOMEM;
        return write_text(path, buf, 0600);
}

/* The files backed up after a successful start and restored when a base backup or a custom replica
 * method left them out (Patroni §6.1). */
static const char *const backed_up_files[] = {
        "postgresql.conf",
        "postgresql.base.conf",
        "pg_hba.conf",
        "pg_ident.conf",
};

static int copy_file(const char *from, const char *to) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r = read_full_file(from, PGCONF_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        return write_file_atomic(to, text, size, 0600);
}

/* pgconf_backup_files() - copies postgresql.conf, postgresql.base.conf, pg_hba.conf and pg_ident.conf
 * (those that exist) to <file>.backup in config_dir; done after every successful start. Non-logging. */
int pgconf_backup_files(const PgSettings *s) {
        for (size_t i = 0; i < ELEMENTSOF(backed_up_files); i++) {
                _cleanup_free_ char *path = pgconf_path(s, backed_up_files[i]), *backup = NULL;
                int r;

                if (!path || asprintf(&backup, "%s.backup", path) < 0)
                        return -ENOMEM;
                r = copy_file(path, backup);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 0;
}

/* pgconf_restore_files() - restores those files that are missing from their .backup copies (after a
 * base backup or a custom replica method). Returns the number restored. Non-logging. */
int pgconf_restore_files(const PgSettings *s) {
        int n = 0;

        for (size_t i = 0; i < ELEMENTSOF(backed_up_files); i++) {
                _cleanup_free_ char *path = pgconf_path(s, backed_up_files[i]), *backup = NULL;
                struct stat st;
                int r;

                if (!path || asprintf(&backup, "%s.backup", path) < 0)
                        return -ENOMEM;
                if (stat(path, &st) == 0 || errno != ENOENT)
                        continue;
                r = copy_file(backup, path);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}
