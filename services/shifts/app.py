"""Builds the shifts service; the lifespan owns the pool and the outbox relay."""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.lifecycle import cancel_tasks
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.web import new_app, require_api_key
from services.shifts.api import ShiftMetrics, build_router, refresh_gauges
from services.shifts.settings import ShiftsSettings

SCHEMA = "shifts"


def create_app(settings: ShiftsSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> FastAPI:
    """`clock` is injectable so that shift boundaries are tested without waiting."""
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    metrics = ShiftMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        async with pool.acquire() as conn:
            await refresh_gauges(conn, metrics, clock())
        app.state.pool = pool
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=[topics.SHIFTS], partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
        )  # fmt: skip
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        try:
            yield
        finally:
            await cancel_tasks(relay_task)
            await pool.close()

    async def readiness() -> dict[str, bool]:
        # Not a consumer: like intake, its outbox rides out a broker outage.
        pool = getattr(app.state, "pool", None)
        return {"database": pool is not None and await db.database_ok(pool)}

    app = new_app(
        title="e112 shifts",
        description="Operators, the three daily shifts, check-in and check-out, who is on duty now.",
        lifespan=lifespan, registry=registry, readiness=readiness,
    )  # fmt: skip
    auth = require_api_key(lambda: settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(build_router(auth, metrics, clock))
    return app
