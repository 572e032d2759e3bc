"""Runs a service under uvicorn: `python -m services.<name>`.

uvicorn turns SIGTERM and SIGINT into a graceful shutdown: it stops accepting
connections, finishes requests in flight, then runs the lifespan's exit, which stops
the consumers after their batch and closes the pool."""

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from services.common import logs
from services.common.settings import ServiceSettings


def serve(service: str, settings: ServiceSettings, create_app: Callable[..., FastAPI]) -> None:
    logs.configure(service, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON logging
        access_log=False,
        proxy_headers=False,  # the app applies TRUSTED_PROXIES itself (services/common/web.py)
        timeout_graceful_shutdown=15,
    )
