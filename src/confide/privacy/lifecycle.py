"""The privacy request lifecycle: an explicit state machine where illegal moves raise.

received → identity_unverified → pending → approved → in_processing → complete, with
requires_input (an agent without proof), denied, canceled and error. No request is approved before
its identity was verified (the Fides advisory GHSA-qx5f-ghc2-7g5c was exactly that bug), except
the kinds that need no verification (opt-out of sale/sharing).
"""

from __future__ import annotations

from enum import StrEnum

from confide.errors import InvalidState


class State(StrEnum):
    RECEIVED = "received"
    IDENTITY_UNVERIFIED = "identity_unverified"
    REQUIRES_INPUT = "requires_input"
    PENDING = "pending"
    APPROVED = "approved"
    IN_PROCESSING = "in_processing"
    COMPLETE = "complete"
    DENIED = "denied"
    CANCELED = "canceled"
    ERROR = "error"


KINDS = (
    "access",
    "deletion",
    "correction",
    "opt_out",
    "withdraw_consent",
    "object_marketing",
    "object_automated",
    "restriction",
)
#: Kinds that take effect without identity verification (CCPA §7026; the platform applies at once).
UNVERIFIED_KINDS = frozenset({"opt_out"})
TERMINAL = frozenset({State.COMPLETE, State.DENIED, State.CANCELED})

_MOVES: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset(
        {
            State.IDENTITY_UNVERIFIED,
            State.REQUIRES_INPUT,
            State.PENDING,
            State.IN_PROCESSING,
            State.CANCELED,
        }
    ),
    State.IDENTITY_UNVERIFIED: frozenset(
        {State.PENDING, State.REQUIRES_INPUT, State.DENIED, State.CANCELED}
    ),
    State.REQUIRES_INPUT: frozenset(
        {State.IDENTITY_UNVERIFIED, State.PENDING, State.DENIED, State.CANCELED}
    ),
    State.PENDING: frozenset({State.APPROVED, State.DENIED, State.CANCELED}),
    State.APPROVED: frozenset({State.IN_PROCESSING, State.CANCELED}),
    State.IN_PROCESSING: frozenset({State.COMPLETE, State.ERROR}),
    State.ERROR: frozenset({State.IN_PROCESSING, State.CANCELED}),
    State.COMPLETE: frozenset(),
    State.DENIED: frozenset(),
    State.CANCELED: frozenset(),
}


def move(current: str, target: State, *, verified: bool, kind: str) -> State:
    """The new state, or :class:`InvalidState` for a move the lifecycle does not allow."""
    here = State(current)
    if target not in _MOVES[here]:
        raise InvalidState(f"A request that is {here.value} cannot become {target.value}.")
    needs_identity = target in (State.PENDING, State.APPROVED, State.IN_PROCESSING)
    if needs_identity and not verified and kind not in UNVERIFIED_KINDS:
        raise InvalidState("The requester's identity has not been verified yet.")
    return target


#: Why a request is refused, in whole or in part (R53): a code recorded with the free text, and
#: the words the person reads. A partial erasure under a legal hold is ``legal_obligation``
#: (R41). GDPR Art. 12(5), 17(3); CCPA §7101(b) asks for the basis of a denial.
DENIAL_BASES: dict[str, str] = {
    "identity_not_verified": "we could not verify that the request comes from you",
    "manifestly_unfounded": "the request is manifestly unfounded",
    "excessive": "the request is excessive, in particular because it repeats an earlier one",
    "legal_obligation": "the law requires us to keep the information",
    "legal_claims": "the information is needed for legal claims",
    "rights_of_others": "answering would reveal information about other people",
    "other": "another reason, explained below",
}
