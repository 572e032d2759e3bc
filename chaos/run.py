"""The chaos run: one stack (own data directory, free ports), the agency endpoint, the
topic reader and the steady load; the scenarios one after another, each checked on the
ledger for the reports accepted during it."""

import asyncio
import contextlib
import json
import logging
import random
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.ledger import Ledger, ScenarioResult, check
from chaos.load import LoadGenerator, TopicReader
from chaos.receiver import REFUSE, SLOW, UNAVAILABLE, UP, AgencyEndpoint
from devstack.processes import Stack, free_port
from schemas.catalog import AGENCIES
from services.router.routing import RoutingTable

log = logging.getLogger("chaos")

SCENARIOS = ("sigkill", "postgres", "agency-down", "agency-slow", "broker")
KILLED = ("intake", "router", "notifier", "shifts")
WEBHOOK_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Profile:
    name: str
    rate: float  # reports per second
    warmup: float  # load before the fault
    tail: float  # load after the fault
    drain_timeout: float  # after the load stops: how long to wait with no delivery arriving...
    drain_cap: float  # ...and at most, while deliveries still arrive (slow is not lost)
    settle: float  # after everything arrived, how long to watch for duplicates
    kill_rounds: int  # each service is SIGKILLed this many times
    kill_gap: tuple[float, float]  # seconds between kills, uniform
    broker_down: float
    postgres_down: float
    agency_refuse: float
    agency_503: float
    agency_slow: float


FULL = Profile(
    "full",
    rate=25,
    warmup=10,
    tail=15,
    drain_timeout=120,
    drain_cap=1200,
    settle=10,
    kill_rounds=10,
    kill_gap=(2.0, 8.0),
    broker_down=30,
    postgres_down=30,
    agency_refuse=90,
    agency_503=90,
    agency_slow=180,
)
SHORT = Profile(
    "short",
    rate=10,
    warmup=3,
    tail=3,
    drain_timeout=45,
    drain_cap=150,
    settle=3,
    kill_rounds=2,
    kill_gap=(1.0, 3.0),
    broker_down=4,
    postgres_down=4,
    agency_refuse=8,
    agency_503=8,
    agency_slow=12,
)

# Settings shortened so that a run takes minutes, not hours; what each one shortens:
EXTRA_ENV = {
    # The agencies' webhook receiver listens on loopback, which the notifier otherwise refuses.
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    # A SIGKILLed consumer's partitions move to its restarted self (or another member)
    # after the session timeout: 2 s instead of 6 s, as in the e2e tests.
    "KAFKA_SESSION_TIMEOUT_MS": "2000",
    # The outbox relays poll every 0.5 s instead of 1 s (they are also woken by NOTIFY).
    "OUTBOX_POLL_INTERVAL": "0.5",
    # The agency is "slow" when it answers after this: 2 s instead of 10 s, so a slow
    # agency costs the run seconds per attempt, not tens of seconds.
    "WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_SECONDS),
    # Retry backoff and breaker cool-down capped at 15 s (defaults 120 s and 300 s): the
    # retry bound (12 attempts) stays, and the recovery time measured after an outage of
    # minutes reflects the pipeline, not a five-minute cool-down.
    "DELIVERY_BACKOFF_CAP_SECONDS": "15",
    "BREAKER_COOLDOWN_SECONDS": "5",
    "BREAKER_COOLDOWN_CAP_SECONDS": "15",
    # Nobody acknowledges in the chaos run: without this every dispatch would be re-sent
    # and escalated after 5 minutes, which is load this issue does not test.
    "DEFAULT_ACK_DEADLINE_SECONDS": "86400",
    # The intake watchdog re-drives a report not dispatched within this (default 60 s).
    "WATCHDOG_BOUND_SECONDS": "15",
}


