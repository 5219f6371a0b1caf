/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "pgha/json.h"
#include "tests.h"

TEST(parse_bounds) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        char deep[200];

        ASSERT_OK(json_parse("{\"a\":1} \n", 9, 100, 4, &j));
        ASSERT_TRUE(cJSON_IsObject(j));
        ASSERT_ERROR(json_parse("{\"a\":1}", 7, 6, 4, &j), EFBIG);
        ASSERT_ERROR(json_parse("{\"a\":", 5, 100, 4, &j), EBADMSG);
        ASSERT_ERROR(json_parse("{} x", 4, 100, 4, &j), EBADMSG);
        ASSERT_ERROR(json_parse("", 0, 100, 4, &j), EBADMSG);
        ASSERT_ERROR(json_parse("{}\0{}", 5, 100, 4, &j), EBADMSG);
        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        ASSERT_ERROR(json_parse(deep, 200, 1000, 64, &j), ELOOP);
        /* Brackets inside strings do not count. */
        cJSON_Delete(j);
        j = NULL;
        ASSERT_OK(json_parse("[\"[[[[[[\"]", 10, 100, 2, &j));
}

TEST(typed_getters) {
        _cleanup_(cJSON_Deletep) cJSON *j = NULL;
        const cJSON *o;
        const char *s;
        int64_t i;
        uint64_t u;
        bool b;

        ASSERT_OK(json_parse_string(
                "{\"s\":\"x\",\"n\":42,\"ns\":\"-7\",\"big\":\"9223372036854775807\",\"f\":1.5,\"b\":true,"
                "\"nul\":null,\"o\":{},\"a\":[],\"bad\":\"12x\",\"huge\":\"99999999999999999999\",\"neg\":-"
                "1}",
                &j));
        ASSERT_OK(json_get_string(j, "s", &s));
        ASSERT_STREQ(s, "x");
        ASSERT_ERROR(json_get_string(j, "n", &s), EBADMSG);
        ASSERT_ERROR(json_get_string(j, "missing", &s), ENOENT);
        ASSERT_ERROR(json_get_string(j, "nul", &s), ENOENT);
        ASSERT_OK(json_get_int64(j, "n", &i));
        ASSERT_EQ(i, 42);
        ASSERT_OK(json_get_int64(j, "ns", &i));
        ASSERT_EQ(i, -7);
        ASSERT_OK(json_get_int64(j, "big", &i));
        ASSERT_TRUE(i == INT64_MAX);
        ASSERT_ERROR(json_get_int64(j, "f", &i), EBADMSG);
        ASSERT_ERROR(json_get_int64(j, "bad", &i), EBADMSG);
        ASSERT_ERROR(json_get_int64(j, "huge", &i), ERANGE);
        ASSERT_ERROR(json_get_int64(j, "b", &i), EBADMSG);
        ASSERT_ERROR(json_get_uint64(j, "neg", &u), ERANGE);
        ASSERT_OK(json_get_bool(j, "b", &b));
        ASSERT_TRUE(b);
        ASSERT_ERROR(json_get_bool(j, "n", &b), EBADMSG);
        ASSERT_OK(json_get_object(j, "o", &o));
        ASSERT_ERROR(json_get_object(j, "a", &o), EBADMSG);
        ASSERT_OK(json_get_array(j, "a", &o));
        /* Getters on a non-object are "missing", never a crash. */
        ASSERT_ERROR(json_get_string(o, "x", &s), ENOENT);
        ASSERT_ERROR(json_get_string(NULL, "x", &s), ENOENT);
}

TEST(int64_output_is_exact) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *text = NULL;

        ASSERT_OK(json_add_int64(o, "small", 83886752));
        ASSERT_OK(json_add_int64(o, "big", INT64_C(7712574132163962109)));
        ASSERT_OK(json_add_string(o, "s", "a\"b"));
        ASSERT_OK(json_print_compact(o, &text));
        ASSERT_STREQ(text, "{\"small\":83886752,\"big\":7712574132163962109,\"s\":\"a\\\"b\"}");
}

