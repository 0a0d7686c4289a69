"""The live scopes of one gateway, and every way they end (``Scopes``).

``Gateway`` (``gateways.base``) keeps one ``Scopes``: the application instances by scope key,
least recently used first; opening one (evicting the least recently used past
``max_scopes``); ending one (its ``*.disconnect`` event, then a cancel after
``disconnect_grace``); the idle sweep; and the done-callbacks that learn of an instance that
returned, raised or was cancelled, logging it with the gateway and the scope key. An adapter
does not use it directly: ``Gateway.open_scope``, ``dispatch`` and ``end`` do; eviction and
the sweep end scopes through ``Gateway.end``, so a gateway that overrides it sees every end.

An instance whose task is done is not live, even before its done-callback has run (a later
turn of the loop): ``finish_if_done`` deals with its end at once, so that every loop that
ends scopes until few enough are live (eviction, the sweep) always progresses.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from typing import Protocol

from prometheus_client import Counter, Gauge

from gateways.errors import GatewayError
from gateways.instance import QueueOptions, ScopeInstance, ScopeOwner
from gateways.ownership import Ownership
from layer.types import ASGIApp, DisconnectReason, Message, Scope

__all__ = ["SCOPES_CRASHED", "SCOPES_ENDED", "SCOPES_LIVE", "SCOPES_OPENED", "Scopes"]

logger = logging.getLogger("gateways.base")

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

#: The context the done-callbacks run in. They read no context variable, and one shared
#: context spares each scope a copy (``add_done_callback`` copies by default).
_CALLBACK_CONTEXT = contextvars.Context()


class ScopesOptions(QueueOptions, Protocol):
    """The options ``Scopes`` reads (``GatewayOptions`` has them)."""

    @property
    def max_scopes(self) -> int:
        """Most live scopes."""
        ...

    @property
    def disconnect_grace(self) -> float:
        """Seconds an instance has to return after its disconnect event."""
        ...


class ScopesHost(ScopeOwner, Protocol):
    """What ``Scopes`` uses of its gateway (``gateways.base.Gateway`` is one)."""

    application: ASGIApp
    connect_event: Message | None
    ownership: Ownership | None

    @property
    def options(self) -> ScopesOptions:
        """The gateway's options."""
        ...

    def scope_finished(self, instance: ScopeInstance) -> None: ...


