from pydantic import Field

from services.common.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    port: int = 8001
    # How long a client waits before retrying when PostgreSQL is unavailable.
    retry_after_seconds: int = Field(5, ge=1, le=300)
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
