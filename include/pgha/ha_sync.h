/* SPDX-License-Identifier: MIT */
/*
 * Synchronous replication, the pure part (patroni-compat.md §2.10): which streaming standbys should be
 * listed in synchronous_standby_names, which of them PostgreSQL already treats as synchronous (and so
 * may be named in the `sync` key), and the synchronous_standby_names syntax (format and parse). No I/O,
 * no clock, no allocation except in the string helpers; names in the input are borrowed and the result
 * points into the input. The ha engine (ha.c) owns the order of the writes.
 *
 * Safety invariant: a name is "confirmed" only when the live synchronous_standby_names lists it,
 * pg_stat_replication reports it as sync (quorum in quorum mode), and it was either already in the
 * `sync` key under this leader or it flushed the primary's WAL position recorded after the live value
 * changed — so every commit acknowledged before is on it, and every commit acknowledged after waited
 * for it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgha/ha_fsm.h"
#include "pgha/macro.h"

/* One pg_stat_replication row, as the primary's status probe returns it. */
typedef struct HaSyncReplica {
        const char *application_name;
        const char *state;      /* "streaming", "catchup", ... */
        const char *sync_state; /* "async", "potential", "quorum", "sync" */
        bool has_lsn;           /* the compared column is not NULL */
        uint64_t lsn;           /* flush_lsn (write_lsn/replay_lsn for remote_write/remote_apply) */
} HaSyncReplica;

/* One cluster member as the `members/` keys describe it. */
typedef struct HaSyncMember {
        const char *name;
        bool running; /* member key state "running" */
        bool nosync, nofailover;
} HaSyncMember;

typedef struct HaSyncInput {
        const HaSyncReplica *replicas;
        size_t n_replicas;
        const HaSyncMember *members;
        size_t n_members;
        unsigned node_count;  /* synchronous_node_count; 0 counts as 1 */
        int64_t max_lag;      /* maximum_lag_on_syncnode in bytes; <= 0: no limit */
        uint64_t primary_lsn; /* the primary's WAL position (the best position with < 2 candidates) */
        bool quorum;          /* quorum mode: PostgreSQL reports "quorum" instead of "sync" */
        /* Confirmation state. */
        const char *const *ssn_names; /* names the live synchronous_standby_names lists */
        size_t n_ssn_names;
        const char *const *sync_names; /* standbys of the `sync` key when its leader is us */
        size_t n_sync_names;
        const char *const *ready; /* names confirmed by an earlier call (HaSyncResult.ready) */
        size_t n_ready;
        uint64_t ready_lsn; /* primary WAL position recorded after the live value last changed; 0: none */
} HaSyncInput;

typedef struct HaSyncResult {
        const char *picked[HA_SYNC_MAX]; /* the wanted synchronous standbys, best first */
        size_t n_picked;
        const char *confirmed[HA_SYNC_MAX]; /* picked ones PostgreSQL treats as synchronous */
        size_t n_confirmed;
        const char *ready[HA_SYNC_MAX]; /* to pass as HaSyncInput.ready next time */
        size_t n_ready;
} HaSyncResult;

/* ha_sync_select - Patroni's SyncHandler.current_state(): candidates are streaming walsenders whose
 * application_name matches (case-insensitively) a running member without the nosync tag, ordered by
 * (sync_state, lsn) descending, members without nofailover first; those lagging more than max_lag
 * behind the best are skipped; at most node_count are picked. */
void ha_sync_select(const HaSyncInput *in, HaSyncResult *ret);

/* ha_sync_format_ssn - the synchronous_standby_names value for names (heap string in *ret): "" for none,
 * "*" for {"*"}, "a" for one name, "N (a,b)" for several (N = count), "ANY n (a,b)" in quorum mode
 * (n = quorum). Names outside [A-Za-z_][A-Za-z_0-9$]* are double-quoted. */
int ha_sync_format_ssn(const char *const *names, size_t n, bool quorum, unsigned quorum_n, char **ret)
        _warn_unused_result_;

/* ha_sync_parse_ssn - the names a synchronous_standby_names value lists ("*" included as "*"), as a
 * NULL-terminated heap array (strv) in *ret; -EINVAL for a value PostgreSQL would not accept. */
int ha_sync_parse_ssn(const char *value, char ***ret) _warn_unused_result_;

/* ha_sync_same_set - whether two name lists hold the same names (case-insensitively, any order). */
bool ha_sync_same_set(const char *const *a, size_t na, const char *const *b, size_t nb);

/* ---- quorum commit (synchronous_mode: quorum; docs/ha.md "Quorum commit") ----
 * A commit rule "k of names": a commit is acknowledged once k of the names flushed it; k = 0 means no
 * named standby is guaranteed to have it ('' or '*'). A key (voters, quorum): a candidate among the
 * voters must see quorum other voters, none ahead of it. */
typedef struct HaQuorumRule {
        const char *const *names;
        size_t n;
        unsigned k;
} HaQuorumRule;

typedef struct HaQuorumKey {
        const char *voters[HA_SYNC_MAX];
        size_t n_voters;
        unsigned quorum;
} HaQuorumKey;

typedef enum HaQuorumAction {
        HA_QUORUM_NONE,      /* nothing to do (or wait for evidence) */
        HA_QUORUM_WRITE_KEY, /* write HaQuorumResult.key into `sync` (CAS) */
        HA_QUORUM_WRITE_SSN, /* set synchronous_standby_names to the wanted value */
        _HA_QUORUM_ACTION_MAX,
        _HA_QUORUM_ACTION_INVALID = -EINVAL,
} HaQuorumAction;

typedef struct HaQuorumInput {
        HaQuorumKey key;              /* the `sync` key now (ours; empty voters when absent or taken over) */
        HaQuorumRule live;            /* the live synchronous_standby_names */
        bool has_pending;             /* a value was written that is not live yet */
        HaQuorumRule pending;         /* that value */
        bool ssn_differs;             /* the wanted value differs from the pending (else live) one */
        HaQuorumRule want;            /* the wanted value */
        bool has_ready;               /* L0 recorded one probe after the live value changed */
        const char *const *caught_up; /* standbys that flushed L0 */
        size_t n_caught_up;
} HaQuorumInput;

typedef struct HaQuorumResult {
        HaQuorumAction action;
        HaQuorumKey key; /* for HA_QUORUM_WRITE_KEY */
} HaQuorumResult;

/* ha_sync_quorum_covers - every k-subset of rule->names meets every (quorum+1)-subset of the voters:
 * |V| - max(0, k - |S \ V|) <= quorum (always true when k > |S|: nothing can be acknowledged). */
bool ha_sync_quorum_covers(const HaQuorumKey *key, const HaQuorumRule *rule);

/* ha_sync_quorum_stricter - every (to.quorum+1)-subset of to.voters contains a (from.quorum+1)-subset of
 * from.voters (or to has no voters), so `to` protects whatever `from` protected. */
bool ha_sync_quorum_stricter(const HaQuorumKey *from, const HaQuorumKey *to);

/* ha_sync_quorum_step - the leader's next write in quorum mode (see docs/ha.md for the rules). */
void ha_sync_quorum_step(const HaQuorumInput *in, HaQuorumResult *ret);

/* ha_sync_ssn_count - the number of standbys a synchronous_standby_names value waits for: N of
 * "N (..)", "ANY N (..)", "FIRST N (..)"; 1 for a plain list; 0 for "" and any value naming "*". */
int ha_sync_ssn_count(const char *value, unsigned *ret) _warn_unused_result_;
