"""Compatibility with Patroni 3.0.2 through etcd: a cluster view written by pgha is read by the real
`patronictl`, and the keys a real Patroni node writes are read by pgha without loss."""
import json
import os
import subprocess
import uuid

import pgha_testlib as lib

PATRONICTL = "/usr/bin/patronictl"
PATRONI = "/usr/bin/patroni"


def tool(*args, timeout=60):
    out = subprocess.run([lib.binary("pgha-test-etcd"), *args], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"pgha-test-etcd {args} failed: {out.stdout}\n{out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_patronictl_reads_cluster_written_by_pgha(etcd, workdir):
    scope = "c" + uuid.uuid4().hex[:8]
    (res,) = tool("--endpoints", etcd.endpoint, "--scope", scope, "write-cluster")
    lease = res["lease"]

    # Exactly Patroni's encodings, key by key.
    keys = lib.etcd_get_prefix(etcd, f"/service/{scope}/")
    p = f"/service/{scope}/"
    assert keys[p + "leader"] == ("node1", lease)
    assert keys[p + "members/node1"][1] == lease
    assert keys[p + "members/node1"][0] == (
        '{"conn_url":"postgres://127.0.0.1:25432/postgres","api_url":"http://127.0.0.1:28008/patroni",'
        '"state":"running","role":"master","version":"3.0.2","tags":{"mytag":"hello"},'
        '"xlog_location":83886752,"timeline":2}')
    assert keys[p + "members/node2"][1] not in (0, lease)  # node2 has its own lease
    assert keys[p + "initialize"] == ("7712574132163962109", 0)
    assert keys[p + "status"] == ('{"optime":83886752}', 0)
    assert keys[p + "sync"] == ('{"leader":"node1","sync_standby":"node2"}', 0)
    assert keys[p + "failover"] == ("{}", 0)
    assert json.loads(keys[p + "history"][0]) == [
        [1, 25165984, "no recovery target specified", "2026-11-26T20:07:47.977486+00:00", "node1"]]
    assert json.loads(keys[p + "config"][0])["ttl"] == 30
    assert " " not in keys[p + "config"][0]  # compact separators

    cfg = os.path.join(workdir, "patronictl.yml")
    with open(cfg, "w") as f:
        f.write(f"scope: {scope}\netcd3:\n  hosts: {etcd.endpoint}\n")
    out = subprocess.run(["/usr/bin/python3", PATRONICTL, "-c", cfg, "list", "-f", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["Member"]: r for r in json.loads(out.stdout)}
    assert rows["node1"]["Role"] == "Leader"
    assert rows["node1"]["State"] == "running"
    assert rows["node1"]["Host"] == "127.0.0.1:25432"
    assert rows["node1"]["TL"] == 2
    assert rows["node2"]["Role"] == "Sync Standby"
    assert rows["node2"]["Lag in MB"] == 0
    assert rows["node2"]["Tags"] == {"mytag": "hello"}

    out = subprocess.run(["/usr/bin/python3", PATRONICTL, "-c", cfg, "history", "-f", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["New Leader"] == "node1"


def test_keys_written_by_real_patroni_parse_without_loss(etcd, workdir):
    scope = "p" + uuid.uuid4().hex[:8]
    api_port, pg_port = lib.free_port(), lib.free_port()
    data_dir = os.path.join(workdir, "p1")
    cfg = os.path.join(workdir, "patroni.yml")
    with open(cfg, "w") as f:
        f.write(f"""scope: {scope}
name: p1
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: 127.0.0.1:{etcd.client_port}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    synchronous_mode: true
    failsafe_mode: true
    postgresql:
      use_pg_rewind: false
  initdb:
  - encoding: UTF8
tags:
  mytag: hello
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data_dir}
  bin_dir: {lib.PG_BIN_DIR}
  pgpass: {workdir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: pw
    replication:
      username: replicator
      password: rep
  parameters:
    unix_socket_directories: {workdir}
""")
    os.chmod(cfg, 0o644)
    patroni = lib.Process(lib.as_postgres_cmd(["/usr/bin/python3", PATRONI, cfg]),
                          os.path.join(workdir, "patroni.log"))
    p = f"/service/{scope}/"
    try:
        def settled():
            keys = lib.etcd_get_prefix(etcd, p)
            member = keys.get(p + "members/p1")
            # history appears only after a promotion; timeline 1 has none.
            if not member or p + "leader" not in keys or p + "status" not in keys or \
                    p + "failsafe" not in keys:
                return None
            m = json.loads(member[0])
            if m.get("state") != "running" or "xlog_location" not in m:
                return None
            return keys
        keys = lib.wait_until(settled, 90, interval=0.2, what="Patroni bootstrapped and leading")
        (view,) = tool("--endpoints", etcd.endpoint, "--scope", scope, "read-cluster-json")
    finally:
        patroni.stop()
        log = patroni.output()

    # Every key Patroni wrote, as pgha parsed it, against the raw values.
    assert view["leader"] == keys[p + "leader"][0] == "p1", log
    assert view["leader_lease"] == keys[p + "leader"][1] != 0
    assert view["initialize"] == keys[p + "initialize"][0]
    assert view["initialize"].isdigit() and len(view["initialize"]) >= 10
    assert view["config"] == json.loads(keys[p + "config"][0])
    assert view["config_revision"] > 0
    raw_member = json.loads(keys[p + "members/p1"][0])
    member = view["members"]["p1"]
    assert member["data"] == raw_member
    for field in ("conn_url", "api_url", "state", "role", "version", "xlog_location", "timeline"):
        assert member[field] == raw_member[field], field
    assert member["role"] == "master"
    assert member["tags"] == {"mytag": "hello"}
    assert member["lease"] == keys[p + "members/p1"][1]
    raw_status = json.loads(keys[p + "status"][0])
    assert view["status_optime"] == raw_status["optime"] == view["optime"]
    if p + "history" in keys:
        assert view["history"] == json.loads(keys[p + "history"][0])
    else:
        assert view["history"] is None and view["history_timeline"] == 0
    assert view["failsafe"] == json.loads(keys[p + "failsafe"][0])
    if p + "sync" in keys:
        raw_sync = json.loads(keys[p + "sync"][0])
        assert view["sync_leader"] == raw_sync["leader"]
        assert view["sync_standby"] == ([s.strip() for s in raw_sync["sync_standby"].split(",")]
                                        if raw_sync.get("sync_standby") else [])
    if p + "failover" in keys:
        assert view["has_failover"] is False
    # Nothing under the prefix that pgha does not account for.
    known = {"leader", "initialize", "config", "status", "history", "failsafe", "sync", "failover",
             "optime/leader", "members/p1"}
    assert {k[len(p):] for k in keys} <= known, keys.keys()
