"""ADF/XML 1.0 (Auto-lead Data Format): the lead as dealer CRMs import it.

Shape (policy section 3; the DTD we validate against ships next to this module)::

    adf
     └ prospect status=new|resend
        ├ id source="confide"        the lead id
        ├ requestdate                ISO 8601 with offset
        ├ vehicle+                   of interest, then the trade-in (interest="trade-in")
        ├ customer
        │  ├ contact                 name, email and/or phone, address
        │  └ comments                purpose, visitor's words, consent ref, opt-out, withheld note
        ├ vendor                     the dealership (site name, url, organisation contact)
        └ provider                   us

Privacy (R14, R26): only what the snapshot carries is rendered, and of that never the transcript
nor anything behavioural (pages, visits, referrers): a CRM keeps what it imports indefinitely, so
ADF holds the minimum a salesperson needs to call back. The email body carries the transcript.

Built with lxml so every value is escaped by the serialiser, never by hand.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from confide.delivery.snapshot import ConsentRef, Contact, LeadSnapshot, Vehicle

ADF_MIME = "application/x-adf+xml"
#: R30: an objection to direct marketing is absolute; the dealer's CRM must see it.
MARKETING_OBJECTION_SENTENCE = (
    "Direct marketing: the person has objected. Answer this enquiry only; do not add them to "
    "marketing lists or campaigns."
)

#: The vendored DTD (policy 3: corrected so that standard validators accept it).
DTD_PATH = Path(__file__).with_name("adf-1.0.dtd")

#: lxml writes the declaration with single quotes; some CRM importers match the double-quoted
#: form literally, so we write the exact line ourselves (it is a constant, not data).
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

#: Last-resort vendor contact address: ``.invalid`` can never receive mail (RFC 2606), so a CRM
#: that emails it fails loudly instead of reaching a stranger.
FALLBACK_VENDOR_EMAIL = "leads@confide.invalid"

#: Values the DTD allows; anything else would make the whole document invalid.
VEHICLE_INTERESTS = frozenset({"buy", "lease", "sell", "trade-in", "test-drive"})
VEHICLE_STATUSES = frozenset({"new", "used"})

#: Human labels for ``LeadSnapshot.purpose``; the email subject and body use the same words.
PURPOSE_LABELS = {
    "test_drive": "Test drive",
    "valuation": "Valuation",
    "finance": "Finance",
    "service": "Service",
    "purchase": "Purchase",
    "general": "General enquiry",
}

#: ADF interest for a placeholder vehicle, from the enquiry purpose (default "buy", as the DTD).
_PURPOSE_INTERESTS = {"test_drive": "test-drive", "valuation": "sell"}

#: Placeholders that keep required elements valid without inventing data. Make and model read
#: "Unknown" to a salesperson; a missing year stays empty because CRMs parse it as a number.
UNKNOWN = "Unknown"
NOT_GIVEN = "Not given"
WITHHELD = "Withheld"


def purpose_label(purpose: str) -> str:
    """The enquiry purpose in words (an unknown code is shown as-is rather than hidden)."""
    return PURPOSE_LABELS.get(purpose, purpose.replace("_", " ").capitalize())


def iso8601(at: datetime) -> str:
    """Full ISO 8601 with an offset; a naive datetime is a bug upstream, so it is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("ADF dates need a timezone offset; got a naive datetime")
    return at.isoformat(timespec="seconds")


