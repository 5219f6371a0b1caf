"""REST requests the HA engine carries out, at their edges. PGHA_TEST_DAEMON=patroni runs the same tests
against Patroni 3.0.2."""
import pgha_testlib as lib


def test_restart_with_a_timeout_too_long_for_microseconds_waits_for_the_restart(cluster_factory):
    """POST /restart's "timeout" is seconds; 6253446240987538 s (exact as a JSON double) times 10^6 wraps to 2 ms in 64 bits.
    Before the fix pghad answered "postgres is still starting" (503) at once; Patroni (and now pghad)
    waits for the restart and answers 200."""
    c = cluster_factory(n=1).start()
    node = c.wait_for_leader(60)
    pid = node.postmaster_pid()
    status, body = node.api("/restart", "POST", {"timeout": 6253446240987538}, timeout=60)
    assert (status, body.strip()) == (200, b"restarted successfully"), body
    lib.wait_until(lambda: node.postmaster_pid() not in (None, pid), 10, what="a new postmaster")
