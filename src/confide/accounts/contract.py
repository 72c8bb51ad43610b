"""A client organisation's contract and retention choices (policy 5), as the CLI sets them.

The purge (:mod:`confide.retention.purge`) reads these columns; without a way to set them the
"contract end + 3 months" maximum and a client's shorter retention could never apply. Every
change is audited with the old and new values (they are configuration, not personal data).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from confide.accounts.models import Organisation
from confide.audit import log as audit
from confide.errors import InvalidInput, NotFound
from confide.retention.purge import MINIMUM_MONTHS
from confide.storage.engine import Database
from confide.storage.scope import Scope

END_OF_CONTRACT = ("delete", "return_then_delete")
#: Raw usage and behavioural events: at most about three years once rolled up.
BEHAVIOUR_DAYS = (1, 1100)
#: A client's own retention for personal data: from the minimum up to ten years.
RETENTION_MONTHS = (MINIMUM_MONTHS, 120)
#: "Not set" for the optional values (a contract without an end, retention up to the maximum).
UNSET = object()


@dataclass(frozen=True)
class ContractChange:
    """Only the values given change; ``UNSET`` clears an optional one."""

    contract_start: date | object | None = None
    contract_end: date | object | None = None
    retention_months: int | object | None = None
    behaviour_retention_days: int | None = None
    end_of_contract: str | None = None
    privacy_auto_approve: bool | None = None


def contract_dict(org: Organisation) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "contract_start": org.contract_start.isoformat() if org.contract_start else None,
        "contract_end": org.contract_end.isoformat() if org.contract_end else None,
        "retention_months": org.retention_months,
        "behaviour_retention_days": org.behaviour_retention_days,
        "end_of_contract": org.end_of_contract,
        "privacy_auto_approve": org.privacy_auto_approve,
    }


def _check(change: ContractChange, after: dict[str, Any]) -> None:
    if change.end_of_contract is not None and change.end_of_contract not in END_OF_CONTRACT:
        raise InvalidInput("End of contract must be 'delete' or 'return_then_delete'.")
    months = after["retention_months"]
    if months is not None and not RETENTION_MONTHS[0] <= months <= RETENTION_MONTHS[1]:
        raise InvalidInput(
            f"Retention must be {RETENTION_MONTHS[0]} to {RETENTION_MONTHS[1]} months: personal "
            f"data is kept at least {MINIMUM_MONTHS} months (policy 5.1)."
        )
    days = after["behaviour_retention_days"]
    if not BEHAVIOUR_DAYS[0] <= days <= BEHAVIOUR_DAYS[1]:
        raise InvalidInput(
            f"Behaviour retention must be {BEHAVIOUR_DAYS[0]} to {BEHAVIOUR_DAYS[1]} days."
        )
    start, end = after["contract_start"], after["contract_end"]
    if start and end and end < start:
        raise InvalidInput("The contract cannot end before it starts.")


async def configure(
    db: Database, organisation_id: str, change: ContractChange, actor: audit.Actor = audit.SYSTEM
) -> dict[str, Any]:
    async with db.session(Scope.system()) as s:
        org = await s.get(Organisation, organisation_id)
        if org is None:
            raise NotFound("No such organisation.")
        before = contract_dict(org)
        for f in fields(change):
            value = getattr(change, f.name)
            if value is not None:
                setattr(org, f.name, None if value is UNSET else value)
        after = contract_dict(org)
        _check(change, {f.name: getattr(org, f.name) for f in fields(change)})
        changed = [k for k in after if after[k] != before[k]]
        if changed:
            await audit.append(
                s,
                actor,
                "config.organisation.contract",
                organisation_id=org.id,
                subject_kind="organisation",
                subject_ref=org.id,
                fields=changed,
                purpose="; ".join(f"{k}: {before[k]} -> {after[k]}" for k in changed),
            )
        return after
