"""At least once with a channel layer (issue 26, item 4): a message its consumer handled is
acknowledged when the consumer asks for its next item, even one from the channel layer, and
is never blamed for what a later layer-message handler does. On a real Mosquitto with
persistence, ``consumers.MqttConsumer`` and the in-memory layer."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY

from consumers import MqttConsumer
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from layer import InMemoryChannelLayer

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.timeout(60),
]

_names = itertools.count()
TOPICS = ("t/1", "t/2")


class Relay(MqttConsumer):
    """Handles every message fine and posts itself a layer message whose handler fails.

    Scope ``t/2`` takes a layer message before its MQTT message, so that between the two
    scopes the layer message after the MQTT one comes in a turn that asks the layer first
    and in one that asks the scope first (the consumer alternates)."""

    handled: ClassVar[list[tuple[str, bytes, bool]]] = []
    layer_turns: asyncio.Event
    mode = "raise"

    async def connect(self) -> None:
        if self.scope["topic"] == "t/2":
            await self.channel_layer.send(self.channel_name, {"type": "warm.up"})

    async def warm_up(self, message: Any) -> None:
        pass

    async def receive(self, message: Any) -> None:
        type(self).handled.append((message["topic"], message["payload"], message["dup"]))
        await self.channel_layer.send(self.channel_name, {"type": "after.message"})

    async def after_message(self, message: Any) -> None:
        type(self).layer_turns.set()
        if self.mode == "raise":
            raise RuntimeError("a bug in a layer-message handler")
        await asyncio.Event().wait()  # "block": until cancelled, deaf to its disconnect


def settings(broker: Any, name: str) -> MqttGatewayOptions:
    return MqttGatewayOptions(
        broker=broker.url,
        protocol="5",
        client_id=name,
        clean_start=False,
        subscriptions=[{"topic": "t/#", "qos": 1}],
        idle_timeout=None,
        disconnect_grace=0.2,
    )


async def serve(
    name: str, broker: Any, mqtt_client: Any, *, publish: bool, want: int, within: float = 10
) -> None:
    """A gateway on ``name``'s persistent session: publish one message on each of TOPICS
    if ``publish``, wait until ``want`` messages were handled, then stop it."""
    layer = InMemoryChannelLayer()
    gateway = MqttGateway(name, Relay.as_asgi(), settings(broker, name), channel_layer=layer)
    await gateway.start()
    try:
        if publish:
            async with mqtt_client(broker.url) as probe:
                for topic in TOPICS:
                    await probe.publish(topic, topic, qos=1)
        async with asyncio.timeout(within):
            while len(Relay.handled) < want:
                await asyncio.sleep(0.02)
    finally:
        await gateway.stop(drain_timeout=0.3)


@pytest.mark.parametrize("mode", ["raise", "block"])
async def test_a_handled_message_is_not_blamed_for_a_later_layer_handler(
    make_mosquitto: Any, mqtt_client: Any, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """``raise``: the layer handler raises; ``block``: it is still running at shutdown and
    is cancelled after the drain. Either way each message was handled: acknowledged, not
    counted failed, not logged as raising, not delivered again after a restart."""
    broker = make_mosquitto(persistence=True)
    name = f"acks-layer-{next(_names)}"
    Relay.handled = []
    Relay.mode = mode
    Relay.layer_turns = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gateways.mqtt")
    await serve(name, broker, mqtt_client, publish=True, want=len(TOPICS))
    assert sorted(Relay.handled) == [("t/1", b"t/1", False), ("t/2", b"t/2", False)]
    assert Relay.layer_turns.is_set()
    blamed = [r.getMessage() for r in caplog.records if "raised on a message" in r.getMessage()]
    assert blamed == []
    failed = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_failed_total", {"gateway": name})
    assert not failed

    Relay.handled = []
    Relay.mode = "raise"
    with pytest.raises(TimeoutError):  # nothing comes again: each was acknowledged
        await serve(name, broker, mqtt_client, publish=False, want=1, within=2)
    assert Relay.handled == []
