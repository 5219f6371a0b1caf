/* SPDX-License-Identifier: MIT */
/*
 * Text output of pghactl, byte-compatible with patronictl 3.0.2: PrettyTable frames (with the cluster
 * title spliced into the top border), TSV, Python's json.dumps and PyYAML's safe_dump of the same rows,
 * and difflib's unified diff for edit-config. Pure functions over cJSON values and a FILE; the command
 * code in pghactl.c decides what to print. Invariant: nothing here reads the network or the clock.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pgha/json.h"

static const char *const format_table[_CTL_FORMAT_MAX] = {
        [CTL_FORMAT_PRETTY] = "pretty",
        [CTL_FORMAT_TSV] = "tsv",
        [CTL_FORMAT_JSON] = "json",
        [CTL_FORMAT_YAML] = "yaml",
        [CTL_FORMAT_TOPOLOGY] = "topology",
};

CtlFormat ctl_format_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (streq(s, "yml"))
                return CTL_FORMAT_YAML;
        for (size_t i = 0; i < _CTL_FORMAT_MAX; i++)
                if (i != CTL_FORMAT_TOPOLOGY && streq(s, format_table[i]))
                        return (CtlFormat)i;
        return -EINVAL;
}

/* ==== Tables ==== */

int ctl_table_new(const char *const *columns, size_t n, CtlTable **ret) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;

        t = new0(CtlTable, 1);
        if (!t)
                return -ENOMEM;
        t->columns = new0(char *, n);
        t->align = new0(CtlAlign, n);
        if (!t->columns || !t->align)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                t->columns[i] = strdup(columns[i]);
                if (!t->columns[i])
                        return -ENOMEM;
                t->n_columns++;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

CtlTable *ctl_table_free(CtlTable *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                cJSON_Delete(t->cells[i]);
        for (size_t i = 0; i < t->n_columns; i++)
                free(t->columns[i]);
        free(t->cells);
        free(t->columns);
        free(t->align);
        return mfree(t);
}

int ctl_table_column(const CtlTable *t, const char *column) {
        for (size_t i = 0; i < t->n_columns; i++)
                if (streq(t->columns[i], column))
                        return (int)i;
        return -ENOENT;
}

void ctl_table_set_align(CtlTable *t, const char *column, CtlAlign align) {
        int i = ctl_table_column(t, column);
        if (i >= 0)
                t->align[i] = align;
}

int ctl_table_add_row(CtlTable *t, cJSON **items) {
        cJSON **cells;
        int r = 0;

        cells = realloc(t->cells, (t->n_rows + 1) * t->n_columns * sizeof(cJSON *) ?: 1);
        if (!cells) {
                for (size_t i = 0; i < t->n_columns; i++)
                        cJSON_Delete(items[i]);
                return -ENOMEM;
        }
        t->cells = cells;
        for (size_t i = 0; i < t->n_columns; i++) {
                cJSON *v = items[i] ?: cJSON_CreateString("");
                if (!v)
                        r = -ENOMEM;
                cells[t->n_rows * t->n_columns + i] = v ?: cJSON_CreateNull();
        }
        t->n_rows++;
        return r;
}

void ctl_table_remove_column(CtlTable *t, size_t index) {
        size_t n = t->n_columns, w = 0;

        if (index >= n)
                return;
        for (size_t row = 0; row < t->n_rows; row++)
                for (size_t col = 0; col < n; col++) {
                        cJSON *v = t->cells[row * n + col];
                        if (col == index)
                                cJSON_Delete(v);
                        else
                                t->cells[w++] = v;
                }
        free(t->columns[index]);
        memmove(t->columns + index, t->columns + index + 1, (n - index - 1) * sizeof(char *));
        memmove(t->align + index, t->align + index + 1, (n - index - 1) * sizeof(CtlAlign));
        t->n_columns--;
}

/* Python repr() of a float, the shortest text that reads back as the same double. */
static int float_repr(double d, char *buf, size_t size) {
        if (isnan(d))
                return snprintf(buf, size, "nan");
        if (isinf(d))
                return snprintf(buf, size, d < 0 ? "-inf" : "inf");
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, size, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        if (!strpbrk(buf, ".eni")) {
                size_t l = strlen(buf);
                if (l + 3 <= size)
                        memcpy(buf + l, ".0", 3);
        }
        return 0;
}

