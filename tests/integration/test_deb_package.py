"""The Debian package (docs/packaging.md): `cpack -G DEB` in the build tree makes pgha_<version>_amd64.deb,
which installs on this machine with `apt-get install ./pgha_*.deb`, works (binaries, man pages, the unit,
the example configuration validates), declares the libraries its binaries load, and purges without a
trace. Runs as root (CI); skipped otherwise, and skipped when a pgha package is already installed, so
a real installation is never touched. The machine is left as found even when a check fails: the
finally block purges pgha and any package apt pulled in for it."""
import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import pgha_testlib as lib

APT = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "-y", "-q"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
# The packages issue 17 names for the libraries pghad and pghactl link; the versions come from dpkg-shlibdeps.
EXPECTED_DEPENDS = {"libc6", "libpq5", "libcurl4", "libmicrohttpd12", "libcjson1", "libyaml-0-2",
                    "libsystemd0"}


def run(argv, check=True, timeout=60, **kwargs):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert p.returncode == 0, f"{argv}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def installed_packages():
    out = run(["dpkg-query", "-W", "-f", "${Package}:${Architecture} ${db:Status-Status}\n"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}


def pgha_installed():
    p = run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "pgha"], check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "not-installed", "config-files")


def project_version():
    with open(os.path.join(lib.SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(pgha VERSION ([0-9.]+)", f.read()).group(1)


def build_deb(outdir):
    """cpack in the build tree (already built: its preinstall step only checks), into outdir."""
    run(["cpack", "-G", "DEB", "-B", outdir], cwd=lib.BUILD_DIR, timeout=300)
    debs = glob.glob(os.path.join(outdir, "pgha_*_amd64.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def package_paths(deb):
    """Files and symlinks in the .deb (directories are shared with other packages)."""
    out = run(["dpkg-deb", "-c", deb]).stdout
    paths = []
    for line in out.splitlines():
        mode, name = line.split()[0], line.split()[5]
        if not mode.startswith("d"):
            paths.append(name.lstrip("."))
    return paths


def shlibs_depends(binaries):
    """dpkg-shlibdeps' Depends for binaries: the packages, with minimum versions, of the libraries they
    link, as Debian's own packaging computes them."""
    d = tempfile.mkdtemp(prefix="pgha-shlibdeps-")
    try:
        os.mkdir(os.path.join(d, "debian"))
        with open(os.path.join(d, "debian", "control"), "w") as f:
            f.write("Source: pgha\n\nPackage: pgha\nArchitecture: any\n")
        out = run(["dpkg-shlibdeps", "-O"] + [f"-e{b}" for b in binaries], cwd=d).stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return depends_set(re.search(r"^shlibs:Depends=(.*)$", out, re.M).group(1))


def depends_set(line):
    return {re.sub(r"\s+", " ", d.strip()) for d in line.split(",")}


@pytest.fixture
def deb_workdir():
    if os.geteuid() != 0:
        pytest.skip("installs a package: needs root (CI runs as root)")
    if pgha_installed() or os.path.exists("/usr/bin/pghad"):
        pytest.skip("a pgha package or /usr/bin/pghad is already installed; not touching it")
    d = tempfile.mkdtemp(prefix="pgha-deb-")
    os.chmod(d, 0o755)  # apt's _apt user reads the local .deb
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_deb_installs_works_and_purges(deb_workdir):
    version = project_version()
    deb = build_deb(deb_workdir)
    assert os.path.basename(deb) == f"pgha_{version}_amd64.deb"

    info = run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends", "Suggests"]).stdout
    assert f"Version: {version}" in info
    depends = depends_set(re.search(r"^Depends: (.*)$", info, re.M).group(1))
    assert {re.sub(r" \(.*\)", "", d) for d in depends} == EXPECTED_DEPENDS, info
    assert "postgresql-common" in re.search(r"^Suggests: (.*)$", info, re.M).group(1)

    paths = package_paths(deb)
    for p in ("/usr/bin/pghad", "/usr/bin/pghactl", "/usr/lib/systemd/system/pghad.service",
              "/etc/pgha/pgha.yml.example", "/usr/share/man/man8/pghad.8", "/usr/share/man/man1/pghactl.1",
              "/usr/share/man/man5/pgha.yml.5"):
        assert p in paths, paths
    etc_existed = os.path.exists("/etc/pgha")
    before = installed_packages()
    try:
        run(APT + ["install", "--no-install-recommends", deb], env=APT_ENV, timeout=180)
        assert pgha_installed()

        assert run(["/usr/bin/pghad", "--version"]).stdout.strip() == f"pghad {version}"
        assert version in run(["/usr/bin/pghactl", "--version"]).stdout
        assert run(["man", "-w", "pghad"]).stdout.strip() == "/usr/share/man/man8/pghad.8"
        assert run(["man", "-w", "pgha.yml"]).stdout.strip() == "/usr/share/man/man5/pgha.yml.5"
        assert run(["man", "-w", "pghactl"]).stdout.strip() == "/usr/share/man/man1/pghactl.1"

        unit = "/usr/lib/systemd/system/pghad.service"
        verify = run(["systemd-analyze", "verify", unit], check=False)
        assert verify.returncode == 0 and "pghad" not in verify.stdout + verify.stderr, \
            verify.stdout + verify.stderr
        with open(unit) as f:
            text = f.read()
        assert "ExecStart=/usr/bin/pghad /etc/pgha/pgha.yml\n" in text
        assert "Type=notify\n" in text and "WatchdogSec=" in text and "User=postgres\n" in text

        # --validate-config does not start anything, so it may run as root; warnings allowed, no error
        validate = run(["/usr/bin/pghad", "--validate-config", "/etc/pgha/pgha.yml.example"], check=False)
        assert validate.returncode == 0, validate.stderr
        assert ": error" not in validate.stderr

        # Depends is what dpkg-shlibdeps computes for the installed binaries, versions included
        assert shlibs_depends(["/usr/bin/pghad", "/usr/bin/pghactl"]) == depends

        run(APT + ["purge", "pgha"], env=APT_ENV, timeout=120)
        assert not pgha_installed()
        assert run(["dpkg-query", "-W", "pgha"], check=False).returncode != 0, "pgha still known to dpkg"
        left = [p for p in paths if os.path.lexists(p)]
        assert not left, f"left after purge: {left}"
        if not etc_existed:
            assert not os.path.exists("/etc/pgha")
    finally:
        if pgha_installed() or run(["dpkg-query", "-W", "pgha"], check=False).returncode == 0:
            run(["dpkg", "--purge", "pgha"], check=False, env=APT_ENV, timeout=120)
        pulled_in = sorted(installed_packages() - before)
        if pulled_in:
            run(APT + ["purge"] + pulled_in, check=False, env=APT_ENV, timeout=180)
    assert not pulled_in, f"apt installed packages the CI image lacks: {pulled_in}"


def unit_settings():
    with open(os.path.join(lib.SOURCE_DIR, "systemd", "pghad.service")) as f:
        return dict(line.strip().split("=", 1) for line in f
                    if re.match(r"^[A-Z]\w*=", line.strip()))


# Directories ProtectSystem= makes read-only (systemd.exec(5)); other values are not emulated here.
PROTECT_SYSTEM_READ_ONLY = {"yes": ["/usr", "/boot", "/efi"], "full": ["/usr", "/boot", "/efi", "/etc"]}


def test_unit_sandbox_runs_initdb_and_pg_ctl():
    """The part of the unit's sandbox that can be rebuilt without systemd as PID 1 (this machine has
    none): NoNewPrivileges= (setpriv --no-new-privs) and ProtectSystem= (a mount namespace with those
    directories read-only). In it, as postgres, initdb, pg_ctl start, a query, pg_ctl stop, and a write
    below /etc (Debian's config_dir /etc/postgresql, which pghad rewrites) must work. The seccomp-based
    options (RestrictAddressFamilies=, RestrictNamespaces=, ...) are not rebuilt: docs/packaging.md."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a mount namespace")
    unit = unit_settings()
    assert unit.get("User") == "postgres" and unit.get("NoNewPrivileges") == "yes"
    read_only = PROTECT_SYSTEM_READ_ONLY[unit.get("ProtectSystem", "no")]
    workdir = lib.make_postgres_dir()
    etc_dir = tempfile.mkdtemp(prefix="pgha-test-config-dir-", dir="/etc")
    uid, gid = lib.postgres_ids()
    os.chown(etc_dir, uid, gid)
    data_dir = os.path.join(workdir, "data")
    port = lib.free_port()
    pg = lib.PG_BIN_DIR
    steps = " && ".join([
        f"{pg}/initdb -D {data_dir} -A trust -U postgres --no-sync --no-instructions >/dev/null",
        f"{pg}/pg_ctl -D {data_dir} -l {workdir}/pg.log -w -t 60"
        f" -o '-p {port} -k {workdir} -c listen_addresses=127.0.0.1' start >/dev/null",
        f"{pg}/psql -h {workdir} -p {port} -U postgres -Atc 'select 40 + 2'",
        f"{pg}/pg_ctl -D {data_dir} -m fast -w stop >/dev/null",
        f"echo ok > {etc_dir}/postgresql.conf",
        "touch /usr/pgha-sandbox-probe 2>/dev/null && echo usr-writable || echo usr-read-only",
    ])
    mounts = " && ".join(f"mount --bind -o ro {d} {d}" for d in read_only if os.path.isdir(d))
    script = (f"{mounts} && exec setpriv --no-new-privs --reuid=postgres --regid=postgres --init-groups"
              f" -- sh -c \"{steps}\"")
    try:
        p = run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script], check=False,
                timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.split() == ["42", "usr-read-only"], p.stdout + p.stderr
        with open(os.path.join(etc_dir, "postgresql.conf")) as f:
            assert f.read() == "ok\n"
    finally:
        run(lib.as_postgres_cmd([f"{pg}/pg_ctl", "-D", data_dir, "-m", "immediate", "stop"]), check=False)
        shutil.rmtree(etc_dir, ignore_errors=True)
        lib.remove_tree(workdir)
