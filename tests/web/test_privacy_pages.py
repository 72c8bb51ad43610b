"""Privacy requests over real HTTP: the public pages, the portal's queue and the JSON API.

Runs a real server (SQLite and PostgreSQL) against a real SMTP server: the one-time codes and the
download link arrive by email, as a requester gets them. The person on file is made the way it is
in production: a visitor chats on site A and an operator captures their details.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from markupsafe import escape

from confide.privacy.notify import COMPLAINT_ROUTE
from confide.privacy.service import RECEIVED
from confide.testing import LiveServer
from tests.chat.helpers import client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World
from tests.leads.helpers import Console, SmtpSink

KNOWN = "kim.known@example.org"
UNKNOWN = "nobody.here@example.org"
CHAT_TEXT = "Hello, I'm Kim. Is the <b>Octavia</b> still for sale?"
PUBLIC_URL = "https://chat.example"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server_env(smtp: SmtpSink) -> dict[str, str]:
    return {"CONFIDE_SMTP_PORT": str(smtp.port), "CONFIDE_PUBLIC_URL": PUBLIC_URL}


@dataclass
class People:
    """Signed-in staff: the client of organisation A (the controller) and an operator."""

    client: Console
    operator: Console


@pytest.fixture(scope="module")
def people(world: World) -> Iterator[People]:
    client, operator = (
        Console(world.server, world.client_a),
        Console(world.server, world.operator_a),
    )
    try:
        yield People(client, operator)
    finally:
        client.close()
        operator.close()


@pytest.fixture(scope="module")
def on_file(world: World, people: People) -> str:
    """Kim, on file at organisation A: a chat on site A whose details an operator captured."""

    async def chat() -> str:
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        try:
            conv, _ = await open_chat(v)
            await v.send(type="send", conversation=conv, client_id=client_id(), text=CHAT_TEXT)
            await v.expect("ack")
            return conv
        finally:
            await v.close()

    conv = asyncio.run(chat())
    put = people.operator.put(
        f"/api/conversations/{conv}/person", json={"name": "Kim Known", "email": KNOWN}
    )
    assert put.status_code == 200, put.text
    return conv


@pytest.fixture
def public(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A requester's browser: no account, keeps cookies, does not follow redirects."""
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        yield http


def token_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no form token"
    return found.group(1)


