"""Scopes owned by one daemon of a cluster: the adapter API's side (``docs/deployment.md``,
*One live instance per scope*).

With a ``cluster:`` section, each scope key of a gateway is owned by at most one daemon at a
time (``gateways.daemon.cluster``). ``Gateway.dispatch`` asks its ``ownership`` before it
opens a scope: the scope opens here when this daemon owns it (or has just claimed it), or
the event is forwarded to the owner, which reports back once its instance handled it; the
gateway then hears of it through ``Gateway.remote_handled(event)`` (the MQTT gateway
acknowledges the message only then). Here: what the base needs of that, an ``Ownership``,
and the ``ForwardedEvent`` an owner's instance is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from layer.types import Message, Scope

__all__ = ["ForwardedEvent", "Ownership"]


class ForwardedEvent(dict[str, Any]):
    """An event another daemon received and forwarded to this one, the scope's owner: a plain
    event for the application; ``ScopeInstance`` calls ``settle()`` once it was handled (the
    application asked for its next event), which tells the daemon it came from.

    Attributes:
        on_handled: Called once, by ``settle()``; ``None`` after.
    """

    __slots__ = ("on_handled",)

    def __init__(self, event: Message, on_handled: Callable[[], None]) -> None:
        super().__init__(event)
        self.on_handled: Callable[[], None] | None = on_handled

    def settle(self) -> None:
        """The owner's instance handled this event: report it (once)."""
        on_handled, self.on_handled = self.on_handled, None
        if on_handled is not None:
            on_handled()


class OwnedGateway(Protocol):
    """What an ``Ownership`` uses of a gateway (``gateways.base.Gateway`` is one)."""

    name: str

    async def dispatch(self, key: str, event: Message, scope: Scope | None = None) -> None: ...

    def remote_handled(self, event: Message) -> None: ...


class Ownership(Protocol):
    """The cluster, as a gateway sees it (``gateways.daemon.cluster.Cluster`` is one)."""

    async def admit(
        self, gateway: OwnedGateway, key: str, event: Message, scope: Scope | None
    ) -> bool:
        """Whether the scope ``key`` may open here for ``event``: True when this daemon owns
        it now (it claimed it, or held it already); False when ``event`` went to the owner
        instead (forwarded; ``gateway.remote_handled(event)`` follows once handled there).

        Args:
            gateway: The gateway (its ``name`` is part of the scope's identity).
            key: The scope key.
            event: The event that would open the scope.
            scope: The scope it would open with (``None`` when the caller had none).
        """
        ...

    def released(self, gateway: str, key: str) -> None:
        """The instance of ``key`` on gateway ``gateway`` ended here: give the scope up."""
        ...
