"""The chaos ledger: every 202 and every delivery seen, append-only (JSON lines), and the
checks run on it after each scenario.

What it records:

- `accepted`: a 202 from intake: report id, when, the facts as posted (category,
  subtype, casualties, kecamatan), what intake answered (`linked_to`, `verification`)
  and which report the load generator meant it to be another caller of.
- `webhook`: a request the agency endpoint accepted (answered 2xx): agency, the
  `Idempotency-Key` (the dispatch or update id), `ce-id`, `ce-type`, and from the body
  the report, dispatch and (for another caller) new report ids.
- `topic`: a message read from an agency topic with a plain Kafka client: agency,
  `ce_id`, `ce_type`, report, dispatch and new report ids.
- `fault`: when a scenario's fault started and ended.

The oracle does not trust the pipeline it checks: the agencies a report must reach are
computed here with the router's pure `decide()` on the routing table read from the
router's API at the start of the run, from the facts as posted. A report intake linked
to an open incident (`linked_to` in its 202) must reach each of the incident's agencies
as `dispatch.caller_added` (new_report_id = the report) on the incident's dispatch; if
the router routed it on its own instead (its incident not decided in time), a
`dispatch.requested` of its own to the same agency counts too. Reports held for
verification before dispatch (none in the generated load) are expected nowhere.

The checks, per scenario (the reports accepted during it):

- missing: an expected (report, agency) never seen, on the webhook or on the topic;
- duplicates after dedup by the documented key: per agency, one logical dispatch (a
  dispatch id, or a dispatch id and new report for another caller) seen under more than
  one `ce_id`; on the webhook also one `Idempotency-Key` under two `ce-id`s;
- unexpected: a dispatch for a ledgered report to an agency the oracle did not expect
  (the router and the oracle disagree);
- recovery time: from the fault's end until the last delivery that was still
  outstanding at that moment was first seen.
"""

import json
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from uuid import UUID

from services.router.routing import RoutingTable, decide, dispatch_id

REQUESTED = "dispatch.requested"
CALLER_ADDED = "dispatch.caller_added"
CHANNELS = ("webhook", "topic")


def short_type(ce_type: str | None) -> str:
    """`id.go.blitarkab.e112.dispatch.requested.v1` -> `dispatch.requested`."""
    if not ce_type:
        return ""
    parts = ce_type.split(".")
    if parts and parts[-1].startswith("v") and parts[-1][1:].isdigit():
        parts = parts[:-1]
    return ".".join(parts[-2:])


