"""PATCH /config on a running pghad, as Patroni's do_PATCH_config(): the patch is merged onto the
`config` key read afresh from etcd and written with a compare on that read's revision. So PATCHes sent
back to back all apply (none is refused because the node's last view was a PATCH behind), a change
written to etcd by someone else a moment before is kept, and a PATCH that changes nothing writes
nothing."""
import json

import pgha_testlib as lib


def config_key(c):
    """(parsed value, mod_revision) of the cluster's config key."""
    key = f"/service/{c.scope}/config"
    kvs = c.etcd.v3("kv/range", {"key": lib.b64(key)}).get("kvs") or []
    assert kvs, "no config key"
    return json.loads(lib.unb64(kvs[0]["value"])), int(kvs[0]["mod_revision"])


def single_node(cluster_factory):
    c = cluster_factory(n=1)
    c.start()
    return c, c.wait_for_leader(60)


def patch(node, body):
    status, reply = node.api("/config", "PATCH", body, timeout=10)
    assert status == 200, (body, status, reply)
    return reply


def test_patches_back_to_back_all_apply(cluster_factory):
    c, leader = single_node(cluster_factory)
    # No pause between them: each must see the previous one, which the node's own view may not yet.
    for i in range(6):
        reply = patch(leader, {"postgresql": {"parameters": {f"pgha.test_{i}": str(i)}}})
        assert reply["postgresql"]["parameters"][f"pgha.test_{i}"] == str(i)
    stored, _ = config_key(c)
    assert {k: v for k, v in stored["postgresql"]["parameters"].items() if k.startswith("pgha.test_")} == \
        {f"pgha.test_{i}": str(i) for i in range(6)}


def test_patch_keeps_a_change_written_to_etcd_just_before(cluster_factory):
    c, leader = single_node(cluster_factory)
    stored, _ = config_key(c)
    stored["maximum_lag_on_failover"] = 1234567
    key = f"/service/{c.scope}/config"
    c.etcd.v3("kv/put", {"key": lib.b64(key), "value": lib.b64(json.dumps(stored, separators=(",", ":")))})
    reply = patch(leader, {"check_timeline": True})
    assert reply["maximum_lag_on_failover"] == 1234567 and reply["check_timeline"] is True
    stored, _ = config_key(c)
    assert stored["maximum_lag_on_failover"] == 1234567 and stored["check_timeline"] is True


def test_patch_that_changes_nothing_writes_nothing(cluster_factory):
    c, leader = single_node(cluster_factory)
    stored, revision = config_key(c)
    reply = patch(leader, {"ttl": str(stored["ttl"])})  # "6" equals 6 for Patroni's patch_config
    assert reply == stored
    assert config_key(c)[1] == revision
