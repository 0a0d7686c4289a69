"""Shared fixtures: real servers on free loopback ports, an outside MQTT client, a recording
ASGI application and a gateway runner that always stops what it started."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.base import GatewayError
from gateways.testing import Mosquitto, free_port

# -- Mosquitto (gateways.testing, a public test utility) -----------------------------------


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """``free_port()``: a TCP port free on 127.0.0.1 right now."""
    return free_port


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``make_mosquitto(extra_config="")``: start another Mosquitto on a free port (its files
    in a directory of its own under ``tmp_path``); every one is killed at teardown."""
    started: list[Mosquitto] = []

    def make(extra_config: str = "") -> Mosquitto:
        directory = tmp_path / f"mosquitto-{len(started)}"
        directory.mkdir()
        broker = Mosquitto(directory, free_port(), extra_config)
        started.append(broker)
        try:
            broker.start()
        except GatewayError as exc:
            pytest.fail(str(exc))
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.kill()


@pytest.fixture
def mosquitto(make_mosquitto: Callable[..., Mosquitto]) -> Mosquitto:
    """A running Mosquitto on a free port, stopped at teardown."""
    return make_mosquitto()


# -- an outside MQTT client -----------------------------------------------------------------


class MqttProbe:
    """An independent aiomqtt client: subscribe, publish, and collect what arrives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def _read(self) -> None:
        async for message in self.client.messages:
            self.received.put_nowait(message)

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        """Subscribe and wait for the SUBACK."""
        async with asyncio.timeout(5):
            await self.client.subscribe(topic_filter, qos)

    async def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Publish (and wait for the PUBACK/PUBCOMP at QoS 1/2). ``properties`` uses paho's
        names, e.g. ``{"ContentType": "text/plain", "UserProperty": [("a", "1")]}``."""
        paho = None
        if properties:
            paho = Properties(PacketTypes.PUBLISH)
            for name, value in properties.items():
                setattr(paho, name, value)
        async with asyncio.timeout(5):
            await self.client.publish(topic, payload, qos=qos, retain=retain, properties=paho)

    async def next(self, within: float = 5.0) -> aiomqtt.Message:
        """The next message received; fails the test after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self.received.get()
        except TimeoutError:
            pytest.fail(f"no MQTT message arrived at the probe within {within} s")

    async def collect(self, count: int, within: float = 5.0) -> list[aiomqtt.Message]:
        """The next ``count`` messages, all within ``within`` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        messages: list[aiomqtt.Message] = []
        for _ in range(count):
            remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
            messages.append(await self.next(remaining))
        return messages

    async def nothing(self, wait: float = 0.3) -> None:
        """Fail if a message arrives within ``wait`` seconds (as asgiref's receive_nothing)."""
        await asyncio.sleep(wait)
        if not self.received.empty():
            message = self.received.get_nowait()
            pytest.fail(f"unexpected message on {message.topic}: {message.payload!r}")


@pytest.fixture
def mqtt_client() -> Callable[..., contextlib.AbstractAsyncContextManager[MqttProbe]]:
    """``async with mqtt_client(url, protocol=5) as probe:`` an outside client of a broker."""

    @contextlib.asynccontextmanager
    async def connect(url: str, *, protocol: int | str = "3.1.1") -> AsyncIterator[MqttProbe]:
        host, _, port = url.removeprefix("mqtt://").rpartition(":")
        version = aiomqtt.ProtocolVersion.V5 if str(protocol) == "5" else None
        client = aiomqtt.Client(host, int(port), protocol=version, timeout=5)
        async with asyncio.timeout(10):
            await client.__aenter__()
        probe = MqttProbe(client)
        reader = asyncio.create_task(probe._read())
        try:
            yield probe
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader
            with contextlib.suppress(aiomqtt.MqttError):
                async with asyncio.timeout(10):
                    await client.__aexit__(None, None, None)

    return connect


# -- a recording ASGI application -----------------------------------------------------------


class ScopeLog:
    """One application instance as the recording app saw it."""

    def __init__(self, scope: dict[str, Any], send: Callable[[Any], Any]) -> None:
        self.scope = scope
        self.send = send
        self.events: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def __repr__(self) -> str:
        return f"<ScopeLog {self.scope.get('scope_key')!r} {self.types} errors={self.errors}>"


class RecordingApp:
    """A raw ASGI application recording every instance's scope and events.

    Each instance runs until its ``<protocol>.disconnect`` event. ``on_event(log, event)``,
    if given, runs after each other event (to make the instance send); what it raises is
    kept in ``log.errors``.
    """

    def __init__(self, on_event: Callable[[ScopeLog, dict[str, Any]], Any] | None = None) -> None:
        self.on_event = on_event
        self.logs: list[ScopeLog] = []
        self._changed: asyncio.Condition | None = None

    def __repr__(self) -> str:
        return f"<RecordingApp {self.logs}>"

    def by_key(self, key: str) -> list[ScopeLog]:
        return [log for log in self.logs if log.scope.get("scope_key") == key]

    async def _notify(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            self._changed.notify_all()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        log = ScopeLog(scope, send)
        self.logs.append(log)
        while True:
            event = await receive()
            log.events.append(event)
            if not event["type"].endswith(".disconnect") and self.on_event is not None:
                try:
                    await self.on_event(log, event)
                except Exception as exc:
                    log.errors.append(exc)
            await self._notify()
            if event["type"].endswith(".disconnect"):
                return

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds after some event; fail after ``within`` s."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"condition not met within {within} s; recorded: {self.logs}")


@pytest.fixture
def recording_app() -> Callable[..., RecordingApp]:
    """``recording_app(on_event=None)``: a fresh ``RecordingApp``."""
    return RecordingApp


# -- running gateways -----------------------------------------------------------------------


@pytest.fixture
async def run_gateway() -> AsyncIterator[Callable[[Any], Any]]:
    """``await run_gateway(gateway)`` starts it (10 s bound); every gateway started is
    stopped at teardown, also when the test failed."""
    started: list[Any] = []

    async def start(gateway: Any) -> Any:
        started.append(gateway)
        async with asyncio.timeout(10):
            await gateway.start()
        return gateway

    yield start
    for gateway in reversed(started):
        async with asyncio.timeout(15):
            await gateway.stop(drain_timeout=2)
