"""ADF/XML: valid against the vendored DTD, complete for the dealer, and nothing more."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from confide.delivery.adf import ADF_MIME, render_adf, validate_adf
from confide.delivery.snapshot import (
    ConsentRef,
    Contact,
    LeadSnapshot,
    TranscriptLine,
    Vehicle,
)

AT = datetime(2025, 3, 14, 10, 22, 5, tzinfo=UTC)
TRANSCRIPT_TEXT = "Could I come on Saturday morning to drive it?"
PAGE_PATH = "/used/skoda-octavia-estate-uk12345"


def make_snapshot(**changes: Any) -> LeadSnapshot:
    """A complete lead; the webhook and email tests use it too."""
    snapshot = LeadSnapshot(
        lead_id="lead_7f3c2a",
        status="new",
        created_at=AT,
        organisation_name="Main Street Motors Ltd",
        site_name="Main Street Motors",
        site_url="https://mainstreet.example",
        purpose="test_drive",
        contact=Contact(
            name="Sam Example",
            email="sam@example.org",
            phone="+44 7700 900123",
            address="1 High Street\nFlat 2",
            city="Leeds",
            postcode="LS1 1AA",
            country="GB",
        ),
        vehicle=Vehicle(
            interest="test-drive",
            status="used",
            year="2021",
            make="Skoda",
            model="Octavia Estate",
            stock="UK12345",
        ),
        trade_in=Vehicle(interest="trade-in", year="2015", make="Ford", model="Focus"),
        comments="Interested in the estate, saw it on your site.",
        sale_share_opt_out=False,
        consent=ConsentRef(
            record_id="cr_91ab",
            given_at=AT - timedelta(seconds=25),
            policy_version="v3",
            text_sha256="ab" * 32,
        ),
        transcript=(
            TranscriptLine(at=AT, role="visitor", author="Sam", text=TRANSCRIPT_TEXT),
            TranscriptLine(
                at=AT + timedelta(seconds=30), role="agent", author="Alex", text="Of course."
            ),
        ),
    )
    return replace(snapshot, **changes)


def parse(document: bytes) -> Any:
    return etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))


def test_full_snapshot_is_valid_adf_with_the_dealer_fields() -> None:
    document = render_adf(make_snapshot(), provider_url="https://confide.example")
    validate_adf(document)
    assert ADF_MIME == "application/x-adf+xml"
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>')
    root = parse(document)
    prospect = root.find("prospect")
    assert prospect.get("status") == "new"
    assert prospect.findtext("id") == "lead_7f3c2a"
    assert prospect.find("id").get("source") == "confide"
    assert prospect.findtext("requestdate") == "2025-03-14T10:22:05+00:00"
    contact = prospect.find("customer/contact")
    assert contact.findtext("name") == "Sam Example"
    assert contact.findtext("email") == "sam@example.org"
    assert contact.findtext("phone") == "+44 7700 900123"
    assert [s.text for s in contact.findall("address/street")] == ["1 High Street", "Flat 2"]
    assert contact.findtext("address/postalcode") == "LS1 1AA"
    wanted, trade = prospect.findall("vehicle")
    assert wanted.attrib == {"interest": "test-drive", "status": "used"}
    assert [wanted.findtext(t) for t in ("year", "make", "model", "stock")] == [
        "2021",
        "Skoda",
        "Octavia Estate",
        "UK12345",
    ]
    assert trade.attrib == {"interest": "trade-in"}  # no status: the snapshot did not say
    assert trade.findtext("make") == "Ford"
    assert prospect.findtext("vendor/vendorname") == "Main Street Motors"
    assert prospect.findtext("vendor/contact/name") == "Main Street Motors Ltd"
    assert prospect.findtext("vendor/contact/email") == "noreply@confide.example"
    assert prospect.findtext("provider/url") == "https://confide.example"


def test_comments_hold_purpose_consent_and_opt_out_but_no_transcript_or_pages() -> None:
    document = render_adf(make_snapshot(sale_share_opt_out=True))
    validate_adf(document)
    comments = parse(document).findtext("prospect/customer/comments")
    assert "Enquiry: Test drive." in comments
    assert "Interested in the estate" in comments
    assert "cr_91ab" in comments and "policy v3" in comments and "ab" * 32 in comments
    assert "Sale/sharing opt-out: yes" in comments
    text = document.decode()
    assert TRANSCRIPT_TEXT not in text and "Of course." not in text
    assert PAGE_PATH not in text and "/used/" not in text


def test_opt_out_says_no_when_not_flagged() -> None:
    comments = parse(render_adf(make_snapshot())).findtext("prospect/customer/comments")
    assert "Sale/sharing opt-out: no." in comments
    assert "opt-out: yes" not in comments


def test_without_personal_data_still_valid_and_holds_no_contact() -> None:
    snapshot = make_snapshot(vehicle=None, trade_in=None).without_personal_data()
    document = render_adf(snapshot, vendor_email="sales@mainstreet.example")
    validate_adf(document)
    text = document.decode()
    for personal in ("Sam Example", "sam@example.org", "7700", "High Street", "LS1", "estate"):
        assert personal not in text
    contact = parse(document).find("prospect/customer/contact")
    assert contact.find("email") is None
    assert contact.findtext("name") == "Withheld"
    assert contact.findtext("phone") == "withheld"
    assert contact.find("address") is None
    assert "outside the EU/UK" in parse(document).findtext("prospect/customer/comments")
    vehicle = parse(document).find("prospect/vehicle")
    assert vehicle.get("interest") == "test-drive"  # from the purpose
    assert [vehicle.findtext(t) for t in ("year", "make", "model")] == ["", "Unknown", "Unknown"]
    assert parse(document).findtext("prospect/vendor/contact/email") == "sales@mainstreet.example"


def test_partial_vehicle_and_contact_are_filled_so_they_validate() -> None:
    snapshot = make_snapshot(
        status="resend",
        vehicle=Vehicle(make="BMW", status="nearly-new"),
        trade_in=None,
        contact=Contact(city="York"),
        created_at=datetime(2025, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    document = render_adf(snapshot)
    validate_adf(document)
    prospect = parse(document).find("prospect")
    assert prospect.get("status") == "resend"
    assert prospect.findtext("requestdate") == "2025-06-01T09:00:00+01:00"
    vehicle = prospect.find("vehicle")
    assert vehicle.get("status") is None  # not a DTD value, so left out
    assert [vehicle.findtext(t) for t in ("year", "make", "model")] == ["", "BMW", "Unknown"]
    contact = prospect.find("customer/contact")
    assert contact.findtext("name") == "Not given"
    assert contact.findtext("phone") == "not given"
    assert contact.findtext("address/city") == "York"
    assert prospect.findtext("vendor/contact/email") == "leads@confide.invalid"


def test_xml_special_characters_are_escaped() -> None:
    name = 'O\'Brien & <Sons> "Ltd"'
    snapshot = make_snapshot(
        contact=Contact(name=name, email="a&b@example.org"),
        organisation_name="Smith & Sons <Motors>",
        comments="]]> <script>alert(1)</script>\x00\x0b",
    )
    document = render_adf(snapshot)
    validate_adf(document)
    assert b"<Sons>" not in document and b"<script>" not in document
    assert b"&amp; &lt;Sons&gt;" in document
    root = parse(document)
    assert root.findtext("prospect/customer/contact/name") == name
    assert root.findtext("prospect/vendor/contact/name") == "Smith & Sons <Motors>"
    assert "<script>alert(1)</script>" in root.findtext("prospect/customer/comments")


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        render_adf(make_snapshot(created_at=datetime(2025, 3, 14, 10, 0)))


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"<adf><prospect/></adf>", id="missing-children"),
        pytest.param(b"<adf><nonsense/></adf>", id="undeclared-element"),
        pytest.param(b"<lead/>", id="wrong-root"),
        pytest.param(b"<adf><prospect>", id="not-well-formed"),
    ],
)
def test_invalid_documents_are_rejected(document: bytes) -> None:
    with pytest.raises(ValueError, match="ADF"):
        validate_adf(document)


def test_invalid_vehicle_order_is_rejected_with_the_dtd_log() -> None:
    root = parse(render_adf(make_snapshot()))
    vehicle = root.find("prospect/vehicle")
    vehicle.insert(0, vehicle.find("model"))  # model before year
    with pytest.raises(ValueError, match="vehicle"):
        validate_adf(etree.tostring(root))


def test_external_entities_are_not_resolved(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    document = (
        f'<?xml version="1.0"?><!DOCTYPE adf [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<adf><prospect>&x;</prospect></adf>"
    ).encode()
    with pytest.raises(ValueError) as caught:
        validate_adf(document)
    assert "TOP-SECRET" not in str(caught.value)


def test_a_marketing_objection_travels_with_the_lead() -> None:
    """R30: the dealer's CRM reads, in the lead itself, that this person must not be marketed."""
    document = render_adf(make_snapshot(marketing_objection=True))
    validate_adf(document)
    comments = parse(document).findtext("prospect/customer/comments")
    assert "Direct marketing: the person has objected." in comments
    plain = render_adf(make_snapshot())
    assert b"Direct marketing" not in plain
