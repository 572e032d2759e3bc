"""Stopping background loops in a lifespan's exit."""

import asyncio


async def cancel_tasks(*tasks: asyncio.Task) -> None:
    """Cancel loops that are safe to interrupt anywhere (an outbox relay: its rows stay
    until published; a deliverer: its leased rows come due again) and wait for them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
