"""From the raw records to the figures: rates, latency percentiles, loss, duplicates,
CPU and memory, the ratios to the baseline and the targets; and the readable report."""

import platform
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil

REQUESTED = "id.go.blitarkab.e112.dispatch.requested.v1"
SERVICES = ("intake", "router", "notifier", "shifts", "console")
TARGETS = {"reports_per_s": 1000.0, "steady_p99_ms": 100.0, "service_rss_mb": 150.0, "idle_cpu_percent": 2.0}


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 (nearest rank) and max, in milliseconds."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]

    return {
        "n": len(ordered),
        **{f"p{int(q * 100)}": round(rank(q) * 1000, 1) for q in (0.5, 0.95, 0.99)},
        "max": round(ordered[-1] * 1000, 1),
    }


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def _duplicates(messages: list[list], hooks: list[list]) -> dict[str, int]:
    """Raw: the same dedup key (ce_id on topics, Idempotency-Key on webhooks) seen more
    than once. After dedup: what is left once a reader drops repeated keys, i.e. a
    second dispatch.requested for one report and agency under another key."""
    # The same record read twice (same partition and offset) is the reader's doing, not a
    # duplicate published; counted apart.
    records = {(m[0], m[7], m[8]): m for m in messages}
    rereads = len(messages) - len(records)
    messages = list(records.values())
    topic_raw = len(messages) - len({m[2] for m in messages})
    per_dispatch: dict[tuple, set] = defaultdict(set)
    for topic, key, ce_id, ce_type, *_ in messages:
        if ce_type == REQUESTED:
            per_dispatch[(key, topic)].add(ce_id)
    hook_raw = len(hooks) - len({h[1] for h in hooks})
    per_hook: dict[tuple, set] = defaultdict(set)
    for _path, idempotency_key, ce_type, _ce_id, report_id, agency, *_ in hooks:
        if ce_type == REQUESTED:
            per_hook[(report_id, agency)].add(idempotency_key)
    return {
        "reader_rereads": rereads,
        "topic_raw": topic_raw,
        "topic_after_dedup": sum(len(ids) - 1 for ids in per_dispatch.values()),
        "webhook_raw": hook_raw,
        "webhook_after_dedup": sum(len(keys) - 1 for keys in per_hook.values()),
    }


def _ours(run: dict) -> dict:
    messages, hooks = run["observed"]["messages"], run["observed"]["webhooks"]
    on_topic, at_hook = _first_on_topics(messages), _first_at_webhooks(hooks)
    phases = {}
    totals = {"expected_dispatches": 0, "lost_on_topic": 0, "lost_at_webhook": 0, "undecided_reports": 0}
    for phase in run["phases"]:
        followed = _follow_dispatches(phase, run["decisions"], on_topic, at_hook)
        phases[phase["phase"]] = _ours_phase(phase, followed, messages)
        for name in totals:
            totals[name] += phases[phase["phase"]][name]
    updates = sum(1 for m in messages if m[3] != REQUESTED)
    return {
        "phases": phases,
        "loss": totals,
        "duplicates": _duplicates(messages, hooks),
        "updates_on_topics": updates,
        "profiles": run.get("profiles", []),
        "idle": run.get("idle"),
    }


def _first_on_topics(messages: list[list]) -> dict[tuple[str, str], float]:
    """When each (report, agency)'s dispatch.requested was first read on its topic."""
    on_topic: dict[tuple[str, str], float] = {}
    for topic, key, _ce_id, ce_type, _rid, _did, seen, *_ in messages:
        if ce_type == REQUESTED:
            agency = topic.removeprefix("e112.dispatch.")
            on_topic[(key, agency)] = min(seen, on_topic.get((key, agency), seen))
    return on_topic


def _first_at_webhooks(hooks: list[list]) -> dict[str, float]:
    """When each dispatch.requested (by Idempotency-Key, the dispatch id) first reached a webhook."""
    at_hook: dict[str, float] = {}
    for _path, idempotency_key, ce_type, _ce_id, _rid, _agency, _did, seen in hooks:
        if ce_type == REQUESTED:
            at_hook[idempotency_key] = min(seen, at_hook.get(idempotency_key, seen))
    return at_hook


