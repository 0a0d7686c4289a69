"""Slack payloads in, chat events out: the pure part of the Slack gateway, and ``Threads``,
the memory of recent messages' threads that its inbound and outbound halves share.

Shapes are Slack's (https://docs.slack.dev/reference/events/message,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload); the events
are those of ``docs/specs/chat.md`` (``layer/types.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from gateways.containers import BoundedMap
from layer.types import ChatAttachment

__all__ = [
    "DELIVERED_SUBTYPES",
    "Threads",
    "action_value",
    "attachments",
    "channel_kind",
    "mentions",
    "thread_of",
]

#: ``message`` subtypes delivered as ``chat.message``: a plain message (no subtype), one with
#: files, a thread reply also sent to the channel, a ``/me`` message, another bot's message.
#: Edits, deletions, joins and the like are not messages to answer.
DELIVERED_SUBTYPES = frozenset(
    {None, "file_share", "thread_broadcast", "me_message", "bot_message"}
)


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
