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
import contextvars
import logging
from collections import OrderedDict
from functools import cache
from typing import Any, ClassVar, Literal

from prometheus_client import Counter, Gauge
from pydantic import Field

from config import OptionsModel
from gateways.errors import GatewayError
from gateways.instance import ScopeInstance
from gateways.metrics import GatewayStats
from layer import ChannelLayer
from layer.state import StateStore
from layer.types import ASGIApp, DisconnectReason, Message, Scope

__all__ = ["ASGI_VERSION", "Gateway", "GatewayError", "GatewayOptions", "ScopeInstance"]

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


SCOPES_OPENED = Counter(
    "asgi_gateway_scopes_opened_total", "Application instances started.", ["gateway"]
)
SCOPES_ENDED = Counter(
    "asgi_gateway_scopes_ended_total",
    "Scopes ended by the gateway, by reason (idle, evicted, closed, shutdown).",
    ["gateway", "reason"],
)
SCOPES_CRASHED = Counter(
    "asgi_gateway_scopes_crashed_total", "Application instances that raised.", ["gateway"]
)
SCOPES_LIVE = Gauge("asgi_gateway_scopes_live", "Live application instances.", ["gateway"])
EVENTS_DROPPED = Counter(
    "asgi_gateway_events_dropped_total",
    "Events a gateway took from its transport but could not deliver, by reason.",
    ["gateway", "reason"],
)

#: What ``Gateway.dispatch_nowait`` does with an event for a scope whose queue is full.
WhenFull = Literal["drop", "refuse"]

#: The context the gateway's done-callbacks run in. They read no context variable, and one
#: shared context spares each scope a copy (``add_done_callback`` copies by default).
_CALLBACK_CONTEXT = contextvars.Context()


class GatewayOptions(OptionsModel):
    """Options every gateway takes, whatever its protocol (YAML keys of a gateway entry).

    Attributes:
        idle_timeout: Seconds without an event after which a scope ends with reason
            ``"idle"``; ``None`` keeps scopes until eviction or shutdown.
        max_scopes: Most live scopes; opening one more evicts the least recently used.
        max_queued_events: Most events waiting for one scope's application instance; when full,
            the gateway waits (back-pressure on the transport) rather than drop.
        disconnect_grace: Seconds an instance has to return after its disconnect event
            before it is cancelled.
    """

    idle_timeout: float | None = Field(default=600.0, gt=0)
    max_scopes: int = Field(default=100_000, ge=1)
    max_queued_events: int = Field(default=100, ge=1)
    disconnect_grace: float = Field(default=5.0, ge=0)


