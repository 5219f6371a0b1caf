/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of pghactl's option parser (src/ctl/ctl_args.c): options and positional arguments in any
 * order, aliases, "--name=value", "-xVALUE", bundled flags, "--", repeated options, the positional
 * layout (a `many` argument between required ones), checks of values, and bad input, which must give
 * exactly one "Error: ..." line on stderr. The last cases run the built pghactl itself to check that
 * bad input exits with code 1 and that one line, before any configuration or etcd is needed.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/ctl/ctl_args.c"
#include "../../src/ctl/ctl_cluster.c"
#include "../../src/ctl/ctl_config.c"
#include "../../src/ctl/ctl_format.c"
#include "../../src/ctl/ctl_net.c"
#include "tests.h"

static const CtlOption opt_leader = {
        CTL_SLOT_LEADER, 0, {"leader", "primary", "master"}, CTL_OPTION_VALUE, "TEXT", "leader", NULL};
static const CtlOption opt_extended = {CTL_SLOT_EXTENDED, 'e', {"extended"}, 0, NULL, "extended", NULL};
static const CtlOption opt_timestamp = {CTL_SLOT_TIMESTAMP, 't', {"timestamp"}, 0, NULL, "ts", NULL};
static const CtlOption opt_set = {
        CTL_SLOT_SET, 's', {"set"}, CTL_OPTION_VALUE | CTL_OPTION_REPEAT, "TEXT", "set", NULL};
static const CtlOption *const options[] = {
        &ctl_option_group,
        &ctl_option_force,
        &ctl_option_format,
        &ctl_option_role,
        &ctl_option_watch_default,
        &ctl_option_watch,
        &opt_leader,
        &opt_extended,
        &opt_timestamp,
        &opt_set,
};
static const char *const targets[] = {"restart", "switchover", NULL};
static const CtlPositional flush_like[] = {
        {.name = "CLUSTER_NAME", .required = true},
        {.name = "MEMBER_NAMES", .many = true},
        {.name = "TARGET", .required = true, .choices = targets},
};
static const CtlPositional one_optional[] = {{.name = "CLUSTER_NAME"}};

static const CtlCommandSpec flush_spec = {"flush", options, ELEMENTSOF(options), flush_like, 3, false};
static const CtlCommandSpec simple_spec = {"simple", options, ELEMENTSOF(options), one_optional, 1, false};
static const CtlCommandSpec global_spec = {"pghactl", options, ELEMENTSOF(options), NULL, 0, true};

/* Parses argv (NULL-terminated) with stderr captured into *ret_err. */
static int parse_captured(const CtlCommandSpec *spec, char **argv, CtlArgs *a, char **ret_err) {
        char path[] = "/tmp/test-ctl-args-XXXXXX";
        int fd = mkstemp(path), saved, argc = 0, r;
        char *text = NULL;
        size_t n = 0;
        FILE *f;

        if (fd < 0)
                return -errno;
        unlink(path);
        while (argv[argc])
                argc++;
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        dup2(fd, STDERR_FILENO);
        r = ctl_args_parse(spec, argc, argv, a);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        lseek(fd, 0, SEEK_SET);
        f = fdopen(fd, "r");
        text = calloc(1, 4096);
        if (f && text)
                n = fread(text, 1, 4095, f);
        text[n] = '\0';
        if (f)
                fclose(f);
        *ret_err = text;
        return r;
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

static void expect_error(const CtlCommandSpec *spec, char **argv, const char *message) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL, *expected = NULL;

        ASSERT_ERROR(parse_captured(spec, argv, &a, &err), EINVAL);
        ASSERT_TRUE(asprintf(&expected, "Error: %s\n", message) > 0);
        ASSERT_STREQ(err, expected);
}

