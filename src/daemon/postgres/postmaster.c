/* SPDX-License-Identifier: MIT */
/*
 * Is the postmaster of a data directory running? Read from <data_dir>/postmaster.pid and
 * /proc/<pid>/stat, never from kill(pid, 0): a killed postmaster may linger unreaped for seconds (PID 1
 * reaps orphans late on some hosts) and still passes a signal probe, and a recycled PID belongs to some
 * other process. Invariant: POSTMASTER_RUNNING only for a live, non-zombie process that started when the
 * pid file says. Shared by the probe (pgmon) and the jobs (pgctl). Reads small local files
 * synchronously; non-logging.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgha/fileio.h"
#include "pgha/postmaster.h"

#define POSTMASTER_PIDFILE_MAX          4096 /* postmaster.pid is 8 short lines */
#define POSTMASTER_PROC_STAT_MAX        4096 /* one line; comm is at most 16 bytes */
#define POSTMASTER_START_TIME_TOLERANCE 3    /* seconds, as Patroni: pid file vs. /proc start time */

static const char *const postmaster_state_table[_POSTMASTER_STATE_MAX] = {
        [POSTMASTER_RUNNING] = "running",
        [POSTMASTER_NO_PIDFILE] = "no-pidfile",
        [POSTMASTER_BAD_PIDFILE] = "bad-pidfile",
        [POSTMASTER_GONE] = "gone",
        [POSTMASTER_ZOMBIE] = "zombie",
        [POSTMASTER_PID_REUSED] = "pid-reused",
};

DEFINE_STRING_TABLE_LOOKUP(postmaster_state, PostmasterState);

/* ==== Process facts ==== */

/* postmaster_pid_file_done - frees the strings of p and zeroes it. */
void postmaster_pid_file_done(PostmasterPidFile *p) {
        if (!p)
                return;
        free(p->data_dir);
        free(p->socket_dir);
        free(p->status);
        *p = (PostmasterPidFile){};
}

