/* SPDX-License-Identifier: MIT */
/*
 * JSON helpers over cJSON and base64 for the etcd gateway. Invariant: nothing here trusts its input:
 * json_parse() refuses documents over the size cap or nested deeper than the depth cap before cJSON
 * recurses, every getter checks the type it returns, and base64_decode() rejects anything that is not
 * canonical padded standard base64. Non-logging library code.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>

#include "pgha/json.h"

/* Scans for nesting depth outside strings; cheap, and keeps cJSON's recursion bounded by our cap rather
 * than its compile-time limit of 1000. */
static int json_check_depth(const char *data, size_t size, unsigned max_depth) {
        unsigned depth = 0;
        bool in_string = false, escaped = false;

        for (size_t i = 0; i < size; i++) {
                char c = data[i];

                if (in_string) {
                        if (escaped)
                                escaped = false;
                        else if (c == '\\')
                                escaped = true;
                        else if (c == '"')
                                in_string = false;
                        continue;
                }
                if (c == '"')
                        in_string = true;
                else if (c == '{' || c == '[') {
                        if (++depth > max_depth)
                                return -ELOOP;
                } else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return 0;
}

/* json_parse - parses exactly one JSON document of size bytes (no NUL needed). Returns -EFBIG when size
 * exceeds max_size, -ELOOP when nested deeper than max_depth, -EBADMSG for invalid JSON or trailing
 * garbage, -ENOMEM. On success *ret owns the tree (free with cJSON_Delete). */
int json_parse(const char *data, size_t size, size_t max_size, unsigned max_depth, cJSON **ret) {
        const char *end = NULL;
        cJSON *j;
        int r;

        if (!data || !ret)
                return -EINVAL;
        if (size > max_size)
                return -EFBIG;
        r = json_check_depth(data, size, max_depth);
        if (r < 0)
                return r;
        j = cJSON_ParseWithLengthOpts(data, size, &end, false);
        if (!j)
                return -EBADMSG;
        for (; end && end < data + size; end++)
                if (!strchr(" \t\r\n", *end) || *end == '\0') {
                        cJSON_Delete(j);
                        return -EBADMSG;
                }
        *ret = j;
        return 0;
}

/* json_parse_string - json_parse() of a NUL-terminated string with the default caps. */
int json_parse_string(const char *s, cJSON **ret) {
        if (!s)
                return -EINVAL;
        return json_parse(s, strlen(s), JSON_MAX_SIZE_DEFAULT, JSON_MAX_DEPTH_DEFAULT, ret);
}

/* json_get - the member key of object obj, or NULL when obj is not an object or has no such member.
 * A JSON null counts as absent. */
const cJSON *json_get(const cJSON *obj, const char *key) {
        const cJSON *i;

        if (!cJSON_IsObject(obj))
                return NULL;
        i = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!i || cJSON_IsNull(i))
                return NULL;
        return i;
}

/* json_get_string - string member; -ENOENT when absent or null, -EBADMSG when not a string. The
 * returned pointer lives as long as obj. */
int json_get_string(const cJSON *obj, const char *key, const char **ret) {
        const cJSON *i = json_get(obj, key);

        if (!i)
                return -ENOENT;
        if (!cJSON_IsString(i) || !i->valuestring)
                return -EBADMSG;
        *ret = i->valuestring;
        return 0;
}

/* json_value_int64 - an integer given as a JSON number (integral, within range) or as a decimal string
 * (etcd's gateway sends every int64 as a string). -EBADMSG otherwise, -ERANGE when out of range. */
