"""Cascading replication: a member tagged `replicatefrom: <replica>` streams from that replica, through a
physical slot the replica itself creates and keeps. Patroni 3.0.2's sync_replication_slots() runs on
replicas too: a replica keeps the slots of the members whose replicatefrom names it (not the leader's),
and drops the other inactive physical ones. Before the fix pghad managed slots on the leader only, so
the cascading member never streamed (its upstream had no slot for it).

PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2.
"""
import signal

import pgha_testlib as lib


def physical_slots(node):
    return {r[0]: r[1] for r in node.query(
        "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'")}


def streaming_to(node):
    return {r[0] for r in node.query(
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")}


def test_replicatefrom_a_replica_streams_through_its_slot_there(cluster_factory, checker):
    c = cluster_factory()
    node1, node2, node3 = c.nodes
    node3.config["tags"]["replicatefrom"] = "node2"
    node3.write_config()
    checker(c.nodes)
    node1.start()  # node1 leads, so node2 is a replica
    assert c.wait_for_leader(30) is node1
    node2.start()
    lib.wait_until(lambda: "node2" in streaming_to(node1), 60, what="node2 streaming from node1")
    node3.start()

    lib.wait_until(lambda: physical_slots(node2).get("node3"), 60, interval=0.2,
                   what="slot node3 on node2, active")
    lib.wait_until(lambda: "node3" in streaming_to(node2), 30, interval=0.2, what="node3 streaming from node2")
    print(f"node2 slots {physical_slots(node2)}, streams to {sorted(streaming_to(node2))}; "
          f"node1 slots {physical_slots(node1)}, streams to {sorted(streaming_to(node1))}")
    assert "node3" not in physical_slots(node1), "the leader keeps no slot for a member cascading elsewhere"
    assert "node3" not in streaming_to(node1)

    # Without the tag node3 follows the leader: the leader makes its slot, node2 drops the one it no
    # longer needs once node3 has left it.
    del node3.config["tags"]["replicatefrom"]
    node3.write_config()
    node3.process.send_signal(signal.SIGHUP)
    lib.wait_until(lambda: "node3" in streaming_to(node1), 60, interval=0.2, what="node3 streaming from node1")
    lib.wait_until(lambda: "node3" not in physical_slots(node2), 30, interval=0.2,
                   what="slot node3 dropped on node2")
    assert physical_slots(node1).get("node3"), "node3 streams through its slot on the leader"
    print(f"untagged: node1 slots {physical_slots(node1)}, node2 slots {physical_slots(node2)}")
