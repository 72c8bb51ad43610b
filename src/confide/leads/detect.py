"""Details a visitor typed freely in chat, and payment card numbers to keep out of storage.

Visitors rarely fill in forms: they write "call me on 07700 900123" in the middle of a message.
``find_details`` spots such emails, phone numbers and postcodes so the operator can confirm them
into a lead with one click; nothing found here is stored until a person confirms it.

``mask_cards`` runs on every chat message before it is stored or shown: a card number must never
reach the database, a transcript email or a webhook. It is a single precompiled regex that cannot
backtrack badly, then a linear Luhn scan, so it stays cheap on long or hostile input.

Everything here is a pure function of its input: no I/O, no database, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from confide.leads import phone_numbers

__all__ = [
    "CARD_MASK",
    "Detected",
    "Masked",
    "find_details",
    "luhn_valid",
    "mask_cards",
]

CARD_MASK = "[card number removed]"

# ISO/IEC 7812 card numbers (PANs) are 13 to 19 digits long: 13 for old Visa cards, 15 for
# American Express, 16 for most cards, up to 19 for some Maestro, UnionPay and Visa cards.
_CARD_MIN_DIGITS = 13
_CARD_MAX_DIGITS = 19

# Digit groups separated by exactly one space or hyphen, as people type card numbers. A separator
# is required between groups, so there is only one way to split a run: the regex cannot backtrack
# into exponential (or even quadratic) time, whatever the input.
_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_DIGIT_GROUP = re.compile(r"\d+")
#: 13 digits with at most single separators between them: the least a card can be. Most
#: messages have none, and this one search is far cheaper than walking their digit runs.
_CARD_LENGTH = re.compile(r"\d(?:[ -]?\d){12}")

# Luhn doubles every second digit from the right; this is the digit sum of each doubled digit.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

# Candidate addresses: the characters real addresses use (not every character RFC 5322 allows,
# since quotes, slashes and the like are far more often chat punctuation around an address).
# email-validator then decides. The lookbehind makes a candidate start only at the beginning of a
# run of address characters, which keeps the scan linear on long runs without an "@".
_EMAIL_CANDIDATE = re.compile(
    r"(?<![\w.+-])[\w+-](?:[\w.+-]*[\w+-])?"
    r"@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+"
)

# UK postcodes in the official (BS 7666) format: an outward code (area letters, district digit(s),
# an optional sub-district letter) and an inward code (a sector digit and two unit letters, never
# C, I, K, M, O or V). Each position allows only the letters Royal Mail issues there. GIR 0AA is
# the one historic exception. The space is optional because visitors often leave it out.
_UK_POSTCODE = re.compile(
    r"\b(?:GIR ?0AA"
    r"|[A-PR-UWYZ](?:\d[A-HJKPSTUW]|\d{1,2}|[A-HK-Y]\d[ABEHMNPRV-Y]|[A-HK-Y]\d{1,2})"
    r" ?\d[ABD-HJLNP-UW-Z]{2})\b",
    re.IGNORECASE,
)

# US ZIP or ZIP+4, but not a piece of a longer number: not after a currency sign or a digit
# separator ("$94103", "1,94103") and not before a decimal part or more digits ("94103.50").
_US_ZIP = re.compile(r"(?<![\w$£€.,-])\d{5}(?:-\d{4})?(?![\w]|[.,-]\d)")


@dataclass(frozen=True)
class Detected:
    """A detail found in a message, with its span so the console can highlight it in place."""

    kind: str  # "email" | "phone" | "postcode"
    value: str  # the text as typed
    normalised: str  # the form a lead stores; the key for de-duplication
    start: int
    end: int


@dataclass(frozen=True)
class Masked:
    """A message with its card numbers replaced, and how many there were (for metrics)."""

    text: str
    cards: int


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn check that every payment card number satisfies.

    Used to tell card numbers from other long numbers (phone, order, VIN digits): only about one
    random number in ten passes. An empty string or any non-digit character is not valid.
    """
    if not digits or not digits.isdecimal():
        return False
    plain, _ = _luhn_sums(int(ch) for ch in digits)
    return plain % 10 == 0


def mask_cards(text: str) -> Masked:
    """Replace every payment card number in ``text`` with ``CARD_MASK``.

    A card number is 13-19 digits, optionally separated by single spaces or hyphens
    ("4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"), that passes the Luhn
    check; other long numbers (phones, order numbers) fail it and are left alone. Masking happens
    before storage, so a card number never reaches the database, a transcript or a webhook.
    ``_card_spans`` explains digits typed around a card, and the runs that are never cards.
    """
    spans = _card_spans(text)
    if not spans:
        return Masked(text=text, cards=0)
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts.append(text[position:start])
        parts.append(CARD_MASK)
        position = end
    parts.append(text[position:])
    return Masked(text="".join(parts), cards=len(spans))


