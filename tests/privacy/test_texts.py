"""Codes by text message (privacy/texts.py): through an SMS gateway's HTTP API, as files in the
demo's mail folder, or, with neither, by the email on file instead of a text nobody sends."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from confide.privacy.models import VerificationCode
from confide.privacy.service import Intake
from confide.privacy.texts import Texter
from confide.settings import Settings
from tests.delivery.receiver import Receiver
from tests.leads.helpers import SmtpSink
from tests.privacy.test_rights_e2e import World, build_world, count, mailed_code, run, seed_subject


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def _texted_code(text: str) -> str:
    found = re.search(r"code: (\d{6})", text)
    assert found, text
    return found.group(1)


async def _with(w: World, settings: Settings) -> None:
    """The world's service, rebuilt with ``settings`` (a gateway or a folder)."""
    sms = Texter(settings)
    w.ctx.privacy.settings = settings
    w.ctx.privacy._texter = sms
    w.ctx.privacy.sms = sms


def test_a_code_goes_to_the_sms_gateway(database_url: str, smtp: SmtpSink) -> None:
    token = secrets.token_hex(8)

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            with Receiver() as gateway:
                settings = w.ctx.settings.model_copy(
                    update={"sms_webhook_url": gateway.url("/sms"), "sms_webhook_token": token}
                )
                await _with(w, settings)
                sub = await seed_subject(w, lead=False)
                req = await w.ctx.privacy.submit(w.org_id, Intake("access", phone=sub.phone))
                await w.ctx.privacy.drain_texts()
                (sent,) = [r for r in gateway.requests if r.path == "/sms"]
                body = json.loads(sent.body)
                assert body["to"] == sub.phone
                verified = await w.ctx.privacy.verify(req.id, _texted_code(body["text"]))
                assert verified.state == "pending"
                assert dict(sent.headers)["authorization"] == f"Bearer {token}"
        finally:
            await w.ctx.stop()

    run(go())


def test_the_demo_writes_texts_beside_its_emails(
    database_url: str, smtp: SmtpSink, tmp_path: Path
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            await _with(w, w.ctx.settings.model_copy(update={"mail_dir": str(tmp_path)}))
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("deletion", phone=sub.phone))
            (text,) = tmp_path.glob("*.sms.txt")
            assert text.stat().st_mode & 0o077 == 0  # the owner's only: a code and a number
            content = text.read_text()
            assert content.startswith(f"To: {sub.phone}\n")
            assert (await w.ctx.privacy.verify(req.id, _texted_code(content))).state == "pending"
        finally:
            await w.ctx.stop()

    run(go())


def test_without_a_gateway_the_code_goes_to_the_email_on_file(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            assert not w.ctx.privacy.can_text
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("access", phone=sub.phone))
            assert await count(w, VerificationCode, VerificationCode.channel == "email") >= 1
            verified = await w.ctx.privacy.verify(req.id, mailed_code(smtp, sub.email))
            assert verified.state == "pending" and verified.person_ids == [sub.person_id]
        finally:
            await w.ctx.stop()

    run(go())
