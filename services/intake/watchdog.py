"""The watchdog: a life-safety system does not trust one path.

Any emergency accepted but not dispatched to its agencies within the bound, for
whatever reason (a lost message, a broker that lost its memory, a bug), is re-driven
and the on-duty operators alerted. Every interval one replica (a PostgreSQL advisory
lock for the round) reads the emergencies of the last day older than the bound whose
status says they are still on their way, and decides from each timeline what is missing
(stall_rules.py). Each stalled report that is due (backoff per report, at most once per
bound) gets, in one transaction: its attempt counted, a `stalled` timeline entry, and a
`report.stalled` event on e112.reports (key report id, through the outbox) carrying the
report as intake holds it. The router re-drives it from that (services/router/stalled.py:
the same ce_ids and dispatch ids as the first time, or routed now if the router never
saw it); the shifts service opens a `stalled` task for the operators.

The entry is written here, not by the timeline consumer from the event: the operators
must see it even when the broker is the thing that failed.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import ReportStalled
from services.common.backlog import BacklogProbe
from services.common.consumer import TRANSIENT_ERRORS
from services.common.outbox import enqueue
from services.intake import stall_rules, store
from services.intake.status import Entry

log = logging.getLogger(__name__)

LOCK_KEY = "e112-intake-watchdog"
WINDOW = timedelta(days=1)  # older reports are the operators' business, not the watchdog's
# Reports looked at per round, newest first: far more than a day of the regency's
# emergencies still on their way; a flood beyond it still sees its newest reports.
BATCH = 5000
# How long a backlog holds re-drives back, in bounds: a slow pipeline catches up in that
# time; a consumer stuck for good must still reach the operators as stalled reports.
HOLD_LIMIT_BOUNDS = 5


class WatchdogMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.redriven = Counter(
            "e112_watchdog_redriven_total",
            "Stalled reports the watchdog re-drove, by what was missing (routing or delivery)",
            ["missing"],
            registry=registry,
        )
        self.held_back = Counter(
            "e112_watchdog_held_back_total",
            "Watchdog rounds that saw stalled reports but re-drove none: a consumer group was behind",
            registry=registry,
        )
        self.backlog = Gauge(
            "e112_watchdog_consumer_backlog_events",
            "Events a pipeline consumer group had yet to commit, at the watchdog's last look",
            ["group"],
            registry=registry,
        )
        self.stalled = Gauge(
            "e112_watchdog_stalled_reports",
            "Accepted reports not dispatched to all their agencies within the bound, at the watchdog's last look",
            registry=registry,
        )


@dataclass(frozen=True)
class Redriven:
    report_id: UUID
    missing: list[str]
    attempt: int


@dataclass
class Round:
    led: bool  # False: another replica held the lock; nothing was looked at
    stalled: int = 0
    held_back: bool = False  # the pipeline was behind: nothing re-driven
    redriven: list[Redriven] = field(default_factory=list)


class Watchdog:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        bound: timedelta,
        interval: float,
        metrics: WatchdogMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backlog: BacklogProbe | None = None,
        hold_backlog: int = 100,
        max_attempts: int = 6,
    ):
        """`backlog`: the pipeline's consumer groups; while one of them has more than
        `hold_backlog` events to read, stalled reports are counted but not re-driven
        (they are late, not lost) until HOLD_LIMIT_BOUNDS bounds have passed. A report
        is re-driven `max_attempts` times at most: the operators have had a task for it
        since the first."""
        self.pool = pool
        self.bound = bound
        self.interval = interval
        self.metrics = metrics
        self.clock = clock
        self.backlog = backlog
        self.hold_backlog = hold_backlog
        self.max_attempts = max_attempts

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("watchdog round skipped", extra={"fields": {"error": f"{type(exc).__name__}"}})
            except Exception as exc:  # noqa: BLE001 - the second path must outlive any one bug
                log.error("watchdog round failed", extra={"fields": {"error": type(exc).__name__}})
            await asyncio.sleep(self.interval)

    async def round(self) -> Round:
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", LOCK_KEY):
                return Round(led=False)
            # Only the replica leading this round asks the broker (the others would ask
            # for nothing); the lock is held meanwhile, a few milliseconds every interval.
            held_back = await self._pipeline_behind()
            result = await self._look(conn, now, may_redrive=not held_back)
        result.held_back = held_back
        if held_back and result.stalled:
            self.metrics.held_back.inc()
        # Counted once committed: a round that rolled back re-drove nothing.
        self.metrics.stalled.set(result.stalled)
        for r in result.redriven:
            self.metrics.redriven.labels(stall_rules.kind_of(r.missing)).inc()
            log.warning(
                "stalled report re-driven; operators alerted",
                extra={"fields": {"report_id": str(r.report_id), "missing": r.missing, "attempt": r.attempt}},
            )
        return result

    async def _pipeline_behind(self) -> bool:
        if self.backlog is None:
            return False
        behind = await self.backlog.backlog()
        if behind is None:  # the broker cannot say: re-drive as without the probe
            return False
        for group, events in behind.items():
            self.metrics.backlog.labels(group).set(events)
        return any(events > self.hold_backlog for events in behind.values())

    async def _look(self, conn: asyncpg.Connection, now: datetime, *, may_redrive: bool = True) -> Round:
        # Statuses of an emergency still on its way (status.py; literal, as in the partial
        # index of 004_watchdog.sql): the others have every dispatch heard of, or are
        # unrouted, recorded or held. Another caller's report stays `linked`: it is looked
        # at while it has fewer update outcomes than its incident has dispatches (or when
        # it was routed on its own), which the rules then check agency by agency.
        rows = await conn.fetch(
            """
            SELECT r.*, w.attempts, w.last_attempt_at FROM reports r
            LEFT JOIN watchdog_attempts w ON w.report_id = r.id
            WHERE r.kind = 'emergency' AND r.received_at >= $1 AND r.received_at < $2 AND (
                (r.linked_to IS NULL AND r.status IN ('received', 'routed', 'responding'))
                OR (r.linked_to IS NOT NULL AND r.status = 'linked' AND (
                    (SELECT count(DISTINCT t.agency) FROM report_timeline t
                     WHERE t.report_id = r.id AND t.event IN ('update_delivered', 'update_failed'))
                    < (SELECT coalesce(max(jsonb_array_length(t.detail -> 'dispatches')), 0) FROM report_timeline t
                       WHERE t.report_id = r.linked_to AND t.event = 'routed')
                    OR EXISTS (SELECT 1 FROM report_timeline t WHERE t.report_id = r.id AND t.event = 'routed'))))
            ORDER BY r.received_at DESC LIMIT $3
            """,
            now - WINDOW,
            now - self.bound,
            BATCH,
        )
        incidents = {r["linked_to"] for r in rows if r["linked_to"] is not None}
        timelines = await _timelines(conn, [r["id"] for r in rows] + list(incidents))
        result = Round(led=True)
        for row in rows:
            entries = timelines.get(row["id"], [])
            incident = timelines.get(row["linked_to"], []) if row["linked_to"] else []
            watched = stall_rules.Watched(
                kind=row["kind"],
                linked=row["linked_to"] is not None,
                awaiting_verdict=store.awaiting_verdict(row),
                received_at=row["received_at"],
            )
            missing = stall_rules.stalled(watched, entries, now, self.bound, incident)
            if not missing:
                continue
            result.stalled += 1
            attempts = stall_rules.Attempts(row["attempts"], row["last_attempt_at"]) if row["attempts"] else None
            since = stall_rules.dispatchable_since(watched, entries)
            if watched.linked and not stall_rules.routed_on_its_own(entries):
                since = stall_rules.linked_since(watched, entries, incident) or since
            if attempts and attempts.count >= self.max_attempts:
                continue
            if not may_redrive and now - since < HOLD_LIMIT_BOUNDS * self.bound:
                continue  # late behind a backlog; past the limit a stuck consumer is alerted on
            if now < stall_rules.next_redrive_at(attempts, since, self.bound):
                continue
            attempt = (attempts.count if attempts else 0) + 1
            await _redrive(conn, row, missing, attempt, now)
            result.redriven.append(Redriven(row["id"], missing, attempt))
        return result


async def _timelines(conn: asyncpg.Connection, report_ids: list[UUID]) -> dict[UUID, list[Entry]]:
    rows = await conn.fetch(
        "SELECT report_id, at, event, agency, dispatch_id, detail FROM report_timeline "
        "WHERE report_id = ANY($1::uuid[]) ORDER BY at, id",
        report_ids,
    )
    timelines: dict[UUID, list[Entry]] = {}
    for r in rows:
        entry = Entry(r["at"], r["event"], r["agency"], r["dispatch_id"], json.loads(r["detail"]))
        timelines.setdefault(r["report_id"], []).append(entry)
    return timelines


async def _redrive(conn: asyncpg.Connection, row: asyncpg.Record, missing: list[str], attempt: int, now: datetime):
    report_id = row["id"]
    await conn.execute(
        """
        INSERT INTO watchdog_attempts (report_id, attempts, last_attempt_at, last_missing)
        VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (report_id) DO UPDATE SET attempts = EXCLUDED.attempts,
            last_attempt_at = EXCLUDED.last_attempt_at, last_missing = EXCLUDED.last_missing
        """,
        report_id,
        attempt,
        now,
        json.dumps(missing),
    )
    age = round((now - row["received_at"]).total_seconds(), 3)
    await store.add_timeline_entry(
        conn,
        report_id=report_id,
        at=now,
        event="stalled",
        detail={"missing": missing, "attempt": attempt, "age_seconds": age},
    )
    event = ReportStalled(
        report_id=report_id,
        missing=missing,
        attempt=attempt,
        age_seconds=age,
        detected_at=now,
        report=store.received_event(row),
    )
    # One ce_id per attempt: a redelivered copy of one attempt is dropped, the next
    # attempt is a new alert.
    event_id = derived_event_id(f"watchdog:{report_id}", f"attempt:{attempt}")
    await enqueue(
        conn,
        [encode(event, topic=topics.REPORTS, key=str(report_id), source=store.SOURCE, event_id=event_id, time=now)],
    )
