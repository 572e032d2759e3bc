"""Stopping background loops in a lifespan's exit."""

import asyncio


async def stop_tasks(graceful: list[asyncio.Task], immediate: list[asyncio.Task], grace: float = 10.0) -> None:
    """Cancel `immediate` tasks now (safe to interrupt: e.g. an outbox relay whose
    rows stay until published); give `graceful` ones, already told to stop, `grace`
    seconds to finish their step, then cancel what is left."""
    for task in immediate:
        task.cancel()
    if graceful:
        _, pending = await asyncio.wait(graceful, timeout=grace)
        for task in pending:
            task.cancel()
    await asyncio.gather(*graceful, *immediate, return_exceptions=True)
