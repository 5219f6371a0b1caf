/* SPDX-License-Identifier: MIT */
/*
 * JSON and base64 helpers over cJSON: a bounded parser (size and nesting caps, so a peer cannot make us
 * allocate or recurse without limit), typed getters that tell "missing" (-ENOENT) from "wrong type"
 * (-EBADMSG) and accept etcd's int64-as-string encoding, int64-exact number output, and standard padded
 * base64 as the etcd v3 JSON gateway uses for keys and values. Library code: non-logging, no event loop.
 */
#pragma once

#include <stdint.h>

#include <cjson/cJSON.h>

#include "pgha/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);

/* Default caps for json_parse(): the largest document we accept from a peer, and the deepest nesting.
 * etcd replies for a cluster prefix are a few KB per member; 8 MiB leaves room for hundreds. */
#define JSON_MAX_SIZE_DEFAULT  (8U * 1024U * 1024U)
#define JSON_MAX_DEPTH_DEFAULT 64U

int json_parse(const char *data, size_t size, size_t max_size, unsigned max_depth, cJSON **ret)
        _warn_unused_result_;
int json_parse_string(const char *s, cJSON **ret) _warn_unused_result_;

const cJSON *json_get(const cJSON *obj, const char *key);
/* Python's bool() of a JSON value (Patroni reads tags and flags that way): false for absent, null, false,
 * 0, "" and empty arrays/objects. */
bool json_truthy(const cJSON *v);
/* Patroni's parse_bool() of a configuration value: true for true, a non-zero number, or "true", "on",
 * "yes", "1" in any case. */
bool json_parse_bool(const cJSON *v);

int json_get_string(const cJSON *obj, const char *key, const char **ret);
int json_get_int64(const cJSON *obj, const char *key, int64_t *ret);
int json_get_uint64(const cJSON *obj, const char *key, uint64_t *ret);
int json_get_bool(const cJSON *obj, const char *key, bool *ret);
int json_get_object(const cJSON *obj, const char *key, const cJSON **ret);
int json_get_array(const cJSON *obj, const char *key, const cJSON **ret);
int json_value_int64(const cJSON *item, int64_t *ret);

int json_add_string(cJSON *obj, const char *key, const char *value);
int json_add_int64(cJSON *obj, const char *key, int64_t value);
int json_add_bool(cJSON *obj, const char *key, bool value);
int json_add_item(cJSON *obj, const char *key, cJSON *item);
cJSON *json_int64_new(int64_t value);

int json_print_compact(const cJSON *item, char **ret) _warn_unused_result_;
char *json_ascii_escape(const char *text);

int base64_encode(const void *data, size_t size, char **ret) _warn_unused_result_;
int base64_decode(const char *s, size_t length, char **ret, size_t *ret_size) _warn_unused_result_;
