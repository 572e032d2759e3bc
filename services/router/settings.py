from services.common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    port: int = 8002
