"""conf/prometheus/alerts.yml: the alert rules parse (promtool check rules) and fire exactly as the
cases in tests/fixtures/prometheus/alerts_test.yml expect (promtool test rules), with Debian's real
promtool. No cluster is started: the input series are synthetic."""
import os
import subprocess

import pgha_testlib as lib

ALERTS = os.path.join(lib.SOURCE_DIR, "conf", "prometheus", "alerts.yml")
ALERTS_TEST = os.path.join(lib.SOURCE_DIR, "tests", "fixtures", "prometheus", "alerts_test.yml")


def promtool(*args):
    promtool = lib.promtool_path()
    assert promtool, "promtool missing: run scripts/install-deps.sh (Debian package prometheus)"
    p = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr


def test_alert_rules_check():
    out = promtool("check", "rules", ALERTS)
    assert "SUCCESS: 5 rules found" in out, out


def test_alert_rules_fire_as_expected():
    out = promtool("test", "rules", ALERTS_TEST)
    assert "SUCCESS" in out, out
