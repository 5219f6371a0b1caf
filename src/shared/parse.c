/* SPDX-License-Identifier: MIT */
/*
 * Strict number, boolean, duration and size parsing. Invariant: a parser either consumes its whole
 * input and stores a value that fits the target type, or leaves *ret untouched and returns a negative
 * errno (-EINVAL for syntax, -ERANGE for overflow). No locale, no octal/hex surprises, no blanks.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgha/parse.h"

/* Checks the common shape: non-empty, optional sign, then only digits. */
static int check_decimal(const char *s, bool allow_minus) {
        if (isempty(s))
                return -EINVAL;
        if (*s == '-') {
                if (!allow_minus)
                        return -EINVAL;
                s++;
        } else if (*s == '+')
                s++;
        if (*s == '\0')
                return -EINVAL;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return -EINVAL;
        return 0;
}

int safe_atolli(const char *s, long long *ret) {
        char *end = NULL;
        long long v;
        int r;

        r = check_decimal(s, true);
        if (r < 0)
                return r;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atoi(const char *s, int *ret) {
        long long v;
        int r;

        r = safe_atolli(s, &v);
        if (r < 0)
                return r;
        if (v < INT_MIN || v > INT_MAX)
                return -ERANGE;
        *ret = (int)v;
        return 0;
}

int safe_atou64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end = NULL;
        int r;

        r = check_decimal(s, false);
        if (r < 0)
                return r;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || !end || *end != '\0')
                return -EINVAL;
        *ret = (uint64_t)v;
        return 0;
}

int safe_atou(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -ERANGE;
        *ret = (unsigned)v;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = {"on", "true", "yes", "1"},
                                 *const no[] = {"off", "false", "no", "0"};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

typedef struct UnitFactor {
        const char *unit;
        uint64_t factor;
} UnitFactor;

/* Splits "<digits>[blanks]<unit>" and multiplies by the unit's factor, checking overflow. */
static int parse_with_units(const char *s, const UnitFactor *units, size_t n_units, uint64_t *ret) {
        char digits[32];
        const char *p, *unit;
        uint64_t v;
        size_t l;
        int r;

        if (isempty(s))
                return -EINVAL;
        p = s;
        if (*p == '+')
                p++;
        for (l = 0; p[l] >= '0' && p[l] <= '9'; l++)
                ;
        if (l == 0)
                return -EINVAL;
        if (l >= sizeof(digits))
                return -ERANGE;
        memcpy(digits, p, l);
        digits[l] = '\0';
        r = safe_atou64(digits, &v);
        if (r < 0)
                return r;

        unit = p + l;
        while (*unit == ' ' || *unit == '\t')
                unit++;
        if (unit != p + l && *unit == '\0')
                return -EINVAL; /* trailing blanks without a unit */

        for (size_t i = 0; i < n_units; i++)
                if (streq(unit, units[i].unit)) {
                        if (units[i].factor != 0 && v > UINT64_MAX / units[i].factor)
                                return -ERANGE;
                        *ret = v * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

int parse_duration(const char *s, usec_t *ret) {
        static const UnitFactor units[] = {
                {"", USEC_PER_SEC},
                {"us", 1},
                {"ms", USEC_PER_MSEC},
                {"s", USEC_PER_SEC},
                {"min", USEC_PER_MINUTE},
                {"h", USEC_PER_HOUR},
                {"d", USEC_PER_DAY},
        };
        uint64_t v;
        int r;

        r = parse_with_units(s, units, ELEMENTSOF(units), &v);
        if (r < 0)
                return r;
        if (v == USEC_INFINITY)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const UnitFactor units[] = {
                {"", 1},
                {"B", 1},
                {"kB", 1024ULL},
                {"MB", 1024ULL * 1024},
                {"GB", 1024ULL * 1024 * 1024},
                {"TB", 1024ULL * 1024 * 1024 * 1024},
        };

        return parse_with_units(s, units, ELEMENTSOF(units), ret);
}

int parse_port(const char *s, uint16_t *ret) {
        unsigned v;
        int r;

        r = safe_atou(s, &v);
        if (r < 0)
                return r;
        if (v == 0 || v > 65535)
                return -ERANGE;
        *ret = (uint16_t)v;
        return 0;
}
