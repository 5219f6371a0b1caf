"""pghad fires postgresql.callbacks at the events Patroni 3.0.2 fires them, with `<action> <role> <scope>`:
a script appending "$*" to a per-node file records the exact sequence through bootstrap, replica start,
switchover, POST /restart and a reload. PGHA_TEST_DAEMON=patroni runs the same test against Patroni."""
import os

import pgha_cluster as pc
import pgha_testlib as lib

ACTIONS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")


def add_callbacks(cluster):
    uid, gid = lib.postgres_ids()
    for node in cluster.nodes:
        script = os.path.join(node.dir, "cb.sh")
        with open(script, "w") as f:
            f.write(f'#!/bin/sh\necho "$*" >> {node.dir}/callbacks.log\n')
        os.chmod(script, 0o755)
        os.chown(script, uid, gid)
        node.config["postgresql"]["callbacks"] = {a: script for a in ACTIONS}
        node.write_config()
    return cluster


def calls(node):
    try:
        with open(os.path.join(node.dir, "callbacks.log")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def expect(nodes, want, since=None, timeout=60, ignore=()):
    """Waits until every node's callbacks file holds exactly want[name] after its first since[name]
    lines, not counting lines in ignore (a callback runs asynchronously, so the line may come a moment
    after the event)."""
    since = since or {}

    def new(n):
        return [line for line in calls(n)[since.get(n.name, 0):] if line not in ignore]
    try:
        lib.wait_until(lambda: all(new(n) == want[n.name] for n in nodes), timeout, interval=0.1,
                       what="the expected callbacks")
    except Exception:
        raise AssertionError({n.name: calls(n) for n in nodes}, want, since)


def marks(nodes):
    return {n.name: len(calls(n)) for n in nodes}


def test_callbacks_follow_patroni_events(cluster_factory, checker):
    c, leader = pc.running_cluster(lambda **kw: add_callbacks(cluster_factory(**kw)), checker, n=3)
    replicas = [n for n in c.nodes if n is not leader]
    want = {leader.name: ["on_start master demo"]}
    want.update({r.name: ["on_start replica demo"] for r in replicas})
    expect(c.nodes, want)

    # switchover: the new leader reports on_role_change master; the old one stops (role "demoted": it
    # gives the key away) and starts again as a replica: on_role_change replica, never on_start. The
    # replicas change their upstream with a reload (on_reload replica): once on the third node, and
    # also on the old leader when it started before the new leader key was visible (timing decides,
    # for Patroni too), so on_reload is only counted on the third node.
    new, other = replicas
    since = marks(c.nodes)
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": new.name},
                              timeout=60)
    assert status == 200, body
    c.wait_for_leader(60)
    assert c.leader_key() == new.name
    c.wait_for_streaming(new, 2, 60)
    reload_ = "on_reload replica demo"
    expect(c.nodes, {new.name: ["on_role_change master demo"],
                     leader.name: ["on_stop demoted demo", "on_role_change replica demo"],
                     other.name: []}, since, ignore=(reload_,))
    assert reload_ in calls(other)[since[other.name]:], calls(other)
    assert "on_start replica demo" not in calls(leader)[since[leader.name]:]

    # POST /restart on a replica and on the leader: on_restart with the role
    since = marks(c.nodes)
    for node in (leader, new):
        status, body = node.api("/restart", "POST", {}, timeout=60)
        assert status == 200, body
    expect(c.nodes, {leader.name: ["on_restart replica demo"], new.name: ["on_restart master demo"],
                     other.name: []}, since)

    # a changed parameter reloads every node: on_reload with the role
    since = marks(c.nodes)
    status, body = new.api("/config", "PATCH", {"postgresql": {"parameters": {"work_mem": "7MB"}}})
    assert status == 200, body
    expect(c.nodes, {new.name: ["on_reload master demo"], leader.name: [reload_], other.name: [reload_]},
           since)

    # a dynamic change that touches no PostgreSQL setting reloads nothing for Patroni: no on_reload;
    # a following real change shows the order (each node applies the config key's versions in order)
    since = marks(c.nodes)
    status, body = new.api("/config", "PATCH", {"maximum_lag_on_failover": 1048577})
    assert status == 200, body
    status, body = new.api("/config", "PATCH", {"postgresql": {"parameters": {"work_mem": "8MB"}}})
    assert status == 200, body
    expect(c.nodes, {new.name: ["on_reload master demo"], leader.name: [reload_], other.name: [reload_]},
           since)
    lib.wait_until(lambda: all(n.query("SHOW work_mem") == [("8MB",)] for n in c.nodes), 10,
                   what="work_mem 8MB everywhere")

    # a graceful stop of the daemon (SIGTERM) stops PostgreSQL: on_stop with the role it had, and the
    # daemon lets the script finish before it exits. Replicas first, so the leader's stop is not
    # followed by a promotion.
    since = marks(c.nodes)
    for node in (leader, other, new):
        node.process.stop(timeout=60)
        assert not node.daemon_alive()
    expect(c.nodes, {leader.name: ["on_stop replica demo"], other.name: ["on_stop replica demo"],
                     new.name: ["on_stop master demo"]}, since, timeout=10, ignore=(reload_,))
