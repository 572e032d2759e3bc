from typing import ClassVar

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from services.common.settings import ServiceSettings
from services.notifier.egress import EgressPolicy, parse_networks
from services.notifier.vault import DEV_KEY, SecretVault, parse_keys

DEV_ACK_LINK_SECRET = "development-only-ack-link-secret"
DEV_PUBLIC_URL = "http://127.0.0.1:8003"


class NotifierSettings(ServiceSettings):
    takes_console_key: ClassVar[bool] = True  # the console reads agencies and records phone calls
    port: int = 8003
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    delivery_max_attempts: int = Field(12, ge=1, le=100)
    delivery_backoff_base_seconds: float = Field(1.0, gt=0)
    delivery_backoff_cap_seconds: float = Field(120.0, gt=0)
    # Attempts in flight at once, and of them at most this many to one agency: an
    # endpoint that answers slowly (or only at the timeout) holds its share, not the others'.
    delivery_concurrency: int = Field(64, ge=1, le=256)
    delivery_concurrency_per_agency: int = Field(16, ge=1, le=256)
    delivery_poll_interval: float = Field(1.0, gt=0, le=60)
    # A dispatch that cannot be delivered within this many seconds of the report (its
    # endpoint fails, its breaker is open) is announced as held: an operator phones.
    held_notice_seconds: float = Field(5.0, ge=0, le=600)
    # An agency's acknowledgement deadline when its configuration sets none.
    default_ack_deadline_seconds: int = Field(300, ge=10, le=86_400)
    escalation_poll_interval: float = Field(1.0, gt=0, le=60)
    # Per-agency webhook circuit breaker.
    breaker_failure_threshold: int = Field(5, ge=1, le=1000)
    breaker_cooldown_seconds: float = Field(15.0, gt=0, le=3600)
    breaker_cooldown_cap_seconds: float = Field(300.0, gt=0, le=86_400)
    # How long a rotated-out webhook secret still signs (a second v1=), so an agency
    # can switch to the new one without rejecting dispatches meanwhile.
    webhook_secret_grace_seconds: int = Field(86_400, ge=0, le=30 * 86_400)
    # Networks a webhook may reach although they are internal (comma-separated CIDRs or
    # addresses, e.g. the regency's WAN; 127.0.0.1/32 for a local test receiver). Every
    # other loopback, private, link-local or reserved address is refused (egress.py).
    webhook_allowed_networks: str = ""
    # E-mail (the fallback channel and escalation notices). No host: no e-mail channel.
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout_seconds: float = Field(20.0, gt=0, le=300)
    smtp_from: str = "Layanan 112 Kabupaten Blitar <noreply-112@blitarkab.go.id>"
    # Where the links in e-mails point (this service, as the agencies reach it).
    public_base_url: AnyHttpUrl = AnyHttpUrl(DEV_PUBLIC_URL)
    ack_link_secret: SecretStr = SecretStr(DEV_ACK_LINK_SECRET)
    ack_link_ttl_seconds: int = Field(86_400, ge=60, le=30 * 86_400)
    # Fernet keys that seal the agencies' webhook secrets in the database, comma-separated:
    # the first seals, all open (services/notifier/vault.py). Production needs its own.
    webhook_secret_keys: SecretStr = SecretStr(DEV_KEY)

    @field_validator("webhook_secret_keys")
    @classmethod
    def _keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_keys(value.get_secret_value())
        return value

    def vault(self) -> SecretVault:
        return SecretVault(parse_keys(self.webhook_secret_keys.get_secret_value()))

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)
        return value

    def egress_policy(self) -> EgressPolicy:
        """Webhooks over HTTPS only in production; plain HTTP is for development."""
        return EgressPolicy(
            require_https=self.e112_env == "production", allowed_networks=parse_networks(self.webhook_allowed_networks)
        )

    @model_validator(mode="after")
    def _no_notifier_dev_defaults_in_production(self) -> "NotifierSettings":
        if self.e112_env != "production":
            return self
        problems = []
        if len(self.ack_link_secret.get_secret_value()) < 32 or (
            self.ack_link_secret.get_secret_value() == DEV_ACK_LINK_SECRET
        ):
            problems.append("ACK_LINK_SECRET must be set to a random secret of 32+ characters")
        if str(self.public_base_url).rstrip("/") == DEV_PUBLIC_URL:
            problems.append("PUBLIC_BASE_URL must be set to where agencies reach the notifier")
        if DEV_KEY in parse_keys(self.webhook_secret_keys.get_secret_value()):
            problems.append("WEBHOOK_SECRET_KEYS must be set to keys of its own (the development key is public)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self
