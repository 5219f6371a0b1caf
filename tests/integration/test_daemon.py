"""The pghad daemon shell, run as a real process: command line, exit statuses, Patroni-format log lines,
SIGHUP reloads (good and broken configurations), graceful SIGTERM/SIGINT, refusal to run as root, and
the systemd notifications (READY/RELOADING/STOPPING/WATCHDOG) received on a notification socket."""
import os
import re
import signal
import subprocess

import pytest

import pgha_testlib as lib

# Patroni's default layout: "%(asctime)s %(levelname)s: %(message)s", asctime with milliseconds.
LOG_LINE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:DEBUG|INFO|WARNING|ERROR|CRITICAL): "


def minimal_config(name="node1", api_port=None, level="INFO", data_dir="/tmp/unused-data", extra="",
                   etcd_port=None, pg_port=None):
    """A minimal loopback configuration with every key Patroni's validator requires. Every port comes
    from free_port() unless given, so a system etcd or PostgreSQL on the default ports (2379, 5432) is
    never contacted; a test that rewrites the file passes the same ports again."""
    api_port = api_port or lib.free_port()
    etcd_port = etcd_port or lib.free_port()
    pg_port = pg_port or lib.free_port()
    return f"""scope: daemon-test
namespace: /service/
name: {name}
log:
  level: {level}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data_dir}
  authentication:
    superuser:
      username: postgres
    replication:
      username: replicator
    rewind:
      username: rewind_user
{extra}"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    uid, gid = lib.postgres_ids()
    os.chown(path, uid, gid)


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)


@pytest.fixture
def ports():
    """The etcd and PostgreSQL ports of config_file (nothing listens there)."""
    return {"etcd_port": lib.free_port(), "pg_port": lib.free_port()}


@pytest.fixture
def config_file(workdir, ports):
    path = os.path.join(workdir, "pgha.yml")
    write(path, minimal_config(api_port=lib.free_port(), data_dir=os.path.join(workdir, "data"), **ports))
    return path


class Daemon:
    """pghad started as the postgres user with a notification socket of our own."""

    def __init__(self, workdir, argv_tail, env=None):
        self.notify = lib.NotifySocket(workdir)
        env = self.notify.env(env)
        self.process = lib.Process(lib.as_postgres_cmd([lib.binary("pghad")] + argv_tail),
                                   os.path.join(workdir, "pghad.log"), env=env)

    def log_has(self, pattern, count=1):
        found = re.findall(pattern, self.process.output(), re.MULTILINE)
        return len(found) >= count

    def wait_log(self, pattern, count=1, timeout=10):
        lib.wait_until(lambda: self.log_has(pattern, count), timeout,
                       what=f"log line {pattern!r} (x{count}); log so far:\n{self.process.output()}")

    def wait_notify(self, key, value=None, timeout=10):
        return lib.wait_until(lambda: self.notify.seen(key, value), timeout,
                              what=f"notification {key}={value}; got {self.notify.messages}")

    def stop(self, sig=signal.SIGTERM):
        rc = self.process.stop(sig, timeout=10)
        self.notify.close()
        return rc


@pytest.fixture
def daemons():
    started = []
    yield started
    for d in started:
        if d.process.alive():
            d.stop(signal.SIGKILL)


def test_version():
    r = run([lib.binary("pghad"), "--version"])
    assert r.returncode == 0
    assert re.fullmatch(r"pghad \d+\.\d+\.\d+\n", r.stdout), r.stdout


def test_usage_errors():
    r = run([lib.binary("pghad"), "--no-such-option"])
    assert r.returncode == 1
    assert "no-such-option" in r.stderr
    r = run([lib.binary("pghad"), "a.yml", "b.yml"])
    assert r.returncode == 1
    assert "at most one" in r.stderr


def test_validate_config_good(config_file):
    r = run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", config_file]))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    # Only warnings (loopback connect_address) may appear.
    assert not re.search(r"^[^:]+:\d+:\d+: [^:]+: (?!warning: )", r.stderr, re.MULTILINE), r.stderr


def test_validate_config_bad(workdir):
    path = os.path.join(workdir, "bad.yml")
    # Two errors (an address without a usable port, an unknown watchdog mode) and one warning (an
    # unknown key): all three are reported with their line, not only the first.
    api_port = lib.free_port()
    text = minimal_config(api_port=api_port).replace(f"listen: 127.0.0.1:{api_port}", "listen: 127.0.0.1:notaport")
    text += "  no_such_key: 1\nwatchdog:\n  mode: sometimes\n"
    write(path, text)
    lines = text.splitlines()
    listen_line = next(i for i, l in enumerate(lines, 1) if "notaport" in l)
    unknown_line = next(i for i, l in enumerate(lines, 1) if "no_such_key" in l)
    mode_line = next(i for i, l in enumerate(lines, 1) if "sometimes" in l)

    r = run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", path]))
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    p = re.escape(path)
    assert re.search(rf"^{p}:{listen_line}:\d+: restapi\.listen: .*notaport", r.stderr, re.MULTILINE), r.stderr
    assert re.search(rf"^{p}:{mode_line}:\d+: watchdog\.mode: .*sometimes", r.stderr, re.MULTILINE), r.stderr
    assert re.search(rf"^{p}:{unknown_line}:\d+: postgresql\.no_such_key: warning: ", r.stderr,
                     re.MULTILINE), r.stderr


def test_validate_config_warnings_only(workdir):
    path = os.path.join(workdir, "warn.yml")
    text = minimal_config() + "  no_such_key: 1\n"
    write(path, text)
    r = run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", path]))
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{re.escape(path)}:\d+:\d+: postgresql\.no_such_key: warning: ", r.stderr,
                     re.MULTILINE), r.stderr


def test_validate_missing_file(workdir):
    path = os.path.join(workdir, "missing.yml")
    r = run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", path]))
    assert r.returncode == 1
    assert path in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to show the refusal")
def test_refuses_to_run_as_root(config_file):
    r = run([lib.binary("pghad"), config_file])
    assert r.returncode == 2
    assert re.search(LOG_LINE + r"pghad must not run as root", r.stderr, re.MULTILINE), r.stderr


def test_bad_config_at_start_exits_1(workdir, daemons):
    path = os.path.join(workdir, "bad.yml")
    write(path, minimal_config().replace("name: node1\n", ""))
    d = Daemon(workdir, [path])
    daemons.append(d)
    rc = d.process.proc.wait(10)
    assert rc == 1, d.process.output()
    assert re.search(rf"^{LOG_LINE}{re.escape(path)}:\d+:\d+: name: required", d.process.output(), re.MULTILINE), \
        d.process.output()
    assert re.search(rf"^{LOG_LINE}Not starting: failed to load the configuration from {re.escape(path)}\.$",
                     d.process.output(), re.MULTILINE), d.process.output()
    assert d.notify.seen("READY") is None


def test_start_reload_and_graceful_stop(workdir, config_file, ports, daemons):
    d = Daemon(workdir, [config_file], env=dict(os.environ, WATCHDOG_USEC="400000"))
    daemons.append(d)

    d.wait_log(rf"^{LOG_LINE}Starting pghad \S+ as member 'node1' of cluster 'daemon-test'\.$")
    ready = d.wait_notify("READY", "1")
    assert "member 'node1'" in ready.get("STATUS", "")
    # The loop pings systemd's watchdog by itself (every WATCHDOG_USEC/4 .. /2).
    d.wait_notify("WATCHDOG", "1", timeout=5)

    # A good, changed file: reloaded, logged, bracketed by RELOADING=1 ... READY=1.
    api_port = lib.free_port()
    write(config_file, minimal_config(api_port=api_port, level="DEBUG",
                                      data_dir=os.path.join(workdir, "data"), **ports))
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$")
    reloading = d.wait_notify("RELOADING", "1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    ready_count = lambda: sum(1 for m in d.notify.poll() if m.get("READY") == "1")  # noqa: E731
    lib.wait_until(lambda: ready_count() >= 2, 5, what="READY=1 after the reload")

    # The same file again: nothing changed, said as Patroni says it.
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}No local configuration items changed\.$")
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$", count=2)

    # A broken file: the error is named and the running configuration kept.
    write(config_file, "scope: daemon-test\nname: [broken\n")
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}Failed to reload the configuration from {re.escape(config_file)}, "
               r"keeping the running configuration\.$")
    assert re.search(rf"^{LOG_LINE}{re.escape(config_file)}:\d+:\d+: ", d.process.output(), re.MULTILINE), \
        d.process.output()
    assert d.process.alive()

    # Still serving reloads afterwards, from a good file again; the member name only changes with a
    # restart, so it is reported and the running one kept.
    write(config_file, minimal_config(name="renamed", api_port=api_port, level="DEBUG",
                                      data_dir=os.path.join(workdir, "data"), **ports))
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}Changed settings need a restart: name, ignoring until restart\.$")
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$", count=3)
    lib.wait_until(lambda: ready_count() >= 5, 5, what="READY=1 after each of the four reloads")
    last_ready = [m for m in d.notify.poll() if m.get("READY") == "1"][-1]
    assert "member 'node1'" in last_ready.get("STATUS", ""), last_ready

    # SIGTERM: STOPPING=1, a clean exit 0 well within the deadline.
    rc = d.stop(signal.SIGTERM)
    assert rc == 0, d.process.output()
    assert d.notify.seen("STOPPING", "1")
    assert re.search(rf"^{LOG_LINE}Shutdown complete\.$", d.process.output(), re.MULTILINE)


def test_shipped_minimal_config_starts_reloads_and_stops(workdir, daemons):
    """conf/pgha-minimal.yml itself, as the issue's user runs it; only its addresses and data_dir are
    moved with Patroni's environment overrides, so nothing here touches the default ports 8008, 2379
    and 5432 or /var/lib/postgresql."""
    shipped = os.path.join(lib.SOURCE_DIR, "conf", "pgha-minimal.yml")
    api = f"127.0.0.1:{lib.free_port()}"
    pg = f"127.0.0.1:{lib.free_port()}"
    env = dict(os.environ, PATRONI_RESTAPI_LISTEN=api, PATRONI_RESTAPI_CONNECT_ADDRESS=api,
               PATRONI_ETCD3_HOSTS=f"127.0.0.1:{lib.free_port()}", PATRONI_POSTGRESQL_LISTEN=pg,
               PATRONI_POSTGRESQL_CONNECT_ADDRESS=pg, PATRONI_POSTGRESQL_DATA_DIR=os.path.join(workdir, "data"))
    d = Daemon(workdir, [shipped], env=env)
    daemons.append(d)
    d.wait_log(rf"^{LOG_LINE}Starting pghad \S+ as member 'node1' of cluster 'demo'\.$")
    d.wait_notify("READY", "1")
    assert lib.http_get(f"http://{api}/liveness")[0] == 200
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}No local configuration items changed\.$")
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$")
    assert d.stop(signal.SIGTERM) == 0, d.process.output()
    assert re.search(rf"^{LOG_LINE}Shutdown complete\.$", d.process.output(), re.MULTILINE)


def test_sigint_stops_cleanly(workdir, config_file, daemons):
    d = Daemon(workdir, [config_file])
    daemons.append(d)
    d.wait_notify("READY", "1")
    assert d.stop(signal.SIGINT) == 0, d.process.output()
    assert re.search(rf"^{LOG_LINE}Received SIGINT, shutting down\.$", d.process.output(), re.MULTILINE)


def test_configuration_from_environment(workdir, daemons):
    env = dict(os.environ, PATRONI_CONFIGURATION=minimal_config(name="envnode", api_port=lib.free_port()))
    d = Daemon(workdir, [], env=env)
    daemons.append(d)
    d.wait_log(rf"^{LOG_LINE}Starting pghad \S+ as member 'envnode' of cluster 'daemon-test'\.$")
    d.wait_notify("READY", "1")
    # SIGHUP re-reads the same source (the environment seen at start) successfully.
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$")
    assert d.stop() == 0, d.process.output()


def test_environment_overrides_file(workdir, config_file, daemons):
    d = Daemon(workdir, [config_file], env=dict(os.environ, PATRONI_NAME="override"))
    daemons.append(d)
    d.wait_log(rf"^{LOG_LINE}Starting pghad \S+ as member 'override' of cluster 'daemon-test'\.$")
    assert d.stop() == 0


def test_configuration_directory(workdir, daemons):
    confd = os.path.join(workdir, "conf.d")
    os.mkdir(confd)
    write(os.path.join(confd, "10-base.yml"), minimal_config(api_port=lib.free_port()))
    write(os.path.join(confd, "20-node.yaml"), "name: node-from-dir\n")
    r = run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", confd]))
    assert r.returncode == 0, r.stderr
    d = Daemon(workdir, [confd])
    daemons.append(d)
    d.wait_log(rf"^{LOG_LINE}Starting pghad \S+ as member 'node-from-dir' of cluster 'daemon-test'\.$")
    d.wait_notify("READY", "1")
    assert d.stop() == 0, d.process.output()


def test_log_dir_rotation_and_format(workdir, ports, daemons):
    """log.dir: every line after start goes to DIR/patroni.log in log.format's layout, rotated at
    log.file_size keeping log.file_num old files, as Patroni's RotatingFileHandler does; removing
    log.dir on reload brings the lines back to stderr."""
    logdir = os.path.join(workdir, "logs")
    os.mkdir(logdir)
    uid, gid = lib.postgres_ids()
    os.chown(logdir, uid, gid)
    path = os.path.join(workdir, "pgha.yml")
    log_keys = ("log:\n  level: INFO\n  dir: {}\n  file_size: 2000\n  file_num: 2\n"
                "  format: '%(asctime)s [%(name)s] %(levelname)-7s| %(message)s'\n"
                "  dateformat: '%Y/%m/%d %H:%M:%S'\n").format(logdir)
    config = minimal_config(api_port=lib.free_port(), data_dir=os.path.join(workdir, "data"), **ports)
    write(path, config.replace("log:\n  level: INFO\n", log_keys))
    logfile = os.path.join(logdir, "patroni.log")
    line = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[pgha\.\w+\] (?:DEBUG|INFO|WARNING|ERROR) *\| "

    d = Daemon(workdir, [path])
    daemons.append(d)
    d.wait_log(rf"^{LOG_LINE}Logging to {re.escape(logfile)}\.$")
    d.wait_notify("READY", "1")

    def read(name):
        try:
            with open(os.path.join(logdir, name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    lib.wait_until(lambda: re.search(line + r"REST API listening on ", read("patroni.log") or "", re.MULTILINE),
                   10, what=f"the REST API line in {logfile}: {read('patroni.log')!r}")
    # Reloads log a few lines each: keep reloading (one at a time, each acknowledged by READY=1, as
    # signals sent faster would coalesce) until the file has rotated twice over.
    ready_count = lambda: sum(1 for m in d.notify.poll() if m.get("READY") == "1")  # noqa: E731
    reloads = 0
    while read("patroni.log.2") is None:
        assert reloads < 40, f"no rotation after {reloads} reloads: {os.listdir(logdir)}"
        reloads += 1
        d.process.send_signal(signal.SIGHUP)
        lib.wait_until(lambda: ready_count() >= reloads + 1, 10, what=f"READY=1 after reload {reloads}")
    assert sorted(os.listdir(logdir)) == ["patroni.log", "patroni.log.1", "patroni.log.2"]
    for name in ("patroni.log", "patroni.log.1", "patroni.log.2"):
        text = read(name)
        assert len(text.encode()) < 2000, (name, len(text))
        assert all(re.match(line, x) for x in text.splitlines()), text
    # Nothing went to stderr after the switch.
    after = d.process.output().split(f"Logging to {logfile}.\n", 1)[1]
    assert after == "", after

    # Without log.dir again: back to stderr in the default layout, said once in the file.
    write(path, config)
    d.process.send_signal(signal.SIGHUP)
    d.wait_log(rf"^{LOG_LINE}Reloaded the configuration\.$")
    lib.wait_until(lambda: "Logging to stderr, no longer to" in (read("patroni.log") or ""), 10,
                   what="the switch back noted in the file")
    assert d.stop() == 0, d.process.output()
    assert re.search(rf"^{LOG_LINE}Shutdown complete\.$", d.process.output(), re.MULTILINE)
