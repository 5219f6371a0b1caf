/* SPDX-License-Identifier: MIT */
/*
 * The dynamic configuration (etcd's `config` key, bootstrap.dcs) as a typed DynamicConfig with
 * Patroni's defaults, and the §5.2 merge of postgresql.parameters. Pure: no I/O, no clock, no logging.
 * Invariant: parsing is as tolerant as Patroni's (numbers or numeric strings for ints, boolean words),
 * and a value that does not parse keeps its default instead of failing the whole document.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-internal.h"
#include "pgha/parse.h"

int dynamic_config_init(DynamicConfig *ret) {
        *ret = (DynamicConfig){
                .ttl = 30,
                .loop_wait = 10,
                .retry_timeout = 10,
                .maximum_lag_on_failover = 1048576,
                .maximum_lag_on_syncnode = -1,
                .max_timelines_history = 0,
                .primary_start_timeout = 300,
                .primary_stop_timeout = 0,
                .synchronous_mode = SYNCHRONOUS_MODE_OFF,
                .synchronous_node_count = 1,
                .use_slots = true,
        };
        ret->parameters = cJSON_CreateObject();
        return ret->parameters ? 0 : -ENOMEM;
}

void dynamic_config_done(DynamicConfig *c) {
        if (!c)
                return;
        cJSON_Delete(c->standby_cluster);
        cJSON_Delete(c->parameters);
        cJSON_Delete(c->postgresql);
        cJSON_Delete(c->slots);
        cJSON_Delete(c->ignore_slots);
        c->standby_cluster = c->parameters = c->postgresql = c->slots = c->ignore_slots = NULL;
}

/* Python's int(): a JSON number with an integral value, or a string of decimal digits (blanks allowed
 * around it). Booleans count as 0/1 as in Python. */
static int json_to_int64(const cJSON *v, int64_t *ret) {
        if (cJSON_IsBool(v)) {
                *ret = cJSON_IsTrue(v);
                return 0;
        }
        if (cJSON_IsNumber(v)) {
                double d = v->valuedouble;

                if (!isfinite(d) || d < -9.2e18 || d > 9.2e18)
                        return -ERANGE;
                *ret = (int64_t)d; /* int(3.7) == 3 */
                return 0;
        }
        if (cJSON_IsString(v) && v->valuestring) {
                _cleanup_free_ char *s = NULL;
                const char *b = v->valuestring;
                size_t l;
                long long ll;
                int r;

                while (*b == ' ' || *b == '\t')
                        b++;
                l = strlen(b);
                while (l > 0 && (b[l - 1] == ' ' || b[l - 1] == '\t'))
                        l--;
                s = strndup(b, l);
                if (!s)
                        return -ENOMEM;
                r = safe_atolli(s, &ll);
                if (r < 0)
                        return r;
                *ret = ll;
                return 0;
        }
        return -EINVAL;
}

/* Patroni's parse_bool on whatever JSON type: true/false, numbers 0/1, boolean words. */
static int json_to_bool(const cJSON *v) {
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v);
        if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1))
                return v->valuedouble == 1;
        if (cJSON_IsString(v))
                return parse_boolean(v->valuestring);
        return -EINVAL;
}

static int dup_into(cJSON **dst, const cJSON *src) {
        cJSON *d = cJSON_Duplicate(src, true);

        if (!d)
                return -ENOMEM;
        cJSON_Delete(*dst);
        *dst = d;
        return 0;
}

static void bad_value(ConfigDiagnostics *diags, const char *source, const char *key, const char *what) {
        (void)config_diagnostics_add(
                diags, CONFIG_WARNING, source ?: "dcs", 0, 0, key, "%s, using the default", what);
}

