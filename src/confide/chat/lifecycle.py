"""The conversation lifecycle as an explicit state machine.

    waiting ──accept──▶ active ──close──▶ closed
       └─────────────close──────────────────▲

Every other transition raises :class:`InvalidState` naming what was expected.
"""

from __future__ import annotations

import enum

from confide.errors import InvalidState


class State(enum.StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    CLOSED = "closed"


_ALLOWED: dict[State, frozenset[State]] = {
    State.WAITING: frozenset({State.ACTIVE, State.CLOSED}),
    State.ACTIVE: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def transition(current: str, target: State) -> State:
    state = State(current)
    if target not in _ALLOWED[state]:
        expected = " or ".join(sorted(s.value for s in _ALLOWED[state])) or "nothing (it is closed)"
        raise InvalidState(
            f"The conversation is {state.value}; it can only become {expected}, not {target.value}."
        )
    return target


#: States in which messages may be added.
OPEN_STATES = frozenset({State.WAITING.value, State.ACTIVE.value})
