"""The monitoring, run for real: the whole stack as processes, a real Prometheus (the
Debian package) scraping every service's /metrics each second with the alert rules of
deploy/monitoring/rules.yaml loaded, and traffic: contacts of several categories, kinds
and channels, deliveries to the agencies' webhooks, acknowledgements, an operator
checking in. Then every alert expression and every dashboard query must evaluate on it,
every rule must be healthy, and the panels this traffic fills must have data."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.processes import DEFAULT_PORTS, Stack, free_port
from schemas.catalog import AGENCIES
from tests.conftest import API_KEY, ON_DUTY_NOW
from tests.support import FIRE_REPORT, WebhookReceiver, eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
# Grafana's variables, as in tests/unit/test_deploy_monitoring.py; the range covers the test.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "1s", "$namespace": ".*"}
# Panels this traffic must fill (by title). The rest need what a test run does not have:
# Kafka Exporter and CloudNativePG series, failures, escalations, verdicts.
PANELS_WITH_DATA = {
    "e112-reports.json": [
        "Contacts",
        "Emergencies",
        "Prank and ghost share",
        "Contacts per hour, by kind",
        "Prank and ghost share, by channel",
        "Emergencies by category",
        "Contacts by channel",
        "Contacts by kind and channel",
        "Report → agency notified within 60 s (NFPA 1225: 90 %)",
        "Report → agency acknowledged within 60 s",
        "Report → agency notified: median and 90th percentile",
        "Report → agency acknowledged: 90th percentile by agency",
        "Notified within 60 s, by agency",
        "Report → routed (router's event age), 95th percentile",
        "Public-channel report → operator within 15 s (NENA yardstick: 90 %)",
    ],
    "e112-agencies.json": [
        "Delivery success by agency",
        "Dispatches waiting for delivery",
        "Delivery attempts by outcome",
        "Webhook circuit breaker open",
        "Dispatches requested by agency",
        "Acknowledgements by agency",
        "Time to acknowledge, 90th percentile by agency",
    ],
    "e112-operations.json": [
        "On duty",
        "Free",
        "Needed now",
        "Coverage alert open",
        "Tasks queued",
        "On duty and free, by shift",
        "Open tasks by reason",
        "Task wait, 90th percentile by reason",
        "Watchdog: stalled reports",
        "Event age when handled, 95th percentile by consumer",
        "Outbox: events not yet on Kafka",
        "Outbox: oldest unpublished event",
        "Events published per topic",
        "Consumed events by outcome",
        "Services up",
        "HTTP requests by service and status",
        "Filing a report: 95th percentile response time",
    ],
}
# Contacts: (kind, category, channel). Public-channel emergencies of these categories are
# dispatched at once (verified afterwards), so every emergency here reaches its agencies.
CONTACTS = [
    ("emergency", "kebakaran", "call"),
    ("emergency", "kecelakaan", "call"),
    ("emergency", "bencana_alam", "sms"),
    ("emergency", "penyakit", "app"),
    ("prank", None, "call"),
    ("ghost", None, "call"),
    ("information", None, "whatsapp"),
    ("prank", None, "sms"),
]
KECAMATAN = ["Wlingi", "Kanigoro", "Nglegok", "Sutojayan", "Talun", "Srengat", "Garum", "Ponggok"]


@pytest.fixture(scope="module")
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    instance = Stack(
        data_dir=tmp_path_factory.mktemp("stack"),
        api_key=API_KEY,
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in DEFAULT_PORTS},
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "2000", **ON_DUTY_NOW},
    )
    try:
        instance.start_infrastructure()
        instance.start_services()
        for agency in AGENCIES:
            response = httpx.put(
                f"{instance.services['notifier'].url}/v1/agencies/{agency}/webhook",
                headers=auth(),
                json={"url": f"{receiver.url}/hooks/{agency}", "updated_by": "e2e"},
            )
            assert response.status_code == 200, response.text
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: apt-get install prometheus (tools/system-deps.sh)"
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "rules.yaml")],
        # One job per service, named as the Kubernetes Services (the ServiceMonitor's job
        # label), which the rules and dashboards select on.
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}]}
            for name, service in stack.services.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - the process holds it
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready after 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def query(prometheus: str, expr: str) -> list[dict]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
    return body["data"]["result"]


def contact(index: int, kind: str, category: str | None, channel: str, wave: int) -> dict:
    phone = f"08123456{wave}{index:03d}"
    if kind != "emergency":
        return {"kind": kind, "channel": channel, "caller": {"phone": phone}}
    return {
        **FIRE_REPORT,
        "category": category,
        "channel": channel,
        "description": f"Uji pemantauan {category}",
        # A desa of its own, so no report is linked to another instead of dispatched.
        "location": {"kecamatan": KECAMATAN[index], "desa": f"Desa Uji {wave}-{index}"},
        "caller": {"name": f"Penelepon {index}", "phone": phone},
    }


def send_contacts(stack, wave: int) -> list[str]:
    ids = []
    with httpx.Client(headers=auth(), timeout=30) as client:
        for index, (kind, category, channel) in enumerate(CONTACTS):
            response = client.post(
                f"{stack.services['intake'].url}/v1/reports", json=contact(index, kind, category, channel, wave)
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    return ids


async def acknowledge_a_fire_dispatch(stack, receiver, agency_key: str, already: set[str]) -> str:
    """Acknowledge, as the fire brigade, a damkar dispatch its webhook received."""
    received = await eventually(
        lambda: [
            r.json["dispatch_id"]
            for r in receiver.requests
            if r.json.get("agency") == "damkar" and r.json["dispatch_id"] not in already
        ],
        timeout=60,
    )
    dispatch_id = received[0]
    response = httpx.post(
        f"{stack.services['notifier'].url}/v1/dispatches/{dispatch_id}/acknowledgement", headers=auth(agency_key)
    )
    assert response.status_code == 200, response.text
    return dispatch_id


def has_series(prometheus: str, expr: str) -> bool:
    return bool(query(prometheus, expr))


async def test_alerts_and_dashboards_evaluate_on_a_real_prometheus_scraping_the_stack(stack, prometheus, receiver):
    shifts = stack.services["shifts"].url
    operator = httpx.post(f"{shifts}/v1/operators", headers=auth(), json={"name": "Sari"})
    assert operator.status_code == 201, operator.text
    check_in = httpx.post(f"{shifts}/v1/operators/{operator.json()['id']}/check-in", headers=auth())
    assert check_in.status_code in (200, 201), check_in.text
    key = httpx.post(
        f"{stack.services['notifier'].url}/v1/agencies/damkar/api-keys", headers=auth(), json={"created_by": "e2e"}
    )
    assert key.status_code == 201, key.text
    agency_key = key.json()["key"]

    # Wave one makes the series; Prometheus must have seen them before wave two, or a
    # counter's increase() over the range could not count anything yet.
    send_contacts(stack, wave=1)
    acked = {await acknowledge_a_fire_dispatch(stack, receiver, agency_key, set())}
    await eventually(
        lambda: (
            has_series(prometheus, "e112_report_ack_seconds_count")
            and has_series(prometheus, "e112_dispatch_delivery_seconds_count")
            and query(prometheus, "sum(e112_reports_received_total)")
            and float(query(prometheus, "sum(e112_reports_received_total)")[0]["value"][1]) >= len(CONTACTS)
        ),
        timeout=60,
    )
    send_contacts(stack, wave=2)
    acked.add(await acknowledge_a_fire_dispatch(stack, receiver, agency_key, acked))
    emergencies_dispatched = sum(1 for kind, *_ in CONTACTS if kind == "emergency")
    await eventually(
        lambda: (
            query(prometheus, "sum(e112_reports_received_total)")
            and float(query(prometheus, "sum(e112_reports_received_total)")[0]["value"][1]) >= 2 * len(CONTACTS)
            and float(query(prometheus, "sum(e112_report_ack_seconds_count)")[0]["value"][1]) >= 2
        ),
        timeout=60,
    )
    # Prometheus counts a delivery when the notifier has it; the receiver may still be
    # answering the last webhook, so wait for it rather than read it at once.
    await eventually(
        lambda: len({r.json["report_id"] for r in receiver.requests}) >= 2 * emergencies_dispatched, timeout=60
    )
    time.sleep(3)  # a few more scrapes, so rates over the last minute have their samples

    # Every alert expression evaluates; the services are all up and named as the rules expect.
    rule_file = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    alerts = [r for g in rule_file["groups"] for r in g["rules"] if "alert" in r]
    results = {a["alert"]: query(prometheus, a["expr"]) for a in alerts}
    assert results["E112ServiceDown"] == []
    assert [s["metric"]["job"] for s in results["E112ServiceMissing"] if s["metric"]["job"] in stack.services] == []
    assert results["E112NoOperatorOnDuty"] == [] and results["E112DeadLetters"] == []
    assert {s["metric"]["job"] for s in query(prometheus, 'up{job=~"intake|router|notifier|shifts|console"} == 1')} == (
        set(stack.services)
    )

    # Every dashboard query evaluates, and the panels this traffic fills have data.
    empty = []
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            if panel["type"] in ("row", "text"):
                continue
            data = []
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                data += query(prometheus, expr)
            if panel["title"] in PANELS_WITH_DATA.get(path.name, []) and not data:
                empty.append(f"{path.name}: {panel['title']}: {[t['expr'] for t in panel['targets']]}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    titles = {
        p["title"]
        for path in (MONITORING / "dashboards").glob("*.json")
        for p in json.loads(path.read_text())["panels"]
    }
    assert [t for panels in PANELS_WITH_DATA.values() for t in panels if t not in titles] == []

    # The figures add up: wave two's contacts are counted, the shares are shares.
    contacts = float(query(prometheus, "sum(increase(e112_reports_received_total[10m]))")[0]["value"][1])
    assert contacts > 0
    share = float(
        query(
            prometheus,
            'sum(increase(e112_reports_received_total{kind=~"prank|ghost"}[10m])) / '
            "sum(increase(e112_reports_received_total[10m]))",
        )[0]["value"][1]
    )
    assert 0 < share < 1
    on_duty = float(query(prometheus, "sum(max by (shift) (e112_operators_on_duty))")[0]["value"][1])
    assert on_duty == 1

    # The rule file loaded into Prometheus, every rule healthy once evaluated.
    def rules_evaluated():
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=30).json()["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        if len(loaded) != len(alerts) or any(r["lastEvaluation"].startswith("0001") for r in loaded):
            return None
        return loaded

    loaded = await eventually(rules_evaluated, timeout=30)
    assert {r["name"] for r in loaded} == {a["alert"] for a in alerts}
    assert [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"] == []