@dataclass
class _Followed:
    """A phase's reports followed to their dispatches on the topics and at the webhooks."""

    last_arrival: float
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    to_topic: list[float] = field(default_factory=list)
    to_hook: list[float] = field(default_factory=list)
    expected: int = 0
    lost_on_topic: int = 0
    lost_at_webhook: int = 0
    undecided: int = 0


def _follow_dispatches(phase: dict, decisions: dict, on_topic: dict, at_hook: dict) -> _Followed:
    followed = _Followed(last_arrival=phase["ended"])
    for report_id, started, _answered, status, _related, _category in phase["posts"]:
        followed.statuses[status] += 1
        decision = decisions.get(report_id)
        if decision is None:
            followed.undecided += 1
            continue
        if decision["outcome"] != "routed":
            continue
        for dispatch in decision["dispatches"]:
            followed.expected += 1
            seen = on_topic.get((report_id, dispatch["agency"]))
            if seen is None:
                followed.lost_on_topic += 1
            else:
                followed.to_topic.append(seen - started)
                followed.last_arrival = max(followed.last_arrival, seen)
            hooked = at_hook.get(dispatch["dispatch_id"])
            if hooked is None:
                followed.lost_at_webhook += 1
            else:
                followed.to_hook.append(hooked - started)
    return followed


def _ours_phase(phase: dict, followed: _Followed, messages: list[list]) -> dict:
    posts = phase["posts"]
    span = phase["ended"] - phase["began"]
    through = followed.last_arrival - phase["began"]
    mine = {p[0] for p in posts}
    records = {(m[0], m[7], m[8]): m for m in messages if m[1] in mine}  # a reader's re-read counts once
    distinct = len({m[2] for m in records.values()})
    return {
        "reports_posted": len(posts) + sum(phase["errors"].values()),
        "reports_accepted": len(posts),
        "errors": phase["errors"],
        "seconds": round(span, 2),
        "accepted_per_s": _rate(len(posts), span),
        "through_to_topics_seconds": round(through, 2),
        "reports_per_s_through_to_topics": _rate(len(posts), through),
        "dispatches_per_s_on_topics": _rate(len(followed.to_topic), through),
        "answer_ms": percentiles([p[2] - p[1] for p in posts]),
        "post_to_topic_ms": percentiles(followed.to_topic),
        "post_to_webhook_ms": percentiles(followed.to_hook),
        "statuses": dict(followed.statuses),
        "related_meant": sum(1 for p in posts if p[4]),
        "expected_dispatches": followed.expected,
        "lost_on_topic": followed.lost_on_topic,
        "lost_at_webhook": followed.lost_at_webhook,
        "undecided_reports": followed.undecided,
        "drain_seconds": phase.get("drain_seconds"),
        "cpu_seconds": phase["cpu_seconds"],
        "agency_topic_records": len(records),
        "agency_topic_records_per_event": round(len(records) / distinct, 3) if distinct else None,
    }


def _baseline(run: dict) -> dict:
    messages = run["observed"]["messages"]
    seen_at: dict[str, float] = {}
    for _topic, key, _ce_id, _ce_type, _rid, _did, seen, *_ in messages:
        seen_at[key] = min(seen, seen_at.get(key, seen))
    phases = {}
    lost = 0
    for phase in run["phases"]:
        posts = phase["posts"]
        span = phase["ended"] - phase["began"]
        latencies, last = [], phase["ended"]
        for report_id, started, *_ in posts:
            seen = seen_at.get(report_id)
            if seen is None:
                lost += 1
            else:
                latencies.append(seen - started)
                last = max(last, seen)
        phases[phase["phase"]] = {
            "reports_accepted": len(posts),
            "errors": phase["errors"],
            "seconds": round(span, 2),
            "accepted_per_s": _rate(len(posts), span),
            "reports_per_s_through_to_topics": _rate(len(posts), last - phase["began"]),
            "answer_ms": percentiles([p[2] - p[1] for p in posts]),
            "post_to_topic_ms": percentiles(latencies),
            "cpu_seconds": phase["cpu_seconds"],
        }
    duplicates = _duplicates(messages, [])
    return {
        "phases": phases,
        "loss": {"lost_on_topic": lost},
        "duplicates": {k: duplicates[k] for k in ("reader_rereads", "topic_raw")},
    }


