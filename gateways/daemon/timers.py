"""The daemon's timer service: it fires the durable timers of the state store.

A consumer sets a timer with ``AsyncConsumer.set_timer``; it is stored with the scope's
state (``layer.state.Timer``, ``docs/state.md``, *Timers*). Every ``interval`` seconds the
service lists the timers due (``StateStore.due_timers``, of every scope, oldest first) and
delivers each one's event, with ``"timer": <name>`` and ``"due": <seconds since the epoch>``
added, to its scope through its gateway (``Gateway.deliver``), which starts the scope when it
is not running, its state loaded. The consumer removes the timer in the save after its
handler (``consumers.state.DurableState.take_timer``), so a timer fires at least once; a
copy that arrives after that save finds it gone and is skipped, which makes a timer fire once
unless the process dies between the handler and its save.

A timer stays listed until its scope has saved: the service remembers what it delivered
and delivers it again only after ``retry_after`` seconds (a scope that crashed on it, or
whose event was lost with a process). A timer of a gateway this daemon does not run (a store
shared with other daemons) is left to them, logged once; a store that is away is retried at
the next tick, logged once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from layer.state import StateKey, StateStore, StoreUnavailable
from layer.types import Message

__all__ = ["TimerService"]

logger = logging.getLogger(__name__)


class TimerTarget(Protocol):
    """What the service uses of a gateway (``gateways.base.Gateway`` is one)."""

    async def deliver(self, key: str, event: Message) -> bool: ...


class TimerService:
    """Fires the due timers of ``store`` into the scopes of ``gateways`` (see the module).

    Args:
        store: The daemon's state store.
        gateways: The daemon's gateways by name (``scope["gateway"]``).
        interval: Seconds between two looks at the store: a timer fires up to this late.
        retry_after: Seconds after which a timer delivered but still stored is delivered
            again.
        batch: Timers fired per look, at most (more wait for the next look).
    """

    def __init__(
        self,
        store: StateStore,
        gateways: Mapping[str, TimerTarget],
        *,
        interval: float = 1.0,
        retry_after: float = 30.0,
        batch: int = 100,
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.interval = interval
        self.retry_after = retry_after
        self.batch = batch
        #: (key, name, due) -> the loop's time it was delivered at.
        self._delivered: dict[tuple[StateKey, str, float], float] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._unknown: set[str] = set()
        self._away = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start looking at the store, every ``interval`` seconds, from now."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="timers")

    async def stop(self) -> None:
        """Stop looking, and cancel the deliveries still waiting for a full scope (their
        timers stay stored, for the next process)."""
        tasks = [t for t in (self._task, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def fire_due(self) -> int:
        """Look once: deliver the timers due now that are not delivered already.

        Returns:
            How many timers were delivered.

        Raises:
            StoreUnavailable: The store could not be reached.
        """
        loop = asyncio.get_running_loop()
        due = await self.store.due_timers(time.time(), self.batch + len(self._delivered))
        now = loop.time()
        listed: set[tuple[StateKey, str, float]] = set()
        fired = 0
        for key, name, timer in due:
            ident = (key, name, timer.due)
            listed.add(ident)
            sent = self._delivered.get(ident)
            if sent is not None and now - sent < self.retry_after:
                continue
            gateway = self.gateways.get(key.gateway)
            if gateway is None:
                if key.gateway not in self._unknown:
                    self._unknown.add(key.gateway)
                    logger.info(
                        "Timers of gateway %r are due, and this daemon does not run it; "
                        "left to the daemons that do",
                        key.gateway,
                    )
                continue
            if fired >= self.batch:
                continue
            if sent is not None:
                logger.warning(
                    "Timer %r of scope %r on gateway %r was delivered %.0f s ago and is still "
                    "set; delivering it again",
                    name,
                    key.scope_key,
                    key.gateway,
                    now - sent,
                    extra={"gateway": key.gateway, "scope": key.scope_key},
                )
            self._delivered[ident] = now
            event = {**timer.event, "timer": name, "due": timer.due}
            task = loop.create_task(self._deliver(gateway, key, event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            fired += 1
        # What is no longer listed has fired and been saved, or was replaced or cancelled.
        for ident in [i for i in self._delivered if i not in listed]:
            del self._delivered[ident]
        return fired

    async def _deliver(self, gateway: TimerTarget, key: StateKey, event: Message) -> None:
        try:
            await gateway.deliver(key.scope_key, event)
        except Exception:
            logger.exception(
                "Delivering timer %r to scope %r of gateway %r failed",
                event["timer"],
                key.scope_key,
                key.gateway,
                extra={"gateway": key.gateway, "scope": key.scope_key},
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except StoreUnavailable as exc:
                if not self._away:
                    logger.warning("Timers: the state store is unavailable (%s); retrying", exc)
                self._away = True
            except Exception:
                logger.exception("Timers: listing the due timers failed; retrying")
            else:
                if self._away:
                    logger.info("Timers: the state store is back")
                self._away = False
            await asyncio.sleep(self.interval)
