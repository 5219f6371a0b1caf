/* SPDX-License-Identifier: MIT */
/*
 * The pure half of the REST API: which health rule a path selects, the status code each rule gives for a
 * snapshot (Patroni 3.0.2's do_GET, do_GET_liveness, do_GET_readiness), the query-string, number,
 * version and timestamp parsers Patroni's handlers use, and patch_config().
 *
 * Invariant: no I/O, no clock reads, no logging; everything a decision depends on is an argument, so the
 * unit tests can enumerate the rules as a table.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "pgha/rest.h"
#include "rest-internal.h"

static const char *const rest_health_check_table[_REST_HEALTH_CHECK_MAX] = {
        [REST_CHECK_STANDBY_LEADER] = "standby-leader",
        [REST_CHECK_LEADER] = "leader",
        [REST_CHECK_PRIMARY] = "primary",
        [REST_CHECK_REPLICA] = "replica",
        [REST_CHECK_READ_ONLY] = "read-only",
        [REST_CHECK_HEALTH] = "health",
        [REST_CHECK_SYNC] = "sync",
        [REST_CHECK_ASYNC] = "async",
        [REST_CHECK_READ_ONLY_SYNC] = "read-only-sync",
        [REST_CHECK_QUORUM] = "quorum",
        [REST_CHECK_READ_ONLY_QUORUM] = "read-only-quorum",
        [REST_CHECK_OTHER] = "other",
        [REST_CHECK_LIVENESS] = "liveness",
        [REST_CHECK_READINESS] = "readiness",
};

DEFINE_STRING_TABLE_LOOKUP(rest_health_check, RestHealthCheck);

/* rest_health_check_from_path - Patroni matches substrings, first match wins, "/" means "/primary". */
RestHealthCheck rest_health_check_from_path(const char *path) {
        if (streq(path, "/"))
                path = "/primary";
        if (strstr(path, "standby_leader") || strstr(path, "standby-leader"))
                return REST_CHECK_STANDBY_LEADER;
        if (strstr(path, "leader"))
                return REST_CHECK_LEADER;
        if (strstr(path, "master") || strstr(path, "primary") || strstr(path, "read-write"))
                return REST_CHECK_PRIMARY;
        if (strstr(path, "replica"))
                return REST_CHECK_REPLICA;
        if (strstr(path, "read-only") && !strstr(path, "sync") && !strstr(path, "quorum"))
                return REST_CHECK_READ_ONLY;
        if (strstr(path, "health"))
                return REST_CHECK_HEALTH;
        if (streq(path, "/sync") || streq(path, "/synchronous"))
                return REST_CHECK_SYNC;
        if (streq(path, "/async") || streq(path, "/asynchronous"))
                return REST_CHECK_ASYNC;
        if (streq(path, "/read-only-sync") || streq(path, "/read-only-synchronous"))
                return REST_CHECK_READ_ONLY_SYNC;
        if (streq(path, "/quorum"))
                return REST_CHECK_QUORUM;
        if (streq(path, "/read-only-quorum"))
                return REST_CHECK_READ_ONLY_QUORUM;
        return REST_CHECK_OTHER;
}

/* ==== Query strings ==== */

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* urllib.parse.unquote_plus of s[0..n): '+' → ' ', %XX decoded, malformed escapes kept literally. */
static char *unquote_plus(const char *s, size_t n) {
        char *out = malloc(n + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '+')
                        *o++ = ' ';
                else if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
                        *o++ = (char)(unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
                        i += 2;
                } else
                        *o++ = s[i];
        }
        *o = '\0';
        return out;
}

void rest_query_done(RestQuery *q) {
        for (size_t i = 0; i < q->n_tags; i++) {
                free(q->tags[i].key);
                free(q->tags[i].value);
        }
        q->tags = mfree(q->tags);
        q->n_tags = 0;
        q->has_lag = false;
        q->lag = 0;
}

