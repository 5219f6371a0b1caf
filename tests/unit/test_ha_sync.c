/* SPDX-License-Identifier: MIT */
/*
 * Synchronous standby selection (ha_sync_select) and the synchronous_standby_names syntax: order,
 * exclusions (nosync, not running, not streaming, lag), node count, and the confirmation rule that keeps
 * a standby out of the `sync` key until PostgreSQL treats it as synchronous and it has caught up.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "pgha/ha_sync.h"
#include "pgha/proc.h"
#include "tests.h"

static const HaSyncMember members3[] = {
        {.name = "node1", .running = true},
        {.name = "node2", .running = true},
        {.name = "node3", .running = true},
};

static HaSyncReplica rep(const char *name, const char *sync_state, uint64_t lsn) {
        return (HaSyncReplica){
                .application_name = name,
                .state = "streaming",
                .sync_state = sync_state,
                .has_lsn = true,
                .lsn = lsn,
        };
}

static HaSyncInput input(const HaSyncReplica *r, size_t n) {
        return (HaSyncInput){
                .replicas = r,
                .n_replicas = n,
                .members = members3,
                .n_members = ELEMENTSOF(members3),
                .node_count = 1,
                .max_lag = -1,
                .primary_lsn = 1000,
        };
}

TEST(select_prefers_sync_state_then_lsn) {
        HaSyncReplica r[] = {rep("node2", "async", 900), rep("node3", "async", 950)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3"); /* higher LSN */
        ASSERT_EQ(res.n_confirmed, 0);        /* not in synchronous_standby_names */

        /* A standby already sync wins over a faster async one (no needless swaps). */
        r[0].sync_state = "sync";
        ha_sync_select(&in, &res);
        ASSERT_STREQ(res.picked[0], "node2");

        in.node_count = 2;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 2);
        ASSERT_STREQ(res.picked[0], "node2");
        ASSERT_STREQ(res.picked[1], "node3");
}

TEST(select_excludes_nosync_stopped_nonstreaming_unknown) {
        HaSyncMember m[] = {
                {.name = "node2", .running = true, .nosync = true},
                {.name = "node3", .running = false},
                {.name = "node4", .running = true},
                {.name = "Node5", .running = true},
        };
        HaSyncReplica r[] = {
                rep("node2", "async", 999),
                rep("node3", "async", 999),
                rep("node4", "async", 999),
                rep("node5", "async", 10), /* matches Node5 case-insensitively */
                rep("stranger", "async", 999),
        };
        HaSyncInput in = input(r, ELEMENTSOF(r));
        HaSyncResult res;

        r[2].state = "catchup";
        in.members = m;
        in.n_members = ELEMENTSOF(m);
        in.node_count = 5;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "Node5"); /* the member's spelling */

        /* NULL LSN (nothing flushed yet) is not a candidate either. */
        r[3].has_lsn = false;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 0);
}

TEST(select_nofailover_last) {
        HaSyncMember m[] = {
                {.name = "node2", .running = true, .nofailover = true},
                {.name = "node3", .running = true},
        };
        HaSyncReplica r[] = {rep("node2", "sync", 999), rep("node3", "async", 10)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        in.members = m;
        in.n_members = 2;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3");
}

TEST(select_maximum_lag_on_syncnode) {
        HaSyncReplica r[] = {rep("node2", "sync", 100), rep("node3", "async", 1000)};
        HaSyncInput in = input(r, 2);
        HaSyncResult res;

        in.max_lag = 500;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_STREQ(res.picked[0], "node3"); /* node2 is 900 bytes behind the best */

        in.max_lag = 900;
        ha_sync_select(&in, &res);
        ASSERT_STREQ(res.picked[0], "node2");

        /* With one candidate it is compared with the primary's position. */
        in.n_replicas = 1;
        in.max_lag = 500;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 0);
        in.max_lag = 0; /* 0: no limit */
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
}

