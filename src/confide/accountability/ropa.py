"""The processor's record of processing activities (art. 30(2), R08), generated, never typed.

Per client organisation (a controller): the categories of personal data (from the ``user.*``
categories of the model columns, grouped), the purposes (a fixed mapping from tables), where the
data goes (its destinations and their regions, our sub-processors), how long it is kept (the
organisation's settings and each column's retention class) and the security measures. Nothing
here is written by hand, so the record cannot drift from what the code stores.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select

from confide.accountability.datamap import (
    PURPOSES,
    RETENTION_TEXT,
    personal_data_map,
    tables_by_purpose,
)
from confide.accountability.guards import reader_organisation, require_reader
from confide.accountability.models import SubProcessor, SubProcessorObjection
from confide.accountability.residency import inside_eu_uk, personal
from confide.accountability.subprocessors import view as subprocessor_view
from confide.accounts.models import Organisation
from confide.accounts.principal import Principal
from confide.clock import utcnow
from confide.delivery.models import Destination
from confide.privacy.deadlines import add_months
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.scope import Scope

PROCESSOR = "Confide"
#: Policy 5.3: personal data is kept at least this long, and at most this long after the contract.
MINIMUM_MONTHS = 3
AFTER_CONTRACT_MONTHS = 3

#: Art. 30(2)(d): a general description of the technical and organisational security measures.
#: Each line is true of this code base (the place that makes it true is in brackets).
SECURITY_MEASURES: tuple[str, ...] = (
    "Personal data is encrypted at rest per data subject with AES-256-GCM; each subject's key is "
    "wrapped by an organisation key, and the keys are kept in a key store apart from the "
    "database, so destroying a key erases every copy, backups included (crypto/vault.py).",
    "Blind indexes (keyed HMAC-SHA-256) find people by email address or phone number without "
    "storing those values in clear (crypto/vault.py: blind_index).",
    "TLS in transit: the service is served over HTTPS with HSTS and Secure cookies, webhooks "
    "must be https://, and the mail relay is used with STARTTLS where configured.",
    "Tenant scoping in the data layer: every query on a client's tables is filtered to the "
    "caller's organisation by the database session, and refused without a scope; another "
    "organisation's record answers exactly like a missing one (storage/scope.py).",
    "A hash-chained, append-only audit log of personal-data reads, exports, request actions "
    "and configuration changes; the database refuses to change or delete its entries "
    "(audit/log.py, `confide audit verify`).",
    "Passwords are hashed with Argon2id; repeated failed sign-ins lock the account for a while; "
    "sessions are stored only as hashes of their secret (accounts/passwords.py).",
    "Consent evidence and policy versions are immutable: the database refuses updates.",
    "Logs carry no personal data: a filter masks email addresses and phone numbers.",
)

DESTINATION_CHOICE = (
    "Leads go only to destinations the client configured. A destination outside the UK/EU/EEA "
    "is allowed (a client's CRM may be elsewhere), but what it receives is stripped of personal "
    "data: no name, contact details, comments or conversation, only the enquiry, the vehicle and "
    "the consent reference (delivery/snapshot.py: for_region). The console and the command line "
    "say so when such a destination is added."
)


def _latest_deletion(contract_end: date | None) -> str | None:
    """The day by which the client's personal data is gone: contract end + 3 months."""
    if contract_end is None:
        return None
    end = datetime.combine(contract_end, time(0), tzinfo=UTC)
    return add_months(end, AFTER_CONTRACT_MONTHS).date().isoformat()


