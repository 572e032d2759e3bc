"""services/router/routing.py: the category-to-agency table and the routing decision for a plain
report (no subtype, no casualties): exactly the contract's table. Extra rules and units:
test_routing_rules.py."""

import uuid

import pytest
from pydantic import ValidationError

from services.router.routing import DEFAULT_TABLE, RoutingTable, Rule, decide, dispatch_id

# The table of CONTRACT.md, written out literally: category -> (primary, supporting).
CONTRACT_TABLE = {
    "kebakaran": ("damkar", ["pln", "polres"]),
    "bencana_alam": ("bpbd", ["pmi", "dinkes"]),
    "kerusuhan": ("polres", ["satpolpp"]),
    "kecelakaan": ("polres", ["dinkes"]),
    "penyakit": ("dinkes", ["pmi"]),
    "binatang_buas": ("damkar", []),
}

REPORT = uuid.UUID("0b4f4c6e-2f0a-4a4e-9a51-3f3c1d7e9a10")
OTHER_REPORT = uuid.UUID("7d1e2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b")


def test_default_table_covers_exactly_the_six_categories():
    assert set(DEFAULT_TABLE.rules) == set(CONTRACT_TABLE)


@pytest.mark.parametrize(("category", "expected"), CONTRACT_TABLE.items())
def test_default_table_matches_the_contract(category, expected):
    primary, supporting = expected
    rule = DEFAULT_TABLE.rules[category]
    assert rule.primary == primary
    assert sorted(rule.supporting) == sorted(supporting)


@pytest.mark.parametrize(("category", "expected"), CONTRACT_TABLE.items())
def test_decide_gives_primary_first_then_supporting(category, expected):
    primary, supporting = expected
    assignments = decide(DEFAULT_TABLE, REPORT, category).assignments
    assert [(a.agency, a.role) for a in assignments][0] == (primary, "primary")
    assert sorted((a.agency, a.role) for a in assignments[1:]) == sorted((s, "supporting") for s in supporting)
    assert len(assignments) == 1 + len(supporting)


def test_fire_goes_to_damkar_pln_and_polres():
    assignments = decide(DEFAULT_TABLE, REPORT, "kebakaran").assignments
    assert {a.agency: a.role for a in assignments} == {"damkar": "primary", "pln": "supporting", "polres": "supporting"}


def test_dangerous_animal_goes_to_damkar_alone():
    assert [(a.agency, a.role) for a in decide(DEFAULT_TABLE, REPORT, "binatang_buas").assignments] == [
        ("damkar", "primary")
    ]


def test_dispatch_ids_are_deterministic():
    first = decide(DEFAULT_TABLE, REPORT, "kebakaran").assignments
    again = decide(DEFAULT_TABLE, REPORT, "kebakaran").assignments
    assert [a.dispatch_id for a in first] == [a.dispatch_id for a in again]


def test_dispatch_id_matches_decide():
    for a in decide(DEFAULT_TABLE, REPORT, "bencana_alam").assignments:
        assert a.dispatch_id == dispatch_id(REPORT, a.agency)


def test_dispatch_ids_differ_across_agencies():
    ids = [a.dispatch_id for a in decide(DEFAULT_TABLE, REPORT, "kebakaran").assignments]
    assert len(set(ids)) == 3


def test_dispatch_ids_differ_across_reports():
    assert dispatch_id(REPORT, "damkar") != dispatch_id(OTHER_REPORT, "damkar")


def test_dispatch_id_of_an_agency_does_not_depend_on_category():
    # polres is primary for kecelakaan and supporting for kebakaran: still one dispatch.
    as_primary = {a.agency: a.dispatch_id for a in decide(DEFAULT_TABLE, REPORT, "kecelakaan").assignments}
    as_supporting = {a.agency: a.dispatch_id for a in decide(DEFAULT_TABLE, REPORT, "kebakaran").assignments}
    assert as_primary["polres"] == as_supporting["polres"]


@pytest.mark.parametrize("category", [None, "", "gempa", "KEBAKARAN"])
def test_unknown_or_missing_category_routes_nowhere(category):
    decision = decide(DEFAULT_TABLE, REPORT, category)
    assert decision.assignments == ()
    assert decision.reason


def full_rules(**overrides) -> dict:
    rules = {c: {"primary": p, "supporting": list(s)} for c, (p, s) in CONTRACT_TABLE.items()}
    rules.update(overrides)
    return rules


def test_table_from_plain_data_is_accepted_and_routes():
    table = RoutingTable.model_validate({"rules": full_rules(binatang_buas={"primary": "bpbd", "supporting": []})})
    assert [(a.agency, a.role) for a in decide(table, REPORT, "binatang_buas").assignments] == [("bpbd", "primary")]


def test_table_missing_a_category_is_rejected():
    rules = full_rules()
    del rules["penyakit"]
    with pytest.raises(ValidationError) as exc:
        RoutingTable.model_validate({"rules": rules})
    assert "penyakit" in str(exc.value)


def test_table_with_unknown_category_is_rejected():
    with pytest.raises(ValidationError):
        RoutingTable.model_validate({"rules": full_rules(gempa={"primary": "bpbd"})})


def test_rule_with_primary_also_supporting_is_rejected():
    with pytest.raises(ValidationError):
        Rule(primary="damkar", supporting=["pln", "damkar"])


def test_rule_with_a_supporting_agency_twice_is_rejected():
    with pytest.raises(ValidationError):
        Rule(primary="damkar", supporting=["pln", "pln"])


def test_table_containing_a_rule_with_an_agency_twice_is_rejected():
    with pytest.raises(ValidationError):
        RoutingTable.model_validate({"rules": full_rules(kerusuhan={"primary": "polres", "supporting": ["polres"]})})


def test_rule_with_unknown_agency_is_rejected():
    with pytest.raises(ValidationError):
        Rule(primary="tni", supporting=[])