static bool json_is_integer(const cJSON *v, int64_t *ret) {
        double d = v->valuedouble;

        if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9007199254740992.0)
                return false;
        *ret = (int64_t)d;
        return true;
}

int ctl_value_to_string(const cJSON *v, char **ret) {
        char buf[64], *s;
        int64_t i;

        if (!v || cJSON_IsNull(v))
                s = strdup("None");
        else if (cJSON_IsString(v))
                s = strdup(v->valuestring);
        else if (cJSON_IsBool(v))
                s = strdup(cJSON_IsTrue(v) ? "True" : "False");
        else if (json_is_integer(v, &i)) {
                snprintf(buf, sizeof(buf), "%" PRIi64, i);
                s = strdup(buf);
        } else if (cJSON_IsNumber(v)) {
                float_repr(v->valuedouble, buf, sizeof(buf));
                s = strdup(buf);
        } else
                return ctl_json_dump_string(v, ret);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Display width of one line: UTF-8 code points (continuation bytes do not count). */
static size_t text_width(const char *s, size_t n) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80)
                        w++;
        return w;
}

static size_t cell_lines(const char *s) {
        size_t n = 1;
        for (; *s; s++)
                if (*s == '\n')
                        n++;
        return n;
}

/* The k-th line of s (pointer and length); an empty string past the end. */
static const char *cell_line(const char *s, size_t k, size_t *len) {
        for (; k > 0; k--) {
                const char *nl = strchr(s, '\n');
                if (!nl) {
                        *len = 0;
                        return "";
                }
                s = nl + 1;
        }
        *len = strcspn(s, "\n");
        return s;
}

static size_t cell_width(const char *s) {
        size_t w = 0, n = cell_lines(s);
        for (size_t k = 0; k < n; k++) {
                size_t len;
                const char *l = cell_line(s, k, &len);
                w = MAX(w, text_width(l, len));
        }
        return w;
}

static void put_padded(FILE *f, const char *s, size_t len, size_t width, CtlAlign align) {
        size_t pad = width - MIN(width, text_width(s, len));
        if (align == CTL_ALIGN_RIGHT)
                fprintf(f, "%*s", (int)pad, "");
        fwrite(s, 1, len, f);
        if (align == CTL_ALIGN_LEFT)
                fprintf(f, "%*s", (int)pad, "");
}

static char *hrule(const size_t *widths, size_t n) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        fputc('+', f);
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < widths[i] + 2; k++)
                        fputc('-', f);
                fputc('+', f);
        }
        if (fclose(f) != 0)
                return mfree(s);
        return s;
}

/* PatronictlPrettyTable: the title replaces the start of the top border after its first '+'. */
static void put_top_rule(FILE *f, const char *rule, const char *title) {
        size_t l = strlen(rule), tl;

        if (isempty(title) || l < 2) {
                fprintf(f, "%s\n", rule);
                return;
        }
        tl = MIN(strlen(title), l - 2);
        fputc(rule[0], f);
        fwrite(title, 1, tl, f);
        fprintf(f, "%s\n", rule + 1 + tl);
}

static void put_row(FILE *f, char **texts, const CtlAlign *align, const size_t *widths, size_t n) {
        size_t height = 1;

        for (size_t i = 0; i < n; i++)
                height = MAX(height, cell_lines(texts[i]));
        for (size_t k = 0; k < height; k++) {
                fputc('|', f);
                for (size_t i = 0; i < n; i++) {
                        size_t len;
                        const char *l = cell_line(texts[i], k, &len);
                        fputc(' ', f);
                        put_padded(f, l, len, widths[i], align[i]);
                        fputs(" |", f);
                }
                fputc('\n', f);
        }
}