def _ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summarise(
    *, ours: dict, baseline: dict, ours_rss: dict, baseline_rss: dict, sizes: dict, quick: bool, started: float
) -> dict:
    o, b = _ours(ours), _baseline(baseline)
    mb = 1024 * 1024
    o["peak_rss_mb"] = {n: round(v / mb, 1) for n, v in ours_rss.items() if n != "baseline"}
    b["peak_rss_mb"] = {n: round(v / mb, 1) for n, v in baseline_rss.items() if n in ("baseline", "postgres", "broker")}
    ratios, targets = _ratios(o, b), _targets(o, b, sizes)
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in psutil.getloadavg()],
        },
        "quick": quick,
        "sizes": sizes,
        "ours": o,
        "baseline": b,
        "ratios_to_baseline": ratios,
        "targets": targets,
    }


def _ratios(o: dict, b: dict) -> dict[str, float | None]:
    os_, bs = o["phases"]["surge"], b["phases"]["surge"]
    ot, bt = o["phases"]["steady"], b["phases"]["steady"]
    return {
        "surge_accepted_per_s": _ratio(os_["accepted_per_s"], bs["accepted_per_s"]),
        "surge_reports_per_s_through_to_topics": _ratio(
            os_["reports_per_s_through_to_topics"], bs["reports_per_s_through_to_topics"]
        ),
        **{
            f"steady_post_to_topic_{q}": _ratio(ot["post_to_topic_ms"][q], bt["post_to_topic_ms"][q])
            for q in ("p50", "p95", "p99", "max")
        },
        "surge_cpu_seconds_per_report": _ratio(
            sum(os_["cpu_seconds"].values()) / max(1, os_["reports_accepted"]),
            sum(bs["cpu_seconds"].values()) / max(1, bs["reports_accepted"]),
        ),
    }


def _targets(o: dict, b: dict, sizes: dict) -> dict[str, dict]:
    surge, steady = o["phases"]["surge"], o["phases"]["steady"]
    no_loss = not any(o["loss"].values()) and not b["loss"]["lost_on_topic"]
    targets = {
        "reports_per_s_through_to_topics": {
            "target": f">= {TARGETS['reports_per_s']:.0f} with zero loss",
            "value": surge["reports_per_s_through_to_topics"],
            "zero_loss": no_loss,
            "met": surge["reports_per_s_through_to_topics"] >= TARGETS["reports_per_s"] and no_loss,
        },
        "steady_post_to_topic_p99_ms": {
            "target": f"<= {TARGETS['steady_p99_ms']:.0f} ms at {sizes['steady_rate']:g} reports/s",
            "value": (p99 := steady["post_to_topic_ms"]["p99"]),
            "met": p99 is not None and p99 <= TARGETS["steady_p99_ms"],
        },
        "service_peak_rss_mb": {
            "target": f"<= {TARGETS['service_rss_mb']:.0f} MB each",
            "value": {n: o["peak_rss_mb"].get(n) for n in SERVICES},
            "met": all((o["peak_rss_mb"].get(n) or 0) <= TARGETS["service_rss_mb"] for n in SERVICES),
        },
    }
    if o["idle"]:
        idle = {n: o["idle"]["cpu_percent"].get(n) for n in SERVICES}
        targets["idle_cpu_percent"] = {
            "target": f"<= {TARGETS['idle_cpu_percent']:g}% of a core each service, at rest",
            "value": idle,
            "met": all(v is not None and v <= TARGETS["idle_cpu_percent"] for v in idle.values()),
        }
    return targets


