"""What a destination receives about one lead: built at delivery time, never stored in the outbox.

Why built at delivery time: the outbox row holds only ids, so a correction made before delivery
is what goes out, an erasure leaves no copy of the person in a queue, and a withdrawal of consent
can still stop it. Every channel (email + ADF, webhook JSON) renders this one value, so they cannot
disagree about which fields a client may see.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

#: Regions personal data may be delivered to (policy 4.2-4.4): the EU/EEA and the UK.
PERSONAL_DATA_REGIONS = frozenset({"EU", "EEA", "UK"})


@dataclass(frozen=True)
class Vehicle:
    """A vehicle of interest or a part-exchange (ADF ``vehicle``)."""

    #: ADF interest: buy, lease, sell, trade-in, test-drive.
    interest: str = "buy"
    #: ADF status: new or used (None: not said).
    status: str | None = None
    year: str | None = None
    make: str | None = None
    model: str | None = None
    stock: str | None = None


@dataclass(frozen=True)
class Contact:
    """The visitor's contact details, as captured and confirmed in the chat."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    #: Street address lines, town/city, postcode and ISO country code.
    address: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class ConsentRef:
    """The consent evidence a delivery rests on (policy 2.3, R25/R26)."""

    record_id: str
    given_at: datetime
    policy_version: str
    text_sha256: str


@dataclass(frozen=True)
class TranscriptLine:
    at: datetime
    #: "visitor", "agent" or "system".
    role: str
    author: str
    text: str


@dataclass(frozen=True)
class LeadSnapshot:
    lead_id: str
    #: "new" for the first delivery, "resend" after a correction (ADF ``prospect/@status``).
    status: str
    created_at: datetime
    organisation_name: str
    site_name: str
    site_url: str | None
    #: test_drive, valuation, finance, service, purchase, general.
    purpose: str
    contact: Contact | None
    vehicle: Vehicle | None
    trade_in: Vehicle | None
    #: The visitor's own words about the enquiry (first message or enquiry-form text).
    comments: str | None
    #: The browser sent Global Privacy Control (R14): the flag travels with every delivery.
    sale_share_opt_out: bool
    consent: ConsentRef
    transcript: tuple[TranscriptLine, ...] = field(default_factory=tuple)
    #: True when personal fields were removed because the destination is outside the EU/UK.
    personal_data_removed: bool = False
    #: The person objected to direct marketing (R30, absolute): the dealer may answer the
    #: enquiry but must not market to them. Travels with every delivery, like the opt-out.
    marketing_objection: bool = False

    def without_personal_data(self) -> LeadSnapshot:
        """The lead as a destination outside the EU/UK may receive it: no contact, no words."""
        return replace(self, contact=None, comments=None, transcript=(), personal_data_removed=True)


def for_region(snapshot: LeadSnapshot, region: str) -> LeadSnapshot:
    """Apply the residency rule for a destination's declared region."""
    if region.upper() in PERSONAL_DATA_REGIONS:
        return snapshot
    return snapshot.without_personal_data()
