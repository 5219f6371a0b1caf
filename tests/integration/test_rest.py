"""The REST API over real HTTP: pgha-test-rest serves a snapshot loaded from a JSON file on the real
sd-event loop; these tests send real requests (urllib, http.client, raw sockets) for every endpoint
and method, malformed and hostile requests, put a real HAProxy (conf/haproxy.cfg) in front of three
instances, and run promtool over /metrics."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import pgha_testlib as lib

LEADER = {
    "scope": "demo", "name": "node1", "state": "running", "role": "master", "in_recovery": False,
    "is_leader": True, "cluster_view": True, "leader_name": "node1", "leader_optime": 50331744,
    "postmaster_start_time": 1795723600.220474, "server_version": 150020, "xlog_location": 50331744,
    "timeline": 1, "dcs_last_seen": 1795723645, "tags": {"dc": "east"},
    "database_system_identifier": "7712574132163962109",
    "replication": [{"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.1",
                     "state": "streaming", "sync_state": "async", "sync_priority": 0}],
    "config": {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}},
    "history": [[1, 25165984, "no recovery target specified", "2026-11-26T20:07:40.123+00:00", "node1"]],
    "cluster": {"members": [{"name": "node1", "role": "leader", "state": "running",
                             "api_url": "http://127.0.0.1:8008/patroni", "host": "127.0.0.1", "port": 5432,
                             "timeline": 1}]},
}


def replica(name, **extra):
    doc = {
        "scope": "demo", "name": name, "state": "running", "role": "replica", "in_recovery": True,
        "cluster_view": True, "leader_name": "node1", "leader_optime": 50331744,
        "postmaster_start_time": 1795723670.821318, "server_version": 150020,
        "received_location": 50331744, "replayed_location": 50331644,
        "replayed_timestamp": 1795723687.048036, "timeline": 1, "dcs_last_seen": 1795723692,
        "tags": {"dc": "west"},
    }
    doc.update(extra)
    return doc


class RestNode:
    """One pgha-test-rest instance with its snapshot file."""

    def __init__(self, workdir, name, snapshot, args=()):
        self.workdir = workdir
        self.name = name
        self.port = lib.free_port()
        self.snapshot_path = os.path.join(workdir, f"{name}.json")
        self.write(snapshot)
        argv = [lib.binary("pgha-test-rest"), "--snapshot", self.snapshot_path, "--port", str(self.port),
                *args]
        self.process = lib.Process(argv, os.path.join(workdir, f"{name}.log"))
        lib.wait_until(self.listening, 10, what=f"{name} REST API on port {self.port}")

    def write(self, snapshot):
        tmp = self.snapshot_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(snapshot, f)
        os.replace(tmp, self.snapshot_path)

    def reload(self, snapshot):
        self.write(snapshot)
        self.process.send_signal(signal.SIGHUP)

    def listening(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """(status, headers dict, body bytes) of one request over http.client."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def raw(self, data, timeout=5.0):
        """Sends raw bytes, returns everything the server sends back until it closes."""
        chunks = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            try:
                s.sendall(data)
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server may refuse and close before reading everything we sent
        return b"".join(chunks)

    def stop(self):
        if self.process.alive():
            code = self.process.stop()
            out = self.process.output()
            # a clean exit, and nothing from the sanitizers when the tool was built with them
            assert code == 0, out[-2000:]
            assert "AddressSanitizer" not in out and "runtime error" not in out, out[-4000:]
            self.output = out
        return self.output


