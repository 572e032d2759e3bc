"""aiokafka clients configured one way for every service.

Idempotent producers and transactions are not used: the test broker lacks them and
correctness must not depend on them (the contract). Instead every event carries a
stable ce_id and every consumer deduplicates.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import client as aiokafka_client
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class _NoAutoCreateMetadataRequest(aiokafka_client.MetadataRequest):
    def __init__(self, topics=None, allow_auto_topic_creation=False):
        super().__init__(topics, allow_auto_topic_creation)


def refuse_topic_auto_creation() -> None:
    """aiokafka asks the broker to auto-create every topic it looks up, and offers no
    setting to stop it. A client holding old metadata (after a broker restart, say)
    then creates topics with the broker's default partition count, racing the
    services' own creation; Tansu ends up with topics whose partitions disagree and
    messages no reader finds. Topics here are created only on purpose (ensure_topics,
    or KafkaTopic resources in production), so every metadata request says no.

    aiokafka's client builds its metadata requests from a module-level name, so this
    replaces that name for the process; every client factory below calls it before it
    makes a client (idempotent), which is why the services make their clients there."""
    aiokafka_client.MetadataRequest = _NoAutoCreateMetadataRequest


Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL for a production cluster (deploy/k8s: Strimzi's TLS listener, each
    service its own SCRAM-SHA-512 KafkaUser); nothing for the development broker. A
    service's come from its settings (ServiceSettings.kafka_security, checked at start);
    every client (relay, consumer, admin, backlog probe, console feed, redrive) is given
    them where it is made."""

    protocol: Protocol = "PLAINTEXT"
    ssl_cafile: str | None = None
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL: unknown protocol {self.protocol!r}")
        if self.protocol.startswith("SASL_"):
            missing = [
                name
                for name, value in (
                    ("KAFKA_SASL_USERNAME", self.sasl_username),
                    ("KAFKA_SASL_PASSWORD", self.sasl_password),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"{self.protocol} needs {' and '.join(missing)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "KafkaSecurity":
        """For a command run beside the services (the redrive job): the same variables
        as the services' settings: KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_CAFILE,
        KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD."""
        return cls(
            protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),  # type: ignore[arg-type]
            ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
            sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512",
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
        )

    @property
    def encrypted(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def client_options(self) -> dict:
        """The aiokafka client arguments."""
        options: dict = {"security_protocol": self.protocol}
        if self.encrypted:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


PLAINTEXT = KafkaSecurity()


def new_producer(bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    refuse_topic_auto_creation()
    return AIOKafkaProducer(
        **security.client_options(),
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


def new_consumer(
    bootstrap: str,
    group_id: str,
    client_id: str,
    fetch_max_wait_ms: int,
    session_timeout_ms: int = 6000,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaConsumer:
    refuse_topic_auto_creation()
    return AIOKafkaConsumer(
        **security.client_options(),
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # commit only after the work is done
        auto_offset_reset="earliest",  # a new group must not skip reports already waiting
        fetch_max_wait_ms=fetch_max_wait_ms,
        metadata_max_age_ms=5_000,  # see new agency topics soon (pattern subscription)
        max_poll_interval_ms=300_000,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(300, session_timeout_ms // 4),
    )


def new_reader(
    bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT, **options: object
) -> AIOKafkaConsumer:
    """A consumer that only reads or looks (partitions, offsets): no group unless
    `options` names one, never an auto commit."""
    refuse_topic_auto_creation()
    return AIOKafkaConsumer(
        **security.client_options(),
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_auto_commit=False,
        **({"group_id": None} | options),
    )


class FetchPacing:
    """The fetch wait a running consumer asks the broker for: `busy_ms` while records
    come, `idle_ms` once none came for `idle_after` seconds.

    Why: Tansu (the embedded broker) answers a fetch that finds nothing only when its
    wait ends, even when records arrive meanwhile, so the wait is at once a hop's
    latency and what an idle consumer costs the broker: at 30 ms, one consumer of 8
    topics of 3 partitions kept Tansu at 14% of a core with nothing to send (and itself
    at 5%); at 250 ms, 2.8% (measured with /proc). The first record after a quiet spell
    waits up to `idle_ms`, the next ones `busy_ms` again. Apache Kafka answers as soon as
    a record arrives, so there the longer wait costs no latency at all."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        busy_ms: int,
        idle_ms: int,
        idle_after: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.consumer = consumer
        self.busy_ms = busy_ms
        self.idle_ms = max(idle_ms, busy_ms)
        self.idle_after = idle_after
        self.clock = clock
        self._last_records = clock()
        self.wait_ms = busy_ms

    def saw(self, records: int) -> None:
        """After each poll: how many records it brought."""
        now = self.clock()
        if records:
            self._last_records = now
            self._ask(self.busy_ms)
        elif now - self._last_records >= self.idle_after:
            self._ask(self.idle_ms)

    def _ask(self, wait_ms: int) -> None:
        if wait_ms == self.wait_ms:
            return
        # aiokafka (0.14, pinned in the lock) has no public way to change a started
        # consumer's fetch wait; its fetcher reads this attribute for every request it
        # builds (tests/integration/test_fetch_pacing.py checks it on a real broker).
        fetcher = getattr(self.consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = wait_ms
            self.wait_ms = wait_ms


async def ensure_topics(
    bootstrap: str, topics: list[str], partitions: int, replication: int = 1, security: KafkaSecurity = PLAINTEXT
) -> None:
    """Create the topics that are missing; existing ones are left as they are."""
    refuse_topic_auto_creation()
    admin = AIOKafkaAdminClient(**security.client_options(), bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [NewTopic(name=t, num_partitions=partitions, replication_factor=replication) for t in missing]
        )
        for topic, code, message in getattr(response, "topic_errors", []):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"creating topic {topic}: error {code} {message}")
        log.info("topics created", extra={"fields": {"topics": missing}})
    finally:
        await admin.close()


async def broker_reachable(consumer: AIOKafkaConsumer | None, timeout: float = 3.0) -> bool:
    """True when the broker answers a metadata request now."""
    if consumer is None:
        return False
    try:
        await asyncio.wait_for(consumer.topics(), timeout)
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
