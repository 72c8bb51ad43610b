"""Details typed in chat are found, and card numbers are masked before anything stores them."""

from __future__ import annotations

import phonenumbers
import pytest

from confide.errors import InvalidInput
from confide.leads import fields
from confide.leads.detect import CARD_MASK, Detected, Masked, find_details, luhn_valid, mask_cards

# Well-known test card numbers (Visa, Mastercard, American Express), never real cards.
VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"


def detected(text: str, kind: str, value: str, normalised: str) -> Detected:
    """The Detected expected for ``value``, with its span taken from where it sits in ``text``."""
    start = text.index(value)
    return Detected(kind, value, normalised, start, start + len(value))


# find_details


def test_gb_message_finds_email_phone_and_postcode() -> None:
    text = "I'm Sam, sam.example@Example.org or call 07400 123456, postcode sw1a1aa"
    assert find_details(text, "GB") == [
        detected(text, "email", "sam.example@Example.org", "sam.example@example.org"),
        detected(text, "phone", "07400 123456", "+447400123456"),
        detected(text, "postcode", "sw1a1aa", "SW1A 1AA"),
    ]


def test_us_message_finds_phone_and_zip() -> None:
    text = "Hi, reach me at (415) 555-0132, I'm in 94103 and can come Saturday"
    assert find_details(text, "US") == [
        detected(text, "phone", "(415) 555-0132", "+14155550132"),
        detected(text, "postcode", "94103", "94103"),
    ]


def test_zip_plus_four() -> None:
    text = "zip is 94103-1234"
    assert find_details(text, "US") == [detected(text, "postcode", "94103-1234", "94103-1234")]


def test_zip_only_looked_for_in_the_us() -> None:
    assert find_details("I can pay 94103 up front", "GB") == []
    assert find_details("I can pay 94103 up front", None) == []


@pytest.mark.parametrize(
    "text", ["budget $25000", "mileage 12,345", "price 12345.50", "ref 123456", "ref 12345-67"]
)
def test_zip_not_taken_from_prices_or_longer_numbers(text: str) -> None:
    assert find_details(text, "US") == []


@pytest.mark.parametrize(
    ("text", "region"),
    [
        # Possible-looking, but not allocated: libphonenumber knows.
        ("call 04000 123456 please", "GB"),
        # No North American area code starts with 1.
        ("call (123) 456-7890 please", "US"),
    ],
)
def test_invalid_phone_not_reported(text: str, region: str) -> None:
    loose = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE)
    assert list(loose), "precondition: a lenient matcher would report it"
    assert find_details(text, region) == []


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("07700 900123", "+447700900123"),
        ("+44 7700 900999", "+447700900999"),
        ("01632 960123", "+441632960123"),
        ("020 7946 0123", "+442079460123"),
    ],
)
def test_numbers_ofcom_keeps_for_drama_are_taken(typed: str, e164: str) -> None:
    """What trainers and testers are told to type: unallocated, but a demo lead needs them."""
    text = f"I'm Sam, call {typed} after six"
    assert find_details(text, "GB") == [detected(text, "phone", typed, e164)]
    assert fields.phone(typed, "GB") == e164


@pytest.mark.parametrize("typed", ["07700 901123", "07700 9001234", "01632 961123"])
def test_only_the_drama_ranges_are_excepted(typed: str) -> None:
    assert find_details(f"call {typed} please", "GB") == []
    with pytest.raises(InvalidInput):
        fields.phone(typed, "GB")


def test_phone_without_country_code_needs_a_region() -> None:
    text = "call +44 7400 123456 or 07400 123456"
    assert find_details(text, None) == [
        detected(text, "phone", "+44 7400 123456", "+447400123456"),
    ]


@pytest.mark.parametrize(
    "text", ["email me at a@b", "sam@example", "sam@.org", "@example.org", "sam.@example.org"]
)
def test_invalid_email_not_reported(text: str) -> None:
    assert find_details(text) == []


def test_email_without_surrounding_punctuation() -> None:
    text = "Write to (sam@example.org). Thanks!"
    assert find_details(text) == [detected(text, "email", "sam@example.org", "sam@example.org")]


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("SW1A 1AA", "SW1A 1AA"),
        ("sw1a1aa", "SW1A 1AA"),
        ("m1 1ae", "M1 1AE"),
        ("B33 8TH", "B33 8TH"),
        ("cr26xh", "CR2 6XH"),
        ("DN55 1PT", "DN55 1PT"),
        ("W1A 0AX", "W1A 0AX"),
        ("EC1A1BB", "EC1A 1BB"),
        ("GIR 0AA", "GIR 0AA"),
    ],
)
def test_uk_postcode_forms(typed: str, normalised: str) -> None:
    text = f"I live at {typed}, near the station"
    assert find_details(text) == [detected(text, "postcode", typed, normalised)]


@pytest.mark.parametrize(
    "text",
    [
        "Q1 1AA",  # no area starts with Q
        "SW1A 1CA",  # C is never a unit letter
        "the 2017 A4 estate",
        "an A45 with 1AA",
    ],
)
def test_postcode_lookalikes_not_reported(text: str) -> None:
    assert find_details(text) == []


