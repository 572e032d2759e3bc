"""deploy/monitoring: the alert rules pass promtool, the PrometheusRule is generated from
them and not stale, every alert has its runbook section, the dashboards are well-formed
Grafana JSON whose queries parse, their ConfigMaps carry the files unchanged, and every
metric they use is one the services expose (read from each service's own /metrics) or
one of the few that come from Strimzi's Kafka Exporter and CloudNativePG."""

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RUNBOOK = REPO / "deploy" / "README.md"
sys.path.insert(0, str(MONITORING))
import generate  # noqa: E402 - deploy/monitoring/generate.py is a script, not a package

# Metrics from outside the services: Prometheus itself, Strimzi's Kafka Exporter
# (deploy/k8s/base/kafka/kafka.yaml) and CloudNativePG's instances.
EXTERNAL_METRICS = {
    "up",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_under_replicated_partition",
    "cnpg_collector_up",
    "cnpg_pg_replication_lag",
    "cnpg_collector_last_available_backup_timestamp",
    "cnpg_pg_stat_archiver_seconds_since_last_archival",
}
# Grafana's variables, given values so the queries run on a bare Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s", "$namespace": ".*"}
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "increase",
    "irate",
    "delta",
    "deriv",
    "absent",
    "histogram_quantile",
    "time",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "topk",
    "bottomk",
    "label_values",
    "vector",
    "scalar",
    "clamp_min",
    "clamp_max",
}


def rules() -> dict:
    return yaml.safe_load((MONITORING / "rules.yaml").read_text())


def alerts() -> list[dict]:
    return [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((MONITORING / "dashboards").glob("*.json"))}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL with Grafana's variables filled in)."""
    found = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((name, panel["title"], grafana_to_promql(target["expr"])))
    return found


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {} or by/without lists) or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?|e", n)}


def test_metric_names_finds_names_and_only_names():
    assert metric_names(
        'sum by (agency, le) (rate(e112_x_bucket{le="60",job=~"a|b"}[5m])) / on (agency) '
        "sum(increase(e112_y_total[1h])) > 0.9 and time() - max(up) > 2 * 86400"
    ) == {"e112_x_bucket", "e112_y_total", "up"}


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (tools/system-deps.sh)"
    out = subprocess.run([promtool, "check", "rules", str(MONITORING / "rules.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_rule_is_generated_from_the_rule_file():
    expected = generate.render((MONITORING / "rules.yaml").read_text())
    assert (MONITORING / "prometheusrule.yaml").read_text() == expected, (
        "deploy/monitoring/prometheusrule.yaml is stale: run .venv/bin/python deploy/monitoring/generate.py"
    )


def test_every_alert_is_explained_in_the_runbook():
    runbook = RUNBOOK.read_text()
    headings = set(re.findall(r"^#### (E112\w+)$", runbook, flags=re.MULTILINE))
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert sorted(set(names) - headings) == []
    assert sorted(headings - set(names)) == []  # no section for an alert that is gone
    for alert in alerts():
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["runbook_url"] == f"deploy/README.md#{alert['alert'].lower()}"
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_dashboards_are_grafana_json_with_a_described_panel_for_every_query():
    boards = dashboards()
    assert len(boards) >= 3
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "namespace"} <= variables, name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] in ("row", "text"):
                continue
            assert panel["description"].strip(), f"{name}: {panel['title']} says not what it measures"
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])


def test_dashboard_queries_parse(tmp_path):
    """promtool has no parse-only command; a rule file with one recording rule per
    query makes it parse every one (the e2e test then runs them on a real Prometheus)."""
    queries = panel_queries()
    rule_file = tmp_path / "queries.yaml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboards",
                        "rules": [
                            {"record": f"dashboard:query{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    out = subprocess.run([shutil.which("promtool"), "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bucket_bounds_are_written_as_the_client_exposes_them():
    """prometheus_client writes a bucket's bound as a float (le="60.0"); le="60" selects
    nothing, and an alert on it would never fire."""
    texts = [(MONITORING / "rules.yaml").read_text(), *(p.read_text() for p in (MONITORING / "dashboards").glob("*"))]
    assert [m for text in texts for m in re.findall(r'le=\\?"[0-9]+\\?"', text)] == []


def test_every_dashboard_file_becomes_a_labelled_configmap_unchanged():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl"), "kustomize", str(MONITORING)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    configmaps = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "ConfigMap"]
    carried = {}
    for cm in configmaps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        carried.update(cm["data"])
    assert carried == {p.name: p.read_text() for p in (MONITORING / "dashboards").glob("*.json")}


def exposed_metric_names() -> set[str]:
    """Every series name the services can expose, from their own /metrics: each app is
    built (its registry is filled when the app is made; nothing connects) and asked."""
    names = set()
    apps = sorted(p.parent.name for p in (REPO / "services").glob("*/app.py"))
    assert {"intake", "router", "notifier", "shifts"} <= set(apps)
    for service in apps:
        app_module = importlib.import_module(f"services.{service}.app")
        settings_module = importlib.import_module(f"services.{service}.settings")
        settings_class = next(
            v for k, v in vars(settings_module).items() if k.endswith("Settings") and k != "ServiceSettings"
        )
        app = app_module.create_app(settings_class())
        transport = httpx.ASGITransport(app=app)  # no lifespan: no database or broker needed
        with httpx.Client(transport=_SyncASGI(transport), base_url="http://app") as client:
            text = client.get("/metrics").text
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
            if kind == "counter":
                base = name.removesuffix("_total")
                names |= {base + "_total", base + "_created"}
            elif kind in ("histogram", "summary"):
                names |= {name + s for s in ("_bucket", "_count", "_sum", "_created")}
            else:
                names.add(name)
    return names


class _SyncASGI(httpx.BaseTransport):
    """httpx's ASGI transport is async only; this runs one request on a fresh loop."""

    def __init__(self, transport: httpx.ASGITransport):
        self.transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        async def send():
            response = await self.transport.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(send())


@pytest.fixture(scope="module")
def exposed():
    return exposed_metric_names()


def test_every_metric_in_alerts_and_dashboards_is_exposed_by_the_code(exposed):
    used = {}
    for alert in alerts():
        for name in metric_names(alert["expr"]):
            used.setdefault(name, []).append(alert["alert"])
    for board, title, expr in panel_queries():
        for name in metric_names(expr):
            used.setdefault(name, []).append(f"{board}: {title}")
    assert any(n.startswith("e112_") for n in used)
    unknown = {n: where for n, where in used.items() if n not in exposed and n not in EXTERNAL_METRICS | NOT_YET}
    assert unknown == {}
    # A name that lands in the code leaves NOT_YET (this fails until it does).
    assert not (NOT_YET & exposed), f"exposed now, remove from NOT_YET: {NOT_YET & exposed}"


# Metrics the alerts and panels use before the code exposes them, named one by one so
# nothing else slips by. None now: the intake watchdog (issue 7) exposes its two.
NOT_YET: set[str] = set()
