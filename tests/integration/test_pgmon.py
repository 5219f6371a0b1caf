"""pgmon and pgconn against real PostgreSQL 15 (run as postgres, Unix socket in the test directory):
primary and streaming-replica facts, a stopped server, a kill -9'd postmaster held as an unreaped
zombie, and a SIGSTOP-frozen server that must cost a query its deadline but never stall the loop."""
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

import pgha_testlib as lib

ESRCH = 3
ETIMEDOUT = 110


def tool_argv(server, mode, *extra, host=None):
    return lib.as_postgres_cmd([lib.binary("pgha-test-pgmon"), mode, "--host", host or server.socket_dir,
                                "--port", str(server.port), "--user", "postgres", *extra])


def probe(server, count=1, timeout_ms=2000, host=None):
    """Runs `count` probes in a fresh tool process; returns the parsed PgStatus objects."""
    out = subprocess.run(tool_argv(server, "probe", "--data-dir", server.data_dir, "--count", str(count),
                                   "--interval-ms", "50", "--timeout-ms", str(timeout_ms), host=host),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


class ProbeStream:
    """One long-running tool process probing every interval; lines are collected with the monotonic time
    they arrived, so a test can tell how fast a change was noticed."""

    def __init__(self, server, interval_ms=50, timeout_ms=1000):
        self.proc = subprocess.Popen(
            tool_argv(server, "probe", "--data-dir", server.data_dir, "--count", "100000000",
                      "--interval-ms", str(interval_ms), "--timeout-ms", str(timeout_ms)),
            stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), json.loads(line)))

    def wait_for(self, predicate, timeout=10.0, after=0.0, what="probe result"):
        """The first (arrival time, status) that arrived after `after` and satisfies predicate."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                t, status = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {what} within {timeout}s") from None
            if t >= after and predicate(status):
                return t, status

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def primary(workdir):
    server = lib.PgTestServer(workdir, "primary").initdb().start()
    yield server
    server.cleanup()


def wal_lsn(server):
    return int(server.psql("SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')"))


def test_primary_status(primary):
    s = probe(primary)[0]
    assert s["running"] is True and s["postmaster"] == "running"
    assert s["postmaster_pid"] == primary.postmaster_pid()
    assert s["pidfile_status"] == "ready"
    assert s["query_ok"] is True, s["probe_error_message"]
    assert s["probe_error"] == 0 and s["not_responding_since"] == 0
    assert s["queried_at"] >= s["process_checked_at"] > 0
    assert s["in_recovery"] is False
    assert s["timeline"] == 1
    assert s["server_version"] == int(primary.psql("SHOW server_version_num"))
    assert s["system_identifier"] == primary.controldata()["Database system identifier"]
    assert s["postmaster_start_time"].startswith(primary.psql(
        "SELECT pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'YYYY-MM-DD HH24:MI:SS')"))
    assert s["wal_write_lsn"] > 0 and s["wal_position"] == s["wal_write_lsn"]
    assert s["replication"] == [] and s["pending_restart"] is False

    before = s["wal_write_lsn"]
    primary.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
    written = wal_lsn(primary)
    assert written > before
    s2 = probe(primary)[0]
    assert s2["wal_write_lsn"] >= written
    assert s2["wal_flush_lsn"] >= written

    primary.psql("ALTER SYSTEM SET shared_buffers = '24MB'")
    primary.psql("SELECT pg_catalog.pg_reload_conf()")
    lib.wait_until(lambda: probe(primary)[0]["pending_restart"], timeout=10, what="pending_restart")


def test_replica_status(primary):
    replica = primary.make_replica("replica1").start()
    try:
        lib.wait_until(lambda: primary.psql(
            "SELECT state FROM pg_stat_replication WHERE application_name = 'replica1'") == "streaming",
            timeout=30, what="replica1 streaming")
        primary.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        target = wal_lsn(primary)

        def caught_up():
            s = probe(replica)[0]
            return s if s["query_ok"] and s["replay_lsn"] >= target else None

        s = lib.wait_until(caught_up, timeout=30, what="replica replayed the primary's WAL")
        assert s["running"] is True and s["in_recovery"] is True
        assert s["receive_lsn"] >= target
        assert s["wal_position"] == max(s["receive_lsn"], s["replay_lsn"])
        assert s["wal_write_lsn"] == 0
        assert s["receiver_status"] == "streaming"
        assert s["receiver_port"] == primary.port and s["receiver_host"] == "127.0.0.1"
        assert s["timeline"] == 1
        assert s["system_identifier"] == primary.controldata()["Database system identifier"]
        assert s["replay_paused"] is False and s["replay_pause_state"] == "not paused"
        assert s["replay_timestamp"] is not None and s["replay_timestamp_epoch"] > 0

        p = probe(primary)[0]
        rows = [r for r in p["replication"] if r["application_name"] == "replica1"]
        assert len(rows) == 1, p["replication"]
        assert rows[0]["state"] == "streaming" and rows[0]["sync_state"] == "async"
        assert rows[0]["client_addr"] == "127.0.0.1" and rows[0]["usename"] == "postgres"
        assert rows[0]["flush_lsn"] >= target

        replica.psql("SELECT pg_catalog.pg_wal_replay_pause()")
        s = lib.wait_until(lambda: (lambda x: x if x["replay_pause_state"] == "paused" else None)(
            probe(replica)[0]), timeout=10, what="replay paused")
        assert s["replay_paused"] is True
        replica.psql("SELECT pg_catalog.pg_wal_replay_resume()")

        # promoted, the replica becomes a primary on timeline 2 (read from its WAL file name)
        replica.run([os.path.join(lib.PG_BIN_DIR, "pg_ctl"), "-D", replica.data_dir, "-w", "promote"])
        s = lib.wait_until(lambda: (lambda x: x if x["query_ok"] and not x["in_recovery"] else None)(
            probe(replica)[0]), timeout=30, what="promoted replica out of recovery")
        assert s["timeline"] == 2, s
        assert s["wal_write_lsn"] >= target and s["receiver_status"] is None
    finally:
        replica.cleanup()


def test_replica_keeps_its_received_timeline_without_a_walreceiver(primary):
    """A cascading standby follows its upstream's promotion onto timeline 2; when that upstream goes
    away, the standby's walreceiver with it, the probe still reports timeline 2 (the last one received
    under this postmaster), not the last restartpoint's timeline 1."""
    middle = primary.make_replica("middle").start()
    leaf = None
    stream = None
    try:
        lib.wait_until(lambda: primary.psql(
            "SELECT state FROM pg_stat_replication WHERE application_name = 'middle'") == "streaming",
            timeout=30, what="middle streaming")
        leaf = middle.make_replica("leaf").start()
        stream = ProbeStream(leaf)
        stream.wait_for(lambda s: s["receiver_status"] == "streaming" and s["timeline"] == 1, timeout=30,
                        what="leaf streaming from middle on timeline 1")
        middle.run([os.path.join(lib.PG_BIN_DIR, "pg_ctl"), "-D", middle.data_dir, "-w", "promote"])
        _, s = stream.wait_for(lambda s: s["receiver_timeline"] == 2, timeout=30,
                               what="leaf receiving timeline 2")
        middle.stop(mode="immediate", timeout=30)
        _, s = stream.wait_for(lambda s: s["query_ok"] and s["receiver_status"] is None, timeout=30,
                               what="leaf without a walreceiver")
        assert s["checkpoint_timeline"] == 1, s  # no restartpoint yet: what the probe used to report
        assert s["timeline"] == 2, s
    finally:
        if stream:
            stream.stop()
        if leaf:
            leaf.cleanup()
        middle.cleanup()


