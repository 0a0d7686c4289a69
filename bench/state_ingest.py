"""QoS 1 ingest with a consumer's state saved per message, against the same consumer with no
store, in the same run (issue 21: goal 0.5x or better).

One Mosquitto (started here on a free loopback port), one publisher process (the one of
``bench/mqtt_ingest.py``) sending N QoS 1 messages over 100 topics, and ``MqttGateway``
with one scope per topic. The consumer counts into ``self.state`` (a ``state_model``): with
``none`` it keeps a plain attribute instead; with ``sqlite`` (a file in a temporary folder,
``synchronous=full``) and ``redis`` (a redis-server started here) every handled message is a
save, before its PUBACK, behind ``GroupCommit`` as the daemon builds it (the saves of scopes
waiting together go in one commit). Each side runs ``--rounds`` times, alternating; the best counts.

    python bench/state_ingest.py                    # 20,000 messages, 2 rounds
    python bench/state_ingest.py -n 5000 --rounds 1 --stores sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from mqtt_ingest import Counter, run_publisher
from pydantic import BaseModel

from gateways.testing import Mosquitto, RedisServer
from layer.state import GroupCommit, StateStore, build_state_store

TARGET_RATIO = 0.5


class Count(BaseModel):
    count: int = 0


async def ours(broker: Mosquitto, n: int, store: StateStore | None) -> Counter:
    from consumers import MqttConsumer
    from gateways.mqtt import MqttGateway

    counter = Counter(n)

    class Plain(MqttConsumer):
        async def receive(self, message: Any) -> None:
            counter.tick()

    class Durable(MqttConsumer):
        state_model = Count
        state_name = "bench"

        async def receive(self, message: Any) -> None:
            self.state.count += 1
            counter.tick()

    options = MqttGateway.options_model(
        broker=broker.url,
        client_id="bench-state",
        subscriptions=[{"topic": "bench/+", "qos": 1}],
        subscribe_routes=False,
    )
    app = Plain.as_asgi() if store is None else Durable.as_asgi(state_store=store)
    gateway = MqttGateway("bench", app, options)
    await gateway.start()
    await run_publisher(broker, n, 1)
    await counter.wait()
    await gateway.stop(drain_timeout=5)
    return counter


async def main(n: int, rounds: int, stores: list[str]) -> None:
    folder = Path(tempfile.mkdtemp())
    async with (
        Mosquitto.started(extra_config="max_queued_messages 0\nmax_queued_bytes 0\n") as broker,
        RedisServer.started() as redis,
    ):
        options = {
            "sqlite": {"backend": "sqlite", "path": str(folder / "state.sqlite3")},
            "redis": {"backend": "redis", "hosts": [redis.url]},
        }
        results: dict[str, list[Counter]] = {name: [] for name in ["none", *stores]}
        for r in range(rounds):
            for name in results:
                # As the daemon builds it: the store behind group commit.
                store = None if name == "none" else GroupCommit(build_state_store(options[name]))
                counter = await ours(broker, n, store)
                if store is not None:
                    await store.close()
                results[name].append(counter)
                print(
                    f"round {r + 1} {name:>6}: {counter.rate():8,.0f} msg/s, "
                    f"handled {counter.count:,} of {n:,}"
                )
    best = {name: max(c.rate() for c in counters) for name, counters in results.items()}
    print()
    for name in stores:
        ratio = best[name] / best["none"]
        print(
            f"QoS 1, state saved per message on {name} / no store = {ratio:.2f} "
            f"({best[name]:,.0f} against {best['none']:,.0f} msg/s; goal >= {TARGET_RATIO}: "
            f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"])
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds, args.stores))
