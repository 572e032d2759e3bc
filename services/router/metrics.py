"""The router's metrics, and the name it signs its events with."""

from prometheus_client import CollectorRegistry, Counter, Gauge

SOURCE = "e112/router"


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.decisions = Counter(
            "e112_routing_decisions_total",
            "Reports decided, by category and outcome",
            ["category", "outcome"],
            registry=registry,
        )
        self.dispatches = Counter(
            "e112_dispatches_requested_total",
            "Dispatches requested, by agency and role",
            ["agency", "role"],
            registry=registry,
        )
        self.table_version = Gauge(
            "e112_routing_table_version",
            "The routing table version the last report was routed with",
            registry=registry,
        )
