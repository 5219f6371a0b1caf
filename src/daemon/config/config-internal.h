/* SPDX-License-Identifier: MIT */
/*
 * Private to src/daemon/config*.c: the YAML node tree (every node keeps its source name and libyaml
 * mark, 1-based) and the key table that maps dotted paths onto Config fields.
 */
#pragma once

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pgha/config.h"

typedef enum YNodeType {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
} YNodeType;

typedef struct YNode YNode;
struct YNode {
        YNodeType type;
        char *file;
        unsigned line, column;
        char *value; /* scalar text */
        bool quoted; /* scalar was not plain (quoted or block), so it is always a string */
        char *key;   /* set on the children of a mapping */
        unsigned key_line, key_column;
        YNode **items;
        size_t n;
};

/* Frees n and its children; returns NULL. */
YNode *ynode_free(YNode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(YNode *, ynode_free);
/* A new empty node of the given type placed at file:line:column; NULL on OOM. */
YNode *ynode_new(YNodeType type, const char *file, unsigned line, unsigned column);
/* Appends child (ownership passes on success only). */
int ynode_append(YNode *parent, YNode *child);
/* Replaces a scalar's text. */
int ynode_set_scalar(YNode *n, const char *value);
/* The value of key in a mapping (last occurrence), or NULL (also when map is not a mapping). */
YNode *ynode_get(const YNode *map, const char *key);
/* Parses a YAML document; *ret is NULL for an empty document. A syntax error is reported in diags
 * (file name `name`; with zero_marks every node and problem is placed at 0:0, as for environment
 * variables) and
 * returns -EINVAL. */
int ynode_parse(const char *name, const char *text, bool zero_marks, YNode **ret, ConfigDiagnostics *diags);
/* Deep merge: mappings merge key by key, anything else in src replaces dst. Consumes src. */
int ynode_merge(YNode **dst, YNode *src);
/* YAML 1.1 (PyYAML) typing of plain scalars: null, booleans (yes/no/on/off/true/false), ints,
 * floats, else strings; quoted scalars are strings. */
cJSON *ynode_to_json(const YNode *n);
/* NULL, or a plain scalar that YAML reads as null (empty, ~, null). */
bool ynode_is_null(const YNode *n);
/* "a mapping", "a list", "a scalar" for messages. */
const char *ynode_type_name(const YNode *n);

typedef enum ConfigKeyType {
        CK_SECTION,     /* a mapping whose keys are in the table */
        CK_ALIAS,       /* deprecated or alternative spelling of .alias_of */
        CK_STRING,      /* char * */
        CK_BOOL,        /* bool */
        CK_INT,         /* int, within [min, max] */
        CK_INT64,       /* int64_t, within [min, max] */
        CK_DURATION,    /* usec_t; plain integers are seconds */
        CK_ADDRESS,     /* ConfigAddress "host:port" */
        CK_LISTEN,      /* ConfigAddress "host[,host2]:port" */
        CK_STRV,        /* char ** from a list of strings */
        CK_STRV_COMMA,  /* char ** from a list or a comma separated string */
        CK_JSON_OBJECT, /* cJSON * object (generic mapping) */
        CK_JSON_ANY,    /* cJSON * (any YAML value) */
        CK_LOG_LEVEL,   /* int syslog level from a Python level name */
        CK_WATCHDOG_MODE,
        CK_WATCHDOG_DRIVER,
        CK_VIRTUAL, /* parsed by .parse into other fields; no storage of its own */
        _CK_MAX,
} ConfigKeyType;

typedef enum ConfigKeyFlags {
        CK_REQUIRED = 1 << 0,
        CK_NO_RELOAD = 1 << 1,
        CK_SECRET = 1 << 2,
        CK_DEPRECATED = 1 << 3, /* with CK_ALIAS: warn when used */
} ConfigKeyFlags;

typedef struct ConfigParser ConfigParser;
typedef struct ConfigKey ConfigKey;

struct ConfigKey {
        const char *path;
        ConfigKeyType type;
        size_t offset;
        const char *def; /* default as YAML scalar text, NULL = none */
        unsigned flags;
        int64_t min, max; /* CK_INT/CK_INT64 range when min < max */
        /* Optional: replaces the generic parser for this key; must report its own problems. */
        int (*parse)(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k, void *field);
        const char *alias_of;
};

struct ConfigParser {
        Config *config;
        ConfigDiagnostics *diags;
        bool *seen; /* per table entry */
        const YNode *root;
        bool etcd_seen, etcd3_seen;
};

extern const ConfigKey config_keys[];
extern const size_t config_keys_n;
/* The table entry of a canonical dotted path, or NULL. */
const ConfigKey *config_key_find(const char *path);

/* Report a problem at n's position; _error returns -EINVAL (or -ENOMEM), _warning 0 (or -ENOMEM). */
int config_parser_error(ConfigParser *p, const YNode *n, const char *path, const char *format, ...)
        _printf_(4, 5);
int config_parser_warning(ConfigParser *p, const YNode *n, const char *path, const char *format, ...)
        _printf_(4, 5);
/* Parses n into the field described by k (generic types), reporting problems. */
int config_key_parse(ConfigParser *p, const YNode *n, const char *path, const ConfigKey *k);
/* Applies k's default (if any) to c. */
int config_key_set_default(Config *c, const ConfigKey *k);
/* Frees the storage of k's field and resets it. */
void config_key_free_field(Config *c, const ConfigKey *k);
/* k's value as JSON, or NULL when unset (or OOM). */
cJSON *config_key_to_json(const Config *c, const ConfigKey *k, bool mask_secrets);

/* "host:port" / "[v6]:port" / with multi_host "h1,h2:port": -EINVAL (shape), -ERANGE (port). */
int config_address_parse(const char *s, bool multi_host, ConfigAddress *ret);
void config_address_done(ConfigAddress *a);
/* NULL-terminated string lists. */
char **strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
size_t strv_length(char *const *l);
bool strv_contains(char *const *l, const char *s);

/* Whether key is a top-level key of the dynamic configuration (patroni-compat.md §5.3). */
bool config_is_dynamic_key(const char *key);
YNode config_key_position(const YNode *n);
/* The checks of config_checks.c, run after post_checks(): reports problems, -ENOMEM only on OOM. */
int config_extra_checks(ConfigParser *p);

/* Environment overrides: builds the YAML tree of every recognised PATRONI_* variable. */
int config_env_tree(YNode **ret, ConfigDiagnostics *diags);
/* getenv(), falling back to the values config_env_scrub() removed. */
const char *config_env_get(const char *name);

/* Local helpers (macro.h has no set-membership macros). */
#define STR_IN_SET(x, ...)                                                  \
        ({                                                                  \
                const char *_x_ = (x);                                      \
                bool _found_ = false;                                       \
                const char *const _set_[] = {__VA_ARGS__};                  \
                for (size_t _i_ = 0; _x_ && _i_ < ELEMENTSOF(_set_); _i_++) \
                        if (streq(_x_, _set_[_i_])) {                       \
                                _found_ = true;                             \
                                break;                                      \
                        }                                                   \
                _found_;                                                    \
        })
#define IN_SET(x, ...)                                               \
        ({                                                           \
                typeof(x) _x_ = (x);                                 \
                bool _found_ = false;                                \
                const typeof(x) _set_[] = {__VA_ARGS__};             \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++) \
                        if (_x_ == _set_[_i_])                       \
                                _found_ = true;                      \
                _found_;                                             \
        })