TEST(options_and_positionals_mixed) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL;

        ASSERT_EQ(
                parse_captured(
                        &flush_spec,
                        ARGV("demo", "--force", "n1", "-r", "replica", "n2", "--group=0", "switchover"),
                        &a,
                        &err),
                0);
        ASSERT_STREQ(err, "");
        ASSERT_STREQ(a.positional[0], "demo");
        ASSERT_STREQ(a.positional[2], "switchover");
        ASSERT_EQ(a.n_many, 2u);
        ASSERT_STREQ(a.many[0], "n1");
        ASSERT_STREQ(a.many[1], "n2");
        ASSERT_TRUE(a.many[2] == NULL);
        ASSERT_TRUE(ctl_args_has(&a, CTL_SLOT_FORCE));
        ASSERT_STREQ(a.value[CTL_SLOT_ROLE], "replica");
        ASSERT_STREQ(a.value[CTL_SLOT_GROUP], "0");
        ASSERT_FALSE(ctl_args_has(&a, CTL_SLOT_WATCH));
}

TEST(short_forms_aliases_and_repeats) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL;

        ASSERT_EQ(
                parse_captured(
                        &simple_spec,
                        ARGV("-et",
                             "-fjson",
                             "--master",
                             "n1",
                             "-s",
                             "a=1",
                             "--set=b=2",
                             "-sc=3",
                             "-W",
                             "--",
                             "-demo"),
                        &a,
                        &err),
                0);
        ASSERT_STREQ(err, "");
        ASSERT_TRUE(ctl_args_has(&a, CTL_SLOT_EXTENDED) && ctl_args_has(&a, CTL_SLOT_TIMESTAMP));
        ASSERT_STREQ(a.value[CTL_SLOT_FORMAT], "json");
        ASSERT_STREQ(a.value[CTL_SLOT_LEADER], "n1");
        ASSERT_EQ(a.n_values[CTL_SLOT_SET], 3u);
        ASSERT_STREQ(a.values[CTL_SLOT_SET][0], "a=1");
        ASSERT_STREQ(a.values[CTL_SLOT_SET][1], "b=2");
        ASSERT_STREQ(a.values[CTL_SLOT_SET][2], "c=3");
        ASSERT_TRUE(a.values[CTL_SLOT_SET][3] == NULL);
        ASSERT_STREQ(a.positional[0], "-demo");
        ASSERT_TRUE(ctl_watch_interval(&a) == 2);
}

TEST(value_may_start_with_a_dash_and_watch_wins) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL;

        ASSERT_EQ(parse_captured(&simple_spec, ARGV("--leader", "-x", "-w", "0.5", "-W", "-"), &a, &err), 0);
        ASSERT_STREQ(a.value[CTL_SLOT_LEADER], "-x");
        ASSERT_TRUE(ctl_watch_interval(&a) == 0.5);
        ASSERT_STREQ(a.positional[0], "-"); /* "-" alone is an argument (stdin) */
}

TEST(help_anywhere) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL;

        ASSERT_EQ(parse_captured(&simple_spec, ARGV("demo", "--help"), &a, &err), 1);
        ASSERT_STREQ(err, "");
}

TEST(global_stops_at_the_command) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char *err = NULL;

        ASSERT_EQ(parse_captured(&global_spec, ARGV("-e", "list", "-t", "demo"), &a, &err), 0);
        ASSERT_TRUE(ctl_args_has(&a, CTL_SLOT_EXTENDED));
        ASSERT_FALSE(ctl_args_has(&a, CTL_SLOT_TIMESTAMP));
        ASSERT_EQ(a.n_rest, 3);
        ASSERT_STREQ(a.rest[0], "list");
        ASSERT_STREQ(a.rest[1], "-t");
}

