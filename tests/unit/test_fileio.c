/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "pgha/fileio.h"
#include "tests.h"

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/pgha-test-fileio-XXXXXX");
        ASSERT_NOT_NULL(d);
        ASSERT_NOT_NULL(mkdtemp(d));
        return d;
}

TEST(atomic_write_then_read_back) {
        _cleanup_free_ char *dir = make_tmpdir(), *path = NULL, *data = NULL;
        struct stat st;
        size_t size;

        ASSERT_TRUE(asprintf(&path, "%s/f", dir) > 0);
        ASSERT_OK(write_file_atomic(path, "hello\n", 6, 0600));
        ASSERT_OK(read_full_file(path, 1024, &data, &size));
        ASSERT_STREQ(data, "hello\n");
        ASSERT_EQ(size, 6);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 0777, 0600);

        /* Replacing keeps no temp file behind. */
        ASSERT_OK(write_file_atomic(path, "x", 1, 0644));
        free(data);
        data = NULL;
        ASSERT_OK(read_full_file(path, 1024, &data, NULL));
        ASSERT_STREQ(data, "x");
        ASSERT_OK(unlink(path));
        ASSERT_OK(rmdir(dir));
}

TEST(read_is_bounded) {
        _cleanup_free_ char *dir = make_tmpdir(), *path = NULL, *data = NULL;
        char big[10000];

        memset(big, 'a', sizeof big);
        ASSERT_TRUE(asprintf(&path, "%s/big", dir) > 0);
        ASSERT_OK(write_file_atomic(path, big, sizeof big, 0600));
        ASSERT_ERROR(read_full_file(path, 9999, &data, NULL), EFBIG);
        ASSERT_NULL(data);
        ASSERT_OK(read_full_file(path, 10000, &data, NULL));
        ASSERT_EQ(strlen(data), 10000);
        ASSERT_ERROR(read_full_file("/nonexistent/pgha", 10, &data, NULL), ENOENT);
        ASSERT_OK(unlink(path));
        ASSERT_OK(rmdir(dir));
}

DEFINE_TEST_MAIN
