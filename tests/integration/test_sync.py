"""Synchronous replication end to end (patroni-compat.md §2.10): etcd + 3 real PostgreSQL 15 nodes under
pghad (ttl 6, loop_wait 1, retry_timeout 2).

The safety rules each test holds:
* no acknowledged commit is lost by a failover (AckWriter, then missing_on(new leader));
* only a member the `sync` key names may take over while synchronous_mode is on;
* the `sync` key never names a standby that the primary's live synchronous_standby_names does not list
  (SyncChecker polls both throughout);
* strict mode blocks commits rather than acknowledging them unprotected.
"""
import contextlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import pgha_cluster as pc
import pgha_testlib as lib

TTL = pc.SHORT_TIMINGS["ttl"]
LOOP_WAIT = pc.SHORT_TIMINGS["loop_wait"]


class SyncChecker(threading.Thread):
    """Records every moment the `sync` key names a standby that the primary's live
    synchronous_standby_names did not list, neither just before nor just after reading the key."""

    def __init__(self, cluster, interval=0.05, quorum=False):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.quorum = quorum
        self.interval = interval
        self.violations = []
        self.samples = 0
        self._named = set()
        self._stop_event = threading.Event()

    def _ssn_names(self, node):
        """(live synchronous_standby_names, {application_name: sync_state}) of a primary, or None."""
        with contextlib.suppress(Exception):
            with contextlib.closing(node.connect(timeout=1)) as conn, conn.cursor() as cur:
                cur.execute("SELECT current_setting('synchronous_standby_names'), pg_is_in_recovery(),"
                            " (SELECT json_object_agg(application_name, sync_state) FROM pg_stat_replication)")
                value, in_recovery, states = cur.fetchone()
                if not in_recovery:
                    return value, states or {}
        return None

    def run(self):
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):
                self._sample()
            self._stop_event.wait(self.interval)

    def _sample(self):
        before_key = sync_key(self.cluster)
        if not before_key or not before_key.get("leader"):
            return
        primary = self.cluster.node(before_key["leader"])
        ssn_before = self._ssn_names(primary)
        key = sync_key(self.cluster)
        ssn_after = self._ssn_names(primary)
        if not key or key.get("leader") != primary.name or ssn_before is None or ssn_after is None:
            return
        self.samples += 1
        if self.quorum:
            # Quorum mode: the key must cover the live rule (every k standbys that can acknowledge a
            # commit meet every quorum+1 voters), before or after the key was read.
            if not quorum_covers(key, ssn_before[0]) and not quorum_covers(key, ssn_after[0]):
                self.violations.append((time.time(), "quorum key does not cover", key, ssn_before, ssn_after))
            return
        for name in standbys(key):
            if not listed(ssn_before[0], name) and not listed(ssn_after[0], name):
                self.violations.append((time.time(), key, ssn_before, ssn_after))
            # A name new in the key must be one PostgreSQL reports as sync (unless it just vanished).
            if name not in self._named and ssn_after[1].get(name, "sync") != "sync":
                self.violations.append((time.time(), "named before sync", key, ssn_after))
        self._named = set(standbys(key))

    def wait_sampled(self, timeout=10):
        """Waits for a first sample, so a test that ends its primary quickly has still been checked."""
        lib.wait_until(lambda: self.samples > 0, timeout, what="a first sample of the sync checker")

    def stop(self):
        self._stop_event.set()
        self.join(10)


def listed(ssn, name):
    """Whether a synchronous_standby_names value lists name (our own formats: a, N (a,b), *)."""
    inner = ssn.split("(", 1)[1].rstrip(")") if "(" in ssn else ssn
    return name in [n.strip().strip('"') for n in inner.split(",")]


