"""Workers: the application for named channels of the channel layer.

As Channels' ``channels.worker.Worker`` (``manage.py runworker``): for each named channel,
the worker receives from the channel layer and feeds the application, one long-lived
application instance per channel name, with the scope
``{"type": "channel", "channel": <name>, ...}`` (``docs/specs/channel.md``). Each message is
an event whose type is the message's own (``"thumbnail.generate"``). Any consumer hands off
background work with ``await self.channel_layer.send("thumbnails", {...})``.

The worker is a ``Gateway`` whose scope key is the channel name, so its instances get the
base's lifecycle, with three worker-specific rules:

- no connect event: as in Channels, the first event is the first message;
- a bounded hand-over: the worker takes the next message from the channel layer only when
  the instance has room for it (``max_queued_events``, default 1), so messages wait in the
  layer, where its capacity and expiry apply and where other worker processes can take
  them, instead of piling up in one process;
- crash isolation without loss: an instance that raises is logged with the channel name and
  only it ends; messages already handed to it but not read are given, in order, to a fresh
  instance, which also takes every later message.

``stop()`` stops receiving, hands over the message in hand, sends each instance
``channel.disconnect`` (reason ``"shutdown"``) after what it was already given, and drains.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter
from pydantic import Field, field_validator

from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.metrics import EVENTS_DROPPED
from layer import ChannelLayer, InvalidName, require_valid_channel_name
from layer.retrying import retry_forever
from layer.types import ASGIApp, Message, Scope

__all__ = [
    "PROCESS_LOCAL_LAYERS",
    "WORKER_NAME",
    "Worker",
    "WorkerOptions",
    "check_channel_names",
    "is_process_local",
]

logger = logging.getLogger(__name__)

#: The worker's name: ``scope["gateway"]`` of its scopes and its metric label.
WORKER_NAME = "worker"

#: Layer classes (``module.QualName``) that live in one process: a worker in another process
#: cannot receive what is sent to them.
PROCESS_LOCAL_LAYERS = frozenset(
    {"layer.memory.InMemoryChannelLayer", "channels.layers.InMemoryChannelLayer"}
)

MESSAGES_REHANDED = Counter(
    "asgi_gateway_worker_messages_rehanded_total",
    "Messages a worker had handed to an instance that ended before reading them, handed "
    "again to a fresh instance.",
    ["channel"],
)

#: Seconds between attempts when the channel layer's receive() fails: exponential with
#: jitter, from ``initial`` to ``maximum``.
RECEIVE_RETRY_INITIAL = 0.5
RECEIVE_RETRY_MAXIMUM = 30.0


def is_process_local(channel_layer: object) -> bool:
    """True when ``channel_layer`` is one of ``PROCESS_LOCAL_LAYERS`` (an in-memory layer)."""
    cls = type(channel_layer)
    return f"{cls.__module__}.{cls.__qualname__}" in PROCESS_LOCAL_LAYERS


def check_channel_names(names: Iterable[object]) -> list[str]:
    """Check the channel names a worker is to serve; drop repeats, keep the order.

    Args:
        names: Channel names, e.g. ``["thumbnails", "reports"]``.

    Returns:
        The names, each once.

    Raises:
        GatewayError: No name; a process-specific name (with ``!``), which only the process
            that made it can receive from; or a name that breaks the Channels layer spec's
            rules (ASCII letters, digits, ``-``, ``_``, ``.``, under 100 characters).
    """
    result: list[str] = []
    for name in names:
        if isinstance(name, str) and "!" in name:
            raise GatewayError(
                f"channel {name!r} is a process-specific channel name ('!'): only the process "
                "that made it can receive from it, so no worker can serve it; name a normal "
                "channel such as 'thumbnails'"
            )
        try:
            require_valid_channel_name(name)
        except InvalidName as exc:
            raise GatewayError(str(exc)) from None
        if name not in result:
            result.append(name)  # type: ignore[arg-type]  # checked by require_valid_channel_name
    if not result:
        raise GatewayError("a worker needs at least one channel name, such as 'thumbnails'")
    return result


class WorkerOptions(GatewayOptions):
    """Options of a worker (keys of the ``workers:`` section besides ``channels``).

    Attributes:
        max_queued_events: Messages handed to a channel's instance that it has not read yet;
            the worker receives the next message from the layer only below this. Default 1:
            the rest wait in the channel layer, for this or another worker process.
        disconnect_grace: Seconds an instance has to return after ``channel.disconnect``.
        idle_timeout: Always ``None``: a worker's instances live until it stops.
    """

    idle_timeout: float | None = None
    max_queued_events: int = Field(default=1, ge=1)

    @field_validator("idle_timeout")
    @classmethod
    def _no_idle_timeout(cls, value: float | None) -> None:
        if value is not None:
            raise ValueError(
                "a worker keeps one instance per channel until it stops; idle_timeout does "
                "not apply"
            )


class Worker(Gateway):
    """Runs the application for named channels of the channel layer.

    Args:
        application: The ASGI 3 application, called once per channel name with
            ``{"type": "channel", "channel": <name>, "gateway": name, "asgi": ...,
            "channel_layer": channel_layer}``; typically a ``ProtocolTypeRouter`` whose
            ``"channel"`` entry is a ``ChannelNameRouter``.
        channels: The channel names to serve (see ``check_channel_names``).
        channel_layer: The channel layer to receive from (Channels layer spec ``receive``).
        options: The worker's options; defaults if ``None``.
        name: ``scope["gateway"]`` and the metric label.

    Raises:
        GatewayError: No channel layer, or a bad channel name (``check_channel_names``).
    """

    protocol = "channel"
    options_model = WorkerOptions
    # Its scopes are its channel names, which take messages already.
    addressable = False

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        *,
        channel_layer: ChannelLayer | None,
        options: GatewayOptions | None = None,
        name: str = WORKER_NAME,
    ) -> None:
        if channel_layer is None:
            raise GatewayError("a worker needs a channel layer to receive from; got None")
        super().__init__(name, application, options or WorkerOptions(), channel_layer=channel_layer)
        self.channels = check_channel_names(channels)
        self.connect_event = None  # as in Channels, a worker's first event is its first message
        self._layer: ChannelLayer = channel_layer
        self._listeners: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} channels={self.channels!r}>"

    # -- Gateway -----------------------------------------------------------------------

    async def start_transport(self) -> None:
        """Start one listener per channel; each receives from the layer and hands over."""
        loop = asyncio.get_running_loop()
        self._listeners = [
            loop.create_task(self._listen(channel), name=f"worker listener {channel}")
            for channel in self.channels
        ]
        for listener in self._listeners:
            listener.add_done_callback(self._listener_done)
        logger.info("Worker %r serving channels %s", self.name, ", ".join(self.channels))

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop receiving, then end every instance (``channel.disconnect``) and drain.

        Args:
            drain_timeout: Seconds instances have to return after their disconnect event,
                which comes after every message already handed to them.
        """
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await super().stop(drain_timeout)

    async def close_transport(self) -> None:
        """Nothing to close: the daemon owns and closes the channel layer."""

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        """Refuse every event but ``channel.close`` (handled by the base).

        Raises:
            GatewayError: Always: a worker's application answers through the channel layer.
        """
        raise GatewayError(
            f"a worker's application can send only 'channel.close', got "
            f"{message.get('type')!r} on channel {instance.key!r}; reply through the channel "
            "layer (send to a channel name or group_send)"
        )

    def open_scope(self, key: str, scope: Scope, *, pinned: bool = False) -> ScopeInstance:
        """Start the instance of channel ``key`` (with no connect event: ``connect_event`` is
        ``None``), and watch for its end to hand what it left unread to a fresh one."""
        instance = super().open_scope(key, scope, pinned=pinned)
        instance.started_task.add_done_callback(functools.partial(self._instance_ended, instance))
        return instance

    # -- receiving and handing over ----------------------------------------------------

    def _listener_done(self, listener: asyncio.Task[None]) -> None:
        # A listener only ends when cancelled by stop(); anything else is a bug to surface:
        # the worker fails for good, and the daemon stops with the error.
        if listener.cancelled():
            return
        exc = listener.exception()
        if exc is not None:
            logger.error(
                "Worker %r: %s stopped on an error", self.name, listener.get_name(), exc_info=exc
            )
            self.fail(GatewayError(f"worker {self.name!r}: {listener.get_name()} failed: {exc}"))

    async def _listen(self, channel: str) -> None:
        while True:
            message = await self._receive(channel)
            if self._acceptable(channel, message):
                await self._hand_over(channel, message)

    async def _receive(self, channel: str) -> Message:
        """The next message of ``channel``; a layer that fails (Redis restarting) is retried
        with backoff, for ever, each failure logged."""

        def warn(exc: BaseException | None, delay: float) -> None:
            logger.error(
                "Worker %r: receive from channel %r failed (%s: %s); retrying in %.1f s",
                self.name,
                channel,
                type(exc).__name__,
                exc,
                delay,
            )

        async def receive() -> Message:
            return await self._layer.receive(channel)

        return await retry_forever(
            receive,
            retry_on=Exception,
            warn=warn,
            initial=RECEIVE_RETRY_INITIAL,
            maximum=RECEIVE_RETRY_MAXIMUM,
        )

    def _acceptable(self, channel: str, message: Any) -> bool:
        kind = message.get("type") if isinstance(message, dict) else None
        if isinstance(kind, str) and kind != self.disconnect_type:
            return True
        why = "is the worker's own disconnect event" if isinstance(kind, str) else "has no str type"
        logger.warning(
            "Worker %r: skipped a message on channel %r that %s: %.200r",
            self.name,
            channel,
            why,
            message,
        )
        EVENTS_DROPPED.labels(self.name, "invalid").inc()
        return False

    def _instance_for(self, channel: str) -> ScopeInstance:
        instance = self.instances.get(channel)
        if instance is None:
            instance = self.open_scope(channel, self.new_scope(channel=channel), pinned=True)
        return instance

    async def _hand_over(self, channel: str, message: Message) -> None:
        """Give ``message`` to the channel's instance, waiting while its queue is full.

        If the listener is cancelled (``stop()``) meanwhile, the message, taken from the
        layer already, is queued past the bound, before the disconnect event ``stop()`` sends.
        """
        while True:
            instance = self.instances.get(channel)
            task = instance.task if instance is not None else None
            if task is not None and task.done():
                # Ended, its done-callbacks not run yet: let them (they were scheduled when
                # it ended), which drops it and hands what it had unread to a fresh one.
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    self._hand_over_now(channel, message)
                    raise
                continue
            instance = self._instance_for(channel)
            task = instance.started_task
            try:
                await instance.put(message)
            except asyncio.CancelledError:
                self._hand_over_now(channel, message)  # put() was waiting: not delivered
                raise
            if not task.done():
                return
            # The instance ended while put() waited. Once its done-callbacks have run (one
            # turn of the loop), what it had unread is with a fresh instance; the message is
            # left on the ended one only if put() queued it there after that.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                if self._take_back(instance, message):
                    self._hand_over_now(channel, message)
                raise
            if not self._take_back(instance, message):
                return

    def _hand_over_now(self, channel: str, message: Message) -> None:
        """Queue ``message`` past the bound (it was already taken from the layer)."""
        self._instance_for(channel).put_nowait(message)

    def _take_back(self, instance: ScopeInstance, message: Message) -> bool:
        """Take ``message`` back from an ended instance's queue; True if it was there."""
        return any(m is message for m in instance.take_unread())

    def _instance_ended(self, instance: ScopeInstance, task: asyncio.Task[None]) -> None:
        # Runs after the base's done-callback, which logged a crash and dropped the instance.
        unread = instance.take_unread()
        if not unread:
            return
        if not self._accepting:
            logger.warning(
                "Worker %r: %d messages of channel %r were not handled: the instance ended "
                "before reading them while the worker was stopping",
                self.name,
                len(unread),
                instance.key,
            )
            EVENTS_DROPPED.labels(self.name, "stopping").inc(len(unread))
            return
        logger.warning(
            "Worker %r: giving the %d unread messages of channel %r to a fresh instance",
            self.name,
            len(unread),
            instance.key,
        )
        MESSAGES_REHANDED.labels(instance.key).inc(len(unread))
        successor = self._instance_for(instance.key)
        for message in unread:
            successor.put_nowait(message)
