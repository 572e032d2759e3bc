"""services/router/routing.py: extra rules (subtype, casualties, kecamatan), local units,
and what a decision says about why."""

import uuid

import pytest
from pydantic import ValidationError

from schemas.catalog import KECAMATAN
from services.router.routing import (
    DEFAULT_TABLE,
    RoutingTable,
    decide,
    dispatch_id,
    normalise_subtype,
    upgraded_table,
)

REPORT = uuid.UUID("0b4f4c6e-2f0a-4a4e-9a51-3f3c1d7e9a10")

CONTRACT_RULES = {
    "kebakaran": {"primary": "damkar", "supporting": ["pln", "polres"]},
    "bencana_alam": {"primary": "bpbd", "supporting": ["pmi", "dinkes"]},
    "kerusuhan": {"primary": "polres", "supporting": ["satpolpp"]},
    "kecelakaan": {"primary": "polres", "supporting": ["dinkes"]},
    "penyakit": {"primary": "dinkes", "supporting": ["pmi"]},
    "binatang_buas": {"primary": "damkar", "supporting": []},
}


def table(extra_rules=(), units=None, **rules) -> RoutingTable:
    return RoutingTable.model_validate(
        {"rules": {**CONTRACT_RULES, **rules}, "extra_rules": list(extra_rules), "units": units or {}}
    )


def roles(decision) -> dict[str, str]:
    return {a.agency: a.role for a in decision.assignments}


def because(decision) -> dict[str, tuple[str, ...]]:
    return {a.agency: a.because for a in decision.assignments}


# --- the shipped extra rules -------------------------------------------------------


@pytest.mark.parametrize("casualties", [None, 0])
def test_a_fire_without_casualties_routes_as_the_contract_says(casualties):
    decision = decide(DEFAULT_TABLE, REPORT, "kebakaran", casualties=casualties, subtype="rumah")
    assert roles(decision) == {"damkar": "primary", "pln": "supporting", "polres": "supporting"}
    assert decision.matched_rules == ("category:kebakaran",)


def test_a_casualty_adds_the_health_office():
    decision = decide(DEFAULT_TABLE, REPORT, "kebakaran", casualties=1)
    assert roles(decision) == {"damkar": "primary", "pln": "supporting", "polres": "supporting", "dinkes": "supporting"}
    assert because(decision)["dinkes"] == ("korban",)
    assert decision.matched_rules == ("category:kebakaran", "korban")


def test_five_casualties_add_the_red_cross_too():
    decision = decide(DEFAULT_TABLE, REPORT, "kerusuhan", casualties=5)
    assert [a.agency for a in decision.assignments] == ["polres", "satpolpp", "dinkes", "pmi"]
    assert because(decision)["pmi"] == ("korban-massal",)


def test_four_casualties_do_not_add_the_red_cross():
    assert "pmi" not in roles(decide(DEFAULT_TABLE, REPORT, "kerusuhan", casualties=4))


def test_an_agency_already_routed_is_not_added_twice_and_both_rules_are_cited():
    decision = decide(DEFAULT_TABLE, REPORT, "penyakit", casualties=7)
    assert [(a.agency, a.role) for a in decision.assignments] == [("dinkes", "primary"), ("pmi", "supporting")]
    assert because(decision) == {
        "dinkes": ("category:penyakit", "korban"),
        "pmi": ("category:penyakit", "korban-massal"),
    }


@pytest.mark.parametrize("subtype", ["pohon_tumbang_kabel", "Pohon tumbang kabel", "POHON-TUMBANG-KABEL"])
def test_a_tree_on_power_lines_adds_pln_whatever_the_spelling(subtype):
    decision = decide(DEFAULT_TABLE, REPORT, "bencana_alam", subtype=subtype)
    assert roles(decision) == {"bpbd": "primary", "pmi": "supporting", "dinkes": "supporting", "pln": "supporting"}
    assert because(decision)["pln"] == ("jaringan-listrik",)


def test_telephone_lines_add_telkom():
    assert roles(decide(DEFAULT_TABLE, REPORT, "bencana_alam", subtype="kabel_telepon_putus"))["telkom"] == "supporting"


def test_another_subtype_adds_nothing():
    assert set(roles(decide(DEFAULT_TABLE, REPORT, "bencana_alam", subtype="banjir"))) == {"bpbd", "pmi", "dinkes"}


# --- conditions --------------------------------------------------------------------

KELUD = {
    "id": "kelud-lereng",
    "when": {"categories": ["bencana_alam"], "kecamatan": ["nglegok", "GANDUSARI"]},
    "add": ["polres", "satpolpp"],
}


