"""How sure we must be of who asks before a request is decided (R47, CCPA §7060-7062).

The one-time code to an email address or phone number on file proves one data point (the
person controls it). California's regulations ask for more where more is at stake:

- categories of data, deletion and correction: a *reasonable degree of certainty*, two data
  points that match what we hold;
- specific pieces of data (a copy): a *reasonably high degree*, three matching data points and a
  declaration, signed under penalty of perjury, that the requester is the person.

A data point is a detail the requester gave that matches a person on file: the email, the phone
(each counted once, whether it came with the request or carried the code), the name and the
postcode. Under GDPR the verified code is what we ask (Art. 12(6): reasonable measures; asking for
more than needed would itself be excessive), so this applies to ``ccpa`` requests only.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

from confide.errors import InvalidInput
from confide.leads import fields
from confide.leads.models import Person

ACCESS_SCOPES = ("specific", "categories")
#: What the requester signs (their name is the signature); kept with the request's events.
DECLARATION = (
    "I declare under penalty of perjury under the laws of the State of California that I am the "
    "person whose personal information is the subject of this request."
)


@dataclass(frozen=True)
class Need:
    points: int
    declaration: bool = False

    def met(self, points: int, declared: bool) -> bool:
        return points >= self.points and (declared or not self.declaration)

    def explain(self) -> str:
        words = f"{self.points} details that match what we hold"
        return words + (" and your signed declaration" if self.declaration else "")


#: One point: the verified code.
CODE_ONLY = Need(1)


def needed(kind: str, regime: str, scope: str) -> Need:
    if regime != "ccpa":
        return CODE_ONLY
    if kind == "access":
        return Need(3, declaration=True) if scope == "specific" else Need(2)
    if kind in ("deletion", "correction"):
        return Need(2)
    return CODE_ONLY


@dataclass(frozen=True)
class Facts:
    """Details given only to prove identity (never used as data)."""

    name: str | None = None
    postcode: str | None = None

    def dumps(self) -> str | None:
        if not (self.name or self.postcode):
            return None
        return json.dumps({"name": self.name, "postcode": self.postcode})

    @classmethod
    def loads(cls, text: str | None) -> Facts:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:  # an erased key reads as "[erased]": nothing to match
            return cls()
        return cls(name=data.get("name"), postcode=data.get("postcode"))

    def merged(self, other: Facts) -> Facts:
        return Facts(name=other.name or self.name, postcode=other.postcode or self.postcode)


def clean_facts(name: object, postcode: object) -> Facts:
    """The name as the lead field takes it; the postcode only trimmed (whatever country it is
    from, it is compared, not stored as data)."""
    clean_name = fields.contact({"name": name}, "GB")["name"] if name else None
    if postcode is not None and not isinstance(postcode, str):
        raise InvalidInput("Postcode must be text.")
    code = " ".join((postcode or "").upper().split()) or None
    if code is not None and len(code) > 12:
        raise InvalidInput("Postcode is limited to 12 characters.")
    return Facts(name=clean_name, postcode=code)


def check_scope(kind: str, scope: str | None) -> str:
    if scope in (None, ""):
        return "specific"
    if kind != "access" and scope != "specific":
        raise InvalidInput("Only an access request can ask for categories.")
    if scope not in ACCESS_SCOPES:
        raise InvalidInput(f"Access scope is one of: {', '.join(ACCESS_SCOPES)}.")
    return scope


def points(
    persons: list[Person],
    *,
    email_index: str | None,
    phone_index: str | None,
    code_channel: str,
    facts: Facts,
) -> int:
    """Matching data points; the code's channel counts whether or not a person holds it (a
    visitor may have typed it in a chat, which is what the code was sent to)."""
    email = code_channel == "email" or bool(
        email_index and any(p.email_index == email_index for p in persons)
    )
    phone = code_channel == "phone" or bool(
        phone_index and any(p.phone_index == phone_index for p in persons)
    )
    name = bool(facts.name) and any(_same(p.name, facts.name) for p in persons)
    postcode = bool(facts.postcode) and any(
        _compact(p.postcode) == _compact(facts.postcode) for p in persons if p.postcode
    )
    return sum((email, phone, name, postcode))


def _same(held: str | None, given: str | None) -> bool:
    return bool(held and given) and _norm(held) == _norm(given)


def _compact(postcode: str | None) -> str:
    return "".join((postcode or "").upper().split())


def _norm(text: str | None) -> str:
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(folded.split())
