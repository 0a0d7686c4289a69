"""Hostile IRC lines to the IRC gateway, through a real ngircd, from a raw socket client:
arbitrary bytes in PRIVMSG and NOTICE (control characters, CTCP, NUL, invalid UTF-8,
overlong lines) to the channel and to the bot, and arbitrary raw lines. Each costs at most
one WARNING line and no traceback; the bot still answers a well-behaved message after.
Lines over 512 bytes never reach the bot: ngircd closes a client that sends one; nor does
NUL: ngircd stops reading a client after it (so the test sends none)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hostile_helpers import LogCheck, chatbot_application, hostile_settings
from hypothesis import example, given
from hypothesis import strategies as st

from gateways.irc import IrcGateway, IrcGatewayOptions
from gateways.testing.ngircd import Ngircd

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Human:
    """A raw IRC client; ``answer()`` asks the bot ``count`` in a DM and waits for its reply,
    so that what was sent before has been read by the gateway."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, line: bytes) -> None:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()

    async def until(self, pattern: bytes, within: float = 10.0) -> bytes:
        async with asyncio.timeout(within):
            while True:
                line = await self.reader.readline()
                if not line:
                    raise ConnectionError("ngircd closed the connection")
                if line.startswith(b"PING"):
                    await self.send(b"PONG" + line[4:].rstrip(b"\r\n"))
                if re.search(pattern, line):
                    return line

    async def answer(self) -> None:
        await self.send(b"PRIVMSG gwbot :count")
        await self.until(rb"^:gwbot!\S+ PRIVMSG mallory :\d+ so far")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def irc() -> AsyncIterator[Human]:
    async with Ngircd.started(penalties=False) as server:
        options = IrcGatewayOptions(
            server=server.host,
            port=server.port,
            nick="gwbot",
            channels=["#t"],
            connect_timeout=5,
            send_timeout=10,
            flood={"burst": 50, "rate": 200},
        )
        gateway = IrcGateway("irc", chatbot_application(), options)
        await gateway.start()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        human = Human(reader, writer)
        await human.send(b"NICK mallory")
        await human.send(b"USER mallory 0 * :mallory")
        await human.until(rb"^:\S+ 001 ")
        await human.send(b"JOIN #t")
        await human.until(rb"JOIN :?#t")
        try:
            yield human
        finally:
            writer.close()
            await gateway.stop(drain_timeout=2)


payloads = st.one_of(
    st.binary(max_size=80),
    # Up to IRC's 512 bytes a line (ngircd drops a client sending longer ones): relayed
    # with the sender's prefix, the line the bot reads is over 512.
    st.binary(min_size=400, max_size=495),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", errors="surrogatepass")),
    st.binary(max_size=30).map(lambda data: b"\x01" + data + b"\x01"),  # CTCP
    st.sampled_from([b"\x01ACTION\x01", b"\x01VERSION\x01", b"\x1b[31mred", b"\xff"]),
).map(lambda data: data.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b""))
lines = st.one_of(
    st.tuples(
        st.sampled_from([b"PRIVMSG", b"NOTICE"]), st.sampled_from([b"#t", b"gwbot"]), payloads
    ).map(lambda parts: parts[0] + b" " + parts[1] + b" :" + parts[2]),
    payloads.filter(lambda line: not line.upper().lstrip().startswith((b"QUIT", b"PART", b"NICK"))),
)


@hostile_settings(150)
@given(line=lines)
@example(line=b"PRIVMSG gwbot :\x01\x01")
@example(line=b"PRIVMSG gwbot :" + "é".encode() * 247)  # relayed: a character cut at 512
@example(line=b"PRIVMSG #t :gwbot\x02: count")
@example(line=b"PRIVMSG gwbot :\xed\xa0\x80 a lone surrogate, as bytes")
async def test_hostile_lines_cost_one_line_and_the_bot_answers(
    irc: Human, caplog: pytest.LogCaptureFixture, line: bytes
) -> None:
    log = LogCheck(caplog)
    log.mark()
    await irc.send(line[:510])
    await irc.answer()
    log.check(line[:200])
