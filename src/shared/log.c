/* SPDX-License-Identifier: MIT */
/*
 * Log back-ends: the journal (native protocol, structured fields), lines on stderr, or lines appended
 * to <log.dir>/patroni.log with size-based rotation like Patroni's RotatingFileHandler. Lines on stderr
 * and in the file follow log.format / log.dateformat, a Python logging %-style layout compiled once
 * into a bounded item list (default "%(asctime)s %(levelname)s: %(message)s"). Must never allocate on
 * the error path of an out-of-memory report, so messages are formatted into bounded stack buffers; a
 * longer message is cut, never dropped. The file is a plain local append (O_APPEND, one write per
 * line), like stderr: it does not block the event loop in practice.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

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

/* The Python logging record attributes a log.format may use. */
typedef enum LogField {
        LOG_FIELD_LITERAL,
        LOG_FIELD_ASCTIME,
        LOG_FIELD_CREATED,
        LOG_FIELD_FILENAME,
        LOG_FIELD_FUNCNAME,
        LOG_FIELD_LEVELNAME,
        LOG_FIELD_LEVELNO,
        LOG_FIELD_LINENO,
        LOG_FIELD_MESSAGE,
        LOG_FIELD_MODULE,
        LOG_FIELD_MSECS,
        LOG_FIELD_NAME,
        LOG_FIELD_PATHNAME,
        LOG_FIELD_PROCESS,
        LOG_FIELD_PROCESSNAME,
        LOG_FIELD_RELATIVECREATED,
        LOG_FIELD_THREAD,
        LOG_FIELD_THREADNAME,
        _LOG_FIELD_MAX,
} LogField;

static const char *const log_field_names[_LOG_FIELD_MAX] = {
        [LOG_FIELD_ASCTIME] = "asctime",
        [LOG_FIELD_CREATED] = "created",
        [LOG_FIELD_FILENAME] = "filename",
        [LOG_FIELD_FUNCNAME] = "funcName",
        [LOG_FIELD_LEVELNAME] = "levelname",
        [LOG_FIELD_LEVELNO] = "levelno",
        [LOG_FIELD_LINENO] = "lineno",
        [LOG_FIELD_MESSAGE] = "message",
        [LOG_FIELD_MODULE] = "module",
        [LOG_FIELD_MSECS] = "msecs",
        [LOG_FIELD_NAME] = "name",
        [LOG_FIELD_PATHNAME] = "pathname",
        [LOG_FIELD_PROCESS] = "process",
        [LOG_FIELD_PROCESSNAME] = "processName",
        [LOG_FIELD_RELATIVECREATED] = "relativeCreated",
        [LOG_FIELD_THREAD] = "thread",
        [LOG_FIELD_THREADNAME] = "threadName",
};

/* Format items: literal text (offset/length into the format) or one field with its printf-like spec. */
#define LOG_FORMAT_ITEMS_MAX 64
#define LOG_FORMAT_TEXT_MAX  512
#define LOG_DATEFORMAT_MAX   128
typedef struct LogFormatItem {
        LogField field;
        unsigned offset, length; /* literal text */
        bool left, zero, plus, space;
        int width, precision; /* -1 when absent */
        char conversion;      /* s, d or f */
} LogFormatItem;

typedef struct LogFormat {
        char text[LOG_FORMAT_TEXT_MAX];
        char dateformat[LOG_DATEFORMAT_MAX]; /* empty: "%Y-%m-%d %H:%M:%S,mmm" */
        LogFormatItem items[LOG_FORMAT_ITEMS_MAX];
        size_t n_items;
} LogFormat;

static LogFormat log_format;
static bool log_format_set = false;

/* log.dir output: <dir>/patroni.log, rotated at file_size into .1 .. .file_num. */
static struct {
        int fd;
        char path[PATH_MAX];
        uint64_t size, max_size;
        unsigned backups;
        bool failed; /* the last write or rotation failed; said once on stderr */
} log_file = {.fd = -1};

static struct timespec log_start_time;

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
        if (log_start_time.tv_sec == 0)
                (void)clock_gettime(CLOCK_REALTIME, &log_start_time);
        log_opened = true;
}

