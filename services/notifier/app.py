"""Builds the notifier service; the lifespan owns the pool, the HTTP client, the
consumer of the agency topics, the deliverer, the escalator and the outbox relay."""

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
from services.notifier.acks import AckMetrics
from services.notifier.agency_api import build_agency_router, build_link_router
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.api import build_router
from services.notifier.breaker import Breakers
from services.notifier.channels import AckLinks, EmailChannel, Mailer, WebhookChannel
from services.notifier.clock import Clock, SystemClock
from services.notifier.deliverer import SOURCE, Deliverer, DeliveryMetrics
from services.notifier.escalator import EscalationMetrics, Escalator
from services.notifier.handler import HANDLES, make_handler
from services.notifier.policy import RetryPolicy
from services.notifier.settings import NotifierSettings

SCHEMA = "notifier"


async def stop_for_sure(task: asyncio.Task, every: float = 0.5) -> None:
    """Cancel `task` until it has stopped. The outbox relay waits with asyncio.wait_for,
    which on Python 3.11 can swallow a cancellation that lands just as its wake-up
    comes; its loop then runs on and the shutdown would hang (seen in the tests)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    await asyncio.gather(task, return_exceptions=True)


def create_app(settings: NotifierSettings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    delivery_metrics = DeliveryMetrics(registry)
    escalation_metrics = EscalationMetrics(registry)
    ack_metrics = AckMetrics(registry)
    breakers = Breakers(
        settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, settings.breaker_cooldown_cap_seconds
    )
    policy = RetryPolicy(
        settings.delivery_max_attempts, settings.delivery_backoff_base_seconds, settings.delivery_backoff_cap_seconds
    )
    mailer = Mailer(
        host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from, username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls, tls=settings.smtp_tls, timeout=settings.smtp_timeout_seconds,
    )  # fmt: skip
    link_secret = settings.ack_link_secret.get_secret_value()
    links = AckLinks(str(settings.public_base_url), link_secret, settings.ack_link_ttl_seconds)
    holder: dict = {}
    configs = AgencyConfigs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        app.state.pool = pool
        client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
        channels = {"webhook": WebhookChannel(client, settings.egress_policy()), "email": EmailChannel(mailer, links)}
        # A lease outlives the slowest attempt (webhook or SMTP), so only a dead worker's
        # dispatch comes due again. Without an SMTP server no attempt waits on SMTP: the
        # SMTP timeout must not stretch the lease (a SIGKILLed notifier's dispatches wait
        # it out before they are delivered; found by `make chaos`).
        smtp_timeout = settings.smtp_timeout_seconds if settings.smtp_host else 0.0
        lease = 3 * max(settings.webhook_timeout_seconds, smtp_timeout)
        deliverer = Deliverer(
            pool=pool, dsn=settings.database_url, schema=SCHEMA, channels=channels, metrics=delivery_metrics,
            policy=policy, breakers=breakers, clock=clock, concurrency=settings.delivery_concurrency,
            lease_seconds=lease, poll_interval=settings.delivery_poll_interval, configs=configs,
        )  # fmt: skip
        escalator = Escalator(
            pool=pool, clock=clock, mailer=mailer, links=links, policy=policy, metrics=escalation_metrics,
            on_resend=deliverer.wake, poll_interval=settings.escalation_poll_interval, lease_seconds=lease,
        )  # fmt: skip
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=[topics.DISPATCH_STATUS, topics.DEADLETTER], partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
            retention_seconds=settings.outbox_retention_seconds,
        )  # fmt: skip
        consumer = EventConsumer(
            name="notifier", pool=pool, handler=make_handler(clock, settings.default_ack_deadline_seconds, configs),
            bootstrap=settings.kafka_bootstrap_servers, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            inbox_retention_days=settings.inbox_retention_days, metrics=consumer_metrics, source=SOURCE,
            pattern=topics.DISPATCH_PATTERN, create_topics=topics.all_topics(),
            partitions=settings.kafka_topic_partitions, handles=HANDLES, pause_while=deliverer.overloaded,
        )  # fmt: skip
        holder["consumer"] = consumer
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        consumer_task = asyncio.create_task(consumer.run(), name="notifier-consumer")
        deliverer_task = asyncio.create_task(deliverer.run(), name="deliverer")
        escalator_task = asyncio.create_task(escalator.run(), name="escalator")
        try:
            yield
        finally:
            await consumer.shutdown(consumer_task)
            await cancel_tasks(escalator_task, deliverer_task)
            await deliverer.drain()
            await stop_for_sure(relay_task)
            await client.aclose()
            await pool.close()

    async def readiness() -> dict[str, bool]:
        return await db.readiness_of(getattr(app.state, "pool", None), holder.get("consumer"), consumes=True)

    app = new_app(
        title="e112 notifier",
        description=(
            "Delivers dispatches to the agencies (webhook, then e-mail), records every attempt, takes "
            "acknowledgements and field status, and escalates silence."
        ),
        lifespan=lifespan, registry=registry, readiness=readiness, max_body_bytes=settings.max_request_body_bytes,
    )  # fmt: skip
    auth = require_api_key(lambda: settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(
        build_router(
            auth, clock=clock, breakers=breakers, default_deadline=settings.default_ack_deadline_seconds,
            secret_grace_seconds=settings.webhook_secret_grace_seconds, egress=settings.egress_policy(),
            configs=configs,
        )
    )  # fmt: skip
    app.include_router(build_agency_router(clock=clock, metrics=ack_metrics))
    app.include_router(build_link_router(clock=clock, metrics=ack_metrics, link_secret=link_secret))
    return app
