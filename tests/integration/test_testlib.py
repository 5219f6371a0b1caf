"""The harness itself: a real etcd starts on a free loopback port and answers the v3 gateway."""
import base64

import pgha_testlib as lib


def test_etcd_fixture_serves_v3_gateway(etcd):
    key = base64.b64encode(b"/service/test/probe").decode()
    etcd.v3("kv/put", {"key": key, "value": base64.b64encode(b"v").decode()})
    reply = etcd.v3("kv/range", {"key": key})
    assert base64.b64decode(reply["kvs"][0]["value"]) == b"v"


def test_free_ports_are_distinct():
    ports = {lib.free_port() for _ in range(20)}
    assert len(ports) == 20
