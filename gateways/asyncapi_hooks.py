"""How a gateway describes itself in ``asgi-gateway asyncapi`` (``docs/asyncapi.md``): the
two hooks of ``AsyncApiHooks``, which ``gateways.base.Gateway`` inherits and an adapter
overrides. Plain data only: the daemon's writer (``gateways.daemon.asyncapi``) checks it and
builds the document."""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncApiHooks"]


class AsyncApiHooks:
    """The AsyncAPI hooks of every gateway; here, a gateway with nothing to describe."""

    def asyncapi_server(self) -> dict[str, Any] | None:
        """This gateway's transport as an AsyncAPI 3.0 Server Object, for ``asgi-gateway
        asyncapi`` (``docs/asyncapi.md``): plain data, at least ``host`` (``"host:port"``)
        and ``protocol``; ``title``, ``description``, ``protocolVersion`` as you like. The
        document names it after the gateway. Never put a secret in it.

        Returns:
            The Server Object; ``None`` (the default here): the gateway has no server of its
            own in the document. ``ChatGateway`` gives its platform's API host; the MQTT
            gateway's broker is described by the writer itself.
        """
        return None

    def asyncapi_channels(self, routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What this gateway's scopes receive and send, as AsyncAPI channels, for
        ``asgi-gateway asyncapi`` (``docs/asyncapi.md``). Plain data, one dict per channel:

        - ``address`` (str): the channel's address, parameters in braces (``"{scope_key}"``);
        - ``parameters`` (optional): ``{name: {"description": ...}}``, one per brace;
        - ``title``, ``description`` (optional, str);
        - ``receive``, ``send`` (lists of AsyncAPI Message Objects, each with a unique
          ``name``, e.g. the event type ``"lines.line"``, and a ``payload`` JSON Schema): the
          events the application receives and those it may send. The writer files them in
          ``components.messages`` by ``name`` and makes the ``receive.<channel>`` and
          ``send.<channel>`` operations, on this gateway's server if it has one.

        Args:
            routes: The application's ``describe()`` entries for scopes of this gateway's
                ``protocol`` (empty when it has none), to name routes and consumers.

        Returns:
            The channels; ``[]`` (the default here): none. Without channels of its own, a
            chat gateway gets the chat channel of ``docs/specs/chat.md``.
        """
        return []
