/* SPDX-License-Identifier: MIT */
#include <limits.h>

#include "pgha/parse.h"
#include "tests.h"

TEST(safe_atoi) {
        int v = 7;

        ASSERT_OK(safe_atoi("42", &v));
        ASSERT_EQ(v, 42);
        ASSERT_OK(safe_atoi("-2147483648", &v));
        ASSERT_EQ(v, INT_MIN);
        ASSERT_OK(safe_atoi("+5", &v));
        ASSERT_EQ(v, 5);
        v = 7;
        ASSERT_ERROR(safe_atoi("", &v), EINVAL);
        ASSERT_ERROR(safe_atoi(NULL, &v), EINVAL);
        ASSERT_ERROR(safe_atoi("12a", &v), EINVAL);
        ASSERT_ERROR(safe_atoi(" 12", &v), EINVAL);
        ASSERT_ERROR(safe_atoi("12 ", &v), EINVAL);
        ASSERT_ERROR(safe_atoi("0x10", &v), EINVAL);
        ASSERT_ERROR(safe_atoi("-", &v), EINVAL);
        ASSERT_ERROR(safe_atoi("2147483648", &v), ERANGE);
        ASSERT_ERROR(safe_atoi("99999999999999999999999", &v), ERANGE);
        ASSERT_EQ(v, 7);
}

TEST(safe_atou) {
        unsigned u = 3;
        uint64_t u64 = 3;
        long long ll = 3;

        ASSERT_OK(safe_atou("4294967295", &u));
        ASSERT_EQ(u, 4294967295U);
        ASSERT_ERROR(safe_atou("4294967296", &u), ERANGE);
        ASSERT_ERROR(safe_atou("-1", &u), EINVAL);
        ASSERT_ERROR(safe_atou("-0", &u), EINVAL);
        ASSERT_OK(safe_atou64("18446744073709551615", &u64));
        ASSERT_U64_EQ(u64, UINT64_MAX);
        ASSERT_ERROR(safe_atou64("18446744073709551616", &u64), ERANGE);
        ASSERT_ERROR(safe_atou64("1.5", &u64), EINVAL);
        ASSERT_OK(safe_atolli("-9223372036854775808", &ll));
        ASSERT_TRUE(ll == LLONG_MIN);
        ASSERT_ERROR(safe_atolli("9223372036854775808", &ll), ERANGE);
        ASSERT_ERROR(safe_atolli("abc", &ll), EINVAL);
}

TEST(parse_boolean) {
        ASSERT_EQ(parse_boolean("on"), 1);
        ASSERT_EQ(parse_boolean("TRUE"), 1);
        ASSERT_EQ(parse_boolean("Yes"), 1);
        ASSERT_EQ(parse_boolean("1"), 1);
        ASSERT_EQ(parse_boolean("off"), 0);
        ASSERT_EQ(parse_boolean("False"), 0);
        ASSERT_EQ(parse_boolean("NO"), 0);
        ASSERT_EQ(parse_boolean("0"), 0);
        ASSERT_ERROR(parse_boolean("y"), EINVAL);
        ASSERT_ERROR(parse_boolean(""), EINVAL);
        ASSERT_ERROR(parse_boolean("2"), EINVAL);
        ASSERT_ERROR(parse_boolean(NULL), EINVAL);
}

TEST(parse_duration) {
        usec_t u = 1;

        ASSERT_OK(parse_duration("10", &u));
        ASSERT_U64_EQ(u, 10 * USEC_PER_SEC);
        ASSERT_OK(parse_duration("10s", &u));
        ASSERT_U64_EQ(u, 10 * USEC_PER_SEC);
        ASSERT_OK(parse_duration("500ms", &u));
        ASSERT_U64_EQ(u, 500 * USEC_PER_MSEC);
        ASSERT_OK(parse_duration("1min", &u));
        ASSERT_U64_EQ(u, USEC_PER_MINUTE);
        ASSERT_OK(parse_duration("2 h", &u));
        ASSERT_U64_EQ(u, 2 * USEC_PER_HOUR);
        ASSERT_OK(parse_duration("1d", &u));
        ASSERT_U64_EQ(u, USEC_PER_DAY);
        ASSERT_OK(parse_duration("7us", &u));
        ASSERT_U64_EQ(u, 7);
        ASSERT_OK(parse_duration("0", &u));
        ASSERT_U64_EQ(u, 0);
        u = 1;
        ASSERT_ERROR(parse_duration("", &u), EINVAL);
        ASSERT_ERROR(parse_duration("s", &u), EINVAL);
        ASSERT_ERROR(parse_duration("-1", &u), EINVAL);
        ASSERT_ERROR(parse_duration("10 ", &u), EINVAL);
        ASSERT_ERROR(parse_duration("10sec", &u), EINVAL);
        ASSERT_ERROR(parse_duration("10S", &u), EINVAL);
        ASSERT_ERROR(parse_duration("1.5s", &u), EINVAL);
        ASSERT_ERROR(parse_duration("99999999999999999999", &u), ERANGE);
        ASSERT_ERROR(parse_duration("999999999999999d", &u), ERANGE);
        ASSERT_U64_EQ(u, 1);
}

TEST(parse_size) {
        uint64_t v = 1;

        ASSERT_OK(parse_size("1048576", &v));
        ASSERT_U64_EQ(v, 1048576);
        ASSERT_OK(parse_size("1MB", &v));
        ASSERT_U64_EQ(v, 1048576);
        ASSERT_OK(parse_size("1GB", &v));
        ASSERT_U64_EQ(v, 1073741824ULL);
        ASSERT_OK(parse_size("8kB", &v));
        ASSERT_U64_EQ(v, 8192);
        ASSERT_OK(parse_size("2TB", &v));
        ASSERT_U64_EQ(v, 2ULL << 40);
        ASSERT_OK(parse_size("5 B", &v));
        ASSERT_U64_EQ(v, 5);
        v = 1;
        ASSERT_ERROR(parse_size("1mb", &v), EINVAL);
        ASSERT_ERROR(parse_size("1KB", &v), EINVAL);
        ASSERT_ERROR(parse_size("MB", &v), EINVAL);
        ASSERT_ERROR(parse_size("-1MB", &v), EINVAL);
        ASSERT_ERROR(parse_size("", &v), EINVAL);
        ASSERT_ERROR(parse_size("16777216TB", &v), ERANGE);
        ASSERT_U64_EQ(v, 1);
}

TEST(parse_port) {
        uint16_t p = 1;

        ASSERT_OK(parse_port("8008", &p));
        ASSERT_EQ(p, 8008);
        ASSERT_OK(parse_port("65535", &p));
        ASSERT_ERROR(parse_port("0", &p), ERANGE);
        ASSERT_ERROR(parse_port("65536", &p), ERANGE);
        ASSERT_ERROR(parse_port("80a", &p), EINVAL);
}

DEFINE_TEST_MAIN
