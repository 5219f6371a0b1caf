/* SPDX-License-Identifier: MIT */
/*
 * Synchronous replication, the pure part: choosing synchronous standbys from pg_stat_replication and
 * the members, deciding which of them PostgreSQL already treats as synchronous, and the
 * synchronous_standby_names syntax. See include/pgha/ha_sync.h for the rules and the invariant: a name
 * is confirmed (may be written into the `sync` key) only when the live setting lists it, PostgreSQL
 * reports it as sync, and it has every commit acknowledged before it became synchronous.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgha/ha_sync.h"
#include "pgha/proc.h"

static bool name_in(const char *name, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (list[i] && strcasecmp(list[i], name) == 0)
                        return true;
        return false;
}

bool ha_sync_same_set(const char *const *a, size_t na, const char *const *b, size_t nb) {
        for (size_t i = 0; i < na; i++)
                if (!name_in(a[i], b, nb))
                        return false;
        for (size_t i = 0; i < nb; i++)
                if (!name_in(b[i], a, na))
                        return false;
        return true;
}

static const HaSyncMember *find_member(const HaSyncInput *in, const char *name) {
        for (size_t i = 0; i < in->n_members; i++)
                if (in->members[i].name && strcasecmp(in->members[i].name, name) == 0)
                        return &in->members[i];
        return NULL;
}

/* A candidate row: the replica and the member it belongs to. */
typedef struct Candidate {
        const HaSyncReplica *r;
        const HaSyncMember *m;
} Candidate;

/* (sync_state, lsn) descending; sync_state compares as text: sync > quorum > potential > async. */
static int cmp_state_lsn(const Candidate *a, const Candidate *b) {
        int c = strcmp(strempty(a->r->sync_state), strempty(b->r->sync_state));
        if (c != 0)
                return c > 0 ? -1 : 1;
        if (a->r->lsn != b->r->lsn)
                return a->r->lsn > b->r->lsn ? -1 : 1;
        return 0;
}

static int cmp_nofailover(const Candidate *a, const Candidate *b) {
        return (int)a->m->nofailover - (int)b->m->nofailover;
}

/* Stable insertion sort (at most HA_SYNC_MAX entries). */
static void sort_stable(Candidate *c, size_t n, int (*cmp)(const Candidate *, const Candidate *)) {
        for (size_t i = 1; i < n; i++) {
                Candidate x = c[i];
                size_t j = i;
                while (j > 0 && cmp(&c[j - 1], &x) > 0) {
                        c[j] = c[j - 1];
                        j--;
                }
                c[j] = x;
        }
}

void ha_sync_select(const HaSyncInput *in, HaSyncResult *ret) {
        const char *want_state = in->quorum ? "quorum" : "sync";
        Candidate c[HA_SYNC_MAX];
        size_t n = 0, count = MAX(in->node_count, 1u);
        uint64_t max_lsn = in->primary_lsn;

        *ret = (HaSyncResult){};

        /* Earlier confirmations stay valid while the live setting still lists the name. */
        for (size_t i = 0; i < in->n_ready && ret->n_ready < HA_SYNC_MAX; i++)
                if (in->ready[i] && name_in(in->ready[i], in->ssn_names, in->n_ssn_names) &&
                    !name_in(in->ready[i], ret->ready, ret->n_ready))
                        ret->ready[ret->n_ready++] = in->ready[i];

        for (size_t i = 0; i < in->n_replicas && n < HA_SYNC_MAX; i++) {
                const HaSyncReplica *r = &in->replicas[i];
                const HaSyncMember *m;

                if (!r->application_name || !r->has_lsn || !streq_ptr(r->state, "streaming"))
                        continue;
                m = find_member(in, r->application_name);
                if (!m || !m->running || m->nosync)
                        continue;
                c[n++] = (Candidate){r, m};
        }
        sort_stable(c, n, cmp_state_lsn);
        if (n > 1) {
                max_lsn = 0;
                for (size_t i = 0; i < n; i++)
                        max_lsn = MAX(max_lsn, c[i].r->lsn);
        }
        sort_stable(c, n, cmp_nofailover);

        for (size_t i = 0; i < n; i++) {
                const char *name = c[i].m->name;
                bool is_sync = streq_ptr(c[i].r->sync_state, want_state);

                if (!name_in(name, ret->ready, ret->n_ready) &&
                    name_in(name, in->ssn_names, in->n_ssn_names) &&
                    (name_in(name, in->sync_names, in->n_sync_names) ||
                     (is_sync && in->ready_lsn > 0 && c[i].r->lsn >= in->ready_lsn)) &&
                    ret->n_ready < HA_SYNC_MAX)
                        ret->ready[ret->n_ready++] = name;

                if (in->max_lag <= 0 || max_lsn <= c[i].r->lsn ||
                    max_lsn - c[i].r->lsn <= (uint64_t)in->max_lag) {
                        ret->picked[ret->n_picked++] = name;
                        if (is_sync && name_in(name, ret->ready, ret->n_ready))
                                ret->confirmed[ret->n_confirmed++] = name;
                }
                if (ret->n_picked >= count)
                        break;
        }
}

