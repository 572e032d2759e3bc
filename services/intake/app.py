"""The intake service, declared: the report API and its group commit of filed reports, the
timeline consumer, the watchdog and the housekeeping of Idempotency-Keys (services/common/assembly.py runs them)."""

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common.assembly import ConsumerSpec, Parts, Service, assemble
from services.common.backlog import BacklogProbe, WatchedGroup
from services.common.consumer import TRANSIENT_ERRORS
from services.common.groupcommit import GroupCommit, GroupCommitMetrics
from services.common.web import problem_response
from services.intake import admin, api, call_aids_api, lifecycle_api, store, timeline, verification_api
from services.intake.clients import Authenticator
from services.intake.filing import FilingRules, file_together
from services.intake.settings import IntakeSettings
from services.intake.watchdog import Watchdog, WatchdogMetrics

log = logging.getLogger(__name__)


# The consumer groups a dispatch passes through on its way, and the one that records
# what the notifier says of it: the watchdog waits while one of them is behind.
PIPELINE_GROUPS = [
    WatchedGroup("e112-router", (topics.REPORTS,)),
    WatchedGroup("e112-notifier", (topics.DISPATCH_PREFIX,)),
    WatchedGroup("e112-intake-timeline", tuple(timeline.TOPICS)),
]


def create_app(settings: IntakeSettings) -> FastAPI:
    registry = CollectorRegistry()
    watchdog_metrics = WatchdogMetrics(registry)
    group_commit_metrics = GroupCommitMetrics(registry)
    report_metrics = api.IntakeMetrics(registry)
    verification_metrics = verification_api.VerificationMetrics(registry)
    lifecycle_metrics = lifecycle_api.LifecycleMetrics(registry)
    service = Service(
        title="e112 intake",
        description="Files emergency reports for Layanan 112 Kabupaten Blitar and shows their progress.",
        schema="intake",
        migrations=Path(__file__).parent / "migrations",
        publishes=[topics.REPORTS, topics.DEADLETTER],
        routers=[
            api.filing_router(settings.idempotency_ttl_hours),
            api.router,
            verification_api.router,
            lifecycle_api.router,
            call_aids_api.router,
            admin.router,
        ],
        seed=verification_api.seed_default_policy,
        build=lambda pool, app: _workers(pool, app, settings, watchdog_metrics, group_commit_metrics),
        ready_needs_broker=False,  # reports are still taken into the outbox while the broker is away
    )
    app = assemble(service, settings, registry)
    # What the routes take (services/intake/dependencies.py and each api module's Metrics).
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings.admin_secret())
    app.state.report_metrics = report_metrics
    app.state.verification_metrics = verification_metrics
    app.state.lifecycle_metrics = lifecycle_metrics

    @app.exception_handler(asyncpg.PostgresError)
    async def on_database_error(request: Request, exc: Exception):
        return _unavailable(settings, exc)

    for transient in TRANSIENT_ERRORS:
        app.add_exception_handler(transient, lambda request, exc: _unavailable(settings, exc))
    return app


def _workers(
    pool, app: FastAPI, settings: IntakeSettings, watchdog_metrics: WatchdogMetrics, filing_metrics: GroupCommitMetrics
) -> Parts:
    """The filing group commit, the timeline consumer, the watchdog and the housekeeping,
    once the pool is open."""
    backlog = BacklogProbe(settings.kafka_bootstrap_servers, PIPELINE_GROUPS, security=settings.kafka_security)
    app.state.watchdog = watchdog = Watchdog(
        pool,
        bound=timedelta(seconds=settings.watchdog_bound_seconds),
        interval=settings.watchdog_interval_seconds,
        metrics=watchdog_metrics,
        backlog=backlog,
        hold_backlog=settings.watchdog_hold_backlog,
        max_attempts=settings.watchdog_max_attempts,
    )
    rules = FilingRules.of(settings)
    app.state.filing = filing = GroupCommit(
        "filing",
        pool,
        lambda conn, filings: file_together(conn, filings, rules),
        filing_metrics,
        writers=settings.filing_writers,
        batch_max=settings.filing_batch_max,
    )
    return Parts(
        consumer=ConsumerSpec(name="intake-timeline", handler=timeline.TABLE, topics=timeline.TOPICS),
        loops={
            "filing": filing.run,
            "housekeeping": lambda: _housekeeping(pool, settings),
            "watchdog": watchdog.run,
        },
        closes=[backlog.close],
    )


def _unavailable(settings: IntakeSettings, exc: Exception):
    log.error("storage unavailable; answering 503", extra={"fields": {"error": type(exc).__name__}})
    return problem_response(
        503,
        "Service unavailable",
        "Reports cannot be stored right now; nothing was saved. Retry after the given seconds.",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )


async def _housekeeping(pool, settings: IntakeSettings, every_seconds: float = 600) -> None:
    """Forget expired Idempotency-Keys, so the table holds a day's keys, not all of them."""
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    while True:
        await asyncio.sleep(every_seconds)
        try:
            async with pool.acquire() as conn:
                await store.forget_expired_idempotency_keys(conn, ttl)
        except TRANSIENT_ERRORS:
            log.warning("housekeeping skipped: database unavailable")
