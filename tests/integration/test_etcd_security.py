"""etcd authentication (username/password, token re-authentication) and TLS (CA, client certificate)
against a real etcd 3.4."""
import json
import os
import signal
import ssl
import subprocess
import urllib.request
import uuid

import pgha_testlib as lib


def run_tool(*args, timeout=60):
    return subprocess.run([lib.binary("pgha-test-etcd"), *args], capture_output=True, text=True,
                          timeout=timeout)


def enable_auth(etcd):
    etcd.v3("auth/role/add", {"name": "root"})
    etcd.v3("auth/user/add", {"name": "root", "password": "rootpw"})
    etcd.v3("auth/user/grant", {"user": "root", "role": "root"})
    etcd.v3("auth/enable", {})


def test_username_password_and_reauthentication(etcd):
    enable_auth(etcd)
    sc = "a" + uuid.uuid4().hex[:8]
    base = ["--endpoints", etcd.endpoint, "--scope", sc]

    out = run_tool(*base, "--user", "root", "--password", "rootpw", "write-cluster")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run_tool(*base, "--user", "root", "--password", "rootpw", "read-cluster-json")
    assert out.returncode == 0, out.stdout + out.stderr
    view = json.loads(out.stdout)
    assert view["leader"] == "node1" and set(view["members"]) == {"node1", "node2"}

    out = run_tool(*base, "--user", "root", "--password", "wrong", "read-cluster-json")
    assert out.returncode != 0
    assert "authentication failed" in out.stdout, out.stdout

    out = run_tool(*base, "read-cluster-json")
    assert out.returncode != 0
    assert "user name is empty" in out.stdout, out.stdout

    # etcd's simple tokens die with the server: after a restart the client must re-authenticate.
    with open(os.path.join(etcd.workdir, "load.err"), "w+") as err:
        load = subprocess.Popen([lib.binary("pgha-test-etcd"), *base, "--user", "root", "--password",
                                 "rootpw", "--use-proxies", "--timeout-ms", "1000", "--duration-ms",
                                 "5000", "load"], stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert json.loads(load.stdout.readline())["started"]
            etcd.process.send_signal(signal.SIGKILL)
            etcd.process.proc.wait(10)
            etcd.start()  # /health answers without a token in 3.4
            stdout, _ = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        err.seek(0)
        stderr = err.read()
    res = json.loads(stdout.splitlines()[-1])
    assert res["failed"] > 0
    assert res["ok_after_last_failure"] > 20, stderr[-2000:]
    assert res["active_at_end"] == 0


def make_certs(d):
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=pgha-test-ca")
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}" if name == "server" else "/CN=root")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf")


def test_tls_with_ca_and_client_certificate(workdir):
    proc, port = start_tls_etcd(workdir)
    c = lambda n: os.path.join(workdir, n)  # noqa: E731
    try:
        sc = "s" + uuid.uuid4().hex[:8]
        base = ["--endpoints", f"127.0.0.1:{port}", "--protocol", "https", "--cacert", c("ca.pem"),
                "--scope", sc]
        tls = ["--cert", c("client.pem"), "--key", c("client.key")]
        out = run_tool(*base, *tls, "write-cluster")
        assert out.returncode == 0, out.stdout + out.stderr
        out = run_tool(*base, *tls, "read-cluster-json")
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["leader"] == "node1"

        # Without the client certificate the server refuses us; without the CA we refuse the server.
        out = run_tool(*base, "read-cluster-json")
        assert out.returncode != 0
        out = run_tool("--endpoints", f"127.0.0.1:{port}", "--protocol", "https", "--scope", sc, *tls,
                       "read-cluster-json")
        assert out.returncode != 0
    finally:
        proc.stop()


def start_tls_etcd(workdir):
    """A one-member etcd serving https with client-certificate authentication; returns (process, port)."""
    make_certs(workdir)
    port, peer = lib.free_port(), lib.free_port()
    url = f"https://127.0.0.1:{port}"
    c = lambda n: os.path.join(workdir, n)  # noqa: E731
    argv = ["etcd", "--name", "tls1", "--data-dir", c("tls.data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"tls1=http://127.0.0.1:{peer}",
            "--cert-file", c("server.pem"), "--key-file", c("server.key"),
            "--trusted-ca-file", c("ca.pem"), "--client-cert-auth",
            "--logger", "zap", "--log-outputs", "stderr"]
    proc = lib.Process(argv, c("tls.log"))
    ctx = ssl.create_default_context(cafile=c("ca.pem"))
    ctx.load_cert_chain(c("client.pem"), c("client.key"))

    def healthy():
        with urllib.request.urlopen(f"{url}/health", timeout=1, context=ctx) as r:
            return json.loads(r.read())["health"] == "true"
    try:
        lib.wait_until(healthy, 30, what="TLS etcd healthy")
    except Exception:
        proc.stop()
        raise
    return proc, port


def test_tls_errors_name_their_cause(workdir):
    """A TLS failure says why (libcurl's error text), not only "Protocol error": the CA file that
    cannot be read, the client certificate file, the server certificate that does not verify, the
    client certificate the server asked for."""
    proc, port = start_tls_etcd(workdir)
    c = lambda n: os.path.join(workdir, n)  # noqa: E731
    sc = "e" + uuid.uuid4().hex[:8]
    base = ["--endpoints", f"127.0.0.1:{port}", "--protocol", "https", "--scope", sc,
            "--timeout-ms", "3000"]
    tls = ["--cert", c("client.pem"), "--key", c("client.key")]

    def error_of(*args):
        out = run_tool(*base, *args, "read-cluster-json")
        assert out.returncode != 0, out.stdout
        return json.loads(out.stdout.splitlines()[-1])["error"]
    try:
        ok = run_tool(*base, "--cacert", c("ca.pem"), *tls, "read-cluster-json")
        assert ok.returncode == 0, ok.stdout + ok.stderr  # the set-up itself works
        missing_ca = c("no-such-ca.pem")
        e = error_of("--cacert", missing_ca, *tls)
        assert missing_ca in e and "Protocol error: " in e, e
        missing_cert = c("no-such-client.pem")
        e = error_of("--cacert", c("ca.pem"), "--cert", missing_cert, "--key", c("client.key"))
        assert missing_cert in e, e
        e = error_of(*tls)  # the system CA store does not know our CA
        assert "certificate" in e.lower() and "Protocol error: " in e, e
        e = error_of("--cacert", c("ca.pem"))  # the server requires a client certificate
        assert "certificate" in e.lower(), e
    finally:
        proc.stop()
