"""Filing reports: every POST's report stored together with those that arrive while a
transaction is running (group commit: services/common/groupcommit.py runs `file_together`).

In a surge dozens of POSTs are in flight at once. One transaction each cost about seven
statements and a commit per report, the largest single share of the database's work
(bench --profile). Together, the Idempotency-Keys are claimed in one statement, the
linking locks taken in one, the open incidents near each report read in one, the
reports, their timelines and their report.received events written in one.

Each report is decided as it would be if the batch's reports were filed one after the
other, in the order they arrived: a second caller of a fire in the same batch is linked
to the first, a key used twice in one batch files once."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from schemas.catalog import Verification
from schemas.reports import ReportCreate
from services.intake import store
from services.intake.clients import Client
from services.intake.linking import Candidate, Link, Place, find_incident
from services.intake.settings import IntakeSettings
from services.intake.store import KeyClaim, Nearby, NewReport
from services.intake.verification import PolicyRule, verification_for
from services.intake.verification_api import live_rules


@dataclass(frozen=True)
class Filing:
    """A POST's report, validated, to be filed."""

    report_id: UUID
    report: ReportCreate
    received_at: datetime
    client: Client
    digest: str  # store.request_hash of the report
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Filed:
    """Stored as a new report."""

    status: str
    link: Link | None
    verification: Verification
    caller_pranks: int


@dataclass(frozen=True)
class Replayed:
    """The Idempotency-Key's first request filed this report (unexpired, same body)."""

    report: asyncpg.Record


@dataclass(frozen=True)
class KeyReused:
    """The Idempotency-Key's first request had another body: nothing filed."""


Outcome = Filed | Replayed | KeyReused


@dataclass(frozen=True)
class FilingRules:
    idempotency_ttl: timedelta
    link_related_reports: bool
    link_window: timedelta
    link_distance_m: float
    prank_period: timedelta

    @classmethod
    def of(cls, settings: IntakeSettings) -> "FilingRules":
        return cls(
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
            link_related_reports=settings.link_related_reports,
            link_window=timedelta(minutes=settings.link_window_minutes),
            link_distance_m=settings.link_distance_m,
            prank_period=timedelta(days=settings.prank_flag_days),
        )


async def file_together(conn: asyncpg.Connection, filings: list[Filing], rules: FilingRules) -> list[Outcome]:
    """File `filings` in the caller's transaction, in their order; an outcome each."""
    outcomes: list[Outcome | None] = [None] * len(filings)
    first_with_key: dict[tuple[str, str], int] = {}
    for i, f in enumerate(filings):
        if f.idempotency_key is not None:
            first_with_key.setdefault((f.client.id, f.idempotency_key), i)
    claims = [KeyClaim(*key, filings[i].report_id, filings[i].digest) for key, i in first_with_key.items()]
    used = await store.claim_idempotency_keys(conn, claims, rules.idempotency_ttl)
    replays: dict[int, UUID] = {}
    for i, f in enumerate(filings):
        if f.idempotency_key is None:
            continue
        key = (f.client.id, f.idempotency_key)
        first = used.get(key)
        if first is None and first_with_key[key] != i:  # the key's first use is earlier in this batch
            earlier = filings[first_with_key[key]]
            first = store.FirstRequest(earlier.report_id, earlier.digest)
        if first is None:
            continue
        if first.request_hash != f.digest:
            outcomes[i] = KeyReused()
        else:
            replays[i] = first.report_id
    new = [i for i in range(len(filings)) if outcomes[i] is None and i not in replays]
    decided = await _decide(conn, [filings[i] for i in new], rules)
    stored = await store.store_reports(conn, decided)
    for i, n, s in zip(new, decided, stored, strict=True):
        outcomes[i] = Filed(s.status, n.link, n.verification, s.caller_pranks)
    if replays:
        rows = {r["id"]: r for r in await store.fetch_reports(conn, list(set(replays.values())))}
        for i, report_id in replays.items():
            outcomes[i] = Replayed(rows[report_id])
    return outcomes  # type: ignore[return-value]


async def _decide(conn: asyncpg.Connection, filings: list[Filing], rules: FilingRules) -> list[NewReport]:
    """Each new report's link and verification, in order: a report becomes an open
    incident that the next ones may be linked to."""
    looking = [f for f in filings if rules.link_related_reports and f.report.kind == "emergency"]
    nearby: dict[UUID, list[Candidate]] = {}
    if looking:
        # New emergencies that could be one incident look for it one at a time (they
        # share a lock), so two callers of one fire a moment apart cannot both miss each
        # other; unrelated ones go side by side (store.link_lock_ids). Taken in one sorted
        # statement before the incidents are read: that read must see what the lock's
        # previous holder committed.
        locks = sorted(
            {k for f in looking for k in store.link_lock_ids(f.report.category, _place(f), rules.link_distance_m)}
        )
        await store.lock_for_linking(conn, locks)
        looks = [Nearby(f.report.category, f.received_at - rules.link_window, _place(f)) for f in looking]
        found = await store.open_incidents_near(conn, looks, rules.link_distance_m)
        nearby = {f.report_id: candidates for f, candidates in zip(looking, found, strict=True)}
    policy: list[PolicyRule] | None = None
    opened: list[tuple[str, Candidate]] = []  # incidents opened by this batch's earlier reports
    decided = []
    for f in filings:
        link = verification = None
        if f.report_id in nearby:
            here = _place(f)
            earlier = [c for category, c in opened if category == f.report.category]
            link = find_incident(
                here,
                f.received_at,
                nearby[f.report_id] + earlier,
                window=rules.link_window,
                max_distance_m=rules.link_distance_m,
            )
        if link:
            verification = "not_required"
        else:
            if policy is None and _held_by_policy(f.report):
                policy = await live_rules(conn)
            verification = verification_for(
                policy or [], kind=f.report.kind, channel=f.report.channel, category=f.report.category
            )
        n = NewReport(
            f.report_id,
            f.report,
            f.received_at,
            f.client.name,
            f.client.id,
            link,
            verification,
            pranks_since=f.received_at - rules.prank_period,
        )
        if f.report_id in nearby and store.status_on_receipt(f.report, link, verification) == "received":
            opened.append((f.report.category, Candidate(f.report_id, f.received_at, _place(f))))
        decided.append(n)
    return decided


def _held_by_policy(report: ReportCreate) -> bool:
    """Whether the policy is read for it: verification_for answers the rest without it."""
    return verification_for([], kind=report.kind, channel=report.channel, category=report.category) != "not_required"


def _place(f: Filing) -> Place:
    loc = f.report.location
    return Place(loc.kecamatan, loc.desa, loc.lat, loc.lon)
