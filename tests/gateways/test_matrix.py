"""The Matrix gateway against a real Synapse, with an ordinary matrix-nio client playing the
human (``gateways.testing.synapse``)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateways.base import GatewayError
from gateways.matrix import MatrixAuthError, MatrixGateway, MatrixGatewayOptions
from gateways.testing.synapse import MatrixAccount, MatrixHuman, Synapse, SynapseNotInstalled

pytestmark = pytest.mark.timeout(60)


# -- fixtures (test_matrix_conformance.py imports them) ---------------------------------------


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One Synapse for the module's tests (it takes seconds to start); users and rooms are
    each test's own."""
    try:
        server = Synapse(tmp_path_factory.mktemp("synapse"))
    except SynapseNotInstalled as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


def new_account(server: Synapse, prefix: str) -> MatrixAccount:
    return server.register(f"{prefix}-{secrets.token_hex(3)}")


@pytest.fixture
def bot(synapse: Synapse) -> MatrixAccount:
    """A fresh bot account."""
    return new_account(synapse, "bot")


@pytest.fixture
async def human(synapse: Synapse) -> AsyncIterator[Callable[[str], Any]]:
    """``async with human("alice") as alice``: a fresh user's client, syncing."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(prefix: str) -> MatrixHuman:
            account = await asyncio.to_thread(new_account, synapse, prefix)
            return await stack.enter_async_context(MatrixHuman(synapse, account))

        yield make


@pytest.fixture
def make_matrix_gateway(synapse: Synapse, tmp_path: Path) -> Callable[..., MatrixGateway]:
    """``make_matrix_gateway(app, account, **options)``: a ``MatrixGateway`` named
    ``"matrix"`` (not started) logging in as ``account``, its store in ``tmp_path``."""

    def make(app: Any, account: MatrixAccount, **options: Any) -> MatrixGateway:
        settings: dict[str, Any] = {
            "homeserver": synapse.url,
            "user_id": account.user_id,
            "password": account.password,
            "store_path": tmp_path / f"store-{account.user_id}",
            "sync_timeout": 5,
            "connect_timeout": 10,
            "send_timeout": 20,
            "reconnect": {"initial": 0.1, "maximum": 1.0},
            **options,
        }
        return MatrixGateway("matrix", app, MatrixGatewayOptions(**settings))

    return make


async def room_with_bot(person: MatrixHuman, bot: MatrixAccount, **create: Any) -> str:
    """A room ``person`` created and invited the bot to, once the bot has joined."""
    room = await person.create_room(invite=[bot.user_id], **create)
    await person.wait_member(room, bot.user_id)
    return room


async def echo(log: Any, event: dict[str, Any]) -> None:
    if event["type"] == "chat.message":
        await log.send({"type": "chat.send", "text": f"echo {event['text']}"})


# -- tests ------------------------------------------------------------------------------------


async def test_a_room_is_a_group_conversation_and_the_answer_comes_back_to_it(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    gateway = await run_gateway(make_matrix_gateway(app, bot))
    assert gateway.connected
    alice = await human("alice")
    room = await room_with_bot(alice, bot, name="General")
    sent = await alice.send(room, "hello there")
    answer = await alice.next_message(room, bot.user_id)
    assert answer["content"]["body"] == "echo hello there"
    assert answer["content"]["msgtype"] == "m.notice"

    (log,) = app.by_key(room)
    assert log.scope["platform"] == "matrix"
    assert log.scope["conversation"] == {
        "id": room,
        "kind": "group",
        "name": "General",
        "thread_id": None,
    }
    assert log.scope["bot"] == {"id": bot.user_id, "name": bot.user_id[1:].split(":")[0]}
    assert log.types == ["chat.connect", "chat.message"]
    message = log.events[1]
    assert message["id"] == sent
    assert message["text"] == "hello there"
    assert message["user"] == {
        "id": alice.user_id,
        "name": alice.user_id[1:].split(":")[0],
        "is_bot": False,
        "identity": f"matrix:{alice.user_id}",
    }
    assert message["thread_id"] is None
    assert message["mentions_bot"] is False
    assert message["attachments"] == []
    assert message["raw"]["event"]["event_id"] == sent
    await asyncio.sleep(0.5)
    assert len(log.events) == 2  # the bot's own answer is not delivered back to it


async def test_a_direct_room_is_a_direct_conversation_and_every_message_mentions_the_bot(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot, direct=True)
    await alice.send(room, "psst")
    assert (await alice.next_message(room, bot.user_id))["content"]["body"] == "echo psst"
    (log,) = app.by_key(room)
    assert log.scope["conversation"] == {
        "id": room,
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    assert log.events[1]["mentions_bot"] is True


async def test_mentions_and_replies_to_the_bot_set_mentions_bot(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    async def answer_first(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message" and event["text"] == "first":
            await log.send({"type": "chat.send", "text": "noted"})

    app = recording_app(answer_first)
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    await alice.send(room, "first", **{"m.mentions": {}})
    noted = await alice.next_message(room, bot.user_id)
    localpart = bot.user_id[1:].split(":")[0]
    await alice.send(room, "hey you", **{"m.mentions": {"user_ids": [bot.user_id]}})
    await alice.send(room, f"{localpart}: status")  # an old client: no m.mentions
    await alice.send(room, f"{localpart}: not me", **{"m.mentions": {}})
    await alice.send(
        room,
        "> <@x:localhost> noted\n\nthanks",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": noted["event_id"]}}},
    )
    await app.wait_for(lambda: len(app.logs[0].events) == 6, within=15)
    messages = app.logs[0].events[1:]
    assert [m["text"] for m in messages] == [
        "first",
        "hey you",
        f"{localpart}: status",
        f"{localpart}: not me",
        "thanks",  # the reply's fallback quote is stripped
    ]
    assert [m["mentions_bot"] for m in messages] == [False, True, True, False, True]
    assert messages[-1]["raw"]["reply_to"] == noted["event_id"]


async def test_a_thread_is_its_own_conversation_and_the_answer_goes_into_the_thread(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    root = await alice.send(room, "root")
    await alice.next_message(room, bot.user_id)  # echo root, at the top level
    thread = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
              "m.in_reply_to": {"event_id": root}}  # fmt: skip
    await alice.send(room, "in the thread", **{"m.relates_to": thread})
    answer = await alice.next_message(room, bot.user_id)
    assert answer["content"]["body"] == "echo in the thread"
    assert answer["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert answer["content"]["m.relates_to"]["event_id"] == root
    (threaded,) = app.by_key(f"{room}/{root}")
    assert threaded.scope["conversation"] == {
        "id": room,
        "kind": "thread",
        "name": None,
        "thread_id": root,
    }
    assert threaded.events[1]["thread_id"] == root
    assert [e["text"] for e in app.by_key(room)[0].events[1:]] == ["root"]


async def test_the_backlog_is_not_delivered_and_a_restart_does_not_replay(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    alice = await human("alice")
    room = await alice.create_room(invite=[bot.user_id])
    await alice.send(room, "before the bot ever ran")
    app = recording_app(echo)
    first = await run_gateway(make_matrix_gateway(app, bot, rooms=[room]))
    await alice.send(room, "one")
    assert (await alice.next_message(room, bot.user_id))["content"]["body"] == "echo one"
    await first.stop(drain_timeout=2)

    await alice.send(room, "while it was away")
    again = recording_app(echo)
    await run_gateway(make_matrix_gateway(again, bot, rooms=[room]))
    assert (await alice.next_message(room, bot.user_id))["content"]["body"] == (
        "echo while it was away"
    )
    await alice.send(room, "two")
    assert (await alice.next_message(room, bot.user_id))["content"]["body"] == "echo two"
    texts = [
        e["text"]
        for log in app.logs + again.logs
        for e in log.events
        if e["type"] == "chat.message"
    ]
    assert texts.count("one") == 1
    assert "before the bot ever ran" not in texts
    assert [b["content"]["body"] for b in alice.messages(room, bot.user_id)] == [
        "echo one",
        "echo while it was away",
        "echo two",
    ]


async def test_messages_before_the_bot_joined_are_not_delivered(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    first = await run_gateway(make_matrix_gateway(app, bot))  # it keeps a sync token
    await first.stop(drain_timeout=2)
    alice = await human("alice")
    room = await alice.create_room()  # shared history: a new member can read what came before
    await alice.send(room, "old news")
    await alice.nio.room_invite(room, bot.user_id)
    gateway = await run_gateway(make_matrix_gateway(app, bot))  # this one accepts invites
    await alice.wait_member(room, bot.user_id)
    await alice.send(room, "news")
    assert (await alice.next_message(room, bot.user_id))["content"]["body"] == "echo news"
    assert gateway.connected
    texts = [e["text"] for log in app.by_key(room) for e in log.events if "text" in e]
    assert texts == ["news"]


async def test_a_wrong_password_and_an_unreachable_server_are_one_clear_error_at_start(
    bot, recording_app, make_matrix_gateway, free_port
):
    wrong = make_matrix_gateway(recording_app(), bot, password="not-the-password")
    with pytest.raises(MatrixAuthError, match="M_FORBIDDEN") as refused:
        await wrong.start()
    assert "not-the-password" not in str(refused.value)
    nowhere = make_matrix_gateway(
        recording_app(), bot, homeserver=f"http://127.0.0.1:{free_port()}", connect_timeout=5
    )
    with pytest.raises(GatewayError, match="unreachable") as unreachable:
        await nowhere.start()
    assert "homeserver" in str(unreachable.value)


async def test_a_room_that_cannot_be_joined_fails_the_start(
    bot, recording_app, make_matrix_gateway
):
    gateway = make_matrix_gateway(recording_app(), bot, rooms=["#no-such-room:localhost"])
    with pytest.raises(GatewayError, match="can't join room #no-such-room:localhost"):
        await gateway.start()


async def test_rate_limited_answers_all_arrive_once_and_in_order(
    synapse, bot, human, recording_app, make_matrix_gateway, run_gateway
):
    await asyncio.to_thread(synapse.override_ratelimit, bot.user_id, 2, 1)

    async def burst(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            for n in range(5):
                await log.send({"type": "chat.send", "text": f"answer {n}"})

    app = recording_app(burst)
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    await alice.send(room, "go")
    for n in range(5):
        answer = await alice.next_message(room, bot.user_id, within=20)
        assert answer["content"]["body"] == f"answer {n}"
    await app.wait_for(lambda: len(app.logs[0].events) == 2)
    assert not app.logs[0].errors
    await asyncio.sleep(1)
    assert len(alice.messages(room, bot.user_id)) == 5


async def test_after_a_homeserver_restart_the_same_scope_gets_the_next_message(
    synapse, bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    gateway = await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    await alice.send(room, "before")
    await alice.next_message(room, bot.user_id)
    await asyncio.to_thread(synapse.restart, 30)
    await alice.send(room, "after")
    assert (await alice.next_message(room, bot.user_id, within=30))["content"]["body"] == (
        "echo after"
    )
    assert gateway.connected
    (log,) = app.by_key(room)
    assert log.types == ["chat.connect", "chat.message", "chat.message"]


async def test_reactions_typing_and_markdown_reach_the_room(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    async def act(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send({"type": "chat.typing"})
            await log.send(
                {"type": "chat.react", "message_id": event["id"], "reaction": "thumbsup"}
            )
            await log.send({"type": "chat.send", "text": "**done**", "format": "markdown",
                            "reply_to": event["id"]})  # fmt: skip
        elif event["type"] == "chat.reaction":
            await log.send({"type": "chat.send", "text": f"you reacted {event['reaction']}"})

    app = recording_app(act)
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    asked = await alice.send(room, "please")
    done = await alice.next_message(room, bot.user_id)
    assert done["content"]["formatted_body"] == "<p><strong>done</strong></p>"
    assert done["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}
    assert done["content"]["m.mentions"] == {"user_ids": [alice.user_id]}
    reactions = [e for r, e in alice.events if r == room and e.get("type") == "m.reaction"]
    assert [e["content"]["m.relates_to"]["key"] for e in reactions] == ["👍"]
    await alice.nio.room_send(
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": done["event_id"], "key": "🎉"}},
    )
    back = await alice.next_message(room, bot.user_id)
    assert back["content"]["body"] == "you reacted 🎉"
    assert not app.logs[0].errors


async def test_a_file_is_an_attachment_with_its_download_url(
    synapse, bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app()
    await run_gateway(make_matrix_gateway(app, bot))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    await alice.nio.room_send(
        room,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "the report",
            "filename": "report.pdf",
            "url": "mxc://localhost/abcDEF123",
            "info": {"mimetype": "application/pdf", "size": 1234},
        },
    )
    await app.wait_for(lambda: bool(app.logs) and len(app.logs[0].events) == 2, within=15)
    message = app.logs[0].events[1]
    assert message["text"] == "the report"  # the caption (spec v1.10)
    assert message["attachments"] == [
        {
            "name": "report.pdf",
            "url": f"{synapse.url}/_matrix/client/v1/media/download/localhost/abcDEF123",
            "mimetype": "application/pdf",
            "size": 1234,
        }
    ]
    assert message["raw"]["msgtype"] == "m.file"


async def test_with_conversation_key_channel_a_thread_is_in_its_room_and_replies_stay_in_it(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send(
                {"type": "chat.send", "text": f"re {event['text']}", "thread": event["thread_id"]}
            )

    app = recording_app(reply)
    await run_gateway(make_matrix_gateway(app, bot, conversation_key="channel"))
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    root = await alice.send(room, "root")
    await alice.next_message(room, bot.user_id)
    thread = {"rel_type": "m.thread", "event_id": root}
    await alice.send(room, "threaded", **{"m.relates_to": thread})
    answer = await alice.next_message(room, bot.user_id)
    assert answer["content"]["m.relates_to"]["event_id"] == root
    assert answer["content"]["m.relates_to"]["rel_type"] == "m.thread"
    (log,) = app.logs
    assert log.scope["scope_key"] == room
    assert [e["thread_id"] for e in log.events[1:]] == [None, root]


async def test_a_send_the_homeserver_refuses_is_a_clear_error_in_the_applications_send(
    bot, human, recording_app, make_matrix_gateway, run_gateway
):
    alice = await human("alice")
    room = await alice.create_room()  # the bot is not in it

    async def say(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.connect":
            await log.send({"type": "chat.send", "text": "anyone?"})

    app = recording_app(say)
    await run_gateway(make_matrix_gateway(app, bot, conversations=[{"id": room}]))
    await app.wait_for(lambda: bool(app.logs) and bool(app.logs[0].errors), within=15)
    error = app.logs[0].errors[0]
    assert isinstance(error, GatewayError)
    assert f"scope {room!r}" in str(error)
    assert "M_FORBIDDEN" in str(error)


async def test_a_revoked_access_token_is_replaced_by_a_new_password_login(
    synapse, bot, human, recording_app, make_matrix_gateway, run_gateway
):
    app = recording_app(echo)
    gateway = await run_gateway(make_matrix_gateway(app, bot))
    stored = gateway.store.session()
    assert stored is not None
    token = stored[0]
    assert token != bot.access_token  # the gateway's own device, from its login
    alice = await human("alice")
    room = await room_with_bot(alice, bot)
    await asyncio.to_thread(synapse.request, "POST", "/_matrix/client/v3/logout", {}, token)
    await alice.send(room, "still there?")
    answer = await alice.next_message(room, bot.user_id, within=30)
    assert answer["content"]["body"] == "echo still there?"
    renewed = gateway.store.session()
    assert renewed is not None
    assert renewed[0] != token
