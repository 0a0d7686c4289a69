"""A state store that is away, end to end (issue 21): the daemon (``python -m gateways run``)
counts QoS 1 readings in a durable consumer (``tests/daemon_apps/counting.py``, idempotency
keys in the payload) with its state in a real redis-server, while a publisher streams
readings through a real Mosquitto. Mid-stream, redis-server goes away three times:

1. frozen (SIGSTOP: connections stay open, nothing is answered), then thawed (SIGCONT);
2. killed (SIGKILL), then started again on the same port, from its append-only file;
3. shut down cleanly (SIGTERM); while it is away the daemon is killed (SIGKILL) and a new one
   started, which comes up with the store away; then redis-server starts again.

Each time ``/readyz`` turns 503 naming the state store (and ``asgi_gateway_state_store_up``
0), then 200 again once it is back. At the end every device's count and sum equal exactly
the readings the broker acknowledged to the publisher: nothing acknowledged to the broker
while unsaved is lost (the daemon killed in the third outage would lose it), nothing counted
twice (the broker's redeliveries to the new daemon, and the saves repeated after a lost
reply, are skipped by their idempotency keys and write tokens).

redis-server persists every write before it answers (``appendonly yes``, ``appendfsync
always``): a save it acknowledged survives its SIGKILL, as a durable store's must.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon, Publisher
from test_monitoring import get, metrics, until_status, value

from gateways.testing import RedisServer
from layer.state import StateKey, build_state_store

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(180)]

MESSAGES = 15000
RATE = 500
DEVICES = 4
AWAY = 3.0  # seconds each outage lasts once /readyz reports it
STORE_TIMEOUT = 1  # the redis store's timeout: a frozen server fails a save after 2 s, not 10
STORE = "state store (redis): unavailable: "


def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "application: counting:application\n"
        "shutdown_timeout: 5\n"
        "state:\n"
        "  backend: redis\n"
        "  hosts: ['${REDIS_URL}']\n"
        f"  timeout: {STORE_TIMEOUT}\n"
        "monitoring:\n"
        "  port: ${MONITORING_PORT}\n"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        "    protocol: '5'\n"
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
    """Each device's stored state, read with a store of its own."""
    store = build_state_store(options)
    found = {}
    try:
        for device in range(DEVICES):
            stored = await store.load(StateKey("counting", "devices", f"devices/d{device}"))
            if stored is not None:
                found[f"d{device}"] = json.loads(stored.data)["state"]
    finally:
        await store.close()
    return found


class Outage:
    """What one outage of the store measured."""

    def __init__(self, fault: str, acknowledged: int) -> None:
        self.fault = fault
        self.acknowledged_before = acknowledged  # readings the broker had acked at its start
        self.acknowledged_back = 0  # ... when the store came back
        self.away = 0.0  # seconds from the fault to the store's return
        self.start = time.monotonic()
        self.reported: list[str] = []  # /readyz's not_connected while away

    def __repr__(self) -> str:
        return (
            f"<Outage {self.fault}: away {self.away:.1f} s, readings acknowledged "
            f"{self.acknowledged_before}..{self.acknowledged_back}, /readyz {self.reported}>"
        )

    def returned(self, acknowledged: int) -> None:
        """The store is back (thawed or started)."""
        self.away = time.monotonic() - self.start
        self.acknowledged_back = acknowledged


