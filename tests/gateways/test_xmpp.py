"""The XMPP gateway against a real Prosody: one-to-one chats and rooms (XEP-0045) as chat
scopes, identities, history, presence, and what the gateway refuses to send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_xmpp_helpers import *  # noqa: F403 (its fixtures)
from test_xmpp_helpers import BOT, ROOM

from gateways.base import GatewayError

pytestmark = pytest.mark.timeout(60)


def echo(prefix: str = "echo ") -> Any:
    async def on_event(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.send", "text": prefix + event["text"]})

    return on_event


def messages(app: Any) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def test_a_direct_message_is_a_direct_scope_and_the_reply_reaches_the_sender(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    gateway = await run_gateway(make_xmpp_gateway(prosody, app))
    assert gateway.connected
    alice = await human(prosody, "alice")
    alice.say(BOT, "hello bot")
    reply = await alice.expect(r"^echo hello bot$", sender=BOT)
    assert str(reply["type"]) == "chat"
    [log] = app.logs
    scope = log.scope
    assert scope["platform"] == "xmpp"
    assert scope["scope_key"] == "alice@localhost"
    assert scope["conversation"] == {
        "id": "alice@localhost",
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    assert scope["bot"] == {"id": BOT, "name": "bot"}
    [event] = messages(app)
    assert event["text"] == "hello bot"
    assert event["user"] == {
        "id": "alice@localhost",
        "name": "alice",
        "is_bot": False,
        "identity": "xmpp:alice@localhost",
    }
    assert event["mentions_bot"] is True
    assert event["thread_id"] is None
    assert event["raw"]["from"] == "alice@localhost/human"
    assert log.types[0] == "chat.connect"
    # A second message goes to the same scope, and the same instance.
    alice.say(BOT, "again")
    await alice.expect(r"^echo again$")
    assert len(app.logs) == 1
    assert [e["text"] for e in messages(app)] == ["hello bot", "again"]


async def test_a_room_is_one_group_scope_and_the_bot_answers_in_it(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice = await human(prosody, "alice")
    bob = await human(prosody, "bob")
    await alice.join(ROOM, "alice")
    await bob.join(ROOM, "bob")
    assert "bot" in alice.occupants(ROOM)  # the bot's presence in the room
    alice.say(ROOM, "bot: hi room", groupchat=True)
    await bob.expect(r"^echo bot: hi room$", sender=f"{ROOM}/bot")
    bob.say(ROOM, "just chatting", groupchat=True)
    await alice.expect(r"^echo just chatting$", sender=f"{ROOM}/bot")
    await alice.nothing(0.5)  # the bot's own messages, reflected by the room, got no answer
    [log] = app.logs
    assert log.scope["conversation"] == {
        "id": ROOM,
        "kind": "group",
        "name": "lobby",
        "thread_id": None,
    }
    first, second = messages(app)
    assert (first["text"], first["mentions_bot"]) == ("bot: hi room", True)
    assert (second["text"], second["mentions_bot"]) == ("just chatting", False)
    assert first["user"]["id"] == f"{ROOM}/alice"
    assert first["user"]["name"] == "alice"
    assert second["user"]["name"] == "bob"


async def test_a_semi_anonymous_room_gives_no_identity_a_non_anonymous_one_does(
    make_prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    for public, identity in ((False, None), (True, "xmpp:alice@localhost")):
        server = make_prosody(public_jids=public)
        alice = await human(server, "alice")
        await alice.join(ROOM, "alice")  # alice creates the room and owns it: the bot doesn't
        app = recording_app(echo())
        await run_gateway(make_xmpp_gateway(server, app, rooms=[ROOM]))
        alice.say(ROOM, "who am I", groupchat=True)
        await alice.expect(r"^echo who am I$")
        [event] = messages(app)
        assert event["user"]["identity"] == identity, f"public_jids={public}"
        assert event["user"]["id"] == f"{ROOM}/alice"


async def test_the_history_a_room_replays_on_join_is_not_delivered(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")
    for text in ("old one", "old two"):
        alice.say(ROOM, text, groupchat=True)
        await alice.expect(rf"^{text}$")  # reflected: the room has it in its history
    app = recording_app(echo())
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice.say(ROOM, "new", groupchat=True)
    await alice.expect(r"^echo new$", sender=f"{ROOM}/bot")
    assert [e["text"] for e in messages(app)] == ["new"]


async def test_a_mention_of_the_nick_anywhere_sets_mentions_bot(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    app = recording_app(echo())
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[{"jid": ROOM, "nick": "thermo"}]))
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")
    for text in ("ask Thermo, it knows", "@thermo temp", "the thermostat is off"):
        alice.say(ROOM, text, groupchat=True)
        await alice.expect(rf"^echo {text}$", sender=f"{ROOM}/thermo")
    assert [e["mentions_bot"] for e in messages(app)] == [True, True, False]


async def test_contacts_see_the_bot_online(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    await run_gateway(make_xmpp_gateway(prosody, recording_app()))
    alice = await human(prosody, "alice")
    alice.client.send_presence(pto=BOT, ptype="subscribe")  # the bot approves subscriptions

    def online() -> bool:
        return any(
            str(p["from"]).startswith(BOT + "/") and str(p["type"]) in ("available", "")
            for p in alice.presences
        )

    async with asyncio.timeout(10):
        while not online():
            await asyncio.sleep(0.05)


async def test_reply_to_names_the_author_in_a_room_and_markdown_goes_as_text(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    async def on_event(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send(
                {
                    "type": "chat.send",
                    "text": "*done*",
                    "reply_to": event["id"],
                    "format": "markdown",
                }
            )

    app = recording_app(on_event)
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")
    alice.say(ROOM, "do it", groupchat=True)
    reply = await alice.expect(r"done", sender=f"{ROOM}/bot")
    assert str(reply["body"]) == "alice: *done*"
    assert '<reply xmlns="urn:xmpp:reply:0"' in str(reply)
    assert app.logs[0].errors == []


async def test_what_xmpp_cannot_do_is_a_clear_error_and_the_scope_goes_on(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    attempts = [
        {"type": "chat.send", "text": "in a thread", "thread": "t1"},
        {"type": "chat.send", "text": ""},
        {"type": "chat.send", "text": "x", "native": {"blocks": []}},
        {"type": "chat.react", "message_id": "1", "reaction": "thumbsup"},
    ]

    async def on_event(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            for attempt in attempts:
                try:
                    await log.send(attempt)
                except GatewayError as exc:
                    log.errors.append(exc)
            await log.send({"type": "chat.typing"})
            await log.send({"type": "chat.send", "text": "still here"})

    app = recording_app(on_event)
    await run_gateway(make_xmpp_gateway(prosody, app))
    alice = await human(prosody, "alice")
    alice.say(BOT, "try")
    await alice.expect(r"^still here$")
    errors = [str(e) for e in app.logs[0].errors]
    assert len(errors) == 4, errors
    assert "no threads" in errors[0]
    assert "empty 'text'" in errors[1]
    assert "native" in errors[2]
    assert "reactions" in errors[3]
    assert all("'alice@localhost'" in e for e in errors)
    assert (BOT + "/asgi-gateway", "composing") in alice.chat_states  # chat.typing: XEP-0085


async def test_a_private_message_from_a_room_occupant_is_a_direct_scope_of_its_own(
    prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")  # alice owns the room; it hides real JIDs from the bot
    app = recording_app(echo())
    await run_gateway(make_xmpp_gateway(prosody, app, rooms=[ROOM]))
    alice.say(f"{ROOM}/bot", "psst")
    await alice.expect(r"^echo psst$", sender=f"{ROOM}/bot")
    [log] = app.logs
    assert log.scope["conversation"]["id"] == f"{ROOM}/alice"
    assert log.scope["conversation"]["kind"] == "direct"
    [event] = messages(app)
    assert event["user"]["id"] == f"{ROOM}/alice"
    assert event["user"]["identity"] is None  # a nick in a room vouches for no one
    assert event["mentions_bot"] is True


async def test_a_room_the_bot_creates_is_unlocked_for_the_others(
    make_prosody, make_xmpp_gateway, run_gateway, recording_app, human
):
    server = make_prosody(room_locking=True)  # Prosody's default: locked until configured
    app = recording_app(echo())
    await run_gateway(make_xmpp_gateway(server, app, rooms=[ROOM]))
    alice = await human(server, "alice")
    await alice.join(ROOM, "alice")
    alice.say(ROOM, "bot: open?", groupchat=True)
    await alice.expect(r"^echo bot: open\?$", sender=f"{ROOM}/bot")


async def test_a_configured_room_conversation_can_speak_first(
    prosody, make_xmpp_gateway, run_gateway, human
):
    alice = await human(prosody, "alice")
    await alice.join(ROOM, "alice")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (event := await receive())["type"] != "chat.disconnect":
            if event["type"] == "chat.connect":
                await send({"type": "chat.send", "text": "alert: kitchen at 27 °C"})

    await run_gateway(
        make_xmpp_gateway(prosody, app, rooms=[ROOM], conversations=[{"id": ROOM, "kind": "group"}])
    )
    await alice.expect(r"^alert: kitchen at 27 °C$", sender=f"{ROOM}/bot")
