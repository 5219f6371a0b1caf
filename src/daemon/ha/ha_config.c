/* SPDX-License-Identifier: MIT */
/*
 * The configuration as the HA engine applies it: the dynamic configuration (the etcd `config` key, its
 * cached copy in the data directory, or bootstrap.dcs), the PostgreSQL settings rebuilt from it and the
 * local file, the watchdog options, and a reload of pghad's configuration (SIGHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ha-internal.h"

void ha_pg_settings_rebuild(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        _cleanup_(cJSON_Deletep) cJSON *j = config_to_json(c, false);
        _cleanup_(pg_settings_done) PgSettings s = {};
        _cleanup_free_ char *err = NULL;
        cJSON *pg, *params;

        if (!j)
                return;
        pg = cJSON_GetObjectItemCaseSensitive(j, "postgresql");
        params = config_effective_parameters(c, &h->dyn, 15);
        if (!pg || !params) {
                cJSON_Delete(params);
                return;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(pg, "parameters");
        cJSON_AddItemToObject(pg, "parameters", params);
        cJSON_DeleteItemFromObjectCaseSensitive(pg, "use_slots");
        cJSON_AddBoolToObject(pg, "use_slots", h->dyn.use_slots);
        /* Boolean switches set in the dynamic configuration (Patroni merges every non-local
         * postgresql.* key from it); true in either place turns them on. */
        if (h->dyn.use_pg_rewind) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "use_pg_rewind");
                cJSON_AddBoolToObject(pg, "use_pg_rewind", true);
        }
        if (h->dyn.remove_data_directory_on_rewind_failure) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "remove_data_directory_on_rewind_failure");
                cJSON_AddBoolToObject(pg, "remove_data_directory_on_rewind_failure", true);
        }
        if (h->dyn.remove_data_directory_on_diverged_timelines) {
                cJSON_DeleteItemFromObjectCaseSensitive(pg, "remove_data_directory_on_diverged_timelines");
                cJSON_AddBoolToObject(pg, "remove_data_directory_on_diverged_timelines", true);
        }
        if (pg_settings_from_json(j, &s, &err) < 0) {
                log_error("Cannot build the PostgreSQL settings: %s", strna(err));
                return;
        }
        if (h->job) {
                /* a running job borrows the settings: apply at the next tick without a job */
                return;
        }
        pg_settings_done(&h->pgs);
        h->pgs = s;
        s = (PgSettings){};
        ha_sync_render_ssn(h);
}

void ha_watchdog_apply(Ha *h) {
        const Config *c = manager_get_config(h->manager);
        WatchdogOptions o = {
                .mode = c->watchdog.mode,
                .driver = c->watchdog.driver,
                .device = c->watchdog.device,
                .safety_margin = c->watchdog.safety_margin,
                .ttl = (unsigned)h->dyn.ttl,
                .loop_wait = (unsigned)h->dyn.loop_wait,
        };

        if (!h->watchdog) {
                if (watchdog_new(&o, &h->watchdog) < 0)
                        log_warning("Failed to set up the watchdog");
        } else
                (void)watchdog_reconfigure(h->watchdog, &o);
}

static bool data_dir_populated(Ha *h) {
        _cleanup_free_ char *ver = pgdata_path(&h->pgs, "PG_VERSION");
        return ver && access(ver, F_OK) >= 0;
}

