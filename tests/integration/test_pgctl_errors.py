"""Bad setups get one clear error naming the cause, and nothing is ever removed: wrong bin_dir, missing
data_dir parent at start (bootstrap creates it), a directory that is not a PostgreSQL data directory, one of another major version or
owned by another user, a non-empty target for initdb/replica creation, and a bad parameter."""
import os

import pgha_testlib as lib
from test_pgctl import make_config, tool


def listing(path):
    return sorted(os.listdir(path))


def test_wrong_bin_dir(workdir):
    cfg, c = make_config(workdir, "node1", lib.free_port(), bin_dir="/usr/lib/postgresql/99/bin")
    data = c["postgresql"]["data_dir"]
    os.makedirs(data)
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("15\n")
    os.chown(data, *lib.postgres_ids())
    res = tool(cfg, "start", expect_ok=False)
    assert res["error"] == "postgresql.bin_dir '/usr/lib/postgresql/99/bin' has no executable postgres"
    res = tool(cfg, "bootstrap", expect_ok=False)
    assert "postgresql.bin_dir '/usr/lib/postgresql/99/bin' has no executable initdb" in res["error"]
    assert listing(data) == ["PG_VERSION"]


def test_missing_parent(workdir):
    """Starting needs the data directory, so a missing parent is named; bootstrap and replica creation go
    ahead as with Patroni: initdb and pg_basebackup create the missing parents themselves."""
    data = os.path.join(workdir, "missing", "sub", "data")
    cfg, _ = make_config(workdir, "node1", lib.free_port(), data_dir=data)
    parent = os.path.join(workdir, "missing", "sub")
    expected = f"parent directory '{parent}' of data directory '{data}' does not exist"
    assert tool(cfg, "start", expect_ok=False)["error"] == expected
    res = tool(cfg, "create-replica", "127.0.0.1:1", expect_ok=False)
    assert "parent directory" not in res["error"] and "pg_basebackup" in res["stderr"], res
    assert not os.path.exists(data)
    tool(cfg, "bootstrap")
    assert os.path.exists(os.path.join(data, "PG_VERSION"))


def test_missing_data_dir(workdir):
    cfg, c = make_config(workdir, "node1", lib.free_port())
    res = tool(cfg, "start", expect_ok=False)
    assert res["error"] == f"data directory '{c['postgresql']['data_dir']}' does not exist"


def test_foreign_directories(workdir):
    cfg, c = make_config(workdir, "node1", lib.free_port())
    data = c["postgresql"]["data_dir"]
    uid, gid = lib.postgres_ids()
    os.makedirs(data)
    with open(os.path.join(data, "precious.txt"), "w") as f:
        f.write("user data\n")
    os.chown(data, uid, gid)

    res = tool(cfg, "start", expect_ok=False)
    assert res["error"] == f"'{data}' is not a PostgreSQL data directory (no PG_VERSION)"
    res = tool(cfg, "bootstrap", expect_ok=False)
    assert res["error"] == f"data directory '{data}' exists and is not empty, refusing to initdb"
    res = tool(cfg, "create-replica", "127.0.0.1:1", expect_ok=False)
    assert "is not empty; refusing to overwrite it" in res["error"]
    res = tool(cfg, "rewind", "127.0.0.1:1", expect_ok=False)
    assert "not a PostgreSQL data directory" in res["error"]
    assert listing(data) == ["precious.txt"]

    # A data directory of another major version.
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("14\n")
    res = tool(cfg, "start", expect_ok=False)
    assert res["error"] == (f"data directory '{data}' belongs to PostgreSQL 14 but postgresql.bin_dir "
                            f"'{lib.PG_BIN_DIR}' has PostgreSQL 15")

    # Another user's directory.
    os.chown(data, 0, 0)
    res = tool(cfg, "start", expect_ok=False)
    assert res["error"] == f"data directory '{data}' belongs to uid 0, not to this user (uid {uid})"
    assert listing(data) == ["PG_VERSION", "precious.txt"]


def test_bad_parameter(workdir):
    cfg, c = make_config(workdir, "node1", lib.free_port(),
                         parameters={"unix_socket_directories": workdir, "shared_buffers": "lots"})
    res = tool(cfg, "bootstrap", expect_ok=False)
    assert "exited during start-up" in res["error"]
    assert 'invalid value for parameter "shared_buffers": "lots"' in res["error"]
    assert os.path.exists(os.path.join(c["postgresql"]["data_dir"], "PG_VERSION"))
    assert tool(cfg, "postmaster-pid")["pid"] == 0


