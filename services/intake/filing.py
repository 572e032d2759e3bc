"""Filing reports: every POST's report stored together with those that arrive while a
transaction is running (group commit).

In a surge dozens of POSTs are in flight at once. One transaction each cost about seven
statements and a commit per report, the largest single share of the database's work
(bench --profile). The desk queues each validated report; a few writers each take what
is waiting and file it in one transaction: the Idempotency-Keys claimed in one
statement, the linking locks taken in one, the open incidents near each report read in
one, the reports, their timelines and their report.received events written in one. Each
POST is answered only after the commit that holds its report, as before. Alone (a quiet
night) a report is filed at once, by itself: nothing waits for a batch to fill.

Each report is decided as it would be if the batch's reports were filed one after the
other, in the order they arrived: a second caller of a fire in the same batch is linked
to the first, a key used twice in one batch files once. If a batch fails for anything
but an unavailable database, its reports are filed again one per transaction, so that a
report that cannot be stored fails alone."""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
from prometheus_client import CollectorRegistry, Histogram

from schemas.catalog import Verification
from schemas.reports import ReportCreate
from services.common.consumer import TRANSIENT_ERRORS
from services.intake import store
from services.intake.clients import Client
from services.intake.linking import Candidate, Link, Place, find_incident
from services.intake.settings import IntakeSettings
from services.intake.store import KeyClaim, Nearby, NewReport
from services.intake.verification import PolicyRule, verification_for
from services.intake.verification_api import live_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filing:
    """A POST's report, validated, to be filed."""

    report_id: UUID
    report: ReportCreate
    received_at: datetime
    client: Client
    digest: str  # store.request_hash of the report
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Filed:
    """Stored as a new report."""

    status: str
    link: Link | None
    verification: Verification
    caller_pranks: int


@dataclass(frozen=True)
class Replayed:
    """The Idempotency-Key's first request filed this report (unexpired, same body)."""

    report: asyncpg.Record


@dataclass(frozen=True)
class KeyReused:
    """The Idempotency-Key's first request had another body: nothing filed."""


Outcome = Filed | Replayed | KeyReused


class DeskClosed(ConnectionError):
    """The service is stopping: the report was not filed (answered 503, like a database away)."""


@dataclass(frozen=True)
class FilingRules:
    idempotency_ttl: timedelta
    link_related_reports: bool
    link_window: timedelta
    link_distance_m: float
    prank_period: timedelta

    @classmethod
    def of(cls, settings: IntakeSettings) -> "FilingRules":
        return cls(
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
            link_related_reports=settings.link_related_reports,
            link_window=timedelta(minutes=settings.link_window_minutes),
            link_distance_m=settings.link_distance_m,
            prank_period=timedelta(days=settings.prank_flag_days),
        )


async def file_together(conn: asyncpg.Connection, filings: list[Filing], rules: FilingRules) -> list[Outcome]:
    """File `filings` in the caller's transaction, in their order; an outcome each."""
    outcomes: list[Outcome | None] = [None] * len(filings)
    first_with_key: dict[tuple[str, str], int] = {}
    for i, f in enumerate(filings):
        if f.idempotency_key is not None:
            first_with_key.setdefault((f.client.id, f.idempotency_key), i)
    claims = [KeyClaim(*key, filings[i].report_id, filings[i].digest) for key, i in first_with_key.items()]
    used = await store.claim_idempotency_keys(conn, claims, rules.idempotency_ttl)
    replays: dict[int, UUID] = {}
    for i, f in enumerate(filings):
        if f.idempotency_key is None:
            continue
        key = (f.client.id, f.idempotency_key)
        first = used.get(key)
        if first is None and first_with_key[key] != i:  # the key's first use is earlier in this batch
            earlier = filings[first_with_key[key]]
            first = store.FirstRequest(earlier.report_id, earlier.digest)
        if first is None:
            continue
        if first.request_hash != f.digest:
            outcomes[i] = KeyReused()
        else:
            replays[i] = first.report_id
    new = [i for i in range(len(filings)) if outcomes[i] is None and i not in replays]
    decided = await _decide(conn, [filings[i] for i in new], rules)
    stored = await store.store_reports(conn, decided)
    for i, n, s in zip(new, decided, stored, strict=True):
        outcomes[i] = Filed(s.status, n.link, n.verification, s.caller_pranks)
    if replays:
        rows = {r["id"]: r for r in await store.fetch_reports(conn, list(set(replays.values())))}
        for i, report_id in replays.items():
            outcomes[i] = Replayed(rows[report_id])
    return outcomes  # type: ignore[return-value]


