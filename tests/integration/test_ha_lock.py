"""The leader lock on every path (issue 18): a key this process found rather than acquired, and a primary
whose role cannot be read. etcd + real PostgreSQL 15 nodes under pghad (ttl 6, loop_wait 1,
retry_timeout 2), with the two-writable-primaries checker and the acknowledged-row writer throughout.

"Holds the key" has one owner and is true however the node came to hold it: after `kill -9` of pghad
alone on the leader (PostgreSQL keeps running, as with `systemctl restart pghad` or a binary upgrade)
the restarted daemon adopts the running primary without restarting it, keeps the very same key, answers
/leader 200 within one loop_wait, maintains status/sync, and has its lease deadline armed: frozen past
ttl, it fences PostgreSQL from the deadline timer the moment it wakes.
"""
import os
import subprocess
import time

import pytest

import pgha_cluster as pc
import pgha_testlib as lib
from test_sync import sync_checker, sync_key, standbys, wait_sync_standby  # noqa: F401 - a fixture

TTL = pc.SHORT_TIMINGS["ttl"]
LOOP_WAIT = pc.SHORT_TIMINGS["loop_wait"]
# Logged only by the lease deadline timer: proof that it was armed when it fired.
DEADLINE_FENCE_LOG = "Local leader lease deadline passed without renewal: fencing this node"


def restart_daemon_only(c, leader):
    """kill -9 of pghad on leader, a restart 1 s later (the scenario under test, not a wait for
    something), and the checks every variant shares: the running postmaster is adopted (same PID), the
    leader key never changes hands (same create_revision, so never deleted or expired in between) and
    /leader answers 200 within one loop_wait of the restarted daemon's REST API first answering.
    Returns the seconds from that first answer to /leader 200."""
    pm = leader.postmaster_pid()
    created = c.key_create_revision("leader")
    assert pm and created and c.leader_key() == leader.name
    leader.kill9_daemon()
    time.sleep(1)
    leader.start()
    lib.wait_until(lambda: leader.api("/liveness")[0] == 200, 30, what="the restarted daemon's REST API")
    up = time.monotonic()
    lib.wait_until(lambda: leader.api("/leader")[0] == 200, 3 * TTL, interval=0.02,
                   what=f"{leader.name} answering /leader 200 after its daemon restart")
    took = time.monotonic() - up
    print(f"/leader 200 {took:.3f} s after the restarted daemon answered")
    assert took <= LOOP_WAIT, f"/leader 200 only {took:.3f} s after the daemon's start"
    assert leader.postmaster_pid() == pm, "the running PostgreSQL was restarted instead of adopted"
    assert c.key_create_revision("leader") == created, "the leader key changed hands"
    assert c.leader_key() == leader.name
    return took


def assert_fenced_by_deadline(c, leader):
    """The restarted daemon's lease deadline is armed: the node frozen past ttl (another node leads
    meanwhile), then woken, fences PostgreSQL from the deadline timer at once, before any tick could
    demote it, and a client connected before the freeze gets no more than the fence window's writes."""
    new, acked = pc.freeze_past_ttl_then_wake(c, leader)
    assert new.name != leader.name
    lib.wait_until(lambda: DEADLINE_FENCE_LOG in leader.process.output(), 10,
                   what="the lease deadline timer fencing the woken old primary")
    window = acked[-1] if acked else 0.0
    print(f"old primary acknowledged {len(acked)} writes in {window:.3f} s after waking")
    assert window < 0.1, f"old primary acknowledged {len(acked)} writes for {window:.3f} s after waking"
    return new


def test_daemon_restart_on_leader_keeps_the_lock_and_its_deadline(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    w = pc.start_writer(c, leader)
    restart_daemon_only(c, leader)
    # status is maintained by the lock holder again: its optime follows the writes
    optime = c.key_value("status")
    lib.wait_until(lambda: c.key_value("status") != optime, 3 * LOOP_WAIT, what="the status key written")
    new = assert_fenced_by_deadline(c, leader)
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    w.stop()
    assert w.missing_on(new) == []


def test_daemon_restart_on_leader_in_synchronous_mode_keeps_sync_maintained(cluster_factory, checker,
                                                                           sync_checker):  # noqa: F811
    """After the daemon restart the leader still runs process_sync(): when its synchronous standby dies
    (kill -9), the other replica becomes synchronous and commits resume within ttl, with every
    acknowledged commit on the new synchronous standby."""
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra={"synchronous_mode": True})
    sync_checker(c)
    w = pc.start_writer(c, leader)
    named = wait_sync_standby(c, leader)
    restart_daemon_only(c, leader)
    victim = c.node(named[0])
    other = next(n for n in c.nodes if n is not leader and n is not victim)
    victim.kill9()
    killed = time.time()
    lib.wait_until(lambda: standbys(sync_key(c)) == [other.name], TTL, interval=0.1,
                   what=f"sync naming {other.name} after {victim.name} died")
    lib.wait_until(lambda: any(a[2] > killed + 0.5 for a in w.acked), TTL, interval=0.1,
                   what="commits resuming after the synchronous standby died")
    assert c.leader_key() == leader.name
    w.stop()
    assert w.missing_on(other) == [], "acknowledged commits missing on the synchronous standby"


