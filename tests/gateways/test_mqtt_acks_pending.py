"""At least once through a pending ``receive()`` (issue 26): a consumer that keeps a
``receive()`` Future pending while it handles a channel-layer message (Channels'
``await_many_dispatch``; ``consumers.dispatch``'s two-sources loop, used with a layer that
has no waiter extension) may end before it ever reads the MQTT message the gateway resolved
into that Future. Such a message was not handled: it is neither blamed for the crash nor
acknowledged, but handled later, once. On a real Mosquitto with persistence, with Channels'
own ``InMemoryChannelLayer`` and either ``channels.consumer.AsyncConsumer`` or
``consumers.MqttConsumer``.

Each run handles ``first``, then posts itself a layer message; while its handler runs,
``second`` is published and resolved into the pending ``receive()``; then the handler

- ``raise``: raises. ``second`` goes to a fresh instance of the scope at once and is handled
  there; it was acknowledged then, so a restart on the same session brings nothing again.
- ``cancel``: is still running at shutdown, deaf to its disconnect; cancelled after the
  grace, its clean-up raises (a cancel turned into a crash). The gateway is stopping, so
  ``second`` stays unacknowledged, and the broker delivers it again (DUP) after a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import channels.layers
import pytest
from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import InMemoryChannelLayer
from prometheus_client import REGISTRY

from consumers import MqttConsumer
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from layer.types import ASGIApp

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.timeout(60),
]

_names = itertools.count()
TOPIC = "t/1"
#: The alias Channels' consumer finds its layer under (set for the run, then removed).
ALIAS = "acks-pending"


class Script:
    """What the consumers did, and the one layer handler that misbehaves (once a run)."""

    handled: ClassVar[list[tuple[str, bytes, bool]]] = []
    gateway: ClassVar[MqttGateway | None] = None
    mode: ClassVar[str] = "raise"
    armed: ClassVar[bool] = False
    second_pending: ClassVar[asyncio.Event]

    @classmethod
    def reset(cls, mode: str, *, armed: bool) -> None:
        cls.handled = []
        cls.mode = mode
        cls.armed = armed
        cls.second_pending = asyncio.Event()

    @classmethod
    def second_in_hand(cls) -> bool:
        """Whether the gateway has resolved ``second`` into the scope's pending receive()
        (white box: what the instance holds as given to the application)."""
        assert cls.gateway is not None
        instance = cls.gateway.instances.get(TOPIC)
        held = getattr(instance, "_in_hand", None)
        if isinstance(held, asyncio.Future):
            held = asyncio.Future.result(held)
        return held is not None and held.get("payload") == b"second"

    @classmethod
    def record(cls, message: Any) -> None:
        """An MQTT message handled; ``boom`` makes its handler raise (it was taken)."""
        cls.handled.append((message["topic"], message["payload"], message["dup"]))
        if message["payload"] == b"boom":
            raise RuntimeError("a bug in the MQTT-message handler")

    @classmethod
    async def after_message(cls) -> None:
        """The layer handler: ``second`` arrives while it runs, then it fails (see above)."""
        if not cls.armed:
            return
        cls.armed = False
        async with asyncio.timeout(10):
            while not cls.second_in_hand():
                await asyncio.sleep(0.01)
        cls.second_pending.set()
        if cls.mode == "raise":
            raise RuntimeError("a bug in a layer-message handler")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("a clean-up that fails when cancelled") from None


class ChannelsRelay(AsyncConsumer):  # type: ignore[misc]
    """Channels' own consumer: ``await_many_dispatch`` over receive() and the layer."""

    channel_layer_alias = ALIAS

    async def dispatch(self, message: Any) -> None:
        # AsyncConsumer.dispatch, but for closing Django's old database connections first
        # (Django is not configured here); the loop under test, await_many_dispatch, is kept.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def mqtt_connect(self, message: Any) -> None:
        pass

    async def mqtt_message(self, message: Any) -> None:
        Script.record(message)
        await self.channel_layer.send(self.channel_name, {"type": "after.message"})

    async def after_message(self, message: Any) -> None:
        await Script.after_message()

    async def mqtt_disconnect(self, message: Any) -> None:
        raise StopConsumer


class OurRelay(MqttConsumer):
    """Our consumer on Channels' layer (no waiter extension): the two-sources loop."""

    async def receive(self, message: Any) -> None:
        Script.record(message)
        await self.channel_layer.send(self.channel_name, {"type": "after.message"})

    async def after_message(self, message: Any) -> None:
        await Script.after_message()


