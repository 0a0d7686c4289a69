"""The MQTT gateway's connection has Nagle's algorithm off (``gateways.mqtt.client.no_delay``):
with it on, the answer a consumer publishes after a QoS 1 message's PUBACK waited for the
broker's delayed TCP ACK, some 40 ms a round trip (``bench/cluster_ownership.py``)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gateways.mqtt import MqttGateway, MqttGatewayOptions

pytestmark = pytest.mark.mosquitto


async def test_the_broker_connection_sends_without_delay(
    mosquitto: Any, recording_app: Any, run_gateway: Any
) -> None:
    options = MqttGatewayOptions(broker=mosquitto.url, subscriptions=[{"topic": "t/#"}])
    gateway = await run_gateway(MqttGateway("mqtt", recording_app(), options))
    # The socket of the paho client under aiomqtt (the one the gateway reads and writes).
    sock = gateway._client._client.socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
