"""pgha demo: etcd and three pghad nodes (each with its PostgreSQL 15) on 127.0.0.1, run as the postgres
user with files under /tmp. Shows the cluster with `pghactl list`, kills the leader with SIGKILL, shows the new leader and
the old one rejoining as a replica, then stops everything it started."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import pgha_cluster as pc  # noqa: E402
import pgha_testlib as lib  # noqa: E402


def show(node, title):
    """Prints `pghactl -c <node's config> list`, exactly what an operator types."""
    argv = [lib.binary("pghactl"), "-c", node.config_path, "list"]
    print(f"\n== {title}: pghactl -c {os.path.relpath(node.config_path, node.cluster.workdir)} list")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    print((out.stdout or out.stderr).rstrip())


def settled(cluster, leader):
    """True when `pghactl list` (which reads the members' keys in etcd, as patronictl does) shows every
    live member running, leader as the only leader, and every replica on the leader's timeline with a
    known lag: the tables the demo prints are then not caught between two updates of a member key."""
    argv = [lib.binary("pghactl"), "-c", leader.config_path, "list", "-f", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        return False
    alive = sorted(n.name for n in cluster.nodes if n.daemon_alive())
    leaders = [r for r in rows if r.get("Role") == "Leader"]
    replicas = [r for r in rows if r.get("Role") != "Leader"]
    return (sorted(r.get("Member") for r in rows) == alive
            and [r["Member"] for r in leaders] == [leader.name]
            and all(r.get("State") == "running" for r in rows)
            and all(r.get("TL") == leaders[0].get("TL") and isinstance(r.get("Lag in MB"), int)
                    for r in replicas))


def main():
    workdir = lib.make_postgres_dir("pgha-demo-")
    cluster = pc.Cluster(workdir, n=3)
    try:
        print(f"etcd is up at {cluster.etcd.endpoint}; starting node1..node3 (ttl 6, loop_wait 1)")
        started = time.monotonic()
        cluster.start()
        leader = cluster.wait_for_leader(60)
        cluster.wait_for_streaming(leader, 2, 60)
        print(f"{leader.name} leads, two replicas stream: {time.monotonic() - started:.1f} s after start")
        lib.wait_until(lambda: settled(cluster, leader), 30, what="the cluster view to settle")
        show(leader, "the cluster")

        print(f"\n== kill -9 of {leader.name} (pghad and PostgreSQL)")
        killed = time.monotonic()
        leader.kill9()
        new = cluster.wait_for_leader(60, exclude=(leader.name,))
        print(f"{new.name} is the new writable leader {time.monotonic() - killed:.1f} s after the kill")
        lib.wait_until(lambda: settled(cluster, new), 30, what="the cluster view to settle")
        show(new, "the cluster after the failover")

        print(f"\n== restarting {leader.name}")
        leader.start()
        lib.wait_until(lambda: leader.api("/replica")[0] == 200, 120, what="old leader back as a replica")
        lib.wait_until(lambda: settled(cluster, new), 30, what="the cluster view to settle")
        show(new, f"{leader.name} rejoined as a replica")
    finally:
        cluster.stop()
        lib.remove_tree(workdir)
    print("\ndone: everything stopped and removed")


if __name__ == "__main__":
    main()