static int table_print_pretty(const CtlTable *t, const char *title, FILE *f) {
        size_t n = t->n_columns, total = t->n_rows * n;
        _cleanup_free_ size_t *widths = NULL;
        _cleanup_free_ char *rule = NULL;
        char **texts;
        bool all_rules = false;
        int r = 0;

        widths = new0(size_t, n);
        texts = new0(char *, total);
        if (!widths || !texts) {
                free(texts);
                return -ENOMEM;
        }
        for (size_t i = 0; i < total && r >= 0; i++)
                r = ctl_value_to_string(t->cells[i], &texts[i]);
        if (r >= 0) {
                for (size_t c = 0; c < n; c++)
                        widths[c] = cell_width(t->columns[c]);
                for (size_t i = 0; i < total; i++) {
                        widths[i % n] = MAX(widths[i % n], cell_width(texts[i]));
                        if (strchr(texts[i], '\n'))
                                all_rules = true;
                }
                rule = hrule(widths, n);
                if (!rule)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                put_top_rule(f, rule, title);
                put_row(f, t->columns, t->align, widths, n);
                fprintf(f, "%s\n", rule);
                for (size_t row = 0; row < t->n_rows; row++) {
                        put_row(f, texts + row * n, t->align, widths, n);
                        if (all_rules && row + 1 < t->n_rows)
                                fprintf(f, "%s\n", rule);
                }
                if (t->n_rows > 0 || !all_rules)
                        fprintf(f, "%s\n", rule);
        }
        for (size_t i = 0; i < total; i++)
                free(texts[i]);
        free(texts);
        return r;
}

static int table_print_tsv(const CtlTable *t, const char *delimiter, FILE *f) {
        size_t n = t->n_columns;

        for (size_t c = 0; c < n; c++)
                fprintf(f, "%s%s", c > 0 ? delimiter : "", t->columns[c]);
        if (n > 0)
                fputc('\n', f);
        for (size_t row = 0; row < t->n_rows; row++) {
                for (size_t c = 0; c < n; c++) {
                        _cleanup_free_ char *s = NULL;
                        int r = ctl_value_to_string(t->cells[row * n + c], &s);
                        if (r < 0)
                                return r;
                        fprintf(f, "%s%s", c > 0 ? delimiter : "", s);
                }
                fputc('\n', f);
        }
        return 0;
}

static bool cell_is_empty(const cJSON *v) {
        return cJSON_IsString(v) && isempty(v->valuestring);
}

int ctl_table_print(const CtlTable *t, CtlFormat format, const char *title, const char *delimiter, FILE *f) {
        _cleanup_(cJSON_Deletep) cJSON *list = NULL;
        int r;

        switch (format) {
        case CTL_FORMAT_PRETTY:
        case CTL_FORMAT_TOPOLOGY:
                return table_print_pretty(t, title, f);
        case CTL_FORMAT_TSV:
                return table_print_tsv(t, delimiter ?: "\t", f);
        case CTL_FORMAT_JSON:
        case CTL_FORMAT_YAML:
                list = cJSON_CreateArray();
                if (!list)
                        return -ENOMEM;
                for (size_t row = 0; row < t->n_rows; row++) {
                        cJSON *o = cJSON_CreateObject();
                        if (!o || !cJSON_AddItemToArray(list, o))
                                return cJSON_Delete(o), -ENOMEM;
                        for (size_t c = 0; c < t->n_columns; c++) {
                                const cJSON *v = t->cells[row * t->n_columns + c];
                                if (title && cell_is_empty(v))
                                        continue;
                                if (json_add_item(o, t->columns[c], cJSON_Duplicate(v, true)) < 0)
                                        return -ENOMEM;
                        }
                }
                if (format == CTL_FORMAT_JSON) {
                        r = ctl_json_dump(list, f);
                        fputc('\n', f);
                        return r;
                }
                r = ctl_yaml_dump(list, false, f);
                fputc('\n', f); /* click.echo() after a dump that ends in a newline */
                return r;
        default:
                return -EINVAL;
        }
}

/* ==== JSON like Python's json.dumps ==== */

