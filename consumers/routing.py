"""Routers: ASGI applications that pick an application by scope type, topic, conversation
or channel.

Every router is itself an ASGI 3 application. Each ``__call__`` is a plain function that
returns the chosen application's awaitable instead of awaiting it in a coroutine of its own:
a router in front of 100,000 idle consumers then costs no coroutine frame per scope. Errors
(no route, unknown scope type) are raised when that awaitable is awaited, as from an
``async def``, so a gateway ends only that scope. ``__call__`` is marked as a coroutine
function for asyncio and asgiref.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import markcoroutinefunction

from consumers.base import ConsumerError, raise_when_awaited
from consumers.topics import CompiledTopic, compile_topic, compose

if TYPE_CHECKING:
    from layer.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "ChannelNameRouter",
    "ConversationRoute",
    "ConversationRouter",
    "ProtocolTypeRouter",
    "Route",
    "TopicRouter",
    "chat_route",
    "describe_app",
    "route",
]


def _call(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """``app(scope, receive, send)``, with an error raised by the call itself deferred to
    the awaitable, so that it ends only this scope wherever the gateway calls the app."""
    try:
        return app(scope, receive, send)
    except Exception as exc:
        return raise_when_awaited(exc)


def describe_app(app: ASGIApp) -> dict[str, Any]:
    """What a route's application declares, as plain data for documentation tools.

    Returns:
        ``app``; ``consumer``: the class behind ``Consumer.as_asgi()`` (its
        ``consumer_class``), else ``None``; ``model``: that class's ``model`` (a pydantic
        model of its payloads, ``JsonMqttConsumer``), else ``None``; ``publishes``: a copy of
        its ``publishes`` mapping (``MqttConsumer``), else ``{}``.
    """
    consumer = getattr(app, "consumer_class", None)
    return {
        "app": app,
        "consumer": consumer,
        "model": getattr(consumer, "model", None),
        "publishes": dict(getattr(consumer, "publishes", None) or {}),
    }


class ProtocolTypeRouter:
    """Route on ``scope["type"]`` (``"mqtt"``, ``"chat"``, ``"channel"``...), as in Channels.

    Args:
        application_mapping: Scope type to ASGI application.

    The application of a scope of another type fails with ``ConsumerError`` (a
    ``ValueError``) naming that type and the known ones.
    """

    _asgi_single_callable = True

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        application = self.application_mapping.get(scope.get("type"))  # type: ignore[arg-type]
        if application is None:
            return raise_when_awaited(
                ConsumerError(
                    f"No application for scope type {scope.get('type')!r}; "
                    f"known types: {sorted(self.application_mapping)!r}"
                )
            )
        return _call(application, scope, receive, send)

    __call__ = markcoroutinefunction(__call__)

    def topic_filters(self) -> list[str]:
        """The MQTT topic filters of the ``"mqtt"`` application, or ``[]`` when it has none."""
        method = getattr(self.application_mapping.get("mqtt"), "topic_filters", None)
        return list(method()) if callable(method) else []

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """What each scope type's application serves, as plain data (``asgi-gateway asyncapi``).

        Returns:
            Scope type to the ``describe()`` of its application (a ``TopicRouter``,
            ``ConversationRouter`` or ``ChannelNameRouter``); an application without
            ``describe`` (a consumer) gives one entry with ``pattern`` ``None`` and the
            keys of ``describe_app``.
        """
        described: dict[str, list[dict[str, Any]]] = {}
        for scope_type, application in self.application_mapping.items():
            method = getattr(application, "describe", None)
            if callable(method):
                described[scope_type] = list(method())
            else:
                described[scope_type] = [{"pattern": None, **describe_app(application)}]
        return described


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of a ``TopicRouter``: a compiled topic pattern and its application."""

    topic: CompiledTopic
    app: ASGIApp


def route(pattern: str, app: ASGIApp) -> Route:
    """A ``TopicRouter`` entry: scopes whose topic matches ``pattern`` go to ``app``.

    Args:
        pattern: A topic pattern (see ``compile_topic``), e.g. ``"devices/{device_id}/#"``.
        app: An ASGI application; a ``TopicRouter`` nests under a pattern ending in ``#`` or
            ``{name:#}`` and matches the rest of the topic.

    Raises:
        ConsumerError: The pattern cannot be an MQTT topic filter (a ``ValueError``).
    """
    return Route(compile_topic(pattern), app)


