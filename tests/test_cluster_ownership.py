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
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import Daemon, Publisher
from test_monitoring import metrics, value

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
        "monitoring:\n"
        "  port: ${MONITORING_PORT}\n"
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


async def tallies(redis: RedisServer, devices: int = DEVICES) -> dict[str, dict[str, int]]:
    store = build_state_store({"backend": "redis", "hosts": [redis.url]})
    found = {}
    for device in range(devices):
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
            "MONITORING_PORT": "0",
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


async def test_a_daemon_paused_past_its_lease_finds_its_writes_refused(
    make_mosquitto: Any, make_redis: Any, free_port: Any, tmp_path: Path
) -> None:
    """SIGSTOP one of two daemons past its lease, then SIGCONT: the other takes its scopes
    over meanwhile; what the paused one's instances were handling is refused by the store
    (counted), it ends them, and every count is still exact: nothing applied twice, no newer
    state overwritten."""
    broker = make_mosquitto("max_queued_messages 0\n", persistence=True)
    redis: RedisServer = make_redis()
    path = config(tmp_path)
    # 11 devices: the broker alternates between the two daemons, so that each daemon gets
    # readings of every device (with an even number each would see only its own half).
    devices, messages, rate = 11, 3300, 200
    daemons: dict[str, Daemon] = {}
    ports = {"a": free_port(), "b": free_port()}
    for name in ("a", "b"):
        env = {
            "MQTT_URL": broker.url,
            "REDIS_URL": redis.url,
            "CLIENT_ID": f"fleet-{name}",
            "MONITORING_PORT": str(ports[name]),
            "WORK_SECONDS": "0.02",  # each daemon's devices keep a backlog of readings
        }
        daemons[name] = Daemon(path, env)
    pauses: list[asyncio.Task[None]] = []

    async def pause_b() -> None:
        pid = daemons["b"].process.pid
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(3 * LEASE)  # the stream goes on, to a alone
        os.kill(pid, signal.SIGCONT)

    async def start_pause() -> None:
        pauses.append(asyncio.get_running_loop().create_task(pause_b()))

    expected = {
        f"d{d}": {"count": messages // devices, "total": sum(range(d, messages, devices))}
        for d in range(devices)
    }
    found: dict[str, dict[str, int]] = {}
    try:
        for name in ("a", "b"):
            await broker.wait_log(f"fleet-{name} 1 $share/fleet/devices/+/telemetry", timeout=30)
        publisher = Publisher(
            broker,
            1,
            messages,
            devices,
            rate,
            {messages // 3: start_pause},
            payload=lambda sequence: json.dumps({"seq": sequence}).encode(),
        )
        await publisher.run()
        await asyncio.gather(*pauses)
        try:
            async with asyncio.timeout(90):
                while (found := await tallies(redis, devices)) != expected:
                    await asyncio.sleep(0.5)
        except TimeoutError:
            pass
        refused = value(
            await metrics(f"http://127.0.0.1:{ports['b']}"),
            "asgi_gateway_state_conflicts_total",
            gateway="devices",
        )
        codes = [await asyncio.to_thread(d.stop, signal.SIGTERM) for d in daemons.values()]
    finally:
        for daemon in daemons.values():
            if daemon.process.returncode is None:
                os.kill(daemon.process.pid, signal.SIGCONT)
                daemon.stop(signal.SIGKILL)
    output_b = daemons["b"].output
    takeovers = daemons["a"].output.count("took scope")
    print(f"\nstale saves refused {refused:.0f}; takeovers by a {takeovers}")
    assert found == expected, output_b[-3000:]
    assert "Cluster: took scope" in daemons["a"].output
    assert "had expired" in output_b, output_b[-3000:]  # b knew, and ended its instances
    assert refused >= 1, output_b[-3000:]  # the stale instances' saves were refused
    assert output_b.count("was written elsewhere since it was loaded") == refused
    assert codes == [0, 0]
