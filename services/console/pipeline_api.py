"""`GET /api/pipeline`: the degraded-pipeline banner's items (pipeline.py), for every
signed-in operator. Asked of the services at most once per few seconds, whoever asks:
six consoles polling must not become six times the requests upstream."""

import time

from fastapi import APIRouter, Request

from services.console import pipeline
from services.console.session import CurrentOperator

FRESH_SECONDS = 5.0


def build_pipeline_router(backlog_bound: float) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["pipeline"])
    kept: dict = {"at": -FRESH_SECONDS, "answer": None}

    @router.get("/pipeline", summary="Whether the pipeline keeps up: services, consumer lag, unreachable agencies")
    async def state(operator: CurrentOperator, request: Request) -> dict:
        if time.monotonic() - kept["at"] >= FRESH_SECONDS:
            readings = await pipeline.gather(request.app.state.upstream.clients)
            items = pipeline.assess(readings, backlog_bound)
            kept.update(at=time.monotonic(), answer={"ok": not items, "items": items, "backlog_bound": backlog_bound})
        return kept["answer"]

    return router