TEST(bad_input_is_one_line) {
        expect_error(&simple_spec, ARGV("--bogus"), "simple: no such option: --bogus");
        expect_error(&simple_spec, ARGV("-ex"), "simple: no such option: -x");
        expect_error(&simple_spec, ARGV("--leader"), "simple: option --leader requires a value");
        expect_error(&simple_spec, ARGV("demo", "-f"), "simple: option -f requires a value");
        expect_error(&simple_spec, ARGV("--force=yes"), "simple: option --force does not take a value");
        expect_error(&simple_spec, ARGV("demo", "other"), "simple: unexpected argument 'other'");
        expect_error(
                &simple_spec,
                ARGV("-f", "xml"),
                "Invalid value for '--format' / '-f': 'xml' (pretty, tsv, json, yaml)");
        expect_error(
                &simple_spec,
                ARGV("--group", "x"),
                "Invalid value for '--group': 'x' is not a valid integer");
        expect_error(
                &simple_spec, ARGV("--group", "2"), "Citus groups are not supported by pghactl (--group 2)");
        expect_error(
                &simple_spec,
                ARGV("-r", "boss"),
                "Invalid value for '--role' / '-r': 'boss' (leader, primary, standby-leader, replica, "
                "standby, "
                "any, master)");
        expect_error(
                &simple_spec,
                ARGV("-w", "0"),
                "Invalid value for '-w' / '--watch': '0' is not a positive number of seconds");
        expect_error(
                &simple_spec,
                ARGV("-w", "2x"),
                "Invalid value for '-w' / '--watch': '2x' is not a positive number of seconds");
        expect_error(&flush_spec, (char *[]){NULL}, "Missing argument 'CLUSTER_NAME'");
        expect_error(&flush_spec, ARGV("demo"), "Missing argument 'TARGET' (restart or switchover)");
        expect_error(
                &flush_spec,
                ARGV("demo", "n1", "later"),
                "Invalid value for 'TARGET': 'later' is not one of 'restart', 'switchover'");
        expect_error(&global_spec, ARGV("--nope", "list"), "pghactl: no such option: --nope");
}

/* The built pghactl: bad arguments exit 1 with one line on stderr, and need no configuration. */
static void expect_pghactl_fails(char **args, const char *message) {
        char out[] = "/tmp/test-ctl-args-out-XXXXXX";
        char buf[1024] = {};
        _cleanup_free_ char *binary = NULL, *expected = NULL;
        char *argv[16] = {};
        int fd = mkstemp(out), status;
        size_t n = 0;
        pid_t pid;

        ASSERT_TRUE(fd >= 0);
        unlink(out);
        ASSERT_TRUE(asprintf(&binary, "%s/pghactl", PGHA_BUILD_DIR) > 0);
        argv[n++] = binary;
        argv[n++] = (char *)"-c";
        argv[n++] = (char *)"/nonexistent/patroni.yml";
        for (size_t i = 0; args[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = args[i];
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execv(binary, argv);
                _exit(127);
        }
        ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 1);
        lseek(fd, 0, SEEK_SET);
        ASSERT_TRUE(read(fd, buf, sizeof(buf) - 1) >= 0);
        close(fd);
        ASSERT_TRUE(asprintf(&expected, "Error: %s\n", message) > 0);
        ASSERT_STREQ(buf, expected);
}

TEST(pghactl_exits_1_on_bad_arguments) {
        expect_pghactl_fails(
                ARGV("switchover", "--candidat", "n2"), "switchover: no such option: --candidat");
        expect_pghactl_fails(
                ARGV("switchover", "--candidate"), "switchover: option --candidate requires a value");
        expect_pghactl_fails(
                ARGV("failover", "--scheduled", "now"), "failover: no such option: --scheduled");
        expect_pghactl_fails(
                ARGV("show-config", "demo", "extra"), "show-config: unexpected argument 'extra'");
        expect_pghactl_fails(ARGV("query", "-f"), "query: option -f requires a value");
        expect_pghactl_fails(ARGV("reinit", "-r", "replica", "demo"), "reinit: no such option: -r");
        expect_pghactl_fails(ARGV("restart"), "Missing argument 'CLUSTER_NAME'");
        expect_pghactl_fails(ARGV("edit-config", "-x"), "edit-config: no such option: -x");
        expect_pghactl_fails(
                ARGV("list", "-f", "xml"),
                "Invalid value for '--format' / '-f': 'xml' (pretty, tsv, json, yaml)");
        expect_pghactl_fails(ARGV("frobnicate"), "No such command 'frobnicate'. See 'pghactl help'.");
        /* good arguments get as far as the configuration */
        expect_pghactl_fails(
                ARGV("list"),
                "Provided config file /nonexistent/patroni.yml not existing or no read rights. Check "
                "the -c/--config-file parameter");
}

DEFINE_TEST_MAIN