def find_details(text: str, region: str | None = "GB") -> list[Detected]:
    """Emails, phone numbers and postcodes typed in ``text``, in order of appearance.

    ``region`` is the site's country (ISO 3166 alpha-2): it is the default region for phone
    numbers written without a country code, and US ZIP codes are only looked for when it is
    "US", since elsewhere a 5-digit number is far more likely a price or a mileage. UK postcodes
    are always looked for: their format is distinctive enough not to match ordinary words.

    Each detail is reported once per (kind, normalised) value, at its first appearance. Nothing
    inside a card number is reported (a card number is never offered as a phone), and a span
    already taken by an email or a phone is not reported again as something else.
    """
    region = region.upper() if region else None
    taken = _card_spans(text)
    found: list[Detected] = []

    def claim(kind: str, start: int, end: int, normalised: str) -> None:
        if any(start < other_end and other_start < end for other_start, other_end in taken):
            return
        taken.append((start, end))
        found.append(Detected(kind, text[start:end], normalised, start, end))

    for start, end, normalised in _emails(text):
        claim("email", start, end, normalised)
    for start, end, normalised in _phones(text, region):
        claim("phone", start, end, normalised)
    for match in _UK_POSTCODE.finditer(text):
        claim("postcode", match.start(), match.end(), _uk_postcode(match.group()))
    if region == "US":
        for match in _US_ZIP.finditer(text):
            claim("postcode", match.start(), match.end(), match.group())

    seen: set[tuple[str, str]] = set()
    details: list[Detected] = []
    for detail in sorted(found, key=lambda d: d.start):
        key = (detail.kind, detail.normalised)
        if key not in seen:
            seen.add(key)
            details.append(detail)
    return details


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the card numbers in ``text``, left to right, not overlapping.

    Within a run of digit groups, a card is any stretch of whole groups with 13-19 digits that
    passes Luhn, so a card typed next to other digits ("ref 12 4111 1111 1111 1111", or its
    security code after it) is still found. Overlapping stretches merge into one span: a stretch
    that passes Luhn by chance can then only widen a mask, never leave part of a card showing.
    Two kinds of digits are never a card: a run right after a "+" (an international phone
    number) and a stretch starting with 0 (no card issuer number starts with 0; "0044 ..." and
    "07700 ..." are phone numbers).
    """
    spans: list[tuple[int, int]] = []
    if _CARD_LENGTH.search(text) is None:
        return spans
    for run in _DIGIT_RUN.finditer(text):
        start = run.start()
        if start > 0 and text[start - 1] == "+":
            continue
        groups = [
            (start + group.start(), start + group.end(), [int(ch) for ch in group.group()])
            for group in _DIGIT_GROUP.finditer(run.group())
        ]
        spans.extend(_cards_in_groups(groups))
    return spans


def _cards_in_groups(groups: list[tuple[int, int, list[int]]]) -> list[tuple[int, int]]:
    """Merged card spans among consecutive digit groups, each given as (start, end, digits).

    From each group, the longest stretch that is a card counts. Each start reads at most 19
    digits, so the scan is linear in the length of the run.
    """
    spans: list[tuple[int, int]] = []
    for first, (span_start, _, leading) in enumerate(groups):
        if leading[0] == 0:
            continue
        span_end: int | None = None
        count = plain = shifted = 0
        for _, group_end, digits in groups[first:]:
            count += len(digits)
            if count > _CARD_MAX_DIGITS:
                break
            plain, shifted = _luhn_sums(digits, plain, shifted)
            if count >= _CARD_MIN_DIGITS and plain % 10 == 0:
                span_end = group_end
        if span_end is None:
            continue
        if spans and span_start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], span_end))
        else:
            spans.append((span_start, span_end))
    return spans


def _luhn_sums(digits: Iterable[int], plain: int = 0, shifted: int = 0) -> tuple[int, int]:
    """Extend running Luhn sums by ``digits``, so a growing window is never re-read.

    ``plain`` is the Luhn sum of the digits so far; ``shifted`` is the sum they would have with
    one more digit after them (every doubling flipped). Appending a digit turns the old
    ``shifted`` into the new ``plain``, which lets a window of digits grow one group at a time.
    """
    for digit in digits:
        plain, shifted = shifted + digit, plain + _DOUBLED[digit]
    return plain, shifted


def _emails(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised) of each valid address; the domain is not looked up (no I/O)."""
    if "@" not in text:
        return []
    emails: list[tuple[int, int, str]] = []
    for match in _EMAIL_CANDIDATE.finditer(text):
        try:
            email = validate_email(match.group(), check_deliverability=False)
        except EmailNotValidError:
            continue
        emails.append((match.start(), match.end(), email.normalized))
    return emails


def _phones(text: str, region: str | None) -> list[tuple[int, int, str]]:
    """(start, end, E.164) of each valid phone number; national ones are read in ``region``.

    Leniency.VALID accepts only numbers that are valid for their region, so order numbers and
    mileages that merely look like digits are not offered to the operator.
    """
    found = [
        (match.start, match.end, match.number)
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
    ]
    if "7700" in text or "1632" in text:  # Ofcom's drama ranges fail VALID: phone_numbers.py
        found += [
            (match.start, match.end, match.number)
            for match in phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.POSSIBLE
            )
            if phone_numbers.reserved_for_drama(match.number)
        ]
        found.sort(key=lambda hit: hit[0])
    e164 = phonenumbers.PhoneNumberFormat.E164
    return [(start, end, phonenumbers.format_number(n, e164)) for start, end, n in found]


def _uk_postcode(typed: str) -> str:
    """Canonical form: uppercase, one space before the three-character inward code."""
    compact = typed.replace(" ", "").upper()
    return f"{compact[:-3]} {compact[-3:]}"
