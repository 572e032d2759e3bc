"""`make chaos --short` inside `make test`: the whole stack as processes under steady
load; each service SIGKILLed twice, PostgreSQL and the broker restarted, the agencies'
endpoint refusing, failing and too slow for a while. After each scenario, every accepted
report reached every agency the oracle expects (webhook and topic), and no agency saw a
dispatch twice after deduplication by ce_id (chaos/ledger.py; its checker is tested on
hand-made ledgers in tests/unit/test_chaos_ledger.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.run import SCENARIOS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chaos_report(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("chaos")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaos",
            "--short",
            "--data-dir",
            str(base / "data"),
            "--results-dir",
            str(base / "results"),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    print(run.stdout[-4000:])
    results = base / "results" / "latest.json"
    assert results.exists(), f"no results (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(results.read_text())
    report["exit_code"] = run.returncode
    return report


@pytest.mark.parametrize("name", SCENARIOS)
def test_nothing_lost_and_nothing_twice(chaos_report, name):
    by_name = {s["scenario"]: s for s in chaos_report["scenarios"]}
    assert name in by_name, f"scenario {name} did not run: {chaos_report.get('scenarios')}"
    scenario = by_name[name]
    assert scenario["accepted"] > 0 and scenario["expected"] > 0
    for channel in ("webhook", "topic"):
        result = scenario[channel]
        assert result["missing_count"] == 0, (channel, result["missing"], scenario["notes"])
        assert result["duplicates_count"] == 0, (channel, result["duplicates"])
        assert result["unexpected_count"] == 0, (channel, result["unexpected"])
        assert result["delivered"] == scenario["expected"]
    if name == "sigkill":
        assert set(scenario["kills"]) == {"intake", "router", "notifier", "shifts"}
        assert all(count >= 2 for count in scenario["kills"].values())


def test_the_run_exits_non_zero_exactly_when_a_check_fails(chaos_report):
    assert (chaos_report["exit_code"] == 0) == chaos_report["ok"]
