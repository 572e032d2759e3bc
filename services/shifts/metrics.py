"""The shifts service's Prometheus metrics. Labels are shift codes (from the three
templates), statuses and reasons: bounded, and never a person."""

from datetime import datetime

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.shifts import store
from services.shifts.roster import shift_at


class ShiftMetrics:
    def __init__(self, registry: CollectorRegistry):
        # /metrics lists them in the order they are registered here.
        self._register_presence(registry)
        self._register_coverage(registry)
        self._register_operator_changes(registry)
        self._register_tasks(registry)
        self._register_roster(registry)

    def _register_presence(self, registry: CollectorRegistry) -> None:
        """Who is checked in now (gauges set by refresh_gauges)."""
        self.on_duty = Gauge(
            "e112_operators_on_duty",
            "Operators checked in, by the shift they checked in for",
            ["shift"],
            registry=registry,
        )
        self.free = Gauge(
            "e112_operators_free",
            "Operators checked in and available, by the shift they checked in for",
            ["shift"],
            registry=registry,
        )

    def _register_coverage(self, registry: CollectorRegistry) -> None:
        """Whether the current shift has the operators it needs."""
        self.needed = Gauge("e112_operators_needed", "Operators the current shift needs", registry=registry)
        self.short = Gauge(
            "e112_shift_coverage_short",
            "1 while the current shift is short of operators (an alert is open)",
            registry=registry,
        )
        self.coverage_alerts = Counter(
            "e112_coverage_alerts_total",
            "Coverage alerts, by shift and reason (nobody, short)",
            ["shift", "reason"],
            registry=registry,
        )

    def _register_operator_changes(self, registry: CollectorRegistry) -> None:
        """What operators did: check-ins and check-outs, status changes, overstaying."""
        self.presence_changes = Counter(
            "e112_operator_presence_changes_total", "Check-ins and check-outs", ["change"], registry=registry
        )
        self.status_changes = Counter(
            "e112_operator_status_changes_total", "Status changes, by the new status", ["status"], registry=registry
        )
        self.still_checked_in = Counter(
            "e112_operators_still_checked_in_total",
            "Operators reported still checked in after their shift",
            registry=registry,
        )

    def _register_tasks(self, registry: CollectorRegistry) -> None:
        """The operator tasks: how many wait, how long, how they are given and closed."""
        self.tasks_queued = Gauge(
            "e112_tasks_queued", "Reports that need an operator waiting in the queue (nobody free)", registry=registry
        )
        self.tasks_open = Gauge(
            "e112_tasks_open", "Open operator tasks (queued or assigned), by reason", ["reason"], registry=registry
        )
        self.oldest_open = Gauge(
            "e112_tasks_oldest_open_timestamp_seconds",
            "When the oldest open task of each reason was created (Unix "
            "time; 0 with none open): its age is time() minus this",
            ["reason"],
            registry=registry,
        )
        self.task_wait = Histogram(
            "e112_task_wait_seconds",
            "From a report needing an operator to its first assignment, by reason",
            ["reason"],
            buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.assignments = Counter(
            "e112_task_assignments_total",
            "Tasks given to an operator, by reason and why (new, from_queue, reassigned, handover)",
            ["reason", "why"],
            registry=registry,
        )
        self.tasks_closed = Counter(
            "e112_tasks_closed_total", "Tasks closed, by reason and outcome", ["reason", "outcome"], registry=registry
        )

    def _register_roster(self, registry: CollectorRegistry) -> None:
        """Changes to who is rostered for which shift."""
        self.roster_changes = Counter(
            "e112_roster_changes_total",
            "Roster generations and edits, by kind and whether overridden",
            ["kind", "override"],
            registry=registry,
        )


async def refresh_gauges(conn: asyncpg.Connection, metrics: ShiftMetrics, now: datetime) -> None:
    """Set the gauges from the database, so every replica reports the same numbers."""
    templates = await store.load_templates(conn)
    counts = {r["shift"]: r for r in await store.presence_by_shift(conn)}
    for template in templates:
        row = counts.get(template.code)
        metrics.on_duty.labels(template.code).set(row["on_duty"] if row else 0)
        metrics.free.labels(template.code).set(row["free"] if row else 0)
    metrics.needed.set(shift_at(now, templates).template.operators_needed)
    metrics.short.set(1 if await store.open_episode(conn) else 0)
