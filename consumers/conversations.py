"""``ConversationRouter``: route a chat scope on its gateway, platform and conversation
(``docs/specs/chat.md``), as ``consumers.routing.TopicRouter`` routes an MQTT scope."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import markcoroutinefunction

from consumers.base import ConsumerError, raise_when_awaited
from consumers.routing import call_app, describe_app

if TYPE_CHECKING:
    from layer.types import ASGIApp, Receive, Scope, Send

__all__ = ["ConversationRoute", "ConversationRouter", "chat_route"]


# -- chat conversations --------------------------------------------------------------------

_KINDS = ("direct", "group", "thread")
_CRITERIA = ("gateway", "platform", "kind", "name", "id")

_Pattern = str | re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Criterion:
    """One key of a ``ConversationRoute``: its patterns, any of which may match."""

    key: str
    patterns: tuple[re.Pattern[str], ...]
    text: str

    def match(self, value: object) -> dict[str, str] | None:
        if not isinstance(value, str):
            return None
        if self.key == "name":
            value = value.removeprefix("#")
        for pattern in self.patterns:
            found = pattern.fullmatch(value)
            if found is not None:
                return {k: v for k, v in found.groupdict().items() if v is not None}
        return None


def _criterion(key: str, value: _Pattern | Iterable[_Pattern]) -> _Criterion:
    values: list[Any] = [value] if isinstance(value, (str, re.Pattern)) else []
    if not values:
        try:
            values = list(value)  # type: ignore[arg-type]
        except TypeError:
            raise ConsumerError(
                f"chat_route {key}= takes a str (glob), an re.Pattern or a list of them, "
                f"got {value!r}"
            ) from None
    if not values:
        raise ConsumerError(f"chat_route {key}= needs at least one pattern, got {value!r}")
    patterns: list[re.Pattern[str]] = []
    texts: list[str] = []
    for item in values:
        if isinstance(item, re.Pattern):
            patterns.append(item)
            texts.append(f"/{item.pattern}/")
            continue
        if not isinstance(item, str) or not item:
            raise ConsumerError(
                f"chat_route {key}= takes non-empty str (glob) or re.Pattern values, got {item!r}"
            )
        if key == "kind":
            if item not in _KINDS:
                raise ConsumerError(f"chat_route kind= must be one of {list(_KINDS)}, got {item!r}")
            patterns.append(re.compile(re.escape(item)))
        elif key == "name":
            item = item.removeprefix("#")
            patterns.append(re.compile(fnmatch.translate(item), re.IGNORECASE))
        else:
            patterns.append(re.compile(fnmatch.translate(item)))
        texts.append(item)
    return _Criterion(key, tuple(patterns), "|".join(texts))


@dataclass(frozen=True, slots=True)
class ConversationRoute:
    """One entry of a ``ConversationRouter``: criteria, all of which must match, and an app.

    Build it with ``chat_route``.
    """

    criteria: tuple[_Criterion, ...]
    app: ASGIApp

    @property
    def pattern(self) -> str:
        """The route as ``scope["route"]["pattern"]`` shows it: ``"platform=slack name=ops-*"``,
        ``"*"`` for a route that matches every conversation."""
        return " ".join(f"{c.key}={c.text}" for c in self.criteria) or "*"

    def match(self, scope: Scope) -> dict[str, str] | None:
        """The captures of ``scope`` (regex named groups), or ``None`` when it does not match."""
        conversation = scope.get("conversation") or {}
        captures: dict[str, str] = {}
        for criterion in self.criteria:
            if criterion.key in ("gateway", "platform"):
                value = scope.get(criterion.key)
            else:
                value = conversation.get(criterion.key)
            found = criterion.match(value)
            if found is None:
                return None
            captures.update(found)
        return captures


def chat_route(
    app: ASGIApp,
    *,
    gateway: _Pattern | Iterable[_Pattern] | None = None,
    platform: _Pattern | Iterable[_Pattern] | None = None,
    kind: str | Iterable[str] | None = None,
    name: _Pattern | Iterable[_Pattern] | None = None,
    id: _Pattern | Iterable[_Pattern] | None = None,
) -> ConversationRoute:
    """A ``ConversationRouter`` entry: chat scopes matching every criterion given go to ``app``.

    A str is a glob (``fnmatch``: ``*``, ``?``, ``[abc]``), matched against the whole value;
    an ``re.Pattern`` must match the whole value too (``fullmatch``), and its named groups
    are captured into ``scope["route"]["kwargs"]``. A list of them matches when any does.
    Names match case-insensitively and without a leading ``#`` (``"#ops-*"`` is
    ``"ops-*"``); a conversation without a name (a DM) matches no ``name`` criterion.

    Args:
        app: The ASGI application; a ``ConversationRouter`` nests (its routes are tried with
            this route's criteria added, in order).
        gateway: Patterns of ``scope["gateway"]``, the gateway's name in YAML.
        platform: Patterns of ``scope["platform"]`` (``"slack"``, ``"console"``).
        kind: ``"direct"``, ``"group"`` or ``"thread"``, or several of them.
        name: Patterns of ``scope["conversation"]["name"]`` (a channel's name).
        id: Patterns of ``scope["conversation"]["id"]`` (the platform's channel id).

    Raises:
        ConsumerError: An unknown kind, an empty or non-str pattern (a ``ValueError``).
    """
    given = {"gateway": gateway, "platform": platform, "kind": kind, "name": name, "id": id}
    criteria = tuple(_criterion(k, v) for k, v in given.items() if v is not None)
    return ConversationRoute(criteria, app)


class ConversationRouter:
    """Route a chat scope on its gateway, platform and conversation (``docs/specs/chat.md``).

    Routes are tried in order; the first whose criteria all match wins. Its application is
    called with the scope after setting ``scope["route"] = {"pattern": route.pattern,
    "kwargs": captures}`` on it, captures merged over those of an outer router's ``route``
    (as ``TopicRouter`` does). ``chat_route(app)`` without criteria matches every
    conversation: put it last as the default.

    A route whose application is a ``ConversationRouter`` nests it: its routes are tried
    with the outer route's criteria added, in order, and if none matches the next outer route
    is tried. Nest it under ``ProtocolTypeRouter({"chat": ...})``.

    Args:
        routes: ``chat_route(app, ...)`` entries.

    A scope that matches no route fails with ``ConsumerError`` (a ``ValueError``) naming its
    gateway, platform and conversation, as ``TopicRouter`` fails for a topic: the gateway
    logs it and ends that scope only.
    """

    _asgi_single_callable = True

    def __init__(self, routes: Iterable[ConversationRoute]) -> None:
        flat: list[ConversationRoute] = []
        for entry in routes:
            if not isinstance(entry, ConversationRoute):
                raise TypeError(
                    f"ConversationRouter takes chat_route(app, ...) entries, got {entry!r}"
                )
            if isinstance(entry.app, ConversationRouter):
                flat.extend(
                    ConversationRoute(entry.criteria + inner.criteria, inner.app)
                    for inner in entry.app.routes
                )
            else:
                flat.append(entry)
        #: The routes, nested routers flattened, in matching order.
        self.routes: tuple[ConversationRoute, ...] = tuple(flat)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        conversation = scope.get("conversation")
        if not isinstance(conversation, Mapping):
            return raise_when_awaited(
                ConsumerError(
                    f"ConversationRouter got a scope without a 'conversation' "
                    f"(type {scope.get('type')!r}); use it for 'chat' scopes only"
                )
            )
        for entry in self.routes:
            kwargs = entry.match(scope)
            if kwargs is None:
                continue
            outer = scope.get("route")
            if outer:
                kwargs = {**outer.get("kwargs", {}), **kwargs}
            scope["route"] = {"pattern": entry.pattern, "kwargs": kwargs}
            return call_app(entry.app, scope, receive, send)
        return raise_when_awaited(
            ConsumerError(
                f"No route for chat conversation {conversation.get('id')!r} "
                f"(kind {conversation.get('kind')!r}, name {conversation.get('name')!r}) "
                f"on gateway {scope.get('gateway')!r}, platform {scope.get('platform')!r}"
            )
        )

    __call__ = markcoroutinefunction(__call__)

    def describe(self) -> list[dict[str, Any]]:
        """The routes as plain data, for documentation (``asgi-gateway asyncapi``).

        Returns:
            One dict per route, in matching order: ``pattern`` (``"name=alerts"``, ``"*"``),
            ``criteria`` (key to its patterns as written, ``{"name": "alerts"}``), and the
            keys of ``describe_app``.
        """
        return [
            {
                "pattern": entry.pattern,
                "criteria": {c.key: c.text for c in entry.criteria},
                **describe_app(entry.app),
            }
            for entry in self.routes
        ]
