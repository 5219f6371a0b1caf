/* SPDX-License-Identifier: MIT */
/*
 * Postmaster liveness from postmaster.pid and /proc (see postmaster.c for why not kill(pid, 0)).
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "pgha/macro.h"

/* What postmaster.pid and /proc say about the postmaster. Only POSTMASTER_RUNNING counts as running. */
typedef enum PostmasterState {
        POSTMASTER_RUNNING,     /* pid file names a live (not zombie) process started when the file says */
        POSTMASTER_NO_PIDFILE,  /* no postmaster.pid: cleanly stopped (or never started) */
        POSTMASTER_BAD_PIDFILE, /* unreadable or malformed postmaster.pid */
        POSTMASTER_GONE,        /* pid file left behind, process does not exist (crash, kill -9) */
        POSTMASTER_ZOMBIE,      /* process exited, not yet reaped (state Z or X): kill(pid, 0) still works */
        POSTMASTER_PID_REUSED,  /* a process with that pid exists but started at another time */
        _POSTMASTER_STATE_MAX,
        _POSTMASTER_STATE_INVALID = -EINVAL,
} PostmasterState;

const char *postmaster_state_to_string(PostmasterState s);
PostmasterState postmaster_state_from_string(const char *s);

/* The first lines of postmaster.pid (PostgreSQL's miscadmin.h LOCK_FILE_LINE_*). */
typedef struct PostmasterPidFile {
        pid_t pid;
        char *data_dir;
        int64_t start_time; /* epoch seconds */
        unsigned port;      /* 0 while not yet written */
        char *socket_dir;   /* NULL while not yet written */
        char *status;       /* "starting", "ready", "standby", "stopping"; NULL while not yet written */
} PostmasterPidFile;

void postmaster_pid_file_done(PostmasterPidFile *p);
int postmaster_pid_file_parse(const char *text, PostmasterPidFile *ret) _warn_unused_result_;

/* The /proc/<pid>/stat fields we need. */
typedef struct ProcStat {
        char state;          /* R, S, D, Z, X, T, ... */
        uint64_t start_time; /* clock ticks since boot */
} ProcStat;

int proc_stat_parse(const char *text, ProcStat *ret) _warn_unused_result_;
int postmaster_check(
        const char *data_dir, const char *proc_root, PostmasterState *ret_state, PostmasterPidFile *ret_pid);
bool postmaster_pid_alive(pid_t pid);
