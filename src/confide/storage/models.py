"""Import every model so ``Base.metadata`` is complete (migrations, the data-map test)."""

from confide.accounts.models import ConsoleSession, Organisation, SiteAssignment, User
from confide.chat.models import Conversation, Message, Visitor
from confide.sites.models import Site
from confide.storage.base import Base
from confide.tracking.models import (
    DailyStat,
    Invitation,
    OptOut,
    PageView,
    SiteVisitor,
    Visit,
)

__all__ = [
    "Base",
    "ConsoleSession",
    "Conversation",
    "DailyStat",
    "Invitation",
    "Message",
    "OptOut",
    "Organisation",
    "PageView",
    "Site",
    "SiteAssignment",
    "SiteVisitor",
    "User",
    "Visit",
    "Visitor",
]
