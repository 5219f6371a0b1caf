/* SPDX-License-Identifier: MIT */
/*
 * edit-config's pure parts: "-s key.path=value" and "-p guc=value" pairs applied to the dynamic
 * configuration as patronictl 3.0.2 applies them, Patroni's patch_config() merge for --apply, YAML
 * documents read with the daemon's own YAML reader (PyYAML typing), and difflib's unified diff of the
 * before/after YAML. Invariant: the input configuration is only changed through these functions, so
 * "nothing changed" can be decided by comparing the JSON before and after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/config/config-internal.h"
#include "ctl.h"
#include "pgha/json.h"

/* ==== YAML input ==== */

int ctl_yaml_parse(const char *name, const char *text, cJSON **ret, char **ret_error) {
        _cleanup_(config_diagnostics_done) ConfigDiagnostics diags = {};
        _cleanup_(ynode_freep) YNode *n = NULL;
        cJSON *j;
        int r;

        r = ynode_parse(name, text, false, &n, &diags);
        if (r < 0) {
                if (ret_error) {
                        const ConfigDiagnostic *d = diags.n > 0 ? &diags.items[0] : NULL;
                        char *m = NULL;
                        if (d && asprintf(&m, "%s:%u:%u: %s", d->file, d->line, d->column, d->message) < 0)
                                m = NULL;
                        else if (!d && asprintf(&m, "%s: invalid YAML", name) < 0)
                                m = NULL;
                        *ret_error = m;
                }
                return r == -ENOMEM ? r : -EINVAL;
        }
        j = n ? ynode_to_json(n) : cJSON_CreateNull();
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* ==== -s/--set and -p/--pg ==== */

static bool object_is_empty(const cJSON *o) {
        return cJSON_IsObject(o) && !o->child;
}

static int set_path_value(cJSON *config, char **path, size_t n, cJSON *value, bool in_parameters) {
        _cleanup_free_ char *joined = NULL;
        cJSON *sub;
        int r;

        if (in_parameters && n > 1) {
                /* GUC names may contain dots: below postgresql.parameters the rest is one key. */
                size_t len = 0, at = 0;
                for (size_t i = 0; i < n; i++)
                        len += strlen(path[i]) + 1;
                joined = malloc(len);
                if (!joined)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        size_t l = strlen(path[i]);
                        if (i > 0)
                                joined[at++] = '.';
                        memcpy(joined + at, path[i], l);
                        at += l;
                }
                joined[at] = '\0';
                return set_path_value(config, &joined, 1, value, false);
        }

        if (n == 1) {
                if (cJSON_IsNull(value)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(config, path[0]);
                        cJSON_Delete(value);
                        return 0;
                }
                cJSON_DeleteItemFromObjectCaseSensitive(config, path[0]);
                return json_add_item(config, path[0], value);
        }

        sub = cJSON_GetObjectItemCaseSensitive(config, path[0]);
        if (!cJSON_IsObject(sub)) {
                cJSON_DeleteItemFromObjectCaseSensitive(config, path[0]);
                sub = cJSON_CreateObject();
                if (!sub || json_add_item(config, path[0], sub) < 0) {
                        cJSON_Delete(value);
                        return -ENOMEM;
                }
        }
        r = set_path_value(sub, path + 1, n - 1, value, false);
        if (r < 0)
                return r;
        if (object_is_empty(sub))
                cJSON_DeleteItemFromObjectCaseSensitive(config, path[0]);
        return 0;
}

static char *strip(char *s) {
        char *e;
        s += strspn(s, " \t\n\r\f\v");
        e = s + strlen(s);
        while (e > s && strchr(" \t\n\r\f\v", e[-1]))
                *--e = '\0';
        return s;
}

