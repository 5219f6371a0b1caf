/* SPDX-License-Identifier: MIT */
/*
 * Cross-field checks of the local configuration that run after the key-table walk and post_checks()
 * (config.c): the log section (a log.format layout pghad can render, keys that have no effect here),
 * and the settings Patroni refuses or warns about only at run time (see each function). Invariant, as
 * in config.c: every problem is reported with the position of the node it concerns, and nothing here
 * changes the Config except where a comment says so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config-internal.h"
#include "pgha/log.h"
#include "pgha/proc.h"
#include "pgha/watchdog.h"

/* log.format must compile (unknown %(fields) are errors, as Python's Formatter raises on them when
 * Patroni formats the first record); traceback_level, loggers and max_queue_size are Patroni
 * implementation details without a counterpart in pghad: accepted with a warning. */
static int check_log(ConfigParser *p) {
        const YNode *log = ynode_get(p->root, "log"), *n;
        const Config *c = p->config;
        char problem[256];
        YNode at;
        int r;

        if (!log || log->type != YNODE_MAPPING)
                return 0;

        n = ynode_get(log, "format");
        if (n && c->log.format && log_format_check(c->log.format, problem, sizeof problem) < 0) {
                r = config_parser_error(p, n, "log.format", "%s", problem);
                if (r == -ENOMEM)
                        return r;
        }
        n = ynode_get(log, "dateformat");
        if (n && c->log.dateformat && strlen(c->log.dateformat) >= 128) {
                r = config_parser_error(p, n, "log.dateformat", "longer than 127 characters");
                if (r == -ENOMEM)
                        return r;
        }

        n = ynode_get(log, "dir");
        if (n && c->log.dir) {
                struct stat st;

                if (stat(c->log.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        r = config_parser_warning(
                                p,
                                n,
                                "log.dir",
                                "'%s' is not a directory here: pghad logs to stderr until it can open %s/%s",
                                c->log.dir,
                                c->log.dir,
                                LOG_FILE_NAME);
                        if (r < 0)
                                return r;
                }
        }

        static const struct {
                const char *key, *why;
        } no_effect[] = {
                {"traceback_level", "pghad logs no Python tracebacks"},
                {"loggers", "pghad has no per-module Python loggers; use log.level"},
                {"max_queue_size", "pghad writes each line directly, without a queue"},
        };
        for (size_t i = 0; i < ELEMENTSOF(no_effect); i++) {
                _cleanup_free_ char *path = NULL;

                n = ynode_get(log, no_effect[i].key);
                if (!n)
                        continue;
                if (asprintf(&path, "log.%s", no_effect[i].key) < 0)
                        return -ENOMEM;
                at = config_key_position(n);
                r = config_parser_warning(
                        p, &at, path, "accepted for compatibility, has no effect: %s", no_effect[i].why);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool node_list_has(const YNode *l, const char *s) {
        if (!l || l->type != YNODE_SEQUENCE)
                return false;
        for (size_t i = 0; i < l->n; i++)
                if (l->items[i]->type == YNODE_SCALAR && streq_ptr(l->items[i]->value, s))
                        return true;
        return false;
}

/* An unknown key of bootstrap.dcs (a typo such as loop_wiat, or postgresql.use_slot) would be written
 * into the DCS and then silently ignored by every member: warn, as for unknown local keys. Keys
 * allowed: the dynamic keys of patroni-compat.md §5.3; under postgresql every non-local
 * postgresql.* key of the local table, use_slots, and replica method sections named in a
 * create_replica_methods list; under standby_cluster the keys Patroni copies. */
static int check_bootstrap_dcs(ConfigParser *p) {
        const YNode *dcs = ynode_get(ynode_get(p->root, "bootstrap"), "dcs"), *pg, *sc;
        int r;

        if (!dcs || dcs->type != YNODE_MAPPING)
                return 0;

        for (size_t i = 0; i < dcs->n; i++) {
                const YNode *ch = dcs->items[i];
                _cleanup_free_ char *path = NULL;
                YNode at;

                if (config_is_dynamic_key(ch->key) || STR_IN_SET(ch->key, "postgresql", "watchdog"))
                        continue;
                if (asprintf(&path, "bootstrap.dcs.%s", ch->key) < 0)
                        return -ENOMEM;
                at = config_key_position(ch);
                r = config_parser_warning(p, &at, path, "unknown key, ignored");
                if (r < 0)
                        return r;
        }

        pg = ynode_get(dcs, "postgresql");
        if (pg && pg->type == YNODE_MAPPING)
                for (size_t i = 0; i < pg->n; i++) {
                        const YNode *ch = pg->items[i];
                        _cleanup_free_ char *path = NULL, *local = NULL;
                        const YNode *local_methods =
                                ynode_get(ynode_get(p->root, "postgresql"), "create_replica_methods");
                        YNode at;

                        if (asprintf(&path, "bootstrap.dcs.postgresql.%s", ch->key) < 0 ||
                            asprintf(&local, "postgresql.%s", ch->key) < 0)
                                return -ENOMEM;
                        at = config_key_position(ch);
                        if (STR_IN_SET(
                                    ch->key,
                                    "connect_address",
                                    "proxy_address",
                                    "listen",
                                    "config_dir",
                                    "data_dir",
                                    "pgpass",
                                    "authentication")) {
                                r = config_parser_warning(
                                        p,
                                        &at,
                                        path,
                                        "local setting, ignored in the dynamic configuration: set "
                                        "postgresql.%s in each member's file",
                                        ch->key);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (streq(ch->key, "use_slots") || config_key_find(local) ||
                            (ch->type == YNODE_MAPPING &&
                             (node_list_has(ynode_get(pg, "create_replica_methods"), ch->key) ||
                              node_list_has(local_methods, ch->key))))
                                continue;
                        r = config_parser_warning(p, &at, path, "unknown key, ignored");
                        if (r < 0)
                                return r;
                }

        sc = ynode_get(dcs, "standby_cluster");
        if (sc && sc->type == YNODE_MAPPING)
                for (size_t i = 0; i < sc->n; i++) {
                        const YNode *ch = sc->items[i];
                        _cleanup_free_ char *path = NULL;
                        YNode at;

                        if (STR_IN_SET(
                                    ch->key,
                                    "host",
                                    "port",
                                    "primary_slot_name",
                                    "create_replica_methods",
                                    "restore_command",
                                    "archive_cleanup_command",
                                    "recovery_min_apply_delay"))
                                continue;
                        if (asprintf(&path, "bootstrap.dcs.standby_cluster.%s", ch->key) < 0)
                                return -ENOMEM;
                        at = config_key_position(ch);
                        r = config_parser_warning(p, &at, path, "unknown key, ignored");
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* The node at a dotted path of plain keys, or NULL. */
static const YNode *node_at(const YNode *root, const char *path) {
        const YNode *n = root;

        while (n && *path) {
                size_t l = strcspn(path, ".");
                _cleanup_free_ char *part = strndup(path, l);

                if (!part)
                        return NULL;
                n = ynode_get(n, part);
                path += l;
                if (*path == '.')
                        path++;
        }
        return n;
}

/* bootstrap.initdb options that pghad passes itself (Patroni refuses the same list when it runs
 * initdb; pghad refused them only when bootstrapping, exiting 2): an error at validation. */
static int check_initdb(ConfigParser *p) {
        static const char *const forbidden[] = {"pgdata", "nosync", "pwfile", "sync-only", "version"};
        const YNode *initdb = node_at(p->root, "bootstrap.initdb");
        int r;

        if (!initdb || !IN_SET(initdb->type, YNODE_SEQUENCE, YNODE_MAPPING))
                return 0;
        for (size_t i = 0; i < initdb->n; i++) {
                const YNode *it = initdb->items[i], *at = it;
                const char *name = NULL;

                if (initdb->type == YNODE_MAPPING)
                        name = it->key;
                else if (it->type == YNODE_SCALAR)
                        name = it->value;
                else if (it->type == YNODE_MAPPING && it->n == 1) {
                        name = it->items[0]->key;
                        at = it->items[0];
                }
                for (size_t k = 0; name && k < ELEMENTSOF(forbidden); k++) {
                        YNode pos = config_key_position(at);

                        if (!streq(name, forbidden[k]))
                                continue;
                        r = config_parser_error(
                                p,
                                initdb->type == YNODE_MAPPING || at != it ? &pos : at,
                                "bootstrap.initdb",
                                "option '%s' is not allowed: pghad sets it itself",
                                name);
                        if (r == -ENOMEM)
                                return r;
                }
        }
        return 0;
}

/* One command that pghad will split into words itself (no shell), as Patroni does with shlex. */
static int check_command(ConfigParser *p, const YNode *n, const char *path) {
        _cleanup_(proc_strv_freep) char **argv = NULL;
        int r;

        if (!n || n->type != YNODE_SCALAR || ynode_is_null(n))
                return 0;
        r = proc_split_command(n->value, &argv);
        if (r == -ENOMEM)
                return r;
        if (r >= 0)
                return 0;
        r = config_parser_error(
                p,
                n,
                path,
                "cannot split '%s' into words: %s (no shell runs it: quote as in sh, without expansions)",
                n->value,
                strspn(n->value, " \t\n") == strlen(n->value) ? "empty command"
                                                              : "unterminated quote or escape");
        return r == -ENOMEM ? r : 0;
}

/* Callbacks, pre_promote, post_bootstrap and the commands of custom bootstrap and replica methods. */
static int check_commands(ConfigParser *p) {
        static const char *const paths[] = {
                "postgresql.callbacks.on_start",
                "postgresql.callbacks.on_stop",
                "postgresql.callbacks.on_restart",
                "postgresql.callbacks.on_reload",
                "postgresql.callbacks.on_role_change",
                "postgresql.pre_promote",
                "bootstrap.post_bootstrap",
                "bootstrap.post_init",
        };
        const Config *c = p->config;
        const cJSON *m;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                r = check_command(p, node_at(p->root, paths[i]), paths[i]);
                if (r < 0)
                        return r;
        }
        cJSON_ArrayForEach (m, c->postgresql.replica_methods) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "postgresql.%s.command", m->string) < 0)
                        return -ENOMEM;
                r = check_command(
                        p,
                        ynode_get(ynode_get(ynode_get(p->root, "postgresql"), m->string), "command"),
                        path);
                if (r < 0)
                        return r;
        }
        cJSON_ArrayForEach (m, c->bootstrap.methods) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "bootstrap.%s.command", m->string) < 0)
                        return -ENOMEM;
                r = check_command(
                        p,
                        ynode_get(ynode_get(ynode_get(p->root, "bootstrap"), m->string), "command"),
                        path);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* postgresql.bin_dir must hold the programs pghad runs. Patroni's --validate-config reports a missing
 * directory or program as an error but Patroni starts regardless; pghad validates at every start, on
 * a host where PostgreSQL may be installed later, so this is a warning. */
static int check_bin_dir(ConfigParser *p) {
        static const char *const programs[] = {
                "pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready"};
        const YNode *n = node_at(p->root, "postgresql.bin_dir");
        const char *dir = p->config->postgresql.bin_dir;
        struct stat st;
        int r;

        if (!n || isempty(dir))
                return 0;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return config_parser_warning(
                        p,
                        n,
                        "postgresql.bin_dir",
                        "'%s' is not a directory here: PostgreSQL cannot be run from it",
                        dir);
        char missing[128] = "";
        for (size_t i = 0; i < ELEMENTSOF(programs); i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, programs[i]) < 0)
                        return -ENOMEM;
                if (access(path, X_OK) >= 0)
                        continue;
                /* The names are short and fixed: they always fit. */
                (void)strncat(missing, missing[0] ? ", " : "", sizeof missing - strlen(missing) - 1);
                (void)strncat(missing, programs[i], sizeof missing - strlen(missing) - 1);
        }
        if (missing[0]) {
                r = config_parser_warning(
                        p,
                        n,
                        "postgresql.bin_dir",
                        "'%s' lacks the executables PostgreSQL needs: %s",
                        dir,
                        missing);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int dcs_int(const Config *c, const char *key, int def) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->bootstrap.dcs, key);

        return cJSON_IsNumber(v) ? v->valueint : def;
}

