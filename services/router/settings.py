from pydantic import Field

from services.common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    port: int = 8002
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
