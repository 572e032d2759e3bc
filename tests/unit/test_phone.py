"""schemas/phone.py: the Indonesian forms of the contract, normalised to E.164."""

import pytest

from schemas.phone import InvalidPhone, to_e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("081234567890", "+6281234567890"),  # national mobile form 0812…
        ("+6281234567890", "+6281234567890"),  # international form +62812…
        ("6281234567890", "+6281234567890"),  # country code without the plus, 62812…
        ("+62 812-3456-7890", "+6281234567890"),  # spaced and dashed
        ("  081234567890  ", "+6281234567890"),  # surrounding whitespace
        ("(0342) 801234", "+62342801234"),  # Blitar landline, area code in brackets
        ("0342-801234", "+62342801234"),  # Blitar landline, dashed
        ("0342801234", "+62342801234"),  # Blitar landline, bare digits
    ],
)
def test_indonesian_forms_become_e164(raw, e164):
    assert to_e164(raw) == e164


def test_all_forms_of_one_mobile_number_agree():
    forms = ["081234567890", "+6281234567890", "6281234567890", "0812-3456-7890"]
    assert {to_e164(f) for f in forms} == {"+6281234567890"}


@pytest.mark.parametrize("raw", ["12345", "0812", "abc", "112", "", "   ", "6281"])
def test_invalid_numbers_raise_invalid_phone(raw):
    with pytest.raises(InvalidPhone):
        to_e164(raw)


def test_invalid_phone_is_a_value_error():
    # Callers (pydantic validators) rely on it being a ValueError.
    with pytest.raises(ValueError):
        to_e164("abc")
