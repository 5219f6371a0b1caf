"""The HA engine end to end: etcd + 3 real PostgreSQL 15 nodes (ttl 6, loop_wait 1, retry_timeout 2).

Every test runs the two invariant checkers of pgha_cluster throughout: no instant with two writable
primaries, and (where a writer runs) every acknowledged row accounted for. PGHA_TEST_DAEMON=patroni runs
the same scenarios against Patroni 3.0.2 with the same YAML, to compare behaviour side by side.
"""
import contextlib
import datetime
import http.client
import json
import os
import signal
import time

import pytest

from conftest import DAEMON
import pgha_cluster as pc
import pgha_testlib as lib



def test_bootstrap_one_leader_two_streaming_replicas(cluster_factory, checker):
    c = cluster_factory()
    checker(c.nodes)  # from before the start: the race for `initialize` is watched too
    started = time.monotonic()
    c.start()
    leader = c.wait_for_leader(30)
    c.wait_for_streaming(leader, 2, 30)
    replicas = [n for n in c.nodes if n is not leader]
    for r in replicas:
        lib.wait_until(lambda r=r: r.api("/replica")[0] == 200, 30, what=f"{r.name} answering /replica 200")
    assert time.monotonic() - started < 30
    assert leader.api("/leader")[0] == 200


def timed_get(port, path):
    """(status, seconds) of one GET on a fresh connection, as HAProxy's checks make them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        started = time.perf_counter()
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.read()
        return reply.status, time.perf_counter() - started
    finally:
        conn.close()


def test_health_endpoints_answer_fast_while_etcd_frozen(cluster_factory, checker):
    """Health handlers answer from the daemon's snapshot and never wait on etcd: with etcd frozen, every
    check still answers within 10 ms (95th percentile; a noisy CI machine gets slack on the maximum).
    Whether the leader keeps its role meanwhile is the HA rules' business, so 200 and 503 both count."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    checks = [(leader, p) for p in ("/leader", "/primary", "/health", "/liveness", "/readiness", "/")] + \
             [(replica, p) for p in ("/replica", "/read-only", "/health", "/liveness", "/readiness")]
    c.etcd.process.send_signal(signal.SIGSTOP)
    times = []
    try:
        frozen_until = time.monotonic() + 3
        while time.monotonic() < frozen_until:
            for node, path in checks:
                status, seconds = timed_get(node.api_port, path)
                assert status in (200, 503), f"{node.name} {path}: HTTP {status}"
                times.append(seconds)
    finally:
        c.etcd.process.send_signal(signal.SIGCONT)
    times.sort()
    p95 = times[int(len(times) * 0.95)]
    assert len(times) > 100, f"only {len(times)} checks answered in 3 s"
    assert p95 < 0.010, f"95th percentile {p95 * 1000:.1f} ms over {len(times)} checks"
    assert times[-1] < 0.5, f"slowest check {times[-1] * 1000:.0f} ms"


