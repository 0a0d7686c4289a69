"""Hostile chat text: forged mentions, control characters, bidi and zero-width characters,
NUL, lone surrogates and long text, through ``ChatConsumer.address``, the IRC gateway's
nick rule, a ``ChatConsumer`` behind an access policy, and the real console gateway.

- A forged mention does not address the bot: another user's Slack mention labelled with
  the bot's name (``<@UOTHER|thermo>``), the name inside a word (``a@thermo``,
  ``@thermostat``), split by a zero-width or other format character, written with a
  look-alike letter (Cyrillic, Greek, fullwidth) or a fullwidth at sign (U+FF20), or another Matrix
  user on the bot's name (``@thermo:elsewhere``). The platform's own mention forms do.
- Whatever the text, a device command is refused to a user outside the operators group,
  even one whose display name is an operator's; the conversation goes on, and an operator's
  command afterwards runs. At most one WARNING (the denial) and never a traceback.
- The console prints what is said with its control characters escaped: no ESC, CR or other
  C0/C1 control, and no bidi override reaches the terminal.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from hostile_helpers import LogCheck, hostile_settings
from hypothesis import assume, example, given
from hypothesis import strategies as st

from config.access import AccessConfig
from config.policy import AccessPolicy
from consumers import ChatCommunicator, ChatConsumer, ProtocolTypeRouter, command
from gateways.console import ConsoleGateway, ConsoleGatewayOptions
from gateways.irc.text import addresses_nick

#: The console fixture lives for the module, on the module's event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

OPERATOR = {"id": "U0ALICE", "name": "alice", "is_bot": False, "identity": "test:U0ALICE"}


class Plant(ChatConsumer):
    """A bot with a device command kept to operators; ``runs`` records who ran it."""

    require_address = True
    runs: ClassVar[list[tuple[str | None, list[str]]]] = []

    @command(help="set a device's setpoint", usage="<device> <°C>", tags=["device"])
    async def set(self, message: Any, args: list[str]) -> str:
        Plant.runs.append((self.sender_of(message).identity, args))
        return f"set {' '.join(args)}"

    @command(help="say it again")
    async def echo(self, message: Any, args: list[str]) -> str:
        return " ".join(args) or "(nothing)"


POLICY = AccessPolicy(
    AccessConfig.model_validate(
        {
            "groups": {"operators": ["test:U0ALICE", "console:alice"]},
            "rules": [
                {"tags": ["device"], "allow": ["group:operators"]},
                {"tags": ["device"], "deny": ["*"], "reply": "Sorry {user}, not {command}."},
            ],
        }
    )
)


# -- strategies -----------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9]{2,11}", fullmatch=True)
ids = st.from_regex(r"U[A-Z0-9]{6,10}", fullmatch=True)
#: Letters that look like ASCII ones and are not equal to them, in any case.
LOOK_ALIKES = {
    "a": "\u0430\u03b1\uff41",
    "c": "\u0441\u03f2\uff43",
    "e": "\u0435\u03b5\uff45",
    "o": "\u043e\u03bf\uff4f\u0585",
    "p": "\u0440\u03c1\uff50",
    "x": "\u0445\u03c7\uff58",
    "y": "\u0443\uff59",
    "i": "\u0456\u03b9\uff49",
    "m": "\uff4d",
    "t": "\uff54",
    "r": "\uff52",
    "h": "\u04bb\uff48",
}
#: Characters that show as nothing.
INVISIBLE = "\u200b\u200c\u200d\u2060\u00ad\ufeff\u200e\u200f\u202e\u2066"
#: Any text a platform could deliver: controls, NUL, format characters, lone surrogates.
any_text = st.one_of(
    st.text(max_size=40),
    # With lone surrogates, as json.loads gives for "\ud800".
    st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    st.text(st.sampled_from("\x00\x1b[]\r\n\t\x07\x08\x7f\x85\x9b" + INVISIBLE), max_size=20),
    st.text(min_size=2000, max_size=5000),
)


@st.composite
def forged_mentions(draw: st.DrawFn, name: str, bot_id: str) -> tuple[str, str]:
    """``(kind, text)``: text that names the bot without being one of its platform's mention
    forms."""
    kind = draw(
        st.sampled_from(
            [
                "label",
                "word-before",
                "word-after",
                "other-server",
                "invisible",
                "look-alike",
                "fullwidth-at",
            ]
        )
    )
    return kind, draw(forged_text(kind, name, bot_id))


@st.composite
def forged_text(draw: st.DrawFn, kind: str, name: str, bot_id: str) -> str:
    if kind == "label":
        other = draw(ids.filter(lambda other: other.upper() != bot_id.upper()))
        bang = draw(st.sampled_from(["", "!"]))
        return f"<@{bang}{other}|{draw(st.sampled_from([name, '@' + name, bot_id]))}>"
    if kind == "word-before":
        word = draw(st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True))
        return f"{word}@{name}"
    if kind == "word-after":
        return f"@{name}{draw(st.from_regex(r'[A-Za-z0-9_]{1,6}', fullmatch=True))}"
    if kind == "other-server":
        return f"@{name}:{draw(st.from_regex(r'[a-z][a-z.]{1,10}', fullmatch=True))}"
    if kind == "invisible":
        where = draw(st.integers(1, len(name) - 1))
        mark = draw(st.sampled_from(INVISIBLE))
        return f"@{name[:where]}{mark}{name[where:]}"
    if kind == "look-alike":
        spots = [i for i, letter in enumerate(name) if letter in LOOK_ALIKES]
        assume(spots)
        spot = draw(st.sampled_from(spots))
        letter = draw(st.sampled_from(LOOK_ALIKES[name[spot]]))
        return "@" + name[:spot] + letter + name[spot + 1 :]
    return f"\uff20{name}"


@st.composite
def forged_texts(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """``(kind, bot name, bot id, text)``: a forged mention, then anything."""
    name = draw(names)
    bot_id = draw(ids.filter(lambda i: i.lower() != name))
    kind, forged = draw(forged_mentions(name, bot_id))
    space = draw(st.sampled_from(["", " ", "  ", "\t"]))
    rest = draw(st.one_of(st.just(" set d1 99"), any_text.map(lambda text: " " + text)))
    return kind, name, bot_id, space + forged + rest


def scoped(consumer: ChatConsumer, name: str, bot_id: str, kind: str = "group") -> None:
    consumer.scope = {  # type: ignore[typeddict-item]
        "type": "chat",
        "bot": {"id": bot_id, "name": name},
        "conversation": {"id": "c", "kind": kind, "name": "g", "thread_id": None},
    }


# -- address ----------------------------------------------------------------------------------


@hostile_settings(400)
@given(forged_texts())
@example(("label", "thermo", "U123BOT", "<@UOTHER|thermo> set d1 99"))
@example(("word-before", "thermo", "U123BOT", "mail a@thermo.b"))
@example(("word-after", "thermo", "U123BOT", "@thermostat set d1 99"))
@example(("invisible", "thermo", "U123BOT", "@ther\u200bmo set d1 99"))
@example(("look-alike", "thermo", "U123BOT", "@th\u0435rmo set d1 99"))
@example(("fullwidth-at", "thermo", "U123BOT", "\uff20thermo set d1 99"))
@example(("other-server", "thermo", "U123BOT", "@thermo:elsewhere.org set d1 99"))
def test_a_forged_mention_does_not_address_the_bot(case: tuple[str, str, str, str]) -> None:
    """In a channel, with no ``mentions_bot`` from the gateway; and not on IRC either, where
    ``@nick:`` is a mention (so the other-server form is one there)."""
    kind, name, bot_id, text = case
    consumer = Plant()
    scoped(consumer, name, bot_id)
    message = {"type": "chat.message", "text": text, "mentions_bot": False}
    addressed, _ = consumer.address(message)  # type: ignore[arg-type]
    assert not addressed, (name, bot_id, text)
    if kind != "other-server":
        assert not addresses_nick(text, [name]), (name, text)


@hostile_settings(300)
@given(
    name=names,
    bot_id=ids,
    form=st.sampled_from(
        ["<@{id}>", "<@{id}|{name}>", "<@!{id}>", "@{name}", "{name}:", "{name},"]
    ),
    rest=any_text,
)
@example(name="thermo", bot_id="U123BOT", form="@{name}", rest="\u202eset d1 99")
def test_the_platforms_mention_forms_address_the_bot(
    name: str, bot_id: str, form: str, rest: str
) -> None:
    consumer = Plant()
    scoped(consumer, name, bot_id)
    mention = form.format(id=bot_id, name=name)
    text = f"{mention} {rest}"
    message = {"type": "chat.message", "text": text, "mentions_bot": False}
    addressed, stripped = consumer.address(message)  # type: ignore[arg-type]
    assert addressed, text
    assert stripped == re.sub(r"^[\s:,]*", "", rest).strip(), text


# -- a consumer behind an access policy ----------------------------------------------------

prefixes = st.one_of(
    st.sampled_from(["@bot ", "<@bot> ", "bot: ", "<@UOTHER|bot> ", "@b\u200bot ", ""]),
    any_text.map(lambda text: text[:30] + " "),
)
suffixes = st.one_of(st.just(""), any_text.map(lambda text: " " + text[:200]))
impostors = st.sampled_from(
    [
        {"id": "U0MALLORY", "name": "mallory", "is_bot": False, "identity": "test:U0MALLORY"},
        # An operator's display name, another id.
        {"id": "U0EVE", "name": "alice", "is_bot": False, "identity": "test:U0EVE"},
        # No identity the platform vouches for (an IRC nick without an account).
        {"id": "alice", "name": "alice", "is_bot": False, "identity": None},
    ]
)


@in_module_loop
@hostile_settings(150)
@given(
    user=impostors,
    kind=st.sampled_from(["group", "direct"]),
    prefix=prefixes,
    verb=st.sampled_from(["set", "SET", "Set", "set\u200b", "/set", "help set"]),
    suffix=suffixes,
    mentions_bot=st.sampled_from([None, True, False]),
)
@example(
    user={"id": "U0EVE", "name": "alice", "is_bot": False, "identity": "test:U0EVE"},
    kind="group",
    prefix="@bot ",
    verb="set",
    suffix=" d1 99",
    mentions_bot=None,
)
async def test_whatever_the_text_a_device_command_is_refused_to_a_non_operator(
    caplog: pytest.LogCaptureFixture,
    user: dict[str, Any],
    kind: str,
    prefix: str,
    verb: str,
    suffix: str,
    mentions_bot: bool | None,
) -> None:
    log = LogCheck(caplog)
    log.mark()
    Plant.runs.clear()
    communicator = ChatCommunicator(
        Plant.as_asgi(),
        kind=kind,
        user=OPERATOR,
        bot="bot",
        access=POLICY,  # type: ignore[arg-type]
    )
    await communicator.connect()
    text = f"{prefix}{verb}{suffix}"
    await communicator.say(text, user=user, mentions_bot=mentions_bot)  # type: ignore[arg-type]
    # An operator's command afterwards: the conversation goes on, and answers in order.
    await communicator.say("@bot set d2 20", mentions_bot=True)
    answers = []
    async with asyncio.timeout(5):
        while "set d2 20" not in answers:
            answers.append(await communicator.receive_text(timeout=5))
    await communicator.disconnect()
    assert Plant.runs == [("test:U0ALICE", ["d2", "20"])], (text, answers)
    assert len(answers) <= 2, (text, answers)
    log.check(text, warnings=1)


# -- the console ------------------------------------------------------------------------------


class Parrot(Plant):
    """Says back whatever it is told, as a bot relaying other users' text would."""

    require_address = False

    async def receive(self, message: Any) -> None:
        await self.reply(message, f"you said: {message['text']}")


