"""The Slack gateway in Socket Mode, with slack-bolt and slack_sdk unchanged against
SlackTestServer: conversations, threads, mentions, commands, reactions, buttons, retries,
reconnects and start-up failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.slack import SlackGateway
from gateways.testing.slack_server import SlackTestServer, app_mention, message, reaction

BOT = "U0BOT00001"


async def start(run_gateway: Any, slack_options: Any, app: Any, **options: Any) -> SlackGateway:
    gateway = SlackGateway("slack", app, slack_options(**options))
    await run_gateway(gateway)
    return gateway


def messages(app: Any) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def test_each_conversation_kind_is_its_own_scope(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    slack_server.add_conversation("C0PUBLIC01", "general")
    slack_server.add_conversation("G0PRIVATE1", "secret-plans", kind="group")
    slack_server.add_conversation("G0MPIM0001", "mpdm-alice--bob-1", kind="mpim")
    slack_server.add_user("U0USER0001", "alice")
    app = recording_app()
    gateway = await start(run_gateway, slack_options, app)
    assert gateway.bot == {"id": BOT, "name": "gatewaybot"}
    assert gateway.bot_id == "B0BOT00001"

    await slack_server.send_event(message("C0PUBLIC01", "in a channel"))
    await slack_server.send_event(message("G0PRIVATE1", "private", channel_type="group"))
    await slack_server.send_event(message("D0DIRECT01", "a DM", channel_type="im"))
    await slack_server.send_event(message("G0MPIM0001", "group DM", channel_type="mpim"))
    await app.wait_for(lambda: len(messages(app)) == 4)

    scopes = {log.scope["scope_key"]: log.scope for log in app.logs}
    assert set(scopes) == {"C0PUBLIC01", "G0PRIVATE1", "D0DIRECT01", "G0MPIM0001"}
    expected = {
        "C0PUBLIC01": ("group", "general"),
        "G0PRIVATE1": ("group", "secret-plans"),
        "D0DIRECT01": ("direct", None),
        "G0MPIM0001": ("group", "mpdm-alice--bob-1"),
    }
    for key, (kind, name) in expected.items():
        scope = scopes[key]
        assert scope["type"] == "chat"
        assert scope["platform"] == "slack"
        assert scope["bot"] == {"id": BOT, "name": "gatewaybot"}
        assert scope["conversation"] == {"id": key, "kind": kind, "name": name, "thread_id": None}
    first = app.by_key("C0PUBLIC01")[0].events
    assert [e["type"] for e in first] == ["chat.connect", "chat.message"]
    event = first[1]
    assert event["text"] == "in a channel"
    assert event["user"] == {
        "id": "U0USER0001",
        "name": "alice",
        "is_bot": False,
        "identity": "slack:U0USER0001",
    }
    assert event["thread_id"] is None
    assert event["mentions_bot"] is False
    assert event["id"] == event["raw"]["ts"]
    # The identity is learnt once, at start; Bolt makes no auth.test of its own.
    assert len(slack_server.calls_to("auth.test")) == 1


async def test_one_scope_per_thread(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    parent = message("C0CHAN0001", "top level")
    other = message("C0CHAN0001", "another top level")
    await slack_server.send_event(parent)
    await slack_server.send_event(message("C0CHAN0001", "reply 1", thread_ts=parent["ts"]))
    await slack_server.send_event(message("C0CHAN0001", "reply 2", thread_ts=parent["ts"]))
    await slack_server.send_event(message("C0CHAN0001", "elsewhere", thread_ts=other["ts"]))
    await app.wait_for(lambda: len(messages(app)) == 4)

    thread_key = f"C0CHAN0001/{parent['ts']}"
    assert {log.scope["scope_key"] for log in app.logs} == {
        "C0CHAN0001",
        thread_key,
        f"C0CHAN0001/{other['ts']}",
    }
    [thread] = app.by_key(thread_key)
    assert thread.scope["conversation"] == {
        "id": "C0CHAN0001",
        "kind": "thread",
        "name": None,
        "thread_id": parent["ts"],
    }
    texts = [e["text"] for e in thread.events if e["type"] == "chat.message"]
    assert texts == ["reply 1", "reply 2"]
    assert all(e["thread_id"] == parent["ts"] for e in thread.events[1:])


async def test_channel_mode_keeps_threads_in_the_channels_scope(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app, conversation_key="channel")
    parent = message("C0CHAN0001", "top level")
    await slack_server.send_event(parent)
    await slack_server.send_event(message("C0CHAN0001", "reply", thread_ts=parent["ts"]))
    await app.wait_for(lambda: len(messages(app)) == 2)
    [log] = app.logs
    assert log.scope["scope_key"] == "C0CHAN0001"
    assert [e["thread_id"] for e in log.events[1:]] == [None, parent["ts"]]


async def test_a_mention_is_delivered_once_whichever_event_comes_first(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    first = message("C0CHAN0001", f"<@{BOT}> temp kitchen")
    await slack_server.send_event(first)
    await slack_server.send_event(app_mention("C0CHAN0001", first["text"], ts=first["ts"]))
    second = app_mention("C0CHAN0001", f"hey <@{BOT}>")
    await slack_server.send_event(second)
    await slack_server.send_event(message("C0CHAN0001", second["text"], ts=second["ts"]))
    # Only app_mention (an app subscribed to mentions only), and a plain message.
    third = app_mention("C0CHAN0001", f"<@{BOT}> devices")
    await slack_server.send_event(third)
    await slack_server.send_event(message("C0CHAN0001", "no mention here"))
    await app.wait_for(lambda: len(messages(app)) >= 4)
    await asyncio.sleep(0.2)

    got = [(e["id"], e["mentions_bot"]) for e in messages(app)]
    assert got[:3] == [(first["ts"], True), (second["ts"], True), (third["ts"], True)]
    assert got[3][1] is False
    assert len(got) == 4


async def test_slash_command_is_acknowledged_and_dispatched(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app, resolve_names=False)
    envelope = await slack_server.send_command(
        "/temp", "kitchen", channel_id="C0CHAN0001", channel_name="general", user_name="alice"
    )
    await slack_server.wait_ack(envelope)
    await app.wait_for(lambda: any(log.types[-1:] == ["chat.command"] for log in app.logs))
    [log] = app.logs
    assert log.scope["conversation"] == {
        "id": "C0CHAN0001",
        "kind": "group",
        "name": "general",
        "thread_id": None,
    }
    event = log.events[-1]
    assert (event["command"], event["text"]) == ("/temp", "kitchen")
    assert event["user"] == {
        "id": "U0USER0001",
        "name": "alice",
        "is_bot": False,
        "identity": "slack:U0USER0001",
    }
    assert "token" not in event["raw"]


async def test_slash_command_in_a_dm_is_a_direct_conversation(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    await slack_server.send_command(
        "/devices", channel_id="D0DIRECT01", channel_name="directmessage"
    )
    await app.wait_for(lambda: any("chat.command" in log.types for log in app.logs))
    assert app.logs[0].scope["conversation"]["kind"] == "direct"
    assert app.logs[0].scope["conversation"]["name"] is None


async def test_reaction_reaches_the_conversation_of_its_message(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    parent = message("C0CHAN0001", "top level")
    reply = message("C0CHAN0001", "in the thread", thread_ts=parent["ts"])
    await slack_server.send_event(parent)
    await slack_server.send_event(reply)
    await slack_server.send_event(
        reaction("C0CHAN0001", reply["ts"], "thumbsup", user="U0OTHER001")
    )
    await slack_server.send_event(reaction("C0CHAN0001", parent["ts"], "eyes", added=False))
    await app.wait_for(
        lambda: sum(e["type"] == "chat.reaction" for log in app.logs for e in log.events) == 2
    )
    [thread] = app.by_key(f"C0CHAN0001/{parent['ts']}")
    added = thread.events[-1]
    assert added["type"] == "chat.reaction"
    assert (added["message_id"], added["reaction"], added["added"]) == (
        reply["ts"],
        "thumbsup",
        True,
    )
    assert added["user"]["id"] == "U0OTHER001"
    [channel] = app.by_key("C0CHAN0001")
    removed = channel.events[-1]
    assert (removed["reaction"], removed["added"]) == ("eyes", False)


async def test_button_actions_are_acknowledged_even_while_the_application_is_stuck(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    """Ack first, dispatch after: Slack's 3 seconds do not depend on the application."""
    release = asyncio.Event()

    async def stuck(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.action":
            await release.wait()

    app = recording_app(stuck)
    await start(run_gateway, slack_options, app, max_queued_events=1)
    posted = message("C0CHAN0001", "pick one")
    envelopes = [
        await slack_server.send_action(
            "choose", value=str(n), channel_id="C0CHAN0001", message_ts=posted["ts"]
        )
        for n in range(4)
    ]
    for envelope in envelopes:
        await slack_server.wait_ack(envelope)
    release.set()
    await app.wait_for(
        lambda: sum(e["type"] == "chat.action" for log in app.logs for e in log.events) == 4
    )
    actions = [e for e in app.logs[0].events if e["type"] == "chat.action"]
    assert [a["value"] for a in actions] == ["0", "1", "2", "3"]
    assert actions[0]["action_id"] == "choose"
    assert actions[0]["message_id"] == posted["ts"]
    assert actions[0]["user"]["id"] == "U0USER0001"


async def test_button_in_a_thread_reaches_the_threads_scope(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    await slack_server.send_action(
        "ok", channel_id="C0CHAN0001", message_ts="1700000001.000200", thread_ts="1700000000.000100"
    )
    await app.wait_for(lambda: any("chat.action" in log.types for log in app.logs))
    assert app.logs[0].scope["scope_key"] == "C0CHAN0001/1700000000.000100"


async def test_own_messages_and_reactions_are_ignored(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "mine", user=BOT))
    await slack_server.send_event(
        message("C0CHAN0001", "mine too", user=BOT, bot_id="B0BOT00001", subtype="bot_message")
    )
    await slack_server.send_event(reaction("C0CHAN0001", "1700000000.000100", "eyes", user=BOT))
    await slack_server.send_event(message("C0CHAN0001", "from a person"))
    await app.wait_for(lambda: len(messages(app)) == 1)
    await asyncio.sleep(0.2)
    assert [e["text"] for e in messages(app)] == ["from a person"]
    assert all(e["type"] != "chat.reaction" for log in app.logs for e in log.events)


async def test_another_bots_message_is_delivered_as_from_a_bot(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(
        message("C0CHAN0001", "beep", user="U0OTHERBOT", bot_id="B0OTHER001", subtype="bot_message")
    )
    await app.wait_for(lambda: len(messages(app)) == 1)
    assert messages(app)[0]["user"]["is_bot"] is True


async def test_a_socket_mode_retry_is_dispatched_once(
    slack_server: SlackTestServer, slack_options: Any, recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    slack_server.ignore_acks(1)  # the first ack is lost: Slack redelivers after ack_timeout
    envelope = await slack_server.send_event(message("C0CHAN0001", "once"))
    await slack_server.wait_ack(envelope, within=10)
    assert [a.envelope_id for a in slack_server.lost_acks] == [envelope]
    # An explicit redelivery as well (Slack may retry for its own reasons).
    await slack_server.redeliver(envelope, reason="timeout")
    async with asyncio.timeout(5):
        while len(slack_server.acks_for(envelope)) < 2:
            await asyncio.sleep(0.02)
    # A reaction has no message of its own to tell it apart: its event_id does.
    liked = await slack_server.send_event(reaction("C0CHAN0001", "1700000000.000100", "heart"))
    await slack_server.wait_ack(liked)
    await slack_server.redeliver(liked)
    async with asyncio.timeout(5):
        while len(slack_server.acks_for(liked)) < 2:
            await asyncio.sleep(0.02)
    await slack_server.send_event(message("C0CHAN0001", "next"))
    await app.wait_for(lambda: [e["text"] for e in messages(app)][-1:] == ["next"])
    assert [e["text"] for e in messages(app)] == ["once", "next"]
    reactions = [e for log in app.logs for e in log.events if e["type"] == "chat.reaction"]
    assert [r["reaction"] for r in reactions] == ["heart"]


@pytest.mark.parametrize("how", ["refresh_requested", "warning", "close", "abrupt"])
async def test_after_a_reconnect_events_reach_the_same_live_scope(
    how: str,
    slack_server: SlackTestServer,
    slack_options: Any,
    recording_app: Any,
    run_gateway: Any,
) -> None:
    app = recording_app()
    await start(run_gateway, slack_options, app)
    await slack_server.send_event(message("C0CHAN0001", "before"))
    await app.wait_for(lambda: len(messages(app)) == 1)
    if how in ("refresh_requested", "warning"):
        await slack_server.disconnect(how)
    else:
        await slack_server.drop_connections(abrupt=how == "abrupt")
    await slack_server.wait_connected(total=2, within=10)
    await slack_server.send_event(message("C0CHAN0001", "after"))
    await app.wait_for(lambda: len(messages(app)) == 2)
    [log] = app.logs  # one scope, one application instance, across the reconnect
    assert log.types == ["chat.connect", "chat.message", "chat.message"]
    assert len(slack_server.calls_to("apps.connections.open")) >= 2


@pytest.mark.parametrize(
    ("option", "method"), [("bot_token", "auth.test"), ("app_token", "apps.connections.open")]
)
async def test_a_refused_token_fails_the_start_without_showing_it(
    option: str, method: str, slack_server: SlackTestServer, slack_options: Any, recording_app: Any
) -> None:
    wrong = {"bot_token": "xoxb-wrong-secret-value", "app_token": "xapp-wrong-secret-value"}
    gateway = SlackGateway("slack", recording_app(), slack_options(**{option: wrong[option]}))
    with pytest.raises(GatewayError) as caught:
        async with asyncio.timeout(10):
            await gateway.start()
    text = str(caught.value)
    assert method in text
    assert "invalid_auth" in text
    assert "wrong-secret-value" not in text
    await gateway.stop()
    assert slack_server.live_connections == 0


async def test_an_unreachable_slack_fails_the_start(
    slack_options: Any, recording_app: Any, free_port: Any
) -> None:
    options = slack_options(base_url=f"http://127.0.0.1:{free_port()}/api/")
    gateway = SlackGateway("slack", recording_app(), options)
    with pytest.raises(GatewayError, match="cannot reach Slack's Web API"):
        async with asyncio.timeout(10):
            await gateway.start()
    await gateway.stop()
