/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "pgha/config.h"
#include "pgha/fileio.h"
#include "tests.h"

extern char **environ;

static void clear_patroni_env(void) {
        for (;;) {
                char name[256] = "";

                for (char **e = environ; e && *e; e++)
                        if (startswith(*e, "PATRONI_")) {
                                size_t l = strcspn(*e, "=");
                                if (l < sizeof(name)) {
                                        memcpy(name, *e, l);
                                        name[l] = '\0';
                                }
                                break;
                        }
                if (!name[0])
                        return;
                unsetenv(name);
        }
}

static char *diagnostics_text(const ConfigDiagnostics *d) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        config_diagnostics_print(d, f);
        fclose(f);
        return buf;
}

static int yml_filter(const struct dirent *de) {
        return endswith(de->d_name, ".yml");
}

/* Every tests/fixtures/config/NAME.yml is loaded and its printed diagnostics must equal NAME.expected
 * byte for byte; config_load() must fail exactly when an error line is expected. With
 * PGHA_UPDATE_FIXTURES=1 the expected files are (re)written instead. */
TEST(fixtures) {
        struct dirent **names = NULL;
        unsigned checked = 0, failed = 0;
        bool update = getenv("PGHA_UPDATE_FIXTURES");
        int n;

        clear_patroni_env();
        ASSERT_OK(chdir(PGHA_FIXTURES_DIR));
        n = scandir("config", &names, yml_filter, alphasort);
        ASSERT_TRUE(n > 0);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *expected_path = NULL, *expected = NULL, *got = NULL;
                ConfigDiagnostics d = {};
                Config *c = NULL;
                int r;

                ASSERT_TRUE(asprintf(&path, "config/%s", names[i]->d_name) > 0);
                ASSERT_TRUE(
                        asprintf(
                                &expected_path,
                                "config/%.*s.expected",
                                (int)(strlen(names[i]->d_name) - 4),
                                names[i]->d_name) > 0);
                r = config_load(path, &c, &d);
                got = diagnostics_text(&d);
                ASSERT_NOT_NULL(got);
                if (update) {
                        ASSERT_OK(write_file_atomic(expected_path, got, strlen(got), 0644));
                } else if (read_full_file(expected_path, 1 << 20, &expected, NULL) < 0) {
                        fprintf(stderr, "  %s: missing %s\n", path, expected_path);
                        failed++;
                } else if (!streq(expected, got)) {
                        fprintf(stderr,
                                "  %s: diagnostics differ.\n--- expected\n%s--- got\n%s---\n",
                                path,
                                expected,
                                got);
                        failed++;
                }
                if ((r == -EINVAL) != config_diagnostics_has_errors(&d) || (r < 0 && r != -EINVAL) ||
                    (r == 0) != (c != NULL)) {
                        fprintf(stderr, "  %s: config_load() = %d inconsistent with diagnostics\n", path, r);
                        failed++;
                }
                config_free(c);
                config_diagnostics_done(&d);
                free(names[i]);
                checked++;
        }
        free(names);
        printf("  %u fixtures checked\n", checked);
        ASSERT_EQ(failed, 0);
        ASSERT_TRUE(update || checked >= 25);
}

DEFINE_TEST_MAIN
