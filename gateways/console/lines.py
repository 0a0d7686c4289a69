"""What a line typed on the console does: a message, a slash command or a control line.

``ConsoleGateway.handle_line`` hands each line to ``handle_line`` here: ``text`` is a
``chat.message`` (``@bot`` in it, or ``bot:`` first, mentions the bot), ``/temp kitchen`` a
``chat.command``; the escapes ``//text`` and ``::text`` send the messages ``/text`` and
``:text``; the control lines (``CONTROL_LINES``) switch the simulated user and conversation,
react, press a button or inform, answering with ``* `` lines on the console. The events are
those of ``docs/specs/chat.md``.

The lines act on a ``Console`` (what they use of the gateway, all public) and on its
``MessageLog``, everyone's recent messages, which the gateway owns and fills too.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from gateways.chat import ConversationHost
from gateways.containers import BoundedMap
from layer.types import ChatConversation, ChatUser, Message

__all__ = ["CONTROL_LINES", "WORD", "Console", "MessageLog", "Said", "handle_line"]

#: One word: a user's, a channel's or the bot's name.
WORD = re.compile(r"[\w.-]+")
#: Messages ``:history`` shows.
_HISTORY = 10

#: The control lines, as ``:help`` lists them.
CONTROL_LINES = (
    (":user NAME", "become the user NAME (in a DM: go to NAME's DM)"),
    (":dm", "go to your DM with the bot"),
    (":channel NAME", "go to the channel #NAME"),
    (":thread [ID]", "go to the thread under message ID (default: the last one here)"),
    (":top", "leave the thread, back to the channel or DM"),
    (":react ID NAME", "add the reaction NAME to message ID (:unreact takes it away)"),
    (":action ID [VALUE]", "press the button ID, with VALUE"),
    (":where", "who and where you are"),
    (":history", f"the last {_HISTORY} messages here, with their ids"),
    (":help", "this list"),
)


class Said(NamedTuple):
    """Where a message was said, by whom, and what: for ``:thread``, ``:react``,
    ``:history``, and the application's ``reply_to`` and ``chat.react``."""

    #: The conversation's channel id: a channel's name (``general``) or ``@user`` (a DM).
    channel: str
    #: The thread it is in (the id of the thread's first message), ``None`` at top level.
    thread: str | None
    #: The user's name, or the bot's.
    who: str
    text: str


class MessageLog:
    """Everyone's recent messages on the console, the bot's included, by id.

    Ids are ``"1"``, ``"2"``... in the order said; past ``size`` messages the oldest is
    forgotten (first in, first out: reading a message does not keep it longer).

    Args:
        size: How many messages are remembered, at least 1.
    """

    def __init__(self, size: int) -> None:
        self._ids = itertools.count(1)
        self._said: BoundedMap[str, Said] = BoundedMap(size)

    def __len__(self) -> int:
        return len(self._said)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._said

    def add(self, channel: str, thread: str | None, who: str, text: str) -> str:
        """Remember a message (see ``Said``) under the next id.

        Returns:
            Its id (``"1"``, ``"2"``...).
        """
        message_id = str(next(self._ids))
        self._said.put(message_id, Said(channel, thread, who, text))
        return message_id

    def get(self, message_id: str) -> Said | None:
        """The message of that id, ``None`` for one never said or forgotten."""
        return self._said.peek(message_id)

    def items(self) -> Iterator[tuple[str, Said]]:
        """``(id, message)`` of the remembered messages, oldest first."""
        return self._said.items()


class Console(ConversationHost, Protocol):
    """What the lines use of the console gateway (``ConsoleGateway`` is one): the simulated
    user and where they are (which the control lines change), the messages said, output,
    and the chat gateway's ``conversation_for`` and ``dispatch_chat``."""

    #: The simulated user.
    user: str
    #: The current channel's name, or ``None`` in the user's DM.
    channel: str | None
    #: The current thread (the id of its first message), or ``None``.
    thread: str | None

    @property
    def channel_id(self) -> str:
        """The current conversation's channel id: the channel's name, or ``@user``."""
        ...

    @property
    def bot_name(self) -> str:
        """The bot's name (and id)."""
        ...

    @property
    def messages(self) -> MessageLog:
        """Everyone's recent messages."""
        ...

    def where(self, channel_id: str | None = None, thread: str | None = None) -> str:
        """``#general``, ``@alice`` or ``#general thread 3``: the current place by default."""
        ...

    def write(self, line: str) -> None:
        """Print a line on the console."""
        ...


async def handle_line(gateway: Console, line: str) -> None:
    """Act on one input line of ``gateway``, as if typed (see the module's list of lines).

    Raises:
        GatewayError: The bot's identity is not set (the gateway is not started).
    """
    stripped = line.strip()
    if not stripped:
        return
    if stripped.startswith(":") and not stripped.startswith("::"):
        await _control(gateway, stripped[1:].split())
    elif stripped.startswith("/") and not stripped.startswith("//") and len(stripped) > 1:
        command, _, text = stripped.partition(" ")
        await _dispatch_here(
            gateway,
            {
                "type": "chat.command",
                "command": command,
                "text": text.strip(),
                "user": _user(gateway),
                "raw": {"line": line},
            },
        )
    else:
        if stripped.startswith(("::", "//")):
            stripped = stripped[1:]
        await _say(gateway, stripped, line)