def test_daemon_restart_on_leader_while_paused(cluster_factory, checker):
    """Paused, the restarted daemon still adopts its running primary and its key; after resume it keeps
    leading without a restart of PostgreSQL."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    status, body = leader.api("/config", "PATCH", {"pause": True})
    assert status == 200, body
    lib.wait_until(lambda: all(n.api("/patroni")[1].get("pause") is True for n in c.nodes), 10,
                   what="pause seen by every node")
    pm = leader.postmaster_pid()
    restart_daemon_only(c, leader)
    status, body = leader.api("/config", "PATCH", {"pause": None})
    assert status == 200, body
    lib.wait_until(lambda: leader.api("/patroni")[1].get("pause") is not True, 10, what="resumed")
    created = c.key_create_revision("leader")
    deadline = time.monotonic() + TTL
    while time.monotonic() < deadline:  # past a whole ttl after resume, the key stays and renews
        assert c.key_create_revision("leader") == created and leader.api("/leader")[0] == 200
        time.sleep(0.2)
    assert leader.postmaster_pid() == pm


def restart_as_standby(node):
    """PostgreSQL of node restarted by hand as a standby without upstream (standby.signal, then pg_ctl
    restart, which reuses the postmaster's own command line). Its log is appended to the daemon's, as
    when the daemon starts it, so the two stay in the order things happened."""
    with open(os.path.join(node.data_dir, "standby.signal"), "w"):
        pass
    os.chown(os.path.join(node.data_dir, "standby.signal"), *lib.postgres_ids())
    os.chown(node.process.log_path, *lib.postgres_ids())
    pg_ctl = [os.path.join(lib.PG_BIN_DIR, "pg_ctl"), "-D", node.data_dir, "-l", node.process.log_path,
              "-m", "fast", "-w", "-t", "30", "restart"]
    subprocess.run(lib.as_postgres_cmd(pg_ctl), check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("synchronous_mode", [False, True])
def test_found_key_over_a_replica_is_renewed_before_the_promotion(cluster_factory, checker, synchronous_mode):
    """The key still holds our name while PostgreSQL runs as a replica (as after an etcd restart that
    kept the key, or a daemon restart during a demotion): the restarted daemon renews the key first,
    binding it to its own lease and arming the deadline, and only then promotes; the key never changes
    hands (in synchronous mode the promotion used to wait for the old lease to expire and a new race)."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2,
                                   dcs_extra={"synchronous_mode": synchronous_mode})
    created = c.key_create_revision("leader")
    leader.kill9_daemon()
    restart_as_standby(leader)
    assert leader.query("SELECT pg_is_in_recovery()")[0][0]
    leader.start()
    lib.wait_until(lambda: leader.api("/liveness")[0] == 200, 30, what="the restarted daemon's REST API")
    lib.wait_until(leader.is_writable_primary, 3 * LOOP_WAIT, what=f"{leader.name} promoted again")
    assert c.key_create_revision("leader") == created, "the leader key changed hands"
    log = leader.process.output()
    run = log[log.rindex("Starting pghad"):]
    held = run.find("this node holds the lock")
    promoted = run.find("received promote request")
    assert 0 <= held < promoted, "promoted before the key was renewed and the lock held"


def reject_local_logins(node):
    """Makes node's PostgreSQL refuse every login over its Unix socket (pghad's monitoring connection)
    while TCP clients (the test's, the replicas') go on: a pg_hba.conf line first, a reload, and the
    socket sessions ended so that they reconnect and are refused."""
    path = f"{node.data_dir}/pg_hba.conf"
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write("local all all reject\n" + text)
    node.query("SELECT pg_reload_conf()")
    lib.wait_until(lambda: node.query("SELECT count(*) FROM pg_hba_file_rules WHERE type = 'local' AND"
                                      " 'reject' = auth_method AND line_number = 1")[0][0] == 1, 10,
                   what="the reject line loaded")
    node.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_addr IS NULL"
               " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


def test_primary_whose_role_cannot_be_read_is_a_possible_primary(cluster_factory, checker):
    """Fail closed: pghad restarted on the leader while PostgreSQL refuses its monitoring logins. The
    running postmaster's role cannot be read, so it counts as a possible primary: pghad keeps (renews)
    the leader key, which arms its lease deadline, instead of trying to promote it while the dead
    daemon's lease runs out under a writable primary. At no instant are two nodes writable; frozen past
    ttl, the old primary is fenced by its deadline timer as it wakes."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    w = pc.start_writer(c, leader)
    leader.kill9_daemon()
    reject_local_logins(leader)
    leader.start()
    lib.wait_until(lambda: leader.api("/patroni")[1].get("state") == "unknown", 10,
                   what="the restarted daemon failing to read PostgreSQL's role")
    until = time.monotonic() + 2 * TTL  # past the dead daemon's lease
    while time.monotonic() < until:
        if replica.is_writable_primary():
            assert not leader.is_writable_primary(), "two writable primaries"
        time.sleep(0.1)  # the polling interval of a check that must hold throughout
    assert c.leader_key() == leader.name, "the possible primary let its key go"
    new = assert_fenced_by_deadline(c, leader)
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    w.stop()


def test_replica_whose_queries_fail_stays_a_replica(cluster_factory, checker):
    """The other side of failing closed: a running replica whose monitoring logins start being refused is
    still known to be in recovery, because this very postmaster was last seen in recovery and only a
    promotion (none here) ends recovery. It is not taken for a possible primary, which would stop it at
    once while another node holds the lock: it keeps running and streaming."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    pm = replica.postmaster_pid()
    reject_local_logins(replica)
    lib.wait_until(lambda: "pg_hba.conf rejects connection" in replica.process.output(), 10,
                   what="the replica's monitoring login refused")
    until = time.monotonic() + 3 * LOOP_WAIT
    while time.monotonic() < until:  # three ticks with the role unreadable over SQL
        assert replica.postmaster_pid() == pm, "the replica was stopped"
        time.sleep(0.2)
    assert c.wait_for_streaming(leader, 1, 5)
