"""services/shifts/assignment.py: who gets a task, pure."""

import uuid
from datetime import UTC, datetime, timedelta

from services.shifts.assignment import Operator, Task, plan, urgency_of

NOW = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)  # 10:00 WIB, the pagi shift
PAGI = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
PAGI_ENDS = PAGI + timedelta(hours=8)
MALAM = PAGI - timedelta(hours=8)


def op(name: str, status: str = "available", shift=PAGI, last=None) -> Operator:
    ends = None if shift is None else shift + timedelta(hours=8)
    return Operator(uuid.uuid5(uuid.NAMESPACE_DNS, name), status, shift, ends, last)


def tasks(n: int, holder=None, queued=False) -> list[Task]:
    return [Task(uuid.uuid4(), NOW - timedelta(minutes=n - i), holder, queued) for i in range(n)]


def run(task_list, operators, capacity=3):
    return plan(task_list, operators, shift_starts_at=PAGI, capacity=capacity, now=NOW)


def test_new_tasks_go_to_free_operators_only_balanced_and_in_turn():
    ani, budi = op("ani"), op("budi")
    on_break, home, night = op("citra", "break"), op("dewi", "offline", shift=None), op("eko", shift=MALAM)
    result = run(tasks(4), [ani, budi, on_break, home, night])
    holders = [m.operator_id for m in result.moves]
    assert holders == [ani.operator_id, budi.operator_id, ani.operator_id, budi.operator_id]
    assert {m.why for m in result.moves} == {"new"} and result.queued == []


def test_the_least_loaded_first_then_whoever_waited_longest_for_one():
    ani = op("ani", last=NOW - timedelta(minutes=1))
    budi = op("budi", last=NOW - timedelta(minutes=30))
    citra = op("citra", last=NOW - timedelta(minutes=5))
    held = tasks(1, holder=ani.operator_id)
    result = run(held + tasks(2), [ani, budi, citra])
    assert [m.operator_id for m in result.moves] == [budi.operator_id, citra.operator_id]


def test_over_capacity_tasks_wait_oldest_first_and_drain_in_that_order():
    ani = op("ani")
    waiting = tasks(3)
    result = run(waiting, [ani], capacity=1)
    assert [m.operator_id for m in result.moves] == [ani.operator_id, None, None]
    assert result.queued == [t.task_id for t in waiting[1:]]
    # Later someone checks in: the queued ones go out, oldest first, "from_queue".
    queued = [Task(t.task_id, t.created_at, None, queued=True) for t in waiting[1:]]
    budi, citra = op("budi"), op("citra")
    drained = run([Task(waiting[0].task_id, waiting[0].created_at, ani.operator_id), *queued], [ani, budi, citra], 1)
    assert [(m.task_id, m.why) for m in drained.moves] == [(t.task_id, "from_queue") for t in waiting[1:]]


def test_nobody_there_queues_everything():
    assert len(run(tasks(2), []).queued) == 2


def test_tasks_of_someone_who_left_or_took_a_break_go_to_others_never_back_to_them():
    ani, budi = op("ani"), op("budi")
    gone = op("ani", "offline", shift=None)
    result = run(tasks(2, holder=ani.operator_id), [gone, budi])
    assert [(m.operator_id, m.previous_operator_id, m.why) for m in result.moves] == [
        (budi.operator_id, ani.operator_id, "reassigned")
    ] * 2
    resting = op("budi", "break")
    alone = run(tasks(1, holder=budi.operator_id), [ani, resting])
    assert alone.moves[0].operator_id == ani.operator_id


def test_at_shift_end_the_leaving_operators_tasks_are_handed_over_or_queued():
    leaving = op("eko", shift=MALAM)  # still checked in for the night shift that ended at 07:00
    incoming = op("ani")
    result = run(tasks(2, holder=leaving.operator_id), [leaving, incoming], capacity=1)
    assert [(m.operator_id, m.why) for m in result.moves] == [(incoming.operator_id, "handover"), (None, "handover")]
    assert len(result.queued) == 1


def test_the_most_urgent_goes_first_and_an_agency_to_phone_goes_out_even_past_capacity():
    ani = op("ani")
    older_escalation = Task(uuid.uuid4(), NOW - timedelta(minutes=30), urgency=urgency_of("escalated"))
    verify = Task(uuid.uuid4(), NOW - timedelta(minutes=10), urgency=urgency_of("verify"))
    phone = Task(uuid.uuid4(), NOW - timedelta(minutes=1), urgency=urgency_of("phone_agency"))
    another_phone = Task(uuid.uuid4(), NOW, urgency=urgency_of("phone_agency"))
    result = run([older_escalation, verify, phone, another_phone], [ani], capacity=1)
    assigned = [m.task_id for m in result.moves if m.operator_id == ani.operator_id]
    # Ani's one slot is for the first phone task; the second goes to her past capacity;
    # the verification waits before the older escalation.
    assert assigned == [phone.task_id, another_phone.task_id]
    assert result.queued == [verify.task_id, older_escalation.task_id]


def test_with_nobody_on_duty_an_agency_to_phone_waits_at_the_head_of_the_queue():
    phone = Task(uuid.uuid4(), NOW, urgency=urgency_of("phone_agency"))
    stalled = Task(uuid.uuid4(), NOW - timedelta(hours=1), urgency=urgency_of("stalled"))
    result = run([stalled, phone], [op("citra", "break")])
    assert result.queued == [phone.task_id, stalled.task_id]
