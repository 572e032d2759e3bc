"""How every service is put together, written once.

A service declares what it is (`Service`): its schema and migrations, the topics its
outbox relay publishes, its routes, and a `build` function that makes, once the pool is
open, what runs beside the routes (`Parts`: its consumer with a handler table, its
background loops, what to drain and close). `assemble` makes the FastAPI app and the
lifespan that starts and stops all of it in this order:

start: pool → migrations → seed → build → outbox relay → consumer → loops
stop:  consumer (its batch in hand finishes and commits, within the grace)
       → loops cancelled → drains → relay → closes (last made, first closed) → pool

The consumer stops first so no new work is taken while the rest winds down; the relay
stops after the drains, so what they commit on the way out is still published (or
stays in the outbox for the next start: nothing is lost either way).
"""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.consumer import ConsumerMetrics, EventConsumer
from services.common.handlers import HandlerTable
from services.common.lifecycle import cancel_tasks, stop_for_sure
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.settings import ServiceSettings
from services.common.web import new_app, require_api_key

Loop = Callable[[], Awaitable[None]]
Closer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerSpec:
    """The service's consumer: group `e112-<name>`, its inbox rows under `name`."""

    name: str
    handler: HandlerTable
    topics: Sequence[str] | None = None
    pattern: str | None = None
    pause_while: Callable[[], bool] | None = None
    consumer_class: type[EventConsumer] = EventConsumer
    options: Mapping[str, Any] = field(default_factory=dict)  # more arguments for consumer_class


@dataclass
class Parts:
    """What a service runs beside its routes, made by its `build` once the pool is open."""

    consumer: ConsumerSpec | None = None
    loops: Mapping[str, Loop] = field(default_factory=dict)  # task name → loop, cancelled at stop
    drains: Sequence[Closer] = ()  # after the loops stop, before the relay does
    closes: Sequence[Closer] = ()  # at the end, in reverse order, before the pool


Build = Callable[[asyncpg.Pool, FastAPI], Parts | Awaitable[Parts]]


@dataclass(frozen=True)
class Service:
    title: str
    description: str
    schema: str
    migrations: Path
    publishes: Sequence[str] = ()  # the outbox relay's topics; none: no relay
    routers: Sequence[APIRouter] = ()
    seed: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    build: Build | None = None
    # Whether /readyz asks for the broker too. Not for a service whose outbox keeps
    # accepting while the broker is away (intake: reports are still taken).
    ready_needs_broker: bool = True


def admin_key(settings: ServiceSettings):
    """The dependency that admits the service's admin key (the console's: a 403)."""
    lesser = [settings.console_secret] if settings.takes_console_key else []
    return require_api_key(settings.admin_secret, refused=lesser)


def console_key(settings: ServiceSettings):
    """The dependency of the routes the console uses: its key or the admin's."""
    return require_api_key(settings.console_secret, settings.admin_secret)


@dataclass(frozen=True)
class Keys:
    """Who may call a route: `admin` (the service's admin key only) or `console` (the
    console's key too). A service's routes are split by these, a router each, so that
    which key reaches a route shows where it is declared."""

    admin: Callable
    console: Callable

    @classmethod
    def of(cls, settings: ServiceSettings) -> "Keys":
        return cls(admin=admin_key(settings), console=console_key(settings))


def assemble(service: Service, settings: ServiceSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    registry = registry or CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry) if service.publishes else None
    consumer_metrics = ConsumerMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=service.schema, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        try:
            await db.migrate(pool, service.schema, service.migrations)
            if service.seed is not None:
                async with pool.acquire() as conn:
                    await service.seed(conn)
            app.state.pool = pool
            parts = Parts()
            if service.build is not None:
                parts = service.build(pool, app)
                parts = await parts if inspect.isawaitable(parts) else parts
            async with _running(app, pool, parts, service, settings, outbox_metrics, consumer_metrics):
                yield
        finally:
            await pool.close()

    async def readiness() -> dict[str, bool]:
        consumer = getattr(app.state, "consumer", None)
        consumes = service.ready_needs_broker and consumer is not None
        return await db.readiness_of(getattr(app.state, "pool", None), consumer, consumes=consumes)

    app = new_app(
        title=service.title,
        description=service.description,
        lifespan=lifespan,
        registry=registry,
        readiness=readiness,
        max_body_bytes=settings.max_request_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )
    app.state.consumer = None
    for router in service.routers:
        app.include_router(router)
    return app


@contextlib.asynccontextmanager
async def _running(app, pool, parts: Parts, service: Service, settings, outbox_metrics, consumer_metrics):
    relay_task = None
    if service.publishes:
        relay = OutboxRelay(
            dsn=settings.database_url,
            schema=service.schema,
            bootstrap=settings.kafka_bootstrap_servers,
            topics=list(service.publishes),
            partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics,
            poll_interval=settings.outbox_poll_interval,
            retention_seconds=settings.outbox_retention_seconds,
            security=settings.kafka_security,
        )
        relay_task = asyncio.create_task(relay.run(), name=f"{service.schema}-outbox-relay")
    consumer = consumer_task = None
    if parts.consumer is not None:
        consumer = _make_consumer(parts.consumer, pool, settings, consumer_metrics)
        app.state.consumer = consumer
        consumer_task = asyncio.create_task(consumer.run(), name=f"{parts.consumer.name}-consumer")
    loop_tasks = [asyncio.create_task(loop(), name=name) for name, loop in parts.loops.items()]
    try:
        yield
    finally:
        if consumer is not None:
            await consumer.shutdown(consumer_task, grace=settings.shutdown_grace_seconds)
        await cancel_tasks(*loop_tasks)
        for drain in parts.drains:
            await drain()
        if relay_task is not None:
            await stop_for_sure(relay_task)
        for close in reversed(parts.closes):
            await close()


def _make_consumer(spec: ConsumerSpec, pool, settings: ServiceSettings, metrics: ConsumerMetrics) -> EventConsumer:
    return spec.consumer_class(
        name=spec.name,
        pool=pool,
        handler=spec.handler,
        bootstrap=settings.kafka_bootstrap_servers,
        security=settings.kafka_security,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        idle_fetch_max_wait_ms=settings.kafka_idle_fetch_max_wait_ms,
        idle_after_seconds=settings.kafka_idle_after_seconds,
        inbox_retention_days=settings.inbox_retention_days,
        metrics=metrics,
        topics_=list(spec.topics) if spec.topics is not None else None,
        pattern=spec.pattern,
        create_topics=topics.all_topics(),
        partitions=settings.kafka_topic_partitions,
        pause_while=spec.pause_while,
        **spec.options,
    )
