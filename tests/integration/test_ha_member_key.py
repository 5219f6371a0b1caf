"""A node's member key is its own: when someone else overwrites it with garbage or puts it again without
the node's lease, the owner writes it back at its next tick, within one loop_wait (issue 18; Patroni 3.0.2
repairs it at its next cycle too). Before the fix pghad compared only with the text it last wrote itself
and left the damaged key as it was."""
import json
import time

import pgha_testlib as lib


def repaired_member(cluster, name):
    """The member key's JSON when it is valid and bound to a lease, else None."""
    kv = cluster.key_kv(f"members/{name}")
    if not kv or int(kv.get("lease", 0)) == 0:
        return None
    try:
        data = json.loads(lib.unb64(kv.get("value", "")))
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("conn_url") else None


def test_member_key_overwritten_or_unleased_is_repaired(cluster_factory):
    c = cluster_factory(n=1).start()
    leader = c.wait_for_leader()
    good = lib.wait_until(lambda: repaired_member(c, leader.name), 30, what="the member key")
    budget = c.timings["loop_wait"] + 1.5  # one loop_wait, plus the tick's own time

    c.key_put(f"members/{leader.name}", "garbage, not JSON")
    started = time.monotonic()
    repaired = lib.wait_until(lambda: repaired_member(c, leader.name), budget,
                              what="the garbage member key rewritten by its owner")
    assert repaired["conn_url"] == good["conn_url"] and repaired["role"] == "master"
    print(f"garbage repaired in {time.monotonic() - started:.2f} s")

    c.key_put(f"members/{leader.name}", json.dumps(good, separators=(",", ":")))
    assert int(c.key_kv(f"members/{leader.name}").get("lease", 0)) == 0
    started = time.monotonic()
    lib.wait_until(lambda: repaired_member(c, leader.name), budget,
                   what="the member key bound to its owner's lease again")
    print(f"lease restored in {time.monotonic() - started:.2f} s")

    # Intact keys are not rewritten: an idle node's member key keeps its revision over several ticks
    # (a write per tick would load etcd for nothing).
    revision = int(c.key_kv(f"members/{leader.name}")["mod_revision"])
    deadline = time.monotonic() + 4 * c.timings["loop_wait"]
    while time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(c.key_kv(f"members/{leader.name}")["mod_revision"]) == revision
