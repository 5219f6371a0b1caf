"""A clean stop (SIGTERM) keeps the member key: Patroni 3.0.2's Ha.shutdown() writes it once more with
state "stopped" after PostgreSQL stopped and leaves it to expire with its lease (it does not revoke the
lease). While the key is there the leader keeps the member's replication slot, so a replica restarted
within the ttl streams through its slot again. Before the fix pghad deleted the key at shutdown, the
leader dropped the slot at its next loop and the restarted replica could not stream ("replication slot
... does not exist") until the slot was made again.

PGHA_TEST_DAEMON=patroni runs the same test against Patroni 3.0.2.
"""
import json
import time

import pgha_cluster as pc
import pgha_testlib as lib

# A ttl long enough for the stopped key to outlive the restart of its replica (the key expires at most
# ttl after the last keep-alive); loop_wait 1 so the leader would drop an unlisted slot within a second.
TIMINGS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 2}


def slot_state(leader, slot):
    """(exists, active) of a physical slot on the leader."""
    rows = leader.query("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    return (bool(rows), bool(rows and rows[0][0]))


def test_replica_stopped_by_sigterm_keeps_member_key_and_slot(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2, timings=TIMINGS)
    replica = next(n for n in c.nodes if n is not leader)
    slot = replica.name  # "node1" or "node2": already valid slot names
    lib.wait_until(lambda: slot_state(leader, slot) == (True, True), 30, what=f"slot {slot} active")

    stopped = time.monotonic()
    assert replica.process.stop(timeout=30) == 0, "the daemon should exit 0 after a clean stop"
    kv = c.key_kv(f"members/{replica.name}")
    assert kv is not None, "the member key was deleted by a clean shutdown"
    data = json.loads(lib.unb64(kv.get("value", "")))
    print(f"member key after SIGTERM: state={data.get('state')!r} role={data.get('role')!r} "
          f"lease={kv.get('lease')}")
    assert data.get("state") == "stopped"
    assert int(kv.get("lease", 0)) != 0, "the stopped member key should expire with the lease"

    # Several leader loops later the key is still there and so is the slot.
    deadline = time.monotonic() + 3 * TIMINGS["loop_wait"] + 0.5
    while time.monotonic() < deadline:
        assert slot_state(leader, slot)[0], f"the leader dropped slot {slot} of a stopped member"
        time.sleep(0.2)
    assert c.key_kv(f"members/{replica.name}") is not None

    # Restarted, the replica streams again, through its slot; the slot never went away.
    replica.start()
    seen_missing = []

    def streams_through_slot():
        exists, active = slot_state(leader, slot)
        if not exists:
            seen_missing.append(time.monotonic() - stopped)
        rows = leader.query("SELECT 1 FROM pg_stat_replication WHERE application_name = %s"
                            " AND state = 'streaming'", (replica.name,))
        return exists and active and bool(rows)
    lib.wait_until(streams_through_slot, 60, interval=0.2, what=f"{replica.name} streaming through slot {slot}")
    print(f"{replica.name} streams through slot {slot} {time.monotonic() - stopped:.1f} s after its SIGTERM")
    assert not seen_missing, f"slot {slot} was missing {seen_missing[0]:.1f} s after the stop"