class Scopes:
    """The live application instances of one gateway, and their ends.

    Args:
        host: The gateway.

    Attributes:
        instances: Live instances by scope key, least recently used first.
        pinned: Keys of pinned scopes: never ended by the idle sweep or by eviction.
        clock: A coarse clock (seconds, the loop's time), advanced by the idle sweep: every
            scope active since the last tick shares this one float instead of keeping its own.
    """

    def __init__(self, host: ScopesHost) -> None:
        self.host = host
        self.instances: OrderedDict[str, ScopeInstance] = OrderedDict()
        self.pinned: set[str] = set()
        self.clock = 0.0
        #: Instances ended (disconnect event sent) whose task has not finished, by task.
        self._ending: dict[asyncio.Task[None], ScopeInstance] = {}
        #: Tasks whose end was dealt with before their done-callback ran (finish_if_done).
        self._finished_early: set[asyncio.Task[None]] = set()
        #: One bound method for every task (each ``self._task_done`` would be a new object).
        self._task_done_callback = self._task_done
        self._opened = SCOPES_OPENED.labels(host.name)
        self._crashed = SCOPES_CRASHED.labels(host.name)
        self._live = SCOPES_LIVE.labels(host.name)

    def open(self, key: str, scope: Scope, *, pinned: bool = False) -> ScopeInstance:
        """``Gateway.open_scope``: an instance for ``key`` (the least recently used unpinned
        one ended first when ``max_scopes`` are live), its connect event queued.

        Raises:
            GatewayError: ``max_scopes`` are live and every one of them is pinned.
        """
        host = self.host
        while len(self.instances) >= host.options.max_scopes:
            host.end(self._least_recently_used_unpinned(), "evicted")
        instance = ScopeInstance(host, key, scope)
        instance.last_event = self.clock
        if host.connect_event is not None:
            instance.offer(dict(host.connect_event))
        coroutine = host.application(scope, instance, instance.send)
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
                f"gateway {self.host.name!r}: all {len(self.instances)} live scopes are "
                f"pinned, so none can be evicted; raise max_scopes "
                f"({self.host.options.max_scopes})"
            )
        return next(iter(self.instances.values()))

    def touch(self, key: str, instance: ScopeInstance) -> None:
        """``instance`` (of ``key``) had an event: most recently used, active now."""
        self.instances.move_to_end(key)
        instance.last_event = self.clock

    def end(self, instance: ScopeInstance, reason: DisconnectReason) -> None:
        """``Gateway.end``: send the disconnect event, cancel after ``disconnect_grace``.

        An instance whose task has finished already is not live: it leaves ``instances``
        at once, as its done-callback would have made it.
        """
        if instance.ending is not None or instance.task is None:
            return
        if self.finish_if_done(instance):
            return
        host = self.host
        instance.ending = reason
        self._remove(instance)
        self._ending[instance.task] = instance
        SCOPES_ENDED.labels(host.name, reason).inc()
        logger.debug(
            "Gateway %r: ending scope %r (%s)",
            host.name,
            instance.key,
            reason,
            extra={"gateway": host.name, "scope": instance.key},
        )
        instance.put_nowait({"type": host.disconnect_type, "reason": reason})
        instance.grace_handle = asyncio.get_running_loop().call_later(
            host.options.disconnect_grace, instance.task.cancel
        )

    def ending_tasks(self) -> list[asyncio.Task[None]]:
        """The tasks of the instances ended whose task has not finished yet."""
        return list(self._ending)

    def finish_if_done(self, instance: ScopeInstance) -> bool:
        """If ``instance``'s task has finished, deal with its end now rather than in its
        done-callback (a later turn of the loop: until then the instance would count as
        live, and events queued to it would wait in a queue nobody reads).

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

    def _remove(self, instance: ScopeInstance) -> None:
        if self.instances.get(instance.key) is instance:
            del self.instances[instance.key]
            self._live.dec()
            self.pinned.discard(instance.key)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._finished_early and task in self._finished_early:
            self._finished_early.discard(task)  # dealt with already, by finish_if_done
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
        name = self.host.name
        if instance.grace_handle is not None:
            instance.grace_handle.cancel()
        self._remove(instance)
        instance.wake_sender()
        if self.host.ownership is not None and instance.key not in self.instances:
            self.host.ownership.released(name, instance.key)
        try:
            self.host.scope_finished(instance)
        except Exception:
            logger.exception(
                "Gateway %r: scope_finished() raised for scope %r",
                name,
                instance.key,
                extra={"gateway": name, "scope": instance.key},
            )
        if task.cancelled():
            if instance.ending is None:
                logger.warning(
                    "Gateway %r: application instance for scope %r was cancelled",
                    name,
                    instance.key,
                    extra={"gateway": name, "scope": instance.key},
                )
            return
        exc = task.exception()
        if exc is not None:
            self._crashed.inc()
            logger.error(
                "Gateway %r: application instance for scope %r raised; that scope ended, "
                "the gateway goes on",
                name,
                instance.key,
                exc_info=exc,
                extra={"gateway": name, "scope": instance.key},
            )

    async def sweep(self, idle_timeout: float) -> None:
        """Advance the clock and end scopes idle for ``idle_timeout`` seconds, oldest first.

        A scope's last event is known to within one tick (``interval``), so a scope ends
        after between ``idle_timeout`` and ``idle_timeout + 2 * interval`` seconds of quiet.
        """
        loop = asyncio.get_running_loop()
        interval = min(max(idle_timeout / 4, 0.01), 5.0)
        while True:
            await asyncio.sleep(interval)
            self.clock = loop.time()
            deadline = self.clock - idle_timeout - interval
            while self.instances:
                oldest = next(iter(self.instances.values()))
                if oldest.last_event > deadline:
                    break
                if oldest.key in self.pinned:
                    # Kept: counted as active now, so the sweep goes on past it.
                    self.touch(oldest.key, oldest)
                    continue
                self.host.end(oldest, "idle")
