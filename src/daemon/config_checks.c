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

/* Where a key is written, for warnings about the key itself (falls back to its value's position). */
static YNode key_at(const YNode *n) {
        YNode at = {.file = n->file, .line = n->key_line, .column = n->key_column};

        if (at.line == 0 && at.column == 0) {
                at.line = n->line;
                at.column = n->column;
        }
        return at;
}

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
                at = key_at(n);
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
                at = key_at(ch);
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
                        at = key_at(ch);
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
                        at = key_at(ch);
                        r = config_parser_warning(p, &at, path, "unknown key, ignored");
                        if (r < 0)
                                return r;
                }
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
        return 0;
}
