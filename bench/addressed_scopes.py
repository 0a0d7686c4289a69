"""Asking one device's scope: an event addressed to it (``send_to_scope``) against the group
query it replaced (``group_send`` to every device, then wait), in the same run (issue 21).

The thermostat example's application (``examples/thermostat/thermostat.py``) behind a real
``MqttGateway`` on a Mosquitto started here on a free loopback port, an in-memory channel
layer and a sqlite state store holding ``--devices`` devices' states. For each way of asking,
``--asks`` times, one at a time, the time from sending the ``thermostat.query`` to the
device's answer on a reply channel (milliseconds, p50 and p99):

- **addressed, running**: ``send_to_scope`` to a device whose scope is live;
- **addressed, stored**: to a device whose scope is not running (its state in the store):
  the gateway starts the scope, the consumer loads its state, then answers;
- **group, running**: the example's former way, a ``group_send`` to the ``thermostats``
  group, every live device answering or not, the first answer for the device taken;
- **group, stored**: the same for a device whose scope is not running: no answer comes, and
  the asker waits out its timeout (``--within``, the example's ``ANSWER_WITHIN``).

    python bench/addressed_scopes.py                    # 1,000 devices, 200 asks each way
    python bench/addressed_scopes.py --devices 100 --asks 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateways.mqtt import MqttGateway, MqttGatewayOptions
from gateways.testing import Mosquitto
from layer import InMemoryChannelLayer
from layer.addressing import send_to_scope
from layer.state import GroupCommit, SqliteStateStore, StateKey, StateWrite

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "thermostat"


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def ask_addressed(layer: InMemoryChannelLayer, device: str) -> float:
    reply = await layer.new_channel("bench.answers.")
    started = time.perf_counter()
    query = {"type": "thermostat.query", "device_id": device, "reply_channel": reply}
    await send_to_scope(layer, "devices", f"devices/{device}", query)
    async with asyncio.timeout(10):
        answer = await layer.receive(reply)
    if answer["device_id"] != device:
        raise RuntimeError(f"asked {device}, {answer['device_id']} answered")
    return time.perf_counter() - started


async def ask_group(layer: InMemoryChannelLayer, device: str, within: float) -> float:
    reply = await layer.new_channel("bench.answers.")
    started = time.perf_counter()
    query = {"type": "thermostat.query", "device_id": device, "reply_channel": reply}
    await layer.group_send("thermostats", query)
    try:
        async with asyncio.timeout(within):
            await layer.receive(reply)
    except TimeoutError:
        pass
    return time.perf_counter() - started


async def main(devices: int, asks: int, live: int, within: float) -> None:
    sys.path.insert(0, str(EXAMPLE))
    import thermostat  # the example's application

    folder = Path(tempfile.mkdtemp())
    store = GroupCommit(SqliteStateStore(folder / "state.sqlite3"))
    names = [f"d{i}" for i in range(devices)]
    state = json.dumps({"version": 1, "state": {"last": 21.0, "total": 63.0, "count": 3}})
    await store.save_many(
        [
            StateWrite(
                StateKey("thermostat.device", "devices", f"devices/{n}"), state.encode(), None
            )
            for n in names
        ]
    )
    layer = InMemoryChannelLayer(capacity=10_000)
    async with Mosquitto.started() as broker:
        options = MqttGatewayOptions(
            broker=broker.url, route_qos=1, scopes=[{"filter": "devices/+/+", "levels": 2}]
        )
        gateway = MqttGateway("devices", thermostat.application, options, channel_layer=layer)
        gateway.state_store = store
        await gateway.start()
        try:
            running = names[:live]
            for name in running:  # started by a first query each, then kept live
                await ask_addressed(layer, name)
            stored = names[live:]
            random.shuffle(stored)
            rows = {
                "addressed, running": [
                    await ask_addressed(layer, random.choice(running)) for _ in range(asks)
                ],
                "addressed, stored": [await ask_addressed(layer, n) for n in stored[:asks]],
                "group, running": [
                    await ask_group(layer, random.choice(running), within) for _ in range(asks)
                ],
                "group, stored": [
                    await ask_group(layer, n, within) for n in stored[asks : asks + 10]
                ],
            }
        finally:
            await gateway.stop(drain_timeout=5)
            await store.close()
    print(
        f"{devices:,} devices stored (sqlite), {live} scopes running; the thermostat's "
        f"DeviceConsumer behind MqttGateway; group timeout {within} s"
    )
    print(f"  {'way of asking':20} {'asks':>5} {'p50 ms':>9} {'p99 ms':>9}")
    p50 = {}
    for name, seconds in rows.items():
        p50[name], p99 = percentiles(seconds)
        print(f"  {name:20} {len(seconds):5} {p50[name]:9.3f} {p99:9.3f}")
    print(
        f"addressed / group, running: {p50['addressed, running'] / p50['group, running']:.2f}; "
        f"addressed / group, stored: {p50['addressed, stored'] / p50['group, stored']:.4f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="device states stored")
    parser.add_argument("--asks", type=int, default=200, help="asks per way (10 for group, stored)")
    parser.add_argument("--live", type=int, default=100, help="device scopes kept running")
    parser.add_argument("--within", type=float, default=2.0, help="group query timeout, s")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, arguments.asks, arguments.live, arguments.within))
