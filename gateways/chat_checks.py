"""What an application sends to a chat gateway, checked (``docs/specs/chat.md``, "Events the
application sends"): ``EventCheck``, made by ``ChatGateway.handle_send`` for each event.

An event the platform can't carry out (a ``chat.send`` without ``text``, a ``format`` or
``native`` the platform does not render, a key of another event) raises ``GatewayError``
from the application's ``await send(...)``, naming the gateway, the scope key and the problem.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal, cast

from gateways.errors import GatewayError
from layer.types import ChatReactEvent, ChatSendMessageEvent, Message

__all__ = ["FORMATS", "REACT_KEYS", "SEND_KEYS", "TYPING_KEYS", "EventCheck", "is_unicode"]

SEND_KEYS = frozenset({"type", "text", "thread", "reply_to", "format", "native"})
REACT_KEYS = frozenset({"type", "message_id", "reaction", "remove"})
TYPING_KEYS = frozenset({"type"})
FORMATS = ("plain", "markdown")


def is_unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (encodes as UTF-8): a platform's JSON ``\\ud814``
    escape decodes to a lone surrogate, which no conversation id (a scope key, a state key)
    may hold."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class EventCheck:
    """The checks of one event sent by the application of one scope.

    Args:
        gateway: The gateway's name.
        key: The scope key.
        platform: The platform (``ChatGateway.platform``).
        formats: The ``chat.send`` formats the platform renders.
        native_kinds: The ``native`` keys it takes (none: it has no native content).
        thread: The conversation's ``thread_id``, the default of ``chat.send``'s ``thread``.
    """

    def __init__(
        self,
        gateway: str,
        key: str,
        platform: str,
        formats: Collection[str],
        native_kinds: Collection[str],
        thread: str | None,
    ) -> None:
        self.gateway = gateway
        self.key = key
        self.platform = platform
        self.formats = formats
        self.native_kinds = native_kinds
        self.thread = thread

    def error(self, problem: str) -> GatewayError:
        """The error of ``problem``, naming the gateway and the scope key."""
        return GatewayError(f"gateway {self.gateway!r}, scope {self.key!r}: {problem}")

    def keys(self, message: Message, known: frozenset[str]) -> None:
        """Refuse a key of ``message`` not in ``known``."""
        unknown = sorted(str(k) for k in message if k not in known)
        if unknown:
            raise self.error(
                f"{message['type']} has unknown keys {unknown}; known: {sorted(known)}",
            )

    def optional_str(self, message: Message, key: str) -> str | None:
        value = message.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{message['type']} {key!r} must be a str or None, got {value!r}")
        return value

    def send(self, message: Message) -> ChatSendMessageEvent:
        """A ``chat.send``, checked, with its defaults (``thread``: the conversation's)."""
        self.keys(message, SEND_KEYS)
        if "text" not in message:
            raise self.error("chat.send needs 'text' (a str), and has none")
        text = message["text"]
        if not isinstance(text, str):
            raise self.error(f"chat.send 'text' must be a str, got {text!r}")
        thread = self.optional_str(message, "thread")
        reply_to = self.optional_str(message, "reply_to")
        fmt = message.get("format", "plain")
        if fmt not in FORMATS:
            raise self.error(f"chat.send 'format' must be one of {list(FORMATS)}, got {fmt!r}")
        if fmt not in self.formats:
            raise self.error(
                f"platform {self.platform!r} cannot render chat.send format {fmt!r}; "
                f"it renders {sorted(self.formats)}",
            )
        native = message.get("native")
        if native is not None:
            if not isinstance(native, dict):
                raise self.error(f"chat.send 'native' must be a dict or None, got {native!r}")
            if not self.native_kinds:
                raise self.error(
                    f"platform {self.platform!r} has no native content; chat.send 'native' "
                    f"with keys {sorted(map(str, native))} can't be sent",
                )
            foreign = sorted(str(k) for k in native if k not in self.native_kinds)
            if foreign:
                raise self.error(
                    f"platform {self.platform!r} can't use chat.send 'native' keys {foreign}; "
                    f"it takes {sorted(self.native_kinds)}",
                )
        if not text and not native:
            raise self.error("chat.send has empty 'text' and no 'native' content")
        if thread is None:
            thread = self.thread
        return {
            "type": "chat.send",
            "text": text,
            "thread": thread,
            "reply_to": reply_to,
            "format": cast("Literal['plain', 'markdown']", fmt),
            "native": cast("dict[str, Any] | None", native),
        }

    def react(self, message: Message) -> ChatReactEvent:
        """A ``chat.react``, checked, with its defaults."""
        self.keys(message, REACT_KEYS)
        for key in ("message_id", "reaction"):
            value = message.get(key)
            if not isinstance(value, str) or not value:
                raise self.error(f"chat.react needs {key!r}, a non-empty str, got {value!r}")
        remove = message.get("remove", False)
        if not isinstance(remove, bool):
            raise self.error(f"chat.react 'remove' must be a bool, got {remove!r}")
        return {
            "type": "chat.react",
            "message_id": message["message_id"],
            "reaction": message["reaction"],
            "remove": remove,
        }