def ssn_rule(value):
    """(k, names) of a synchronous_standby_names value; k = 0 for '' and '*'."""
    value = value.strip()
    if not value:
        return 0, []
    if "(" in value:
        head, inner = value.split("(", 1)
        k = int(head.split()[-1])
        names = [n.strip().strip('"') for n in inner.rstrip(")").split(",")]
    else:
        k, names = 1, [n.strip().strip('"') for n in value.split(",")]
    return (0, names) if "*" in names else (k, names)


def quorum_covers(key, value):
    """|V| - max(0, k - |S minus V|) <= quorum (docs/ha.md, "Quorum commit")."""
    voters = set(standbys(key))
    quorum = key.get("quorum") or 0
    k, names = ssn_rule(value)
    if k > len(names):
        return True
    return len(voters) - max(0, k - len(set(names) - voters)) <= quorum


def sync_key(c):
    raw = c.key_value("sync")
    return json.loads(raw) if raw else None


def standbys(key):
    return [s for s in (key.get("sync_standby") or "").split(",") if s] if key else []


def ssn(node):
    return node.query("SHOW synchronous_standby_names")[0][0]


@pytest.fixture
def sync_checker():
    holder = {}

    def start(c, quorum=False):
        holder["c"] = SyncChecker(c, quorum=quorum)
        holder["c"].start()
        return holder["c"]

    yield start
    if "c" in holder:
        holder["c"].stop()
        assert holder["c"].samples > 0, "the sync checker never saw a primary with a sync key"
        assert holder["c"].violations == [], f"sync named a standby PostgreSQL did not: {holder['c'].violations}"


