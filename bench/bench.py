"""pgha against Patroni 3.0.2, side by side: the same generated YAML, the same loopback cluster set-up
(etcd + 3 PostgreSQL 15 nodes), the same scenarios, medians over several rounds, one table with both
figures and their ratio. See docs/benchmarks.md for what each figure means.

    bench/run.sh                      # full run: both daemons, both timing profiles, 3 rounds
    bench/run.sh --smoke              # one round, one scenario, short profile (CI keeps it from rotting)
    bench/run.sh --daemons patroni --rounds 1 --scenarios crash
"""
import argparse
import base64
import contextlib
import datetime
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pgha_cluster as pc  # noqa: E402
import pgha_testlib as lib  # noqa: E402

PROFILES = {
    "short": {"ttl": 6, "loop_wait": 1, "retry_timeout": 2},
    "default": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
}
WRK_SECONDS = 5
# How long a round waits for a daemon to heal its cluster after a failed scenario before skipping the
# rest of the round: Patroni 3.0.2 at times leaves a replica that never streams again.
REPAIR_TIMEOUT = 30


class ScenarioFailed(Exception):
    pass


def now():
    return time.monotonic()


def healthy_cluster(cluster, timeout=120):
    """Waits until there is a writable leader and every other node streams from it."""
    leader = cluster.wait_for_leader(timeout)
    cluster.wait_for_streaming(leader, len(cluster.nodes) - 1, timeout)
    return leader


def leader_lease(cluster):
    """The leader key's lease ID, or None."""
    key = base64.b64encode(f"/service/{cluster.scope}/leader".encode()).decode()
    kvs = cluster.etcd.v3("kv/range", {"key": key}).get("kvs") or []
    return kvs[0].get("lease") if kvs and kvs[0].get("lease") else None


def lease_ttl(cluster, lease):
    """Whole seconds left on a lease as etcd reports them (the remainder truncated; the gateway omits a
    0), or -1 once it is gone."""
    return int(cluster.etcd.v3("lease/timetolive", {"ID": lease}).get("TTL") or 0)


class LeaseExpiryWatcher(threading.Thread):
    """Finds the instant a lease that nobody renews any more expires, to about 5 ms: etcd reports the
    remaining TTL truncated to whole seconds, so at the first instant the reported value drops to k,
    exactly k + 1 seconds are left. None when the lease went before its value changed."""

    def __init__(self, cluster, lease):
        super().__init__(daemon=True)
        self.cluster, self.lease, self.expiry = cluster, lease, None
        self._stop_event = threading.Event()
        self.start()

    def run(self):
        first = None
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):
                ttl = lease_ttl(self.cluster, self.lease)
                if ttl < 0:
                    return
                if first is None:
                    first = ttl
                elif ttl < first:
                    self.expiry = now() + ttl + 1
                    return
            time.sleep(0.005)

    def stop(self):
        self._stop_event.set()
        self.join(5)


class KeyGoneWatcher(threading.Thread):
    """Notes the instant (polled every 10 ms) the old leader's name leaves the leader key: etcd revokes
    expired leases on a 500 ms sweep, so only this instant isolates the daemons' own reaction."""

    def __init__(self, cluster, old_leader):
        super().__init__(daemon=True)
        self.cluster, self.old_leader, self.at = cluster, old_leader, None
        self._stop_event = threading.Event()
        self.start()

    def run(self):
        while not self._stop_event.is_set():
            with contextlib.suppress(Exception):
                if self.cluster.leader_key() != self.old_leader:
                    self.at = now()
                    return
            time.sleep(0.01)

    def stop(self):
        self._stop_event.set()
        self.join(5)


def first_ack_after(writer, t0, exclude_node=None, timeout=120):
    """Monotonic time of the first row acknowledged after t0 (wall clock is what AckWriter records, so
    convert) by a node other than exclude_node."""
    wall0 = time.time() - (now() - t0)

    def check():
        for ident, node, at in writer.acked:
            if at > wall0 and node != exclude_node:
                return at
        return None
    at = lib.wait_until(check, timeout, interval=0.01, what="a write accepted after the event")
    return t0 + (at - wall0)


