"""Routers: ASGI applications that pick an application by scope type, topic or channel
(by conversation: ``consumers.conversations``).

Every router is itself an ASGI 3 application. Each ``__call__`` is a plain function that
returns the chosen application's awaitable instead of awaiting it in a coroutine of its own:
a router in front of 100,000 idle consumers then costs no coroutine frame per scope. Errors
(no route, unknown scope type) are raised when that awaitable is awaited, as from an
``async def``, so a gateway ends only that scope. ``__call__`` is marked as a coroutine
function for asyncio and asgiref.
"""

from __future__ import annotations

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
    "ProtocolTypeRouter",
    "Route",
    "TopicRouter",
    "call_app",
    "describe_app",
    "route",
]


def call_app(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
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
        return call_app(application, scope, receive, send)

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

    A scope opened by key, with no message (``topic`` is ``None``: ``docs/specs/mqtt.md``,
    *Scopes opened by key*), is routed on its ``scope_key`` instead, against the first
    levels of each pattern, as many as the key has (``CompiledTopic.first_levels``): the key
    ``devices/kitchen`` takes the route ``devices/{device_id}/telemetry``, as the pattern
    ``devices/{device_id}``, with ``{"device_id": "kitchen"}``.

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
        self._pairs = tuple((entry.topic, entry.app) for entry in self.routes)
        #: Per key level count, the routes' first levels (scopes opened by key).
        self._key_routes: dict[int, tuple[tuple[CompiledTopic, ASGIApp], ...]] = {}

    def _by_key_levels(self, count: int) -> tuple[tuple[CompiledTopic, ASGIApp], ...]:
        routes = self._key_routes.get(count)
        if routes is None:
            firsts = ((entry.topic.first_levels(count), entry.app) for entry in self.routes)
            routes = tuple((p, app) for p, app in firsts if p is not None)
            self._key_routes[count] = routes
        return routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        topic = scope.get("topic")
        routes: Iterable[tuple[CompiledTopic, ASGIApp]] = self._pairs
        if topic is None and isinstance(scope.get("scope_key"), str):
            topic = scope["scope_key"]
            routes = self._by_key_levels(topic.count("/") + 1)
        elif not isinstance(topic, str):
            return raise_when_awaited(
                ConsumerError(
                    f"TopicRouter got a scope without a str 'topic' (type {scope.get('type')!r})"
                )
            )
        for pattern, app in routes:
            kwargs = pattern.match(topic)
            if kwargs is None:
                continue
            outer = scope.get("route")
            if outer:
                kwargs = {**outer.get("kwargs", {}), **kwargs}
            # Set on the scope itself, as Starlette's routers do: a protocol server makes a
            # fresh scope per application instance, and a copy would cost each live scope
            # some 300 bytes more.
            scope["route"] = {"pattern": pattern.pattern, "kwargs": kwargs}
            return call_app(app, scope, receive, send)
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
        return call_app(application, scope, receive, send)

    __call__ = markcoroutinefunction(__call__)