@pytest.fixture
def nodes(workdir):
    started = []

    def start(name, snapshot, *args):
        node = RestNode(workdir, name, snapshot, args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


HEALTH_PATHS = ["/", "/primary", "/master", "/leader", "/read-write", "/standby-leader", "/standby_leader",
                "/replica", "/read-only", "/health", "/sync", "/synchronous", "/async", "/asynchronous",
                "/read-only-sync", "/read-only-synchronous", "/foo"]
EXPECT_LEADER = {"/": 200, "/primary": 200, "/master": 200, "/leader": 200, "/read-write": 200,
                 "/standby-leader": 503, "/standby_leader": 503, "/replica": 503, "/read-only": 200,
                 "/health": 200, "/sync": 503, "/synchronous": 503, "/async": 503, "/asynchronous": 503,
                 "/read-only-sync": 200, "/read-only-synchronous": 200, "/foo": 503}
EXPECT_REPLICA = {"/": 503, "/primary": 503, "/master": 503, "/leader": 503, "/read-write": 503,
                  "/standby-leader": 503, "/standby_leader": 503, "/replica": 200, "/read-only": 200,
                  "/health": 200, "/sync": 503, "/synchronous": 503, "/async": 200, "/asynchronous": 200,
                  "/read-only-sync": 503, "/read-only-synchronous": 503, "/foo": 503}


def test_health_checks_every_method(nodes):
    leader = nodes("node1", LEADER)
    rep = nodes("node2", replica("node2"))
    for node, expected in ((leader, EXPECT_LEADER), (rep, EXPECT_REPLICA)):
        for path in HEALTH_PATHS:
            status, headers, body = node.request("GET", path)
            assert status == expected[path], (node.name, "GET", path, status)
            assert headers["Content-Type"] == "application/json"
            doc = json.loads(body)
            assert doc["patroni"] == {"version": "3.0.2", "scope": "demo", "name": node.name}
            for method in ("HEAD", "OPTIONS"):
                status, headers, body = node.request(method, path)
                assert status == expected[path], (node.name, method, path, status)
                assert body == b""
                assert "Content-Type" not in headers
    # query parameters: lag against the leader's optime (the replica is 100 bytes behind), tags
    assert rep.request("GET", "/replica?lag=50")[0] == 503
    assert rep.request("GET", "/replica?lag=1kB")[0] == 200
    assert rep.request("OPTIONS", "/replica?lag=100")[0] == 200
    assert rep.request("GET", "/replica?tag_dc=west")[0] == 200
    assert rep.request("GET", "/replica?tag_dc=east")[0] == 503
    assert rep.request("HEAD", "/read-only?tag_nope=1")[0] == 503
    assert leader.request("GET", "/primary?tag_dc=west")[0] == 200  # tags are ignored for leader checks
    # the raw status-only reply HAProxy reads
    reply = leader.raw(b"OPTIONS /primary HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.") and b" 200 OK\r\n" in reply.split(b"\r\n\r\n")[0] + b"\r\n"
    assert reply.endswith(b"\r\n\r\n")


def test_status_document_and_read_endpoints(nodes):
    leader = nodes("node1", LEADER)
    rep = nodes("node2", replica("node2", synchronous_mode=True, sync_member=True, paused=True))

    status, headers, body = leader.request("GET", "/patroni")
    assert status == 200 and headers["Content-Type"] == "application/json"
    text = body.decode()
    assert text.startswith('{"state": "running", "postmaster_start_time": "2026-11-26 20:06:40.220474+00:00", '
                           '"role": "master", "server_version": 150020, "xlog": {"location": 50331744}, '
                           '"timeline": 1, "replication": [{"usename": "replicator"')
    doc = json.loads(text)
    assert doc["database_system_identifier"] == "7712574132163962109"
    assert "cluster_unlocked" not in doc

    doc = json.loads(rep.request("GET", "/patroni")[2])
    assert doc["role"] == "replica" and doc["sync_standby"] is True and doc["pause"] is True
    assert doc["xlog"] == {"received_location": 50331744, "replayed_location": 50331644,
                           "replayed_timestamp": "2026-11-26 20:08:07.048036+00:00", "paused": False}
    assert rep.request("GET", "/sync")[0] == 200
    assert rep.request("GET", "/async")[0] == 503

    assert json.loads(leader.request("GET", "/cluster")[2]) == LEADER["cluster"]
    assert json.loads(rep.request("GET", "/cluster")[2]) == {"members": []}
    assert json.loads(leader.request("GET", "/history")[2]) == LEADER["history"]
    assert json.loads(rep.request("GET", "/history")[2]) == []
    assert json.loads(leader.request("GET", "/config")[2]) == LEADER["config"]
    status, headers, body = rep.request("GET", "/config")
    assert status == 502 and b"<title>Error response</title>" in body
    assert rep.request("GET", "/failsafe")[0] == 502

    for node in (leader, rep):
        for path in ("/liveness", "/readiness"):
            status, headers, body = node.request("GET", path)
            assert status == 200 and body == b"" and "Content-Type" not in headers, (node.name, path)
        # OPTIONS /liveness goes to the generic handler, as in Patroni
        assert node.request("OPTIONS", "/liveness")[0] == 503
        assert node.request("HEAD", "/patroni")[0] == 503

    status, headers, body = leader.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"] == "text/plain"
    assert 'patroni_postgres_server_version {scope="demo"} 150020\n' in body.decode()
    assert 'patroni_master{scope="demo"} 1\n' in body.decode()
    assert 'patroni_replica{scope="demo"} 1\n' in rep.request("GET", "/metrics")[2].decode()


def text_of(node, method, path, body=None, headers=None):
    status, hdrs, data = node.request(method, path, body, headers)
    return status, data.decode()


def test_write_endpoints_without_engine(nodes):
    """No HA engine registered: validation answers exactly as Patroni; what needs the engine gets
    Patroni's "cannot act" answers."""
    leader = nodes("node1", LEADER)
    rep = nodes("node2", replica("node2", scheduled_restart={"schedule": "2030-01-01T00:00:00+00:00"},
                                 failsafe_mode=True))
    future = "2099-01-01T10:00:00+00:00"

    assert text_of(leader, "POST", "/switchover", {"leader": "node1"}) == \
        (503, "failed to write switchover key into DCS")
    assert text_of(leader, "POST", "/failover", {"candidate": "node2"}) == \
        (503, "failed to write failover key into DCS")
    assert text_of(leader, "POST", "/failover", {"leader": "node1"}) == \
        (400, "Failover could be performed only to a specific candidate")
    assert text_of(leader, "POST", "/switchover", {"candidate": "node2"}) == \
        (400, "Switchover could be performed only from a specific leader")
    assert text_of(leader, "POST", "/failover", {"member": "node2", "scheduled_at": future}) == \
        (400, "Scheduled failover is possible only from a specific leader")
    assert text_of(leader, "POST", "/switchover", {"leader": "node1", "scheduled_at": "2026-11-27T10:00:00"}) == \
        (400, "Timezone information is mandatory for the scheduled switchover")
    assert text_of(leader, "POST", "/switchover", {"leader": "node1", "scheduled_at": "2000-01-01T00:00Z"}) == \
        (422, "Cannot schedule switchover in the past")
    assert text_of(leader, "POST", "/switchover", {"leader": "node1", "scheduled_at": "soon"}) == \
        (422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601")
    paused = nodes("node3", replica("node3", paused=True))
    assert text_of(paused, "POST", "/switchover", {"leader": "node1"}) == \
        (400, "Switchover is possible only to a specific candidate in a paused state")
    assert text_of(paused, "POST", "/switchover", {"leader": "node1", "scheduled_at": future}) == \
        (400, "Can't schedule switchover in the paused state")
    assert text_of(paused, "POST", "/restart", {"schedule": future}) == \
        (500, "Can't schedule restart in the paused state")

    assert text_of(leader, "POST", "/restart", {"role": "leader"}) == \
        (400, "PostgreSQL role should be either primary or replica")
    assert text_of(leader, "POST", "/restart", {"postgres_version": "10"}) == \
        (400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10")
    assert text_of(leader, "POST", "/restart", {"postgres_version": "a.b"}) == \
        (400, "Invalid PostgreSQL version: a.b")
    assert text_of(leader, "POST", "/restart", {"timeout": "0"}) == \
        (400, "Timeout should be a positive number of seconds")
    assert text_of(leader, "POST", "/restart", {"timeout": True}) == \
        (400, "Timeout should be a positive number of seconds")
    assert text_of(leader, "POST", "/restart", {"role": "replica", "when": 1}) == \
        (400, "Unknown filter for the scheduled restart: when")
    assert text_of(leader, "POST", "/restart", {"schedule": "2026-11-27 10:00"}) == \
        (400, "Timezone information is mandatory for the scheduled restart")
    assert text_of(leader, "POST", "/restart") == (503, "restart failed")
    assert text_of(leader, "POST", "/restart", {}) == (503, "restart failed")

    assert text_of(leader, "DELETE", "/restart") == (404, "no restarts are scheduled")
    assert rep.request("DELETE", "/restart")[0] == 503
    assert text_of(leader, "DELETE", "/switchover") == (404, "no switchover is scheduled")
    assert leader.request("POST", "/reload")[0] == 503
    assert text_of(leader, "POST", "/reinitialize") == (503, "I am the leader, can not reinitialize")
    unlocked = nodes("node4", replica("node4", leader_name=None))
    assert text_of(unlocked, "POST", "/reinitialize", {"force": True}) == \
        (503, "Cluster has no leader, can not reinitialize")
    assert leader.request("PATCH", "/config", {"ttl": 20})[0] == 503
    assert rep.request("PATCH", "/config", {"ttl": 20})[0] == 503  # no config key
    assert leader.request("PUT", "/config", {"ttl": 20})[0] == 502
    assert leader.request("POST", "/failsafe", {"node1": "http://x"})[0] == 502  # failsafe mode off
    assert rep.request("POST", "/failsafe", {"node1": "http://x"})[0] == 503
    assert text_of(leader, "POST", "/sigterm") == (202, "shutdown scheduled")
    assert text_of(leader, "POST", "/citus", {"type": "after_promote"}) == (200, "OK")

    # methods and paths without a handler
    for method, path in (("PUT", "/foo"), ("POST", "/"), ("POST", "/primary"), ("DELETE", "/config"),
                         ("PATCH", "/patroni"), ("BREW", "/coffee")):
        status, body = text_of(leader, method, path)
        assert status == 501, (method, path)
        assert f"Message: Unsupported method (&#x27;{method}&#x27;)." in body or \
            f"Message: Unsupported method ('{method}')." in body


def test_write_endpoints_with_engine(nodes):
    """A stand-in engine (--intents) receives validated intents; 'delay' answers 200 ms later while the
    connection is suspended and other requests keep being served."""
    leader = nodes("node1", LEADER, "--intents", "echo")
    status, body = text_of(leader, "POST", "/restart",
                           {"role": "primary", "postgres_version": "15.2", "timeout": "1min",
                            "restart_pending": False})
    assert status == 200
    assert json.loads(body) == {"intent": "restart", "role": "primary", "postgres_version": 150002,
                                "timeout": 60, "restart_pending": True}
    status, body = text_of(leader, "POST", "/switchover",
                           {"leader": "node1", "member": "node2", "scheduled_at": "2099-01-01T10:00:00+01:00"})
    assert json.loads(body) == {"intent": "switchover", "leader": "node1", "candidate": "node2",
                                "scheduled_at": 4070941200}
    status, body = text_of(leader, "PATCH", "/config", {"ttl": 20, "loop_wait": None,
                                                        "postgresql": {"parameters": {"work_mem": "8MB"}}})
    # the engine merges the patch onto a fresh read of the config key (ha.c; test_etcd_ttl runs it)
    assert json.loads(body) == {"intent": "config-patch", "body": {
        "ttl": 20, "loop_wait": None, "postgresql": {"parameters": {"work_mem": "8MB"}}}}
    assert json.loads(text_of(leader, "POST", "/reload")[1]) == {"intent": "reload"}

    slow = nodes("node2", replica("node2"), "--intents", "delay", "--lateness")
    results = {}

    def post():
        start = time.monotonic()
        results["reply"] = text_of(slow, "POST", "/reinitialize", {"force": "on"})
        results["took"] = time.monotonic() - start

    t = threading.Thread(target=post)
    t.start()
    time.sleep(0.05)
    # while the reinitialize waits for the "engine", health checks are answered at once
    start = time.monotonic()
    for _ in range(20):
        assert slow.request("OPTIONS", "/replica")[0] == 200
    assert time.monotonic() - start < 1.0
    t.join(5)
    assert results["reply"] == (200, json.dumps({"intent": "reinitialize", "force": True}))
    assert results["took"] >= 0.19

    # a call the engine answers only after longer than the connection timeout is still delivered
    # (Patroni's switchover waits up to 2 × max(10, loop_wait) s)
    patient = nodes("node3", LEADER, "--intents", "delay", "--delay", "2.5", "--timeout", "1")
    start = time.monotonic()
    status, body = text_of(patient, "POST", "/switchover", {"leader": "node1", "candidate": "node2"})
    assert status == 200 and json.loads(body)["intent"] == "switchover"
    assert time.monotonic() - start >= 2.4


def test_malformed_requests(nodes):
    node = nodes("node1", LEADER, "--intents", "echo", "--body-max", "4096")

    def check(method, path, body, headers=None):
        status, hdrs, data = node.request(method, path, body, headers)
        return status, data

    # bad JSON, not an object, empty object where a body is required, bad UTF-8
    for body in (b"{", b"[1,2]", b"{}", b'"x"', b"null", b'{"leader": "a"} trailing', b'{"leader": "\xff"}'):
        status, data = check("POST", "/switchover", body)
        assert status == 400, body
        assert b"<p>Error code: 400</p>" in data
    # wrong types
    assert check("POST", "/restart", {"role": 5})[0] == 400
    assert check("POST", "/switchover", {"leader": 5})[0] == 400
    assert check("POST", "/restart", {"schedule": 12345})[0] == 422
    # oversized body
    status, data = check("POST", "/switchover", {"leader": "x" * 10000})
    assert status == 413
    # no Content-Length where a body is required: 411; optional bodies are simply absent
    reply = node.raw(b"POST /switchover HTTP/1.0\r\n\r\n")
    assert reply.split(b"\r\n")[0].endswith(b"411 Length Required"), reply[:100]
    reply = node.raw(b"POST /restart HTTP/1.0\r\n\r\n")
    assert b" 200 OK" in reply.split(b"\r\n")[0]
    # garbage
    reply = node.raw(b"THIS IS NOT HTTP\r\n\r\n")
    assert reply.split(b"\r\n")[0].split()[1].startswith(b"4") or reply == b""
    reply = node.raw(b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply == b"" or reply.split(b"\r\n")[0].split()[1].startswith(b"4"), reply[:100]
    reply = node.raw(b"GET /primary HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n")
    assert reply == b"" or reply.split(b"\r\n")[0].split()[1].startswith(b"4"), reply[:100]
    # unknown path on GET: the generic handler, 503 with the status document
    status, hdrs, data = node.request("GET", "/no/such/thing")
    assert status == 503 and json.loads(data)["role"] == "master"
    # and the server still serves
    assert node.request("GET", "/primary")[0] == 200


def test_slowloris_and_loop_lateness(nodes):
    node = nodes("node1", LEADER, "--timeout", "1", "--lateness")
    slow = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    slow.sendall(b"GET /primary HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    start = time.monotonic()
    # other clients are served meanwhile, fast
    for _ in range(50):
        assert node.request("OPTIONS", "/primary", timeout=2)[0] == 200
    assert time.monotonic() - start < 2.0
    # the slow connection is cut after the timeout
    try:
        data = slow.recv(1024)
    except ConnectionResetError:
        data = b""
    waited = time.monotonic() - start
    assert data == b"" or data.split(b" ")[1].startswith(b"4")
    assert 0.5 <= waited < 5.0, waited
    slow.close()

    # a client trickling its headers a byte at a time (which resets an idle timeout) is cut off too
    trickle = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    trickle.sendall(b"GET /primary HTTP/1.1\r\n")
    start = time.monotonic()
    with pytest.raises(OSError):
        for _ in range(100):
            trickle.sendall(b"X")
            assert node.request("OPTIONS", "/primary", timeout=2)[0] == 200
            time.sleep(0.1)
    assert time.monotonic() - start < 5.0
    trickle.close()

    # a burst of concurrent health checks does not delay the loop's timers much
    def hammer():
        for _ in range(200):
            node.request("OPTIONS", "/primary", timeout=5)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    out = node.stop()
    stats = json.loads([line for line in out.splitlines() if line.startswith('{"ticks"')][-1])
    assert stats["ticks"] > 10
    # generous: the machine is shared, so scheduler delays count too; a blocking call would show as
    # lateness of its full duration
    assert stats["max_lateness_usec"] < 250000, stats


def test_keep_alive_for_http11_clients_only(nodes):
    """An HTTP/1.1 client keeps its connection for the next request; HTTP/1.0 requests (HAProxy's checks)
    and status-only replies close it, as Patroni's server does."""
    node = nodes("node1", LEADER)
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    try:
        ports = set()
        for path in ("/leader", "/patroni", "/metrics"):
            conn.request("GET", path)
            reply = conn.getresponse()
            assert (reply.status, reply.version) == (200, 11), path
            reply.read()
            assert not reply.will_close, path
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1, "each request needed a new connection"
        conn.request("GET", "/liveness")  # status-only: Patroni's exact bytes, then close
        reply = conn.getresponse()
        assert (reply.status, reply.version, reply.will_close) == (200, 10, True)
    finally:
        conn.close()
    reply = node.raw(b"GET /leader HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n"), reply[:40]
    assert b"\r\nConnection: Keep-Alive" not in reply
    reply = node.raw(b"GET /leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"200 OK" in reply.split(b"\r\n")[0]


def test_connection_limit_closes_the_oldest_idle_connection(nodes):
    """Idle clients holding every connection slot do not lock others out: a new client makes the oldest
    idle connection close (issue 19), and idle connections are cut off after the idle timeout."""
    node = nodes("node1", LEADER, "--timeout", "2", "--connection-limit", "8")
    idle = [socket.create_connection(("127.0.0.1", node.port), timeout=5) for _ in range(8)]
    for s in idle:
        s.settimeout(3.0)
    assert node.request("OPTIONS", "/primary", timeout=1.0)[0] == 200
    assert idle[0].recv(1) == b""  # the oldest made room
    start = time.monotonic()
    for s in idle[1:]:
        assert s.recv(1) == b""  # the others are cut off by the idle timeout (the request timeout, 2 s)
    assert time.monotonic() - start < 2.5
    for s in idle:
        s.close()


def test_per_ip_connection_limit_closes_that_clients_oldest_idle_connection(nodes):
    """At per_ip_connection_limit a client's new connection makes its own oldest idle connection close;
    a connection whose reply is on its way is never chosen."""
    node = nodes("node1", LEADER, "--per-ip-limit", "4", "--connection-limit", "64", "--intents", "delay",
                 "--delay", "1.5", "--debug")
    busy = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    busy.sendall(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")  # held 1.5 s
    # until the server has read it, a request counts as idle like any connection that sent nothing yet
    lib.wait_until(lambda: "reload intent handed to the HA loop" in node.process.output(), 5,
                   what="the engine holding the reload")
    idle = [socket.create_connection(("127.0.0.1", node.port), timeout=5) for _ in range(3)]
    for s in idle:
        s.settimeout(3.0)
    assert node.request("OPTIONS", "/primary", timeout=1.0)[0] == 200
    assert idle[0].recv(1) == b""  # the oldest idle one made room, not the older busy one
    busy.settimeout(5.0)
    assert busy.recv(64).startswith(b"HTTP/1.1 200")
    for s in idle + [busy]:
        s.close()


def test_authentication_and_allowlist(nodes):
    node = nodes("node1", LEADER, "--auth", "admin:s3cret", "--intents", "echo")
    import base64
    good = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}

    status, headers, body = node.request("POST", "/reload")
    assert (status, body) == (401, b"no auth header received")
    assert headers["WWW-Authenticate"] == 'Basic realm="Patroni"'
    assert node.request("POST", "/reload", headers=bad)[:3:2] == (401, b"not authenticated")
    assert node.request("POST", "/reload", headers={"Authorization": "Bearer x"})[:3:2] == \
        (401, b"not authenticated")
    assert node.request("POST", "/reload", headers=good)[0] == 200
    # credentials are checked before the body is read
    assert node.request("POST", "/switchover", b"{", headers=bad)[0] == 401
    assert node.request("POST", "/switchover", b"{", headers=good)[0] == 400
    for method, path in (("PATCH", "/config"), ("PUT", "/config"), ("POST", "/restart"),
                         ("DELETE", "/restart"), ("DELETE", "/switchover"), ("POST", "/reinitialize"),
                         ("POST", "/failover"), ("POST", "/switchover"), ("POST", "/failsafe"),
                         ("POST", "/citus"), ("POST", "/sigterm")):
        assert node.request(method, path, {"a": 1})[0] == 401, (method, path)
    # reads stay open
    for path in ("/patroni", "/primary", "/cluster", "/metrics", "/config", "/history", "/liveness"):
        assert node.request("GET", path)[0] in (200, 503), path
        assert node.request("GET", path)[0] != 401

    denied = nodes("node2", LEADER, "--allow", "10.0.0.0/8", "--allow", "192.0.2.1", "--auth", "admin:s3cret")
    assert denied.request("POST", "/reload", headers=good)[:3:2] == (403, b"Access is denied")
    assert denied.request("GET", "/primary")[0] == 200
    allowed = nodes("node3", LEADER, "--allow", "127.0.0.0/8", "--auth", "admin:s3cret")
    assert allowed.request("POST", "/reload")[0] == 401
    assert allowed.request("POST", "/reload", headers=good)[0] == 503  # no engine

    # allowlist_include_members: the hosts of the members' api_url (node1 is 127.0.0.1 in LEADER's view)
    members = nodes("node4", LEADER, "--allow", "10.0.0.0/8", "--allow-members")
    assert members.request("POST", "/reload")[0] == 503
    elsewhere = dict(LEADER, cluster={"members": [{"name": "node1", "api_url": "http://192.0.2.7:8008/patroni"}]})
    strangers = nodes("node5", elsewhere, "--allow-members")
    assert strangers.request("POST", "/reload")[:3:2] == (403, b"Access is denied")


def test_leader_checks_need_postgres(nodes):
    crashed = dict(LEADER, state="starting", status_ok=False)
    patroni_like = nodes("node1", crashed)
    strict = nodes("node2", crashed, "--leader-needs-postgres")
    assert patroni_like.request("OPTIONS", "/primary")[0] == 200
    assert strict.request("OPTIONS", "/primary")[0] == 503
    assert strict.request("OPTIONS", "/leader")[0] == 503
    strict.reload(LEADER)
    lib.wait_until(lambda: strict.request("OPTIONS", "/primary")[0] == 200, 5, what="/primary back to 200")


def test_extra_headers(nodes):
    node = nodes("node1", LEADER, "--header", "X-Frame-Options:SAMEORIGIN")
    assert node.request("GET", "/patroni")[1]["X-Frame-Options"] == "SAMEORIGIN"
    assert "X-Frame-Options" not in node.request("OPTIONS", "/primary")[1]


def test_promtool_accepts_metrics(nodes):
    if not shutil.which("promtool"):
        pytest.skip("promtool (Debian package prometheus) is not installed")
    for snap in (LEADER, replica("node2"), replica("node3", status_ok=False, state="stopped")):
        node = nodes(snap["name"], snap)
        findings = lib.promtool_check_metrics(node.request("GET", "/metrics")[2])
        assert len(findings) == 4, findings  # xlog_location, received, replayed, timeline


# ==== HAProxy in front of three nodes ====

def via_haproxy(port):
    """Name of the node that answers GET /patroni through HAProxy's port, or None."""
    try:
        status, body = lib.http_get(f"http://127.0.0.1:{port}/patroni", timeout=2)
    except OSError:
        return None
    if status != 200:
        return None
    return json.loads(body)["patroni"]["name"]


def seen_through(port, n=9):
    names = set()
    for _ in range(n):
        name = via_haproxy(port)
        if name:
            names.add(name)
    return names


def test_haproxy_routes_by_role(nodes, workdir):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    n1 = nodes("node1", LEADER)
    n2 = nodes("node2", replica("node2"))
    n3 = nodes("node3", replica("node3"))
    ports = {p: lib.free_port() for p in (5000, 5001, 5002, 7000)}
    cfg = os.path.join(workdir, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(lib.haproxy_config(ports, [(n.name, n.port, n.port) for n in (n1, n2, n3)]))
    subprocess.run([haproxy, "-c", "-f", cfg], check=True, capture_output=True)
    proc = lib.Process([haproxy, "-db", "-f", cfg], os.path.join(workdir, "haproxy.log"))
    try:
        lib.wait_until(lambda: seen_through(ports[5000]) == {"node1"}, 30, what="5000 routes to the leader")
        lib.wait_until(lambda: seen_through(ports[5001]) == {"node2", "node3"}, 30,
                       what="5001 routes to both replicas")
        lib.wait_until(lambda: seen_through(ports[5002]) == {"node1", "node2", "node3"}, 30,
                       what="5002 routes to every node")
        for _ in range(5):
            assert seen_through(ports[5000], 3) == {"node1"}
            assert "node1" not in seen_through(ports[5001], 3)

        # switchover: node2 becomes the leader, node1 a replica
        new_leader = dict(LEADER, name="node2", leader_name="node2")
        n1.reload(replica("node1", leader_name="node2"))
        n2.reload(new_leader)
        n3.reload(replica("node3", leader_name="node2"))
        start = time.monotonic()
        # inter 3s × fall 3 for the old leader to go down, rise 2 for the new one to come up
        lib.wait_until(lambda: seen_through(ports[5000]) == {"node2"}, 3 * 3 + 3 * 2 + 3,
                       what="5000 follows the new leader")
        lib.wait_until(lambda: seen_through(ports[5001]) == {"node1", "node3"}, 3 * 3 + 3 * 2 + 3,
                       what="5001 follows the new replicas")
        assert time.monotonic() - start <= 3 * 3 + 3 * 2 + 3
    finally:
        proc.stop()


# ==== TLS ====

def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=pgha test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return {n: os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def https(node, method, path, certs, client_cert=False, body=None):
    import ssl
    ctx = ssl.create_default_context(cafile=certs["ca.crt"])
    if client_cert:
        ctx.load_cert_chain(certs["client.crt"], certs["client.key"])
    conn = http.client.HTTPSConnection("127.0.0.1", node.port, context=ctx, timeout=5)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body).encode())
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_tls(nodes, workdir):
    certs = make_certs(workdir)
    tls = ["--certfile", certs["server.crt"], "--keyfile", certs["server.key"]]
    node = nodes("node1", LEADER, *tls)
    status, body = https(node, "GET", "/patroni", certs)
    assert status == 200 and json.loads(body)["role"] == "master"
    assert https(node, "OPTIONS", "/replica", certs)[0] == 503
    with pytest.raises((OSError, http.client.HTTPException)):
        node.request("GET", "/patroni", timeout=2)  # plain HTTP on the TLS port gets no answer

    optional = nodes("node2", LEADER, *tls, "--cafile", certs["ca.crt"], "--verify-client", "optional",
                     "--intents", "echo")
    assert https(optional, "GET", "/primary", certs)[0] == 200
    assert https(optional, "POST", "/reload", certs) == (403, b"client certificate required")
    assert https(optional, "POST", "/reload", certs, client_cert=True)[0] == 200

    required = nodes("node3", LEADER, *tls, "--cafile", certs["ca.crt"], "--verify-client", "required")
    assert https(required, "GET", "/primary", certs) == (403, b"client certificate required")
    assert https(required, "GET", "/primary", certs, client_cert=True)[0] == 200


# ==== Differential test against Patroni's own health-check code ====

DIFF_SNAPSHOTS = [
    LEADER,
    dict(LEADER, leader_expires_in=-1, is_leader=None),
    dict(LEADER, paused=True, cluster_view=False, is_leader=False),
    replica("node2"),
    replica("node2", synchronous_mode=True, sync_member=True),
    replica("node2", tags={"noloadbalance": True, "dc": "west"}),
    replica("node2", tags={"noloadbalance": "", "dc": "west", "weight": 2, "flag": False, "ratio": 0.5}),
    replica("node2", state="stopped", status_ok=False),
    replica("node2", status_ok=False),
    replica("node2", cluster_view=False, synchronous_mode=True, sync_member=True),
    replica("node2", cluster_view=False, paused=True),
    replica("node2", leader_name=None, leader_optime=0),
    {"scope": "demo", "name": "sb1", "state": "running", "role": "standby_leader", "in_recovery": True,
     "standby_cluster": True, "is_leader": True, "cluster_view": True, "leader_name": "sb1"},
    {"scope": "demo", "name": "sb2", "state": "running", "role": "replica", "in_recovery": True,
     "standby_cluster": True, "cluster_view": True, "leader_name": "sb1"},
    {"scope": "demo", "name": "sb1", "state": "running", "role": "standby_leader", "in_recovery": True,
     "standby_cluster": True, "paused": True, "cluster_view": False},
]
DIFF_PATHS = HEALTH_PATHS + ["/replicas", "/foo/primary", "/read-only/x", "/healthz", "/liveness",
                             "/patroni", "/sync/", "/master-x"]
DIFF_QUERIES = ["", "lag=50", "lag=100", "lag=1kB", "lag=abc", "lag=-1", "tag_dc=west", "tag_dc=east",
                "tag_weight=2", "tag_flag=false", "tag_ratio=0.5", "tag_missing=1", "tag_dc=west&lag=10"]


def patroni_code(doc, snap, path, query):
    """The status code Patroni 3.0.2's RestApiHandler.do_GET gives for this node state: its own code,
    fed with our status document and the HA facts of the snapshot description."""
    import types
    from urllib.parse import parse_qs
    from patroni.api import RestApiHandler

    has_cluster = snap.get("cluster_view", False) is True
    config_tags = snap.get("tags") or {}
    tags = {k: v for k, v in config_tags.items()
            if k not in ("clonefrom", "nofailover", "noloadbalance", "nosync") or v}
    patroni = types.SimpleNamespace(
        dcs=types.SimpleNamespace(cluster=types.SimpleNamespace(last_lsn=snap.get("leader_optime", 0))
                                  if has_cluster else None),
        ha=types.SimpleNamespace(is_paused=lambda: snap.get("paused", False),
                                 is_leader=lambda: snap.get("is_leader") is True,
                                 is_standby_cluster=lambda: snap.get("standby_cluster", False)),
        noloadbalance=bool(tags.get("noloadbalance", False)),
        tags=tags)
    out = {}
    handler = types.SimpleNamespace(
        path=path, path_query=parse_qs(query), server=types.SimpleNamespace(patroni=patroni),
        get_postgresql_status=lambda retry=False: json.loads(json.dumps(doc)),
        _write_status_code_only=lambda code: out.update(code=code),
        _write_status_response=lambda code, response: out.update(code=code))
    RestApiHandler.do_GET(handler, write_status_code_only=True)
    return out["code"]


def test_health_codes_match_patroni(nodes):
    mismatches = []
    for i, snap in enumerate(DIFF_SNAPSHOTS):
        snap = {k: v for k, v in snap.items() if v is not None}
        node = nodes(f"diff{i}", snap)
        doc = json.loads(node.request("GET", "/patroni")[2])
        for path in DIFF_PATHS:
            for query in DIFF_QUERIES:
                url = path + ("?" + query if query else "")
                ours = node.request("OPTIONS", url)[0]
                theirs = patroni_code(doc, snap, path, query)
                if ours != theirs:
                    mismatches.append((i, url, ours, theirs))
        node.stop()
    assert not mismatches, mismatches[:20]