def test_kill9_leader_fails_over_and_old_leader_rejoins(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    leader.kill9()
    new = c.wait_for_leader(30, exclude=(leader.name,))
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    leader.start()
    lib.wait_until(lambda: leader.api("/replica")[0] == 200, 60, what="old leader back as a replica")
    w.stop()
    last = w.acked[-1][0]
    lib.wait_until(lambda: leader.query("SELECT max(id) FROM pgha_acks")[0][0] == last, 30,
                   what="new rows on the rejoined node")


def sigterm_hand_over(c, leader, timeout):
    """SIGTERM to the leader's daemon; (the node that leads next, seconds from the signal until then)."""
    stopped = time.monotonic()
    leader.process.send_signal(signal.SIGTERM)
    new = c.wait_for_leader(timeout, exclude=(leader.name,))
    return new, time.monotonic() - stopped


def test_sigterm_leader_hands_over_within_2s(cluster_factory, checker):
    """A clean stop of the leader's daemon: PostgreSQL stops (its walsenders send all WAL first), the key
    is deleted, and a replica leads within 2 s, with every acknowledged row."""
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    new, took = sigterm_hand_over(c, leader, 10)
    print(f"a replica led {took:.3f} s after SIGTERM")
    assert took < 2.0, f"a replica should lead within 2 s of a clean stop, took {took:.3f} s"
    assert new.name != leader.name
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    w.stop()
    assert w.missing_on(new) == [], "acknowledged rows lost in a clean hand-over"


def test_frozen_leader_stops_accepting_writes_on_waking(cluster_factory, checker):
    """The whole leader host (daemon and every PostgreSQL process) frozen past ttl, then woken: the old
    primary must fence itself before a client gets writes through. The window between the wake-up and
    the fence is measured and bounded (generously here for a noisy CI machine; bench/ measures it)."""
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    new, acked = pc.freeze_past_ttl_then_wake(c, leader)
    w.stop()
    window = acked[-1] if acked else 0.0
    print(f"old primary acknowledged {len(acked)} writes in {window:.3f} s after waking")
    # Measured 0-1 writes within 0-5 ms; 100 ms leaves room for a loaded CI machine's scheduling, and
    # a fence that waited for anything but the deadline timer (a tick, an etcd reply) would exceed it.
    assert window < 0.1, f"old primary acknowledged {len(acked)} writes for {window:.3f} s after waking"
    assert new.name != leader.name


def rejoined_with_every_row(c, w, new, old):
    """After a graceful hand-over from old to new: new has every row acknowledged so far, and old is
    back as a replica streaming from new."""
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    assert w.missing_on(new) == [], "acknowledged rows lost in a graceful hand-over"
    lib.wait_until(lambda: streams_from(new, old), 60, what=f"{old.name} streaming from {new.name}")
    lib.wait_until(lambda: old.api("/replica")[0] == 200, 30, what=f"{old.name} back as a replica")


def test_switchover_to_named_candidate_and_without_one(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    candidate = next(n for n in c.nodes if n is not leader)
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name},
                              timeout=60)
    assert status == 200, body
    assert c.wait_for_leader(30).name == candidate.name
    rejoined_with_every_row(c, w, candidate, leader)
    status, body = candidate.api("/switchover", "POST", {"leader": candidate.name}, timeout=60)
    assert status == 200, body
    new = c.wait_for_leader(30, exclude=(candidate.name,))
    assert new.name != candidate.name
    rejoined_with_every_row(c, w, new, candidate)
    w.stop()


def test_scheduled_switchover_fires_at_its_time(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker)
    candidate = next(n for n in c.nodes if n is not leader)
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name,
                                                      "scheduled_at": at.isoformat()})
    assert status == 202, body
    assert c.leader_key() == leader.name
    new = c.wait_for_leader(30, exclude=(leader.name,))
    assert new.name == candidate.name
    assert datetime.datetime.now(datetime.timezone.utc) >= at


def test_failover_without_healthy_leader(cluster_factory, checker):
    """POST /failover to a candidate while the leader is healthy (the no-healthy-leader case is
    test_failover_with_no_healthy_leader): the leader hands over gracefully, nothing acknowledged is lost."""
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    candidate = next(n for n in c.nodes if n is not leader)
    other = next(n for n in c.nodes if n not in (leader, candidate))
    status, body = other.api("/failover", "POST", {"candidate": candidate.name}, timeout=60)
    assert status == 200, body
    assert c.wait_for_leader(30, exclude=(leader.name,)).name == candidate.name
    rejoined_with_every_row(c, w, candidate, leader)
    w.stop()


def test_postmaster_crash_is_handled_without_waiting_for_loop_wait(cluster_factory, checker):
    """With Patroni's default timings (loop_wait 10) a leader's crashed postmaster must not wait for the
    next periodic probe and loop: the daemon sees the exit at once and recovers. Writes are back within
    3 s here; a daemon that only noticed on its 10 s probe and acted on its next loop would pass by
    chance only rarely."""
    if DAEMON == "patroni":
        pytest.skip("Patroni notices a dead postmaster on its next loop; pgha reacts at once")
    c = cluster_factory(n=1, timings={"ttl": 30, "loop_wait": 10, "retry_timeout": 10}).start()
    leader = c.wait_for_leader(30)
    lib.wait_until(leader.is_writable_primary, 10, what="leader writable")
    checker(c.nodes)
    os.kill(leader.postmaster_pid(), signal.SIGKILL)
    killed = time.monotonic()
    lib.wait_until(lambda: not leader.is_writable_primary(), 5, interval=0.01, what="the crash seen")
    lib.wait_until(leader.is_writable_primary, 10, interval=0.05, what="writes accepted again")
    assert time.monotonic() - killed < 3.0, f"writes back only after {time.monotonic() - killed:.1f} s"


