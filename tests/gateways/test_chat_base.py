"""The chat gateway base: conversation keys, the chat scope, and checking what apps send."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from chat_helpers import sends

from gateways import ChatGateway, ChatGatewayOptions, GatewayError, ScopeInstance
from layer.types import ChatReactEvent, ChatSendMessageEvent, ChatTypingEvent, Message


class LoopbackChat(ChatGateway):
    """A transport-less chat platform: tests post messages, and read what the bot sent."""

    platform = "loop"

    def __init__(self, application: Any, **options: Any) -> None:
        super().__init__("loop", application, ChatGatewayOptions(**options))
        self.sent: list[tuple[str, Message]] = []
        self.ids = 0

    async def start_transport(self) -> None:
        self.bot = {"id": "B1", "name": "bot"}

    async def close_transport(self) -> None:
        pass

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        self.sent.append((instance.key, dict(event)))

    async def post(
        self,
        text: str,
        *,
        channel: str = "C1",
        kind: Any = "group",
        thread_id: str | None = None,
        user: str = "U1",
    ) -> str:
        key, conversation = self.conversation_for(
            channel_id=channel,
            kind=kind,
            name=None if kind == "direct" else "general",
            thread_id=thread_id,
            user_id=user,
        )
        self.ids += 1
        event = {
            "type": "chat.message",
            "id": str(self.ids),
            "text": text,
            "user": {"id": user, "name": None, "is_bot": False},
            "thread_id": thread_id,
            "mentions_bot": False,
            "attachments": [],
            "raw": {},
        }
        await self.dispatch_chat(key, conversation, event)
        return key


class RichChat(LoopbackChat):
    """A platform with markdown, native blocks, reactions and typing."""

    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})
    native_kinds: ClassVar[frozenset[str]] = frozenset({"blocks"})

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        self.sent.append((instance.key, dict(event)))

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        self.sent.append((instance.key, dict(event)))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("thread", ["C1", "C1/100", "C1", "D1"]),
        ("channel", ["C1", "C1", "C1", "D1"]),
        ("channel_user", ["C1/@U1", "C1/@U1", "C1/@U2", "D1/@U1"]),
    ],
)
async def test_each_conversation_key_mode_opens_one_scope_per_conversation(
    recording_app: Any, run_gateway: Any, mode: str, expected: list[str]
) -> None:
    app = recording_app()
    gateway = await run_gateway(LoopbackChat(app, conversation_key=mode))
    keys = [
        await gateway.post("top"),
        await gateway.post("in a thread", thread_id="100"),
        await gateway.post("from someone else", user="U2"),
        await gateway.post("in a DM", channel="D1", kind="direct"),
    ]
    assert keys == expected
    await app.wait_for(lambda: sum(len(log.events) for log in app.logs) == 4 + len(set(keys)))
    assert sorted(log.scope["scope_key"] for log in app.logs) == sorted(set(expected))


async def test_the_scope_names_platform_conversation_and_bot(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    layer = object()
    gateway = LoopbackChat(app)
    gateway.channel_layer = layer
    await run_gateway(gateway)
    await gateway.post("hi", thread_id="100")
    await gateway.post("hi", channel="C2", user="U7")
    await app.wait_for(lambda: len(app.logs) == 2)
    thread, channel = (app.by_key(k)[0].scope for k in ("C1/100", "C2"))
    assert thread["type"] == "chat"
    assert thread["gateway"] == "loop"
    assert thread["platform"] == "loop"
    assert thread["scope_key"] == "C1/100"
    assert thread["conversation"] == {
        "id": "C1",
        "kind": "thread",
        "name": "general",
        "thread_id": "100",
    }
    assert thread["bot"] == {"id": "B1", "name": "bot"}
    assert thread["channel_layer"] is layer
    assert channel["conversation"] == {
        "id": "C2",
        "kind": "group",
        "name": "general",
        "thread_id": None,
    }


async def test_channel_user_mode_names_the_user_of_the_conversation(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    gateway = await run_gateway(LoopbackChat(app, conversation_key="channel_user"))
    await gateway.post("hi", user="U9", thread_id="100")
    await app.wait_for(lambda: len(app.logs) == 1)
    assert app.logs[0].scope["conversation"] == {
        "id": "C1",
        "kind": "group",
        "name": "general",
        "thread_id": None,
        "user_id": "U9",
    }


async def test_connect_first_messages_in_order_disconnect_last(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    gateway = await run_gateway(LoopbackChat(app))
    for n in range(3):
        await gateway.post(f"m{n}")
    await gateway.stop(drain_timeout=1)
    (log,) = app.logs
    assert log.types == ["chat.connect", *["chat.message"] * 3, "chat.disconnect"]
    assert [e["text"] for e in log.events[1:4]] == ["m0", "m1", "m2"]
    assert log.events[-1] == {"type": "chat.disconnect", "reason": "shutdown"}


async def test_an_idle_conversation_ends_with_reason_idle(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app()
    gateway = await run_gateway(LoopbackChat(app, idle_timeout=0.05))
    await gateway.post("hello")
    await app.wait_for(lambda: bool(app.logs) and "chat.disconnect" in app.logs[0].types)
    assert app.logs[0].events[-1] == {"type": "chat.disconnect", "reason": "idle"}
    await gateway.post("again")
    await app.wait_for(lambda: len(app.logs) == 2)
    assert app.logs[1].types[:2] == ["chat.connect", "chat.message"]


async def test_close_ends_the_conversation_and_the_next_message_opens_a_new_one(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(sends({"type": "chat.close"}))
    gateway = await run_gateway(LoopbackChat(app))
    await gateway.post("bye")
    await app.wait_for(lambda: bool(app.logs) and "chat.disconnect" in app.logs[0].types)
    assert app.logs[0].events[-1]["reason"] == "closed"
    await gateway.post("hello again")
    await app.wait_for(lambda: len(app.logs) == 2)


async def test_send_fills_in_the_defaults_and_the_conversations_thread(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(
        sends(
            {"type": "chat.send", "text": "in the thread"},
            {"type": "chat.send", "text": "elsewhere", "thread": "200", "reply_to": "1"},
        )
    )
    gateway = await run_gateway(LoopbackChat(app))
    await gateway.post("hi", thread_id="100")
    await app.wait_for(lambda: len(gateway.sent) == 2)
    assert gateway.sent == [
        (
            "C1/100",
            {
                "type": "chat.send",
                "text": "in the thread",
                "thread": "100",
                "reply_to": None,
                "format": "plain",
                "native": None,
            },
        ),
        (
            "C1/100",
            {
                "type": "chat.send",
                "text": "elsewhere",
                "thread": "200",
                "reply_to": "1",
                "format": "plain",
                "native": None,
            },
        ),
    ]
    assert app.logs[0].errors == []


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"type": "chat.sned", "text": "hi"}, ["'chat.sned'", "chat.send, chat.react"]),
        ({"type": "chat.send"}, ["needs 'text'"]),
        ({"type": "chat.send", "text": b"hi"}, ["must be a str", "b'hi'"]),
        ({"type": "chat.send", "text": ""}, ["empty 'text'"]),
        ({"type": "chat.send", "text": "hi", "thraed": "1"}, ["unknown keys ['thraed']"]),
        ({"type": "chat.send", "text": "hi", "thread": 7}, ["'thread'", "7"]),
        ({"type": "chat.send", "text": "hi", "format": "html"}, ["'format'", "'html'"]),
        (
            {"type": "chat.send", "text": "*hi*", "format": "markdown"},
            ["cannot render", "'markdown'"],
        ),
        (
            {"type": "chat.send", "text": "hi", "native": {"blocks": []}},
            ["no native content", "['blocks']"],
        ),
        ({"type": "chat.react", "message_id": "1", "reaction": "tada"}, ["cannot send reactions"]),
        ({"type": "chat.typing"}, ["cannot show typing"]),
    ],
)
async def test_an_event_the_platform_cannot_do_raises_in_the_apps_send(
    recording_app: Any, run_gateway: Any, event: Message, words: list[str]
) -> None:
    app = recording_app(sends(event))
    gateway = await run_gateway(LoopbackChat(app))
    await gateway.post("hi")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors))
    message = str(app.logs[0].errors[0])
    for word in ["'loop'", "scope 'C1'", *words]:
        assert word in message
    assert gateway.sent == []


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (
            {"type": "chat.send", "text": "hi", "native": {"blocks": [], "dialog": {}}},
            ["can't use", "['dialog']", "['blocks']"],
        ),
        ({"type": "chat.send", "text": "hi", "native": ["blocks"]}, ["'native' must be a dict"]),
        ({"type": "chat.react", "message_id": "1", "reaction": ""}, ["'reaction'"]),
        ({"type": "chat.react", "message_id": 1, "reaction": "x"}, ["'message_id'", "1"]),
        ({"type": "chat.react", "message_id": "1", "reaction": "x", "remove": "yes"}, ["'yes'"]),
        ({"type": "chat.typing", "text": "..."}, ["unknown keys ['text']"]),
    ],
)
async def test_a_capable_platform_still_refuses_what_it_cannot_take(
    recording_app: Any, run_gateway: Any, event: Message, words: list[str]
) -> None:
    app = recording_app(sends(event))
    gateway = await run_gateway(RichChat(app))
    await gateway.post("hi")
    await app.wait_for(lambda: bool(app.logs and app.logs[0].errors))
    for word in words:
        assert word in str(app.logs[0].errors[0])
    assert gateway.sent == []


async def test_a_capable_platform_takes_markdown_native_reactions_and_typing(
    recording_app: Any, run_gateway: Any
) -> None:
    app = recording_app(
        sends(
            {"type": "chat.send", "text": "", "native": {"blocks": [{"type": "divider"}]}},
            {"type": "chat.send", "text": "*hi*", "format": "markdown"},
            {"type": "chat.react", "message_id": "1", "reaction": "tada", "remove": True},
            {"type": "chat.typing"},
        )
    )
    gateway = await run_gateway(RichChat(app))
    await gateway.post("hi")
    await app.wait_for(lambda: len(gateway.sent) == 4)
    assert app.logs[0].errors == []
    assert [event["type"] for _, event in gateway.sent] == [
        "chat.send",
        "chat.send",
        "chat.react",
        "chat.typing",
    ]
    assert gateway.sent[0][1]["native"] == {"blocks": [{"type": "divider"}]}
    assert gateway.sent[1][1]["format"] == "markdown"
    assert gateway.sent[2][1] == {
        "type": "chat.react",
        "message_id": "1",
        "reaction": "tada",
        "remove": True,
    }


async def test_dispatching_before_the_bot_is_known_is_an_error(recording_app: Any) -> None:
    class Forgetful(LoopbackChat):
        async def start_transport(self) -> None:
            pass

    gateway = Forgetful(recording_app())
    await gateway.start()
    try:
        with pytest.raises(GatewayError, match="bot identity not set"):
            await gateway.post("hi")
    finally:
        async with asyncio.timeout(5):
            await gateway.stop(drain_timeout=1)


def test_options_take_only_the_three_conversation_key_modes() -> None:
    assert ChatGatewayOptions().conversation_key == "thread"
    with pytest.raises(ValueError, match="conversation_key"):
        ChatGatewayOptions(conversation_key="user")  # type: ignore[arg-type]


async def test_configured_conversations_open_at_start_and_outlive_idle_timeout(
    recording_app: Any, run_gateway: Any
) -> None:
    """An alert conversation exists before anyone writes in it, and is never idle."""
    app = recording_app(on_event=sends({"type": "chat.send", "text": "noted"}))
    gateway = await run_gateway(
        LoopbackChat(
            app,
            idle_timeout=0.05,
            conversations=[{"id": "C9", "name": "alerts"}, {"id": "D9", "kind": "direct"}],
        )
    )
    await app.wait_for(lambda: len(app.logs) == 2)
    alerts, direct = app.logs
    assert alerts.scope["conversation"] == {
        "id": "C9",
        "kind": "group",
        "name": "alerts",
        "thread_id": None,
    }
    assert direct.scope["conversation"]["kind"] == "direct"
    assert alerts.types == ["chat.connect"]
    await gateway.post("other")  # an ordinary conversation, which does idle out
    await app.wait_for(lambda: len(app.logs) == 3 and "chat.disconnect" in app.logs[2].types)
    assert set(gateway.instances) == {"C9", "D9"}
    assert await gateway.post("hi", channel="C9") == "C9"  # a message joins the open one
    await app.wait_for(lambda: ("C9", {"type": "chat.send", "text": "noted"}) in _sent(gateway))
    assert len(app.logs) == 3


def _sent(gateway: LoopbackChat) -> list[tuple[str, Message]]:
    return [(key, {"type": e["type"], "text": e["text"]}) for key, e in gateway.sent]


def test_configured_conversations_are_checked() -> None:
    with pytest.raises(ValueError, match="can't be opened with conversation_key 'channel_user'"):
        ChatGatewayOptions(conversation_key="channel_user", conversations=[{"id": "C9"}])
    with pytest.raises(ValueError, match="each id may be listed once"):
        ChatGatewayOptions(conversations=[{"id": "C9"}, {"id": "C9"}])
    with pytest.raises(ValueError, match="kind"):
        ChatGatewayOptions(conversations=[{"id": "C9", "kind": "thread"}])


async def test_a_configured_conversation_that_crashes_is_opened_again(
    recording_app: Any, run_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    crashes = []

    async def crash_once(log: Any, event: Message) -> None:
        if event["type"] == "chat.message" and not crashes:
            crashes.append(log)
            raise RuntimeError("a consumer bug")

    class Quick(LoopbackChat):
        reopen_delay = 0.05

    app = CrashingApp(crash_once)
    gateway = await run_gateway(Quick(app, conversations=[{"id": "C9", "name": "alerts"}]))
    await gateway.post("boom", channel="C9")
    async with asyncio.timeout(5):
        while len(app.scopes) < 2:  # a fresh instance, opened by the gateway itself
            await asyncio.sleep(0.01)
    assert "C9" in gateway.instances
    assert "C9" in gateway.pinned
    assert "'C9', opened at start, ended without chat.close; opening it again" in caplog.text
    assert app.scopes[1] == [{"type": "chat.connect"}]


async def test_a_configured_conversation_the_application_closes_stays_closed(
    recording_app: Any, run_gateway: Any
) -> None:
    async def close_on_bye(log: Any, event: Message) -> None:
        if event.get("text") == "bye":
            await log.send({"type": "chat.close"})

    app = recording_app(on_event=close_on_bye)
    gateway = await run_gateway(LoopbackChat(app, conversations=[{"id": "C9"}]))
    await gateway.post("bye", channel="C9")
    await app.wait_for(lambda: bool(app.logs) and "chat.disconnect" in app.logs[0].types)
    await asyncio.sleep(0.1)
    assert "C9" not in gateway.instances
    await gateway.post("back", channel="C9")  # a message opens it again, pinned
    await app.wait_for(lambda: len(app.logs) == 2)
    assert "C9" in gateway.pinned


class CrashingApp:
    """Records each instance's events; ``on_event`` may raise, which ends the instance."""

    def __init__(self, on_event: Any) -> None:
        self.on_event = on_event
        self.scopes: list[list[Message]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        events: list[Message] = []
        self.scopes.append(events)
        while True:
            event = await receive()
            events.append(event)
            if event["type"] == "chat.disconnect":
                return
            await self.on_event(events, event)
