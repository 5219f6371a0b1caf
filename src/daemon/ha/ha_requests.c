/* SPDX-License-Identifier: MIT */
/*
 * Requests from the REST API (intents): switchover and failover (immediate and scheduled), restart
 * (immediate and scheduled, with Patroni's filters), reinitialize, PATCH and PUT of /config, and their
 * cancellation. Each REST call the engine holds is answered exactly once.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ha-internal.h"

/* Answers a REST call the engine holds (switchover, restart), if there is one, and forgets it: each is
 * answered exactly once. */
void ha_call_reply(RestCall **call, unsigned status, const char *text) {
        if (!*call)
                return;
        (void)rest_call_reply_text(*call, status, text);
        *call = NULL;
}

void ha_restart_request_done(RestartRequest *r) {
        r->role = mfree(r->role);
        *r = (RestartRequest){};
}

static int restart_request_set(RestartRequest *r, const RestIntent *in) {
        ha_restart_request_done(r);
        if (in->role && !(r->role = strdup(in->role)))
                return -ENOMEM;
        r->version = in->postgres_version;
        r->pending = in->restart_pending;
        /* A timeout too long to count in microseconds never runs out: the reply waits for the restart, as
         * Patroni's (whose integers do not overflow) would in practice. */
        r->timeout = in->timeout <= 0 || (usec_t)in->timeout > USEC_INFINITY / USEC_PER_SEC - 1
                ? 0
                : (usec_t)in->timeout * USEC_PER_SEC;
        return 0;
}

/* Forgets the scheduled restart (done, cancelled, stale or refused); the member key and GET /patroni
 * stop showing it. */
void ha_scheduled_restart_clear(Ha *h) {
        if (!h->scheduled_restart && !h->restart_sched_json)
                return;
        h->scheduled_restart = false;
        h->scheduled_restart_at = 0;
        h->restart_sched_start = 0;
        ha_restart_request_done(&h->restart_sched);
        cJSON_Delete(h->restart_sched_json);
        h->restart_sched_json = NULL;
        ha_snapshot_update(h);
}

void ha_switch_check(Ha *h) {
        const char *what = h->switch_failover ? "failed over" : "switched over";
        const DcsCluster *c = h->cluster;
        char buf[512];

        if (!h->switch_call || h->switch_deadline == 0)
                return;
        if (h->switch_scheduled) {
                if (h->switch_revision <= 0 ||
                    !((c && c->revision >= h->switch_revision) || now_mono(h) >= h->switch_deadline))
                        return;
                ha_snapshot_update(h);
                ha_call_reply(
                        &h->switch_call,
                        202,
                        h->switch_failover ? "Failover scheduled" : "Switchover scheduled");
                h->switch_from = mfree(h->switch_from);
                h->switch_to = mfree(h->switch_to);
                return;
        }
        if (c && c->revision >= h->switch_revision && h->switch_revision > 0 && c->leader &&
            !streq_ptr(c->leader, h->switch_from)) {
                if (!h->switch_to || streq(c->leader, h->switch_to))
                        snprintf(buf, sizeof buf, "Successfully %s to \"%s\"", what, c->leader);
                else
                        snprintf(
                                buf,
                                sizeof buf,
                                "%s over to \"%s\" instead of \"%s\"",
                                h->switch_failover ? "Failed" : "Switched",
                                c->leader,
                                h->switch_to);
                (void)rest_call_reply_text(h->switch_call, 200, buf);
        } else if (
                c && c->revision >= h->switch_revision && h->switch_revision > 0 && !c->has_failover &&
                c->leader && streq_ptr(c->leader, h->switch_from))
                /* the leader cleaned the key up without handing over */
                (void)rest_call_reply_text(
                        h->switch_call, 503, h->switch_failover ? "Failover failed" : "Switchover failed");
        else if (now_mono(h) >= h->switch_deadline)
                (void)rest_call_reply_text(
                        h->switch_call,
                        503,
                        h->switch_failover ? "Failover status unknown" : "Switchover status unknown");
        else
                return;
        h->switch_call = NULL;
        h->switch_from = mfree(h->switch_from);
        h->switch_to = mfree(h->switch_to);
}

