"""Starting a scope whose state is in the store, and 100,000 device states in one sqlite
file (issue 21, "Measure").

1. **Scope start** (p50, p99 in ms), the way a device's first message meets it: a
   transport-less ``Gateway`` (the in-process path of ``bench/idle_scopes.py``, with the
   store as ``gateway.state_store``, as the daemon sets it) is given an ``mqtt.message`` for
   a key with no live scope; it opens the scope and queues ``mqtt.connect``, and the
   consumer (a ``MqttConsumer`` with the thermostat's ``DeviceState`` as ``state_model``)
   loads its state (``DurableState.open``) before its first handler, ``connect()``, runs.
   The time is from ``gateway.dispatch`` to ``connect()`` running, one start at a time
   (the scope is ended, and its task awaited, before the next). For each store (memory,
   sqlite, redis, each behind ``GroupCommit`` as the daemon builds it, each holding the same
   ``-n`` states): ``--starts`` random keys that have a stored state ("stored"), and as many
   that have none ("none stored": the consumer gets ``state_model()``); and the same consumer
   without a ``state_model`` ("no state"), the floor. Ratios are to the memory store's same
   case. A second table times ``DurableState.open`` alone (load + validate into the model),
   the part the store adds.
2. **100,000 device states in sqlite**: ``save_many`` in batches (``--batch``) of states
   shaped like ``DeviceState`` (``last``, ``total``, ``count``), each with ``--applied``
   idempotency keys (uuid4 strings, as a device's message ids) in its window; the file's
   size once closed (bytes, bytes per state); then a new ``SqliteStateStore`` on the file
   (a new connection; the OS page cache is still warm from the fill) opens ``--opens``
   random states with ``DurableState.open``: its first use (the file opened), the total
   and the per-open p50/p99. With Redis, its ``used_memory`` per state is shown beside it.

    python bench/state_scopes.py                   # 100,000 states, 1,000 opens and starts
    python bench/state_scopes.py -n 10000 --no-redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from consumers import MqttConsumer
from consumers.state import DurableState
from gateways.base import Gateway, GatewayOptions, ScopeInstance
from layer.state import (
    GroupCommit,
    MemoryStateStore,
    SqliteStateStore,
    StateKey,
    StateStore,
    StateWrite,
    build_state_store,
)
from layer.types import ASGIApp, Message

GATEWAY = "bench"
STATE_NAME = "thermostat.device"


class DeviceState(BaseModel):
    """As ``examples/thermostat/thermostat.py``'s ``DeviceState``."""

    last: float | None = None
    total: float = 0.0
    count: int = 0


def topic(i: int) -> str:
    return f"devices/{i}"


def state_key(i: int) -> StateKey:
    return StateKey(STATE_NAME, GATEWAY, topic(i))


def encoded(rng: random.Random) -> bytes:
    """A stored ``DeviceState`` as ``DurableState.encode`` writes it."""
    count = rng.randrange(1, 100_000)
    state = DeviceState(
        last=round(rng.uniform(15, 30), 1), total=round(count * 21.3, 1), count=count
    )
    document = {"version": 1, "state": state.model_dump(mode="json")}
    return json.dumps(document, separators=(",", ":")).encode()


async def fill(store: StateStore, n: int, applied: int, batch: int, seed: int) -> float:
    """Store states 0 to n - 1 with ``save_many``; returns the seconds it took."""
    rng = random.Random(seed)
    start = time.perf_counter()
    for first in range(0, n, batch):
        writes = [
            StateWrite(
                state_key(i),
                encoded(rng),
                None,
                tuple(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(applied)),
            )
            for i in range(first, min(n, first + batch))
        ]
        results = await store.save_many(writes)
        if not all(isinstance(r, int) for r in results):
            raise RuntimeError(f"the fill was refused: {results[:3]}")
    return time.perf_counter() - start


# -- the scope start ---------------------------------------------------------------------


@dataclass
class Marks:
    """When the first handler of the scope being measured ran."""

    connected: asyncio.Future[float] | None = None

    def connect(self) -> None:
        if self.connected is not None and not self.connected.done():
            self.connected.set_result(time.perf_counter())


class BenchGateway(Gateway):
    """A gateway without a transport: events come from ``dispatch``, sends are dropped."""

    protocol = "mqtt"

    def __init__(self, application: ASGIApp, store: StateStore | None) -> None:
        super().__init__(
            GATEWAY, application, GatewayOptions(idle_timeout=None, max_scopes=1_000_000)
        )
        self.state_store = store

    async def start_transport(self) -> None:
        pass

    async def close_transport(self) -> None:
        pass

    async def handle_send(self, instance: ScopeInstance, message: Message) -> None:
        pass


