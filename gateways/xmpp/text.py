"""Reading XMPP messages: mentions of the bot, delayed delivery, ids, the raw payload.

A multi-user chat mentions an occupant by writing its nickname (XEP-0045 section 7.4 has no
markup for it; clients complete ``nick: `` at the start, or write the nick anywhere).
Delayed delivery (XEP-0203) marks what a room replays on join (XEP-0045 section 7.2.15)
and what the server stored while the bot was away.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["is_delayed", "mentions_nick", "message_id", "raw_message"]


def mentions_nick(text: str, nick: str) -> bool:
    """Whether ``text`` mentions ``nick``: the nick as a word of its own (``@nick`` too),
    anywhere, compared without regard to case (``thermo: temp``, ``hey @Thermo``,
    ``ask thermo, it knows``), but not inside another word (``thermostat``).

    Args:
        text: A message's body.
        nick: The bot's nickname in the room.
    """
    if not nick:
        return False
    pattern = rf"(?<![\w@])@?{re.escape(nick)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def is_delayed(message: Any) -> bool:
    """Whether a ``<message/>`` carries a XEP-0203 ``<delay/>``: history replayed by a room
    on join, or a message the server stored or queued while the bot was away."""
    return message.get_plugin("delay", check=True) is not None


def message_id(message: Any, room: bool) -> str | None:
    """The message's id: in a room the room's XEP-0359 ``<stanza-id by=room>`` when it
    gives one (unique, assigned by the room), else the ``id`` attribute the sender set;
    ``None`` when it has neither.

    Args:
        message: A slixmpp ``Message``.
        room: Whether it is a groupchat message (whose room may stamp a stanza-id).
    """
    if room:
        stanza_id = message.get_plugin("stanza_id", check=True)
        if stanza_id is not None and stanza_id["id"] and stanza_id["by"] == message["from"].bare:
            return str(stanza_id["id"])
    return str(message["id"]) or None


def raw_message(message: Any) -> dict[str, Any]:
    """The ``raw`` of a chat event: the stanza's addresses, type, id, thread and its XML."""
    return {
        "from": str(message["from"]),
        "to": str(message["to"]),
        "type": str(message["type"]),
        "id": str(message["id"]) or None,
        "thread": str(message["thread"]) or None,
        "xml": str(message),
    }