/* Why the restart filters rq refuse a restart of this node now (ha_fsm_restart_mismatch()); NULL: go. */
const char *ha_restart_mismatch(Ha *h, const RestartRequest *rq) {
        const PgStatus *st = pgstatus(h);

        return ha_fsm_restart_mismatch(
                rq->role,
                rq->version,
                rq->pending,
                ha_member_role_string(h),
                st && st->query_ok ? (unsigned)MAX(st->server_version, 0) : 0,
                st && st->query_ok && st->pending_restart);
}

static void on_intent_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;

        if (!h->switch_call)
                return;
        if (error < 0) {
                ha_call_reply(
                        &h->switch_call,
                        503,
                        h->switch_failover ? "failed to write failover key into DCS"
                                           : "failed to write switchover key into DCS");
                return;
        }
        /* A scheduled one is answered once a tick has read the key back, so a DELETE /switchover
         * right after the answer finds it in our view of the cluster. */
        h->switch_revision = res ? res->revision : 0;
        ha_tick_schedule(h, 0);
}

/* A PATCH or PUT of /config on its way to etcd. Kept on h->config_writes so that a client that goes
 * away (intent_cancel) leaves no dangling call behind. */
typedef struct ConfigWrite {
        Ha *h;
        RestCall *call; /* NULL once the client is gone */
        cJSON *config;  /* what is written: PUT's body, or PATCH's merge onto a fresh read */
        cJSON *patch;   /* PATCH: the request body */
        bool put;
        struct ConfigWrite *next;
} ConfigWrite;

ConfigWrite *ha_config_write_free(ConfigWrite *w) {
        if (!w)
                return NULL;
        for (ConfigWrite **p = &w->h->config_writes; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        cJSON_Delete(w->config);
        cJSON_Delete(w->patch);
        return mfree(w);
}

static void on_config_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        ConfigWrite *w = ud;
        Ha *h = w->h;

        if (error < 0)
                (void)rest_call_reply_error(w->call, w->put ? 502 : 503);
        else if (res && !res->succeeded)
                (void)rest_call_reply_error(w->call, 409);
        else {
                (void)rest_call_reply_json(w->call, 200, w->config);
                (void)ha_apply_dynamic(h, w->config, true);
        }
        ha_config_write_free(w);
        ha_tick_schedule(h, 0);
}

/* PATCH /config as Patroni's do_PATCH_config(): the patch is merged onto the config key read afresh (not
 * onto the last tick's view, which a PATCH just before may have made stale) and written with a compare
 * on the revision read, so a concurrent change answers 409 and is never overwritten. */
static void on_config_read(Dcs *d, int error, const char *message, DcsCluster *cluster, void *ud) {
        ConfigWrite *w = ud;
        Ha *h = w->h;
        int64_t revision = cluster ? cluster->config_revision : 0;
        int r;

        if (error < 0 || !cluster || !cJSON_IsObject(cluster->config) || revision <= 0) {
                (void)rest_call_reply_error(w->call, 503);
                dcs_cluster_free(cluster);
                ha_config_write_free(w);
                return;
        }
        w->config = cJSON_Duplicate(cluster->config, true);
        dcs_cluster_free(cluster);
        r = w->config ? rest_config_patch(w->config, w->patch) : -ENOMEM;
        if (r < 0)
                (void)rest_call_reply_error(w->call, 500);
        else if (r == 0)
                (void)rest_call_reply_json(w->call, 200, w->config);
        else if (dcs_set_config(h->dcs, w->config, revision, on_config_write, w) >= 0)
                return;
        else
                (void)rest_call_reply_error(w->call, 503);
        ha_config_write_free(w);
}

