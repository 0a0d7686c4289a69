"""At least once: a QoS 1/2 message is acknowledged only after the application handled it.

Against a real Mosquitto with persistence: what a gateway did not handle comes back, with
``dup``, to the next gateway on the same session; what crashed its consumer does not loop;
the broker's in-flight window bounds what the gateway holds. (Killing the daemon process
mid-stream is tests/test_at_least_once.py.)"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.client import Client as PahoClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from gateways import GatewayError
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.mqtt.acks import ManualAcks
from gateways.mqtt.options import DEFAULT_SESSION_EXPIRY

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(60)]

_names = itertools.count()


def options(broker: Any, protocol: str, **more: Any) -> MqttGatewayOptions:
    fields: dict[str, Any] = {
        "broker": broker.url,
        "protocol": protocol,
        "client_id": f"acks-{next(_names)}",
        "clean_start": False,
        "subscriptions": [{"topic": "d/#", "qos": 1}],
        "idle_timeout": None,
    }
    fields.update(more)
    return MqttGatewayOptions(**fields)


class Recorder:
    """An application recording (payload, dup) of every message; ``block`` makes each
    instance wait on its first message until ``release`` is set; ``boom`` payloads raise."""

    def __init__(self, *, block: bool = False) -> None:
        self.seen: list[tuple[bytes, bool, int]] = []
        self.block = block
        self.release = asyncio.Event()
        self.changed = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        first = True
        while True:
            event = await receive()
            if event["type"] == "mqtt.disconnect":
                return
            if event["type"] != "mqtt.message":
                continue
            self.seen.append((event["payload"], event["dup"], event["qos"]))
            self.changed.set()
            if event["payload"] == b"boom":
                raise RuntimeError("boom")
            if self.block and first:
                await self.release.wait()
            first = False

    def payloads(self) -> list[bytes]:
        return [payload for payload, _, _ in self.seen]

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


async def serve_once(
    name: str,
    app: Recorder,
    settings: MqttGatewayOptions,
    mqtt_client: Any,
    publish: list[str],
    *,
    wait_for: int,
    drain_timeout: float = 2.0,
) -> None:
    """Start a gateway on the persistent session of ``settings``, publish ``publish`` on
    ``d/1`` at QoS 1, wait until ``app`` saw ``wait_for`` messages, then stop it."""
    gateway = MqttGateway(name, app, settings)
    await gateway.start()
    try:
        if publish:
            async with mqtt_client(settings.broker) as probe:
                for payload in publish:
                    await probe.publish("d/1", payload, qos=1)
        await app.wait_for(wait_for)
    finally:
        await gateway.stop(drain_timeout=drain_timeout)


def test_manual_acks_is_set_on_the_paho_client_under_aiomqtt() -> None:
    """The one private reach into aiomqtt (Client._client): fails here first if it moves."""
    assert importlib.metadata.version("aiomqtt").startswith("2.5.")

    async def build() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", 1883)

    client = asyncio.run(build())
    on_message, on_connect = client._client.on_message, client._client.on_connect
    ManualAcks(client)
    paho = client._client
    assert isinstance(paho, PahoClient)
    assert paho._manual_ack is True
    # Wrapped, to note each message's DUP flag and the connection it came on.
    assert paho.on_message is not on_message
    assert paho.on_connect is not on_connect


def test_manual_acks_refuses_a_client_it_does_not_know() -> None:
    with pytest.raises(GatewayError, match=r"no paho-mqtt 2 client at Client\._client"):
        ManualAcks(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_what_was_not_handled_at_stop_comes_back_marked_dup(
    make_mosquitto: Any, mqtt_client: Any, protocol: str
) -> None:
    broker = make_mosquitto(persistence=True)
    settings = options(broker, protocol)
    first = Recorder(block=True)
    # Stopped while the instance is still on message 0: cancelled after the drain.
    published = [str(index) for index in range(5)]
    await serve_once("acks", first, settings, mqtt_client, published, wait_for=1, drain_timeout=0.2)
    assert first.payloads() == [b"0"]

    second = Recorder()
    await serve_once("acks", second, settings, mqtt_client, [], wait_for=5)
    assert second.payloads() == [b"0", b"1", b"2", b"3", b"4"]
    assert all(dup for _, dup, _ in second.seen)  # the broker had sent each before


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_what_was_handled_is_not_delivered_again(
    make_mosquitto: Any, mqtt_client: Any, protocol: str
) -> None:
    broker = make_mosquitto(persistence=True)
    settings = options(broker, protocol)
    first = Recorder()
    await serve_once("acks-handled", first, settings, mqtt_client, ["0", "1", "2"], wait_for=3)

    second = Recorder()
    await serve_once("acks-handled", second, settings, mqtt_client, ["after"], wait_for=1)
    assert second.seen == [(b"after", False, 1)]


async def test_a_message_that_crashes_its_consumer_is_acknowledged_once(
    make_mosquitto: Any, mqtt_client: Any
) -> None:
    broker = make_mosquitto(persistence=True)
    settings = options(broker, "5")
    name = f"acks-crash-{next(_names)}"
    first = Recorder()
    await serve_once(name, first, settings, mqtt_client, ["boom", "ok-1", "ok-2"], wait_for=3)
    # The messages queued behind the crash went to a fresh instance of the scope.
    assert first.payloads() == [b"boom", b"ok-1", b"ok-2"]
    failed = REGISTRY.get_sample_value("asgi_gateway_mqtt_messages_failed_total", {"gateway": name})
    assert failed == 1

    second = Recorder()
    await serve_once(name, second, settings, mqtt_client, ["after"], wait_for=1)
    assert second.payloads() == [b"after"]  # no poison loop


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_the_in_flight_window_bounds_what_the_gateway_holds(
    make_mosquitto: Any, mqtt_client: Any, protocol: str
) -> None:
    # MQTT 5: the gateway's Receive Maximum; MQTT 3.1.1: the broker's max_inflight_messages.
    broker = make_mosquitto("max_inflight_messages 3\n", persistence=True)
    app = Recorder(block=True)
    gateway = MqttGateway("acks-window", app, options(broker, protocol, receive_maximum=3))
    await gateway.start()
    try:
        async with mqtt_client(broker.url) as probe:
            for index in range(10):  # one scope per topic, each stuck on its first message
                await probe.publish(f"d/{index}", str(index), qos=1)
            await app.wait_for(3)
            await asyncio.sleep(0.5)  # nothing more may arrive while none is handled
            assert len(app.seen) == 3
            assert len(gateway.instances) == 3
            app.release.set()
            await app.wait_for(10)
    finally:
        await gateway.stop(drain_timeout=2)
    assert sorted(app.payloads()) == sorted(str(i).encode() for i in range(10))


async def test_a_qos_2_subscription_is_delivered_at_least_once_at_qos_1(
    make_mosquitto: Any, mqtt_client: Any
) -> None:
    broker = make_mosquitto(persistence=True)
    app = Recorder()
    settings = options(broker, "5", subscriptions=[{"topic": "d/#", "qos": 2}])
    gateway = MqttGateway("acks-qos2", app, settings)
    await gateway.start()
    try:
        async with mqtt_client(broker.url) as probe:
            await probe.publish("d/1", "exactly?", qos=2)
            await app.wait_for(1)
    finally:
        await gateway.stop(drain_timeout=2)
    assert app.seen == [(b"exactly?", False, 1)]
    assert f"{settings.client_id} 1 d/#" in broker.log_lines()


def test_clean_start_false_needs_a_client_id() -> None:
    with pytest.raises(ValidationError, match="clean_start: false needs a client_id"):
        MqttGatewayOptions(clean_start=False)


def test_a_persistent_mqtt5_session_gets_an_expiry() -> None:
    broker = "mqtt://broker.local"
    persistent = MqttGatewayOptions(broker=broker, protocol="5", client_id="c", clean_start=False)
    assert persistent.effective_session_expiry == DEFAULT_SESSION_EXPIRY
    chosen = MqttGatewayOptions(
        broker=broker, protocol="5", client_id="c", clean_start=False, session_expiry=9
    )
    assert chosen.effective_session_expiry == 9
    assert MqttGatewayOptions(broker=broker, protocol="5").effective_session_expiry is None
    assert MqttGatewayOptions(client_id="c", clean_start=False).effective_session_expiry is None


@pytest.mark.parametrize("value", [0, 65_536])
def test_receive_maximum_is_1_to_65535(value: int) -> None:
    with pytest.raises(ValidationError, match="receive_maximum"):
        MqttGatewayOptions(broker="mqtt://broker.local", protocol="5", receive_maximum=value)
