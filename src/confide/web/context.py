"""Everything a request handler needs, built once per process and torn down cleanly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from confide.accountability.residency import require_storage_region
from confide.accounts.service import AccountService
from confide.chat import recipients
from confide.chat.idle import IdleChatCloser
from confide.chat.service import ChatService
from confide.chat.transcript_mail import TranscriptMailer
from confide.chat.writer import MessageWriter
from confide.delivery.admin import DeliveryAdmin
from confide.delivery.worker import DeliveryWorker
from confide.leads.records import LeadRecords
from confide.leads.service import LeadService
from confide.privacy.service import PrivacyService
from confide.realtime.broker import Broker, Event, InProcessBroker, make_broker
from confide.realtime.hub import Hub
from confide.retention.purge import Purger
from confide.retention.task import RetentionTask
from confide.settings import Settings
from confide.sites.service import SiteService
from confide.storage.engine import Database
from confide.tracking.aggregates import Reports
from confide.tracking.geo import GeoLocator
from confide.tracking.rollup import RollupTask
from confide.tracking.service import TrackingService


@dataclass
class AppContext:
    settings: Settings
    db: Database
    broker: Broker
    hub: Hub
    accounts: AccountService
    sites: SiteService
    chat: ChatService
    writer: MessageWriter
    tracking: TrackingService
    reports: Reports
    rollup: RollupTask
    leads: LeadService
    delivery: DeliveryWorker
    lead_records: LeadRecords
    delivery_admin: DeliveryAdmin
    privacy: PrivacyService
    retention: RetentionTask
    transcripts: TranscriptMailer
    idle_chats: IdleChatCloser

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        require_storage_region(settings.storage_region)  # policy 4.2: refuse to start outside
        db = Database(
            settings.database_url,
            keystore_url=settings.keystore_url or None,
            master_keys=settings.master_keys or None,
        )
        broker = make_broker(settings.broker_url)
        hub = Hub()
        accounts = AccountService(
            db,
            max_failures=settings.login_max_failures,
            lockout=timedelta(minutes=settings.lockout_minutes),
            session_ttl=timedelta(hours=settings.session_hours),
        )
        chat = ChatService(
            db, broker, visitor_session=timedelta(hours=settings.visitor_session_hours)
        )
        writer = MessageWriter(
            db,
            chat.publish_committed,
            window_ms=settings.commit_window_ms,
            busy_window_ms=settings.commit_busy_window_ms,
            inline=_inline(settings),
            max_batch=settings.commit_max_batch,
        )
        chat.attach_writer(writer)
        reports = Reports(db)
        delivery = DeliveryWorker(db, settings)
        leads = LeadService(db, broker, chat, on_enqueued=delivery.notify)
        chat.on_visitor_details = leads.details_typed
        delivery.on_lead_changed = leads.lead_changed
        privacy = PrivacyService(db, settings, on_enqueued=delivery.notify)
        delivery.on_notice_settled = privacy.notice_settled
        tracking = TrackingService(
            db,
            broker,
            GeoLocator(settings.geoip_city_db or None),
            busy_window_ms=settings.commit_busy_window_ms,
            inline=_inline(settings),
            unwatched=_unwatched(broker, hub),
        )
        return cls(
            settings,
            db,
            broker,
            hub,
            accounts,
            SiteService(db),
            chat,
            writer,
            tracking,
            reports,
            RollupTask(reports, interval_s=settings.rollup_interval_s, salts=tracking.salts),
            leads,
            delivery,
            LeadRecords(db, chat, leads),
            DeliveryAdmin(db),
            privacy,
            RetentionTask(
                Purger(db, exports_dir=Path(settings.exports_dir)),
                interval_s=settings.retention_interval_s,
                also=privacy.remind,
            ),
            TranscriptMailer(chat, settings),
            IdleChatCloser(
                db, chat.publish_change, idle=timedelta(minutes=settings.chat_idle_close_minutes)
            ),
        )

    async def start(self) -> None:
        await self.broker.start(self.hub.deliver)
        self.writer.start()
        self.tracking.warm()
        self.tracking.writer.start()
        self.rollup.start()
        self.idle_chats.start()
        if self.settings.worker:
            self.delivery.start()
            self.retention.start()

    async def stop(self) -> None:
        await self.retention.stop()
        await self.delivery.stop()
        await self.rollup.stop()
        await self.idle_chats.stop()
        await self.tracking.writer.stop()
        await self.writer.stop()
        await self.chat.settle()
        await self.privacy.drain_texts()
        await self.broker.stop()
        await self.db.dispose()

    async def site_online(self, site_id: str) -> bool:
        """Whether any agent for the site is connected, on this node or another."""
        return self.hub.site_online(site_id) or await self.broker.remote_online(site_id)

    async def agent_arrived(self, site_ids: frozenset[str]) -> None:
        for site_id in self.hub.agent_arrived(site_ids):
            await self.broker.set_presence(site_id, True)
            await self._publish_presence(site_id, True)

    async def agent_left(self, site_ids: frozenset[str]) -> None:
        for site_id in self.hub.agent_left(site_ids):
            await self.broker.set_presence(site_id, False)
            if not await self.broker.remote_online(site_id):
                await self._publish_presence(site_id, False)

    async def _publish_presence(self, site_id: str, online: bool) -> None:
        frame = {"type": "presence", "online": online}
        await self.broker.publish(Event((recipients.site_visitors(site_id),), frame))


def _inline(settings: Settings) -> bool | None:
    """``Settings.sqlite_inline`` as the writers take it (None: decide by the CPU count)."""
    return {"on": True, "off": False}.get(settings.sqlite_inline)


def _unwatched(broker: Broker, hub: Hub) -> Callable[[str], bool]:
    """Whether certainly no agent anywhere watches a site's live visitors: one node (the
    in-process broker) and none connected here. With Redis another node may have one."""
    if isinstance(broker, InProcessBroker):
        return lambda site_id: not hub.site_online(site_id)
    return lambda _site_id: False
