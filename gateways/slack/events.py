"""Slack payloads in, chat events out: the pure part of the Slack gateway, and ``Threads``,
the memory of recent messages' threads that its inbound and outbound halves share.

Shapes are Slack's (https://docs.slack.dev/reference/events/message,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload); the events
are those of ``docs/specs/chat.md`` (``layer/types.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from gateways.chat_checks import is_unicode
from gateways.containers import BoundedMap
from layer.types import ChatAttachment

__all__ = [
    "DELIVERED_SUBTYPES",
    "SIGNATURE_WINDOW",
    "NotJsonMessages",
    "Refusal",
    "Threads",
    "action_value",
    "attachments",
    "channel_kind",
    "check_request",
    "envelope_problem",
    "mentions",
    "thread_of",
]

#: ``message`` subtypes delivered as ``chat.message``: a plain message (no subtype), one with
#: files, a thread reply also sent to the channel, a ``/me`` message, another bot's message.
#: Edits, deletions, joins and the like are not messages to answer.
DELIVERED_SUBTYPES = frozenset(
    {None, "file_share", "thread_broadcast", "me_message", "bot_message"}
)


#: Seconds a request's ``X-Slack-Request-Timestamp`` may be off the local clock
#: (https://docs.slack.dev/authentication/verifying-requests-from-slack: five minutes).
SIGNATURE_WINDOW = 300

#: Keys read as text: a value of another type (but ``null``) makes the payload malformed.
_TEXT_KEYS = frozenset(
    {
        "api_app_id",
        "bot_id",
        "challenge",
        "channel_id",
        "channel_name",
        "channel_type",
        "enterprise_id",
        "event_id",
        "id",
        "message_ts",
        "name",
        "reaction",
        "response_url",
        "team_id",
        "thread_ts",
        "trigger_id",
        "ts",
        "user_id",
        "user_name",
        "user_team",
        "username",
    }
)
#: Text keys that Bolt's listener matchers read with ``re.search``: not even ``null``.
_STRICT_TEXT_KEYS = frozenset({"action_id", "block_id", "callback_id", "command", "type"})
#: Keys naming a user, channel, team or enterprise: an id (text) or an object.
_REF_KEYS = frozenset({"channel", "enterprise", "team", "user"})
#: Keys holding an object.
_OBJECT_KEYS = frozenset(
    {
        "assistant_thread",
        "container",
        "event",
        "function",
        "function_data",
        "item",
        "message",
        "previous_message",
        "selected_option",
        "view",
    }
)
#: Keys holding a list of objects (``actions``: at least one in an interaction, as Bolt's
#: ``to_action`` reads ``actions[0]``).
_LIST_KEYS = frozenset({"actions", "authorizations", "response_urls"})
#: Interaction types whose ``actions`` Bolt reads.
_INTERACTIONS = frozenset({"block_actions", "interactive_message"})
#: How deep objects may nest through the keys above (Slack's go three or four deep).
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an Events API request is refused, for its HTTP answer and its one log line.

    Attributes:
        status: The HTTP status: 400 (malformed body), 401 (signature or timestamp wrong).
        reason: What was wrong, in words; it quotes no part of the body and no secret.
    """

    status: int
    reason: str


