"""The thermostat example keeps its devices' state across restarts (issue 21's done-when):
the README's first command (the in-process broker, the in-memory layer, the console) with its
``state:`` section's sqlite file, stopped with SIGTERM and killed with SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiomqtt
from daemon_helpers import ROOT, Daemon, next_message, state, until_reply

from gateways.testing import free_port

EXAMPLE = ROOT / "examples" / "thermostat" / "gateway.yaml"


def start(port: int, state_file: Path) -> Daemon:
    return Daemon(
        EXAMPLE,
        {
            "MQTT_URL": f"embedded://127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
            "THERMOSTAT_STATE": str(state_file),
        },
    )


async def readings(port: int, values: list[float]) -> dict[str, Any]:
    """Publish ``values`` as kitchen's readings (QoS 1) once the daemon answers, each after
    the state of the one before came back (so each is handled, and saved), then ``get``."""
    async with asyncio.timeout(40):
        while True:  # the broker starts with the daemon
            try:
                async with aiomqtt.Client("127.0.0.1", port) as c:
                    await c.subscribe("devices/kitchen/state/reply", qos=1)
                    await c.subscribe("devices/kitchen/state", qos=1)
                    reply = await until_reply(
                        c, "devices/kitchen/get", b"", "devices/kitchen/state/reply"
                    )
                    for value in values:
                        payload = b'{"temperature": %.1f}' % value
                        await c.publish("devices/kitchen/telemetry", payload, qos=1)
                        await next_message(c, "devices/kitchen/state")
                    await c.publish("devices/kitchen/get", b"", qos=1)
                    reply = await next_message(c, "devices/kitchen/state/reply")
                    return state(reply)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


async def test_the_averages_survive_sigterm_and_sigkill(tmp_path: Path) -> None:
    state_file = tmp_path / "thermostat.sqlite3"
    port = free_port()
    daemon = start(port, state_file)
    try:
        assert await readings(port, [20.0, 22.0]) == {"last": 22.0, "avg": 21.0, "count": 2}
        assert daemon.stop(signal.SIGTERM) == 0, daemon.output
    finally:
        daemon.stop(signal.SIGKILL)

    daemon = start(port, state_file)
    try:
        # A routine restart: the kitchen goes on from its two readings.
        assert await readings(port, [26.0]) == {"last": 26.0, "avg": 22.666666666666668, "count": 3}
    finally:
        daemon.stop(signal.SIGKILL)  # no drain: only what was saved before the answer counts

    daemon = start(port, state_file)
    try:
        assert await readings(port, []) == {"last": 26.0, "avg": 22.666666666666668, "count": 3}
        assert daemon.stop(signal.SIGTERM) == 0, daemon.output
    finally:
        daemon.stop(signal.SIGKILL)
