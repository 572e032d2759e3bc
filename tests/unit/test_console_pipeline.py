"""The degraded-pipeline banner's judgement, from what the services report."""

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from services.console.pipeline import Readings, assess, parse_metrics


def test_all_well_is_no_item():
    readings = Readings(
        ready={"intake": {"database": True}, "notifier": {"database": True, "broker": True}},
        backlog={"e112-router": 100, "e112-notifier": 3},
        stalled=0,
    )
    assert assess(readings, backlog_bound=100) == []


def test_each_trouble_is_named_most_serious_first():
    readings = Readings(
        ready={"intake": {"database": True}, "notifier": {"database": True, "broker": False}, "shifts": None},
        backlog={"e112-router": 101, "e112-notifier": 4000.0, "e112-intake-timeline": 0},
        stalled=7.0,
        breaker_open=["pln", "damkar"],
    )
    assert assess(readings, backlog_bound=100) == [
        {"code": "service_not_ready", "service": "notifier", "checks": ["broker"]},
        {"code": "service_down", "service": "shifts"},
        {"code": "behind", "group": "e112-notifier", "events": 4000},
        {"code": "behind", "group": "e112-router", "events": 101},
        {"code": "agency_unreachable", "agency": "damkar"},
        {"code": "agency_unreachable", "agency": "pln"},
        {"code": "stalled", "reports": 7},
    ]


def test_the_services_metrics_are_read_with_their_labels():
    registry = CollectorRegistry()
    backlog = Gauge("e112_watchdog_consumer_backlog_events", "", ["group"], registry=registry)
    backlog.labels("e112-router").set(250)
    breaker = Gauge("e112_webhook_breaker_open", "", ["agency"], registry=registry)
    breaker.labels("pln").set(1)
    breaker.labels("damkar").set(0)
    samples = parse_metrics(generate_latest(registry).decode())
    assert samples["e112_watchdog_consumer_backlog_events"] == [({"group": "e112-router"}, 250.0)]
    assert sorted(samples["e112_webhook_breaker_open"], key=lambda s: s[0]["agency"]) == [
        ({"agency": "damkar"}, 0.0),
        ({"agency": "pln"}, 1.0),
    ]
