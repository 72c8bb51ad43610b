"""A webhook receiver on loopback for delivery tests: real HTTP, scripted failures, a full record.

It runs its own event loop in a thread, so in-process workers (any event loop) and ``confide
worker`` subprocesses post to it alike. A *policy* decides each reply from the path and the
``Idempotency-Key``: a status, a delay, or a dropped connection. Every request is recorded; a 2xx
request counts as *stored* (the receiver's CRM has it) even when the answer is then lost, which is
exactly the case at-least-once delivery and receiver-side de-duplication exist for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confide.testing import free_port

#: How long a handler may wait for a request's bytes before giving up on the connection.
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    #: Seconds to wait before answering (the sender sees a slow receiver).
    delay_s: float = 0.0
    #: Close the connection without answering. With a 2xx status the body is stored first, so
    #: the sender cannot know it landed and will send it again.
    drop: bool = False


@dataclass(frozen=True)
class Received:
    path: str
    key: str
    signature: str
    body: bytes
    #: Unix seconds at arrival: the ``now`` to verify the signature's timestamp against.
    at: int
    status: int
    dropped: bool
    #: Every header, names in lower case.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def stored(self) -> bool:
        return 200 <= self.status < 300


Policy = Callable[[str, str], Reply]


def always(status: int = 200, delay_s: float = 0.0) -> Policy:
    return lambda _path, _key: Reply(status, delay_s)


class Receiver:
    """``with Receiver(policy) as r: ... r.url("/hook") ... r.stored()``."""

    def __init__(self, policy: Policy | None = None) -> None:
        #: Replaceable at any time from the test's thread (one attribute store is atomic).
        self.policy: Policy = policy or always()
        self.port = free_port()
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._inflight: collections.Counter[str] = collections.Counter()
        self._held = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Receiver:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        started.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._held = False
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [
            t
            for t in asyncio.all_tasks(self._loop)
            if t is not asyncio.current_task() and not t.done()
        ]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- what arrived -----------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def stored(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if r.stored and (path is None or r.path == path)]

    def stored_keys(self, path: str | None = None) -> collections.Counter[str]:
        return collections.Counter(r.key for r in self.stored(path))

    def inflight(self) -> set[str]:
        """Idempotency keys of the requests read but not yet answered (or dropped)."""
        with self._lock:
            return set(+self._inflight)

    def hold(self) -> None:
        """From now on no request is answered until :meth:`release`: those in flight stay so."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False

    def _may_answer(self, key: str) -> bool:
        """Leave the in-flight set unless held, atomically with :meth:`hold`: a request is
        either answered before the hold or stays in flight until the release."""
        with self._lock:
            if self._held:
                return False
            self._inflight[key] -= 1
            return True

    # --- HTTP/1.1, just enough ----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            writer.close()
            return
        key = headers.get("idempotency-key", "")
        reply = self.policy(path, key)
        with self._lock:
            self._requests.append(
                Received(
                    path=path,
                    key=key,
                    signature=headers.get("confide-signature", ""),
                    body=body,
                    at=int(time.time()),
                    status=reply.status,
                    dropped=reply.drop,
                    headers=tuple(headers.items()),
                )
            )
            self._inflight[key] += 1
        answered = False
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            while not (answered := self._may_answer(key)):
                await asyncio.sleep(0.02)
            if not reply.drop:
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                with contextlib.suppress(OSError):
                    await writer.drain()
        finally:
            if not answered:  # cancelled while waiting (the receiver is stopping)
                with self._lock:
                    self._inflight[key] -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