TEST(confirm_requires_live_setting_sync_state_and_catch_up) {
        HaSyncReplica r[] = {rep("node2", "async", 1000)};
        const char *ssn[] = {"node2"};
        HaSyncInput in = input(r, 1);
        HaSyncResult res;

        /* Not in the live setting: picked, never confirmed. */
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_picked, 1);
        ASSERT_EQ(res.n_confirmed, 0);
        ASSERT_EQ(res.n_ready, 0);

        /* Listed, but PostgreSQL still reports async. */
        in.ssn_names = ssn;
        in.n_ssn_names = 1;
        in.ready_lsn = 1000;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* sync, but behind the position recorded after the change. */
        r[0].sync_state = "sync";
        r[0].lsn = 999;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* No position recorded yet (the change was only just seen). */
        r[0].lsn = 5000;
        in.ready_lsn = 0;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        in.ready_lsn = 1000;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);
        ASSERT_STREQ(res.confirmed[0], "node2");
        ASSERT_EQ(res.n_ready, 1);

        /* Once ready it stays ready while listed, even if the LSN rule would fail now. */
        {
                const char *ready[] = {"node2"};
                in.ready = ready;
                in.n_ready = 1;
                in.ready_lsn = 99999;
                ha_sync_select(&in, &res);
                ASSERT_EQ(res.n_confirmed, 1);

                /* ... but a name no longer in the live setting is forgotten. */
                in.n_ssn_names = 0;
                ha_sync_select(&in, &res);
                ASSERT_EQ(res.n_ready, 0);
                ASSERT_EQ(res.n_confirmed, 0);
        }
}

TEST(confirm_sync_key_member_without_lsn) {
        HaSyncReplica r[] = {rep("node2", "sync", 10)};
        const char *ssn[] = {"node2"};
        const char *key[] = {"node2"};
        HaSyncInput in = input(r, 1);
        HaSyncResult res;

        in.ssn_names = ssn;
        in.n_ssn_names = 1;
        in.sync_names = key;
        in.n_sync_names = 1;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);

        /* Still must be reported sync by PostgreSQL. */
        r[0].sync_state = "potential";
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 0);

        /* Quorum mode wants "quorum". */
        r[0].sync_state = "quorum";
        in.quorum = true;
        ha_sync_select(&in, &res);
        ASSERT_EQ(res.n_confirmed, 1);
}

TEST(same_set) {
        const char *a[] = {"a", "b"}, *b[] = {"B", "a"}, *c[] = {"a"};

        ASSERT_TRUE(ha_sync_same_set(a, 2, b, 2));
        ASSERT_FALSE(ha_sync_same_set(a, 2, c, 1));
        ASSERT_FALSE(ha_sync_same_set(c, 1, a, 2));
        ASSERT_TRUE(ha_sync_same_set(NULL, 0, NULL, 0));
}

TEST(format_ssn) {
        const char *one[] = {"node2"}, *two[] = {"node2", "node-3"}, *star[] = {"*"};
        char *s = NULL;

        ASSERT_OK(ha_sync_format_ssn(NULL, 0, false, 0, &s));
        ASSERT_STREQ(s, "");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(one, 1, false, 0, &s));
        ASSERT_STREQ(s, "node2");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(two, 2, false, 0, &s));
        ASSERT_STREQ(s, "2 (node2,\"node-3\")");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(star, 1, false, 0, &s));
        ASSERT_STREQ(s, "*");
        free(s);
        ASSERT_OK(ha_sync_format_ssn(two, 2, true, 1, &s));
        ASSERT_STREQ(s, "ANY 1 (node2,\"node-3\")");
        free(s);
}

