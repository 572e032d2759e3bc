"""Settings shared by every service, read from the environment (pydantic-settings).

Each service subclasses `ServiceSettings` with its own prefix-free fields. In
`E112_ENV=production` the development defaults are refused, so a forgotten variable
stops the service at start instead of running it with a guessable key.
"""

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.kafka import KafkaSecurity

DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEV_BOOTSTRAP = "127.0.0.1:9092"


class ServiceSettings(BaseSettings):
    # Whether this service deals with the console's key (shifts and notifier take it,
    # the console sends it): production then insists on one.
    takes_console_key: ClassVar[bool] = False
    # hide_input_in_errors: a refused setting must not print the key or password it was given.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    e112_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEV_DATABASE_URL
    kafka_bootstrap_servers: str = DEV_BOOTSTRAP
    # Tansu answers a waiting fetch only at the wait's end, so each hop waits up to this
    # long for news: short for the hops a dispatch goes through (router, notifier),
    # longer where only bookkeeping waits (intake's timeline, shifts), which also keeps
    # idle fetching cheap for the broker.
    kafka_fetch_max_wait_ms: int = Field(30, ge=10, le=5000)
    # ... and once a consumer got nothing for kafka_idle_after_seconds, this long, until
    # records come again: an idle service then costs the broker (and itself) a few
    # fetches a second instead of thirty (services/common/kafka.py, FetchPacing).
    kafka_idle_fetch_max_wait_ms: int = Field(250, ge=10, le=5000)
    kafka_idle_after_seconds: float = Field(5.0, ge=0, le=3600)
    kafka_topic_partitions: int = Field(3, ge=1, le=64)
    # How fast a dead consumer's partitions move to a live one. Apache Kafka's brokers
    # accept 6 s and up by default; Tansu also makes a group join wait half of it.
    kafka_session_timeout_ms: int = Field(6000, ge=1000, le=300_000)
    # TLS and SASL (services/common/kafka.py KafkaSecurity): deploy/k8s talks SASL_SSL
    # with SCRAM-SHA-512 to Strimzi's TLS listener, a KafkaUser per service.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_ssl_cafile: str | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # How long the outbox relay keeps a published event, to publish it again if the
    # broker loses it after acknowledging it (services/common/outbox.py).
    outbox_retention_seconds: float = Field(600, ge=0, le=7 * 86400)
    # The relay wakes on the outbox's NOTIFY; this timer is only the fallback.
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
    # How long a stopping consumer may take to finish the batch in hand before it is
    # cancelled (its uncommitted events then go to another replica). Keep it below the
    # platform's kill timeout (Kubernetes' terminationGracePeriodSeconds).
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=120)
    # How long a consumer remembers the ce_ids it handled. Longer than any way a copy can
    # come back: the topics' retention (30 days at most, deploy/k8s) and the relays'
    # replay window, so a copy never finds its id forgotten.
    inbox_retention_days: float = Field(35, ge=1, le=3650)
    # This service's own admin key (`Authorization: Bearer …`): its configuration, its
    # keys, everything. Every service has its own in production (deploy/k8s: a Secret
    # each), so no one key rules them all.
    admin_api_key: SecretStr | None = None
    # The console's key to shifts and notifier, the same value in all three: it reads
    # operators, tasks and agencies' numbers and acts on a shift and its tasks for the
    # operator signed in to the console; it changes no configuration, roster or key.
    console_api_key: SecretStr | None = None
    # Development only: the key that stands in for every unset key above, so one key runs
    # the whole stack (what `make run` prints). Refused in production.
    e112_api_key: SecretStr | None = None
    # Larger bodies are a 413 before they are read (a report is a few KB).
    max_request_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    host: str = "127.0.0.1"
    port: int = 8000
    # The proxies in front (the ingress), comma-separated addresses or networks: their
    # X-Forwarded-For names the client (the console's sign-in throttle counts by it).
    # Anyone else's X-Forwarded-For is ignored.
    trusted_proxies: str = "127.0.0.1"
    log_level: str = "INFO"
    db_pool_min: int = 2
    db_pool_max: int = 10

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol_in_any_case(cls, value):
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> "ServiceSettings":
        self.kafka_security  # noqa: B018 - raises (a ValueError naming what is missing) at start, not at the first client
        return self

    @model_validator(mode="after")
    def _no_dev_defaults_in_production(self) -> "ServiceSettings":
        if self.e112_env != "production":
            return self
        problems = []
        if not self.kafka_security.encrypted:
            problems.append("KAFKA_SECURITY_PROTOCOL must be SSL or SASL_SSL (the cluster is reached over TLS)")
        if self.database_url == DEV_DATABASE_URL:
            problems.append("DATABASE_URL must be set")
        if self.kafka_bootstrap_servers == DEV_BOOTSTRAP:
            problems.append("KAFKA_BOOTSTRAP_SERVERS must be set")
        if self.e112_api_key:
            problems.append("E112_API_KEY is one key for every service: set each service's ADMIN_API_KEY instead")
        if len(self.admin_secret() or "") < 32:
            problems.append("ADMIN_API_KEY must be set to a random key of 32+ characters")
        if self.takes_console_key:
            console = self.console_secret() or ""
            if len(console) < 32:
                problems.append("CONSOLE_API_KEY must be set to a random key of 32+ characters")
            elif console == self.admin_secret():
                problems.append("CONSOLE_API_KEY must differ from ADMIN_API_KEY")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            ssl_cafile=self.kafka_ssl_cafile,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=_value(self.kafka_sasl_password),
        )

    def admin_secret(self) -> str | None:
        """The admin key this service admits: its own, or in development E112_API_KEY."""
        return _value(self.admin_api_key) or self._development_key()

    def console_secret(self) -> str | None:
        """The console's key (sent by the console, taken by shifts and notifier)."""
        return _value(self.console_api_key) or self._development_key()

    def _development_key(self) -> str | None:
        return None if self.e112_env == "production" else _value(self.e112_api_key)


def _value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret else None
