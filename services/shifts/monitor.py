"""The coverage check: opens and closes shortage episodes (one alert, one "restored"
each) and reports operators still checked in after their shift.

It runs in the transaction of every check-in and check-out, so a shortage that a
check-out makes is announced at once, and from a loop every few seconds, which notices
what only time changes (a shift starting with nobody there). `tick(now)` is that loop's
body, for tests to call with the time they choose. Checks are serialised by an advisory
lock and their state is in the database, so replicas never announce twice."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from schemas.events import OperatorStillCheckedIn, ShiftCoverageAlert, ShiftCoverageRestored
from services.common.outbox import enqueue
from services.shifts import store
from services.shifts.coverage import Shortage, next_step, shortage
from services.shifts.metrics import ShiftMetrics, refresh_gauges
from services.shifts.roster import shift_at

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    alerts: list[Shortage] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # how each episode ended
    still_checked_in: int = 0


class CoverageMonitor:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime],
        metrics: ShiftMetrics,
        grace: timedelta,
        interval: float,
    ):
        self.pool = pool
        self.clock = clock
        self.metrics = metrics
        self.grace = grace
        self.interval = interval

    async def evaluate(self, conn: asyncpg.Connection, now: datetime) -> Outcome:
        """Run inside the caller's transaction; call `settle` after it commits."""
        await store.lock_coverage(conn)
        templates = await store.load_templates(conn)
        shift = shift_at(now, templates)
        present = await store.count_checked_in_for(conn, shift.starts_at)
        short = shortage(now, shift, present, self.grace)
        episode = await store.open_episode(conn)
        step = next_step(episode["shift_starts_at"] if episode else None, shift, short)
        outcome, records = Outcome(), []
        if step.close:
            ended_at = now if step.close == "staffed" else min(now, episode["shift_ends_at"])
            await store.end_episode(conn, episode["id"], ended_at, step.close)
            restored = ShiftCoverageRestored(
                shift=episode["shift"],
                shift_starts_at=episode["shift_starts_at"],
                needed=episode["needed"],
                checked_in=await store.count_checked_in_for(conn, episode["shift_starts_at"]),
                how=step.close,
                alert_at=episode["started_at"],
                at=ended_at,
            )
            records.append(store.record(restored, key=store.COVERAGE_KEY, now=now))
            outcome.restored.append(step.close)
        if step.open:
            await store.start_episode(conn, shift, short.present, short.reason, now)
            rostered = await store.roster_entries(
                conn, shift.starts_at.date(), shift.starts_at.date(), starts_at=shift.starts_at
            )
            here = {r["id"] for r in await store.checked_in(conn) if r["shift_starts_at"] == shift.starts_at}
            alert = ShiftCoverageAlert(
                shift=shift.code,
                shift_starts_at=shift.starts_at,
                shift_ends_at=shift.ends_at,
                needed=short.needed,
                checked_in=short.present,
                reason=short.reason,
                missing_operator_ids=[e.operator_id for e in rostered if e.operator_id not in here],
                at=now,
            )
            records.append(store.record(alert, key=store.COVERAGE_KEY, now=now))
            outcome.alerts.append(short)
            log.warning(
                "shift short of operators",
                extra={"fields": {"shift": shift.code, "present": short.present, "needed": short.needed}},
            )
        for row in await store.report_overstays(conn, now - self.grace, now):
            event = OperatorStillCheckedIn(
                operator_id=row["operator_id"],
                shift=row["shift"],
                shift_ended_at=row["shift_ends_at"],
                status=row["status"],
                at=now,
            )
            records.append(store.record(event, key=row["operator_id"], now=now))
            outcome.still_checked_in += 1
        await enqueue(conn, records)
        return outcome

    async def settle(self, conn: asyncpg.Connection, outcome: Outcome, now: datetime) -> None:
        """After the commit: count what was announced and refresh the gauges."""
        for alert in outcome.alerts:
            self.metrics.coverage_alerts.labels(alert.shift.code, alert.reason).inc()
        self.metrics.still_checked_in.inc(outcome.still_checked_in)
        await refresh_gauges(conn, self.metrics, now)

    async def tick(self, now: datetime | None = None) -> Outcome:
        now = now or self.clock()
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                outcome = await self.evaluate(conn, now)
            await self.settle(conn, outcome, now)
        return outcome

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled; a failed check is logged and
        the next one tries again (the state is in the database, nothing is lost)."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("coverage check failed; will try again")
            await asyncio.sleep(self.interval)
