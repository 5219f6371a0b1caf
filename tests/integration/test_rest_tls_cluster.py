"""The REST API's TLS settings in a real 3-node pghad cluster (etcd + PostgreSQL 15).

With restapi.certfile set, members advertise https api_urls, and the calls one node makes to another (the
leader's check of a switchover candidate, the leader race) must use the restapi TLS settings as Patroni's
daemon does (patroni-compat.md §3.8): the restapi certificate is the client certificate (needed with
verify_client: required), the chain is verified against restapi.cafile, the host name is not.
"""
import os
import ssl
import subprocess

import pgha_cluster as pc
import pgha_testlib as lib

KEY_PASSWORD = "k3y-pass"


def make_certs(d):
    """A CA; a server certificate whose only name is NOT 127.0.0.1 (the members' api_url host), with an
    encrypted key; a client certificate for the test itself. All readable by the postgres user."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=pgha test CA")
    for name, ext, key_opts in (("server", "subjectAltName=DNS:pgha-member.invalid",
                                 ["-passout", f"pass:{KEY_PASSWORD}"]),
                                ("client", "extendedKeyUsage=clientAuth", ["-nodes"])):
        run("req", "-newkey", "rsa:2048", *key_opts, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    paths = {n: os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}
    for p in paths.values():
        os.chown(p, *lib.postgres_ids())
    return paths


def client_context(certs):
    ctx = ssl.create_default_context(cafile=certs["ca.crt"])
    ctx.check_hostname = False  # the server certificate names pgha-member.invalid, not 127.0.0.1
    ctx.load_cert_chain(certs["client.crt"], certs["client.key"])
    return ctx


def test_tls_cluster_with_required_client_certificates(cluster_factory, checker, workdir):
    certdir = os.path.join(workdir, "certs")
    os.makedirs(certdir)
    certs = make_certs(certdir)
    restapi = {"certfile": certs["server.crt"], "keyfile": certs["server.key"],
               "keyfile_password": KEY_PASSWORD, "cafile": certs["ca.crt"], "verify_client": "required"}
    c, leader = pc.running_cluster(cluster_factory, checker, local_extra={"restapi": restapi},
                                   api_ssl_context=client_context(certs))

    # Without a client certificate every request is refused: peers must present theirs.
    anonymous = ssl.create_default_context(cafile=certs["ca.crt"])
    anonymous.check_hostname = False
    status, _ = lib.http_get(leader.api_url + "/patroni", context=anonymous)
    assert status == 403

    def cluster_with_lags():
        status, body = leader.api("/cluster")
        assert status == 200, body
        members = body["members"]
        # a member key gets its xlog_location a moment after the replica starts streaming
        return all(isinstance(m.get("lag"), int) for m in members if m["role"] != "leader") and members
    members = lib.wait_until(cluster_with_lags, 20, what="/cluster with a lag for every replica")
    assert sorted(m["name"] for m in members) == sorted(n.name for n in c.nodes)
    assert all(m["api_url"].startswith("https://127.0.0.1:") for m in members), members

    # The leader checks the candidate's GET /patroni over https with its client certificate before it
    # hands over: a failed peer call would leave the switchover undone.
    candidate = next(n for n in c.nodes if n is not leader)
    status, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name},
                              timeout=60)
    assert status == 200, body
    assert c.wait_for_leader(30).name == candidate.name
    for node in c.nodes:
        with open(os.path.join(node.dir, "daemon.log"), errors="replace") as f:
            log = f.read()
        assert "Request failed: GET https://" not in log, f"{node.name} failed a peer call"