class Round:
    """One cluster under one daemon and timing profile; scenarios run on it one after another, each
    leaving the cluster healthy again for the next."""

    def __init__(self, daemon, profile, workdir):
        self.daemon = daemon
        self.profile = profile
        self.cluster = pc.Cluster(workdir, n=3, daemon=daemon, scope=f"bench{os.getpid()}",
                                  timings=PROFILES[profile])
        self.checker = None
        self.results = {}
        self.lost_rows = 0

    def record(self, name, value):
        self.results[name] = value

    def start_writer(self, leader):
        w = pc.AckWriter(self.cluster)
        w.setup(leader)
        w.start()
        lib.wait_until(lambda: len(w.acked) >= 5, 30, what="first acknowledged writes")
        return w

    def finish_writer(self, w):
        w.stop()
        leader = self.cluster.wait_for_leader(120)
        missing = w.missing_on(leader)
        self.lost_rows += len(missing)
        return missing

    def rejoin(self, node):
        if not node.daemon_alive():
            node.stop()
            node.start()
        # a healthy daemon rejoins within a few loops; beyond that the scenario fails instead of waiting
        healthy_cluster(self.cluster, timeout=max(60, 2 * PROFILES[self.profile]["ttl"]))

    # ---- scenarios -------------------------------------------------------------------------------
    def bootstrap(self):
        t0 = now()
        self.cluster.start()
        healthy_cluster(self.cluster)
        self.record("bootstrap_s", now() - t0)
        self.checker = pc.PrimaryChecker(self.cluster.nodes)
        self.checker.start()

    def memory(self, idle_seconds):
        rss, pss, private, cpu = [], [], [], []
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_of(pid):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        start = {n.name: cpu_of(n.process.pid) for n in self.cluster.nodes}
        time.sleep(idle_seconds)  # measuring idle CPU is the point: nothing is awaited here
        for n in self.cluster.nodes:
            cpu.append((cpu_of(n.process.pid) - start[n.name]) / idle_seconds * 100)
            with open(f"/proc/{n.process.pid}/smaps_rollup") as f:
                text = f.read()
            def kb(field):
                return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1))
            rss.append(kb("Rss") / 1024)
            pss.append(kb("Pss") / 1024)
            private.append((kb("Private_Clean") + kb("Private_Dirty")) / 1024)
        self.record("rss_mb", statistics.median(rss))
        self.record("pss_mb", statistics.median(pss))
        self.record("private_mb", statistics.median(private))
        self.record("idle_cpu_pct", statistics.median(cpu))

    def wrk(self, name, url, seconds=WRK_SECONDS):
        out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url], capture_output=True,
                             text=True, timeout=seconds + 30).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

        def pct(p):
            m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            return float(m.group(1)) * scale
        self.record(f"{name}_rps", rps)
        self.record(f"{name}_p50_ms", pct(50))
        self.record(f"{name}_p99_ms", pct(99))

    def rest(self):
        leader = healthy_cluster(self.cluster)
        replica = next(n for n in self.cluster.nodes if n is not leader)
        self.wrk("leader", leader.api_url + "/leader")
        self.wrk("replica", replica.api_url + "/replica")
        self.wrk("metrics", leader.api_url + "/metrics")
        self.cluster.etcd.freeze()
        try:
            self.wrk("leader_etcd_frozen", leader.api_url + "/leader", seconds=3)
        finally:
            self.cluster.etcd.thaw()
        healthy_cluster(self.cluster)

    def crash(self):
        leader = healthy_cluster(self.cluster)
        w = self.start_writer(leader)
        lease = leader_lease(self.cluster)
        t0 = now()
        leader.kill9()
        key_gone = KeyGoneWatcher(self.cluster, leader.name)
        expiry = LeaseExpiryWatcher(self.cluster, lease) if lease else None
        first = first_ack_after(w, t0, exclude_node=leader.name)
        self.record("crash_failover_s", first - t0)
        if expiry:
            expiry.stop()
            if expiry.expiry is not None:
                self.record("crash_after_lease_expiry_s", first - expiry.expiry)
        if key_gone.at is not None:
            self.record("crash_after_key_deleted_s", first - key_gone.at)
        key_gone.stop()
        self.finish_writer(w)
        self.rejoin(leader)

    def postmaster_crash(self):
        leader = healthy_cluster(self.cluster)
        w = self.start_writer(leader)
        t0 = now()
        os.kill(leader.postmaster_pid(), signal.SIGKILL)
        leader_200_while_down = 0
        deadline = t0 + 120
        while now() < deadline:
            wall0 = time.time() - (now() - t0)
            if any(at > wall0 for _, _, at in w.acked):
                break
            with contextlib.suppress(Exception):
                if leader.api("/leader", timeout=0.5)[0] == 200 and not leader.is_writable_primary():
                    leader_200_while_down += 1
            time.sleep(0.05)  # sampling interval of /leader while PostgreSQL is down
        first = first_ack_after(w, t0)
        self.record("postmaster_crash_writes_back_s", first - t0)
        self.record("leader_200_while_pg_down", leader_200_while_down)
        self.finish_writer(w)
        healthy_cluster(self.cluster)

    def sigterm(self):
        leader = healthy_cluster(self.cluster)
        w = self.start_writer(leader)
        t0 = now()
        leader.process.send_signal(signal.SIGTERM)
        first = first_ack_after(w, t0, exclude_node=leader.name)
        self.record("sigterm_handover_s", first - t0)
        self.finish_writer(w)
        leader.process.proc.wait(60)
        self.rejoin(leader)

    def freeze(self):
        leader = healthy_cluster(self.cluster)
        w = self.start_writer(leader)
        conn = leader.connect(timeout=1)
        ttl = PROFILES[self.profile]["ttl"]
        t0 = now()
        leader.signal_all(signal.SIGSTOP)
        first = first_ack_after(w, t0, exclude_node=leader.name, timeout=ttl * 4)
        self.record("freeze_new_primary_s", first - t0)
        lib.wait_until(lambda: now() - t0 > ttl + 3, ttl + 10, what="ttl + 3 s frozen")
        leader.signal_all(signal.SIGCONT)
        acked = pc.acks_after_wake(leader, conn)
        self.record("freeze_old_primary_acks_after_wake", len(acked))
        self.record("freeze_old_primary_writable_s", acked[-1] if acked else 0.0)
        self.finish_writer(w)
        self.rejoin(leader)

    def switchover(self):
        leader = healthy_cluster(self.cluster)
        candidate = next(n for n in self.cluster.nodes if n is not leader)
        w = self.start_writer(leader)
        t0 = time.time()
        status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name},
                                  timeout=120)
        if status != 200:
            raise ScenarioFailed(f"switchover answered {status}: {body}")
        lib.wait_until(lambda: any(n == candidate.name for _, n, at in w.acked if at > t0), 60,
                       what="writes on the new leader")
        time.sleep(0.5)  # keep writing a little past the switch so the gap is measured from both sides
        times = [at for _, _, at in w.acked if at > t0 - 1]
        self.record("switchover_write_gap_s", max(b - a for a, b in zip(times, times[1:])))
        self.finish_writer(w)
        healthy_cluster(self.cluster)

    def close(self):
        if self.checker:
            self.checker.stop()
            self.record("two_writable_primaries", len(self.checker.violations))
        self.record("lost_rows", self.lost_rows)
        self.cluster.stop()


