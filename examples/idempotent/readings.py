"""At least once, handled idempotently: each reading carries its own number, and storing it
is an upsert keyed by (device, number), so a message the broker delivers again (after the
daemon died before acknowledging it; ``dup`` is set) changes nothing the second time.

Run it: ``asgi-gateway run examples/idempotent/gateway.yaml`` (needs a broker at
``MQTT_URL``); tested by tests/test_examples.py.
"""

from __future__ import annotations

import logging
from typing import Any

from consumers import JsonMqttConsumer, ProtocolTypeRouter, TopicRouter, route

logger = logging.getLogger(__name__)

#: Stands in for a database table with the primary key (device, seq).
READINGS: dict[tuple[str, int], float] = {}


class Readings(JsonMqttConsumer):
    """``devices/{device_id}/readings`` with ``{"seq": 41, "temperature": 21.5}``."""

    async def receive_json(self, data: Any, message: Any) -> None:
        key = (self.scope["route"]["kwargs"]["device_id"], int(data["seq"]))
        if message["dup"] and key in READINGS:
            logger.info("reading %s of %s came again; stored already", key[1], key[0])
            return
        READINGS[key] = float(data["temperature"])  # an upsert: twice is as once


application = ProtocolTypeRouter(
    {"mqtt": TopicRouter([route("devices/{device_id}/readings", Readings.as_asgi())])}
)
