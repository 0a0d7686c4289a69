"""One scope's application instance and the events waiting for it (``ScopeInstance``).

The gateway base (``gateways.base.Gateway``) opens one per scope key; an adapter meets it in
``handle_send(instance, message)`` and ``scope_finished(instance)``.

When an event counts as *handled*: when the application asks for the next event
(``receive()`` again) or its instance ends, whether it returned or raised, the event it was
last given was handled. A gateway that sets ``tracks_handling`` is told of each through
``event_handled(instance, event)``: the MQTT gateway acknowledges a QoS 1 message to the
broker only then (at least once, ``docs/mqtt.md``).

*Given* is not *resolved into a Future*: an application that keeps a ``receive()`` Future
pending while it handles something else (Channels' ``await_many_dispatch``, the two-sources
loop of ``consumers.dispatch``) may end before it ever reads the event the gateway put
there. ``receive()`` returns an ``EventFuture``, which notes whether the application took
its result (``result()``, ``await``) or gave it back (``cancel()`` once resolved); an event
an instance ended without taking is not in hand (``take_in_hand``) but unread
(``take_unread``): it goes to the next instance, not blamed for a crash it did not cause.

Each instance counts, in its gateway's ``GatewayStats`` (``gateways.metrics``), the events
the application sent that the gateway carried out and how long it took over each event.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator
from typing import Any, Protocol

from gateways.errors import GatewayError
from gateways.metrics import GatewayStats
from gateways.metrics import clock as _clock
from gateways.ownership import ForwardedEvent
from layer.types import DisconnectReason, Message, Scope

__all__ = ["EventFuture", "QueueOptions", "ScopeInstance", "ScopeOwner"]

_result = asyncio.Future.result
_cancel = asyncio.Future.cancel
_await = asyncio.Future.__await__


class EventFuture(asyncio.Future[Message]):
    """The Future ``receive()`` returns: it also knows whether the application took its event.

    ``taken`` is False until the application reads the result, by ``result()`` or ``await``,
    and True from then on, unless the application gave it back first: ``cancel()`` on a
    resolved Future it had not read, which is what a dispatch loop tearing down does with a
    source's Future it no longer wants (Channels' ``await_many_dispatch``, the two-sources
    loop of ``consumers.dispatch``), also if it ``await``-s it after that.

    An ``await`` counts from its start, so that awaiting costs no generator: the awaiting
    task takes the event as soon as it is there, unless it is cancelled first, and a
    cancelled instance is given its event again anyway. What the gateway cannot see is a
    Task of the application's own that awaits ``receive()`` for it: that takes the event.

    One slot: 8 bytes more than a plain Future, and only an application waiting in
    ``receive()`` holds one (the waiter extension, ``receive_into``, takes its own Future).
    """

    __slots__ = ("taken",)

    taken: bool | None  # None: given back unread

    def result(self) -> Message:
        event = _result(self)
        if self.taken is False:
            self.taken = True
        return event

    def __await__(self) -> Generator[Any, None, Message]:
        if self.taken is False:
            self.taken = True
        return _await(self)

    __iter__ = __await__

    def cancel(self, msg: Any = None) -> bool:
        if self.taken is False and self.done():
            self.taken = None  # resolved, never read, dropped: the event was not handled
        return _cancel(self, msg)

    @property
    def unread(self) -> bool:
        """Whether the application has not taken the event (for a resolved Future: it never
        will, if its instance ended)."""
        return self.taken is not True


class QueueOptions(Protocol):
    """The option a ``ScopeInstance`` reads (``GatewayOptions`` has it)."""

    @property
    def max_queued_events(self) -> int:
        """The bound of each scope's queue of events."""
        ...


class ScopeOwner(Protocol):
    """What a ``ScopeInstance`` uses of its gateway (``gateways.base.Gateway`` is one)."""

    name: str
    close_event_type: str
    disconnect_type: str
    stats: GatewayStats

    @property
    def tracks_handling(self) -> bool:
        """Whether ``event_handled`` wants to hear of every event handled."""
        ...

    @property
    def options(self) -> QueueOptions:
        """The gateway's options."""
        ...

    def end(self, instance: ScopeInstance, reason: DisconnectReason) -> None: ...

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None: ...

    def event_handled(self, instance: ScopeInstance, event: Message) -> None: ...


