"""Soak: Redis memory stays flat while a sender fills channels that nobody reads.

One redis-server (``gateways.testing.RedisServer``) and one ``RedisChannelLayer`` with a short
``--expiry``. For ``--seconds`` a sender, ten times a second:

- sends to 20 new process-specific channels of consumers that are gone (each a key of its
  own, as every process's ``!`` channels share one key);
- sends to 500 plain channels in turn (``jobs.0`` ... ``jobs.499``), which fill up to their
  capacity (``ChannelFull`` is counted, as a sender sees it);
- ``group_send``s to a group of 200 members that never read.

Every 2 seconds it prints Redis ``used_memory`` and the number of keys. Keys expire
``expiry`` seconds after their latest message, so after a warm-up of one expiry both stay
flat; the verdict compares the peak of the last third of the run with the peak of the middle
third (flat: within 20 %).

    python bench/redis_soak.py                     # 60 s, expiry 5 s
    python bench/redis_soak.py --seconds 20 --expiry 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import redis

from gateways.testing import RedisServer
from layer import ChannelFull
from layer.redis import RedisChannelLayer

MESSAGE = {"type": "soak.message", "text": "x" * 200}


async def soak(seconds: float, expiry: float) -> int:
    async with RedisServer.started() as server:
        layer = RedisChannelLayer(hosts=[server.url], expiry=expiry, group_expiry=3600)
        probe = redis.Redis.from_url(server.url)
        for n in range(200):
            await layer.group_add("soak.room", f"specific.{uuid.uuid4().hex}!{n}")
        sent = full = 0
        samples: list[tuple[float, int, int]] = []
        start = time.monotonic()
        next_sample = start
        tick = 0
        print(f"{'t (s)':>6} {'used_memory':>12} {'keys':>7} {'sent':>9} {'ChannelFull':>12}")
        while (now := time.monotonic()) - start < seconds:
            gone = [f"specific.{uuid.uuid4().hex}!1" for _ in range(20)]
            plain = [f"jobs.{(tick * 50 + n) % 500}" for n in range(50)]
            for channel in gone + plain:
                try:
                    await layer.send(channel, MESSAGE)
                    sent += 1
                except ChannelFull:
                    full += 1
            await layer.group_send("soak.room", MESSAGE)
            tick += 1
            if now >= next_sample:
                memory = int(probe.info("memory")["used_memory"])
                keys = int(probe.dbsize())
                samples.append((now - start, memory, keys))
                print(f"{now - start:6.1f} {memory:12,} {keys:7,} {sent:9,} {full:12,}")
                next_sample += 2
            await asyncio.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))
        await layer.close()
        probe.close()
    third = len(samples) // 3
    middle = max(memory for _, memory, _ in samples[third : 2 * third])
    last = max(memory for _, memory, _ in samples[2 * third :])
    flat = last <= middle * 1.2
    print(
        f"peak used_memory: middle third {middle:,} B, last third {last:,} B "
        f"({last / middle:.2f}x): {'flat' if flat else 'GROWING'}"
    )
    return 0 if flat else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--expiry", type=float, default=5.0, help="the layer's expiry (s)")
    args = parser.parse_args()
    if args.seconds < 6 * args.expiry:
        parser.error("--seconds must be at least 6 times --expiry to see a steady state")
    sys.exit(asyncio.run(soak(args.seconds, args.expiry)))