static void json_put_string(const char *s, FILE *f) {
        const unsigned char *p = (const unsigned char *)s;

        fputc('"', f);
        while (*p) {
                unsigned c = *p;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c), p++;
                else if (c == '\n')
                        fputs("\\n", f), p++;
                else if (c == '\r')
                        fputs("\\r", f), p++;
                else if (c == '\t')
                        fputs("\\t", f), p++;
                else if (c == '\b')
                        fputs("\\b", f), p++;
                else if (c == '\f')
                        fputs("\\f", f), p++;
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, c == 0x7f ? "\x7f" : "\\u%04x", c), p++;
                else if (c < 0x80)
                        fputc((int)c, f), p++;
                else {
                        /* Decode one UTF-8 sequence; invalid bytes become U+FFFD. */
                        unsigned cp = 0xFFFD, len = 1;
                        if ((c & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80)
                                cp = ((c & 0x1F) << 6) | (p[1] & 0x3F), len = 2;
                        else if ((c & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80)
                                cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F), len = 3;
                        else if (
                                (c & 0xF8) == 0xF0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
                                (p[3] & 0xC0) == 0x80)
                                cp = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) |
                                        (p[3] & 0x3F),
                                len = 4;
                        if (cp >= 0x10000) {
                                cp -= 0x10000;
                                fprintf(f, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                        } else
                                fprintf(f, "\\u%04x", cp);
                        p += len;
                }
        }
        fputc('"', f);
}

int ctl_json_dump(const cJSON *v, FILE *f) {
        char buf[64];
        int64_t i;
        bool first = true;

        if (!v || cJSON_IsNull(v))
                fputs("null", f);
        else if (cJSON_IsBool(v))
                fputs(cJSON_IsTrue(v) ? "true" : "false", f);
        else if (json_is_integer(v, &i))
                fprintf(f, "%" PRIi64, i);
        else if (cJSON_IsNumber(v)) {
                float_repr(v->valuedouble, buf, sizeof(buf));
                fputs(streq(buf, "inf") ? "Infinity" : streq(buf, "-inf") ? "-Infinity" : buf, f);
        } else if (cJSON_IsString(v))
                json_put_string(v->valuestring, f);
        else if (cJSON_IsArray(v)) {
                const cJSON *e;
                fputc('[', f);
                cJSON_ArrayForEach (e, v) {
                        fputs(first ? "" : ", ", f);
                        first = false;
                        ctl_json_dump(e, f);
                }
                fputc(']', f);
        } else if (cJSON_IsObject(v)) {
                const cJSON *e;
                fputc('{', f);
                cJSON_ArrayForEach (e, v) {
                        fputs(first ? "" : ", ", f);
                        first = false;
                        json_put_string(e->string, f);
                        fputs(": ", f);
                        ctl_json_dump(e, f);
                }
                fputc('}', f);
        } else
                fputs("null", f);
        return 0;
}

static int dump_to_string(int (*dump)(const cJSON *, bool, FILE *), const cJSON *v, bool flow, char **ret) {
        _cleanup_free_ char *s = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        f = open_memstream(&s, &size);
        if (!f)
                return -ENOMEM;
        r = dump(v, flow, f);
        if (fclose(f) != 0)
                return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static int json_dump_flow(const cJSON *v, bool flow, FILE *f) {
        return ctl_json_dump(v, f);
}

int ctl_json_dump_string(const cJSON *v, char **ret) {
        return dump_to_string(json_dump_flow, v, false, ret);
}

/* ==== YAML like PyYAML's safe_dump ==== */

/* Would YAML 1.1 (PyYAML's implicit resolvers) read this plain scalar as something other than a
 * string? Then it must be quoted. */
static bool yaml_resolves_implicitly(const char *s) {
        static const char *const patterns[] = {
                /* bool */
                "^(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
                /* int */
                "^[-+]?0b[0-1_]+$",
                "^[-+]?0[0-7_]+$",
                "^[-+]?(0|[1-9][0-9_]*)$",
                "^[-+]?0x[0-9a-fA-F_]+$",
                "^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$",
                /* float */
                "^[-+]?([0-9][0-9_]*)\\.[0-9_]*([eE][-+][0-9]+)?$",
                "^[-+]?\\.[0-9_]+([eE][-+][0-9]+)?$",
                "^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*$",
                "^[-+]?\\.(inf|Inf|INF)$",
                "^\\.(nan|NaN|NAN)$",
                /* null, merge, value */
                "^(~|null|Null|NULL)$",
                "^<<$",
                "^=$",
                /* timestamp */
                "^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$",
                ("^[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?([Tt]|[ "
                 "\t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]"
                 "(\\.[0-9]*)?(([ \t]*)Z|[-+][0-9][0-9]?(:[0-9][0-9])?)?$"),
        };

        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                regex_t re;
                bool match;
                if (regcomp(&re, patterns[i], REG_EXTENDED | REG_NOSUB) != 0)
                        continue;
                match = regexec(&re, s, 0, NULL, 0) == 0;
                regfree(&re);
                if (match)
                        return true;
        }
        return false;
}

