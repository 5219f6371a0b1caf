"""A whole HA cluster on loopback for integration tests and the benchmark: one etcd, N PostgreSQL 15
nodes, each supervised by `pghad` or, to compare behaviour side by side, by Patroni 3.0.2 fed the very
same generated YAML. Plus the two invariant checkers every HA test runs throughout:

* PrimaryChecker: polls pg_is_in_recovery() on every node every 100 ms and records any instant at which
  two nodes accept writes;
* AckWriter: commits one row every 20 ms through whichever node is the writable primary and records
  every acknowledged row, so a test can prove none was lost.
"""
import contextlib
import json
import os
import select
import signal
import threading
import time

import psycopg2
import psycopg2.extensions
import yaml

import pgha_testlib as lib

SHORT_TIMINGS = {"ttl": 6, "loop_wait": 1, "retry_timeout": 2}


def _wait_ready(conn, deadline):
    """Drives an asynchronous psycopg2 connection until its pending step completes, or raises
    TimeoutError at deadline. Blocking libpq calls cannot time out against a frozen server (its kernel
    still accepts and acknowledges our bytes), so every harness query goes through this."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("PostgreSQL did not answer in time")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)


class TimedCursor:
    def __init__(self, conn):
        self._conn = conn
        self._cur = conn.raw.cursor()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cur.close()

    def execute(self, sql, args=None):
        try:
            self._cur.execute(sql, args)
            _wait_ready(self._conn.raw, time.monotonic() + self._conn.timeout)
        except TimeoutError:
            self._conn.close()  # the connection is unusable once a query is abandoned midway
            raise

    @property
    def description(self):
        return self._cur.description

    def fetchone(self):
        return self._cur.fetchone()

    def fetchall(self):
        return self._cur.fetchall()


class TimedConnection:
    """An autocommit connection whose connect and every statement give up after `timeout` seconds, even
    when the server is frozen with SIGSTOP."""

    def __init__(self, timeout, **params):
        self.timeout = timeout
        self.raw = psycopg2.connect(async_=1, **params)
        try:
            _wait_ready(self.raw, time.monotonic() + timeout)
        except BaseException:
            self.raw.close()
            raise

    @property
    def closed(self):
        return bool(self.raw.closed)

    def cursor(self):
        return TimedCursor(self)

    def close(self):
        self.raw.close()


def node_config(name, scope, etcd_hosts, pg_port, api_port, workdir, timings=None, dcs_extra=None,
                local_extra=None):
    """Patroni-format YAML (as a dict) for one node on 127.0.0.1; pgha and Patroni both read it."""
    data_dir = os.path.join(workdir, name, "data")
    socket_dir = os.path.join(workdir, name, "sock")
    dcs = {
        **(timings or SHORT_TIMINGS),
        "maximum_lag_on_failover": 1048576,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "replica",
                "hot_standby": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "wal_log_hints": "on",
                "fsync": "off",               # test speed only: nothing here survives a host crash
                "shared_buffers": "16MB",
            },
        },
    }
    if dcs_extra:
        dcs.update(dcs_extra)
    cfg = {
        "scope": scope,
        "namespace": "/service/",
        "name": name,
        "restapi": {"listen": f"127.0.0.1:{api_port}", "connect_address": f"127.0.0.1:{api_port}"},
        "etcd3": {"hosts": list(etcd_hosts)},
        "bootstrap": {
            "dcs": dcs,
            "initdb": [{"encoding": "UTF8"}, "data-checksums", {"auth": "trust"}],
            "pg_hba": [
                "local all all trust",
                "host replication replicator 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 trust",
            ],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "data_dir": data_dir,
            "bin_dir": lib.PG_BIN_DIR,
            "pgpass": os.path.join(workdir, name, "pgpass"),
            "authentication": {
                "replication": {"username": "replicator", "password": "rep-pass"},
                "superuser": {"username": "postgres", "password": "postgres-pass"},
                "rewind": {"username": "rewind_user", "password": "rewind-pass"},
            },
            "parameters": {"unix_socket_directories": socket_dir},
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    if local_extra:
        for k, v in local_extra.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
    return cfg


class Node:
    """One member: its YAML, its supervising daemon (pghad or patroni) and its PostgreSQL."""

    def __init__(self, cluster, name, daemon):
        self.cluster = cluster
        self.name = name
        self.daemon = daemon
        self.pg_port = lib.free_port()
        self.api_port = lib.free_port()
        self.dir = os.path.join(cluster.workdir, name)
        os.makedirs(os.path.join(self.dir, "sock"), exist_ok=True)
        uid, gid = lib.postgres_ids()
        for d in (self.dir, os.path.join(self.dir, "sock")):
            os.chown(d, uid, gid)
        self.config = node_config(name, cluster.scope, [cluster.etcd.endpoint], self.pg_port, self.api_port,
                                  cluster.workdir, cluster.timings, cluster.dcs_extra, cluster.local_extra)
        self.config_path = os.path.join(self.dir, "config.yml")
        self.write_config()
        self.process = None

    @property
    def data_dir(self):
        return self.config["postgresql"]["data_dir"]

    @property
    def api_url(self):
        scheme = "https" if self.config["restapi"].get("certfile") else "http"
        return f"{scheme}://127.0.0.1:{self.api_port}"

    def write_config(self):
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config, f, sort_keys=False)
        os.chown(self.config_path, *lib.postgres_ids())

    def argv(self):
        if self.daemon == "patroni":
            return ["/usr/bin/python3", "/usr/bin/patroni", self.config_path]
        return [lib.binary("pghad"), self.config_path]

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
        self.process = lib.Process(lib.as_postgres_cmd(self.argv()), os.path.join(self.dir, "daemon.log"),
                                   env=env, cwd=self.dir)
        return self

    def daemon_alive(self):
        return self.process is not None and self.process.alive()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def postgres_pids(self):
        """The postmaster and all its descendants (backends, walsenders, ...), postmaster first."""
        pm = self.postmaster_pid()
        if not pm:
            return []
        pids, todo = [], [pm]
        while todo:
            pid = todo.pop(0)
            pids.append(pid)
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
        return pids

    def signal_all(self, sig):
        """Sends sig to the daemon and every PostgreSQL process of this node (all started by this
        test), as a host freeze or crash would hit them all."""
        pids = [self.process.pid] if self.daemon_alive() else []
        pids += self.postgres_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    def kill9(self):
        self.signal_all(signal.SIGKILL)
        if self.process:
            self.process.proc.wait(10)

    def kill9_daemon(self):
        """kill -9 of the supervising daemon alone: PostgreSQL keeps running, as after a crash of the
        daemon, `systemctl restart` with KillMode=process, or a binary upgrade."""
        self.process.proc.kill()
        self.process.proc.wait(10)
        self.process.log.close()

    def stop(self, timeout=60):
        if self.process:
            self.process.stop(timeout=timeout)
        # A daemon killed hard leaves PostgreSQL running: stop what this test started, by PID.
        pm = self.postmaster_pid()
        if pm:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pm, signal.SIGQUIT)
            with contextlib.suppress(Exception):
                lib.wait_until(lambda: not os.path.exists(f"/proc/{pm}"), 15, what="postmaster exit")

    def api(self, path, method="GET", body=None, timeout=2.0):
        data = json.dumps(body).encode() if body is not None else None
        status, reply = lib.http_get(self.api_url + path, timeout=timeout, method=method, data=data,
                                     headers={"Content-Type": "application/json"} if data else {},
                                     context=self.cluster.api_ssl_context)
        with contextlib.suppress(ValueError):
            return status, json.loads(reply)
        return status, reply

    def connect(self, timeout=2):
        """A TimedConnection (autocommit; connect and each statement time out after `timeout` s)."""
        return TimedConnection(timeout, host="127.0.0.1", port=self.pg_port, user="postgres",
                               dbname="postgres", connect_timeout=max(1, int(timeout)))

    def query(self, sql, args=None):
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def is_writable_primary(self):
        with contextlib.suppress(Exception):
            return self.query("SELECT NOT pg_is_in_recovery()")[0][0]
        return False


class Cluster:
    """etcd plus N nodes of one daemon kind, under one scope."""

    def __init__(self, workdir, n=3, daemon="pghad", scope="demo", timings=None, dcs_extra=None,
                 local_extra=None, etcd=None, api_ssl_context=None):
        self.workdir = workdir
        self.api_ssl_context = api_ssl_context  # how the test's own REST calls speak https
        self.scope = scope
        self.timings = timings or SHORT_TIMINGS
        self.dcs_extra = dcs_extra
        self.local_extra = local_extra
        self.own_etcd = etcd is None
        self.etcd = etcd or lib.Etcd(workdir).start()
        self.nodes = [Node(self, f"node{i + 1}", daemon) for i in range(n)]

    def start(self):
        for node in self.nodes:
            node.start()
        return self

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def key_kv(self, suffix):
        """etcd's record of /service/<scope>/<suffix> (value still base64, revisions, lease), or None."""
        reply = self.etcd.v3("kv/range", {"key": lib.b64(f"/service/{self.scope}/{suffix}")})
        kvs = reply.get("kvs") or []
        return kvs[0] if kvs else None

    def key_put(self, suffix, value):
        """Puts /service/<scope>/<suffix> = value as someone other than pghad would: a plain put, no lease."""
        self.etcd.v3("kv/put", {"key": lib.b64(f"/service/{self.scope}/{suffix}"), "value": lib.b64(value)})

    def key_value(self, suffix):
        """The raw value of /service/<scope>/<suffix> in etcd, or None when the key is absent."""
        kv = self.key_kv(suffix)
        return lib.unb64(kv.get("value", "")) if kv else None

    def leader_key(self):
        """The member name in the etcd leader key, or None."""
        return self.key_value("leader") or None

    def key_create_revision(self, suffix):
        """The etcd create_revision of /service/<scope>/<suffix> (0 when absent): it stays the same while
        the key is only renewed and changes whenever the key was deleted or expired and created again."""
        kv = self.key_kv(suffix)
        return int(kv.get("create_revision", 0)) if kv else 0

    def wait_for_leader(self, timeout=60, exclude=()):
        def check():
            name = self.leader_key()
            if name and name not in exclude:
                node = self.node(name)
                return node if node.is_writable_primary() else None
            return None
        return lib.wait_until(check, timeout, interval=0.05, what="a writable leader")

    def wait_for_streaming(self, leader, count, timeout=60):
        """Waits until `count` members (not a pg_basebackup's walsender) stream from leader."""
        names = [n.name for n in self.nodes]

        def check():
            rows = leader.query("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'"
                                " AND application_name = ANY(%s)", (names,))
            return len(rows) >= count and rows
        return lib.wait_until(check, timeout, interval=0.2, what=f"{count} streaming replicas")

    def stop(self):
        for node in self.nodes:
            node.stop()
        if self.own_etcd:
            self.etcd.stop()


