"""The accountability services, built together over one database and one mail relay.

Routes, pages and CLI commands all call these, so they cannot drift apart. Each service is a thin
holder of the database: building the set per request costs nothing.
"""

from __future__ import annotations

from confide.accountability.breaches import Breaches
from confide.accountability.inbox import Inbox
from confide.accountability.mail import Postman
from confide.accountability.newsletter import Newsletter
from confide.accountability.policies import Policies
from confide.accountability.ropa import RecordOfProcessing
from confide.accountability.subprocessors import SubProcessors
from confide.settings import Settings
from confide.storage.engine import Database


class Accountability:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.postman = Postman(settings)
        self.ropa = RecordOfProcessing(db, settings)
        self.subprocessors = SubProcessors(db, self.postman)
        self.breaches = Breaches(db, self.postman)
        self.policies = Policies(db, self.postman)
        self.newsletter = Newsletter(db, self.postman)
        self.inbox = Inbox(db)