def test_each_detail_reported_once_at_first_appearance() -> None:
    text = "Sam@Example.org or Sam@example.ORG, 07400 123456 or +44 7400 123456, SW1A 1AA / sw1a1aa"
    assert find_details(text) == [
        detected(text, "email", "Sam@Example.org", "Sam@example.org"),
        detected(text, "phone", "07400 123456", "+447400123456"),
        detected(text, "postcode", "SW1A 1AA", "SW1A 1AA"),
    ]


def test_details_in_order_of_appearance() -> None:
    text = "SW1A 1AA is home, 07400 123456 is my mobile, sam@example.org my email"
    assert [d.kind for d in find_details(text)] == ["postcode", "phone", "email"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Is the blue one still available? Could I test drive it on Saturday at 10?",
        "I'd like the 2021 model with 25,000 miles, part exchange my A4",
    ],
)
def test_no_details(text: str) -> None:
    assert find_details(text) == []


def test_card_number_not_reported_as_phone() -> None:
    # A Luhn-valid run that libphonenumber reads as a Berlin number when the site is German.
    text = "meine Nummer 49301234567894 bitte"
    assert luhn_valid("49301234567894")
    assert list(phonenumbers.PhoneNumberMatcher(text, "DE", leniency=phonenumbers.Leniency.VALID))
    assert find_details(text, "DE") == []


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", VISA])
def test_test_card_not_reported_as_anything(card: str) -> None:
    text = f"card {card}, call 07400 123456"
    assert find_details(text) == [detected(text, "phone", "07400 123456", "+447400123456")]


# mask_cards


def spaced(number: str, groups: tuple[int, ...], separator: str) -> str:
    """``number`` typed in groups of the given sizes, as on the front of the card."""
    parts, position = [], 0
    for size in groups:
        parts.append(number[position : position + size])
        position += size
    return separator.join(parts)


@pytest.mark.parametrize(
    ("number", "groups"),
    [(VISA, (4, 4, 4, 4)), (MASTERCARD, (4, 4, 4, 4)), (AMEX, (4, 6, 5))],
)
@pytest.mark.parametrize("separator", ["", " ", "-"])
def test_card_masked_as_typed(number: str, groups: tuple[int, ...], separator: str) -> None:
    typed = spaced(number, groups, separator)
    assert mask_cards(f"my card is {typed} thanks") == Masked(
        text=f"my card is {CARD_MASK} thanks", cards=1
    )


def test_two_cards_in_one_message() -> None:
    text = f"use {VISA} or if that fails 5555-5555-5555-4444."
    assert mask_cards(text) == Masked(
        text=f"use {CARD_MASK} or if that fails {CARD_MASK}.", cards=2
    )


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111 123 exp 12/27",  # security code typed straight after
        "ref 12 4111 1111 1111 1111",  # other digits typed straight before
        "1 " * 1990 + "4111 1111 1111 1111",  # at the end of a long run
    ],
)
def test_card_among_other_digits_fully_masked(text: str) -> None:
    masked = mask_cards(text)
    assert masked.cards == 1
    assert CARD_MASK in masked.text
    assert "4111" not in masked.text
    assert "1111" not in masked.text


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",
        "4111 1111 1111 1112",
        "order 1234-5678-9012-3400",
        "call 07400 123456",
        "4111 1111 1117",  # passes Luhn, but 12 digits are too few for a card
        "41111111111111111111",  # 20 digits in one group: too long to be a card
    ],
)
def test_non_cards_kept(text: str) -> None:
    assert mask_cards(text) == Masked(text=text, cards=0)


@pytest.mark.parametrize("phone", ["+49 30 1234567894", "0044 7400 123405"])
def test_luhn_valid_phone_numbers_kept(phone: str) -> None:
    # Luhn-valid by chance, but a "+" or a leading 0 marks a phone: no card number starts so.
    assert luhn_valid(phone.lstrip("+").replace(" ", ""))
    assert mask_cards(f"call {phone}") == Masked(text=f"call {phone}", cards=0)


def test_text_without_cards_unchanged() -> None:
    text = "Hello, is the Golf still for sale?"
    assert mask_cards(text) == Masked(text=text, cards=0)


@pytest.mark.parametrize(
    ("text", "cards"),
    [
        ("1 " * 2000, 0),  # no window of ones passes Luhn: every start is tried in full
        ("1-" * 2000, 0),
        ("1234 " * 800, 0),
        ("4" * 4000, 0),
    ],
)
def test_long_digit_input_completes(text: str, cards: int) -> None:
    masked = mask_cards(text)
    assert masked.cards == cards
    assert (masked.text == text) == (cards == 0)
    assert find_details(text) == []


# luhn_valid


@pytest.mark.parametrize("digits", [VISA, MASTERCARD, AMEX, "79927398713", "0"])
def test_luhn_valid(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize("digits", ["4111111111111112", "79927398710", "", "4111 1111", "12a4"])
def test_luhn_invalid(digits: str) -> None:
    assert not luhn_valid(digits)