def assert_stays_replica(c, node, why, seconds=2 * TTL + 3):
    """Polls for `seconds` (past the dead leader's ttl) that node neither accepts writes nor holds the
    leader key; why completes the failure message ("promoted <why>")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not node.is_writable_primary(), f"{node.name} promoted {why}"
        assert c.leader_key() != node.name, f"{node.name} took the leader key {why}"
        time.sleep(0.2)  # the polling interval of a check that must hold throughout


def kill9_primary_and_check(c, w, leader, named):
    """kill -9 of leader's daemon and postmaster: a standby `sync` named takes over with every
    acknowledged commit and takes writes; the old leader comes back as a replica. Returns the new leader."""
    leader.kill9()
    new = c.wait_for_leader(30, exclude=(leader.name,))
    assert new.name in named, f"{new.name} took over although sync named only {named}"
    assert w.missing_on(new) == [], "acknowledged commits lost by the failover"
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    leader.start()
    lib.wait_until(lambda: leader.api("/replica")[0] == 200, 60, what="old leader back as a replica")
    return new


def wait_sync_standby(c, leader, timeout=20, count=1):
    """Waits until `sync` = {leader, count standbys}; returns the standby names."""
    def check():
        key = sync_key(c)
        return key and key.get("leader") == leader.name and len(standbys(key)) >= count and standbys(key)
    return lib.wait_until(check, timeout, interval=0.1, what=f"sync key naming {count} standby(s) of {leader.name}")


def test_kill9_primary_repeatedly_loses_no_acknowledged_commit(cluster_factory, checker, sync_checker):
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra={"synchronous_mode": True})
    sync_checker(c)
    w = pc.start_writer(c, leader, interval=0)
    for _ in range(5):
        leader = kill9_primary_and_check(c, w, leader, wait_sync_standby(c, leader))
    w.stop()
    assert w.missing_on(leader) == []


def test_frozen_primary_loses_no_acknowledged_commit(cluster_factory, checker, sync_checker):
    """The whole primary host frozen past ttl (SIGSTOP), then woken (SIGCONT): the synchronous standby
    takes over, and the woken old primary acknowledges nothing to a client still connected to it (its
    synchronous standby is gone) before it fences itself."""
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra={"synchronous_mode": True})
    sync_checker(c)
    w = pc.start_writer(c, leader)
    named = wait_sync_standby(c, leader)
    new, acked_after_wake = pc.freeze_past_ttl_then_wake(c, leader)
    assert new.name in named, f"{new.name} took over although sync named only {named}"
    w.stop()
    assert acked_after_wake == [], f"the woken old primary acknowledged commits at {acked_after_wake}"
    assert w.missing_on(new) == []


def test_only_a_sync_member_may_take_over(cluster_factory, checker, sync_checker):
    """The primary and its synchronous standby crash together: the asynchronous one must not promote
    (it may miss acknowledged commits); when the synchronous standby comes back it takes over."""
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra={"synchronous_mode": True})
    sc = sync_checker(c)
    w = pc.start_writer(c, leader)
    named = wait_sync_standby(c, leader)
    sync_node = c.node(named[0])
    other = next(n for n in c.nodes if n is not leader and n is not sync_node)
    lib.wait_until(lambda: len(w.acked) >= 20, 10, what="some writes")
    sc.wait_sampled()
    leader.kill9()
    sync_node.kill9()
    assert_stays_replica(c, other, f"although sync named {named}")
    w.stop()
    sync_node.start()
    new = c.wait_for_leader(40)
    assert new.name == sync_node.name
    assert w.missing_on(new) == []


def test_strict_mode_blocks_commits_without_standby(cluster_factory, checker, sync_checker):
    c, leader = pc.running_cluster(cluster_factory, checker,
                                   dcs_extra={"synchronous_mode": True, "synchronous_mode_strict": True})
    sync_checker(c)
    named = wait_sync_standby(c, leader)
    # The synchronous standby first: a clean stop asks the leader to release it (nosync) and waits.
    replicas = sorted((n for n in c.nodes if n is not leader), key=lambda n: n.name not in named)
    w = pc.start_writer(c, leader)
    for r in replicas:
        r.stop()
        assert r.name not in standbys(sync_key(c)), f"{r.name} stopped while still named in sync"
    lib.wait_until(lambda: ssn(leader) == "*", 5 * LOOP_WAIT + 3, what="synchronous_standby_names = '*'")
    assert standbys(sync_key(c)) == []
    w.stop()
    acked_before = len(w.acked)
    for i in range(3):
        with pytest.raises(Exception):
            with contextlib.closing(leader.connect(timeout=2)) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO pgha_acks VALUES (%s, 'blocked', now())", (i,))
    # The writer sees the same: nothing acknowledged while no standby is there.
    w2 = pc.AckWriter(c)
    w2.start()
    time.sleep(2)
    assert w2.acked == [], "a commit was acknowledged in strict mode without a synchronous standby"
    back = replicas[0]
    back.start()
    lib.wait_until(lambda: len(w2.acked) > 0, 60, what="commits resuming once a standby is back")
    wait_sync_standby(c, leader)
    lib.wait_until(lambda: len(w2.acked) > 10, 10, what="more commits")
    w2.stop()
    assert acked_before > 0
    # Everything acknowledged survives the loss of the primary.
    leader.kill9()
    new = c.wait_for_leader(30, exclude=(leader.name,))
    assert new.name == back.name
    assert w.missing_on(new) == []
    assert w2.missing_on(new) == []


def test_node_count_nosync_tag_and_key_encoding(cluster_factory, checker, sync_checker):
    c, leader = pc.running_cluster(cluster_factory, checker,
                                   dcs_extra={"synchronous_mode": True, "synchronous_node_count": 2})
    sync_checker(c)
    replicas = sorted(n.name for n in c.nodes if n is not leader)
    wait_sync_standby(c, leader, count=2)
    # Patroni's exact encoding: compact JSON, names sorted and comma-joined.
    assert c.key_value("sync") == json.dumps({"leader": leader.name, "sync_standby": ",".join(replicas)},
                                             separators=(",", ":"))
    value = ssn(leader)
    assert value.startswith("2 (") and all(listed(value, r) for r in replicas), value
    for r in replicas:
        lib.wait_until(lambda: c.node(r).api("/sync")[0] == 200, 5, what=f"/sync 200 on {r}")
        assert c.node(r).api("/async")[0] == 503
    assert leader.api("/sync")[0] == 503
    status, metrics = lib.http_get(c.node(replicas[0]).api_url + "/metrics")
    assert b"patroni_sync_standby{scope=\"demo\"} 1" in metrics, metrics

    # The nosync tag (a local setting, picked up by a reload) takes a member out.
    out = c.node(replicas[1])
    out.config["tags"]["nosync"] = True
    out.write_config()
    assert out.api("/reload", "POST")[0] in (200, 202)
    lib.wait_until(lambda: standbys(sync_key(c)) == [replicas[0]], 10, what="sync without the nosync member")
    lib.wait_until(lambda: ssn(leader) == replicas[0], 5, what="synchronous_standby_names without it")
    lib.wait_until(lambda: out.api("/async")[0] == 200, 5, what="/async on the nosync member")
    assert out.api("/sync")[0] == 503

    # Switchover: only to a member sync names (Patroni's 412), and the winner claims the key.
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": out.name})
    assert (status, body) == (412, b"candidate name does not match with sync_standby"), (status, body)
    w = pc.start_writer(c, leader)
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": replicas[0]},
                              timeout=60)
    assert status == 200, body
    new = c.wait_for_leader(30, exclude=(leader.name,))
    assert new.name == replicas[0]
    lib.wait_until(lambda: any(a[1] == new.name for a in w.acked), 15, what="a write on the new leader")
    w.stop()
    assert w.missing_on(new) == []
    wait_sync_standby(c, new)
    assert out.name not in standbys(sync_key(c)), "the nosync member became synchronous"


def test_runtime_toggle_through_patch_config_and_edit_config(cluster_factory, checker, sync_checker):
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra={})
    checker_thread = sync_checker(c)
    assert ssn(leader) == ""
    assert sync_key(c) is None
    pid = leader.postmaster_pid()

    status, body = leader.api("/config", "PATCH", {"synchronous_mode": True})
    assert status == 200, body
    started = time.monotonic()
    lib.wait_until(lambda: ssn(leader) != "", 10, interval=0.05, what="synchronous_standby_names set")
    assert time.monotonic() - started <= 2 * LOOP_WAIT + 0.5, "slower than two ticks"
    named = wait_sync_standby(c, leader, timeout=10)
    assert listed(ssn(leader), named[0])

    # A sync key naming a standby the live setting does not list (written behind pghad's back) is
    # corrected within two ticks; the checker would rightly flag the injected key, so it stops here.
    lib.wait_until(lambda: checker_thread.samples > 0, 5, what="the sync checker sampling")
    checker_thread.stop()
    assert checker_thread.violations == []
    other = next(n.name for n in c.nodes if n is not leader and n.name != named[0])
    c.key_put("sync", json.dumps({"leader": leader.name, "sync_standby": other}, separators=(",", ":")))
    lib.wait_until(lambda: other not in standbys(sync_key(c)), 2 * LOOP_WAIT + 1, interval=0.05,
                   what=f"{other} removed from the sync key")
    assert not listed(ssn(leader), other)
    wait_sync_standby(c, leader, timeout=5)

    # PostgreSQL stops waiting for the standby behind pghad's back (ALTER SYSTEM overrides
    # postgresql.conf): the key must stop naming it within two ticks, whatever the candidates are.
    leader.query("ALTER SYSTEM SET synchronous_standby_names = ''")
    leader.query("SELECT pg_reload_conf()")
    lib.wait_until(lambda: standbys(sync_key(c)) == [], 2 * LOOP_WAIT + 1, interval=0.05,
                   what="sync key without standbys once PostgreSQL waits for none")
    leader.query("ALTER SYSTEM RESET synchronous_standby_names")
    leader.query("SELECT pg_reload_conf()")
    wait_sync_standby(c, leader, timeout=5)

    # synchronous_node_count at runtime: both standbys listed within two ticks.
    status, body = leader.api("/config", "PATCH", {"synchronous_node_count": 2})
    assert status == 200, body
    started = time.monotonic()
    lib.wait_until(lambda: ssn(leader).startswith("2 ("), 10, interval=0.05, what="two standbys listed")
    assert time.monotonic() - started <= 2 * LOOP_WAIT + 0.5, "slower than two ticks"
    wait_sync_standby(c, leader, timeout=5, count=2)

    # Off through pghactl edit-config (it writes the config key in etcd, as patronictl does).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI") and k not in ("DCS_URL", "EDITOR")}
    r = subprocess.run([lib.binary("pghactl"), "-c", leader.config_path, "edit-config", "-s",
                        "synchronous_mode=false", "--force"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    started = time.monotonic()
    lib.wait_until(lambda: ssn(leader) == "", 10, interval=0.05, what="synchronous_standby_names cleared")
    assert time.monotonic() - started <= 2 * LOOP_WAIT + 0.5, "slower than two ticks"
    lib.wait_until(lambda: sync_key(c) is None, 5, what="sync key deleted")
    assert leader.postmaster_pid() == pid, "PostgreSQL was restarted"


QUORUM_1 = {"synchronous_mode": "quorum", "synchronous_node_count": 1}


def quorum_1_ready(c, leader):
    """The standbys of a `sync` key of leader with quorum 1 and a live ANY 1 over the same names."""
    key, value = sync_key(c), ssn(leader)
    return (key and key.get("leader") == leader.name and len(standbys(key)) == 2
            and key.get("quorum") == 1 and value.startswith("ANY 1 (")
            and sorted(ssn_rule(value)[1]) == sorted(standbys(key)) and standbys(key))


def wait_quorum_1(c, leader):
    # A new standby enters the key (quorum raised) before the setting names it: wait for both.
    return lib.wait_until(lambda: quorum_1_ready(c, leader), 30, interval=0.1,
                          what=f"ANY 1 of two standbys, quorum 1 on {leader.name}")


class UpstreamWatcher(threading.Thread):
    """Samples, every few milliseconds, the leader key and which replicas still run a walreceiver
    pointed at old_port (PostgreSQL's own pg_stat_wal_receiver, not what pghad reports)."""

    def __init__(self, cluster, replicas, old_port):
        super().__init__(daemon=True)
        self.cluster, self.replicas, self.old_port = cluster, replicas, old_port
        self.samples = []  # (monotonic time, leader key, names attached to old_port)
        self._stop_event = threading.Event()

    def attached(self, node):
        with contextlib.suppress(Exception):
            rows = node.query("SELECT conninfo FROM pg_stat_wal_receiver")
            return any(f"port={self.old_port}" in (r[0] or "") for r in rows)
        return False

    def run(self):
        while not self._stop_event.is_set():
            names = {r.name for r in self.replicas if self.attached(r)}
            self.samples.append((time.monotonic(), self.cluster.leader_key(), names))
            self._stop_event.wait(0.01)

    def stop(self):
        self._stop_event.set()
        self.join(10)


def test_quorum_mode_frozen_primary_voters_detach_before_promotion(cluster_factory, checker, sync_checker):
    """ANY 1 (a,b), quorum 1; the primary's whole host frozen past ttl, then woken. A voter still streaming
    from the frozen primary could, once it wakes, acknowledge commits the new primary never receives:
    so every voter stops streaming from it before the new leader takes the key (each vote counts only
    from a detached voter), the woken primary acknowledges nothing, and nothing acknowledged is lost."""
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra=QUORUM_1)
    sync_checker(c, quorum=True)
    w = pc.start_writer(c, leader)
    named = wait_quorum_1(c, leader)
    replicas = [n for n in c.nodes if n is not leader]
    watcher = UpstreamWatcher(c, replicas, leader.pg_port)
    watcher.start()
    lib.wait_until(lambda: any(len(s[2]) == 2 for s in watcher.samples), 10,
                   what="both replicas seen streaming from the primary")
    conn = leader.connect(timeout=1)
    leader.signal_all(signal.SIGSTOP)
    try:
        new = c.wait_for_leader(30, exclude=(leader.name,))
    finally:
        leader.signal_all(signal.SIGCONT)
    acked_after_wake = pc.acks_after_wake(leader, conn)
    watcher.stop()
    w.stop()
    assert new.name in named, f"{new.name} took over although sync named only {named}"
    key_at = next(t for t, key, _ in watcher.samples if key == new.name)
    late = [(round(t - key_at, 3), names) for t, key, names in watcher.samples
            if t > key_at and names - {new.name}]
    assert late == [], f"a voter still streamed from the old primary after {new.name} took the key: {late}"
    assert acked_after_wake == [], f"the woken old primary acknowledged commits at {acked_after_wake}"
    assert w.missing_on(new) == []


