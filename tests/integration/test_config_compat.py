"""The configuration loader against Patroni 3.0.2 itself: the same YAML and the same PATRONI_* variables
must give the same values (PyYAML typing of generic sections, Patroni's environment parsing)."""
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
import pgha_testlib as lib  # noqa: E402

SOURCE = os.environ.get("PGHA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(SOURCE, "tests", "fixtures", "config")


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}


def pgha_config(path, env=None):
    argv = [lib.binary("pgha-test-config"), "--show-secrets"] + ([path] if path else [])
    res = subprocess.run(argv, capture_output=True, text=True, env=env or clean_env(), timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), res.stderr


GOOD = sorted(glob.glob(os.path.join(FIXTURES, "good-*.yml"))) + [
    os.path.join(SOURCE, "conf", "pgha.yml"),
    os.path.join(SOURCE, "conf", "pgha-minimal.yml"),
]


@pytest.mark.parametrize("path", GOOD, ids=os.path.basename)
def test_generic_sections_typed_like_pyyaml(path):
    with open(path) as f:
        expected = yaml.safe_load(f)  # what Patroni sees
    got, _ = pgha_config(path)
    assert got["name"] == expected["name"]
    assert got["scope"] == expected["scope"]
    assert got["postgresql"]["data_dir"] == expected["postgresql"]["data_dir"]
    assert got["postgresql"]["parameters"] == expected["postgresql"].get("parameters", {})
    assert got["bootstrap"]["dcs"] == (expected.get("bootstrap") or {}).get("dcs", {})
    assert got["tags"] == expected.get("tags", {})
    users = (expected.get("bootstrap") or {}).get("users")
    if users:
        assert got["bootstrap"]["users"] == users


def patroni_env_config(env):
    code = ("import json; from patroni.config import Config; "
            "print(json.dumps(Config._build_environment_configuration()))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_environment_like_patroni():
    env = clean_env()
    env.update({
        "PATRONI_NAME": "envnode",
        "PATRONI_SCOPE": "envscope",
        "PATRONI_NAMESPACE": "/ns/",
        "PATRONI_RESTAPI_LISTEN": "127.0.0.1:8009",
        "PATRONI_RESTAPI_USERNAME": "admin",
        "PATRONI_RESTAPI_PASSWORD": "pw",
        "PATRONI_RESTAPI_ALLOWLIST": "127.0.0.1,'10.0.0.0/8'",
        "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS": "X-A: one, X-B: 2",
        "PATRONI_CTL_INSECURE": "on",
        "PATRONI_ETCD3_HOSTS": "'127.0.0.1:2379','127.0.0.2:2379'",
        "PATRONI_ETCD3_USERNAME": "root",
        "PATRONI_ETCD3_PASSWORD": "etcdpw",
        "PATRONI_POSTGRESQL_LISTEN": "127.0.0.1:5433",
        "PATRONI_POSTGRESQL_DATA_DIR": "/tmp/data",
        "PATRONI_SUPERUSER_USERNAME": "postgres",
        "PATRONI_SUPERUSER_SSLMODE": "require",
        "PATRONI_REPLICATION_USERNAME": "repl",
        "PATRONI_REPLICATION_PASSWORD": "replpw",
        "PATRONI_LOGLEVEL": "DEBUG",
        "PATRONI_admin_PASSWORD": "adminpw",
        "PATRONI_admin_OPTIONS": "createdb,createrole",
    })
    patroni = patroni_env_config(env)
    got, _ = pgha_config(None, env)

    assert got["name"] == patroni["name"]
    assert got["scope"] == patroni["scope"]
    assert got["namespace"] == patroni["namespace"]
    assert got["restapi"]["listen"] == patroni["restapi"]["listen"]
    assert got["restapi"]["authentication"] == patroni["restapi"]["authentication"]
    assert got["restapi"]["allowlist"] == patroni["restapi"]["allowlist"]
    assert got["restapi"]["http_extra_headers"] == {k: v for k, v in patroni["restapi"]["http_extra_headers"].items()}
    assert got["ctl"]["insecure"] is patroni["ctl"]["insecure"] is True
    assert got["etcd3"]["hosts"] == patroni["etcd3"]["hosts"]
    assert got["etcd3"]["username"] == patroni["etcd3"]["username"]
    assert got["etcd3"]["password"] == patroni["etcd3"]["password"]
    assert got["log"]["level"] == patroni["log"]["level"]
    auth = patroni["postgresql"]["authentication"]
    for user in ("superuser", "replication"):
        for key, value in auth[user].items():
            assert got["postgresql"]["authentication"][user][key] == value
    assert got["bootstrap"]["users"] == patroni["bootstrap"]["users"]


def test_broken_environment_is_reported_against_the_variable():
    env = clean_env()
    env.update({"PATRONI_NAME": "n", "PATRONI_SCOPE": "s", "PATRONI_RESTAPI_LISTEN": "nowhere"})
    res = subprocess.run([lib.binary("pgha-test-config")], capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 1
    assert "PATRONI_RESTAPI_LISTEN:0:0: restapi.listen: invalid address 'nowhere' (expected host:port)" in res.stderr


RESTAPI_LIMITS = """
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
  connection_limit: 512
  per_ip_connection_limit: 32
  idle_timeout: 2s
  request_timeout: 15
etcd3:
  hosts: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/postgresql/15/main
  authentication:
    superuser: {username: postgres}
    replication: {username: replicator}
"""


def test_restapi_limits_pass_patroni_validate_config(tmp_path):
    """pgha's own restapi keys (issue 19): read by pgha with their units, and ignored by Patroni 3.0.2's
    --validate-config, which checks only restapi.listen and restapi.connect_address."""
    path = tmp_path / "limits.yml"
    path.write_text(RESTAPI_LIMITS)
    got, _ = pgha_config(str(path))
    assert (got["restapi"]["connection_limit"], got["restapi"]["per_ip_connection_limit"],
            got["restapi"]["idle_timeout"], got["restapi"]["request_timeout"]) == (512, 32, 2, 15)
    res = subprocess.run(["patroni", "--validate-config", str(path)], capture_output=True, text=True,
                         env=clean_env(), timeout=60)
    # Patroni reports other things about this file (loopback connect addresses, etcd not reachable),
    # never these keys
    out = res.stdout + res.stderr
    for key in ("connection_limit", "per_ip_connection_limit", "idle_timeout", "request_timeout"):
        assert key not in out, out
    defaults, _ = pgha_config(os.path.join(FIXTURES, "good-minimal.yml"))
    assert (defaults["restapi"]["connection_limit"], defaults["restapi"]["per_ip_connection_limit"],
            defaults["restapi"]["idle_timeout"], defaults["restapi"]["request_timeout"]) == (256, 64, 5, 10)
