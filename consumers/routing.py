"""Routers: ASGI applications that pick an application by scope type, topic or channel.

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
from typing import TYPE_CHECKING

from asgiref.sync import markcoroutinefunction

from consumers.base import ConsumerError, _fail
from consumers.topics import CompiledTopic, compile_topic, compose

if TYPE_CHECKING:
    from gateways.types import ASGIApp, Receive, Scope, Send

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "Route", "TopicRouter", "route"]


def _call(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """``app(scope, receive, send)``, with an error raised by the call itself deferred to
    the awaitable, so that it ends only this scope wherever the gateway calls the app."""
    try:
        return app(scope, receive, send)
    except Exception as exc:
        return _fail(exc)


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
            return _fail(
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
            return _fail(
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
        return _fail(ConsumerError(f"No route for topic {topic!r}"))

    __call__ = markcoroutinefunction(__call__)

    def topic_filters(self) -> list[str]:
        """The topic filters to subscribe to: one per route, deduplicated, in route order.

        Overlapping filters (``a/+`` and ``a/#``) are both kept; the broker may then deliver
        a message once per matching filter (MQTT 5.0 section 3.3.4).
        """
        return list(dict.fromkeys(entry.topic.topic_filter for entry in self.routes))


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
            return _fail(
                ConsumerError(
                    f"ChannelNameRouter got a scope without a 'channel' key "
                    f"(type {scope.get('type')!r}); use it for 'channel' scopes only"
                )
            )
        application = self.application_mapping.get(scope["channel"])
        if application is None:
            return _fail(
                ConsumerError(
                    f"No application for channel name {scope['channel']!r}; "
                    f"known: {sorted(self.application_mapping)!r}"
                )
            )
        return _call(application, scope, receive, send)

    __call__ = markcoroutinefunction(__call__)
