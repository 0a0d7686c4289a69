"""Durable consumer state (consumers/state.py, docs/state.md): loaded when the scope starts,
saved after each handled event, idempotency keys applied once, clear errors for a model
that no longer fits; on a real sqlite file and on the in-memory store."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from consumers import JsonMqttConsumer
from consumers.state import StateModelError
from consumers.testing import MqttCommunicator
from layer.state import MemoryStateStore, SqliteStateStore, StateKey, StateStore, StoreUnavailable


class Counts(BaseModel):
    count: int = 0
    total: float = 0.0


class Counter(JsonMqttConsumer):
    state_model = Counts
    state_name = "counter"

    async def receive_json(self, data: Any, message: Any) -> None:
        self.state.count += 1
        self.state.total += float(data["value"])
        await self.publish(f"{self.scope['topic']}/count", str(self.state.count))


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """``store_factory()``: a store; on sqlite each call opens the same file anew (as a
    restarted daemon does), on memory it is one store."""
    memory = MemoryStateStore()

    def make() -> StateStore:
        if request.param == "memory":
            return memory
        return SqliteStateStore(tmp_path / "state.db")

    return make


async def run(app: Any, payloads: list[dict[str, Any]], *, key: str | None = None) -> list[str]:
    """Feed ``payloads`` to one scope ``devices/kitchen`` and end it; the counts it published."""
    communicator = MqttCommunicator(app, "devices/kitchen", gateway="devices")
    await communicator.connect()
    answers = []
    for payload in payloads:
        event_key = payload.pop("_key", key)
        if event_key is None:
            await communicator.send_message(json.dumps(payload), qos=1)
        else:
            await communicator.send_input(
                {
                    "type": "mqtt.message",
                    "topic": "devices/kitchen",
                    "payload": json.dumps(payload).encode(),
                    "qos": 1,
                    "retain": False,
                    "dup": False,
                    "properties": None,
                    "idempotency_key": event_key,
                }
            )
        if payload.get("dup"):
            # Applied already: nothing is published (receive_nothing does not cancel the app).
            assert await communicator.receive_nothing(0.2)
            answers.append("-")
        else:
            answers.append((await communicator.receive_publish())["payload"].decode())
    await communicator.disconnect("shutdown")
    return answers


async def start(communicator: MqttCommunicator) -> None:
    """Send the connect event and wait for the application to end."""
    await communicator.connect()
    await communicator.wait(1)


async def test_the_state_outlives_the_scope(store_factory: Any) -> None:
    store = store_factory()
    assert await run(Counter.as_asgi(state_store=store), [{"value": 1}, {"value": 2}]) == ["1", "2"]
    await store.close()
    store = store_factory()
    # A new scope of the same key, on a store opened again: it goes on where it stopped.
    assert await run(Counter.as_asgi(state_store=store), [{"value": 4}]) == ["3"]
    stored = await store.load(StateKey("counter", "devices", "devices/kitchen"))
    assert stored is not None
    assert json.loads(stored.data) == {"version": 1, "state": {"count": 3, "total": 7.0}}
    await store.close()


def deduplicated(gateway: str) -> float:
    value = REGISTRY.get_sample_value(
        "asgi_gateway_events_deduplicated_total", {"gateway": gateway}
    )
    return value or 0.0


async def test_an_idempotency_key_is_applied_once(store_factory: Any) -> None:
    store = store_factory()
    before = deduplicated("devices")
    events = [
        {"value": 1, "_key": "m-1"},
        {"value": 2, "_key": "m-2"},
        {"value": 2, "_key": "m-2", "dup": True},  # the broker's redelivery
    ]
    assert await run(Counter.as_asgi(state_store=store), events) == ["1", "2", "-"]
    await store.close()
    store = store_factory()
    # Also after a restart: the applied keys were saved in the same write as the state.
    again = [{"value": 1, "_key": "m-1", "dup": True}, {"value": 5, "_key": "m-3"}]
    assert await run(Counter.as_asgi(state_store=store), again) == ["-", "3"]
    assert deduplicated("devices") - before == 2
    await store.close()


async def test_a_scope_is_keyed_by_consumer_gateway_and_scope_key() -> None:
    store = MemoryStateStore()

    class Unnamed(Counter):
        state_name = None

    await run(Unnamed.as_asgi(state_store=store), [{"value": 1}])
    # Without state_name, the first part of the key is the consumer's import path.
    name = f"{Unnamed.__module__}.{Unnamed.__qualname__}"
    assert await store.load(StateKey(name, "devices", "devices/kitchen")) is not None

    class Named(Counter):
        state_name = "thermostat"

    await run(Named.as_asgi(state_store=store), [{"value": 1}])
    stored = await store.load(StateKey("thermostat", "devices", "devices/kitchen"))
    assert stored is not None
    assert await store.load(StateKey("thermostat", "other", "devices/kitchen")) is None


async def test_the_store_comes_from_the_scope() -> None:
    store = MemoryStateStore()
    communicator = MqttCommunicator(Counter.as_asgi(), "devices/kitchen", gateway="devices")
    communicator.scope["state_store"] = store
    await communicator.connect()
    await communicator.send_message(json.dumps({"value": 1}))
    assert (await communicator.receive_publish())["payload"] == b"1"
    await communicator.disconnect()


class CountsV2(BaseModel):
    readings: int = 0


async def test_an_incompatible_model_is_a_clear_error_and_migration_fixes_it() -> None:
    store = MemoryStateStore()
    await run(Counter.as_asgi(state_store=store), [{"value": 1}, {"value": 1}])

    class Strict(CountsV2):
        model_config = {"extra": "forbid"}

    class Changed(JsonMqttConsumer):
        state_model = Strict
        state_name = "counter"

    communicator = MqttCommunicator(
        Changed.as_asgi(state_store=store), "devices/kitchen", gateway="devices"
    )
    # Refused at the scope's start (its connect event), before any event is handled.
    with pytest.raises(
        StateModelError, match=r"does not fit .*Strict \(version 1\).*docs/state.md"
    ):
        await start(communicator)

    class Migrated(JsonMqttConsumer):
        state_model = CountsV2
        state_name = "counter"
        state_version = 2

        def migrate_state(self, data: dict[str, Any], version: int) -> Mapping[str, Any]:
            assert version == 1
            return {"readings": data["count"]}

        async def receive_json(self, data: Any, message: Any) -> None:
            self.state.readings += 1
            await self.publish("out", str(self.state.readings))

    assert await run(Migrated.as_asgi(state_store=store), [{"value": 1}]) == ["3"]


async def test_a_newer_stored_version_without_migrate_state_is_refused() -> None:
    store = MemoryStateStore()
    await run(Counter.as_asgi(state_store=store), [{"value": 1}])

    class Bumped(Counter):
        state_name = "counter"
        state_version = 2

    communicator = MqttCommunicator(
        Bumped.as_asgi(state_store=store), "devices/kitchen", gateway="devices"
    )
    with pytest.raises(StateModelError, match="version 1, the consumer's state_version is 2"):
        await start(communicator)


async def test_a_model_without_defaults_is_refused_at_start() -> None:
    class Required(BaseModel):
        device: str

    class Bad(JsonMqttConsumer):
        state_model = Required

    communicator = MqttCommunicator(
        Bad.as_asgi(state_store=MemoryStateStore()), "devices/kitchen", gateway="devices"
    )
    await communicator.connect()
    with pytest.raises(StateModelError, match="valid with no arguments"):
        await communicator.wait(1)


class AwayTwice(MemoryStateStore):
    """A store whose first two saves fail as a server that is away does."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 2

    async def save(self, key: StateKey, data: bytes, **kwargs: Any) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable(f"{key}: connection refused")
        return await super().save(key, data, **kwargs)