/* rest_query_parse - see the header. Returns 0 or -ENOMEM (q is then cleared). */
int rest_query_parse(const char *query, RestQuery *q) {
        bool seen_lag = false;

        rest_query_done(q);
        if (!query)
                return 0;

        for (const char *p = query; *p;) {
                const char *end = strchrnul(p, '&'), *eq;
                _cleanup_free_ char *key = NULL, *value = NULL;

                eq = memchr(p, '=', (size_t)(end - p));
                if (eq && end > eq + 1) {
                        key = unquote_plus(p, (size_t)(eq - p));
                        value = unquote_plus(eq + 1, (size_t)(end - eq - 1));
                        if (!key || !value) {
                                rest_query_done(q);
                                return -ENOMEM;
                        }
                        if (streq(key, "lag")) {
                                int64_t v;
                                if (!seen_lag && rest_parse_int(value, "B", &v) >= 0) {
                                        q->has_lag = true;
                                        q->lag = v;
                                }
                                seen_lag = true;
                        } else if (startswith(key, "tag_")) {
                                bool dup = false;
                                for (size_t i = 0; i < q->n_tags; i++)
                                        dup = dup || streq(q->tags[i].key, key + 4);
                                if (!dup) {
                                        RestTagFilter *t = reallocarray(q->tags, q->n_tags + 1, sizeof *t);
                                        char *k = strdup(key + 4);
                                        if (!t || !k) {
                                                free(k);
                                                if (t)
                                                        q->tags = t;
                                                rest_query_done(q);
                                                return -ENOMEM;
                                        }
                                        q->tags = t;
                                        q->tags[q->n_tags++] = (RestTagFilter){k, TAKE_PTR(value)};
                                }
                        }
                }
                p = *end ? end + 1 : end;
        }
        return 0;
}

/* ==== Patroni's number parsing (strtol / strtod / convert_to_base_unit) ==== */

static const char *skip_space(const char *s) {
        while (*s && isspace((unsigned char)*s))
                s++;
        return s;
}

/* Matches ^[-+]?0x[0-9a-fA-F]+, then ^[-+]?0[0-7]*, then ^[-+]?(0|[1-9][0-9]*) like patroni.utils.strtol;
 * returns the end of the match or NULL; the value saturates. */
static const char *py_strtol(const char *s, int64_t *ret) {
        const char *p = s;
        bool neg = false;
        unsigned base;
        __int128 v = 0;

        if (*p == '+' || *p == '-')
                neg = *p++ == '-';
        if (p[0] == '0' && p[1] == 'x' && isxdigit((unsigned char)p[2])) {
                base = 16;
                p += 2;
        } else if (p[0] == '0')
                base = 8;
        else if (p[0] >= '1' && p[0] <= '9')
                base = 10;
        else
                return NULL;

        for (;; p++) {
                int d = unhex(*p);
                if (d < 0 || (unsigned)d >= base)
                        break;
                if (v < ((__int128)1 << 64))
                        v = v * base + d;
        }
        if (neg)
                v = -v;
        *ret = v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
        return p;
}

/* Matches ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)? like patroni.utils.strtod. */
static const char *py_strtod(const char *s, double *ret) {
        const char *p = s, *q;
        size_t d1 = 0;

        if (*p == '+' || *p == '-')
                p++;
        while (isdigit((unsigned char)p[d1]))
                d1++;
        if (p[d1] == '.' && isdigit((unsigned char)p[d1 + 1])) {
                p += d1 + 1;
                while (isdigit((unsigned char)*p))
                        p++;
        } else if (d1 > 0)
                p += d1;
        else
                return NULL;
        q = p;
        if (*q == 'e' || *q == 'E') {
                q++;
                if (*q == '+' || *q == '-')
                        q++;
                if (isdigit((unsigned char)*q)) {
                        while (isdigit((unsigned char)*q))
                                q++;
                        p = q;
                }
        }
        _cleanup_free_ char *copy = strndup(s, (size_t)(p - s));
        if (!copy)
                return NULL;
        *ret = strtod(copy, NULL);
        return p;
}

typedef struct UnitFactor {
        const char *base;
        const char *unit;
        double factor;
} UnitFactor;

