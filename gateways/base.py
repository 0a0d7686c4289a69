"""The gateway base: one long-lived application instance per scope key.

A gateway (protocol server) terminates one transport. Most transports it serves are
stateless per message (an MQTT PUBLISH, a chat message), yet the application sees long-lived
scopes: the gateway keeps one ASGI application instance per *scope key* (an MQTT topic, a
device, a chat conversation), feeds it that scope's events in order, and ends it

- on idle timeout (no event for ``idle_timeout`` seconds), reason ``"idle"``;
- on eviction, when opening a scope would exceed ``max_scopes`` (least recently used first),
  reason ``"evicted"``;
- when the application sends ``<protocol>.close``, reason ``"closed"``;
- on shutdown, reason ``"shutdown"``.

Every one of those ends sends ``<protocol>.disconnect`` first, then cancels the instance if
it has not returned within ``disconnect_grace`` seconds. An instance that raises is logged
with the gateway's name and the scope key; only its own scope ends, and the next event for
that key opens a fresh instance.

This keeps asgiref's ``StatelessServer`` vocabulary and fixes what it gets wrong: it never
holds more than ``max_scopes`` live instances, it evicts with a disconnect event instead of a
bare cancel, it learns of a crash from a done-callback instead of polling, its per-scope
queue is bounded (a full queue applies back-pressure to the transport instead of growing or
dropping), and ``stop()`` leaves no task behind.

Memory matters here (a daemon may hold 100,000 idle device scopes), so an idle scope costs
one Task, one pending Future and a small slotted record: the event queue is allocated only
while events are actually waiting, and ``receive`` is a plain function returning a Future
(which the ASGI specification allows: ``receive()`` returns an awaitable), so a consumer can
wait on it beside its channel layer without a Task of its own.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from functools import cache
from typing import Any, ClassVar, Literal

from gateways.addressing import receive_addressed
from gateways.asyncapi_hooks import AsyncApiHooks
from gateways.errors import GatewayError
from gateways.instance import ScopeInstance
from gateways.metrics import Drops, GatewayStats
from gateways.options import GatewayOptions
from gateways.ownership import Ownership
from gateways.scopes import Scopes
from layer import ChannelLayer
from layer.addressing import MAX_GATEWAY_NAME
from layer.state import StateStore
from layer.types import ASGIApp, DisconnectReason, Message, Scope

__all__ = [
    "ASGI_VERSION",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "ScopeInstance",
    "WhenFull",
]

logger = logging.getLogger(__name__)

#: The ``scope["asgi"]`` of every scope a gateway whose ``spec_version`` is ``"1.0"`` opens.
#: Shared, so treat it as read-only.
ASGI_VERSION: dict[str, str] = {"version": "3.0", "spec_version": "1.0"}


@cache
def _asgi_version(spec_version: str) -> dict[str, str]:
    """The shared ``scope["asgi"]`` of a protocol spec version (one dict per version)."""
    if spec_version == ASGI_VERSION["spec_version"]:
        return ASGI_VERSION
    return {"version": "3.0", "spec_version": spec_version}


#: What ``Gateway.dispatch_nowait`` does with an event for a scope whose queue is full.
WhenFull = Literal["drop", "refuse"]


class Gateway(AsyncApiHooks, abc.ABC):
    """Base of every protocol server: scope instances, their lifecycle, drain on stop.

    A subclass sets ``protocol`` (the scope type, which also prefixes its events),
    ``options_model`` (a ``GatewayOptions`` subclass for its YAML options), optionally
    ``spec_version`` (its protocol spec's version, ``scope["asgi"]["spec_version"]``), and
    implements ``start_transport``, ``close_transport`` and ``handle_send``. It feeds events
    with ``await self.dispatch(key, event, scope)``, where ``scope`` is a dict from
    ``self.new_scope(scope_key=key, ...)``, needed only when ``key not in self.instances``
    (else ``None``); a transport that calls back synchronously (``asyncio.DatagramProtocol``)
    uses ``self.dispatch_nowait(key, event, scope, when_full=...)`` instead. The name an
    adapter is registered under (its entry point) is the YAML ``type:``; ``protocol`` is the
    scope type the application sees (``docs/adapters.md``).

    Args:
        name: The gateway's name in the YAML file; it is ``scope["gateway"]``.
        application: The ASGI 3 application; one instance is called per scope.
        options: Validated options (an instance of ``options_model``).
        channel_layer: The daemon's channel layer, put in every scope as
            ``scope["channel_layer"]``; ``None`` leaves the key out.

    Raises:
        GatewayError: ``options`` is not an instance of ``options_model``.

    Attributes:
        name: The gateway's name (``scope["gateway"]``).
        options: The validated options.
        instances: The live application instances (``ScopeInstance``) by scope key, least
            recently used first (an ``OrderedDict``); read it (``key in self.instances``),
            never change it: ``open_scope``, ``dispatch`` and ``end`` do.
        pinned: The keys of the scopes opened with ``open_scope(..., pinned=True)``.
        channel_layer: The daemon's channel layer, or ``None``.
        state_store: The daemon's state store, or ``None``.
        stats: What the gateway counts (``gateways.metrics.GatewayStats``).
    """

    protocol: ClassVar[str]
    #: ``scope["asgi"]["spec_version"]`` of this gateway's scopes: the version of its protocol's
    #: spec (``docs/specs/<protocol>.md``); a plug-in adapter sets its own.
    spec_version: ClassVar[str] = "1.0"
    options_model: ClassVar[type[GatewayOptions]] = GatewayOptions
    #: Whether ``event_handled`` is called for every event the application handled (also set
    #: on a gateway of a cluster, whose forwarded events report back: ``gateways.ownership``).
    tracks_handling: bool = False
    #: Whether the gateway receives events addressed to its scopes (``layer.addressing``) on
    #: its channel layer; a gateway whose scopes have no key of their own sets False.
    addressable: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        application: ASGIApp,
        options: GatewayOptions,
        *,
        channel_layer: ChannelLayer | None = None,
    ) -> None:
        if not isinstance(options, self.options_model):
            raise GatewayError(
                f"gateway {name!r}: options must be {self.options_model.__name__}, "
                f"not {type(options).__name__}"
            )
        self.name = name
        self.application = application
        self.options = options
        self.channel_layer = channel_layer
        #: The daemon's cluster (``cluster:``), which owns scopes across daemons; ``None``: none.
        self.ownership: Ownership | None = None
        #: The daemon's state store (the ``state:`` section), put in every scope as
        #: ``scope["state_store"]`` for durable consumers (``docs/state.md``); ``None``: none.
        self.state_store: StateStore | None = None
        #: The application's lifespan state (ASGI lifespan 2.3: ``gateways.daemon.lifespan``),
        #: which a gateway of per-request scopes (``type: http``) copies into each; or ``None``.
        self.lifespan_state: dict[str, Any] | None = None
        self.close_event_type = f"{self.protocol}.close"
        #: The first event of every scope; ``None`` for a protocol without one (workers).
        self.connect_event: Message | None = {"type": f"{self.protocol}.connect"}
        self.disconnect_type = f"{self.protocol}.disconnect"
        #: The live scopes and their ends (``gateways.scopes``).
        self.scopes = Scopes(self)
        #: Live instances by scope key, least recently used first (``scopes.instances``).
        self.instances = self.scopes.instances
        #: Keys of pinned scopes: never ended by the idle sweep or by eviction.
        self.pinned = self.scopes.pinned
        #: Events taken from the transport but not delivered (stopping, a full queue).
        self.drops = Drops(name)
        self._accepting = False
        self._sweeper: asyncio.Task[None] | None = None
        self._addressed: asyncio.Task[None] | None = None
        self._failed: asyncio.Future[None] | None = None
        #: Events received and sent, and handling times (``asgi_gateway_events_received_total``...).
        self.stats = GatewayStats(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} scopes={len(self.instances)}>"

    @property
    def connected(self) -> bool:
        """Whether the transport is connected now (``/readyz`` of the monitoring server).

        Here: whether the gateway is started and not stopping; a gateway that knows better (an
        MQTT or IRC connection that can drop) overrides it.
        """
        return self._accepting

    @property
    def url(self) -> str | None:
        """Where people or platforms reach this gateway once started (a page, a webhook's
        Request URL: ``http://127.0.0.1:8000/``), printed by the daemon at start; ``None``
        for a gateway that only connects out (here)."""
        return None

    @property
    def accepting(self) -> bool:
        """Whether the gateway takes events: from ``start()`` until ``stop()`` begins."""
        return self._accepting

    # -- what a subclass implements ----------------------------------------------------

    @abc.abstractmethod
    async def start_transport(self) -> None:
        """Connect the transport and start feeding events; return once serving."""

    @abc.abstractmethod
    async def close_transport(self) -> None:
        """Stop the transport cleanly; called after every scope has drained."""

    @abc.abstractmethod
    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        """Carry out an event the application sent (other than ``<protocol>.close``).

        Raises:
            GatewayError: The event type is unknown to this gateway, or the transport failed.
        """

    def remote_handled(self, event: Message) -> None:
        """Called, in a cluster, once the daemon that owns its scope handled ``event``, which
        this gateway took from its transport and forwarded there (``gateways.ownership``):
        acknowledge it now, as ``event_handled`` would have. It must not raise."""

    def event_handled(self, instance: ScopeInstance, event: Message) -> None:
        """Called, when ``tracks_handling``, once the application has handled ``event``: it
        asked for the next event. (For the event an instance was working on when it ended,
        see ``ScopeInstance.take_in_hand`` in ``scope_finished``.) It must not raise."""

    def scope_finished(self, instance: ScopeInstance) -> None:
        """Called once an instance's task has finished, whatever ended it (a hook).

        Override it to release what the transport keeps per scope (a reply address, a
        subscription); the instance is no longer in ``instances`` by then. It must not raise.
        It runs in the task's done-callback, or sooner, from within ``dispatch``, ``end``
        or ``open_scope`` (which may open a scope), when one of them meets the finished
        instance before that callback has run.
        """

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving: the idle sweep, then the transport."""
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        self.scopes.clock = loop.time()
        self._accepting = True
        if self.options.idle_timeout is not None:
            self._sweeper = loop.create_task(self.scopes.sweep(self.options.idle_timeout))
        try:
            await self.start_transport()
        except BaseException:
            self._accepting = False
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
            raise
        layer = self.channel_layer
        if layer is not None and self.addressable and len(self.name) <= MAX_GATEWAY_NAME:
            self._addressed = loop.create_task(receive_addressed(self, layer))

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking events, end every scope (reason ``"shutdown"``) and drain.

        Args:
            drain_timeout: Seconds to wait for instances to return after their disconnect event;
                those still running then are cancelled. ``stop()`` returns only once every
                instance task has finished.
        """
        self._accepting = False
        for task in (self._sweeper, self._addressed):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._addressed = None
        for instance in list(self.instances.values()):
            self.end(instance, "shutdown")
        tasks = self.scopes.ending_tasks()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
            if pending:
                logger.warning(
                    "Gateway %r: %d application instances did not return within %.1f s "
                    "of their disconnect event; cancelling them",
                    self.name,
                    len(pending),
                    drain_timeout,
                    extra={"gateway": self.name},
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        self.drops.report()
        await self.close_transport()

    def fail(self, exc: BaseException) -> None:
        """Report that the transport failed for good; the daemon then stops with an error."""
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(exc)
            # Retrieved here, so a gateway run without a daemon awaiting wait_failed() does
            # not log "exception was never retrieved" when the Future is collected.
            self._failed.exception()

    async def wait_failed(self) -> None:
        """Wait until the gateway fails for good, raising what ``fail()`` was given."""
        if self._failed is None:
            raise GatewayError(f"gateway {self.name!r} is not started")
        await self._failed

    # -- scopes ------------------------------------------------------------------------

    def new_scope(self, **keys: Any) -> Scope:
        """A scope of this gateway's protocol: ``type``, ``asgi`` (``version`` ``"3.0"`` and
        ``spec_version``, the class's ``spec_version``), ``gateway``, then ``keys`` (by the
        specs' convention ``scope_key`` first); and ``channel_layer`` and ``state_store`` when
        the gateway has them."""
        scope: Scope = {
            "type": self.protocol,
            "asgi": _asgi_version(self.spec_version),
            "gateway": self.name,
        }
        scope.update(keys)
        if self.channel_layer is not None:
            scope["channel_layer"] = self.channel_layer
        if self.state_store is not None:
            scope["state_store"] = self.state_store
        return scope

    def open_scope(self, key: str, scope: Scope, *, pinned: bool = False) -> ScopeInstance:
        """Start an application instance for ``key``, evicting the least recently used first
        when ``max_scopes`` are live; queue the connect event.

        Args:
            key: The scope key.
            scope: The scope, usually from ``new_scope``.
            pinned: Keep this scope open until it closes itself, crashes or the gateway
                stops: the idle sweep and eviction pass over it. For scopes opened by the
                gateway itself rather than by traffic (a chat conversation that alerts are
                posted to), which no later event would reopen.

        Raises:
            GatewayError: ``max_scopes`` are live and every one of them is pinned.
        """
        return self.scopes.open(key, scope, pinned=pinned)

    async def dispatch(self, key: str, event: Message, scope: Scope | None = None) -> None:
        """Deliver ``event`` to the instance of ``key``, opening one with ``scope`` if needed.

        Waits while that scope's queue is full. Events that arrive after ``stop()`` began
        are dropped with a warning (the transport has already been told to stop).

        Args:
            key: The scope key.
            event: The event; its ``type`` must be one of this protocol's.
            scope: The scope to open when no instance of ``key`` is live, from
                ``new_scope``; a caller builds it only when ``key not in self.instances``
                and passes ``None`` otherwise (a live instance keeps its own scope).

        Raises:
            GatewayError: No instance of ``key`` is live and no ``scope`` was given.
        """
        self.stats.received += 1
        while True:
            instance = self.instances.get(key)
            if instance is not None and instance.task is not None and instance.task.done():
                # It ended by itself just now: the event goes to a fresh instance, after
                # what scope_finished() gave that one (it may have opened it already).
                self.scopes.finish_if_done(instance)
                scope = scope if scope is not None else dict(instance.scope)
                continue
            if instance is None:
                if not self._accepting:
                    # Logged once, with the count, when stop() ends: a busy transport would
                    # otherwise flood the log.
                    self.drops.while_stopping()
                    return
                if scope is None:
                    raise GatewayError(
                        f"no live scope {key!r} on gateway {self.name!r} to deliver to"
                    )
                if self.ownership is not None:
                    if not await self.ownership.admit(self, key, event, scope):
                        return  # forwarded to the daemon that owns the scope
                    if key in self.instances:  # opened while the claim was in flight
                        continue
                instance = self.open_scope(key, scope)
            else:
                self.scopes.touch(key, instance)
            if await instance.put(event):
                return
            # The instance ended while the event waited for room: the next one takes it.
            scope = scope if scope is not None else dict(instance.scope)

    def dispatch_nowait(
        self, key: str, event: Message, scope: Scope | None = None, *, when_full: WhenFull
    ) -> bool:
        """``dispatch`` for a transport that calls back synchronously and cannot wait
        (``asyncio.DatagramProtocol.datagram_received``, a C library's callback): deliver
        ``event`` now, or not at all. Call it from the event loop's thread.

        A scope opened by this call always takes its event (the connect event before it is not
        counted against ``max_queued_events``). When the instance of ``key`` has
        ``max_queued_events`` waiting already, ``when_full`` decides:

        - ``"drop"``: the event is lost and counted in
          ``asgi_gateway_events_dropped_total{reason="full"}``; a warning with the running
          count is logged at the 1st, 10th, 100th, ... drop of the gateway. For data that
          the next reading supersedes (telemetry).
        - ``"refuse"``: nothing is counted or logged; the caller deals with it (answers the
          sender "busy", NACKs, or pauses its transport, as ``pause_reading()``).

        To wait instead (back-pressure), ``await dispatch(...)`` from a task of your own.
        Events that arrive after ``stop()`` began are dropped as ``dispatch`` drops them.

        Args:
            key: The scope key.
            event: The event; its ``type`` must be one of this protocol's.
            scope: The scope to open when no instance of ``key`` is live, as for ``dispatch``.
            when_full: ``"drop"`` or ``"refuse"``, above.

        Returns:
            True when the event was queued (or handed to a waiting ``receive()``); False when
            it was not: the queue was full, or the gateway is stopping.

        Raises:
            GatewayError: No instance of ``key`` is live and no ``scope`` was given, or
                ``when_full`` is neither ``"drop"`` nor ``"refuse"``.
        """
        if when_full not in ("drop", "refuse"):
            raise GatewayError(
                f"dispatch_nowait(when_full={when_full!r}): expected 'drop' or 'refuse'"
            )
        self.stats.received += 1
        instance = self.instances.get(key)
        if instance is not None and self.scopes.finish_if_done(instance):
            scope = scope if scope is not None else dict(instance.scope)
            instance = None
        if instance is None:
            if not self._accepting:
                self.drops.while_stopping()
                return False
            if scope is None:
                raise GatewayError(f"no live scope {key!r} on gateway {self.name!r} to deliver to")
            self.open_scope(key, scope).put_nowait(event)
            return True
        self.scopes.touch(key, instance)
        if instance.offer(event):
            return True
        if when_full == "drop":
            self.drops.queue_full(key, self.options.max_queued_events)
        return False

    def scope_for_key(self, key: str) -> Scope | None:
        """The scope to open for an event addressed to ``key`` (``deliver``) when no instance
        of it is live: a hook. ``None`` (the default here): this gateway opens scopes only
        for its transport's traffic, so an addressed event reaches a live scope or none. The
        MQTT gateway opens any topic name; a chat gateway, any conversation key.
        """
        return None

    async def deliver(self, key: str, event: Message) -> bool:
        """Deliver an event addressed to the scope ``key`` (``layer.addressing``, a timer):
        to its live instance, or to one opened with ``scope_for_key(key)``. Waits while that
        scope's queue is full, as ``dispatch`` does.

        Returns:
            False when no instance of ``key`` is live and ``scope_for_key`` gave none (logged,
            with the gateway and the key); True otherwise.
        """
        if key in self.instances:
            await self.dispatch(key, event)
            return True
        scope = self.scope_for_key(key)
        if scope is None:
            logger.warning(
                "Gateway %r: no live scope %r, and this gateway cannot open one by key; an "
                "addressed %r event is skipped",
                self.name,
                key,
                event.get("type"),
                extra={"gateway": self.name, "scope": key},
            )
            return False
        await self.dispatch(key, event, scope)
        return True

    def end(self, instance: ScopeInstance, reason: DisconnectReason) -> None:
        """End a scope: send its disconnect event, then cancel it after ``disconnect_grace``.

        An instance whose task has finished already (it returned, raised or was cancelled,
        and its done-callback has not run yet) is not live: it leaves ``instances`` at once,
        as its done-callback would have made it, so that a loop ending scopes until few
        enough are live (eviction in ``open_scope``, the idle sweep) always progresses.
        """
        self.scopes.end(instance, reason)