class PrimaryChecker(threading.Thread):
    """Fails the test (via .violations) if two nodes are ever writable primaries at the same time."""

    def __init__(self, nodes, interval=0.1):
        super().__init__(daemon=True)
        self.nodes = nodes
        self.interval = interval
        self.violations = []
        self._stop_event = threading.Event()
        self._conns = {}

    def _writable(self, node):
        conn = self._conns.get(node.name)
        try:
            if conn is None or conn.closed:
                conn = node.connect(timeout=1)
                self._conns[node.name] = conn
            with conn.cursor() as cur:
                cur.execute("SELECT NOT pg_is_in_recovery()")
                return cur.fetchone()[0]
        except Exception:  # noqa: BLE001 - an unreachable node is not writable
            with contextlib.suppress(Exception):
                conn.close()
            self._conns.pop(node.name, None)
            return False

    def run(self):
        while not self._stop_event.is_set():
            writable = [n.name for n in self.nodes if self._writable(n)]
            if len(writable) > 1:
                self.violations.append((time.time(), writable))
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join(10)
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()


class AckWriter(threading.Thread):
    """Commits one row every `interval` seconds through the current leader and records every commit the
    server acknowledged (id, node, time)."""

    def __init__(self, cluster, interval=0.02):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.interval = interval
        self.acked = []
        self.errors = 0
        self._stop_event = threading.Event()
        self._conn = None
        self._conn_node = None
        # Ids start at the wall clock in microseconds, so writers that follow one another on the same
        # table never reuse an id, even one a failover lost.
        self._next_id = int(time.time() * 1e6)

    def setup(self, leader):
        leader.query("CREATE TABLE IF NOT EXISTS pgha_acks (id bigint PRIMARY KEY, node text, at timestamptz)")

    def _connection(self):
        name = self.cluster.leader_key()
        if not name:
            return None, None
        if self._conn is None or self._conn.closed or self._conn_node != name:
            with contextlib.suppress(Exception):
                self._conn and self._conn.close()
            self._conn = self.cluster.node(name).connect(timeout=1)
            self._conn_node = name
        return self._conn, name

    def run(self):
        while not self._stop_event.is_set():
            committed = False
            try:
                conn, name = self._connection()
                if conn:
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO pgha_acks VALUES (%s, %s, now())", (self._next_id, name))
                    self.acked.append((self._next_id, name, time.time()))
                    self._next_id += 1
                    committed = True
            except Exception:  # noqa: BLE001 - failures are expected during failover
                self.errors += 1
                # The row may still commit later (e.g. a commit waiting for a synchronous standby):
                # never reuse its id.
                self._next_id += 1
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
            # Without a leader or after a failure, retry at a bounded rate even when writing flat out.
            self._stop_event.wait(self.interval if committed else max(self.interval, 0.02))

    def stop(self):
        self._stop_event.set()
        self.join(10)

    def missing_on(self, node):
        """Ids acknowledged before this call and absent from node's table. The writer keeps committing
        while the table is read: a row acknowledged after the read began is not in its snapshot yet, so
        the acknowledgements are copied first and only they are checked."""
        acked = list(self.acked)
        present = {r[0] for r in node.query("SELECT id FROM pgha_acks")}
        return [a for a in acked if a[0] not in present]


