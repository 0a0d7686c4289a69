"""Events a chat platform must be told were handled: at least once, across ends and hops.

Most chat platforms keep what they delivered until the bot confirms it, each its own way:
Telegram by the next ``getUpdates`` offset or the webhook's 2xx, Slack by the Socket Mode
acknowledgement or the Events API's 200, the Bot Connector by the activity's answer,
Mattermost, Zulip and Rocket.Chat by where the next catch-up starts. A gateway confirms a
delivery only once the application handled the event made of it, so that a delivery taken
by a process that dies is delivered again to the next one.

A gateway that does so (``tracks_handling = True``) dispatches a ``TrackedEvent`` (a
subclass of its own names the delivery) and overrides ``ChatGateway.tracked_done``, which
the chat gateway calls once per tracked event, when:

- the application handled it (asked for its next event: ``Gateway.event_handled``);
- the daemon that owns its conversation handled it, in a cluster that forwarded it there
  (``Gateway.remote_handled``, ``gateways.ownership``);
- the instance handling it returned or raised (``requeue_unhandled``).

An instance cancelled while it held tracked events (evicted, timed out, ended by a stale
lease) confirms none of them: they go, in order, to the conversation's next instance
(``give_back``), or, while the gateway stops, stay unconfirmed for the platform to deliver
again to the next process. ``give_back`` serves any gateway whose ended instance left events
unhandled (the MQTT gateway's unacknowledged messages too): a fresh instance here, or, in a
cluster, where the scope's owner is now (claimed again, or forwarded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from gateways.instance import ScopeInstance
from layer.types import Message, Scope

__all__ = ["TrackedEvent", "TrackingGateway", "give_back", "requeue_unhandled"]

logger = logging.getLogger("gateways.base")

#: The dispatches ``give_back`` started in a cluster, kept until done.
_AGAIN: set[asyncio.Task[None]] = set()


class TrackedEvent(dict[str, Any]):
    """An event made of one platform delivery that the gateway confirms once handled.

    A plain event for the application (a ``dict``); the gateway's subclass adds, in its own
    ``__slots__``, what names the delivery (an ``update_id``, a post id, an envelope).
    """

    __slots__ = ()


class TrackingGateway(Protocol):
    """What ``requeue_unhandled`` uses of a gateway (``gateways.base.Gateway`` is one)."""

    @property
    def accepting(self) -> bool:
        """Whether the gateway still takes events (False once it began to stop)."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def instances(self) -> Any: ...

    @property
    def ownership(self) -> Any:
        """The daemon's cluster, or ``None``."""
        ...

    def open_scope(self, key: str, scope: Scope, *, pinned: bool = False) -> ScopeInstance: ...

    async def dispatch(self, key: str, event: Message, scope: Scope | None = None) -> None: ...


def requeue_unhandled(
    gateway: TrackingGateway, instance: ScopeInstance, done: Callable[[TrackedEvent], None]
) -> None:
    """Settle the tracked events of an instance that ended (from ``scope_finished``).

    The event it was handling counts as handled (``done``) if it returned or raised; if it
    was cancelled, that event and those it never read go, in order, to a fresh instance of
    the same conversation, opened here if needed; while the gateway stops, they stay
    unconfirmed.

    Args:
        gateway: The gateway the instance belonged to.
        instance: The instance that ended.
        done: The gateway's ``tracked_done``.
    """
    task = instance.task
    cancelled = task is None or task.cancelled()
    last = instance.take_in_hand()
    unhandled = [e for e in instance.take_unread() if isinstance(e, TrackedEvent)]
    if isinstance(last, TrackedEvent):
        if cancelled:
            unhandled.insert(0, last)
        else:
            done(last)
    give_back(gateway, instance, unhandled)


def give_back(gateway: TrackingGateway, instance: ScopeInstance, events: list[Any]) -> None:
    """Hand ``events``, which ``instance`` (ended) left unhandled, to its scope's next
    instance, in order: a fresh one here; in a cluster, ``dispatch`` again (in a task), which
    claims the scope anew or forwards them to the daemon that owns it now (this one may have
    lost it: its instance was ended by a stale lease). Nothing while the gateway stops.

    Args:
        gateway: The gateway the instance belonged to.
        instance: The instance that ended.
        events: The events it left unhandled, oldest first.
    """
    if not events or not gateway.accepting:
        return
    key, scope = instance.key, dict(instance.scope)
    if gateway.ownership is not None:
        task = asyncio.get_running_loop().create_task(_dispatch_again(gateway, key, events, scope))
        _AGAIN.add(task)
        task.add_done_callback(_AGAIN.discard)
        return
    fresh = gateway.instances.get(key)
    if fresh is None:
        fresh = gateway.open_scope(key, scope)
    for event in events:
        fresh.put_nowait(event)


async def _dispatch_again(
    gateway: TrackingGateway, key: str, events: list[Any], scope: Scope
) -> None:
    for event in events:
        try:
            await gateway.dispatch(key, event, scope)
        except Exception:
            logger.exception(
                "Gateway %r: an event scope %r left unhandled could not be dispatched again",
                gateway.name,
                key,
                extra={"gateway": gateway.name, "scope": key},
            )