static void switchover_intent(Ha *h, RestCall *call, const RestIntent *in) {
        bool failover = in->kind == REST_INTENT_FAILOVER;
        const char *action = failover ? "failover" : "switchover";
        const DcsCluster *c = h->cluster;
        _cleanup_(cJSON_Deletep) cJSON *fo = NULL;
        char buf[256];
        bool others = false;

        if (h->switch_call) {
                (void)rest_call_reply_text(call, 503, "Switchover already in progress");
                return;
        }
        if (!c) {
                (void)rest_call_reply_text(call, 503, "Cluster is not reachable");
                return;
        }
        if (in->scheduled_at == 0) {
                if (in->leader && !streq_ptr(in->leader, c->leader)) {
                        (void)rest_call_reply_text(call, 412, "leader name does not match");
                        return;
                }
                /* Synchronous mode: only a member `sync` names can take over (Patroni's checks). */
                if (ha_sync_mode_on(h) && in->candidate && !failover &&
                    !dcs_cluster_is_sync_standby(c, in->candidate)) {
                        (void)rest_call_reply_text(
                                call, 412, "candidate name does not match with sync_standby");
                        return;
                }
                if (ha_sync_mode_on(h) && !in->candidate) {
                        bool found = false;
                        for (size_t i = 0; i < c->n_members; i++)
                                if (dcs_cluster_is_sync_standby(c, c->members[i].name))
                                        found = true;
                        if (!found) {
                                snprintf(
                                        buf,
                                        sizeof buf,
                                        "%s is not possible: can not find sync_standby",
                                        action);
                                (void)rest_call_reply_text(call, 412, buf);
                                return;
                        }
                }
                if (in->candidate && !dcs_cluster_find_member(c, in->candidate)) {
                        (void)rest_call_reply_text(call, 412, "candidate does not exists");
                        return;
                }
                for (size_t i = 0; i < c->n_members; i++)
                        if (!streq_ptr(c->members[i].name, c->leader))
                                others = true;
                if (!others) {
                        snprintf(
                                buf,
                                sizeof buf,
                                "%s is not possible: cluster does not have members except leader",
                                failover ? "failover" : "switchover");
                        (void)rest_call_reply_text(call, 412, buf);
                        return;
                }
                if (in->candidate) {
                        /* Health is the leader's call (it checks the candidate's GET /patroni). */
                        if (streq_ptr(in->candidate, c->leader)) {
                                snprintf(
                                        buf,
                                        sizeof buf,
                                        "%s is not possible: no good candidates have been found",
                                        failover ? "failover" : "switchover");
                                (void)rest_call_reply_text(call, 412, buf);
                                return;
                        }
                }
        }
        fo = cJSON_CreateObject();
        if (in->leader)
                (void)json_add_string(fo, "leader", in->leader);
        if (in->candidate)
                (void)json_add_string(fo, "member", in->candidate);
        if (in->scheduled_at) {
                char ts[64];
                time_t t = (time_t)(in->scheduled_at / USEC_PER_SEC);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
                snprintf(buf, sizeof buf, "%s.%06u+00:00", ts, (unsigned)(in->scheduled_at % USEC_PER_SEC));
                (void)json_add_string(fo, "scheduled_at", buf);
        }
        if (dcs_write_failover(h->dcs, fo, 0, on_intent_write, h) < 0) {
                snprintf(buf, sizeof buf, "failed to write %s key into DCS", action);
                (void)rest_call_reply_text(call, 503, buf);
                return;
        }
        h->switch_call = call;
        h->switch_revision = 0;
        h->switch_failover = failover;
        free(h->switch_from);
        h->switch_from = c->leader ? strdup(c->leader) : NULL;
        free(h->switch_to);
        h->switch_to = in->candidate ? strdup(in->candidate) : NULL;
        h->switch_scheduled = in->scheduled_at != 0;
        h->switch_deadline = now_mono(h) + 2 * (usec_t)MAX(10, h->dyn.loop_wait) * USEC_PER_SEC;
}