def check_request(
    raw: bytes, headers: Mapping[str, str], verifier: SignatureVerifier
) -> Refusal | None:
    """Check an Events API request before Bolt parses it: ``None`` when Bolt may take it.

    In order: the timestamp (``X-Slack-Request-Timestamp``, Unix seconds, within
    ``SIGNATURE_WINDOW`` of the local clock) and the signature (``X-Slack-Signature``, the
    HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret) are checked first, so
    an unsigned request is a 401 whatever its body; then the body must be UTF-8 and parse as
    Bolt parses it (JSON, or a form whose ``payload`` is JSON, or a slash command's form) to
    an object of the shape ``envelope_problem`` checks, else 400. Source:
    https://docs.slack.dev/authentication/verifying-requests-from-slack.

    Args:
        raw: The request body as received (its size is bounded by the HTTP server).
        headers: The request headers (case-insensitive mapping, as aiohttp's).
        verifier: slack_sdk's verifier, holding the signing secret.
    """
    stamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not stamp or not signature:
        return Refusal(401, "no X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        seconds = int(stamp)
    except ValueError:
        return Refusal(401, "X-Slack-Request-Timestamp is not a number")
    if abs(time.time() - seconds) > SIGNATURE_WINDOW:
        return Refusal(401, f"X-Slack-Request-Timestamp is over {SIGNATURE_WINDOW} s off")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Slack signs the bytes it sends; a body that is not UTF-8 can't be signed by Slack.
    if text is None or not verifier.is_valid(text, stamp, signature):
        return Refusal(401, "the signature does not match")
    content_type = headers.get("Content-Type")
    try:
        body = parse_body(text, content_type.split(";")[0] if content_type else None)
    except (ValueError, RecursionError):
        return Refusal(400, "the body (or its payload field) is not JSON")
    problem = envelope_problem(body)
    return None if problem is None else Refusal(400, problem)


def envelope_problem(body: Any) -> str | None:
    """What makes a Slack payload (an Events API body, a Socket Mode envelope's ``payload``,
    a slash command's or an interaction's fields) malformed, or ``None``.

    Checked: it is an object; ids and names (``_TEXT_KEYS``) are text or ``null``; ``type``,
    ``command``, ``action_id``... are text; ``user``, ``channel``, ``team``, ``enterprise``
    are an id or an object; ids and names are valid Unicode (no lone surrogate); ``event``,
    ``item``, ``message``... are objects; ``actions``, ``authorizations``,
    ``response_urls`` lists of objects (``actions`` not empty in an interaction); all of
    it at most ``_MAX_DEPTH``
    objects deep. What Bolt and the gateway read is then of the type they expect; a
    message is quoted by its key path only (``body.event.item``), never by its values.
    """
    return _problem(body, "body", 0)


def _problem(value: Any, where: str, depth: int) -> str | None:
    if not isinstance(value, dict):
        return f"{where} is {_kind(value)}, not an object"
    if depth > _MAX_DEPTH:
        return f"{where} is nested over {_MAX_DEPTH} objects deep"
    for key, item in value.items():
        path = f"{where}.{key}"
        found: str | None = None
        if key in _STRICT_TEXT_KEYS or key in _TEXT_KEYS:
            if not isinstance(item, str) and (key in _STRICT_TEXT_KEYS or item is not None):
                found = f"{path} is {_kind(item)}, not a string"
            elif isinstance(item, str) and not is_unicode(item):
                found = f"{path} is not valid Unicode (a lone surrogate)"
        elif key in _REF_KEYS:
            if isinstance(item, dict):
                found = _problem(item, path, depth + 1)
            elif item is not None and not isinstance(item, str):
                found = f"{path} is {_kind(item)}, not an id or an object"
            elif isinstance(item, str) and not is_unicode(item):
                found = f"{path} is not valid Unicode (a lone surrogate)"
        elif key in _OBJECT_KEYS:
            found = _problem(item, path, depth + 1)
        elif key in _LIST_KEYS:
            if not isinstance(item, list):
                found = f"{path} is {_kind(item)}, not a list"
            elif not item and key == "actions" and value.get("type") in _INTERACTIONS:
                found = f"{path} is empty"
            for index, element in enumerate(item if isinstance(item, list) else []):
                found = found or _problem(element, f"{path}[{index}]", depth + 1)
        if found is not None:
            return found
    return None


def _kind(value: Any) -> str:
    """A JSON value's kind, for messages: ``"a string"``, ``"null"``, ``"an array"``."""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), "a number")


#: How slack_sdk's Socket Mode client starts the lines of its parse failures.
_SDK_PARSING = ("Failed to process a message", "Failed to run message listeners")