def render_adf(
    snapshot: LeadSnapshot,
    *,
    provider_name: str = "Confide",
    provider_url: str | None = None,
    vendor_email: str | None = None,
) -> bytes:
    """The ADF document for one lead, UTF-8 encoded, valid against the vendored DTD."""
    prospect = etree.Element("prospect", status=snapshot.status)
    _sub(prospect, "id", snapshot.lead_id, sequence="1", source="confide")
    _sub(prospect, "requestdate", iso8601(snapshot.created_at))
    for vehicle in _vehicles(snapshot):
        prospect.append(vehicle)
    prospect.append(_customer(snapshot))
    prospect.append(_vendor(snapshot, vendor_email or _fallback_email(provider_url)))
    prospect.append(_provider(provider_name, provider_url))
    root = etree.Element("adf")
    root.append(prospect)
    tree = etree.ElementTree(root)
    root.addprevious(etree.ProcessingInstruction("adf", 'version="1.0"'))
    body: bytes = etree.tostring(tree, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    return XML_DECLARATION + body


def validate_adf(document: bytes) -> None:
    """Raise ``ValueError`` (with the parser's or the DTD's error log) unless ``document`` is ADF.

    The parser never resolves entities nor touches the network: documents we validate may come
    back from tests or support tickets, and XXE must not be a way in.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False
    )
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"ADF is not well-formed XML: {exc}") from exc
    if root.tag != "adf":
        raise ValueError(f"ADF root element must be <adf>, not <{root.tag}>")
    dtd = _dtd()
    if not dtd.validate(root):
        raise ValueError(f"ADF does not match the ADF 1.0 DTD:\n{dtd.error_log}")


@cache
def _dtd() -> etree.DTD:
    """Parsed once per process: the file never changes while we run."""
    return etree.DTD(str(DTD_PATH))


#: Characters XML 1.0 cannot carry at all (C0 controls other than tab/newline/CR, surrogates,
#: U+FFFE/U+FFFF). A visitor can type or paste them; lxml would refuse the whole document.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 forbids (escaping is lxml's job)."""
    return _NOT_XML.sub("", value)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


# -- vehicles ---------------------------------------------------------------------------------


def _vehicles(snapshot: LeadSnapshot) -> list[etree._Element]:
    """The vehicle of interest, then the trade-in; a placeholder when there is neither.

    The DTD requires at least one vehicle. With only a trade-in that one suffices (a valuation
    enquiry is about the visitor's car); with nothing, an "Unknown" vehicle carries the interest
    implied by the purpose so the CRM still files the lead under the right activity.
    """
    vehicles: list[etree._Element] = []
    if snapshot.vehicle is not None:
        vehicles.append(_vehicle(snapshot.vehicle, snapshot.vehicle.interest))
    if snapshot.trade_in is not None:
        vehicles.append(_vehicle(snapshot.trade_in, "trade-in"))
    if not vehicles:
        interest = _PURPOSE_INTERESTS.get(snapshot.purpose, "buy")
        vehicles.append(_vehicle(Vehicle(interest=interest), interest))
    return vehicles


def _vehicle(vehicle: Vehicle, interest: str) -> etree._Element:
    """One ``vehicle``; values outside the DTD's enumerations fall back rather than invalidate."""
    attrs = {"interest": interest if interest in VEHICLE_INTERESTS else "buy"}
    if vehicle.status in VEHICLE_STATUSES:
        attrs["status"] = vehicle.status
    element = etree.Element("vehicle", attrs)
    _sub(element, "year", vehicle.year or "")
    _sub(element, "make", vehicle.make or UNKNOWN)
    _sub(element, "model", vehicle.model or UNKNOWN)
    if vehicle.stock:
        _sub(element, "stock", vehicle.stock)
    return element


# -- customer ---------------------------------------------------------------------------------


def _customer(snapshot: LeadSnapshot) -> etree._Element:
    customer = etree.Element("customer")
    customer.append(_customer_contact(snapshot.contact))
    _sub(customer, "comments", "\n".join(customer_comments(snapshot)))
    return customer


def _customer_contact(contact: Contact | None) -> etree._Element:
    """The DTD needs a name and an email or phone even when we may not send them.

    ``contact is None`` means personal data was removed for a destination outside the EU/UK:
    "Withheld" placeholders say so (and cannot be mistaken for a real address or number, unlike
    an invented email). Fields the visitor did not give read "Not given".
    """
    element = etree.Element("contact")
    if contact is None:
        _sub(element, "name", WITHHELD, part="full")
        _sub(element, "phone", WITHHELD.lower(), type="voice")
        return element
    _sub(element, "name", contact.name or NOT_GIVEN, part="full")
    if contact.email:
        _sub(element, "email", contact.email)
    if contact.phone:
        _sub(element, "phone", contact.phone, type="voice")
    if not contact.email and not contact.phone:
        _sub(element, "phone", NOT_GIVEN.lower(), type="voice")
    address = _address(contact)
    if address is not None:
        element.append(address)
    return element


def _address(contact: Contact) -> etree._Element | None:
    """``address`` when any part is known; the DTD requires a street, left empty if not given."""
    if not any((contact.address, contact.city, contact.postcode, contact.country)):
        return None
    element = etree.Element("address")
    lines = [line.strip() for line in (contact.address or "").splitlines() if line.strip()]
    for number, line in enumerate(lines or [""], start=1):
        _sub(element, "street", line, line=str(number))
    for tag, value in (
        ("city", contact.city),
        ("postalcode", contact.postcode),
        ("country", contact.country),
    ):
        if value:
            _sub(element, tag, value)
    return element


def customer_comments(snapshot: LeadSnapshot) -> list[str]:
    """The lines of ``customer/comments``: never behavioural data, never the transcript."""
    lines = [f"Enquiry: {purpose_label(snapshot.purpose)}."]
    if snapshot.comments:
        lines.append(f"Visitor's comments: {snapshot.comments}")
    lines.append(consent_line(snapshot.consent))
    opt_out = (
        "yes (Global Privacy Control); do not sell or share"
        if snapshot.sale_share_opt_out
        else "no"
    )
    lines.append(f"Sale/sharing opt-out: {opt_out}.")
    if snapshot.marketing_objection:
        lines.append(MARKETING_OBJECTION_SENTENCE)
    if snapshot.personal_data_removed:
        lines.append(
            "Personal data withheld: this destination is outside the EU/UK, so contact details "
            "and the visitor's words were removed."
        )
    return lines


def consent_line(consent: ConsentRef) -> str:
    """The consent reference as one sentence (R25/R26), shared with the email body."""
    return (
        f"Consent: record {consent.record_id}, given {iso8601(consent.given_at)}, "
        f"policy {consent.policy_version}, text sha256 {consent.text_sha256}."
    )


# -- vendor and provider ----------------------------------------------------------------------


def _vendor(snapshot: LeadSnapshot, email: str) -> etree._Element:
    """The dealership: site as vendorname, organisation as the contact (DTD: name + email)."""
    vendor = etree.Element("vendor")
    _sub(vendor, "vendorname", snapshot.site_name)
    if snapshot.site_url:
        _sub(vendor, "url", snapshot.site_url)
    contact = _sub(vendor, "contact")
    _sub(contact, "name", snapshot.organisation_name, part="full", type="business")
    _sub(contact, "email", email)
    return vendor


def _fallback_email(provider_url: str | None) -> str:
    """The vendor contact email when the dealership configured none.

    We must not invent a dealer address, so the placeholder is ours: ``noreply@`` at the
    provider's host (replies go nowhere a person reads, but stay with us), else an ``.invalid``
    address.
    """
    host = urlsplit(provider_url).hostname if provider_url else None
    return f"noreply@{host}" if host else FALLBACK_VENDOR_EMAIL


def _provider(name: str, url: str | None) -> etree._Element:
    provider = etree.Element("provider")
    _sub(provider, "name", name, part="full", type="business")
    _sub(provider, "service", "Website live chat")
    if url:
        _sub(provider, "url", url)
    return provider
