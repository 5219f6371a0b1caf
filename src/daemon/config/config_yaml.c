/* SPDX-License-Identifier: MIT */
/*
 * YAML → YNode tree with libyaml's document API. Every node remembers the name of its source and its
 * 1-based line/column so that every later diagnostic can point at the exact spot, even after files of
 * a directory and environment overrides were merged into one tree. Aliases are expanded; depth and
 * node count are bounded so that a hostile document ("billion laughs") cannot exhaust memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config-internal.h"

#define YNODE_DEPTH_MAX 64
#define YNODE_COUNT_MAX 100000

YNode *ynode_free(YNode *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->file);
        free(n->value);
        free(n->key);
        return mfree(n);
}

YNode *ynode_new(YNodeType type, const char *file, unsigned line, unsigned column) {
        YNode *n;

        n = calloc(1, sizeof(YNode));
        if (!n)
                return NULL;
        n->type = type;
        n->line = line;
        n->column = column;
        n->file = strdup(file ?: "");
        if (!n->file)
                return mfree(n);
        return n;
}

int ynode_append(YNode *parent, YNode *child) {
        YNode **a;

        a = reallocarray(parent->items, parent->n + 1, sizeof(YNode *));
        if (!a)
                return -ENOMEM;
        parent->items = a;
        parent->items[parent->n++] = child;
        return 0;
}

int ynode_set_scalar(YNode *n, const char *value) {
        return free_and_strdup(&n->value, value);
}

YNode *ynode_get(const YNode *map, const char *key) {
        if (!map || map->type != YNODE_MAPPING)
                return NULL;
        /* The last occurrence wins, as in PyYAML. */
        for (size_t i = map->n; i > 0; i--)
                if (streq_ptr(map->items[i - 1]->key, key))
                        return map->items[i - 1];
        return NULL;
}

const char *ynode_type_name(const YNode *n) {
        if (!n)
                return "nothing";
        switch (n->type) {
        case YNODE_MAPPING:
                return "a mapping";
        case YNODE_SEQUENCE:
                return "a list";
        default:
                return "a scalar";
        }
}

bool ynode_is_null(const YNode *n) {
        if (!n)
                return true;
        if (n->type != YNODE_SCALAR || n->quoted)
                return false;
        return isempty(n->value) || streq(n->value, "~") || streq(n->value, "null") ||
                streq(n->value, "Null") || streq(n->value, "NULL");
}

typedef struct Converter {
        yaml_document_t *doc;
        const char *name;
        bool zero_marks;
        size_t count;
} Converter;

