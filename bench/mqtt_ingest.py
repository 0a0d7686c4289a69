"""Messages per second from Mosquitto to a consumer handler, beside a bare aiomqtt loop.

One Mosquitto (started here on a free loopback port) and one publisher process sending N
messages at ``--qos`` over 100 topics as fast as it can. Two subscribers take turns, each
in the same process and run, both subscribed at that QoS:

- bare: ``async for message in client.messages`` with aiomqtt, counting; at QoS 1 aiomqtt
  acknowledges each message as it is read (auto-ack);
- ours: ``MqttGateway`` with one scope per topic (100 scopes) and an ``MqttConsumer`` whose
  ``receive`` counts; at QoS 1 each message is acknowledged only once handled (manual
  acknowledgement, at least once), within the default ``receive_maximum``.

The rate is messages over the time from the first to the last message received; lost is N
minus received. Each side runs ``--rounds`` times, alternating; the best round counts.

    python bench/mqtt_ingest.py                 # QoS 0, 100,000 messages, 3 rounds
    python bench/mqtt_ingest.py --qos 1 -n 50000
    python bench/mqtt_ingest.py -n 20000 --rounds 1

Targets: at QoS 0 ours at least 0.6 of bare (issue 2); at QoS 1 with manual acknowledgement
at least 0.7 of bare aiomqtt's auto-ack (issue 12); nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

import aiomqtt

from gateways.testing import Mosquitto

TOPICS = 100
TARGET_RATIO = {0: 0.6, 1: 0.7}
PAYLOAD = b'{"temperature": 21.5, "humidity": 40, "battery": 97}'


def publish(host: str, port: int, n: int, qos: int) -> None:
    """The publisher process: N messages at ``qos`` round-robin over TOPICS topics."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    last = None
    for i in range(n):
        if qos and last is not None and i % 20_000 == 0:
            last.wait_for_publish(timeout=120)  # paho has 65,535 packet identifiers
        last = client.publish(f"bench/{i % TOPICS}", PAYLOAD, qos=qos)
    if qos and last is not None:
        last.wait_for_publish(timeout=120)
    # QoS 0 has no acknowledgement: wait until paho's out queue has drained to the socket.
    while client.want_write():
        time.sleep(0.01)
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        if self.count == self.n:
            self.done.set()

    async def wait(self, quiet: float = 2.0) -> None:
        """Until N arrived, or nothing new came for ``quiet`` seconds."""
        seen = -1
        while not self.done.is_set() and seen != self.count:
            seen = self.count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), quiet)

    def rate(self) -> float:
        return (self.count - 1) / (self.last - self.first) if self.count > 1 else 0.0


async def run_publisher(broker: Mosquitto, n: int, qos: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publish", broker.host, str(broker.port), str(n), str(qos)
    )
    if await process.wait() != 0:
        raise RuntimeError("the publisher failed")


async def bare(broker: Mosquitto, n: int, qos: int) -> Counter:
    counter = Counter(n)
    async with aiomqtt.Client(broker.host, broker.port, identifier="bench-bare") as client:
        await client.subscribe("bench/+", qos)

        async def consume() -> None:
            async for message in client.messages:
                _ = (message.topic.value, message.payload)
                counter.tick()

        consumer = asyncio.create_task(consume())
        await run_publisher(broker, n, qos)
        await counter.wait()
        consumer.cancel()
    return counter


async def ours(broker: Mosquitto, n: int, qos: int) -> Counter:
    from consumers import MqttConsumer
    from gateways.mqtt import MqttGateway

    counter = Counter(n)

    class Count(MqttConsumer):
        async def receive(self, message: Any) -> None:
            counter.tick()

    options = MqttGateway.options_model(
        broker=broker.url,
        client_id="bench-ours",
        subscriptions=[{"topic": "bench/+", "qos": qos}],
        subscribe_routes=False,
    )
    gateway = MqttGateway("bench", Count.as_asgi(), options)
    await gateway.start()  # returns once the broker acknowledged the subscription
    await run_publisher(broker, n, qos)
    await counter.wait()
    await gateway.stop(drain_timeout=5)
    return counter


async def main(n: int, rounds: int, qos: int) -> None:
    # Unbounded per-client queues: by default Mosquitto drops QoS 0 messages for a client
    # whose queue is full, which a flood of this size reaches, bare loop or not; then "lost"
    # would measure the broker's limit rather than the subscriber.
    async with Mosquitto.started(
        extra_config="max_queued_messages 0\nmax_queued_bytes 0\n"
    ) as broker:
        results: dict[str, list[Counter]] = {"bare": [], "ours": []}
        for r in range(rounds):
            for name, side in (("bare", bare), ("ours", ours)):
                counter = await side(broker, n, qos)
                results[name].append(counter)
                print(
                    f"round {r + 1} {name:>4}: {counter.rate():9,.0f} msg/s, "
                    f"received {counter.count:,} of {n:,}, lost {n - counter.count:,}"
                )
    best = {name: max(c.rate() for c in counters) for name, counters in results.items()}
    lost = {name: max(n - c.count for c in counters) for name, counters in results.items()}
    ratio = best["ours"] / best["bare"]
    target = TARGET_RATIO[qos]
    print()
    print(
        f"QoS {qos}: ours / bare aiomqtt = {ratio:.2f}  (ours {best['ours']:,.0f} msg/s, bare "
        f"{best['bare']:,.0f} msg/s; target >= {target}: "
        f"{'met' if ratio >= target else 'MISSED'})"
    )
    print(f"lost, worst round: ours {lost['ours']:,}, bare {lost['bare']:,}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--publish":
        publish(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--qos", type=int, choices=(0, 1), default=0, help="publish and subscribe QoS"
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds, args.qos))
