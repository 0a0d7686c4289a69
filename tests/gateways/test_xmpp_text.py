"""Reading XMPP messages (gateways/xmpp/text.py): mentions, delays, ids."""

from __future__ import annotations

import pytest
from slixmpp import JID
from slixmpp.plugins.xep_0203 import Delay
from slixmpp.plugins.xep_0359 import StanzaID
from slixmpp.stanza import Message
from slixmpp.xmlstream import register_stanza_plugin

from gateways.xmpp.text import is_delayed, mentions_nick, message_id, raw_message

register_stanza_plugin(Message, Delay)
register_stanza_plugin(Message, StanzaID)


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("thermo: temp", True),
        ("thermo, temp", True),
        ("@thermo temp", True),
        ("hey @Thermo!", True),
        ("ask THERMO about it", True),
        ("the thermostat is off", False),
        ("mythermo", False),
        ("thermo_2 is another bot", False),
        ("", False),
    ],
)
def test_mentions_of_the_nick(text, mentioned):
    assert mentions_nick(text, "thermo") is mentioned


def test_a_nick_with_regex_characters_is_taken_literally():
    assert mentions_nick("bot.v2: hi", "bot.v2")
    assert not mentions_nick("botxv2: hi", "bot.v2")


def message(**keys):
    stanza = Message()
    for key, value in keys.items():
        stanza[key] = value
    return stanza


def test_a_delay_marks_history_and_stored_messages():
    plain = message(body="hi")
    assert not is_delayed(plain)
    delayed = message(body="hi")
    delayed["delay"]["stamp"] = "2026-01-01T00:00:00Z"
    assert is_delayed(delayed)


def test_the_rooms_stanza_id_is_preferred_in_a_room():
    stanza = message(body="hi", id="client-1", type="groupchat")
    stanza["from"] = JID("ops@conference.example.org/alice")
    assert message_id(stanza, room=True) == "client-1"
    stanza["stanza_id"]["id"] = "room-7"
    stanza["stanza_id"]["by"] = "ops@conference.example.org"
    assert message_id(stanza, room=True) == "room-7"
    assert message_id(stanza, room=False) == "client-1"
    spoofed = message(body="hi", id="client-2", type="groupchat")
    spoofed["from"] = JID("ops@conference.example.org/alice")
    spoofed["stanza_id"]["id"] = "fake"
    spoofed["stanza_id"]["by"] = "elsewhere@example.org"
    assert message_id(spoofed, room=True) == "client-2"
    assert message_id(message(body="no id"), room=False) is None


def test_raw_has_the_addresses_and_the_xml():
    stanza = message(body="hi", id="m1", type="chat")
    stanza["from"] = JID("alice@example.org/phone")
    stanza["to"] = JID("bot@example.org/asgi-gateway")
    raw = raw_message(stanza)
    assert raw["from"] == "alice@example.org/phone"
    assert raw["to"] == "bot@example.org/asgi-gateway"
    assert raw["type"] == "chat"
    assert raw["id"] == "m1"
    assert raw["thread"] is None
    assert "<body>hi</body>" in raw["xml"]