async def _decide(conn: asyncpg.Connection, filings: list[Filing], rules: FilingRules) -> list[NewReport]:
    """Each new report's link and verification, in order: a report becomes an open
    incident that the next ones may be linked to."""
    looking = [f for f in filings if rules.link_related_reports and f.report.kind == "emergency"]
    nearby: dict[UUID, list[Candidate]] = {}
    if looking:
        # New emergencies that could be one incident look for it one at a time (they
        # share a lock), so two callers of one fire a moment apart cannot both miss each
        # other; unrelated ones go side by side (store.link_lock_ids). Taken in one sorted
        # statement before the incidents are read: that read must see what the lock's
        # previous holder committed.
        locks = sorted(
            {k for f in looking for k in store.link_lock_ids(f.report.category, _place(f), rules.link_distance_m)}
        )
        await store.lock_for_linking(conn, locks)
        looks = [Nearby(f.report.category, f.received_at - rules.link_window, _place(f)) for f in looking]
        found = await store.open_incidents_near(conn, looks, rules.link_distance_m)
        nearby = {f.report_id: candidates for f, candidates in zip(looking, found, strict=True)}
    policy: list[PolicyRule] | None = None
    opened: list[tuple[str, Candidate]] = []  # incidents opened by this batch's earlier reports
    decided = []
    for f in filings:
        link = verification = None
        if f.report_id in nearby:
            here = _place(f)
            earlier = [c for category, c in opened if category == f.report.category]
            link = find_incident(
                here,
                f.received_at,
                nearby[f.report_id] + earlier,
                window=rules.link_window,
                max_distance_m=rules.link_distance_m,
            )
        if link:
            verification = "not_required"
        else:
            if policy is None and _held_by_policy(f.report):
                policy = await live_rules(conn)
            verification = verification_for(
                policy or [], kind=f.report.kind, channel=f.report.channel, category=f.report.category
            )
        n = NewReport(
            f.report_id,
            f.report,
            f.received_at,
            f.client.name,
            f.client.id,
            link,
            verification,
            pranks_since=f.received_at - rules.prank_period,
        )
        if f.report_id in nearby and store.status_on_receipt(f.report, link, verification) == "received":
            opened.append((f.report.category, Candidate(f.report_id, f.received_at, _place(f))))
        decided.append(n)
    return decided


def _held_by_policy(report: ReportCreate) -> bool:
    """Whether the policy is read for it: verification_for answers the rest without it."""
    return verification_for([], kind=report.kind, channel=report.channel, category=report.category) != "not_required"


def _place(f: Filing) -> Place:
    loc = f.report.location
    return Place(loc.kecamatan, loc.desa, loc.lat, loc.lon)


class FilingMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.batch_size = Histogram(
            "e112_filing_batch_reports",
            "Reports filed in one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )


class FilingDesk:
    """The queue of reports to file and the writers that file them (see the module)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        rules: FilingRules,
        metrics: FilingMetrics,
        *,
        writers: int = 2,
        batch_max: int = 64,
    ) -> None:
        self.pool, self.rules, self.metrics = pool, rules, metrics
        self.writers, self.batch_max = writers, batch_max
        self._queue: asyncio.Queue[tuple[Filing, asyncio.Future]] = asyncio.Queue()
        self._closed = False  # reports queued before the writers start wait for them

    async def file(self, filing: Filing) -> Outcome:
        """File the report; returns once the transaction that holds it has committed."""
        if self._closed:
            raise DeskClosed("not taking reports")
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((filing, done))
        return await done

    async def run(self) -> None:
        """The writers, until cancelled; reports still queued then are answered DeskClosed."""
        try:
            await asyncio.gather(*(self._write() for _ in range(self.writers)))
        finally:
            self._closed = True
            while not self._queue.empty():
                _, done = self._queue.get_nowait()
                if not done.done():
                    done.set_exception(DeskClosed("the service is stopping"))

    async def _write(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._file(batch, alone_on_failure=len(batch) > 1)
            except asyncio.CancelledError:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(DeskClosed("the service is stopping"))
                raise

    async def _file(self, batch: list[tuple[Filing, asyncio.Future]], *, alone_on_failure: bool) -> None:
        self.metrics.batch_size.observe(len(batch))
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                outcomes = await file_together(conn, [f for f, _ in batch], self.rules)
        except TRANSIENT_ERRORS as exc:
            _fail(batch, exc)
        except Exception as exc:
            if not alone_on_failure:
                _fail(batch, exc)
                return
            log.warning(
                "a batch of reports failed; filing them one by one",
                extra={"fields": {"reports": len(batch), "error": type(exc).__name__}},
            )
            for item in batch:
                await self._file([item], alone_on_failure=False)
        else:
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if not done.done():
                    done.set_result(outcome)


def _fail(batch: list[tuple[Filing, asyncio.Future]], exc: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(exc)
