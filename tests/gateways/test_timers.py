"""Durable timers (``AsyncConsumer.set_timer``, ``gateways.daemon.timers.TimerService``) on a
real Mosquitto: stored with the state, fired into a scope that is not running, once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from consumers import JsonMqttConsumer, MqttCommunicator, ProtocolTypeRouter, TopicRouter, route
from gateways.daemon.timers import TimerService
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from layer.state import MemoryStateStore, StateError, StateKey

pytestmark = pytest.mark.mosquitto

KEY = StateKey("test.watchdog", "devices", "devices/kitchen")


class Seen(BaseModel):
    readings: int = 0
    silences: int = 0


class Watchdog(JsonMqttConsumer):
    """Sets a ``watchdog`` timer on each reading; ``device.silent`` counts the silences."""

    state_model = Seen
    state_name = "test.watchdog"
    after: ClassVar[float] = 0.3
    fired: ClassVar[list[dict[str, Any]]] = []

    async def receive_json(self, data: Any, message: Any) -> None:
        self.state.readings += 1
        if data.get("cancel"):
            assert self.cancel_timer("watchdog") is True
            return
        self.set_timer("watchdog", {"type": "device.silent", "readings": 1}, delay=self.after)

    async def device_silent(self, event: dict[str, Any]) -> None:
        Watchdog.fired.append({**event, "live": dict(self.timers), "topic": self.scope["topic"]})
        self.state.silences += 1


def app() -> Any:
    return ProtocolTypeRouter(
        {"mqtt": TopicRouter([route("devices/{device_id}/telemetry", Watchdog.as_asgi())])}
    )


def gateway(broker: str, store: MemoryStateStore, **options: Any) -> MqttGateway:
    mqtt = MqttGateway(
        "devices",
        app(),
        MqttGatewayOptions(
            broker=broker, route_qos=1, scopes=[{"filter": "devices/+/+", "levels": 2}], **options
        ),
    )
    mqtt.state_store = store
    return mqtt


async def wait_until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_timer_is_stored_with_the_state_and_fires_into_a_scope_not_running(
    mosquitto, mqtt_client, run_gateway
):
    Watchdog.fired = []
    store = MemoryStateStore()
    mqtt = gateway(mosquitto.url, store, idle_timeout=0.1)
    await run_gateway(mqtt)
    timers = TimerService(store, {"devices": mqtt}, interval=0.05)
    async with mqtt_client(mosquitto.url) as probe:
        before = time.time()
        await probe.publish("devices/kitchen/telemetry", json.dumps({"t": 1}), qos=1)
        await wait_for_timers(store, present=True)
        # Stored in the same write as the reading, due `after` seconds on.
        stored = (await stored_timers(store))["watchdog"]
        assert stored.event == {"type": "device.silent", "readings": 1}
        assert before + Watchdog.after <= stored.due <= time.time() + Watchdog.after
        # The scope ends on idle_timeout; the timer stays stored.
        await wait_until(lambda: "devices/kitchen" not in mqtt.instances)
        timers.start()
        try:
            await wait_until(lambda: Watchdog.fired)
            await wait_for_timers(store, present=False)
        finally:
            await timers.stop()

    (fired,) = Watchdog.fired
    assert fired["type"] == "device.silent"
    assert fired["timer"] == "watchdog"
    assert fired["due"] == stored.due
    assert fired["topic"] is None  # the timer opened the scope, by key
    assert fired["live"] == {}  # it left the scope's timers as it fired
    loaded = await store.load(KEY)
    assert loaded is not None
    assert json.loads(loaded.data)["state"] == {"readings": 1, "silences": 1}


async def test_a_late_copy_of_a_fired_timer_is_skipped(mosquitto, mqtt_client, run_gateway):
    Watchdog.fired = []
    store = MemoryStateStore()
    mqtt = gateway(mosquitto.url, store)
    await run_gateway(mqtt)
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("devices/kitchen/telemetry", json.dumps({"t": 1}), qos=1)
        await wait_for_timers(store, present=True)
    due = (await stored_timers(store))["watchdog"].due
    event = {"type": "device.silent", "readings": 1, "timer": "watchdog", "due": due}
    # The timer service delivers it twice (a retry after a lost save, two daemons).
    await mqtt.deliver("devices/kitchen", dict(event))
    await mqtt.deliver("devices/kitchen", dict(event))
    # ... and a copy of a timer replaced since.
    await mqtt.deliver("devices/kitchen", {**event, "due": due - 60})
    await wait_for_timers(store, present=False)
    await asyncio.sleep(0.1)
    assert len(Watchdog.fired) == 1
    loaded = await store.load(KEY)
    assert loaded is not None
    assert json.loads(loaded.data)["state"]["silences"] == 1


async def test_a_cancelled_timer_leaves_the_store(mosquitto, mqtt_client, run_gateway):
    store = MemoryStateStore()
    await run_gateway(gateway(mosquitto.url, store))
    async with mqtt_client(mosquitto.url) as probe:
        await probe.publish("devices/kitchen/telemetry", json.dumps({"t": 1}), qos=1)
        await wait_for_timers(store, present=True)
        await probe.publish("devices/kitchen/telemetry", json.dumps({"cancel": True}), qos=1)
        await wait_for_timers(store, present=False)
    loaded = await store.load(KEY)
    assert loaded is not None
    assert json.loads(loaded.data)["state"]["readings"] == 2


async def stored_timers(store: MemoryStateStore) -> dict[str, Any]:
    loaded = await store.load(KEY)
    return dict(loaded.timers) if loaded is not None else {}


async def wait_for_timers(store: MemoryStateStore, *, present: bool) -> None:
    async with asyncio.timeout(5):
        while bool(await stored_timers(store)) is not present:
            await asyncio.sleep(0.02)


class Bad(JsonMqttConsumer):
    state_model = Seen

    async def receive_json(self, data: Any, message: Any) -> None:
        self.set_timer(**data)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"name": "", "event": {"type": "x"}, "delay": 1}, "non-empty str"),
        ({"name": "t", "event": {"text": "no type"}, "delay": 1}, "str 'type'"),
        ({"name": "t", "event": {"type": "x", "due": 1}, "delay": 1}, "'timer' and 'due'"),
        ({"name": "t", "event": {"type": "x"}}, "exactly one of delay= and at="),
        ({"name": "t", "event": {"type": "x"}, "delay": 1, "at": 2}, "exactly one"),
    ],
)
async def test_a_bad_timer_is_a_clear_error(arguments, problem):
    communicator = MqttCommunicator(Bad.as_asgi(), "t", state_store=MemoryStateStore())
    await communicator.connect()
    await communicator.send_message(json.dumps(arguments))
    with pytest.raises(StateError, match=problem):
        await communicator.wait(1)
