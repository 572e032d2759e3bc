"""An incident's closing against a real PostgreSQL and broker: every open task of it and
of its callers' reports closes (`incident_closed`, by whoever closed it) and the freed
operator takes what waits; another report's task stays open."""

import uuid
from datetime import UTC, datetime

import pytest

from schemas import topics
from schemas.events import DispatchHeld, ReportClosed, ReportStalled
from services.shifts.app import create_app
from tests.conftest import API_KEY
from tests.integration.test_shifts_assignment import _of, add_operators, on_reports, on_status, open_tasks, sms
from tests.integration.test_shifts_coverage import Clock, settings, wib
from tests.support import eventually, produce, read_topics, running

pytestmark = pytest.mark.integration


async def test_closing_an_incident_closes_every_open_task_of_it_and_of_its_callers(database_url, broker):
    clock = Clock(wib(2026, 3, 5, 9, 0))
    app = create_app(settings(database_url, broker, assign_capacity=1), clock)
    now = datetime.now(UTC)
    # Dispatched at once, verified after: a verify task, and an agency not reached.
    incident = sms("kebakaran").model_copy(update={"channel": "whatsapp", "verification": "after_dispatch"})
    held = DispatchHeld(
        dispatch_id=uuid.uuid4(),
        report_id=incident.report_id,
        agency="damkar",
        reason="webhook: HTTP 503",
        attempts=3,
        held_at=now,
        next_attempt_at=now,
    )
    # Another caller whose dispatch.caller_added never got through: the watchdog's task.
    caller = uuid.uuid4()
    stalled = ReportStalled(report_id=caller, missing=["damkar"], attempt=1, age_seconds=300.0, detected_at=now)
    other = sms()
    async with running(app, API_KEY) as client:
        (ani,) = await add_operators(client, "Ani")
        await client.post(f"/v1/operators/{ani}/check-in")
        await produce(broker.bootstrap, [on_reports(incident)])
        await eventually(lambda: _open(client, 1, operator_id=ani, state="assigned"))  # her capacity of one
        await produce(broker.bootstrap, [on_status(held)])
        await eventually(lambda: _open(client, 2, operator_id=ani, state="assigned"))  # a call goes out past it
        await produce(broker.bootstrap, [on_reports(stalled), on_reports(other)])
        await eventually(lambda: _open(client, 2, state="queued"))
        before = {t["id"]: t for t in await open_tasks(client)}
        closing = ReportClosed(
            report_id=incident.report_id,
            outcome="false_alarm",
            note="bakar sampah",
            operator_id=ani,
            linked_reports=[caller],
            closed_at=now,
        )
        await produce(broker.bootstrap, [on_reports(closing)])
        messages = await read_topics(
            broker.bootstrap,
            [topics.REPORTS],
            until=lambda ms: (
                len([m for m in _of(ms, "report.task_closed") if m.data["outcome"] == "incident_closed"]) == 3
            ),
        )
        # The same transaction closed them and gave out what waited.
        after = {t["id"]: t for t in await open_tasks(client)}
        closed = {t["id"]: t for t in (await client.get("/v1/tasks", params={"state": "closed"})).json()}
    of_incident = {t["reason"] for t in before.values() if t["report_id"] in (str(incident.report_id), str(caller))}
    assert of_incident == {"verify", "phone_agency", "stalled"}
    assert len(before) == 4
    assert {t["report_id"] for t in closed.values()} == {str(incident.report_id), str(caller)}
    assert {(t["reason"], t["outcome"], t["closed_by"]) for t in closed.values()} == {
        ("verify", "incident_closed", ani),
        ("phone_agency", "incident_closed", ani),
        ("stalled", "incident_closed", ani),
    }
    (left,) = after.values()
    assert left["report_id"] == str(other.report_id)
    assert left["state"] == "assigned" and left["operator_id"] == ani, "the freed slot taken at once"
    told = [m for m in _of(messages, "report.task_closed") if m.data["outcome"] == "incident_closed"]
    assert {m.data["task_id"] for m in told} == set(closed)
    assert all(m.key == m.data["report_id"] and m.data["operator_id"] == ani for m in told)
    assigned = [m.data for m in _of(messages, "report.assigned") if m.key == str(other.report_id)]
    assert [a["why"] for a in assigned] == ["from_queue"]


async def _open(client, n: int, **params) -> bool:
    return len(await open_tasks(client, **params)) == n
