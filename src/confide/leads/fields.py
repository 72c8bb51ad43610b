"""Validate and normalise captured details, with the libraries that know the formats.

Why normalise on capture: the client's CRM de-duplicates on email and phone, and a later privacy
request looks a person up by them; "07700 900123" and "+447700900123" must be the same number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from confide.errors import InvalidInput
from confide.leads import phone_numbers

MAX_FIELD_CHARS = 200
PURPOSES = ("test_drive", "valuation", "finance", "service", "purchase", "general")
PURPOSE_LABELS = {
    "test_drive": "Test drive",
    "valuation": "Valuation",
    "finance": "Finance",
    "service": "Service booking",
    "purchase": "Purchase",
    "general": "General enquiry",
}
INTERESTS = ("buy", "lease", "sell", "trade-in", "test-drive")
_UK_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")
_US_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")
_YEAR = re.compile(r"^(19|20)[0-9]{2}$")


def _text(value: object, label: str, limit: int = MAX_FIELD_CHARS) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{label} must be text.")
    value = " ".join(value.split())
    if len(value) > limit:
        raise InvalidInput(f"{label} is limited to {limit} characters.")
    return value or None


def email(value: object) -> str | None:
    text = _text(value, "Email")
    if text is None:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"That email address is not valid: {exc}") from None


def phone(value: object, region: str) -> str | None:
    """E.164, read with the site's country as the default region."""
    text = _text(value, "Phone")
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("That phone number is not valid.") from None
    if not phone_numbers.usable(number):
        raise InvalidInput("That phone number is not valid.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def postcode(value: object, region: str) -> str | None:
    text = _text(value, "Postcode", 12)
    if text is None:
        return None
    upper = text.upper()
    if region == "GB":
        m = _UK_POSTCODE.match(upper)
        if not m:
            raise InvalidInput("That is not a UK postcode (e.g. SW1A 1AA).")
        return f"{m.group(1)} {m.group(2)}"
    if region == "US" and not _US_ZIP.match(upper):
        raise InvalidInput("That is not a US ZIP code (e.g. 94103).")
    return upper


def country(value: object) -> str | None:
    text = _text(value, "Country", 2)
    if text is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise InvalidInput("Country is a two-letter code (e.g. GB).")
    return text.upper()


def contact(values: dict[str, object], region: str) -> dict[str, str | None]:
    """The contact fields present in ``values``, validated (absent keys are left out)."""
    known = {"name", "email", "phone", "address", "city", "postcode", "country"}
    unknown = set(values) - known
    if unknown:
        raise InvalidInput(f"Unknown field {sorted(unknown)[0]!r}.")
    out: dict[str, str | None] = {}
    for key, raw in values.items():
        if key == "email":
            out[key] = email(raw)
        elif key == "phone":
            out[key] = phone(raw, region)
        elif key == "postcode":
            out[key] = postcode(raw, region)
        elif key == "country":
            out[key] = country(raw)
        else:
            out[key] = _text(raw, key.capitalize())
    return out


@dataclass(frozen=True)
class VehicleInput:
    interest: str
    status: str | None
    year: str | None
    make: str | None
    model: str | None
    stock: str | None


def vehicle(value: object, default_interest: str = "buy") -> VehicleInput | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("A vehicle is an object with make, model, year and stock.")
    unknown = set(value) - {"interest", "status", "year", "make", "model", "stock"}
    if unknown:
        raise InvalidInput(f"Unknown vehicle field {sorted(unknown)[0]!r}.")
    interest = value.get("interest") or default_interest
    if interest not in INTERESTS:
        raise InvalidInput(f"Vehicle interest must be one of {', '.join(INTERESTS)}.")
    status = value.get("status") or None
    if status not in (None, "new", "used"):
        raise InvalidInput("Vehicle status must be new or used.")
    year = _text(value.get("year"), "Year", 4)
    if year is not None and not _YEAR.match(year):
        raise InvalidInput("Year must be four digits, e.g. 2021.")
    make = _text(value.get("make"), "Make", 60)
    model = _text(value.get("model"), "Model", 80)
    stock = _text(value.get("stock"), "Stock number", 40)
    if not any((year, make, model, stock)):
        return None
    return VehicleInput(str(interest), status, year, make, model, stock)


def purpose(value: object) -> str:
    if value not in PURPOSES:
        raise InvalidInput(f"Purpose must be one of {', '.join(PURPOSES)}.")
    return str(value)
