/* SPDX-License-Identifier: MIT */
/*
 * The key reference, printed from the key table: docs/config-keys.md (markdown) and the pgha.yml(5) man
 * page (roff) that the Debian package ships. Invariant: both are generated from config_keys[] only, and
 * the committed copies are compared with this output by test_config (keys_reference_up_to_date), so a
 * key added to the table cannot be missing from either.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config-internal.h"
#include "pgha/config.h"

typedef enum DocFormat {
        DOC_MARKDOWN,
        DOC_MAN,
} DocFormat;

/* How each key type is written for a reader of the YAML file. */
static const char *const key_type_doc[_CK_MAX] = {
        [CK_SECTION] = "section",
        [CK_ALIAS] = "alias",
        [CK_STRING] = "string",
        [CK_BOOL] = "boolean",
        [CK_INT] = "integer",
        [CK_INT64] = "integer",
        [CK_DURATION] = "duration (seconds, or with a unit: 500ms, 90s, 2min)",
        [CK_ADDRESS] = "host:port",
        [CK_LISTEN] = "host[,host...]:port",
        [CK_STRV] = "list of strings",
        [CK_STRV_COMMA] = "list of strings, or one comma-separated string",
        [CK_JSON_OBJECT] = "mapping",
        [CK_JSON_ANY] = "any YAML value",
        [CK_LOG_LEVEL] = "log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)",
        [CK_WATCHDOG_MODE] = "off, automatic or required",
        [CK_WATCHDOG_DRIVER] = "default or testing",
        [CK_VIRTUAL] = "string (username:password)",
};

/* Writes s for the format: roff needs backslashes, hyphens and a leading dot or quote escaped; markdown
 * table cells need "|" escaped. */
static void put_text(FILE *f, DocFormat fmt, const char *s) {
        for (const char *p = s; *p; p++) {
                if (fmt == DOC_MAN && p == s && (*p == '.' || *p == '\''))
                        fputs("\\&", f);
                if (fmt == DOC_MAN && *p == '\\')
                        fputs("\\e", f);
                else if (fmt == DOC_MAN && *p == '-')
                        fputs("\\-", f);
                else if (fmt == DOC_MARKDOWN && *p == '|')
                        fputs("\\|", f);
                else
                        fputc(*p, f);
        }
}

/* The notes of one key: required, restart, secret, range, alias; "" when none. */
static void put_notes(FILE *f, DocFormat fmt, const ConfigKey *k) {
        const char *sep = "";

        if (k->type == CK_ALIAS) {
                fprintf(f, "%s of ", (k->flags & CK_DEPRECATED) ? "deprecated spelling" : "same as");
                put_text(f, fmt, k->alias_of);
                sep = "; ";
        }
        if (k->flags & CK_REQUIRED) {
                fprintf(f, "%srequired", sep);
                sep = "; ";
        }
        if (k->flags & CK_NO_RELOAD) {
                fprintf(f, "%sa change needs a restart of pghad", sep);
                sep = "; ";
        }
        if (k->flags & CK_SECRET) {
                fprintf(f, "%ssecret (masked in output)", sep);
                sep = "; ";
        }
        if (k->min < k->max) {
                fprintf(f, "%s%" PRId64 " to %" PRId64, sep, k->min, k->max);
                sep = "; ";
        }
}

static void put_key(FILE *f, DocFormat fmt, const ConfigKey *k) {
        const char *type = k->type == CK_ALIAS ? "alias" : key_type_doc[k->type];

        if (fmt == DOC_MARKDOWN) {
                fprintf(f, "| `%s` | %s | ", k->path, type);
                if (k->def) {
                        fputc('`', f);
                        put_text(f, fmt, k->def);
                        fputc('`', f);
                }
                fputs(" | ", f);
                put_notes(f, fmt, k);
                fputs(" |\n", f);
                return;
        }

        fputs(".TP\n.B ", f);
        put_text(f, fmt, k->path);
        fputc('\n', f);
        put_text(f, fmt, type);
        if (k->def) {
                fputs("; default \\(lq", f);
                put_text(f, fmt, k->def);
                fputs("\\(rq", f);
        }
        fputs(".\n", f);
        if (k->type == CK_ALIAS || (k->flags & (CK_REQUIRED | CK_NO_RELOAD | CK_SECRET)) ||
            k->min < k->max) {
                fputs(".br\n", f);
                put_notes(f, fmt, k);
                fputs(".\n", f);
        }
}

static bool key_is_documented(const ConfigKey *k) {
        return k->type != CK_SECTION;
}

