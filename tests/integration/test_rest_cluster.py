"""The REST API in real pghad clusters (etcd + PostgreSQL 15): TLS between members, reloads.

With restapi.certfile set, members advertise https api_urls, and the calls one node makes to another (the
leader's check of a switchover candidate, the leader race) must use the restapi TLS settings as Patroni's
daemon does (patroni-compat.md §3.8): the restapi certificate is the client certificate (needed with
verify_client: required), the chain is verified against restapi.cafile, the host name is not.
"""
import os
import signal
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
    try:
        status = lib.http_get(leader.api_url + "/patroni", context=anonymous)[0]
    except OSError:  # ssl.SSLError: Patroni's handshake demands the certificate
        status = "handshake refused"
    assert status in (403, "handshake refused")

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
    # pghad logs every failed peer call; a peer still starting may refuse a connection, but none may
    # fail the TLS handshake (EPROTO) or refuse the client certificate (403)
    for node in c.nodes:
        with open(os.path.join(node.dir, "daemon.log"), errors="replace") as f:
            failed = [line for line in f if "Request failed: GET https://" in line]
        assert not [line for line in failed if "Protocol error" in line or "HTTP status 403" in line], failed


def post_reload(url, user=None, password=None, context=None):
    import base64
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        return lib.http_get(url + "/reload", method="POST", headers=headers, context=context)[0]
    except OSError:
        return None


def reload_config(node, how, url=None):
    """Writes node.config and reloads it with SIGHUP or POST /reload to url (how: 'sighup' or the
    credentials)."""
    node.write_config()
    if how == "sighup":
        node.process.send_signal(signal.SIGHUP)
    else:
        assert post_reload(url, *how) == 202


def test_restapi_settings_apply_on_reload(cluster_factory, checker, workdir):
    certdir = os.path.join(workdir, "certs")
    os.makedirs(certdir)
    certs = make_certs(certdir)
    c = cluster_factory(n=1, local_extra={"restapi": {"authentication": {"username": "admin",
                                                                         "password": "old-pass"}}}).start()
    node = c.wait_for_leader(30)
    checker(c.nodes)
    url = node.api_url
    assert post_reload(url) == 401
    assert post_reload(url, "admin", "old-pass") == 202

    # authentication: the old password stops working, the new one works
    node.config["restapi"]["authentication"]["password"] = "new-pass"
    reload_config(node, "sighup")
    lib.wait_until(lambda: post_reload(url, "admin", "new-pass") == 202, 10, what="the new password accepted")
    assert post_reload(url, "admin", "old-pass") == 401

    # allowlist: 127.0.0.1 is no longer allowed (a host name only: nothing matches 127.0.0.1)
    node.config["restapi"]["allowlist"] = ["10.1.2.0/24"]
    reload_config(node, ("admin", "new-pass"), url)
    lib.wait_until(lambda: post_reload(url, "admin", "new-pass") == 403, 10, what="the allowlist applied")
    del node.config["restapi"]["allowlist"]
    reload_config(node, "sighup")
    lib.wait_until(lambda: post_reload(url, "admin", "new-pass") == 202, 10, what="the allowlist removed")

    # a certificate: the same port now speaks https (the reload asked through the REST API itself)
    node.config["restapi"].update({"certfile": certs["server.crt"], "keyfile": certs["server.key"],
                                   "keyfile_password": KEY_PASSWORD})
    reload_config(node, ("admin", "new-pass"), url)
    ctx = ssl.create_default_context(cafile=certs["ca.crt"])
    ctx.check_hostname = False
    https_url = url.replace("http://", "https://")
    lib.wait_until(lambda: post_reload(https_url, "admin", "new-pass", context=ctx) == 202, 10,
                   what="https on the same port")
    assert post_reload(url, "admin", "new-pass") is None  # plain HTTP gets no answer any more

    # an unusable certificate: logged, and the server keeps serving as it was
    with open(os.path.join(certdir, "garbage.crt"), "w") as f:
        f.write("not a certificate\n")
    os.chown(os.path.join(certdir, "garbage.crt"), *lib.postgres_ids())
    node.config["restapi"]["certfile"] = os.path.join(certdir, "garbage.crt")
    reload_config(node, "sighup")
    log = os.path.join(node.dir, "daemon.log")
    lib.wait_until(lambda: "could not be applied: still serving" in open(log, errors="replace").read(), 10,
                   what="the refused certificate logged")
    assert post_reload(https_url, "admin", "new-pass", context=ctx) == 202

    # a new listen address: the old port is closed, the new one serves
    new_port = lib.free_port()
    node.config["restapi"] = {"listen": f"127.0.0.1:{new_port}", "connect_address": f"127.0.0.1:{new_port}",
                              "authentication": {"username": "admin", "password": "new-pass"}}
    reload_config(node, "sighup")
    new_url = f"http://127.0.0.1:{new_port}"
    lib.wait_until(lambda: post_reload(new_url, "admin", "new-pass") == 202, 10, what="the new listen port")
    lib.wait_until(lambda: post_reload(https_url, "admin", "new-pass", context=ctx) is None, 15,
                   what="the old port closed")
    # the member key advertises the new api_url
    lib.wait_until(lambda: f'"api_url":"{new_url}/patroni"' in (c.key_value(f"members/{node.name}") or ""),
                   10, what="the new api_url in the member key")
