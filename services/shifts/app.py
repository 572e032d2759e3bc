"""Builds the shifts service; the lifespan owns the pool, the outbox relay and the
coverage check loop."""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer
from services.common.lifecycle import cancel_tasks
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.web import new_app, require_api_key
from services.shifts import tasks
from services.shifts.api import build_router
from services.shifts.assigner import Assigner
from services.shifts.handover_api import build_handover_router
from services.shifts.metrics import ShiftMetrics
from services.shifts.monitor import CoverageMonitor
from services.shifts.roster_api import build_roster_router
from services.shifts.rotation import RestRule
from services.shifts.settings import ShiftsSettings
from services.shifts.tasks_api import build_tasks_router

SCHEMA = "shifts"


def create_app(settings: ShiftsSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> FastAPI:
    """`clock` is injectable so that shift boundaries are tested without waiting; tests
    run the coverage check and the assignment round at a time of their choosing with
    `app.state.coverage.tick()` and `app.state.assigner.tick()`."""
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    metrics = ShiftMetrics(registry)
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        app.state.pool = pool
        app.state.coverage = coverage = CoverageMonitor(
            pool=pool, clock=clock, metrics=metrics, grace=timedelta(minutes=settings.coverage_grace_minutes),
            interval=settings.coverage_check_interval,
        )  # fmt: skip
        await coverage.tick()  # gauges and any shortage right from the start
        app.state.assigner = assigner = Assigner(
            pool=pool, clock=clock, metrics=metrics, capacity=settings.assign_capacity,
            interval=settings.coverage_check_interval,
        )  # fmt: skip
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=[topics.SHIFTS, topics.REPORTS, topics.DEADLETTER], partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
            retention_seconds=settings.outbox_retention_seconds,
        )  # fmt: skip
        consumer = EventConsumer(
            name="shifts-tasks", pool=pool, handler=tasks.make_handler(assigner, clock),
            bootstrap=settings.kafka_bootstrap_servers, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            inbox_retention_days=settings.inbox_retention_days, metrics=consumer_metrics, source="e112/shifts",
            # One transaction per event: the assigner tells a task opened by this event
            # from one already waiting by the transaction it was made in (its wait and the
            # "new"/"from_queue" count), and shifts is not on a dispatch's way.
            batch_transactions=False,
            topics_=tasks.TOPICS, partitions=settings.kafka_topic_partitions, handles=tasks.HANDLES,
        )  # fmt: skip
        holder["consumer"] = consumer
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        consumer_task = asyncio.create_task(consumer.run(), name="tasks-consumer")
        coverage_task = asyncio.create_task(coverage.run(), name="coverage-check")
        assign_task = asyncio.create_task(assigner.run(), name="assignment")
        try:
            yield
        finally:
            await consumer.shutdown(consumer_task)
            await cancel_tasks(coverage_task, assign_task, relay_task)
            await pool.close()

    async def readiness() -> dict[str, bool]:
        return await db.readiness_of(getattr(app.state, "pool", None), holder.get("consumer"), consumes=True)

    app = new_app(
        title="e112 shifts",
        description="Operators, the three daily shifts and the monthly roster, check-in, status and coverage "
        "alerts, handover notes.",
        lifespan=lifespan, registry=registry, readiness=readiness, max_body_bytes=settings.max_request_body_bytes,
    )  # fmt: skip
    auth = require_api_key(lambda: settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(build_router(auth, metrics, clock, timedelta(minutes=settings.check_in_early_minutes)))
    app.include_router(
        build_roster_router(auth, metrics, clock, RestRule(timedelta(hours=settings.roster_min_rest_hours)))
    )
    app.include_router(build_handover_router(auth, clock))
    app.include_router(build_tasks_router(auth, lambda: app.state.assigner, clock))
    return app
