"""ZulipTestServer speaks Zulip's REST API as the official ``zulip`` bindings expect it: they
run against it unchanged (in a thread: they are synchronous) to register a queue, long poll
it, send, fetch, react, and see BAD_EVENT_QUEUE_ID once the queue is gone."""

from __future__ import annotations

import asyncio
from typing import Any

import test_zulip_helpers as helpers
import zulip

from gateways.testing.zulip import ZulipTestServer

zulip_server = helpers.zulip_server


async def bindings(server: ZulipTestServer, **keys: Any) -> zulip.Client:
    """The bindings' client (built in a thread: its constructor asks the server)."""
    return await asyncio.to_thread(
        zulip.Client,
        email=keys.get("email", server.bot_email),
        api_key=keys.get("api_key", server.api_key),
        site=server.site,
        retry_on_errors=False,
    )


async def test_the_bindings_register_poll_and_send(zulip_server: ZulipTestServer) -> None:
    client = await bindings(zulip_server)
    me = await asyncio.to_thread(client.get_profile)
    assert me["result"] == "success"
    assert (me["user_id"], me["full_name"], me["is_bot"]) == (4001, "Gateway Bot", True)
    queue = await asyncio.to_thread(client.register, ["message"], apply_markdown=False)
    assert queue["result"] == "success"
    assert queue["last_event_id"] == -1
    poll = asyncio.create_task(
        asyncio.to_thread(client.get_events, queue_id=queue["queue_id"], last_event_id=-1)
    )
    await zulip_server.wait_polling()
    zulip_server.post_stream_message(
        helpers.GENERAL, "greetings", helpers.ALICE, "hi @**Gateway Bot**"
    )
    answer = await asyncio.wait_for(poll, 10)
    [event] = answer["events"]
    assert event["type"] == "message"
    assert event["flags"] == ["mentioned"]
    message = event["message"]
    assert (message["stream_id"], message["subject"], message["content"]) == (
        helpers.GENERAL,
        "greetings",
        "hi @**Gateway Bot**",
    )
    assert message["display_recipient"] == "general"
    sent = await asyncio.to_thread(
        client.send_message,
        {"type": "stream", "to": "general", "topic": "greetings", "content": "hello"},
    )
    assert sent["result"] == "success"
    assert (zulip_server.sent[0].text, zulip_server.sent[0].stream_id) == ("hello", helpers.GENERAL)
    dm = await asyncio.to_thread(
        client.send_message, {"type": "private", "to": [helpers.ALICE], "content": "psst"}
    )
    assert dm["result"] == "success"
    assert zulip_server.sent[1].to == (helpers.ALICE,)
    # The bot's own message comes back through its queue, as Zulip sends it.
    again = await asyncio.to_thread(
        client.get_events, queue_id=queue["queue_id"], last_event_id=event["id"]
    )
    assert [e["message"]["content"] for e in again["events"]] == ["hello", "psst"]
    reacted = await asyncio.to_thread(
        client.add_reaction, {"message_id": message["id"], "emoji_name": "tada"}
    )
    assert reacted["result"] == "success"
    assert zulip_server.reactions == [(message["id"], "tada", True)]
    fetched = await asyncio.to_thread(
        client.get_messages,
        {"anchor": message["id"], "num_before": 0, "num_after": 10, "apply_markdown": False},
    )
    assert [m["content"] for m in fetched["messages"]] == ["hi @**Gateway Bot**", "hello", "psst"]
    assert fetched["found_newest"] is True


async def test_a_queue_gone_is_bad_event_queue_id(zulip_server: ZulipTestServer) -> None:
    client = await bindings(zulip_server)
    queue = await asyncio.to_thread(client.register, ["message"])
    zulip_server.expire_queues()
    answer = await asyncio.to_thread(
        client.get_events, queue_id=queue["queue_id"], last_event_id=-1
    )
    assert answer["result"] == "error"
    assert answer["code"] == "BAD_EVENT_QUEUE_ID"
    assert answer["queue_id"] == queue["queue_id"]


async def test_an_idle_long_poll_answers_a_heartbeat(zulip_server: ZulipTestServer) -> None:
    client = await bindings(zulip_server)
    queue = await asyncio.to_thread(client.register, ["message"])
    answer = await asyncio.to_thread(
        client.get_events, queue_id=queue["queue_id"], last_event_id=-1
    )
    assert [e["type"] for e in answer["events"]] == ["heartbeat"]


async def test_a_wrong_api_key_is_401(zulip_server: ZulipTestServer) -> None:
    client = await bindings(zulip_server, api_key="wrong")
    answer = await asyncio.to_thread(client.get_profile)
    assert answer["result"] == "error"
    assert answer["code"] == "UNAUTHORIZED"
    assert zulip_server.calls[-1].status == 401


async def test_rendered_content_unless_apply_markdown_is_false(
    zulip_server: ZulipTestServer,
) -> None:
    client = await bindings(zulip_server)
    queue = await asyncio.to_thread(client.register, ["message"])
    zulip_server.post_direct_message(helpers.ALICE, "a < b")
    answer = await asyncio.to_thread(
        client.get_events, queue_id=queue["queue_id"], last_event_id=-1
    )
    [event] = answer["events"]
    assert event["message"]["content"] == "<p>a &lt; b</p>"
    people = [p["id"] for p in event["message"]["display_recipient"]]
    assert people == [4001, helpers.ALICE]
