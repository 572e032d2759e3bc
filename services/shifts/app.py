"""The shifts service, declared: operators, roster, handover and task routes, its task
consumer, the coverage check and the assignment round (services/common/assembly.py runs
them)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common.assembly import ConsumerSpec, Keys, Parts, Service, assemble
from services.common.web import admitting
from services.shifts import api, handover_api, roster_api, tasks, tasks_api
from services.shifts.assigner import Assigner
from services.shifts.metrics import ShiftMetrics
from services.shifts.monitor import CoverageMonitor
from services.shifts.rotation import RestRule
from services.shifts.settings import ShiftsSettings


def create_app(settings: ShiftsSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> FastAPI:
    """`clock` is injectable so that shift boundaries are tested without waiting; tests
    run the coverage check and the assignment round at a time of their choosing with
    `app.state.coverage.tick()` and `app.state.assigner.tick()`."""
    registry = CollectorRegistry()
    metrics = ShiftMetrics(registry)

    async def build(pool, app: FastAPI) -> Parts:
        app.state.coverage = coverage = CoverageMonitor(
            pool=pool,
            clock=clock,
            metrics=metrics,
            grace=timedelta(minutes=settings.coverage_grace_minutes),
            interval=settings.coverage_check_interval,
        )
        await coverage.tick()  # gauges and any shortage right from the start
        app.state.assigner = assigner = Assigner(
            pool=pool,
            clock=clock,
            metrics=metrics,
            capacity=settings.assign_capacity,
            interval=settings.coverage_check_interval,
        )
        # A fetched batch in one transaction, like every consumer: its functions say
        # which tasks they opened, and the tasks are handed out once, at the batch's end.
        consumer = ConsumerSpec(name="shifts-tasks", handler=tasks.handler_table(assigner, clock), topics=tasks.TOPICS)
        return Parts(consumer=consumer, loops={"coverage-check": coverage.run, "assignment": assigner.run})

    keys = Keys.of(settings)
    service = Service(
        title="e112 shifts",
        description="Operators, the three daily shifts and the monthly roster, check-in, status and coverage "
        "alerts, handover notes.",
        schema="shifts",
        migrations=Path(__file__).parent / "migrations",
        publishes=[topics.SHIFTS, topics.REPORTS, topics.DEADLETTER],
        routers=[
            admitting(keys.console, api.for_console),
            admitting(keys.admin, api.for_admin, roster_api.router, handover_api.router),
            admitting(keys.console, tasks_api.router),
        ],
        build=build,
    )
    app = assemble(service, settings, registry)
    # What the routes take (services/shifts/dependencies.py); `build` adds the rest.
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.rest_rule = RestRule(timedelta(hours=settings.roster_min_rest_hours))
    app.state.check_in_early = timedelta(minutes=settings.check_in_early_minutes)
    return app
