/* SPDX-License-Identifier: MIT */
/*
 * Logging: one function family for every message of pghad and pghactl. Lines go to the journal with
 * structured fields when stderr is connected to it (systemd sets JOURNAL_STREAM), otherwise to stderr
 * in Patroni's layout "2026-01-01 10:00:00,123 INFO: message", so operators' log parsers keep working.
 * log_*_errno() return the negative errno they were given, so "return log_error_errno(r, ...)" works,
 * and set errno so that %m prints it.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "pgha/macro.h"

/* Levels are syslog's; Patroni's names map onto them (CRITICAL = LOG_CRIT, WARNING = LOG_WARNING). */
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* Patroni's default log.format, and the file log.dir holds (Patroni 3.0.2 names it after its module). */
#define LOG_FORMAT_DEFAULT "%(asctime)s %(levelname)s: %(message)s"
#define LOG_FILE_NAME      "patroni.log"

/* Checks a log.format layout (Python logging %-style: "%(field)[flags][width][.precision]s|d|f", "%%"):
 * 0, or -EINVAL with the problem written to error (e.g. an unknown field name). */
int log_format_check(const char *format, char *error, size_t error_size);
/* Sets the layout of stderr and file lines; NULL format: the default; NULL dateformat: asctime as
 * "2026-01-01 10:00:00,123", else strftime(dateformat) (Python's datefmt). -EINVAL when invalid. */
int log_set_format(const char *format, const char *dateformat);
/* NULL dir: no file. Otherwise appends every line to dir/patroni.log instead of stderr or the journal,
 * and when a line would make it reach max_size bytes renames .N-1 → .N ... patroni.log → .1 (keeping
 * `backups` old files) first. Keeps the previous output and returns -errno when the file cannot be
 * opened. A failed write goes to stderr. */
int log_set_file(const char *dir, uint64_t max_size, unsigned backups);
/* The open log file's path, or NULL. */
const char *log_get_file(void);

typedef enum LogTarget {
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_FILE,
} LogTarget;
/* Where the next message goes (opens the output first if needed). */
LogTarget log_get_target(void);

/* Force stderr output even when JOURNAL_STREAM says stderr is the journal (tests, pghactl). */
void log_set_force_stderr(bool b);
/* Opens the output on first use; call again after a fork to re-detect the journal. */
void log_open(void);

/* fields: NULL or a NULL-terminated array of "KEY=value" journal fields (ignored on stderr). */
int log_internal(
        int level,
        int error,
        const char *const *fields,
        const char *file,
        int line,
        const char *func,
        const char *format,
        ...) _printf_(7, 8);
int log_internalv(
        int level,
        int error,
        const char *const *fields,
        const char *file,
        int line,
        const char *func,
        const char *format,
        va_list ap) _printf_(7, 0);

#define log_full_errno(level, error, ...)                                                         \
        ({                                                                                        \
                int _l_ = (level), _e_ = (error);                                                 \
                _l_ <= log_get_max_level()                                                        \
                        ? log_internal(_l_, _e_, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -ERRNO_VALUE(_e_);                                                      \
        })
#define log_full(level, ...) (void)log_full_errno((level), 0, __VA_ARGS__)

#define log_fields(level, error, fields, ...) \
        log_internal((level), (error), (fields), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...)                log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)                 log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)               log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...)              log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)                log_full(LOG_ERR, __VA_ARGS__)
#define log_crit(...)                 log_full(LOG_CRIT, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, (error), __VA_ARGS__)

/* For "out of memory" paths: logs once, returns -ENOMEM. */
#define log_oom() log_error_errno(SYNTHETIC_ERRNO(ENOMEM), "Out of memory.")
