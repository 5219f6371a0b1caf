/* SPDX-License-Identifier: MIT */
/*
 * pghactl's option parser: one table-driven reader of argv for every command (and for pghactl's own
 * options before the command), so that each command only declares what it accepts. It follows click,
 * which patronictl uses: options and positional arguments may be mixed, "--" ends the options, long
 * options take "--name value" or "--name=value", short ones "-x value" or "-xvalue", flags may be
 * bundled ("-et"), and a value is taken as is even when it starts with "-". Invariant: on success
 * every pointer in CtlArgs points into argv (only the arrays are owned); on failure exactly one
 * "Error: ..." line has been printed and nothing is returned.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-args.h"
#include "ctl-internal.h"

const CtlOption ctl_option_group = {
        CTL_SLOT_GROUP, 0, {"group"}, CTL_OPTION_VALUE, "INTEGER", "Citus group", ctl_check_group};
const CtlOption ctl_option_force = {
        CTL_SLOT_FORCE, 0, {"force"}, 0, NULL, "Do not ask for confirmation at any point", NULL};
const CtlOption ctl_option_format = {
        CTL_SLOT_FORMAT,
        'f',
        {"format"},
        CTL_OPTION_VALUE,
        "TEXT",
        "Output format (pretty, tsv, json, yaml)",
        ctl_check_format};
const CtlOption ctl_option_role = {
        CTL_SLOT_ROLE,
        'r',
        {"role"},
        CTL_OPTION_VALUE,
        "ROLE",
        "Only members with this role (leader, primary, standby-leader, replica, standby, any, master)",
        ctl_check_role};
const CtlOption ctl_option_member = {
        CTL_SLOT_MEMBER, 'm', {"member"}, CTL_OPTION_VALUE, "TEXT", "This member", NULL};
const CtlOption ctl_option_watch_default = {
        CTL_SLOT_WATCH_DEFAULT, 'W', {}, 0, NULL, "Auto update the screen every 2 seconds", NULL};
const CtlOption ctl_option_watch = {
        CTL_SLOT_WATCH,
        'w',
        {"watch"},
        CTL_OPTION_VALUE | CTL_OPTION_SHORT_FIRST,
        "FLOAT",
        "Auto update the screen every X seconds",
        ctl_check_seconds};
const CtlOption ctl_option_wait = {
        CTL_SLOT_WAIT, 0, {"wait"}, 0, NULL, "Wait until the change is recognized by all nodes", NULL};

int ctl_check_group(const char *name, const char *value) {
        char *end;
        long g = strtol(value, &end, 10);

        if (*end || end == value || g < 0)
                return ctl_fail("Invalid value for %s: '%s' is not a valid integer", name, value);
        if (g != 0)
                return ctl_fail("Citus groups are not supported by pghactl (--group %ld)", g);
        return 0;
}

int ctl_check_format(const char *name, const char *value) {
        if ((int)ctl_format_from_string(value) < 0)
                return ctl_fail("Invalid value for %s: '%s' (pretty, tsv, json, yaml)", name, value);
        return 0;
}

int ctl_check_role(const char *name, const char *value) {
        if (!ctl_role_valid(value))
                return ctl_fail(
                        "Invalid value for %s: '%s' (leader, primary, standby-leader, replica, standby, "
                        "any, "
                        "master)",
                        name,
                        value);
        return 0;
}

int ctl_check_seconds(const char *name, const char *value) {
        char *end;
        double d = strtod(value, &end);

        if (*end || end == value || !(d > 0) || d > 86400)
                return ctl_fail(
                        "Invalid value for %s: '%s' is not a positive number of seconds", name, value);
        return 0;
}

double ctl_watch_interval(const CtlArgs *a) {
        if (a->value[CTL_SLOT_WATCH])
                return strtod(a->value[CTL_SLOT_WATCH], NULL);
        return a->value[CTL_SLOT_WATCH_DEFAULT] ? 2 : 0;
}

/* "'--format' / '-f'" as click names an option in its messages. */
static void option_display_name(const CtlOption *o, char *buf, size_t size) {
        if (o->short_name && o->long_names[0])
                snprintf(
                        buf,
                        size,
                        (o->flags & CTL_OPTION_SHORT_FIRST) ? "'-%2$c' / '--%1$s'" : "'--%1$s' / '-%2$c'",
                        o->long_names[0],
                        o->short_name);
        else if (o->long_names[0])
                snprintf(buf, size, "'--%s'", o->long_names[0]);
        else
                snprintf(buf, size, "'-%c'", o->short_name);
}

