"""Builds the router service; the lifespan owns the pool, consumer and outbox relay."""

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.consumer import ConsumerMetrics
from services.common.lifecycle import cancel_tasks
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.web import new_app, require_api_key
from services.router import linked, store
from services.router.api import build_router
from services.router.deadletters import RouterConsumer
from services.router.handler import HANDLES, build_handler
from services.router.metrics import SOURCE, RouterMetrics
from services.router.settings import RouterSettings

SCHEMA = "router"


def create_app(settings: RouterSettings) -> FastAPI:
    registry = CollectorRegistry()
    router_metrics = RouterMetrics(registry)
    handler = build_handler(router_metrics)
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        async with pool.acquire() as conn:
            await store.seed_default_table(conn)
        app.state.pool = pool
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=topics.all_topics(), partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
            retention_seconds=settings.outbox_retention_seconds,
        )  # fmt: skip
        consumer = RouterConsumer(
            router_metrics=router_metrics, name="router", pool=pool, handler=handler,
            bootstrap=settings.kafka_bootstrap_servers, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            inbox_retention_days=settings.inbox_retention_days, metrics=consumer_metrics, source=SOURCE,
            topics_=[topics.REPORTS], create_topics=topics.all_topics(), partitions=settings.kafka_topic_partitions,
            handles=HANDLES,
        )  # fmt: skip
        holder["consumer"] = consumer
        app.state.consumer = consumer
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        consumer_task = asyncio.create_task(consumer.run(), name="router-consumer")
        sweep_task = asyncio.create_task(linked.sweep_overdue(pool, handler.route_alone), name="linked-sweep")
        try:
            yield
        finally:
            await consumer.shutdown(consumer_task, grace=settings.shutdown_grace_seconds)
            await cancel_tasks(relay_task, sweep_task)
            await pool.close()

    async def readiness() -> dict[str, bool]:
        return await db.readiness_of(getattr(app.state, "pool", None), holder.get("consumer"), consumes=True)

    app = new_app(
        title="e112 router",
        description="Decides which agencies get each report, from a versioned routing table.",
        lifespan=lifespan, registry=registry, readiness=readiness, max_body_bytes=settings.max_request_body_bytes,
    )  # fmt: skip
    auth = require_api_key(lambda: settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(build_router(auth))
    return app