def test_stopped_server_and_restart(primary):
    stream = ProbeStream(primary)
    try:
        stream.wait_for(lambda s: s["query_ok"], what="a healthy probe")
        primary.stop()
        stopped = time.monotonic()
        t, s = stream.wait_for(lambda s: not s["running"], after=stopped, what="running=false")
        assert t - stopped < 1.0, f"noticed {t - stopped:.3f}s after pg_ctl stop returned"
        assert s["postmaster"] == "no-pidfile"
        assert s["query_ok"] is False and s["probe_error"] == -ESRCH
        assert s["not_running_since"] > 0 and s["not_responding_since"] > 0
        assert "in_recovery" not in s and "wal_write_lsn" not in s  # no stale facts

        primary.start()
        started = time.monotonic()
        t, s = stream.wait_for(lambda s: s["query_ok"], after=started, what="probe after restart")
        assert s["running"] and s["not_running_since"] == 0 and s["not_responding_since"] == 0
        assert t - started < 5.0
    finally:
        stream.stop()


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_kill9_postmaster_zombie(workdir):
    # The postmaster runs as OUR child and we do not wait() for it: after kill -9 it stays a zombie
    # that still passes kill(pid, 0) - exactly what PID 1 does when it reaps late.
    server = lib.PgTestServer(workdir, "zombie").initdb().start(foreground=True)
    stream = ProbeStream(server)
    try:
        stream.wait_for(lambda s: s["query_ok"], what="a healthy probe")
        pid = server.postmaster_pid()
        assert pid == server.child.pid
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        t, s = stream.wait_for(lambda s: not s["running"], after=killed, what="running=false after kill -9")
        assert s["postmaster"] == "zombie", s
        assert proc_state(pid) == "Z"       # still unreaped: the check was not fooled by kill(pid, 0)
        os.kill(pid, 0)
        assert t - killed < 1.0
        assert s["query_ok"] is False

        server.child.wait(10)                # reap it
        server.child = None
        stream.wait_for(lambda s: s["postmaster"] == "gone", what="gone after reaping")
    finally:
        stream.stop()
        server.cleanup()


