/* SPDX-License-Identifier: MIT */
/*
 * Private to src/ctl/: pghactl's one option parser. Every command declares its options and positional
 * arguments in a CtlCommandSpec; ctl_args_parse() reads argv against it the way click reads patronictl's
 * (options and positional arguments in any order, "--" ends the options, "--name=value", "-xVALUE",
 * bundled short flags) and reports bad input as one "Error: ..." line.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pgha/macro.h"

/* Where an option's value lands in CtlArgs. Aliases (--leader/--primary/--master) share a slot; a slot
 * may have different spellings in different commands (-f is --format for list, --file for query). */
typedef enum CtlSlot {
        CTL_SLOT_GROUP,
        CTL_SLOT_FORCE,
        CTL_SLOT_FORMAT,
        CTL_SLOT_EXTENDED,
        CTL_SLOT_TIMESTAMP,
        CTL_SLOT_WATCH_DEFAULT, /* -W: every 2 seconds */
        CTL_SLOT_WATCH,         /* -w/--watch SECONDS */
        CTL_SLOT_ROLE,
        CTL_SLOT_MEMBER,
        CTL_SLOT_LEADER,
        CTL_SLOT_CANDIDATE,
        CTL_SLOT_SCHEDULED,
        CTL_SLOT_ANY,
        CTL_SLOT_PG_VERSION,
        CTL_SLOT_PENDING,
        CTL_SLOT_TIMEOUT,
        CTL_SLOT_WAIT,
        CTL_SLOT_QUIET,
        CTL_SLOT_SET, /* repeated */
        CTL_SLOT_PG,  /* repeated */
        CTL_SLOT_APPLY,
        CTL_SLOT_REPLACE,
        CTL_SLOT_FILE,
        CTL_SLOT_PASSWORD,
        CTL_SLOT_USERNAME,
        CTL_SLOT_DELIMITER,
        CTL_SLOT_COMMAND,
        CTL_SLOT_DBNAME,
        /* pghactl's own options, before the command */
        CTL_SLOT_CONFIG_FILE,
        CTL_SLOT_DCS_URL,
        CTL_SLOT_INSECURE,
        CTL_SLOT_VERSION,
        _CTL_SLOT_MAX,
} CtlSlot;

typedef enum CtlOptionFlags {
        CTL_OPTION_VALUE = 1 << 0,       /* takes a value */
        CTL_OPTION_REPEAT = 1 << 1,      /* may be given several times, every value is kept in order */
        CTL_OPTION_SHORT_FIRST = 1 << 2, /* named "'-w' / '--watch'" in messages, as click declares it */
} CtlOptionFlags;

typedef struct CtlOption {
        CtlSlot slot;
        char short_name;           /* 0: none */
        const char *long_names[3]; /* without "--"; the first is the one shown */
        unsigned flags;
        const char *metavar; /* for --help: TEXT, FLOAT, INTEGER... */
        const char *help;
        /* validates a value; prints one error line and returns < 0 when it is bad. name is how the
         * option is named in messages ("'--format' / '-f'"). */
        int (*check)(const char *name, const char *value);
} CtlOption;

typedef struct CtlPositional {
        const char *name; /* CLUSTER_NAME */
        bool required;
        bool many;                  /* zero or more (at most one such entry per command) */
        const char *const *choices; /* NULL-terminated, or NULL for any value */
} CtlPositional;

typedef struct CtlCommandSpec {
        const char *name; /* in messages: "list: no such option: -x" */
        const CtlOption *const *options;
        size_t n_options;
        const CtlPositional *positionals;
        size_t n_positionals;
        bool stop_at_positional; /* options only before the first positional (pghactl's own options) */
} CtlCommandSpec;

#define CTL_POSITIONALS_MAX 4

typedef struct CtlArgs {
        const char *value[_CTL_SLOT_MAX]; /* the last value given; "" for a flag given */
        char **values[_CTL_SLOT_MAX];     /* CTL_OPTION_REPEAT: every value in order (NULL-terminated) */
        size_t n_values[_CTL_SLOT_MAX];
        const char *positional[CTL_POSITIONALS_MAX]; /* by index in the spec; NULL when not given */
        char **many;                                 /* the `many` positional's values, in order */
        size_t n_many;
        char **rest; /* stop_at_positional: argv from the first positional on */
        int n_rest;
} CtlArgs;

/* ctl_args_parse - parses argv[0..argc) (argv[0] is the first argument, not the program) against spec.
 * Returns 0, 1 when --help was asked for (nothing else checked), or -EINVAL after printing one
 * "Error: <command>: ..." line on stderr: unknown option, missing value, value to a flag, a check's
 * refusal, a missing or unexpected positional argument, a positional not among its choices. */
int ctl_args_parse(const CtlCommandSpec *spec, int argc, char **argv, CtlArgs *ret) _warn_unused_result_;
void ctl_args_done(CtlArgs *a);

static inline bool ctl_args_has(const CtlArgs *a, CtlSlot slot) {
        return a->value[slot] != NULL;
}

/* ctl_args_print_help - click-like help: usage, the command's description, its options. */
void ctl_args_print_help(const CtlCommandSpec *spec, const char *prog, const char *description, FILE *f);

/* The options several commands share, and their checks. */
extern const CtlOption ctl_option_group, ctl_option_force, ctl_option_format, ctl_option_role,
        ctl_option_watch_default, ctl_option_watch, ctl_option_member, ctl_option_wait;
int ctl_check_group(const char *name, const char *value);
int ctl_check_format(const char *name, const char *value);
int ctl_check_role(const char *name, const char *value);
int ctl_check_seconds(const char *name, const char *value);
/* ctl_watch_interval - the -W / -w interval in seconds (patronictl: -w wins, -W alone is 2); 0: none. */
double ctl_watch_interval(const CtlArgs *a);
