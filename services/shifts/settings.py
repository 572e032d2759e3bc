from pydantic import Field

from services.common.settings import ServiceSettings


class ShiftsSettings(ServiceSettings):
    port: int = 8004
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
