"""Fires the stored acknowledgement timers and sends escalation e-mails.

Each round, in one transaction: lock the unacknowledged dispatches whose timer is due,
advance each timer by exactly one step (guarded by the expected step, see
store.advance_timer), re-send or queue the escalation e-mail, and put the
`dispatch.escalated` event in the outbox. Committed together or not at all, so a
restart or a second replica neither loses a step nor takes one twice; the event's
ce_id derives from the dispatch and the step as a last guard.

Escalation e-mails are rows too (escalation_notices), sent with the same bounded
retries as dispatches and never once the dispatch is acknowledged.
"""

import asyncio
import logging
import time
from datetime import datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from schemas import topics
from schemas.envelope import derived_event_id, encode
from schemas.events import DispatchEscalated
from services.common.consumer import TRANSIENT_ERRORS
from services.common.outbox import enqueue
from services.notifier import escalation, mail, store
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.channels import AckLinks, Mailer, elapsed_ms
from services.notifier.clock import Clock
from services.notifier.deliverer import SOURCE
from services.notifier.policy import RetryPolicy, Verdict, next_channel

log = logging.getLogger(__name__)
NOTICE_CHANNEL = "escalation_email"


class EscalationMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.steps = Counter(
            "e112_dispatch_escalations_total",
            "Escalation steps taken, by agency and step (resent, escalated)",
            ["agency", "step"],
            registry=registry,
        )
        self.notices = Counter(
            "e112_escalation_emails_total", "Escalation e-mail attempts, by outcome", ["outcome"], registry=registry
        )
        # That the escalator still looks: its silence is otherwise indistinguishable from
        # nothing being due (and a test of "nothing happened" needs rounds to have run).
        self.rounds = Counter("e112_escalator_rounds_total", "Escalator rounds completed", registry=registry)