SCENARIOS = ["memory", "rest", "crash", "postmaster_crash", "sigterm", "freeze", "switchover"]
# The default profile's long timings only change the failover figures; memory and REST throughput do not
# depend on them, so they are measured with the short profile only (keeps the whole run under 30 min).
PROFILE_SCENARIOS = {"short": SCENARIOS, "default": ["crash", "freeze", "switchover"]}


def run_round(daemon, profile, scenarios, idle_seconds):
    workdir = lib.make_postgres_dir("pgha-bench-")
    rnd = Round(daemon, profile, workdir)
    try:
        started = now()
        rnd.bootstrap()
        print(f"    bootstrap: {now() - started:.0f} s", flush=True)
        for s in scenarios:
            started = now()
            try:
                if s == "memory":
                    rnd.memory(idle_seconds)
                else:
                    getattr(rnd, s)()
            except Exception as e:  # noqa: BLE001 - a failed scenario is reported, the round goes on
                rnd.record(f"{s}_error", f"{type(e).__name__}: {e}"[:200])
                healed = False
                with contextlib.suppress(Exception):
                    for n in rnd.cluster.nodes:
                        if not n.daemon_alive():
                            n.stop()
                            n.start()
                    healthy_cluster(rnd.cluster, timeout=REPAIR_TIMEOUT)
                    healed = True
                if not healed:
                    # A cluster the daemon did not heal would only fail the rest of the round slowly.
                    for rest in scenarios[scenarios.index(s) + 1:]:
                        rnd.record(f"{rest}_error", f"not run: the cluster was not healthy after {s}")
                    print(f"    {s}: {now() - started:.0f} s (failed; rest of the round skipped)", flush=True)
                    break
            print(f"    {s}: {now() - started:.0f} s{' (failed)' if f'{s}_error' in rnd.results else ''}",
                  flush=True)
    except Exception as e:  # noqa: BLE001
        rnd.record("bootstrap_error", f"{type(e).__name__}: {e}"[:200])
    finally:
        rnd.close()
        if os.environ.get("PGHA_KEEP_TEST_DIRS"):
            print(f"    kept {workdir}")
        else:
            lib.remove_tree(workdir)
    return rnd.results


