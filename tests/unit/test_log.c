/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "pgha/fileio.h"
#include "pgha/log.h"
#include "tests.h"

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/pgha-test-log-XXXXXX");
        ASSERT_NOT_NULL(d);
        ASSERT_NOT_NULL(mkdtemp(d));
        return d;
}

/* Removes dir and the plain files in it (the tests create no subdirectories). */
static void remove_tmpdir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        ASSERT_NOT_NULL(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                ASSERT_TRUE(asprintf(&path, "%s/%s", dir, de->d_name) > 0);
                ASSERT_OK(unlink(path));
        }
        closedir(d);
        ASSERT_OK(rmdir(dir));
}

/* Redirects stderr into dir/stderr until capture_end(), which returns what was written. */
static int saved_stderr = -1;
static char capture_path[256];

static void capture_begin(const char *dir) {
        int fd;

        fflush(stderr);
        ASSERT_TRUE(
                (size_t)snprintf(capture_path, sizeof capture_path, "%s/stderr", dir) < sizeof capture_path);
        fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        saved_stderr = dup(STDERR_FILENO);
        ASSERT_TRUE(saved_stderr >= 0);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        close(fd);
}

static char *capture_end(void) {
        char *data = NULL;

        fflush(stderr);
        ASSERT_TRUE(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
        saved_stderr = safe_close(saved_stderr);
        ASSERT_OK(read_full_file(capture_path, 1 << 20, &data, NULL));
        return data;
}

static bool matches(const char *text, const char *pattern) {
        regex_t re;
        bool m;

        ASSERT_EQ(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
        m = regexec(&re, text, 0, NULL, 0) == 0;
        regfree(&re);
        if (!m)
                fprintf(stderr, "  no match for /%s/ in:\n%s", pattern, text);
        return m;
}

static void check_format_error(const char *format, const char *needle) {
        char problem[256] = "";

        ASSERT_ERROR(log_format_check(format, problem, sizeof problem), EINVAL);
        if (!strstr(problem, needle))
                TEST_FAIL(
                        "log_format_check(\"%s\"): \"%s\" does not mention \"%s\"", format, problem, needle);
        ASSERT_ERROR(log_set_format(format, NULL), EINVAL);
}

TEST(format_check) {
        char problem[256];

        ASSERT_OK(log_format_check(LOG_FORMAT_DEFAULT, problem, sizeof problem));
        ASSERT_OK(log_format_check("%(asctime)s %(name)s %(levelname)-8s %(message)s", NULL, 0));
        ASSERT_OK(log_format_check(
                "%(created)f %(msecs)03d %(process)d %(thread)d %(threadName)s "
                "%(processName)s %(relativeCreated)d %(pathname)s %(filename)s "
                "%(module)s %(funcName)s:%(lineno)d %(levelno)s 100%% %(message).20s",
                NULL,
                0));

        check_format_error("%(asctime)s %(exc_text)s", "unsupported field %(exc_text)");
        check_format_error("%(message)", "no conversion character");
        check_format_error("%(message)r", "unsupported conversion 'r'");
        check_format_error("%(levelname)d", "is text");
        check_format_error("%(message", "unterminated");
        check_format_error("50% %(message)s", "not followed by '(name)'");
        check_format_error("just text", "no %(name)s field");
        check_format_error("", "no %(name)s field");
}

TEST(stderr_layouts) {
        _cleanup_free_ char *dir = make_tmpdir(), *out = NULL;

        log_set_force_stderr(true);
        log_set_max_level(LOG_INFO);
        ASSERT_OK(log_set_format(NULL, NULL));
        capture_begin(dir);
        log_info("default %d", 1);
        log_debug("not shown");
        ASSERT_OK(log_set_format(
                "[%(levelname)-8s|%(levelno)s] %(name)s %(module)s %(filename)s "
                "%(funcName)s:%(lineno)d %(process)d %(message).5s|%(msecs)03d 100%%",
                NULL));
        log_warning("truncated message");
        ASSERT_OK(log_set_format("%(asctime)s %(levelname)s %(message)s", "%d/%m/%Y %Hh"));
        log_error("dated");
        ASSERT_OK(
                log_set_format("%(created)14.2f|%(levelno)5d|%(levelno)-5d|%(lineno)05d|%(message)s", NULL));
        log_info("numbers");
        out = capture_end();
        ASSERT_OK(log_set_format(NULL, NULL));

        ASSERT_TRUE(matches(
                out, "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} INFO: default 1$"));
        ASSERT_FALSE(strstr(out, "not shown"));
        ASSERT_TRUE(
                matches(out,
                        "^\\[WARNING \\|30\\] pgha\\.test_log test_log test_log\\.c "
                        "test_stderr_layouts:[0-9]+ [0-9]+ trunc\\|[0-9]{3} 100%$"));
        ASSERT_TRUE(matches(out, "^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}h ERROR dated$"));
        ASSERT_TRUE(matches(out, "^ *[0-9]{10}\\.[0-9]{2}\\|   20\\|20   \\|[0-9]{5}\\|numbers$"));
        remove_tmpdir(dir);
}

static uint64_t file_size(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return UINT64_MAX;
        return (uint64_t)st.st_size;
}

TEST(file_and_rotation) {
        _cleanup_free_ char *dir = make_tmpdir(), *out = NULL, *cur = NULL, *one = NULL, *two = NULL,
                            *path = NULL, *p1 = NULL, *p2 = NULL, *p3 = NULL;
        const size_t max_size = 300;

        ASSERT_TRUE(asprintf(&path, "%s/patroni.log", dir) > 0);
        ASSERT_TRUE(asprintf(&p1, "%s.1", path) > 0);
        ASSERT_TRUE(asprintf(&p2, "%s.2", path) > 0);
        ASSERT_TRUE(asprintf(&p3, "%s.3", path) > 0);

        log_set_force_stderr(true);
        log_set_max_level(LOG_INFO);
        ASSERT_OK(log_set_format("%(levelname)s %(message)s", NULL));
        capture_begin(dir);
        ASSERT_OK(log_set_file(dir, max_size, 2));
        ASSERT_STREQ(log_get_file(), path);
        ASSERT_EQ(log_get_target(), LOG_TARGET_FILE);
        /* 40 lines of 27 bytes: 1080 bytes through a 300-byte file (11 lines each) keeping two old ones. */
        for (int i = 0; i < 40; i++)
                log_info("line %03d padded to 25", i);
        ASSERT_OK(log_set_file(NULL, 0, 0));
        ASSERT_NULL(log_get_file());
        log_info("back on stderr");
        out = capture_end();

        /* Nothing but the last line reached stderr. */
        ASSERT_STREQ(out, "INFO back on stderr\n");
        /* Each file stays below max_size (RotatingFileHandler rolls over before reaching it). */
        ASSERT_TRUE(file_size(path) < max_size);
        ASSERT_TRUE(file_size(p1) < max_size && file_size(p1) >= max_size - 27);
        ASSERT_TRUE(file_size(p2) < max_size && file_size(p2) >= max_size - 27);
        ASSERT_EQ(file_size(p3), UINT64_MAX);
        /* Newest in patroni.log, older in .1, older still in .2, in order, no line lost between them. */
        ASSERT_OK(read_full_file(path, 1 << 20, &cur, NULL));
        ASSERT_OK(read_full_file(p1, 1 << 20, &one, NULL));
        ASSERT_OK(read_full_file(p2, 1 << 20, &two, NULL));
        ASSERT_TRUE(endswith(cur, "INFO line 039 padded to 25\n"));
        ASSERT_TRUE(startswith(cur, "INFO line 033 padded to 25\n"));
        ASSERT_TRUE(endswith(one, "INFO line 032 padded to 25\n"));
        ASSERT_TRUE(startswith(one, "INFO line 022 padded to 25\n"));
        ASSERT_TRUE(endswith(two, "INFO line 021 padded to 25\n"));

        /* Reopening an existing file appends to it and counts its size. */
        ASSERT_OK(log_set_file(dir, max_size, 2));
        log_info("appended");
        ASSERT_OK(log_set_file(NULL, 0, 0));
        cur = mfree(cur);
        ASSERT_OK(read_full_file(path, 1 << 20, &cur, NULL));
        ASSERT_TRUE(startswith(cur, "INFO line 033 padded to 25\n"));
        ASSERT_TRUE(endswith(cur, "INFO line 039 padded to 25\nINFO appended\n"));

        /* A directory that cannot be opened keeps the previous output. */
        ASSERT_ERROR(log_set_file("/nonexistent/pgha", max_size, 2), ENOENT);
        ASSERT_NULL(log_get_file());
        ASSERT_OK(log_set_format(NULL, NULL));
        remove_tmpdir(dir);
}

TEST(journal_stream_detection) {
        _cleanup_free_ char *dir = make_tmpdir(), *out = NULL, *value = NULL;
        const char *saved = getenv("JOURNAL_STREAM");
        _cleanup_free_ char *saved_copy = saved ? strdup(saved) : NULL;
        struct stat st;

        ASSERT_OK(log_set_file(NULL, 0, 0));
        capture_begin(dir);
        ASSERT_OK(fstat(STDERR_FILENO, &st));

        /* JOURNAL_STREAM naming stderr's device and inode: the journal back-end. */
        ASSERT_TRUE(
                asprintf(&value, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino) >
                0);
        ASSERT_OK(setenv("JOURNAL_STREAM", value, 1));
        log_set_force_stderr(false);
        log_open();
        ASSERT_EQ(log_get_target(), LOG_TARGET_JOURNAL);
        /* ... unless stderr is forced (pghactl, tests). */
        log_set_force_stderr(true);
        ASSERT_EQ(log_get_target(), LOG_TARGET_STDERR);
        log_set_force_stderr(false);
        ASSERT_EQ(log_get_target(), LOG_TARGET_JOURNAL);

        /* Another inode (stderr was redirected after systemd set the variable), another device, garbage,
         * or no variable: stderr. */
        value = mfree(value);
        ASSERT_TRUE(
                asprintf(
                        &value,
                        "%llu:%llu",
                        (unsigned long long)st.st_dev,
                        (unsigned long long)st.st_ino + 1) > 0);
        ASSERT_OK(setenv("JOURNAL_STREAM", value, 1));
        log_open();
        ASSERT_EQ(log_get_target(), LOG_TARGET_STDERR);
        value = mfree(value);
        ASSERT_TRUE(
                asprintf(
                        &value,
                        "%llu:%llu",
                        (unsigned long long)st.st_dev + 1,
                        (unsigned long long)st.st_ino) > 0);
        ASSERT_OK(setenv("JOURNAL_STREAM", value, 1));
        log_open();
        ASSERT_EQ(log_get_target(), LOG_TARGET_STDERR);
        ASSERT_OK(setenv("JOURNAL_STREAM", "not-a-stream", 1));
        log_open();
        ASSERT_EQ(log_get_target(), LOG_TARGET_STDERR);
        ASSERT_OK(unsetenv("JOURNAL_STREAM"));
        log_open();
        ASSERT_EQ(log_get_target(), LOG_TARGET_STDERR);

        /* log.dir wins over the journal, as Patroni's file handler replaces its stream handler. */
        value = mfree(value);
        ASSERT_TRUE(
                asprintf(&value, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino) >
                0);
        ASSERT_OK(setenv("JOURNAL_STREAM", value, 1));
        log_open();
        ASSERT_OK(log_set_file(dir, 1000, 1));
        ASSERT_EQ(log_get_target(), LOG_TARGET_FILE);
        ASSERT_OK(log_set_file(NULL, 0, 0));
        ASSERT_EQ(log_get_target(), LOG_TARGET_JOURNAL);

        out = capture_end();
        ASSERT_STREQ(out, "");

        if (saved_copy)
                ASSERT_OK(setenv("JOURNAL_STREAM", saved_copy, 1));
        else
                ASSERT_OK(unsetenv("JOURNAL_STREAM"));
        log_set_force_stderr(true);
        remove_tmpdir(dir);
}

/* In a child with a private mount namespace: a datagram socket at journald's path stands in for
 * journald, stderr is a file named by JOURNAL_STREAM, and one message must arrive there with its
 * structured fields and not on stderr. Exit status: 0 passed, 77 no namespace (not root), else the
 * number of the failed check. */
static int journal_child(const char *dir) {
        union {
                struct sockaddr_un un;
                struct sockaddr sa;
        } addr = {.un = {.sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket"}};
        const char *fields[] = {"PGHA_MEMBER=node1", NULL};
        static const char *const expected[] = {
                "MESSAGE=to the journal 7\n",
                "PRIORITY=4\n",
                "CODE_FILE=" __FILE__ "\n",
                "CODE_FUNC=journal_child\n",
                "ERRNO=2\n",
                "PGHA_MEMBER=node1\n",
        };
        char value[64], buf[4096];
        struct stat st;
        ssize_t n;
        int fd;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
                return 77;
        if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0)
                return 1;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, &addr.sa, sizeof addr.un) < 0)
                return 2;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 3;
        (void)snprintf(
                value,
                sizeof value,
                "%llu:%llu",
                (unsigned long long)st.st_dev,
                (unsigned long long)st.st_ino);
        if (setenv("JOURNAL_STREAM", value, 1) < 0)
                return 4;
        log_set_force_stderr(false);
        log_open();
        if (log_get_target() != LOG_TARGET_JOURNAL)
                return 5;
        (void)log_fields(LOG_WARNING, ENOENT, fields, "to the journal %d", 7);
        n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n <= 0)
                return 6;
        buf[n] = 0;
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                if (!strstr(buf, expected[i])) {
                        fprintf(stdout, "  journal datagram lacks %s:\n%s\n", expected[i], buf);
                        return 10 + (int)i;
                }
        if (!matches(buf, "^CODE_LINE=[0-9]+$"))
                return 20;
        (void)dir;
        return 0;
}

TEST(journal_fields) {
        _cleanup_free_ char *dir = make_tmpdir(), *out = NULL;
        int status;
        pid_t pid;

        ASSERT_OK(log_set_file(NULL, 0, 0));
        ASSERT_OK(log_set_format(NULL, NULL));
        capture_begin(dir);
        fflush(stdout);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0)
                _exit(journal_child(dir));
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        out = capture_end();
        ASSERT_TRUE(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) {
                printf("  skipped: no private mount namespace (needs root)\n");
                remove_tmpdir(dir);
                return;
        }
        ASSERT_EQ(WEXITSTATUS(status), 0);
        /* Sent to the journal, so nothing on stderr. */
        ASSERT_STREQ(out, "");
        remove_tmpdir(dir);
}

DEFINE_TEST_MAIN
