"""Consumers: one instance per scope, methods named after event types, a channel layer.

The model is Channels' ``consumer.py``, with four differences:

- the channel layer is passed in (``as_asgi(channel_layer=...)``, a class attribute, or the
  gateway's ``scope["channel_layer"]``), never a global configured from settings;
- an event type without a handler is logged and skipped instead of ending the consumer;
- the scope's ``<protocol>.disconnect`` event ends the consumer after its handler (if any)
  ran, even if the handler does not raise ``StopConsumer``: nothing follows it, and our
  gateway answers every later ``receive()`` with it again;
- an idle consumer costs no Task of its own: the scope's ``receive()`` and the layer's
  ``receive(channel_name)`` are waited on together through one waiter Future (our gateway's
  and our layer's both return Futures; a coroutine from any other server or layer is wrapped
  in a Task, which is correct but costs that Task).

Here: the errors, ``get_handler_name``, ``ConsumerApp`` (what ``as_asgi()`` returns),
``AsyncConsumer`` and ``SyncConsumer``. The dispatch loops that merge the two sources, join
and leave the groups are in ``consumers.dispatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from asgiref.sync import async_to_sync, markcoroutinefunction, sync_to_async
from pydantic import BaseModel

from consumers.dispatch import serve
from consumers.state import DurableState, state_key
from layer import ChannelLayer
from layer.addressing import send_to_scope
from layer.state import StateError, StateStore, Timer

if TYPE_CHECKING:
    from layer.types import Message, Receive, Scope, Send

__all__ = [
    "AsyncConsumer",
    "ConsumerApp",
    "ConsumerError",
    "StopConsumer",
    "SyncConsumer",
    "get_handler_name",
]

logger = logging.getLogger(__name__)


class ConsumerError(ValueError):
    """Base error of the consumers package: a bad event type, topic pattern, route or QoS.

    A ``ValueError``: every case is a value that cannot be used; the message quotes it.
    """


class StopConsumer(Exception):
    """Raise in a handler to end the consumer instance cleanly (as in Channels)."""


def get_handler_name(message: Message) -> str:
    """The name of the method that handles ``message``: its type with ``.`` as ``_``.

    ``{"type": "mqtt.message"}`` is handled by ``mqtt_message``.

    Args:
        message: An event or channel layer message, a mapping with a str ``"type"``.

    Returns:
        The handler's method name.

    Raises:
        ConsumerError: (a ``ValueError``) no str ``"type"``, or a type starting with ``_``
            (which would name a private method).
    """
    kind = message.get("type") if hasattr(message, "get") else None
    if not isinstance(kind, str):
        raise ConsumerError(f"message has no str 'type': {_preview(message)}")
    if kind.startswith("_"):
        raise ConsumerError(f"message type {kind!r} starts with '_'; refusing to dispatch it")
    return kind.replace(".", "_")


def _preview(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


async def raise_when_awaited(exc: BaseException) -> None:
    """A coroutine that raises ``exc`` when awaited.

    For an ASGI application that is a plain function returning an awaitable (a router, a
    consumer's ``__call__``): an error met in the call itself is raised from the awaitable
    instead, where the server expects the application's errors, so that it ends only that
    scope. Shared by the consumers package; not part of its public surface.
    """
    raise exc


#: ``scope`` until the instance is called with its own (shared: never mutate it).
_NO_SCOPE: Scope = {}


def _not_an_event(consumer: AsyncConsumer, text: str) -> TypeError:
    """The error of ``send(text)``: ``send`` takes an event; a chat consumer has ``say``."""
    where = f"{type(consumer).__qualname__}.send()"
    hint = "; to post a text, use say(text)" if callable(getattr(consumer, "say", None)) else ""
    return TypeError(
        f"{where} takes an event (a mapping with a str 'type'), not the str {_preview(text)}{hint}"
    )


async def _unset_send(message: Message) -> None:
    raise ConsumerError("send() called before the consumer was given its scope")


class ConsumerApp:
    """The ASGI 3 application ``Consumer.as_asgi()`` returns: one consumer per scope.

    Attributes:
        consumer_class: The consumer class.
        consumer_initkwargs: The keyword arguments given to ``as_asgi``.
    """

    def __init__(self, consumer_class: type[AsyncConsumer], initkwargs: dict[str, Any]) -> None:
        self.consumer_class = consumer_class
        self.consumer_initkwargs = initkwargs
        self.__name__ = consumer_class.__name__
        self.__qualname__ = consumer_class.__qualname__
        self.__doc__ = consumer_class.__doc__

    def __repr__(self) -> str:
        return f"<ConsumerApp {self.consumer_class.__qualname__}>"

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # A plain function returning the instance's coroutine: no coroutine frame of its own
        # (some 300 bytes per live scope). Marked below so that asyncio and asgiref treat it
        # as the coroutine function it behaves as.
        try:
            consumer = self.consumer_class(**self.consumer_initkwargs)
        except Exception as exc:
            # Raise it from the awaitable, where the server expects the application's errors.
            return raise_when_awaited(exc)
        return consumer(scope, receive, send)

    __call__ = markcoroutinefunction(__call__)
    _asgi_single_callable = True


class AsyncConsumer:
    """Base consumer: an ASGI application whose events go to methods named after their type.

    Use ``Consumer.as_asgi()`` as the application. Each scope gets a fresh instance, which:

    1. sets ``self.scope`` and ``self.channel_layer`` (see below);
    2. with a layer, gets ``self.channel_name`` from ``layer.new_channel()`` and joins every
       group in ``groups`` (``group_add``), before dispatching any event;
    3. dispatches the scope's events and the messages sent to its channel name, each source
       in arrival order, to ``dispatch`` (``mqtt.message`` goes to ``mqtt_message``);
    4. ends when a handler raises ``StopConsumer`` or the application is cancelled, and then
       leaves its groups (``group_discard``), shielded from cancellation, whatever the exit.

    The channel layer is the first of: ``as_asgi(channel_layer=...)``, the class attribute
    ``channel_layer``, ``scope["channel_layer"]`` (the gateway puts the daemon's layer
    there). With none, ``channel_name`` stays ``None`` and ``groups`` are not joined.

    An event type without a handler, or a message without a usable type, is logged (warning)
    and skipped; the consumer goes on. The scope's ``*.disconnect`` event is the last one:
    the consumer ends after dispatching it, or at once when it has no handler.

    Waiting costs no Task: when ``receive`` and the layer both offer ``receive_into`` (the
    waiter extension of our gateways and ``InMemoryChannelLayer``), the consumer waits on a
    single Future given to both; else on the two sources' Futures (a coroutine source, such
    as asgiref's communicator or Channels' layers, is wrapped in a Task). Behind our gateway,
    an idle consumer in one group costs under 2 KB in all (``bench/idle_scopes.py``).
    A ``*.disconnect`` message ends the consumer after its handler whichever source it came
    from, as a ``websocket.disconnect`` does in Channels.

    Durable state (``docs/state.md``, ``consumers.state``): with ``state_model`` set,
    ``self.state`` is loaded from the state store before the first event is dispatched and
    saved after each event or message the consumer handled, before it asks for the next
    (so before the gateway acknowledges an MQTT QoS 1/2 message); an event whose
    ``idempotency_key`` the scope applied already is skipped. The store is the first of
    ``as_asgi(state_store=...)``, the class attribute ``state_store``,
    ``scope["state_store"]`` (the daemon's ``state:`` section).

    Attributes:
        groups: Group names to join for the consumer's whole life (Channels layer spec).
        channel_layer: A layer with the Channels layer API, or ``None``.
        channel_name: This instance's channel name on the layer, or ``None``.
        scope: The scope of this instance.
        state_model: A pydantic model whose fields all have defaults, or ``None`` (no
            durable state).
        state_name: The first part of the state's key (``StateKey``): the consumer's
            import path unless set. Set it before renaming or moving the class.
        state_version: The shape's version, stored with the state; when the stored one
            differs, ``migrate_state(data, version)`` is called to bring it up to date.
        state_store: A ``layer.state.StateStore``, or ``None`` for ``scope["state_store"]``.
        state: The loaded state (an instance of ``state_model``) while the scope lives.
    """

    groups: Sequence[str] = ()
    channel_layer: ChannelLayer | None = None
    channel_name: str | None = None
    scope: Scope
    state_model: ClassVar[type[BaseModel] | None] = None
    state_name: ClassVar[str | None] = None
    state_version: ClassVar[int] = 1
    state_store: StateStore | None = None
    state: Any

    def __init__(self, **kwargs: Any) -> None:
        # Every attribute the base sets is set here first: CPython keeps attributes known when
        # an instance is made inline, while those added later to instances made in a burst
        # (a gateway opening many scopes) cost each instance a dict of some 270 bytes.
        # Subclasses keeping per-scope state save the same by setting it in __init__.
        self.scope = _NO_SCOPE
        self.base_send: Send = _unset_send
        self.channel_layer = type(self).channel_layer
        self.channel_name = None
        if type(self).state_model is not None:
            self.state = None
            self._durable: DurableState | None = None
        for key, value in kwargs.items():
            setattr(self, key, value)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ConsumerApp:
        """An ASGI 3 application that makes one instance of this class per scope.

        Args:
            **initkwargs: Attributes to set on each instance (e.g. ``channel_layer=layer``,
                ``groups=["alerts"]``); each must already be an attribute of the class.

        Returns:
            The application, with ``consumer_class`` and ``consumer_initkwargs`` attributes.

        Raises:
            TypeError: A keyword is not an attribute of the class.
        """
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(
                    f"{cls.__qualname__}.as_asgi() got an unexpected keyword argument {key!r}: "
                    "only attributes of the class can be set"
                )
        return ConsumerApp(cls, initkwargs)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        """Serve one scope, steps 1 to 4 above: the ASGI 3 application of this instance.

        A plain function (marked as a coroutine function) that sets the instance up and
        returns the coroutine of the dispatch loop fitting its sources (steps 2 to 4:
        ``consumers.dispatch.serve``). That loop's frame is the one an idle consumer keeps,
        so there is no other (100,000 idle consumers must fit in some 2 KB each). An error
        of the set-up is raised when the coroutine is awaited, as from an ``async def``.
        """
        try:
            layer = self._set_up(scope, send)
        except Exception as exc:
            return raise_when_awaited(exc)
        # A plain function, not a bound method, is what the loop's frame keeps.
        return serve(self, type(self)._dispatch_event, receive, layer)

    __call__ = markcoroutinefunction(__call__)

    def _set_up(self, scope: Scope, send: Send) -> ChannelLayer | None:
        """Step 1: keep ``scope`` and ``send``; return the channel layer (see the class)."""
        self.scope = scope
        self.base_send = send
        layer = self.channel_layer
        if layer is None:
            layer = self.channel_layer = scope.get("channel_layer")
        return layer

    async def _dispatch_event(self, event: Message) -> bool:
        """Dispatch one event or message; True when it was the last (``*.disconnect``, or
        a handler raised ``StopConsumer``): the dispatch loop then ends.

        The disconnect event ends the consumer after its handler ran, or at once when there
        is none: nothing follows it, and a server may repeat it to every later ``receive()``.
        """
        kind = event.get("type")
        last = isinstance(kind, str) and kind.endswith(".disconnect")
        if type(self).state_model is not None:
            return await self._dispatch_durable(event, last)
        if not last or callable(getattr(self, str(kind).replace(".", "_"), None)):
            try:
                await self.dispatch(event)
            except StopConsumer:
                return True
        return last

    async def _dispatch_durable(self, event: Message, last: bool) -> bool:
        """``_dispatch_event`` with durable state: load it first, skip an event applied
        already, save after the handler (also after one that raised ``StopConsumer``)."""
        durable = self._durable
        if durable is None:
            durable = self._durable = await self._open_state()
        if durable.already_applied(event) or durable.take_timer(event) is False:
            return last
        stop = False
        if not last or callable(getattr(self, str(event.get("type")).replace(".", "_"), None)):
            try:
                await self.dispatch(event)
            except StopConsumer:
                stop = True
        await durable.save(self.state, event)
        return last or stop

    async def _open_state(self) -> DurableState:
        """Load ``self.state`` from the store (see the class docstring)."""
        cls = type(self)
        model = cls.state_model
        store = self.state_store or self.scope.get("state_store")
        if model is None or store is None:
            raise StateError(
                f"{cls.__qualname__} has a state_model but no state store: give the YAML a "
                "state: section, or as_asgi(state_store=...)"
            )
        name = cls.state_name or f"{cls.__module__}.{cls.__qualname__}"
        migrate = getattr(self, "migrate_state", None)
        durable, self.state = await DurableState.open(
            store,
            state_key(name, self.scope),
            model,
            version_tag=cls.state_version,
            migrate=migrate if callable(migrate) else None,
        )
        return durable

    # -- timers and addressed events (docs/state.md) -------------------------------------

    def set_timer(
        self,
        name: str,
        event: Message,
        *,
        delay: float | None = None,
        at: float | None = None,
    ) -> Timer:
        """Set the timer ``name`` of this scope, replacing one of that name: ``event`` is
        delivered to the scope after ``delay`` seconds, or at ``at`` (seconds since the
        epoch), with ``"timer": name`` and ``"due": <at>`` added, and handled by its type as
        any event. The timer is stored with the state, in the write after this handler, so it
        outlives the process: one due during a restart fires after it (late: compare
        ``due``), starting the scope if it is not running. It fires once, at least once
        (a crash before its handler's save repeats it), within the ``state:`` section's
        ``timer_interval`` of its time.

        Needs durable state (``state_model``): call it from a handler.

        Returns:
            The ``layer.state.Timer`` set.

        Raises:
            StateError: No durable state; ``name`` empty; ``event`` without a str ``type``
                or with a ``timer`` or ``due`` key; not exactly one of ``delay`` and ``at``.
            InvalidStateWrite: ``event`` cannot be JSON, or the time is not a finite number.
        """
        return self._timers_state().set_timer(name, event, delay=delay, at=at)

    def cancel_timer(self, name: str) -> bool:
        """Cancel the timer ``name`` (in the write after this handler); whether it was set.

        Raises:
            StateError: No durable state (see ``set_timer``).
        """
        return self._timers_state().cancel_timer(name)

    @property
    def timers(self) -> Mapping[str, Timer]:
        """This scope's timers by name (``layer.state.Timer``: ``due``, ``event``), read-only.

        Raises:
            StateError: No durable state (see ``set_timer``).
        """
        return MappingProxyType(self._timers_state().timers)

    def _timers_state(self) -> DurableState:
        durable = getattr(self, "_durable", None)
        if durable is None:
            raise StateError(
                f"{type(self).__qualname__}: timers are stored with the scope's state; set "
                "state_model and use them from a handler (docs/state.md, Timers)"
            )
        return durable  # type: ignore[no-any-return]

    async def send_to_scope(self, gateway: str, scope_key: str, event: Message) -> None:
        """Send ``event`` to the scope ``scope_key`` of ``gateway`` over the channel layer,
        starting that scope if it is not running (``layer.addressing.send_to_scope``).

        Raises:
            ConsumerError: This consumer has no channel layer.
            ChannelFull: The gateway's channel is full.
        """
        if self.channel_layer is None:
            raise ConsumerError(f"{type(self).__qualname__}.send_to_scope(): no channel layer")
        await send_to_scope(self.channel_layer, gateway, scope_key, event)

    async def dispatch(self, message: Message) -> None:
        """Call the handler of ``message`` (see ``get_handler_name``), or log and skip it."""
        handler = self._handler(message)
        if handler is not None:
            await handler(message)

    def _handler(self, message: Message) -> Callable[[Message], Any] | None:
        try:
            name = get_handler_name(message)
        except ConsumerError as exc:
            self._log_skipped(str(exc))
            return None
        handler = getattr(self, name, None)
        if not callable(handler):
            self._log_skipped(f"no handler {name!r} for event type {message['type']!r}")
            return None
        return handler  # type: ignore[no-any-return]

    def _log_skipped(self, why: str) -> None:
        scope = getattr(self, "scope", {})
        logger.warning(
            "%s: %s (scope type %r, gateway %r, scope key %r); skipped",
            type(self).__qualname__,
            why,
            scope.get("type"),
            scope.get("gateway"),
            scope.get("scope_key"),
        )

    async def send(self, message: Message) -> None:
        """Send an event to the gateway (the ASGI ``send``).

        Args:
            message: The event, a mapping with a str ``"type"`` (``{"type": "mqtt.publish",
                ...}``).

        Raises:
            TypeError: ``message`` is a str (``ChatConsumer.say(text)`` posts a text).
        """
        sent: object = message  # typed a mapping, but a str is the likely mistake
        if isinstance(sent, str):
            raise _not_an_event(self, sent)
        await self.base_send(message)


class SyncConsumer(AsyncConsumer):
    """A consumer whose handlers are plain functions, run in a thread.

    Handlers run through asgiref's ``sync_to_async`` (``thread_sensitive=True``: one thread,
    so handlers may use thread-bound resources such as a Django database connection);
    ``send`` is synchronous. Use the channel layer from a handler through ``async_to_sync``::

        class Relay(SyncConsumer):
            groups = ["alerts"]

            def mqtt_message(self, message):
                async_to_sync(self.channel_layer.group_send)(
                    "alerts", {"type": "alert", "text": message["payload"].decode()}
                )
    """

    async def dispatch(self, message: Message) -> None:
        """Run the handler of ``message`` in a thread, or log and skip it."""
        handler = self._handler(message)
        if handler is not None:
            await sync_to_async(handler)(message)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an event to the gateway, from a handler's thread.

        Raises:
            TypeError: ``message`` is a str.
        """
        sent: object = message
        if isinstance(sent, str):
            raise _not_an_event(self, sent)
        async_to_sync(self.base_send)(message)
