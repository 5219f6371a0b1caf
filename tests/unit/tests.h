/* SPDX-License-Identifier: MIT */
/*
 * A minimal unit-test harness in systemd's style: TEST(name) { ... } registers a case, DEFINE_TEST_MAIN
 * runs them all (or those named on the command line) and prints one "N passed, N failed" line.
 * ASSERT_* print the file, line and both values, then abort the current case only.
 */
#pragma once

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgha/fileio.h"
#include "pgha/macro.h"

typedef struct TestCase {
        const char *name;
        void (*func)(void);
} TestCase;

#define TESTS_MAX 512
extern TestCase test_cases[TESTS_MAX];
extern size_t test_cases_n;
extern jmp_buf test_jmp;

#define TEST(n)                                                                \
        static void test_##n(void);                                            \
        __attribute__((constructor)) static void test_register_##n(void) {     \
                if (test_cases_n < TESTS_MAX)                                  \
                        test_cases[test_cases_n++] = (TestCase){#n, test_##n}; \
        }                                                                      \
        static void test_##n(void)

#define TEST_FAIL(...)                                            \
        do {                                                      \
                fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                     \
                fputc('\n', stderr);                              \
                longjmp(test_jmp, 1);                             \
        } while (0)

#define ASSERT_TRUE(e)                                         \
        do {                                                   \
                if (!(e))                                      \
                        TEST_FAIL("assertion failed: %s", #e); \
        } while (0)
#define ASSERT_FALSE(e) ASSERT_TRUE(!(e))

#define ASSERT_OK(e)                                                                     \
        do {                                                                             \
                long long _r_ = (long long)(e);                                          \
                if (_r_ < 0)                                                             \
                        TEST_FAIL("%s failed: %lld (%s)", #e, _r_, strerror((int)-_r_)); \
        } while (0)

#define ASSERT_ERROR(e, err)                                                                  \
        do {                                                                                  \
                long long _r_ = (long long)(e);                                               \
                if (_r_ != -(long long)(err))                                                 \
                        TEST_FAIL("%s = %lld, expected -%s (%d)", #e, _r_, #err, (int)(err)); \
        } while (0)

#define ASSERT_EQ(a, b)                                                        \
        do {                                                                   \
                long long _a_ = (long long)(a), _b_ = (long long)(b);          \
                if (_a_ != _b_)                                                \
                        TEST_FAIL("%s == %s: %lld != %lld", #a, #b, _a_, _b_); \
        } while (0)

#define ASSERT_U64_EQ(a, b)                                                               \
        do {                                                                              \
                uint64_t _a_ = (uint64_t)(a), _b_ = (uint64_t)(b);                        \
                if (_a_ != _b_)                                                           \
                        TEST_FAIL("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, _a_, _b_); \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                                 \
        do {                                                                                               \
                const char *_a_ = (a), *_b_ = (b);                                                         \
                if (!streq_ptr(_a_, _b_))                                                                  \
                        TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, _a_ ?: "(null)", _b_ ?: "(null)"); \
        } while (0)

#define ASSERT_NULL(p)     ASSERT_TRUE((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT_TRUE((p) != NULL)

/* The directory holding tests/fixtures, baked in by CMake. */
#ifndef PGHA_FIXTURES_DIR
#define PGHA_FIXTURES_DIR "tests/fixtures"
#endif

/* What print writes, as a heap string. */
static inline char *test_render(void (*print)(FILE *f)) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        ASSERT_NOT_NULL(f);
        print(f);
        ASSERT_EQ(fclose(f), 0);
        return buf;
}

/* Fails the case when the committed file at path (a generated document: docs/fsm.md, the man page) is
 * not exactly what print writes, and says how to regenerate it. */
static inline void test_compare_with_file(const char *path, void (*print)(FILE *f), const char *regenerate) {
        _cleanup_free_ char *want = NULL, *got = test_render(print);
        int r = read_full_file(path, 1024 * 1024, &want, NULL);

        if (r < 0)
                TEST_FAIL("cannot read %s (%s); regenerate with: %s", path, strerror(-r), regenerate);
        if (!streq(got, want)) {
                fprintf(stderr, "%s is out of date; regenerate with: %s\n", path, regenerate);
                TEST_FAIL("%s differs from what its generator prints", path);
        }
}

/* Runs one case; kept apart from main so no local of main lives across setjmp/longjmp. */
static inline bool test_run_one(const TestCase *t) {
        if (setjmp(test_jmp) != 0) {
                printf("FAIL %s\n", t->name);
                return false;
        }
        t->func();
        printf("ok   %s\n", t->name);
        return true;
}

#define DEFINE_TEST_MAIN                                                                   \
        TestCase test_cases[TESTS_MAX];                                                    \
        size_t test_cases_n = 0;                                                           \
        jmp_buf test_jmp;                                                                  \
        int main(int argc, char **argv) {                                                  \
                unsigned passed = 0, failed = 0;                                           \
                for (size_t i = 0; i < test_cases_n; i++) {                                \
                        bool selected = argc <= 1;                                         \
                        for (int a = 1; a < argc; a++)                                     \
                                selected = selected || streq(argv[a], test_cases[i].name); \
                        if (!selected)                                                     \
                                continue;                                                  \
                        if (test_run_one(&test_cases[i]))                                  \
                                passed++;                                                  \
                        else                                                               \
                                failed++;                                                  \
                        fflush(stdout);                                                    \
                }                                                                          \
                printf("%u passed, %u failed\n", passed, failed);                          \
                return failed == 0 && passed > 0 ? 0 : 1;                                  \
        }