def application(app: str, layer: InMemoryChannelLayer) -> ASGIApp:
    if app == "channels":
        return ChannelsRelay.as_asgi()  # type: ignore[no-any-return]
    return OurRelay.as_asgi(channel_layer=layer)


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
    app: str,
    name: str,
    broker: Any,
    mqtt_client: Any,
    *,
    until: Callable[[], bool],
    publish: bool = False,
    first: bytes = b"first",
    within: float = 10,
) -> None:
    """A gateway on ``name``'s persistent session: if ``publish``, publish ``first``, then,
    once it was handled, ``second`` (while the layer handler runs, if armed); wait
    (``within`` seconds at most) until ``until()``, then stop it."""
    layer = InMemoryChannelLayer()
    channels.layers.channel_layers.backends[ALIAS] = layer
    gateway = MqttGateway(name, application(app, layer), settings(broker, name))
    Script.gateway = gateway
    await gateway.start()
    try:
        if publish:
            async with mqtt_client(broker.url) as probe:
                await probe.publish(TOPIC, first, qos=1)
                async with asyncio.timeout(within):
                    while not Script.handled:
                        await asyncio.sleep(0.01)
                await probe.publish(TOPIC, b"second", qos=1)
        async with asyncio.timeout(within):
            while not until():
                await asyncio.sleep(0.02)
    finally:
        try:
            await gateway.stop(drain_timeout=0.3)
        finally:
            del channels.layers.channel_layers.backends[ALIAS]
            Script.gateway = None


def blamed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "raised on a message" in r.getMessage()]


def crashed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "application instance" in r.getMessage()]


def failed(name: str) -> float:
    labels = {"gateway": name}
    return REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_failed_total", labels) or 0.0


@pytest.mark.parametrize("app", ["channels", "ours"])
async def test_a_message_in_a_pending_receive_is_handled_when_a_layer_handler_raises(
    make_mosquitto: Any, mqtt_client: Any, caplog: pytest.LogCaptureFixture, app: str
) -> None:
    """``raise``: ``second`` is not blamed, goes to a fresh instance and is handled there,
    once: a restart on the same session brings nothing again."""
    broker = make_mosquitto(persistence=True)
    name = f"acks-pending-raise-{next(_names)}"
    caplog.set_level(logging.WARNING, logger="gateways")
    Script.reset("raise", armed=True)
    await serve(  # until handled again, or blamed (then it never will be: it was lost)
        app,
        name,
        broker,
        mqtt_client,
        publish=True,
        until=lambda: len(Script.handled) >= 2 or failed(name) > 0,
    )
    assert Script.second_pending.is_set()
    assert crashed(caplog), "the layer handler's crash ended the instance"
    assert blamed(caplog) == []
    assert failed(name) == 0
    assert Script.handled == [(TOPIC, b"first", False), (TOPIC, b"second", False)]

    Script.reset("raise", armed=False)
    with pytest.raises(TimeoutError):  # nothing comes again: each was acknowledged once handled
        await serve(app, name, broker, mqtt_client, until=lambda: bool(Script.handled), within=2)
    assert Script.handled == []


@pytest.mark.parametrize("app", ["channels", "ours"])
async def test_a_message_in_a_pending_receive_is_delivered_again_after_a_crash_on_cancel(
    make_mosquitto: Any, mqtt_client: Any, caplog: pytest.LogCaptureFixture, app: str
) -> None:
    """``cancel``: ``second`` is not blamed nor acknowledged; after a restart on the same
    session the broker delivers it again (DUP), and it is handled."""
    broker = make_mosquitto(persistence=True)
    name = f"acks-pending-cancel-{next(_names)}"
    caplog.set_level(logging.WARNING, logger="gateways")
    Script.reset("cancel", armed=True)
    await serve(app, name, broker, mqtt_client, publish=True, until=Script.second_pending.is_set)
    assert Script.handled == [(TOPIC, b"first", False)]
    assert crashed(caplog), "the cancelled layer handler's clean-up crashed the instance"
    assert blamed(caplog) == []
    assert failed(name) == 0

    Script.reset("cancel", armed=False)
    await serve(app, name, broker, mqtt_client, until=lambda: bool(Script.handled))
    assert Script.handled == [(TOPIC, b"second", True)]
    assert blamed(caplog) == []
    assert failed(name) == 0


@pytest.mark.parametrize("app", ["channels", "ours"])
async def test_a_message_its_handler_raises_on_is_still_blamed_once(
    make_mosquitto: Any, mqtt_client: Any, caplog: pytest.LogCaptureFixture, app: str
) -> None:
    """The other side: a message read from the receive() Future (``result()``) and raising
    in its own handler is blamed, counted and acknowledged (no poison loop); ``second``,
    queued behind it, goes to a fresh instance."""
    broker = make_mosquitto(persistence=True)
    name = f"acks-pending-boom-{next(_names)}"
    caplog.set_level(logging.WARNING, logger="gateways")
    Script.reset("raise", armed=False)
    await serve(
        app,
        name,
        broker,
        mqtt_client,
        publish=True,
        first=b"boom",
        until=lambda: len(Script.handled) >= 2,
    )
    assert Script.handled == [(TOPIC, b"boom", False), (TOPIC, b"second", False)]
    assert len(blamed(caplog)) == 1
    assert failed(name) == 1

    Script.reset("raise", armed=False)
    with pytest.raises(TimeoutError):  # neither comes again
        await serve(app, name, broker, mqtt_client, until=lambda: bool(Script.handled), within=2)
    assert Script.handled == []
