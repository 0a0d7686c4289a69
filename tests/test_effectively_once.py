"""Effectively once, end to end (issue 21): a durable counting consumer, idempotency keys in
the payload (``idempotency_key: {json_field: seq}``), and the three faults of the
at-least-once run (the daemon killed with SIGKILL, stopped with SIGTERM, the broker
restarted) while a publisher streams QoS 1 readings at 1,500 a second, then 200 readings
published again, as devices whose PUBACK was lost do. Every device's count and sum end
exactly equal to the distinct readings the broker acknowledged: redeliveries and re-sends
are acknowledged and skipped, on sqlite and on Redis."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemon_helpers import Daemon, Publisher

from gateways.testing import RedisServer
from layer.state import StateKey, build_state_store

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(150)]

MESSAGES = 6000
RATE = 1500
DEVICES = 4


def config(tmp_path: Path, store: str, protocol: str = "5") -> Path:
    path = tmp_path / "gateway.yaml"
    state = (
        f"  backend: sqlite\n  path: {tmp_path / 'state.sqlite3'}\n"
        if store == "sqlite"
        else "  backend: redis\n  hosts: ['${REDIS_URL}']\n"
    )
    path.write_text(
        "application: counting:application\n"
        "shutdown_timeout: 5\n"
        f"state:\n{state}"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        f"    protocol: '{protocol}'\n"
        "    client_id: counting\n"
        "    clean_start: false\n"
        "    idle_timeout: null\n"
        "    idempotency_key: {json_field: seq}\n"
        "    subscriptions:\n"
        "      - {topic: 'devices/+/telemetry', qos: 1}\n"
        "    scopes:\n"
        "      - {filter: 'devices/+/#', levels: 2}\n"
    )
    return path


async def tallies(options: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Each device's stored state, read with a store of the same backend."""
    store = build_state_store(options)
    found = {}
    for device in range(DEVICES):
        stored = await store.load(StateKey("counting", "devices", f"devices/d{device}"))
        if stored is not None:
            found[f"d{device}"] = json.loads(stored.data)["state"]
    await store.close()
    return found


# MQTT 3.1.1 had the most duplicates without keys (3,784 of 6,000: docs/mqtt.md).
@pytest.mark.parametrize(
    ("store", "protocol"), [("sqlite", "5"), ("redis", "5"), ("sqlite", "3.1.1")]
)
async def test_every_count_is_exact_through_sigkill_sigterm_and_a_broker_restart(
    make_mosquitto: Any, make_redis: Any, tmp_path: Path, store: str, protocol: str
) -> None:
    broker = make_mosquitto("max_queued_messages 0\n", persistence=True)
    redis: RedisServer = make_redis()
    options = (
        {"backend": "sqlite", "path": str(tmp_path / "state.sqlite3")}
        if store == "sqlite"
        else {"backend": "redis", "hosts": [redis.url]}
    )
    env = {"MQTT_URL": broker.url, "REDIS_URL": redis.url}
    path = config(tmp_path, store, protocol)
    daemons: list[Daemon] = []

    def start_daemon() -> None:
        daemons.append(Daemon(path, env))

    async def kill_and_restart() -> None:
        daemons[-1].stop(signal.SIGKILL)
        start_daemon()

    async def terminate_and_restart() -> None:
        assert await asyncio.to_thread(daemons[-1].stop, signal.SIGTERM) == 0
        start_daemon()

    async def restart_broker() -> None:
        await asyncio.to_thread(broker.restart)

    expected: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"count": 0, "total": 0})
    start_daemon()
    try:
        await broker.wait_log("counting 1 devices/+/telemetry", timeout=20)
        publisher = Publisher(
            broker,
            1,
            MESSAGES,
            DEVICES,
            RATE,
            {
                MESSAGES // 4: kill_and_restart,
                MESSAGES // 2: terminate_and_restart,
                3 * MESSAGES // 4: restart_broker,
            },
            payload=lambda sequence: json.dumps({"seq": sequence}).encode(),
        )
        await publisher.run()
        assert publisher.faults == {}  # all three faults happened mid-stream
        # Devices that publish a reading again (their PUBACK was lost): the same keys.
        async with aiomqtt.Client(broker.host, broker.port) as client:
            for sequence in publisher.acknowledged[-200:]:  # within applied_window (1000)
                topic = f"devices/d{sequence % DEVICES}/telemetry"
                await client.publish(topic, json.dumps({"seq": sequence}), qos=1)
        for sequence in set(publisher.acknowledged):
            device = expected[f"d{sequence % DEVICES}"]
            device["count"] += 1
            device["total"] += sequence
        try:
            async with asyncio.timeout(60):
                while await tallies(options) != expected:
                    await asyncio.sleep(0.5)
        except TimeoutError:
            pass
        assert await asyncio.to_thread(daemons[-1].stop, signal.SIGTERM) == 0
    finally:
        for daemon in daemons:
            daemon.stop(signal.SIGKILL)
    assert await tallies(options) == expected, daemons[-1].output[-3000:]