static const CtlOption *find_long(const CtlCommandSpec *spec, const char *name, size_t len) {
        for (size_t i = 0; i < spec->n_options; i++)
                for (size_t k = 0; k < ELEMENTSOF(spec->options[i]->long_names); k++) {
                        const char *l = spec->options[i]->long_names[k];
                        if (l && strlen(l) == len && strncmp(l, name, len) == 0)
                                return spec->options[i];
                }
        return NULL;
}

static const CtlOption *find_short(const CtlCommandSpec *spec, char c) {
        for (size_t i = 0; i < spec->n_options; i++)
                if (spec->options[i]->short_name == c)
                        return spec->options[i];
        return NULL;
}

static int store(const CtlOption *o, const char *value, CtlArgs *a) {
        char buf[64];

        if (o->check) {
                option_display_name(o, buf, sizeof(buf));
                if (o->check(buf, value) < 0)
                        return -EINVAL;
        }
        a->value[o->slot] = value;
        if (o->flags & CTL_OPTION_REPEAT) {
                char **v = reallocarray(a->values[o->slot], a->n_values[o->slot] + 2, sizeof(char *));
                if (!v)
                        return -ENOMEM;
                v[a->n_values[o->slot]++] = (char *)value;
                v[a->n_values[o->slot]] = NULL;
                a->values[o->slot] = v;
        }
        return 0;
}

static void
join_choices(const char *const *choices, const char *quote, const char *last, char *buf, size_t size) {
        size_t n = 0, l = 0;

        buf[0] = '\0';
        while (choices[n])
                n++;
        for (size_t i = 0; i < n && l < size; i++)
                l += (size_t)snprintf(
                        buf + l,
                        size - l,
                        "%s%s%s%s",
                        i == 0               ? ""
                                : i == n - 1 ? last
                                             : ", ",
                        quote,
                        choices[i],
                        quote);
}

/* Assigns the collected positional arguments to the spec's entries: the fixed ones before the `many`
 * entry from the front, those after it from the back, the `many` entry the rest. */
static int assign_positionals(const CtlCommandSpec *spec, char **pos, size_t n, CtlArgs *a) {
        size_t lead = 0, trail = 0, i_many = spec->n_positionals, used = 0;
        char buf[256];

        assert(spec->n_positionals <= CTL_POSITIONALS_MAX);
        for (size_t i = 0; i < spec->n_positionals; i++)
                if (spec->positionals[i].many)
                        i_many = i;
        lead = i_many < spec->n_positionals ? i_many : spec->n_positionals;
        trail = i_many < spec->n_positionals ? spec->n_positionals - i_many - 1 : 0;

        for (size_t i = 0; i < lead && used < n; i++)
                a->positional[i] = pos[used++];
        for (size_t k = 0; k < trail && used < n; k++)
                a->positional[spec->n_positionals - 1 - k] = pos[--n];
        for (size_t i = 0; i < spec->n_positionals; i++) {
                const CtlPositional *p = &spec->positionals[i];
                if (p->many || a->positional[i])
                        continue;
                if (!p->required)
                        continue;
                if (p->choices) {
                        join_choices(p->choices, "", " or ", buf, sizeof(buf));
                        return ctl_fail("Missing argument '%s' (%s)", p->name, buf);
                }
                return ctl_fail("Missing argument '%s'", p->name);
        }
        if (i_many < spec->n_positionals) {
                a->many = new0(char *, n - used + 1);
                if (!a->many)
                        return -ENOMEM;
                for (; used < n; used++)
                        a->many[a->n_many++] = pos[used];
        } else if (used < n)
                return ctl_fail("%s: unexpected argument '%s'", spec->name, pos[used]);
        for (size_t i = 0; i < spec->n_positionals; i++) {
                const CtlPositional *p = &spec->positionals[i];
                bool ok = !p->choices || !a->positional[i];
                for (size_t k = 0; !ok && p->choices[k]; k++)
                        ok = streq(p->choices[k], a->positional[i]);
                if (!ok) {
                        join_choices(p->choices, "'", ", ", buf, sizeof(buf));
                        return ctl_fail(
                                "Invalid value for '%s': '%s' is not one of %s",
                                p->name,
                                a->positional[i],
                                buf);
                }
        }
        return 0;
}

