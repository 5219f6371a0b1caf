"""Shared helpers for pgha's integration tests: free loopback ports, waiting with deadlines, a real
etcd started on 127.0.0.1, and running programs as Debian's `postgres` user (PostgreSQL refuses root).

Rules every test follows: only 127.0.0.0/8, ports taken through a lock file plus a bind probe, wait for
conditions with a deadline (never a guessed sleep), end only processes we started, by PID.
"""
import contextlib
import fcntl
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

SOURCE_DIR = os.environ.get("PGHA_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("PGHA_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
PORT_LOCK_DIR = "/tmp/pgha-test-ports"
PG_BIN_DIR = "/usr/lib/postgresql/15/bin"


def binary(name):
    """Path of a pgha binary in the build tree (pghad, pghactl, a test helper)."""
    path = os.path.join(BUILD_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built; run cmake --build first")
    return path


_held_port_locks = []


def free_port():
    """A loopback TCP port no other test run holds: an flock on a per-port file (kept for the life of
    this process) plus a bind probe for anything else listening there."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    for _ in range(1000):
        port = random.randint(20000, 45000)
        fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                os.close(fd)
                continue
        _held_port_locks.append(fd)
        return port
    raise RuntimeError("no free loopback port found")


def wait_until(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value, which is returned; fails after timeout
    seconds naming what was awaited and the last exception seen."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - remembered and reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def postgres_ids():
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def make_postgres_dir(prefix="pgha-test-"):
    """A fresh temporary directory owned by postgres (mode 0700), for data dirs, configs and logs."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    uid, gid = postgres_ids()
    os.chown(path, uid, gid)
    os.chmod(path, 0o755)
    return path


def as_postgres_cmd(argv):
    """argv wrapped so it runs as the postgres user when we are root (CI), unchanged otherwise."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + list(argv)


def http_get(url, timeout=2.0, method="GET", data=None, headers=None):
    """(status, body bytes) of an HTTP request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Process:
    """A child process we started and may end: by PID, never by name."""

    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends sig, waits up to timeout, then SIGKILLs. Returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Etcd:
    """A single-member etcd 3.4 on 127.0.0.1 with its own data directory and free ports."""

    def __init__(self, workdir, name="etcd1"):
        self.workdir = workdir
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = os.path.join(workdir, f"{name}.data")
        self.process = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self):
        return f"http://{self.endpoint}"

    def start(self, timeout=30.0):
        client = self.url
        peer = f"http://127.0.0.1:{self.peer_port}"
        argv = ["etcd", "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
                "--initial-cluster-token", f"pgha-test-{self.client_port}",
                "--logger", "zap", "--log-outputs", "stderr"]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        self.process = Process(argv, os.path.join(self.workdir, f"{self.name}.log"), env=env)
        wait_until(self.healthy, timeout, what=f"etcd {self.endpoint} healthy")
        return self

    def healthy(self):
        status, body = http_get(f"{self.url}/health", timeout=1.0)
        return status == 200 and json.loads(body).get("health") == "true"

    def freeze(self):
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        if self.process:
            self.process.stop()

    def v3(self, path, body):
        """POST to the v3 JSON gateway; returns the decoded reply."""
        status, reply = http_get(f"{self.url}/v3/{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {status}: {reply!r}")
        return json.loads(reply)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


# ---- etcd helpers (added by the etcd module's tests) ----

def b64(s):
    """Standard padded base64 of a str, as the etcd v3 JSON gateway wants keys and values."""
    import base64
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    import base64
    return base64.b64decode(s).decode()


def etcd_get_prefix(server, prefix):
    """{key: (value, lease)} of every key under prefix, read through server's v3 gateway."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    reply = server.v3("kv/range", {"key": b64(prefix), "range_end": b64(end)})
    return {unb64(kv["key"]): (unb64(kv.get("value", "")), int(kv.get("lease", "0")))
            for kv in reply.get("kvs", [])}


class EtcdCluster:
    """A 3-member etcd cluster on 127.0.0.1 (each member an Etcd-like object with .endpoint, .process)."""

    def __init__(self, workdir, size=3):
        self.workdir = workdir
        self.members = [Etcd(workdir, name=f"etcd{i + 1}") for i in range(size)]

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def start(self, timeout=60.0):
        initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        for m in self.members:
            client = m.url
            peer = f"http://127.0.0.1:{m.peer_port}"
            argv = ["etcd", "--name", m.name, "--data-dir", m.data_dir,
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", f"pgha-test-{self.members[0].client_port}",
                    "--heartbeat-interval", "50", "--election-timeout", "500",
                    "--logger", "zap", "--log-outputs", "stderr"]
            m.process = Process(argv, os.path.join(self.workdir, f"{m.name}.log"))
        for m in self.members:
            wait_until(m.healthy, timeout, what=f"etcd member {m.endpoint} healthy")
        return self

    def stop(self):
        for m in self.members:
            m.stop()