typedef enum YamlStyle {
        YAML_PLAIN,
        YAML_SINGLE,
        YAML_DOUBLE,
} YamlStyle;

static YamlStyle yaml_scalar_style(const char *s, bool flow) {
        size_t l = strlen(s);
        bool multiline = false;

        if (l == 0 || yaml_resolves_implicitly(s))
                return YAML_SINGLE;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '\n')
                        multiline = true;
                else if (*p < 0x20 || *p == 0x7f)
                        return YAML_DOUBLE;
        }
        if (multiline)
                return YAML_SINGLE;
        if (strchr("#,[]{}&*!|>'\"%@`", s[0]) || (strchr("?:-", s[0]) && (s[1] == '\0' || s[1] == ' ')))
                return YAML_SINGLE;
        if (startswith(s, "---") || startswith(s, "..."))
                return YAML_SINGLE;
        if (s[0] == ' ' || s[l - 1] == ' ' || strstr(s, ": ") || s[l - 1] == ':' || strstr(s, " #"))
                return YAML_SINGLE;
        if (flow && strpbrk(s, ",?[]{}"))
                return YAML_SINGLE;
        return YAML_PLAIN;
}

static void yaml_put_string(const char *s, bool flow, unsigned indent, FILE *f) {
        switch (yaml_scalar_style(s, flow)) {
        case YAML_PLAIN:
                fputs(s, f);
                break;
        case YAML_SINGLE:
                fputc('\'', f);
                for (const char *p = s; *p; p++) {
                        if (*p == '\'')
                                fputs("''", f);
                        else if (*p == '\n')
                                fprintf(f, "\n\n%*s", (int)indent, "");
                        else
                                fputc(*p, f);
                }
                fputc('\'', f);
                break;
        case YAML_DOUBLE:
                fputc('"', f);
                for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                        if (*p == '"' || *p == '\\')
                                fprintf(f, "\\%c", *p);
                        else if (*p == '\t')
                                fputs("\\t", f);
                        else if (*p == '\n')
                                fputs("\\n", f);
                        else if (*p == '\r')
                                fputs("\\r", f);
                        else if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\x%02X", *p);
                        else
                                fputc(*p, f);
                }
                fputc('"', f);
                break;
        }
}

static void yaml_put_scalar(const cJSON *v, bool flow, unsigned indent, FILE *f) {
        char buf[64];
        int64_t i;

        if (!v || cJSON_IsNull(v))
                fputs("null", f);
        else if (cJSON_IsBool(v))
                fputs(cJSON_IsTrue(v) ? "true" : "false", f);
        else if (json_is_integer(v, &i))
                fprintf(f, "%" PRIi64, i);
        else if (cJSON_IsNumber(v)) {
                float_repr(v->valuedouble, buf, sizeof(buf));
                if (streq(buf, "inf") || streq(buf, "-inf") || streq(buf, "nan"))
                        fprintf(f, "%s.%s", buf[0] == '-' ? "-" : "", buf + (buf[0] == '-'));
                else {
                        char *e = strchr(buf, 'e');
                        if (e && !strchr(buf, '.'))
                                fprintf(f, "%.*s.0%s", (int)(e - buf), buf, e);
                        else
                                fputs(buf, f);
                }
        } else if (cJSON_IsString(v))
                yaml_put_string(v->valuestring, flow, indent, f);
}

static bool yaml_is_collection(const cJSON *v) {
        return cJSON_IsArray(v) || cJSON_IsObject(v);
}

static int compare_keys(const void *a, const void *b) {
        const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
        return strcmp(x->string, y->string);
}

/* The object's members sorted by key, as PyYAML's sort_keys=True. */
static const cJSON **sorted_members(const cJSON *o, size_t *ret_n) {
        const cJSON **items, *e;
        size_t n = 0;

        items = new0(const cJSON *, (size_t)cJSON_GetArraySize(o));
        if (!items)
                return NULL;
        cJSON_ArrayForEach (e, o)
                items[n++] = e;
        qsort(items, n, sizeof(*items), compare_keys);
        *ret_n = n;
        return items;
}