async def test_a_store_that_is_away_makes_the_save_wait_and_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = AwayTwice()
    communicator = MqttCommunicator(Counter.as_asgi(), "devices/kitchen", state_store=store)
    await communicator.connect()
    await communicator.send_message(json.dumps({"value": 2}), qos=1)
    # The answer went out; the save waits (0.1 s, then about 0.2 s) until the store is back.
    assert (await communicator.receive_publish(timeout=1))["payload"] == b"1"
    key = StateKey("counter", "test", "devices/kitchen")
    for _ in range(200):
        if await store.load(key) is not None:
            break
        await communicator.receive_nothing(timeout=0.01)
    loaded = await store.load(key)
    assert loaded is not None
    assert json.loads(loaded.data)["state"] == {"count": 1, "total": 2.0}
    assert store.failures == 0
    warnings = [r for r in caplog.records if "State store unavailable for" in r.getMessage()]
    assert len(warnings) == 2
    assert "the event waits" in warnings[0].getMessage()
    await communicator.disconnect()


class ReplyLost(MemoryStateStore):
    """A store whose first save is stored but answered with ``StoreUnavailable``, as when
    Redis applies a script and its reply is lost (a frozen server, a kill after the write)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 1

    async def save(self, key: StateKey, data: bytes, **kwargs: Any) -> int:
        version = await super().save(key, data, **kwargs)
        if self.lost:
            self.lost -= 1
            raise StoreUnavailable(f"{key}: connection lost before the reply")
        return version


async def test_a_save_whose_reply_was_lost_is_found_stored_not_a_conflict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "consumers.state")
    store = ReplyLost()
    communicator = MqttCommunicator(Counter.as_asgi(), "devices/kitchen", state_store=store)
    await communicator.connect()
    for value in (2, 3):
        await communicator.send_message(json.dumps({"value": value}), qos=1)
    # Both handled by the same instance: the retried save met its own write, not a conflict.
    assert (await communicator.receive_publish(timeout=2))["payload"] == b"1"
    assert (await communicator.receive_publish(timeout=2))["payload"] == b"2"
    await communicator.disconnect()
    loaded = await store.load(StateKey("counter", "test", "devices/kitchen"))
    assert loaded is not None
    assert json.loads(loaded.data)["state"] == {"count": 2, "total": 5.0}
    assert "written elsewhere" not in caplog.text
    assert "a save whose reply was lost had been stored" in caplog.text