class NotJsonMessages(logging.Filter):
    """A filter for the logger given to slack_sdk's Socket Mode client: a WebSocket message
    that is not JSON (or nests too deep to parse), or an envelope whose ``payload`` is not an
    object, is logged there with its traceback (``logger.exception("Failed to process a
    message...")``, ``"Failed to run message listeners..."``); this makes it one WARNING line,
    naming the gateway, without the traceback. The client has dropped the message already
    and its connection stays up. Other records pass unchanged.

    Args:
        gateway: The gateway's name, for the line.
    """

    def __init__(self, gateway: str) -> None:
        super().__init__()
        self.gateway = gateway

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a parse failure's record in place (allowed since Python 3.2); keep all."""
        error = record.exc_info[1] if record.exc_info else None
        where = str(record.msg)
        if isinstance(error, ValueError | RecursionError) and where.startswith(_SDK_PARSING):
            record.msg = "Gateway %r: dropped a malformed Socket Mode message (%s)"
            record.args = (self.gateway, type(error).__name__)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class Threads:
    """The thread of each recent Slack message, by channel and ``ts``: what a reaction or a
    ``reply_to`` needs, since Slack names a message by its channel and ``ts`` only.

    The gateway owns it: its inbound half remembers the messages that arrive, its outbound
    half the ones it posts and asks where a reply goes. Memory: at most ``size`` messages,
    the least recently used forgotten first (``gateways.containers.BoundedMap``).

    Args:
        size: How many messages are remembered (``dedupe_size``), at least 1.
    """

    def __init__(self, size: int) -> None:
        self._threads: BoundedMap[tuple[str, str], str | None] = BoundedMap(size)

    def __len__(self) -> int:
        return len(self._threads)

    def remember(self, channel: str, ts: str, thread: str | None) -> None:
        """Remember that message ``ts`` of ``channel`` is in ``thread`` (``None``: top level)."""
        self._threads.put((channel, ts), thread)

    def get(self, channel: str, ts: str) -> str | None:
        """The thread message ``ts`` of ``channel`` is in: ``None`` for a top-level message or
        one not seen lately."""
        return self._threads.get((channel, ts))

    def reply_thread(self, channel: str, ts: str) -> str:
        """The thread a reply to message ``ts`` goes in: the message's own thread, else the
        thread the reply starts under it (a thread's ``thread_ts`` is its parent's ``ts``,
        https://docs.slack.dev/reference/methods/chat.postMessage)."""
        return self.get(channel, ts) or ts


def channel_kind(channel_id: str, channel_type: str | None = None) -> Literal["direct", "group"]:
    """``"direct"`` for a DM, ``"group"`` for a channel, private channel or group DM.

    From the event's ``channel_type`` (``im`` is a DM) when it has one, else from the
    channel id: DM ids start with ``D``.
    """
    if channel_type is not None:
        return "direct" if channel_type == "im" else "group"
    return "direct" if channel_id.startswith("D") else "group"


def thread_of(message: dict[str, Any]) -> str | None:
    """The thread a message is a reply in (its ``thread_ts``), ``None`` for a top-level
    message (a thread's parent has ``thread_ts == ts``)."""
    thread_ts = message.get("thread_ts")
    if not isinstance(thread_ts, str) or not thread_ts or thread_ts == message.get("ts"):
        return None
    return thread_ts


def mentions(text: str, bot_user_id: str) -> bool:
    """Whether ``text`` mentions the bot user (Slack's ``<@U123>`` or ``<@U123|name>``)."""
    return f"<@{bot_user_id}>" in text or f"<@{bot_user_id}|" in text


def attachments(files: Any) -> list[ChatAttachment]:
    """Slack file objects (``files`` of a message) as chat attachments."""
    if not isinstance(files, list):
        return []
    found: list[ChatAttachment] = []
    for item in files:
        if not isinstance(item, dict):
            continue
        size = item.get("size")
        found.append(
            {
                "name": item.get("name") or item.get("title"),
                "url": item.get("url_private") or item.get("permalink"),
                "mimetype": item.get("mimetype"),
                "size": size if isinstance(size, int) else None,
            }
        )
    return found


def action_value(action: dict[str, Any]) -> str | None:
    """A block action's value: a button's ``value``, or a menu's selected option's."""
    value = action.get("value")
    if isinstance(value, str):
        return value
    selected = action.get("selected_option")
    if isinstance(selected, dict) and isinstance(selected.get("value"), str):
        return str(selected["value"])
    return None