/* The watchdog timeout is ttl - safety_margin (ttl / 2 for a margin of -1), with ttl and loop_wait from
 * bootstrap.dcs (the DCS may later hold others). Patroni disables the watchdog when that leaves less
 * than loop_wait (and then a "required" member never leads). A timeout of zero or less is an error when
 * the watchdog is required, otherwise a warning; a timeout shorter than loop_wait is a warning. */
static int check_watchdog(ConfigParser *p) {
        const Config *c = p->config;
        const YNode *wd = ynode_get(p->root, "watchdog"), *at;
        int ttl = dcs_int(c, "ttl", 30), loop_wait = dcs_int(c, "loop_wait", 10),
            margin = c->watchdog.safety_margin;
        int timeout = margin == -1 ? ttl / 2 : ttl - margin;
        bool required = c->watchdog.mode == WATCHDOG_REQUIRED;
        int r;

        if (!wd || c->watchdog.mode == WATCHDOG_OFF)
                return 0;
        at = ynode_get(wd, "safety_margin") ?: ynode_get(wd, "mode") ?: wd;
        if (timeout <= 0) {
                if (required) {
                        r = config_parser_error(
                                p,
                                at,
                                "watchdog.safety_margin",
                                "safety_margin %d leaves no watchdog timeout with ttl %d: the required "
                                "watchdog "
                                "can never be armed, so this member could never become leader",
                                margin,
                                ttl);
                        return r == -ENOMEM ? r : 0;
                }
                return config_parser_warning(
                        p,
                        at,
                        "watchdog.safety_margin",
                        "safety_margin %d leaves no watchdog timeout with ttl %d: the watchdog will not be "
                        "used",
                        margin,
                        ttl);
        }
        if (timeout < loop_wait)
                return config_parser_warning(
                        p,
                        at,
                        "watchdog.safety_margin",
                        "the watchdog timeout %d s (ttl %d - safety_margin) is shorter than loop_wait %d s: "
                        "the "
                        "watchdog will not be used%s",
                        timeout,
                        ttl,
                        loop_wait,
                        required ? " and, as it is required, this member will not become leader" : "");
        return 0;
}

int config_extra_checks(ConfigParser *p) {
        int r;

        r = check_log(p);
        if (r < 0)
                return r;
        r = check_bootstrap_dcs(p);
        if (r < 0)
                return r;
        r = check_initdb(p);
        if (r < 0)
                return r;
        r = check_commands(p);
        if (r < 0)
                return r;
        r = check_bin_dir(p);
        if (r < 0)
                return r;
        r = check_watchdog(p);
        if (r < 0)
                return r;
        return 0;
}