int dynamic_config_from_json(
        const cJSON *json, DynamicConfig *ret, const char *source, ConfigDiagnostics *diags) {
        static const struct {
                const char *key, *alias;
                size_t offset;
                bool is64;
                int64_t min;
        } ints[] = {
                {"ttl", NULL, offsetof(DynamicConfig, ttl), false, 1},
                {"loop_wait", NULL, offsetof(DynamicConfig, loop_wait), false, 1},
                {"retry_timeout", NULL, offsetof(DynamicConfig, retry_timeout), false, 1},
                {"maximum_lag_on_failover",
                 NULL,
                 offsetof(DynamicConfig, maximum_lag_on_failover),
                 true,
                 INT64_MIN},
                {"maximum_lag_on_syncnode",
                 NULL,
                 offsetof(DynamicConfig, maximum_lag_on_syncnode),
                 true,
                 INT64_MIN},
                {"max_timelines_history", NULL, offsetof(DynamicConfig, max_timelines_history), false, 0},
                {"primary_start_timeout",
                 "master_start_timeout",
                 offsetof(DynamicConfig, primary_start_timeout),
                 false,
                 0},
                {"primary_stop_timeout",
                 "master_stop_timeout",
                 offsetof(DynamicConfig, primary_stop_timeout),
                 false,
                 0},
                {"synchronous_node_count", NULL, offsetof(DynamicConfig, synchronous_node_count), false, 1},
        };
        /* Booleans, at the top level or in the postgresql section (path = the key as diagnostics name it);
         * a bad value keeps the default, with a warning. */
        static const struct {
                const char *path;
                size_t offset;
        } bools[] = {
                {"synchronous_mode_strict", offsetof(DynamicConfig, synchronous_mode_strict)},
                {"failsafe_mode", offsetof(DynamicConfig, failsafe_mode)},
                {"check_timeline", offsetof(DynamicConfig, check_timeline)},
                {"pause", offsetof(DynamicConfig, pause)},
                {"postgresql.use_pg_rewind", offsetof(DynamicConfig, use_pg_rewind)},
                {"postgresql.use_slots", offsetof(DynamicConfig, use_slots)},
                {"postgresql.remove_data_directory_on_rewind_failure",
                 offsetof(DynamicConfig, remove_data_directory_on_rewind_failure)},
                {"postgresql.remove_data_directory_on_diverged_timelines",
                 offsetof(DynamicConfig, remove_data_directory_on_diverged_timelines)},
        };
        DynamicConfig d;
        const cJSON *v, *pg;
        int r;

        r = dynamic_config_init(&d);
        if (r < 0)
                return r;
        if (!cJSON_IsObject(json)) {
                dynamic_config_done(ret);
                *ret = d;
                return -EINVAL;
        }

        for (size_t i = 0; i < ELEMENTSOF(ints); i++) {
                int64_t x;

                v = cJSON_GetObjectItemCaseSensitive(json, ints[i].key);
                if ((!v || cJSON_IsNull(v)) && ints[i].alias)
                        v = cJSON_GetObjectItemCaseSensitive(json, ints[i].alias);
                if (!v || cJSON_IsNull(v))
                        continue;
                r = json_to_int64(v, &x);
                if (r == -ENOMEM)
                        goto fail;
                if (r < 0 || x < ints[i].min || (!ints[i].is64 && x > INT32_MAX)) {
                        bad_value(diags, source, ints[i].key, r < 0 ? "not an integer" : "out of range");
                        continue;
                }
                if (ints[i].is64)
                        *(int64_t *)((uint8_t *)&d + ints[i].offset) = x;
                else
                        *(int *)((uint8_t *)&d + ints[i].offset) = (int)x;
        }
        pg = cJSON_GetObjectItemCaseSensitive(json, "postgresql");
        for (size_t i = 0; i < ELEMENTSOF(bools); i++) {
                const char *key = bools[i].path, *in_pg = startswith(key, "postgresql.");

                if (in_pg)
                        v = cJSON_IsObject(pg) ? cJSON_GetObjectItemCaseSensitive(pg, in_pg) : NULL;
                else
                        v = cJSON_GetObjectItemCaseSensitive(json, key);
                if (!v || cJSON_IsNull(v))
                        continue;
                r = json_to_bool(v);
                if (r < 0) {
                        bad_value(diags, source, key, "not a boolean");
                        continue;
                }
                *(bool *)((uint8_t *)&d + bools[i].offset) = r;
        }
        v = cJSON_GetObjectItemCaseSensitive(json, "synchronous_mode");
        if (v && !cJSON_IsNull(v)) {
                if (cJSON_IsString(v) && strcasecmp(v->valuestring, "quorum") == 0)
                        d.synchronous_mode = SYNCHRONOUS_MODE_QUORUM;
                else {
                        r = json_to_bool(v);
                        if (r < 0)
                                bad_value(diags, source, "synchronous_mode", "not a boolean or 'quorum'");
                        else
                                d.synchronous_mode = r ? SYNCHRONOUS_MODE_ON : SYNCHRONOUS_MODE_OFF;
                }
        }

        v = cJSON_GetObjectItemCaseSensitive(json, "standby_cluster");
        if (cJSON_IsObject(v) && dup_into(&d.standby_cluster, v) < 0)
                goto oom;
        v = cJSON_GetObjectItemCaseSensitive(json, "slots");
        if (!v)
                v = cJSON_GetObjectItemCaseSensitive(json, "permanent_slots");
        if (!v)
                v = cJSON_GetObjectItemCaseSensitive(json, "permanent_replication_slots");
        if (cJSON_IsObject(v) && dup_into(&d.slots, v) < 0)
                goto oom;
        v = cJSON_GetObjectItemCaseSensitive(json, "ignore_slots");
        if (cJSON_IsArray(v) && dup_into(&d.ignore_slots, v) < 0)
                goto oom;

        if (cJSON_IsObject(pg)) {
                if (dup_into(&d.postgresql, pg) < 0)
                        goto oom;
                v = cJSON_GetObjectItemCaseSensitive(pg, "parameters");
                if (cJSON_IsObject(v) && dup_into(&d.parameters, v) < 0)
                        goto oom;
        }

        dynamic_config_done(ret);
        *ret = d;
        return 0;
oom:
        r = -ENOMEM;
fail:
        dynamic_config_done(&d);
        return r;
}

