/* SPDX-License-Identifier: MIT */
/*
 * The local configuration (Patroni's YAML format) as one typed Config, and the dynamic configuration
 * (etcd's `config` key, seeded from bootstrap.dcs) as one typed DynamicConfig. One key table drives
 * parsing, defaults, validation, JSON output (secrets masked) and the reload diff. Problems are
 * collected, never just the first, as "FILE:LINE:COLUMN: key.path: problem" diagnostics.
 * See docs/config.md.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "pgha/macro.h"
#include "pgha/watchdog.h"

typedef enum ConfigSeverity {
        CONFIG_WARNING,
        CONFIG_ERROR,
} ConfigSeverity;

typedef struct ConfigDiagnostic {
        ConfigSeverity severity;
        char *file;            /* file path as given, or the environment variable's name */
        unsigned line, column; /* 1-based; 0:0 for environment variables and whole-source problems */
        char *key;             /* dotted key path, e.g. "bootstrap.dcs.ttl" */
        char *message;
} ConfigDiagnostic;

typedef struct ConfigDiagnostics {
        ConfigDiagnostic *items;
        size_t n;
} ConfigDiagnostics;

/* config_diagnostics_done - frees every item and empties d (d itself is not freed). */
void config_diagnostics_done(ConfigDiagnostics *d);
/* config_diagnostics_has_errors - true if any item has severity CONFIG_ERROR. */
bool config_diagnostics_has_errors(const ConfigDiagnostics *d);
/* config_diagnostics_print - one line per item, in the order found:
 *   errors:   "FILE:LINE:COLUMN: key.path: problem"
 *   warnings: "FILE:LINE:COLUMN: key.path: warning: problem" */
void config_diagnostics_print(const ConfigDiagnostics *d, FILE *f);
/* config_diagnostics_add - appends one item (used by the loader; exported for callers' own checks). */
int config_diagnostics_add(
        ConfigDiagnostics *d,
        ConfigSeverity severity,
        const char *file,
        unsigned line,
        unsigned column,
        const char *key,
        const char *format,
        ...) _printf_(7, 8);

/* "host:port"; host is NULL when the key was not set. For postgresql.listen host may hold a comma
 * separated list ("127.0.0.1,::1"); first_host is then its first element. */
typedef struct ConfigAddress {
        char *host;
        char *first_host;
        uint16_t port;
} ConfigAddress;

/* One postgresql.authentication.<user> entry: libpq connection keys Patroni keeps. */
typedef struct ConfigPgUser {
        char *username, *password;
        char *sslmode, *sslcert, *sslkey, *sslpassword, *sslrootcert, *sslcrl, *sslcrldir;
        char *gssencmode, *channel_binding, *target_session_attrs;
} ConfigPgUser;

