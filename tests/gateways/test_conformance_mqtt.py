"""The MQTT gateway passes the gateway conformance kit against a real Mosquitto."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import pytest

from gateways.base import Gateway
from gateways.mqtt import MqttGateway
from gateways.mqtt.options import MqttGatewayOptions
from gateways.testing import Mosquitto
from gateways.testing.conformance import ConformanceHarness, GatewayConformance
from layer.types import ASGIApp

pytestmark = pytest.mark.mosquitto


class MqttHarness(ConformanceHarness):
    """Scope ``index`` is the topic ``conformance/<index>``; an outside client publishes."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.client: aiomqtt.Client | None = None

    def make_gateway(self, application: ASGIApp, options: dict[str, Any]) -> Gateway:
        return MqttGateway(
            "mqtt",
            application,
            MqttGatewayOptions(
                broker=self.broker.url,
                subscriptions=[{"topic": "conformance/#", "qos": 1}],
                **options,
            ),
        )

    async def trigger(self, gateway: Gateway, index: int) -> None:
        if self.client is None:
            self.client = aiomqtt.Client(self.broker.host, self.broker.port, timeout=5)
            async with asyncio.timeout(10):
                await self.client.__aenter__()
        async with asyncio.timeout(5):
            await self.client.publish(f"conformance/{index}", b"hello", qos=1)

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            async with asyncio.timeout(10):
                await client.__aexit__(None, None, None)


class TestMqttConformance(GatewayConformance):
    @pytest.fixture
    def harness(self, mosquitto: Mosquitto) -> MqttHarness:
        return MqttHarness(mosquitto)