class Ledger:
    """Append-only, thread-safe; kept in memory and, with a path, in a JSONL file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - closed in close()

    def add(self, record_type: str, **fields) -> dict:
        record = {"record": record_type, "at": fields.pop("at", None) or time.time(), **fields}
        with self._lock:
            self.records.append(record)
            if self._file:
                self._file.write(json.dumps(record, default=str) + "\n")
        return record

    def flush(self) -> None:
        with self._lock:
            if self._file:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None

    def of(self, record_type: str) -> list[dict]:
        with self._lock:
            return [r for r in self.records if r["record"] == record_type]

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        ledger = cls()
        ledger.records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return ledger


@dataclass(frozen=True)
class Expected:
    """One delivery the oracle expects: `report_id` must reach `agency`."""

    report_id: str
    agency: str
    via: str  # dispatch.requested | dispatch.caller_added
    dispatch_id: str  # of the report itself, or of the incident for another caller
    incident_id: str | None = None
    accepted_at: float = 0.0


def expectations(accepted: list[dict], table: RoutingTable, known: dict[str, dict] | None = None) -> list[Expected]:
    """What every accepted emergency must reach, computed from the facts as posted.
    `known`: every accepted report by id (incidents may have been accepted earlier)."""
    known = known if known is not None else {r["report_id"]: r for r in accepted}
    out: list[Expected] = []
    for report in accepted:
        if report.get("kind", "emergency") != "emergency" or report.get("verification") == "before_dispatch":
            continue
        incident_id = report.get("linked_to")
        if incident_id:
            incident = known.get(incident_id, report)  # unknown incident: its facts are the same by construction
            for agency in _agencies(table, incident_id, incident["facts"]):
                of_incident = str(dispatch_id(UUID(incident_id), agency))
                out.append(Expected(report["report_id"], agency, CALLER_ADDED, of_incident, incident_id, report["at"]))
        else:
            for agency in _agencies(table, report["report_id"], report["facts"]):
                own = str(dispatch_id(UUID(report["report_id"]), agency))
                out.append(Expected(report["report_id"], agency, REQUESTED, own, None, report["at"]))
    return out


def _agencies(table: RoutingTable, report_id: str, facts: dict) -> list[str]:
    decision = decide(
        table,
        UUID(report_id),
        facts.get("category"),
        subtype=facts.get("subtype"),
        casualties=facts.get("casualties"),
        kecamatan=facts.get("kecamatan"),
    )
    return [a.agency for a in decision.assignments]


def _satisfies(seen: dict, want: Expected) -> bool:
    kind = short_type(seen.get("ce_type"))
    if seen.get("agency") != want.agency:
        return False
    if want.via == CALLER_ADDED:
        if kind == CALLER_ADDED:
            return seen.get("new_report_id") == want.report_id and seen.get("dispatch_id") == want.dispatch_id
        # The router routed the other caller on its own (its incident not decided in time).
        return kind == REQUESTED and seen.get("report_id") == want.report_id
    return kind == REQUESTED and seen.get("report_id") == want.report_id and seen.get("dispatch_id") == want.dispatch_id


def logical_key(seen: dict) -> tuple | None:
    """What one agency must see once: a dispatch, or one caller added to a dispatch."""
    kind = short_type(seen.get("ce_type"))
    if kind == REQUESTED:
        return (REQUESTED, seen.get("dispatch_id"))
    if kind == CALLER_ADDED:
        return (CALLER_ADDED, seen.get("dispatch_id"), seen.get("new_report_id"))
    return None


@dataclass
class ChannelResult:
    expected: int = 0
    delivered: int = 0
    missing: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    unexpected: list[dict] = field(default_factory=list)
    recovery_seconds: float | None = None
    outstanding_at_fault_end: int = 0
    max_latency_seconds: float | None = None  # 202 to first seen, the slowest
    received: int = 0  # messages or requests seen for these reports, before deduplication
    distinct: int = 0  # distinct ce_ids among them


@dataclass
class ScenarioResult:
    scenario: str
    accepted: int
    not_accepted: int
    linked: int
    expected: int  # (report, agency) pairs
    webhook: ChannelResult
    topic: ChannelResult
    fault_seconds: float | None = None
    kills: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if not self.accepted or not self.expected:
            return False  # a scenario that accepted nothing proves nothing
        return all(not (c.missing or c.duplicates or c.unexpected) for c in (self.webhook, self.topic))

    @property
    def recovery_seconds(self) -> float | None:
        """None when something never arrived (or there was no fault)."""
        values = [c.recovery_seconds for c in (self.webhook, self.topic)]
        return None if None in values else max(values)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        out["recovery_seconds"] = self.recovery_seconds
        for name in CHANNELS:  # keep the JSON readable: counts, and the first few of each list
            channel = out[name]
            for key in ("missing", "duplicates", "unexpected"):
                channel[f"{key}_count"] = len(channel[key])
                channel[key] = channel[key][:20]
        return out


def check(
    ledger: Ledger,
    table: RoutingTable,
    *,
    scenario: str,
    report_ids: set[str] | None = None,
    fault_end: float | None = None,
    fault_start: float | None = None,
) -> ScenarioResult:
    """Run the checks on the reports `report_ids` (default: every accepted one)."""
    all_accepted = ledger.of("accepted")
    known = {r["report_id"]: r for r in all_accepted}
    accepted = [r for r in known.values() if report_ids is None or r["report_id"] in report_ids]
    wanted = expectations(accepted, table, known)
    ids = {r["report_id"] for r in accepted}
    result = ScenarioResult(
        scenario=scenario,
        accepted=len(accepted),
        linked=sum(1 for r in accepted if r.get("linked_to")),
        not_accepted=sum(1 for r in ledger.of("not_accepted") if r.get("scenario") == scenario),
        expected=len(wanted),
        webhook=ChannelResult(),
        topic=ChannelResult(),
        fault_seconds=(fault_end - fault_start) if fault_end and fault_start else None,
    )
    for name in CHANNELS:
        seen = ledger.of(name)
        _check_channel(getattr(result, name), seen, wanted, ids, fault_end)
    return result


def _check_channel(out: ChannelResult, seen: list[dict], wanted: list[Expected], ids: set[str], fault_end) -> None:
    # Everything this scenario's reports caused, by (agency, report) for matching.
    relevant = [s for s in seen if s.get("report_id") in ids or s.get("new_report_id") in ids]
    by_report: dict[str, list[dict]] = defaultdict(list)
    for s in relevant:
        by_report[s.get("new_report_id") or s.get("report_id")].append(s)
    out.expected = len(wanted)
    out.received, out.distinct = len(relevant), len({s.get("ce_id") for s in relevant})
    expected_pairs = set()
    for want in wanted:
        expected_pairs.add((want.report_id, want.agency))
        hits = [s for s in by_report.get(want.report_id, []) if _satisfies(s, want)]
        if not hits:
            out.missing.append(asdict(want))
            continue
        out.delivered += 1
        first = min(h["at"] for h in hits)
        out.max_latency_seconds = max(out.max_latency_seconds or 0.0, round(first - want.accepted_at, 3))
        # Recovery: the reports accepted up to the fault's end, delivered after it.
        if fault_end is not None and want.accepted_at <= fault_end and first > fault_end:
            out.outstanding_at_fault_end += 1
            out.recovery_seconds = max(out.recovery_seconds or 0.0, round(first - fault_end, 3))
    if out.missing:
        out.recovery_seconds = None  # not recovered: something never arrived
    elif fault_end is not None and out.recovery_seconds is None:
        out.recovery_seconds = 0.0
    for s in relevant:
        subject = s.get("new_report_id") or s.get("report_id")
        kind = short_type(s.get("ce_type"))
        if kind in (REQUESTED, CALLER_ADDED) and (subject, s.get("agency")) not in expected_pairs:
            out.unexpected.append({k: s.get(k) for k in ("agency", "ce_type", "ce_id", "report_id", "new_report_id")})
    # Duplicates after deduplication by the documented key (ce_id), per agency.
    ce_ids: dict[tuple, set[str]] = defaultdict(set)
    keys: dict[tuple, set[str]] = defaultdict(set)
    for s in relevant:
        key = logical_key(s)
        if key is None:
            continue
        ce_ids[(s.get("agency"), *key)].add(s.get("ce_id"))
        if s.get("idempotency_key"):
            keys[(s.get("agency"), s["idempotency_key"])].add(s.get("ce_id"))
    reported = set()
    for key, values in ce_ids.items():
        if len(values) > 1:
            reported.add((key[0], frozenset(values)))
            out.duplicates.append({"agency": key[0], "what": list(key[1:]), "ce_ids": sorted(map(str, values))})
    for key, values in keys.items():  # one Idempotency-Key under two ce-ids, not already counted above
        if len(values) > 1 and (key[0], frozenset(values)) not in reported:
            out.duplicates.append({"agency": key[0], "idempotency_key": key[1], "ce_ids": sorted(map(str, values))})