#define KB 1024.0
static const UnitFactor unit_table[] = {
        {"B", "B", 1},
        {"B", "kB", KB},
        {"B", "MB", KB *KB},
        {"B", "GB", KB *KB *KB},
        {"B", "TB", KB *KB *KB *KB},
        {"kB", "B", 1.0 / KB},
        {"kB", "kB", 1},
        {"kB", "MB", KB},
        {"kB", "GB", KB *KB},
        {"kB", "TB", KB *KB *KB},
        {"MB", "B", 1.0 / (KB * KB)},
        {"MB", "kB", 1.0 / KB},
        {"MB", "MB", 1},
        {"MB", "GB", KB},
        {"MB", "TB", KB *KB},
        {"ms", "us", 1.0 / 1000},
        {"ms", "ms", 1},
        {"ms", "s", 1000},
        {"ms", "min", 1000.0 * 60},
        {"ms", "h", 1000.0 * 60 * 60},
        {"ms", "d", 1000.0 * 60 * 60 * 24},
        {"s", "us", 1.0 / (1000 * 1000)},
        {"s", "ms", 1.0 / 1000},
        {"s", "s", 1},
        {"s", "min", 60},
        {"s", "h", 60.0 * 60},
        {"s", "d", 60.0 * 60 * 24},
        {"min", "us", 1.0 / (1000.0 * 1000 * 60)},
        {"min", "ms", 1.0 / (1000.0 * 60)},
        {"min", "s", 1.0 / 60},
        {"min", "min", 1},
        {"min", "h", 60},
        {"min", "d", 60.0 * 24},
};

static const char *const round_order[][2] = {
        {"TB", "GB"},
        {"GB", "MB"},
        {"MB", "kB"},
        {"kB", "B"},
        {"d", "h"},
        {"h", "min"},
        {"min", "s"},
        {"s", "ms"},
        {"ms", "us"},
};

static bool unit_factor(const char *base, const char *unit, double *ret) {
        for (size_t i = 0; i < ELEMENTSOF(unit_table); i++)
                if (streq(unit_table[i].base, base) && streq(unit_table[i].unit, unit)) {
                        *ret = unit_table[i].factor;
                        return true;
                }
        return false;
}

static int64_t double_to_i64(double d) {
        if (isnan(d))
                return 0;
        if (d >= 9223372036854775807.0)
                return INT64_MAX;
        if (d <= -9223372036854775808.0)
                return INT64_MIN;
        return (int64_t)d;
}

/* rest_parse_int - see the header. */
int rest_parse_int(const char *value, const char *base_unit, int64_t *ret) {
        _cleanup_free_ char *v = NULL;
        const char *rest;
        int64_t ival = 0;
        double dval = 0, factor;
        bool is_float = false;
        size_t n;

        if (!value)
                return -EINVAL;
        /* str(value).strip() */
        value = skip_space(value);
        n = strlen(value);
        while (n > 0 && isspace((unsigned char)value[n - 1]))
                n--;
        v = strndup(value, n);
        if (!v)
                return -ENOMEM;

        rest = py_strtol(v, &ival);
        if (!rest ? (*v == '.' || *v == 'e' || *v == 'E') : (*rest == '.' || *rest == 'e' || *rest == 'E')) {
                rest = py_strtod(v, &dval);
                is_float = true;
        }
        if (!rest)
                return -EINVAL;

        rest = skip_space(rest);
        if (*rest == '\0') {
                *ret = is_float ? double_to_i64(nearbyint(dval)) : ival;
                return 0;
        }

        /* unit.strip() */
        _cleanup_free_ char *unit = strdup(rest);
        if (!unit)
                return -ENOMEM;
        for (size_t l = strlen(unit); l > 0 && isspace((unsigned char)unit[l - 1]); l--)
                unit[l - 1] = '\0';

        if (!base_unit || !unit_factor(base_unit, unit, &factor))
                return -EINVAL;
        double d = (is_float ? dval : (double)ival) * factor;
        for (size_t i = 0; i < ELEMENTSOF(round_order); i++)
                if (streq(round_order[i][0], unit)) {
                        double m;
                        if (unit_factor(base_unit, round_order[i][1], &m))
                                d = nearbyint(d / m) * m;
                        break;
                }
        *ret = double_to_i64(nearbyint(d));
        return 0;
}

