"""`GET /api/events`: the live updates, as server-sent events (fastapi.sse adds the
keep-alive comments). The browser's EventSource reconnects by itself; on `hello` and on
`feed` coming back it reloads its screens, so a gap loses nothing for long."""

from collections.abc import AsyncIterable

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.console.dependencies import Broadcaster
from services.console.session import CurrentOperator

router = APIRouter(prefix="/api", tags=["live"])


@router.get("/events", response_class=EventSourceResponse, summary="Live updates (text/event-stream)")
async def events(operator: CurrentOperator, broadcaster: Broadcaster) -> AsyncIterable[ServerSentEvent]:
    async with broadcaster.subscribe() as subscription:
        yield ServerSentEvent(event="hello", data={"feed_live": broadcaster.feed_live}, retry=3000)
        async for message in subscription:
            yield ServerSentEvent(event=message["type"], data=message)