TEST(non_ascii_is_escaped_as_patroni_writes_it) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *text = NULL, *bad = NULL;

        /* Python: json.dumps({"n": "é€😀", "b": "x\x7f\n"}, separators=(",", ":")) */
        ASSERT_OK(json_add_string(o, "n", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
        ASSERT_OK(json_add_string(o, "b", "x\x7f\n"));
        ASSERT_OK(json_print_compact(o, &text));
        ASSERT_STREQ(text, "{\"n\":\"\\u00e9\\u20ac\\ud83d\\ude00\",\"b\":\"x\\u007f\\n\"}");
        /* Malformed UTF-8 (a lone continuation byte, a truncated sequence, an overlong '/', a surrogate)
         * becomes U+FFFD byte by byte, never a read past the end. */
        bad = json_ascii_escape("\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf0\x9f");
        ASSERT_NOT_NULL(bad);
        ASSERT_STREQ(bad, "\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd");
}

TEST(base64) {
        static const struct {
                const char *plain, *encoded;
        } cases[] = {
                {"", ""},
                {"f", "Zg=="},
                {"fo", "Zm8="},
                {"foo", "Zm9v"},
                {"/service/batman/", "L3NlcnZpY2UvYmF0bWFuLw=="},
                {"/service/batman0", "L3NlcnZpY2UvYmF0bWFuMA=="},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *e = NULL, *d = NULL;
                size_t n;

                ASSERT_OK(base64_encode(cases[i].plain, strlen(cases[i].plain), &e));
                ASSERT_STREQ(e, cases[i].encoded);
                ASSERT_OK(base64_decode(e, strlen(e), &d, &n));
                ASSERT_EQ(n, strlen(cases[i].plain));
                ASSERT_STREQ(d, cases[i].plain);
        }

        {
                _cleanup_free_ char *d = NULL;
                static const uint8_t bin[] = {0, 0xff, 0x10, 0x80};
                _cleanup_free_ char *e = NULL;
                size_t n;

                ASSERT_OK(base64_encode(bin, sizeof(bin), &e));
                ASSERT_OK(base64_decode(e, strlen(e), &d, &n));
                ASSERT_EQ(n, 4);
                ASSERT_TRUE(memcmp(d, bin, 4) == 0);
        }

        {
                char *d = NULL;

                ASSERT_ERROR(base64_decode("Zg=", 3, &d, NULL), EBADMSG);
                ASSERT_ERROR(base64_decode("Z===", 4, &d, NULL), EBADMSG);
                ASSERT_ERROR(base64_decode("Zg=a", 4, &d, NULL), EBADMSG);
                ASSERT_ERROR(base64_decode("Zm9v!!==", 8, &d, NULL), EBADMSG);
                ASSERT_ERROR(base64_decode("Zg==Zg==", 8, &d, NULL), EBADMSG);
                ASSERT_NULL(d);
        }
}

TEST(truthy_and_parse_bool) {
        static const struct {
                const char *json;
                bool truthy, parse_bool;
        } cases[] = {
                {"null", false, false},
                {"false", false, false},
                {"true", true, true},
                {"0", false, false},
                {"2", true, true},
                {"\"\"", false, false},
                {"\"no\"", true, false},
                {"\"On\"", true, true},
                {"\"YES\"", true, true},
                {"\"1\"", true, true},
                {"[]", false, false},
                {"[0]", true, false},
                {"{}", false, false},
                {"{\"a\":1}", true, false},
        };

        ASSERT_FALSE(json_truthy(NULL));
        ASSERT_FALSE(json_parse_bool(NULL));
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                cJSON *j = cJSON_Parse(cases[i].json);
                ASSERT_NOT_NULL(j);
                if (json_truthy(j) != cases[i].truthy || json_parse_bool(j) != cases[i].parse_bool)
                        TEST_FAIL(
                                "%s: truthy %d parse_bool %d",
                                cases[i].json,
                                json_truthy(j),
                                json_parse_bool(j));
                cJSON_Delete(j);
        }
}

DEFINE_TEST_MAIN
