"""Flow control at QoS 0 against a real Mosquitto: a slow consumer makes the gateway stop
reading its connection (``gateways.mqtt.flow``) instead of buffering what the broker sends,
and a consumer that awaits a PUBACK while reading is paused is not deadlocked."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from prometheus_client import REGISTRY

from gateways.base import GatewayError
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.mqtt.acks import ManualAcks
from gateways.mqtt.flow import ReadFlow
from gateways.mqtt.options import MqttFlow

pytestmark = pytest.mark.mosquitto

FLOW = {"high_water": 200, "low_water": 100, "limit": 1000}
#: Messages read after the high-water mark, before reading stops: paho reads one packet per
#: read on plain TCP, plus one per outgoing message in flight.
SLACK = 20
PAYLOAD = b"x" * 1024


class Flood:
    """A publisher in a thread of its own (paho's network loop), so that the event loop the
    gateway runs in does not pace it: ``n`` messages at QoS 0 as fast as it can."""

    def __init__(self, host: str, port: int, n: int, topic: str = "flood/a") -> None:
        self.n = n
        self.topic = topic
        self.sent = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood")
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.client.loop_start()
        try:
            for _ in range(self.n):
                self.client.publish(self.topic, PAYLOAD, qos=0)
                self.sent += 1
            while self.client.want_write():
                self.done.wait(0.01)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.done.set()

    def __enter__(self) -> Flood:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=60)


def flow_of(gateway: MqttGateway) -> ReadFlow:
    flow = gateway.flow
    assert flow is not None
    return flow


async def wait_flood(flood: Flood, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not flood.done.is_set():
            await asyncio.sleep(0.05)


async def until_served(gateway_app: Any, probe: Any, within: float = 30.0) -> None:
    """Publish a marker until the application received one: the broker may drop the
    first ones behind the flood (QoS 0, its queue full), but the gateway goes on serving."""
    async with asyncio.timeout(within):
        while not gateway_app.markers:
            await probe.publish("flood/end", b"end", qos=0)
            await asyncio.sleep(0.5)


class SlowApp:
    """Each scope handles a message in ``delay`` seconds. ``publish``: ``"paused"``, when the
    gateway's reading is paused it first publishes at QoS 1, awaiting the PUBACK;
    ``"always"``, it does so for every message; ``"never"``."""

    def __init__(self, delay: float, publish: str = "never") -> None:
        self.delay = delay
        self.publish = publish
        self.gateway: MqttGateway | None = None
        self.received = 0
        self.markers = 0
        self.published = 0
        self.published_while_paused = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            event = await receive()
            if event["type"] == "mqtt.disconnect":
                return
            if event["type"] != "mqtt.message":
                continue
            if event["topic"] == "flood/end":
                self.markers += 1
                continue
            self.received += 1
            paused = self.gateway is not None and flow_of(self.gateway).paused
            if self.publish == "always" or (self.publish == "paused" and paused):
                await send({"type": "mqtt.publish", "topic": "out/x", "payload": b"p", "qos": 1})
                self.published += 1
                self.published_while_paused += paused
            await asyncio.sleep(self.delay)


def gateway_for(app: Any, broker: str, **options: Any) -> MqttGateway:
    options = {
        "subscriptions": [{"topic": "flood/#"}],
        "subscribe_routes": False,
        "flow": FLOW,
        "max_queued_events": 20,
        **options,
    }
    return MqttGateway("flow", app, MqttGatewayOptions(broker=broker, **options))


async def test_a_slow_consumer_at_qos_0_pauses_reading_instead_of_buffering(
    mosquitto, mqtt_client, run_gateway
):
    app = SlowApp(delay=0.001)
    gateway = await run_gateway(gateway_for(app, mosquitto.url))
    flow = flow_of(gateway)
    with Flood(mosquitto.host, mosquitto.port, 20_000) as flood:
        await wait_flood(flood)
    async with mqtt_client(mosquitto.url) as probe:
        await until_served(app, probe)
    assert flow.most_buffered <= FLOW["high_water"] + SLACK, flow.most_buffered
    assert flow.pauses > 0
    assert app.received > FLOW["high_water"]
    assert gateway.connected


async def test_a_consumer_that_publishes_at_qos_1_while_reading_is_paused_goes_on(
    mosquitto, mqtt_client, run_gateway
):
    app = SlowApp(delay=0.001, publish="paused")
    gateway = await run_gateway(gateway_for(app, mosquitto.url))
    app.gateway = gateway
    flow = flow_of(gateway)
    with Flood(mosquitto.host, mosquitto.port, 20_000) as flood:
        await wait_flood(flood)
    async with mqtt_client(mosquitto.url) as probe:
        await until_served(app, probe)
    # Each PUBACK came although reading was paused when the consumer sent its PUBLISH.
    assert app.published_while_paused >= 3, (app.published_while_paused, flow.pauses)
    # While it awaits a PUBACK the gateway reads on: up to the limit, then drops QoS 0.
    assert flow.most_buffered <= FLOW["limit"] + SLACK, flow.most_buffered


async def test_past_the_limit_qos_0_messages_are_dropped_and_counted(
    mosquitto, mqtt_client, run_gateway, caplog
):
    labels = {"gateway": "flow", "reason": "overflow"}
    before = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_dropped_total", labels) or 0
    # Every message awaits a PUBACK first: the gateway reads nearly all the time.
    app = SlowApp(delay=0.002, publish="always")
    flow_options = {"high_water": 20, "low_water": 10, "limit": 50}
    gateway = await run_gateway(gateway_for(app, mosquitto.url, flow=flow_options))
    app.gateway = gateway
    flow = flow_of(gateway)
    with (
        caplog.at_level(logging.WARNING, logger="gateways.mqtt"),
        Flood(mosquitto.host, mosquitto.port, 20_000) as flood,
    ):
        await wait_flood(flood)
        async with mqtt_client(mosquitto.url) as probe:
            await until_served(app, probe)
    after = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_dropped_total", labels) or 0
    assert flow.most_buffered <= flow_options["limit"] + SLACK, flow.most_buffered
    assert after > before
    assert any("drops QoS 0 messages" in r.getMessage() for r in caplog.records)


async def test_paused_longer_than_the_keepalive_the_connection_stays_up(
    mosquitto, run_gateway, caplog
):
    release = asyncio.Event()
    received = 0

    async def stuck(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        while (await receive())["type"] != "mqtt.disconnect":
            received += 1
            await release.wait()

    gateway = await run_gateway(gateway_for(stuck, mosquitto.url, keepalive=2))
    flow = flow_of(gateway)
    with (
        caplog.at_level(logging.WARNING, logger="gateways.mqtt"),
        Flood(mosquitto.host, mosquitto.port, 5_000) as flood,
    ):
        await wait_flood(flood)
        async with asyncio.timeout(10):
            while not flow.paused:
                await asyncio.sleep(0.05)
        # paho counts a connection dead after two keep-alives without a byte received.
        await asyncio.sleep(3 * 2)
        assert flow.paused
        release.set()
    assert gateway.connected
    lost = [r for r in caplog.records if "lost its connection" in r.getMessage()]
    assert not lost, lost


async def test_flow_control_finds_what_it_needs_in_the_installed_aiomqtt():
    """What ``ReadFlow`` reaches (its docstring): where aiomqtt 2.5 keeps them."""
    client = aiomqtt.Client("127.0.0.1", 1)
    paho = ManualAcks(client).paho
    flow = ReadFlow("check", client, paho, MqttFlow(), keepalive=60)
    assert not flow.paused
    assert flow.buffered == 0
    assert paho.on_socket_open.__self__ is client  # aiomqtt adds its reader there


async def test_flow_control_refuses_a_client_that_reads_otherwise():
    client = aiomqtt.Client("127.0.0.1", 1)
    paho = ManualAcks(client).paho
    paho.on_socket_open = None
    with pytest.raises(GatewayError, match="flow control cannot be set up"):
        ReadFlow("check", client, paho, MqttFlow(), keepalive=60)


def test_the_marks_must_be_in_order():
    with pytest.raises(ValueError, match="low_water"):
        MqttGatewayOptions(flow={"high_water": 10, "low_water": 10})
    with pytest.raises(ValueError, match="limit"):
        MqttGatewayOptions(flow={"high_water": 10, "limit": 5, "low_water": 1})
