"""Which open incident a new emergency belongs to."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.linking import Candidate, Place, desa_key, distance_m, find_incident, suggest

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)


def candidate(minutes_ago: float, place: Place) -> Candidate:
    return Candidate(uuid.uuid4(), NOW - timedelta(minutes=minutes_ago), place)


def link(place: Place, candidates: list[Candidate], max_distance_m: float = 500):
    return find_incident(place, NOW, candidates, window=WINDOW, max_distance_m=max_distance_m)


def test_distance_is_the_great_circle_distance():
    # One hundredth of a degree of latitude is about 1.11 km anywhere.
    a, b = Place(None, None, -8.10, 112.30), Place(None, None, -8.11, 112.30)
    assert distance_m(a, b) == pytest.approx(1112, rel=0.01)
    assert distance_m(a, Place(None, None, None, None)) is None


def test_same_desa_links_any_case_and_spacing():
    first = candidate(10, Place("Wlingi", "Beru", None, None))
    found = link(Place("wlingi", "  beru ", None, None), [first])
    assert found.incident_report_id == first.report_id and found.reason == "same_desa"


def test_the_desa_key_leaves_out_case_and_spacing_and_is_none_without_a_name():
    assert desa_key("  Sumber   Agung ") == desa_key("sumber agung") == "sumber agung"
    assert desa_key("Sumberagung") != desa_key("Sumber Agung")
    assert desa_key(None) is desa_key("") is desa_key("   ") is None
    blank = candidate(10, Place("Wlingi", " ", None, None))
    assert link(Place("Wlingi", "", None, None), [blank]) is None, "no name is no desa in common"


def test_same_desa_name_in_another_kecamatan_does_not_link():
    assert link(Place("Talun", "Beru", None, None), [candidate(5, Place("Wlingi", "Beru", None, None))]) is None


def test_within_distance_links_and_farther_does_not():
    near = candidate(5, Place("Wlingi", None, -8.0780, 112.3180))
    assert link(Place("Wlingi", None, -8.0790, 112.3185), [near]).reason == "within_distance"
    assert link(Place("Wlingi", None, -8.0960, 112.3180), [near]) is None  # about 2 km


def test_coordinates_decide_over_a_shared_desa():
    # Same desa on paper, 2 km apart: two fires, not one.
    far = candidate(5, Place("Wlingi", "Beru", -8.0780, 112.3180))
    assert link(Place("Wlingi", "Beru", -8.0960, 112.3180), [far]) is None


def test_outside_the_window_does_not_link():
    old = candidate(31, Place("Wlingi", "Beru", None, None))
    assert link(Place("Wlingi", "Beru", None, None), [old]) is None


def test_the_earliest_matching_incident_wins():
    later = candidate(2, Place("Wlingi", "Beru", None, None))
    earlier = candidate(20, Place("Wlingi", "Beru", None, None))
    assert link(Place("Wlingi", "Beru", None, None), [later, earlier]).incident_report_id == earlier.report_id


def test_no_place_in_common_does_not_link():
    assert link(Place("Wlingi", None, None, None), [candidate(1, Place("Wlingi", None, None, None))]) is None


def test_suggestions_put_the_rules_incident_first_then_the_nearest_and_leave_far_ones_out():
    here = Place("Garum", "Sumberdiren", -8.0800, 112.2300)
    linked = candidate(20, Place("Garum", "Sumberdiren", -8.0810, 112.2300))  # ~110 m: the rule links it
    nearer_but_outside_window = candidate(40, Place("Garum", "Sumberdiren", -8.0801, 112.2300))
    same_kecamatan_far = candidate(5, Place("Garum", "Tingal", -8.1200, 112.2600))  # ~5.5 km, same kecamatan
    close_in_another = candidate(5, Place("Kanigoro", None, -8.0830, 112.2330))  # ~460 m over the border
    far_elsewhere = candidate(1, Place("Srengat", None, -8.0700, 112.0700))  # ~17 km: not the same incident
    ranked = suggest(
        here,
        NOW,
        [far_elsewhere, same_kecamatan_far, close_in_another, nearer_but_outside_window, linked],
        window=WINDOW,
        max_distance_m=500,
    )
    assert [s.candidate for s in ranked] == [linked, nearer_but_outside_window, close_in_another, same_kecamatan_far]
    assert ranked[0].link is not None and ranked[0].link.reason == "within_distance"
    assert [s.link for s in ranked[1:]] == [None, None, None]  # nothing else is pre-selected
    assert ranked[0].same_desa and ranked[0].minutes_apart == 20.0


def test_without_coordinates_the_same_desa_comes_before_the_rest_of_the_kecamatan():
    here = Place("Wlingi", "Beru", None, None)
    same_desa = candidate(10, Place("Wlingi", "beru ", None, None))
    other_desa = candidate(2, Place("Wlingi", "Tangkil", None, None))
    ranked = suggest(here, NOW, [other_desa, same_desa], window=WINDOW, max_distance_m=500)
    assert [s.candidate for s in ranked] == [same_desa, other_desa]
    assert ranked[0].link.reason == "same_desa" and ranked[1].link is None
    assert suggest(Place(None, None, None, None), NOW, [same_desa], window=WINDOW, max_distance_m=500) == []
