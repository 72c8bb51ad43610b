"""Console sign-in over real HTTP: cookies, CSRF, sign-out, lockout and password storage.

Runs against the shared ``live_server`` on SQLite and PostgreSQL. Tests that change an account's
state (lockout) use their own user, so they cannot disturb the others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy import select

from confide.testing import Account, LiveServer
from tests.conftest import World

WRONG_CREDENTIALS = "Email or password is not correct."


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token"\s+value="([^"]+)"', page.text)
    assert match is not None, "the page has no csrf_token field"
    return match.group(1)


def _error(page: httpx.Response) -> str:
    match = re.search(r'<div class="alert alert-error"[^>]*>(.*?)</div>', page.text, re.S)
    assert match is not None, f"no error alert on the page: {page.text[:300]}"
    return match.group(1).strip()


def _set_cookies(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A fresh cookie jar, like a new browser profile."""
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client


def _sign_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    form = client.get("/console/login")
    assert form.status_code == 200
    return client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": _csrf(form)}
    )


# --- signing in -------------------------------------------------------------------------------


def test_console_without_a_session_redirects_to_login(browser: httpx.Client) -> None:
    for path in ("/console", "/console/history", "/"):
        response = browser.get(path, follow_redirects=True)
        assert response.url.path == "/console/login", path
        assert response.status_code == 200
    first = browser.get("/console")
    assert first.status_code == 303
    assert first.headers["location"] == "/console/login"


def test_api_without_a_session_is_401(browser: httpx.Client) -> None:
    response = browser.get("/api/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorised"


def test_sign_in_sets_a_httponly_samesite_lax_session(browser: httpx.Client, world: World) -> None:
    response = _sign_in(browser, world.operator_a.email, world.operator_a.password)
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookies = _set_cookies(response, "confide_session")
    assert len(cookies) == 1
    header = cookies[0]
    attrs = {a.strip().split("=", 1)[0].lower(): a.strip() for a in header.split(";")[1:]}
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "samesite=lax"
    assert attrs["path"] == "Path=/"
    assert int(SimpleCookie(header)["confide_session"]["max-age"]) > 0
    token = SimpleCookie(header)["confide_session"].value
    assert len(token) >= 32  # an unguessable secret, not an id
    # The one-off login CSRF cookie is cleared.
    assert any(
        "max-age=0" in c.lower() or "expires=" in c.lower()
        for c in _set_cookies(response, "confide_login_csrf")
    )
    # The session works.
    me = browser.get("/api/me")
    assert me.status_code == 200
    assert me.json()["email"] == world.operator_a.email
    assert "secure" not in attrs  # plain http (development): a Secure cookie would be dropped
    assert "strict-transport-security" not in response.headers
    assert me.json()["role"] == "operator"
    assert browser.get("/console").status_code == 200
    # A signed-in user visiting the login page is sent to the console.
    again = browser.get("/console/login")
    assert again.status_code == 303 and again.headers["location"] == "/console"


def test_behind_an_https_proxy_cookies_are_secure_and_hsts_is_sent(
    live_server: LiveServer, world: World
) -> None:
    """The TLS-terminating proxy says so with X-Forwarded-Proto (trusted from loopback)."""
    https = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=live_server.url, timeout=10, headers=https) as client:
        form = client.get("/console/login")
        assert "max-age=31536000" in form.headers["strict-transport-security"]
        (login_csrf,) = _set_cookies(form, "confide_login_csrf")
        assert "; secure" in login_csrf.lower()
        # httpx keeps a Secure cookie off this plain-http test URL; the proxy's browser sends it.
        value = SimpleCookie(login_csrf)["confide_login_csrf"].value
        signed = client.post(
            "/console/login",
            data={
                "email": world.operator_a.email,
                "password": world.operator_a.password,
                "csrf_token": _csrf(form),
            },
            headers={"Cookie": f"confide_login_csrf={value}"},
        )
        assert signed.status_code == 303, signed.text[:300]
        (session,) = _set_cookies(signed, "confide_session")
        assert "; secure" in session.lower()


def test_sign_in_accepts_email_in_any_case(browser: httpx.Client, world: World) -> None:
    response = _sign_in(browser, "  " + world.client_a.email.upper() + " ", world.client_a.password)
    assert response.status_code == 303
    assert browser.get("/api/me").json()["role"] == "client"


def test_wrong_password_is_401_and_does_not_reveal_the_account(
    browser: httpx.Client, world: World
) -> None:
    wrong = _sign_in(browser, world.admin.email, world.admin.password + "x")
    unknown = _sign_in(browser, "nobody-here@example.com", world.admin.password)
    malformed = _sign_in(browser, "not an email", world.admin.password)
    for response in (wrong, unknown, malformed):
        assert response.status_code == 401
        assert _error(response) == WRONG_CREDENTIALS
        assert not _set_cookies(response, "confide_session")
        # A fresh form (new CSRF token) to try again; the email is kept, the password is not.
        assert _csrf(response)
        assert world.admin.password not in response.text
    assert _error(wrong) == _error(unknown) == _error(malformed)
    assert browser.get("/api/me").status_code == 401


def test_empty_form_is_401_not_500(browser: httpx.Client) -> None:
    form = browser.get("/console/login")
    response = browser.post("/console/login", data={"csrf_token": _csrf(form)})
    assert response.status_code == 401
    assert _error(response) == WRONG_CREDENTIALS


