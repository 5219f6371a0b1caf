"""pgha demo: etcd on 127.0.0.1 and pghad, run as the postgres user, with files under /tmp."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import pgha_testlib as lib  # noqa: E402


def main():
    workdir = lib.make_postgres_dir("pgha-demo-")
    etcd = lib.Etcd(workdir).start()
    try:
        print(f"etcd is up at {etcd.url}")
        out = subprocess.run(lib.as_postgres_cmd([lib.binary("pghad"), "--version"]),
                             capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip())
    finally:
        etcd.stop()
        lib.remove_tree(workdir)


if __name__ == "__main__":
    main()