def test_quorum_mode_kill9_primary_loses_no_acknowledged_commit(cluster_factory, checker, sync_checker):
    """synchronous_mode: quorum (Patroni 4): ANY 1 (a,b) and sync = {..., "quorum": 1}; a failover
    (kill -9 of the primary, twice) keeps every acknowledged commit, and the key always covers the live
    setting."""
    c, leader = pc.running_cluster(cluster_factory, checker, dcs_extra=QUORUM_1)
    sync_checker(c, quorum=True)
    w = pc.start_writer(c, leader)
    for _ in range(2):
        named = wait_quorum_1(c, leader)
        key = json.loads(c.key_value("sync"))
        assert set(key) == {"leader", "sync_standby", "quorum"}, key
        assert key["sync_standby"] == ",".join(sorted(named)), key
        leader = kill9_primary_and_check(c, w, leader, named)
    # /quorum, /read-only-quorum and the metric on the standbys the key names (Patroni 4).
    named = wait_quorum_1(c, leader)
    for r in named:
        lib.wait_until(lambda: c.node(r).api("/quorum")[0] == 200, 5, what=f"/quorum 200 on {r}")
        assert c.node(r).api("/sync")[0] == 503 and c.node(r).api("/async")[0] == 503
        assert c.node(r).api("/read-only-quorum")[0] == 200
        doc = c.node(r).api("/patroni")[1]
        assert doc.get("quorum_standby") is True and "sync_standby" not in doc, doc
    assert leader.api("/quorum")[0] == 503 and leader.api("/read-only-quorum")[0] == 200
    status, metrics = lib.http_get(c.node(named[0]).api_url + "/metrics")
    assert b"patroni_quorum_standby{scope=\"demo\"} 1" in metrics, metrics

    # synchronous_node_count at runtime: ANY 2 with quorum 0, and back (the checker watches the order).
    for count, quorum in ((2, 0), (1, 1)):
        status, body = leader.api("/config", "PATCH", {"synchronous_node_count": count})
        assert status == 200, body
        lib.wait_until(lambda: ssn(leader).startswith(f"ANY {count} (") and sync_key(c).get("quorum") == quorum,
                       10, interval=0.1, what=f"ANY {count} and quorum {quorum}")

    # The primary and one of the two standbys die: the other has no vote (quorum 1) and may lack the
    # last acknowledged commits, so it must not promote; once the dead standby is back, one takes over.
    lib.wait_until(lambda: len(w.acked) >= 20, 10, what="some writes")
    gone, other = c.node(named[0]), c.node(named[1])
    leader.kill9()
    gone.kill9()
    assert_stays_replica(c, other, "without a quorum vote")
    w.stop()
    gone.start()
    new = c.wait_for_leader(40)
    assert new.name in named
    assert w.missing_on(new) == []
