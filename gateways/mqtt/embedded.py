"""An in-process MQTT 3.1.1 broker (amqtt), behind ``broker: embedded``.

So the demo runs with nothing else installed. amqtt is an optional dependency
(``pip install 'asgi-gateway[embedded]'``) and is imported only when a broker starts.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from gateways.base import GatewayError

__all__ = ["EmbeddedBroker"]

logger = logging.getLogger(__name__)


class EmbeddedBroker:
    """An amqtt broker listening on ``host:port``, anonymous clients allowed.

    Args:
        host: Address to listen on, e.g. ``"127.0.0.1"``.
        port: TCP port to listen on.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._broker: Any | None = None

    def __repr__(self) -> str:
        state = "running" if self._broker is not None else "stopped"
        return f"<EmbeddedBroker {self.host}:{self.port} {state}>"

    async def start(self) -> None:
        """Start listening.

        Raises:
            GatewayError: amqtt is not installed, the address is in use, or the broker
                failed to start; the message names the address.
        """
        if self._broker is not None:
            return
        try:
            from amqtt.broker import Broker
            from amqtt.errors import BrokerError
        except ImportError as exc:
            raise GatewayError(
                "the embedded MQTT broker needs amqtt: pip install 'asgi-gateway[embedded]'"
            ) from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config)
        try:
            await broker.start()
        except BrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise GatewayError(
                    f"embedded MQTT broker: address {self.host}:{self.port} is already in use"
                ) from exc
            raise GatewayError(
                f"embedded MQTT broker on {self.host}:{self.port} failed to start: {exc}"
            ) from exc
        self._broker = broker
        logger.info("Embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop the broker and close its connections; does nothing if it is not running."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        await broker.shutdown()
        logger.info("Embedded MQTT broker on %s:%d stopped", self.host, self.port)
