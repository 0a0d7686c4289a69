"""At least once, end to end: the daemon killed (SIGKILL), stopped (SIGTERM) and the broker
restarted while a publisher streams QoS 1 or 2 messages; every message the broker
acknowledged to the publisher reaches the application, on MQTT 3.1.1 and 5.

The daemon runs ``tests/daemon_apps/ledger.py`` on a persistent session (``client_id``,
``clean_start: false``; on MQTT 5 the session expiry defaults to an hour) against a
Mosquitto with persistence, four device scopes, about 4 ms of work per message."""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemon_helpers import Daemon, Publisher

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]

MESSAGES = 4000
RATE = 1500  # messages a second, as the operator's publisher in issue 12
DEVICES = 4


def ledger_config(tmp_path: Path, protocol: str, qos: int) -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "application: ledger:application\n"
        "shutdown_timeout: 5\n"
        "gateways:\n"
        "  devices:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        f"    protocol: '{protocol}'\n"
        "    client_id: ledger\n"
        "    clean_start: false\n"
        "    idle_timeout: null\n"
        "    subscriptions:\n"
        f"      - {{topic: 'devices/+/telemetry', qos: {qos}}}\n"
        "    scopes:\n"
        "      - {filter: 'devices/+/#', levels: 2}\n"
    )
    return config


def recorded(record: Path) -> list[tuple[int, bool]]:
    if not record.exists():
        return []
    lines = record.read_bytes().decode().splitlines()
    return [(int(line.split()[0]), line.endswith(" dup")) for line in lines]


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_nothing_the_broker_acknowledged_is_lost(
    make_mosquitto: Any, tmp_path: Path, protocol: str, qos: int
) -> None:
    # max_queued_messages 0: Mosquitto keeps every message for the offline session (its
    # default drops past 1,000, which would be the broker's loss, not the daemon's).
    broker = make_mosquitto("max_queued_messages 0\n", persistence=True)
    record = tmp_path / "handled.log"
    config = ledger_config(tmp_path, protocol, qos)
    env = {"MQTT_URL": broker.url, "RECORD_FILE": str(record)}
    daemons: list[Daemon] = []

    def start_daemon() -> None:
        daemons.append(Daemon(config, env))

    async def kill_and_restart() -> None:
        daemons[-1].stop(signal.SIGKILL)
        start_daemon()

    async def terminate_and_restart() -> None:
        assert await asyncio.to_thread(daemons[-1].stop, signal.SIGTERM) == 0
        start_daemon()

    async def restart_broker() -> None:
        await asyncio.to_thread(broker.restart)

    start_daemon()
    try:
        # The session must exist before the stream, for the broker to keep messages for it.
        await broker.wait_log("ledger 1 devices/+/telemetry", timeout=20)
        publisher = Publisher(
            broker,
            qos,
            MESSAGES,
            DEVICES,
            RATE,
            {
                MESSAGES // 4: kill_and_restart,
                MESSAGES // 2: terminate_and_restart,
                3 * MESSAGES // 4: restart_broker,
            },
        )
        await publisher.run()
        assert publisher.faults == {}  # all three faults happened mid-stream
        try:
            async with asyncio.timeout(60):
                while {s for s, _ in recorded(record)} < set(publisher.acknowledged):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            missing = set(publisher.acknowledged) - {s for s, _ in recorded(record)}
            daemons[-1].stop(signal.SIGTERM)
            pytest.fail(
                f"{len(missing)} acknowledged messages never reached the application, e.g. "
                f"{sorted(missing)[:20]}; the last daemon said:\n{daemons[-1].output[-3000:]}"
            )
        assert await asyncio.to_thread(daemons[-1].stop, signal.SIGTERM) == 0
    finally:
        for daemon in daemons:
            daemon.stop(signal.SIGKILL)

    handled = recorded(record)
    seen = collections.Counter(sequence for sequence, _ in handled)
    lost = set(publisher.acknowledged) - set(seen)
    assert lost == set(), f"lost {len(lost)} of {MESSAGES}: {sorted(lost)[:20]}"
    # A message handled twice came again from the broker, marked dup, at least once.
    redelivered = {sequence for sequence, dup in handled if dup}
    twice = {sequence for sequence, count in seen.items() if count > 1}
    assert twice <= redelivered, sorted(twice - redelivered)[:20]
    print(
        f"{protocol} QoS {qos}: 0 lost of {MESSAGES}; {len(twice)} handled twice; "
        f"{len(redelivered)} marked dup"
    )


async def test_a_daemon_started_while_the_broker_is_away_waits_for_it(
    make_mosquitto: Any, tmp_path: Path
) -> None:
    broker = make_mosquitto(persistence=True)
    broker.stop()  # away when the daemon starts
    record = tmp_path / "handled.log"
    daemon = Daemon(
        ledger_config(tmp_path, "5", 1), {"MQTT_URL": broker.url, "RECORD_FILE": str(record)}
    )
    try:
        await asyncio.sleep(3)  # several connection attempts
        assert daemon.process.poll() is None, "the daemon exited while the broker was away"
        broker.start()
        await broker.wait_log("ledger 1 devices/+/telemetry", timeout=40)
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.publish("devices/d0/telemetry", b"7", qos=1)
        async with asyncio.timeout(10):
            while not recorded(record):
                await asyncio.sleep(0.05)
        assert recorded(record) == [(7, False)]
        assert await asyncio.to_thread(daemon.stop, signal.SIGTERM) == 0
    finally:
        daemon.stop(signal.SIGKILL)
    assert "cannot connect to" in daemon.output
