"""One live instance per scope across daemons (issue 22): three daemons as processes on a real
Mosquitto (an MQTT 5 shared subscription spreads the readings over them) and a real
redis-server (the channel layer, the state store and the cluster's records). Each scope is
owned by one daemon; the others forward its events there. One daemon is killed with SIGKILL
mid-stream and started again: its scopes move to the others once its lease runs out, every
device's count ends exact, and no two instances of one scope were ever live at once."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon, Publisher

from gateways.testing import RedisServer
from layer.state import StateKey, build_state_store

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(240)]

DEVICES = 50
READINGS = 200
MESSAGES = DEVICES * READINGS
RATE = 1000
LEASE = 2.0


def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "application: cluster_counting:application\n"
        "shutdown_timeout: 5\n"
        "logging: {level: INFO}\n"
        "layer: {type: redis, options: {hosts: ['${REDIS_URL}']}}\n"
        "state: {backend: redis, hosts: ['${REDIS_URL}']}\n"
        f"cluster: {{lease: {LEASE}, forward_timeout: 5}}\n"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        "    protocol: '5'\n"
        "    client_id: ${CLIENT_ID}\n"
        "    clean_start: false\n"
        "    idle_timeout: null\n"
        "    idempotency_key: {json_field: seq}\n"
        "    subscriptions:\n"
        "      - {topic: '$share/fleet/devices/+/telemetry', qos: 1}\n"
        "    scopes:\n"
        "      - {filter: 'devices/+/#', levels: 2}\n"
    )
    return path


async def tallies(redis: RedisServer) -> dict[str, dict[str, int]]:
    store = build_state_store({"backend": "redis", "hosts": [redis.url]})
    found = {}
    for device in range(DEVICES):
        stored = await store.load(StateKey("counting", "devices", f"devices/d{device}"))
        if stored is not None and stored.data:
            found[f"d{device}"] = json.loads(stored.data)["state"]
    await store.close()
    return found


def overlaps(probe: Path, killed: dict[int, float]) -> list[str]:
    """Every two instances of one scope whose lives overlapped, from the probe's lines
    (``start|end <pid> <time> <key>``); an instance of a killed process ends at its kill."""
    lives: dict[str, list[list[float]]] = defaultdict(list)
    open_lives: dict[tuple[int, str], list[float]] = {}
    for line in probe.read_text().splitlines():
        what, pid, at, key = line.split(" ", 3)
        if what == "start":
            life = [float(at), float("inf")]
            open_lives[(int(pid), key)] = life
            lives[key].append(life)
        else:
            open_lives.pop((int(pid), key), [0.0, 0.0])[1] = float(at)
    for (pid, _key), life in open_lives.items():
        if pid in killed:
            life[1] = killed[pid]
    problems = []
    for key, spans in lives.items():
        spans.sort()
        for before, after in itertools.pairwise(spans):
            if after[0] < before[1]:
                problems.append(f"{key}: {before} and {after}")
    return problems


async def test_every_count_is_exact_and_one_instance_lives_per_scope_through_a_sigkill(
    make_mosquitto: Any, make_redis: Any, tmp_path: Path
) -> None:
    broker = make_mosquitto("max_queued_messages 0\n", persistence=True)
    redis: RedisServer = make_redis()
    path = config(tmp_path)
    probe = tmp_path / "probe.log"
    daemons: dict[str, Daemon] = {}
    killed: dict[int, float] = {}
    gone: list[Daemon] = []

    def start(name: str) -> None:
        env = {
            "MQTT_URL": broker.url,
            "REDIS_URL": redis.url,
            "CLIENT_ID": f"fleet-{name}",
            "CLUSTER_PROBE": str(probe),
        }
        daemons[name] = Daemon(path, env)

    async def kill_and_restart_b() -> None:
        victim = daemons["b"]
        victim.process.kill()
        killed[victim.process.pid] = time.time()
        await asyncio.to_thread(victim.stop, None)
        gone.append(victim)
        start("b")  # the same MQTT session: it gets what the broker kept for it

    for name in ("a", "b", "c"):
        start(name)
    expected = {
        f"d{d}": {"count": READINGS, "total": sum(range(d, MESSAGES, DEVICES))}
        for d in range(DEVICES)
    }
    try:
        for name in ("a", "b", "c"):
            await broker.wait_log(f"fleet-{name} 1 $share/fleet/devices/+/telemetry", timeout=30)
        publisher = Publisher(
            broker,
            1,
            MESSAGES,
            DEVICES,
            RATE,
            {MESSAGES // 3: kill_and_restart_b},
            payload=lambda sequence: json.dumps({"seq": sequence}).encode(),
        )
        await publisher.run()
        assert publisher.faults == {}  # the kill happened mid-stream
        found: dict[str, dict[str, int]] = {}
        try:
            async with asyncio.timeout(90):
                while (found := await tallies(redis)) != expected:
                    await asyncio.sleep(0.5)
        except TimeoutError:
            pass
        codes = [await asyncio.to_thread(d.stop, signal.SIGTERM) for d in daemons.values()]
    finally:
        for daemon in daemons.values():
            if daemon.process.returncode is None:
                daemon.stop(signal.SIGKILL)
    output = "".join(d.output for d in [*gone, *daemons.values()])
    missing = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    assert not missing, (
        f"{len(missing)} devices off, e.g. {list(missing.items())[:3]}\n{output[-3000:]}"
    )
    assert codes == [0, 0, 0], output[-3000:]
    # The killed daemon's scopes were taken over by the others once its lease ran out.
    assert "Cluster: took scope" in output, output[-3000:]
    assert overlaps(probe, killed) == []
