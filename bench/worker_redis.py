"""Soak: a Worker on the Redis layer holds the same connections and memory for every job.

One redis-server (``gateways.testing.RedisServer``), one ``RedisChannelLayer`` and the real
``gateways.daemon.Worker`` serving ``--channels`` plain channels (``jobs.0`` ...), each with an
application instance that counts what it handles. A producer in the same process sends
``--jobs`` jobs round-robin over the channels, at most ``WINDOW`` ahead of the worker (so
none meets the layer's capacity). Each job is one ``receive()`` on a channel without ``!``:
one pump, which takes a Redis connection and gives it back when it ends (issue 26: before,
each left its connection open, one more Redis client per job).

Every ``--every`` jobs it prints the Redis clients besides its own probe (``CLIENT LIST``),
the process's resident memory (RSS, ``/proc/self/statm``) and the rate. The verdict: the
clients stay at most ``--channels`` pumps plus the shard's batch connections, and the RSS
peak of the last third of the samples stays within 20 % of the middle third's.

    python bench/worker_redis.py                    # 100,000 jobs, a sample every 10,000
    python bench/worker_redis.py --quick            # 3,000 jobs, a sample every 500
    python bench/worker_redis.py --jobs 20000 --channels 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import redis

from gateways.daemon import Worker, WorkerOptions
from gateways.testing import RedisServer
from layer.redis import RedisChannelLayer
from layer.redis.shard import MAX_IN_FLIGHT

WINDOW = 200
"""Most jobs sent and not handled yet."""

BATCH_CONNECTIONS = MAX_IN_FLIGHT + 1
"""Most connections a shard keeps for batches and single commands."""


def rss() -> int:
    """This process's resident memory in bytes (peak RSS where ``/proc`` is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


class Jobs:
    """The worker's application: counts the jobs its instances handle."""

    def __init__(self) -> None:
        self.handled = 0
        self.progress = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "channel.disconnect":
            self.handled += 1
            self.progress.set()

    async def wait_until(self, handled: int) -> None:
        while self.handled < handled:
            self.progress.clear()
            await self.progress.wait()


async def soak(jobs: int, every: int, channel_count: int) -> int:
    channels = [f"jobs.{n}" for n in range(channel_count)]
    async with RedisServer.started() as server:
        probe = redis.Redis.from_url(server.url)
        own = probe.client_id()

        def clients() -> int:
            return sum(1 for client in probe.client_list() if int(client["id"]) != own)

        layer = RedisChannelLayer(hosts=[server.url], capacity=10 * WINDOW)
        app = Jobs()
        worker = Worker(app, channels, channel_layer=layer, options=WorkerOptions())
        await worker.start()
        samples: list[tuple[int, int, int]] = []
        print(f"{'jobs':>9} {'t (s)':>7} {'jobs/s':>8} {'Redis clients':>14} {'RSS (MiB)':>10}")
        start = last_time = time.monotonic()
        last_jobs = 0
        for n in range(jobs):
            if n - app.handled >= WINDOW:
                await app.wait_until(n - WINDOW // 2)
            await layer.send(channels[n % channel_count], {"type": "job.run", "n": n})
            done = n + 1
            if done % every == 0 or done == jobs:
                await app.wait_until(done)
                now = time.monotonic()
                count, memory = clients(), rss()
                samples.append((done, count, memory))
                rate = (done - last_jobs) / max(now - last_time, 1e-9)
                print(
                    f"{done:9,} {now - start:7.1f} {rate:8,.0f} {count:14,} {memory / 2**20:10.1f}"
                )
                last_time, last_jobs = now, done
        await worker.stop(drain_timeout=5)
        await layer.close()
        probe.close()
    bound = channel_count + BATCH_CONNECTIONS
    peak_clients = max(count for _, count, _ in samples)
    third = max(len(samples) // 3, 1)
    middle = max(memory for _, _, memory in samples[third : 2 * third] or samples)
    last = max(memory for _, _, memory in samples[2 * third :] or samples)
    bounded = peak_clients <= bound
    flat = last <= middle * 1.2
    print(
        f"Redis clients: at most {peak_clients} over {jobs:,} jobs (bound {bound}: "
        f"{channel_count} pump(s) + {BATCH_CONNECTIONS} batch connections): "
        f"{'bounded' if bounded else 'GROWING'}"
    )
    print(
        f"peak RSS: middle third {middle / 2**20:.1f} MiB, last third {last / 2**20:.1f} MiB "
        f"({last / middle:.2f}x): {'flat' if flat else 'GROWING'}"
    )
    return 0 if bounded and flat else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs to run")
    parser.add_argument("--every", type=int, default=None, help="jobs between samples")
    parser.add_argument("--channels", type=int, default=1, help="channels the worker serves")
    parser.add_argument("--quick", action="store_true", help="3,000 jobs, a sample every 500")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.every = 3_000, args.every or 500
    every = args.every or max(args.jobs // 10, 1)
    if args.jobs < 1 or args.channels < 1 or every < 1:
        parser.error("--jobs, --every and --channels must be at least 1")
    sys.exit(asyncio.run(soak(args.jobs, every, args.channels)))
