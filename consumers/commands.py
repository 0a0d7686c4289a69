"""Chat commands as ``@command`` declares them on a ``ChatConsumer``'s methods.

Who may run a command is the access policy's decision (``config.policy``): the YAML's
``access:`` rules first, then what ``@command(allow=..., private_only=...)`` declares here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from config.access import check_subject
from config.policy import CommandInfo
from consumers.base import ConsumerError

__all__ = ["Command", "collect_commands", "command"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_COMMAND_ATTRIBUTE = "_chat_command"
_NAME = re.compile(r"[^\s/][^\s]*")
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class Command:
    """A command of a ``ChatConsumer``, as ``@command`` declared it.

    Attributes:
        name: The command word, lower case (``"temp"``).
        help: One line for ``help``.
        usage: The arguments, for ``help`` (``"<room>"``).
        aliases: Other words for the same command, lower case.
        method: The name of the handler method on the consumer class.
        tags: Tags that ``access.rules`` may name (``"device"``).
        allow: Who may run it when no ``access`` rule decides (subjects of
            ``config.access.check_subject``); empty: anyone the ``access.default`` lets.
        private_only: Run only in direct conversations, unless an ``access`` rule allows it.
    """

    name: str
    help: str
    usage: str
    aliases: tuple[str, ...]
    method: str
    tags: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    private_only: bool = False

    def describe(self) -> str:
        """``"temp <room>: the room's temperature"``, as ``help`` lists it."""
        head = f"{self.name} {self.usage}".rstrip()
        return f"{head}: {self.help}" if self.help else head

    @property
    def info(self) -> CommandInfo:
        """What the access policy needs of it."""
        return CommandInfo(self.name, self.tags, self.allow, self.private_only)


def _unnarrowed(value: object) -> object:
    """``value``, typed ``object`` so that a type guard on it leaves the original alone."""
    return value


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConsumerError(
            f"{where}: a command name is one word not starting with '/', got {name!r}"
        )
    return name.lower()


def _words(values: Sequence[str] | str, where: str, check: Callable[[str], str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConsumerError(f"@command {where} is a list of str, got the str {values!r}")
    try:
        return tuple(check(value) for value in values)
    except ValueError as exc:
        raise ConsumerError(f"@command {where}: {exc}") from None


def _tag(value: str) -> str:
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise ValueError(f"a tag is 1 to 64 letters, digits, '_', '.' or '-', got {value!r}")
    return value


def command(
    name: str | None = None,
    *,
    help: str = "",
    usage: str = "",
    aliases: Sequence[str] = (),
    tags: Sequence[str] = (),
    allow: Sequence[str] = (),
    private_only: bool = False,
) -> Callable[[F], F]:
    """Declare a method of a ``ChatConsumer`` as the handler of a command.

    The handler is ``async def handler(self, message, args)``: ``message`` is the
    ``chat.message`` or ``chat.command`` event, ``args`` the words after the command (a list
    of str, split on whitespace). A str it returns is sent as the answer, in the message's
    thread (``reply``); ``None`` sends nothing.

    Example::

        class Thermo(ChatConsumer):
            @command("temp", help="the room's temperature", usage="<room>")
            async def temp(self, message, args):
                return f"{args[0]}: 21.5 °C" if args else "which room?"

            @command("heat", tags=["device"], allow=["group:operators", "console:alice"])
            async def heat(self, message, args): ...

    Args:
        name: The command word (case-insensitive); defaults to the method's name.
        help: One line that ``help`` shows.
        usage: The arguments, as ``help`` shows them (``"<room>"``).
        aliases: Other words for the same command.
        tags: Names that ``access.rules`` can select the command by.
        allow: Who may run it when no ``access`` rule decides: identities
            (``"slack:U0123"``), ``"group:NAME"`` (of ``access.groups``), ``"admins"``,
            ``"authenticated"`` or ``"*"``. Empty: whoever ``access.default`` lets.
        private_only: Refuse it outside direct conversations (unless a rule allows it).

    Raises:
        ConsumerError: A name, alias, tag or subject that is not valid (a ``ValueError``).
        TypeError: The decorated function is not an ``async def``.
    """

    checked = None if name is None else _check_name(name, "@command")
    words = tuple(_check_name(alias, "@command aliases") for alias in aliases)
    tag_words = _words(tags, "tags", _tag)
    subjects = _words(allow, "allow", check_subject)

    def decorate(function: F) -> F:
        if not inspect.iscoroutinefunction(_unnarrowed(function)):
            raise TypeError(f"@command handler {function.__qualname__} must be an async def")
        declared = Command(
            name=_check_name(function.__name__, "@command") if checked is None else checked,
            help=help,
            usage=usage,
            aliases=words,
            method=function.__name__,
            tags=tag_words,
            allow=subjects,
            private_only=bool(private_only),
        )
        setattr(function, _COMMAND_ATTRIBUTE, declared)
        return function

    return decorate


def collect_commands(cls: type) -> dict[str, Command]:
    """The commands of ``cls`` by word (name and aliases): its bases' first, each class's own
    overriding them.

    Raises:
        ConsumerError: Two methods of one class declare the same word.
    """
    commands: dict[str, Command] = {}
    for klass in reversed(cls.__mro__):
        own: dict[str, str] = {}
        for attribute, value in vars(klass).items():
            declared = getattr(value, _COMMAND_ATTRIBUTE, None)
            if not isinstance(declared, Command) or declared.method != attribute:
                continue
            for word in (declared.name, *declared.aliases):
                if word in own:
                    raise ConsumerError(
                        f"{klass.__qualname__}: command {word!r} is declared by both "
                        f"{own[word]}() and {attribute}()"
                    )
                own[word] = attribute
                commands[word] = declared
    return commands
