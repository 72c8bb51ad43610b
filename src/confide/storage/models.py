"""Import every model so ``Base.metadata`` is complete (migrations, the data-map test)."""

from confide.accounts.models import ConsoleSession, Organisation, SiteAssignment, User
from confide.chat.models import Conversation, Message, Visitor
from confide.sites.models import Site
from confide.storage.base import Base

__all__ = [
    "Base",
    "ConsoleSession",
    "Conversation",
    "Message",
    "Organisation",
    "Site",
    "SiteAssignment",
    "User",
    "Visitor",
]
