"""The `failsafe` key in failsafe mode (Patroni 3.0.2): the leader keeps it naming every member with its
REST URL, replacing a stale one (another member set, left by an earlier leader or by Patroni), and a
member it names may take over. Before the fix pghad never wrote the key and took every node for one the
key does not name, so with failsafe_mode on no replica could ever be elected.
PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2."""
import json

import pgha_cluster as pc
import pgha_testlib as lib


def failsafe(c):
    value = c.key_value("failsafe")
    return json.loads(value) if value else None


def test_leader_rewrites_a_stale_failsafe_key_and_a_named_replica_takes_over(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2, dcs_extra={"failsafe_mode": True})
    replica = next(n for n in c.nodes if n is not leader)
    c.key_put("failsafe", json.dumps({"ghost": "http://127.0.0.1:1/patroni"}))
    want = {n.name: f"{n.api_url}/patroni" for n in c.nodes}
    lib.wait_until(lambda: failsafe(c) == want, 15, what="the leader's failsafe topology replacing the stale key")

    leader.kill9()
    new = c.wait_for_leader(c.timings["ttl"] + 15, exclude=(leader.name,))
    assert new is replica
