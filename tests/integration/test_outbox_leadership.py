"""One relay per service publishes (an advisory lock on its connection); when it stops,
another replica takes over. A stop that is cancelled again while it waits on the broker
(as `stop_for_sure` does) must still give the lock up: a replica left holding it in a
process that lives on would keep every other replica from publishing. Real broker, real
PostgreSQL, the common OutboxRelay."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from services.common.lifecycle import cancel_tasks
from services.common.outbox import enqueue
from tests.integration.outbox_support import all_published, outbox_ready, read_ids, records, relay_for
from tests.support import eventually

pytestmark = pytest.mark.integration


async def cancel_again_and_again(task: asyncio.Task, times: int = 200) -> None:
    """Cancel `task`, then cancel it again at each of its next steps, until it is done."""
    for _ in range(times):
        if task.done():
            break
        task.cancel()
        await asyncio.sleep(0)
    await asyncio.gather(task, return_exceptions=True)


async def test_a_relay_stopped_hard_gives_up_the_lead_to_another_replica(database_url, broker, tmp_path):
    pool = await outbox_ready(database_url, tmp_path)
    first = relay_for(database_url, broker.bootstrap, CollectorRegistry())
    first_task = asyncio.create_task(first.run())
    second = relay_for(database_url, broker.bootstrap, CollectorRegistry())
    second_task = None
    try:
        early = records(4)
        async with pool.acquire() as conn:
            await enqueue(conn, early)
        await eventually(lambda: all_published(pool), timeout=30)
        assert first.is_leader
        second_task = asyncio.create_task(second.run())
        await asyncio.sleep(1.0)  # several tries at the lock, while the first one leads
        assert not second.is_leader

        await cancel_again_and_again(first_task)
        await eventually(lambda: second.is_leader, timeout=10)
        late = records(4)
        async with pool.acquire() as conn:
            await enqueue(conn, late)
        await read_ids(broker.bootstrap, {r.event_id for r in early + late}, timeout=30)
        await eventually(lambda: all_published(pool), timeout=10)
    finally:
        await cancel_tasks(first_task, *([second_task] if second_task else []))
        await pool.close()