/* ==== Health rules ==== */

/* Tag filter check of do_GET: every ?tag_<k>=<v> must name a configured tag whose value (strings as they
 * are, anything else as str(value).lower()) equals v. */
static bool tags_match(const NodeSnapshot *s, const RestQuery *q) {
        for (size_t i = 0; i < q->n_tags; i++) {
                const cJSON *t = s->tags ? cJSON_GetObjectItemCaseSensitive(s->tags, q->tags[i].key) : NULL;
                if (!t || cJSON_IsNull(t))
                        return false;
                if (cJSON_IsString(t)) {
                        if (!streq(t->valuestring, q->tags[i].value))
                                return false;
                        continue;
                }
                _cleanup_free_ char *str = python_str(t);
                if (!str)
                        return false;
                for (char *p = str; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                if (!streq(str, q->tags[i].value))
                        return false;
        }
        return true;
}

/* rest_health_status - see the header; mirrors Patroni's do_GET line by line. */
int rest_health_status(const NodeSnapshot *s, RestHealthCheck check, const RestQuery *q) {
        usec_t now = q->now;
        const char *role = snapshot_rest_role(s), *state = snapshot_rest_state(s);
        bool has_cluster = snapshot_has_cluster(s, now), is_leader = snapshot_is_leader(s, now);
        bool primary_role = streq(role, "master") || streq(role, "primary");
        int replica_code, leader_code, primary_code, standby_leader_code, code = 503;
        bool ignore_tags = false;

        if (check == REST_CHECK_LIVENESS) {
                /* A running primary is allowed ttl without a loop run, anything else 2 × ttl. */
                bool is_primary = snapshot_is_primary_role(s->role) && streq_ptr(s->state, "running");
                usec_t threshold = s->ttl * (is_primary ? 1 : 2);
                return s->paused || s->next_run + threshold > now ? 200 : 503;
        }
        if (check == REST_CHECK_READINESS) {
                if (is_leader)
                        return 200;
                if (streq_ptr(s->state, "running"))
                        return has_cluster ? 200 : 503;
                return 503;
        }

        /* Lagging: the leader's optime (0 without a cluster view) ahead of our replay position by more
         * than ?lag= (no limit when absent or unparsable). */
        uint64_t leader_optime = has_cluster ? s->leader_optime : 0;
        uint64_t replayed = s->status_ok && s->in_recovery ? s->replayed_location : 0;
        bool lagging = leader_optime > 0 && q->has_lag &&
                (__int128)leader_optime > (__int128)replayed + (__int128)q->lag;

        replica_code =
                !snapshot_noloadbalance(s) && !lagging && streq(role, "replica") && streq(state, "running")
                ? 200
                : 503;

        if (!has_cluster && s->paused) {
                leader_code = primary_role || streq(role, "standby_leader") ? 200 : 503;
                primary_code = primary_role ? 200 : 503;
                standby_leader_code = streq(role, "standby_leader") ? 200 : 503;
        } else if (is_leader) {
                leader_code = 200;
                if (s->standby_cluster) {
                        primary_code = replica_code = 503;
                        standby_leader_code =
                                streq(role, "replica") || streq(role, "standby_leader") ? 200 : 503;
                } else {
                        primary_code = 200;
                        standby_leader_code = 503;
                }
        } else
                leader_code = primary_code = standby_leader_code = 503;

        /* pgha's rule (see leader_needs_postgres): the leader checks pass only while PostgreSQL serves
         * as the leader, writable (a standby leader: running). A crashed primary restarted read-only
         * before its promotion is not there yet. */
        if (q->leader_needs_postgres &&
            !(streq(state, "running") &&
              (s->standby_cluster ? streq(role, "replica") || streq(role, "standby_leader") : primary_role)))
                leader_code = primary_code = standby_leader_code = 503;

        switch (check) {
        case REST_CHECK_STANDBY_LEADER:
                code = standby_leader_code;
                ignore_tags = true;
                break;
        case REST_CHECK_LEADER:
                code = leader_code;
                ignore_tags = true;
                break;
        case REST_CHECK_PRIMARY:
                code = primary_code;
                ignore_tags = true;
                break;
        case REST_CHECK_REPLICA:
                code = replica_code;
                break;
        case REST_CHECK_READ_ONLY:
                code = primary_code == 200 || standby_leader_code == 200 ? 200 : replica_code;
                break;
        case REST_CHECK_HEALTH:
                code = streq(state, "running") ? 200 : 503;
                break;
        case REST_CHECK_SYNC:
        case REST_CHECK_ASYNC:
        case REST_CHECK_READ_ONLY_SYNC:
        case REST_CHECK_QUORUM:
        case REST_CHECK_READ_ONLY_QUORUM:
                if (!has_cluster)
                        break;
                bool sync = snapshot_is_sync_standby(s, now), quorum = snapshot_is_quorum_standby(s, now);
                if (check == REST_CHECK_SYNC && sync)
                        code = replica_code;
                else if (check == REST_CHECK_QUORUM && quorum)
                        code = replica_code;
                else if (check == REST_CHECK_ASYNC && !sync && !quorum)
                        code = replica_code;
                else if (check == REST_CHECK_READ_ONLY_SYNC || check == REST_CHECK_READ_ONLY_QUORUM) {
                        if (primary_code == 200 || standby_leader_code == 200)
                                code = 200;
                        else if (check == REST_CHECK_READ_ONLY_SYNC ? sync : quorum)
                                code = replica_code;
                }
                break;
        default:
                break;
        }

        if (!ignore_tags && code == 200 && !tags_match(s, q))
                code = 503;
        return code;
}

/* ==== Validation helpers ==== */

/* Python int() of one version component: optional blanks and sign, digits with single '_' between. */
static bool py_int(const char *s, size_t n, long long *ret) {
        const char *e = s + n;
        bool neg = false, digit = false;
        long long v = 0;

        while (s < e && isspace((unsigned char)*s))
                s++;
        while (e > s && isspace((unsigned char)e[-1]))
                e--;
        if (s < e && (*s == '+' || *s == '-'))
                neg = *s++ == '-';
        for (; s < e; s++) {
                if (*s == '_' && digit && s + 1 < e && isdigit((unsigned char)s[1]))
                        continue;
                if (!isdigit((unsigned char)*s))
                        return false;
                digit = true;
                if (v < 100000000)
                        v = v * 10 + (*s - '0');
        }
        if (!digit)
                return false;
        *ret = neg ? -v : v;
        return true;
}

/* rest_parse_postgres_version - see the header. */
int rest_parse_postgres_version(const char *v, unsigned *ret, char **reterr_message) {
        long long c[3] = {};
        size_t n = 0;
        const char *p = v;
        char digits[64] = "";

        /* Every component must be an int (else "Invalid PostgreSQL version"), then the count is checked. */
        for (;;) {
                const char *dot = strchrnul(p, '.');
                long long x;
                if (!py_int(p, (size_t)(dot - p), &x) || x < 0) {
                        if (reterr_message &&
                            asprintf(reterr_message, "Invalid PostgreSQL version: %s", v) < 0)
                                *reterr_message = NULL;
                        return -EINVAL;
                }
                if (n < ELEMENTSOF(c))
                        c[n] = x;
                n++;
                if (!*dot)
                        break;
                p = dot + 1;
        }
        if (n < 2 || (n == 2 && c[0] < 10) || n > 3) {
                if (reterr_message &&
                    asprintf(
                            reterr_message,
                            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s",
                            v) < 0)
                        *reterr_message = NULL;
                return -EINVAL;
        }
        if (n == 2) {
                c[2] = c[1];
                c[1] = 0;
        }
        for (size_t i = 0; i < 3; i++) {
                size_t l = strlen(digits);
                snprintf(digits + l, sizeof digits - l, "%02lld", c[i]);
        }
        unsigned long long u = strtoull(digits, NULL, 10);
        *ret = u > UINT32_MAX ? UINT32_MAX : (unsigned)u;
        return 0;
}

static bool take_digits(const char **p, int n, int *ret) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char)(*p)[i]))
                        return false;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return true;
}