def send_form(http: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """Open the form at ``path`` and send it with ``fields`` (and the form's token)."""
    page = http.get(path)
    assert page.status_code == 200, page.text[:300]
    return http.post(path, data={"csrf_token": token_of(page), **fields})


def make_request(http: httpx.Client, world: World, **fields: str) -> str:
    """A request sent through the form; its id (from the redirect to its page)."""
    sent = send_form(http, f"/privacy/{world.org_a}", **fields)
    assert sent.status_code == 303, sent.text[:500]
    found = re.fullmatch(r"/privacy/requests/([\w-]+)", sent.headers["location"])
    assert found, sent.headers["location"]
    return found.group(1)


def code_for(smtp: SmtpSink, to: str) -> str:
    for message in reversed(smtp.messages):
        if message["To"] == to:
            found = re.search(r"Your code: (\d{6})", message.get_content())
            if found:
                return found.group(1)
    raise AssertionError(f"no code was emailed to {to}")


def act(http: httpx.Client, request_id: str, step: str, **fields: str) -> httpx.Response:
    """Send one of the request page's forms (verify, resend, designation)."""
    page = http.get(f"/privacy/requests/{request_id}")
    return http.post(
        f"/privacy/requests/{request_id}/{step}", data={"csrf_token": token_of(page), **fields}
    )


def decide(people: People, request_id: str, step: str, **fields: str) -> httpx.Response:
    """The client's decision on the portal's request page (approve, deny, extend)."""
    page = people.client.get(f"/portal/privacy/{request_id}")
    assert page.status_code == 200, page.text[:300]
    return people.client.post(
        f"/portal/privacy/{request_id}/{step}", data={"csrf_token": token_of(page), **fields}
    )


def main_text(page: httpx.Response, *hide: str) -> str:
    """The page's <main> with ids and tokens blanked: what the requester reads."""
    main = page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    main = re.sub(r'name="csrf_token" value="[^"]+"', "", main)
    for word in hide:
        main = main.replace(word, "ID")
    return main


# ---- the public pages ----------------------------------------------------------------------------


def test_the_form_names_the_organisation_and_explains_verification(
    world: World, public: httpx.Client
) -> None:
    for path in (f"/privacy/{world.org_a}", f"/privacy/site/{world.site_a}"):
        page = public.get(path)
        assert page.status_code == 200
        assert "Your information held by Alpha Cars" in page.text
        assert "one-time code to the email address or phone number already on file" in page.text
        assert "within one month (45 days for California residents)" in page.text
        for label in ("See a copy of my information", "Do not sell or share my information"):
            assert label in page.text
        assert '<legend><span class="pv-step" aria-hidden="true">1</span>' in page.text
        cookie = page.headers["set-cookie"]
        assert "confide_privacy_csrf=" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
    for path in ("/privacy/" + "x" * 22, "/privacy/site/site_nonexistent"):
        missing = public.get(path)
        assert missing.status_code == 404
        assert "text/html" in missing.headers["content-type"]


def test_the_widget_privacy_panel_links_to_the_request_page(
    world: World, public: httpx.Client
) -> None:
    frame = public.get(f"/widget/frame?site={world.site_a}")
    assert frame.status_code == 200
    link = re.search(r'href="(/privacy/site/[^"]+)"', frame.text)
    assert link is not None, "the privacy panel has no link to the request page"
    assert public.get(link.group(1)).status_code == 200


def test_the_request_page_reads_the_same_for_known_and_unknown_people(
    world: World, public: httpx.Client, on_file: str, smtp: SmtpSink
) -> None:
    pages = []
    for email in (KNOWN, UNKNOWN):
        request_id = make_request(public, world, kind="access", email=email)
        page = public.get(f"/privacy/requests/{request_id}")
        assert page.status_code == 200
        assert RECEIVED in page.text
        assert "Waiting for your code" in page.text
        assert 'action="/privacy/requests/' + request_id + '/verify"' in page.text
        assert 'action="/privacy/requests/' + request_id + '/resend"' in page.text
        assert request_id in page.text  # the reference
        assert "Our answer by" in page.text
        pages.append(main_text(page, request_id))
    assert pages[0] == pages[1]
    assert code_for(smtp, KNOWN)
    with pytest.raises(AssertionError):
        code_for(smtp, UNKNOWN)  # acknowledged, but no code: nothing is on file


def test_the_form_refuses_a_post_without_its_cookie_token(
    world: World, public: httpx.Client
) -> None:
    sent = public.post(
        f"/privacy/{world.org_a}",
        data={"csrf_token": "forged" * 8, "kind": "deletion", "email": KNOWN},
    )
    assert sent.status_code == 403
    assert "This form had expired, so nothing was sent." in sent.text


def test_the_form_shows_what_to_fix(world: World, public: httpx.Client) -> None:
    empty = send_form(public, f"/privacy/{world.org_a}")
    assert empty.status_code == 422
    assert 'class="pv-error-summary" role="alert"' in empty.text
    assert '<a href="#f-kind">Choose what you would like us to do.</a>' in empty.text
    assert 'href="#f-email"' in empty.text
    assert 'aria-describedby="f-email-error" aria-invalid="true"' in empty.text

    bad = send_form(
        public,
        f"/privacy/{world.org_a}",
        kind="correction",
        email=KNOWN,
        details="my phone is wrong",
        california="true",
    )
    assert bad.status_code == 422
    assert '<a href="#f-details">Say what to correct' in bad.text
    assert 'value="my phone is wrong"' in bad.text  # what was typed is kept
    assert 'id="f-california" aria-describedby="h-california" checked' in bad.text


def test_verify_then_the_client_approves_and_the_person_downloads(
    world: World, public: httpx.Client, people: People, on_file: str, smtp: SmtpSink
) -> None:
    request_id = make_request(public, world, kind="access", email=KNOWN)
    wrong = act(public, request_id, "verify", code="12345x")  # never a code: they are digits
    assert wrong.status_code == 422
    assert "That code is not right or has expired." in wrong.text
    assert 'href="#f-code"' in wrong.text
    verified = act(public, request_id, "verify", code=code_for(smtp, KNOWN))
    assert verified.status_code == 303
    page = public.get(verified.headers["location"])
    assert "Thank you, your code is confirmed." in page.text
    assert "With Alpha Cars for review" in page.text

    queue = people.client.get("/portal/privacy?state=pending")
    assert queue.status_code == 200
    assert f'href="/portal/privacy/{request_id}"' in queue.text
    assert "Needs your decision" in queue.text
    assert 'aria-current="page">Privacy requests</a>' in queue.text

    approved = decide(people, request_id, "approve")
    assert approved.status_code == 303, approved.text[:500]
    detail = people.client.get(approved.headers["location"])
    assert "Complete" in detail.text and "Export ready for download" in detail.text

    mail = smtp.messages[-1]
    assert mail["To"] == KNOWN and mail["Subject"] == "Your privacy request is complete"
    link = re.search(r"https://chat\.example(/privacy/requests/\S+)", mail.get_content())
    assert link, mail.get_content()
    url = urlsplit(link.group(1))
    assert url.path == f"/privacy/requests/{request_id}/export"

    download = public.get(f"{url.path}?{url.query}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"].startswith("attachment;")
    package = download.json()
    assert package["manifest"]["organisation"] == "Alpha Cars"
    assert package["manifest"]["stores"]["persons"] == 1
    assert package["data"]["persons"][0]["email"] == KNOWN
    texts = [m["text"] for c in package["data"]["conversations"] for m in c["messages"]]
    assert CHAT_TEXT in texts

    readable = public.get(f"{url.path}?{url.query}&format=html")
    assert readable.status_code == 200 and "text/html" in readable.headers["content-type"]
    assert readable.headers["referrer-policy"] == "no-referrer"
    assert "Your information held by Alpha Cars" in readable.text
    assert str(escape(CHAT_TEXT)) in readable.text  # the transcript, escaped
    assert 'class="pv-transcript"' in readable.text and "Kim Known" in readable.text
    assert 'id="store-persons"' in readable.text and 'id="store-conversations"' in readable.text

    done = public.get(f"/privacy/requests/{request_id}")
    assert "Your copy is ready" in done.text


def test_a_californian_copy_asks_for_more_then_the_categories_show_no_values(
    world: World, public: httpx.Client, people: People, on_file: str, smtp: SmtpSink
) -> None:
    """R47 through the pages: the code alone is one detail; a copy needs three and a signed
    declaration, so the page asks for more; the person narrows it to the kinds of data held,
    gives their name (two details) and gets the categories, without a single value."""
    form = public.get(f"/privacy/{world.org_a}")
    assert 'name="declaration"' in form.text and "penalty of perjury" in form.text
    request_id = make_request(
        public, world, kind="access", email=KNOWN, california="true", access_scope="specific"
    )
    verified = act(public, request_id, "verify", code=code_for(smtp, KNOWN))
    assert verified.status_code == 303
    page = public.get(f"/privacy/requests/{request_id}")
    assert "Waiting for more details from you" in page.text
    assert "3 details that match what we hold and your signed declaration" in page.text
    assert 'action="/privacy/requests/' + request_id + '/identity"' in page.text
    refused = decide(people, request_id, "approve")
    assert refused.status_code == 409, refused.text[:300]  # not before enough details

    assert re.search(r'value="specific" id="f-scope-specific" checked', page.text)
    unsigned = act(public, request_id, "identity", declaration="true")
    assert (
        unsigned.status_code == 422 and "Sign the declaration with your full name." in unsigned.text
    )
    narrowed = act(public, request_id, "identity", name="kim known", access_scope="categories")
    assert narrowed.status_code == 303, narrowed.text[:300]
    assert "With Alpha Cars for review" in public.get(narrowed.headers["location"]).text
    assert decide(people, request_id, "approve").status_code == 303

    link = re.search(
        r"https://chat\.example(/privacy/requests/\S+)", smtp.messages[-1].get_content()
    )
    assert link, smtp.messages[-1].get_content()
    package = public.get(link.group(1)).json()
    assert package["manifest"]["scope"] == "categories" and "data" not in package
    assert package["categories"]["persons"]["records"] == 1
    assert KNOWN not in str(package) and "Kim Known" not in str(package)
    readable = public.get(link.group(1) + "&format=html")
    assert readable.status_code == 200
    assert "What Alpha Cars holds about you" in readable.text
    assert "email address" in readable.text and KNOWN not in readable.text


def test_the_more_details_form_keeps_a_categories_request_as_it_is(
    world: World, public: httpx.Client, on_file: str, smtp: SmtpSink
) -> None:
    request_id = make_request(
        public, world, kind="access", email=KNOWN, california="true", access_scope="categories"
    )
    act(public, request_id, "verify", code=code_for(smtp, KNOWN))
    page = public.get(f"/privacy/requests/{request_id}")
    assert "2 details that match what we hold" in page.text
    assert re.search(r'value="categories" id="f-scope-categories" checked', page.text)


def test_the_api_asks_a_californian_for_more_details(
    world: World, public: httpx.Client, on_file: str, smtp: SmtpSink
) -> None:
    sent = public.post(
        f"/api/privacy/{world.org_a}/requests",
        json={"kind": "deletion", "email": KNOWN, "regime": "ccpa"},
    )
    assert sent.status_code == 202, sent.text
    request_id = sent.json()["id"]
    verified = public.post(
        f"/api/privacy/requests/{request_id}/verify", json={"code": code_for(smtp, KNOWN)}
    )
    assert verified.json() == {
        "id": request_id,
        "state": "requires_input",
        "needs": "2 details that match what we hold",
    }
    bad = public.post(f"/api/privacy/requests/{request_id}/identity", json={"nickname": "Kim"})
    assert bad.status_code == 422
    more = public.post(f"/api/privacy/requests/{request_id}/identity", json={"name": "Kim Known"})
    assert more.json() == {"id": request_id, "state": "pending", "needs": None}


def test_a_bad_or_missing_download_token_is_404(
    world: World, public: httpx.Client, on_file: str
) -> None:
    request_id = make_request(public, world, kind="access", email=UNKNOWN)
    for query in ("?token=not-the-token", "", "?token=x&format=html"):
        page = public.get(f"/privacy/requests/{request_id}/export{query}")
        assert page.status_code == 404, query
        assert "This download link is not valid or has expired." in page.text
        assert "text/html" in page.headers["content-type"]
    assert public.get("/privacy/requests/" + "z" * 22 + "/export?token=x").status_code == 404


def test_deny_needs_a_reason_and_the_person_sees_it(
    world: World, public: httpx.Client, people: People, on_file: str, smtp: SmtpSink
) -> None:
    request_id = make_request(public, world, kind="deletion", email=KNOWN)
    assert act(public, request_id, "verify", code=code_for(smtp, KNOWN)).status_code == 303

    empty = decide(people, request_id, "deny", reason="  ")
    assert empty.status_code == 422
    assert "A denial needs a reason the person can read." in empty.text
    assert 'aria-invalid="true"' in empty.text
    assert "Needs your decision" in empty.text  # nothing changed

    reason = "We must keep sales records <for 6 years> (tax law)."
    no_basis = decide(people, request_id, "deny", reason=reason)
    assert no_basis.status_code == 422 and "Choose the basis of the refusal" in no_basis.text
    assert str(escape(reason)) in no_basis.text  # what was typed is kept
    denied = decide(people, request_id, "deny", reason=reason, basis="legal_obligation")
    assert denied.status_code == 303
    page = public.get(f"/privacy/requests/{request_id}")
    assert "Your request was refused" in page.text
    assert str(escape(reason)) in page.text
    assert str(escape(COMPLAINT_ROUTE)) in page.text
    review = people.client.get(f"/portal/privacy/{request_id}")
    assert "Refused: the law requires us to keep the information." in review.text


def test_an_agent_sends_the_authorisation_afterwards(
    world: World, public: httpx.Client, on_file: str
) -> None:
    request_id = make_request(public, world, kind="access", email=KNOWN, agent="true")
    page = public.get(f"/privacy/requests/{request_id}")
    assert "Waiting for the agent&#39;s authorisation" in page.text
    short = act(public, request_id, "designation", agent_designation="me")
    assert short.status_code == 422 and 'href="#f-agent_designation"' in short.text
    sent = act(
        public,
        request_id,
        "designation",
        agent_designation="Ann Agent, 1 High St, Leeds, ann@agents.example: act for Kim on access.",
    )
    assert sent.status_code == 303
    after = public.get(sent.headers["location"])
    assert "we have the agent&#39;s written authorisation" in after.text
    assert RECEIVED in after.text


def test_the_client_is_told_a_power_of_attorney_request_is_unconfirmed(
    world: World, public: httpx.Client, people: People, on_file: str
) -> None:
    request_id = make_request(
        public,
        world,
        kind="access",
        email=KNOWN,
        agent="true",
        power_of_attorney="true",
        agent_designation="Eve Attorney, 2 Low St, York, eve@law.example: power of attorney",
    )
    page = people.client.get(f"/portal/privacy/{request_id}")
    assert page.status_code == 200
    assert "The person has not confirmed this request themselves" in page.text
    assert "The person has confirmed it is them" not in page.text


def test_the_person_cancels_their_request_from_its_page_or_the_api(
    world: World, public: httpx.Client, on_file: str, live_server: LiveServer
) -> None:
    request_id = make_request(public, world, kind="deletion", email=KNOWN)
    page = public.get(f"/privacy/requests/{request_id}")
    assert "Cancel this request" in page.text
    cancelled = act(public, request_id, "cancel")
    assert cancelled.status_code == 303
    after = public.get(cancelled.headers["location"])
    assert "Your request is cancelled." in after.text and "This request was cancelled" in after.text
    assert "Cancel this request" not in after.text
    again = public.post(f"/api/privacy/requests/{request_id}/cancel")
    assert again.status_code == 409, again.text

    sent = httpx.post(
        f"{live_server.url}/api/privacy/{world.org_a}/requests",
        json={"kind": "access", "email": UNKNOWN},
    )
    by_api = httpx.post(f"{live_server.url}/api/privacy/requests/{sent.json()['id']}/cancel")
    assert by_api.json()["state"] == "canceled"


def test_the_client_sees_a_failed_request_and_closes_it(
    world: World, public: httpx.Client, people: People, on_file: str, smtp: SmtpSink
) -> None:
    sent = public.post(
        f"/api/privacy/{world.org_a}/requests",
        json={
            "kind": "correction",
            "email": KNOWN,
            "regime": "ccpa",
            "name": "Kim Known",
            "details": "postcode: 90210",  # a US ZIP code, for a UK dealer's customer
        },
    )
    request_id = sent.json()["id"]
    verified = public.post(
        f"/api/privacy/requests/{request_id}/verify", json={"code": code_for(smtp, KNOWN)}
    )
    assert verified.json()["state"] == "pending"
    approved = decide(people, request_id, "approve")
    assert approved.headers["location"].endswith("?done=failed")
    page = people.client.get(approved.headers["location"])
    assert "could not be carried out" in page.text and "not a UK postcode" in page.text
    closed = decide(people, request_id, "close")
    assert closed.status_code == 303
    assert "Cancelled" in people.client.get(closed.headers["location"]).text


def test_an_opt_out_is_applied_at_once(world: World, public: httpx.Client) -> None:
    request_id = make_request(public, world, kind="opt_out", email=UNKNOWN)
    page = public.get(f"/privacy/requests/{request_id}")
    assert "Your opt-out has been applied" in page.text
    assert "Waiting for your code" not in page.text


# ---- the portal ------------------------------------------------------------------------------


def test_operators_may_not_see_or_decide_requests(
    world: World, public: httpx.Client, people: People
) -> None:
    request_id = make_request(public, world, kind="access", email=UNKNOWN)
    op = people.operator
    assert op.get("/portal/privacy").status_code == 403
    assert op.get(f"/portal/privacy/{request_id}").status_code == 403
    assert op.post(f"/portal/privacy/{request_id}/approve", data={}).status_code == 403
    assert op.get("/api/privacy/requests").status_code == 403
    assert op.post(f"/api/privacy/requests/{request_id}/approve").status_code == 403
    assert people.client.get(f"/portal/privacy/{request_id}").status_code == 200


def test_the_queue_filters_and_another_organisations_request_is_404(
    world: World, live_server: LiveServer, people: People
) -> None:
    theirs = httpx.post(
        f"{live_server.url}/api/privacy/{world.org_b}/requests",
        json={"kind": "access", "email": UNKNOWN},
    )
    assert theirs.status_code == 202
    other = theirs.json()["id"]
    assert people.client.get(f"/portal/privacy/{other}").status_code == 404
    assert other not in people.client.get("/portal/privacy").text
    assert people.client.get("/portal/privacy?state=nonsense").status_code == 422


# ---- the JSON API --------------------------------------------------------------------------------


def test_the_api_takes_requests_and_decisions(
    world: World, live_server: LiveServer, people: People, on_file: str, smtp: SmtpSink
) -> None:
    base = live_server.url
    made = httpx.post(
        f"{base}/api/privacy/{world.org_a}/requests",
        json={"kind": "correction", "email": KNOWN, "details": "name: Kim Known-Better"},
    )
    assert made.status_code == 202, made.text
    body = made.json()
    assert set(body) == {"id", "state", "message", "due_at"}
    assert (body["state"], body["message"]) == ("identity_unverified", RECEIVED)
    request_id = body["id"]

    bad = httpx.post(
        f"{base}/api/privacy/{world.org_a}/requests",
        json={"kind": "correction", "email": KNOWN, "details": "wrong"},
    )
    assert bad.status_code == 422 and "field: new value" in bad.json()["detail"]
    assert bad.json()["code"] == "invalid_input"
    opted = httpx.post(
        f"{base}/api/privacy/{world.org_a}/requests", json={"kind": "opt_out", "email": KNOWN}
    )
    assert opted.json()["state"] == "complete" and "opt-out is applied" in opted.json()["message"]
    unknown = httpx.post(
        f"{base}/api/privacy/{'y' * 22}/requests", json={"kind": "access", "email": KNOWN}
    )
    assert unknown.status_code == 404

    verify = f"{base}/api/privacy/requests/{request_id}/verify"
    code = code_for(smtp, KNOWN)
    assert httpx.post(verify, json={"code": "x"}).status_code == 422
    assert httpx.post(verify, json={"code": code}).json()["state"] == "pending"

    listed = people.client.get("/api/privacy/requests", params={"state": "pending"})
    assert request_id in [r["id"] for r in listed.json()["requests"]]
    one = people.client.get(f"/api/privacy/requests/{request_id}").json()
    assert one["details"] == "name: Kim Known-Better"
    assert [e["to"] for e in one["events"]][-1] == "pending"

    url = f"/api/privacy/requests/{request_id}/approve"
    no_csrf = people.client.http.post(url, headers={"X-CSRF-Token": ""})
    assert no_csrf.status_code == 403
    deny_url = f"/api/privacy/requests/{request_id}/deny"
    assert people.client.post(deny_url, json={"reason": "no"}).status_code == 422
    no_basis = people.client.post(deny_url, json={"reason": "Manifestly unfounded."})
    assert no_basis.status_code == 422  # a reason code is required too (R53)
    bad_basis = people.client.post(
        deny_url, json={"reason": "Manifestly unfounded.", "basis": "because"}
    )
    assert bad_basis.status_code == 422 and "basis of the refusal" in bad_basis.json()["detail"]
    done = people.client.post(url)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "complete" and done.json()["details"] is None

    spec = httpx.get(f"{base}/openapi.json").json()
    tagged = {
        path
        for path, ops in spec["paths"].items()
        for op in ops.values()
        if "privacy" in op.get("tags", [])
    }
    assert "/api/privacy/{organisation_id}/requests" in tagged
    assert not [p for p in spec["paths"] if p.startswith("/privacy")]  # the pages are not API
    assert json.dumps(spec).count("RequestDetailOut") > 0
