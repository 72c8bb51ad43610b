"""URL and referrer minimisation (docs/tracking.md, "What the server stores").

A page is kept as its path; a query string only keeps ``utm_*``, ``ref`` and ``source``; a
referrer is kept as its origin and classified into a channel.
"""

from __future__ import annotations

import pytest

from confide.tracking import urls
from confide.tracking.urls import channel, clean_path, referrer_origin

# --- paths and query strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "kept"),
    [
        ("/stock/123?email=a@b.c&utm_source=x", "/stock/123", {"utm_source": "x"}),
        # an encoded email is dropped just the same (the key is not on the allowlist)
        ("/stock/123?email=a%40b.c", "/stock/123", {}),
        ("/stock/123?e=a%2540b.c&contact=a@b.c", "/stock/123", {}),
        # fragments never survive, nor a query hidden inside one
        ("/p#top", "/p", {}),
        ("/p#top?email=a@b.c", "/p", {}),
        ("/p?utm_source=x#frag", "/p", {"utm_source": "x"}),
        # full URLs (SPA navigations may send location.href) keep only the path
        ("https://dealer.example/cars/golf?q=blue&token=abc", "/cars/golf", {}),
        ("//other.example/path?x=1", "/path", {}),
        ("", "/", {}),
        ("   ", "/", {}),
        ("stock", "/stock", {}),
        (
            "/?utm_medium=email&utm_campaign=spring",
            "/",
            {"utm_medium": "email", "utm_campaign": "spring"},
        ),
        # keys are case-insensitive and lower-cased; ref and source are kept
        (
            "/x?UTM_Source=Y&Ref=abc&source=nl&token=t&session=s",
            "/x",
            {"utm_source": "Y", "ref": "abc", "source": "nl"},
        ),
        # blank values are dropped
        ("/x?utm_source=&ref=", "/x", {}),
        # click ids are never kept (they identify the click, and so the person)
        # a paid click is kept as a fact (gclid=1), never its identifier
        ("/x?gclid=Cj0KCQ&fbclid=IwAR&msclkid=abc", "/x", {"gclid": "1"}),
    ],
)
def test_clean_path_keeps_path_and_campaign_keys_only(
    url: str, path: str, kept: dict[str, str]
) -> None:
    assert clean_path(url) == (path, kept)


def test_clean_path_limits_lengths() -> None:
    path, kept = clean_path("/" + "p" * 2000 + "?utm_source=" + "s" * 500)
    assert len(path) == urls.MAX_PATH
    assert kept == {"utm_source": "s" * urls.MAX_QUERY_VALUE}
    # absurdly long campaign keys are dropped rather than truncated
    assert clean_path("/x?utm_" + "k" * 50 + "=v") == ("/x", {})


def test_no_query_value_outside_the_allowlist_survives() -> None:
    secret = "s3cr3t-value"
    url = "/account?" + "&".join(f"k{i}={secret}" for i in range(30)) + f"#{secret}"
    path, kept = clean_path(url)
    assert secret not in path and secret not in repr(kept)


def test_an_email_in_a_campaign_value_is_not_kept() -> None:
    _path, kept = clean_path("/offer?utm_source=newsletter&utm_term=jane.doe%40example.com")
    assert "@" not in repr(kept) and "jane.doe" not in repr(kept)


# --- referrer origin -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/unsubscribe/jane@example.org", "/unsubscribe/[email]"),
        ("/u/Jane.Doe%40Example.org/prefs?email=a@b.c", "/u/[email]/prefs"),
        ("/demo/east/jane%2Edoe%40example%2Ecom", "/demo/east/[email]"),  # dots encoded too
        ("/u/JANE%40EXAMPLE%2ECOM/x", "/u/[email]/x"),
        ("/@eastside/offers", "/@eastside/offers"),  # a handle, not an address
        ("/stock/123", "/stock/123"),
    ],
)
def test_an_email_in_the_path_is_not_kept(url: str, path: str) -> None:
    assert urls.clean_path(url)[0] == path


def test_page_titles_lose_email_addresses_and_length() -> None:
    assert urls.clean_title("Thanks, jane@example.org!") == "Thanks, [email]"
    assert urls.clean_title("Thanks jane.doe@example.com, your order") == (
        "Thanks [email], your order"  # the sentence's comma stays
    )
    assert urls.clean_title("x" * 300) == "x" * urls.MAX_TITLE
    assert urls.clean_title("") is None and urls.clean_title(None) is None


