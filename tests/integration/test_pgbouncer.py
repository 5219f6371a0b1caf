"""Debian's real pgbouncer with conf/pgbouncer.ini in front of Debian's HAProxy with conf/haproxy.cfg in
front of a real 3-node pghad cluster (docs/pgbouncer.md): writes through pgbouncer reach the leader;
after a kill -9 of the whole leader node they reach the new leader again within ttl + loop_wait +
HAProxy's inter x rise (plus a small margin) of the kill, and no more than server_login_retry later than
HAProxy itself offers the new leader; after POST /switchover they reach the candidate.
Every row written is then read back from the node that must hold it, directly on its own port.

PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2 with the same YAML.
"""
import contextlib
import os
import re
import shutil
import time

import pytest

import pgha_cluster as pc
import pgha_testlib as lib
from test_haproxy_cluster import served_by

INTER, FALL, RISE = 3.0, 3, 2  # conf/haproxy.cfg: default-server inter 3s fall 3 rise 2
MARGIN = 3.0  # scheduling on a loaded 2-core CI machine, and pgbouncer's server_login_retry (1 s)
LOGIN_RETRY = 1.0  # conf/pgbouncer.ini: server_login_retry
PASSWORD = "bouncer-pass"


def pgbouncer_config(workdir, listen_port, target_port):
    """conf/pgbouncer.ini made runnable here: the listen port and the databases' HAProxy port replaced,
    and the paths moved into the test's work directory (no pidfile: pgbouncer runs in the foreground)."""
    with open(os.path.join(lib.SOURCE_DIR, "conf", "pgbouncer.ini")) as f:
        text = f.read()
    replace = {
        r"^\* = host=127\.0\.0\.1 port=5000$": f"* = host=127.0.0.1 port={target_port}",
        r"^listen_port = 6432$": f"listen_port = {listen_port}",
        r"^unix_socket_dir = .*$": f"unix_socket_dir = {workdir}",
        r"^logfile = .*$": f"logfile = {os.path.join(workdir, 'pgbouncer-file.log')}",
        r"^pidfile = .*\n": "",
        r"^auth_file = .*$": f"auth_file = {os.path.join(workdir, 'userlist.txt')}",
    }
    for pattern, value in replace.items():
        text, count = re.subn(pattern, value, text, flags=re.M)
        assert count == 1, f"conf/pgbouncer.ini: {pattern!r} matched {count} times"
    return text


class PgBouncer:
    """Debian's pgbouncer in the foreground as the postgres user (it refuses to run as root)."""

    def __init__(self, workdir, target_port):
        self.binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(self.binary):
            pytest.skip("pgbouncer (Debian package pgbouncer) is not installed")
        self.port = lib.free_port()
        self.config_path = os.path.join(workdir, "pgbouncer.ini")
        with open(os.path.join(workdir, "userlist.txt"), "w") as f:
            f.write(f'"postgres" "{PASSWORD}"\n')
        with open(self.config_path, "w") as f:
            f.write(pgbouncer_config(workdir, self.port, target_port))
        self.process = lib.Process(lib.as_postgres_cmd([self.binary, self.config_path]),
                                   os.path.join(workdir, "pgbouncer.log"))
        try:
            lib.wait_until(lambda: self.process.alive() and self.admin("SHOW VERSION"), 15,
                           what="pgbouncer accepting connections")
        except BaseException:
            self.stop()
            raise

    def connect(self, dbname="postgres", timeout=2):
        return pc.TimedConnection(timeout, host="127.0.0.1", port=self.port, user="postgres",
                                  password=PASSWORD, dbname=dbname, connect_timeout=2)

    def admin(self, sql):
        conn = self.connect(dbname="pgbouncer")
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    def stop(self):
        self.process.stop()


def write(bouncer, row):
    """Inserts row through pgbouncer on a new client connection; returns the port of the PostgreSQL
    that committed it."""
    conn = bouncer.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO via_pgbouncer VALUES (%s, inet_server_port()) RETURNING port", (row,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def write_until_accepted(bouncer, row, timeout, what, haproxy_port=None):
    """Retries the write of row (each failed try is a refused login or a read-only server) until one is
    committed; returns the committing port. With haproxy_port, each try first asks HAProxy directly for
    a writable server, and the return value is (port, when HAProxy first offered one, when pgbouncer
    committed) in time.monotonic(): the difference is what pgbouncer itself adds."""
    seen = {}

    def attempt():
        if haproxy_port and "haproxy" not in seen:
            with contextlib.suppress(Exception):
                if served_by(haproxy_port, timeout=1)[1]:
                    seen["haproxy"] = time.monotonic()
        return write(bouncer, row)

    port = lib.wait_until(attempt, timeout, interval=0.2, what=what)
    if not haproxy_port:
        return port
    return port, seen.get("haproxy", time.monotonic()), time.monotonic()