/* Keys whose first path component is `section` (NULL: keys without a dot), each under a heading. */
static void put_group(FILE *f, DocFormat fmt, const char *section) {
        size_t l = section ? strlen(section) : 0;

        if (fmt == DOC_MARKDOWN)
                fprintf(f,
                        "\n## %s%s%s\n\n| key | type | default | notes |\n| --- | --- | --- | --- |\n",
                        section ? "`" : "",
                        section ?: "Top level",
                        section ? "`" : "");
        else
                fprintf(f, ".SS %s\n", section ?: "Top level");
        for (size_t i = 0; i < config_keys_n; i++) {
                const ConfigKey *k = &config_keys[i];
                bool in = section ? strneq(k->path, section, l) && k->path[l] == '.' : !strchr(k->path, '.');

                if (in && key_is_documented(k))
                        put_key(f, fmt, k);
        }
}

static void put_groups(FILE *f, DocFormat fmt) {
        put_group(f, fmt, NULL);
        for (size_t i = 0; i < config_keys_n; i++)
                if (config_keys[i].type == CK_SECTION && !strchr(config_keys[i].path, '.'))
                        put_group(f, fmt, config_keys[i].path);
}

/* config_keys_print_markdown - docs/config-keys.md: every key of the table with its type, default and
 * flags, grouped by top-level section. Non-logging; write errors show up on fclose(f). */
void config_keys_print_markdown(FILE *f) {
        fputs("# Configuration keys\n\n"
              "<!-- Generated from src/daemon/config/config_table.c; do not edit. Regenerate with:\n"
              "     build/pgha-test-configdoc markdown > docs/config-keys.md -->\n\n"
              "Every key pghad reads from its YAML file (Patroni 3.0.2's local configuration), as the key\n"
              "table defines it. How the file is read, checked and reloaded: [config.md](config.md). The\n"
              "same list is the pgha.yml(5) man page. A key without a default is unset unless given.\n",
              f);
        put_groups(f, DOC_MARKDOWN);
}

/* config_keys_print_man - the pgha.yml(5) man page (roff): the same keys as config_keys_print_markdown()
 * plus the file's synopsis, environment and files. Non-logging; write errors show up on fclose(f). */
void config_keys_print_man(FILE *f) {
        fputs(".\\\" Generated from src/daemon/config/config_table.c; do not edit. Regenerate with:\n"
              ".\\\"   build/pgha-test-configdoc man > docs/man/pgha.yml.5\n"
              ".TH PGHA.YML 5 \"\" \"pgha\" \"File Formats\"\n"
              ".SH NAME\n"
              "pgha.yml \\- configuration of pghad, the Patroni compatible PostgreSQL HA daemon\n"
              ".SH SYNOPSIS\n"
              ".B /etc/pgha/pgha.yml\n"
              ".SH DESCRIPTION\n"
              "pghad reads Patroni 3.0.2's YAML configuration unchanged: a file, or a directory whose\n"
              ".I *.yml\n"
              "files are merged in alphabetical order, followed by the\n"
              ".B PATRONI_*\n"
              "environment variables.\n"
              "Unknown keys, wrong types and out-of-range values are reported with file, line and column;\n"
              "any error stops the start (or, on SIGHUP, keeps the running configuration).\n"
              "Check a file with\n"
              ".BR \"pghad \\-\\-validate\\-config\" .\n"
              ".PP\n"
              "Durations are integer seconds or carry a PostgreSQL unit (us, ms, s, min, h, d).\n"
              "Booleans are on/off, true/false, yes/no or 1/0.\n"
              "The dynamic configuration (ttl, loop_wait, maximum_lag_on_failover, ...) lives in the DCS;\n"
              "it is seeded from\n"
              ".B bootstrap.dcs\n"
              "and changed with\n"
              ".BR \"pghactl edit\\-config\" .\n"
              ".SH KEYS\n",
              f);
        put_groups(f, DOC_MAN);
        fputs(".SH ENVIRONMENT\n"
              ".B PATRONI_CONFIGURATION\n"
              "holds the whole document when pghad is started without a path; otherwise\n"
              ".BR PATRONI_NAME ,\n"
              ".BR PATRONI_SCOPE ,\n"
              ".BR PATRONI_RESTAPI_LISTEN ,\n"
              ".B PATRONI_ETCD3_HOSTS\n"
              "and the other\n"
              ".B PATRONI_*\n"
              "variables override single keys, as in Patroni.\n"
              ".SH FILES\n"
              ".TP\n"
              ".I /etc/pgha/pgha.yml\n"
              "the configuration the packaged pghad.service reads\n"
              ".TP\n"
              ".I /etc/pgha/pgha.yml.example\n"
              "every key with its default\n"
              ".TP\n"
              ".I /usr/share/doc/pgha/config.md\n"
              "how the file is read, checked and reloaded, and the differences from Patroni\n"
              ".SH SEE ALSO\n"
              ".BR pghad (8),\n"
              ".BR pghactl (1)\n",
              f);
}
