"""How a consumer waits: its scope's events and its channel's messages, merged into one stream.

Channels' ``await_many_dispatch``, for our consumers: ``serve`` picks the dispatch loop that
fits the two sources, the scope's ``receive()`` and the layer's ``receive(channel_name)``,
and that loop joins the consumer's groups, hands each item to the consumer's
``dispatch_event`` in arrival order per source until it answers that the item was the last,
then cancels what still waits and leaves the groups, shielded from cancellation.

- behind the waiter extension (``receive_into`` on both sources: our gateways' instances,
  ``InMemoryChannelLayer``, ``RedisChannelLayer``) one Future is given to both sources per
  turn, so an idle consumer waits on one Future and costs no Task of its own;
- with any other server or layer (asgiref's communicator, Channels' layers) the loop waits
  on the two sources' Futures (a coroutine source is wrapped in a Task);
- without a layer, only the scope's events.

A loop's frame is what an idle consumer keeps, so it holds the consumer and a plain function
``dispatch_event(consumer, event)`` rather than a bound method (64 bytes each, per scope).
The consumer classes are in ``consumers.base``; failures to leave a group are logged there
too (logger ``consumers.base``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from layer import ChannelLayer, LayerMessage

if TYPE_CHECKING:
    from layer.types import Message, Receive

__all__ = ["Member", "serve"]

#: The consumers' logger: a group that can't be left is logged as it was before this module.
logger = logging.getLogger("consumers.base")


class Member(Protocol):
    """What a dispatch loop uses of its consumer: the groups it joins, the channel it gets."""

    groups: Sequence[str]
    channel_name: str | None


_M = TypeVar("_M", bound=Member)


class _Waiter(asyncio.Future[None]):
    """A Future that is also the done-callback resolving it: nothing else to allocate."""

    __slots__ = ()

    def __call__(self, _done: asyncio.Future[Any]) -> None:
        if not self.done():
            self.set_result(None)

    @classmethod
    def first_of(cls, first: asyncio.Future[Any], second: asyncio.Future[Any]) -> _Waiter:
        """A waiter done when ``first`` or ``second`` is; the caller removes it from both."""
        waiter = cls(loop=first.get_loop())
        context = _callback_context()
        first.add_done_callback(waiter, context=context)
        second.add_done_callback(waiter, context=context)
        return waiter


_local = threading.local()


def _callback_context() -> contextvars.Context:
    # add_done_callback() copies the current context unless given one: 64 bytes per callback
    # per idle consumer. _Waiter needs no context variables, so every callback of a thread
    # shares one (callbacks of one thread never run nested, so it is never entered twice).
    try:
        return _local.context  # type: ignore[no-any-return]
    except AttributeError:
        _local.context = context = contextvars.Context()
        return context


class _ReceiveInto(Protocol):
    """A scope's ``receive`` that offers the waiter extension (our gateways' instances)."""

    def __call__(self) -> Awaitable[Message]: ...

    def receive_into(self, future: asyncio.Future[Any]) -> None: ...


class _LayerReceiveInto(ChannelLayer, Protocol):
    """A channel layer that offers the waiter extension (``InMemoryChannelLayer``,
    ``RedisChannelLayer``; both also offer ``discard_receive`` to withdraw a Future)."""

    def receive_into(self, channel: str, future: asyncio.Future[Any]) -> None: ...


def serve(
    consumer: _M,
    dispatch_event: Callable[[_M, Message], Awaitable[bool]],
    receive: Receive,
    layer: ChannelLayer | None,
) -> Coroutine[Any, Any, None]:
    """The dispatch loop of ``consumer`` that fits its sources (see the module), not started.

    Args:
        consumer: The consumer; the loop sets its ``channel_name`` and joins its ``groups``.
        dispatch_event: ``dispatch_event(consumer, event)`` dispatches one event or message
            and returns True when it was the last (the loop then ends).
        receive: The scope's ASGI ``receive``.
        layer: The channel layer, or ``None`` (then only the scope's events).

    Returns:
        The loop's coroutine, to be awaited as the application's.
    """
    if layer is None:
        return _dispatch_scope(consumer, dispatch_event, receive)
    if hasattr(receive, "receive_into") and hasattr(layer, "receive_into"):
        return _dispatch_one_waiter(
            consumer, dispatch_event, receive, cast("_LayerReceiveInto", layer)
        )
    return _dispatch_two_sources(consumer, dispatch_event, receive, layer)


async def _join(consumer: Member, layer: ChannelLayer, groups: Sequence[str]) -> str:
    """Get a channel name from ``layer.new_channel()`` and join ``groups``.

    Returns:
        The channel name, also set as ``consumer.channel_name``.

    Raises:
        Exception: What the layer raised (or a cancellation); the groups joined by then
            are left first.
    """
    channel_name = consumer.channel_name = await layer.new_channel()
    joined = 0
    try:
        for group in groups:
            await layer.group_add(group, channel_name)
            joined += 1
    except BaseException:
        if joined:
            await asyncio.shield(_leave_groups(layer, groups[:joined], channel_name))
        raise
    return channel_name


async def _dispatch_scope(
    consumer: _M, dispatch_event: Callable[[_M, Message], Awaitable[bool]], receive: Receive
) -> None:
    """Without a channel layer: the scope's events, until the last one."""
    while not await dispatch_event(consumer, await receive()):
        pass


async def _dispatch_one_waiter(
    consumer: _M,
    dispatch_event: Callable[[_M, Message], Awaitable[bool]],
    receive: _ReceiveInto,
    layer: _LayerReceiveInto,
) -> None:
    """Behind the waiter extension (our gateways and layers).

    Each wait is one Future given to both sources, which resolves with whichever has an
    item first; the other, finding it done, keeps its item for the next turn. An idle
    consumer so waits on one Future instead of three. The sources take turns being asked
    first, so that neither starves the other. (No bound methods are kept in this
    long-lived frame: each would cost 64 bytes.)
    """
    groups = consumer.groups
    channel_name = await _join(consumer, layer, groups)
    event: asyncio.Future[Message] | None = None
    try:
        loop = asyncio.get_running_loop()
        layer_first = False
        while True:
            event = loop.create_future()
            if layer_first:
                layer.receive_into(channel_name, event)
                # Also when the layer resolved it: asking the scope is how the gateway learns
                # the previous event was handled, and acknowledges it (gateways/instance.py).
                receive.receive_into(event)
            else:
                receive.receive_into(event)
                if not event.done():
                    layer.receive_into(channel_name, event)
            layer_first = not layer_first
            if await dispatch_event(consumer, await event):
                return
    finally:
        await _tear_down(layer, channel_name, groups, event, None)


async def _dispatch_two_sources(
    consumer: _M,
    dispatch_event: Callable[[_M, Message], Awaitable[bool]],
    receive: Receive,
    layer: ChannelLayer,
) -> None:
    """With any other server or layer: wait on the two sources' Futures.

    A coroutine source (asgiref's communicator, Channels' layers) is wrapped in a Task.
    Each pending Future is kept across turns (cancelling one could lose its item); each
    source is dispatched in arrival order, and when both are ready the scope's first.
    """
    groups = consumer.groups
    channel_name = await _join(consumer, layer, groups)
    event: asyncio.Future[Message] | None = None
    message: asyncio.Future[LayerMessage] | None = None
    done: asyncio.Future[Any]
    try:
        event = asyncio.ensure_future(receive())
        message = asyncio.ensure_future(layer.receive(channel_name))
        while True:
            if not (event.done() or message.done()):
                done = _Waiter.first_of(event, message)
                await done
                event.remove_done_callback(done)
                message.remove_done_callback(done)
            if event.done():
                done, event = event, None
                if await dispatch_event(consumer, done.result()):
                    return
                event = asyncio.ensure_future(receive())
            if message.done():
                done, message = message, None
                if await dispatch_event(consumer, done.result()):
                    return
                message = asyncio.ensure_future(layer.receive(channel_name))
    finally:
        await _tear_down(layer, channel_name, groups, event, message)


def _tear_down(
    layer: ChannelLayer,
    channel_name: str,
    groups: Sequence[str],
    event: asyncio.Future[Message] | None,
    message: asyncio.Future[LayerMessage] | None,
) -> Awaitable[None]:
    """Cancel what still waits, then leave ``groups``, shielded from cancellation.

    A plain function: what it cancels is cancelled before the caller's ``await``.
    """
    if event is not None:
        event.cancel()
        discard = getattr(layer, "discard_receive", None)
        if discard is not None:
            discard(channel_name, event)  # given to receive_into, if at all
    if message is not None:
        message.cancel()
    if not groups:
        return _done()
    return asyncio.shield(_leave_groups(layer, groups, channel_name))


async def _done() -> None:
    pass


async def _leave_groups(layer: ChannelLayer, groups: Sequence[str], channel_name: str) -> None:
    for group in groups:
        try:
            await layer.group_discard(group, channel_name)
        except Exception:
            logger.exception("could not leave group %r with channel %r", group, channel_name)