TEST(parse_ssn) {
        char **l = NULL;

        ASSERT_OK(ha_sync_parse_ssn("", &l));
        ASSERT_EQ(proc_strv_length(l), 0);
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("node2", &l));
        ASSERT_EQ(proc_strv_length(l), 1);
        ASSERT_STREQ(l[0], "node2");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("2 (node2,\"node-3\")", &l));
        ASSERT_EQ(proc_strv_length(l), 2);
        ASSERT_STREQ(l[1], "node-3");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn("ANY 1 (a, \"b\"\"c\", *)", &l));
        ASSERT_EQ(proc_strv_length(l), 3);
        ASSERT_STREQ(l[1], "b\"c");
        ASSERT_STREQ(l[2], "*");
        l = proc_strv_free(l);
        ASSERT_OK(ha_sync_parse_ssn(" a , b ", &l));
        ASSERT_EQ(proc_strv_length(l), 2);
        l = proc_strv_free(l);
        ASSERT_ERROR(ha_sync_parse_ssn("a,", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("1", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("2 (,)", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("ANY 4(\"a\" b)", &l), EINVAL);
        ASSERT_ERROR(ha_sync_parse_ssn("\"unterminated", &l), EINVAL);
}

/* ---- quorum commit ---- */

static const char *qnames[] = {"a", "b", "c", "d"};

/* Names of a bitmask over qnames. */
static size_t mask_names(unsigned mask, const char **ret) {
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(qnames); i++)
                if (mask & (1u << i))
                        ret[n++] = qnames[i];
        return n;
}

static unsigned popcount(unsigned m) {
        return (unsigned)__builtin_popcount(m);
}

static HaQuorumKey qkey(unsigned mask, unsigned quorum) {
        HaQuorumKey k = {.quorum = quorum};
        k.n_voters = mask_names(mask, k.voters);
        return k;
}

TEST(quorum_covers_matches_enumeration) {
        /* Every acknowledging set (k of S) meets every group of quorum+1 voters, by brute force. */
        for (unsigned v = 0; v < 16; v++)
                for (unsigned q = 0; q <= 4; q++)
                        for (unsigned sm = 0; sm < 16; sm++)
                                for (unsigned k = 0; k <= 4; k++) {
                                        const char *sn[4];
                                        HaQuorumKey key = qkey(v, q);
                                        HaQuorumRule rule = {sn, mask_names(sm, sn), k};
                                        bool want = true;

                                        for (unsigned a = 0; a < 16 && want; a++) {
                                                if ((a & ~sm) || popcount(a) != k)
                                                        continue;
                                                for (unsigned b = 0; b < 16 && want; b++)
                                                        if (!(b & ~v) && popcount(b) == q + 1 && !(a & b))
                                                                want = false;
                                        }
                                        ASSERT_EQ(ha_sync_quorum_covers(&key, &rule), want);
                                }
}

TEST(quorum_stricter) {
        HaQuorumKey ab1 = qkey(0x3, 1), abc2 = qkey(0x7, 2), abc1 = qkey(0x7, 1), a1 = qkey(0x1, 1),
                    a0 = qkey(0x1, 0), none = qkey(0, 0);

        ASSERT_TRUE(ha_sync_quorum_stricter(&ab1, &abc2));  /* a voter added, quorum raised */
        ASSERT_FALSE(ha_sync_quorum_stricter(&ab1, &abc1)); /* a voter added without raising */
        ASSERT_TRUE(ha_sync_quorum_stricter(&ab1, &a1));    /* a voter removed, quorum kept */
        ASSERT_FALSE(ha_sync_quorum_stricter(&ab1, &a0));   /* lowered */
        ASSERT_TRUE(ha_sync_quorum_stricter(&ab1, &none));  /* nobody may promote */
        ASSERT_FALSE(ha_sync_quorum_stricter(&none, &a0));
        ASSERT_TRUE(ha_sync_quorum_stricter(&none, &a1));
}

/* One step with the live value = pending = nothing, want = k of wmask. */
static HaQuorumResult
qstep(HaQuorumKey key,
      unsigned lmask,
      unsigned lk,
      unsigned wmask,
      unsigned wk,
      bool ready,
      unsigned caught) {
        static const char *ln[4], *wn[4], *cn[4];
        HaQuorumInput in = {.key = key, .has_ready = ready};
        HaQuorumResult r;

        in.live = (HaQuorumRule){ln, mask_names(lmask, ln), lk};
        in.want = (HaQuorumRule){wn, mask_names(wmask, wn), wk};
        in.ssn_differs = lmask != wmask || lk != wk;
        in.n_caught_up = mask_names(caught, cn);
        in.caught_up = cn;
        ha_sync_quorum_step(&in, &r);
        return r;
}

static bool key_is(const HaQuorumKey *k, unsigned mask, unsigned quorum) {
        HaQuorumKey want = qkey(mask, quorum);
        return k->quorum == quorum && ha_sync_same_set(k->voters, k->n_voters, want.voters, want.n_voters);
}

TEST(quorum_step_rules) {
        HaQuorumResult r;

        /* Fresh: no key, '' live, want ANY 1 (a,b): the setting first. */
        r = qstep(qkey(0, 0), 0, 0, 0x3, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_SSN);
        /* Live now; the key waits for the evidence (L0 recorded, enough voters flushed it). */
        r = qstep(qkey(0, 0), 0x3, 1, 0x3, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);
        r = qstep(qkey(0, 0), 0x3, 1, 0x3, 1, true, 0);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);
        r = qstep(qkey(0, 0), 0x3, 1, 0x3, 1, true, 0x1);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_TRUE(key_is(&r.key, 0x3, 1));
        r = qstep(qkey(0x3, 1), 0x3, 1, 0x3, 1, true, 0x1);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);

        /* c joins: voters and quorum grow first, then the setting; the target equals it. */
        r = qstep(qkey(0x3, 1), 0x3, 1, 0x7, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_TRUE(key_is(&r.key, 0x7, 2));
        r = qstep(qkey(0x7, 2), 0x3, 1, 0x7, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_SSN);
        r = qstep(qkey(0x7, 2), 0x7, 1, 0x7, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);

        /* b leaves: the setting first (the key still covers it), the key after a's catch-up. */
        r = qstep(qkey(0x3, 1), 0x3, 1, 0x1, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_SSN);
        r = qstep(qkey(0x3, 1), 0x1, 1, 0x1, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);
        r = qstep(qkey(0x3, 1), 0x1, 1, 0x1, 1, true, 0x2); /* only b (gone) flushed L0 */
        ASSERT_EQ(r.action, HA_QUORUM_NONE);
        r = qstep(qkey(0x3, 1), 0x1, 1, 0x1, 1, true, 0x1);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_TRUE(key_is(&r.key, 0x1, 0));

        /* synchronous_node_count 2 -> 1: raise the quorum first. */
        r = qstep(qkey(0x3, 0), 0x3, 2, 0x3, 1, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_TRUE(key_is(&r.key, 0x3, 1));
        /* 1 -> 2: the setting first, the lower quorum once both flushed L0. */
        r = qstep(qkey(0x3, 1), 0x3, 1, 0x3, 2, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_SSN);
        r = qstep(qkey(0x3, 1), 0x3, 2, 0x3, 2, true, 0x1);
        ASSERT_EQ(r.action, HA_QUORUM_NONE);
        r = qstep(qkey(0x3, 1), 0x3, 2, 0x3, 2, true, 0x3);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_TRUE(key_is(&r.key, 0x3, 0));

        /* Nobody left ('' or '*', k = 0): empty the key before the setting. */
        r = qstep(qkey(0x3, 1), 0x3, 1, 0, 0, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
        ASSERT_EQ(r.key.n_voters, 0);
        r = qstep(qkey(0, 0), 0x3, 1, 0, 0, false, 0);
        ASSERT_EQ(r.action, HA_QUORUM_WRITE_SSN);

        /* The live value changed behind our back ('' by ALTER SYSTEM) while we still want ANY 1 (a,b)
         * and think it pending: the key must stop naming standbys at once, whatever is wanted. */
        {
                static const char *ln[1], *pn[2] = {"a", "b"};
                HaQuorumInput in = {.key = qkey(0x3, 1), .has_pending = true};
                in.live = (HaQuorumRule){ln, 0, 0};
                in.pending = (HaQuorumRule){pn, 2, 1};
                in.want = in.pending;
                ha_sync_quorum_step(&in, &r);
                ASSERT_EQ(r.action, HA_QUORUM_WRITE_KEY);
                ASSERT_TRUE(ha_sync_quorum_covers(&r.key, &in.live));
                ASSERT_TRUE(ha_sync_quorum_covers(&r.key, &in.want));
                ASSERT_TRUE(ha_sync_quorum_stricter(&in.key, &r.key));
                in.key = r.key;
                ha_sync_quorum_step(&in, &r);
                ASSERT_EQ(r.action, HA_QUORUM_NONE); /* stays strict while the override lasts */
        }
}

/* A model of the primary and its standbys: random commits (each acknowledged once k standbys of the live
 * rule flushed it), streaming, leader steps, the written value becoming live at a random later moment,
 * and L0 recorded later still. After every event the key must keep the invariant: every quorum+1 voters
 * include one holding the last acknowledged commit, i.e. a candidate with quorum votes loses nothing. */
TEST(quorum_random_model_never_loses_acknowledged_commits) {
        unsigned seed = getenv("PGHA_TEST_SEED") ? (unsigned)atoi(getenv("PGHA_TEST_SEED")) : 1;

        srand(seed);
        for (int run = 0; run < 300; run++) {
                uint64_t fl[4] = {}, pos = 0, acked = 0, l0 = 0;
                unsigned vmask = 0, quorum = 0, lmask = 0, lk = 0, pmask = 0, pk = 0, wmask = 0, wk = 0;
                bool pending = false, ready = false, live_changed = false;

                for (int ev = 0; ev < 200; ev++) {
                        int e = rand() % 6;

                        if (e == 0) { /* a commit */
                                unsigned a = 0;
                                pos++;
                                if (lk == 0)
                                        acked = pos;
                                else if (lk <= popcount(lmask)) {
                                        while (popcount(a) < lk) {
                                                unsigned bit = 1u << (rand() % 4);
                                                if (lmask & bit)
                                                        a |= bit;
                                        }
                                        for (unsigned i = 0; i < 4; i++)
                                                if (a & (1u << i))
                                                        fl[i] = pos;
                                        acked = pos;
                                }
                        } else if (e == 1) { /* streaming */
                                unsigned i = (unsigned)rand() % 4;
                                fl[i] += (pos - fl[i]) > 0 ? (uint64_t)rand() % (pos - fl[i] + 1) : 0;
                        } else if (e == 2) { /* membership / configuration changes */
                                wmask = (unsigned)rand() % 16;
                                wk = wmask ? 1 + (unsigned)rand() % popcount(wmask) : 0;
                        } else if (e == 3 && pending) { /* the written value becomes live */
                                lmask = pmask, lk = pk, pending = false;
                                ready = false, live_changed = true;
                        } else if (e == 4 && live_changed) { /* L0: one probe later */
                                l0 = pos, ready = true, live_changed = false;
                        } else { /* the leader's step */
                                const char *ln[4], *pn[4], *wn[4], *cn[4];
                                HaQuorumInput in = {.key = qkey(vmask, quorum), .has_ready = ready};
                                HaQuorumResult r;
                                unsigned caught = 0;

                                for (unsigned i = 0; i < 4; i++)
                                        if (fl[i] >= l0)
                                                caught |= 1u << i;
                                in.live = (HaQuorumRule){ln, mask_names(lmask, ln), lk};
                                in.has_pending = pending;
                                in.pending = (HaQuorumRule){pn, mask_names(pmask, pn), pk};
                                in.want = (HaQuorumRule){wn, mask_names(wmask, wn), wk};
                                in.ssn_differs = pending ? (pmask != wmask || pk != wk)
                                                         : (lmask != wmask || lk != wk);
                                in.caught_up = cn;
                                in.n_caught_up = mask_names(caught, cn);
                                ha_sync_quorum_step(&in, &r);
                                if (r.action == HA_QUORUM_WRITE_SSN) {
                                        pmask = wmask, pk = wk, pending = true;
                                } else if (r.action == HA_QUORUM_WRITE_KEY) {
                                        vmask = 0;
                                        for (size_t i = 0; i < r.key.n_voters; i++)
                                                vmask |= 1u << (r.key.voters[i][0] - 'a');
                                        quorum = r.key.quorum;
                                }
                        }

                        /* The invariant. */
                        for (unsigned b = 1; b < 16; b++) {
                                uint64_t best = 0;
                                if ((b & ~vmask) || popcount(b) != quorum + 1)
                                        continue;
                                for (unsigned i = 0; i < 4; i++)
                                        if (b & (1u << i))
                                                best = MAX(best, fl[i]);
                                if (best < acked)
                                        TEST_FAIL(
                                                "seed %u run %d event %d: voters %#x quorum %u group %#x "
                                                "has %" PRIu64 " < acknowledged %" PRIu64,
                                                seed,
                                                run,
                                                ev,
                                                vmask,
                                                quorum,
                                                b,
                                                best,
                                                acked);
                        }
                }
        }
}

TEST(ssn_count) {
        unsigned k = 99;

        ASSERT_OK(ha_sync_ssn_count("", &k));
        ASSERT_EQ(k, 0);
        ASSERT_OK(ha_sync_ssn_count("*", &k));
        ASSERT_EQ(k, 0);
        ASSERT_OK(ha_sync_ssn_count("node2", &k));
        ASSERT_EQ(k, 1);
        ASSERT_OK(ha_sync_ssn_count("a, b", &k));
        ASSERT_EQ(k, 1);
        ASSERT_OK(ha_sync_ssn_count("2 (a,b)", &k));
        ASSERT_EQ(k, 2);
        ASSERT_OK(ha_sync_ssn_count("ANY 1 (a,b)", &k));
        ASSERT_EQ(k, 1);
        ASSERT_OK(ha_sync_ssn_count(" first 3 (a,b,c)", &k));
        ASSERT_EQ(k, 3);
        ASSERT_OK(ha_sync_ssn_count("any_node", &k));
        ASSERT_EQ(k, 1);
        ASSERT_OK(ha_sync_ssn_count("ANY 1 (a,*)", &k));
        ASSERT_EQ(k, 0);
        ASSERT_ERROR(ha_sync_ssn_count("a,", &k), EINVAL);
}

DEFINE_TEST_MAIN