int ctl_config_set_pair(cJSON *config, const char *pair, char **ret_error) {
        _cleanup_free_ char *copy = NULL, *error = NULL;
        _cleanup_free_ char **path = NULL;
        cJSON *value = NULL;
        char *eq, *key;
        size_t n = 0;
        bool top_postgresql;
        int r;

        if (!cJSON_IsObject(config))
                return -EINVAL;
        copy = strdup(pair ?: "");
        if (!copy)
                return -ENOMEM;
        eq = strchr(copy, '=');
        if (isempty(pair) || !eq) {
                if (ret_error && asprintf(ret_error, "Invalid parameter setting %s", strempty(pair)) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        *eq = '\0';
        key = strip(copy);
        if (isempty(key)) {
                if (ret_error && asprintf(ret_error, "Invalid parameter setting %s", pair) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        r = ctl_yaml_parse(pair, eq + 1, &value, &error);
        if (r < 0) {
                if (ret_error &&
                    asprintf(ret_error, "Invalid value in parameter setting %s: %s", pair, strna(error)) < 0)
                        *ret_error = NULL;
                return r;
        }
        path = new0(char *, strlen(key) + 1);
        if (!path) {
                cJSON_Delete(value);
                return -ENOMEM;
        }
        /* Python's str.split('.'): empty components are kept. */
        path[n++] = key;
        for (char *p = key; *p; p++)
                if (*p == '.') {
                        *p = '\0';
                        path[n++] = p + 1;
                }
        top_postgresql = n > 2 && streq(path[0], "postgresql") && streq(path[1], "parameters");
        if (top_postgresql) {
                /* Walk postgresql and parameters, then treat the rest as one GUC name. */
                cJSON *pg = cJSON_GetObjectItemCaseSensitive(config, "postgresql");
                cJSON *params;
                if (!cJSON_IsObject(pg)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(config, "postgresql");
                        pg = cJSON_CreateObject();
                        if (!pg || json_add_item(config, "postgresql", pg) < 0)
                                return cJSON_Delete(value), -ENOMEM;
                }
                params = cJSON_GetObjectItemCaseSensitive(pg, "parameters");
                if (!cJSON_IsObject(params)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(pg, "parameters");
                        params = cJSON_CreateObject();
                        if (!params || json_add_item(pg, "parameters", params) < 0)
                                return cJSON_Delete(value), -ENOMEM;
                }
                r = set_path_value(params, path + 2, n - 2, value, true);
                if (r < 0)
                        return r;
                if (object_is_empty(params))
                        cJSON_DeleteItemFromObjectCaseSensitive(pg, "parameters");
                if (object_is_empty(pg))
                        cJSON_DeleteItemFromObjectCaseSensitive(config, "postgresql");
                return 0;
        }
        return set_path_value(config, path, n, value, false);
}

/* ==== patch_config ==== */

static bool scalar_str_equal(const cJSON *a, const cJSON *b) {
        _cleanup_free_ char *x = NULL, *y = NULL;

        if (ctl_value_to_string(a, &x) < 0 || ctl_value_to_string(b, &y) < 0)
                return false;
        return streq(x, y);
}

bool ctl_config_patch(cJSON *config, const cJSON *patch) {
        const cJSON *e;
        bool changed = false;

        if (!cJSON_IsObject(config) || !cJSON_IsObject(patch))
                return false;
        cJSON_ArrayForEach (e, patch) {
                cJSON *cur = cJSON_GetObjectItemCaseSensitive(config, e->string);
                if (cJSON_IsNull(e)) {
                        if (cur) {
                                /* Patroni counts the removal as a change only if the old value was not None.
                                 */
                                changed = changed || !cJSON_IsNull(cur);
                                cJSON_DeleteItemFromObjectCaseSensitive(config, e->string);
                        }
                } else if (cur && cJSON_IsObject(e) && cJSON_IsObject(cur)) {
                        if (ctl_config_patch(cur, e))
                                changed = true;
                } else if (cur && !cJSON_IsObject(e) && scalar_str_equal(cur, e)) {
                        /* equal by their string forms: unchanged */
                } else {
                        cJSON *copy = cJSON_Duplicate(e, true);
                        if (!copy)
                                continue;
                        if (cur)
                                cJSON_ReplaceItemInObjectCaseSensitive(config, e->string, copy);
                        else
                                cJSON_AddItemToObject(config, e->string, copy);
                        changed = true;
                }
        }
        return changed;
}

/* ==== difflib.unified_diff ==== */

typedef struct Lines {
        char **l;
        size_t n;
} Lines;

static void lines_done(Lines *x) {
        free(x->l);
        x->l = NULL;
}

/* Python's string.rstrip('\n').split('\n') without copying: pointers into the (modified) buffer. */
static int lines_split(char *s, Lines *ret) {
        size_t len = strlen(s), n = 1;

        while (len > 0 && s[len - 1] == '\n')
                s[--len] = '\0';
        for (char *p = s; *p; p++)
                if (*p == '\n')
                        n++;
        ret->l = new0(char *, n);
        if (!ret->l)
                return -ENOMEM;
        ret->n = 0;
        for (char *p = s;;) {
                char *nl = strchr(p, '\n');
                ret->l[ret->n++] = p;
                if (!nl)
                        break;
                *nl = '\0';
                p = nl + 1;
        }
        return 0;
}

typedef struct Opcode {
        char tag; /* 'e'qual, 'r'eplace, 'd'elete, 'i'nsert */
        size_t i1, i2, j1, j2;
} Opcode;

static void put_range(FILE *f, size_t start, size_t length) {
        size_t beginning = start + 1;
        if (length == 1)
                fprintf(f, "%zu", beginning);
        else {
                if (length == 0)
                        beginning--;
                fprintf(f, "%zu,%zu", beginning, length);
        }
}

static void put_group(FILE *f, const Lines *a, const Lines *b, const Opcode *g, size_t n, bool *started) {
        if (!*started) {
                fputs("--- \n+++ \n", f);
                *started = true;
        }
        fputs("@@ -", f);
        put_range(f, g[0].i1, g[n - 1].i2 - g[0].i1);
        fputs(" +", f);
        put_range(f, g[0].j1, g[n - 1].j2 - g[0].j1);
        fputs(" @@\n", f);
        for (size_t k = 0; k < n; k++) {
                if (g[k].tag == 'e') {
                        for (size_t i = g[k].i1; i < g[k].i2; i++)
                                fprintf(f, " %s\n", a->l[i]);
                        continue;
                }
                if (g[k].tag == 'r' || g[k].tag == 'd')
                        for (size_t i = g[k].i1; i < g[k].i2; i++)
                                fprintf(f, "-%s\n", a->l[i]);
                if (g[k].tag == 'r' || g[k].tag == 'i')
                        for (size_t j = g[k].j1; j < g[k].j2; j++)
                                fprintf(f, "+%s\n", b->l[j]);
        }
}

int ctl_unified_diff(const char *before, const char *after, FILE *f) {
        _cleanup_free_ char *x = NULL, *y = NULL;
        _cleanup_free_ unsigned *lcs = NULL;
        _cleanup_free_ Opcode *ops = NULL, *group = NULL;
        _cleanup_(lines_done) Lines a = {}, b = {};
        size_t n_ops = 0, i = 0, j = 0, n_group = 0, w;
        const size_t ctx = 3;
        bool started = false;

        x = strdup(before);
        y = strdup(after);
        if (!x || !y || lines_split(x, &a) < 0 || lines_split(y, &b) < 0)
                return -ENOMEM;
        if ((a.n + 1) > SIZE_MAX / (b.n + 1) / sizeof(unsigned))
                return -E2BIG;
        /* lcs[i][j] = length of the longest common subsequence of a[i:] and b[j:]. */
        w = b.n + 1;
        lcs = new0(unsigned, (a.n + 1) * w);
        ops = new0(Opcode, a.n + b.n + 2);
        group = new0(Opcode, a.n + b.n + 2);
        if (!lcs || !ops || !group)
                return -ENOMEM;
        for (size_t ii = a.n; ii-- > 0;)
                for (size_t jj = b.n; jj-- > 0;)
                        lcs[ii * w + jj] = streq(a.l[ii], b.l[jj])
                                ? lcs[(ii + 1) * w + jj + 1] + 1
                                : MAX(lcs[(ii + 1) * w + jj], lcs[ii * w + jj + 1]);
        while (i < a.n || j < b.n) {
                if (i < a.n && j < b.n && streq(a.l[i], b.l[j])) {
                        size_t si = i, sj = j;
                        while (i < a.n && j < b.n && streq(a.l[i], b.l[j]))
                                i++, j++;
                        ops[n_ops++] = (Opcode){'e', si, i, sj, j};
                } else {
                        size_t si = i, sj = j;
                        while ((i < a.n || j < b.n) && !(i < a.n && j < b.n && streq(a.l[i], b.l[j]))) {
                                if (j >= b.n || (i < a.n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]))
                                        i++;
                                else
                                        j++;
                        }
                        ops[n_ops++] = (Opcode){si < i && sj < j ? 'r' : si < i ? 'd' : 'i', si, i, sj, j};
                }
        }
        if (n_ops == 0 || (n_ops == 1 && ops[0].tag == 'e'))
                return 0;

        /* difflib.SequenceMatcher.get_grouped_opcodes(3) */
        if (ops[0].tag == 'e') {
                ops[0].i1 = MAX(ops[0].i1, ops[0].i2 > ctx ? ops[0].i2 - ctx : 0);
                ops[0].j1 = MAX(ops[0].j1, ops[0].j2 > ctx ? ops[0].j2 - ctx : 0);
        }
        if (ops[n_ops - 1].tag == 'e') {
                ops[n_ops - 1].i2 = MIN(ops[n_ops - 1].i2, ops[n_ops - 1].i1 + ctx);
                ops[n_ops - 1].j2 = MIN(ops[n_ops - 1].j2, ops[n_ops - 1].j1 + ctx);
        }
        for (size_t k = 0; k < n_ops; k++) {
                Opcode o = ops[k];
                if (o.tag == 'e' && o.i2 - o.i1 > 2 * ctx) {
                        group[n_group++] =
                                (Opcode){'e', o.i1, MIN(o.i2, o.i1 + ctx), o.j1, MIN(o.j2, o.j1 + ctx)};
                        put_group(f, &a, &b, group, n_group, &started);
                        n_group = 0;
                        o.i1 = MAX(o.i1, o.i2 - ctx);
                        o.j1 = MAX(o.j1, o.j2 - ctx);
                }
                group[n_group++] = o;
        }
        if (n_group > 0 && !(n_group == 1 && group[0].tag == 'e'))
                put_group(f, &a, &b, group, n_group, &started);
        return 0;
}
