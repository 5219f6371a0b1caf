"""Replication over TLS with client certificates (pghad + etcd + PostgreSQL 15).

pg_hba.conf accepts TCP only as `hostssl ... clientcert=verify-ca`, so every connection between members
must carry the libpq keys of postgresql.authentication.<user> (sslmode, sslcert, sslkey, sslrootcert),
as Patroni's conn_kwargs does: pg_basebackup and primary_conninfo (replication user) and pg_rewind
(rewind user). This is how Patroni's own acceptance suite runs every feature.
"""
import os
import subprocess

import pgha_cluster as pc
import pgha_testlib as lib


def make_cert(d):
    """One self-signed certificate that serves as CA, server and client certificate (as Patroni's suite
    does), owned by postgres with a 0600 key, as both the server and libpq demand."""
    subprocess.run(["openssl", "req", "-nodes", "-new", "-x509", "-subj", "/CN=pgha-tls-test", "-days", "2",
                    "-keyout", "tls.key", "-out", "tls.crt"], check=True, capture_output=True, cwd=d)
    cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
    for p in (d, cert, key):
        os.chown(p, *lib.postgres_ids())
    os.chmod(key, 0o600)
    return cert, key


def tls_cluster(cluster_factory, workdir, n):
    certdir = os.path.join(workdir, "certs")
    os.makedirs(certdir)
    cert, key = make_cert(certdir)
    c = cluster_factory(n=n)
    tls = {"sslmode": "verify-ca", "sslrootcert": cert, "sslcert": cert, "sslkey": key}
    for node in c.nodes:
        pg = node.config["postgresql"]
        for user in pg["authentication"].values():
            user.update(tls)
        pg["parameters"].update({"ssl": "on", "ssl_ca_file": cert, "ssl_cert_file": cert, "ssl_key_file": key})
        pg["pg_hba"] = [
            "local all all trust",
            "local replication all trust",
            "hostssl replication replicator all md5 clientcert=verify-ca",
            "hostssl all all all md5 clientcert=verify-ca",
            "hostnossl all postgres 127.0.0.1/32 trust",  # the test's own queries (no certificate)
        ]
        node.config["bootstrap"]["initdb"] = [{"encoding": "UTF8"}, "data-checksums", {"auth-local": "trust"},
                                              {"auth-host": "md5"}]
        node.write_config()
    return c


def test_replica_clones_and_streams_over_tls_with_client_certificates(cluster_factory, checker, workdir):
    c = tls_cluster(cluster_factory, workdir, n=2)
    leader, replica = c.nodes
    leader.start()
    assert c.wait_for_leader(timeout=90) is leader
    checker(c.nodes)
    replica.start()
    c.wait_for_streaming(leader, 1, timeout=90)

    # the walsender's connection came with TLS and the client certificate
    rows = leader.query("SELECT s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
                        " WHERE r.application_name = %s", (replica.name,))
    assert rows == [(True, "/CN=pgha-tls-test")], rows
    with open(os.path.join(replica.data_dir, "postgresql.conf")) as f:
        conf = f.read()
    assert "sslmode=verify-ca" in conf and "sslcert=" in conf and "sslkey=" in conf, conf

    leader.query("CREATE TABLE tls_probe AS SELECT 1 AS x")
    lib.wait_until(lambda: replica.query("SELECT to_regclass('tls_probe') IS NOT NULL")[0][0], 30,
                   what="the table to replicate")
