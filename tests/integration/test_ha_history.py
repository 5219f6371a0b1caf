"""The leader keeps the `history` key as Patroni 3.0.2's update_cluster_history() does: the lines of its
timeline history file, only the newest `max_timelines_history` of them, older lines keeping the time and
name stored with them. Before the fix pghad ignored max_timelines_history and the key grew forever.
PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2."""
import json

import pgha_cluster as pc
import pgha_testlib as lib


def history(c):
    value = c.key_value("history")
    return json.loads(value) if value else None


def switch_over(c, leader, candidate):
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name},
                              timeout=60)
    assert status == 200, body
    assert c.wait_for_leader(30).name == candidate.name
    c.wait_for_streaming(candidate, 1, 60)
    lib.wait_until(lambda: leader.api("/replica")[0] == 200, 30, what=f"{leader.name} back as a replica")


def test_history_keeps_max_timelines_history_lines(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2, dcs_extra={"max_timelines_history": 2})
    other = next(n for n in c.nodes if n is not leader)
    seen = {}
    for timeline in (2, 3, 4):
        switch_over(c, leader, other)
        leader, other = other, leader

        def settled():
            h = history(c)
            return h if h and h[-1][0] == timeline - 1 and len(h[-1]) == 5 else None
        h = lib.wait_until(settled, 30, what=f"the history key for timeline {timeline}")
        assert [line[0] for line in h] == list(range(max(1, timeline - 2), timeline)), h
        assert h[-1][4] == leader.name
        for line in h[:-1]:  # lines written earlier keep the time and name stored with them
            assert line == seen[line[0]], (line, seen[line[0]])
        seen.update({line[0]: line for line in h})
