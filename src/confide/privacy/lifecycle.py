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