def test_overlong_password_gets_the_login_page_not_json(
    browser: httpx.Client, world: World
) -> None:
    """The form allows 1,024 characters (``maxlength``); whatever fits must get the page back."""
    form = browser.get("/console/login")
    assert 'maxlength="1024"' in form.text
    response = browser.post(
        "/console/login",
        data={"email": world.admin.email, "password": "p" * 1024, "csrf_token": _csrf(form)},
    )
    assert response.status_code == 401, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert _error(response) == WRONG_CREDENTIALS


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789"])
def test_login_without_the_right_csrf_token_is_403(
    browser: httpx.Client, world: World, token: str | None
) -> None:
    browser.get("/console/login")  # sets the login-CSRF cookie
    data = {"email": world.operator_a.email, "password": world.operator_a.password}
    if token is not None:
        data["csrf_token"] = token
    response = browser.post("/console/login", data=data)
    assert response.status_code == 403
    assert "expired" in _error(response)
    assert not _set_cookies(response, "confide_session")
    assert browser.get("/api/me").status_code == 401


def test_login_csrf_token_is_bound_to_the_browser(live_server: LiveServer, world: World) -> None:
    """A token from one browser's form is useless in another (login CSRF)."""
    with (
        httpx.Client(base_url=live_server.url, timeout=10) as attacker,
        httpx.Client(base_url=live_server.url, timeout=10) as victim,
    ):
        token = _csrf(attacker.get("/console/login"))
        response = victim.post(
            "/console/login",
            data={
                "email": world.operator_a.email,
                "password": world.operator_a.password,
                "csrf_token": token,
            },
        )
        assert response.status_code == 403
        assert not _set_cookies(response, "confide_session")


def test_logout_needs_the_sessions_csrf_token(world: World) -> None:
    client = world.server.login(world.client_a)
    try:
        page = client.get("/console")
        csrf = _csrf(page)
        assert client.get("/api/me").status_code == 200

        no_token = client.post("/console/logout")
        assert no_token.status_code == 403
        wrong = client.post("/console/logout", data={"csrf_token": "x" * 43})
        assert wrong.status_code == 403
        assert client.get("/api/me").status_code == 200  # still signed in

        token = client.cookies.get("confide_session")
        out = client.post("/console/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/login"
        assert client.get("/api/me").status_code == 401
        # The old cookie is dead on the server, not just deleted in this browser.
        with httpx.Client(base_url=world.server.url, timeout=10) as replay:
            replay.cookies.set("confide_session", str(token))
            assert replay.get("/api/me").status_code == 401
            assert replay.get("/console").headers["location"] == "/console/login"
    finally:
        client.close()


def test_a_forged_session_cookie_is_401(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        client.cookies.set("confide_session", "forged-" + "a" * 40)
        assert client.get("/api/me").status_code == 401
        assert client.get("/console").status_code == 303


def test_unsafe_api_calls_need_the_csrf_header(world: World) -> None:
    client = world.server.login(world.operator_a)
    try:
        response = client.post("/api/conversations/xxxxxxxxxxxxxxxxxxxxxx/close")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    finally:
        client.close()


# --- lockout ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lockable(live_server: LiveServer, world: World) -> Account:
    return live_server.create_user("operator", sites=[world.site_a_id], name="Lou Lockable")


def test_five_wrong_passwords_lock_the_account(browser: httpx.Client, lockable: Account) -> None:
    for attempt in range(5):
        response = _sign_in(browser, lockable.email, f"wrong-password-{attempt}")
        assert response.status_code == 401, attempt
        assert _error(response) == WRONG_CREDENTIALS
    locked = _sign_in(browser, lockable.email, lockable.password)
    assert locked.status_code == 429
    assert "try again later" in _error(locked).lower()
    assert "15 minutes" in _error(locked)  # how long, from the setting
    assert not _set_cookies(locked, "confide_session")
    assert browser.get("/api/me").status_code == 401


def test_lockout_is_per_account(browser: httpx.Client, world: World, lockable: Account) -> None:
    # ``lockable`` is locked by the test above (or not, if run alone): others are unaffected.
    response = _sign_in(browser, world.admin.email, world.admin.password)
    assert response.status_code == 303


# --- password storage -------------------------------------------------------------------------


def test_password_hash_is_argon2id(live_server: LiveServer, world: World) -> None:
    from confide.accounts.models import User
    from confide.storage.engine import Database
    from confide.storage.scope import Scope

    async def hashes() -> dict[str, str]:
        db = Database(live_server.database_url)
        try:
            async with db.session(Scope.system()) as s:
                rows = await s.execute(select(User.email, User.password_hash))
                return dict(rows.all())
        finally:
            await db.dispose()

    stored = asyncio.run(hashes())
    for account in (world.admin, world.operator_a, world.client_a):
        value = stored[account.email]
        assert value.startswith("$argon2id$"), value[:20]
        assert account.password not in value
    assert len(set(stored.values())) == len(stored)  # salted: no two hashes alike


def test_an_address_without_an_account_locks_out_the_same_way(browser: httpx.Client) -> None:
    """The lockout must not tell anyone which addresses have an account: a stranger's address
    gets 401 five times, then 429, exactly like a real account."""
    nobody = "never-registered-lockout@example.com"
    for attempt in range(5):
        response = _sign_in(browser, nobody, f"guess-{attempt}")
        assert response.status_code == 401, attempt
        assert _error(response) == WRONG_CREDENTIALS
    locked = _sign_in(browser, nobody, "guess-5")
    assert locked.status_code == 429
    assert "try again later" in _error(locked).lower()
