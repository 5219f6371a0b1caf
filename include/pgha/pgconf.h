/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL settings pgha manages and the files it owns (patroni-compat.md §6.1): postgresql.conf
 * (with the include of postgresql.base.conf), pg_hba.conf/pg_ident.conf when configured, standby.signal
 * and the recovery section for a replica, the pgpass file; plus the postmaster command line, libpq
 * key/value strings and replication slot names. Decoupled from Config through PgSettings, which the
 * configuration module (or pg_settings_from_json()) fills.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "pgha/macro.h"

/* An ordered list of name/value pairs (parameters, recovery settings, initdb or pg_basebackup
 * options). A NULL value means a bare flag (initdb "data-checksums" → --data-checksums). */
typedef struct PgParam {
        char *name;
        char *value;
} PgParam;

typedef struct PgParams {
        PgParam *items;
        size_t n;
} PgParams;

/* pg_params_set() - sets name (replacing an existing entry in place) to a copy of value (NULL = flag). */
int pg_params_set(PgParams *p, const char *name, const char *value) _warn_unused_result_;
/* pg_params_get() - the value of name, NULL when absent or a flag (pg_params_has() tells them apart). */
const char *pg_params_get(const PgParams *p, const char *name);
bool pg_params_has(const PgParams *p, const char *name);
void pg_params_done(PgParams *p);

/* One postgresql.authentication.<user> entry. libpq holds its other connection keys (sslmode, sslcert,
 * sslkey, sslpassword, sslrootcert, sslcrl, sslcrldir, gssencmode, channel_binding,
 * target_session_attrs), as Patroni's conn_kwargs carries them to every connection made as this user. */
typedef struct PgAuth {
        char *username;
        char *password; /* NULL = none */
        PgParams libpq;
} PgAuth;

typedef enum PgCallback {
        PG_CALLBACK_ON_START,
        PG_CALLBACK_ON_STOP,
        PG_CALLBACK_ON_RESTART,
        PG_CALLBACK_ON_RELOAD,
        PG_CALLBACK_ON_ROLE_CHANGE,
        _PG_CALLBACK_MAX,
        _PG_CALLBACK_INVALID = -EINVAL,
} PgCallback;

const char *pg_callback_to_string(PgCallback c);
PgCallback pg_callback_from_string(const char *s);

/* One entry of postgresql.create_replica_methods with its section postgresql.<name>. */
typedef struct PgReplicaMethod {
        char *name;    /* "basebackup" or a custom method */
        char *command; /* custom methods only */
        bool keep_data;
        bool no_params;
        bool no_leader;
        PgParams params; /* every other key of the section, in config order → --k=v */
} PgReplicaMethod;

typedef struct PgBootstrapUser {
        char *name;
        char *password;
        char **options; /* e.g. "createrole", "createdb" */
} PgBootstrapUser;

/* bootstrap.method: <name> with its section bootstrap.<name> (Patroni §6.3 "custom bootstrap"). */
typedef struct PgCustomBootstrap {
        char *name; /* NULL = initdb */
        char *command;
        bool no_params;
        bool keep_existing_recovery_conf;
        bool has_recovery_conf;
        PgParams recovery_conf;
} PgCustomBootstrap;

typedef struct PgSettings {
        char *scope;
        char *name; /* member name: application_name, slot name */
        char *bin_dir;
        char *data_dir;
        char *config_dir;       /* NULL = data_dir */
        char *listen_addresses; /* the address part of postgresql.listen, e.g. "127.0.0.1,::1" */
        char *listen_host;      /* first listen address, for local TCP connections */
        unsigned port;
        char *connect_address; /* host:port advertised to others */
        char *database;        /* postgresql.database, default "postgres" */
        char *pgpass;          /* postgresql.pgpass */
        char *postmaster_log;  /* where the postmaster's stdout/stderr go; NULL = our stderr */
        char *custom_conf;     /* postgresql.custom_conf: included instead of postgresql.base.conf */
        PgAuth superuser;
        PgAuth replication;
        PgAuth rewind;       /* username NULL = use the superuser */
        PgParams parameters; /* already merged (defaults ⊕ dynamic ⊕ local) */
        PgParams recovery_conf;
        char **pg_hba;   /* NULL = pg_hba.conf not managed */
        char **pg_ident; /* NULL = pg_ident.conf not managed */
        char *callbacks[_PG_CALLBACK_MAX];
        PgReplicaMethod *replica_methods; /* NULL/0 = ["basebackup"] */
        size_t n_replica_methods;
        PgParams basebackup;
        usec_t pg_ctl_timeout; /* start/stop deadline, default 60 s */
        bool use_pg_rewind;
        bool use_slots;
        bool remove_data_directory_on_rewind_failure;
        bool remove_data_directory_on_diverged_timelines;
        char *pre_promote;
        /* bootstrap section */
        PgParams initdb;
        char **bootstrap_pg_hba;
        PgBootstrapUser *bootstrap_users;
        size_t n_bootstrap_users;
        char *post_bootstrap; /* bootstrap.post_bootstrap (or post_init) command */
        PgCustomBootstrap custom_bootstrap;
} PgSettings;

void pg_settings_done(PgSettings *s);

/* pg_settings_from_json() - fills *ret from a Patroni-shaped document ({scope, name, postgresql{...},
 * bootstrap{...}}), e.g. the effective configuration as JSON. On error returns -EINVAL and a message
 * naming the key in *reterr (caller frees). Non-logging. */
int pg_settings_from_json(const cJSON *root, PgSettings *ret, char **reterr) _warn_unused_result_;

