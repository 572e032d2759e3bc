"""The notifier service, declared: the agency and admin routes, its consumer of the
agency topics, the deliverer and the escalator (services/common/assembly.py runs them)."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common.assembly import ConsumerSpec, Keys, Parts, Service, assemble
from services.common.groupcommit import GroupCommit, GroupCommitMetrics
from services.common.web import admitting
from services.notifier import agency_api, api, store
from services.notifier.acks import AckMetrics
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.breaker import Breakers
from services.notifier.channels import AckLinks, EmailChannel, Mailer, WebhookChannel, webhook_session
from services.notifier.clock import Clock, SystemClock
from services.notifier.deliverer import Deliverer, DeliveryMetrics
from services.notifier.escalator import EscalationMetrics, Escalator
from services.notifier.handler import handler_table
from services.notifier.policy import RetryPolicy
from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerMetrics:
    delivery: DeliveryMetrics
    group_commit: GroupCommitMetrics
    escalation: EscalationMetrics

    @classmethod
    def of(cls, registry: CollectorRegistry) -> "WorkerMetrics":
        return cls(DeliveryMetrics(registry), GroupCommitMetrics(registry), EscalationMetrics(registry))


def create_app(settings: NotifierSettings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    registry = CollectorRegistry()
    metrics = WorkerMetrics.of(registry)
    ack_metrics = AckMetrics(registry)
    breakers = Breakers(
        settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, settings.breaker_cooldown_cap_seconds
    )
    configs = AgencyConfigs(settings.vault())
    keys = Keys.of(settings)
    service = Service(
        title="e112 notifier",
        description=(
            "Delivers dispatches to the agencies (webhook, then e-mail), records every attempt, takes "
            "acknowledgements and field status, and escalates silence."
        ),
        schema="notifier",
        migrations=Path(__file__).parent / "migrations",
        publishes=[topics.DISPATCH_STATUS, topics.DEADLETTER],
        routers=[
            admitting(keys.console, api.for_console),
            admitting(keys.admin, api.for_admin),
            agency_api.router,
            agency_api.link_router,
        ],
        seed=lambda conn: reseal(conn, configs.vault),
        build=lambda pool, app: _workers(pool, settings, clock, breakers, configs, metrics),
    )
    app = assemble(service, settings, registry)
    # What the routes take (services/notifier/dependencies.py).
    app.state.settings = settings
    app.state.clock = clock
    app.state.ack_metrics = ack_metrics
    app.state.configs = configs
    app.state.egress = settings.egress_policy()
    app.state.agencies = api.AgencyAdmin(configs, breakers, clock, settings.default_ack_deadline_seconds)
    return app


def _mailer(settings: NotifierSettings) -> Mailer:
    return Mailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        tls=settings.smtp_tls,
        timeout=settings.smtp_timeout_seconds,
    )


def _workers(pool, settings: NotifierSettings, clock: Clock, breakers, configs, metrics: WorkerMetrics) -> Parts:
    """The consumer, the deliverer and the escalator, once the pool is open."""
    policy = RetryPolicy(
        settings.delivery_max_attempts, settings.delivery_backoff_base_seconds, settings.delivery_backoff_cap_seconds
    )
    mailer = _mailer(settings)
    links = AckLinks(
        str(settings.public_base_url), settings.ack_link_secret.get_secret_value(), settings.ack_link_ttl_seconds
    )
    session = webhook_session(settings.webhook_timeout_seconds)
    channels = {"webhook": WebhookChannel(session, settings.egress_policy()), "email": EmailChannel(mailer, links)}
    # A lease outlives the slowest attempt (webhook or SMTP), so only a dead worker's
    # dispatch comes due again. Without an SMTP server no attempt waits on SMTP: the
    # SMTP timeout must not stretch the lease (a SIGKILLed notifier's dispatches wait
    # it out before they are delivered; found by `make chaos`).
    smtp_timeout = settings.smtp_timeout_seconds if settings.smtp_host else 0.0
    lease = 3 * max(settings.webhook_timeout_seconds, smtp_timeout)
    deliverer = Deliverer(
        pool=pool,
        dsn=settings.database_url,
        schema="notifier",
        channels=channels,
        metrics=metrics.delivery,
        policy=policy,
        breakers=breakers,
        clock=clock,
        concurrency=settings.delivery_concurrency,
        concurrency_per_agency=settings.delivery_concurrency_per_agency,
        lease_seconds=lease,
        poll_interval=settings.delivery_poll_interval,
        configs=configs,
        held_after=timedelta(seconds=settings.held_notice_seconds),
        finisher=GroupCommit("delivered", pool, store.finish_delivered, metrics.group_commit, transaction=False),
    )
    escalator = Escalator(
        pool=pool,
        clock=clock,
        mailer=mailer,
        links=links,
        policy=policy,
        metrics=metrics.escalation,
        on_resend=deliverer.wake,
        poll_interval=settings.escalation_poll_interval,
        lease_seconds=lease,
        configs=configs,
    )
    handler = handler_table(clock, settings.default_ack_deadline_seconds, configs)
    return Parts(
        consumer=ConsumerSpec(
            name="notifier", handler=handler, pattern=topics.DISPATCH_PATTERN, pause_while=deliverer.overloaded
        ),
        loops={"deliverer": deliverer.run, "finisher": deliverer.finisher.run, "escalator": escalator.run},
        drains=[deliverer.drain],
        closes=[session.close],
    )


async def reseal(conn, vault) -> None:
    """At start: every webhook secret sealed under the first of WEBHOOK_SECRET_KEYS (those
    stored before sealing, and those under a key being rotated out)."""
    changed = await store.reseal_secrets(conn, vault)
    if changed:
        log.info("webhook secrets sealed under the current key", extra={"agencies": changed})
