"""The MQTT gateway on a real Mosquitto goes on when instances end by themselves at the
``max_scopes`` bound (issue 26, item 2): consumers that raise on a bad payload, while other
scopes' messages keep opening scopes and evicting the least recently used."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateways.mqtt import MqttGateway, MqttGatewayOptions

# A hang is the event loop spinning, which blocks asyncio's timers: pytest-timeout ends it.
pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(30)]

TOPICS = 12
ROUNDS = 20


async def bad_payload_raises(scope: Any, receive: Any, send: Any) -> None:
    """Answers ``ping`` on ``reply/<topic>``; on ``bad``, awaits a few times, then raises."""
    while (event := await receive())["type"] != "mqtt.disconnect":
        if event["type"] != "mqtt.message":
            continue
        if event["payload"] == b"bad":
            for _ in range(5):
                await asyncio.sleep(0)
            raise ValueError("bad payload")
        await send({"type": "mqtt.publish", "topic": f"reply/{event['topic']}", "payload": b"pong"})


@pytest.mark.parametrize("qos", [0, 1])
async def test_scopes_that_raise_at_the_bound_do_not_stop_the_gateway(
    mosquitto: Any, mqtt_client: Any, run_gateway: Any, qos: int
) -> None:
    options = MqttGatewayOptions(
        broker=mosquitto.url,
        subscriptions=[{"topic": "t/#", "qos": qos}],
        max_scopes=2,
        idle_timeout=None,
    )
    gateway = await run_gateway(MqttGateway("bound", bad_payload_raises, options))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.subscribe("reply/#")
        for round_ in range(ROUNDS):
            for index in range(TOPICS):
                payload = "bad" if (round_ + index) % 2 else "ping"
                await probe.client.publish(f"t/{index}", payload, qos=qos)
        # The gateway still answers, on every topic.
        for index in range(TOPICS):
            await probe.publish(f"t/{index}", "ping", qos=qos)
            while (await probe.next(within=10)).topic.value != f"reply/t/{index}":
                pass
    assert len(gateway.instances) <= 2