int json_value_int64(const cJSON *item, int64_t *ret) {
        if (cJSON_IsNumber(item)) {
                double d = item->valuedouble;

                if (!isfinite(d) || d != floor(d))
                        return -EBADMSG;
                if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
                        return -ERANGE;
                *ret = (int64_t)d;
                return 0;
        }
        if (cJSON_IsString(item) && item->valuestring) {
                const char *s = item->valuestring;
                char *end = NULL;
                long long v;

                if (s[0] == '\0' || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
                        return -EBADMSG;
                errno = 0;
                v = strtoll(s, &end, 10);
                if (errno == ERANGE)
                        return -ERANGE;
                if (errno != 0 || !end || *end != '\0' || end == s)
                        return -EBADMSG;
                *ret = (int64_t)v;
                return 0;
        }
        return -EBADMSG;
}

/* json_get_int64 - integer member (number or decimal string); -ENOENT when absent, -EBADMSG/-ERANGE. */
int json_get_int64(const cJSON *obj, const char *key, int64_t *ret) {
        const cJSON *i = json_get(obj, key);

        if (!i)
                return -ENOENT;
        return json_value_int64(i, ret);
}

/* json_get_uint64 - as json_get_int64() but refuses negative values with -ERANGE. IDs such as etcd
 * lease IDs are positive int64 on the wire. */
int json_get_uint64(const cJSON *obj, const char *key, uint64_t *ret) {
        int64_t v;
        int r;

        r = json_get_int64(obj, key, &v);
        if (r < 0)
                return r;
        if (v < 0)
                return -ERANGE;
        *ret = (uint64_t)v;
        return 0;
}

/* json_get_bool - boolean member; -ENOENT when absent, -EBADMSG when not true/false. */
int json_get_bool(const cJSON *obj, const char *key, bool *ret) {
        const cJSON *i = json_get(obj, key);

        if (!i)
                return -ENOENT;
        if (!cJSON_IsBool(i))
                return -EBADMSG;
        *ret = cJSON_IsTrue(i);
        return 0;
}

/* json_get_object - object member; -ENOENT when absent, -EBADMSG when not an object. */
int json_get_object(const cJSON *obj, const char *key, const cJSON **ret) {
        const cJSON *i = json_get(obj, key);

        if (!i)
                return -ENOENT;
        if (!cJSON_IsObject(i))
                return -EBADMSG;
        *ret = i;
        return 0;
}

/* json_get_array - array member; -ENOENT when absent, -EBADMSG when not an array. */
int json_get_array(const cJSON *obj, const char *key, const cJSON **ret) {
        const cJSON *i = json_get(obj, key);

        if (!i)
                return -ENOENT;
        if (!cJSON_IsArray(i))
                return -EBADMSG;
        *ret = i;
        return 0;
}

/* json_add_item - adds item to obj under key, taking ownership of item in every case (freed on error). */
int json_add_item(cJSON *obj, const char *key, cJSON *item) {
        if (!item)
                return -ENOMEM;
        if (!cJSON_IsObject(obj) || !cJSON_AddItemToObject(obj, key, item)) {
                cJSON_Delete(item);
                return -ENOMEM;
        }
        return 0;
}

/* json_add_string - adds a string member (copied). */
int json_add_string(cJSON *obj, const char *key, const char *value) {
        return json_add_item(obj, key, cJSON_CreateString(value));
}

/* json_add_bool - adds a boolean member. */
int json_add_bool(cJSON *obj, const char *key, bool value) {
        return json_add_item(obj, key, cJSON_CreateBool(value));
}

/* json_int64_new - a number node that prints all 64 bits exactly. cJSON stores doubles, exact only up
 * to 2^53: such values become ordinary numbers, larger ones a "raw" node holding the digits (printed
 * correctly, but not readable back with json_value_int64()). Returns NULL on OOM. */
cJSON *json_int64_new(int64_t value) {
        char buf[32]; /* "-9223372036854775808" is 20 characters */

        if (value >= -(INT64_C(1) << 53) && value <= (INT64_C(1) << 53))
                return cJSON_CreateNumber((double)value);
        (void)snprintf(buf, sizeof(buf), "%" PRIi64, value);
        return cJSON_CreateRaw(buf);
}

/* json_add_int64 - adds an integer member printed exactly (see json_int64_new()). */
int json_add_int64(cJSON *obj, const char *key, int64_t value) {
        return json_add_item(obj, key, json_int64_new(value));
}

/* One UTF-8 sequence at s (n bytes left): its code point and length; U+FFFD and 1 for a malformed,
 * overlong or surrogate sequence. */
static uint32_t utf8_decode(const unsigned char *s, size_t n, size_t *ret_len) {
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        size_t len = s[0] >= 0xf0 && s[0] < 0xf5 ? 4
                : s[0] >= 0xe0                   ? 3
                : s[0] >= 0xc2 && s[0] < 0xe0    ? 2
                                                 : 0;
        uint32_t cp;

        *ret_len = 1;
        if (len == 0 || len > n)
                return 0xfffd;
        cp = s[0] & (0x7f >> len);
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0xfffd;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0xfffd;
        *ret_len = len;
        return cp;
}

/* json_ascii_escape - text with every non-ASCII character and DEL written as \uXXXX (a surrogate pair
 * above U+FFFF, U+FFFD for malformed UTF-8), as Python's json.dumps() does by default. In JSON text such
 * bytes occur only inside strings, so this is safe on a whole document. Returns a new string, or NULL
 * without memory. */
char *json_ascii_escape(const char *text) {
        const unsigned char *s = (const unsigned char *)text;
        size_t n = strlen(text), extra = 0;
        char *out, *o, *end;

        for (size_t i = 0; i < n; i++)
                if (s[i] >= 0x7f)
                        extra += 12; /* at most a pair of \uXXXX per byte */
        out = malloc(n + extra + 1);
        if (!out)
                return NULL;
        o = out;
        end = out + n + extra + 1;
        for (size_t i = 0; i < n;) {
                size_t len;
                uint32_t cp;

                if (s[i] < 0x7f) {
                        *o++ = (char)s[i++];
                        continue;
                }
                cp = s[i] == 0x7f ? 0x7f : utf8_decode(s + i, n - i, &len);
                if (cp == 0x7f)
                        len = 1;
                i += len;
                if (cp >= 0x10000) {
                        cp -= 0x10000;
                        o += snprintf(
                                o,
                                (size_t)(end - o),
                                "\\u%04x\\u%04x",
                                0xd800u + (cp >> 10),
                                0xdc00u + (cp & 0x3ffu));
                } else
                        o += snprintf(o, (size_t)(end - o), "\\u%04x", (unsigned)cp);
        }
        *o = '\0';
        return out;
}

/* json_print_compact - compact JSON text (no spaces, non-ASCII characters escaped), heap allocated:
 * byte for byte what Patroni's json.dumps(separators=(',', ':')) writes for the same value. */
int json_print_compact(const cJSON *item, char **ret) {
        _cleanup_free_ char *s = NULL;
        char *escaped;

        if (!item)
                return -EINVAL;
        s = cJSON_PrintUnformatted(item);
        if (!s)
                return -ENOMEM;
        escaped = json_ascii_escape(s);
        if (!escaped)
                return -ENOMEM;
        *ret = escaped;
        return 0;
}

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64_encode - standard alphabet, padded; NUL-terminated heap string in *ret. */
int base64_encode(const void *data, size_t size, char **ret) {
        const uint8_t *p = data;
        char *out, *o;

        if (size > (SIZE_MAX - 1) / 4 * 3 - 3)
                return -EFBIG;
        out = malloc((size + 2) / 3 * 4 + 1);
        if (!out)
                return -ENOMEM;
        o = out;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                size_t left = size - i;

                if (left > 1)
                        v |= (uint32_t)p[i + 1] << 8;
                if (left > 2)
                        v |= p[i + 2];
                *o++ = base64_alphabet[(v >> 18) & 63];
                *o++ = base64_alphabet[(v >> 12) & 63];
                *o++ = left > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
                *o++ = left > 2 ? base64_alphabet[v & 63] : '=';
        }
        *o = '\0';
        *ret = out;
        return 0;
}

