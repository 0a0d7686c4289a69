"""The app's consumers, which meet in the channel layer group ``telemetry``.

``DeviceConsumer`` (asgi-gateway's ``JsonMqttConsumer``) serves one MQTT scope per device
topic ``devices/{device_id}/telemetry``: each reading such as ``{"temperature": 21.5}`` is
stored through the ORM, published back as the device's retained state on
``devices/{device_id}/state`` (as ``examples/thermostat`` does) and sent to the group as a
``telemetry.reading`` message; a reading above ``settings.THERMOSTAT_ALERT_ABOVE`` is also
sent as a ``telemetry.alert``, the thermostat's alert message.

``DeviceFeedConsumer`` (Channels' ``AsyncJsonWebsocketConsumer``, unchanged Channels code)
serves one WebSocket scope per open page, in the same group, and forwards both to the page.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from pydantic import BaseModel, Field

from consumers import JsonMqttConsumer
from devices.models import Device

if TYPE_CHECKING:
    from layer.types import MqttMessageEvent

logger = logging.getLogger(__name__)

#: The channel layer group of every open page; the device consumers send to it.
TELEMETRY_GROUP = "telemetry"
#: A device id the site stores (``Device.name``): letters, digits, - or _, 64 at most.
DEVICE_ID = re.compile(r"[\w-]{1,64}")


class Telemetry(BaseModel):
    """A device's reading; other keys a device sends are ignored."""

    temperature: float = Field(allow_inf_nan=False)


class State(BaseModel):
    """A device's state, published retained after each reading."""

    last: float | None
    avg: float | None
    count: int


@database_sync_to_async
def record(device_id: str, temperature: float) -> dict[str, Any]:
    """Store the reading (in a thread, as the ORM must be) and return the device's summary."""
    return Device.record(device_id, temperature).summary()


class DeviceConsumer(JsonMqttConsumer):
    """One instance per device topic: stores each reading and tells the ``telemetry`` group."""

    model = Telemetry
    publishes: ClassVar[dict[str, type[BaseModel]]] = {"devices/{device_id}/state": State}

    async def receive_json(self, data: Telemetry, message: MqttMessageEvent) -> None:
        """A valid reading: store it, publish the device's state, tell the group."""
        device_id = self.scope["route"]["kwargs"]["device_id"]
        if not DEVICE_ID.fullmatch(device_id):
            logger.warning("Reading on %s skipped: not a device id", message["topic"][:200])
            return
        summary = await record(device_id, data.temperature)
        state = State(last=summary["last"], avg=summary["avg"], count=summary["count"])
        await self.publish_json(f"devices/{device_id}/state", state, qos=1, retain=True)
        if self.channel_layer is None:
            return
        await self.channel_layer.group_send(
            TELEMETRY_GROUP, {"type": "telemetry.reading", **summary}
        )
        threshold = settings.THERMOSTAT_ALERT_ABOVE
        if data.temperature > threshold:
            await self.channel_layer.group_send(
                TELEMETRY_GROUP,
                {
                    "type": "telemetry.alert",
                    "device_id": device_id,
                    "temperature": data.temperature,
                    "threshold": threshold,
                },
            )


class DeviceFeedConsumer(AsyncJsonWebsocketConsumer):
    """One instance per open page: joins the ``telemetry`` group when the WebSocket connects
    (Channels' ``groups``) and sends each of its messages on as JSON."""

    groups: ClassVar[list[str]] = [TELEMETRY_GROUP]

    async def telemetry_reading(self, event: dict[str, Any]) -> None:
        """A device's new summary: ``device_id``, ``last``, ``avg``, ``count``, ``updated``."""
        await self.send_json({"type": "reading", **_without_type(event)})

    async def telemetry_alert(self, event: dict[str, Any]) -> None:
        """A reading above the threshold: ``device_id``, ``temperature``, ``threshold``."""
        await self.send_json({"type": "alert", **_without_type(event)})


def _without_type(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "type"}