#: What must never reach the terminal raw (the console writes them as escapes).
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass
class Console:
    gateway: ConsoleGateway
    stdin: asyncio.StreamReader
    stdout: io.StringIO
    probes: itertools.count[int]

    async def probe(self) -> None:
        """Back to alice in ``#general``, ``set`` a device there, and wait for the answer:
        every line typed before was handled."""
        n = next(self.probes)
        self.stdin.feed_data(f":user alice\n:channel general\n@bot set p{n} 20\n".encode())
        line = f"[#general] bot: set p{n} 20"
        try:
            async with asyncio.timeout(10):
                while line not in self.stdout.getvalue().splitlines():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            pytest.fail(f"{line!r} not printed; the console printed:\n{self.stdout.getvalue()}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console() -> AsyncIterator[Console]:
    stdin = asyncio.StreamReader()
    stdout = io.StringIO()
    options = ConsoleGatewayOptions(bot_name="bot", user="alice", conversation="#general")
    router = ProtocolTypeRouter({"chat": Parrot.as_asgi()})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # As the daemon does with the YAML's access: section (gateways/daemon/server.py).
        await router({**scope, "access": POLICY}, receive, send)

    gateway = ConsoleGateway("console", app, options, stdin=stdin, stdout=stdout)
    async with asyncio.timeout(10):
        await gateway.start()
    made = Console(gateway, stdin, stdout, itertools.count())
    try:
        await made.probe()
        yield made
    finally:
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)


