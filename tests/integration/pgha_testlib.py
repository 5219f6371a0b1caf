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


def ephemeral_port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first, last = (int(v) for v in f.read().split())
            return first, last
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback TCP port no other test run holds: an flock on a per-port file (kept for the life of
    this process) plus a bind probe for anything else listening there."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    # Below Linux's ephemeral range (32768-60999 by default): a port handed out here is bound only
    # later, by PostgreSQL or a daemon, and an outgoing connection must not take it in between.
    low, high = 10000, min(32000, ephemeral_port_range()[0] - 1)
    for _ in range(1000):
        port = random.randint(low, high)
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


def http_get(url, timeout=2.0, method="GET", data=None, headers=None, context=None):
    """(status, body bytes) of an HTTP request (context: an ssl.SSLContext for https URLs); HTTP errors are
    returned, not raised."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
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


class NotifySocket:
    """A systemd-style notification socket (AF_UNIX datagrams) to hand to a daemon as NOTIFY_SOCKET, so a
    test sees READY=1, RELOADING=1, STOPPING=1, STATUS= and WATCHDOG=1 exactly as systemd would. The
    socket lives in a directory the postgres user can reach and is writable by everyone."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.setblocking(False)
        self.messages = []

    def env(self, base=None):
        """base (default os.environ) plus NOTIFY_SOCKET pointing here."""
        return dict(base if base is not None else os.environ, NOTIFY_SOCKET=self.path)

    def poll(self):
        """Every message received so far (each a dict of its KEY=value lines), oldest first."""
        while self.sock is not None:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            fields = {}
            for line in data.decode(errors="replace").splitlines():
                key, _, value = line.partition("=")
                fields[key] = value
            self.messages.append(fields)
        return self.messages

    def seen(self, key, value=None):
        """The first message carrying key (with that value, if given), or None."""
        for m in self.poll():
            if key in m and (value is None or m[key] == value):
                return m
        return None

    def close(self):
        """Stops listening; the messages received until now stay available to poll() and seen()."""
        if self.sock is None:
            return
        self.poll()
        self.sock.close()
        self.sock = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class PgTestServer:
    """A bare PostgreSQL 15 server for module tests (no pghad): its own data directory, socket directory
    (unix_socket_directories) and free port, run as the postgres user. start() goes through pg_ctl;
    start(foreground=True) runs the postmaster as our own child instead, so a test can hold it as an
    unreaped zombie after kill -9. make_replica() clones it with pg_basebackup -R into a streaming
    standby whose walreceiver reports application_name = its name (through cluster_name)."""

    def __init__(self, workdir, name="pg1"):
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = self.dir
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.child = None  # Popen of a foreground postmaster
        os.makedirs(self.dir, exist_ok=True)
        uid, gid = postgres_ids()
        os.chown(self.dir, uid, gid)

    def run(self, argv, timeout=120, check=True):
        """Runs argv as postgres; returns stdout. Raises with stderr on failure when check."""
        r = subprocess.run(as_postgres_cmd(argv), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def _settings(self):
        return (f"\nport = {self.port}\nunix_socket_directories = '{self.socket_dir}'\n"
                f"listen_addresses = '127.0.0.1'\ncluster_name = '{self.name}'\nfsync = off\n"
                "shared_buffers = 16MB\nmax_wal_senders = 5\nwal_level = replica\n")

    def initdb(self):
        self.run([os.path.join(PG_BIN_DIR, "initdb"), "-D", self.data_dir, "-A", "trust", "-U", "postgres",
                  "--no-sync", "--no-instructions"])
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write(self._settings())
        return self

    def start(self, foreground=False, timeout=60):
        if foreground:
            log = open(self.log_path, "ab")
            self.child = subprocess.Popen(
                as_postgres_cmd([os.path.join(PG_BIN_DIR, "postgres"), "-D", self.data_dir]),
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
            wait_until(self.ready, timeout, what=f"{self.name} accepting connections")
        else:
            self.run([os.path.join(PG_BIN_DIR, "pg_ctl"), "-D", self.data_dir, "-l", self.log_path, "-w",
                      "-t", str(int(timeout)), "start"], timeout=timeout + 10)
        return self

    def stop(self, mode="fast", timeout=60):
        self.run([os.path.join(PG_BIN_DIR, "pg_ctl"), "-D", self.data_dir, "-m", mode, "-w",
                  "-t", str(int(timeout)), "stop"], timeout=timeout + 10, check=False)
        if self.child:
            self.child.wait(timeout)
            self.child = None

    def ready(self):
        r = subprocess.run(as_postgres_cmd([os.path.join(PG_BIN_DIR, "pg_isready"), "-q", "-h",
                                            self.socket_dir, "-p", str(self.port)]))
        return r.returncode == 0

    def postmaster_pid(self):
        """The pid postmaster.pid names, or None without a pid file."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline())
        except (FileNotFoundError, ValueError):
            return None

    def process_tree(self):
        """The postmaster's pid followed by its children's (from /proc, no name matching)."""
        pid = self.postmaster_pid()
        if pid is None:
            return []
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid] + [int(p) for p in f.read().split()]

    def psql(self, sql, dbname="postgres"):
        return self.run(["psql", "-X", "-A", "-t", "-q", "-h", self.socket_dir, "-p", str(self.port),
                         "-U", "postgres", "-d", dbname, "-v", "ON_ERROR_STOP=1", "-c", sql]).strip()

    def controldata(self):
        """pg_controldata as a dict (LANG=C)."""
        out = subprocess.run(as_postgres_cmd([os.path.join(PG_BIN_DIR, "pg_controldata"), self.data_dir]),
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, LANG="C", LC_ALL="C")).stdout
        pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
        return {k.strip(): v.strip() for k, v in pairs}

    def make_replica(self, name):
        """A streaming standby of this (running) server, not yet started."""
        replica = PgTestServer(self.workdir, name)
        self.run([os.path.join(PG_BIN_DIR, "pg_basebackup"), "-D", replica.data_dir, "-h", "127.0.0.1",
                  "-p", str(self.port), "-U", "postgres", "-R", "-X", "stream", "--no-sync",
                  "-c", "fast"], timeout=300)
        with open(os.path.join(replica.data_dir, "postgresql.conf"), "a") as f:
            f.write(replica._settings())
        return replica

    def cleanup(self):
        """Stops whatever we started, whatever state it is in (SIGCONT first if frozen)."""
        with contextlib.suppress(Exception):
            for pid in self.process_tree():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        self.stop(mode="immediate", timeout=30)
        if self.child:
            with contextlib.suppress(Exception):
                self.child.kill()
                self.child.wait(10)
            self.child = None

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

    def followers(self):
        """The members that are not the raft leader, by each member's own /v3/maintenance/status."""
        result = []
        for m in self.members:
            status = m.v3("maintenance/status", {})
            if status["header"]["member_id"] != status["leader"]:
                result.append(m)
        return result

    def stop(self):
        for m in self.members:
            m.stop()


def haproxy_config(ports, servers):
    """conf/haproxy.cfg made runnable here: the listen ports replaced (ports: {5000: p, 5001: p, 5002: p,
    7000: p}), each server's data and check ports replaced (servers: [(name, data_port, check_port)]),
    and the global user/group/syslog lines dropped (tests run HAProxy in the foreground as root)."""
    import re
    with open(os.path.join(SOURCE_DIR, "conf", "haproxy.cfg")) as f:
        text = f.read()
    text = re.sub(r"^\s*(user|group|log /dev/log).*\n", "", text, flags=re.M)
    text = re.sub(r"^\s*log global\n", "", text, flags=re.M)
    for public, port in ports.items():
        text = text.replace(f"bind *:{public}", f"bind 127.0.0.1:{port}")
    assert text.count("server node1 ") == 3
    by_name = {name: (data, check) for name, data, check in servers}

    def server_line(m):
        data, check = by_name[m.group(1)]
        return f"server {m.group(1)} 127.0.0.1:{data} check port {check}"

    return re.sub(r"server (node\d) 127\.0\.0\.1:\d+ check port \d+", server_line, text)


class HAProxy:
    """Debian's haproxy in the foreground with haproxy_config(); ports[5000..5002] are the public ones."""

    def __init__(self, workdir, servers):
        import shutil
        self.ports = {p: free_port() for p in (5000, 5001, 5002, 7000)}
        self.config_path = os.path.join(workdir, "haproxy.cfg")
        with open(self.config_path, "w") as f:
            f.write(haproxy_config(self.ports, servers))
        binary_path = shutil.which("haproxy") or "/usr/sbin/haproxy"
        subprocess.run([binary_path, "-c", "-f", self.config_path], check=True, capture_output=True)
        self.process = Process([binary_path, "-db", "-f", self.config_path], os.path.join(workdir, "haproxy.log"))

    def stop(self):
        self.process.stop()


def promtool_path():
    """Path of promtool (Debian's prometheus package, installed by scripts/install-deps.sh), or None."""
    return shutil.which("promtool")


def promtool_check_metrics(body):
    """promtool's findings on a /metrics body, or None when promtool (Debian's prometheus package) is
    missing. Fails on a parse error; Patroni's metric names are kept on purpose, so the only findings
    allowed are the "_total" lints on its counters, which are returned."""
    import re
    promtool = promtool_path()
    if not promtool:
        return None
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode()
    # exit 0: clean, 3: lint findings only, 1: the text could not be parsed
    assert p.returncode in (0, 3), out
    assert "error while linting" not in out, out
    findings = [line for line in out.splitlines() if line.strip()]
    for line in findings:
        assert re.match(r'^patroni_\w+ counter metrics should have "_total" suffix$', line), line
    return findings
