"""REST access control details on pgha-test-rest (the real server on an sd-event loop): allowlist host
names resolved without blocking the loop, and an allowlist without a usable entry refusing everyone."""
import base64

import pgha_testlib as lib
from test_rest import LEADER, nodes  # noqa: F401 - nodes is the fixture

GOOD = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}


def test_allowlist_host_names_and_fail_closed(nodes):  # noqa: F811
    # a host name: allowed once its lookup has answered (localhost is 127.0.0.1 in /etc/hosts)
    named = nodes("node1", LEADER, "--allow", "localhost", "--auth", "admin:s3cret")
    lib.wait_until(lambda: named.request("POST", "/reload", headers=GOOD)[0] == 503, 10,
                   what="localhost resolved and allowed")  # 503: no engine behind pgha-test-rest
    # a name that does not resolve allows nobody
    unknown = nodes("node2", LEADER, "--allow", "pgha-no-such-host.invalid", "--auth", "admin:s3cret")
    assert unknown.request("POST", "/reload", headers=GOOD)[:3:2] == (403, b"Access is denied")
    # no usable entry at all: everyone is refused (it used to mean "everyone is allowed")
    broken = nodes("node3", LEADER, "--allow", "10.0.0.0/33", "--allow", "300.1.2.3")
    assert broken.request("POST", "/reload")[:3:2] == (403, b"Access is denied")
    assert broken.request("GET", "/primary")[0] == 200  # reads stay open
    out = broken.stop()
    assert 'Invalid value "10.0.0.0/33" in the restapi.allowlist' in out
    assert "restapi.allowlist has no usable entry: every client is refused" in out

    # allowlist_include_members with a member whose api_url names its host
    view = dict(LEADER, cluster={"members": [{"name": "node1", "api_url": "http://localhost:8008/patroni"}]})
    members = nodes("node4", view, "--allow-members")
    lib.wait_until(lambda: members.request("POST", "/reload")[0] == 503, 10,
                   what="the member's host name resolved and allowed")
    view = dict(LEADER, cluster={"members": [{"name": "node1",
                                               "api_url": "http://pgha-no-such-host.invalid:8008/patroni"}]})
    strangers = nodes("node5", view, "--allow-members")
    assert strangers.request("POST", "/reload")[:3:2] == (403, b"Access is denied")
    assert strangers.request("POST", "/reload")[:3:2] == (403, b"Access is denied")


def test_bad_json_bodies_say_what_is_wrong(nodes):  # noqa: F811
    node = nodes("node1", LEADER, "--intents", "echo")
    cases = [
        (b'{"leader": x}', "the body is not valid JSON (at byte 11)"),  # offsets count from 0
        (b'{"leader": "a"} trailing', "the body has data after its JSON value (at byte 16)"),
        (b"[1,2]", "the body is not a JSON object"),
        (b"{}", "the body is an empty JSON object"),
        (b'{"leader": "\xff"}', "the body is not valid UTF-8"),
        (b"", "the body is empty"),
    ]
    for body, why in cases:
        status, _, page = node.request("POST", "/switchover", body, headers={"Content-Length": str(len(body))})
        assert status == 400, body
        # Python's send_error() page, with the reason as its message
        assert f"<p>Message: Bad request: {why}.</p>".encode() in page, page
        assert b"<p>Error code explanation: 400 - Bad request syntax or unsupported method.</p>" in page
    assert node.request("GET", "/primary")[0] == 200
    out = node.stop()
    for _, why in cases:
        assert f"Bad request: POST /switchover: {why}" in out
