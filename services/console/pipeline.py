"""Whether the pipeline behind the console is keeping up, for the banner every screen
shows: a service not ready (its database or the broker gone), a consumer group behind
past the bound (read by intake's watchdog from the broker), reports stalled, an agency
whose webhook circuit breaker is open (the notifier cannot reach it; phone tasks follow).

Gathered from the services' own `/readyz` and `/metrics` (parsed with prometheus_client's
parser), so the banner says what the services themselves report; `assess` is pure."""

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

WATCHED_SERVICES = ("intake", "notifier", "shifts")


@dataclass
class Readings:
    ready: dict[str, dict[str, bool] | None] = field(default_factory=dict)  # service -> its checks; None: no answer
    backlog: dict[str, float] = field(default_factory=dict)  # consumer group -> events not yet committed
    stalled: float | None = None
    breaker_open: list[str] = field(default_factory=list)  # agencies


def assess(readings: Readings, backlog_bound: float) -> list[dict]:
    """The banner's items, most serious first: each a code with what it is about."""
    items = []
    for service, checks in sorted(readings.ready.items()):
        if checks is None:
            items.append({"code": "service_down", "service": service})
        else:
            failed = sorted(name for name, ok in checks.items() if not ok)
            if failed:
                items.append({"code": "service_not_ready", "service": service, "checks": failed})
    for group, events in sorted(readings.backlog.items()):
        if events > backlog_bound:
            items.append({"code": "behind", "group": group, "events": int(events)})
    for agency in sorted(readings.breaker_open):
        items.append({"code": "agency_unreachable", "agency": agency})
    if readings.stalled:
        items.append({"code": "stalled", "reports": int(readings.stalled)})
    return items


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name: [(labels, value)]."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


async def gather(clients: dict[str, httpx.AsyncClient]) -> Readings:
    """Readiness of each watched service, intake's watchdog figures and the notifier's
    breakers, asked side by side; an upstream that does not answer counts as down."""
    readings = Readings()

    async def ready(service: str) -> None:
        try:
            response = await clients[service].get("/readyz")
            readings.ready[service] = dict(response.json().get("checks") or {"ready": response.is_success})
        except (httpx.HTTPError, ValueError):
            readings.ready[service] = None

    async def metrics(service: str) -> dict:
        try:
            response = await clients[service].get("/metrics")
            return parse_metrics(response.text) if response.is_success else {}
        except (httpx.HTTPError, ValueError):
            return {}

    intake, notifier, *_ = await asyncio.gather(
        metrics("intake"), metrics("notifier"), *(ready(s) for s in WATCHED_SERVICES)
    )
    readings.backlog = {
        labels["group"]: value for labels, value in intake.get("e112_watchdog_consumer_backlog_events", [])
    }
    stalled = intake.get("e112_watchdog_stalled_reports")
    readings.stalled = stalled[0][1] if stalled else None
    readings.breaker_open = [
        labels["agency"] for labels, value in notifier.get("e112_webhook_breaker_open", []) if value
    ]
    return readings
