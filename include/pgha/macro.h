/* SPDX-License-Identifier: MIT */
/*
 * Small language helpers used everywhere: cleanup attributes, ownership hand-off, string comparison,
 * array sizes and time units. Header-only, no dependencies beyond libc, so every module and every test
 * may include it. Nothing here allocates except the explicit new()/new0() helpers.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t usec_t;

#define USEC_INFINITY        ((usec_t)UINT64_MAX)
#define NSEC_PER_USEC        ((uint64_t)1000ULL)
#define USEC_PER_MSEC        ((usec_t)1000ULL)
#define USEC_PER_SEC         ((usec_t)1000000ULL)
#define USEC_PER_MINUTE      ((usec_t)(60ULL * USEC_PER_SEC))
#define USEC_PER_HOUR        ((usec_t)(60ULL * USEC_PER_MINUTE))
#define USEC_PER_DAY         ((usec_t)(24ULL * USEC_PER_HOUR))

#define _unused_             __attribute__((__unused__))
#define _cleanup_(f)         __attribute__((__cleanup__(f)))
#define _warn_unused_result_ __attribute__((__warn_unused_result__))
#define _printf_(a, b)       __attribute__((__format__(printf, a, b)))
#define _noreturn_           __attribute__((__noreturn__))
#define _likely_(x)          (__builtin_expect(!!(x), 1))
#define _unlikely_(x)        (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x)        (sizeof(x) / sizeof((x)[0]))

#define MAX(a, b)            ((a) > (b) ? (a) : (b))
#define MIN(a, b)            ((a) < (b) ? (a) : (b))

/* Hands the value of a cleanup-guarded pointer to the caller and disarms the guard. */
#define TAKE_PTR(p)                    \
        ({                             \
                typeof(p) _ptr_ = (p); \
                (p) = NULL;            \
                _ptr_;                 \
        })

/* Same for file descriptors guarded with _cleanup_close_. */
#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -EBADF;   \
                _fd_;            \
        })

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool isempty(const char *s) {
        return !s || s[0] == '\0';
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

/* Returns the rest of s after prefix, or NULL when s does not start with prefix. */
static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

static inline bool endswith(const char *s, const char *suffix) {
        size_t ls = strlen(s), lx = strlen(suffix);
        return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

/* Zero-initialised allocation of n objects of type t (at least one). clang-format would read "new" as the
 * C++ keyword and break the macro, hence the guards. */
/* clang-format off */
#define new(t, n) ((t *) calloc((n) ?: 1, sizeof(t)))
#define new0(t, n) new(t, n)
/* clang-format on */

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Replaces *p with a copy of s (NULL allowed); returns -ENOMEM and leaves *p untouched on failure. */
static inline int free_and_strdup(char **p, const char *s) {
        char *c = NULL;
        if (s) {
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
        }
        free(*p);
        *p = c;
        return 0;
}

/* Defines fooo_freep(Foo **p) for a destructor foo_free(Foo *), for use with _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

/* Defines name##_to_string(type) and name##_from_string(const char *) over a string table `name##_table`
 * indexed by the enum: NULL for an out-of-range value, -EINVAL (the enum's _INVALID) for an unknown name.
 * Names match exactly (case-sensitive). One table serves logs, REST, the CLI and parsing. */
#define DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type)                  \
        const char *name##_to_string(type i) {                            \
                if ((long)i < 0 || (size_t)i >= ELEMENTSOF(name##_table)) \
                        return NULL;                                      \
                return name##_table[i];                                   \
        }
#define DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)                 \
        type name##_from_string(const char *s) {                           \
                for (size_t i = 0; s && i < ELEMENTSOF(name##_table); i++) \
                        if (name##_table[i] && streq(name##_table[i], s))  \
                                return (type)i;                            \
                return (type)-EINVAL;                                      \
        }
#define DEFINE_STRING_TABLE_LOOKUP(name, type)           \
        DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type) \
        DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type)

/* Turns a negative errno into a positive one for strerror() and %m. */
#define ERRNO_VALUE(r) (abs(r))

/* Marks an error that did not come from a failing syscall, as systemd's SYNTHETIC_ERRNO does. */
#define SYNTHETIC_ERRNO(e) (-(e))
