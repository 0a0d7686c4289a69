"""The XMPP gateway's ``idempotency_key`` (``docs/specs/chat.md``): a XEP-0359
``<stanza-id/>`` set by the room or the bot's own server, else the sender's JID and the
stanza's ``id``; read from slixmpp stanzas, and end to end against a real Prosody."""

from __future__ import annotations

from typing import Any

import pytest
from slixmpp import JID
from slixmpp.plugins.xep_0359 import StanzaID
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET, register_stanza_plugin
from test_xmpp_helpers import *  # noqa: F403 (its fixtures)
from test_xmpp_helpers import BOT, ROOM

from gateways.xmpp.text import idempotency_key

pytestmark = pytest.mark.timeout(60)

register_stanza_plugin(Message, StanzaID)

SID = "urn:xmpp:sid:0"


def stanza(
    sender: str, *stamps: tuple[str, str], kind: str = "chat", id: str = "client-1"
) -> Message:
    """A message from ``sender`` with the ``id`` attribute ``id`` (none when empty), and a
    ``<stanza-id by=... id=.../>`` per ``(by, id)`` of ``stamps``."""
    message = Message()
    message["from"] = JID(sender)
    message["to"] = JID(BOT)
    message["type"] = kind
    message["body"] = "hi"
    if id:
        message["id"] = id
    for by, value in stamps:
        element = ET.SubElement(message.xml, f"{{{SID}}}stanza-id")
        element.set("by", by)
        element.set("id", value)
    return message


def test_the_rooms_stanza_id_makes_a_groupchat_messages_key() -> None:
    sender = "ops@conference.example.org/alice"
    room = stanza(sender, ("ops@conference.example.org", "room-7"), kind="groupchat")
    assert idempotency_key(room, True, BOT) == "xmpp:room-7"
    # Another entity's stanza-id (the sender's server, a forgery) is not the room's.
    other = stanza(sender, ("alice@example.org", "forged"), kind="groupchat")
    assert idempotency_key(other, True, BOT) == f"xmpp:{sender}#client-1"
    # The room's, wherever it is among several.
    both = stanza(
        sender,
        ("alice@example.org", "forged"),
        ("ops@conference.example.org", "room-8"),
        kind="groupchat",
    )
    assert idempotency_key(both, True, BOT) == "xmpp:room-8"


def test_the_bots_servers_stanza_id_makes_a_direct_messages_key() -> None:
    sender = "alice@example.org/phone"
    archived = stanza(sender, (BOT, "archive-3"))
    assert idempotency_key(archived, False, BOT) == "xmpp:archive-3"
    forged = stanza(sender, ("alice@example.org", "mine"))
    assert idempotency_key(forged, False, BOT) == f"xmpp:{sender}#client-1"
    assert idempotency_key(stanza(sender, id=""), False, BOT) is None


def messages(app: Any) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]


def send(person: Any, to: str, text: str, stanza_id: str, *, groupchat: bool = False) -> None:
    message = person.client.make_message(
        mto=JID(to), mbody=text, mtype="groupchat" if groupchat else "chat"
    )
    message["id"] = stanza_id
    message.send()


async def test_messages_carry_the_senders_jid_and_stanza_id(
    prosody: Any, make_xmpp_gateway: Any, run_gateway: Any, recording_app: Any, human: Any
) -> None:
    app = recording_app()
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice = await human(prosody, "alice")
    bob = await human(prosody, "bob")
    await alice.join(ROOM, "alice")
    await bob.join(ROOM, "bob")
    send(alice, BOT, "direct", "alice-1")
    send(alice, ROOM, "in the room", "alice-2", groupchat=True)
    send(bob, ROOM, "bob too", "bob-1", groupchat=True)
    await app.wait_for(lambda: len(messages(app)) == 3, within=15)
    keys = {e["text"]: e["idempotency_key"] for e in messages(app)}
    assert keys == {
        "direct": "xmpp:alice@localhost/human#alice-1",
        "in the room": f"xmpp:{ROOM}/alice#alice-2",
        "bob too": f"xmpp:{ROOM}/bob#bob-1",
    }
