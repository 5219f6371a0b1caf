"""The etcd3 section as pghad uses it: `proxy` and `url` take precedence over `hosts` (Patroni's order:
proxy, url, hosts, host) on a running daemon, and endpoint values pghad cannot use (a bad port, a
non-http URL, SRV discovery as the only source) are refused by --validate-config with their position."""
import os
import re
import subprocess

import pytest

import pgha_testlib as lib
from test_daemon import minimal_config, write


@pytest.mark.parametrize("key", ["proxy", "url"])
def test_proxy_or_url_wins_over_hosts(etcd, cluster_factory, key):
    # hosts points at a port nobody listens on: the node only comes up if `key` is the one used.
    dead = f"127.0.0.1:{lib.free_port()}"
    c = cluster_factory(n=1, etcd=etcd, local_extra={"etcd3": {key: etcd.url, "hosts": [dead]}})
    c.start()
    node = c.nodes[0]
    leader = c.wait_for_leader(90)
    assert leader is node
    log = open(os.path.join(node.dir, "daemon.log")).read()
    assert "Failed to create the etcd client" not in log
    assert dead not in log, log[-3000:]


def validate(workdir, etcd_section):
    path = os.path.join(workdir, "etcd.yml")
    text, n = re.subn(r"etcd3:\n  hosts: [^\n]*\n", lambda _: etcd_section, minimal_config())
    assert n == 1, "minimal_config() no longer has the etcd3 section this test replaces"
    write(path, text)
    r = subprocess.run(lib.as_postgres_cmd([lib.binary("pghad"), "--validate-config", path]),
                       capture_output=True, text=True, timeout=30)
    return r, path, text.splitlines()


def test_validate_config_refuses_unusable_etcd_endpoints(workdir):
    r, path, lines = validate(workdir, "etcd3:\n  hosts:\n    - 127.0.0.1:2379\n    - 127.0.0.1:notaport\n"
                                       "  url: ftp://127.0.0.1:2379\n")
    assert r.returncode == 1, r.stderr
    p = re.escape(path)
    bad_line = next(i for i, l in enumerate(lines, 1) if "notaport" in l)
    url_line = next(i for i, l in enumerate(lines, 1) if "ftp://" in l)
    assert re.search(rf"^{p}:{bad_line}:7: etcd3\.hosts: invalid etcd endpoint '127\.0\.0\.1:notaport': the port "
                     r"must be a number from 1 to 65535$", r.stderr, re.MULTILINE), r.stderr
    assert re.search(rf"^{p}:{url_line}:8: etcd3\.url: invalid URL 'ftp://127\.0\.0\.1:2379'", r.stderr,
                     re.MULTILINE), r.stderr

    r, path, lines = validate(workdir, "etcd3:\n  srv: example.com\n")
    assert r.returncode == 1, r.stderr
    assert "etcd3.srv: DNS SRV discovery is not supported by pgha: list the etcd members in hosts" in r.stderr

    # SRV next to hosts (Patroni falls back to hosts): a warning, hosts are used.
    r, path, lines = validate(workdir, "etcd3:\n  srv: example.com\n  hosts: 127.0.0.1:2379\n"
                                       "  key_password: x\n")
    assert r.returncode == 0, r.stderr
    assert "etcd3.srv: warning: DNS SRV discovery is not supported by pgha: ignored" in r.stderr
    assert "etcd3.key_password: warning: ignored" in r.stderr