def _ms(p: dict) -> str:
    return " / ".join("–" if p[q] is None else f"{p[q]:.0f}" for q in ("p50", "p95", "p99", "max"))


def markdown(result: dict, command: str) -> str:
    """The readable report: its sections, a blank line between each two."""
    o, b = result["ours"], result["baseline"]
    sections = [
        ["# e112 bench results"],
        [
            f"{result['when']}, {result['machine']['cpus']} CPUs, Python {result['machine']['python']}"
            f"{' (quick sizes)' if result['quick'] else ''}. Command: `{command}`."
        ],
        [
            "Latencies in ms as p50 / p95 / p99 / max, from the POST being sent to the dispatch on the agency's",
            "topic (a plain reader) and at the agency's webhook.",
        ],
        _latency_table(o, b),
        ["Ratios, ours / baseline: " + ", ".join(f"{k} {v}" for k, v in result["ratios_to_baseline"].items())],
        _loss_table(o, b),
        _process_table(o, b),
        _copies_table(o),
    ]
    if o["idle"]:
        sections.append(
            [
                f"At rest ({o['idle']['seconds']} s, nothing sent), CPU in % of one core: "
                + ", ".join(f"{n} {v}" for n, v in o["idle"]["cpu_percent"].items())
                + "."
            ]
        )
    sections.append(_targets_table(result["targets"]))
    surge = o["phases"]["surge"]
    sections.append(
        [
            f"Surge statuses: {surge['statuses']} (related meant: {surge['related_meant']}); "
            f"caller updates on topics: {o['updates_on_topics']}."
        ]
    )
    if o["profiles"]:
        sections.append(["Profiles (speedscope.app): " + ", ".join(o["profiles"])])
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _latency_table(o: dict, b: dict) -> list[str]:
    lines = [
        "| phase | reports | accepted/s | through to topics, reports/s | POST answer | POST → topic | POST → webhook |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in o["phases"].items():
        lines.append(
            f"| ours {name} | {p['reports_accepted']} | {p['accepted_per_s']} | "
            f"{p['reports_per_s_through_to_topics']} | {_ms(p['answer_ms'])} | {_ms(p['post_to_topic_ms'])} | "
            f"{_ms(p['post_to_webhook_ms'])} |"
        )
    for name, p in b["phases"].items():
        lines.append(
            f"| baseline {name} | {p['reports_accepted']} | {p['accepted_per_s']} | "
            f"{p['reports_per_s_through_to_topics']} | {_ms(p['answer_ms'])} | "
            f"{_ms(p['post_to_topic_ms'])} | – |"
        )
    return lines


def _loss_table(o: dict, b: dict) -> list[str]:
    lines = ["| loss and duplicates | ours | baseline |", "|---|---|---|"]
    for key, value in o["loss"].items():
        lines.append(f"| {key} | {value} | {b['loss'].get(key, '–')} |")
    for key, value in o["duplicates"].items():
        lines.append(f"| duplicates {key} | {value} | {b['duplicates'].get(key, '–')} |")
    return lines


def _process_table(o: dict, b: dict) -> list[str]:
    lines = ["| process | CPU s (surge) | CPU s (steady) | peak RSS MB |", "|---|---|---|---|"]
    for label, run in (("", o), ("baseline: ", b)):
        for name, mb in run["peak_rss_mb"].items():
            lines.append(
                f"| {label}{name} | {run['phases']['surge']['cpu_seconds'].get(name, '–')} | "
                f"{run['phases']['steady']['cpu_seconds'].get(name, '–')} | {mb} |"
            )
    return lines


def _copies_table(o: dict) -> list[str]:
    lines = ["| phase | records on agency topics | per distinct event (1.0: no copies) |", "|---|---|---|"]
    for name, p in o["phases"].items():
        lines.append(f"| {name} | {p['agency_topic_records']} | {p['agency_topic_records_per_event']} |")
    return lines


def _targets_table(targets: dict) -> list[str]:
    lines = ["| target | value | met |", "|---|---|---|"]
    for name, t in targets.items():
        lines.append(f"| {name} {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |")
    return lines