TARGETS = {
    # figure: (direction, pgha target, text)
    "rss_mb": ("lower", 5.0, "≤ 5 MB"),
    "leader_rps": ("higher", 20000, "≥ 20,000 req/s"),
    "leader_p99_ms": ("lower", 5.0, "≤ 5 ms"),
    "leader_etcd_frozen_rps": ("higher", 20000, "≥ 20,000 req/s"),
    "leader_etcd_frozen_p99_ms": ("lower", 5.0, "≤ 5 ms"),
    "crash_after_lease_expiry_s": ("lower", 0.5, "≤ 0.5 s"),
    "crash_after_key_deleted_s": ("lower", 0.5, "≤ 0.5 s"),
    "switchover_write_gap_s": ("lower", 0.5, "≤ 0.5 s"),
    "postmaster_crash_writes_back_s": ("lower", 1.0, "≤ 1 s"),
    "leader_200_while_pg_down": ("lower", 0, "0"),
    "freeze_old_primary_acks_after_wake": ("lower", 0, "0"),
    "freeze_old_primary_writable_s": ("lower", 0.05, "≤ 0.05 s"),
    "lost_rows": ("info", None, "0 in synchronous mode"),
    "two_writable_primaries": ("lower", 0, "0"),
}


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def median_of(rounds, key):
    vals = [r[key] for r in rounds if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def error_cell(rounds, key):
    errors = [r[key] for r in rounds if isinstance(r.get(key), str)]
    if not errors:
        return "none"
    text = "; ".join(sorted(set(errors)))[:160].replace("|", "/")
    return f"{len(errors)} of {len(rounds)} rounds: {text}"


def verdict(key, pgha, patroni):
    if key == "crash_failover_s" and pgha is not None and patroni is not None:
        return "met" if pgha <= patroni * 1.05 else "NOT met"
    t = TARGETS.get(key)
    if not t or t[0] == "info" or pgha is None:
        return "" if not t or t[0] == "info" else "NOT measured"
    ok = pgha <= t[1] if t[0] == "lower" else pgha >= t[1]
    return "met" if ok else "NOT met"


class LoadSampler(threading.Thread):
    """The 1-minute load average every 10 s of the run: other work on the machine skews the figures
    (the REST percentiles most), and the table says how busy the machine was."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self._stop_event = threading.Event()
        self.start()

    def run(self):
        while not self._stop_event.wait(10):
            self.samples.append(os.getloadavg()[0])

    def stop(self):
        self._stop_event.set()
        self.join(15)


def render(results, args, started, finished, load_samples):
    lines = []
    load = sorted(load_samples) or [os.getloadavg()[0]]
    lines.append(f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}; 1-minute load "
                 f"average during the run: median {statistics.median(load):.2f}, max {load[-1]:.2f}.")
    lines.append(f"Run: {started:%Y-%m-%d %H:%M} to {finished:%H:%M} UTC "
                 f"({(finished - started).total_seconds() / 60:.0f} min), {args.rounds} round(s) per "
                 f"daemon and profile, medians shown; daemons: {', '.join(args.daemons)}.")
    lines.append("")
    for profile in args.profiles:
        t = PROFILES[profile]
        lines.append(f"### Profile `{profile}` (ttl {t['ttl']}, loop_wait {t['loop_wait']}, "
                     f"retry_timeout {t['retry_timeout']})")
        lines.append("")
        lines.append("| figure | pgha | Patroni 3.0.2 | pgha / Patroni | target | verdict |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        keys = []
        for d in args.daemons:
            for r in results.get((d, profile), []):
                for k in r:
                    if k not in keys:
                        keys.append(k)
        for k in keys:
            if k.endswith("_error"):
                # a failed scenario: in the column of the daemon it failed under, with how often
                cells = [error_cell(results.get((d, profile), []), k) for d in ("pghad", "patroni")]
                lines.append(f"| {k} | {cells[0]} | {cells[1]} | | | |")
                continue
            a = median_of(results.get(("pghad", profile), []), k)
            b = median_of(results.get(("patroni", profile), []), k)
            ratio = fmt(a / b) if a is not None and b not in (None, 0) else "—"
            target = TARGETS.get(k, (None, None, ""))[2]
            if k == "crash_failover_s":
                target = "no slower than Patroni"
            lines.append(f"| {k} | {fmt(a)} | {fmt(b)} | {ratio} | {target} | {verdict(k, a, b)} |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="one round, short profile, crash scenario only")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--daemons", default="pghad,patroni")
    ap.add_argument("--profiles", default="short,default")
    ap.add_argument("--scenarios", default=None, help="comma list; default: all for the profile")
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--output", default=None, help="markdown file to write (default: docs/benchmarks.md, "
                                                   "not written in smoke mode)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.profiles, args.scenarios = 1, "short", args.scenarios or "crash"
    args.daemons = args.daemons.split(",")
    args.profiles = args.profiles.split(",")
    started = datetime.datetime.now(datetime.timezone.utc)
    load = LoadSampler()
    results = {}
    for rnd in range(args.rounds):
        for profile in args.profiles:
            scenarios = args.scenarios.split(",") if args.scenarios else PROFILE_SCENARIOS[profile]
            for daemon in args.daemons:
                print(f"round {rnd + 1}/{args.rounds}, {daemon}, profile {profile}: {', '.join(scenarios)}",
                      flush=True)
                r = run_round(daemon, profile, scenarios, args.idle_seconds)
                print("   ", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
                results.setdefault((daemon, profile), []).append(r)
    load.stop()
    table = render(results, args, started, datetime.datetime.now(datetime.timezone.utc), load.samples)
    print(table)
    output = args.output or (None if args.smoke else os.path.join(HERE, "..", "docs", "benchmarks.md"))
    if output:
        with open(os.path.join(HERE, "benchmarks-header.md")) as f:
            header = f.read()
        with open(output, "w") as f:
            f.write(header + "\n" + table + "\n")
    # In smoke mode (CI) any scenario that could not produce its figures fails the run, so the
    # benchmark cannot rot unnoticed; a full run reports errors in the table instead.
    failed = [k for rs in results.values() for r in rs for k in r if k.endswith("_error")]
    if args.smoke and failed:
        print(f"smoke run failed: {', '.join(sorted(set(failed)))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
