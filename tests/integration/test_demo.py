"""The README's demo (scripts/demo.py, the last step of its first command) run as the user runs it: a
3-node cluster, `pghactl list`, a kill -9 of the leader, the new leader, the old one rejoining. CI runs
it so the first thing a user tries cannot rot unnoticed."""
import os
import re
import subprocess
import sys

import pgha_testlib as lib

DEMO = os.path.join(lib.SOURCE_DIR, "scripts", "demo.py")


def list_tables(output):
    """{title: {member: (role, state)}} for each `pghactl list` table the demo printed."""
    tables, title = {}, None
    for line in output.splitlines():
        header = re.match(r"== (.*): pghactl -c \S+ list$", line)
        if header:
            title = header.group(1)
            tables[title] = {}
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if title and len(cells) >= 4 and re.fullmatch(r"node\d", cells[0]):
            tables[title][cells[0]] = (cells[2], cells[3])
    return tables


def lag_column(output, title, member):
    """The 'Lag in MB' cell of member's row in the table printed under title."""
    section = output.split(f"== {title}: ", 1)[1].split("\n== ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith(f"| {member} "))
    return row.strip().strip("|").split("|")[5].strip()


def test_demo_shows_a_failover_and_the_old_leader_rejoining():
    env = dict(os.environ, PGHA_BUILD_DIR=lib.BUILD_DIR)
    run = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    first = re.search(r"^(node\d) leads, two replicas stream", out, re.M)
    new = re.search(r"^(node\d) is the new writable leader", out, re.M)
    assert first and new and first.group(1) != new.group(1), out
    old, new = first.group(1), new.group(1)

    tables = list_tables(out)
    assert list(tables) == ["the cluster", "the cluster after the failover", f"{old} rejoined as a replica"], out
    before, after, rejoined = tables.values()
    assert sorted(before) == ["node1", "node2", "node3"] and before[old] == ("Leader", "running"), out
    assert all(before[n] == ("Replica", "running") for n in before if n != old), out
    assert after[new] == ("Leader", "running") and old not in after, out
    assert rejoined[new] == ("Leader", "running") and rejoined[old] == ("Replica", "running"), out
    # Replicas are shown with a known lag: the demo waits for them to report after the failover.
    for title, table in tables.items():
        for member, (role, _) in table.items():
            if role == "Replica":
                assert lag_column(out, title, member).isdigit(), out
    assert out.rstrip().endswith("done: everything stopped and removed"), out
