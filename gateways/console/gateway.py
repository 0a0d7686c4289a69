"""The console gateway: chat with the application from the terminal (``type: console``).

Each line typed on standard input is an event from a simulated user; the bot's messages,
reactions and typing are printed on standard output as ``[#general] bot: text``. Lines:

- ``text`` is a ``chat.message``; ``@bot`` in it (or ``bot:`` first) mentions the bot;
- ``/temp kitchen`` is a ``chat.command`` (``//text`` sends the message ``/text``);
- ``:``-lines switch the simulated user and conversation (``:user alice``, ``:dm``,
  ``:channel general``, ``:thread 3``, ``:top``), react (``:react 3 thumbsup``), press a
  button (``:action approve``) or inform (``:where``, ``:history``, ``:help``);
  ``::text`` sends the message ``:text``.

``gateways.console.lines`` acts on the lines. Standard input is read without blocking the
event loop, from a terminal, a pipe or a file (``gateways.console.stdin``).
At its end (EOF, Ctrl-D) the gateway stops reading and the daemon goes on serving its other
gateways and the conversations' consumers until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import Any, ClassVar, TextIO

from pydantic import field_validator

from gateways.base import GatewayError, ScopeInstance
from gateways.chat import ChatGateway, ChatGatewayOptions
from gateways.console.lines import CONTROL_LINES, WORD, MessageLog, handle_line
from gateways.console.stdin import ConsoleStdin
from layer.types import (
    ASGIApp,
    ChatConversation,
    ChatReactEvent,
    ChatSendMessageEvent,
    ChatTypingEvent,
)

__all__ = ["CONTROL_LINES", "ConsoleGateway", "ConsoleGatewayOptions"]

logger = logging.getLogger(__name__)

#: Messages remembered for ``:thread``, ``:react`` and ``:history``.
_REMEMBERED = 10_000
#: What a terminal would act on rather than show: the C0 and C1 controls but newline and
#: tab (ESC starts the ANSI sequences that move the cursor, retitle the window or clear the
#: screen; CR rewrites the line), and the bidi embeddings, overrides and isolates (Unicode
#: UAX #9) that reorder what follows them on the line.
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(text: str) -> str:
    """``text`` with each character of ``_TERMINAL_CONTROLS`` written as its escape
    (``\\x1b``, ``\\u202e``), so what a user or the bot says cannot drive the terminal."""
    return _TERMINAL_CONTROLS.sub(lambda match: ascii(match.group())[1:-1], text)


class ConsoleGatewayOptions(ChatGatewayOptions):
    """Options of ``type: console`` (besides ``conversation_key`` and the scope lifecycle).

    Attributes:
        bot_name: The bot's name (and id): ``@bot_name`` mentions it.
        user: The simulated user you start as.
        conversation: Where you start: ``"dm"`` (your DM with the bot) or a channel,
            ``"#general"``.
        prompt: Shown before each line when standard input is a terminal; ``{where}`` is
            the conversation (``#general``, ``@alice``, ``#general thread 3``), ``{user}``
            the user. ``""`` for none.
    """

    bot_name: str = "bot"
    user: str = "you"
    conversation: str = "dm"
    prompt: str = "{where} {user}> "

    @field_validator("bot_name", "user")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if not WORD.fullmatch(value):
            raise ValueError(f"must be one word of letters, digits, '.', '-', '_'; got {value!r}")
        return value

    @field_validator("conversation")
    @classmethod
    def _conversation(cls, value: str) -> str:
        if value != "dm" and not WORD.fullmatch(value.removeprefix("#")):
            raise ValueError(f"must be 'dm' or a channel such as '#general'; got {value!r}")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        try:
            value.format(where="#general", user="you")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"may use {{where}} and {{user}} only; {value!r} fails: {exc!r}"
            ) from None
        return value


class ConsoleGateway(ChatGateway):
    """Chat from the terminal: standard input is a simulated user, standard output the chat.

    Channels are ``#name`` (conversation id ``name``, kind ``"group"``); your DM with the
    bot is ``@you`` (id ``@you``, kind ``"direct"``, no name); message ids are ``"1"``,
    ``"2"``... for everyone's messages, the bot's included. It renders ``plain`` and
    ``markdown`` (as typed), shows reactions and typing, and has no ``native`` content.

    Args:
        name: The gateway's name (``scope["gateway"]``).
        application: The ASGI application.
        options: ``ConsoleGatewayOptions``.
        channel_layer: Put in every scope as ``scope["channel_layer"]``.
        stdin: Read lines from this reader instead of the process's standard input.
        stdout: Print to this stream instead of standard output.
        interactive: Show the prompt (and redraw it after output); defaults to whether
            standard input is a terminal (``False`` with ``stdin``).
    """

    platform: ClassVar[str] = "console"
    options_model: ClassVar[type[ConsoleGatewayOptions]] = ConsoleGatewayOptions
    options: ConsoleGatewayOptions
    formats: ClassVar[frozenset[str]] = frozenset({"plain", "markdown"})

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: ConsoleGatewayOptions,
        *,
        channel_layer: Any | None = None,
        stdin: asyncio.StreamReader | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        super().__init__(name, application, options, channel_layer=channel_layer)
        self.user = options.user
        start = options.conversation
        #: The current channel's name, or ``None`` in the user's DM.
        self.channel: str | None = None if start == "dm" else start.removeprefix("#")
        #: The current thread (the id of its first message), or ``None``.
        self.thread: str | None = None
        self._stdin = stdin
        self._stdout = stdout
        self._interactive = interactive
        #: Everyone's recent messages, the bot's included, by id (``"1"``, ``"2"``...).
        self.messages = MessageLog(_REMEMBERED)
        self._reader: asyncio.Task[None] | None = None
        #: The process's standard input, when no ``stdin`` was given.
        self._own_stdin: ConsoleStdin | None = None
        #: Whether lines are being read (the prompt is shown only then).
        self._reading = False
        #: Whether the prompt is the last thing on the terminal (the user is typing after it).
        self._prompt_shown = False

    # -- where we are ------------------------------------------------------------------

    @property
    def bot_name(self) -> str:
        """The bot's name (and id): ``options.bot_name``."""
        return self.options.bot_name

    @property
    def channel_id(self) -> str:
        """The current conversation's channel id: the channel's name, or ``@user`` (a DM)."""
        return self.channel if self.channel is not None else f"@{self.user}"

    def where(self, channel_id: str | None = None, thread: str | None = None) -> str:
        """``#general``, ``@alice`` or ``#general thread 3``: the current place by default."""
        if channel_id is None:
            channel_id, thread = self.channel_id, self.thread
        place = channel_id if channel_id.startswith("@") else f"#{channel_id}"
        return place if thread is None else f"{place} thread {thread}"

    def conversation_of_key(self, key: str) -> ChatConversation | None:
        """``ChatGateway.conversation_of_key``, knowing the console's ids: a DM's channel is
        ``@user``, any other channel is named after itself."""
        conversation = super().conversation_of_key(key)
        if conversation is not None:
            direct = conversation["id"].startswith("@")
            if conversation["kind"] != "thread":
                conversation["kind"] = "direct" if direct else "group"
            conversation["name"] = None if direct else conversation["id"]
        return conversation

    # -- the transport -----------------------------------------------------------------

    async def start_transport(self) -> None:
        """Set the bot's identity and start reading lines.

        Raises:
            GatewayError: Standard input can't be read.
        """
        self.bot = {"id": self.options.bot_name, "name": self.options.bot_name}
        if self._stdin is None:
            self._own_stdin = ConsoleStdin(self.name)
            reader = await self._own_stdin.open()
        else:
            reader = self._stdin
        if self._interactive is None:
            self._interactive = self._own_stdin is not None and self._own_stdin.is_terminal
        self.write(
            f"* console chat: you are {self.user} in {self.where()}, talking to "
            f"{self.options.bot_name}; :help lists the control lines"
        )
        self._reading = True
        self._prompt()
        self._reader = asyncio.get_running_loop().create_task(
            self._read(reader), name=f"{self.name}:stdin"
        )

    async def close_transport(self) -> None:
        """Stop reading and give standard input back as it was (blocking)."""
        self._reading = False
        task, self._reader = self._reader, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if self._own_stdin is not None:
            await self._own_stdin.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError as exc:  # a line over the reader's limit
                self.write(f"* line skipped: {exc}")
                continue
            if not line:
                break
            self._prompt_shown = False  # Enter moved the terminal to a new line
            try:
                await self.handle_line(line.decode("utf-8", errors="replace").rstrip("\r\n"))
            except GatewayError as exc:
                self.write(f"* {exc}")
            except Exception:
                logger.exception("Gateway %r: a line could not be handled; reading on", self.name)
            self._prompt()
        self._reading = False
        logger.info(
            "Gateway %r: end of standard input; no more lines are read, the daemon goes on "
            "until SIGINT or SIGTERM",
            self.name,
        )
        self.write("* end of input: no more lines are read (Ctrl-C stops the daemon)")

    # -- output ------------------------------------------------------------------------

    def write(self, line: str) -> None:
        """Print a line (continuation lines indented); on a terminal, over the prompt, which
        is then drawn again below it. Control characters in ``line`` are printed as their
        escapes (``\\x1b``), never sent to the terminal as they are."""
        out = self._stdout if self._stdout is not None else sys.stdout
        text = _shown(line).replace("\n", "\n  ") + "\n"
        if self._prompt_shown:
            text = "\r\x1b[K" + text
            if self._reading:
                text += self._prompt_text()
            else:
                self._prompt_shown = False
        out.write(text)
        out.flush()

    def _prompt_text(self) -> str:
        return self.options.prompt.format(where=self.where(), user=self.user)

    def _prompt(self) -> None:
        """Show the prompt, on a terminal, while reading, unless it is shown already."""
        if self._interactive and self._reading and self.options.prompt and not self._prompt_shown:
            out = self._stdout if self._stdout is not None else sys.stdout
            out.write(self._prompt_text())
            out.flush()
            self._prompt_shown = True

    # -- input -------------------------------------------------------------------------

    async def handle_line(self, line: str) -> None:
        """Act on one input line, as if typed (see the module's list of lines).

        Raises:
            GatewayError: The bot's identity is not set (the gateway is not started).
        """
        await handle_line(self, line)

    # -- what the application sends ----------------------------------------------------

    def _place(self, instance: ScopeInstance, thread: str | None) -> tuple[str, str]:
        conversation = instance.scope["conversation"]
        channel = str(conversation["id"])
        return channel, self.where(channel, thread)

    async def send_message(self, instance: ScopeInstance, event: ChatSendMessageEvent) -> None:
        """Print ``[#general] bot: text`` (``thread N`` in a thread, ``(re N)`` for a reply).

        Raises:
            GatewayError: ``reply_to`` names no message the console knows.
        """
        thread = event.get("thread")
        reply_to = event.get("reply_to")
        if reply_to is not None and reply_to not in self.messages:
            raise GatewayError(
                f"gateway {self.name!r}, scope {instance.key!r}: chat.send reply_to "
                f"{reply_to!r} is no message of this console"
            )
        channel, where = self._place(instance, thread)
        bot = self.options.bot_name
        self.messages.add(channel, thread, bot, event["text"])
        re_ = f" (re {reply_to})" if reply_to is not None else ""
        self.write(f"[{where}] {bot}{re_}: {event['text']}")

    async def send_reaction(self, instance: ScopeInstance, event: ChatReactEvent) -> None:
        """Print ``[#general] bot reacted :thumbsup: to 3`` (or ``removed ... from 3``).

        Raises:
            GatewayError: ``message_id`` names no message the console knows.
        """
        found = self.messages.get(event["message_id"])
        if found is None:
            raise GatewayError(
                f"gateway {self.name!r}, scope {instance.key!r}: chat.react message_id "
                f"{event['message_id']!r} is no message of this console"
            )
        verb, prep = ("removed", "from") if event.get("remove") else ("reacted", "to")
        self.write(
            f"[{self.where(found.channel, found.thread)}] {self.options.bot_name} {verb} "
            f":{event['reaction']}: {prep} {event['message_id']}"
        )

    async def send_typing(self, instance: ScopeInstance, event: ChatTypingEvent) -> None:
        """Print ``[#general] bot is typing...``."""
        conversation = instance.scope["conversation"]
        _, where = self._place(instance, conversation.get("thread_id"))
        self.write(f"[{where}] {self.options.bot_name} is typing...")