static int convert(Converter *cv, yaml_node_t *yn, unsigned depth, YNode **ret) {
        _cleanup_(ynode_freep) YNode *n = NULL;
        int r;

        if (depth > YNODE_DEPTH_MAX || ++cv->count > YNODE_COUNT_MAX)
                return -E2BIG;

        n = ynode_new(
                yn->type == YAML_MAPPING_NODE            ? YNODE_MAPPING
                        : yn->type == YAML_SEQUENCE_NODE ? YNODE_SEQUENCE
                                                         : YNODE_SCALAR,
                cv->name,
                cv->zero_marks ? 0 : (unsigned)yn->start_mark.line + 1,
                cv->zero_marks ? 0 : (unsigned)yn->start_mark.column + 1);
        if (!n)
                return -ENOMEM;

        switch (yn->type) {
        case YAML_SCALAR_NODE:
                n->value = strndup((const char *)yn->data.scalar.value, yn->data.scalar.length);
                if (!n->value)
                        return -ENOMEM;
                n->quoted = yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
                        yn->data.scalar.style != YAML_ANY_SCALAR_STYLE;
                break;

        case YAML_SEQUENCE_NODE:
                for (yaml_node_item_t *i = yn->data.sequence.items.start; i < yn->data.sequence.items.top;
                     i++) {
                        YNode *child = NULL;

                        r = convert(cv, yaml_document_get_node(cv->doc, *i), depth + 1, &child);
                        if (r < 0)
                                return r;
                        r = ynode_append(n, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
                break;

        case YAML_MAPPING_NODE:
                for (yaml_node_pair_t *pr = yn->data.mapping.pairs.start; pr < yn->data.mapping.pairs.top;
                     pr++) {
                        yaml_node_t *k = yaml_document_get_node(cv->doc, pr->key);
                        YNode *child = NULL;

                        r = convert(cv, yaml_document_get_node(cv->doc, pr->value), depth + 1, &child);
                        if (r < 0)
                                return r;
                        if (k && k->type == YAML_SCALAR_NODE)
                                child->key =
                                        strndup((const char *)k->data.scalar.value, k->data.scalar.length);
                        else
                                child->key = strdup("?"); /* complex keys are not meaningful here */
                        if (!child->key) {
                                ynode_free(child);
                                return -ENOMEM;
                        }
                        if (k && !cv->zero_marks) {
                                child->key_line = (unsigned)k->start_mark.line + 1;
                                child->key_column = (unsigned)k->start_mark.column + 1;
                        }
                        r = ynode_append(n, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
                break;

        default:
                return -EINVAL;
        }

        *ret = TAKE_PTR(n);
        return 0;
}

/* The parser's error as "YAML syntax error: [context] problem" at its position (0:0 with zero_marks). */
static int
syntax_error(const yaml_parser_t *parser, const char *name, bool zero_marks, ConfigDiagnostics *diags) {
        const char *problem = parser->problem ?: "syntax error";
        unsigned line = zero_marks ? 0 : (unsigned)parser->problem_mark.line + 1,
                 col = zero_marks ? 0 : (unsigned)parser->problem_mark.column + 1;

        if (parser->context)
                return config_diagnostics_add(
                        diags,
                        CONFIG_ERROR,
                        name,
                        line,
                        col,
                        "",
                        "YAML syntax error: %s %s",
                        parser->context,
                        problem);
        return config_diagnostics_add(
                diags, CONFIG_ERROR, name, line, col, "", "YAML syntax error: %s", problem);
}

int ynode_parse(const char *name, const char *text, bool zero_marks, YNode **ret, ConfigDiagnostics *diags) {
        yaml_parser_t parser;
        yaml_document_t doc;
        yaml_node_t *root;
        YNode *n = NULL;
        int r;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
        if (!yaml_parser_load(&parser, &doc)) {
                r = syntax_error(&parser, name, zero_marks, diags);
                yaml_parser_delete(&parser);
                return r < 0 ? r : -EINVAL;
        }

        /* PyYAML's safe_load() (Patroni) refuses a stream of several documents: so do we, rather than
         * silently using the first. Only the next event is needed, not a parse of the next document (after
         * an empty stream, the loader has already taken the end: no event). */
        {
                yaml_event_t event;

                if (!yaml_parser_parse(&parser, &event))
                        r = syntax_error(&parser, name, zero_marks, diags);
                else {
                        r = 0;
                        if (!IN_SET(event.type, YAML_STREAM_END_EVENT, YAML_NO_EVENT))
                                r = config_diagnostics_add(
                                        diags,
                                        CONFIG_ERROR,
                                        name,
                                        zero_marks ? 0 : (unsigned)event.start_mark.line + 1,
                                        zero_marks ? 0 : (unsigned)event.start_mark.column + 1,
                                        "",
                                        "a second YAML document starts here: the configuration must be "
                                        "a single document");
                        else
                                r = 1;
                        yaml_event_delete(&event);
                }
                if (r <= 0) {
                        yaml_document_delete(&doc);
                        yaml_parser_delete(&parser);
                        return r < 0 ? r : -EINVAL;
                }
        }

        root = yaml_document_get_root_node(&doc);
        if (root) {
                Converter cv = {.doc = &doc, .name = name, .zero_marks = zero_marks};

                r = convert(&cv, root, 0, &n);
                if (r == -E2BIG)
                        (void)config_diagnostics_add(
                                diags,
                                CONFIG_ERROR,
                                name,
                                zero_marks ? 0 : 1,
                                zero_marks ? 0 : 1,
                                "",
                                "document too large or too deeply nested");
        } else
                r = 0;
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        if (r < 0)
                return r == -E2BIG ? -EINVAL : r;
        *ret = n;
        return 0;
}

int ynode_merge(YNode **dst, YNode *src) {
        if (!src)
                return 0;
        if (!*dst || (*dst)->type != YNODE_MAPPING || src->type != YNODE_MAPPING) {
                /* Replace, but keep the key this node had in its parent. */
                if (*dst && (*dst)->key && !src->key) {
                        src->key = TAKE_PTR((*dst)->key);
                        src->key_line = (*dst)->key_line;
                        src->key_column = (*dst)->key_column;
                }
                ynode_free(*dst);
                *dst = src;
                return 0;
        }

        for (size_t i = 0; i < src->n; i++) {
                YNode *child = TAKE_PTR(src->items[i]);
                bool found = false;
                int r;

                for (size_t j = (*dst)->n; j > 0; j--)
                        if (streq_ptr((*dst)->items[j - 1]->key, child->key)) {
                                r = ynode_merge(&(*dst)->items[j - 1], child);
                                if (r < 0)
                                        return r;
                                found = true;
                                break;
                        }
                if (!found) {
                        r = ynode_append(*dst, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
        }
        src->n = 0;
        ynode_free(src);
        return 0;
}

static bool plain_is_bool(const char *s, bool *ret) {
        static const char *const t[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
        static const char *const f[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};

        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                if (streq(s, t[i])) {
                        *ret = true;
                        return true;
                }
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                if (streq(s, f[i])) {
                        *ret = false;
                        return true;
                }
        return false;
}

static bool plain_is_number(const char *s, double *ret) {
        const char *p = s;
        bool digits = false, dot = false;
        char *end = NULL;

        if (*p == '+' || *p == '-')
                p++;
        for (; *p; p++) {
                if (*p >= '0' && *p <= '9')
                        digits = true;
                else if (*p == '.' && !dot)
                        dot = true;
                else if ((*p == 'e' || *p == 'E') && digits && dot) {
                        p++;
                        if (*p == '+' || *p == '-')
                                p++;
                        if (!*p)
                                return false;
                        for (; *p; p++)
                                if (*p < '0' || *p > '9')
                                        return false;
                        break;
                } else
                        return false;
        }
        if (!digits)
                return false;
        errno = 0;
        *ret = strtod(s, &end);
        return errno == 0 && end && *end == '\0';
}

cJSON *ynode_to_json(const YNode *n) {
        cJSON *j;

        if (!n)
                return cJSON_CreateNull();
        switch (n->type) {
        case YNODE_SCALAR: {
                bool b;
                double d;

                if (n->quoted)
                        return cJSON_CreateString(n->value);
                if (ynode_is_null(n))
                        return cJSON_CreateNull();
                if (plain_is_bool(n->value, &b))
                        return cJSON_CreateBool(b);
                if (plain_is_number(n->value, &d))
                        return cJSON_CreateNumber(d);
                return cJSON_CreateString(n->value);
        }
        case YNODE_SEQUENCE:
                j = cJSON_CreateArray();
                if (!j)
                        return NULL;
                for (size_t i = 0; i < n->n; i++) {
                        cJSON *c = ynode_to_json(n->items[i]);
                        if (!c || !cJSON_AddItemToArray(j, c)) {
                                cJSON_Delete(c);
                                cJSON_Delete(j);
                                return NULL;
                        }
                }
                return j;
        case YNODE_MAPPING:
                j = cJSON_CreateObject();
                if (!j)
                        return NULL;
                for (size_t i = 0; i < n->n; i++) {
                        cJSON *c = ynode_to_json(n->items[i]);
                        if (!c) {
                                cJSON_Delete(j);
                                return NULL;
                        }
                        /* Later duplicates replace earlier ones, keeping the first position. */
                        if (cJSON_GetObjectItemCaseSensitive(j, n->items[i]->key)) {
                                if (!cJSON_ReplaceItemInObjectCaseSensitive(j, n->items[i]->key, c)) {
                                        cJSON_Delete(c);
                                        cJSON_Delete(j);
                                        return NULL;
                                }
                        } else if (!cJSON_AddItemToObject(j, n->items[i]->key, c)) {
                                cJSON_Delete(c);
                                cJSON_Delete(j);
                                return NULL;
                        }
                }
                return j;
        }
        return NULL;
}
