"""Protocol v1 frames: parsing and validation of what clients send, building what we send.

Validation is hand-written rather than pydantic because it runs for every frame on the hot path;
each frame type declares its fields in ``CLIENT_FRAMES`` and nothing else is accepted.
See docs/protocol.md for the contract this module implements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

VERSION: Final = 1
#: 16 KB: far above a 4,000-character message in its envelope, far below anything that hurts memory.
MAX_FRAME_BYTES: Final = 16 * 1024
MAX_TEXT_CHARS: Final = 4000
MAX_NAME_CHARS: Final = 100
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{10,32}$")
_VISIT_ID = re.compile(r"^[A-Za-z0-9_-]{16,40}$")


class ProtocolError(Exception):
    """A frame that cannot be processed; answered with an ``error`` frame, nothing changes."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def _is_conversation(v: Any) -> bool:
    return isinstance(v, str) and bool(_CONVERSATION_ID.match(v))


def _is_client_id(v: Any) -> bool:
    return isinstance(v, str) and bool(_CLIENT_ID.match(v))


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_seq(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_short_str(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 2048


def _is_page(v: Any) -> bool:
    return isinstance(v, dict) and all(
        k in ("path", "title") and isinstance(x, str) and len(x) <= 2048 for k, x in v.items()
    )


def _is_signals(v: Any) -> bool:
    return isinstance(v, dict) and all(
        k in ("dnt", "gpc") and isinstance(x, bool) for k, x in v.items()
    )


def _is_visit(v: Any) -> bool:
    return isinstance(v, str) and bool(_VISIT_ID.match(v))


def _is_invitation(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 500


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_NAME_CHARS


def _is_id(v: Any) -> bool:
    return isinstance(v, str) and _CONVERSATION_ID.match(v) is not None


def _is_answer(v: Any) -> bool:
    return v in ("granted", "denied", "withdrawn")


def _is_score(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5


def _is_comment(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 1000


def _is_detail(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 200


def _is_version(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


Spec = dict[str, tuple[Any, bool]]  # field -> (check, required)

_CONV: Spec = {"conversation": (_is_conversation, True)}
CLIENT_FRAMES: Final[dict[str, dict[str, Spec]]] = {
    "widget": {
        "hello": {
            "v": (_is_version, True),
            "token": (_is_short_str, False),
            "host": (_is_short_str, False),
            "page": (_is_page, False),
            "signals": (_is_signals, False),
        },
        "open": {"name": (_is_name, False), "visit": (_is_visit, False)},
        "send": {**_CONV, "client_id": (_is_client_id, True), "text": (_is_text, True)},
        "typing": {**_CONV, "typing": (_is_bool, True)},
        "seen": {**_CONV, "seq": (_is_seq, True)},
        "sync": {**_CONV, "after": (_is_seq, True)},
        "close": _CONV,
        "ping": {},
        "consent": {**_CONV, "request": (_is_id, True), "answer": (_is_answer, True)},
        "rate": {**_CONV, "score": (_is_score, True), "comment": (_is_comment, False)},
        "transcript": {**_CONV, "email": (_is_detail, True)},
        "details": {
            **_CONV,
            "name": (_is_detail, False),
            "email": (_is_detail, False),
            "phone": (_is_detail, False),
            "postcode": (_is_detail, False),
        },
    },
    "console": {
        "hello": {"v": (_is_version, True)},
        "send": {**_CONV, "client_id": (_is_client_id, True), "text": (_is_text, True)},
        "typing": {**_CONV, "typing": (_is_bool, True)},
        "seen": {**_CONV, "seq": (_is_seq, True)},
        "sync": {**_CONV, "after": (_is_seq, True)},
        "accept": _CONV,
        "join": {**_CONV, "after": (_is_seq, False)},
        "leave": _CONV,
        "close": _CONV,
        "invite": {"visit": (_is_visit, True), "text": (_is_invitation, False)},
        "ping": {},
    },
}


@dataclass(slots=True)
class Frame:
    type: str
    data: dict[str, Any]
    ref: str | None


def parse(raw: str | bytes, audience: str) -> Frame:
    """Parse and validate one client frame, or raise :class:`ProtocolError`."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > MAX_FRAME_BYTES:
        raise ProtocolError("frame_too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError("bad_frame", "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_frame", "A frame must be a JSON object.")
    ref = data.pop("ref", None)
    if ref is not None and not (isinstance(ref, str) and len(ref) <= 64):
        raise ProtocolError("bad_frame", "ref must be a string of at most 64 characters.")
    kind = data.pop("type", None)
    specs = CLIENT_FRAMES[audience]
    if not isinstance(kind, str) or kind not in specs:
        raise ProtocolError("unknown_type", f"Unknown frame type {str(kind)[:40]!r}.", ref)
    spec = specs[kind]
    for name, value in data.items():
        check = spec.get(name)
        if check is None:
            raise ProtocolError("bad_frame", f"Unexpected field {name[:40]!r} in {kind}.", ref)
        if not check[0](value):
            raise ProtocolError("bad_frame", f"Field {name!r} of {kind} is not valid.", ref)
    for name, (_check, required) in spec.items():
        if required and name not in data:
            raise ProtocolError("bad_frame", f"Field {name!r} is required in {kind}.", ref)
    return Frame(kind, data, ref)


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def error_frame(code: str, message: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    frame.update(extra)
    return frame
