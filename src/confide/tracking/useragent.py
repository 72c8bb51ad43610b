"""User-Agent reduced to browser family + major version, OS family and device class (R20).

The raw User-Agent string is never stored or logged: only these four values leave this module.
Parsing uses ua-parser (the maintained uap-core regexes); known bots are recognised so they are
not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

#: Anywhere in the string: crawlers, and headless browsers driven by scripts.
_BOT_HINTS = (
    "bot",
    "crawler",
    "spider",
    "slurp",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "preview",
)
#: At the start of the string: HTTP libraries and command-line clients. None of them runs the
#: loader, so a beacon from one is a script, not a visitor. (Matched as the leading product
#: token only, so a browser UA that mentions one later is not caught by mistake.)
_SCRIPTED = (
    "curl/",
    "wget/",
    "python-",  # python-requests, python-urllib3, python-httpx, Python-urllib
    "python/",  # aiohttp: "Python/3.12 aiohttp/3.9"
    "go-http-client",
    "okhttp/",
    "java/",
    "apache-httpclient",
    "libwww-perl",
    "httpie/",
    "axios/",
    "node",  # node-fetch, and Node's built-in fetch (undici), which sends just "node"
    "undici",
    "guzzlehttp",
    "postmanruntime",
    "insomnia",
    "scrapy",
)
_TABLETS = ("ipad", "tablet", "kindle", "silk", "sm-t", "nexus 7", "nexus 9")


@dataclass(frozen=True)
class Agent:
    browser: str
    browser_major: str | None
    os: str
    device: str  # desktop, mobile, tablet
    bot: bool


@lru_cache(maxsize=4096)
def reduce(user_agent: str) -> Agent:
    ua = user_agent[:512]
    result = parse(ua)
    # A phone maker whose name holds "bot" (CUBOT) is a visitor, not a crawler.
    lowered = ua.lower().replace("cubot", "cu-phone")
    device_family = (result.device.family if result.device else "") or ""
    bot = (
        device_family == "Spider"
        or any(h in lowered for h in _BOT_HINTS)
        or lowered.lstrip().startswith(_SCRIPTED)
        or not ua.strip()
    )
    browser = result.user_agent.family if result.user_agent else "Other"
    major = result.user_agent.major if result.user_agent else None
    os_family = result.os.family if result.os else "Other"
    if any(t in lowered for t in _TABLETS):
        device = "tablet"
    elif "mobi" in lowered or os_family in ("iOS", "Android") or "iphone" in lowered:
        device = "mobile"
    else:
        device = "desktop"
    return Agent(browser[:40], (major or None) and major[:10], os_family[:40], device, bot)


def warm() -> None:
    """ua-parser compiles its regexes on first use (~0.5 s); do it at start-up, not on a request."""
    reduce("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36")
