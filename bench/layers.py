"""Channel layer throughput: ours beside channels_redis (core and pub/sub), and in memory.

One redis-server (started here on a free loopback port, ``gateways.testing.RedisServer``) and,
per scenario and layer, two fresh layer instances in this process: one receiving (it makes
the channels with ``new_channel()``, as consumers do), one sending. Redis is emptied
(``FLUSHALL``) before each run. Scenarios:

- sequential: one sender awaits each ``send`` to one channel in a loop; a receiver drains it.
  Shown beside it, the limit of any layer that waits for Redis's answer (as ``send`` must,
  to raise ``ChannelFull``): one bare redis-py round trip per message;
- concurrent: 100 senders at once, each to its own channel (100 channels, 100 receivers);
- 1000 senders: 1,000 senders at once to 1,000 channels; errors are counted;
- group_send: ``group_send`` to a group of 1,000 channels, each receiving every message;
- in memory: ``layer.InMemoryChannelLayer`` beside ``channels.layers.InMemoryChannelLayer``:
  ``send`` then ``receive`` in a loop, and ``group_send`` to 1,000 members.

A rate is messages delivered per second, from the first send to the last receive (for
group_send, deliveries: messages times members). Each layer gets the same capacity
(100,000), so none refuses a burst. The best of ``--rounds`` rounds counts.

    python bench/layers.py            # full sizes, 3 rounds (a few minutes)
    python bench/layers.py --quick    # small sizes, 1 round (under a minute)

Targets (issue 5): concurrent >= 10x channels_redis core; sequential >= 2x core; >= 1.5x
channels_redis pub/sub (concurrent); no error at 1,000 senders; in memory, send+receive >=
1.5x Channels' and group_send to 1,000 members >= 10x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import channels.layers
import channels_redis.core
import channels_redis.pubsub
import redis
import redis.asyncio

from gateways.testing import RedisServer
from layer import InMemoryChannelLayer
from layer.redis import RedisChannelLayer

CAPACITY = 100_000
MESSAGE = {"type": "bench.message", "text": "21.5 C in the kitchen", "device": "thermo-1"}


@dataclass
class Result:
    rate: float = 0.0
    errors: int = 0
    notes: list[str] = field(default_factory=list)


def make_redis_layer(kind: str, url: str) -> Any:
    if kind == "ours":
        return RedisChannelLayer(hosts=[url], capacity=CAPACITY)
    if kind == "core":
        return channels_redis.core.RedisChannelLayer(hosts=[url], capacity=CAPACITY)
    return channels_redis.pubsub.RedisPubSubChannelLayer(hosts=[url])


async def close(layer: Any) -> None:
    closer = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if closer is not None and not isinstance(layer, channels_redis.pubsub.RedisPubSubChannelLayer):
        await closer()
    else:
        await layer.flush()  # pub/sub: flush() closes its connections


async def drain(layer: Any, channel: str, count: int) -> None:
    for _ in range(count):
        await layer.receive(channel)


async def run_channels(
    receiver: Any, sender: Any, channels: int, per_channel: int, sequential: bool
) -> Result:
    """``channels`` channels, ``per_channel`` messages each; returns messages/s."""
    names = [await receiver.new_channel() for _ in range(channels)]
    result = Result()
    readers = [asyncio.ensure_future(drain(receiver, name, per_channel)) for name in names]
    await asyncio.sleep(0.05)  # receivers waiting, as consumers are

    async def send_all(name: str) -> None:
        for _ in range(per_channel):
            try:
                await sender.send(name, MESSAGE)
            except Exception as exc:
                result.errors += 1
                if len(result.notes) < 3:
                    result.notes.append(f"{type(exc).__name__}: {exc}")

    start = time.perf_counter()
    if sequential:
        for name in names:
            await send_all(name)
    else:
        await asyncio.gather(*(send_all(name) for name in names))
    if result.errors:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        return result
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    result.rate = channels * per_channel / (time.perf_counter() - start)
    return result


async def run_group(receiver: Any, sender: Any, members: int, messages: int) -> Result:
    names = [await receiver.new_channel() for _ in range(members)]
    for name in names:
        await receiver.group_add("bench.group", name)
    readers = [asyncio.ensure_future(drain(receiver, name, messages)) for name in names]
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    for _ in range(messages):
        await sender.group_send("bench.group", MESSAGE)
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    return Result(rate=members * messages / (time.perf_counter() - start))


async def redis_case(
    kind: str, url: str, case: Callable[[Any, Any], Awaitable[Result]], rounds: int
) -> Result:
    best = Result()
    for _ in range(rounds):
        with redis.Redis.from_url(url) as client:
            client.flushall()
        receiver, sender = make_redis_layer(kind, url), make_redis_layer(kind, url)
        try:
            result = await case(receiver, sender)
        except Exception as exc:  # a layer that breaks down is reported, not fatal
            result = Result(errors=1, notes=[f"{type(exc).__name__}: {exc}"])
        finally:
            with contextlib.suppress(Exception):
                await close(receiver)
                await close(sender)
        if result.errors or result.rate > best.rate:
            best = result
        if result.errors:
            break
    return best


async def round_trip_limit(url: str, n: int) -> Result:
    """The most one sequential sender can reach on any layer that waits for Redis's answer:
    one redis-py round trip (``PING``) per message, nothing else."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
        start = time.perf_counter()
        for _ in range(n):
            await client.ping()
        return Result(rate=n / (time.perf_counter() - start))
    finally:
        await client.aclose()