@dataclass
class Harness:
    profile: Profile
    data_dir: Path
    seed: int = 0
    stack: Stack | None = None
    ledger: Ledger | None = None
    endpoint: AgencyEndpoint | None = None
    reader: TopicReader | None = None
    load: LoadGenerator | None = None
    table: RoutingTable | None = None
    api_key: str = field(default_factory=lambda: "chaos-" + secrets.token_hex(20))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.data_dir / "ledger.jsonl")
        self.stack = Stack(
            data_dir=self.data_dir,
            api_key=self.api_key,
            ephemeral=False,
            broker_port=free_port(),
            ports={name: free_port() for name in KILLED},
            extra_env=dict(EXTRA_ENV),
        )
        await asyncio.to_thread(self.stack.start_infrastructure)
        await asyncio.to_thread(self.stack.start_services)
        self.endpoint = AgencyEndpoint(self.ledger, port=free_port(), slow_seconds=WEBHOOK_TIMEOUT_SECONDS + 1.5)
        async with httpx.AsyncClient(headers=self.auth, timeout=10) as client:
            notifier = self.stack.services["notifier"].url
            for agency in AGENCIES:
                response = await client.put(
                    f"{notifier}/v1/agencies/{agency}/webhook",
                    json={"url": f"{self.endpoint.url}/hooks/{agency}", "updated_by": "chaos"},
                )
                response.raise_for_status()
            # The oracle's table: read once from the router's API (nobody changes it here).
            response = await client.get(f"{self.stack.services['router'].url}/v1/routing-table")
            response.raise_for_status()
            self.table = RoutingTable.model_validate(response.json()["table"])
            self.ledger.add("table", version=response.json()["version"])
        self.reader = TopicReader(self.stack.bootstrap, self.ledger)
        self.reader.start()
        self.load = LoadGenerator(
            self.stack.services["intake"].url, self.api_key, self.ledger, rate=self.profile.rate, seed=self.seed
        )

    async def close(self) -> None:
        if self.load:
            await self.load.close()
        if self.reader:
            await self.reader.stop()
        if self.endpoint:
            self.endpoint.close()
        if self.stack:
            await asyncio.to_thread(self.stack.stop)
        if self.ledger:
            self.ledger.close()

    async def restart_services(self) -> None:
        for service in self.stack.services.values():
            await asyncio.to_thread(service.stop)
            await asyncio.to_thread(service.start)
        for service in self.stack.services.values():
            await asyncio.to_thread(service.wait_ready, 90)

    # -- the scenarios -------------------------------------------------------------

    async def run(self, name: str) -> ScenarioResult:
        faults = {
            "sigkill": self.fault_sigkill,
            "postgres": self.fault_postgres,
            "agency-down": self.fault_agency_down,
            "agency-slow": self.fault_agency_slow,
            "broker": self.fault_broker,
        }
        p = self.profile
        log.info("scenario %s: start", name)
        self.load.start(name)
        await asyncio.sleep(p.warmup)
        fault_start = time.time()
        self.ledger.add("fault", scenario=name, event="start")
        info = await faults[name]()
        fault_end = time.time()
        self.ledger.add("fault", scenario=name, event="end", **info)
        log.info("scenario %s: fault over after %.0f s; load goes on %.0f s", name, fault_end - fault_start, p.tail)
        await asyncio.sleep(p.tail)
        await self.load.stop()
        ids = {r["report_id"] for r in self.ledger.of("accepted") if r["scenario"] == name}
        drain_started = time.monotonic()
        deadline, cap, delivered = drain_started + p.drain_timeout, drain_started + p.drain_cap, -1
        while True:
            result = check(self.ledger, self.table, scenario=name, report_ids=ids, fault_end=fault_end)
            if not (result.webhook.missing or result.topic.missing):
                break
            now = time.monotonic()
            if result.webhook.delivered + result.topic.delivered > delivered:  # still coming: wait on
                delivered = result.webhook.delivered + result.topic.delivered
                deadline = min(cap, now + p.drain_timeout)
            if now > deadline:
                break
            await asyncio.sleep(1.0)
        drained = time.monotonic() - drain_started
        await asyncio.sleep(p.settle)  # a duplicate may still come
        result = check(
            self.ledger, self.table, scenario=name, report_ids=ids, fault_end=fault_end, fault_start=fault_start
        )
        result.kills = info.get("kills", {})
        result.notes += [f"drained {drained:.0f} s after the load stopped"] if drained > p.drain_timeout else []
        result.notes += await self.diagnose(result)
        self.ledger.flush()
        return result

    async def fault_sigkill(self) -> dict:
        p = self.profile
        rnd = random.Random(self.seed)
        order = [name for _ in range(p.kill_rounds) for name in rnd.sample(KILLED, len(KILLED))]
        kills = dict.fromkeys(KILLED, 0)
        for name in order:
            await asyncio.sleep(rnd.uniform(*p.kill_gap))
            service = self.stack.services[name]
            service.stop(signal.SIGKILL)
            kills[name] += 1
            await asyncio.to_thread(service.start)
            await asyncio.to_thread(service.wait_ready, 90)
        return {"kills": kills}

    async def fault_broker(self) -> dict:
        await asyncio.to_thread(self.stack.stop_broker)
        await asyncio.sleep(self.profile.broker_down)
        await asyncio.to_thread(self.stack.start_broker)
        # The new broker is empty: an agency's reader starts again from its beginning.
        await self.reader.restart()
        return {}

    async def fault_postgres(self) -> dict:
        postgres = self.stack._postgres
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(self.profile.postgres_down)
        uri = await asyncio.to_thread(postgres.start)
        if uri.partition("?")[2] != self.stack.database_url.partition("?")[2]:
            raise RuntimeError(f"PostgreSQL came back elsewhere ({uri}); the services cannot follow")
        return {}

    async def fault_agency_down(self) -> dict:
        self.endpoint.set_mode(REFUSE)
        await asyncio.sleep(self.profile.agency_refuse)
        self.endpoint.set_mode(UNAVAILABLE)
        await asyncio.sleep(self.profile.agency_503)
        self.endpoint.set_mode(UP)
        return {}

    async def fault_agency_slow(self) -> dict:
        self.endpoint.set_mode(SLOW)
        await asyncio.sleep(self.profile.agency_slow)
        self.endpoint.set_mode(UP)
        return {}

    async def diagnose(self, result: ScenarioResult) -> list[str]:
        """For the first few missing deliveries: where the pipeline says they are."""
        notes = []
        missing = result.webhook.missing + [m for m in result.topic.missing if m not in result.webhook.missing]
        seen = set()
        async with httpx.AsyncClient(headers=self.auth, timeout=5) as client:
            for item in missing:
                report_id = item["report_id"]
                if report_id in seen or len(seen) >= 5:
                    continue
                seen.add(report_id)
                parts = [f"report {report_id} ({item['via']}, {item['agency']})"]
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    body = (await client.get(f"{self.stack.services['intake'].url}/v1/reports/{report_id}")).json()
                    parts.append(f"intake status {body.get('status')}")
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    response = await client.get(f"{self.stack.services['router'].url}/v1/decisions/{report_id}")
                    parts.append(
                        f"router {response.json().get('outcome')}" if response.status_code == 200 else "router: none"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    response = await client.get(
                        f"{self.stack.services['notifier'].url}/v1/dispatches/{item['dispatch_id']}"
                    )
                    whose = "notifier (the incident's dispatch)" if item["incident_id"] else "notifier"
                    parts.append(
                        f"{whose} {response.json().get('state')}" if response.status_code == 200 else f"{whose}: none"
                    )
                webhook = any(
                    m["report_id"] == report_id and m["agency"] == item["agency"] for m in result.webhook.missing
                )
                topic = any(m["report_id"] == report_id and m["agency"] == item["agency"] for m in result.topic.missing)
                parts.append("missing on " + "+".join(n for n, f in (("webhook", webhook), ("topic", topic)) if f))
                notes.append("; ".join(parts))
        return notes


async def run_chaos(profile: Profile, scenarios: list[str], data_dir: Path, seed: int = 0) -> dict:
    harness = Harness(profile, data_dir, seed)
    started = time.time()
    results: list[ScenarioResult] = []
    try:
        await harness.start()
        await asyncio.sleep(2)  # the reader has joined
        for index, name in enumerate(scenarios):
            results.append(await harness.run(name))
            log.info("scenario %s: %s", name, "ok" if results[-1].ok else "FAILED")
            if not results[-1].ok and index + 1 < len(scenarios):
                # What broke here must not be blamed on the next scenario: its services
                # start afresh (PostgreSQL keeps its data; the broker keeps what it holds).
                await harness.restart_services()
                results[-1].notes.append("services restarted after this scenario failed")
    finally:
        await harness.close()
    return {
        "profile": profile.__dict__,
        "extra_env": EXTRA_ENV,
        "data_dir": str(data_dir),
        "seed": seed,
        "started_at": started,
        "seconds": round(time.time() - started, 1),
        "endpoint_answers": harness.endpoint.answered if harness.endpoint else {},
        "ok": all(r.ok for r in results) and len(results) == len(scenarios),
        "scenarios": [r.to_dict() for r in results],
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(report: dict) -> str:
    head = [
        "scenario",
        "ok",
        "accepted",
        "no 202",
        "linked",
        "expected",
        "webhook delivered",
        "topic delivered",
        "missing (wh/topic)",
        "dups after dedup (wh/topic)",
        "unexpected",
        "recovery s",
        "max latency s",
        "received/distinct (wh; topic)",
        "fault s",
        "kills",
    ]
    rows = []
    for s in report["scenarios"]:
        wh, tp = s["webhook"], s["topic"]
        kills = " ".join(f"{k}={v}" for k, v in s["kills"].items()) or "-"
        rows.append(
            [
                s["scenario"],
                "yes" if s["ok"] else "NO",
                s["accepted"],
                s["not_accepted"],
                s["linked"],
                s["expected"],
                wh["delivered"],
                tp["delivered"],
                f"{wh['missing_count']}/{tp['missing_count']}",
                f"{wh['duplicates_count']}/{tp['duplicates_count']}",
                wh["unexpected_count"] + tp["unexpected_count"],
                "never" if s["recovery_seconds"] is None else _fmt(s["recovery_seconds"]),
                _fmt(max(wh["max_latency_seconds"] or 0.0, tp["max_latency_seconds"] or 0.0)),
                f"{wh.get('received', '-')}/{wh.get('distinct', '-')}; "
                f"{tp.get('received', '-')}/{tp.get('distinct', '-')}",
                _fmt(s["fault_seconds"]),
                kills,
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(report: dict, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    notes = [f"- {s['scenario']}: {n}" for s in report["scenarios"] for n in s["notes"]]
    text = [
        f"# Chaos run ({report['profile']['name']}): {'all checks pass' if report['ok'] else 'CHECKS FAIL'}",
        "",
        f"{report['profile']['rate']} reports/s; {report['seconds']} s in all; "
        f"data, ledger and logs in `{report['data_dir']}`.",
        "",
        table(report),
        "",
        "No 202: reports the load generator gave up on (retried with their Idempotency-Key for 60 s)."
        " Missing: an expected (report, agency) delivery never seen. Duplicates: one dispatch (or one added caller)"
        " seen by an agency under more than one ce_id. Recovery: from the fault's end until the last delivery"
        " outstanding then (of the reports accepted by then) arrived; never: something is still missing.",
    ]
    if notes:
        text += ["", "## Where missing reports are", "", *notes]
    (results_dir / "latest.md").write_text("\n".join(text) + "\n")
