"""A packet from the broker that paho refuses as malformed, sent again at every connection:
the gateway logs each loss as one WARNING without a traceback and keeps reconnecting, and
why paho refused it is in the DEBUG log of aiomqtt's ``mqtt`` logger, where docs/mqtt.md
sends the operator.

Mosquitto never sends such a packet (it refuses U+0000 in a property string from the
publisher, MQTT 5.0 section 1.5.4 [MQTT-1.5.4-2]), so a broker of a few lines here speaks
just enough MQTT 5 on a loopback port: CONNACK, SUBACK, PINGRESP, and after each SUBACK a
QoS 1 PUBLISH whose Response Topic holds U+0000, as a broker that relays it unchecked and
keeps it in the session would send it again at every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.mqtt import MqttGateway, MqttGatewayOptions


def varint(value: int) -> bytes:
    """A Variable Byte Integer (MQTT 5.0 section 1.5.5)."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + varint(len(body)) + body


def utf8(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


#: PUBLISH, QoS 1, packet id 7, Response Topic (0x08) "a\0b" (MQTT 5.0 section 3.3).
POISON = packet(
    0x32, utf8(b"dev/a") + (7).to_bytes(2, "big") + varint(6) + b"\x08" + utf8(b"a\x00b") + b"{}"
)


class TinyBroker:
    """Counts connections; answers CONNECT, SUBSCRIBE and PINGREQ; sends ``POISON``."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"mqtt://{host}:{port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await self.converse(reader, writer)
        finally:
            # Also when the loop's teardown cancels this handler: Python 3.11's start_server
            # closes the transport of a handler that raised, not of one that was cancelled.
            self.writers.discard(writer)
            writer.close()

    async def converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            kind = (await reader.readexactly(1))[0] >> 4
            length, shift = 0, 0
            while True:
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body = await reader.readexactly(length)
            if kind == 1:  # CONNECT -> CONNACK: no session present, success, no properties
                writer.write(packet(0x20, b"\x00\x00\x00"))
            elif kind == 8:  # SUBSCRIBE -> SUBACK granting QoS 1 to each filter
                filters = body[2:].count(b"dev/")
                writer.write(packet(0x90, body[:2] + b"\x00" + b"\x01" * filters))
                writer.write(POISON)
            elif kind == 12:  # PINGREQ -> PINGRESP
                writer.write(packet(0xD0, b""))
            elif kind == 14:  # DISCONNECT
                break
            await writer.drain()

    async def __aenter__(self) -> TinyBroker:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        for writer in list(self.writers):
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def tiny() -> AsyncIterator[TinyBroker]:
    async with TinyBroker() as broker:
        yield broker


async def test_a_packet_paho_refuses_costs_a_warning_per_reconnect_and_is_explained_at_debug(
    tiny: TinyBroker, recording_app: Any, run_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = recording_app()
    options = MqttGatewayOptions(
        broker=tiny.url,
        protocol="5",
        subscriptions=[{"topic": "dev/#", "qos": 1}],
        reconnect={"initial": 0.05, "maximum": 0.5},
    )
    caplog.set_level(logging.INFO, logger="gateways.mqtt")
    caplog.set_level(logging.DEBUG, logger="mqtt")  # last: the capture handler takes DEBUG
    await run_gateway(MqttGateway("mqtt", app, options))
    async with asyncio.timeout(10):
        while tiny.connections < 3:
            await asyncio.sleep(0.01)
    lost = [r for r in caplog.records if "lost its connection" in r.getMessage()]
    assert len(lost) >= 2, caplog.text
    assert all(r.levelno == logging.WARNING for r in lost)
    why = [r for r in caplog.records if r.name == "mqtt" and "malformed" in r.getMessage()]
    assert len(why) >= len(lost), caplog.text
    assert "[MQTT-1.5.4-2] Null found in UTF-8 data" in why[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert app.logs == []


def test_the_tiny_broker_closes_a_connection_its_loop_cancels() -> None:
    """A client gone (FIN) and the loop ending before the handler reads the EOF: the
    teardown cancels the handler, whose connection is closed all the same (it was left to
    the garbage collector, a ResourceWarning in whichever test ran then: issue 26)."""
    accepted: list[asyncio.StreamWriter] = []

    async def main() -> None:
        broker = TinyBroker()
        await broker.__aenter__()
        host, port = broker.url.removeprefix("mqtt://").split(":")
        _, client = await asyncio.open_connection(host, int(port))
        while not broker.writers:
            await asyncio.sleep(0.01)
        accepted.extend(broker.writers)
        client.close()
        assert broker.server is not None
        broker.server.close()  # not __aexit__: the runner's teardown cancels the handler

    with asyncio.Runner() as runner:
        runner.run(main())
    assert accepted
    assert all(w.get_extra_info("socket").fileno() == -1 for w in accepted)
