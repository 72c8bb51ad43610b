"""The one place that decides who receives which event.

Channel names are opaque to the hub. A conversation has separate channels for its visitor and
its agents, so an agent-only frame (full visitor details, later internal notes) can never reach
the visitor's socket; a site has channels for its agents (the queue) and its visitors (presence).
"""

from __future__ import annotations


def conversation_visitor(conversation_id: str) -> str:
    return f"c:{conversation_id}:v"


def conversation_agents(conversation_id: str) -> str:
    return f"c:{conversation_id}:a"


def site_agents(site_id: str) -> str:
    return f"s:{site_id}:a"


def site_visitors(site_id: str) -> str:
    return f"s:{site_id}:v"


def for_message(conversation_id: str, site_id: str, waiting: bool) -> tuple[str, ...]:
    """Both sides; while the chat waits in the queue, every agent of the site (queue previews)."""
    channels = (conversation_visitor(conversation_id), conversation_agents(conversation_id))
    return (*channels, site_agents(site_id)) if waiting else channels


def for_signal_from(role: str, conversation_id: str) -> tuple[str, ...]:
    """Typing and seen go to the other side only."""
    if role == "visitor":
        return (conversation_agents(conversation_id),)
    return (conversation_visitor(conversation_id),)


def for_conversation_change_agents(conversation_id: str, site_id: str) -> tuple[str, ...]:
    return (site_agents(site_id), conversation_agents(conversation_id))


def for_conversation_change_visitor(conversation_id: str) -> tuple[str, ...]:
    return (conversation_visitor(conversation_id),)