class Escalator:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        clock: Clock,
        mailer: Mailer,
        links: AckLinks,
        policy: RetryPolicy,
        metrics: EscalationMetrics,
        on_resend,
        poll_interval: float = 1.0,
        lease_seconds: float = 60.0,
        batch_size: int = 100,
        configs: AgencyConfigs | None = None,
    ):
        self.pool = pool
        self.configs = configs or AgencyConfigs(ttl_seconds=0)
        self.clock = clock
        self.mailer = mailer
        self.links = links
        self.policy = policy
        self.metrics = metrics
        self.on_resend = on_resend  # wakes the deliverer
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due()
                await self.send_notices()
                async with self.pool.acquire() as conn:
                    next_due = await store.seconds_until_next_timer(conn, self.clock.now())
                self.metrics.rounds.inc()
                await asyncio.sleep(self.poll_interval if next_due is None else min(self.poll_interval, next_due))
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("escalator lost the database; retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1)
            except Exception as exc:  # noqa: BLE001 - escalation must not stop for one bad round
                log.error("escalator round failed; retrying", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1)

    async def fire_due(self) -> int:
        """Take every due step; returns how many were taken."""
        now = self.clock.now()
        taken: list[tuple[str, str]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await store.take_due_timers(conn, now, self.batch_size):
                fired = escalation.firing(row["escalation_step"], now, row["ack_deadline_seconds"])
                if fired is None:  # no step left: a timer that should not be there
                    await store.advance_timer(conn, row["dispatch_id"], row["escalation_step"], None)
                    continue
                if not await store.advance_timer(conn, row["dispatch_id"], row["escalation_step"], fired.next_due_at):
                    continue
                config = await self.configs.get(conn, row["agency"])
                if fired.step == "resent":
                    reason = await self._resend(conn, row, config, now)
                else:
                    reason = await self._escalate(conn, row, config, now)
                await enqueue(conn, [self._event(row, fired.step, reason, now)])
                taken.append((row["agency"], fired.step))
        for agency, step in taken:
            self.metrics.steps.labels(agency, step).inc()
            log.info("dispatch not acknowledged in time", extra={"fields": {"agency": agency, "step": step}})
        if any(step == "resent" for _, step in taken):
            self.on_resend()
        return len(taken)

    async def _resend(self, conn, row, config: store.AgencyConfig, now: datetime) -> str:
        deadline = row["ack_deadline_seconds"]
        if row["state"] == "pending":
            # Still being delivered after a whole deadline: the current channel is not
            # getting through, so the next one is tried at once.
            tried = list(row["channels_tried"]) + ([row["channel"]] if row["channel"] else [])
            following = next_channel(config.channels, tried)
            if following is None:
                return f"not acknowledged within {deadline} s; delivery still being retried"
            await store.resend(
                conn, row["dispatch_id"], channel=following, channels_tried=tried, now=now, new_round=False
            )
            return f"not acknowledged within {deadline} s; delivery moved on to {following}"
        await store.resend(conn, row["dispatch_id"], channel=None, channels_tried=[], now=now, new_round=True)
        return f"not acknowledged within {deadline} s; sent again"

    async def _escalate(self, conn, row, config: store.AgencyConfig, now: datetime) -> str:
        waited = 2 * row["ack_deadline_seconds"]
        if not config.escalation_contacts:
            return f"not acknowledged within {waited} s; the agency has no escalation contacts"
        await store.queue_notice(conn, row["dispatch_id"], list(config.escalation_contacts), now)
        return f"not acknowledged within {waited} s; {len(config.escalation_contacts)} escalation contact(s) e-mailed"

    @staticmethod
    def _event(row, step: str, reason: str, now: datetime):
        event = DispatchEscalated(
            dispatch_id=row["dispatch_id"],
            report_id=row["report_id"],
            agency=row["agency"],
            step=step,
            reason=reason,
            escalated_at=now,
        )
        return encode(
            event,
            topic=topics.DISPATCH_STATUS,
            key=str(row["report_id"]),
            source=SOURCE,
            event_id=derived_event_id(str(row["dispatch_id"]), f"escalation-{step}"),
            time=now,
        )

    async def send_notices(self) -> int:
        now = self.clock.now()
        async with self.pool.acquire() as conn:
            due = await store.claim_due_notices(conn, 10, now, now + timedelta(seconds=self.lease_seconds))
        for notice in due:
            await self._send_notice(notice)
        return len(due)

    async def _send_notice(self, notice) -> None:
        now = self.clock.now()
        url, expires = self.links.make(notice["dispatch_id"], now)
        message = mail.escalation_email(
            sender=self.mailer.sender,
            to=list(notice["recipients"]),
            body=notice["body"],
            dispatch_id=notice["dispatch_id"],
            waited_seconds=2 * notice["ack_deadline_seconds"],
            ack_url=url,
            expires=expires,
            now=now,
        )
        started = time.perf_counter()
        result = await self.mailer.send(message)
        attempts = notice["attempts"] + 1
        error = result.error
        next_at = now
        if result.verdict is Verdict.DELIVERED:
            outcome, state = "delivered", "sent"
        elif result.verdict is Verdict.RETRYABLE and not self.policy.gives_up(attempts):
            outcome, state = "retry", "pending"
            next_at = now + timedelta(seconds=self.policy.delay(attempts))
        else:
            outcome, state = ("gave_up" if result.verdict is Verdict.RETRYABLE else "permanent"), "failed"
        self.metrics.notices.labels(outcome).inc()
        async with self.pool.acquire() as conn, conn.transaction():
            await store.record_attempt(
                conn,
                dispatch_id=notice["dispatch_id"],
                attempt=attempts,
                channel=NOTICE_CHANNEL,
                target=", ".join(notice["recipients"]),
                started_at=now,
                duration_ms=elapsed_ms(started),
                outcome=outcome,
                status_code=result.status_code,
                error=error,
            )
            await store.settle_notice(
                conn,
                notice["dispatch_id"],
                notice["claim_token"],
                state=state,
                attempts=attempts,
                next_attempt_at=next_at,
                error=error,
                now=now,
            )
        if state == "failed":
            log.warning(
                "escalation e-mail could not be sent",
                extra={
                    "fields": {"dispatch_id": str(notice["dispatch_id"]), "agency": notice["agency"], "error": error}
                },
            )
