"""docs/adapters.md, "Transports that call back": the UDP lines gateway feeds a synchronous
``asyncio.DatagramProtocol`` callback through ``Gateway.dispatch_nowait``; it conforms, and a
full queue drops and counts, or refuses, as ``when_full`` says.

Run after ``pip install -e examples/lines_gateway`` (as .ci/run does)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from lines_gateway.udp import LinesUdpGateway, LinesUdpOptions
from prometheus_client import REGISTRY

from gateways.base import Gateway, GatewayError, GatewayOptions, ScopeInstance
from gateways.testing.conformance import ConformanceHarness, TransportConformance
from layer.types import ASGIApp, Message, Receive, Scope, Send


class Client(asyncio.DatagramProtocol):
    """A UDP client socket; what it receives lands in ``received``."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)

    @classmethod
    async def to(cls, port: int) -> Client:
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(
            cls, remote_addr=("127.0.0.1", port)
        )
        client.transport = transport
        return client

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            await asyncio.sleep(0)  # the socket closes in the loop's next turn


class UdpHarness(ConformanceHarness):
    """Scope ``index`` is the key ``k<index>``, each from a UDP socket of its own."""

    def __init__(self) -> None:
        self.clients: dict[int, Client] = {}

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return LinesUdpGateway("udp", application, LinesUdpOptions(port=0, **options))

    async def client(self, gateway: Gateway, index: int) -> Client:
        assert isinstance(gateway, LinesUdpGateway)
        if index not in self.clients:
            self.clients[index] = await Client.to(gateway.port)
        return self.clients[index]

    async def trigger(self, gateway: Gateway, index: int) -> None:
        (await self.client(gateway, index)).send(f"k{index} hello".encode())

    def reply(self, index: int) -> Message | None:
        return {"type": "lines.send", "text": "pong"}

    async def received_reply(self, gateway: Gateway, index: int) -> None:
        assert await self.clients[index].received.get() == f"k{index} pong".encode()

    async def trigger_malformed(self, gateway: Gateway, index: int) -> bool:
        (await self.client(gateway, index)).send(b"no-space-here")
        return True

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


class TestLinesUdpConformance(TransportConformance):
    step_timeout = 5.0

    @pytest.fixture
    def harness(self) -> UdpHarness:
        return UdpHarness()


class Stuck:
    """An application whose instances take ``lines.connect`` and then wait for ``go``."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.lines: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "lines.disconnect":
            if event["type"] == "lines.line":
                await self.go.wait()
                self.lines.append(event["text"])
                await send({"type": "lines.send", "text": f"got {event['text']}"})


@pytest.fixture
def stuck() -> Stuck:
    return Stuck()


async def started(app: Stuck, **options: Any) -> LinesUdpGateway:
    gateway = LinesUdpGateway("udp-full", app, LinesUdpOptions(port=0, **options))
    await gateway.start()
    return gateway


def dropped(gateway: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "asgi_gateway_events_dropped_total", {"gateway": gateway, "reason": reason}
    )
    return value or 0.0


async def test_when_full_drop_loses_the_datagram_and_counts_it(
    stuck: Stuck, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    before = dropped("udp-full", "full")
    async with asyncio.timeout(5):
        gateway = await started(stuck, max_queued_events=1, when_full="drop")
        client = await Client.to(gateway.port)
        try:
            client.send(b"k 1")  # taken by the instance, which waits for go
            while len(gateway.instances) < 1 or not gateway.stats.received:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            client.send(b"k 2")  # queued: the queue holds one
            client.send(b"k 3")  # dropped
            while dropped("udp-full", "full") < before + 1:
                await asyncio.sleep(0.01)
            stuck.go.set()
            assert await client.received.get() == b"k got 1"
            assert await client.received.get() == b"k got 2"
        finally:
            await client.close()
            await gateway.stop(drain_timeout=1)
    assert stuck.lines == ["1", "2"]
    assert dropped("udp-full", "full") == before + 1
    assert "dropped an event for scope 'k': its queue is full" in caplog.text


async def test_when_full_refuse_answers_busy_and_counts_nothing(stuck: Stuck) -> None:
    before = dropped("udp-full", "full")
    async with asyncio.timeout(5):
        gateway = await started(stuck, max_queued_events=1, when_full="refuse")
        client = await Client.to(gateway.port)
        try:
            client.send(b"k 1")
            while not gateway.instances:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            client.send(b"k 2")
            client.send(b"k 3")
            assert await client.received.get() == b"BUSY k"
            stuck.go.set()
            assert await client.received.get() == b"k got 1"
            assert await client.received.get() == b"k got 2"
        finally:
            await client.close()
            await gateway.stop(drain_timeout=1)
    assert dropped("udp-full", "full") == before


class Plain(Gateway):
    protocol = "plain"

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        raise GatewayError(f"plain cannot do {message['type']!r}")


async def test_dispatch_nowait_opens_a_scope_that_takes_its_first_event() -> None:
    """With ``max_queued_events`` 1 the connect event fills the queue: the first event of a
    scope opened by ``dispatch_nowait`` is taken anyway; unknown scopes and modes are errors."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (event := await receive())["type"] != "plain.disconnect":
            seen.append(event["type"])

    gateway = Plain("plain", app, GatewayOptions(max_queued_events=1))
    await gateway.start()
    try:
        scope = gateway.new_scope(scope_key="a")
        assert gateway.dispatch_nowait("a", {"type": "plain.x"}, scope, when_full="refuse")
        with pytest.raises(GatewayError, match="no live scope 'b'"):
            gateway.dispatch_nowait("b", {"type": "plain.x"}, when_full="drop")
        with pytest.raises(GatewayError, match="when_full='wait'"):
            gateway.dispatch_nowait("a", {"type": "plain.x"}, when_full="wait")  # type: ignore[arg-type]
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
    finally:
        await gateway.stop(drain_timeout=1)
    assert seen == ["plain.connect", "plain.x"]
    assert not gateway.dispatch_nowait("a", {"type": "plain.x"}, scope, when_full="drop")
