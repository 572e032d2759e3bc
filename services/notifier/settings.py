from pydantic import Field

from services.common.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    port: int = 8003
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    delivery_max_attempts: int = Field(12, ge=1, le=100)
    delivery_backoff_base_seconds: float = Field(1.0, gt=0)
    delivery_backoff_cap_seconds: float = Field(120.0, gt=0)
    delivery_concurrency: int = Field(16, ge=1, le=256)
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
