"""Running the daemon (``python -m gateways run FILE``) as a subprocess, and an outside MQTT
client playing the devices."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from gateways.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "daemon_apps"


class Process:
    """``python -m gateways <args>`` (``run FILE``, ``worker FILE CHANNEL``) with its output
    collected; ``tests/daemon_apps`` is on its import path."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.args = args
        self.env = env
        # The examples' state files (examples/thermostat and chatbot, state:): one per daemon
        # unless the test gives one, so no test sees another's devices or conversations.
        folder = Path(tempfile.mkdtemp())
        state = {
            "THERMOSTAT_STATE": str(folder / "thermostat.sqlite3"),
            "CHATBOT_STATE": str(folder / "chatbot.sqlite3"),
            # The examples' web chat and monitoring ports: free ones, so no test needs 8080
            # or 9100 of the machine.
            "WEBCHAT_PORT": str(free_port()),
            "MONITORING_PORT": str(free_port()),
            # The thermostat's simulated devices (on an embedded broker) publish kitchen's
            # readings too: off, unless the test turns them on.
            "THERMOSTAT_SIMULATE": "0",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateways", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(APPS), **state, **env},
            stdin=subprocess.DEVNULL,  # a console gateway in the file reads nothing
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = ""

    def stop(self, sig: signal.Signals | None = signal.SIGTERM, timeout: float = 20) -> int:
        """Send ``sig`` (``None``: none, the process is stopping already) and wait for the exit."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.output += out.decode(errors="replace")
        return self.process.returncode


class Daemon(Process):
    """``python -m gateways run <file>`` with its output collected."""

    def __init__(self, config: Path, env: dict[str, str], cwd: Path = ROOT) -> None:
        super().__init__(["run", str(config)], env, cwd)


@asynccontextmanager
async def client(mosquitto: Any, *filters: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        for topic_filter in filters:
            await c.subscribe(topic_filter, qos=1)
        yield c


async def next_message(c: aiomqtt.Client, topic: str, timeout: float = 10) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in c.messages:
            if message.topic.value == topic:
                return message
    raise AssertionError("unreachable")


async def until_reply(
    c: aiomqtt.Client, topic: str, payload: bytes, reply_topic: str, timeout: float = 15
) -> aiomqtt.Message:
    """Publish until a reply comes: the daemon may still be connecting or reconnecting."""
    async with asyncio.timeout(timeout):
        while True:
            await c.publish(topic, payload, qos=1)
            try:
                return await next_message(c, reply_topic, timeout=0.5)
            except TimeoutError:
                continue


def state(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    result: dict[str, Any] = json.loads(message.payload)
    return result


class Publisher:
    """Publishes sequence numbers 0..messages-1 round-robin to ``devices/d<n>/telemetry``,
    each until the broker acknowledges it (it reconnects through a broker restart), paced to
    ``rate`` a second, and runs a fault when the count acknowledged reaches its mark. The
    payload is ``payload(sequence)``: the number as text unless given."""

    def __init__(
        self,
        broker: Any,
        qos: int,
        messages: int,
        devices: int,
        rate: float,
        faults: dict[int, Any],
        payload: Callable[[int], bytes] = lambda sequence: str(sequence).encode(),
    ) -> None:
        self.broker = broker
        self.qos = qos
        self.messages = messages
        self.devices = devices
        self.rate = rate
        self.faults = faults
        self.payload = payload
        self.acknowledged: list[int] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        sequence = 0
        while sequence < self.messages:
            try:
                async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
                    while sequence < self.messages:
                        topic = f"devices/d{sequence % self.devices}/telemetry"
                        async with asyncio.timeout(5):
                            await client.publish(topic, self.payload(sequence), qos=self.qos)
                        self.acknowledged.append(sequence)
                        sequence += 1
                        fault = self.faults.pop(sequence, None)
                        if fault is not None:
                            await fault()
                        # Paced to the rate overall (the faults above take their time too).
                        await asyncio.sleep(max(0.0, start + sequence / self.rate - loop.time()))
            except (aiomqtt.MqttError, TimeoutError):
                await asyncio.sleep(0.2)  # the broker is restarting: publish that one again