@pytest.mark.parametrize(
    ("referrer", "origin"),
    [
        (None, None),
        ("", None),
        ("https://www.google.com/search?q=used+golf", "https://www.google.com"),
        # credentials, port, path and query (with an email) are all dropped; host lower-cased
        ("https://User:pw@Example.COM:8443/x?email=a@b.c#f", "https://example.com"),
        ("android-app://com.google.android.gm/", "android-app://com.google.android.gm"),
        ("javascript:alert(1)", None),
        ("ftp://files.example/x", None),
        ("data:text/html,hi", None),
        ("not a url", None),
        ("https:///nohost", None),
    ],
)
def test_referrer_origin(referrer: str | None, origin: str | None) -> None:
    assert referrer_origin(referrer) == origin


def test_internal_navigation_is_not_a_referral() -> None:
    assert referrer_origin("https://dealer.example/cars", own_host="dealer.example") is None
    assert referrer_origin("https://Dealer.Example/cars", own_host="dealer.example") is None
    assert referrer_origin("https://www.dealer.example/x", own_host="dealer.example") == (
        "https://www.dealer.example"
    )


# --- channels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("referrer", "query", "expected"),
    [
        # direct: no referrer, no campaign
        (None, {}, "direct"),
        (None, {"ref": "x"}, "direct"),
        # search engines, incl. country domains and subdomains
        ("https://www.google.com", {}, "search"),
        ("https://www.google.co.uk", {}, "search"),
        ("https://www.bing.com", {}, "search"),
        ("https://duckduckgo.com", {}, "search"),
        ("https://search.yahoo.com", {}, "search"),
        ("https://www.ecosia.org", {}, "search"),
        ("https://search.brave.com", {}, "search"),
        ("android-app://com.google.android.googlequicksearchbox", {}, "search"),
        # social
        ("https://l.facebook.com", {}, "social"),
        ("https://m.facebook.com", {}, "social"),
        ("https://t.co", {}, "social"),
        ("https://x.com", {}, "social"),
        ("https://www.linkedin.com", {}, "social"),
        ("https://www.reddit.com", {}, "social"),
        ("https://m.youtube.com", {}, "social"),
        ("https://www.instagram.com", {}, "social"),
        # email (webmail), checked before search: mail.google.com is not Google search
        ("https://mail.google.com", {}, "email"),
        ("https://outlook.live.com", {}, "email"),
        ("https://mail.yahoo.com", {}, "email"),
        ("https://webmail.example.net", {}, "email"),
        # campaign: utm_medium wins over the referrer
        ("https://www.google.com", {"utm_medium": "cpc"}, "campaign"),
        ("https://www.google.com", {"utm_medium": "PPC"}, "campaign"),
        ("https://www.facebook.com", {"utm_medium": "paid"}, "campaign"),
        (None, {"utm_medium": "display"}, "campaign"),
        (None, {"utm_source": "partner"}, "campaign"),
        (None, {"utm_campaign": "spring"}, "campaign"),
        ("https://blog.example.org", {"utm_source": "blog"}, "campaign"),
        # utm_medium email / social
        ("https://www.google.com", {"utm_medium": "Email"}, "email"),
        (None, {"utm_medium": "newsletter"}, "email"),
        (None, {"utm_medium": "e-mail"}, "email"),
        (None, {"utm_medium": "social"}, "social"),
        # other: a referrer that is none of the above
        ("https://news.ycombinator.com", {}, "other"),
        ("https://box.com", {}, "other"),  # not x.com
        ("https://autotrader.co.uk", {}, "other"),
    ],
)
def test_channel(referrer: str | None, query: dict[str, str], expected: str) -> None:
    assert channel(referrer, query) == expected


def test_internal_navigation_counts_as_direct() -> None:
    """The loader sends a referrer on a visit's first page view; if that is one of the site's own
    pages (a visit restarted after 30 min idle), the origin is dropped and the channel is direct."""
    origin = referrer_origin("https://dealer.example/cars?email=a@b.c", own_host="dealer.example")
    assert origin is None
    assert channel(origin, {}) == "direct"


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        pytest.param(
            "https://www.dailymail.co.uk",
            "other",
        ),
        pytest.param(
            "https://notgoogle.com",
            "other",
        ),
        pytest.param(
            "android-app://com.google.android.gm",
            "email",
        ),
    ],
)
def test_channel_host_matching_is_by_label(referrer: str, expected: str) -> None:
    assert channel(referrer, {}) == expected


def test_a_google_ads_click_is_a_campaign_as_the_service_computes_it() -> None:
    _path, query = clean_path("/used-cars/golf?gclid=Cj0KCQiA")
    assert channel("https://www.google.com", query) == "campaign"
