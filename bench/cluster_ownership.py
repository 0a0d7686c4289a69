"""Scope ownership across daemons (issue 22): what a forwarded event costs against a local one,
the throughput of two daemons against one with ownership on and the same two with it off,
and the time from a daemon's SIGKILL to the first event of its scope handled elsewhere.

Daemons run as processes (``python -m gateways run``) on a Mosquitto and a redis-server
started here on free loopback ports; this file is also their application: one ``Echo``
consumer per device scope (``bench/<device>/...`` under a ``scopes`` rule of 2 levels),
which answers each message on ``bench/<device>/reply`` with its daemon's process id.

1. **Per event, local and forwarded** (ms, p50/p99, one message in flight): daemon A
   subscribes to ``bench/+/a``, daemon B to ``bench/+/b``. A device whose first message went
   to B is B's: its messages on ``bench/<device>/a`` reach A, which forwards them to B. The
   same round trip (publish, reply) for a device A owns is the local one.
2. **Throughput** (msg/s): ``-n`` QoS 1 messages over 100 devices (``bench/<n>``, from the
   pipelining publisher of ``bench/mqtt_ingest.py``) on a shared subscription, until every
   reply is in: one daemon with ``cluster:``; two with it; two without.
3. **Failover**: B owns a device; B is killed with SIGKILL; a message to the device every
   20 ms, through A, until A's answer comes (``--lease`` seconds and a renewal at most).

    python bench/cluster_ownership.py                 # 20,000 messages, lease 2 s
    python bench/cluster_ownership.py -n 5000 --lease 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from consumers import MqttConsumer

HERE = Path(__file__).resolve().parent


class Echo(MqttConsumer):
    """Answers each message of its device with this process's id."""

    async def receive(self, message: Any) -> None:
        device = self.scope["scope_key"].split("/")[1]
        await self.publish(f"bench/{device}/reply", str(os.getpid()), qos=1)


application = Echo.as_asgi()


def yaml(folder: Path, name: str, subscription: str, *, cluster: bool, lease: float) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        "application: cluster_ownership:application\n"
        "logging:\n  level: ${BENCH_LOG:-WARNING}\n"
        "shutdown_timeout: 5\n"
        "layer: {type: redis, options: {hosts: ['${REDIS_URL}']}}\n"
        + (f"cluster: {{lease: {lease}}}\n" if cluster else "")
        + "gateways:\n"
        "  bench:\n"
        "    type: mqtt\n"
        "    broker: ${MQTT_URL}\n"
        "    protocol: '5'\n"
        f"    client_id: bench-{name}\n"
        "    subscribe_routes: false\n"
        "    idle_timeout: null\n"
        f"    subscriptions: [{{topic: '{subscription}', qos: 1}}]\n"
        "    scopes: [{filter: 'bench/+/#', levels: 2}]\n"
    )
    return path