def test_replica_without_leader_needs_no_leader_method(workdir):
    cfg, c = make_config(workdir, "node2", lib.free_port())
    res = tool(cfg, "create-replica", "-", expect_ok=False)
    assert res["error"] == "all replica creation methods failed or none was usable without a leader"
    assert not os.path.exists(c["postgresql"]["data_dir"])

    marker = os.path.join(workdir, "restore.args")
    script = os.path.join(workdir, "restore.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" > {marker}\nexit 3\n")
    os.chmod(script, 0o755)
    cfg, c = make_config(workdir, "node3", lib.free_port(), create_replica_methods=["restore", "basebackup"],
                         restore={"command": f"{script} --from=backup", "no_leader": 1, "no_params": True})
    res = tool(cfg, "create-replica", "-", expect_ok=False)
    assert "all replica creation methods failed" in res["error"]
    assert "Replica method basebackup needs a leader, skipping it." in res["stderr"]
    with open(marker) as f:
        assert f.read() == "--from=backup\n"  # no_params: nothing appended


def test_keep_data_method_runs_over_existing_data(workdir):
    # The seed's pgbackrest/wal-g style: keep_data + no_params + no_leader, run over a non-empty data
    # directory that must not be wiped.
    script = os.path.join(workdir, "delta_restore.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/delta.args\"\n")
    os.chmod(script, 0o755)
    cfg, c = make_config(workdir, "node2", lib.free_port(), create_replica_methods=["delta", "basebackup"],
                         delta={"command": f"{script} --stanza=main --delta restore", "keep_data": True,
                                "no_params": True, "no_leader": True})
    data = c["postgresql"]["data_dir"]
    os.makedirs(data)
    with open(os.path.join(data, "old.file"), "w") as f:
        f.write("x")
    os.chown(data, *lib.postgres_ids())
    res = tool(cfg, "create-replica", "-")
    assert res["method"] == "delta"
    assert listing(data) == ["old.file"]
    with open(os.path.join(workdir, "delta.args")) as f:
        assert f.read() == "--stanza=main --delta restore\n"


def test_unknown_parameters_are_dropped(workdir):
    # As Patroni 3.0.2: names this PostgreSQL does not know are removed with a warning instead of making
    # the start fail; extension settings (with a dot) pass through.
    port = lib.free_port()
    cfg, c = make_config(workdir, "node1", port,
                         parameters={"unix_socket_directories": workdir, "shared_buffers": "16MB",
                                     "checkpoint_segments": 8, "pgha_test.flag": "on"})
    try:
        res = tool(cfg, "bootstrap")
        assert "Removing unexpected parameter=checkpoint_segments value=8 from the config" in res["stderr"]
        with open(os.path.join(c["postgresql"]["data_dir"], "postgresql.conf")) as f:
            conf = f.read()
        assert "checkpoint_segments" not in conf
        assert "pgha_test.flag = 'on'" in conf
        res = tool(cfg, "reload")
        assert "Removing unexpected parameter=checkpoint_segments" in res["stderr"]
        with open(os.path.join(c["postgresql"]["data_dir"], "postgresql.conf")) as f:
            assert f.read() == conf
    finally:
        tool(cfg, "stop", "immediate", expect_ok=None)


def test_rewind_refused_without_checksums_or_wal_log_hints(workdir):
    # initdb without --data-checksums, never started with wal_log_hints=on: pg_rewind cannot work
    server = lib.PgTestServer(workdir, "nohints")
    server.run([os.path.join(lib.PG_BIN_DIR, "initdb"), "-D", server.data_dir, "-A", "trust", "-U", "postgres",
                "--no-sync", "--no-instructions"])
    ctl = server.controldata()
    assert ctl["Data page checksum version"] == "0" and ctl["wal_log_hints setting"] == "off"
    cfg, _ = make_config(workdir, "nohints", lib.free_port(), data_dir=server.data_dir)
    before = listing(server.data_dir)
    res = tool(cfg, "rewind", "127.0.0.1:1", expect_ok=False)
    assert res["error"] == (f"pg_rewind is not possible on '{server.data_dir}': neither data checksums nor "
                            "wal_log_hints are enabled")
    assert listing(server.data_dir) == before