class ScopeInstance:
    """One scope's application instance and the events waiting for it.

    The instance itself is the ASGI ``receive`` callable handed to the application (one
    object less per scope than a bound method), and ``send`` is its ``send`` method.
    ``receive()`` returns an ``EventFuture``, already resolved when an event is waiting.
    """

    __slots__ = (
        "_delivered",
        "_in_hand",
        "_queue",
        "_space",
        "_waiter",
        "ending",
        "gateway",
        "grace_handle",
        "key",
        "last_event",
        "scope",
        "task",
    )

    def __init__(self, gateway: ScopeOwner, key: str, scope: Scope) -> None:
        self.gateway = gateway
        self.key = key
        self.scope = scope
        self.task: asyncio.Task[None] | None = None
        self.last_event = 0.0
        #: Set once the disconnect event is queued; the instance no longer takes events.
        self.ending: DisconnectReason | None = None
        self.grace_handle: asyncio.TimerHandle | None = None
        self._queue: deque[Message] | None = None
        self._waiter: asyncio.Future[Message] | None = None
        self._space: asyncio.Future[None] | None = None
        #: The event last given to the application, until it asks for the next one (then
        #: that event was handled); kept only when ``gateway.tracks_handling``. Given into
        #: an ``EventFuture``, it is that Future, which knows whether the event was taken.
        self._in_hand: Message | EventFuture | None = None
        #: When (``time.perf_counter()``) the event the application works on now was given to
        #: it; 0.0 while it waits for one.
        self._delivered = 0.0

    def __repr__(self) -> str:
        return f"<ScopeInstance gateway={self.gateway.name!r} key={self.key!r}>"

    @property
    def started_task(self) -> asyncio.Task[None]:
        """The task running the application instance (``open_scope`` starts it).

        Raises:
            GatewayError: The instance was not started.
        """
        if self.task is None:
            raise GatewayError(f"scope {self.key!r} of gateway {self.gateway.name!r} not started")
        return self.task

    def __call__(self) -> asyncio.Future[Message]:
        """The ASGI ``receive``: see ``receive``."""
        return self.receive()

    # -- the application's side --------------------------------------------------------

    def receive(self) -> EventFuture:
        """Return a Future of the next event of this scope (the ASGI ``receive``).

        An ``EventFuture``: an event resolved into it counts as given to the application
        only once it reads it (see ``EventFuture``); one it never read when its instance
        ended goes to the next instance.

        Raises:
            GatewayError: ``receive()`` called while an earlier ``receive()`` still waits.
        """
        if self._waiter is not None and not self._waiter.done():
            raise GatewayError(
                f"receive() called for scope {self.key!r} while an earlier receive() still waits"
            )
        future = EventFuture(loop=asyncio.get_running_loop())
        future.taken = False
        self.receive_into(future)
        return future

    def receive_into(self, future: asyncio.Future[Any]) -> None:
        """Resolve ``future`` with the next event, now if one waits, else when it arrives.

        The waiter extension, which ``InMemoryChannelLayer.receive_into`` offers too: a
        consumer hands one Future to both its scope and its channel layer and wakes on
        whichever comes first; a source finding the Future already done keeps its item for
        the next call. Only the latest Future given waits; an idle consumer so costs one
        Future instead of one per source plus a waiter.

        Every call, with a Future done already by another source too, is the application
        asking for its next item: the event it was last given was handled (acknowledged,
        for MQTT). So call it in every turn, also one that took a channel-layer message
        first: else that event stays in hand, blamed if a later layer handler raises and
        given again if the instance is cancelled there. (The event is given when it is
        resolved into ``future``, read or not, unless ``future`` is an ``EventFuture``.)

        Args:
            future: A Future of the running loop; left alone if it is done already.
        """
        gateway = self.gateway
        if self._delivered:
            gateway.stats.handled(_clock() - self._delivered)
            self._delivered = 0.0
        if self._in_hand is not None:
            handled, self._in_hand = self._in_hand, None
            if isinstance(handled, EventFuture):
                handled = _result(handled)
            if isinstance(handled, ForwardedEvent):
                handled.settle()  # the daemon it came from acknowledges it now
            else:
                gateway.event_handled(self, handled)
        queue = self._queue
        if queue:
            if not future.done():
                event = queue.popleft()
                future.set_result(event)
                self._delivered = _clock()
                if gateway.tracks_handling:
                    self._in_hand = future if isinstance(future, EventFuture) else event
                if not queue:
                    self._queue = None
                self.wake_sender()
            return
        if self.ending is not None:
            # The disconnect event was taken already: repeat it rather than hang.
            if not future.done():
                future.set_result({"type": gateway.disconnect_type, "reason": self.ending})
            return
        if not future.done():  # one done by another source waits for nothing here
            self._waiter = future

    async def send(self, message: Message) -> None:
        """Take an event from the application (the ASGI ``send``).

        Raises:
            GatewayError: The event's type is not one this gateway can do, or the transport
                failed to carry it out.
        """
        gateway = self.gateway
        if message.get("type") == gateway.close_event_type:
            gateway.end(self, "closed")
            return
        await gateway.handle_send(self, message)
        gateway.stats.sent += 1

    # -- the gateway's side ------------------------------------------------------------

    def offer(self, event: Message, *, bounded: bool = True) -> bool:
        """Hand ``event`` to a waiting ``receive()`` or queue it, without waiting.

        Args:
            event: The event.
            bounded: Refuse it when ``max_queued_events`` are queued already.

        Returns:
            False when refused (the queue is full and ``bounded``), else True.
        """
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(event)
                self._delivered = _clock()
                if self.gateway.tracks_handling:
                    # Into a receive() Future the application may not read before it ends
                    # (a two-sources loop busy with a layer message): keep the Future.
                    self._in_hand = waiter if isinstance(waiter, EventFuture) else event
                return True
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif bounded and len(queue) >= self.gateway.options.max_queued_events:
            return False
        queue.append(event)
        return True

    async def put(self, event: Message) -> bool:
        """Queue ``event`` for the application, waiting while this scope's queue is full.

        Returns:
            True once queued (or handed over); False when the instance ended (or was never
            started) before there was room: then ``event`` was not delivered.
        """
        while not self.offer(event):
            if self.task is None or self.task.done():
                return False
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await self._space
        return True

    def put_nowait(self, event: Message) -> None:
        """Queue ``event`` now, past ``max_queued_events`` if need be: for an event that must
        arrive and was already taken from the transport (the disconnect event; a message a
        worker took from the channel layer)."""
        self.offer(event, bounded=False)

    def wake_sender(self) -> None:
        """Wake a ``put()`` waiting for room (there is some, or the instance ended)."""
        if self._space is not None and not self._space.done():
            self._space.set_result(None)

    def take_in_hand(self) -> Message | None:
        """Remove and return the event last given to the application and not known to be
        handled yet (only kept when the gateway ``tracks_handling``): for an instance that
        ended, the event it was working on when it returned, raised or was cancelled.

        An event resolved into a ``receive()`` Future that the application never read (it
        was busy with another source, then ended) was not given: ``None`` here, and it is
        the first of ``take_unread()``."""
        held = self._in_hand
        if isinstance(held, EventFuture):
            if held.unread:
                return None
            held = _result(held)
        self._in_hand = None
        return held

    def take_unread(self) -> list[Message]:
        """Remove and return the events queued for the application but not received yet,
        but for the disconnect event: what an instance that ended left unread, to hand to a
        fresh instance. First, if there is one, the event resolved into a ``receive()``
        Future it never read (see ``take_in_hand``)."""
        queue, self._queue = self._queue, None
        self._waiter = None  # a Future the ended instance will never read
        held = self._in_hand
        if isinstance(held, EventFuture) and held.unread:
            self._in_hand = None
            queue = deque((_result(held), *(queue or ())))
        disconnect = self.gateway.disconnect_type
        return [event for event in queue or () if event.get("type") != disconnect]
