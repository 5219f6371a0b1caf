"""Issue 19 against a real pghad leader (etcd, PostgreSQL) behind HAProxy (conf/haproxy.cfg): 2,000 idle
connections, a slowloris of 500 sockets and a connect-and-close flood, one after the other, with
GET /leader every 50 ms; HAProxy's /primary checks never fail and writes through it never stop. The
attack helpers and the checks are test_rest_load.py's."""
import csv
import io
import threading
import time

import pgha_cluster as pc
import pgha_testlib as lib
import test_rest_load as load

WRITE_INTERVAL = 0.2  # seconds between two writes through HAProxy


def setup_module():
    load.setup_module()  # the descriptor limit pghad and the attackers inherit


class Writer(threading.Thread):
    """Commits one row every WRITE_INTERVAL through HAProxy's primary port, on a new connection each time
    (as a client that HAProxy routes afresh), and counts what failed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.done = threading.Event()
        self.ok = 0
        self.failures = []
        self.slowest = 0.0

    def write(self):
        conn = pc.TimedConnection(2.0, host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                  connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO abuse_writes VALUES (now())")
        finally:
            conn.close()

    def run(self):
        while not self.done.wait(WRITE_INTERVAL):
            try:
                started = time.monotonic()
                self.write()
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(e))

    def stop(self):
        self.done.set()
        self.join(10)


def primary_check_state(haproxy, server="node1"):
    """(status, failed checks so far) of server in HAProxy's postgresql-primary, from its CSV stats."""
    status, body = lib.http_get(f"http://127.0.0.1:{haproxy.ports[7000]}/;csv")
    assert status == 200
    for row in csv.DictReader(io.StringIO(body.decode().lstrip("# "))):
        if row["pxname"] == "postgresql-primary" and row["svname"] == server:
            return row["status"], int(row["chkfail"] or 0)
    raise AssertionError(f"{server} is not in HAProxy's postgresql-primary")


def test_pghad_leader_behind_haproxy_answers_under_abuse(cluster_factory, workdir):
    c = cluster_factory(n=1).start()
    leader = c.wait_for_leader(60)
    leader.query("CREATE TABLE abuse_writes (at timestamptz)")
    # conf/haproxy.cfg names three servers: the other two point at ports nobody listens on
    haproxy = lib.HAProxy(workdir, [("node1", leader.pg_port, leader.api_port),
                                    ("node2", lib.free_port(), lib.free_port()),
                                    ("node3", lib.free_port(), lib.free_port())])
    try:
        # HAProxy starts every server UP: until node2's and node3's checks have failed `fall` times it
        # also sends clients to their empty ports (a refused connect, retried, then closed), which would
        # count against pghad here. Writes start once HAProxy routes to node1 alone.
        lib.wait_until(lambda: primary_check_state(haproxy)[0].startswith("UP") and
                       all(primary_check_state(haproxy, n)[0].startswith("DOWN") for n in ("node2", "node3")),
                       30, what="HAProxy's primary check of node1 up, node2 and node3 down")
        writer = Writer(haproxy.ports[5000])
        writer.start()
        try:
            for mode, count in load.ATTACKS:
                load.check_health_under(leader.api_port, leader.process.pid, mode, count)
                assert c.leader_key() == leader.name, f"the leader key was lost during the {mode}"
        finally:
            writer.stop()
        status, failed_checks = primary_check_state(haproxy)
        assert status.startswith("UP") and failed_checks == 0, (status, failed_checks)
        assert not writer.failures, f"{len(writer.failures)} writes through HAProxy failed: {writer.failures[:3]}"
        assert writer.ok > 0
        print(f"{writer.ok} writes through HAProxy, the slowest took {writer.slowest:.2f} s")
    finally:
        haproxy.stop()
