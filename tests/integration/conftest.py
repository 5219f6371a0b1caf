"""pytest fixtures shared by every integration test: a postgres-owned work directory and a real etcd."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import pgha_testlib as lib  # noqa: E402


@pytest.fixture
def workdir():
    path = lib.make_postgres_dir()
    yield path
    if os.environ.get("PGHA_KEEP_TEST_DIRS"):
        print(f"kept {path}")
    else:
        lib.remove_tree(path)


@pytest.fixture
def etcd(workdir):
    server = lib.Etcd(workdir).start()
    yield server
    server.stop()