def test_a_kecamatan_condition_matches_in_any_case():
    t = table([KELUD])
    assert t.extra_rules[0].when.kecamatan == ["Nglegok", "Gandusari"]
    decision = decide(t, REPORT, "bencana_alam", kecamatan="gandusari")
    assert set(roles(decision)) == {"bpbd", "pmi", "dinkes", "polres", "satpolpp"}
    assert decision.matched_rules == ("category:bencana_alam", "kelud-lereng")


@pytest.mark.parametrize(
    ("category", "kecamatan"), [("bencana_alam", "Bakung"), ("bencana_alam", None), ("kebakaran", "Nglegok")]
)
def test_every_condition_must_hold(category, kecamatan):
    decision = decide(table([KELUD]), REPORT, category, kecamatan=kecamatan)
    assert "kelud-lereng" not in decision.matched_rules
    assert "satpolpp" not in roles(decision)


def test_conditions_combine_subtype_and_casualties():
    rule = {"id": "tenggelam", "when": {"subtypes": ["tenggelam"], "min_casualties": 1}, "add": ["bpbd"]}
    t = table([rule])
    assert "bpbd" in roles(decide(t, REPORT, "kecelakaan", subtype="tenggelam", casualties=1))
    assert "bpbd" not in roles(decide(t, REPORT, "kecelakaan", subtype="tenggelam", casualties=0))
    assert "bpbd" not in roles(decide(t, REPORT, "kecelakaan", subtype=None, casualties=3))


def test_a_primary_override_keeps_the_former_primary_as_supporting():
    rule = {"id": "sarang-tawon", "when": {"subtypes": ["ular"]}, "primary": "bpbd"}
    decision = decide(table([rule]), REPORT, "binatang_buas", subtype="ular")
    assert [(a.agency, a.role) for a in decision.assignments] == [("bpbd", "primary"), ("damkar", "supporting")]
    assert because(decision) == {"bpbd": ("sarang-tawon",), "damkar": ("category:binatang_buas",)}


def test_a_supporting_agency_promoted_to_primary_appears_once():
    rule = {"id": "pln-lead", "when": {"subtypes": ["gardu"]}, "primary": "pln"}
    decision = decide(table([rule]), REPORT, "kebakaran", subtype="gardu")
    assert [(a.agency, a.role) for a in decision.assignments] == [
        ("pln", "primary"),
        ("damkar", "supporting"),
        ("polres", "supporting"),
    ]


def test_rules_apply_in_order_so_a_later_primary_wins():
    first = {"id": "a", "when": {"min_casualties": 1}, "primary": "dinkes"}
    second = {"id": "b", "when": {"min_casualties": 10}, "primary": "bpbd"}
    decision = decide(table([first, second]), REPORT, "kecelakaan", casualties=12)
    assert decision.assignments[0].agency == "bpbd"
    assert roles(decision) == {"bpbd": "primary", "dinkes": "supporting", "polres": "supporting"}
    assert decision.matched_rules == ("category:kecelakaan", "a", "b")


def test_dispatch_ids_do_not_change_with_roles():
    rule = {"id": "p", "when": {"subtypes": ["x"]}, "primary": "pln"}
    decision = decide(table([rule]), REPORT, "kebakaran", subtype="x")
    assert {a.agency: a.dispatch_id for a in decision.assignments} == {
        a: dispatch_id(REPORT, a) for a in ("pln", "damkar", "polres")
    }


# --- categories sent to the operators ------------------------------------------------


def test_a_category_set_to_null_goes_to_the_operators_with_a_reason():
    shipped_extras = [r.model_dump() for r in DEFAULT_TABLE.extra_rules]
    decision = decide(table(shipped_extras, kerusuhan=None), REPORT, "kerusuhan", casualties=3)
    assert decision.assignments == ()
    assert not decision.routed
    assert "operators" in decision.reason
    assert decision.matched_rules == ("korban",)  # matched, but nobody to lead: a person decides


def test_a_null_category_can_still_be_routed_by_a_rule_that_names_a_primary():
    rule = {"id": "wates-kerusuhan", "when": {"categories": ["kerusuhan"], "kecamatan": ["Wates"]}, "primary": "polres"}
    t = table([rule], kerusuhan=None)
    assert roles(decide(t, REPORT, "kerusuhan", kecamatan="Wates")) == {"polres": "primary"}
    assert decide(t, REPORT, "kerusuhan", kecamatan="Bakung").assignments == ()


# --- units -------------------------------------------------------------------------


