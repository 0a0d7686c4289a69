"""Hostile WebSocket events against the Mattermost gateway's inbound half: whatever JSON a
server (or a forger on the path) sends, ``MattermostInbound.handle`` dispatches a well-formed
chat event or refuses with ``MalformedEvent``, never another exception."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateways.mattermost import MattermostGatewayOptions
from gateways.mattermost.inbound import ChannelInfo, MalformedEvent, MattermostInbound
from gateways.mattermost.ledger import PostLedger
from layer.types import ChatBot, ChatConversation, Message

BOT = "b" * 26
OPTIONS = MattermostGatewayOptions(url="http://127.0.0.1:1", token="t" * 26)


class Host:
    """An ``InboundHost`` recording what is dispatched."""

    name = "hostile"
    options = OPTIONS

    def __init__(self) -> None:
        self.bot: ChatBot = {"id": BOT, "name": "gatewaybot"}
        self.dispatched: list[Message] = []

    def conversation_for(self, **values: Any) -> tuple[str, ChatConversation]:
        return values["channel_id"], {
            "id": values["channel_id"],
            "kind": values["kind"],
            "name": values["name"],
            "thread_id": values["thread_id"],
        }

    async def dispatch_chat(self, key: str, conversation: ChatConversation, event: Message) -> None:
        self.dispatched.append(event)

    async def channel_info(self, channel_id: str) -> ChannelInfo | None:
        return None

    async def user_name(self, user_id: str) -> str | None:
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
post_keys = st.sampled_from(
    ["id", "channel_id", "user_id", "message", "root_id", "props", "metadata", "type", "create_at"]
)
ids = st.sampled_from(["p" * 26, "c" * 26, "u" * 26, BOT, ""]) | json_values
posts = st.dictionaries(post_keys, ids, max_size=9) | st.fixed_dictionaries(
    {"id": ids, "channel_id": ids, "user_id": ids},
    optional={
        "message": json_values,
        "root_id": ids,
        "props": json_values,
        "metadata": st.fixed_dictionaries({"files": st.lists(json_values, max_size=2)})
        | json_values,
        "type": json_values,
        "create_at": json_values,
        "delete_at": json_values,
    },
)
events = st.fixed_dictionaries(
    {
        "event": st.sampled_from(["posted", "reaction_added", "reaction_removed", "typing"]),
        "data": json_values
        | st.fixed_dictionaries(
            {
                "post": posts.map(json.dumps) | posts | json_values,
                "reaction": posts.map(json.dumps) | json_values,
                "mentions": json_values.map(json.dumps) | json_values,
                "channel_type": json_values,
                "sender_name": json_values,
            }
        ),
        "broadcast": json_values,
    }
)


@settings(max_examples=300, deadline=None)
@given(events)
@example(
    {
        "event": "posted",
        "data": {
            "post": {
                "id": "p" * 26,
                "channel_id": "c" * 26,
                "user_id": "u" * 26,
                "create_at": "abc",
                "message": 5,
                "root_id": {"a": 1},
                "metadata": {"files": [{"id": 1, "name": 3, "size": "x"}, "file"]},
            },
            "channel_name": ["x"],
            "mentions": "{",
        },
    }
)
@example({"event": "reaction_added", "data": {"reaction": {"user_id": 1, "post_id": []}}})
def test_any_event_is_dispatched_well_formed_or_refused(event: dict[str, Any]) -> None:
    host = Host()
    inbound = MattermostInbound(host, PostLedger("hostile", None), size=16)
    try:
        asyncio.run(inbound.handle(event))
    except MalformedEvent:
        return
    for dispatched in host.dispatched:
        assert isinstance(dispatched["user"]["id"], str)
        if dispatched["type"] == "chat.message":
            assert isinstance(dispatched["text"], str)
            assert isinstance(dispatched["attachments"], list)
            assert dispatched["idempotency_key"] == f"mattermost:{dispatched['id']}"
