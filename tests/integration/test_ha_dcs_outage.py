"""etcd stopped for 3 x ttl and started again under a running cluster (issue 18), as Patroni 3.0.2 does it:
the primary demotes itself offline (`Ha.demote('offline')`: fast stop, then `follow(None)`) and at once
runs again as a read-only standby following nobody, so reads keep working through the outage; when etcd
returns (its leases re-armed, the leader key still ours) it promotes once. etcd + real PostgreSQL 15
nodes (ttl 6, loop_wait 1, retry_timeout 2), the two-writable-primaries checker and the acknowledged-row
writer throughout, plus a client writing straight to the old primary: nothing it acknowledges may come
after the lease deadline (at most ttl after etcd stopped)."""
import contextlib
import signal
import threading
import time

import pgha_cluster as pc
import pgha_testlib as lib

TTL = pc.SHORT_TIMINGS["ttl"]
LOOP_WAIT = pc.SHORT_TIMINGS["loop_wait"]
# From the demotion (the old primary no longer writable) to it answering read-only queries: Patroni's
# fast stop plus start, about 2 s here.
READ_ONLY_WITHIN = 4.0
# From etcd's return to the replicas streaming from the leader again.
STREAMING_WITHIN = 5.0


class DirectWriter(threading.Thread):
    """Commits a row every 20 ms straight into one node (never asking etcd who leads), reconnecting after
    every failure, and records when each commit was acknowledged (time.monotonic())."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.acked = []
        self._stop_event = threading.Event()

    def run(self):
        conn, n = None, 0
        while not self._stop_event.is_set():
            try:
                if conn is None:
                    conn = self.node.connect(timeout=1)
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO outage_direct VALUES (%s)", (n,))
                self.acked.append(time.monotonic())
                n += 1
            except Exception:  # noqa: BLE001 - refused writes are what a demoted primary gives
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
            self._stop_event.wait(0.02)

    def stop(self):
        self._stop_event.set()
        self.join(10)


def pg_state(node):
    """'writable', 'read-only' (a SELECT works, in recovery) or 'down'."""
    with contextlib.suppress(Exception):
        return "read-only" if node.query("SELECT pg_is_in_recovery()")[0][0] else "writable"
    return "down"


def insert_error(node):
    """The error an INSERT into node gets, or None when it committed."""
    try:
        node.query("INSERT INTO outage_direct VALUES (-1)")
    except Exception as e:  # noqa: BLE001 - the error is the result
        return str(e)
    return None


def timeline(node):
    return int(node.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0])


def etcd_outage(c, leader, writer, outage=3 * TTL, kill=False):
    """Stops etcd (SIGTERM, or SIGKILL with kill) for `outage` seconds with a writing client on leader,
    then starts it again; checks reads and writes during the outage and the recovery after it. Returns
    the new leader."""
    leader.query("CREATE TABLE IF NOT EXISTS outage_direct (n bigint)")
    leader.query("CHECKPOINT")
    tl = timeline(leader)
    direct = DirectWriter(leader)
    direct.start()
    lib.wait_until(lambda: len(direct.acked) >= 5, 10, what="first direct writes")

    stopped = time.monotonic()
    if kill:
        c.etcd.process.stop(sig=signal.SIGKILL)
    else:
        c.etcd.stop()
    states = []  # (seconds after etcd stopped, state of the old primary)
    write_error = None
    try:
        while time.monotonic() - stopped < outage:
            states.append((time.monotonic() - stopped, pg_state(leader)))
            for n in c.nodes:
                if n is not leader:
                    assert pg_state(n) != "writable", f"{n.name} writable while etcd is down"
            time.sleep(0.1)
        if states[-1][1] == "read-only":
            write_error = insert_error(leader)
    finally:
        restarting = time.monotonic()
        c.etcd.start()
    back = time.monotonic()
    print("old primary during the outage:",
          " ".join(f"{t:.1f}:{s}" for i, (t, s) in enumerate(states) if i == 0 or states[i - 1][1] != s))

    demoted = next((t for t, s in states if s != "writable"), None)
    assert demoted is not None, "the old primary stayed writable for the whole outage"
    late = [t - stopped for t in direct.acked if stopped + TTL < t < restarting]
    assert not late, f"writes acknowledged past the lease deadline, at {late[:5]} s after etcd stopped"
    read_only = next((t for t, s in states if t > demoted and s == "read-only"), None)
    assert read_only is not None, (f"the old primary never answered read-only queries during the outage "
                                   f"(demoted {demoted:.1f} s after etcd stopped)")
    print(f"demoted {demoted:.2f} s after etcd stopped, read-only {read_only - demoted:.2f} s later")
    assert read_only - demoted <= READ_ONLY_WITHIN, \
        f"read-only only {read_only - demoted:.2f} s after the demotion"
    after = [s for t, s in states if t > read_only]
    assert set(after) <= {"read-only"}, f"the old primary did not stay read-only: {sorted(set(after))}"
    assert write_error and "read-only" in write_error, \
        f"a write on the old primary while etcd was down: {write_error!r}"

    new = c.wait_for_leader(3 * TTL)
    took = time.monotonic() - back
    print(f"writable leader {new.name} {took:.2f} s after etcd's return")
    assert took <= TTL + 2 * LOOP_WAIT, f"writable leader only {took:.2f} s after etcd's return"
    direct.stop()
    assert timeline(new) <= tl + 1, f"timeline {tl} -> {timeline(new)}: more than one promotion"
    c.wait_for_streaming(new, len(c.nodes) - 1, STREAMING_WITHIN)
    print(f"replicas streaming {time.monotonic() - back:.2f} s after etcd's return")
    # Promoted once and staying so: no fencing right after the promotion, no second promotion.
    time.sleep(2 * LOOP_WAIT)
    assert c.wait_for_leader(LOOP_WAIT).name == new.name, "the leader changed after etcd's return"
    assert timeline(new) <= tl + 1, f"timeline {tl} -> {timeline(new)}: more than one promotion"
    lib.wait_until(lambda: len(writer.acked) > 0 and writer.acked[-1][2] > time.time() - 1, 10,
                   what="acknowledged writes through the new leader")
    return new


def test_etcd_outage_primary_serves_reads_then_leads_again(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    writer = pc.start_writer(c, leader)
    try:
        etcd_outage(c, leader, writer)
    finally:
        writer.stop()


def test_etcd_outage_sync_mode_loses_no_acknowledged_row(cluster_factory, checker):
    c, leader = pc.running_cluster(cluster_factory, checker, n=3, dcs_extra={"synchronous_mode": True})
    lib.wait_until(lambda: (c.key_value("sync") or "").count("node") >= 2, 15,
                   what="a synchronous standby in the sync key")
    writer = pc.start_writer(c, leader)
    try:
        new = etcd_outage(c, leader, writer)
    finally:
        writer.stop()
    missing = writer.missing_on(new)
    assert missing == [], f"{len(missing)} acknowledged rows lost: {missing[:5]}"


def test_etcd_killed_and_restarted_after_ttl(cluster_factory, checker):
    """etcd killed (-9) and started again after one ttl: the old primary's local lease deadline has passed
    by then, while etcd re-arms the lease on its start, so the key is still ours; it is taken again only
    once the keep-alive renewed the lease, and the node promotes once."""
    c, leader = pc.running_cluster(cluster_factory, checker, n=2)
    writer = pc.start_writer(c, leader)
    try:
        etcd_outage(c, leader, writer, outage=TTL, kill=True)
    finally:
        writer.stop()
