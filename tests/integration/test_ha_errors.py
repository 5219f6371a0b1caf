"""pghad with a broken PostgreSQL set-up: one clear log line naming the cause, the daemon keeps running
(its REST API answers), and nothing in the data directory is removed."""
import os
import re

import pgha_cluster as pc
import pgha_testlib as lib


def start_single(workdir, local_extra=None, dcs_extra=None):
    cluster = pc.Cluster(workdir, n=1, daemon="pghad", local_extra=local_extra, dcs_extra=dcs_extra)
    return cluster, cluster.nodes[0].start()


def assert_alive_and_serving(node):
    lib.wait_until(lambda: node.api("/liveness")[0] == 200, 20, what="REST API answering")
    assert node.daemon_alive(), node.process.output()[-2000:]


def test_wrong_bin_dir_is_named_and_bootstrap_cancelled(workdir):
    bin_dir = "/usr/lib/postgresql/99/bin"
    cluster, node = start_single(workdir, local_extra={"postgresql": {"bin_dir": bin_dir}})
    try:
        lib.wait_until(lambda: f"postgresql.bin_dir '{bin_dir}' has no executable" in node.process.output(), 30,
                       what="the bin_dir error in the log")
        # a failed first bootstrap is fatal, as in Patroni (cancel_initialization): exit status 1
        lib.wait_until(lambda: not node.daemon_alive(), 60, what="pghad to exit")
        assert node.process.proc.returncode == 1, node.process.output()[-2000:]
        assert "ERROR: Failed to bootstrap cluster" in node.process.output()
        assert not os.path.exists(os.path.join(node.data_dir, "PG_VERSION"))
    finally:
        cluster.stop()


def test_postgres_that_cannot_start_is_named_and_data_kept(workdir):
    cluster, node = start_single(workdir)
    try:
        cluster.wait_for_leader(60)
        node.stop()
        assert not node.daemon_alive()
        # a parameter PostgreSQL refuses: the server cannot start any more
        node.config["postgresql"]["parameters"]["shared_buffers"] = "lots"
        node.write_config()
        node.start()
        # pghad's own error line names the cause (postgres's stderr may go elsewhere, e.g. a journal
        # stream of another unit), once per failed start
        failed_start = re.compile(r",\d{3} ERROR: start failed: postgres \(PID (\d+)\) exited during start-up: "
                                  r'.*invalid value for parameter "shared_buffers": "lots"')
        lib.wait_until(lambda: failed_start.search(node.process.output()), 60,
                       what="the failed start naming the bad parameter in the log")
        pids = failed_start.findall(node.process.output())
        assert len(pids) == len(set(pids)), f"a failed start was reported more than once: {pids}"
        assert_alive_and_serving(node)
        assert os.path.exists(os.path.join(node.data_dir, "PG_VERSION")), "the data directory was removed"
        assert node.api("/health")[0] == 503
    finally:
        cluster.stop()