typedef struct Config {
        char *name;
        char *scope;
        char *namespace; /* default "/service/" */

        struct {
                int level;           /* syslog level, from log.level (default INFO) */
                int traceback_level; /* syslog level (default ERROR) */
                char *format, *dateformat, *dir;
                int64_t max_queue_size, file_num, file_size;
                cJSON *loggers; /* object: logger name → level, or NULL */
        } log;

        struct {
                ConfigAddress listen;
                ConfigAddress connect_address; /* falls back to listen when not set */
                char *username, *password;     /* restapi.authentication */
                char *certfile, *keyfile, *keyfile_password, *cafile, *ciphers, *verify_client;
                char **allowlist; /* NULL-terminated, NULL if unset */
                bool allowlist_include_members;
                cJSON *http_extra_headers, *https_extra_headers; /* objects or NULL */
                /* pgha's own keys (Patroni 3.0.2 validates only listen and connect_address here, so a
                 * file carrying them still passes patroni --validate-config): */
                int connection_limit;        /* default 256 */
                int per_ip_connection_limit; /* default 64 */
                usec_t idle_timeout;         /* default 5 s */
                usec_t request_timeout;      /* default 10 s */
        } restapi;

        struct {
                bool insecure;
                char *cacert, *certfile, *keyfile, *keyfile_password;
        } ctl;

        /* The etcd3 section (or the v2 "etcd" section, read the same way: pgha speaks only v3). */
        struct {
                char *section; /* "etcd3" or "etcd" as written in the file */
                char *host;    /* one "host:port" (port from .port when written without one) */
                int port;      /* default 2379 */
                char **hosts;  /* NULL-terminated list of "host:port", from a list or a comma string */
                char *url, *proxy, *srv, *srv_suffix;
                char *protocol; /* "http" (default) or "https" */
                bool use_proxies;
                char *username, *password;
                char *cacert, *cert, *key, *key_password;
        } etcd;

        struct {
                bool present;  /* the file has a `bootstrap` section (even an empty one): only such a
                                * node races for `initialize` and bootstraps a new cluster */
                cJSON *dcs;    /* object (initial dynamic config), never NULL after load */
                char *method;  /* default "initdb" */
                cJSON *initdb; /* array of strings ("data-checksums") and single-key objects
                                * ({"encoding": "UTF8"}), normalised from either YAML form */
                char **pg_hba;
                cJSON *users;         /* object name → {"password": str, "options": [str...]} or NULL */
                char *post_bootstrap; /* post_bootstrap, or its alias post_init */
                cJSON *methods;       /* object: custom bootstrap method name → its section */
        } bootstrap;

        struct {
                ConfigAddress listen;
                ConfigAddress connect_address;
                ConfigAddress proxy_address;
                char *data_dir, *config_dir, *bin_dir, *pgpass, *database;
                ConfigPgUser superuser, replication, rewind;
                cJSON *parameters; /* object of scalars, in file order, never NULL after load */
                char **pg_hba, **pg_ident;
                struct {
                        char *on_start, *on_stop, *on_restart, *on_reload, *on_role_change;
                } callbacks;
                char **create_replica_methods; /* default ["basebackup"] */
                cJSON *basebackup;             /* array or object, or NULL */
                cJSON *replica_methods;        /* object: method name → its section */
                cJSON *recovery_conf;          /* object or NULL */
                char *custom_conf;
                usec_t pg_ctl_timeout; /* default 60 s */
                bool use_unix_socket, use_unix_socket_repl, use_pg_rewind;
                bool remove_data_directory_on_rewind_failure, remove_data_directory_on_diverged_timelines;
                char *pre_promote, *krbsrvname;
        } postgresql;

        struct {
                WatchdogMode mode; /* default automatic */
                char *device;      /* default /dev/watchdog */
                int safety_margin; /* default 5; -1 means timeout = ttl / 2 */
                WatchdogDriver driver;
        } watchdog;

        cJSON *tags; /* object of every tag (typed ones included), never NULL after load */
        struct {
                bool nofailover, clonefrom, noloadbalance, nosync;
                char *replicatefrom;
        } tag;

        struct {
                bool enabled; /* a citus section is present */
                int group;
                char *database;
        } citus;

        char **sources; /* files (or variable names) the configuration was read from, in order */
} Config;

/* config_load - loads the local configuration. path is a YAML file or a directory (its .yml/.yaml
 * files deep-merged in alphabetical order); NULL means the PATRONI_CONFIGURATION variable, else only
 * PATRONI_* variables. PATRONI_* overrides (§5.5 of patroni-compat.md) are merged on top except for
 * PATRONI_CONFIGURATION. Every problem is appended to diags (which may be NULL). Returns 0 on success
 * (warnings allowed), -EINVAL if any error was found (*ret untouched), other negative errno on I/O
 * failure (also reported in diags). Does not modify the environment: see config_env_scrub(). */
int config_load(const char *path, Config **ret, ConfigDiagnostics *diags);

/* config_load_string - as config_load() for an in-memory YAML document named `name` in diagnostics,
 * without environment overrides. */
int config_load_string(const char *name, const char *yaml, Config **ret, ConfigDiagnostics *diags);

/* config_env_scrub - unsets every PATRONI_* variable config_load() recognises, PATRONI_CONFIGURATION
 * included, as Patroni does so that PostgreSQL and callbacks do not inherit them. Their values are kept
 * in a private copy that later config_load() calls still apply (a reload keeps the start-up overrides,
 * as in Patroni). Returns the number of variables removed, or -ENOMEM. */
int config_env_scrub(void);
/* config_env_forget - drops the copy config_env_scrub() keeps: later loads see only the real environment
 * (tests; a daemon that wants reloads to ignore the start-up environment). */