class RecordOfProcessing:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def for_organisation(
        self, principal: Principal | None, organisation_id: str
    ) -> dict[str, Any]:
        """One controller's record; only for its own staff and ours (another is not found)."""
        if principal is not None:
            await reader_organisation(self.db, principal, organisation_id)
        return await self._build(organisation_id)

    async def all(self, principal: Principal | None) -> dict[str, Any]:
        """Every controller in the caller's scope (all of them for our staff), and every
        sub-processor: the processor's whole record."""
        scope = Scope.system()
        if principal is not None:
            require_reader(principal)
            scope = principal.scope
        async with self.db.session(scope, read_only=True) as s:
            org_ids = list(await s.scalars(select(Organisation.id).order_by(Organisation.name)))
        now = utcnow()
        async with self.db.session(Scope.system(), read_only=True) as s:
            sps = list(await s.scalars(select(SubProcessor).order_by(SubProcessor.name)))
        return {
            "generated_at": now.isoformat(),
            "processor": self._processor(),
            "controllers": [await self._build(o) for o in org_ids],
            "subprocessors": [subprocessor_view(sp, now) for sp in sps],
        }

    def _processor(self) -> dict[str, Any]:
        return {
            "name": PROCESSOR,
            "contact": self.settings.mail_from,
            "storage_region": self.settings.storage_region,
        }

    async def _build(self, organisation_id: str) -> dict[str, Any]:
        now = utcnow()
        scope = Scope.organisation(organisation_id)
        async with self.db.session(scope, read_only=True) as s:
            org = await s.get(Organisation, organisation_id)
            assert org is not None
            destinations = list(
                await s.scalars(select(Destination).order_by(Destination.created_at))
            )
            objections = {
                o.subprocessor_id: o.created_at
                for o in await s.scalars(select(SubProcessorObjection))
            }
        async with self.db.session(Scope.system(), read_only=True) as s:
            sps = list(await s.scalars(select(SubProcessor).order_by(SubProcessor.name)))
        groups = personal_data_map()
        by_purpose = tables_by_purpose()
        return {
            "generated_at": now.isoformat(),
            "processor": self._processor(),
            "controller": {
                "id": org.id,
                "name": org.name,
                "contract_start": org.contract_start.isoformat() if org.contract_start else None,
                "contract_end": org.contract_end.isoformat() if org.contract_end else None,
            },
            "categories": [
                {
                    "group": g.group,
                    "label": g.label,
                    "categories": sorted(g.categories),
                    "fields": g.fields,
                    "retention_classes": sorted(g.retention_classes),
                    "purposes": sorted(g.purposes),
                }
                for g in groups
            ],
            "purposes": [
                {
                    "purpose": key,
                    "label": label,
                    "description": description,
                    "tables": by_purpose.get(key, []),
                    "categories": sorted(
                        {g.group for g in groups if key in g.purposes},
                    ),
                }
                for key, (label, description) in PURPOSES.items()
            ],
            "destinations": [
                {
                    "id": d.id,
                    "name": d.name,
                    "kind": d.kind,
                    "region": d.region,
                    "enabled": d.enabled,
                    "personal_data": inside_eu_uk(d.region),
                }
                for d in destinations
            ],
            "destination_policy": DESTINATION_CHOICE,
            "subprocessors": [
                {
                    **subprocessor_view(sp, now),
                    "objected_at": objections[sp.id].isoformat() if sp.id in objections else None,
                }
                for sp in sps
            ],
            "transfers": {
                "storage_region": self.settings.storage_region,
                "outside_eu_uk": [
                    {"kind": "destination", "name": d.name, "region": d.region}
                    for d in destinations
                    if not inside_eu_uk(d.region)
                ]
                + [
                    {"kind": "subprocessor", "name": sp.name, "region": sp.region}
                    for sp in sps
                    if not inside_eu_uk(sp.region)
                ],
                # Refused at configuration (residency.py), so false unless that check is bypassed.
                "personal_data_outside_eu_uk": any(
                    not inside_eu_uk(sp.region) and personal(list(sp.categories)) for sp in sps
                ),
            },
            "retention": {
                "minimum_months": MINIMUM_MONTHS,
                "after_contract_months": AFTER_CONTRACT_MONTHS,
                "contract_end": org.contract_end.isoformat() if org.contract_end else None,
                "latest_deletion": _latest_deletion(org.contract_end),
                "retention_months": org.retention_months,
                "behaviour_retention_days": org.behaviour_retention_days,
                "end_of_contract": org.end_of_contract,
                "classes": RETENTION_TEXT,
            },
            "security_measures": list(SECURITY_MEASURES),
        }
