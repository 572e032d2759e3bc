"""The router service, declared: routes, its consumer of `e112.reports` and the sweep of
linked reports whose incident never came (services/common/assembly.py runs them)."""

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common.assembly import ConsumerSpec, Parts, Service, admin_key, assemble
from services.common.web import admitting
from services.router import api, linked, store
from services.router.deadletters import RouterConsumer
from services.router.handler import ReportHandler
from services.router.metrics import RouterMetrics
from services.router.settings import RouterSettings


def create_app(settings: RouterSettings) -> FastAPI:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    handler = ReportHandler(metrics)

    def build(pool, app: FastAPI) -> Parts:
        return Parts(
            consumer=ConsumerSpec(
                name="router",
                handler=handler.table,
                topics=[topics.REPORTS],
                consumer_class=RouterConsumer,
                options={"router_metrics": metrics},
            ),
            loops={"linked-sweep": lambda: linked.sweep_overdue(pool, handler.route_alone)},
        )

    service = Service(
        title="e112 router",
        description="Decides which agencies get each report, from a versioned routing table.",
        schema="router",
        migrations=Path(__file__).parent / "migrations",
        publishes=topics.all_topics(),
        routers=[admitting(admin_key(settings), api.router)],
        seed=store.seed_default_table,
        build=build,
    )
    return assemble(service, settings, registry)
