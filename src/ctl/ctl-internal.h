/* SPDX-License-Identifier: MIT */
/*
 * Private to src/ctl/: the state of one pghactl run (configuration, the etcd client on a private event
 * loop, REST client settings) and the blocking helpers the commands use.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "ctl.h"
#include "pgha/dcs.h"
#include "pgha/etcd.h"
#include "pgha/macro.h"

/* How long one etcd operation may take over all endpoints, and a REST call by default. */
#define CTL_ETCD_TIMEOUT (10 * USEC_PER_SEC)
#define CTL_REST_TIMEOUT (10 * USEC_PER_SEC)

typedef struct Ctl {
        cJSON *config; /* local configuration (file + PATRONI_* environment) as JSON, never NULL */
        char *config_path;
        char *dcs_url; /* -d/--dcs-url */
        bool insecure; /* -k or ctl.insecure */

        /* etcd, opened for one cluster at a time */
        sd_event *event;
        EtcdClient *etcd;
        Dcs *dcs;
        char *scope; /* the cluster the Dcs is open for */
        char *endpoints_text;

        /* REST client settings (ctl.* falling back to restapi.*) */
        char *auth; /* "user:password" or NULL */
        char *cacert, *cert, *key, *key_password;
} Ctl;

/* ctl_fail - prints "Error: <message>" on stderr; returns -EINVAL for `return ctl_fail(...)`. */
int ctl_fail(const char *format, ...) _printf_(1, 2);

int ctl_load_config(Ctl *c) _warn_unused_result_;
void ctl_done(Ctl *c);
/* ctl_scope - the positional cluster name or the configuration's scope; NULL if neither. */
const char *ctl_scope(const Ctl *c, const char *arg);
const cJSON *ctl_config_get(const Ctl *c, const char *section, const char *key);

/* ctl_get_cluster - reads /<namespace>/<cluster>/ with one range. Reports etcd errors and a cluster
 * with no keys at all on stderr and returns < 0. */
int ctl_get_cluster(Ctl *c, const char *cluster, DcsCluster **ret) _warn_unused_result_;
/* ctl_set_config - CAS put of the config key (guarded by mod_revision; 0: must not exist). Returns 1
 * when written, 0 when the compare failed, < 0 (reported) on errors. */
int ctl_set_config(Ctl *c, const cJSON *config, int64_t mod_revision) _warn_unused_result_;
/* ctl_write_failover - the fallback when no member's REST API answers: writes the failover key. */
int ctl_write_failover(Ctl *c, const cJSON *failover, int64_t mod_revision) _warn_unused_result_;

/* ctl_delete_cluster - deletes every key under the prefix of the cluster last read (`remove`). */
int ctl_delete_cluster(Ctl *c) _warn_unused_result_;

/* ctl_rest - one blocking HTTP request to a member's REST API: the api_url with its path replaced by
 * /endpoint (NULL: the api_url as is). body is sent as JSON when not NULL. On a transport failure
 * returns < 0 and a message in *ret_error. */
int ctl_rest(
        Ctl *c,
        const DcsMember *m,
        const char *method,
        const char *endpoint,
        const cJSON *body,
        usec_t timeout,
        long *ret_status,
        char **ret_body,
        char **ret_error) _warn_unused_result_;

/* Prompts like click: "TEXT [DEFAULT]: "; the default on an empty answer; -EPIPE at end of input. */
int ctl_prompt(const char *text, const char *def, char **ret) _warn_unused_result_;
/* "TEXT [y/N]: " → true for y/yes. -EPIPE at end of input. */
int ctl_confirm(const char *text) _warn_unused_result_;
/* patronictl's timestamp(precision): local "%Y-%m-%d %H:%M:%S.%f" cut to precision digits (0: none). */
char *ctl_timestamp(unsigned precision);

/* Watching (-W/-w) and waiting: SIGINT/SIGTERM end the wait instead of the program once
 * ctl_catch_interrupt() was called; ctl_sleep() returns early then. */
void ctl_catch_interrupt(void);
bool ctl_interrupted(void);
void ctl_sleep(usec_t t);

typedef struct CtlArgs CtlArgs;
/* ctl_run_query - the `query` command (ctl_query.c). */
int ctl_run_query(Ctl *c, const CtlArgs *a);
