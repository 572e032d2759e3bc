"""Who gets a report that needs a person: pure rules, no I/O (the assigner applies them).

A task (a report to verify, an unrouted report, an escalation, a stalled report) is held
by one operator at a time. Only an operator checked in for the shift on duty now, and
not on a break, may hold one: anyone else's tasks (checked out, on a break, or still
there after their shift ended) are taken back and given out again, so nothing stays
with someone who is off duty. An operator is free while holding fewer tasks than the
capacity; the least loaded free operator gets the next task, ties going to whoever was
given one least recently (so two idle operators take turns). With nobody free, tasks
wait in the queue and go out as soon as someone is: the most urgent first (URGENCY),
oldest first among equals. A dispatch that is not reaching its agency (phone it) goes
to an operator on duty even past the capacity: a person must call now.
"""

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from schemas.catalog import TASK_URGENCY

HOLDING_STATUSES = ("available", "handling_report")
URGENCY = TASK_URGENCY  # lower goes first
PAST_CAPACITY = 0  # tasks of this urgency go out even to an operator at capacity


def urgency_of(reason: str) -> int:
    return URGENCY.get(reason, max(URGENCY.values()))


@dataclass(frozen=True)
class Operator:
    operator_id: UUID
    status: str  # available, handling_report, break
    shift_starts_at: datetime | None
    shift_ends_at: datetime | None
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class Task:
    task_id: UUID
    created_at: datetime
    operator_id: UUID | None = None
    queued: bool = False  # waited in the queue already (not created just now)
    urgency: int = max(URGENCY.values())


@dataclass(frozen=True)
class Move:
    task_id: UUID
    operator_id: UUID | None  # None: back to the queue
    previous_operator_id: UUID | None
    why: str  # new, from_queue, reassigned, handover


@dataclass
class Plan:
    moves: list[Move] = field(default_factory=list)
    queued: list[UUID] = field(default_factory=list)  # still waiting after the plan, oldest first


def may_hold(op: Operator | None, shift_starts_at: datetime) -> bool:
    return op is not None and op.status in HOLDING_STATUSES and op.shift_starts_at == shift_starts_at


def why_taken_back(op: Operator | None, now: datetime) -> str:
    """Handover when the holder's shift is over; otherwise they left or went on a break."""
    if op is not None and op.shift_ends_at is not None and op.shift_ends_at <= now:
        return "handover"
    return "reassigned"


def plan(
    tasks: list[Task], operators: list[Operator], *, shift_starts_at: datetime, capacity: int, now: datetime
) -> Plan:
    """Every open task's holder after the rules above; `tasks` in arrival order (a stable
    sort by urgency and creation time keeps it for tasks created at the same instant)."""
    by_id = {op.operator_id: op for op in operators}
    holders = [op for op in operators if may_hold(op, shift_starts_at)]
    load = {op.operator_id: 0 for op in holders}
    last = {op.operator_id: op.last_assigned_at for op in holders}
    result = Plan()
    waiting: list[tuple[Task, str, UUID | None]] = []
    for task in sorted(tasks, key=lambda t: (t.urgency, t.created_at)):
        if task.operator_id in load:
            load[task.operator_id] += 1
        elif task.operator_id is None:
            waiting.append((task, "from_queue" if task.queued else "new", None))
        else:
            waiting.append((task, why_taken_back(by_id.get(task.operator_id), now), task.operator_id))
    for task, why, previous in waiting:
        free = [
            op_id for op_id, n in load.items() if (n < capacity or task.urgency <= PAST_CAPACITY) and op_id != previous
        ]
        if not free:
            if previous is not None or why == "new":
                result.moves.append(Move(task.task_id, None, previous, why))
            result.queued.append(task.task_id)
            continue
        # Least loaded; then whoever got a task least recently (never: first); then a stable order.
        chosen = min(free, key=lambda op_id: (load[op_id], last[op_id] is not None, last[op_id] or now, str(op_id)))
        load[chosen] += 1
        last[chosen] = now
        result.moves.append(Move(task.task_id, chosen, previous, why))
    return result