void config_env_forget(void);

Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* config_to_json - the whole configuration as a JSON object shaped like the YAML, driven by the key
 * table; secrets (passwords) replaced by "********" when mask_secrets. NULL on OOM. */
cJSON *config_to_json(const Config *c, bool mask_secrets);

/* config_needs_restart - true if a key that cannot be applied by a reload (NO_RELOAD) differs between
 * old and new; then *ret_keys (optional) receives a ", "-separated list of their paths (caller frees);
 * it is left untouched when false is returned. */
bool config_needs_restart(const Config *old, const Config *new_config, char **ret_keys);

/* Dynamic configuration (§5.3) with Patroni's defaults. */
typedef enum SynchronousMode {
        SYNCHRONOUS_MODE_OFF,
        SYNCHRONOUS_MODE_ON,
        SYNCHRONOUS_MODE_QUORUM,
        _SYNCHRONOUS_MODE_MAX,
        _SYNCHRONOUS_MODE_INVALID = -EINVAL,
} SynchronousMode;

typedef struct DynamicConfig {
        int ttl;                         /* seconds, default 30 */
        int loop_wait;                   /* seconds, default 10 */
        int retry_timeout;               /* seconds, default 10 */
        int64_t maximum_lag_on_failover; /* bytes, default 1048576 */
        int64_t maximum_lag_on_syncnode; /* bytes, default -1 (disabled) */
        int max_timelines_history;       /* default 0 = keep all */
        int primary_start_timeout;       /* seconds, default 300 (alias master_start_timeout) */
        int primary_stop_timeout;        /* seconds, default 0 (alias master_stop_timeout) */
        SynchronousMode synchronous_mode;
        bool synchronous_mode_strict;
        int synchronous_node_count; /* default 1 */
        bool failsafe_mode;
        bool check_timeline;
        bool pause;
        cJSON *standby_cluster; /* object or NULL */
        bool use_pg_rewind;     /* postgresql.use_pg_rewind, default false */
        bool use_slots;         /* postgresql.use_slots, default true */
        cJSON *parameters;      /* postgresql.parameters object, never NULL after parsing */
        cJSON *postgresql;      /* the whole postgresql object (recovery_conf, pg_hba...) or NULL */
        cJSON *slots;           /* slots (or permanent_slots, permanent_replication_slots) or NULL */
        cJSON *ignore_slots;    /* array or NULL */
        /* postgresql.remove_data_directory_on_rewind_failure / _on_diverged_timelines, default false */
        bool remove_data_directory_on_rewind_failure;
        bool remove_data_directory_on_diverged_timelines;
} DynamicConfig;

/* dynamic_config_init - Patroni's defaults, no allocation beyond an empty parameters object. */
int dynamic_config_init(DynamicConfig *ret);
/* dynamic_config_done - frees the JSON members; the struct may be reused after dynamic_config_init. */
void dynamic_config_done(DynamicConfig *c);
/* dynamic_config_from_json - parses the etcd `config` value (or bootstrap.dcs) as tolerantly as
 * Patroni: ints from numbers or numeric strings, booleans from true/false or on/off/yes/no/1/0 words.
 * A value that does not parse keeps its default and is reported in diags (warnings, key paths relative
 * to the dynamic config; file = `source`, may be NULL). json NULL or not an object → defaults and
 * -EINVAL. Returns 0 or -ENOMEM/-EINVAL. */
int dynamic_config_from_json(
        const cJSON *json, DynamicConfig *ret, const char *source, ConfigDiagnostics *diags);

/* config_effective_parameters - §5.2: the postgresql.parameters the server must run with: dynamic
 * parameters, overridden by local ones, except the command-line-only parameters which come only from
 * the dynamic config after a sanity check (else their default); listen_addresses/port from
 * postgresql.listen, cluster_name from scope. major is the PostgreSQL major version (e.g. 15) deciding
 * wal_keep_size vs wal_keep_segments; 0 means "assume ≥ 13". NULL on OOM. */
cJSON *config_effective_parameters(const Config *c, const DynamicConfig *d, int major);

/* config_keys_print_markdown, config_keys_print_man - the key reference generated from the key table:
 * docs/config-keys.md and the pgha.yml(5) man page (docs/man/pgha.yml.5). Non-logging. */
void config_keys_print_markdown(FILE *f);
void config_keys_print_man(FILE *f);
