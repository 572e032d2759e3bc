"""schemas/catalog.py against the contract's fixed vocabularies."""

import pytest

from schemas.catalog import AGENCIES, CATEGORIES, CHANNELS, CONTACT_KINDS, KECAMATAN, canonical_kecamatan

# Written out from CONTRACT.md, not from the code.
CONTRACT_CATEGORIES = {"kebakaran", "bencana_alam", "kerusuhan", "kecelakaan", "penyakit", "binatang_buas"}
CONTRACT_AGENCIES = {"damkar", "bpbd", "polres", "dinkes", "pmi", "pln", "telkom", "satpolpp"}
CONTRACT_KECAMATAN = [
    "Bakung",
    "Binangun",
    "Doko",
    "Gandusari",
    "Garum",
    "Kademangan",
    "Kanigoro",
    "Kesamben",
    "Nglegok",
    "Panggungrejo",
    "Ponggok",
    "Sanankulon",
    "Selopuro",
    "Selorejo",
    "Srengat",
    "Sutojayan",
    "Talun",
    "Udanawu",
    "Wates",
    "Wlingi",
    "Wonodadi",
    "Wonotirto",
]


def test_categories_are_exactly_the_contracts_six():
    assert len(CATEGORIES) == 6
    assert set(CATEGORIES) == CONTRACT_CATEGORIES


def test_agencies_are_exactly_the_contracts_eight():
    assert len(AGENCIES) == 8
    assert set(AGENCIES) == CONTRACT_AGENCIES


def test_channels_and_kinds_match_contract():
    assert set(CHANNELS) == {"call", "sms", "app", "web", "whatsapp"}
    assert set(CONTACT_KINDS) == {"emergency", "prank", "ghost", "information"}


def test_there_are_22_kecamatan():
    assert len(CONTRACT_KECAMATAN) == 22
    assert sorted(KECAMATAN) == sorted(CONTRACT_KECAMATAN)


@pytest.mark.parametrize("name", CONTRACT_KECAMATAN)
def test_every_kecamatan_matches_in_any_case(name):
    assert canonical_kecamatan(name) == name
    assert canonical_kecamatan(name.lower()) == name
    assert canonical_kecamatan(name.upper()) == name
    assert canonical_kecamatan(name.swapcase()) == name


def test_surrounding_whitespace_is_ignored():
    assert canonical_kecamatan("  wlingi ") == "Wlingi"


@pytest.mark.parametrize(
    "name",
    [
        "Kepanjen",  # Kabupaten Malang
        "Sananwetan",  # Kota Blitar, not the regency
        "Blitar",
        "Wlingi Kota",
        "Wling",
        "",
    ],
)
def test_unknown_kecamatan_is_none(name):
    assert canonical_kecamatan(name) is None
