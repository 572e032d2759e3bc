"""The steady load (reports at a fixed rate, every category, some of them another caller
of a recent incident) and the agencies' plain Kafka reader of every agency topic."""

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer

from chaos.ledger import Ledger
from schemas import topics
from schemas.catalog import AGENCIES, CATEGORIES, KECAMATAN

log = logging.getLogger(__name__)

SUBTYPES = [None, "rumah", "pohon_tumbang_kabel", "Kabel-Telepon putus", "tiang_listrik_roboh", "lainnya"]
# Calls are never held for verification; public channels dispatch at once (flagged
# unverified) only for the life-threatening categories, so only those go by WhatsApp.
LIFE_THREATENING = ("kebakaran", "bencana_alam", "kecelakaan", "penyakit")
RELATED_SHARE = 0.1
RETRY_FOR_SECONDS = 60.0


class LoadGenerator:
    """Posts `rate` reports a second until stopped. Each report has its own
    Idempotency-Key and is retried with it (connection refused, 5xx) for up to a minute,
    as an app would: a 202 is recorded once, a report never accepted is recorded too."""

    def __init__(self, intake_url: str, api_key: str, ledger: Ledger, *, rate: float, seed: int = 0):
        self.intake_url = intake_url
        self.ledger = ledger
        self.rate = rate
        self.random = random.Random(seed)
        self.scenario = "warmup"
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=15.0,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._seq = 0
        self._recent: list[tuple[float, dict, str]] = []  # (accepted at, body, report id) of incidents
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self.posted = 0

    def start(self, scenario: str) -> None:
        self.scenario = scenario
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop making new reports and wait until every one started has an answer."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop()
        await self.client.aclose()

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while True:
            next_at += interval
            task = asyncio.create_task(self._post_one(self._next_report(), self.scenario))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _next_report(self) -> tuple[dict, str | None]:
        self._seq += 1
        rnd = self.random
        now = time.time()
        self._recent = [r for r in self._recent if now - r[0] < 120][-200:]
        if self._recent and rnd.random() < RELATED_SHARE:
            _, incident, incident_id = rnd.choice(self._recent)
            body = {
                **incident,
                "description": f"penelepon lain #{self._seq}",
                "caller": {"phone": f"0813{rnd.randrange(10**7, 10**8)}"},
            }
            return body, incident_id
        category = CATEGORIES[self._seq % len(CATEGORIES)]
        casualties = rnd.choice([None, None, 0, 1, 2, 5, 7])
        kecamatan = rnd.choice(KECAMATAN)
        body = {
            "category": category,
            "description": f"chaos laporan #{self._seq}",
            # A desa of its own: only the reports meant as another caller are linked.
            "location": {
                "kecamatan": rnd.choice([kecamatan, kecamatan.upper(), kecamatan.lower()]),
                "desa": f"Chaos-{uuid.uuid4().hex[:10]}",
            },
            "caller": {"name": "Penelepon Uji", "phone": f"0812{rnd.randrange(10**7, 10**8)}"},
            "channel": rnd.choice(["whatsapp", "call", "call"]) if category in LIFE_THREATENING else "call",
        }
        subtype = rnd.choice(SUBTYPES)
        if subtype:
            body["subtype"] = subtype
        if casualties is not None:
            body["casualties"] = casualties
        return body, None

    async def _post_one(self, item: tuple[dict, str | None], scenario: str) -> None:
        try:
            await self._post(item, scenario)
        except Exception:  # a bug here must show, not vanish in a task nobody awaits
            log.exception("load generator: posting a report failed")
            self.ledger.add("not_accepted", scenario=scenario, error="load generator error")

    async def _post(self, item: tuple[dict, str | None], scenario: str) -> None:
        body, meant_for = item
        key = str(uuid.uuid4())
        started = time.time()
        last = None
        while time.time() - started < RETRY_FOR_SECONDS:
            try:
                response = await self.client.post(
                    f"{self.intake_url}/v1/reports", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 202:
                    self._accepted(response.json(), body, meant_for, scenario, started)
                    return
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            await asyncio.sleep(0.5)
        self.ledger.add("not_accepted", scenario=scenario, idempotency_key=key, error=last)

    def _accepted(self, answer: dict, body: dict, meant_for: str | None, scenario: str, started: float) -> None:
        self.posted += 1
        location = body["location"]
        facts = {
            "category": body.get("category"),
            "subtype": body.get("subtype"),
            "casualties": body.get("casualties"),
            "kecamatan": location.get("kecamatan"),
        }
        self.ledger.add(
            "accepted",
            report_id=answer["id"],
            scenario=scenario,
            facts=facts,
            channel=body.get("channel"),
            kind=answer.get("kind", "emergency"),
            status=answer.get("status"),
            linked_to=answer.get("linked_to"),
            meant_for=meant_for,
            verification=answer.get("verification"),
            posted_at=started,
        )
        if not answer.get("linked_to") and meant_for is None:
            self._recent.append((time.time(), body, answer["id"]))


class TopicReader:
    """Reads every agency topic from the beginning with a plain client (no group), as an
    agency system would; `restart()` after the broker came back empty."""

    def __init__(self, bootstrap: str, ledger: Ledger):
        self.bootstrap = bootstrap
        self.ledger = ledger
        self.messages = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def restart(self) -> None:
        await self.stop()
        self.start()

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                *[topics.dispatch_topic(a) for a in AGENCIES],
                bootstrap_servers=self.bootstrap,
                group_id=None,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
                metadata_max_age_ms=1000,
                request_timeout_ms=10_000,
            )
            try:
                await consumer.start()
                while True:
                    batch = await consumer.getmany(timeout_ms=200, max_records=2000)
                    for records in batch.values():
                        for r in records:
                            self._record(r)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a reader that stops reading hides every delivery after
                log.warning("topic reader restarting after %s", type(exc).__name__)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 5)

    def _record(self, r) -> None:
        headers = {k: v.decode(errors="replace") for k, v in (r.headers or [])}
        try:
            data = json.loads(r.value or b"")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        self.messages += 1
        self.ledger.add(
            "topic",
            agency=r.topic.removeprefix("e112.dispatch."),
            ce_id=headers.get("ce_id"),
            ce_type=headers.get("ce_type"),
            report_id=data.get("report_id"),
            dispatch_id=data.get("dispatch_id"),
            new_report_id=data.get("new_report_id"),
            partition=r.partition,
            offset=r.offset,
        )
