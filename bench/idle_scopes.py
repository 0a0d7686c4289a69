"""Memory per idle scope, time to open N scopes, and delivery to one among many.

Each scope is one device consumer joined to the group ``telemetry``, waiting for events from
its gateway and its channel layer. The same transport-less gateway runs, in one process and
one run:

- ours: ``consumers.MqttConsumer`` on ``layer.InMemoryChannelLayer``;
- peer: Channels' ``AsyncConsumer`` on Channels' ``InMemoryChannelLayer``, joining its group
  on ``mqtt.connect`` (what a Channels user writes).

Memory is what ``tracemalloc`` sees allocated per scope once all are idle (Python objects:
tasks, futures, consumers, scopes, layer entries); time is wall-clock from the first open to
all consumers waiting. Delivery is the mean round trip of an event to one scope (dispatch,
handler, reply through ``send``) with N scopes live, against the same with 100 live.

    python bench/idle_scopes.py            # 100,000 scopes each
    python bench/idle_scopes.py -n 20000

Targets (issue 2): at most 2 KB per idle scope, 100,000 opened in under 5 s, and delivery
to one of them staying fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from gateways.base import Gateway, GatewayOptions, ScopeInstance
from layer.types import ASGIApp, Message

TARGET_BYTES = 2048
TARGET_OPEN_SECONDS = 5.0


class BenchGateway(Gateway):
    protocol = "mqtt"

    def __init__(self, application: ASGIApp, layer: Any, n: int) -> None:
        super().__init__(
            "bench",
            application,
            GatewayOptions(idle_timeout=None, max_scopes=n + 1000),
            channel_layer=layer,
        )
        self.replies: asyncio.Queue[Message] = asyncio.Queue()

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        self.replies.put_nowait(message)


def ours() -> tuple[ASGIApp, Any]:
    from consumers import MqttConsumer
    from layer import InMemoryChannelLayer

    class Device(MqttConsumer):
        groups = ("telemetry",)

        async def receive(self, message: Any) -> None:
            await self.publish("reply", message["payload"])

    return Device.as_asgi(), InMemoryChannelLayer()


def ours_routed() -> tuple[ASGIApp, Any]:
    """The same consumer behind ProtocolTypeRouter and TopicRouter, as an application is."""
    from consumers import ProtocolTypeRouter, TopicRouter, route

    app, layer = ours()
    routed = ProtocolTypeRouter({"mqtt": TopicRouter([route("devices/{device_id}", app)])})
    return routed, layer


def channels_peer() -> tuple[ASGIApp, Any]:
    from channels.consumer import AsyncConsumer
    from channels.exceptions import StopConsumer
    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()

    class Device(AsyncConsumer):  # type: ignore[misc]
        async def mqtt_connect(self, message: Any) -> None:
            await self.channel_layer.group_add("telemetry", self.channel_name)

        async def mqtt_message(self, message: Any) -> None:
            await self.send(
                {"type": "mqtt.publish", "topic": "reply", "payload": message["payload"]}
            )

        async def mqtt_disconnect(self, message: Any) -> None:
            await self.channel_layer.group_discard("telemetry", self.channel_name)
            raise StopConsumer

    # Channels finds its layer by alias in Django's settings; hand it ours instead.
    import channels.layers

    channels.layers.channel_layers.backends["default"] = layer
    return Device.as_asgi(), layer


async def settle(gateway: BenchGateway) -> None:
    """Let every opened instance run until it waits (its connect event taken)."""
    while any(i._queue for i in gateway.instances.values()):
        await asyncio.sleep(0)
    for _ in range(3):
        await asyncio.sleep(0)


async def open_scopes(gateway: BenchGateway, n: int) -> None:
    for i in range(n):
        key = f"devices/{i}"
        gateway.open_scope(key, gateway.new_scope(topic=key, scope_key=key, subscription="#"))
        if i % 1000 == 999:
            await asyncio.sleep(0)
    await settle(gateway)


async def round_trips(gateway: BenchGateway, keys: list[str], rounds: int) -> float:
    """Mean seconds for one event to reach a scope's handler and its reply to come back."""
    samples = []
    for r in range(rounds):
        key = keys[r % len(keys)]
        start = time.perf_counter()
        await gateway.dispatch(
            key,
            {
                "type": "mqtt.message",
                "topic": key,
                "payload": b"x",
                "qos": 0,
                "retain": False,
                "properties": None,
            },
        )
        await gateway.replies.get()
        samples.append(time.perf_counter() - start)
    return statistics.fmean(samples)