@in_module_loop
@hostile_settings(150)
@given(
    line=st.one_of(
        any_text,
        st.binary(max_size=60),
        st.sampled_from(
            [
                "\x1b[2J\x1b[H@bot set d1 99",
                "\x1b]0;pwned\x07",
                "\r[#general] bot: set d1 99",
                "\u202e99 1d tes tob@",
                ":user mallory\n@bot set d1 99",
                ":user \x1b[31m",
                ":channel \u202egeneral",
                "/set d1 99",
            ]
        ),
    )
)
async def test_the_console_shows_any_line_without_handing_the_terminal_control(
    console: Console, caplog: pytest.LogCaptureFixture, line: str | bytes
) -> None:
    log = LogCheck(caplog)
    log.mark()
    Plant.runs.clear()
    before = len(console.stdout.getvalue())
    data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    # Lines as typed: each ends at a newline, so mallory types each of them.
    console.stdin.feed_data(b":user mallory\n" + data + b"\n")
    await console.probe()
    printed = console.stdout.getvalue()[before:]
    assert not RAW_CONTROLS.search(printed), (line, printed)
    # Only alice ran it: the probe, and the line itself if it switched to alice (":user").
    assert {who for who, _ in Plant.runs} == {"console:alice"}, (line, printed)
    assert Plant.runs[-1][1][1:] == ["20"], (line, printed)
    log.check(line, warnings=1)