/* rest_parse_timestamp - see the header. Accepts YYYY-MM-DD, then optionally [T or blank]HH:MM[:SS[.f]],
 * then optionally blanks and Z, UTC, GMT or ±HH[[:]MM]. Times before the epoch come back as 0. */
int rest_parse_timestamp(const char *s, usec_t *ret) {
        struct tm tm = {};
        int year, mon, day, hour = 0, min = 0, sec = 0, usec = 0, off = 0;
        bool has_tz = false;
        const char *p = skip_space(s);

        if (!take_digits(&p, 4, &year) || *p++ != '-' || !take_digits(&p, 2, &mon) || *p++ != '-' ||
            !take_digits(&p, 2, &day))
                return -EINVAL;
        if (*p == 'T' || *p == 't' || (*p == ' ' && isdigit((unsigned char)p[1]))) {
                p++;
                if (!take_digits(&p, 2, &hour) || *p++ != ':' || !take_digits(&p, 2, &min))
                        return -EINVAL;
                if (*p == ':') {
                        p++;
                        if (!take_digits(&p, 2, &sec))
                                return -EINVAL;
                        if (*p == '.' || *p == ',') {
                                int scale = 100000;
                                p++;
                                if (!isdigit((unsigned char)*p))
                                        return -EINVAL;
                                for (; isdigit((unsigned char)*p); p++, scale /= 10)
                                        usec += (*p - '0') * scale;
                        }
                }
        }
        p = skip_space(p);
        if (*p == 'Z' || *p == 'z') {
                has_tz = true;
                p++;
        } else if (startswith(p, "UTC") || startswith(p, "GMT")) {
                has_tz = true;
                p += 3;
        } else if (*p == '+' || *p == '-') {
                int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
                if (!take_digits(&p, 2, &oh))
                        return -EINVAL;
                if (*p == ':')
                        p++;
                if (isdigit((unsigned char)*p) && !take_digits(&p, 2, &om))
                        return -EINVAL;
                if (oh > 23 || om > 59)
                        return -EINVAL;
                off = sign * (oh * 3600 + om * 60);
                has_tz = true;
        }
        if (*skip_space(p) != '\0')
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59 || year < 1)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        time_t t = timegm(&tm);
        if (t == (time_t)-1 || tm.tm_mday != day)
                return -EINVAL;
        if (!has_tz)
                return -ENOMSG;
        t -= off;
        /* Before the epoch: certainly in the past, which is what callers check. */
        *ret = t < 0 ? 0 : (usec_t)t * USEC_PER_SEC + (usec_t)usec;
        return 0;
}