async def memory_send_receive(layer: Any, n: int) -> float:
    name = await layer.new_channel()
    start = time.perf_counter()
    for _ in range(n):
        await layer.send(name, MESSAGE)
        await layer.receive(name)
    return n / (time.perf_counter() - start)


async def memory_group(layer: Any, members: int, messages: int) -> float:
    names = [await layer.new_channel() for _ in range(members)]
    for name in names:
        await layer.group_add("bench.group", name)
    start = time.perf_counter()
    for _ in range(messages):
        await layer.group_send("bench.group", MESSAGE)
        for name in names:
            await layer.receive(name)
    return members * messages / (time.perf_counter() - start)


async def best_of(rounds: int, run: Callable[[], Awaitable[float]]) -> float:
    return max([await run() for _ in range(rounds)])


async def best_of_result(rounds: int, run: Callable[[], Awaitable[Result]]) -> Result:
    return max([await run() for _ in range(rounds)], key=lambda result: result.rate)


def row(name: str, ours: Result, peer: Result, peer_name: str, target: float | None) -> list[str]:
    """A table row; ``target`` is a ratio, 0 for "no error", None for no target."""
    ratio = ours.rate / peer.rate if peer.rate else float("inf")
    if target is None:
        target_text = met = "-"
    else:
        target_text = f">= {target}x" if target else "no error"
        met = "yes" if not ours.errors and ratio >= target else "NO"
    peer_text = f"{peer.rate:,.0f}" if not peer.errors else f"{peer.errors} errors"
    return [
        name,
        f"{ours.rate:,.0f}" if not ours.errors else f"{ours.errors} errors",
        peer_name,
        peer_text,
        f"{ratio:.1f}x" if peer.rate else "-",
        target_text,
        met,
    ]


async def main(quick: bool, rounds: int) -> int:
    sizes = {
        "sequential": 300 if quick else 2000,
        "concurrent": 10 if quick else 50,  # per channel, 100 channels
        "thousand": 2 if quick else 10,  # per channel, 1000 channels
        "group": 3 if quick else 20,  # messages to 1000 members
        "memory": 20_000 if quick else 200_000,
        "memory_group": 5 if quick else 30,
    }
    rows: list[list[str]] = []
    failed = False
    async with RedisServer.started() as server:
        url = server.url
        cases: dict[str, Callable[[Any, Any], Awaitable[Result]]] = {
            "sequential (1 sender)": lambda r, s: run_channels(
                r, s, 1, sizes["sequential"], sequential=True
            ),
            "concurrent (100 senders)": lambda r, s: run_channels(
                r, s, 100, sizes["concurrent"], sequential=False
            ),
            "1,000 senders": lambda r, s: run_channels(
                r, s, 1000, sizes["thousand"], sequential=False
            ),
            "group_send, 1,000 members": lambda r, s: run_group(r, s, 1000, sizes["group"]),
        }
        targets: dict[str, tuple[float | None, float | None]] = {
            "sequential (1 sender)": (2.0, None),
            "concurrent (100 senders)": (10.0, 1.5),
            "1,000 senders": (0.0, None),
            "group_send, 1,000 members": (None, None),
        }
        for name, case in cases.items():
            results = {}
            for kind in ("ours", "core", "pubsub"):
                print(f"  {name}: {kind} ...", file=sys.stderr, flush=True)
                results[kind] = await redis_case(kind, url, case, rounds)
            core_target, pubsub_target = targets[name]
            rows.append(row(name, results["ours"], results["core"], "channels_redis", core_target))
            rows.append(row("", results["ours"], results["pubsub"], "pubsub", pubsub_target))
            if name.startswith("sequential"):
                limit = await best_of_result(rounds, lambda: round_trip_limit(url, 2000))
                rows.append(row("", results["ours"], limit, "1 round trip", None))
            for kind, result in results.items():
                for note in result.notes:
                    print(f"  {name} {kind}: {note}", file=sys.stderr)
            failed |= any(r[-1] == "NO" for r in rows[-2:])
    memory_cases = {
        "in memory: send+receive": (
            lambda layer: memory_send_receive(layer, sizes["memory"]),
            1.5,
        ),
        "in memory: group_send, 1,000": (
            lambda layer: memory_group(layer, 1000, sizes["memory_group"]),
            10.0,
        ),
    }
    for name, (run, target) in memory_cases.items():
        print(f"  {name} ...", file=sys.stderr, flush=True)
        ours = await best_of(rounds, lambda run=run: run(InMemoryChannelLayer(capacity=CAPACITY)))
        theirs = await best_of(
            rounds, lambda run=run: run(channels.layers.InMemoryChannelLayer(capacity=CAPACITY))
        )
        rows.append(row(name, Result(ours), Result(theirs), "channels", target))
        failed |= rows[-1][-1] == "NO"
    header = ["scenario", "ours msg/s", "peer", "peer msg/s", "ours/peer", "target", "met"]
    for line in [header, *rows]:
        print(
            f"{line[0]:<30} {line[1]:>14} {line[2]:>15} {line[3]:>12} {line[4]:>9} "
            f"{line[5]:>9} {line[6]:>4}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case (best counts)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rounds = args.rounds or (1 if args.quick else 3)
    sys.exit(asyncio.run(main(args.quick, rounds)))
