"""Events addressed to a scope by its gateway and key (``layer.addressing``), on a real
Mosquitto and the console: delivered to a live scope, or starting one with its state."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from consumers import (
    ChatConsumer,
    JsonMqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    route,
)
from gateways.console import ConsoleGateway, ConsoleGatewayOptions
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from layer import InMemoryChannelLayer
from layer.addressing import SCOPE_EVENT, scope_channel, send_to_scope
from layer.state import MemoryStateStore, StateKey

pytestmark = pytest.mark.mosquitto


class Count(BaseModel):
    readings: int = 0


class Device(JsonMqttConsumer):
    """Counts a device's readings (durable) and answers ``device.query`` with the count."""

    state_model = Count
    state_name = "test.device"
    opened: ClassVar[list[dict[str, Any]]] = []

    async def connect(self) -> None:
        Device.opened.append(dict(self.scope))

    async def receive_json(self, data: Any, message: Any) -> None:
        self.state.readings += 1

    async def device_query(self, message: dict[str, Any]) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.send(
            message["reply_channel"],
            {
                "type": "device.answer",
                "device_id": self.scope["route"]["kwargs"]["device_id"],
                "pattern": self.scope["route"]["pattern"],
                "readings": self.state.readings,
            },
        )


def device_app() -> Any:
    device = Device.as_asgi()
    return ProtocolTypeRouter(
        {
            "mqtt": TopicRouter(
                [
                    route("devices/{device_id}/telemetry", device),
                    route("devices/{device_id}/get", device),
                ]
            )
        }
    )


def device_gateway(broker: str, layer: InMemoryChannelLayer, store: Any) -> MqttGateway:
    options = MqttGatewayOptions(
        broker=broker, route_qos=1, scopes=[{"filter": "devices/+/+", "levels": 2}]
    )
    gateway = MqttGateway("devices", device_app(), options, channel_layer=layer)
    gateway.state_store = store
    return gateway


async def ask(layer: InMemoryChannelLayer, key: str) -> dict[str, Any]:
    reply = await layer.new_channel("answers.")
    await send_to_scope(layer, "devices", key, {"type": "device.query", "reply_channel": reply})
    async with asyncio.timeout(5):
        return await layer.receive(reply)


async def test_an_addressed_event_starts_the_scope_with_its_state(mosquitto, run_gateway):
    Device.opened = []
    layer, store = InMemoryChannelLayer(), MemoryStateStore()
    stored = json.dumps({"version": 1, "state": {"readings": 7}}).encode()
    await store.save(
        StateKey("test.device", "devices", "devices/kitchen"), stored, expect_version=None
    )
    gateway = device_gateway(mosquitto.url, layer, store)
    await run_gateway(gateway)

    answer = await ask(layer, "devices/kitchen")

    # Routed on the key, against the routes' first two levels; the state was loaded.
    assert answer == {
        "type": "device.answer",
        "device_id": "kitchen",
        "pattern": "devices/{device_id}",
        "readings": 7,
    }
    (scope,) = Device.opened
    assert scope["topic"] is None
    assert scope["subscription"] is None
    assert scope["scope_key"] == "devices/kitchen"
    # A device nobody heard of answers too, with an empty state.
    assert (await ask(layer, "devices/garage"))["readings"] == 0


async def test_an_addressed_event_reaches_the_live_scope_in_order(
    mosquitto, mqtt_client, run_gateway
):
    Device.opened = []
    layer, store = InMemoryChannelLayer(), MemoryStateStore()
    await run_gateway(device_gateway(mosquitto.url, layer, store))
    async with mqtt_client(mosquitto.url) as probe:
        for value in range(3):
            await probe.publish("devices/kitchen/telemetry", json.dumps({"t": value}), qos=1)
        for _ in range(50):
            answer = await ask(layer, "devices/kitchen")
            if answer["readings"] == 3:
                break
            await asyncio.sleep(0.05)
    assert answer["readings"] == 3
    # One scope, whichever opened it (a message or the first query): the messages and the
    # queries met in it.
    assert len(Device.opened) == 1


async def test_a_key_no_message_could_open_is_skipped_and_logged(mosquitto, run_gateway, caplog):
    Device.opened = []
    layer = InMemoryChannelLayer()
    gateway = device_gateway(mosquitto.url, layer, MemoryStateStore())
    await run_gateway(gateway)
    caplog.set_level(logging.WARNING, "gateways.base")
    for key in ("elsewhere/kitchen", "devices/kitchen/telemetry/x", "devices/+"):
        assert await gateway.deliver(key, {"type": "device.query"}) is False
    # A bad envelope on the gateway's channel is logged; the gateway goes on.
    await layer.send(scope_channel("devices"), {"type": SCOPE_EVENT, "event": "no"})
    assert (await ask(layer, "devices/kitchen"))["device_id"] == "kitchen"
    assert [s["scope_key"] for s in Device.opened] == ["devices/kitchen"]
    text = caplog.text
    assert "cannot open one by key" in text
    assert "'elsewhere/kitchen'" in text
    assert "not an addressed event" in text


class Reminder(ChatConsumer):
    """Says what an addressed ``note.say`` event tells it to."""

    async def note_say(self, message: dict[str, Any]) -> None:
        await self.say(f"{self.scope['conversation']['kind']}: {message['text']}")


async def test_an_addressed_event_opens_a_console_conversation(run_gateway):
    layer = InMemoryChannelLayer()
    stdout = io.StringIO()
    gateway = ConsoleGateway(
        "console",
        ProtocolTypeRouter({"chat": Reminder.as_asgi()}),
        ConsoleGatewayOptions(bot_name="bot", user="you"),
        channel_layer=layer,
        stdin=asyncio.StreamReader(),
        stdout=stdout,
        interactive=False,
    )
    await run_gateway(gateway)

    await send_to_scope(layer, "console", "@you", {"type": "note.say", "text": "tea"})
    await send_to_scope(layer, "console", "ops", {"type": "note.say", "text": "deploy"})

    wanted = ["[@you] bot: direct: tea", "[#ops] bot: group: deploy"]
    async with asyncio.timeout(5):
        while not all(line in stdout.getvalue().splitlines() for line in wanted):
            await asyncio.sleep(0.01)
