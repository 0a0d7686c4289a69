"""Echo: every payload published to ``echo/{name}`` comes back on ``echo/{name}/reply``.

Run it with ``asgi-gateway run examples/echo.yaml``, then in two other terminals::

    mosquitto_sub -t 'echo/+/reply' -v
    mosquitto_pub -t echo/alice -m hello
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumers import MqttConsumer, ProtocolTypeRouter, TopicRouter, route

if TYPE_CHECKING:
    from layer.types import MqttMessageEvent


class EchoConsumer(MqttConsumer):
    """One instance per topic ``echo/{name}``; republishes each payload with the same QoS."""

    async def receive(self, message: MqttMessageEvent) -> None:
        name = self.scope["route"]["kwargs"]["name"]
        await self.publish(f"echo/{name}/reply", message["payload"], qos=message["qos"])


application = ProtocolTypeRouter(
    {"mqtt": TopicRouter([route("echo/{name}", EchoConsumer.as_asgi())])}
)