static int base64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* base64_decode - decodes length characters of standard padded base64. The output is NUL-terminated
 * (so text values can be used as strings) and *ret_size (optional) excludes the NUL. -EBADMSG for
 * a length that is not a multiple of 4, characters outside the alphabet, or misplaced padding. */
int base64_decode(const char *s, size_t length, char **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = 0;

        if (!s || !ret)
                return -EINVAL;
        if (length % 4 != 0)
                return -EBADMSG;
        out = malloc(length / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < length; i += 4) {
                int v[4];
                bool last = i + 4 == length;

                for (size_t k = 0; k < 4; k++) {
                        v[k] = base64_value(s[i + k]);
                        if (v[k] < 0) {
                                if (!(last && s[i + k] == '=' && k >= 2))
                                        return -EBADMSG;
                        }
                }
                if (v[2] < 0 && v[3] >= 0)
                        return -EBADMSG; /* "xx=x" */
                out[n++] = (uint8_t)((v[0] << 2) | (v[1] >> 4));
                if (v[2] >= 0)
                        out[n++] = (uint8_t)(((v[1] & 15) << 4) | (v[2] >> 2));
                if (v[3] >= 0)
                        out[n++] = (uint8_t)(((v[2] & 3) << 6) | v[3]);
        }
        out[n] = 0;
        if (ret_size)
                *ret_size = n;
        *ret = (char *)TAKE_PTR(out);
        return 0;
}

bool json_truthy(const cJSON *v) {
        if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
                return false;
        if (cJSON_IsNumber(v))
                return v->valuedouble != 0;
        if (cJSON_IsString(v))
                return !isempty(v->valuestring);
        if (cJSON_IsArray(v) || cJSON_IsObject(v))
                return v->child != NULL;
        return true;
}

bool json_parse_bool(const cJSON *v) {
        if (cJSON_IsString(v))
                return strcasecmp(v->valuestring, "true") == 0 || strcasecmp(v->valuestring, "on") == 0 ||
                        strcasecmp(v->valuestring, "yes") == 0 || streq(v->valuestring, "1");
        return cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0);
}
