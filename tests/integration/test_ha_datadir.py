"""pghad and the data directory (Patroni's data_directory_empty / cancel_initialization rules): a directory
holding anything but dot-files and lost+found is never bootstrapped over nor removed; a failed bootstrap
renames the directory to <data_dir>.failed (never removing an older one) and exits with status 1; a
missing parent directory is created by initdb, as with Patroni."""
import os

import pgha_cluster as pc
import pgha_testlib as lib


def single(workdir, local_extra=None):
    cluster = pc.Cluster(workdir, n=1, daemon="pghad", local_extra=local_extra)
    return cluster, cluster.nodes[0]


def make_dir(path, files):
    uid, gid = lib.postgres_ids()
    os.makedirs(path)
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
        os.chown(os.path.join(path, name), uid, gid)
    os.chown(path, uid, gid)


def tree(path):
    """{relative path: content} of every file under path."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), path)] = f.read()
    return out


def wait_exit(node, timeout=90):
    lib.wait_until(lambda: not node.daemon_alive(), timeout, what="pghad to exit")
    return node.process.proc.returncode


def test_stray_file_is_not_empty_and_survives(workdir):
    cluster, node = single(workdir)
    # a data directory pgha never created: no PG_VERSION, one user file, plus the dot-file and
    # lost+found that alone would still count as empty
    make_dir(node.data_dir, {"notes.txt": "precious user data\n", ".hidden": "x"})
    os.makedirs(os.path.join(node.data_dir, "lost+found"))
    before = tree(node.data_dir)
    try:
        node.start()
        msg = "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize"
        lib.wait_until(lambda: node.process.output().count(msg) >= 2, 60,
                       what="the 'not empty, but system ID is invalid' line, twice (two HA cycles)")
        assert node.daemon_alive(), node.process.output()[-2000:]
        assert node.api("/liveness")[0] == 200
        out = node.process.output()
        assert "initdb" not in out and "Removing data directory" not in out, out[-3000:]
        assert cluster.key_value("initialize") is None
        assert tree(node.data_dir) == before
        assert not os.path.exists(node.data_dir + ".failed")
    finally:
        cluster.stop()


def test_only_dot_files_and_lost_found_count_as_empty(workdir):
    cluster, node = single(workdir)
    make_dir(node.data_dir, {".hidden": "dot-file\n"})
    os.makedirs(os.path.join(node.data_dir, "lost+found"))
    os.chown(os.path.join(node.data_dir, "lost+found"), *lib.postgres_ids())
    try:
        node.start()
        # empty for Patroni, so a bootstrap is attempted; initdb refuses a non-empty directory, the
        # bootstrap fails and the directory is moved aside with its content, not removed
        rc = wait_exit(node)
        out = node.process.output()
        assert "trying to bootstrap a new cluster" in out, out[-3000:]
        assert f"data directory '{node.data_dir}' exists and is not empty, refusing to initdb" in out
        assert rc == 1, out[-3000:]
        assert tree(node.data_dir + ".failed") == {".hidden": b"dot-file\n"}
        assert os.path.isdir(os.path.join(node.data_dir + ".failed", "lost+found"))
    finally:
        cluster.stop()


def test_failed_first_bootstrap_renames_data_dir_and_exits_1(workdir):
    # PostgreSQL refuses the parameter: initdb succeeds, the first start fails
    cluster, node = single(workdir, local_extra={"postgresql": {"parameters": {
        "unix_socket_directories": os.path.join(workdir, "node1", "sock"), "shared_buffers": "lots"}}})
    # an older failed bootstrap's directory: pgha never removes it (Patroni would)
    make_dir(node.data_dir + ".failed", {"older.txt": "from an earlier failure\n"})
    try:
        node.start()
        rc = wait_exit(node)
        out = node.process.output()
        assert rc == 1, out[-3000:]
        assert 'invalid value for parameter "shared_buffers": "lots"' in out, out[-3000:]
        assert "removing initialize key after failed attempt to bootstrap the cluster" in out
        assert f"renaming data directory to {node.data_dir}.failed.1" in out, out[-3000:]
        assert out.count("ERROR: Failed to bootstrap cluster") == 1, out[-3000:]
        assert "Removing data directory" not in out
        # one bootstrap attempt: no initdb → fail → rm loop
        assert out.count("trying to bootstrap a new cluster") == 1, out[-3000:]
        assert not os.path.exists(node.data_dir)
        assert os.path.exists(os.path.join(node.data_dir + ".failed.1", "PG_VERSION"))
        assert tree(node.data_dir + ".failed") == {"older.txt": b"from an earlier failure\n"}
        assert cluster.key_value("initialize") is None
    finally:
        cluster.stop()


def test_missing_parent_of_data_dir_is_created(workdir):
    """As Patroni, pghad lets initdb create the missing parents of data_dir on the first start."""
    data = os.path.join(workdir, "missing", "sub", "data")
    cluster, node = single(workdir, local_extra={"postgresql": {"data_dir": data}})
    try:
        node.start()
        assert cluster.wait_for_leader(timeout=90) is node
        assert node.daemon_alive(), node.process.output()[-3000:]
        assert os.path.exists(os.path.join(data, "PG_VERSION"))
        assert "does not exist" not in node.process.output()
    finally:
        cluster.stop()


def test_data_dir_of_another_system_exits_1(workdir):
    cluster = pc.Cluster(workdir, n=2, daemon="pghad")
    first, second = cluster.nodes
    try:
        first.start()
        cluster.wait_for_leader(60)
        lib.wait_until(lambda: cluster.key_value("initialize"), 30, what="the initialize key")
        dcs_sysid = cluster.key_value("initialize")
        # a data directory initdb'd on its own: a valid cluster, but another system identifier
        server = lib.PgTestServer(workdir, "foreign")
        server.run([os.path.join(lib.PG_BIN_DIR, "initdb"), "-D", second.data_dir, "-A", "trust", "-U",
                    "postgres", "--no-sync", "--no-instructions"])
        ctl = server.run([os.path.join(lib.PG_BIN_DIR, "pg_controldata"), second.data_dir])
        local = next(line.split(":", 1)[1].strip() for line in ctl.splitlines()
                     if line.startswith("Database system identifier"))
        assert local != dcs_sysid
        before = tree(second.data_dir)
        second.start()
        rc = wait_exit(second)
        out = second.process.output()
        assert (f"CRITICAL: system ID mismatch, node node2 belongs to a different cluster: "
                f"{dcs_sysid} != {local}") in out, out[-3000:]
        assert rc == 1, out[-3000:]
        assert tree(second.data_dir) == before, "the foreign data directory was changed"
        assert cluster.key_value("initialize") == dcs_sysid
        assert first.is_writable_primary()
    finally:
        cluster.stop()
