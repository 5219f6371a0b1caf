/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics: Patroni 3.0.2's Prometheus text, metric for metric (names, HELP texts with their
 * oddities, TYPE lines, the {scope="..."} label set and the stray space before the label set of
 * patroni_postgres_server_version), computed from a NodeSnapshot.
 */
#pragma once

#include "pgha/snapshot.h"

/* metrics_render - the /metrics body for s at now (CLOCK_MONOTONIC µs, for the cluster view's validity).
 * *ret is a heap string owned by the caller, *ret_size its length. Pure; -ENOMEM on allocation failure. */
int metrics_render(const NodeSnapshot *s, usec_t now, char **ret, size_t *ret_size);