static int parse(const CtlCommandSpec *spec, int argc, char **argv, char **pos, size_t *n_pos, CtlArgs *a) {
        bool options_done = false;
        int r;

        for (int i = 0; i < argc; i++) {
                char *arg = argv[i];

                if (options_done || arg[0] != '-' || arg[1] == '\0') {
                        if (spec->stop_at_positional) {
                                a->rest = argv + i;
                                a->n_rest = argc - i;
                                return 0;
                        }
                        pos[(*n_pos)++] = arg;
                        continue;
                }
                if (streq(arg, "--")) {
                        options_done = true;
                        continue;
                }
                if (arg[1] == '-') {
                        const char *name = arg + 2, *eq = strchr(name, '=');
                        size_t len = eq ? (size_t)(eq - name) : strlen(name);
                        const CtlOption *o = find_long(spec, name, len);

                        if (!o) {
                                if (len == 4 && strncmp(name, "help", 4) == 0)
                                        return 1;
                                return ctl_fail("%s: no such option: --%.*s", spec->name, (int)len, name);
                        }
                        if (!(o->flags & CTL_OPTION_VALUE)) {
                                if (eq)
                                        return ctl_fail(
                                                "%s: option --%.*s does not take a value",
                                                spec->name,
                                                (int)len,
                                                name);
                                r = store(o, "", a);
                        } else if (eq)
                                r = store(o, eq + 1, a);
                        else if (i + 1 < argc)
                                r = store(o, argv[++i], a);
                        else
                                return ctl_fail("%s: option --%s requires a value", spec->name, name);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* one or more short options: flags bundled, the last may take a value */
                for (const char *p = arg + 1; *p; p++) {
                        const CtlOption *o = find_short(spec, *p);
                        if (!o)
                                return ctl_fail("%s: no such option: -%c", spec->name, *p);
                        if (!(o->flags & CTL_OPTION_VALUE)) {
                                r = store(o, "", a);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (p[1])
                                r = store(o, p + 1, a);
                        else if (i + 1 < argc)
                                r = store(o, argv[++i], a);
                        else
                                return ctl_fail("%s: option -%c requires a value", spec->name, *p);
                        if (r < 0)
                                return r;
                        break;
                }
        }
        return 0;
}

int ctl_args_parse(const CtlCommandSpec *spec, int argc, char **argv, CtlArgs *ret) {
        _cleanup_(ctl_args_done) CtlArgs a = {};
        _cleanup_free_ char **pos = NULL;
        size_t n_pos = 0;
        int r;

        pos = new0(char *, (size_t)argc + 1);
        if (!pos)
                return -ENOMEM;
        r = parse(spec, argc, argv, pos, &n_pos, &a);
        if (r != 0)
                return r;
        if (!spec->stop_at_positional) {
                r = assign_positionals(spec, pos, n_pos, &a);
                if (r < 0)
                        return r;
        }
        *ret = a;
        a = (CtlArgs){};
        return 0;
}

void ctl_args_done(CtlArgs *a) {
        if (!a)
                return;
        for (size_t i = 0; i < _CTL_SLOT_MAX; i++)
                a->values[i] = mfree(a->values[i]);
        a->many = mfree(a->many);
}

void ctl_args_print_help(const CtlCommandSpec *spec, const char *prog, const char *description, FILE *f) {
        fprintf(f, "Usage: %s [OPTIONS] %s", prog, spec->name);
        for (size_t i = 0; i < spec->n_positionals; i++) {
                const CtlPositional *p = &spec->positionals[i];
                fprintf(f,
                        " %s%s%s%s",
                        p->required ? "" : "[",
                        p->name,
                        p->required ? "" : "]",
                        p->many ? "..." : "");
        }
        fprintf(f, " [COMMAND OPTIONS]\n\n  %s\n\nOptions:\n", description);
        for (size_t i = 0; i < spec->n_options; i++) {
                const CtlOption *o = spec->options[i];
                char names[128];
                size_t l = 0;
                if (o->short_name)
                        l += (size_t)snprintf(names + l, sizeof(names) - l, "-%c", o->short_name);
                for (size_t k = 0; k < ELEMENTSOF(o->long_names) && o->long_names[k] && l < sizeof(names);
                     k++)
                        l += (size_t)snprintf(
                                names + l, sizeof(names) - l, "%s--%s", l ? ", " : "", o->long_names[k]);
                if ((o->flags & CTL_OPTION_VALUE) && l < sizeof(names))
                        snprintf(names + l, sizeof(names) - l, " %s", o->metavar ?: "TEXT");
                if (strlen(names) > 22)
                        fprintf(f, "  %s\n  %-22s  %s\n", names, "", o->help);
                else
                        fprintf(f, "  %-22s  %s\n", names, o->help);
        }
        fprintf(f, "  %-22s  %s\n", "--help", "Show this message and exit.");
}
