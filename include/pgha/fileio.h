/* SPDX-License-Identifier: MIT */
/*
 * File helpers: bounded reads (a configuration or a PID file can never make us allocate without
 * limit) and atomic replacement (temp file, fsync, rename, fsync directory) so that a crash leaves
 * either the old or the new content, never a torn file. Non-logging.
 */
#pragma once

#include <sys/types.h>

#include "pgha/macro.h"

/* read_full_file - reads path whole into a NUL-terminated heap buffer. Fails with -EFBIG when the file
 * is larger than max_size bytes. *ret_size (optional) excludes the terminating NUL. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size) _warn_unused_result_;

/* write_file_atomic - replaces path with data, mode applied to the new file. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) _warn_unused_result_;