def _user(gateway: Console) -> ChatUser:
    return {
        "id": gateway.user,
        "name": gateway.user,
        "is_bot": False,
        "identity": f"console:{gateway.user}",
    }


def _mentions_bot(gateway: Console, text: str) -> bool:
    name = re.escape(gateway.bot_name)
    return bool(
        re.search(f"(?<![\\w@])@{name}(?!\\w)", text, re.IGNORECASE)
        or re.match(f"{name}\\s*[:,]", text, re.IGNORECASE)
    )


def _conversation(
    gateway: Console, channel_id: str, thread: str | None
) -> tuple[str, ChatConversation]:
    direct = channel_id.startswith("@")
    return gateway.conversation_for(
        channel_id=channel_id,
        kind="direct" if direct else "group",
        name=None if direct else channel_id,
        thread_id=thread,
        user_id=gateway.user,
    )


async def _dispatch_here(
    gateway: Console, event: Message, channel: str | None = None, thread: str | None = None
) -> None:
    if channel is None:
        channel, thread = gateway.channel_id, gateway.thread
    key, conversation = _conversation(gateway, channel, thread)
    await gateway.dispatch_chat(key, conversation, event)


async def _say(gateway: Console, text: str, line: str) -> None:
    message_id = gateway.messages.add(gateway.channel_id, gateway.thread, gateway.user, text)
    await _dispatch_here(
        gateway,
        {
            "type": "chat.message",
            "id": message_id,
            "text": text,
            "user": _user(gateway),
            "thread_id": gateway.thread,
            "mentions_bot": _mentions_bot(gateway, text),
            "attachments": [],
            "raw": {"line": line},
        },
    )


async def _control(gateway: Console, words: list[str]) -> None:
    verb, args = (words[0].lower(), words[1:]) if words else ("", [])
    if verb == "user" and len(args) == 1 and WORD.fullmatch(args[0]):
        if gateway.channel is None:
            gateway.thread = None
        gateway.user = args[0]
    elif verb == "dm" and not args:
        gateway.channel, gateway.thread = None, None
    elif verb == "channel" and len(args) == 1 and WORD.fullmatch(args[0].removeprefix("#")):
        gateway.channel, gateway.thread = args[0].removeprefix("#"), None
    elif verb == "thread" and len(args) <= 1:
        _enter_thread(gateway, args[0] if args else None)
        return
    elif verb == "top" and not args:
        gateway.thread = None
    elif verb in ("react", "unreact") and len(args) == 2:
        await _react(gateway, args[0], args[1].strip(":"), added=verb == "react")
        return
    elif verb == "action" and len(args) in (1, 2):
        await _dispatch_here(
            gateway,
            {
                "type": "chat.action",
                "action_id": args[0],
                "value": args[1] if len(args) == 2 else None,
                "message_id": None,
                "user": _user(gateway),
                "raw": {},
            },
        )
        return
    elif verb == "history" and not args:
        _history(gateway)
        return
    elif verb == "help" and not args:
        width = max(len(usage) for usage, _ in CONTROL_LINES)
        gateway.write(
            "* control lines (anything else is a message; /name args is a slash command):\n"
            + "\n".join(f"{usage:<{width}}  {what}" for usage, what in CONTROL_LINES)
        )
        return
    elif verb != "where" or args:
        gateway.write(f"* not a control line: {':' + ' '.join(words)!r}; :help lists them")
        return
    gateway.write(f"* you are {gateway.user} in {gateway.where()}")


def _enter_thread(gateway: Console, message_id: str | None) -> None:
    here = gateway.channel_id
    if message_id is None:
        ids = [i for i, m in gateway.messages.items() if m.channel == here and m.thread is None]
        if not ids:
            gateway.write(f"* no message in {gateway.where(here)} to start a thread under")
            return
        message_id = ids[-1]
    found = gateway.messages.get(message_id)
    if found is None or found.channel != here:
        gateway.write(f"* no message {message_id} in {gateway.where(here)}; :history lists them")
        return
    gateway.thread = found.thread or message_id
    gateway.write(f"* you are {gateway.user} in {gateway.where()}")


async def _react(gateway: Console, message_id: str, reaction: str, *, added: bool) -> None:
    found = gateway.messages.get(message_id)
    if found is None or not reaction:
        gateway.write(f"* no message {message_id}; :history lists them")
        return
    await _dispatch_here(
        gateway,
        {
            "type": "chat.reaction",
            "message_id": message_id,
            "reaction": reaction,
            "added": added,
            "user": _user(gateway),
            "raw": {},
        },
        found.channel,
        found.thread,
    )


def _history(gateway: Console) -> None:
    here, thread = gateway.channel_id, gateway.thread
    recent: deque[str] = deque(maxlen=_HISTORY)
    for message_id, m in gateway.messages.items():
        if m.channel == here and (m.thread == thread or message_id == thread):
            recent.append(f"{message_id:>4} {m.who}: {m.text}")
    gateway.write(f"* {gateway.where()}:\n" + ("\n".join(recent) or "(no messages)"))