static int yaml_put_flow(const cJSON *v, FILE *f) {
        bool first = true;

        if (cJSON_IsArray(v)) {
                const cJSON *e;
                fputc('[', f);
                cJSON_ArrayForEach (e, v) {
                        fputs(first ? "" : ", ", f);
                        first = false;
                        yaml_put_flow(e, f);
                }
                fputc(']', f);
        } else if (cJSON_IsObject(v)) {
                _cleanup_free_ const cJSON **items = NULL;
                size_t n = 0;
                items = sorted_members(v, &n);
                if (!items)
                        return -ENOMEM;
                fputc('{', f);
                for (size_t i = 0; i < n; i++) {
                        fputs(i > 0 ? ", " : "", f);
                        yaml_put_string(items[i]->string, true, 0, f);
                        fputs(": ", f);
                        yaml_put_flow(items[i], f);
                }
                fputc('}', f);
        } else
                yaml_put_scalar(v, true, 0, f);
        return 0;
}

static int yaml_put_block(const cJSON *v, unsigned indent, FILE *f);

/* A value after "key:" or "- ": scalars and empty collections on the same line. */
static int yaml_put_value(const cJSON *v, unsigned indent, bool in_sequence, FILE *f) {
        if (cJSON_IsObject(v) && cJSON_GetArraySize(v) == 0) {
                fputs(" {}\n", f);
                return 0;
        }
        if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0) {
                fputs(" []\n", f);
                return 0;
        }
        if (!yaml_is_collection(v)) {
                fputc(' ', f);
                yaml_put_scalar(v, false, indent + 2, f);
                fputc('\n', f);
                return 0;
        }
        fputc('\n', f);
        /* Sequences inside a mapping are not indented (PyYAML's indentless sequences). */
        return yaml_put_block(v, cJSON_IsArray(v) && !in_sequence ? indent : indent + 2, f);
}

static int yaml_put_block(const cJSON *v, unsigned indent, FILE *f) {
        int r;

        if (cJSON_IsObject(v)) {
                _cleanup_free_ const cJSON **items = NULL;
                size_t n = 0;
                items = sorted_members(v, &n);
                if (!items)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        fprintf(f, "%*s", (int)indent, "");
                        yaml_put_string(items[i]->string, false, indent, f);
                        fputc(':', f);
                        r = yaml_put_value(items[i], indent, false, f);
                        if (r < 0)
                                return r;
                }
        } else if (cJSON_IsArray(v)) {
                const cJSON *e;
                cJSON_ArrayForEach (e, v) {
                        _cleanup_free_ char *sub = NULL;
                        fprintf(f, "%*s-", (int)indent, "");
                        if (!yaml_is_collection(e) || cJSON_GetArraySize(e) == 0) {
                                r = yaml_put_value(e, indent, true, f);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        /* A non-empty collection starts on the dash's line: render it at indent + 2 and
                         * drop the first line's indentation. */
                        {
                                size_t size = 0;
                                FILE *g = open_memstream(&sub, &size);
                                if (!g)
                                        return -ENOMEM;
                                r = yaml_put_block(e, indent + 2, g);
                                if (fclose(g) != 0)
                                        return -ENOMEM;
                                if (r < 0)
                                        return r;
                        }
                        fprintf(f, " %s", sub + indent + 2);
                }
        } else {
                fprintf(f, "%*s", (int)indent, "");
                yaml_put_scalar(v, false, indent, f);
                fputs("\n...\n", f);
        }
        return 0;
}

int ctl_yaml_dump(const cJSON *v, bool flow, FILE *f) {
        int r;

        if (flow || (yaml_is_collection(v) && cJSON_GetArraySize(v) == 0)) {
                r = yaml_put_flow(v, f);
                if (yaml_is_collection(v))
                        fputc('\n', f);
                else
                        fputs("\n...\n", f);
                return r;
        }
        return yaml_put_block(v, 0, f);
}

static int yaml_dump(const cJSON *v, bool flow, FILE *f) {
        return ctl_yaml_dump(v, flow, f);
}

int ctl_yaml_dump_string(const cJSON *v, bool flow, char **ret) {
        return dump_to_string(yaml_dump, v, flow, ret);
}