/* Applies a dynamic configuration (etcd `config` key, cached file or bootstrap.dcs). */
int ha_apply_dynamic(Ha *h, const cJSON *json, bool from_dcs) {
        _cleanup_(dynamic_config_done) DynamicConfig d = {};
        _cleanup_(config_diagnostics_done) ConfigDiagnostics diags = {};
        _cleanup_free_ char *text = NULL;
        bool ttl_changed, retry_changed;
        int r;

        if (!cJSON_IsObject(json) || json_print_compact(json, &text) < 0)
                return -EINVAL;
        if (h->dyn_text && streq(h->dyn_text, text))
                return 0;
        if (from_dcs && h->dyn_rejected_text && streq(h->dyn_rejected_text, text))
                return 0;
        r = dynamic_config_from_json(json, &d, "config", from_dcs ? &diags : NULL);
        if (r < 0 && r != -EINVAL)
                return r;
        if (diags.n > 0) {
                /* Patroni refuses a DCS config whose values do not convert and keeps the one it has; a
                 * value quietly replaced by its default (ttl 30, loop_wait 10) could change the lease
                 * under a running leader. Said once per rejected text. */
                for (size_t i = 0; i < diags.n; i++)
                        log_error(
                                "Dynamic configuration in the DCS not applied: %s: %s",
                                diags.items[i].key,
                                diags.items[i].message);
                log_error("Keeping the last good dynamic configuration until the config key is fixed");
                free(h->dyn_rejected_text);
                h->dyn_rejected_text = TAKE_PTR(text);
                return -EINVAL;
        }
        h->dyn_rejected_text = mfree(h->dyn_rejected_text);
        ttl_changed = d.ttl != h->dyn.ttl;
        retry_changed = d.retry_timeout != h->dyn.retry_timeout;
        dynamic_config_done(&h->dyn);
        h->dyn = d;
        d = (DynamicConfig){};
        free(h->dyn_text);
        h->dyn_text = TAKE_PTR(text);
        if (from_dcs && h->dyn_cache_path && h->pgs.data_dir && data_dir_populated(h))
                if (write_file_atomic(h->dyn_cache_path, h->dyn_text, strlen(h->dyn_text), 0600) < 0)
                        log_debug("Failed to cache the dynamic configuration");
        ha_pg_settings_rebuild(h);
        ha_watchdog_apply(h);
        /* A change made through edit-config or PATCH /config reaches PostgreSQL without a restart, as
         * in Patroni: the next tick without a job rewrites postgresql.conf and reloads. */
        if (from_dcs)
                h->pg_reload_pending = true;
        if (ttl_changed && h->dcs) {
                log_info("Dynamic configuration: ttl=%i loop_wait=%i", h->dyn.ttl, h->dyn.loop_wait);
                /* A new lease with the new TTL; the leader key is re-bound to it by the next renewal
                 * (on_lease() in ha_lock.c asks for one), its deadline stays the old lease's until then. */
                dcs_set_ttl(h->dcs, (unsigned)MAX(h->dyn.ttl, 1));
        }
        if (retry_changed && h->etcd) {
                /* Patroni's set_retry_timeout: the budget of each etcd operation from now on. */
                log_info("Dynamic configuration: retry_timeout=%i", h->dyn.retry_timeout);
                etcd_client_set_request_timeout(h->etcd, retry_timeout_usec(h));
        }
        return 1;
}

/* Rewrites postgresql.conf from the current settings and reloads a running PostgreSQL (as a replica
 * with its recovery settings), as the job of this node. Returns whether the reload was started; without
 * a free job slot or a running server nothing happens. */
bool ha_pg_reload_config(Ha *h) {
        _cleanup_(pg_params_done) PgParams rec = {};
        const PgStatus *st = pgstatus(h);

        ha_pg_settings_rebuild(h);
        if (!h->job && st && st->running) {
                bool replica = !st->query_ok || st->in_recovery;
                char target[HA_NAME_MAX] = "";
                if (replica && h->cluster && h->cluster->leader)
                        snprintf(target, sizeof target, "%s", h->cluster->leader);
                if (replica)
                        (void)ha_recovery_for(h, target, &rec);
                ha_job_begin(h, HA_JOB_RELOAD, STEP_NONE, target);
                free(h->reload_before);
                h->reload_before = ha_reload_files_text(h);
                if (pgctl_reload(h->event, &h->pgs, replica ? &rec : NULL, ha_on_job, h, &h->job) < 0) {
                        h->job_kind = HA_JOB_NONE;
                        h->reload_before = mfree(h->reload_before);
                }
                return h->job != NULL;
        }
        return false;
}

int ha_on_reload(Manager *m, const Config *old, const Config *new_config, void *userdata) {
        Ha *h = userdata;

        _cleanup_(rest_server_options_done) RestServerOptions ro = {};
        char *api_url;

        ha_watchdog_apply(h);
        if (rest_server_options_from_config(new_config, &ro) >= 0) {
                ro.leader_checks_need_postgres = true;
                (void)rest_server_reconfigure(h->rest, &ro);
        }
        api_url = ha_join_url(
                new_config->restapi.certfile ? "https" : "http",
                &new_config->restapi.connect_address,
                "/patroni");
        if (api_url) {
                free(h->api_url);
                h->api_url = api_url;
        }
        (void)snapshot_set_tags_from_config(&h->snap, new_config->tags);
        (void)ha_pg_reload_config(h);
        ha_tick_schedule(h, 0);
        return 0;
}
