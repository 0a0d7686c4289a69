"""Cluster placement and timers, in one process: two MQTT gateways of the same name, each with
a ``Cluster`` of its own (two daemons' worth) on a real redis-server and Mosquitto. Daemon A
subscribes to ``devices/+/a`` and B to ``devices/+/b``, so the test chooses where each
message arrives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from consumers import JsonMqttConsumer
from gateways.daemon.cluster import Cluster
from gateways.daemon.timers import TimerService
from gateways.mqtt import MqttGateway, MqttGatewayOptions
from layer.redis import RedisChannelLayer
from layer.state import FencingStore, StateKey, build_state_store

pytestmark = pytest.mark.mosquitto

KEYS = [f"devices/d{n}" for n in range(20)]


@asynccontextmanager
async def two_daemons(
    mosquitto: Any, redis: Any, apps: list[Any], placement: str, store: Any = None
) -> AsyncIterator[list[MqttGateway]]:
    clusters, gateways = [], []
    for side, app in zip("ab", apps, strict=True):
        layer = RedisChannelLayer(hosts=[redis.url])
        cluster = Cluster(layer, redis.url, lease=2, placement=placement)  # type: ignore[arg-type]
        options = MqttGatewayOptions(
            broker=mosquitto.url,
            subscribe_routes=False,
            subscriptions=[{"topic": f"devices/+/{side}", "qos": 1}],
            scopes=[{"filter": "devices/+/#", "levels": 2}],
        )
        gateway = MqttGateway("devices", app, options, channel_layer=layer)
        gateway.ownership = cluster
        gateway.tracks_handling = True
        gateway.state_store = store
        cluster.gateways = {"devices": gateway}
        await cluster.start()
        clusters.append(cluster)
        async with asyncio.timeout(10):
            await gateway.start()
        gateways.append(gateway)
    try:
        yield gateways
    finally:
        for gateway in gateways:
            await gateway.stop(drain_timeout=2)
        for cluster in clusters:
            await cluster.stop()
        for gateway in gateways:
            assert gateway.channel_layer is not None
            await gateway.channel_layer.close()  # type: ignore[attr-defined]


async def until(predicate: Any, within: float = 10.0) -> None:
    """Poll ``predicate`` (each app's own ``wait_for`` hears of its own events only)."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


def opened(app: Any) -> list[str]:
    return [log.scope["scope_key"] for log in app.logs]


def messages(app: Any) -> int:
    return sum(1 for log in app.logs for e in log.events if e["type"] == "mqtt.message")


async def test_hash_placement_starts_scopes_where_the_hash_picks_not_where_they_arrive(
    mosquitto: Any, redis_server: Any, recording_app: Any, mqtt_client: Any
) -> None:
    apps = [recording_app(), recording_app()]
    async with (
        two_daemons(mosquitto, redis_server, apps, "hash"),
        mqtt_client(mosquitto.url) as probe,
    ):
        for key in KEYS:  # every first message reaches daemon A
            await probe.publish(f"{key}/a", b"1", qos=1)
        await until(lambda: messages(apps[0]) + messages(apps[1]) == len(KEYS))
        first = {key: side for side, app in enumerate(apps) for key in opened(app)}
        for key in KEYS:  # and the second ones daemon B
            await probe.publish(f"{key}/b", b"2", qos=1)
        await until(lambda: messages(apps[0]) + messages(apps[1]) == 2 * len(KEYS))
    # One instance per scope, on the daemon the hash picked: both got some, though every
    # first message arrived at A; the second messages went to the same owners.
    assert sorted(opened(apps[0]) + opened(apps[1])) == sorted(KEYS)
    assert set(first.values()) == {0, 1}
    for side, app in enumerate(apps):
        for log in app.logs:
            assert [e["payload"] for e in log.events if e["type"] == "mqtt.message"] == [
                b"1",
                b"2",
            ]
            assert first[log.scope["scope_key"]] == side


class Seen(BaseModel):
    silences: int = 0


class Watchdog(JsonMqttConsumer):
    """Sets a timer on its first message; records where each firing was handled."""

    state_model = Seen
    state_name = "test.watchdog"
    fired: ClassVar[list[Any]] = []

    async def receive_json(self, data: Any, message: Any) -> None:
        self.set_timer("watchdog", {"type": "device.silent"}, delay=0.2)

    async def device_silent(self, event: dict[str, Any]) -> None:
        Watchdog.fired.append(self.scope["channel_layer"])
        self.state.silences += 1


async def test_a_timer_fires_once_on_the_scope_s_owner(
    mosquitto: Any, redis_server: Any, mqtt_client: Any
) -> None:
    """Both daemons' timer services see the due timer and deliver it; the owner handles it
    once (the copy that comes second finds it gone), and no scope opens on the other."""
    Watchdog.fired = []
    store = FencingStore(build_state_store({"backend": "redis", "hosts": [redis_server.url]}))
    apps = [Watchdog.as_asgi(), Watchdog.as_asgi()]
    async with (
        two_daemons(mosquitto, redis_server, apps, "local", store) as gateways,
        mqtt_client(mosquitto.url) as probe,
    ):
        services = [TimerService(store, {"devices": g}, interval=0.05) for g in gateways]
        for service in services:
            service.start()
        try:
            await probe.publish("devices/d1/b", json.dumps({"t": 1}), qos=1)  # B owns d1
            await until(lambda: bool(Watchdog.fired))
            await asyncio.sleep(0.5)  # both services have looked several times since
        finally:
            for service in services:
                await service.stop()
        on_a = list(gateways[0].instances)
    stored = await store.load(StateKey("test.watchdog", "devices", "devices/d1"))
    await store.close()
    assert Watchdog.fired == [gateways[1].channel_layer]  # once, on B
    assert on_a == []
    assert stored is not None
    assert json.loads(stored.data)["state"] == {"silences": 1}
    assert stored.timers == {}
