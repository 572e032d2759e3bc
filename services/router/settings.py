from pydantic import Field

from services.common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    port: int = 8002
    outbox_poll_interval: float = Field(1.0, gt=0, le=60)
    # How long a stopping router may take to finish the batch in hand before it is
    # cancelled (its uncommitted events then go to another replica). Keep it below the
    # platform's kill timeout (Kubernetes' terminationGracePeriodSeconds).
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=120)
