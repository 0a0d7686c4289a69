"""The web chat wire protocol's frames (``docs/webchat.md``, *Wire protocol*): JSON
objects in WebSocket text frames, each with a ``type``.

From the page: ``hello`` (first, once), ``message``, ``ack``. From the gateway:
``welcome``, ``message``, ``reaction``, ``typing``, ``ack``, ``error``. Keys a frame does not
define are ignored, so that a newer page works with an older gateway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLOSE_DUPLICATE",
    "CLOSE_HELLO",
    "CLOSE_HELLO_TIMEOUT",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_LATER",
    "CLOSE_UNAUTHORIZED",
    "Ack",
    "Hello",
    "MalformedFrame",
    "Say",
    "error_frame",
    "parse_frame",
]

#: Close codes (RFC 6455 section 7.4.1 for 1008, 1009 and 1013; 4000-4999 are the
#: application's, section 7.4.2).
CLOSE_POLICY = 1008  # a session that goes on sending over its rate
CLOSE_TOO_BIG = 1009  # a frame over 4 x max_message_bytes (aiohttp's own limit)
CLOSE_TRY_LATER = 1013  # max_sessions are live
CLOSE_HELLO = 4400  # the first frame was not a valid hello
CLOSE_UNAUTHORIZED = 4401  # the token was refused, expired, or is required and missing
CLOSE_HELLO_TIMEOUT = 4408  # no hello within hello_timeout
CLOSE_DUPLICATE = 4409  # the session was opened by another socket (another tab)

#: A message id the page gives: 1 to 64 of letters, digits, ``_ . : -``.
MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class MalformedFrame(Exception):
    """A frame that is not one of the protocol's; ``reason`` says why (no frame content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Hello:
    """``hello``: ``session`` (the resume secret of ``welcome``, or ``None`` for a new
    session), ``ack`` (the last ``seq`` the page showed, 0 for none) and ``token`` (the host
    site's token, or ``None``)."""

    session: str | None
    ack: int
    token: str | None


@dataclass(frozen=True, slots=True)
class Say:
    """``message``: ``id`` (the page's message id, unique in its session) and ``text``."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Ack:
    """``ack``: the page showed every answer up to ``seq``."""

    seq: int


def _count(frame: dict[str, Any], key: str) -> int:
    value = frame.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise MalformedFrame(f"{key!r} must be an integer from 0 to 2**53 - 1")
    return value


def _optional_str(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > 8192):
        raise MalformedFrame(f"{key!r} must be a string (of at most 8192 characters) or null")
    return value


def parse_frame(data: str) -> Hello | Say | Ack:
    """The frame a page sent, from the text of a WebSocket text frame.

    Raises:
        MalformedFrame: Not JSON, not an object, an unknown ``type``, or a key missing or of
            the wrong type.
    """
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        raise MalformedFrame("not JSON") from None
    if not isinstance(frame, dict):
        raise MalformedFrame(f"a frame is a JSON object, not {type(frame).__name__}")
    kind = frame.get("type")
    if kind == "message":
        message_id, text = frame.get("id"), frame.get("text")
        if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
            raise MalformedFrame("'id' must be 1-64 of letters, digits, '_', '.', ':', '-'")
        if not isinstance(text, str) or not text.strip():
            raise MalformedFrame("'text' must be a non-blank string")
        return Say(message_id, text)
    if kind == "ack":
        return Ack(_count(frame, "seq"))
    if kind == "hello":
        return Hello(
            _optional_str(frame, "session"), _count(frame, "ack"), _optional_str(frame, "token")
        )
    shown = kind if isinstance(kind, str) and len(kind) <= 40 else type(kind).__name__
    raise MalformedFrame(f"unknown frame type {shown!r}; known: hello, message, ack")


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An ``error`` frame: ``code`` (``malformed``, ``too_large``, ``rate_limited``,
    ``unauthorized``, ``busy``, ``unavailable``, ``hello``), ``message`` (for people), and
    ``extra`` keys (``id``, ``retry_after``, ``limit``)."""
    return {"type": "error", "code": code, "message": message, **extra}
