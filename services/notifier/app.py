"""Builds the notifier service; the lifespan owns the pool, the HTTP client, the
consumer of the agency topics, the deliverer and the outbox relay."""

import asyncio
import contextlib
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer
from services.common.lifecycle import cancel_tasks
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.web import new_app, require_api_key
from services.notifier.api import build_router
from services.notifier.deliverer import SOURCE, Deliverer, DeliveryMetrics
from services.notifier.handler import queue_dispatch
from services.notifier.policy import RetryPolicy
from services.notifier.settings import NotifierSettings

SCHEMA = "notifier"


def create_app(settings: NotifierSettings) -> FastAPI:
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    delivery_metrics = DeliveryMetrics(registry)
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        app.state.pool = pool
        client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
        deliverer = Deliverer(
            pool=pool, dsn=settings.database_url, schema=SCHEMA, client=client, metrics=delivery_metrics,
            concurrency=settings.delivery_concurrency,
            lease_seconds=settings.webhook_timeout_seconds * 3,
            policy=RetryPolicy(settings.delivery_max_attempts, settings.delivery_backoff_base_seconds,
                               settings.delivery_backoff_cap_seconds),
        )  # fmt: skip
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=[topics.DISPATCH_STATUS, topics.DEADLETTER], partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
        )  # fmt: skip
        consumer = EventConsumer(
            name="notifier", pool=pool, handler=queue_dispatch, bootstrap=settings.kafka_bootstrap_servers,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms, metrics=consumer_metrics, source=SOURCE,
            pattern=topics.DISPATCH_PATTERN, create_topics=topics.all_topics(),
            partitions=settings.kafka_topic_partitions,
        )  # fmt: skip
        holder["consumer"] = consumer
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        consumer_task = asyncio.create_task(consumer.run(), name="notifier-consumer")
        deliverer_task = asyncio.create_task(deliverer.run(), name="deliverer")
        try:
            yield
        finally:
            await consumer.shutdown(consumer_task)
            await cancel_tasks(deliverer_task)
            await deliverer.drain()
            await cancel_tasks(relay_task)
            await client.aclose()
            await pool.close()

    async def readiness() -> dict[str, bool]:
        pool = getattr(app.state, "pool", None)
        consumer = holder.get("consumer")
        return {
            "database": pool is not None and await db.database_ok(pool),
            "broker": consumer is not None and await consumer.ready(),
        }

    app = new_app(
        title="e112 notifier",
        description="Delivers dispatches to the agencies and records every attempt.",
        lifespan=lifespan, registry=registry, readiness=readiness,
    )  # fmt: skip
    auth = require_api_key(lambda: settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(build_router(auth))
    return app
