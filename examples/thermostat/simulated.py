"""Simulated devices for the thermostat example on the embedded broker: ``kitchen`` and
``garage`` publish a reading every few seconds, so that a fresh ``asgi-gateway run`` has
devices to ask about (``temp kitchen``) and the dashboard and web chat show something.

They are the application's ASGI lifespan part (``gateways.daemon.lifespan``): the daemon's
``lifespan.startup`` starts them, ``lifespan.shutdown`` stops them. Each is what a real
device would be: an MQTT client of the broker (aiomqtt), publishing
``{"temperature": ...}`` with QoS 1 to ``devices/<id>/telemetry``; one client for both,
which reconnects while the broker is not up yet.

They run only on the embedded broker: with ``MQTT_URL`` unset (the broker at
``127.0.0.1:1883``) or an ``embedded://host:port`` one. ``MQTT_URL`` naming a real broker
(``mqtt://...``) turns them off, and so does ``THERMOSTAT_SIMULATE=0``.
``THERMOSTAT_SIMULATE_EVERY`` sets the seconds between readings (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

logger = logging.getLogger(__name__)

#: The simulated devices and the temperature each hovers around (degrees Celsius).
DEVICES = {"kitchen": 21.0, "garage": 12.0}


def embedded_broker() -> tuple[str, int] | None:
    """The embedded broker's host and port, or ``None`` when the devices are off."""
    if os.environ.get("THERMOSTAT_SIMULATE", "1") == "0":
        return None
    url = urlsplit(os.environ.get("MQTT_URL") or "embedded://127.0.0.1:1883")
    if url.scheme != "embedded":
        return None
    return url.hostname or "127.0.0.1", url.port or 1883


async def publish_readings(host: str, port: int, every: float) -> None:
    """Publish a reading of each device every ``every`` seconds, reconnecting for ever."""
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier="thermostat-simulated-devices") as c:
                # Reading the (empty) message stream is how aiomqtt reports a lost connection.
                lost = asyncio.ensure_future(until_disconnected(c))
                try:
                    while not lost.done():
                        for device, around in DEVICES.items():
                            temperature = round(around + random.uniform(-0.8, 0.8), 1)
                            reading = json.dumps({"temperature": temperature})
                            await c.publish(f"devices/{device}/telemetry", reading, qos=1)
                        await asyncio.wait([lost], timeout=every)
                    lost.result()  # raises the MqttError that ended the connection
                finally:
                    lost.cancel()
        except aiomqtt.MqttError as exc:
            logger.debug("Simulated devices: broker at %s:%d not reachable (%s)", host, port, exc)
            await asyncio.sleep(0.2)


async def until_disconnected(client: aiomqtt.Client) -> None:
    """Return, or raise ``MqttError``, once ``client`` lost its connection."""
    async for _ in client.messages:
        pass


async def simulated_devices(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The lifespan application: start the devices at startup, stop them at shutdown."""
    task: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            broker = embedded_broker()
            if broker is not None:
                every = float(os.environ.get("THERMOSTAT_SIMULATE_EVERY", "5"))
                task = asyncio.get_running_loop().create_task(publish_readings(*broker, every))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await send({"type": "lifespan.shutdown.complete"})
            return
