"""Text messages to a phone on file: one-time codes and answers to privacy requests.

An SMS provider is outside our control, so the way out is configuration:

- ``CONFIDE_SMS_WEBHOOK_URL``: each text is POSTed as JSON ``{"to": "+44…", "text": "…"}`` to
  the provider's HTTP API (or a relay in front of it), with ``Authorization: Bearer
  CONFIDE_SMS_WEBHOOK_TOKEN`` when a token is set. Sent beside the request (a code must not wait
  for a worker); a failure is logged without the number.
- ``mail_dir`` (``confide demo``): each text is written as a ``.sms.txt`` file beside the
  emails, so the demo's phone-only requests can be verified.
- neither: nothing can be texted. :attr:`Texter.configured` is false, so the service sends a code
  by text only where it can (an email on file is used instead) and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

import httpx

from confide.clock import utcnow
from confide.settings import Settings

log = logging.getLogger(__name__)


class Texter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return bool(self.settings.sms_webhook_url or self.settings.mail_dir)

    def __call__(self, to: str, text: str) -> None:
        if self.settings.sms_webhook_url:
            task = asyncio.get_running_loop().create_task(self._post(to, text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.settings.mail_dir:
            _write_text(Path(self.settings.mail_dir), to, text)
        else:
            log.warning("a text message was not sent: no SMS gateway (CONFIDE_SMS_WEBHOOK_URL)")

    async def _post(self, to: str, text: str) -> None:
        headers = {"Content-Type": "application/json"}
        if self.settings.sms_webhook_token:
            headers["Authorization"] = f"Bearer {self.settings.sms_webhook_token}"
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    self.settings.sms_webhook_url, json={"to": to, "text": text}, headers=headers
                )
            response.raise_for_status()
        except httpx.HTTPError as exc:  # never the number in the log
            log.warning("text message not sent: %s", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for texts on their way (shutdown, tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _write_text(folder: Path, to: str, text: str) -> None:
    """Written whole then renamed, owner-only (a code and a number), like the demo's emails."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.sms.txt"
    partial = folder / f".{name}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"To: {to}\n\n{text}\n")
    partial.rename(folder / name)
