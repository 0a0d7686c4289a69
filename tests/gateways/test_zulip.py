"""The Zulip gateway against ZulipTestServer: streams, topics and direct messages as
conversations, mentions, identities and idempotency keys, reactions both ways, typing, and
sending in the right topic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_zulip_helpers as helpers
from test_zulip_helpers import ALICE, BOB, GENERAL

from gateways.base import GatewayError
from gateways.testing.zulip import MAX_MESSAGE_LENGTH, ZulipTestServer
from gateways.zulip import ZulipGateway

zulip_server = helpers.zulip_server
zulip_gateway = helpers.zulip_gateway

Make = Callable[..., ZulipGateway]


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": f"echo {event['text']}"})


async def test_a_topic_is_a_conversation_and_the_reply_goes_to_it(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(echo)
    gateway = await run_gateway(zulip_gateway(app))
    posted = zulip_server.post_stream_message(GENERAL, "lunch/plans", ALICE, "@**Gateway Bot** hi")
    sent = await zulip_server.wait_for_sent(within=10)
    assert (sent.text, sent.stream_id, sent.topic) == (
        "echo @**Gateway Bot** hi",
        GENERAL,
        "lunch/plans",
    )
    [log] = app.logs
    scope = log.scope
    assert scope["platform"] == "zulip"
    assert scope["scope_key"] == "101/lunch/plans"
    assert scope["conversation"] == {
        "id": "101",
        "kind": "thread",
        "name": "general",
        "thread_id": "lunch/plans",
    }
    assert scope["bot"] == {"id": "4001", "name": "Gateway Bot"}
    message = log.events[1]
    assert message["type"] == "chat.message"
    assert message["id"] == str(posted["id"])
    assert message["text"] == "@**Gateway Bot** hi"
    assert message["user"] == {
        "id": str(ALICE),
        "name": "Alice Liddell",
        "is_bot": False,
        "identity": f"zulip:{ALICE}",
    }
    assert message["mentions_bot"] is True
    assert message["thread_id"] == "lunch/plans"
    assert message["idempotency_key"] == f"zulip:{posted['id']}"
    assert message["raw"]["subject"] == "lunch/plans"
    assert gateway.conversation_of_key("101/lunch/plans") == scope["conversation"] | {"name": None}
    server = gateway.asyncapi_server()
    assert server is not None
    assert (server["host"], server["protocol"]) == (f"127.0.0.1:{zulip_server.port}", "zulip")


async def test_direct_and_group_direct_messages(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(echo)
    gateway = await run_gateway(zulip_gateway(app))
    zulip_server.post_direct_message(ALICE, "hello")
    await zulip_server.wait_for_sent(within=10)
    zulip_server.post_direct_message(BOB, "hi all", to=(ALICE,))
    await zulip_server.wait_for_sent(2, within=10)
    assert [(s.text, s.to) for s in zulip_server.sent] == [
        ("echo hello", (ALICE,)),
        ("echo hi all", (ALICE, BOB)),
    ]
    direct, group = app.logs
    assert direct.scope["conversation"] == {
        "id": f"dm:{ALICE}",
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    assert group.scope["conversation"]["id"] == f"dm:{ALICE},{BOB}"
    assert group.scope["conversation"]["kind"] == "group"
    assert direct.events[1]["mentions_bot"] is True
    assert gateway.conversation_of_key(f"dm:{ALICE}")["kind"] == "direct"  # type: ignore[index]
    # A thread in a direct conversation: Zulip has no topics there.
    with pytest.raises(GatewayError, match="no topics"):
        await direct.send({"type": "chat.send", "text": "x", "thread": "t"})


async def test_the_bots_own_messages_and_chatter_are_told_apart(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    other = zulip_server.add_user(5009, "Other Bot", is_bot=True)
    app = recording_app(echo)
    await run_gateway(zulip_gateway(app))
    zulip_server.post_stream_message(GENERAL, "t", other["user_id"], "not for you")
    await zulip_server.wait_for_sent(within=10)
    await zulip_server.wait_polling()
    [log] = app.logs
    messages = [e for e in log.events if e["type"] == "chat.message"]
    # The bot's own echo came back through its queue and was not delivered.
    assert len(messages) == 1
    assert messages[0]["user"]["is_bot"] is True
    assert messages[0]["mentions_bot"] is False


async def test_channel_mode_answers_in_the_latest_topic(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    async def answer(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "elsewhere":
            await log.send({"type": "chat.send", "text": "moved", "thread": "other"})
        elif event["type"] == "chat.message":
            await log.send({"type": "chat.send", "text": "seen"})

    app = recording_app(answer)
    await run_gateway(zulip_gateway(app, conversation_key="channel"))
    zulip_server.post_stream_message(GENERAL, "first", ALICE, "one")
    zulip_server.post_stream_message(GENERAL, "second", ALICE, "two")
    zulip_server.post_stream_message(GENERAL, "second", ALICE, "elsewhere")
    await zulip_server.wait_for_sent(3, within=10)
    assert [(s.text, s.topic) for s in zulip_server.sent] == [
        ("seen", "first"),
        ("seen", "second"),
        ("moved", "other"),
    ]
    [log] = app.logs
    assert log.scope["scope_key"] == "101"
    assert log.scope["conversation"]["kind"] == "group"
    assert [e["thread_id"] for e in log.events if e["type"] == "chat.message"] == [
        "first",
        "second",
        "second",
    ]


async def test_reactions_typing_and_long_texts(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    long = "word " * 3000  # 15000 characters

    async def act(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.typing"})
            await log.send({"type": "chat.react", "message_id": event["id"], "reaction": "eyes"})
            await log.send({"type": "chat.send", "text": long})

    app = recording_app(act)
    await run_gateway(zulip_gateway(app))
    posted = zulip_server.post_stream_message(GENERAL, "t", ALICE, "react please")
    await zulip_server.wait_for_sent(2, within=10)
    assert "".join(s.text for s in zulip_server.sent) == long
    assert all(len(s.text) <= MAX_MESSAGE_LENGTH for s in zulip_server.sent)
    assert zulip_server.reactions == [(posted["id"], "eyes", True)]
    assert zulip_server.typing == [
        {"op": "start", "type": "stream", "stream_id": GENERAL, "topic": "t"}
    ]
    zulip_server.react(posted["id"], ALICE, "thumbs_up")
    [log] = app.logs
    await app.wait_for(lambda: "chat.reaction" in log.types, within=10)
    reaction = next(e for e in log.events if e["type"] == "chat.reaction")
    assert reaction["message_id"] == str(posted["id"])
    assert reaction["reaction"] == "thumbs_up"
    assert reaction["added"] is True
    assert reaction["user"]["identity"] == f"zulip:{ALICE}"
    assert "idempotency_key" not in reaction
    # The bot's own reaction (eyes) came back through the queue and was not delivered.
    assert [e["reaction"] for e in log.events if e["type"] == "chat.reaction"] == ["thumbs_up"]


async def test_a_reaction_on_an_unseen_message_finds_its_conversation(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    old = zulip_server.post_direct_message(ALICE, "from before the start")
    app = recording_app()
    await run_gateway(zulip_gateway(app))
    zulip_server.react(old["id"], ALICE, "tada")
    await app.wait_for(lambda: bool(app.logs) and "chat.reaction" in app.logs[0].types, 10)
    assert app.logs[0].scope["scope_key"] == f"dm:{ALICE}"
    assert zulip_server.calls_to(f"GET messages/{old['id']}")[0].status == 200


async def test_attachments_are_the_uploaded_files_linked(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await run_gateway(zulip_gateway(app))
    zulip_server.post_direct_message(ALICE, "see [plan.pdf](/user_uploads/2/ab/plan.pdf)")
    await app.wait_for(lambda: bool(app.logs) and "chat.message" in app.logs[0].types, 10)
    message = app.logs[0].events[1]
    assert message["attachments"] == [
        {
            "name": "plan.pdf",
            "url": f"{zulip_server.site}/user_uploads/2/ab/plan.pdf",
            "mimetype": None,
            "size": None,
        }
    ]


async def test_refused_sends_are_clear_errors(
    zulip_server: ZulipTestServer, zulip_gateway: Make, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(echo)
    await run_gateway(zulip_gateway(app))
    zulip_server.fail_next("POST messages", 400, "Not allowed", code="BAD_REQUEST")
    zulip_server.post_direct_message(ALICE, "one")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors), within=10)
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert "Zulip answered POST /messages with 'Not allowed'" in str(error)
    with pytest.raises(GatewayError, match="format"):
        await app.logs[0].send({"type": "chat.send", "text": "x", "format": "html"})
    with pytest.raises(GatewayError, match="native"):
        await app.logs[0].send({"type": "chat.send", "text": "x", "native": {"a": 1}})