/* str(a) != str(b) as patch_config compares scalars. */
static bool python_str_differs(const cJSON *a, const cJSON *b) {
        _cleanup_free_ char *sa = python_str(a), *sb = python_str(b);
        return !sa || !sb || !streq(sa, sb);
}

/* rest_config_patch - see the header. Returns 1/0, or -ENOMEM (config may then be partly patched). */
int rest_config_patch(cJSON *config, const cJSON *patch) {
        const cJSON *v;
        int changed = 0;

        cJSON_ArrayForEach (v, patch) {
                cJSON *cur = cJSON_GetObjectItemCaseSensitive(config, v->string);

                if (cJSON_IsNull(v)) {
                        if (cur) {
                                if (!cJSON_IsNull(cur))
                                        changed = 1;
                                cJSON_DeleteItemFromObjectCaseSensitive(config, v->string);
                        }
                        continue;
                }
                if (cur && cJSON_IsObject(v) && cJSON_IsObject(cur)) {
                        int r = rest_config_patch(cur, v);
                        if (r < 0)
                                return r;
                        changed |= r;
                        continue;
                }
                if (cur && !cJSON_IsObject(v) && !python_str_differs(cur, v))
                        continue;
                cJSON *copy = cJSON_Duplicate(v, true);
                if (!copy)
                        return -ENOMEM;
                if (cur)
                        cJSON_ReplaceItemInObjectCaseSensitive(config, v->string, copy);
                else
                        cJSON_AddItemToObject(config, v->string, copy);
                changed = 1;
        }
        return changed;
}