static int format_error(char *error, size_t error_size, const char *format, ...) _printf_(3, 4);
static int format_error(char *error, size_t error_size, const char *format, ...) {
        va_list ap;

        if (error && error_size > 0) {
                va_start(ap, format);
                (void)vsnprintf(error, error_size, format, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static bool field_is_text(LogField f) {
        switch (f) {
        case LOG_FIELD_ASCTIME:
        case LOG_FIELD_FILENAME:
        case LOG_FIELD_FUNCNAME:
        case LOG_FIELD_LEVELNAME:
        case LOG_FIELD_MESSAGE:
        case LOG_FIELD_MODULE:
        case LOG_FIELD_NAME:
        case LOG_FIELD_PATHNAME:
        case LOG_FIELD_PROCESSNAME:
        case LOG_FIELD_THREADNAME:
                return true;
        default:
                return false;
        }
}

static int log_format_compile(const char *format, LogFormat *f, char *error, size_t error_size) {
        size_t len, fields = 0;

        *f = (LogFormat){};
        if (!format)
                return format_error(error, error_size, "no format");
        len = strlen(format);
        if (len >= sizeof f->text)
                return format_error(error, error_size, "format longer than %zu bytes", sizeof f->text - 1);
        memcpy(f->text, format, len + 1);

        for (size_t i = 0; i < len;) {
                LogFormatItem it = {.field = LOG_FIELD_LITERAL, .width = -1, .precision = -1};
                const char *name, *end;
                size_t name_len;

                if (f->n_items >= ELEMENTSOF(f->items))
                        return format_error(
                                error, error_size, "too many items (at most %zu)", ELEMENTSOF(f->items));

                if (format[i] != '%') {
                        size_t j = i;
                        while (j < len && format[j] != '%')
                                j++;
                        it.offset = (unsigned)i;
                        it.length = (unsigned)(j - i);
                        f->items[f->n_items++] = it;
                        i = j;
                        continue;
                }
                if (format[i + 1] == '%') { /* "%%" is one literal '%' */
                        it.offset = (unsigned)i;
                        it.length = 1;
                        f->items[f->n_items++] = it;
                        i += 2;
                        continue;
                }
                if (format[i + 1] != '(')
                        return format_error(
                                error,
                                error_size,
                                "'%%' at offset %zu is not followed by '(name)': use %%(name)s "
                                "placeholders, "
                                "'%%%%' for a literal '%%'",
                                i);
                name = format + i + 2;
                end = strchr(name, ')');
                if (!end)
                        return format_error(error, error_size, "unterminated '%%(' at offset %zu", i);
                name_len = (size_t)(end - name);
                for (LogField k = LOG_FIELD_LITERAL + 1; k < _LOG_FIELD_MAX; k++)
                        if (strlen(log_field_names[k]) == name_len &&
                            strneq(name, log_field_names[k], name_len))
                                it.field = k;
                if (it.field == LOG_FIELD_LITERAL)
                        return format_error(
                                error,
                                error_size,
                                "unsupported field %%(%.*s) (supported: asctime, created, filename, "
                                "funcName, "
                                "levelname, levelno, lineno, message, module, msecs, name, pathname, "
                                "process, "
                                "processName, relativeCreated, thread, threadName)",
                                (int)MIN(name_len, 64u),
                                name);

                /* Python's %-style spec: flags, width, .precision, conversion. */
                i = (size_t)(end - format) + 1;
                for (; i < len && strchr("#0+ -", format[i]); i++) {
                        it.left = it.left || format[i] == '-';
                        it.zero = it.zero || format[i] == '0';
                        it.plus = it.plus || format[i] == '+';
                        it.space = it.space || format[i] == ' ';
                }
                for (; i < len && format[i] >= '0' && format[i] <= '9'; i++)
                        it.width = MIN(MAX(it.width, 0) * 10 + (format[i] - '0'), 1000);
                if (i < len && format[i] == '.') {
                        it.precision = 0;
                        for (i++; i < len && format[i] >= '0' && format[i] <= '9'; i++)
                                it.precision = MIN(it.precision * 10 + (format[i] - '0'), 1000);
                }
                if (i >= len)
                        return format_error(
                                error,
                                error_size,
                                "%%(%s) has no conversion character",
                                log_field_names[it.field]);
                switch (format[i]) {
                case 's':
                        it.conversion = 's';
                        break;
                case 'd':
                case 'i':
                case 'u':
                        it.conversion = 'd';
                        break;
                case 'f':
                case 'F':
                        it.conversion = 'f';
                        break;
                default:
                        return format_error(
                                error,
                                error_size,
                                "unsupported conversion '%c' after %%(%s) (use s, d or f)",
                                format[i],
                                log_field_names[it.field]);
                }
                if (it.conversion != 's' && field_is_text(it.field))
                        return format_error(
                                error,
                                error_size,
                                "%%(%s) is text: use the 's' conversion, not '%c'",
                                log_field_names[it.field],
                                format[i]);
                i++;
                f->items[f->n_items++] = it;
                fields++;
        }
        /* Python's Formatter(validate=True) refuses a layout without any field. */
        if (fields == 0)
                return format_error(
                        error, error_size, "no %%(name)s field: the layout would print no message");
        return 0;
}

int log_format_check(const char *format, char *error, size_t error_size) {
        LogFormat f;

        return log_format_compile(format, &f, error, error_size);
}

int log_set_format(const char *format, const char *dateformat) {
        LogFormat f;
        int r;

        r = log_format_compile(format ?: LOG_FORMAT_DEFAULT, &f, NULL, 0);
        if (r < 0)
                return r;
        if (dateformat) {
                size_t len = strlen(dateformat);
                if (len >= sizeof f.dateformat)
                        return -EINVAL;
                memcpy(f.dateformat, dateformat, len + 1);
        }
        log_format = f;
        log_format_set = true;
        return 0;
}

/* Python's log levels for %(levelno)s. */
static int python_level(int level) {
        switch (level) {
        case LOG_DEBUG:
                return 10;
        case LOG_INFO:
        case LOG_NOTICE:
                return 20;
        case LOG_WARNING:
                return 30;
        case LOG_ERR:
                return 40;
        default:
                return 50;
        }
}

/* Appends s (at most precision bytes) padded to width; returns the new length (capped at size - 1). */
static size_t
append_padded(char *buf, size_t size, size_t pos, const LogFormatItem *it, const char *s, bool numeric) {
        size_t len = strlen(s), pad;
        char fill = ' ';

        if (it->precision >= 0 && it->conversion == 's' && (size_t)it->precision < len)
                len = (size_t)it->precision;
        pad = it->width > 0 && (size_t)it->width > len ? (size_t)it->width - len : 0;
        if (numeric && it->zero && !it->left)
                fill = '0';
        /* A sign stays in front of zero padding. */
        if (fill == '0' && len > 0 && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) {
                if (pos + 1 < size)
                        buf[pos++] = s[0];
                s++;
                len--;
        }
        for (; !it->left && pad > 0 && pos + 1 < size; pad--)
                buf[pos++] = fill;
        for (size_t k = 0; k < len && pos + 1 < size; k++)
                buf[pos++] = s[k];
        for (; it->left && pad > 0 && pos + 1 < size; pad--)
                buf[pos++] = ' ';
        buf[pos] = 0;
        return pos;
}

static void format_number(char *out, size_t size, const LogFormatItem *it, double v, bool integral) {
        const char *sign = v < 0 ? "" : it->plus ? "+" : it->space ? " " : "";

        if (it->conversion == 'd')
                (void)snprintf(out, size, "%s%lld", sign, (long long)v);
        else if (it->conversion == 'f')
                (void)snprintf(out, size, "%s%.*f", sign, it->precision >= 0 ? it->precision : 6, v);
        else if (integral)
                (void)snprintf(out, size, "%lld", (long long)v);
        else
                /* str() of a Python float: enough digits, at least one decimal. */
                (void)snprintf(out, size, "%.3f", v);
}

typedef struct LogRecord {
        int level;
        const char *file, *func, *msg;
        int line;
        struct timespec ts;
} LogRecord;

/* Renders one record with the configured layout (no trailing newline) into buf. */
static size_t log_format_render(const LogFormat *f, const LogRecord *rec, char *buf, size_t size) {
        const char *base = strrchr(rec->file, '/') ? strrchr(rec->file, '/') + 1 : rec->file;
        size_t pos = 0;

        buf[0] = 0;
        for (size_t i = 0; i < f->n_items; i++) {
                const LogFormatItem *it = &f->items[i];
                char tmp[256], module[64];
                const char *s = NULL;
                double v = 0;
                bool integral = true;
                struct tm tm;

                switch (it->field) {
                case LOG_FIELD_LITERAL:
                        for (unsigned k = 0; k < it->length && pos + 1 < size; k++)
                                buf[pos++] = f->text[it->offset + k];
                        buf[pos] = 0;
                        continue;
                case LOG_FIELD_ASCTIME:
                        (void)localtime_r(&rec->ts.tv_sec, &tm);
                        if (f->dateformat[0] != 0) {
                                /* The user's datefmt, as Python's time.strftime() takes it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                                if (strftime(tmp, sizeof tmp, f->dateformat, &tm) == 0)
                                        tmp[0] = 0;
#pragma GCC diagnostic pop
                        } else {
                                size_t l = strftime(tmp, sizeof tmp, "%Y-%m-%d %H:%M:%S", &tm);
                                (void)snprintf(
                                        tmp + l, sizeof tmp - l, ",%03ld", rec->ts.tv_nsec / 1000000L);
                        }
                        s = tmp;
                        break;
                case LOG_FIELD_LEVELNAME:
                        s = strna(log_level_to_string(rec->level));
                        break;
                case LOG_FIELD_MESSAGE:
                        s = rec->msg;
                        break;
                case LOG_FIELD_FILENAME:
                        s = base;
                        break;
                case LOG_FIELD_PATHNAME:
                        s = rec->file;
                        break;
                case LOG_FIELD_FUNCNAME:
                        s = rec->func;
                        break;
                case LOG_FIELD_MODULE:
                case LOG_FIELD_NAME:
                        /* The source file's base name; %(name)s prefixes "pgha." as Patroni's loggers are
                         * named "patroni.<module>". */
                        (void)snprintf(
                                module,
                                sizeof module,
                                "%s%.*s",
                                it->field == LOG_FIELD_NAME ? "pgha." : "",
                                (int)(strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base)),
                                base);
                        s = module;
                        break;
                case LOG_FIELD_PROCESSNAME:
                        s = "MainProcess";
                        break;
                case LOG_FIELD_THREADNAME:
                        s = "MainThread";
                        break;
                case LOG_FIELD_LEVELNO:
                        v = python_level(rec->level);
                        break;
                case LOG_FIELD_LINENO:
                        v = rec->line;
                        break;
                case LOG_FIELD_PROCESS:
                        v = getpid();
                        break;
                case LOG_FIELD_THREAD:
                        v = (double)(unsigned long)pthread_self();
                        break;
                case LOG_FIELD_CREATED:
                        v = (double)rec->ts.tv_sec + (double)rec->ts.tv_nsec / 1e9;
                        integral = false;
                        break;
                case LOG_FIELD_MSECS:
                        v = (double)(rec->ts.tv_nsec / 1000000L);
                        integral = false;
                        break;
                case LOG_FIELD_RELATIVECREATED:
                        v = (double)(rec->ts.tv_sec - log_start_time.tv_sec) * 1e3 +
                                (double)(rec->ts.tv_nsec - log_start_time.tv_nsec) / 1e6;
                        integral = false;
                        break;
                default:
                        continue;
                }
                if (!s) {
                        format_number(tmp, sizeof tmp, it, v, integral);
                        s = tmp;
                        pos = append_padded(buf, size, pos, it, s, true);
                } else
                        pos = append_padded(buf, size, pos, it, s, false);
        }
        return pos;
}

static void log_file_close(void) {
        log_file.fd = safe_close(log_file.fd);
        log_file.path[0] = 0;
        log_file.size = 0;
}

static int log_file_open_path(const char *path) {
        struct stat st;
        int fd;

        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        safe_close(log_file.fd);
        log_file.fd = fd;
        log_file.size = (uint64_t)st.st_size;
        return 0;
}

int log_set_file(const char *dir, uint64_t max_size, unsigned backups) {
        char path[PATH_MAX];
        int r;

        if (!dir) {
                log_file_close();
                return 0;
        }
        if ((size_t)snprintf(path, sizeof path, "%s/" LOG_FILE_NAME, dir) >= sizeof path)
                return -ENAMETOOLONG;
        if (log_file.fd < 0 || !streq(path, log_file.path)) {
                r = log_file_open_path(path);
                if (r < 0)
                        return r;
                memcpy(log_file.path, path, sizeof path);
        }
        log_file.max_size = max_size;
        log_file.backups = backups;
        log_file.failed = false;
        return 0;
}

const char *log_get_file(void) {
        return log_file.fd >= 0 ? log_file.path : NULL;
}

LogTarget log_get_target(void) {
        if (!log_opened)
                log_open();
        if (log_file.fd >= 0)
                return LOG_TARGET_FILE;
        return log_to_journal ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
}

/* RotatingFileHandler.doRollover(): patroni.log.(n-1) → .n, ..., patroni.log → .1, reopen. Only the
 * files that exist are renamed (file_num may be huge), the oldest kept one is overwritten. */
static int log_file_rotate(void) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        unsigned top = 1;
        struct stat st;

        for (; top < log_file.backups; top++) {
                (void)snprintf(from, sizeof from, "%s.%u", log_file.path, top);
                if (stat(from, &st) < 0)
                        break;
        }
        for (unsigned i = top; i >= 1; i--) {
                if (i > 1)
                        (void)snprintf(from, sizeof from, "%s.%u", log_file.path, i - 1);
                else
                        (void)snprintf(from, sizeof from, "%s", log_file.path);
                (void)snprintf(to, sizeof to, "%s.%u", log_file.path, i);
                if (rename(from, to) < 0 && errno != ENOENT)
                        return -errno;
        }
        return log_file_open_path(log_file.path);
}

static void write_line_stderr(const char *line, size_t len) {
        /* One write so concurrent writers (several daemons in one test log) do not interleave lines. */
        (void)fwrite(line, 1, len, stderr);
        (void)fflush(stderr);
}

static void write_file(const char *line, size_t len) {
        int r = 0;

        if (log_file.max_size > 0 && log_file.backups > 0 && log_file.size + len >= log_file.max_size)
                r = log_file_rotate();
        if (r >= 0) {
                ssize_t k = write(log_file.fd, line, len);
                if (k < 0)
                        r = -errno;
                else if ((size_t)k != len)
                        r = -ENOSPC;
                else {
                        log_file.size += len;
                        log_file.failed = false;
                        return;
                }
        }
        /* Never lose the line: stderr (the journal under systemd), with the reason said once. */
        if (!log_file.failed) {
                char msg[PATH_MAX + 128];
                int n = snprintf(
                        msg,
                        sizeof msg,
                        "Cannot write the log file %s: %s; writing to stderr meanwhile.\n",
                        log_file.path,
                        strerror(-r));
                write_line_stderr(msg, (size_t)MAX(0, MIN(n, (int)sizeof msg - 1)));
                log_file.failed = true;
        }
        write_line_stderr(line, len);
}

static void write_formatted(int level, const char *file, int line, const char *func, const char *msg) {
        char buf[LOG_LINE_MAX + 1024];
        LogRecord rec = {.level = level, .file = file, .line = line, .func = func, .msg = msg};
        size_t len;

        if (!log_format_set)
                (void)log_set_format(NULL, NULL);
        (void)clock_gettime(CLOCK_REALTIME, &rec.ts);
        len = log_format_render(&log_format, &rec, buf, sizeof buf - 1);
        buf[len++] = '\n';
        if (log_file.fd >= 0)
                write_file(buf, len);
        else
                write_line_stderr(buf, len);
}

static void write_stderr(int level, const char *msg) {
        write_formatted(level, "", 0, "", msg);
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

        if (log_to_journal && log_file.fd < 0)
                write_journal(level, error, fields, file, line, func, buf);
        else
                write_formatted(level, file, line, func, buf);

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