def test_sigstop_query_deadline_and_responsive_loop(primary):
    tool = subprocess.Popen(tool_argv(primary, "stall", "--timeout-ms", "1000", "--tick-ms", "10"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    frozen = []
    try:
        ready = json.loads(tool.stdout.readline())
        assert ready["event"] == "ready"
        frozen = primary.process_tree()
        assert ready["backend_pid"] in frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        tool.stdin.write("go\n")
        tool.stdin.flush()
        result = json.loads(tool.stdout.readline())

        # the in-flight query ends at its deadline, by tearing the connection down
        q = result["query"]
        assert q["error"] == -ETIMEDOUT, q
        assert 950 <= q["elapsed_ms"] < 1500, q
        # reconnecting to the frozen postmaster ends at the connect deadline, not in a blocked connect()
        rc = result["reconnect"]
        assert rc["error"] == -ETIMEDOUT and "connecting" in rc["message"], rc
        assert 950 <= rc["elapsed_ms"] < 1500, rc
        # meanwhile the 10 ms timer kept firing: one blocking call would have made it ~1000 ms late
        assert result["max_lateness_ms"] < 250, result
        assert result["ticks"] >= 100, result

        # pgmon itself under the freeze: process alive (stopped, not dead), query answered by deadline
        s = probe(primary, timeout_ms=500)[0]
        assert s["running"] is True and s["postmaster"] == "running"
        assert s["query_ok"] is False and s["probe_error"] == -ETIMEDOUT, s
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        tool.wait(30)
    assert tool.returncode == 0
    assert probe(primary)[0]["query_ok"] is True


def test_pgconn_query_sequence(primary):
    """pgconn on its own: parameters, errors, server-side statement_timeout, pipelining, large payloads
    both ways, and a backend terminated under an idle connection (noticed, back-off, reconnect)."""
    out = subprocess.run(tool_argv(primary, "queries"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    steps = {}
    for line in out.stdout.splitlines():
        s = json.loads(line)
        steps[s["step"]] = s
    assert steps["param"]["value"] == "42" and steps["param"]["error"] == 0
    assert steps["server_error"]["error"] == -121  # -EREMOTEIO
    assert steps["server_error"]["message"] == "division by zero"
    assert steps["server_error"]["state_after"] == "idle"
    assert steps["after_error"]["value"] == "still usable"
    st = steps["statement_timeout"]
    assert st["error"] == -ETIMEDOUT and "statement timeout" in st["message"], st
    assert 250 <= st["elapsed_ms"] < 2000 and st["state_after"] == "idle"
    assert [steps[f"pipelined_{i}"]["value"] for i in range(3)] == ["1", "2", "3"]
    assert steps["large_result"]["value_length"] == 4000000
    assert steps["large_param"]["value"] == str(4 * 1024 * 1024)
    assert steps["kill_backend"]["value"] == "t"
    assert "closed the connection" in steps["killed_idle"]["message"]
    assert steps["killed_idle"]["state_after"] == "backoff"
    assert steps["during_backoff"]["error"] == -107  # -ENOTCONN, refused at once
    assert steps["reconnected"]["value"] == "reconnected"


def test_connect_by_host_name(primary):
    """A host name (not a socket directory) is looked up with getaddrinfo_a and connected over TCP."""
    s = probe(primary, host="localhost")[0]
    assert s["query_ok"] is True, s["probe_error_message"]
    assert s["system_identifier"] == primary.controldata()["Database system identifier"]
