"""Hostile input to the Zulip gateway's reading of events: whatever JSON a queue hands over,
``ZulipInbound.deliver`` dispatches a well-formed chat event or drops it with one warning,
and never raises (property-based, with hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways.base import GatewayError
from gateways.zulip.inbound import TopicTrail, ZulipInbound
from gateways.zulip.ledger import Ledger
from layer.types import ChatBot, ChatConversation, Message

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers() | st.floats() | JSON,
        "sender_id": st.integers(0, 9) | JSON,
        "type": st.sampled_from(["stream", "private", "other"]) | JSON,
        "stream_id": st.integers() | st.floats() | JSON,
        "subject": st.text(max_size=8) | JSON,
        "content": st.text(max_size=20) | JSON,
        "display_recipient": st.lists(
            st.fixed_dictionaries({"id": st.integers(0, 9) | JSON}), max_size=3
        )
        | JSON,
    },
)
EVENT = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "reaction", "heartbeat"]) | JSON},
    optional={
        "message": MESSAGE | JSON,
        "flags": st.lists(st.sampled_from(["mentioned", "read"])) | JSON,
        "op": st.sampled_from(["add", "remove"]) | JSON,
        "message_id": st.integers() | st.floats() | JSON,
        "emoji_name": st.text(max_size=5) | JSON,
        "user_id": st.integers(0, 9) | JSON,
        "user": JSON,
    },
)


class Host:
    """The gateway's side of ``ZulipInbound``, recording what is dispatched."""

    name = "zulip"
    site = "https://zulip.example"

    def __init__(self) -> None:
        self.bot: ChatBot = {"id": "1", "name": "Bot"}
        self.topics = TopicTrail()
        self.dispatched: list[Message] = []

    def conversation_for(
        self,
        *,
        channel_id: str,
        kind: Literal["direct", "group"],
        name: str | None,
        thread_id: str | None,
        user_id: str,
    ) -> tuple[str, ChatConversation]:
        return channel_id, {"id": channel_id, "kind": kind, "name": name, "thread_id": thread_id}

    async def dispatch_chat(self, key: str, conversation: ChatConversation, event: Message) -> None:
        self.dispatched.append(event)

    async def fetch_message(self, message_id: int) -> dict[str, Any]:
        raise GatewayError("no such message here")

    async def fetch_user(self, user_id: int) -> dict[str, Any]:
        return {"user_id": user_id, "is_bot": False}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENT, max_size=5))
def test_any_event_is_dispatched_well_formed_or_dropped(events: list[dict[str, Any]]) -> None:
    host = Host()
    ledger = Ledger("zulip", None)
    ledger.new_queue("q", -1, 0)
    inbound = ZulipInbound(host, ledger)

    async def run() -> None:
        for event_id, event in enumerate(events):
            ledger.events.take(event_id)
            await inbound.deliver(event_id, event)

    asyncio.run(run())
    for event in host.dispatched:
        assert event["type"] in ("chat.message", "chat.reaction")
        assert isinstance(event["user"]["id"], str)
        assert event["user"]["identity"] == f"zulip:{event['user']['id']}"
        if event["type"] == "chat.message":
            assert isinstance(event["text"], str)
            assert event["idempotency_key"] == f"zulip:{event['id']}"
