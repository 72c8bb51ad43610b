"""One Settings object for the whole process, read from the environment (``CONFIDE_*``).

Why one object: every entry point (CLI, ASGI app, worker, tests) builds the same Settings, so a
value cannot mean one thing in ``serve`` and another in ``demo``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from confide.accountability.residency import StorageRegion

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///confide.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONFIDE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    #: Where the database (and so all personal data) is hosted: UK, EU or EEA only (policy 4.2).
    storage_region: StorageRegion = "UK"
    #: Where data keys live, apart from the database (empty: next to it, see docs/privacy.md).
    keystore_url: str = ""
    #: ``kid:base64url(32 bytes)`` master keys, current first (empty: a development key).
    master_keys: str = ""
    #: None means the in-process broker (one node); a redis:// URL fans out across nodes.
    broker_url: str | None = None
    #: The origin browsers use to reach us, e.g. https://chat.example.com. Empty: taken per request.
    public_url: str = ""
    #: Where links in emails point when ``public_url`` is empty (set by ``confide demo``).
    email_link_base: str = ""
    #: Session cookies get ``Secure`` when served over https (always in production).
    secure_cookies: bool = False
    session_hours: int = 12
    #: A visitor's chat session (the widget's token, kept in the tab's sessionStorage) ends after
    #: this many hours without the widget connecting: the token is then refused (R11).
    visitor_session_hours: float = Field(default=12.0, gt=0.0, le=24.0 * 30)
    #: An accepted chat with no message for this many minutes is closed (0: never).
    chat_idle_close_minutes: float = Field(default=30.0, ge=0.0, le=24.0 * 60)
    #: Lockout after this many failed logins within ``lockout_minutes``.
    login_max_failures: int = 5
    lockout_minutes: int = 15
    #: Per-connection token buckets (frames/s sustained, burst). A person types far slower.
    widget_rate: float = 10.0
    widget_burst: int = 30
    console_rate: float = 50.0
    console_burst: int = 150
    #: Group commit: the writer waits at most this long to batch messages into one transaction.
    commit_window_ms: float = Field(default=0.0, ge=0.0, le=50.0)
    #: Under load (the last commit ended less than this long ago) the message and tracking
    #: writers gather for the rest of this time before committing: fewer, larger transactions
    #: when the CPU is the limit; an idle server commits each write at once (performance.md).
    commit_busy_window_ms: float = Field(default=1.0, ge=0.0, le=50.0)
    #: On SQLite, commit message and tracking batches on the event loop's thread ("on"), on a
    #: writer thread ("off"), or inline exactly when the process has one CPU ("auto").
    sqlite_inline: Literal["auto", "on", "off"] = "auto"
    commit_max_batch: int = Field(default=256, ge=1, le=5000)
    #: Public forms (privacy requests and codes, newsletter, offline enquiries): per network and
    #: form, this many at once, refilled at ``public_form_per_hour`` (web/throttle.py).
    public_form_burst: int = Field(default=10, ge=1)
    public_form_per_hour: float = Field(default=30.0, gt=0.0)
    log_level: str = "INFO"
    #: A MaxMind-format (.mmdb) city database for region/city; country comes from a shipped one.
    geoip_city_db: str = ""
    #: How often today's analytics are rolled up into daily stats (0 disables the background task).
    rollup_interval_s: float = Field(default=60.0, ge=0.0)
    #: Set by `confide demo`: the site whose widget the /demo/ pages embed.
    demo_site_key: str = ""
    #: The second demo site (another dealership) at /demo/east/: proves identifiers stay per site.
    demo_east_site_key: str = ""
    #: Lead delivery by email: the SMTP relay (EU/UK-hosted in production) and the sender.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "Confide leads <leads@confide.localhost>"
    #: Write every email as a .eml file into this folder instead of sending it (`confide demo`:
    #: verification codes and leads can be read without a mail server). Empty: SMTP.
    mail_dir: str = ""
    #: Text messages (codes to a phone on file): POSTed as JSON {to, text} to this SMS gateway,
    #: with the token as a bearer token (privacy/texts.py). Empty: written to ``mail_dir`` if
    #: set, else no texts (an email on file is used for codes).
    sms_webhook_url: str = ""
    sms_webhook_token: str = ""
    #: The in-process delivery worker (off when separate `confide worker` processes run).
    worker: bool = True
    worker_poll_s: float = Field(default=1.0, gt=0.0)
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    #: Exponential backoff: base * 2^(attempt-1), capped, with jitter.
    delivery_backoff_s: float = Field(default=5.0, gt=0.0)
    delivery_backoff_max_s: float = Field(default=3600.0, gt=0.0)
    #: A job whose worker died is taken again after this long.
    delivery_lease_s: float = Field(default=120.0, gt=0.0)
    delivery_concurrency: int = Field(default=4, ge=1, le=64)
    #: The retention purge and request reminders run this often (0: only `confide retention run`).
    retention_interval_s: float = Field(default=86400.0, ge=0.0)
    #: Where contract-end return bundles are written.
    exports_dir: str = "exports"