def consumer(marks: Marks, durable: bool) -> ASGIApp:
    class Device(MqttConsumer):
        async def connect(self) -> None:
            marks.connect()

    class DurableDevice(Device):
        state_model = DeviceState
        state_name = STATE_NAME

    return DurableDevice.as_asgi() if durable else Device.as_asgi()


def first_message(key: str) -> Message:
    payload = b'{"temperature": 21.5}'
    return {
        "type": "mqtt.message",
        "topic": key,
        "payload": payload,
        "qos": 1,
        "retain": False,
        "dup": False,
        "properties": None,
    }


async def scope_starts(store: StateStore | None, keys: list[int], warmup: list[int]) -> list[float]:
    """Seconds from ``dispatch`` of a scope's first message to its ``connect()`` running."""
    marks = Marks()
    gateway = BenchGateway(consumer(marks, store is not None), store)
    await gateway.start()
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    try:
        for n, i in enumerate([*warmup, *keys]):
            key = topic(i)
            marks.connected = loop.create_future()
            start = time.perf_counter()
            scope = gateway.new_scope(topic=key, scope_key=key, subscription="devices/+")
            await gateway.dispatch(key, first_message(key), scope)
            connected = await asyncio.wait_for(marks.connected, 30)
            if n >= len(warmup):
                samples.append(connected - start)
            instance = gateway.instances[key]
            gateway.end(instance, "closed")
            if instance.task is not None:
                await instance.task
    finally:
        await gateway.stop(drain_timeout=5)
    return samples


async def state_opens(store: StateStore, keys: list[int]) -> list[float]:
    """Seconds of ``DurableState.open`` (load + validate) per key."""
    samples = []
    for i in keys:
        key = state_key(i)
        start = time.perf_counter()
        await DurableState.open(store, key, DeviceState)
        samples.append(time.perf_counter() - start)
    return samples


# -- reporting ---------------------------------------------------------------------------


