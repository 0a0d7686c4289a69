"""Slack payloads in, chat events out: the pure part of the Slack gateway.

Shapes are Slack's (https://docs.slack.dev/reference/events/message,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload); the events
are those of ``docs/specs/chat.md`` (``layer/types.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, Literal, TypeVar

from layer.types import ChatAttachment

__all__ = [
    "DELIVERED_SUBTYPES",
    "BoundedMap",
    "Recent",
    "action_value",
    "attachments",
    "channel_kind",
    "mentions",
    "thread_of",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: ``message`` subtypes delivered as ``chat.message``: a plain message (no subtype), one with
#: files, a thread reply also sent to the channel, a ``/me`` message, another bot's message.
#: Edits, deletions, joins and the like are not messages to answer.
DELIVERED_SUBTYPES = frozenset(
    {None, "file_share", "thread_broadcast", "me_message", "bot_message"}
)


class Recent(Generic[K]):
    """The last ``size`` keys seen: ``add`` says whether a key is new (bounded memory)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[K, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: K) -> bool:
        """Remember ``key``; False when it was remembered already."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True


class BoundedMap(Generic[K, V]):
    """A mapping that forgets its least recently used entries past ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)


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
