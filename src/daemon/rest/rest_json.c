/* SPDX-License-Identifier: MIT */
/*
 * Python-compatible renderings of JSON values: json.dumps() text (", " and ": " separators, ASCII-only
 * output with \uXXXX escapes) for REST bodies, and str()/repr() forms that Patroni uses when it
 * compares values (tag filters, patch_config). Pure and non-logging.
 *
 * Invariant: a value that Python would print as an int (a number without fractional part) is printed
 * without ".0", because cJSON keeps no int/float distinction and every number Patroni emits in the REST
 * documents we build is an int.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "pgha/rest.h"
#include "rest-internal.h"

int strbuf_grow(StrBuf *b, size_t more) {
        if (b->failed)
                return -ENOMEM;
        if (b->len + more + 1 <= b->cap)
                return 0;
        size_t cap = MAX(b->cap * 2, b->len + more + 64);
        char *n = realloc(b->buf, cap);
        if (!n) {
                b->failed = true;
                return -ENOMEM;
        }
        b->buf = n;
        b->cap = cap;
        return 0;
}

void strbuf_putn(StrBuf *b, const char *s, size_t n) {
        if (strbuf_grow(b, n) < 0)
                return;
        memcpy(b->buf + b->len, s, n);
        b->len += n;
        b->buf[b->len] = '\0';
}

void strbuf_puts(StrBuf *b, const char *s) {
        strbuf_putn(b, s, strlen(s));
}

void strbuf_putc(StrBuf *b, char c) {
        strbuf_putn(b, &c, 1);
}

void strbuf_printf(StrBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || strbuf_grow(b, (size_t)n) < 0) {
                b->failed = true;
                return;
        }
        va_start(ap, fmt);
        (void)vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

void strbuf_done(StrBuf *b) {
        b->buf = mfree(b->buf);
        b->len = b->cap = 0;
        b->failed = false;
}

/* Decodes one UTF-8 sequence at s (len bytes available); returns its length, *cp the code point, U+FFFD
 * for an invalid byte (consumed alone). */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
        unsigned n;
        uint32_t c;

        if (s[0] < 0x80) {
                *cp = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0) {
                n = 2;
                c = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                n = 3;
                c = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                n = 4;
                c = s[0] & 0x07;
        } else
                goto invalid;
        if (n > len)
                goto invalid;
        for (unsigned i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        goto invalid;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
            (c >= 0xd800 && c <= 0xdfff))
                goto invalid;
        *cp = c;
        return n;
invalid:
        *cp = 0xfffd;
        return 1;
}

bool utf8_is_valid(const char *s, size_t len) {
        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t n = utf8_decode((const unsigned char *)s + i, len - i, &cp);
                if (cp == 0xfffd && n == 1)
                        return false;
                i += n;
        }
        return true;
}