def acks_after_wake(node, conn, seconds=3.0):
    """Right after node was woken (SIGCONT), commits one row after another through it for `seconds`,
    first over conn (a connection opened before the freeze, or None), reconnecting after each failure;
    returns the offsets in seconds from the call at which a commit was acknowledged (ids -1, -2, ...).
    conn is closed on return."""
    woke, acked = time.monotonic(), []
    while time.monotonic() - woke < seconds:
        try:
            if conn is None:
                conn = node.connect(timeout=1)
            with conn.cursor() as cur:
                cur.execute("INSERT INTO pgha_acks VALUES (-1 - %s, 'old', now())", (len(acked),))
            acked.append(time.monotonic() - woke)
        except Exception:  # noqa: BLE001 - blocked or refused writes are what a fenced primary gives
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
    with contextlib.suppress(Exception):
        conn and conn.close()
    return acked


def freeze_past_ttl_then_wake(c, node):
    """Freezes node's whole host (SIGSTOP to its daemon and every PostgreSQL process) until another node
    leads, wakes it (SIGCONT) and returns (the new leader, acks_after_wake() offsets: the writes a client
    connected before the freeze still got through the woken old primary)."""
    conn = node.connect(timeout=1)  # a client connected before the freeze, as applications are
    node.signal_all(signal.SIGSTOP)
    try:
        new = c.wait_for_leader(30, exclude=(node.name,))
    finally:
        node.signal_all(signal.SIGCONT)
    return new, acks_after_wake(node, conn)


def running_cluster(cluster_factory, checker, **kwargs):
    """A started cluster (cluster_factory's keyword arguments) with a writable leader and every other
    node streaming and answering /replica 200, watched by the two-primaries checker; returns (cluster,
    leader). A replica streams a moment before its daemon has finished the clone and reports it running:
    until then the leader counts it unhealthy (a switchover finds no candidate)."""
    c = cluster_factory(**kwargs).start()
    leader = c.wait_for_leader(30)
    c.wait_for_streaming(leader, len(c.nodes) - 1, 30)

    def replica_ok(node):
        with contextlib.suppress(Exception):
            return node.api("/replica")[0] == 200
        return False
    lib.wait_until(lambda: all(replica_ok(n) for n in c.nodes if n is not leader), 30,
                   what="every replica's daemon reporting it running")
    checker(c.nodes)
    return c, leader


def start_writer(c, leader, interval=0.02):
    """An AckWriter committing through the cluster's leader every interval seconds (0: as fast as it
    can), once it has its first 10 acknowledgements."""
    w = AckWriter(c, interval)
    w.setup(leader)
    w.start()
    lib.wait_until(lambda: len(w.acked) >= 10, 10, what="first acknowledged writes")
    return w
