"""URL and referrer minimisation (policy 2.2 "pages viewed", "referral source"; R22).

Pages are kept as their path; the query string is dropped except an allowlist of campaign keys,
so an email or a token in a URL is never stored. An email address inside the path itself
(``/unsubscribe/jane@example.org``, ``%40`` encoded or not) or a page title is replaced by
``[email]``. A referrer is kept as its origin only, and classified into a channel.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

#: Query keys kept (campaign attribution); everything else in a query string is dropped.
ALLOWED_QUERY_PREFIXES = ("utm_",)
ALLOWED_QUERY_KEYS = frozenset({"ref", "source"})
MAX_PATH = 512
MAX_QUERY_VALUE = 100
MAX_ORIGIN = 200

SEARCH_ENGINES = (
    "google.",
    "bing.com",
    "duckduckgo.com",
    "yahoo.",
    "ecosia.org",
    "baidu.com",
    "yandex.",
    "qwant.com",
    "startpage.com",
    "search.brave.com",
)
SOCIAL = (
    "facebook.com",
    "fb.com",
    "instagram.com",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "lnkd.in",
    "tiktok.com",
    "pinterest.",
    "reddit.com",
    "youtube.com",
    "whatsapp.com",
)
EMAIL = (
    "com.google.android.gm",  # the Gmail app's android-app:// referrer
    "mail.google.com",
    "outlook.live.com",
    "outlook.office.com",
    "mail.yahoo.com",
    "webmail.",
    "mail.",
)
EMAIL_MEDIUMS = frozenset({"email", "e-mail", "newsletter"})
CAMPAIGN_MEDIUMS = frozenset({"cpc", "ppc", "paid", "display", "banner", "affiliate", "cpm"})
SOCIAL_MEDIUMS = frozenset({"social", "social-media", "sm"})


#: Something@domain.tld in a path segment or a title, the "@" typed or percent-encoded.
#: An address as typed or percent-encoded (``@`` as ``%40``, dots as ``%2E``); the punctuation
#: around it in a sentence (``,;()``) is kept out of the match.
_NOT_IN_ADDRESS = r"[^\s/@?#<>\",;()]"
_EMAIL_IN_TEXT = re.compile(
    rf"{_NOT_IN_ADDRESS}+(?:@|%40){_NOT_IN_ADDRESS}+?(?:\.|%2E){_NOT_IN_ADDRESS}+", re.I
)
MAX_TITLE = 200


def redact_emails(text: str) -> str:
    return _EMAIL_IN_TEXT.sub("[email]", text) if "@" in text or "%40" in text else text


@lru_cache(maxsize=4096)
def clean_title(title: str | None) -> str | None:
    """A page title as kept: without email addresses, at most MAX_TITLE characters."""
    return redact_emails(title or "")[:MAX_TITLE] or None


def clean_path(url_or_path: str) -> tuple[str, dict[str, str]]:
    """``/stock/123?email=a@b.c&utm_source=x#top`` → (``/stock/123``, ``{"utm_source": "x"}``).

    A copy of the kept query: the cached answer must not be changed by a caller."""
    path, kept = _clean_path(url_or_path)
    return path, dict(kept)


@lru_cache(maxsize=4096)
def _clean_path(url_or_path: str) -> tuple[str, dict[str, str]]:
    """Cached: a site's visitors view the same few hundred pages, and every beacon names one."""
    parts = urlsplit(url_or_path.strip())
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    kept = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        key = key.lower()
        if key == "gclid":  # a paid click: keep the fact, never the click identifier
            kept["gclid"] = "1"
            continue
        if (key.startswith(ALLOWED_QUERY_PREFIXES) or key in ALLOWED_QUERY_KEYS) and len(key) <= 40:
            if "@" in value:  # email tools put the subscriber's address in utm_term/content
                continue
            kept[key] = value[:MAX_QUERY_VALUE]
    return redact_emails(path)[:MAX_PATH], kept


def referrer_origin(referrer: str | None, own_host: str | None = None) -> str | None:
    """The referrer's origin (scheme://host), or None for none, invalid, or our own site."""
    if not referrer:
        return None
    parts = urlsplit(referrer.strip())
    if parts.scheme not in ("http", "https", "android-app") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if own_host and host == own_host.lower():
        return None  # an internal navigation, not a referral
    origin = f"{parts.scheme}://{host}"
    return origin if len(origin) <= MAX_ORIGIN else None  # not a real host: not kept


def _matches(host: str, patterns: tuple[str, ...]) -> bool:
    """``google.`` matches a whole label (www.google.co.uk, never notgoogle.com); ``bing.com``
    matches that domain and its subdomains."""
    labelled = "." + host
    return any(
        ("." + p) in labelled if p.endswith(".") else host == p or host.endswith("." + p)
        for p in patterns
    )


def channel(referrer: str | None, query: dict[str, str]) -> str:
    """direct, search, social, email, campaign or other."""
    medium = query.get("utm_medium", "").lower()
    if medium in EMAIL_MEDIUMS:
        return "email"
    if medium in CAMPAIGN_MEDIUMS or "gclid" in query:
        return "campaign"
    if medium in SOCIAL_MEDIUMS:
        return "social"
    if referrer is None:
        return "campaign" if "utm_source" in query or "utm_campaign" in query else "direct"
    host = urlsplit(referrer).hostname or ""
    if _matches(host, EMAIL):
        return "email"
    if _matches(host, SEARCH_ENGINES):
        return "search"
    if _matches(host, SOCIAL):
        return "social"
    if "utm_source" in query or "utm_campaign" in query:
        return "campaign"
    return "other"
