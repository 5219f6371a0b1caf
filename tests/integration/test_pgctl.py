"""pgctl jobs on real PostgreSQL 15, driven through build/pgha-test-pgctl as the postgres user:
bootstrap, replicas from pg_basebackup and a custom method, streaming, promotion, pg_rewind of the old
primary (after a crash, so single-user crash recovery runs first), and clear errors for bad setups."""
import json
import os
import signal
import subprocess

import psycopg2
import pytest

import pgha_testlib as lib

SUPERUSER_PW = "su'pw"


def make_config(workdir, name, port, **postgresql):
    cfg = {
        "scope": "demo",
        "name": name,
        "bootstrap": {
            "initdb": [{"encoding": "UTF8"}, "data-checksums", {"auth-local": "md5"}, {"auth-host": "md5"}],
            "pg_hba": ["local all all md5",
                       "host all all 127.0.0.1/32 md5",
                       "host replication replicator 127.0.0.1/32 md5"],
            "users": {"admin": {"password": "adm", "options": ["createrole", "createdb"]}},
        },
        "postgresql": {
            "listen": f"127.0.0.1:{port}",
            "connect_address": f"127.0.0.1:{port}",
            "data_dir": os.path.join(workdir, name),
            "bin_dir": lib.PG_BIN_DIR,
            "pgpass": os.path.join(workdir, f"pgpass.{name}"),
            "postmaster_log": os.path.join(workdir, f"{name}.log"),
            "authentication": {
                "superuser": {"username": "postgres", "password": SUPERUSER_PW},
                "replication": {"username": "replicator", "password": "rep pw"},
                "rewind": {"username": "rewinder", "password": "rw"},
            },
            "parameters": {"unix_socket_directories": workdir, "shared_buffers": "16MB", "fsync": "off",
                           "max_connections": 30, "logging_collector": "off"},
            "basebackup": [{"checkpoint": "fast"}],
            "pg_ctl_timeout": 30,
            "use_pg_rewind": True,
        },
    }
    cfg["postgresql"].update(postgresql)
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def tool(cfg_path, *args, expect_ok=True, timeout=120):
    argv = lib.as_postgres_cmd([lib.binary("pgha-test-pgctl"), cfg_path, *args])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    assert lines, f"no output from {args}: {p.stderr[-3000:]}"
    res = json.loads(lines[-1])
    # With an ASan/UBSan build (PGHA_BUILD_DIR=build-asan) any report fails the test.
    assert "Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr[-5000:]
    if expect_ok is not None:
        assert res["ok"] == expect_ok, f"{args}: {res}\n{p.stderr[-3000:]}"
    res["stderr"] = p.stderr
    return res


def connect(workdir, port, user="postgres", password=SUPERUSER_PW):
    conn = psycopg2.connect(host=workdir, port=port, user=user, password=password, dbname="postgres",
                            connect_timeout=3)
    conn.autocommit = True
    return conn


def query(workdir, port, sql, *args):
    with connect(workdir, port) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def alive_with_children(pid):
    """Live (non-zombie) processes among pid and its children. (Not its session: pgctl starts the
    postmaster through an intermediate that calls setsid(), so the session is the intermediate's.)"""
    n = 0
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in "ZX" and (int(p) == pid or int(fields[1]) == pid):
            n += 1
    return n


class Cluster:
    """Stops (immediate) every postmaster a test started, found through its data directory."""

    def __init__(self):
        self.configs = []

    def add(self, cfg_path):
        self.configs.append(cfg_path)
        return cfg_path

    def stop_all(self):
        for c in self.configs:
            tool(c, "stop", "immediate", expect_ok=None)


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.stop_all()


