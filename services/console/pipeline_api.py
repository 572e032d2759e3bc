"""`GET /api/pipeline`: the degraded-pipeline banner's items (pipeline.py), for every
signed-in operator. Asked of the services at most once per few seconds, whoever asks:
six consoles polling must not become six times the requests upstream."""

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter

from services.common.web import from_state
from services.console import pipeline
from services.console.dependencies import Settings, Upstream
from services.console.session import CurrentOperator

FRESH_SECONDS = 5.0


@dataclass
class LastAnswer:
    """The last answer and when it was made: one per app."""

    at: float = -FRESH_SECONDS
    answer: dict | None = None


router = APIRouter(prefix="/api", tags=["pipeline"])


@router.get("/pipeline", summary="Whether the pipeline keeps up: services, consumer lag, unreachable agencies")
async def state(
    operator: CurrentOperator,
    upstream: Upstream,
    settings: Settings,
    kept: Annotated[LastAnswer, from_state("pipeline_kept")],
) -> dict:
    if time.monotonic() - kept.at >= FRESH_SECONDS:
        backlog_bound = settings.pipeline_backlog_bound
        readings = await pipeline.gather(upstream.clients)
        items = pipeline.assess(readings, backlog_bound)
        kept.at, kept.answer = time.monotonic(), {"ok": not items, "items": items, "backlog_bound": backlog_bound}
    return kept.answer