def test_units_are_chosen_by_the_reports_kecamatan():
    decision = decide(DEFAULT_TABLE, REPORT, "kebakaran", kecamatan="sutojayan", casualties=1)
    units = {a.agency: a.unit and a.unit.code for a in decision.assignments}
    assert units == {
        "damkar": "damkar-pos-sutojayan",
        "pln": None,  # no local units: PLN decides
        "polres": "polsek-sutojayan",
        "dinkes": "pkm-sutojayan",
    }


@pytest.mark.parametrize("kecamatan", [None, "Kota Blitar"])
def test_no_unit_without_a_known_kecamatan(kecamatan):
    decision = decide(DEFAULT_TABLE, REPORT, "kecelakaan", kecamatan=kecamatan)
    assert [a.unit for a in decision.assignments] == [None, None]
    assert roles(decision) == {"polres": "primary", "dinkes": "supporting"}


def test_seed_units_cover_every_kecamatan_for_police_health_and_fire():
    for agency in ("polres", "dinkes", "damkar"):
        assert set(DEFAULT_TABLE.units[agency]) == set(KECAMATAN), agency
    posts = {u.code for u in DEFAULT_TABLE.units["damkar"].values()}
    assert posts == {"damkar-induk-kanigoro", "damkar-pos-wlingi", "damkar-pos-srengat", "damkar-pos-sutojayan"}
    assert DEFAULT_TABLE.units["damkar"]["Kanigoro"].code == "damkar-induk-kanigoro"


def test_unit_kecamatan_are_stored_in_canonical_spelling():
    t = table(units={"polres": {"WLINGI": {"code": "polsek-x", "name": "Polsek X"}}})
    assert list(t.units["polres"]) == ["Wlingi"]


def test_the_default_table_survives_a_round_trip_through_json():
    assert RoutingTable.model_validate_json(DEFAULT_TABLE.model_dump_json()) == DEFAULT_TABLE


# --- what is refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"id": "x", "when": {}, "add": ["pln"]},  # matches everything: a base rule's job
        {"id": "x", "when": {"subtypes": []}, "add": ["pln"]},  # never matches
        {"id": "x", "when": {"min_casualties": 0}, "add": ["pln"]},
        {"id": "x", "when": {"subtypes": ["a"]}},  # no effect
        {"id": "x", "when": {"subtypes": ["a"]}, "add": ["pln", "pln"]},
        {"id": "x", "when": {"subtypes": ["a"]}, "add": ["tni"]},
        {"id": "x", "when": {"kecamatan": ["Kota Blitar"]}, "add": ["pln"]},
        {"id": "x", "when": {"categories": ["gempa"]}, "add": ["pln"]},
        {"id": "category:kebakaran", "when": {"subtypes": ["a"]}, "add": ["pln"]},  # ids cannot pose as base rules
        {"id": "x", "when": {"subtype": ["a"]}, "add": ["pln"]},  # a typo is not silently ignored
    ],
)
def test_a_meaningless_rule_is_refused(rule):
    with pytest.raises(ValidationError):
        table([rule])


def test_rule_ids_are_unique():
    rule = {"id": "dup", "when": {"subtypes": ["a"]}, "add": ["pln"]}
    with pytest.raises(ValidationError, match="dup"):
        table([rule, rule])


@pytest.mark.parametrize(
    "units",
    [
        {"polres": {"Kota Blitar": {"code": "polsek-kota", "name": "Polsek Kota"}}},
        {"polres": {"Wlingi": {"code": "a", "name": "A"}, "wlingi": {"code": "b", "name": "B"}}},
        {"tni": {"Wlingi": {"code": "a", "name": "A"}}},
        {"polres": {"Wlingi": {"code": "Has Spaces", "name": "A"}}},
        {"polres": {"Wlingi": {"code": "a", "name": ""}}},
    ],
)
def test_bad_units_are_refused(units):
    with pytest.raises(ValidationError):
        table(units=units)


# --- helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("rumah", "rumah"),
        ("Pohon Tumbang  Kabel", "pohon_tumbang_kabel"),
        (" tiang-listrik_roboh ", "tiang_listrik_roboh"),
    ],
)
def test_subtypes_are_normalised(raw, normal):
    assert normalise_subtype(raw) == normal


def test_a_table_of_the_first_router_gains_the_shipped_rules_and_units_keeping_its_rules():
    old = {"rules": {**CONTRACT_RULES, "binatang_buas": {"primary": "damkar", "supporting": ["satpolpp"]}}}
    upgraded = upgraded_table(old)
    assert upgraded.rules["binatang_buas"].supporting == ["satpolpp"]
    assert upgraded.extra_rules == DEFAULT_TABLE.extra_rules
    assert upgraded.units == DEFAULT_TABLE.units


def test_a_present_day_table_is_not_upgraded():
    assert upgraded_table(DEFAULT_TABLE.model_dump(mode="json")) is None