async def test_redis_stopped_and_restarted_under_load_loses_nothing(
    make_mosquitto: Any, make_redis: Any, free_port: Callable[[], int], tmp_path: Path
) -> None:
    broker = make_mosquitto("max_queued_messages 0\n", persistence=True)
    pidfile = tmp_path / "redis.pid"  # SIGSTOP and SIGCONT go to the pid it writes
    redis: RedisServer = make_redis(
        ["--appendonly", "yes", "--appendfsync", "always", "--pidfile", str(pidfile)]
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "MQTT_URL": broker.url,
        "REDIS_URL": redis.url,
        "MONITORING_PORT": str(port),
        "WORK_SECONDS": "0.001",
    }
    path = config(tmp_path)
    options = {"backend": "redis", "hosts": [redis.url]}
    daemons = [Daemon(path, env)]

    def signal_redis(sig: signal.Signals) -> None:
        os.kill(int(pidfile.read_text()), sig)

    async def away(fault: str, publisher: Publisher, go: Callable[[], Awaitable[None]]) -> Outage:
        """Make the store go away (``go``), check /readyz says so; the Outage."""
        outage = Outage(fault, len(publisher.acknowledged))
        await go()
        body = json.loads(await until_status(f"{base}/readyz", 503, timeout=15))
        assert body["ready"] is False
        assert len(body["not_connected"]) == 1, body  # the gateway stays connected
        assert body["not_connected"][0].startswith(STORE), body
        assert (
            redis.url in body["not_connected"][0] or "no answer within" in body["not_connected"][0]
        )
        outage.reported = body["not_connected"]
        samples = await metrics(base)
        assert value(samples, "asgi_gateway_state_store_up", backend="redis") == 0
        assert value(samples, "asgi_gateway_connected", gateway="devices") == 1
        await asyncio.sleep(AWAY)
        return outage

    async def back(outage: Outage, publisher: Publisher) -> None:
        """The store is back: check /readyz says so."""
        outage.returned(len(publisher.acknowledged))
        body = json.loads(await until_status(f"{base}/readyz", 200, timeout=30))
        assert body == {"ready": True, "not_connected": []}
        assert value(await metrics(base), "asgi_gateway_state_store_up", backend="redis") == 1

    async def freeze(publisher: Publisher) -> Outage:
        outage = await away(
            "SIGSTOP", publisher, lambda: asyncio.to_thread(signal_redis, signal.SIGSTOP)
        )
        signal_redis(signal.SIGCONT)
        await back(outage, publisher)
        return outage

    async def crash(publisher: Publisher) -> Outage:
        outage = await away("SIGKILL", publisher, lambda: asyncio.to_thread(redis.kill))
        await asyncio.to_thread(redis.start, 20)
        await back(outage, publisher)
        return outage

    async def shutdown_and_restart_the_daemon(publisher: Publisher) -> Outage:
        outage = await away("SIGTERM", publisher, lambda: asyncio.to_thread(redis.stop))
        # The daemon dies while saves wait for the store; a new one starts with it away.
        await asyncio.to_thread(daemons[-1].stop, signal.SIGKILL)
        daemons.append(Daemon(path, env))
        body = json.loads(await until_status(f"{base}/readyz", 503, timeout=20))
        assert any(entry.startswith(STORE) for entry in body["not_connected"]), body
        await asyncio.sleep(1)
        await asyncio.to_thread(redis.start, 20)
        await back(outage, publisher)
        return outage

    outages: list[Outage] = []
    publishing: asyncio.Task[None] | None = None
    try:
        await broker.wait_log("counting 1 devices/+/telemetry", timeout=20)
        await until_status(f"{base}/readyz", 200)
        publisher = Publisher(
            broker,
            1,
            MESSAGES,
            DEVICES,
            RATE,
            {},
            payload=lambda sequence: json.dumps({"seq": sequence}).encode(),
        )
        publishing = asyncio.create_task(publisher.run())
        for mark, fault in zip(
            (MESSAGES // 10, 4 * MESSAGES // 10, 7 * MESSAGES // 10),
            (freeze, crash, shutdown_and_restart_the_daemon),
            strict=True,
        ):
            async with asyncio.timeout(60):
                while len(publisher.acknowledged) < mark and not publishing.done():
                    await asyncio.sleep(0.05)
            outages.append(await fault(publisher))
        async with asyncio.timeout(90):
            await publishing
        # Under load: the broker acknowledged readings all the while the store was away.
        for outage in outages:
            assert outage.acknowledged_before < outage.acknowledged_back, outages

        expected: dict[str, dict[str, int]] = collections.defaultdict(
            lambda: {"count": 0, "total": 0}
        )
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
        status, body = await get(f"{base}/readyz")
        assert (status, json.loads(body)) == (200, {"ready": True, "not_connected": []})
        samples = await metrics(base)  # of the last daemon, the one the broker redelivered to
        counters = {
            name: samples.get((f"asgi_gateway_{name}_total", (("gateway", "devices"),)), 0)
            for name in ("mqtt_messages_redelivered", "events_deduplicated", "mqtt_messages_failed")
        }
        assert await asyncio.to_thread(daemons[-1].stop, signal.SIGTERM) == 0
    finally:
        if publishing is not None and not publishing.done():
            publishing.cancel()
        if redis.running and pidfile.exists():
            signal_redis(signal.SIGCONT)  # a frozen server would not die of SIGTERM
        for daemon in daemons:
            if daemon.process.returncode is None:  # stop() again would collect its output twice
                daemon.stop(signal.SIGKILL)
    found = await tallies(options)
    output = "".join(daemon.output for daemon in daemons)
    retries = output.count("State store unavailable for")
    print(  # what the run measured, for `pytest -s`
        f"\n{outages}\nreadings acknowledged {len(publisher.acknowledged)} "
        f"(distinct {len(set(publisher.acknowledged))}), counted "
        f"{sum(device['count'] for device in found.values())}; retry WARNINGs {retries}, "
        f"readiness WARNINGs {output.count('The state store (redis) is unavailable')}, "
        f"timer WARNINGs {output.count('Timers: the state store is unavailable')}, "
        f"instances ended on a conflict {output.count('was written elsewhere since it was')}; "
        f"last daemon: {counters}"
    )
    assert found == expected, output[-3000:]
    # The saves felt the outages: they waited and retried, logged.
    assert retries > 0, output[-3000:]
    # A save whose reply was lost with the server is found stored, not taken for a conflict
    # that would end its scope.
    assert "was written elsewhere" not in output, output[-3000:]
