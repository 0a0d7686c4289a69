"""The pure parts of the Rocket.Chat gateway: dates, rooms, emoji, text pieces, and the
ledger of what was handled per room."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from gateways import GatewayError
from gateways.chat import ChatGateway
from gateways.rocketchat import RocketChatGatewayOptions
from gateways.rocketchat.events import (
    emoji_for,
    is_delivered,
    kind_of_room,
    room_name,
    split_text,
    timestamp,
)
from gateways.rocketchat.inbound import RocketChatInbound
from gateways.rocketchat.ledger import RoomLedger
from layer.types import ChatBot, ChatConversation, Message


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ({"$date": 1765108246123}, 1765108246123),
        ("2025-12-07T11:50:46.123Z", 1765108246123),
        (1765108246123, 1765108246123),
        ("yesterday", None),
        (None, None),
        (True, None),
        ({"$date": "x"}, None),
    ],
)
def test_timestamps(value: object, ms: int | None) -> None:
    assert timestamp(value) == ms


def test_rooms_kinds_and_names() -> None:
    assert kind_of_room({"t": "d", "uids": ["a", "b"]}) == "direct"
    assert kind_of_room({"t": "d", "uids": ["a", "b", "c"]}) == "group"
    assert kind_of_room({"t": "l"}) == "direct"
    assert kind_of_room({"t": "c"}) == kind_of_room({"t": "p"}) == "group"
    assert room_name({"t": "c", "name": "general"}) == "general"
    assert room_name({"t": "p", "name": "x1", "fname": "Plans", "prid": "GENERAL"}) == "Plans"
    assert room_name({"t": "d", "uids": ["a", "b"]}) is None


def test_emoji_and_delivery() -> None:
    assert emoji_for("thumbsup") == emoji_for(":thumbsup:") == ":thumbsup:"
    assert emoji_for("+1") == ":+1:"
    assert emoji_for("two words") is None
    user = {"_id": "alice1", "username": "alice"}
    assert is_delivered({"u": user}, "bot1", bots=False)
    assert not is_delivered({"u": {"_id": "bot1"}}, "bot1", bots=True)
    assert not is_delivered({"u": user, "t": "uj"}, "bot1", bots=False)
    assert not is_delivered({"u": user, "bot": {"i": "x"}}, "bot1", bots=False)
    assert is_delivered({"u": user, "bot": {"i": "x"}}, "bot1", bots=True)
    assert not is_delivered({"u": "alice"}, "bot1", bots=False)


def test_split_text_cuts_at_spaces_and_keeps_everything() -> None:
    assert split_text("") == [""]
    assert split_text("short") == ["short"]
    text = "abcd " * 30
    pieces = split_text(text, limit=32)
    assert all(len(p) <= 32 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert split_text("x" * 70, limit=32) == ["x" * 32, "x" * 32, "x" * 6]


def test_the_ledger_never_passes_a_pending_message_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    ledger = RoomLedger("rc", path)
    ledger.know("R1", 100)
    ledger.take("R1", "m1", 110)
    ledger.take("R1", "m2", 120)
    ledger.done("m2")
    assert ledger.since("R1") == 110  # m1 is still pending
    assert ledger.seen("R1", "m1")
    assert ledger.seen("R1", "m2")
    again = RoomLedger("rc", path)
    again.load()
    assert again.since("R1") == 110
    assert again.seen("R1", "m2")
    assert not again.seen("R1", "m1")  # not handled: fetched and delivered again
    ledger.done("m1")
    assert ledger.since("R1") == 120
    ledger.skip("R1", "m3", 130)
    assert ledger.since("R1") == 130
    assert json.loads(path.read_text())["rooms"]["R1"] == {"mark": 130, "handled": {"m3": 130}}
    ledger.forget("R1")
    assert ledger.since("R1") is None


def test_a_state_file_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"last_update_id": 3}')
    with pytest.raises(GatewayError, match=r"is not a Rocket\.Chat gateway's state file"):
        RoomLedger("rc", path).load()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = [
    "_id",
    "rid",
    "msg",
    "ts",
    "u",
    "tmid",
    "t",
    "mentions",
    "files",
    "file",
    "attachments",
    "bot",
]


class Host:
    """A stand-in for the gateway: what ``RocketChatInbound`` uses of it."""

    name = "rc"

    def __init__(self) -> None:
        self.bot: ChatBot = {"id": "bot1", "name": "bot"}
        self.options = RocketChatGatewayOptions(
            server_url="http://x", user_id="bot1abc", token=SecretStr("T" * 20)
        )
        self.events: list[Message] = []
        self.chat = ChatGateway.conversation_for

    def conversation_for(self, **kwargs: Any) -> tuple[str, ChatConversation]:
        return self.chat(self, **kwargs)  # type: ignore[arg-type]

    async def dispatch_chat(self, key: str, conversation: ChatConversation, event: Message) -> None:
        self.events.append(event)

    async def room_info(self, room_id: str) -> dict[str, Any] | None:
        return {"_id": room_id, "t": "c", "name": "x"} if room_id else None


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, JSON))
    | st.fixed_dictionaries(
        {
            "_id": st.text(min_size=1, max_size=5),
            "rid": st.text(min_size=1, max_size=5),
            "ts": st.integers(0, 2**41) | st.builds(lambda n: {"$date": n}, st.integers(0, 2**41)),
            "u": st.fixed_dictionaries({"_id": st.text(min_size=1, max_size=4)}),
        },
        optional=dict.fromkeys(["msg", "tmid", "t", "mentions", "files", "attachments"], JSON),
    ),
    st.none() | st.dictionaries(st.sampled_from(["roomType", "roomName"]), JSON),
)
async def test_any_message_shape_is_delivered_or_dropped_never_raises(
    message: dict[str, Any], meta: dict[str, Any] | None
) -> None:
    host = Host()
    inbound = RocketChatInbound(host, RoomLedger("rc", None), size=10)
    await inbound.message(message, meta)
    for event in host.events:
        assert isinstance(event["text"], str)
        assert isinstance(event["attachments"], list)
        assert event["idempotency_key"] == f"rocketchat:{message['_id']}"
