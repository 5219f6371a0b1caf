/* SPDX-License-Identifier: MIT */
/*
 * RestServerOptions from a real configuration (config_load_string), and a server started on a real
 * sd-event loop on a free port, answering one request made over a socket from the same process.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include "pgha/config.h"
#include "pgha/rest.h"
#include "tests.h"

TEST(options_from_config) {
        _cleanup_(config_freep) Config *c = NULL;
        RestServerOptions o = {};

        ASSERT_OK(config_load_string(
                "test.yml",
                "scope: demo\nname: node1\n"
                "restapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n"
                "  authentication:\n    username: admin\n    password: secret\n"
                "  allowlist: [10.0.0.0/8, 127.0.0.1]\n  allowlist_include_members: true\n"
                "  verify_client: OPTIONAL\n  certfile: /dev/null\n"
                "  http_extra_headers:\n    X-Frame-Options: SAMEORIGIN\n    X-Num: 5\n"
                "  https_extra_headers:\n    Strict-Transport-Security: max-age=31536000\n"
                "etcd3:\n  hosts: 127.0.0.1:2379\n"
                "postgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 127.0.0.1:5432\n"
                "  data_dir: /tmp/x\n  authentication:\n    superuser:\n      username: postgres\n"
                "    replication:\n      username: replicator\n",
                &c,
                NULL));
        ASSERT_OK(rest_server_options_from_config(c, &o));
        ASSERT_STREQ(o.listen_host, "127.0.0.1");
        ASSERT_EQ(o.listen_port, 8008);
        ASSERT_STREQ(o.auth_username, "admin");
        ASSERT_STREQ(o.auth_password, "secret");
        ASSERT_EQ(o.n_allowlist, 2);
        ASSERT_STREQ(o.allowlist[1], "127.0.0.1");
        ASSERT_TRUE(o.allowlist_include_members);
        ASSERT_EQ(o.verify_client, REST_VERIFY_CLIENT_OPTIONAL);
        ASSERT_EQ(o.n_extra_headers, 3);
        ASSERT_STREQ(o.extra_headers[0], "X-Frame-Options");
        ASSERT_STREQ(o.extra_headers[1], "SAMEORIGIN");
        ASSERT_STREQ(o.extra_headers[3], "5");
        ASSERT_STREQ(o.extra_headers[4], "Strict-Transport-Security");
        rest_server_options_done(&o);
        ASSERT_EQ(rest_verify_client_from_string("Required"), REST_VERIFY_CLIENT_REQUIRED);
        ASSERT_EQ(rest_verify_client_from_string("maybe"), -EINVAL);
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char *buf = userdata;
        size_t len = strlen(buf);
        ssize_t n = recv(fd, buf + len, 4095 - len, 0);

        if (n <= 0)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        buf[len + (size_t)n] = '\0';
        return 0;
}

TEST(server_on_event_loop) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(rest_server_freep) RestServer *server = NULL;
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *client = NULL;
        NodeSnapshot snap = {
                .scope = (char *)"demo",
                .state = (char *)"running",
                .status_ok = true,
                .role = SNAPSHOT_ROLE_MASTER,
                .leader_expiry = USEC_INFINITY};
        RestServerOptions o = {.listen_host = "127.0.0.1"};
        struct sockaddr_in sa = {.sin_family = AF_INET};
        static const char request[] = "OPTIONS /primary HTTP/1.0\r\n\r\n";
        char reply[4096] = "";
        _cleanup_close_ int fd = -EBADF;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(rest_server_new(e, &o, &snap, &server));
        ASSERT_TRUE(rest_server_port(server) > 0);

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        sa.sin_port = htons(rest_server_port(server));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
        ASSERT_EQ(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
        ASSERT_OK(sd_event_add_io(e, &client, fd, EPOLLIN, on_client, reply));
        ASSERT_OK(sd_event_loop(e));
        ASSERT_TRUE(startswith(reply, "HTTP/1.0 200 OK\r\n") != NULL);
        ASSERT_TRUE(strstr(reply, "\r\n\r\n") != NULL);
        ASSERT_TRUE(endswith(reply, "\r\n\r\n"));
}

DEFINE_TEST_MAIN
