"""pytest fixtures shared by every integration test: a postgres-owned work directory and a real etcd."""
import glob
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import pgha_cluster as pc  # noqa: E402
import pgha_testlib as lib  # noqa: E402

# The daemon the cluster tests run: pghad, or Patroni 3.0.2 to compare behaviour side by side.
DAEMON = os.environ.get("PGHA_TEST_DAEMON", "pghad")

# How much of each log a failed test prints: enough to see a daemon's decisions before the failure,
# small enough that a CI page stays readable. etcd's JSON lines rarely matter and are long.
FAILURE_LOG_LINES = 80
FAILURE_ETCD_LOG_LINES = 10


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remembers each phase's outcome on the item so fixtures can tell whether their test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def test_failed(request):
    return any(getattr(request.node, f"report_{phase}", None) is not None
               and getattr(request.node, f"report_{phase}").failed for phase in ("setup", "call"))


def print_log_tails(request, path):
    """A failed test's work directory is deleted afterwards; its daemon and etcd logs are the only
    record of what happened on a CI machine, so print their tails before they go. Teardown output is
    not part of the failure report, so this writes past pytest's capture."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print_files_tail(glob.glob(os.path.join(path, "**", "*.log"), recursive=True))


def print_files_tail(paths):
    for log in sorted(paths):
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        count = FAILURE_ETCD_LOG_LINES if os.path.basename(log).startswith("etcd") else FAILURE_LOG_LINES
        print(f"\n===== last {min(len(lines), count)} lines of {log} =====")
        print("\n".join(lines[-count:]))


def finish_workdir(request, path, failed):
    """Prints the logs of a failed test, then removes its work directory unless asked to keep it."""
    if failed:
        print_log_tails(request, path)
    if os.environ.get("PGHA_KEEP_TEST_DIRS"):
        print(f"kept {path}")
    else:
        lib.remove_tree(path)


@pytest.fixture
def workdir(request):
    path = lib.make_postgres_dir()
    yield path
    finish_workdir(request, path, test_failed(request))


@pytest.fixture
def etcd(workdir):
    server = lib.Etcd(workdir).start()
    yield server
    server.stop()


# A cluster test's clusters (started by the test, all stopped afterwards) and its invariant checker:
# fails the test if two nodes were ever writable primaries at once.
@pytest.fixture
def cluster_factory(workdir):
    made = []

    def make(**kwargs):
        c = pc.Cluster(workdir, daemon=DAEMON, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def checker():
    holder = {}

    def start(nodes):
        holder["c"] = pc.PrimaryChecker(nodes)
        holder["c"].start()
        return holder["c"]

    yield start
    if "c" in holder:
        holder["c"].stop()
        assert holder["c"].violations == [], f"two writable primaries at once: {holder['c'].violations}"


# A 3-node cluster (both replicas streaming) behind Debian's HAProxy with conf/haproxy.cfg
# (test_haproxy_cluster.py, test_pgbouncer.py); HAProxy and the cluster are stopped by PID afterwards.
@pytest.fixture
def cluster_behind_haproxy(workdir):
    cluster = pc.Cluster(workdir, n=3, daemon=DAEMON)
    haproxy = None
    try:
        cluster.start()
        leader = cluster.wait_for_leader(60)
        cluster.wait_for_streaming(leader, 2, 60)
        haproxy = lib.HAProxy(workdir, [(n.name, n.pg_port, n.api_port) for n in cluster.nodes])
        yield cluster, haproxy
    finally:
        if haproxy:
            haproxy.stop()
        cluster.stop()
