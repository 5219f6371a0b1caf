"""The watchdog under pghad with Patroni's `driver: testing` (a FIFO that records every activation,
keep-alive and close): armed with timeout ttl - safety_margin when the node takes the leader key, fed
from the lease renewal (so never while the daemon is frozen); a required watchdog that cannot be armed
keeps the node from ever taking the leader key (a first node cancels its bootstrap and exits, as Patroni)."""
import os
import re
import signal
import threading
import time

import pytest

import pgha_cluster as pc
import pgha_testlib as lib

TIMINGS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 2}


class FifoReader(threading.Thread):
    """Holds the read end of the watchdog FIFO open and records (monotonic time, bytes) per read."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        os.mkfifo(path, 0o666)
        os.chmod(path, 0o666)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.events = []
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                data = b""
            if data:
                self.events.append((time.monotonic(), data.decode(errors="replace")))
            else:
                time.sleep(0.02)

    def text(self):
        return "".join(d for _, d in self.events)

    @staticmethod
    def _pings(data):
        return re.sub(r"Ctimeout=\d+\n", "", data).count("1")

    def pings(self):
        return self._pings(self.text())

    def pings_between(self, start, end):
        return sum(self._pings(d) for t, d in self.events if start <= t <= end)

    def stop(self):
        self.stopping = True
        self.join(2)
        os.close(self.fd)


def make_cluster(workdir, device, mode="required"):
    return pc.Cluster(workdir, n=1, timings=TIMINGS,
                      local_extra={"watchdog": {"mode": mode, "driver": "testing", "device": device,
                                                "safety_margin": 5}})


def test_watchdog_armed_with_ttl_minus_margin_and_not_fed_while_frozen(workdir):
    fifo = FifoReader(os.path.join(workdir, "watchdog.fifo"))
    fifo.start()
    c = make_cluster(workdir, fifo.path)
    try:
        c.start()
        leader = c.wait_for_leader(60)
        lib.wait_until(lambda: "Ctimeout=15\n" in fifo.text(), 10, what="watchdog activation")
        lib.wait_until(lambda: fifo.pings() >= 2, 30, what="keep-alives")
        # Freeze the daemon only (PostgreSQL keeps running): no keep-alive may reach the device.
        leader.process.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(3 * TIMINGS["loop_wait"] + 1)  # a span long enough for several renewals, by design
        woke = time.monotonic()
        leader.process.proc.send_signal(signal.SIGCONT)
        assert fifo.pings_between(frozen_at + 0.1, woke) == 0, fifo.events
        lib.wait_until(lambda: fifo.pings_between(woke, time.monotonic()) >= 1, 15,
                       what="keep-alives after waking")
        assert c.leader_key() == leader.name
    finally:
        c.stop()
        fifo.stop()
    # a clean stop closes the device with the magic character
    assert fifo.text().endswith("V"), fifo.text()[-20:]


def fifo_without_reader(workdir):
    """A watchdog device that exists and is writable (so it looks usable) but cannot be armed: opening
    a FIFO for writing fails with ENXIO while nobody reads it, as /dev/watchdog fails with EBUSY while
    another process holds it."""
    path = os.path.join(workdir, "watchdog-no-reader.fifo")
    os.mkfifo(path, 0o666)
    os.chmod(path, 0o666)
    return path


def daemon_log(node):
    with open(os.path.join(node.dir, "daemon.log"), errors="replace") as f:
        return f.read()


@pytest.mark.parametrize("device", ["missing", "fifo-without-reader"])
def test_required_watchdog_that_cannot_be_armed_cancels_the_bootstrap(workdir, device):
    """As Patroni's post_bootstrap: a new cluster's first node whose required watchdog cannot be armed
    (no device, or one that exists and looks usable but cannot be opened) never takes the leader key;
    it cancels the bootstrap (initialize key removed, data directory moved aside, not deleted) and exits 1."""
    path = os.path.join(workdir, "no-such-watchdog") if device == "missing" else fifo_without_reader(workdir)
    c = make_cluster(workdir, path)
    node = c.nodes[0]
    try:
        c.start()
        while node.daemon_alive():
            assert c.leader_key() is None, "a node whose required watchdog cannot be armed took the lock"
            assert not node.is_writable_primary() or c.leader_key() is None
            time.sleep(0.1)
        assert node.process.proc.returncode == 1
        log = daemon_log(node)
        assert "Cancelling bootstrap because watchdog activation failed" in log, log[-3000:]
        assert "Failed to bootstrap cluster" in log, log[-3000:]
        assert c.leader_key() is None and not c.key_value("initialize")
        assert not os.path.exists(node.data_dir) and os.path.isdir(node.data_dir + ".failed")
    finally:
        c.stop()


def test_required_watchdog_that_fails_to_arm_does_not_promote_after_failover(workdir):
    """node1 (no watchdog) leads; node2 requires a watchdog whose device cannot be armed. When node1 dies
    node2 may win the race (its device looked usable), but must give the key back instead of promoting."""
    timings = {"ttl": 10, "loop_wait": 1, "retry_timeout": 2}
    c = pc.Cluster(workdir, n=2, timings=timings)
    node1, node2 = c.nodes
    node2.config["watchdog"] = {"mode": "required", "driver": "testing", "device": fifo_without_reader(workdir),
                                "safety_margin": 5}
    node2.write_config()
    try:
        node1.start()
        assert c.wait_for_leader(60) is node1
        node2.start()
        c.wait_for_streaming(node1, 1, 60)
        node1.kill9()
        deadline = time.monotonic() + 3 * timings["ttl"]
        while time.monotonic() < deadline:
            assert not node2.is_writable_primary(), "promoted without the required watchdog"
            if "Not promoting self because watchdog could not be activated" in daemon_log(node2):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("node2 never tried to lead")
        lib.wait_until(lambda: node2.api("/patroni")[1].get("watchdog_failed") is True, 10,
                       what="watchdog_failed advertised")
        # It released the key and does not race again while its watchdog stays unusable.
        lib.wait_until(lambda: c.leader_key() is None, 10, what="the leader key released")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert c.leader_key() is None and not node2.is_writable_primary()
            time.sleep(0.2)
    finally:
        c.stop()


def test_watchdog_closed_while_paused_and_armed_again_on_resume(workdir):
    """Patroni's acceptance expectation (compat §8.4): pause closes the watchdog with `V` within a couple
    of seconds (nothing is fenced while paused), resume arms and feeds it again."""
    fifo = FifoReader(os.path.join(workdir, "watchdog.fifo"))
    fifo.start()
    c = make_cluster(workdir, fifo.path)
    try:
        c.start()
        leader = c.wait_for_leader(60)
        lib.wait_until(lambda: fifo.pings() >= 2, 30, what="keep-alives")
        status, body = leader.api("/config", "PATCH", {"pause": True})
        assert status == 200, body
        paused = time.monotonic()
        lib.wait_until(lambda: fifo.text().endswith("V"), 5, interval=0.05, what="the magic close on pause")
        assert time.monotonic() - paused < 3
        time.sleep(3 * TIMINGS["loop_wait"])  # a span with several ticks, by design: none may feed it
        assert fifo.text().endswith("V"), fifo.text()[-20:]
        closed_len = len(fifo.text())
        status, body = leader.api("/config", "PATCH", {"pause": None})
        assert status == 200, body
        lib.wait_until(lambda: "Ctimeout=15\n" in fifo.text()[closed_len:] and
                       FifoReader._pings(fifo.text()[closed_len:]) >= 1, 15, what="armed and fed after resume")
    finally:
        c.stop()
        fifo.stop()
