"""The Teams gateway against TeamsTestServer: DMs, group chats and channels as conversations,
threads, mentions, replies, reactions, card actions, identities and idempotency keys, and what
the application sends (text, markdown, native cards, typing) posted to the Bot Connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_teams_helpers as helpers

from gateways.base import GatewayError
from gateways.testing.teams import TeamsTestServer, channel, group_chat, mention, personal, user

teams = helpers.teams
teams_options = helpers.teams_options
start_teams = helpers.start_teams


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send(
            {"type": "chat.send", "text": f"echo {event['text']}", "reply_to": event["id"]}
        )


def messages(app: Any) -> list[dict[str, Any]]:
    return [e for log in app.logs for e in log.events if e["type"] == "chat.message"]


async def test_a_dm_is_a_direct_conversation_with_the_users_identity(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    app = recording_app(echo)
    gateway = await start_teams(app)
    alice = user("Alice")
    dm = personal(alice)
    activity = teams.post_message(dm, alice, "hello")
    sent = await teams.wait_for_sent()
    assert sent.text == "echo hello"
    assert sent.conversation_id == dm["id"]
    assert sent.reply_to == activity["id"]
    assert sent.activity["replyToId"] == activity["id"]
    assert sent.activity["from"] == {"id": teams.bot["id"], "name": "Gateway Bot"}
    assert sent.activity["textFormat"] == "plain"
    (log,) = app.logs
    assert log.scope["platform"] == "teams"
    assert log.scope["bot"] == {"id": teams.bot["id"], "name": "Gateway Bot"}
    assert log.scope["conversation"] == {
        "id": dm["id"],
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    (event,) = messages(app)
    assert event["id"] == activity["id"]
    assert event["user"] == {
        "id": alice["id"],
        "name": "Alice",
        "is_bot": False,
        "identity": f"teams:{alice['id']}",
    }
    assert event["idempotency_key"] == f"teams:{dm['id']}/{activity['id']}"
    assert event["mentions_bot"] is False
    assert event["raw"]["serviceUrl"] == teams.service_url
    assert gateway.connected


async def test_a_mention_of_the_bot_in_a_channel_and_a_thread_of_it(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    app = recording_app(echo)
    await start_teams(app)
    alice, bob = user("Alice"), user("Bob")
    room = channel("general")
    markup, entity = mention(teams.bot)
    bob_markup, bob_entity = mention(bob)
    post = teams.post_message(
        room, alice, f"{markup} hi {bob_markup}", entities=[entity, bob_entity]
    )
    first = await teams.wait_for_sent()
    # A reply to a channel's post goes in its thread.
    assert first.conversation_id == f"{room['id']};messageid={post['id']}"
    assert first.text == "echo @Gateway Bot hi @Bob"
    answer = teams.post_message(room, bob, "in the thread", thread=post["id"])
    second = await teams.wait_for_sent(2)
    assert second.conversation_id == f"{room['id']};messageid={post['id']}"
    top, thread = messages(app)
    assert top["mentions_bot"] is True
    assert top["thread_id"] is None
    assert thread["thread_id"] == post["id"]
    assert thread["mentions_bot"] is False
    assert thread["idempotency_key"] == f"teams:{room['id']};messageid={post['id']}/{answer['id']}"
    conversations = {log.scope["scope_key"]: log.scope["conversation"] for log in app.logs}
    assert conversations == {
        room["id"]: {"id": room["id"], "kind": "group", "name": "general", "thread_id": None},
        f"{room['id']}/{post['id']}": {
            "id": room["id"],
            "kind": "thread",
            "name": "general",
            "thread_id": post["id"],
        },
    }


async def test_conversation_key_channel_keeps_a_channels_threads_in_one_scope(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    app = recording_app()
    await start_teams(app, conversation_key="channel")
    alice = user("Alice")
    room = channel("ops")
    post = teams.post_message(room, alice, "top")
    teams.post_message(room, alice, "reply", thread=post["id"])
    await app.wait_for(lambda: len(messages(app)) == 2)
    assert [log.scope["scope_key"] for log in app.logs] == [room["id"]]
    assert [m["thread_id"] for m in messages(app)] == [None, post["id"]]


async def test_a_group_chat_reactions_and_a_card_action(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    app = recording_app()
    await start_teams(app)
    alice = user("Alice")
    chat = group_chat("plans")
    said = teams.post_message(
        chat,
        alice,
        "lunch?",
        attachments=[
            {"contentType": "text/html", "content": "<p>lunch?</p>"},
            {
                "contentType": "image/png",
                "contentUrl": "https://example.invalid/a.png",
                "name": "a.png",
            },
        ],
    )
    liked = teams.react(chat, alice, said["id"], "like")
    teams.react(chat, alice, said["id"], "like", added=False)
    teams.post_message(chat, alice, "", value={"action_id": "vote", "value": 3}, replyToId="m1")
    await app.wait_for(lambda: len(app.logs[0].events) == 5 if app.logs else False)
    (log,) = app.logs
    assert log.scope["conversation"]["kind"] == "group"
    assert log.scope["conversation"]["name"] == "plans"
    message, added, removed, action = log.events[1:]
    assert message["attachments"] == [
        {
            "name": "a.png",
            "url": "https://example.invalid/a.png",
            "mimetype": "image/png",
            "size": None,
        }
    ]
    assert (added["type"], added["reaction"], added["added"], added["message_id"]) == (
        "chat.reaction",
        "like",
        True,
        said["id"],
    )
    assert added["idempotency_key"] == f"teams:{chat['id']}/{liked['id']}/0"
    assert removed["added"] is False
    assert action["type"] == "chat.action"
    assert (action["action_id"], action["value"], action["message_id"]) == ("vote", "3", "m1")


async def test_markdown_native_cards_and_typing_are_posted(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    card = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard"},
    }

    async def answer(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.typing"})
            await log.send({"type": "chat.send", "text": "**bold**", "format": "markdown"})
            await log.send({"type": "chat.send", "text": "card", "native": {"attachments": [card]}})
            try:
                await log.send(
                    {"type": "chat.react", "message_id": event["id"], "reaction": "like"}
                )
            except GatewayError as exc:
                await log.send({"type": "chat.send", "text": f"no: {exc}"})

    await start_teams(recording_app(answer))
    alice = user("Alice")
    teams.post_message(personal(alice), alice, "go")
    await teams.wait_for_sent(4)
    typing, bold, native, refused = teams.sent
    assert typing.type == "typing"
    assert (bold.text, bold.activity["textFormat"]) == ("**bold**", "markdown")
    assert native.activity["attachments"] == [card]
    assert refused.text.startswith("no: ")
    assert "reactions" in refused.text


async def test_the_bots_own_messages_and_other_activities_make_no_event(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    app = recording_app()
    await start_teams(app)
    alice = user("Alice")
    dm = personal(alice)
    own = teams.post_message(dm, dict(teams.bot), "my own")
    update = teams.post_activity(
        {"type": "conversationUpdate", "from": alice, "conversation": dm, "membersAdded": [alice]}
    )
    teams.post_message(dm, alice, "real")
    await app.wait_for(lambda: len(messages(app)) == 1)
    await teams.wait_delivered(own)
    await teams.wait_delivered(update)
    assert [m["text"] for m in messages(app)] == ["real"]


async def test_a_conversation_nobody_wrote_in_needs_service_url_until_someone_does(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    errors: list[str] = []

    async def hello(log: Any, event: dict[str, Any]) -> None:
        try:
            await log.send({"type": "chat.send", "text": f"after {event['type']}"})
        except GatewayError as exc:
            errors.append(str(exc))

    room = channel("ops")
    app = recording_app(hello)
    await start_teams(app, conversations=[{"id": room["id"], "name": "ops"}], service_url=None)
    await app.wait_for(lambda: bool(errors))
    assert "no Bot Connector known" in errors[0]
    assert "service_url" in errors[0]
    teams.post_message(room, user("Alice"), "now I write")
    sent = await teams.wait_for_sent()
    assert sent.text == "after chat.message"
    assert sent.conversation_id == room["id"]


async def test_a_configured_conversation_is_posted_in_through_service_url(
    teams: TeamsTestServer, recording_app: Any, start_teams: Callable[..., Any]
) -> None:
    async def hello(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.connect":
            await log.send({"type": "chat.send", "text": "hello, ops"})

    room = channel("ops")
    await start_teams(recording_app(hello), conversations=[{"id": room["id"], "name": "ops"}])
    sent = await teams.wait_for_sent()
    assert (sent.text, sent.conversation_id) == ("hello, ops", room["id"])


@pytest.mark.parametrize(
    ("key", "kind"),
    [("a:1abc", "direct"), ("19:x@thread.v2", "group"), ("19:x@thread.tacv2/17", "thread")],
)
async def test_a_key_addressed_is_parsed_back_into_a_conversation(
    teams_options: Any, recording_app: Any, key: str, kind: str
) -> None:
    from gateways.teams import TeamsGateway

    gateway = TeamsGateway("teams", recording_app(), teams_options())
    conversation = gateway.conversation_of_key(key)
    assert conversation is not None
    assert conversation["kind"] == kind
