"""ChatConsumer: commands in every form, mentions, help, unknown commands, hooks, state,
the channel layer; and ChatCommunicator, which drives them as a chat gateway would."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest

from consumers import ChatCommunicator, ChatConsumer, ConsumerError, command
from gateways.console import ConsoleGateway, ConsoleGatewayOptions


class Thermo(ChatConsumer):
    """Knows two rooms; counts questions; records what reaches its hooks."""

    groups = ("alerts",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked = 0
        self.heard: list[tuple[bool, str]] = []

    @command("temp", help="the room's temperature", usage="<room>", aliases=["t"])
    async def temp(self, message: Any, args: list[str]) -> str:
        self.asked += 1
        if not args:
            return "which room?"
        return f"{args[0]}: 21.5 (question {self.asked})"

    @command(help="say it back")
    async def echo(self, message: Any, args: list[str]) -> None:
        await self.reply(message, " ".join(args), reply_to=message.get("id"))

    async def receive(self, message: Any) -> None:
        self.heard.append(self.address(message))
        await super().receive(message)

    async def receive_reaction(self, message: Any) -> None:
        verb = "added" if message["added"] else "removed"
        await self.say(f"{message['user']['name']} {verb} {message['reaction']}")

    async def receive_action(self, message: Any) -> None:
        await self.say(f"pressed {message['action_id']}={message['value']}")

    async def alert_raised(self, message: Any) -> None:
        await self.say(f"alert: {message['text']}")

    @command(help="how many questions so far")
    async def heardof(self, message: Any, args: list[str]) -> str:
        return f"{self.asked} questions, {len(self.heard)} other messages"


def communicator(**kwargs: Any) -> ChatCommunicator:
    kwargs.setdefault("bot", {"id": "U123BOT", "name": "thermo"})
    return ChatCommunicator(Thermo.as_asgi(), **kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "temp kitchen",
        "TEMP kitchen",
        "t kitchen",
        "@thermo temp kitchen",
        "<@U123BOT> temp kitchen",
        "<@U123BOT|thermo>  temp   kitchen",
        "thermo: temp kitchen",
        "Thermo, temp kitchen",
        "temp kitchen @thermo",
        "@**thermo** temp kitchen",  # Zulip's mention
        "@**thermo|4001** temp kitchen",
        "@_**thermo** temp kitchen",  # Zulip's silent mention
    ],
)
async def test_a_command_is_found_in_a_message_with_or_without_the_bots_mention(
    text: str,
) -> None:
    chat = communicator()
    await chat.connect()
    await chat.say(text)
    assert await chat.receive_text() == "kitchen: 21.5 (question 1)"
    await chat.disconnect()


async def test_a_slash_command_runs_its_handler_with_the_words_after_it() -> None:
    chat = communicator()
    await chat.connect()
    await chat.command("/temp", "kitchen  upstairs")
    assert await chat.receive_text() == "kitchen: 21.5 (question 1)"
    await chat.command("/temp")
    assert await chat.receive_text() == "which room?"
    await chat.disconnect()


async def test_state_on_the_instance_lasts_for_the_conversation() -> None:
    chat = communicator()
    await chat.connect()
    for n in range(1, 4):
        await chat.say(f"temp room{n}")
        assert await chat.receive_text() == f"room{n}: 21.5 (question {n})"
    await chat.say("nice weather")
    await chat.say("heardof")
    assert await chat.receive_text() == "3 questions, 1 other messages"
    await chat.disconnect()


async def test_the_answer_goes_to_the_thread_of_the_message() -> None:
    chat = communicator()
    await chat.connect()
    await chat.say("temp hall", thread_id="1712.5")
    answer = await chat.receive_send()
    assert answer["thread"] == "1712.5"
    await chat.say("echo hi there", thread_id="1712.5", id="1712.9")
    assert await chat.receive_send() == {
        "type": "chat.send",
        "text": "hi there",
        "thread": "1712.5",
        "reply_to": "1712.9",
    }
    await chat.disconnect()


async def test_help_lists_every_command_with_its_help_and_explains_one() -> None:
    chat = communicator()
    await chat.connect()
    await chat.say("help")
    assert await chat.receive_text() == (
        "Commands:\n"
        "echo: say it back\n"
        "heardof: how many questions so far\n"
        "help [command]: list the commands, or explain one\n"
        "temp <room>: the room's temperature"
    )
    await chat.command("/help", "temp")
    assert await chat.receive_text() == "temp <room>: the room's temperature (also: t)"
    await chat.say("@thermo help nope")
    assert await chat.receive_text() == "No command 'nope'. Say help for the list."
    await chat.disconnect()


async def test_an_unknown_command_addressed_to_the_bot_is_answered() -> None:
    chat = communicator()
    await chat.connect()
    await chat.say("@thermo fly me to the moon")
    unknown = "Sorry, I don't know the command 'fly'. Commands: echo, heardof, help, temp."
    assert await chat.receive_text() == unknown
    await chat.command("/weather", "today")
    assert await chat.receive_text() == unknown.replace("'fly'", "'/weather'")
    await chat.say("can you help, <@U123BOT>?")
    assert (await chat.receive_text()).startswith("Sorry, I don't know the command 'can'")
    await chat.say("@thermo")
    assert (await chat.receive_text()).startswith("Commands:\n")
    await chat.disconnect()


async def test_chatter_in_a_channel_goes_to_receive_and_gets_no_answer() -> None:
    chat = communicator()
    await chat.connect()
    await chat.say("lunch anyone?")
    await chat.say("@thermo how warm is it")
    await chat.receive_output()  # the unknown-command answer to the mention
    await chat.receive_nothing()
    await chat.say("heardof")
    assert await chat.receive_text() == "0 questions, 2 other messages"
    await chat.disconnect()


async def test_in_a_dm_every_message_is_addressed_to_the_bot() -> None:
    chat = communicator(kind="direct")
    await chat.connect()
    assert chat.scope["conversation"] == {
        "id": "D-alice",
        "kind": "direct",
        "name": None,
        "thread_id": None,
    }
    await chat.say("hello")
    assert (await chat.receive_text()).startswith("Sorry, I don't know the command 'hello'")
    await chat.disconnect()


async def test_receive_sees_the_text_without_the_mention() -> None:
    seen: list[tuple[bool, str]] = []

    class Listener(ChatConsumer):
        async def receive(self, message: Any) -> None:
            seen.append(self.address(message))

    chat = ChatCommunicator(Listener.as_asgi(), bot={"id": "U1", "name": "bot"})
    await chat.connect()
    await chat.say("<@U1> how are you?")
    await chat.say("bot, you there")
    await chat.say("just chatting")
    await chat.say("ping <@U1> and <@U1|bot>!")
    await chat.receive_nothing()
    assert seen == [
        (True, "how are you?"),
        (True, "you there"),
        (False, "just chatting"),
        (True, "ping and !"),
    ]
    await chat.disconnect()


async def test_require_address_ignores_commands_in_chatter() -> None:
    class Quiet(Thermo):
        require_address = True

    chat = ChatCommunicator(Quiet.as_asgi(), bot="thermo")
    await chat.connect()
    await chat.say("temp kitchen")
    await chat.receive_nothing()
    await chat.say("@thermo temp kitchen")
    assert await chat.receive_text() == "kitchen: 21.5 (question 1)"
    await chat.disconnect()


async def test_command_prefixes_address_the_bot() -> None:
    class Irc(Thermo):
        command_prefixes = ("!",)
        require_address = True

    chat = ChatCommunicator(Irc.as_asgi(), bot="thermo")
    await chat.connect()
    await chat.say("!temp hall")
    assert await chat.receive_text() == "hall: 21.5 (question 1)"
    await chat.say("! temp hall")
    await chat.say("!!")
    assert (await chat.receive_text()).startswith("Sorry, I don't know the command '!'")
    await chat.disconnect()


async def test_reactions_and_actions_reach_their_hooks() -> None:
    chat = communicator()
    await chat.connect()
    message = await chat.say("lunch?")
    await chat.react(message["id"], "tada", user="bob")
    assert await chat.receive_text() == "bob added tada"
    await chat.react(message["id"], "tada", added=False, user="bob")
    assert await chat.receive_text() == "bob removed tada"
    await chat.action("approve", "yes")
    assert await chat.receive_text() == "pressed approve=yes"
    await chat.disconnect()


async def test_layer_messages_are_dispatched_by_type(channel_layer: Any) -> None:
    chat = communicator(channel_layer=channel_layer)
    await chat.connect()
    await channel_layer.group_send("alerts", {"type": "alert.raised", "text": "kitchen 31 C"})
    assert await chat.receive_text() == "alert: kitchen 31 C"
    await chat.disconnect()


async def test_helpers_send_the_events_of_the_spec() -> None:
    class Helpers(ChatConsumer):
        async def receive(self, message: Any) -> None:
            await self.say("**hi**", format="markdown", native={"blocks": []})
            await self.react(message["id"], ":thumbsup:")
            await self.react(message["id"], "thumbsup", remove=True)
            await self.typing()
            await self.send({"type": "chat.send", "text": "raw"})
            with pytest.raises(ConsumerError, match="'html'"):
                await self.say("x", format="html")  # type: ignore[arg-type]
            with pytest.raises(ConsumerError, match="message id and a reaction"):
                await self.react(message["id"], "::")
            await self.close()

    chat = ChatCommunicator(Helpers.as_asgi())
    await chat.connect()
    await chat.say("go", id="9")
    assert [await chat.receive_output() for _ in range(6)] == [
        {"type": "chat.send", "text": "**hi**", "format": "markdown", "native": {"blocks": []}},
        {"type": "chat.react", "message_id": "9", "reaction": "thumbsup"},
        {"type": "chat.react", "message_id": "9", "reaction": "thumbsup", "remove": True},
        {"type": "chat.typing"},
        {"type": "chat.send", "text": "raw"},
        {"type": "chat.close"},
    ]
    await chat.disconnect()


async def test_say_sends_the_chat_send_event_with_its_keyword_arguments() -> None:
    class Sayer(ChatConsumer):
        async def receive(self, message: Any) -> None:
            await self.say("plain")
            await self.say("in a thread", thread="t1", reply_to=message["id"], format="plain")

    chat = ChatCommunicator(Sayer.as_asgi())
    await chat.connect()
    await chat.say("go", id="9")
    assert await chat.receive_output() == {"type": "chat.send", "text": "plain"}
    assert await chat.receive_output() == {
        "type": "chat.send",
        "text": "in a thread",
        "thread": "t1",
        "reply_to": "9",
        "format": "plain",
    }
    await chat.disconnect()


async def test_send_is_the_asgi_send_and_refuses_a_text_naming_say() -> None:
    consumer = ChatConsumer()
    sent: list[Any] = []

    async def base_send(message: Any) -> None:
        sent.append(message)

    consumer.base_send = base_send
    with pytest.raises(TypeError, match=r"ChatConsumer\.send\(\).* 'hello'.*say\(text\)"):
        await consumer.send("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"say\(\) takes a str text, got dict; send\(event\)"):
        await consumer.say({"type": "chat.send", "text": "x"})  # type: ignore[arg-type]
    await consumer.send({"type": "chat.typing"})
    assert sent == [{"type": "chat.typing"}]


async def test_disconnect_gets_the_reason_and_ends_the_consumer() -> None:
    reasons: list[str] = []

    class Bye(ChatConsumer):
        async def disconnect(self, reason: Any) -> None:
            reasons.append(reason)

    chat = ChatCommunicator(Bye.as_asgi())
    await chat.connect()
    await chat.disconnect("evicted")
    assert reasons == ["evicted"]


async def test_an_idle_conversation_on_a_real_gateway_ends_with_reason_idle() -> None:
    class Idle(Thermo):
        async def disconnect(self, reason: Any) -> None:
            await self.say(f"bye ({reason}, after {self.asked} questions)")

    stdin = asyncio.StreamReader()
    stdout = io.StringIO()
    options = ConsoleGatewayOptions(idle_timeout=0.05, conversation="#general", bot_name="thermo")
    gateway = ConsoleGateway("console", Idle.as_asgi(), options, stdin=stdin, stdout=stdout)
    await gateway.start()
    try:
        stdin.feed_data(b"temp kitchen\n")
        async with asyncio.timeout(5):
            while "bye (" not in stdout.getvalue():
                await asyncio.sleep(0.01)
        lines = stdout.getvalue().splitlines()
        assert lines[1:] == [
            "[#general] thermo: kitchen: 21.5 (question 1)",
            "[#general] thermo: bye (idle, after 1 questions)",
        ]
    finally:
        async with asyncio.timeout(5):
            await gateway.stop(drain_timeout=1)


# -- declaring commands ----------------------------------------------------------------------


def test_a_subclass_inherits_commands_and_overrides_them() -> None:
    class Other(Thermo):
        @command("temp", help="in Fahrenheit")
        async def fahrenheit(self, message: Any, args: list[str]) -> str:
            return "70.7 F"

    assert Other.commands["temp"].method == "fahrenheit"
    assert Other.commands["echo"] is Thermo.commands["echo"]
    assert Thermo.commands["temp"].method == "temp"
    assert set(ChatConsumer.commands) == {"help"}


async def test_an_overriding_command_answers_in_place_of_the_inherited_one() -> None:
    class Other(Thermo):
        @command("temp", help="in Fahrenheit")
        async def fahrenheit(self, message: Any, args: list[str]) -> str:
            return "70.7 F"

    chat = ChatCommunicator(Other.as_asgi())
    await chat.connect()
    await chat.say("temp kitchen")
    assert await chat.receive_text() == "70.7 F"
    await chat.disconnect()


def test_bad_command_declarations_are_refused() -> None:
    with pytest.raises(TypeError, match="async def"):

        class NotAsync(ChatConsumer):
            @command("x")  # type: ignore[type-var]
            def x(self, message: Any, args: list[str]) -> None: ...

    with pytest.raises(ConsumerError, match="'two words'"):
        command("two words")
    with pytest.raises(ConsumerError, match="'/temp'"):
        command("/temp")
    with pytest.raises(ConsumerError, match="'t' is declared by both"):

        class Twice(ChatConsumer):
            @command("t")
            async def a(self, message: Any, args: list[str]) -> None: ...

            @command("b", aliases=["T"])
            async def b(self, message: Any, args: list[str]) -> None: ...


# -- ChatCommunicator --------------------------------------------------------------------------


def test_the_communicator_builds_the_scope_of_a_chat_gateway() -> None:
    layer = object()
    chat = ChatCommunicator(
        Thermo.as_asgi(),
        kind="thread",
        name="ops",
        id="C9",
        thread_id="100",
        platform="slack",
        gateway="work",
        bot="thermo",
        channel_layer=layer,
    )
    assert chat.scope == {
        "type": "chat",
        "asgi": {"version": "3.0", "spec_version": "1.0"},
        "gateway": "work",
        "platform": "slack",
        "scope_key": "C9/100",
        "conversation": {"id": "C9", "kind": "thread", "name": "ops", "thread_id": "100"},
        "bot": {"id": "thermo", "name": "thermo"},
        "channel_layer": layer,
    }
    with pytest.raises(ConsumerError, match="thread_id"):
        ChatCommunicator(Thermo.as_asgi(), kind="thread")
    with pytest.raises(ConsumerError, match="'dm'"):
        ChatCommunicator(Thermo.as_asgi(), kind="dm")  # type: ignore[arg-type]


async def test_say_builds_a_message_event_as_a_gateway_does() -> None:
    chat = ChatCommunicator(
        ChatConsumer.as_asgi(), kind="thread", thread_id="7", bot={"id": "U1", "name": "b"}
    )
    first = await chat.say("hi <@U1>")
    second = await chat.say("hi @b", user={"id": "U2", "name": "Bob", "is_bot": True})
    third = await chat.say("email b@example.org")
    assert first == {
        "type": "chat.message",
        "id": "1",
        "text": "hi <@U1>",
        "user": {"id": "alice", "name": "alice", "is_bot": False, "identity": "test:alice"},
        "thread_id": "7",
        "mentions_bot": True,
        "attachments": [],
        "raw": {},
    }
    assert (second["id"], second["mentions_bot"], second["user"]["name"]) == ("2", True, "Bob")
    assert third["mentions_bot"] is False
    command_event = await chat.command("temp", "x")
    assert command_event["command"] == "/temp"
    await chat.disconnect()


async def test_receive_send_refuses_another_event_type() -> None:
    class Typist(ChatConsumer):
        async def receive(self, message: Any) -> None:
            await self.typing()

    chat = ChatCommunicator(Typist.as_asgi())
    await chat.connect()
    await chat.say("hi")
    with pytest.raises(AssertionError, match=r"chat\.typing"):
        await chat.receive_send()
    await chat.disconnect()


async def test_disconnect_fails_fast_when_the_application_does_not_return() -> None:
    async def stubborn(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    chat = ChatCommunicator(stubborn)
    await chat.send_input({"type": "chat.connect"})
    with pytest.raises(TimeoutError, match=r"chat\.disconnect"):
        await chat.disconnect(timeout=0.05)


DOCS = (Path(__file__).resolve().parents[2] / "docs" / "chat.md").read_text()


async def test_the_docs_command_and_communicator_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS, re.S)
    namespace: dict[str, Any] = {}
    for block in (b for b in blocks if "class Thermo" in b or "async def test_temp" in b):
        exec(compile(block, "docs/chat.md", "exec"), namespace)  # noqa: S102
    await namespace["test_temp"]()


@pytest.mark.parametrize(
    ("bot", "text", "addressed", "rest"),
    [
        # Discord's older nickname mention, <@!id>, is the bot's mention too.
        ({"id": "80351110224678912", "name": "thermo"}, "<@!80351110224678912> temp", True, "temp"),
        # A Matrix user id typed as it is.
        (
            {"id": "@thermo:example.org", "name": "thermo"},
            "@thermo:example.org: temp",
            True,
            "temp",
        ),
        ({"id": "@thermo:example.org", "name": "thermo"}, "@thermo:example.orgx temp", False, None),
        # Another user's mention, or the bot's name inside a word, is not the bot's address.
        ({"id": "U123BOT", "name": "thermo"}, "<@UOTHER|thermo> temp", False, None),
        ({"id": "U123BOT", "name": "thermo"}, "mail a@thermo.b", False, None),
    ],
)
def test_the_platforms_mention_forms_address_the_bot(
    bot: dict[str, str], text: str, addressed: bool, rest: str | None
) -> None:
    consumer = Thermo()
    consumer.scope = {
        "type": "chat",
        "bot": bot,
        "conversation": {"id": "c", "kind": "group", "name": "g", "thread_id": None},
    }
    found, stripped = consumer.address({"type": "chat.message", "text": text})  # type: ignore[typeddict-item]
    assert found is addressed
    if rest is not None:
        assert stripped == rest