/* The UTC offset (seconds) written in an ISO 8601 timestamp that rest_parse_timestamp() accepted:
 * Z, UTC, GMT or ±HH[[:]MM] after the date. */
static int schedule_offset(const char *s) {
        const char *p = strlen(s) > 10 ? s + 10 : "", *sign = NULL;
        int hh = 0, mm = 0;

        for (const char *q = p; *q; q++)
                if (*q == '+' || *q == '-')
                        sign = q;
        if (!sign || sscanf(sign + 1, "%2d", &hh) != 1)
                return 0;
        if (sign[3] == ':')
                (void)sscanf(sign + 4, "%2d", &mm);
        else if (isdigit((unsigned char)sign[3]))
                (void)sscanf(sign + 3, "%2d", &mm);
        return (*sign == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
}

/* schedule_isoformat - what Python's datetime.isoformat() prints for the parsed schedule: local time in
 * the offset the user gave, microseconds only when not zero, and the offset as ±HH:MM. */
static int schedule_isoformat(const char *input, usec_t t, char **ret) {
        int off = input ? schedule_offset(input) : 0;
        time_t local = (time_t)(t / USEC_PER_SEC) + off;
        unsigned usec = (unsigned)(t % USEC_PER_SEC);
        char date[32], frac[16] = "";
        struct tm tm;

        if (!gmtime_r(&local, &tm) || strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -EINVAL;
        if (usec)
                snprintf(frac, sizeof frac, ".%06u", usec);
        if (asprintf(
                    ret,
                    "%s%s%c%02d:%02d",
                    date,
                    frac,
                    off < 0 ? '-' : '+',
                    abs(off) / 3600,
                    abs(off) % 3600 / 60) < 0)
                return -ENOMEM;
        return 0;
}

/* Records a POST /restart with a schedule (Patroni's schedule_future_restart()): its filters, the
 * request as the member key and GET /patroni show it, and the postmaster start time it is checked
 * against; the member key is updated at once. */
static int schedule_restart(Ha *h, const RestIntent *in) {
        const PgStatus *st = pgstatus(h);
        const cJSON *sched = cJSON_GetObjectItemCaseSensitive(in->body, "schedule");
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        _cleanup_free_ char *iso = NULL;
        usec_t real = now_real();
        cJSON *v;

        if (schedule_isoformat(cJSON_IsString(sched) ? sched->valuestring : NULL, in->scheduled_at, &iso) <
            0)
                return -ENOMEM;
        j = cJSON_IsObject(in->body) ? cJSON_Duplicate(in->body, true) : cJSON_CreateObject();
        if (!j || !(v = cJSON_CreateString(iso)))
                return -ENOMEM;
        if (!cJSON_ReplaceItemInObjectCaseSensitive(j, "schedule", v) &&
            !cJSON_AddItemToObject(j, "schedule", v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        if (in->timeout > 0) {
                if (!(v = cJSON_CreateNumber((double)in->timeout)))
                        return -ENOMEM;
                if (!cJSON_ReplaceItemInObjectCaseSensitive(j, "timeout", v)) {
                        cJSON_Delete(v);
                        return -ENOMEM;
                }
        }
        if (st && st->query_ok && st->postmaster_start_time) {
                if (json_add_string(j, "postmaster_start_time", st->postmaster_start_time) < 0)
                        return -ENOMEM;
        } else if (!cJSON_AddNullToObject(j, "postmaster_start_time"))
                return -ENOMEM;
        if (restart_request_set(&h->restart_sched, in) < 0)
                return -ENOMEM;

        cJSON_Delete(h->restart_sched_json);
        h->restart_sched_json = TAKE_PTR(j);
        h->scheduled_restart = true;
        h->scheduled_restart_at = now_mono(h) + (in->scheduled_at > real ? in->scheduled_at - real : 0);
        h->restart_sched_start = st && st->query_ok ? (uint64_t)st->postmaster_start_epoch : 0;
        log_info("Scheduled restart at %s", iso);
        ha_snapshot_update(h);
        ha_touch_member(h);
        ha_tick_schedule(h, 0);
        return 0;
}

static void on_cancel_write(Dcs *d, int error, const char *message, const DcsWriteResult *res, void *ud) {
        Ha *h = ud;
        RestCall *call = TAKE_PTR(h->cancel_call);

        if (error < 0)
                log_warning("Failed to delete the scheduled switchover: %s", strna(message));
        ha_tick_schedule(h, 0);
        if (!call)
                return;
        if (error < 0 || (res && !res->succeeded))
                (void)rest_call_reply_error(call, 409);
        else
                (void)rest_call_reply_text(call, 200, "scheduled switchover deleted");
}

static void intent_submit(void *userdata, RestCall *call, const RestIntent *in) {
        Ha *h = userdata;
        const char *why;
        char buf[256];

        switch (in->kind) {
        case REST_INTENT_SWITCHOVER:
        case REST_INTENT_FAILOVER:
                switchover_intent(h, call, in);
                break;
        case REST_INTENT_SWITCHOVER_CANCEL:
                if (!h->cluster || !h->cluster->has_failover || isempty(h->cluster->failover_scheduled_at)) {
                        (void)rest_call_reply_text(call, 404, "no switchover is scheduled");
                        break;
                }
                if (h->cancel_call) {
                        (void)rest_call_reply_error(call, 503);
                        break;
                }
                /* answered when etcd confirms, so the key is gone when the client hears back */
                if (dcs_write_failover(h->dcs, NULL, h->cluster->failover_revision, on_cancel_write, h) < 0)
                        (void)rest_call_reply_error(call, 409);
                else
                        h->cancel_call = call;
                break;
        case REST_INTENT_RESTART:
                if (in->scheduled_at) {
                        if (h->scheduled_restart) {
                                (void)rest_call_reply_text(
                                        call, 409, "Another restart is already scheduled");
                                break;
                        }
                        if (schedule_restart(h, in) < 0) {
                                (void)rest_call_reply_error(call, 500);
                                break;
                        }
                        (void)rest_call_reply_text(call, 202, "Restart scheduled");
                        break;
                }
                /* the filters first, as Patroni's restart() checks them before anything else */
                why = ha_restart_mismatch(
                        h,
                        &(RestartRequest){
                                .role = (char *)in->role,
                                .version = in->postgres_version,
                                .pending = in->restart_pending,
                        });
                if (why) {
                        log_info("not proceeding with the restart: %s", why);
                        (void)rest_call_reply_text(call, 503, "restart conditions are not satisfied");
                        break;
                }
                if (h->job_kind != HA_JOB_NONE) {
                        snprintf(buf, sizeof buf, "%s already in progress", ha_job_to_string(h->job_kind));
                        (void)rest_call_reply_text(call, 503, buf);
                        break;
                }
                if (h->restart_call) {
                        (void)rest_call_reply_text(call, 503, "restart already in progress");
                        break;
                }
                if (restart_request_set(&h->restart_now, in) < 0) {
                        (void)rest_call_reply_error(call, 500);
                        break;
                }
                /* answered when the restart job ends, or refused when the tick decides against it or no
                 * tick has begun it within two loops and a retry */
                h->restart_requested = true;
                h->restart_call = call;
                ha_restart_reply_arm(h, 2 * loop_wait_usec(h) + retry_timeout_usec(h));
                ha_tick_schedule(h, 0);
                break;
        case REST_INTENT_RESTART_CANCEL:
                if (!h->scheduled_restart)
                        (void)rest_call_reply_text(call, 404, "no restarts are scheduled");
                else {
                        ha_scheduled_restart_clear(h);
                        ha_touch_member(h);
                        (void)rest_call_reply_text(call, 200, "scheduled restart deleted");
                }
                break;
        case REST_INTENT_RELOAD:
                (void)rest_call_reply_text(call, 202, "reload scheduled");
                (void)manager_reload(h->manager);
                break;
        case REST_INTENT_REINITIALIZE:
                if (h->job_kind != HA_JOB_NONE && !in->force) {
                        snprintf(buf, sizeof buf, "%s already in progress", ha_job_to_string(h->job_kind));
                        (void)rest_call_reply_text(call, 503, buf);
                        break;
                }
                if (in->force)
                        h->job = pgctl_job_free(h->job), h->job_kind = HA_JOB_NONE, h->job_step = STEP_NONE;
                h->reinit_requested = true;
                (void)rest_call_reply_text(call, 200, "reinitialize started");
                ha_tick_schedule(h, 0);
                break;
        case REST_INTENT_CONFIG_PATCH:
        case REST_INTENT_CONFIG_PUT: {
                bool put = in->kind == REST_INTENT_CONFIG_PUT;
                ConfigWrite *w;
                int r;

                if (!in->body) {
                        (void)rest_call_reply_error(call, 400);
                        break;
                }
                w = new0(ConfigWrite, 1);
                if (!w ||
                    !(put ? (w->config = cJSON_Duplicate(in->body, true))
                          : (w->patch = cJSON_Duplicate(in->body, true)))) {
                        free(w);
                        (void)rest_call_reply_error(call, 503);
                        break;
                }
                w->h = h;
                w->call = call;
                w->put = put;
                w->next = h->config_writes;
                h->config_writes = w;
                r = put ? dcs_set_config(h->dcs, w->config, 0, on_config_write, w)
                        : dcs_get_cluster(h->dcs, on_config_read, w);
                if (r < 0) {
                        (void)rest_call_reply_error(call, 503);
                        ha_config_write_free(w);
                }
                break;
        }
        case REST_INTENT_FAILSAFE:
                (void)rest_call_reply_text(call, 200, "Accepted");
                break;
        default:
                (void)rest_call_reply_error(call, 501);
        }
}

static void intent_cancel(void *userdata, RestCall *call) {
        Ha *h = userdata;

        if (h->switch_call == call)
                h->switch_call = NULL;
        if (h->restart_call == call)
                h->restart_call = NULL;
        if (h->cancel_call == call)
                h->cancel_call = NULL;
        for (ConfigWrite *w = h->config_writes; w; w = w->next)
                if (w->call == call)
                        w->call = NULL;
}

const RestIntentHandler ha_intent_handler = {
        .submit = intent_submit,
        .cancel = intent_cancel,
};

static int on_restart_reply_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Ha *h = userdata;

        if (h->restart_call && h->job_step == STEP_RESTART) {
                /* Patroni's answer when the restart outlasts the request's timeout; the job goes on. */
                log_info("restart still running after the request's timeout: answering the request now");
                ha_call_reply(&h->restart_call, 503, "postgres is still starting");
        } else if (h->restart_call) {
                /* The loop kept deciding something else (postgres failing to start, etcd unreachable):
                 * refuse rather than leave the request waiting for a restart that may never begin. */
                log_info("restart request not acted on in time: %s", h->decision.comment ?: "busy");
                ha_call_reply(&h->restart_call, 503, "restart failed");
                h->restart_requested = false;
                ha_restart_request_done(&h->restart_now);
        }
        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        return 0;
}

void ha_restart_reply_arm(Ha *h, usec_t after) {
        int r;

        h->restart_reply_timer = sd_event_source_disable_unref(h->restart_reply_timer);
        r = sd_event_add_time_relative(
                h->event, &h->restart_reply_timer, CLOCK_MONOTONIC, after, 0, on_restart_reply_timer, h);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the restart request's timeout, ignoring: %m");
                return;
        }
        (void)sd_event_source_set_priority(h->restart_reply_timer, PGHA_PRIORITY_HA);
        (void)sd_event_source_set_description(h->restart_reply_timer, "ha-restart-reply");
}
