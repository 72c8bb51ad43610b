"""The lead email: a readable summary and transcript for people, ADF/XML attached for the CRM.

The plain-text and HTML bodies are rendered from one list of sections, so they cannot disagree
about what the dealership is told. Everything the visitor or a dealer typed is escaped with
``html.escape`` in the HTML part.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

from confide.clock import utcnow
from confide.delivery.adf import (
    ADF_MIME,
    MARKETING_OBJECTION_SENTENCE,
    consent_line,
    iso8601,
    purpose_label,
)
from confide.delivery.snapshot import Contact, LeadSnapshot, Vehicle
from confide.settings import Settings

OPT_OUT_SENTENCE = (
    "The visitor opted out of the sale or sharing of their personal information "
    "(Global Privacy Control). Do not sell or share."
)
WITHHELD_SENTENCE = (
    "Personal data was withheld because this destination is outside the EU/UK: contact details, "
    "comments and the transcript were removed."
)


@dataclass(frozen=True)
class Section:
    """A titled block of the body: label/value rows, then free-standing sentences."""

    title: str
    rows: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def compose_lead_email(
    snapshot: LeadSnapshot, *, sender: str, recipient: str, adf: bytes
) -> EmailMessage:
    """The complete message for one delivery; pure apart from the ``Date`` header."""
    message = EmailMessage()
    message["Subject"] = subject(snapshot)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id(snapshot.lead_id, adf, sender)
    message["X-Confide-Lead"] = snapshot.lead_id
    # RFC 3834: no out-of-office replies to a robot.
    message["Auto-Submitted"] = "auto-generated"
    sections = lead_sections(snapshot)
    message.set_content(render_plain(sections))
    message.add_alternative(render_html(sections), subtype="html")
    maintype, subtype = ADF_MIME.split("/")
    message.add_attachment(
        adf, maintype=maintype, subtype=subtype, filename=f"lead-{snapshot.lead_id}.xml"
    )
    return message


def subject(snapshot: LeadSnapshot) -> str:
    """ "New lead: Test drive — Main Street Motors"; "Corrected lead: …" for a resend."""
    kind = "Corrected lead" if snapshot.status == "resend" else "New lead"
    return _one_line(f"{kind}: {purpose_label(snapshot.purpose)} — {snapshot.site_name}")


def message_id(lead_id: str, adf: bytes, sender: str) -> str:
    """A Message-ID stable across retries of one delivery, new for each correction.

    Built from the lead id and a digest of the ADF (which renders the whole snapshot minus the
    transcript), so a retried send can be deduplicated by the receiving side while a corrected
    lead is a distinct message. The domain is the sender's, as RFC 5322 expects.
    """
    digest = hashlib.sha256(adf).hexdigest()[:16]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "confide.invalid"
    return f"<lead-{lead_id}.{digest}@{domain}>"


def _one_line(value: str) -> str:
    """Header-safe text: a site name with a newline must not break (or inject) headers."""
    return " ".join(value.split())


# -- body -------------------------------------------------------------------------------------


def lead_sections(snapshot: LeadSnapshot) -> list[Section]:
    """What the dealership reads, in order; empty sections are left out."""
    sections = [
        Section(
            "Lead",
            rows=(
                ("Enquiry", purpose_label(snapshot.purpose)),
                ("Site", _site(snapshot)),
                ("Received", iso8601(snapshot.created_at)),
                ("Reference", snapshot.lead_id),
            ),
        ),
        _contact_section(snapshot.contact, snapshot.personal_data_removed),
    ]
    if snapshot.vehicle is not None:
        sections.append(Section("Vehicle", rows=_vehicle_rows(snapshot.vehicle)))
    if snapshot.trade_in is not None:
        sections.append(Section("Part-exchange", rows=_vehicle_rows(snapshot.trade_in)))
    if snapshot.comments:
        sections.append(Section("Comments", notes=(snapshot.comments,)))
    sections.append(_privacy_section(snapshot))
    if snapshot.transcript:
        rows = tuple(
            (f"{iso8601(line.at)} {line.author} ({line.role})", line.text)
            for line in snapshot.transcript
        )
        sections.append(Section("Transcript", rows=rows))
    return sections


def _site(snapshot: LeadSnapshot) -> str:
    name = f"{snapshot.site_name} ({snapshot.organisation_name})"
    return f"{name} {snapshot.site_url}" if snapshot.site_url else name


def _contact_section(contact: Contact | None, removed: bool) -> Section:
    if contact is None:
        note = WITHHELD_SENTENCE if removed else "No contact details were given."
        return Section("Contact", notes=(note,))
    street = (contact.address or "").splitlines()
    parts = (*street, contact.city, contact.postcode, contact.country)
    address = ", ".join(part.strip() for part in parts if part and part.strip())
    fields = (
        ("Name", contact.name),
        ("Email", contact.email),
        ("Phone", contact.phone),
        ("Address", address),
    )
    return Section("Contact", rows=tuple((label, value) for label, value in fields if value))


def _vehicle_rows(vehicle: Vehicle) -> tuple[tuple[str, str], ...]:
    described = " ".join(part for part in (vehicle.year, vehicle.make, vehicle.model) if part)
    fields = (
        ("Vehicle", described or "Not specified"),
        ("Condition", vehicle.status),
        ("Stock number", vehicle.stock),
        ("Interest", vehicle.interest),
    )
    return tuple((label, value) for label, value in fields if value)


def _privacy_section(snapshot: LeadSnapshot) -> Section:
    """Opt-out first: it changes what the dealer may do with everything above it (R14)."""
    notes: list[str] = []
    if snapshot.sale_share_opt_out:
        notes.append(OPT_OUT_SENTENCE)
    if snapshot.marketing_objection:
        notes.append(MARKETING_OBJECTION_SENTENCE)
    if snapshot.personal_data_removed:
        notes.append(WITHHELD_SENTENCE)
    notes.append(consent_line(snapshot.consent))
    return Section("Privacy", notes=tuple(notes))


def render_plain(sections: list[Section]) -> str:
    blocks = []
    for section in sections:
        lines = [section.title, "-" * len(section.title)]
        lines += [f"{label}: {value}" for label, value in section.rows]
        lines += section.notes
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_html(sections: list[Section]) -> str:
    parts = ['<!doctype html>\n<html><body style="font-family: sans-serif">']
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.rows:
            parts.append("<table>")
            parts += [
                f'<tr><th align="left" valign="top">{html.escape(label)}</th>'
                f'<td style="white-space: pre-wrap">{html.escape(value)}</td></tr>'
                for label, value in section.rows
            ]
            parts.append("</table>")
        parts += [
            f'<p style="white-space: pre-wrap">{html.escape(note)}</p>' for note in section.notes
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- sending ----------------------------------------------------------------------------------


async def send_configured(settings: Settings, message: EmailMessage) -> None:
    """Send ``message`` the way this server is configured: SMTP, or a .eml file per message in
    ``settings.mail_dir`` (the demo's mail folder)."""
    if settings.mail_dir:
        await asyncio.to_thread(_write_eml, Path(settings.mail_dir), message)
        return
    await send_email(
        message,
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
    )


def _write_eml(folder: Path, message: EmailMessage) -> None:
    """Written whole then renamed: a reader never sees half a message. Owner-only: the
    messages carry personal data."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.eml"
    partial = folder / f".{name}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(message.as_bytes())
    partial.rename(folder / name)


async def send_email(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    timeout: float = 10.0,
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Send one message; SMTP errors and ``OSError`` propagate so the outbox worker retries.

    Why stdlib ``smtplib`` in a thread: no extra dependency, and a delivery job sends one
    message at a time, so a worker thread per send costs nothing worth an async SMTP client.
    ``timeout`` bounds each socket operation, not the whole conversation.
    """
    await asyncio.to_thread(
        _send_blocking,
        message,
        host=host,
        port=port,
        timeout=timeout,
        starttls=starttls,
        username=username,
        password=password,
    )


def _send_blocking(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    timeout: float,
    starttls: bool,
    username: str | None,
    password: str | None,
) -> None:
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        if starttls:
            smtp.starttls(context=ssl.create_default_context())
        if username is not None:
            smtp.login(username, password or "")
        refused = smtp.send_message(message)
    if refused:
        # Only some recipients were refused: still a failed delivery for the one we had.
        raise smtplib.SMTPRecipientsRefused(refused)