class TopicRouter:
    """Route an MQTT scope on the topic that opened it (``scope["topic"]``).

    Routes are tried in order; the first whose pattern matches wins. Its application is
    called with the scope after setting ``scope["route"] = {"pattern": full_pattern,
    "kwargs": captures}`` on it, in place as Starlette's routers do (captures merged over
    those of an outer router's ``route``).

    A route whose application is a ``TopicRouter`` and whose pattern ends in ``#`` or
    ``{name:#}`` nests it: the inner patterns match the rest of the topic. Patterns compose
    when the router is built, so ``route("devices/{device_id}/{rest:#}",
    TopicRouter([route("telemetry", app)]))`` is the route ``devices/{device_id}/telemetry``
    (topic filter ``devices/+/telemetry``) and the rest capture is not in the kwargs.

    Args:
        routes: ``route(pattern, app)`` entries.

    Raises:
        ConsumerError: A nested ``TopicRouter`` under a pattern without a trailing ``#``,
            or a composed pattern that repeats a capture name (a ``ValueError``).
    """

    _asgi_single_callable = True

    def __init__(self, routes: Iterable[Route]) -> None:
        flat: list[Route] = []
        for entry in routes:
            if not isinstance(entry, Route):
                raise TypeError(f"TopicRouter takes route(pattern, app) entries, got {entry!r}")
            if isinstance(entry.app, TopicRouter):
                flat.extend(
                    Route(compose(entry.topic, inner.topic), inner.app)
                    for inner in entry.app.routes
                )
            else:
                flat.append(entry)
        #: The routes, nested routers flattened into full patterns, in matching order.
        self.routes: tuple[Route, ...] = tuple(flat)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        topic = scope.get("topic")
        if not isinstance(topic, str):
            return raise_when_awaited(
                ConsumerError(
                    f"TopicRouter got a scope without a str 'topic' (type {scope.get('type')!r})"
                )
            )
        for entry in self.routes:
            kwargs = entry.topic.match(topic)
            if kwargs is None:
                continue
            outer = scope.get("route")
            if outer:
                kwargs = {**outer.get("kwargs", {}), **kwargs}
            # Set on the scope itself, as Starlette's routers do: a protocol server makes a
            # fresh scope per application instance, and a copy would cost each live scope
            # some 300 bytes more.
            scope["route"] = {"pattern": entry.topic.pattern, "kwargs": kwargs}
            return _call(entry.app, scope, receive, send)
        return raise_when_awaited(ConsumerError(f"No route for topic {topic!r}"))

    __call__ = markcoroutinefunction(__call__)

    def topic_filters(self) -> list[str]:
        """The topic filters to subscribe to: one per route, deduplicated, in route order.

        Overlapping filters (``a/+`` and ``a/#``) are both kept; the broker may then deliver
        a message once per matching filter (MQTT 5.0 section 3.3.4).
        """
        return list(dict.fromkeys(entry.topic.topic_filter for entry in self.routes))

    def describe(self) -> list[dict[str, Any]]:
        """The routes as plain data, for documentation (``asgi-gateway asyncapi``).

        Returns:
            One dict per route, in matching order: ``pattern`` (the full pattern,
            ``"devices/{device_id}/telemetry"``), ``topic_filter`` (``"devices/+/telemetry"``),
            ``captures`` (``("device_id",)``), ``multi_level`` (the pattern ends in ``#`` or
            ``{name:#}``), and the keys of ``describe_app`` (``consumer``, ``model``,
            ``publishes``).
        """
        return [
            {
                "pattern": entry.topic.pattern,
                "topic_filter": entry.topic.topic_filter,
                "captures": entry.topic.captures,
                "multi_level": entry.topic.multi_level,
                **describe_app(entry.app),
            }
            for entry in self.routes
        ]


class ChannelNameRouter:
    """Route a worker scope (``scope["type"] == "channel"``) on ``scope["channel"]``.

    Args:
        application_mapping: Channel name to ASGI application.

    A scope without ``"channel"``, or with a channel not in the mapping, fails with
    ``ConsumerError`` (a ``ValueError``) quoting it.
    """

    _asgi_single_callable = True

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if "channel" not in scope:
            return raise_when_awaited(
                ConsumerError(
                    f"ChannelNameRouter got a scope without a 'channel' key "
                    f"(type {scope.get('type')!r}); use it for 'channel' scopes only"
                )
            )
        application = self.application_mapping.get(scope["channel"])
        if application is None:
            return raise_when_awaited(
                ConsumerError(
                    f"No application for channel name {scope['channel']!r}; "
                    f"known: {sorted(self.application_mapping)!r}"
                )
            )
        return _call(application, scope, receive, send)

    __call__ = markcoroutinefunction(__call__)


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
            return _call(entry.app, scope, receive, send)
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
