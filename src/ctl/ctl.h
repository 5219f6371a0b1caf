/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of pghactl, the operator's command line (src/ctl/): everything that turns a cluster
 * view into text and text into a configuration change, without any I/O beyond the FILE it is given.
 * Output is byte-for-byte what patronictl 3.0.2 prints (PrettyTable frames, PyYAML's safe_dump, Python's
 * json.dumps, difflib's unified diff), so scripts written against patronictl keep working.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "pgha/macro.h"

typedef struct DcsCluster DcsCluster;
typedef struct DcsMember DcsMember;

/* ---- Tables ---- */

typedef enum CtlAlign {
        CTL_ALIGN_LEFT,
        CTL_ALIGN_RIGHT,
} CtlAlign;

/* A table of JSON cells (strings, numbers, objects), rendered as PrettyTable, TSV, JSON or YAML. */
typedef struct CtlTable {
        char **columns;
        CtlAlign *align;
        size_t n_columns;
        cJSON **cells; /* n_rows * n_columns, owned; never NULL ("" for an empty cell) */
        size_t n_rows;
} CtlTable;

typedef enum CtlFormat {
        CTL_FORMAT_PRETTY,
        CTL_FORMAT_TSV,
        CTL_FORMAT_JSON,
        CTL_FORMAT_YAML,
        CTL_FORMAT_TOPOLOGY,
        _CTL_FORMAT_MAX,
        _CTL_FORMAT_INVALID = -EINVAL,
} CtlFormat;

/* ctl_format_from_string - "pretty", "tsv", "json", "yaml" (or "yml"); -EINVAL otherwise. */
CtlFormat ctl_format_from_string(const char *s);

/* ctl_table_new - a table with these columns, every one left-aligned. */
int ctl_table_new(const char *const *columns, size_t n, CtlTable **ret) _warn_unused_result_;
CtlTable *ctl_table_free(CtlTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(CtlTable *, ctl_table_free);
/* ctl_table_set_align - aligns the named column (no-op if there is no such column). */
void ctl_table_set_align(CtlTable *t, const char *column, CtlAlign align);
/* ctl_table_add_row - appends a row; takes ownership of the n_columns items (NULL items become ""),
 * also on failure. */
int ctl_table_add_row(CtlTable *t, cJSON **items) _warn_unused_result_;
/* ctl_table_column - index of a column, or -ENOENT. */
int ctl_table_column(const CtlTable *t, const char *column);
/* ctl_table_remove_column - drops a column (and its cells). */
void ctl_table_remove_column(CtlTable *t, size_t index);
/* ctl_table_print - renders like patronictl's print_output(): a PrettyTable frame (all rules when a
 * cell has a line break) whose top border carries title (may be NULL); TSV with a header line and
 * delimiter; a JSON or YAML list of {column: value} objects (empty cells omitted when title is set, as
 * patronictl does for list). */
int ctl_table_print(const CtlTable *t, CtlFormat format, const char *title, const char *delimiter, FILE *f);

/* ctl_value_to_string - Python's str() of a JSON value: strings as is, integers in decimal, floats as
 * repr(), true/false as True/False, null as None, objects/arrays as JSON. */
int ctl_value_to_string(const cJSON *v, char **ret) _warn_unused_result_;

/* ---- Serialisation like patronictl's ---- */

/* ctl_yaml_dump - PyYAML's safe_dump(default_flow_style=flow, allow_unicode=True, width=200): keys sorted,
 * strings quoted where YAML 1.1 would read them as something else. */
int ctl_yaml_dump(const cJSON *v, bool flow, FILE *f);
/* ctl_yaml_dump_string - the same into a new string. */
int ctl_yaml_dump_string(const cJSON *v, bool flow, char **ret) _warn_unused_result_;
/* ctl_json_dump - Python's json.dumps(): ", " and ": " separators, non-ASCII as \uXXXX. */
int ctl_json_dump(const cJSON *v, FILE *f);
int ctl_json_dump_string(const cJSON *v, char **ret) _warn_unused_result_;

/* ctl_unified_diff - difflib.unified_diff(before, after) of two texts split into lines, three lines of
 * context, "--- " / "+++ " headers, one line per output line. Prints nothing when equal. */
int ctl_unified_diff(const char *before, const char *after, FILE *f);

/* ---- Configuration edits ---- */

/* ctl_config_set_pair - applies one "-s key.path=value" to config (an object): the path is split at
 * dots, except that below postgresql.parameters the rest is one GUC name (it may contain dots); value
 * is read as YAML (null deletes the key; sections left empty are removed). -EINVAL without '=' or with
 * an empty key, with *ret_error naming the problem. */
int ctl_config_set_pair(cJSON *config, const char *pair, char **ret_error) _warn_unused_result_;
/* ctl_config_patch - Patroni's patch_config(): merges patch into config (null deletes, objects merge,
 * scalars replace). Returns true if anything changed. */
bool ctl_config_patch(cJSON *config, const cJSON *patch);
/* ctl_yaml_parse - parses a YAML document into JSON with PyYAML's typing; an empty document is null.
 * -EINVAL with *ret_error ("NAME:LINE:COLUMN: problem") on a syntax error. */
int ctl_yaml_parse(const char *name, const char *text, cJSON **ret, char **ret_error) _warn_unused_result_;

/* ---- Cluster view ---- */

/* ctl_conn_url_parse - host, port (default 5432) and database of a member's postgres:// conn_url as
 * Python's urlparse reads it (host lower-cased, IPv6 brackets removed). -EINVAL if there is no host. */
int ctl_conn_url_parse(const char *url, char **ret_host, unsigned *ret_port, char **ret_dbname)
        _warn_unused_result_;

/* Roles accepted by -r/--role, as patronictl's choice list. */
bool ctl_role_valid(const char *role);
/* ctl_member_has_role - get_all_members() semantics: leader|primary|master|standby-leader select the
 * lock holder (primary/master only if not a standby leader, standby-leader only if it is one); replica
 * and standby select every other member; any selects all. */
bool ctl_member_has_role(const DcsCluster *c, const DcsMember *m, const char *role);

typedef struct CtlListOptions {
        const char *name; /* cluster name printed in the title and Cluster column */
        bool extended;    /* -e: always show Pending restart, Scheduled restart, Tags */
        CtlFormat format;
} CtlListOptions;

/* ctl_cluster_table - the members table of `patronictl list` (topology order for CTL_FORMAT_TOPOLOGY),
 * with the leading Cluster column (dropped by ctl_cluster_print for pretty output). */
int ctl_cluster_table(const DcsCluster *c, const CtlListOptions *o, CtlTable **ret) _warn_unused_result_;
/* ctl_cluster_print - prints the table and, for pretty/topology, the " Maintenance mode: on" and
 * " Switchover scheduled at: ..." lines, exactly as patronictl list. */
int ctl_cluster_print(const DcsCluster *c, const CtlListOptions *o, FILE *f);
/* ctl_history_print - `patronictl history`: TL, LSN, Reason, Timestamp, New Leader. */
int ctl_history_print(const DcsCluster *c, CtlFormat format, FILE *f);
/* ctl_format_pg_version - 150004 → "15.4", 90605 → "9.6.5". */
int ctl_format_pg_version(int64_t version, char **ret) _warn_unused_result_;
/* ctl_is_paused - the dynamic config has a true "pause". */
bool ctl_is_paused(const DcsCluster *c);
/* ctl_parse_scheduled - dateutil-like parse of an ISO 8601 timestamp (local time zone when none is
 * given) into Python's isoformat() (microseconds only when not zero); "now" or NULL → *ret = NULL.
 * -EINVAL when it cannot be read. */
int ctl_parse_scheduled(const char *s, char **ret) _warn_unused_result_;
