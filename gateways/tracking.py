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
lease) confirms none of them: they go, in order, to a fresh instance of the same
conversation, or, while the gateway stops, stay unconfirmed for the platform to deliver
again to the next process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateways.instance import ScopeInstance
from layer.types import Scope

__all__ = ["TrackedEvent", "TrackingGateway", "requeue_unhandled"]


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
    def instances(self) -> Any: ...

    def open_scope(self, key: str, scope: Scope, *, pinned: bool = False) -> ScopeInstance: ...


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
    if unhandled and gateway.accepting:
        fresh = gateway.instances.get(instance.key)
        if fresh is None:
            fresh = gateway.open_scope(instance.key, dict(instance.scope))
        for event in unhandled:
            fresh.put_nowait(event)
