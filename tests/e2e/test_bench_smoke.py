"""`make bench --quick` end to end: the bench starts its own stack and baseline, and its
results file holds every figure, with nothing lost and no duplicate left after
deduplication. Behaviour only: timings on a shared machine prove nothing here."""

import json
import subprocess
import sys

import pytest

from devstack.processes import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "reports_per_s_through_to_topics" in run.stdout  # the table was printed
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


PERCENTILES = {"n", "p50", "p95", "p99", "max"}
SERVICES = {"intake", "router", "notifier", "shifts", "console"}  # the whole system runs, as in production


def test_every_figure_is_there(results):
    result, report = results
    ours, baseline = result["ours"], result["baseline"]
    for phase in ("surge", "steady"):
        figures = ours["phases"][phase]
        assert figures["reports_accepted"] > 0 and figures["accepted_per_s"] > 0
        assert figures["reports_per_s_through_to_topics"] > 0
        for latency in ("answer_ms", "post_to_topic_ms", "post_to_webhook_ms"):
            assert set(figures[latency]) == PERCENTILES and figures[latency]["n"] > 0, (phase, latency)
            assert figures[latency]["p50"] <= figures[latency]["p99"] <= figures[latency]["max"]
        assert set(figures["cpu_seconds"]) >= SERVICES | {"broker", "postgres"}
        assert figures["agency_topic_records"] > 0 and figures["agency_topic_records_per_event"] >= 1.0
        base = baseline["phases"][phase]
        assert base["reports_accepted"] > 0 and base["post_to_topic_ms"]["n"] == base["reports_accepted"]
    assert set(ours["peak_rss_mb"]) >= SERVICES | {"broker", "postgres"}
    assert set(ours["idle"]["cpu_percent"]) >= SERVICES and ours["idle"]["seconds"] > 0
    assert all(mb > 0 for mb in ours["peak_rss_mb"].values())
    assert baseline["peak_rss_mb"]["baseline"] > 0
    assert set(result["ratios_to_baseline"]) >= {"surge_accepted_per_s", "steady_post_to_topic_p99"}
    assert all(value is not None for value in result["ratios_to_baseline"].values())
    assert set(result["targets"]) == {
        "reports_per_s_through_to_topics",
        "steady_post_to_topic_p99_ms",
        "service_peak_rss_mb",
        "idle_cpu_percent",
    }
    assert "| target | value | met |" in report


def test_the_workload_is_a_realistic_mix(results):
    surge = results[0]["ours"]["phases"]["surge"]
    assert surge["related_meant"] > 0
    assert surge["statuses"].get("linked", 0) > 0  # intake linked other callers to their incident
    assert surge["statuses"].get("received", 0) > 0
    assert results[0]["ours"]["updates_on_topics"] > 0  # the agencies heard of the extra callers


def test_nothing_lost_and_no_duplicate_after_dedup(results):
    ours, baseline = results[0]["ours"], results[0]["baseline"]
    assert ours["loss"]["expected_dispatches"] > 0
    assert ours["loss"]["lost_on_topic"] == 0
    assert ours["loss"]["lost_at_webhook"] == 0
    assert ours["loss"]["undecided_reports"] == 0
    assert ours["duplicates"]["topic_after_dedup"] == 0
    assert ours["duplicates"]["webhook_after_dedup"] == 0
    assert baseline["loss"]["lost_on_topic"] == 0
    for phase in ours["phases"].values():
        assert not phase["errors"], phase["errors"]