/* Paths derived from the settings (heap strings). */
char *pgconf_path(const PgSettings *s, const char *file);   /* <config_dir>/<file> */
char *pgdata_path(const PgSettings *s, const char *file);   /* <data_dir>/<file> */
char *pgconf_bin(const PgSettings *s, const char *program); /* <bin_dir>/<program> or the bare name */

/* pgconf_quote() - a postgresql.conf value: wrapped in ', every ' and \ doubled. */
char *pgconf_quote(const char *value);

/* pgconf_slot_name() - Patroni's replication slot name for a member name (lower-case, - and . → _,
 * other characters outside [a-z0-9_] → u + 4-digit code point, at most 63 chars). */
int pgconf_slot_name(const char *member, char **ret) _warn_unused_result_;

/* pgconf_format_dsn() - libpq key/value string in Patroni's fixed keyword order, values with ', \ and
 * space backslash-escaped; keywords whose value is NULL are skipped. params is a list of pairs. */
char *pgconf_format_dsn(const PgParams *params);

/* pgconf_parse_conn_url() - host and port from a member's conn_url (postgres://host:port/db). */
int pgconf_parse_conn_url(const char *url, char **ret_host, unsigned *ret_port) _warn_unused_result_;

/* pgconf_server_parameters() - the parameters written to postgresql.conf: the given ones plus
 * listen_addresses, port, cluster_name, the defaults of the command-line parameters (§5.2), hba_file
 * and ident_file. Sorted by name except hba_file/ident_file last. */
int pgconf_server_parameters(const PgSettings *s, PgParams *ret) _warn_unused_result_;

/* pgconf_postmaster_argv() - postgres -D <data_dir> --config-file=<conf> --listen_addresses=... and the
 * other command-line parameters in Patroni's order. */
int pgconf_postmaster_argv(const PgSettings *s, char ***ret) _warn_unused_result_;

/* pgconf_recovery_params() - the recovery section for a replica following host:port (host NULL =
 * following nobody): recovery_conf extras, primary_conninfo with application_name = our name and
 * passfile when the replication user has a password, primary_slot_name when use_slots,
 * recovery_target_timeline = latest and the other recovery_target* neutralised. */
int pgconf_recovery_params(const PgSettings *s, const char *host, unsigned port, PgParams *ret)
        _warn_unused_result_;

/* pgconf_render_postgresql_conf() - the complete postgresql.conf text; recovery may be NULL. */
int pgconf_render_postgresql_conf(const PgSettings *s, const PgParams *recovery, char **ret)
        _warn_unused_result_;

/* pgconf_write_config() - renames an initdb/basebackup postgresql.conf to postgresql.base.conf on
 * first use, then atomically writes postgresql.conf (with the recovery section when recovery != NULL);
 * writes pg_hba.conf/pg_ident.conf when managed and the pgpass file for the replication user when the
 * recovery section uses it. Safe while PostgreSQL runs (before a reload). Logging. */
int pgconf_write_config(const PgSettings *s, const PgParams *recovery) _warn_unused_result_;

/* pgconf_write_all() - pgconf_write_config(), plus the signal files: for a replica (recovery != NULL)
 * standby.signal is created (recovery.signal instead when recovery has standby_mode = off, as for a
 * custom bootstrap's point-in-time recovery), for a primary standby.signal/recovery.signal are removed;
 * recovery settings are removed from postgresql.auto.conf. Only while PostgreSQL is stopped (before a
 * start): a running standby whose standby.signal vanished fails its promotion. Logging. */
int pgconf_write_all(const PgSettings *s, const PgParams *recovery) _warn_unused_result_;

/* pgconf_conn_params() - the libpq keys for connecting as auth to host:port: dbname (NULL = omitted),
 * user, host, port and auth's other libpq keys (replacing entries already in *p). The password is never
 * included: it goes through the pgpass file. Non-logging. */
int pgconf_conn_params(const PgAuth *auth, const char *dbname, const char *host, unsigned port, PgParams *p)
        _warn_unused_result_;

/* pgconf_auth_libpq_strv() - auth's libpq keys as a NULL-terminated key, value, ... list for
 * PgConnParams.libpq (free with proc_strv_free()); *ret is NULL when there are none. Non-logging. */
int pgconf_auth_libpq_strv(const PgAuth *auth, char ***ret) _warn_unused_result_;

/* pgconf_write_pgpass() - overwrites the pgpass file (mode 0600) with one line for host:port/auth
 * (plus a localhost line so Unix-socket connections match too). Non-logging. */
int pgconf_write_pgpass(const PgSettings *s, const char *host, unsigned port, const PgAuth *auth)
        _warn_unused_result_;

/* pgconf_render_pgpass() - the text pgconf_write_pgpass() writes (heap string, NULL on OOM). */
char *pgconf_render_pgpass(const char *host, unsigned port, const PgAuth *auth);

/* pgconf_append_bootstrap_hba() - appends bootstrap.pg_hba to pg_hba.conf (blank line, lines,
 * newline) unless pg_hba.conf is managed. Non-logging. */
int pgconf_append_bootstrap_hba(const PgSettings *s) _warn_unused_result_;

/* pgconf_local_host() - the host for local connections (heap string): the first absolute
 * unix_socket_directories entry, else the first listen address (localhost for wildcard addresses). */
char *pgconf_local_host(const PgSettings *s);

/* pgconf_backup_files() - copies postgresql.conf, postgresql.base.conf, pg_hba.conf and pg_ident.conf
 * (those that exist) to <file>.backup in config_dir; done after every successful start. Non-logging. */
int pgconf_backup_files(const PgSettings *s) _warn_unused_result_;

/* pgconf_restore_files() - restores those files that are missing from their .backup copies (after a
 * base backup or a custom replica method). Returns the number restored. Non-logging. */
int pgconf_restore_files(const PgSettings *s) _warn_unused_result_;