def test_bootstrap_replicas_promote_rewind(workdir, cluster):
    p1, p2, p3 = lib.free_port(), lib.free_port(), lib.free_port()
    c1, cfg1 = make_config(workdir, "node1", p1)
    # post_bootstrap: gets the local superuser DSN as last argument and PGPASSFILE for its password.
    post = os.path.join(workdir, "post.sh")
    with open(post, "w") as f:
        f.write("#!/bin/sh\n"
                f"echo \"$@\" > {workdir}/post.args\n"
                f"exec {lib.PG_BIN_DIR}/psql -X -v ON_ERROR_STOP=1 -d \"$2\" -c 'CREATE TABLE made_by_post_bootstrap ()'\n")
    os.chmod(post, 0o755)
    cfg1["bootstrap"]["post_bootstrap"] = f"{post} first"
    with open(c1, "w") as f:
        json.dump(cfg1, f)
    # node2 is configured with fewer connections than its primary: pg_control wins (a standby could not
    # start otherwise).
    c2, _ = make_config(workdir, "node2", p2,
                        parameters={"unix_socket_directories": workdir, "shared_buffers": "16MB",
                                    "fsync": "off", "max_connections": 25})
    clone_args = os.path.join(workdir, "clone.args")
    clone = os.path.join(workdir, "clone.sh")
    with open(clone, "w") as f:
        # A custom replica method: records its arguments and environment, then clones with
        # pg_basebackup using what pgha passed (--datadir, --connstring, PGPASSFILE).
        f.write("#!/bin/sh\n"
                f"echo \"$@\" > {clone_args}\n"
                f"echo \"PGPASSFILE=$PGPASSFILE\" >> {clone_args}\n"
                "for a; do case $a in --datadir=*) D=${a#--datadir=};; --connstring=*) C=${a#--connstring=};; esac; done\n"
                f"exec {lib.PG_BIN_DIR}/pg_basebackup -D \"$D\" -X stream -c fast -d \"$C\"\n")
    os.chmod(clone, 0o755)
    # "broken" fails first: the job falls back to the next method.
    c3, _ = make_config(workdir, "node3", p3, create_replica_methods=["broken", "clone", "basebackup"],
                        broken={"command": "/bin/false"},
                        clone={"command": clone, "keep_data": False, "extra": "x y"})
    for c in (c1, c2, c3):
        cluster.add(c)

    # Bootstrap: initdb, bootstrap pg_hba, start, users.
    res = tool(c1, "bootstrap")
    assert res["seconds"] < 60
    d1 = cfg1["postgresql"]["data_dir"]
    with open(os.path.join(d1, "postgresql.conf")) as f:
        conf = f.read()
    assert conf.startswith("# Do not edit this file manually!\n# It will be overwritten by Patroni!\n"
                           "include 'postgresql.base.conf'\n")
    assert os.path.exists(os.path.join(d1, "postgresql.base.conf"))
    for name in ("postgresql.conf", "postgresql.base.conf", "pg_hba.conf", "pg_ident.conf"):
        with open(os.path.join(d1, name)) as a, open(os.path.join(d1, name + ".backup")) as b:
            assert a.read() == b.read()
    with open(os.path.join(workdir, "post.args")) as f:
        assert f.read() == f"first dbname=postgres user=postgres host={workdir} port={p1}\n"
    assert query(workdir, p1, "SELECT to_regclass('made_by_post_bootstrap') IS NOT NULL")[0][0] is True
    roles = dict((r[0], r[1:]) for r in query(
        workdir, p1, "SELECT rolname, rolreplication, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles"))
    assert roles["replicator"] == (True, False, False, True)
    assert roles["admin"] == (False, True, True, True)
    assert roles["rewinder"][3] is True
    rules = query(workdir, p1, "SELECT type, database, user_name, address FROM pg_hba_file_rules")
    assert ("host", ["replication"], ["replicator"], "127.0.0.1") in rules
    # The superuser password from the configuration works (md5 everywhere after bootstrap).
    with pytest.raises(psycopg2.OperationalError):
        connect(workdir, p1, password="wrong")
    connect(workdir, p1, user="admin", password="adm").close()
    # Bootstrap refuses to run over an existing data directory and leaves it alone.
    res = tool(c1, "initdb", expect_ok=False)
    assert "exists and is not empty" in res["error"]
    assert os.path.exists(os.path.join(d1, "PG_VERSION"))

    for slot in ("node2", "node3"):
        query(workdir, p1, "SELECT pg_create_physical_replication_slot(%s, true)", slot)

    # Replica via pg_basebackup, started as a standby of node1.
    res = tool(c2, "create-replica", f"127.0.0.1:{p1}")
    assert res["method"] == "basebackup"
    res = tool(c2, "start", f"127.0.0.1:{p1}")
    assert "Raising max_connections from 25 to 30" in res["stderr"]
    assert query(workdir, p2, "SHOW max_connections") == [("30",)]
    # Replica via the custom method, which gets Patroni's arguments.
    res = tool(c3, "create-replica", f"127.0.0.1:{p1}")
    assert res["method"] == "clone"
    assert "Replica creation method broken failed" in res["stderr"]
    with open(clone_args) as f:
        args = f.read().splitlines()
    assert args[0] == (f"--keep_data=False --extra=x y --scope=demo --role=replica "
                       f"--datadir={workdir}/node3 "
                       f"--connstring=dbname=postgres user=replicator host=127.0.0.1 port={p1}")
    assert args[1] == f"PGPASSFILE={workdir}/pgpass.node3"
    tool(c3, "start", f"127.0.0.1:{p1}")

    def streaming():
        rows = query(workdir, p1, "SELECT application_name, state FROM pg_stat_replication")
        return sorted(rows) == [("node2", "streaming"), ("node3", "streaming")]

    lib.wait_until(streaming, 30, what="node2 and node3 streaming from node1")
    query(workdir, p1, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    for p in (p2, p3):
        lib.wait_until(lambda p=p: query(workdir, p, "SELECT count(*) FROM t")[0][0] == 1, 30,
                       what=f"row replicated to {p}")
        assert query(workdir, p, "SELECT pg_is_in_recovery()")[0][0] is True

    # Promote node2.
    res = tool(c2, "promote")
    assert query(workdir, p2, "SELECT pg_is_in_recovery()")[0][0] is False
    query(workdir, p2, "SELECT pg_create_physical_replication_slot('node1', true)")
    query(workdir, p2, "INSERT INTO t VALUES (2)")
    # The post-promote checkpoint puts the new timeline into pg_control, which pg_rewind reads (the HA
    # loop waits for it, as Patroni waits for checkpoint_after_promote).
    tool(c2, "checkpoint")

    # node1 diverges, then its postmaster crashes.
    query(workdir, p1, "CREATE TABLE diverged (x int); INSERT INTO t VALUES (100)")
    pid = tool(c1, "postmaster-pid")["pid"]
    assert pid > 0
    os.kill(pid, signal.SIGKILL)
    lib.wait_until(lambda: alive_with_children(pid) == 0, 30, what="node1 processes gone")
    assert tool(c1, "postmaster-pid")["pid"] == 0

    # Rewind: single-user crash recovery first (pg_control says "in production"), then pg_rewind.
    res = tool(c1, "rewind", f"127.0.0.1:{p2}")
    assert "crash recovery" in res["stderr"]
    assert "no rewind required" not in res["stderr"]
    tool(c1, "start", f"127.0.0.1:{p2}")
    query(workdir, p2, "INSERT INTO t VALUES (3)")
    lib.wait_until(lambda: sorted(query(workdir, p1, "SELECT x FROM t")) == [(1,), (2,), (3,)], 30,
                   what="rows from the new primary on the rewound node")
    assert query(workdir, p1, "SELECT pg_is_in_recovery()")[0][0] is True
    assert query(workdir, p1, "SELECT to_regclass('diverged')")[0][0] is None
    lib.wait_until(lambda: ("node1", "streaming") in query(
        workdir, p2, "SELECT application_name, state FROM pg_stat_replication"), 30, what="node1 streams")

    # Stop modes and restart/reload.
    res = tool(c3, "stop", "fast", "checkpoint")
    assert res["signalled"] is True
    assert "psql" in res["stderr"] and "CHECKPOINT before stopping failed" not in res["stderr"]
    res = tool(c3, "stop", "fast")
    assert res["signalled"] is False
    tool(c1, "reload", f"127.0.0.1:{p2}")
    res = tool(c1, "restart", f"127.0.0.1:{p2}")
    assert res["signalled"] is True
    assert query(workdir, p1, "SELECT pg_is_in_recovery()")[0][0] is True


def test_stop_escalates_and_start_is_idempotent(workdir, cluster):
    port = lib.free_port()
    cfg, c = make_config(workdir, "node1", port, pg_ctl_timeout=2)
    cluster.add(cfg)
    tool(cfg, "bootstrap")
    pid = tool(cfg, "postmaster-pid")["pid"]
    # Starting a running server is a no-op that reports success.
    res = tool(cfg, "start")
    assert "already running" in res["stderr"]
    assert tool(cfg, "postmaster-pid")["pid"] == pid
    # A smart shutdown waits for clients forever; at pg_ctl_timeout pgha escalates to SIGQUIT.
    conn = connect(workdir, port)
    try:
        res = tool(cfg, "stop", "smart")
        assert res["signalled"] is True
        assert 2 <= res["seconds"] < 10
        assert "did not stop in time, sending SIGQUIT" in res["stderr"]
    finally:
        conn.close()
    assert tool(cfg, "postmaster-pid")["pid"] == 0
    cd = tool(cfg, "controldata")["controldata"]
    assert cd["Database cluster state"] == "in production"  # SIGQUIT: no shutdown checkpoint
    assert cd["wal_log_hints setting"] == "on"
    # After an immediate shutdown the next start runs crash recovery by itself.
    tool(cfg, "start")
    assert query(workdir, port, "SELECT 1") == [(1,)]


def test_custom_bootstrap_from_a_backup(workdir, cluster):
    p1, p2 = lib.free_port(), lib.free_port()
    c1, _ = make_config(workdir, "node1", p1)
    cluster.add(c1)
    tool(c1, "bootstrap")
    query(workdir, p1, "CREATE TABLE restored (x int); INSERT INTO restored VALUES (42)")

    # The "backup restore" is a base backup of node1; the restored cluster's superuser password is
    # node1's, so pgha needs its temporary trust pg_hba.conf to set node2's.
    script = os.path.join(workdir, "restore.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                f"echo \"$@\" > {workdir}/restore.args\n"
                "for a; do case $a in --datadir=*) D=${a#--datadir=};; esac; done\n"
                f"PGPASSWORD='rep pw' exec {lib.PG_BIN_DIR}/pg_basebackup -D \"$D\" -X stream -c fast "
                f"-d 'host=127.0.0.1 port={p1} user=replicator dbname=postgres'\n")
    os.chmod(script, 0o755)
    c2, cfg2 = make_config(workdir, "node2", p2)
    cfg2["bootstrap"]["method"] = "from_backup"
    cfg2["bootstrap"]["from_backup"] = {
        "command": script,
        "recovery_conf": {"recovery_target_action": "promote", "recovery_target_timeline": "latest",
                          "restore_command": "false"}}
    cfg2["postgresql"]["authentication"]["superuser"]["password"] = "node2 pw"
    with open(c2, "w") as f:
        json.dump(cfg2, f)
    cluster.add(c2)

    res = tool(c2, "bootstrap")
    assert "Recovery after the custom bootstrap has ended" in res["stderr"]
    with open(os.path.join(workdir, "restore.args")) as f:
        assert f.read() == f"--scope=demo --datadir={workdir}/node2\n"
    d2 = cfg2["postgresql"]["data_dir"]
    assert not os.path.exists(os.path.join(d2, "recovery.signal"))
    assert not os.path.exists(os.path.join(d2, "standby.signal"))
    assert not os.path.exists(os.path.join(d2, "pg_hba.conf.pgha-bootstrap"))
    with open(os.path.join(d2, "postgresql.conf")) as f:
        assert "# recovery.conf" not in f.read()
    with connect(workdir, p2, password="node2 pw") as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM restored")
        assert cur.fetchall() == [(42,)]
        cur.execute("SELECT pg_is_in_recovery()")
        assert cur.fetchone()[0] is False
        cur.execute("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'")
        assert cur.fetchone()[0] == 0
    with pytest.raises(psycopg2.OperationalError):
        connect(workdir, p2, password=SUPERUSER_PW)