def daemon(config: Path, broker: Any, redis: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "MQTT_URL": broker.url, "REDIS_URL": redis.url}
    return subprocess.Popen(
        [sys.executable, "-m", "gateways", "run", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    process.wait(timeout=20)


class Replies:
    """The replies on ``bench/+/reply``, as they come: (device, pid, time)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queue: asyncio.Queue[tuple[str, int, float]] = asyncio.Queue()

    async def read(self) -> None:
        async for message in self.client.messages:
            device = message.topic.value.split("/")[1]
            await self.queue.put((device, int(message.payload), time.perf_counter()))

    async def next(self, within: float = 10.0) -> tuple[str, int, float]:
        async with asyncio.timeout(within):
            return await self.queue.get()


async def until_answered(client: Any, replies: Replies, topic: str, within: float = 30) -> int:
    """Publish to ``topic`` every 0.2 s until its device answers (the daemons start); the pid."""
    async with asyncio.timeout(within):
        while True:
            await client.publish(topic, b"x", qos=1)
            try:
                return (await replies.next(0.2))[1]
            except TimeoutError:
                continue


async def per_event(broker: Any, redis: Any, folder: Path, lease: float, asks: int) -> None:
    import aiomqtt

    a = daemon(yaml(folder, "a", "bench/+/a", cluster=True, lease=lease), broker, redis)
    b = daemon(yaml(folder, "b", "bench/+/b", cluster=True, lease=lease), broker, redis)
    try:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe("bench/+/reply", qos=0)
            replies = Replies(client)
            reader = asyncio.get_running_loop().create_task(replies.read())
            pid_b = await until_answered(client, replies, "bench/remote/b")  # B owns remote
            pid_a = await until_answered(client, replies, "bench/local/a")  # A owns local
            times: dict[str, list[float]] = {"local": [], "forwarded": []}
            for _ in range(asks):
                for case, device in (("local", "local"), ("forwarded", "remote")):
                    started = time.perf_counter()
                    await client.publish(f"bench/{device}/a", b"x", qos=1)
                    got, pid, at = await replies.next()
                    if got != device or pid != (pid_a if case == "local" else pid_b):
                        raise RuntimeError(f"{device} answered by {pid}")
                    times[case].append(at - started)
            print("1. per event, one in flight, through daemon A:")
            p50 = {}
            for case, seconds in times.items():
                ordered = sorted(seconds)
                p50[case] = statistics.median(ordered) * 1000
                p99 = ordered[int(len(ordered) * 0.99)] * 1000
                print(f"   {case:10} p50 {p50[case]:7.3f} ms  p99 {p99:7.3f} ms ({asks} each)")
            print(f"   forwarded / local: {p50['forwarded'] / p50['local']:.2f}")

            # 3. Failover: B dies; A takes `remote` over once B's lease runs out.
            stop(b, signal.SIGKILL)
            killed = time.perf_counter()
            while True:
                await client.publish("bench/remote/a", b"x", qos=1)
                try:
                    _, pid, at = await replies.next(0.02)
                except TimeoutError:
                    continue
                if pid == pid_a:
                    break
            print(
                f"3. failover: SIGKILL of the owner to the first event handled elsewhere "
                f"{at - killed:.2f} s (lease {lease} s)"
            )
            reader.cancel()
    finally:
        stop(a)
        stop(b, signal.SIGKILL)


async def throughput(broker: Any, redis: Any, folder: Path, n: int, lease: float) -> None:
    import aiomqtt
    from mqtt_ingest import run_publisher

    shared = "$share/bench/bench/+"
    rates = {}
    for label, count, cluster in (
        ("one daemon, cluster on", 1, True),
        ("two daemons, cluster on", 2, True),
        ("two daemons, cluster off", 2, False),
    ):
        await redis_flush(redis)
        names = [f"t{label[0:3]}{i}{int(cluster)}" for i in range(count)]
        processes = [
            daemon(yaml(folder, name, shared, cluster=cluster, lease=lease), broker, redis)
            for name in names
        ]
        try:
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe("bench/+/reply", qos=1)
                replies = Replies(client)
                reader = asyncio.get_running_loop().create_task(replies.read())
                for device in range(100):  # every daemon up, every scope open
                    await until_answered(client, replies, f"bench/{device}")
                await asyncio.sleep(0.5)
                while not replies.queue.empty():
                    replies.queue.get_nowait()
                started = time.perf_counter()
                publishing = asyncio.get_running_loop().create_task(run_publisher(broker, n, 1))
                got = 0
                with contextlib.suppress(TimeoutError):
                    while got < n:
                        await replies.next(30)
                        got += 1
                await publishing
                if got < n:
                    raise RuntimeError(f"{label}: {got:,} replies of {n:,}")
                rates[label] = n / (time.perf_counter() - started)
                reader.cancel()
        finally:
            for process in processes:
                stop(process)
    print(f"2. throughput, {n:,} QoS 1 messages over 100 devices, until every reply is in:")
    for label, rate in rates.items():
        print(f"   {label:26} {rate:9,.0f} msg/s")
    on, off = rates["two daemons, cluster on"], rates["two daemons, cluster off"]
    print(
        f"   two / one, cluster on: {on / rates['one daemon, cluster on']:.2f}; "
        f"two daemons, on / off: {on / off:.2f}"
    )


async def redis_flush(redis: Any) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis.url)
    await client.flushall()
    await client.aclose()


async def main(n: int, lease: float, asks: int) -> None:
    from gateways.testing import Mosquitto, RedisServer

    folder = Path(tempfile.mkdtemp())
    # Mosquitto's Nagle would add some 40 ms to every round trip over loopback.
    async with (
        Mosquitto.started(extra_config="set_tcp_nodelay true\nmax_queued_messages 0\n") as broker,
        RedisServer.started() as redis,
    ):
        await per_event(broker, redis, folder, lease, asks)
        await throughput(broker, redis, folder, n, lease)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="messages for the throughput")
    parser.add_argument("--lease", type=float, default=2.0, help="cluster lease, seconds")
    parser.add_argument("--asks", type=int, default=300, help="round trips per case")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.n, arguments.lease, arguments.asks))