def timed_restart(node, body):
    """((status, body), seconds) of a POST /restart; None when the node was still busy with another job
    (a replica's clone job ends only after it streams), so the caller tries again."""
    started = time.monotonic()
    reply = node.api("/restart", "POST", body, timeout=30)
    if reply[0] == 503 and isinstance(reply[1], bytes) and reply[1].endswith(b"already in progress"):
        return None
    return reply, time.monotonic() - started


def test_restart_request_timeout_answers_while_the_restart_goes_on(cluster_factory, checker):
    """POST /restart with "timeout": a restart that outlasts it is answered 503 "postgres is still
    starting" at the timeout, as Patroni answers, and goes on; without a timeout the request waits for
    the restart. The replica's postmaster is frozen (SIGSTOP) so that its shutdown cannot finish until
    the test lets it."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    pid = replica.postmaster_pid()

    def restart_with_postmaster_frozen():
        os.kill(pid, signal.SIGSTOP)
        try:
            return timed_restart(replica, {"timeout": 2})
        finally:
            os.kill(pid, signal.SIGCONT)
    (status, body), took = lib.wait_until(restart_with_postmaster_frozen, 60, interval=0.5,
                                          what="a restart request while the replica runs no job")
    assert (status, body) == (503, b"postgres is still starting"), (status, body)
    assert 1.9 < took < 10, f"answered after {took:.1f} s"
    lib.wait_until(lambda: replica.postmaster_pid() not in (None, pid), 60, what="postgres restarted")
    c.wait_for_streaming(leader, 1, 60)

    def restart_once_the_first_one_ended():
        reply = replica.api("/restart", "POST", {}, timeout=60)
        return None if reply == (503, b"restart already in progress") else reply
    reply = lib.wait_until(restart_once_the_first_one_ended, 30, interval=0.2, what="the first restart's end")
    assert reply == (200, b"restarted successfully"), reply


def test_restart_request_the_loop_cannot_act_on_is_refused(cluster_factory, checker):
    """A POST /restart that the HA loop does not act on (here etcd is frozen, so every tick decides on
    the unreachable DCS instead) is answered 503 "restart failed" within two loops and a retry (4 s
    here), not left waiting; PostgreSQL is not restarted."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    pid = replica.postmaster_pid()

    def restart_with_etcd_frozen():
        c.etcd.freeze()
        try:
            return timed_restart(replica, {})
        finally:
            c.etcd.thaw()
    (status, body), took = lib.wait_until(restart_with_etcd_frozen, 60, interval=0.5,
                                          what="a restart request while the replica runs no job")
    assert (status, body) == (503, b"restart failed"), (status, body)
    assert took < 8, f"answered after {took:.1f} s"
    assert replica.postmaster_pid() == pid, "PostgreSQL was restarted"
    c.wait_for_streaming(c.wait_for_leader(30), 1, 60)