static int parse_long(const char *s, long long min, long long max, long long *ret) {
        char *end;
        long long v;

        if (isempty(s))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || end == s)
                return -EINVAL;
        while (*end == ' ')
                end++;
        if (*end != '\0' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static char *strdup_trimmed(const char *s) {
        size_t l = strlen(s);

        while (l > 0 && s[l - 1] == ' ')
                l--;
        return strndup(s, l);
}

/* postmaster_pid_file_parse - parses the text of postmaster.pid: line 1 pid, 2 data directory, 3 start
 * time (epoch seconds), 4 port, 5 socket directory, 8 status. Lines 1-3 are required (PostgreSQL writes
 * them first); the rest may still be missing while the postmaster starts. -EINVAL names nothing: the
 * caller logs. Non-logging. */
int postmaster_pid_file_parse(const char *text, PostmasterPidFile *ret) {
        _cleanup_(postmaster_pid_file_done) PostmasterPidFile p = {};
        const char *line = text;
        long long v;
        int r;

        if (!text || !ret)
                return -EINVAL;

        for (unsigned n = 1; line && *line && n <= 8; n++) {
                const char *eol = strchr(line, '\n');
                _cleanup_free_ char *l = eol ? strndup(line, (size_t)(eol - line)) : strdup(line);

                if (!l)
                        return -ENOMEM;
                line = eol ? eol + 1 : NULL;

                switch (n) {
                case 1:
                        r = parse_long(l, 1, INT32_MAX, &v);
                        if (r < 0)
                                return r;
                        p.pid = (pid_t)v;
                        break;
                case 2:
                        if (l[0] != '/')
                                return -EINVAL;
                        p.data_dir = TAKE_PTR(l);
                        break;
                case 3:
                        r = parse_long(l, 0, INT64_MAX, &v);
                        if (r < 0)
                                return r;
                        p.start_time = v;
                        break;
                case 4:
                        if (parse_long(l, 1, 65535, &v) >= 0)
                                p.port = (unsigned)v;
                        break;
                case 5:
                        if (!isempty(l)) {
                                p.socket_dir = strdup_trimmed(l);
                                if (!p.socket_dir)
                                        return -ENOMEM;
                        }
                        break;
                case 8:
                        if (!isempty(l)) {
                                p.status = strdup_trimmed(l);
                                if (!p.status)
                                        return -ENOMEM;
                        }
                        break;
                }
        }
        if (p.pid == 0 || !p.data_dir || p.start_time == 0)
                return -EINVAL;

        *ret = p;
        p = (PostmasterPidFile){};
        return 0;
}

/* proc_stat_parse - extracts state (field 3) and starttime (field 22) from /proc/<pid>/stat. The comm
 * field may contain spaces and parentheses, so fields are counted from the LAST ')'. Non-logging. */
int proc_stat_parse(const char *text, ProcStat *ret) {
        const char *p;
        unsigned field = 3;

        if (!text || !ret)
                return -EINVAL;
        p = strrchr(text, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        if (!*p || *p == ' ')
                return -EINVAL;
        ret->state = *p;

        /* skip to field 22 */
        while (field < 22) {
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                p++;
                field++;
        }
        {
                char *end;
                unsigned long long v;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                errno = 0;
                v = strtoull(p, &end, 10);
                if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
                        return -EINVAL;
                ret->start_time = v;
        }
        return 0;
}

/* The wall-clock start of a process whose /proc starttime is `ticks` after boot. */
static int64_t process_start_epoch(uint64_t ticks) {
        struct timespec boot, real;
        long hz = sysconf(_SC_CLK_TCK);
        double age;

        if (hz <= 0)
                hz = 100;
        (void)clock_gettime(CLOCK_BOOTTIME, &boot);
        (void)clock_gettime(CLOCK_REALTIME, &real);
        age = (double)boot.tv_sec + (double)boot.tv_nsec / 1e9 - (double)ticks / (double)hz;
        return (int64_t)((double)real.tv_sec + (double)real.tv_nsec / 1e9 - age + 0.5);
}

/* postmaster_check - decides whether the postmaster of data_dir runs (see PostmasterState). proc_root
 * NULL means "/proc". *ret_pid (optional) receives the parsed pid file when there is one; the caller
 * frees it with postmaster_pid_file_done(). Returns 0, or a negative errno when data_dir itself cannot
 * be read (other than a missing pid file). Reads small files synchronously: local /proc and data
 * directory reads do not block on the network. Non-logging. */
int postmaster_check(
        const char *data_dir,
        const char *proc_root,
        PostmasterState *ret_state,
        PostmasterPidFile *ret_pid) {
        _cleanup_(postmaster_pid_file_done) PostmasterPidFile pf = {};
        _cleanup_free_ char *path = NULL, *text = NULL, *stat_text = NULL;
        ProcStat st;
        int r;

        if (!data_dir || !ret_state)
                return -EINVAL;

        if (asprintf(&path, "%s/postmaster.pid", data_dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, POSTMASTER_PIDFILE_MAX, &text, NULL);
        if (r == -ENOENT) {
                *ret_state = POSTMASTER_NO_PIDFILE;
                return 0;
        }
        if (r == -EFBIG) {
                *ret_state = POSTMASTER_BAD_PIDFILE;
                return 0;
        }
        if (r < 0)
                return r;
        if (postmaster_pid_file_parse(text, &pf) < 0) {
                /* a pid file is written in steps; an empty or partial first line means "starting" */
                *ret_state = POSTMASTER_BAD_PIDFILE;
                return 0;
        }

        path = mfree(path);
        if (asprintf(&path, "%s/%d/stat", proc_root ?: "/proc", (int)pf.pid) < 0)
                return -ENOMEM;
        r = read_full_file(path, POSTMASTER_PROC_STAT_MAX, &stat_text, NULL);
        if (r == -ENOENT || r == -ESRCH)
                *ret_state = POSTMASTER_GONE;
        else if (r < 0)
                return r;
        else if (proc_stat_parse(stat_text, &st) < 0)
                *ret_state = POSTMASTER_GONE; /* raced with exit: the file vanished mid-read */
        else if (st.state == 'Z' || st.state == 'X' || st.state == 'x')
                *ret_state = POSTMASTER_ZOMBIE;
        else {
                int64_t started = process_start_epoch(st.start_time);

                if (llabs((long long)(started - pf.start_time)) > POSTMASTER_START_TIME_TOLERANCE)
                        *ret_state = POSTMASTER_PID_REUSED;
                else
                        *ret_state = POSTMASTER_RUNNING;
        }

        if (ret_pid) {
                *ret_pid = pf;
                pf = (PostmasterPidFile){};
        }
        return 0;
}

/* postmaster_pid_alive - whether pid exists and is neither a zombie nor dead (state Z, X). */
bool postmaster_pid_alive(pid_t pid) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        ProcStat st;

        if (pid <= 0)
                return false;
        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (read_full_file(path, POSTMASTER_PROC_STAT_MAX, &text, NULL) < 0 ||
            proc_stat_parse(text, &st) < 0)
                return false;
        return st.state != 'Z' && st.state != 'X' && st.state != 'x';
}