class Gateway(abc.ABC):
    """Base of every protocol server: scope instances, their lifecycle, drain on stop.

    A subclass sets ``protocol`` (the scope type, which also prefixes its events),
    ``options_model`` (a ``GatewayOptions`` subclass for its YAML options), and implements
    ``start_transport``, ``close_transport`` and ``handle_send``. It feeds events with
    ``await self.dispatch(key, event, scope_factory)``.

    Args:
        name: The gateway's name in the YAML file; it is ``scope["gateway"]``.
        application: The ASGI 3 application; one instance is called per scope.
        options: Validated options (an instance of ``options_model``).
        channel_layer: The daemon's channel layer, put in every scope as
            ``scope["channel_layer"]``; ``None`` leaves the key out.

    Raises:
        GatewayError: ``options`` is not an instance of ``options_model``.
    """

    protocol: ClassVar[str]
    options_model: ClassVar[type[GatewayOptions]] = GatewayOptions
    #: Whether ``event_handled`` is called for every event the application handled.
    tracks_handling: ClassVar[bool] = False

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
        #: The daemon's state store (the ``state:`` section), put in every scope as
        #: ``scope["state_store"]`` for durable consumers (``docs/state.md``); ``None``: none.
        self.state_store: StateStore | None = None
        self.close_event_type = f"{self.protocol}.close"
        #: The first event of every scope; ``None`` for a protocol without one (workers).
        self.connect_event: Message | None = {"type": f"{self.protocol}.connect"}
        self.disconnect_type = f"{self.protocol}.disconnect"
        #: Live instances by scope key, least recently used first.
        self.instances: OrderedDict[str, ScopeInstance] = OrderedDict()
        #: Instances ended (disconnect event sent) whose task has not finished, by task.
        self._ending: dict[asyncio.Task[None], ScopeInstance] = {}
        #: Tasks whose end was dealt with before their done-callback ran (``_finish_now``).
        self._finished_early: set[asyncio.Task[None]] = set()
        #: A coarse clock (seconds, the loop's time), advanced by the idle sweep: every scope
        #: active since the last tick shares this one float instead of keeping its own.
        self._clock = 0.0
        #: One bound method for every task (each ``self._task_done`` would be a new object).
        self._task_done_callback = self._task_done
        #: Keys of pinned scopes: never ended by the idle sweep or by eviction.
        self.pinned: set[str] = set()
        self._stopping_drops = 0
        self._accepting = False
        self._sweeper: asyncio.Task[None] | None = None
        self._failed: asyncio.Future[None] | None = None
        self._opened = SCOPES_OPENED.labels(name)
        self._crashed = SCOPES_CRASHED.labels(name)
        self._live = SCOPES_LIVE.labels(name)
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

    def event_handled(self, instance: ScopeInstance, event: Message) -> None:  # noqa: B027
        """Called, when ``tracks_handling``, once the application has handled ``event``: it
        asked for the next event. (For the event an instance was working on when it ended,
        see ``ScopeInstance.take_in_hand`` in ``scope_finished``.) It must not raise."""

    def scope_finished(self, instance: ScopeInstance) -> None:  # noqa: B027 (optional hook)
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
        self._clock = loop.time()
        self._accepting = True
        if self.options.idle_timeout is not None:
            self._sweeper = loop.create_task(self._sweep(self.options.idle_timeout))
        try:
            await self.start_transport()
        except BaseException:
            self._accepting = False
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
            raise

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking events, end every scope (reason ``"shutdown"``) and drain.

        Args:
            drain_timeout: Seconds to wait for instances to return after their disconnect event;
                those still running then are cancelled. ``stop()`` returns only once every
                instance task has finished.
        """
        self._accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for instance in list(self.instances.values()):
            self.end(instance, "shutdown")
        tasks = list(self._ending)
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
        if self._stopping_drops:
            logger.warning(
                "Gateway %r dropped %d events that arrived while it was stopping",
                self.name,
                self._stopping_drops,
                extra={"gateway": self.name},
            )
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
        """A scope of this gateway's protocol: ``type``, ``asgi``, ``gateway``, then ``keys``;
        and ``channel_layer`` and ``state_store`` when the gateway has them."""
        scope: Scope = {"type": self.protocol, "asgi": ASGI_VERSION, "gateway": self.name}
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
        while len(self.instances) >= self.options.max_scopes:
            self.end(self._least_recently_used_unpinned(), "evicted")
        instance = ScopeInstance(self, key, scope)
        instance.last_event = self._clock
        if self.connect_event is not None:
            instance.offer(dict(self.connect_event))
        coroutine = self.application(scope, instance, instance.send)
        # Named after the scope key (a string that exists already; 3.11 would format a
        # "Task-N" per task), which also lets the done-callback find a live instance.
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine, name=key)  # type: ignore[arg-type]
        instance.task = task
        task.add_done_callback(self._task_done_callback, context=_CALLBACK_CONTEXT)
        self.instances[key] = instance
        if pinned:
            self.pinned.add(key)
        self._opened.inc()
        self._live.inc()
        return instance

    def _least_recently_used_unpinned(self) -> ScopeInstance:
        pinned = self.pinned
        if pinned:
            for instance in self.instances.values():
                # A pinned instance whose task has finished is not live: end() drops it.
                if instance.key not in pinned or instance.started_task.done():
                    return instance
            raise GatewayError(
                f"gateway {self.name!r}: all {len(self.instances)} live scopes are pinned, "
                f"so none can be evicted; raise max_scopes ({self.options.max_scopes})"
            )
        return next(iter(self.instances.values()))

    async def dispatch(self, key: str, event: Message, scope: Scope | None = None) -> None:
        """Deliver ``event`` to the instance of ``key``, opening one with ``scope`` if needed.

        Waits while that scope's queue is full. Events that arrive after ``stop()`` began
        are dropped with a warning (the transport has already been told to stop).

        Args:
            key: The scope key.
            event: The event; its ``type`` must be one of this protocol's.
            scope: The scope to open when no instance of ``key`` is live; built lazily by
                callers with ``new_scope`` only when ``instance(key)`` is ``None``.

        Raises:
            GatewayError: No instance of ``key`` is live and no ``scope`` was given.
        """
        self.stats.received += 1
        while True:
            instance = self.instances.get(key)
            if instance is not None and instance.task is not None and instance.task.done():
                # It ended by itself just now: the event goes to a fresh instance, after
                # what scope_finished() gave that one (it may have opened it already).
                self._finish_if_done(instance)
                scope = scope if scope is not None else dict(instance.scope)
                continue
            if instance is None:
                if not self._accepting:
                    # Logged once, with the count, when stop() ends: a busy transport would
                    # otherwise flood the log.
                    self._stopping_drops += 1
                    EVENTS_DROPPED.labels(self.name, "stopping").inc()
                    return
                if scope is None:
                    raise GatewayError(
                        f"no live scope {key!r} on gateway {self.name!r} to deliver to"
                    )
                instance = self.open_scope(key, scope)
            else:
                self.instances.move_to_end(key)
                instance.last_event = self._clock
            if await instance.put(event):
                return
            # The instance ended while the event waited for room: the next one takes it.
            scope = scope if scope is not None else dict(instance.scope)

    def end(self, instance: ScopeInstance, reason: DisconnectReason) -> None:
        """End a scope: send its disconnect event, then cancel it after ``disconnect_grace``.

        An instance whose task has finished already (it returned, raised or was cancelled,
        and its done-callback has not run yet) is not live: it leaves ``instances`` at once,
        as its done-callback would have made it, so that a loop ending scopes until few
        enough are live (eviction in ``open_scope``, the idle sweep) always progresses.
        """
        if instance.ending is not None or instance.task is None:
            return
        if self._finish_if_done(instance):
            return
        instance.ending = reason
        if self.instances.get(instance.key) is instance:
            del self.instances[instance.key]
            self._live.dec()
            self.pinned.discard(instance.key)
        self._ending[instance.task] = instance
        SCOPES_ENDED.labels(self.name, reason).inc()
        logger.debug(
            "Gateway %r: ending scope %r (%s)",
            self.name,
            instance.key,
            reason,
            extra={"gateway": self.name, "scope": instance.key},
        )
        instance.put_nowait({"type": self.disconnect_type, "reason": reason})
        instance.grace_handle = asyncio.get_running_loop().call_later(
            self.options.disconnect_grace, instance.task.cancel
        )

    def _finish_if_done(self, instance: ScopeInstance) -> bool:
        """If ``instance``'s task has finished, deal with its end now rather than in its
        done-callback (scheduled for a later turn of the loop: until then the instance would
        count as live, and events queued to it would wait in a queue nobody reads).

        Returns:
            Whether the task had finished (and ``instance`` has now left ``instances``).
        """
        task = instance.task
        if task is None or not task.done():
            return False
        if self.instances.get(instance.key) is instance:  # else dealt with already
            self._finished_early.add(task)
            self._instance_done(instance, task)
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._finished_early and task in self._finished_early:
            self._finished_early.discard(task)  # dealt with already, by _finish_if_done
            return
        instance = self._ending.pop(task, None)
        if instance is None:
            instance = self.instances.get(task.get_name())
            if instance is None or instance.task is not task:
                # The application renamed its task: find it the slow way.
                instance = next((i for i in self.instances.values() if i.task is task), None)
                if instance is None:
                    return
        self._instance_done(instance, task)

    def _instance_done(self, instance: ScopeInstance, task: asyncio.Task[None]) -> None:
        if instance.grace_handle is not None:
            instance.grace_handle.cancel()
        if self.instances.get(instance.key) is instance:
            del self.instances[instance.key]
            self._live.dec()
            self.pinned.discard(instance.key)
        instance.wake_sender()
        try:
            self.scope_finished(instance)
        except Exception:
            logger.exception(
                "Gateway %r: scope_finished() raised for scope %r",
                self.name,
                instance.key,
                extra={"gateway": self.name, "scope": instance.key},
            )
        if task.cancelled():
            if instance.ending is None:
                logger.warning(
                    "Gateway %r: application instance for scope %r was cancelled",
                    self.name,
                    instance.key,
                    extra={"gateway": self.name, "scope": instance.key},
                )
            return
        exc = task.exception()
        if exc is not None:
            self._crashed.inc()
            logger.error(
                "Gateway %r: application instance for scope %r raised; that scope ended, "
                "the gateway goes on",
                self.name,
                instance.key,
                exc_info=exc,
                extra={"gateway": self.name, "scope": instance.key},
            )

    async def _sweep(self, idle_timeout: float) -> None:
        """Advance the clock and end scopes idle for ``idle_timeout`` seconds, oldest first.

        A scope's last event is known to within one tick (``interval``), so a scope ends
        after between ``idle_timeout`` and ``idle_timeout + 2 * interval`` seconds of quiet.
        """
        loop = asyncio.get_running_loop()
        interval = min(max(idle_timeout / 4, 0.01), 5.0)
        while True:
            await asyncio.sleep(interval)
            self._clock = loop.time()
            deadline = self._clock - idle_timeout - interval
            while self.instances:
                oldest = next(iter(self.instances.values()))
                if oldest.last_event > deadline:
                    break
                if oldest.key in self.pinned:
                    # Kept: counted as active now, so the sweep goes on past it.
                    self.instances.move_to_end(oldest.key)
                    oldest.last_event = self._clock
                    continue
                self.end(oldest, "idle")