def test_restart_request_starts_a_paused_replica_whose_postmaster_was_killed(cluster_factory, checker):
    """In maintenance mode nothing starts a dead postmaster by itself, but POST /restart does, as
    Patroni's (its acceptance suite: "I kill postmaster on postgres1" while paused, then
    `patronictl restart`): the replica runs and streams again, and the leader is left alone."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    status, body = leader.api("/config", "PATCH", {"pause": True})
    assert status == 200, body
    lib.wait_until(lambda: all(n.api("/patroni")[1].get("pause") is True for n in c.nodes), 10,
                   what="pause seen by every node")
    pid = replica.postmaster_pid()
    os.kill(pid, signal.SIGKILL)
    lib.wait_until(lambda: replica.api("/replica")[0] == 503, 10, what="/replica 503 on the dead replica")
    reply = lib.wait_until(lambda: timed_restart(replica, {}), 30, interval=0.5, what="a restart request")
    assert reply[0] == (200, b"restarted successfully"), reply
    assert replica.postmaster_pid() not in (None, pid)
    c.wait_for_streaming(leader, 1, 30)
    assert c.leader_key() == leader.name


def test_replica_lagging_beyond_maximum_lag_on_failover_does_not_promote(cluster_factory, checker):
    """maximum_lag_on_failover (1 MB here): a replica further behind the leader's last published WAL
    position than that must not take over, and the old leader, back, leads again with its data."""
    c = cluster_factory(n=2)
    leader, replica = c.nodes
    leader.start()
    assert c.wait_for_leader(30) is leader
    replica.start()
    c.wait_for_streaming(leader, 1, 30)
    checker(c.nodes)
    replica.stop()
    leader.query("CREATE TABLE lag_filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 40000) g")
    target = leader.query("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
    lib.wait_until(lambda: json.loads(c.key_value("status") or "{}").get("optime", 0) >= target, 10,
                   what="the leader's WAL position published in the status key")
    leader.kill9()
    replica.start()
    deadline = time.monotonic() + 2 * pc.SHORT_TIMINGS["ttl"] + 3
    while time.monotonic() < deadline:
        assert c.leader_key() != replica.name, "a replica 4 MB behind took the leader key"
        assert not replica.is_writable_primary(), "a replica 4 MB behind promoted itself"
        time.sleep(0.2)
    assert "My wal position exceeds maximum replication lag" in replica.process.output()
    leader.start()
    assert c.wait_for_leader(60) is leader
    assert leader.query("SELECT count(*) FROM lag_filler")[0][0] == 40000


def accepts_connections(node):
    with contextlib.suppress(Exception):
        node.query("SELECT 1")
        return True
    return False


def test_pause_prevents_failover_and_resume_recovers(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker)
    w = pc.start_writer(c, leader)
    status, body = leader.api("/config", "PATCH", {"pause": True})
    assert status == 200, body
    lib.wait_until(lambda: all(n.api("/patroni")[1].get("pause") is True for n in c.nodes), 10,
                   what="pause seen by every node")
    pm = leader.postmaster_pid()
    os.kill(pm, signal.SIGKILL)  # leader's PostgreSQL only; the daemon stays
    deadline = time.monotonic() + 3 * pc.SHORT_TIMINGS["ttl"]
    while time.monotonic() < deadline:
        assert c.leader_key() in (leader.name, None)
        assert not any(n.is_writable_primary() for n in c.nodes if n is not leader)
        # nothing is touched while paused: the dead PostgreSQL is not started again
        assert leader.postmaster_pid() in (None, pm) and not accepts_connections(leader), \
            "the paused daemon restarted PostgreSQL"
        time.sleep(0.2)
    status, body = leader.api("/config", "PATCH", {"pause": None})
    assert status == 200, body
    new = c.wait_for_leader(60)
    lib.wait_until(lambda: any(a[1] == new.name and a[2] > time.time() - 5 for a in w.acked), 30,
                   what="writes accepted again after resume")
    w.stop()


def test_nofailover_and_lag_keep_ineligible_replica_from_promoting(cluster_factory, checker):
    c = cluster_factory(n=2)
    c.nodes[1].config["tags"]["nofailover"] = True
    c.nodes[1].write_config()
    c.nodes[0].start()
    leader = c.wait_for_leader(30)
    assert leader.name == "node1"
    c.nodes[1].start()
    c.wait_for_streaming(leader, 1, 30)
    checker(c.nodes)
    leader.kill9()
    deadline = time.monotonic() + 2 * pc.SHORT_TIMINGS["ttl"] + 3
    while time.monotonic() < deadline:
        assert not c.nodes[1].is_writable_primary(), "a nofailover replica promoted itself"
        time.sleep(0.2)


def started_in_order(c, checker):
    """Starts cluster c (not started yet) so that node1 leads (started first) and the others stream from
    it and answer /replica 200, with the two-primaries checker running from the start."""
    checker(c.nodes)
    node1 = c.nodes[0]
    node1.start()
    assert c.wait_for_leader(30) is node1
    for n in c.nodes[1:]:
        n.start()
    c.wait_for_streaming(node1, len(c.nodes) - 1, 60)
    for n in c.nodes[1:]:
        lib.wait_until(lambda n=n: n.api("/replica")[0] == 200, 30, what=f"{n.name} running as a replica")
    return c


def streams_from(leader, node):
    with contextlib.suppress(Exception):
        return bool(leader.query("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"
                                 " AND application_name = %s", (node.name,)))
    return False


def create_fork_table(leader, replicas):
    """The table the divergence tests write to, created on leader and replayed by every replica."""
    leader.query("CREATE TABLE fork (id int PRIMARY KEY, origin text)")
    lib.wait_until(lambda: all(n.query("SELECT count(*) FROM pg_tables WHERE tablename = 'fork'")[0][0]
                               for n in replicas), 30, what="the table on both replicas")


def diverge_old_leader(c):
    """The first node (the leader) writes rows no replica receives, then dies (kill -9); a replica takes
    over at the earlier position and writes a row of its own; the old leader is started again. Returns
    (old leader, new leader)."""
    old, r2, r3 = c.nodes
    create_fork_table(old, (r2, r3))
    # The replicas stop cleanly (their daemons stop PostgreSQL): nothing written from now on reaches them.
    r2.stop()
    r3.stop()
    old.query("INSERT INTO fork SELECT g, 'old only' FROM generate_series(1, 100) g")
    old.kill9()
    r2.start()
    r3.start()
    new = c.wait_for_leader(60, exclude=(old.name,))
    new.query("INSERT INTO fork VALUES (1000, 'new leader')")
    old.start()
    return old, new


def test_old_leader_that_diverged_is_rewound(cluster_factory, checker):
    """The old leader wrote rows no replica received, then died (kill -9); a replica took over at an
    earlier position. Restarted, the old leader must run pg_rewind (its WAL diverged from the new
    timeline), lose the rows only it had, stream from the new leader and receive its rows."""
    c = started_in_order(cluster_factory(), checker)
    old, new = diverge_old_leader(c)
    lib.wait_until(lambda: "running pg_rewind from " + new.name in old.process.output(), 90,
                   what="pg_rewind on the old leader")
    lib.wait_until(lambda: streams_from(new, old), 90, what="the old leader streaming from the new one")
    lib.wait_until(lambda: old.api("/replica")[0] == 200, 30, what="the old leader back as a replica")
    rows = lib.wait_until(lambda: old.query("SELECT id, origin FROM fork ORDER BY id") or None, 30,
                          what="the fork table readable on the old leader")
    assert rows == [(1000, "new leader")], rows
    new.query("INSERT INTO fork VALUES (1001, 'after the rejoin')")
    lib.wait_until(lambda: old.query("SELECT count(*) FROM fork WHERE id = 1001")[0][0] == 1, 30,
                   what="a new row on the rewound node")


def test_running_replica_past_the_fork_point_is_rewound(cluster_factory, checker):
    """A replica that replayed past the point where the new leader's timeline forks off cannot stream
    from it, although it keeps running: it must be noticed while running, stopped and rewound (Patroni's
    running-replica timeline check). node3 (nofailover, so it never leads) receives rows that node2
    misses (node2 is stopped meanwhile); node1 dies; node2 takes over at its older position."""
    c = cluster_factory()
    c.nodes[2].config["tags"]["nofailover"] = True
    c.nodes[2].write_config()
    started_in_order(c, checker)
    node1, node2, node3 = c.nodes
    create_fork_table(node1, (node2, node3))
    node2.stop()
    node1.query("INSERT INTO fork SELECT g, 'old timeline' FROM generate_series(1, 100) g")
    lib.wait_until(lambda: node3.query("SELECT count(*) FROM fork")[0][0] == 100, 30,
                   what="the rows replayed on node3")
    node1.kill9()
    node2.start()
    assert c.wait_for_leader(60, exclude=(node1.name,)) is node2
    node2.query("INSERT INTO fork VALUES (1000, 'new leader')")
    lib.wait_until(lambda: "running pg_rewind from node2" in node3.process.output(), 90,
                   what="pg_rewind on node3")
    assert "stopping postgres to rewind: its timeline diverged from leader node2" in node3.process.output()
    lib.wait_until(lambda: streams_from(node2, node3), 90, what="node3 streaming from the new leader")
    rows = lib.wait_until(lambda: node3.query("SELECT id, origin FROM fork ORDER BY id") or None, 30,
                          what="the fork table readable on node3")
    assert rows == [(1000, "new leader")], rows


def test_failover_with_no_healthy_leader(cluster_factory, checker):
    """Paused cluster, the leader's PostgreSQL dies (its daemon stays and, paused, gives the key up
    instead of restarting it): nobody leads. A manual failover to a named replica makes it lead (Patroni's
    manual_failover_process_no_leader); after resume the old leader rejoins as a replica."""
    c, leader = pc.running_cluster(cluster_factory, checker)
    candidate, other = [n for n in c.nodes if n is not leader]
    w = pc.start_writer(c, leader)
    status, body = leader.api("/config", "PATCH", {"pause": True})
    assert status == 200, body
    lib.wait_until(lambda: all(n.api("/patroni")[1].get("pause") is True for n in c.nodes), 10,
                   what="pause seen by every node")
    os.kill(leader.postmaster_pid(), signal.SIGKILL)
    lib.wait_until(lambda: c.leader_key() is None, 3 * pc.SHORT_TIMINGS["ttl"], what="no leader left")
    assert not any(n.is_writable_primary() for n in c.nodes)
    status, body = other.api("/failover", "POST", {"candidate": candidate.name}, timeout=60)
    assert status == 200, body
    assert c.wait_for_leader(30).name == candidate.name
    lib.wait_until(lambda: any(a[1] == candidate.name for a in w.acked), 15, what="a write on the new leader")
    status, body = candidate.api("/config", "PATCH", {"pause": None})
    assert status == 200, body
    lib.wait_until(lambda: streams_from(candidate, leader) and streams_from(candidate, other), 90,
                   what="both other nodes streaming from the new leader")
    w.stop()
    assert c.leader_key() == candidate.name
    last = w.acked[-1][0]
    for n in (leader, other):
        lib.wait_until(lambda n=n: n.query("SELECT max(id) FROM pgha_acks")[0][0] == last, 30,
                       what=f"the last acknowledged row on {n.name}")


def test_old_leader_that_diverged_is_reinitialised_per_dynamic_config(cluster_factory, checker):
    """As test_old_leader_that_diverged_is_rewound, but pg_rewind is off and the dynamic configuration
    (bootstrap.dcs, so the etcd `config` key) sets postgresql.remove_data_directory_on_diverged_timelines:
    the old leader is reinitialised from the new one instead (a fresh copy without its old-only rows)."""
    c = cluster_factory()
    for n in c.nodes:
        n.config["bootstrap"]["dcs"]["postgresql"].update(
            {"use_pg_rewind": False, "remove_data_directory_on_diverged_timelines": True})
        n.write_config()
    started_in_order(c, checker)
    assert json.loads(c.key_value("config"))["postgresql"]["remove_data_directory_on_diverged_timelines"] is True
    old, new = diverge_old_leader(c)
    # Killed, the old primary's pg_control shows an old checkpoint: like Patroni it may start as a
    # replica first and only then be found diverged (running-replica check), so a moment of
    # "streaming" proves nothing: wait for the reinitialisation, then for streaming.
    lib.wait_until(lambda: "reinitializing due to diverged timelines" in old.process.output(), 120,
                   what="the old leader reinitialised")
    lib.wait_until(lambda: streams_from(new, old), 120, what="the old leader streaming from the new one")
    assert "running pg_rewind" not in old.process.output()
    rows = lib.wait_until(lambda: old.query("SELECT id, origin FROM fork ORDER BY id") or None, 30,
                          what="the fork table readable on the old leader")
    assert rows == [(1000, "new leader")], rows


def test_sigterm_hand_over_does_not_wait_for_loop_wait(cluster_factory, checker):
    """With Patroni's default timings (loop_wait 10) the replicas learn of the deleted leader key from
    the etcd watch, not from their next loop: a replica still leads within 2 s of the SIGTERM."""
    c, leader = pc.running_cluster(cluster_factory, checker,
                                   timings={"ttl": 30, "loop_wait": 10, "retry_timeout": 10})
    new, took = sigterm_hand_over(c, leader, 20)
    print(f"a replica led {took:.3f} s after SIGTERM with loop_wait 10")
    assert took < 2.0, f"the hand-over waited for a loop: {took:.3f} s"
    assert new.name != leader.name
