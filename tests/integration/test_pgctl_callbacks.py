"""Callbacks run with Patroni's arguments "<action> <role> <scope>" after the configured script's own
arguments, without a shell, and a new callback kills the still running previous one."""
import os

import pgha_testlib as lib
from test_pgctl import make_config, tool


def write_script(workdir):
    out = os.path.join(workdir, "callbacks.out")
    script = os.path.join(workdir, "cb.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                f"echo \"$*\" >> {out}\n"
                "if [ \"$2\" = on_start ] && [ \"$3\" = slow ]; then sleep 30; fi\n"
                f"echo \"done $2\" >> {out}\n")
    os.chmod(script, 0o755)
    open(out, "w").close()
    os.chown(out, *lib.postgres_ids())
    return script, out


def read(out):
    with open(out) as f:
        return f.read().splitlines()


def test_each_callback_gets_patroni_arguments(workdir):
    script, out = write_script(workdir)
    callbacks = {a: f"{script} 'first arg'" for a in
                 ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")}
    cfg, _ = make_config(workdir, "node1", lib.free_port(), callbacks=callbacks)
    expected = []
    for action, role in (("on_start", "master"), ("on_stop", "replica"), ("on_restart", "master"),
                         ("on_reload", "replica"), ("on_role_change", "master"),
                         ("on_role_change", "standby_leader")):
        res = tool(cfg, "callback", action, role)
        assert res["finished"] == [{"action": action, "exit_code": 0}]
        expected += [f"first arg {action} {role} demo", f"done {action}"]
    assert read(out) == expected


def test_new_callback_kills_running_one(workdir):
    script, out = write_script(workdir)
    cfg, _ = make_config(workdir, "node1", lib.free_port(),
                         callbacks={"on_start": f"{script} x", "on_role_change": f"{script} x"})
    # on_start with role "slow" sleeps 30 s; on_role_change started right after must kill it.
    res = tool(cfg, "callback", "on_start", "slow", "on_role_change", "master")
    assert res["seconds"] < 10
    assert res["finished"] == [{"action": "on_role_change", "exit_code": 0}]
    lines = read(out)
    assert "done on_start" not in lines
    assert lines[-1] == "done on_role_change"
    assert "x on_role_change master demo" in lines


def test_unconfigured_callback_is_a_no_op(workdir):
    cfg, _ = make_config(workdir, "node1", lib.free_port())
    res = tool(cfg, "callback", "on_start", "master")
    assert res["ok"] and res["finished"] == []
