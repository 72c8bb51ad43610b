"""User-Agent reduction: browser family + major, OS family, device class; bots recognised."""

from __future__ import annotations

import dataclasses

import pytest

from confide.tracking.useragent import Agent, reduce

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
UAS = {
    # desktop
    "chrome-windows": (CHROME_WIN, ("Chrome", "131", "Windows", "desktop")),
    "edge-windows": (
        CHROME_WIN + " Edg/131.0.0.0",
        ("Edge", "131", "Windows", "desktop"),
    ),
    "firefox-linux": (
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ("Firefox", "133", "Linux", "desktop"),
    ),
    "safari-mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Safari/605.1.15",
        ("Safari", "17", "Mac OS X", "desktop"),
    ),
    # mobile
    "safari-iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        ("Mobile Safari", "17", "iOS", "mobile"),
    ),
    "chrome-android-phone": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        ("Chrome Mobile", "131", "Android", "mobile"),
    ),
    "samsung-internet": (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        ("Samsung Internet", "25", "Android", "mobile"),
    ),
    # tablet
    "safari-ipad": (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        ("Mobile Safari", "17", "iOS", "tablet"),
    ),
    "chrome-galaxy-tab": (
        "Mozilla/5.0 (Linux; Android 13; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        ("Chrome", "131", "Android", "tablet"),
    ),
    "silk-kindle-fire": (
        "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Silk/126.3.1 like Chrome/126.0.6478.183 Safari/537.36",
        ("Amazon Silk", "126", "Android", "tablet"),
    ),
}


@pytest.mark.parametrize("name", list(UAS))
def test_browsers_are_reduced(name: str) -> None:
    ua, (browser, major, os_family, device) = UAS[name]
    agent = reduce(ua)
    assert (agent.browser, agent.browser_major, agent.os, agent.device) == (
        browser,
        major,
        os_family,
        device,
    )
    assert agent.bot is False


def test_only_reduced_values_leave_the_module() -> None:
    ua = UAS["safari-iphone"][0]
    agent = reduce(ua)
    assert {f.name for f in dataclasses.fields(Agent)} == {
        "browser",
        "browser_major",
        "os",
        "device",
        "bot",
    }
    assert all(len(v or "") <= 40 for v in (agent.browser, agent.browser_major, agent.os))
    assert "17_6" not in repr(agent) and "15E148" not in repr(agent)  # no full version/build


BOTS = {
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "googlebot-smartphone": (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ),
    "bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "headless-chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36"
    ),
    "yandex": "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "ahrefs": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebook-preview": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "gptbot": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)"
    ),
    "lighthouse": CHROME_WIN + " Chrome-Lighthouse",
    "empty": "",
    "blank": "   ",
}


@pytest.mark.parametrize("name", list(BOTS))
def test_bots_are_recognised(name: str) -> None:
    assert reduce(BOTS[name]).bot is True


def test_a_phone_maker_named_like_a_bot_is_a_visitor() -> None:
    cubot = (
        "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36"
    )
    agent = reduce(cubot)
    assert agent.bot is False and agent.device == "mobile"


@pytest.mark.parametrize(
    "ua",
    [
        pytest.param("curl/8.5.0", id="curl"),
        pytest.param("python-requests/2.32.3", id="python-requests"),
        pytest.param("Go-http-client/2.0", id="go"),
        pytest.param(
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
            "PhantomJS/2.1.1 Safari/538.1",
            id="phantomjs",
        ),
        pytest.param("Wget/1.21.4", id="wget"),
        pytest.param("python-httpx/0.28.1", id="python-httpx"),
        pytest.param("Python-urllib/3.12", id="python-urllib"),
        pytest.param("Python/3.12 aiohttp/3.10.5", id="aiohttp"),
        pytest.param("okhttp/4.12.0", id="okhttp"),
        pytest.param("Java/17.0.9", id="java"),
        pytest.param("Apache-HttpClient/4.5.14 (Java/17.0.9)", id="apache-httpclient"),
        pytest.param("axios/1.7.7", id="axios"),
        pytest.param("node", id="node-fetch-builtin"),
        pytest.param("libwww-perl/6.72", id="perl"),
    ],
)
def test_scripted_clients_are_not_counted_as_visitors(ua: str) -> None:
    assert reduce(ua).bot is True


def test_a_browser_mentioning_a_library_later_is_still_a_browser() -> None:
    """Library names are matched as the leading product token only."""
    assert reduce(CHROME_WIN + " python-requests/2.32.3").bot is False


def test_very_long_user_agents_are_cut_before_parsing() -> None:
    agent = reduce(CHROME_WIN + " " + "x" * 100_000)
    assert agent.browser == "Chrome" and agent.bot is False
