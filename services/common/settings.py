"""Settings shared by every service, read from the environment (pydantic-settings).

Each service subclasses `ServiceSettings` with its own prefix-free fields. In
`E112_ENV=production` the development defaults are refused, so a forgotten variable
stops the service at start instead of running it with a guessable key.
"""

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEV_BOOTSTRAP = "127.0.0.1:9092"


class ServiceSettings(BaseSettings):
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
    kafka_topic_partitions: int = Field(3, ge=1, le=64)
    # How fast a dead consumer's partitions move to a live one. Apache Kafka's brokers
    # accept 6 s and up by default; Tansu also makes a group join wait half of it.
    kafka_session_timeout_ms: int = Field(6000, ge=1000, le=300_000)
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
    # The key apps and admins present as `Authorization: Bearer …`.
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

    @model_validator(mode="after")
    def _no_dev_defaults_in_production(self) -> "ServiceSettings":
        if self.e112_env != "production":
            return self
        problems = []
        if self.database_url == DEV_DATABASE_URL:
            problems.append("DATABASE_URL must be set")
        if self.kafka_bootstrap_servers == DEV_BOOTSTRAP:
            problems.append("KAFKA_BOOTSTRAP_SERVERS must be set")
        key = self.e112_api_key.get_secret_value() if self.e112_api_key else ""
        if len(key) < 32:
            problems.append("E112_API_KEY must be set to a random key of 32+ characters")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self
