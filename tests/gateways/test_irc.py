"""The IRC gateway against a real ngircd, with an ordinary IRC client playing the human."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from gateways.base import GatewayError

pytestmark = pytest.mark.timeout(60)


def bot_lines(human: Any, target: str) -> list[bytes]:
    """The raw PRIVMSG lines (bytes, without CRLF) the bot sent to ``target``."""
    prefix = b":gwbot!"
    wanted = f" PRIVMSG {target} :".encode()
    return [line for line in human.raw_lines if line.startswith(prefix) and wanted in line]


def text_of(line: bytes) -> str:
    return line.split(b" :", 1)[1].decode()  # strict: a cut inside a character fails here


async def test_channel_and_private_messages_open_one_conversation_each(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    app = recording_app()
    gateway = await run_gateway(make_irc_gateway(ngircd, app))
    assert gateway.connected
    async with irc_human(ngircd, "alice") as alice, irc_human(ngircd, "bob") as bob:
        await alice.join("#t")
        await bob.join("#t")
        await alice.wait_member("#t", "gwbot")
        await alice.privmsg("#t", "hello all")
        await bob.privmsg("#T", "hi from bob")  # channel names are case-insensitive
        await alice.privmsg("gwbot", "psst")
        await bob.privmsg("gwbot", "psst too")
        await alice.privmsg("gwbot", "again")

        def arrived() -> bool:
            return sum(log.types.count("chat.message") for log in app.logs) == 5

        await app.wait_for(arrived, within=10)

    assert sorted(log.scope["scope_key"] for log in app.logs) == ["#t", "alice", "bob"]
    (channel,) = app.by_key("#t")
    assert channel.scope["type"] == "chat"
    assert channel.scope["platform"] == "irc"
    assert channel.scope["gateway"] == "irc"
    assert channel.scope["conversation"] == {
        "id": "#t",
        "kind": "group",
        "name": "#t",
        "thread_id": None,
    }
    assert channel.scope["bot"] == {"id": "gwbot", "name": "gwbot"}
    messages = [e for e in channel.events if e["type"] == "chat.message"]
    assert [(m["user"]["name"], m["text"]) for m in messages] == [
        ("alice", "hello all"),
        ("bob", "hi from bob"),
    ]
    first = messages[0]
    # ngircd has no services: no account-tag, so no identity a nick could not spoof.
    assert first["user"] == {"id": "alice", "name": "alice", "is_bot": False, "identity": None}
    assert first["thread_id"] is None
    assert first["mentions_bot"] is False
    assert first["attachments"] == []
    assert first["raw"]["source"].startswith("alice!")
    assert first["raw"]["target"] == "#t"

    (direct,) = app.by_key("alice")
    assert direct.scope["conversation"] == {
        "id": "alice",
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    texts = [e["text"] for e in direct.events if e["type"] == "chat.message"]
    assert texts == ["psst", "again"]
    assert all(e["mentions_bot"] for e in direct.events if e["type"] == "chat.message")
    (bobs,) = app.by_key("bob")
    assert [e["text"] for e in bobs.events if e["type"] == "chat.message"] == ["psst too"]


async def test_messages_addressed_to_the_bot_set_mentions_bot_and_keep_their_text(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    app = recording_app()
    await run_gateway(make_irc_gateway(ngircd, app))
    sent = ["gwbot: temp", "GWBot, temp kitchen", "@gwbot temp", "gwbotty: no", "temp gwbot"]
    async with irc_human(ngircd, "alice") as alice:
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot")
        for text in sent:
            await alice.privmsg("#t", text)
        await alice.privmsg("#t", "\x01ACTION waves at gwbot\x01")
        await app.wait_for(lambda: len(app.logs) == 1 and len(app.logs[0].events) == 7)
    messages = app.logs[0].events[1:]
    assert [m["text"] for m in messages] == [*sent, "waves at gwbot"]
    assert [m["mentions_bot"] for m in messages] == [True, True, True, False, False, False]
    action = messages[-1]
    assert action["raw"]["ctcp"] == "ACTION"
    assert action["raw"]["text"] == "\x01ACTION waves at gwbot\x01"
    assert messages[0]["raw"]["ctcp"] is None


async def test_a_long_reply_is_split_within_512_bytes_and_arrives_whole_and_in_order(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    words = " ".join(f"wörd{i:04d}" for i in range(400))  # about 4 KB, multi-byte letters
    unbroken = "é" * 700  # one 1400-byte word: cut between characters
    replies = [f"{words}\nsecond paragraph", unbroken]

    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            for text in replies:
                await log.send({"type": "chat.send", "text": text})

    app = recording_app(reply)
    await run_gateway(make_irc_gateway(ngircd, app))
    async with irc_human(ngircd, "alice") as alice:
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot")
        await alice.privmsg("#t", "gwbot: talk")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :second paragraph$", within=20)
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :é+$", within=20)
        expected_bytes = len(unbroken.encode())

        def unbroken_received() -> int:
            lines = bot_lines(alice, "#t")
            tail = [text_of(line) for line in lines if line.rstrip().endswith("é".encode())]
            return sum(len(t.encode()) for t in tail if set(t) == {"é"})

        async with asyncio.timeout(20):
            while unbroken_received() < expected_bytes:
                await asyncio.sleep(0.05)
    assert not app.logs[0].errors
    lines = bot_lines(alice, "#t")
    assert len(lines) > 10
    assert all(len(line) + 2 <= 512 for line in lines), max(len(line) for line in lines)
    texts = [text_of(line) for line in lines]  # each line is whole UTF-8
    split_at = texts.index("second paragraph")
    assert " ".join(texts[:split_at]) == words  # cut at spaces, nothing lost, in order
    assert "".join(texts[split_at + 1 :]) == unbroken
    assert len(texts) - split_at - 1 >= 3  # 1400 bytes do not fit in fewer lines


async def test_flood_control_sends_every_line_of_concurrent_replies_in_order(
    make_ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    server = make_ngircd(penalties=True)  # ngircd's own flood protection on, as on a network

    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            who = event["user"]["name"]
            await log.send({"type": "chat.send", "text": "\n".join(f"{who} {i}" for i in range(6))})

    app = recording_app(reply)
    await run_gateway(make_irc_gateway(server, app, flood={"burst": 2, "rate": 20}))
    async with irc_human(server, "alice") as alice, irc_human(server, "bob") as bob:
        await alice.privmsg("gwbot", "one")
        await bob.privmsg("gwbot", "two")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG alice :alice 5$", within=20)
        await bob.expect(r"^:gwbot!\S+ PRIVMSG bob :bob 5$", within=20)
    assert [text_of(line) for line in bot_lines(alice, "alice")] == [f"alice {i}" for i in range(6)]
    assert [text_of(line) for line in bot_lines(bob, "bob")] == [f"bob {i}" for i in range(6)]


async def test_the_token_bucket_makes_the_line_after_the_burst_wait():
    from gateways.irc.text import TokenBucket

    bucket = TokenBucket(burst=2, rate=1.0)
    await bucket.take()
    await bucket.take()
    third = asyncio.create_task(bucket.take())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not third.done()  # the burst is spent: a token comes back after 1 s
    third.cancel()
    unlimited = TokenBucket(burst=1, rate=None)
    for _ in range(100):
        await unlimited.take()


async def test_reply_to_prefixes_the_author_and_markdown_goes_out_as_plain_text(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    async def reply(log: Any, event: dict[str, Any]) -> None:
        if event["type"] == "chat.message":
            await log.send(
                {
                    "type": "chat.send",
                    "text": "*done*",
                    "reply_to": event["id"],
                    "format": "markdown",
                }
            )
            await log.send({"type": "chat.send", "text": "plain", "reply_to": "no-such-id"})

    app = recording_app(reply)
    await run_gateway(make_irc_gateway(ngircd, app))
    async with irc_human(ngircd, "alice") as alice:
        await alice.join("#t")
        await alice.wait_member("#t", "gwbot")
        await alice.privmsg("#t", "gwbot: do it")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :alice: \*done\*$")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG #t :plain$")
    assert not app.logs[0].errors


async def test_threads_native_content_reactions_and_typing_are_refused_clearly(
    ngircd, irc_human, recording_app, make_irc_gateway, run_gateway
):
    attempts = [
        {"type": "chat.send", "text": "in a thread", "thread": "1"},
        {"type": "chat.send", "text": "blocks", "native": {"blocks": []}},
        {"type": "chat.react", "message_id": "1", "reaction": "thumbsup"},
        {"type": "chat.typing"},
    ]

    async def misbehave(log: Any, event: dict[str, Any]) -> None:
        if event["type"] != "chat.message":
            return
        for attempt in attempts:
            try:
                await log.send(attempt)
            except GatewayError as exc:
                log.errors.append(exc)
        await log.send({"type": "chat.send", "text": "still here"})

    app = recording_app(misbehave)
    await run_gateway(make_irc_gateway(ngircd, app))
    async with irc_human(ngircd, "alice") as alice:
        await alice.privmsg("gwbot", "go")
        await alice.expect(r"^:gwbot!\S+ PRIVMSG alice :still here$")
    errors = [str(e) for e in app.logs[0].errors]
    assert len(errors) == 4, errors
    assert all("gateway 'irc'" in e and "'alice'" in e for e in errors), errors
    assert re.search(r"IRC has no threads.*'1'", errors[0])
    assert "native" in errors[1]
    assert "irc" in errors[1]
    assert re.search(r"IRC has no reactions.*'thumbsup'", errors[2])
    assert "typing" in errors[3]
    assert "message-tags" in errors[3]
    assert not [line for line in bot_lines(alice, "alice") if b"thread" in line]
