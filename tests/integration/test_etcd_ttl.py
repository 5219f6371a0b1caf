"""The dynamic `ttl` reaches the etcd lease of a running pghad cluster: a ttl changed with PATCH /config
gets a new lease with the new TTL (checked in etcd with /v3/lease/timetolive), the leader key is
re-bound to it while the leader keeps the lock without a gap, and no two primaries appear."""
import threading

import pgha_cluster as pc
import pgha_testlib as lib


def lease_of(c, suffix):
    key = f"/service/{c.scope}/{suffix}"
    entry = lib.etcd_get_prefix(c.etcd, key).get(key)
    return entry  # (value, lease) or None


def granted_ttl(c, lease):
    reply = c.etcd.v3("lease/timetolive", {"ID": str(lease)})
    return int(reply.get("grantedTTL", "0"))


class LeaderKeyWatch(threading.Thread):
    """Polls the leader key every 50 ms; records every read where it was absent or held by another."""

    def __init__(self, c, name):
        super().__init__(daemon=True)
        self.c, self.name = c, name
        self.gaps, self.reads = [], 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            try:
                entry = lease_of(self.c, "leader")
            except Exception:
                continue
            self.reads += 1
            if not entry or entry[0] != self.name:
                self.gaps.append(entry)

    def stop(self):
        self.done.set()
        self.join(5)


def test_ttl_change_reaches_the_lease_without_a_leader_gap(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    replica = next(n for n in c.nodes if n is not leader)
    ttl0 = pc.SHORT_TIMINGS["ttl"]
    old = lease_of(c, "leader")
    assert old[0] == leader.name and granted_ttl(c, old[1]) == ttl0
    watch = LeaderKeyWatch(c, leader.name)
    watch.start()
    try:
        for ttl in (ttl0 * 3, ttl0 + 2):
            prev = lease_of(c, "leader")[1]
            assert leader.api("/config", "PATCH", {"ttl": ttl})[0] == 200
            new = lib.wait_until(lambda: (e := lease_of(c, "leader")) and e[1] != prev and e, 15,
                                 what=f"leader key re-bound to a new lease (ttl {ttl})")
            assert new[0] == leader.name and granted_ttl(c, new[1]) == ttl
            # Each member's own key follows its new lease too.
            lib.wait_until(lambda: (m := lease_of(c, f"members/{replica.name}")) and
                           granted_ttl(c, m[1]) == ttl, 15, what="replica member key on a new lease")
            # The old lease is no longer kept alive: it runs out within its own TTL, the key stays.
            lib.wait_until(lambda: int(c.etcd.v3("lease/timetolive", {"ID": str(prev)}).get("TTL", "-1"))
                           == -1, ttl0 * 3 + 5, what="the dropped lease expired")
            assert lease_of(c, "leader") == new
    finally:
        watch.stop()
    assert watch.reads > 50
    assert watch.gaps == [], f"leader key absent or foreign during the ttl changes: {watch.gaps[:5]}"
    assert leader.is_writable_primary() and not replica.is_writable_primary()


def test_retry_timeout_change_reaches_the_etcd_client(cluster_factory, checker):
    """retry_timeout changed with PATCH /config becomes the budget of each etcd request of the running
    daemon: with etcd frozen, the cluster read fails only after the new budget (libcurl's "Operation
    timed out after N milliseconds" for the last attempt, which gets half of it with one endpoint)."""
    import os
    import re
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    assert pc.SHORT_TIMINGS["retry_timeout"] == 2
    assert leader.api("/config", "PATCH", {"ttl": 40, "retry_timeout": 9})[0] == 200
    log = os.path.join(leader.dir, "daemon.log")
    lib.wait_until(lambda: "retry_timeout=9" in open(log).read(), 15, what="the new retry_timeout applied")
    # The freeze must not fall before the leader key moved to the 40 s lease: bound to the old 6 s one,
    # the leader rightly fences itself when that one runs out.
    lib.wait_until(lambda: granted_ttl(c, lease_of(c, "leader")[1]) == 40, 15, what="leader key on the 40 s lease")
    seen = len(open(log).read())
    pattern = re.compile(r"Failed to read the cluster from etcd: .*Operation timed out after (\d+) milliseconds")
    c.etcd.freeze()
    try:
        m = lib.wait_until(lambda: pattern.search(open(log).read()[seen:]), 30,
                           what="a cluster read timing out against the frozen etcd")
    finally:
        c.etcd.thaw()
    # Two attempts share the 9 s budget: the last one had about 4.5 s (the old 2 s budget: about 1 s).
    assert int(m.group(1)) >= 3500, m.group(0)
    lib.wait_until(lambda: leader.is_writable_primary(), 30, what="the leader writable after the thaw")


def test_config_key_with_a_value_that_does_not_convert_keeps_the_last_good_values(cluster_factory, checker):
    """A `config` key written by someone else with a value that does not convert ("ttl": "abc") is not
    applied, as Patroni refuses it: the daemon keeps its last good values (the leader key stays on the
    6 s lease; before the fix ttl fell back to its default 30 and the lease with it) and says why, once.
    A corrected key is applied again."""
    import json
    import os
    import time
    c = cluster_factory(n=1).start()
    leader = c.wait_for_leader(60)
    checker(c.nodes)
    config = json.loads(c.key_value("config"))
    def put_config(value):
        c.key_put("config", json.dumps(value))
    log = os.path.join(leader.dir, "daemon.log")
    put_config(dict(config, ttl="abc"))
    line = "Dynamic configuration in the DCS not applied: ttl: not an integer"
    lib.wait_until(lambda: line in open(log).read(), 15, what="the refused config logged")
    # Watched over five loop_waits (each renewal would re-bind the key to a 30 s lease before the fix):
    # the leader keeps its 6 s lease and the key, and the refusal is said once.
    watch_until = time.monotonic() + 5 * pc.SHORT_TIMINGS["loop_wait"]
    while time.monotonic() < watch_until:
        value, lease = lease_of(c, "leader")
        assert value == leader.name and granted_ttl(c, lease) == 6
        time.sleep(0.2)
    assert leader.api("/leader")[0] == 200
    assert open(log).read().count(line) == 1
    put_config(dict(config, ttl=8))
    lib.wait_until(lambda: granted_ttl(c, lease_of(c, "leader")[1]) == 8, 15,
                   what="the corrected config applied (leader key on an 8 s lease)")
