"""Issue 19 against a real pghad leader (etcd, PostgreSQL): 2,000 idle connections, a slowloris of 500
sockets and a connect-and-close flood, one after the other, with GET /leader every 50 ms; the attack
helpers and the checks are test_rest_load.py's."""
import test_rest_load as load


def setup_module():
    load.setup_module()  # the descriptor limit pghad and the attackers inherit


def test_pghad_leader_answers_under_abuse(cluster_factory):
    """The same attacks, one after the other, against a real pghad leader (etcd, PostgreSQL): /leader
    keeps answering, and the daemon keeps the leader key throughout."""
    c = cluster_factory(n=1).start()
    leader = c.wait_for_leader(60)
    for mode, count in load.ATTACKS:
        load.check_health_under(leader.api_port, leader.process.pid, mode, count)
        assert c.leader_key() == leader.name, f"the leader key was lost during the {mode}"
