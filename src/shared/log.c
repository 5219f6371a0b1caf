/* SPDX-License-Identifier: MIT */
/*
 * Log back-ends: the journal (native protocol, structured fields) or timestamped stderr lines in
 * Patroni's format. Must never allocate on the error path of an out-of-memory report, so messages are
 * formatted into a bounded stack buffer; a longer message is cut, never dropped.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include <systemd/sd-journal.h>

#include "pgha/log.h"

/* A log line longer than this is truncated; journal and terminals cope badly with more anyway. */
#define LOG_LINE_MAX 8192
/* Journal fields per message: MESSAGE, PRIORITY, CODE_*, ERRNO plus the caller's. */
#define LOG_FIELDS_MAX 32

static int log_max_level = LOG_INFO;
static bool log_opened = false;
static bool log_to_journal = false;
static bool log_force_stderr = false;

static const char *const log_level_table[] = {
        [LOG_EMERG] = "CRITICAL",
        [LOG_ALERT] = "CRITICAL",
        [LOG_CRIT] = "CRITICAL",
        [LOG_ERR] = "ERROR",
        [LOG_WARNING] = "WARNING",
        [LOG_NOTICE] = "INFO",
        [LOG_INFO] = "INFO",
        [LOG_DEBUG] = "DEBUG",
};

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t)level >= ELEMENTSOF(log_level_table))
                return NULL;
        return log_level_table[level];
}

/* log_level_from_string - parses Python logging level names as Patroni's log.level accepts them
 * (case-insensitive; WARN and FATAL as aliases, NOTSET as DEBUG). Returns the syslog level or -EINVAL. */
int log_level_from_string(const char *s) {
        static const struct {
                const char *name;
                int level;
        } names[] = {
                {"DEBUG", LOG_DEBUG},
                {"NOTSET", LOG_DEBUG},
                {"INFO", LOG_INFO},
                {"WARNING", LOG_WARNING},
                {"WARN", LOG_WARNING},
                {"ERROR", LOG_ERR},
                {"CRITICAL", LOG_CRIT},
                {"FATAL", LOG_CRIT},
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i].name) == 0)
                        return names[i].level;
        return -EINVAL;
}

void log_set_force_stderr(bool b) {
        log_force_stderr = b;
        log_opened = false;
}

/* Whether stderr is the journal stream systemd connected us to (JOURNAL_STREAM is "dev:ino"). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_open(void) {
        log_to_journal = !log_force_stderr && stderr_is_journal();
        log_opened = true;
}

static void write_stderr(int level, const char *msg) {
        char stamp[64];
        struct timespec ts;
        struct tm tm;

        (void)clock_gettime(CLOCK_REALTIME, &ts);
        (void)localtime_r(&ts.tv_sec, &tm);
        (void)strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        /* One fprintf so concurrent writers (several daemons in one test log) do not interleave lines. */
        fprintf(stderr,
                "%s,%03ld %s: %s\n",
                stamp,
                ts.tv_nsec / 1000000L,
                strna(log_level_to_string(level)),
                msg);
}

static void write_journal(
        int level,
        int error,
        const char *const *fields,
        const char *file,
        int line,
        const char *func,
        const char *msg) {
        char prio[32], code_file[256], code_line[32], code_func[128], errno_field[32];
        _cleanup_free_ char *message = NULL;
        struct iovec iov[LOG_FIELDS_MAX];
        size_t n = 0;

        if (asprintf(&message, "MESSAGE=%s", msg) < 0) {
                write_stderr(level, msg);
                return;
        }
        snprintf(prio, sizeof prio, "PRIORITY=%i", level);
        snprintf(code_file, sizeof code_file, "CODE_FILE=%s", file);
        snprintf(code_line, sizeof code_line, "CODE_LINE=%i", line);
        snprintf(code_func, sizeof code_func, "CODE_FUNC=%s", func);

        iov[n++] = (struct iovec){message, strlen(message)};
        iov[n++] = (struct iovec){prio, strlen(prio)};
        iov[n++] = (struct iovec){code_file, strlen(code_file)};
        iov[n++] = (struct iovec){code_line, strlen(code_line)};
        iov[n++] = (struct iovec){code_func, strlen(code_func)};
        if (error != 0) {
                snprintf(errno_field, sizeof errno_field, "ERRNO=%i", ERRNO_VALUE(error));
                iov[n++] = (struct iovec){errno_field, strlen(errno_field)};
        }
        for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                iov[n++] = (struct iovec){(void *)fields[i], strlen(fields[i])};

        if (sd_journal_sendv(iov, (int)n) < 0)
                write_stderr(level, msg);
}

int log_internalv(
        int level,
        int error,
        const char *const *fields,
        const char *file,
        int line,
        const char *func,
        const char *format,
        va_list ap) {
        char buf[LOG_LINE_MAX];
        int saved_errno = errno;

        if (level > log_max_level)
                return -ERRNO_VALUE(error);
        if (!log_opened)
                log_open();

        /* Let %m print the error we were handed, as systemd's log functions do. */
        if (error != 0)
                errno = ERRNO_VALUE(error);
        (void)vsnprintf(buf, sizeof buf, format, ap);

        if (log_to_journal)
                write_journal(level, error, fields, file, line, func, buf);
        else
                write_stderr(level, buf);

        errno = saved_errno;
        return -ERRNO_VALUE(error);
}

int log_internal(
        int level,
        int error,
        const char *const *fields,
        const char *file,
        int line,
        const char *func,
        const char *format,
        ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_internalv(level, error, fields, file, line, func, format, ap);
        va_end(ap);
        return r;
}
