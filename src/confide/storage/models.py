"""Import every model so ``Base.metadata`` is complete (migrations, the data-map test)."""

from confide.accountability.models import (
    Breach,
    BreachOrganisation,
    InboxMessage,
    InboxRead,
    NewsletterSubscription,
    Notice,
    PolicyVersion,
    SubProcessor,
    SubProcessorObjection,
)
from confide.accounts.models import ConsoleSession, Organisation, SiteAssignment, User
from confide.audit.models import AuditEntry
from confide.chat.models import ChatIdentifier, Conversation, Message, Visitor
from confide.delivery.models import DeliveryAttempt, Destination, OutboxJob
from confide.leads.models import (
    ConsentRecord,
    ConsentRequest,
    Lead,
    OnwardTransfer,
    Person,
    PersonChange,
)
from confide.privacy.models import (
    ErasureTask,
    LegalHold,
    PrivacyRequest,
    RequestEvent,
    VerificationCode,
)
from confide.retention.models import RetentionRun
from confide.sites.models import Site
from confide.storage.base import Base
from confide.tracking.models import (
    AnonymousCount,
    DailyStat,
    Invitation,
    OptOut,
    PageView,
    SiteVisitor,
    TrackingSalt,
    Visit,
)

__all__ = [
    "AnonymousCount",
    "AuditEntry",
    "Base",
    "Breach",
    "BreachOrganisation",
    "ChatIdentifier",
    "ConsentRecord",
    "ConsentRequest",
    "ConsoleSession",
    "Conversation",
    "DailyStat",
    "DeliveryAttempt",
    "Destination",
    "ErasureTask",
    "InboxMessage",
    "InboxRead",
    "Invitation",
    "Lead",
    "LegalHold",
    "Message",
    "NewsletterSubscription",
    "Notice",
    "OnwardTransfer",
    "OptOut",
    "Organisation",
    "OutboxJob",
    "PageView",
    "Person",
    "PersonChange",
    "PolicyVersion",
    "PrivacyRequest",
    "RequestEvent",
    "RetentionRun",
    "Site",
    "SiteAssignment",
    "SiteVisitor",
    "SubProcessor",
    "SubProcessorObjection",
    "TrackingSalt",
    "User",
    "VerificationCode",
    "Visit",
    "Visitor",
]