async def measure(
    name: str, factory: Callable[[], tuple[ASGIApp, Any]], n: int
) -> dict[str, float]:
    app, layer = factory()
    # Memory: a traced run of n scopes.
    gc.collect()
    tracemalloc.start()
    gateway = BenchGateway(app, layer, n)
    await gateway.start()
    before = tracemalloc.get_traced_memory()[0]
    await open_scopes(gateway, n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await gateway.stop(drain_timeout=30)
    per_scope = (after - before) / n

    # Time, untraced: open n scopes, then deliver to one among them.
    app, layer = factory()
    gateway = BenchGateway(app, layer, n)
    await gateway.start()
    await open_scopes(gateway, 100)
    few = await round_trips(gateway, [f"devices/{i}" for i in range(100)], 2000)
    await gateway.stop(drain_timeout=30)

    app, layer = factory()
    gateway = BenchGateway(app, layer, n)
    await gateway.start()
    start = time.perf_counter()
    await open_scopes(gateway, n)
    open_seconds = time.perf_counter() - start
    many = await round_trips(gateway, [f"devices/{i}" for i in range(0, n, max(1, n // 100))], 2000)
    await gateway.stop(drain_timeout=60)
    print(
        f"{name:>9}: {per_scope:8.0f} B/scope   open {n:,} in {open_seconds:6.2f} s   "
        f"round trip {few * 1e6:6.1f} us with 100 live, {many * 1e6:6.1f} us with {n:,} live"
    )
    return {"bytes": per_scope, "open": open_seconds, "few": few, "many": many}


def report(ours_r: dict[str, float], peer_r: dict[str, float], n: int) -> None:
    print(f"at {n:,} scopes, ours / channels:")
    print(f"  memory per idle scope  {ours_r['bytes'] / peer_r['bytes']:.2f}")
    print(f"  time to open them      {ours_r['open'] / peer_r['open']:.3f}")
    print(f"  round trip to one      {ours_r['many'] / peer_r['many']:.2f}")


def measure_in_subprocess(name: str, n: int) -> dict[str, float]:
    """Each measurement in a fresh interpreter: no garbage of another run to collect."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", name, str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = out.strip().splitlines()
    print(lines[0])
    result: dict[str, float] = json.loads(lines[-1])
    return result


def one(name: str, n: int) -> None:
    if name == "channels":  # Django only where it is used: its objects slow every gc pass
        import django
        from django.conf import settings

        settings.configure(
            CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        )
        django.setup()
    logging.getLogger("gateways").setLevel(logging.ERROR)
    factory = {"ours": ours, "routed": ours_routed, "channels": channels_peer}[name]
    print(json.dumps(asyncio.run(measure(name, factory, n))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="scopes for ours (100,000)")
    parser.add_argument(
        "--peer-n",
        type=int,
        default=10_000,
        help="scopes for the side-by-side run with Channels (10,000; its start-up grows with "
        "the square of the count past that)",
    )
    parser.add_argument("--one", nargs=2, metavar=("SIDE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]))
        return

    peer_n = min(args.peer_n, args.n)
    full = measure_in_subprocess("ours", args.n)
    side_ours = measure_in_subprocess("ours", peer_n) if peer_n != args.n else full
    side_peer = measure_in_subprocess("channels", peer_n)
    routed = measure_in_subprocess("routed", args.n)
    print()
    report(side_ours, side_peer, peer_n)
    met_bytes = full["bytes"] <= TARGET_BYTES
    met_open = full["open"] < TARGET_OPEN_SECONDS
    print(f"ours at {args.n:,} scopes against the targets:")
    print(
        f"  memory per idle scope  {full['bytes']:.0f} B / {TARGET_BYTES} B = "
        f"{full['bytes'] / TARGET_BYTES:.2f} ({'met' if met_bytes else 'MISSED'})"
    )
    print(
        f"  time to open them      {full['open']:.2f} s / {TARGET_OPEN_SECONDS} s = "
        f"{full['open'] / TARGET_OPEN_SECONDS:.2f} ({'met' if met_open else 'MISSED'})"
    )
    print(f"  round trip to one      {full['many'] / full['few']:.2f} of the same with 100 live")
    print(
        "behind ProtocolTypeRouter and TopicRouter (how applications run; not the target): "
        f"{routed['bytes']:.0f} B per idle scope, {routed['open']:.2f} s to open {args.n:,}"
    )


if __name__ == "__main__":
    main()