/* ---- effective parameters (§5.2) ---- */

/* A parameter value as text, the way Patroni writes it (booleans as on/off). */
static char *param_text(const cJSON *v) {
        char buf[64];

        if (cJSON_IsString(v))
                return strdup(v->valuestring);
        if (cJSON_IsBool(v))
                return strdup(cJSON_IsTrue(v) ? "on" : "off");
        if (cJSON_IsNumber(v)) {
                if (v->valuedouble == (double)(long long)v->valuedouble)
                        (void)snprintf(buf, sizeof(buf), "%lld", (long long)v->valuedouble);
                else
                        (void)snprintf(buf, sizeof(buf), "%g", v->valuedouble);
                return strdup(buf);
        }
        return NULL;
}

static bool check_min_int(const cJSON *v, int64_t min) {
        _cleanup_free_ char *t = param_text(v);
        long long ll;

        return t && safe_atolli(t, &ll) >= 0 && ll >= min;
}

/* wal_keep_size: PostgreSQL's MB unit by default (plain integer means megabytes). */
static bool check_wal_keep_size(const cJSON *v) {
        _cleanup_free_ char *t = param_text(v);
        uint64_t bytes;
        long long mb;

        if (!t)
                return false;
        if (safe_atolli(t, &mb) >= 0)
                return mb >= 16;
        return parse_size(t, &bytes) >= 0 && bytes >= 16ULL * 1024 * 1024;
}

static bool check_bool(const cJSON *v) {
        _cleanup_free_ char *t = param_text(v);
        return t && parse_boolean(t) >= 0;
}

static bool check_wal_level(const cJSON *v) {
        _cleanup_free_ char *t = param_text(v);
        return t &&
                (strcasecmp(t, "hot_standby") == 0 || strcasecmp(t, "replica") == 0 ||
                 strcasecmp(t, "logical") == 0);
}

static int set_param(cJSON *obj, const char *name, cJSON *v) {
        if (!v)
                return -ENOMEM;
        if (cJSON_GetObjectItemCaseSensitive(obj, name))
                return cJSON_ReplaceItemInObjectCaseSensitive(obj, name, v) ? 0 : (cJSON_Delete(v), -ENOMEM);
        return cJSON_AddItemToObject(obj, name, v) ? 0 : (cJSON_Delete(v), -ENOMEM);
}

static bool is_cmdline_param(const char *name) {
        return STR_IN_SET(
                name,
                "listen_addresses",
                "port",
                "cluster_name",
                "wal_level",
                "hot_standby",
                "max_connections",
                "max_wal_senders",
                "wal_keep_segments",
                "wal_keep_size",
                "max_prepared_transactions",
                "max_locks_per_transaction",
                "track_commit_timestamp",
                "max_replication_slots",
                "max_worker_processes",
                "wal_log_hints");
}