static void dump_string(StrBuf *b, const char *s) {
        size_t len = strlen(s);

        strbuf_putc(b, '"');
        for (size_t i = 0; i < len;) {
                uint32_t cp;
                i += utf8_decode((const unsigned char *)s + i, len - i, &cp);
                switch (cp) {
                case '"':
                        strbuf_puts(b, "\\\"");
                        break;
                case '\\':
                        strbuf_puts(b, "\\\\");
                        break;
                case '\n':
                        strbuf_puts(b, "\\n");
                        break;
                case '\r':
                        strbuf_puts(b, "\\r");
                        break;
                case '\t':
                        strbuf_puts(b, "\\t");
                        break;
                case '\b':
                        strbuf_puts(b, "\\b");
                        break;
                case '\f':
                        strbuf_puts(b, "\\f");
                        break;
                default:
                        if (cp >= 0x20 && cp < 0x7f)
                                strbuf_putc(b, (char)cp);
                        else if (cp < 0x10000)
                                strbuf_printf(b, "\\u%04x", cp);
                        else {
                                uint32_t v = cp - 0x10000;
                                strbuf_printf(b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
                        }
                }
        }
        strbuf_putc(b, '"');
}

/* The text of a number the way Python prints it when it came from an int (integral) or a float. */
void format_number(StrBuf *b, double d, bool json) {
        char buf[40];

        if (isnan(d))
                strbuf_puts(b, json ? "NaN" : "nan");
        else if (isinf(d))
                strbuf_puts(b, json ? (d < 0 ? "-Infinity" : "Infinity") : (d < 0 ? "-inf" : "inf"));
        else if (d == trunc(d) && fabs(d) < 9.2e18)
                strbuf_printf(b, "%lld", (long long)d);
        else
                strbuf_puts(b, format_python_float(d, buf));
}

static void dump(StrBuf *b, const cJSON *j) {
        const cJSON *c;
        bool first = true;

        if (cJSON_IsObject(j)) {
                strbuf_putc(b, '{');
                cJSON_ArrayForEach (c, j) {
                        if (!first)
                                strbuf_puts(b, ", ");
                        first = false;
                        dump_string(b, strempty(c->string));
                        strbuf_puts(b, ": ");
                        dump(b, c);
                }
                strbuf_putc(b, '}');
        } else if (cJSON_IsArray(j)) {
                strbuf_putc(b, '[');
                cJSON_ArrayForEach (c, j) {
                        if (!first)
                                strbuf_puts(b, ", ");
                        first = false;
                        dump(b, c);
                }
                strbuf_putc(b, ']');
        } else if (cJSON_IsString(j))
                dump_string(b, strempty(j->valuestring));
        else if (cJSON_IsNumber(j))
                format_number(b, j->valuedouble, true);
        else if (cJSON_IsTrue(j))
                strbuf_puts(b, "true");
        else if (cJSON_IsFalse(j))
                strbuf_puts(b, "false");
        else if (cJSON_IsRaw(j))
                strbuf_puts(b, strempty(j->valuestring));
        else
                strbuf_puts(b, "null");
}

/* rest_json_dumps - see the header. *ret is a NUL-terminated heap string owned by the caller. */
int rest_json_dumps(const cJSON *j, char **ret, size_t *ret_size) {
        StrBuf b = {};

        dump(&b, j);
        if (b.failed || !b.buf) {
                strbuf_done(&b);
                return -ENOMEM;
        }
        if (ret_size)
                *ret_size = b.len;
        *ret = b.buf;
        return 0;
}

static void repr_string(StrBuf *b, const char *s) {
        char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

        strbuf_putc(b, q);
        for (const char *p = s; *p; p++) {
                if (*p == '\\' || *p == q) {
                        strbuf_putc(b, '\\');
                        strbuf_putc(b, *p);
                } else if (*p == '\n')
                        strbuf_puts(b, "\\n");
                else if (*p == '\r')
                        strbuf_puts(b, "\\r");
                else if (*p == '\t')
                        strbuf_puts(b, "\\t");
                else
                        strbuf_putc(b, *p);
        }
        strbuf_putc(b, q);
}

static void py_repr(StrBuf *b, const cJSON *j, bool top_str) {
        const cJSON *c;
        bool first = true;

        if (cJSON_IsObject(j)) {
                strbuf_putc(b, '{');
                cJSON_ArrayForEach (c, j) {
                        if (!first)
                                strbuf_puts(b, ", ");
                        first = false;
                        repr_string(b, strempty(c->string));
                        strbuf_puts(b, ": ");
                        py_repr(b, c, false);
                }
                strbuf_putc(b, '}');
        } else if (cJSON_IsArray(j)) {
                strbuf_putc(b, '[');
                cJSON_ArrayForEach (c, j) {
                        if (!first)
                                strbuf_puts(b, ", ");
                        first = false;
                        py_repr(b, c, false);
                }
                strbuf_putc(b, ']');
        } else if (cJSON_IsString(j)) {
                if (top_str)
                        strbuf_puts(b, strempty(j->valuestring));
                else
                        repr_string(b, strempty(j->valuestring));
        } else if (cJSON_IsNumber(j))
                format_number(b, j->valuedouble, false);
        else if (cJSON_IsTrue(j))
                strbuf_puts(b, "True");
        else if (cJSON_IsFalse(j))
                strbuf_puts(b, "False");
        else
                strbuf_puts(b, "None");
}

/* python_str - str(value) of the Python object json.loads() would give for j; heap string or NULL. */
char *python_str(const cJSON *j) {
        StrBuf b = {};

        py_repr(&b, j, true);
        if (b.failed || !b.buf) {
                strbuf_done(&b);
                return b.failed ? NULL : strdup("");
        }
        return b.buf;
}
