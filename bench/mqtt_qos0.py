"""Memory of a gateway whose consumer is slower than what it is sent at QoS 0, over time.

One Mosquitto (started here on a free loopback port, default limits: it queues up to 1,000
messages for a client that does not read, and drops QoS 0 past that) and one publisher
process sending ``--rate`` messages per second of ``--size`` bytes at QoS 0 for
``--seconds`` seconds, to one topic. The gateway (``MqttGateway``, subscribed at QoS 0) has
one scope whose consumer takes ``1 / --consumer`` seconds per message: by default it is sent
ten times what it can handle. Every second the bench prints the process's resident memory
(RSS, from /proc/self/status), the messages waiting in aiomqtt's queue and whether reading
is paused (``gateways.mqtt.flow``).

With flow control (the default) the gateway stops reading at ``flow.high_water`` messages
waiting, the broker queues and then drops what the consumer cannot take, and RSS stays flat.
``--unbounded`` sets the marks out of reach (``flow.high_water`` = ``flow.limit`` = 10**9),
which is how the gateway behaved before flow control: it reads everything into aiomqtt's
queue, and RSS grows with the backlog.

    python bench/mqtt_qos0.py                   # 1,000 msg/s to a 100 msg/s consumer, 30 s
    python bench/mqtt_qos0.py --unbounded
    python bench/mqtt_qos0.py --seconds 10 --rate 2000 --consumer 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from gateways.testing import Mosquitto

TOPIC = "bench/qos0"
UNBOUNDED = 10**9


def rss_mib() -> float:
    """This process's resident set size, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def publish(host: str, port: int, rate: int, seconds: float, size: int) -> None:
    """The publisher process: ``rate`` messages per second, paced every 10 ms."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-qos0-publisher")
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    payload = b"x" * size
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            client.publish(TOPIC, payload, qos=0)
            sent += 1
        time.sleep(0.01)
    while client.want_write():
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    print(f"publisher: sent {sent:,}", flush=True)


async def run(args: argparse.Namespace) -> None:
    from gateways.mqtt import MqttGateway

    received = 0
    delay = 1 / args.consumer

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        while (await receive())["type"] != "mqtt.disconnect":
            received += 1
            await asyncio.sleep(delay)

    flow = {"high_water": UNBOUNDED, "low_water": 0, "limit": UNBOUNDED} if args.unbounded else {}
    async with Mosquitto.started() as broker:
        options = MqttGateway.options_model(
            broker=broker.url,
            subscriptions=[{"topic": TOPIC, "qos": 0}],
            subscribe_routes=False,
            flow=flow,
        )
        gateway = MqttGateway("bench", slow, options)
        await gateway.start()
        reading = gateway.flow
        if reading is None:
            raise RuntimeError("the gateway has no flow control")
        publisher = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--publish",
            broker.host,
            str(broker.port),
            str(args.rate),
            str(args.seconds),
            str(args.size),
        )
        mode = "unbounded" if args.unbounded else "flow control"
        print(
            f"{mode}: {args.rate:,} msg/s of {args.size:,} B at QoS 0 for {args.seconds:g} s "
            f"to a consumer of {args.consumer:,} msg/s"
        )
        print("   t  RSS MiB  waiting  paused  handled")
        start = time.monotonic()
        first = rss_mib()
        samples = []
        while publisher.returncode is None:
            with_rss = rss_mib()
            samples.append(with_rss)
            print(
                f"{time.monotonic() - start:4.0f}  {with_rss:7.1f}  {reading.buffered:7,}  "
                f"{'yes' if reading.paused else 'no':>6}  {received:7,}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(publisher.wait(), 1.0)
        await gateway.stop(drain_timeout=1)
    print()
    print(
        f"{mode}: RSS {first:.1f} MiB at the start, at most {max(samples):.1f} MiB, "
        f"{samples[-1]:.1f} MiB at the end; at most {reading.most_buffered:,} messages "
        f"waited in aiomqtt's queue; the consumer handled {received:,}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--publish":
        host, port, rate, seconds, size = sys.argv[2:]
        publish(host, int(port), int(rate), float(seconds), int(size))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="messages per second sent")
    parser.add_argument(
        "--consumer", type=int, default=100, help="messages per second the consumer handles"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish")
    parser.add_argument("--size", type=int, default=1024, help="payload bytes")
    parser.add_argument(
        "--unbounded",
        action="store_true",
        help="no flow control: the marks out of reach, as before flow control",
    )
    asyncio.run(run(parser.parse_args()))