def p(samples: list[float], q: int) -> float:
    """The q-th percentile, in ms."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


@dataclass
class Row:
    store: str
    case: str
    samples: list[float] = field(repr=False)

    @property
    def p50(self) -> float:
        return p(self.samples, 50)

    @property
    def p99(self) -> float:
        return p(self.samples, 99)


def table(title: str, rows: list[Row]) -> None:
    print(title)
    print(f"  {'store':<8} {'case':<12} {'p50 ms':>8} {'p99 ms':>8} {'p50/mem':>8} {'p99/mem':>8}")
    memory = {row.case: row for row in rows if row.store == "memory"}
    for row in rows:
        peer = memory.get(row.case)
        ratios = (
            f"{row.p50 / peer.p50:8.2f} {row.p99 / peer.p99:8.2f}"
            if peer is not None and row.store != "memory"
            else f"{'':>8} {'':>8}"
        )
        print(f"  {row.store:<8} {row.case:<12} {row.p50:8.3f} {row.p99:8.3f} {ratios}")
    print()


# -- the run -----------------------------------------------------------------------------


@dataclass
class Options:
    states: int
    opens: int
    starts: int
    warmup: int
    applied: int
    batch: int
    redis: bool
    tmp: str | None
    seed: int


def sqlite_tables(path: Path) -> list[tuple[str, int]]:
    """Bytes of each table and index of the file (sqlite's ``dbstat``), largest first."""
    import sqlite3

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.Error:  # a sqlite built without dbstat
        rows = []
    finally:
        connection.close()
    return [(name, int(size)) for name, size in rows]


async def redis_used_memory(url: str) -> int:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def main(o: Options) -> None:
    folder = Path(tempfile.mkdtemp(prefix="state-scopes-", dir=o.tmp))
    path = folder / "state.sqlite3"
    rng = random.Random(o.seed)
    n = o.states
    try:
        # 2. The sqlite file: fill, close, size; a new store opens random states.
        store: StateStore = SqliteStateStore(path)
        fill_seconds = await fill(store, n, o.applied, o.batch, o.seed)
        await store.close()
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        file_bytes = sum(f.stat().st_size for f in files if f.exists())
        print(
            f"sqlite: {n:,} states ({o.applied} applied keys each) stored in "
            f"{fill_seconds:.1f} s ({n / fill_seconds:,.0f} states/s, save_many of {o.batch:,})"
        )
        cold = SqliteStateStore(path)
        first_use = await timed(cold.ping)
        open_keys = rng.sample(range(n), min(o.opens, n))
        cold_opens = await state_opens(cold, open_keys)
        await cold.close()
        tables = sqlite_tables(path)

        # 1. Scope starts, and DurableState.open alone, on each store holding the n states.
        stored = rng.sample(range(n), min(o.starts, n))
        absent = [n + i for i in range(o.starts)]  # never stored
        warmup = [n + o.starts + i for i in range(o.warmup)]
        starts: list[Row] = [Row("-", "no state", await scope_starts(None, stored, warmup))]
        opens: list[Row] = []

        async def measure(name: str, raw: StateStore) -> None:
            store = GroupCommit(raw)  # as the daemon builds it
            starts.append(Row(name, "stored", await scope_starts(store, stored, warmup)))
            starts.append(Row(name, "none stored", await scope_starts(store, absent, warmup)))
            opens.append(Row(name, "stored", await state_opens(raw, stored)))
            # The "none stored" scopes were written by their start: take fresh ones.
            opens.append(
                Row(
                    name,
                    "none stored",
                    await state_opens(raw, [k + o.starts + o.warmup for k in absent]),
                )
            )
            await store.close()

        memory = MemoryStateStore()
        await fill(memory, n, o.applied, o.batch, o.seed)
        await measure("memory", memory)
        del memory
        await measure("sqlite", build_state_store({"backend": "sqlite", "path": str(path)}))
        redis_bytes: float | None = None
        if o.redis:
            from gateways.testing import RedisServer

            async with RedisServer.started() as server:
                redis_store = build_state_store({"backend": "redis", "hosts": [server.url]})
                before = await redis_used_memory(server.url)
                redis_fill = await fill(redis_store, n, o.applied, o.batch, o.seed)
                redis_bytes = (await redis_used_memory(server.url) - before) / n
                print(
                    f"redis: {n:,} states stored in {redis_fill:.1f} s "
                    f"({n / redis_fill:,.0f} states/s)"
                )
                await measure("redis", redis_store)
        print()

        table(
            "1. Scope start: dispatch of a scope's first message -> its connect() handler runs\n"
            "   (transport-less Gateway, state loaded by the consumer; "
            f"{len(stored):,} starts each, one at a time, {n:,} states in each store)",
            starts,
        )
        table("   of which DurableState.open (load + validate into DeviceState):", opens)
        total = sum(cold_opens)
        print(f"2. {n:,} device states in sqlite ({o.applied} applied keys each)")
        print(f"  file size            {file_bytes:,} bytes, {file_bytes / n:,.0f} bytes/state")
        for name, size in tables:
            print(f"    {name:<24} {size:>13,} bytes, {size / n:>6,.0f} bytes/state")
        if redis_bytes is not None:
            print(f"  (redis used_memory   {redis_bytes:,.0f} bytes/state)")
        print(f"  fill                 {fill_seconds:.1f} s, {n / fill_seconds:,.0f} states/s")
        print(f"  new store, first use {first_use * 1000:.2f} ms (opens the file)")
        print(
            f"  {len(cold_opens):,} random opens    {total:.3f} s in all, "
            f"p50 {p(cold_opens, 50):.3f} ms, p99 {p(cold_opens, 99):.3f} ms, "
            f"max {max(cold_opens) * 1000:.3f} ms"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--states", type=int, default=100_000, help="states stored")
    parser.add_argument("--opens", type=int, default=1000, help="random opens of the sqlite file")
    parser.add_argument("--starts", type=int, default=1000, help="scope starts per case")
    parser.add_argument("--warmup", type=int, default=50, help="starts not counted, per case")
    parser.add_argument("--applied", type=int, default=20, help="idempotency keys per state")
    parser.add_argument("--batch", type=int, default=1000, help="states per save_many")
    parser.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=shutil.which("redis-server") is not None,
        help="measure a redis-server started here too (default: when redis-server is on PATH)",
    )
    parser.add_argument("--tmp", metavar="DIR", help="where the sqlite file goes")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    asyncio.run(
        main(
            Options(
                args.states,
                args.opens,
                args.starts,
                args.warmup,
                args.applied,
                args.batch,
                args.redis,
                args.tmp,
                args.seed,
            )
        )
    )
