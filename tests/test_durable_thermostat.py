"""The thermostat example keeps its devices' state across restarts (issue 21's done-when):
the README's first command (the in-process broker, the in-memory layer, the console) with its
``state:`` section's sqlite file, stopped with SIGTERM and killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemon_helpers import ROOT, Daemon, next_message, state, until_reply
from terminal_helpers import Reader

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


# -- temp addresses the device's scope; the watchdog timer outlives the process ------------


class Console:
    """The thermostat daemon with its console chat in a pseudo-terminal, on a real broker."""

    def __init__(self, tmp_path: Path, mosquitto: Any, **env: str) -> None:
        master, slave = os.openpty()
        self.master = master
        self.stderr = tmp_path / "thermostat.log"
        with self.stderr.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateways", "run", str(EXAMPLE)],
                cwd=ROOT,
                env={
                    **os.environ,
                    "MQTT_URL": mosquitto.url,
                    "THERMOSTAT_STATE": str(tmp_path / "thermostat.sqlite3"),
                    "LOG_LEVEL": "DEBUG",
                    **env,
                },
                stdin=slave,
                stdout=slave,
                stderr=log,
            )
        os.close(slave)
        self.out = Reader(master, self.process, self.stderr)
        self.out.expect("talking to thermostat")

    def say(self, line: str, answer: str) -> None:
        self.out.seen = len(self.out.text)
        os.write(self.master, line.encode() + b"\n")
        self.out.expect(answer)

    def logged(self, wanted: str, within: float = 20) -> None:
        """Wait until the daemon's log (stderr) has ``wanted``."""
        deadline = time.monotonic() + within
        while wanted not in self.stderr.read_text(errors="replace"):
            if time.monotonic() > deadline:
                pytest.fail(f"{wanted!r} not logged in {within} s:\n{self.stderr.read_text()}")
            time.sleep(0.05)

    def close(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        os.close(self.master)


def publish(mosquitto: Any, values: list[float]) -> None:
    """Kitchen's readings at QoS 1, then wait for the count retained with the last one."""

    async def run() -> None:
        async with asyncio.timeout(20), aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe("devices/kitchen/state", qos=1)
            for value in values:
                await c.publish(
                    "devices/kitchen/telemetry", b'{"temperature": %.1f}' % value, qos=1
                )
            async for received in c.messages:
                if json.loads(received.payload)["count"] == len(values):  # type: ignore[arg-type]
                    return

    asyncio.run(run())


@pytest.mark.mosquitto
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_temp_starts_a_device_scope_and_the_watchdog_fires_after_a_restart(
    tmp_path: Path, mosquitto: Any, stop: signal.Signals
) -> None:
    env = {"THERMOSTAT_IDLE_TIMEOUT": "0.5", "THERMOSTAT_WATCHDOG": "10"}
    console = Console(tmp_path, mosquitto, **env)
    try:
        console.say("temp garage", "thermostat: No reading from garage yet.")
        publish(mosquitto, [20.0, 22.0])
        # The kitchen's scope ends on idle_timeout; `temp` starts it again, its state loaded.
        console.logged("ending scope 'devices/kitchen' (idle)")
        console.say("temp kitchen", "thermostat: kitchen: 22.0 °C, average 21.0 °C over 2 readings")
        # The watchdog (10 s after the last reading) has not fired yet.
        console.process.send_signal(stop)
        assert console.process.wait(timeout=20) == (-stop if stop == signal.SIGKILL else 0)
        assert "has not reported" not in console.out.text
    finally:
        console.close(signal.SIGKILL)

    console = Console(tmp_path, mosquitto, **env)
    try:
        # The next daemon fires the stored watchdog into the alerts conversation...
        console.out.expect("[#alerts] thermostat: Alert: kitchen has not reported for")
        # ... and answers from the kitchen's stored state, though no reading came since.
        console.say("temp kitchen", "thermostat: kitchen: 22.0 °C, average 21.0 °C over 2 readings")
    finally:
        console.close(signal.SIGTERM)
    assert console.process.returncode == 0, console.stderr.read_text()
    assert console.out.text.count("has not reported") == 1