cJSON *config_effective_parameters(const Config *c, const DynamicConfig *d, int major) {
        const cJSON *dyn = d ? d->parameters : NULL, *v;
        bool new_wal_keep = major == 0 || major >= 13;
        cJSON *out;
        char buf[64];

        out = cJSON_CreateObject();
        if (!out)
                return NULL;

        /* Command-line parameters first, in Patroni's order. */
        if (set_param(out, "listen_addresses", cJSON_CreateString(strempty(c->postgresql.listen.host))) < 0)
                goto oom;
        if (set_param(out, "port", cJSON_CreateNumber(c->postgresql.listen.port)) < 0)
                goto oom;
        if (set_param(out, "cluster_name", cJSON_CreateString(strempty(c->scope))) < 0)
                goto oom;

        v = cJSON_GetObjectItemCaseSensitive(dyn, "wal_level");
        if (v && check_wal_level(v)) {
                _cleanup_free_ char *t = param_text(v);
                if (!t)
                        goto oom;
                if (set_param(
                            out,
                            "wal_level",
                            cJSON_CreateString(strcasecmp(t, "hot_standby") == 0 ? "replica" : t)) < 0)
                        goto oom;
        } else if (set_param(out, "wal_level", cJSON_CreateString("replica")) < 0)
                goto oom;
        if (set_param(out, "hot_standby", cJSON_CreateString("on")) < 0)
                goto oom;

        {
                static const struct {
                        const char *name;
                        int64_t def, min;
                } ints[] = {
                        {"max_connections", 100, 25},
                        {"max_wal_senders", 10, 3},
                        {"max_prepared_transactions", 0, 0},
                        {"max_locks_per_transaction", 64, 32},
                        {"max_replication_slots", 10, 4},
                        {"max_worker_processes", 8, 2},
                };

                for (size_t i = 0; i < ELEMENTSOF(ints); i++) {
                        v = cJSON_GetObjectItemCaseSensitive(dyn, ints[i].name);
                        if (v && check_min_int(v, ints[i].min)) {
                                _cleanup_free_ char *t = param_text(v);
                                long long ll = 0;
                                if (!t || safe_atolli(t, &ll) < 0)
                                        goto oom;
                                if (set_param(out, ints[i].name, cJSON_CreateNumber((double)ll)) < 0)
                                        goto oom;
                        } else if (set_param(out, ints[i].name, cJSON_CreateNumber((double)ints[i].def)) < 0)
                                goto oom;
                }
        }

        /* wal_keep_size (PG >= 13) or wal_keep_segments, converting the other one (16 MB per segment). */
        if (new_wal_keep) {
                const cJSON *seg = cJSON_GetObjectItemCaseSensitive(dyn, "wal_keep_segments");

                v = cJSON_GetObjectItemCaseSensitive(dyn, "wal_keep_size");
                if (v && check_wal_keep_size(v)) {
                        _cleanup_free_ char *t = param_text(v);
                        if (!t || set_param(out, "wal_keep_size", cJSON_CreateString(t)) < 0)
                                goto oom;
                } else if (!v && seg && check_min_int(seg, 1)) {
                        _cleanup_free_ char *t = param_text(seg);
                        long long ll = 0;
                        if (!t || safe_atolli(t, &ll) < 0)
                                goto oom;
                        (void)snprintf(buf, sizeof(buf), "%lldMB", ll * 16);
                        if (set_param(out, "wal_keep_size", cJSON_CreateString(buf)) < 0)
                                goto oom;
                } else if (set_param(out, "wal_keep_size", cJSON_CreateString("128MB")) < 0)
                        goto oom;
        } else {
                const cJSON *size = cJSON_GetObjectItemCaseSensitive(dyn, "wal_keep_size");

                v = cJSON_GetObjectItemCaseSensitive(dyn, "wal_keep_segments");
                if (v && check_min_int(v, 1)) {
                        _cleanup_free_ char *t = param_text(v);
                        long long ll = 0;
                        if (!t || safe_atolli(t, &ll) < 0)
                                goto oom;
                        if (set_param(out, "wal_keep_segments", cJSON_CreateNumber((double)ll)) < 0)
                                goto oom;
                } else if (!v && size && check_wal_keep_size(size)) {
                        _cleanup_free_ char *t = param_text(size);
                        uint64_t bytes = 0;
                        long long mb;

                        if (!t)
                                goto oom;
                        if (safe_atolli(t, &mb) >= 0)
                                bytes = (uint64_t)mb * 1024 * 1024;
                        else
                                (void)parse_size(t, &bytes);
                        if (set_param(
                                    out,
                                    "wal_keep_segments",
                                    cJSON_CreateNumber((double)(bytes / (16ULL << 20)))) < 0)
                                goto oom;
                } else if (set_param(out, "wal_keep_segments", cJSON_CreateNumber(8)) < 0)
                        goto oom;
        }

        v = cJSON_GetObjectItemCaseSensitive(dyn, "track_commit_timestamp");
        if (v && check_bool(v)) {
                _cleanup_free_ char *t = param_text(v);
                if (!t ||
                    set_param(
                            out,
                            "track_commit_timestamp",
                            cJSON_CreateString(parse_boolean(t) ? "on" : "off")) < 0)
                        goto oom;
        } else if (set_param(out, "track_commit_timestamp", cJSON_CreateString("off")) < 0)
                goto oom;
        if (set_param(out, "wal_log_hints", cJSON_CreateString("on")) < 0)
                goto oom;

        /* Then the other dynamic parameters, overridden key by key by local ones. */
        for (int pass = 0; pass < 2; pass++) {
                const cJSON *src = pass == 0 ? dyn : c->postgresql.parameters;

                cJSON_ArrayForEach (v, src) {
                        if (!v->string || is_cmdline_param(v->string))
                                continue;
                        if (set_param(out, v->string, cJSON_Duplicate(v, true)) < 0)
                                goto oom;
                }
        }
        return out;
oom:
        cJSON_Delete(out);
        return NULL;
}
