"""Thermostat: one long-lived consumer per device, keeping its readings.

Devices publish JSON telemetry such as ``{"temperature": 21.5}`` to
``devices/{device_id}/telemetry``. The gateway's ``scopes`` rule in ``gateway.yaml`` puts
every topic of one device in one scope, so one ``DeviceConsumer`` instance per device sees
both its telemetry and its ``get`` requests and keeps its state between them. After each
reading it publishes ``{"last": ..., "avg": ..., "count": ...}``, retained, to
``devices/{device_id}/state``; a message on ``devices/{device_id}/get`` is answered with
the same JSON on ``devices/{device_id}/state/reply``. Every device consumer is in the group
``telemetry``; a reading above ``THERMOSTAT_ALERT_ABOVE`` (degrees, default 30) is sent to
that group as a ``telemetry.alert`` message, for any consumer in the group (a chat
conversation, a worker) to act on.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from consumers import JsonMqttConsumer, ProtocolTypeRouter, TopicRouter, route

if TYPE_CHECKING:
    from gateways.types import MqttMessageEvent

logger = logging.getLogger(__name__)

#: Degrees above which a reading is sent to the ``telemetry`` group as an alert.
ALERT_ABOVE = float(os.environ.get("THERMOSTAT_ALERT_ABOVE", "30"))
TELEMETRY_GROUP = "telemetry"


class Telemetry(BaseModel):
    """A device's reading; other keys a device sends are ignored."""

    temperature: float


class DeviceConsumer(JsonMqttConsumer):
    """One instance per device: the last reading, a running average, the count."""

    model = Telemetry
    groups = (TELEMETRY_GROUP,)

    async def connect(self) -> None:
        self.device_id: str = self.scope["route"]["kwargs"]["device_id"]
        self.last: float | None = None
        self.total = 0.0
        self.count = 0

    def state(self) -> dict[str, Any]:
        avg = self.total / self.count if self.count else None
        return {"last": self.last, "avg": avg, "count": self.count}

    async def receive(self, message: MqttMessageEvent) -> None:
        if message["topic"].endswith("/get"):
            await self.publish_json(f"devices/{self.device_id}/state/reply", self.state())
            return
        await super().receive(message)  # JSON, validated against Telemetry

    async def receive_json(self, data: Any, message: MqttMessageEvent) -> None:
        reading = Telemetry.model_validate(data).temperature
        self.last = reading
        self.total += reading
        self.count += 1
        await self.publish_json(f"devices/{self.device_id}/state", self.state(), qos=1, retain=True)
        if reading > ALERT_ABOVE and self.channel_layer is not None:
            await self.channel_layer.group_send(
                TELEMETRY_GROUP,
                {
                    "type": "telemetry.alert",
                    "device_id": self.device_id,
                    "temperature": reading,
                    "threshold": ALERT_ABOVE,
                },
            )

    async def telemetry_alert(self, message: dict[str, Any]) -> None:
        """Devices share the group with whoever acts on alerts; a device only logs them."""
        if message["device_id"] != self.device_id:
            return
        logger.info(
            "Device %s above %.1f: %.1f", self.device_id, ALERT_ABOVE, message["temperature"]
        )


device = DeviceConsumer.as_asgi()

application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [
                route("devices/{device_id}/telemetry", device),
                route("devices/{device_id}/get", device),
            ]
        )
    }
)
