"""Reading XMPP messages: mentions of the bot, delayed delivery, ids, the raw payload.

A multi-user chat mentions an occupant by writing its nickname (XEP-0045 section 7.4 has no
markup for it; clients complete ``nick: `` at the start, or write the nick anywhere).
Delayed delivery (XEP-0203) marks what a room replays on join (XEP-0045 section 7.2.15)
and what the server stored while the bot was away.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["idempotency_key", "is_delayed", "mentions_nick", "message_id", "raw_message"]

#: XEP-0359's namespace (``<stanza-id/>``, ``<origin-id/>``).
_SID = "urn:xmpp:sid:0"


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


def idempotency_key(message: Any, room: bool, account: str) -> str | None:
    """A message's ``idempotency_key`` (``docs/state.md``), the same when the message comes
    again (a XEP-0198 resumption resending it, the server's offline store):

    - ``"xmpp:<stanza-id>"``: a XEP-0359 ``<stanza-id/>`` set by the room (``by`` the room's
      bare JID) for a groupchat message, or by the bot's own server (``by`` the bot's bare
      JID, when it archives messages) for any other. Such an id is unique and stable within
      the scope of its ``by``, and an entity that sets them deletes one a sender forged in
      its name (XEP-0359, "Use Cases" and "Business Rules");
    - else ``"xmpp:<sender's full JID>#<id attribute>"``: the ``id`` the sender's client
      set. RFC 6120 (section 8.1.3) asks it to be unique only within the sender's stream:
      the sender in front keeps two senders' ids apart (clients generate random ids, so a
      sender's ids rarely repeat across its streams, though the RFC does not forbid it);
    - ``None`` when the message has neither.

    Args:
        message: A slixmpp ``Message``.
        room: Whether it is a groupchat message.
        account: The bot's bare JID.
    """
    sender = message["from"]
    setter = str(sender.bare) if room else account
    for element in message.xml.findall(f"{{{_SID}}}stanza-id"):
        stanza_id = element.get("id")
        if stanza_id and element.get("by") == setter:
            return f"xmpp:{stanza_id}"
    attribute = str(message["id"])
    return f"xmpp:{sender}#{attribute}" if attribute else None


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
