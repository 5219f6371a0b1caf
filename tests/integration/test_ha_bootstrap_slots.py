"""pghad end to end: what bootstrap.users and bootstrap.pg_hba from the YAML create, and the replication
slots the primary keeps (member slots, permanent `slots`, `ignore_slots`, Patroni semantics).
PGHA_TEST_DAEMON=patroni runs the same tests against Patroni 3.0.2."""
import contextlib

import psycopg2
import pytest

import pgha_cluster as pc
import pgha_testlib as lib


def connect(node, user, password):
    return contextlib.closing(psycopg2.connect(host="127.0.0.1", port=node.pg_port, user=user,
                                               password=password, dbname="postgres", connect_timeout=5))


def query(node, sql):
    with connect(node, "postgres", "postgres-pass") as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_bootstrap_users_and_pg_hba_from_yaml(cluster_factory):
    # initdb's own lines come first (as in Patroni, bootstrap.pg_hba is appended to them): md5 over TCP
    local = {"bootstrap": {
        "initdb": [{"encoding": "UTF8"}, "data-checksums", {"auth-local": "trust"}, {"auth-host": "md5"}],
        "pg_hba": [
            "host replication replicator 127.0.0.1/32 md5",
            "host all admin 127.0.0.1/32 md5",
        ],
        "users": {"admin": {"password": "admin-pass", "options": ["createrole", "createdb"]}},
    }}
    c = cluster_factory(n=1, local_extra=local).start()
    node = c.nodes[0]
    lib.wait_until(lambda: c.leader_key() == node.name and node.api("/primary")[0] == 200, 60,
                   what="the bootstrapped leader")
    rows = query(node, "SELECT rolcanlogin, rolcreaterole, rolcreatedb, rolsuper FROM pg_roles "
                       "WHERE rolname = 'admin'")
    assert rows == [(True, True, True, False)]
    rules = query(node, "SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules "
                        "WHERE error IS NULL ORDER BY line_number")
    assert ("host", ["all"], ["admin"], "127.0.0.1", "md5") in rules, rules
    assert ("host", ["replication"], ["replicator"], "127.0.0.1", "md5") in rules, rules
    with connect(node, "admin", "admin-pass") as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("admin",)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(node, "admin", "wrong").__enter__()


def physical_slots(node):
    return {r[0] for r in node.query("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical'")}


def test_member_permanent_and_ignored_slots(cluster_factory, checker):
    dcs = {"slots": {"perm_phys": {"type": "physical"}, "perm_untyped": None},
           "ignore_slots": [{"name": "operator_slot", "type": "physical"}, {"name": "other_logical",
                                                                             "type": "logical"}]}
    c, leader = pc.running_cluster(cluster_factory, checker, n=3, dcs_extra=dcs)
    members = {n.name for n in c.nodes if n is not leader}
    lib.wait_until(lambda: physical_slots(leader) == members | {"perm_phys", "perm_untyped"}, 30,
                   what="member and permanent slots on the primary")
    # the replicas stream through their slots
    lib.wait_until(lambda: {r[0] for r in leader.query(
        "SELECT slot_name FROM pg_replication_slots WHERE active")} >= members, 30, what="active member slots")

    # an operator's slot matched by ignore_slots stays; an unknown one (other_logical's matcher is for
    # logical slots only) is dropped the next time the primary reconciles its slots (a config change)
    for name in ("operator_slot", "other_logical", "stray"):
        leader.query("SELECT pg_create_physical_replication_slot(%s)", (name,))
    status, body = leader.api("/config", "PATCH", {"slots": {"perm_two": {"type": "physical"}}})
    assert status == 200, body
    want = members | {"perm_phys", "perm_untyped", "perm_two", "operator_slot"}
    lib.wait_until(lambda: physical_slots(leader) == want, 30, what="slots reconciled after the config change")


def test_node_without_bootstrap_section_waits_for_another_to_bootstrap(cluster_factory):
    """Only a node whose configuration has a `bootstrap` section races for `initialize` (Patroni 3.0.2's
    "'bootstrap' in self.patroni.config"); one without waits and then clones from the node that has it.
    Before the fix pghad treated every node as having the section and bootstrapped from node2."""
    c = cluster_factory(n=2)
    node1, node2 = c.nodes
    del node2.config["bootstrap"]
    node2.write_config()
    node2.start()
    lib.wait_until(lambda: "waiting for leader to bootstrap" in node2.process.output(), 30,
                   what="node2 waiting for a leader to bootstrap")
    assert c.key_value("initialize") is None and c.leader_key() is None
    node1.start()
    leader = c.wait_for_leader(60)
    assert leader is node1
    c.wait_for_streaming(node1, 1, 60)
