"""HAProxy (Debian's package, conf/haproxy.cfg) in front of a real 3-node cluster: clients reach the
leader through port 5000 and only replicas through 5001, and after the leader is killed port 5000
reaches the new leader within inter x fall of its promotion (conf/haproxy.cfg: inter 3s, fall 3).

PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2 with the same YAML.
"""
import time

import pytest

import pgha_cluster as pc
import pgha_testlib as lib

INTER, FALL = 3.0, 3


def served_by(port, sql="SELECT inet_server_port(), NOT pg_is_in_recovery()", timeout=2):
    """(PostgreSQL port, writable) of the server HAProxy's `port` hands a new connection to."""
    conn = pc.TimedConnection(timeout, host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                              connect_timeout=2)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() if cur.description else None
    finally:
        conn.close()


def ports_through(port, tries=8):
    seen = set()
    for _ in range(tries):
        try:
            seen.add(served_by(port)[0])
        except Exception:  # noqa: BLE001 - a refused connection counts as "nobody"
            pass
    return seen


def check_metrics(cluster, leader):
    """promtool parses /metrics of the live leader and replicas (only Patroni's "_total" lints)."""
    for node in cluster.nodes:
        status, body = lib.http_get(node.api_url + "/metrics")
        assert status == 200
        findings = lib.promtool_check_metrics(body)
        if findings is None:
            pytest.skip("promtool (Debian package prometheus) is not installed")
        assert len(findings) == 4, findings  # xlog_location, received, replayed, timeline
        role = "primary" if node is leader else "replica"
        assert f'patroni_{role}{{scope="{cluster.scope}"}} 1' in body.decode(), body.decode()


def test_haproxy_routes_writes_to_leader_and_follows_failover(cluster_behind_haproxy):
    cluster, haproxy = cluster_behind_haproxy
    checker = pc.PrimaryChecker(cluster.nodes)
    checker.start()
    try:
        leader = cluster.wait_for_leader(30)
        replicas = {n.pg_port for n in cluster.nodes if n is not leader}
        lib.wait_until(lambda: ports_through(haproxy.ports[5000]) == {leader.pg_port}, 30,
                       what="port 5000 routes only to the leader")
        lib.wait_until(lambda: ports_through(haproxy.ports[5001]) == replicas, 30,
                       what="port 5001 balances over both replicas")
        for _ in range(3):
            assert ports_through(haproxy.ports[5001], 4) <= replicas
        check_metrics(cluster, leader)
        served_by(haproxy.ports[5000], "CREATE TABLE IF NOT EXISTS via_haproxy (id int)")
        assert served_by(haproxy.ports[5000], "INSERT INTO via_haproxy VALUES (1) RETURNING 1") == (1,)

        leader.kill9()
        new = cluster.wait_for_leader(60, exclude=(leader.name,))
        promoted = time.monotonic()

        def writes_reach_new_leader():
            port, writable = served_by(haproxy.ports[5000])
            return port == new.pg_port and writable

        lib.wait_until(writes_reach_new_leader, INTER * FALL + 10, interval=0.2,
                       what="port 5000 reaching the new leader")
        took = time.monotonic() - promoted
        print(f"port 5000 reached the new leader {took:.2f} s after its promotion")
        assert took <= INTER * FALL + 1.0, f"HAProxy needed {took:.2f} s (inter x fall = {INTER * FALL} s)"
        assert served_by(haproxy.ports[5000], "INSERT INTO via_haproxy VALUES (2) RETURNING 2") == (2,)
        assert leader.pg_port not in ports_through(haproxy.ports[5001])
        # the new leader leaves the replica pool (its /replica check turns 503) within inter x fall
        others = {n.pg_port for n in cluster.nodes if n is not leader and n is not new}
        lib.wait_until(lambda: ports_through(haproxy.ports[5001]) == others, INTER * FALL + 10, interval=0.2,
                       what="port 5001 reaching only the remaining replica")
        took = time.monotonic() - promoted
        assert took <= INTER * FALL + 1.0, f"port 5001 still reached the new leader {took:.2f} s after"
    finally:
        checker.stop()
    assert checker.violations == []
