/* SPDX-License-Identifier: MIT */
/*
 * Strict string-to-value parsers: integers (decimal only, no junk, no overflow, no empty input),
 * Patroni/PostgreSQL-style booleans, durations and sizes with units. Every function returns 0 and sets
 * *ret only on success, -EINVAL for malformed input and -ERANGE for values out of the type's range.
 * Non-logging library code.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pgha/macro.h"

/* safe_atoi/safe_atou/safe_atou64/safe_atolli - decimal integers; leading/trailing blanks are rejected,
 * a leading '+' is allowed, '-' is rejected by the unsigned variants (even "-0"). */
int safe_atoi(const char *s, int *ret);
int safe_atou(const char *s, unsigned *ret);
int safe_atou64(const char *s, uint64_t *ret);
int safe_atolli(const char *s, long long *ret);

/* parse_boolean - Patroni's boolean words, case-insensitive: on/true/yes/1 → true (1) and
 * off/false/no/0 → false (0). Returns 1, 0 or -EINVAL (the value itself, no out-parameter). */
int parse_boolean(const char *s);

/* parse_duration - a plain non-negative integer is seconds; otherwise an integer followed by one of
 * PostgreSQL's time units "us", "ms", "s", "min", "h", "d" (case-sensitive, optional blanks between
 * number and unit), e.g. "10", "10s", "500ms", "1min", "1h", "1d". Fractions are rejected. */
int parse_duration(const char *s, usec_t *ret);

/* parse_size - a plain non-negative integer is bytes; otherwise an integer followed by one of
 * PostgreSQL's memory units "B", "kB", "MB", "GB", "TB" (case-sensitive, 1024-based, optional blanks),
 * e.g. "1048576", "1MB", "1GB". */
int parse_size(const char *s, uint64_t *ret);

/* parse_port - a decimal TCP port 1..65535. */
int parse_port(const char *s, uint16_t *ret);
