"""MqttCommunicator: the scope it builds and the events it sends and expects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers import MqttCommunicator, MqttConsumer
from layer import InMemoryChannelLayer

pytestmark = pytest.mark.timeout(10)


class ScopeEcho(MqttConsumer):
    async def connect(self) -> None:
        scope = {k: v for k, v in self.scope.items() if k != "channel_layer"}
        await self.send({"type": "scope", "scope": scope, "layer": self.channel_layer})


async def test_scope_is_a_valid_mqtt_scope() -> None:
    communicator = MqttCommunicator(ScopeEcho.as_asgi(), "devices/d1/telemetry")
    await communicator.connect()
    reply = await communicator.receive_output()
    assert reply["scope"] == {
        "type": "mqtt",
        "asgi": {"version": "3.0", "spec_version": "1.0"},
        "gateway": "test",
        "topic": "devices/d1/telemetry",
        "scope_key": "devices/d1/telemetry",
        "subscription": "devices/d1/telemetry",
    }
    assert reply["layer"] is None
    await communicator.disconnect()


async def test_scope_options_and_layer() -> None:
    layer = InMemoryChannelLayer()
    communicator = MqttCommunicator(
        ScopeEcho.as_asgi(),
        "devices/d1/telemetry",
        scope_key="device:d1",
        gateway="plant",
        subscription="devices/+/telemetry",
        channel_layer=layer,
    )
    await communicator.connect()
    reply = await communicator.receive_output()
    assert reply["scope"]["scope_key"] == "device:d1"
    assert reply["scope"]["gateway"] == "plant"
    assert reply["scope"]["subscription"] == "devices/+/telemetry"
    assert reply["layer"] is layer
    await communicator.disconnect()


async def test_send_message_fills_in_the_event() -> None:
    class Echo(MqttConsumer):
        async def receive(self, message: Any) -> None:
            await self.send({"type": "got", "message": message})

    communicator = MqttCommunicator(Echo.as_asgi(), "a/b")
    await communicator.connect()
    await communicator.send_message("text")
    assert (await communicator.receive_output())["message"] == {
        "type": "mqtt.message",
        "topic": "a/b",
        "payload": b"text",
        "qos": 0,
        "retain": False,
        "dup": False,
        "properties": None,
    }
    await communicator.send_message(b"raw", topic="a/c", qos=2, retain=True)
    message = (await communicator.receive_output())["message"]
    assert (message["topic"], message["payload"], message["qos"], message["retain"]) == (
        "a/c",
        b"raw",
        2,
        True,
    )
    assert await communicator.receive_nothing()
    await communicator.disconnect()


async def test_receive_publish_refuses_other_events() -> None:
    class Subscriber(MqttConsumer):
        async def connect(self) -> None:
            await self.subscribe("x/#")

    communicator = MqttCommunicator(Subscriber.as_asgi(), "t")
    await communicator.connect()
    with pytest.raises(AssertionError, match=r"mqtt\.subscribe"):
        await communicator.receive_publish()
    await communicator.disconnect()


async def test_receive_publish_times_out() -> None:
    communicator = MqttCommunicator(MqttConsumer.as_asgi(), "t")
    await communicator.connect()
    with pytest.raises(TimeoutError):
        await communicator.receive_publish(timeout=0.05)


async def test_disconnect_raises_when_the_app_does_not_return() -> None:
    async def stubborn(scope: Any, receive: Any, send: Any) -> None:
        while True:
            await receive()

    communicator = MqttCommunicator(stubborn, "t")
    await communicator.connect()
    with pytest.raises(TimeoutError, match="did not return"):
        await communicator.disconnect(timeout=0.05)
    assert communicator.future.cancelled()


async def test_disconnect_raises_the_app_error() -> None:
    class Failing(MqttConsumer):
        async def disconnect(self, reason: Any) -> None:
            raise RuntimeError(f"failed on {reason}")

    communicator = MqttCommunicator(Failing.as_asgi(), "t")
    await communicator.connect()
    with pytest.raises(RuntimeError, match="failed on shutdown"):
        await communicator.disconnect("shutdown")


async def test_connect_raises_the_app_error() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("cannot start")

    communicator = MqttCommunicator(broken, "t")
    with pytest.raises(RuntimeError, match="cannot start"):
        await communicator.connect()


async def test_connect_times_out_when_the_app_never_receives() -> None:
    async def deaf(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    communicator = MqttCommunicator(deaf, "t")
    with pytest.raises(TimeoutError, match="did not take"):
        await communicator.connect(timeout=0.05)
    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
