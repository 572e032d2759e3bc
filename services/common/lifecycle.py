"""Stopping background loops in a lifespan's exit."""

import asyncio


async def cancel_tasks(*tasks: asyncio.Task) -> None:
    """Cancel loops that are safe to interrupt anywhere (an outbox relay: its rows stay
    until published; a deliverer: its leased rows come due again) and wait for them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def stop_for_sure(task: asyncio.Task, every: float = 0.5) -> None:
    """Cancel `task` until it has stopped. The outbox relay waits with asyncio.wait_for,
    which on Python 3.11 can swallow a cancellation that lands just as its wake-up
    comes; its loop then runs on and the shutdown would hang (seen in the tests)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    await asyncio.gather(task, return_exceptions=True)
