"""The chaos checker on hand-made ledgers: a complete one passes; one delivery removed,
one dispatch under a second ce_id, or one to an agency nobody routed to, fails."""

import uuid

import pytest

from chaos.ledger import Ledger, check, expectations
from services.router.routing import DEFAULT_TABLE, dispatch_id

REQUESTED = "id.go.blitarkab.e112.dispatch.requested.v1"
CALLER_ADDED = "id.go.blitarkab.e112.dispatch.caller_added.v1"
FIRE = {"category": "kebakaran", "subtype": "rumah", "casualties": None, "kecamatan": "wlingi"}
TREE = {"category": "bencana_alam", "subtype": "Pohon tumbang-kabel", "casualties": 5, "kecamatan": "GARUM"}


def accept(ledger: Ledger, facts: dict, at: float, linked_to: str | None = None) -> str:
    report_id = str(uuid.uuid4())
    ledger.add(
        "accepted",
        report_id=report_id,
        scenario="s",
        facts=facts,
        kind="emergency",
        linked_to=linked_to,
        verification="not_required",
        at=at,
    )
    return report_id


def deliver(ledger: Ledger, report_id: str, agency: str, at: float, *, incident: str | None = None, ce_id=None):
    """What a correct pipeline makes the agency see, on the webhook and on the topic."""
    if incident:
        fields = {
            "report_id": incident,
            "dispatch_id": str(dispatch_id(uuid.UUID(incident), agency)),
            "new_report_id": report_id,
            "ce_type": CALLER_ADDED,
        }
    else:
        fields = {
            "report_id": report_id,
            "dispatch_id": str(dispatch_id(uuid.UUID(report_id), agency)),
            "new_report_id": None,
            "ce_type": REQUESTED,
        }
    ce_id = ce_id or f"ce-{report_id}-{agency}"
    # The Idempotency-Key: the dispatch id, or for another caller the update's own id.
    key = fields["dispatch_id"]
    if incident:
        key = str(uuid.uuid5(uuid.UUID(key), f"caller_added:{report_id}"))
    ledger.add("topic", agency=agency, ce_id=ce_id, at=at, **fields)
    ledger.add("webhook", agency=agency, ce_id=ce_id, idempotency_key=key, at=at + 0.1, **fields)


@pytest.fixture
def ledger() -> Ledger:
    """A fire (damkar, pln, polres), another caller for it, and a tree on the power lines
    in a flood with five casualties (bpbd, pmi, dinkes; pln by its subtype)."""
    ledger = Ledger()
    fire = accept(ledger, FIRE, at=100.0)
    caller = accept(ledger, FIRE, at=101.0, linked_to=fire)
    tree = accept(ledger, TREE, at=102.0)
    for agency in ("damkar", "pln", "polres"):
        deliver(ledger, fire, agency, at=103.0)
        deliver(ledger, caller, agency, at=104.0, incident=fire)
    for agency in ("bpbd", "pmi", "dinkes", "pln"):
        deliver(ledger, tree, agency, at=110.0)
    # A duplicate by the documented key is no duplicate: the same ce_id again.
    deliver(ledger, fire, "damkar", at=111.0)
    return ledger


def test_the_oracle_computes_the_agencies_from_the_facts_as_posted(ledger):
    wanted = expectations(ledger.of("accepted"), DEFAULT_TABLE)
    by_report = {}
    for want in wanted:
        by_report.setdefault(want.report_id, set()).add((want.agency, want.via))
    fire, caller, tree = (r["report_id"] for r in ledger.of("accepted"))
    assert by_report[fire] == {(a, "dispatch.requested") for a in ("damkar", "pln", "polres")}
    assert by_report[caller] == {(a, "dispatch.caller_added") for a in ("damkar", "pln", "polres")}
    assert by_report[tree] == {(a, "dispatch.requested") for a in ("bpbd", "pmi", "dinkes", "pln")}


def test_a_complete_ledger_passes_and_gives_the_recovery_time(ledger):
    result = check(ledger, DEFAULT_TABLE, scenario="s", fault_start=100.5, fault_end=101.5)
    assert result.ok, result.to_dict()
    assert (result.accepted, result.linked, result.expected) == (3, 1, 10)
    assert result.webhook.delivered == result.topic.delivered == 10
    # Accepted by the fault's end: the fire and its other caller; the last of theirs came at 104.1.
    assert result.webhook.recovery_seconds == pytest.approx(2.6)
    assert result.topic.recovery_seconds == pytest.approx(2.5)


@pytest.mark.parametrize("channel", ["webhook", "topic"])
def test_one_delivery_removed_is_missing(ledger, channel):
    tree = ledger.of("accepted")[2]["report_id"]
    ledger.records = [
        r
        for r in ledger.records
        if not (r["record"] == channel and r.get("report_id") == tree and r.get("agency") == "pln")
    ]
    result = check(ledger, DEFAULT_TABLE, scenario="s")
    assert not result.ok
    missing = getattr(result, channel).missing
    assert [(m["report_id"], m["agency"]) for m in missing] == [(tree, "pln")]
    other = result.topic if channel == "webhook" else result.webhook
    assert not other.missing


def test_a_lost_added_caller_is_missing(ledger):
    caller = ledger.of("accepted")[1]["report_id"]
    ledger.records = [r for r in ledger.records if not (r.get("new_report_id") == caller and r.get("agency") == "pln")]
    result = check(ledger, DEFAULT_TABLE, scenario="s")
    assert not result.ok
    assert {(m["agency"], m["via"]) for m in result.webhook.missing} == {("pln", "dispatch.caller_added")}


def test_another_caller_routed_on_its_own_counts_as_delivered(ledger):
    caller = ledger.of("accepted")[1]["report_id"]
    ledger.records = [r for r in ledger.records if r.get("new_report_id") != caller]
    for agency in ("damkar", "pln", "polres"):
        deliver(ledger, caller, agency, at=120.0)  # the incident not decided in time: routed alone
    assert check(ledger, DEFAULT_TABLE, scenario="s").ok


def test_a_dispatch_under_a_second_ce_id_is_a_duplicate(ledger):
    fire = ledger.of("accepted")[0]["report_id"]
    deliver(ledger, fire, "polres", at=130.0, ce_id="another-ce-id")
    result = check(ledger, DEFAULT_TABLE, scenario="s")
    assert not result.ok
    assert result.topic.duplicates and result.webhook.duplicates
    assert result.topic.duplicates[0]["agency"] == "polres"


def test_a_dispatch_to_an_agency_not_routed_to_is_unexpected(ledger):
    fire = ledger.of("accepted")[0]["report_id"]
    deliver(ledger, fire, "bpbd", at=130.0)
    result = check(ledger, DEFAULT_TABLE, scenario="s")
    assert not result.ok
    assert [u["agency"] for u in result.topic.unexpected] == ["bpbd"]


def test_a_scenario_that_accepted_nothing_fails():
    assert not check(Ledger(), DEFAULT_TABLE, scenario="s").ok


def test_the_ledger_file_reads_back(tmp_path, ledger):
    path = tmp_path / "ledger.jsonl"
    written = Ledger(path)
    for record in ledger.records:
        written.add(record["record"], **{k: v for k, v in record.items() if k != "record"})
    written.close()
    assert check(Ledger.load(path), DEFAULT_TABLE, scenario="s").ok
