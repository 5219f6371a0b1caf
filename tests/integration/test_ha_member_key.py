"""A node's member key is its own: when someone else overwrites it with garbage or puts it again without
the node's lease, the owner writes it back at its next tick, within one loop_wait (issue 18; Patroni 3.0.2
repairs it at its next cycle too). Before the fix pghad compared only with the text it last wrote itself
and left the damaged key as it was."""
import base64
import json
import time

import pgha_testlib as lib


def member_kv(cluster, name):
    key = base64.b64encode(f"/service/{cluster.scope}/members/{name}".encode()).decode()
    kvs = cluster.etcd.v3("kv/range", {"key": key}).get("kvs") or []
    return kvs[0] if kvs else None


def member_put(cluster, name, value):
    """Puts the member key as an outsider would: no lease."""
    key = base64.b64encode(f"/service/{cluster.scope}/members/{name}".encode()).decode()
    cluster.etcd.v3("kv/put", {"key": key, "value": base64.b64encode(value.encode()).decode()})


def repaired_member(cluster, name):
    """The member key's JSON when it is valid and bound to a lease, else None."""
    kv = member_kv(cluster, name)
    if not kv or int(kv.get("lease", 0)) == 0:
        return None
    try:
        data = json.loads(base64.b64decode(kv.get("value", "")).decode())
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("conn_url") else None


def test_member_key_overwritten_or_unleased_is_repaired(cluster_factory):
    c = cluster_factory(n=1).start()
    leader = c.wait_for_leader()
    good = lib.wait_until(lambda: repaired_member(c, leader.name), 30, what="the member key")
    budget = c.timings["loop_wait"] + 1.5  # one loop_wait, plus the tick's own time

    member_put(c, leader.name, "garbage, not JSON")
    started = time.monotonic()
    repaired = lib.wait_until(lambda: repaired_member(c, leader.name), budget,
                              what="the garbage member key rewritten by its owner")
    assert repaired["conn_url"] == good["conn_url"] and repaired["role"] == "master"
    print(f"garbage repaired in {time.monotonic() - started:.2f} s")

    member_put(c, leader.name, json.dumps(good, separators=(",", ":")))
    assert int(member_kv(c, leader.name).get("lease", 0)) == 0
    started = time.monotonic()
    lib.wait_until(lambda: repaired_member(c, leader.name), budget,
                   what="the member key bound to its owner's lease again")
    print(f"lease restored in {time.monotonic() - started:.2f} s")

    # Intact keys are not rewritten: an idle node's member key keeps its revision over several ticks
    # (a write per tick would load etcd for nothing).
    revision = int(member_kv(c, leader.name)["mod_revision"])
    deadline = time.monotonic() + 4 * c.timings["loop_wait"]
    while time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(member_kv(c, leader.name)["mod_revision"]) == revision
