"""Indonesian phone numbers, mobile or landline, to E.164.

libphonenumber (the `phonenumbers` port) carries the numbering plan; hand-written
prefix rules would miss area codes like (0342) and drift as the plan changes.
"""

import phonenumbers

DEFAULT_REGION = "ID"


class InvalidPhone(ValueError):
    pass


def to_e164(raw: str) -> str:
    """Normalise `0812…`, `+62812…`, `62812…`, `(0342) 801234` to `+62…`.

    A number with a country code other than +62 is kept (a roaming visitor can call
    112), as long as it is a valid number of its own country.
    """
    text = raw.strip()
    if text.isdigit() and text.startswith("62") and len(text) > 9:
        text = "+" + text  # `62812…`: the country code written without the plus
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid Indonesian mobile or landline number (e.g. 0812…, +62812…, (0342) 801234)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