def rows_on(node):
    return {r[0] for r in node.query("SELECT id FROM via_pgbouncer")}


@pytest.fixture
def stack(workdir, cluster_behind_haproxy):
    """The cluster, HAProxy (conftest.py) and pgbouncer; each stopped by PID even when the test fails."""
    cluster, haproxy = cluster_behind_haproxy
    bouncer = PgBouncer(workdir, haproxy.ports[5000])
    try:
        yield cluster, haproxy, bouncer
    finally:
        bouncer.stop()


def test_pgbouncer_follows_failover_and_switchover(stack):
    cluster, haproxy, bouncer = stack
    leader = cluster.wait_for_leader(30)
    leader.query("CREATE TABLE via_pgbouncer (id int PRIMARY KEY, port int)")
    port = write_until_accepted(bouncer, 1, INTER * RISE + MARGIN, "the first write through pgbouncer")
    assert port == leader.pg_port
    # a client connection opened before the failover (transaction pooling keeps it across the failover)
    kept = bouncer.connect()

    # failover: kill -9 of the leader's pghad and PostgreSQL, as a host crash would
    leader.kill9()
    killed = time.monotonic()
    ttl, loop_wait = pc.SHORT_TIMINGS["ttl"], pc.SHORT_TIMINGS["loop_wait"]
    bound = ttl + loop_wait + INTER * RISE + MARGIN
    port, haproxy_ready, committed = write_until_accepted(bouncer, 2, bound + 10,
                                                          "a write through pgbouncer after the kill",
                                                          haproxy_port=haproxy.ports[5000])
    took, lag = committed - killed, committed - haproxy_ready
    new = cluster.wait_for_leader(10, exclude=(leader.name,))
    print(f"a write through pgbouncer committed {took:.2f} s after the kill -9 of {leader.name},"
          f" {lag:.2f} s after HAProxy offered the new leader")
    assert port == new.pg_port, f"row 2 committed on port {port}, the new leader {new.name} is {new.pg_port}"
    assert took <= bound, f"pgbouncer needed {took:.2f} s after the kill (bound {bound} s)"
    # conf/pgbouncer.ini's server_login_retry (1 s) is all pgbouncer may add to HAProxy's own delay
    assert lag <= LOGIN_RETRY + 1.5, f"pgbouncer lagged HAProxy by {lag:.2f} s"
    assert {1, 2} <= rows_on(new)
    with kept.cursor() as cur:
        cur.execute("INSERT INTO via_pgbouncer VALUES (3, inet_server_port()) RETURNING port")
        assert cur.fetchone()[0] == new.pg_port
    kept.close()

    # switchover to the remaining replica; writes through pgbouncer then continue on it
    candidate = next(n for n in cluster.nodes if n is not leader and n is not new)
    cluster.wait_for_streaming(new, 1, 30)
    status, body = new.api("/switchover", "POST", {"leader": new.name, "candidate": candidate.name},
                           timeout=30)
    assert status == 200, body
    switched = time.monotonic()
    assert cluster.wait_for_leader(30).name == candidate.name
    # Until HAProxy marks the demoted leader down (inter x fall) it may still hand it a connection, and
    # that write is refused (read-only); each row is retried until committed, and must land on candidate.
    for row in (4, 5, 6, 7):
        port = write_until_accepted(bouncer, row, INTER * FALL + MARGIN + 10,
                                       f"write {row} through pgbouncer after the switchover")
        assert port == candidate.pg_port, f"row {row} committed on port {port}, not on {candidate.name}"
    took = time.monotonic() - switched
    print(f"4 writes through pgbouncer committed {took:.2f} s after the switchover")
    assert took <= INTER * FALL + MARGIN, f"pgbouncer needed {took:.2f} s after the switchover"
    assert {1, 2, 3, 4, 5, 6, 7} <= rows_on(candidate)
