/* SPDX-License-Identifier: MIT */
/*
 * Maps the restapi section of the local configuration (Config) onto RestServerOptions, with Patroni's
 * interpretation of each key: verify_client compared case-insensitively (an unknown value, which the
 * configuration check refuses, logs and means "none"), https_extra_headers added to http_extra_headers only
 * with a certificate, header values as Python's str() would print them.
 *
 * Invariant: the options borrow every string from the Config (which must outlive them) except the
 * extra-headers array, which they own until rest_server_options_done().
 */
#include <strings.h>

#include "pgha/config.h"
#include "pgha/log.h"
#include "pgha/rest.h"
#include "rest-internal.h"

RestVerifyClient rest_verify_client_from_string(const char *s) {
        if (!s)
                return _REST_VERIFY_CLIENT_INVALID;
        if (strcasecmp(s, "none") == 0)
                return REST_VERIFY_CLIENT_NONE;
        if (strcasecmp(s, "optional") == 0)
                return REST_VERIFY_CLIENT_OPTIONAL;
        if (strcasecmp(s, "required") == 0)
                return REST_VERIFY_CLIENT_REQUIRED;
        return _REST_VERIFY_CLIENT_INVALID;
}

static int add_headers(const cJSON *headers, char ***array, size_t *n) {
        const cJSON *h;

        cJSON_ArrayForEach (h, headers) {
                char **a = reallocarray(*array, 2 * (*n + 1), sizeof(char *));
                if (!a)
                        return -ENOMEM;
                *array = a;
                a[2 * *n] = strdup(h->string);
                a[2 * *n + 1] = python_str(h);
                if (!a[2 * *n] || !a[2 * *n + 1]) {
                        free(a[2 * *n]);
                        free(a[2 * *n + 1]);
                        return -ENOMEM;
                }
                (*n)++;
        }
        return 0;
}

/* rest_server_options_from_config - see the header. Logs (once) what it cannot honour. */
int rest_server_options_from_config(const struct Config *c, RestServerOptions *ret) {
        RestServerOptions o = {
                .listen_host = c->restapi.listen.host,
                .listen_port = c->restapi.listen.port,
                .auth_username = c->restapi.username,
                .auth_password = c->restapi.password,
                .allowlist = c->restapi.allowlist,
                .allowlist_include_members = c->restapi.allowlist_include_members,
                .certfile = c->restapi.certfile,
                .keyfile = c->restapi.keyfile,
                .keyfile_password = c->restapi.keyfile_password,
                .cafile = c->restapi.cafile,
                .connection_limit = (unsigned)MAX(c->restapi.connection_limit, 0),
                .per_ip_connection_limit = (unsigned)MAX(c->restapi.per_ip_connection_limit, 0),
                .idle_timeout = c->restapi.idle_timeout,
                .connection_timeout = c->restapi.request_timeout,
        };
        int r;

        if (!c->restapi.listen.host && c->restapi.listen.port == 0)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Can not find \"restapi.listen\" config");
        for (char **a = c->restapi.allowlist; a && *a; a++)
                o.n_allowlist++;

        if (c->restapi.verify_client) {
                RestVerifyClient v = rest_verify_client_from_string(c->restapi.verify_client);
                if (v < 0)
                        log_error(
                                "Bad value in the \"restapi.verify_client\": %s", c->restapi.verify_client);
                else
                        o.verify_client = v;
        }
        /* restapi.ciphers: an OpenSSL cipher list the GnuTLS back-end cannot use; the configuration
         * check warns about it (config.c). */

        r = add_headers(c->restapi.http_extra_headers, &o.extra_headers, &o.n_extra_headers);
        if (r >= 0 && c->restapi.certfile)
                r = add_headers(c->restapi.https_extra_headers, &o.extra_headers, &o.n_extra_headers);
        if (r < 0) {
                rest_server_options_done(&o);
                return log_oom();
        }
        *ret = o;
        return 0;
}

/* rest_server_options_done - frees what rest_server_options_from_config() allocated. */
void rest_server_options_done(RestServerOptions *o) {
        for (size_t i = 0; i < 2 * o->n_extra_headers; i++)
                free(o->extra_headers[i]);
        o->extra_headers = mfree(o->extra_headers);
        o->n_extra_headers = 0;
}
