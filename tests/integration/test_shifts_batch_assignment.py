"""The shifts consumer's table over a whole batch, in one transaction against a real
PostgreSQL: the tasks its events open or close are handed out once, at the batch's end,
as they would have been one event at a time (balanced, capacity kept, the rest queued,
a freed slot going to the oldest waiting)."""

import uuid
from datetime import UTC, datetime

import pytest

from schemas.envelope import Envelope
from schemas.events import ReportVerified
from services.shifts import tasks
from services.shifts.app import create_app
from tests.conftest import API_KEY
from tests.integration.test_shifts_assignment import add_operators, open_tasks, sms
from tests.integration.test_shifts_coverage import Clock, settings, wib
from tests.support import running

pytestmark = pytest.mark.integration


def envelope_of(data) -> Envelope:
    return Envelope(id=str(uuid.uuid4()), type=data.ce_type, source="test", time=None, key=None, data=data)


class CountingReconcile:
    """Counts the assigner's hand-outs and lets each through to the real one."""

    def __init__(self, assigner):
        self.real = assigner.reconcile
        self.calls: list[frozenset] = []
        assigner.reconcile = self

    async def __call__(self, conn, now, fresh=frozenset()):
        self.calls.append(fresh)
        await self.real(conn, now, fresh=fresh)


async def handle_in_one_transaction(app, table, envelopes) -> None:
    async with app.state.pool.acquire() as conn, conn.transaction():
        await table.handle_all(conn, envelopes)


async def test_a_batch_of_reports_is_handed_out_once_balanced_and_the_rest_queued(database_url, broker):
    clock = Clock(wib(2026, 3, 5, 9, 0))
    app = create_app(settings(database_url, broker, assign_capacity=2), clock)
    reports = [sms() for _ in range(7)]
    async with running(app, API_KEY) as client:
        ani, budi = await add_operators(client, "Ani", "Budi")
        await client.post(f"/v1/operators/{ani}/check-in")
        await client.post(f"/v1/operators/{budi}/check-in")
        counting = CountingReconcile(app.state.assigner)
        table = tasks.handler_table(app.state.assigner, clock)
        # A call that needs no verification opens nothing, so alone it hands out nothing.
        call = sms().model_copy(update={"channel": "call", "verification": "not_required"})
        await handle_in_one_transaction(app, table, [envelope_of(call)])
        after_call = list(counting.calls)
        await handle_in_one_transaction(app, table, [envelope_of(r) for r in reports])
        after_batch = list(counting.calls)
        assigned = await open_tasks(client, state="assigned")
        queued = (await client.get("/v1/queue")).json()
        # Ani's first report verified in a batch with one copy of a report already
        # queued (no second task for it): the one freed slot goes to the oldest waiting.
        first = next(t for t in assigned if t["operator_id"] == ani)
        verdict = ReportVerified(
            report_id=first["report_id"],
            verdict="genuine",
            operator_id=ani,
            verification="before_dispatch",
            verified_at=datetime.now(UTC),
        )
        waiting_report = next(r for r in reports if str(r.report_id) == queued[0]["report_id"])
        await handle_in_one_transaction(app, table, [envelope_of(verdict), envelope_of(waiting_report)])
        after_verdict = {t["report_id"]: t["operator_id"] for t in await open_tasks(client, state="assigned")}
        queued_after = (await client.get("/v1/queue")).json()
    assert after_call == []
    assert len(after_batch) == 1, "one hand-out for the whole batch"
    opened = {t["id"] for t in [*assigned, *queued]}
    assert after_batch[0] == {uuid.UUID(i) for i in opened}, "every task of the batch counts as new"
    assert sorted(t["operator_id"] for t in assigned) == sorted([ani, ani, budi, budi])
    assert len(queued) == 3
    assert len(counting.calls) == 2 and counting.calls[1] == frozenset()
    assert first["report_id"] not in after_verdict
    assert after_verdict[queued[0]["report_id"]] == ani
    assert [t["report_id"] for t in queued_after] == [t["report_id"] for t in queued[1:]]