static bool plain_ident(const char *s) {
        if (!*s || !(strchr("_", *s) || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
                return false;
        for (const char *p = s; *p; p++)
                if (!(*p == '_' || *p == '$' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9')))
                        return false;
        return true;
}

/* Appends s to buf[size] at *len; false when it does not fit. */
static bool append(char *buf, size_t size, size_t *len, const char *s) {
        size_t l = strlen(s);
        if (*len + l >= size)
                return false;
        memcpy(buf + *len, s, l + 1);
        *len += l;
        return true;
}

static bool append_name(char *buf, size_t size, size_t *len, const char *name) {
        char q[2] = {};

        if (streq(name, "*") || plain_ident(name))
                return append(buf, size, len, name);
        if (!append(buf, size, len, "\""))
                return false;
        for (const char *p = name; *p; p++) {
                q[0] = *p;
                if ((*p == '"' && !append(buf, size, len, "\"")) || !append(buf, size, len, q))
                        return false;
        }
        return append(buf, size, len, "\"");
}

int ha_sync_format_ssn(const char *const *names, size_t n, bool quorum, unsigned quorum_n, char **ret) {
        char buf[4096] = "", num[32];
        size_t len = 0;
        char *s;

        if (!ret || (n > 0 && !names))
                return -EINVAL;
        if (n == 1 && !quorum) {
                if (!append_name(buf, sizeof buf, &len, names[0]))
                        return -E2BIG;
        } else if (n > 0) {
                if (quorum)
                        snprintf(num, sizeof num, "ANY %u (", MAX(quorum_n, 1u));
                else
                        snprintf(num, sizeof num, "%zu (", n);
                if (!append(buf, sizeof buf, &len, num))
                        return -E2BIG;
                for (size_t i = 0; i < n; i++)
                        if ((i > 0 && !append(buf, sizeof buf, &len, ",")) ||
                            !append_name(buf, sizeof buf, &len, names[i]))
                                return -E2BIG;
                if (!append(buf, sizeof buf, &len, ")"))
                        return -E2BIG;
        }
        s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Token kinds of synchronous_standby_names. */
enum { TOK_IDENT, TOK_QUOTED, TOK_STAR, TOK_NUM, TOK_COMMA, TOK_OPEN, TOK_CLOSE };

typedef struct Token {
        int kind;
        char text[HA_NAME_MAX];
} Token;

static int tokenize(const char *v, Token *t, size_t max, size_t *ret_n) {
        size_t n = 0;

        for (const char *p = v; *p;) {
                size_t l = 0;

                if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
                        p++;
                        continue;
                }
                if (n >= max)
                        return -E2BIG;
                t[n].text[0] = 0;
                if (*p == ',' || *p == '(' || *p == ')' || *p == '*') {
                        t[n].kind = *p == ',' ? TOK_COMMA
                                : *p == '('   ? TOK_OPEN
                                : *p == ')'   ? TOK_CLOSE
                                              : TOK_STAR;
                        t[n].text[0] = *p;
                        t[n].text[1] = 0;
                        p++;
                } else if (*p == '"') {
                        p++;
                        for (;;) {
                                if (!*p)
                                        return -EINVAL;
                                if (*p == '"') {
                                        if (p[1] != '"')
                                                break;
                                        p++;
                                }
                                if (l + 1 >= sizeof t[n].text)
                                        return -E2BIG;
                                t[n].text[l++] = *p++;
                        }
                        p++;
                        if (l == 0)
                                return -EINVAL;
                        t[n].text[l] = 0;
                        t[n].kind = TOK_QUOTED;
                } else if (*p >= '0' && *p <= '9') {
                        while (*p >= '0' && *p <= '9' && l + 1 < sizeof t[n].text)
                                t[n].text[l++] = *p++;
                        t[n].text[l] = 0;
                        t[n].kind = TOK_NUM;
                } else if (*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
                        while ((*p == '_' || *p == '$' || (*p >= 'A' && *p <= 'Z') ||
                                (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) &&
                               l + 1 < sizeof t[n].text)
                                t[n].text[l++] = *p++;
                        t[n].text[l] = 0;
                        t[n].kind = TOK_IDENT;
                } else
                        return -EINVAL;
                n++;
        }
        *ret_n = n;
        return 0;
}

int ha_sync_parse_ssn(const char *value, char ***ret) {
        _cleanup_(proc_strv_freep) char **names = NULL;
        Token t[2 * HA_SYNC_MAX + 8];
        size_t n = 0, first = 0, last;
        int r;

        if (!ret)
                return -EINVAL;
        r = tokenize(strempty(value), t, ELEMENTSOF(t), &n);
        if (r < 0)
                return r;
        if (n == 0) {
                names = calloc(1, sizeof(char *));
                if (!names)
                        return -ENOMEM;
                *ret = TAKE_PTR(names);
                return 0;
        }
        last = n;
        if (n >= 3 && t[0].kind == TOK_IDENT &&
            (strcasecmp(t[0].text, "any") == 0 || strcasecmp(t[0].text, "first") == 0) &&
            t[1].kind == TOK_NUM && t[2].kind == TOK_OPEN && t[n - 1].kind == TOK_CLOSE)
                first = 3, last = n - 1;
        else if (n >= 2 && t[0].kind == TOK_NUM && t[1].kind == TOK_OPEN && t[n - 1].kind == TOK_CLOSE)
                first = 2, last = n - 1;
        if (first >= last)
                return -EINVAL;
        for (size_t i = first; i < last; i++) {
                bool comma_slot = (i - first) % 2 == 1;
                if (comma_slot) {
                        if (t[i].kind != TOK_COMMA || i + 1 == last)
                                return -EINVAL;
                        continue;
                }
                if (t[i].kind != TOK_IDENT && t[i].kind != TOK_QUOTED && t[i].kind != TOK_STAR)
                        return -EINVAL;
                r = proc_strv_push(&names, t[i].text);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(names);
        return 0;
}

/* ---- quorum commit ---- */

static size_t count_not_in(const char *const *a, size_t na, const char *const *b, size_t nb) {
        size_t n = 0;
        for (size_t i = 0; i < na; i++)
                if (!name_in(a[i], b, nb))
                        n++;
        return n;
}

/* The smallest quorum with which voters cover rule. */
static unsigned quorum_needed(const char *const *voters, size_t n_voters, const HaQuorumRule *rule) {
        size_t outside, overlap;

        if (rule->k > rule->n)
                return 0; /* nothing can be acknowledged */
        outside = count_not_in(rule->names, rule->n, voters, n_voters);
        overlap = rule->k > outside ? rule->k - outside : 0;
        return (unsigned)(n_voters > overlap ? n_voters - overlap : 0);
}

bool ha_sync_quorum_covers(const HaQuorumKey *key, const HaQuorumRule *rule) {
        return quorum_needed(key->voters, key->n_voters, rule) <= key->quorum;
}

bool ha_sync_quorum_stricter(const HaQuorumKey *from, const HaQuorumKey *to) {
        size_t added;

        if (to->n_voters == 0)
                return true;
        added = count_not_in(to->voters, to->n_voters, from->voters, from->n_voters);
        return to->quorum >= from->quorum + added;
}

static void key_from_rule(const HaQuorumRule *rule, HaQuorumKey *ret) {
        *ret = (HaQuorumKey){};
        if (rule->k == 0)
                return;
        for (size_t i = 0; i < rule->n && ret->n_voters < HA_SYNC_MAX; i++)
                if (!name_in(rule->names[i], ret->voters, ret->n_voters))
                        ret->voters[ret->n_voters++] = rule->names[i];
        ret->quorum = (unsigned)(ret->n_voters - MIN((size_t)rule->k, ret->n_voters));
}

static bool key_equal(const HaQuorumKey *a, const HaQuorumKey *b) {
        if (a->n_voters == 0 && b->n_voters == 0)
                return true;
        return a->quorum == b->quorum && ha_sync_same_set(a->voters, a->n_voters, b->voters, b->n_voters);
}

void ha_sync_quorum_step(const HaQuorumInput *in, HaQuorumResult *ret) {
        HaQuorumKey target;

        *ret = (HaQuorumResult){.action = HA_QUORUM_NONE};
        key_from_rule(&in->want, &target);

        if (in->ssn_differs || !ha_sync_quorum_covers(&in->key, &in->live) ||
            (in->has_pending && !ha_sync_quorum_covers(&in->key, &in->pending))) {
                HaQuorumKey k = target;

                /* The key covers what is live and pending (unless the setting was changed behind our
                 * back): the new value may follow once the key covers it too. */
                if (ha_sync_quorum_covers(&in->key, &in->live) &&
                    (!in->has_pending || ha_sync_quorum_covers(&in->key, &in->pending)) &&
                    ha_sync_quorum_covers(&in->key, &in->want)) {
                        ret->action = HA_QUORUM_WRITE_SSN;
                        return;
                }
                /* A stricter key first: added voters raise the quorum, removed ones keep it; then
                 * whatever covering the live, the pending and the wanted rule needs. */
                if (k.n_voters > 0) {
                        k.quorum = in->key.quorum +
                                (unsigned)count_not_in(
                                           k.voters, k.n_voters, in->key.voters, in->key.n_voters);
                        k.quorum = MAX(k.quorum, quorum_needed(k.voters, k.n_voters, &in->live));
                        if (in->has_pending)
                                k.quorum = MAX(k.quorum, quorum_needed(k.voters, k.n_voters, &in->pending));
                        k.quorum = MAX(k.quorum, quorum_needed(k.voters, k.n_voters, &in->want));
                }
                ret->action = HA_QUORUM_WRITE_KEY;
                ret->key = k;
                return;
        }

        if (key_equal(&in->key, &target) || in->has_pending || !ha_sync_quorum_covers(&target, &in->live))
                return;
        if (ha_sync_quorum_stricter(&in->key, &target) ||
            (in->has_ready &&
             count_not_in(target.voters, target.n_voters, in->caught_up, in->n_caught_up) <=
                     target.quorum)) {
                ret->action = HA_QUORUM_WRITE_KEY;
                ret->key = target;
        }
}

int ha_sync_ssn_count(const char *value, unsigned *ret) {
        _cleanup_(proc_strv_freep) char **names = NULL;
        const char *p = strempty(value);
        unsigned long k;
        char *end;
        int r;

        if (!ret)
                return -EINVAL;
        r = ha_sync_parse_ssn(p, &names);
        if (r < 0)
                return r;
        for (char **n = names; *n; n++)
                if (streq(*n, "*")) {
                        *ret = 0;
                        return 0;
                }
        if (!names[0]) {
                *ret = 0;
                return 0;
        }
        p += strspn(p, " \t\r\n");
        if (strncasecmp(p, "any", 3) == 0 || strncasecmp(p, "first", 5) == 0)
                p += strcspn(p, " \t\r\n");
        p += strspn(p, " \t\r\n");
        if (*p < '0' || *p > '9') {
                *ret = 1; /* a plain list: the first one */
                return 0;
        }
        errno = 0;
        k = strtoul(p, &end, 10);
        if (errno != 0 || end == p || k > UINT_MAX)
                return -EINVAL;
        *ret = (unsigned)k;
        return 0;
}
